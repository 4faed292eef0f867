//! The integer kernels of the StableSwap contracts: `_xp`, `get_D`, `get_y` and `_A`.
//!
//! Every function evaluates the contract's expression in the contract's order, one `uint256`
//! operation at a time, with Vyper's checks: an addition or multiplication that exceeds 2²⁵⁶ − 1
//! is [`CurveError::Overflow`], a subtraction below zero is [`CurveError::Underflow`], a division
//! by zero is [`CurveError::DivisionByZero`] (the contract reverts in all three cases). Division
//! floors. Both flavours share one code path: [`Flavour::a_precision`] is 1 for
//! [`Flavour::ThreePool`], and with it every `x * A_PRECISION / A_PRECISION` of the newer
//! contracts collapses to the 3pool's expression with the same value and the same overflow points.
//!
//! All slices hold one entry per coin (2 or 3); `xp` values are balances normalised to 18
//! decimals (`balance * rate / 1e18`), amplification is the contract's stored value (see
//! [`Flavour`]).

use alloy_primitives::U256;

use super::{CurveError, Flavour, MAX_COINS, MAX_ITERATIONS, PRECISION, Result, Solver, Step};

#[inline]
pub(super) fn add(a: U256, b: U256, step: Step) -> Result<U256> {
    a.checked_add(b).ok_or(CurveError::Overflow(step))
}

#[inline]
pub(super) fn sub(a: U256, b: U256, step: Step) -> Result<U256> {
    a.checked_sub(b).ok_or(CurveError::Underflow(step))
}

#[inline]
pub(super) fn mul(a: U256, b: U256, step: Step) -> Result<U256> {
    a.checked_mul(b).ok_or(CurveError::Overflow(step))
}

#[inline]
fn div(a: U256, b: U256, step: Step) -> Result<U256> {
    a.checked_div(b).ok_or(CurveError::DivisionByZero(step))
}

/// `|a - b| <= 1`, the contracts' convergence test.
#[inline]
fn within_one(a: U256, b: U256) -> bool {
    let diff = if a > b { a - b } else { b - a };
    diff <= U256::from(1u8)
}

/// The number of coins as a `uint256` (`N_COINS`), after checking it is 2 or 3.
#[inline]
fn n_coins(n: usize) -> Result<U256> {
    if n == 2 || n == 3 { Ok(U256::from(n)) } else { Err(CurveError::UnsupportedCoinCount(n)) }
}

/// `assert i != j`, both below the coin count; returns `N_COINS`.
#[inline]
fn check_pair(i: usize, j: usize, len: usize) -> Result<U256> {
    let n = n_coins(len)?;
    if i == j {
        return Err(CurveError::SameCoin(i));
    }
    for index in [j, i] {
        if index >= len {
            return Err(CurveError::IndexOutOfRange { index, n_coins: len });
        }
    }
    Ok(n)
}

/// `_xp` / `_xp_mem`: `xp[i] = rates[i] * balances[i] / 1e18` (floored) for each coin.
///
/// Entries past the pool's coin count are zero.
pub fn xp(balances: &[U256], rates: &[U256]) -> Result<[U256; MAX_COINS]> {
    n_coins(balances.len())?;
    if rates.len() != balances.len() {
        return Err(CurveError::LengthMismatch { what: "rates", got: rates.len(), expected: balances.len() });
    }
    let mut out = [U256::ZERO; MAX_COINS];
    for (k, (balance, rate)) in balances.iter().zip(rates).enumerate() {
        out[k] = mul(*rate, *balance, Step::Xp)? / PRECISION;
    }
    Ok(out)
}

/// `get_D(xp, amp)`: the StableSwap invariant `D` of normalised balances `xp`.
///
/// Newton's method from `D = Σx`, at most 255 iterations, stopping when two iterates differ by at
/// most 1. Per iteration: `D_P = D`, then `D_P = D_P * D / (x * N)` for each coin in order, then
/// `D = (Ann * S / A_P + D_P * N) * D / ((Ann - A_P) * D / A_P + (N + 1) * D_P)` with
/// `Ann = amp * N` and `A_P` = [`Flavour::a_precision`].
///
/// Returns 0 when every balance is 0 (as the contracts do). A zero balance among non-zero ones is
/// [`CurveError::ZeroBalance`] (the contracts divide by it and revert). If 255 iterations do not
/// converge, [`Flavour::FactoryPlain`] fails with [`CurveError::NoConvergence`] (the contract's
/// `raise`) while [`Flavour::ThreePool`] returns the 255th iterate, as `StableSwap3Pool.vy`
/// does (its loop only `break`s).
pub fn get_d(xp: &[U256], amp: U256, flavour: Flavour) -> Result<U256> {
    let n = n_coins(xp.len())?;
    let a_p = U256::from(flavour.a_precision());
    let mut s = U256::ZERO;
    for x in xp {
        s = add(s, *x, Step::GetD)?;
    }
    if s.is_zero() {
        return Ok(U256::ZERO);
    }
    if let Some(index) = xp.iter().position(|x| x.is_zero()) {
        return Err(CurveError::ZeroBalance { index });
    }
    if amp.is_zero() {
        return Err(CurveError::ZeroAmp);
    }
    let ann = mul(amp, n, Step::GetD)?;
    // Loop-invariant parts of the contract's expression, hoisted: same values, and an overflow or
    // underflow here is one the contract hits in its first iteration (the loop always runs).
    let ann_s = div(mul(ann, s, Step::GetD)?, a_p, Step::GetD)?;
    let ann_less_one = sub(ann, a_p, Step::GetD)?;
    let n_plus_one = n + U256::from(1u8);

    let mut d = s;
    for _ in 0..MAX_ITERATIONS {
        let mut d_p = d;
        for x in xp {
            d_p = div(mul(d_p, d, Step::GetD)?, mul(*x, n, Step::GetD)?, Step::GetD)?;
        }
        let d_prev = d;
        let numerator = mul(add(ann_s, mul(d_p, n, Step::GetD)?, Step::GetD)?, d, Step::GetD)?;
        let denominator = add(
            div(mul(ann_less_one, d, Step::GetD)?, a_p, Step::GetD)?,
            mul(n_plus_one, d_p, Step::GetD)?,
            Step::GetD,
        )?;
        d = div(numerator, denominator, Step::GetD)?;
        if within_one(d, d_prev) {
            return Ok(d);
        }
    }
    if flavour.reverts_without_convergence() { Err(CurveError::NoConvergence(Solver::D)) } else { Ok(d) }
}

/// `get_y(i, j, x, xp)`: the normalised balance of coin `j` that keeps `D` when coin `i`'s
/// normalised balance becomes `x`, every other coin unchanged.
///
/// Computes `D = get_D(xp, amp)` first, as the contracts do, then solves
/// `y² + (b − D)·y = c` by `y = (y² + c) / (2y + b − D)` from `y = D`, with
/// `c = D · Π_{k≠j}(D / (x_k · N)) · D · A_P / (Ann · N)` (each factor floored in coin order) and
/// `b = Σ_{k≠j} x_k + D · A_P / Ann`. Convergence and the 255-iteration cap behave as in
/// [`get_d`].
pub fn get_y(i: usize, j: usize, x: U256, xp: &[U256], amp: U256, flavour: Flavour) -> Result<U256> {
    check_pair(i, j, xp.len())?;
    let d = get_d(xp, amp, flavour)?;
    get_y_for_d(i, j, x, xp, amp, d, flavour)
}

/// [`get_y`] with `d = get_d(xp, amp, flavour)` already computed: the same result without solving
/// for `D` again (the contracts recompute it on every call; it depends only on `xp` and `amp`).
///
/// Passing any other `d` gives the contract's `get_y_D`-style solve for that invariant, which the
/// swap functions here never do.
pub fn get_y_for_d(
    i: usize,
    j: usize,
    x: U256,
    xp: &[U256],
    amp: U256,
    d: U256,
    flavour: Flavour,
) -> Result<U256> {
    let n = check_pair(i, j, xp.len())?;
    let a_p = U256::from(flavour.a_precision());
    let ann = mul(amp, n, Step::GetY)?;

    let mut c = d;
    let mut s = U256::ZERO;
    for (k, x_k) in xp.iter().enumerate() {
        let x_k = if k == i {
            x
        } else if k != j {
            *x_k
        } else {
            continue;
        };
        s = add(s, x_k, Step::GetY)?;
        c = div(mul(c, d, Step::GetY)?, mul(x_k, n, Step::GetY)?, Step::GetY)?;
    }
    c = div(mul(mul(c, d, Step::GetY)?, a_p, Step::GetY)?, mul(ann, n, Step::GetY)?, Step::GetY)?;
    let b = add(s, div(mul(d, a_p, Step::GetY)?, ann, Step::GetY)?, Step::GetY)?;

    let two = U256::from(2u8);
    let mut y = d;
    for _ in 0..MAX_ITERATIONS {
        let y_prev = y;
        let numerator = add(mul(y, y, Step::GetY)?, c, Step::GetY)?;
        let denominator = sub(add(mul(two, y, Step::GetY)?, b, Step::GetY)?, d, Step::GetY)?;
        y = div(numerator, denominator, Step::GetY)?;
        if within_one(y, y_prev) {
            return Ok(y);
        }
    }
    if flavour.reverts_without_convergence() { Err(CurveError::NoConvergence(Solver::Y)) } else { Ok(y) }
}

/// `_A()`: the amplification at `timestamp` under a ramp from `initial_a` at `initial_a_time` to
/// `future_a` at `future_a_time`, in the contract's storage convention (see [`Flavour`]).
///
/// Before `future_a_time` it interpolates linearly and floors the step:
/// `A0 ± |A1 − A0| · (t − t0) / (t1 − t0)`; from `future_a_time` on (or with `future_a_time` 0,
/// no ramp ever started) it is `future_a`. A timestamp before `initial_a_time` inside a ramp is
/// [`CurveError::Underflow`] (the contract's `block.timestamp - t0` would revert; it cannot
/// happen on chain).
pub fn amp_at(
    initial_a: U256,
    future_a: U256,
    initial_a_time: u64,
    future_a_time: u64,
    timestamp: u64,
) -> Result<U256> {
    if timestamp >= future_a_time {
        return Ok(future_a);
    }
    let elapsed = U256::from(timestamp.checked_sub(initial_a_time).ok_or(CurveError::Underflow(Step::Amp))?);
    let duration =
        U256::from(future_a_time.checked_sub(initial_a_time).ok_or(CurveError::Underflow(Step::Amp))?);
    if future_a > initial_a {
        let step = div(mul(future_a - initial_a, elapsed, Step::Amp)?, duration, Step::Amp)?;
        add(initial_a, step, Step::Amp)
    } else {
        let step = div(mul(initial_a - future_a, elapsed, Step::Amp)?, duration, Step::Amp)?;
        sub(initial_a, step, Step::Amp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: u128) -> U256 {
        U256::from(v)
    }

    #[test]
    fn d_of_a_balanced_pool_is_the_sum() {
        for flavour in [Flavour::ThreePool, Flavour::FactoryPlain] {
            let a = u(200 * flavour.a_precision() as u128);
            let xp = [u(10u128.pow(24)); 3];
            assert_eq!(get_d(&xp, a, flavour).unwrap(), u(3 * 10u128.pow(24)));
        }
    }

    #[test]
    fn d_of_an_empty_pool_is_zero_and_a_zero_balance_is_an_error() {
        assert_eq!(get_d(&[U256::ZERO; 2], u(100), Flavour::ThreePool), Ok(U256::ZERO));
        assert_eq!(
            get_d(&[u(1), U256::ZERO, u(1)], u(100), Flavour::ThreePool),
            Err(CurveError::ZeroBalance { index: 1 })
        );
        assert_eq!(get_d(&[u(1), u(1)], U256::ZERO, Flavour::ThreePool), Err(CurveError::ZeroAmp));
    }

    #[test]
    fn factory_amp_below_a_precision_over_n_underflows_like_the_contract() {
        // Ann - A_PRECISION with amp = 40, N = 2: 80 - 100 reverts in the contract.
        assert_eq!(
            get_d(&[u(10), u(10)], u(40), Flavour::FactoryPlain),
            Err(CurveError::Underflow(Step::GetD))
        );
    }

    #[test]
    fn huge_balances_overflow_instead_of_wrapping() {
        let xp = [U256::MAX >> 2, U256::MAX >> 2];
        assert_eq!(get_d(&xp, u(100), Flavour::ThreePool), Err(CurveError::Overflow(Step::GetD)));
        let xp = [u(1) << 200, u(1) << 200];
        assert!(matches!(get_d(&xp, u(100), Flavour::FactoryPlain), Err(CurveError::Overflow(_))));
    }

    #[test]
    fn get_y_checks_indices_before_computing() {
        let xp = [u(10), u(10)];
        assert_eq!(get_y(0, 0, u(11), &xp, u(10), Flavour::ThreePool), Err(CurveError::SameCoin(0)));
        assert_eq!(
            get_y(0, 2, u(11), &xp, u(10), Flavour::ThreePool),
            Err(CurveError::IndexOutOfRange { index: 2, n_coins: 2 })
        );
        assert_eq!(
            get_y(5, 1, u(11), &xp, u(10), Flavour::ThreePool),
            Err(CurveError::IndexOutOfRange { index: 5, n_coins: 2 })
        );
        assert_eq!(get_d(&[u(1); 4], u(10), Flavour::ThreePool), Err(CurveError::UnsupportedCoinCount(4)));
    }

    #[test]
    fn get_y_with_unchanged_x_returns_about_the_old_balance() {
        let xp = [u(10u128.pow(24)), u(3 * 10u128.pow(23)), u(7 * 10u128.pow(23))];
        for flavour in [Flavour::ThreePool, Flavour::FactoryPlain] {
            let a = u(100 * flavour.a_precision() as u128);
            let y = get_y(0, 2, xp[0], &xp, a, flavour).unwrap();
            let diff = if y > xp[2] { y - xp[2] } else { xp[2] - y };
            assert!(diff <= u(2), "{flavour:?}: y {y} vs {}", xp[2]);
        }
    }

    #[test]
    fn amp_ramp_interpolates_and_floors_like_the_contract() {
        // Up: 100 -> 200 over 100 s; at 33 s: 100 + 100*33/100 = 133.
        assert_eq!(amp_at(u(100), u(200), 1_000, 1_100, 1_033), Ok(u(133)));
        // Down: 200 -> 100; at 33 s: 200 - 100*33/100 = 167.
        assert_eq!(amp_at(u(200), u(100), 1_000, 1_100, 1_033), Ok(u(167)));
        // Floors: 100 -> 101 over 3 s, at 2 s: 100 + 1*2/3 = 100.
        assert_eq!(amp_at(u(100), u(101), 0, 3, 2), Ok(u(100)));
        // At and after the end, and with no ramp at all: future_A.
        assert_eq!(amp_at(u(100), u(200), 1_000, 1_100, 1_100), Ok(u(200)));
        assert_eq!(amp_at(u(100), u(200), 1_000, 1_100, 9_999), Ok(u(200)));
        assert_eq!(amp_at(u(300), u(300), 0, 0, 5), Ok(u(300)));
        // Before the ramp started: the contract's t - t0 underflows.
        assert_eq!(amp_at(u(100), u(200), 1_000, 1_100, 999), Err(CurveError::Underflow(Step::Amp)));
    }
}
