//! Uniswap V3 math, to the wei.
//!
//! Each submodule reproduces one library of `Uniswap/v3-core` 1.0 (Solidity 0.7.6) with the same integer
//! semantics, rounding and revert conditions; a revert becomes a [`V3Error`]:
//!
//! | module | contract |
//! |---|---|
//! | [`full_math`] | `FullMath.sol`, `UnsafeMath.sol` (512-bit `mulDiv`) |
//! | [`tick_math`] | `TickMath.sol` |
//! | [`sqrt_price_math`] | `SqrtPriceMath.sol` |
//! | [`swap_math`] | `SwapMath.sol` |
//! | [`liquidity_math`] | `LiquidityMath.sol` |
//! | [`tick_bitmap`] | `TickBitmap.sol` |
//! | [`pool`] | the swap loop and tick/liquidity effects of `UniswapV3Pool.sol` |
//!
//! Sqrt prices are Q64.96 numbers carried in [`U256`] (the contracts use `uint160`); functions that take
//! a price reject values that do not fit 160 bits where the contract's ABI would. Amounts are `U256` or
//! `I256`, liquidity is `u128` (`i128` for deltas), ticks are `i32` (the contracts use `int24`).
//!
//! Assumptions: the protocol fee is off (it only splits the fee between LPs and the protocol and never
//! changes swap amounts), and fee growth / oracle accumulators are not tracked.
//!
//! Hot path: [`V3Pool::swap`] allocates nothing; initialized ticks live in a sorted array with their
//! sqrt prices precomputed, so crossing a tick costs a binary search and no `getSqrtRatioAtTick`.

use alloy_primitives::U256;

pub mod full_math;
pub mod liquidity_math;
pub mod pool;
pub mod sqrt_price_math;
pub mod swap_math;
pub mod tick_bitmap;
pub mod tick_math;

pub use pool::{SwapResult, TickInfo, V3Pool};
pub use tick_math::{MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK};

/// Result alias for V3 math.
pub type Result<T> = core::result::Result<T, V3Error>;

/// Why a V3 computation is impossible; each variant names the contract's revert it mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum V3Error {
    /// `FullMath.mulDiv` with a zero denominator (or a division by zero liquidity / price).
    #[error("division by zero")]
    DivisionByZero,
    /// `FullMath.mulDiv` result does not fit 256 bits.
    #[error("mulDiv result overflows 256 bits")]
    MulDivOverflow,
    /// A checked addition, subtraction or `SafeCast` conversion overflowed.
    #[error("amount overflow")]
    AmountOverflow,
    /// `TickMath.getSqrtRatioAtTick`: tick outside `[MIN_TICK, MAX_TICK]` (revert `T`).
    #[error("tick {0} outside [MIN_TICK, MAX_TICK]")]
    TickOutOfRange(i32),
    /// `TickMath.getTickAtSqrtRatio`: price outside `[MIN_SQRT_RATIO, MAX_SQRT_RATIO)` (revert `R`).
    #[error("sqrt price {0} outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")]
    SqrtPriceOutOfRange(U256),
    /// `SqrtPriceMath`: a zero sqrt price.
    #[error("sqrt price is zero")]
    ZeroSqrtPrice,
    /// `SqrtPriceMath.getNextSqrtPriceFrom{Input,Output}`: zero liquidity.
    #[error("liquidity is zero")]
    ZeroLiquidity,
    /// The next sqrt price does not fit 160 bits (`SafeCast.toUint160`).
    #[error("sqrt price overflows uint160")]
    SqrtPriceOverflow,
    /// The requested output is at least the virtual reserves: the price would reach zero or below.
    #[error("output amount exceeds the virtual reserves")]
    InsufficientReserves,
    /// `LiquidityMath.addDelta` underflow (revert `LS`).
    #[error("liquidity underflow")]
    LiquidityUnderflow,
    /// `LiquidityMath.addDelta` overflow (revert `LA`).
    #[error("liquidity overflow")]
    LiquidityOverflow,
    /// `Tick.update`: gross liquidity above the per-tick maximum (revert `LO`).
    #[error("liquidity per tick above the maximum {0}")]
    LiquidityPerTickOverflow(u128),
    /// `swap` with `amountSpecified == 0` (revert `AS`).
    #[error("amount specified is zero")]
    ZeroAmount,
    /// `swap` price limit on the wrong side of the current price or outside the ratio bounds (revert `SPL`).
    #[error("sqrt price limit {limit} invalid for current price {current}")]
    PriceLimit {
        /// The limit passed.
        limit: U256,
        /// The pool's sqrt price.
        current: U256,
    },
    /// Fee of 100% or more (`1e6 - feePips` would underflow).
    #[error("fee of {0} pips is not below 1000000")]
    BadFee(u32),
    /// Tick spacing not in `1..=16383` (the V3 factory's bound) or, for a V4 pool, `1..=32767`.
    #[error("tick spacing {0} out of range (v3: 1..=16383, v4: 1..=32767)")]
    BadTickSpacing(i32),
    /// A tick that is not a multiple of the tick spacing (`TickBitmap.flipTick` require).
    #[error("tick {tick} is not a multiple of the spacing {spacing}")]
    TickNotSpaced {
        /// The tick.
        tick: i32,
        /// The pool's spacing.
        spacing: i32,
    },
    /// `tickLower >= tickUpper` (revert `TLU`).
    #[error("tick lower {lower} not below tick upper {upper}")]
    TicksMisordered {
        /// Lower tick.
        lower: i32,
        /// Upper tick.
        upper: i32,
    },
    /// The same tick listed twice when building a pool.
    #[error("tick {0} listed twice")]
    DuplicateTick(i32),
    /// The pool's `tick` does not belong to its `sqrt_price_x96`.
    #[error("tick {tick} inconsistent with sqrt price {sqrt_price_x96}")]
    InconsistentTick {
        /// The tick given.
        tick: i32,
        /// The sqrt price given.
        sqrt_price_x96: U256,
    },
}

impl V3Error {
    /// True when the error comes from the inputs of one quote (amount, price limit, reserves) rather
    /// than from inconsistent pool state: the pool is still usable for other quotes.
    pub fn is_quote_error(&self) -> bool {
        matches!(
            self,
            Self::ZeroAmount | Self::PriceLimit { .. } | Self::InsufficientReserves | Self::AmountOverflow
        )
    }
}
