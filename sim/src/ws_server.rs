//! The Binance-format websocket server core shared by every loopback exchange feed: the simulated
//! market's feed ([`crate::ws`]), the quote server ([`crate::quotes`]) and the harness's load
//! generator (keel-bench's blaster).
//!
//! What it owns: binding 127.0.0.1, the accept loop (stopped by a [`CancellationToken`]), the
//! handshake's target parsing (`/stream?streams=a/b` for the combined-stream envelope
//! `{"stream":..,"data":..}`, `/ws/<stream>` for raw payloads) against the streams a server serves
//! ([`Served`]), the broadcast connection ([`broadcast_connection`]: subscription filtering,
//! `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS`, ping/pong, a clean close on cancel), and the
//! exact bookTicker text ([`write_book_ticker`]).
//!
//! Costs: formatting a frame is one `String` the caller sizes; a broadcast tick is one `Arc` shared
//! by every connection; a connection filters by a set lookup per frame.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::broadcast,
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message,
        handshake::server::{ErrorResponse, Request, Response},
        http::{StatusCode, Uri},
    },
};
use tokio_util::sync::CancellationToken;

/// Interval of the server's keep-alive pings (Binance: 20 s).
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Capacity of a frame broadcast; a connection that falls further behind skips frames.
pub const BROADCAST_CAPACITY: usize = 4_096;
/// Room for one combined-stream bookTicker frame, bytes (a typical frame is ~150).
pub const FRAME_CAPACITY: usize = 192;

/// A server's websocket stream.
pub type Ws = WebSocketStream<TcpStream>;

/// One frame for one stream.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Stream name, e.g. `ethusdt@bookTicker`.
    pub stream: String,
    /// The raw payload JSON.
    pub payload: String,
}

/// The frames of one tick, shared by every connection.
pub type Tick = Arc<Vec<Frame>>;

/// Which stream names a server accepts in a connection's URL and in `SUBSCRIBE`.
#[derive(Debug, Clone)]
pub enum Served {
    /// Any name (the server's streams change at run time).
    Any,
    /// Only these.
    Only(Arc<BTreeSet<String>>),
}

impl Served {
    fn contains(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(s) => s.contains(name),
        }
    }

    fn list(&self) -> String {
        match self {
            Self::Any => "any".to_owned(),
            Self::Only(s) => s.iter().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

/// What a connection asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Combined-stream envelope (`/stream`) rather than raw payloads (`/ws`).
    pub combined: bool,
    /// Subscribed stream names.
    pub streams: BTreeSet<String>,
}

/// Counters of a broadcast server.
#[derive(Debug, Default)]
pub struct WsCounters {
    /// Frames sent, summed over connections.
    pub frames_sent: AtomicU64,
    /// Frames a slow connection skipped (broadcast lag).
    pub frames_lagged: AtomicU64,
    /// Open connections.
    pub connections: AtomicU64,
}

/// The stream name of a symbol's book ticker: `ethusdt@bookTicker`.
pub fn book_ticker_stream(symbol: &str) -> String {
    format!("{}@bookTicker", symbol.to_ascii_lowercase())
}

/// One book-ticker quote, prices and quantities as Binance prints them (8 decimals).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BookTicker<'a> {
    /// Update id.
    pub u: u64,
    /// Exchange symbol, upper case.
    pub symbol: &'a str,
    /// Best bid.
    pub bid: f64,
    /// Best bid quantity.
    pub bid_qty: f64,
    /// Best ask.
    pub ask: f64,
    /// Best ask quantity.
    pub ask_qty: f64,
}

/// Appends `t` exactly as Binance spot formats it, wrapped in the combined-stream envelope when
/// `stream` is given. Writes only into `out` (no allocation once `out` has room).
pub fn write_book_ticker(out: &mut String, stream: Option<&str>, t: &BookTicker<'_>) {
    let BookTicker { u, symbol, bid, bid_qty, ask, ask_qty } = *t;
    if let Some(stream) = stream {
        let _ = write!(out, r#"{{"stream":"{stream}","data":"#);
    }
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r#"{{"u":{u},"s":"{symbol}","b":"{bid:.8}","B":"{bid_qty:.8}","a":"{ask:.8}","A":"{ask_qty:.8}"}}"#
    );
    if stream.is_some() {
        out.push('}');
    }
}

/// The raw bookTicker payload of `t`.
pub fn book_ticker_payload(t: &BookTicker<'_>) -> String {
    let mut s = String::with_capacity(FRAME_CAPACITY);
    write_book_ticker(&mut s, None, t);
    s
}

/// Wraps a raw payload in the combined-stream envelope.
pub fn combined_frame(stream: &str, payload: &str) -> String {
    format!(r#"{{"stream":"{stream}","data":{payload}}}"#)
}

/// Parses a handshake target: `/stream?streams=a/b` or `/ws/<a>/<b>`, every name served.
pub fn parse_target(uri: &Uri, served: &Served) -> Result<Subscription, String> {
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
            return Err(format!("unknown stream `{n}`; served: {}", served.list()));
        }
        streams.insert(n.to_owned());
    }
    Ok(Subscription { combined, streams })
}

/// Binds 127.0.0.1 on `port` (0: a free port).
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Completes the websocket handshake, refusing (HTTP 400) a target [`parse_target`] refuses.
// The handshake callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
pub async fn handshake(
    stream: TcpStream,
    served: &Served,
) -> Result<(Ws, Subscription), tokio_tungstenite::tungstenite::Error> {
    let mut sub = Subscription::default();
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match parse_target(req.uri(), served) {
            Ok(s) => {
                sub = s;
                Ok(resp)
            }
            Err(msg) => {
                let mut r = ErrorResponse::new(Some(msg));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                Err(r)
            }
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, callback).await?;
    Ok((ws, sub))
}

/// Accepts connections on `listener` until `cancel`, and runs `on_connection` on each handshaken
/// one in its own task (the handshake too, so a slow client never stalls accepts). Accept errors
/// are logged and retried after 10 ms.
pub async fn serve<F, Fut>(listener: TcpListener, served: Served, cancel: CancellationToken, on_connection: F)
where
    F: Fn(Ws, Subscription) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_connection = Arc::new(on_connection);
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "websocket accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (served, on_connection) = (served.clone(), Arc::clone(&on_connection));
        tokio::spawn(async move {
            match handshake(stream, &served).await {
                Ok((ws, sub)) => on_connection(ws, sub).await,
                Err(e) => tracing::debug!(error = %e, "websocket handshake failed"),
            }
        });
    }
}

/// Serves one connection from a frame broadcast until `cancel` (a close handshake) or `dropped`
/// (the TCP connection dropped without one, a test control): sends the frames of each tick that
/// the subscription holds (enveloped on `/stream`), pings every [`PING_INTERVAL`], answers pings
/// and the live subscription requests, and counts into `counters`.
pub async fn broadcast_connection(
    mut ws: Ws,
    mut sub: Subscription,
    served: Served,
    mut rx: broadcast::Receiver<Tick>,
    counters: Arc<WsCounters>,
    cancel: CancellationToken,
    dropped: CancellationToken,
) {
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = ws.close(None).await;
                break;
            }
            _ = dropped.cancelled() => break,
            _ = ping.tick() => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or_default()
                    .to_string();
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
                        let text =
                            if sub.combined { combined_frame(&f.stream, &f.payload) } else { f.payload.clone() };
                        if ws.feed(Message::text(text)).await.is_err() {
                            failed = true;
                            break;
                        }
                        sent += 1;
                    }
                    if failed || (sent > 0 && ws.flush().await.is_err()) {
                        break;
                    }
                    counters.frames_sent.fetch_add(sent, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    counters.frames_lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    counters.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Answers Binance's live subscription requests (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`).
fn control_request(text: &str, sub: &mut Subscription, served: &Served) -> String {
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
        let t =
            BookTicker { u: 7, symbol: "ETHUSDT", bid: 3000.1, bid_qty: 1.234, ask: 3000.2, ask_qty: 2.0 };
        assert_eq!(
            book_ticker_payload(&t),
            r#"{"u":7,"s":"ETHUSDT","b":"3000.10000000","B":"1.23400000","a":"3000.20000000","A":"2.00000000"}"#
        );
        let mut combined = String::new();
        write_book_ticker(&mut combined, Some("ethusdt@bookTicker"), &t);
        assert_eq!(combined, combined_frame("ethusdt@bookTicker", &book_ticker_payload(&t)));
    }

    #[test]
    fn parses_targets() {
        let served = Served::Only(Arc::new(["ethusdt@bookTicker".to_owned()].into()));
        let uri = "/stream?streams=ethusdt@bookTicker".parse().unwrap();
        let s = parse_target(&uri, &served).unwrap();
        assert!(s.combined && s.streams.contains("ethusdt@bookTicker"));
        let uri = "/ws/ethusdt@bookTicker".parse().unwrap();
        assert!(!parse_target(&uri, &served).unwrap().combined);
        let uri = "/ws/btcusdt@bookTicker".parse().unwrap();
        assert!(parse_target(&uri, &served).unwrap_err().contains("unknown stream"));
        let uri = "/foo".parse().unwrap();
        assert!(parse_target(&uri, &served).is_err());
        let uri = "/stream?streams=btcusdt@bookTicker".parse().unwrap();
        assert!(parse_target(&uri, &Served::Any).is_ok());
    }

    #[test]
    fn subscription_requests_change_the_filter() {
        let served = Served::Only(Arc::new(["a@bookTicker".to_owned()].into()));
        let mut sub = Subscription::default();
        let r =
            control_request(r#"{"method":"SUBSCRIBE","params":["a@bookTicker"],"id":1}"#, &mut sub, &served);
        assert_eq!(serde_json::from_str::<Value>(&r).unwrap(), json!({"id": 1, "result": null}));
        assert!(sub.streams.contains("a@bookTicker"));
        let r =
            control_request(r#"{"method":"SUBSCRIBE","params":["b@bookTicker"],"id":2}"#, &mut sub, &served);
        assert!(r.contains("unknown stream"));
    }
}
