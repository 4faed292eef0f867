//! `soak`: the full production pipeline ([`Pipeline`], the code path of `keel run` and
//! `keel demo`) over a large [`Book`] on the simulated market at accelerated block time, with the
//! process's resident memory sampled from `/proc/self/statm` over the run.
//!
//! The simulated market runs in a child process (`keel-bench sim-market`, same book), so the
//! resident memory measured is Keel's alone: the simulated node keeps every block, receipt and
//! bundle status it ever produced, as a real node's database does, and would otherwise be counted.
//! The child's memory is reported beside it, for information.
//!
//! At the end, trading is stopped with the kill switch and the run waits (up to
//! [`DRAIN_TIMEOUT`]) for every rebalance in flight to settle (landed, expired or rejected), then
//! reports rebalances fired, settled and unsettled, and every drop counter of the pipeline.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use eyre::{Context, eyre};
use keel_runtime::pipeline::Pipeline;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::book::{Book, BookConfig};

/// Page size that `/proc/self/statm` counts in (4 KiB on x86-64 and aarch64 Linux).
pub const PAGE_BYTES: u64 = 4096;
/// Longest wait for the rebalances in flight to settle at the end.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Growth is measured from this point of the run (after warm-up).
pub const WARM_UP: Duration = Duration::from_secs(120);

/// The soak's book: `portfolios` on target at start (no tilt: a whole book firing in one block
/// overwhelms the relay path, see docs/scale.md), 30 s cooldowns, the market moving them out of
/// their bands.
pub fn soak_book(portfolios: usize, block_ms: u64) -> BookConfig {
    BookConfig { block_ms, tilt: 0.0, ..BookConfig::new(portfolios) }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The book.
    pub book: BookConfig,
    /// Length of the trading part of the run.
    pub duration: Duration,
    /// Interval between memory samples.
    pub sample_every: Duration,
    /// JSON summary path.
    pub json: Option<PathBuf>,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// Resident memory of process `pid` (`None`: this process), bytes.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/statm"),
        None => "/proc/self/statm".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let resident: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    resident.checked_mul(PAGE_BYTES)
}

/// The simulated market in a child process; killed and reaped on drop.
#[derive(Debug)]
struct SimChild {
    child: Child,
    ws: String,
    rpc: String,
    relay: String,
}

impl SimChild {
    fn start(book: &BookConfig) -> eyre::Result<SimChild> {
        let exe = std::env::current_exe().wrap_err("locating keel-bench")?;
        let mut child = Command::new(exe)
            .args(["sim-market", "--portfolios", &book.portfolios.to_string()])
            .args(["--block-ms", &book.block_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .wrap_err("starting the simulated market process")?;
        let stdout = child.stdout.take().ok_or_else(|| eyre!("no stdout from the market process"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).wrap_err("reading the market's addresses")?;
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .wrap_err_with(|| format!("the market process printed `{}`", line.trim()))?;
        let get = |k: &str| v[k].as_str().map(str::to_owned).ok_or_else(|| eyre!("market: no `{k}`"));
        Ok(SimChild { ws: get("ws")?, rpc: get("rpc")?, relay: get("relay")?, child })
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        // Closing its stdin stops it; kill only if it does not stop.
        drop(self.child.stdin.take());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keel-bench sim-market`: runs the book's simulated market until stdin closes, after printing
/// `{"ws": .., "rpc": .., "relay": ..}` on one stdout line.
pub async fn serve_market(book: &BookConfig) -> eyre::Result<()> {
    let b = Book::new(book)?;
    let cancel = CancellationToken::new();
    let sim = b.start_market(cancel.clone()).await?;
    let line = json!({ "ws": sim.ws_url(), "rpc": sim.rpc_url(), "relay": sim.relay_url() });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    // Stdin closing (the parent ended or dropped its handle) stops the market.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    })
    .await?;
    sim.shutdown().await;
    Ok(())
}

/// One memory sample.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RssSample {
    /// Seconds since the pipeline started.
    pub t_s: f64,
    /// Keel's resident memory, bytes.
    pub rss_bytes: u64,
    /// The simulated market process's resident memory, bytes (information only).
    pub sim_rss_bytes: u64,
    /// Rebalances settled so far.
    pub settled: u64,
}

/// Growth of the resident memory from the first sample at or after [`WARM_UP`] to the last, %.
pub fn growth_after_warm_up(samples: &[RssSample]) -> Option<f64> {
    let first = samples.iter().find(|s| s.t_s >= WARM_UP.as_secs_f64())?;
    let last = samples.last()?;
    (first.rss_bytes > 0 && last.t_s > first.t_s)
        .then(|| (last.rss_bytes as f64 - first.rss_bytes as f64) / first.rss_bytes as f64 * 100.0)
}

/// Runs the soak and returns its JSON summary (also written to `cfg.json`).
pub async fn run_soak(cfg: &SoakConfig) -> eyre::Result<serde_json::Value> {
    let book = Book::new(&cfg.book)?;
    let market = tokio::task::block_in_place(|| SimChild::start(&cfg.book))?;
    let sim_pid = market.child.id();
    let spec = book.pipeline_spec(market.ws.clone(), market.rpc.clone(), market.relay.clone())?;
    let t0 = Instant::now();
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current())?;
    let settled = |p: &Pipeline| {
        let o = p.snapshot().engine.outcomes;
        o.landed + o.expired + o.rejected
    };
    let mut samples: Vec<RssSample> = Vec::new();
    let mut tick = tokio::time::interval(cfg.sample_every);
    loop {
        tick.tick().await;
        let t_s = t0.elapsed().as_secs_f64();
        let s = RssSample {
            t_s,
            rss_bytes: rss_bytes(None).unwrap_or(0),
            sim_rss_bytes: rss_bytes(Some(sim_pid)).unwrap_or(0),
            settled: settled(&pipeline),
        };
        samples.push(s);
        if cfg.progress {
            let snap = pipeline.snapshot();
            eprintln!(
                "t={:>6.0}s rss={:>7.1} MiB sim={:>7.1} MiB fired={} landed={} expired={} rejected={} blocks={} head={:?}",
                t_s,
                s.rss_bytes as f64 / (1 << 20) as f64,
                s.sim_rss_bytes as f64 / (1 << 20) as f64,
                snap.engine.intents_emitted,
                snap.engine.outcomes.landed,
                snap.engine.outcomes.expired,
                snap.engine.outcomes.rejected,
                pipeline.poll_stats().blocks.load(Ordering::Relaxed),
                snap.head,
            );
        }
        if t0.elapsed() >= cfg.duration {
            break;
        }
    }
    // Stop new rebalances and let the ones in flight settle.
    pipeline.kill_switch().engage("soak: end of the run");
    let drain_start = Instant::now();
    while drain_start.elapsed() < DRAIN_TIMEOUT {
        let snap = pipeline.snapshot();
        if snap.engine.intents_emitted <= settled(&pipeline) && snap.portfolios.iter().all(|p| !p.busy) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained_s = drain_start.elapsed().as_secs_f64();
    let poll = pipeline.poll_stats().clone();
    let report = pipeline.shutdown().await;
    drop(market);
    let e = report.engine.engine.stats();
    let fired = e.intents_emitted;
    let settled = e.outcomes.landed + e.outcomes.expired + e.outcomes.rejected;
    let growth = growth_after_warm_up(&samples);
    let drops = json!({
        "feed_queue_full": report.feed.queue_full,
        "event_queue": report.event_queue.dropped,
        "router_queue": report.router_queue.dropped,
        "poller": poll.dropped.load(Ordering::Relaxed),
        "outcomes": report.outcomes_dropped,
    });
    let total_drops: u64 =
        drops.as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum()).unwrap_or(0);
    let summary = json!({
        "mode": "soak",
        "portfolios": cfg.book.portfolios,
        "block_ms": cfg.book.block_ms,
        "duration_s": cfg.duration.as_secs_f64(),
        "sample_every_s": cfg.sample_every.as_secs_f64(),
        "rss_samples": samples,
        "rss_growth_from_2min_pct": growth,
        "rss_peak_bytes": samples.iter().map(|s| s.rss_bytes).max(),
        "drops": drops,
        "drops_total": total_drops,
        "rebalances": {
            "fired": fired,
            "landed": e.outcomes.landed,
            "expired": e.outcomes.expired,
            "rejected": e.outcomes.rejected,
            "settled": settled,
            "unsettled": fired.saturating_sub(settled),
            "portfolios_fired": report.engine.fired.iter().filter(|&&n| n > 0).count(),
            "drain_s": drained_s,
        },
        "blocks_read": report.blocks,
        "poller": {
            "batches": poll.batches.load(Ordering::Relaxed),
            "errors": poll.errors.load(Ordering::Relaxed),
        },
        "exec": {
            "intents": report.exec.intents,
            "submissions": report.exec.submissions,
            "landed": report.exec.landed,
            "expired": report.exec.expired,
            "rejected": report.exec.rejected,
            "risk_refused": report.exec.risk_refused,
            "oracle_blocked": report.exec.oracle_blocked,
        },
    });
    println!(
        "soak: {} portfolios, {:.0} s, blocks every {} ms: RSS {:.1} MiB at {:.0} s → {:.1} MiB at the end ({}), \
         drops {}, rebalances fired {} settled {} unsettled {} (landed {}, expired {}, rejected {})",
        cfg.book.portfolios,
        cfg.duration.as_secs_f64(),
        cfg.book.block_ms,
        samples
            .iter()
            .find(|s| s.t_s >= WARM_UP.as_secs_f64())
            .map_or(0.0, |s| s.rss_bytes as f64 / (1 << 20) as f64),
        WARM_UP.as_secs_f64(),
        samples.last().map_or(0.0, |s| s.rss_bytes as f64 / (1 << 20) as f64),
        growth.map_or("run shorter than the warm-up: no growth figure".to_owned(), |g| format!("{g:+.2}%")),
        total_drops,
        fired,
        settled,
        fired.saturating_sub(settled),
        e.outcomes.landed,
        e.outcomes.expired,
        e.outcomes.rejected,
    );
    if let Some(p) = &cfg.json {
        std::fs::write(p, serde_json::to_vec_pretty(&summary)?)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss_bytes(None).unwrap() > 1 << 20);
    }

    #[test]
    fn growth_is_measured_from_the_warm_up_sample_to_the_last() {
        let s = |t_s: f64, rss: u64| RssSample { t_s, rss_bytes: rss, sim_rss_bytes: 0, settled: 0 };
        let samples = [s(0.0, 50), s(119.0, 90), s(120.0, 100), s(600.0, 104)];
        assert!((growth_after_warm_up(&samples).unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(growth_after_warm_up(&samples[..2]), None);
    }
}
