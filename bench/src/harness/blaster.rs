//! A websocket server that streams Binance spot `bookTicker` frames in the combined-stream envelope
//! (`{"stream":"t0usdt@bookTicker","data":{"u":…,"s":"T0USDT","b":"…","B":"…","a":"…","A":"…"}}`)
//! at a set rate, faster than the simulated market's timer-driven feed can.
//!
//! Frames go round-robin over the symbols. A set fraction of them are *band-crossing* frames: each
//! flips one symbol (in turn) between its start price and the start price moved by `fire_move`, which
//! pushes the portfolio holding that asset past its band. Pacing: every millisecond the sender writes
//! the frames that are due (`elapsed × rate − sent`) and flushes, so frames leave in bursts of
//! `rate / 1000`.
//!
//! The server side (bind, accept, the `/stream?streams=…` target, shutdown) and the frame text are
//! the websocket core, [`keel_sim::ws_server`]; the paced send loop is the blaster's own. A
//! connection gets the configured symbols it subscribed to (all of them when its target names
//! none).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use keel_sim::ws_server::{self, BookTicker, Served, Subscription, Ws};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// What the blaster sends.
#[derive(Debug, Clone)]
pub struct BlasterConfig {
    /// Exchange symbols (upper case) and their start prices.
    pub symbols: Vec<(String, f64)>,
    /// Fraction of frames that cross a band (0..=1).
    pub fire_fraction: f64,
    /// Relative price move of the crossing level.
    pub fire_move: f64,
    /// Stamp crossings for a cross-process tick-to-wire ([`CrossingSend`]): each crossing frame is
    /// written on its own (pending frames flushed first) right after a `CLOCK_MONOTONIC` stamp,
    /// and the crossed symbol gets no further frame until the next crossing (so an intent read
    /// before that symbol's next frame was sent can only come from the crossing).
    pub stamp_crossings: bool,
}

/// One stamped band-crossing frame (absolute `CLOCK_MONOTONIC`, [`super::clock::abs_mono_ns`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrossingSend {
    /// Its symbol.
    pub symbol: String,
    /// Taken immediately before the frame was written to the socket.
    pub send_ns: u64,
    /// When the symbol's next frame was queued for sending (0: none yet).
    pub next_same_ns: u64,
}

/// Most crossings kept by one blaster; later ones are counted in
/// [`BlasterStats::crossing_log_dropped`].
pub const MAX_CROSSING_LOG: usize = 1_000_000;

/// Counters shared with the sender task.
#[derive(Debug, Default)]
pub struct BlasterStats {
    /// Frames written.
    pub sent: AtomicU64,
    /// Band-crossing frames written.
    pub crossings: AtomicU64,
    /// Websocket connections accepted.
    pub connections: AtomicU64,
    /// Stamped crossings (with [`BlasterConfig::stamp_crossings`]), at most [`MAX_CROSSING_LOG`].
    pub crossing_log: parking_lot::Mutex<Vec<CrossingSend>>,
    /// Crossings not logged because the log was full.
    pub crossing_log_dropped: AtomicU64,
}

/// A running blaster.
#[derive(Debug)]
pub struct Blaster {
    addr: SocketAddr,
    rate: Arc<AtomicU64>,
    stats: Arc<BlasterStats>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Formats one combined-stream bookTicker frame as Binance spot does (one allocation).
pub fn book_ticker_frame(u: u64, symbol: &str, stream: &str, mid: f64) -> String {
    let (bid, ask) = (mid * (1.0 - 0.5e-4), mid * (1.0 + 0.5e-4));
    let mut out = String::with_capacity(ws_server::FRAME_CAPACITY);
    let quote = BookTicker { u, symbol, bid, bid_qty: 12.5, ask, ask_qty: 9.75 };
    ws_server::write_book_ticker(&mut out, Some(stream), &quote);
    out
}

/// Generates the frame sequence (shared by the sender and by the harness's offline decode timing).
#[derive(Debug, Clone)]
pub struct FrameGen {
    symbols: Vec<(String, String, f64)>,
    moved: Vec<bool>,
    fire_fraction: f64,
    fire_move: f64,
    n: u64,
    crossings: u64,
    hold_crossed: bool,
    last: usize,
    last_crossed: Option<usize>,
}

impl FrameGen {
    /// A generator for `cfg`.
    pub fn new(cfg: &BlasterConfig) -> Self {
        let symbols = cfg
            .symbols
            .iter()
            .map(|(s, p)| (s.clone(), format!("{}@bookTicker", s.to_ascii_lowercase()), *p))
            .collect::<Vec<_>>();
        Self {
            moved: vec![false; symbols.len()],
            symbols,
            fire_fraction: cfg.fire_fraction.clamp(0.0, 1.0),
            fire_move: cfg.fire_move,
            n: 0,
            crossings: 0,
            hold_crossed: cfg.stamp_crossings,
            last: 0,
            last_crossed: None,
        }
    }

    /// The next frame, and whether it crosses a band.
    pub fn next_frame(&mut self) -> (String, bool) {
        let n = self.n;
        self.n += 1;
        let k = self.symbols.len().max(1);
        let crossing =
            ((n + 1) as f64 * self.fire_fraction).floor() > (n as f64 * self.fire_fraction).floor();
        let i = if crossing {
            let i = (self.crossings % k as u64) as usize;
            self.crossings += 1;
            self.moved[i] = !self.moved[i];
            self.last_crossed = Some(i);
            i
        } else {
            let i = (n % k as u64) as usize;
            match self.last_crossed {
                Some(c) if self.hold_crossed && c == i && k > 1 => (i + 1) % k,
                _ => i,
            }
        };
        self.last = i;
        let (sym, stream, start) = &self.symbols[i];
        let mid = if self.moved[i] { start * (1.0 + self.fire_move) } else { *start };
        (book_ticker_frame(1_000_000 + n, sym, stream, mid), crossing)
    }

    /// The symbol of the frame [`FrameGen::next_frame`] returned last.
    pub fn last_symbol(&self) -> &str {
        self.symbols.get(self.last).map(|(s, _, _)| s.as_str()).unwrap_or("")
    }
}

impl Blaster {
    /// Binds 127.0.0.1:0 and serves every connection with its own sender, at `rate` frames/s
    /// (0 pauses).
    pub async fn start(cfg: BlasterConfig, rate: u64, cancel: CancellationToken) -> std::io::Result<Blaster> {
        let (listener, addr) = ws_server::bind(0).await?;
        let rate = Arc::new(AtomicU64::new(rate));
        let stats = Arc::new(BlasterStats::default());
        let cancel = cancel.child_token();
        let task = {
            let (rate, stats, stop) = (Arc::clone(&rate), Arc::clone(&stats), cancel.clone());
            tokio::spawn(ws_server::serve(listener, Served::Any, cancel.clone(), move |ws, sub| {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let cfg = subscribed(&cfg, &sub);
                send_loop(ws, cfg, Arc::clone(&rate), Arc::clone(&stats), stop.clone())
            }))
        };
        Ok(Blaster { addr, rate, stats, cancel, task })
    }

    /// Base URL, `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Sets the rate, frames/s (0 pauses).
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Counters.
    pub fn stats(&self) -> &BlasterStats {
        &self.stats
    }

    /// Stops the server and its senders.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// `cfg` restricted to the symbols `sub` names (all of them when it names none of them).
fn subscribed(cfg: &BlasterConfig, sub: &Subscription) -> BlasterConfig {
    if sub.streams.is_empty() {
        return cfg.clone();
    }
    let symbols = cfg
        .symbols
        .iter()
        .filter(|(s, _)| sub.streams.contains(&ws_server::book_ticker_stream(s)))
        .cloned()
        .collect::<Vec<_>>();
    if symbols.is_empty() {
        return cfg.clone();
    }
    BlasterConfig { symbols, ..cfg.clone() }
}

async fn send_loop(
    mut ws: Ws,
    cfg: BlasterConfig,
    rate: Arc<AtomicU64>,
    stats: Arc<BlasterStats>,
    cancel: CancellationToken,
) {
    let mut frames = FrameGen::new(&cfg);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Pacing restarts whenever the rate changes.
    let mut current = u64::MAX;
    let mut base = tokio::time::Instant::now();
    let mut sent_since_base: u64 = 0;
    // Stamped mode: crossings (index into the log) whose symbol has not been sent again yet.
    let mut open: Vec<(String, usize)> = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let r = rate.load(Ordering::Relaxed);
        if r != current {
            current = r;
            base = tokio::time::Instant::now();
            sent_since_base = 0;
        }
        if r == 0 {
            continue;
        }
        let due = (base.elapsed().as_nanos() * r as u128 / 1_000_000_000) as u64;
        // Never burst more than 50 ms of frames after a stall: the backlog is reported as a shortfall.
        let n = due.saturating_sub(sent_since_base).min((r / 20).max(1));
        if due > sent_since_base + n {
            sent_since_base = due - n;
        }
        for _ in 0..n {
            let (text, crossing) = frames.next_frame();
            let sent = if cfg.stamp_crossings {
                send_stamped(&mut ws, text, crossing, frames.last_symbol(), &mut open, &stats).await
            } else {
                ws.feed(Message::Text(text.into())).await
            };
            if sent.is_err() {
                return;
            }
            sent_since_base += 1;
            stats.sent.fetch_add(1, Ordering::Relaxed);
            if crossing {
                stats.crossings.fetch_add(1, Ordering::Relaxed);
            }
        }
        if n > 0 && ws.flush().await.is_err() {
            return;
        }
    }
    let _ = ws.close(None).await;
}

/// Sends one frame in stamped mode: a crossing is written on its own right after its stamp and
/// logged; the first later frame of a crossed symbol closes that crossing's window.
async fn send_stamped(
    ws: &mut Ws,
    text: String,
    crossing: bool,
    symbol: &str,
    open: &mut Vec<(String, usize)>,
    stats: &BlasterStats,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let now = super::clock::abs_mono_ns();
    if let Some(k) = open.iter().position(|(s, _)| s == symbol) {
        let (_, idx) = open.swap_remove(k);
        if let Some(c) = stats.crossing_log.lock().get_mut(idx) {
            c.next_same_ns = now;
        }
    }
    if !crossing {
        return ws.feed(Message::Text(text.into())).await;
    }
    ws.flush().await?;
    let send_ns = super::clock::abs_mono_ns();
    ws.send(Message::Text(text.into())).await?;
    let mut log = stats.crossing_log.lock();
    if log.len() < MAX_CROSSING_LOG {
        open.push((symbol.to_owned(), log.len()));
        log.push(CrossingSend { symbol: symbol.to_owned(), send_ns, next_same_ns: 0 });
    } else {
        stats.crossing_log_dropped.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_and_cross_at_the_set_fraction() {
        let cfg = BlasterConfig {
            symbols: vec![("T0USDT".into(), 100.0), ("T1USDT".into(), 100.0)],
            fire_fraction: 0.1,
            fire_move: 0.02,
            stamp_crossings: false,
        };
        let mut g = FrameGen::new(&cfg);
        let mut crossings = 0;
        for _ in 0..1000 {
            let (f, c) = g.next_frame();
            crossings += c as u32;
            assert!(matches!(
                keel_feeds::binance::decode(f.as_bytes()),
                Ok(keel_feeds::binance::Decoded::BookTicker(_))
            ));
        }
        assert_eq!(crossings, 100);
    }
}
