//! # The latency harness
//!
//! Four modes, each printing a summary and optionally writing JSON:
//!
//! * [`latency`]: the production [`Pipeline`](keel_runtime::pipeline::Pipeline) (the code path of
//!   `keel demo`) fed by a websocket [`blaster`] at a set rate, with per-stage hdrhistograms
//!   (3 significant digits, [`mono_now_ns`](keel_engine::clock::mono_now_ns) timestamps), `.hgrm`
//!   files and an SVG percentile plot ([`report`]).
//! * `throughput`: the same rig, stepping the rate up in short trials
//!   ([`latency::run_throughput`]); with `--hot-cpu M --load-cpu N` the isolated rig instead, in
//!   either pipeline mode ([`ingest`]).
//! * [`scale`]: an [`Engine`](keel_engine::Engine) with 1 … 100k portfolios over 50 assets, the cost
//!   of one quote's `process`.
//! * [`soak`]: the full pipeline over a large [`book`] (10,000 portfolios) on the simulated
//!   market for minutes to hours: resident memory over time, drops, every rebalance settled.
//! * [`replay`]: a recording (e.g. of a `latency --record DIR` run) replayed on one thread through
//!   `keel_runtime::replay` — `events_per_s`.
//!
//! Where each stage's timestamps come from:
//!
//! | stage | start | end |
//! |---|---|---|
//! | `decode` | before `decode` | after instrument mapping (same frames, replayed in the harness after the run) |
//! | `quote_to_decision` | feed read the frame (`Quote::recv_ns`) | engine applied it and evaluated triggers |
//! | `decide` | frame read | trigger decision (`RebalanceIntent::decided_ns`), quotes that fired |
//! | `router_queue` | decision | router thread popped the intent ([`SubmitStamp`](keel_router::stage::SubmitStamp)) |
//! | `route_sign` | popped | executor returned the signed, encoded request |
//! | `tick_to_signed` | frame read | signed request ready |
//! | `tick_to_wire` | frame read | the loopback [`relay`] parsed the request's headers: wire + loopback, an upper bound |
//! | `relay_ack` | relay client started the post | answer read (`StageObserver::relay_rtt`) |

pub use keel_runtime::affinity;
pub mod blaster;
pub mod book;
pub mod clock;
pub mod ingest;
pub mod isolated;
pub mod latency;
pub mod loadside;
pub mod relay;
pub mod replay;
pub mod report;
pub mod scale;
pub mod scenario;
pub mod soak;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

pub use self::report::{Stage, StageSummary};

/// Output options shared by the modes.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// JSON summary path.
    pub json: Option<PathBuf>,
    /// Directory for `<stage>.hgrm` files.
    pub hgrm_dir: Option<PathBuf>,
    /// SVG percentile plot path.
    pub plot: Option<PathBuf>,
}

fn write_json(path: &Option<PathBuf>, v: &serde_json::Value) -> eyre::Result<()> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_vec_pretty(v)?)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// The `latency` mode; returns the JSON it wrote (or would write).
pub async fn latency(
    cfg: &latency::RigConfig,
    rate: u64,
    duration: Duration,
    out: &Outputs,
) -> eyre::Result<serde_json::Value> {
    let run = latency::run_latency(cfg, rate, duration).await?;
    println!(
        "latency: {:.1} s at {} frames/s offered: {} sent, {} read, {} dropped, {} band crossings sent, \
         {} intents fired, {} landed",
        run.seconds, rate, run.frames_sent, run.frames, run.dropped, run.crossings, run.fired, run.landed
    );
    print!("{}", report::table(&run.stages));
    if let Some(r) = &run.recording {
        println!(
            "recording: {} records, {:.1} MiB in {} file(s) under {}; dropped {} (queue full) + {} (oversize)",
            r.records,
            r.file_bytes as f64 / (1024.0 * 1024.0),
            r.files,
            r.dir.display(),
            r.dropped_full,
            r.dropped_oversize
        );
    }
    let v = json!({
        "mode": "latency",
        "frames": run.frames,
        "fired": run.fired,
        "stages": report::stages_json(&run.stages),
        "recording": run.recording,
    });
    write_json(&out.json, &v)?;
    if let Some(dir) = &out.hgrm_dir {
        report::write_hgrm(dir, &run.stages)?;
        eprintln!("wrote {}/*.hgrm", dir.display());
    }
    if let Some(p) = &out.plot {
        report::plot(p, &format!("keel latency by stage, {rate} frames/s"), &run.stages)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(v)
}

/// `latency --load-cpu N --hot-cpu M`: one [`isolated::run`] per journal setting (in order), printed
/// side by side; the JSON holds every run, `hgrm_dir` gets `journal-{off,on}/<stage>.hgrm`.
/// The process must already be restricted ([`isolated::restrict_process`]).
pub async fn latency_isolated(
    cfg: &isolated::IsolatedConfig,
    journals: &[bool],
    out: &Outputs,
) -> eyre::Result<serde_json::Value> {
    let mut runs = Vec::new();
    for &mode in &cfg.modes {
        for &j in journals {
            runs.push(isolated::run(cfg, mode, j).await?);
        }
    }
    print!("{}", isolated::side_by_side(&runs));
    let v = json!({ "mode": "latency_isolated", "runs": runs });
    write_json(&out.json, &v)?;
    if let Some(dir) = &out.hgrm_dir {
        for r in &runs {
            let journal = if r.journal { "journal-on" } else { "journal-off" };
            let sub = match r.mode {
                isolated::PipelineMode::Pipelined => dir.join(journal),
                isolated::PipelineMode::Inline => dir.join(format!("inline-{journal}")),
            };
            report::write_hgrm(&sub, &r.stages)?;
            eprintln!("wrote {}/*.hgrm", sub.display());
        }
    }
    if let Some(p) = &out.plot {
        let stages: Vec<Stage> = runs
            .iter()
            .filter_map(|r| {
                let s = r.stages.iter().find(|s| s.name == "tick_to_wire")?;
                let name = match (r.mode, r.journal) {
                    (isolated::PipelineMode::Pipelined, false) => "tick_to_wire (pipelined, journal off)",
                    (isolated::PipelineMode::Pipelined, true) => "tick_to_wire (pipelined, journal on)",
                    (isolated::PipelineMode::Inline, false) => "tick_to_wire (inline, journal off)",
                    (isolated::PipelineMode::Inline, true) => "tick_to_wire (inline, journal on)",
                };
                Some(Stage { name, what: s.what, hist: s.hist.clone() })
            })
            .collect();
        report::plot(p, &format!("keel tick-to-wire, load isolated, {} frames/s", cfg.rate), &stages)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(v)
}

/// The default rate ladder of `throughput`, frames/s.
pub const THROUGHPUT_RATES: &[u64] =
    &[1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 50_000, 75_000, 100_000, 150_000, 200_000];

/// The `throughput` mode.
pub async fn throughput(
    cfg: &latency::RigConfig,
    duration: Duration,
    max_depth: usize,
    out: &Outputs,
) -> eyre::Result<serde_json::Value> {
    // Trials share the duration (minus about 6 s of warm-up and drains), at least 0.5 s each.
    let trial = Duration::from_secs_f64((duration.as_secs_f64() / THROUGHPUT_RATES.len() as f64).max(0.5));
    let trials = latency::run_throughput(cfg, THROUGHPUT_RATES, trial, max_depth).await?;
    let best = trials.iter().filter(|t| t.pass).map(|t| t.rate).max().unwrap_or(0);
    let dropped = match trials.iter().find(|t| t.rate == best && t.pass) {
        Some(t) => t.dropped,
        None => trials.first().map(|t| t.dropped).unwrap_or(0),
    };
    println!(
        "{:>9} {:>12} {:>10} {:>10} {:>8} {:>10}  result",
        "offered", "sent/s", "sent", "read", "dropped", "max depth"
    );
    for t in &trials {
        println!(
            "{:>9} {:>12.0} {:>10} {:>10} {:>8} {:>10}  {}",
            t.rate,
            t.sent_per_s,
            t.sent,
            t.read,
            t.dropped,
            t.max_depth,
            if t.pass { "ok" } else { "FAIL" }
        );
    }
    println!("throughput: {best} frames/s sustained with no drop (queue depth ≤ {max_depth})");
    let v = json!({ "mode": "throughput", "frames_per_s": best, "dropped": dropped });
    write_json(&out.json, &v)?;
    Ok(v)
}

/// `throughput --load-cpu N --hot-cpu M`: one [`ingest::run`] ladder per mode (in order), printed
/// one after the other. The process must already be restricted ([`isolated::restrict_process`]).
pub async fn throughput_isolated(
    cfg: &ingest::IngestConfig,
    out: &Outputs,
) -> eyre::Result<serde_json::Value> {
    let mut runs = Vec::new();
    for &mode in &cfg.modes {
        runs.push(ingest::run(cfg, mode).await?);
    }
    print!("{}", ingest::table(&runs));
    let v = json!({ "mode": "throughput_isolated", "runs": runs });
    write_json(&out.json, &v)?;
    Ok(v)
}

/// The default portfolio counts of `scale`.
pub const SCALE_SIZES: &[usize] = &[1, 1_000, 10_000, 100_000];

/// The `scale` mode (the measuring time is shared by the sizes; building the engines is extra).
pub fn scale(sizes: &[usize], duration: Duration, out: &Outputs) -> eyre::Result<serde_json::Value> {
    let budget = duration / sizes.len().max(1) as u32;
    let mut rows = Vec::new();
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>7} {:>8}",
        "portfolios", "p50", "p99", "p99.9", "max", "ticks", "fired", "setup s"
    );
    for &n in sizes {
        let r = scale::measure(n, budget, 2_000_000)?;
        println!(
            "{:>10} {:>8} ns {:>7} ns {:>7} ns {:>7} ns {:>9} {:>7} {:>8.2}",
            r.portfolios, r.p50_ns, r.p99_ns, r.p999_ns, r.max_ns, r.ticks, r.fired, r.setup_s
        );
        rows.push(r);
    }
    let v = json!({ "mode": "scale", "rows": rows });
    write_json(&out.json, &v)?;
    Ok(v)
}
