//! End to end: `keel demo` with a portfolio whose targets come from a predictor. The market is flat
//! (ETH at 2000), so only the targets move the portfolio. A scripted predictor connects to the
//! configured socket, has a too-large step refused, sends 0.8/0.2 for four seconds (Keel buys WETH
//! through a landed bundle), then dies: after `max_age_secs` the fallback 0.6/0.4 takes over and
//! Keel sells WETH back through another landed bundle.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cppi_e2e::{capture_path, market_config};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn send(s: &mut TcpStream, r: &mut BufReader<TcpStream>, weights: &str) -> serde_json::Value {
    writeln!(s, r#"{{"portfolio":"insured","ts_ms":{},"weights":{weights}}}"#, now_ms()).unwrap();
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap()
}

#[test]
fn predicted_weights_land_and_the_fallback_lands_after_the_predictor_dies() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("flat.ws");
    std::fs::write(&cap, capture_path(false)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let portfolio = r#"targets = { external = "alpha", fallback = { WETH = 0.6, USDC = 0.4 }, max_age_secs = 3.0, max_step = 0.3 }
triggers = [{ type = "drift", abs_band = 0.05 }]"#;
    let extra = format!("[[predictors]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{port}\"\n");
    let cfg = dir.path().join("predicted.toml");
    std::fs::write(&cfg, market_config(&cap, portfolio, &extra)).unwrap();
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["demo", "--duration", "16", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .spawn()
        .expect("start keel demo");
    let t0 = Instant::now();
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(t0.elapsed() < Duration::from_secs(20), "predictor socket never opened: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let mut r = BufReader::new(s.try_clone().unwrap());
    // Give the feeds a moment to deliver prices and balances.
    std::thread::sleep(Duration::from_secs(2));
    let refused = send(&mut s, &mut r, r#"{"WETH":0.95,"USDC":0.05}"#);
    assert_eq!((refused["ok"].as_bool(), refused["kind"].as_str()), (Some(false), Some("step")), "{refused}");
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let ok = send(&mut s, &mut r, r#"{"WETH":0.8,"USDC":0.2}"#);
        assert_eq!(ok["ok"], true, "{ok}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The predictor dies.
    drop((s, r));
    let status = child.wait().unwrap();
    assert!(status.success(), "keel demo failed: {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let p = &report["portfolios"][0];
    assert!(p["landed"].as_u64().unwrap() >= 2, "expected the buy and the sell back to land: {p:#}");
    let t = &report["engine"]["targets"];
    assert!(
        t["external_applied"].as_u64().unwrap() >= 1 && t["external_fallbacks"].as_u64().unwrap() >= 1,
        "{t}"
    );
    // On the way: each rebalance fired on a drift of 0.2 (0.6 → predicted 0.8, then 0.8 → the
    // fallback 0.6), and each traded about 0.2 × 30,000 = 6,000 USD.
    let fired = report["max_drift_before"].as_f64().unwrap();
    assert!((fired - 0.2).abs() < 0.01, "max drift when fired {fired}, expected 0.2");
    let notional = p["cost"]["notional"].as_f64().unwrap();
    assert!((10_000.0..14_000.0).contains(&notional), "traded {notional}, expected about 2 × 6,000");
    let w = p["final_weights"].as_array().unwrap();
    let k = w.iter().position(|x| x[0] == "WETH").unwrap();
    // At the end: back on the fallback, within the band.
    let (weight, target) = (w[k][1].as_f64().unwrap(), w[k][2].as_f64().unwrap());
    assert!((target - 0.6).abs() < 1e-9, "final WETH target {target}, expected the fallback 0.6");
    assert!((weight - 0.6).abs() < 0.05, "final WETH weight {weight}");
}
