//! Every frame of the captured sessions decodes; values agree with `serde_json` + `str::parse`.

use keel_engine::Event;
use keel_feeds::binance::{Decoded, InstrumentTable, Mapped, decode, map_decoded, to_event};
use serde_json::Value;

use crate::support::captures;

#[derive(Debug, Default)]
struct Counts {
    book_ticker: usize,
    agg_trade: usize,
    depth: usize,
    kline: usize,
    other: usize,
}

#[test]
fn every_captured_frame_decodes() {
    for cap in captures() {
        let mut n = Counts::default();
        for (i, frame) in cap.frames.iter().enumerate() {
            match decode(frame) {
                Ok(Decoded::BookTicker(_)) => n.book_ticker += 1,
                Ok(Decoded::AggTrade(_)) => n.agg_trade += 1,
                Ok(Decoded::DepthUpdate(_)) => n.depth += 1,
                Ok(Decoded::Kline(_)) => n.kline += 1,
                Ok(_) => n.other += 1,
                Err(e) => panic!("{} frame {i}: {e}: {}", cap.name, String::from_utf8_lossy(frame)),
            }
        }
        assert!(n.book_ticker > 0 && n.agg_trade > 0 && n.depth > 0 && n.kline > 0, "{}: {n:?}", cap.name);
        assert_eq!(n.other, 0, "{}", cap.name);
        // The decoder's kinds agree with the stream names of the envelopes.
        assert_eq!(n.book_ticker, cap.frames_of("bookTicker").len(), "{}", cap.name);
        assert_eq!(n.agg_trade, cap.frames_of("aggTrade").len(), "{}", cap.name);
        assert_eq!(n.depth, cap.frames_of("depth@100ms").len(), "{}", cap.name);
        assert_eq!(n.kline, cap.frames_of("kline_1m").len(), "{}", cap.name);
        assert_eq!(n.book_ticker + n.agg_trade + n.depth + n.kline, cap.frames.len());
    }
}

fn dec(v: &Value) -> f64 {
    v.as_str().expect("decimal string").parse::<f64>().expect("decimal")
}

fn int(v: &Value) -> u64 {
    v.as_u64().expect("integer")
}

fn opt_int(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn same(a: f64, b: f64, what: &str, frame: &[u8]) {
    assert_eq!(a.to_bits(), b.to_bits(), "{what}: {a} != {b} in {}", String::from_utf8_lossy(frame));
}

/// Checks one decoded payload against serde_json's view of the same payload.
fn check_against_serde(d: &Decoded<'_>, data: &Value, frame: &[u8]) {
    let sym = data["s"].as_str().expect("s");
    match d {
        Decoded::BookTicker(t) => {
            assert_eq!(t.symbol.as_str(), Some(sym));
            assert_eq!(t.update_id, int(&data["u"]));
            same(t.bid, dec(&data["b"]), "b", frame);
            same(t.bid_qty, dec(&data["B"]), "B", frame);
            same(t.ask, dec(&data["a"]), "a", frame);
            same(t.ask_qty, dec(&data["A"]), "A", frame);
            assert_eq!(t.event_ms, opt_int(&data["E"]));
            assert_eq!(t.transact_ms, opt_int(&data["T"]));
        }
        Decoded::AggTrade(t) => {
            assert_eq!(t.symbol.as_str(), Some(sym));
            assert_eq!(t.agg_id, int(&data["a"]));
            same(t.price, dec(&data["p"]), "p", frame);
            same(t.qty, dec(&data["q"]), "q", frame);
            assert_eq!(t.first_trade_id, int(&data["f"]));
            assert_eq!(t.last_trade_id, int(&data["l"]));
            assert_eq!(t.trade_ms, int(&data["T"]));
            assert_eq!(t.event_ms, int(&data["E"]));
            assert_eq!(t.buyer_is_maker, data["m"].as_bool().expect("m"));
        }
        Decoded::DepthUpdate(u) => {
            assert_eq!(u.symbol.as_str(), Some(sym));
            assert_eq!(u.first_id, int(&data["U"]));
            assert_eq!(u.last_id, int(&data["u"]));
            assert_eq!(u.prev_last_id, opt_int(&data["pu"]));
            assert_eq!(u.event_ms, opt_int(&data["E"]));
            assert_eq!(u.transact_ms, opt_int(&data["T"]));
            for (levels, side) in [(u.bids, "b"), (u.asks, "a")] {
                let want = data[side].as_array().expect("levels");
                assert_eq!(levels.len(), want.len());
                let got: Vec<(f64, f64)> = levels.iter().collect();
                assert_eq!(got.len(), want.len());
                for ((p, q), w) in got.iter().zip(want) {
                    same(*p, dec(&w[0]), "level price", frame);
                    same(*q, dec(&w[1]), "level qty", frame);
                }
            }
        }
        Decoded::Kline(k) => {
            let kv = &data["k"];
            assert_eq!(k.symbol.as_str(), Some(sym));
            assert_eq!(k.interval, kv["i"].as_str().expect("i").as_bytes());
            assert_eq!(k.open_ms, int(&kv["t"]));
            assert_eq!(k.close_ms, int(&kv["T"]));
            same(k.open, dec(&kv["o"]), "o", frame);
            same(k.high, dec(&kv["h"]), "h", frame);
            same(k.low, dec(&kv["l"]), "l", frame);
            same(k.close, dec(&kv["c"]), "c", frame);
            same(k.volume, dec(&kv["v"]), "v", frame);
            assert_eq!(k.trades, int(&kv["n"]));
            assert_eq!(k.is_closed, kv["x"].as_bool().expect("x"));
            assert_eq!(k.event_ms, int(&data["E"]));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn decoded_values_equal_serde_json_for_every_frame() {
    let mut checked = 0;
    for cap in captures() {
        for frame in &cap.frames {
            let v: Value = serde_json::from_slice(frame).expect("captured frames are JSON");
            let d = decode(frame).expect("decodes");
            check_against_serde(&d, &v["data"], frame);
            checked += 1;
        }
    }
    assert_eq!(checked, captures().iter().map(|c| c.frames.len()).sum::<usize>());
}

#[test]
fn raw_single_stream_payloads_decode_the_same() {
    for cap in captures() {
        for frame in &cap.frames {
            let v: Value = serde_json::from_slice(frame).expect("json");
            let raw = serde_json::to_vec(&v["data"]).expect("re-encode");
            let d = decode(&raw).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)));
            check_against_serde(&d, &v["data"], &raw);
            // Pretty-printed (whitespace everywhere) too.
            let pretty = serde_json::to_vec_pretty(&v).expect("re-encode");
            assert_eq!(decode(&pretty).expect("pretty decodes"), decode(frame).expect("decodes"));
        }
    }
}

#[test]
fn every_strict_prefix_of_a_frame_is_an_error() {
    for cap in captures() {
        for frame in cap.frames.iter().step_by(7) {
            for len in 0..frame.len() {
                assert!(decode(&frame[..len]).is_err(), "{} prefix {len} accepted", cap.name);
            }
        }
    }
}

#[test]
fn capture_frames_map_to_engine_events() {
    for cap in captures() {
        let symbols = cap.symbols();
        let table = InstrumentTable::new(&symbols).expect("table");
        let (mut quotes, mut trades) = (0, 0);
        for (i, frame) in cap.frames.iter().enumerate() {
            let d = decode(frame).expect("decodes");
            match to_event(&d, &table, i as u64) {
                Some(Event::Quote(q)) => {
                    let Decoded::BookTicker(t) = d else { panic!("quote from {d:?}") };
                    assert_eq!(table.symbol(q.instrument).map(str::as_bytes), Some(t.symbol.as_bytes()));
                    assert_eq!((q.bid, q.ask, q.update_id, q.recv_ns), (t.bid, t.ask, t.update_id, i as u64));
                    quotes += 1;
                }
                Some(Event::Trade(t)) => {
                    assert_eq!(t.recv_ns, i as u64);
                    trades += 1;
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => assert!(matches!(d, Decoded::DepthUpdate(_) | Decoded::Kline(_))),
            }
        }
        assert_eq!(quotes, cap.frames_of("bookTicker").len());
        assert_eq!(trades, cap.frames_of("aggTrade").len());

        // Without the first symbol, its quotes and trades are unknown-symbol skips.
        let partial = InstrumentTable::new(&symbols[1..]).expect("table");
        let first = symbols[0].as_bytes();
        let mut unknown = 0;
        for frame in &cap.frames {
            let d = decode(frame).expect("decodes");
            if map_decoded(&d, &partial, 0) == Mapped::UnknownSymbol {
                let sym = match d {
                    Decoded::BookTicker(t) => t.symbol,
                    Decoded::AggTrade(t) => t.symbol,
                    _ => panic!("unknown symbol from {d:?}"),
                };
                assert_eq!(sym.as_bytes(), first);
                unknown += 1;
            }
        }
        assert!(unknown > 0, "{}", cap.name);
    }
}
