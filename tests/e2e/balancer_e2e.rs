//! End to end through a Balancer V2 weighted pool on anvil: the real Vault and `WeightedPool`
//! (`@balancer-labs/v2-deployments`, deployed next to the Uniswap contracts by
//! [`keel_sim::anvil::deploy_balancer_weighted`]) and Keel's full pipeline with the chain poller
//! (no node websocket): the pool's balances and fee come from the Vault's `getPoolTokens` and the
//! pool's `getSwapFeePercentage` in the poller's one batch per block, and the rebalance is sent as
//! an ERC-20 approval of the Vault plus `Vault.swap` through the loopback relay.
//!
//! A 50/50 TKA/TKB portfolio is pushed off target when another account sells TKA into the pool
//! through the Vault and the exchange price follows. The only configured pool is the Balancer one,
//! so the rebalance must go through the Vault: the test checks that it landed, that the pool's
//! balances moved by exactly what the account's balances moved, and that the pool paid exactly
//! the amount Keel planned (its exact math against the real contract), and that Keel sent nothing
//! to the node itself. Needs anvil: `make chain-deps` (the test fails loudly without it).
//!
//! The same rebalance runs again with the websocket node feed on and the harness's Uniswap V2 pair
//! and V3 pool of TKA/TKB configured after the Balancer pool: the node feed follows the two
//! Uniswap pools by their logs (and publishes them under their configured indices, 1 and 2), the
//! poller keeps reading the Balancer pool (index 0), and each pool's state lands where it
//! belongs: the router's view of every pool at a head equals that pool's on-chain mid, and the
//! rebalance buys the cheap TKA in the Balancer pool, exactly as planned.

use std::time::{Duration, Instant};

use alloy::primitives::{Bytes, U256};
use keel_amm::balancer::PowFlavour;
use keel_router::config::{DexConfig, DexKind, PoolConfig};
use keel_runtime::pipeline::Pipeline;
use keel_sim::anvil::contracts::IBalancerVault;
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{AnvilChain, RpcRecorder, WeightedToken, deploy_balancer_weighted};

use crate::pair_rig::{BAND, FUNDER, PairRig, e18, landed_intents, pair_rig, wait_polled};

const TRADER: usize = 3;

fn whole(x: U256) -> f64 {
    f64::from(x) / 1e18
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_through_a_balancer_weighted_pool_via_the_vault() {
    rebalance_through_balancer(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_pool_and_uniswap_pools_on_the_node_feed_run_together() {
    rebalance_through_balancer(true).await;
}

/// The rebalance through the Balancer pool; with `uniswap_too`, beside the harness's TKA/TKB V2
/// pair and V3 pool, followed by the node feed.
async fn rebalance_through_balancer(uniswap_too: bool) {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let a = chain.addresses().clone();
    let (tka, tkb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    // A 50/50 TKA/TKB pool of 100,000 each (mid 1.0), 0.3% fee, joined by the funder.
    let half = U256::from(500_000_000_000_000_000u64);
    let bal = deploy_balancer_weighted(
        &chain,
        &[
            WeightedToken { token: tka, weight: half, amount: e18(100_000) },
            WeightedToken { token: tkb, weight: half, amount: e18(100_000) },
        ],
        U256::from(3_000_000_000_000_000u64),
        FUNDER,
    )
    .await
    .expect("balancer vault and pool (run `make chain-deps`)");
    let vault = IBalancerVault::new(bal.vault, chain.provider());

    // The portfolio: 50/50 TKA/TKB, a fresh dev key funded 1000 of each (no approvals yet). The
    // Balancer pool first: the node feed's own pool list starts at the V2 pair.
    let recorder = RpcRecorder::start(chain.http_url()).await.expect("rpc recorder");
    let (token0, token1) = if tka < tkb { ("TKA", "TKB") } else { ("TKB", "TKA") };
    let dex = DexConfig {
        name: "balancer".into(),
        kind: DexKind::BalancerWeighted,
        router: bal.vault,
        factory: None,
        via: Default::default(),
    };
    let pools = vec![PoolConfig {
        name: "bal-tka-tkb".into(),
        dex: "balancer".into(),
        address: bal.pool,
        token0: token0.into(),
        token1: token1.into(),
        fee: None,
        gas: None,
        tick_spacing: None,
        curve_indices: None,
        pool_id: Some(bal.pool_id),
        flavour: Some(PowFlavour::V1),
        hooks: None,
    }];
    let PairRig { relay, quotes, mut spec, me } =
        pair_rig(&chain, recorder.url(), [("TKA", tka), ("TKB", tkb)], &[], dex, pools).await;
    // The poller alone, or beside the node feed following the Uniswap pools.
    spec.node_ws_url = uniswap_too.then(|| chain.ws_url().to_string());
    let (v2_pair, v3_pool) = {
        let pair = a.v2_pairs.iter().find(|p| [p.token0, p.token1] == [tka.min(tkb), tka.max(tkb)]);
        let v3 = a.v3_pools.iter().find(|p| [p.token0, p.token1] == [tka.min(tkb), tka.max(tkb)]);
        (
            pair.expect("the harness's TKA/TKB pair").address,
            v3.expect("the harness's TKA/TKB V3 pool").address,
        )
    };
    if uniswap_too {
        for (name, kind, router) in
            [("v2", DexKind::UniswapV2, a.v2_router), ("v3", DexKind::UniswapV3, a.v3_swap_router)]
        {
            spec.dexes.push(DexConfig {
                name: name.into(),
                kind,
                router,
                factory: None,
                via: Default::default(),
            });
        }
        let uniswap = |name: &str, dex: &str, address, fee| PoolConfig {
            name: name.into(),
            dex: dex.into(),
            address,
            fee: Some(fee),
            pool_id: None,
            flavour: None,
            ..spec.pools[0].clone()
        };
        let (v2, v3) = (uniswap("v2-tka-tkb", "v2", v2_pair, 30), uniswap("v3-tka-tkb", "v3", v3_pool, 3000));
        spec.pools.extend([v2, v3]);
    }
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    pipeline.observer().publish_heads.store(true, std::sync::atomic::Ordering::Relaxed);

    // At target: nothing fires.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = pipeline.snapshot();
    assert_eq!(snap.engine.intents_emitted, 0, "fired while on target: {snap:?}");

    // Another account sells 5,000 TKA into the pool through the Vault; the exchange follows.
    let trader = chain.wallet_provider(TRADER);
    let trader_addr = chain.address(TRADER);
    IERC20::new(tka, &trader)
        .approve(bal.vault, U256::MAX)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let single = IBalancerVault::SingleSwap {
        poolId: bal.pool_id,
        kind: IBalancerVault::SwapKind::GIVEN_IN,
        assetIn: tka,
        assetOut: tkb,
        amount: e18(5_000),
        userData: Bytes::new(),
    };
    let funds = IBalancerVault::FundManagement {
        sender: trader_addr,
        fromInternalBalance: false,
        recipient: trader_addr,
        toInternalBalance: false,
    };
    let r = IBalancerVault::new(bal.vault, &trader)
        .swap(single, funds, U256::ZERO, U256::from(4_000_000_000u64))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(r.status(), "the trader's swap reverted");
    // The exchange follows once the poller has read the pool after the sale (two more blocks).
    wait_polled(&pipeline, 2).await;
    let before = vault.getPoolTokens(bal.pool_id).call().await.unwrap();
    let (ia, ib) = if before.tokens[0] == tka { (0, 1) } else { (1, 0) };
    let mid = whole(before.balances[ib]) / whole(before.balances[ia]);
    assert!(mid < 0.95, "the sale should have moved TKA down: {mid}");
    if uniswap_too {
        // Every pool's state is where it belongs: the router's view at the latest head has the
        // Balancer pool at its moved mid and the Uniswap pools at theirs (token1 per token0).
        let (v2_mid, v3_mid) = chain.mids(tka.min(tkb), v2_pair, v3_pool).await.unwrap();
        let bal_mid = whole(before.balances[1]) / whole(before.balances[0]);
        let (t0, mut mids) = (Instant::now(), Vec::new());
        loop {
            if let Some(v) = pipeline.observer().take_heads().last() {
                mids = v.pools.iter().map(|p| p.mid).collect::<Vec<Option<f64>>>();
            }
            let near = |m: Option<f64>, want: f64| m.is_some_and(|m| (m / want - 1.0).abs() < 1e-9);
            if mids.len() == 3 && near(mids[0], bal_mid) && near(mids[1], v2_mid) && near(mids[2], v3_mid) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "pool states: {mids:?}, want balancer {bal_mid}, v2 {v2_mid}, v3 {v3_mid}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            (bal_mid / v2_mid - 1.0).abs() > 0.01,
            "the pools' mids must differ for the check to tell them apart"
        );
    }
    let (held_a, held_b) =
        (chain.balance_of(tka, me).await.unwrap(), chain.balance_of(tkb, me).await.unwrap());
    quotes.set_price("TKAUSDT", mid);

    // Keel detects the drift and lands a rebalance through the Vault.
    let t0 = Instant::now();
    let landed = loop {
        let snap = pipeline.snapshot();
        if snap.engine.outcomes.landed >= 1 && !snap.portfolios[0].busy {
            break true;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let batches = pipeline.poll_stats().batches.load(std::sync::atomic::Ordering::Relaxed);
    let report = pipeline.shutdown().await;
    assert!(landed, "no rebalance landed: exec {:?}, outcomes {:?}", report.exec, report.outcomes);
    let landed = landed_intents(&report);
    assert_eq!(landed.len(), 1, "one rebalance expected: {:?}", report.outcomes);
    assert!(report.exec.approvals >= 1, "a fresh account must approve the Vault first");

    // The swap went through the Vault: the pool's balances moved by exactly what the account's did.
    let after = vault.getPoolTokens(bal.pool_id).call().await.unwrap();
    let (now_a, now_b) = (chain.balance_of(tka, me).await.unwrap(), chain.balance_of(tkb, me).await.unwrap());
    assert!(now_a > held_a && now_b < held_b, "Keel should have bought TKA with TKB");
    assert_eq!(before.balances[ia] - after.balances[ia], now_a - held_a, "TKA the pool paid = TKA received");
    assert_eq!(after.balances[ib] - before.balances[ib], held_b - now_b, "TKB the pool got = TKB paid");
    // And paid exactly what Keel's exact math planned, on the state the poller read.
    let fills: Vec<_> = report.fills.iter().filter(|f| f.intent == landed[0]).collect();
    assert!(!fills.is_empty() && fills.iter().all(|f| f.pool == "bal-tka-tkb"), "{fills:?}");
    let last = fills.last().unwrap();
    assert_eq!((last.sell.as_str(), last.buy.as_str()), ("TKB", "TKA"));
    assert_eq!(last.amount_in, held_b - now_b, "planned TKB in");
    assert_eq!(last.amount_out, now_a - held_a, "planned TKA out, exact against the Vault");
    let w = whole(now_a) * mid / (whole(now_a) * mid + whole(now_b));
    assert!((w - 0.5).abs() < BAND, "weight of TKA after the rebalance: {w}");

    // The approval is on chain, the poller read every block in one batch, and Keel sent nothing
    // to the node itself.
    let allowance = IERC20::new(tkb, chain.provider()).allowance(me, bal.vault).call().await.unwrap();
    assert!(allowance > U256::ZERO, "the Vault is the spender");
    assert!(batches >= 4, "poller batches: {batches}");
    crate::anvil_e2e::assert_sent_only_through_the_relay(&recorder, &relay);
    eprintln!(
        "landed through the Vault: {} TKB -> {} TKA, {} fills, {batches} poller batches",
        whole(last.amount_in),
        whole(last.amount_out),
        fills.len()
    );
    relay.shutdown().await.expect("relay shutdown");
}
