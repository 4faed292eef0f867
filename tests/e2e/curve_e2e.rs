//! End to end through a Curve StableSwap-NG plain pool on anvil: the genuine Vyper contract
//! (`CurveStableSwapNG.vy`, compiled from vyper's PyPI release by `tests/chain/curve.sh` and
//! deployed by [`keel_sim::anvil::deploy_curve_ng`]) and Keel's full pipeline with the chain
//! poller: the pool's balances, rates, amplification ramp and fees come from its own views in the
//! poller's one batch per block, and the rebalance is sent as an ERC-20 approval of the pool plus
//! the pool's `exchange(i, j, dx, min_dy)` through the loopback relay.
//!
//! A 50/50 TKA/TKB portfolio is pushed off target when another account sells 40,000 TKA into the
//! pool (A = 5, 100,000 of each coin) and the exchange price follows. The only configured pool is
//! the Curve one, so the rebalance must go through it: the test checks that it landed, that the
//! pool's balances moved by exactly what the account's balances moved, that the pool paid exactly
//! the amount Keel planned (its exact StableSwap math against the real contract), and that Keel
//! sent nothing to the node itself. Needs anvil and the compiled pool: `make chain-deps` (the
//! test fails loudly without them).

use std::time::Duration;

use alloy::primitives::{Address, U256};
use keel_router::config::{CurveIndices, DexConfig, DexKind, PoolConfig};
use keel_runtime::pipeline::Pipeline;
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::curve::ICurveStableSwapNG;
use keel_sim::anvil::{AnvilChain, CurveNgParams, RpcRecorder, deploy_curve_ng, seed_curve_ng};

use crate::pair_rig::{BAND, FUNDER, PairRig, e18, landed_intents, pair_rig, wait_landed, wait_polled};

const TRADER: usize = 3;

fn whole(x: U256) -> f64 {
    f64::from(x) / 1e18
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_through_a_curve_stableswap_ng_pool() {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let a = chain.addresses().clone();
    let (tka, tkb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    // Coins in the pool in the order TKB, TKA (the pool's order need not be the addresses').
    let coins = [tkb, tka];
    let rate = U256::from(10u64).pow(U256::from(18u64));
    let params = CurveNgParams {
        coins: coins.to_vec(),
        rate_multipliers: vec![rate, rate],
        a: 5,
        fee: 4_000_000,
        offpeg_fee_multiplier: 20_000_000_000,
    };
    let pool = deploy_curve_ng(&chain, &params).await.expect("curve pool (run `make chain-deps`)");
    seed_curve_ng(&chain, pool, &coins, &[e18(100_000), e18(100_000)], FUNDER).await.expect("seed the pool");

    // The portfolio: 50/50 TKA/TKB, a fresh dev key funded 1000 of each (no approvals yet), whose
    // only pool is the Curve one.
    let recorder = RpcRecorder::start(chain.http_url()).await.expect("rpc recorder");
    let (token0, token1) = if tka < tkb { ("TKA", "TKB") } else { ("TKB", "TKA") };
    let dex = DexConfig {
        name: "curve".into(),
        kind: DexKind::CurveStableswap,
        router: Address::ZERO,
        factory: None,
        via: Default::default(),
    };
    let pools = vec![PoolConfig {
        name: "curve-tka-tkb".into(),
        dex: "curve".into(),
        address: pool,
        token0: token0.into(),
        token1: token1.into(),
        fee: None,
        gas: None,
        tick_spacing: None,
        curve_indices: Some(CurveIndices::Uint128),
        pool_id: None,
        flavour: None,
        hooks: None,
    }];
    let PairRig { relay, quotes, spec, me } =
        pair_rig(&chain, recorder.url(), [("TKA", tka), ("TKB", tkb)], &[], dex, pools).await;
    keel_router::config::validate(&spec.tokens, &spec.dexes, &spec.pools, &spec.router, &spec.relays)
        .expect("the test's config passes check-config's rules");
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");

    // At target: nothing fires.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = pipeline.snapshot();
    assert_eq!(snap.engine.intents_emitted, 0, "fired while on target: {snap:?}");

    // Another account sells 40,000 TKA into the pool; the exchange follows.
    let trader = chain.wallet_provider(TRADER);
    IERC20::new(tka, &trader).approve(pool, U256::MAX).send().await.unwrap().get_receipt().await.unwrap();
    let r = ICurveStableSwapNG::new(pool, &trader)
        .exchange(1, 0, e18(40_000), U256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status(), "the trader's exchange reverted");
    // The exchange follows once the poller has read the pool after the sale (two more blocks).
    wait_polled(&pipeline, 2).await;
    // What the pool contract holds of each coin (its `get_balances` leaves out the admin fees).
    let held = async |coin| chain.balance_of(coin, pool).await.unwrap();
    let before = [held(tkb).await, held(tka).await];
    // TKA's price in TKB: what a thousandth of a TKA buys, by Keel's exact math on the pool's state.
    let probe = e18(1) / U256::from(1000u64);
    let mid = whole(
        keel_sim::anvil::read_ng_pool(chain.provider(), pool)
            .await
            .unwrap()
            .exchange(1, 0, probe, 0)
            .unwrap()
            .dy,
    ) / whole(probe);
    assert!(mid < 0.95, "the sale should have moved TKA down: {mid}");
    let (held_a, held_b) =
        (chain.balance_of(tka, me).await.unwrap(), chain.balance_of(tkb, me).await.unwrap());
    quotes.set_price("TKAUSDT", mid);

    // Keel detects the drift and lands a rebalance through the pool.
    let landed = wait_landed(&pipeline).await;
    let batches = pipeline.poll_stats().batches.load(std::sync::atomic::Ordering::Relaxed);
    let report = pipeline.shutdown().await;
    assert!(landed, "no rebalance landed: exec {:?}, outcomes {:?}", report.exec, report.outcomes);
    let landed = landed_intents(&report);
    assert_eq!(landed.len(), 1, "one rebalance expected: {:?}", report.outcomes);
    assert!(report.exec.approvals >= 1, "a fresh account must approve the pool first");

    // The exchange went through the pool: its holdings moved by exactly what the account's did.
    let after = [held(tkb).await, held(tka).await];
    let (now_a, now_b) = (chain.balance_of(tka, me).await.unwrap(), chain.balance_of(tkb, me).await.unwrap());
    assert!(now_a > held_a && now_b < held_b, "Keel should have bought TKA with TKB");
    assert_eq!(before[1] - after[1], now_a - held_a, "TKA the pool paid = TKA received");
    assert_eq!(after[0] - before[0], held_b - now_b, "TKB the pool got = TKB paid");
    // And paid exactly what Keel's exact math planned, on the state the poller read.
    let fills: Vec<_> = report.fills.iter().filter(|f| f.intent == landed[0]).collect();
    assert!(!fills.is_empty() && fills.iter().all(|f| f.pool == "curve-tka-tkb"), "{fills:?}");
    let last = fills.last().unwrap();
    assert_eq!((last.sell.as_str(), last.buy.as_str()), ("TKB", "TKA"));
    assert_eq!(last.amount_in, held_b - now_b, "planned TKB in");
    assert_eq!(last.amount_out, now_a - held_a, "planned TKA out, exact against the pool");
    let w = whole(now_a) * mid / (whole(now_a) * mid + whole(now_b));
    assert!((w - 0.5).abs() < BAND, "weight of TKA after the rebalance: {w}");

    // The approval is on chain (the pool is the spender), the poller read every block in one
    // batch, and Keel sent nothing to the node itself.
    let allowance = IERC20::new(tkb, chain.provider()).allowance(me, pool).call().await.unwrap();
    assert!(allowance > U256::ZERO, "the pool is the spender");
    assert!(batches >= 4, "poller batches: {batches}");
    crate::anvil_e2e::assert_sent_only_through_the_relay(&recorder, &relay);
    eprintln!(
        "landed through the Curve pool: {} TKB -> {} TKA, {} fills, {batches} poller batches",
        whole(last.amount_in),
        whole(last.amount_out),
        fills.len()
    );
    relay.shutdown().await.expect("relay shutdown");
}
