//! V4 swaps waiting in anvil's mempool: two swaps sent through the real `MockV4Router`
//! (`@uniswap/v4-periphery`) against a real `PoolManager` (`@uniswap/v4-core`) — an exact input
//! built by Keel's router crate and an exact output built here — are decoded from the node's
//! pending stream to the tracked V4 pool (by pool id), and the pending view's replay of them on the
//! mined state predicts the pool after the block that includes them to the wei.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::primitives::aliases::{I24, U24};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::pool::SwapAmount;
use keel_amm::v3::MAX_TICK;
use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
use keel_amm::v4::PoolKey;
use keel_feeds::backoff::BackoffConfig;
use keel_feeds::node::mempool::abi::{IV4Router, V4ExactOutSingle, V4Plan, V4PoolKey};
use keel_feeds::node::sync::load_pool;
use keel_feeds::node::{
    MempoolDecoder, MempoolFeedConfig, MempoolPool, MempoolStats, PendingTx, PendingView, PoolBook, PoolKind,
    RouterKind, TrackedPool, ViewLimits, run_mempool_feed,
};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{V4Position, deploy_v4};
use tokio_util::sync::CancellationToken;

use super::util::{WAIT, chain, e18};

const LP: usize = 1;
const TRADER: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_router_swaps_are_decoded_from_the_mempool_and_predict_the_pool_to_the_wei() {
    let chain = chain().await;
    let a = chain.addresses().clone();
    let (ta, tb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    let (c0, c1) = (ta.min(tb), ta.max(tb));
    let v4 = deploy_v4(&chain).await.expect("v4 contracts (run `make chain-deps`)");
    let key = PoolKey::hookless(c0, c1, 3000, 60);
    v4.initialize(&chain, &key, get_sqrt_ratio_at_tick(0).unwrap()).await.expect("initialize");
    v4.approve_liquidity(&chain, &key, LP).await.expect("approve");
    let full = (MAX_TICK / 60) * 60;
    for (salt, (lo, hi, l)) in
        [(-full, full, 10i128.pow(22)), (-600, 600, 10i128.pow(23))].into_iter().enumerate()
    {
        let pos = V4Position { tick_lower: lo, tick_upper: hi, liquidity: l, salt: salt as u64 };
        v4.modify(&chain, &key, LP, pos).await.expect("add liquidity");
    }
    let trader = chain.wallet_provider(TRADER);
    for t in [c0, c1] {
        let r = IERC20::new(t, &trader)
            .approve(v4.router, U256::MAX)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert!(r.status());
    }

    let tracked = TrackedPool::v4(v4.manager, key);
    let pool = MempoolPool {
        id: 0,
        address: v4.manager,
        kind: PoolKind::V4,
        token0: c0,
        token1: c1,
        fee: key.fee,
        pool_key: Some(key),
    };
    let decoder = MempoolDecoder::new(&[pool], &[(v4.router, RouterKind::V4Router)]);
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let (out, mut pending) = tokio::sync::mpsc::channel::<PendingTx>(16);
    let stats = Arc::new(MempoolStats::default());
    let mempool = tokio::spawn(run_mempool_feed(
        MempoolFeedConfig { ws_url: chain.ws_url().to_string(), backoff: BackoffConfig::default() },
        decoder,
        out,
        Arc::clone(&stats),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await; // let the subscription start

    chain.set_automine(false).await.unwrap();
    // Exact input of 50 token0 (Keel's calldata), then an exact output of 20 token0 paid in token1.
    let exact_in = keel_router::exec::v4_exact_in_single(&key, true, e18(50).to::<u128>(), 0);
    let out_params = V4ExactOutSingle {
        poolKey: V4PoolKey {
            currency0: c0,
            currency1: c1,
            fee: U24::from(key.fee),
            tickSpacing: I24::try_from(key.tick_spacing).unwrap(),
            hooks: Address::ZERO,
        },
        zeroForOne: false,
        amountOut: e18(20).to::<u128>(),
        amountInMaximum: u128::MAX,
        hookData: Bytes::new(),
    };
    let plan = V4Plan {
        // SWAP_EXACT_OUT_SINGLE, SETTLE_ALL (pay token1, at most …), TAKE_ALL (token0, at least 20)
        actions: vec![0x08, 0x0c, 0x0f].into(),
        params: vec![
            out_params.abi_encode().into(),
            (c1, U256::MAX).abi_encode_params().into(),
            (c0, e18(20)).abi_encode_params().into(),
        ],
    };
    let exact_out = IV4Router::executeActionsCall { params: plan.abi_encode_params().into() }.abi_encode();
    let mut hashes = Vec::new();
    for input in [exact_in, exact_out] {
        let tx = TransactionRequest::default().with_to(v4.router).with_input(input).with_gas_limit(1_000_000);
        hashes.push(*trader.send_transaction(tx).await.unwrap().tx_hash());
    }

    let mut txs = Vec::new();
    while txs.len() < 2 {
        match tokio::time::timeout(WAIT, pending.recv()).await {
            Ok(Some(t)) => txs.push(t),
            other => panic!("decoded {} of 2 pending V4 swaps ({other:?}); stats {stats:?}", txs.len()),
        }
    }
    assert!(!mempool.is_finished());
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 0);
    assert_eq!(txs.iter().map(|t| t.hash).collect::<Vec<_>>(), hashes);
    let leg = |t: &PendingTx| {
        let r = &t.routes[0];
        let h = r.hops[0];
        (t.routes.len(), r.hops.len(), h.kind, h.pool, h.token_in, h.token_out, r.amount)
    };
    assert_eq!(leg(&txs[0]), (1, 1, PoolKind::V4, Some(0), c0, c1, Some(SwapAmount::ExactIn(e18(50)))));
    assert_eq!(leg(&txs[1]), (1, 1, PoolKind::V4, Some(0), c1, c0, Some(SwapAmount::ExactOut(e18(20)))));

    // The view's prediction from the mined state, then the block that includes both.
    let head = chain.block_number().await.unwrap();
    let mut book = PoolBook::new(std::slice::from_ref(&tracked));
    book.set_state(0, load_pool(chain.provider(), &tracked, head).await.unwrap(), head, 0);
    let mut view = PendingView::new(ViewLimits::default());
    for t in &txs {
        view.add(t.clone());
    }
    let expected = view.replay(&book).remove(0);
    chain.mine().await.unwrap();
    chain.set_automine(true).await.unwrap();
    for h in &hashes {
        let r = chain.provider().get_transaction_receipt(*h).await.unwrap().expect("mined");
        assert!(r.status(), "{h} reverted");
        assert_eq!(r.block_number, Some(head + 1));
    }
    let got = load_pool(chain.provider(), &tracked, head + 1).await.unwrap();
    assert_eq!(Some(got), expected, "the V4 pool after the pending swaps");
}
