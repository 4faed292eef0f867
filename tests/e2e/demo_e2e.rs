//! End to end: the `keel` binary runs the demo pipeline against the simulated market for a few
//! seconds; landed bundles must have moved the portfolios back inside their bands.

use std::process::Command;

fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

#[test]
fn demo_rebalances_every_portfolio_through_the_relay() {
    let out = tempfile::tempdir().unwrap();
    let status = keel()
        .args(["demo", "--duration", "14", "--quiet", "--out"])
        .arg(out.path())
        .args(["--config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml")])
        .status()
        .expect("run keel demo");
    assert!(status.success(), "keel demo failed: {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let landed = report["bundles_landed"].as_u64().unwrap();
    assert!(landed >= 1, "no bundle landed: {report:#}");
    assert!(report["price_updates"].as_u64().unwrap() > 100);
    assert!(report["gas_used"].as_u64().unwrap() > 0);
    assert!(report["tick_to_wire_us"]["count"].as_u64().unwrap() >= 1);
    let before = report["max_drift_before"].as_f64().unwrap();
    let after = report["max_drift_after"].as_f64().unwrap();
    assert!(after < before, "drift after landing {after} not below drift when fired {before}");
    for p in report["portfolios"].as_array().unwrap() {
        assert!(p["landed"].as_u64().unwrap() >= 1, "portfolio {} never rebalanced: {p:#}", p["id"]);
        assert!(p["trades"].as_u64().unwrap() >= 1);
        assert!(p["start_value"].as_f64().unwrap() > 0.0);
        // every rebalance sent was costed on its routes: fees are the pools' share of the notional
        let c = &p["cost"];
        let (notional, fees) = (c["notional"].as_f64().unwrap(), c["pool_fees"].as_f64().unwrap());
        assert!(notional > 0.0 && fees > 0.0 && fees < notional * 0.01, "{c:#}");
        assert!(c["gas_units"].as_u64().unwrap() > 0 && c["gas_native"].as_f64().unwrap() > 0.0, "{c:#}");
    }
    // Bundles landed on the simulated chain, as the relay reports them.
    assert!(report["sim"]["bundles_landed"].as_u64().unwrap() >= landed);
    let svg = std::fs::read_to_string(out.path().join("weights.svg")).unwrap();
    assert!(svg.contains("<polyline") && svg.contains("rebalance landed"));
}

#[test]
fn check_config_accepts_the_demo_and_names_bad_fields() {
    let ok = keel()
        .args(["check-config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml")])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml"))
        .unwrap()
        .replacen("abs_band = 0.01", "abs_band = 1.5", 1);
    std::fs::write(&bad, text).unwrap();
    let err = keel().arg("check-config").arg(&bad).output().unwrap();
    assert!(!err.status.success());
    let msg = String::from_utf8_lossy(&err.stderr);
    assert!(msg.contains("portfolios[core].triggers[0].abs_band"), "{msg}");
}

#[test]
fn help_lists_every_command() {
    let out = keel().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["demo", "run", "record", "replay", "check-config", "quote"] {
        assert!(text.contains(cmd), "{text}");
    }
}
