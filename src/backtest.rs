//! `keel backtest REC --sweep 'abs_band=0.005,0.01 cost_aware=off,on latency_us=0,200000'`: many
//! configs over one recording, each an independent `keel replay` (in virtual time, deterministic),
//! in parallel on all cores. Writes `backtest.json` (one row per config: its parameters, total cost,
//! time-weighted tracking error, …), `backtest.md` (the table), `frontier.svg` (tracking error
//! against cost, the Pareto front marked) and, with several `latency_us` values, `latency.svg` (the
//! front at each latency: what latency costs in money).
//!
//! `--shard I/N` runs configs I, I+N, I+2N, … of the sweep only; `keel backtest merge --out DIR
//! SHARD_DIR…` joins the shards' `backtest.json` into one result. Shards share nothing but the
//! recording, so a sweep too big for one machine runs as independent jobs under any batch scheduler.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use eyre::{Context, eyre};
use keel_engine::config::TriggerConfig;
use keel_engine::value::CostMode;
use keel_runtime::replay::{ReplayOptions, open_recording, replay};
use serde::{Deserialize, Serialize};

use crate::config::KeelConfig;
use crate::report;

/// The parameters a sweep can vary.
pub(crate) const SWEEP_KEYS: [&str; 6] =
    ["abs_band", "cost_aware", "kappa", "margin", "cooldown_secs", "latency_us"];

/// Most configs one sweep may expand to.
pub(crate) const MAX_CONFIGS: usize = 10_000;

/// One config of a sweep and what its replay gave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Row {
    /// Position in the sweep's expansion (stable across shards).
    pub(crate) index: usize,
    /// The swept parameters, by name.
    pub(crate) params: BTreeMap<String, String>,
    /// Gas + pool fees + price impact against the exchange mid, numeraire.
    pub(crate) total_cost: f64,
    /// Gas part.
    pub(crate) gas: f64,
    /// Pool fees part.
    pub(crate) pool_fees: f64,
    /// Impact part.
    pub(crate) impact: f64,
    /// Notional traded.
    pub(crate) notional: f64,
    /// Notional crossed internally (netting).
    pub(crate) crossed: f64,
    /// Rebalances fired.
    pub(crate) rebalances: u64,
    /// Rebalances landed on the replay chain.
    pub(crate) landed: u64,
    /// Mean over portfolios of the time-weighted tracking error.
    pub(crate) tracking_error: f64,
    /// On the Pareto front of its latency (no other config of that latency has lower or equal cost
    /// and tracking error, one of them strictly lower).
    pub(crate) pareto: bool,
}

/// The whole result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Backtest {
    /// The sweep as given.
    pub(crate) sweep: String,
    /// The rows, by index.
    pub(crate) rows: Vec<Row>,
}

/// Parses `key=v1,v2 key2=…` into the Cartesian product, in a stable order (the last key varies
/// fastest).
pub(crate) fn expand(sweep: &str) -> eyre::Result<Vec<BTreeMap<String, String>>> {
    let mut axes: Vec<(String, Vec<String>)> = Vec::new();
    for part in sweep.split_whitespace() {
        let (key, values) =
            part.split_once('=').ok_or_else(|| eyre!("sweep: `{part}` is not key=value[,value…]"))?;
        if !SWEEP_KEYS.contains(&key) {
            return Err(eyre!("sweep: unknown parameter `{key}` (known: {})", SWEEP_KEYS.join(", ")));
        }
        if axes.iter().any(|(k, _)| k == key) {
            return Err(eyre!("sweep: `{key}` given twice"));
        }
        let values: Vec<String> = values.split(',').filter(|v| !v.is_empty()).map(str::to_owned).collect();
        if values.is_empty() {
            return Err(eyre!("sweep: `{key}` has no values"));
        }
        axes.push((key.to_owned(), values));
    }
    let mut out = vec![BTreeMap::new()];
    for (key, values) in &axes {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for base in &out {
            for v in values {
                let mut m: BTreeMap<String, String> = base.clone();
                m.insert(key.clone(), v.clone());
                next.push(m);
            }
        }
        if next.len() > MAX_CONFIGS {
            return Err(eyre!("sweep: more than {MAX_CONFIGS} configs"));
        }
        out = next;
    }
    Ok(out)
}

/// `I/N` with I < N.
pub(crate) fn parse_shard(s: &str) -> eyre::Result<(usize, usize)> {
    let (i, n) = s.split_once('/').ok_or_else(|| eyre!("--shard: `{s}` is not I/N"))?;
    let (i, n): (usize, usize) = (i.parse().wrap_err("--shard: I")?, n.parse().wrap_err("--shard: N")?);
    if n == 0 || i >= n {
        return Err(eyre!("--shard: need 0 ≤ I < N, got {i}/{n}"));
    }
    Ok((i, n))
}

/// `cfg` with the swept parameters applied; the replay latency in µs.
fn apply(mut cfg: KeelConfig, params: &BTreeMap<String, String>) -> eyre::Result<(KeelConfig, u64)> {
    let num = |k: &str, v: &str| v.parse::<f64>().map_err(|_| eyre!("sweep: {k}={v} is not a number"));
    let mut latency_us = 0;
    for (k, v) in params {
        match k.as_str() {
            "abs_band" => {
                let band = num(k, v)?;
                for p in &mut cfg.portfolios {
                    for t in &mut p.triggers {
                        if let TriggerConfig::Drift { abs_band, .. } = t {
                            *abs_band = Some(band);
                        }
                    }
                }
            }
            "cost_aware" => {
                let mode = match v.as_str() {
                    "on" | "true" => CostMode::CostAware,
                    "off" | "false" => CostMode::Band,
                    other => return Err(eyre!("sweep: cost_aware={other}: use on or off")),
                };
                cfg.portfolios.iter_mut().for_each(|p| p.cost.mode = mode);
            }
            "kappa" => {
                let x = num(k, v)?;
                cfg.portfolios.iter_mut().for_each(|p| p.cost.kappa = x);
            }
            "margin" => {
                let x = num(k, v)?;
                cfg.portfolios.iter_mut().for_each(|p| p.cost.margin = x);
            }
            "cooldown_secs" => {
                let x = num(k, v)?;
                cfg.portfolios.iter_mut().for_each(|p| p.cooldown_secs = x);
            }
            "latency_us" => {
                latency_us = v.parse().map_err(|_| eyre!("sweep: latency_us={v} is not a whole number"))?
            }
            other => return Err(eyre!("sweep: unknown parameter `{other}`")),
        }
    }
    // The same checks as a config file: a swept value out of range is named.
    let cfg = cfg.revalidate().wrap_err_with(|| format!("sweep point {params:?}"))?;
    Ok((cfg, latency_us))
}

/// Replays `rec` with one sweep point.
fn run_one(
    rec: &Path,
    base: &KeelConfig,
    index: usize,
    params: &BTreeMap<String, String>,
) -> eyre::Result<Row> {
    let (cfg, latency_us) = apply(base.clone(), params)?;
    let spec = crate::live::spec_from_config(&cfg)?;
    let mut reader = open_recording(rec).wrap_err_with(|| format!("opening {}", rec.display()))?;
    let opts = ReplayOptions { latency_ns: latency_us.saturating_mul(1_000), journal: None };
    let output = replay(&mut reader, &spec, opts, |_| {})?;
    let run = report::build(&cfg, output.report, None);
    let c = &run.total_cost;
    let tes: Vec<f64> = run.portfolios.iter().filter_map(|p| p.tracking_error).collect();
    Ok(Row {
        index,
        params: params.clone(),
        total_cost: c.total(),
        gas: c.gas,
        pool_fees: c.pool_fees,
        impact: c.impact,
        notional: c.notional,
        crossed: c.crossed,
        rebalances: run.rebalances,
        landed: run.rebalances_landed,
        tracking_error: if tes.is_empty() { f64::NAN } else { tes.iter().sum::<f64>() / tes.len() as f64 },
        pareto: false,
    })
}

/// Runs the sweep (or its shard) over `rec` and writes the outputs into `out`.
pub(crate) fn run(
    rec: &Path,
    config: Option<&Path>,
    sweep: &str,
    shard: Option<&str>,
    out: &Path,
    progress: bool,
) -> eyre::Result<()> {
    let points = expand(sweep)?;
    let (shard_i, shard_n) = shard.map(parse_shard).transpose()?.unwrap_or((0, 1));
    let base = match config {
        Some(p) => KeelConfig::load(p)?,
        None => {
            let reader = open_recording(rec).wrap_err_with(|| format!("opening {}", rec.display()))?;
            KeelConfig::parse(&reader.header().config_toml).wrap_err("the config stored in the recording")?
        }
    };
    let mine: Vec<(usize, &BTreeMap<String, String>)> =
        points.iter().enumerate().filter(|(i, _)| i % shard_n == shard_i).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(mine.len().max(1));
    if progress {
        eprintln!(
            "backtest: {} config(s) of {} (shard {shard_i}/{shard_n}) over {} on {workers} thread(s)",
            mine.len(),
            points.len(),
            rec.display()
        );
    }
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Row>> = Mutex::new(Vec::with_capacity(mine.len()));
    let failure: Mutex<Option<eyre::Report>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(index, params)) = mine.get(k) else { break };
                    match run_one(rec, &base, index, params) {
                        Ok(row) => {
                            if progress {
                                eprintln!(
                                    "  [{}/{}] {params:?}: cost {:.2}, tracking error {:.3}%",
                                    k + 1,
                                    mine.len(),
                                    row.total_cost,
                                    row.tracking_error * 100.0
                                );
                            }
                            rows.lock().unwrap_or_else(|e| e.into_inner()).push(row);
                        }
                        Err(e) => {
                            failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let rows = rows.into_inner().unwrap_or_else(|e| e.into_inner());
    write(out, Backtest { sweep: sweep.to_owned(), rows })
}

/// `keel backtest merge`: joins shard outputs into `out`.
pub(crate) fn merge(out: &Path, shards: &[PathBuf]) -> eyre::Result<()> {
    let mut sweep: Option<String> = None;
    let mut rows = Vec::new();
    for dir in shards {
        let path = dir.join("backtest.json");
        let text = std::fs::read_to_string(&path).wrap_err_with(|| format!("reading {}", path.display()))?;
        let b: Backtest =
            serde_json::from_str(&text).wrap_err_with(|| format!("parsing {}", path.display()))?;
        match &sweep {
            Some(s) if *s != b.sweep => {
                return Err(eyre!("{}: sweep `{}` differs from `{s}`", path.display(), b.sweep));
            }
            _ => sweep = Some(b.sweep.clone()),
        }
        rows.extend(b.rows);
    }
    rows.sort_by_key(|r| r.index);
    if let Some(w) = rows.windows(2).find(|w| w[0].index == w[1].index) {
        return Err(eyre!("config {} appears in two shards", w[0].index));
    }
    write(out, Backtest { sweep: sweep.unwrap_or_default(), rows })
}

/// Marks the Pareto front of each latency and writes JSON, table and plots.
fn write(out: &Path, mut b: Backtest) -> eyre::Result<()> {
    b.rows.sort_by_key(|r| r.index);
    mark_pareto(&mut b.rows);
    std::fs::create_dir_all(out).wrap_err_with(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("backtest.json"), serde_json::to_string_pretty(&b)?)
        .wrap_err("writing backtest.json")?;
    let table = table(&b.rows);
    std::fs::write(out.join("backtest.md"), &table).wrap_err("writing backtest.md")?;
    print!("{table}");
    std::fs::write(out.join("frontier.svg"), crate::frontier_svg::frontier(&b.rows)?)
        .wrap_err("writing frontier.svg")?;
    let mut wrote = vec!["backtest.json", "backtest.md", "frontier.svg"];
    if latencies(&b.rows).len() > 1 {
        std::fs::write(out.join("latency.svg"), crate::frontier_svg::latency_fronts(&b.rows)?)
            .wrap_err("writing latency.svg")?;
        wrote.push("latency.svg");
    }
    println!("wrote {} in {}", wrote.join(", "), out.display());
    Ok(())
}

/// A row's replay latency, µs (0 when not swept).
pub(crate) fn latency_of(r: &Row) -> u64 {
    r.params.get("latency_us").and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The distinct latencies of `rows`, ascending.
pub(crate) fn latencies(rows: &[Row]) -> Vec<u64> {
    let mut l: Vec<u64> = rows.iter().map(latency_of).collect();
    l.sort_unstable();
    l.dedup();
    l
}

fn mark_pareto(rows: &mut [Row]) {
    let snapshot: Vec<(u64, f64, f64)> =
        rows.iter().map(|r| (latency_of(r), r.total_cost, r.tracking_error)).collect();
    for (i, r) in rows.iter_mut().enumerate() {
        let (lat, cost, te) = snapshot[i];
        r.pareto = cost.is_finite()
            && te.is_finite()
            && !snapshot
                .iter()
                .enumerate()
                .any(|(j, &(l, c, t))| j != i && l == lat && c <= cost && t <= te && (c < cost || t < te));
    }
}

fn table(rows: &[Row]) -> String {
    let keys: Vec<String> = {
        let mut k: Vec<String> = rows.iter().flat_map(|r| r.params.keys().cloned()).collect();
        k.sort();
        k.dedup();
        k
    };
    let mut s = String::new();
    s.push_str(&format!(
        "| {} | total cost | gas | pool fees | impact | crossed | rebalances | landed | tracking error | front |\n",
        keys.join(" | ")
    ));
    s.push_str(&format!("|{}\n", "---|".repeat(keys.len() + 9)));
    for r in rows {
        let vals: Vec<&str> = keys.iter().map(|k| r.params.get(k).map_or("", String::as_str)).collect();
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} | {:.3}% | {} |\n",
            vals.join(" | "),
            r.total_cost,
            r.gas,
            r.pool_fees,
            r.impact,
            r.crossed,
            r.rebalances,
            r.landed,
            r.tracking_error * 100.0,
            if r.pareto { "★" } else { "" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_expands_to_its_cartesian_product_in_a_stable_order() {
        let p = expand("abs_band=0.01,0.02 cost_aware=off,on").unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].get("abs_band").map(String::as_str), Some("0.01"));
        assert_eq!(p[1].get("cost_aware").map(String::as_str), Some("on"));
        assert!(expand("bogus=1").unwrap_err().to_string().contains("unknown parameter `bogus`"));
        assert!(expand("kappa").unwrap_err().to_string().contains("not key=value"));
        assert!(expand("kappa=1 kappa=2").unwrap_err().to_string().contains("twice"));
        assert_eq!(parse_shard("1/3").unwrap(), (1, 3));
        assert!(parse_shard("3/3").is_err() && parse_shard("1/0").is_err() && parse_shard("x").is_err());
    }

    fn row(index: usize, latency: &str, cost: f64, te: f64) -> Row {
        Row {
            index,
            params: [("latency_us".to_string(), latency.to_string())].into_iter().collect(),
            total_cost: cost,
            gas: 0.0,
            pool_fees: 0.0,
            impact: 0.0,
            notional: 0.0,
            crossed: 0.0,
            rebalances: 0,
            landed: 0,
            tracking_error: te,
            pareto: false,
        }
    }

    #[test]
    fn the_front_holds_the_undominated_configs_of_each_latency() {
        let mut rows = vec![
            row(0, "0", 10.0, 0.05),
            row(1, "0", 20.0, 0.02),
            row(2, "0", 25.0, 0.03),    // dominated by 1
            row(3, "0", 10.0, 0.06),    // dominated by 0
            row(4, "1000", 30.0, 0.04), // alone at its latency
        ];
        mark_pareto(&mut rows);
        let front: Vec<usize> = rows.iter().filter(|r| r.pareto).map(|r| r.index).collect();
        assert_eq!(front, vec![0, 1, 4]);
    }
}
