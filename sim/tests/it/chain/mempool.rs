//! A pending swap on a tracked pool is decoded, and the pending view equals the mined state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::aliases::U24;
use alloy::primitives::{I256, U256};
use alloy::providers::Provider;
use keel_feeds::node::sync::load_pool;
use keel_feeds::node::{
    MempoolDecoder, MempoolPool, NodeFeedStats, PendingSwap, PendingView, PoolBook, PoolKind,
    run_mempool_feed,
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
        })
        .collect();
    let decoder = MempoolDecoder::new(&mp, Some(a.v2_router), Some(a.v3_swap_router));
    let (out, mut pending) = tokio::sync::mpsc::channel::<PendingSwap>(1024);
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let task = tokio::spawn(run_mempool_feed(
        chain.ws_url().to_string(),
        decoder,
        out,
        Arc::new(NodeFeedStats::default()),
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

    let mut view = PendingView::new();
    let deadline = Instant::now() + WAIT;
    while view.pending().len() < 3 {
        assert!(!task.is_finished(), "mempool feed stopped");
        assert!(Instant::now() < deadline, "saw only {:?}", view.pending());
        match pending.try_recv() {
            Ok(s) => view.add(s),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let p = view.pending();
    assert_eq!((p[0].pool, p[0].zero_for_one, p[0].amount), (3, true, I256::try_from(e18(4_000)).unwrap()));
    assert_eq!((p[1].pool, p[1].zero_for_one, p[1].amount), (3, false, -I256::try_from(e18(1_500)).unwrap()));
    assert_eq!((p[2].pool, p[2].zero_for_one, p[2].amount), (1, false, -I256::try_from(e18(250)).unwrap()));
    assert_eq!(p.iter().map(|s| s.tx_hash).collect::<Vec<_>>(), hashes);
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
    view.remove_mined(&hashes);
    assert!(view.pending().is_empty());
    assert_eq!(view.pending_volume(3), U256::ZERO);
}
