//! The executor with a Balancer weighted pool: the poller's snapshot makes it routable, and the
//! rebalance is an approval of the Vault plus `Vault.swap` of the planned amounts.

use super::tests::first_sale_after_the_first_read;
use super::*;
use alloy::primitives::B256;
use alloy::sol_types::SolCall;
use keel_amm::abi::{IBalancerVault, IERC20};
use keel_amm::balancer::{PowFlavour, WeightedPool};
use keel_amm::pool::{BalancerPair, Pool, PoolChange, PoolMeta, PoolUpdate};
use keel_engine::chain::PoolSource;

const USDC: Address = Address::repeat_byte(0x10);
const WETH: Address = Address::repeat_byte(0x20);
const VAULT: Address = Address::repeat_byte(0xba);
const POOL: Address = Address::repeat_byte(0xb0);
const POOL_ID: B256 = B256::repeat_byte(0xb0);

fn executor() -> (Executor, Address) {
    let meta =
        PoolMeta { id: "bal".into(), address: POOL, token0: USDC, token1: WETH, gas: 111_000, venue: 0 };
    let pool = PoolEntry::new(meta, Pool::Balancer(Box::new(BalancerPair::unread(PowFlavour::V1)))).unwrap();
    let venue = PoolVenue {
        kind: DexKind::BalancerWeighted,
        router: VAULT,
        pool_id: Some(POOL_ID),
        via: Default::default(),
        curve_indices: Default::default(),
    };
    super::tests::one_pool_executor(pool, venue)
}

/// An 80/20 WETH/USDC pool, WETH first in the Vault's order: 1,000 WETH against 750,000 USDC
/// (3000 USDC per WETH at the weights), 0.3% fee.
fn snapshot(block: u64) -> ChainUpdate {
    let e = |n: u64, d: u32| U256::from(n) * U256::from(10u64).pow(U256::from(d));
    let pool = WeightedPool::new(
        &[e(1_000, 18), e(750_000, 6)],
        &[e(80, 16), e(20, 16)],
        &[18, 6],
        e(3, 15),
        PowFlavour::V1,
    )
    .unwrap();
    let pair = BalancerPair::new(pool, 1, 0).unwrap();
    ChainUpdate::Pool {
        update: PoolUpdate {
            pool: 0,
            address: POOL,
            block,
            change: PoolChange::Snapshot(Box::new(Pool::Balancer(Box::new(pair)))),
            recv_ns: 0,
        },
        source: PoolSource::Poll,
    }
}

#[test]
fn a_balancer_rebalance_approves_the_vault_and_swaps_through_it_for_the_planned_amounts() {
    let (mut exec, me) = executor();
    // Unread, the pool is not routable; read, the account sells 1 WETH for USDC.
    let txs = first_sale_after_the_first_read(&mut exec, me, snapshot(1));
    assert_eq!(txs.len(), 2, "approve + swap: {txs:?}");
    let approve = IERC20::approveCall::abi_decode(&txs[0].1).unwrap();
    assert_eq!((txs[0].0, approve.spender), (WETH, VAULT), "the Vault is the spender");
    assert_eq!(txs[1].0, VAULT);
    let swap = IBalancerVault::swapCall::abi_decode(&txs[1].1).unwrap();
    let s = &swap.singleSwap;
    assert_eq!((s.poolId, s.assetIn, s.assetOut), (POOL_ID, WETH, USDC));
    assert!(matches!(s.kind, IBalancerVault::SwapKind::GIVEN_IN) && s.userData.is_empty());
    assert_eq!(s.amount, U256::from(10u64).pow(U256::from(18u64)));
    let f = &swap.funds;
    assert_eq!((f.sender, f.recipient, f.fromInternalBalance, f.toInternalBalance), (me, me, false, false));
    // The limit is the plan's slippage floor under the exact quote.
    let fill = exec.fills().last().unwrap();
    assert_eq!((fill.pool.as_str(), fill.amount_in), ("bal", s.amount));
    assert_eq!(swap.limit, fill.amount_out_min);
    assert!(
        fill.amount_out_min < fill.amount_out
            && fill.amount_out_min > fill.amount_out * U256::from(99u8) / U256::from(100u8)
    );
    let Pool::Balancer(pair) = exec.pools()[0].pool() else { unreachable!() };
    let exact = pair.pool().swap_given_in(0, 1, s.amount).unwrap();
    assert_eq!(fill.amount_out, exact.amount_out, "the exact weighted-pool quote");
    assert_eq!(swap.deadline, U256::from(1_000 + 2 + 60u64));
}
