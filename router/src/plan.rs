//! Routing orders into fills, and multi-order plans: what the execution stage calls.
//!
//! # Entry points
//! - [`route_exact_in`]: one exact-input order, routed on a scratch copy of the pools and *applied*
//!   to it, so the next order routed on the same scratch sees this one's effect (legs that touch the
//!   same pool never fight each other). Guards: the price deviation check and `amount_out_min`.
//! - [`route_order`]: exact input or exact output, without touching the pools.
//! - [`plan`]: several orders in sequence on an internal scratch copy; reports each route and the
//!   plan's total cost.
//!
//! # Units
//! All amounts are raw token units (`U256`). Prices are floats in raw units of the bought token per
//! raw unit of the sold token (`raw_buy / raw_sell`, i.e. whole price × 10^(buy decimals − sell
//! decimals)). `buy_per_native` is raw units of the bought token per **wei** of the native token
//! (whole price × 10^(buy decimals − 18)); gas is ignored without it.
//!
//! # Guards
//! - `amount_out_min = ⌊quote × (10000 − slippage_bps) / 10000⌋` per fill (exact input) and
//!   `amount_in_max = ⌈quote × (10000 + slippage_bps) / 10000⌉` (exact output).
//! - With a reference (CEX) price, every path used is checked before routing completes: its mid
//!   price (product of the hops' mids, fees excluded, on the state the order is routed against)
//!   must be within `max_deviation` (relative) of the reference, else
//!   [`PlanError::PriceDeviation`] names the pool(s).
//!
//! # Cost
//! Against the reference price when given, else the route's pre-trade mid: `slippage = amount_in ×
//! price − amount_out`, `gas = gas × gas_price × buy_per_native`, both in raw bought units.

use alloy::primitives::{Address, U256};

use keel_amm::pool::{PoolChange, PoolEntry, SwapAmount};
use keel_amm::split::{self, SplitError, SplitLeg};
use keel_amm::v3::full_math::{mul_div, mul_div_rounding_up};

/// Basis points in one.
const BPS: u32 = 10_000;

/// Expected gas of one initialized tick a Uniswap V3 swap crosses, on top of the pool's swap gas
/// (the cross: a `ticks` slot read and write and the liquidity update; mainnet swaps cost about
/// this much more per tick crossed). Fills' gas and costs include it; the split optimiser does not
/// (it prices each pool's configured or learned swap gas).
pub const V3_GAS_PER_TICK_CROSSED: u64 = 31_000;

/// Gas a transaction's *limit* allows per V3 tick crossed: the worst case, not the expected one.
/// `Tick.cross` rewrites the tick's cold slots; on a tick not crossed since its liquidity was added
/// above the price, `feeGrowthOutside0X128` and `feeGrowthOutside1X128` go from zero to non-zero
/// (22,100 gas each instead of 5,000). Measured on anvil against the real pool
/// (`sim/tests/it/chain/v3_gas.rs`): about 37,400 gas per such tick when one token has earned fees,
/// 58,300 to 60,500 when both have; the expected-cost allowance with the limit's margin
/// ([`V3_GAS_PER_TICK_CROSSED`] × 1.3 = 40,300) let a swap across 29 such ticks run out of gas
/// (about 1,800,000 used, 1,376,700 allowed).
pub const V3_GAS_LIMIT_PER_TICK_CROSSED: u64 = 64_000;

/// Headroom of a transaction's gas limit over the fill's base (per-pool) swap gas, percent.
pub const GAS_LIMIT_MARGIN_PCT: u64 = 30;

/// Gas price the plan is costed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasPricing {
    /// Wei per gas (e.g. the bundle's `maxFeePerGas`).
    pub gas_price_wei: u128,
}

/// Why an order cannot be routed or a plan built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A route's pool change could not be applied to the scratch pools.
    #[error("applying a route: {0}")]
    Pool(#[from] keel_amm::pool::PoolError),
    /// The split optimiser found no (fillable) route.
    #[error("order {sell} -> {buy}: {source}")]
    Route {
        /// Token sold.
        sell: Address,
        /// Token bought.
        buy: Address,
        /// Why.
        source: SplitError,
    },
    /// A pool's mid price is too far from the reference price: no plan.
    #[error(
        "pool `{pool}`: mid price {mid:e} deviates from the reference {reference:e} by more than {max_deviation}"
    )]
    PriceDeviation {
        /// Pool id (`a>b` for a two-hop path).
        pool: String,
        /// The path's mid price, raw buy per raw sell.
        mid: f64,
        /// The reference price, same units.
        reference: f64,
        /// The bound, relative.
        max_deviation: f64,
    },
    /// Slippage tolerance of 100% or more.
    #[error("slippage tolerance {0} bps is not below 10000")]
    BadTolerance(u32),
    /// Reference price or deviation bound not a positive finite number.
    #[error("{0} must be a positive finite number")]
    BadGuard(&'static str),
}

impl PlanError {
    /// True when retrying later (new pool states, a new reference) may succeed.
    pub fn is_recoverable(&self) -> bool {
        match self {
            Self::PriceDeviation { .. } => true,
            Self::Route { source, .. } => !matches!(source, SplitError::BadPath(_) | SplitError::ZeroAmount),
            Self::BadTolerance(_) | Self::BadGuard(_) | Self::Pool(_) => false,
        }
    }
}

/// Result alias for routing.
pub type Result<T> = core::result::Result<T, PlanError>;

/// One swap of a fill.
#[derive(Debug, Clone, PartialEq)]
pub struct FillHop {
    /// Pool index.
    pub pool: usize,
    /// Sells the pool's token0.
    pub zero_for_one: bool,
    /// Input of this hop.
    pub amount_in: U256,
    /// Output of this hop.
    pub amount_out: U256,
    /// Initialized ticks this hop crosses (V3; 0 for V2).
    pub ticks_crossed: u32,
    /// The pool's state after this hop.
    pub change: PoolChange,
}

/// One fill of a route: a transaction's worth, through one pool or two (via a hub token).
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    /// Pool indices in execution order (one or two; the same venue).
    pub pools: Vec<usize>,
    /// Tokens in order: `[sell, buy]` or `[sell, hub, buy]` (a Router02 / V3 path).
    pub path: Vec<Address>,
    /// Input of the fill.
    pub amount_in: U256,
    /// Quoted output of the fill.
    pub amount_out: U256,
    /// Exact-input guard: `⌊amount_out × (1 − tolerance)⌋`.
    pub amount_out_min: U256,
    /// Exact-output guard: `⌈amount_in × (1 + tolerance)⌉`.
    pub amount_in_max: U256,
    /// Gas of the fill: its pools' swap gas plus [`V3_GAS_PER_TICK_CROSSED`] per tick crossed
    /// (what the fill is expected to cost).
    pub gas: u64,
    /// Gas limit of the fill's transaction: its pools' swap gas plus [`GAS_LIMIT_MARGIN_PCT`], plus
    /// [`V3_GAS_LIMIT_PER_TICK_CROSSED`] per tick its simulation crosses.
    pub gas_limit: u64,
    /// Per-hop amounts and pool states after.
    pub hops: Vec<FillHop>,
}

/// Cost of a route against a price, in raw units of the bought token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteCost {
    /// The price used: the reference when given, else the route's pre-trade mid.
    pub price: f64,
    /// `amount_in × price − amount_out` (fees and price impact).
    pub slippage: f64,
    /// Gas cost (0 without `buy_per_native`).
    pub gas: f64,
    /// `slippage + gas`.
    pub total: f64,
    /// `total` in basis points of `amount_in × price`.
    pub bps: f64,
}

/// A routed order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRoute {
    /// Token sold.
    pub sell: Address,
    /// Token bought.
    pub buy: Address,
    /// Total input.
    pub amount_in: U256,
    /// Total quoted output.
    pub amount_out: U256,
    /// Total gas of the fills.
    pub gas: u64,
    /// Pre-trade mid of the paths used, weighted by input (raw buy per raw sell).
    pub mid_price: f64,
    /// Cost against the reference (or the mid).
    pub cost: RouteCost,
    /// The fills, in execution order.
    pub fills: Vec<Fill>,
}

/// Guards and options of one routing call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guards {
    /// Slippage tolerance per fill, basis points (< 10000).
    pub slippage_bps: u32,
    /// Reference (CEX) price, raw buy per raw sell; `None` skips the deviation check.
    pub reference_price: Option<f64>,
    /// Largest relative gap between a path's mid and the reference.
    pub max_deviation: f64,
    /// Consider two-hop paths through hub tokens.
    pub two_hop: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            slippage_bps: crate::config::DEFAULT_SLIPPAGE_BPS,
            reference_price: None,
            max_deviation: crate::config::DEFAULT_MAX_POOL_DEVIATION,
            two_hop: true,
        }
    }
}

/// Mid price (raw buy per raw sell, fees excluded) of a path on the given pool states.
fn path_mid(pools: &[PoolEntry], path: &split::Path) -> f64 {
    path.hops()
        .map(|h| {
            pools.get(h.pool).map_or(f64::NAN, |p| {
                let m = p.pool().mid_price();
                if h.zero_for_one { m } else { 1.0 / m }
            })
        })
        .product()
}

fn path_name(pools: &[PoolEntry], path: &split::Path) -> String {
    let mut s = String::new();
    for (i, h) in path.hops().enumerate() {
        if i > 0 {
            s.push('>');
        }
        s.push_str(pools.get(h.pool).map_or("?", |p| p.meta.id.as_str()));
    }
    s
}

/// Routes one order on `pools` without modifying them.
///
/// `buy_per_native`: raw bought units per wei (see the module docs); `None` ignores gas.
pub fn route_order(
    pools: &[PoolEntry],
    sell: Address,
    buy: Address,
    amount: SwapAmount,
    gas: &GasPricing,
    buy_per_native: Option<f64>,
    guards: &Guards,
) -> Result<OrderRoute> {
    if guards.slippage_bps >= BPS {
        return Err(PlanError::BadTolerance(guards.slippage_bps));
    }
    if let Some(r) = guards.reference_price
        && !(r.is_finite() && r > 0.0)
    {
        return Err(PlanError::BadGuard("reference price"));
    }
    if !(guards.max_deviation.is_finite() && guards.max_deviation > 0.0) {
        return Err(PlanError::BadGuard("max deviation"));
    }
    let route_err = |source| PlanError::Route { sell, buy, source };
    let paths = split::candidate_paths(pools, sell, buy, guards.two_hop);
    let per_wei = buy_per_native.filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0);
    let per_gas = gas.gas_price_wei as f64 * per_wei;
    let s = split::split(pools, &paths, amount, per_gas).map_err(route_err)?;

    let mut mid_weighted = 0.0;
    let mut weight = 0.0;
    for leg in &s.legs {
        let mid = path_mid(pools, &leg.path);
        if let Some(reference) = guards.reference_price {
            let dev = (mid / reference - 1.0).abs();
            if dev.is_nan() || dev > guards.max_deviation {
                return Err(PlanError::PriceDeviation {
                    pool: path_name(pools, &leg.path),
                    mid,
                    reference,
                    max_deviation: guards.max_deviation,
                });
            }
        }
        let w = f64::from(leg.amount_in);
        mid_weighted += mid * w;
        weight += w;
    }
    let mid_price = if weight > 0.0 { mid_weighted / weight } else { f64::NAN };
    let fills: Vec<Fill> = s.legs.iter().map(|l| fill_of(pools, l, guards.slippage_bps)).collect();
    let route_gas = fills.iter().map(|f| f.gas).fold(0, u64::saturating_add);
    let price = guards.reference_price.unwrap_or(mid_price);
    let fair = f64::from(s.amount_in) * price;
    let slippage = fair - f64::from(s.amount_out);
    let gas_cost = route_gas as f64 * per_gas;
    let total = slippage + gas_cost;
    Ok(OrderRoute {
        sell,
        buy,
        amount_in: s.amount_in,
        amount_out: s.amount_out,
        gas: route_gas,
        mid_price,
        cost: RouteCost {
            price,
            slippage,
            gas: gas_cost,
            total,
            bps: if fair > 0.0 { total / fair * 1e4 } else { 0.0 },
        },
        fills,
    })
}

fn fill_of(pools: &[PoolEntry], leg: &SplitLeg, slippage_bps: u32) -> Fill {
    let keep = U256::from(BPS - slippage_bps.min(BPS));
    let grow = U256::from(BPS + slippage_bps.min(BPS));
    let bps = U256::from(BPS);
    let mut path = Vec::with_capacity(3);
    let mut ids = Vec::with_capacity(2);
    let mut hops = Vec::with_capacity(2);
    for h in core::iter::once(&leg.first).chain(leg.second.as_ref()) {
        let (t_in, t_out) = pools.get(h.hop.pool).map_or((Address::ZERO, Address::ZERO), |p| {
            if h.hop.zero_for_one { (p.meta.token0, p.meta.token1) } else { (p.meta.token1, p.meta.token0) }
        });
        if path.is_empty() {
            path.push(t_in);
        }
        path.push(t_out);
        ids.push(h.hop.pool);
        hops.push(FillHop {
            pool: h.hop.pool,
            zero_for_one: h.hop.zero_for_one,
            amount_in: h.quote.amount_in,
            amount_out: h.quote.amount_out,
            ticks_crossed: h.quote.ticks_crossed,
            change: h.quote.change.clone(),
        });
    }
    let crossed: u64 = hops.iter().map(|h| u64::from(h.ticks_crossed)).sum();
    Fill {
        pools: ids,
        path,
        amount_in: leg.amount_in,
        amount_out: leg.amount_out,
        // keep < bps, so the product divides back below amount_out: never overflows
        amount_out_min: mul_div(leg.amount_out, keep, bps).unwrap_or(U256::ZERO),
        amount_in_max: mul_div_rounding_up(leg.amount_in, grow, bps).unwrap_or(U256::MAX),
        gas: leg.gas.saturating_add(crossed.saturating_mul(V3_GAS_PER_TICK_CROSSED)),
        gas_limit: (leg.gas.saturating_mul(100 + GAS_LIMIT_MARGIN_PCT) / 100)
            .saturating_add(crossed.saturating_mul(V3_GAS_LIMIT_PER_TICK_CROSSED)),
        hops,
    }
}

/// Applies every hop of a route to `pools` (in execution order).
pub fn apply_route(pools: &mut [PoolEntry], route: &OrderRoute) -> Result<()> {
    for fill in &route.fills {
        for h in &fill.hops {
            if let Some(p) = pools.get_mut(h.pool) {
                p.apply(&h.change)?;
            }
        }
    }
    Ok(())
}

/// Routes one exact-input order on a scratch copy of the pools and applies its fills to it, so the
/// next order routed on the same scratch sees this one. Refuses the order when a path it uses has a
/// mid more than `max_deviation` away from `reference_price` (raw buy per raw sell) on the scratch
/// state. `buy_per_native` is raw bought units per wei (`None`: gas ignored).
#[allow(clippy::too_many_arguments)]
pub fn route_exact_in(
    pools: &mut [PoolEntry],
    sell: Address,
    buy: Address,
    amount_in: U256,
    gas: &GasPricing,
    buy_per_native: Option<f64>,
    reference_price: Option<f64>,
    max_deviation: f64,
    slippage_bps: u32,
) -> Result<OrderRoute> {
    let guards = Guards { slippage_bps, reference_price, max_deviation, two_hop: true };
    let route = route_order(pools, sell, buy, SwapAmount::ExactIn(amount_in), gas, buy_per_native, &guards)?;
    apply_route(pools, &route)?;
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_amm::pool::{Pool, PoolMeta};

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    const A: Address = Address::repeat_byte(1);
    const B: Address = Address::repeat_byte(2);

    fn v2(id: &str, r0: U256, r1: U256) -> PoolEntry {
        let meta =
            PoolMeta { id: id.into(), address: Address::ZERO, token0: A, token1: B, gas: 100_000, venue: 0 };
        PoolEntry::new(meta, Pool::V2 { reserve0: r0, reserve1: r1, fee_bps: 30 }).unwrap()
    }

    #[test]
    fn min_out_is_rounded_down_and_legs_apply_in_sequence() {
        let mut pools = vec![v2("a", e18(100), e18(100))];
        let gas = GasPricing { gas_price_wei: 0 };
        let r1 = route_exact_in(&mut pools, A, B, e18(1), &gas, None, None, 0.05, 50).unwrap();
        let f = &r1.fills[0];
        let want = f.amount_out * U256::from(9950u32) / U256::from(10_000u32);
        assert_eq!(f.amount_out_min, want);
        assert_eq!(f.path, vec![A, B]);
        // the second identical order sees the first one's effect
        let r2 = route_exact_in(&mut pools, A, B, e18(1), &gas, None, None, 0.05, 50).unwrap();
        assert!(r2.amount_out < r1.amount_out);
        assert_eq!(
            pools[0].pool(),
            &Pool::V2 { reserve0: e18(102), reserve1: e18(100) - r1.amount_out - r2.amount_out, fee_bps: 30 }
        );
    }

    #[test]
    fn a_v3_swap_that_crosses_many_ticks_pays_and_limits_gas_for_each() {
        use keel_amm::v3::{TickInfo, V3Pool};
        // Twenty nested positions [−60k, 60k] of equal liquidity around price 1: a swap up crosses
        // the upper ends one by one.
        let l: i128 = 1_000_000_000_000_000_000;
        let mut ticks = Vec::new();
        for k in 1..=20 {
            ticks.push(TickInfo { index: -60 * k, liquidity_net: l });
            ticks.push(TickInfo { index: 60 * k, liquidity_net: -l });
        }
        let v3 = V3Pool::new(3000, 60, U256::from(1u8) << 96, 0, 20 * l as u128, &ticks).unwrap();
        let meta = PoolMeta {
            id: "v3".into(),
            address: Address::ZERO,
            token0: A,
            token1: B,
            gas: 130_000,
            venue: 0,
        };
        let pools = vec![PoolEntry::new(meta, Pool::V3(v3)).unwrap()];
        let guards = Guards { max_deviation: 0.5, ..Guards::default() };
        let route = |amount| {
            route_order(
                &pools,
                B,
                A,
                SwapAmount::ExactIn(amount),
                &GasPricing { gas_price_wei: 0 },
                None,
                &guards,
            )
            .unwrap()
        };
        let small = route(U256::from(1_000u32));
        assert_eq!((small.fills[0].hops[0].ticks_crossed, small.gas), (0, 130_000));
        let big = route(e18(3) / U256::from(10u8));
        let crossed = big.fills[0].hops[0].ticks_crossed;
        assert!(crossed >= 5, "the swap should cross several ticks: {crossed}");
        let want = 130_000 + u64::from(crossed) * V3_GAS_PER_TICK_CROSSED;
        assert_eq!((big.fills[0].gas, big.gas), (want, want));
        assert_eq!(small.fills[0].gas_limit, 169_000);
        assert_eq!(big.fills[0].gas_limit, 169_000 + u64::from(crossed) * V3_GAS_LIMIT_PER_TICK_CROSSED);
    }

    #[test]
    fn deviation_guard_names_the_pool() {
        let pools = vec![v2("a", e18(100), e18(100)), v2("b", e18(100), e18(130))];
        let guards = Guards { reference_price: Some(1.0), max_deviation: 0.05, ..Guards::default() };
        let err = route_order(
            &pools,
            A,
            B,
            SwapAmount::ExactIn(e18(1)),
            &GasPricing { gas_price_wei: 0 },
            None,
            &guards,
        )
        .unwrap_err();
        assert!(matches!(&err, PlanError::PriceDeviation { pool, .. } if pool == "b"), "{err}");
        assert!(err.is_recoverable());
        let bad = Guards { slippage_bps: 10_000, ..Guards::default() };
        assert!(matches!(
            route_order(
                &pools,
                A,
                B,
                SwapAmount::ExactIn(e18(1)),
                &GasPricing { gas_price_wei: 0 },
                None,
                &bad
            ),
            Err(PlanError::BadTolerance(10_000))
        ));
    }
}
