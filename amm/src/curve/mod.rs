//! Curve StableSwap exact integer math for plain pools of 2 and 3 coins, to the wei.
//!
//! # What is reproduced
//!
//! Two contract families ("flavours", [`Flavour`]) whose swap math differs in a few integer
//! details. Each function below reproduces the named contract function with the same `uint256`
//! expressions, evaluation order, flooring and revert conditions; a revert becomes a
//! [`CurveError`] that says why. (Where one expression could revert for two reasons, the variant
//! named may differ from the first check the EVM would hit, e.g. `get_D` evaluates its
//! loop-invariant `Ann * S` and `Ann - A_PRECISION` once before the loop; the values, and whether
//! the call fails at all, are the contract's.)
//!
//! | Keel | [`Flavour::ThreePool`] reproduces | [`Flavour::FactoryPlain`] reproduces |
//! |---|---|---|
//! | [`StableSwapPool::amp`], [`math::amp_at`] | `_A()` | `_A()` (returns `A_precise`) |
//! | [`StableSwapPool::xp`], [`math::xp`] | `_xp()` / `_xp_mem()` | `_xp_mem(rates, balances)` |
//! | [`StableSwapPool::d`], [`math::get_d`] | `get_D(xp, amp)` | `get_D` / `_get_D` |
//! | [`math::get_y`] | `get_y(i, j, x, xp_)` | `get_y` / `_get_y` |
//! | [`math::get_y_for_d`] | `get_y` with `D` passed in instead of recomputed | the same |
//! | [`StableSwapPool::get_dy`] | `get_dy(i, j, dx)` | `get_dy(i, j, dx)` |
//! | [`StableSwapPool::exchange`] | `exchange(i, j, dx, min_dy)`: dy and `balances` after it | the same |
//! | [`Quoter::get_dy`], [`Quoter::exchange`] | the same two, with `D` solved once per state | the same |
//!
//! * [`Flavour::ThreePool`]: `curvefi/curve-contract` `contracts/pools/3pool/StableSwap3Pool.vy`
//!   (`@version 0.2.4`, the DAI/USDC/USDT pool at `0xbEbc44782C7dB0a1A60Cb6fe97d0b483032FF1C7`).
//!   No `A_PRECISION`: `A` is stored and used as is.
//! * [`Flavour::FactoryPlain`]: the plain-pool implementations of `curvefi/curve-factory`, read
//!   line by line: `contracts/implementations/plain-2/Plain2Basic.vy` (`@version 0.2.12`),
//!   `plain-3/Plain3Basic.vy` and `plain-2/Plain2Optimized.vy` (18-decimal coins only: the same
//!   math with every rate 10¹⁸), and `curve-contract`'s
//!   `contracts/pool-templates/base/SwapTemplateBase.vy` (Vyper 0.2.8), whose `get_D`, `get_y`,
//!   `get_dy` and `exchange` are the same expressions. `A_PRECISION = 100`: storage holds
//!   `A * 100` (`A_precise()`), and `get_D` / `get_y` carry the `* A_PRECISION` /
//!   `/ A_PRECISION` factors. The `Balances` and `ETH` variants of the same factory share this
//!   template but were not compared line by line; the `Price`/`EMA` variants and
//!   `CurveStableSwap2NG.vy` are different code and are not covered.
//!
//! The two flavours differ in exactly these points:
//!
//! 1. **A_PRECISION** ([`Flavour::a_precision`]): 1 vs 100, in `get_D` and `get_y`.
//! 2. **The view `get_dy`**: the 3pool converts `xp[j] − y − 1` to coin units first and then
//!    takes the fee in coin units (`dy − fee·dy/10¹⁰`); the newer pools take the fee in 18-decimal
//!    units and convert after (`(dy − fee·dy/10¹⁰)·10¹⁸/rate`). So the 3pool's `get_dy` can differ
//!    from what its `exchange` pays by a wei or so; the newer pools' `get_dy` equals `exchange`.
//!    `exchange` itself is the same in both (fee in 18-decimal units, then converted).
//! 3. **Non-convergence**: after 255 iterations without convergence the 3pool returns the last
//!    iterate (its loops only `break`); the newer pools `raise`, here
//!    [`CurveError::NoConvergence`]. It happens in strongly imbalanced pools: from ratios of about
//!    10² between coins at A = 2 with very large balances, 10⁴ and up at ordinary A, where flooring
//!    makes the iterates cycle between values 2 apart. The oracle vectors include such states.
//! 4. **Admin fee**: the 3pool reads `admin_fee` from storage, the factory pools use the constant
//!    `ADMIN_FEE = 5·10⁹` (50%); `SwapTemplateBase` reads storage. Keel takes it as a parameter.
//!
//! Both flavours keep the "− 1" of `dy = xp[j] − y − 1` ("just in case there were some rounding
//! errors"); a trade too small for it is [`CurveError::Underflow`] at [`Step::Dy`], as the
//! contract's subtraction reverts.
//!
//! # Units
//!
//! * Balances, `dx`, `dy`, admin fees: the coin's own smallest unit (wei of that ERC-20).
//! * Rates: the contracts' `RATES` / `rate_multipliers`, `10^(36 − decimals)` for a plain coin
//!   ([`rate_for_decimals`]); `xp = balance · rate / 10¹⁸` is the balance in 18 decimals. This is
//!   the per-coin precision multiplier `10^(18 − decimals)` scaled by 10¹⁸.
//! * `D`, `y`, `xp` and the fee inside [`ExchangeOutcome::dy_fee`]: 18-decimal units.
//! * Fees: parts of [`FEE_DENOMINATOR`] = 10¹⁰ (4·10⁶ = 0.04%); `admin_fee` is the share of the
//!   fee kept for the protocol, also over 10¹⁰.
//! * Amplification: the contract's storage convention, [`AmpRamp`] — plain `A` for the 3pool,
//!   `A · 100` for the factory pools (what `A_precise()` returns; `A()` returns it divided by 100).
//! * Time: block timestamps in seconds, for the A ramp.
//!
//! # Rounding
//!
//! Every division floors, as the EVM's does: `xp` is floored; Newton iterates for `D` and `y`
//! stop when two iterates differ by at most 1; `dy` then loses 1 more (the "− 1"); the fee is
//! floored (so the trader keeps the fraction) and `dy` in coin units is floored (the pool keeps the
//! fraction); the admin fee is floored twice (fee share, then units), so "when rounding errors
//! happen, we undercharge admin fee in favor of LP", as the contract says.
//!
//! # Assumptions and what is not supported
//!
//! * The coin delivers exactly `dx` (no fee-on-transfer). The 3pool measures USDT's received
//!   amount (`FEE_INDEX = 2`) because USDT could charge a transfer fee; it charges none today.
//! * `is_killed`, `min_dy`, the LP token, the factory pools' price-cumulative / `previous_balances`
//!   oracle, and liquidity functions (`add_liquidity`, `remove_liquidity*`, `calc_token_amount`,
//!   `calc_withdraw_one_coin`) are not modelled; `get_dx` and `get_dy_underlying` are not provided.
//! * Not supported: meta pools (`get_dy_underlying`, base-pool virtual price), lending pools
//!   (cToken / yToken / aToken rates that change over time), crypto pools (Curve V2 / tricrypto /
//!   twocrypto, a different invariant), pools with oracle or ERC-4626 rates, and
//!   **StableSwap-NG** (`curvefi/stableswap-ng`, Vyper 0.3.10+): NG divides `D_P` by `N^N` once
//!   per iteration instead of by `N` per coin (different flooring), has the dynamic
//!   `offpeg_fee_multiplier` fee and stored rates, so it is not bit-exact with either flavour.
//!
//! # Test oracle and where it differs
//!
//! `oracle/curve_gen_vectors.py` draws random states with curvesim 0.5.0's integer `CurvePool`, and
//! `tests/it/oracle.rs` matches `D`, `dy` and the post-swap balances to the wei. curvesim has no
//! `A_PRECISION` (its `get_D` is the 3pool's), no view `get_dy` (its `exchange` is the contracts'
//! `exchange`) and no iteration cap (it loops until converged, or forever). The generator adapts
//! it per flavour: for the 3pool view `get_dy` it applies the 3pool's conversion to curvesim's
//! own `get_y`; for factory states with `A_p % 100 == 0` it passes `A = A_p / 100`, which is
//! exact (`⌊100x / 100y⌋ = ⌊x / y⌋`); for factory states mid-ramp with `A_p % 100 ≠ 0` it uses a
//! curvesim subclass with the factory's `get_D`/`get_y` (tagged `ext`, checked equal to curvesim
//! whenever both apply); and it applies the contracts' 255-iteration cap to curvesim's loops.
//!
//! # Cost
//!
//! No allocation: balances live in fixed `[U256; 3]` arrays. A quote is one `get_D` and one
//! `get_y`, each a handful of Newton iterations of checked 256-bit multiplications and divisions.
//! Measured on the 2-core x86-64 development machine (release build, 3pool-like state of
//! 171M DAI / 180M USDC / 62M USDT, 1 DAI in): `get_dy` about 5 µs (2 coins) to 6 µs (3 coins),
//! of which `get_D` is 2 to 3.4 µs. [`StableSwapPool::quoter`] solves `D` once per state, after
//! which each quote costs about 3 µs; use it when pricing many sizes on one state.

use alloy_primitives::U256;

pub mod math;
mod pool;

pub use pool::{AmpRamp, ExchangeOutcome, Quoter, StableSwapPool};

/// Result alias for StableSwap math.
pub type Result<T> = core::result::Result<T, CurveError>;

/// The largest pool supported (plain pools of 2 or 3 coins).
pub const MAX_COINS: usize = 3;

/// Iteration cap of the contracts' Newton loops (`for _i in range(255)`).
pub const MAX_ITERATIONS: usize = 255;

/// `FEE_DENOMINATOR`: fees are parts of 10¹⁰.
pub const FEE_DENOMINATOR: u64 = 10_000_000_000;

/// `PRECISION`: 10¹⁸, the unit of normalised balances (`xp`) and of rates.
pub const PRECISION: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// `A_PRECISION` of the newer pools ([`Flavour::FactoryPlain`]).
pub const A_PRECISION: u64 = 100;

/// The factory plain pools' constant `ADMIN_FEE` (50% of the fee), in parts of 10¹⁰.
pub const FACTORY_ADMIN_FEE: u64 = 5_000_000_000;

/// Which contract's integer conventions a pool follows. See the module docs for the exact sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// `StableSwap3Pool.vy` (curve-contract, Vyper 0.2.4): no `A_PRECISION`, view `get_dy` takes
    /// the fee in coin units, Newton loops return the 255th iterate instead of reverting.
    ThreePool,
    /// The curve-factory plain pools (`Plain2Basic.vy`, `Plain3Basic.vy`, `Plain2Optimized.vy`)
    /// and curve-contract's `SwapTemplateBase.vy`: `A_PRECISION` = 100, view `get_dy` equals
    /// `exchange`, Newton loops revert after 255 iterations.
    FactoryPlain,
}

impl Flavour {
    /// The contract's `A_PRECISION`: 1 for [`Flavour::ThreePool`] (it has none), 100 for
    /// [`Flavour::FactoryPlain`]. Stored amplification values are `A * a_precision()`.
    #[inline]
    pub const fn a_precision(self) -> u64 {
        match self {
            Self::ThreePool => 1,
            Self::FactoryPlain => A_PRECISION,
        }
    }

    /// Whether `get_D` / `get_y` revert after 255 iterations without convergence (`true`) or
    /// return the last iterate (`false`, the 3pool).
    #[inline]
    pub const fn reverts_without_convergence(self) -> bool {
        matches!(self, Self::FactoryPlain)
    }

    /// Whether the view `get_dy` subtracts the fee after converting to coin units (`true`, the
    /// 3pool) or before (`false`, equal to what `exchange` pays).
    #[inline]
    pub const fn view_fee_in_coin_units(self) -> bool {
        matches!(self, Self::ThreePool)
    }
}

/// Which Newton solver failed to converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Solver {
    /// `get_D`.
    D,
    /// `get_y`.
    Y,
}

/// The contract step in which a `uint256` operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// `_xp`: `rate * balance`, or `dx * rate` in `get_dy` / `exchange`.
    Xp,
    /// `get_D`.
    GetD,
    /// `get_y`.
    GetY,
    /// `dy = xp[j] - y - 1` and its conversion to coin units; an underflow here is a trade too
    /// small to pay anything (or a pool that cannot pay it).
    Dy,
    /// Fee and admin-fee arithmetic.
    Fee,
    /// The post-swap balance update (`balances[i] + dx`, `balances[j] - dy - admin_fee`).
    Balances,
    /// `_A()` during a ramp.
    Amp,
}

impl core::fmt::Display for Step {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Xp => "xp",
            Self::GetD => "get_D",
            Self::GetY => "get_y",
            Self::Dy => "dy",
            Self::Fee => "fee",
            Self::Balances => "balances",
            Self::Amp => "A ramp",
        })
    }
}

/// Why a StableSwap computation is impossible.
///
/// [`CurveError::is_invalid_pool`] errors reject a pool description before any contract code would
/// run; [`CurveError::is_revert`] errors are where the contract itself would revert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CurveError {
    /// Only plain pools of 2 or 3 coins are supported.
    #[error("{0} coins: only plain pools of 2 or 3 coins are supported")]
    UnsupportedCoinCount(usize),
    /// A per-coin list does not have one entry per coin.
    #[error("{what} has {got} entries, expected {expected}")]
    LengthMismatch {
        /// Which list (`"rates"`, `"balances"`).
        what: &'static str,
        /// Entries given.
        got: usize,
        /// Coins in the pool.
        expected: usize,
    },
    /// A coin rate of zero.
    #[error("rate of coin {index} is zero")]
    ZeroRate {
        /// The coin.
        index: usize,
    },
    /// More than 36 decimals (the rate `10^(36 - decimals)` would not be an integer).
    #[error("{0} decimals: at most 36 are supported")]
    UnsupportedDecimals(u8),
    /// A fee or admin fee above 10¹⁰ (100%).
    #[error("{what} of {value} is above FEE_DENOMINATOR (1e10)")]
    FeeAboveDenominator {
        /// `"fee"` or `"admin_fee"`.
        what: &'static str,
        /// The value given.
        value: u64,
    },
    /// A coin index at or above the pool's coin count (the contract's array access reverts).
    #[error("coin index {index} out of range for a {n_coins}-coin pool")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// Coins in the pool.
        n_coins: usize,
    },
    /// `i == j` (`assert i != j` in `get_y`).
    #[error("coin {0} cannot be swapped for itself")]
    SameCoin(usize),
    /// A normalised balance of zero among non-zero ones: `get_D` divides by it and reverts.
    #[error("coin {index} has a zero normalised balance")]
    ZeroBalance {
        /// The coin.
        index: usize,
    },
    /// Amplification zero: `Ann - A_PRECISION` underflows (`get_D`) and `D / Ann` divides by
    /// zero (`get_y`).
    #[error("amplification is zero")]
    ZeroAmp,
    /// `get_D` or `get_y` did not converge in 255 iterations ([`Flavour::FactoryPlain`] reverts;
    /// [`Flavour::ThreePool`] never returns this).
    #[error("{0:?} did not converge in 255 iterations")]
    NoConvergence(Solver),
    /// A `uint256` addition or multiplication above 2²⁵⁶ − 1.
    #[error("uint256 overflow in {0}")]
    Overflow(Step),
    /// A `uint256` subtraction below zero.
    #[error("uint256 underflow in {0}")]
    Underflow(Step),
    /// A division by zero.
    #[error("division by zero in {0}")]
    DivisionByZero(Step),
}

impl CurveError {
    /// The pool description itself is unusable (wrong coin count, list lengths, zero rate, fee
    /// above 100%, decimals): fix the configuration, not the trade.
    pub const fn is_invalid_pool(&self) -> bool {
        matches!(
            self,
            Self::UnsupportedCoinCount(_)
                | Self::LengthMismatch { .. }
                | Self::ZeroRate { .. }
                | Self::UnsupportedDecimals(_)
                | Self::FeeAboveDenominator { .. }
        )
    }

    /// The contract would revert on this state or trade (bad index, same coin, zero balance or A,
    /// no convergence, `uint256` overflow / underflow / division by zero).
    pub const fn is_revert(&self) -> bool {
        !self.is_invalid_pool()
    }
}

/// The rate (`RATES[i]` / `rate_multipliers[i]`) of a plain coin with `decimals` decimals:
/// `10^(36 − decimals)`, so that `balance · rate / 10¹⁸` has 18 decimals.
pub fn rate_for_decimals(decimals: u8) -> Result<U256> {
    if decimals > 36 {
        return Err(CurveError::UnsupportedDecimals(decimals));
    }
    Ok(U256::from(10u8).pow(U256::from(36 - decimals)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_match_the_3pool_constants() {
        // StableSwap3Pool.vy: RATES = [1e18, 1e30, 1e30] for DAI (18), USDC (6), USDT (6).
        assert_eq!(rate_for_decimals(18), Ok(PRECISION));
        assert_eq!(rate_for_decimals(6), Ok(U256::from(10u8).pow(U256::from(30u8))));
        assert_eq!(rate_for_decimals(37), Err(CurveError::UnsupportedDecimals(37)));
    }

    #[test]
    fn errors_classify_as_configuration_or_revert() {
        assert!(CurveError::ZeroRate { index: 0 }.is_invalid_pool());
        assert!(CurveError::NoConvergence(Solver::D).is_revert());
        assert!(CurveError::Underflow(Step::Dy).is_revert());
        assert_eq!(CurveError::Overflow(Step::GetD).to_string(), "uint256 overflow in get_D");
    }
}
