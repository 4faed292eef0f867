//! `keel`: the command-line binary that wires feeds, engine and router.
//!
//! * `keel demo` — the whole pipeline against the simulated market, with a report and a plot;
//! * `keel run --config FILE` — the pipeline against real endpoints;
//! * `keel record --config FILE --out DIR` — a run (demo or live) with every input recorded;
//! * `keel replay REC --config FILE --out DIR` — the same engine and router over a recording, in
//!   virtual time, against a chain simulated from the recorded pool state;
//! * `keel check-config FILE` — validate a config, naming the field and the problem;
//! * `keel quote [FILE]` — the router's dry run: JSON request in, exact split JSON out;
//! * `keel journal [list|show N]` — recent rebalances from the journal, or one in full;
//! * `keel bench …` — the latency harness (`keel-bench`).

#![cfg_attr(test, allow(unused_crate_dependencies))]

mod backtest;
mod chains;
mod config;
mod cost_svg;
mod demo;
mod devnet;
mod frontier_svg;
mod journal;
mod live;
mod record;
mod replay;
mod report;
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Keel: low-latency, event-driven portfolio rebalancing on decentralised exchanges, with private
/// (Flashbots) bundle execution.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `keel_router=debug`.
    #[arg(long, global = true, env = "KEEL_LOG", default_value = "warn")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// `keel backtest`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BacktestArgs {
    /// Join shard outputs instead of running a sweep.
    #[command(subcommand)]
    merge: Option<BacktestCommand>,
    /// The recording's directory (`keel record --out`).
    rec: Option<PathBuf>,
    /// The sweep: space-separated `key=v1,v2,…` over abs_band (every drift trigger), cost_aware
    /// (off/on), kappa, margin, cooldown_secs (every portfolio) and latency_us (the replay's send
    /// delay); every combination runs.
    #[arg(long)]
    sweep: Option<String>,
    /// Base config (default: the one stored in the recording).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run only configs I, I+N, I+2N, … of the sweep (`I/N`), for independent jobs.
    #[arg(long)]
    shard: Option<String>,
    /// Where to write the outputs.
    #[arg(long, default_value = "keel-backtest-out")]
    out: PathBuf,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// `keel backtest merge`.
#[derive(Debug, Subcommand)]
enum BacktestCommand {
    /// Join the `backtest.json` of shard output directories into one result.
    Merge {
        /// Where to write the joined outputs.
        #[arg(long)]
        out: PathBuf,
        /// The shards' output directories.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the full pipeline against the built-in simulated market (no outside service needed).
    Demo {
        /// How long to run, seconds.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Where to write report.json and weights.svg.
        #[arg(long, default_value = "keel-demo-out")]
        out: PathBuf,
        /// Config file (must have a [sim] section). Default: the built-in demo config, the same text
        /// as configs/demo.toml (so an installed `keel demo` runs in any directory).
        #[arg(long)]
        config: Option<PathBuf>,
        /// No live progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Run against the endpoints in a config (node, relays, exchange feed).
    Run {
        /// Config file.
        #[arg(long)]
        config: PathBuf,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// Where to write report.json and weights.svg at the end.
        #[arg(long, default_value = "keel-run-out")]
        out: PathBuf,
    },
    /// Record a run: every input (exchange frames, heads, pool logs, pending-swap impact, balance,
    /// nonce and allowance reads, receipts, relay answers) with its receive time, into `--out`.
    /// With a `[sim]` config this runs the demo pipeline; otherwise the live one (e.g. against
    /// `keel devnet`'s config). The run's report.json and weights.svg are written next to it.
    Record {
        /// Config file.
        #[arg(long)]
        config: PathBuf,
        /// How long to record, seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// The recording's directory (created; must not hold a recording already).
        #[arg(long)]
        out: PathBuf,
        /// Size at which a recording file is closed and the next started, MiB (default: the
        /// config's `[record] max_file_mb`, else 256).
        #[arg(long)]
        max_file_mb: Option<u64>,
    },
    /// Replay a recording: the same engine, planner, router and signer over the recorded inputs in
    /// virtual time, against a chain simulated from the recorded pool state. Writes report.json,
    /// weights.svg, journal.sqlite and replay.json into `--out`; two replays of one recording with
    /// one config write identical files.
    Replay {
        /// The recording's directory (`keel record --out`).
        rec: PathBuf,
        /// Config file (tokens, pools, portfolios, engine and router settings, keys); default: the
        /// config the run was recorded with (stored in the recording).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where to write the outputs (must not hold a journal.sqlite already).
        #[arg(long)]
        out: PathBuf,
        /// Delay every bundle's arrival at the chain by this many microseconds.
        #[arg(long, default_value_t = 0)]
        latency_us: u64,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Many configs over one recording, each an independent replay, in parallel on all cores:
    /// writes backtest.json, backtest.md, frontier.svg (tracking error against cost, Pareto front
    /// marked) and, with several latency_us values, latency.svg. `keel backtest merge` joins shards.
    Backtest(BacktestArgs),
    /// Start a local devnet: anvil with the real Uniswap V2/V3/V4, Balancer and Curve contracts,
    /// the loopback relay and a quote server; fund a portfolio; write the config for `keel run`;
    /// keep the market moving.
    Devnet {
        /// anvil's port on 127.0.0.1.
        #[arg(long, default_value_t = 8545)]
        port: u16,
        /// The relay's port.
        #[arg(long, default_value_t = 8550)]
        relay_port: u16,
        /// The quote server's port.
        #[arg(long, default_value_t = 8551)]
        quotes_port: u16,
        /// Block interval, milliseconds (50 … 60000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
        block_ms: u64,
        /// Seconds between market moves (1 … 3600).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=3600))]
        move_every: u64,
        /// Where to write the config.
        #[arg(long, default_value = "keel-devnet.toml")]
        write_config: PathBuf,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// Chains to start (1 or 2). With 2, a second anvil (chain id 1337) takes raw transactions
        /// (`private_rpc`) and the config written has `[[chains]]`.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        chains: u8,
        /// The second chain's anvil port (with `--chains 2`).
        #[arg(long, default_value_t = 8546)]
        port_2: u16,
        /// The second chain's block interval, milliseconds (50 … 60000; default twice --block-ms).
        #[arg(long, value_parser = clap::value_parser!(u64).range(50..=60_000))]
        block_ms_2: Option<u64>,
    },
    /// Validate a config file.
    CheckConfig {
        /// Config file.
        file: PathBuf,
    },
    /// Quote a swap across pools: JSON request from FILE (or stdin), JSON response on stdout.
    Quote {
        /// Request file; stdin when absent or `-`.
        file: Option<PathBuf>,
    },
    /// The latency harness (`keel-bench`, installed next to `keel`): `keel bench latency|throughput|scale …`.
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments passed to `keel-bench` as they are (try `keel bench --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Read the journal: recent rebalances (`list`, the default) or one in full (`show INTENT`);
    /// `stats` for inclusion analytics; `prune` removes old settled ones.
    Journal {
        /// The journal file.
        #[arg(long, global = true)]
        path: Option<PathBuf>,
        /// Or the config whose `[journal] path` to read.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: Option<JournalAction>,
    },
}

#[derive(Debug, Subcommand)]
enum JournalAction {
    /// The newest rebalances, oldest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One rebalance: trigger, legs, each signed version, each relay's answer, the outcome.
    Show {
        /// Its intent id (first column of `list`).
        intent: u64,
    },
    /// Inclusion analytics: how rebalances ended (expiries by reason), time to inclusion and
    /// fees, and per relay and per builder the landing rate and the time to inclusion.
    Stats {
        /// Only records of the last DURATION (`30m`, `24h`, `7d`; default: all).
        #[arg(long, value_parser = journal::parse_since)]
        since: Option<u64>,
    },
    /// Remove settled rebalances (landed, refused, expired, abandoned) last changed more than
    /// `--older-than-days` ago; open ones are always kept. Safe while Keel runs.
    Prune {
        /// Age in days, at least 1 (the daily notional caps read the last 24 h at start).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=36_500))]
        older_than_days: u64,
    },
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_json);
    let result = match cli.command {
        Command::Demo { duration, out, config, quiet } => {
            demo::run(config.as_deref(), duration, &out, !quiet)
        }
        Command::Run { config, duration, out } => live::run(&config, duration, &out),
        Command::Replay { rec, config, out, latency_us, quiet } => {
            replay::run(&rec, config.as_deref(), &out, latency_us, !quiet)
        }
        Command::Backtest(b) => match b.merge {
            Some(BacktestCommand::Merge { out, shards }) => backtest::merge(&out, &shards),
            None => match (b.rec, b.sweep) {
                (Some(rec), Some(sweep)) => {
                    backtest::run(&rec, b.config.as_deref(), &sweep, b.shard.as_deref(), &b.out, !b.quiet)
                }
                _ => Err(eyre::eyre!("keel backtest REC --sweep '…' (or keel backtest merge): see --help")),
            },
        },
        Command::Record { config, duration, out, max_file_mb } => {
            record::run(&config, duration, &out, max_file_mb)
        }
        Command::Devnet {
            port,
            relay_port,
            quotes_port,
            block_ms,
            move_every,
            write_config,
            duration,
            chains,
            port_2,
            block_ms_2,
        } => {
            let ports = devnet::Ports { anvil: port, relay: relay_port, quotes: quotes_port };
            let second = (chains == 2).then(|| devnet::SecondChain {
                port: port_2,
                block_ms: block_ms_2.unwrap_or(block_ms.saturating_mul(2).min(60_000)),
            });
            devnet::run(ports, block_ms, move_every, &write_config, duration, second)
        }
        Command::CheckConfig { file } => check_config(&file),
        Command::Quote { file } => return quote(file),
        Command::Bench { args } => return bench(&args),
        Command::Journal { path, config, json, action } => journal::resolve_path(path, config.as_deref())
            .and_then(|p| match action {
                None => journal::list(&p, 20, json),
                Some(JournalAction::List { limit }) => journal::list(&p, limit, json),
                Some(JournalAction::Show { intent }) => journal::show(&p, intent, json),
                Some(JournalAction::Prune { older_than_days }) => journal::prune(&p, older_than_days, json),
                Some(JournalAction::Stats { since }) => journal::stats(&p, since, json),
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completes at the first Ctrl-C (SIGINT) or SIGTERM: how `keel run`, `keel demo` and `keel devnet`
/// are stopped gracefully. Listening starts when this is first polled and lasts as long as the
/// future, so keep one pinned future for the whole run.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM handler not installed; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The async runtime for I/O (feeds, relay posts, the simulated market): two workers; the engine
/// and router stages run on their own threads.
fn io_runtime() -> eyre::Result<tokio::runtime::Runtime> {
    use eyre::WrapErr;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("keel-io")
        .build()
        .wrap_err("starting the async runtime")
}

fn check_config(file: &std::path::Path) -> eyre::Result<()> {
    let cfg = config::KeelConfig::load(file)?;
    let purpose = if cfg.sim.is_some() { config::Purpose::Demo } else { config::Purpose::Live };
    cfg.check_purpose(purpose)?;
    println!(
        "{}: ok ({} tokens, {} pools, {} portfolios, for {})",
        file.display(),
        cfg.tokens.len(),
        cfg.pools.len(),
        cfg.portfolios.len(),
        if purpose == config::Purpose::Demo { "keel demo" } else { "keel run" }
    );
    Ok(())
}

/// `keel bench`: runs the `keel-bench` binary that sits next to this one with the same arguments.
fn bench(args: &[String]) -> ExitCode {
    let exe = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("keel-bench")));
    let Some(exe) = exe.filter(|p| p.exists()) else {
        eprintln!(
            "error: keel-bench is not installed next to keel; build it with `cargo build --release -p keel-bench`"
        );
        return ExitCode::FAILURE;
    };
    match std::process::Command::new(&exe).args(args).status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: running {}: {e}", exe.display());
            ExitCode::FAILURE
        }
    }
}

/// `keel quote`: exit 2 with one line on stderr on bad input.
fn quote(file: Option<PathBuf>) -> ExitCode {
    use std::io::Read;
    let input = match file.as_deref() {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))
        }
        _ => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf).map_err(|e| format!("reading stdin: {e}"))
        }
    };
    let input = match input {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match keel_amm::quote::run_quote(&input) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
