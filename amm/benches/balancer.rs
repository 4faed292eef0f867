//! Exact Balancer V2 weighted-pool quotes: given-in and given-out on an 80/20 pool (a `LogExpMath`
//! power, exponent 4 or 0.25) and on a 50/50 pool of the 2022+ flavour (the exponent-1 shortcut,
//! no logarithm), with one `LogExpMath::pow` as the baseline.
//!
//! Run: `cargo bench -p keel-amm --bench balancer`.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]
#![allow(missing_docs)]

use std::hint::black_box;

use alloy_primitives::U256;
use criterion::{Criterion, criterion_group, criterion_main};
use keel_amm::balancer::{PowFlavour, WeightedPool, log_exp};

const E18: u128 = 1_000_000_000_000_000_000;

fn bench(c: &mut Criterion) {
    let balances = [U256::from(5_000u128 * E18), U256::from(3_000_000u128 * 1_000_000)];
    let w8020 = [U256::from(8 * E18 / 10), U256::from(2 * E18 / 10)];
    let w5050 = [U256::from(E18 / 2), U256::from(E18 / 2)];
    let fee = U256::from(3 * E18 / 1000);
    let v1 = WeightedPool::new(&balances, &w8020, &[18, 6], fee, PowFlavour::V1).expect("pool");
    let short = WeightedPool::new(&balances, &w5050, &[18, 6], fee, PowFlavour::Shortcuts).expect("pool");
    let amount_in = U256::from(3 * E18);
    let amount_out = U256::from(1_000u128 * 1_000_000);

    let mut g = c.benchmark_group("balancer_weighted");
    g.bench_function("baseline_logexp_pow", |b| {
        b.iter(|| log_exp::pow(black_box(U256::from(999 * E18 / 1000)), black_box(U256::from(4 * E18))))
    });
    g.bench_function("given_in_80_20", |b| {
        b.iter(|| black_box(&v1).swap_given_in(0, 1, black_box(amount_in)))
    });
    g.bench_function("given_out_80_20", |b| {
        b.iter(|| black_box(&v1).swap_given_out(0, 1, black_box(amount_out)))
    });
    g.bench_function("given_in_50_50_shortcut", |b| {
        b.iter(|| black_box(&short).swap_given_in(0, 1, black_box(amount_in)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
