//! The websocket client against a loopback server (`127.0.0.1:0`) that replays captured frames.
//! Every test is bounded by [`LIMIT`] and stops the feed and the server it started.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_engine::{Event, Queue};
use keel_feeds::backoff::BackoffConfig;
use keel_feeds::binance::InstrumentTable;
use keel_feeds::stats::{FeedStats, FeedStatsSnapshot};
use keel_feeds::ws::{BinanceFeedConfig, FeedError, StreamKind, run_binance_feed};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_util::sync::CancellationToken;

use crate::support::{Capture, capture};

/// Upper bound on any one test.
const LIMIT: Duration = Duration::from_secs(20);

type Ws = WebSocketStream<TcpStream>;

/// Accepts one websocket connection; records the request path.
// The handshake callback's error type is tungstenite's (a whole HTTP response).
#[allow(clippy::result_large_err)]
async fn accept(listener: &TcpListener, paths: &Mutex<Vec<String>>) -> Ws {
    let (tcp, _) = listener.accept().await.expect("accept");
    tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
        paths.lock().expect("lock").push(req.uri().to_string());
        Ok(resp)
    })
    .await
    .expect("websocket handshake")
}

/// Reads until the client closes or the connection ends.
async fn drain(ws: &mut Ws) {
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            break;
        }
    }
}

async fn send_frames(ws: &mut Ws, frames: &[Vec<u8>]) {
    for f in frames {
        let text = String::from_utf8(f.clone()).expect("utf-8 frame");
        ws.feed(Message::text(text)).await.expect("send");
    }
    ws.flush().await.expect("flush");
}

/// A loopback server running `script` on its listener.
struct Server {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start<F, Fut>(script: F) -> Self
    where
        F: FnOnce(TcpListener, Arc<Mutex<Vec<String>>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let paths = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(script(listener, Arc::clone(&paths)));
        Self { addr, paths, task }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A running feed.
struct Feed {
    table: Arc<InstrumentTable>,
    queue: Arc<Queue<Event>>,
    stats: Arc<FeedStats>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), FeedError>>,
}

impl Feed {
    fn start(cfg: BinanceFeedConfig, queue_capacity: usize) -> Self {
        let table = Arc::new(InstrumentTable::new(&cfg.symbols).expect("table"));
        let queue = Arc::new(Queue::new(queue_capacity));
        let stats = Arc::new(FeedStats::new());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_binance_feed(
            cfg,
            Arc::clone(&table),
            Arc::clone(&queue),
            Arc::clone(&stats),
            cancel.clone(),
        ));
        Self { table, queue, stats, cancel, task }
    }

    /// Waits until `cond` holds on the stats; false on timeout.
    async fn wait(&self, what: &str, cond: impl Fn(&FeedStatsSnapshot) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.stats.snapshot();
            if cond(&s) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {s:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn drain_events(&self) -> Vec<Event> {
        std::iter::from_fn(|| self.queue.try_pop()).collect()
    }

    /// Cancels the feed and checks that it ends with `Ok(())`.
    async fn stop(self) -> FeedStatsSnapshot {
        self.cancel.cancel();
        let res = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("feed stops promptly after cancel")
            .expect("feed task did not panic");
        assert!(res.is_ok(), "feed returned {res:?}");
        self.stats.snapshot()
    }
}

fn cfg(server: &Server, cap: &Capture) -> BinanceFeedConfig {
    let mut cfg = BinanceFeedConfig::new(server.url(), cap.symbols());
    cfg.streams = vec![StreamKind::BookTicker, StreamKind::AggTrade];
    cfg.backoff = BackoffConfig { base_ms: 20, max_ms: 200 };
    cfg.connect_timeout_ms = 2_000;
    cfg.idle_timeout_ms = 5_000;
    cfg
}

fn count(events: &[Event]) -> (usize, usize) {
    let quotes = events.iter().filter(|e| matches!(e, Event::Quote(_))).count();
    let trades = events.iter().filter(|e| matches!(e, Event::Trade(_))).count();
    (quotes, trades)
}

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(LIMIT, test).await.expect("test finished in time");
}

#[tokio::test]
async fn replayed_capture_becomes_quotes_and_trades() {
    bounded(async {
        let cap = capture("BINANCE_FUTURES.ws.1.0");
        let frames = cap.frames.clone();
        let server = Server::start(|listener, paths| async move {
            let mut ws = accept(&listener, &paths).await;
            send_frames(&mut ws, &frames).await;
            drain(&mut ws).await;
        })
        .await;
        let cfg = cfg(&server, cap);
        let want_path = cfg.stream_url().trim_start_matches(&server.url()).to_string();
        let feed = Feed::start(cfg, 4_096);
        let n = cap.frames.len() as u64;
        feed.wait("all frames", |s| s.frames == n).await;

        let events = feed.drain_events();
        let (quotes, trades) = count(&events);
        assert_eq!(quotes, cap.frames_of("bookTicker").len());
        assert_eq!(trades, cap.frames_of("aggTrade").len());
        // Receive stamps are monotonic; instruments come from the table.
        let stamps: Vec<u64> = events.iter().map(Event::time_ns).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
        for e in &events {
            if let Event::Quote(q) = e {
                assert!(feed.table.symbol(q.instrument).is_some());
                assert!(q.bid > 0.0 && q.ask >= q.bid && q.exchange_ms > 0);
            }
        }

        let s = feed.stop().await;
        assert_eq!(s.book_ticker as usize, quotes);
        assert_eq!(s.agg_trade as usize, trades);
        assert_eq!(s.depth_update as usize, cap.frames_of("depth@100ms").len());
        assert_eq!(s.kline as usize, cap.frames_of("kline_1m").len());
        assert_eq!((s.malformed, s.unknown_symbol, s.queue_full), (0, 0, 0));
        assert_eq!(s.pushed as usize, quotes + trades);
        assert_eq!((s.connects, s.reconnects), (1, 0));
        assert_eq!(*server.paths.lock().expect("lock"), [want_path]);
        assert!(server.paths.lock().expect("lock")[0].starts_with("/stream?streams=sushiusdt@bookTicker/"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn reconnects_after_close_and_drop_and_continues() {
    bounded(async {
        let cap = capture("BINANCE.ws.1.0");
        let frames = cap.frames.clone();
        let third = frames.len() / 3;
        let server = Server::start(|listener, paths| async move {
            // 1: a third of the frames, then a clean close.
            let mut ws = accept(&listener, &paths).await;
            send_frames(&mut ws, &frames[..third]).await;
            ws.close(None).await.expect("close");
            drain(&mut ws).await;
            // 2: the next third, then the TCP connection just drops.
            let mut ws = accept(&listener, &paths).await;
            send_frames(&mut ws, &frames[third..2 * third]).await;
            drop(ws);
            // 3: the rest, then stay up.
            let mut ws = accept(&listener, &paths).await;
            send_frames(&mut ws, &frames[2 * third..]).await;
            drain(&mut ws).await;
        })
        .await;
        let feed = Feed::start(cfg(&server, cap), 4_096);
        let n = cap.frames.len() as u64;
        feed.wait("all frames over three connections", |s| s.frames == n).await;
        let (quotes, trades) = count(&feed.drain_events());
        assert_eq!(quotes, cap.frames_of("bookTicker").len());
        assert_eq!(trades, cap.frames_of("aggTrade").len());
        let s = feed.stop().await;
        assert_eq!(s.connects, 3);
        assert!(s.reconnects >= 2, "{s:?}");
        assert_eq!(server.paths.lock().expect("lock").len(), 3);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn answers_ping_with_pong() {
    bounded(async {
        let cap = capture("BINANCE_US.ws.1.0");
        let quote = cap.frames_of("bookTicker")[0].to_vec();
        let (pong_tx, pong_rx) = tokio::sync::oneshot::channel();
        let server = Server::start(|listener, paths| async move {
            let mut ws = accept(&listener, &paths).await;
            ws.send(Message::Ping(b"keel-ping"[..].into())).await.expect("ping");
            // The client must answer without any further frame from us.
            let pong = loop {
                match ws.next().await {
                    Some(Ok(Message::Pong(p))) => break p,
                    Some(Ok(_)) => {}
                    other => panic!("no pong: {other:?}"),
                }
            };
            let _ = pong_tx.send(pong.to_vec());
            send_frames(&mut ws, &[quote]).await;
            drain(&mut ws).await;
        })
        .await;
        let feed = Feed::start(cfg(&server, cap), 16);
        let pong =
            tokio::time::timeout(Duration::from_secs(5), pong_rx).await.expect("pong in time").expect("pong");
        assert_eq!(pong, b"keel-ping");
        feed.wait("the quote after the pong", |s| s.book_ticker == 1).await;
        assert_eq!(count(&feed.drain_events()), (1, 0));
        let s = feed.stop().await;
        assert_eq!((s.pings, s.connects, s.reconnects), (1, 1, 0));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_frames_are_counted_and_skipped() {
    bounded(async {
        let cap = capture("BINANCE_FUTURES.ws.1.0");
        let good = cap.frames_of("bookTicker")[0].to_vec();
        let truncated = good[..good.len() / 2].to_vec();
        let server = Server::start(move |listener, paths| async move {
            let mut ws = accept(&listener, &paths).await;
            for text in [
                "",
                "garbage",
                "{",
                "[1,2,3]",
                r#"{"stream":"x@bookTicker","data":{"e":"bookTicker","u":"1","s":"SUSHIUSDT","b":"1","B":"1","a":"1","A":"1"}}"#,
                r#"{"stream":"x@bookTicker","data":{"e":"bookTicker","u":1,"s":"SUSHIUSDT","b":"x","B":"1","a":"1","A":"1"}}"#,
                std::str::from_utf8(&truncated).expect("utf-8"),
            ] {
                ws.feed(Message::text(text)).await.expect("send");
            }
            ws.feed(Message::binary(vec![0xff, 0xfe, 0x00, b'{'])).await.expect("send");
            // Well-formed: a control response, an unknown symbol, and one good quote (as binary).
            ws.feed(Message::text(r#"{"result":null,"id":1}"#)).await.expect("send");
            ws.feed(Message::text(r#"{"u":1,"s":"DOGEUSDT","b":"1","B":"1","a":"2","A":"1"}"#)).await.expect("send");
            ws.feed(Message::binary(good)).await.expect("send");
            ws.flush().await.expect("flush");
            drain(&mut ws).await;
        })
        .await;
        let feed = Feed::start(cfg(&server, cap), 16);
        feed.wait("all 11 frames", |s| s.frames == 11).await;
        assert_eq!(count(&feed.drain_events()), (1, 0));
        let s = feed.stop().await;
        assert_eq!(s.malformed, 8, "{s:?}");
        assert_eq!((s.control, s.unknown_symbol, s.book_ticker, s.pushed), (1, 1, 2, 1));
        assert_eq!((s.connects, s.reconnects), (1, 0), "bad frames do not drop the connection");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn full_queue_drops_and_counts() {
    bounded(async {
        let cap = capture("BINANCE_FUTURES.ws.1.0");
        let quotes: Vec<Vec<u8>> = cap.frames_of("bookTicker").iter().take(10).map(|f| f.to_vec()).collect();
        let server = Server::start(|listener, paths| async move {
            let mut ws = accept(&listener, &paths).await;
            send_frames(&mut ws, &quotes).await;
            drain(&mut ws).await;
        })
        .await;
        let feed = Feed::start(cfg(&server, cap), 4);
        feed.wait("10 frames", |s| s.frames == 10).await;
        assert_eq!(count(&feed.drain_events()), (4, 0));
        let s = feed.stop().await;
        assert_eq!((s.pushed, s.queue_full), (4, 6));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn idle_connection_is_replaced() {
    bounded(async {
        let cap = capture("BINANCE.ws.1.0");
        let server = Server::start(|listener, paths| async move {
            // Accept connections and send nothing; keep each open.
            let mut held = Vec::new();
            loop {
                held.push(accept(&listener, &paths).await);
            }
        })
        .await;
        let mut cfg = cfg(&server, cap);
        cfg.idle_timeout_ms = 150;
        let feed = Feed::start(cfg, 16);
        feed.wait("a reconnect after silence", |s| s.connects >= 2 && s.reconnects >= 1).await;
        let s = feed.stop().await;
        assert_eq!(s.frames, 0);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_stops_a_feed_that_cannot_connect() {
    bounded(async {
        // A port nobody listens on.
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        let mut cfg = BinanceFeedConfig::new(format!("ws://{addr}"), ["ETHUSDT"]);
        cfg.backoff = BackoffConfig { base_ms: 10, max_ms: 60_000 };
        let feed = Feed::start(cfg, 16);
        feed.wait("a few failed attempts", |s| s.reconnects >= 3).await;
        let s = feed.stop().await;
        assert_eq!(s.connects, 0);
    })
    .await;
}

#[tokio::test]
async fn invalid_config_is_an_error_at_once() {
    let bad = BinanceFeedConfig::new("http://127.0.0.1:1", ["ETHUSDT"]);
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        run_binance_feed(
            bad,
            Arc::new(InstrumentTable::new(["ETHUSDT"]).expect("table")),
            Arc::new(Queue::new(1)),
            Arc::new(FeedStats::new()),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("returns at once");
    assert!(matches!(res, Err(FeedError::Config(ref m)) if m.contains("url")), "{res:?}");
}
