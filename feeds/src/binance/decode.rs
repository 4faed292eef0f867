//! **Hot path**: one Binance websocket frame (`&[u8]`) to a borrowed [`Decoded`] value.
//!
//! ```text
//! frame ──fast::book_ticker──▶ Some(BookTicker)                 (the frames Binance sends, ~all the traffic)
//!         └─ None ──parse::decode_general──▶ Ok(Decoded) | Err(DecodeError)   (anything else)
//! ```
//!
//! Accepted shapes:
//! * a combined-stream envelope `{"stream":"ethusdt@bookTicker","data":{…}}`;
//! * a raw single-stream payload `{…}` (what `/ws/<stream>` sends);
//! * a control response `{"result":null,"id":1}` or `{"error":{…},"id":1}`.
//!
//! Payloads are recognised by their `e` field (`bookTicker`, `aggTrade`, `depthUpdate`, `kline`);
//! spot `bookTicker` has no `e` and is recognised by its `u` and `s` fields. Key order does not
//! matter (the fast path takes Binance's order, the general path any). Any other well-formed object
//! is [`Decoded::Other`].
//!
//! No allocation, no copy, no `unsafe`, no panic: every input returns `Ok` or `Err`; nesting is
//! bounded by [`super::MAX_DEPTH`], so hostile input cannot exhaust the stack. UTF-8 is not
//! validated (symbols are bytes; see [`super::Symbol::as_str`]).

use super::{fast, parse};
use crate::binance::error::Result;
use crate::binance::types::Decoded;

/// Decodes one frame. Never panics, never allocates.
///
/// A compact `bookTicker` frame in Binance's key order takes the fast path; everything else, and
/// every error, takes the general path. Both give the same value for any frame the fast path takes.
#[inline]
pub fn decode(frame: &[u8]) -> Result<Decoded<'_>> {
    match fast::book_ticker(frame) {
        Some(d) => Ok(d),
        None => parse::decode_general(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::parse::decode_general;
    use crate::binance::{DecodeError, Decoded, fast};

    const SPOT_BT: &[u8] = br#"{"stream":"nknusdt@bookTicker","data":{"u":499869768,"s":"NKNUSDT","b":"0.35210000","B":"672.00000000","a":"0.35260000","A":"3199.00000000"}}"#;
    const FUT_BT: &[u8] = br#"{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT","b":"7.6110","B":"2","a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}}"#;

    #[test]
    fn spot_book_ticker() {
        let Decoded::BookTicker(t) = decode(SPOT_BT).unwrap() else { panic!() };
        assert_eq!(t.symbol.as_bytes(), b"NKNUSDT");
        assert_eq!(t.update_id, 499_869_768);
        assert_eq!((t.bid, t.bid_qty, t.ask, t.ask_qty), (0.3521, 672.0, 0.3526, 3199.0));
        assert_eq!((t.event_ms, t.transact_ms), (0, 0));
    }

    #[test]
    fn futures_book_ticker() {
        let Decoded::BookTicker(t) = decode(FUT_BT).unwrap() else { panic!() };
        assert_eq!(t.symbol.as_str(), Some("SUSHIUSDT"));
        assert_eq!(t.update_id, 600_859_600_576);
        assert_eq!((t.bid, t.bid_qty, t.ask, t.ask_qty), (7.611, 2.0, 7.612, 297.0));
        assert_eq!((t.event_ms, t.transact_ms), (1_626_992_741_017, 1_626_992_741_012));
    }

    #[test]
    fn raw_payload_and_key_order() {
        let raw = br#" { "A":"1.5" , "a":"2", "B":"3","b":"1","s":"ETHUSDT","u":7 } "#;
        let Decoded::BookTicker(t) = decode(raw).unwrap() else { panic!() };
        assert_eq!((t.update_id, t.bid, t.bid_qty, t.ask, t.ask_qty), (7, 1.0, 3.0, 2.0, 1.5));
        // `data` before `stream`.
        let env = br#"{"data":{"e":"aggTrade","E":5,"s":"X","a":1,"p":"2.5","q":"3","f":1,"l":2,"T":4,"m":true,"M":true},"stream":"x@aggTrade"}"#;
        let Decoded::AggTrade(t) = decode(env).unwrap() else { panic!() };
        assert_eq!((t.agg_id, t.price, t.qty, t.first_trade_id, t.last_trade_id), (1, 2.5, 3.0, 1, 2));
        assert_eq!((t.trade_ms, t.event_ms, t.buyer_is_maker), (4, 5, true));
    }

    #[test]
    fn depth_and_kline() {
        let d = br#"{"stream":"x@depth@100ms","data":{"e":"depthUpdate","E":1,"T":2,"s":"X","U":10,"u":12,"pu":9,"b":[["7.5040","813"],["7.6090","0"]],"a":[]}}"#;
        let Decoded::DepthUpdate(u) = decode(d).unwrap() else { panic!() };
        assert_eq!((u.first_id, u.last_id, u.prev_last_id, u.event_ms, u.transact_ms), (10, 12, 9, 1, 2));
        assert_eq!(u.bids.len(), 2);
        assert!(u.asks.is_empty());
        assert_eq!(u.bids.iter().collect::<Vec<_>>(), vec![(7.504, 813.0), (7.609, 0.0)]);
        let k = br#"{"stream":"x@kline_1m","data":{"e":"kline","E":3,"s":"X","k":{"t":1,"T":2,"s":"X","i":"1m","f":1,"L":2,"o":"1.0","c":"1.5","h":"2","l":"0.5","v":"10","n":30,"x":true,"q":"1","V":"1","Q":"1","B":"0"}}}"#;
        let Decoded::Kline(k) = decode(k).unwrap() else { panic!() };
        assert_eq!((k.open, k.high, k.low, k.close, k.volume), (1.0, 2.0, 0.5, 1.5, 10.0));
        assert_eq!((k.open_ms, k.close_ms, k.trades, k.is_closed, k.event_ms), (1, 2, 30, true, 3));
        assert_eq!(k.interval, b"1m");
    }

    #[test]
    fn control_and_other() {
        assert_eq!(
            decode(br#"{"result":null,"id":1}"#),
            Ok(Decoded::ControlResponse { id: Some(1), error: None })
        );
        assert_eq!(
            decode(br#"{"error":{"code":2,"msg":"Invalid request"},"id":3}"#),
            Ok(Decoded::ControlResponse {
                id: Some(3),
                error: Some(&br#"{"code":2,"msg":"Invalid request"}"#[..])
            })
        );
        assert_eq!(
            decode(br#"{"stream":"x@trade","data":{"e":"trade","s":"X"}}"#),
            Ok(Decoded::Other { stream: b"x@trade", event: b"trade" })
        );
        assert_eq!(decode(b"{}"), Ok(Decoded::Other { stream: b"", event: b"" }));
    }

    #[test]
    fn malformed() {
        use DecodeError::*;
        let cases: &[(&[u8], DecodeError)] = &[
            (b"", Empty),
            (b"  \n", Empty),
            (b"[1]", NotAnObject),
            (b"null", NotAnObject),
            (&SPOT_BT[..SPOT_BT.len() - 1], UnexpectedEnd),
            (&SPOT_BT[..40], UnexpectedEnd),
            (br#"{"u":1,"s":"X","b":"1","B":"1","a":"1"}"#, MissingField { field: "A" }),
            (
                br#"{"u":"1","s":"X","b":"1","B":"1","a":"1","A":"1"}"#,
                WrongType { field: "u", expected: "integer" },
            ),
            (br#"{"u":1,"s":"X","b":"abc","B":"1","a":"1","A":"1"}"#, InvalidValue { field: "b" }),
            (
                br#"{"u":1,"s":"X","b":true,"B":"1","a":"1","A":"1"}"#,
                WrongType { field: "b", expected: "decimal string" },
            ),
            (
                br#"{"u":1,"s":5,"b":"1","B":"1","a":"1","A":"1"}"#,
                WrongType { field: "s", expected: "string" },
            ),
            (br#"{"u":-1,"s":"X","b":"1","B":"1","a":"1","A":"1"}"#, InvalidValue { field: "u" }),
            (
                br#"{"u":99999999999999999999,"s":"X","b":"1","B":"1","a":"1","A":"1"}"#,
                InvalidValue { field: "u" },
            ),
            (br#"{"stream":"x","data":5}"#, WrongType { field: "data", expected: "object" }),
            (br#"{"e":5}"#, WrongType { field: "e", expected: "string" }),
            (br#"{"a":1} x"#, TrailingBytes { pos: 8 }),
            (br#"{"a":01}"#, InvalidNumber { pos: 6 }),
            (br#"{"a":tru}"#, UnexpectedByte { pos: 8, byte: b'}' }),
            (br#"{"a":"\q"}"#, InvalidString { pos: 7 }),
            (b"{\"a\":\"\x01\"}", InvalidString { pos: 6 }),
            (br#"{"a" 1}"#, UnexpectedByte { pos: 5, byte: b'1' }),
            (br#"{"a":1,}"#, UnexpectedByte { pos: 7, byte: b'}' }),
            (br#"{"e":"depthUpdate","s":"X","U":1,"u":2,"b":[["1"]],"a":[]}"#, InvalidValue { field: "b" }),
            (br#"{"e":"kline","s":"X","k":[]}"#, WrongType { field: "k", expected: "object" }),
        ];
        for (frame, want) in cases {
            assert_eq!(decode(frame), Err(*want), "{}", frame.escape_ascii());
        }
    }

    /// The fast path, when it answers, answers exactly what the general path does.
    fn fast_agrees(frame: &[u8]) {
        if let Some(fast) = fast::book_ticker(frame) {
            assert_eq!(Ok(fast), decode_general(frame), "{}", frame.escape_ascii());
        }
    }

    #[test]
    fn fast_path_is_taken_and_agrees() {
        for f in [
            SPOT_BT,
            FUT_BT,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"e":"bookTicker","u":0,"s":"X","b":"-1.5","B":"2","a":"3","A":"4","T":0,"E":9}"#,
            b"{\"stream\":\"\",\"data\":{\"u\":1,\"s\":\"\xff\",\"b\":\"1\",\"B\":\"2\",\"a\":\"3\",\"A\":\"4\"}}",
            br#"{"u":1,"s":"X","b":"123456789012345678901234","B":"2","a":"3","A":"4"}"#,
            // Other key orders: the second pass.
            br#"{"s":"X","u":1,"b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","E":1,"T":2}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","T":2}"#,
            br#"{"A":"4","a":"3","B":"2","b":"1","s":"X","u":1,"e":"bookTicker"}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","A":"5"}"#,
        ] {
            assert!(fast::book_ticker(f).is_some(), "{}", f.escape_ascii());
            fast_agrees(f);
        }
        for f in [
            &br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","x":1}"#[..],
            br#"{"e":"aggTrade","u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","e":"bookTicker","e":"kline"}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","e":"bookTickers"}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","pu":1}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","b":1}"#,
            br#"{"u":01,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1.5,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":-1,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":12345678901234567890,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3"}"#,
            br#"{"u":1,"s":"X","b":"x","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X","b":"1.","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X","b":"1e5","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X","b":1,"B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X\n","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X\u0041","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"} "#,
            br#"{"u": 1,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"stream":"x","data":{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"},"x":1}"#,
            br#"{"stream":"x","data":{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
            br#"{"stream":"x\"","data":{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"}}"#,
            br#"{"data":{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"},"stream":"x"}"#,
            br#"{}"#,
            b"",
        ] {
            assert!(fast::book_ticker(f).is_none(), "{}", f.escape_ascii());
            fast_agrees(f);
        }
        for frame in [SPOT_BT, FUT_BT] {
            for len in 0..frame.len() {
                fast_agrees(&frame[..len]);
                assert!(fast::book_ticker(&frame[..len]).is_none());
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 5_000, ..Default::default() })]
        #[test]
        fn fast_path_agrees_on_mutations(
            spot: bool,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>(), 0u8..3),
                1..4,
            ),
        ) {
            let mut f = if spot { SPOT_BT.to_vec() } else { FUT_BT.to_vec() };
            for (at, byte, op) in edits {
                let at = at % (f.len() + 1);
                match op {
                    0 if at < f.len() => f[at] = byte,
                    1 => f.insert(at, byte),
                    _ if at < f.len() => { f.remove(at); }
                    _ => {}
                }
            }
            fast_agrees(&f);
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut f = b"{\"x\":".to_vec();
        f.extend(std::iter::repeat_n(b'[', 100_000));
        assert!(matches!(decode(&f), Err(DecodeError::TooDeep { .. })));
        let mut f = b"{\"x\":".to_vec();
        f.extend(std::iter::repeat_n(&b"{\"x\":"[..], 10_000).flatten());
        assert!(matches!(decode(&f), Err(DecodeError::TooDeep { .. })));
    }

    #[test]
    fn escapes_in_skipped_values_are_fine() {
        let f =
            br#"{"stream":"a\"b\u00e9","data":{"u":1,"s":"X","b":"1","B":"1","a":"1","A":"1","z":"\\\n"}}"#;
        assert_eq!(decode(f), Err(DecodeError::InvalidValue { field: "stream" }));
        let f = br#"{"stream":"ok","data":{"u":1,"s":"X","b":"1","B":"1","a":"1","A":"1","z":"\\\n\u00e9"}}"#;
        assert!(matches!(decode(f), Ok(Decoded::BookTicker(_))));
    }
}
