//! Keel's V4 two-hop paths against the real contracts: TKA → TKB → TKC (and back) through two pools
//! of one `PoolManager`, sent with Keel's calldata through v4-periphery's `MockV4Router` and through
//! the real `UniversalRouter` (Permit2). Each trade is quoted hop by hop by Keel's pool model on the
//! state read from the manager's storage (what the planner routes on): with `min_out = quote + 1`
//! it must revert `V4TooLittleReceived`, with `min_out = quote` it must land and move the account's
//! balances by exactly Keel's amounts. Exact-output paths, in the layout each router reads (the
//! Universal Router 2.1's has `maxHopSlippage` after the path), land with the quoted amounts: the
//! layouts the mempool decoder reads.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256, aliases::U48, aliases::U160};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, SolError, SolValue};
use keel_amm::abi::PERMIT2_ADDRESS;
use keel_amm::pool::SwapAmount;
use keel_amm::v3::MAX_TICK;
use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
use keel_amm::v4::PoolKey;
use keel_feeds::node::TrackedPool;
use keel_feeds::node::sync::load_pool;
use keel_router::exec::{V4Route, universal_router_v4, v4_execute_actions};
use keel_sim::anvil::contracts::rpc::{IERC20, IPermit2};
use keel_sim::anvil::{V4Position, deploy_v4};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::util::chain;

const LP: usize = 1;
const SWAPPER: usize = 2;
const TRADES: usize = 16;

alloy::sol! {
    error V4TooLittleReceived(uint256 minAmountOutReceived, uint256 amountReceived);
    struct PathKey { address intermediateCurrency; uint24 fee; int24 tickSpacing; address hooks; bytes hookData; }
    /// v4-periphery 1.0 (`MockV4Router`).
    struct ExactOut { address currencyOut; PathKey[] path; uint128 amountOut; uint128 amountInMaximum; }
    /// The Universal Router 2.1 (per-hop bounds after the path).
    struct ExactOutPerHop { address currencyOut; PathKey[] path; uint256[] maxHopSlippage; uint128 amountOut; uint128 amountInMaximum; }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_v4_two_hop_swaps_pay_exactly_the_quote_through_both_routers() {
    let chain = chain().await;
    let seed: u64 = std::env::var("KEEL_V4_PATH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x2_4a9);
    eprintln!("seed {seed} (set KEEL_V4_PATH_SEED to vary)");
    let mut rng = StdRng::seed_from_u64(seed);
    let a = chain.addresses().clone();
    let (tka, tkb, tkc) = (a.token("TKA").unwrap(), a.token("TKB").unwrap(), a.token("TKC").unwrap());
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");
    // A → B at 0.3%, B → C at 0.05%: a full-range position and narrow ones around the price, so
    // that larger trades cross initialized ticks on both hops.
    let keys = [PoolKey::hookless(tka, tkb, 3000, 60), PoolKey::hookless(tkb, tkc, 500, 10)];
    let mut salt = 0u64;
    for k in &keys {
        let tick = rng.random_range(-2_000..2_000);
        v4.initialize(&chain, k, get_sqrt_ratio_at_tick(tick).unwrap()).await.expect("initialize");
        v4.approve_liquidity(&chain, k, LP).await.expect("approve liquidity");
        let s = k.tick_spacing;
        let full = (MAX_TICK / s) * s;
        let mut ranges = vec![(-full, full, 10i128.pow(22))];
        for _ in 0..3 {
            let lo = (tick / s + rng.random_range(-40..40)) * s;
            ranges.push((
                lo,
                lo + rng.random_range(1..20) * s,
                rng.random_range(10i128.pow(20)..10i128.pow(22)),
            ));
        }
        for (lo, hi, l) in ranges {
            salt += 1;
            let pos = V4Position { tick_lower: lo, tick_upper: hi, liquidity: l, salt };
            v4.modify(&chain, k, LP, pos).await.expect("add liquidity");
        }
    }
    let ur = v4.deploy_universal_router(&chain).await.expect("Permit2 + Universal Router");
    let p = chain.wallet_provider(SWAPPER);
    let me = chain.address(SWAPPER);
    // The approvals `keel run` sends: the V4 router as an ERC-20 spender; Permit2 and, in Permit2,
    // the Universal Router.
    for t in [tka, tkc] {
        for spender in [v4.router, PERMIT2_ADDRESS] {
            let r = IERC20::new(t, &p).approve(spender, U256::MAX).send().await.unwrap();
            assert!(r.get_receipt().await.unwrap().status(), "approval of {spender}");
        }
        let r = IPermit2::new(PERMIT2_ADDRESS, &p).approve(t, ur, U160::MAX, U48::MAX).send().await.unwrap();
        assert!(r.get_receipt().await.unwrap().status(), "Permit2.approve of the router");
    }
    let tracked = |k: &PoolKey| TrackedPool::v4(v4.manager, *k);

    let (mut gas, mut crossed) = (Vec::new(), 0u32);
    for t in 0..TRADES {
        // A → C or C → A, alternately through each router.
        let forward = rng.random_bool(0.5);
        let (c_in, mid, c_out) = if forward { (tka, tkb, tkc) } else { (tkc, tkb, tka) };
        let hops_keys = if forward { [keys[0], keys[1]] } else { [keys[1], keys[0]] };
        let amount_in = 10f64.powf(rng.random_range(15.0f64..21.7)) as u128;
        let via_ur = t % 2 == 1;
        let what = format!(
            "trade {t}: {} in {amount_in} via {}",
            if forward { "A→C" } else { "C→A" },
            if via_ur { "UR" } else { "V4Router" }
        );

        // Keel's quote: hop by hop on the state loaded from the manager, as the planner routes.
        let head = chain.provider().get_block_number().await.unwrap();
        let mut amount = U256::from(amount_in);
        for (k, token_in) in hops_keys.iter().zip([c_in, mid]) {
            let pool = load_pool(chain.provider(), &tracked(k), head).await.expect("load the pool");
            let q =
                pool.swap(token_in == k.currency0, SwapAmount::ExactIn(amount), None).expect("keel quote");
            assert_eq!(q.amount_in, amount, "{what}: a hop filled partly");
            crossed += q.ticks_crossed;
            amount = q.amount_out;
        }
        let out: u128 = amount.to();
        let hops = [(hops_keys[0], mid), (hops_keys[1], c_out)];
        let route = V4Route::Path { currency_in: c_in, hops: &hops };
        let now = chain.provider().get_block_by_number(head.into()).await.unwrap().unwrap().header.timestamp;
        let calldata = |min_out: u128| {
            let (to, data) = if via_ur {
                (ur, universal_router_v4(route, amount_in, min_out, U256::from(now + 120)))
            } else {
                (v4.router, v4_execute_actions(route, amount_in, min_out))
            };
            TransactionRequest::default().with_to(to).with_input(data).with_gas_limit(2_000_000)
        };

        let err = p.call(calldata(out + 1)).await.expect_err("min_out = quote + 1 must revert");
        let sel = alloy::primitives::hex::encode(V4TooLittleReceived::SELECTOR);
        assert!(
            err.to_string().to_lowercase().contains(&sel),
            "{what}: expected V4TooLittleReceived, got {err}"
        );

        let (in0, out0, mid0) = (
            chain.balance_of(c_in, me).await.unwrap(),
            chain.balance_of(c_out, me).await.unwrap(),
            chain.balance_of(mid, me).await.unwrap(),
        );
        let r = p.send_transaction(calldata(out)).await.unwrap().get_receipt().await.unwrap();
        assert!(r.status(), "{what}: swap at min_out = quote reverted");
        gas.push(r.gas_used);
        assert_eq!(in0 - chain.balance_of(c_in, me).await.unwrap(), U256::from(amount_in), "{what}: paid");
        assert_eq!(chain.balance_of(c_out, me).await.unwrap() - out0, amount, "{what}: received, to the wei");
        assert_eq!(chain.balance_of(mid, me).await.unwrap(), mid0, "{what}: nothing of the hub token stays");
    }

    // Exact output along C → B → A, the layouts the mempool decoder reads: v4-periphery 1.0's
    // through `MockV4Router`, the per-hop one through the Universal Router. The path lists each
    // hop's input currency from the first; the quote runs backwards from the output.
    for via_ur in [false, true] {
        let amount_out = U256::from(10u64).pow(U256::from(18u64)) * U256::from(if via_ur { 3u64 } else { 5 });
        let head = chain.provider().get_block_number().await.unwrap();
        let mut need = amount_out;
        for (k, token_out) in [(keys[0], tka), (keys[1], tkb)] {
            let pool = load_pool(chain.provider(), &tracked(&k), head).await.expect("load the pool");
            let q =
                pool.swap(token_out == k.currency1, SwapAmount::ExactOut(need), None).expect("keel quote");
            assert_eq!(q.amount_out, need, "exact output filled partly");
            need = q.amount_in;
        }
        let path_key = |c: Address, k: &PoolKey| PathKey {
            intermediateCurrency: c,
            fee: alloy::primitives::aliases::U24::from(k.fee),
            tickSpacing: alloy::primitives::aliases::I24::try_from(k.tick_spacing).unwrap(),
            hooks: Address::ZERO,
            hookData: Default::default(),
        };
        let path = vec![path_key(tkc, &keys[1]), path_key(tkb, &keys[0])];
        let (out_u128, max_in) = (amount_out.to::<u128>(), need.to::<u128>());
        let swap: Vec<u8> = if via_ur {
            ExactOutPerHop {
                currencyOut: tka,
                path,
                maxHopSlippage: Vec::new(),
                amountOut: out_u128,
                amountInMaximum: max_in,
            }
            .abi_encode()
        } else {
            ExactOut { currencyOut: tka, path, amountOut: out_u128, amountInMaximum: max_in }.abi_encode()
        };
        let params: Vec<alloy::primitives::Bytes> = vec![
            swap.into(),
            (tkc, need).abi_encode_params().into(),
            (tka, amount_out).abi_encode_params().into(),
        ];
        let payload = (alloy::primitives::Bytes::from(vec![0x09u8, 0x0c, 0x0f]), params).abi_encode_params();
        let (to, data) = if via_ur {
            let now =
                chain.provider().get_block_by_number(head.into()).await.unwrap().unwrap().header.timestamp;
            let call = keel_amm::abi::IUniversalRouter::executeCall {
                commands: vec![0x10u8].into(),
                inputs: vec![payload.into()],
                deadline: U256::from(now + 120),
            };
            (ur, call.abi_encode())
        } else {
            let call = keel_amm::abi::IV4Router::executeActionsCall { params: payload.into() };
            (v4.router, call.abi_encode())
        };
        let (in0, out0) =
            (chain.balance_of(tkc, me).await.unwrap(), chain.balance_of(tka, me).await.unwrap());
        let tx = TransactionRequest::default().with_to(to).with_input(data).with_gas_limit(2_000_000);
        let r = p.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
        assert!(r.status(), "exact-output path via {} reverted", if via_ur { "UR" } else { "V4Router" });
        assert_eq!(in0 - chain.balance_of(tkc, me).await.unwrap(), need, "exact output: paid the quote");
        assert_eq!(chain.balance_of(tka, me).await.unwrap() - out0, amount_out, "exact output: received");
    }

    gas.sort_unstable();
    eprintln!(
        "{TRADES} V4 two-hop swaps paid exactly Keel's quote ({crossed} ticks crossed in all); gas min {} median {} max {}",
        gas[0],
        gas[gas.len() / 2],
        gas[gas.len() - 1]
    );
    assert!(crossed > 0, "no trade crossed a tick: the narrow positions are not exercised");
}
