//! Split optimiser benchmarks: one exact-input order split across 2, 4 and 8 pools (mixed V2/V3,
//! about 100 initialized ticks per V3 pool), with gas on, plus baseline rows (one exact V2 quote,
//! one exact V3 quote of the same order). The `select` group measures the choice of paths alone
//! (`choose_paths`: the paths' curves and the exact subset search) on the same sets of 4 and 8
//! pools, with gas (the search at work) and without (baseline: the curves and one water-filling,
//! no subset to search), and on the hardest of 1000 random 8-pool V2 sets (the most subset solves).
//! After the criterion groups, a per-call latency histogram of the 8-pool split prints p50/p99/max.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::time::Instant;

use alloy_primitives::U256;
use criterion::{BenchmarkId, Criterion, criterion_group};
use keel_amm::pool::{PoolEntry, SwapAmount};
use keel_amm::split::{candidate_paths, choose_paths, split};

#[path = "../tests/it/common.rs"]
mod common;
#[path = "../tests/it/reference.rs"]
mod reference;

use common::{A, B, Rng, e18, mixed_pools};

/// Cost of one gas unit in output units (gas matters but rarely dominates a 100-token order).
const PER_GAS: f64 = 1e9;

/// 1000 tokens: a few percent of the deeper pools, so the optimum uses several of them.
fn order() -> SwapAmount {
    SwapAmount::ExactIn(e18(1_000))
}

fn pools(n: usize) -> Vec<PoolEntry> {
    mixed_pools(42, n, 100, true)
}

fn bench_split(c: &mut Criterion) {
    let mut g = c.benchmark_group("split");
    for n in [2usize, 4, 8] {
        let pools = pools(n);
        let paths = candidate_paths(&pools, A, B, true);
        let s = split(&pools, &paths, order(), PER_GAS).expect("split");
        let ticks: u32 = s.legs.iter().map(|l| l.first.quote.ticks_crossed).sum();
        eprintln!("{n} pools: {} legs, {ticks} ticks crossed, out {}", s.legs.len(), s.amount_out);
        g.bench_with_input(BenchmarkId::new("exact_in_gas", n), &n, |b, _| {
            b.iter(|| split(black_box(&pools), black_box(&paths), black_box(order()), PER_GAS))
        });
        g.bench_with_input(BenchmarkId::new("exact_out_gas", n), &n, |b, _| {
            b.iter(|| split(black_box(&pools), black_box(&paths), SwapAmount::ExactOut(e18(900)), PER_GAS))
        });
        g.bench_with_input(BenchmarkId::new("exact_in_no_gas", n), &n, |b, _| {
            b.iter(|| split(black_box(&pools), black_box(&paths), black_box(order()), 0.0))
        });
    }
    g.finish();

    let mut sel = c.benchmark_group("select");
    for n in [4usize, 8] {
        let pools = pools(n);
        let paths = candidate_paths(&pools, A, B, true);
        for (name, per_gas) in [("exact_in_gas", PER_GAS), ("exact_in_no_gas", 0.0)] {
            let ch = choose_paths(&pools, &paths, order(), per_gas).expect("choice");
            eprintln!(
                "select {name} {n} pools: {} of {} paths used, {} subset solves",
                ch.used.count_ones(),
                ch.live.count_ones(),
                ch.solves
            );
            sel.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| choose_paths(black_box(&pools), black_box(&paths), black_box(order()), per_gas))
            });
        }
    }
    let hard = hardest_case(1000);
    let paths =
        candidate_paths(&hard.pools, if hard.zfo { A } else { B }, if hard.zfo { B } else { A }, false);
    let ch = choose_paths(&hard.pools, &paths, hard.amount, hard.per_gas).expect("choice");
    eprintln!(
        "select hardest of 1000 8-pool V2 sets: {} of 8 paths used, {} subset solves",
        ch.used.count_ones(),
        ch.solves
    );
    sel.bench_function("exact_in_gas_hardest_of_1000/8", |b| {
        b.iter(|| {
            choose_paths(black_box(&hard.pools), black_box(&paths), black_box(hard.amount), hard.per_gas)
        })
    });
    sel.bench_function("split_hardest_of_1000/8", |b| {
        b.iter(|| split(black_box(&hard.pools), black_box(&paths), black_box(hard.amount), hard.per_gas))
    });
    sel.finish();

    let mut base = c.benchmark_group("baseline");
    let p = pools(2);
    base.bench_function("v3_quote_exact_in", |b| {
        b.iter(|| p[0].pool().quote_exact_in(true, black_box(e18(100))))
    });
    base.bench_function("v2_quote_exact_in", |b| {
        b.iter(|| p[1].pool().quote_exact_in(true, black_box(e18(100))))
    });
    base.bench_function("candidate_paths_8", |b| {
        let p8 = pools(8);
        b.iter(|| candidate_paths(black_box(&p8), A, B, true))
    });
    base.finish();
}

/// The random 8-pool V2 set (exact input, gas priced in; `tests/it/reference.rs`'s generator) whose
/// choice of paths takes the most subset solves, of `sets`.
fn hardest_case(sets: usize) -> reference::Case {
    let mut rng = Rng(0x6a4d_0001);
    let mut hardest: Option<(usize, usize, reference::Case)> = None;
    for k in 0..sets {
        let case = reference::random_case(&mut rng, 8, 0.0, true);
        let (sell, buy) = if case.zfo { (A, B) } else { (B, A) };
        let paths = candidate_paths(&case.pools, sell, buy, false);
        let Ok(c) = choose_paths(&case.pools, &paths, case.amount, case.per_gas) else { continue };
        if hardest.as_ref().is_none_or(|h| c.solves > h.0) {
            hardest = Some((c.solves, k, case));
        }
    }
    let (solves, k, case) = hardest.expect("some set can be split");
    eprintln!("hardest: set {k} of {sets} ({solves} subset solves)");
    case
}

/// p50 / p99 / max of single 8-pool split calls (candidate paths precomputed).
fn latency_report() {
    let pools = pools(8);
    let paths = candidate_paths(&pools, A, B, true);
    let mut ns: Vec<u64> = Vec::with_capacity(20_000);
    for i in 0..20_000u64 {
        // vary the size a little so branch predictors do not memorise one path
        let amount = SwapAmount::ExactIn(e18(500 + i % 1_000) + U256::from(i));
        let t = Instant::now();
        let r = split(black_box(&pools), black_box(&paths), amount, PER_GAS);
        ns.push(t.elapsed().as_nanos() as u64);
        black_box(r.ok());
    }
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)];
    println!(
        "split 8 pools, exact in + gas, 20000 calls: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs",
        q(0.5) as f64 / 1e3,
        q(0.99) as f64 / 1e3,
        q(0.999) as f64 / 1e3,
        *ns.last().unwrap_or(&0) as f64 / 1e3
    );
}

/// p50 / p99 of single `choose_paths` calls (the choice of paths alone) and of whole splits, on 200
/// random V2 sets of 4 and of 8 pools (exact input, gas worth 1e-6–1e-2 of the order;
/// `tests/it/reference.rs`'s generator), cycled over 20 000 calls each.
fn select_report() {
    for n in [4usize, 8] {
        let mut rng = Rng(0x6a4d_0002 ^ n as u64);
        let sets: Vec<_> = (0..200)
            .map(|_| {
                let case = reference::random_case(&mut rng, n, 0.0, true);
                let (sell, buy) = if case.zfo { (A, B) } else { (B, A) };
                let paths = candidate_paths(&case.pools, sell, buy, false);
                (case, paths)
            })
            .collect();
        let solves: Vec<usize> = sets
            .iter()
            .filter_map(|(c, p)| choose_paths(&c.pools, p, c.amount, c.per_gas).ok().map(|ch| ch.solves))
            .collect();
        let mean = solves.iter().sum::<usize>() as f64 / solves.len().max(1) as f64;
        let most = solves.iter().copied().max().unwrap_or(0);
        let time = |whole: bool| {
            let mut ns: Vec<u64> = Vec::with_capacity(20_000);
            for i in 0..20_000usize {
                let (c, p) = &sets[i % sets.len()];
                let t = Instant::now();
                if whole {
                    black_box(split(black_box(&c.pools), black_box(p), c.amount, c.per_gas).ok());
                } else {
                    black_box(choose_paths(black_box(&c.pools), black_box(p), c.amount, c.per_gas).ok());
                }
                ns.push(t.elapsed().as_nanos() as u64);
            }
            ns.sort_unstable();
            let q = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)] as f64 / 1e3;
            (q(0.5), q(0.99))
        };
        let (c50, c99) = time(false);
        let (s50, s99) = time(true);
        println!(
            "{n} random V2 pools, exact in + gas, 200 sets x 100 calls: choose_paths p50 {c50:.2} µs, \
             p99 {c99:.2} µs ({mean:.1} subset solves on average, {most} at most); split p50 {s50:.2} µs, \
             p99 {s99:.2} µs"
        );
    }
}

criterion_group!(benches, bench_split);

fn main() {
    benches();
    latency_report();
    select_report();
    Criterion::default().configure_from_args().final_summary();
}
