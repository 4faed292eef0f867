//! The kill switches that watch the chain, each on the whole pipeline against the simulated market:
//! the condition it watches is made to happen, and the switch engages with that watch's reason,
//! counts the trip, lists the reason in `GET /status`, and stays engaged until an explicit resume.

use std::time::{Duration, Instant};

use keel_bench::harness::scenario::Scenario;
use keel_runtime::control::ControlToken;
use keel_runtime::pipeline::Pipeline;
use keel_runtime::safety::{KillSource, SafetySpec};
use keel_runtime::watch::{
    BaseFeeSpec, DepegSpec, LandingSpec, LiquiditySpec, OracleSpec, WatchKind, WatchSpec,
};
use keel_sim::SimMarket;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-control-token-0123456789";

async fn start(sc: &Scenario, watch: WatchSpec, relay_url: Option<String>) -> (Pipeline, SimMarket) {
    let sim = sc.start_market(CancellationToken::new()).await.expect("simulated market");
    let relay = relay_url.unwrap_or_else(|| sim.relay_url());
    let mut spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), relay).expect("spec");
    spec.safety = SafetySpec {
        control_port: Some(0),
        control_token: Some(ControlToken::new(TOKEN).unwrap()),
        watch,
        ..Default::default()
    };
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    (pipeline, sim)
}

/// Waits until the chain watches hold the switch; returns its reasons.
async fn tripped(pipeline: &Pipeline, limit: Duration) -> Vec<String> {
    let t0 = Instant::now();
    while !pipeline.kill_switch().is_held_by(KillSource::Chain) {
        assert!(t0.elapsed() < limit, "no trip in {limit:?}: {:?}", pipeline.snapshot().engine);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pipeline.kill_switch().status().reasons
}

async fn stop(pipeline: Pipeline, sim: SimMarket) {
    pipeline.shutdown().await;
    sim.shutdown().await;
}

fn only(reasons: &[String], prefix: &str) {
    assert!(reasons.len() == 1 && reasons[0].starts_with(prefix), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_fee_above_its_cap_engages_the_switch_until_resumed_and_says_so() {
    let mut sc = Scenario::volatile(1).expect("scenario");
    // 100 gwei at the start, falling 12.5% a mostly empty block (EIP-1559): above 0.5 gwei for
    // about 39 blocks (8 s), which covers both trips below.
    sc.sim.base_fee_wei = 100_000_000_000;
    let watch = WatchSpec { base_fee: Some(BaseFeeSpec { max_gwei: 0.5, blocks: 3 }), ..Default::default() };
    let (pipeline, sim) = start(&sc, watch, None).await;
    let reasons = tripped(&pipeline, Duration::from_secs(15)).await;
    only(&reasons, "base fee: ");
    assert!(reasons[0].contains("above the cap of 0.5 gwei for 3 blocks"), "{reasons:?}");
    // The reason is in GET /status, the trip in the metrics.
    let control = format!("http://{}", pipeline.control_addr().expect("control"));
    let http = reqwest::Client::new();
    let status: serde_json::Value =
        http.get(format!("{control}/status")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["reasons"][0].as_str(), Some(reasons[0].as_str()), "{status}");
    assert!(status["held_by"].as_array().unwrap().iter().any(|s| s == "chain"), "{status}");
    let metrics = http.get(format!("{control}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("keel_kill_switch_trips_total{watch=\"base_fee\"} 1\n"), "{metrics}");
    // It stays engaged: nothing releases it but a resume.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(pipeline.kill_switch().is_engaged());
    assert_eq!(pipeline.watch_stats().trips(WatchKind::BaseFee), 1, "a latched watch does not re-count");
    let resume = http.post(format!("{control}/resume")).bearer_auth(TOKEN).send().await.unwrap();
    assert!(resume.status().is_success());
    assert!(!pipeline.kill_switch().is_held_by(KillSource::Chain));
    // The fee is still high: fresh evidence (three more heads) trips it again.
    tripped(&pipeline, Duration::from_secs(15)).await;
    assert_eq!(pipeline.watch_stats().trips(WatchKind::BaseFee), 2);
    stop(pipeline, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_off_its_peg_on_the_exchange_or_in_a_pool_engages_the_switch() {
    // On the exchange: T0 starts at 100 and moves 0.4% a tick; a 0.1% band around 100 breaks at once.
    let sc = Scenario::volatile(1).expect("scenario");
    let depeg = |token: &str, peg: f64, max_deviation: f64| WatchSpec {
        depeg: vec![DepegSpec { token: token.into(), peg, max_deviation }],
        ..Default::default()
    };
    let (pipeline, sim) = start(&sc, depeg("T0", 100.0, 0.001), None).await;
    only(&tripped(&pipeline, Duration::from_secs(15)).await, "depeg: T0 at ");
    assert!(pipeline.kill_switch().status().reasons[0].contains("on the exchange"));
    assert_eq!(pipeline.watch_stats().trips(WatchKind::Depeg), 1);
    stop(pipeline, sim).await;

    // In a pool: USDC's own price is fixed, but the pool prices T0 at 110 USDC while the exchange
    // says 100: USDC is worth about 0.91 there.
    let mut sc = Scenario::volatile(1).expect("scenario");
    sc.sim.volatile_vol = 0.0005;
    let sim = sc.start_market(CancellationToken::new()).await.expect("market");
    sim.hold_pool(sc.pools[0].address, 1.10).expect("push the pool");
    let mut spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).expect("spec");
    spec.safety.watch = depeg("USDC", 1.0, 0.05);
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    let reasons = tripped(&pipeline, Duration::from_secs(15)).await;
    only(&reasons, "depeg: USDC at 0.9");
    assert!(reasons[0].contains("on pool t0-usdc"), "{reasons:?}");
    stop(pipeline, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_drained_of_liquidity_engages_the_switch() {
    let sc = Scenario::volatile(1).expect("scenario");
    let watch =
        WatchSpec { liquidity: Some(LiquiditySpec { max_drop: 0.3, blocks: 20 }), ..Default::default() };
    let (pipeline, sim) = start(&sc, watch, None).await;
    // A few heads at full liquidity first: the arbitrageur's trades move it by far less than 30%.
    let t0 = Instant::now();
    while sim.head() < 5 {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pipeline.kill_switch().is_engaged(), "{:?}", pipeline.kill_switch().status());
    sim.drain_pool(sc.pools[0].address, 0.5).expect("drain");
    let reasons = tripped(&pipeline, Duration::from_secs(10)).await;
    only(&reasons, "liquidity: pool t0-usdc fell ");
    assert_eq!(pipeline.watch_stats().trips(WatchKind::Liquidity), 1);
    stop(pipeline, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_that_stop_landing_engage_the_switch() {
    let sc = Scenario::volatile(2).expect("scenario");
    // The relay is gone: every bundle expires after its blocks.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    let watch = WatchSpec { landing: Some(LandingSpec { last: 2, min_rate: 0.5 }), ..Default::default() };
    let (pipeline, sim) = start(&sc, watch, Some(url)).await;
    let reasons = tripped(&pipeline, Duration::from_secs(20)).await;
    only(&reasons, "landing rate: 0 of the last 2 rebalances landed");
    assert!(pipeline.snapshot().engine.outcomes.expired >= 2);
    stop(pipeline, sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_guard_refusing_a_pool_block_after_block_engages_the_switch() {
    let mut sc = Scenario::volatile(1).expect("scenario");
    // As in the guard's own test: holdings off target so the trigger fires at once, a short TWAP.
    sc.sim.accounts[0].balances.insert("T0".into(), "300".into());
    sc.router.twap_window_secs = 3;
    let sim = sc.start_market(CancellationToken::new()).await.expect("market");
    sim.hold_pool(sc.pools[0].address, 1.10).expect("push the pool");
    let mut spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).expect("spec");
    spec.safety.watch = WatchSpec { oracle: Some(OracleSpec { blocks: 3 }), ..Default::default() };
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    let reasons = tripped(&pipeline, Duration::from_secs(20)).await;
    only(&reasons, "oracle guard: pool t0-usdc refused at 3 heads in a row");
    assert_eq!(sim.stats().bundles_received, 0);
    stop(pipeline, sim).await;
}
