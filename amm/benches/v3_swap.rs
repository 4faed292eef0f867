//! Exact Uniswap V3 swap simulation: one swap crossing 10 initialized ticks, one that crosses none, and
//! single-step baselines (`computeSwapStep`, `getSqrtRatioAtTick`, `getTickAtSqrtRatio`) so the swap
//! figures read as multiples of one step.
//!
//! Run: `cargo bench -p keel-router --bench v3_swap`.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]
#![allow(missing_docs)]

use std::hint::black_box;

use alloy_primitives::{I256, U256};
use criterion::{Criterion, criterion_group, criterion_main};
use keel_amm::v3::swap_math::compute_swap_step;
use keel_amm::v3::tick_math::{get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio};
use keel_amm::v3::{MAX_TICK, V3Pool};

const SPACING: i32 = 60;
const E18: u128 = 1_000_000_000_000_000_000;

/// A 0.3% pool slightly above tick 0 with full-range liquidity plus 40 nested positions
/// (`-60k .. 60k`), i.e. an initialized tick every 60 ticks on both sides.
fn ladder_pool() -> V3Pool {
    let sqrt = get_sqrt_ratio_at_tick(0).expect("tick 0") + U256::from(1_000_000_000_000u64);
    let tick = get_tick_at_sqrt_ratio(sqrt).expect("in range");
    let mut pool = V3Pool::new(3000, SPACING, sqrt, tick, 0, &[]).expect("valid pool");
    let edge = (MAX_TICK / SPACING) * SPACING;
    pool.modify_position(-edge, edge, (100 * E18) as i128).expect("full range");
    for k in 1..=40 {
        pool.modify_position(-k * SPACING, k * SPACING, (10 * E18) as i128).expect("ladder");
    }
    pool
}

fn bench(c: &mut Criterion) {
    let pool = ladder_pool();
    // Exact input that ends between the 10th and 11th initialized tick below the price.
    let to_limit = pool
        .swap(true, I256::MAX, Some(get_sqrt_ratio_at_tick(-10 * SPACING - 30).expect("tick")))
        .expect("swap to limit");
    let amount_10 = to_limit.amount0;
    let r = pool.swap(true, amount_10, None).expect("swap");
    assert_eq!(r.ticks_crossed, 10, "bench setup: expected 10 crossings");
    let small = I256::try_from(1_000_000_000_000_000u64).expect("fits");
    let r = pool.swap(true, small, None).expect("swap");
    assert_eq!(r.ticks_crossed, 0, "bench setup: expected no crossing");

    let mut g = c.benchmark_group("v3_swap");
    g.bench_function("exact_in_cross_10_ticks", |b| {
        b.iter(|| black_box(&pool).swap(true, black_box(amount_10), None))
    });
    g.bench_function("exact_out_cross_10_ticks", |b| {
        let out = to_limit.amount1; // negative: exact output of what the exact-in swap yields
        b.iter(|| black_box(&pool).swap(true, black_box(out), None))
    });
    g.bench_function("exact_in_no_cross", |b| b.iter(|| black_box(&pool).swap(true, black_box(small), None)));
    g.bench_function("baseline_compute_swap_step", |b| {
        let cur = pool.sqrt_price_x96;
        let target = get_sqrt_ratio_at_tick(-SPACING).expect("tick");
        b.iter(|| {
            compute_swap_step(
                black_box(cur),
                black_box(target),
                black_box(pool.liquidity),
                black_box(small),
                3000,
            )
        })
    });
    g.bench_function("baseline_get_sqrt_ratio_at_tick", |b| {
        b.iter(|| get_sqrt_ratio_at_tick(black_box(-12_345)))
    });
    g.bench_function("baseline_get_tick_at_sqrt_ratio", |b| {
        let s = pool.sqrt_price_x96 - U256::from(1u64 << 50);
        b.iter(|| get_tick_at_sqrt_ratio(black_box(s)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
