//! Decoding Binance `bookTicker` frames: Keel's borrowed decoder against `serde_json` (the baseline
//! rows), on every `bookTicker` frame of the captured sessions in `tests/data/`.
//!
//! Groups: `bookTicker_spot` (the 212 frames of the Binance and Binance.US captures) and
//! `bookTicker_futures` (the 613 frames of the USD-M futures capture). One iteration decodes every
//! frame of the group once, so `time / frames` is the time per frame (criterion's `thrpt` row gives
//! frames per second).
//!
//! Rows:
//! * `keel_decode`: [`keel_feeds::binance::decode`] (values parsed to `f64`/`u64`, symbol borrowed).
//! * `keel_decode_to_event`: the same, then the symbol lookup and the engine event.
//! * `keel_decode_before`: the decoder before this rewrite (`tests/it/reference/`), for the speed-up.
//! * `serde_json_borrowed`: `serde_json::from_slice` into a struct of borrowed `&str` fields
//!   (zero-copy, decimals left as text): **the fair baseline**.
//! * `serde_json_borrowed_f64`: the same, plus `str::parse::<f64>` of the four decimals, i.e. the
//!   information our decoder returns.
//! * `serde_json_owned`: `serde_json::from_slice` into `String` fields (what a straightforward serde
//!   client writes; the baseline of the first version of this bench).
//!
//! `cargo bench -p keel-feeds --bench decode`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

/// The decoder before this rewrite, verbatim (uses `thiserror`).
#[path = "../tests/it/reference/mod.rs"]
mod reference;

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keel_feeds::binance::{Decoded, InstrumentTable, decode, to_event};
use serde::Deserialize;

/// Zero-copy baseline: the envelope with borrowed string fields.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct EnvelopeBorrowed<'a> {
    stream: &'a str,
    #[serde(borrow)]
    data: BookTickerBorrowed<'a>,
}

#[allow(non_snake_case, dead_code)]
#[derive(Debug, Deserialize)]
struct BookTickerBorrowed<'a> {
    #[serde(default, borrow)]
    e: Option<&'a str>,
    u: u64,
    s: &'a str,
    b: &'a str,
    B: &'a str,
    a: &'a str,
    A: &'a str,
    #[serde(default)]
    E: Option<u64>,
    #[serde(default)]
    T: Option<u64>,
}

/// Owned baseline: what a straightforward serde client would write.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct EnvelopeOwned {
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

fn serde_borrowed(frame: &[u8]) -> Option<EnvelopeBorrowed<'_>> {
    serde_json::from_slice(frame).ok()
}

fn serde_owned(frame: &[u8]) -> Option<EnvelopeOwned> {
    serde_json::from_slice(frame).ok()
}

/// Borrowed baseline plus the four decimals parsed to `f64`: the same information as our decoder.
fn serde_borrowed_f64(frame: &[u8]) -> Option<(u64, f64, f64, f64, f64)> {
    let e = serde_borrowed(frame)?;
    let p = |s: &str| s.parse::<f64>().ok();
    Some((e.data.u, p(e.data.b)?, p(e.data.B)?, p(e.data.a)?, p(e.data.A)?))
}

/// The `bookTicker` frames of one captured session (format: `tests/data/ATTRIBUTION.md`).
fn book_tickers(file: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.contains(" <- "))
        .filter_map(|l| l.split_once(": ").map(|(_, frame)| frame))
        .filter(|f| f.contains("@bookTicker\""))
        .map(|f| f.as_bytes().to_vec())
        .collect()
}

/// Runs `f` on every frame (each passed through `black_box`); counts the successes.
#[inline(always)]
fn each(frames: &[&[u8]], f: impl Fn(&[u8]) -> bool) -> u32 {
    let mut n = 0u32;
    for &frame in frames {
        n += u32::from(f(black_box(frame)));
    }
    n
}

fn bench(c: &mut Criterion) {
    let spot: Vec<Vec<u8>> =
        ["BINANCE.ws.1.0", "BINANCE_US.ws.1.0"].into_iter().flat_map(book_tickers).collect();
    let futures = book_tickers("BINANCE_FUTURES.ws.1.0");
    for (name, frames) in [("spot", &spot), ("futures", &futures)] {
        let mut symbols: Vec<String> = Vec::new();
        for f in frames.iter() {
            let Ok(Decoded::BookTicker(t)) = decode(f) else { panic!("not a bookTicker: {f:?}") };
            let s = t.symbol.as_str().expect("ASCII symbol").to_string();
            if !symbols.contains(&s) {
                symbols.push(s);
            }
            assert!(
                serde_borrowed(f).is_some() && serde_owned(f).is_some() && serde_borrowed_f64(f).is_some()
            );
        }
        let table = InstrumentTable::new(&symbols).expect("valid symbols");
        let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let mut g = c.benchmark_group(format!("bookTicker_{name}"));
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function("keel_decode", |b| b.iter(|| each(&frames, |f| black_box(decode(f)).is_ok())));
        g.bench_function("keel_decode_to_event", |b| {
            b.iter(|| {
                each(&frames, |f| black_box(decode(f).ok().and_then(|d| to_event(&d, &table, 1))).is_some())
            })
        });
        g.bench_function("keel_decode_before", |b| {
            b.iter(|| each(&frames, |f| black_box(reference::decode(f)).is_ok()))
        });
        g.bench_function("serde_json_borrowed", |b| {
            b.iter(|| each(&frames, |f| black_box(serde_borrowed(f)).is_some()))
        });
        g.bench_function("serde_json_borrowed_f64", |b| {
            b.iter(|| each(&frames, |f| black_box(serde_borrowed_f64(f)).is_some()))
        });
        g.bench_function("serde_json_owned", |b| {
            b.iter(|| each(&frames, |f| black_box(serde_owned(f)).is_some()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
