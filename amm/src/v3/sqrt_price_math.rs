//! `SqrtPriceMath.sol`: next sqrt price from a token amount, and token amounts between two sqrt
//! prices, with the contract's rounding directions.

use alloy_primitives::{I256, U256};

use super::full_math::{div_rounding_up, mul_div, mul_div_rounding_up};
use super::{Result, V3Error};

/// 2⁹⁶, the Q64.96 unit.
pub const Q96: U256 = U256::from_limbs([0, 1 << 32, 0, 0]);
/// `type(uint160).max`.
pub const MAX_U160: U256 = U256::from_limbs([u64::MAX, u64::MAX, u32::MAX as u64, 0]);

#[inline(always)]
fn check_u160(x: U256) -> Result<U256> {
    if x > MAX_U160 { Err(V3Error::SqrtPriceOverflow) } else { Ok(x) }
}

/// `uint160(x)`: the contract's truncating cast (used where the value provably fits).
#[inline(always)]
fn truncate_u160(x: U256) -> U256 {
    x & MAX_U160
}

/// Next sqrt price after adding (`add`) or removing `amount` of token0, rounded up
/// (`getNextSqrtPriceFromAmount0RoundingUp`).
pub fn get_next_sqrt_price_from_amount0_rounding_up(
    sqrt_px96: U256,
    liquidity: u128,
    amount: U256,
    add: bool,
) -> Result<U256> {
    // The result is otherwise not guaranteed to equal the input price.
    if amount.is_zero() {
        return Ok(sqrt_px96);
    }
    let sqrt_px96 = check_u160(sqrt_px96)?;
    let numerator1: U256 = U256::from(liquidity) << 96usize;
    let (product, overflow) = amount.overflowing_mul(sqrt_px96);
    if add {
        if !overflow {
            let (denominator, overflow) = numerator1.overflowing_add(product);
            if !overflow {
                // always fits in 160 bits
                return Ok(truncate_u160(mul_div_rounding_up(numerator1, sqrt_px96, denominator)?));
            }
        }
        let q = numerator1.checked_div(sqrt_px96).ok_or(V3Error::ZeroSqrtPrice)?;
        let denominator = q.checked_add(amount).ok_or(V3Error::AmountOverflow)?;
        Ok(truncate_u160(div_rounding_up(numerator1, denominator)?))
    } else {
        // If the product overflows the denominator underflows; the denominator must also stay > 0.
        if overflow || numerator1 <= product {
            return Err(V3Error::InsufficientReserves);
        }
        let denominator = numerator1 - product;
        check_u160(mul_div_rounding_up(numerator1, sqrt_px96, denominator)?)
    }
}

/// Next sqrt price after adding (`add`) or removing `amount` of token1, rounded down
/// (`getNextSqrtPriceFromAmount1RoundingDown`).
pub fn get_next_sqrt_price_from_amount1_rounding_down(
    sqrt_px96: U256,
    liquidity: u128,
    amount: U256,
    add: bool,
) -> Result<U256> {
    let sqrt_px96 = check_u160(sqrt_px96)?;
    if liquidity == 0 {
        return Err(V3Error::ZeroLiquidity);
    }
    let l = U256::from(liquidity);
    if add {
        let quotient = if amount <= MAX_U160 { (amount << 96usize) / l } else { mul_div(amount, Q96, l)? };
        check_u160(sqrt_px96.checked_add(quotient).ok_or(V3Error::SqrtPriceOverflow)?)
    } else {
        let quotient = if amount <= MAX_U160 {
            div_rounding_up(amount << 96usize, l)?
        } else {
            mul_div_rounding_up(amount, Q96, l)?
        };
        if sqrt_px96 <= quotient {
            return Err(V3Error::InsufficientReserves);
        }
        Ok(sqrt_px96 - quotient)
    }
}

/// Next sqrt price after swapping `amount_in` of token0 (`zero_for_one`) or token1 in
/// (`getNextSqrtPriceFromInput`); rounds so the target price is never passed.
pub fn get_next_sqrt_price_from_input(
    sqrt_px96: U256,
    liquidity: u128,
    amount_in: U256,
    zero_for_one: bool,
) -> Result<U256> {
    if sqrt_px96.is_zero() {
        return Err(V3Error::ZeroSqrtPrice);
    }
    if liquidity == 0 {
        return Err(V3Error::ZeroLiquidity);
    }
    if zero_for_one {
        get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_in, true)
    } else {
        get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_in, true)
    }
}

/// Next sqrt price after taking `amount_out` of token1 (`zero_for_one`) or token0 out
/// (`getNextSqrtPriceFromOutput`); rounds so the target price is always reached.
pub fn get_next_sqrt_price_from_output(
    sqrt_px96: U256,
    liquidity: u128,
    amount_out: U256,
    zero_for_one: bool,
) -> Result<U256> {
    if sqrt_px96.is_zero() {
        return Err(V3Error::ZeroSqrtPrice);
    }
    if liquidity == 0 {
        return Err(V3Error::ZeroLiquidity);
    }
    if zero_for_one {
        get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_out, false)
    } else {
        get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_out, false)
    }
}

/// Token0 between two sqrt prices (either order): `L·(√B − √A)/(√A·√B)` (`getAmount0Delta`).
pub fn get_amount0_delta(sqrt_a: U256, sqrt_b: U256, liquidity: u128, round_up: bool) -> Result<U256> {
    let (sqrt_a, sqrt_b) = if sqrt_a > sqrt_b { (sqrt_b, sqrt_a) } else { (sqrt_a, sqrt_b) };
    if sqrt_a.is_zero() {
        return Err(V3Error::ZeroSqrtPrice);
    }
    let numerator1: U256 = U256::from(liquidity) << 96usize;
    let numerator2 = sqrt_b - sqrt_a;
    if round_up {
        div_rounding_up(mul_div_rounding_up(numerator1, numerator2, sqrt_b)?, sqrt_a)
    } else {
        Ok(mul_div(numerator1, numerator2, sqrt_b)? / sqrt_a)
    }
}

/// Token1 between two sqrt prices (either order): `L·(√B − √A)` (`getAmount1Delta`).
pub fn get_amount1_delta(sqrt_a: U256, sqrt_b: U256, liquidity: u128, round_up: bool) -> Result<U256> {
    let (sqrt_a, sqrt_b) = if sqrt_a > sqrt_b { (sqrt_b, sqrt_a) } else { (sqrt_a, sqrt_b) };
    let diff = sqrt_b - sqrt_a;
    if round_up {
        mul_div_rounding_up(U256::from(liquidity), diff, Q96)
    } else {
        mul_div(U256::from(liquidity), diff, Q96)
    }
}

/// `SafeCast.toInt256`.
#[inline]
pub(crate) fn to_i256(x: U256) -> Result<I256> {
    I256::try_from(x).map_err(|_| V3Error::AmountOverflow)
}

/// Signed token0 delta for a liquidity delta: rounded up when adding liquidity, down (and negative)
/// when removing (`getAmount0Delta(uint160,uint160,int128)`).
pub fn get_amount0_delta_signed(sqrt_a: U256, sqrt_b: U256, liquidity: i128) -> Result<I256> {
    if liquidity < 0 {
        Ok(-to_i256(get_amount0_delta(sqrt_a, sqrt_b, liquidity.unsigned_abs(), false)?)?)
    } else {
        to_i256(get_amount0_delta(sqrt_a, sqrt_b, liquidity as u128, true)?)
    }
}

/// Signed token1 delta for a liquidity delta (`getAmount1Delta(uint160,uint160,int128)`).
pub fn get_amount1_delta_signed(sqrt_a: U256, sqrt_b: U256, liquidity: i128) -> Result<I256> {
    if liquidity < 0 {
        Ok(-to_i256(get_amount1_delta(sqrt_a, sqrt_b, liquidity.unsigned_abs(), false)?)?)
    } else {
        to_i256(get_amount1_delta(sqrt_a, sqrt_b, liquidity as u128, true)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::pool::test_utils::{e18, encode_price_sqrt};

    fn u(s: &str) -> U256 {
        U256::from_str_radix(s, 10).unwrap()
    }
    fn n(x: u64) -> U256 {
        U256::from(x)
    }
    fn p11() -> U256 {
        encode_price_sqrt(n(1), n(1))
    }
    fn e17() -> u128 {
        100_000_000_000_000_000
    }
    const MAX_U128: u128 = u128::MAX;

    // All cases from v3-core test/SqrtPriceMath.spec.ts.
    #[test]
    fn next_sqrt_price_from_input() {
        // fails if price is zero / liquidity is zero
        assert!(get_next_sqrt_price_from_input(U256::ZERO, 0, U256::from(e17()), false).is_err());
        assert!(get_next_sqrt_price_from_input(n(1), 0, U256::from(e17()), true).is_err());
        // fails if input amount overflows the price
        let price = (U256::from(1u8) << 160) - n(1);
        assert!(get_next_sqrt_price_from_input(price, 1024, n(1024), false).is_err());
        // any input amount cannot underflow the price
        assert_eq!(get_next_sqrt_price_from_input(n(1), 1, U256::from(1u8) << 255, true).unwrap(), n(1));
        // returns input price if amount in is zero
        assert_eq!(get_next_sqrt_price_from_input(p11(), e17(), U256::ZERO, true).unwrap(), p11());
        assert_eq!(get_next_sqrt_price_from_input(p11(), e17(), U256::ZERO, false).unwrap(), p11());
        // returns the minimum price for max inputs
        let sqrt_p = (U256::from(1u8) << 160) - n(1);
        let max_amount_no_overflow = U256::MAX - (U256::from(MAX_U128) << 96) / sqrt_p;
        assert_eq!(
            get_next_sqrt_price_from_input(sqrt_p, MAX_U128, max_amount_no_overflow, true).unwrap(),
            n(1)
        );
        // input amount of 0.1 token1 / token0
        let one = e18(1).to::<u128>();
        assert_eq!(
            get_next_sqrt_price_from_input(p11(), one, U256::from(e17()), false).unwrap(),
            u("87150978765690771352898345369")
        );
        assert_eq!(
            get_next_sqrt_price_from_input(p11(), one, U256::from(e17()), true).unwrap(),
            u("72025602285694852357767227579")
        );
        // amountIn > type(uint96).max and zeroForOne = true
        assert_eq!(
            get_next_sqrt_price_from_input(p11(), e18(10).to::<u128>(), U256::from(1u8) << 100, true)
                .unwrap(),
            u("624999999995069620")
        );
        // can return 1 with enough amountIn and zeroForOne = true
        assert_eq!(get_next_sqrt_price_from_input(p11(), 1, U256::MAX / n(2), true).unwrap(), n(1));
    }

    #[test]
    fn next_sqrt_price_from_output() {
        assert!(get_next_sqrt_price_from_output(U256::ZERO, 0, U256::from(e17()), false).is_err());
        assert!(get_next_sqrt_price_from_output(n(1), 0, U256::from(e17()), true).is_err());
        let price = u("20282409603651670423947251286016");
        // fails if output amount is exactly / greater than the virtual reserves of token0
        assert_eq!(
            get_next_sqrt_price_from_output(price, 1024, n(4), false),
            Err(V3Error::InsufficientReserves)
        );
        assert!(get_next_sqrt_price_from_output(price, 1024, n(5), false).is_err());
        // fails if output amount is greater than / exactly the virtual reserves of token1
        assert!(get_next_sqrt_price_from_output(price, 1024, n(262145), true).is_err());
        assert_eq!(
            get_next_sqrt_price_from_output(price, 1024, n(262144), true),
            Err(V3Error::InsufficientReserves)
        );
        // succeeds if output amount is just less than the virtual reserves of token1
        assert_eq!(
            get_next_sqrt_price_from_output(price, 1024, n(262143), true).unwrap(),
            u("77371252455336267181195264")
        );
        // returns input price if amount out is zero
        assert_eq!(get_next_sqrt_price_from_output(p11(), e17(), U256::ZERO, true).unwrap(), p11());
        assert_eq!(get_next_sqrt_price_from_output(p11(), e17(), U256::ZERO, false).unwrap(), p11());
        // output amount of 0.1 token1 (both directions)
        let one = e18(1).to::<u128>();
        assert_eq!(
            get_next_sqrt_price_from_output(p11(), one, U256::from(e17()), false).unwrap(),
            u("88031291682515930659493278152")
        );
        assert_eq!(
            get_next_sqrt_price_from_output(p11(), one, U256::from(e17()), true).unwrap(),
            u("71305346262837903834189555302")
        );
        // reverts if amountOut is impossible in either direction
        assert!(get_next_sqrt_price_from_output(p11(), 1, U256::MAX, true).is_err());
        assert!(get_next_sqrt_price_from_output(p11(), 1, U256::MAX, false).is_err());
    }

    #[test]
    fn amount0_delta() {
        let one = e18(1).to::<u128>();
        assert_eq!(get_amount0_delta(p11(), encode_price_sqrt(n(2), n(1)), 0, true).unwrap(), U256::ZERO);
        assert_eq!(get_amount0_delta(p11(), p11(), 0, true).unwrap(), U256::ZERO);
        // returns 0.1 amount1 for price of 1 to 1.21
        let p121 = encode_price_sqrt(n(121), n(100));
        let up = get_amount0_delta(p11(), p121, one, true).unwrap();
        assert_eq!(up, u("90909090909090910"));
        assert_eq!(get_amount0_delta(p11(), p121, one, false).unwrap(), up - n(1));
        // works for prices that overflow
        let a = encode_price_sqrt(U256::from(1u8) << 90, n(1));
        let b = encode_price_sqrt(U256::from(1u8) << 96, n(1));
        let up = get_amount0_delta(a, b, one, true).unwrap();
        let down = get_amount0_delta(a, b, one, false).unwrap();
        assert_eq!(up, down + n(1));
    }

    #[test]
    fn amount1_delta() {
        let one = e18(1).to::<u128>();
        assert_eq!(get_amount1_delta(p11(), encode_price_sqrt(n(2), n(1)), 0, true).unwrap(), U256::ZERO);
        assert_eq!(get_amount0_delta(p11(), p11(), 0, true).unwrap(), U256::ZERO);
        let p121 = encode_price_sqrt(n(121), n(100));
        let up = get_amount1_delta(p11(), p121, one, true).unwrap();
        assert_eq!(up, u("100000000000000000"));
        assert_eq!(get_amount1_delta(p11(), p121, one, false).unwrap(), up - n(1));
    }

    #[test]
    fn swap_computation_sqrt_p_times_sqrt_q_overflows() {
        let sqrt_p = u("1025574284609383690408304870162715216695788925244");
        let liquidity = u("50015962439936049619261659728067971248").to::<u128>();
        let sqrt_q = get_next_sqrt_price_from_input(sqrt_p, liquidity, n(406), true).unwrap();
        assert_eq!(sqrt_q, u("1025574284609383582644711336373707553698163132913"));
        assert_eq!(get_amount0_delta(sqrt_q, sqrt_p, liquidity, true).unwrap(), n(406));
    }

    #[test]
    fn signed_deltas_round_away_from_the_pool() {
        let p121 = encode_price_sqrt(n(121), n(100));
        let one = e18(1).to::<u128>() as i128;
        let add0 = get_amount0_delta_signed(p11(), p121, one).unwrap();
        let sub0 = get_amount0_delta_signed(p11(), p121, -one).unwrap();
        assert_eq!(add0, I256::try_from(u("90909090909090910")).unwrap());
        assert_eq!(sub0, -I256::try_from(u("90909090909090909")).unwrap());
        let add1 = get_amount1_delta_signed(p11(), p121, one).unwrap();
        let sub1 = get_amount1_delta_signed(p11(), p121, -one).unwrap();
        assert_eq!(add1, I256::try_from(u("100000000000000000")).unwrap());
        assert_eq!(sub1, -I256::try_from(u("99999999999999999")).unwrap());
    }
}
