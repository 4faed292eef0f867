//! `weights.svg`: each portfolio's weights over time, drawn as drift from target (weight − target,
//! percentage points) so a 1-point band is visible, with the band in force shaded around zero and a
//! marker where a rebalance landed. Drawn with `plotters`' SVG backend, as the harness's plots are.

use keel_runtime::pipeline::Sample;
use plotters::prelude::*;

use crate::report::LandedMark;

/// Width of the image, pixels.
const WIDTH: u32 = 900;
/// Height of one portfolio's panel, pixels.
const PANEL_H: u32 = 340;
/// Colour of the band.
const BAND: RGBColor = RGBColor(0x4c, 0xaf, 0x50);
/// Line colours of a panel's assets, in order (distinct on white).
pub(crate) const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];
/// Colour of the landed markers.
const MARK: RGBColor = RGBColor(0x22, 0x22, 0x22);

/// A plotting failure, with the backend's message.
#[derive(Debug, thiserror::Error)]
#[error("drawing a plot: {0}")]
pub(crate) struct PlotError(String);

pub(crate) fn plot_err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// Renders the plot. `targets[p]` lists portfolio `p`'s assets in sample order.
pub(crate) fn weights_svg(
    names: &[String],
    targets: &[Vec<(String, f64)>],
    samples: &[Sample],
    landed: &[LandedMark],
) -> Result<String, PlotError> {
    let panels = names.len().max(1);
    let t_max = samples.iter().map(|s| s.t_s).fold(1.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, PANEL_H * panels as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let areas = root.split_evenly((panels, 1));
        for (p, (name, area)) in names.iter().zip(&areas).enumerate() {
            let assets = targets.get(p).cloned().unwrap_or_default();
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.portfolio == p).collect();
            panel(area, name, &assets, &mine, landed.iter().filter(|m| m.portfolio == p), t_max)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// One portfolio's panel, in percentage points of drift.
fn panel<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    name: &str,
    assets: &[(String, f64)],
    mine: &[&Sample],
    landed: impl Iterator<Item = &'a LandedMark>,
    t_max: f64,
) -> Result<(), PlotError> {
    // Symmetric y range: the largest drift or band seen, with headroom, in percentage points.
    let mut span: f64 = 0.005;
    for s in mine {
        if s.band.is_finite() {
            span = span.max(s.band);
        }
        for (w, (_, t)) in s.weights.iter().zip(assets) {
            span = span.max((w - t).abs());
        }
    }
    let span = span * 115.0;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{name}: drift from target (weight − target)"), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..t_max, -span..span)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("percentage points")
        .y_label_formatter(&|d| format!("{d:+.2}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(plot_err)?;

    // The band in force (it may be volatility-scaled): ±band around zero drift.
    let banded: Vec<&&Sample> = mine.iter().filter(|s| s.band.is_finite()).collect();
    if !banded.is_empty() {
        let upper = banded.iter().map(|s| (s.t_s, s.band * 100.0));
        let lower = banded.iter().rev().map(|s| (s.t_s, -s.band * 100.0));
        chart
            .draw_series(std::iter::once(Polygon::new(
                upper.chain(lower).collect::<Vec<_>>(),
                BAND.mix(0.15),
            )))
            .map_err(plot_err)?
            .label("band")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], BAND.mix(0.3).filled()));
    }
    chart.draw_series(LineSeries::new([(0.0, 0.0), (t_max, 0.0)], BLACK.mix(0.4))).map_err(plot_err)?;
    for (a, (sym, target)) in assets.iter().enumerate() {
        let color = COLORS[a % COLORS.len()];
        let pts = mine.iter().filter_map(|s| s.weights.get(a).map(|w| (s.t_s, (w - target) * 100.0)));
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(plot_err)?
            .label(format!("{sym} (target {:.0}%)", target * 100.0))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
    }
    let mut first = true;
    for m in landed {
        chart
            .draw_series(DashedLineSeries::new([(m.t_s, -span), (m.t_s, span)], 3, 3, MARK.mix(0.6).into()))
            .map_err(plot_err)?;
        let marker = chart
            .draw_series(std::iter::once(TriangleMarker::new((m.t_s, -span), 7, MARK.filled())))
            .map_err(plot_err)?;
        if first {
            marker
                .label("rebalance landed")
                .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, MARK.filled()));
            first = false;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_panel_per_portfolio_with_markers() {
        let samples = vec![
            Sample { t_s: 0.0, portfolio: 0, weights: vec![0.6, 0.4], band: 0.02, targets: vec![0.6, 0.4] },
            Sample { t_s: 1.0, portfolio: 0, weights: vec![0.63, 0.37], band: 0.02, targets: vec![0.6, 0.4] },
        ];
        let targets = vec![vec![("WETH".to_string(), 0.6), ("USDC".to_string(), 0.4)]];
        let marks = vec![LandedMark { t_s: 0.5, portfolio: 0, block: 7 }];
        let svg = weights_svg(&["core".into()], &targets, &samples, &marks).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("core: drift from target"));
        assert!(svg.contains("WETH (target 60%)") && svg.contains("USDC (target 40%)"));
        assert!(svg.contains("rebalance landed") && svg.contains("band"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
