//! The executor with a Uniswap V4 pool behind a Universal Router (`via = "universal_router"`): a
//! fresh account's rebalance is an ERC-20 approval of Permit2, `Permit2.approve` of the router and
//! `execute(V4_SWAP)` carrying the planned amounts and the deadline from `swap_deadline_secs`.

use super::tests::{head, intent, sent};
use super::*;
use crate::config::V4Via;
use alloy::primitives::{Bytes, aliases::U48, aliases::U160};
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::abi::{IERC20, IPermit2, IUniversalRouter, IV4Router, PERMIT2_ADDRESS};
use keel_amm::pool::{Pool, PoolChange, PoolMeta, PoolUpdate};
use keel_amm::v3::MAX_TICK;
use keel_amm::v3::tick_math::get_tick_at_sqrt_ratio;
use keel_amm::v4::{PoolKey, V4Pool};
use keel_engine::chain::PoolSource;

const USDC: Address = Address::repeat_byte(0x10);
const WETH: Address = Address::repeat_byte(0x20);
const MANAGER: Address = Address::repeat_byte(0x44);
const UR: Address = Address::repeat_byte(0x55);

fn key() -> PoolKey {
    PoolKey { currency0: USDC, currency1: WETH, fee: 3000, tick_spacing: 60, hooks: Address::ZERO }
}

fn executor() -> (Executor, Address) {
    let meta =
        PoolMeta { id: "v4".into(), address: MANAGER, token0: USDC, token1: WETH, gas: 130_000, venue: 0 };
    let pool = PoolEntry::new(meta, snapshot_pool()).unwrap();
    let venue = PoolVenue {
        kind: DexKind::UniswapV4,
        router: UR,
        pool_id: None,
        via: V4Via::UniversalRouter,
        curve_indices: Default::default(),
    };
    super::tests::one_pool_executor(pool, venue)
}

/// 3000 USDC (6 decimals) per WETH (18): raw price of currency1 in currency0 = 1e9 / 3, a
/// full-range position of about 1,800 WETH and 5.5M USDC.
fn snapshot_pool() -> Pool {
    let q192 = U256::from(1u8) << 192usize;
    let sqrt = (q192 * U256::from(10u64).pow(U256::from(9u8)) / U256::from(3u8)).root(2);
    let tick = get_tick_at_sqrt_ratio(sqrt).unwrap();
    let mut pool = V4Pool::new(key(), sqrt, tick, 0, 3000, 0, &[]).unwrap();
    let full = (MAX_TICK / 60) * 60;
    pool.state_mut().modify_position(-full, full, 10i128.pow(17)).unwrap();
    Pool::V4(Box::new(pool))
}

#[test]
fn a_universal_router_rebalance_approves_permit2_then_the_router_in_permit2_then_swaps() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 1 }, 0, &mut out);
    exec.on_chain(head(1), 0, &mut out);
    let update = PoolUpdate {
        pool: 0,
        address: MANAGER,
        block: 1,
        change: PoolChange::Snapshot(Box::new(snapshot_pool())),
        recv_ns: 0,
    };
    exec.on_chain(ChainUpdate::Pool { update, source: PoolSource::Logs }, 0, &mut out);
    exec.on_chain(ChainUpdate::PoolFeedHead { block: 2 }, 0, &mut out);
    exec.on_chain(head(2), 0, &mut out);
    assert!(exec.is_pool_ready(0));
    out.clear();
    // Sell 1 WETH for USDC.
    exec.on_intent(&intent(1, me), 0, &mut out);
    let txs = sent(&out);
    assert_eq!(txs.len(), 3, "approve Permit2 + Permit2.approve + execute: {txs:?}");
    let approve = IERC20::approveCall::abi_decode(&txs[0].1).unwrap();
    assert_eq!((txs[0].0, approve.spender, approve.amount), (WETH, PERMIT2_ADDRESS, U256::MAX));
    assert_eq!(txs[1].0, PERMIT2_ADDRESS);
    let grant = IPermit2::approveCall::abi_decode(&txs[1].1).unwrap();
    assert_eq!((grant.token, grant.spender, grant.amount, grant.expiration), (WETH, UR, U160::MAX, U48::MAX));
    assert_eq!(txs[2].0, UR);
    let exec_call = IUniversalRouter::executeCall::abi_decode(&txs[2].1).unwrap();
    assert_eq!(exec_call.commands.as_ref(), &[V4_SWAP]);
    assert_eq!(exec_call.deadline, U256::from(1_000 + 2 + 60u64), "deadline from swap_deadline_secs");
    let (actions, params) = <(Bytes, Vec<Bytes>)>::abi_decode_params(&exec_call.inputs[0]).unwrap();
    assert_eq!(actions.as_ref(), &[SWAP_EXACT_IN_SINGLE, SETTLE_ALL, TAKE_ALL]);
    let swap = IV4Router::ExactInputSingleParams::abi_decode(&params[0]).unwrap();
    assert!(!swap.zeroForOne, "WETH is currency1");
    let fill = exec.fills().last().unwrap();
    assert_eq!(fill.pool, "v4");
    assert_eq!(U256::from(swap.amountIn), fill.amount_in);
    assert_eq!(U256::from(swap.amountOutMinimum), fill.amount_out_min, "min out from the same quote");
    let Pool::V4(p) = exec.pools()[0].pool() else { unreachable!() };
    let exact = Pool::V4(p.clone()).swap(false, keel_amm::pool::SwapAmount::ExactIn(fill.amount_in), None);
    assert_eq!(fill.amount_out, exact.unwrap().amount_out, "the exact V4 quote");
    assert!(exec.stats().approvals >= 1);
}
