//! Balancer's `FixedPoint`: unsigned 18-decimal arithmetic with explicit rounding direction, and
//! the rounded powers `powDown` / `powUp` built on [`log_exp::pow`](super::log_exp::pow).
//!
//! Every function reverts in the contract where it errors here: overflow of `a·b` or `a·10¹⁸`
//! (BAL#003 `MUL_OVERFLOW`, BAL#005 `DIV_INTERNAL`), division by zero (BAL#004), `sub` below
//! zero (BAL#001), `add` overflow (BAL#000).

use alloy_primitives::U256;

use super::log_exp;
use super::{BalancerError, Result};

/// 1 in 18 decimals.
pub const ONE: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);
/// 2 in 18 decimals.
pub const TWO: U256 = U256::from_limbs([2_000_000_000_000_000_000, 0, 0, 0]);
/// 4 in 18 decimals.
pub const FOUR: U256 = U256::from_limbs([4_000_000_000_000_000_000, 0, 0, 0]);
/// Relative error bound of `LogExpMath.pow` that `powDown` / `powUp` subtract / add: 10⁻¹⁴.
pub const MAX_POW_RELATIVE_ERROR: U256 = U256::from_limbs([10_000, 0, 0, 0]);

/// Which `FixedPoint` library a pool was compiled with: they differ only in `powDown` / `powUp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowFlavour {
    /// The April 2021 release (`20210418-weighted-pool`: `WeightedPool`, `WeightedPool2Tokens`):
    /// every power goes through `LogExpMath.pow` and its error margin.
    #[default]
    V1,
    /// Releases from 2022 (`weighted-pool-v2` onwards): exponents of exactly 1, 2 and 4 are
    /// computed by multiplication (`x`, `x·x`, `(x·x)·(x·x)`, rounded the power's way) without
    /// the error margin; other exponents as [`PowFlavour::V1`].
    Shortcuts,
}

/// `a + b`, checked.
pub fn add(a: U256, b: U256) -> Result<U256> {
    a.checked_add(b).ok_or(BalancerError::Overflow { op: "add" })
}

/// `a − b`, checked (`SUB_OVERFLOW`).
pub fn sub(a: U256, b: U256) -> Result<U256> {
    a.checked_sub(b).ok_or(BalancerError::SubOverflow)
}

/// `a·b / 10¹⁸`, rounded down.
pub fn mul_down(a: U256, b: U256) -> Result<U256> {
    let p = a.checked_mul(b).ok_or(BalancerError::Overflow { op: "mulDown" })?;
    Ok(p / ONE)
}

/// `a·b / 10¹⁸`, rounded up (`0` when the product is `0`).
pub fn mul_up(a: U256, b: U256) -> Result<U256> {
    let p = a.checked_mul(b).ok_or(BalancerError::Overflow { op: "mulUp" })?;
    Ok(if p.is_zero() { U256::ZERO } else { (p - U256::from(1u8)) / ONE + U256::from(1u8) })
}

/// `a·10¹⁸ / b`, rounded down.
pub fn div_down(a: U256, b: U256) -> Result<U256> {
    if b.is_zero() {
        return Err(BalancerError::ZeroDivision);
    }
    let inflated = a.checked_mul(ONE).ok_or(BalancerError::Overflow { op: "divDown" })?;
    Ok(inflated / b)
}

/// `a·10¹⁸ / b`, rounded up (`0` when `a` is `0`).
pub fn div_up(a: U256, b: U256) -> Result<U256> {
    if b.is_zero() {
        return Err(BalancerError::ZeroDivision);
    }
    let inflated = a.checked_mul(ONE).ok_or(BalancerError::Overflow { op: "divUp" })?;
    Ok(if inflated.is_zero() { U256::ZERO } else { (inflated - U256::from(1u8)) / b + U256::from(1u8) })
}

/// `1 − x`, or `0` when `x ≥ 1`.
pub fn complement(x: U256) -> U256 {
    if x < ONE { ONE - x } else { U256::ZERO }
}

/// `x^y` rounded down: `pow − (pow·10⁻¹⁴ rounded up + 1)`, floored at `0`.
pub fn pow_down(x: U256, y: U256, flavour: PowFlavour) -> Result<U256> {
    if flavour == PowFlavour::Shortcuts {
        if y == ONE {
            return Ok(x);
        } else if y == TWO {
            return mul_down(x, x);
        } else if y == FOUR {
            let sq = mul_down(x, x)?;
            return mul_down(sq, sq);
        }
    }
    let raw = log_exp::pow(x, y)?;
    let max_error = add(mul_up(raw, MAX_POW_RELATIVE_ERROR)?, U256::from(1u8))?;
    Ok(raw.saturating_sub(max_error))
}

/// `x^y` rounded up: `pow + pow·10⁻¹⁴ rounded up + 1`.
pub fn pow_up(x: U256, y: U256, flavour: PowFlavour) -> Result<U256> {
    if flavour == PowFlavour::Shortcuts {
        if y == ONE {
            return Ok(x);
        } else if y == TWO {
            return mul_up(x, x);
        } else if y == FOUR {
            let sq = mul_up(x, x)?;
            return mul_up(sq, sq);
        }
    }
    let raw = log_exp::pow(x, y)?;
    let max_error = add(mul_up(raw, MAX_POW_RELATIVE_ERROR)?, U256::from(1u8))?;
    add(raw, max_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: u128) -> U256 {
        U256::from(v)
    }

    #[test]
    fn rounding_directions_differ_by_at_most_one() {
        assert_eq!(mul_down(u(3), u(333_333_333_333_333_333)).unwrap(), u(0));
        assert_eq!(mul_up(u(3), u(333_333_333_333_333_333)).unwrap(), u(1));
        assert_eq!(mul_up(u(0), u(5)).unwrap(), u(0));
        assert_eq!(div_down(u(1), u(3)).unwrap(), u(333_333_333_333_333_333));
        assert_eq!(div_up(u(1), u(3)).unwrap(), u(333_333_333_333_333_334));
        assert_eq!(div_up(u(0), u(3)).unwrap(), u(0));
        assert_eq!(div_up(u(1), u(0)), Err(BalancerError::ZeroDivision));
        assert_eq!(complement(u(2) * ONE), U256::ZERO);
        assert_eq!(complement(ONE - u(1)), u(1));
        assert_eq!(sub(u(1), u(2)), Err(BalancerError::SubOverflow));
        assert!(mul_down(U256::MAX, u(2)).is_err());
        assert!(div_down(U256::MAX, u(2)).is_err());
    }

    #[test]
    fn pow_down_and_up_bracket_the_power_and_shortcuts_are_exact_products() {
        let x = u(1_234_567_890_123_456_789);
        for y in [ONE, TWO, FOUR, u(1_500_000_000_000_000_000), u(333_333_333_333_333_333)] {
            let raw = log_exp::pow(x, y).unwrap();
            let down = pow_down(x, y, PowFlavour::V1).unwrap();
            let up = pow_up(x, y, PowFlavour::V1).unwrap();
            assert!(down < raw && raw < up, "{y}");
            assert_eq!(up - raw, raw - down, "V1 adds and subtracts the same margin");
        }
        assert_eq!(pow_up(x, ONE, PowFlavour::Shortcuts).unwrap(), x);
        assert_eq!(pow_down(x, TWO, PowFlavour::Shortcuts).unwrap(), mul_down(x, x).unwrap());
        assert_eq!(pow_up(x, TWO, PowFlavour::Shortcuts).unwrap(), mul_up(x, x).unwrap());
        let sq = mul_up(x, x).unwrap();
        assert_eq!(pow_up(x, FOUR, PowFlavour::Shortcuts).unwrap(), mul_up(sq, sq).unwrap());
        let y = u(1_500_000_000_000_000_000);
        assert_eq!(pow_up(x, y, PowFlavour::Shortcuts).unwrap(), pow_up(x, y, PowFlavour::V1).unwrap());
        // A tiny power rounds down to zero rather than below it.
        assert_eq!(log_exp::pow(u(1_000_000), u(1_480_000_000_000_000_000)).unwrap(), u(1));
        assert_eq!(pow_down(u(1_000_000), u(1_480_000_000_000_000_000), PowFlavour::V1).unwrap(), U256::ZERO);
    }
}
