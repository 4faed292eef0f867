//! The exchange websocket server, in Binance spot's format: `/stream?streams=a/b` (combined-stream
//! envelope `{"stream":..,"data":..}`) and `/ws/<stream>` (raw payloads), `bookTicker` streams only.
//! A driver task produces one frame per symbol every `tick_ms` (synthetic path) or replays a capture's
//! bookTicker frames with their original spacing, looping; it publishes the mids on the
//! [`PriceBoard`](crate::PriceBoard) and broadcasts the frames to every connection. The server itself
//! (targets, subscriptions, pings, broadcast, shutdown) is the websocket core, [`crate::ws_server`].

use std::{path::Path, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::{
    net::TcpListener,
    sync::broadcast,
    time::{Instant, MissedTickBehavior},
};
use tokio_util::sync::CancellationToken;

pub use super::ws_server::PING_INTERVAL;
pub(crate) use super::ws_server::{BROADCAST_CAPACITY, book_ticker_stream};
use super::{
    Shared, SimError,
    config::SimSymbolConfig,
    price::PricePath,
    ws_server::{self, BookTicker, Frame, Served, Tick, book_ticker_payload},
};

/// Runs the synthetic path: every `tick_ms`, one frame per symbol.
pub(crate) async fn run_synthetic(
    shared: Arc<Shared>,
    symbols: Vec<SimSymbolConfig>,
    mut path: PricePath,
    tx: broadcast::Sender<Tick>,
    tick_ms: u64,
    cancel: CancellationToken,
) {
    let board_idx: Vec<Option<usize>> = symbols.iter().map(|s| shared.board.index(&s.symbol)).collect();
    let mut interval = tokio::time::interval(Duration::from_millis(tick_ms));
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let dt = tick_ms as f64 / 1_000.0;
    let mut update_id: u64 = 1_000_000;
    let mut first = true;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        // The first frame shows the start price; later ones step the path.
        let prices =
            if first { symbols.iter().map(|s| s.start).collect::<Vec<_>>() } else { path.step(dt).to_vec() };
        first = false;
        let mut frames = Vec::with_capacity(symbols.len());
        for (i, s) in symbols.iter().enumerate() {
            let mid = prices[i];
            let half = mid * s.spread_bps / 20_000.0;
            let bid = ((mid - half) / s.tick_size).floor() * s.tick_size;
            let mut ask = ((mid + half) / s.tick_size).ceil() * s.tick_size;
            if ask <= bid {
                ask = bid + s.tick_size;
            }
            let bid_qty = (path.uniform(0.05, 25.0) * 1e4).round() / 1e4;
            let ask_qty = (path.uniform(0.05, 25.0) * 1e4).round() / 1e4;
            update_id += 1;
            if let Some(b) = board_idx[i] {
                shared.board.set(b, (bid + ask) / 2.0);
            }
            frames.push(Frame {
                stream: book_ticker_stream(&s.symbol),
                payload: book_ticker_payload(&BookTicker {
                    u: update_id,
                    symbol: &s.symbol,
                    bid,
                    bid_qty,
                    ask,
                    ask_qty,
                }),
            });
        }
        // No receivers is fine: nobody is connected.
        let _ = tx.send(Arc::new(frames));
    }
}

/// A bookTicker frame of a capture file.
#[derive(Debug, Clone)]
pub(crate) struct CapturedFrame {
    /// Seconds since the capture's first bookTicker frame.
    offset: f64,
    pub(crate) stream: String,
    symbol: String,
    data: Value,
    update_id: u64,
    mid: Option<f64>,
}

/// Reads the bookTicker frames of a capture (cryptofeed format: first line `<url> <-> <time>`, then
/// `<receive time>: <raw json frame>`; client frames `<url> <- <time>: ..` are skipped).
pub(crate) fn load_capture(path: &Path) -> Result<Vec<CapturedFrame>, SimError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SimError::Replay(format!("cannot read {}: {e}", path.display())))?;
    let mut out: Vec<CapturedFrame> = Vec::new();
    let mut t0 = None;
    for (n, line) in text.lines().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.contains(" <- ") {
            continue;
        }
        let Some((time, json)) = line.split_once(": ") else {
            return Err(SimError::Replay(format!("{}:{}: expected `<time>: <json>`", path.display(), n + 1)));
        };
        let time: f64 = time.parse().map_err(|_| {
            SimError::Replay(format!("{}:{}: bad receive time `{time}`", path.display(), n + 1))
        })?;
        let v: Value = serde_json::from_str(json)
            .map_err(|e| SimError::Replay(format!("{}:{}: bad JSON: {e}", path.display(), n + 1)))?;
        let (stream, data) = match (v.get("stream").and_then(Value::as_str), v.get("data")) {
            (Some(s), Some(d)) => (s.to_owned(), d.clone()),
            _ => match v.get("s").and_then(Value::as_str) {
                // Raw-stream captures: a bookTicker payload has u, s, b, B, a, A and no event type.
                Some(s) if v.get("e").is_none() && v.get("b").is_some() => (book_ticker_stream(s), v.clone()),
                _ => continue,
            },
        };
        if !stream.ends_with("@bookTicker") {
            continue;
        }
        let symbol = data.get("s").and_then(Value::as_str).unwrap_or_default().to_owned();
        let update_id = data.get("u").and_then(Value::as_u64).unwrap_or_default();
        let px = |k: &str| data.get(k).and_then(Value::as_str).and_then(|s| s.parse::<f64>().ok());
        let mid = match (px("b"), px("a")) {
            (Some(b), Some(a)) if b > 0.0 && a > 0.0 => Some((a + b) / 2.0),
            _ => None,
        };
        let t0 = *t0.get_or_insert(time);
        out.push(CapturedFrame { offset: (time - t0).max(0.0), stream, symbol, data, update_id, mid });
    }
    if out.is_empty() {
        return Err(SimError::Replay(format!("{} holds no bookTicker frames", path.display())));
    }
    Ok(out)
}

/// The symbols (and first mids) of a capture.
pub(crate) fn capture_symbols(frames: &[CapturedFrame]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for f in frames {
        if let Some(mid) = f.mid
            && !out.iter().any(|(s, _)| s == &f.symbol)
        {
            out.push((f.symbol.clone(), mid));
        }
    }
    out
}

/// Replays `frames` with their original spacing, looping; update ids keep increasing across loops.
pub(crate) async fn run_replay(
    shared: Arc<Shared>,
    frames: Vec<CapturedFrame>,
    tx: broadcast::Sender<Tick>,
    cancel: CancellationToken,
) {
    let board_idx: Vec<Option<usize>> = frames.iter().map(|f| shared.board.index(&f.symbol)).collect();
    let lo = frames.iter().map(|f| f.update_id).min().unwrap_or(0);
    let hi = frames.iter().map(|f| f.update_id).max().unwrap_or(0);
    let span = hi - lo + 1;
    let period = frames.last().map(|f| f.offset).unwrap_or(0.0) + 0.1;
    let start = Instant::now();
    for round in 0u64.. {
        for (i, f) in frames.iter().enumerate() {
            let at = start + Duration::from_secs_f64(round as f64 * period + f.offset);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            let mut data = f.data.clone();
            if round > 0 {
                data["u"] = json!(f.update_id + round * span);
            }
            if let (Some(b), Some(mid)) = (board_idx[i], f.mid) {
                shared.board.set(b, mid);
            }
            let _ = tx.send(Arc::new(vec![Frame { stream: f.stream.clone(), payload: data.to_string() }]));
        }
    }
}

/// Accepts websocket connections until `cancel` and serves each from the frame broadcast.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tx: broadcast::Sender<Tick>,
    served: Served,
    cancel: CancellationToken,
) {
    let stop = cancel.clone();
    ws_server::serve(listener, served.clone(), stop, move |ws, sub| {
        let rx = tx.subscribe();
        let dropped = shared.ws_drop.lock().clone();
        ws_server::broadcast_connection(
            ws,
            sub,
            served.clone(),
            rx,
            Arc::clone(&shared.ws_counters),
            cancel.clone(),
            dropped,
        )
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_binance_capture() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../feeds/tests/data/BINANCE.ws.1.0"));
        let frames = load_capture(path).unwrap();
        assert!(frames.len() >= 80, "{}", frames.len());
        assert!(frames.windows(2).all(|w| w[0].offset <= w[1].offset));
        let syms = capture_symbols(&frames);
        assert!(syms.iter().any(|(s, _)| s == "NKNUSDT"));
    }
}
