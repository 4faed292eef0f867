//! Properties of the split optimiser against exact single-pool quotes and a brute-force grid.
//!
//! Nets are exact integers (`i128` base units; gas rounded up per pool as the split rounds it).
//! The split must never lose to a single pool, and may fall short of the grid search by at most
//! [`GRID_TOLERANCE_REL`] of the output plus [`GRID_TOLERANCE_UNITS`] (the grid's refinement
//! reaches one unit, so it can find the last rounding units the split's polish leaves). Before the
//! exact subset search this allowed 1e-6 of the output, in f64.

use alloy_primitives::U256;
use keel_amm::pool::{PoolEntry, SwapAmount};
use keel_amm::split::{Split, SplitError, candidate_paths, split};
use proptest::prelude::*;

use crate::common::{A, B, H, Rng, e18, mixed_pools, v2, v3, v3_pool};

/// Relative allowance of the split against the grid, of the order's output.
const GRID_TOLERANCE_REL: f64 = 1e-15;
/// Absolute allowance of the split against the grid, in base units.
const GRID_TOLERANCE_UNITS: i128 = 8;

fn to_i128(x: U256) -> i128 {
    i128::try_from(x).expect("amounts fit i128")
}

/// Gas of one pool in output units, rounded up as the split rounds it.
fn gas_units(gas: u64, per_gas: f64) -> i128 {
    (gas as f64 * per_gas).ceil() as i128
}

/// Exact net output (output − gas of the pools used) of an exact-input allocation over direct A→B
/// (or B→A) pools; `None` when a leg cannot be filled.
fn net_of(pools: &[PoolEntry], zfo: bool, alloc: &[U256], per_gas: f64) -> Option<i128> {
    let mut net = 0;
    for (p, &x) in pools.iter().zip(alloc) {
        if x.is_zero() {
            continue;
        }
        let q = p.pool().quote_exact_in(zfo, x).ok()?;
        if q.amount_in < x {
            return None;
        }
        net += to_i128(q.amount_out) - gas_units(p.meta.gas, per_gas);
    }
    Some(net)
}

/// The most a pool can deliver in one direction: the output of an input far beyond its depth.
fn max_output(pool: &PoolEntry, zfo: bool) -> U256 {
    pool.pool().quote_exact_in(zfo, U256::from(u128::MAX)).map(|q| q.amount_out).unwrap_or_default()
}

fn split_net(s: &Split, per_gas: f64) -> i128 {
    s.legs.iter().map(|l| to_i128(l.amount_out) - gas_units(l.gas, per_gas)).sum()
}

/// Cases per property: 24 by default (the grid search is slow in debug builds), more with
/// `PROPTEST_CASES=N`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn frac(total: U256, num: u64, den: u64) -> U256 {
    total * U256::from(num) / U256::from(den)
}

/// Best net over a grid of allocations of `total` across 2 or 3 pools (all subsets included, since
/// the grid has 0 on every axis), refined by halving steps around the best point.
fn grid_best(pools: &[PoolEntry], zfo: bool, total: U256, per_gas: f64) -> i128 {
    let n = pools.len();
    let steps: u64 = if n == 2 { 400 } else { 40 };
    let mut best = i128::MIN;
    let mut best_alloc = vec![U256::ZERO; n];
    let eval = |alloc: &[U256], best: &mut i128, best_alloc: &mut Vec<U256>| {
        if let Some(v) = net_of(pools, zfo, alloc, per_gas)
            && v > *best
        {
            *best = v;
            best_alloc.copy_from_slice(alloc);
        }
    };
    if n == 2 {
        for i in 0..=steps {
            let a = frac(total, i, steps);
            eval(&[a, total - a], &mut best, &mut best_alloc);
        }
    } else {
        for i in 0..=steps {
            for j in 0..=(steps - i) {
                let a = frac(total, i, steps);
                let b = frac(total, j, steps);
                eval(&[a, b, total - a - b], &mut best, &mut best_alloc);
            }
        }
    }
    // local refinement: move a shrinking step between every ordered pair
    let mut step = total / U256::from(steps);
    while !step.is_zero() {
        let mut improved = false;
        for i in 0..n {
            for j in 0..n {
                if i == j || best_alloc[i] < step {
                    continue;
                }
                let mut a = best_alloc.clone();
                a[i] -= step;
                a[j] += step;
                let before = best;
                eval(&a, &mut best, &mut best_alloc);
                improved |= best > before;
            }
        }
        if !improved {
            step >>= 1usize;
        }
    }
    best
}

fn check_split(pools: &[PoolEntry], zfo: bool, total: U256, per_gas: f64) -> Result<(), TestCaseError> {
    let (sell, buy) = if zfo { (A, B) } else { (B, A) };
    let paths = candidate_paths(pools, sell, buy, true);
    let s = split(pools, &paths, SwapAmount::ExactIn(total), per_gas)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    // leg inputs sum to the order, and every leg re-quotes to its amounts
    let sum = s.legs.iter().fold(U256::ZERO, |a, l| a + l.amount_in);
    prop_assert_eq!(sum, total);
    prop_assert_eq!(s.amount_in, total);
    for l in &s.legs {
        let q = pools[l.first.hop.pool].pool().quote_exact_in(l.first.hop.zero_for_one, l.amount_in).unwrap();
        prop_assert_eq!(q.amount_out, l.amount_out);
    }
    let net = split_net(&s, per_gas);
    // never worse than the best single pool, exactly
    for (i, p) in pools.iter().enumerate() {
        let mut alloc = vec![U256::ZERO; pools.len()];
        alloc[i] = total;
        if let Some(v) = net_of(pools, zfo, &alloc, per_gas) {
            prop_assert!(net >= v, "single pool {} nets {v}, split {net}", p.meta.id);
        }
    }
    // never worse than the grid beyond the float model's resolution and rounding
    let g = grid_best(pools, zfo, total, per_gas);
    let allowed = (to_i128(s.amount_out) as f64 * GRID_TOLERANCE_REL) as i128 + GRID_TOLERANCE_UNITS;
    prop_assert!(net >= g - allowed, "grid {g} split {net}: short by {} (allowed {allowed})", g - net);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), ..ProptestConfig::default() })]

    /// 2–3 mixed V2/V3 pools, both directions, with and without gas.
    #[test]
    fn split_beats_single_pools_and_grid(
        seed in any::<u64>(),
        n in 2usize..=3,
        first_v3 in any::<bool>(),
        zfo in any::<bool>(),
        size in 1u64..2_000,
        gas_level in 0u32..3,
    ) {
        let pools = mixed_pools(seed, n, 40, first_v3);
        let total = e18(size);
        // gas: none, or about 1e-6 / 1e-4 of a 1e18 order per 100k gas
        let per_gas = [0.0, 1e7, 1e9][gas_level as usize];
        check_split(&pools, zfo, total, per_gas)?;
    }

    /// Exact-output splits deliver exactly the amount, and cost no more than any single pool.
    #[test]
    fn exact_out_delivers_exactly(
        seed in any::<u64>(),
        n in 1usize..=5,
        first_v3 in any::<bool>(),
        zfo in any::<bool>(),
        size in 1u64..2_000,
        gas_on in any::<bool>(),
    ) {
        let pools = mixed_pools(seed, n, 40, first_v3);
        let (sell, buy) = if zfo { (A, B) } else { (B, A) };
        let want = e18(size);
        let per_gas = if gas_on { 1e9 } else { 0.0 };
        let paths = candidate_paths(&pools, sell, buy, true);
        let s = match split(&pools, &paths, SwapAmount::ExactOut(want), per_gas) {
            Ok(s) => s,
            // a refusal is right only when the pools together really hold (about) less than asked
            Err(SplitError::InsufficientLiquidity) => {
                let capacity = pools.iter().fold(U256::ZERO, |a, p| a + max_output(p, zfo));
                prop_assert!(capacity < want + want / U256::from(1_000u64),
                    "refused {want} with {capacity} available");
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        prop_assert_eq!(s.amount_out, want);
        let sum_out = s.legs.iter().fold(U256::ZERO, |a, l| a + l.amount_out);
        let sum_in = s.legs.iter().fold(U256::ZERO, |a, l| a + l.amount_in);
        prop_assert_eq!(sum_out, want);
        prop_assert_eq!(sum_in, s.amount_in);
        for l in &s.legs {
            let q = pools[l.first.hop.pool].pool().quote_exact_out(l.first.hop.zero_for_one, l.amount_out).unwrap();
            prop_assert_eq!(q.amount_in, l.amount_in);
        }
        if !gas_on {
            for p in &pools {
                if let Ok(q) = p.pool().quote_exact_out(zfo, want) {
                    prop_assert!(s.amount_in <= q.amount_in, "single {} pays {}, split {}", p.meta.id, q.amount_in, s.amount_in);
                }
            }
        }
    }

    /// Larger mixed sets (up to 8 pools) still never lose to a single pool.
    #[test]
    fn many_pools_never_lose_to_one(seed in any::<u64>(), n in 4usize..=8, size in 1u64..5_000, gas_on in any::<bool>()) {
        let pools = mixed_pools(seed, n, 60, seed % 2 == 0);
        let total = e18(size);
        let per_gas = if gas_on { 1e9 } else { 0.0 };
        let paths = candidate_paths(&pools, A, B, true);
        let s = split(&pools, &paths, SwapAmount::ExactIn(total), per_gas).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(s.amount_in, total);
        let net = split_net(&s, per_gas);
        for (i, _) in pools.iter().enumerate() {
            let mut alloc = vec![U256::ZERO; pools.len()];
            alloc[i] = total;
            if let Some(v) = net_of(&pools, true, &alloc, per_gas) {
                prop_assert!(net >= v);
            }
        }
    }
}

#[test]
fn v3_split_walks_ticks_and_matches_grid() {
    // two V3 pools with narrow ladders (the order crosses many ticks) and one V2 pool
    let mut rng = Rng(7);
    let mut ladder = |spacing: i32| -> Vec<(i32, i32, u128)> {
        (0..50)
            .map(|_| {
                let lo = -spacing * rng.range(1, 30) as i32;
                let hi = spacing * rng.range(1, 30) as i32;
                (lo, hi, 10u128.pow(21) * rng.range(1, 10) as u128)
            })
            .collect()
    };
    let pools = vec![
        v3("v3-a", A, B, v3_pool(3000, 60, 0, &ladder(60)), 130_000),
        v3("v3-b", A, B, v3_pool(500, 10, 0, &ladder(10)), 130_000),
        v2("v2-c", A, B, e18(5_000), e18(5_000), 90_000),
    ];
    for size in [1u64, 50, 500, 3_000] {
        check_split(&pools, true, e18(size), 0.0).unwrap();
        check_split(&pools, false, e18(size), 1e9).unwrap();
    }
}

#[test]
fn two_hop_route_is_used_when_it_pays() {
    // a shallow direct pool and a deep path through the hub
    let pools = vec![
        v2("ab", A, B, e18(10), e18(10), 90_000),
        v2("ah", A, H, e18(100_000), e18(100_000), 90_000),
        v2("bh", B, H, e18(100_000), e18(100_000), 90_000),
    ];
    let paths = candidate_paths(&pools, A, B, true);
    assert_eq!(paths.len(), 2);
    let s = split(&pools, &paths, SwapAmount::ExactIn(e18(100)), 1e9).unwrap();
    let two = s.legs.iter().find(|l| l.second.is_some()).expect("two-hop leg");
    assert_eq!(two.first.hop.pool, 1);
    assert_eq!(two.second.as_ref().unwrap().hop.pool, 2);
    assert_eq!(two.second.as_ref().unwrap().quote.amount_in, two.first.quote.amount_out);
    let direct = pools[0].pool().quote_exact_in(true, e18(100)).unwrap().amount_out;
    assert!(s.amount_out > direct * U256::from(5u8));
    // small order: the direct pool is better, the two-hop path's double fee and gas do not pay
    let small = split(&pools, &paths, SwapAmount::ExactIn(e18(1) / U256::from(1000u32)), 1e9).unwrap();
    assert_eq!(small.legs.len(), 1);
    assert!(small.legs[0].second.is_none());
}
