//! Smoke test of the isolated latency harness (`latency --hot-cpu 1 --load-cpu 0 --journal both
//! --mode both`): the load side runs as another process on the load CPU, the hot threads on the hot
//! CPU, and both pipeline modes under both journal settings produce tick-to-wire samples. Timings
//! are not asserted.

use std::time::Duration;

use keel_bench::harness::{self, Outputs, isolated};
use keel_engine::config::IdleWait;

/// The rig of both tests: 4 portfolios, load on CPU 0, hot thread(s) on CPU 1, parked when idle,
/// the load side served by this package's `keel-bench`.
fn rig(fire_fraction: f64) -> isolated::RigOptions {
    isolated::RigOptions {
        idle: (IdleWait::Park, 0),
        exe: Some(env!("CARGO_BIN_EXE_keel-bench").into()),
        ..isolated::RigOptions::pinned(4, fire_fraction, 1, 0, true)
    }
}

#[test]
fn isolated_latency_runs_the_load_in_another_process_and_measures_both_modes_and_journal_settings() {
    assert!(
        harness::affinity::online_cpus() >= 2,
        "the isolated harness needs two CPUs, this machine has {}",
        harness::affinity::online_cpus()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Outputs {
        json: Some(dir.path().join("iso.json")),
        hgrm_dir: Some(dir.path().join("hgrm")),
        plot: None,
    };
    let cfg = isolated::IsolatedConfig {
        rig: rig(0.01),
        rate: 2_000,
        duration: Duration::from_secs(3),
        modes: vec![isolated::PipelineMode::Pipelined, isolated::PipelineMode::Inline],
    };
    isolated::validate(&cfg).unwrap();
    // This test's thread (and what it starts: the runtime, the pipeline) stays off the load CPU.
    let cpus = std::thread::spawn(move || {
        let cpus = isolated::restrict_process(cfg.rig.load_cpu).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(harness::latency_isolated(&cfg, &[false, true], &out)).unwrap();
        cpus
    })
    .join()
    .unwrap();
    assert!(!cpus.contains(&0), "{cpus:?}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("iso.json")).unwrap()).unwrap();
    assert_eq!(v["mode"], "latency_isolated");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let me = std::process::id() as u64;
    let order = [("pipelined", false), ("pipelined", true), ("inline", false), ("inline", true)];
    for (r, (mode, journal)) in runs.iter().zip(order) {
        assert_eq!((r["mode"].as_str(), r["journal"].as_bool()), (Some(mode), Some(journal)), "{r}");
        // Another process, started by this one, on the load CPU; the hot threads on the hot CPU.
        let (pid, ppid) = (r["load_pid"].as_u64().unwrap(), r["load_ppid"].as_u64().unwrap());
        assert_ne!(pid, me, "{r}");
        assert_eq!(ppid, me, "{r}");
        assert_eq!(r["pipeline_pid"].as_u64().unwrap(), me);
        assert_eq!(r["load_cpus"], serde_json::json!([0]), "{r}");
        assert_eq!(r["hot_cpus"], serde_json::json!([1]), "{r}");
        assert!(r["frames_sent"].as_u64().unwrap() > 0, "{r}");
        assert!(r["crossings"].as_u64().unwrap() > 0, "{r}");
        let summary: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_value(serde_json::Value::Object(
                r["summary"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].clone()))
                    .collect(),
            ))
            .unwrap();
        let t2w = &summary["tick_to_wire"];
        assert!(t2w["count"].as_u64().unwrap() > 0, "no tick-to-wire sample: {r}");
        assert_eq!(t2w["count"], r["attributed"]);
        let sub = if journal { "journal-on" } else { "journal-off" };
        let sub = if mode == "inline" { format!("inline-{sub}") } else { sub.to_string() };
        assert!(dir.path().join("hgrm").join(sub).join("tick_to_wire.hgrm").exists());
        if journal {
            assert!(r["journal_records"].as_u64().unwrap() > 0, "{r}");
        } else {
            assert!(r["journal_records"].is_null(), "{r}");
        }
    }
}

/// The isolated `throughput` ladder (`throughput --hot-cpu 1 --load-cpu 0 --mode both`): each
/// mode's pipeline reads every frame the other process sent and makes each an engine event, the
/// counts of both sides agree, and the ladder reports the rates that passed. Rates are low so
/// that a loaded CI machine passes; speed is `keel-bench`'s to measure.
#[test]
fn isolated_throughput_counts_every_frame_sent_by_the_other_process_in_both_modes() {
    use keel_bench::harness::ingest;
    let dir = tempfile::tempdir().unwrap();
    let out = Outputs { json: Some(dir.path().join("tp.json")), hgrm_dir: None, plot: None };
    let cfg = ingest::IngestConfig {
        rig: rig(0.001),
        rates: vec![5_000, 10_000],
        trial: Duration::from_millis(700),
        max_depth: 100_000,
        modes: vec![isolated::PipelineMode::Pipelined, isolated::PipelineMode::Inline],
    };
    cfg.rig.validate().unwrap();
    std::thread::spawn(move || {
        isolated::restrict_process(cfg.rig.load_cpu).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(harness::throughput_isolated(&cfg, &out)).unwrap();
    })
    .join()
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tp.json")).unwrap()).unwrap();
    assert_eq!(v["mode"], "throughput_isolated");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let me = std::process::id() as u64;
    for (r, mode) in runs.iter().zip(["pipelined", "inline"]) {
        assert_eq!(r["mode"], mode, "{r}");
        assert_ne!(r["load_pid"].as_u64().unwrap(), me, "{r}");
        assert_eq!(r["load_cpus"], serde_json::json!([0]), "{r}");
        assert_eq!(r["hot_cpus"], serde_json::json!([1]), "{r}");
        let trials = r["trials"].as_array().unwrap();
        assert!(!trials.is_empty(), "{r}");
        let first = &trials[0];
        assert_eq!(first["rate"], 5_000, "{r}");
        let sent = first["sent"].as_u64().unwrap();
        assert!(sent >= 2_000, "the blaster sent {sent} frames in 0.7 s at 5k/s: {r}");
        // The pipeline's count of frames read and events made equals the other process's count
        // of frames sent: nothing lost, nothing counted twice.
        assert_eq!(first["read"].as_u64().unwrap(), sent, "{r}");
        assert_eq!(first["events"].as_u64().unwrap(), sent, "{r}");
        assert_eq!(first["skipped"], 0, "{r}");
        assert_eq!(first["dropped"], 0, "{r}");
        let passed: Vec<u64> =
            trials.iter().take_while(|t| t["pass"] == true).map(|t| t["rate"].as_u64().unwrap()).collect();
        assert_eq!(r["frames_per_s"].as_u64().unwrap(), passed.last().copied().unwrap_or(0), "{r}");
    }
}
