//! The exchange websocket server, in Binance spot's format: `/stream?streams=a/b` (combined-stream
//! envelope `{"stream":..,"data":..}`) and `/ws/<stream>` (raw payloads), `bookTicker` streams only.
//! A driver task produces one frame per symbol every `tick_ms` (synthetic path) or replays a capture's
//! bookTicker frames with their original spacing, looping; it publishes the mids on the
//! [`PriceBoard`] and broadcasts the frames to every connection. The server answers pings, pings every
//! 20 s, and handles `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS` requests.

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::broadcast,
    time::{Instant, MissedTickBehavior},
};
use tokio_tungstenite::tungstenite::{
    Message,
    handshake::server::{ErrorResponse, Request, Response},
    http::StatusCode,
};
use tokio_util::sync::CancellationToken;

use super::{Shared, SimError, config::SimSymbolConfig, price::PricePath};

/// Interval of the server's keep-alive pings (Binance: 20 s).
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Capacity of the frame broadcast; a connection that falls further behind skips frames.
pub(crate) const BROADCAST_CAPACITY: usize = 4_096;

/// One frame for one stream.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// Stream name, e.g. `ethusdt@bookTicker`.
    pub(crate) stream: String,
    /// The raw payload JSON.
    pub(crate) payload: String,
}

/// The frames of one tick.
pub(crate) type Tick = Arc<Vec<Frame>>;

/// The stream name of a symbol's book ticker.
pub(crate) fn book_ticker_stream(symbol: &str) -> String {
    format!("{}@bookTicker", symbol.to_ascii_lowercase())
}

/// Formats a book-ticker payload exactly as Binance spot does.
fn book_ticker_payload(u: u64, symbol: &str, bid: f64, bid_qty: f64, ask: f64, ask_qty: f64) -> String {
    format!(
        r#"{{"u":{u},"s":"{symbol}","b":"{bid:.8}","B":"{bid_qty:.8}","a":"{ask:.8}","A":"{ask_qty:.8}"}}"#
    )
}

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
                payload: book_ticker_payload(update_id, &s.symbol, bid, bid_qty, ask, ask_qty),
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

/// What a connection asked for in its URL.
#[derive(Debug, Default)]
struct Subscription {
    combined: bool,
    streams: BTreeSet<String>,
}

fn parse_target(
    uri: &tokio_tungstenite::tungstenite::http::Uri,
    served: &BTreeSet<String>,
) -> Result<Subscription, String> {
    let path = uri.path();
    let (combined, names): (bool, Vec<&str>) = if path == "/stream" || path == "/stream/" {
        let streams = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|kv| kv.strip_prefix("streams="))
            .unwrap_or_default();
        (true, streams.split('/').filter(|s| !s.is_empty()).collect())
    } else if let Some(rest) = path.strip_prefix("/ws") {
        (false, rest.split('/').filter(|s| !s.is_empty()).collect())
    } else {
        return Err(format!("unknown path `{path}`: use /stream?streams=<a>/<b> or /ws/<stream>"));
    };
    let mut streams = BTreeSet::new();
    for n in names {
        if !served.contains(n) {
            return Err(format!(
                "unknown stream `{n}`; served: {}",
                served.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        streams.insert(n.to_owned());
    }
    Ok(Subscription { combined, streams })
}

/// Accepts websocket connections until `cancel`.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tx: broadcast::Sender<Tick>,
    served: Arc<BTreeSet<String>>,
    cancel: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "sim websocket accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let rx = tx.subscribe();
        let conn_cancel = shared.ws_drop.lock().clone();
        tokio::spawn(connection(stream, shared.clone(), rx, served.clone(), cancel.clone(), conn_cancel));
    }
}

// The handshake callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut rx: broadcast::Receiver<Tick>,
    served: Arc<BTreeSet<String>>,
    cancel: CancellationToken,
    dropped: CancellationToken,
) {
    let mut sub = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match parse_target(req.uri(), &served) {
            Ok(s) => {
                sub = Some(s);
                Ok(resp)
            }
            Err(msg) => {
                let mut r = ErrorResponse::new(Some(msg));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                Err(r)
            }
        }
    };
    let mut ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(error = %e, "sim websocket handshake failed");
            return;
        }
    };
    let Some(mut sub) = sub else { return };
    shared.ws_connections.fetch_add(1, Ordering::Relaxed);
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = ws.close(None).await;
                break;
            }
            // Test control: drop the TCP connection without a close handshake.
            _ = dropped.cancelled() => break,
            _ = ping.tick() => {
                let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default().to_string();
                if ws.send(Message::Ping(stamp.into_bytes().into())).await.is_err() {
                    break;
                }
            }
            msg = ws.next() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                // tungstenite queues the Pong itself; push it out now.
                Some(Ok(Message::Ping(_))) => {
                    if ws.flush().await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let reply = control_request(t.as_str(), &mut sub, &served);
                    if ws.send(Message::text(reply)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
            },
            tick = rx.recv() => match tick {
                Ok(frames) => {
                    let mut sent = 0u64;
                    let mut failed = false;
                    for f in frames.iter().filter(|f| sub.streams.contains(&f.stream)) {
                        let text = if sub.combined {
                            format!(r#"{{"stream":"{}","data":{}}}"#, f.stream, f.payload)
                        } else {
                            f.payload.clone()
                        };
                        if ws.feed(Message::text(text)).await.is_err() {
                            failed = true;
                            break;
                        }
                        sent += 1;
                    }
                    if failed || (sent > 0 && ws.flush().await.is_err()) {
                        break;
                    }
                    shared.frames_sent.fetch_add(sent, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    shared.frames_lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    shared.ws_connections.fetch_sub(1, Ordering::Relaxed);
}

/// Answers Binance's live subscription requests (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`).
fn control_request(text: &str, sub: &mut Subscription, served: &BTreeSet<String>) -> String {
    let err = |id: &Value, code: i64, msg: &str| {
        json!({ "error": { "code": code, "msg": msg }, "id": id }).to_string()
    };
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return err(&Value::Null, 3, "Invalid JSON");
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let names: Vec<String> = v
        .get("params")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    match v.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            if let Some(bad) = names.iter().find(|n| !served.contains(n.as_str())) {
                return err(&id, 2, &format!("Invalid request: unknown stream {bad}"));
            }
            sub.streams.extend(names);
            json!({ "result": null, "id": id }).to_string()
        }
        Some("UNSUBSCRIBE") => {
            for n in &names {
                sub.streams.remove(n);
            }
            json!({ "result": null, "id": id }).to_string()
        }
        Some("LIST_SUBSCRIPTIONS") => json!({ "result": sub.streams, "id": id }).to_string(),
        _ => err(&id, 2, "Invalid request: unknown method"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_binance_format() {
        let p = book_ticker_payload(7, "ETHUSDT", 3000.1, 1.234, 3000.2, 2.0);
        assert_eq!(
            p,
            r#"{"u":7,"s":"ETHUSDT","b":"3000.10000000","B":"1.23400000","a":"3000.20000000","A":"2.00000000"}"#
        );
    }

    #[test]
    fn loads_the_binance_capture() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../feeds/tests/data/BINANCE.ws.1.0"));
        let frames = load_capture(path).unwrap();
        assert!(frames.len() >= 80, "{}", frames.len());
        assert!(frames.windows(2).all(|w| w[0].offset <= w[1].offset));
        let syms = capture_symbols(&frames);
        assert!(syms.iter().any(|(s, _)| s == "NKNUSDT"));
    }

    #[test]
    fn parses_targets() {
        let served: BTreeSet<String> = ["ethusdt@bookTicker".to_owned()].into();
        let uri = "/stream?streams=ethusdt@bookTicker".parse().unwrap();
        let s = parse_target(&uri, &served).unwrap();
        assert!(s.combined && s.streams.contains("ethusdt@bookTicker"));
        let uri = "/ws/ethusdt@bookTicker".parse().unwrap();
        assert!(!parse_target(&uri, &served).unwrap().combined);
        let uri = "/ws/btcusdt@bookTicker".parse().unwrap();
        assert!(parse_target(&uri, &served).unwrap_err().contains("unknown stream"));
        let uri = "/foo".parse().unwrap();
        assert!(parse_target(&uri, &served).is_err());
    }
}
