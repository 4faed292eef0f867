//! Getting bundles included, on the whole pipeline against the simulated market: a builder that
//! drops bundles tipping less than its floor includes a rebalance once the tip schedule has raised
//! the tip past it (and never without the schedule), and a kill switch engaged while a rebalance is
//! pending cancels it on the relay and stops its resends.

use std::time::{Duration, Instant};

use keel_bench::harness::scenario::Scenario;
use keel_runtime::pipeline::{Pipeline, PipelineReport};
use keel_sim::{SimMarket, SimStats};
use tokio_util::sync::CancellationToken;

const GWEI: u128 = 1_000_000_000;

async fn run(
    sc: &Scenario,
    limit: Duration,
    until: impl Fn(&Pipeline) -> bool,
) -> (PipelineReport, SimStats) {
    let sim = sc.start_market(CancellationToken::new()).await.expect("simulated market");
    let spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).expect("spec");
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    let t0 = Instant::now();
    while !until(&pipeline) && t0.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    finish(pipeline, sim).await
}

async fn finish(pipeline: Pipeline, sim: SimMarket) -> (PipelineReport, SimStats) {
    let report = pipeline.shutdown().await;
    let stats = sim.stats();
    sim.shutdown().await;
    (report, stats)
}

/// One portfolio; the builder wants 3 gwei of tip, Keel starts at 1 gwei.
fn tipping_scenario(step_pct: u32) -> Scenario {
    let mut sc = Scenario::volatile(1).expect("scenario");
    sc.sim.builder_min_tip_wei = 3_000_000_000;
    sc.router.priority_fee_wei = GWEI;
    sc.router.bundle_blocks = 8;
    sc.router.tip_step_pct = step_pct;
    sc.router.max_priority_fee_wei = Some(4 * GWEI);
    sc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_that_misses_blocks_lands_after_its_tip_rises() {
    // Without the schedule the tip stays 1 gwei: the first rebalance expires unlanded.
    let sc = tipping_scenario(0);
    let (report, stats) =
        run(&sc, Duration::from_secs(20), |p| p.snapshot().engine.outcomes.expired >= 1).await;
    assert_eq!((report.exec.landed, stats.bundles_landed), (0, 0), "{:?}", report.exec);
    assert!(report.exec.expired >= 1, "{:?}", report.exec);

    // 1 → 1.5 → 2.25 → 3.375 gwei: the fourth block targeted includes it.
    let sc = tipping_scenario(50);
    let (report, stats) =
        run(&sc, Duration::from_secs(20), |p| p.snapshot().engine.outcomes.landed >= 1).await;
    assert!(report.exec.landed >= 1 && stats.bundles_landed >= 1, "{:?} {stats:?}", report.exec);
    let inclusion = report.inclusion;
    assert!(inclusion.blocks.count() >= 1);
    // Every landing took at least four targeted blocks, and three re-signs at least.
    let first_try: u64 = inclusion.blocks.buckets().take_while(|(b, _)| *b < 4.0).map(|(_, n)| n).sum();
    assert_eq!(first_try, 0, "landed before the tip reached the floor: {inclusion:?}");
    assert!(inclusion.versions.sum() >= 4.0 * inclusion.versions.count() as f64, "{inclusion:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_pending_rebalance_cancels_it_and_stops_its_resends() {
    let mut sc = Scenario::volatile(1).expect("scenario");
    // A builder that never includes it: the bundle is resent every block until its deadline.
    sc.sim.builder_min_tip_wei = 1_000_000_000_000;
    sc.router.bundle_blocks = 40;
    let sim = sc.start_market(CancellationToken::new()).await.expect("market");
    let spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).expect("spec");
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    let t0 = Instant::now();
    while sim.stats().bundles_received < 3 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no resends: {:?}", sim.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pipeline.kill_switch().engage("test: kill during a pending rebalance");
    // The next head cancels it; give it that head and the cancel's round trip.
    let (head, t1) = (sim.head(), Instant::now());
    while sim.head() < head + 2 || pipeline.observer().cancels.lock().0 == 0 {
        assert!(t1.elapsed() < Duration::from_secs(5), "no cancel: {:?}", pipeline.observer().cancels.lock());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sim.stats().bundles_received;
    // Five more blocks: nothing more is sent.
    sim.wait_for_block(sim.head() + 5, Duration::from_secs(5)).await.expect("blocks");
    assert_eq!(sim.stats().bundles_received, sent, "resent after the kill");
    let (report, _) = finish(pipeline, sim).await;
    assert_eq!(report.exec.cancelled, 1, "{:?}", report.exec);
    assert_eq!(report.exec.landed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_that_fails_its_simulation_is_never_sent_and_one_that_passes_lands() {
    // The account cannot pay for gas: the relay's eth_callBundle refuses the bundle.
    let mut sc = Scenario::volatile(1).expect("scenario");
    sc.sim.accounts[0].eth = "0.0001".into();
    sc.router.presimulate = Some("relay".into());
    let (report, stats) =
        run(&sc, Duration::from_secs(20), |p| p.snapshot().engine.outcomes.expired >= 1).await;
    assert!(report.exec.sim_reverted >= 1, "{:?}", report.exec);
    assert_eq!(stats.bundles_received, 0, "a bundle that failed its simulation was sent: {stats:?}");
    assert_eq!(report.exec.landed, 0);

    // Funded, the same rebalance passes its simulation and lands.
    let mut sc = Scenario::volatile(1).expect("scenario");
    sc.router.presimulate = Some("relay".into());
    let (report, stats) =
        run(&sc, Duration::from_secs(20), |p| p.snapshot().engine.outcomes.landed >= 1).await;
    assert!(report.exec.landed >= 1 && stats.bundles_landed >= 1, "{:?} {stats:?}", report.exec);
    assert_eq!(report.exec.sim_reverted, 0);
}
