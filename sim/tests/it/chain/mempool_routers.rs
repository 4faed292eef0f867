//! Swaps sent through the real Universal Router and SwapRouter02 (deployed from their npm
//! artifacts) wait in anvil's mempool; the mempool feed decodes them from the node's subscription,
//! the pending view predicts every pool's state after them to the wei, and once they are mined the
//! node feed evicts them by inclusion and reports the pools' pending impact back at 0.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::pool::SwapAmount;
use keel_engine::chain::ChainUpdate;
use keel_engine::{Event, Queue};
use keel_feeds::backoff::BackoffConfig;
use keel_feeds::node::mempool::{Evictions, Mined};
use keel_feeds::node::sync::load_pool;
use keel_feeds::node::{
    MempoolDecoder, MempoolFeedConfig, MempoolPool, MempoolStats, NodeFeedConfig, NodeFeedOutputs,
    NodeFeedStats, PendingTx, PendingView, PoolBook, PoolKind, RouterKind, ViewLimits, run_mempool_feed,
    run_node_feed,
};
use keel_sim::anvil::artifacts::Artifact;
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::deploy_routers;
use tokio_util::sync::CancellationToken;

use super::node_feed::tracked_pools;
use super::util::{WAIT, chain, e18};

const TRADER: usize = 1;
const FAR: u64 = 4_000_000_000;

alloy::sol! {
    /// The two entry points the test calls, checked against the artifacts' ABIs below.
    interface IUrExecute {
        function execute(bytes calldata commands, bytes[] calldata inputs, uint256 deadline) external payable;
    }
    interface ISr02 {
        struct ExactInputParams { bytes path; address recipient; uint256 amountIn; uint256 amountOutMinimum; }
        struct ExactOutputParams { bytes path; address recipient; uint256 amountOut; uint256 amountInMaximum; }
        function exactInput(ExactInputParams calldata params) external payable returns (uint256);
        function exactOutput(ExactOutputParams calldata params) external payable returns (uint256);
        function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to) external payable returns (uint256);
        function swapTokensForExactTokens(uint256 amountOut, uint256 amountInMax, address[] calldata path, address to) external payable returns (uint256);
        function multicall(uint256 deadline, bytes[] calldata data) external payable returns (bytes[] memory);
    }
}

/// Selectors of every function named `name` in an artifact's ABI.
fn artifact_selectors(artifact: Artifact, name: &str) -> Vec<[u8; 4]> {
    let path = artifact.path();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    fn ty(p: &serde_json::Value) -> String {
        let t = p["type"].as_str().unwrap();
        match t.strip_prefix("tuple") {
            Some(rest) => {
                let inner: Vec<String> = p["components"].as_array().unwrap().iter().map(ty).collect();
                format!("({}){rest}", inner.join(","))
            }
            None => t.to_string(),
        }
    }
    json["abi"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == "function" && f["name"] == name)
        .map(|f| {
            let args: Vec<String> = f["inputs"].as_array().unwrap().iter().map(ty).collect();
            let sig = format!("{name}({})", args.join(","));
            keccak256(sig.as_bytes())[..4].try_into().unwrap()
        })
        .collect()
}

/// A packed V3 path `t0 fee t1 fee t2 …`.
fn v3_path(tokens: &[Address], fee: u32) -> Bytes {
    let mut p = tokens[0].to_vec();
    for t in &tokens[1..] {
        p.extend_from_slice(&fee.to_be_bytes()[1..]);
        p.extend_from_slice(t.as_slice());
    }
    p.into()
}

fn hops(tx: &PendingTx, route: usize) -> Vec<(Address, Address, Option<u32>)> {
    tx.routes[route].hops.iter().map(|h| (h.token_in, h.token_out, h.pool)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn universal_router_and_swap_router02_swaps_are_decoded_from_the_mempool_and_evicted_once_mined() {
    let chain = chain().await;
    let routers =
        deploy_routers(&chain, &[TRADER]).await.expect("deploy SwapRouter02 and the Universal Router");
    let (ur, sr02) = (routers.universal_router, routers.swap_router02);
    for (artifact, name, selector) in [
        (Artifact::UniversalRouter, "execute", IUrExecute::executeCall::SELECTOR),
        (Artifact::SwapRouter02, "multicall", ISr02::multicallCall::SELECTOR),
        (Artifact::SwapRouter02, "exactInput", ISr02::exactInputCall::SELECTOR),
        (Artifact::SwapRouter02, "exactOutput", ISr02::exactOutputCall::SELECTOR),
        (Artifact::SwapRouter02, "swapExactTokensForTokens", ISr02::swapExactTokensForTokensCall::SELECTOR),
        (Artifact::SwapRouter02, "swapTokensForExactTokens", ISr02::swapTokensForExactTokensCall::SELECTOR),
    ] {
        assert!(
            artifact_selectors(artifact, name).contains(&selector),
            "{name} is not in {artifact:?}'s ABI"
        );
    }

    let a = chain.addresses().clone();
    let (tka, tkb, tkc) = (a.token("TKA").unwrap(), a.token("TKB").unwrap(), a.token("TKC").unwrap());
    let pools = tracked_pools(&chain);
    let book0 = PoolBook::new(&pools);
    let id = |address: Address| book0.id_of(address).unwrap();
    let v2 = |x: Address, y: Address| {
        id(a.v2_pairs.iter().find(|p| (p.token0, p.token1) == (x.min(y), x.max(y))).unwrap().address)
    };
    let v3 = |x: Address, y: Address| {
        id(a.v3_pools.iter().find(|p| (p.token0, p.token1) == (x.min(y), x.max(y))).unwrap().address)
    };
    let mp: Vec<MempoolPool> = a
        .v2_pairs
        .iter()
        .map(|p| (p.address, PoolKind::V2, p.token0, p.token1, 0))
        .chain(a.v3_pools.iter().map(|p| (p.address, PoolKind::V3, p.token0, p.token1, p.fee)))
        .map(|(address, kind, token0, token1, fee)| MempoolPool {
            id: id(address),
            address,
            kind,
            token0,
            token1,
            fee,
            pool_key: None,
        })
        .collect();
    let decoder =
        MempoolDecoder::new(&mp, &[(ur, RouterKind::UniversalRouter), (sr02, RouterKind::SwapRouter02)]);

    // The node feed (pool book, pending view, inclusion eviction) fed by the mempool feed through a
    // tap that keeps a copy of every decoded transaction.
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let (router_q, events) =
        (Arc::new(Queue::<ChainUpdate>::new(1 << 14)), Arc::new(Queue::<Event>::new(1 << 14)));
    let (tap_tx, mut tap_rx) = tokio::sync::mpsc::channel::<PendingTx>(64);
    let (feed_tx, feed_rx) = tokio::sync::mpsc::channel::<PendingTx>(64);
    let node_stats = Arc::new(NodeFeedStats::default());
    let node = tokio::spawn(run_node_feed(
        NodeFeedConfig { ws_url: chain.ws_url().to_string(), pools: pools.clone(), balances: Vec::new() },
        NodeFeedOutputs {
            router: Arc::clone(&router_q),
            events,
            pending: Some(feed_rx),
            pending_limits: ViewLimits::default(),
            pool_ids: Vec::new(),
        },
        Arc::clone(&node_stats),
        cancel.clone(),
    ));
    let mempool_stats = Arc::new(MempoolStats::default());
    let mempool = tokio::spawn(run_mempool_feed(
        MempoolFeedConfig { ws_url: chain.ws_url().to_string(), backoff: BackoffConfig::default() },
        decoder,
        tap_tx,
        Arc::clone(&mempool_stats),
        cancel.clone(),
    ));
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<PendingTx>::new()));
    {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(tx) = tap_rx.recv().await {
                seen.lock().push(tx.clone());
                if feed_tx.send(tx).await.is_err() {
                    break;
                }
            }
        });
    }
    let deadline = Instant::now() + WAIT;
    while node_stats.synced_block.load(Ordering::Acquire) == 0 {
        assert!(!node.is_finished() && Instant::now() < deadline, "node feed did not load the pools");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // let the mempool subscription start

    // The Universal Router pays from its own balance (payerIsUser = false; no Permit2 on this
    // chain): the trader funds it first, mined.
    let trader = chain.wallet_provider(TRADER);
    let me = chain.address(TRADER);
    for t in [tka, tkc] {
        let r =
            IERC20::new(t, &trader).transfer(ur, e18(100)).send().await.unwrap().get_receipt().await.unwrap();
        assert!(r.status());
    }

    chain.set_automine(false).await.unwrap();
    // Universal Router: V2 exact in A→B; V3 exact in A→B→C; V2 exact out C→B; V3 exact out C→B→A.
    let commands = vec![0x08u8, 0x00, 0x09, 0x01];
    let inputs: Vec<Bytes> = vec![
        (me, e18(20), U256::ZERO, vec![tka, tkb], false).abi_encode_params().into(),
        (me, e18(30), U256::ZERO, v3_path(&[tka, tkb, tkc], 3000), false).abi_encode_params().into(),
        (me, e18(5), e18(100), vec![tkc, tkb], false).abi_encode_params().into(),
        (me, e18(7), e18(100), v3_path(&[tka, tkb, tkc], 3000), false).abi_encode_params().into(),
    ];
    let call = IUrExecute::executeCall { commands: commands.into(), inputs, deadline: U256::from(FAR) };
    let send = |to: Address, input: Vec<u8>| {
        let trader = trader.clone();
        async move {
            let tx = TransactionRequest::default().with_to(to).with_input(input).with_gas_limit(2_000_000);
            *trader.send_transaction(tx).await.unwrap().tx_hash()
        }
    };
    let ur_hash = send(ur, call.abi_encode()).await;
    // SwapRouter02 multicall(deadline, …): V3 exact in C→B→A; V3 exact out (buy C with A through
    // A→B→C, packed C B A); V2 exact in B→C; V2 exact out A→B→C.
    let data: Vec<Bytes> = vec![
        ISr02::exactInputCall {
            params: ISr02::ExactInputParams {
                path: v3_path(&[tkc, tkb, tka], 3000),
                recipient: me,
                amountIn: e18(25),
                amountOutMinimum: U256::ZERO,
            },
        }
        .abi_encode()
        .into(),
        ISr02::exactOutputCall {
            params: ISr02::ExactOutputParams {
                path: v3_path(&[tkc, tkb, tka], 3000),
                recipient: me,
                amountOut: e18(9),
                amountInMaximum: e18(1_000),
            },
        }
        .abi_encode()
        .into(),
        ISr02::swapExactTokensForTokensCall {
            amountIn: e18(15),
            amountOutMin: U256::ZERO,
            path: vec![tkb, tkc],
            to: me,
        }
        .abi_encode()
        .into(),
        ISr02::swapTokensForExactTokensCall {
            amountOut: e18(6),
            amountInMax: e18(1_000),
            path: vec![tka, tkb, tkc],
            to: me,
        }
        .abi_encode()
        .into(),
    ];
    let sr_hash = send(sr02, ISr02::multicallCall { deadline: U256::from(FAR), data }.abi_encode()).await;

    let deadline = Instant::now() + WAIT;
    while seen.lock().len() < 2 {
        assert!(!mempool.is_finished(), "mempool feed stopped");
        assert!(Instant::now() < deadline, "decoded only {:?}", seen.lock());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let txs = seen.lock().clone();
    assert_eq!(mempool_stats.malformed.load(Ordering::Relaxed), 0);
    let (u, s) = (&txs[0], &txs[1]);
    assert_eq!((u.hash, s.hash), (ur_hash, sr_hash));
    assert!(txs.iter().all(|t| t.sender == me));
    assert_eq!(s.nonce, u.nonce + 1);

    assert_eq!(u.routes.len(), 4);
    assert_eq!(hops(u, 0), [(tka, tkb, Some(v2(tka, tkb)))]);
    assert_eq!(u.routes[0].amount, Some(SwapAmount::ExactIn(e18(20))));
    assert_eq!(hops(u, 1), [(tka, tkb, Some(v3(tka, tkb))), (tkb, tkc, Some(v3(tkb, tkc)))]);
    assert_eq!(u.routes[1].amount, Some(SwapAmount::ExactIn(e18(30))));
    assert_eq!(hops(u, 2), [(tkc, tkb, Some(v2(tkb, tkc)))]);
    assert_eq!(u.routes[2].amount, Some(SwapAmount::ExactOut(e18(5))));
    assert_eq!(hops(u, 3), [(tkc, tkb, Some(v3(tkb, tkc))), (tkb, tka, Some(v3(tka, tkb)))]);
    assert_eq!(u.routes[3].amount, Some(SwapAmount::ExactOut(e18(7))));
    assert!(u.routes[1].hops.iter().all(|h| h.kind == PoolKind::V3 && h.fee == 3000));

    assert_eq!(s.routes.len(), 4);
    assert_eq!(hops(s, 0), [(tkc, tkb, Some(v3(tkb, tkc))), (tkb, tka, Some(v3(tka, tkb)))]);
    assert_eq!(s.routes[0].amount, Some(SwapAmount::ExactIn(e18(25))));
    assert_eq!(hops(s, 1), [(tka, tkb, Some(v3(tka, tkb))), (tkb, tkc, Some(v3(tkb, tkc)))]);
    assert_eq!(s.routes[1].amount, Some(SwapAmount::ExactOut(e18(9))));
    assert_eq!(hops(s, 2), [(tkb, tkc, Some(v2(tkb, tkc)))]);
    assert_eq!(s.routes[2].amount, Some(SwapAmount::ExactIn(e18(15))));
    assert_eq!(hops(s, 3), [(tka, tkb, Some(v2(tka, tkb))), (tkb, tkc, Some(v2(tkb, tkc)))]);
    assert_eq!(s.routes[3].amount, Some(SwapAmount::ExactOut(e18(6))));

    // The view's prediction of every pool after both transactions, from the mined state now.
    let head = chain.block_number().await.unwrap();
    let mut book = PoolBook::new(&pools);
    for (i, p) in pools.iter().enumerate() {
        book.set_state(i as u32, load_pool(chain.provider(), p, head).await.unwrap(), head, 0);
    }
    let mut view = PendingView::new(ViewLimits::default());
    for t in &txs {
        view.add(t.clone());
    }
    let expected = view.replay(&book);
    // The node feed holds both and reports a pending impact on the pools they move.
    let deadline = Instant::now() + WAIT;
    while node_stats.pending_txs.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "node feed did not take the pending swaps");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut impacts = vec![0.0f64; pools.len()];
    while let Some(u) = router_q.try_pop() {
        if let ChainUpdate::PendingImpact { pool, impact } = u {
            impacts[pool] = impact;
        }
    }
    for p in [v2(tka, tkb), v2(tkb, tkc), v3(tka, tkb), v3(tkb, tkc)] {
        assert!(impacts[p as usize] > 0.0, "no pending impact on pool {p}: {impacts:?}");
    }

    chain.mine().await.unwrap();
    chain.set_automine(true).await.unwrap();
    let mut mined = Vec::new();
    for t in &txs {
        let r = chain.provider().get_transaction_receipt(t.hash).await.unwrap().expect("mined");
        assert!(r.status(), "{} reverted", t.hash);
        eprintln!("gas used by {}: {}", t.hash, r.gas_used);
        mined.push(Mined { hash: t.hash, sender: t.sender, nonce: t.nonce });
    }
    let head = chain.block_number().await.unwrap();
    for (i, p) in pools.iter().enumerate() {
        let got = load_pool(chain.provider(), p, head).await.unwrap();
        assert_eq!(Some(got), expected[i], "pool {i} after the pending swaps");
    }

    // Inclusion: the node feed evicts both on the next head and reports every impact back at 0.
    let deadline = Instant::now() + WAIT;
    while node_stats.pending_included.load(Ordering::Relaxed) < 2 {
        assert!(!node.is_finished() && Instant::now() < deadline, "not evicted by inclusion");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node_stats.pending_txs.load(Ordering::Relaxed), 0);
    while let Some(u) = router_q.try_pop() {
        if let ChainUpdate::PendingImpact { pool, impact } = u {
            impacts[pool] = impact;
        }
    }
    assert!(impacts.iter().all(|&i| i == 0.0), "impacts after inclusion: {impacts:?}");
    // The same by hash in a view of our own.
    assert_eq!(view.remove_included(&mined), 2);
    assert_eq!(view.evictions(), Evictions { included: 2, ..Evictions::default() });
}

/// The mempool decoder reads Keel's own V4 swap calldata — the calldata the chain tests prove the
/// real `MockV4Router` and Universal Router pay exactly — as the swap it is: the tracked V4 pool
/// by pool id, the direction, and the exact input.
#[test]
fn keels_own_v4_calldata_decodes_as_its_swap_through_both_routers() {
    use keel_amm::v4::PoolKey;
    let (t0, t1) = (Address::repeat_byte(0x0a), Address::repeat_byte(0x0b));
    let key = PoolKey::hookless(t0, t1, 3000, 60);
    let other = PoolKey { fee: 500, tick_spacing: 10, ..key };
    let (manager, v4_router, ur) =
        (Address::repeat_byte(0x44), Address::repeat_byte(0x04), Address::repeat_byte(0x05));
    let pool = |id: u32, key: PoolKey| MempoolPool {
        id,
        address: manager,
        kind: PoolKind::V4,
        token0: t0,
        token1: t1,
        fee: key.fee,
        pool_key: Some(key),
    };
    let decoder = MempoolDecoder::new(
        &[pool(3, key), pool(4, other)],
        &[(v4_router, RouterKind::V4Router), (ur, RouterKind::UniversalRouter)],
    );
    let meta =
        keel_feeds::node::TxMeta { hash: Default::default(), sender: Address::ZERO, nonce: 0, seen_ns: 0 };
    for (k, id) in [(key, 3u32), (other, 4)] {
        for zero_for_one in [true, false] {
            let amount = 123_456_789_u128;
            let calls = [
                (v4_router, keel_router::exec::v4_exact_in_single(&k, zero_for_one, amount, 1)),
                (
                    ur,
                    keel_router::exec::universal_router_v4_swap(&k, zero_for_one, amount, 1, U256::from(FAR)),
                ),
            ];
            for (to, input) in calls {
                let t = decoder.decode(to, &input, meta).unwrap().expect("a swap on a tracked V4 pool");
                assert_eq!(t.routes.len(), 1);
                let h = t.routes[0].hops[0];
                assert_eq!((h.kind, h.pool, h.zero_for_one()), (PoolKind::V4, Some(id), zero_for_one));
                assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactIn(U256::from(amount))));
            }
        }
    }

    // A two-hop path t0 → t1 → t2 (the second pool tracked), in each router's layout.
    let t2 = Address::repeat_byte(0x0c);
    let next = PoolKey::hookless(t1, t2, 500, 10);
    let decoder = MempoolDecoder::new(
        &[MempoolPool { id: 5, token0: t1, token1: t2, ..pool(5, next) }],
        &[(v4_router, RouterKind::V4Router), (ur, RouterKind::UniversalRouter)],
    );
    let hops = [(key, t1), (next, t2)];
    let route = keel_router::exec::V4Route::Path { currency_in: t0, hops: &hops };
    let amount = 987_654_321_u128;
    let calls = [
        (v4_router, keel_router::exec::v4_execute_actions(route, amount, 1)),
        (ur, keel_router::exec::universal_router_v4(route, amount, 1, U256::from(FAR))),
    ];
    for (to, input) in calls {
        let t = decoder.decode(to, &input, meta).unwrap().expect("a path through a tracked V4 pool");
        let hops: Vec<_> = t.routes[0].hops.iter().map(|h| (h.pool, h.zero_for_one())).collect();
        assert_eq!(hops, vec![(None, true), (Some(5), true)], "through {to}");
        assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactIn(U256::from(amount))), "through {to}");
    }
}
