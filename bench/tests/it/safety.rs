//! Operator safety controls on the whole pipeline against the simulated market: a dry run submits
//! nothing, the kill switch (its file and its HTTP endpoint) stops every new rebalance at once, and
//! the oracle guard trades nothing through a pool pushed away from the CEX price, and the daily
//! notional caps survive a restart.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use keel_bench::harness::scenario::Scenario;
use keel_runtime::control::ControlToken;
use keel_runtime::pipeline::{Pipeline, PipelineReport, PipelineSpec};
use keel_runtime::safety::SafetySpec;

/// The control endpoint's bearer token in these tests.
const TOKEN: &str = "test-control-token-0123456789";
use keel_sim::{SimMarket, SimStats};
use tokio_util::sync::CancellationToken;

async fn start_market(sc: &Scenario) -> SimMarket {
    sc.start_market(CancellationToken::new()).await.expect("simulated market")
}

async fn market() -> (Scenario, SimMarket) {
    let sc = Scenario::volatile(2).expect("scenario");
    let sim = start_market(&sc).await;
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
    // The control endpoint never runs unauthenticated.
    let open = SafetySpec { control_port: Some(0), ..Default::default() };
    let refused = Pipeline::start(spec(&sc, &sim, open), &tokio::runtime::Handle::current()).err();
    assert!(
        refused.is_some_and(|e| e.to_string().contains("control_token")),
        "a control port without a token was started"
    );
    let token = ControlToken::new(TOKEN).unwrap();
    let safety = SafetySpec {
        dry_run: false,
        kill_file: Some(kill_file.clone()),
        control_port: Some(0),
        control_token: Some(token),
        ..Default::default()
    };
    let pipeline =
        Pipeline::start(spec(&sc, &sim, safety), &tokio::runtime::Handle::current()).expect("pipeline");
    let control = format!("http://{}", pipeline.control_addr().expect("control endpoint"));
    let http = reqwest::Client::new();
    let status = |body: serde_json::Value| {
        (body["halted"].as_bool().unwrap(), body["reason"].as_str().map(str::to_string))
    };
    let get: serde_json::Value =
        http.get(format!("{control}/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(status(get), (false, None));
    // Without the token, or with a wrong one, the operator's routes answer 401 and change nothing.
    for (path, post) in [("kill", true), ("resume", true), ("status", false)] {
        let url = format!("{control}/{path}");
        for auth in [None, Some("wrong-token-0123456789abcdef")] {
            let mut req = if post { http.post(&url) } else { http.get(&url) };
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let code = req.send().await.unwrap().status();
            assert_eq!(code, reqwest::StatusCode::UNAUTHORIZED, "{path} with {auth:?}");
        }
    }
    assert!(!pipeline.kill_switch().is_engaged(), "an unauthorised /kill engaged the switch");

    // Let it rebalance normally first.
    run_until(&pipeline, Duration::from_secs(20), |p| p.snapshot().engine.intents_emitted >= 1).await;
    // Prometheus metrics on the same endpoint.
    let metrics = http.get(format!("{control}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "# TYPE keel_events counter",
        "keel_intents_total ",
        "keel_kill_switch_engaged 0",
        "keel_control_unauthorized_total 6",
    ] {
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
        http.get(format!("{control}/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    let (halted, reason) = status(got);
    assert!(halted && reason.unwrap().contains("keel.kill"));
    // Prices keep moving: triggers keep firing, but nothing new reaches the router.
    let fired_at_kill = pipeline.snapshot().engine.intents_emitted;
    // (The snapshot is published every 200 ms; the switch's counter is live.)
    run_until(&pipeline, Duration::from_secs(25), |p| {
        p.kill_switch().status().blocked >= 2 && p.snapshot().engine.intents_emitted > fired_at_kill
    })
    .await;

    // The file is level-triggered: removing it releases the switch by itself, within a poll.
    std::fs::remove_file(&kill_file).unwrap();
    run_until(&pipeline, Duration::from_secs(5), |p| !p.kill_switch().is_engaged()).await;
    // The endpoint holds it until /resume.
    let killed: serde_json::Value =
        http.post(format!("{control}/kill")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(killed["reason"], "HTTP POST /kill");
    assert_eq!(killed["held_by"], serde_json::json!(["operator"]));
    assert_eq!(killed["released_by"], serde_json::json!(["POST /resume"]));
    let resumed: serde_json::Value =
        http.post(format!("{control}/resume")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert!(!resumed["halted"].as_bool().unwrap());
    let killed: serde_json::Value =
        http.post(format!("{control}/kill")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
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

/// Appends formatted log lines to a shared buffer.
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("log buffer poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every WARN-or-worse line any pipeline of this test binary logs (one global subscriber).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buf);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || LogBuf(Arc::clone(&writer)))
            .try_init()
            .expect("the only global subscriber of this test binary");
        buf
    })
    .clone()
}

/// The value of `keel_oracle_guard_blocked_total{pool="POOL",reason="REASON"}` in `metrics`.
fn guard_count(metrics: &str, pool: &str, reason: &str) -> f64 {
    let prefix = format!("keel_oracle_guard_blocked_total{{pool=\"{pool}\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} series in:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_pushed_off_the_cex_price_is_not_traded_and_the_guard_says_why() {
    let logs = captured_logs();
    let mut sc = Scenario::new(1).expect("scenario");
    // The portfolio starts off target (T0 300 × 100 of 55 000: weight 0.545 vs 0.5), so its drift
    // trigger fires as soon as prices and balances are in; refused rebalances cool down for 0.5 s.
    sc.sim.accounts[0].balances.insert("T0".into(), "300".into());
    sc.portfolios[0].cooldown_secs = 0.5;
    sc.router.twap_window_secs = 3;
    sc.sim.tick_ms = 100;
    let sim = start_market(&sc).await;
    let (pool, name) = (sc.pools[0].address, sc.pools[0].name.clone());
    // T0 at 110 USDC in the pool, 100 on the exchange; the arbitrageur stays away.
    sim.hold_pool(pool, 1.10).expect("push the pool");
    let safety = SafetySpec {
        control_port: Some(0),
        control_token: Some(ControlToken::new(TOKEN).unwrap()),
        ..Default::default()
    };
    let pipeline =
        Pipeline::start(spec(&sc, &sim, safety), &tokio::runtime::Handle::current()).expect("pipeline");
    let control = format!("http://{}", pipeline.control_addr().expect("control endpoint"));
    let http = reqwest::Client::new();
    let metrics =
        || async { http.get(format!("{control}/metrics")).send().await.unwrap().text().await.unwrap() };

    // Refused, again and again, while the pool is off; nothing reaches the relay.
    let t0 = Instant::now();
    let mut text = metrics().await;
    while guard_count(&text, &name, "spot_vs_reference") < 3.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no refusals: {:?}\n{text}",
            pipeline.snapshot().engine
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = metrics().await;
    }
    let held_for = t0.elapsed().as_secs_f64();
    let refused = guard_count(&text, &name, "spot_vs_reference");
    assert_eq!(sim.stats().bundles_received, 0, "a bundle was submitted for the off-price pool");
    assert!(
        pipeline.observer().outcomes.lock().len() as f64 >= refused,
        "each refusal goes back to the engine as a Rejected outcome"
    );
    // The cooldown spaces the retries: no tight refire loop.
    assert!(refused <= held_for / 0.5 + 3.0, "{refused} refusals in {held_for:.1} s");
    // The log says which pool and why.
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = logged
        .lines()
        .find(|l| l.contains("oracle guard: rebalance blocked") && l.contains(&name))
        .unwrap_or_else(|| panic!("no guard line in the log:\n{logged}"));
    assert!(line.contains("spot_vs_reference") && line.contains("WARN"), "{line}");

    // Arbitrage brings the pool back; once its short TWAP agrees too, the rebalance goes through.
    sim.release_pool(pool).expect("release the pool");
    let t1 = Instant::now();
    while sim.stats().bundles_landed == 0 {
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "no rebalance after the release: {:?}",
            pipeline.snapshot().engine
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = metrics().await;
    let twap_refusals =
        guard_count(&text, &name, "twap_vs_reference") + guard_count(&text, &name, "spot_vs_twap");
    assert!(twap_refusals >= 1.0, "the TWAP, still off just after the release, held a retry back:\n{text}");
    let (report, stats) = finish(pipeline, sim).await;
    assert!(stats.bundles_landed >= 1);
    assert_eq!(
        report.exec.oracle_blocked as f64,
        guard_count(&text, &name, "spot_vs_reference") + twap_refusals
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_notional_caps_remember_the_previous_run_after_a_restart() {
    use keel_journal::{JournalConfig, Store, SyncPolicy};

    let (sc, sim) = market().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalConfig { sync: SyncPolicy::Off, ..JournalConfig::at(dir.path().join("keel.db")) };
    let runtime = tokio::runtime::Handle::current();

    // First run, no cap: let two rebalances land.
    let mut first = spec(&sc, &sim, SafetySpec::default());
    first.journal = Some(journal.clone());
    let pipeline = Pipeline::launch(first, &runtime).await.expect("first run");
    run_until(&pipeline, Duration::from_secs(40), |p| p.snapshot().engine.outcomes.landed >= 2).await;
    pipeline.shutdown().await;
    let store = Store::open_read_only(&journal.path).expect("journal");
    let charged = store.charged_since(0).expect("charged");
    let last_intent = store.max_intent().expect("max intent");
    drop(store);
    let used: f64 = charged.iter().map(|c| c.notional).sum();
    let largest = charged.iter().map(|c| c.notional).fold(0.0, f64::max);
    assert!(charged.len() >= 2 && used > largest, "{charged:?}");

    // Second run with a total daily cap that a fresh window would trade under (a rebalance is
    // about the size of the earlier ones), but the last 24 h already used all of it.
    let mut second = spec(&sc, &sim, SafetySpec::default());
    second.journal = Some(journal.clone());
    second.router.limits.max_daily_notional_total = Some(used + 1.0);
    let pipeline = Pipeline::launch(second, &runtime).await.expect("second run");
    run_until(&pipeline, Duration::from_secs(40), |p| p.snapshot().engine.outcomes.rejected >= 2).await;
    let (report, _) = finish(pipeline, sim).await;
    assert!(report.exec.risk_refused >= 2, "{:?}", report.exec);

    // Nothing the second run decided was signed; the daily cap refused them (the oracle guard may
    // refuse some first in this volatile market).
    let store = Store::open_read_only(&journal.path).expect("journal");
    let new: Vec<_> =
        store.recent(1000).expect("recent").into_iter().filter(|r| r.intent > last_intent).collect();
    assert!(new.iter().all(|r| r.state == "refused"), "{new:?}");
    let by_cap =
        new.iter().filter(|r| r.detail.as_deref().unwrap_or("").contains("max_daily_notional")).count();
    assert!(by_cap >= 2, "{new:?}");
}
