//! Decoding one Binance `bookTicker` frame: Keel's borrowed decoder against plain `serde_json` into
//! an owned struct (the baseline rows).
//!
//! `cargo bench -p keel-feeds --bench decode`
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_feeds::binance::{Decoded, InstrumentTable, decode, to_event};
use serde::Deserialize;

const SPOT: &[u8] = br#"{"stream":"nknusdt@bookTicker","data":{"u":499869768,"s":"NKNUSDT","b":"0.35210000","B":"672.00000000","a":"0.35260000","A":"3199.00000000"}}"#;
const FUTURES: &[u8] = br#"{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT","b":"7.6110","B":"2","a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}}"#;

/// Baseline: what a straightforward serde client would write.
#[allow(non_snake_case, dead_code)]
#[derive(Debug, Deserialize)]
struct Envelope {
    stream: String,
    data: BookTickerOwned,
}

#[allow(non_snake_case, dead_code)]
#[derive(Debug, Deserialize)]
struct BookTickerOwned {
    #[serde(default)]
    e: Option<String>,
    u: u64,
    s: String,
    b: String,
    B: String,
    a: String,
    A: String,
    #[serde(default)]
    E: Option<u64>,
    #[serde(default)]
    T: Option<u64>,
}

fn serde_owned(frame: &[u8]) -> Envelope {
    serde_json::from_slice(frame).expect("valid frame")
}

/// Baseline plus the four decimal strings parsed to `f64`, i.e. the same information as our decoder.
fn serde_owned_f64(frame: &[u8]) -> (u64, f64, f64, f64, f64) {
    let e = serde_owned(frame);
    let p = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    (e.data.u, p(&e.data.b), p(&e.data.B), p(&e.data.a), p(&e.data.A))
}

fn bench(c: &mut Criterion) {
    let table = InstrumentTable::new(["NKNUSDT", "SUSHIUSDT", "ETHUSDT", "BTCUSDT"]).expect("valid symbols");
    for (name, frame) in [("spot", SPOT), ("futures", FUTURES)] {
        assert!(matches!(decode(frame), Ok(Decoded::BookTicker(_))));
        let mut g = c.benchmark_group(format!("bookTicker_{name}"));
        g.bench_function("baseline_serde_json_owned", |b| b.iter(|| serde_owned(black_box(frame))));
        g.bench_function("baseline_serde_json_owned_f64", |b| b.iter(|| serde_owned_f64(black_box(frame))));
        g.bench_function("keel_decode", |b| b.iter(|| decode(black_box(frame))));
        g.bench_function("keel_decode_to_event", |b| {
            b.iter(|| decode(black_box(frame)).ok().and_then(|d| to_event(&d, &table, 1)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
