//! Output of the harness: per-stage summaries, the text table, JSON, `.hgrm` percentile files and
//! the SVG percentile plot.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A new histogram: 1 ns to 1 hour... auto-resizing, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is valid")
}

/// One stage's percentiles, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StageSummary {
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest value.
    pub max_ns: u64,
    /// Number of samples.
    pub count: u64,
}

impl StageSummary {
    /// Summarises `h` (all zeros when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self { p50_ns: 0, p90_ns: 0, p99_ns: 0, p999_ns: 0, max_ns: 0, count: 0 };
        }
        Self {
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            count: h.len(),
        }
    }
}

/// A named stage and its histogram.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Name (JSON key, file stem).
    pub name: &'static str,
    /// What it measures.
    pub what: &'static str,
    /// Samples, ns.
    pub hist: Histogram<u64>,
}

fn fmt_ns(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// The per-stage table.
pub fn table(stages: &[Stage]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<18} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}  what",
        "stage", "p50", "p90", "p99", "p99.9", "max", "count"
    );
    for st in stages {
        let m = StageSummary::of(&st.hist);
        let _ = writeln!(
            s,
            "{:<18} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}  {}",
            st.name,
            fmt_ns(m.p50_ns),
            fmt_ns(m.p90_ns),
            fmt_ns(m.p99_ns),
            fmt_ns(m.p999_ns),
            fmt_ns(m.max_ns),
            m.count,
            st.what
        );
    }
    s
}

/// HdrHistogram's percentile-distribution text (as `outputPercentileDistribution` writes it), values
/// in microseconds (ns / 1000), five ticks per half distance.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let scale = 1_000.0;
    let mut s = String::new();
    let _ =
        writeln!(s, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / scale;
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:>12.3} {q:>2.12} {:>10} {:>14.2}",
                    v.count_since_last_iteration(),
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:>12.3} {q:>2.12} {:>10}", v.count_since_last_iteration());
            }
        }
    }
    let _ =
        writeln!(s, "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]", h.mean() / scale, h.stdev() / scale);
    let _ = writeln!(s, "#[Max     = {:>12.3}, Total count    = {:>12}]", h.max() as f64 / scale, h.len());
    let _ = writeln!(s, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), h.distinct_values());
    s
}

/// Writes `<dir>/<stage>.hgrm` for every stage.
pub fn write_hgrm(dir: &Path, stages: &[Stage]) -> eyre::Result<()> {
    std::fs::create_dir_all(dir)?;
    for st in stages {
        std::fs::write(dir.join(format!("{}.hgrm", st.name)), hgrm(&st.hist))?;
    }
    Ok(())
}

/// The stages' JSON object `{name: summary}`, in order.
pub fn stages_json(stages: &[Stage]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for st in stages {
        m.insert(st.name.to_owned(), serde_json::to_value(StageSummary::of(&st.hist)).unwrap_or_default());
    }
    serde_json::Value::Object(m)
}

/// An SVG percentile plot: x = percentile on a 1/(1−q) log axis, y = latency (µs, log), one line per
/// non-empty stage.
pub fn plot(path: &Path, title: &str, stages: &[Stage]) -> eyre::Result<()> {
    use plotters::prelude::*;
    let series: Vec<(&str, Vec<(f64, f64)>)> = stages
        .iter()
        .filter(|s| !s.hist.is_empty())
        .map(|s| {
            let pts = s
                .hist
                .iter_quantiles(5)
                .filter(|v| v.quantile_iterated_to() < 0.99999)
                .map(|v| {
                    let x = -(1.0 - v.quantile_iterated_to()).log10();
                    (x, (v.value_iterated_to().max(1) as f64) / 1e3)
                })
                .collect();
            (s.name, pts)
        })
        .collect();
    let ymin = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(f64::INFINITY, f64::min);
    let ymax = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(0.0, f64::max);
    let (ymin, ymax) = if ymin.is_finite() && ymax > 0.0 { (ymin * 0.8, ymax * 1.25) } else { (0.01, 1.0) };
    let root = SVGBackend::new(path, (1000, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| eyre::eyre!("plot: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..5f64, (ymin..ymax).log_scale())
        .map_err(|e| eyre::eyre!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(6)
        .x_label_formatter(&|x| {
            let q = 100.0 * (1.0 - 10f64.powf(-*x));
            format!("{q}%")
        })
        .draw()
        .map_err(|e| eyre::eyre!("plot: {e}"))?;
    for (i, (name, pts)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| eyre::eyre!("plot: {e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| eyre::eyre!("plot: {e}"))?;
    root.present().map_err(|e| eyre::eyre!("plot: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_hgrm() {
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = StageSummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!(s.p50_ns >= 499_000 && s.p50_ns <= 501_000);
        let text = hgrm(&h);
        assert!(text.contains("#[Max     ="));
        assert!(text.lines().count() > 20);
    }
}
