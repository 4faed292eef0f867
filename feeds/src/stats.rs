//! Feed counters: atomic, written by the feed task, read by anyone through [`FeedStats::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter of [`FeedStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Counter {
    /// Data frames read from the socket (text or binary).
    Frames,
    /// Frames decoded as `bookTicker`.
    BookTicker,
    /// Frames decoded as `aggTrade`.
    AggTrade,
    /// Frames decoded as `depthUpdate`.
    DepthUpdate,
    /// Frames decoded as `kline`.
    Kline,
    /// Control responses (`{"result":…,"id":…}`).
    Control,
    /// Well-formed frames of another kind.
    Other,
    /// Frames that failed to decode.
    Malformed,
    /// Quotes or trades for a symbol not in the instrument table (skipped).
    UnknownSymbol,
    /// Events pushed into the engine queue.
    Pushed,
    /// Events dropped because the engine queue was full.
    QueueFull,
    /// Websocket handshakes that succeeded.
    Connects,
    /// Connection attempts made after a previous connection or attempt ended.
    Reconnects,
    /// Pings received from the server (each answered with a pong).
    Pings,
}

impl Counter {
    /// The counter of a decoded frame's kind.
    pub fn of_decoded(decoded: &crate::binance::Decoded<'_>) -> Self {
        use crate::binance::Decoded;
        match decoded {
            Decoded::BookTicker(_) => Counter::BookTicker,
            Decoded::AggTrade(_) => Counter::AggTrade,
            Decoded::DepthUpdate(_) => Counter::DepthUpdate,
            Decoded::Kline(_) => Counter::Kline,
            Decoded::ControlResponse { .. } => Counter::Control,
            Decoded::Other { .. } => Counter::Other,
        }
    }
}

const N_COUNTERS: usize = Counter::Pings as usize + 1;

/// Atomic counters of one feed. Cheap to bump (one relaxed `fetch_add`), safe to share in an `Arc`.
#[derive(Debug, Default)]
pub struct FeedStats {
    counters: [AtomicU64; N_COUNTERS],
}

/// A point-in-time copy of [`FeedStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedStatsSnapshot {
    /// Data frames read.
    pub frames: u64,
    /// `bookTicker` frames decoded.
    pub book_ticker: u64,
    /// `aggTrade` frames decoded.
    pub agg_trade: u64,
    /// `depthUpdate` frames decoded.
    pub depth_update: u64,
    /// `kline` frames decoded.
    pub kline: u64,
    /// Control responses decoded.
    pub control: u64,
    /// Other well-formed frames.
    pub other: u64,
    /// Frames that failed to decode.
    pub malformed: u64,
    /// Quotes/trades skipped for an unknown symbol.
    pub unknown_symbol: u64,
    /// Events pushed into the engine queue.
    pub pushed: u64,
    /// Events dropped on a full queue.
    pub queue_full: u64,
    /// Successful websocket handshakes.
    pub connects: u64,
    /// Connection attempts after the first.
    pub reconnects: u64,
    /// Pings received and answered.
    pub pings: u64,
}

impl FeedStats {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to `c`.
    #[inline]
    pub fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds `n` to `c`.
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The current value of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }

    /// A copy of every counter (each read individually; not one atomic cut).
    pub fn snapshot(&self) -> FeedStatsSnapshot {
        use Counter::*;
        FeedStatsSnapshot {
            frames: self.get(Frames),
            book_ticker: self.get(BookTicker),
            agg_trade: self.get(AggTrade),
            depth_update: self.get(DepthUpdate),
            kline: self.get(Kline),
            control: self.get(Control),
            other: self.get(Other),
            malformed: self.get(Malformed),
            unknown_symbol: self.get(UnknownSymbol),
            pushed: self.get(Pushed),
            queue_full: self.get(QueueFull),
            connects: self.get(Connects),
            reconnects: self.get(Reconnects),
            pings: self.get(Pings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_snapshots() {
        let s = FeedStats::new();
        s.inc(Counter::Frames);
        s.add(Counter::Frames, 2);
        s.inc(Counter::Pings);
        s.inc(Counter::QueueFull);
        let snap = s.snapshot();
        assert_eq!((snap.frames, snap.pings, snap.queue_full, snap.malformed), (3, 1, 1, 0));
        let json = serde_json::to_value(snap).unwrap();
        assert_eq!(json["frames"], 3);
        assert_eq!(json["pings"], 1);
    }
}
