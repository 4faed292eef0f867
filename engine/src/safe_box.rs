//! The safe box of a portfolio: a price box around the current prices inside which no drift or
//! volatility band can be crossed, so a quote that leaves the price inside the box needs no
//! evaluation.
//!
//! The box is a uniform relative half-width `ε`: every instrument-priced asset `j` may move anywhere
//! in `[p_j(1-ε), p_j(1+ε)]`, independently; fixed-price assets do not move. Asset `i`'s weight is
//! largest when its price is at the top of its interval and every other moving price at the bottom,
//! and smallest the other way round. With `w` the weight of `i` now, `R` the weight of the other
//! moving assets and `F` that of the other fixed ones (`S = w + R + F`, 1 up to rounding), the
//! worst-case weights are
//!
//! ```text
//! up:   w·a⁺ / (w·a⁺ + R(1-ε) + F)  ≤ U   ⟺  ε ≤ (U·S - w) / (w(1-U)·m + U·R)
//! down: w·a⁻ / (w·a⁻ + R(1+ε) + F)  ≥ L   ⟺  ε ≤ (w - L·S) / (w(1-L)·m + L·R)
//! ```
//!
//! where `a± = 1 ± ε` and `m = 1` when `i` moves, `a± = 1` and `m = 0` when its price is fixed,
//! `U = t + b - δ` and `L = t - b + δ` for target `t`, band `b` and a margin `δ` ([`BOX_MARGIN`]).
//! `ε` is the smallest of these bounds over the assets, capped at [`MAX_BOX_EPS`]. Each bound is
//! exact for the box (the worst case is a corner), so the only slack is `δ`, which covers the
//! rounding of the weights computed on the hot path (a few ulps of a number ≤ 1).
//!
//! The band `b` of an asset is the tightest band that can apply to it: its drift band and the
//! `min_band` of every volatility trigger (a volatility band never falls below its floor, so σ
//! moving never invalidates a box). Temporal triggers fire only on timer ticks, which evaluate every
//! portfolio anyway.

/// Absolute margin kept inside every band, covering the rounding of hot-path weights.
pub const BOX_MARGIN: f64 = 1e-9;
/// Largest relative half-width of a box (a portfolio with no band still gets re-boxed when a price
/// halves or grows by half, which keeps its value far from overflow).
pub const MAX_BOX_EPS: f64 = 0.5;
/// A portfolio's value must lie in `[MIN_BOX_VALUE, MAX_BOX_VALUE]` for a box: far enough from
/// underflow and overflow that no price in the box can make it zero or infinite.
pub(crate) const MIN_BOX_VALUE: f64 = 1e-200;
/// See [`MIN_BOX_VALUE`].
pub(crate) const MAX_BOX_VALUE: f64 = 1e200;

/// The half-width `ε` of the safe box around the current prices, or `None` when there is none (an
/// asset at, over or within [`BOX_MARGIN`] of its band, or weights that are not finite).
///
/// `weights`, `targets` and `bands` are aligned with the portfolio's assets; `moves(i)` says whether
/// asset `i`'s price can move (is instrument-priced).
pub(crate) fn safe_epsilon(
    weights: &[f64],
    targets: &[f64],
    bands: &[f64],
    moves: impl Fn(usize) -> bool,
) -> Option<f64> {
    let mut sum = 0.0;
    let mut moving = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        if !(w.is_finite() && w >= 0.0) {
            return None;
        }
        sum += w;
        if moves(i) {
            moving += w;
        }
    }
    let mut eps = MAX_BOX_EPS;
    for (i, ((&w, &t), &b)) in weights.iter().zip(targets).zip(bands).enumerate() {
        let m = if moves(i) { 1.0 } else { 0.0 };
        let r = (moving - m * w).max(0.0);
        let upper = t + b - BOX_MARGIN;
        // Weights never exceed 1: an upper edge at or above 1 cannot be crossed.
        if upper < 1.0 {
            eps = eps.min(bound(upper * sum - w, w * (1.0 - upper) * m + upper * r)?);
        }
        let lower = t - b + BOX_MARGIN;
        if lower > 0.0 {
            eps = eps.min(bound(w - lower * sum, w * (1.0 - lower) * m + lower * r)?);
        }
    }
    (eps > 0.0).then_some(eps)
}

/// `ε ≤ num / den` with `den ≥ 0`: `None` when no `ε ≥ 0` satisfies it, +∞ when every one does.
#[inline]
fn bound(num: f64, den: f64) -> Option<f64> {
    if num.is_nan() || num <= 0.0 {
        // At or over the edge already (or NaN from a NaN band).
        return None;
    }
    Some(if den > 0.0 { num / den } else { f64::INFINITY })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Weights after scaling each asset's value by `f[i]`.
    fn reweigh(w: &[f64], f: &[f64]) -> Vec<f64> {
        let v: Vec<f64> = w.iter().zip(f).map(|(w, f)| w * f).collect();
        let total: f64 = v.iter().sum();
        v.iter().map(|x| x / total).collect()
    }

    #[test]
    fn on_target_box_matches_the_closed_form() {
        // Five assets of 0.2 (the last one fixed), band 0.02: for a moving asset going up,
        // ε = 0.02 / (0.2·0.78 + 0.22·0.6).
        let w = [0.2; 5];
        let b = [0.02; 5];
        let eps = safe_epsilon(&w, &w, &b, |i| i < 4).unwrap();
        let want = (0.02 - BOX_MARGIN) / (0.2 * (0.78 + BOX_MARGIN) + (0.22 - BOX_MARGIN) * 0.6);
        assert!((eps - want).abs() < 1e-12, "{eps} vs {want}");
        // At the corner the weight sits just inside the upper edge.
        let up = reweigh(&w, &[1.0 + eps, 1.0 - eps, 1.0 - eps, 1.0 - eps, 1.0]);
        assert!(up[0] <= 0.22 - BOX_MARGIN * 0.99 && up[0] > 0.22 - 1e-8, "{}", up[0]);
    }

    #[test]
    fn no_box_at_or_over_the_edge_and_none_needed_without_bands() {
        assert_eq!(safe_epsilon(&[0.55, 0.45], &[0.5, 0.5], &[0.05, 0.05], |_| true), None);
        assert_eq!(safe_epsilon(&[0.6, 0.4], &[0.5, 0.5], &[0.05, 0.05], |_| true), None);
        assert_eq!(safe_epsilon(&[f64::NAN, 0.4], &[0.5, 0.5], &[0.05, 0.05], |_| true), None);
        let inf = f64::INFINITY;
        assert_eq!(safe_epsilon(&[0.9, 0.1], &[0.5, 0.5], &[inf, inf], |_| true), Some(MAX_BOX_EPS));
        // Only fixed prices: nothing can move.
        assert_eq!(safe_epsilon(&[0.5, 0.5], &[0.5, 0.5], &[0.01, 0.01], |_| false), Some(MAX_BOX_EPS));
    }

    proptest! {
        /// Every corner of the box keeps every weight inside `band - margin/2` (corners are the
        /// worst case), and a box 1% wider breaks some band edge minus the margin unless the box
        /// was capped.
        #[test]
        fn corners_stay_inside_and_the_box_is_tight(
            raw in prop::collection::vec((0.05f64..1.0, 0.0f64..0.3, any::<bool>()), 2..6),
            jitter in prop::collection::vec(-1.0f64..1.0, 6),
            band in 0.005f64..0.3,
        ) {
            let n = raw.len();
            let tsum: f64 = raw.iter().map(|r| r.0).sum();
            let targets: Vec<f64> = raw.iter().map(|r| r.0 / tsum).collect();
            let moves: Vec<bool> = raw.iter().map(|r| r.2).collect();
            let bands: Vec<f64> = targets.iter().map(|&t| band.min(0.9 * t)).collect();
            // Current weights: targets moved by up to the band.
            let f: Vec<f64> = (0..n).map(|i| 1.0 + jitter[i] * raw[i].1).collect();
            let w = reweigh(&targets, &f);
            let Some(eps) = safe_epsilon(&w, &targets, &bands, |i| moves[i]) else {
                // No box: some asset must be within the margin of (or over) its band.
                prop_assert!((0..n).any(|i| (w[i] - targets[i]).abs() >= bands[i] - 1e-6));
                return Ok(());
            };
            let mut tight = false;
            for corner in 0..(1u32 << n) {
                let scale = |e: f64| -> Vec<f64> {
                    (0..n)
                        .map(|j| if !moves[j] { 1.0 } else if corner >> j & 1 == 1 { 1.0 + e } else { 1.0 - e })
                        .collect()
                };
                let c = reweigh(&w, &scale(eps));
                for i in 0..n {
                    prop_assert!((c[i] - targets[i]).abs() <= bands[i] - BOX_MARGIN / 2.0,
                        "corner {corner:b} asset {i}: {} vs {} ± {}", c[i], targets[i], bands[i]);
                }
                let wide = reweigh(&w, &scale(eps * 1.01));
                tight |= (0..n).any(|i| (wide[i] - targets[i]).abs() > bands[i] - BOX_MARGIN);
            }
            prop_assert!(tight || eps == MAX_BOX_EPS || eps * 1.01 >= 1.0);
        }
    }
}
