//! Operator safety controls on the whole pipeline against the simulated market: a dry run submits
//! nothing, and the kill switch (its file and its HTTP endpoint) stops every new rebalance at once.

use std::time::{Duration, Instant};

use keel_bench::harness::scenario::Scenario;
use keel_bench::pipeline::{Pipeline, PipelineReport, PipelineSpec};
use keel_bench::safety::SafetySpec;
use keel_bench::sim::{SimMarket, SimStats, StartRegime};
use tokio_util::sync::CancellationToken;

async fn market() -> (Scenario, SimMarket) {
    let mut sc = Scenario::new(2).expect("scenario");
    sc.sim.start_regime = StartRegime::Volatile;
    sc.sim.volatile_vol = 0.004;
    sc.sim.volatile_drift = 0.0;
    sc.sim.p_volatile_to_calm = 0.0;
    sc.sim.tick_ms = 50;
    let sim = SimMarket::start(
        sc.sim.clone(),
        sc.tokens.clone(),
        sc.dexes.clone(),
        sc.pools.clone(),
        CancellationToken::new(),
    )
    .await
    .expect("simulated market");
    (sc, sim)
}

fn spec(sc: &Scenario, sim: &SimMarket, safety: SafetySpec) -> PipelineSpec {
    let mut spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).expect("spec");
    spec.safety = safety;
    spec
}

/// Runs until `done(report-so-far)` or the limit.
async fn run_until(pipeline: &Pipeline, limit: Duration, mut done: impl FnMut(&Pipeline) -> bool) {
    let t0 = Instant::now();
    while !done(pipeline) {
        assert!(t0.elapsed() < limit, "condition not reached in {limit:?}: {:?}", pipeline.snapshot().engine);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finish(pipeline: Pipeline, sim: SimMarket) -> (PipelineReport, SimStats) {
    let report = pipeline.shutdown().await;
    let stats = sim.stats();
    sim.shutdown().await;
    (report, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_builds_and_signs_but_submits_nothing() {
    let (sc, sim) = market().await;
    let pipeline = Pipeline::start(
        spec(&sc, &sim, SafetySpec { dry_run: true, ..Default::default() }),
        &tokio::runtime::Handle::current(),
    )
    .expect("pipeline");
    run_until(&pipeline, Duration::from_secs(20), |p| p.snapshot().engine.intents_emitted >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (report, stats) = finish(pipeline, sim).await;
    assert!(report.dry_run_bundles >= 1, "{:?}", report.exec);
    assert!(report.exec.txs_signed >= 1, "a dry run still signs");
    assert_eq!(stats.bundles_received, 0, "a dry run posted a bundle");
    assert_eq!(report.relays[0].accepted + report.relays[0].failed, 0);
    assert_eq!(report.exec.landed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_stops_new_rebalances_and_says_so() {
    let (sc, sim) = market().await;
    let dir = tempfile::tempdir().unwrap();
    let kill_file = dir.path().join("keel.kill");
    let safety = SafetySpec { dry_run: false, kill_file: Some(kill_file.clone()), control_port: Some(0) };
    let pipeline =
        Pipeline::start(spec(&sc, &sim, safety), &tokio::runtime::Handle::current()).expect("pipeline");
    let control = format!("http://{}", pipeline.control_addr().expect("control endpoint"));
    let http = reqwest::Client::new();
    let status = |body: serde_json::Value| {
        (body["halted"].as_bool().unwrap(), body["reason"].as_str().map(str::to_string))
    };
    let get: serde_json::Value =
        http.get(format!("{control}/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status(get), (false, None));

    // Let it rebalance normally first.
    run_until(&pipeline, Duration::from_secs(20), |p| p.snapshot().engine.intents_emitted >= 1).await;
    // Prometheus metrics on the same endpoint.
    let metrics = http.get(format!("{control}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in ["# TYPE keel_events_total counter", "keel_intents_total ", "keel_kill_switch_engaged 0"] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(metrics.contains("keel_relay_requests_total{relay=\"relay\",result=\"accepted\"}"), "{metrics}");
    let quotes: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keel_events_total{kind=\"quote\"} "))
        .and_then(|v| v.parse().ok())
        .expect("quote counter");
    assert!(quotes > 0.0);
    std::fs::write(&kill_file, b"stop").unwrap();
    run_until(&pipeline, Duration::from_secs(5), |p| p.kill_switch().is_engaged()).await;
    let got: serde_json::Value =
        http.get(format!("{control}/status")).send().await.unwrap().json().await.unwrap();
    let (halted, reason) = status(got);
    assert!(halted && reason.unwrap().contains("keel.kill"));
    // Prices keep moving: triggers keep firing, but nothing new reaches the router.
    let fired_at_kill = pipeline.snapshot().engine.intents_emitted;
    // (The snapshot is published every 200 ms; the switch's counter is live.)
    run_until(&pipeline, Duration::from_secs(25), |p| {
        p.kill_switch().status().blocked >= 2 && p.snapshot().engine.intents_emitted > fired_at_kill
    })
    .await;

    // The endpoint releases it (the file would re-engage it: remove it first).
    std::fs::remove_file(&kill_file).unwrap();
    let resumed: serde_json::Value =
        http.post(format!("{control}/resume")).send().await.unwrap().json().await.unwrap();
    assert!(!resumed["halted"].as_bool().unwrap());
    let killed: serde_json::Value =
        http.post(format!("{control}/kill")).send().await.unwrap().json().await.unwrap();
    assert_eq!(killed["reason"], "HTTP POST /kill");

    let (report, _) = finish(pipeline, sim).await;
    let blocked = report.kill.blocked;
    assert!(blocked >= 2);
    // Every intent the engine emitted was either handed to the router or stopped by the switch.
    assert_eq!(
        report.exec.intents + blocked,
        report.engine.intents.len() as u64,
        "{:?} {blocked}",
        report.exec
    );
}
