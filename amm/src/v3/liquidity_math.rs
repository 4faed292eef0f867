//! `LiquidityMath.sol`.

use super::{Result, V3Error};

/// `x + y` for a signed liquidity delta, erroring on underflow (`LS`) or overflow (`LA`).
#[inline]
pub fn add_delta(x: u128, y: i128) -> Result<u128> {
    if y < 0 {
        x.checked_sub(y.unsigned_abs()).ok_or(V3Error::LiquidityUnderflow)
    } else {
        x.checked_add(y as u128).ok_or(V3Error::LiquidityOverflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // v3-core test/LiquidityMath.spec.ts
    #[test]
    fn add_delta_matches_spec() {
        assert_eq!(add_delta(1, 0), Ok(1));
        assert_eq!(add_delta(1, -1), Ok(0));
        assert_eq!(add_delta(1, 1), Ok(2));
        assert_eq!(add_delta(u128::MAX - 14, 15), Err(V3Error::LiquidityOverflow));
        assert_eq!(add_delta(0, -1), Err(V3Error::LiquidityUnderflow));
        assert_eq!(add_delta(3, -4), Err(V3Error::LiquidityUnderflow));
    }
}
