//! Smoke test of the harness: each mode for about 2 s, checking the JSON schema and that counts
//! are positive. Timing figures are not asserted (benchmarks, not timed tests).

use keel_engine::config::IdleWait;
use std::time::Duration;

use keel_bench::harness::{self, Outputs, latency::RigConfig};

fn check_stage(v: &serde_json::Value) {
    for k in ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "count"] {
        assert!(v.get(k).and_then(|x| x.as_u64()).is_some(), "stage field {k} missing in {v}");
    }
}

#[test]
fn latency_mode_writes_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = Outputs {
        json: Some(dir.path().join("out.json")),
        hgrm_dir: Some(dir.path().join("hgrm")),
        plot: Some(dir.path().join("plot.svg")),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cfg = RigConfig {
        portfolios: 4,
        fire_fraction: 0.01,
        progress: false,
        idle: (IdleWait::Park, 0),
        record: None,
    };
    rt.block_on(harness::latency(&cfg, 2_000, Duration::from_secs(2), &out)).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(v["mode"], "latency");
    assert!(v["frames"].as_u64().unwrap() > 0);
    assert!(v["fired"].as_u64().unwrap() > 0, "{v}");
    let stages = v["stages"].as_object().unwrap();
    for name in ["decode", "quote_to_decision", "decide", "route_sign", "tick_to_wire", "relay_ack"] {
        check_stage(&stages[name]);
        assert!(stages[name]["count"].as_u64().unwrap() > 0, "stage {name} empty: {v}");
    }
    assert!(dir.path().join("hgrm/tick_to_wire.hgrm").exists());
    assert!(std::fs::read_to_string(dir.path().join("plot.svg")).unwrap().contains("<svg"));
}

#[test]
fn throughput_mode_writes_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = Outputs { json: Some(dir.path().join("tp.json")), ..Default::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cfg = RigConfig {
        portfolios: 2,
        fire_fraction: 0.001,
        progress: false,
        idle: (IdleWait::Park, 0),
        record: None,
    };
    // 5 s: under load (parallel builds on 2 cores) the feed may take a second or two to connect.
    rt.block_on(harness::throughput(&cfg, Duration::from_secs(5), 10_000, &out)).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tp.json")).unwrap()).unwrap();
    assert_eq!(v["mode"], "throughput");
    assert!(v["frames_per_s"].as_u64().unwrap() > 0, "{v}");
    assert!(v["dropped"].as_u64().is_some());
}

#[test]
fn scale_mode_writes_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = Outputs { json: Some(dir.path().join("scale.json")), ..Default::default() };
    harness::scale(&[1, 1_000], Duration::from_secs(2), &out).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("scale.json")).unwrap()).unwrap();
    assert_eq!(v["mode"], "scale");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert!(r["portfolios"].as_u64().unwrap() > 0);
        assert!(r["p50_ns"].as_u64().unwrap() > 0);
        assert!(r["p99_ns"].as_u64().unwrap() > 0);
    }
}

/// The scale workload fires (it is not a run inside every band), and the candidate index fires
/// exactly what the full scan fires on it while evaluating far fewer portfolios per quote.
#[test]
fn scale_workload_fires_and_the_index_matches_the_full_scan() {
    use keel_bench::harness::scale;
    use keel_engine::CandidateMode;
    let (n, ticks) = (2_000, 30_000);
    let long = Duration::from_secs(3_600);
    let index = scale::measure_with(n, long, ticks, CandidateMode::Index).unwrap();
    let full = scale::measure_with(n, long, ticks, CandidateMode::FullScan).unwrap();
    for r in [&index, &full] {
        eprintln!(
            "{n} portfolios: p50 {} ns, p99 {} ns, {} intents on {} of {} quotes, {:.1} index evaluations per quote",
            r.p50_ns, r.p99_ns, r.fired, r.ticks_firing, r.ticks, r.evaluated_per_tick
        );
    }
    assert_eq!(index.ticks, ticks);
    assert!(index.fired > 0, "the workload must cross some bands");
    assert_eq!((index.fired, index.ticks_firing), (full.fired, full.ticks_firing));
    // A quote's asset is held by about a tenth of the portfolios (4 of 50 assets each).
    assert!(index.evaluated_per_tick < n as f64 / 100.0, "{}", index.evaluated_per_tick);
}
