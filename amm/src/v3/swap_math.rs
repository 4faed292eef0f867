//! `SwapMath.sol`: one swap step within a single liquidity range.

use alloy_primitives::{I256, U256};

use super::Result;
use super::full_math::{mul_div, mul_div_rounding_up};
use super::sqrt_price_math::{
    get_amount0_delta, get_amount1_delta, get_next_sqrt_price_from_input, get_next_sqrt_price_from_output,
};

/// Fee denominator: fees are in hundredths of a basis point (pips).
pub const FEE_DENOMINATOR: u32 = 1_000_000;

/// Outcome of one [`compute_swap_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapStep {
    /// Sqrt price after the step; never past the target.
    pub sqrt_price_next_x96: U256,
    /// Input taken, fee excluded.
    pub amount_in: U256,
    /// Output given.
    pub amount_out: U256,
    /// Fee taken from the input.
    pub fee_amount: U256,
}

/// Swap `amount_remaining` (> 0 exact input, < 0 exact output) from `sqrt_current` towards
/// `sqrt_target` within `liquidity`, exactly as `SwapMath.computeSwapStep`. The direction is
/// `zeroForOne` when `sqrt_current >= sqrt_target`. Returns `(sqrt_next, amount_in, amount_out,
/// fee_amount)`. `fee_pips` must be below 1e6 (the caller validates; a larger fee errors).
pub fn compute_swap_step(
    sqrt_current: U256,
    sqrt_target: U256,
    liquidity: u128,
    amount_remaining: I256,
    fee_pips: u32,
) -> Result<(U256, U256, U256, U256)> {
    let s = compute_swap_step_struct(sqrt_current, sqrt_target, liquidity, amount_remaining, fee_pips)?;
    Ok((s.sqrt_price_next_x96, s.amount_in, s.amount_out, s.fee_amount))
}

/// [`compute_swap_step`] returning a named struct.
pub fn compute_swap_step_struct(
    sqrt_current: U256,
    sqrt_target: U256,
    liquidity: u128,
    amount_remaining: I256,
    fee_pips: u32,
) -> Result<SwapStep> {
    if fee_pips >= FEE_DENOMINATOR {
        return Err(super::V3Error::BadFee(fee_pips));
    }
    let zero_for_one = sqrt_current >= sqrt_target;
    let exact_in = !amount_remaining.is_negative();
    // uint256(amountRemaining) for exact in, uint256(-amountRemaining) for exact out (int256.min wraps
    // to 2^255 in the contract, which `unsigned_abs` reproduces).
    let remaining_abs = amount_remaining.unsigned_abs();
    let fee = U256::from(fee_pips);
    let one_minus_fee = U256::from(FEE_DENOMINATOR - fee_pips);

    let mut amount_in = U256::ZERO;
    let mut amount_out = U256::ZERO;
    let sqrt_next;
    if exact_in {
        let remaining_less_fee = mul_div(remaining_abs, one_minus_fee, U256::from(FEE_DENOMINATOR))?;
        amount_in = if zero_for_one {
            get_amount0_delta(sqrt_target, sqrt_current, liquidity, true)?
        } else {
            get_amount1_delta(sqrt_current, sqrt_target, liquidity, true)?
        };
        sqrt_next = if remaining_less_fee >= amount_in {
            sqrt_target
        } else {
            get_next_sqrt_price_from_input(sqrt_current, liquidity, remaining_less_fee, zero_for_one)?
        };
    } else {
        amount_out = if zero_for_one {
            get_amount1_delta(sqrt_target, sqrt_current, liquidity, false)?
        } else {
            get_amount0_delta(sqrt_current, sqrt_target, liquidity, false)?
        };
        sqrt_next = if remaining_abs >= amount_out {
            sqrt_target
        } else {
            get_next_sqrt_price_from_output(sqrt_current, liquidity, remaining_abs, zero_for_one)?
        };
    }

    let max = sqrt_target == sqrt_next;
    // The contract keeps the amount computed against the target only when the target was reached
    // (`max`) and that amount is the one the swap is exact in.
    let recompute_in = !(max && exact_in);
    let recompute_out = !max || exact_in;
    if zero_for_one {
        if recompute_in {
            amount_in = get_amount0_delta(sqrt_next, sqrt_current, liquidity, true)?;
        }
        if recompute_out {
            amount_out = get_amount1_delta(sqrt_next, sqrt_current, liquidity, false)?;
        }
    } else {
        if recompute_in {
            amount_in = get_amount1_delta(sqrt_current, sqrt_next, liquidity, true)?;
        }
        if recompute_out {
            amount_out = get_amount0_delta(sqrt_current, sqrt_next, liquidity, false)?;
        }
    }

    // cap the output amount to not exceed the remaining output amount
    if !exact_in && amount_out > remaining_abs {
        amount_out = remaining_abs;
    }

    let fee_amount = if exact_in && sqrt_next != sqrt_target {
        // we didn't reach the target, so take the remainder of the maximum input as fee
        remaining_abs - amount_in
    } else {
        mul_div_rounding_up(amount_in, fee, one_minus_fee)?
    };
    Ok(SwapStep { sqrt_price_next_x96: sqrt_next, amount_in, amount_out, fee_amount })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::pool::test_utils::{e18, encode_price_sqrt};
    use crate::v3::sqrt_price_math::{get_next_sqrt_price_from_input, get_next_sqrt_price_from_output};

    fn u(s: &str) -> U256 {
        U256::from_str_radix(s, 10).unwrap()
    }
    fn i(s: &str) -> I256 {
        I256::from_dec_str(s).unwrap()
    }
    fn n(x: u64) -> U256 {
        U256::from(x)
    }

    // All cases from v3-core test/SwapMath.spec.ts #computeSwapStep.
    #[test]
    fn exact_in_capped_at_target_one_for_zero() {
        let price = encode_price_sqrt(n(1), n(1));
        let target = encode_price_sqrt(n(101), n(100));
        let liquidity = e18(2).to::<u128>();
        let amount = I256::try_from(e18(1)).unwrap();
        let (sqrt_q, amount_in, amount_out, fee) =
            compute_swap_step(price, target, liquidity, amount, 600).unwrap();
        assert_eq!(amount_in, u("9975124224178055"));
        assert_eq!(fee, u("5988667735148"));
        assert_eq!(amount_out, u("9925619580021728"));
        assert!(amount_in + fee < e18(1));
        let after_whole = get_next_sqrt_price_from_input(price, liquidity, e18(1), false).unwrap();
        assert_eq!(sqrt_q, target);
        assert!(sqrt_q < after_whole);
    }

    #[test]
    fn exact_out_capped_at_target_one_for_zero() {
        let price = encode_price_sqrt(n(1), n(1));
        let target = encode_price_sqrt(n(101), n(100));
        let liquidity = e18(2).to::<u128>();
        let amount = -I256::try_from(e18(1)).unwrap();
        let (sqrt_q, amount_in, amount_out, fee) =
            compute_swap_step(price, target, liquidity, amount, 600).unwrap();
        assert_eq!(amount_in, u("9975124224178055"));
        assert_eq!(fee, u("5988667735148"));
        assert_eq!(amount_out, u("9925619580021728"));
        assert!(amount_out < e18(1));
        let after_whole = get_next_sqrt_price_from_output(price, liquidity, e18(1), false).unwrap();
        assert_eq!(sqrt_q, target);
        assert!(sqrt_q < after_whole);
    }

    #[test]
    fn exact_in_fully_spent_one_for_zero() {
        let price = encode_price_sqrt(n(1), n(1));
        let target = encode_price_sqrt(n(1000), n(100));
        let liquidity = e18(2).to::<u128>();
        let amount = I256::try_from(e18(1)).unwrap();
        let (sqrt_q, amount_in, amount_out, fee) =
            compute_swap_step(price, target, liquidity, amount, 600).unwrap();
        assert_eq!(amount_in, u("999400000000000000"));
        assert_eq!(fee, u("600000000000000"));
        assert_eq!(amount_out, u("666399946655997866"));
        assert_eq!(amount_in + fee, e18(1));
        let after_less_fee = get_next_sqrt_price_from_input(price, liquidity, e18(1) - fee, false).unwrap();
        assert!(sqrt_q < target);
        assert_eq!(sqrt_q, after_less_fee);
    }

    #[test]
    fn exact_out_fully_received_one_for_zero() {
        let price = encode_price_sqrt(n(1), n(1));
        let target = encode_price_sqrt(n(10000), n(100));
        let liquidity = e18(2).to::<u128>();
        let amount = -I256::try_from(e18(1)).unwrap();
        let (sqrt_q, amount_in, amount_out, fee) =
            compute_swap_step(price, target, liquidity, amount, 600).unwrap();
        assert_eq!(amount_in, u("2000000000000000000"));
        assert_eq!(fee, u("1200720432259356"));
        assert_eq!(amount_out, e18(1));
        let after_whole = get_next_sqrt_price_from_output(price, liquidity, e18(1), false).unwrap();
        assert!(sqrt_q < target);
        assert_eq!(sqrt_q, after_whole);
    }

    #[test]
    fn amount_out_capped_at_desired() {
        let (sqrt_q, amount_in, amount_out, fee) = compute_swap_step(
            u("417332158212080721273783715441582"),
            u("1452870262520218020823638996"),
            u("159344665391607089467575320103").to::<u128>(),
            i("-1"),
            1,
        )
        .unwrap();
        assert_eq!(amount_in, n(1));
        assert_eq!(fee, n(1));
        assert_eq!(amount_out, n(1));
        assert_eq!(sqrt_q, u("417332158212080721273783715441581"));
    }

    #[test]
    fn target_price_of_one_uses_partial_input() {
        let (sqrt_q, amount_in, amount_out, fee) =
            compute_swap_step(n(2), n(1), 1, i("3915081100057732413702495386755767"), 1).unwrap();
        assert_eq!(amount_in, u("39614081257132168796771975168"));
        assert_eq!(fee, u("39614120871253040049813"));
        assert!(amount_in + fee <= u("3915081100057732413702495386755767"));
        assert_eq!(amount_out, U256::ZERO);
        assert_eq!(sqrt_q, n(1));
    }

    #[test]
    fn entire_input_taken_as_fee() {
        let (sqrt_q, amount_in, amount_out, fee) = compute_swap_step(
            n(2413),
            u("79887613182836312"),
            u("1985041575832132834610021537970").to::<u128>(),
            i("10"),
            1872,
        )
        .unwrap();
        assert_eq!(amount_in, U256::ZERO);
        assert_eq!(fee, n(10));
        assert_eq!(amount_out, U256::ZERO);
        assert_eq!(sqrt_q, n(2413));
    }

    #[test]
    fn intermediate_insufficient_liquidity_zero_for_one_exact_output() {
        let sqrt_p = u("20282409603651670423947251286016");
        let target = sqrt_p * n(11) / n(10);
        let (sqrt_q, amount_in, amount_out, fee) =
            compute_swap_step(sqrt_p, target, 1024, i("-4"), 3000).unwrap();
        assert_eq!(amount_out, U256::ZERO);
        assert_eq!(sqrt_q, target);
        assert_eq!(amount_in, n(26215));
        assert_eq!(fee, n(79));
    }

    #[test]
    fn intermediate_insufficient_liquidity_one_for_zero_exact_output() {
        let sqrt_p = u("20282409603651670423947251286016");
        let target = sqrt_p * n(9) / n(10);
        let (sqrt_q, amount_in, amount_out, fee) =
            compute_swap_step(sqrt_p, target, 1024, i("-263000"), 3000).unwrap();
        assert_eq!(amount_out, n(26214));
        assert_eq!(sqrt_q, target);
        assert_eq!(amount_in, n(1));
        assert_eq!(fee, n(1));
    }
}
