//! The chain poller reads a genuine Curve StableSwap-NG pool every block as a snapshot of its
//! state, and a pool whose reads start failing is skipped block by block, counted, while the
//! block's other reads go on.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy::primitives::{Bytes, U256};
use alloy::providers::Provider;
use keel_amm::pool::{Pool, PoolChange};
use keel_engine::chain::ChainUpdate;
use keel_engine::{Event, Queue};
use keel_feeds::poll::{CurveTarget, PollConfig, PollStats, PollTargets, run_chain_poller};
use keel_sim::anvil::{CurveNgParams, deploy_curve_ng, read_ng_pool, seed_curve_ng};
use tokio_util::sync::CancellationToken;

use super::util::{chain, e18};

/// A pool update seen: its block, its pool index, its state when a snapshot.
type Seen = (u64, u32, Option<Pool>);

/// The pool indices of the router updates drained from `q` for blocks after `after`, by block.
fn pools_read(q: &Queue<ChainUpdate>, after: u64, seen: &mut Vec<Seen>) {
    while let Some(u) = q.try_pop() {
        if let ChainUpdate::Pool { update, .. } = u
            && update.block > after
        {
            let snapshot = match update.change {
                PoolChange::Snapshot(p) => Some(*p),
                _ => None,
            };
            seen.push((update.block, update.pool, snapshot));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_reads_a_curve_pool_each_block_and_skips_it_alone_once_its_reads_fail() {
    let chain = chain().await;
    let a = chain.addresses().clone();
    let (tka, tkb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    let pair = a.v2_pairs.iter().find(|p| [p.token0, p.token1] == [tka.min(tkb), tka.max(tkb)]).unwrap();
    let rate = U256::from(10u64).pow(U256::from(18u8));
    let params = CurveNgParams {
        coins: vec![tkb, tka],
        rate_multipliers: vec![rate, rate],
        a: 50,
        fee: 4_000_000,
        offpeg_fee_multiplier: 20_000_000_000,
    };
    let curve = deploy_curve_ng(&chain, &params).await.expect("curve pool (run `make chain-deps`)");
    seed_curve_ng(&chain, curve, &[tkb, tka], &[e18(1_000), e18(2_000)], 1).await.unwrap();

    let targets = PollTargets {
        v2_pools: vec![(0, pair.address)],
        curve_pools: vec![CurveTarget {
            pool: 1,
            address: curve,
            token0: tka.min(tkb),
            token1: tka.max(tkb),
        }],
        ..PollTargets::default()
    };
    let (stats, cancel) = (Arc::new(PollStats::default()), CancellationToken::new());
    let events: Arc<Queue<Event>> = Arc::new(Queue::new(1 << 16));
    let router: Arc<Queue<ChainUpdate>> = Arc::new(Queue::new(1 << 16));
    let config = PollConfig { rpc_url: chain.http_url().to_string(), ws_url: None, poll_ms: 20 };
    let (s, e, r, c) = (Arc::clone(&stats), Arc::clone(&events), Arc::clone(&router), cancel.clone());
    let task = tokio::spawn(async move { run_chain_poller(config, targets, e, r, s, c).await });
    let mine = || async {
        chain.provider().raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await.unwrap()
    };
    // Mines blocks until `done` holds of the updates seen after `after`, or 20 s pass.
    let mut seen = Vec::new();
    let mine_until = async |after: u64, seen: &mut Vec<Seen>, done: &dyn Fn(&[Seen]) -> bool| {
        let t0 = Instant::now();
        seen.clear();
        while !done(seen) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "not reached: {:?}",
                seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>()
            );
            mine().await;
            tokio::time::sleep(Duration::from_millis(60)).await;
            pools_read(&router, after, seen);
        }
    };

    // Each block carries the pair's reserves and the Curve pool's whole state, exactly the
    // contract's: its pair is TKA/TKB in token order, coins 1 and 0.
    mine_until(0, &mut seen, &|s| s.iter().any(|x| x.1 == 1)).await;
    let (block, _, snapshot) = seen.iter().find(|x| x.1 == 1).cloned().unwrap();
    let Some(Pool::Curve(pair)) = snapshot else { panic!("not a curve snapshot") };
    let on_chain = read_ng_pool(chain.provider(), curve).await.unwrap();
    assert_eq!(pair.pool().balances(), on_chain.balances(), "balances at block {block}");
    assert_eq!(pair.indices(), if tka < tkb { (1, 0) } else { (0, 1) });
    assert_eq!(stats.pool_reads_skipped.load(Ordering::Relaxed), 0);

    // The pool's code is replaced by one that reverts every call: from then on its reads fail.
    let revert = Bytes::from_static(&[0x60, 0x00, 0x60, 0x00, 0xfd]);
    let _: serde_json::Value =
        chain.provider().raw_request("anvil_setCode".into(), (curve, revert)).await.unwrap();
    let broken = chain.provider().get_block_number().await.unwrap();
    let errors = stats.errors.load(Ordering::Relaxed);
    // Three more blocks read: each has the pair's reserves and no Curve state.
    mine_until(broken, &mut seen, &|s| s.iter().filter(|x| x.1 == 0).count() >= 3).await;
    assert!(
        seen.iter().all(|x| x.1 == 0),
        "a broken pool was published: {:?}",
        seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>()
    );
    assert!(stats.pool_reads_skipped.load(Ordering::Relaxed) >= 3, "{stats:?}");
    assert_eq!(stats.errors.load(Ordering::Relaxed), errors, "no block read failed as a whole");
    cancel.cancel();
    task.await.unwrap().unwrap();
}
