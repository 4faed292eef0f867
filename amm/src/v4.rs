//! Uniswap V4 pools without swap-changing hooks, to the wei.
//!
//! A V4 pool lives inside the singleton `PoolManager` and is named by its [`PoolKey`]
//! (`currency0`, `currency1`, `fee`, `tickSpacing`, `hooks`); its id is
//! `keccak256(abi.encode(key))` ([`PoolKey::id`]). Native ETH is the currency `address(0)`, so a
//! pool with an ETH leg has `currency0 == Address::ZERO` ([`PoolKey::is_native0`]).
//!
//! # What is shared with V3, and what differs
//!
//! The swap-relevant libraries of `v4-core` 1.0 (`TickMath`, `SqrtPriceMath`, `FullMath`,
//! `LiquidityMath`, `TickBitmap`'s one-word search and the `Pool.swap` loop) compute the same
//! integers as V3's, so a V4 pool's price, tick, liquidity and initialized ticks are a
//! [`V3Pool`] and its swap is [`V3Pool`]'s swap loop charged the V4 swap fee. The one library that
//! was rewritten, `SwapMath.computeSwapStep`, yields the same step totals: on a partial exact-input
//! step V4 books `amountIn = amountRemainingLessFee` and the rest as fee where V3 recomputes
//! `amountIn` from the price (the sum, the whole remainder, is the same; the output is computed from
//! the same next price), and on a partial exact-output step V4 books the requested amount where V3
//! recomputes and caps it (the recomputed amount is never below the request, so the cap makes them
//! equal). The chain test `v4_quotes_equal_the_pool_manager_to_the_wei` (keel-sim) checks this
//! against the real `PoolManager`.
//!
//! The differences are handled here explicitly:
//! * **Fee units and the dynamic flag.** `key.fee` is in pips (up to `1_000_000` = 100%), or
//!   [`DYNAMIC_FEE_FLAG`] (`0x800000`): the LP fee then lives in `slot0.lpFee`, set by the hook.
//!   [`V4Pool`] carries the pool's current LP fee (`slot0.lpFee`; for a static pool it must equal
//!   `key.fee`). A swap fee of 100% is refused ([`V4Error::TotalFee`]: an exact input would pay
//!   out nothing, an exact output reverts `InvalidFeeForExactOut`).
//! * **Protocol fee.** `slot0.protocolFee` holds one 12-bit fee per direction (`zeroForOne` in the
//!   low 12 bits); when it is not 0 the swap fee is `protocolFee + lpFee − protocolFee·lpFee/1e6`
//!   (`ProtocolFeeLibrary.calculateSwapFee`), otherwise the LP fee ([`V4Pool::swap_fee`]).
//! * **Tick spacing** is part of the key, independent of the fee, in `1..=32767`
//!   ([`MAX_TICK_SPACING`]).
//! * **Amounts** are `int128` in the pool's `BalanceDelta`: a swap whose amounts do not fit reverts
//!   (`SafeCastOverflow`), here [`V4Error::AmountTooLarge`].
//! * **Hooks.** A hook's permissions are the low 14 bits of its address. A hook with
//!   `beforeSwapReturnDelta` or `afterSwapReturnDelta` can take or give any amount on every swap,
//!   and a dynamic-fee pool whose hook has `beforeSwap` can override the fee of every swap: such
//!   pools are refused with [`V4Error::HookChangesSwap`], which names the permission. Other hooks
//!   are accepted: they cannot change a swap's amounts, only act around it (a `beforeSwap` hook may
//!   still trade or move liquidity itself before the swap; the quote is exact for the state the swap
//!   meets).

use alloy_primitives::aliases::{I24, U24};
use alloy_primitives::{Address, B256, I256, U256, keccak256};

use crate::abi::IV4Router;

use crate::v3::{SwapResult, TickInfo, V3Error, V3Pool};

/// `LPFeeLibrary.DYNAMIC_FEE_FLAG`: `key.fee` of a pool whose LP fee the hook sets.
pub const DYNAMIC_FEE_FLAG: u32 = 0x80_0000;
/// `LPFeeLibrary.MAX_LP_FEE`: 100% in pips.
pub const MAX_LP_FEE: u32 = 1_000_000;
/// `ProtocolFeeLibrary.MAX_PROTOCOL_FEE`: 0.1% in pips, per direction.
pub const MAX_PROTOCOL_FEE: u32 = 1_000;
/// `TickMath.MAX_TICK_SPACING` (`type(int16).max`).
pub const MAX_TICK_SPACING: i32 = 32_767;

/// Why a V4 pool cannot be built or quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum V4Error {
    /// The shared V3 math refused (bad state, price limit, liquidity).
    #[error("{0}")]
    Math(#[from] V3Error),
    /// The pool's hook may change what a swap pays or receives, so no quote can be exact.
    #[error(
        "pool hook {hooks} has the `{permission}` permission: it can change swap amounts, so the pool is refused"
    )]
    HookChangesSwap {
        /// The hook contract.
        hooks: Address,
        /// The permission that makes quotes inexact (`beforeSwapReturnDelta`,
        /// `afterSwapReturnDelta`, or `beforeSwap` with a dynamic fee, which overrides the fee).
        permission: &'static str,
    },
    /// A hook address whose permission bits the `PoolManager` rejects (`Hooks.isValidHookAddress`),
    /// e.g. a return-delta flag without its action flag, or a dynamic fee without a hook.
    #[error("hook address {0} is not valid for this pool's fee")]
    InvalidHookAddress(Address),
    /// `key.fee` is neither at most 1_000_000 pips nor the dynamic flag.
    #[error("fee {0} is not a v4 lp fee (at most 1000000 pips, or the dynamic flag 0x800000)")]
    BadFee(u32),
    /// The LP fee in force differs from a static pool's `key.fee`, or is above 100%.
    #[error("lp fee {lp_fee} does not fit key fee {key_fee}")]
    LpFeeMismatch {
        /// `slot0.lpFee` given.
        lp_fee: u32,
        /// `key.fee`.
        key_fee: u32,
    },
    /// A direction's protocol fee above `MAX_PROTOCOL_FEE` (1000 pips).
    #[error("protocol fee {0:#x} has a direction above 1000 pips")]
    BadProtocolFee(u32),
    /// The swap fee is 100%: nothing can be bought.
    #[error("swap fee is 100%")]
    TotalFee,
    /// Tick spacing outside `1..=32767`.
    #[error("tick spacing {0} not in 1..=32767")]
    BadTickSpacing(i32),
    /// `currency0` must be below `currency1` (`CurrenciesOutOfOrderOrEqual`).
    #[error("currencies out of order or equal")]
    CurrencyOrder,
    /// A swap amount does not fit the pool's `int128` balance delta.
    #[error("amount {0} does not fit int128")]
    AmountTooLarge(U256),
}

/// Result alias for V4 math.
pub type Result<T> = core::result::Result<T, V4Error>;

/// Hook permissions: the low 14 bits of the hook address (`Hooks.sol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookFlags(pub u16);

impl HookFlags {
    /// `BEFORE_SWAP_FLAG`.
    pub const BEFORE_SWAP: u16 = 1 << 7;
    /// `AFTER_SWAP_FLAG`.
    pub const AFTER_SWAP: u16 = 1 << 6;
    /// `BEFORE_SWAP_RETURNS_DELTA_FLAG`.
    pub const BEFORE_SWAP_RETURNS_DELTA: u16 = 1 << 3;
    /// `AFTER_SWAP_RETURNS_DELTA_FLAG`.
    pub const AFTER_SWAP_RETURNS_DELTA: u16 = 1 << 2;
    /// `AFTER_ADD_LIQUIDITY_FLAG`.
    pub const AFTER_ADD_LIQUIDITY: u16 = 1 << 10;
    /// `AFTER_REMOVE_LIQUIDITY_FLAG`.
    pub const AFTER_REMOVE_LIQUIDITY: u16 = 1 << 8;
    /// `AFTER_ADD_LIQUIDITY_RETURNS_DELTA_FLAG`.
    pub const AFTER_ADD_LIQUIDITY_RETURNS_DELTA: u16 = 1 << 1;
    /// `AFTER_REMOVE_LIQUIDITY_RETURNS_DELTA_FLAG`.
    pub const AFTER_REMOVE_LIQUIDITY_RETURNS_DELTA: u16 = 1;
    /// `ALL_HOOK_MASK`: the 14 permission bits.
    pub const ALL: u16 = (1 << 14) - 1;

    /// The permissions encoded in a hook address.
    pub fn of(hooks: Address) -> Self {
        let b = hooks.as_slice();
        Self(u16::from_be_bytes([b[18], b[19]]) & Self::ALL)
    }

    /// Whether `flag` is set.
    pub fn has(self, flag: u16) -> bool {
        self.0 & flag != 0
    }
}

/// A V4 pool's key; the `PoolManager` names the pool by [`id`](Self::id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// Lower currency (`address(0)` is native ETH).
    pub currency0: Address,
    /// Higher currency.
    pub currency1: Address,
    /// LP fee in pips, or [`DYNAMIC_FEE_FLAG`].
    pub fee: u32,
    /// Tick spacing.
    pub tick_spacing: i32,
    /// Hook contract (`address(0)` for none).
    pub hooks: Address,
}

/// The key as the V4 router's ABI carries it (`int24` spacing saturates at the type's bounds,
/// which no valid key reaches).
impl From<&PoolKey> for IV4Router::PoolKey {
    fn from(k: &PoolKey) -> Self {
        Self {
            currency0: k.currency0,
            currency1: k.currency1,
            fee: U24::from(k.fee),
            tickSpacing: abi_spacing(k.tick_spacing),
            hooks: k.hooks,
        }
    }
}

/// A key read from the V4 router's ABI.
impl From<&IV4Router::PoolKey> for PoolKey {
    fn from(k: &IV4Router::PoolKey) -> Self {
        Self {
            currency0: k.currency0,
            currency1: k.currency1,
            fee: k.fee.to::<u32>(),
            tick_spacing: k.tickSpacing.as_i32(),
            hooks: k.hooks,
        }
    }
}

fn abi_spacing(tick_spacing: i32) -> I24 {
    I24::try_from(tick_spacing).unwrap_or(if tick_spacing < 0 { I24::MIN } else { I24::MAX })
}

impl PoolKey {
    /// The `PathKey` of a hop through this pool that pays out `currency_out`.
    pub fn path_key(&self, currency_out: Address) -> IV4Router::PathKey {
        IV4Router::PathKey {
            intermediateCurrency: currency_out,
            fee: U24::from(self.fee),
            tickSpacing: abi_spacing(self.tick_spacing),
            hooks: self.hooks,
            hookData: Default::default(),
        }
    }

    /// The key of the pool a path hop from `currency_in` through `hop` trades in.
    pub fn of_path_hop(currency_in: Address, hop: &IV4Router::PathKey) -> Self {
        let out = hop.intermediateCurrency;
        Self {
            currency0: currency_in.min(out),
            currency1: currency_in.max(out),
            fee: hop.fee.to::<u32>(),
            tick_spacing: hop.tickSpacing.as_i32(),
            hooks: hop.hooks,
        }
    }

    /// The key of the hookless pool of `a` and `b` (either order) at `fee` pips and `tick_spacing`.
    pub fn hookless(a: Address, b: Address, fee: u32, tick_spacing: i32) -> Self {
        Self { currency0: a.min(b), currency1: a.max(b), fee, tick_spacing, hooks: Address::ZERO }
    }

    /// `PoolIdLibrary.toId`: `keccak256(abi.encode(key))` (five 32-byte words; `tickSpacing` is
    /// sign-extended).
    pub fn id(&self) -> B256 {
        let mut buf = [0u8; 160];
        buf[12..32].copy_from_slice(self.currency0.as_slice());
        buf[44..64].copy_from_slice(self.currency1.as_slice());
        buf[92..96].copy_from_slice(&self.fee.to_be_bytes());
        if self.tick_spacing < 0 {
            buf[96..124].fill(0xff);
        }
        buf[124..128].copy_from_slice(&self.tick_spacing.to_be_bytes());
        buf[140..160].copy_from_slice(self.hooks.as_slice());
        keccak256(buf)
    }

    /// Whether the fee is set by the hook (`key.fee == 0x800000`).
    pub fn is_dynamic_fee(&self) -> bool {
        self.fee == DYNAMIC_FEE_FLAG
    }

    /// Whether currency0 is native ETH.
    pub fn is_native0(&self) -> bool {
        self.currency0 == Address::ZERO
    }

    /// The hook's permissions.
    pub fn hook_flags(&self) -> HookFlags {
        HookFlags::of(self.hooks)
    }

    /// Checks what `PoolManager.initialize` checks (currency order, tick spacing, fee, hook
    /// address) and refuses hooks that can change swap amounts.
    pub fn validate(&self) -> Result<()> {
        if self.currency0 >= self.currency1 {
            return Err(V4Error::CurrencyOrder);
        }
        if !(1..=MAX_TICK_SPACING).contains(&self.tick_spacing) {
            return Err(V4Error::BadTickSpacing(self.tick_spacing));
        }
        if !self.is_dynamic_fee() && self.fee > MAX_LP_FEE {
            return Err(V4Error::BadFee(self.fee));
        }
        let f = self.hook_flags();
        let invalid = (!f.has(HookFlags::BEFORE_SWAP) && f.has(HookFlags::BEFORE_SWAP_RETURNS_DELTA))
            || (!f.has(HookFlags::AFTER_SWAP) && f.has(HookFlags::AFTER_SWAP_RETURNS_DELTA))
            || (!f.has(HookFlags::AFTER_ADD_LIQUIDITY)
                && f.has(HookFlags::AFTER_ADD_LIQUIDITY_RETURNS_DELTA))
            || (!f.has(HookFlags::AFTER_REMOVE_LIQUIDITY)
                && f.has(HookFlags::AFTER_REMOVE_LIQUIDITY_RETURNS_DELTA))
            || if self.hooks == Address::ZERO {
                self.is_dynamic_fee()
            } else {
                f.0 == 0 && !self.is_dynamic_fee()
            };
        if invalid {
            return Err(V4Error::InvalidHookAddress(self.hooks));
        }
        let refuse = |permission| Err(V4Error::HookChangesSwap { hooks: self.hooks, permission });
        if f.has(HookFlags::BEFORE_SWAP_RETURNS_DELTA) {
            return refuse("beforeSwapReturnDelta");
        }
        if f.has(HookFlags::AFTER_SWAP_RETURNS_DELTA) {
            return refuse("afterSwapReturnDelta");
        }
        if self.is_dynamic_fee() && f.has(HookFlags::BEFORE_SWAP) {
            return refuse("beforeSwap (fee override on a dynamic-fee pool)");
        }
        Ok(())
    }
}

/// `ProtocolFeeLibrary.calculateSwapFee`: the fee a swap pays when a protocol fee is on.
pub fn calculate_swap_fee(protocol_fee: u32, lp_fee: u32) -> u32 {
    let p = protocol_fee & 0xfff;
    let lp = lp_fee & 0xff_ffff;
    // p ≤ 4095 and lp < 2^24: the product fits u64 and the result is at most p + lp
    (u64::from(p) + u64::from(lp) - u64::from(p) * u64::from(lp) / u64::from(MAX_LP_FEE)) as u32
}

/// Swap state of one V4 pool: its key, the fees in force and the shared tick/liquidity state.
#[derive(Debug, PartialEq)]
pub struct V4Pool {
    key: PoolKey,
    lp_fee: u32,
    protocol_fee: u32,
    state: V3Pool,
}

/// `clone_from` reuses the tick table's arrays (see [`V3Pool`]'s).
impl Clone for V4Pool {
    fn clone(&self) -> Self {
        Self {
            key: self.key,
            lp_fee: self.lp_fee,
            protocol_fee: self.protocol_fee,
            state: self.state.clone(),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        let Self { key, lp_fee, protocol_fee, state } = self;
        (*key, *lp_fee, *protocol_fee) = (source.key, source.lp_fee, source.protocol_fee);
        state.clone_from(&source.state);
    }
}

impl V4Pool {
    /// A pool from its key, `slot0` (price, tick, `protocolFee`, `lpFee`), in-range liquidity and
    /// initialized ticks. Validates the key ([`PoolKey::validate`], which refuses swap-changing
    /// hooks), the fees and the state like [`V3Pool::new`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: PoolKey,
        sqrt_price_x96: U256,
        tick: i32,
        liquidity: u128,
        lp_fee: u32,
        protocol_fee: u32,
        ticks: &[TickInfo],
    ) -> Result<Self> {
        key.validate()?;
        if lp_fee > MAX_LP_FEE || (!key.is_dynamic_fee() && lp_fee != key.fee) {
            return Err(V4Error::LpFeeMismatch { lp_fee, key_fee: key.fee });
        }
        check_protocol_fee(protocol_fee)?;
        // The shared state's own fee is only used for validation; 100% is refused at quote time.
        let state_fee = lp_fee.min(MAX_LP_FEE - 1);
        let state = V3Pool::with_max_spacing(
            state_fee,
            key.tick_spacing,
            MAX_TICK_SPACING,
            sqrt_price_x96,
            tick,
            liquidity,
            ticks,
        )?;
        Ok(Self { key, lp_fee, protocol_fee, state })
    }

    /// The pool's key.
    pub fn key(&self) -> &PoolKey {
        &self.key
    }

    /// The LP fee in force (`slot0.lpFee`), pips.
    pub fn lp_fee(&self) -> u32 {
        self.lp_fee
    }

    /// `slot0.protocolFee` (12 bits per direction).
    pub fn protocol_fee(&self) -> u32 {
        self.protocol_fee
    }

    /// Price, tick, liquidity and initialized ticks (shared with V3).
    pub fn state(&self) -> &V3Pool {
        &self.state
    }

    /// Mutable shared state (swaps and position changes from chain logs).
    pub fn state_mut(&mut self) -> &mut V3Pool {
        &mut self.state
    }

    /// The fee a swap in this direction pays, pips (`Pool.swap`: the LP fee, or
    /// [`calculate_swap_fee`] when the direction's protocol fee is not 0).
    pub fn swap_fee(&self, zero_for_one: bool) -> u32 {
        let protocol = if zero_for_one { self.protocol_fee & 0xfff } else { self.protocol_fee >> 12 };
        if protocol == 0 { self.lp_fee } else { calculate_swap_fee(protocol, self.lp_fee) }
    }

    /// `PoolManager.swap` for a hookless (or amount-neutral hook) pool, in V3's sign convention:
    /// `amount_specified > 0` is an exact input, `< 0` an exact output. Same limits and reverts as
    /// the contract (zero amount, price limit, `int128` amounts, 100% fee).
    pub fn swap(
        &self,
        zero_for_one: bool,
        amount_specified: I256,
        sqrt_price_limit_x96: Option<U256>,
    ) -> Result<SwapResult> {
        let fee = self.swap_fee(zero_for_one);
        if fee >= MAX_LP_FEE {
            return Err(V4Error::TotalFee);
        }
        let fits = |x: I256| i128::try_from(x).is_ok();
        if !fits(amount_specified) {
            return Err(V4Error::AmountTooLarge(amount_specified.unsigned_abs()));
        }
        let r = self.state.swap_with_fee(fee, zero_for_one, amount_specified, sqrt_price_limit_x96)?;
        for a in [r.amount0, r.amount1] {
            if !fits(a) {
                return Err(V4Error::AmountTooLarge(a.unsigned_abs()));
            }
        }
        Ok(r)
    }

    /// Mid price, token1 per token0 in raw units (analytics only).
    pub fn mid_price(&self) -> f64 {
        self.state.mid_price()
    }

    /// Sets `slot0.protocolFee` (the `PoolManager`'s `ProtocolFeeUpdated` event), checked like
    /// [`V4Pool::new`].
    pub fn set_protocol_fee(&mut self, protocol_fee: u32) -> Result<()> {
        check_protocol_fee(protocol_fee)?;
        self.protocol_fee = protocol_fee;
        Ok(())
    }
}

fn check_protocol_fee(protocol_fee: u32) -> Result<()> {
    if protocol_fee >> 24 != 0
        || protocol_fee & 0xfff > MAX_PROTOCOL_FEE
        || protocol_fee >> 12 > MAX_PROTOCOL_FEE
    {
        return Err(V4Error::BadProtocolFee(protocol_fee));
    }
    Ok(())
}

/// Where the `PoolManager` keeps a pool (`StateLibrary`, v4-core 1.0): the storage slots that
/// `extsload` reads.
///
/// `pools` is the mapping at slot 6 of the `PoolManager`, so a pool's `Pool.State` starts at
/// `keccak256(poolId ‖ 6)`: `slot0` there (`sqrtPriceX96` in the low 160 bits, then `tick`,
/// `protocolFee` and `lpFee`, 24 bits each), the fee growths at +1 and +2, `liquidity` at +3, the
/// `ticks` mapping at +4 (a tick's first slot: `liquidityGross` low 128 bits, `liquidityNet` high)
/// and the `tickBitmap` mapping at +5.
pub mod storage {
    use alloy_primitives::{B256, U256, keccak256};

    /// The `PoolManager`'s storage slot of the `pools` mapping.
    pub const POOLS_SLOT: u8 = 6;
    /// Offset of `liquidity` in `Pool.State`.
    pub const LIQUIDITY_OFFSET: u8 = 3;
    /// Offset of the `ticks` mapping in `Pool.State`.
    pub const TICKS_OFFSET: u8 = 4;
    /// Offset of the `tickBitmap` mapping in `Pool.State`.
    pub const BITMAP_OFFSET: u8 = 5;

    fn mapping(key: [u8; 32], slot: U256) -> B256 {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&key);
        buf[32..].copy_from_slice(&slot.to_be_bytes::<32>());
        keccak256(buf)
    }

    fn signed_word(v: i32) -> [u8; 32] {
        let mut w = if v < 0 { [0xff; 32] } else { [0; 32] };
        w[28..].copy_from_slice(&v.to_be_bytes());
        w
    }

    /// First slot of a pool's `Pool.State` (its `slot0`).
    pub fn state_slot(pool_id: B256) -> U256 {
        U256::from_be_bytes(mapping(pool_id.0, U256::from(POOLS_SLOT)).0)
    }

    /// The pool's `liquidity` slot.
    pub fn liquidity_slot(state: U256) -> B256 {
        B256::from(state.wrapping_add(U256::from(LIQUIDITY_OFFSET)))
    }

    /// The first slot of `ticks[tick]`.
    pub fn tick_slot(state: U256, tick: i32) -> B256 {
        mapping(signed_word(tick), state.wrapping_add(U256::from(TICKS_OFFSET)))
    }

    /// The slot of `tickBitmap[word]`.
    pub fn bitmap_slot(state: U256, word: i16) -> B256 {
        mapping(signed_word(i32::from(word)), state.wrapping_add(U256::from(BITMAP_OFFSET)))
    }

    /// `slot0` unpacked: `(sqrtPriceX96, tick, protocolFee, lpFee)`.
    pub fn unpack_slot0(word: B256) -> (U256, i32, u32, u32) {
        let v = U256::from_be_bytes(word.0);
        let sqrt = v & ((U256::from(1u8) << 160usize) - U256::from(1u8));
        let field = |shift: usize| ((v >> shift) & U256::from(0xff_ffffu32)).to::<u32>();
        // int24 sign-extended from its 24 bits
        let tick = ((field(160) << 8) as i32) >> 8;
        (sqrt, tick, field(184), field(208))
    }

    /// A tick's first slot unpacked: `(liquidityGross, liquidityNet)`.
    pub fn unpack_tick(word: B256) -> (u128, i128) {
        let b = word.0;
        let mut hi = [0u8; 16];
        let mut lo = [0u8; 16];
        hi.copy_from_slice(&b[..16]);
        lo.copy_from_slice(&b[16..]);
        (u128::from_be_bytes(lo), i128::from_be_bytes(hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::tick_math::get_sqrt_ratio_at_tick;

    /// The router ABI's key and path key carry the key's fields both ways (the largest spacing and
    /// a hook included); a path hop's key is the sorted pair of its two currencies.
    #[test]
    fn keys_round_trip_through_the_router_abi_and_path_keys() {
        let k = PoolKey {
            currency0: Address::repeat_byte(1),
            currency1: Address::repeat_byte(9),
            fee: 12_345,
            tick_spacing: 32_767,
            hooks: Address::repeat_byte(7),
        };
        assert_eq!(PoolKey::from(&IV4Router::PoolKey::from(&k)), k);
        let hop = k.path_key(k.currency0);
        assert_eq!(PoolKey::of_path_hop(k.currency1, &hop), k);
        assert_eq!(PoolKey::of_path_hop(k.currency0, &k.path_key(k.currency1)), k);
    }

    fn key(hooks: Address, fee: u32) -> PoolKey {
        PoolKey {
            currency0: Address::ZERO,
            currency1: Address::repeat_byte(0x11),
            fee,
            tick_spacing: 60,
            hooks,
        }
    }

    fn hook_with(flags: u16) -> Address {
        let mut b = [0x42u8; 20];
        let f = flags.to_be_bytes();
        b[18] = f[0];
        b[19] = f[1];
        Address::from(b)
    }

    fn pool(k: PoolKey, lp_fee: u32, protocol_fee: u32) -> Result<V4Pool> {
        let l: u128 = 10u128.pow(22);
        let ticks = [
            TickInfo { index: -600, liquidity_net: l as i128 },
            TickInfo { index: 600, liquidity_net: -(l as i128) },
        ];
        V4Pool::new(k, get_sqrt_ratio_at_tick(0)?, 0, l, lp_fee, protocol_fee, &ticks)
    }

    /// The id of v4-core's own test key (`PoolId.t.sol` style): abi.encode of five words hashed.
    #[test]
    fn pool_id_is_keccak_of_the_abi_encoded_key() {
        let k = PoolKey {
            currency0: Address::repeat_byte(1),
            currency1: Address::repeat_byte(2),
            fee: 3000,
            tick_spacing: 60,
            hooks: Address::ZERO,
        };
        let enc = alloy_sol_types::SolValue::abi_encode(&(
            k.currency0,
            k.currency1,
            alloy_primitives::aliases::U24::from(k.fee),
            alloy_primitives::aliases::I24::try_from(k.tick_spacing).unwrap(),
            k.hooks,
        ));
        assert_eq!(k.id(), keccak256(enc));
        // negative spacing words are sign-extended like abi.encode(int24)
        let mut neg = k;
        neg.tick_spacing = -5;
        let enc = alloy_sol_types::SolValue::abi_encode(&(
            neg.currency0,
            neg.currency1,
            alloy_primitives::aliases::U24::from(neg.fee),
            alloy_primitives::aliases::I24::try_from(-5).unwrap(),
            neg.hooks,
        ));
        assert_eq!(neg.id(), keccak256(enc));
    }

    #[test]
    fn hooks_that_return_swap_deltas_are_refused_with_their_permission() {
        let before = hook_with(HookFlags::BEFORE_SWAP | HookFlags::BEFORE_SWAP_RETURNS_DELTA);
        assert_eq!(
            pool(key(before, 3000), 3000, 0),
            Err(V4Error::HookChangesSwap { hooks: before, permission: "beforeSwapReturnDelta" })
        );
        let after = hook_with(HookFlags::AFTER_SWAP | HookFlags::AFTER_SWAP_RETURNS_DELTA);
        let err = pool(key(after, 3000), 3000, 0).unwrap_err();
        assert_eq!(err, V4Error::HookChangesSwap { hooks: after, permission: "afterSwapReturnDelta" });
        assert!(err.to_string().contains("afterSwapReturnDelta"), "{err}");
        // a dynamic fee with a beforeSwap hook can override every swap's fee
        let dyn_before = hook_with(HookFlags::BEFORE_SWAP);
        assert!(matches!(
            pool(key(dyn_before, DYNAMIC_FEE_FLAG), 500, 0),
            Err(V4Error::HookChangesSwap {
                permission: "beforeSwap (fee override on a dynamic-fee pool)",
                ..
            })
        ));
        // a return-delta flag without its action flag is what the PoolManager rejects
        let bad = hook_with(HookFlags::AFTER_SWAP_RETURNS_DELTA);
        assert_eq!(pool(key(bad, 3000), 3000, 0), Err(V4Error::InvalidHookAddress(bad)));
        // hookless pools cannot be dynamic
        assert_eq!(
            pool(key(Address::ZERO, DYNAMIC_FEE_FLAG), 500, 0),
            Err(V4Error::InvalidHookAddress(Address::ZERO))
        );
    }

    #[test]
    fn amount_neutral_hooks_and_dynamic_fees_without_override_are_quoted() {
        let h = hook_with(HookFlags::BEFORE_SWAP | HookFlags::AFTER_SWAP);
        assert!(pool(key(h, 3000), 3000, 0).is_ok());
        let dynamic = hook_with(HookFlags::AFTER_SWAP);
        let p = pool(key(dynamic, DYNAMIC_FEE_FLAG), 1234, 0).unwrap();
        assert_eq!(p.swap_fee(true), 1234);
    }

    #[test]
    fn hookless_swaps_equal_the_v3_loop_at_the_swap_fee() {
        let p = pool(key(Address::ZERO, 3000), 3000, 0).unwrap();
        let v3 = V3Pool::new(
            3000,
            60,
            get_sqrt_ratio_at_tick(0).unwrap(),
            0,
            10u128.pow(22),
            &[
                TickInfo { index: -600, liquidity_net: 10i128.pow(22) },
                TickInfo { index: 600, liquidity_net: -(10i128.pow(22)) },
            ],
        )
        .unwrap();
        for amt in [I256::try_from(10u64.pow(18)).unwrap(), I256::try_from(-(10i64.pow(17))).unwrap()] {
            for zfo in [true, false] {
                assert_eq!(p.swap(zfo, amt, None).unwrap(), v3.swap(zfo, amt, None).unwrap());
            }
        }
    }

    #[test]
    fn protocol_fee_is_added_per_direction_like_the_contract() {
        // 0.1% protocol fee on zeroForOne only
        assert_eq!(calculate_swap_fee(1000, 3000), 1000 + 3000 - 3);
        assert_eq!(calculate_swap_fee(0, 3000), 3000);
        let p = pool(key(Address::ZERO, 3000), 3000, 1000).unwrap();
        assert_eq!(p.swap_fee(true), 3997);
        assert_eq!(p.swap_fee(false), 3000);
        assert_eq!(pool(key(Address::ZERO, 3000), 3000, 1001), Err(V4Error::BadProtocolFee(1001)));
    }

    #[test]
    fn key_and_fee_checks_are_typed() {
        assert_eq!(
            pool(key(Address::ZERO, 3000), 500, 0),
            Err(V4Error::LpFeeMismatch { lp_fee: 500, key_fee: 3000 })
        );
        assert_eq!(pool(key(Address::ZERO, 1_000_001), 1_000_001, 0), Err(V4Error::BadFee(1_000_001)));
        let mut k = key(Address::ZERO, 3000);
        k.tick_spacing = 0;
        assert_eq!(k.validate(), Err(V4Error::BadTickSpacing(0)));
        k.tick_spacing = 32_767;
        assert!(k.validate().is_ok());
        let mut swapped = key(Address::ZERO, 3000);
        core::mem::swap(&mut swapped.currency0, &mut swapped.currency1);
        assert_eq!(swapped.validate(), Err(V4Error::CurrencyOrder));
        let total = pool(key(Address::ZERO, MAX_LP_FEE), MAX_LP_FEE, 0).unwrap();
        assert_eq!(total.swap(true, I256::ONE, None), Err(V4Error::TotalFee));
        let p = pool(key(Address::ZERO, 3000), 3000, 0).unwrap();
        let big = I256::try_from(U256::from(u128::MAX)).unwrap();
        assert!(matches!(p.swap(true, big, None), Err(V4Error::AmountTooLarge(_))));
    }
}
