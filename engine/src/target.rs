//! Target sources at run time: how a portfolio's target weights move.
//!
//! | source | targets | recomputed on |
//! | --- | --- | --- |
//! | fixed | the configured weights | never |
//! | cppi | risky weight `r = min(1, m × max(0, V − F) / V)`, split **equally** over the risky assets (`r / k` each for `k` risky assets); the safe asset gets `1 − r` | every weight scan (each quote that evaluates the portfolio, each timer tick, each balance change): `V` is the portfolio's value at the current mids |
//! | momentum | `t_i = b_i(1 + s_i) / Σ_j b_j(1 + s_j)`, `s_i = clamp(tilt × R_i, −max_tilt, +max_tilt)`, `R_i = p_i(now) / p_i(now − lookback) − 1` | each sample of its lookback ring, taken on timer ticks every `lookback / MOMENTUM_STEPS` |
//! | external | the last good weights of its predictor, or the fallback | each accepted [`TargetUpdate`]; the fallback when the runtime's reader says the predictor went stale, or (backstop) when no update came for `2 × max_age` |
//!
//! **CPPI.** `F` is the floor and `m` the multiplier. Above the floor the portfolio holds `m` times
//! its cushion `V − F` in the risky assets (capped at everything); at or below the floor it holds
//! only the safe asset. Example: `F = 8000`, `m = 3`, 1 WETH at 2000 and 5000 USDC: `V = 7000 < F`,
//! `r = 0`; at 4000, `V = 9000`, cushion 1000, `r = 3000 / 9000 = 1/3`.
//!
//! **Momentum.** The ring holds `MOMENTUM_STEPS + 1` samples of every asset's mid, so once full its
//! oldest sample is `MOMENTUM_STEPS` sampling intervals (the lookback, or more when timer ticks are
//! coarser than `lookback / MOMENTUM_STEPS`) older than its newest; `R_i` compares the two. Until the
//! ring is full the targets are the base weights. Because `max_tilt < 1`, every tilted weight stays
//! within `[b_i(1 − max_tilt), b_i(1 + max_tilt)] / Σ…`, never zero. Example: base 0.5/0.5, `tilt =
//! 2`, WETH up 10 % and USDC flat: `s = (0.2, 0)`, raw `(0.6, 0.5)`, targets `(6/11, 5/11)`.
//!
//! Nothing here allocates after construction: the ring, the base and fallback weights are sized at
//! load; the targets are rewritten in place.

use crate::clock::Nanos;
use crate::config::{MAX_EXTERNAL_ASSETS, WEIGHT_SUM_TOLERANCE};
use crate::ids::PortfolioId;

/// Sampling steps over a momentum lookback (the ring holds one more sample than this).
pub const MOMENTUM_STEPS: usize = 16;

/// The risky weight of CPPI: `min(1, multiplier × max(0, value − floor) / value)`; 0 for a value
/// that is not positive and finite.
#[inline]
pub fn cppi_risky_weight(value: f64, floor: f64, multiplier: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 0.0;
    }
    let cushion = (value - floor).max(0.0);
    (multiplier * cushion / value).min(1.0)
}

/// Momentum targets: `out_i = b_i(1 + s_i) / Σ_j b_j(1 + s_j)` with
/// `s_i = clamp(tilt × ret(i), −max_tilt, max_tilt)`; a non-finite return counts as 0.
#[inline]
pub fn momentum_weights(base: &[f64], ret: impl Fn(usize) -> f64, tilt: f64, max_tilt: f64, out: &mut [f64]) {
    let mut sum = 0.0;
    for (i, (o, &b)) in out.iter_mut().zip(base).enumerate() {
        let r = ret(i);
        let s = if r.is_finite() { (tilt * r).max(-max_tilt).min(max_tilt) } else { 0.0 };
        *o = b * (1.0 + s);
        sum += *o;
    }
    if sum > 0.0 && sum.is_finite() {
        for o in out.iter_mut() {
            *o /= sum;
        }
    } else {
        out.copy_from_slice(base);
    }
}

/// A set of weights from a predictor, handed by the runtime's reader to the engine through a
/// bounded queue. Fixed-size, `Copy`: pushing one never allocates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetUpdate {
    /// The portfolio (its `targets` are `external`).
    pub portfolio: PortfolioId,
    /// Weights aligned with the portfolio's assets ([`Portfolio::assets`](crate::Portfolio::assets),
    /// token-id order); slots past the asset count are ignored. Ignored when `fallback` is set.
    pub weights: [f64; MAX_EXTERNAL_ASSETS],
    /// Go back to the configured fallback targets (the predictor went stale).
    pub fallback: bool,
}

/// Why the engine refused a [`TargetUpdate`] (the reader checks the same things first, so a
/// refusal here means the two disagree, e.g. the engine's backstop fell back first).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum TargetReject {
    /// No such portfolio, or its targets are not external.
    #[error("portfolio {0:?} has no external targets")]
    NotExternal(PortfolioId),
    /// A weight is not finite or outside [0, 1], or the weights do not sum to 1.
    #[error("weights are not a distribution (sum {sum})")]
    NotADistribution {
        /// Their sum.
        sum: f64,
    },
    /// A weight moved more than `max_step` from the targets in force.
    #[error("a weight moved by {step}, more than max_step {max_step}")]
    StepTooLarge {
        /// The largest change.
        step: f64,
        /// The bound.
        max_step: f64,
    },
}

/// CPPI state, aligned with the portfolio's assets.
#[derive(Debug, Clone)]
pub(crate) struct Cppi {
    pub(crate) floor: f64,
    pub(crate) multiplier: f64,
    /// Whether each asset is risky (else it is the safe one).
    pub(crate) risky: Vec<bool>,
    pub(crate) n_risky: f64,
}

impl Cppi {
    /// Rewrites `targets` for a portfolio worth `value`.
    #[inline]
    pub(crate) fn retarget(&self, value: f64, targets: &mut [f64]) {
        let r = cppi_risky_weight(value, self.floor, self.multiplier);
        let each = r / self.n_risky;
        for (t, &is_risky) in targets.iter_mut().zip(&self.risky) {
            *t = if is_risky { each } else { 1.0 - r };
        }
    }
}

/// Momentum state: base weights and the lookback ring of mids.
#[derive(Debug, Clone)]
pub(crate) struct Momentum {
    pub(crate) base: Vec<f64>,
    pub(crate) tilt: f64,
    pub(crate) max_tilt: f64,
    pub(crate) interval_ns: Nanos,
    pub(crate) next_ns: Nanos,
    /// `(MOMENTUM_STEPS + 1) × n` mids, one row per sample.
    pub(crate) ring: Vec<f64>,
    /// Row the next sample goes to (the oldest once the ring is full).
    pub(crate) head: usize,
    pub(crate) filled: usize,
}

impl Momentum {
    pub(crate) fn new(base: Vec<f64>, tilt: f64, max_tilt: f64, lookback_secs: f64, start_ns: Nanos) -> Self {
        let n = base.len();
        Self {
            base,
            tilt,
            max_tilt,
            interval_ns: ((lookback_secs / MOMENTUM_STEPS as f64) * 1e9) as Nanos,
            next_ns: start_ns,
            ring: vec![f64::NAN; (MOMENTUM_STEPS + 1) * n],
            head: 0,
            filled: 0,
        }
    }

    /// Samples the mids when a sample is due (`mid(i)` is `None` for an asset without a fresh
    /// price: no sample then, retried next tick). Returns true when it rewrote `targets`.
    pub(crate) fn on_timer(
        &mut self,
        now: Nanos,
        mid: impl Fn(usize) -> Option<f64>,
        targets: &mut [f64],
    ) -> bool {
        if now < self.next_ns {
            return false;
        }
        let n = self.base.len();
        if (0..n).any(|i| mid(i).is_none_or(|m| !(m.is_finite() && m > 0.0))) {
            return false;
        }
        self.next_ns = now.saturating_add(self.interval_ns.max(1));
        let rows = MOMENTUM_STEPS + 1;
        let start = self.head * n;
        for (i, slot) in self.ring[start..start + n].iter_mut().enumerate() {
            *slot = mid(i).unwrap_or(f64::NAN);
        }
        let newest = self.head;
        self.head = (self.head + 1) % rows;
        self.filled = (self.filled + 1).min(rows);
        if self.filled < rows {
            return false;
        }
        let (old, new) = (self.head * n, newest * n);
        let ring = &self.ring;
        momentum_weights(
            &self.base,
            |i| ring[new + i] / ring[old + i] - 1.0,
            self.tilt,
            self.max_tilt,
            targets,
        );
        true
    }
}

/// External (predictor) state.
#[derive(Debug, Clone)]
pub(crate) struct External {
    pub(crate) fallback: Vec<f64>,
    pub(crate) max_age_ns: Nanos,
    pub(crate) max_step: f64,
    /// Engine time of the last applied predictor update.
    pub(crate) last_ns: Nanos,
    pub(crate) on_fallback: bool,
}

impl External {
    /// Checks an update against the targets in force; on success, rewrites them.
    pub(crate) fn apply(
        &mut self,
        u: &TargetUpdate,
        now: Nanos,
        targets: &mut [f64],
    ) -> Result<(), TargetReject> {
        if u.fallback {
            targets.copy_from_slice(&self.fallback);
            self.on_fallback = true;
            return Ok(());
        }
        let n = targets.len();
        let w = &u.weights[..n.min(MAX_EXTERNAL_ASSETS)];
        let sum: f64 = w.iter().sum();
        if w.len() != n
            || w.iter().any(|x| !(x.is_finite() && (0.0..=1.0).contains(x)))
            || (sum - 1.0).abs() > 1e-3
        {
            return Err(TargetReject::NotADistribution { sum });
        }
        let step = w.iter().zip(targets.iter()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        if step > self.max_step + WEIGHT_SUM_TOLERANCE {
            return Err(TargetReject::StepTooLarge { step, max_step: self.max_step });
        }
        for (t, x) in targets.iter_mut().zip(w) {
            *t = x / sum;
        }
        self.last_ns = now;
        self.on_fallback = false;
        Ok(())
    }

    /// The backstop: no update for twice `max_age` while on predicted weights → fallback.
    pub(crate) fn check_stale(&mut self, now: Nanos, targets: &mut [f64]) -> bool {
        if self.on_fallback || now.saturating_sub(self.last_ns) <= self.max_age_ns.saturating_mul(2) {
            return false;
        }
        targets.copy_from_slice(&self.fallback);
        self.on_fallback = true;
        true
    }
}

/// A portfolio's target source, resolved to asset positions.
#[derive(Debug, Clone)]
pub(crate) enum TargetSource {
    Fixed,
    Cppi(Cppi),
    Momentum(Box<Momentum>),
    External(Box<External>),
}

impl TargetSource {
    /// Short name of the kind.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            TargetSource::Fixed => "fixed",
            TargetSource::Cppi(_) => "cppi",
            TargetSource::Momentum(_) => "momentum",
            TargetSource::External(_) => "external",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cppi_by_hand() {
        // F = 8000, m = 3: V = 9000 → cushion 1000 → r = 3000 / 9000.
        assert!((cppi_risky_weight(9000.0, 8000.0, 3.0) - 1.0 / 3.0).abs() < 1e-15);
        // V = 12000 → cushion 4000 → 12000 / 12000 = 1 (capped at 1 beyond).
        assert_eq!(cppi_risky_weight(12_000.0, 8000.0, 3.0), 1.0);
        assert_eq!(cppi_risky_weight(20_000.0, 8000.0, 3.0), 1.0);
        // At or below the floor: all safe.
        assert_eq!(cppi_risky_weight(8000.0, 8000.0, 3.0), 0.0);
        assert_eq!(cppi_risky_weight(7000.0, 8000.0, 3.0), 0.0);
        assert_eq!(cppi_risky_weight(f64::NAN, 8000.0, 3.0), 0.0);
        // Two risky assets split r equally: V = 10000, F = 6000, m = 2 → r = 0.8 → 0.4 each.
        let c = Cppi { floor: 6000.0, multiplier: 2.0, risky: vec![true, true, false], n_risky: 2.0 };
        let mut t = [0.0; 3];
        c.retarget(10_000.0, &mut t);
        assert!(
            (t[0] - 0.4).abs() < 1e-15 && (t[1] - 0.4).abs() < 1e-15 && (t[2] - 0.2).abs() < 1e-15,
            "{t:?}"
        );
    }

    #[test]
    fn momentum_by_hand() {
        let mut out = [0.0; 2];
        // WETH +10 %, USDC flat, tilt 2: s = (0.2, 0) → raw (0.6, 0.5) → (6/11, 5/11).
        momentum_weights(&[0.5, 0.5], |i| [0.1, 0.0][i], 2.0, 0.5, &mut out);
        assert!((out[0] - 6.0 / 11.0).abs() < 1e-15 && (out[1] - 5.0 / 11.0).abs() < 1e-15, "{out:?}");
        // WETH +50 %: s = 1.0 capped at 0.5 → raw (0.75, 0.5) → (0.6, 0.4).
        momentum_weights(&[0.5, 0.5], |i| [0.5, 0.0][i], 2.0, 0.5, &mut out);
        assert!((out[0] - 0.6).abs() < 1e-15 && (out[1] - 0.4).abs() < 1e-15, "{out:?}");
        // WETH −10 %, base 0.6/0.4, tilt 1: raw (0.54, 0.4) → (0.54/0.94, 0.4/0.94).
        momentum_weights(&[0.6, 0.4], |i| [-0.1, 0.0][i], 1.0, 0.5, &mut out);
        assert!((out[0] - 0.54 / 0.94).abs() < 1e-15, "{out:?}");
    }

    #[test]
    fn momentum_ring_waits_for_the_lookback_then_compares_its_ends() {
        // Lookback 160 s: a sample every 10 s, 17 samples to fill.
        let mut m = Momentum::new(vec![0.5, 0.5], 2.0, 0.5, 160.0, 0);
        let mut t = [0.5, 0.5];
        let sec = 1_000_000_000u64;
        // WETH rises linearly from 2000 to 2200 over the lookback.
        for k in 0..=16u64 {
            let eth = 2000.0 + 200.0 * k as f64 / 16.0;
            let changed = m.on_timer(k * 10 * sec, |i| Some([eth, 1.0][i]), &mut t);
            assert_eq!(changed, k == 16, "sample {k}");
            // A tick before the next sample is due takes none.
            assert!(!m.on_timer(k * 10 * sec + 5 * sec, |i| Some([eth * 9.0, 1.0][i]), &mut t));
        }
        assert!((t[0] - 6.0 / 11.0).abs() < 1e-12, "{t:?}");
        // A missing price takes no sample (and no target change).
        assert!(!m.on_timer(170 * sec, |i| [None, Some(1.0)][i], &mut t));
        // Next sample: oldest is now the 2012.5 one; WETH back at 2012.5 → base weights.
        assert!(m.on_timer(171 * sec, |i| Some([2012.5, 1.0][i]), &mut t));
        assert!((t[0] - 0.5).abs() < 1e-12, "{t:?}");
    }

    #[test]
    fn external_checks_steps_and_falls_back() {
        let mut e = External {
            fallback: vec![0.5, 0.5],
            max_age_ns: 10,
            max_step: 0.2,
            last_ns: 0,
            on_fallback: true,
        };
        let mut t = [0.5, 0.5];
        let mut u =
            TargetUpdate { portfolio: PortfolioId(0), weights: [0.0; MAX_EXTERNAL_ASSETS], fallback: false };
        u.weights[..2].copy_from_slice(&[0.7, 0.3]);
        assert!(e.apply(&u, 5, &mut t).is_ok());
        assert_eq!((t, e.on_fallback), ([0.7, 0.3], false));
        u.weights[..2].copy_from_slice(&[0.95, 0.05]);
        assert!(matches!(e.apply(&u, 6, &mut t), Err(TargetReject::StepTooLarge { .. })));
        u.weights[..2].copy_from_slice(&[0.7, 0.2]);
        assert!(matches!(e.apply(&u, 6, &mut t), Err(TargetReject::NotADistribution { .. })));
        assert_eq!(t, [0.7, 0.3]);
        // Backstop: stale after 2 × max_age with no update.
        assert!(!e.check_stale(25, &mut t));
        assert!(e.check_stale(26, &mut t));
        assert_eq!((t, e.on_fallback), ([0.5, 0.5], true));
    }
}
