//! `weights.svg`: each portfolio's weights over time, drawn as drift from target (weight − target,
//! percentage points) so a 1-point band is visible, with the band in force shaded around zero and a
//! marker where a rebalance landed. Plain SVG, no dependencies.

use std::fmt::Write;

use keel_runtime::pipeline::Sample;

use crate::report::LandedMark;

const WIDTH: f64 = 900.0;
const PANEL_H: f64 = 260.0;
const MARGIN_L: f64 = 60.0;
const MARGIN_R: f64 = 190.0;
const MARGIN_T: f64 = 36.0;
const MARGIN_B: f64 = 40.0;
const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

/// Renders the plot. `targets[p]` lists portfolio `p`'s assets in sample order.
pub(crate) fn weights_svg(
    names: &[String],
    targets: &[Vec<(String, f64)>],
    samples: &[Sample],
    landed: &[LandedMark],
) -> String {
    let panels = names.len().max(1);
    let height = panels as f64 * (PANEL_H + MARGIN_T + MARGIN_B);
    let t_max = samples.iter().map(|s| s.t_s).fold(1.0, f64::max);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (p, name) in names.iter().enumerate() {
        let top = p as f64 * (PANEL_H + MARGIN_T + MARGIN_B) + MARGIN_T;
        let plot_w = WIDTH - MARGIN_L - MARGIN_R;
        let x = |t: f64| MARGIN_L + t / t_max * plot_w;
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.portfolio == p).collect();
        let assets = targets.get(p).cloned().unwrap_or_default();
        // Symmetric y range in weight points: the largest drift or band seen, with headroom.
        let mut span: f64 = 0.005;
        for s in &mine {
            if s.band.is_finite() {
                span = span.max(s.band);
            }
            for (w, (_, t)) in s.weights.iter().zip(&assets) {
                span = span.max((w - t).abs());
            }
        }
        let span = span * 1.15;
        let y = |d: f64| top + (1.0 - (d.clamp(-span, span) + span) / (2.0 * span)) * PANEL_H;
        let _ = writeln!(
            svg,
            r#"<text x="{MARGIN_L}" y="{}" font-size="14" font-weight="bold">{}: drift from target (weight − target), band shaded, rebalances marked</text>"#,
            top - 12.0,
            escape(name)
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{MARGIN_L}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
        );
        for k in -2..=2 {
            let d = span * k as f64 / 2.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{MARGIN_L}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="{}"/><text x="{}" y="{:.1}" text-anchor="end">{:+.2}</text>"##,
                MARGIN_L + plot_w,
                y(d),
                y(d),
                if k == 0 { "#999" } else { "#eee" },
                MARGIN_L - 6.0,
                y(d) + 4.0,
                d * 100.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">percentage points</text>"#,
            top + PANEL_H / 2.0,
            top + PANEL_H / 2.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">time (s), 0 – {:.0}</text>"#,
            MARGIN_L + plot_w / 2.0,
            top + PANEL_H + 28.0,
            t_max
        );
        // The band in force (it may be volatility-scaled): ±band around zero drift.
        let banded: Vec<&&Sample> = mine.iter().filter(|s| s.band.is_finite()).collect();
        if !banded.is_empty() {
            let mut pts = String::new();
            for s in &banded {
                let _ = write!(pts, "{:.1},{:.1} ", x(s.t_s), y(s.band));
            }
            for s in banded.iter().rev() {
                let _ = write!(pts, "{:.1},{:.1} ", x(s.t_s), y(-s.band));
            }
            let _ = writeln!(
                svg,
                r##"<polygon points="{pts}" fill="#4caf50" fill-opacity="0.12" stroke="#4caf50" stroke-opacity="0.5"/>"##
            );
        }
        for (a, (sym, target)) in assets.iter().enumerate() {
            let color = COLORS[a % COLORS.len()];
            let pts: String = mine
                .iter()
                .filter_map(|s| s.weights.get(a).map(|w| format!("{:.1},{:.1} ", x(s.t_s), y(w - target))))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.6"/>"#
            );
            let ly = top + 16.0 + a as f64 * 18.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{} (target {:.0}%)</text>"#,
                WIDTH - MARGIN_R + 10.0,
                WIDTH - MARGIN_R + 28.0,
                WIDTH - MARGIN_R + 32.0,
                ly + 4.0,
                escape(sym),
                target * 100.0
            );
        }
        let ly = top + 16.0 + assets.len() as f64 * 18.0;
        let _ = writeln!(
            svg,
            r##"<rect x="{}" y="{}" width="18" height="10" fill="#4caf50" fill-opacity="0.2"/><text x="{}" y="{}">band</text>"##,
            WIDTH - MARGIN_R + 10.0,
            ly - 5.0,
            WIDTH - MARGIN_R + 32.0,
            ly + 4.0
        );
        for m in landed.iter().filter(|m| m.portfolio == p) {
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{top}" y2="{}" stroke="#222" stroke-width="1" stroke-dasharray="2,2"/><path d="M{:.1},{} l-5,-8 h10 z" fill="#222"><title>rebalance landed in block {}</title></path>"##,
                x(m.t_s),
                x(m.t_s),
                top + PANEL_H,
                x(m.t_s),
                top + PANEL_H,
                m.block
            );
        }
        let ly = top + 16.0 + (assets.len() + 1) as f64 * 18.0 + 8.0;
        let _ = writeln!(
            svg,
            r##"<path d="M{},{} l-5,-8 h10 z" fill="#222"/><text x="{}" y="{}">rebalance landed</text>"##,
            WIDTH - MARGIN_R + 19.0,
            ly + 4.0,
            WIDTH - MARGIN_R + 32.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_panel_per_portfolio_with_markers() {
        let samples = vec![
            Sample { t_s: 0.0, portfolio: 0, weights: vec![0.6, 0.4], band: 0.02 },
            Sample { t_s: 1.0, portfolio: 0, weights: vec![0.63, 0.37], band: 0.02 },
        ];
        let targets = vec![vec![("WETH".to_string(), 0.6), ("USDC".to_string(), 0.4)]];
        let marks = vec![LandedMark { t_s: 0.5, portfolio: 0, block: 7 }];
        let svg = weights_svg(&["core".into()], &targets, &samples, &marks);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("core: drift from target"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("block 7"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
