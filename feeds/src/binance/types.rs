//! What the decoder returns: one [`Decoded`] value per frame, borrowing from the frame's bytes.
//!
//! Plain data, no parsing here, except [`Levels`], which keeps a depth side as its validated JSON
//! text and parses it lazily when iterated (see [`crate::binance::parse::next_level`]).

use std::fmt;

/// An exchange symbol as sent (`ETHUSDT`), borrowed from the frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Symbol<'a>(&'a [u8]);

impl<'a> Symbol<'a> {
    /// Wraps raw symbol bytes.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The symbol as text, when it is UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }
}

impl fmt::Debug for Symbol<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Display for Symbol<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

/// Best bid and ask (`<symbol>@bookTicker`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BookTicker<'a> {
    /// `s`.
    pub symbol: Symbol<'a>,
    /// `u`: order-book update id.
    pub update_id: u64,
    /// `b`: best bid price.
    pub bid: f64,
    /// `B`: best bid quantity.
    pub bid_qty: f64,
    /// `a`: best ask price.
    pub ask: f64,
    /// `A`: best ask quantity.
    pub ask_qty: f64,
    /// `E`: event time, ms since the Unix epoch; 0 when absent (spot).
    pub event_ms: u64,
    /// `T`: transaction time, ms since the Unix epoch; 0 when absent (spot).
    pub transact_ms: u64,
}

/// An aggregated trade (`<symbol>@aggTrade`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggTrade<'a> {
    /// `s`.
    pub symbol: Symbol<'a>,
    /// `a`: aggregate trade id.
    pub agg_id: u64,
    /// `p`: price.
    pub price: f64,
    /// `q`: quantity.
    pub qty: f64,
    /// `f`: first trade id; 0 when absent.
    pub first_trade_id: u64,
    /// `l`: last trade id; 0 when absent.
    pub last_trade_id: u64,
    /// `T`: trade time, ms since the Unix epoch.
    pub trade_ms: u64,
    /// `E`: event time, ms since the Unix epoch; 0 when absent.
    pub event_ms: u64,
    /// `m`: the buyer was the maker (the aggressor sold); false when absent.
    pub buyer_is_maker: bool,
}

/// The price levels of one side of a depth update, validated, borrowed from the frame.
///
/// Two `Levels` are equal when they hold the same levels, whatever their JSON spelling.
#[derive(Clone, Copy, Default)]
pub struct Levels<'a> {
    raw: &'a [u8],
    len: usize,
}

impl<'a> Levels<'a> {
    /// Levels over `raw`, a JSON array of `len` `[price, qty]` pairs that the decoder validated.
    #[inline]
    pub(crate) fn new(raw: &'a [u8], len: usize) -> Self {
        Self { raw, len }
    }

    /// Number of `[price, qty]` levels.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the side carries no level.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw JSON array.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The levels as `(price, qty)`, in frame order. A quantity of 0 removes the level.
    pub fn iter(&self) -> LevelIter<'a> {
        // Start after the array's `[`.
        LevelIter { raw: self.raw, pos: 1, left: self.len }
    }
}

impl PartialEq for Levels<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Levels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Levels<'a> {
    type Item = (f64, f64);
    type IntoIter = LevelIter<'a>;
    fn into_iter(self) -> LevelIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Levels`].
#[derive(Debug, Clone)]
pub struct LevelIter<'a> {
    raw: &'a [u8],
    pos: usize,
    left: usize,
}

impl Iterator for LevelIter<'_> {
    type Item = (f64, f64);

    fn next(&mut self) -> Option<(f64, f64)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated at decode time, so this cannot fail; stop quietly if it somehow does.
        let level = crate::binance::parse::next_level(self.raw, &mut self.pos);
        if level.is_none() {
            self.left = 0;
        }
        level
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// An order-book diff (`<symbol>@depth` / `@depth@100ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthUpdate<'a> {
    /// `s`.
    pub symbol: Symbol<'a>,
    /// `U`: first update id in the event.
    pub first_id: u64,
    /// `u`: last update id in the event.
    pub last_id: u64,
    /// `pu`: last update id of the previous event (futures); 0 when absent.
    pub prev_last_id: u64,
    /// `E`: event time, ms since the Unix epoch; 0 when absent.
    pub event_ms: u64,
    /// `T`: transaction time (futures); 0 when absent.
    pub transact_ms: u64,
    /// `b`: bid levels to update.
    pub bids: Levels<'a>,
    /// `a`: ask levels to update.
    pub asks: Levels<'a>,
}

/// A candlestick (`<symbol>@kline_<interval>`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kline<'a> {
    /// `s`.
    pub symbol: Symbol<'a>,
    /// `k.i`: interval, e.g. `1m`.
    pub interval: &'a [u8],
    /// `k.t`: open time, ms since the Unix epoch.
    pub open_ms: u64,
    /// `k.T`: close time, ms since the Unix epoch.
    pub close_ms: u64,
    /// `k.o`.
    pub open: f64,
    /// `k.h`.
    pub high: f64,
    /// `k.l`.
    pub low: f64,
    /// `k.c`: close (last price while the candle is open).
    pub close: f64,
    /// `k.v`: base-asset volume.
    pub volume: f64,
    /// `k.n`: number of trades; 0 when absent.
    pub trades: u64,
    /// `k.x`: the candle is final.
    pub is_closed: bool,
    /// `E`: event time, ms since the Unix epoch; 0 when absent.
    pub event_ms: u64,
}

/// One decoded frame, borrowing from the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoded<'a> {
    /// Best bid/ask.
    BookTicker(BookTicker<'a>),
    /// Aggregated trade.
    AggTrade(AggTrade<'a>),
    /// Order-book diff.
    DepthUpdate(DepthUpdate<'a>),
    /// Candlestick.
    Kline(Kline<'a>),
    /// Answer to a request sent on the socket (`SUBSCRIBE`, `LIST_SUBSCRIPTIONS`…).
    ControlResponse {
        /// `id`, when it is a non-negative integer.
        id: Option<u64>,
        /// The raw JSON of `error`, when the request failed.
        error: Option<&'a [u8]>,
    },
    /// A well-formed object of a kind this decoder does not interpret.
    Other {
        /// The envelope's `stream`, or empty.
        stream: &'a [u8],
        /// The payload's `e`, or empty.
        event: &'a [u8],
    },
}
