//! The planner: the legs that restore a portfolio's targets. Runs only after a trigger fired, so it
//! may allocate.
//!
//! 1. Value each asset at its mid: `v_i = holding_i / 10^decimals × mid_i`, `V = Σ v_i`,
//!    `w_i = v_i / V`, drift `d_i = w_i - t_i`.
//! 2. Value deltas `δ_i` (positive = buy, negative = sell), summing to zero:
//!    * [`PlanMode::ToTarget`]: `δ_i = (t_i - w_i) V`.
//!    * [`PlanMode::ToBand`]: every *breaching* asset (`|d_i| > band_i`) trades back to the edge of
//!      its band, `t_i ± band_i`, on its own side. That leaves sells `X` and buys `Y` that need not
//!      match; the larger side is exact, and the shortfall of the other side `|X - Y|` is spread over
//!      the assets on that side (breaching ones beyond their edge, non-breaching ones from where they
//!      are) in proportion to their remaining distance to target, never past the target. The
//!      distance is always enough, since the under-weights' total gap equals the over-weights' total
//!      excess. So: the assets on the side with more to trade end exactly on their band edge, the
//!      others between their band edge and their target, and untouched assets only move towards
//!      their target. An asset without a band (`+∞`) never breaches.
//! 3. Match over-weight sellers to under-weight buyers greedily, largest first (two sorted lists,
//!    each pair trades `min` of the two remainders), into pairwise [`Leg`]s. Remainders below
//!    `1e-12 × V` are dust and dropped.
//! 4. Each leg's `amount_in = floor(notional / sell_mid × 10^decimals)` in raw units of the sold
//!    token, converted with saturation (NaN, negative → 0) and clamped to what is still held after
//!    the seller's earlier legs: a plan never sells more than is held. Legs below
//!    `min_trade_notional` or with a zero amount are skipped and counted.
//!
//! Executed at the mid prices, every leg moves both its assets towards their targets without
//! crossing them, so no plan increases any asset's drift (property-tested below).

use alloy_primitives::U256;

use crate::config::PlanMode;
use crate::ids::TokenId;
use crate::intent::Leg;

/// Relative size below which a matching remainder is float dust.
const DUST: f64 = 1e-12;

/// One asset as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanAsset {
    /// The token.
    pub token: TokenId,
    /// Raw holding.
    pub holding: U256,
    /// `10^decimals`.
    pub scale: f64,
    /// Mid price in the numeraire (must be > 0).
    pub mid: f64,
    /// Target weight.
    pub target: f64,
    /// Absolute band in force (for [`PlanMode::ToBand`]; `+∞` for none).
    pub band: f64,
}

/// A plan: the legs, and how many were too small to trade.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Legs in execution order.
    pub legs: Vec<Leg>,
    /// Legs skipped for being below the minimum notional (or rounding to zero units).
    pub skipped: u32,
}

/// A raw holding in whole tokens.
#[inline]
pub fn to_whole(raw: &U256, scale: f64) -> f64 {
    f64::from(raw) / scale
}

/// A non-negative float amount of raw units as `U256`, rounded down: NaN and negatives give 0,
/// values past `U256::MAX` saturate.
#[inline]
pub fn float_to_units(x: f64) -> U256 {
    if x.is_nan() || x <= 0.0 {
        return U256::ZERO;
    }
    U256::saturating_from(x.floor())
}

/// Value deltas per asset (positive = buy, negative = sell), in the numeraire.
pub fn value_deltas(assets: &[PlanAsset], mode: PlanMode) -> Vec<f64> {
    let values: Vec<f64> = assets.iter().map(|a| to_whole(&a.holding, a.scale) * a.mid).collect();
    let total: f64 = values.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return vec![0.0; assets.len()];
    }
    match mode {
        PlanMode::ToTarget => assets.iter().zip(&values).map(|(a, v)| a.target * total - v).collect(),
        PlanMode::ToBand => {
            let drift: Vec<f64> = assets.iter().zip(&values).map(|(a, v)| v / total - a.target).collect();
            // Step 1: breaching assets to their band edge (weights, signed).
            let mut delta = vec![0.0; assets.len()];
            let (mut sells, mut buys) = (0.0, 0.0);
            for (i, (a, &d)) in assets.iter().zip(&drift).enumerate() {
                let excess = d.abs() - a.band;
                if excess > 0.0 {
                    if d > 0.0 {
                        delta[i] = -excess;
                        sells += excess;
                    } else {
                        delta[i] = excess;
                        buys += excess;
                    }
                }
            }
            // Step 2: spread the shortfall of the lighter side over that side's remaining distance
            // to target, proportionally.
            let (short, side) = if sells > buys { (sells - buys, 1.0) } else { (buys - sells, -1.0) };
            if short > 0.0 {
                // An under-weight asset (d < 0) buys (side +1); an over-weight one sells (side -1).
                let room: Vec<f64> = drift
                    .iter()
                    .zip(&delta)
                    .map(|(&d, &x)| if -d * side > 0.0 { (-d - x).abs() } else { 0.0 })
                    .collect();
                let total_room: f64 = room.iter().sum();
                if total_room > 0.0 {
                    let f = (short / total_room).min(1.0);
                    for (x, r) in delta.iter_mut().zip(&room) {
                        *x += side * r * f;
                    }
                }
            }
            delta.iter().map(|x| x * total).collect()
        }
    }
}

/// Plans the legs that move `assets` to their targets (or band edges) per `mode`.
pub fn plan(assets: &[PlanAsset], mode: PlanMode, min_trade_notional: f64) -> Plan {
    let deltas = value_deltas(assets, mode);
    let total: f64 = assets.iter().map(|a| to_whole(&a.holding, a.scale) * a.mid).sum();
    let dust = DUST * total;
    let mut sellers: Vec<(usize, f64)> =
        deltas.iter().enumerate().filter(|(_, d)| **d < -dust).map(|(i, d)| (i, -d)).collect();
    let mut buyers: Vec<(usize, f64)> =
        deltas.iter().enumerate().filter(|(_, d)| **d > dust).map(|(i, d)| (i, *d)).collect();
    // Largest first; ties by position, so plans are deterministic.
    let by_size = |a: &(usize, f64), b: &(usize, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    sellers.sort_by(by_size);
    buyers.sort_by(by_size);

    let mut left: Vec<U256> = assets.iter().map(|a| a.holding).collect();
    let mut out = Plan::default();
    let (mut si, mut bi) = (0, 0);
    while si < sellers.len() && bi < buyers.len() {
        let (s, s_rem) = sellers[si];
        let (b, b_rem) = buyers[bi];
        let notional = s_rem.min(b_rem);
        sellers[si].1 -= notional;
        buyers[bi].1 -= notional;
        if sellers[si].1 <= dust {
            si += 1;
        }
        if buyers[bi].1 <= dust {
            bi += 1;
        }
        let (sa, ba) = (&assets[s], &assets[b]);
        let amount = float_to_units(notional / sa.mid * sa.scale).min(left[s]);
        if notional.is_nan() || notional < min_trade_notional || amount.is_zero() {
            out.skipped += 1;
            continue;
        }
        left[s] -= amount;
        out.legs.push(Leg {
            sell: sa.token,
            buy: ba.token,
            amount_in: amount,
            notional,
            reference_price: sa.mid / ba.mid,
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Executes legs at mid prices: returns the new holdings in whole tokens.
    pub(crate) fn execute(assets: &[PlanAsset], legs: &[Leg]) -> Vec<f64> {
        let mut h: Vec<f64> = assets.iter().map(|a| to_whole(&a.holding, a.scale)).collect();
        for l in legs {
            let s = assets.iter().position(|a| a.token == l.sell).unwrap();
            let b = assets.iter().position(|a| a.token == l.buy).unwrap();
            let sold = to_whole(&l.amount_in, assets[s].scale);
            h[s] -= sold;
            h[b] += sold * assets[s].mid / assets[b].mid;
        }
        h
    }

    pub(crate) fn weights(assets: &[PlanAsset], whole: &[f64]) -> Vec<f64> {
        let v: Vec<f64> = assets.iter().zip(whole).map(|(a, h)| h * a.mid).collect();
        let t: f64 = v.iter().sum();
        v.iter().map(|x| x / t).collect()
    }

    fn max_drift(assets: &[PlanAsset], w: &[f64]) -> f64 {
        assets.iter().zip(w).map(|(a, w)| (w - a.target).abs()).fold(0.0, f64::max)
    }

    fn asset(token: u16, whole: f64, decimals: u8, mid: f64, target: f64, band: f64) -> PlanAsset {
        let scale = 10f64.powi(decimals as i32);
        PlanAsset { token: TokenId(token), holding: float_to_units(whole * scale), scale, mid, target, band }
    }

    #[test]
    fn to_target_restores_weights() {
        let assets = [
            asset(0, 1000.0, 18, 3000.0, 0.5, 0.05),
            asset(1, 1_000_000.0, 6, 1.0, 0.3, 0.05),
            asset(2, 20.0, 8, 60_000.0, 0.2, 0.05),
        ];
        let p = plan(&assets, PlanMode::ToTarget, 10.0);
        assert_eq!(p.skipped, 0);
        let w = weights(&assets, &execute(&assets, &p.legs));
        for (a, w) in assets.iter().zip(&w) {
            assert!((w - a.target).abs() < 1e-9, "{w} vs {}", a.target);
        }
        // Values 3M/1M/1.2M of 5.2M: ETH sells 400k and BTC 160k, both to USDC, largest first.
        assert_eq!(p.legs.len(), 2);
        assert_eq!((p.legs[0].sell, p.legs[0].buy), (TokenId(0), TokenId(1)));
        assert_eq!((p.legs[1].sell, p.legs[1].buy), (TokenId(2), TokenId(1)));
        assert!((p.legs[0].notional - 400_000.0).abs() < 1e-6);
        assert!((p.legs[0].reference_price - 3000.0).abs() < 1e-9);
        let want = U256::from(400_000u128 * 10u128.pow(18) / 3000);
        assert!(p.legs[0].amount_in.abs_diff(want) < U256::from(1_000_000u64), "{}", p.legs[0].amount_in);
    }

    #[test]
    fn to_band_stops_at_the_edge() {
        // 60/40 against 50/50 with a 5% band: both to their edges, 55/45.
        let assets = [asset(0, 20.0, 18, 3000.0, 0.5, 0.05), asset(1, 40_000.0, 6, 1.0, 0.5, 0.05)];
        let p = plan(&assets, PlanMode::ToBand, 10.0);
        assert_eq!(p.legs.len(), 1);
        let w = weights(&assets, &execute(&assets, &p.legs));
        assert!((w[0] - 0.55).abs() < 1e-9 && (w[1] - 0.45).abs() < 1e-9, "{w:?}");
        assert!((p.legs[0].notional - 5_000.0).abs() < 1e-6);
    }

    #[test]
    fn to_band_three_assets_one_breach() {
        // A at 0.40 vs 0.33 (band 0.05) breaches; B (0.31 vs 0.34) and C (0.29 vs 0.33) are
        // under-weight inside the band and absorb the 0.02 sale in proportion to their gaps (3:4).
        let assets = [
            asset(0, 40.0, 18, 1.0, 0.33, 0.05),
            asset(1, 31.0, 18, 1.0, 0.34, 0.05),
            asset(2, 29.0, 18, 1.0, 0.33, 0.05),
        ];
        let p = plan(&assets, PlanMode::ToBand, 0.0);
        let w = weights(&assets, &execute(&assets, &p.legs));
        assert!((w[0] - 0.38).abs() < 1e-9, "{w:?}");
        assert!((w[1] - (0.31 + 0.02 * 3.0 / 7.0)).abs() < 1e-9, "{w:?}");
        assert!((w[2] - (0.29 + 0.02 * 4.0 / 7.0)).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn to_band_lighter_side_goes_past_its_edge() {
        // A over by 0.20 (excess 0.15), B and C under by 0.10 (excess 0.05 each): sells 0.15 > buys
        // 0.10, so B and C go past their edges towards target, sharing the 0.05 equally.
        let assets = [
            asset(0, 60.0, 18, 1.0, 0.4, 0.05),
            asset(1, 20.0, 18, 1.0, 0.3, 0.05),
            asset(2, 20.0, 18, 1.0, 0.3, 0.05),
        ];
        let p = plan(&assets, PlanMode::ToBand, 0.0);
        let w = weights(&assets, &execute(&assets, &p.legs));
        assert!((w[0] - 0.45).abs() < 1e-9, "{w:?}");
        assert!((w[1] - 0.275).abs() < 1e-9 && (w[2] - 0.275).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn to_band_no_breach_no_legs() {
        let assets = [asset(0, 52.0, 18, 1.0, 0.5, 0.05), asset(1, 48.0, 18, 1.0, 0.5, 0.05)];
        assert!(plan(&assets, PlanMode::ToBand, 0.0).legs.is_empty());
    }

    #[test]
    fn min_notional_skips_and_counts() {
        let assets = [asset(0, 1.0, 18, 100.0, 0.5, 0.05), asset(1, 90.0, 6, 1.0, 0.5, 0.05)];
        // Delta is 5 USD.
        let p = plan(&assets, PlanMode::ToTarget, 10.0);
        assert!(p.legs.is_empty());
        assert_eq!(p.skipped, 1);
        let p = plan(&assets, PlanMode::ToTarget, 5.0);
        assert_eq!(p.legs.len(), 1);
    }

    #[test]
    fn never_sells_more_than_held() {
        // Everything in one asset, target 0 is impossible (validated > 0), so take 1e-9 target.
        let assets = [asset(0, 1.0, 18, 3000.0, 1e-9, 0.01), asset(1, 0.0, 6, 1.0, 1.0 - 1e-9, 0.01)];
        let p = plan(&assets, PlanMode::ToTarget, 0.0);
        let sold: U256 = p.legs.iter().map(|l| l.amount_in).fold(U256::ZERO, |a, b| a + b);
        assert!(sold <= assets[0].holding);
        assert!(!p.legs.is_empty());
    }

    #[test]
    fn float_to_units_is_safe() {
        assert_eq!(float_to_units(f64::NAN), U256::ZERO);
        assert_eq!(float_to_units(-5.0), U256::ZERO);
        assert_eq!(float_to_units(f64::NEG_INFINITY), U256::ZERO);
        assert_eq!(float_to_units(f64::INFINITY), U256::MAX);
        assert_eq!(float_to_units(1e300), U256::MAX);
        assert_eq!(float_to_units(2.9), U256::from(2));
        assert_eq!(float_to_units(1e30), U256::from(1e30 as u128));
        assert_eq!(f64::from(float_to_units(1e50)), 1e50);
    }

    #[test]
    fn zero_value_plans_nothing() {
        let assets = [asset(0, 0.0, 18, 3000.0, 0.5, 0.05), asset(1, 0.0, 6, 1.0, 0.5, 0.05)];
        let p = plan(&assets, PlanMode::ToTarget, 0.0);
        assert!(p.legs.is_empty() && p.skipped == 0);
    }

    fn arb_assets() -> impl Strategy<Value = Vec<PlanAsset>> {
        (2usize..=5).prop_flat_map(|n| {
            (
                proptest::collection::vec(0.0f64..1e6, n),
                proptest::collection::vec(1e-3f64..1e5, n),
                proptest::collection::vec(0.01f64..1.0, n),
                proptest::collection::vec(prop_oneof![Just(6u8), Just(8u8), Just(18u8)], n),
                0.001f64..0.2,
            )
                .prop_map(|(whole, mids, raw_t, dec, band)| {
                    let s: f64 = raw_t.iter().sum();
                    (0..whole.len())
                        .map(|i| asset(i as u16, whole[i], dec[i], mids[i], raw_t[i] / s, band))
                        .collect()
                })
        })
    }

    proptest! {
        #[test]
        fn legs_never_increase_drift_nor_oversell(
            assets in arb_assets(),
            to_band in any::<bool>(),
            min_notional in prop_oneof![Just(0.0), 0.0f64..1e4],
        ) {
            let mode = if to_band { PlanMode::ToBand } else { PlanMode::ToTarget };
            let before: Vec<f64> = assets.iter().map(|a| to_whole(&a.holding, a.scale)).collect();
            prop_assume!(before.iter().zip(&assets).map(|(h, a)| h * a.mid).sum::<f64>() > 1.0);
            let w0 = weights(&assets, &before);
            let p = plan(&assets, mode, min_notional);
            for a in &assets {
                let sold = p.legs.iter().filter(|l| l.sell == a.token)
                    .fold(U256::ZERO, |s, l| s + l.amount_in);
                prop_assert!(sold <= a.holding);
            }
            for l in &p.legs {
                prop_assert!(l.notional >= min_notional && l.notional.is_finite());
                prop_assert!(l.sell != l.buy);
            }
            let w1 = weights(&assets, &execute(&assets, &p.legs));
            prop_assert!(max_drift(&assets, &w1) <= max_drift(&assets, &w0) + 1e-9);
            // Exact up to the value of a few raw units (rounding down to integer amounts).
            let total: f64 = before.iter().zip(&assets).map(|(h, a)| h * a.mid).sum();
            let tol = 1e-9 + 4.0 * assets.iter().map(|a| a.mid / a.scale).sum::<f64>() / total;
            if mode == PlanMode::ToTarget && min_notional == 0.0 {
                prop_assert!(max_drift(&assets, &w1) <= tol, "{} > {tol}", max_drift(&assets, &w1));
            }
            if mode == PlanMode::ToBand && min_notional == 0.0 {
                for (a, (x0, x1)) in assets.iter().zip(w0.iter().zip(&w1)) {
                    let (d0, d1) = ((x0 - a.target).abs(), (x1 - a.target).abs());
                    prop_assert!(d1 <= d0 + 1e-9);
                    prop_assert!(d1 <= a.band + tol, "asset {:?} drift {d1} band {}", a.token, a.band);
                }
            }
        }
    }
}
