//! Kill switches that watch the chain (`[safety.watch]`): each engages the kill switch with a
//! reason of its own when what it watches goes wrong, and a person resumes explicitly
//! (`POST /resume`). They run on their own task, off the hot path, from what the other stages
//! already publish: the router's view of each head ([`HeadView`]: base fee, pool prices and
//! liquidity, oracle-guard refusals), the engine's exchange prices and its outcome counters.
//!
//! * `depeg`: a stablecoin's price — from the exchange, and from every pool that pairs it with a
//!   priced token — departs its peg by more than `max_deviation`;
//! * `liquidity`: a pool's liquidity falls by more than `max_drop` (a fraction) below its highest
//!   level of the last `blocks` heads;
//! * `landing`: fewer than `min_rate` of the last `last` settled rebalances landed;
//! * `oracle`: the oracle guard refused the same pool at `blocks` consecutive heads;
//! * `base_fee`: the base fee stayed above `max_gwei` for `blocks` consecutive heads.
//!
//! A watch that trips forgets what it saw, so after a resume it needs fresh evidence to trip again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_router::head_view::HeadView;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Snapshot;
use crate::safety::{KillSource, KillSwitch};

/// How often the watch task looks at new heads and counters.
pub const WATCH_POLL: Duration = Duration::from_millis(50);
/// Largest `blocks` or `last` of any watch.
pub const MAX_WATCH_WINDOW: u64 = 10_000;

/// `[safety.watch]`: which chain watches run, and their bounds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    /// `[[safety.watch.depeg]]`, one per stablecoin.
    #[serde(default)]
    pub depeg: Vec<DepegSpec>,
    /// `[safety.watch.liquidity]`.
    #[serde(default)]
    pub liquidity: Option<LiquiditySpec>,
    /// `[safety.watch.landing]`.
    #[serde(default)]
    pub landing: Option<LandingSpec>,
    /// `[safety.watch.oracle]`.
    #[serde(default)]
    pub oracle: Option<OracleSpec>,
    /// `[safety.watch.base_fee]`.
    #[serde(default)]
    pub base_fee: Option<BaseFeeSpec>,
}

/// A stablecoin and its peg.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepegSpec {
    /// The token's symbol (as in `[[tokens]]`).
    pub token: String,
    /// Its peg in the numeraire (default 1.0).
    #[serde(default = "one")]
    pub peg: f64,
    /// Largest tolerated |price / peg − 1|, in (0, 0.5].
    pub max_deviation: f64,
}

fn one() -> f64 {
    1.0
}

/// Pool liquidity falling fast.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiquiditySpec {
    /// Largest tolerated fall below the window's highest level, in (0, 1).
    pub max_drop: f64,
    /// The window, in heads.
    pub blocks: u64,
}

/// Bundles that stop landing.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandingSpec {
    /// How many of the latest settled rebalances (landed or expired) to look at.
    pub last: u64,
    /// Smallest tolerated landed fraction of them, in (0, 1].
    pub min_rate: f64,
}

/// The oracle guard refusing one pool again and again.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleSpec {
    /// Consecutive heads with a refusal of the same pool.
    pub blocks: u64,
}

/// A base fee that stays high.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseFeeSpec {
    /// Cap, gwei.
    pub max_gwei: f64,
    /// Consecutive heads above it.
    pub blocks: u64,
}

/// A `[safety.watch]` value out of range: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("safety.watch.{field}: {problem}")]
pub struct WatchConfigError {
    /// Dotted field under `safety.watch`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> WatchConfigError {
    WatchConfigError { field: field.into(), problem: problem.into() }
}

fn check_range(
    field: &str,
    v: f64,
    lo_excl: f64,
    hi: f64,
    hi_inclusive: bool,
) -> Result<(), WatchConfigError> {
    let ok = v.is_finite() && v > lo_excl && if hi_inclusive { v <= hi } else { v < hi };
    let close = if hi_inclusive { "]" } else { ")" };
    if ok { Ok(()) } else { Err(bad(field, format!("{v} is outside ({lo_excl}, {hi}{close}"))) }
}

fn check_window(field: &str, v: u64) -> Result<(), WatchConfigError> {
    if (1..=MAX_WATCH_WINDOW).contains(&v) {
        Ok(())
    } else {
        Err(bad(field, format!("{v} is outside 1..={MAX_WATCH_WINDOW}")))
    }
}

impl WatchSpec {
    /// Whether any watch is configured.
    pub fn any(&self) -> bool {
        !self.depeg.is_empty()
            || self.liquidity.is_some()
            || self.landing.is_some()
            || self.oracle.is_some()
            || self.base_fee.is_some()
    }

    /// Checks every bound; `symbols` are the configured tokens.
    pub fn validate(&self, symbols: &[String]) -> Result<(), WatchConfigError> {
        for (i, d) in self.depeg.iter().enumerate() {
            if !symbols.contains(&d.token) {
                return Err(bad(
                    format!("depeg[{i}].token"),
                    format!("`{}` is not a configured token", d.token),
                ));
            }
            check_range(&format!("depeg[{i}].peg"), d.peg, 0.0, f64::MAX, true)?;
            check_range(&format!("depeg[{i}].max_deviation"), d.max_deviation, 0.0, 0.5, true)?;
        }
        if let Some(l) = &self.liquidity {
            check_range("liquidity.max_drop", l.max_drop, 0.0, 1.0, false)?;
            check_window("liquidity.blocks", l.blocks)?;
        }
        if let Some(l) = &self.landing {
            check_range("landing.min_rate", l.min_rate, 0.0, 1.0, true)?;
            check_window("landing.last", l.last)?;
        }
        if let Some(o) = &self.oracle {
            check_window("oracle.blocks", o.blocks)?;
        }
        if let Some(b) = &self.base_fee {
            check_range("base_fee.max_gwei", b.max_gwei, 0.0, 1e9, true)?;
            check_window("base_fee.blocks", b.blocks)?;
        }
        Ok(())
    }
}

/// Which watch tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// A stablecoin off its peg.
    Depeg,
    /// A pool's liquidity falling.
    Liquidity,
    /// Bundles not landing.
    Landing,
    /// The oracle guard refusing a pool block after block.
    Oracle,
    /// The base fee above its cap.
    BaseFee,
}

impl WatchKind {
    /// Every kind, in metric order.
    pub const ALL: [WatchKind; 5] =
        [WatchKind::Depeg, WatchKind::Liquidity, WatchKind::Landing, WatchKind::Oracle, WatchKind::BaseFee];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Depeg => "depeg",
            Self::Liquidity => "liquidity",
            Self::Landing => "landing",
            Self::Oracle => "oracle",
            Self::BaseFee => "base_fee",
        }
    }
}

/// A watch that tripped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    /// Which.
    pub kind: WatchKind,
    /// The reason the kill switch reports.
    pub reason: String,
}

/// Trips per watch, for metrics.
#[derive(Debug, Default)]
pub struct WatchStats {
    trips: [AtomicU64; 5],
}

impl WatchStats {
    /// Trips of `kind` so far.
    pub fn trips(&self, kind: WatchKind) -> u64 {
        self.trips[kind as usize].load(Ordering::Relaxed)
    }

    fn count(&self, kind: WatchKind) {
        self.trips[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// A pool as the watches know it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedPool {
    /// Config name.
    pub name: String,
    /// Token indices (into the token table) of token0 and token1.
    pub tokens: (usize, usize),
}

/// A token as the watches know it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchedToken {
    /// Symbol.
    pub symbol: String,
    /// Decimals.
    pub decimals: u8,
}

/// The watches' state: a pure function of heads and counters in, trips out.
#[derive(Debug)]
pub struct Watches {
    spec: WatchSpec,
    tokens: Vec<WatchedToken>,
    pools: Vec<WatchedPool>,
    /// Depeg: token index per `spec.depeg` entry.
    depeg_tokens: Vec<usize>,
    /// Liquidity: per pool, (block, level) of the last `blocks` heads.
    levels: Vec<VecDeque<(u64, f64)>>,
    /// Landing: the latest settled outcomes (true = landed), and the counters last seen.
    settled: VecDeque<bool>,
    seen: (u64, u64),
    /// Oracle: per pool, refusals at the previous head and the streak of heads with a new one.
    refusals: Vec<(u64, u64)>,
    /// Base fee: heads in a row above the cap.
    high_fee_heads: u64,
}

impl Watches {
    /// Watches over `tokens` and `pools` (config order). `spec` must have passed
    /// [`WatchSpec::validate`]; an unknown depeg token is ignored.
    pub fn new(spec: WatchSpec, tokens: Vec<WatchedToken>, pools: Vec<WatchedPool>) -> Self {
        let depeg_tokens = spec
            .depeg
            .iter()
            .map(|d| tokens.iter().position(|t| t.symbol == d.token).unwrap_or(usize::MAX))
            .collect();
        let n = pools.len();
        Self {
            spec,
            tokens,
            pools,
            depeg_tokens,
            levels: vec![VecDeque::new(); n],
            settled: VecDeque::new(),
            seen: (0, 0),
            refusals: vec![(0, 0); n],
            high_fee_heads: 0,
        }
    }

    /// A new head; `prices` are the engine's numeraire prices per token (NaN when unknown),
    /// `exchange_priced` whether each comes from the exchange (not a fixed price).
    pub fn on_head(&mut self, head: &HeadView, prices: &[f64], exchange_priced: &[bool]) -> Vec<Trip> {
        let mut trips = Vec::new();
        trips.extend(self.base_fee(head));
        trips.extend(self.oracle(head));
        trips.extend(self.liquidity(head));
        trips.extend(self.depeg(Some(head), prices, exchange_priced));
        trips
    }

    /// Exchange prices moved (between heads): only the depeg watch's exchange side is checked.
    pub fn on_prices(&mut self, prices: &[f64], exchange_priced: &[bool]) -> Vec<Trip> {
        self.depeg(None, prices, exchange_priced).into_iter().collect()
    }

    /// The engine's cumulative landed and expired counts.
    pub fn on_outcomes(&mut self, landed: u64, expired: u64) -> Vec<Trip> {
        let Some(spec) = self.spec.landing else { return Vec::new() };
        let (new_landed, new_expired) =
            (landed.saturating_sub(self.seen.0), expired.saturating_sub(self.seen.1));
        self.seen = (landed.max(self.seen.0), expired.max(self.seen.1));
        let cap = spec.last as usize;
        // Within one poll the order is unknown: expiries first, then landings (the kinder order).
        for landed in std::iter::repeat_n(false, new_expired as usize)
            .chain(std::iter::repeat_n(true, new_landed as usize))
        {
            if self.settled.len() == cap {
                self.settled.pop_front();
            }
            self.settled.push_back(landed);
        }
        if self.settled.len() < cap {
            return Vec::new();
        }
        let n_landed = self.settled.iter().filter(|l| **l).count();
        let rate = n_landed as f64 / cap as f64;
        if rate >= spec.min_rate {
            return Vec::new();
        }
        self.settled.clear();
        vec![Trip {
            kind: WatchKind::Landing,
            reason: format!(
                "landing rate: {n_landed} of the last {cap} rebalances landed ({:.1}% < {:.1}%)",
                rate * 100.0,
                spec.min_rate * 100.0
            ),
        }]
    }

    fn base_fee(&mut self, head: &HeadView) -> Option<Trip> {
        let spec = self.spec.base_fee?;
        let gwei = head.base_fee_wei as f64 / 1e9;
        if gwei <= spec.max_gwei {
            self.high_fee_heads = 0;
            return None;
        }
        self.high_fee_heads += 1;
        if self.high_fee_heads < spec.blocks {
            return None;
        }
        self.high_fee_heads = 0;
        Some(Trip {
            kind: WatchKind::BaseFee,
            reason: format!(
                "base fee: {gwei:.3} gwei above the cap of {} gwei for {} blocks (block {})",
                spec.max_gwei, spec.blocks, head.block
            ),
        })
    }

    fn oracle(&mut self, head: &HeadView) -> Option<Trip> {
        let spec = self.spec.oracle?;
        let mut trip = None;
        for (i, pool) in head.pools.iter().enumerate() {
            let Some((before, streak)) = self.refusals.get_mut(i) else { continue };
            *streak = if pool.guard_refusals > *before { *streak + 1 } else { 0 };
            *before = pool.guard_refusals;
            if *streak >= spec.blocks && trip.is_none() {
                *streak = 0;
                trip = Some(Trip {
                    kind: WatchKind::Oracle,
                    reason: format!(
                        "oracle guard: pool {} refused at {} heads in a row (block {})",
                        self.pools[i].name, spec.blocks, head.block
                    ),
                });
            }
        }
        trip
    }

    fn liquidity(&mut self, head: &HeadView) -> Option<Trip> {
        let spec = self.spec.liquidity?;
        let mut trip = None;
        for (i, pool) in head.pools.iter().enumerate() {
            let (Some(level), Some(window)) = (pool.liquidity, self.levels.get_mut(i)) else { continue };
            while window.front().is_some_and(|(b, _)| b + spec.blocks <= head.block) {
                window.pop_front();
            }
            let high = window.iter().map(|(_, l)| *l).fold(level, f64::max);
            window.push_back((head.block, level));
            if high > 0.0 && level < high * (1.0 - spec.max_drop) && trip.is_none() {
                window.clear();
                trip = Some(Trip {
                    kind: WatchKind::Liquidity,
                    reason: format!(
                        "liquidity: pool {} fell {:.1}% within {} blocks (> {:.1}%; block {})",
                        self.pools[i].name,
                        (1.0 - level / high) * 100.0,
                        spec.blocks,
                        spec.max_drop * 100.0,
                        head.block
                    ),
                });
            }
        }
        trip
    }

    fn depeg(&mut self, head: Option<&HeadView>, prices: &[f64], exchange_priced: &[bool]) -> Option<Trip> {
        for (d, &token) in self.spec.depeg.iter().zip(&self.depeg_tokens) {
            let Some(t) = self.tokens.get(token) else { continue };
            let off = |price: f64| price.is_finite() && ((price / d.peg) - 1.0).abs() > d.max_deviation;
            let trip = |price: f64, source: String| Trip {
                kind: WatchKind::Depeg,
                reason: format!(
                    "depeg: {} at {price:.4} on {source} departs its peg {} by {:.2}% (> {:.2}%)",
                    t.symbol,
                    d.peg,
                    ((price / d.peg) - 1.0).abs() * 100.0,
                    d.max_deviation * 100.0
                ),
            };
            if exchange_priced.get(token).copied().unwrap_or(false)
                && let Some(&p) = prices.get(token)
                && off(p)
            {
                return Some(trip(p, "the exchange".into()));
            }
            let Some(head) = head else { continue };
            for (pool, view) in self.pools.iter().zip(&head.pools) {
                let Some(mid) = view.mid else { continue };
                let (t0, t1) = pool.tokens;
                let other = if t0 == token {
                    t1
                } else if t1 == token {
                    t0
                } else {
                    continue;
                };
                let (Some(a), Some(b)) = (self.tokens.get(t0), self.tokens.get(t1)) else { continue };
                let Some(&other_price) = prices.get(other).filter(|p| p.is_finite() && **p > 0.0) else {
                    continue;
                };
                // Token1 per token0 in whole units.
                let human = mid * 10f64.powi(i32::from(a.decimals) - i32::from(b.decimals));
                let in_other = if t0 == token { human } else { 1.0 / human };
                let price = in_other * other_price;
                if off(price) {
                    return Some(trip(price, format!("pool {}", pool.name)));
                }
            }
        }
        None
    }
}

/// One chain's watches and where its heads come from. With several chains, each has its own
/// (its pools, base fee and oracle guard), and a trip's reason names the chain.
#[derive(Debug)]
pub struct ChainWatches {
    /// The chain's name, prefixed to trip reasons (`None`: a single-chain run, reasons as they are).
    pub chain: Option<String>,
    /// Its watches.
    pub watches: Watches,
    /// Its router stage, which publishes its head views.
    pub observer: Arc<keel_router::stage::StageObserver>,
}

/// One look at every chain: the engine's outcome counters (the landing watch, on the first chain's
/// watches: outcomes are the engine's, over every chain), then each chain's new heads; between
/// heads, the exchange side of the depeg watch. Returns what tripped, reasons naming the chain.
pub fn watch_chains(
    chains: &mut [ChainWatches],
    prices: &[f64],
    exchange_priced: &[bool],
    outcomes: (u64, u64),
) -> Vec<Trip> {
    let mut trips = Vec::new();
    if let Some(first) = chains.first_mut() {
        trips.extend(first.watches.on_outcomes(outcomes.0, outcomes.1));
    }
    let mut any_head = false;
    for c in chains.iter_mut() {
        let start = trips.len();
        for head in &c.observer.take_heads() {
            any_head = true;
            trips.extend(c.watches.on_head(head, prices, exchange_priced));
        }
        if let Some(name) = &c.chain {
            for t in &mut trips[start..] {
                t.reason = format!("chain {name}: {}", t.reason);
            }
        }
    }
    if !any_head && let Some(first) = chains.first_mut() {
        // The exchange's prices are the same for every chain: looked at once.
        trips.extend(first.watches.on_prices(prices, exchange_priced));
    }
    trips
}

/// Runs the watches until `cancel`: takes every chain's head views and the engine's snapshot
/// every [`WATCH_POLL`] ([`watch_chains`]), and holds the kill switch ([`KillSource::Chain`]) with
/// the reason of each trip.
pub async fn run_watches(
    mut chains: Vec<ChainWatches>,
    snapshot: Arc<Mutex<Snapshot>>,
    kill: Arc<KillSwitch>,
    stats: Arc<WatchStats>,
    cancel: CancellationToken,
) {
    let mut latched = [false; WatchKind::ALL.len()];
    let mut tick = tokio::time::interval(WATCH_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (prices, exchange_priced, landed, expired) = {
            let s = snapshot.lock();
            (s.prices.clone(), s.exchange_priced.clone(), s.engine.outcomes.landed, s.engine.outcomes.expired)
        };
        let trips = watch_chains(&mut chains, &prices, &exchange_priced, (landed, expired));
        if !kill.is_held_by(KillSource::Chain) {
            // Resumed (or never tripped): every watch may trip again.
            latched = [false; WatchKind::ALL.len()];
        }
        for trip in trips {
            // A watch that already holds the switch does not trip again until a resume.
            if std::mem::replace(&mut latched[trip.kind as usize], true) {
                continue;
            }
            stats.count(trip.kind);
            tracing::error!(watch = trip.kind.label(), reason = %trip.reason, "chain watch tripped: kill switch engaged");
            kill.hold(KillSource::Chain, &trip.reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use keel_router::head_view::PoolView;

    use super::*;

    fn tokens() -> Vec<WatchedToken> {
        vec![
            WatchedToken { symbol: "USDC".into(), decimals: 6 },
            WatchedToken { symbol: "WETH".into(), decimals: 18 },
        ]
    }

    fn pools() -> Vec<WatchedPool> {
        vec![WatchedPool { name: "usdc-weth".into(), tokens: (0, 1) }]
    }

    fn watches(spec: WatchSpec) -> Watches {
        spec.validate(&["USDC".into(), "WETH".into()]).unwrap();
        Watches::new(spec, tokens(), pools())
    }

    fn head(block: u64, base_fee_gwei: u64, pool: PoolView) -> HeadView {
        HeadView { block, base_fee_wei: u128::from(base_fee_gwei) * 1_000_000_000, pools: vec![pool] }
    }

    const UNKNOWN: PoolView = PoolView { mid: None, liquidity: None, guard_refusals: 0 };

    #[test]
    fn base_fee_trips_after_its_blocks_in_a_row_above_the_cap() {
        let mut w = watches(WatchSpec {
            base_fee: Some(BaseFeeSpec { max_gwei: 50.0, blocks: 3 }),
            ..Default::default()
        });
        let fees = [60, 60, 40, 60, 60, 60];
        let trips: Vec<usize> = fees
            .iter()
            .enumerate()
            .filter(|(i, f)| !w.on_head(&head(*i as u64 + 1, **f, UNKNOWN), &[], &[]).is_empty())
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(trips, vec![6], "the 40 gwei head breaks the first run");
    }

    #[test]
    fn the_oracle_watch_trips_on_refusals_at_consecutive_heads_of_one_pool() {
        let mut w = watches(WatchSpec { oracle: Some(OracleSpec { blocks: 3 }), ..Default::default() });
        let refusals = [0, 1, 2, 2, 3, 4, 5];
        let mut tripped = Vec::new();
        for (i, n) in refusals.iter().enumerate() {
            let pool = PoolView { guard_refusals: *n, ..UNKNOWN };
            for t in w.on_head(&head(i as u64 + 1, 1, pool), &[], &[]) {
                assert!(t.reason.contains("usdc-weth") && t.reason.contains("3 heads"), "{}", t.reason);
                tripped.push(i + 1);
            }
        }
        assert_eq!(tripped, vec![7], "block 4 had no new refusal");
    }

    #[test]
    fn liquidity_trips_on_a_fast_fall_not_on_a_slow_one() {
        let spec = LiquiditySpec { max_drop: 0.2, blocks: 3 };
        let mut w = watches(WatchSpec { liquidity: Some(spec), ..Default::default() });
        let levels = [100.0, 95.0, 90.0, 85.0, 80.0, 75.0, 70.0, 50.0];
        let mut tripped = Vec::new();
        for (i, l) in levels.iter().enumerate() {
            let pool = PoolView { liquidity: Some(*l), ..UNKNOWN };
            for t in w.on_head(&head(i as u64 + 1, 1, pool), &[], &[]) {
                // 50 against the window's high of 75 (blocks 6..=8): a 33.3% fall.
                assert!(t.reason.contains("fell 33.3%"), "{}", t.reason);
                tripped.push(i + 1);
            }
        }
        assert_eq!(tripped, vec![8]);
    }

    #[test]
    fn landing_trips_when_too_few_of_the_last_rebalances_landed() {
        let mut w = watches(WatchSpec {
            landing: Some(LandingSpec { last: 4, min_rate: 0.5 }),
            ..Default::default()
        });
        assert!(w.on_outcomes(1, 0).is_empty());
        assert!(w.on_outcomes(1, 2).is_empty(), "three settled: not yet the window");
        let t = w.on_outcomes(1, 3);
        assert_eq!(t.len(), 1);
        assert!(
            t[0].reason.contains("1 of the last 4") && t[0].reason.contains("25.0% < 50.0%"),
            "{}",
            t[0].reason
        );
        // It forgot what it saw: two landings then two expiries make 50%, not a trip.
        assert!(w.on_outcomes(3, 3).is_empty());
        assert!(w.on_outcomes(3, 5).is_empty());
    }

    #[test]
    fn depeg_trips_on_the_exchange_price_and_on_a_pool_price() {
        let spec = DepegSpec { token: "USDC".into(), peg: 1.0, max_deviation: 0.02 };
        let mut w = watches(WatchSpec { depeg: vec![spec], ..Default::default() });
        // The exchange: 0.99 is inside 2%, 0.97 is not.
        assert!(w.on_prices(&[0.99, 3000.0], &[true, true]).is_empty());
        let t = w.on_prices(&[0.97, 3000.0], &[true, true]);
        assert!(t[0].reason.contains("the exchange") && t[0].reason.contains("3.00%"), "{t:?}");
        // A fixed price says nothing about a depeg.
        assert!(w.on_prices(&[0.97, 3000.0], &[false, true]).is_empty());
        // The pool: 1 WETH = 3100 USDC while the exchange says 3000 USD: USDC at 0.9677.
        let raw_mid = |usdc_per_weth: f64| (1.0 / usdc_per_weth) * 1e12;
        let at = |usdc_per_weth: f64| PoolView { mid: Some(raw_mid(usdc_per_weth)), ..UNKNOWN };
        assert!(w.on_head(&head(1, 1, at(3000.0)), &[1.0, 3000.0], &[false, true]).is_empty());
        let t = w.on_head(&head(2, 1, at(3100.0)), &[1.0, 3000.0], &[false, true]);
        assert!(t[0].reason.contains("pool usdc-weth") && t[0].reason.contains("0.9677"), "{t:?}");
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_field() {
        let err = |spec: WatchSpec| spec.validate(&["USDC".into()]).unwrap_err().to_string();
        let depeg = |max_deviation: f64, token: &str| WatchSpec {
            depeg: vec![DepegSpec { token: token.into(), peg: 1.0, max_deviation }],
            ..Default::default()
        };
        assert!(
            err(depeg(0.0, "USDC")).contains("safety.watch.depeg[0].max_deviation: 0 is outside (0, 0.5]")
        );
        assert!(err(depeg(0.01, "DAI")).contains("depeg[0].token: `DAI` is not a configured token"));
        let liq = |max_drop, blocks| WatchSpec {
            liquidity: Some(LiquiditySpec { max_drop, blocks }),
            ..Default::default()
        };
        assert!(err(liq(1.0, 5)).contains("liquidity.max_drop: 1 is outside (0, 1)"));
        assert!(err(liq(0.5, 0)).contains("liquidity.blocks: 0 is outside 1..=10000"));
        let landing =
            WatchSpec { landing: Some(LandingSpec { last: 10, min_rate: f64::NAN }), ..Default::default() };
        assert!(err(landing).contains("landing.min_rate"));
        let fee =
            WatchSpec { base_fee: Some(BaseFeeSpec { max_gwei: -1.0, blocks: 2 }), ..Default::default() };
        assert!(err(fee).contains("base_fee.max_gwei"));
        assert!(
            err(WatchSpec { oracle: Some(OracleSpec { blocks: 10_001 }), ..Default::default() })
                .contains("oracle.blocks")
        );
    }

    #[test]
    fn every_chain_is_watched_and_a_trip_names_its_chain() {
        use keel_router::stage::StageObserver;
        let spec = WatchSpec {
            base_fee: Some(BaseFeeSpec { max_gwei: 50.0, blocks: 2 }),
            landing: Some(LandingSpec { last: 2, min_rate: 0.5 }),
            ..Default::default()
        };
        let chain = |name: &str| ChainWatches {
            chain: Some(name.into()),
            watches: watches(spec.clone()),
            observer: Arc::new(StageObserver::new(Vec::<String>::new())),
        };
        let mut chains = vec![chain("l1"), chain("l2")];
        // Chain l1's fee is low; chain l2's stays high for two heads: l2 trips, named.
        for b in 1..=2 {
            chains[0].observer.publish_head(head(b, 10, UNKNOWN));
            chains[1].observer.publish_head(head(b, 60, UNKNOWN));
        }
        let trips = watch_chains(&mut chains, &[], &[], (0, 0));
        assert_eq!(trips.len(), 1, "{trips:?}");
        assert_eq!(trips[0].kind, WatchKind::BaseFee);
        assert!(trips[0].reason.starts_with("chain l2: base fee:"), "{}", trips[0].reason);
        // Each chain counts its own heads: l1's high heads one at a time, never two of its own.
        chains[0].observer.publish_head(head(3, 60, UNKNOWN));
        assert!(watch_chains(&mut chains, &[], &[], (0, 0)).is_empty());
        chains[1].observer.publish_head(head(3, 10, UNKNOWN));
        chains[0].observer.publish_head(head(4, 60, UNKNOWN));
        let trips = watch_chains(&mut chains, &[], &[], (0, 0));
        assert!(trips.len() == 1 && trips[0].reason.starts_with("chain l1: "), "{trips:?}");
        // The landing watch reads the engine's outcomes (every chain's) once, not once per chain.
        let trips = watch_chains(&mut chains, &[], &[], (0, 2));
        assert_eq!(trips.iter().filter(|t| t.kind == WatchKind::Landing).count(), 1, "{trips:?}");
        // One chain unnamed (a single-chain run): reasons as before.
        let mut one = vec![ChainWatches { chain: None, ..chain("x") }];
        for b in 1..=2 {
            one[0].observer.publish_head(head(b, 60, UNKNOWN));
        }
        let trips = watch_chains(&mut one, &[], &[], (0, 0));
        assert!(trips[0].reason.starts_with("base fee:"), "{trips:?}");
    }
}
