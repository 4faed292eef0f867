//! One tradeable pool of any venue behind a single exact interface.
//!
//! [`Pool`] is the swap state (V2 reserves, a [`V3Pool`], or a Balancer weighted / Curve
//! StableSwap pool traded as one pair of its tokens: [`BalancerPair`], [`CurvePair`]); [`PoolEntry`] adds the metadata the
//! router needs ([`PoolMeta`]: id, address, tokens, gas) and a float model of the V3 tick ladder that
//! the split optimiser walks (see [`crate::split`]). Quotes never mutate a pool: they return a
//! [`Quote`] whose [`PoolChange`] is applied with [`PoolEntry::apply`] / [`Pool::apply`] when a later
//! leg must see the earlier one's effect.
//!
//! This is Keel's ONE pool model: the node feed decodes pool logs into the same [`PoolChange`]s
//! (a V2 `Sync`, a V3 `Swap`, `Mint` or `Burn`, or a whole [`PoolChange::Snapshot`]) and publishes
//! them as [`PoolUpdate`]s, which the router applies to its [`PoolEntry`]s directly.
//!
//! Directions follow the contracts: `zero_for_one` sells token0 for token1.
//!
//! Exactness: V2 quotes are `UniswapV2Library.getAmountOut` / `getAmountIn` plus the pair's own
//! checks (zero output and `uint112` reserve overflow revert on chain, so they are errors here); V3
//! quotes are [`V3Pool::swap`], the contract's swap loop; Balancer and Curve quotes are their exact
//! integer math (see [`crate::venue`]). Floats appear only in [`Pool::mid_price`] and the split
//! optimiser's search.

use alloy_primitives::{Address, I256, U256};

use crate::balancer::BalancerError;
use crate::curve::CurveError;
use crate::v2::{self, V2Error};
use crate::v3::{self, SwapResult, TickInfo, V3Error, V3Pool};
use crate::v4::{V4Error, V4Pool};
use crate::venue::FloatCurve;

pub use crate::venue::{BalancerPair, CurvePair, DEFAULT_BALANCER_SWAP_GAS, DEFAULT_CURVE_SWAP_GAS};

/// Gas of one swap through a Uniswap V2 pair via Router02, when the config names none.
pub const DEFAULT_V2_SWAP_GAS: u64 = 120_000;
/// Gas of one swap through a Uniswap V3 pool via SwapRouter that crosses no initialized tick, when
/// the config names none.
pub const DEFAULT_V3_SWAP_GAS: u64 = 160_000;

/// Gas of one swap through a Uniswap V4 pool, when the config names none: measured by the chain
/// test `v4_quotes_equal_the_pool_manager_to_the_wei` (keel-sim) through v4-core's `PoolSwapTest`
/// router (unlock, swap, settle and take): median 128.4–128.5k over three seeds (101k to 641k when
/// many ticks are crossed), rounded up. Through the real Universal Router (Permit2 payment,
/// `execute(V4_SWAP)`): median 129.6–129.7k, max 152.3k (keel-sim test
/// `keel_v4_swaps_through_the_universal_router_pay_exactly_the_quote`, three seeds).
pub const DEFAULT_V4_SWAP_GAS: u64 = 130_000;

/// Largest V2 reserve: the pair stores reserves as `uint112`.
pub const MAX_V2_RESERVE: U256 = U256::from_limbs([u64::MAX, (1u64 << 48) - 1, 0, 0]);

/// Why a pool cannot quote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// V2 math refused the amounts.
    #[error("uniswap v2: {0}")]
    V2(#[from] V2Error),
    /// V3 math refused the amounts (or the pool state is inconsistent).
    #[error("uniswap v3: {0}")]
    V3(#[from] V3Error),
    /// V4 math or key checks refused (including a hook that can change swap amounts).
    #[error("uniswap v4: {0}")]
    V4(#[from] V4Error),
    /// Balancer math refused the swap (the `BAL#` code the Vault would revert with).
    #[error("balancer: {0}")]
    Balancer(#[from] BalancerError),
    /// Curve math refused the swap (where the pool contract would revert).
    #[error("curve: {0}")]
    Curve(#[from] CurveError),
    /// The swap would pay out nothing (a V2 pair reverts `INSUFFICIENT_OUTPUT_AMOUNT`).
    #[error("swap pays out nothing")]
    ZeroOutput,
    /// A V2 reserve would exceed `uint112` (the pair reverts `OVERFLOW`).
    #[error("reserve would overflow uint112")]
    ReserveOverflow,
    /// Exact output asked for more than the pool can deliver before its price bound.
    #[error("pool cannot deliver {asked} (delivers {delivered} before its price bound)")]
    ShortOutput {
        /// Output asked.
        asked: U256,
        /// Output the swap delivers.
        delivered: U256,
    },
    /// An amount does not fit the contract's signed 256-bit `amountSpecified`.
    #[error("amount {0} does not fit int256")]
    AmountTooLarge(U256),
    /// A price limit was given for a V2 pool, which has none.
    #[error("a sqrt price limit applies to uniswap v3 pools only")]
    LimitOnV2,
    /// Metadata is inconsistent (token order, fee).
    #[error("{0}")]
    BadMeta(&'static str),
    /// A change of one protocol was applied to a pool of the other.
    #[error("the change does not fit the pool's protocol")]
    ChangeKind,
}

/// Result alias for pool quotes.
pub type Result<T> = core::result::Result<T, PoolError>;

/// Swap state of one pool.
#[derive(Debug, PartialEq)]
pub enum Pool {
    /// Uniswap V2 pair.
    V2 {
        /// Reserve of token0.
        reserve0: U256,
        /// Reserve of token1.
        reserve1: U256,
        /// Fee in basis points (30 = 0.3%).
        fee_bps: u32,
    },
    /// Uniswap V3 pool.
    V3(V3Pool),
    /// Uniswap V4 pool without swap-changing hooks (boxed: key and fees on top of the V3 state).
    V4(Box<V4Pool>),
    /// Balancer V2 weighted pool, traded as one pair of its tokens (boxed: up to 8 tokens).
    Balancer(Box<BalancerPair>),
    /// Curve StableSwap plain pool, traded as one pair of its coins.
    Curve(Box<CurvePair>),
}

/// `clone_from` into a pool of the same kind reuses its buffers (V3/V4 tick tables, Balancer and
/// Curve token lists): the router's planning copy is brought back in step without allocating.
impl Clone for Pool {
    fn clone(&self) -> Self {
        match self {
            Self::V2 { reserve0, reserve1, fee_bps } => {
                Self::V2 { reserve0: *reserve0, reserve1: *reserve1, fee_bps: *fee_bps }
            }
            Self::V3(p) => Self::V3(p.clone()),
            Self::V4(p) => Self::V4(p.clone()),
            Self::Balancer(p) => Self::Balancer(p.clone()),
            Self::Curve(p) => Self::Curve(p.clone()),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        match (self, source) {
            (Self::V3(a), Self::V3(b)) => a.clone_from(b),
            (Self::V4(a), Self::V4(b)) => a.clone_from(b),
            (Self::Balancer(a), Self::Balancer(b)) => a.clone_from(b),
            (Self::Curve(a), Self::Curve(b)) => a.clone_from(b),
            (this, source) => *this = source.clone(),
        }
    }
}

/// A change to a pool's state: what a quote computes, what a pool log says, or a whole new state.
/// [`Pool::apply`] writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolChange {
    /// The whole state (initial load, resync, reorg rollback).
    Snapshot(Box<Pool>),
    /// V2 reserves after a swap (a quote, or the pair's `Sync` event).
    V2 {
        /// Reserve of token0 after.
        reserve0: U256,
        /// Reserve of token1 after.
        reserve1: U256,
    },
    /// V3 or V4 price, tick and in-range liquidity after a swap (a quote, or the pool's `Swap`
    /// event).
    V3Swap {
        /// `sqrtPriceX96` after the swap.
        sqrt_price_x96: U256,
        /// Tick after the swap.
        tick: i32,
        /// In-range liquidity after the swap.
        liquidity: u128,
    },
    /// A Balancer or Curve swap: the pool's balance of token `token_in` (index in the pool's own
    /// token order) grows by `amount_in` (fee included) and that of `token_out` falls by
    /// `amount_out` (for Curve, `dy` plus the admin fee). A quote's change, or the Vault's `Swap`
    /// event.
    Balances {
        /// Pool token index of the token paid in.
        token_in: u8,
        /// Pool token index of the token paid out.
        token_out: u8,
        /// Added to `token_in`'s balance.
        amount_in: U256,
        /// Taken from `token_out`'s balance.
        amount_out: U256,
    },
    /// V3 `Mint` (positive) or `Burn` (negative) of a position, or a V4 `ModifyLiquidity`.
    V3Position {
        /// Lower tick.
        tick_lower: i32,
        /// Upper tick.
        tick_upper: i32,
        /// Liquidity delta.
        liquidity_delta: i128,
    },
}

impl PoolChange {
    /// The change a V3 swap result makes.
    pub fn of_v3_swap(r: &SwapResult) -> Self {
        Self::V3Swap { sqrt_price_x96: r.sqrt_price_x96, tick: r.tick, liquidity: r.liquidity }
    }
}

/// Dense pool id: the pool's index in the configured pool list.
pub type PoolId = u32;

/// One change to one pool, as the node feed (or the poller) publishes it and the router applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolUpdate {
    /// Which pool (index in the configured pool list).
    pub pool: PoolId,
    /// Pool contract.
    pub address: Address,
    /// The block the pool's state reflects after this change.
    pub block: u64,
    /// What changed.
    pub change: PoolChange,
    /// Monotonic time (ns) the message that carried it was received.
    pub recv_ns: u64,
}

/// An exact quote: amounts actually swapped and the resulting pool state.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// Input paid, fee included. For a V3 exact input that reaches the price bound or limit this
    /// is less than asked.
    pub amount_in: U256,
    /// Output received.
    pub amount_out: U256,
    /// Pool state after the swap.
    pub change: PoolChange,
    /// Initialized V3 ticks the swap crosses (0 for V2): each costs gas on chain.
    pub ticks_crossed: u32,
}

/// Exact input or exact output of a swap or an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapAmount {
    /// Sell exactly this much.
    ExactIn(U256),
    /// Buy exactly this much.
    ExactOut(U256),
}

impl SwapAmount {
    /// The amount, whichever side it fixes.
    pub fn value(&self) -> U256 {
        match *self {
            Self::ExactIn(a) | Self::ExactOut(a) => a,
        }
    }
}

fn to_i256(x: U256) -> Result<I256> {
    I256::try_from(x).map_err(|_| PoolError::AmountTooLarge(x))
}

impl Pool {
    /// Exact input: sell `amount_in` of token0 (`zero_for_one`) or token1.
    pub fn quote_exact_in(&self, zero_for_one: bool, amount_in: U256) -> Result<Quote> {
        self.swap(zero_for_one, SwapAmount::ExactIn(amount_in), None)
    }

    /// Exact output: buy exactly `amount_out`; errors when the pool cannot deliver all of it.
    pub fn quote_exact_out(&self, zero_for_one: bool, amount_out: U256) -> Result<Quote> {
        let q = self.swap(zero_for_one, SwapAmount::ExactOut(amount_out), None)?;
        if q.amount_out < amount_out {
            return Err(PoolError::ShortOutput { asked: amount_out, delivered: q.amount_out });
        }
        Ok(q)
    }

    /// General swap with an optional V3 `sqrt_price_limit_x96` (the swap stops there, possibly
    /// filling less than asked: compare the quote's amounts with the request).
    pub fn swap(
        &self,
        zero_for_one: bool,
        amount: SwapAmount,
        sqrt_price_limit_x96: Option<U256>,
    ) -> Result<Quote> {
        match self {
            Self::V2 { reserve0, reserve1, fee_bps } => {
                if sqrt_price_limit_x96.is_some() {
                    return Err(PoolError::LimitOnV2);
                }
                let (r_in, r_out) =
                    if zero_for_one { (*reserve0, *reserve1) } else { (*reserve1, *reserve0) };
                let (amount_in, amount_out) = match amount {
                    SwapAmount::ExactIn(a) => (a, v2::get_amount_out(a, r_in, r_out, *fee_bps)?),
                    SwapAmount::ExactOut(a) => (v2::get_amount_in(a, r_in, r_out, *fee_bps)?, a),
                };
                if amount_out.is_zero() {
                    return Err(PoolError::ZeroOutput);
                }
                let new_in = r_in.checked_add(amount_in).ok_or(PoolError::ReserveOverflow)?;
                if new_in > MAX_V2_RESERVE {
                    return Err(PoolError::ReserveOverflow);
                }
                let new_out = r_out - amount_out; // amount_out < r_out: get_amount_* guarantee it
                let (reserve0, reserve1) = if zero_for_one { (new_in, new_out) } else { (new_out, new_in) };
                Ok(Quote {
                    amount_in,
                    amount_out,
                    change: PoolChange::V2 { reserve0, reserve1 },
                    ticks_crossed: 0,
                })
            }
            Self::Balancer(p) => {
                if sqrt_price_limit_x96.is_some() {
                    return Err(PoolError::LimitOnV2);
                }
                p.swap(zero_for_one, amount)
            }
            Self::Curve(p) => {
                if sqrt_price_limit_x96.is_some() {
                    return Err(PoolError::LimitOnV2);
                }
                p.swap(zero_for_one, amount)
            }
            Self::V3(_) | Self::V4(_) => {
                let specified = match amount {
                    SwapAmount::ExactIn(a) => to_i256(a)?,
                    SwapAmount::ExactOut(a) => -to_i256(a)?,
                };
                let r = match self {
                    Self::V4(p) => p.swap(zero_for_one, specified, sqrt_price_limit_x96)?,
                    Self::V3(p) => p.swap(zero_for_one, specified, sqrt_price_limit_x96)?,
                    _ => return Err(PoolError::ChangeKind),
                };
                let (paid, got) = if zero_for_one { (r.amount0, r.amount1) } else { (r.amount1, r.amount0) };
                // the pool's deltas: input is paid in (>= 0), output paid out (<= 0)
                let amount_in = paid.max(I256::ZERO).unsigned_abs();
                let amount_out = got.min(I256::ZERO).unsigned_abs();
                Ok(Quote {
                    amount_in,
                    amount_out,
                    change: PoolChange::of_v3_swap(&r),
                    ticks_crossed: r.ticks_crossed,
                })
            }
        }
    }

    /// Moves the pool to the state a change describes (a quote's, a log's, or a snapshot).
    pub fn apply(&mut self, change: &PoolChange) -> Result<()> {
        match (self, change) {
            (s, PoolChange::Snapshot(new))
                if core::mem::discriminant(s) == core::mem::discriminant(&**new) =>
            {
                *s = (**new).clone();
            }
            (Self::Balancer(p), PoolChange::Balances { token_in, token_out, amount_in, amount_out }) => {
                p.apply_balances(*token_in, *token_out, *amount_in, *amount_out)?;
            }
            (Self::Curve(p), PoolChange::Balances { token_in, token_out, amount_in, amount_out }) => {
                p.apply_balances(*token_in, *token_out, *amount_in, *amount_out)?;
            }
            (Self::V2 { reserve0, reserve1, .. }, PoolChange::V2 { reserve0: r0, reserve1: r1 }) => {
                *reserve0 = *r0;
                *reserve1 = *r1;
            }
            (Self::V3(p), PoolChange::V3Swap { sqrt_price_x96, tick, liquidity }) => {
                p.sqrt_price_x96 = *sqrt_price_x96;
                p.tick = *tick;
                p.liquidity = *liquidity;
            }
            (Self::V3(p), PoolChange::V3Position { tick_lower, tick_upper, liquidity_delta }) => {
                p.modify_position(*tick_lower, *tick_upper, *liquidity_delta)?;
            }
            (Self::V4(p), PoolChange::V3Swap { sqrt_price_x96, tick, liquidity }) => {
                let s = p.state_mut();
                s.sqrt_price_x96 = *sqrt_price_x96;
                s.tick = *tick;
                s.liquidity = *liquidity;
            }
            (Self::V4(p), PoolChange::V3Position { tick_lower, tick_upper, liquidity_delta }) => {
                p.state_mut().modify_position(*tick_lower, *tick_upper, *liquidity_delta)?;
            }
            (_, _) => return Err(PoolError::ChangeKind),
        }
        Ok(())
    }

    /// Mid price, token1 per token0 in raw units, before fees (analytics and guards only).
    pub fn mid_price(&self) -> f64 {
        match self {
            Self::V2 { reserve0, reserve1, .. } => f64::from(*reserve1) / f64::from(*reserve0),
            Self::V3(p) => p.mid_price(),
            Self::V4(p) => p.mid_price(),
            Self::Balancer(p) => p.mid_price(),
            Self::Curve(p) => p.mid_price(),
        }
    }

    /// Fee as a fraction of the input (0.003 for 0.3%).
    pub fn fee_fraction(&self) -> f64 {
        match self {
            Self::V2 { fee_bps, .. } => f64::from(*fee_bps) / 10_000.0,
            Self::V3(p) => f64::from(p.fee) / 1_000_000.0,
            // zeroForOne's swap fee (the directions differ only by a protocol fee)
            Self::V4(p) => f64::from(p.swap_fee(true)) / 1_000_000.0,
            Self::Balancer(p) => p.fee_fraction(),
            Self::Curve(p) => p.fee_fraction(),
        }
    }

    /// The venue's name as config and `keel quote` spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::V2 { .. } => "uniswap_v2",
            Self::V3(_) => "uniswap_v3",
            Self::V4(_) => "uniswap_v4",
            Self::Balancer(_) => "balancer_weighted",
            Self::Curve(_) => "curve_stableswap",
        }
    }

    /// Whether the pool can be a hop of a two-hop path (Uniswap V2/V3 pools through their router's
    /// path encoding, V4 pools through the V4 router's `SWAP_EXACT_IN` path); Balancer and Curve
    /// pools are routed as single-pool paths.
    pub fn supports_two_hop(&self) -> bool {
        matches!(self, Self::V2 { .. } | Self::V3(_) | Self::V4(_))
    }

    /// The float curve of a Balancer or Curve pool in one direction (split optimiser only).
    pub(crate) fn float_curve(&self, zero_for_one: bool) -> Option<FloatCurve> {
        match self {
            Self::Balancer(p) => p.float_curve(zero_for_one),
            Self::Curve(p) => p.float_curve(zero_for_one),
            Self::V2 { .. } | Self::V3(_) | Self::V4(_) => None,
        }
    }

    /// The price, tick and initialized-tick state of a V3 or V4 pool (the split optimiser walks
    /// both as the same tick ladder).
    pub fn tick_state(&self) -> Option<&V3Pool> {
        match self {
            Self::V3(p) => Some(p),
            Self::V4(p) => Some(p.state()),
            Self::V2 { .. } | Self::Balancer(_) | Self::Curve(_) => None,
        }
    }

    /// Whether the pool is a V3 pool.
    pub fn is_v3(&self) -> bool {
        matches!(self, Self::V3(_))
    }
}

/// Metadata of a pool: who it is and what it costs to use.
#[derive(Debug, PartialEq, Eq)]
pub struct PoolMeta {
    /// Operator-facing id (config name or `keel quote` id).
    pub id: String,
    /// Pool (pair) contract address.
    pub address: Address,
    /// token0 (the lower address).
    pub token0: Address,
    /// token1.
    pub token1: Address,
    /// Gas one swap through this pool costs.
    pub gas: u64,
    /// Which router executes swaps through this pool (e.g. the index of its DEX in the config).
    /// A two-hop path only pairs pools of the same venue, so one router call executes it.
    pub venue: u16,
}

/// `clone_from` reuses the id's buffer.
impl Clone for PoolMeta {
    fn clone(&self) -> Self {
        Self { id: self.id.clone(), ..*self }
    }

    fn clone_from(&mut self, source: &Self) {
        let Self { id, address, token0, token1, gas, venue } = self;
        id.clone_from(&source.id);
        (*address, *token0, *token1) = (source.address, source.token0, source.token1);
        (*gas, *venue) = (source.gas, source.venue);
    }
}

/// The V3 tick ladder as floats, for the split optimiser's piecewise model. Struct of arrays sorted
/// by tick index; it mirrors the pool's initialized ticks (swaps never change them).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct TickLadder {
    pub(crate) index: Box<[i32]>,
    /// Real sqrt price `1.0001^(index/2)`.
    pub(crate) sqrt_price: Box<[f64]>,
    /// `liquidity_net` as a float.
    pub(crate) liquidity_net: Box<[f64]>,
}

/// `clone_from` reuses the arrays when the lengths agree (the ticks did not change).
impl Clone for TickLadder {
    fn clone(&self) -> Self {
        Self {
            index: self.index.clone(),
            sqrt_price: self.sqrt_price.clone(),
            liquidity_net: self.liquidity_net.clone(),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        let Self { index, sqrt_price, liquidity_net } = self;
        index.clone_from(&source.index);
        sqrt_price.clone_from(&source.sqrt_price);
        liquidity_net.clone_from(&source.liquidity_net);
    }
}

impl TickLadder {
    fn of(pool: &Pool) -> Self {
        let Some(p) = pool.tick_state() else { return Self::default() };
        let n = p.tick_count();
        let (mut index, mut sqrt_price, mut liquidity_net) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for TickInfo { index: i, liquidity_net: net } in p.ticks() {
            index.push(i);
            sqrt_price.push(tick_sqrt_price(i));
            liquidity_net.push(net as f64);
        }
        Self { index: index.into(), sqrt_price: sqrt_price.into(), liquidity_net: liquidity_net.into() }
    }
}

/// `1.0001^(tick/2)` as a float.
pub(crate) fn tick_sqrt_price(tick: i32) -> f64 {
    (f64::from(tick) * 0.5 * 1.0001f64.ln()).exp()
}

/// A pool with its metadata: the unit the router's functions take (`&[PoolEntry]`, indexed).
///
/// The pool state is private so the cached tick ladder cannot go stale: read it with
/// [`pool`](Self::pool), move it along with [`apply`](Self::apply), replace it with
/// [`set_pool`](Self::set_pool).
#[derive(Debug, PartialEq)]
pub struct PoolEntry {
    /// Id, address, tokens and gas.
    pub meta: PoolMeta,
    pool: Pool,
    ladder: TickLadder,
}

/// `clone_from` reuses every buffer of an entry of the same pool (its id, tick table and float
/// ladder): the router's planning copy is brought back in step without allocating.
impl Clone for PoolEntry {
    fn clone(&self) -> Self {
        Self { meta: self.meta.clone(), pool: self.pool.clone(), ladder: self.ladder.clone() }
    }

    fn clone_from(&mut self, source: &Self) {
        let Self { meta, pool, ladder } = self;
        meta.clone_from(&source.meta);
        pool.clone_from(&source.pool);
        ladder.clone_from(&source.ladder);
    }
}

impl PoolEntry {
    /// Builds an entry; checks that `token0 < token1` (as the contracts order them) and the fee.
    pub fn new(meta: PoolMeta, pool: Pool) -> Result<Self> {
        if meta.token0 >= meta.token1 {
            return Err(PoolError::BadMeta("token0 must be the lower address"));
        }
        match &pool {
            Pool::V2 { fee_bps, .. } if *fee_bps >= 10_000 => return Err(V2Error::BadFee(*fee_bps).into()),
            Pool::V3(p) if p.fee >= v3::swap_math::FEE_DENOMINATOR => {
                return Err(V3Error::BadFee(p.fee).into());
            }
            _ => {}
        }
        let ladder = TickLadder::of(&pool);
        Ok(Self { meta, pool, ladder })
    }

    /// The swap state.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Replaces the swap state (e.g. after a chain sync) and rebuilds the tick model.
    pub fn set_pool(&mut self, pool: Pool) {
        self.ladder = TickLadder::of(&pool);
        self.pool = pool;
    }

    /// Applies a change: a quote's (price, tick, liquidity or reserves: the tick model stays), a
    /// position change or a snapshot (the tick model is rebuilt).
    pub fn apply(&mut self, change: &PoolChange) -> Result<()> {
        self.pool.apply(change)?;
        if matches!(change, PoolChange::Snapshot(_) | PoolChange::V3Position { .. }) {
            self.ladder = TickLadder::of(&self.pool);
        }
        Ok(())
    }

    pub(crate) fn ladder(&self) -> &TickLadder {
        &self.ladder
    }

    /// The other token of the pair, if `token` is one of its two.
    pub fn other(&self, token: Address) -> Option<Address> {
        if token == self.meta.token0 {
            Some(self.meta.token1)
        } else if token == self.meta.token1 {
            Some(self.meta.token0)
        } else {
            None
        }
    }

    /// `zero_for_one` for selling `token`, if the pool trades it.
    pub fn direction(&self, sell: Address) -> Option<bool> {
        if sell == self.meta.token0 {
            Some(true)
        } else if sell == self.meta.token1 {
            Some(false)
        } else {
            None
        }
    }

    /// Mid price of `buy` per `sell` in raw units (before fees), for a pool trading both.
    pub fn mid_price_of(&self, sell: Address) -> Option<f64> {
        let p = self.pool.mid_price();
        self.direction(sell).map(|z| if z { p } else { 1.0 / p })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v3::{MAX_TICK, MIN_TICK};
    use alloy_primitives::uint;

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    fn v2(r0: U256, r1: U256) -> Pool {
        Pool::V2 { reserve0: r0, reserve1: r1, fee_bps: 30 }
    }

    #[test]
    fn v2_quotes_match_the_library_and_move_reserves() {
        let p = v2(e18(5), e18(10));
        let q = p.quote_exact_in(true, e18(1)).unwrap();
        assert_eq!(q.amount_out, U256::from(1_662_497_915_624_478_906u128));
        assert_eq!(q.change, PoolChange::V2 { reserve0: e18(6), reserve1: e18(10) - q.amount_out });
        let back = p.quote_exact_out(true, q.amount_out).unwrap();
        assert!(back.amount_in <= e18(1));
        let mut p2 = p.clone();
        p2.apply(&q.change).unwrap();
        assert!(p2.mid_price() < p.mid_price());
        // reverse direction
        let r = p.quote_exact_in(false, e18(1)).unwrap();
        assert_eq!(r.amount_out, v2::get_amount_out(e18(1), e18(10), e18(5), 30).unwrap());
    }

    /// `clone_from` gives exactly the source, whatever the pools' kinds and tick counts, and an
    /// entry brought back to the same pool keeps its buffers (no reallocation: same addresses).
    #[test]
    fn clone_from_copies_any_pool_exactly_and_reuses_the_buffers_of_the_same_pool() {
        let v3 = |positions: i32, tick: i32| {
            let mut ticks = Vec::new();
            for k in 1..=positions {
                ticks.push(TickInfo { index: -60 * k, liquidity_net: 1_000 });
                ticks.push(TickInfo { index: 60 * k, liquidity_net: -1_000 });
            }
            ticks.sort_by_key(|t| t.index);
            let sqrt = crate::v3::tick_math::get_sqrt_ratio_at_tick(tick).unwrap();
            Pool::V3(V3Pool::new(3000, 60, sqrt, tick, 1_000 * positions as u128, &ticks).unwrap())
        };
        let meta = |id: &str| PoolMeta {
            id: id.into(),
            address: Address::repeat_byte(1),
            token0: Address::repeat_byte(2),
            token1: Address::repeat_byte(3),
            gas: 100_000,
            venue: 0,
        };
        let pools = [v2(e18(5), e18(10)), v3(3, 0), v3(40, 5), v3(40, -7)];
        for a in &pools {
            for b in &pools {
                let mut x = PoolEntry::new(meta("a"), a.clone()).unwrap();
                let y = PoolEntry::new(meta("the other pool"), b.clone()).unwrap();
                x.clone_from(&y);
                assert_eq!(x, y);
            }
        }
        // The same V3 pool, moved: copied back in place.
        let mut copy = PoolEntry::new(meta("p"), v3(40, 5)).unwrap();
        let moved = PoolEntry::new(meta("p"), v3(40, -7)).unwrap();
        let (id, ladder) = (copy.meta.id.as_ptr(), copy.ladder.sqrt_price.as_ptr());
        copy.clone_from(&moved);
        assert_eq!(copy, moved);
        assert_eq!(copy.meta.id.as_ptr(), id, "the id was reallocated");
        assert_eq!(copy.ladder.sqrt_price.as_ptr(), ladder, "the float ladder was reallocated");
    }

    #[test]
    fn v2_reverts_become_errors() {
        let p = v2(e18(1), U256::from(10u8));
        assert_eq!(p.quote_exact_in(true, U256::from(1u8)), Err(PoolError::ZeroOutput));
        let big = v2(MAX_V2_RESERVE, e18(1));
        assert_eq!(big.quote_exact_in(true, e18(1)), Err(PoolError::ReserveOverflow));
        assert!(p.swap(true, SwapAmount::ExactIn(e18(1)), Some(U256::from(1u8))).is_err());
    }

    #[test]
    fn v3_quotes_are_the_pool_swap() {
        let sqrt = uint!(79228162514264337593543950336_U256); // price 1
        let l: u128 = 10u128.pow(24);
        let ticks = [
            TickInfo { index: -600, liquidity_net: l as i128 },
            TickInfo { index: 600, liquidity_net: -(l as i128) },
        ];
        let p = Pool::V3(V3Pool::new(3000, 60, sqrt, 0, l, &ticks).unwrap());
        let q = p.quote_exact_in(true, e18(1)).unwrap();
        let Pool::V3(inner) = &p else { unreachable!() };
        let r = inner.swap(true, I256::try_from(e18(1)).unwrap(), None).unwrap();
        assert_eq!(q.amount_out, r.amount1.unsigned_abs());
        assert_eq!(q.amount_in, e18(1));
        let o = p.quote_exact_out(false, e18(1)).unwrap();
        assert_eq!(o.amount_out, e18(1));
        // more than the range holds: exact out fails, exact in fills partially
        assert!(matches!(p.quote_exact_out(true, e18(1_000_000_000)), Err(PoolError::ShortOutput { .. })));
        let part = p.quote_exact_in(true, e18(1_000_000_000)).unwrap();
        assert!(part.amount_in < e18(1_000_000_000));
        assert!((MIN_TICK..=MAX_TICK).contains(&(-600)));
    }

    #[test]
    fn entry_checks_token_order() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        let meta =
            PoolMeta { id: "x".into(), address: Address::ZERO, token0: b, token1: a, gas: 1, venue: 0 };
        assert!(PoolEntry::new(meta, v2(e18(1), e18(1))).is_err());
    }
}
