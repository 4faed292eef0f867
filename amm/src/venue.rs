//! Balancer V2 weighted pools and Curve StableSwap plain pools as two-token pools of the one pool
//! model ([`crate::pool::Pool::Balancer`], [`crate::pool::Pool::Curve`]).
//!
//! Both venues hold more than two tokens in one contract; the model is two-token (`zero_for_one`
//! sells token0, the lower address, for token1). A [`BalancerPair`] / [`CurvePair`] is the whole
//! pool state plus the indices of the configured pair's token0 and token1 in the pool's own token
//! order, so a 3-token pool is configured once per pair it trades.
//!
//! # Exactness
//!
//! Quotes are the venues' exact integer math ([`crate::balancer`], [`crate::curve`]):
//!
//! * Balancer: `onSwap` as the Vault runs it (given in / given out). A given-in order above the
//!   pool's 30% `MAX_IN_RATIO` fills the largest amount the pool accepts ([`WeightedPool::max_in`],
//!   like a V3 pool stopping at its price bound: the quote's `amount_in` is then less than asked);
//!   a given-out order above `MAX_OUT_RATIO` delivers [`WeightedPool::max_out`] and exact output
//!   reports [`PoolError::ShortOutput`].
//! * Curve: `exchange(i, j, dx, 0)` at the state's block timestamp (the `A` ramp). Plain pools
//!   have no exact-output swap: exact output is the smallest `dx` whose exact `dy` reaches the
//!   amount (found by bisection on the exact `dy`), so the quote may deliver a few wei more than
//!   asked; the router sends `exchange` with that `dx` and `min_dy` = the asked amount.
//!
//! Both quotes return [`PoolChange::Balances`]: what the swap adds to the pool's balance of the
//! token in (the whole amount, fee included) and takes from the token out (for Curve, `dy` plus
//! the admin fee, which leaves `balances` too).
//!
//! # Float model (split optimiser only)
//!
//! [`FloatCurve`] gives the optimiser each direction's marginal rate (raw output per raw gross
//! input, after fees) at any input, in closed form: Balancer's `γ·r·(Bo/Bi)·(Bi/(Bi + γx))^(r+1)`
//! (`r = wi/wo`, `γ = 1 − fee`); Curve's `(1 − fee)·(rateᵢ/rateⱼ)·(Ann + P/xᵢ)/(Ann + P/y)` with
//! `y` from `get_y`'s quadratic and `P = D^(n+1)/(nⁿ·Πx)`. The optimiser fits constant-product
//! arcs between points of this curve (`crate::split`); the exact phase re-quotes every leg.

use alloy_primitives::U256;

use crate::balancer::{BalancerError, WeightedPool};
use crate::curve::{CurveError, StableSwapPool};
use crate::pool::{PoolChange, PoolError, Quote, Result, SwapAmount};

/// Gas of one `Vault.swap` through a Balancer V2 weighted pool, when the config names none:
/// measured on anvil against the real Vault (`keel-sim` chain test
/// `balancer_weighted_quotes_equal_the_vault_to_the_wei`: 102,283–111,045 over four runs of about
/// 106 swaps each, median about 106.4k), the top of that range.
pub const DEFAULT_BALANCER_SWAP_GAS: u64 = 111_000;
/// Gas of one `exchange` through a Curve StableSwap plain pool, when the config names none: the
/// 3pool's figure in 0x's `asset-swapper` gas schedule (`CURVE_MAINNET_INFOS`, `TRI`: 176k; its
/// 2-coin plain pools are listed at 105k). Measured on anvil against StableSwap-NG plain pools
/// (`keel-sim` test `curve_ng::curve_stableswap_ng_pays_exactly_keels_quote`): median 147k with
/// 2 coins and 164k with 3, at most 187k (seeds default, 7 and 99) — medians under this default,
/// the dearest within its 30% limit margin.
pub const DEFAULT_CURVE_SWAP_GAS: u64 = 176_000;

/// Relative slack on a Balancer direction's float capacity (see [`BalancerPair::float_curve`]).
const CAP_SLACK: f64 = 1e-4;

fn f(x: U256) -> f64 {
    f64::from(x)
}

/// A Balancer V2 weighted pool traded as the pair (token `index0`, token `index1`) of its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerPair {
    pool: WeightedPool,
    index0: u8,
    index1: u8,
}

impl BalancerPair {
    /// The pool traded between its tokens `index0` (the pair's token0, the lower address) and
    /// `index1`.
    pub fn new(pool: WeightedPool, index0: u8, index1: u8) -> Result<Self> {
        let n = pool.len();
        if usize::from(index0) >= n || usize::from(index1) >= n || index0 == index1 {
            return Err(PoolError::BadMeta(
                "balancer pair: token indices must be two distinct tokens of the pool",
            ));
        }
        Ok(Self { pool, index0, index1 })
    }

    /// A two-token 50/50 pool with no balances: the state a configured pool has before its first
    /// read (the router routes only through pools it has read; a snapshot replaces it whole).
    pub fn unread(flavour: crate::balancer::PowFlavour) -> Self {
        let half = U256::from(500_000_000_000_000_000u64);
        let pool = WeightedPool::new(
            &[U256::ZERO; 2],
            &[half; 2],
            &[18; 2],
            crate::balancer::pool::MIN_SWAP_FEE,
            flavour,
        )
        .unwrap_or_else(|_| unreachable!("50/50 of two 18-decimal tokens at the minimum fee is valid"));
        Self { pool, index0: 0, index1: 1 }
    }

    /// The whole pool.
    pub fn pool(&self) -> &WeightedPool {
        &self.pool
    }

    /// Index of the pair's token0 and token1 in the pool's token order.
    pub fn indices(&self) -> (u8, u8) {
        (self.index0, self.index1)
    }

    /// `(token in, token out)` indices for a direction.
    pub fn io(&self, zero_for_one: bool) -> (usize, usize) {
        let (a, b) = (usize::from(self.index0), usize::from(self.index1));
        if zero_for_one { (a, b) } else { (b, a) }
    }

    pub(crate) fn swap(&self, zero_for_one: bool, amount: SwapAmount) -> Result<Quote> {
        let (i, j) = self.io(zero_for_one);
        let s = match amount {
            SwapAmount::ExactIn(a) => match self.pool.swap_given_in(i, j, a) {
                Err(BalancerError::MaxInRatio { .. }) => {
                    let max = self.pool.max_in(i)?;
                    self.pool.swap_given_in(i, j, max)?
                }
                r => r?,
            },
            SwapAmount::ExactOut(a) => match self.pool.swap_given_out(i, j, a) {
                Err(BalancerError::MaxOutRatio { .. }) => {
                    let max = self.pool.max_out(j)?;
                    self.pool.swap_given_out(i, j, max)?
                }
                r => r?,
            },
        };
        if s.amount_out.is_zero() {
            return Err(PoolError::ZeroOutput);
        }
        Ok(Quote {
            amount_in: s.amount_in,
            amount_out: s.amount_out,
            change: balances_change(i, j, s.amount_in, s.amount_out),
            ticks_crossed: 0,
        })
    }

    pub(crate) fn apply_balances(&mut self, i: u8, j: u8, add: U256, sub: U256) -> Result<()> {
        let mut p = self.pool.clone();
        p.apply(usize::from(i), usize::from(j), add, sub)?;
        self.pool = p;
        Ok(())
    }

    pub(crate) fn float_curve(&self, zero_for_one: bool) -> Option<FloatCurve> {
        let (i, j) = self.io(zero_for_one);
        let (bi, bo) = (f(self.pool.balances()[i]), f(self.pool.balances()[j]));
        let r = f(self.pool.weights()[i]) / f(self.pool.weights()[j]);
        let gamma = 1.0 - f(self.pool.swap_fee()) / 1e18;
        if !(bi > 0.0 && bo > 0.0 && r.is_finite() && r > 0.0 && gamma > 0.0) {
            return None;
        }
        // A given-in swap is limited by MAX_IN_RATIO only (net ≤ 0.3·Bi), a given-out swap by
        // MAX_OUT_RATIO only (out ≤ 0.3·Bo, i.e. (Bi/(Bi + γx))^r ≥ 0.7). The float model takes
        // the larger, so it never hides an amount the Vault accepts; an allocation past the
        // order side's own limit fails its exact quote and the split cuts it to the exact capacity.
        // `CAP_SLACK` covers the fitted arcs' own error, so an order of exactly the limit fills.
        let cap_in = 0.3 * bi / gamma;
        let cap_out = bi * (0.7f64.powf(-1.0 / r) - 1.0) / gamma;
        Some(FloatCurve::Weighted { bi, bo, r, gamma, cap: cap_in.max(cap_out) * (1.0 + CAP_SLACK) })
    }

    pub(crate) fn fee_fraction(&self) -> f64 {
        f(self.pool.swap_fee()) / 1e18
    }

    pub(crate) fn mid_price(&self) -> f64 {
        let (i, j) = self.io(true);
        let b = self.pool.balances();
        let w = self.pool.weights();
        (f(b[j]) / f(w[j])) / (f(b[i]) / f(w[i]))
    }
}

/// A Curve StableSwap plain pool traded as the pair (coin `index0`, coin `index1`), at the block
/// timestamp its state reflects (for the amplification ramp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurvePair {
    pool: StableSwapPool,
    index0: u8,
    index1: u8,
    timestamp: u64,
}

impl CurvePair {
    /// The pool traded between its coins `index0` (the pair's token0, the lower address) and
    /// `index1`, quoted at block timestamp `timestamp`.
    pub fn new(pool: StableSwapPool, index0: u8, index1: u8, timestamp: u64) -> Result<Self> {
        let n = pool.n_coins();
        if usize::from(index0) >= n || usize::from(index1) >= n || index0 == index1 {
            return Err(PoolError::BadMeta(
                "curve pair: coin indices must be two distinct coins of the pool",
            ));
        }
        Ok(Self { pool, index0, index1, timestamp })
    }

    /// A two-coin StableSwap-NG pool with no balances: the state a configured pool has before
    /// its first read (the router routes only through pools it has read; a snapshot replaces it
    /// whole).
    pub fn unread() -> Self {
        let rate = U256::from(1_000_000_000_000_000_000u64);
        let amp = crate::curve::AmpRamp::constant(U256::from(100u64 * crate::curve::A_PRECISION));
        let pool =
            StableSwapPool::new(crate::curve::Flavour::FactoryPlain, &[U256::ZERO; 2], &[rate; 2], amp, 0, 0)
                .unwrap_or_else(|_| unreachable!("two 18-decimal coins at A 100 and no fee are valid"));
        Self { pool, index0: 0, index1: 1, timestamp: 0 }
    }

    /// The whole pool.
    pub fn pool(&self) -> &StableSwapPool {
        &self.pool
    }

    /// Index of the pair's token0 and token1 in the pool's coin order.
    pub fn indices(&self) -> (u8, u8) {
        (self.index0, self.index1)
    }

    /// Block timestamp the quotes use for `A`.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Moves the quoting time (a new block).
    pub fn set_timestamp(&mut self, timestamp: u64) {
        self.timestamp = timestamp;
    }

    /// `(coin in, coin out)` indices for a direction.
    pub fn io(&self, zero_for_one: bool) -> (usize, usize) {
        let (a, b) = (usize::from(self.index0), usize::from(self.index1));
        if zero_for_one { (a, b) } else { (b, a) }
    }

    pub(crate) fn swap(&self, zero_for_one: bool, amount: SwapAmount) -> Result<Quote> {
        let (i, j) = self.io(zero_for_one);
        let q = self.pool.quoter(self.timestamp)?;
        let (dx, out) = match amount {
            SwapAmount::ExactIn(dx) => (dx, q.exchange(i, j, dx)?),
            SwapAmount::ExactOut(want) => {
                if want >= self.pool.balances()[j] {
                    return Err(PoolError::ShortOutput { asked: want, delivered: U256::ZERO });
                }
                // Smallest dx with exact dy(dx) ≥ want: bracket from the float estimate, bisect.
                let pays = |dx: U256| -> Result<Option<crate::curve::ExchangeOutcome>> {
                    match q.exchange(i, j, dx) {
                        Ok(o) => Ok((o.dy >= want).then_some(o)),
                        Err(CurveError::Underflow(crate::curve::Step::Dy)) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                };
                let (lo, hi) = self.bracket_dx(&pays, i, j, &q, want, zero_for_one)?;
                let (mut lo, mut hi) = (lo, hi);
                let mut best =
                    pays(hi)?.ok_or(PoolError::ShortOutput { asked: want, delivered: U256::ZERO })?;
                while hi - lo > U256::from(1u8) {
                    let mid = lo + (hi - lo) / U256::from(2u8);
                    match pays(mid)? {
                        Some(o) => {
                            hi = mid;
                            best = o;
                        }
                        None => lo = mid,
                    }
                }
                (hi, best)
            }
        };
        if out.dy.is_zero() {
            return Err(PoolError::ZeroOutput);
        }
        let taken = out.dy.checked_add(out.admin_fee).ok_or(PoolError::ReserveOverflow)?;
        Ok(Quote {
            amount_in: dx,
            amount_out: out.dy,
            change: balances_change(i, j, dx, taken),
            ticks_crossed: 0,
        })
    }

    /// `(lo, hi)` with `pays(lo)` false (or `lo = 0`) and `pays(hi)` true: a secant guess on the
    /// exact `dy`, then steps doubling away from it.
    fn bracket_dx(
        &self,
        pays: &dyn Fn(U256) -> Result<Option<crate::curve::ExchangeOutcome>>,
        i: usize,
        j: usize,
        q: &crate::curve::Quoter<'_>,
        want: U256,
        zero_for_one: bool,
    ) -> Result<(U256, U256)> {
        let short = PoolError::ShortOutput { asked: want, delivered: U256::ZERO };
        let one = U256::from(1u8);
        let m = self.float_curve(zero_for_one).map_or(0.0, |c| c.marginal(0.0));
        let mut x = if m > 0.0 { crate::split::f64_to_u256(f(want) / m) } else { want }.max(one);
        for _ in 0..4 {
            let dy = q.exchange(i, j, x).map_or(U256::ZERO, |o| o.dy);
            if dy.is_zero() {
                break;
            }
            match x.checked_mul(want) {
                Some(p) => x = (p / dy).max(one),
                None => break,
            }
        }
        let mut step = (x >> 24usize).max(one);
        if pays(x)?.is_some() {
            let mut hi = x;
            loop {
                let lo = hi.saturating_sub(step);
                if lo.is_zero() || pays(lo)?.is_none() {
                    return Ok((lo, hi));
                }
                hi = lo;
                step = step.saturating_mul(U256::from(2u8));
            }
        }
        let mut lo = x;
        for _ in 0..256 {
            let hi = lo.checked_add(step).ok_or(short.clone())?;
            if pays(hi)?.is_some() {
                return Ok((lo, hi));
            }
            lo = hi;
            step = step.saturating_mul(U256::from(2u8));
        }
        Err(short)
    }

    pub(crate) fn apply_balances(&mut self, i: u8, j: u8, add: U256, sub: U256) -> Result<()> {
        let (i, j) = (usize::from(i), usize::from(j));
        let n = self.pool.n_coins();
        if i >= n || j >= n || i == j {
            return Err(PoolError::ChangeKind);
        }
        let mut b = [U256::ZERO; crate::curve::MAX_COINS];
        b[..n].copy_from_slice(self.pool.balances());
        b[i] = b[i].checked_add(add).ok_or(PoolError::ReserveOverflow)?;
        b[j] = b[j].checked_sub(sub).ok_or(PoolError::BadMeta("curve: balance change below zero"))?;
        self.pool.set_balances(&b[..n])?;
        Ok(())
    }

    pub(crate) fn float_curve(&self, zero_for_one: bool) -> Option<FloatCurve> {
        let (i, j) = self.io(zero_for_one);
        let p = &self.pool;
        let n = p.n_coins();
        let xp_int = p.xp().ok()?;
        let d = f(p.d(self.timestamp).ok()?);
        let amp = f(p.amp(self.timestamp).ok()?);
        let mut xp = [0.0; crate::curve::MAX_COINS];
        for k in 0..n {
            xp[k] = f(xp_int[k]);
        }
        let ann = amp * n as f64 / p.flavour().a_precision() as f64;
        let keep = 1.0 - p.fee() as f64 / crate::curve::FEE_DENOMINATOR as f64;
        let rate_in = f(p.rates()[i]) / 1e18;
        let rate_out = f(p.rates()[j]) / 1e18;
        if !(d > 0.0 && ann > 0.0 && keep > 0.0 && xp[i] > 0.0 && xp[j] > 0.0) {
            return None;
        }
        Some(FloatCurve::Stable { n: n as u8, i: i as u8, j: j as u8, xp, d, ann, keep, rate_in, rate_out })
    }

    pub(crate) fn fee_fraction(&self) -> f64 {
        self.pool.fee() as f64 / crate::curve::FEE_DENOMINATOR as f64
    }

    pub(crate) fn mid_price(&self) -> f64 {
        self.float_curve(true).map_or(f64::NAN, |c| c.marginal(0.0) / (1.0 - self.fee_fraction()))
    }
}

fn balances_change(i: usize, j: usize, add: U256, sub: U256) -> PoolChange {
    // indices are below MAX_TOKENS (8)
    PoolChange::Balances { token_in: i as u8, token_out: j as u8, amount_in: add, amount_out: sub }
}

/// One direction of a Balancer or Curve pool as a float curve: its marginal rate (raw output per
/// raw gross input, after fees) at any input already sold into it. For the split optimiser only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FloatCurve {
    /// Balancer weighted: balances in and out, weight ratio `wi/wo`, `1 − fee`, input cap.
    Weighted { bi: f64, bo: f64, r: f64, gamma: f64, cap: f64 },
    /// Curve StableSwap: normalised balances, `D`, `A·n` (without `A_PRECISION`), `1 − fee`, the
    /// coins' rates over 10¹⁸.
    Stable {
        n: u8,
        i: u8,
        j: u8,
        xp: [f64; crate::curve::MAX_COINS],
        d: f64,
        ann: f64,
        keep: f64,
        rate_in: f64,
        rate_out: f64,
    },
}

impl FloatCurve {
    /// Largest gross input the float model lets the direction take.
    pub(crate) fn cap(&self) -> f64 {
        match *self {
            Self::Weighted { cap, .. } => cap,
            Self::Stable { .. } => f64::INFINITY,
        }
    }

    /// Scale of the input side (a balance), to size the first arc.
    pub(crate) fn scale(&self) -> f64 {
        match *self {
            Self::Weighted { bi, .. } => bi,
            Self::Stable { i, xp, rate_in, .. } => xp[usize::from(i)] / rate_in,
        }
    }

    /// Marginal rate after `x` gross input (raw units); 0 once nothing more comes out.
    pub(crate) fn marginal(&self, x: f64) -> f64 {
        match *self {
            Self::Weighted { bi, bo, r, gamma, .. } => {
                gamma * r * (bo / bi) * (bi / (bi + gamma * x)).powf(r + 1.0)
            }
            Self::Stable { n, i, j, mut xp, d, ann, keep, rate_in, rate_out } => {
                let (n, i, j) = (usize::from(n), usize::from(i), usize::from(j));
                xp[i] += x * rate_in;
                let nf = n as f64;
                // get_y: y² + (b − D)·y = c, c = D^(n+1)/(nⁿ·Π_{k≠j} x_k·Ann), b = S' + D/Ann
                let (mut c, mut s) = (d, 0.0);
                for (k, &v) in xp.iter().enumerate().take(n) {
                    if k != j {
                        s += v;
                        c = c * d / (v * nf);
                    }
                }
                c = c * d / (ann * nf);
                let b = s + d / ann - d;
                let disc = (b * b + 4.0 * c).sqrt();
                let y = if b > 0.0 { 2.0 * c / (b + disc) } else { (disc - b) / 2.0 };
                if y.is_nan() || y <= 0.0 || !y.is_finite() {
                    return 0.0;
                }
                xp[j] = y;
                let mut p = d;
                for &v in xp.iter().take(n) {
                    p = p * d / (v * nf);
                }
                let m = keep * (rate_in / rate_out) * (ann + p / xp[i]) / (ann + p / y);
                if m.is_finite() && m > 0.0 { m } else { 0.0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::PowFlavour;
    use crate::curve::{AmpRamp, FACTORY_ADMIN_FEE, Flavour};
    use crate::pool::Pool;

    const E18: u128 = 1_000_000_000_000_000_000;

    fn u(v: u128) -> U256 {
        U256::from(v)
    }

    /// 3-token 50/30/20 pool (18, 6, 8 decimals) traded as tokens 2 (token0) and 0 (token1).
    fn balancer() -> Pool {
        let w = WeightedPool::new(
            &[u(1_000 * E18), u(3_000_000_000), u(150_000_000_000)],
            &[u(E18 / 2), u(3 * E18 / 10), u(E18 / 5)],
            &[18, 6, 8],
            u(3 * E18 / 1000),
            PowFlavour::Shortcuts,
        )
        .unwrap();
        Pool::Balancer(Box::new(BalancerPair::new(w, 2, 0).unwrap()))
    }

    /// 3-coin factory-flavour pool (18, 6, 6 decimals) traded as coins 1 (token0) and 0 (token1).
    fn curve() -> Pool {
        let p = StableSwapPool::with_decimals(
            Flavour::FactoryPlain,
            &[u(1_000_000 * E18), u(1_200_000_000_000), u(900_000_000_000)],
            &[18, 6, 6],
            AmpRamp::constant(u(200 * 100)),
            4_000_000,
            FACTORY_ADMIN_FEE,
        )
        .unwrap();
        Pool::Curve(Box::new(CurvePair::new(p, 1, 0, 0).unwrap()))
    }

    #[test]
    fn balancer_quotes_are_the_weighted_pool_in_the_pairs_token_order() {
        let p = balancer();
        let Pool::Balancer(b) = &p else { unreachable!() };
        let q = p.quote_exact_in(true, u(10 * 100_000_000)).unwrap();
        assert_eq!(q.amount_out, b.pool().swap_given_in(2, 0, u(1_000_000_000)).unwrap().amount_out);
        let r = p.quote_exact_out(false, u(5 * 100_000_000)).unwrap();
        assert_eq!(r.amount_in, b.pool().swap_given_out(0, 2, u(500_000_000)).unwrap().amount_in);
        // the change moves the balances as the Vault does
        let mut after = p.clone();
        after.apply(&q.change).unwrap();
        let Pool::Balancer(a) = &after else { unreachable!() };
        assert_eq!(a.pool().balances()[2], u(150_000_000_000 + 1_000_000_000));
        assert_eq!(a.pool().balances()[0], u(1_000 * E18) - q.amount_out);
        assert_eq!(a.pool().balances()[1], u(3_000_000_000));
        // above MAX_IN_RATIO: fills the largest accepted amount; above MAX_OUT_RATIO: short
        let big = p.quote_exact_in(true, u(10u128.pow(20))).unwrap();
        assert_eq!(big.amount_in, b.pool().max_in(2).unwrap());
        assert!(matches!(p.quote_exact_out(true, u(900 * E18)), Err(PoolError::ShortOutput { .. })));
        assert_eq!(p.quote_exact_in(true, U256::ZERO), Err(PoolError::Balancer(BalancerError::ZeroAmount)));
        assert!(p.swap(true, SwapAmount::ExactIn(u(1)), Some(u(1))).is_err());
        assert!(BalancerPair::new(b.pool().clone(), 1, 1).is_err());
        assert!(BalancerPair::new(b.pool().clone(), 0, 3).is_err());
    }

    #[test]
    fn curve_quotes_are_exchange_and_exact_output_is_the_smallest_input() {
        let p = curve();
        let Pool::Curve(c) = &p else { unreachable!() };
        let dx = u(2_500_000_000);
        let q = p.quote_exact_in(true, dx).unwrap();
        let ex = c.pool().exchange(1, 0, dx, 0).unwrap();
        assert_eq!(q.amount_out, ex.dy);
        let mut after = p.clone();
        after.apply(&q.change).unwrap();
        let Pool::Curve(a) = &after else { unreachable!() };
        assert_eq!(a.pool().balances(), &ex.balances[..3]);
        for zfo in [true, false] {
            // token0 is coin 1 (6 decimals), token1 coin 0 (18 decimals)
            let unit = if zfo { E18 } else { 1_000_000 };
            for want in [u(1), u(unit / 2 + 7), u(1_000 * unit + unit / 3), u(400_000 * unit)] {
                let r = p.quote_exact_out(zfo, want).unwrap();
                assert!(r.amount_out >= want);
                let (i, j) = c.io(zfo);
                let less = c.pool().exchange(i, j, r.amount_in - u(1), 0).map_or(U256::ZERO, |o| o.dy);
                assert!(less < want, "{want} {zfo}: dx − 1 pays {less}");
            }
        }
        assert!(matches!(p.quote_exact_out(true, u(1_000_000 * E18)), Err(PoolError::ShortOutput { .. })));
    }

    /// The float curve's marginal rate is the exact quotes' slope (finite differences of exact
    /// outputs), along the whole range the optimiser walks.
    #[test]
    fn float_marginals_match_the_exact_quotes_slope() {
        for pool in [balancer(), curve()] {
            for zfo in [true, false] {
                let fc = pool.float_curve(zfo).unwrap();
                let scale = fc.scale();
                for frac in [1e-4, 1e-2, 0.1, 0.25] {
                    let x = scale * frac;
                    let h = x * 1e-4;
                    let out = |a: f64| {
                        f64::from(pool.quote_exact_in(zfo, crate::split::f64_to_u256(a)).unwrap().amount_out)
                    };
                    let slope = (out(x + h) - out(x - h)) / (2.0 * h);
                    let m = fc.marginal(x);
                    assert!(
                        (slope / m - 1.0).abs() < 1e-4,
                        "{} zfo={zfo} at {frac}: {slope} vs {m}",
                        pool.kind()
                    );
                }
            }
        }
    }
}
