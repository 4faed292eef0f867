//! The Binance websocket client task: connect, read, decode, push, reconnect.
//!
//! ```text
//! socket ──frame──▶ recv_ns = mono_now_ns() ──▶ binance::decode ──▶ map_decoded ──try_push──▶ Queue<Event>
//! ```
//!
//! * One combined-stream connection (`/stream?streams=ethusdt@bookTicker/…`) carries every symbol.
//! * Each data frame is stamped with [`mono_now_ns`] as soon as it is read, then decoded and mapped
//!   on the spot (no allocation); the event goes to the engine with [`Queue::try_push`]. A full queue
//!   drops the event, counts it ([`Counter::QueueFull`]) and warns at most once a second.
//! * With a [`Recorder`], each data frame's bytes are copied into the recording, stamped with that
//!   same receive time, before they are decoded (one copy into a bounded queue; a full one is
//!   counted by the recorder, never waited on).
//! * Pings are answered with a pong, flushed at once. No frame (data or ping) for
//!   `idle_timeout_ms` means the connection is dead: reconnect.
//! * Any error, a close or an idle connection leads to a reconnect after a [`Backoff`] delay (full
//!   jitter). A connection that delivered at least one data frame was healthy and resets the backoff.
//! * The task ends, returning `Ok(())`, when its [`CancellationToken`] is cancelled; it then sends a
//!   close frame (bounded by a short timeout). Only an invalid config makes it return an error.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_engine::clock::mono_now_ns;
use keel_engine::{Event, Nanos, Queue};
use keel_recording::Recorder;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::{self, Message, protocol::CloseFrame};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::{Backoff, BackoffConfig};
use crate::binance::InstrumentTable;
use crate::frames::{FrameMapper, RateLimit};
use crate::stats::{Counter, FeedStats};

/// Default endpoint: Binance spot market streams.
pub const DEFAULT_BINANCE_WS_URL: &str = "wss://stream.binance.com:9443";
/// Default bound on TCP + TLS + websocket handshake.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Default silence (no data frame and no ping) after which the connection is deemed dead. Binance
/// pings every 20 s (spot) to 3 min (futures); bookTicker of a listed pair rarely pauses for long, but
/// raise this for quiet symbols.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Most streams one Binance connection may carry.
pub const MAX_STREAMS_PER_CONNECTION: usize = 1024;

/// Bound on sending a pong or a close frame.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the close handshake at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A Binance market stream to subscribe to for every symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum StreamKind {
    /// `<symbol>@bookTicker`: best bid/ask → [`Event::Quote`].
    #[serde(rename = "bookTicker")]
    BookTicker,
    /// `<symbol>@aggTrade`: aggregated trades → [`Event::Trade`].
    #[serde(rename = "aggTrade")]
    AggTrade,
}

impl StreamKind {
    /// The stream name suffix, e.g. `bookTicker`.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::BookTicker => "bookTicker",
            StreamKind::AggTrade => "aggTrade",
        }
    }
}

/// The streams subscribed to by default.
pub const DEFAULT_STREAMS: &[StreamKind] = &[StreamKind::BookTicker];

/// Bounds of `connect_timeout_ms`: 1 ms to a minute.
pub const CONNECT_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=60_000;
/// Bounds of `idle_timeout_ms`: 1 ms to an hour.
pub const IDLE_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=3_600_000;

/// Settings of one Binance feed (`[feeds.binance]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinanceFeedConfig {
    /// Base websocket URL, scheme, host and port only: `wss://stream.binance.com:9443`,
    /// `wss://fstream.binance.com`, or `ws://127.0.0.1:9000` in tests.
    #[serde(default = "default_url")]
    pub url: String,
    /// Exchange symbols, e.g. `["ETHUSDT", "BTCUSDT"]` (any case).
    pub symbols: Vec<String>,
    /// Streams per symbol.
    #[serde(default = "default_streams")]
    pub streams: Vec<StreamKind>,
    /// Reconnect backoff.
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// Bound on connecting (TCP, TLS and websocket handshake), ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Reconnect when nothing arrives for this long, ms.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

fn default_url() -> String {
    DEFAULT_BINANCE_WS_URL.to_string()
}
fn default_streams() -> Vec<StreamKind> {
    DEFAULT_STREAMS.to_vec()
}
fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_idle_timeout_ms() -> u64 {
    DEFAULT_IDLE_TIMEOUT_MS
}

impl BinanceFeedConfig {
    /// A config for `symbols` at `url` with every other setting at its default.
    pub fn new(url: impl Into<String>, symbols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            url: url.into(),
            symbols: symbols.into_iter().map(Into::into).collect(),
            streams: default_streams(),
            backoff: BackoffConfig::default(),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        }
    }

    /// Checks the settings; the error names the field and the problem.
    pub fn validate(&self) -> Result<(), FeedError> {
        let bad = |msg: String| Err(FeedError::Config(msg));
        let base = self.url.trim_end_matches('/');
        if !(base.starts_with("ws://") || base.starts_with("wss://")) {
            return bad(format!("url: {:?} must start with ws:// or wss://", self.url));
        }
        if base.contains('?') || base.ends_with("/stream") || base.ends_with("/ws") {
            return bad(format!(
                "url: {:?} must be the base URL only (the feed adds /stream?streams=…)",
                self.url
            ));
        }
        if self.symbols.is_empty() {
            return bad("symbols: empty; list at least one".into());
        }
        for s in &self.symbols {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
                return bad(format!("symbols: {s:?} is not an exchange symbol (letters, digits, `_`, `-`)"));
            }
        }
        if self.streams.is_empty() {
            return bad("streams: empty; list bookTicker and/or aggTrade".into());
        }
        let n = self.symbols.len() * self.streams.len();
        if n > MAX_STREAMS_PER_CONNECTION {
            return bad(format!(
                "symbols × streams = {n}: Binance allows at most {MAX_STREAMS_PER_CONNECTION}"
            ));
        }
        for (field, v, range) in [
            ("connect_timeout_ms", self.connect_timeout_ms, CONNECT_TIMEOUT_MS_RANGE),
            ("idle_timeout_ms", self.idle_timeout_ms, IDLE_TIMEOUT_MS_RANGE),
        ] {
            if !range.contains(&v) {
                return bad(format!("{field}: {v} is outside {range:?}"));
            }
        }
        self.backoff.validate().map_err(FeedError::Config)
    }

    /// The combined-stream URL: `<url>/stream?streams=ethusdt@bookTicker/btcusdt@bookTicker`.
    pub fn stream_url(&self) -> String {
        let mut url = format!("{}/stream?streams=", self.url.trim_end_matches('/'));
        let mut first = true;
        for kind in &self.streams {
            for sym in &self.symbols {
                if !first {
                    url.push('/');
                }
                first = false;
                url.push_str(&sym.to_ascii_lowercase());
                url.push('@');
                url.push_str(kind.name());
            }
        }
        url
    }
}

/// Why a connection ended, or why the feed could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The config is invalid (not recoverable).
    #[error("binance feed config: {0}")]
    Config(String),
    /// The address could not be resolved or connected to.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The resolver's or the socket's error.
        source: std::io::Error,
    },
    /// Connecting took longer than `connect_timeout_ms`.
    #[error("connect timed out after {0} ms")]
    ConnectTimeout(u64),
    /// A websocket or transport error.
    #[error("websocket: {0}")]
    Ws(Box<tungstenite::Error>),
    /// Nothing arrived for `idle_timeout_ms`.
    #[error("no frame for {0} ms")]
    Idle(u64),
    /// Sending a pong took longer than its bound.
    #[error("sending a pong timed out")]
    WriteTimeout,
    /// The server closed the connection.
    #[error("closed by the server: {0}")]
    Closed(String),
}

impl From<tungstenite::Error> for FeedError {
    fn from(e: tungstenite::Error) -> Self {
        FeedError::Ws(Box::new(e))
    }
}

impl FeedError {
    /// True when reconnecting may help (everything but a bad config).
    pub fn is_recoverable(&self) -> bool {
        !matches!(self, FeedError::Config(_))
    }
}

/// Runs the feed until `cancel` fires: connects to `cfg.stream_url()`, pushes a [`Event::Quote`] for
/// every `bookTicker` and an [`Event::Trade`] for every `aggTrade` of a symbol in `table` into `queue`,
/// counts everything in `stats`, and reconnects with backoff whenever the connection fails.
///
/// Returns `Ok(())` once cancelled, or [`FeedError::Config`] at once if `cfg` is invalid.
pub async fn run_binance_feed(
    cfg: BinanceFeedConfig,
    table: Arc<InstrumentTable>,
    queue: Arc<Queue<Event>>,
    stats: Arc<FeedStats>,
    cancel: CancellationToken,
) -> Result<(), FeedError> {
    run_binance_feed_recorded(cfg, table, queue, stats, None, cancel).await
}

/// [`run_binance_feed`] that also records every data frame, as received, into `recorder`.
pub async fn run_binance_feed_recorded(
    cfg: BinanceFeedConfig,
    table: Arc<InstrumentTable>,
    queue: Arc<Queue<Event>>,
    stats: Arc<FeedStats>,
    recorder: Option<Arc<Recorder>>,
    cancel: CancellationToken,
) -> Result<(), FeedError> {
    cfg.validate()?;
    let url = cfg.stream_url();
    let mut backoff = Backoff::new(cfg.backoff);
    let mut sink = FrameSink::new(FrameMapper::new(table, stats, recorder), queue);
    info!(%url, "binance feed starting");
    let mut attempts: u64 = 0;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        if attempts > 0 {
            sink.stats().inc(Counter::Reconnects);
        }
        attempts += 1;
        let mut healthy = false;
        match session(&cfg, &url, &mut sink, &cancel, &mut healthy).await {
            Ok(()) => break,
            Err(err) => {
                if healthy {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                warn!(error = %err, delay_ms = delay.as_millis() as u64, attempt = backoff.attempt(),
                    "binance feed disconnected; reconnecting");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    info!(stats = ?sink.stats().snapshot(), "binance feed stopped");
    Ok(())
}

/// Largest websocket message (and frame) accepted from the exchange: a `bookTicker` or `aggTrade`
/// frame is a few hundred bytes; a larger one ends the connection (and reconnects) instead of
/// being buffered (tungstenite's own default is 64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Bytes asked of the socket per read: a few dozen frames. tungstenite zero-fills this much of
/// its input buffer before every read (a `WouldBlock` included); at its 128 KiB default that memset
/// is microseconds per read on the hot thread, and each exhausted buffer is a fresh 128 KiB
/// allocation. A larger message still grows the buffer to its length (up to the caps below).
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

pub(crate) fn ws_limits() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// One connection, from connect to its end. `Ok(())` means cancelled.
async fn session(
    cfg: &BinanceFeedConfig,
    url: &str,
    sink: &mut FrameSink,
    cancel: &CancellationToken,
    healthy: &mut bool,
) -> Result<(), FeedError> {
    let connect = tokio::time::timeout(
        Duration::from_millis(cfg.connect_timeout_ms),
        tokio_tungstenite::connect_async_with_config(url, Some(ws_limits()), false),
    );
    let (mut ws, _response) = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Ok(()),
        r = connect => r.map_err(|_| FeedError::ConnectTimeout(cfg.connect_timeout_ms))??,
    };
    sink.stats().inc(Counter::Connects);
    info!(%url, "binance feed connected");

    let idle_ns = cfg.idle_timeout_ms.saturating_mul(1_000_000);
    let check_every = Duration::from_millis((cfg.idle_timeout_ms / 4).clamp(10, 1_000));
    let mut check = tokio::time::interval(check_every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ns = mono_now_ns();
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
                return Ok(());
            }
            msg = ws.next() => {
                let Some(msg) = msg else {
                    return Err(FeedError::Closed("connection ended".into()));
                };
                let msg = msg?;
                let recv_ns = mono_now_ns();
                last_ns = recv_ns;
                match msg {
                    Message::Text(text) => {
                        *healthy = true;
                        sink.frame(text.as_bytes(), recv_ns);
                    }
                    Message::Binary(bytes) => {
                        *healthy = true;
                        sink.frame(&bytes, recv_ns);
                    }
                    Message::Ping(_) => {
                        sink.stats().inc(Counter::Pings);
                        // tungstenite queued the pong while reading; flush it now rather than on
                        // the next read.
                        tokio::time::timeout(WRITE_TIMEOUT, ws.flush()).await.map_err(|_| FeedError::WriteTimeout)??;
                    }
                    Message::Pong(_) | Message::Frame(_) => {}
                    Message::Close(frame) => {
                        // Send the queued close reply, best effort.
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.flush()).await;
                        return Err(FeedError::Closed(describe_close(frame.as_ref())));
                    }
                }
            }
            _ = check.tick() => {
                if mono_now_ns().saturating_sub(last_ns) > idle_ns {
                    return Err(FeedError::Idle(cfg.idle_timeout_ms));
                }
            }
        }
    }
}

/// A close frame (or its absence) in words, for the disconnection's log line.
pub(crate) fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) => format!("code {}, reason {:?}", u16::from(f.code), f.reason.as_str()),
        None => "no close frame".into(),
    }
}

/// Frame → event → queue: the [`FrameMapper`], then the push, counted and rate-limited.
struct FrameSink {
    mapper: FrameMapper,
    queue: Arc<Queue<Event>>,
    full_log: RateLimit,
}

impl FrameSink {
    fn new(mapper: FrameMapper, queue: Arc<Queue<Event>>) -> Self {
        Self { mapper, queue, full_log: RateLimit::default() }
    }

    fn stats(&self) -> &FeedStats {
        self.mapper.stats()
    }

    /// The hot path of the task: the frame is recorded (with a recorder), decoded and mapped by
    /// the [`FrameMapper`], and its event pushed. Recorded before its event is queued: whatever the
    /// engine thread does after taking the event (a timer it runs, which it records) comes after
    /// the frame in the recording, as it did live.
    #[inline]
    fn frame(&mut self, bytes: &[u8], recv_ns: Nanos) {
        let Some(event) = self.mapper.frame(bytes, recv_ns) else { return };
        match self.queue.try_push(event) {
            Ok(()) => self.mapper.stats().inc(Counter::Pushed),
            Err(_) => {
                self.mapper.stats().inc(Counter::QueueFull);
                if let Some(suppressed) = self.full_log.allow(recv_ns) {
                    warn!(
                        suppressed,
                        capacity = self.queue.stats().capacity,
                        "engine queue full: dropping feed event"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_url_and_defaults() {
        let mut cfg = BinanceFeedConfig::new("wss://stream.binance.com:9443/", ["ETHUSDT", "btcusdt"]);
        cfg.validate().unwrap();
        assert_eq!(
            cfg.stream_url(),
            "wss://stream.binance.com:9443/stream?streams=ethusdt@bookTicker/btcusdt@bookTicker"
        );
        cfg.streams = vec![StreamKind::BookTicker, StreamKind::AggTrade];
        assert_eq!(
            cfg.stream_url(),
            "wss://stream.binance.com:9443/stream?streams=ethusdt@bookTicker/btcusdt@bookTicker/ethusdt@aggTrade/btcusdt@aggTrade"
        );
    }

    #[test]
    fn config_from_toml_like_json() {
        let cfg: BinanceFeedConfig = serde_json::from_str(r#"{"symbols":["ETHUSDT"]}"#).unwrap();
        assert_eq!(cfg, BinanceFeedConfig::new(DEFAULT_BINANCE_WS_URL, ["ETHUSDT"]));
        let cfg: BinanceFeedConfig = serde_json::from_str(
            r#"{"url":"ws://127.0.0.1:1","symbols":["A"],"streams":["bookTicker","aggTrade"],
                "backoff":{"base_ms":10,"max_ms":100},"connect_timeout_ms":5,"idle_timeout_ms":6}"#,
        )
        .unwrap();
        assert_eq!(cfg.streams, [StreamKind::BookTicker, StreamKind::AggTrade]);
        assert_eq!((cfg.backoff.base_ms, cfg.connect_timeout_ms, cfg.idle_timeout_ms), (10, 5, 6));
        assert!(serde_json::from_str::<BinanceFeedConfig>(r#"{"symbols":["A"],"idle":1}"#).is_err());
        assert!(
            serde_json::from_str::<BinanceFeedConfig>(r#"{"symbols":["A"],"streams":["depth"]}"#).is_err()
        );
    }

    #[test]
    fn validation_names_the_field() {
        let ok = BinanceFeedConfig::new("ws://h:1", ["A"]);
        let check = |f: &dyn Fn(&mut BinanceFeedConfig), field: &str| {
            let mut c = ok.clone();
            f(&mut c);
            let err = c.validate().unwrap_err();
            assert!(!err.is_recoverable());
            assert!(err.to_string().contains(field), "{err} should name {field}");
        };
        check(&|c| c.url = "http://h".into(), "url");
        check(&|c| c.url = "wss://h/ws".into(), "url");
        check(&|c| c.symbols.clear(), "symbols");
        check(&|c| c.symbols = vec!["eth@usdt".into()], "symbols");
        check(&|c| c.streams.clear(), "streams");
        check(&|c| c.symbols = (0..1025).map(|i| format!("S{i}")).collect(), "symbols × streams");
        check(&|c| c.connect_timeout_ms = 0, "connect_timeout_ms");
        check(&|c| c.idle_timeout_ms = 0, "idle_timeout_ms");
        check(&|c| c.backoff.max_ms = 1, "backoff.max_ms");
    }
}
