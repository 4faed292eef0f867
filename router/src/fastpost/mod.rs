//! The fast path to plain-`http://` relays: the router thread writes the finished HTTP/1.1 request
//! straight to a pre-connected keep-alive socket (`TCP_NODELAY`), with no hop to an async runtime
//! and no HTTP client in between. One reader thread per relay owns the connection's life: it
//! connects (and reconnects after any failure, with backoff), reads the answers in request order
//! (HTTP/1.1 pipelining), classifies them with [`parse_send_bundle_response`] and hands each to
//! the [`ReplySink`].
//!
//! Invariants:
//! - A request is either written whole to a live connection and answered through the sink exactly
//!   once (an answer, a timeout or a transport failure), or handed back to the caller by
//!   [`FastPoster::send`] untouched, for the slow path. It is never silently lost.
//! - A request not answered within its relay's `timeout_ms` fails the connection: an HTTP/1.1
//!   connection cannot skip an answer, so every request still waiting on it fails with
//!   [`RelayError::Transport`] (recoverable) and the reader reconnects.
//! - The router thread never connects, resolves names or waits for an answer. A write blocks it at
//!   most [`WRITE_STALL`] (a relay that stopped reading fills the socket buffer first); then the
//!   connection is dropped and the request handed back.
//!
//! TLS relays (`https://`, the real-world case) are not handled here: they stay on the `reqwest`
//! path of [`crate::relay::RelayClient`].

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::bundle::{FLASHBOTS_SIGNATURE_HEADER, SignedBundleRequest};
use crate::config::RelayConfig;
use crate::relay::{RelayError, RelayReply, parse_send_bundle_response};

/// Longest a write may block the router thread before the connection is given up.
pub const WRITE_STALL: Duration = Duration::from_millis(2);
/// How often an idle reader wakes to notice a close.
pub const IDLE_READ: Duration = Duration::from_millis(50);
/// First delay between failed connection attempts (doubles up to [`RECONNECT_MAX`]).
pub const RECONNECT_MIN: Duration = Duration::from_millis(10);
/// Longest delay between failed connection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// Largest answer accepted from a relay.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Receives every answer of the fast path, on the relay's reader thread, with the tag given to
/// [`FastPoster::send`].
pub type ReplySink<T> = Arc<dyn Fn(T, RelayReply) + Send + Sync>;

/// Why a request was not posted on the fast path (it is handed back for the slow path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FastPostError {
    /// The relay is not a plain-`http://` relay, or its URL could not be read.
    #[error("relay #{0} has no fast path")]
    NoFastPath(usize),
    /// The relay's connection is down (the reader thread is reconnecting).
    #[error("relay `{0}`: not connected")]
    NotConnected(String),
    /// Writing the request failed; the connection was dropped.
    #[error("relay `{relay}`: write failed: {error}")]
    Write {
        /// Relay name.
        relay: String,
        /// The I/O error.
        error: String,
    },
}

/// Posts signed bundles to plain-`http://` relays from the calling thread (see the module docs).
pub struct FastPoster<T> {
    /// By relay index; `None` for relays without a fast path.
    links: Vec<Option<Arc<Link<T>>>>,
    readers: Vec<JoinHandle<()>>,
    buf: Vec<u8>,
}

impl<T> std::fmt::Debug for FastPoster<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.links.iter().flatten().map(|l| l.name.as_str()).collect();
        f.debug_struct("FastPoster").field("relays", &names).finish()
    }
}

/// One relay's connection, shared by the writer (router thread) and its reader thread.
struct Link<T> {
    relay: usize,
    name: String,
    /// `host:port`, resolved at each connect.
    authority: String,
    /// Everything of the request head before the per-request headers.
    head: Vec<u8>,
    timeout: Duration,
    closing: AtomicBool,
    state: Mutex<LinkState<T>>,
}

struct LinkState<T> {
    /// The write half; `None` while disconnected.
    stream: Option<TcpStream>,
    /// Requests written and not yet answered, oldest first.
    pending: VecDeque<Pending<T>>,
}

struct Pending<T> {
    tag: T,
    started: Instant,
    deadline: Instant,
}

impl<T: Send + 'static> FastPoster<T> {
    /// Starts a reader thread (which connects at once) for each plain-`http://` relay of `relays`;
    /// other relays get no fast path. Answers go to `sink`.
    pub fn new(relays: &[RelayConfig], sink: ReplySink<T>) -> std::io::Result<Self> {
        let mut links = Vec::with_capacity(relays.len());
        let mut readers = Vec::new();
        for (i, r) in relays.iter().enumerate() {
            let target = if r.fast_path { plain_http_target(&r.url) } else { None };
            let Some((authority, path)) = target else {
                links.push(None);
                continue;
            };
            let head =
                format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n")
                    .into_bytes();
            let link = Arc::new(Link {
                relay: i,
                name: r.name.clone(),
                authority,
                head,
                timeout: Duration::from_millis(r.timeout_ms.max(1)),
                closing: AtomicBool::new(false),
                state: Mutex::new(LinkState { stream: None, pending: VecDeque::new() }),
            });
            let (l, s) = (Arc::clone(&link), Arc::clone(&sink));
            let spawned =
                std::thread::Builder::new().name(format!("keel-relay-{i}")).spawn(move || run_reader(&l, &s));
            match spawned {
                Ok(handle) => readers.push(handle),
                Err(e) => {
                    let poster = Self { links, readers, buf: Vec::new() };
                    drop(poster);
                    return Err(e);
                }
            }
            links.push(Some(link));
        }
        Ok(Self { links, readers, buf: Vec::with_capacity(4096) })
    }

    /// Whether relay `relay` has a fast path.
    pub fn handles(&self, relay: usize) -> bool {
        self.links.get(relay).is_some_and(Option::is_some)
    }

    /// Whether relay `relay`'s connection is up now.
    pub fn is_connected(&self, relay: usize) -> bool {
        self.link(relay).is_some_and(|l| l.state.lock().stream.is_some())
    }

    fn link(&self, relay: usize) -> Option<&Arc<Link<T>>> {
        self.links.get(relay).and_then(Option::as_ref)
    }

    /// Writes `req` to relay `relay`; its answer reaches the sink with `tag`. On `Err` nothing
    /// reached the relay whole, and `tag` is handed back.
    pub fn send(
        &mut self,
        relay: usize,
        req: &SignedBundleRequest,
        tag: T,
    ) -> Result<(), (T, FastPostError)> {
        let Some(link) = self.links.get(relay).and_then(Option::as_ref) else {
            return Err((tag, FastPostError::NoFastPath(relay)));
        };
        self.buf.clear();
        self.buf.extend_from_slice(&link.head);
        let _ = write!(
            self.buf,
            "{FLASHBOTS_SIGNATURE_HEADER}: {}\r\nContent-Length: {}\r\n\r\n",
            req.signature_header,
            req.body.len()
        );
        self.buf.extend_from_slice(&req.body);
        let mut st = link.state.lock();
        let LinkState { stream, pending } = &mut *st;
        let Some(s) = stream.as_ref() else {
            return Err((tag, FastPostError::NotConnected(link.name.clone())));
        };
        let started = Instant::now();
        // The reader cannot take an answer before this lock is released, so the request is queued
        // only once it is written whole.
        match (&*s).write_all(&self.buf) {
            Ok(()) => {
                pending.push_back(Pending { tag, started, deadline: started + link.timeout });
                Ok(())
            }
            Err(e) => {
                // The reader sees the shutdown, fails what was written before and reconnects.
                if let Some(s) = stream.take() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                Err((tag, FastPostError::Write { relay: link.name.clone(), error: e.to_string() }))
            }
        }
    }
}

impl<T> Drop for FastPoster<T> {
    /// Stops the readers once every written request is answered or timed out.
    fn drop(&mut self) {
        for link in self.links.iter().flatten() {
            link.closing.store(true, Ordering::Release);
        }
        for handle in self.readers.drain(..) {
            let _ = handle.join();
        }
    }
}

/// `(host:port, path)` of a plain-`http://` URL.
fn plain_http_target(url: &str) -> Option<(String, String)> {
    let url = reqwest::Url::parse(url).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let host =
        if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    Some((format!("{host}:{port}"), path))
}

/// The reader thread: connect, read answers until the connection fails, fail what it still owed,
/// reconnect; until the poster closes and nothing is owed.
fn run_reader<T>(link: &Link<T>, sink: &ReplySink<T>) {
    let mut backoff = RECONNECT_MIN;
    let mut warned = false;
    while !link.closing.load(Ordering::Acquire) {
        let (stream, reader) = match connect(link) {
            Ok(pair) => pair,
            Err(e) => {
                if !warned {
                    tracing::warn!(relay = %link.name, error = %e, "relay fast path: connect failed; retrying");
                    warned = true;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        if warned {
            tracing::info!(relay = %link.name, "relay fast path: connected");
        }
        (backoff, warned) = (RECONNECT_MIN, false);
        link.state.lock().stream = Some(stream);
        let reason = read_answers(link, reader, sink);
        let owed = {
            let mut st = link.state.lock();
            if let Some(s) = st.stream.take() {
                let _ = s.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut st.pending)
        };
        if !owed.is_empty() || !link.closing.load(Ordering::Acquire) {
            tracing::debug!(relay = %link.name, reason = %reason, owed = owed.len(), "relay fast path: connection dropped");
        }
        for p in owed {
            let result = Err(RelayError::Transport(reason.clone()));
            sink(p.tag, RelayReply { relay: link.relay, result, elapsed: p.started.elapsed() });
        }
    }
}

/// A connected stream (write half) and its clone for reading.
fn connect<T>(link: &Link<T>) -> std::io::Result<(TcpStream, TcpStream)> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in link.authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, link.timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(WRITE_STALL))?;
                quick_ack(&s);
                let r = s.try_clone()?;
                return Ok((s, r));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads answers and hands each to the sink with the oldest pending request, until the connection
/// fails or times out, or the poster closes with nothing owed. Returns why it stopped.
fn read_answers<T>(link: &Link<T>, mut reader: TcpStream, sink: &ReplySink<T>) -> String {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let oldest = {
            let st = link.state.lock();
            if st.stream.is_none() {
                return "write failed".into();
            }
            st.pending.front().map(|p| p.deadline)
        };
        let wait = match oldest {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return format!("timed out after {} ms", link.timeout.as_millis());
                }
                left.min(IDLE_READ)
            }
            None if link.closing.load(Ordering::Acquire) => return "closing".into(),
            None => IDLE_READ,
        };
        if let Err(e) = reader.set_read_timeout(Some(wait.max(Duration::from_micros(50)))) {
            return e.to_string();
        }
        let n = match reader.read(&mut chunk) {
            Ok(0) => return "connection closed by the relay".into(),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return e.to_string(),
        };
        quick_ack(&reader);
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE_BYTES {
            return "answer too large".into();
        }
        loop {
            let answer = match parse_answer(&buf) {
                Ok(Some(a)) => a,
                Ok(None) => break,
                Err(e) => return format!("malformed HTTP answer: {e}"),
            };
            buf.drain(..answer.consumed);
            if answer.interim {
                continue;
            }
            let Some(p) = link.state.lock().pending.pop_front() else {
                return "answer to no request".into();
            };
            let result = parse_send_bundle_response(answer.status, &answer.body);
            sink(p.tag, RelayReply { relay: link.relay, result, elapsed: p.started.elapsed() });
            if answer.close {
                return "the relay closed the connection (Connection: close)".into();
            }
        }
    }
}

/// Acknowledges received data at once instead of after the delayed-ACK timer (Linux; elsewhere a
/// no-op). Needed because a request/answer connection settles into delayed-ACK mode, and a relay
/// that writes an answer in two segments without `TCP_NODELAY` then holds the second one until our
/// ACK — 40 ms later. The flag is not sticky, so it is set again after every read.
fn quick_ack(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// One complete HTTP answer.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: Vec<u8>,
    /// Bytes of the buffer it took.
    consumed: usize,
    /// A 1xx answer (another follows for the same request).
    interim: bool,
    /// The relay closes the connection after it.
    close: bool,
}

/// Parses one answer from the start of `buf`; `Ok(None)` while incomplete.
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or(0);
    let mut close = resp.version == Some(0);
    let (mut length, mut chunked) = (None, false);
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| format!("header {}: not text", h.name))?;
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse::<usize>().map_err(|e| format!("content-length: {e}"))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            close = v.contains("close") || (close && !v.contains("keep-alive"));
        }
    }
    let interim = (100..200).contains(&status);
    if interim || status == 204 || status == 304 {
        return Ok(Some(Answer { status, body: Vec::new(), consumed: head_len, interim, close }));
    }
    let rest = &buf[head_len..];
    let (body, used) = if chunked {
        match dechunk(rest)? {
            Some(b) => b,
            None => return Ok(None),
        }
    } else {
        let Some(n) = length else {
            return Err("no Content-Length and not chunked (a body delimited by close)".into());
        };
        if rest.len() < n {
            return Ok(None);
        }
        (rest[..n].to_vec(), n)
    };
    Ok(Some(Answer { status, body, consumed: head_len + used, interim, close }))
}

/// Decodes a chunked body from the start of `buf`: `(body, bytes used)`, `Ok(None)` while incomplete.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[at..]).map_err(|_| "bad chunk size")? {
            httparse::Status::Complete(c) => c,
            httparse::Status::Partial => return Ok(None),
        };
        at += used;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
                at += end + 2;
                if end == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| "chunk too large")?;
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;

    use alloy::primitives::B256;

    /// Generous bound on waits for the other side, so a broken build fails instead of hanging.
    const GUARD: Duration = Duration::from_secs(20);

    fn request(n: u8) -> SignedBundleRequest {
        SignedBundleRequest {
            body: format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"eth_sendBundle","params":[]}}"#)
                .into_bytes(),
            signature_header: format!("0x00000000000000000000000000000000000000{n:02x}:0xfeed"),
            bundle_hash: B256::repeat_byte(n),
            block_number: 7,
        }
    }

    fn ok_body(n: u8) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bundleHash":"{}"}}}}"#, B256::repeat_byte(n))
    }

    fn answer(status: u16, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Reads one whole request (head and Content-Length body); `None` at EOF.
    fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
        let mut chunk = [0u8; 4096];
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = req.parse(buf) {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= head + len {
                    return Some(buf.drain(..head + len).collect());
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    type Replies = mpsc::Receiver<(u8, RelayReply)>;

    fn poster(addr: std::net::SocketAddr, timeout_ms: u64) -> (FastPoster<u8>, Replies) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: ReplySink<u8> = Arc::new(move |tag, reply| {
            let _ = tx.lock().send((tag, reply));
        });
        let relays = vec![
            RelayConfig {
                name: "tls".into(),
                url: "https://relay.example/".into(),
                timeout_ms,
                fast_path: true,
            },
            RelayConfig {
                name: "local".into(),
                url: format!("http://{addr}/bundle?v=1"),
                timeout_ms,
                fast_path: true,
            },
            // switched off: the HTTP client sends to it
            RelayConfig { name: "off".into(), url: format!("http://{addr}/"), timeout_ms, fast_path: false },
        ];
        let p = FastPoster::new(&relays, sink).unwrap();
        (p, rx)
    }

    fn wait_connected(p: &FastPoster<u8>) {
        let t0 = Instant::now();
        while !p.is_connected(1) {
            assert!(t0.elapsed() < GUARD, "never connected");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn exact_bytes_on_the_wire_and_pipelined_answers_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let first = read_request(&mut s, &mut buf).unwrap();
            let second = read_request(&mut s, &mut buf).unwrap();
            // Both answers in one write: one content-length, one chunked; then an RPC error and a 503.
            let body = ok_body(2);
            let (a, b) = body.split_at(10);
            let chunked = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};x=y\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            );
            let mut out = answer(200, &ok_body(1));
            out.extend_from_slice(chunked.as_bytes());
            s.write_all(&out).unwrap();
            let _third = read_request(&mut s, &mut buf).unwrap();
            let _fourth = read_request(&mut s, &mut buf).unwrap();
            let mut out =
                answer(400, r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad bundle"}}"#);
            out.extend_from_slice(&answer(503, "overloaded"));
            out.extend_from_slice(&answer(429, r#"{"error":{"code":-1,"message":"slow down"}}"#));
            s.write_all(&out).unwrap();
            let _fifth = read_request(&mut s, &mut buf).unwrap();
            (first, second)
        });
        let (mut p, rx) = poster(addr, 5_000);
        assert!(
            !p.handles(0) && p.handles(1) && !p.handles(2),
            "https and switched-off relays have no fast path"
        );
        assert!(matches!(p.send(0, &request(9), 9), Err((9, FastPostError::NoFastPath(0)))));
        wait_connected(&p);
        p.send(1, &request(1), 1).unwrap();
        p.send(1, &request(2), 2).unwrap();
        let (t1, r1) = rx.recv_timeout(GUARD).unwrap();
        let (t2, r2) = rx.recv_timeout(GUARD).unwrap();
        assert_eq!((t1, r1.relay, r1.result), (1, 1, Ok(B256::repeat_byte(1))));
        assert_eq!((t2, r2.result), (2, Ok(B256::repeat_byte(2))));
        for n in 3..=5 {
            p.send(1, &request(n), n).unwrap();
        }
        let (t3, r3) = rx.recv_timeout(GUARD).unwrap();
        assert_eq!((t3, r3.result), (3, Err(RelayError::Rpc { code: -32602, message: "bad bundle".into() })));
        let (t4, r4) = rx.recv_timeout(GUARD).unwrap();
        let e4 = r4.result.unwrap_err();
        assert_eq!(t4, 4);
        assert!(matches!(e4, RelayError::Status { status: 503, .. }) && e4.is_recoverable(), "{e4:?}");
        let (t5, r5) = rx.recv_timeout(GUARD).unwrap();
        let e5 = r5.result.unwrap_err();
        assert_eq!(t5, 5);
        assert!(matches!(e5, RelayError::Status { status: 429, .. }) && e5.is_recoverable(), "{e5:?}");

        let (first, second) = server.join().unwrap();
        let req = request(1);
        let mut expected = format!(
            "POST /bundle?v=1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             X-Flashbots-Signature: {}\r\nContent-Length: {}\r\n\r\n",
            req.signature_header,
            req.body.len()
        )
        .into_bytes();
        expected.extend_from_slice(&req.body);
        assert_eq!(String::from_utf8(first).unwrap(), String::from_utf8(expected).unwrap());
        assert!(String::from_utf8(second).unwrap().ends_with(std::str::from_utf8(&request(2).body).unwrap()));
    }

    #[test]
    fn a_dropped_connection_fails_what_it_owed_and_reconnects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            // First connection: read a request and hang up without answering.
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            read_request(&mut s, &mut buf).unwrap();
            drop(s);
            // Second connection: answer normally.
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            read_request(&mut s, &mut buf).unwrap();
            s.write_all(&answer(200, &ok_body(2))).unwrap();
            read_request(&mut s, &mut buf)
        });
        let (mut p, rx) = poster(addr, 5_000);
        wait_connected(&p);
        p.send(1, &request(1), 1).unwrap();
        let (t1, r1) = rx.recv_timeout(GUARD).unwrap();
        let e1 = r1.result.unwrap_err();
        assert_eq!(t1, 1);
        assert!(matches!(e1, RelayError::Transport(_)) && e1.is_recoverable(), "{e1:?}");
        // The reader reconnects by itself; a send while it is down is handed back, never lost.
        let t0 = Instant::now();
        loop {
            match p.send(1, &request(2), 2) {
                Ok(()) => break,
                Err((2, FastPostError::NotConnected(_) | FastPostError::Write { .. })) => {
                    assert!(t0.elapsed() < GUARD, "never reconnected");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((t, e)) => panic!("unexpected {t} {e}"),
            }
        }
        let (t2, r2) = rx.recv_timeout(GUARD).unwrap();
        assert_eq!((t2, r2.result), (2, Ok(B256::repeat_byte(2))));
        drop(p);
        assert_eq!(server.join().unwrap(), None, "the poster closed its connection");
    }

    #[test]
    fn a_hung_relay_times_out_and_the_connection_is_replaced() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            read_request(&mut s, &mut buf).unwrap();
            // Never answers, never closes, until the test is done.
            let (_s2, _) = listener.accept().unwrap();
            let _ = hold_rx.recv();
        });
        let (mut p, rx) = poster(addr, 50);
        wait_connected(&p);
        p.send(1, &request(1), 1).unwrap();
        let (t1, r1) = rx.recv_timeout(GUARD).unwrap();
        assert_eq!(t1, 1);
        match r1.result {
            Err(RelayError::Transport(m)) => assert!(m.contains("timed out"), "{m}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        hold_tx.send(()).unwrap();
        server.join().unwrap();
    }

    #[test]
    fn only_plain_http_urls_get_a_fast_path() {
        assert_eq!(plain_http_target("https://relay.flashbots.net"), None);
        assert_eq!(plain_http_target("ws://127.0.0.1:1"), None);
        assert_eq!(
            plain_http_target("http://127.0.0.1:8080/relay?x=1"),
            Some(("127.0.0.1:8080".into(), "/relay?x=1".into()))
        );
        assert_eq!(plain_http_target("http://localhost"), Some(("localhost:80".into(), "/".into())));
        assert_eq!(plain_http_target("http://[::1]:9/"), Some(("[::1]:9".into(), "/".into())));
    }

    #[test]
    fn partial_and_malformed_answers() {
        let full = answer(200, "{}");
        for cut in 0..full.len() {
            assert_eq!(parse_answer(&full[..cut]), Ok(None), "cut at {cut}");
        }
        let a = parse_answer(&full).unwrap().unwrap();
        assert_eq!((a.status, a.body.as_slice(), a.consumed, a.close), (200, &b"{}"[..], full.len(), false));
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_answer(close).unwrap().unwrap().close);
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_answer(b"garbage\r\n\r\n").is_err());
        let interim = parse_answer(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap().unwrap();
        assert!(interim.interim);
    }
}
