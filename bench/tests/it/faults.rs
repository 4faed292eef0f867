//! The whole pipeline under feed faults: the simulated market drops every exchange websocket 30
//! times while prices move and portfolios rebalance. The feed reconnects after every drop, the
//! pipeline keeps rebalancing, and no rebalance lands twice (checked against the simulated chain).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keel_bench::harness::scenario::Scenario;
use keel_engine::event::OutcomeStatus;
use keel_feeds::backoff::BackoffConfig;
use keel_feeds::ws::BinanceFeedConfig;
use keel_runtime::pipeline::Pipeline;
use tokio_util::sync::CancellationToken;

/// Websocket drops.
const DROPS: u64 = 30;
/// Upper bound on the test.
const LIMIT: Duration = Duration::from_secs(45);

#[test]
fn pipeline_survives_30_feed_drops_and_never_lands_a_rebalance_twice() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async { tokio::time::timeout(LIMIT, run()).await.expect("fault test finished in time") });
}

async fn run() {
    // Moving prices, so that portfolios drift out of their bands and rebalance.
    let sc = Scenario::volatile(2).expect("scenario");
    let cancel = CancellationToken::new();
    let sim = sc.start_market(cancel.clone()).await.expect("simulated market");
    let mut binance = BinanceFeedConfig::new(sim.ws_url(), sc.symbols());
    binance.backoff = BackoffConfig { base_ms: 5, max_ms: 50 };
    let accounts = sc.accounts().expect("accounts");
    let mut spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).expect("spec");
    spec.binance = binance;
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");

    // Each drop waits for the reconnect before the next, then lets the market run a little.
    let wait = |what: &str, start: Instant| {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
    };
    let t0 = Instant::now();
    while pipeline.feed_stats().connects == 0 {
        wait("the first connection", t0);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..DROPS {
        let before = pipeline.feed_stats();
        sim.drop_ws_connections();
        let t = Instant::now();
        while pipeline.feed_stats().connects <= before.connects {
            wait(&format!("reconnect {i}"), t);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(pipeline.feed_stats().frames > before.frames || i == 0, "no frame after reconnect {i}");
    }
    // Let the last rebalances settle.
    let t = Instant::now();
    while pipeline.snapshot().portfolios.iter().any(|p| p.busy) && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = pipeline.shutdown().await;
    let chain = sim.stats();
    let nonces: Vec<u64> = accounts.iter().map(|a| sim.nonce(a.address())).collect();
    sim.shutdown().await;
    cancel.cancel();

    // Reconnected after every drop.
    assert!(report.feed.reconnects >= DROPS, "{:?}", report.feed);
    assert!(report.feed.connects > DROPS, "{:?}", report.feed);

    // Kept rebalancing, and nothing landed twice: at most one landed outcome per intent, and the chain
    // saw no more landed bundles than there were intents.
    let intents = report.engine.intents.len() as u64;
    let mut landed: HashMap<u64, usize> = HashMap::new();
    for (_, o) in &report.outcomes {
        if matches!(o.status, OutcomeStatus::Landed { .. }) {
            *landed.entry(o.intent).or_default() += 1;
        }
    }
    assert!(landed.values().all(|&n| n == 1), "an intent landed twice: {landed:?}");
    assert!(!landed.is_empty(), "no rebalance landed during the faults: {:?} {chain:?}", report.exec);
    assert!(chain.bundles_landed <= intents, "{} bundles landed for {intents} intents", chain.bundles_landed);
    assert!(landed.len() as u64 <= chain.bundles_landed, "{landed:?} vs {chain:?}");
    assert_eq!(report.exec.landed, landed.len() as u64);
    // The accounts' nonces moved only by landed bundles: one or two transactions each (a swap, and
    // an approval before a token's first swap).
    assert!(nonces.iter().sum::<u64>() >= chain.bundles_landed, "{nonces:?} {chain:?}");
    assert!(nonces.iter().sum::<u64>() <= 2 * chain.bundles_landed, "{nonces:?} {chain:?}");
}
