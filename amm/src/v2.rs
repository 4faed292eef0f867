//! Uniswap V2 constant-product math, to the wei. `get_amount_out` / `get_amount_in` reproduce
//! `UniswapV2Library` with the fee in basis points (30 = the canonical 0.3%).

use alloy_primitives::U256;

/// Basis points in one.
const BPS: u64 = 10_000;

/// Why a V2 quote is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// Zero input or output asked.
    #[error("insufficient amount")]
    InsufficientAmount,
    /// A reserve is zero, or the output asked is not below the output reserve.
    #[error("insufficient liquidity")]
    InsufficientLiquidity,
    /// The fee is 100% or more.
    #[error("fee of {0} bps is not below 10000")]
    BadFee(u32),
}

/// Output for `amount_in` sold into a pool with reserves (`reserve_in`, `reserve_out`).
///
/// `amountOut = amountIn·(10000−fee)·reserveOut / (reserveIn·10000 + amountIn·(10000−fee))`, floored,
/// exactly as the contract (which uses 997/1000 for 30 bps: the same ratio).
pub fn get_amount_out(
    amount_in: U256,
    reserve_in: U256,
    reserve_out: U256,
    fee_bps: u32,
) -> Result<U256, V2Error> {
    if amount_in.is_zero() {
        return Err(V2Error::InsufficientAmount);
    }
    if reserve_in.is_zero() || reserve_out.is_zero() {
        return Err(V2Error::InsufficientLiquidity);
    }
    let keep = fee_keep(fee_bps)?;
    let with_fee = amount_in * U256::from(keep);
    let numerator = with_fee * reserve_out;
    let denominator = reserve_in * U256::from(BPS) + with_fee;
    Ok(numerator / denominator)
}

/// Smallest input that buys `amount_out`: `reserveIn·amountOut·10000 / ((reserveOut−amountOut)·(10000−fee)) + 1`.
pub fn get_amount_in(
    amount_out: U256,
    reserve_in: U256,
    reserve_out: U256,
    fee_bps: u32,
) -> Result<U256, V2Error> {
    if amount_out.is_zero() {
        return Err(V2Error::InsufficientAmount);
    }
    if reserve_in.is_zero() || reserve_out.is_zero() || amount_out >= reserve_out {
        return Err(V2Error::InsufficientLiquidity);
    }
    let keep = fee_keep(fee_bps)?;
    let numerator = reserve_in * amount_out * U256::from(BPS);
    let denominator = (reserve_out - amount_out) * U256::from(keep);
    Ok(numerator / denominator + U256::from(1u8))
}

fn fee_keep(fee_bps: u32) -> Result<u64, V2Error> {
    if fee_bps as u64 >= BPS {
        return Err(V2Error::BadFee(fee_bps));
    }
    Ok(BPS - fee_bps as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    #[test]
    fn matches_uniswap_published_amount_out() {
        // v2-core test: getAmountOut(1e18, 5e18, 10e18) = 1662497915624478906
        let out = get_amount_out(e18(1), e18(5), e18(10), 30).unwrap();
        assert_eq!(out, U256::from(1_662_497_915_624_478_906u128));
    }

    #[test]
    fn matches_uniswap_swap_test_cases() {
        // UniswapV2Pair.spec.ts "getInputPrice": [swapAmount, token0Amount, token1Amount, expectedOutput]
        let cases: [(u64, u64, u64, u128); 7] = [
            (1, 5, 10, 1_662_497_915_624_478_906),
            (1, 10, 5, 453_305_446_940_074_565),
            (2, 5, 10, 2_851_015_155_847_869_602),
            (2, 10, 5, 831_248_957_812_239_453),
            (1, 10, 10, 906_610_893_880_149_131),
            (1, 100, 100, 987_158_034_397_061_298),
            (1, 1000, 1000, 996_006_981_039_903_216),
        ];
        for (a, r0, r1, want) in cases {
            assert_eq!(
                get_amount_out(e18(a), e18(r0), e18(r1), 30).unwrap(),
                U256::from(want),
                "{a} {r0} {r1}"
            );
        }
    }

    #[test]
    fn amount_in_is_the_smallest_input_that_buys_the_output() {
        let (ri, ro) = (e18(5), e18(10));
        let want = U256::from(1_662_497_915_624_478_906u128);
        let a_in = get_amount_in(want, ri, ro, 30).unwrap();
        assert!(get_amount_out(a_in, ri, ro, 30).unwrap() >= want);
        assert!(get_amount_out(a_in - U256::from(1u8), ri, ro, 30).unwrap() < want);
    }

    #[test]
    fn rejects_degenerate_input() {
        assert_eq!(get_amount_out(U256::ZERO, e18(1), e18(1), 30), Err(V2Error::InsufficientAmount));
        assert_eq!(get_amount_out(e18(1), U256::ZERO, e18(1), 30), Err(V2Error::InsufficientLiquidity));
        assert_eq!(get_amount_in(e18(1), e18(1), e18(1), 30), Err(V2Error::InsufficientLiquidity));
        assert_eq!(get_amount_out(e18(1), e18(1), e18(1), 10_000), Err(V2Error::BadFee(10_000)));
    }
}
