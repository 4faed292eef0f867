//! Uniswap V4 on anvil: the real `PoolManager` and v4-core's test routers (`PoolSwapTest`,
//! `PoolModifyLiquidityTest`) from the pinned `@uniswap/v4-core` package, against Keel's V4 pool
//! model ([`keel_amm::v4`], the V3 swap loop at the V4 swap fee).
//!
//! Four hookless pools in one `PoolManager`: three of two ERC-20s (fee/spacing 3000/60, 500/10 and
//! 12345/200, a fee no V3 tier has and a spacing the fee does not imply) and one with native ETH
//! as `currency0` (`address(0)`). Each is initialized at a random price (the `Initialize` event's
//! pool id must equal `keccak256(abi.encode(key))` from [`PoolKey::id`]), given a full-range
//! position and random positions (some out of range, some overlapping) through
//! `PoolModifyLiquidityTest`, mirrored into Keel's pool with `modify_position`. Each trade (random
//! direction, exact input or exact output, log-uniform size up to beyond the in-range liquidity)
//! is quoted by Keel ([`Pool::swap`]) and by `keel quote` (its JSON, a `uniswap_v4` pool routed by
//! the split optimiser), simulated with an `eth_call` of `PoolSwapTest.swap` (the `BalanceDelta`
//! it returns), then executed: the caller's token (and ETH) balances must move by exactly Keel's
//! amounts, and the pool's `slot0` price and tick and its liquidity (read with `extsload`) must
//! equal Keel's state after the swap. The next trade starts from that state.

use alloy::network::TransactionBuilder;
use alloy::primitives::{
    Address, B256, Bytes, I256, U256, aliases::I24, aliases::U24, aliases::U160, keccak256,
};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolValue;
use keel_amm::pool::{Pool, PoolError, SwapAmount};
use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
use keel_amm::v3::{MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO};
use keel_amm::v4::{PoolKey, V4Error, V4Pool};
use keel_sim::anvil::artifacts::{self, Artifact};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::contracts::{
    IERC20Mintable, IV4PoolManager, IV4PoolModifyLiquidityTest, IV4PoolSwapTest, V4PoolKey,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::util::chain;

/// Trades per pool (four pools).
const TRADES: usize = 12;

async fn deploy(p: &DynProvider, artifact: Artifact, args: Vec<u8>) -> Address {
    let mut code = artifacts::bytecode(artifact).expect("v4 artifact (run `make chain-deps`)").to_vec();
    code.extend_from_slice(&args);
    let tx = TransactionRequest::default().with_deploy_code(Bytes::from(code)).with_gas_limit(15_000_000);
    let r = p.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(r.status(), "deploy {artifact:?} reverted");
    r.contract_address.expect("contract address")
}

fn sol_key(k: &PoolKey) -> V4PoolKey {
    V4PoolKey {
        currency0: k.currency0,
        currency1: k.currency1,
        fee: U24::from(k.fee),
        tickSpacing: I24::try_from(k.tick_spacing).unwrap(),
        hooks: k.hooks,
    }
}

/// `StateLibrary`: a pool's state lives at `keccak256(poolId ‖ POOLS_SLOT = 6)`; `slot0` packs
/// `sqrtPriceX96` (160 bits), `tick` (24), `protocolFee` (24), `lpFee` (24); liquidity is 3 slots on.
async fn on_chain_state(p: &DynProvider, manager: Address, id: B256) -> (U256, i32, u32, u32, u128) {
    let mut pre = [0u8; 64];
    pre[..32].copy_from_slice(id.as_slice());
    pre[63] = 6;
    let base = U256::from_be_bytes(keccak256(pre).0);
    let m = IV4PoolManager::new(manager, p);
    let slot0 = U256::from_be_bytes(m.extsload(B256::from(base)).call().await.unwrap().0);
    let liq = U256::from_be_bytes(m.extsload(B256::from(base + U256::from(3u8))).call().await.unwrap().0);
    let sqrt = slot0 & ((U256::from(1u8) << 160usize) - U256::from(1u8));
    let field = |shift: usize| ((slot0 >> shift) & U256::from(0xff_ffffu32)).to::<u32>();
    let tick_raw = field(160);
    let tick = ((tick_raw << 8) as i32) >> 8;
    let protocol_fee = field(184);
    let lp_fee = field(208);
    (sqrt, tick, protocol_fee, lp_fee, liq.to::<u128>())
}

/// `keel quote` for the pool as a `uniswap_v4` entry: `(amount in, amount out)`, or its error.
fn keel_quote(pool: &V4Pool, zfo: bool, amount: SwapAmount) -> Result<(U256, U256), String> {
    let k = pool.key();
    let s = pool.state();
    let ticks: Vec<_> = s
        .ticks()
        .map(|t| serde_json::json!({"index": t.index, "liquidity_net": t.liquidity_net.to_string()}))
        .collect();
    let entry = serde_json::json!({
        "id": "v4", "kind": "uniswap_v4",
        "token0": k.currency0.to_string(), "token1": k.currency1.to_string(),
        "fee": k.fee, "tick_spacing": k.tick_spacing, "hooks": k.hooks.to_string(),
        "sqrt_price_x96": s.sqrt_price_x96.to_string(), "tick": s.tick,
        "liquidity": s.liquidity.to_string(), "ticks": ticks,
    });
    let (sell, buy) = if zfo { (k.currency0, k.currency1) } else { (k.currency1, k.currency0) };
    let mut req = serde_json::json!({"pools": [entry], "sell": sell.to_string(), "buy": buy.to_string()});
    match amount {
        SwapAmount::ExactIn(a) => req["amount_in"] = serde_json::json!(a.to_string()),
        SwapAmount::ExactOut(a) => req["amount_out"] = serde_json::json!(a.to_string()),
    }
    let answer = keel_amm::quote::run_quote(req.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    let u = |f: &str| U256::from_str_radix(v[f].as_str().unwrap_or("x"), 10).map_err(|e| format!("{f}: {e}"));
    Ok((u("amount_in")?, u("amount_out")?))
}

/// Balance of `owner` in `currency` (`address(0)`: ETH).
async fn balance(p: &DynProvider, currency: Address, owner: Address) -> U256 {
    if currency == Address::ZERO {
        p.get_balance(owner).await.unwrap()
    } else {
        IERC20::new(currency, p).balanceOf(owner).call().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_quotes_equal_the_pool_manager_to_the_wei() {
    let chain = chain().await;
    let p = chain.wallet_provider(0);
    let me = chain.address(0);
    let seed: u64 = std::env::var("KEEL_V4_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x4_4444);
    eprintln!("seed {seed} (set KEEL_V4_SEED to vary)");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut tokens = Vec::new();
    for sym in ["VA", "VB"] {
        let args = (sym.to_string(), sym.to_string()).abi_encode_params();
        tokens.push(deploy(&p, Artifact::Erc20Mintable, args).await);
    }
    tokens.sort();
    let manager = deploy(&p, Artifact::V4PoolManager, me.abi_encode()).await;
    let swapper = deploy(&p, Artifact::V4PoolSwapTest, manager.abi_encode()).await;
    let lp = deploy(&p, Artifact::V4PoolModifyLiquidityTest, manager.abi_encode()).await;
    for &t in &tokens {
        let e = U256::from(10u64).pow(U256::from(30u8));
        IERC20Mintable::new(t, &p).mint(me, e).send().await.unwrap().get_receipt().await.unwrap();
        for spender in [swapper, lp] {
            IERC20::new(t, &p).approve(spender, U256::MAX).send().await.unwrap().get_receipt().await.unwrap();
        }
    }
    // plenty of ETH for the native pool
    let eth = U256::from(10u64).pow(U256::from(28u8));
    let _: serde_json::Value = p.raw_request("anvil_setBalance".into(), (me, eth)).await.unwrap();

    let specs = [
        (tokens[0], tokens[1], 3000u32, 60i32),
        (tokens[0], tokens[1], 500, 10),
        (tokens[0], tokens[1], 12_345, 200),
        (Address::ZERO, tokens[0], 3000, 60),
    ];
    let (mut compared, mut partial, mut refused, mut gas) = (0usize, 0usize, 0usize, Vec::new());
    for (n, &(c0, c1, fee, spacing)) in specs.iter().enumerate() {
        let key = PoolKey { currency0: c0, currency1: c1, fee, tick_spacing: spacing, hooks: Address::ZERO };
        let id = key.id();
        let start_tick: i32 = rng.random_range(-5_000..5_000);
        let sqrt = get_sqrt_ratio_at_tick(start_tick).unwrap() + U256::from(rng.random_range(0u64..u64::MAX));
        let r = IV4PoolManager::new(manager, &p)
            .initialize(sol_key(&key), U160::from(sqrt))
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(r.status(), "pool {n}: initialize reverted");
        let init = r
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<IV4PoolManager::Initialize>().ok())
            .expect("Initialize event");
        assert_eq!(init.inner.id, id, "pool {n}: pool id is keccak256(abi.encode(key))");
        let tick = init.inner.tick.as_i32();
        let mut keel = V4Pool::new(key, sqrt, tick, 0, fee, 0, &[]).unwrap();

        // A full-range position and five random ones around the price.
        let full = (MAX_TICK / spacing) * spacing;
        let mut ranges = vec![(-full, full, rng.random_range(10u128.pow(18)..10u128.pow(20)))];
        for _ in 0..5 {
            let a = (tick / spacing + rng.random_range(-60..60)) * spacing;
            let b = a + rng.random_range(1..40) * spacing;
            ranges.push((a, b, rng.random_range(10u128.pow(18)..10u128.pow(21))));
        }
        for (k, &(lo, hi, l)) in ranges.iter().enumerate() {
            let params = IV4PoolModifyLiquidityTest::ModifyLiquidityParams {
                tickLower: I24::try_from(lo).unwrap(),
                tickUpper: I24::try_from(hi).unwrap(),
                liquidityDelta: I256::try_from(l).unwrap(),
                salt: B256::from(U256::from(k)),
            };
            let lp_router = IV4PoolModifyLiquidityTest::new(lp, &p);
            let call = lp_router.modifyLiquidity(sol_key(&key), params, Bytes::new()).value(
                if c0 == Address::ZERO { U256::from(10u64).pow(U256::from(26u8)) } else { U256::ZERO },
            );
            let r = call.send().await.unwrap().get_receipt().await.unwrap();
            assert!(r.status(), "pool {n}: modifyLiquidity {lo}..{hi} reverted");
            keel.state_mut().modify_position(lo, hi, l as i128).unwrap();
        }
        let (s0, t0, pf, lpf, liq) = on_chain_state(&p, manager, id).await;
        assert_eq!((s0, t0, pf, lpf, liq), (sqrt, tick, 0, fee, keel.state().liquidity), "pool {n}: state");

        for t in 0..TRADES {
            let zfo = rng.random_bool(0.5);
            let exact_in = rng.random_bool(0.5);
            let amount = U256::from(10f64.powf(rng.random_range(12.0f64..21.7)) as u128);
            let swap_amount =
                if exact_in { SwapAmount::ExactIn(amount) } else { SwapAmount::ExactOut(amount) };
            let what = format!("pool {n} trade {t}: zfo {zfo} {swap_amount:?}");
            let pool = Pool::V4(Box::new(keel.clone()));
            let q = match pool.swap(zfo, swap_amount, None) {
                Ok(q) => q,
                Err(PoolError::V4(V4Error::AmountTooLarge(_))) => {
                    // the PoolManager reverts too (SafeCast of the int128 delta)
                    let specified = I256::try_from(amount).unwrap();
                    let params = IV4PoolSwapTest::SwapParams {
                        zeroForOne: zfo,
                        amountSpecified: if exact_in { -specified } else { specified },
                        sqrtPriceLimitX96: U160::from(if zfo {
                            MIN_SQRT_RATIO + U256::from(1u8)
                        } else {
                            MAX_SQRT_RATIO - U256::from(1u8)
                        }),
                    };
                    let settings =
                        IV4PoolSwapTest::TestSettings { takeClaims: false, settleUsingBurn: false };
                    let router = IV4PoolSwapTest::new(swapper, &p);
                    let r = router.swap(sol_key(&key), params, settings, Bytes::new()).call().await;
                    assert!(
                        r.is_err(),
                        "{what}: keel refused int128 overflow, the PoolManager swapped {r:?}"
                    );
                    refused += 1;
                    continue;
                }
                Err(e) => panic!("{what}: keel {e}"),
            };
            let full_fill = if exact_in { q.amount_in == amount } else { q.amount_out == amount };
            if full_fill {
                let answer =
                    keel_quote(&keel, zfo, swap_amount).unwrap_or_else(|e| panic!("{what}: keel quote {e}"));
                assert_eq!(answer, (q.amount_in, q.amount_out), "{what}: keel quote");
            } else {
                partial += 1;
            }

            // V4 sign: negative amountSpecified = exact input
            let specified = I256::try_from(amount).unwrap();
            let params = IV4PoolSwapTest::SwapParams {
                zeroForOne: zfo,
                amountSpecified: if exact_in { -specified } else { specified },
                sqrtPriceLimitX96: U160::from(if zfo {
                    MIN_SQRT_RATIO + U256::from(1u8)
                } else {
                    MAX_SQRT_RATIO - U256::from(1u8)
                }),
            };
            let settings = IV4PoolSwapTest::TestSettings { takeClaims: false, settleUsingBurn: false };
            let value = if zfo && c0 == Address::ZERO { q.amount_in } else { U256::ZERO };
            let router = IV4PoolSwapTest::new(swapper, &p);
            let call = router.swap(sol_key(&key), params, settings, Bytes::new()).value(value);
            let delta = call.call().await.unwrap_or_else(|e| panic!("{what}: eth_call {e}"));
            let d0 = delta.asr(128);
            let d1 = (delta << 128usize).asr(128);
            let (d_in, d_out) = if zfo { (d0, d1) } else { (d1, d0) };
            assert_eq!((-d_in).into_raw(), q.amount_in, "{what}: amount in (BalanceDelta)");
            assert_eq!(d_out.into_raw(), q.amount_out, "{what}: amount out (BalanceDelta)");

            let (c_in, c_out) = if zfo { (c0, c1) } else { (c1, c0) };
            let (in_before, out_before) = (balance(&p, c_in, me).await, balance(&p, c_out, me).await);
            let r = call.send().await.unwrap().get_receipt().await.unwrap();
            assert!(r.status(), "{what}: swap reverted");
            gas.push(r.gas_used);
            let fee_paid = U256::from(r.gas_used) * U256::from(r.effective_gas_price);
            let (in_after, out_after) = (balance(&p, c_in, me).await, balance(&p, c_out, me).await);
            let (gas_in, gas_out) = (
                if c_in == Address::ZERO { fee_paid } else { U256::ZERO },
                if c_out == Address::ZERO { fee_paid } else { U256::ZERO },
            );
            assert_eq!(in_before - in_after - gas_in, q.amount_in, "{what}: paid");
            assert_eq!(out_after + gas_out - out_before, q.amount_out, "{what}: received");

            let mut pool = pool;
            pool.apply(&q.change).unwrap();
            let Pool::V4(after) = pool else { unreachable!() };
            keel = *after;
            let s = keel.state();
            let (s0, t0, _, _, liq) = on_chain_state(&p, manager, id).await;
            assert_eq!((s0, t0, liq), (s.sqrt_price_x96, s.tick, s.liquidity), "{what}: state after");
            compared += 1;
        }
    }
    gas.sort_unstable();
    eprintln!(
        "{compared} V4 swaps equal to the wei ({partial} partial fills at the price bound, {refused} int128 refusals matched); PoolSwapTest.swap gas min {} median {} max {}",
        gas[0],
        gas[gas.len() / 2],
        gas[gas.len() - 1]
    );
    assert!(compared >= 36, "only {compared} trades compared");
}
