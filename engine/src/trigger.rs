//! Triggers: when a portfolio should rebalance.
//!
//! * **Drift** — an asset's weight `w` left its band around its target `t`: `|w - t| > abs_band`, or
//!   `|w / t - 1| > rel_band`. Both are compiled at load time into one absolute band per asset,
//!   `min(abs_band, rel_band × t)` (an unset band is +∞), since `|w/t - 1| > r ⟺ |w - t| > r·t` for
//!   `t > 0`; the check is then one comparison per asset, and the same per-asset band is what an
//!   interval index over prices needs.
//! * **Temporal** — `interval_secs` elapsed since the last rebalance (or since the engine started).
//! * **Volatility** — a drift band scaled by realised volatility:
//!   `band = clamp(base_band × σ / reference_vol, min_band, max_band)`, the same band for every asset.
//!   σ is the annualised EWMA volatility of log mid returns (see [`VolTable`]). For a portfolio of
//!   several assets σ is the **largest** σ of its instrument-priced assets: the asset that moves most
//!   is the one that drives the weights out of their bands, the choice needs no covariance estimate,
//!   and it errs towards a wider band (less churn) when one asset turns volatile. Until every such
//!   asset has [`VOL_WARMUP_SAMPLES`] samples, the band is `base_band` (clamped to the bounds too).
//!
//! A portfolio fires when any of its triggers fires. The reported one is a drift breach if any
//! (all drift triggers fold into one band per asset, the tightest), else the first volatility or
//! temporal trigger in config order that fires.

use crate::clock::Nanos;
use crate::config::TriggerConfig;
use crate::ids::TokenId;

/// Seconds in a year, for annualising volatility (365 × 24 × 3600).
pub const SECONDS_PER_YEAR: f64 = 365.0 * 24.0 * 3600.0;
/// Shortest interval between two volatility samples of a token. Log returns are taken over at least
/// this much time, which keeps bid/ask bounce from dominating the estimate and keeps the `ln`/`exp`
/// of the estimator out of almost every quote.
pub const VOL_SAMPLE_INTERVAL_NS: Nanos = 1_000_000_000;
/// Samples a token needs before its volatility estimate is used; before that the band is `base_band`.
pub const VOL_WARMUP_SAMPLES: u32 = 10;

/// What kind of trigger fired, for stats and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A fixed drift band.
    Drift,
    /// A volatility-scaled drift band.
    Volatility,
    /// An elapsed interval.
    Temporal,
}

/// A compiled trigger of one portfolio.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Fixed drift bands.
    Drift {
        /// Absolute band per asset, in the portfolio's asset order.
        bands: Vec<f64>,
        /// The configured absolute band (recompiles `bands` when targets move).
        abs_band: Option<f64>,
        /// The configured relative band.
        rel_band: Option<f64>,
    },
    /// Fires every `interval_ns`.
    Temporal {
        /// Interval between rebalances.
        interval_ns: Nanos,
    },
    /// Volatility-scaled band.
    Volatility {
        /// Index of the half-life in the engine's [`VolTable`].
        slot: usize,
        /// Band at the reference volatility.
        base_band: f64,
        /// Annualised volatility at which the band is `base_band`.
        reference_vol: f64,
        /// Lower bound of the band.
        min_band: f64,
        /// Upper bound of the band.
        max_band: f64,
    },
}

impl Trigger {
    /// Compiles a config trigger for a portfolio with these (normalised) targets; volatility
    /// triggers register their half-life with `vol`.
    pub(crate) fn compile(cfg: &TriggerConfig, targets: &[f64], vol: &mut VolTableBuilder) -> Self {
        match *cfg {
            TriggerConfig::Drift { abs_band, rel_band } => Trigger::Drift {
                bands: targets.iter().map(|&t| drift_band(abs_band, rel_band, t)).collect(),
                abs_band,
                rel_band,
            },
            TriggerConfig::Temporal { interval_secs } => {
                Trigger::Temporal { interval_ns: secs_to_ns(interval_secs) }
            }
            TriggerConfig::Volatility { base_band, reference_vol, min_band, max_band, halflife_secs } => {
                Trigger::Volatility {
                    slot: vol.slot(halflife_secs),
                    base_band,
                    reference_vol,
                    min_band,
                    max_band,
                }
            }
        }
    }

    /// Its kind.
    pub fn kind(&self) -> TriggerKind {
        match self {
            Trigger::Drift { .. } => TriggerKind::Drift,
            Trigger::Temporal { .. } => TriggerKind::Temporal,
            Trigger::Volatility { .. } => TriggerKind::Volatility,
        }
    }
}

/// Seconds to nanoseconds, saturating (config values are validated finite and ≥ 0).
#[inline]
pub(crate) fn secs_to_ns(secs: f64) -> Nanos {
    // `as` saturates and maps NaN to 0.
    (secs * 1e9) as Nanos
}

/// The absolute band of one asset for a drift trigger: `min(abs_band, rel_band × target)`, +∞ when
/// neither is set.
#[inline]
pub fn drift_band(abs_band: Option<f64>, rel_band: Option<f64>, target: f64) -> f64 {
    let a = abs_band.unwrap_or(f64::INFINITY);
    let r = rel_band.map_or(f64::INFINITY, |r| r * target);
    a.min(r)
}

/// The volatility-scaled band: `clamp(base_band × sigma / reference_vol, min_band, max_band)`, or
/// `base_band` clamped to the bounds when `sigma` is `None` (not warmed up).
#[inline]
pub fn vol_band(sigma: Option<f64>, base_band: f64, reference_vol: f64, min_band: f64, max_band: f64) -> f64 {
    let raw = match sigma {
        Some(s) if s.is_finite() => base_band * s / reference_vol,
        _ => base_band,
    };
    // `max` then `min` instead of `clamp`, which panics on a bad range; NaN falls to `min_band`.
    raw.max(min_band).min(max_band)
}

/// The asset whose drift exceeds its band by the most, if any does:
/// `argmax_i (|w_i - t_i| - band_i)` over those with `|w_i - t_i| > band_i`. Returns
/// `(index, band_i)`. Hot path.
#[inline(always)]
pub(crate) fn worst_breach(
    weights: &[f64],
    targets: &[f64],
    band: impl Fn(usize) -> f64,
) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    let mut best_excess = 0.0;
    for (i, (&w, &t)) in weights.iter().zip(targets).enumerate() {
        let b = band(i);
        let excess = (w - t).abs() - b;
        // Finite floats: `a - b > 0 ⟺ a > b`, so this fires exactly when the band is crossed.
        if excess > best_excess {
            best_excess = excess;
            best = Some((i, b));
        }
    }
    best
}

/// Collects the distinct half-lives of the volatility triggers while portfolios are compiled.
#[derive(Debug, Default)]
pub(crate) struct VolTableBuilder {
    halflives: Vec<f64>,
}

impl VolTableBuilder {
    fn slot(&mut self, halflife_secs: f64) -> usize {
        match self.halflives.iter().position(|&h| h == halflife_secs) {
            Some(k) => k,
            None => {
                self.halflives.push(halflife_secs);
                self.halflives.len() - 1
            }
        }
    }

    pub(crate) fn build(self, n_tokens: usize) -> VolTable {
        let n = self.halflives.len();
        VolTable {
            halflives: self.halflives,
            anchors: vec![Anchor::default(); if n == 0 { 0 } else { n_tokens }],
            ewmas: vec![Ewma::default(); n * n_tokens],
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Anchor {
    mid: f64,
    ns: Nanos,
    set: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Ewma {
    /// Variance of log returns per second.
    var_per_s: f64,
    samples: u32,
    /// Annualised volatility, `sqrt(var_per_s × SECONDS_PER_YEAR)`.
    sigma: f64,
}

/// Realised volatility of each token's log mid returns, one EWMA per distinct half-life.
///
/// A sample is taken when a token's mid updates at least [`VOL_SAMPLE_INTERVAL_NS`] (by quote
/// receive time) after the previous sample: `r = ln(mid / mid_prev)` over `dt` seconds gives the
/// variance-rate observation `r² / dt`, folded in with weight `α = 1 - 2^(-dt / halflife)` (so the
/// EWMA is time-normalised: irregular sampling weights each observation by the time it covers). The
/// first sample initialises the estimate. σ = `sqrt(var × SECONDS_PER_YEAR)`.
#[derive(Debug, Clone)]
pub struct VolTable {
    halflives: Vec<f64>,
    anchors: Vec<Anchor>,
    ewmas: Vec<Ewma>,
}

impl VolTable {
    /// Number of distinct half-lives.
    pub fn slots(&self) -> usize {
        self.halflives.len()
    }

    /// Records a new mid of a token. Hot path: one branch unless a sample is due.
    #[inline(always)]
    pub(crate) fn on_price(&mut self, token: TokenId, mid: f64, ns: Nanos) {
        let Some(a) = self.anchors.get_mut(token.idx()) else { return };
        if a.set && ns.saturating_sub(a.ns) < VOL_SAMPLE_INTERVAL_NS {
            return;
        }
        self.sample(token, mid, ns);
    }

    #[cold]
    #[inline(never)]
    fn sample(&mut self, token: TokenId, mid: f64, ns: Nanos) {
        let n = self.halflives.len();
        let Some(a) = self.anchors.get_mut(token.idx()) else { return };
        if !a.set || a.mid.is_nan() || a.mid <= 0.0 {
            *a = Anchor { mid, ns, set: true };
            return;
        }
        let dt = (ns - a.ns) as f64 * 1e-9;
        let r = (mid / a.mid).ln();
        *a = Anchor { mid, ns, set: true };
        let obs = r * r / dt;
        if !obs.is_finite() {
            return;
        }
        let base = token.idx() * n;
        for (k, &h) in self.halflives.iter().enumerate() {
            let Some(e) = self.ewmas.get_mut(base + k) else { return };
            if e.samples == 0 {
                e.var_per_s = obs;
            } else {
                let alpha = 1.0 - (-dt / h).exp2();
                e.var_per_s += alpha * (obs - e.var_per_s);
            }
            e.samples = e.samples.saturating_add(1);
            e.sigma = (e.var_per_s * SECONDS_PER_YEAR).sqrt();
        }
    }

    /// Annualised σ of a token for a half-life slot, once warmed up.
    #[inline(always)]
    pub fn sigma(&self, token: TokenId, slot: usize) -> Option<f64> {
        let e = self.ewmas.get(token.idx() * self.halflives.len() + slot)?;
        (e.samples >= VOL_WARMUP_SAMPLES).then_some(e.sigma)
    }

    /// Number of samples of a token for a slot.
    pub fn samples(&self, token: TokenId, slot: usize) -> u32 {
        self.ewmas.get(token.idx() * self.halflives.len() + slot).map_or(0, |e| e.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_band_is_the_tighter_of_abs_and_rel() {
        assert_eq!(drift_band(Some(0.05), None, 0.5), 0.05);
        assert_eq!(drift_band(None, Some(0.1), 0.5), 0.05);
        assert_eq!(drift_band(Some(0.02), Some(0.1), 0.5), 0.02);
        assert_eq!(drift_band(None, None, 0.5), f64::INFINITY);
    }

    #[test]
    fn vol_band_scales_and_clamps() {
        assert_eq!(vol_band(None, 0.05, 0.6, 0.01, 0.2), 0.05);
        assert_eq!(vol_band(None, 0.5, 0.6, 0.01, 0.2), 0.2);
        assert!((vol_band(Some(1.2), 0.05, 0.6, 0.01, 0.2) - 0.1).abs() < 1e-15);
        assert_eq!(vol_band(Some(100.0), 0.05, 0.6, 0.01, 0.2), 0.2);
        assert_eq!(vol_band(Some(0.0), 0.05, 0.6, 0.01, 0.2), 0.01);
        assert_eq!(vol_band(Some(f64::NAN), 0.05, 0.6, 0.01, 0.2), 0.05);
    }

    #[test]
    fn worst_breach_is_strict() {
        let t = [0.5, 0.5];
        assert_eq!(worst_breach(&[0.55, 0.45], &t, |_| 0.06), None);
        assert_eq!(worst_breach(&[0.625, 0.375], &t, |_| 0.125), None);
        assert!(worst_breach(&[0.6250001, 0.3749999], &t, |_| 0.125).is_some());
        assert_eq!(worst_breach(&[0.6, 0.4], &t, |i| [0.2, 0.05][i]), Some((1, 0.05)));
    }

    #[test]
    fn ewma_matches_constant_vol() {
        let mut b = VolTableBuilder::default();
        let s = b.slot(60.0);
        assert_eq!(b.slot(60.0), s);
        let mut v = b.build(1);
        let t = TokenId(0);
        // Alternating ±1% every second: r² / dt = 1e-4 per second exactly (ln symmetric steps).
        let mut mid = 100.0;
        v.on_price(t, mid, 0);
        for k in 1..=50u64 {
            let f = 1.01f64;
            mid = if k % 2 == 1 { mid * f } else { mid / f };
            v.on_price(t, mid, k * VOL_SAMPLE_INTERVAL_NS);
            // Quotes in between don't sample.
            v.on_price(t, mid * 1.5, k * VOL_SAMPLE_INTERVAL_NS + 1);
        }
        let r = 1.01f64.ln();
        let want = (r * r * SECONDS_PER_YEAR).sqrt();
        let got = v.sigma(t, s).unwrap();
        assert!((got / want - 1.0).abs() < 1e-9, "{got} vs {want}");
        assert_eq!(v.samples(t, s), 50);
    }
}
