//! Where the poller learns of new blocks: the node's `newHeads` stream (`eth_subscribe` over the
//! websocket) when a websocket URL is configured, with HTTP polling of `eth_blockNumber` as the
//! fallback.
//!
//! The first head is read over HTTP at once (the state is then known before the next block). The
//! stream is dropped, and polling takes over (counted in [`PollStats::ws_fallbacks`]), when
//! the websocket cannot be opened, when it closes, or when the node's HTTP head (checked every
//! [`WS_CHECK_EVERY`]) is [`WS_STALE_BLOCKS`] ahead of the stream's. While polling, the websocket is
//! tried again every [`WS_RETRY_EVERY`]. A stream that skips blocks is fine: the poller reads
//! the state at the newest head, which includes everything before it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy::providers::{DynProvider, Provider, ProviderBuilder, WsConnect};
use alloy::pubsub::SubscriptionStream;
use alloy::rpc::types::Header;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{PollError, PollStats};

/// While polling, how often the websocket is tried again.
pub const WS_RETRY_EVERY: Duration = Duration::from_secs(5);
/// While streaming, how often the node's HTTP head is compared with the stream's (one
/// `eth_blockNumber`, not a state read).
pub const WS_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The stream is stale once the HTTP head is this many blocks ahead of its last head: a stream
/// that stalls while its connection stays open is left within a second or two, not a block late.
pub const WS_STALE_BLOCKS: u64 = 2;
/// Longest wait to open the websocket and subscribe.
const WS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Stream {
    // Held so the connection stays open while its stream is read.
    _provider: DynProvider,
    heads: SubscriptionStream<Header>,
    last_check: Instant,
    last_head: Option<u64>,
}

/// The head source: a `newHeads` stream or HTTP polling.
pub(crate) struct Heads {
    ws_url: Option<String>,
    stream: Option<Stream>,
    retry_at: Instant,
    interval: tokio::time::Interval,
}

impl std::fmt::Debug for Heads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heads")
            .field("ws_url", &self.ws_url)
            .field("streaming", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl Heads {
    /// Heads from `ws_url`'s `newHeads` when set, else polled every `poll_ms`.
    pub(crate) fn new(ws_url: Option<String>, poll_ms: u64) -> Self {
        let mut interval = tokio::time::interval(Duration::from_millis(poll_ms.max(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { ws_url, stream: None, retry_at: Instant::now(), interval }
    }

    async fn connect(url: &str) -> Result<Stream, String> {
        // No transport-level reconnects: a dropped socket ends the stream at once, and the
        // poller falls back to HTTP and reconnects on its own schedule.
        let open = async {
            let provider = ProviderBuilder::new()
                .connect_ws(WsConnect::new(url.to_owned()).with_max_retries(0))
                .await
                .map_err(|e| e.to_string())?
                .erased();
            let heads = provider.subscribe_blocks().await.map_err(|e| e.to_string())?.into_stream();
            Ok::<_, String>(Stream {
                _provider: provider,
                heads,
                last_check: Instant::now(),
                last_head: None,
            })
        };
        tokio::time::timeout(WS_CONNECT_TIMEOUT, open).await.map_err(|_| "timed out".to_owned())?
    }

    fn fall_back(&mut self, stats: &PollStats, why: &str) {
        self.stream = None;
        self.retry_at = Instant::now() + WS_RETRY_EVERY;
        stats.ws_fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(reason = why, "newHeads unavailable; polling the node over HTTP");
    }

    /// The next head number above `last`, or `None` once `cancel` fires.
    pub(crate) async fn next<P: Provider>(
        &mut self,
        http: &P,
        last: Option<u64>,
        stats: &PollStats,
        cancel: &CancellationToken,
    ) -> Option<u64> {
        let newer = |n: u64| last.is_none_or(|l| n > l);
        // The first head is read at once over HTTP, so the state is known before the next block.
        if last.is_none() {
            match http.get_block_number().await {
                Ok(n) => {
                    stats.polled_heads.fetch_add(1, Ordering::Relaxed);
                    return Some(n);
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %PollError::Rpc(e.to_string()), "eth_blockNumber failed; retrying");
                }
            }
        }
        loop {
            if self.stream.is_none()
                && let Some(url) = self.ws_url.clone()
                && Instant::now() >= self.retry_at
            {
                match Self::connect(&url).await {
                    Ok(s) => {
                        stats.ws_sessions.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("chain heads from the node's newHeads stream");
                        self.stream = Some(s);
                    }
                    Err(e) => self.fall_back(stats, &e),
                }
            }
            if let Some(s) = self.stream.as_mut() {
                let check_at = tokio::time::Instant::from_std(s.last_check + WS_CHECK_EVERY);
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return None,
                    h = s.heads.next() => match h {
                        Some(h) => {
                            s.last_head = Some(s.last_head.map_or(h.number, |l| l.max(h.number)));
                            stats.ws_heads.fetch_add(1, Ordering::Relaxed);
                            if newer(h.number) {
                                return Some(h.number);
                            }
                        }
                        None => self.fall_back(stats, "the websocket closed"),
                    },
                    _ = tokio::time::sleep_until(check_at) => {
                        s.last_check = Instant::now();
                        let seen = s.last_head.or(last).unwrap_or(0);
                        if let Ok(n) = http.get_block_number().await
                            && n >= seen.saturating_add(WS_STALE_BLOCKS)
                            && newer(n)
                        {
                            self.fall_back(stats, "the websocket fell behind the node's head");
                            stats.polled_heads.fetch_add(1, Ordering::Relaxed);
                            return Some(n);
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = self.interval.tick() => {}
            }
            match http.get_block_number().await {
                Ok(n) if newer(n) => {
                    stats.polled_heads.fetch_add(1, Ordering::Relaxed);
                    return Some(n);
                }
                Ok(_) => {}
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %PollError::Rpc(e.to_string()), "eth_blockNumber failed; retrying");
                }
            }
        }
    }
}
