//! A polling node client over HTTP JSON-RPC: each new block, read the head, every tracked V2 pool's
//! reserves, every portfolio account's token balances and nonce, all pinned to that block, and
//! publish them to the engine and router queues.
//!
//! This is the portable path: any Ethereum JSON-RPC node (or Keel's simulated chain) serves it. The
//! websocket subscription feed in [`crate::node`] is the low-latency path for real nodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::BlockNumberOrTag;
use alloy::sol_types::SolCall;
use futures_util::future::try_join_all;
use keel_amm::abi::{IERC20, IUniswapV2Pair};
use keel_engine::chain::ChainUpdate;
use keel_engine::event::{Balance, BlockHeader, Event};
use keel_engine::{PortfolioId, Queue, TokenId, clock::mono_now_ns};
use keel_recording::{Recorder, SOURCE_POLLER};

use crate::rpc::call;
use tokio_util::sync::CancellationToken;

/// Default interval between head polls.
pub const DEFAULT_POLL_MS: u64 = 100;

/// What the poller reads each block.
#[derive(Debug, Clone, Default)]
pub struct PollTargets {
    /// V2 pools: (index in the pool list, pair address).
    pub v2_pools: Vec<(u32, Address)>,
    /// Balances: (portfolio, its account, token id, token address).
    pub balances: Vec<(PortfolioId, Address, TokenId, Address)>,
    /// Accounts whose nonce the router tracks.
    pub accounts: Vec<Address>,
    /// Allowances read once at start: (owner, token, spender).
    pub allowances: Vec<(Address, Address, Address)>,
}

/// Why the poller stopped or skipped.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The RPC URL is malformed.
    #[error("bad RPC URL `{0}`")]
    BadUrl(String),
    /// A call failed.
    #[error("rpc: {0}")]
    Rpc(String),
}

/// Counters of the poller.
#[derive(Debug, Default)]
pub struct PollStats {
    /// Blocks fully read and published.
    pub blocks: AtomicU64,
    /// Failed reads (retried on the next poll).
    pub errors: AtomicU64,
    /// Updates refused by a full queue.
    pub dropped: AtomicU64,
}

fn rpc_err(e: impl std::fmt::Display) -> PollError {
    PollError::Rpc(e.to_string())
}

/// Runs until `cancel`: polls `rpc_url` every `poll_ms` and publishes each new block's state: heads
/// and balances to the engine's queue, pools, nonces, allowances and heads to the router's (any
/// queue whose items are made from a [`ChainUpdate`]). With a `recorder`, every update and event
/// is recorded as it enters its queue (the read's receive time is when its block's reads completed).
#[allow(clippy::too_many_arguments)]
pub async fn run_chain_poller<R: From<ChainUpdate> + Send + Sync>(
    rpc_url: String,
    poll_ms: u64,
    targets: PollTargets,
    engine_queue: Arc<Queue<Event>>,
    router_queue: Arc<Queue<R>>,
    stats: Arc<PollStats>,
    recorder: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> Result<(), PollError> {
    let url = rpc_url.parse().map_err(|_| PollError::BadUrl(rpc_url.clone()))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let recorder = recorder.as_deref();
    let publish_router = |u: ChainUpdate| {
        if let Some(r) = recorder {
            r.chain_update(SOURCE_POLLER, mono_now_ns(), &u);
        }
        if router_queue.try_push(R::from(u)).is_err() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    // Allowances once; the router tracks them locally afterwards.
    loop {
        let reads = targets.allowances.iter().map(|&(owner, token, spender)| {
            let p = &provider;
            async move {
                let amount = call(p, token, &IERC20::allowanceCall::new((owner, spender)), BlockId::latest())
                    .await
                    .map_err(rpc_err)?;
                Ok::<_, PollError>(ChainUpdate::Allowance { owner, token, spender, amount })
            }
        });
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = try_join_all(reads) => match r {
                Ok(updates) => { updates.into_iter().for_each(publish_router); break; }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "reading allowances failed; retrying");
                    tokio::time::sleep(Duration::from_millis(poll_ms.max(50))).await;
                }
            }
        }
    }
    let mut last: Option<u64> = None;
    let mut interval = tokio::time::interval(Duration::from_millis(poll_ms.max(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        match poll_once(&provider, &targets, last).await {
            Ok(None) => {}
            Ok(Some(block)) => {
                last = Some(block.head.number);
                let recv_ns = mono_now_ns();
                let head = BlockHeader { recv_ns, ..block.head };
                // Pools and nonces first: the router settles landings before it retargets on the head.
                for u in block.router {
                    publish_router(u);
                }
                publish_router(ChainUpdate::Head(head));
                for ev in std::iter::once(Event::Block(head)).chain(block.engine) {
                    // Recorded once queued, so the recording's order is the engine's.
                    if engine_queue.try_push(ev).is_err() {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(r) = recorder {
                        r.engine_event(SOURCE_POLLER, recv_ns, &ev);
                    }
                }
                stats.blocks.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "chain poll failed; retrying next tick");
            }
        }
    }
}

struct BlockRead {
    head: BlockHeader,
    engine: Vec<Event>,
    router: Vec<ChainUpdate>,
}

async fn poll_once<P: Provider>(
    provider: &P,
    targets: &PollTargets,
    last: Option<u64>,
) -> Result<Option<BlockRead>, PollError> {
    let number = provider.get_block_number().await.map_err(rpc_err)?;
    if last.is_some_and(|l| number <= l) {
        return Ok(None);
    }
    let block = provider
        .get_block_by_number(BlockNumberOrTag::Number(number))
        .await
        .map_err(rpc_err)?
        .ok_or_else(|| PollError::Rpc(format!("block {number} not found")))?;
    let at = BlockId::number(number);
    let head = BlockHeader {
        number,
        timestamp: block.header.timestamp,
        base_fee: block.header.base_fee_per_gas.unwrap_or(0) as u128,
        recv_ns: 0,
    };
    let pools = targets.v2_pools.iter().map(|&(pool, addr)| async move {
        let r = call(provider, addr, &IUniswapV2Pair::getReservesCall::new(()), at).await.map_err(rpc_err)?;
        Ok::<_, PollError>(ChainUpdate::polled_v2_reserves(
            pool,
            addr,
            U256::from(r.reserve0),
            U256::from(r.reserve1),
            number,
        ))
    });
    let balances = targets.balances.iter().map(|&(portfolio, account, token, token_addr)| async move {
        let amount =
            call(provider, token_addr, &IERC20::balanceOfCall::new((account,)), at).await.map_err(rpc_err)?;
        Ok::<_, PollError>(Event::Balance(Balance { portfolio, token, amount, block: number }))
    });
    let nonces = targets.accounts.iter().map(|&account| async move {
        let nonce = provider.get_transaction_count(account).block_id(at).await.map_err(rpc_err)?;
        Ok::<_, PollError>(ChainUpdate::Nonce { account, nonce, block: number })
    });
    let (mut router, engine, nonces) =
        tokio::try_join!(try_join_all(pools), try_join_all(balances), try_join_all(nonces))?;
    router.extend(nonces);
    Ok(Some(BlockRead { head, engine, router }))
}
