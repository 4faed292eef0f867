//! The backtest's plots: `frontier.svg`, time-weighted tracking error against total cost for every
//! config of the sweep with the Pareto front drawn through its members (at the lowest latency swept),
//! and `latency.svg`, the front at each latency swept, so what latency costs shows in money.

use plotters::prelude::*;

use crate::backtest::{Row, latencies, latency_of};
use crate::svg::{COLORS, PlotError, plot_err};

/// Image size, pixels.
const SIZE: (u32, u32) = (900, 560);

/// Axis ranges with headroom: (cost, tracking error in %).
fn ranges(rows: &[&Row]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let finite = rows.iter().filter(|r| r.total_cost.is_finite() && r.tracking_error.is_finite());
    let (mut c0, mut c1, mut t0, mut t1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for r in finite {
        c0 = c0.min(r.total_cost);
        c1 = c1.max(r.total_cost);
        t0 = t0.min(r.tracking_error * 100.0);
        t1 = t1.max(r.tracking_error * 100.0);
    }
    if c0 > c1 {
        return (0.0..1.0, 0.0..1.0);
    }
    let pad = |lo: f64, hi: f64| {
        let d = ((hi - lo) * 0.1).max(hi.abs() * 0.02).max(1e-6);
        (lo - d)..(hi + d)
    };
    (pad(c0, c1), pad(t0, t1))
}

/// A config's label: its swept parameters, latency aside.
fn label(r: &Row) -> String {
    r.params
        .iter()
        .filter(|(k, _)| k.as_str() != "latency_us")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The front of one latency, by cost.
fn front(rows: &[Row], latency: u64) -> Vec<(f64, f64)> {
    let mut f: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.pareto && latency_of(r) == latency)
        .map(|r| (r.total_cost, r.tracking_error * 100.0))
        .collect();
    f.sort_by(|a, b| a.0.total_cmp(&b.0));
    f
}

/// `frontier.svg`.
pub(crate) fn frontier(rows: &[Row]) -> Result<String, PlotError> {
    let lat = latencies(rows).first().copied().unwrap_or(0);
    let mine: Vec<&Row> = rows.iter().filter(|r| latency_of(r) == lat).collect();
    let (xr, yr) = ranges(&mine);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("tracking error against cost (latency {lat} µs); ★ = Pareto front"),
                ("sans-serif", 16),
            )
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xr, yr)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("total cost: gas + pool fees + impact (USD)")
            .y_desc("time-weighted tracking error (%)")
            .draw()
            .map_err(plot_err)?;
        let pts = front(rows, lat);
        chart
            .draw_series(LineSeries::new(pts.clone(), COLORS[3].stroke_width(2)))
            .map_err(plot_err)?
            .label("Pareto front")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], COLORS[3].stroke_width(3)));
        for r in &mine {
            let (x, y) = (r.total_cost, r.tracking_error * 100.0);
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let color = if r.pareto { COLORS[3] } else { COLORS[0] };
            chart.draw_series(std::iter::once(Circle::new((x, y), 5, color.filled()))).map_err(plot_err)?;
            let text = if r.pareto { format!("★ {}", label(r)) } else { label(r) };
            chart
                .draw_series(std::iter::once(Text::new(text, (x, y), ("sans-serif", 11).into_font())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// `latency.svg`.
pub(crate) fn latency_fronts(rows: &[Row]) -> Result<String, PlotError> {
    let all: Vec<&Row> = rows.iter().collect();
    let (xr, yr) = ranges(&all);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("the Pareto front at each latency", ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xr, yr)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("total cost: gas + pool fees + impact (USD)")
            .y_desc("time-weighted tracking error (%)")
            .draw()
            .map_err(plot_err)?;
        for (k, lat) in latencies(rows).into_iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let pts = front(rows, lat);
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(format!("latency {lat} µs"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3)));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}
