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

pub mod answer;
#[cfg(test)]
mod tests;

use answer::parse_answer;

/// Longest a write may block the router thread before the connection is given up.
pub const WRITE_STALL: Duration = Duration::from_millis(2);
/// How often an idle reader wakes to notice a close.
pub const IDLE_READ: Duration = Duration::from_millis(50);
/// First delay between failed connection attempts (doubles up to [`RECONNECT_MAX`]).
pub const RECONNECT_MIN: Duration = Duration::from_millis(10);
/// Longest delay between failed connection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// Largest answer accepted from a relay (head and body, on either path; see also
/// [`crate::relay::RelayClient`]).
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
