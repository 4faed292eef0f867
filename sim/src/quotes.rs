//! A loopback Binance `bookTicker` server whose mid prices are set by the caller: the exchange feed
//! for tests and devnets against a real chain (anvil), where prices must follow what the test does
//! to the pools rather than a simulated path.
//!
//! It speaks the exact combined-stream format (`/stream?streams=ethusdt@bookTicker/...`), sends one
//! frame per symbol every `interval`, and answers pings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Spread around the mid, basis points.
pub const SPREAD_BPS: f64 = 1.0;

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
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let prices = Arc::new(RwLock::new(prices.iter().map(|(s, p)| (s.to_uppercase(), *p)).collect()));
        let cancel = CancellationToken::new();
        let (p, c) = (Arc::clone(&prices), cancel.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = c.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (p, c) = (Arc::clone(&p), c.clone());
                        tokio::spawn(async move {
                            if let Err(e) = serve(stream, p, interval, c).await {
                                tracing::debug!(error = %e, "quote connection ended");
                            }
                        });
                    }
                }
            }
        });
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

async fn serve(
    stream: tokio::net::TcpStream,
    prices: Arc<RwLock<BTreeMap<String, f64>>>,
    interval: Duration,
    cancel: CancellationToken,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (mut tx, mut rx) = ws.split();
    let mut tick = tokio::time::interval(interval);
    let mut update_id: u64 = 1;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            msg = rx.next() => match msg {
                Some(Ok(Message::Ping(p))) => tx.send(Message::Pong(p)).await?,
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                let snapshot: Vec<(String, f64)> = prices.read().iter().map(|(s, p)| (s.clone(), *p)).collect();
                for (symbol, mid) in snapshot {
                    update_id += 1;
                    let half = mid * SPREAD_BPS / 2e4;
                    let frame = format!(
                        r#"{{"stream":"{}@bookTicker","data":{{"u":{update_id},"s":"{symbol}","b":"{:.8}","B":"10.00000000","a":"{:.8}","A":"10.00000000"}}}}"#,
                        symbol.to_lowercase(),
                        mid - half,
                        mid + half,
                    );
                    tx.send(Message::Text(frame.into())).await?;
                }
            }
        }
    }
}
