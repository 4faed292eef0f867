//! Many portfolios through the full pipeline, each on its own account: 1,000 on the simulated
//! market and 100 on anvil with the real Uniswap contracts. Every portfolio starts outside its
//! band and must land at least one rebalance; nothing may be dropped, and the chain is read with
//! one batched request per block.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use keel_bench::harness::book::{Book, BookConfig};
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, TriggerConfig};
use keel_engine::event::OutcomeStatus;
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::signer::Signer;
use keel_runtime::pipeline::{Pipeline, PipelineReport, PipelineSpec};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{AnvilChain, AnvilRelay, RelayOptions};
use keel_sim::quotes::QuoteServer;
use tokio_util::sync::CancellationToken;

use crate::anvil_e2e::{Market, market, router_config};

/// Portfolios that have a landed outcome so far (the observer keeps the newest 10,000 outcomes:
/// more than these tests produce).
fn landed_portfolios(pipeline: &Pipeline) -> HashSet<u32> {
    pipeline
        .observer()
        .outcomes
        .lock()
        .iter()
        .filter(|(_, o)| matches!(o.status, OutcomeStatus::Landed { .. }))
        .map(|(_, o)| o.portfolio.0)
        .collect()
}

/// Waits until every one of `n` portfolios has landed a rebalance, or `limit`.
async fn until_all_landed(pipeline: &Pipeline, n: usize, limit: Duration) -> usize {
    let t0 = Instant::now();
    loop {
        let landed = landed_portfolios(pipeline).len();
        if landed == n || t0.elapsed() > limit {
            return landed;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn assert_nothing_dropped(report: &PipelineReport) {
    assert_eq!(report.feed.queue_full, 0, "exchange frames dropped");
    assert_eq!(report.event_queue.dropped, 0, "engine events dropped");
    assert_eq!(report.router_queue.dropped, 0, "router inputs dropped");
    assert_eq!(report.outcomes_dropped, 0, "outcomes dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_portfolios_each_land_a_rebalance_on_the_simulated_market() {
    const N: usize = 1_000;
    let mut cfg = BookConfig::new(N);
    cfg.block_ms = 1_000;
    // A rebalance that expires (a debug build signing 1,000 of them in one burst on a loaded
    // machine misses blocks) is retried after the cooldown.
    cfg.cooldown_secs = 5.0;
    cfg.vol = 0.000_5;
    let book = Book::new(&cfg).unwrap();
    let sim = book.start_market(CancellationToken::new()).await.unwrap();
    let spec = book.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).unwrap();
    let t0 = Instant::now();
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).unwrap();
    let landed = until_all_landed(&pipeline, N, Duration::from_secs(75)).await;
    let took = t0.elapsed();
    let blocks = pipeline.poll_stats().blocks.load(std::sync::atomic::Ordering::Relaxed);
    let report = pipeline.shutdown().await;
    let stats = sim.stats();
    sim.shutdown().await;
    eprintln!(
        "{landed} of {N} portfolios landed a rebalance in {took:?}; {blocks} blocks read in {} batches; exec {:?}",
        stats.rpc_batches, report.exec
    );
    assert_eq!(landed, N, "portfolios without a landed rebalance; exec {:?}", report.exec);
    assert_nothing_dropped(&report);
    assert_eq!(stats.rpc_single_state_reads, 0, "every state read is batched");
    assert!(stats.rpc_batches <= blocks + 2, "{} batches for {blocks} blocks", stats.rpc_batches);
}

const ANVIL_PORTFOLIOS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_portfolios_each_land_a_rebalance_on_anvil() {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let Market { tokens, dexes, pools, tka, tkb, pair, v3, .. } = market(&chain);
    let signers: Vec<Signer> =
        (0..ANVIL_PORTFOLIOS as u64).map(|i| Signer::derived_dev(1_000 + i).unwrap()).collect();
    // Fund each account: gas money, and 6/4 or 4/6 whole TKA/TKB (alternately, so that the
    // rebalances' trades net out in the pools), 10 points off the 50/50 target.
    let funder = chain.wallet_provider(1);
    let unit = U256::from(10u64).pow(U256::from(17u64)); // 0.1 token
    for (i, s) in signers.iter().enumerate() {
        let me: Address = s.address();
        chain.provider().anvil_set_balance(me, U256::from(10u64).pow(U256::from(19u64))).await.unwrap();
        let (a, b) = if i % 2 == 0 { (60u64, 40u64) } else { (40, 60) };
        for (t, n) in [(tka, a), (tkb, b)] {
            IERC20::new(t, &funder)
                .transfer(me, unit * U256::from(n))
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
        }
    }
    let relay = AnvilRelay::start(
        chain.http_url(),
        RelayOptions { block_interval: Some(Duration::from_millis(500)), ..Default::default() },
    )
    .await
    .expect("relay");
    let (v2_mid, _) = chain.mids(tka, pair, v3).await.unwrap();
    let quotes = QuoteServer::start(&[("TKAUSDT", v2_mid)], Duration::from_millis(100)).await.unwrap();
    let portfolios = signers
        .iter()
        .enumerate()
        .map(|(i, s)| PortfolioConfig {
            name: format!("p{i}"),
            account: s.address(),
            targets: [("TKA".to_string(), 0.5), ("TKB".to_string(), 0.5)].into_iter().collect(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(0.03), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 3.0,
            min_trade_notional: 0.01,
            cost: Default::default(),
        })
        .collect();
    let spec = PipelineSpec {
        engine: EngineConfig { stale_after_ms: 5_000, queue_capacity: 1 << 16, ..EngineConfig::default() },
        tokens,
        portfolios,
        router: router_config(chain.chain_id(), None, true),
        dexes,
        pools,
        relays: vec![crate::anvil_e2e::anvil_relay_config(&relay, 5_000)],
        reputation: Signer::dev(9).unwrap(),
        accounts: signers,
        binance: BinanceFeedConfig::new(quotes.url(), ["TKAUSDT"]),
        rpc_url: chain.http_url().to_string(),
        poll_ms: 50,
        node_ws_url: Some(chain.ws_url().to_string()),
        mempool: Default::default(),
        native_symbol: Some("WETH".into()),
        sample_every: Duration::from_millis(200),
        safety: Default::default(),
        journal: None,
        record: None,
        predictors: Vec::new(),
        registry: None,
    };
    let t0 = Instant::now();
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    let landed = until_all_landed(&pipeline, ANVIL_PORTFOLIOS, Duration::from_secs(60)).await;
    let took = t0.elapsed();
    let poll = std::sync::Arc::clone(pipeline.poll_stats());
    let report = pipeline.shutdown().await;
    eprintln!(
        "{landed} of {ANVIL_PORTFOLIOS} portfolios landed a rebalance on anvil in {took:?}; heads: {} streamed, \
         {} polled; exec {:?}",
        poll.ws_heads.load(std::sync::atomic::Ordering::Relaxed),
        poll.polled_heads.load(std::sync::atomic::Ordering::Relaxed),
        report.exec
    );
    assert_eq!(landed, ANVIL_PORTFOLIOS, "portfolios without a landed rebalance; exec {:?}", report.exec);
    assert_nothing_dropped(&report);
    assert!(poll.ws_heads.load(std::sync::atomic::Ordering::Relaxed) > 0, "heads come from newHeads");
    drop((quotes, relay, chain));
}
