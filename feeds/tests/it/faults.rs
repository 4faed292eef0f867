//! Fault injection on the Binance feed: a loopback server (`127.0.0.1:0`) that streams bookTicker
//! frames and drops the connection 100 times. The feed must reconnect every time, deliver no quote
//! while it is disconnected, and the engine fed its events must not fire on the price that went
//! stale during a disconnection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use futures_util::{SinkExt, StreamExt};
use keel_engine::clock::mono_now_ns;
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::{Balance, Outcome, OutcomeStatus, Quote};
use keel_engine::{Engine, Event, ManualClock, Nanos, PortfolioId, Queue, RebalanceIntent, TokenId};
use keel_feeds::backoff::BackoffConfig;
use keel_feeds::binance::InstrumentTable;
use keel_feeds::stats::FeedStats;
use keel_feeds::ws::{BinanceFeedConfig, run_binance_feed};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Upper bound on the test.
const LIMIT: Duration = Duration::from_secs(25);
/// Connections dropped by the server.
const DROPS: u64 = 100;
/// bookTicker frames per connection.
const FRAMES_PER_CONNECTION: u64 = 5;
/// The server waits this long after a drop before it completes the next websocket handshake, so
/// every disconnection lasts longer than the engine's staleness bound.
const OUTAGE: Duration = Duration::from_millis(30);
/// The engine's `stale_after_ms` (below [`OUTAGE`]).
const STALE_AFTER_MS: u64 = 20;

const WETH: TokenId = TokenId(0);
const USDC: TokenId = TokenId(1);
const P0: PortfolioId = PortfolioId(0);

/// Connection `k`'s `j`-th frame: ETHUSDT at a mid of 2000, update id `k * 1000 + j`.
fn frame(k: u64, j: u64) -> String {
    format!(
        r#"{{"stream":"ethusdt@bookTicker","data":{{"u":{},"s":"ETHUSDT","b":"1999.5","B":"3.1","a":"2000.5","A":"2.7"}}}}"#,
        k * 1_000 + j
    )
}

/// Server-side times of one connection: websocket handshake done, connection dropped.
#[derive(Debug, Clone, Copy)]
struct Window {
    open_ns: Nanos,
    drop_ns: Nanos,
}

/// Serves `DROPS + 1` connections: each gets its frames; the first `DROPS` are dropped once the
/// feed has read every frame (abruptly for even `k`, with a close frame for odd `k`); the last
/// stays open.
async fn serve(listener: TcpListener, stats: Arc<FeedStats>, windows: Arc<Mutex<Vec<Window>>>) {
    for k in 0..=DROPS {
        if k > 0 {
            tokio::time::sleep(OUTAGE).await;
        }
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("websocket handshake");
        let open_ns = mono_now_ns();
        for j in 0..FRAMES_PER_CONNECTION {
            ws.feed(Message::text(frame(k, j))).await.expect("send");
        }
        ws.flush().await.expect("flush");
        // Wait until the feed has read all of this connection's frames.
        let want = (k + 1) * FRAMES_PER_CONNECTION;
        let deadline = mono_now_ns() + 10_000_000_000;
        while stats.snapshot().frames < want {
            assert!(mono_now_ns() < deadline, "feed read only {:?} of {want} frames", stats.snapshot());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if k == DROPS {
            windows.lock().expect("lock").push(Window { open_ns, drop_ns: u64::MAX });
            // Stay up until the test stops the server.
            while let Some(Ok(_)) = ws.next().await {}
            return;
        }
        let drop_ns = mono_now_ns();
        if k % 2 == 1 {
            let _ = ws.close(None).await;
        }
        drop(ws);
        windows.lock().expect("lock").push(Window { open_ns, drop_ns });
    }
}

/// A tiny engine: one 50/50 WETH/USDC portfolio with a 5-point band, WETH priced by ETHUSDT.
fn engine(clock: Arc<ManualClock>) -> Engine {
    let tokens = [
        TokenConfig {
            symbol: "WETH".into(),
            address: Address::repeat_byte(1),
            decimals: 18,
            price: PriceSource::Instrument { symbol: "ETHUSDT".into() },
        },
        TokenConfig {
            symbol: "USDC".into(),
            address: Address::repeat_byte(2),
            decimals: 6,
            price: PriceSource::Fixed { fixed: 1.0 },
        },
    ];
    let portfolio = PortfolioConfig {
        name: "core".into(),
        account: Address::repeat_byte(0xaa),
        targets: [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into_iter().collect(),
        triggers: vec![TriggerConfig::Drift { abs_band: Some(0.05), rel_band: None }],
        mode: PlanMode::ToTarget,
        cooldown_secs: 0.001,
        min_trade_notional: 10.0,
        cost: Default::default(),
    };
    let cfg = EngineConfig { stale_after_ms: STALE_AFTER_MS, ..EngineConfig::default() };
    Engine::new(cfg, &tokens, &[portfolio], Box::new(clock)).expect("engine config")
}

fn usdc(whole: u64, block: u64) -> Event {
    Event::Balance(Balance {
        portfolio: P0,
        token: USDC,
        amount: U256::from(whole * 1_000_000),
        block,
        recv_ns: 0,
    })
}

#[tokio::test]
async fn feed_reconnects_after_100_drops_and_stale_prices_never_fire() {
    tokio::time::timeout(LIMIT, run()).await.expect("fault test finished in time");
}

async fn run() {
    let clock = Arc::new(ManualClock::new(0));
    let mut engine = engine(Arc::clone(&clock));
    let table = Arc::new(InstrumentTable::new(engine.instrument_symbols().iter()).expect("table"));

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stats = Arc::new(FeedStats::new());
    let windows = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(listener, Arc::clone(&stats), Arc::clone(&windows)));

    let mut cfg = BinanceFeedConfig::new(format!("ws://{addr}"), ["ETHUSDT"]);
    cfg.backoff = BackoffConfig { base_ms: 1, max_ms: 5 };
    cfg.connect_timeout_ms = 2_000;
    cfg.idle_timeout_ms = 5_000;
    let queue = Arc::new(Queue::new(4_096));
    let cancel = CancellationToken::new();
    let feed = tokio::spawn(run_binance_feed(
        cfg,
        Arc::clone(&table),
        Arc::clone(&queue),
        Arc::clone(&stats),
        cancel.clone(),
    ));

    let total = (DROPS + 1) * FRAMES_PER_CONNECTION;
    while stats.snapshot().frames < total || windows.lock().expect("lock").len() < (DROPS + 1) as usize {
        assert!(!server.is_finished(), "server stopped early: {:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    let res =
        tokio::time::timeout(Duration::from_secs(5), feed).await.expect("feed stops").expect("no panic");
    assert!(res.is_ok(), "{res:?}");
    server.abort();
    let _ = server.await;

    // The feed reconnected after every drop.
    let s = stats.snapshot();
    assert!(s.reconnects >= DROPS, "{s:?}");
    assert_eq!(s.connects, DROPS + 1, "{s:?}");
    assert_eq!((s.book_ticker, s.pushed, s.malformed, s.queue_full), (total, total, 0, 0), "{s:?}");

    // Every quote arrived inside its own connection's window: none while disconnected.
    let windows = windows.lock().expect("lock").clone();
    let quotes: Vec<Quote> = std::iter::from_fn(|| queue.try_pop())
        .map(|e| match e {
            Event::Quote(q) => q,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(quotes.len() as u64, total);
    for q in &quotes {
        let w = windows[(q.update_id / 1_000) as usize];
        assert!(
            w.open_ns <= q.recv_ns && q.recv_ns <= w.drop_ns,
            "quote {} received at {} outside its connection {w:?}",
            q.update_id,
            q.recv_ns
        );
    }
    for pair in windows.windows(2) {
        let outage = pair[1].open_ns - pair[0].drop_ns;
        assert!(outage > STALE_AFTER_MS * 1_000_000, "outage of {outage} ns is not past the staleness bound");
    }

    // The engine, fed these quotes on their receive times: in each outage, once the last price is
    // older than stale_after_ms, a balance change pushes the portfolio out of its band and a timer
    // evaluates it: no intent (stale). The first quote after the reconnect refreshes the price and
    // the same state fires (so it was the staleness that held it).
    let mut out: Vec<RebalanceIntent> = Vec::new();
    let mut block = 1;
    let weth = U256::from(10u64).pow(U256::from(18u64));
    engine.process(
        &Event::Balance(Balance { portfolio: P0, token: WETH, amount: weth, block, recv_ns: 0 }),
        &mut out,
    );
    engine.process(&usdc(2_000, block), &mut out);
    let stale_ns = STALE_AFTER_MS * 1_000_000;
    let mut last_recv: Option<Nanos> = None;
    let mut gaps = 0;
    for q in &quotes {
        let first_of_connection = q.update_id % 1_000 == 0;
        if first_of_connection && let Some(last) = last_recv {
            gaps += 1;
            let stale_at = last + stale_ns + 1;
            assert!(stale_at < q.recv_ns, "the next quote came before the price went stale");
            clock.set(stale_at);
            block += 1;
            engine.process(&usdc(1_000, block), &mut out);
            let suppressed = engine.stats().suppressed.stale_price;
            engine.process(&Event::Timer { now_ns: stale_at }, &mut out);
            assert!(out.is_empty(), "fired on a stale price during outage {gaps}: {out:?}");
            assert_eq!(engine.stats().suppressed.stale_price, suppressed + 1, "outage {gaps}");
        }
        clock.set(q.recv_ns);
        engine.process(&Event::Quote(*q), &mut out);
        if first_of_connection && last_recv.is_some() {
            assert_eq!(out.len(), 1, "a fresh quote after outage {gaps} must fire");
            let intent = out.pop().expect("intent");
            engine.process(
                &Event::Outcome(Outcome {
                    intent: intent.id,
                    portfolio: P0,
                    status: OutcomeStatus::Rejected,
                    at_ns: q.recv_ns,
                }),
                &mut out,
            );
            block += 1;
            engine.process(&usdc(2_000, block), &mut out);
        }
        assert!(out.is_empty(), "unexpected intent after quote {}: {out:?}", q.update_id);
        last_recv = Some(q.recv_ns);
    }
    assert_eq!(gaps, DROPS);
    assert_eq!(engine.stats().suppressed.stale_price, DROPS);
    assert_eq!(engine.stats().intents_emitted, DROPS);
}

/// A message above `MAX_MESSAGE_BYTES` ends the connection, which reconnects, instead of being
/// buffered whole (tungstenite alone would take up to 64 MiB).
#[tokio::test]
async fn a_message_above_the_size_cap_drops_the_connection_and_the_feed_reconnects() {
    tokio::time::timeout(LIMIT, oversized()).await.expect("finished in time");
}

async fn oversized() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("websocket handshake");
        ws.send(Message::text(frame(0, 0))).await.expect("send");
        let pad = "x".repeat(keel_feeds::ws::MAX_MESSAGE_BYTES + 1);
        let _ = ws.send(Message::text(format!(r#"{{"stream":"ethusdt@bookTicker","pad":"{pad}"}}"#))).await;
        let (tcp, _) = listener.accept().await.expect("the feed reconnects");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("websocket handshake");
        ws.send(Message::text(frame(1, 0))).await.expect("send");
        while let Some(Ok(_)) = ws.next().await {}
    });
    let stats = Arc::new(FeedStats::new());
    let table = Arc::new(InstrumentTable::new(["ETHUSDT"]).expect("table"));
    let mut cfg = BinanceFeedConfig::new(format!("ws://{addr}"), ["ETHUSDT"]);
    cfg.backoff = BackoffConfig { base_ms: 1, max_ms: 5 };
    let queue = Arc::new(Queue::new(64));
    let cancel = CancellationToken::new();
    let feed =
        tokio::spawn(run_binance_feed(cfg, table, Arc::clone(&queue), Arc::clone(&stats), cancel.clone()));
    while stats.snapshot().book_ticker < 2 {
        assert!(!server.is_finished(), "server stopped early: {:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = stats.snapshot();
    assert_eq!((s.connects, s.book_ticker), (2, 2), "the oversized message was not delivered: {s:?}");
    assert!(s.reconnects >= 1, "{s:?}");
    cancel.cancel();
    let res =
        tokio::time::timeout(Duration::from_secs(5), feed).await.expect("feed stops").expect("no panic");
    assert!(res.is_ok(), "{res:?}");
    server.abort();
    let _ = server.await;
}
