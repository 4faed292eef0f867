//! The run report: `report.json`, the printed summary and the progress line.

use std::path::Path;

use eyre::Context;
use hdrhistogram::Histogram;
use keel_engine::event::OutcomeStatus;
use keel_feeds::stats::FeedStatsSnapshot;
use keel_runtime::pipeline::{PipelineReport, Sample, Snapshot};
use keel_sim::SimStats;
use serde::Serialize;

use crate::config::KeelConfig;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub(crate) struct Micros {
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// Largest.
    pub(crate) max: f64,
    /// Samples.
    pub(crate) count: u64,
}

impl Micros {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |v: u64| v as f64 / 1e3;
        Self {
            p50: us(h.value_at_quantile(0.5)),
            p99: us(h.value_at_quantile(0.99)),
            max: us(h.max()),
            count: h.len(),
        }
    }
}

/// One portfolio in the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PortfolioReport {
    /// Name.
    pub(crate) id: String,
    /// Value (USD) when first known.
    pub(crate) start_value: Option<f64>,
    /// Value at the end.
    pub(crate) end_value: Option<f64>,
    /// Swaps in landed bundles.
    pub(crate) trades: usize,
    /// Rebalances fired.
    pub(crate) rebalances: usize,
    /// Rebalances landed.
    pub(crate) landed: usize,
    /// (symbol, weight, target) at the end.
    pub(crate) final_weights: Vec<(String, f64, f64)>,
    /// Band in force at the end.
    pub(crate) band: f64,
    /// What its submitted rebalances cost (USD unless named): gas in ETH and USD, pool fees, impact
    /// against the exchange mid, notional traded, notional crossed internally and what netting saved.
    pub(crate) cost: keel_router::cost::RebalanceCost,
    /// Time-weighted tracking error: the distance √Σ(wᵢ − targetᵢ)² of its weights from target,
    /// averaged over the run's samples weighted by the time each held (`None` before two samples).
    pub(crate) tracking_error: Option<f64>,
}

/// A point of a portfolio's cumulative cost: a rebalance landed at `t_s`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct CostPoint {
    /// Seconds since start.
    pub(crate) t_s: f64,
    /// Portfolio index.
    pub(crate) portfolio: usize,
    /// Its rebalancing cost so far (landed rebalances), USD.
    pub(crate) cumulative: f64,
}

/// A trade marker for plots: when a rebalance landed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LandedMark {
    /// Seconds since start.
    pub(crate) t_s: f64,
    /// Portfolio index.
    pub(crate) portfolio: usize,
    /// Block.
    pub(crate) block: u64,
}

/// What `report.json` holds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunReport {
    /// Wall time, seconds.
    pub(crate) duration_s: f64,
    /// Quotes the engine processed.
    pub(crate) price_updates: u64,
    /// Rebalances fired (intents).
    pub(crate) rebalances: u64,
    /// Bundle requests sent (first submissions and retargets).
    pub(crate) bundles_submitted: u64,
    /// Rebalances whose bundle landed.
    pub(crate) rebalances_landed: u64,
    /// Rebalances abandoned unlanded.
    pub(crate) rebalances_expired: u64,
    /// Rebalances refused before submission (routing or guards).
    pub(crate) rebalances_rejected: u64,
    /// In-flight rebalances cancelled by the kill switch.
    pub(crate) cancelled: u64,
    /// Bundle versions not sent because they reverted in simulation.
    pub(crate) sim_reverted: u64,
    /// Largest drift seen when a trigger fired.
    pub(crate) max_drift_before: f64,
    /// Largest drift right after a landed rebalance (post-landing balances applied).
    pub(crate) max_drift_after: f64,
    /// Gas used by landed bundles.
    pub(crate) gas_used: u64,
    /// Every portfolio's rebalancing cost summed (the same fields as each portfolio's `cost`).
    pub(crate) total_cost: keel_router::cost::RebalanceCost,
    /// Each portfolio's cumulative cost of landed rebalances, at each landing (time order).
    pub(crate) cost_over_time: Vec<CostPoint>,
    /// Event receive → signed bundle request handed to the HTTP client.
    pub(crate) tick_to_wire_us: Micros,
    /// Event receive → trigger decision (fired events).
    pub(crate) decide_us: Micros,
    /// Quote receive → state applied and triggers evaluated (every quote).
    pub(crate) quote_to_decision_us: Micros,
    /// Relay round trip.
    pub(crate) relay_rtt_us: Micros,
    /// Portfolios.
    pub(crate) portfolios: Vec<PortfolioReport>,
    /// Each configured pool, in config order: its venue and the fills routed through it.
    pub(crate) pools: Vec<PoolUse>,
    /// Per relay counters.
    pub(crate) relays: Vec<keel_router::stage::RelayCounters>,
    /// How long landed rebalances took to be included.
    pub(crate) inclusion: InclusionReport,
    /// Feed counters.
    pub(crate) feed: FeedStatsSnapshot,
    /// Blocks read from the node (every chain's).
    pub(crate) blocks: u64,
    /// Where the router stage ran (`[engine] mode`): `pipelined` or `inline`.
    pub(crate) stage_mode: &'static str,
    /// Router threads that ran (none inline: the engine thread ran the router stage).
    pub(crate) router_threads: usize,
    /// Per chain: its name, chain id, submission path, executor counters, blocks and portfolios
    /// (one entry for a single-chain run).
    pub(crate) chains: Vec<keel_runtime::chains::ChainReport>,
    /// Engine counters.
    pub(crate) engine: keel_engine::stats::EngineStats,
    /// Queue counters.
    pub(crate) queues: Queues,
    /// The simulated market's own counters (demo only).
    pub(crate) sim: Option<SimStats>,
    /// Landed rebalances, for plots.
    pub(crate) landed: Vec<LandedMark>,
    /// Weight samples, for plots.
    #[serde(skip)]
    pub(crate) samples: Vec<Sample>,
    /// Target weights by portfolio (in the order samples list weights).
    #[serde(skip)]
    pub(crate) targets: Vec<Vec<(String, f64)>>,
    /// The journal: records written this run, or why it failed (absent without a journal).
    pub(crate) journal: Option<JournalReport>,
}

/// What the journal did this run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct JournalReport {
    /// Records written this run.
    pub(crate) records: Option<u64>,
    /// Why writing failed, if it did.
    pub(crate) error: Option<String>,
    /// Rebalances a previous run left open and how each was settled at start.
    pub(crate) recovered: Vec<(u64, String)>,
}

/// One pool's use in a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PoolUse {
    /// The pool's name in the config.
    pub(crate) pool: String,
    /// Its venue (the DEX's kind).
    pub(crate) kind: Option<keel_router::config::DexKind>,
    /// Fills routed through it (of the last records kept).
    pub(crate) fills: usize,
    /// Of those, fills of rebalances that landed.
    pub(crate) landed: usize,
}

/// Queue counters.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Queues {
    /// Engine input.
    pub(crate) events: keel_engine::queue::QueueStats,
    /// Router input.
    pub(crate) router: keel_engine::queue::QueueStats,
}

/// Builds the report of a finished run.
pub(crate) fn build(cfg: &KeelConfig, run: PipelineReport, sim: Option<SimStats>) -> RunReport {
    let engine = &run.engine.engine;
    let n = cfg.portfolios.len();
    let mut landed_by = vec![0usize; n];
    let mut landed_intents = Vec::new();
    let mut landed = Vec::new();
    for (t_s, o) in &run.outcomes {
        if let OutcomeStatus::Landed { block, .. } = o.status {
            landed_by[o.portfolio.idx()] += 1;
            landed_intents.push(o.intent);
            landed.push(LandedMark { t_s: *t_s, portfolio: o.portfolio.idx(), block });
        }
    }
    let views = keel_runtime::pipeline::portfolio_views(engine);
    let portfolios = cfg
        .portfolios
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let intents_of: Vec<u64> =
                run.engine.intents.iter().filter(|x| x.portfolio.idx() == i).map(|x| x.id).collect();
            PortfolioReport {
                id: p.name.clone(),
                start_value: run.engine.start_values.get(i).copied().flatten(),
                end_value: views.get(i).and_then(|v| v.value),
                trades: run
                    .fills
                    .iter()
                    .filter(|f| intents_of.contains(&f.intent) && landed_intents.contains(&f.intent))
                    .count(),
                rebalances: run.engine.fired.get(i).copied().unwrap_or(0) as usize,
                landed: landed_by[i],
                final_weights: views.get(i).map(|v| v.weights.clone()).unwrap_or_default(),
                band: views.get(i).map(|v| v.band).unwrap_or(0.0),
                cost: run.costs.get(i).copied().unwrap_or_default(),
                tracking_error: views.get(i).and_then(|v| {
                    let target: Vec<f64> = v.weights.iter().map(|(_, _, t)| *t).collect();
                    time_weighted_tracking_error(&run.engine.samples, i, &target)
                }),
            }
        })
        .collect();
    let mut total_cost = keel_router::cost::RebalanceCost::default();
    for c in &run.costs {
        total_cost.add(c);
    }
    let mut cost_over_time = Vec::new();
    let mut running = vec![0.0; n];
    for (t_s, o) in &run.outcomes {
        let OutcomeStatus::Landed { .. } = o.status else { continue };
        let Some(c) = run.intent_costs.iter().rev().find(|c| c.intent == o.intent) else { continue };
        let p = o.portfolio.idx();
        if let Some(r) = running.get_mut(p) {
            *r += c.cost.total();
            cost_over_time.push(CostPoint { t_s: *t_s, portfolio: p, cumulative: *r });
        }
    }
    let targets = views.iter().map(|v| v.weights.iter().map(|(s, _, t)| (s.clone(), *t)).collect()).collect();
    let pools = cfg
        .pools
        .iter()
        .map(|p| {
            let through = run.fills.iter().filter(|f| f.pool == p.name);
            PoolUse {
                pool: p.name.clone(),
                kind: cfg.dexes.iter().find(|d| d.name == p.dex).map(|d| d.kind),
                fills: through.clone().count(),
                landed: through.filter(|f| landed_intents.contains(&f.intent)).count(),
            }
        })
        .collect();
    let stats = engine.stats();
    RunReport {
        duration_s: run.duration_s,
        price_updates: stats.events.quotes,
        rebalances: run.engine.fired.iter().sum(),
        bundles_submitted: run.exec.submissions,
        rebalances_landed: run.exec.landed,
        rebalances_expired: run.exec.expired,
        rebalances_rejected: run.exec.rejected,
        cancelled: run.exec.cancelled,
        sim_reverted: run.exec.sim_reverted,
        max_drift_before: run.engine.max_drift_fired,
        max_drift_after: run.engine.max_drift_after,
        gas_used: run.exec.gas_used,
        total_cost,
        cost_over_time,
        tick_to_wire_us: Micros::of(&run.tick_to_wire),
        decide_us: Micros::of(&run.engine.decide),
        quote_to_decision_us: Micros::of(&run.engine.quote_to_decision),
        relay_rtt_us: Micros::of(&run.relay_rtt),
        inclusion: InclusionReport::of(&run.inclusion),
        portfolios,
        pools,
        relays: run.relays,
        feed: run.feed,
        blocks: run.blocks,
        stage_mode: match cfg.engine.mode {
            keel_engine::config::StageMode::Pipelined => "pipelined",
            keel_engine::config::StageMode::Inline => "inline",
        },
        router_threads: run.router_threads,
        chains: run.chains,
        engine: stats,
        queues: Queues { events: run.event_queue, router: run.router_queue },
        sim,
        landed,
        samples: run.engine.samples,
        targets,
        journal: run.journal_records.map(|r| JournalReport {
            records: r.as_ref().ok().copied(),
            error: r.err(),
            recovered: run.recovered.iter().map(|(i, r)| (*i, r.as_str().to_string())).collect(),
        }),
    }
}

/// The time-weighted mean over `samples` of portfolio `p`'s distance from its targets in force at
/// each sample (`target` when a sample carries none; each sample holds until the next); `None` with
/// fewer than two samples.
pub(crate) fn time_weighted_tracking_error(samples: &[Sample], p: usize, target: &[f64]) -> Option<f64> {
    let mine: Vec<&Sample> =
        samples.iter().filter(|s| s.portfolio == p && s.weights.len() == target.len()).collect();
    let (mut weighted, mut time) = (0.0, 0.0);
    for pair in mine.windows(2) {
        let dt = pair[1].t_s - pair[0].t_s;
        if !(dt.is_finite() && dt > 0.0) {
            continue;
        }
        let t = if pair[0].targets.len() == target.len() { &pair[0].targets[..] } else { target };
        let d2: f64 = pair[0].weights.iter().zip(t).map(|(w, t)| (w - t) * (w - t)).sum();
        weighted += d2.sqrt() * dt;
        time += dt;
    }
    (time > 0.0).then(|| weighted / time)
}

/// Writes `report.json`, `weights.svg` and `cost.svg` into `out`.
pub(crate) fn write_outputs(report: &RunReport, out: &Path) -> eyre::Result<()> {
    std::fs::create_dir_all(out).wrap_err_with(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join("report.json"), json).wrap_err("writing report.json")?;
    let names: Vec<String> = report.portfolios.iter().map(|p| p.id.clone()).collect();
    let svg = crate::svg::weights_svg(&names, &report.targets, &report.samples, &report.landed)?;
    std::fs::write(out.join("weights.svg"), svg).wrap_err("writing weights.svg")?;
    let crossed: Vec<f64> = report.portfolios.iter().map(|p| p.cost.crossed).collect();
    let svg = crate::cost_svg::cost_svg(&names, &report.cost_over_time, &crossed, report.duration_s)?;
    std::fs::write(out.join("cost.svg"), svg).wrap_err("writing cost.svg")?;
    Ok(())
}

/// Inclusion of landed rebalances, from the executor's fixed-bucket histograms.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct InclusionReport {
    /// Landed rebalances counted.
    pub(crate) landed: u64,
    /// Mean blocks from the first target to the landing block (1 = first try).
    pub(crate) blocks_mean: f64,
    /// Share that landed in the first block targeted.
    pub(crate) first_try_share: f64,
    /// Mean seconds from the first send to the landing.
    pub(crate) seconds_mean: f64,
    /// Mean signed versions sent.
    pub(crate) versions_mean: f64,
    /// Blocks-to-inclusion buckets: `(upper bound, count)` (the last bound is `inf`).
    pub(crate) blocks_buckets: Vec<(f64, u64)>,
}

impl InclusionReport {
    fn of(s: &keel_router::exec::InclusionStats) -> Self {
        let mean = |h: &keel_router::exec::FixedHistogram| {
            if h.count() > 0 { h.sum() / h.count() as f64 } else { 0.0 }
        };
        let first = s.blocks.buckets().next().map_or(0, |b| b.1);
        Self {
            landed: s.blocks.count().max(s.versions.count()),
            blocks_mean: mean(&s.blocks),
            first_try_share: if s.blocks.count() > 0 { first as f64 / s.blocks.count() as f64 } else { 0.0 },
            seconds_mean: mean(&s.seconds),
            versions_mean: mean(&s.versions),
            blocks_buckets: s
                .blocks
                .buckets()
                .map(|(b, n)| (if b.is_finite() { b } else { f64::MAX }, n))
                .collect(),
        }
    }
}

/// The closing summary.
pub(crate) fn print_summary(r: &RunReport, out: &Path) {
    println!("── Keel run summary ─────────────────────────────────────────────");
    println!(
        "duration {:.1} s | price updates {} | blocks {} | rebalances {} landed {} expired {} rejected {} | bundle requests {}",
        r.duration_s,
        r.price_updates,
        r.blocks,
        r.rebalances,
        r.rebalances_landed,
        r.rebalances_expired,
        r.rebalances_rejected,
        r.bundles_submitted
    );
    println!(
        "drift: max when fired {:.4}, max after landing {:.4} | gas used {}",
        r.max_drift_before, r.max_drift_after, r.gas_used
    );
    println!(
        "latency: tick-to-wire p50 {:.1} µs p99 {:.1} µs max {:.1} µs | decision p50 {:.2} µs | relay rtt p50 {:.0} µs",
        r.tick_to_wire_us.p50,
        r.tick_to_wire_us.p99,
        r.tick_to_wire_us.max,
        r.decide_us.p50,
        r.relay_rtt_us.p50
    );
    let i = &r.inclusion;
    if i.landed > 0 {
        println!(
            "inclusion: {} landed | blocks to inclusion mean {:.2} (first try {:.0}%) | seconds mean {:.2} | versions mean {:.2} | cancelled {} | reverted in simulation {}",
            i.landed,
            i.blocks_mean,
            i.first_try_share * 100.0,
            i.seconds_mean,
            i.versions_mean,
            r.cancelled,
            r.sim_reverted
        );
    }
    let used: Vec<String> =
        r.pools.iter().filter(|p| p.landed > 0).map(|p| format!("{} {}", p.pool, p.landed)).collect();
    if !used.is_empty() {
        println!("landed fills by pool: {}", used.join(", "));
    }
    if let Some(j) = &r.journal {
        match (&j.records, &j.error) {
            (_, Some(e)) => println!("journal: FAILED: {e}"),
            (Some(n), None) => println!(
                "journal: {n} records written, flushed | {} rebalances of the previous run settled at start",
                j.recovered.len()
            ),
            (None, None) => {}
        }
    }
    for p in &r.portfolios {
        let w: Vec<String> = p
            .final_weights
            .iter()
            .map(|(s, w, t)| format!("{s} {:.1}% (→{:.0}%)", w * 100.0, t * 100.0))
            .collect();
        println!(
            "  {:<10} value {} → {} | rebalances {} landed {} swaps {} | {}",
            p.id,
            p.start_value.map(|v| format!("{v:.0}")).unwrap_or("-".into()),
            p.end_value.map(|v| format!("{v:.0}")).unwrap_or("-".into()),
            p.rebalances,
            p.landed,
            p.trades,
            w.join(", ")
        );
        print_cost("", &p.cost);
        if let Some(te) = p.tracking_error {
            println!("  {:<10} time-weighted tracking error {:.3}%", "", te * 100.0);
        }
    }
    print_cost("total", &r.total_cost);
    println!("wrote {0}/report.json, {0}/weights.svg and {0}/cost.svg", out.display());
}

/// One cost line of the summary.
fn print_cost(label: &str, c: &keel_router::cost::RebalanceCost) {
    println!(
        "  {label:<10} cost {:.2} on {:.0} traded: gas {:.6} ETH ({:.2}) | pool fees {:.2} | impact {:.2} | crossed {:.0} (saved {:.2})",
        c.total(),
        c.notional,
        c.gas_native,
        c.gas,
        c.pool_fees,
        c.impact,
        c.crossed,
        c.saved
    );
}

/// One line of live progress. `heads` is each chain's name and head ([`Pipeline::chain_heads`]):
/// one chain shows `block N`; several show every chain's, `blocks l1 N l2 M` (`-` before a
/// chain's first block).
///
/// [`Pipeline::chain_heads`]: keel_runtime::pipeline::Pipeline::chain_heads
pub(crate) fn progress_line(
    s: &Snapshot,
    feed: &FeedStatsSnapshot,
    heads: &[(String, Option<u64>)],
) -> String {
    let show = |h: Option<u64>| h.map(|h| h.to_string()).unwrap_or("-".into());
    let blocks = match heads {
        [_, _, ..] => {
            let mut b = String::from("blocks");
            for (name, h) in heads {
                b.push_str(&format!(" {name} {}", show(*h)));
            }
            b
        }
        // One chain: its head as the engine last saw it, as before chains existed.
        _ => format!("block {}", show(s.head)),
    };
    let mut line = format!(
        "[{:>5.1}s] {blocks} | frames {} quotes {} | fired {} |",
        s.t_s, feed.frames, s.engine.events.quotes, s.engine.intents_emitted,
    );
    for p in &s.portfolios {
        let drift = p.max_drift.map(|d| format!("{:.2}%", d * 100.0)).unwrap_or("-".into());
        line.push_str(&format!(
            " {} drift {} / band {:.2}%{}",
            p.name,
            drift,
            p.band * 100.0,
            if p.busy { " (rebalancing)" } else { "" }
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_each_chains_head_and_one_chain_as_before() {
        let snap = Snapshot { head: Some(7), ..Snapshot::default() };
        let feed = FeedStatsSnapshot::default();
        let one = progress_line(&snap, &feed, &[("chain".into(), Some(7))]);
        assert!(one.contains("] block 7 | frames"), "{one}");
        let two = progress_line(&snap, &feed, &[("l1".into(), Some(123)), ("l2".into(), None)]);
        assert!(two.contains("] blocks l1 123 l2 - | frames"), "{two}");
        let later = progress_line(&snap, &feed, &[("l1".into(), Some(124)), ("l2".into(), Some(45))]);
        assert!(later.contains("blocks l1 124 l2 45 |"), "{later}");
    }
}
