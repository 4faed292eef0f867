//! `keel devnet` + `keel run`: the two binaries' processes against real anvil and the real Uniswap
//! V2/V3/V4, Balancer and Curve contracts. The devnet moves the market; `keel run` with the config
//! it wrote (a pool of each of the five kinds) must land at least one rebalance, each of its swaps
//! through a configured pool. Also checks that the committed `configs/anvil.toml` is what a devnet
//! writes.

use std::process::{Command, Stdio};

use crate::common::Devnet;

#[test]
fn keel_run_rebalances_against_the_devnet() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("devnet.toml");
    let devnet = Devnet::start(
        env!("CARGO_BIN_EXE_keel"),
        &["--block-ms", "300", "--move-every", "2", "--duration", "60"],
        &cfg,
    );
    let (anvil, relay, quotes) = (devnet.anvil_port, devnet.relay_port, devnet.quotes_port);

    // The committed config is the devnet's, with the default ports.
    let written = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!(":{anvil}"), ":8545")
        .replace(&format!(":{relay}"), ":8550")
        .replace(&format!(":{quotes}"), ":8551");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil.toml")).unwrap();
    assert_eq!(
        written, committed,
        "configs/anvil.toml is stale: regenerate it with `keel devnet --write-config configs/anvil.toml`"
    );

    let out = dir.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--duration", "16", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("run keel run");
    assert!(status.success(), "keel run failed: {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(
        report["rebalances_landed"].as_u64().unwrap() >= 1,
        "no rebalance landed on the devnet: {report:#}"
    );
    assert!(report["gas_used"].as_u64().unwrap() > 0);
    assert!(report["portfolios"][0]["landed"].as_u64().unwrap() >= 1);
    // Every venue kind is configured, and every landed swap went through a configured pool.
    let pools = report["pools"].as_array().unwrap();
    let mut kinds: Vec<&str> = pools.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        ["balancer_weighted", "curve_stableswap", "uniswap_v2", "uniswap_v3", "uniswap_v4"],
        "{pools:#?}"
    );
    let landed_fills: u64 = pools.iter().map(|p| p["landed"].as_u64().unwrap()).sum();
    assert_eq!(landed_fills, report["portfolios"][0]["trades"].as_u64().unwrap(), "{pools:#?}");
}

#[test]
fn a_zero_block_interval_is_refused_before_anything_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["devnet", "--block-ms", "0"])
        .output()
        .expect("run keel devnet");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--block-ms") && err.contains("50..=60000"), "{err}");
}

#[test]
fn without_the_chain_packages_devnet_says_where_it_looked_and_how_to_install_them() {
    let empty = tempfile::tempdir().expect("tempdir");
    let run = |anvil: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.args(["devnet", "--duration", "1", "--write-config"])
            .arg(empty.path().join("devnet.toml"))
            .env("KEEL_CHAIN_DIR", empty.path())
            .env_remove("KEEL_ANVIL");
        if let Some(a) = anvil {
            cmd.env("KEEL_ANVIL", a);
        }
        let out = cmd.output().expect("run keel devnet");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(None);
    let looked = empty.path().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(err.contains(&looked.display().to_string()), "names where it looked: {err}");
    let setup = format!("{}/setup.sh", empty.path().display());
    assert!(err.contains(&setup) && err.contains("npm ci --prefix"), "says how to install: {err}");
    assert!(err.contains("KEEL_ANVIL") && !err.contains("panicked"), "{err}");
    let err = run(Some("/nonexistent/anvil"));
    assert!(err.contains("/nonexistent/anvil") && err.contains("KEEL_ANVIL is set"), "{err}");
}
