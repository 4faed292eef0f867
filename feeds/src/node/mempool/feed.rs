//! The mempool websocket task: pending transactions → [`PendingTx`]s, reconnecting for ever.
//!
//! A session subscribes `eth_subscribe ["newPendingTransactions", true]` (full transactions); a
//! node that refuses full objects gets the hash subscription and one `eth_getTransactionByHash`
//! each. When the connection or the subscription drops, the task waits a
//! [`Backoff`] delay and starts a new session (counted in [`MempoolStats::reconnects`]); it ends
//! only when cancelled. A session that delivered anything resets the backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy::consensus::Transaction as _;
use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use alloy::rpc::types::Transaction;
use futures_util::StreamExt;
use keel_engine::clock::mono_now_ns;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PendingTx;
use super::decode::{MempoolDecoder, TxMeta};
use crate::backoff::{Backoff, BackoffConfig};
use crate::node::error::{NodeError, Result};

/// Counters of the mempool feed.
#[derive(Debug, Default)]
pub struct MempoolStats {
    /// Pending transactions received.
    pub received: AtomicU64,
    /// Transactions decoded into swaps on tracked pools.
    pub decoded: AtomicU64,
    /// Calldata to a known router that did not decode (skipped).
    pub malformed: AtomicU64,
    /// Decoded transactions refused by a full queue.
    pub dropped: AtomicU64,
    /// Sessions that ended in an error and were restarted.
    pub reconnects: AtomicU64,
}

/// What the mempool feed connects to.
#[derive(Debug, Clone)]
pub struct MempoolFeedConfig {
    /// Websocket endpoint.
    pub ws_url: String,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
}

/// Streams pending swaps on tracked pools into `out` until `cancel` fires, reconnecting after every
/// transport error.
pub async fn run_mempool_feed(
    config: MempoolFeedConfig,
    decoder: MempoolDecoder,
    out: mpsc::Sender<PendingTx>,
    stats: Arc<MempoolStats>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(config.backoff);
    loop {
        let received = stats.received.load(Ordering::Relaxed);
        let err = match session(&config.ws_url, &decoder, &out, &stats, &cancel).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if cancel.is_cancelled() {
            return;
        }
        if stats.received.load(Ordering::Relaxed) > received {
            backoff.reset();
        }
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        let delay = backoff.next_delay();
        tracing::warn!(error = %err, ?delay, "mempool feed session ended; reconnecting");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Decodes one transaction and queues it; a malformed call or a full queue is counted.
fn handle(tx: &Transaction, decoder: &MempoolDecoder, out: &mpsc::Sender<PendingTx>, stats: &MempoolStats) {
    stats.received.fetch_add(1, Ordering::Relaxed);
    let Some(to) = tx.to() else { return };
    let meta = TxMeta {
        hash: *tx.inner.tx_hash(),
        sender: tx.inner.signer(),
        nonce: tx.nonce(),
        seen_ns: mono_now_ns(),
    };
    match decoder.decode(to, tx.input(), meta) {
        Ok(Some(p)) => {
            stats.decoded.fetch_add(1, Ordering::Relaxed);
            if out.try_send(p).is_err() {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(None) => {}
        Err(e) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, tx = %meta.hash, "pending transaction skipped");
        }
    }
}

async fn session(
    ws_url: &str,
    decoder: &MempoolDecoder,
    out: &mpsc::Sender<PendingTx>,
    stats: &MempoolStats,
    cancel: &CancellationToken,
) -> Result<()> {
    let provider = ProviderBuilder::new()
        .connect_ws(WsConnect::new(ws_url.to_string()))
        .await
        .map_err(|e| NodeError::rpc("connect", e))?;
    match provider.subscribe_full_pending_transactions().await {
        Ok(sub) => {
            let mut txs = sub.into_stream();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    tx = txs.next() => {
                        let tx = tx.ok_or(NodeError::SubscriptionEnded("newPendingTransactions"))?;
                        handle(&tx, decoder, out, stats);
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
                        let tx = provider
                            .get_transaction_by_hash(h)
                            .await
                            .map_err(|e| NodeError::rpc("eth_getTransactionByHash", e))?;
                        if let Some(tx) = tx {
                            handle(&tx, decoder, out, stats);
                        }
                    }
                }
            }
        }
    }
}
