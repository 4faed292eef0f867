//! End to end on a real chain: anvil running the real Uniswap V2 and V3 contracts (from the pinned
//! npm artifacts), Keel's full pipeline (exchange feed, websocket node feed with exact V3 state,
//! engine, router, relay client) and the loopback Flashbots relay that lands bundles on anvil.
//!
//! A portfolio at its 50/50 target is pushed off target when another account sells TKA into the
//! pools and the exchange price follows; Keel must detect the drift, route across the V2 and V3
//! pools, approve, swap, land the bundle in its target block, and leave the on-chain balances inside
//! the band. A stalled node websocket (the poller's heads go on) makes the pools it keeps stale: no
//! trade until it flows again. Needs anvil: `make chain-deps` (the test fails loudly without it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256, aliases::U24, aliases::U160};
use alloy::providers::Provider;
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::OutcomeStatus;
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::{DexConfig, DexKind, PoolConfig, RelayConfig, RouterConfig};
use keel_router::signer::Signer;
use keel_runtime::pipeline::{Pipeline, PipelineSpec};
use keel_sim::anvil::contracts::rpc::{IERC20, ISwapRouter, IUniswapV2Router02};
use keel_sim::anvil::{AnvilChain, AnvilRelay, RelayOptions, RpcRecorder};
use keel_sim::quotes::QuoteServer;

const PORTFOLIO_DEV_KEY: usize = 6;
const TRADER: usize = 3;
const BAND: f64 = 0.01;

fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

fn whole(x: U256) -> f64 {
    f64::from(x) / 1e18
}

/// Everything a real-chain test runs: anvil, the relay, the recorder, the quote server and Keel.
struct Rig {
    chain: AnvilChain,
    relay: AnvilRelay,
    recorder: RpcRecorder,
    quotes: QuoteServer,
    pipeline: Pipeline,
    tka: Address,
    tkb: Address,
    me: Address,
    pool_fee: u32,
    pair: Address,
    v3: Address,
    /// The stalling proxy in front of the node websocket, when asked for.
    ws_proxy: Option<StallingProxy>,
}

/// A TCP proxy in front of the node's websocket that can stall: while frozen, connections stay
/// open but no byte flows either way (a hung node, or a network path lost without a reset).
/// Dropping it closes every connection.
struct StallingProxy {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let frozen = Arc::new(AtomicBool::new(false));
        let gate = Arc::clone(&frozen);
        let task = tokio::spawn(async move {
            // Dropped with the task: aborts every connection's pumps.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else { continue };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                conns.spawn(pump(ri, wo, Arc::clone(&gate)));
                conns.spawn(pump(ro, wi, Arc::clone(&gate)));
            }
        });
        Self { addr, frozen, task }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::Release);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding every byte while `frozen`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let held = || async {
        while frozen.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        held().await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        held().await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Starts anvil and Keel with a 50/50 TKA/TKB portfolio on a fresh account; blocks every
/// `block_interval` (or on demand), `defer` as `defer_on_pending_volume`; with `stalling_ws`, the
/// node websocket goes through a [`StallingProxy`].
/// The TKA/TKB market on anvil as Keel is configured for it: tokens (TKA priced by the exchange's
/// TKAUSDT, TKB at 1, WETH at 2000), the V2 and V3 DEXes and three pools (TKA/TKB on V2 and V3,
/// WETH/TKA on V2).
pub(crate) struct Market {
    pub tokens: Vec<TokenConfig>,
    pub dexes: Vec<DexConfig>,
    pub pools: Vec<PoolConfig>,
    pub tka: Address,
    pub tkb: Address,
    /// The TKA/TKB V2 pair.
    pub pair: Address,
    /// The TKA/TKB V3 pool and its fee.
    pub v3: Address,
    pub v3_fee: u32,
}

pub(crate) fn market(chain: &AnvilChain) -> Market {
    let a = chain.addresses().clone();
    let tka = a.token("TKA").unwrap();
    let tkb = a.token("TKB").unwrap();
    let pair = a.v2_pairs.iter().find(|p| p.name == "TKA/TKB" || p.name == "TKB/TKA").unwrap().clone();
    let pool = a.v3_pools.iter().find(|p| p.name == pair.name).unwrap().clone();
    let weth_pair = a.v2_pairs.iter().find(|p| p.name.contains("WETH")).unwrap().clone();
    let sym = |addr: Address| {
        if addr == tka {
            "TKA".to_string()
        } else if addr == tkb {
            "TKB".to_string()
        } else {
            "WETH".to_string()
        }
    };
    let tokens = vec![
        TokenConfig {
            symbol: "TKA".into(),
            address: tka,
            decimals: 18,
            price: PriceSource::Instrument { symbol: "TKAUSDT".into() },
        },
        TokenConfig {
            symbol: "TKB".into(),
            address: tkb,
            decimals: 18,
            price: PriceSource::Fixed { fixed: 1.0 },
        },
        TokenConfig {
            symbol: "WETH".into(),
            address: a.weth,
            decimals: 18,
            price: PriceSource::Fixed { fixed: 2000.0 },
        },
    ];
    let dexes = vec![
        DexConfig {
            name: "uniswap-v2".into(),
            kind: DexKind::UniswapV2,
            router: a.v2_router,
            factory: Some(a.v2_factory),
            via: Default::default(),
        },
        DexConfig {
            name: "uniswap-v3".into(),
            kind: DexKind::UniswapV3,
            router: a.v3_swap_router,
            factory: Some(a.v3_factory),
            via: Default::default(),
        },
    ];
    let pools = vec![
        PoolConfig {
            name: "v2-tka-tkb".into(),
            dex: "uniswap-v2".into(),
            address: pair.address,
            token0: sym(pair.token0),
            token1: sym(pair.token1),
            fee: Some(30),
            gas: None,
            tick_spacing: None,
            curve_indices: None,
            pool_id: None,
            flavour: None,
            hooks: None,
        },
        PoolConfig {
            name: "v3-tka-tkb".into(),
            dex: "uniswap-v3".into(),
            address: pool.address,
            token0: sym(pool.token0),
            token1: sym(pool.token1),
            fee: Some(pool.fee),
            gas: None,
            tick_spacing: None,
            curve_indices: None,
            pool_id: None,
            flavour: None,
            hooks: None,
        },
        PoolConfig {
            name: "v2-weth-tka".into(),
            dex: "uniswap-v2".into(),
            address: weth_pair.address,
            token0: sym(weth_pair.token0),
            token1: sym(weth_pair.token1),
            fee: Some(30),
            gas: None,
            tick_spacing: None,
            curve_indices: None,
            pool_id: None,
            flavour: None,
            hooks: None,
        },
    ];
    Market { tokens, dexes, pools, tka, tkb, pair: pair.address, v3: pool.address, v3_fee: pool.fee }
}

/// The `[[relays]]` entry of the loopback relay `relay` (fast path on), answering within
/// `timeout_ms`.
pub(crate) fn anvil_relay_config(relay: &AnvilRelay, timeout_ms: u64) -> RelayConfig {
    RelayConfig {
        name: "anvil-relay".into(),
        url: relay.url().to_string(),
        timeout_ms,
        fast_path: true,
        ca_cert: None,
        coinbase: None,
    }
}

/// Checks that Keel sent every transaction to the relay, which refused none, and none to the node
/// (what `recorder` saw).
pub(crate) fn assert_sent_only_through_the_relay(recorder: &RpcRecorder, relay: &AnvilRelay) {
    let methods = recorder.methods();
    assert!(
        !methods.iter().any(|m| m == "eth_sendRawTransaction" || m == "eth_sendTransaction"),
        "Keel broadcast a transaction to the node: {methods:?}"
    );
    assert_eq!(relay.rejected_requests(), 0, "the relay refused a request");
}

/// The router settings of the anvil tests.
pub(crate) fn router_config(chain_id: u64, defer: Option<f64>, netting: bool) -> RouterConfig {
    RouterConfig {
        chain_id,
        slippage_bps: 100,
        swap_deadline_secs: 300,
        bundle_blocks: 10,
        priority_fee_wei: 1_000_000_000,
        base_fee_multiplier: 2,
        max_pool_deviation: 0.15,
        twap_window_secs: keel_router::config::DEFAULT_TWAP_WINDOW_SECS,
        max_pool_age_blocks: keel_router::config::DEFAULT_MAX_POOL_AGE_BLOCKS,
        defer_on_pending_volume: defer,
        limits: Default::default(),
        netting,
        presign_pool: keel_router::config::DEFAULT_PRESIGN_POOL,
        tip_step_pct: 0,
        max_priority_fee_wei: None,
        presimulate: None,
        target_blocks: 1,
        gas_reserve_wei: keel_router::config::DEFAULT_GAS_RESERVE_WEI,
    }
}

async fn rig(block_interval: Option<Duration>, defer: Option<f64>, stalling_ws: bool) -> Rig {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let Market { tokens, dexes, pools, tka, tkb, pair, v3, v3_fee } = market(&chain);

    // The portfolio account: a fresh dev key (no approvals yet), funded 1000 TKA + 1000 TKB.
    let me = Signer::dev(PORTFOLIO_DEV_KEY).unwrap().address();
    let funder = chain.wallet_provider(1);
    for t in [tka, tkb] {
        IERC20::new(t, &funder).transfer(me, e18(1000)).send().await.unwrap().get_receipt().await.unwrap();
    }

    let relay = AnvilRelay::start(chain.http_url(), RelayOptions { block_interval, ..Default::default() })
        .await
        .expect("relay");
    let (v2_mid, _) = chain.mids(tka, pair, v3).await.unwrap();
    // Keel's node connection goes through a recorder: it must never send a transaction itself.
    let recorder = RpcRecorder::start(chain.http_url()).await.expect("rpc recorder");
    let quotes = QuoteServer::start(&[("TKAUSDT", v2_mid)], Duration::from_millis(50)).await.unwrap();
    let ws_proxy = if stalling_ws {
        let upstream = chain.ws_url().trim_start_matches("ws://").parse().expect("anvil ws address");
        Some(StallingProxy::start(upstream).await)
    } else {
        None
    };
    let node_ws_url = ws_proxy.as_ref().map_or_else(|| chain.ws_url().to_string(), StallingProxy::url);
    let portfolios = vec![PortfolioConfig {
        name: "core".into(),
        account: me,
        targets: [("TKA".to_string(), 0.5), ("TKB".to_string(), 0.5)].into_iter().collect(),
        triggers: vec![TriggerConfig::Drift { abs_band: Some(BAND), rel_band: None }],
        mode: PlanMode::ToTarget,
        cooldown_secs: 1.0,
        min_trade_notional: 1.0,
        cost: Default::default(),
    }];
    let spec = PipelineSpec {
        engine: EngineConfig { stale_after_ms: 5_000, queue_capacity: 4_096, ..EngineConfig::default() },
        tokens,
        portfolios,
        router: router_config(chain.chain_id(), defer, true),
        dexes,
        pools,
        relays: vec![crate::anvil_e2e::anvil_relay_config(&relay, 2_000)],
        reputation: Signer::dev(9).unwrap(),
        accounts: vec![Signer::dev(PORTFOLIO_DEV_KEY).unwrap()],
        binance: BinanceFeedConfig::new(quotes.url(), ["TKAUSDT"]),
        rpc_url: recorder.url().to_string(),
        poll_ms: 50,
        node_ws_url: Some(node_ws_url),
        mempool: Default::default(),
        native_symbol: Some("WETH".into()),
        sample_every: Duration::from_millis(200),
        safety: Default::default(),
        journal: None,
        record: None,
        predictors: Vec::new(),
        registry: None,
    };
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    Rig { chain, relay, recorder, quotes, pipeline, tka, tkb, me, pool_fee: v3_fee, pair, v3, ws_proxy }
}

/// Another account sells TKA into both pools; returns the mid price between them (TKB per TKA),
/// which the exchange is then set to follow.
async fn sell_tka_into_both_pools(rig: &Rig) -> f64 {
    let (chain, tka, tkb) = (&rig.chain, rig.tka, rig.tkb);
    let a = chain.addresses().clone();
    let trader = chain.wallet_provider(TRADER);
    let trader_addr = chain.address(TRADER);
    IUniswapV2Router02::new(a.v2_router, &trader)
        .swapExactTokensForTokens(
            e18(500),
            U256::ZERO,
            vec![tka, tkb],
            trader_addr,
            U256::from(4_000_000_000u64),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let params = ISwapRouter::ExactInputSingleParams {
        tokenIn: tka,
        tokenOut: tkb,
        fee: U24::from(rig.pool_fee),
        recipient: trader_addr,
        deadline: U256::from(4_000_000_000u64),
        amountIn: e18(300),
        amountOutMinimum: U256::ZERO,
        sqrtPriceLimitX96: U160::ZERO,
    };
    ISwapRouter::new(a.v3_swap_router, &trader)
        .exactInputSingle(params)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let (v2_mid, v3_mid) = chain.mids(tka, rig.pair, rig.v3).await.unwrap();
    let cex = (v2_mid + v3_mid) / 2.0;
    assert!(cex < 0.97, "the swaps should have moved TKA down: {v2_mid} {v3_mid}");
    cex
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_a_real_portfolio_through_the_anvil_relay() {
    let rig = rig(Some(Duration::from_millis(250)), None, false).await;

    // At target: nothing fires.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = rig.pipeline.snapshot();
    assert_eq!(snap.engine.intents_emitted, 0, "fired while on target: {snap:?}");
    assert!(snap.portfolios[0].max_drift.unwrap() < BAND / 4.0, "{snap:?}");

    // Another account sells TKA into both pools; the exchange price follows the pools.
    let cex = sell_tka_into_both_pools(&rig).await;
    let Rig { chain, relay, recorder, quotes, pipeline, tka, tkb, me, .. } = rig;
    let a = chain.addresses().clone();
    quotes.set_price("TKAUSDT", cex);

    // Keel detects the drift and lands a rebalance.
    let t0 = Instant::now();
    let landed = loop {
        let snap = pipeline.snapshot();
        if snap.engine.outcomes.landed >= 1 && !snap.portfolios[0].busy {
            break true;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = pipeline.shutdown().await;
    assert!(landed, "no rebalance landed: exec {:?}, outcomes {:?}", report.exec, report.outcomes);
    assert!(
        report
            .outcomes
            .iter()
            .any(|(_, o)| matches!(o.status, OutcomeStatus::Landed { gas_used, .. } if gas_used > 0))
    );
    assert!(report.exec.approvals >= 1, "a fresh account must approve the routers first");

    // On-chain balances are back inside the band at the exchange price.
    let ha = whole(chain.balance_of(tka, me).await.unwrap());
    let hb = whole(chain.balance_of(tkb, me).await.unwrap());
    let w = ha * cex / (ha * cex + hb);
    assert!((w - 0.5).abs() < BAND, "weight of TKA after the rebalance: {w} (TKA {ha}, TKB {hb})");
    assert!(ha > 1000.0, "Keel should have bought TKA: {ha}");
    // The approvals are on chain.
    let allowance = IERC20::new(tkb, chain.provider()).allowance(me, a.v2_router).call().await.unwrap();
    let allowance3 = IERC20::new(tkb, chain.provider()).allowance(me, a.v3_swap_router).call().await.unwrap();
    assert!(allowance > U256::ZERO || allowance3 > U256::ZERO);
    // Keel sent nothing to the node itself: every transaction of the account came through the relay.
    let nonce = chain.provider().get_transaction_count(me).await.unwrap();
    assert!(nonce >= 2, "approve + swap expected, nonce {nonce}");
    let methods = recorder.methods();
    assert!(methods.iter().any(|m| m == "eth_call"), "the recorder saw Keel's reads: {methods:?}");
    assert!(
        !methods.iter().any(|m| m == "eth_sendRawTransaction" || m == "eth_sendTransaction"),
        "Keel broadcast a transaction to the node: {methods:?}"
    );
    assert!(relay.rejected_requests() == 0);
    relay.shutdown().await.expect("relay shutdown");
}

/// `defer_on_pending_volume`: a large swap waits in anvil's mempool (blocks are mined on demand).
/// Keel sees it through the mempool feed and postpones the rebalance it would otherwise send; once
/// the swap is mined the pending view clears and the rebalance lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_pending_swaps_defer_the_rebalance_until_mined() {
    let Rig { chain, relay, recorder: _recorder, quotes, pipeline, tka, tkb, me, pair: _, .. } =
        rig(None, Some(0.005), false).await;
    let a = chain.addresses().clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pipeline.snapshot().engine.intents_emitted, 0);

    // A large sale of TKA sits in the mempool; the exchange price has already moved.
    let trader = chain.wallet_provider(TRADER);
    let pending = IUniswapV2Router02::new(a.v2_router, &trader)
        .swapExactTokensForTokens(
            e18(500),
            U256::ZERO,
            vec![tka, tkb],
            chain.address(TRADER),
            U256::from(4_000_000_000u64),
        )
        .send()
        .await
        .unwrap();
    quotes.set_price("TKAUSDT", 0.93);

    // Keel fires, but defers while the swap is pending: nothing goes to the relay.
    let t0 = Instant::now();
    while pipeline.snapshot().engine.outcomes.rejected < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no deferral seen: {:?}", pipeline.snapshot().engine);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pipeline.observer().relays.lock()[0].accepted,
        0,
        "a bundle was sent while the swap was pending"
    );
    assert_eq!(pipeline.snapshot().engine.outcomes.landed, 0);

    // The swap is mined: the pending view clears, Keel rebalances; keep mining until it lands.
    relay.mine_block().await.unwrap();
    let receipt = pending.get_receipt().await.unwrap();
    assert!(receipt.status());
    let t0 = Instant::now();
    while pipeline.snapshot().engine.outcomes.landed < 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no landing after the swap was mined");
        relay.mine_block().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let report = pipeline.shutdown().await;
    assert!(report.exec.deferred >= 1, "{:?}", report.exec);
    assert!(report.exec.landed >= 1);
    let ha = whole(chain.balance_of(tka, me).await.unwrap());
    assert!(ha > 1000.0, "Keel should have bought TKA: {ha}");
    relay.shutdown().await.expect("relay shutdown");
}

/// The node websocket stalls (its connection stays open, nothing flows) while the HTTP poller's
/// heads go on: the pools the websocket keeps are stale, so the oracle guard refuses to trade
/// through them and says why; once it flows again and catches up, the rebalance lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_websocket_blocks_trading_through_its_pools_until_it_catches_up() {
    let rig = rig(Some(Duration::from_millis(250)), None, true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.pipeline.snapshot().engine.intents_emitted, 0);
    let proxy = rig.ws_proxy.as_ref().expect("proxy");
    proxy.freeze(true);

    // The market moves; once the feed is more than `max_pool_age_blocks` (2) behind the poller's
    // head (blocks every 250 ms), the exchange follows: Keel fires, and the guard refuses.
    let cex = sell_tka_into_both_pools(&rig).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    rig.quotes.set_price("TKAUSDT", cex);
    let stale = || {
        let counts = rig.pipeline.observer().oracle_guard.lock().clone();
        ["v2-tka-tkb", "v3-tka-tkb"].iter().map(|p| counts.get(p, "stale_pool")).sum::<u64>()
    };
    let t0 = Instant::now();
    while stale() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no stale-pool refusal while the websocket stalled: {:?}",
            rig.pipeline.snapshot().engine
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rig.pipeline.snapshot().engine.outcomes.landed, 0);
    assert_eq!(rig.pipeline.observer().relays.lock()[0].accepted, 0, "a bundle was sent on stale pools");

    // It flows again: the feed catches up and the rebalance lands.
    proxy.freeze(false);
    let t0 = Instant::now();
    while rig.pipeline.snapshot().engine.outcomes.landed < 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no landing after the websocket resumed: {:?}",
            rig.pipeline.snapshot().engine
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Rig { chain, relay, pipeline, tka, me, .. } = rig;
    let report = pipeline.shutdown().await;
    assert!(report.exec.oracle_blocked >= 2, "{:?}", report.exec);
    let ha = whole(chain.balance_of(tka, me).await.unwrap());
    assert!(ha > 1000.0, "Keel should have bought TKA: {ha}");
    relay.shutdown().await.expect("relay shutdown");
}
