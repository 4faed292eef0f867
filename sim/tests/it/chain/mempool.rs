//! A pending swap on a tracked pool is decoded, and the pending view equals the mined state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::primitives::aliases::U24;
use alloy::providers::Provider;
use keel_amm::pool::SwapAmount;
use keel_feeds::backoff::BackoffConfig;
use keel_feeds::node::mempool::Mined;
use keel_feeds::node::sync::load_pool;
use keel_feeds::node::{
    MempoolDecoder, MempoolFeedConfig, MempoolPool, MempoolStats, PendingTx, PendingView, PoolBook, PoolKind,
    RouterKind, ViewLimits, run_mempool_feed,
};
use keel_sim::anvil::contracts::rpc::{ISwapRouter, IUniswapV2Router02};
use tokio_util::sync::CancellationToken;

use super::node_feed::tracked_pools;
use super::util::{WAIT, chain, e18};

const TRADER: usize = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_swaps_are_decoded_and_the_pending_view_equals_the_mined_state() {
    let chain = chain().await;
    let a = chain.addresses().clone();
    let pools = tracked_pools(&chain);
    let mp: Vec<MempoolPool> = a
        .v2_pairs
        .iter()
        .map(|p| (p.address, PoolKind::V2, p.token0, p.token1, 0))
        .chain(a.v3_pools.iter().map(|p| (p.address, PoolKind::V3, p.token0, p.token1, p.fee)))
        .enumerate()
        .map(|(i, (address, kind, token0, token1, fee))| MempoolPool {
            id: i as u32,
            address,
            kind,
            token0,
            token1,
            fee,
            pool_key: None,
        })
        .collect();
    let decoder = MempoolDecoder::new(
        &mp,
        &[(a.v2_router, RouterKind::V2Router02), (a.v3_swap_router, RouterKind::SwapRouter)],
    );
    let (out, mut pending) = tokio::sync::mpsc::channel::<PendingTx>(1024);
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let task = tokio::spawn(run_mempool_feed(
        MempoolFeedConfig { ws_url: chain.ws_url().to_string(), backoff: BackoffConfig::default() },
        decoder,
        out,
        Arc::new(MempoolStats::default()),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await; // let the subscription start

    // Book at the current head.
    let head = chain.block_number().await.unwrap();
    let mut book = PoolBook::new(&pools);
    for (i, p) in pools.iter().enumerate() {
        book.set_state(i as u32, load_pool(chain.provider(), p, head).await.unwrap(), head, 0);
    }

    chain.set_automine(false).await.unwrap();
    let trader = chain.wallet_provider(TRADER);
    let me = chain.address(TRADER);
    let v3 = &a.v3_pools[0]; // id 3
    let v2 = &a.v2_pairs[1]; // id 1
    // Two V3 swaps (exact in 0->1 crossing ticks, then exact out 1->0) and one V2 exact-output swap.
    let r = ISwapRouter::new(a.v3_swap_router, &trader);
    let tx_a = r
        .exactInputSingle(ISwapRouter::ExactInputSingleParams {
            tokenIn: v3.token0,
            tokenOut: v3.token1,
            fee: U24::from(3000u32),
            recipient: me,
            deadline: U256::from(4_000_000_000u64),
            amountIn: e18(4_000),
            amountOutMinimum: U256::ZERO,
            sqrtPriceLimitX96: Default::default(),
        })
        .gas(500_000)
        .send()
        .await
        .unwrap();
    let tx_b = r
        .exactOutputSingle(ISwapRouter::ExactOutputSingleParams {
            tokenIn: v3.token1,
            tokenOut: v3.token0,
            fee: U24::from(3000u32),
            recipient: me,
            deadline: U256::from(4_000_000_000u64),
            amountOut: e18(1_500),
            amountInMaximum: U256::MAX,
            sqrtPriceLimitX96: Default::default(),
        })
        .gas(500_000)
        .send()
        .await
        .unwrap();
    let tx_c = IUniswapV2Router02::new(a.v2_router, &trader)
        .swapTokensForExactTokens(
            e18(250),
            U256::MAX,
            vec![v2.token1, v2.token0],
            me,
            U256::from(4_000_000_000u64),
        )
        .gas(300_000)
        .send()
        .await
        .unwrap();
    let hashes = [*tx_a.tx_hash(), *tx_b.tx_hash(), *tx_c.tx_hash()];

    let mut view = PendingView::new(ViewLimits::default());
    let deadline = Instant::now() + WAIT;
    while view.pending().len() < 3 {
        assert!(!task.is_finished(), "mempool feed stopped");
        assert!(Instant::now() < deadline, "saw only {:?}", view.pending().collect::<Vec<_>>());
        match pending.try_recv() {
            Ok(s) => {
                view.add(s);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let p: Vec<PendingTx> = view.pending().cloned().collect();
    let leg = |t: &PendingTx| {
        assert_eq!((t.routes.len(), t.routes[0].hops.len()), (1, 1));
        let h = t.routes[0].hops[0];
        (h.pool, h.zero_for_one(), t.routes[0].amount)
    };
    assert_eq!(leg(&p[0]), (Some(3), true, Some(SwapAmount::ExactIn(e18(4_000)))));
    assert_eq!(leg(&p[1]), (Some(3), false, Some(SwapAmount::ExactOut(e18(1_500)))));
    assert_eq!(leg(&p[2]), (Some(1), false, Some(SwapAmount::ExactOut(e18(250)))));
    assert_eq!(p.iter().map(|s| s.hash).collect::<Vec<_>>(), hashes);
    assert!(p.iter().all(|s| s.sender == me));
    assert_eq!(view.pending_volume(3), e18(5_500));

    let expect_v3 = view.pool_after(&book, 3).unwrap();
    let expect_v2 = view.pool_after(&book, 1).unwrap();
    chain.mine().await.unwrap();
    chain.set_automine(true).await.unwrap();
    for h in hashes {
        let r = chain.provider().get_transaction_receipt(h).await.unwrap().expect("mined");
        assert!(r.status(), "{h} reverted");
    }
    let head = chain.block_number().await.unwrap();
    assert_eq!(load_pool(chain.provider(), &pools[3], head).await.unwrap(), expect_v3, "V3 pending view");
    assert_eq!(load_pool(chain.provider(), &pools[1], head).await.unwrap(), expect_v2, "V2 pending view");
    let mined: Vec<Mined> =
        p.iter().map(|t| Mined { hash: t.hash, sender: t.sender, nonce: t.nonce }).collect();
    assert_eq!(view.remove_included(&mined), 3);
    assert!(view.is_empty());
    assert_eq!(view.pending_volume(3), U256::ZERO);
}

/// The mempool feed outlives its node: started while nothing listens, it keeps reconnecting with
/// backoff (counted), and once anvil comes up on that port the same task decodes the next pending
/// swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mempool_feed_reconnects_until_the_node_is_up_and_then_decodes() {
    use std::sync::atomic::Ordering;
    // Addresses on a fresh anvil are deterministic: learn them from a first chain, then stop it.
    let a = chain().await.addresses().clone();
    let v2 = a.v2_pairs[0].clone();
    let pool = MempoolPool {
        id: 0,
        address: v2.address,
        kind: PoolKind::V2,
        token0: v2.token0,
        token1: v2.token1,
        fee: 0,
        pool_key: None,
    };
    let decoder = MempoolDecoder::new(&[pool], &[(a.v2_router, RouterKind::V2Router02)]);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let stats = Arc::new(MempoolStats::default());
    let (out, mut pending) = tokio::sync::mpsc::channel::<PendingTx>(16);
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let task = tokio::spawn(run_mempool_feed(
        MempoolFeedConfig {
            ws_url: format!("ws://127.0.0.1:{port}"),
            backoff: BackoffConfig { base_ms: 20, max_ms: 100 },
        },
        decoder,
        out,
        Arc::clone(&stats),
        cancel.clone(),
    ));
    let deadline = Instant::now() + WAIT;
    while stats.reconnects.load(Ordering::Relaxed) < 3 {
        assert!(!task.is_finished(), "the feed ended while the node was down");
        assert!(Instant::now() < deadline, "no reconnect attempts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let chain = keel_sim::anvil::AnvilChain::start_on(port).await.expect("anvil on the freed port");
    assert_eq!(chain.addresses().v2_pairs[0].address, v2.address, "deterministic deployment");
    tokio::time::sleep(Duration::from_millis(300)).await; // the feed's next attempt connects
    chain.set_automine(false).await.unwrap();
    let trader = chain.wallet_provider(TRADER);
    let sent = IUniswapV2Router02::new(a.v2_router, &trader)
        .swapExactTokensForTokens(
            e18(3),
            U256::ZERO,
            vec![v2.token0, v2.token1],
            chain.address(TRADER),
            U256::from(4_000_000_000u64),
        )
        .gas(300_000)
        .send()
        .await
        .unwrap();
    let got =
        tokio::time::timeout(WAIT, pending.recv()).await.expect("a decoded swap after reconnecting").unwrap();
    assert_eq!(got.hash, *sent.tx_hash());
    assert_eq!(got.routes[0].amount, Some(SwapAmount::ExactIn(e18(3))));
    assert!(!task.is_finished());
    eprintln!("reconnects before the node came up: {}", stats.reconnects.load(Ordering::Relaxed));
}
