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

use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use keel_amm::abi::PERMIT2_ADDRESS;
use keel_amm::pool::Pool;
use keel_amm::v3::MAX_TICK;
use keel_amm::v3::sqrt_price_math::Q96;
use keel_amm::v4::PoolKey;
use keel_feeds::node::TrackedPool;
use keel_feeds::node::sync::load_pool;
use keel_router::config::{DexConfig, DexKind, PoolConfig, V4Via};
use keel_runtime::pipeline::Pipeline;
use keel_sim::anvil::contracts::rpc::{IERC20, IPermit2};
use keel_sim::anvil::{AnvilChain, RpcRecorder, V4Deployment, V4Position, deploy_v4};

use crate::pair_rig::{
    BAND, FUNDER, PairRig, e18, fund, landed_intents, pair_rig, wait_landed, wait_landed_count,
};

const TRADER: usize = 3;

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

/// Initializes `key` at price 1.0 with a full-range position of about 100,000 of each token; its
/// pool id.
async fn full_range_pool(chain: &AnvilChain, v4: &V4Deployment, key: &PoolKey) -> B256 {
    let pool_id = v4.initialize(chain, key, Q96).await.expect("initialize");
    v4.approve_liquidity(chain, key, FUNDER).await.expect("approve");
    let full = (MAX_TICK / key.tick_spacing) * key.tick_spacing;
    let pos = V4Position { tick_lower: -full, tick_upper: full, liquidity: 10i128.pow(23), salt: 1 };
    v4.modify(chain, key, FUNDER, pos).await.expect("add liquidity");
    pool_id
}

/// The router Keel sends through: `v4`'s V4Router, or a Universal Router deployed over its
/// `PoolManager` (Permit2 installed).
async fn router_for(chain: &AnvilChain, v4: &V4Deployment, via: V4Via) -> Address {
    match via {
        V4Via::V4Router => v4.router,
        V4Via::UniversalRouter => v4
            .deploy_universal_router(chain)
            .await
            .expect("Permit2 + Universal Router (run `make chain-deps`)"),
    }
}

/// The V4 DEX "v4" reached through `router` as `via` says.
fn v4_dex(router: Address, via: V4Via) -> DexConfig {
    DexConfig { name: "v4".into(), kind: DexKind::UniswapV4, router, factory: None, via }
}

/// The `[[pools]]` entry of V4 pool `key` (of the DEX "v4") named `name`.
fn pool_config(
    name: &str,
    manager: Address,
    key: &PoolKey,
    pool_id: B256,
    symbol: impl Fn(Address) -> &'static str,
) -> PoolConfig {
    PoolConfig {
        name: name.into(),
        dex: "v4".into(),
        address: manager,
        token0: symbol(key.currency0).into(),
        token1: symbol(key.currency1).into(),
        fee: Some(key.fee),
        gas: None,
        tick_spacing: Some(key.tick_spacing),
        curve_indices: None,
        pool_id: Some(pool_id),
        flavour: None,
        hooks: None,
    }
}

async fn rebalance_through_v4(via: V4Via) {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let a = chain.addresses().clone();
    let (tka, tkb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");
    let keel_router = router_for(&chain, &v4, via).await;
    let key = PoolKey::hookless(tka, tkb, 3000, 60);
    let pool_id = full_range_pool(&chain, &v4, &key).await;
    let tracked = TrackedPool::v4(v4.manager, key);

    // The portfolio account: a fresh dev key (no approvals yet), funded 1000 TKA + 1000 TKB.
    let recorder = RpcRecorder::start(chain.http_url()).await.expect("rpc recorder");
    let symbol = |t: Address| if t == tka { "TKA" } else { "TKB" };
    let pools = vec![pool_config("v4-tka-tkb", v4.manager, &key, pool_id, symbol)];
    let PairRig { relay, quotes, spec, me } =
        pair_rig(&chain, recorder.url(), [("TKA", tka), ("TKB", tkb)], &[], v4_dex(keel_router, via), pools)
            .await;
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
    let landed = wait_landed(&pipeline).await;
    let report = pipeline.shutdown().await;
    assert!(landed, "no rebalance landed: exec {:?}, outcomes {:?}", report.exec, report.outcomes);
    let landed = landed_intents(&report);
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
    crate::anvil_e2e::assert_sent_only_through_the_relay(&recorder, &relay);
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
        let landed = wait_landed(&pipeline).await;
        let again = pipeline.shutdown().await;
        assert!(landed, "no rebalance landed after the restart: {:?}, {:?}", again.exec, again.outcomes);
        assert_eq!(again.exec.approvals, 0, "the Permit2 grant read at start is not sent again");
        assert!(chain.balance_of(tka, me).await.unwrap() > now_a, "bought TKA again");
    }
    relay.shutdown().await.expect("relay shutdown");
}

/// A TKA/TKC portfolio whose only route is a two-hop V4 path, TKC → TKB → TKA, through two pools
/// of one `PoolManager` under one DEX, the real Universal Router (its `SWAP_EXACT_IN` reads the
/// path with `maxHopSlippage`): when another account's sale moves TKA down in the TKA/TKB pool
/// and the exchange follows, Keel buys TKA with TKC along the path in one transaction, and the
/// account receives exactly the planned output and keeps none of the hub token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_along_a_two_hop_v4_path_through_the_universal_router() {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let a = chain.addresses().clone();
    let (tka, tkb, tkc) = (a.token("TKA").unwrap(), a.token("TKB").unwrap(), a.token("TKC").unwrap());
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");
    let ur = v4.deploy_universal_router(&chain).await.expect("Permit2 + Universal Router");
    let (ab, bc) = (PoolKey::hookless(tka, tkb, 3000, 60), PoolKey::hookless(tkb, tkc, 500, 10));
    let (ab_id, bc_id) = (full_range_pool(&chain, &v4, &ab).await, full_range_pool(&chain, &v4, &bc).await);

    let symbol = |t: Address| {
        if t == tka {
            "TKA"
        } else if t == tkb {
            "TKB"
        } else {
            "TKC"
        }
    };
    let pools = vec![
        pool_config("v4-ab", v4.manager, &ab, ab_id, symbol),
        pool_config("v4-bc", v4.manager, &bc, bc_id, symbol),
    ];
    let held = [("TKA", tka), ("TKC", tkc)];
    let PairRig { relay, quotes, spec, me } =
        pair_rig(&chain, chain.http_url(), held, &[("TKB", tkb)], v4_dex(ur, V4Via::UniversalRouter), pools)
            .await;
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pipeline.snapshot().engine.intents_emitted, 0, "fired while on target");

    // Another account sells 5,000 TKA into the TKA/TKB pool; the exchange follows.
    let trader = chain.wallet_provider(TRADER);
    let r = IERC20::new(tka, &trader).approve(v4.router, U256::MAX).send().await.unwrap();
    r.get_receipt().await.unwrap();
    let sell = keel_router::exec::v4_exact_in_single(&ab, tka == ab.currency0, e18(5_000).to::<u128>(), 0);
    let tx = TransactionRequest::default().with_to(v4.router).with_input(sell).with_gas_limit(1_000_000);
    assert!(trader.send_transaction(tx).await.unwrap().get_receipt().await.unwrap().status());
    let head = chain.provider().get_block_number().await.unwrap();
    let tracked = TrackedPool::v4(v4.manager, ab);
    let Pool::V4(after_sale) = load_pool(chain.provider(), &tracked, head).await.unwrap() else {
        panic!("not a v4 pool")
    };
    let p01 = after_sale.mid_price();
    let mid = if tka == ab.currency0 { p01 } else { 1.0 / p01 };
    assert!(mid < 0.95, "the sale should have moved TKA down: {mid}");
    let held = |t| chain.balance_of(t, me);
    let (held_a, held_b, held_c) =
        (held(tka).await.unwrap(), held(tkb).await.unwrap(), held(tkc).await.unwrap());
    quotes.set_price("TKAUSDT", mid);

    let landed = wait_landed(&pipeline).await;
    let report = pipeline.shutdown().await;
    assert!(landed, "no rebalance landed: exec {:?}, outcomes {:?}", report.exec, report.outcomes);
    let (now_a, now_b, now_c) =
        (held(tka).await.unwrap(), held(tkb).await.unwrap(), held(tkc).await.unwrap());
    assert!(now_a > held_a && now_c < held_c, "Keel should have bought TKA with TKC");
    assert_eq!(now_b, held_b, "none of the hub token stays with the account");
    let fills: Vec<_> = report.fills.iter().filter(|f| f.amount_out > U256::ZERO).collect();
    let [fill] = &fills[..] else { panic!("one fill expected: {fills:?}") };
    assert_eq!(fill.pool, "v4-bc>v4-ab", "the two-hop path, in execution order");
    assert_eq!((fill.sell.as_str(), fill.buy.as_str()), ("TKC", "TKA"));
    assert_eq!(fill.amount_in, held_c - now_c, "planned TKC in");
    assert_eq!(fill.amount_out, now_a - held_a, "planned TKA out, exact along both hops");
    assert!(report.exec.approvals >= 1, "a fresh account approves Permit2 and the router first");
    assert_eq!(relay.rejected_requests(), 0);
    eprintln!("landed along v4-bc>v4-ab: {} TKC -> {} TKA", whole(fill.amount_in), whole(fill.amount_out));
    relay.shutdown().await.expect("relay shutdown");
}

/// Native ETH in `keel run`: a 50/50 ETH/TKB portfolio whose only pool is a V4 pool of native ETH
/// (currency `address(0)`) and TKB, through the V4 router or the Universal Router. The engine sees the account's ETH less
/// its gas reserve (`[router] gas_reserve_wei`, read with `eth_getBalance`). When ETH rises, Keel
/// sells ETH: the swap carries the amount in as its value, and no approval is sent; the
/// `PoolManager`'s ETH grows by exactly the planned amount in and the account receives exactly the
/// planned TKB. When ETH then falls, Keel buys it back: the `PoolManager` pays out exactly the
/// planned ETH, after the one grant of TKB (through Permit2 for the Universal Router).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_native_eth_through_a_uniswap_v4_pool_via_the_v4_router() {
    rebalance_native_eth(V4Via::V4Router).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_rebalances_native_eth_through_a_uniswap_v4_pool_via_the_universal_router() {
    rebalance_native_eth(V4Via::UniversalRouter).await;
}

async fn rebalance_native_eth(via: V4Via) {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let tkb = chain.addresses().token("TKB").unwrap();
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");
    let keel_router = router_for(&chain, &v4, via).await;
    let key = PoolKey::hookless(Address::ZERO, tkb, 3000, 60);
    let pool_id = v4.initialize(&chain, &key, Q96).await.expect("initialize");
    v4.approve_liquidity(&chain, &key, FUNDER).await.expect("approve");
    let full = (MAX_TICK / key.tick_spacing) * key.tick_spacing;
    // About 10,000 ETH and 10,000 TKB, paid from the funder's ETH (the rest is returned).
    let pos = V4Position { tick_lower: -full, tick_upper: full, liquidity: 10i128.pow(22), salt: 1 };
    v4.modify_paying(&chain, &key, FUNDER, pos, e18(20_000)).await.expect("add liquidity");

    let symbol = |t: Address| if t.is_zero() { "ETH" } else { "TKB" };
    let pools = vec![pool_config("v4-eth-tkb", v4.manager, &key, pool_id, symbol)];
    let PairRig { relay, quotes, spec, me } = pair_rig(
        &chain,
        chain.http_url(),
        [("ETH", Address::ZERO), ("TKB", tkb)],
        &[],
        v4_dex(keel_router, via),
        pools,
    )
    .await;
    let reserve = spec.router.gas_reserve_wei;
    assert_eq!(reserve, keel_router::config::DEFAULT_GAS_RESERVE_WEI);
    let pipeline = Pipeline::start(spec.clone(), &tokio::runtime::Handle::current()).expect("pipeline");
    let provider = chain.provider();
    let eth_of = |who: Address| async move { provider.get_balance(who).await.unwrap() };

    // On target, nothing fires; the engine values the 1000 ETH less the 0.05 ETH reserve.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snap = pipeline.snapshot();
    assert_eq!(snap.engine.intents_emitted, 0, "fired while on target: {snap:?}");
    let value = snap.portfolios[0].value.expect("the portfolio is valued");
    let expected = 2000.0 - reserve as f64 / 1e18;
    assert!((value - expected).abs() < 1e-9, "valued {value}, expected {expected} (ETH less the reserve)");

    // Another account buys ETH with 1,000 TKB: ETH rises, and the exchange follows.
    let trader = chain.wallet_provider(TRADER);
    fund(&chain, tkb, chain.address(TRADER), e18(5_000)).await;
    IERC20::new(tkb, &trader)
        .approve(v4.router, U256::MAX)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let swap = |input: Vec<u8>, value: U256| {
        TransactionRequest::default()
            .with_to(v4.router)
            .with_input(input)
            .with_value(value)
            .with_gas_limit(1_000_000)
    };
    let buy_eth = keel_router::exec::v4_exact_in_single(&key, false, e18(1_000).to::<u128>(), 0);
    let r = trader.send_transaction(swap(buy_eth, U256::ZERO)).await.unwrap().get_receipt().await.unwrap();
    assert!(r.status(), "the trader's purchase of ETH reverted");
    let tracked = TrackedPool::v4(v4.manager, key);
    let mid_now = || async {
        let head = provider.get_block_number().await.unwrap();
        let Pool::V4(p) = load_pool(provider, &tracked, head).await.unwrap() else { panic!("not a v4 pool") };
        p.mid_price() // TKB per ETH
    };
    let mid = mid_now().await;
    assert!(mid > 1.1, "the purchase should have moved ETH up: {mid}");
    let (eth_before, tkb_before) = (eth_of(me).await, chain.balance_of(tkb, me).await.unwrap());
    let (pm_eth, pm_tkb) = (eth_of(v4.manager).await, chain.balance_of(tkb, v4.manager).await.unwrap());
    quotes.set_price("ETHUSDT", mid);

    // Keel sells ETH: the swap's value is the amount in; nothing is approved.
    assert!(wait_landed(&pipeline).await, "the sale of ETH did not land: {:?}", pipeline.snapshot());
    let (eth_sold_at, tkb_sold_at) = (eth_of(me).await, chain.balance_of(tkb, me).await.unwrap());
    let (pm_eth_sold_at, pm_tkb_sold_at) =
        (eth_of(v4.manager).await, chain.balance_of(tkb, v4.manager).await.unwrap());
    // One transaction, the swap: no approval went before it.
    assert_eq!(provider.get_transaction_count(me).await.unwrap(), 1, "the sale of ETH is one transaction");

    // Another account sells 3,000 ETH: ETH falls; Keel buys it back, paid out in native ETH.
    let sell_eth = keel_router::exec::v4_exact_in_single(&key, true, e18(3_000).to::<u128>(), 0);
    let r = trader.send_transaction(swap(sell_eth, e18(3_000))).await.unwrap().get_receipt().await.unwrap();
    assert!(r.status(), "the trader's sale of ETH reverted");
    let mid = mid_now().await;
    assert!(mid < 0.9, "the sale should have moved ETH down: {mid}");
    let (eth_bought_from, tkb_bought_from) = (eth_of(me).await, chain.balance_of(tkb, me).await.unwrap());
    let pm_eth_bought_from = eth_of(v4.manager).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the cooldown
    quotes.set_price("ETHUSDT", mid);
    assert!(
        wait_landed_count(&pipeline, 2).await,
        "the purchase of ETH did not land: {:?}",
        pipeline.snapshot()
    );
    let report = pipeline.shutdown().await;
    let [sale, buy] = report.fills.as_slice() else { panic!("two fills expected: {:?}", report.fills) };

    // The sale: exactly the planned amounts, the value paid into the PoolManager.
    assert_eq!((sale.sell.as_str(), sale.buy.as_str(), sale.pool.as_str()), ("ETH", "TKB", "v4-eth-tkb"));
    assert_eq!(pm_eth_sold_at - pm_eth, sale.amount_in, "the PoolManager got exactly the ETH sold");
    assert_eq!(pm_tkb - pm_tkb_sold_at, sale.amount_out, "the PoolManager paid exactly the TKB planned");
    assert_eq!(tkb_sold_at - tkb_before, sale.amount_out, "the account got exactly the planned TKB");
    let spent = eth_before - eth_sold_at;
    assert!(spent > sale.amount_in, "ETH spent {spent}: the amount in plus gas");

    // The purchase: TKB approved once, the ETH paid out by the PoolManager exactly as planned.
    assert_eq!((buy.sell.as_str(), buy.buy.as_str()), ("TKB", "ETH"));
    assert_eq!(
        pm_eth_bought_from - eth_of(v4.manager).await,
        buy.amount_out,
        "the PoolManager paid out exactly the ETH bought"
    );
    assert_eq!(
        tkb_bought_from - chain.balance_of(tkb, me).await.unwrap(),
        buy.amount_in,
        "exactly the planned TKB"
    );
    let got = eth_of(me).await - eth_bought_from;
    assert!(
        got < buy.amount_out && got > buy.amount_out / U256::from(2u8),
        "ETH received {got}: the amount out less gas"
    );
    assert_eq!(report.exec.approvals, 1, "TKB is granted once; ETH never");
    assert_eq!(relay.rejected_requests(), 0);
    eprintln!("{via:?}:");
    eprintln!(
        "sold {} ETH for {} TKB, bought {} ETH for {} TKB",
        whole(sale.amount_in),
        whole(sale.amount_out),
        whole(buy.amount_out),
        whole(buy.amount_in)
    );
}
