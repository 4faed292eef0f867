//! `keel-bench throughput --hot-cpu M --load-cpu N`: the highest frame rate the production
//! [`Pipeline`](keel_runtime::pipeline::Pipeline) ingests with its load in another process.
//!
//! The rig is the isolated latency harness's ([`super::isolated`]): the blaster, relay and
//! simulated market in a child process pinned to `load_cpu`, the engine (and, pipelined, router)
//! thread pinned to `hot_cpu`. The blaster steps the rate up in trials on one running pipeline. A
//! trial passes when
//!
//! * the blaster sustained ≥ 97 % of the offered rate (a reader that falls behind fills the TCP
//!   window and the blaster's writes wait: its shortfall shows here),
//! * the pipeline read every frame sent (after a drain of up to a second),
//! * every frame read became an engine event: none malformed, of an unknown symbol or dropped at
//!   the engine queue (pipelined),
//! * and, pipelined, the engine queue never held more than `max_depth` events (sampled every ms).
//!
//! The ladder stops at the first failing trial.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::isolated::{IsolatedRig, PipelineMode, RigOptions};

/// The default rate ladder of the isolated `throughput`, frames/s.
pub const INGEST_RATES: &[u64] =
    &[50_000, 100_000, 200_000, 300_000, 400_000, 500_000, 600_000, 750_000, 1_000_000, 1_250_000, 1_500_000];

/// Settings of an isolated throughput run.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The rig (its CPUs, scenario and idle policy).
    pub rig: RigOptions,
    /// Offered rates, frames/s, in order.
    pub rates: Vec<u64>,
    /// Length of each trial.
    pub trial: Duration,
    /// Deepest engine queue a passing pipelined trial may reach, events.
    pub max_depth: usize,
    /// The modes to measure, one ladder each (in order).
    pub modes: Vec<PipelineMode>,
}

/// One step of the ladder.
#[derive(Debug, Clone, Serialize)]
pub struct IngestTrial {
    /// Offered rate, frames/s.
    pub rate: u64,
    /// Measured seconds of sending.
    pub seconds: f64,
    /// Achieved send rate, frames/s.
    pub sent_per_s: f64,
    /// Frames sent.
    pub sent: u64,
    /// Frames the pipeline read.
    pub read: u64,
    /// Events handed to the engine (inline) or pushed into its queue (pipelined).
    pub events: u64,
    /// Frames read that became no event: malformed or of an unknown symbol.
    pub skipped: u64,
    /// Events dropped at the full engine queue (pipelined).
    pub dropped: u64,
    /// Deepest engine queue sampled (pipelined; inline has none).
    pub max_depth: usize,
    /// Intents the engine fired during the trial.
    pub intents: u64,
    /// Whether the step passed.
    pub pass: bool,
}

/// One mode's ladder.
#[derive(Debug, Serialize)]
pub struct IngestRun {
    /// Pipeline shape.
    pub mode: PipelineMode,
    /// Highest offered rate that passed (0: none).
    pub frames_per_s: u64,
    /// The trials run, in order.
    pub trials: Vec<IngestTrial>,
    /// Pid of this (the pipeline's) process.
    pub pipeline_pid: u32,
    /// Pid of the load side.
    pub load_pid: u32,
    /// CPUs the load side ran on.
    pub load_cpus: Vec<usize>,
    /// CPUs of the hot thread(s).
    pub hot_cpus: Vec<usize>,
}

/// Runs `cfg`'s ladder in `mode` (the process must already be restricted,
/// [`super::isolated::restrict_process`]).
pub async fn run(cfg: &IngestConfig, mode: PipelineMode) -> eyre::Result<IngestRun> {
    let mut rig = IsolatedRig::start(&cfg.rig, mode, false).await?;
    let load_pid = rig.load.hello.pid;
    let mut trials = Vec::new();
    for &rate in &cfg.rates {
        let t = trial(&mut rig, mode, rate, cfg).await?;
        if cfg.rig.progress {
            eprintln!(
                "{mode:?} {rate:>8}/s: sent {:>9.0}/s read {}/{} events {} skipped {} dropped {} max depth {} intents {} → {}",
                t.sent_per_s,
                t.read,
                t.sent,
                t.events,
                t.skipped,
                t.dropped,
                t.max_depth,
                t.intents,
                if t.pass { "ok" } else { "FAIL" }
            );
        }
        let pass = t.pass;
        trials.push(t);
        if !pass {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let IsolatedRig { load, pipeline, load_cpus, hot_cpus, .. } = rig;
    let _ = pipeline.shutdown().await;
    load.stop()?;
    let frames_per_s = trials.iter().take_while(|t| t.pass).map(|t| t.rate).max().unwrap_or(0);
    Ok(IngestRun {
        mode,
        frames_per_s,
        trials,
        pipeline_pid: std::process::id(),
        load_pid,
        load_cpus,
        hot_cpus,
    })
}

/// The feed's counters once they hold still for 5 ms (at most a second): the feed counts a frame
/// when it reads it and its event when it pushes it, so counters taken in between would give a
/// trial an event without its frame, or a frame without its event.
async fn feed_at_rest(rig: &IsolatedRig) -> keel_feeds::stats::FeedStatsSnapshot {
    let t0 = Instant::now();
    let mut last = rig.pipeline.feed_stats();
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = rig.pipeline.feed_stats();
        let at_rest = now.frames == last.frames && now.pushed == last.pushed;
        last = now;
        if at_rest || t0.elapsed() > Duration::from_secs(1) {
            return last;
        }
    }
}

async fn trial(
    rig: &mut IsolatedRig,
    mode: PipelineMode,
    rate: u64,
    cfg: &IngestConfig,
) -> eyre::Result<IngestTrial> {
    let fired = |rig: &IsolatedRig| rig.pipeline.snapshot().engine.intents_emitted;
    let (feed0, sent0, drop0, fired0) = (
        feed_at_rest(rig).await,
        rig.load.stats()?.sent,
        rig.pipeline.event_queue_stats().dropped,
        fired(rig),
    );
    rig.load.set_rate(rate)?;
    let t0 = Instant::now();
    let mut depth = 0usize;
    while t0.elapsed() < cfg.trial {
        tokio::time::sleep(Duration::from_millis(1)).await;
        depth = depth.max(rig.pipeline.event_queue_len());
    }
    rig.load.set_rate(0)?;
    let seconds = t0.elapsed().as_secs_f64();
    // The sender may still be writing the batch it started before the rate changed: its count is
    // final once two reads 5 ms apart agree. Every frame the feed reads comes from the blaster:
    // running totals are compared, so frames of a previous trial still in flight count where they
    // belong.
    let mut total = rig.load.stats()?.sent;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = rig.load.stats()?.sent;
        if now == total {
            break;
        }
        total = now;
    }
    let sent = total - sent0;
    let t1 = Instant::now();
    while rig.pipeline.feed_stats().frames - feed0.frames < sent && t1.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        depth = depth.max(rig.pipeline.event_queue_len());
    }
    // Let the engine take in what the feed pushed last.
    let t2 = Instant::now();
    while rig.pipeline.event_queue_len() > 0 && t2.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let feed = feed_at_rest(rig).await;
    let read = feed.frames - feed0.frames;
    let events = feed.pushed - feed0.pushed;
    let skipped = (feed.malformed - feed0.malformed) + (feed.unknown_symbol - feed0.unknown_symbol);
    let dropped = (rig.pipeline.event_queue_stats().dropped - drop0) + (feed.queue_full - feed0.queue_full);
    let sent_per_s = sent as f64 / seconds;
    let depth_ok = mode == PipelineMode::Inline || depth <= cfg.max_depth;
    let pass = sent_per_s >= 0.97 * rate as f64
        && read == sent
        && events == read
        && skipped == 0
        && dropped == 0
        && depth_ok;
    Ok(IngestTrial {
        rate,
        seconds,
        sent_per_s,
        sent,
        read,
        events,
        skipped,
        dropped,
        max_depth: depth,
        intents: fired(rig).saturating_sub(fired0),
        pass,
    })
}

/// The ladders side by side: one table per mode.
pub fn table(runs: &[IngestRun]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    for r in runs {
        let _ = writeln!(
            t,
            "{:?}: pipeline pid {} (hot CPUs {:?}), load pid {} (CPUs {:?})",
            r.mode, r.pipeline_pid, r.hot_cpus, r.load_pid, r.load_cpus
        );
        let _ = writeln!(
            t,
            "{:>10} {:>12} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>8}  result",
            "offered", "sent/s", "sent", "read", "events", "skipped", "dropped", "max depth", "intents"
        );
        for x in &r.trials {
            let _ = writeln!(
                t,
                "{:>10} {:>12.0} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>8}  {}",
                x.rate,
                x.sent_per_s,
                x.sent,
                x.read,
                x.events,
                x.skipped,
                x.dropped,
                x.max_depth,
                x.intents,
                if x.pass { "ok" } else { "FAIL" }
            );
        }
        let _ =
            writeln!(t, "{:?}: {} frames/s sustained, every frame an engine event", r.mode, r.frames_per_s);
    }
    t
}
