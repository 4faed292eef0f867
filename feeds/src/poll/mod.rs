//! The chain poller: for each new block, ONE batched read ([`batch`]) of the head, every tracked
//! V2 pool's reserves, every Balancer weighted pool's balances and fee ([`balancer`]), every
//! Curve StableSwap-NG pool's balances, rates, amplification and fees ([`curve`]), every
//! portfolio account's token balances and nonce, and the on-chain parameter registry
//! ([`registry`]), all pinned to that block, published to the engine and router queues (the
//! registry's changes to their own queue).
//!
//! Heads come from the node's `newHeads` stream when a websocket URL is given, with HTTP polling
//! of `eth_blockNumber` as the counted fallback ([`heads`]). Any Ethereum JSON-RPC node (or Keel's
//! simulated chain) serves it. The pool-log feed in [`crate::node`] is the exact path for pool
//! state on real nodes.
//!
//! Per block the node sees one batch request (plus, when polling, the cheap `eth_blockNumber`
//! polls between blocks); allowances are read once at start, in one batch too, and so are the
//! Balancer pools' tokens, weights and token decimals (two batches) and the Curve pools' coins
//! (two batches).

mod balancer;
mod batch;
mod curve;
mod heads;
mod registry;

pub use balancer::BalancerTarget;
pub use curve::CurveTarget;
pub use heads::{WS_CHECK_EVERY, WS_RETRY_EVERY, WS_STALE_BLOCKS};
pub use registry::{RegistryTarget, portfolio_key};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use keel_engine::chain::ChainUpdate;
use keel_engine::event::{BlockHeader, Event};
use keel_engine::{PortfolioId, Queue, TokenId, clock::mono_now_ns};
use tokio_util::sync::CancellationToken;

/// Default interval between head polls.
pub const DEFAULT_POLL_MS: u64 = 100;

/// What the poller reads each block.
#[derive(Debug, Clone, Default)]
pub struct PollTargets {
    /// V2 pools: (index in the pool list, pair address).
    pub v2_pools: Vec<(u32, Address)>,
    /// Balancer weighted pools (read every block whether or not the node feed runs).
    pub balancer_pools: Vec<BalancerTarget>,
    /// Curve StableSwap-NG pools (read every block whether or not the node feed runs).
    pub curve_pools: Vec<CurveTarget>,
    /// Balances: (portfolio, its account, token id, token address). The zero address is native
    /// ETH: read with `eth_getBalance` and reported less [`Self::native_reserve`].
    pub balances: Vec<(PortfolioId, Address, TokenId, Address)>,
    /// Native ETH kept out of trading in each account (`[router] gas_reserve_wei`): a native
    /// balance is reported less this, never below zero.
    pub native_reserve: U256,
    /// Accounts whose nonce the router tracks.
    pub accounts: Vec<Address>,
    /// Allowances read once at start: (owner, token, spender).
    pub allowances: Vec<(Address, Address, Address)>,
    /// Allowances through Permit2 read once at start: (owner, token, spender), where the spender
    /// (a Universal Router) takes `token` through Permit2. Reported as one
    /// [`ChainUpdate::Allowance`] of `spender`: the smaller of the owner's ERC-20 allowance of
    /// Permit2 and its Permit2 allowance of the spender (zero once that has expired).
    pub permit2_allowances: Vec<(Address, Address, Address)>,
    /// The on-chain parameter registry, read every block in the same batch (`[registry]`).
    pub registry: Option<RegistryTarget>,
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
    /// Number of the highest block published (0: none yet); with several chains, each chain's
    /// poller has its own (progress lines show every chain's head).
    pub last_block: AtomicU64,
    /// Failed reads (retried on the next head).
    pub errors: AtomicU64,
    /// Updates refused by a full queue.
    pub dropped: AtomicU64,
    /// Batched block reads sent (one per block read).
    pub batches: AtomicU64,
    /// Heads received on the `newHeads` stream.
    pub ws_heads: AtomicU64,
    /// New heads found by HTTP polling.
    pub polled_heads: AtomicU64,
    /// `newHeads` sessions opened.
    pub ws_sessions: AtomicU64,
    /// Times the poller fell back to HTTP polling (websocket unreachable, closed or quiet).
    pub ws_fallbacks: AtomicU64,
    /// Registry changes published (entries and global pause flags).
    pub registry_changes: AtomicU64,
    /// Registry reads that failed or did not decode (the parameters in force stay).
    pub registry_errors: AtomicU64,
    /// Registry entries skipped: no configured portfolio has their id, or too many tokens.
    pub registry_skipped: AtomicU64,
    /// Balancer and Curve pool reads skipped because they failed (one per pool and block; the
    /// block's other reads stand, and the pool ages until a read succeeds).
    pub pool_reads_skipped: AtomicU64,
}

/// Where and how often the poller reads the node.
#[derive(Debug, Clone)]
pub struct PollConfig {
    /// HTTP JSON-RPC URL: every state read, and head polls when there is no stream.
    pub rpc_url: String,
    /// Websocket URL: heads from `newHeads` when set.
    pub ws_url: Option<String>,
    /// Interval of the HTTP head polls, ms.
    pub poll_ms: u64,
}

/// Runs until `cancel`: on each new head (from `newHeads`, or polled every `poll_ms`) reads the
/// block's state in one batch request and publishes it: heads and balances to the engine's queue,
/// pools, nonces, allowances and heads to the router's (any queue whose items are made from a
/// [`ChainUpdate`]). A recording takes them from the queues' consumers, as they are handled (the
/// read's receive time is when its block's reads completed).
pub async fn run_chain_poller<R: From<ChainUpdate> + Send + Sync>(
    config: PollConfig,
    targets: PollTargets,
    engine_queue: Arc<Queue<Event>>,
    router_queue: Arc<Queue<R>>,
    stats: Arc<PollStats>,
    cancel: CancellationToken,
) -> Result<(), PollError> {
    let PollConfig { rpc_url, ws_url, poll_ms } = config;
    // Replies capped: a broken node cannot make the poller buffer without bound.
    let provider = crate::http::http_provider(&rpc_url).map_err(|_| PollError::BadUrl(rpc_url.clone()))?;
    let publish_router = |u: ChainUpdate| {
        if router_queue.try_push(R::from(u)).is_err() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    // Allowances once; the router tracks them locally afterwards.
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = batch::read_allowances(&provider, &targets) => match r {
                Ok(updates) => { updates.into_iter().for_each(publish_router); break; }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "reading allowances failed; retrying");
                    tokio::time::sleep(Duration::from_millis(poll_ms.max(50))).await;
                }
            }
        }
    }
    // Balancer pools' tokens, weights and decimals once (they do not change).
    let balancer = loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = batch::read_balancer_meta(&provider, &targets) => match r {
                Ok(meta) => break meta,
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "reading the balancer pools failed; retrying");
                    tokio::time::sleep(Duration::from_millis(poll_ms.max(50))).await;
                }
            }
        }
    };
    // Curve pools' coins and admin fee once (they do not change).
    let curve = loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = batch::read_curve_meta(&provider, &targets) => match r {
                Ok(meta) => break meta,
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "reading the curve pools failed; retrying");
                    tokio::time::sleep(Duration::from_millis(poll_ms.max(50))).await;
                }
            }
        }
    };
    let mut registry = targets.registry.as_ref().map(|t| (t, registry::RegistryView::new(t)));
    let mut heads = heads::Heads::new(ws_url, poll_ms);
    let mut last: Option<u64> = None;
    // Pools whose last read failed (at most one entry per configured pool).
    let mut failing: Vec<u32> = Vec::new();
    loop {
        let Some(number) = heads.next(&provider, last, &stats, &cancel).await else { return Ok(()) };
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let read = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = batch::read_block(&provider, &targets, &balancer, &curve, number) => r,
        };
        match read {
            Ok(block) => {
                last = Some(number);
                note_skipped(&block.skipped, &mut failing, number, &stats);
                let recv_ns = mono_now_ns();
                let head = BlockHeader { recv_ns, ..block.head };
                // Pools and nonces first: the router settles landings before it retargets on the head.
                for u in block.router {
                    publish_router(u);
                }
                publish_router(ChainUpdate::Head(head));
                // Registry changes before the block's events: they apply from the next decision.
                if let (Some((t, view)), Some(raw)) = (registry.as_mut(), block.registry) {
                    view.on_read(t, raw, number, &stats);
                }
                for mut ev in std::iter::once(Event::Block(head)).chain(block.engine) {
                    if let Event::Balance(b) = &mut ev {
                        b.recv_ns = recv_ns;
                    }
                    if engine_queue.try_push(ev).is_err() {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                stats.blocks.fetch_add(1, Ordering::Relaxed);
                stats.last_block.fetch_max(number, Ordering::Relaxed);
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, block = number, "block read failed; retrying on the next head");
            }
        }
    }
}

/// Counts each pool read skipped this block, and logs a pool when its reads start failing and
/// when they succeed again (not every block in between); `failing` holds the failing pools.
fn note_skipped(skipped: &[batch::SkippedPool], failing: &mut Vec<u32>, block: u64, stats: &PollStats) {
    for s in skipped {
        stats.pool_reads_skipped.fetch_add(1, Ordering::Relaxed);
        if failing.contains(&s.pool) {
            tracing::debug!(pool = s.pool, block, error = %s.error, "pool read failed again: skipped");
        } else {
            failing.push(s.pool);
            tracing::warn!(pool = s.pool, address = %s.address, block, error = %s.error, "pool read failed: skipped for this block, and for each block until it reads again");
        }
    }
    failing.retain(|&pool| {
        let still = skipped.iter().any(|s| s.pool == pool);
        if !still {
            tracing::info!(pool, block, "pool reads again");
        }
        still
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every skip is counted; a pool is tracked as failing from its first skip until a block
    /// reads it again (so it is logged at those two moments only).
    #[test]
    fn skipped_pool_reads_are_counted_and_tracked_until_the_pool_reads_again() {
        let skip = |pool| batch::SkippedPool {
            pool,
            address: Address::repeat_byte(pool as u8),
            error: PollError::Rpc("reverted".into()),
        };
        let (stats, mut failing) = (PollStats::default(), Vec::new());
        note_skipped(&[skip(1)], &mut failing, 10, &stats);
        note_skipped(&[skip(1), skip(2)], &mut failing, 11, &stats);
        assert_eq!((failing.clone(), stats.pool_reads_skipped.load(Ordering::Relaxed)), (vec![1, 2], 3));
        note_skipped(&[skip(2)], &mut failing, 12, &stats);
        assert_eq!(failing, [2], "pool 1 reads again");
        note_skipped(&[], &mut failing, 13, &stats);
        assert!(failing.is_empty());
        assert_eq!(stats.pool_reads_skipped.load(Ordering::Relaxed), 4);
    }
}
