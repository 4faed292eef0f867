//! **Hot path**: one Binance websocket frame (`&[u8]`) to a borrowed [`Decoded`] value.
//!
//! A hand-written scanner over the bytes: no allocation, no copy, no `unsafe`. Every input returns
//! `Ok` or `Err`; nesting is bounded by [`MAX_DEPTH`], so hostile input cannot exhaust the stack.
//!
//! Accepted shapes:
//! * a combined-stream envelope `{"stream":"ethusdt@bookTicker","data":{…}}`;
//! * a raw single-stream payload `{…}` (what `/ws/<stream>` sends);
//! * a control response `{"result":null,"id":1}` or `{"error":{…},"id":1}`.
//!
//! Payloads are recognised by their `e` field (`bookTicker`, `aggTrade`, `depthUpdate`, `kline`);
//! spot `bookTicker` has no `e` and is recognised by its `u` and `s` fields. Key order does not
//! matter. Any other well-formed object is [`Decoded::Other`].
//!
//! Simplifications, on purpose: keys are matched on their raw bytes (an escaped key such as `"\u0062"`
//! is not `"b"`), and fields that must be symbols or numbers are rejected if they contain escapes.

use std::fmt;

use super::num::{parse_decimal, parse_u64};

/// Deepest nesting of objects and arrays accepted (Binance payloads use 4).
pub const MAX_DEPTH: usize = 16;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is empty or only whitespace.
    #[error("empty frame")]
    Empty,
    /// The frame ended in the middle of a value (truncated).
    #[error("frame truncated")]
    UnexpectedEnd,
    /// A byte that JSON does not allow at this place.
    #[error("unexpected byte {byte:#04x} at offset {pos}")]
    UnexpectedByte {
        /// Offset in the frame.
        pos: usize,
        /// The byte.
        byte: u8,
    },
    /// The top-level value is not an object.
    #[error("frame is not a JSON object")]
    NotAnObject,
    /// Objects and arrays nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at offset {pos}")]
    TooDeep {
        /// Offset in the frame.
        pos: usize,
    },
    /// A string with a control character or an invalid escape.
    #[error("invalid string at offset {pos}")]
    InvalidString {
        /// Offset in the frame.
        pos: usize,
    },
    /// A number that is not valid JSON.
    #[error("invalid number at offset {pos}")]
    InvalidNumber {
        /// Offset in the frame.
        pos: usize,
    },
    /// Something other than whitespace after the top-level object.
    #[error("trailing bytes at offset {pos}")]
    TrailingBytes {
        /// Offset in the frame.
        pos: usize,
    },
    /// A field the recognised payload needs is absent.
    #[error("field `{field}` missing")]
    MissingField {
        /// The JSON key.
        field: &'static str,
    },
    /// A field holds the wrong JSON type.
    #[error("field `{field}`: expected {expected}")]
    WrongType {
        /// The JSON key.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A field has the right type but its value does not parse (bad decimal, integer overflow,
    /// escaped symbol, malformed level).
    #[error("field `{field}`: invalid value")]
    InvalidValue {
        /// The JSON key.
        field: &'static str,
    },
}

/// Result of decoding.
pub(crate) type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// An exchange symbol as sent (`ETHUSDT`), borrowed from the frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Symbol<'a>(&'a [u8]);

impl<'a> Symbol<'a> {
    /// Wraps raw symbol bytes.
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
        let mut cur = Cur::new(self.raw);
        // The array was validated when decoded: skip its `[`.
        cur.i = 1;
        LevelIter { cur, left: self.len }
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
    cur: Cur<'a>,
    left: usize,
}

impl Iterator for LevelIter<'_> {
    type Item = (f64, f64);

    fn next(&mut self) -> Option<(f64, f64)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.cur.ws();
        if self.cur.peek() == Some(b',') {
            self.cur.i += 1;
        }
        // Validated at decode time, so this cannot fail; stop quietly if it somehow does.
        match level(&mut self.cur) {
            Ok(l) => Some(l),
            Err(_) => {
                self.left = 0;
                None
            }
        }
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

/// Decodes one frame. Never panics, never allocates.
#[inline]
pub fn decode(frame: &[u8]) -> Result<Decoded<'_>> {
    match fast_book_ticker(frame) {
        Some(d) => Ok(d),
        None => decode_general(frame),
    }
}

/// The fast path for the hottest frame, a compact `bookTicker` (envelope or raw), in one pass.
///
/// It accepts only a strict subset of what [`decode_general`] accepts (no whitespace, one-letter
/// keys among `e E s u b B a A T`, unescaped strings, plain integers) and returns exactly what the
/// general path would; anything else, including every error, is left to the general path (`None`).
#[inline]
fn fast_book_ticker(f: &[u8]) -> Option<Decoded<'_>> {
    const ENVELOPE: &[u8] = b"{\"stream\":\"";
    const DATA: &[u8] = b",\"data\":{";
    let envelope = f.starts_with(ENVELOPE);
    let mut i = if envelope {
        let end = plain_string_end(f, ENVELOPE.len())?;
        if !f.get(end + 1..)?.starts_with(DATA) {
            return None;
        }
        end + 1 + DATA.len()
    } else if f.first() == Some(&b'{') {
        1
    } else {
        return None;
    };
    let (mut e, mut s, mut b, mut bq, mut a, mut aq) = (None, None, None, None, None, None);
    let (mut u, mut ev, mut tr) = (None, None, None);
    loop {
        let key = f.get(i..i + 4)?;
        if key[0] != b'"' || key[2] != b'"' || key[3] != b':' {
            return None;
        }
        let k = key[1];
        i += 4;
        match *f.get(i)? {
            b'"' => {
                let end = plain_string_end(f, i + 1)?;
                let v = f.get(i + 1..end)?;
                i = end + 1;
                match k {
                    b'e' => e = Some(v),
                    b's' => s = Some(v),
                    b'b' => b = Some(v),
                    b'B' => bq = Some(v),
                    b'a' => a = Some(v),
                    b'A' => aq = Some(v),
                    _ => return None,
                }
            }
            b'1'..=b'9' => {
                let start = i;
                while f.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let n = parse_u64(f.get(start..i)?)?;
                match k {
                    b'u' => u = Some(n),
                    b'E' => ev = Some(n),
                    b'T' => tr = Some(n),
                    _ => return None,
                }
            }
            _ => return None,
        }
        match *f.get(i)? {
            b',' => i += 1,
            b'}' => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    if envelope {
        if f.get(i) != Some(&b'}') {
            return None;
        }
        i += 1;
    }
    if i != f.len() || e.is_some_and(|e| e != b"bookTicker") {
        return None;
    }
    let symbol = s.filter(|s| !s.is_empty())?;
    Some(Decoded::BookTicker(BookTicker {
        symbol: Symbol(symbol),
        update_id: u?,
        bid: parse_decimal(b?)?,
        bid_qty: parse_decimal(bq?)?,
        ask: parse_decimal(a?)?,
        ask_qty: parse_decimal(aq?)?,
        event_ms: ev.unwrap_or(0),
        transact_ms: tr.unwrap_or(0),
    }))
}

/// Index of the closing quote of a string whose contents start at `start`, if the string has no
/// escape and no control character.
#[inline(always)]
fn plain_string_end(f: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        while let Some(chunk) = f.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if special_bytes(u64::from_le_bytes(w)) != 0 {
                break;
            }
            i += 8;
        }
        match *f.get(i)? {
            b'"' => return Some(i),
            b'\\' | 0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// The general decoder: any key order, whitespace, escapes, every payload kind, precise errors.
fn decode_general(frame: &[u8]) -> Result<Decoded<'_>> {
    let mut cur = Cur::new(frame);
    cur.ws();
    match cur.peek() {
        None => return Err(DecodeError::Empty),
        Some(b'{') => {}
        Some(_) => return Err(DecodeError::NotAnObject),
    }
    let mut top = Fields::default();
    let mut data = Fields::default();
    let mut has_data = false;
    let mut stream: Option<Tok<'_>> = None;
    let mut control = false;
    let mut id: Option<Tok<'_>> = None;
    let mut error: Option<Tok<'_>> = None;
    cur.object(0, |cur, key| {
        if let Some(slot) = payload_slot(key) {
            top.0[slot] = Some(cur.value(1)?);
            return Ok(());
        }
        match key {
            b"stream" => stream = Some(cur.value(1)?),
            b"data" => {
                cur.ws();
                if cur.peek() != Some(b'{') {
                    cur.value(1)?;
                    return Err(DecodeError::WrongType { field: "data", expected: "object" });
                }
                data = Fields::default();
                cur.object(1, |cur, key| {
                    match payload_slot(key) {
                        Some(slot) => data.0[slot] = Some(cur.value(2)?),
                        None => cur.skip(2)?,
                    }
                    Ok(())
                })?;
                has_data = true;
            }
            b"result" => {
                cur.skip(1)?;
                control = true;
            }
            b"id" => id = Some(cur.value(1)?),
            b"error" => {
                error = Some(cur.value(1)?);
                control = true;
            }
            _ => cur.skip(1)?,
        }
        Ok(())
    })?;
    cur.ws();
    if cur.i != frame.len() {
        return Err(DecodeError::TrailingBytes { pos: cur.i });
    }
    if has_data {
        let stream = match stream {
            None => &[][..],
            Some(Tok::Str(s, false)) => s,
            Some(Tok::Str(_, true)) => return Err(DecodeError::InvalidValue { field: "stream" }),
            Some(_) => return Err(DecodeError::WrongType { field: "stream", expected: "string" }),
        };
        return payload(&data, stream);
    }
    if control && top.0[E].is_none() {
        let id = match id {
            Some(Tok::Num(n)) => parse_u64(n),
            _ => None,
        };
        let error = match error {
            None | Some(Tok::Null) => None,
            Some(t) => Some(t.raw()),
        };
        return Ok(Decoded::ControlResponse { id, error });
    }
    payload(&top, &[])
}

// Payload slots.
const E: usize = 0;
const BIG_E: usize = 1;
const S: usize = 2;
const U: usize = 3;
const BIG_U: usize = 4;
const B: usize = 5;
const BIG_B: usize = 6;
const A: usize = 7;
const BIG_A: usize = 8;
const BIG_T: usize = 9;
const P: usize = 10;
const Q: usize = 11;
const F: usize = 12;
const L: usize = 13;
const M: usize = 14;
const K: usize = 15;
const PU: usize = 16;
const N_SLOTS: usize = 17;

/// Slot of a payload key, or `None` for keys the decoder does not read.
#[inline(always)]
fn payload_slot(key: &[u8]) -> Option<usize> {
    match key {
        [c] => {
            let s = match c {
                b'e' => E,
                b'E' => BIG_E,
                b's' => S,
                b'u' => U,
                b'U' => BIG_U,
                b'b' => B,
                b'B' => BIG_B,
                b'a' => A,
                b'A' => BIG_A,
                b'T' => BIG_T,
                b'p' => P,
                b'q' => Q,
                b'f' => F,
                b'l' => L,
                b'm' => M,
                b'k' => K,
                _ => return None,
            };
            Some(s)
        }
        b"pu" => Some(PU),
        _ => None,
    }
}

// Kline (`k`) slots.
const KT: usize = 0;
const KBIG_T: usize = 1;
const KI: usize = 2;
const KO: usize = 3;
const KH: usize = 4;
const KL: usize = 5;
const KC: usize = 6;
const KV: usize = 7;
const KN: usize = 8;
const KX: usize = 9;
const K_SLOTS: usize = 10;

fn kline_slot(key: &[u8]) -> Option<usize> {
    match key {
        b"t" => Some(KT),
        b"T" => Some(KBIG_T),
        b"i" => Some(KI),
        b"o" => Some(KO),
        b"h" => Some(KH),
        b"l" => Some(KL),
        b"c" => Some(KC),
        b"v" => Some(KV),
        b"n" => Some(KN),
        b"x" => Some(KX),
        _ => None,
    }
}

/// Values of the keys of interest in one object.
struct Fields<'a, const N: usize = N_SLOTS>([Option<Tok<'a>>; N]);

impl<const N: usize> Default for Fields<'_, N> {
    fn default() -> Self {
        Self([None; N])
    }
}

fn payload<'a>(f: &Fields<'a>, stream: &'a [u8]) -> Result<Decoded<'a>> {
    match f.0[E] {
        Some(Tok::Str(ev, false)) => match ev {
            b"bookTicker" => book_ticker(f),
            b"aggTrade" => agg_trade(f),
            b"depthUpdate" => depth_update(f),
            b"kline" => kline(f),
            _ => Ok(Decoded::Other { stream, event: ev }),
        },
        Some(_) => Err(DecodeError::WrongType { field: "e", expected: "string" }),
        None if f.0[U].is_some() && f.0[S].is_some() => book_ticker(f),
        None => Ok(Decoded::Other { stream, event: &[] }),
    }
}

#[inline]
fn book_ticker<'a>(f: &Fields<'a>) -> Result<Decoded<'a>> {
    Ok(Decoded::BookTicker(BookTicker {
        symbol: symbol(f.0[S], "s")?,
        update_id: req_u64(f.0[U], "u")?,
        bid: req_dec(f.0[B], "b")?,
        bid_qty: req_dec(f.0[BIG_B], "B")?,
        ask: req_dec(f.0[A], "a")?,
        ask_qty: req_dec(f.0[BIG_A], "A")?,
        event_ms: opt_u64(f.0[BIG_E], "E")?,
        transact_ms: opt_u64(f.0[BIG_T], "T")?,
    }))
}

#[inline]
fn agg_trade<'a>(f: &Fields<'a>) -> Result<Decoded<'a>> {
    Ok(Decoded::AggTrade(AggTrade {
        symbol: symbol(f.0[S], "s")?,
        agg_id: req_u64(f.0[A], "a")?,
        price: req_dec(f.0[P], "p")?,
        qty: req_dec(f.0[Q], "q")?,
        first_trade_id: opt_u64(f.0[F], "f")?,
        last_trade_id: opt_u64(f.0[L], "l")?,
        trade_ms: req_u64(f.0[BIG_T], "T")?,
        event_ms: opt_u64(f.0[BIG_E], "E")?,
        buyer_is_maker: match f.0[M] {
            None => false,
            Some(t) => req_bool(Some(t), "m")?,
        },
    }))
}

fn depth_update<'a>(f: &Fields<'a>) -> Result<Decoded<'a>> {
    Ok(Decoded::DepthUpdate(DepthUpdate {
        symbol: symbol(f.0[S], "s")?,
        first_id: req_u64(f.0[BIG_U], "U")?,
        last_id: req_u64(f.0[U], "u")?,
        prev_last_id: opt_u64(f.0[PU], "pu")?,
        event_ms: opt_u64(f.0[BIG_E], "E")?,
        transact_ms: opt_u64(f.0[BIG_T], "T")?,
        bids: levels(f.0[B], "b")?,
        asks: levels(f.0[A], "a")?,
    }))
}

fn kline<'a>(f: &Fields<'a>) -> Result<Decoded<'a>> {
    let raw = match f.0[K] {
        Some(Tok::Obj(raw)) => raw,
        Some(_) => return Err(DecodeError::WrongType { field: "k", expected: "object" }),
        None => return Err(DecodeError::MissingField { field: "k" }),
    };
    let mut k: Fields<'_, K_SLOTS> = Fields::default();
    let mut cur = Cur::new(raw);
    // Validated once already as part of the frame; nesting is shallow.
    cur.object(1, |cur, key| {
        match kline_slot(key) {
            Some(slot) => k.0[slot] = Some(cur.value(2)?),
            None => cur.skip(2)?,
        }
        Ok(())
    })?;
    let interval = match k.0[KI] {
        Some(Tok::Str(s, false)) => s,
        Some(_) => return Err(DecodeError::WrongType { field: "i", expected: "string" }),
        None => return Err(DecodeError::MissingField { field: "i" }),
    };
    Ok(Decoded::Kline(Kline {
        symbol: symbol(f.0[S], "s")?,
        interval,
        open_ms: req_u64(k.0[KT], "t")?,
        close_ms: req_u64(k.0[KBIG_T], "T")?,
        open: req_dec(k.0[KO], "o")?,
        high: req_dec(k.0[KH], "h")?,
        low: req_dec(k.0[KL], "l")?,
        close: req_dec(k.0[KC], "c")?,
        volume: req_dec(k.0[KV], "v")?,
        trades: opt_u64(k.0[KN], "n")?,
        is_closed: req_bool(k.0[KX], "x")?,
        event_ms: opt_u64(f.0[BIG_E], "E")?,
    }))
}

#[inline]
fn symbol<'a>(t: Option<Tok<'a>>, field: &'static str) -> Result<Symbol<'a>> {
    match t {
        Some(Tok::Str(s, false)) if !s.is_empty() => Ok(Symbol(s)),
        Some(Tok::Str(..)) => Err(DecodeError::InvalidValue { field }),
        Some(_) => Err(DecodeError::WrongType { field, expected: "string" }),
        None => Err(DecodeError::MissingField { field }),
    }
}

/// A decimal field: Binance sends decimals as strings; a bare JSON number is accepted too.
#[inline]
fn req_dec(t: Option<Tok<'_>>, field: &'static str) -> Result<f64> {
    match t {
        Some(Tok::Str(s, false) | Tok::Num(s)) => parse_decimal(s).ok_or(DecodeError::InvalidValue { field }),
        Some(Tok::Str(_, true)) => Err(DecodeError::InvalidValue { field }),
        Some(_) => Err(DecodeError::WrongType { field, expected: "decimal string" }),
        None => Err(DecodeError::MissingField { field }),
    }
}

#[inline]
fn req_u64(t: Option<Tok<'_>>, field: &'static str) -> Result<u64> {
    match t {
        None => Err(DecodeError::MissingField { field }),
        Some(t) => opt_u64(Some(t), field),
    }
}

#[inline]
fn opt_u64(t: Option<Tok<'_>>, field: &'static str) -> Result<u64> {
    match t {
        None => Ok(0),
        Some(Tok::Num(n)) => parse_u64(n).ok_or(DecodeError::InvalidValue { field }),
        Some(_) => Err(DecodeError::WrongType { field, expected: "integer" }),
    }
}

fn req_bool(t: Option<Tok<'_>>, field: &'static str) -> Result<bool> {
    match t {
        Some(Tok::True) => Ok(true),
        Some(Tok::False) => Ok(false),
        Some(_) => Err(DecodeError::WrongType { field, expected: "boolean" }),
        None => Err(DecodeError::MissingField { field }),
    }
}

/// Validates an array of `[price, qty]` pairs and counts them.
fn levels<'a>(t: Option<Tok<'a>>, field: &'static str) -> Result<Levels<'a>> {
    let raw = match t {
        Some(Tok::Arr(raw)) => raw,
        Some(_) => return Err(DecodeError::WrongType { field, expected: "array" }),
        None => return Err(DecodeError::MissingField { field }),
    };
    let mut cur = Cur::new(raw);
    cur.i = 1;
    let mut len = 0;
    cur.ws();
    if cur.peek() == Some(b']') {
        return Ok(Levels { raw, len });
    }
    loop {
        cur.ws();
        level(&mut cur).map_err(|_| DecodeError::InvalidValue { field })?;
        len += 1;
        cur.ws();
        match cur.bump() {
            Some(b',') => {}
            Some(b']') => return Ok(Levels { raw, len }),
            _ => return Err(DecodeError::InvalidValue { field }),
        }
    }
}

/// One `["price","qty"]` level at the cursor (after whitespace).
fn level(cur: &mut Cur<'_>) -> Result<(f64, f64)> {
    cur.ws();
    if cur.bump() != Some(b'[') {
        return Err(DecodeError::InvalidValue { field: "level" });
    }
    let price = req_dec(Some(cur.value(MAX_DEPTH)?), "level")?;
    cur.ws();
    if cur.bump() != Some(b',') {
        return Err(DecodeError::InvalidValue { field: "level" });
    }
    let qty = req_dec(Some(cur.value(MAX_DEPTH)?), "level")?;
    cur.ws();
    if cur.bump() != Some(b']') {
        return Err(DecodeError::InvalidValue { field: "level" });
    }
    Ok((price, qty))
}

/// A scanned JSON value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    /// String contents without the quotes; `true` when it contains escapes.
    Str(&'a [u8], bool),
    /// Number text.
    Num(&'a [u8]),
    True,
    False,
    Null,
    /// Object text including braces.
    Obj(&'a [u8]),
    /// Array text including brackets.
    Arr(&'a [u8]),
}

impl<'a> Tok<'a> {
    /// The JSON text of the value (strings without quotes).
    fn raw(self) -> &'a [u8] {
        match self {
            Tok::Str(s, _) | Tok::Num(s) | Tok::Obj(s) | Tok::Arr(s) => s,
            Tok::True => b"true",
            Tok::False => b"false",
            Tok::Null => b"null",
        }
    }
}

/// Non-zero when one of the 8 bytes of `w` may be `"`, `\\` or a control character (below 0x20).
/// Exact for the first such byte; bytes after it may be false positives, which only cost a slower
/// look at them.
#[inline(always)]
const fn special_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const fn zero_byte(x: u64) -> u64 {
        x.wrapping_sub(LO) & !x & HI
    }
    let quote = zero_byte(w ^ (LO * b'"' as u64));
    let backslash = zero_byte(w ^ (LO * b'\\' as u64));
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    quote | backslash | control
}

/// A cursor over the frame.
#[derive(Debug, Clone)]
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cur<'a> {
    #[inline(always)]
    fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0 }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn unexpected(&self) -> DecodeError {
        match self.peek() {
            Some(byte) => DecodeError::UnexpectedByte { pos: self.i, byte },
            None => DecodeError::UnexpectedEnd,
        }
    }

    /// Iterates the object at the cursor (after whitespace), calling `f` with the cursor positioned
    /// before each value; `f` must consume the value. `depth` is the object's own nesting level.
    #[inline(always)]
    fn object(&mut self, depth: usize, mut f: impl FnMut(&mut Self, &'a [u8]) -> Result<()>) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { pos: self.i });
        }
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(self.unexpected());
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let (key, _) = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.i += 1;
            f(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    /// The string at the cursor (which is on the opening quote).
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a [u8], bool)> {
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Skip 8 plain bytes at a time.
            while let Some(chunk) = self.b.get(i..i + 8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                if special_bytes(u64::from_le_bytes(w)) != 0 {
                    break;
                }
                i += 8;
            }
            let Some(&c) = self.b.get(i) else {
                return Err(DecodeError::UnexpectedEnd);
            };
            match c {
                b'"' => {
                    self.i = i + 1;
                    return Ok((&self.b[start..i], escaped));
                }
                b'\\' => {
                    escaped = true;
                    i = self.escape(i + 1)?;
                }
                0..=0x1f => return Err(DecodeError::InvalidString { pos: i }),
                _ => i += 1,
            }
        }
    }

    /// Validates the escape whose letter is at `i`; returns the index after it.
    #[cold]
    fn escape(&self, i: usize) -> Result<usize> {
        match self.b.get(i) {
            None => Err(DecodeError::UnexpectedEnd),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
            Some(b'u') => {
                let hex = self.b.get(i + 1..i + 5).ok_or(DecodeError::UnexpectedEnd)?;
                if hex.iter().all(u8::is_ascii_hexdigit) {
                    Ok(i + 5)
                } else {
                    Err(DecodeError::InvalidString { pos: i })
                }
            }
            Some(_) => Err(DecodeError::InvalidString { pos: i }),
        }
    }

    /// The number at the cursor, validated against JSON's grammar.
    #[inline(always)]
    fn number(&mut self) -> Result<&'a [u8]> {
        let start = self.i;
        let mut i = start;
        let digits = |b: &[u8], mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if self.b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        i = digits(self.b, i);
        let bad = |i: usize, b: &[u8]| {
            if i >= b.len() { DecodeError::UnexpectedEnd } else { DecodeError::InvalidNumber { pos: i } }
        };
        if i == int_start {
            return Err(bad(i, self.b));
        }
        if self.b.get(int_start) == Some(&b'0') && i - int_start > 1 {
            // JSON forbids leading zeros.
            return Err(DecodeError::InvalidNumber { pos: int_start + 1 });
        }
        if self.b.get(i) == Some(&b'.') {
            let s = i + 1;
            i = digits(self.b, s);
            if i == s {
                return Err(bad(i, self.b));
            }
        }
        if matches!(self.b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(self.b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let s = i;
            i = digits(self.b, s);
            if i == s {
                return Err(bad(i, self.b));
            }
        }
        self.i = i;
        Ok(&self.b[start..i])
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<()> {
        let end = self.i + lit.len();
        match self.b.get(self.i..end) {
            Some(s) if s == lit => {
                self.i = end;
                Ok(())
            }
            _ => {
                // Point at the first differing byte, or report truncation.
                let mut j = self.i;
                while j < end && self.b.get(j) == lit.get(j - self.i) {
                    j += 1;
                }
                match self.b.get(j) {
                    Some(&byte) => Err(DecodeError::UnexpectedByte { pos: j, byte }),
                    None => Err(DecodeError::UnexpectedEnd),
                }
            }
        }
    }

    /// The value at the cursor (after whitespace). `depth` is the nesting level the value would have.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Result<Tok<'a>> {
        self.ws();
        match self.peek() {
            Some(b'"') => {
                let (s, esc) = self.string()?;
                Ok(Tok::Str(s, esc))
            }
            Some(b'-' | b'0'..=b'9') => Ok(Tok::Num(self.number()?)),
            Some(b'{') => {
                let start = self.i;
                self.object(depth, |cur, _| cur.skip(depth + 1))?;
                Ok(Tok::Obj(&self.b[start..self.i]))
            }
            Some(b'[') => {
                let start = self.i;
                self.array(depth)?;
                Ok(Tok::Arr(&self.b[start..self.i]))
            }
            Some(b't') => self.literal(b"true").map(|()| Tok::True),
            Some(b'f') => self.literal(b"false").map(|()| Tok::False),
            Some(b'n') => self.literal(b"null").map(|()| Tok::Null),
            _ => Err(self.unexpected()),
        }
    }

    /// Validates and skips the value at the cursor.
    fn skip(&mut self, depth: usize) -> Result<()> {
        self.value(depth).map(|_| ())
    }

    /// Validates and skips the array at the cursor.
    fn array(&mut self, depth: usize) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { pos: self.i });
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }
}
