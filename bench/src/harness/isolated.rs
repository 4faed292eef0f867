//! `keel-bench latency --hot-cpu M --load-cpu N`: tick-to-wire of the production [`Pipeline`]
//! with its load in another process.
//!
//! The load side ([`super::loadside`]: blaster, stamping relay, simulated market) runs in a
//! child process pinned to `load_cpu`. This process (the pipeline: feed, engine thread, router
//! thread, relay client, journal writer) is restricted to every other CPU, and the hot threads
//! (`keel-engine`, `keel-router`) to `hot_cpu`.
//!
//! Tick-to-wire = relay arrival of a bundle request − blaster send of the frame that fired it, both
//! stamped in the load process on the system-wide `CLOCK_MONOTONIC` ([`super::clock`]). The
//! firing frame: the blaster stamps every band-crossing frame and holds the crossed symbol back
//! until the next crossing; an intent of portfolio *i* (asset `T{i}`) is attributed to the latest
//! crossing of `T{i}USDT` sent before the pipeline read the intent's event, when that read came
//! before the symbol's next frame was queued (so no later frame of the symbol can have fired it)
//! and no earlier intent took that crossing. Other intents are counted as `unattributed`, not
//! measured. Runs with the journal on use the production defaults (`write_ahead = true`: the
//! bundle waits for its record's commit, `sync = "normal"`), in a temporary directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keel_engine::config::IdleWait;
use keel_runtime::pipeline::Pipeline;
use serde::Serialize;

use super::clock::{MonoOffset, abs_mono_ns};
use super::loadside::LoadSide;
use super::report::{Stage, StageSummary, new_hist};
use super::scenario::{Scenario, symbol};

/// How the pipeline is built (`--mode`, `[engine] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineMode {
    /// Feed task → engine thread → router thread.
    Pipelined,
    /// The engine thread reads the exchange socket, decides, routes, signs and writes the bundle
    /// itself.
    Inline,
}

impl PipelineMode {
    /// The engine config's mode.
    pub fn stage_mode(self) -> keel_engine::config::StageMode {
        match self {
            PipelineMode::Pipelined => keel_engine::config::StageMode::Pipelined,
            PipelineMode::Inline => keel_engine::config::StageMode::Inline,
        }
    }

    /// The threads pinned to the hot CPU.
    fn hot_threads(self) -> &'static [&'static str] {
        match self {
            PipelineMode::Pipelined => &["keel-engine", "keel-router"],
            PipelineMode::Inline => &["keel-engine"],
        }
    }
}

/// The isolated rig: the scenario, the CPUs and how the pipeline runs; shared by the latency
/// ([`IsolatedConfig`]) and throughput ([`super::ingest::IngestConfig`]) harnesses.
#[derive(Debug, Clone)]
pub struct RigOptions {
    /// Portfolios (= assets = instruments), 2..=8 (attribution needs a symbol to hold back).
    pub portfolios: usize,
    /// Fraction of frames that push a portfolio past its band.
    pub fire_fraction: f64,
    /// CPU of the engine and router threads.
    pub hot_cpu: usize,
    /// CPU of the load-side process.
    pub load_cpu: usize,
    /// How the engine and router threads wait when idle.
    pub idle: (IdleWait, u64),
    /// `[router] netting`: rebalances of one block share one batch bundle.
    pub netting: bool,
    /// `[engine] rehearse_us` (inline mode: the idle hot thread's rehearsals of its latest route).
    pub rehearse_us: u64,
    /// Print progress to stderr.
    pub progress: bool,
    /// The `keel-bench` executable that serves `load-side` (default: this executable).
    pub exe: Option<PathBuf>,
}

impl RigOptions {
    /// `portfolios` firing on `fire_fraction` of the frames, the hot threads on `hot_cpu` and the
    /// load on `load_cpu`; every other setting at Keel's default (`idle = "spin"` with the default
    /// spin, netting on, the default rehearsal interval, this executable as the load side).
    pub fn pinned(
        portfolios: usize,
        fire_fraction: f64,
        hot_cpu: usize,
        load_cpu: usize,
        progress: bool,
    ) -> Self {
        Self {
            portfolios,
            fire_fraction,
            hot_cpu,
            load_cpu,
            idle: (IdleWait::Spin, keel_engine::config::DEFAULT_IDLE_SPIN_US),
            netting: true,
            rehearse_us: keel_engine::config::DEFAULT_REHEARSE_US,
            progress,
            exe: None,
        }
    }
}

/// Settings of an isolated latency run.
#[derive(Debug, Clone)]
pub struct IsolatedConfig {
    /// The rig.
    pub rig: RigOptions,
    /// Frames per second offered.
    pub rate: u64,
    /// Measured part of each run.
    pub duration: Duration,
    /// The modes to measure, one run each per journal setting (in order).
    pub modes: Vec<PipelineMode>,
}

/// Checks `cfg` against this machine; call before [`restrict_process`].
pub fn validate(cfg: &IsolatedConfig) -> eyre::Result<()> {
    cfg.rig.validate()
}

impl RigOptions {
    /// Checks the rig's CPUs and portfolio count against this machine; call before
    /// [`restrict_process`].
    pub fn validate(&self) -> eyre::Result<()> {
        let (hot_cpu, load_cpu, portfolios) = (self.hot_cpu, self.load_cpu, self.portfolios);
        let n = super::affinity::online_cpus();
        if hot_cpu >= n || load_cpu >= n {
            eyre::bail!("--hot-cpu {hot_cpu} / --load-cpu {load_cpu}: this machine has CPUs 0..{}", n - 1);
        }
        if hot_cpu == load_cpu {
            eyre::bail!("--hot-cpu and --load-cpu are both {hot_cpu}: the load must run on another CPU");
        }
        if !(2..=super::scenario::MAX_PORTFOLIOS).contains(&portfolios) {
            eyre::bail!(
                "--portfolios {portfolios}: the isolated harness needs 2..={} (it holds a crossed symbol back)",
                super::scenario::MAX_PORTFOLIOS
            );
        }
        Ok(())
    }
}

/// Restricts this process (and the threads it starts afterwards: call before building the async
/// runtime) to every CPU but `load_cpu`.
pub fn restrict_process(load_cpu: usize) -> eyre::Result<Vec<usize>> {
    let cpus: Vec<usize> = (0..super::affinity::online_cpus()).filter(|&c| c != load_cpu).collect();
    super::affinity::pin_current(&cpus)?;
    Ok(super::affinity::allowed(0)?)
}

/// What one isolated run measured.
#[derive(Debug, Serialize)]
pub struct IsolatedRun {
    /// Journal on (write-ahead) or off.
    pub journal: bool,
    /// Pipeline shape.
    pub mode: PipelineMode,
    /// Offered rate, frames/s.
    pub rate: u64,
    /// Pid of this (the pipeline's) process.
    pub pipeline_pid: u32,
    /// Pid of the load side, as it reported it.
    pub load_pid: u32,
    /// Its parent's pid, as it reported it (this process).
    pub load_ppid: u32,
    /// CPUs the load side ran on.
    pub load_cpus: Vec<usize>,
    /// CPUs of the engine and router threads (read back after pinning).
    pub hot_cpus: Vec<usize>,
    /// Measured seconds.
    pub seconds: f64,
    /// Frames sent in the measured part.
    pub frames_sent: u64,
    /// Frames the feed read (whole run).
    pub frames_read: u64,
    /// Frames dropped at the engine queue.
    pub dropped: u64,
    /// Crossings sent in the measured part.
    pub crossings: u64,
    /// Intents first submitted in the measured part.
    pub submitted: u64,
    /// Intents measured (attributed to their frame, request seen by the relay).
    pub attributed: u64,
    /// Intents not measured: no attributable crossing (fired by a later frame, or read after
    /// the symbol's next frame was queued).
    pub unattributed: u64,
    /// Intents whose request the relay never saw.
    pub not_at_relay: u64,
    /// Journal records written (journal on).
    pub journal_records: Option<u64>,
    /// Uncertainty of the clock mapping (both processes), ns.
    pub clock_error_ns: u64,
    /// Per-stage summaries.
    pub summary: Vec<(String, StageSummary)>,
    /// Per-stage histograms.
    #[serde(skip)]
    pub stages: Vec<Stage>,
}

/// A started isolated rig: the load side in its own process, the pipeline in this one with its
/// hot threads pinned, warmed up (pools, balances and nonces read, every portfolio valued) with
/// the blaster paused.
pub(crate) struct IsolatedRig {
    pub load: LoadSide,
    pub pipeline: Pipeline,
    /// CPUs the load side runs on.
    pub load_cpus: Vec<usize>,
    /// CPUs of the (last) pinned hot thread.
    pub hot_cpus: Vec<usize>,
    /// The journal's directory (journal on).
    _dir: tempfile::TempDir,
}

impl IsolatedRig {
    /// Starts the load side and the pipeline in `mode`, journal on or off, and warms them up.
    pub(crate) async fn start(spec: &RigOptions, mode: PipelineMode, journal: bool) -> eyre::Result<Self> {
        let load = LoadSide::spawn(spec.exe.as_deref(), spec.portfolios, spec.fire_fraction, spec.load_cpu)?;
        if load.hello.pid == std::process::id() || load.hello.ppid != std::process::id() {
            eyre::bail!(
                "the load side is not a child process (pid {}, parent {})",
                load.hello.pid,
                load.hello.ppid
            );
        }
        let load_cpus = load.hello.cpus.clone();
        if spec.progress {
            eprintln!(
                "load side: pid {} on CPUs {:?}; pipeline: pid {}, {:?}, journal {}",
                load.hello.pid,
                load_cpus,
                std::process::id(),
                mode,
                if journal { "on (write-ahead)" } else { "off" }
            );
        }
        let mut sc = Scenario::new(spec.portfolios)?;
        (sc.engine.idle, sc.engine.idle_spin_us) = spec.idle;
        sc.engine.mode = mode.stage_mode();
        sc.engine.rehearse_us = spec.rehearse_us;
        sc.router.netting = spec.netting;
        let mut pspec =
            sc.pipeline_spec(load.hello.ws.clone(), load.hello.rpc.clone(), load.hello.relay.clone())?;
        let dir = tempfile::tempdir()?;
        if journal {
            pspec.journal = Some(keel_journal::JournalConfig {
                path: dir.path().join("journal.sqlite"),
                sync: keel_journal::SyncPolicy::default(),
                write_ahead: true,
                commit_timeout_ms: 2_000,
            });
        }
        // Threads that exist before the pipeline starts are not its own (other pipelines of a
        // test binary, the runtime's workers): only the new `keel-engine`/`keel-router` are pinned.
        let before = super::affinity::thread_ids()?;
        let pipeline = Pipeline::launch(pspec, &tokio::runtime::Handle::current()).await?;
        let mut hot_cpus = Vec::new();
        for &name in mode.hot_threads() {
            // A new thread names itself once running: retry briefly.
            let mut tids = Vec::new();
            let t0 = Instant::now();
            while tids.is_empty() && t0.elapsed() < Duration::from_secs(2) {
                tids = super::affinity::pin_threads_named(name, &before, &[spec.hot_cpu])?;
                if tids.is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            let Some(&tid) = tids.first() else { eyre::bail!("no new `{name}` thread to pin") };
            hot_cpus = super::affinity::allowed(tid)?;
        }
        let mut rig = IsolatedRig { load, pipeline, load_cpus, hot_cpus, _dir: dir };
        // Warm-up, as in the in-process rig: pools, balances and nonces read, prices set.
        rig.load.set_rate(1_000)?;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let valued = rig.pipeline.snapshot().portfolios.iter().all(|p| p.value.is_some());
            if valued && t0.elapsed().as_millis() > 500 {
                break;
            }
        }
        rig.load.set_rate(0)?;
        if spec.progress {
            eprintln!(
                "warm-up {:.1} s: {} portfolios valued, {} frames read",
                t0.elapsed().as_secs_f64(),
                rig.pipeline.snapshot().portfolios.iter().filter(|p| p.value.is_some()).count(),
                rig.pipeline.feed_stats().frames
            );
        }
        Ok(rig)
    }
}

/// Runs one isolated measurement (the process must already be restricted, [`restrict_process`]).
pub async fn run(cfg: &IsolatedConfig, mode: PipelineMode, journal: bool) -> eyre::Result<IsolatedRun> {
    let IsolatedRig { mut load, pipeline, load_cpus, hot_cpus, _dir } =
        IsolatedRig::start(&cfg.rig, mode, journal).await?;
    pipeline.observer().stamp_submits.store(true, Ordering::Relaxed);
    let base = load.stats()?;
    let start_abs = abs_mono_ns();
    load.set_rate(cfg.rate)?;
    let t0 = Instant::now();
    let mut last = Instant::now();
    while t0.elapsed() < cfg.duration {
        tokio::time::sleep(Duration::from_millis(100).min(cfg.duration.saturating_sub(t0.elapsed()))).await;
        if cfg.rig.progress && last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let s = load.stats()?;
            eprintln!(
                "t={:>4.1}s sent {:>8} read {:>8} crossings {:>5} intents {:>5} queue {:>5} dropped {}",
                t0.elapsed().as_secs_f64(),
                s.sent - base.sent,
                pipeline.feed_stats().frames,
                s.crossings - base.crossings,
                pipeline.observer().submit_stamps.lock().len(),
                pipeline.event_queue_len(),
                pipeline.event_queue_stats().dropped,
            );
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    load.set_rate(0)?;
    let pipe_clock = MonoOffset::measure();
    let observer = std::sync::Arc::clone(pipeline.observer());
    let report = pipeline.shutdown().await;
    let stamps = observer.submit_stamps.lock().clone();
    let lr = load.stop()?;
    let portfolio_of: HashMap<u64, usize> =
        report.engine.intents.iter().map(|i| (i.id, i.portfolio.0 as usize)).collect();
    let arrival: HashMap<&str, u64> = lr.arrivals.iter().map(|a| (a.header.as_str(), a.arrival_ns)).collect();
    let mut by_symbol: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, c) in lr.crossings.iter().enumerate() {
        by_symbol.entry(c.symbol.as_str()).or_default().push(k);
    }
    let mut taken = vec![false; lr.crossings.len()];
    let (mut wire_in, mut read_to_wire, mut tick_to_wire) = (new_hist(), new_hist(), new_hist());
    // read_to_wire's parts, on the pipeline's own stamps (one clock) and then the delivery.
    let (mut decide, mut sign, mut write, mut delivery) = (new_hist(), new_hist(), new_hist(), new_hist());
    let (mut submitted, mut unattributed, mut not_at_relay) = (0u64, 0u64, 0u64);
    for s in &stamps {
        let recv = pipe_clock.to_abs(s.event_recv_ns);
        if recv < start_abs {
            continue;
        }
        submitted += 1;
        let Some(&arr) = arrival.get(s.signature_header.as_str()) else {
            not_at_relay += 1;
            continue;
        };
        let sym = portfolio_of.get(&s.intent).map(|&p| symbol(p));
        let list = sym.as_deref().and_then(|s| by_symbol.get(s));
        // Latest crossing of the symbol sent before the read, if the symbol was not sent again since.
        let hit = list.and_then(|l| {
            let k = *l.iter().rev().find(|&&k| lr.crossings[k].send_ns <= recv)?;
            let c = &lr.crossings[k];
            (!taken[k] && (c.next_same_ns == 0 || recv < c.next_same_ns)).then_some(k)
        });
        let Some(k) = hit else {
            unattributed += 1;
            continue;
        };
        taken[k] = true;
        let send = lr.crossings[k].send_ns;
        wire_in.record(recv.saturating_sub(send).max(1))?;
        read_to_wire.record(arr.saturating_sub(recv).max(1))?;
        tick_to_wire.record(arr.saturating_sub(send).max(1))?;
        decide.record(s.decided_ns.saturating_sub(s.event_recv_ns).max(1))?;
        sign.record(s.signed_ns.saturating_sub(s.decided_ns).max(1))?;
        write.record(s.posted_ns.saturating_sub(s.signed_ns).max(1))?;
        delivery.record(arr.saturating_sub(pipe_clock.to_abs(s.posted_ns)).max(1))?;
    }
    let stages = vec![
        Stage {
            name: "wire_in",
            what: "blaster wrote the crossing frame (load process) → feed read it (pipeline process)",
            hist: wire_in,
        },
        Stage {
            name: "read_to_wire",
            what: "feed read the frame → relay parsed the bundle request (load process)",
            hist: read_to_wire,
        },
        Stage {
            name: "read_to_decided",
            what: "feed read the frame → the engine decided (its queue hop too, pipelined)",
            hist: decide,
        },
        Stage {
            name: "decided_to_signed",
            what: "engine decided → the request was routed, signed and encoded (the router queue hop too, pipelined)",
            hist: sign,
        },
        Stage {
            name: "signed_to_written",
            what: "request encoded → written to the relay's socket",
            hist: write,
        },
        Stage {
            name: "written_to_relay",
            what: "written → the relay parsed it (loopback delivery and the load process's wake-up)",
            hist: delivery,
        },
        Stage {
            name: "tick_to_wire",
            what: "blaster wrote the frame → relay parsed the request it fired (both in the load process)",
            hist: tick_to_wire,
        },
    ];
    let attributed = stages.iter().find(|s| s.name == "tick_to_wire").map_or(0, |s| s.hist.len());
    let summary = stages.iter().map(|s| (s.name.to_string(), StageSummary::of(&s.hist))).collect();
    Ok(IsolatedRun {
        journal,
        mode,
        rate: cfg.rate,
        pipeline_pid: std::process::id(),
        load_pid: lr.pid,
        load_ppid: lr.ppid,
        load_cpus,
        hot_cpus,
        seconds,
        frames_sent: lr.stats.sent - base.sent,
        frames_read: report.feed.frames,
        dropped: report.event_queue.dropped,
        crossings: lr.stats.crossings - base.crossings,
        submitted,
        attributed,
        unattributed,
        not_at_relay,
        journal_records: report.journal_records.and_then(Result::ok),
        clock_error_ns: pipe_clock.error_ns + lr.clock.error_ns,
        summary,
        stages,
    })
}

fn fmt_us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

/// The runs side by side: one line of counts per run, then per stage p50/p99/p99.9/max in µs.
pub fn side_by_side(runs: &[IsolatedRun]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    for r in runs {
        let _ = writeln!(
            t,
            "{:?} journal {}: {:.1} s at {} frames/s, {} sent, {} read, {} dropped, {} crossings, {} intents, \
             {} measured, {} unattributed, {} not at relay; pipeline pid {} (hot CPUs {:?}), load pid {} (CPUs {:?}); \
             clock error ±{} ns",
            r.mode,
            if r.journal { "on" } else { "off" },
            r.seconds,
            r.rate,
            r.frames_sent,
            r.frames_read,
            r.dropped,
            r.crossings,
            r.submitted,
            r.attributed,
            r.unattributed,
            r.not_at_relay,
            r.pipeline_pid,
            r.hot_cpus,
            r.load_pid,
            r.load_cpus,
            r.clock_error_ns
        );
    }
    let _ = write!(t, "{:<18}", "µs");
    for r in runs {
        let j = format!("{:?}, journal {}", r.mode, if r.journal { "on" } else { "off" });
        let _ = write!(t, " | {:^35}", j);
    }
    let _ = writeln!(t);
    let _ = write!(t, "{:<18}", "stage");
    for _ in runs {
        let _ = write!(t, " | {:>8} {:>8} {:>8} {:>8}", "p50", "p99", "p99.9", "max");
    }
    let _ = writeln!(t);
    let names: Vec<&str> =
        runs.first().map(|r| r.stages.iter().map(|s| s.name).collect()).unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let _ = write!(t, "{name:<18}");
        for r in runs {
            let s = StageSummary::of(&r.stages[i].hist);
            let _ = write!(
                t,
                " | {:>8} {:>8} {:>8} {:>8}",
                fmt_us(s.p50_ns),
                fmt_us(s.p99_ns),
                fmt_us(s.p999_ns),
                fmt_us(s.max_ns)
            );
        }
        let _ = writeln!(t);
    }
    t
}
