//! Balancer's `WeightedMath` swap functions on upscaled (18-decimal) balances and amounts.
//!
//! * `calcOutGivenIn`: refuses `amountIn > balanceIn·0.3` ([`BalancerError::MaxInRatio`], BAL#304);
//!   `base = balanceIn / (balanceIn + amountIn)` rounded up, `exponent = weightIn / weightOut`
//!   rounded down, `power = base^exponent` rounded up, and the output is
//!   `balanceOut · (1 − power)` rounded down (the complement floors at 0).
//! * `calcInGivenOut`: refuses `amountOut > balanceOut·0.3` ([`BalancerError::MaxOutRatio`],
//!   BAL#305); `base = balanceOut / (balanceOut − amountOut)` rounded up,
//!   `exponent = weightOut / weightIn` rounded up, `power = base^exponent` rounded up, and the
//!   input is `balanceIn · (power − 1)` rounded up.
//!
//! Every rounding favours the pool. Fees and decimal scaling are the pool's job
//! ([`super::pool`]).

use alloy_primitives::U256;

use super::fixed_point::{self as fp, PowFlavour};
use super::{BalancerError, Result};

/// Largest input per swap as a fraction of the input balance: 0.3 (18 decimals).
pub const MAX_IN_RATIO: U256 = U256::from_limbs([300_000_000_000_000_000, 0, 0, 0]);
/// Largest output per swap as a fraction of the output balance: 0.3 (18 decimals).
pub const MAX_OUT_RATIO: U256 = U256::from_limbs([300_000_000_000_000_000, 0, 0, 0]);

/// Output for `amount_in` (all upscaled to 18 decimals, fee already taken off).
pub fn calc_out_given_in(
    balance_in: U256,
    weight_in: U256,
    balance_out: U256,
    weight_out: U256,
    amount_in: U256,
    flavour: PowFlavour,
) -> Result<U256> {
    let limit = fp::mul_down(balance_in, MAX_IN_RATIO)?;
    if amount_in > limit {
        return Err(BalancerError::MaxInRatio { amount: amount_in, limit });
    }
    let denominator = fp::add(balance_in, amount_in)?;
    let base = fp::div_up(balance_in, denominator)?;
    let exponent = fp::div_down(weight_in, weight_out)?;
    let power = fp::pow_up(base, exponent, flavour)?;
    fp::mul_down(balance_out, fp::complement(power))
}

/// Input (before the fee) that buys `amount_out` (all upscaled to 18 decimals).
pub fn calc_in_given_out(
    balance_in: U256,
    weight_in: U256,
    balance_out: U256,
    weight_out: U256,
    amount_out: U256,
    flavour: PowFlavour,
) -> Result<U256> {
    let limit = fp::mul_down(balance_out, MAX_OUT_RATIO)?;
    if amount_out > limit {
        return Err(BalancerError::MaxOutRatio { amount: amount_out, limit });
    }
    let base = fp::div_up(balance_out, fp::sub(balance_out, amount_out)?)?;
    let exponent = fp::div_up(weight_out, weight_in)?;
    let power = fp::pow_up(base, exponent, flavour)?;
    let ratio = fp::sub(power, fp::ONE)?;
    fp::mul_up(balance_in, ratio)
}
