//! `keel devnet` + `keel run`: the two binaries' processes against real anvil and the real Uniswap
//! contracts. The devnet moves the market; `keel run` with the config it wrote must land at least one
//! rebalance. Also checks that the committed `configs/anvil.toml` is what a devnet writes.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The devnet owns anvil: stop it with SIGTERM so it shuts anvil down, SIGKILL only as a last resort.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(path: &Path, child: &mut Child, limit: Duration) {
    let t0 = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("keel devnet exited early ({status}); is anvil installed? run `make chain-deps`");
        }
        assert!(t0.elapsed() < limit, "keel devnet did not write its config in {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300)); // the file is written in one call; let it settle
}

#[test]
fn keel_run_rebalances_against_the_devnet() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("devnet.toml");
    let (anvil, relay, quotes) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["devnet", "--block-ms", "300", "--move-every", "2", "--duration", "60"])
        .args([
            "--port",
            &anvil.to_string(),
            "--relay-port",
            &relay.to_string(),
            "--quotes-port",
            &quotes.to_string(),
        ])
        .arg("--write-config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keel devnet");
    let mut devnet = Devnet(child);
    wait_for(&cfg, &mut devnet.0, Duration::from_secs(60));

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
    assert!(report["bundles_landed"].as_u64().unwrap() >= 1, "no rebalance landed on the devnet: {report:#}");
    assert!(report["gas_used"].as_u64().unwrap() > 0);
    assert!(report["portfolios"][0]["landed"].as_u64().unwrap() >= 1);
}
