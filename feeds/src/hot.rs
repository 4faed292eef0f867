//! The exchange socket owned by the thread that decides (`[engine] mode = "inline"`).
//!
//! ```text
//!              connector thread: TCP + TLS + websocket handshake, backoff ──hand-over──┐
//!                                                                                     ▼
//! hot thread: socket ──read (non-blocking)──▶ recv_ns ──▶ FrameMapper ──▶ Event ──▶ the engine, same thread
//! ```
//!
//! * [`HotFeed::try_next`] reads what the socket holds without blocking and returns the next engine
//!   event: no task, no queue and no wake-up between the socket and the engine. Each data frame is
//!   stamped with [`mono_now_ns`] as it is read, recorded (with a [`Recorder`]), decoded and mapped
//!   by the same code as the feed task's ([`crate::frames`]).
//! * Whatever may wait stays off the hot thread: connecting (DNS, TCP, TLS, the handshake, each
//!   bounded by `connect_timeout_ms`) and the backoff between attempts run on a connector thread,
//!   which hands each new connection over through a channel the hot thread polls.
//! * Pings are answered by the next read (tungstenite queues the pong and flushes it then, and
//!   again on every read until the socket takes it). No frame for `idle_timeout_ms`, an error or a
//!   close ends the connection; the connector reconnects after a [`Backoff`] delay (reset when the
//!   connection delivered data), as the feed task does. The same counters: [`Counter::Connects`],
//!   [`Counter::Reconnects`], [`Counter::Pings`], and [`Counter::Pushed`] for an event handed to the
//!   engine.
//! * [`HotFeed::wait`] lets an idle thread sleep until the socket is readable (`ppoll`) or a new
//!   connection arrives, for at most the time given; a busy-polling thread never calls it.

use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keel_engine::clock::mono_now_ns;
use keel_engine::{Event, Nanos};
use keel_recording::Recorder;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::stream::MaybeTlsStream;
use tokio_tungstenite::tungstenite::{self, HandshakeError, Message, WebSocket};
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::binance::InstrumentTable;
use crate::frames::FrameMapper;
use crate::stats::{Counter, FeedStats};
use crate::ws::{BinanceFeedConfig, FeedError, describe_close, ws_limits};

/// One websocket connection, its socket non-blocking.
type Conn = WebSocket<MaybeTlsStream<TcpStream>>;

/// What the hot thread asks of the connector.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// The first connection: no delay.
    First,
    /// A new connection after one ended; `healthy` when that one delivered data (resets backoff).
    After { healthy: bool },
}

/// The exchange feed read on the calling thread. See the module docs.
pub struct HotFeed {
    mapper: FrameMapper,
    conn: Option<Conn>,
    /// New connections from the connector.
    arrivals: Receiver<Conn>,
    /// Requests to the connector; dropping it (with this value) ends the connector's wait, and the
    /// connector exits after an attempt in progress.
    asks: Option<Sender<Ask>>,
    connector: Option<JoinHandle<()>>,
    idle_ns: Nanos,
    idle_timeout_ms: u64,
    /// When the current connection last delivered anything (data, ping, pong).
    last_ns: Nanos,
    /// The current connection delivered a data frame.
    healthy: bool,
}

impl std::fmt::Debug for HotFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotFeed")
            .field("connected", &self.conn.is_some())
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .finish_non_exhaustive()
    }
}

impl HotFeed {
    /// Validates `cfg` and starts the connector thread, which connects at once. Events come from
    /// [`HotFeed::try_next`] on the thread that owns this value.
    pub fn start(
        cfg: BinanceFeedConfig,
        table: Arc<InstrumentTable>,
        stats: Arc<FeedStats>,
        recorder: Option<Arc<Recorder>>,
    ) -> Result<Self, FeedError> {
        cfg.validate()?;
        let (ask_tx, ask_rx) = mpsc::channel();
        let (conn_tx, conn_rx) = mpsc::sync_channel(1);
        let connector = {
            let stats = Arc::clone(&stats);
            let cfg = cfg.clone();
            std::thread::Builder::new()
                .name("keel-feed-connect".into())
                .spawn(move || connector(cfg, stats, ask_rx, conn_tx))
                .map_err(|e| FeedError::Config(format!("cannot start the connector thread: {e}")))?
        };
        if ask_tx.send(Ask::First).is_err() {
            return Err(FeedError::Config("the connector thread ended before its first connection".into()));
        }
        Ok(Self {
            mapper: FrameMapper::new(table, stats, recorder),
            conn: None,
            arrivals: conn_rx,
            asks: Some(ask_tx),
            connector: Some(connector),
            idle_ns: cfg.idle_timeout_ms.saturating_mul(1_000_000),
            idle_timeout_ms: cfg.idle_timeout_ms,
            last_ns: mono_now_ns(),
            healthy: false,
        })
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The next engine event the socket holds, read without blocking; `None` when it holds no
    /// complete frame that maps to one (or no connection is open). Frames that map to nothing
    /// (control responses, other symbols, malformed ones) are counted and read past.
    #[inline]
    pub fn try_next(&mut self) -> Option<Event> {
        loop {
            let Some(ws) = self.conn.as_mut() else {
                match self.arrivals.try_recv() {
                    Ok(conn) => self.install(conn),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return None,
                }
                continue;
            };
            match ws.read() {
                Ok(msg) => {
                    let recv_ns = mono_now_ns();
                    self.last_ns = recv_ns;
                    match msg {
                        Message::Text(text) => {
                            self.healthy = true;
                            if let Some(ev) = self.deliver(text.as_bytes(), recv_ns) {
                                return Some(ev);
                            }
                        }
                        Message::Binary(bytes) => {
                            self.healthy = true;
                            if let Some(ev) = self.deliver(&bytes, recv_ns) {
                                return Some(ev);
                            }
                        }
                        // The pong is queued by tungstenite and flushed by this and every later read.
                        Message::Ping(_) => self.mapper.stats().inc(Counter::Pings),
                        Message::Pong(_) | Message::Frame(_) => {}
                        Message::Close(frame) => {
                            self.end(FeedError::Closed(describe_close(frame.as_ref())));
                            return None;
                        }
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    if mono_now_ns().saturating_sub(self.last_ns) > self.idle_ns {
                        self.end(FeedError::Idle(self.idle_timeout_ms));
                    }
                    return None;
                }
                Err(e) => {
                    self.end(e.into());
                    return None;
                }
            }
        }
    }

    /// Sleeps until the socket has bytes to read or a connection arrives, at most `timeout`.
    /// Returns at once if either is already the case.
    pub fn wait(&mut self, timeout: Duration) {
        match self.conn.as_mut() {
            Some(ws) => {
                let fd = tcp(ws).as_raw_fd();
                let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                let ts = libc::timespec {
                    tv_sec: timeout.as_secs() as libc::time_t,
                    tv_nsec: timeout.subsec_nanos() as libc::c_long,
                };
                // SAFETY: one valid pollfd for the duration of the call, a valid timespec, no
                // signal mask. An error (EINTR) only ends the wait early.
                unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
            }
            None => match self.arrivals.recv_timeout(timeout) {
                Ok(conn) => self.install(conn),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            },
        }
    }

    /// Sends a close frame (best effort, without waiting) and stops the connector thread.
    pub fn shutdown(mut self) {
        if let Some(ws) = self.conn.as_mut() {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
        self.conn = None;
        self.asks = None;
        if let Some(t) = self.connector.take() {
            let _ = t.join();
        }
        info!(stats = ?self.mapper.stats().snapshot(), "binance feed (hot thread) stopped");
    }

    #[inline]
    fn deliver(&mut self, bytes: &[u8], recv_ns: Nanos) -> Option<Event> {
        let ev = self.mapper.frame(bytes, recv_ns)?;
        self.mapper.stats().inc(Counter::Pushed);
        Some(ev)
    }

    fn install(&mut self, conn: Conn) {
        self.conn = Some(conn);
        self.last_ns = mono_now_ns();
        self.healthy = false;
        info!("binance feed connected; read on the hot thread");
    }

    /// Ends the current connection and asks the connector for a new one.
    fn end(&mut self, why: FeedError) {
        warn!(error = %why, "binance feed disconnected; reconnecting");
        self.conn = None;
        if let Some(asks) = &self.asks {
            let _ = asks.send(Ask::After { healthy: self.healthy });
        }
        self.healthy = false;
    }
}

/// The TCP socket under a connection.
fn tcp(ws: &mut Conn) -> &mut TcpStream {
    match ws.get_mut() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::Rustls(s) => &mut s.sock,
        _ => unreachable!("keel builds tungstenite with rustls only"),
    }
}

/// The connector thread: one connection per ask, after the backoff delay; exits when the hot
/// side's sender or receiver is gone.
fn connector(
    cfg: BinanceFeedConfig,
    stats: Arc<FeedStats>,
    asks: Receiver<Ask>,
    out: mpsc::SyncSender<Conn>,
) {
    let url = cfg.stream_url();
    let mut backoff = Backoff::new(cfg.backoff);
    let mut attempts: u64 = 0;
    while let Ok(ask) = asks.recv() {
        let mut delay = match ask {
            Ask::First => Duration::ZERO,
            Ask::After { healthy } => {
                if healthy {
                    backoff.reset();
                }
                backoff.next_delay()
            }
        };
        loop {
            // The delay is a wait on the asks: a dropped sender (shutdown) ends it at once.
            if !delay.is_zero() {
                match asks.recv_timeout(delay) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(_) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            if attempts > 0 {
                stats.inc(Counter::Reconnects);
            }
            attempts += 1;
            match connect(&url, cfg.connect_timeout_ms) {
                Ok(conn) => {
                    stats.inc(Counter::Connects);
                    info!(%url, "binance feed connected");
                    if out.send(conn).is_err() {
                        return;
                    }
                    break;
                }
                Err(error) => {
                    delay = backoff.next_delay();
                    warn!(%error, delay_ms = delay.as_millis() as u64, attempt = backoff.attempt(),
                        "binance feed cannot connect; retrying");
                }
            }
        }
    }
}

/// TCP, TLS (for `wss://`) and the websocket handshake, within `timeout_ms` in all; the socket is
/// non-blocking afterwards, with Nagle off.
fn connect(url: &str, timeout_ms: u64) -> Result<Conn, FeedError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(FeedError::ConnectTimeout(timeout_ms))
    };
    let request = url.into_client_request()?;
    let uri = request.uri();
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']).to_string();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("wss") { 443 } else { 80 });
    let io = |e: std::io::Error| FeedError::Connect { addr: format!("{host}:{port}"), source: e };
    let addrs: Vec<_> = (host.as_str(), port).to_socket_addrs().map_err(io)?.collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(io(e)),
        (None, None) => return Err(io(std::io::Error::new(ErrorKind::NotFound, "no address"))),
    };
    stream.set_nodelay(true).map_err(io)?;
    stream.set_read_timeout(Some(left()?)).map_err(io)?;
    stream.set_write_timeout(Some(left()?)).map_err(io)?;
    let (mut ws, _response) = tungstenite::client_tls_with_config(request, stream, Some(ws_limits()), None)
        .map_err(|e| match e {
        HandshakeError::Interrupted(_) => FeedError::ConnectTimeout(timeout_ms),
        HandshakeError::Failure(tungstenite::Error::Io(e))
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
        {
            FeedError::ConnectTimeout(timeout_ms)
        }
        HandshakeError::Failure(e) => e.into(),
    })?;
    let sock = tcp(&mut ws);
    sock.set_read_timeout(None).map_err(io)?;
    sock.set_write_timeout(None).map_err(io)?;
    sock.set_nonblocking(true).map_err(io)?;
    Ok(ws)
}
