//! The harness deploys the contracts and seeds the pools as documented.

use alloy::primitives::{U256, aliases::I24};
use keel_sim::anvil::contracts::IQuoterV2;
use keel_sim::anvil::contracts::rpc::{IERC20, IUniswapV2Pair, IUniswapV3Pool};

use super::util::{chain, e18};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_pools_with_expected_state() {
    let chain = chain().await;
    let a = chain.addresses();
    let p = chain.provider();
    assert_eq!(a.v2_pairs.len(), 3);
    assert_eq!(a.v3_pools.len(), 3);

    // V2: reserves are the seeded amounts, token order is by address.
    let tka_tkb = &a.v2_pairs[0];
    let pair = IUniswapV2Pair::new(tka_tkb.address, p);
    assert_eq!(pair.token0().call().await.unwrap(), tka_tkb.token0);
    assert!(tka_tkb.token0 < tka_tkb.token1);
    let r = pair.getReserves().call().await.unwrap();
    assert_eq!((U256::from(r.reserve0), U256::from(r.reserve1)), (e18(10_000), e18(10_000)));
    for info in &a.v2_pairs {
        let r = IUniswapV2Pair::new(info.address, p).getReserves().call().await.unwrap();
        assert!(r.reserve0 > 0 && r.reserve1 > 0, "{} has no liquidity", info.name);
    }

    // V3: price 1.0 for TKA/TKB, every position's ticks initialised, liquidity in range.
    for info in &a.v3_pools {
        let pool = IUniswapV3Pool::new(info.address, p);
        let s0 = pool.slot0().call().await.unwrap();
        assert_eq!(s0.tick.as_i32(), info.initial_tick, "{}", info.name);
        assert_eq!(pool.fee().call().await.unwrap().to::<u32>(), 3000);
        assert_eq!(pool.tickSpacing().call().await.unwrap().as_i32(), 60);
        assert!(pool.liquidity().call().await.unwrap() > 0, "{} has no in-range liquidity", info.name);
        assert_eq!(info.positions.len(), 6);
        for &(lower, upper) in &info.positions {
            for t in [lower, upper] {
                let tick = pool.ticks(I24::try_from(t).unwrap()).call().await.unwrap();
                assert!(tick.initialized, "{} tick {t} not initialised", info.name);
            }
        }
    }
    let ab = &a.v3_pools[0];
    let s0 = IUniswapV3Pool::new(ab.address, p).slot0().call().await.unwrap();
    assert_eq!(U256::from(s0.sqrtPriceX96), U256::from(1u64) << 96usize);

    // Funded accounts hold tokens and WETH; the quoter answers.
    for i in 1..5 {
        for t in a.all_tokens() {
            let bal = IERC20::new(t, p).balanceOf(chain.address(i)).call().await.unwrap();
            assert!(bal >= e18(1_000), "account {i} has {bal} of {t}");
        }
    }
    let q = IQuoterV2::new(a.v3_quoter, p)
        .quoteExactInputSingle(IQuoterV2::QuoteExactInputSingleParams {
            tokenIn: ab.token0,
            tokenOut: ab.token1,
            amountIn: e18(1),
            fee: alloy::primitives::aliases::U24::from(3000u32),
            sqrtPriceLimitX96: Default::default(),
        })
        .call()
        .await
        .unwrap();
    assert!(q.amountOut > e18(1) * U256::from(99u64) / U256::from(100u64) && q.amountOut < e18(1));

    // Snapshot / revert restore state.
    let head = chain.block_number().await.unwrap();
    let id = chain.snapshot().await.unwrap();
    chain.mine().await.unwrap();
    assert_eq!(chain.block_number().await.unwrap(), head + 1);
    assert!(chain.revert(id).await.unwrap());
    assert_eq!(chain.block_number().await.unwrap(), head);
    chain.mine().await.unwrap();
    chain.reset().await.unwrap();
    assert_eq!(chain.block_number().await.unwrap(), head);
}
