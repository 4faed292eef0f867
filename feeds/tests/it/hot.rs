//! The exchange socket read on the calling thread ([`HotFeed`], inline mode) against a loopback
//! server (`127.0.0.1:0`) run on a tokio runtime of the test's own.
//!
//! Four connections, each ended a different way: a close frame, an abrupt drop, silence past the
//! idle timeout, and the test's own shutdown (which the server sees as a close frame). Every frame
//! is delivered once and in order, pings are answered with their payload, malformed frames and
//! unknown symbols are counted and read past, and the connector reconnects each time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use keel_engine::Event;
use keel_engine::clock::mono_now_ns;
use keel_feeds::backoff::BackoffConfig;
use keel_feeds::binance::InstrumentTable;
use keel_feeds::hot::HotFeed;
use keel_feeds::stats::FeedStats;
use keel_feeds::ws::BinanceFeedConfig;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound on each test.
const LIMIT: Duration = Duration::from_secs(20);
/// Quotes sent on each connection.
const QUOTES: u64 = 40;
/// The feed's idle timeout.
const IDLE_MS: u64 = 300;

/// Connection `k`'s `j`-th quote: ETHUSDT, update id `k * 1000 + j`.
fn quote(k: u64, j: u64) -> String {
    format!(
        r#"{{"stream":"ethusdt@bookTicker","data":{{"u":{},"s":"ETHUSDT","b":"1999.5","B":"3.1","a":"2000.5","A":"2.7"}}}}"#,
        k * 1_000 + j
    )
}

/// How the server ends connection `k`.
fn ending(k: u64) -> &'static str {
    ["close", "drop", "silence", "stay"][k as usize]
}

/// What the server saw: the pongs' payloads, and whether the last connection got a close frame.
#[derive(Debug, Default)]
struct Seen {
    pongs: Vec<Vec<u8>>,
    closed_by_client: bool,
}

async fn serve(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    for k in 0..4u64 {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("websocket handshake");
        let payload = format!("ping-{k}").into_bytes();
        ws.send(Message::Ping(payload.clone().into())).await.expect("ping");
        for j in 0..QUOTES {
            ws.feed(Message::text(quote(k, j))).await.expect("send");
            if j == 10 {
                ws.feed(Message::text(r#"{"stream":"ethusdt@bookTicker","data":{"u":1,"#))
                    .await
                    .expect("send");
            }
            if j == 20 {
                ws.feed(Message::text(
                    r#"{"stream":"xrpusdt@bookTicker","data":{"u":7,"s":"XRPUSDT","b":"1","B":"1","a":"2","A":"1"}}"#,
                ))
                .await
                .expect("send");
            }
        }
        ws.flush().await.expect("flush");
        // The pong comes back before anything else the client sends.
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => {
                assert_eq!(p.as_ref(), payload.as_slice(), "the pong carries the ping's payload");
                seen.lock().expect("lock").pongs.push(p.to_vec());
            }
            other => panic!("connection {k}: expected a pong, got {other:?}"),
        }
        match ending(k) {
            "close" => {
                let _ = ws.close(None).await;
            }
            "drop" => drop(ws),
            "silence" => {
                // Keep the socket open and say nothing: the feed must give up on it.
                let until = tokio::time::Instant::now() + Duration::from_millis(IDLE_MS * 4);
                while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, ws.next()).await {}
            }
            _ => {
                while let Some(msg) = ws.next().await {
                    if let Ok(Message::Close(_)) = msg {
                        seen.lock().expect("lock").closed_by_client = true;
                        break;
                    }
                }
                return;
            }
        }
    }
}

#[test]
fn the_hot_feed_reads_every_frame_in_order_answers_pings_and_reconnects_after_each_ending() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = rt.spawn(serve(listener, Arc::clone(&seen)));

    let mut cfg = BinanceFeedConfig::new(format!("ws://{addr}"), ["ETHUSDT"]);
    cfg.idle_timeout_ms = IDLE_MS;
    cfg.backoff = BackoffConfig { base_ms: 5, max_ms: 20 };
    let table = Arc::new(InstrumentTable::new(["ETHUSDT"].iter()).expect("table"));
    let stats = Arc::new(FeedStats::default());
    let mut feed = HotFeed::start(cfg, table, Arc::clone(&stats), None).expect("start");

    let start = Instant::now();
    let mut ids = Vec::new();
    let mut last_recv = 0;
    while ids.len() < (4 * QUOTES) as usize {
        assert!(start.elapsed() < LIMIT, "read {} quotes, stats {:?}", ids.len(), stats.snapshot());
        match feed.try_next() {
            Some(Event::Quote(q)) => {
                assert!(q.recv_ns >= last_recv && q.recv_ns <= mono_now_ns(), "stamped as read");
                last_recv = q.recv_ns;
                ids.push(q.update_id);
            }
            Some(other) => panic!("unexpected event {other:?}"),
            None => feed.wait(Duration::from_millis(1)),
        }
    }
    let want: Vec<u64> = (0..4).flat_map(|k| (0..QUOTES).map(move |j| k * 1_000 + j)).collect();
    assert_eq!(ids, want, "every quote once, in order, across four connections");
    // The last connection's pong is flushed by a read after the ping: keep reading until the
    // server has it.
    while seen.lock().unwrap().pongs.len() < 4 {
        assert!(start.elapsed() < LIMIT, "pongs: {:?}", seen.lock().unwrap().pongs);
        assert!(feed.try_next().is_none());
        feed.wait(Duration::from_millis(1));
    }
    assert!(feed.is_connected());
    feed.shutdown();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), server).await })
        .expect("server ends")
        .expect("server task");
    assert!(seen.lock().unwrap().closed_by_client, "shutdown sends a close frame");

    let s = stats.snapshot();
    assert_eq!((s.connects, s.reconnects), (4, 3), "{s:?}");
    assert_eq!((s.pings, s.malformed, s.unknown_symbol), (4, 4, 4), "{s:?}");
    assert_eq!((s.book_ticker, s.pushed, s.queue_full), (4 * QUOTES + 4, 4 * QUOTES, 0), "{s:?}");
    assert_eq!(s.frames, 4 * (QUOTES + 2), "{s:?}");
}

#[test]
fn a_server_that_is_not_there_is_retried_with_backoff_and_shutdown_is_prompt() {
    // A port that was free a moment ago: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = BinanceFeedConfig::new(format!("ws://{addr}"), ["ETHUSDT"]);
    cfg.backoff = BackoffConfig { base_ms: 5, max_ms: 20 };
    let table = Arc::new(InstrumentTable::new(["ETHUSDT"].iter()).expect("table"));
    let stats = Arc::new(FeedStats::default());
    let mut feed = HotFeed::start(cfg, table, Arc::clone(&stats), None).expect("start");
    let start = Instant::now();
    while stats.snapshot().reconnects < 3 {
        assert!(start.elapsed() < LIMIT, "{:?}", stats.snapshot());
        assert!(feed.try_next().is_none());
        feed.wait(Duration::from_millis(5));
    }
    assert!(!feed.is_connected());
    assert_eq!(stats.snapshot().connects, 0);
    let stopping = Instant::now();
    feed.shutdown();
    assert!(stopping.elapsed() < Duration::from_secs(2), "shutdown waited {:?}", stopping.elapsed());
}

#[test]
fn an_invalid_config_is_refused_naming_the_field() {
    let cfg = BinanceFeedConfig::new("http://127.0.0.1:1", ["ETHUSDT"]);
    let table = Arc::new(InstrumentTable::new(["ETHUSDT"].iter()).expect("table"));
    let err = HotFeed::start(cfg, table, Arc::new(FeedStats::default()), None).unwrap_err();
    assert!(err.to_string().contains("url"), "{err}");
}
