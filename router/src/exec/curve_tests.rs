//! The executor with a Curve StableSwap-NG pool: the poller's snapshot makes it routable, and
//! the rebalance is an approval of the pool plus the pool's own `exchange(i, j, dx, min_dy)` of
//! the planned amounts, its coin indices in the ABI the pool takes (`int128` or `uint128`).

use super::tests::first_sale_after_the_first_read;
use super::*;
use crate::config::CurveIndices;
use alloy::primitives::Bytes;
use alloy::sol_types::SolCall;
use keel_amm::abi::{ICurveStableSwap, ICurveStableSwapU128, IERC20};
use keel_amm::curve::{AmpRamp, Flavour, StableSwapPool};
use keel_amm::pool::{CurvePair, Pool, PoolChange, PoolMeta, PoolUpdate};
use keel_engine::chain::PoolSource;

const USDC: Address = Address::repeat_byte(0x10);
const WETH: Address = Address::repeat_byte(0x20);
const POOL: Address = Address::repeat_byte(0xc0);

fn executor(indices: CurveIndices) -> (Executor, Address) {
    let meta =
        PoolMeta { id: "curve".into(), address: POOL, token0: USDC, token1: WETH, gas: 150_000, venue: 0 };
    let pool = PoolEntry::new(meta, Pool::Curve(Box::new(CurvePair::unread()))).unwrap();
    let venue = PoolVenue {
        kind: DexKind::CurveStableswap,
        router: POOL,
        pool_id: None,
        via: Default::default(),
        curve_indices: indices,
    };
    super::tests::one_pool_executor(pool, venue)
}

/// Coins WETH, USDC in the pool's order, 1,000 WETH against 3,000,000 USDC; WETH's rate makes
/// it worth 3,000 USDC (as a rate-oracle coin would), A 200, fee 0.04%.
fn pool_state() -> StableSwapPool {
    let e = |n: u64, d: u32| U256::from(n) * U256::from(10u64).pow(U256::from(d));
    StableSwapPool::new(
        Flavour::FactoryPlain,
        &[e(1_000, 18), e(3_000_000, 6)],
        &[e(3_000, 18), e(1, 30)],
        AmpRamp::constant(U256::from(20_000u64)),
        4_000_000,
        keel_amm::curve::FACTORY_ADMIN_FEE,
    )
    .unwrap()
}

fn snapshot(block: u64) -> ChainUpdate {
    // The pair's token0 (USDC, the lower address) is coin 1.
    let pair = CurvePair::new(pool_state(), 1, 0, 1_000).unwrap();
    ChainUpdate::Pool {
        update: PoolUpdate {
            pool: 0,
            address: POOL,
            block,
            change: PoolChange::Snapshot(Box::new(Pool::Curve(Box::new(pair)))),
            recv_ns: 0,
        },
        source: PoolSource::Poll,
    }
}

/// The calls of one rebalance selling 1 WETH: (approval, exchange as (i, j, dx, min_dy)).
fn rebalance(indices: CurveIndices) -> (Executor, Vec<(Address, Bytes)>) {
    let (mut exec, me) = executor(indices);
    let txs = first_sale_after_the_first_read(&mut exec, me, snapshot(1));
    assert_eq!(txs.len(), 2, "approve + exchange: {txs:?}");
    let approve = IERC20::approveCall::abi_decode(&txs[0].1).unwrap();
    assert_eq!((txs[0].0, approve.spender), (WETH, POOL), "the pool is the spender");
    assert_eq!(txs[1].0, POOL, "the exchange is sent to the pool itself");
    (exec, txs)
}

#[test]
fn a_curve_rebalance_approves_the_pool_and_exchanges_the_planned_amounts_in_its_index_abi() {
    let (exec, txs) = rebalance(CurveIndices::Int128);
    let c = ICurveStableSwap::exchangeCall::abi_decode(&txs[1].1).unwrap();
    assert!(ICurveStableSwapU128::exchangeCall::abi_decode(&txs[1].1).is_err(), "int128 selector only");
    // WETH (coin 0) for USDC (coin 1).
    assert_eq!((c.i, c.j), (0, 1));
    assert_eq!(c.dx, U256::from(10u64).pow(U256::from(18u64)));
    let fill = exec.fills().last().unwrap();
    assert_eq!((fill.pool.as_str(), fill.amount_in, fill.amount_out_min), ("curve", c.dx, c.min_dy));
    let exact = pool_state().exchange(0, 1, c.dx, 0).unwrap();
    assert_eq!(fill.amount_out, exact.dy, "the exact StableSwap quote");
    assert!(
        fill.amount_out_min < fill.amount_out
            && fill.amount_out_min > fill.amount_out * U256::from(99u8) / U256::from(100u8)
    );
    // About 3,000 USDC for the WETH, less the 0.04% fee.
    let usdc = f64::from(exact.dy) / 1e6;
    assert!((2_990.0..3_000.0).contains(&usdc), "{usdc}");

    let (_, txs) = rebalance(CurveIndices::Uint128);
    let u = ICurveStableSwapU128::exchangeCall::abi_decode(&txs[1].1).unwrap();
    assert!(ICurveStableSwap::exchangeCall::abi_decode(&txs[1].1).is_err(), "uint128 selector only");
    assert_eq!((u.i, u.j, u.dx, u.min_dy), (0, 1, c.dx, c.min_dy), "the same exchange in the other ABI");
}
