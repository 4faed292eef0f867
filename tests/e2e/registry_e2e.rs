//! Parameters governed on chain, end to end: `keel devnet` deploys the parameter registry
//! (`KeelParams`, owned by dev:0) and writes its address into the config; `keel run` reads it every
//! block. With the market left still (no devnet moves) the portfolio sits on its configured
//! 50/50 targets, so only a change on chain can make it trade:
//!
//! 1. the owner sets the portfolio's targets to 70 % TKA / 30 % TKB → Keel lands a rebalance that
//!    buys TKA toward 70 %;
//! 2. the owner sets the global pause → the kill switch engages with the reason `registry pause …`
//!    (shown by `GET /status`); the owner then sets 30 % / 70 %, which the engine applies but which
//!    never lands: the switch blocks it;
//! 3. every change is journaled with the block of the owner's transaction.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::ProviderBuilder;
use alloy::signers::local::PrivateKeySigner;
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::registry::{set_global_paused, set_targets};

use crate::common::{Devnet, free_port};

/// anvil's public development key 0: the registry's owner on the devnet.
const DEV0_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const TOKEN: &str = "registry-e2e-control-token";

/// The value of `key = "…"` in the `[section]` of a TOML text (or, for a `[[section]]` list, in
/// the entry whose `name` or `symbol` is `name`).
fn field(text: &str, section: &str, name: Option<&str>, key: &str) -> String {
    let v: toml::Value = toml::from_str(text).expect("config is TOML");
    let s = match name {
        None => &v[section],
        Some(n) => v[section]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e.get("name").or_else(|| e.get("symbol")).and_then(|x| x.as_str()) == Some(n))
            .unwrap(),
    };
    s[key].as_str().unwrap_or_else(|| panic!("{section}.{key} in {text}")).to_string()
}

fn status(port: u16) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(x) = f() {
            return x;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn whole(x: U256) -> f64 {
    f64::from(x) / 1e18
}

#[test]
fn an_owner_transaction_retargets_a_portfolio_and_a_registry_pause_engages_the_kill_switch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("devnet.toml");
    // No market moves within the test: only the registry can make the portfolio trade.
    let devnet =
        Devnet::start(env!("CARGO_BIN_EXE_keel"), &["--block-ms", "300", "--move-every", "3600"], &cfg);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let registry: Address = field(&text, "registry", None, "address").parse().unwrap();
    let account: Address = field(&text, "portfolios", Some("devnet"), "account").parse().unwrap();
    let tka: Address = field(&text, "tokens", Some("TKA"), "address").parse().unwrap();
    let tkb: Address = field(&text, "tokens", Some("TKB"), "address").parse().unwrap();
    let (control, journal) = (free_port(), dir.path().join("journal.db"));
    let token_file = dir.path().join("control.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let text = format!(
        "{text}\n[journal]\npath = \"{}\"\n\n[safety]\ncontrol_port = {control}\ncontrol_token = \"file:{}\"\n",
        journal.display(),
        token_file.display()
    );
    std::fs::write(&cfg, text).unwrap();

    let out = dir.path().join("run");
    let mut keel = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--duration", "90", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("run.log")).unwrap())
        .spawn()
        .expect("spawn keel run");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = format!("http://127.0.0.1:{}", devnet.anvil_port);
    let owner = ProviderBuilder::new()
        .wallet(EthereumWallet::from(DEV0_KEY.parse::<PrivateKeySigner>().unwrap()))
        .connect_http(url.parse().unwrap());
    let balances = || {
        rt.block_on(async {
            let a = IERC20::new(tka, &owner).balanceOf(account).call().await.unwrap();
            let b = IERC20::new(tkb, &owner).balanceOf(account).call().await.unwrap();
            (whole(a), whole(b))
        })
    };
    let log = || std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();

    // Keel is up, has read the registry (the start-up hold is released), and sits on its 50/50
    // targets without trading.
    wait_for("Keel to read the registry and release the start-up hold", Duration::from_secs(60), || {
        status(control).filter(|s| s["halted"] == false)
    });
    std::thread::sleep(Duration::from_secs(4));
    let (a0, b0) = balances();
    assert_eq!((a0, b0), (1000.0, 1000.0), "the portfolio traded before any registry change:\n{}", log());

    // 1. New targets on chain: 70 % TKA.
    let b1 = rt.block_on(set_targets(&owner, registry, "devnet", &[(tka, 7000), (tkb, 3000)])).unwrap();
    let (a1, b1_tkb) = wait_for("a rebalance toward 70 % TKA", Duration::from_secs(40), || {
        let (a, b) = balances();
        (a > a0 + 100.0).then_some((a, b))
    });
    assert!(b1_tkb < b0, "TKA was bought with TKB: {b1_tkb} TKB");
    // TKA's price in TKB from the pools is close to 1 on a still devnet: the weight is near 0.7.
    let w = a1 / (a1 + b1_tkb);
    assert!((w - 0.7).abs() < 0.05, "TKA weight {w} after the rebalance, expected ≈ 0.7");

    // 2. The global pause: the kill switch engages, saying why.
    let b2 = rt.block_on(set_global_paused(&owner, registry, true)).unwrap();
    let s = wait_for("the kill switch", Duration::from_secs(20), || {
        status(control).filter(|s| s["halted"] == true)
    });
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("registry pause") && reason.contains(&b2.to_string()), "{s}");
    assert_eq!(s["held_by"][0], "registry", "{s}");
    // Targets back to 30 % TKA: applied, but no rebalance may land while paused.
    let b3 = rt.block_on(set_targets(&owner, registry, "devnet", &[(tka, 3000), (tkb, 7000)])).unwrap();
    let s = wait_for("a blocked rebalance", Duration::from_secs(20), || {
        status(control).filter(|s| s["blocked"].as_u64().unwrap_or(0) >= 1)
    });
    assert_eq!(s["halted"], true);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(balances(), (a1, b1_tkb), "a rebalance landed while the registry was paused");

    let _ = Command::new("kill").args(["-INT", &keel.id().to_string()]).status();
    let done = keel.wait().unwrap();
    assert!(done.success(), "keel run failed: {done}\n{}", log());

    // 3. Journaled with the blocks of the owner's transactions.
    let store = keel_journal::Store::open_read_only(&journal).unwrap();
    let recs: Vec<serde_json::Value> =
        store.records(0).unwrap().into_iter().filter(|r| r.kind == "registry").map(|r| r.body).collect();
    let at = |block: u64| {
        recs.iter().find(|r| r["block"] == block).unwrap_or_else(|| panic!("{block}: {recs:#?}"))
    };
    let r = at(b1);
    assert_eq!((r["portfolio"].as_str(), r["applied"].as_bool()), (Some("devnet"), Some(true)), "{r}");
    assert_eq!(r["weights"]["TKA"], 0.7, "{r}");
    let r = at(b2);
    assert!(r["portfolio"].is_null() && r["paused"] == true, "{r}");
    let r = at(b3);
    assert_eq!((r["applied"].as_bool(), r["weights"]["TKA"].as_f64()), (Some(true), Some(0.3)), "{r}");
    drop(devnet);
}
