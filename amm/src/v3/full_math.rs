//! `FullMath.sol` and `UnsafeMath.sol`: `floor(a·b/d)` and `ceil(a·b/d)` with a full 512-bit
//! intermediate product, erroring (instead of reverting) on a zero denominator or a result ≥ 2²⁵⁶.

use alloy_primitives::{U256, U512};

use super::{Result, V3Error};

/// `floor(a·b / denominator)` with full precision (`FullMath.mulDiv`).
#[inline]
pub fn mul_div(a: U256, b: U256, denominator: U256) -> Result<U256> {
    Ok(mul_div_rem(a, b, denominator)?.0)
}

/// `ceil(a·b / denominator)` with full precision (`FullMath.mulDivRoundingUp`).
#[inline]
pub fn mul_div_rounding_up(a: U256, b: U256, denominator: U256) -> Result<U256> {
    let (q, rem_nonzero) = mul_div_rem(a, b, denominator)?;
    if rem_nonzero {
        // The contract requires result < type(uint256).max before the increment.
        q.checked_add(U256::from(1u8)).ok_or(V3Error::MulDivOverflow)
    } else {
        Ok(q)
    }
}

/// `ceil(x / y)` (`UnsafeMath.divRoundingUp`). The contract's assembly returns 0 for `y == 0`; every
/// call site guards against that, so here it is an error.
#[inline]
pub fn div_rounding_up(x: U256, y: U256) -> Result<U256> {
    if y.is_zero() {
        return Err(V3Error::DivisionByZero);
    }
    let (q, r) = x.div_rem(y);
    Ok(if r.is_zero() { q } else { q + U256::from(1u8) })
}

/// Quotient and whether the remainder is non-zero.
#[inline]
fn mul_div_rem(a: U256, b: U256, denominator: U256) -> Result<(U256, bool)> {
    if denominator.is_zero() {
        return Err(V3Error::DivisionByZero);
    }
    let (product, overflow) = a.overflowing_mul(b);
    if !overflow {
        let (q, r) = product.div_rem(denominator);
        return Ok((q, !r.is_zero()));
    }
    wide_div_rem(a, b, denominator)
}

#[cold]
#[inline(never)]
fn wide_div_rem(a: U256, b: U256, denominator: U256) -> Result<(U256, bool)> {
    let product: U512 = a.widening_mul(b);
    let d = denominator.as_limbs();
    let d512 = U512::from_limbs([d[0], d[1], d[2], d[3], 0, 0, 0, 0]);
    let (q, r) = product.div_rem(d512);
    let q = q.as_limbs();
    if q[4..].iter().any(|&limb| limb != 0) {
        return Err(V3Error::MulDivOverflow);
    }
    Ok((U256::from_limbs([q[0], q[1], q[2], q[3]]), !r.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const Q128: U256 = U256::from_limbs([0, 0, 1, 0]);

    // Cases from v3-core test/FullMath.spec.ts.
    #[test]
    fn mul_div_matches_fullmath_spec() {
        assert_eq!(mul_div(Q128, U256::from(5u8), U256::ZERO), Err(V3Error::DivisionByZero));
        assert_eq!(mul_div(Q128, Q128, U256::from(1u8)), Err(V3Error::MulDivOverflow));
        assert_eq!(mul_div(U256::MAX, U256::MAX, U256::MAX - U256::from(1u8)), Err(V3Error::MulDivOverflow));
        assert_eq!(mul_div(U256::MAX, U256::MAX, U256::MAX), Ok(U256::MAX));
        // accurate without phantom overflow: Q128 * 0.5 * Q128 / (1.5 * Q128)
        let r = mul_div(
            Q128,
            U256::from(50u8) * Q128 / U256::from(100u8),
            U256::from(150u8) * Q128 / U256::from(100u8),
        );
        assert_eq!(r, Ok(Q128 / U256::from(3u8)));
        // with phantom overflow: Q128 * 35 * Q128 / (8 * Q128)
        let r = mul_div(Q128, U256::from(35u8) * Q128, U256::from(8u8) * Q128);
        assert_eq!(r, Ok(U256::from(4375u32) * Q128 / U256::from(1000u32)));
        // repeating decimal: Q128 * 1000 * Q128 / (3000 * Q128)
        let r = mul_div(Q128, U256::from(1000u32) * Q128, U256::from(3000u32) * Q128);
        assert_eq!(r, Ok(Q128 / U256::from(3u8)));
    }

    #[test]
    fn mul_div_rounding_up_matches_fullmath_spec() {
        assert_eq!(mul_div_rounding_up(Q128, U256::from(5u8), U256::ZERO), Err(V3Error::DivisionByZero));
        assert_eq!(mul_div_rounding_up(U256::MAX, U256::MAX, U256::MAX), Ok(U256::MAX));
        // mulDiv overflows after rounding up
        let a = U256::from(535006138814359u64);
        let b = U256::from_str_radix("432862656469423142931042426214547535783388063929571229938474969", 10)
            .unwrap();
        assert_eq!(mul_div_rounding_up(a, b, U256::from(2u8)), Err(V3Error::MulDivOverflow));
        let a = U256::from_str_radix(
            "115792089237316195423570985008687907853269984659341747863450311749907997002549",
            10,
        )
        .unwrap();
        let b = U256::from_str_radix(
            "115792089237316195423570985008687907853269984659341747863450311749907997002550",
            10,
        )
        .unwrap();
        let d = U256::from_str_radix(
            "115792089237316195423570985008687907853269984653042931687443039491902864365164",
            10,
        )
        .unwrap();
        assert_eq!(mul_div_rounding_up(a, b, d), Err(V3Error::MulDivOverflow));
        let r = mul_div_rounding_up(Q128, U256::from(1000u32) * Q128, U256::from(3000u32) * Q128);
        assert_eq!(r, Ok(Q128 / U256::from(3u8) + U256::from(1u8)));
    }

    fn u256() -> impl Strategy<Value = U256> {
        prop::array::uniform4(any::<u64>()).prop_map(U256::from_limbs)
    }

    proptest! {
        #[test]
        fn mul_div_agrees_with_u512(a in u256(), b in u256(), d in u256()) {
            prop_assume!(!d.is_zero());
            let wide: U512 = a.widening_mul(b);
            let dl = d.as_limbs();
            let d512 = U512::from_limbs([dl[0], dl[1], dl[2], dl[3], 0, 0, 0, 0]);
            let (q, r) = wide.div_rem(d512);
            let fits = q < U512::from_limbs([0, 0, 0, 0, 1, 0, 0, 0]);
            match mul_div(a, b, d) {
                Ok(v) => prop_assert!(fits && U512::from_limbs([v.as_limbs()[0], v.as_limbs()[1], v.as_limbs()[2], v.as_limbs()[3], 0, 0, 0, 0]) == q),
                Err(e) => prop_assert!(!fits && e == V3Error::MulDivOverflow),
            }
            if let (Ok(down), Ok(up)) = (mul_div(a, b, d), mul_div_rounding_up(a, b, d)) {
                let expect = if r.is_zero() { down } else { down + U256::from(1u8) };
                prop_assert_eq!(up, expect);
            }
        }
    }
}
