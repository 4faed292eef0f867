//! [`StableSwapPool`]: one plain pool's state and the contract's `get_dy` / `exchange`.

use alloy_primitives::U256;

use super::math::{add, mul, sub};

use super::{
    CurveError, FEE_DENOMINATOR, Flavour, MAX_COINS, PRECISION, Result, Step, math, rate_for_decimals,
};

/// The contract's amplification storage: `initial_A`, `future_A`, `initial_A_time`,
/// `future_A_time`, in the flavour's convention (plain `A` for [`Flavour::ThreePool`], `A * 100`
/// for [`Flavour::FactoryPlain`]). [`AmpRamp::at`] is the contract's `_A()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AmpRamp {
    /// `initial_A`: amplification when the ramp started.
    pub initial_a: U256,
    /// `future_A`: amplification at and after `future_a_time`.
    pub future_a: U256,
    /// `initial_A_time`: block timestamp (seconds) when the ramp started.
    pub initial_a_time: u64,
    /// `future_A_time`: block timestamp (seconds) when the ramp ends; 0 if no ramp ever started.
    pub future_a_time: u64,
}

impl AmpRamp {
    /// A pool that never ramped (as deployed): `initial_A = future_A = a`, both times 0.
    pub const fn constant(a: U256) -> Self {
        Self { initial_a: a, future_a: a, initial_a_time: 0, future_a_time: 0 }
    }

    /// `_A()` at block timestamp `timestamp`; see [`math::amp_at`].
    pub fn at(&self, timestamp: u64) -> Result<U256> {
        math::amp_at(self.initial_a, self.future_a, self.initial_a_time, self.future_a_time, timestamp)
    }
}

/// What `exchange(i, j, dx, 0)` does, without moving any coin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExchangeOutcome {
    /// Coin `j` paid to the trader, in coin `j`'s units (the contract's return value).
    pub dy: U256,
    /// The whole swap fee in 18-decimal units (the contract's `dy_fee`); it stays in the pool
    /// except for [`ExchangeOutcome::admin_fee`].
    pub dy_fee: U256,
    /// The admin share of the fee in coin `j`'s units (the contract's `dy_admin_fee` after
    /// conversion): it leaves `balances[j]` but stays in the contract for the admin to withdraw.
    pub admin_fee: U256,
    /// The contract's `balances` after the swap: `balances[i] + dx`,
    /// `balances[j] - dy - admin_fee`, others unchanged; entries past the coin count are zero.
    pub balances: [U256; MAX_COINS],
}

/// A plain Curve StableSwap pool of 2 or 3 coins: the storage its swap math reads.
///
/// Fields are private so that the coin count, list lengths, rates and fees stay valid; the
/// setters re-check them. Balances are the contract's `balances` (not `balanceOf`: admin fees
/// waiting for withdrawal are excluded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StableSwapPool {
    flavour: Flavour,
    n_coins: usize,
    balances: [U256; MAX_COINS],
    rates: [U256; MAX_COINS],
    amp: AmpRamp,
    fee: u64,
    admin_fee: u64,
    /// StableSwap-NG's `offpeg_fee_multiplier` (parts of 10¹⁰); at most 10¹⁰ (0 for the older
    /// pools, which have none): the fee is constant.
    offpeg_fee_multiplier: u64,
}

impl StableSwapPool {
    /// A pool of `balances.len()` coins (2 or 3) with the contract's `rates` (`10^(36 − decimals)`
    /// for plain coins, see [`rate_for_decimals`]), amplification storage `amp`, `fee` and
    /// `admin_fee` in parts of 10¹⁰ (for [`Flavour::FactoryPlain`] factory pools, `admin_fee` is
    /// the constant [`super::FACTORY_ADMIN_FEE`]).
    pub fn new(
        flavour: Flavour,
        balances: &[U256],
        rates: &[U256],
        amp: AmpRamp,
        fee: u64,
        admin_fee: u64,
    ) -> Result<Self> {
        let n_coins = balances.len();
        if !(2..=MAX_COINS).contains(&n_coins) {
            return Err(CurveError::UnsupportedCoinCount(n_coins));
        }
        if rates.len() != n_coins {
            return Err(CurveError::LengthMismatch { what: "rates", got: rates.len(), expected: n_coins });
        }
        if let Some(index) = rates.iter().position(|r| r.is_zero()) {
            return Err(CurveError::ZeroRate { index });
        }
        check_fees(fee, admin_fee)?;
        let mut pool = Self {
            flavour,
            n_coins,
            balances: [U256::ZERO; MAX_COINS],
            rates: [U256::ZERO; MAX_COINS],
            amp,
            fee,
            admin_fee,
            offpeg_fee_multiplier: 0,
        };
        pool.balances[..n_coins].copy_from_slice(balances);
        pool.rates[..n_coins].copy_from_slice(rates);
        Ok(pool)
    }

    /// [`StableSwapPool::new`] with each coin's rate derived from its `decimals`.
    pub fn with_decimals(
        flavour: Flavour,
        balances: &[U256],
        decimals: &[u8],
        amp: AmpRamp,
        fee: u64,
        admin_fee: u64,
    ) -> Result<Self> {
        if !(2..=MAX_COINS).contains(&balances.len()) {
            return Err(CurveError::UnsupportedCoinCount(balances.len()));
        }
        if decimals.len() != balances.len() {
            return Err(CurveError::LengthMismatch {
                what: "decimals",
                got: decimals.len(),
                expected: balances.len(),
            });
        }
        let mut rates = [U256::ZERO; MAX_COINS];
        for (rate, d) in rates.iter_mut().zip(decimals) {
            *rate = rate_for_decimals(*d)?;
        }
        Self::new(flavour, balances, &rates[..decimals.len()], amp, fee, admin_fee)
    }

    /// The contract family whose integer conventions this pool follows.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Number of coins (2 or 3).
    pub fn n_coins(&self) -> usize {
        self.n_coins
    }

    /// The contract's `balances`, one per coin, in each coin's units.
    pub fn balances(&self) -> &[U256] {
        &self.balances[..self.n_coins]
    }

    /// The contract's rates, one per coin.
    pub fn rates(&self) -> &[U256] {
        &self.rates[..self.n_coins]
    }

    /// The amplification storage.
    pub fn amp_ramp(&self) -> &AmpRamp {
        &self.amp
    }

    /// Swap fee, parts of 10¹⁰.
    pub fn fee(&self) -> u64 {
        self.fee
    }

    /// Admin share of the swap fee, parts of 10¹⁰.
    pub fn admin_fee(&self) -> u64 {
        self.admin_fee
    }

    /// Replaces the balances (for instance from a `TokenExchange` or liquidity event), one per coin.
    pub fn set_balances(&mut self, balances: &[U256]) -> Result<()> {
        if balances.len() != self.n_coins {
            return Err(CurveError::LengthMismatch {
                what: "balances",
                got: balances.len(),
                expected: self.n_coins,
            });
        }
        self.balances[..self.n_coins].copy_from_slice(balances);
        Ok(())
    }

    /// StableSwap-NG's `offpeg_fee_multiplier`, parts of 10¹⁰ (0: none).
    pub fn offpeg_fee_multiplier(&self) -> u64 {
        self.offpeg_fee_multiplier
    }

    /// Sets StableSwap-NG's `offpeg_fee_multiplier` (parts of 10¹⁰; `CurveStableSwapNG.vy`, a
    /// [`Flavour::FactoryPlain`] pool otherwise): above 10¹⁰ the fee of a swap grows as the pool
    /// leaves its peg: `_dynamic_fee(xpi, xpj, fee)` is
    /// `m·fee / ((m − 10¹⁰)·4·xpi·xpj / (xpi + xpj)² + 10¹⁰)` on the averages of coin `i`'s and
    /// coin `j`'s normalised balances before and after it. At most 10¹⁰ (as the older pools,
    /// which have none) the fee is constant.
    pub fn set_offpeg_fee_multiplier(&mut self, multiplier: u64) {
        self.offpeg_fee_multiplier = multiplier;
    }

    /// Replaces the amplification storage (after `ramp_A` / `stop_ramp_A`).
    pub fn set_amp_ramp(&mut self, amp: AmpRamp) {
        self.amp = amp;
    }

    /// Replaces the fees (after `apply_new_fee`).
    pub fn set_fees(&mut self, fee: u64, admin_fee: u64) -> Result<()> {
        check_fees(fee, admin_fee)?;
        self.fee = fee;
        self.admin_fee = admin_fee;
        Ok(())
    }

    /// `_A()` at block timestamp `timestamp`, in the flavour's storage convention.
    pub fn amp(&self, timestamp: u64) -> Result<U256> {
        self.amp.at(timestamp)
    }

    /// `_xp()`: balances normalised to 18 decimals; entries past the coin count are zero.
    pub fn xp(&self) -> Result<[U256; MAX_COINS]> {
        math::xp(self.balances(), self.rates())
    }

    /// `get_D(_xp(), _A())` at block timestamp `timestamp`: the invariant, 18-decimal units.
    pub fn d(&self, timestamp: u64) -> Result<U256> {
        let xp = self.xp()?;
        math::get_d(&xp[..self.n_coins], self.amp(timestamp)?, self.flavour)
    }

    /// The contract's view `get_dy(i, j, dx)` at block timestamp `timestamp`: coin `j` quoted for
    /// `dx` of coin `i`, after the fee, in coin `j`'s units.
    ///
    /// For [`Flavour::FactoryPlain`] this equals [`StableSwapPool::exchange`]'s `dy`. For
    /// [`Flavour::ThreePool`] it is the 3pool's view, which takes the fee after converting to coin
    /// units and can differ from what `exchange` pays by about a wei: use
    /// [`StableSwapPool::exchange`] for the amount a transaction receives.
    pub fn get_dy(&self, i: usize, j: usize, dx: U256, timestamp: u64) -> Result<U256> {
        self.check_pair(i, j)?;
        self.quoter(timestamp)?.view_dy(i, j, dx)
    }

    /// The contract's `exchange(i, j, dx, 0)` at block timestamp `timestamp`, without changing
    /// `self`: what the trader receives, the fee split and the pool's `balances` afterwards.
    pub fn exchange(&self, i: usize, j: usize, dx: U256, timestamp: u64) -> Result<ExchangeOutcome> {
        self.check_pair(i, j)?;
        self.quoter(timestamp)?.exchange_outcome(i, j, dx)
    }

    /// [`StableSwapPool::exchange`], then stores the new balances in `self`. On error `self` is
    /// unchanged (the contract reverts).
    pub fn apply_exchange(
        &mut self,
        i: usize,
        j: usize,
        dx: U256,
        timestamp: u64,
    ) -> Result<ExchangeOutcome> {
        let outcome = self.exchange(i, j, dx, timestamp)?;
        self.balances = outcome.balances;
        Ok(outcome)
    }

    /// Solves `D` once for this state at `timestamp`, for many quotes on the same state (a split
    /// search, a price ladder): each [`Quoter`] quote then costs one `get_y` instead of a `get_D`
    /// and a `get_y`, with results identical to [`StableSwapPool::get_dy`] and
    /// [`StableSwapPool::exchange`] (the contracts recompute the same `D` on every call).
    pub fn quoter(&self, timestamp: u64) -> Result<Quoter<'_>> {
        let xp = self.xp()?;
        let amp = self.amp(timestamp)?;
        let d = math::get_d(&xp[..self.n_coins], amp, self.flavour)?;
        Ok(Quoter { pool: self, xp, amp, d })
    }

    /// The contract reads `xp[i]` first (an out-of-range index reverts) and then asserts `i != j`
    /// in `get_y`; checked before any arithmetic so the error names the index.
    fn check_pair(&self, i: usize, j: usize) -> Result<()> {
        for index in [i, j] {
            if index >= self.n_coins {
                return Err(CurveError::IndexOutOfRange { index, n_coins: self.n_coins });
            }
        }
        if i == j {
            return Err(CurveError::SameCoin(i));
        }
        Ok(())
    }
}

/// A pool state with `xp`, `A(t)` and `D` solved once: quotes on it skip `get_D`.
///
/// Borrowed from a [`StableSwapPool`] (see [`StableSwapPool::quoter`]), so the state cannot change
/// while it lives.
#[derive(Debug, Clone, Copy)]
pub struct Quoter<'a> {
    pool: &'a StableSwapPool,
    xp: [U256; MAX_COINS],
    amp: U256,
    d: U256,
}

impl Quoter<'_> {
    /// The invariant `D` of this state (18-decimal units).
    pub fn d(&self) -> U256 {
        self.d
    }

    /// The amplification `A(t)` used, in the flavour's storage convention.
    pub fn amp(&self) -> U256 {
        self.amp
    }

    /// Same as [`StableSwapPool::get_dy`] on the borrowed pool at the quoter's timestamp.
    pub fn get_dy(&self, i: usize, j: usize, dx: U256) -> Result<U256> {
        self.pool.check_pair(i, j)?;
        self.view_dy(i, j, dx)
    }

    /// Same as [`StableSwapPool::exchange`] on the borrowed pool at the quoter's timestamp.
    pub fn exchange(&self, i: usize, j: usize, dx: U256) -> Result<ExchangeOutcome> {
        self.pool.check_pair(i, j)?;
        self.exchange_outcome(i, j, dx)
    }

    /// The common head of `get_dy` and `exchange`: `x = xp[i] + dx * rates[i] / PRECISION`,
    /// `y = get_y(i, j, x, xp)` and `dy = xp[j] - y - 1` (18-decimal units, before the fee), with
    /// the fee that applies to it (parts of 10¹⁰).
    fn dy_before_fee(&self, i: usize, j: usize, dx: U256) -> Result<(U256, U256)> {
        let pool = self.pool;
        let xp = &self.xp[..pool.n_coins];
        let x = add(xp[i], mul(dx, pool.rates[i], Step::Xp)? / PRECISION, Step::Xp)?;
        let y = math::get_y_for_d(i, j, x, xp, self.amp, self.d, pool.flavour)?;
        let dy = sub(sub(xp[j], y, Step::Dy)?, U256::from(1u8), Step::Dy)?;
        Ok((dy, pool.dynamic_fee(xp[i], x, xp[j], y)?))
    }

    fn view_dy(&self, i: usize, j: usize, dx: U256) -> Result<U256> {
        let (dy_xp, fee) = self.dy_before_fee(i, j, dx)?;
        let pool = self.pool;
        let denominator = U256::from(FEE_DENOMINATOR);
        if pool.flavour.view_fee_in_coin_units() {
            // dy = (xp[j] - y - 1) * PRECISION / rates[j]; return dy - fee * dy / FEE_DENOMINATOR
            let dy = mul(dy_xp, PRECISION, Step::Dy)? / pool.rates[j];
            let fee_amount = mul(fee, dy, Step::Fee)? / denominator;
            sub(dy, fee_amount, Step::Fee)
        } else {
            // fee = fee * dy / FEE_DENOMINATOR; return (dy - fee) * PRECISION / rates[j]
            let fee_amount = mul(fee, dy_xp, Step::Fee)? / denominator;
            Ok(mul(sub(dy_xp, fee_amount, Step::Fee)?, PRECISION, Step::Dy)? / pool.rates[j])
        }
    }

    fn exchange_outcome(&self, i: usize, j: usize, dx: U256) -> Result<ExchangeOutcome> {
        let (dy_xp, fee) = self.dy_before_fee(i, j, dx)?;
        let pool = self.pool;
        let denominator = U256::from(FEE_DENOMINATOR);
        let rate_j = pool.rates[j];
        // dy_fee = dy * fee / FEE_DENOMINATOR; dy = (dy - dy_fee) * PRECISION / rates[j]
        let dy_fee = mul(dy_xp, fee, Step::Fee)? / denominator;
        let dy = mul(sub(dy_xp, dy_fee, Step::Fee)?, PRECISION, Step::Dy)? / rate_j;
        // dy_admin_fee = dy_fee * admin_fee / FEE_DENOMINATOR * PRECISION / rates[j]
        let admin_xp = mul(dy_fee, U256::from(pool.admin_fee), Step::Fee)? / denominator;
        let admin_fee = mul(admin_xp, PRECISION, Step::Fee)? / rate_j;

        let mut balances = pool.balances;
        balances[i] = add(balances[i], dx, Step::Balances)?;
        balances[j] = sub(sub(balances[j], dy, Step::Balances)?, admin_fee, Step::Balances)?;
        Ok(ExchangeOutcome { dy, dy_fee, admin_fee, balances })
    }
}

impl StableSwapPool {
    /// StableSwap-NG's `_dynamic_fee((xp[i] + x) / 2, (xp[j] + y) / 2, fee)` for a swap taking
    /// coin `i`'s normalised balance from `xp_i` to `x` and coin `j`'s from `xp_j` to `y`: the
    /// pool's fee, raised off the peg when its `offpeg_fee_multiplier` exceeds 10¹⁰ (see
    /// [`StableSwapPool::set_offpeg_fee_multiplier`]).
    fn dynamic_fee(&self, xp_i: U256, x: U256, xp_j: U256, y: U256) -> Result<U256> {
        let fee = U256::from(self.fee);
        let m = self.offpeg_fee_multiplier;
        if m <= FEE_DENOMINATOR {
            return Ok(fee);
        }
        let two = U256::from(2u8);
        let (xpi, xpj) = (add(xp_i, x, Step::Fee)? / two, add(xp_j, y, Step::Fee)? / two);
        let sum = add(xpi, xpj, Step::Fee)?;
        let xps2 = mul(sum, sum, Step::Fee)?;
        if xps2.is_zero() {
            return Err(CurveError::DivisionByZero(Step::Fee));
        }
        // (m * fee) // ((m - FEE_DENOMINATOR) * 4 * xpi * xpj // xps2 + FEE_DENOMINATOR), left to right
        let m = U256::from(m);
        let denominator = U256::from(FEE_DENOMINATOR);
        let offpeg =
            mul(mul(mul(m - denominator, U256::from(4u8), Step::Fee)?, xpi, Step::Fee)?, xpj, Step::Fee)?;
        Ok(mul(m, fee, Step::Fee)? / add(offpeg / xps2, denominator, Step::Fee)?)
    }
}

fn check_fees(fee: u64, admin_fee: u64) -> Result<()> {
    if fee > FEE_DENOMINATOR {
        return Err(CurveError::FeeAboveDenominator { what: "fee", value: fee });
    }
    if admin_fee > FEE_DENOMINATOR {
        return Err(CurveError::FeeAboveDenominator { what: "admin_fee", value: admin_fee });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::FACTORY_ADMIN_FEE;

    fn u(v: u128) -> U256 {
        U256::from(v)
    }

    /// curvesim's own docstring example: `Pool(A=250, D=1e24, n=2, rates=[1e30, 1e30])`, i.e.
    /// two 6-decimal coins of 500,000 each, fee 4e6, admin fee 5e9:
    /// `exchange(0, 1, 150e6) == (149939820, 59999)`, balances after `[500150000000, 499850030181]`.
    #[test]
    fn matches_curvesims_documented_exchange() {
        for (flavour, a) in [(Flavour::ThreePool, 250u128), (Flavour::FactoryPlain, 25_000)] {
            let pool = StableSwapPool::with_decimals(
                flavour,
                &[u(500_000_000_000), u(500_000_000_000)],
                &[6, 6],
                AmpRamp::constant(u(a)),
                4_000_000,
                FACTORY_ADMIN_FEE,
            )
            .unwrap();
            assert_eq!(pool.d(0).unwrap(), u(1_000_000 * 10u128.pow(18)));
            let out = pool.exchange(0, 1, u(150_000_000), 0).unwrap();
            assert_eq!(out.dy, u(149_939_820), "{flavour:?}");
            assert_eq!(&out.balances[..2], &[u(500_150_000_000), u(499_850_030_181)]);
            // curvesim reports the fee converted to coin units: 59999.
            assert_eq!(out.dy_fee * PRECISION / pool.rates()[1], u(59_999));
        }
    }

    /// StableSwap-NG's off-peg fee: at the peg (equal averages) it is the pool's fee; off it, it
    /// is `m·fee / ((m − 10¹⁰)·4·xpi·xpj / (xpi + xpj)² + 10¹⁰)`, floored as the contract does; a
    /// multiplier of at most 10¹⁰ leaves it constant.
    #[test]
    fn the_off_peg_fee_is_the_fee_at_the_peg_and_rises_off_it() {
        let mut pool = StableSwapPool::with_decimals(
            Flavour::FactoryPlain,
            &[u(10u128.pow(24)), u(10u128.pow(24))],
            &[18, 18],
            AmpRamp::constant(u(20_000)),
            4_000_000,
            FACTORY_ADMIN_FEE,
        )
        .unwrap();
        let e = u(10u128.pow(24));
        assert_eq!(pool.dynamic_fee(e, e, e, e).unwrap(), u(4_000_000));
        pool.set_offpeg_fee_multiplier(20_000_000_000);
        assert_eq!(pool.dynamic_fee(e, e, e, e).unwrap(), u(4_000_000), "at the peg");
        let (xi, xj) = (u(3) * e, e);
        // 4·3·1 / 16 = 0.75: 2e10·4e6 / (1e10·0.75 + 1e10)
        let expected = u(20_000_000_000u128 * 4_000_000)
            / ((u(10_000_000_000) * u(4) * xi * xj) / ((xi + xj) * (xi + xj)) + u(10_000_000_000));
        // Averages of before and after: (xi + xi) / 2 = xi and (xj + xj) / 2 = xj.
        assert_eq!(pool.dynamic_fee(xi, xi, xj, xj).unwrap(), expected);
        assert!(expected > u(4_000_000));
        // A swap off the peg pays less than with the constant fee.
        let raised = pool.exchange(0, 1, u(4) * e / u(10), 0).unwrap().dy;
        pool.set_offpeg_fee_multiplier(10_000_000_000);
        assert!(pool.exchange(0, 1, u(4) * e / u(10), 0).unwrap().dy > raised);
    }

    #[test]
    fn three_pool_view_takes_the_fee_in_coin_units() {
        // DAI (18) -> USDC (6) with a 1% fee: the view floors to 6 decimals before the fee.
        let pool = StableSwapPool::with_decimals(
            Flavour::ThreePool,
            &[u(10u128.pow(24)), u(10u128.pow(12)), u(10u128.pow(12))],
            &[18, 6, 6],
            AmpRamp::constant(u(2000)),
            100_000_000,
            5_000_000_000,
        )
        .unwrap();
        let dx = u(1_234_567_890_123_456_789);
        let xp = pool.xp().unwrap();
        let x = xp[0] + dx;
        let y = math::get_y(0, 1, x, &xp[..3], u(2000), Flavour::ThreePool).unwrap();
        let dy_xp = xp[1] - y - u(1);
        let dy = dy_xp / u(10u128.pow(12));
        assert_eq!(pool.get_dy(0, 1, dx, 0).unwrap(), dy - dy / u(100));
        let paid = (dy_xp - dy_xp / u(100)) / u(10u128.pow(12));
        assert_eq!(pool.exchange(0, 1, dx, 0).unwrap().dy, paid);
    }

    #[test]
    fn apply_exchange_moves_balances_and_leaves_them_on_error() {
        let mut pool = StableSwapPool::with_decimals(
            Flavour::FactoryPlain,
            &[u(10u128.pow(21)), u(10u128.pow(21))],
            &[18, 18],
            AmpRamp::constant(u(10_000)),
            4_000_000,
            FACTORY_ADMIN_FEE,
        )
        .unwrap();
        let out = pool.apply_exchange(0, 1, u(10u128.pow(18)), 0).unwrap();
        assert_eq!(pool.balances(), &out.balances[..2]);
        assert_eq!(pool.balances()[0], u(10u128.pow(21) + 10u128.pow(18)));
        assert_eq!(pool.balances()[1], u(10u128.pow(21)) - out.dy - out.admin_fee);
        let before = pool.clone();
        // A swap with no input pays nothing (y comes back as xp[j] - 1, and the "- 1" eats it).
        assert_eq!(pool.exchange(0, 1, U256::ZERO, 0).unwrap().dy, U256::ZERO);
        assert_eq!(pool.apply_exchange(0, 1, U256::MAX, 0), Err(CurveError::Overflow(Step::Xp)));
        assert_eq!(pool, before);
    }

    #[test]
    fn rejects_bad_pools_and_indices() {
        let amp = AmpRamp::constant(u(100));
        let one = [u(1); 4];
        assert_eq!(
            StableSwapPool::new(Flavour::ThreePool, &one, &one, amp, 0, 0),
            Err(CurveError::UnsupportedCoinCount(4))
        );
        assert_eq!(
            StableSwapPool::with_decimals(Flavour::ThreePool, &one, &[18; 4], amp, 0, 0),
            Err(CurveError::UnsupportedCoinCount(4))
        );
        assert_eq!(
            StableSwapPool::with_decimals(Flavour::ThreePool, &one[..2], &[18; 3], amp, 0, 0),
            Err(CurveError::LengthMismatch { what: "decimals", got: 3, expected: 2 })
        );
        assert_eq!(
            StableSwapPool::new(Flavour::ThreePool, &one[..2], &one[..3], amp, 0, 0),
            Err(CurveError::LengthMismatch { what: "rates", got: 3, expected: 2 })
        );
        assert_eq!(
            StableSwapPool::new(Flavour::ThreePool, &one[..2], &[u(1), U256::ZERO], amp, 0, 0),
            Err(CurveError::ZeroRate { index: 1 })
        );
        assert_eq!(
            StableSwapPool::new(Flavour::ThreePool, &one[..2], &one[..2], amp, FEE_DENOMINATOR + 1, 0),
            Err(CurveError::FeeAboveDenominator { what: "fee", value: FEE_DENOMINATOR + 1 })
        );
        let pool = StableSwapPool::with_decimals(
            Flavour::ThreePool,
            &[u(10u128.pow(20)), u(10u128.pow(8))],
            &[18, 6],
            amp,
            0,
            0,
        )
        .unwrap();
        assert_eq!(pool.get_dy(0, 2, u(1), 0), Err(CurveError::IndexOutOfRange { index: 2, n_coins: 2 }));
        assert_eq!(pool.exchange(1, 1, u(1), 0), Err(CurveError::SameCoin(1)));
        let empty =
            StableSwapPool::with_decimals(Flavour::ThreePool, &[u(0), u(10)], &[18, 18], amp, 0, 0).unwrap();
        assert_eq!(empty.get_dy(1, 0, u(1), 0), Err(CurveError::ZeroBalance { index: 0 }));
    }

    #[test]
    fn a_ramp_changes_the_quote_between_blocks() {
        let mut pool = StableSwapPool::with_decimals(
            Flavour::FactoryPlain,
            &[u(3 * 10u128.pow(24)), u(10u128.pow(24))],
            &[18, 18],
            AmpRamp::constant(u(100 * 100)),
            0,
            0,
        )
        .unwrap();
        pool.set_amp_ramp(AmpRamp {
            initial_a: u(100 * 100),
            future_a: u(1000 * 100),
            initial_a_time: 1_000_000,
            future_a_time: 1_000_000 + 86_400,
        });
        assert_eq!(pool.amp(1_000_000 + 43_200).unwrap(), u(55_000));
        let dx = u(10u128.pow(23));
        let early = pool.get_dy(0, 1, dx, 1_000_000).unwrap();
        let late = pool.get_dy(0, 1, dx, 1_000_000 + 86_400).unwrap();
        assert!(late > early, "higher A, flatter curve: {late} > {early}");
    }
}
