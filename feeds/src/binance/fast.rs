//! **Hot path**: the `bookTicker` fast path, specialised for the exact bytes Binance sends.
//!
//! Every `bookTicker` frame of the captured sessions has one of two layouts, compact and in this key
//! order (every captured `bookTicker` frame takes this path: see the test below):
//!
//! ```text
//! spot     {"stream":"<s>","data":{"u":<int>,"s":"<sym>","b":"<dec>","B":"<dec>","a":"<dec>","A":"<dec>"}}
//! futures  {"stream":"<s>","data":{"e":"bookTicker","u":<int>,"s":"<sym>","b":"<dec>","B":"<dec>",
//!          "a":"<dec>","A":"<dec>","T":<int>,"E":<int>}}
//! ```
//!
//! [`book_ticker`] walks exactly that (either form, with or without the envelope, `"e"` and the
//! `"T"`/`"E"` tail each optional) in one pass: fixed key literals compared as whole words, the
//! strings scanned 8 bytes at a time, the numbers read 8 digits at a time ([`crate::binance::num`]). Should
//! Binance reorder the keys, a second pass takes the same compact form with the keys in any order
//! (a few nanoseconds more; the general path would take about four times as long).
//!
//! Both accept a strict subset of what the general path ([`crate::binance::parse`]) accepts and return exactly
//! what the general path would; on any surprise — another key, spacing, an escape, a number in
//! another form, trailing bytes, and every error — they return `None` and the caller runs the general
//! path, which gives the value or the precise error.

use crate::binance::num::{decimal_at, quoted_decimal, u64_at};
use crate::binance::scan::plain_string_end;
use crate::binance::types::{BookTicker, Decoded, Symbol};

/// Combined-stream envelope, up to the stream name.
const ENVELOPE: &[u8; 11] = br#"{"stream":""#;
/// After the stream name's closing quote.
const DATA: &[u8; 9] = br#","data":{"#;
/// Futures only.
const EVENT: &[u8; 17] = br#""e":"bookTicker","#;
const KEY_U: &[u8; 4] = br#""u":"#;
const KEY_S: &[u8; 6] = br#","s":""#;
/// The decimal keys, each from the closing quote of the string before it.
const KEY_BID: &[u8; 7] = br#"","b":""#;
const KEY_BID_QTY: &[u8; 7] = br#"","B":""#;
const KEY_ASK: &[u8; 7] = br#"","a":""#;
const KEY_ASK_QTY: &[u8; 7] = br#"","A":""#;
/// Futures only, from the closing quote of `A`'s value.
const KEY_T: &[u8; 6] = br#"","T":"#;
const KEY_E: &[u8; 5] = br#","E":"#;

/// True when `f[i..]` starts with `lit`.
#[inline(always)]
fn at<const N: usize>(f: &[u8], i: usize, lit: &[u8; N]) -> bool {
    f.get(i..).and_then(<[u8]>::first_chunk::<N>) == Some(lit)
}

/// The decimal string whose contents start at `f[i]`: its value and the index of its closing quote.
#[inline(always)]
fn quoted_value(f: &[u8], i: usize) -> Option<(f64, usize)> {
    // The usual case: at most 8 digits each side of the dot, 15 in all.
    if let Some(found) = quoted_decimal(f, i) {
        return Some(found);
    }
    // Longer, signed, or not a decimal: the general reader decides.
    let (v, end) = decimal_at(f, i)?;
    (f.get(end) == Some(&b'"')).then_some((v, end))
}

/// The decimal string whose key (ending in the opening quote) starts at `f[i]`: its value and the
/// index of its closing quote.
#[inline(always)]
fn decimal_field<const N: usize>(f: &[u8], i: usize, key: &[u8; N]) -> Option<(f64, usize)> {
    if !at(f, i, key) {
        return None;
    }
    quoted_value(f, i + N)
}

/// True when the payload's `}` is at `f[i]`, followed by the envelope's `}` if there is one, then
/// by nothing.
#[inline(always)]
fn closes(f: &[u8], i: usize, envelope: bool) -> bool {
    let end = if envelope { at(f, i, b"}}").then_some(i + 2) } else { at(f, i, b"}").then_some(i + 1) };
    end == Some(f.len())
}

/// Decodes a compact `bookTicker` frame, keys in Binance's order or, failing that, in any order;
/// `None` for anything else.
#[inline]
pub(crate) fn book_ticker(f: &[u8]) -> Option<Decoded<'_>> {
    let envelope = at(f, 0, ENVELOPE);
    let i = if envelope {
        let end = plain_string_end(f, ENVELOPE.len())?;
        if !at(f, end + 1, DATA) {
            return None;
        }
        end + 1 + DATA.len()
    } else if f.first() == Some(&b'{') {
        1
    } else {
        return None;
    };
    match in_binance_order(f, i, envelope) {
        Some(d) => Some(d),
        None => in_any_order(f, i, envelope),
    }
}

/// The payload that starts at `f[i]` (after its `{`), keys in Binance's order.
#[inline(always)]
fn in_binance_order(f: &[u8], mut i: usize, envelope: bool) -> Option<Decoded<'_>> {
    if at(f, i, EVENT) {
        i += EVENT.len();
    }
    if !at(f, i, KEY_U) {
        return None;
    }
    let (update_id, i) = u64_at(f, i + KEY_U.len())?;
    if !at(f, i, KEY_S) {
        return None;
    }
    let sym_start = i + KEY_S.len();
    let sym_end = plain_string_end(f, sym_start)?;
    if sym_end == sym_start {
        return None;
    }
    let symbol = f.get(sym_start..sym_end)?;
    let (bid, i) = decimal_field(f, sym_end, KEY_BID)?;
    let (bid_qty, i) = decimal_field(f, i, KEY_BID_QTY)?;
    let (ask, i) = decimal_field(f, i, KEY_ASK)?;
    let (ask_qty, mut i) = decimal_field(f, i, KEY_ASK_QTY)?;
    // `i` is on the closing quote of `A`'s value.
    let (mut event_ms, mut transact_ms) = (0, 0);
    if at(f, i, KEY_T) {
        let (t, j) = u64_at(f, i + KEY_T.len())?;
        if !at(f, j, KEY_E) {
            return None;
        }
        let (e, j) = u64_at(f, j + KEY_E.len())?;
        (transact_ms, event_ms) = (t, e);
        i = j;
    } else {
        i += 1;
    }
    if !closes(f, i, envelope) {
        return None;
    }
    Some(Decoded::BookTicker(BookTicker {
        symbol: Symbol::new(symbol),
        update_id,
        bid,
        bid_qty,
        ask,
        ask_qty,
        event_ms,
        transact_ms,
    }))
}

/// The payload that starts at `f[i]` (after its `{`), compact, with the one-letter keys of a
/// `bookTicker` in any order: what a reordering by Binance would send. A repeated key keeps its last
/// value, as in the general path. Other payloads are declined at their first key that a
/// `bookTicker` does not have (`"e"` with another value, for every other Binance payload).
#[cold]
#[inline(never)]
fn in_any_order(f: &[u8], mut i: usize, envelope: bool) -> Option<Decoded<'_>> {
    let mut symbol = None;
    let (mut update_id, mut bid, mut bid_qty, mut ask, mut ask_qty) = (None, None, None, None, None);
    let (mut event_ms, mut transact_ms) = (0, 0);
    loop {
        // `"k":`
        if f.get(i) != Some(&b'"') || !at(f, i + 2, b"\":") {
            return None;
        }
        let key = *f.get(i + 1)?;
        i += 4;
        match key {
            b'e' => {
                if !at(f, i, br#""bookTicker""#) {
                    return None;
                }
                i += 12;
            }
            b's' => {
                if f.get(i) != Some(&b'"') {
                    return None;
                }
                let end = plain_string_end(f, i + 1)?;
                symbol = Some(f.get(i + 1..end)?);
                i = end + 1;
            }
            b'b' | b'B' | b'a' | b'A' => {
                if f.get(i) != Some(&b'"') {
                    return None;
                }
                let (v, end) = quoted_value(f, i + 1)?;
                let slot = match key {
                    b'b' => &mut bid,
                    b'B' => &mut bid_qty,
                    b'a' => &mut ask,
                    _ => &mut ask_qty,
                };
                *slot = Some(v);
                i = end + 1;
            }
            b'u' | b'E' | b'T' => {
                let (v, end) = u64_at(f, i)?;
                match key {
                    b'u' => update_id = Some(v),
                    b'E' => event_ms = v,
                    _ => transact_ms = v,
                }
                i = end;
            }
            _ => return None,
        }
        match f.get(i)? {
            b',' => i += 1,
            b'}' => break,
            _ => return None,
        }
    }
    if !closes(f, i, envelope) {
        return None;
    }
    Some(Decoded::BookTicker(BookTicker {
        symbol: Symbol::new(symbol.filter(|s| !s.is_empty())?),
        update_id: update_id?,
        bid: bid?,
        bid_qty: bid_qty?,
        ask: ask?,
        ask_qty: ask_qty?,
        event_ms,
        transact_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::parse::decode_general;

    /// Every `bookTicker` frame of the captured sessions has one of the two layouts above: all of
    /// them take the fast path, and it answers what the general path answers.
    #[test]
    fn every_captured_book_ticker_takes_the_fast_path() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut n = 0;
        for file in ["BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0"] {
            let text = std::fs::read_to_string(dir.join(file)).expect("capture");
            for line in text.lines().skip(1).filter(|l| !l.contains(" <- ")) {
                let Some((_, frame)) = line.split_once(": ") else { continue };
                if !frame.contains("@bookTicker\"") {
                    assert_eq!(book_ticker(frame.as_bytes()), None, "{frame}");
                    continue;
                }
                let fast = book_ticker(frame.as_bytes());
                assert!(fast.is_some(), "{frame}");
                let body = frame.find(r#""data":{"#).map_or(1, |i| i + 8);
                assert_eq!(in_binance_order(frame.as_bytes(), body, true), fast, "{frame}");
                assert_eq!(fast.ok_or(()), decode_general(frame.as_bytes()).map_err(|_| ()), "{frame}");
                // The raw payload (what `/ws/<stream>` sends) too.
                let data = &frame[frame.find(r#""data":"#).map_or(0, |i| i + 7)..frame.len() - 1];
                assert_eq!(book_ticker(data.as_bytes()), fast, "{data}");
                n += 1;
            }
        }
        assert_eq!(n, 212 + 613);
    }

    #[test]
    fn keys_in_another_order_take_the_second_pass() {
        let sorted = br#"{"A":"297","B":"2","E":1626992741017,"T":1626992741012,"a":"7.6120","b":"7.6110","e":"bookTicker","s":"SUSHIUSDT","u":600859600576}"#;
        assert_eq!(in_binance_order(sorted, 1, false), None);
        let d = book_ticker(sorted);
        assert!(d.is_some());
        assert_eq!(d.ok_or(()), decode_general(sorted).map_err(|_| ()));
        // Other payloads are declined at their first key.
        for f in [
            &br#"{"e":"aggTrade","E":1,"s":"X","a":9,"p":"7.6","q":"10","f":1,"l":1,"T":1,"m":false}"#[..],
            br#"{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}"#,
            br#"{"result":null,"id":1}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","x":1}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3"}"#,
        ] {
            assert_eq!(in_any_order(f, 1, false), None, "{}", f.escape_ascii());
        }
    }
}
