//! The engine's part of Keel's TOML configuration: tokens, their price sources, and portfolios with
//! their targets and triggers. Every default is a documented constant; validation names the field
//! and the problem.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use alloy_primitives::Address;
use serde::Deserialize;

use crate::queue::WaitPolicy;
pub use crate::target_config::{
    CppiConfig, ExternalConfig, FLOOR_RANGE, LOOKBACK_SECS_RANGE, MAX_AGE_SECS_RANGE, MAX_EXTERNAL_ASSETS,
    MAX_TILT_RANGE, MULTIPLIER_RANGE, MomentumConfig, TILT_RANGE, TargetsConfig,
};

/// Default age after which a price is stale and no trigger may fire on it.
pub const DEFAULT_STALE_AFTER_MS: u64 = 5_000;
/// Default cooldown after a portfolio's rebalance before its triggers may fire again.
pub const DEFAULT_COOLDOWN_SECS: f64 = 10.0;
/// Default smallest leg worth trading, in the numeraire (USD).
pub const DEFAULT_MIN_TRADE_NOTIONAL: f64 = 10.0;
/// Default bounded capacity of the engine's inbound event queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
/// Default idle wait of the engine and router threads (park: frees the core; see [`IdleWait`]).
pub const DEFAULT_IDLE: IdleWait = IdleWait::Park;
/// Default busy-poll budget of `idle = "spin_then_park"`, microseconds.
pub const DEFAULT_IDLE_SPIN_US: u64 = 200;
/// Default idle time after which inline mode's engine thread rehearses its latest route,
/// microseconds (`[engine] rehearse_us`).
pub const DEFAULT_REHEARSE_US: u64 = 100;
/// Tolerance on the sum of target weights.
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-6;

/// Engine-wide settings (`[engine]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// A price older than this (by receive time) is stale: no trigger fires on it.
    #[serde(default = "default_stale_after_ms")]
    pub stale_after_ms: u64,
    /// Capacity of the bounded event queue into the engine.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// How the engine and router threads wait for input when idle.
    #[serde(default = "default_idle")]
    pub idle: IdleWait,
    /// Busy-poll budget of `idle = "spin_then_park"`, microseconds.
    #[serde(default = "default_idle_spin_us")]
    pub idle_spin_us: u64,
    /// Where the router stage runs: on a thread of its own behind a queue (`pipelined`), or on the
    /// engine thread, called with each intent (`inline`: no hand-off between decision and wire).
    #[serde(default)]
    pub mode: StageMode,
    /// Pin the engine thread (the hot thread, in inline mode) to this CPU; none by default.
    #[serde(default)]
    pub hot_cpu: Option<usize>,
    /// Inline mode: once the engine thread has had no input for this many microseconds, it routes
    /// its latest intent again on its scratch copy of the pools — nothing signed, sent, recorded
    /// or counted — and again every as many microseconds while idle, so that the next intent
    /// finds the routing code and data in its caches. 0 turns it off.
    #[serde(default = "default_rehearse_us")]
    pub rehearse_us: u64,
}

/// Where the router stage runs (`[engine] mode`).
///
/// `pipelined` keeps the engine deciding while the router signs and sends on its own thread: a
/// burst of intents is routed in parallel with the next decisions, at the cost of one thread
/// hand-off (a wake-up: tens of µs, more on a loaded machine) per intent. `inline` routes, signs
/// and writes the bundle on the engine thread as soon as the engine decides: no hand-off, and the
/// engine waits for the router (about the time of a route and two signatures) before its next
/// event. Chain updates, receipts and relay answers reach the engine thread through the router's
/// bounded queue, which it drains between events without blocking. Single-chain runs only.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StageMode {
    /// The router stage on its own thread (default).
    #[default]
    Pipelined,
    /// The router stage on the engine thread.
    Inline,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            stale_after_ms: DEFAULT_STALE_AFTER_MS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            idle: DEFAULT_IDLE,
            idle_spin_us: DEFAULT_IDLE_SPIN_US,
            mode: StageMode::Pipelined,
            hot_cpu: None,
            rehearse_us: DEFAULT_REHEARSE_US,
        }
    }
}

/// Bounds of `[engine]`: (`queue_capacity`), (`stale_after_ms`), (`idle_spin_us`).
pub const QUEUE_CAPACITY_RANGE: std::ops::RangeInclusive<usize> = 16..=(1 << 24);
/// Bounds of `stale_after_ms`: 1 ms to one day.
pub const STALE_AFTER_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400_000;
/// Bounds of `idle_spin_us`: up to one second.
pub const IDLE_SPIN_US_RANGE: std::ops::RangeInclusive<u64> = 0..=1_000_000;
/// Bounds of `rehearse_us`: up to one second (0: off).
pub const REHEARSE_US_RANGE: std::ops::RangeInclusive<u64> = 0..=1_000_000;
/// `hot_cpu` must be below this (the size of Linux's `cpu_set_t`).
pub const MAX_CPU: usize = 1024;
/// Largest `cooldown_secs`, a trigger's `interval_secs` and a volatility `halflife_secs`: one year.
pub const MAX_SECS: f64 = 365.0 * 86_400.0;
/// Largest `min_trade_notional` (USD).
pub const MAX_MIN_TRADE_NOTIONAL: f64 = 1e12;
/// Largest `reference_vol` of a volatility trigger (annualised; 100 = 10,000 %).
pub const MAX_REFERENCE_VOL: f64 = 100.0;

impl EngineConfig {
    /// Checks the numeric fields against their bounds, naming the field and the bound (a queue of
    /// `usize::MAX` slots would abort at start; a zero one would drop everything).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !QUEUE_CAPACITY_RANGE.contains(&self.queue_capacity) {
            return Err(ConfigError::new(
                "engine.queue_capacity",
                format!("{} is outside {QUEUE_CAPACITY_RANGE:?}", self.queue_capacity),
            ));
        }
        if !STALE_AFTER_MS_RANGE.contains(&self.stale_after_ms) {
            return Err(ConfigError::new(
                "engine.stale_after_ms",
                format!("{} is outside {STALE_AFTER_MS_RANGE:?}", self.stale_after_ms),
            ));
        }
        if !IDLE_SPIN_US_RANGE.contains(&self.idle_spin_us) {
            return Err(ConfigError::new(
                "engine.idle_spin_us",
                format!("{} is outside {IDLE_SPIN_US_RANGE:?}", self.idle_spin_us),
            ));
        }
        if !REHEARSE_US_RANGE.contains(&self.rehearse_us) {
            return Err(ConfigError::new(
                "engine.rehearse_us",
                format!("{} is outside {REHEARSE_US_RANGE:?}", self.rehearse_us),
            ));
        }
        if let Some(cpu) = self.hot_cpu
            && cpu >= MAX_CPU
        {
            return Err(ConfigError::new("engine.hot_cpu", format!("{cpu} is outside 0..{MAX_CPU}")));
        }
        Ok(())
    }

    /// The stage threads' queue wait policy.
    pub fn wait_policy(&self) -> WaitPolicy {
        match self.idle {
            IdleWait::Park => WaitPolicy::Park,
            IdleWait::Spin => WaitPolicy::Spin,
            IdleWait::SpinThenPark => {
                WaitPolicy::SpinThenPark { spin: Duration::from_micros(self.idle_spin_us) }
            }
        }
    }
}

/// How a stage thread waits when its input queue is empty (`[engine] idle`).
///
/// `park` suits shared machines and few cores: an idle thread costs nothing, a wake-up costs tens
/// of µs. `spin` keeps each stage thread on a core at 100 % and pays off only with a core per
/// thread to spare (pinned, isolated). `spin_then_park` spins `idle_spin_us` after each message,
/// which catches bursts without holding cores while the market is quiet.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IdleWait {
    /// Spin a few µs, then park.
    Park,
    /// Busy-poll; never park.
    Spin,
    /// Busy-poll for `idle_spin_us`, then park.
    SpinThenPark,
}

fn default_stale_after_ms() -> u64 {
    DEFAULT_STALE_AFTER_MS
}
fn default_queue_capacity() -> usize {
    DEFAULT_QUEUE_CAPACITY
}
fn default_idle() -> IdleWait {
    DEFAULT_IDLE
}
fn default_idle_spin_us() -> u64 {
    DEFAULT_IDLE_SPIN_US
}

fn default_rehearse_us() -> u64 {
    DEFAULT_REHEARSE_US
}
fn default_cooldown_secs() -> f64 {
    DEFAULT_COOLDOWN_SECS
}
fn default_min_trade_notional() -> f64 {
    DEFAULT_MIN_TRADE_NOTIONAL
}

/// Where a token's price in the numeraire comes from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, untagged)]
pub enum PriceSource {
    /// A market-data instrument, e.g. `{ symbol = "ETHUSDT" }`; the token's price is the mid.
    Instrument {
        /// Exchange symbol, upper case as the exchange sends it.
        symbol: String,
    },
    /// A fixed price, e.g. `{ fixed = 1.0 }` for a stablecoin numeraire.
    Fixed {
        /// Price in the numeraire.
        fixed: f64,
    },
}

/// A token (`[[tokens]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Symbol used in the rest of the config, e.g. `WETH`.
    pub symbol: String,
    /// ERC-20 contract address.
    pub address: Address,
    /// ERC-20 decimals.
    pub decimals: u8,
    /// Price source.
    pub price: PriceSource,
}

/// A trigger (`[[portfolios.triggers]]`), tagged by `type`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum TriggerConfig {
    /// Fires when a weight leaves its band: |w - t| > `abs_band`, or |w/t - 1| > `rel_band`.
    Drift {
        /// Absolute band on the weight (0.02 = two percentage points). Optional.
        abs_band: Option<f64>,
        /// Relative band on the weight (0.1 = 10% of the target). Optional.
        rel_band: Option<f64>,
    },
    /// Fires every `interval_secs`, whatever the drift (legs below the minimum notional are skipped).
    Temporal {
        /// Interval between rebalances.
        interval_secs: f64,
    },
    /// A drift band scaled by realised volatility: band = `base_band` × σ / `reference_vol`, clamped to
    /// [`min_band`, `max_band`], where σ is an EWMA of each asset's log-return volatility (annualised).
    Volatility {
        /// Band at the reference volatility.
        base_band: f64,
        /// Annualised volatility at which the band equals `base_band` (0.6 = 60%).
        reference_vol: f64,
        /// Lower bound of the band.
        min_band: f64,
        /// Upper bound of the band.
        max_band: f64,
        /// EWMA half-life of the variance estimate, seconds.
        halflife_secs: f64,
    },
}

/// How far a rebalance trades.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlanMode {
    /// All the way back to the targets.
    #[default]
    ToTarget,
    /// Only back to the edge of the band (less turnover, more residual drift).
    ToBand,
}

/// A portfolio (`[[portfolios]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortfolioConfig {
    /// Name, unique.
    pub name: String,
    /// On-chain account that holds the assets.
    pub account: Address,
    /// Where the target weights come from: a plain map of weights by token symbol (fixed; they
    /// must sum to 1) or one source ([`TargetsConfig`]).
    pub targets: TargetsConfig,
    /// Triggers; any one firing starts a rebalance.
    pub triggers: Vec<TriggerConfig>,
    /// How far to trade.
    #[serde(default)]
    pub mode: PlanMode,
    /// Seconds after a rebalance ends before triggers may fire again.
    #[serde(default = "default_cooldown_secs")]
    pub cooldown_secs: f64,
    /// Legs below this notional (USD) are skipped.
    #[serde(default = "default_min_trade_notional")]
    pub min_trade_notional: f64,
    /// `[portfolios.cost]`: band-only (the default) or value against cost.
    #[serde(default)]
    pub cost: crate::value::CostConfig,
}

/// A configuration problem, naming the field.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `portfolios[core].targets`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

fn check_fraction(field: String, v: f64, lo_exclusive: f64, hi: f64) -> Result<(), ConfigError> {
    if !(v.is_finite() && v > lo_exclusive && v <= hi) {
        return Err(ConfigError::new(field, format!("{v} is outside ({lo_exclusive}, {hi}]")));
    }
    Ok(())
}

/// Checks tokens and portfolios against each other.
pub fn validate(tokens: &[TokenConfig], portfolios: &[PortfolioConfig]) -> Result<(), ConfigError> {
    if tokens.is_empty() {
        return Err(ConfigError::new("tokens", "at least one token is required"));
    }
    if tokens.len() > u16::MAX as usize {
        return Err(ConfigError::new("tokens", "too many tokens"));
    }
    // Hash sets, not a scan of the earlier entries: validation is linear in the config's size
    // (100k portfolios must load in well under a second).
    let mut symbols = HashSet::with_capacity(tokens.len());
    let mut addresses = HashSet::with_capacity(tokens.len());
    for t in tokens {
        if !symbols.insert(t.symbol.as_str()) {
            return Err(ConfigError::new(format!("tokens[{}].symbol", t.symbol), "duplicate symbol"));
        }
        if !addresses.insert(t.address) {
            return Err(ConfigError::new(format!("tokens[{}].address", t.symbol), "duplicate address"));
        }
        if t.decimals > 36 {
            return Err(ConfigError::new(
                format!("tokens[{}].decimals", t.symbol),
                format!("{} is outside 0..=36", t.decimals),
            ));
        }
        if let PriceSource::Fixed { fixed } = t.price
            && !(fixed.is_finite() && fixed > 0.0)
        {
            return Err(ConfigError::new(format!("tokens[{}].price.fixed", t.symbol), "must be > 0"));
        }
    }
    if portfolios.is_empty() {
        return Err(ConfigError::new("portfolios", "at least one portfolio is required"));
    }
    let mut names = HashSet::with_capacity(portfolios.len());
    let mut accounts = HashSet::with_capacity(portfolios.len());
    for p in portfolios {
        let at = |f: &str| format!("portfolios[{}].{f}", p.name);
        if !names.insert(p.name.as_str()) {
            return Err(ConfigError::new(at("name"), "duplicate portfolio name"));
        }
        // Each portfolio reads its holdings from its account's balances: two on one account would
        // each count the other's assets as its own (and their bundles would share nonces).
        if !accounts.insert(p.account) {
            return Err(ConfigError::new(
                at("account"),
                format!(
                    "account {} already holds another portfolio; give each portfolio its own account",
                    p.account
                ),
            ));
        }
        validate_targets(&p.name, &p.targets, &symbols)?;
        if p.triggers.is_empty() {
            return Err(ConfigError::new(at("triggers"), "at least one trigger is required"));
        }
        p.cost.validate(&format!("portfolios[{}]", p.name))?;
        for (k, trig) in p.triggers.iter().enumerate() {
            let f = |name: &str| at(&format!("triggers[{k}].{name}"));
            match *trig {
                TriggerConfig::Drift { abs_band, rel_band } => {
                    if abs_band.is_none() && rel_band.is_none() {
                        return Err(ConfigError::new(f("abs_band"), "set abs_band, rel_band or both"));
                    }
                    if let Some(b) = abs_band {
                        check_fraction(f("abs_band"), b, 0.0, 1.0)?;
                    }
                    if let Some(r) = rel_band {
                        check_fraction(f("rel_band"), r, 0.0, 10.0)?;
                        if abs_band.is_none() && matches!(p.targets, TargetsConfig::Cppi(_)) {
                            return Err(ConfigError::new(
                                f("rel_band"),
                                "a CPPI target can be 0, where a relative band closes to 0: set abs_band",
                            ));
                        }
                    }
                }
                TriggerConfig::Temporal { interval_secs } => {
                    check_fraction(f("interval_secs"), interval_secs, 0.0, MAX_SECS)?;
                }
                TriggerConfig::Volatility { base_band, reference_vol, min_band, max_band, halflife_secs } => {
                    check_fraction(f("base_band"), base_band, 0.0, 1.0)?;
                    check_fraction(f("min_band"), min_band, 0.0, 1.0)?;
                    check_fraction(f("max_band"), max_band, 0.0, 1.0)?;
                    if min_band > max_band {
                        return Err(ConfigError::new(f("min_band"), "greater than max_band"));
                    }
                    check_fraction(f("reference_vol"), reference_vol, 0.0, MAX_REFERENCE_VOL)?;
                    check_fraction(f("halflife_secs"), halflife_secs, 0.0, MAX_SECS)?;
                }
            }
        }
        for (field, v, hi) in [
            ("cooldown_secs", p.cooldown_secs, MAX_SECS),
            ("min_trade_notional", p.min_trade_notional, MAX_MIN_TRADE_NOTIONAL),
        ] {
            if !(v.is_finite() && (0.0..=hi).contains(&v)) {
                return Err(ConfigError::new(at(field), format!("{v} is outside [0, {hi}]")));
            }
        }
    }
    Ok(())
}

/// Checks a map of weights: at least two known tokens, each in (0, 1], summing to 1.
fn check_weights(field: &str, w: &BTreeMap<String, f64>, symbols: &HashSet<&str>) -> Result<(), ConfigError> {
    if w.len() < 2 {
        return Err(ConfigError::new(field, "a portfolio needs at least two assets"));
    }
    let mut sum = 0.0;
    for (sym, x) in w {
        if !symbols.contains(sym.as_str()) {
            return Err(ConfigError::new(field, format!("unknown token `{sym}`")));
        }
        check_fraction(format!("{field}.{sym}"), *x, 0.0, 1.0)?;
        sum += x;
    }
    if (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        return Err(ConfigError::new(field, format!("target weights sum to {sum}, expected 1.0")));
    }
    Ok(())
}

fn check_range(
    field: String,
    v: f64,
    r: std::ops::RangeInclusive<f64>,
    lo_open: bool,
) -> Result<(), ConfigError> {
    let ok = v.is_finite() && r.contains(&v) && !(lo_open && v == *r.start());
    if !ok {
        let open = if lo_open { "(" } else { "[" };
        return Err(ConfigError::new(field, format!("{v} is outside {open}{}, {}]", r.start(), r.end())));
    }
    Ok(())
}

/// Checks one portfolio's target source, naming the field and the bound.
fn validate_targets(name: &str, t: &TargetsConfig, symbols: &HashSet<&str>) -> Result<(), ConfigError> {
    let at = |f: &str| format!("portfolios[{name}].targets{f}");
    match t {
        TargetsConfig::Fixed(w) => check_weights(&at(""), w, symbols),
        TargetsConfig::Cppi(c) => {
            check_range(at(".cppi.floor"), c.floor, FLOOR_RANGE, false)?;
            check_range(at(".cppi.multiplier"), c.multiplier, MULTIPLIER_RANGE, true)?;
            if c.risky.is_empty() {
                return Err(ConfigError::new(at(".cppi.risky"), "name at least one risky asset"));
            }
            let mut seen = HashSet::new();
            for sym in &c.risky {
                if !symbols.contains(sym.as_str()) {
                    return Err(ConfigError::new(at(".cppi.risky"), format!("unknown token `{sym}`")));
                }
                if !seen.insert(sym.as_str()) {
                    return Err(ConfigError::new(at(".cppi.risky"), format!("`{sym}` listed twice")));
                }
            }
            if !symbols.contains(c.safe.as_str()) {
                return Err(ConfigError::new(at(".cppi.safe"), format!("unknown token `{}`", c.safe)));
            }
            if seen.contains(c.safe.as_str()) {
                return Err(ConfigError::new(at(".cppi.safe"), format!("`{}` is also risky", c.safe)));
            }
            Ok(())
        }
        TargetsConfig::Momentum(m) => {
            check_range(at(".momentum.lookback_secs"), m.lookback_secs, LOOKBACK_SECS_RANGE, false)?;
            check_range(at(".momentum.tilt"), m.tilt, TILT_RANGE, false)?;
            if !(m.max_tilt.is_finite()
                && m.max_tilt > MAX_TILT_RANGE.start
                && m.max_tilt < MAX_TILT_RANGE.end)
            {
                return Err(ConfigError::new(
                    at(".momentum.max_tilt"),
                    format!("{} is outside ({}, {})", m.max_tilt, MAX_TILT_RANGE.start, MAX_TILT_RANGE.end),
                ));
            }
            check_weights(&at(".momentum.base"), &m.base, symbols)
        }
        TargetsConfig::External(e) => {
            if e.name.is_empty() {
                return Err(ConfigError::new(at(".external"), "name the predictor"));
            }
            check_range(at(".max_age_secs"), e.max_age_secs, MAX_AGE_SECS_RANGE, false)?;
            check_range(at(".max_step"), e.max_step, 0.0..=1.0, true)?;
            if e.fallback.len() > MAX_EXTERNAL_ASSETS {
                return Err(ConfigError::new(
                    at(".fallback"),
                    format!(
                        "{} assets; a predicted portfolio has at most {MAX_EXTERNAL_ASSETS}",
                        e.fallback.len()
                    ),
                ));
            }
            check_weights(&at(".fallback"), &e.fallback, symbols)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_wait_parses_and_defaults_to_park() {
        let cfg: EngineConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg.wait_policy(), WaitPolicy::Park);
        let cfg: EngineConfig = serde_json::from_str(r#"{"idle": "spin"}"#).unwrap();
        assert_eq!(cfg.wait_policy(), WaitPolicy::Spin);
        let cfg: EngineConfig =
            serde_json::from_str(r#"{"idle": "spin_then_park", "idle_spin_us": 50}"#).unwrap();
        assert_eq!(cfg.wait_policy(), WaitPolicy::SpinThenPark { spin: Duration::from_micros(50) });
        assert!(serde_json::from_str::<EngineConfig>(r#"{"idle": "yield"}"#).is_err());
        // bounds name the field
        let huge = EngineConfig { queue_capacity: usize::MAX, ..EngineConfig::default() };
        assert_eq!(huge.validate().unwrap_err().field, "engine.queue_capacity");
        let zero = EngineConfig { stale_after_ms: 0, ..EngineConfig::default() };
        assert_eq!(zero.validate().unwrap_err().field, "engine.stale_after_ms");
        assert!(EngineConfig::default().validate().is_ok());
    }
}
