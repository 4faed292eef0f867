//! A loopback Binance `bookTicker` server whose mid prices are set by the caller: the exchange feed
//! for tests and devnets against a real chain (anvil), where prices must follow what the test does
//! to the pools rather than a simulated path.
//!
//! A driver task broadcasts one frame per symbol every `interval` to every connection through the
//! websocket core ([`crate::ws_server`]): the combined-stream format
//! (`/stream?streams=ethusdt@bookTicker/...`) or raw payloads (`/ws/<stream>`), subscription
//! filtering, pings answered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::ws_server::{self, BookTicker, Frame, Served, Tick, WsCounters};

/// Spread around the mid, basis points.
pub const SPREAD_BPS: f64 = 1.0;
/// Quantity quoted on each side.
const QUANTITY: f64 = 10.0;

/// A running quote server.
#[derive(Debug)]
pub struct QuoteServer {
    addr: SocketAddr,
    prices: Arc<RwLock<BTreeMap<String, f64>>>,
    cancel: CancellationToken,
}

impl QuoteServer {
    /// Binds 127.0.0.1 on a free port and serves `prices` (symbol → mid), one frame per symbol every
    /// `interval`, until dropped or shut down.
    pub async fn start(prices: &[(&str, f64)], interval: Duration) -> std::io::Result<Self> {
        Self::start_on(prices, interval, 0).await
    }

    /// [`QuoteServer::start`] on a given port of 127.0.0.1 (0: a free port).
    pub async fn start_on(prices: &[(&str, f64)], interval: Duration, port: u16) -> std::io::Result<Self> {
        let (listener, addr) = ws_server::bind(port).await?;
        let prices = Arc::new(RwLock::new(prices.iter().map(|(s, p)| (s.to_uppercase(), *p)).collect()));
        let cancel = CancellationToken::new();
        let (tx, _) = broadcast::channel(ws_server::BROADCAST_CAPACITY);
        tokio::spawn(drive(Arc::clone(&prices), tx.clone(), interval, cancel.clone()));
        let counters = Arc::new(WsCounters::default());
        let c = cancel.clone();
        tokio::spawn(ws_server::serve(listener, Served::Any, cancel.clone(), move |ws, sub| {
            let dropped = c.child_token();
            ws_server::broadcast_connection(
                ws,
                sub,
                Served::Any,
                tx.subscribe(),
                Arc::clone(&counters),
                c.clone(),
                dropped,
            )
        }));
        Ok(Self { addr, prices, cancel })
    }

    /// Base URL for a Binance feed config: `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Sets (or adds) a symbol's mid price; the next frames carry it.
    pub fn set_price(&self, symbol: &str, mid: f64) {
        self.prices.write().insert(symbol.to_uppercase(), mid);
    }

    /// Stops serving.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

impl Drop for QuoteServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Every `interval`, one frame per symbol at its current mid, until `cancel`.
async fn drive(
    prices: Arc<RwLock<BTreeMap<String, f64>>>,
    tx: broadcast::Sender<Tick>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    let mut update_id: u64 = 1;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let frames: Vec<Frame> = prices
            .read()
            .iter()
            .map(|(symbol, &mid)| {
                update_id += 1;
                let half = mid * SPREAD_BPS / 2e4;
                let quote = BookTicker {
                    u: update_id,
                    symbol,
                    bid: mid - half,
                    bid_qty: QUANTITY,
                    ask: mid + half,
                    ask_qty: QUANTITY,
                };
                Frame {
                    stream: ws_server::book_ticker_stream(symbol),
                    payload: ws_server::book_ticker_payload(&quote),
                }
            })
            .collect();
        // No receivers is fine: nobody is connected.
        let _ = tx.send(Arc::new(frames));
    }
}
