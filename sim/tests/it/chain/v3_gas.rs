//! A V3 swap that crosses many initialized ticks: Keel's gas limit (the pool's swap gas plus its
//! 30% margin, plus `V3_GAS_LIMIT_PER_TICK_CROSSED` per tick its own simulation crosses) covers the
//! gas the real pool uses, and is not wildly above it (at most 2×). The ticks are fresh (never
//! crossed since their liquidity was added, with fees earned on both tokens), the dearest case: the
//! limit the executor used before (the expected-cost allowance `V3_GAS_PER_TICK_CROSSED`, 31,000
//! per tick, plus the margin) is shown to fall short of the gas the 29-tick swap uses.

use alloy::primitives::U256;
use alloy::primitives::aliases::{I24, U24, U160};
use keel_amm::pool::{DEFAULT_V3_SWAP_GAS, PoolEntry, PoolMeta, SwapAmount};
use keel_feeds::node::sync::load_pool;
use keel_feeds::node::{PoolKind, TrackedPool};
use keel_router::plan::{
    GAS_LIMIT_MARGIN_PCT, GasPricing, Guards, V3_GAS_LIMIT_PER_TICK_CROSSED, V3_GAS_PER_TICK_CROSSED,
    route_order,
};
use keel_sim::anvil::contracts::rpc::ISwapRouter;
use keel_sim::anvil::contracts::{INonfungiblePositionManager, IQuoterV2};

use super::util::{chain, e18};

const LP: usize = 2;
const TRADER: usize = 1;
const FAR: u64 = 4_000_000_000;
/// Narrow positions, one tick spacing wide each, side by side around the price.
const POSITIONS: i32 = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_across_many_narrow_positions_stays_within_keels_v3_gas_limit() {
    let chain = chain().await;
    let a = chain.addresses().clone();
    let (ta, tc) = (a.token("TKA").unwrap(), a.token("TKC").unwrap());
    let (token0, token1) = if ta < tc { (ta, tc) } else { (tc, ta) };
    let lp = chain.wallet_provider(LP);
    let npm = INonfungiblePositionManager::new(a.v3_position_manager, &lp);
    // A fresh 0.3% pool at price 1 (tick 0) with 80 adjacent 60-tick positions.
    npm.createAndInitializePoolIfNecessary(
        token0,
        token1,
        U24::from(3000u32),
        U160::from(U256::from(1u8) << 96),
    )
    .gas(6_000_000)
    .send()
    .await
    .unwrap()
    .get_receipt()
    .await
    .unwrap();
    // Fees on both tokens first (a thin wide position and a small swap each way), so that every
    // narrow position minted after it above the price starts with both `feeGrowthOutside` at
    // zero: crossing such a tick writes both from zero, the dearest crossing there is.
    let wide = INonfungiblePositionManager::MintParams {
        token0,
        token1,
        fee: U24::from(3000u32),
        tickLower: I24::try_from(-6000).unwrap(),
        tickUpper: I24::try_from(6000).unwrap(),
        amount0Desired: e18(1),
        amount1Desired: e18(1),
        amount0Min: U256::ZERO,
        amount1Min: U256::ZERO,
        recipient: chain.address(LP),
        deadline: U256::from(FAR),
    };
    assert!(npm.mint(wide).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap().status());
    let trader = chain.wallet_provider(TRADER);
    let me = chain.address(TRADER);
    let router = ISwapRouter::new(a.v3_swap_router, &trader);
    for (sell, buy) in [(token0, token1), (token1, token0)] {
        let r = router
            .exactInputSingle(ISwapRouter::ExactInputSingleParams {
                tokenIn: sell,
                tokenOut: buy,
                fee: U24::from(3000u32),
                recipient: me,
                deadline: U256::from(FAR),
                amountIn: e18(1) / U256::from(100u32),
                amountOutMinimum: U256::ZERO,
                sqrtPriceLimitX96: U160::ZERO,
            })
            .gas(500_000)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(r.status());
    }
    for k in -POSITIONS / 2..POSITIONS / 2 {
        let params = INonfungiblePositionManager::MintParams {
            token0,
            token1,
            fee: U24::from(3000u32),
            tickLower: I24::try_from(60 * k).unwrap(),
            tickUpper: I24::try_from(60 * (k + 1)).unwrap(),
            amount0Desired: e18(10),
            amount1Desired: e18(10),
            amount0Min: U256::ZERO,
            amount1Min: U256::ZERO,
            recipient: chain.address(LP),
            deadline: U256::from(FAR),
        };
        let r = npm.mint(params).gas(1_000_000).send().await.unwrap().get_receipt().await.unwrap();
        assert!(r.status(), "mint [{}, {}]", 60 * k, 60 * (k + 1));
    }
    let factory = keel_sim::anvil::contracts::IUniswapV3Factory::new(a.v3_factory, chain.provider());
    let pool = factory.getPool(token0, token1, U24::from(3000u32)).call().await.unwrap();
    let tracked =
        TrackedPool { address: pool, kind: PoolKind::V3, fee: 3000, tick_spacing: Some(60), pool_key: None };

    let quoter = IQuoterV2::new(a.v3_quoter, chain.provider());
    let mut measured = Vec::new();
    // Sell token1 (price up through the positions above tick 0): a tiny swap, then larger ones.
    for amount in [e18(1) / U256::from(1_000u32), e18(55), e18(330)] {
        let head = chain.block_number().await.unwrap();
        let state = load_pool(chain.provider(), &tracked, head).await.unwrap();
        let meta = PoolMeta {
            id: "narrow".into(),
            address: pool,
            token0,
            token1,
            gas: DEFAULT_V3_SWAP_GAS,
            venue: 0,
        };
        let pools = vec![PoolEntry::new(meta, state).unwrap()];
        let guards = Guards { max_deviation: 0.9, two_hop: false, ..Guards::default() };
        let gas = GasPricing { gas_price_wei: 0 };
        let route =
            route_order(&pools, token1, token0, SwapAmount::ExactIn(amount), &gas, None, &guards).unwrap();
        let fill = &route.fills[0];
        let crossed = fill.hops[0].ticks_crossed;
        assert_eq!(fill.gas, DEFAULT_V3_SWAP_GAS + u64::from(crossed) * V3_GAS_PER_TICK_CROSSED);
        // What the executor puts on the transaction (router/src/exec/batch.rs).
        let limit = fill.gas_limit;
        assert_eq!(
            limit,
            DEFAULT_V3_SWAP_GAS * (100 + GAS_LIMIT_MARGIN_PCT) / 100
                + u64::from(crossed) * V3_GAS_LIMIT_PER_TICK_CROSSED
        );

        let q = quoter
            .quoteExactInputSingle(IQuoterV2::QuoteExactInputSingleParams {
                tokenIn: token1,
                tokenOut: token0,
                amountIn: amount,
                fee: U24::from(3000u32),
                sqrtPriceLimitX96: U160::ZERO,
            })
            .call()
            .await
            .unwrap();
        assert_eq!(q.amountOut, route.amount_out, "Keel's simulation and the pool disagree");
        let before = chain.balance_of(token0, me).await.unwrap();
        let r = router
            .exactInputSingle(ISwapRouter::ExactInputSingleParams {
                tokenIn: token1,
                tokenOut: token0,
                fee: U24::from(3000u32),
                recipient: me,
                deadline: U256::from(FAR),
                amountIn: amount,
                amountOutMinimum: fill.amount_out_min,
                sqrtPriceLimitX96: U160::ZERO,
            })
            .gas(limit)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(r.status(), "the swap ran out of Keel's gas limit {limit} (crossed {crossed} ticks)");
        let got = chain.balance_of(token0, me).await.unwrap() - before;
        assert_eq!(got, route.amount_out);
        eprintln!(
            "sold {amount}: {crossed} ticks crossed (quoter: {}), gas used {}, Keel's limit {limit} ({:.2}x)",
            q.initializedTicksCrossed,
            r.gas_used,
            limit as f64 / r.gas_used as f64
        );
        assert!(r.gas_used <= limit);
        assert!(
            limit <= r.gas_used * 2,
            "limit {limit} is more than twice the {} used over {crossed} ticks",
            r.gas_used
        );
        // The expected-cost allowance alone (31,000 per tick, what the limit was before) against
        // what the pool used.
        let old_limit = fill.gas * (100 + GAS_LIMIT_MARGIN_PCT) / 100;
        measured.push((crossed, r.gas_used, old_limit));
    }
    let (c_small, g_small, _) = measured[0];
    let (c_big, g_big, old_limit) = measured[2];
    assert_eq!(c_small, 0);
    assert!(c_big >= 25, "the large swap crossed only {c_big} ticks");
    assert!(
        old_limit < g_big,
        "the old limit {old_limit} would have covered {g_big} over {c_big} fresh ticks"
    );
    let per_tick = (g_big - g_small) / u64::from(c_big);
    eprintln!(
        "marginal gas per fresh tick crossed: {per_tick} (Keel's limit allows {V3_GAS_LIMIT_PER_TICK_CROSSED})"
    );
    assert!(per_tick <= V3_GAS_LIMIT_PER_TICK_CROSSED, "{per_tick} per tick is above Keel's allowance");
    // The limit covers the swap at any number of fresh ticks, not only the ones measured here.
    let base_limit = DEFAULT_V3_SWAP_GAS * (100 + GAS_LIMIT_MARGIN_PCT) / 100;
    assert!(base_limit >= g_small && V3_GAS_LIMIT_PER_TICK_CROSSED >= per_tick);
}
