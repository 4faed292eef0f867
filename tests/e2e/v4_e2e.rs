//! End to end through a Uniswap V4 pool on anvil: the real `PoolManager` (`@uniswap/v4-core`) and
//! v4-periphery's `V4Router` (`MockV4Router`, deployed by [`keel_sim::anvil::deploy_v4`]) with
//! Keel's full pipeline and the websocket node feed: the pool's state is loaded from the manager's
//! storage (`extsload`) and follows its `Swap`/`ModifyLiquidity` logs by pool id, and the
//! rebalance is sent as an ERC-20 approval of the router plus `executeActions`
//! (`SWAP_EXACT_IN_SINGLE`, `SETTLE_ALL`, `TAKE_ALL`) through the loopback relay.
//!
//! A 50/50 TKA/TKB portfolio is pushed off target when another account sells TKA into the pool and
//! the exchange price follows. The only configured pool is the V4 one: the test checks that the
//! rebalance landed, that the account received exactly the amount Keel planned (its exact math
//! against the real `PoolManager`), that the `PoolManager`'s token balances moved by what the
//! account's did, and that Keel sent nothing to the node itself. Needs anvil: `make chain-deps`.
//!
//! The same rebalance runs a second time with the DEX's router a real Universal Router
//! (`via = "universal_router"`; Permit2 installed from the pinned v4-periphery source, see
//! [`keel_sim::anvil::universal_router`]): the fresh account's approvals go to Permit2 (ERC-20) and
//! to the router in Permit2, the swap is `execute(V4_SWAP, …, deadline)`, and the router itself is
//! never an ERC-20 spender. Keel is then restarted and rebalances once more: the grant is read
//! from Permit2 at start, so no approval is sent again.

use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use keel_amm::abi::PERMIT2_ADDRESS;
use keel_amm::pool::Pool;
use keel_amm::v3::MAX_TICK;
use keel_amm::v3::sqrt_price_math::Q96;
use keel_amm::v4::PoolKey;
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::OutcomeStatus;
use keel_feeds::node::sync::load_pool;
use keel_feeds::node::{PoolKind, TrackedPool};
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::{DexConfig, DexKind, PoolConfig, RelayConfig, V4Via};
use keel_router::signer::Signer;
use keel_runtime::pipeline::{Pipeline, PipelineSpec};
use keel_sim::anvil::contracts::rpc::{IERC20, IPermit2};
use keel_sim::anvil::{AnvilChain, AnvilRelay, RelayOptions, RpcRecorder, V4Position, deploy_v4};
use keel_sim::quotes::QuoteServer;

use crate::anvil_e2e::router_config;

const PORTFOLIO_DEV_KEY: usize = 6;
const FUNDER: usize = 1;
const TRADER: usize = 3;
const BAND: f64 = 0.01;

fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

fn whole(x: U256) -> f64 {
    f64::from(x) / 1e18
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_through_a_uniswap_v4_pool_via_the_v4_router() {
    rebalance_through_v4(V4Via::V4Router).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_through_a_uniswap_v4_pool_via_the_universal_router_and_permit2() {
    rebalance_through_v4(V4Via::UniversalRouter).await;
}

async fn rebalance_through_v4(via: V4Via) {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let a = chain.addresses().clone();
    let (tka, tkb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");
    let keel_router = match via {
        V4Via::V4Router => v4.router,
        V4Via::UniversalRouter => v4
            .deploy_universal_router(&chain)
            .await
            .expect("Permit2 + Universal Router (run `make chain-deps`)"),
    };
    let key = PoolKey {
        currency0: tka.min(tkb),
        currency1: tka.max(tkb),
        fee: 3000,
        tick_spacing: 60,
        hooks: Address::ZERO,
    };
    // Price 1.0, a full-range position of about 100,000 of each token.
    let pool_id = v4.initialize(&chain, &key, Q96).await.expect("initialize");
    v4.approve_liquidity(&chain, &key, FUNDER).await.expect("approve");
    let full = (MAX_TICK / 60) * 60;
    let pos = V4Position { tick_lower: -full, tick_upper: full, liquidity: 10i128.pow(23), salt: 1 };
    v4.modify(&chain, &key, FUNDER, pos).await.expect("add liquidity");
    let tracked = TrackedPool {
        address: v4.manager,
        kind: PoolKind::V4,
        fee: 3000,
        tick_spacing: Some(60),
        pool_key: Some(key),
    };

    // The portfolio account: a fresh dev key (no approvals yet), funded 1000 TKA + 1000 TKB.
    let me = Signer::dev(PORTFOLIO_DEV_KEY).unwrap().address();
    let funder = chain.wallet_provider(FUNDER);
    for t in [tka, tkb] {
        IERC20::new(t, &funder).transfer(me, e18(1000)).send().await.unwrap().get_receipt().await.unwrap();
    }
    let relay = AnvilRelay::start(
        chain.http_url(),
        RelayOptions { block_interval: Some(Duration::from_millis(250)), ..Default::default() },
    )
    .await
    .expect("relay");
    let recorder = RpcRecorder::start(chain.http_url()).await.expect("rpc recorder");
    let quotes = QuoteServer::start(&[("TKAUSDT", 1.0)], Duration::from_millis(50)).await.unwrap();
    let (token0, token1) = if tka < tkb { ("TKA", "TKB") } else { ("TKB", "TKA") };
    let token =
        |symbol: &str, address, price| TokenConfig { symbol: symbol.into(), address, decimals: 18, price };
    let spec = PipelineSpec {
        engine: EngineConfig { stale_after_ms: 5_000, queue_capacity: 4_096, ..EngineConfig::default() },
        tokens: vec![
            token("TKA", tka, PriceSource::Instrument { symbol: "TKAUSDT".into() }),
            token("TKB", tkb, PriceSource::Fixed { fixed: 1.0 }),
        ],
        portfolios: vec![PortfolioConfig {
            name: "core".into(),
            account: me,
            targets: [("TKA".to_string(), 0.5), ("TKB".to_string(), 0.5)].into_iter().collect(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(BAND), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 1.0,
            min_trade_notional: 1.0,
            cost: Default::default(),
        }],
        router: router_config(chain.chain_id(), None, true),
        dexes: vec![DexConfig {
            name: "v4".into(),
            kind: DexKind::UniswapV4,
            router: keel_router,
            factory: None,
            via,
        }],
        pools: vec![PoolConfig {
            name: "v4-tka-tkb".into(),
            dex: "v4".into(),
            address: v4.manager,
            token0: token0.into(),
            token1: token1.into(),
            fee: Some(3000),
            gas: None,
            tick_spacing: Some(60),
            pool_id: Some(pool_id),
            flavour: None,
            hooks: None,
        }],
        relays: vec![RelayConfig {
            name: "anvil-relay".into(),
            url: relay.url().to_string(),
            timeout_ms: 2_000,
            fast_path: true,
            ca_cert: None,
            coinbase: None,
        }],
        reputation: Signer::dev(9).unwrap(),
        accounts: vec![Signer::dev(PORTFOLIO_DEV_KEY).unwrap()],
        binance: BinanceFeedConfig::new(quotes.url(), ["TKAUSDT"]),
        rpc_url: recorder.url().to_string(),
        poll_ms: 50,
        node_ws_url: Some(chain.ws_url().to_string()),
        mempool: Default::default(),
        native_symbol: None,
        sample_every: Duration::from_millis(200),
        safety: Default::default(),
        journal: None,
        record: None,
        predictors: Vec::new(),
        registry: None,
    };
    let pipeline = Pipeline::start(spec.clone(), &tokio::runtime::Handle::current()).expect("pipeline");

    // At target: nothing fires.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = pipeline.snapshot();
    assert_eq!(snap.engine.intents_emitted, 0, "fired while on target: {snap:?}");

    // Another account sells 5,000 TKA into the pool through the V4 router; the exchange follows.
    let trader = chain.wallet_provider(TRADER);
    IERC20::new(tka, &trader)
        .approve(v4.router, U256::MAX)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let sell = keel_router::exec::v4_exact_in_single(&key, tka == key.currency0, e18(5_000).to::<u128>(), 0);
    let tx = TransactionRequest::default().with_to(v4.router).with_input(sell).with_gas_limit(1_000_000);
    let r = trader.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(r.status(), "the trader's swap reverted");
    let head = chain.provider().get_block_number().await.unwrap();
    let Pool::V4(after_sale) = load_pool(chain.provider(), &tracked, head).await.unwrap() else {
        panic!("not a v4 pool")
    };
    // token1 per token0; TKA in TKB
    let p01 = after_sale.mid_price();
    let mid = if tka == key.currency0 { p01 } else { 1.0 / p01 };
    assert!(mid < 0.95, "the sale should have moved TKA down: {mid}");
    let (held_a, held_b) =
        (chain.balance_of(tka, me).await.unwrap(), chain.balance_of(tkb, me).await.unwrap());
    let (pm_a, pm_b) =
        (chain.balance_of(tka, v4.manager).await.unwrap(), chain.balance_of(tkb, v4.manager).await.unwrap());
    quotes.set_price("TKAUSDT", mid);

    // Keel detects the drift and lands a rebalance through the V4 router.
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
    let report = pipeline.shutdown().await;
    assert!(landed, "no rebalance landed: exec {:?}, outcomes {:?}", report.exec, report.outcomes);
    let landed: Vec<u64> = report
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o.status, OutcomeStatus::Landed { gas_used, .. } if gas_used > 0))
        .map(|(_, o)| o.intent)
        .collect();
    assert_eq!(landed.len(), 1, "one rebalance expected: {:?}", report.outcomes);
    assert!(report.exec.approvals >= 1, "a fresh account must approve the {via:?} first");

    // The swap went through the PoolManager: its balances moved by exactly what the account's did.
    let (now_a, now_b) = (chain.balance_of(tka, me).await.unwrap(), chain.balance_of(tkb, me).await.unwrap());
    let (pm_a2, pm_b2) =
        (chain.balance_of(tka, v4.manager).await.unwrap(), chain.balance_of(tkb, v4.manager).await.unwrap());
    assert!(now_a > held_a && now_b < held_b, "Keel should have bought TKA with TKB");
    assert_eq!(pm_a - pm_a2, now_a - held_a, "TKA the PoolManager paid = TKA received");
    assert_eq!(pm_b2 - pm_b, held_b - now_b, "TKB the PoolManager got = TKB paid");
    // And paid exactly what Keel's exact math planned, on the state the node feed followed.
    let fills: Vec<_> = report.fills.iter().filter(|f| f.intent == landed[0]).collect();
    assert!(!fills.is_empty() && fills.iter().all(|f| f.pool == "v4-tka-tkb"), "{fills:?}");
    let last = fills.last().unwrap();
    assert_eq!((last.sell.as_str(), last.buy.as_str()), ("TKB", "TKA"));
    assert_eq!(last.amount_in, held_b - now_b, "planned TKB in");
    assert_eq!(last.amount_out, now_a - held_a, "planned TKA out, exact against the PoolManager");
    assert!(last.amount_out_min <= last.amount_out, "min out from the same quote");
    let w = whole(now_a) * mid / (whole(now_a) * mid + whole(now_b));
    assert!((w - 0.5).abs() < BAND, "weight of TKA after the rebalance: {w}");

    // The approvals are on chain and Keel sent nothing to the node itself.
    let erc20 = IERC20::new(tkb, chain.provider());
    match via {
        V4Via::V4Router => {
            let allowance = erc20.allowance(me, v4.router).call().await.unwrap();
            assert!(allowance > U256::ZERO, "the V4 router is the spender");
        }
        V4Via::UniversalRouter => {
            let to_permit2 = erc20.allowance(me, PERMIT2_ADDRESS).call().await.unwrap();
            assert!(to_permit2 > U256::ZERO, "Permit2 is the ERC-20 spender");
            let to_router = erc20.allowance(me, keel_router).call().await.unwrap();
            assert_eq!(to_router, U256::ZERO, "the Universal Router is never an ERC-20 spender");
            let p2 = IPermit2::new(PERMIT2_ADDRESS, chain.provider());
            let granted = p2.allowance(me, tkb, keel_router).call().await.unwrap();
            assert!(
                granted.amount > alloy::primitives::aliases::U160::ZERO,
                "the router is approved in Permit2"
            );
        }
    }
    let methods = recorder.methods();
    assert!(
        !methods.iter().any(|m| m == "eth_sendRawTransaction" || m == "eth_sendTransaction"),
        "Keel broadcast a transaction to the node: {methods:?}"
    );
    assert_eq!(relay.rejected_requests(), 0);
    eprintln!(
        "landed through the {via:?}: {} TKB -> {} TKA (min {}), {} fills",
        whole(last.amount_in),
        whole(last.amount_out),
        whole(last.amount_out_min),
        fills.len()
    );
    if via == V4Via::UniversalRouter {
        // Restarted, Keel reads the grant from Permit2 at start and does not send it again: the
        // trader sells TKA once more, Keel buys TKA with TKB again, with the swap alone.
        let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline again");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sell =
            keel_router::exec::v4_exact_in_single(&key, tka == key.currency0, e18(5_000).to::<u128>(), 0);
        let tx = TransactionRequest::default().with_to(v4.router).with_input(sell).with_gas_limit(1_000_000);
        let r = trader.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
        assert!(r.status(), "the trader's second swap reverted");
        let head = chain.provider().get_block_number().await.unwrap();
        let Pool::V4(after) = load_pool(chain.provider(), &tracked, head).await.unwrap() else {
            panic!("not a v4 pool")
        };
        let p01 = after.mid_price();
        quotes.set_price("TKAUSDT", if tka == key.currency0 { p01 } else { 1.0 / p01 });
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
        let again = pipeline.shutdown().await;
        assert!(landed, "no rebalance landed after the restart: {:?}, {:?}", again.exec, again.outcomes);
        assert_eq!(again.exec.approvals, 0, "the Permit2 grant read at start is not sent again");
        assert!(chain.balance_of(tka, me).await.unwrap() > now_a, "bought TKA again");
    }
    relay.shutdown().await.expect("relay shutdown");
}
