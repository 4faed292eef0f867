//! `targets = …`: where a portfolio's target weights come from.
//!
//! ```toml
//! targets = { WETH = 0.6, USDC = 0.4 }                       # fixed (the plain map)
//! targets = { fixed = { WETH = 0.6, USDC = 0.4 } }           # the same, spelled out
//! targets = { cppi = { floor = 8000.0, multiplier = 3.0, risky = ["WETH"], safe = "USDC" } }
//! targets = { momentum = { lookback_secs = 3600, tilt = 2.0, base = { WETH = 0.5, USDC = 0.5 } } }
//! targets = { external = "alpha", fallback = { WETH = 0.5, USDC = 0.5 } }
//! ```
//!
//! The formulas live in [`crate::target`]; bounds are the `*_RANGE` constants below, and
//! [`crate::config::validate`] names the field and the bound that a value breaks.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// Default `max_tilt` of a momentum source: each base weight moves by at most ±50 % before
/// renormalisation.
pub const DEFAULT_MAX_TILT: f64 = 0.5;
/// Default `max_age_secs` of an external source: with no good message for this long, the
/// portfolio falls back to its `fallback` targets.
pub const DEFAULT_MAX_AGE_SECS: f64 = 30.0;
/// Default `max_step` of an external source: the largest change of any one weight per message.
pub const DEFAULT_MAX_STEP: f64 = 0.25;
/// Bounds of a CPPI `multiplier`.
pub const MULTIPLIER_RANGE: std::ops::RangeInclusive<f64> = 0.0..=100.0;
/// Bounds of a CPPI `floor` (numeraire, USD).
pub const FLOOR_RANGE: std::ops::RangeInclusive<f64> = 0.0..=1e15;
/// Bounds of a momentum `lookback_secs`: one second to one year.
pub const LOOKBACK_SECS_RANGE: std::ops::RangeInclusive<f64> = 1.0..=(365.0 * 86_400.0);
/// Bounds of a momentum `tilt` (sensitivity to the lookback return).
pub const TILT_RANGE: std::ops::RangeInclusive<f64> = 0.0..=100.0;
/// Bounds of a momentum `max_tilt`: (0, 1) exclusive of 1, so no tilted weight reaches zero.
pub const MAX_TILT_RANGE: std::ops::Range<f64> = 0.0..1.0;
/// Bounds of an external `max_age_secs`.
pub const MAX_AGE_SECS_RANGE: std::ops::RangeInclusive<f64> = 0.1..=86_400.0;
/// Most assets of a portfolio with external targets (updates travel as fixed-size arrays).
pub const MAX_EXTERNAL_ASSETS: usize = 16;

/// CPPI parameters (`targets = { cppi = { … } }`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CppiConfig {
    /// The value (numeraire) that the portfolio must not fall below.
    pub floor: f64,
    /// Exposure multiple of the cushion.
    pub multiplier: f64,
    /// The risky assets; the risky weight is split equally across them.
    pub risky: Vec<String>,
    /// The safe asset.
    pub safe: String,
}

/// Momentum parameters (`targets = { momentum = { … } }`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MomentumConfig {
    /// Window over which each asset's return is measured, seconds.
    pub lookback_secs: f64,
    /// Sensitivity of the tilt to the return over the lookback.
    pub tilt: f64,
    /// Largest relative move of a base weight before renormalisation.
    #[serde(default = "default_max_tilt")]
    pub max_tilt: f64,
    /// Base weights (sum to 1).
    pub base: BTreeMap<String, f64>,
}

fn default_max_tilt() -> f64 {
    DEFAULT_MAX_TILT
}

/// External (predictor) parameters: `targets = { external = "name", fallback = { … } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalConfig {
    /// The predictor (`[[predictors]] name`) that sends this portfolio's weights.
    pub name: String,
    /// Targets used before the first good message and whenever the predictor goes stale.
    pub fallback: BTreeMap<String, f64>,
    /// Seconds without a good message after which the fallback applies.
    pub max_age_secs: f64,
    /// Largest change of any weight in one message.
    pub max_step: f64,
}

/// Where a portfolio's targets come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetsConfig {
    /// Fixed weights by token symbol.
    Fixed(BTreeMap<String, f64>),
    /// Constant-proportion portfolio insurance.
    Cppi(CppiConfig),
    /// Base weights tilted toward what rose over a lookback.
    Momentum(MomentumConfig),
    /// Weights sent by an external predictor.
    External(ExternalConfig),
}

impl TargetsConfig {
    /// The portfolio's asset symbols, in no particular order (the engine sorts by token id).
    pub fn symbols(&self) -> Vec<&str> {
        match self {
            TargetsConfig::Fixed(m) => m.keys().map(String::as_str).collect(),
            TargetsConfig::Cppi(c) => {
                c.risky.iter().map(String::as_str).chain(std::iter::once(c.safe.as_str())).collect()
            }
            TargetsConfig::Momentum(m) => m.base.keys().map(String::as_str).collect(),
            TargetsConfig::External(e) => e.fallback.keys().map(String::as_str).collect(),
        }
    }

    /// The portfolio's asset symbols (as owned strings of the config), in no particular order.
    pub fn keys(&self) -> std::vec::IntoIter<&String> {
        let v: Vec<&String> = match self {
            TargetsConfig::Fixed(m) => m.keys().collect(),
            TargetsConfig::Cppi(c) => c.risky.iter().chain(std::iter::once(&c.safe)).collect(),
            TargetsConfig::Momentum(m) => m.base.keys().collect(),
            TargetsConfig::External(e) => e.fallback.keys().collect(),
        };
        v.into_iter()
    }

    /// The weights the portfolio starts from, by symbol: the fixed map, momentum's base, the
    /// external fallback; for CPPI, all in the safe asset until the first valuation.
    pub fn initial(&self) -> BTreeMap<String, f64> {
        match self {
            TargetsConfig::Fixed(m) => m.clone(),
            TargetsConfig::Momentum(m) => m.base.clone(),
            TargetsConfig::External(e) => e.fallback.clone(),
            TargetsConfig::Cppi(c) => {
                let mut m: BTreeMap<String, f64> = c.risky.iter().map(|s| (s.clone(), 0.0)).collect();
                m.insert(c.safe.clone(), 1.0);
                m
            }
        }
    }

    /// The fixed weights, when the source is fixed.
    pub fn fixed(&self) -> Option<&BTreeMap<String, f64>> {
        match self {
            TargetsConfig::Fixed(m) => Some(m),
            _ => None,
        }
    }

    /// Short name of the source kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetsConfig::Fixed(_) => "fixed",
            TargetsConfig::Cppi(_) => "cppi",
            TargetsConfig::Momentum(_) => "momentum",
            TargetsConfig::External(_) => "external",
        }
    }
}

/// Fixed targets from `(symbol, weight)` pairs (tests and generated configs).
impl FromIterator<(String, f64)> for TargetsConfig {
    fn from_iter<I: IntoIterator<Item = (String, f64)>>(iter: I) -> Self {
        TargetsConfig::Fixed(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, f64); N]> for TargetsConfig {
    fn from(pairs: [(String, f64); N]) -> Self {
        TargetsConfig::Fixed(pairs.into_iter().collect())
    }
}

impl From<BTreeMap<String, f64>> for TargetsConfig {
    fn from(m: BTreeMap<String, f64>) -> Self {
        TargetsConfig::Fixed(m)
    }
}

const KEYWORDS: [&str; 6] = ["fixed", "cppi", "momentum", "external", "fallback", "max_age_secs"];

impl<'de> Deserialize<'de> for TargetsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TargetsVisitor)
    }
}

struct TargetsVisitor;

impl<'de> Visitor<'de> for TargetsVisitor {
    type Value = TargetsConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a map of token weights, or one of { fixed = {…} }, { cppi = {…} }, { momentum = {…} }, \
             { external = \"name\", fallback = {…} }",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TargetsConfig, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(TargetsConfig::Fixed(BTreeMap::new()));
        };
        let only = |map: &mut A, what: &str| -> Result<(), A::Error> {
            match map.next_key::<String>()? {
                None => Ok(()),
                Some(k) => {
                    Err(de::Error::custom(format!("`{k}` beside `{what}`: a `{what}` source stands alone")))
                }
            }
        };
        match first.as_str() {
            "fixed" => {
                let m = map.next_value()?;
                only(&mut map, "fixed")?;
                Ok(TargetsConfig::Fixed(m))
            }
            "cppi" => {
                let c = map.next_value()?;
                only(&mut map, "cppi")?;
                Ok(TargetsConfig::Cppi(c))
            }
            "momentum" => {
                let m = map.next_value()?;
                only(&mut map, "momentum")?;
                Ok(TargetsConfig::Momentum(m))
            }
            "external" | "fallback" | "max_age_secs" | "max_step" => {
                let (mut name, mut fallback, mut max_age, mut max_step) = (None, None, None, None);
                let mut key = Some(first);
                while let Some(k) = key {
                    match k.as_str() {
                        "external" => name = Some(map.next_value::<String>()?),
                        "fallback" => fallback = Some(map.next_value::<BTreeMap<String, f64>>()?),
                        "max_age_secs" => max_age = Some(map.next_value::<f64>()?),
                        "max_step" => max_step = Some(map.next_value::<f64>()?),
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown field `{other}` of an external source (expected external, \
                                 fallback, max_age_secs, max_step)"
                            )));
                        }
                    }
                    key = map.next_key::<String>()?;
                }
                let name = name.ok_or_else(|| de::Error::missing_field("external"))?;
                let fallback = fallback.ok_or_else(|| {
                    de::Error::custom(format!("external source `{name}` needs `fallback = {{ … }}` targets"))
                })?;
                Ok(TargetsConfig::External(ExternalConfig {
                    name,
                    fallback,
                    max_age_secs: max_age.unwrap_or(DEFAULT_MAX_AGE_SECS),
                    max_step: max_step.unwrap_or(DEFAULT_MAX_STEP),
                }))
            }
            _ => {
                let mut m = BTreeMap::new();
                let mut key = Some(first);
                while let Some(k) = key {
                    if KEYWORDS.contains(&k.as_str()) || k == "max_step" {
                        return Err(de::Error::custom(format!(
                            "`{k}` mixed with token weights: use either a plain map of weights or one source"
                        )));
                    }
                    let w: f64 = map.next_value()?;
                    if m.insert(k.clone(), w).is_some() {
                        return Err(de::Error::custom(format!("duplicate token `{k}`")));
                    }
                    key = map.next_key::<String>()?;
                }
                Ok(TargetsConfig::Fixed(m))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TargetsConfig, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn every_spelling_parses() {
        let plain = parse(r#"{"WETH": 0.6, "USDC": 0.4}"#).unwrap();
        let fixed = parse(r#"{"fixed": {"WETH": 0.6, "USDC": 0.4}}"#).unwrap();
        assert_eq!(plain, fixed);
        assert_eq!(plain.kind(), "fixed");
        let c = parse(r#"{"cppi": {"floor": 8000, "multiplier": 3, "risky": ["WETH"], "safe": "USDC"}}"#)
            .unwrap();
        assert_eq!(c.kind(), "cppi");
        assert_eq!(c.initial().get("USDC"), Some(&1.0));
        let m =
            parse(r#"{"momentum": {"lookback_secs": 60, "tilt": 2, "base": {"WETH": 0.5, "USDC": 0.5}}}"#)
                .unwrap();
        let TargetsConfig::Momentum(m) = m else { panic!() };
        assert_eq!(m.max_tilt, DEFAULT_MAX_TILT);
        let e = parse(r#"{"external": "alpha", "fallback": {"WETH": 0.5, "USDC": 0.5}, "max_step": 0.1}"#)
            .unwrap();
        let TargetsConfig::External(e) = e else { panic!() };
        assert_eq!((e.name.as_str(), e.max_step, e.max_age_secs), ("alpha", 0.1, DEFAULT_MAX_AGE_SECS));
    }

    #[test]
    fn malformed_sources_say_what_is_wrong() {
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert!(err(r#"{"WETH": 0.5, "cppi": {}}"#).contains("mixed with token weights"));
        assert!(err(r#"{"fixed": {"WETH": 1.0}, "USDC": 0.0}"#).contains("stands alone"));
        assert!(err(r#"{"external": "alpha"}"#).contains("needs `fallback"));
        assert!(err(r#"{"external": "a", "fallback": {}, "speed": 1}"#).contains("unknown field `speed`"));
        assert!(
            err(r#"{"cppi": {"floor": 1, "multiplier": 3, "risky": [], "safe": "U", "x": 1}}"#)
                .contains("unknown field")
        );
    }
}
