//! Robustness: whatever the bytes, the decoder returns `Ok` or `Err`, never panics, and it accepts
//! and rejects the same frames as `serde_json` (up to the documented leniencies).

use keel_feeds::binance::{BookTicker, DecodeError, Decoded, decode};
use proptest::prelude::*;

use crate::support::captures;

/// Errors that mean "not JSON", as opposed to "JSON of the wrong shape".
fn is_syntax(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::Empty
            | DecodeError::UnexpectedEnd
            | DecodeError::UnexpectedByte { .. }
            | DecodeError::InvalidString { .. }
            | DecodeError::InvalidNumber { .. }
            | DecodeError::TrailingBytes { .. }
    )
}

/// Our verdict on syntax must match serde_json's, except where we are lenient on purpose: we do not
/// validate UTF-8 or surrogate pairs inside strings, nor the range of numbers we do not read.
fn agrees_with_serde(frame: &[u8]) -> Result<(), TestCaseError> {
    let ours = decode(frame);
    let theirs = serde_json::from_slice::<serde_json::Value>(frame);
    match (&ours, &theirs) {
        (Err(e), Ok(v)) if is_syntax(e) => {
            prop_assert!(false, "we said {e}, serde_json parsed {v}: {}", frame.escape_ascii());
        }
        (Ok(d), Err(e)) => {
            let lenient = std::str::from_utf8(frame).is_err()
                || frame.windows(2).any(|w| w == b"\\u")
                || e.to_string().contains("number out of range");
            prop_assert!(lenient, "we decoded {d:?}, serde_json said {e}: {}", frame.escape_ascii());
        }
        _ => {}
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(&b"{}[]\":,\\-.0123456789eE+ tfnu\x00\x1f\xff"[..]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), interesting.clone()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), interesting).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (any::<usize>(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    let n = frame.len().max(1);
    match *m {
        Mutation::Flip { at, bit } => {
            if let Some(b) = frame.get_mut(at % n) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Set { at, byte } => {
            if let Some(b) = frame.get_mut(at % n) {
                *b = byte;
            }
        }
        Mutation::Insert { at, byte } => frame.insert(at % (frame.len() + 1), byte),
        Mutation::Delete { at, len } => {
            let start = at % n;
            let end = (start + len).min(frame.len());
            if start < end {
                frame.drain(start..end);
            }
        }
        Mutation::Truncate { at } => frame.truncate(at % n),
        Mutation::Duplicate { at, len } => {
            let start = at % n;
            let end = (start + len).min(frame.len());
            if start < end {
                let piece = frame[start..end].to_vec();
                frame.splice(end..end, piece);
            }
        }
    }
}

fn real_frame(i: usize) -> Vec<u8> {
    let all = captures();
    let total: usize = all.iter().map(|c| c.frames.len()).sum();
    let mut i = i % total;
    for c in all {
        if i < c.frames.len() {
            return c.frames[i].clone();
        }
        i -= c.frames.len();
    }
    unreachable!("index within total")
}

fn decimal() -> impl Strategy<Value = String> {
    ("[0-9]{1,12}", proptest::option::of("[0-9]{1,10}")).prop_map(|(i, f)| match f {
        Some(f) => format!("{i}.{f}"),
        None => i,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
        agrees_with_serde(&bytes)?;
    }

    #[test]
    fn random_json_ish_text_never_panics(s in r#"[{}\[\]":,\\0-9a-zA-Z.\- ]{0,200}"#) {
        let _ = decode(s.as_bytes());
        agrees_with_serde(s.as_bytes())?;
    }

    #[test]
    fn mutated_real_frames_never_panic(i in any::<usize>(), muts in proptest::collection::vec(mutation(), 1..6)) {
        let mut frame = real_frame(i);
        for m in &muts {
            apply(&mut frame, m);
        }
        let _ = decode(&frame);
        agrees_with_serde(&frame)?;
    }

    /// Generated bookTicker frames (any key order, spot or futures form) decode to the values
    /// `str::parse` gives.
    #[test]
    fn generated_book_tickers_roundtrip(
        sym in "[A-Z0-9]{1,12}",
        u: u64,
        b in decimal(), bq in decimal(), a in decimal(), aq in decimal(),
        times in proptest::option::of((any::<u64>(), any::<u64>())),
        order in Just((0..9).collect::<Vec<usize>>()).prop_shuffle(),
        envelope: bool,
    ) {
        let mut fields = vec![
            format!(r#""u":{u}"#), format!(r#""s":"{sym}""#), format!(r#""b":"{b}""#),
            format!(r#""B":"{bq}""#), format!(r#""a":"{a}""#), format!(r#""A":"{aq}""#),
        ];
        if let Some((e, t)) = times {
            fields.extend([r#""e":"bookTicker""#.to_string(), format!(r#""E":{e}"#), format!(r#""T":{t}"#)]);
        }
        let body: Vec<&str> = order.iter().filter_map(|&i| fields.get(i).map(String::as_str)).collect();
        let payload = format!("{{{}}}", body.join(","));
        let frame = if envelope {
            format!(r#"{{"stream":"{}@bookTicker","data":{payload}}}"#, sym.to_lowercase())
        } else {
            payload
        };
        let p = |s: &str| s.parse::<f64>().expect("decimal");
        let (e, t) = times.unwrap_or((0, 0));
        let want = BookTicker {
            symbol: keel_feeds::binance::Symbol::new(sym.as_bytes()),
            update_id: u, bid: p(&b), bid_qty: p(&bq), ask: p(&a), ask_qty: p(&aq), event_ms: e, transact_ms: t,
        };
        prop_assert_eq!(decode(frame.as_bytes()), Ok(Decoded::BookTicker(want)));
    }
}
