//! The node feed follows Uniswap V4 pools from the `PoolManager`'s logs, and what it holds quotes
//! exactly what the `PoolManager` pays through v4-periphery's `V4Router`.
//!
//! Two hookless TKA/TKB pools (3000/60 and 500/10) in one real `PoolManager` (`@uniswap/v4-core`),
//! initialized at random prices with a full-range position and random ones. The node feed loads
//! them by `extsload` (slot0, liquidity, the whole tick bitmap, every initialized tick) and then
//! applies the manager's `Swap` and `ModifyLiquidity` logs, keyed by pool id (both pools' logs come
//! from the same address). A random sequence of steps, each on a random pool: another account adds
//! a position, removes part of one, or swaps through `MockV4Router` (`@uniswap/v4-periphery`) with
//! calldata from Keel's router crate ([`keel_router::exec::v4_exact_in_single`]). Before every
//! swap, the router's mirror of the feed's updates must equal a fresh `extsload` load at the head
//! (price, tick, liquidity and every initialized tick), the swap is quoted on the mirror
//! ([`Pool::swap`]), an `eth_call` with `min_out = quote + 1` must revert (the router's
//! `V4TooLittleReceived`: the limit is tight) and the swap sent with `min_out = quote` must move
//! the trader's balances by exactly the quote.

use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use keel_amm::pool::{Pool, SwapAmount};
use keel_amm::v3::MAX_TICK;
use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
use keel_amm::v4::PoolKey;
use keel_feeds::node::TrackedPool;
use keel_feeds::node::sync::load_pool;
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{AnvilChain, V4Position, deploy_v4};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::node_feed::{FeedGuard, Mirror, drain, start_feed_with};
use super::util::{WAIT, chain};

const LP: usize = 1;
const TRADER: usize = 3;
/// Steps (swaps and liquidity changes) over the two pools.
const STEPS: usize = 60;

async fn balance(p: &DynProvider, token: Address, owner: Address) -> U256 {
    IERC20::new(token, p).balanceOf(owner).call().await.unwrap()
}

/// Waits until the mirror equals a fresh load of every pool at the head.
async fn wait_synced(chain: &AnvilChain, feed: &FeedGuard, mirror: &mut Mirror, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        drain(feed, mirror);
        let head = chain.provider().get_block_number().await.unwrap();
        let mut diffs = Vec::new();
        for (i, pool) in feed.pools.iter().enumerate() {
            let fresh = load_pool(chain.provider(), pool, head).await.unwrap();
            if mirror.state_at(i) != Some(&fresh) {
                diffs.push(format!("pool {i}: mirror {:?}\n fresh {fresh:?}", mirror.state_at(i)));
            }
        }
        if diffs.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the feed never matched the PoolManager:\n{}",
            diffs.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_feed_follows_v4_pools_by_pool_id_and_quotes_what_the_v4_router_pays() {
    let chain = chain().await;
    let seed: u64 = std::env::var("KEEL_V4_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x4_f33d);
    eprintln!("seed {seed} (set KEEL_V4_SEED to vary)");
    let mut rng = StdRng::seed_from_u64(seed);
    let a = chain.addresses().clone();
    let (ta, tb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    let (c0, c1) = (ta.min(tb), ta.max(tb));
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");

    let keys = [PoolKey::hookless(c0, c1, 3000, 60), PoolKey::hookless(c0, c1, 500, 10)];
    // (pool, lower, upper, liquidity, salt) of every position still open
    let mut open: Vec<(usize, i32, i32, i128, u64)> = Vec::new();
    let mut salt = 0u64;
    for (n, key) in keys.iter().enumerate() {
        let tick = rng.random_range(-3_000..3_000);
        let sqrt = get_sqrt_ratio_at_tick(tick).unwrap() + U256::from(rng.random_range(0u64..u64::MAX));
        v4.initialize(&chain, key, sqrt).await.expect("initialize");
        v4.approve_liquidity(&chain, key, LP).await.expect("approve");
        let s = key.tick_spacing;
        let full = (MAX_TICK / s) * s;
        let mut ranges = vec![(-full, full, rng.random_range(10i128.pow(20)..10i128.pow(21)))];
        for _ in 0..4 {
            let lo = (tick / s + rng.random_range(-50..50)) * s;
            ranges.push((
                lo,
                lo + rng.random_range(1..30) * s,
                rng.random_range(10i128.pow(19)..10i128.pow(21)),
            ));
        }
        for (lo, hi, l) in ranges {
            salt += 1;
            let pos = V4Position { tick_lower: lo, tick_upper: hi, liquidity: l, salt };
            v4.modify(&chain, key, LP, pos).await.expect("add liquidity");
            open.push((n, lo, hi, l, salt));
        }
    }
    let trader = chain.address(TRADER);
    let tp = chain.wallet_provider(TRADER);
    for t in [c0, c1] {
        IERC20::new(t, &tp).approve(v4.router, U256::MAX).send().await.unwrap().get_receipt().await.unwrap();
    }

    let tracked: Vec<TrackedPool> = keys.iter().map(|k| TrackedPool::v4(v4.manager, *k)).collect();
    let feed = start_feed_with(&chain, tracked.clone()).await;
    let mut mirror = Mirror::new(&tracked);
    wait_synced(&chain, &feed, &mut mirror, "initial load").await;

    let (mut swaps, mut adds, mut removes, mut gas) = (0usize, 0usize, 0usize, Vec::new());
    for step in 0..STEPS {
        let n = rng.random_range(0..keys.len());
        let key = keys[n];
        let roll: f64 = rng.random();
        if roll < 0.15 {
            let s = key.tick_spacing;
            let Some(Pool::V4(p)) = mirror.state_at(n) else { panic!("pool {n} not loaded") };
            let tick = p.state().tick;
            let lo = (tick / s + rng.random_range(-40..40)) * s;
            let hi = lo + rng.random_range(1..25) * s;
            let l = rng.random_range(10i128.pow(18)..10i128.pow(21));
            salt += 1;
            v4.modify(&chain, &key, LP, V4Position { tick_lower: lo, tick_upper: hi, liquidity: l, salt })
                .await
                .unwrap_or_else(|e| panic!("step {step}: add {lo}..{hi}: {e}"));
            open.push((n, lo, hi, l, salt));
            adds += 1;
            continue;
        }
        if roll < 0.3 {
            let mine: Vec<usize> =
                (0..open.len()).filter(|&i| open[i].0 == n && open[i].1 > -100_000).collect();
            if let Some(&i) = mine.get(rng.random_range(0..mine.len().max(1))) {
                let (_, lo, hi, l, s) = open[i];
                let part = if rng.random_bool(0.5) { l } else { l / 2 };
                v4.modify(
                    &chain,
                    &key,
                    LP,
                    V4Position { tick_lower: lo, tick_upper: hi, liquidity: -part, salt: s },
                )
                .await
                .unwrap_or_else(|e| panic!("step {step}: remove {lo}..{hi}: {e}"));
                open[i].3 -= part;
                if open[i].3 == 0 {
                    open.swap_remove(i);
                }
                removes += 1;
                continue;
            }
        }
        // A swap: the mirror is what Keel holds; it must match the chain before it quotes.
        wait_synced(&chain, &feed, &mut mirror, &format!("step {step}")).await;
        let pool = mirror.state_at(n).unwrap().clone();
        let zfo = rng.random_bool(0.5);
        let amount = U256::from(10f64.powf(rng.random_range(15.0f64..21.3)) as u128);
        let q =
            pool.swap(zfo, SwapAmount::ExactIn(amount), None).unwrap_or_else(|e| panic!("step {step}: {e}"));
        if q.amount_in != amount {
            continue; // a partial fill at the price bound: the router would not take it
        }
        let (t_in, t_out) = if zfo { (c0, c1) } else { (c1, c0) };
        let min_out = u128::try_from(q.amount_out).unwrap();
        let calldata = |m: u128| keel_router::exec::v4_exact_in_single(&key, zfo, amount.to::<u128>(), m);
        let tight = TransactionRequest::default()
            .with_from(trader)
            .with_to(v4.router)
            .with_input(calldata(min_out + 1));
        assert!(tp.call(tight).await.is_err(), "step {step}: min_out = quote + 1 did not revert");
        let (in0, out0) = (balance(&tp, t_in, trader).await, balance(&tp, t_out, trader).await);
        let tx = TransactionRequest::default()
            .with_to(v4.router)
            .with_input(calldata(min_out))
            .with_gas_limit(1_000_000);
        let r = tp.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
        assert!(r.status(), "step {step}: swap with min_out = quote reverted");
        gas.push(r.gas_used);
        let (in1, out1) = (balance(&tp, t_in, trader).await, balance(&tp, t_out, trader).await);
        assert_eq!(in0 - in1, q.amount_in, "step {step}: paid");
        assert_eq!(out1 - out0, q.amount_out, "step {step}: received, to the wei");
        swaps += 1;
    }
    wait_synced(&chain, &feed, &mut mirror, "end").await;
    gas.sort_unstable();
    eprintln!(
        "{swaps} V4Router swaps exact to the wei on the feed's state; {adds} adds, {removes} removes followed; {} logs, {} resyncs; swap gas min {} median {} max {}",
        feed.stats.logs.load(std::sync::atomic::Ordering::Relaxed),
        feed.stats.resyncs.load(std::sync::atomic::Ordering::Relaxed),
        gas[0],
        gas[gas.len() / 2],
        gas[gas.len() - 1]
    );
    assert!(swaps >= 30, "only {swaps} swaps compared");
    assert!(adds >= 3 && removes >= 3, "too few liquidity changes: {adds} adds, {removes} removes");
    assert_eq!(
        feed.stats.resyncs.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the feed followed by logs, not reloads"
    );
}
