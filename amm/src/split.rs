//! Gas-aware optimal split of one order across V2 and V3 pools, direct and through a hub token.
//!
//! # Model
//! Every pool, in one direction and between two liquidity changes, is a constant-product segment:
//! `(x + a)(b − y) = a·b` with `x` the gross input (fee included) and `y` the output. For V2,
//! `a = reserve_in / γ`, `b = reserve_out` (γ = 1 − fee) and the segment never ends; for V3 the
//! virtual reserves of the in-range liquidity give `a = (L/√P)/γ`, `b = L·√P` when selling token0
//! (`a = L·√P/γ`, `b = L/√P` otherwise), and the segment ends at the next initialized tick. The
//! marginal rate at the segment start is `b/a` and at input `x` it is `a·b/(a + x)²`. Two segments
//! in sequence (a two-hop path) compose into one segment: `a = a₁a₂/(b₁ + a₂)`, `b = b₁b₂/(b₁ + a₂)`.
//!
//! Each path's output `f(x)` is therefore concave: its marginal rate only falls (it is continuous
//! across a tick and jumps down over a liquidity gap).
//!
//! # Algorithm
//! 1. **Curves** (floats): each path is walked once, segment by segment, until it alone would fill
//!    the order (or runs dry), and recorded as arcs over the *water level* `u = 1/√λ`, λ being the
//!    path's marginal rate: on a segment, `x(u) = √(ab)·u − a` and `y(u) = b − √(ab)/u` (plus the
//!    amounts of the segments before). Any set of paths at a common level λ is then a sum of
//!    pieces linear in `u` (input) and in `1/u` (output), and the level at which the set fills the
//!    order (its no-gas optimum, *water-filling*) is solved exactly piece by piece, without walking
//!    a pool again. Cost of the walk: `O(paths + ticks crossed)`; of a subset solve, a few passes
//!    over its paths with a binary search of each path's arcs.
//! 2. **Which paths** (floats, exact over subsets; `split/subset.rs`): each path used costs its pools'
//!    gas × gas price `g_i`, in output-token units (exact input) or input-token units at the best
//!    spot rate (exact output). The best subset of the live paths after gas is found by branch and
//!    bound, pruning with a Lagrangian-duality bound that proves a pruned family of subsets no
//!    better than the best subset found (stated and proved in the docs of `split/subset.rs`). With at most
//!    [`EXHAUSTIVE_PATHS`] (8) live paths the search always completes, so the choice is the best
//!    subset of the float model; above that it stops after [`MAX_SUBSET_SOLVES`] subset solves
//!    with the best subset seen. On random V2 sets, 8 paths take about 5 subset solves (at most
//!    ~25 of 255). The search allocates nothing.
//! 3. **Exact**: the float amounts are floored to integers (the remainder goes to the largest leg, so
//!    leg inputs — or outputs for exact output — sum to the order exactly) and every leg is
//!    re-simulated with the pools' integer math. A bounded **polish** moves units between the legs
//!    with the highest and lowest post-trade marginal rates while the exact net improves, and the
//!    result is compared exactly with the best single paths, so rounding never loses to a simpler
//!    allocation.
//!
//! # The bound
//! See `split/subset.rs`: for a family of subsets `T` with `I ⊆ T ⊆ U`, solved once at `U`'s no-gas level
//! `λ_U`, `Net(T) ≤ V(U) − Σ_I g_i − Σ_{U∖I} min(g_i, h_i(λ_U))`, with `h_i` path `i`'s surplus over
//! the marginal rate; the float model's resolution (about 1e-16 of the paths' virtual reserves;
//! 1e-12 relative on a V3 ladder) is the only slack, and the exact phase then loses nothing but
//! integer rounding and, at a V3 pool's liquidity end, what the polish leaves of the float/exact
//! capacity gap.
//!
//! # Paths as the optimiser sees them
//! The selection and the water-filling read only each path's arcs and gas (`Curves`, `select`);
//! the exact phase reads only its exact quote (`simulate`). A new venue (Curve, Balancer, V4) joins
//! as a path by giving those two: its exact quote, and its concave output curve as arcs (exact for
//! constant-product and concentrated-liquidity pieces; any concave curve can be approximated by
//! arcs, the exact phase and polish absorbing the approximation).
//!
//! Balancer and Curve pools join this way: `Cursor::fit_next` cuts their closed-form marginal-rate
//! curve ([`crate::venue`]) into constant-product arcs that meet it at both ends, each arc ending
//! where the rate has fallen by `FIT_DROP` (0.4%); `marginal_after` reads the same curve. They are
//! single-pool paths, never a hop of a two-hop path.
//!
//! Paths never share a pool (see [`candidate_paths`]), so legs are independent and their quotes are
//! each against the entry state.

use alloy_primitives::{Address, U256};

use crate::pool::{PoolEntry, PoolError, Quote};
use crate::v3::{MAX_SQRT_RATIO, MIN_SQRT_RATIO};

mod subset;

use subset::{Choice, select};

pub use crate::pool::SwapAmount;

/// Most candidate paths one split considers (direct pools first, then two-hop paths).
pub const MAX_PATHS: usize = 64;
/// Up to this many live paths the choice of paths is provably the best subset: the branch and
/// bound cannot exhaust [`MAX_SUBSET_SOLVES`] (there are at most `2⁸ − 1 = 255` subsets).
pub const EXHAUSTIVE_PATHS: usize = 8;
/// Most subset solves (water-fillings of one set of paths) one split's branch and bound makes.
/// Only reachable with more than [`EXHAUSTIVE_PATHS`] live paths; the best subset seen is used.
pub const MAX_SUBSET_SOLVES: usize = 1024;
/// Rounds of the integer polish.
pub const POLISH_ROUNDS: u32 = 12;
/// Smallest relative gap between the legs' post-trade marginal rates that the polish acts on.
pub const POLISH_MIN_GAP: f64 = 1e-9;
/// The float model tracks the exact math to about 1e-12 relative; a split whose float objective
/// beats every single path by more than this (relative) margin is not re-checked exactly.
const FLOAT_MARGIN: f64 = 1e-8;
/// Safety bound on the segments recorded per path (ticks crossed).
const MAX_EVENTS: usize = 1 << 16;
/// A path that ran dry in the float model gets its exact capacity when that is within
/// `2^-DRY_MATCH_SHIFT` (about 1e-6) of the float amount.
const DRY_MATCH_SHIFT: usize = 20;
/// Float liquidity below this fraction of the terms it was computed from is a rounding residue.
const LIQUIDITY_RESIDUE: f64 = 1e-12;
/// Steps of one subset solve (each solves the current pieces exactly; a few suffice).
const MAX_SOLVE_STEPS: usize = 100;
/// A subset solve stops when the filled amount is within this fraction of the magnitude of its
/// terms (a few float roundings) of the order; closer is not resolvable: one ulp of the level moves
/// a path by about 1e-16 of its virtual reserves.
const SOLVE_TOLERANCE: f64 = 1e-15;

/// Gas pricing of a split: the price of gas and of the native token in the bought token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GasPrice {
    /// Gas price, wei per gas.
    pub gas_price_wei: u128,
    /// Whole bought tokens per one native token (e.g. 1834.5 USDC per ETH).
    pub buy_per_native: f64,
    /// Decimals of the bought token.
    pub buy_decimals: u8,
}

impl GasPrice {
    /// Cost of one gas unit in base units of the bought token.
    pub fn buy_units_per_gas(&self) -> f64 {
        let v =
            self.gas_price_wei as f64 * self.buy_per_native * 10f64.powi(i32::from(self.buy_decimals) - 18);
        if v.is_finite() && v > 0.0 { v } else { 0.0 }
    }
}

/// One swap of a path: a pool (index into the pool slice) and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// Index of the pool in the slice given to the router.
    pub pool: usize,
    /// Sells the pool's token0 for token1.
    pub zero_for_one: bool,
}

/// A way from the sold token to the bought one: one pool, or two through a hub token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    /// First (or only) hop.
    pub first: Hop,
    /// Second hop of a two-hop path.
    pub second: Option<Hop>,
}

impl Path {
    /// The hops in execution order (one or two).
    pub fn hops(&self) -> impl Iterator<Item = Hop> {
        core::iter::once(self.first).chain(self.second)
    }

    /// Gas of the path: the sum of its pools' gas.
    pub fn gas(&self, pools: &[PoolEntry]) -> u64 {
        self.hops().map(|h| pools.get(h.pool).map_or(0, |p| p.meta.gas)).fold(0, u64::saturating_add)
    }
}

/// Why a split is impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The order amount is zero.
    #[error("order amount is zero")]
    ZeroAmount,
    /// No pool (or pair of pools through a hub) trades the two tokens with liquidity.
    #[error("no pool with liquidity trades the pair")]
    NoRoute,
    /// The pools together cannot absorb the input or deliver the output.
    #[error("the pools cannot fill the order")]
    InsufficientLiquidity,
    /// A path refers to a pool that does not exist or does not trade the token it is given.
    #[error("path refers to pool {0}, which does not exist or trade that token")]
    BadPath(usize),
    /// Exact simulation of the chosen split failed on a pool.
    #[error("pool {pool}: {source}")]
    Pool {
        /// Index of the pool.
        pool: usize,
        /// The pool's error (boxed: keeps the error small on the hot path).
        source: Box<PoolError>,
    },
}

impl SplitError {
    /// True when the order, not the pool data, is at fault (too large, zero).
    pub fn is_order_error(&self) -> bool {
        matches!(self, Self::ZeroAmount | Self::InsufficientLiquidity)
    }
}

/// Result alias for splits.
pub type Result<T> = core::result::Result<T, SplitError>;

/// One executed hop of a leg.
#[derive(Debug, Clone, PartialEq)]
pub struct LegHop {
    /// The pool and direction.
    pub hop: Hop,
    /// Its exact quote (amounts and the pool's state after).
    pub quote: Quote,
}

/// One leg of a split: a path and its exact amounts.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitLeg {
    /// The path.
    pub path: Path,
    /// Input of the leg (sold token).
    pub amount_in: U256,
    /// Output of the leg (bought token).
    pub amount_out: U256,
    /// First hop's exact quote.
    pub first: LegHop,
    /// Second hop's exact quote, for a two-hop path.
    pub second: Option<LegHop>,
    /// Gas of the leg's pools.
    pub gas: u64,
}

/// An exact split of one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Total input; equals the order for exact input.
    pub amount_in: U256,
    /// Total output; equals the order for exact output.
    pub amount_out: U256,
    /// Total gas of the legs.
    pub gas: u64,
    /// Gas cost in the bought token's base units (0 without a gas price).
    pub gas_cost: U256,
    /// The legs, one per path used, in the order of the paths given.
    pub legs: Vec<SplitLeg>,
}

/// Candidate paths from `sell` to `buy`: every pool of the pair, then two-hop paths through any
/// other token `h` pairing a `sell/h` pool with an `h/buy` pool of the same venue (when `two_hop`),
/// so one router call executes the path. A pool belongs to
/// at most one path, so the legs of a split never interact: for each hub, the `sell/h` and `h/buy`
/// pools are paired deepest with deepest (depth = liquidity at the current price, in hub units).
/// At most [`MAX_PATHS`] paths.
pub fn candidate_paths(pools: &[PoolEntry], sell: Address, buy: Address, two_hop: bool) -> Vec<Path> {
    let mut paths = Vec::new();
    if sell == buy || pools.is_empty() {
        return paths;
    }
    for (i, p) in pools.iter().enumerate() {
        if p.other(sell) == Some(buy)
            && let Some(z) = p.direction(sell)
        {
            paths.push(Path { first: Hop { pool: i, zero_for_one: z }, second: None });
        }
    }
    if two_hop {
        // ((venue, hub), pool, depth in hub units) of the sell side and the buy side
        type Side = ((u16, Address), usize, f64);
        let mut first: Vec<Side> = Vec::new();
        let mut second: Vec<Side> = Vec::new();
        for (i, p) in pools.iter().enumerate() {
            if !p.pool().supports_two_hop() {
                continue;
            }
            if let Some(h) = p.other(sell).filter(|&h| h != buy) {
                let c = Cursor::init(p, i, p.direction(sell) == Some(true));
                first.push(((p.meta.venue, h), i, c.b));
            }
            if let Some(h) = p.other(buy).filter(|&h| h != sell) {
                let c = Cursor::init(p, i, p.direction(h) == Some(true));
                second.push(((p.meta.venue, h), i, c.a));
            }
        }
        let by_depth = |x: &Side, y: &Side| x.0.cmp(&y.0).then(y.2.total_cmp(&x.2));
        first.sort_by(by_depth);
        second.sort_by(by_depth);
        let mut j = 0;
        let mut i = 0;
        while i < first.len() {
            let hub = first[i].0;
            while j < second.len() && second[j].0 < hub {
                j += 1;
            }
            let mut k = j;
            while i < first.len() && first[i].0 == hub {
                if k < second.len() && second[k].0 == hub {
                    let (a, b) = (first[i].1, second[k].1);
                    if let (Some(za), Some(zb)) = (pools[a].direction(sell), pools[b].direction(hub.1)) {
                        paths.push(Path {
                            first: Hop { pool: a, zero_for_one: za },
                            second: Some(Hop { pool: b, zero_for_one: zb }),
                        });
                    }
                    k += 1;
                }
                i += 1;
            }
        }
    }
    paths.truncate(MAX_PATHS);
    paths
}

// ---------------------------------------------------------------------------------------------
// Float model
// ---------------------------------------------------------------------------------------------

const Q96: f64 = 79_228_162_514_264_337_593_543_950_336.0;

/// One pool in one direction, as the constant-product segment it currently is.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Segment `(x + a)(b − y) = a·b` from the current point; `b == 0` marks an exhausted pool.
    a: f64,
    b: f64,
    /// Gross input until the segment ends (∞ for V2).
    cap: f64,
    gamma: f64,
    /// V3 only: pool index, direction, next tick slot, in-range liquidity, price at the segment end.
    v3: Option<V3Cursor>,
    /// Balancer / Curve only: the venue's float curve and where the cursor stands on it.
    fit: Option<FitCursor>,
}

/// A Balancer or Curve direction walked as constant-product arcs fitted to its float curve: each
/// arc starts at gross input `x` with the curve's marginal rate there and ends at `end` with the
/// curve's marginal rate there (`ab/(a + c)² = m(end)`, `b/a = m(x)`). Arcs are cut where the
/// marginal rate has fallen by [`FIT_DROP`], so the fit's error is second order in it; the exact
/// phase re-quotes every leg.
#[derive(Debug, Clone, Copy)]
struct FitCursor {
    curve: crate::venue::FloatCurve,
    /// Gross input at the end of the current arc.
    end: f64,
    /// Width of the last arc (the next one starts from it).
    step: f64,
    /// Marginal rate at the start of the walk: the walk ends where it has fallen by `FIT_FLOOR`.
    m0: f64,
}

/// Largest relative fall of the marginal rate along one fitted arc.
const FIT_DROP: f64 = 0.004;
/// A fitted curve ends where its marginal rate is this fraction of the rate it started at.
const FIT_FLOOR: f64 = 1e-9;

#[derive(Debug, Clone, Copy)]
struct V3Cursor {
    pool: usize,
    zfo: bool,
    /// Slot of the next tick to cross in the ladder (`None` once past the last).
    next: Option<usize>,
    liq: f64,
    bound: f64,
}

impl Cursor {
    const DEAD: Self = Self { a: 1.0, b: 0.0, cap: 0.0, gamma: 1.0, v3: None, fit: None };

    /// A Balancer / Curve direction: its first fitted arc.
    fn fitted(curve: crate::venue::FloatCurve) -> Self {
        let m0 = curve.marginal(0.0);
        let scale = curve.scale();
        if !(m0 > 0.0 && m0.is_finite() && scale > 0.0 && scale.is_finite()) {
            return Self::DEAD;
        }
        let mut c = Self {
            a: 1.0,
            b: 0.0,
            cap: 0.0,
            gamma: 1.0,
            v3: None,
            fit: Some(FitCursor { curve, end: 0.0, step: scale * 1e-4, m0 }),
        };
        c.fit_next();
        c
    }

    /// Loads the fitted arc that starts where the last one ended.
    fn fit_next(&mut self) {
        let Some(mut f) = self.fit else {
            *self = Self::DEAD;
            return;
        };
        let x0 = f.end;
        let limit = f.curve.cap();
        let m_start = f.curve.marginal(x0);
        if x0 >= limit || m_start.partial_cmp(&(f.m0 * FIT_FLOOR)) != Some(core::cmp::Ordering::Greater) {
            *self = Self::DEAD;
            return;
        }
        let mut c = f.step;
        let mut m_end = 0.0;
        for _ in 0..64 {
            let x1 = (x0 + c).min(limit);
            c = x1 - x0;
            m_end = f.curve.marginal(x1);
            if m_end >= m_start * (1.0 - FIT_DROP) || c <= x0.max(1.0) * 1e-12 {
                break;
            }
            c *= 0.5;
        }
        if c.is_nan() || c <= 0.0 {
            *self = Self::DEAD;
            return;
        }
        f.step = if m_end > m_start * (1.0 - FIT_DROP / 4.0) { c * 2.0 } else { c };
        f.end = x0 + c;
        // b/a = m_start, ab/(a + c)² = m_end  ⇒  a/(a + c) = ρ = √(m_end/m_start)
        let rho = (m_end / m_start).sqrt().clamp(0.0, 1.0 - 1e-12);
        let a = rho * c / (1.0 - rho);
        *self = Self { a, b: m_start * a, cap: c, gamma: 1.0, v3: None, fit: Some(f) };
        if !self.alive() {
            *self = Self::DEAD;
        }
    }

    fn init(entry: &PoolEntry, index: usize, zfo: bool) -> Self {
        let pool = entry.pool();
        let gamma = 1.0 - pool.fee_fraction();
        match pool {
            crate::pool::Pool::Balancer(_) | crate::pool::Pool::Curve(_) => {
                pool.float_curve(zfo).map_or(Self::DEAD, Self::fitted)
            }
            crate::pool::Pool::V2 { reserve0, reserve1, .. } => {
                let (r_in, r_out) = if zfo { (*reserve0, *reserve1) } else { (*reserve1, *reserve0) };
                let (r_in, r_out) = (f64::from(r_in), f64::from(r_out));
                if r_in > 0.0 && r_out > 0.0 && gamma > 0.0 {
                    Self { a: r_in / gamma, b: r_out, cap: f64::INFINITY, gamma, v3: None, fit: None }
                } else {
                    Self::DEAD
                }
            }
            crate::pool::Pool::V3(_) | crate::pool::Pool::V4(_) => {
                let Some(p) = pool.tick_state() else { return Self::DEAD };
                let ladder = entry.ladder();
                let above = ladder.index.partition_point(|&i| i <= p.tick);
                let next =
                    if zfo { above.checked_sub(1) } else { (above < ladder.index.len()).then_some(above) };
                let s = f64::from(p.sqrt_price_x96) / Q96;
                let mut c = Self {
                    a: 1.0,
                    b: 0.0,
                    cap: 0.0,
                    gamma,
                    v3: Some(V3Cursor { pool: index, zfo, next, liq: p.liquidity as f64, bound: 0.0 }),
                    fit: None,
                };
                if gamma > 0.0 && s > 0.0 {
                    c.load(entry, s);
                } else {
                    c = Self::DEAD;
                }
                c
            }
        }
    }

    /// Sets the segment starting at real sqrt price `s` with the cursor's liquidity, crossing
    /// empty or zero-length segments.
    fn load(&mut self, entry: &PoolEntry, mut s: f64) {
        let Some(v) = self.v3.as_mut() else { return };
        let ladder = entry.ladder();
        let mut guard = 0usize;
        loop {
            let (bound, at_tick) = match v.next.map(|i| ladder.sqrt_price.get(i)) {
                Some(Some(&p)) => (p, true),
                Some(None) => {
                    *self = Self::DEAD;
                    return;
                }
                None if v.zfo => (f64::from(MIN_SQRT_RATIO) / Q96, false),
                None => (f64::from(MAX_SQRT_RATIO) / Q96, false),
            };
            let liq = v.liq;
            let room = if v.zfo { s > bound } else { s < bound };
            if liq > 0.0 && room {
                v.bound = bound;
                let g = self.gamma;
                if v.zfo {
                    self.a = liq / s / g;
                    self.b = liq * s;
                    self.cap = liq * (1.0 / bound - 1.0 / s) / g;
                } else {
                    self.a = liq * s / g;
                    self.b = liq / s;
                    self.cap = liq * (bound - s) / g;
                }
                return;
            }
            guard += 1;
            if !at_tick || guard > ladder.index.len() + 1 {
                *self = Self::DEAD;
                return;
            }
            // cross the tick: liquidity_net is added left to right, subtracted right to left
            s = bound;
            let Some((i, &net)) = v.next.and_then(|i| Some((i, ladder.liquidity_net.get(i)?))) else {
                *self = Self::DEAD;
                return;
            };
            v.liq = cross_liquidity(v.liq, net, v.zfo);
            v.next = if v.zfo { i.checked_sub(1) } else { (i + 1 < ladder.index.len()).then_some(i + 1) };
        }
    }

    /// Moves `dx` of input along the current segment (not past its end).
    fn advance(&mut self, dx: f64) {
        let k = self.a * self.b;
        self.a += dx;
        self.b = k / self.a;
        self.cap -= dx;
    }

    /// Moves to the end of the current segment and loads the next one.
    fn cross(&mut self, pools: &[PoolEntry]) {
        match self.v3 {
            Some(v) => {
                let Some(entry) = pools.get(v.pool) else {
                    *self = Self::DEAD;
                    return;
                };
                let Some(i) = v.next else {
                    *self = Self::DEAD;
                    return;
                };
                let ladder = entry.ladder();
                let Some(&net) = ladder.liquidity_net.get(i) else {
                    *self = Self::DEAD;
                    return;
                };
                if let Some(w) = self.v3.as_mut() {
                    w.liq = cross_liquidity(v.liq, net, v.zfo);
                    w.next =
                        if v.zfo { i.checked_sub(1) } else { (i + 1 < ladder.index.len()).then_some(i + 1) };
                }
                self.load(entry, v.bound);
            }
            None if self.fit.is_some() => self.fit_next(),
            None => *self = Self::DEAD,
        }
    }

    fn alive(&self) -> bool {
        self.b > 0.0 && self.a > 0.0 && self.a.is_finite()
    }
}

/// In-range liquidity after crossing a tick with `net` (added left to right, subtracted right to
/// left). A float residue of the cancellation (the exact liquidity is 0, e.g. past the last
/// position) is zeroed, so the path ends there as the exact swap does instead of crawling on at a
/// near-zero rate.
fn cross_liquidity(liq: f64, net: f64, zfo: bool) -> f64 {
    let after = if zfo { liq - net } else { liq + net };
    if after.abs() <= LIQUIDITY_RESIDUE * liq.abs().max(net.abs()) { 0.0 } else { after }
}

/// Water-filling state of one path.
#[derive(Debug, Clone, Copy)]
struct PathState {
    c: [Cursor; 2],
    two: bool,
    /// Composite segment from its start: `(x + a0)(b0 − y) = k`, ending after `cap` of input.
    a0: f64,
    b0: f64,
    k: f64,
    cap: f64,
    /// Whether the second hop (rather than the first) ends the composite segment first.
    second_ends: bool,
    base_x: f64,
    base_y: f64,
    alive: bool,
}

impl PathState {
    fn new(pools: &[PoolEntry], path: &Path) -> Self {
        let c0 = pools
            .get(path.first.pool)
            .map_or(Cursor::DEAD, |p| Cursor::init(p, path.first.pool, path.first.zero_for_one));
        let c1 = match path.second {
            Some(h) => pools.get(h.pool).map_or(Cursor::DEAD, |p| Cursor::init(p, h.pool, h.zero_for_one)),
            None => Cursor::DEAD,
        };
        let mut s = Self {
            c: [c0, c1],
            two: path.second.is_some(),
            a0: 1.0,
            b0: 0.0,
            k: 0.0,
            cap: 0.0,
            second_ends: false,
            base_x: 0.0,
            base_y: 0.0,
            alive: false,
        };
        s.compose();
        s
    }

    fn compose(&mut self) {
        let [c0, c1] = &self.c;
        if !c0.alive() || (self.two && !c1.alive()) {
            self.alive = false;
            return;
        }
        if self.two {
            let d = c0.b + c1.a;
            self.a0 = c0.a * c1.a / d;
            self.b0 = c0.b * c1.b / d;
            let cap2 = if c1.cap < c0.b { c1.cap * c0.a / (c0.b - c1.cap) } else { f64::INFINITY };
            self.second_ends = cap2 < c0.cap;
            self.cap = c0.cap.min(cap2);
        } else {
            self.a0 = c0.a;
            self.b0 = c0.b;
            self.cap = c0.cap;
            self.second_ends = false;
        }
        self.k = self.a0 * self.b0;
        self.alive = self.k > 0.0 && self.k.is_finite();
    }

    /// Consumes the whole composite segment and loads the next.
    fn finish_segment(&mut self, pools: &[PoolEntry]) {
        let dx = self.cap;
        let dy = self.b0 * dx / (self.a0 + dx);
        self.base_x += dx;
        self.base_y += dy;
        if self.two {
            let y1 = self.c[0].b * dx / (self.c[0].a + dx);
            if self.second_ends {
                self.c[0].advance(dx);
                self.c[1].cross(pools);
            } else {
                self.c[0].cross(pools);
                if self.c[1].cap <= y1 * (1.0 + 1e-12) {
                    self.c[1].cross(pools);
                } else {
                    self.c[1].advance(y1);
                }
            }
        } else {
            self.c[0].cross(pools);
        }
        self.compose();
    }
}

// ---------------------------------------------------------------------------------------------
// Curves: each path's amounts as functions of the water level
// ---------------------------------------------------------------------------------------------

/// Where one path stands at water level `u`: it takes `x(u) = s·u + cx` and gives
/// `y(u) = cy − s/u`. A path that does not move at `u` (not started, in a liquidity gap, or at the
/// end of its curve) has `s = 0`, so the two formulas hold everywhere and a sum of pieces stays
/// linear in `u` (input) and in `1/u` (output).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Piece {
    s: f64,
    cx: f64,
    cy: f64,
}

impl Piece {
    fn x(&self, u: f64) -> f64 {
        if self.s == 0.0 { self.cx } else { self.s * u + self.cx }
    }

    fn y(&self, u: f64) -> f64 {
        if self.s == 0.0 { self.cy } else { self.cy - self.s / u }
    }
}

/// One constant-product arc of a path's curve, on the water levels `lo ≤ u < hi`.
///
/// A segment `(x' + a)(b − y') = a·b` entered at `(base_x, base_y)` is at marginal rate
/// `λ = a·b/(a + x')²`, so with `u = 1/√λ`: `x' = √(ab)·u − a`, `y' = b − √(ab)/u`.
#[derive(Debug, Clone, Copy)]
struct Arc {
    lo: f64,
    hi: f64,
    piece: Piece,
    /// The amounts at `hi` (`s = 0`): where the path rests until its next arc starts, or for good
    /// after its last arc.
    end: Piece,
}

/// The candidate paths of one order as curves over the water level `u = 1/√λ`, λ being the
/// common marginal rate (output per input, after fees) of the paths in use.
///
/// Built once per split by walking each path's float model until it alone would fill the order
/// (or runs dry); every subset solve then reads these arcs and never walks a pool again. This is
/// the whole interface the subset search needs from a path, besides its gas: any venue whose
/// output is concave in its input can be given as a run of arcs.
#[derive(Debug)]
struct Curves {
    exact_in: bool,
    /// The order (input for exact in, output for exact out) as a float.
    target: f64,
    arcs: Vec<Arc>,
    /// Per path: its arcs in `arcs`, and whether it alone fills the order.
    span: Vec<(usize, usize, bool)>,
}

/// Iterates the indices of the set bits of `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}

/// What one path contributes at a water level, in the objective's terms.
#[derive(Debug, Clone, Copy)]
struct Contribution {
    /// Objective before gas: output (exact in) or minus input (exact out).
    value: f64,
    /// Surplus over the marginal rate, `max(y − λx)` (exact in) or `max(y/λ − x)` (exact out): what
    /// the path adds over paying the marginal rate for everything it carries. At least 0.
    surplus: f64,
    /// Amount on the order's side: input (exact in) or output (exact out).
    amount: f64,
}

impl Curves {
    fn build(pools: &[PoolEntry], paths: &[Path], target: f64, exact_in: bool) -> Self {
        let mut arcs = Vec::with_capacity(paths.len().saturating_mul(4));
        let mut span = Vec::with_capacity(paths.len());
        for path in paths {
            let start = arcs.len();
            let mut fills = false;
            let mut st = PathState::new(pools, path);
            let mut events = 0usize;
            while st.alive && events < MAX_EVENTS {
                events += 1;
                let s = st.k.sqrt();
                let piece = Piece { s, cx: st.base_x - st.a0, cy: st.base_y + st.b0 };
                let lo = st.a0 / s;
                let mut hi = (st.a0 + st.cap) / s; // ∞ for a segment that never ends
                let side_at_hi = if exact_in { piece.x(hi) } else { piece.y(hi) };
                if side_at_hi >= target {
                    // the order is filled on this arc: end the curve there (unless only in the
                    // limit, e.g. a V2 pool asked for its whole reserve)
                    let at = if exact_in { (target - piece.cx) / s } else { s / (piece.cy - target) };
                    if at.is_finite() {
                        hi = at;
                        fills = true;
                    }
                }
                if !(lo.is_finite() && lo > 0.0 && hi >= lo) {
                    fills = false;
                    break;
                }
                let mut end = Piece { s: 0.0, cx: piece.x(hi), cy: piece.y(hi) };
                if fills {
                    if exact_in {
                        end.cx = target;
                    } else {
                        end.cy = target;
                    }
                }
                arcs.push(Arc { lo, hi, piece, end });
                if fills || !hi.is_finite() {
                    break;
                }
                st.finish_segment(pools);
            }
            span.push((start, arcs.len(), fills));
        }
        Self { exact_in, target, arcs, span }
    }

    fn arcs(&self, i: usize) -> &[Arc] {
        self.span.get(i).and_then(|&(a, b, _)| self.arcs.get(a..b)).unwrap_or(&[])
    }

    /// Water level at which path `i` starts to take input (`1/√spot`); `None` for a dead path.
    fn start(&self, i: usize) -> Option<f64> {
        self.arcs(i).first().map(|a| a.lo)
    }

    /// Path `i`'s piece at level `u`.
    fn piece(&self, i: usize, u: f64) -> Piece {
        let arcs = self.arcs(i);
        let Some(first) = arcs.first() else { return Piece::default() };
        if u <= first.lo {
            return Piece::default();
        }
        let j = arcs.partition_point(|a| a.lo <= u).saturating_sub(1);
        match arcs.get(j) {
            Some(a) if u < a.hi => a.piece,
            Some(a) => a.end,
            None => Piece::default(),
        }
    }

    /// Whether path `i` is at the end of its curve at level `u` without filling the order alone: it
    /// ran dry (a V3 pool past its last liquidity), so it carries all it can.
    fn dry_at(&self, i: usize, u: f64) -> bool {
        let Some(&(_, _, fills)) = self.span.get(i) else { return false };
        !fills && self.arcs(i).last().is_some_and(|a| u >= a.hi)
    }

    /// Input and output of path `i` at level `u`.
    fn amounts(&self, i: usize, u: f64) -> (f64, f64) {
        let p = self.piece(i, u);
        (p.x(u), p.y(u))
    }

    fn contribution(&self, i: usize, u: f64) -> Contribution {
        let (x, y) = self.amounts(i, u);
        let u2 = u * u;
        if self.exact_in {
            Contribution { value: y, surplus: (y - x / u2).max(0.0), amount: x }
        } else {
            Contribution { value: -x, surplus: (y * u2 - x).max(0.0), amount: y }
        }
    }

    /// Path `i` alone: its level and objective before gas, if it can fill the order.
    fn single(&self, i: usize) -> Option<(f64, f64)> {
        let &(_, _, fills) = self.span.get(i)?;
        let last = self.arcs(i).last()?;
        fills.then(|| (last.hi, if self.exact_in { last.end.cy } else { -last.end.cx }))
    }

    /// The water level at which the paths of `mask` together fill the order, without gas; `None`
    /// when they cannot. `warm` (NaN for none) seeds the search.
    ///
    /// The filled amount is continuous, non-decreasing and piecewise linear in `u` (exact input)
    /// or in `1/u` (exact output), so each step solves the pieces current at `u` exactly (a
    /// Newton step that lands on the root once the pieces are right); a step that would leave the
    /// bracket bisects instead.
    fn solve(&self, mask: u64, warm: f64) -> Option<f64> {
        let t = self.target;
        let (mut lo, mut hi, mut cap) = (f64::INFINITY, 0.0f64, 0.0);
        let (mut s0, mut c0) = (0.0, 0.0);
        for i in bits(mask) {
            let arcs = self.arcs(i);
            let (Some(first), Some(last)) = (arcs.first(), arcs.last()) else { continue };
            lo = lo.min(first.lo);
            hi = hi.max(last.hi);
            cap += if self.exact_in { last.end.cx } else { last.end.cy };
            s0 += first.piece.s;
            c0 += if self.exact_in { first.piece.cx } else { first.piece.cy };
        }
        // an arc without end (a V2 pool in exact output) nears its amount but never reaches it
        if !(lo.is_finite() && (cap > t || (cap >= t && hi.is_finite()))) {
            return None;
        }
        // the level is kept inside a bracket whose ends, once evaluated, are not roots; a root on
        // an end not yet evaluated is allowed (one path's curve ends exactly at the order)
        let (mut lo_b, mut hi_b, mut lo_seen, mut hi_seen) = (lo, hi, false, false);
        let inside = |v: f64, lo_b: f64, hi_b: f64, lo_seen: bool, hi_seen: bool| {
            (v > lo_b || (v == lo_b && !lo_seen)) && (v < hi_b || (v == hi_b && !hi_seen))
        };
        let mut u = if inside(warm, lo, hi, false, false) {
            warm
        } else {
            // every path on its first arc: exact for a set of V2 pools
            let g = if self.exact_in { (t - c0) / s0 } else { s0 / (c0 - t) };
            if inside(g, lo, hi, false, false) {
                g
            } else if hi.is_finite() {
                0.5 * (lo + hi)
            } else {
                2.0 * lo
            }
        };
        for _ in 0..MAX_SOLVE_STEPS {
            let (mut s, mut c, mut mag) = (0.0, 0.0, 0.0);
            for i in bits(mask) {
                let p = self.piece(i, u);
                let (ci, si) = if self.exact_in { (p.cx, p.s * u) } else { (p.cy, p.s / u) };
                s += p.s;
                c += ci;
                mag += ci.abs() + si;
            }
            let filled = if self.exact_in { s * u + c } else { c - s / u };
            let err = filled - t;
            if err.abs() <= mag * SOLVE_TOLERANCE {
                return Some(u);
            }
            if err < 0.0 {
                (lo_b, lo_seen) = (u, true);
            } else {
                (hi_b, hi_seen) = (u, true);
            }
            let root = match (s > 0.0, self.exact_in) {
                (false, _) => f64::NAN,
                (true, true) => (t - c) / s,
                (true, false) => s / (c - t),
            };
            let next = if inside(root, lo_b, hi_b, lo_seen, hi_seen) {
                root
            } else if hi_b.is_finite() {
                0.5 * (lo_b + hi_b)
            } else {
                2.0 * u
            };
            // the bracket is down to adjacent floats: as close as the level resolves
            if next <= lo_b && lo_seen || next >= hi_b && hi_seen || !next.is_finite() {
                return Some(u);
            }
            u = next;
        }
        Some(u)
    }
}

// ---------------------------------------------------------------------------------------------
// Subset selection: see `subset`
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Exact phase
// ---------------------------------------------------------------------------------------------

pub(crate) fn f64_to_u256(x: f64) -> U256 {
    if x.is_nan() || x < 1.0 {
        return U256::ZERO;
    }
    if x < 1.7e38 {
        return U256::from(x as u128);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    if exp >= 200 { U256::MAX } else { U256::from(mant) << (exp as usize) }
}

fn pool_err(pool: usize) -> impl Fn(PoolError) -> SplitError {
    move |source| SplitError::Pool { pool, source: Box::new(source) }
}

fn entry(pools: &[PoolEntry], hop: Hop) -> Result<&PoolEntry> {
    pools.get(hop.pool).ok_or(SplitError::BadPath(hop.pool))
}

/// Exact simulation of a path for a leg amount (input for exact in, output for exact out).
fn simulate(pools: &[PoolEntry], path: &Path, amount: U256, exact_in: bool) -> Result<SplitLeg> {
    let p1 = entry(pools, path.first)?;
    let gas = path.gas(pools);
    if exact_in {
        let q1 =
            p1.pool().quote_exact_in(path.first.zero_for_one, amount).map_err(pool_err(path.first.pool))?;
        if q1.amount_in < amount {
            return Err(SplitError::InsufficientLiquidity);
        }
        let (out, second) = match path.second {
            Some(h) => {
                let q2 = entry(pools, h)?
                    .pool()
                    .quote_exact_in(h.zero_for_one, q1.amount_out)
                    .map_err(pool_err(h.pool))?;
                if q2.amount_in < q1.amount_out {
                    return Err(SplitError::InsufficientLiquidity);
                }
                (q2.amount_out, Some(LegHop { hop: h, quote: q2 }))
            }
            None => (q1.amount_out, None),
        };
        Ok(SplitLeg {
            path: *path,
            amount_in: amount,
            amount_out: out,
            first: LegHop { hop: path.first, quote: q1 },
            second,
            gas,
        })
    } else {
        let (mid, second) = match path.second {
            Some(h) => {
                let q2 = entry(pools, h)?
                    .pool()
                    .quote_exact_out(h.zero_for_one, amount)
                    .map_err(pool_err(h.pool))?;
                (q2.amount_in, Some(LegHop { hop: h, quote: q2 }))
            }
            None => (amount, None),
        };
        let q1 =
            p1.pool().quote_exact_out(path.first.zero_for_one, mid).map_err(pool_err(path.first.pool))?;
        Ok(SplitLeg {
            path: *path,
            amount_in: q1.amount_in,
            amount_out: amount,
            first: LegHop { hop: path.first, quote: q1 },
            second,
            gas,
        })
    }
}

/// Marginal rate (output per input, after fees) of a path after its leg, in the float model's
/// terms (V2: `γ·R_in·R_out / (R_in + γ·x)²` from the entry reserves; V3: `γ` × the exact price
/// after), so legs the water-filling balanced compare equal.
fn marginal_after(pools: &[PoolEntry], leg: &SplitLeg) -> f64 {
    let hop_rate = |h: &LegHop| -> f64 {
        let Some(e) = pools.get(h.hop.pool) else { return 0.0 };
        let gamma = 1.0 - e.pool().fee_fraction();
        let zfo = h.hop.zero_for_one;
        match (e.pool(), &h.quote.change) {
            (crate::pool::Pool::V2 { reserve0, reserve1, .. }, _) => {
                let (r_in, r_out) = if zfo { (*reserve0, *reserve1) } else { (*reserve1, *reserve0) };
                let (r_in, r_out) = (f64::from(r_in), f64::from(r_out));
                let d = r_in + gamma * f64::from(h.quote.amount_in);
                gamma * r_in * r_out / (d * d)
            }
            (
                crate::pool::Pool::V3(_) | crate::pool::Pool::V4(_),
                crate::pool::PoolChange::V3Swap { sqrt_price_x96, .. },
            ) => {
                let s = f64::from(*sqrt_price_x96) / Q96;
                gamma * if zfo { s * s } else { 1.0 / (s * s) }
            }
            (p @ (crate::pool::Pool::Balancer(_) | crate::pool::Pool::Curve(_)), _) => {
                p.float_curve(zfo).map_or(0.0, |c| c.marginal(f64::from(h.quote.amount_in)))
            }
            _ => 0.0,
        }
    };
    hop_rate(&leg.first) * leg.second.as_ref().map_or(1.0, hop_rate)
}

/// Gas cost of a path, rounded up, in the unit the objective uses.
fn gas_cost(gas: u64, per_gas: f64) -> U256 {
    if per_gas.is_nan() || per_gas <= 0.0 {
        return U256::ZERO;
    }
    let c = gas as f64 * per_gas;
    if !c.is_finite() {
        return U256::MAX;
    }
    let f = f64_to_u256(c);
    if f64::from(f) < c { f.saturating_add(U256::from(1u8)) } else { f }
}

/// Exact objective of a set of legs: for exact in, `(output, gas cost)` compared as
/// `out − gas`; for exact out, `(input + gas cost)` to minimise. Returned as a pair `(gain, loss)`.
fn better(exact_in: bool, a: (U256, U256), b: (U256, U256)) -> bool {
    // a = (amount, gas), b likewise. exact in: a.0 − a.1 > b.0 − b.1; exact out: a.0 + a.1 < b.0 + b.1
    if exact_in {
        a.0.saturating_add(b.1) > b.0.saturating_add(a.1)
    } else {
        a.0.saturating_add(a.1) < b.0.saturating_add(b.1)
    }
}

#[derive(Debug)]
struct Exact {
    legs: Vec<SplitLeg>,
    /// Total output (exact in) or input (exact out).
    amount: U256,
    /// Gas cost in the objective's unit.
    gas: U256,
}

/// Which of `paths` a [`split`] of `amount` uses, before its exact phase: the result of the subset
/// search alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathChoice {
    /// Bit `i` set: `paths[i]` is used.
    pub used: u64,
    /// Bit `i` set: `paths[i]` is live (it can take some of the order).
    pub live: u64,
    /// The subset's objective after gas in the float model: output (exact input) or minus input
    /// (exact output), in base units.
    pub value: f64,
    /// Subsets solved by the branch and bound (at most `2^live − 1`).
    pub solves: usize,
}

/// The set of paths [`split`] would use for `amount` (its phases 1 and 2: the paths' curves and
/// the best subset after gas), without the exact integer allocation. For diagnostics and for
/// measuring the subset search on its own (`cargo bench -p keel-amm --bench split`).
pub fn choose_paths(
    pools: &[PoolEntry],
    paths: &[Path],
    amount: SwapAmount,
    buy_units_per_gas: f64,
) -> Result<PathChoice> {
    let (paths, exact_in, total) = checked(pools, paths, amount)?;
    let c = choose(pools, paths, total, exact_in, buy_units_per_gas)?;
    Ok(PathChoice { used: c.choice.mask, live: c.live, value: c.choice.value, solves: c.solves })
}

/// Splits one order across `paths` (from [`candidate_paths`]) for the best output after gas
/// (exact input) or the least input after gas (exact output).
///
/// `buy_units_per_gas` is the cost of one gas unit in base units of the bought token
/// ([`GasPrice::buy_units_per_gas`]; 0 ignores gas). For exact output the gas cost is converted into
/// the sold token at the best path's spot rate.
///
/// The set of paths used is the best one of all subsets of the live paths (proved by the bound in
/// the module docs; with more than [`EXHAUSTIVE_PATHS`] live paths, the best one found within
/// [`MAX_SUBSET_SOLVES`] subset solves). The subset search allocates nothing; the curves and the
/// exact phase allocate per-path state. Pools are not modified (each leg's [`Quote`] carries its
/// state change).
pub fn split(
    pools: &[PoolEntry],
    paths: &[Path],
    amount: SwapAmount,
    buy_units_per_gas: f64,
) -> Result<Split> {
    let (paths, exact_in, total) = checked(pools, paths, amount)?;
    let Chosen { curves, choice, per_gas, singles, single_mask, .. } =
        choose(pools, paths, total, exact_in, buy_units_per_gas)?;

    // 3. exact simulation of the chosen split, polished
    let Some(u) = curves.solve(choice.mask, choice.u) else {
        return Err(SplitError::InsufficientLiquidity);
    };
    let amounts: Vec<f64> = (0..paths.len())
        .map(|i| {
            if choice.mask & (1 << i) == 0 {
                return 0.0;
            }
            let (x, y) = curves.amounts(i, u);
            if exact_in { x } else { y }
        })
        .collect();
    let dry = bits(choice.mask).filter(|&i| curves.dry_at(i, u)).fold(0u64, |m, i| m | 1 << i);
    let mut result = exact_from_float(pools, paths, &amounts, dry, total, exact_in, per_gas);
    if let Ok(r) = result.as_mut() {
        polish(pools, r, exact_in);
    }

    // 4. never lose to a simpler allocation: the best single paths, exactly
    let single_of = |i: usize| singles.get(i).copied().unwrap_or(f64::NEG_INFINITY);
    let top = bits(single_mask).map(single_of).fold(f64::NEG_INFINITY, f64::max);
    let clear_win = choice.value - top > top.abs() * FLOAT_MARGIN + 1e6;
    for (i, v) in bits(single_mask).map(|i| (i, single_of(i))) {
        if v < top - top.abs() * 1e-9
            || (choice.mask == 1 << i && result.is_ok())
            || (clear_win && result.is_ok())
        {
            continue;
        }
        let Some(path) = paths.get(i) else { continue };
        let Ok(leg) = simulate(pools, path, total, exact_in) else { continue };
        let cand = Exact {
            amount: if exact_in { leg.amount_out } else { leg.amount_in },
            gas: gas_cost(leg.gas, per_gas),
            legs: vec![leg],
        };
        match &result {
            Ok(r) if !better(exact_in, (cand.amount, cand.gas), (r.amount, r.gas)) => {}
            _ => result = Ok(cand),
        }
    }
    let r = result?;
    let amount_in = r.legs.iter().map(|l| l.amount_in).fold(U256::ZERO, U256::saturating_add);
    let amount_out = r.legs.iter().map(|l| l.amount_out).fold(U256::ZERO, U256::saturating_add);
    let gas = r.legs.iter().map(|l| l.gas).fold(0, u64::saturating_add);
    Ok(Split {
        amount_in,
        amount_out,
        gas,
        gas_cost: gas_cost(gas, buy_units_per_gas.max(0.0)),
        legs: r.legs,
    })
}

/// The order's side and amount, and the paths a split considers (at most [`MAX_PATHS`]), checked.
fn checked<'p>(
    pools: &[PoolEntry],
    paths: &'p [Path],
    amount: SwapAmount,
) -> Result<(&'p [Path], bool, U256)> {
    let (exact_in, total) = match amount {
        SwapAmount::ExactIn(a) => (true, a),
        SwapAmount::ExactOut(a) => (false, a),
    };
    if total.is_zero() {
        return Err(SplitError::ZeroAmount);
    }
    let paths = paths.get(..paths.len().min(MAX_PATHS)).unwrap_or(paths);
    for p in paths {
        for h in p.hops() {
            if h.pool >= pools.len() {
                return Err(SplitError::BadPath(h.pool));
            }
        }
    }
    Ok((paths, exact_in, total))
}

/// Phases 1 and 2 of a split: the paths' curves and the chosen subset.
#[derive(Debug)]
struct Chosen {
    curves: Curves,
    choice: Choice,
    /// Gas cost per gas unit in the objective's unit.
    per_gas: f64,
    /// Per path that fills the order alone: its float objective after gas (see `single_mask`).
    singles: [f64; MAX_PATHS],
    /// The paths that fill the order alone.
    single_mask: u64,
    /// Live paths (they take some input at some level).
    live: u64,
    /// Subset solves of the search.
    solves: usize,
}

fn choose(
    pools: &[PoolEntry],
    paths: &[Path],
    total: U256,
    exact_in: bool,
    buy_units_per_gas: f64,
) -> Result<Chosen> {
    let curves = Curves::build(pools, paths, f64::from(total), exact_in);
    let mut live: u64 = 0;
    let mut best_spot = 0.0f64;
    for i in 0..paths.len() {
        if let Some(u0) = curves.start(i) {
            live |= 1 << i;
            best_spot = best_spot.max(1.0 / (u0 * u0));
        }
    }
    if live == 0 {
        return Err(SplitError::NoRoute);
    }
    // gas in the objective's unit (bought token for exact in, sold token for exact out)
    let per_gas = if buy_units_per_gas > 0.0 && buy_units_per_gas.is_finite() {
        if exact_in { buy_units_per_gas } else { buy_units_per_gas / best_spot }
    } else {
        0.0
    };
    let mut gas = [0.0f64; MAX_PATHS];
    for (g, p) in gas.iter_mut().zip(paths) {
        *g = p.gas(pools) as f64 * per_gas;
    }

    // every single path (also the "simpler allocations" the split checks exactly)
    let mut singles = [f64::NEG_INFINITY; MAX_PATHS];
    let mut single_mask = 0u64;
    let mut seed: Option<Choice> = None;
    for i in bits(live) {
        if let (Some((u, v)), Some(slot)) = (curves.single(i), singles.get_mut(i)) {
            let value = v - gas.get(i).copied().unwrap_or(0.0);
            *slot = value;
            single_mask |= 1 << i;
            if seed.is_none_or(|b| value > b.value) {
                seed = Some(Choice { mask: 1 << i, u, value });
            }
        }
    }

    // the best subset, by branch and bound
    let (Some(choice), solves) = select(&curves, live, gas.get(..paths.len()).unwrap_or(&gas), seed) else {
        return Err(SplitError::InsufficientLiquidity);
    };
    Ok(Chosen { curves, choice, per_gas, singles, single_mask, live, solves })
}

/// Exact capacity of a one-hop path that cannot fill `total` alone: the most input it takes (exact
/// in) or output it gives (exact out) before its price bound. `None` when it can fill `total`, or
/// for a two-hop path.
fn exact_capacity(pools: &[PoolEntry], path: &Path, total: U256, exact_in: bool) -> Option<U256> {
    if path.second.is_some() {
        return None;
    }
    let pool = pools.get(path.first.pool)?.pool();
    let z = path.first.zero_for_one;
    if exact_in {
        let q = pool.quote_exact_in(z, total).ok()?;
        (q.amount_in < total).then_some(q.amount_in)
    } else {
        match pool.quote_exact_out(z, total) {
            Err(PoolError::ShortOutput { delivered, .. }) => Some(delivered),
            _ => None,
        }
    }
}

/// Integer amounts from the float solution `amounts` (input for exact in, output for exact out,
/// per path; summing to `total` once floored and fixed), exactly simulated.
///
/// The paths of `dry` ran dry in the float solution (it gives them all they take): they get their
/// exact capacity when it matches the float one to about 1e-6, so the float model's capacity error
/// (about 1e-11 of a V3 ladder) neither leaves units unplaced nor overfills them. The sum is fixed on the largest other leg. A leg that
/// fails for lack of liquidity is cut to its exact capacity; any other failure merges it into the
/// largest leg.
fn exact_from_float(
    pools: &[PoolEntry],
    paths: &[Path],
    amounts_f: &[f64],
    mut dry: u64,
    total: U256,
    exact_in: bool,
    per_gas: f64,
) -> Result<Exact> {
    let mut amounts: Vec<U256> = amounts_f.iter().map(|&v| f64_to_u256(v)).collect();
    for i in bits(dry) {
        let cap = match (amounts.get(i), paths.get(i)) {
            (Some(a), Some(path)) if !a.is_zero() => exact_capacity(pools, path, total, exact_in),
            _ => None,
        };
        // a correction of the float capacity only (~1e-11): never a tail the float model does not
        // know (liquidity beyond the ticks it walked)
        match (cap, amounts.get_mut(i)) {
            (Some(c), Some(a)) if c.abs_diff(*a) <= *a >> DRY_MATCH_SHIFT => *a = c,
            _ => dry &= !(1 << i),
        }
    }
    let n = amounts.len();
    // each pass cuts a leg to its capacity or drops it, so a few passes end it
    for _ in 0..2 * n + 2 {
        // fix the sum on the largest leg that is not at its capacity (if any)
        let amount_of = |a: &[U256], i: usize| a.get(i).copied().unwrap_or_default();
        let big = (0..n)
            .filter(|&i| dry & (1 << i) == 0 && !amount_of(&amounts, i).is_zero())
            .max_by_key(|&i| amount_of(&amounts, i))
            .or_else(|| (0..n).max_by_key(|&i| amount_of(&amounts, i)));
        let Some(big) = big else { return Err(SplitError::NoRoute) };
        if amount_of(&amounts, big).is_zero() {
            return Err(SplitError::InsufficientLiquidity);
        }
        let sum = amounts.iter().fold(U256::ZERO, |a, &b| a.saturating_add(b));
        if sum < total {
            if let Some(a) = amounts.get_mut(big) {
                *a = a.saturating_add(total.saturating_sub(sum));
            }
        } else {
            let mut excess = sum.saturating_sub(total);
            for j in (big..n).chain(0..big) {
                if let Some(a) = amounts.get_mut(j) {
                    let take = excess.min(*a);
                    *a = a.saturating_sub(take);
                    excess = excess.saturating_sub(take);
                }
            }
        }
        let mut legs = Vec::with_capacity(n);
        let mut failed = None;
        for (i, (&a, path)) in amounts.iter().zip(paths).enumerate() {
            if a.is_zero() {
                continue;
            }
            match simulate(pools, path, a, exact_in) {
                Ok(l) => legs.push(l),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        let Some((i, e)) = failed else {
            let amount = legs
                .iter()
                .map(|l| if exact_in { l.amount_out } else { l.amount_in })
                .fold(U256::ZERO, U256::saturating_add);
            let gas = gas_cost(legs.iter().map(|l| l.gas).fold(0, u64::saturating_add), per_gas);
            return Ok(Exact { legs, amount, gas });
        };
        if amounts.iter().filter(|a| !a.is_zero()).count() <= 1 {
            return Err(e);
        }
        let cap = paths.get(i).and_then(|p| exact_capacity(pools, p, amount_of(&amounts, i), exact_in));
        if let Some(a) = amounts.get_mut(i) {
            match cap {
                // the rest goes to the largest other leg on the next pass
                Some(c) if !c.is_zero() && dry & (1 << i) == 0 => {
                    *a = c;
                    dry |= 1 << i;
                }
                _ => *a = U256::ZERO,
            }
        }
    }
    Err(SplitError::InsufficientLiquidity)
}

/// Moves units between the legs with the highest and lowest post-trade marginal rates while the
/// exact objective improves; a bounded number of exact re-quotes.
fn polish(pools: &[PoolEntry], r: &mut Exact, exact_in: bool) {
    let n = r.legs.len();
    if n < 2 {
        return;
    }
    let side = |l: &SplitLeg| if exact_in { l.amount_in } else { l.amount_out };
    let other = |l: &SplitLeg| if exact_in { l.amount_out } else { l.amount_in };
    let total = r.legs.iter().map(side).fold(U256::ZERO, U256::saturating_add);
    let mut step = (total >> 40usize).max(U256::from(1u8));
    let mut rates: Vec<f64> = r.legs.iter().map(|l| marginal_after(pools, l)).collect();
    for _ in 0..POLISH_ROUNDS {
        // exact in: give to the highest rate, take from the lowest. exact out: the same (a higher
        // out-per-in rate makes the next unit of output cheaper there).
        let (mut hi, mut lo) = (0, 0);
        for (i, &rate) in rates.iter().enumerate() {
            if rates.get(hi).is_some_and(|&h| rate > h) {
                hi = i;
            }
            if rates.get(lo).is_some_and(|&l| rate < l) {
                lo = i;
            }
        }
        let (Some(&r_hi), Some(&r_lo)) = (rates.get(hi), rates.get(lo)) else { return };
        // the float solution equalised the rates to ~1e-12; only a visible gap is worth re-quoting
        if hi == lo
            || r_hi.partial_cmp(&(r_lo * (1.0 + POLISH_MIN_GAP))) != Some(core::cmp::Ordering::Greater)
        {
            return;
        }
        let (Some(leg_lo), Some(leg_hi)) = (r.legs.get(lo), r.legs.get(hi)) else { return };
        let (from, to) = (side(leg_lo), side(leg_hi));
        if from <= step {
            step = from >> 1;
            if step.is_zero() {
                return;
            }
            continue;
        }
        let Some(to_more) = to.checked_add(step) else { return };
        let (Ok(a), Ok(b)) = (
            simulate(pools, &leg_lo.path, from.saturating_sub(step), exact_in),
            simulate(pools, &leg_hi.path, to_more, exact_in),
        ) else {
            step >>= 1;
            if step.is_zero() {
                return;
            }
            continue;
        };
        // the leg set (and so the gas) is unchanged: compare the two legs' amounts only
        let old = other(leg_lo).saturating_add(other(leg_hi));
        let new = other(&a).saturating_add(other(&b));
        if (exact_in && new > old) || (!exact_in && new < old) {
            r.amount = r.amount.saturating_sub(old).saturating_add(new);
            if let Some(x) = rates.get_mut(lo) {
                *x = marginal_after(pools, &a);
            }
            if let Some(x) = rates.get_mut(hi) {
                *x = marginal_after(pools, &b);
            }
            if let Some(l) = r.legs.get_mut(lo) {
                *l = a;
            }
            if let Some(l) = r.legs.get_mut(hi) {
                *l = b;
            }
            step = step.checked_shl(1).unwrap_or(step);
        } else {
            step >>= 1;
            if step.is_zero() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{Pool, PoolMeta};

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    fn v2(id: &str, r0: U256, r1: U256, gas: u64) -> PoolEntry {
        let meta = PoolMeta {
            id: id.into(),
            address: Address::ZERO,
            token0: Address::repeat_byte(1),
            token1: Address::repeat_byte(2),
            gas,
            venue: 0,
        };
        PoolEntry::new(meta, Pool::V2 { reserve0: r0, reserve1: r1, fee_bps: 30 }).unwrap()
    }

    #[test]
    fn two_equal_pools_split_evenly() {
        let pools = [v2("a", e18(100), e18(100), 0), v2("b", e18(100), e18(100), 0)];
        let paths = candidate_paths(&pools, Address::repeat_byte(1), Address::repeat_byte(2), true);
        assert_eq!(paths.len(), 2);
        let s = split(&pools, &paths, SwapAmount::ExactIn(e18(10)), 0.0).unwrap();
        assert_eq!(s.legs.len(), 2);
        assert_eq!(s.amount_in, e18(10));
        // equal up to float precision of the continuous solution (1e-12 relative)
        let d = s.legs[0].amount_in.abs_diff(s.legs[1].amount_in);
        assert!(d <= e18(10) / U256::from(10u64.pow(12)), "{d}");
        let single = pools[0].pool().quote_exact_in(true, e18(10)).unwrap().amount_out;
        assert!(s.amount_out > single);
    }

    #[test]
    fn gas_drops_small_legs() {
        // a deep pool and a shallow one: the shallow leg does not pay for its gas
        let pools = [v2("a", e18(1000), e18(1000), 100_000), v2("b", e18(1), e18(1), 100_000)];
        let paths = candidate_paths(&pools, Address::repeat_byte(1), Address::repeat_byte(2), true);
        let per_gas = 1e10; // 1e15 units of output per 100k gas
        let s = split(&pools, &paths, SwapAmount::ExactIn(e18(1)), per_gas).unwrap();
        assert_eq!(s.legs.len(), 1);
        assert_eq!(s.legs[0].path.first.pool, 0);
        let s0 = split(&pools, &paths, SwapAmount::ExactIn(e18(1)), 0.0).unwrap();
        assert_eq!(s0.legs.len(), 2);
    }

    #[test]
    fn exact_out_delivers_exactly() {
        let pools = [v2("a", e18(100), e18(200), 0), v2("b", e18(50), e18(90), 0)];
        let paths = candidate_paths(&pools, Address::repeat_byte(2), Address::repeat_byte(1), true);
        let s = split(&pools, &paths, SwapAmount::ExactOut(e18(7)), 0.0).unwrap();
        assert_eq!(s.amount_out, e18(7));
        assert_eq!(s.legs.len(), 2);
        let single = pools[0].pool().quote_exact_out(false, e18(7)).unwrap().amount_in;
        assert!(s.amount_in <= single);
    }

    #[test]
    fn rejects_bad_orders() {
        let pools = [v2("a", e18(100), e18(100), 0)];
        let paths = candidate_paths(&pools, Address::repeat_byte(1), Address::repeat_byte(2), true);
        assert_eq!(split(&pools, &paths, SwapAmount::ExactIn(U256::ZERO), 0.0), Err(SplitError::ZeroAmount));
        assert_eq!(
            split(&pools, &paths, SwapAmount::ExactOut(e18(100)), 0.0),
            Err(SplitError::InsufficientLiquidity)
        );
        assert_eq!(split(&pools, &[], SwapAmount::ExactIn(e18(1)), 0.0), Err(SplitError::NoRoute));
        let bad = [Path { first: Hop { pool: 9, zero_for_one: true }, second: None }];
        assert_eq!(split(&pools, &bad, SwapAmount::ExactIn(e18(1)), 0.0), Err(SplitError::BadPath(9)));
    }

    fn v3_entry(zfo_ticks: &[(i32, i32, u128)]) -> PoolEntry {
        use crate::v3::{TickInfo, V3Pool, tick_math::get_sqrt_ratio_at_tick};
        let mut ticks: Vec<TickInfo> = Vec::new();
        let mut liquidity = 0u128;
        for &(lo, hi, l) in zfo_ticks {
            for (t, d) in [(lo, l as i128), (hi, -(l as i128))] {
                match ticks.iter_mut().find(|x| x.index == t) {
                    Some(x) => x.liquidity_net += d,
                    None => ticks.push(TickInfo { index: t, liquidity_net: d }),
                }
            }
            if lo <= 0 && 0 < hi {
                liquidity += l;
            }
        }
        let pool = V3Pool::new(3000, 10, get_sqrt_ratio_at_tick(0).unwrap(), 0, liquidity, &ticks).unwrap();
        let meta = PoolMeta {
            id: "v3".into(),
            address: Address::ZERO,
            token0: Address::repeat_byte(1),
            token1: Address::repeat_byte(2),
            gas: 0,
            venue: 0,
        };
        PoolEntry::new(meta, Pool::V3(pool)).unwrap()
    }

    /// The float model walks V3 ticks (including a liquidity gap) like the exact swap does.
    #[test]
    fn float_model_tracks_exact_v3_across_ticks() {
        let positions: Vec<(i32, i32, u128)> =
            (1..60).map(|k| (-k * 10, k * 10, 10u128.pow(20) * (k as u128 % 7 + 1))).collect();
        let mut gapped = positions.clone();
        gapped.push((-2000, -1500, 10u128.pow(23)));
        gapped.push((1500, 2000, 10u128.pow(23)));
        for pos in [positions, gapped] {
            let pools = [v3_entry(&pos)];
            for zfo in [true, false] {
                let (s, b) = if zfo { (1, 2) } else { (2, 1) };
                let paths = candidate_paths(&pools, Address::repeat_byte(s), Address::repeat_byte(b), false);
                for amount in [e18(1), e18(100), e18(1_000), e18(5_000)] {
                    let exact = pools[0].pool().quote_exact_in(zfo, amount).unwrap();
                    if exact.amount_in < amount {
                        continue;
                    }
                    let curves = Curves::build(&pools, &paths, f64::from(amount), true);
                    let u = curves.solve(1, f64::NAN).unwrap();
                    let (got, want) = (curves.amounts(0, u).1, f64::from(exact.amount_out));
                    assert!((got - want).abs() / want < 1e-9, "{zfo} {amount}: {got} vs {want}");
                    let curves = Curves::build(&pools, &paths, want, false);
                    let u = curves.solve(1, f64::NAN).unwrap();
                    assert!((curves.amounts(0, u).0 - f64::from(amount)).abs() / f64::from(amount) < 1e-9);
                }
            }
        }
    }

    /// A two-hop path's composed segments match the exact hop-by-hop output.
    #[test]
    fn float_model_composes_two_hops() {
        let h = Address::repeat_byte(3);
        let mk = |t0: u8, t1: Address, r0: U256, r1: U256| {
            let meta = PoolMeta {
                id: "x".into(),
                address: Address::ZERO,
                token0: Address::repeat_byte(t0),
                token1: t1,
                gas: 0,
                venue: 0,
            };
            PoolEntry::new(meta, Pool::V2 { reserve0: r0, reserve1: r1, fee_bps: 30 }).unwrap()
        };
        let pools = [mk(1, h, e18(1000), e18(2000)), mk(2, h, e18(500), e18(3000))];
        let paths = candidate_paths(&pools, Address::repeat_byte(1), Address::repeat_byte(2), true);
        assert_eq!(paths.len(), 1);
        let curves = Curves::build(&pools, &paths, 1e20, true);
        let u = curves.solve(1, f64::NAN).unwrap();
        let q1 = pools[0].pool().quote_exact_in(true, e18(100)).unwrap();
        let q2 = pools[1].pool().quote_exact_in(false, q1.amount_out).unwrap();
        let want = f64::from(q2.amount_out);
        let got = curves.amounts(0, u).1;
        assert!((got - want).abs() / want < 1e-12);
    }

    /// Random V2 pools of one pair: depths over four orders of magnitude, mids within ±0.5%,
    /// fees of 5–100 bps, gas 60k–200k; and an order with gas costing 1e-6–1e-2 of it.
    pub(super) fn random_v2_set(seed: u64, n: usize) -> (Vec<PoolEntry>, f64, f64) {
        let mut x = seed | 1;
        let mut unit = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut pools = Vec::with_capacity(n);
        let mut depths = Vec::with_capacity(n);
        for i in 0..n {
            let depth = 1e20 * 1e4f64.powf(unit());
            let price = 1.0 + (unit() - 0.5) * 0.01;
            let fee = [5, 30, 30, 100][(unit() * 4.0) as usize];
            let gas = 60_000 + (unit() * 140_000.0) as u64;
            let mut e =
                v2(&format!("p{i}"), U256::from(depth as u128), U256::from((depth * price) as u128), gas);
            e.set_pool(Pool::V2 {
                reserve0: U256::from(depth as u128),
                reserve1: U256::from((depth * price) as u128),
                fee_bps: fee,
            });
            pools.push(e);
            depths.push(depth);
        }
        depths.sort_by(f64::total_cmp);
        let order = depths[n / 2] * 1e-4 * 5e3f64.powf(unit());
        let per_gas = order * 1e-6 * 1e4f64.powf(unit()) / 130_000.0;
        (pools, order, per_gas)
    }

    #[test]
    fn f64_conversion_floors() {
        assert_eq!(f64_to_u256(0.9), U256::ZERO);
        assert_eq!(f64_to_u256(f64::NAN), U256::ZERO);
        assert_eq!(f64_to_u256(12.7), U256::from(12u8));
        assert_eq!(f64_to_u256(2f64.powi(150)), U256::from(1u8) << 150);
        assert_eq!(f64_to_u256(f64::INFINITY), U256::MAX);
    }
}
