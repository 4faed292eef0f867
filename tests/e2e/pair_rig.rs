//! The rig of the single-DEX end-to-end tests (`v4_e2e`, `curve_e2e`): one 50/50 portfolio of two
//! tokens on anvil, the loopback relay, a quote feed, and the pipeline spec trading through one DEX.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::{DexConfig, PoolConfig};
use keel_router::signer::Signer;
use keel_runtime::pipeline::{Pipeline, PipelineSpec};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{AnvilChain, AnvilRelay, RelayOptions};
use keel_sim::quotes::QuoteServer;

use crate::anvil_e2e::router_config;

/// The portfolio account's dev key.
pub(crate) const PORTFOLIO_DEV_KEY: usize = 6;
/// The dev account that funds the portfolio and seeds pools.
pub(crate) const FUNDER: usize = 1;
/// The portfolio's drift band.
pub(crate) const BAND: f64 = 0.01;

/// `n` whole tokens of 18 decimals.
pub(crate) fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// The funder sends `amount` of `token` to `to`.
pub(crate) async fn fund(chain: &AnvilChain, token: Address, to: Address, amount: U256) {
    let funder = chain.wallet_provider(FUNDER);
    let r =
        IERC20::new(token, &funder).transfer(to, amount).send().await.unwrap().get_receipt().await.unwrap();
    assert!(r.status(), "funding {to} with {token} reverted");
}

/// Waits up to 30 s for a landed rebalance with the portfolio no longer busy.
pub(crate) async fn wait_landed(pipeline: &Pipeline) -> bool {
    wait_landed_count(pipeline, 1).await
}

/// Waits up to 30 s for `n` landed rebalances with the portfolio no longer busy.
pub(crate) async fn wait_landed_count(pipeline: &Pipeline, n: u64) -> bool {
    let t0 = Instant::now();
    loop {
        let snap = pipeline.snapshot();
        if snap.engine.outcomes.landed >= n && !snap.portfolios[0].busy {
            return true;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the tests run against: the loopback relay (a block every 250 ms), a quote feed with the
/// first held token's `<SYMBOL>USDT` at 1.0, and the spec of one 50/50 portfolio of `held` (a fresh
/// dev key funded 1000 of each, no approvals yet: ERC-20s by transfer, native ETH — the zero
/// address — by setting its balance to 1000 ETH) trading through one DEX, with the node feed.
pub(crate) struct PairRig {
    pub(crate) relay: AnvilRelay,
    pub(crate) quotes: QuoteServer,
    pub(crate) spec: PipelineSpec,
    pub(crate) me: Address,
}

/// The [`PairRig`]: `held` are the portfolio's two tokens (the first priced by the exchange, the other at
/// 1.0), `hubs` further tokens at 1.0 that pools pair them through, `dex` the one DEX of `pools`.
pub(crate) async fn pair_rig(
    chain: &AnvilChain,
    rpc_url: &str,
    held: [(&str, Address); 2],
    hubs: &[(&str, Address)],
    dex: DexConfig,
    pools: Vec<PoolConfig>,
) -> PairRig {
    let me = Signer::dev(PORTFOLIO_DEV_KEY).unwrap().address();
    for (_, t) in held {
        if t.is_zero() {
            let _: serde_json::Value =
                chain.provider().raw_request("anvil_setBalance".into(), (me, e18(1000))).await.unwrap();
        } else {
            fund(chain, t, me, e18(1000)).await;
        }
    }
    let instrument = format!("{}USDT", held[0].0);
    let relay = AnvilRelay::start(
        chain.http_url(),
        RelayOptions { block_interval: Some(Duration::from_millis(250)), ..Default::default() },
    )
    .await
    .expect("relay");
    let quotes = QuoteServer::start(&[(instrument.as_str(), 1.0)], Duration::from_millis(50)).await.unwrap();
    let tokens = held
        .iter()
        .chain(hubs)
        .map(|&(symbol, address)| TokenConfig {
            symbol: symbol.into(),
            address,
            decimals: 18,
            price: if symbol == held[0].0 {
                PriceSource::Instrument { symbol: instrument.clone() }
            } else {
                PriceSource::Fixed { fixed: 1.0 }
            },
        })
        .collect();
    let spec = PipelineSpec {
        engine: EngineConfig { stale_after_ms: 5_000, queue_capacity: 4_096, ..EngineConfig::default() },
        tokens,
        portfolios: vec![PortfolioConfig {
            name: "core".into(),
            account: me,
            targets: held.iter().map(|(s, _)| (s.to_string(), 0.5)).collect(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(BAND), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 1.0,
            min_trade_notional: 1.0,
            cost: Default::default(),
        }],
        router: router_config(chain.chain_id(), None, true),
        dexes: vec![dex],
        pools,
        relays: vec![crate::anvil_e2e::anvil_relay_config(&relay, 2_000)],
        reputation: Signer::dev(9).unwrap(),
        accounts: vec![Signer::dev(PORTFOLIO_DEV_KEY).unwrap()],
        binance: BinanceFeedConfig::new(quotes.url(), [instrument.as_str()]),
        rpc_url: rpc_url.to_string(),
        poll_ms: 50,
        node_ws_url: Some(chain.ws_url().to_string()),
        mempool: Default::default(),
        native_symbol: None,
        sample_every: Duration::from_millis(200),
        safety: Default::default(),
        journal: None,
        record: None,
        predictors: Vec::new(),
        registry: None,
    };
    PairRig { relay, quotes, spec, me }
}

/// The intents of `report` that landed with gas used, in outcome order.
pub(crate) fn landed_intents(report: &keel_runtime::pipeline::PipelineReport) -> Vec<u64> {
    report
        .outcomes
        .iter()
        .filter(|(_, o)| {
            matches!(o.status, keel_engine::event::OutcomeStatus::Landed { gas_used, .. } if gas_used > 0)
        })
        .map(|(_, o)| o.intent)
        .collect()
}

/// Waits up to 10 s until the chain poller has read `blocks` more blocks (a pool it reads is then
/// known as of a block after whatever came before the call).
pub(crate) async fn wait_polled(pipeline: &Pipeline, blocks: u64) {
    let polled = || pipeline.poll_stats().blocks.load(std::sync::atomic::Ordering::Relaxed);
    let (seen, t0) = (polled(), Instant::now());
    while polled() < seen + blocks {
        assert!(t0.elapsed() < Duration::from_secs(10), "the poller read no block in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
