//! `cost.svg`: each portfolio's cumulative rebalancing cost over time (gas + pool fees + impact
//! against the exchange mid, USD), stepping up where a rebalance landed, with the notional netting
//! crossed internally in the legend. Drawn with `plotters`' SVG backend, as `weights.svg` is.

use plotters::prelude::*;

use crate::report::CostPoint;
use crate::svg::{COLORS, PlotError, plot_err};

/// Width and height of the image, pixels.
const SIZE: (u32, u32) = (900, 380);

/// Renders the plot: `points` in time order, `crossed[p]` the notional portfolio `p` crossed.
pub(crate) fn cost_svg(
    names: &[String],
    points: &[CostPoint],
    crossed: &[f64],
    t_max: f64,
) -> Result<String, PlotError> {
    let top = points.iter().map(|p| p.cumulative).fold(1.0, f64::max) * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("cumulative rebalancing cost (gas + pool fees + impact)", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..t_max.max(1.0), 0f64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("USD")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_err)?;
        for (p, name) in names.iter().enumerate() {
            let color = COLORS[p % COLORS.len()];
            // A step line: flat until each landing, then up by its cost.
            let mut pts = vec![(0.0, 0.0)];
            for c in points.iter().filter(|c| c.portfolio == p) {
                let last = pts.last().map_or(0.0, |l| l.1);
                pts.push((c.t_s, last));
                pts.push((c.t_s, c.cumulative));
            }
            let end = pts.last().map_or(0.0, |l| l.1);
            pts.push((t_max, end));
            let label = match crossed.get(p).copied().filter(|x| *x > 0.0) {
                Some(x) => format!("{name}: {end:.2} ({x:.0} crossed internally)"),
                None => format!("{name}: {end:.2}"),
            };
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_step_line_per_portfolio_with_its_total() {
        let points = vec![
            CostPoint { t_s: 1.0, portfolio: 0, cumulative: 2.5 },
            CostPoint { t_s: 3.0, portfolio: 1, cumulative: 4.0 },
            CostPoint { t_s: 5.0, portfolio: 0, cumulative: 6.0 },
        ];
        let svg = cost_svg(&["core".into(), "treasury".into()], &points, &[0.0, 1200.0], 10.0).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("core: 6.00"), "the legend carries the total");
        assert!(svg.contains("treasury: 4.00 (1200 crossed internally)"));
    }
}
