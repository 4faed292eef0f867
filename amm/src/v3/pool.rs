//! A Uniswap V3 pool's swap-relevant state and the contract's swap loop, to the wei.
//!
//! [`V3Pool::swap`] replays `UniswapV3Pool.swap` step by step: each step ends at the next initialized
//! tick *within the current 256-tick bitmap word* or at that word's edge (those extra steps change
//! rounding, so a simulator that jumps straight to the next initialized tick drifts by a few wei),
//! crossing applies `liquidityNet` (negated when `zeroForOne`), the tick becomes `tickNext - 1` /
//! `tickNext` at a boundary and is recomputed from the price otherwise. The protocol fee is assumed
//! off; fee growth and the oracle are not tracked (they never change swap amounts).
//!
//! Tick storage: a sorted array of initialized ticks (struct of arrays) with each tick's sqrt price
//! precomputed. The word-bounded search is a binary search plus the word bounds of
//! [`word_bounds`](super::tick_bitmap::word_bounds); it is checked against the contract's bitmap
//! ([`TickBitmap`](super::tick_bitmap::TickBitmap)) by a property test.

use alloy_primitives::{I256, U256};

use super::liquidity_math::add_delta;
use super::sqrt_price_math::to_i256;
use super::swap_math::{FEE_DENOMINATOR, compute_swap_step_struct};
use super::tick_bitmap::word_bounds;
use super::tick_math::{
    MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio,
};
use super::{Result, V3Error};

/// Largest tick spacing the factory accepts (`tickSpacing < 16384`).
pub const MAX_TICK_SPACING: i32 = 16_383;

/// One initialized tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickInfo {
    /// Tick index (a multiple of the pool's tick spacing).
    pub index: i32,
    /// Liquidity added when the price crosses this tick left to right (removed right to left).
    pub liquidity_net: i128,
}

/// Per-tick data kept next to the sorted indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TickData {
    /// Gross liquidity referencing the tick: exact when `gross_known`, otherwise a lower bound
    /// (`|liquidity_net|`) because the tick was loaded from a [`TickInfo`].
    liquidity_gross: u128,
    gross_known: bool,
    liquidity_net: i128,
    /// `getSqrtRatioAtTick(index)`, cached so crossing needs no TickMath.
    sqrt_price_x96: U256,
}

/// Initialized ticks sorted by index, as two parallel arrays (indices are searched, data is read).
#[derive(Debug, Default, PartialEq, Eq)]
struct TickTable {
    index: Vec<i32>,
    data: Vec<TickData>,
}

/// `clone_from` reuses the arrays: the router's planning copy is brought back in step with the
/// pool without allocating.
impl Clone for TickTable {
    fn clone(&self) -> Self {
        Self { index: self.index.clone(), data: self.data.clone() }
    }

    fn clone_from(&mut self, source: &Self) {
        let Self { index, data } = self;
        index.clone_from(&source.index);
        data.clone_from(&source.data);
    }
}

impl TickTable {
    fn find(&self, tick: i32) -> core::result::Result<usize, usize> {
        self.index.binary_search(&tick)
    }

    fn get(&self, tick: i32) -> Option<TickData> {
        self.find(tick).ok().map(|i| self.data[i])
    }

    fn upsert(&mut self, tick: i32, data: TickData) {
        match self.find(tick) {
            Ok(i) => self.data[i] = data,
            Err(i) => {
                self.index.insert(i, tick);
                self.data.insert(i, data);
            }
        }
    }

    fn remove(&mut self, tick: i32) {
        if let Ok(i) = self.find(tick) {
            self.index.remove(i);
            self.data.remove(i);
        }
    }

    /// `nextInitializedTickWithinOneWord`: `(next, Some(slot))` for an initialized tick found in the
    /// word, `(word edge, None)` otherwise. Inputs are bounded by the caller (|tick| ≤ MAX_TICK + 1,
    /// spacing ≤ 16383), so no product overflows i32.
    #[inline]
    fn next_initialized_within_one_word(&self, tick: i32, spacing: i32, lte: bool) -> (i32, Option<usize>) {
        let (from, to) = word_bounds(tick, spacing, lte);
        let (from, to) = (from * spacing, to * spacing);
        if lte {
            let p = self.index.partition_point(|&i| i <= from);
            if p > 0 && self.index[p - 1] >= to { (self.index[p - 1], Some(p - 1)) } else { (to, None) }
        } else {
            let p = self.index.partition_point(|&i| i < from);
            if p < self.index.len() && self.index[p] <= to { (self.index[p], Some(p)) } else { (to, None) }
        }
    }
}

/// Swap-relevant state of one Uniswap V3 pool.
#[derive(Debug, PartialEq)]
pub struct V3Pool {
    /// Fee in pips (hundredths of a basis point): 3000 = 0.3%.
    pub fee: u32,
    /// Tick spacing; initialized ticks are multiples of it.
    pub tick_spacing: i32,
    /// Current sqrt price, Q64.96 (`slot0.sqrtPriceX96`).
    pub sqrt_price_x96: U256,
    /// Current tick (`slot0.tick`).
    pub tick: i32,
    /// In-range liquidity.
    pub liquidity: u128,
    ticks: TickTable,
    /// Largest accepted tick spacing: [`MAX_TICK_SPACING`] for V3 pools, V4's `int16` bound
    /// (`crate::v4::MAX_TICK_SPACING`) for the V4 pools that share this state and swap loop.
    max_tick_spacing: i32,
}

/// `clone_from` reuses the tick table's arrays (see [`TickTable`]).
impl Clone for V3Pool {
    fn clone(&self) -> Self {
        let mut copy = Self { ticks: TickTable::default(), ..*self };
        copy.ticks.clone_from(&self.ticks);
        copy
    }

    fn clone_from(&mut self, source: &Self) {
        let Self { fee, tick_spacing, sqrt_price_x96, tick, liquidity, ticks, max_tick_spacing } = self;
        (*fee, *tick_spacing, *sqrt_price_x96, *tick) =
            (source.fee, source.tick_spacing, source.sqrt_price_x96, source.tick);
        (*liquidity, *max_tick_spacing) = (source.liquidity, source.max_tick_spacing);
        ticks.clone_from(&source.ticks);
    }
}

/// Outcome of a simulated swap, as the contract would return and store it.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapResult {
    /// Pool's token0 balance change: positive = paid in by the swapper, negative = paid out.
    pub amount0: I256,
    /// Pool's token1 balance change, same sign convention.
    pub amount1: I256,
    /// Sqrt price after the swap.
    pub sqrt_price_x96: U256,
    /// Tick after the swap.
    pub tick: i32,
    /// In-range liquidity after the swap.
    pub liquidity: u128,
    /// Loop iterations (swap steps) the contract would run.
    pub steps: u32,
    /// Initialized ticks crossed.
    pub ticks_crossed: u32,
}

/// `Tick.tickSpacingToMaxLiquidityPerTick`.
pub fn max_liquidity_per_tick(tick_spacing: i32) -> u128 {
    let min_tick = (MIN_TICK / tick_spacing) * tick_spacing;
    let max_tick = (MAX_TICK / tick_spacing) * tick_spacing;
    let num_ticks = ((max_tick - min_tick) / tick_spacing) as u128 + 1;
    u128::MAX / num_ticks
}

fn check_spaced(tick: i32, spacing: i32) -> Result<()> {
    if !(MIN_TICK..=MAX_TICK).contains(&tick) {
        return Err(V3Error::TickOutOfRange(tick));
    }
    if tick % spacing != 0 {
        return Err(V3Error::TickNotSpaced { tick, spacing });
    }
    Ok(())
}

fn check_params(fee: u32, tick_spacing: i32, max_tick_spacing: i32) -> Result<()> {
    if fee >= FEE_DENOMINATOR {
        return Err(V3Error::BadFee(fee));
    }
    if !(1..=max_tick_spacing).contains(&tick_spacing) {
        return Err(V3Error::BadTickSpacing(tick_spacing));
    }
    Ok(())
}

impl V3Pool {
    /// A pool from its `slot0` price and tick, in-range liquidity and initialized ticks.
    ///
    /// Validates the fee (< 1e6 pips), the spacing (1..=16383), the price (within
    /// `[MIN_SQRT_RATIO, MAX_SQRT_RATIO)`), that `tick` belongs to the price (it is
    /// `getTickAtSqrtRatio(price)`, or one less when the price sits exactly on that tick after a
    /// downward swap), and that every tick is a distinct multiple of the spacing within bounds. A tick
    /// with `liquidity_net == 0` is kept as initialized (a tick whose positions cancel out still stops
    /// a swap step on chain).
    pub fn new(
        fee: u32,
        tick_spacing: i32,
        sqrt_price_x96: U256,
        tick: i32,
        liquidity: u128,
        ticks: &[TickInfo],
    ) -> Result<Self> {
        Self::with_max_spacing(fee, tick_spacing, MAX_TICK_SPACING, sqrt_price_x96, tick, liquidity, ticks)
    }

    /// [`new`](Self::new) with another bound on the tick spacing (V4 pools accept up to 32767).
    pub(crate) fn with_max_spacing(
        fee: u32,
        tick_spacing: i32,
        max_tick_spacing: i32,
        sqrt_price_x96: U256,
        tick: i32,
        liquidity: u128,
        ticks: &[TickInfo],
    ) -> Result<Self> {
        check_params(fee, tick_spacing, max_tick_spacing)?;
        let price_tick = get_tick_at_sqrt_ratio(sqrt_price_x96)?;
        let on_boundary = tick == price_tick - 1 && get_sqrt_ratio_at_tick(price_tick)? == sqrt_price_x96;
        if tick != price_tick && !on_boundary {
            return Err(V3Error::InconsistentTick { tick, sqrt_price_x96 });
        }
        let mut sorted: Vec<TickInfo> = ticks.to_vec();
        sorted.sort_unstable_by_key(|t| t.index);
        let mut table =
            TickTable { index: Vec::with_capacity(sorted.len()), data: Vec::with_capacity(sorted.len()) };
        for t in &sorted {
            check_spaced(t.index, tick_spacing)?;
            if table.index.last() == Some(&t.index) {
                return Err(V3Error::DuplicateTick(t.index));
            }
            table.index.push(t.index);
            table.data.push(TickData {
                liquidity_gross: t.liquidity_net.unsigned_abs(),
                gross_known: false,
                liquidity_net: t.liquidity_net,
                sqrt_price_x96: get_sqrt_ratio_at_tick(t.index)?,
            });
        }
        Ok(Self { fee, tick_spacing, sqrt_price_x96, tick, liquidity, ticks: table, max_tick_spacing })
    }

    /// Initialized ticks, sorted by index.
    pub fn ticks(&self) -> impl Iterator<Item = TickInfo> + '_ {
        self.ticks
            .index
            .iter()
            .zip(&self.ticks.data)
            .map(|(&index, d)| TickInfo { index, liquidity_net: d.liquidity_net })
    }

    /// Number of initialized ticks.
    pub fn tick_count(&self) -> usize {
        self.ticks.index.len()
    }

    /// Sets a tick's `liquidity_net` (0 removes the tick), for syncing from chain data. Indices that
    /// cannot be initialized on chain (not a multiple of the spacing, or outside
    /// `[MIN_TICK, MAX_TICK]`) are ignored; [`try_set_tick`](Self::try_set_tick) reports them.
    pub fn set_tick(&mut self, index: i32, liquidity_net: i128) {
        // Ignoring is the documented contract of this infallible setter.
        let _ignored = self.try_set_tick(index, liquidity_net);
    }

    /// [`set_tick`](Self::set_tick) that reports an invalid index.
    pub fn try_set_tick(&mut self, index: i32, liquidity_net: i128) -> Result<()> {
        check_spaced(index, self.tick_spacing)?;
        if liquidity_net == 0 {
            self.ticks.remove(index);
            return Ok(());
        }
        let sqrt_price_x96 = get_sqrt_ratio_at_tick(index)?;
        self.ticks.upsert(
            index,
            TickData {
                liquidity_gross: liquidity_net.unsigned_abs(),
                gross_known: false,
                liquidity_net,
                sqrt_price_x96,
            },
        );
        Ok(())
    }

    /// Sets a tick from the contract's full `ticks(index)` view (gross and net liquidity), which lets
    /// later [`modify_position`](Self::modify_position) calls flip it exactly like the contract.
    /// `liquidity_gross == 0` removes the tick.
    pub fn set_tick_with_gross(
        &mut self,
        index: i32,
        liquidity_gross: u128,
        liquidity_net: i128,
    ) -> Result<()> {
        check_spaced(index, self.tick_spacing)?;
        if liquidity_gross == 0 {
            self.ticks.remove(index);
            return Ok(());
        }
        let sqrt_price_x96 = get_sqrt_ratio_at_tick(index)?;
        self.ticks
            .upsert(index, TickData { liquidity_gross, gross_known: true, liquidity_net, sqrt_price_x96 });
        Ok(())
    }

    /// Simulates `UniswapV3Pool.swap` exactly: `amount_specified > 0` is an exact input, `< 0` an
    /// exact output (of the other token). `sqrt_price_limit_x96` defaults to `MIN_SQRT_RATIO + 1` when
    /// selling token0 (`zero_for_one`) and `MAX_SQRT_RATIO - 1` otherwise, and is validated like the
    /// contract (`SPL`). Does not mutate the pool; see [`apply`](Self::apply).
    pub fn swap(
        &self,
        zero_for_one: bool,
        amount_specified: I256,
        sqrt_price_limit_x96: Option<U256>,
    ) -> Result<SwapResult> {
        self.swap_with_fee(self.fee, zero_for_one, amount_specified, sqrt_price_limit_x96)
    }

    /// [`swap`](Self::swap) charging `fee` pips instead of the pool's own fee: a V4 pool's swap fee
    /// (its LP fee, or LP plus protocol fee) runs the same loop.
    pub(crate) fn swap_with_fee(
        &self,
        fee: u32,
        zero_for_one: bool,
        amount_specified: I256,
        sqrt_price_limit_x96: Option<U256>,
    ) -> Result<SwapResult> {
        if amount_specified.is_zero() {
            return Err(V3Error::ZeroAmount);
        }
        check_params(fee, self.tick_spacing, self.max_tick_spacing)?;
        if !(MIN_TICK..=MAX_TICK).contains(&self.tick) {
            return Err(V3Error::TickOutOfRange(self.tick));
        }
        let one = U256::from(1u8);
        let limit = sqrt_price_limit_x96.unwrap_or(if zero_for_one {
            MIN_SQRT_RATIO + one
        } else {
            MAX_SQRT_RATIO - one
        });
        let current = self.sqrt_price_x96;
        let limit_ok = if zero_for_one {
            limit < current && limit > MIN_SQRT_RATIO
        } else {
            limit > current && limit < MAX_SQRT_RATIO
        };
        if !limit_ok {
            return Err(V3Error::PriceLimit { limit, current });
        }

        let exact_input = amount_specified.is_positive();
        let mut remaining = amount_specified;
        let mut calculated = I256::ZERO;
        let mut sqrt_price = current;
        let mut tick = self.tick;
        let mut liquidity = self.liquidity;
        let mut steps = 0u32;
        let mut ticks_crossed = 0u32;

        while !remaining.is_zero() && sqrt_price != limit {
            let sqrt_start = sqrt_price;
            let (mut tick_next, slot) =
                self.ticks.next_initialized_within_one_word(tick, self.tick_spacing, zero_for_one);
            // the bitmap is not aware of the tick bounds
            tick_next = tick_next.clamp(MIN_TICK, MAX_TICK);
            let sqrt_next = match slot {
                Some(i) => self.ticks.data[i].sqrt_price_x96,
                None => get_sqrt_ratio_at_tick(tick_next)?,
            };
            let target = if zero_for_one { sqrt_next.max(limit) } else { sqrt_next.min(limit) };
            let step = compute_swap_step_struct(sqrt_price, target, liquidity, remaining, fee)?;
            sqrt_price = step.sqrt_price_next_x96;
            steps += 1;

            let paid = to_i256(step.amount_in.checked_add(step.fee_amount).ok_or(V3Error::AmountOverflow)?)?;
            let out = to_i256(step.amount_out)?;
            if exact_input {
                remaining = remaining.checked_sub(paid).ok_or(V3Error::AmountOverflow)?;
                calculated = calculated.checked_sub(out).ok_or(V3Error::AmountOverflow)?;
            } else {
                remaining = remaining.checked_add(out).ok_or(V3Error::AmountOverflow)?;
                calculated = calculated.checked_add(paid).ok_or(V3Error::AmountOverflow)?;
            }

            if sqrt_price == sqrt_next {
                if let Some(i) = slot {
                    let net = self.ticks.data[i].liquidity_net;
                    // if we're moving leftward, we interpret liquidityNet as the opposite sign
                    let net =
                        if zero_for_one { net.checked_neg().ok_or(V3Error::LiquidityOverflow)? } else { net };
                    liquidity = add_delta(liquidity, net)?;
                    ticks_crossed += 1;
                }
                tick = if zero_for_one { tick_next - 1 } else { tick_next };
            } else if sqrt_price != sqrt_start {
                // recompute unless we're on a lower tick boundary and haven't moved
                tick = get_tick_at_sqrt_ratio(sqrt_price)?;
            }
        }

        let specified_used = amount_specified.checked_sub(remaining).ok_or(V3Error::AmountOverflow)?;
        let (amount0, amount1) = if zero_for_one == exact_input {
            (specified_used, calculated)
        } else {
            (calculated, specified_used)
        };
        Ok(SwapResult { amount0, amount1, sqrt_price_x96: sqrt_price, tick, liquidity, steps, ticks_crossed })
    }

    /// Moves the pool to the state after `r` (price, tick, in-range liquidity).
    pub fn apply(&mut self, r: &SwapResult) {
        self.sqrt_price_x96 = r.sqrt_price_x96;
        self.tick = r.tick;
        self.liquidity = r.liquidity;
    }

    /// Mint (`liquidity_delta > 0`) or burn (`< 0`) of a position: updates both ticks' gross/net
    /// liquidity, initializes or clears them when their gross liquidity flips to/from zero, and the
    /// in-range liquidity when `tick_lower <= tick < tick_upper`, exactly like the contract's
    /// `_modifyPosition` (checks `TLU`/`TLM`/`TUM`, spacing, `LO`, `LS`/`LA`). All or nothing.
    ///
    /// For a tick loaded through [`TickInfo`] (net only) the gross liquidity is not known; it is
    /// tracked as a lower bound, and a burn below it clears the tick only once its net is zero too.
    pub fn modify_position(&mut self, tick_lower: i32, tick_upper: i32, liquidity_delta: i128) -> Result<()> {
        check_params(self.fee, self.tick_spacing, self.max_tick_spacing)?;
        if tick_lower >= tick_upper {
            return Err(V3Error::TicksMisordered { lower: tick_lower, upper: tick_upper });
        }
        check_spaced(tick_lower, self.tick_spacing)?;
        check_spaced(tick_upper, self.tick_spacing)?;
        if liquidity_delta == 0 {
            return Ok(());
        }
        let max_per_tick = max_liquidity_per_tick(self.tick_spacing);
        let lower = self.updated_tick(tick_lower, liquidity_delta, false, max_per_tick)?;
        let upper = self.updated_tick(tick_upper, liquidity_delta, true, max_per_tick)?;
        let liquidity = if self.tick >= tick_lower && self.tick < tick_upper {
            add_delta(self.liquidity, liquidity_delta)?
        } else {
            self.liquidity
        };
        for (index, data) in [(tick_lower, lower), (tick_upper, upper)] {
            match data {
                Some(d) => self.ticks.upsert(index, d),
                None => self.ticks.remove(index),
            }
        }
        self.liquidity = liquidity;
        Ok(())
    }

    /// `Tick.update` on a copy: the tick's new data, or `None` when it is cleared.
    fn updated_tick(
        &self,
        index: i32,
        delta: i128,
        upper: bool,
        max_per_tick: u128,
    ) -> Result<Option<TickData>> {
        let before = self.ticks.get(index);
        let (gross_before, gross_known, net_before) = match before {
            Some(d) => (d.liquidity_gross, d.gross_known, d.liquidity_net),
            None => (0, true, 0),
        };
        let net = if upper { net_before.checked_sub(delta) } else { net_before.checked_add(delta) }
            .ok_or(V3Error::AmountOverflow)?;
        let gross = match add_delta(gross_before, delta) {
            Ok(g) if gross_known => g,
            Ok(g) => g.max(net.unsigned_abs()),
            Err(e) if gross_known => return Err(e),
            // Lower bound underflowed: the true gross is unknown but at least |net|.
            Err(_) => net.unsigned_abs(),
        };
        if gross > max_per_tick {
            return Err(V3Error::LiquidityPerTickOverflow(max_per_tick));
        }
        if gross == 0 {
            return Ok(None);
        }
        let sqrt_price_x96 = match before {
            Some(d) => d.sqrt_price_x96,
            None => get_sqrt_ratio_at_tick(index)?,
        };
        Ok(Some(TickData { liquidity_gross: gross, gross_known, liquidity_net: net, sqrt_price_x96 }))
    }

    /// Mid price, token1 per token0 in raw units (`(sqrtPriceX96 / 2^96)^2`), for analytics only.
    pub fn mid_price(&self) -> f64 {
        let s = f64::from(self.sqrt_price_x96) / 2f64.powi(96);
        s * s
    }
}

/// Shared fixtures for V3 tests.
#[cfg(test)]
pub(crate) mod test_utils {
    use alloy_primitives::{U256, U512};

    /// `n · 10^18`.
    pub(crate) fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u8))
    }

    fn widen(x: U256) -> U512 {
        let l = x.as_limbs();
        U512::from_limbs([l[0], l[1], l[2], l[3], 0, 0, 0, 0])
    }

    /// v3-core's `encodePriceSqrt(reserve1, reserve0)`, reproducing bignumber.js exactly with the
    /// 1.0 test config (`DECIMAL_PLACES: 40`): the quotient and the square root are each rounded
    /// half-up to 40 decimal places, then the product with 2^96 is floored.
    pub(crate) fn encode_price_sqrt(reserve1: U256, reserve0: U256) -> U256 {
        let scale = widen(U256::from(10u64).pow(U256::from(40u8)));
        let two = U512::from(2u8);
        let (r1, r0) = (widen(reserve1), widen(reserve0));
        // q = round_half_up(r1 / r0, 40 dp), as an integer scaled by 1e40
        let q = (two * r1 * scale + r0) / (two * r0);
        // s = round_half_up(sqrt(q / 1e40), 40 dp) scaled by 1e40 = round(sqrt(q · 1e40))
        let x = q * scale;
        let mut s = x.root(2);
        while s * s > x {
            s -= U512::from(1u8);
        }
        while (s + U512::from(1u8)) * (s + U512::from(1u8)) <= x {
            s += U512::from(1u8);
        }
        if x - s * s > s {
            s += U512::from(1u8);
        }
        let v: U512 = (s << 96usize) / scale;
        let l = v.as_limbs();
        U256::from_limbs([l[0], l[1], l[2], l[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::test_utils::{e18, encode_price_sqrt};
    use super::*;
    use crate::v3::tick_bitmap::TickBitmap;
    use proptest::prelude::*;

    fn n(x: u64) -> U256 {
        U256::from(x)
    }

    /// A pool copied back onto a moved copy of itself keeps its tick table's arrays.
    #[test]
    fn clone_from_the_same_pool_reuses_the_tick_table() {
        let ticks: Vec<TickInfo> = (1..=50)
            .flat_map(|k| {
                [TickInfo { index: -60 * k, liquidity_net: 7 }, TickInfo { index: 60 * k, liquidity_net: -7 }]
            })
            .collect::<Vec<_>>();
        let mut ticks = ticks;
        ticks.sort_by_key(|t| t.index);
        let pool = V3Pool::new(3000, 60, crate::v3::sqrt_price_math::Q96, 0, 350, &ticks).unwrap();
        let mut copy = pool.clone();
        copy.sqrt_price_x96 += n(1);
        let (index, data) = (copy.ticks.index.as_ptr(), copy.ticks.data.as_ptr());
        copy.clone_from(&pool);
        assert_eq!(copy, pool);
        assert_eq!((copy.ticks.index.as_ptr(), copy.ticks.data.as_ptr()), (index, data));
    }
    fn i(s: &str) -> I256 {
        I256::from_dec_str(s).unwrap()
    }
    fn min_tick(spacing: i32) -> i32 {
        // getMinTick: ceil(-887272 / spacing) * spacing
        -(887_272 / spacing) * spacing
    }
    fn max_tick(spacing: i32) -> i32 {
        (887_272 / spacing) * spacing
    }

    /// A pool built like the v3-core fixtures: initialize at a price, then mint positions.
    fn pool(fee: u32, spacing: i32, sqrt_price: U256, positions: &[(i32, i32, u128)]) -> V3Pool {
        let tick = get_tick_at_sqrt_ratio(sqrt_price).unwrap();
        let mut p = V3Pool::new(fee, spacing, sqrt_price, tick, 0, &[]).unwrap();
        for &(lo, hi, l) in positions {
            p.modify_position(lo, hi, l as i128).unwrap();
        }
        p
    }

    fn two_e18() -> u128 {
        e18(2).to::<u128>()
    }

    /// (zero_for_one, amount_specified, limit, expected amount0, expected amount1, expected tick)
    type Case = (bool, &'static str, Option<U256>, &'static str, &'static str, i32);

    fn check_cases(p: &V3Pool, cases: &[Case]) {
        for &(z41, amount, limit, a0, a1, tick) in cases {
            let r = p.swap(z41, i(amount), limit).unwrap();
            assert_eq!((r.amount0, r.amount1, r.tick), (i(a0), i(a1), tick), "case {z41} {amount} {limit:?}");
        }
    }

    fn int_max() -> &'static str {
        "57896044618658097711785492504343953926634992332820282019728792003956564819967"
    }

    // Expected values: v3-core test/__snapshots__/UniswapV3Pool.swaps.spec.ts.snap (amount0Delta,
    // amount1Delta, tickAfter). Exact input = positive amount, exact output = negative; "to price" cases
    // use amount type(int256).max with the limit, as TestUniswapV3Callee.swapToLower/HigherSqrtPrice.
    #[test]
    fn snapshot_medium_fee_1_1_price_2e18_max_range() {
        let p = pool(3000, 60, encode_price_sqrt(n(1), n(1)), &[(min_tick(60), max_tick(60), two_e18())]);
        assert_eq!(p.tick, 0);
        let lim_04 = Some(encode_price_sqrt(n(2), n(5)));
        let lim_25 = Some(encode_price_sqrt(n(5), n(2)));
        check_cases(
            &p,
            &[
                (true, "1000000000000000000", None, "1000000000000000000", "-665331998665331998", -8090),
                (false, "1000000000000000000", None, "-665331998665331998", "1000000000000000000", 8089),
                (true, "-1000000000000000000", None, "2006018054162487463", "-1000000000000000000", -13864),
                (false, "-1000000000000000000", None, "-1000000000000000000", "2006018054162487463", 13863),
                (true, "1000", None, "1000", "-996", -1),
                (false, "1000", None, "-996", "1000", 0),
                (true, "-1000", None, "1005", "-1000", -1),
                (false, "-1000", None, "-1000", "1005", 0),
                (true, int_max(), lim_04, "1165774985123750584", "-735088935932648267", -9164),
                (false, int_max(), lim_25, "-735088935932648267", "1165774985123750584", 9163),
            ],
        );
        for (z41, lim) in [(true, lim_25), (false, lim_04)] {
            assert!(matches!(p.swap(z41, i(int_max()), lim), Err(V3Error::PriceLimit { .. })));
        }
    }

    #[test]
    fn snapshot_medium_fee_zero_liquidity_around_current_price() {
        // Both positions are 60 ticks away from the price: every swap crosses an initialized tick out of
        // a zero-liquidity range first.
        let p = pool(
            3000,
            60,
            encode_price_sqrt(n(1), n(1)),
            &[(min_tick(60), -60, two_e18()), (60, max_tick(60), two_e18())],
        );
        assert_eq!(p.liquidity, 0);
        let lim_04 = Some(encode_price_sqrt(n(2), n(5)));
        let lim_25 = Some(encode_price_sqrt(n(5), n(2)));
        check_cases(
            &p,
            &[
                (true, "1000", None, "1000", "-991", -61),
                (false, "1000", None, "-991", "1000", 60),
                (true, "1000000000000000000", None, "1000000000000000000", "-662011820624678025", -8130),
                (false, "1000000000000000000", None, "-662011820624678025", "1000000000000000000", 8129),
                (true, "-1000", None, "1011", "-1000", -61),
                (false, "-1000", None, "-1000", "1011", 60),
                (true, "-1000000000000000000", None, "2024171064311638316", "-1000000000000000000", -13984),
                (false, "-1000000000000000000", None, "-1000000000000000000", "2024171064311638316", 13983),
                (true, int_max(), lim_04, "1159748196632793863", "-729098226020826705", -9164),
                (false, int_max(), lim_25, "-729098226020826705", "1159748196632793863", 9163),
            ],
        );
        let r = p.swap(true, i("1000"), None).unwrap();
        assert_eq!(r.ticks_crossed, 1);
    }

    #[test]
    fn snapshot_medium_fee_additional_liquidity_around_current_price() {
        let p = pool(
            3000,
            60,
            encode_price_sqrt(n(1), n(1)),
            &[
                (min_tick(60), max_tick(60), two_e18()),
                (min_tick(60), -60, two_e18()),
                (60, max_tick(60), two_e18()),
            ],
        );
        let lim_04 = Some(encode_price_sqrt(n(2), n(5)));
        let lim_25 = Some(encode_price_sqrt(n(5), n(2)));
        check_cases(
            &p,
            &[
                (true, "1000", None, "1000", "-996", -1),
                (false, "1000", None, "-996", "1000", 0),
                (true, "1000000000000000000", None, "1000000000000000000", "-795933705287758544", -4476),
                (false, "1000000000000000000", None, "-795933705287758544", "1000000000000000000", 4475),
                (true, "-1000", None, "1005", "-1000", -1),
                (false, "-1000", None, "-1000", "1005", 0),
                (true, "-1000000000000000000", None, "1342022152495072924", "-1000000000000000000", -5794),
                (false, "-1000000000000000000", None, "-1000000000000000000", "1342022152495072924", 5793),
                (true, int_max(), lim_04, "2325523181756544449", "-1464187161953474971", -9164),
                (false, int_max(), lim_25, "-1464187161953474971", "2325523181756544449", 9163),
            ],
        );
    }

    #[test]
    fn snapshot_medium_fee_10_1_and_1_10_price() {
        let p10 = pool(3000, 60, encode_price_sqrt(n(10), n(1)), &[(min_tick(60), max_tick(60), two_e18())]);
        assert_eq!(p10.tick, 23027);
        check_cases(
            &p10,
            &[
                (true, "1000", None, "1000", "-9969", 23027),
                (false, "1000", None, "-99", "1000", 23027),
                (true, "1000000000000000000", None, "1000000000000000000", "-3869747612262812754", 4098),
                (false, "1000000000000000000", None, "-86123526743846551", "1000000000000000000", 25954),
                (true, "-1000", None, "102", "-1000", 23027),
                (true, "-1000000000000000000", None, "119138326055954425", "-1000000000000000000", 19584),
                (false, "-1000", None, "-1000", "10032", 23027),
            ],
        );
        let p01 = pool(3000, 60, encode_price_sqrt(n(1), n(10)), &[(min_tick(60), max_tick(60), two_e18())]);
        assert_eq!(p01.tick, -23028);
        let lim_04 = Some(encode_price_sqrt(n(2), n(5)));
        check_cases(
            &p01,
            &[
                (true, "1000", None, "1000", "-99", -23028),
                (false, "1000", None, "-9969", "1000", -23028),
                (true, "1000000000000000000", None, "1000000000000000000", "-86123526743846551", -25955),
                (false, "1000000000000000000", None, "-3869747612262812753", "1000000000000000000", -4099),
                (false, "-1000000000000000000", None, "-1000000000000000000", "119138326055954425", -19585),
                (false, int_max(), lim_04, "-3162277660168379331", "634358607857247611", -9164),
            ],
        );
    }

    #[test]
    fn snapshot_close_to_max_and_min_price() {
        // Prices near the ratio bounds: the swaps cross the full-range position's edge tick, run through
        // zero liquidity and clamp the next tick to MIN_TICK / MAX_TICK.
        let full = [(min_tick(60), max_tick(60), two_e18())];
        let hi = pool(3000, 60, encode_price_sqrt(U256::from(1u8) << 127, n(1)), &full);
        assert_eq!(hi.tick, 880340);
        let lim_04 = Some(encode_price_sqrt(n(2), n(5)));
        let lim_25 = Some(encode_price_sqrt(n(5), n(2)));
        check_cases(
            &hi,
            &[
                (true, "1000", None, "1000", "-26083549850867114346332688477747755628", 705098),
                (
                    true,
                    "1000000000000000000",
                    None,
                    "1000000000000000000",
                    "-26087635650665564420687107504180041533",
                    13923,
                ),
                (false, "1000", None, "0", "1000", 880340),
                (true, "-1000000000000000000", None, "2", "-1000000000000000000", 880340),
                (false, "-1000", None, "0", "10740898373457544742072477595619363803", 887271),
                (
                    true,
                    int_max(),
                    lim_04,
                    "3171793039286238109",
                    "-26087635650665564423434232548437664977",
                    -9164,
                ),
                (
                    true,
                    int_max(),
                    lim_25,
                    "1268717215714495281",
                    "-26087635650665564421536865952336637378",
                    9163,
                ),
            ],
        );
        let lo = pool(3000, 60, encode_price_sqrt(n(1), U256::from(1u8) << 127), &full);
        assert_eq!(lo.tick, -880303);
        check_cases(
            &lo,
            &[
                (false, "1000", None, "-26033697540846965126433148994127431276", "1000", -705093),
                (true, "1000", None, "1000", "0", -880303),
                (true, "-1000", None, "10790901831095468191587263901270792610", "0", -887272),
                (false, "-1000000000000000000", None, "-1000000000000000000", "2", -880303),
                (
                    false,
                    int_max(),
                    lim_25,
                    "-26037782196502120274160871558471687260",
                    "3171793039286238112",
                    9163,
                ),
            ],
        );
    }

    #[test]
    fn modify_position_tracks_ticks_and_in_range_liquidity() {
        let mut p = pool(3000, 60, encode_price_sqrt(n(1), n(1)), &[]);
        p.modify_position(-120, 120, 1_000).unwrap();
        assert_eq!(p.liquidity, 1_000);
        p.modify_position(60, 180, 500).unwrap(); // out of range (tick 0 < 60)
        p.modify_position(-120, 60, 200).unwrap();
        assert_eq!(p.liquidity, 1_200);
        let ticks: Vec<_> = p.ticks().map(|t| (t.index, t.liquidity_net)).collect();
        assert_eq!(ticks, vec![(-120, 1_200), (60, 300), (120, -1_000), (180, -500)]);
        // a tick whose positions cancel out stays initialized with net 0
        p.modify_position(120, 180, 1_000).unwrap();
        assert!(p.ticks().any(|t| t.index == 120 && t.liquidity_net == 0));
        let r = p.swap(false, i("1000000"), Some(get_sqrt_ratio_at_tick(150).unwrap())).unwrap();
        assert_eq!(r.ticks_crossed, 2); // 60 and the net-zero 120 both end a step
        p.modify_position(120, 180, -1_000).unwrap();
        p.modify_position(-120, 60, -200).unwrap();
        p.modify_position(60, 180, -500).unwrap();
        p.modify_position(-120, 120, -1_000).unwrap();
        assert_eq!(p.tick_count(), 0);
        assert_eq!(p.liquidity, 0);
        // errors, all or nothing
        assert_eq!(p.modify_position(60, 60, 1), Err(V3Error::TicksMisordered { lower: 60, upper: 60 }));
        assert_eq!(p.modify_position(-61, 60, 1), Err(V3Error::TickNotSpaced { tick: -61, spacing: 60 }));
        assert_eq!(
            p.modify_position(min_tick(60) - 60, 60, 1),
            Err(V3Error::TickOutOfRange(min_tick(60) - 60))
        );
        assert_eq!(p.modify_position(-60, 60, -1), Err(V3Error::LiquidityUnderflow));
        assert_eq!(p.tick_count(), 0);
        let max = max_liquidity_per_tick(60);
        assert_eq!(p.modify_position(-60, 60, max as i128 + 1), Err(V3Error::LiquidityPerTickOverflow(max)));
        // v3-core test/Tick.spec.ts #tickSpacingToMaxLiquidityPerTick
        assert_eq!(max, 11_505_743_598_341_114_571_880_798_222_544_994);
        assert_eq!(max_liquidity_per_tick(887_272), u128::MAX / 3);
        assert_eq!(max_liquidity_per_tick(2302), 441_351_967_472_034_323_558_203_122_479_595_605);
    }

    #[test]
    fn new_validates_inputs() {
        let p1 = encode_price_sqrt(n(1), n(1));
        assert_eq!(V3Pool::new(1_000_000, 60, p1, 0, 0, &[]), Err(V3Error::BadFee(1_000_000)));
        assert_eq!(V3Pool::new(3000, 0, p1, 0, 0, &[]), Err(V3Error::BadTickSpacing(0)));
        assert!(matches!(V3Pool::new(3000, 60, U256::ZERO, 0, 0, &[]), Err(V3Error::SqrtPriceOutOfRange(_))));
        assert!(matches!(V3Pool::new(3000, 60, p1, 5, 0, &[]), Err(V3Error::InconsistentTick { .. })));
        // price exactly on tick 0 after a downward swap: tick -1 is consistent
        assert!(V3Pool::new(3000, 60, p1, -1, 0, &[]).is_ok());
        let dup = [TickInfo { index: 60, liquidity_net: 1 }, TickInfo { index: 60, liquidity_net: -1 }];
        assert_eq!(V3Pool::new(3000, 60, p1, 0, 0, &dup), Err(V3Error::DuplicateTick(60)));
        let bad = [TickInfo { index: 61, liquidity_net: 1 }];
        assert_eq!(
            V3Pool::new(3000, 60, p1, 0, 0, &bad),
            Err(V3Error::TickNotSpaced { tick: 61, spacing: 60 })
        );
        let ticks = [TickInfo { index: 120, liquidity_net: -5 }, TickInfo { index: -60, liquidity_net: 5 }];
        let p = V3Pool::new(3000, 60, p1, 0, 5, &ticks).unwrap();
        let back: Vec<_> = p.ticks().collect();
        assert_eq!(back, vec![ticks[1], ticks[0]]);
        assert!((p.mid_price() - 1.0).abs() < 1e-12);
        assert_eq!(p.swap(true, I256::ZERO, None), Err(V3Error::ZeroAmount));
    }

    #[test]
    fn set_tick_syncs_and_removes() {
        let p1 = encode_price_sqrt(n(1), n(1));
        let mut p = V3Pool::new(3000, 60, p1, 0, 0, &[]).unwrap();
        p.set_tick(60, 10);
        p.set_tick(-60, -10);
        p.set_tick(61, 10); // ignored: not spaced
        assert_eq!(p.try_set_tick(61, 10), Err(V3Error::TickNotSpaced { tick: 61, spacing: 60 }));
        assert_eq!(p.tick_count(), 2);
        p.set_tick(60, 0);
        assert_eq!(p.ticks().collect::<Vec<_>>(), vec![TickInfo { index: -60, liquidity_net: -10 }]);
    }

    /// A pool whose initialized ticks are dense around the price (the bench's shape).
    fn ladder_pool(spacing: i32, count: i32, liquidity: u128) -> V3Pool {
        let mut p = pool(3000, spacing, encode_price_sqrt(n(1), n(1)), &[]);
        p.modify_position(min_tick(spacing), max_tick(spacing), liquidity as i128).unwrap();
        for k in 1..=count {
            p.modify_position(-k * spacing, k * spacing, (liquidity / 10) as i128).unwrap();
        }
        p
    }

    #[test]
    fn swap_crosses_several_ticks_both_directions_with_limit() {
        let p = ladder_pool(60, 20, two_e18());
        let l0 = p.liquidity;
        // Down to a limit past 10 initialized ticks (-60 ... -600).
        let limit = get_sqrt_ratio_at_tick(-630).unwrap();
        let r = p.swap(true, i(int_max()), Some(limit)).unwrap();
        assert_eq!(r.sqrt_price_x96, limit);
        assert_eq!(r.ticks_crossed, 10);
        assert_eq!(r.tick, -630);
        assert_eq!(r.liquidity, l0 - 10 * (two_e18() / 10));
        assert!(r.amount0.is_positive() && r.amount1.is_negative());
        // And back up past the start: crosses the same 10 ticks again and 10 more above 0.
        let mut q = p.clone();
        q.apply(&r);
        let up = get_sqrt_ratio_at_tick(630).unwrap();
        let r2 = q.swap(false, i(int_max()), Some(up)).unwrap();
        assert_eq!(r2.ticks_crossed, 20);
        assert_eq!(r2.tick, 630);
        assert_eq!(r2.liquidity, l0 - 10 * (two_e18() / 10));
        // The round trip costs fees: the swapper gets back less token1 than it paid for the first leg.
        assert!(r2.amount0.is_negative() && r2.amount1.is_positive());
        // Exact output across ticks, stopped by the limit before the amount is filled.
        let r3 = p.swap(true, r.amount1 * i("2"), Some(limit)).unwrap();
        assert_eq!(r3.sqrt_price_x96, limit);
        assert_eq!(r3.amount1, r.amount1);
        assert_eq!(r3.amount0, r.amount0);
    }

    #[test]
    fn swap_steps_stop_at_word_boundaries() {
        // Spacing 1: a word is 256 ticks. Liquidity only at the far edges, so a swap over 1000 ticks
        // takes one step per word it touches even though it crosses nothing.
        let p = pool(500, 1, encode_price_sqrt(n(1), n(1)), &[(-5000, 5000, two_e18())]);
        let r = p.swap(false, i(int_max()), Some(get_sqrt_ratio_at_tick(1000).unwrap())).unwrap();
        assert_eq!(r.ticks_crossed, 0);
        // words [0,255], [256,511], [512,767], [768,1023] → 4 steps, the last one stopped by the limit.
        assert_eq!(r.steps, 4);
        let r = p.swap(true, i(int_max()), Some(get_sqrt_ratio_at_tick(-1000).unwrap())).unwrap();
        // A zero-length first step at tick 0 (the start of its word, where the price already is), then
        // words [-256,-1], [-512,-257], [-768,-513] and [-1024,-769] (stopped by the limit).
        assert_eq!(r.steps, 5);
    }

    fn arb_ladder() -> impl Strategy<Value = V3Pool> {
        (1i32..=3, prop::collection::vec((1i32..40, 1i32..40, 1u64..1_000_000), 1..12)).prop_map(
            |(sp, pos)| {
                let spacing = [1, 10, 60][(sp - 1) as usize];
                let mut p = pool(3000, spacing, encode_price_sqrt(n(1), n(1)), &[]);
                p.modify_position(min_tick(spacing), max_tick(spacing), 1_000_000_000_000_000_000).unwrap();
                for (a, b, l) in pos {
                    let (lo, hi) = (-a * spacing * 7, b * spacing * 7);
                    p.modify_position(lo, hi, l as i128 * 1_000_000_000_000).unwrap();
                }
                p
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Exact input, then exact output of the amount received: the exact-output swap pays at most
        /// what the exact-input swap paid, delivers exactly that output, and ends at a price no further
        /// than the first swap's.
        #[test]
        fn exact_in_then_exact_out_consistent(pool in arb_ladder(), z41 in any::<bool>(), amt in 1u64..u64::MAX) {
            let amount_in = I256::try_from(amt).unwrap() * i("1000");
            let r_in = pool.swap(z41, amount_in, None).unwrap();
            let (paid, got) = if z41 { (r_in.amount0, r_in.amount1) } else { (r_in.amount1, r_in.amount0) };
            prop_assume!(!got.is_zero());
            let r_out = pool.swap(z41, got, None).unwrap();
            let (paid2, got2) = if z41 { (r_out.amount0, r_out.amount1) } else { (r_out.amount1, r_out.amount0) };
            prop_assert_eq!(got2, got);
            prop_assert!(paid2 <= paid, "exact out paid {} > exact in {}", paid2, paid);
            if z41 {
                prop_assert!(r_out.sqrt_price_x96 >= r_in.sqrt_price_x96);
            } else {
                prop_assert!(r_out.sqrt_price_x96 <= r_in.sqrt_price_x96);
            }
            // Swapping the exact output's input back in as exact input gets at least that output.
            let r_back = pool.swap(z41, paid2, None).unwrap();
            let got3 = if z41 { r_back.amount1 } else { r_back.amount0 };
            prop_assert!(got3 <= got); // more negative = more received
        }

        /// The sorted table's word-bounded search equals the contract's bitmap.
        #[test]
        fn table_search_matches_bitmap(
            spacing in prop::sample::select(vec![1, 10, 60, 200]),
            raw in prop::collection::btree_set(-3000i32..3000, 0..40),
            probes in prop::collection::vec((-800_000i32..800_000, any::<bool>()), 1..50),
        ) {
            let mut bitmap = TickBitmap::new();
            let mut table = TickTable::default();
            for c in raw {
                let t = c * spacing;
                bitmap.flip_tick(t, spacing).unwrap();
                table.upsert(t, TickData { liquidity_gross: 1, gross_known: true, liquidity_net: 1, sqrt_price_x96: U256::ZERO });
            }
            for (tick, lte) in probes {
                let near = tick % (3000 * spacing + 600);
                for t in [tick, near] {
                    let expected = bitmap.next_initialized_tick_within_one_word(t, spacing, lte);
                    let (next, slot) = table.next_initialized_within_one_word(t, spacing, lte);
                    prop_assert_eq!((next, slot.is_some()), expected, "tick {} lte {}", t, lte);
                }
            }
        }
    }
}
