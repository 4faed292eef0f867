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
//! # Algorithm
//! 1. **Water-filling** (floats): lower a common marginal rate λ from the best path's spot rate,
//!    event by event (a path enters when λ reaches its spot rate; a segment ends at a tick), each
//!    active path at `x(λ) = √(ab/λ) − a` — within a set of segments the total input (or output) is
//!    closed-form in `1/√λ` (`√λ`), so the final λ is solved exactly, not bisected. Cost is
//!    `O(paths × (paths + ticks crossed))`, with no allocation beyond per-path state.
//! 2. **Gas**: each path used costs its pools' gas × gas price, in output-token units (exact input)
//!    or input-token units at the best spot rate (exact output). With at most
//!    [`EXHAUSTIVE_PATHS`] paths every subset is solved; otherwise the leg with the worst
//!    `gas − surplus` (surplus = `y − λx`, what the leg adds over the marginal rate) is dropped while
//!    that improves the net. Every single path is also solved.
//! 3. **Exact**: the float amounts are floored to integers (the remainder goes to the largest leg, so
//!    leg inputs — or outputs for exact output — sum to the order exactly) and every leg is
//!    re-simulated with the pools' integer math. A bounded **polish** moves units between the legs
//!    with the highest and lowest post-trade marginal rates while the exact net improves, and the
//!    result is compared exactly with the best single paths, so rounding never loses to a simpler
//!    allocation.
//!
//! Paths never share a pool (see [`candidate_paths`]), so legs are independent and their quotes are
//! each against the entry state.

use alloy_primitives::{Address, U256};

use crate::pool::{PoolEntry, PoolError, Quote};
use crate::v3::{MAX_SQRT_RATIO, MIN_SQRT_RATIO};

pub use crate::pool::SwapAmount;

/// Most candidate paths one split considers (direct pools first, then two-hop paths).
pub const MAX_PATHS: usize = 64;
/// Up to this many live paths, the gas decision solves every subset of paths.
pub const EXHAUSTIVE_PATHS: usize = 4;
/// Rounds of the integer polish.
pub const POLISH_ROUNDS: u32 = 6;
/// Smallest relative gap between the legs' post-trade marginal rates that the polish acts on.
pub const POLISH_MIN_GAP: f64 = 1e-9;
/// The float model tracks the exact math to about 1e-12 relative; a split whose float objective
/// beats every single path by more than this (relative) margin is not re-checked exactly.
const FLOAT_MARGIN: f64 = 1e-8;
/// Safety bound on water-filling events per solve (ticks crossed + paths entering).
const MAX_EVENTS: usize = 1 << 16;

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
}

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
    const DEAD: Self = Self { a: 1.0, b: 0.0, cap: 0.0, gamma: 1.0, v3: None };

    fn init(entry: &PoolEntry, index: usize, zfo: bool) -> Self {
        let pool = entry.pool();
        let gamma = 1.0 - pool.fee_fraction();
        match pool {
            crate::pool::Pool::V2 { reserve0, reserve1, .. } => {
                let (r_in, r_out) = if zfo { (*reserve0, *reserve1) } else { (*reserve1, *reserve0) };
                let (r_in, r_out) = (f64::from(r_in), f64::from(r_out));
                if r_in > 0.0 && r_out > 0.0 && gamma > 0.0 {
                    Self { a: r_in / gamma, b: r_out, cap: f64::INFINITY, gamma, v3: None }
                } else {
                    Self::DEAD
                }
            }
            crate::pool::Pool::V3(p) => {
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
            let (bound, at_tick) = match v.next {
                Some(i) => (ladder.sqrt_price[i], true),
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
            let Some(i) = v.next else { return };
            let net = ladder.liquidity_net[i];
            v.liq = if v.zfo { v.liq - net } else { v.liq + net };
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
                let net = ladder.liquidity_net[i];
                if let Some(w) = self.v3.as_mut() {
                    w.liq = if v.zfo { v.liq - net } else { v.liq + net };
                    w.next =
                        if v.zfo { i.checked_sub(1) } else { (i + 1 < ladder.index.len()).then_some(i + 1) };
                }
                self.load(entry, v.bound);
            }
            None => *self = Self::DEAD,
        }
    }

    fn alive(&self) -> bool {
        self.b > 0.0 && self.a > 0.0 && self.a.is_finite()
    }
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
    active: bool,
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
            active: false,
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

    fn start_rate(&self) -> f64 {
        if self.alive { self.b0 / self.a0 } else { 0.0 }
    }

    fn end_rate(&self) -> f64 {
        let e = self.a0 + self.cap;
        if self.alive && e.is_finite() { self.k / (e * e) } else { 0.0 }
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
        self.active = false;
        self.compose();
    }

    /// Input and output of the path at rate `lambda` (the path sits at its segment start when
    /// inactive).
    fn at(&self, lambda: f64) -> (f64, f64) {
        if !self.active {
            return (self.base_x, self.base_y);
        }
        let dx = ((self.k / lambda).sqrt() - self.a0).clamp(0.0, self.cap);
        (self.base_x + dx, self.base_y + self.b0 * dx / (self.a0 + dx))
    }
}

/// Float solution: per-path input and output, and the common marginal rate.
#[derive(Debug, Clone, Copy, Default)]
struct Fill {
    lambda: f64,
}

/// Scratch of one split call: sized by the number of paths only.
struct Solver<'a> {
    pools: &'a [PoolEntry],
    paths: &'a [Path],
    states: Vec<PathState>,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl<'a> Solver<'a> {
    fn new(pools: &'a [PoolEntry], paths: &'a [Path]) -> Self {
        let n = paths.len();
        Self { pools, paths, states: Vec::with_capacity(n), x: vec![0.0; n], y: vec![0.0; n] }
    }

    /// Water-fills `target` (input for exact in, output for exact out) over the paths in `mask`;
    /// leaves per-path amounts in `self.x` / `self.y`. `None` when the paths cannot fill it.
    fn solve(&mut self, mask: u64, target: f64, exact_in: bool) -> Option<Fill> {
        self.states.clear();
        for (i, p) in self.paths.iter().enumerate() {
            let mut s = PathState::new(self.pools, p);
            if mask & (1 << i) == 0 {
                s.alive = false;
            }
            self.states.push(s);
        }
        let mut lambda = self.states.iter().map(PathState::start_rate).fold(0.0, f64::max);
        if lambda <= 0.0 {
            return None;
        }
        let mut events = 0usize;
        let result = loop {
            events += 1;
            if events > MAX_EVENTS {
                return None;
            }
            let (mut sum_sqrt_k, mut base, mut sum_a, mut sum_b) = (0.0, 0.0, 0.0, 0.0);
            let mut next = 0.0f64;
            for s in self.states.iter_mut() {
                base += if exact_in { s.base_x } else { s.base_y };
                if !s.alive {
                    continue;
                }
                if !s.active && s.start_rate() >= lambda {
                    s.active = true;
                }
                if s.active {
                    sum_sqrt_k += s.k.sqrt();
                    sum_a += s.a0;
                    sum_b += s.b0;
                    next = next.max(s.end_rate());
                } else {
                    next = next.max(s.start_rate());
                }
            }
            let filled_at = |l: f64| {
                if exact_in {
                    base + sum_sqrt_k / l.sqrt() - sum_a
                } else {
                    base + sum_b - sum_sqrt_k * l.sqrt()
                }
            };
            if next <= 0.0 || filled_at(next) >= target {
                if sum_sqrt_k <= 0.0 {
                    return None;
                }
                let l = if exact_in {
                    let d = target - base + sum_a;
                    (sum_sqrt_k / d).powi(2)
                } else {
                    let d = base + sum_b - target;
                    if d <= 0.0 {
                        return None;
                    }
                    (d / sum_sqrt_k).powi(2)
                };
                if !(l.is_finite() && l > 0.0) {
                    return None;
                }
                break l.min(lambda);
            }
            lambda = next;
            for s in self.states.iter_mut() {
                if s.active && s.end_rate() >= lambda {
                    s.finish_segment(self.pools);
                }
            }
        };
        for (i, s) in self.states.iter().enumerate() {
            let (x, y) = s.at(result);
            self.x[i] = x;
            self.y[i] = y;
        }
        Some(Fill { lambda: result })
    }
}

// ---------------------------------------------------------------------------------------------
// Exact phase
// ---------------------------------------------------------------------------------------------

fn f64_to_u256(x: f64) -> U256 {
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
            (crate::pool::Pool::V3(_), crate::pool::PoolChange::V3Swap { sqrt_price_x96, .. }) => {
                let s = f64::from(*sqrt_price_x96) / Q96;
                gamma * if zfo { s * s } else { 1.0 / (s * s) }
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

struct Exact {
    legs: Vec<SplitLeg>,
    /// Total output (exact in) or input (exact out).
    amount: U256,
    /// Gas cost in the objective's unit.
    gas: U256,
}

/// Splits one order across `paths` (from [`candidate_paths`]) for the best output after gas
/// (exact input) or the least input after gas (exact output).
///
/// `buy_units_per_gas` is the cost of one gas unit in base units of the bought token
/// ([`GasPrice::buy_units_per_gas`]; 0 ignores gas). For exact output the gas cost is converted into
/// the sold token at the best path's spot rate.
///
/// Allocates only per-path state; pools are not modified (each leg's [`Quote`] carries its state
/// change).
pub fn split(
    pools: &[PoolEntry],
    paths: &[Path],
    amount: SwapAmount,
    buy_units_per_gas: f64,
) -> Result<Split> {
    let (exact_in, total) = match amount {
        SwapAmount::ExactIn(a) => (true, a),
        SwapAmount::ExactOut(a) => (false, a),
    };
    if total.is_zero() {
        return Err(SplitError::ZeroAmount);
    }
    let paths = &paths[..paths.len().min(MAX_PATHS)];
    for p in paths {
        for h in p.hops() {
            if h.pool >= pools.len() {
                return Err(SplitError::BadPath(h.pool));
            }
        }
    }
    let mut solver = Solver::new(pools, paths);
    let n = paths.len();
    let mut live: u64 = 0;
    let mut best_spot = 0.0f64;
    for (i, p) in paths.iter().enumerate() {
        let r = PathState::new(pools, p).start_rate();
        if r > 0.0 {
            live |= 1 << i;
            best_spot = best_spot.max(r);
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
    let gas_f: Vec<f64> = paths.iter().map(|p| p.gas(pools) as f64 * per_gas).collect();
    let target = f64::from(total);

    // float objective of the current solver amounts: higher is better
    let score = |s: &Solver<'_>| -> f64 {
        let mut v = 0.0;
        for ((&x, &y), &g) in s.x.iter().zip(&s.y).zip(&gas_f) {
            if x >= 1.0 {
                v += if exact_in { y } else { -x } - g;
            }
        }
        v
    };
    let mut best: Option<(u64, f64)> = None;
    let consider =
        |mask: u64, solver: &mut Solver<'_>, best: &mut Option<(u64, f64)>| -> Option<(f64, f64)> {
            let fill = solver.solve(mask, target, exact_in)?;
            let v = score(solver);
            if best.is_none_or(|(_, b)| v > b) {
                *best = Some((mask, v));
            }
            Some((v, fill.lambda))
        };

    // 1. every single path (also the "simpler allocations" checked exactly below)
    let mut singles: Vec<(usize, f64)> = Vec::with_capacity(n);
    for i in 0..n {
        if live & (1 << i) != 0
            && let Some((v, _)) = consider(1 << i, &mut solver, &mut best)
        {
            singles.push((i, v));
        }
    }

    // 2. best subset: all of them when few, else drop the worst leg while it pays
    let live_count = live.count_ones() as usize;
    if live_count > 1 && per_gas > 0.0 && live_count <= EXHAUSTIVE_PATHS {
        let mut sub = live;
        while sub != 0 {
            if sub.count_ones() > 1 {
                consider(sub, &mut solver, &mut best);
            }
            sub = (sub - 1) & live;
        }
    } else if live_count > 1 {
        let mut mask = live;
        let mut state = consider(mask, &mut solver, &mut best);
        while let Some((current, lambda)) = state.filter(|_| per_gas > 0.0) {
            // worst leg: gas minus its surplus over the marginal rate
            let mut worst: Option<(usize, f64)> = None;
            for (i, ((&x, &y), &g)) in solver.x.iter().zip(&solver.y).zip(&gas_f).enumerate() {
                if mask & (1 << i) == 0 || x < 1.0 {
                    continue;
                }
                let surplus = if exact_in { y - lambda * x } else { y / lambda - x };
                let s = g - surplus;
                if worst.is_none_or(|(_, w)| s > w) {
                    worst = Some((i, s));
                }
            }
            let Some((i, s)) = worst else { break };
            let rest = mask & !(1 << i);
            if s <= 0.0 || rest.count_ones() < 2 {
                break;
            }
            match consider(rest, &mut solver, &mut best) {
                Some((v, l)) if v > current => {
                    state = Some((v, l));
                    mask = rest;
                }
                _ => break,
            }
        }
    }
    let Some((mask, _)) = best else { return Err(SplitError::InsufficientLiquidity) };

    // 3. exact simulation of the chosen split, polished
    if solver.solve(mask, target, exact_in).is_none() {
        return Err(SplitError::InsufficientLiquidity);
    }
    let mut result = exact_from_float(pools, paths, &solver, total, exact_in, per_gas);
    if let Ok(r) = result.as_mut() {
        polish(pools, r, exact_in);
    }

    // 4. never lose to a simpler allocation: the best single paths, exactly
    let top = singles.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    let chosen = best.map_or(f64::NEG_INFINITY, |b| b.1);
    let clear_win = chosen - top > top.abs() * FLOAT_MARGIN + 1e6;
    for &(i, v) in &singles {
        if v < top - top.abs() * 1e-9 || (mask == 1 << i && result.is_ok()) || (clear_win && result.is_ok()) {
            continue;
        }
        let Ok(leg) = simulate(pools, &paths[i], total, exact_in) else { continue };
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

/// Integer amounts from the float solution (summing to `total`), exactly simulated. A leg that
/// fails is merged into the largest one.
fn exact_from_float(
    pools: &[PoolEntry],
    paths: &[Path],
    solver: &Solver<'_>,
    total: U256,
    exact_in: bool,
    per_gas: f64,
) -> Result<Exact> {
    let n = paths.len();
    let amounts_f = if exact_in { &solver.x } else { &solver.y };
    let mut amounts: Vec<U256> = amounts_f.iter().map(|&v| f64_to_u256(v)).collect();
    loop {
        // fix the sum on the largest leg
        let Some(big) = (0..n).max_by_key(|&i| amounts[i]) else { return Err(SplitError::NoRoute) };
        if amounts[big].is_zero() {
            return Err(SplitError::InsufficientLiquidity);
        }
        let sum = amounts.iter().fold(U256::ZERO, |a, &b| a.saturating_add(b));
        if sum < total {
            amounts[big] += total - sum;
        } else {
            let mut excess = sum - total;
            for i in 0..n {
                let j = (big + i) % n;
                let take = excess.min(amounts[j]);
                amounts[j] -= take;
                excess -= take;
            }
        }
        let mut legs = Vec::with_capacity(n);
        let mut failed = None;
        for i in 0..n {
            if amounts[i].is_zero() {
                continue;
            }
            match simulate(pools, &paths[i], amounts[i], exact_in) {
                Ok(l) => legs.push(l),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        match failed {
            None => {
                let amount = legs
                    .iter()
                    .map(|l| if exact_in { l.amount_out } else { l.amount_in })
                    .fold(U256::ZERO, U256::saturating_add);
                let gas = gas_cost(legs.iter().map(|l| l.gas).fold(0, u64::saturating_add), per_gas);
                return Ok(Exact { legs, amount, gas });
            }
            Some((i, e)) => {
                if amounts.iter().filter(|a| !a.is_zero()).count() <= 1 {
                    return Err(e);
                }
                amounts[i] = U256::ZERO; // its amount goes to the largest leg on the next pass
            }
        }
    }
}

/// Moves units between the legs with the highest and lowest post-trade marginal rates while the
/// exact objective improves; a bounded number of exact re-quotes.
fn polish(pools: &[PoolEntry], r: &mut Exact, exact_in: bool) {
    let n = r.legs.len();
    if n < 2 {
        return;
    }
    let total = r
        .legs
        .iter()
        .map(|l| if exact_in { l.amount_in } else { l.amount_out })
        .fold(U256::ZERO, U256::saturating_add);
    let mut step = (total >> 40usize).max(U256::from(1u8));
    let mut rates: Vec<f64> = r.legs.iter().map(|l| marginal_after(pools, l)).collect();
    for _ in 0..POLISH_ROUNDS {
        // exact in: give to the highest rate, take from the lowest. exact out: the same (a higher
        // out-per-in rate makes the next unit of output cheaper there).
        let (mut hi, mut lo) = (0, 0);
        for i in 1..n {
            if rates[i] > rates[hi] {
                hi = i;
            }
            if rates[i] < rates[lo] {
                lo = i;
            }
        }
        // the float solution equalised the rates to ~1e-12; only a visible gap is worth re-quoting
        if hi == lo
            || rates[hi].partial_cmp(&(rates[lo] * (1.0 + POLISH_MIN_GAP)))
                != Some(core::cmp::Ordering::Greater)
        {
            return;
        }
        let from = if exact_in { r.legs[lo].amount_in } else { r.legs[lo].amount_out };
        let to = if exact_in { r.legs[hi].amount_in } else { r.legs[hi].amount_out };
        if from <= step {
            step = from >> 1;
            if step.is_zero() {
                return;
            }
            continue;
        }
        let (Ok(a), Ok(b)) = (
            simulate(pools, &r.legs[lo].path, from - step, exact_in),
            simulate(pools, &r.legs[hi].path, to + step, exact_in),
        ) else {
            step >>= 1;
            if step.is_zero() {
                return;
            }
            continue;
        };
        // the leg set (and so the gas) is unchanged: compare the two legs' amounts only
        let (old, new) = if exact_in {
            (r.legs[lo].amount_out + r.legs[hi].amount_out, a.amount_out + b.amount_out)
        } else {
            (r.legs[lo].amount_in + r.legs[hi].amount_in, a.amount_in + b.amount_in)
        };
        if (exact_in && new > old) || (!exact_in && new < old) {
            r.amount = r.amount - old + new;
            rates[lo] = marginal_after(pools, &a);
            rates[hi] = marginal_after(pools, &b);
            r.legs[lo] = a;
            r.legs[hi] = b;
            step <<= 1;
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
                let mut solver = Solver::new(&pools, &paths);
                for amount in [e18(1), e18(100), e18(1_000), e18(5_000)] {
                    let exact = pools[0].pool().quote_exact_in(zfo, amount).unwrap();
                    if exact.amount_in < amount {
                        continue;
                    }
                    solver.solve(1, f64::from(amount), true).unwrap();
                    let (got, want) = (solver.y[0], f64::from(exact.amount_out));
                    assert!((got - want).abs() / want < 1e-9, "{zfo} {amount}: {got} vs {want}");
                    solver.solve(1, want, false).unwrap();
                    assert!((solver.x[0] - f64::from(amount)).abs() / f64::from(amount) < 1e-9);
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
        let mut solver = Solver::new(&pools, &paths);
        solver.solve(1, 1e20, true).unwrap();
        let q1 = pools[0].pool().quote_exact_in(true, e18(100)).unwrap();
        let q2 = pools[1].pool().quote_exact_in(false, q1.amount_out).unwrap();
        let want = f64::from(q2.amount_out);
        assert!((solver.y[0] - want).abs() / want < 1e-12);
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
