//! A brute-force reference for the split's choice of pools, sharing no code with its float model.
//!
//! For a set of direct pools of one pair and an order, every non-empty subset (all `2ⁿ − 1`) is
//! allocated at its water level λ, the marginal output per input (after fees) at which its pools
//! together take the whole input (exact input) or give the whole output (exact output) without
//! gas. Each pool's amounts at λ come from its own formula: V2 in closed form from the reserves, V3
//! by an exact swap to the price that λ stands for (`γ·P` when selling token0). The amounts are
//! floored, their sum is fixed to the order on the largest leg, and the allocation is judged by
//! exact integer quotes. The subsets that come within [`POLISH_MARGIN`] of the best are then
//! polished by exact pairwise exchanges, every ordered pair, with steps from `order >> 32` halving
//! down to one unit, until no exchange of any size improves: the reference is a local optimum of
//! the exact integer objective on its subset at every scale, and the best over all subsets.
//!
//! Objective, as `i128` (the pool sets here stay far below 2¹²⁷): exact input,
//! `Σ outputs − Σ ⌈gas_i · per_gas⌉` in the bought token; exact output, `−(Σ inputs + Σ ⌈gas_i ·
//! per_gas / spot⌉)` in the sold token, `spot` being the best pool's spot rate (as the split
//! converts gas).

#![allow(dead_code, unreachable_pub)]

use alloy_primitives::{Address, U256};
use keel_amm::pool::{Pool, PoolEntry, PoolMeta, SwapAmount};
use keel_amm::split::Split;
use keel_amm::v3::{MAX_SQRT_RATIO, MIN_SQRT_RATIO};

use crate::common::{A, B, Rng, v3, v3_pool};

const Q96: f64 = 79_228_162_514_264_337_593_543_950_336.0;

/// Subsets whose unpolished net comes within this fraction of the best (plus 1000 units) are
/// polished too; polishing gains little (the floored water-filling is within about 1e-16 of the
/// reserves of the continuous optimum, and the loss is second order in that, except at a V3 pool's
/// liquidity end, where it is first order in about 1e-12 of the order).
pub const POLISH_MARGIN: f64 = 1e-10;

/// Gas cost of one pool in the objective's unit, rounded up as the split rounds it.
pub fn gas_units(gas: u64, per_gas: f64) -> i128 {
    if per_gas <= 0.0 { 0 } else { (gas as f64 * per_gas).ceil() as i128 }
}

fn to_i128(x: U256) -> i128 {
    i128::try_from(x).expect("amounts of these pool sets fit i128")
}

/// The objective's amount of one leg for `amount` on the order's side: output for exact input
/// (taking all of the input), input for exact output (delivering all of the output).
fn quote(p: &PoolEntry, zfo: bool, exact_in: bool, amount: U256) -> Option<U256> {
    if amount.is_zero() {
        return Some(U256::ZERO);
    }
    if exact_in {
        let q = p.pool().quote_exact_in(zfo, amount).ok()?;
        (q.amount_in == amount).then_some(q.amount_out)
    } else {
        p.pool().quote_exact_out(zfo, amount).ok().map(|q| q.amount_in)
    }
}

/// One random order on a random pool set.
#[derive(Debug, Clone)]
pub struct Case {
    pub pools: Vec<PoolEntry>,
    /// Selling token0.
    pub zfo: bool,
    pub amount: SwapAmount,
    /// Gas cost, bought-token units per gas.
    pub per_gas: f64,
}

impl Case {
    pub fn exact_in(&self) -> bool {
        matches!(self.amount, SwapAmount::ExactIn(_))
    }

    /// Gas cost per gas unit in the objective's unit (sold token for exact output, converted at
    /// the best spot rate as the split does).
    pub fn objective_per_gas(&self) -> f64 {
        if self.exact_in() {
            return self.per_gas;
        }
        let best = self.pools.iter().map(|p| spot(p, self.zfo)).fold(0.0, f64::max);
        self.per_gas / best
    }

    /// Exact objective of an allocation (one amount per pool on the order's side, zero = unused).
    pub fn exact_net(&self, alloc: &[U256]) -> Option<i128> {
        let (exact_in, per_gas) = (self.exact_in(), self.objective_per_gas());
        let mut net = 0i128;
        for (p, &a) in self.pools.iter().zip(alloc) {
            if a.is_zero() {
                continue;
            }
            let v = to_i128(quote(p, self.zfo, exact_in, a)?);
            net += if exact_in { v } else { -v } - gas_units(p.meta.gas, per_gas);
        }
        Some(net)
    }

    /// Exact objective of a split's legs (direct paths), gas rounded up per leg like
    /// [`exact_net`](Self::exact_net).
    pub fn split_net(&self, s: &Split) -> i128 {
        let per_gas = self.objective_per_gas();
        s.legs
            .iter()
            .map(|l| {
                let v = if self.exact_in() { to_i128(l.amount_out) } else { -to_i128(l.amount_in) };
                v - gas_units(l.gas, per_gas)
            })
            .sum()
    }
}

/// Spot marginal rate of pool `p` (output per input after fee, before any trade).
fn spot(p: &PoolEntry, zfo: bool) -> f64 {
    match p.pool() {
        Pool::V2 { reserve0, reserve1, fee_bps } => {
            let (ri, ro) = if zfo { (*reserve0, *reserve1) } else { (*reserve1, *reserve0) };
            (1.0 - f64::from(*fee_bps) / 1e4) * f64::from(ro) / f64::from(ri)
        }
        Pool::V3(v) => {
            let g = 1.0 - f64::from(v.fee) / 1e6;
            let s = f64::from(v.sqrt_price_x96) / Q96;
            if zfo { g * s * s } else { g / (s * s) }
        }
        Pool::Balancer(_) | Pool::Curve(_) | Pool::V4(_) => {
            panic!("the reference covers Uniswap V2/V3 pools only")
        }
    }
}

/// Input and output of pool `p` when its marginal rate has fallen to `lambda`, in base units: V3
/// exactly (a swap to the price limit λ stands for), V2 in closed form, floored: the marginal of
/// `γx·R_out/(R_in + γx)` is `γ·R_in·R_out/(R_in + γx)²`, so `x = (√(γ·R_in·R_out/λ) − R_in)/γ` and
/// `y = R_out − √(R_in·R_out·λ/γ)`.
fn take_exact(p: &PoolEntry, zfo: bool, lambda: f64) -> (U256, U256) {
    match p.pool() {
        Pool::V2 { reserve0, reserve1, fee_bps } => {
            let (ri, ro) = if zfo { (*reserve0, *reserve1) } else { (*reserve1, *reserve0) };
            let (ri, ro) = (f64::from(ri), f64::from(ro));
            let g = 1.0 - f64::from(*fee_bps) / 1e4;
            let x = ((g * ri * ro / lambda).sqrt() - ri) / g;
            if x <= 0.0 {
                return (U256::ZERO, U256::ZERO);
            }
            let y = ro - (ri * ro * lambda / g).sqrt();
            (U256::from(x.floor() as u128), U256::from(y.max(0.0).floor() as u128))
        }
        Pool::Balancer(_) | Pool::Curve(_) | Pool::V4(_) => {
            panic!("the reference covers Uniswap V2/V3 pools only")
        }
        Pool::V3(v) => {
            let g = 1.0 - f64::from(v.fee) / 1e6;
            let price = if zfo { lambda / g } else { g / lambda };
            let sqrt = price.sqrt() * Q96;
            if sqrt.is_nan() || sqrt >= 3.4e38 {
                return (U256::ZERO, U256::ZERO);
            }
            let one = U256::from(1u8);
            let limit = U256::from(sqrt as u128).clamp(MIN_SQRT_RATIO + one, MAX_SQRT_RATIO - one);
            let on_side = if zfo { limit < v.sqrt_price_x96 } else { limit > v.sqrt_price_x96 };
            if !on_side {
                return (U256::ZERO, U256::ZERO);
            }
            let huge = SwapAmount::ExactIn(U256::from(1u128 << 120));
            p.pool()
                .swap(zfo, huge, Some(limit))
                .map_or((U256::ZERO, U256::ZERO), |q| (q.amount_in, q.amount_out))
        }
    }
}

/// [`take_exact`] as floats, for the level search.
fn take(p: &PoolEntry, zfo: bool, lambda: f64) -> (f64, f64) {
    let (x, y) = take_exact(p, zfo, lambda);
    (f64::from(x), f64::from(y))
}

/// Water level of the pools `members` for an order of `t` (input or output): closed form when all
/// are V2, else a safeguarded secant search in `ln λ` on exact V3 amounts. `None` when a member
/// would carry nothing (the subset is then dominated by a smaller one) or the members cannot fill
/// the order.
fn level(pools: &[PoolEntry], members: &[usize], zfo: bool, exact_in: bool, t: f64) -> Option<f64> {
    let side = |i: usize, lambda: f64| {
        let (x, y) = take(&pools[i], zfo, lambda);
        if exact_in { x } else { y }
    };
    let all_v2 = members.iter().all(|&i| !pools[i].pool().is_v3());
    let lambda = if all_v2 {
        // exact in: Σ (√(R_in·R_out/γ)/√λ − R_in/γ) = t; exact out: Σ (R_out − √(R_in·R_out/γ)·√λ) = t
        let (mut sum_sqrt, mut sum_a, mut sum_b) = (0.0, 0.0, 0.0);
        for &i in members {
            let Pool::V2 { reserve0, reserve1, fee_bps } = pools[i].pool() else { return None };
            let (ri, ro) = if zfo { (*reserve0, *reserve1) } else { (*reserve1, *reserve0) };
            let (ri, ro) = (f64::from(ri), f64::from(ro));
            let g = 1.0 - f64::from(*fee_bps) / 1e4;
            sum_sqrt += (ri * ro / g).sqrt();
            sum_a += ri / g;
            sum_b += ro;
        }
        let r = if exact_in { sum_sqrt / (t + sum_a) } else { (sum_b - t) / sum_sqrt };
        if r.is_nan() || r <= 0.0 {
            return None;
        }
        r * r
    } else {
        let f = |l: f64| members.iter().map(|&i| side(i, l.exp())).sum::<f64>() - t;
        let mut hi = members.iter().map(|&i| spot(&pools[i], zfo)).fold(0.0, f64::max).ln();
        let mut f_hi = f(hi);
        let mut lo = hi - 0.01;
        let mut f_lo = f(lo);
        let mut widen = 0;
        while f_lo < 0.0 {
            widen += 1;
            if widen > 12 {
                return None;
            }
            hi = lo;
            f_hi = f_lo;
            lo -= 0.01 * f64::from(1u32 << widen);
            f_lo = f(lo);
        }
        // Illinois: regula falsi that halves the stale end's weight
        let mut stale = 0;
        for _ in 0..200 {
            if f_lo.abs() <= t * 1e-13 {
                break;
            }
            let m = (lo * f_hi - hi * f_lo) / (f_hi - f_lo);
            let m = if m > lo && m < hi { m } else { 0.5 * (lo + hi) };
            let fm = f(m);
            if fm >= 0.0 {
                lo = m;
                f_lo = fm;
                if stale == 1 {
                    f_hi *= 0.5;
                }
                stale = 1;
            } else {
                hi = m;
                f_hi = fm;
                if stale == -1 {
                    f_lo *= 0.5;
                }
                stale = -1;
            }
            if hi - lo < 1e-15 {
                break;
            }
        }
        lo.exp()
    };
    members.iter().all(|&i| side(i, lambda) >= 1.0).then_some(lambda)
}

/// The reference optimum: objective, subset (bit i = pool i) and allocation.
#[derive(Debug, Clone)]
pub struct Reference {
    pub net: i128,
    pub mask: u32,
    pub alloc: Vec<U256>,
    /// Subsets polished.
    pub polished: usize,
}

/// Floored water-filling of `members` at `lambda`, fixed to sum to `total` on the first leg (largest
/// first) that can take the remainder, with its exact objective; `None` if no leg can.
fn allocate(case: &Case, members: &[usize], lambda: f64, total: U256) -> Option<(i128, Vec<U256>)> {
    let mut alloc = vec![U256::ZERO; case.pools.len()];
    for &i in members {
        let (x, y) = take_exact(&case.pools[i], case.zfo, lambda);
        alloc[i] = if case.exact_in() { x } else { y };
    }
    let sum = alloc.iter().fold(U256::ZERO, |a, &b| a + b);
    let mut order = members.to_vec();
    order.sort_by_key(|&i| std::cmp::Reverse(alloc[i]));
    for big in order {
        let mut fixed = alloc.clone();
        if sum <= total {
            fixed[big] += total - sum;
        } else if sum - total < fixed[big] {
            fixed[big] -= sum - total;
        } else {
            continue;
        }
        if let Some(net) = case.exact_net(&fixed) {
            return Some((net, fixed));
        }
    }
    None
}

/// Exact pairwise-exchange polish of an allocation on a fixed subset (no leg is emptied): every
/// ordered pair, steps from `total >> 32` halving to 1, repeating a step while it improves.
fn polish(case: &Case, members: &[usize], alloc: &mut [U256], total: U256) {
    let (zfo, exact_in) = (case.zfo, case.exact_in());
    let pools = &case.pools;
    // per leg: output (exact in, more is better) or input (exact out, less is better)
    let mut vals: Vec<U256> =
        alloc.iter().zip(pools).map(|(&a, p)| quote(p, zfo, exact_in, a).unwrap_or_default()).collect();
    let mut step = (total >> 32usize).max(U256::from(1u8));
    loop {
        let mut improved = false;
        for &i in members {
            for &j in members {
                if i == j || alloc[i] <= step {
                    continue;
                }
                let (Some(a), Some(b)) = (
                    quote(&pools[i], zfo, exact_in, alloc[i] - step),
                    quote(&pools[j], zfo, exact_in, alloc[j] + step),
                ) else {
                    continue;
                };
                let better = if exact_in { a + b > vals[i] + vals[j] } else { a + b < vals[i] + vals[j] };
                if better {
                    alloc[i] -= step;
                    alloc[j] += step;
                    vals[i] = a;
                    vals[j] = b;
                    improved = true;
                }
            }
        }
        if !improved {
            if step <= U256::from(1u8) {
                return;
            }
            step >>= 1usize;
        }
    }
}

/// The exhaustive reference for `case`.
pub fn reference(case: &Case) -> Option<Reference> {
    let n = case.pools.len();
    assert!(n <= 16);
    let total = case.amount.value();
    let t = f64::from(total);
    let mut evaluated: Vec<(i128, u32, Vec<U256>)> = Vec::new();
    for mask in 1u32..(1 << n) {
        let members: Vec<usize> = (0..n).filter(|&i| mask & (1 << i) != 0).collect();
        let Some(lambda) = level(&case.pools, &members, case.zfo, case.exact_in(), t) else { continue };
        if let Some((net, alloc)) = allocate(case, &members, lambda, total) {
            evaluated.push((net, mask, alloc));
        }
    }
    let top = evaluated.iter().map(|e| e.0).max()?;
    let margin = (top.unsigned_abs() as f64 * POLISH_MARGIN) as i128 + 1000;
    let mut best: Option<Reference> = None;
    let mut polished = 0;
    for (net, mask, mut alloc) in evaluated {
        let mut net = net;
        if net >= top - margin {
            let members: Vec<usize> = (0..n).filter(|&i| mask & (1 << i) != 0).collect();
            polish(case, &members, &mut alloc, total);
            net = case.exact_net(&alloc).expect("the polish keeps every leg fillable");
            polished += 1;
        }
        if best.as_ref().is_none_or(|b| net > b.net) {
            best = Some(Reference { net, mask, alloc, polished: 0 });
        }
    }
    best.map(|b| Reference { polished, ..b })
}

// ---------------------------------------------------------------------------------------------
// Random pool sets
// ---------------------------------------------------------------------------------------------

impl Rng {
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-uniform in `[lo, hi)`.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }
}

fn u256_of(x: f64) -> U256 {
    U256::from(x as u128)
}

/// A V2 pool of the A/B pair.
pub fn v2_fee(id: &str, r0: U256, r1: U256, fee_bps: u32, gas: u64) -> PoolEntry {
    let meta = PoolMeta { id: id.into(), address: Address::ZERO, token0: A, token1: B, gas, venue: 0 };
    PoolEntry::new(meta, Pool::V2 { reserve0: r0, reserve1: r1, fee_bps }).expect("v2 pool")
}

/// `n` pools of the A/B pair (V3 with probability `v3_share`): depths log-uniform over four
/// orders of magnitude (1e20–1e24 units), mid prices within ±0.5% of 1, fees of 5, 30 and 100
/// bps (V3: 500, 3000, 10000 pips), gas 60k–200k; the order (exact input, or exact output of
/// about the same size) is 1e-4–0.5 of the median depth and one pool's gas costs 1e-6–1e-2 of it.
pub fn random_case(rng: &mut Rng, n: usize, v3_share: f64, exact_in: bool) -> Case {
    let mut pools = Vec::with_capacity(n);
    let mut depths = Vec::with_capacity(n);
    for i in 0..n {
        let depth = rng.log_uniform(1e20, 1e24);
        depths.push(depth);
        let gas = rng.range(60_000, 200_000) as u64;
        let tick = rng.range(-50, 51) as i32;
        if rng.unit() < v3_share {
            let (fee, spacing) = [(500, 10), (3000, 60), (10_000, 200)][rng.range(0, 3) as usize];
            let center = tick - tick.rem_euclid(spacing);
            let positions: Vec<(i32, i32, u128)> = (0..rng.range(2, 12))
                .map(|_| {
                    let lo = center - spacing * rng.range(1, 80) as i32;
                    let hi = center + spacing * rng.range(1, 80) as i32;
                    // virtual reserves near price 1 are about L: a range of width w ticks holds
                    // about L·w/2e4 of each token
                    let l = depth * rng.log_uniform(1.0, 20.0) * 2e4 / f64::from(hi - lo);
                    (lo, hi, l as u128)
                })
                .collect();
            pools.push(v3(&format!("v3-{i}"), A, B, v3_pool(fee, spacing, center, &positions), gas));
        } else {
            let fee = [5, 30, 30, 100][rng.range(0, 4) as usize];
            let price = 1.0001f64.powi(tick);
            pools.push(v2_fee(&format!("v2-{i}"), u256_of(depth), u256_of(depth * price), fee, gas));
        }
    }
    depths.sort_by(f64::total_cmp);
    let median = depths[n / 2];
    let order = median * rng.log_uniform(1e-4, 0.5);
    let per_gas = order * rng.log_uniform(1e-6, 1e-2) / 130_000.0;
    let amount =
        if exact_in { SwapAmount::ExactIn(u256_of(order)) } else { SwapAmount::ExactOut(u256_of(order)) };
    Case { pools, zfo: rng.next().is_multiple_of(2), amount, per_gas }
}
