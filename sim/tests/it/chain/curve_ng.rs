//! Curve StableSwap on anvil: the genuine `CurveStableSwapNG.vy` (curvefi/stableswap-ng at fd54b9a,
//! compiled by vyper 0.4.3 from PyPI by `tests/chain/curve.sh`) against Keel's StableSwap math
//! ([`keel_amm::curve`], the `factory_plain` flavour with NG's off-peg fee) and `keel quote`.
//!
//! Four plain pools of the harness's ERC-20s: two of 2 coins and two of 3, one coin of each taking
//! the rate of a 6-decimal coin (`10^30`: the pool takes rates as given), each at a random `A`
//! (10–2,000) and fee (0.01%–0.4%), half of them with a constant fee and half with a random off-peg
//! multiplier (2–5×: the fee grows off the peg). Each is funded unevenly with `add_liquidity`,
//! read back (`get_balances`, `stored_rates`, `A_precise`, `fee`, `offpeg_fee_multiplier`,
//! `admin_fee`) into a Keel pool, and traded at random (pair, direction, log-uniform size up to a
//! third of the pool). Before each trade Keel's quote and `keel quote` (its JSON, a
//! `curve_stableswap` pool routed by the split optimiser) must agree; `exchange` with
//! `min_dy = quote + 1` must revert, and with `min_dy = quote` must pay the account exactly the
//! quote and leave `get_balances()` exactly as Keel's `exchange` does (the admin fee kept out).

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use keel_amm::curve::{AmpRamp, Flavour, StableSwapPool};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::curve::ICurveStableSwapNG;
use keel_sim::anvil::{CurveNgParams, deploy_curve_ng};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::util::chain;

/// Trades per pool (four pools).
const TRADES: usize = 10;
/// The rate of an 18-decimal coin and of a 6-decimal one.
const RATE_18: u128 = 1_000_000_000_000_000_000;
const RATE_6: u128 = 1_000_000_000_000_000_000_000_000_000_000;

fn u(v: u128) -> U256 {
    U256::from(v)
}

/// `keel quote` for the pair (`i`, `j`) of the pool, selling `dx` of coin `i`: the amount out.
fn keel_quote(
    pool: &StableSwapPool,
    coins: &[Address],
    i: usize,
    j: usize,
    dx: U256,
) -> Result<U256, String> {
    let (lo, hi) = if coins[i] < coins[j] { (i, j) } else { (j, i) };
    let decimals: Vec<u8> = pool.rates().iter().map(|r| if *r == u(RATE_6) { 6 } else { 18 }).collect();
    let entry = serde_json::json!({
        "id": "crv", "kind": "curve_stableswap", "flavour": "factory_plain",
        "token0": coins[lo].to_string(), "token1": coins[hi].to_string(), "index0": lo, "index1": hi,
        "balances": pool.balances().iter().map(U256::to_string).collect::<Vec<_>>(),
        "decimals": decimals, "a": pool.amp_ramp().initial_a.to_string(),
        "fee": pool.fee(), "admin_fee": pool.admin_fee(),
        "offpeg_fee_multiplier": pool.offpeg_fee_multiplier(),
    });
    let req = serde_json::json!({
        "pools": [entry], "sell": coins[i].to_string(), "buy": coins[j].to_string(), "amount_in": dx.to_string(),
    });
    let answer = keel_amm::quote::run_quote(req.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
    U256::from_str_radix(v["amount_out"].as_str().unwrap_or("x"), 10).map_err(|e| format!("{e}: {answer}"))
}

async fn send(p: &DynProvider, to: Address, input: Vec<u8>) -> bool {
    send_for_gas(p, to, input).await.is_some()
}

/// Sends a call; the gas it used, or `None` if it reverted.
async fn send_for_gas(p: &DynProvider, to: Address, input: Vec<u8>) -> Option<u64> {
    let tx = TransactionRequest::default().with_to(to).with_input(input).with_gas_limit(3_000_000);
    let r = p.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    r.status().then_some(r.gas_used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curve_stableswap_ng_pays_exactly_keels_quote() {
    let chain = chain().await;
    let me = chain.address(0);
    let seed: u64 = std::env::var("KEEL_CURVE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xC0_5E);
    eprintln!("seed {seed} (set KEEL_CURVE_SEED to vary)");
    let mut rng = StdRng::seed_from_u64(seed);
    let a = chain.addresses();
    let tokens = [a.token("TKA").unwrap(), a.token("TKB").unwrap(), a.token("TKC").unwrap()];
    let (mut exact, mut dynamic_fees) = (0usize, 0usize);
    let mut gas: Vec<(usize, u64)> = Vec::new();
    for (n, (n_coins, offpeg)) in [(2usize, false), (3, true), (2, true), (3, false)].into_iter().enumerate()
    {
        let coins = tokens[..n_coins].to_vec();
        let rates: Vec<U256> = (0..n_coins).map(|k| u(if k == 1 { RATE_6 } else { RATE_18 })).collect();
        let params = CurveNgParams {
            coins: coins.clone(),
            rate_multipliers: rates.clone(),
            a: rng.random_range(10..=2_000),
            fee: rng.random_range(1_000_000..=40_000_000),
            offpeg_fee_multiplier: if offpeg {
                rng.random_range(20_000_000_000..=50_000_000_000)
            } else {
                10_000_000_000
            },
        };
        let pool_addr = deploy_curve_ng(&chain, &params).await.expect("Curve pool (run `make chain-deps`)");
        // A fresh provider: the deployment spent a nonce another provider's filler does not know.
        let p = chain.wallet_provider(0);
        let curve = ICurveStableSwapNG::new(pool_addr, &p);
        // Uneven funding: about a million of each coin (in its own units), ±40%.
        let mut amounts = Vec::new();
        for (k, &coin) in coins.iter().enumerate() {
            assert!(
                send(&p, coin, IERC20::approveCall { spender: pool_addr, amount: U256::MAX }.abi_encode())
                    .await
            );
            let whole = rng.random_range(600_000u128..=1_400_000);
            amounts.push(if rates[k] == u(RATE_6) { u(whole * 1_000_000) } else { u(whole) * u(RATE_18) });
        }
        let add =
            ICurveStableSwapNG::add_liquidityCall { amounts: amounts.clone(), min_mint_amount: U256::ZERO };
        assert!(send(&p, pool_addr, add.abi_encode()).await, "pool {n}: add_liquidity reverted");

        let balances = curve.get_balances().call().await.unwrap();
        assert_eq!(balances, amounts, "pool {n}: balances after the first deposit");
        let stored = curve.stored_rates().call().await.unwrap();
        assert_eq!(stored, rates);
        let amp = curve.A_precise().call().await.unwrap();
        assert_eq!(amp, U256::from(params.a * 100), "A_precise is A × 100");
        let fee = curve.fee().call().await.unwrap().to::<u64>();
        let admin_fee = curve.admin_fee().call().await.unwrap().to::<u64>();
        let multiplier = curve.offpeg_fee_multiplier().call().await.unwrap().to::<u64>();
        assert_eq!((fee, multiplier), (params.fee, params.offpeg_fee_multiplier));
        let mut keel = StableSwapPool::new(
            Flavour::FactoryPlain,
            &balances,
            &stored,
            AmpRamp::constant(amp),
            fee,
            admin_fee,
        )
        .unwrap();
        keel.set_offpeg_fee_multiplier(multiplier);

        for t in 0..TRADES {
            let i = rng.random_range(0..n_coins);
            let j = (i + rng.random_range(1..n_coins)) % n_coins;
            let bal_i = keel.balances()[i];
            // log-uniform from a millionth to a third of coin i's balance
            let frac = 10f64.powf(rng.random_range(-6.0f64..-0.48));
            let dx = U256::from((f64::from(bal_i) * frac) as u128).max(U256::from(1_000u64));
            let outcome = keel.exchange(i, j, dx, 0).expect("Keel's exchange");
            let dy = outcome.dy;
            assert_eq!(keel_quote(&keel, &coins, i, j, dx), Ok(dy), "pool {n} trade {t}: keel quote");
            if multiplier > 10_000_000_000 {
                let static_fee = {
                    let mut flat = keel.clone();
                    flat.set_offpeg_fee_multiplier(0);
                    flat.exchange(i, j, dx, 0).unwrap().dy
                };
                dynamic_fees += usize::from(static_fee > dy);
            }
            let call = |min_dy: U256| {
                ICurveStableSwapNG::exchangeCall { i: i as u128, j: j as u128, dx, min_dy }.abi_encode()
            };
            assert!(
                !send(&p, pool_addr, call(dy + U256::from(1u8))).await,
                "pool {n} trade {t}: quote + 1 must revert"
            );
            let before = IERC20::new(coins[j], &p).balanceOf(me).call().await.unwrap();
            let used = send_for_gas(&p, pool_addr, call(dy)).await;
            gas.push((
                n_coins,
                used.unwrap_or_else(|| panic!("pool {n} trade {t}: exchange at the quote reverted")),
            ));
            let got = IERC20::new(coins[j], &p).balanceOf(me).call().await.unwrap() - before;
            assert_eq!(got, dy, "pool {n} trade {t}: {i}->{j} dx {dx}: paid");
            keel.set_balances(&outcome.balances[..n_coins]).unwrap();
            let on_chain = curve.get_balances().call().await.unwrap();
            assert_eq!(on_chain, keel.balances(), "pool {n} trade {t}: balances after the swap");
            exact += 1;
        }
        eprintln!(
            "pool {n}: {n_coins} coins, A {}, fee {}, off-peg multiplier {}: {TRADES} trades exact",
            params.a, params.fee, params.offpeg_fee_multiplier
        );
    }
    assert_eq!(exact, 4 * TRADES);
    assert!(dynamic_fees > 0, "no trade paid a raised fee: the off-peg multiplier went untested");
    eprintln!("{exact} exchanges exact to the wei; {dynamic_fees} paid a fee raised off the peg");
    for coins in [2usize, 3] {
        let mut g: Vec<u64> = gas.iter().filter(|(n, _)| *n == coins).map(|(_, g)| *g).collect();
        g.sort_unstable();
        eprintln!(
            "exchange gas, {coins} coins: median {}, min {}, max {}",
            g[g.len() / 2],
            g[0],
            g[g.len() - 1]
        );
        // Keel's default prices a swap at no less than the median the contract uses, and the gas
        // limit it sets (the default plus the router's 30% margin) covers the dearest one.
        let default = keel_amm::venue::DEFAULT_CURVE_SWAP_GAS;
        assert!(g[g.len() / 2] <= default && g[g.len() - 1] <= default * 13 / 10, "{g:?}");
    }
}
