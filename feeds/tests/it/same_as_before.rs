//! The new decoder answers exactly what the old one ([`crate::reference`]) answers: the same value
//! (every `f64` bit for bit) or the same error, on every captured frame and on systematic variations
//! of them. The randomised version of this check, a million mutated frames, is in `fuzz.rs`.

use keel_feeds::binance::decode;
use proptest::prelude::*;
use serde_json::Value;

use crate::reference;
use crate::support::captures;

/// The two decoders' answers as text: equal exactly when every field is equal (see
/// [`crate::reference`]).
pub(crate) fn answers(frame: &[u8]) -> (String, String) {
    (format!("{:?}", decode(frame)), format!("{:?}", reference::decode(frame)))
}

#[track_caller]
fn assert_same(frame: &[u8]) {
    let (new, old) = answers(frame);
    assert_eq!(new, old, "{}", frame.escape_ascii());
}

fn is_book_ticker(frame: &[u8]) -> bool {
    frame.windows(12).any(|w| w == b"@bookTicker\"")
}

#[test]
fn every_captured_frame_decodes_as_before() {
    let mut n = 0;
    for cap in captures() {
        for frame in &cap.frames {
            assert_same(frame);
            n += 1;
        }
    }
    assert!(n > 2_000, "{n} frames");
}

#[test]
fn captured_frames_respelled_decode_as_before() {
    for cap in captures() {
        for frame in &cap.frames {
            let v: Value = serde_json::from_slice(frame).expect("captured frames are JSON");
            // Keys sorted (serde_json's map), compact and pretty; the bare payload; and the payload's
            // keys reversed, so that neither fast path's key order holds.
            let data = &v["data"];
            let mut reversed = String::from("{");
            if let Value::Object(o) = data {
                let fields: Vec<String> = o.iter().rev().map(|(k, v)| format!("{:?}:{v}", k)).collect();
                reversed.push_str(&fields.join(","));
            }
            reversed.push('}');
            for bytes in [
                serde_json::to_vec(&v).expect("json"),
                serde_json::to_vec_pretty(&v).expect("json"),
                serde_json::to_vec(data).expect("json"),
                reversed.into_bytes(),
            ] {
                assert_same(&bytes);
            }
        }
    }
}

#[test]
fn every_prefix_of_a_captured_frame_fails_as_before() {
    for cap in captures() {
        for (i, frame) in cap.frames.iter().enumerate() {
            if !is_book_ticker(frame) && i % 7 != 0 {
                continue;
            }
            for len in 0..frame.len() {
                assert_same(&frame[..len]);
            }
        }
    }
}

#[test]
fn every_single_byte_edit_of_book_ticker_frames_decodes_as_before() {
    const BYTES: &[u8] = b"\"\\0159.-+eE}{],: \x00\x1f\x7f\xff";
    for cap in captures() {
        for frame in cap.frames.iter().filter(|f| is_book_ticker(f)).take(40) {
            let mut f = frame.clone();
            for at in 0..frame.len() {
                for &b in BYTES {
                    f[at] = b;
                    assert_same(&f);
                }
                f[at] = frame[at];
                // Deletion and insertion at `at`.
                let mut g = frame.clone();
                g.remove(at);
                assert_same(&g);
                g.insert(at, b'0');
                g.insert(at, b'1');
                assert_same(&g);
            }
        }
    }
}

#[test]
fn hand_written_edge_cases_decode_as_before() {
    for f in [
        &br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#[..],
        br#"{"u":0,"s":"X","b":"0","B":"0.0","a":"-0","A":"-0.0"}"#,
        br#"{"u":18446744073709551615,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
        br#"{"u":18446744073709551616,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#,
        br#"{"u":1234567890123456,"s":"X","b":"1","B":"2","a":"3","A":"4","T":1234567890123456789,"E":0}"#,
        br#"{"u":1,"s":"X","b":"99999999999999.9","B":"999999999999999","a":"123456789.00000000","A":"4"}"#,
        br#"{"u":1,"s":"X","b":"90071992547409930.000","B":"0.000000000000000000001","a":"1e-7","A":"4E+2"}"#,
        br#"{"u":1,"s":"X","b":"1.7976931348623157e308","B":"1e309","a":"3","A":"4"}"#,
        br#"{"u":1,"s":"X","b":1.5,"B":2,"a":"3","A":"4"}"#,
        br#"{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","A":"5"}"#,
        br#"{"stream":"a","stream":"b","data":{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"}}"#,
        br#"{"stream":"a","data":{"u":1,"s":"X","b":"1","B":"2","a":"3","A":"4"},"data":{"e":"x"}}"#,
        br#"{"e":"bookTicker","u":1,"s":"X","b":"1","B":"2","a":"3","A":"4","T":1,"E":2,"e":"aggTrade"}"#,
        b"{\"u\":1,\"s\":\"\xff\xfe\",\"b\":\"1\",\"B\":\"2\",\"a\":\"3\",\"A\":\"4\"}",
        b"\xef\xbb\xbf{\"u\":1,\"s\":\"X\",\"b\":\"1\",\"B\":\"2\",\"a\":\"3\",\"A\":\"4\"}",
    ] {
        assert_same(f);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz::cases(5_000), ..ProptestConfig::default() })]

    /// The number parsers: the same answer, bit for bit, on any bytes and on number-like text.
    #[test]
    fn number_parsers_answer_as_before(
        s in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "-?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][+-]?[0-9]{0,5})?".prop_map(String::into_bytes),
            "[0-9]{1,18}\\.[0-9]{1,12}".prop_map(String::into_bytes),
        ],
    ) {
        prop_assert_eq!(
            keel_feeds::binance::parse_decimal(&s).map(f64::to_bits),
            reference::parse_decimal(&s).map(f64::to_bits),
            "{}", s.escape_ascii()
        );
        prop_assert_eq!(keel_feeds::binance::parse_u64(&s), reference::parse_u64(&s), "{}", s.escape_ascii());
    }

    /// Generated bookTicker frames: decimals of every length and shape, keys in Binance's order or
    /// shuffled, sometimes one repeated.
    #[test]
    fn generated_book_tickers_decode_as_before(
        u in prop_oneof![any::<u64>(), 0u64..1000],
        d in proptest::collection::vec("-?[0-9]{1,12}(\\.[0-9]{1,10})?", 5),
        sym in "[A-Z0-9]{0,20}",
        futures: bool,
        envelope: bool,
        shuffle in proptest::option::of(Just((0..9).collect::<Vec<usize>>()).prop_shuffle()),
        repeat in proptest::option::of(0usize..9),
    ) {
        let mut fields = vec![
            format!(r#""u":{u}"#), format!(r#""s":"{sym}""#), format!(r#""b":"{}""#, d[0]),
            format!(r#""B":"{}""#, d[1]), format!(r#""a":"{}""#, d[2]), format!(r#""A":"{}""#, d[3]),
        ];
        if futures {
            fields.insert(0, r#""e":"bookTicker""#.to_string());
            fields.extend([format!(r#""T":{}"#, u / 3), format!(r#""E":{}"#, u / 2)]);
        }
        if let Some(order) = shuffle {
            fields = order.iter().filter_map(|&i| fields.get(i).cloned()).collect();
        }
        if let Some(r) = repeat.filter(|&r| r < fields.len()) {
            let again = fields[r].replace(&d[0], &d[4]);
            fields.push(again);
        }
        let body = format!("{{{}}}", fields.join(","));
        let frame = if envelope { format!(r#"{{"stream":"x@bookTicker","data":{body}}}"#) } else { body };
        let (new, old) = answers(frame.as_bytes());
        prop_assert_eq!(new, old, "{}", frame);
    }
}
