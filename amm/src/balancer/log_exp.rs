//! Balancer's `LogExpMath`: natural exponent, natural logarithm and `pow` on 18-decimal signed
//! fixed-point numbers, with the contract's integer rounding (every division truncates toward
//! zero, as the EVM's `SDIV`; `%` keeps the dividend's sign, as `SMOD`).
//!
//! # Method (what the contract computes, restated)
//!
//! * `exp(x)`, `−41 ≤ x ≤ 130` (18 decimals): a negative `x` is `10³⁶ / exp(−x)`. Otherwise `x` is
//!   decomposed greedily into the powers of two `2⁷, 2⁶` (whose exponentials [`A0`], [`A1`] are
//!   stored without decimals and multiply the result at the very end) and `2⁵ … 2⁻²` (exponentials
//!   [`A2`]…[`A9`] with 20 decimals, multiplied into a 20-decimal running product, each product
//!   truncated); the remainder (20 decimals) goes through the Taylor series `Σ xⁿ/n!` to `n = 12`,
//!   each term `term·x/10²⁰/n` truncated. The result is `product·series/10²⁰·firstAN/100`.
//! * `ln(a)`: for `a < 1` it is `−ln(10³⁶ / a)`. Otherwise `a` is divided (integer division) by
//!   `A0`, `A1` when it is at least `A·10¹⁸`, then in 20 decimals by `A2`…`A11` when at least
//!   them, summing the matching powers of two; the remainder `r` gives `z = (r−1)/(r+1)` and
//!   `2·(z + z³/3 + … + z¹¹/11)` (each `zⁿ` step truncated to 20 decimals, each `/k` truncated).
//!   The result is `(sum + series)/100`.
//! * `ln_36(x)` for `0.9 < x < 1.1`: the same series in 36 decimals to `z¹⁵/15`.
//! * `pow(x, y)`: `1` when `y = 0`, `0` when `x = 0`; `y·ln(x)` is formed with `ln_36` near one
//!   (split into the integer-18 and fractional-18 halves of the 36-decimal logarithm) or `ln`
//!   otherwise, divided by 10¹⁸, checked to lie in `[−41, 130]`, and passed to `exp`.
//!
//! The constants `xₙ = 2⁷⁻ⁿ` and `aₙ = e^{xₙ}` are the contract's, digit for digit: `aₙ` is
//! `e^{xₙ}` rounded to 21 or 22 significant digits (checked once against `e` to 120 digits with
//! Python's `decimal`), padded with the contract's zeros; that the whole `pow` equals the
//! contract's is what the anvil test checks.

use alloy_primitives::{I256, U256, uint};

use super::{BalancerError, Result};

const fn i(v: u128) -> I256 {
    I256::from_raw(U256::from_limbs([v as u64, (v >> 64) as u64, 0, 0]))
}

/// 1 in 18 decimals.
pub const ONE_18: I256 = i(1_000_000_000_000_000_000);
/// 1 in 20 decimals.
const ONE_20: I256 = i(100_000_000_000_000_000_000);
/// 1 in 36 decimals.
const ONE_36: I256 = i(1_000_000_000_000_000_000_000_000_000_000_000_000);
/// Largest argument of `exp`: 130 (18 decimals).
pub const MAX_NATURAL_EXPONENT: I256 = i(130_000_000_000_000_000_000);
/// Smallest argument of `exp`: −41 (18 decimals).
pub fn min_natural_exponent() -> I256 {
    -i(41_000_000_000_000_000_000)
}
/// `ln_36` is used strictly between 0.9 and 1.1 (18 decimals).
const LN_36_LOWER_BOUND: I256 = i(900_000_000_000_000_000);
const LN_36_UPPER_BOUND: I256 = i(1_100_000_000_000_000_000);

/// 2⁷ (18 decimals).
pub const X0: I256 = i(128_000_000_000_000_000_000);
/// e^{2⁷}, no decimals.
pub const A0: I256 = I256::from_raw(uint!(38877084059945950922200000000000000000000000000000000000_U256));
/// 2⁶ (18 decimals).
pub const X1: I256 = i(64_000_000_000_000_000_000);
/// e^{2⁶}, no decimals.
pub const A1: I256 = i(6_235_149_080_811_616_882_910_000_000);
/// 2⁵ … 2⁻⁴ (20 decimals).
pub const X: [I256; 10] = [
    i(3_200_000_000_000_000_000_000),
    i(1_600_000_000_000_000_000_000),
    i(800_000_000_000_000_000_000),
    i(400_000_000_000_000_000_000),
    i(200_000_000_000_000_000_000),
    i(100_000_000_000_000_000_000),
    i(50_000_000_000_000_000_000),
    i(25_000_000_000_000_000_000),
    i(12_500_000_000_000_000_000),
    i(6_250_000_000_000_000_000),
];
/// e^{2⁵} … e^{2⁻⁴} (20 decimals): `A[k]` is the contract's `a{k+2}`.
pub const A: [I256; 10] = [
    i(7_896_296_018_268_069_516_100_000_000_000_000),
    i(888_611_052_050_787_263_676_000_000),
    i(298_095_798_704_172_827_474_000),
    i(5_459_815_003_314_423_907_810),
    i(738_905_609_893_065_022_723),
    i(271_828_182_845_904_523_536),
    i(164_872_127_070_012_814_685),
    i(128_402_541_668_774_148_407),
    i(113_314_845_306_682_631_683),
    i(106_449_445_891_785_942_956),
];

/// `2²⁵⁴ / 10²⁰`: `pow` requires its exponent below this.
fn mild_exponent_bound() -> U256 {
    (U256::from(1u8) << 254usize) / U256::from(100_000_000_000_000_000_000u128)
}

fn ov(op: &'static str) -> BalancerError {
    BalancerError::Overflow { op }
}
fn mul(a: I256, b: I256) -> Result<I256> {
    a.checked_mul(b).ok_or(ov("logexp mul"))
}
fn div(a: I256, b: I256) -> Result<I256> {
    a.checked_div(b).ok_or(BalancerError::ZeroDivision)
}
fn add(a: I256, b: I256) -> Result<I256> {
    a.checked_add(b).ok_or(ov("logexp add"))
}
fn sub(a: I256, b: I256) -> Result<I256> {
    a.checked_sub(b).ok_or(ov("logexp sub"))
}
fn small(v: u64) -> I256 {
    I256::try_from(v).expect("u64 fits i256")
}

/// `x^y` for unsigned 18-decimal `x` and `y` (`LogExpMath.pow`).
///
/// Errors as the contract reverts: `x ≥ 2²⁵⁵` ([`BalancerError::XOutOfBounds`], BAL#006),
/// `y ≥ 2²⁵⁴/10²⁰` ([`BalancerError::YOutOfBounds`], BAL#007), `y·ln x` outside `[−41, 130]`
/// ([`BalancerError::ProductOutOfBounds`], BAL#008).
pub fn pow(x: U256, y: U256) -> Result<U256> {
    if y.is_zero() {
        return Ok(U256::from(10u64).pow(U256::from(18u64)));
    }
    if x.is_zero() {
        return Ok(U256::ZERO);
    }
    if x.bit(255) {
        return Err(BalancerError::XOutOfBounds);
    }
    let x = I256::from_raw(x);
    if y >= mild_exponent_bound() {
        return Err(BalancerError::YOutOfBounds);
    }
    let y = I256::from_raw(y);
    let mut logx_times_y = if LN_36_LOWER_BOUND < x && x < LN_36_UPPER_BOUND {
        let ln_36_x = ln_36(x)?;
        let whole = mul(div(ln_36_x, ONE_18)?, y)?;
        let frac = ln_36_x.checked_rem(ONE_18).ok_or(BalancerError::ZeroDivision)?;
        add(whole, div(mul(frac, y)?, ONE_18)?)?
    } else {
        mul(ln(x)?, y)?
    };
    logx_times_y = div(logx_times_y, ONE_18)?;
    if logx_times_y < min_natural_exponent() || logx_times_y > MAX_NATURAL_EXPONENT {
        return Err(BalancerError::ProductOutOfBounds);
    }
    Ok(exp(logx_times_y)?.into_raw())
}

/// `e^x` for signed 18-decimal `x` in `[−41, 130]` (`LogExpMath.exp`); outside it
/// [`BalancerError::InvalidExponent`] (BAL#009).
pub fn exp(x: I256) -> Result<I256> {
    if x < min_natural_exponent() || x > MAX_NATURAL_EXPONENT {
        return Err(BalancerError::InvalidExponent);
    }
    if x.is_negative() {
        return div(mul(ONE_18, ONE_18)?, exp(-x)?);
    }
    let mut x = x;
    let first_an = if x >= X0 {
        x = sub(x, X0)?;
        A0
    } else if x >= X1 {
        x = sub(x, X1)?;
        A1
    } else {
        I256::ONE
    };
    x = mul(x, small(100))?;
    let mut product = ONE_20;
    // a2 … a9: x10 and x11 are not used by exp.
    for k in 0..8 {
        if x >= X[k] {
            x = sub(x, X[k])?;
            product = div(mul(product, A[k])?, ONE_20)?;
        }
    }
    let mut series = ONE_20;
    let mut term = x;
    series = add(series, term)?;
    for n in 2..=12u64 {
        term = div(div(mul(term, x)?, ONE_20)?, small(n))?;
        series = add(series, term)?;
    }
    div(mul(div(mul(product, series)?, ONE_20)?, first_an)?, small(100))
}

/// Natural logarithm of a positive signed 18-decimal `a` (`LogExpMath.ln`); `a ≤ 0` is
/// [`BalancerError::OutOfBounds`] (BAL#005).
pub fn ln(a: I256) -> Result<I256> {
    if a <= I256::ZERO {
        return Err(BalancerError::OutOfBounds);
    }
    if LN_36_LOWER_BOUND < a && a < LN_36_UPPER_BOUND { div(ln_36(a)?, ONE_18) } else { ln_inner(a) }
}

/// `_ln`: the decomposition plus the 20-decimal series.
fn ln_inner(a: I256) -> Result<I256> {
    if a < ONE_18 {
        return Ok(-ln_inner(div(mul(ONE_18, ONE_18)?, a)?)?);
    }
    let mut a = a;
    let mut sum = I256::ZERO;
    if a >= mul(A0, ONE_18)? {
        a = div(a, A0)?;
        sum = add(sum, X0)?;
    }
    if a >= mul(A1, ONE_18)? {
        a = div(a, A1)?;
        sum = add(sum, X1)?;
    }
    sum = mul(sum, small(100))?;
    a = mul(a, small(100))?;
    for k in 0..10 {
        if a >= A[k] {
            a = div(mul(a, ONE_20)?, A[k])?;
            sum = add(sum, X[k])?;
        }
    }
    let z = div(mul(sub(a, ONE_20)?, ONE_20)?, add(a, ONE_20)?)?;
    let z_squared = div(mul(z, z)?, ONE_20)?;
    let mut num = z;
    let mut series = num;
    for k in [3u64, 5, 7, 9, 11] {
        num = div(mul(num, z_squared)?, ONE_20)?;
        series = add(series, div(num, small(k))?)?;
    }
    series = mul(series, small(2))?;
    div(add(sum, series)?, small(100))
}

/// `_ln_36`: `ln(x)` in 36 decimals for `x` (18 decimals) near one.
fn ln_36(x: I256) -> Result<I256> {
    let x = mul(x, ONE_18)?;
    let z = div(mul(sub(x, ONE_36)?, ONE_36)?, add(x, ONE_36)?)?;
    let z_squared = div(mul(z, z)?, ONE_36)?;
    let mut num = z;
    let mut series = num;
    for k in [3u64, 5, 7, 9, 11, 13, 15] {
        num = div(mul(num, z_squared)?, ONE_36)?;
        series = add(series, div(num, small(k))?)?;
    }
    mul(series, small(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e18(v: f64) -> I256 {
        I256::try_from((v * 1e18) as i128).unwrap()
    }
    fn close(got: I256, want: f64, rel: f64) {
        let g = got.to_string().parse::<f64>().unwrap() / 1e18;
        assert!(((g - want) / want).abs() < rel, "got {g}, want {want}");
    }

    #[test]
    fn exp_and_ln_match_the_real_functions() {
        close(exp(ONE_18).unwrap(), std::f64::consts::E, 1e-15);
        close(exp(-ONE_18).unwrap(), 1.0 / std::f64::consts::E, 1e-15);
        close(exp(e18(100.5)).unwrap(), 100.5f64.exp(), 1e-14);
        close(exp(e18(-30.0)).unwrap(), (-30f64).exp(), 1e-4);
        close(ln(e18(2.0)).unwrap(), std::f64::consts::LN_2, 1e-15);
        close(ln(e18(0.5)).unwrap(), -std::f64::consts::LN_2, 1e-15);
        close(ln(e18(1.05)).unwrap(), 1.05f64.ln(), 1e-14);
        close(ln(I256::try_from(10u128.pow(30)).unwrap() * ONE_18).unwrap(), 30.0 * 10f64.ln(), 1e-15);
        assert_eq!(exp(I256::ZERO).unwrap(), ONE_18);
        assert_eq!(ln(ONE_18).unwrap(), I256::ZERO);
    }

    #[test]
    fn pow_matches_the_real_function() {
        let p = pow(U256::from(2u128 * 10u128.pow(18)), U256::from(5u128 * 10u128.pow(17))).unwrap();
        close(I256::from_raw(p), std::f64::consts::SQRT_2, 1e-15);
        let p = pow(U256::from(95u128 * 10u128.pow(16)), U256::from(4u128 * 10u128.pow(18))).unwrap();
        close(I256::from_raw(p), 0.95f64.powi(4), 1e-15);
        assert_eq!(pow(U256::from(7u8), U256::ZERO).unwrap(), U256::from(10u64.pow(18)));
        assert_eq!(pow(U256::ZERO, U256::from(7u8)).unwrap(), U256::ZERO);
    }

    #[test]
    fn out_of_domain_arguments_are_refused_as_the_contract_reverts() {
        assert_eq!(exp(e18(130.0) + I256::ONE), Err(BalancerError::InvalidExponent));
        assert_eq!(exp(e18(-41.0) - I256::ONE), Err(BalancerError::InvalidExponent));
        assert_eq!(ln(I256::ZERO), Err(BalancerError::OutOfBounds));
        assert_eq!(pow(U256::MAX, U256::from(1u8)), Err(BalancerError::XOutOfBounds));
        assert_eq!(pow(U256::from(2u8), U256::MAX >> 2usize), Err(BalancerError::YOutOfBounds));
        // 1e-18 ^ 10 = 1e-180: y·ln x = −414, below −41.
        assert_eq!(
            pow(U256::from(1u8), U256::from(10u128 * 10u128.pow(18))),
            Err(BalancerError::ProductOutOfBounds)
        );
    }
}
