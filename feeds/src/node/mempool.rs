//! The mempool stream: pending swaps on tracked pools, and each pool's state after them.
//!
//! [`run_mempool_feed`] subscribes `eth_subscribe ["newPendingTransactions", true]` (full
//! transactions); when the node refuses full objects it subscribes to hashes and fetches each with
//! `eth_getTransactionByHash`. [`MempoolDecoder`] turns calls into [`PendingSwap`]s:
//!
//! * Router02 `swapExactTokensForTokens` (first hop, exact input) and `swapTokensForExactTokens`
//!   (last hop, exact output);
//! * SwapRouter `exactInputSingle` / `exactOutputSingle`;
//! * direct `swap` on a tracked V3 pool (`amountSpecified`) or V2 pair (exact output).
//!
//! [`PendingView`] keeps the pending swaps in arrival order and replays them on a pool's mined state
//! (V2 `getAmountOut`/`getAmountIn`, V3 [`keel_amm::v3::V3Pool::swap`]); swaps are dropped once
//! mined.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use alloy::consensus::Transaction as _;
use alloy::primitives::{Address, B256, I256, U256};
use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use alloy::sol_types::SolCall;
use futures_util::StreamExt;
use keel_amm::abi::{ISwapRouter, IUniswapV2Pair, IUniswapV2Router02, IUniswapV3Pool};
use tokio_util::sync::CancellationToken;

use keel_amm::pool::{Pool, SwapAmount};

use super::book::{PoolBook, PoolId, PoolKind};
use super::error::{NodeError, Result};
use super::feed::NodeFeedStats;

/// A swap seen in the mempool on a tracked pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSwap {
    /// Pool it trades on.
    pub pool: PoolId,
    /// Sells token0 for token1.
    pub zero_for_one: bool,
    /// V3 convention: positive = exact input of the sold token, negative = exact output.
    pub amount: I256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Sender.
    pub sender: Address,
}

/// A pool the decoder recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolPool {
    /// Id in the [`PoolBook`].
    pub id: PoolId,
    /// Pool contract.
    pub address: Address,
    /// Protocol.
    pub kind: PoolKind,
    /// Lower-address token.
    pub token0: Address,
    /// Higher-address token.
    pub token1: Address,
    /// V3 fee, pips (ignored for V2).
    pub fee: u32,
}

/// Decodes router and pool calls into [`PendingSwap`]s.
#[derive(Debug, Clone, Default)]
pub struct MempoolDecoder {
    v2_router: Option<Address>,
    v3_router: Option<Address>,
    by_address: HashMap<Address, (PoolId, PoolKind)>,
    v2_by_tokens: HashMap<(Address, Address), PoolId>,
    v3_by_tokens: HashMap<(Address, Address, u32), PoolId>,
}

fn sorted(a: Address, b: Address) -> (Address, Address) {
    if a < b { (a, b) } else { (b, a) }
}

fn signed(x: U256) -> Option<I256> {
    I256::try_from(x).ok()
}

impl MempoolDecoder {
    /// A decoder for `pools`, Router02 at `v2_router` and SwapRouter at `v3_router`.
    pub fn new(pools: &[MempoolPool], v2_router: Option<Address>, v3_router: Option<Address>) -> Self {
        let mut d = Self { v2_router, v3_router, ..Self::default() };
        for p in pools {
            d.by_address.insert(p.address, (p.id, p.kind));
            match p.kind {
                PoolKind::V2 => d.v2_by_tokens.insert(sorted(p.token0, p.token1), p.id),
                PoolKind::V3 => {
                    d.v3_by_tokens.insert((p.token0.min(p.token1), p.token0.max(p.token1), p.fee), p.id)
                }
            };
        }
        d
    }

    /// The swap a call makes on a tracked pool, if it is one.
    pub fn decode(&self, to: Address, input: &[u8], tx_hash: B256, sender: Address) -> Option<PendingSwap> {
        let swap =
            |pool, zero_for_one, amount| Some(PendingSwap { pool, zero_for_one, amount, tx_hash, sender });
        if Some(to) == self.v2_router {
            if let Ok(c) = IUniswapV2Router02::swapExactTokensForTokensCall::abi_decode(input) {
                let (a, b) = (*c.path.first()?, *c.path.get(1)?);
                return swap(*self.v2_by_tokens.get(&sorted(a, b))?, a < b, signed(c.amountIn)?);
            }
            if let Ok(c) = IUniswapV2Router02::swapTokensForExactTokensCall::abi_decode(input) {
                let n = c.path.len();
                let (a, b) = (*c.path.get(n.checked_sub(2)?)?, *c.path.get(n - 1)?);
                return swap(*self.v2_by_tokens.get(&sorted(a, b))?, a < b, -signed(c.amountOut)?);
            }
            return None;
        }
        if Some(to) == self.v3_router {
            if let Ok(c) = ISwapRouter::exactInputSingleCall::abi_decode(input) {
                let p = c.params;
                let (t0, t1) = sorted(p.tokenIn, p.tokenOut);
                let id = *self.v3_by_tokens.get(&(t0, t1, p.fee.to::<u32>()))?;
                return swap(id, p.tokenIn < p.tokenOut, signed(p.amountIn)?);
            }
            if let Ok(c) = ISwapRouter::exactOutputSingleCall::abi_decode(input) {
                let p = c.params;
                let (t0, t1) = sorted(p.tokenIn, p.tokenOut);
                let id = *self.v3_by_tokens.get(&(t0, t1, p.fee.to::<u32>()))?;
                return swap(id, p.tokenIn < p.tokenOut, -signed(p.amountOut)?);
            }
            return None;
        }
        match self.by_address.get(&to)? {
            (id, PoolKind::V3) => {
                let c = IUniswapV3Pool::swapCall::abi_decode(input).ok()?;
                swap(*id, c.zeroForOne, c.amountSpecified)
            }
            (id, PoolKind::V2) => {
                let c = IUniswapV2Pair::swapCall::abi_decode(input).ok()?;
                if !c.amount1Out.is_zero() {
                    swap(*id, true, -signed(c.amount1Out)?)
                } else {
                    swap(*id, false, -signed(c.amount0Out)?)
                }
            }
        }
    }
}

/// Pending swaps in arrival order, and pools' states after them.
#[derive(Debug, Clone, Default)]
pub struct PendingView {
    pending: Vec<PendingSwap>,
}

impl PendingView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a swap (ignored when its transaction is already pending).
    pub fn add(&mut self, swap: PendingSwap) {
        if !self.pending.iter().any(|s| s.tx_hash == swap.tx_hash) {
            self.pending.push(swap);
        }
    }

    /// Drops swaps whose transactions were mined.
    pub fn remove_mined(&mut self, mined: &[B256]) {
        self.pending.retain(|s| !mined.contains(&s.tx_hash));
    }

    /// Pending swaps, in arrival order.
    pub fn pending(&self) -> &[PendingSwap] {
        &self.pending
    }

    /// Sum of the specified amounts (exact inputs and exact outputs alike) pending on `pool`.
    pub fn pending_volume(&self, pool: PoolId) -> U256 {
        self.pending.iter().filter(|s| s.pool == pool).map(|s| s.amount.unsigned_abs()).sum()
    }

    /// `pool`'s state in `book` after its pending swaps in arrival order. A swap that would revert
    /// (e.g. an exact output beyond the reserves) is skipped, as the chain would revert it.
    pub fn pool_after(&self, book: &PoolBook, pool: PoolId) -> Option<Pool> {
        let mut state = book.get(pool)?.state.clone()?;
        for s in self.pending.iter().filter(|s| s.pool == pool) {
            let amt = s.amount.unsigned_abs();
            let amount =
                if s.amount.is_positive() { SwapAmount::ExactIn(amt) } else { SwapAmount::ExactOut(amt) };
            if let Ok(q) = state.swap(s.zero_for_one, amount, None) {
                // a quote's change always fits the pool it was quoted on
                let _ = state.apply(&q.change);
            }
        }
        Some(state)
    }

    /// |mid after the pending swaps / mid now − 1| for `pool` (0 with nothing pending or no state).
    pub fn impact(&self, book: &PoolBook, pool: PoolId) -> f64 {
        let now = book.get(pool).and_then(|e| e.state.as_ref()).map(Pool::mid_price);
        let after = self.pool_after(book, pool).map(|s| s.mid_price());
        match (now, after) {
            (Some(a), Some(b)) if a.is_finite() && a > 0.0 && b.is_finite() => (b / a - 1.0).abs(),
            _ => 0.0,
        }
    }
}

/// Streams pending swaps on tracked pools into `out` until `cancel` fires.
pub async fn run_mempool_feed(
    ws_url: String,
    decoder: MempoolDecoder,
    out: tokio::sync::mpsc::Sender<PendingSwap>,
    stats: Arc<NodeFeedStats>,
    cancel: CancellationToken,
) -> Result<()> {
    let provider = ProviderBuilder::new()
        .connect_ws(WsConnect::new(ws_url))
        .await
        .map_err(|e| NodeError::rpc("connect", e))?;
    let push = |s: PendingSwap| {
        if out.try_send(s).is_err() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    match provider.subscribe_full_pending_transactions().await {
        Ok(sub) => {
            let mut txs = sub.into_stream();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    tx = txs.next() => {
                        let tx = tx.ok_or(NodeError::SubscriptionEnded("newPendingTransactions"))?;
                        let Some(to) = tx.to() else { continue };
                        if let Some(s) = decoder.decode(to, tx.input(), *tx.inner.tx_hash(), tx.inner.signer()) {
                            push(s);
                        }
                    }
                }
            }
        }
        Err(e) => {
            tracing::info!(error = %e, "full pending transactions refused; falling back to hashes");
            let mut hashes = provider
                .subscribe_pending_transactions()
                .await
                .map_err(|e| NodeError::rpc("subscribe newPendingTransactions", e))?
                .into_stream();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    h = hashes.next() => {
                        let h = h.ok_or(NodeError::SubscriptionEnded("newPendingTransactions"))?;
                        let Some(tx) = provider
                            .get_transaction_by_hash(h)
                            .await
                            .map_err(|e| NodeError::rpc("eth_getTransactionByHash", e))?
                        else {
                            continue;
                        };
                        let Some(to) = tx.to() else { continue };
                        if let Some(s) = decoder.decode(to, tx.input(), h, tx.inner.signer()) {
                            push(s);
                        }
                    }
                }
            }
        }
    }
}
