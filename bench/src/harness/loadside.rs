//! The load side of the isolated harness, in its own process: the [`Blaster`] (stamped
//! crossings), the [`StampingRelay`] and the scenario's simulated market (node and relay), pinned
//! to one CPU. The parent (`keel-bench latency --load-cpu N`) starts `keel-bench load-side` with
//! [`LoadSide::spawn`] and drives it over a line protocol:
//!
//! * child → parent, once started: [`Hello`] (its pid, CPUs, URLs, clock offset) as one JSON line;
//! * parent → child: `rate N` (answered `{"ok":true}`), `stats` ([`LoadStats`]), `stop`
//!   ([`LoadReport`], then the child shuts down and exits). Stdin closing also stops it.
//!
//! Every stamp in the report is on the system-wide `CLOCK_MONOTONIC` ([`super::clock`]).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use eyre::{WrapErr, eyre};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::blaster::{Blaster, BlasterConfig, CrossingSend};
use super::clock::MonoOffset;
use super::relay::StampingRelay;
use super::scenario::{FIRE_MOVE, START_PRICE, Scenario};

/// What the load side prints once it is serving.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Its process id.
    pub pid: u32,
    /// Its parent's process id.
    pub ppid: u32,
    /// The CPUs it may run on (read back after pinning).
    pub cpus: Vec<usize>,
    /// Blaster, `ws://…`.
    pub ws: String,
    /// Simulated node, `http://…`.
    pub rpc: String,
    /// Stamping relay, `http://…`.
    pub relay: String,
}

/// Running counters (answer to `stats`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LoadStats {
    /// Frames sent.
    pub sent: u64,
    /// Band-crossing frames sent.
    pub crossings: u64,
}

/// One bundle request as the relay saw it, on the system-wide clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbsArrival {
    /// `X-Flashbots-Signature` value.
    pub header: String,
    /// Headers parsed, absolute `CLOCK_MONOTONIC` ns.
    pub arrival_ns: u64,
}

/// Everything the load side measured (answer to `stop`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    /// Its process id.
    pub pid: u32,
    /// Its parent's process id.
    pub ppid: u32,
    /// Counters at the stop.
    pub stats: LoadStats,
    /// Stamped crossings, in send order.
    pub crossings: Vec<CrossingSend>,
    /// Crossings not logged (log full).
    pub crossings_dropped: u64,
    /// Relay arrivals.
    pub arrivals: Vec<AbsArrival>,
    /// Its clock mapping (relay arrivals were converted with it).
    pub clock: MonoOffset,
}

/// `keel-bench load-side`: serves until `stop` or stdin closes. The caller has pinned the process.
pub async fn serve(portfolios: usize, fire_fraction: f64) -> eyre::Result<()> {
    let sc = Scenario::new(portfolios)?;
    let cancel = CancellationToken::new();
    let sim = sc.start_market(cancel.clone()).await?;
    let relay = StampingRelay::start(Some(sim.relay_url()), cancel.clone()).await?;
    let cfg = BlasterConfig {
        symbols: sc.symbols().into_iter().map(|s| (s, START_PRICE)).collect(),
        fire_fraction,
        fire_move: FIRE_MOVE,
        stamp_crossings: true,
    };
    let blaster = Blaster::start(cfg, 0, cancel.clone()).await?;
    let hello = Hello {
        pid: std::process::id(),
        ppid: std::os::unix::process::parent_id(),
        cpus: super::affinity::allowed(0)?,
        ws: blaster.url(),
        rpc: sim.rpc_url(),
        relay: relay.url(),
    };
    println_flush(&serde_json::to_string(&hello)?)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let stats = |b: &Blaster| LoadStats {
        sent: b.stats().sent.load(Ordering::Relaxed),
        crossings: b.stats().crossings.load(Ordering::Relaxed),
    };
    // `None`: stdin closed.
    while let Some(line) = rx.recv().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("rate"), Some(n)) => {
                let r: u64 = n.parse().wrap_err_with(|| format!("load side: bad rate `{n}`"))?;
                blaster.set_rate(r);
                println_flush(r#"{"ok":true}"#)?;
            }
            (Some("stats"), None) => println_flush(&serde_json::to_string(&stats(&blaster))?)?,
            (Some("stop"), None) => {
                blaster.set_rate(0);
                let clock = MonoOffset::measure();
                let arrivals = relay
                    .arrivals()
                    .into_iter()
                    .map(|a| AbsArrival {
                        header: a.signature_header,
                        arrival_ns: clock.to_abs(a.arrival_ns),
                    })
                    .collect();
                let report = LoadReport {
                    pid: std::process::id(),
                    ppid: std::os::unix::process::parent_id(),
                    stats: stats(&blaster),
                    crossings: blaster.stats().crossing_log.lock().clone(),
                    crossings_dropped: blaster.stats().crossing_log_dropped.load(Ordering::Relaxed),
                    arrivals,
                    clock,
                };
                println_flush(&serde_json::to_string(&report)?)?;
                break;
            }
            _ => eyre::bail!("load side: unknown command `{line}`"),
        }
    }
    blaster.shutdown().await;
    relay.shutdown().await;
    sim.shutdown().await;
    cancel.cancel();
    Ok(())
}

fn println_flush(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// The parent's handle on a load-side process; killed and reaped on drop if still running.
#[derive(Debug)]
pub struct LoadSide {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// What it printed when it started.
    pub hello: Hello,
}

impl LoadSide {
    /// Starts `keel-bench load-side` (this executable, or `exe`) pinned to `load_cpu`.
    pub fn spawn(
        exe: Option<&std::path::Path>,
        portfolios: usize,
        fire_fraction: f64,
        load_cpu: usize,
    ) -> eyre::Result<LoadSide> {
        let exe = match exe {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe().wrap_err("locating keel-bench")?,
        };
        let mut child = Command::new(&exe)
            .args(["load-side", "--portfolios", &portfolios.to_string()])
            .args(["--fire-fraction", &fire_fraction.to_string(), "--load-cpu", &load_cpu.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .wrap_err_with(|| format!("starting the load side ({} load-side)", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout =
            BufReader::new(child.stdout.take().ok_or_else(|| eyre!("no stdout from the load side"))?);
        let mut side = LoadSide {
            child,
            stdin,
            stdout,
            hello: Hello {
                pid: 0,
                ppid: 0,
                cpus: Vec::new(),
                ws: String::new(),
                rpc: String::new(),
                relay: String::new(),
            },
        };
        side.hello = side.read_line().wrap_err("reading the load side's addresses")?;
        Ok(side)
    }

    fn read_line<T: serde::de::DeserializeOwned>(&mut self) -> eyre::Result<T> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).wrap_err("reading from the load side")?;
        if n == 0 {
            eyre::bail!("the load side exited (see its error above)");
        }
        serde_json::from_str(line.trim()).wrap_err_with(|| format!("the load side printed `{}`", line.trim()))
    }

    fn request<T: serde::de::DeserializeOwned>(&mut self, cmd: &str) -> eyre::Result<T> {
        let stdin = self.stdin.as_mut().ok_or_else(|| eyre!("load side already stopped"))?;
        writeln!(stdin, "{cmd}").and_then(|_| stdin.flush()).wrap_err("writing to the load side")?;
        // A pipe round trip to a local process: short, but blocking.
        tokio::task::block_in_place(|| self.read_line())
    }

    /// Sets the blaster's rate, frames/s (0 pauses).
    pub fn set_rate(&mut self, rate: u64) -> eyre::Result<()> {
        let _: serde_json::Value = self.request(&format!("rate {rate}"))?;
        Ok(())
    }

    /// Current counters.
    pub fn stats(&mut self) -> eyre::Result<LoadStats> {
        self.request("stats")
    }

    /// Stops the load side and returns its report; waits (up to 10 s) for it to exit.
    pub fn stop(mut self) -> eyre::Result<LoadReport> {
        let report: LoadReport = self.request("stop")?;
        drop(self.stdin.take());
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(report)
    }
}

impl Drop for LoadSide {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
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
