//! End to end: the `keel` binary runs the demo pipeline against the simulated market for a few
//! seconds, with its built-in config from an empty directory; landed bundles must have moved the
//! portfolios back inside their bands.

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
        // No --config, from a directory without configs/: the built-in demo config, as an installed
        // binary runs it.
        .current_dir(out.path())
        .status()
        .expect("run keel demo");
    assert!(status.success(), "keel demo failed: {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let landed = report["rebalances_landed"].as_u64().unwrap();
    assert!(landed >= 1, "no bundle landed: {report:#}");
    assert_eq!(
        (report["stage_mode"].as_str(), report["router_threads"].as_u64()),
        (Some("pipelined"), Some(1))
    );
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
    // The treasuries' client flow makes one sell WETH as the other buys it in the same block: their
    // rebalances are netted, the overlap crossed internally (no pool fee), and the saving reported.
    let treasuries: Vec<&serde_json::Value> = report["portfolios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"].as_str().unwrap().starts_with("treasury"))
        .collect();
    assert_eq!(treasuries.len(), 2);
    for p in treasuries {
        let c = &p["cost"];
        assert!(c["crossed"].as_f64().unwrap() > 1_000.0, "no internal cross: {c:#}");
        assert!(c["saved"].as_f64().unwrap() > 0.0, "{c:#}");
    }
    // Bundles landed on the simulated chain, as the relay reports them.
    // Netted rebalances share a bundle: at least one bundle landed, never more than rebalances.
    let bundles = report["sim"]["bundles_landed"].as_u64().unwrap();
    assert!(bundles >= 1 && bundles <= landed, "{bundles} bundles for {landed} rebalances");
    let svg = std::fs::read_to_string(out.path().join("weights.svg")).unwrap();
    assert!(svg.contains("<polyline") && svg.contains("rebalance landed"));
    // Cost over time: one step per landed rebalance, the total in the legend.
    let points = report["cost_over_time"].as_array().unwrap();
    assert_eq!(points.len() as u64, landed, "{points:?}");
    let svg = std::fs::read_to_string(out.path().join("cost.svg")).unwrap();
    assert!(svg.contains("<polyline") && svg.contains("crossed internally"), "{svg}");
    let total = &report["total_cost"];
    assert!(
        total["crossed"].as_f64().unwrap() > 2_000.0 && total["notional"].as_f64().unwrap() > 0.0,
        "{total:#}"
    );
    for p in report["portfolios"].as_array().unwrap() {
        let te = p["tracking_error"].as_f64().unwrap();
        assert!(te > 0.0 && te < 0.5, "time-weighted tracking error of {}: {te}", p["id"]);
    }
}

/// `[engine] mode = "inline"`: the engine thread reads the exchange socket itself, routes, signs
/// and sends each intent (no feed task, no router thread), and handles the router's inputs (heads,
/// receipts, relay answers) between events: every portfolio still rebalances through the relay, and
/// the bundles land.
#[test]
fn demo_rebalances_every_portfolio_with_the_router_inline_on_the_engine_thread() {
    let out = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml")).unwrap();
    assert!(demo.contains("\n[engine]\nstale_after_ms = 3000\n"), "configs/demo.toml changed shape");
    let inline = demo.replace("\n[engine]\n", "\n[engine]\nmode = \"inline\"\nhot_cpu = 0\n");
    let config = out.path().join("inline.toml");
    std::fs::write(&config, inline).unwrap();
    let run = keel()
        .args([
            "--log",
            "keel_runtime::pipeline=info,keel_feeds::hot=info",
            "--log-json",
            "demo",
            "--duration",
            "14",
            "--quiet",
            "--config",
        ])
        .arg(&config)
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run keel demo");
    let logs = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "keel demo failed: {logs}");
    assert!(
        logs.lines().any(|l| l.contains("engine thread pinned") && l.contains(r#""cpu":0"#)),
        "hot_cpu = 0 not applied: {logs}"
    );
    // The engine thread read the exchange socket itself: the hot feed connected, and its frames
    // reached the engine (every one the engine counted came from that socket).
    assert!(
        logs.lines().any(|l| l.contains("read on the hot thread")),
        "the exchange socket was not read on the engine thread: {logs}"
    );
    // Idle between frames, the thread rehearsed its latest route (`rehearse_us`, default 100).
    let rehearsals: u64 = logs
        .lines()
        .find(|l| l.contains("idle rehearsals of the latest route"))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["fields"]["rehearsals"].as_u64())
        .unwrap_or_else(|| panic!("no rehearsal count logged: {logs}"));
    assert!(rehearsals > 0, "the idle hot thread never rehearsed a route: {logs}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["stage_mode"], "inline", "{report:#}");
    assert_eq!(report["router_threads"], 0, "{report:#}");
    assert!(report["feed"]["pushed"].as_u64().unwrap() >= 100, "{report:#}");
    assert!(report["rebalances_landed"].as_u64().unwrap() >= 1, "{report:#}");
    assert!(report["tick_to_wire_us"]["count"].as_u64().unwrap() >= 1, "{report:#}");
    for p in report["portfolios"].as_array().unwrap() {
        assert!(p["landed"].as_u64().unwrap() >= 1, "portfolio {} never rebalanced: {p:#}", p["id"]);
    }
    // Every outcome came back through the engine's own queue: nothing dropped.
    assert_eq!(report["queues"]["events"]["dropped"], 0, "{report:#}");
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
