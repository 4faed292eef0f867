//! The general path: any key order, whitespace, escapes, every payload kind, precise errors.
//!
//! [`decode_general`] walks the frame once with the [`Cur`] scanner, keeping the values of the keys
//! it reads (one-letter payload keys, `pu`, `k`, and the envelope's `stream`, `data`, `result`,
//! `id`, `error`) as borrowed [`Tok`]s in fixed slots, then recognises the payload by its `e` field
//! and builds the output type. A repeated key keeps its last value. Keys are matched on their raw
//! bytes (an escaped key such as `"\u0062"` is not `"b"`), and fields that must be symbols or
//! numbers are rejected if they contain escapes.

use crate::binance::error::{DecodeError, Result};
use crate::binance::num::{parse_decimal, parse_u64};
use crate::binance::scan::{Cur, MAX_DEPTH, Tok};
use crate::binance::types::{AggTrade, BookTicker, Decoded, DepthUpdate, Kline, Levels, Symbol};

/// The general decoder: any key order, whitespace, escapes, every payload kind, precise errors.
pub(crate) fn decode_general(frame: &[u8]) -> Result<Decoded<'_>> {
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
        Some(Tok::Str(s, false)) if !s.is_empty() => Ok(Symbol::new(s)),
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
        return Ok(Levels::new(raw, len));
    }
    loop {
        cur.ws();
        level(&mut cur).map_err(|_| DecodeError::InvalidValue { field })?;
        len += 1;
        cur.ws();
        match cur.bump() {
            Some(b',') => {}
            Some(b']') => return Ok(Levels::new(raw, len)),
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

/// The level at `*pos` in a validated depth array (after an optional `,`), advancing `*pos` past it.
pub(crate) fn next_level(raw: &[u8], pos: &mut usize) -> Option<(f64, f64)> {
    let mut cur = Cur { b: raw, i: *pos };
    cur.ws();
    if cur.peek() == Some(b',') {
        cur.i += 1;
    }
    let l = level(&mut cur).ok()?;
    *pos = cur.i;
    Some(l)
}
