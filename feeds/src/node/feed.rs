//! The node feed task: websocket subscriptions → [`PoolBook`] → [`PoolUpdate`]s for the router
//! (straight into its queue, as [`ChainUpdate::Pool`]) and engine events.
//!
//! With a mempool feed attached ([`NodeFeedOutputs::pending`]), the task also keeps the
//! [`PendingView`] of swaps pending on tracked pools, evicts from it what each new block includes
//! (by hash, or by the sender's nonce passing), what is older than
//! [`ViewLimits::max_age_ns`] and the oldest beyond [`ViewLimits::max_txs`], and tells the router
//! how far the pending swaps would move each pool ([`ChainUpdate::PendingImpact`]), computed on
//! this book: no mirror, no copy. An evicted swap's pool is reported back at 0.
//!
//! Per session: subscribe `newHeads` and `logs` (tracked pools; V2 `Sync`, V3 `Swap`/`Mint`/`Burn`,
//! V4 `PoolManager` `Swap`/`ModifyLiquidity`/`ProtocolFeeUpdated` of tracked pool ids)
//! first, then load every pool at the current head, so no log falls between the load and the
//! stream (logs at or before the load block are duplicates and ignored). Each head becomes an
//! [`Event::Block`] plus one [`Event::Balance`] per watched balance (read at that block). A head that
//! skips a block means logs may be missing: full resync. A dropped connection ends the session; the
//! next one reconnects with backoff and resyncs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::eips::BlockId;
use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolCall;
use alloy::sol_types::SolEvent;
use futures_util::StreamExt;
use keel_amm::abi::{IERC20, IPoolManager, IUniswapV2Pair, IUniswapV3Pool};
use keel_engine::chain::{ChainUpdate, PoolSource};
use keel_engine::clock::mono_now_ns;
use keel_engine::event::{Balance, BlockHeader};
use keel_engine::{Event, PortfolioId, Queue, TokenId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::book::{Applied, PoolBook, PoolUpdate, TrackedPool};
use super::error::{NodeError, Result};
use super::mempool::{Mined, PendingTx, PendingView, ViewLimits};
use super::sync::load_pool;
use crate::rpc::call;

/// First reconnect delay.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A token balance to report on every head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceWatch {
    /// Portfolio the account belongs to.
    pub portfolio: PortfolioId,
    /// Engine token id.
    pub token: TokenId,
    /// ERC-20 contract.
    pub token_address: Address,
    /// Account.
    pub owner: Address,
}

/// What the node feed follows.
#[derive(Debug, Clone)]
pub struct NodeFeedConfig {
    /// Websocket endpoint (`ws://...`).
    pub ws_url: String,
    /// Pools; a pool's [`super::PoolId`] is its index here.
    pub pools: Vec<TrackedPool>,
    /// Balances reported on every head.
    pub balances: Vec<BalanceWatch>,
}

/// Where the node feed publishes, and what else it listens to.
#[derive(Debug)]
pub struct NodeFeedOutputs<R> {
    /// The router stage's queue: pool updates, the feed's head, pending impacts.
    pub router: Arc<Queue<R>>,
    /// Heads and balances for the engine.
    pub events: Arc<Queue<Event>>,
    /// Swaps pending in the public mempool on tracked pools (from [`super::run_mempool_feed`]).
    pub pending: Option<mpsc::Receiver<PendingTx>>,
    /// Bounds of the pending view (age, count).
    pub pending_limits: ViewLimits,
    /// The id each tracked pool's updates and pending impacts are published under, by its index
    /// in [`NodeFeedConfig::pools`] (the runtime's configured pool index: pools the feed does not
    /// follow, such as Balancer's, leave gaps). Empty: its index.
    pub pool_ids: Vec<u32>,
}

/// Counters of the node feed.
#[derive(Debug, Default)]
pub struct NodeFeedStats {
    /// Heads received.
    pub heads: AtomicU64,
    /// Logs received.
    pub logs: AtomicU64,
    /// Full loads (initial, gap, reconnect, deep reorg).
    pub resyncs: AtomicU64,
    /// Reorg rollbacks.
    pub reorgs: AtomicU64,
    /// Sessions that ended in an error.
    pub reconnects: AtomicU64,
    /// Messages refused by a full queue.
    pub dropped: AtomicU64,
    /// Latest head seen.
    pub head: AtomicU64,
    /// Pending transactions evicted: replaced by the same sender and nonce.
    pub pending_replaced: AtomicU64,
    /// Pending transactions evicted: included in a block (or their nonce passed).
    pub pending_included: AtomicU64,
    /// Pending transactions evicted: older than the age limit.
    pub pending_aged: AtomicU64,
    /// Pending transactions evicted: the view was full.
    pub pending_capped: AtomicU64,
    /// Pending transactions in the view now.
    pub pending_txs: AtomicU64,
    /// The block every pool reflects at least (0 before the first load).
    pub synced_block: AtomicU64,
}

/// Runs the feed until `cancel` fires, reconnecting (and resyncing) after recoverable errors.
pub async fn run_node_feed<R: From<ChainUpdate> + Send + Sync>(
    config: NodeFeedConfig,
    mut out: NodeFeedOutputs<R>,
    stats: Arc<NodeFeedStats>,
    cancel: CancellationToken,
) -> Result<()> {
    let mut delay = DEFAULT_RECONNECT_MIN;
    let mut pending = Pending::new(out.pending_limits, config.pools.len());
    let mut pending_rx = out.pending.take();
    loop {
        match run_session(&config, &out, &mut pending_rx, &mut pending, &stats, &cancel).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_recoverable() && !cancel.is_cancelled() => {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, ?delay, "node feed session ended; reconnecting");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(DEFAULT_RECONNECT_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The mempool's pending transactions and the impacts last reported per pool.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) view: PendingView,
    impacts: Vec<f64>,
    scratch: Vec<f64>,
}

impl Pending {
    pub(crate) fn new(limits: ViewLimits, pools: usize) -> Self {
        Self { view: PendingView::new(limits), impacts: vec![0.0; pools], scratch: vec![0.0; pools] }
    }

    /// Drops what is older than the age limit, then reports every pool whose pending impact
    /// changed (an evicted swap's pool goes back to 0: the router releases its deferral).
    pub(crate) fn report<R: From<ChainUpdate>>(
        &mut self,
        book: &PoolBook,
        out: &NodeFeedOutputs<R>,
        stats: &NodeFeedStats,
    ) {
        self.view.evict_aged(mono_now_ns());
        self.view.impacts(book, &mut self.scratch);
        for (i, (last, &impact)) in self.impacts.iter_mut().zip(&self.scratch).enumerate() {
            if (impact - *last).abs() > 1e-9 {
                *last = impact;
                push(out, stats, ChainUpdate::PendingImpact { pool: i, impact });
            }
        }
        let e = self.view.evictions();
        stats.pending_replaced.store(e.replaced, Ordering::Relaxed);
        stats.pending_included.store(e.included, Ordering::Relaxed);
        stats.pending_aged.store(e.aged, Ordering::Relaxed);
        stats.pending_capped.store(e.capped, Ordering::Relaxed);
        stats.pending_txs.store(self.view.len() as u64, Ordering::Relaxed);
    }
}

fn push<R: From<ChainUpdate>>(out: &NodeFeedOutputs<R>, stats: &NodeFeedStats, mut u: ChainUpdate) {
    // Published under the runtime's pool ids (the book's are indices in the tracked list).
    let id = |i: usize| out.pool_ids.get(i).map_or(i, |&id| id as usize);
    match &mut u {
        ChainUpdate::Pool { update, .. } => update.pool = id(update.pool as usize) as super::PoolId,
        ChainUpdate::PendingImpact { pool, .. } => *pool = id(*pool),
        _ => {}
    }
    if out.router.try_push(R::from(u)).is_err() {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn publish<R: From<ChainUpdate>>(out: &NodeFeedOutputs<R>, stats: &NodeFeedStats, update: PoolUpdate) {
    push(out, stats, ChainUpdate::Pool { update, source: PoolSource::Logs });
}

async fn resync<P: Provider, R: From<ChainUpdate>>(
    provider: &P,
    config: &NodeFeedConfig,
    book: &mut PoolBook,
    block: u64,
    out: &NodeFeedOutputs<R>,
    stats: &NodeFeedStats,
) -> Result<()> {
    let states =
        futures_util::future::try_join_all(config.pools.iter().map(|p| load_pool(provider, p, block)))
            .await?;
    let now = mono_now_ns();
    for (id, state) in states.into_iter().enumerate() {
        if let Some(u) = book.set_state(id as u32, state, block, now) {
            publish(out, stats, u);
        }
    }
    stats.resyncs.fetch_add(1, Ordering::Relaxed);
    stats.synced_block.store(book.min_block(), Ordering::Release);
    Ok(())
}

async fn run_session<R: From<ChainUpdate>>(
    config: &NodeFeedConfig,
    out: &NodeFeedOutputs<R>,
    pending_rx: &mut Option<mpsc::Receiver<PendingTx>>,
    pending: &mut Pending,
    stats: &NodeFeedStats,
    cancel: &CancellationToken,
) -> Result<()> {
    let provider = ProviderBuilder::new()
        .connect_ws(WsConnect::new(config.ws_url.clone()))
        .await
        .map_err(|e| NodeError::rpc("connect", e))?;
    let mut heads =
        provider.subscribe_blocks().await.map_err(|e| NodeError::rpc("subscribe newHeads", e))?.into_stream();
    // V4 pools share their PoolManager's address: one entry per address.
    let mut addresses: Vec<Address> = config.pools.iter().map(|p| p.address).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let filter = Filter::new().address(addresses).event_signature(vec![
        IUniswapV2Pair::Sync::SIGNATURE_HASH,
        IUniswapV3Pool::Swap::SIGNATURE_HASH,
        IUniswapV3Pool::Mint::SIGNATURE_HASH,
        IUniswapV3Pool::Burn::SIGNATURE_HASH,
        IPoolManager::Swap::SIGNATURE_HASH,
        IPoolManager::ModifyLiquidity::SIGNATURE_HASH,
        IPoolManager::ProtocolFeeUpdated::SIGNATURE_HASH,
    ]);
    let mut logs = provider
        .subscribe_logs(&filter)
        .await
        .map_err(|e| NodeError::rpc("subscribe logs", e))?
        .into_stream();
    let mut book = PoolBook::new(&config.pools);
    let mut last_head =
        provider.get_block_number().await.map_err(|e| NodeError::rpc("eth_blockNumber", e))?;
    resync(&provider, config, &mut book, last_head, out, stats).await?;
    stats.head.fetch_max(last_head, Ordering::Relaxed);
    push(out, stats, ChainUpdate::PoolFeedHead { block: last_head });
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(()),
            swap = async { match pending_rx.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                match swap {
                    Some(s) => {
                        pending.view.add(s);
                        pending.report(&book, out, stats);
                    }
                    None => *pending_rx = None, // the mempool feed stopped
                }
            }
            log = logs.next() => {
                let log = log.ok_or(NodeError::SubscriptionEnded("logs"))?;
                let now = mono_now_ns();
                stats.logs.fetch_add(1, Ordering::Relaxed);
                match book.apply_log(&log, now) {
                    Ok(Applied::Updated(u)) => publish(out, stats, u),
                    Ok(Applied::RolledBack(us)) => {
                        stats.reorgs.fetch_add(1, Ordering::Relaxed);
                        for u in us {
                            publish(out, stats, u);
                        }
                    }
                    Ok(Applied::Ignored) => {}
                    Err(e) if e.is_recoverable() => {
                        tracing::warn!(error = %e, "pool book out of step; resyncing");
                        resync(&provider, config, &mut book, last_head, out, stats).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            head = heads.next() => {
                let h = head.ok_or(NodeError::SubscriptionEnded("newHeads"))?;
                let recv_ns = mono_now_ns();
                stats.heads.fetch_add(1, Ordering::Relaxed);
                stats.head.fetch_max(h.number, Ordering::Relaxed);
                let header = BlockHeader {
                    number: h.number,
                    timestamp: h.timestamp,
                    base_fee: u128::from(h.base_fee_per_gas.unwrap_or(0)),
                    recv_ns,
                };
                if out.events.try_push(Event::Block(header)).is_err() {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                if h.number > last_head + 1 {
                    tracing::warn!(from = last_head, to = h.number, "head skipped blocks; resyncing");
                    resync(&provider, config, &mut book, h.number, out, stats).await?;
                }
                last_head = last_head.max(h.number);
                // Pools are handed on before the head that vouches for them.
                push(out, stats, ChainUpdate::PoolFeedHead { block: h.number });
                if !pending.view.is_empty() {
                    // Inclusion: the block's transactions (hash, sender, nonce) evict what they
                    // include or whose nonce they pass; age eviction runs in `report`.
                    let block = provider
                        .get_block_by_number(h.number.into())
                        .full()
                        .await
                        .map_err(|e| NodeError::rpc("eth_getBlockByNumber", e))?;
                    if let Some(block) = block {
                        let mined: Vec<Mined> = block
                            .transactions
                            .txns()
                            .map(|t| Mined { hash: *t.inner.tx_hash(), sender: t.inner.signer(), nonce: t.nonce() })
                            .collect();
                        pending.view.remove_included(&mined);
                    }
                    pending.report(&book, out, stats);
                }
                for w in &config.balances {
                    let amount =
                        call(&provider, w.token_address, &IERC20::balanceOfCall::new((w.owner,)), BlockId::number(h.number))
                            .await
                            .map_err(|e| NodeError::rpc("balanceOf", e))?;
                    let recv_ns = mono_now_ns();
                    let ev = Event::Balance(Balance { portfolio: w.portfolio, token: w.token, amount, block: h.number, recv_ns });
                    if out.events.try_push(ev).is_err() {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};
    use keel_amm::pool::{Pool, SwapAmount};

    use super::*;
    use crate::node::book::PoolKind;
    use crate::node::mempool::{Hop, PendingTx, Route};

    fn impacts(q: &Queue<ChainUpdate>) -> Vec<(usize, f64)> {
        std::iter::from_fn(|| q.try_pop())
            .filter_map(|u| match u {
                ChainUpdate::PendingImpact { pool, impact } => Some((pool, impact)),
                _ => None,
            })
            .collect()
    }

    /// The router's deferral ends when the pool's impact is reported back at 0
    /// (`router/src/exec/tests.rs`); here a swap that never lands is aged out by the node feed's
    /// own clock and its pool reported at 0.
    #[test]
    fn a_stuck_pending_swap_is_aged_out_and_its_pool_reported_back_at_zero() {
        let tracked = TrackedPool {
            address: Address::repeat_byte(1),
            kind: PoolKind::V2,
            fee: 30,
            tick_spacing: None,
            pool_key: None,
        };
        let mut book = PoolBook::new(&[tracked]);
        let e18 = U256::from(10u64).pow(U256::from(18u64));
        book.set_state(
            0,
            Pool::V2 {
                reserve0: e18 * U256::from(1_000u64),
                reserve1: e18 * U256::from(1_000u64),
                fee_bps: 30,
            },
            1,
            0,
        );
        let out = NodeFeedOutputs {
            router: Arc::new(Queue::<ChainUpdate>::new(64)),
            events: Arc::new(Queue::new(64)),
            pending: None,
            pending_limits: ViewLimits { max_age_ns: 50_000_000, max_txs: 16 },
            pool_ids: Vec::new(),
        };
        let stats = NodeFeedStats::default();
        let mut pending = Pending::new(out.pending_limits, 1);
        let (a, b) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        pending.view.add(PendingTx {
            hash: B256::repeat_byte(1),
            sender: Address::repeat_byte(9),
            nonce: 0,
            seen_ns: mono_now_ns(),
            routes: vec![Route {
                hops: vec![Hop { kind: PoolKind::V2, token_in: a, token_out: b, fee: 0, pool: Some(0) }],
                amount: Some(SwapAmount::ExactIn(e18 * U256::from(100u64))),
            }],
        });
        pending.report(&book, &out, &stats);
        let first = impacts(&out.router);
        assert!(matches!(first.as_slice(), [(0, i)] if *i > 0.1), "{first:?}");
        assert_eq!(stats.pending_txs.load(Ordering::Relaxed), 1);
        std::thread::sleep(Duration::from_millis(60));
        pending.report(&book, &out, &stats);
        assert_eq!(impacts(&out.router), [(0, 0.0)]);
        assert_eq!(
            (stats.pending_aged.load(Ordering::Relaxed), stats.pending_txs.load(Ordering::Relaxed)),
            (1, 0)
        );
    }
}
