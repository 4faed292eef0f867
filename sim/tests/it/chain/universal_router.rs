//! Keel's Universal Router calldata against the real contracts: Permit2 (runtime code from the
//! pinned `@uniswap/v4-periphery` package, installed at its canonical address) and the real
//! `UniversalRouter` (`@uniswap/universal-router`) over a real V4 `PoolManager`.
//!
//! A fresh account approves exactly as `keel run` does for a `via = "universal_router"` DEX (ERC-20
//! approval of Permit2, then `Permit2.approve(token, router, max, max)`). Each trade (random
//! direction, log-uniform size) is quoted by Keel's pool model on the state read from the
//! manager's storage, then sent as `execute(V4_SWAP, …, deadline)` built by
//! [`keel_router::exec::universal_router_v4_swap`]: with `min_out = quote + 1` it must revert
//! `V4TooLittleReceived`, with a deadline in the past `TransactionDeadlinePassed`, and with
//! `min_out = quote` it must land and move the account's balances by exactly Keel's amounts.

use alloy::network::TransactionBuilder;
use alloy::primitives::{U256, aliases::U48, aliases::U160};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolError;
use keel_amm::abi::PERMIT2_ADDRESS;
use keel_amm::pool::{Pool, SwapAmount};
use keel_amm::v3::MAX_TICK;
use keel_amm::v3::sqrt_price_math::Q96;
use keel_amm::v4::PoolKey;
use keel_feeds::node::TrackedPool;
use keel_feeds::node::sync::load_pool;
use keel_router::exec::universal_router_v4_swap;
use keel_sim::anvil::contracts::rpc::{IERC20, IPermit2};
use keel_sim::anvil::{V4Position, deploy_v4};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::util::{chain, e18};

const FUNDER: usize = 1;
const SWAPPER: usize = 2;
const TRADES: usize = 12;

alloy::sol! {
    error V4TooLittleReceived(uint256 minAmountOutReceived, uint256 amountReceived);
    error TransactionDeadlinePassed();
}

/// The revert data of a failed `eth_call`, as hex, from the RPC error's text.
fn revert_text(e: &impl std::fmt::Display) -> String {
    e.to_string().to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_v4_swaps_through_the_universal_router_pay_exactly_the_quote() {
    let chain = chain().await;
    let a = chain.addresses().clone();
    let (tka, tkb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");
    let key = PoolKey::hookless(tka, tkb, 3000, 60);
    v4.initialize(&chain, &key, Q96).await.expect("initialize");
    v4.approve_liquidity(&chain, &key, FUNDER).await.expect("approve liquidity");
    let full = (MAX_TICK / 60) * 60;
    let pos = V4Position { tick_lower: -full, tick_upper: full, liquidity: 10i128.pow(23), salt: 1 };
    v4.modify(&chain, &key, FUNDER, pos).await.expect("add liquidity");
    let ur =
        v4.deploy_universal_router(&chain).await.expect("Permit2 + Universal Router (run `make chain-deps`)");
    let p = chain.wallet_provider(SWAPPER);
    let me = chain.address(SWAPPER);
    assert!(!p.get_code_at(PERMIT2_ADDRESS).await.unwrap().is_empty(), "Permit2 has code");

    // The approvals `keel run` sends for a Universal Router venue, per token.
    let mut approve_gas = Vec::new();
    for t in [tka, tkb] {
        let r = IERC20::new(t, &p).approve(PERMIT2_ADDRESS, U256::MAX).send().await.unwrap();
        let r = r.get_receipt().await.unwrap();
        assert!(r.status(), "ERC-20 approval of Permit2");
        let r = IPermit2::new(PERMIT2_ADDRESS, &p).approve(t, ur, U160::MAX, U48::MAX).send().await.unwrap();
        let r = r.get_receipt().await.unwrap();
        assert!(r.status(), "Permit2.approve of the router");
        approve_gas.push(r.gas_used);
        let allowed = IPermit2::new(PERMIT2_ADDRESS, &p).allowance(me, t, ur).call().await.unwrap();
        assert_eq!((allowed.amount, allowed.expiration), (U160::MAX, U48::MAX));
    }

    let tracked = TrackedPool::v4(v4.manager, key);
    let seed: u64 = std::env::var("KEEL_UR_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x0_0516);
    eprintln!("seed {seed} (set KEEL_UR_SEED to vary)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut gas = Vec::new();
    for t in 0..TRADES {
        let zfo = rng.random_bool(0.5);
        let amount_in = 10f64.powf(rng.random_range(15.0f64..22.5)) as u128;
        let what = format!("trade {t}: zfo {zfo} in {amount_in}");
        let head = chain.provider().get_block_number().await.unwrap();
        let pool = load_pool(chain.provider(), &tracked, head).await.expect("load the pool");
        let q = pool.swap(zfo, SwapAmount::ExactIn(U256::from(amount_in)), None).expect("keel quote");
        assert_eq!(q.amount_in, U256::from(amount_in), "{what}: full fill");
        let out: u128 = q.amount_out.to();
        let now = chain.provider().get_block_by_number(head.into()).await.unwrap().unwrap().header.timestamp;
        let deadline = U256::from(now + 120);
        let send = |data: Vec<u8>| {
            TransactionRequest::default().with_to(ur).with_input(data).with_gas_limit(1_000_000)
        };

        // One wei more than the quote: the router refuses.
        let greedy = universal_router_v4_swap(&key, zfo, amount_in, out + 1, deadline);
        let err = p.call(send(greedy)).await.expect_err("min_out = quote + 1 must revert");
        let sel = alloy::primitives::hex::encode(V4TooLittleReceived::SELECTOR);
        assert!(revert_text(&err).contains(&sel), "{what}: expected V4TooLittleReceived, got {err}");
        // A deadline already past: refused before any swap.
        let late = universal_router_v4_swap(&key, zfo, amount_in, out, U256::from(now - 1));
        let err = p.call(send(late)).await.expect_err("a past deadline must revert");
        let sel = alloy::primitives::hex::encode(TransactionDeadlinePassed::SELECTOR);
        assert!(revert_text(&err).contains(&sel), "{what}: expected TransactionDeadlinePassed, got {err}");

        // Exactly the quote: lands and pays exactly it.
        let (c_in, c_out) = if zfo { (key.currency0, key.currency1) } else { (key.currency1, key.currency0) };
        let (in0, out0) =
            (chain.balance_of(c_in, me).await.unwrap(), chain.balance_of(c_out, me).await.unwrap());
        let data = universal_router_v4_swap(&key, zfo, amount_in, out, deadline);
        let r = p.send_transaction(send(data)).await.unwrap().get_receipt().await.unwrap();
        assert!(r.status(), "{what}: swap at min_out = quote reverted");
        gas.push(r.gas_used);
        let (in1, out1) =
            (chain.balance_of(c_in, me).await.unwrap(), chain.balance_of(c_out, me).await.unwrap());
        assert_eq!(in0 - in1, q.amount_in, "{what}: paid");
        assert_eq!(out1 - out0, q.amount_out, "{what}: received");
        let Pool::V4(_) = pool else { panic!("not a v4 pool") };
    }
    // The pool kept liquidity for the trades above (sizes up to ~3e22 of 1e23 liquidity).
    assert!(chain.balance_of(tka, v4.manager).await.unwrap() > e18(1));
    gas.sort_unstable();
    eprintln!(
        "{TRADES} Universal Router V4 swaps paid exactly Keel's quote; execute(V4_SWAP) gas min {} median {} max {}; Permit2.approve gas {:?}",
        gas[0],
        gas[gas.len() / 2],
        gas[gas.len() - 1],
        approve_gas
    );
}
