//! `keel-bench`: Keel's latency harness.
//!
//! ```text
//! keel-bench latency    --duration-secs 10 --rate 10000 --json out.json --hgrm-dir hgrm --plot latency.svg
//! keel-bench latency    --hot-cpu 1 --load-cpu 0 --journal both   # load in another process
//! keel-bench throughput --duration-secs 10 --json tp.json
//! keel-bench scale      --duration-secs 10 --json scale.json
//! keel-bench latency    --rate 50000 --record rec/        # a busy recording …
//! keel-bench replay     rec/ --json replay.json           # … replayed: events_per_s
//! keel-bench fuzz       --target fastpost --iterations 10000000 --json fuzz-fastpost.json
//! keel-bench soak       --portfolios 10000 --duration-secs 1800 --json soak.json
//! ```
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use eyre::Context;
use keel_bench::harness::{self, Outputs, latency::RigConfig};
use keel_engine::config::IdleWait;

/// The allocator `keel` runs with, so that the harness (and the soak's memory figures) measure
/// the same thing.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keel's latency harness: per-stage latency of the production pipeline on loopback, the highest
/// sustained frame rate, and the cost of one tick across many portfolios.
#[derive(Debug, Parser)]
#[command(name = "keel-bench", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Log filter (tracing), e.g. `warn` or `keel_router=debug`.
    #[arg(long, global = true, default_value = "error")]
    log: String,
}

#[derive(Debug, Args)]
struct Common {
    /// Upper bound of the measured part of the run, seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write one HdrHistogram percentile file (`<stage>.hgrm`, values in µs) per stage here.
    #[arg(long)]
    hgrm_dir: Option<PathBuf>,
    /// Write an SVG percentile plot of the stages here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// The full pipeline over a large book on the simulated market: resident memory over time
    /// (`/proc/self/statm`), drops, every rebalance settled.
    Soak {
        /// Portfolios, each on its own account.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        portfolios: u64,
        /// Length of the trading part of the run, seconds.
        #[arg(long, default_value_t = 1_800)]
        duration_secs: u64,
        /// Simulated block interval, ms (accelerated: mainnet's is 12,000).
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
        block_ms: u64,
        /// Seconds between memory samples.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
        sample_secs: u64,
        /// Write the summary (with `rss_samples`) as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// The soak's simulated market alone (started by `soak` as a child process): prints its
    /// addresses as one JSON line and runs until stdin closes.
    #[command(hide = true)]
    SimMarket {
        /// Portfolios of the book.
        #[arg(long)]
        portfolios: u64,
        /// Block interval, ms.
        #[arg(long)]
        block_ms: u64,
    },
    /// The isolated latency harness's load side (started by `latency --load-cpu N` as a child
    /// process): blaster, stamping relay and simulated market pinned to one CPU, driven over
    /// stdin/stdout.
    #[command(hide = true)]
    LoadSide {
        /// Portfolios of the scenario.
        #[arg(long)]
        portfolios: usize,
        /// Fraction of frames that cross a band.
        #[arg(long)]
        fire_fraction: f64,
        /// CPU to pin this process to.
        #[arg(long)]
        load_cpu: usize,
    },
    /// Per-stage latency of the production pipeline fed at a set frame rate.
    ///
    /// By default the blaster, the simulated market and the stamping relay run in this process.
    /// With `--load-cpu N --hot-cpu M` they run in a separate process pinned to CPU N, the
    /// engine and router threads are pinned to CPU M and the rest of the pipeline kept off CPU N;
    /// tick-to-wire is then measured from the blaster's write of the firing frame to the relay's
    /// receipt of the bundle request, both on CLOCK_MONOTONIC.
    Latency {
        #[command(flatten)]
        common: Common,
        /// Frames per second offered by the websocket blaster (1000 … 100000).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        rate: u64,
        /// Fraction of frames that push a portfolio past its band.
        #[arg(long, default_value_t = 0.005)]
        fire_fraction: f64,
        /// Portfolios (each on its own asset, instrument and account), 1..=8.
        #[arg(long, default_value_t = 8)]
        portfolios: usize,
        /// How the engine and router threads wait when idle: park, spin or spin_then_park.
        #[arg(long, default_value = "park", value_parser = parse_idle)]
        idle: IdleWait,
        /// Busy-poll budget of `--idle spin_then_park`, microseconds.
        #[arg(long, default_value_t = keel_engine::config::DEFAULT_IDLE_SPIN_US)]
        idle_spin_us: u64,
        /// Record every input into this directory while measuring (the recording's cost shows
        /// in the stages; the recording feeds `keel-bench replay`).
        #[arg(long, conflicts_with = "load_cpu")]
        record: Option<PathBuf>,
        /// Run the load (blaster, relay, simulated market) in a separate process pinned to this
        /// CPU: the isolated harness.
        #[arg(long, requires = "hot_cpu")]
        load_cpu: Option<usize>,
        /// Pin the engine and router threads to this CPU (isolated harness).
        #[arg(long, requires = "load_cpu")]
        hot_cpu: Option<usize>,
        /// Pipeline shape (isolated harness): `pipelined` (feed → engine thread → router
        /// thread), `inline` (the engine thread routes, signs and writes the bundle itself) or
        /// `both` (one run each, printed side by side).
        #[arg(long, default_value = "pipelined", value_parser = ["pipelined", "inline", "both"], requires = "load_cpu")]
        mode: String,
        /// Journal during the isolated run: `off`, `on` (write-ahead: the commit is on the path)
        /// or `both` (two runs, printed side by side).
        #[arg(long, default_value = "off", value_parser = ["off", "on", "both"], requires = "load_cpu")]
        journal: String,
        /// Netting (isolated harness): `on` (the default, `[router] netting`: a rebalance joins
        /// its block's batch, which is re-planned and re-bundled with it) or `off` (each rebalance
        /// its own one-leg bundle).
        #[arg(long, default_value = "on", value_parser = ["on", "off"], requires = "load_cpu")]
        netting: String,
        /// `[engine] rehearse_us` (isolated harness, inline mode): once idle this long, the hot
        /// thread routes its latest intent again, committing nothing, to keep the path warm; 0: off.
        #[arg(long, default_value_t = keel_engine::config::DEFAULT_REHEARSE_US, requires = "load_cpu",
              value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
        rehearse_us: u64,
    },
    /// The highest frame rate sustained with no dropped frame and a bounded engine queue.
    ///
    /// By default the load runs in this process and the rate steps from 1k to 200k frames/s.
    /// With `--load-cpu N --hot-cpu M` the load runs in a separate process pinned to CPU N (the
    /// isolated rig of `latency`), the hot thread(s) on CPU M, and the ladder steps from 50k to
    /// 1.5M frames/s (`--rates`) in each `--mode`.
    Throughput {
        #[command(flatten)]
        common: Common,
        /// Fraction of frames that push a portfolio past its band.
        #[arg(long, default_value_t = 0.005)]
        fire_fraction: f64,
        /// Portfolios, 1..=8.
        #[arg(long, default_value_t = 8)]
        portfolios: usize,
        /// Deepest engine queue a passing trial may reach, events.
        #[arg(long, default_value_t = 1_000)]
        max_depth: usize,
        /// Run the load in a separate process pinned to this CPU (isolated rig).
        #[arg(long, requires = "hot_cpu")]
        load_cpu: Option<usize>,
        /// Pin the engine (and router) thread to this CPU (isolated rig).
        #[arg(long, requires = "load_cpu")]
        hot_cpu: Option<usize>,
        /// Pipeline shape (isolated rig): `pipelined`, `inline` or `both`.
        #[arg(long, default_value = "inline", value_parser = ["pipelined", "inline", "both"], requires = "load_cpu")]
        mode: String,
        /// How the hot thread(s) wait when idle (isolated rig): park, spin or spin_then_park.
        #[arg(long, default_value = "spin", value_parser = parse_idle, requires = "load_cpu")]
        idle: IdleWait,
        /// Offered rates of the isolated ladder, frames/s (comma-separated, ascending).
        #[arg(long, value_delimiter = ',', requires = "load_cpu",
              default_values_t = harness::ingest::INGEST_RATES.to_vec())]
        rates: Vec<u64>,
        /// Seconds per trial of the isolated ladder.
        #[arg(long, default_value_t = 2.0, requires = "load_cpu")]
        trial_secs: f64,
    },
    /// Replay speed: a recording through the engine, router and simulated chain in virtual time
    /// (`keel replay` without its outputs), one thread; reports `events_per_s`.
    Replay {
        /// The recording's directory.
        rec: PathBuf,
        /// Config to replay with (default: the one stored in the recording's header).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the summary as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Replays to run (the figure is the best; each is independent).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
    },
    /// Mutation fuzzing of a parser of outside input (stable Rust; build with `--profile fuzz`):
    /// counts, time and every distinct crash, whose input is written to `--crash-dir`.
    Fuzz {
        /// What to fuzz.
        #[arg(long, value_enum)]
        target: keel_bench::fuzz::Target,
        /// Inputs to run.
        #[arg(long, default_value_t = 10_000_000)]
        iterations: u64,
        /// PRNG seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where crashing inputs are written.
        #[arg(long, default_value = "fuzz-crashes")]
        crash_dir: PathBuf,
        /// Directories of extra seeds (default: the captured Binance sessions in feeds/tests/data).
        #[arg(long)]
        corpus: Vec<PathBuf>,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Run this one saved input instead (reproduces a crash file); exits 1 if it panics.
        #[arg(long)]
        replay: Option<PathBuf>,
    },
    /// One quote's `process` across 1, 1k, 10k and 100k portfolios over 50 assets.
    Scale {
        #[command(flatten)]
        common: Common,
        /// Portfolio counts (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = harness::SCALE_SIZES.to_vec())]
        sizes: Vec<usize>,
    },
}

fn parse_idle(s: &str) -> Result<IdleWait, String> {
    match s {
        "park" => Ok(IdleWait::Park),
        "spin" => Ok(IdleWait::Spin),
        "spin_then_park" => Ok(IdleWait::SpinThenPark),
        _ => Err(format!("`{s}`: expected park, spin or spin_then_park")),
    }
}

/// `--mode`'s pipeline shapes, in run order.
fn modes(mode: &str) -> Vec<harness::isolated::PipelineMode> {
    use harness::isolated::PipelineMode::{Inline, Pipelined};
    match mode {
        "inline" => vec![Inline],
        "both" => vec![Pipelined, Inline],
        _ => vec![Pipelined],
    }
}

fn outputs(c: &Common) -> Outputs {
    Outputs { json: c.json.clone(), hgrm_dir: c.hgrm_dir.clone(), plot: c.plot.clone() }
}

fn runtime() -> eyre::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("keel-io")
        .build()
        .wrap_err("starting the async runtime")
}

fn main() -> eyre::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    match cli.mode {
        Mode::Soak { portfolios, duration_secs, block_ms, sample_secs, json, quiet } => {
            let book = harness::soak::soak_book(portfolios as usize, block_ms);
            let cfg = harness::soak::SoakConfig {
                book,
                duration: Duration::from_secs(duration_secs),
                sample_every: Duration::from_secs(sample_secs),
                json,
                progress: !quiet,
            };
            runtime()?.block_on(harness::soak::run_soak(&cfg))?;
        }
        Mode::SimMarket { portfolios, block_ms } => {
            let book = harness::soak::soak_book(portfolios as usize, block_ms);
            runtime()?.block_on(harness::soak::serve_market(&book))?;
        }
        Mode::LoadSide { portfolios, fire_fraction, load_cpu } => {
            // Before the runtime starts, so that every thread of this process inherits the mask.
            harness::affinity::pin_current(&[load_cpu])
                .wrap_err_with(|| format!("pinning to CPU {load_cpu}"))?;
            runtime()?.block_on(harness::loadside::serve(portfolios, fire_fraction))?;
        }
        Mode::Latency {
            common,
            rate,
            fire_fraction,
            portfolios,
            idle,
            idle_spin_us,
            load_cpu: Some(load_cpu),
            hot_cpu: Some(hot_cpu),
            mode,
            journal,
            netting,
            rehearse_us,
            ..
        } => {
            let cfg = harness::isolated::IsolatedConfig {
                rig: harness::isolated::RigOptions {
                    idle: (idle, idle_spin_us),
                    netting: netting == "on",
                    rehearse_us,
                    ..harness::isolated::RigOptions::pinned(
                        portfolios,
                        fire_fraction,
                        hot_cpu,
                        load_cpu,
                        !common.quiet,
                    )
                },
                rate,
                duration: Duration::from_secs(common.duration_secs),
                modes: modes(&mode),
            };
            harness::isolated::validate(&cfg)?;
            let journals: &[bool] = match journal.as_str() {
                "on" => &[true],
                "both" => &[false, true],
                _ => &[false],
            };
            // Before the runtime starts: its threads inherit "every CPU but the load's".
            harness::isolated::restrict_process(load_cpu)?;
            runtime()?.block_on(harness::latency_isolated(&cfg, journals, &outputs(&common)))?;
        }
        Mode::Latency { common, rate, fire_fraction, portfolios, idle, idle_spin_us, record, .. } => {
            let cfg = RigConfig {
                portfolios,
                fire_fraction,
                progress: !common.quiet,
                idle: (idle, idle_spin_us),
                record,
            };
            let d = Duration::from_secs(common.duration_secs);
            runtime()?.block_on(harness::latency(&cfg, rate, d, &outputs(&common)))?;
        }
        Mode::Throughput {
            common,
            fire_fraction,
            portfolios,
            max_depth,
            load_cpu: Some(load_cpu),
            hot_cpu: Some(hot_cpu),
            mode,
            idle,
            rates,
            trial_secs,
        } => {
            if !(0.1..=60.0).contains(&trial_secs) {
                eyre::bail!("--trial-secs {trial_secs}: expected 0.1 ..= 60");
            }
            if rates.is_empty() || rates.contains(&0) || !rates.is_sorted() {
                eyre::bail!("--rates {rates:?}: expected positive rates in ascending order");
            }
            let cfg = harness::ingest::IngestConfig {
                rig: harness::isolated::RigOptions {
                    idle: (idle, keel_engine::config::DEFAULT_IDLE_SPIN_US),
                    ..harness::isolated::RigOptions::pinned(
                        portfolios,
                        fire_fraction,
                        hot_cpu,
                        load_cpu,
                        !common.quiet,
                    )
                },
                rates,
                trial: Duration::from_secs_f64(trial_secs),
                max_depth,
                modes: modes(&mode),
            };
            cfg.rig.validate()?;
            harness::isolated::restrict_process(load_cpu)?;
            runtime()?.block_on(harness::throughput_isolated(&cfg, &outputs(&common)))?;
        }
        Mode::Throughput { common, fire_fraction, portfolios, max_depth, .. } => {
            let idle = (IdleWait::Park, 0);
            let cfg = RigConfig { portfolios, fire_fraction, progress: !common.quiet, idle, record: None };
            let d = Duration::from_secs(common.duration_secs);
            runtime()?.block_on(harness::throughput(&cfg, d, max_depth, &outputs(&common)))?;
        }
        Mode::Replay { rec, config, json, runs } => {
            harness::replay::replay_bench(&rec, config.as_deref(), runs, json.as_deref())?;
        }
        Mode::Scale { common, sizes } => {
            harness::scale(&sizes, Duration::from_secs(common.duration_secs), &outputs(&common))?;
        }
        Mode::Fuzz { target, iterations, seed, crash_dir, corpus, json, replay } => {
            fuzz(target, iterations, seed, crash_dir, corpus, json, replay)?;
        }
    }
    Ok(())
}

fn fuzz(
    target: keel_bench::fuzz::Target,
    iterations: u64,
    seed: u64,
    crash_dir: PathBuf,
    corpus: Vec<PathBuf>,
    json: Option<PathBuf>,
    replay: Option<PathBuf>,
) -> eyre::Result<()> {
    use keel_bench::fuzz;
    if let Some(file) = replay {
        let input = std::fs::read(&file).wrap_err_with(|| format!("reading {}", file.display()))?;
        return match fuzz::replay(target, &input) {
            Ok(()) => {
                println!("{}: no panic", file.display());
                Ok(())
            }
            Err(msg) => Err(eyre::eyre!("{}: panicked: {msg}", file.display())),
        };
    }
    let corpus = if corpus.is_empty() {
        vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../feeds/tests/data"))]
    } else {
        corpus
    };
    let opts = fuzz::FuzzOptions {
        target,
        iterations,
        seed,
        crash_dir,
        corpus,
        progress_every: (iterations / 10).max(1),
    };
    let report = fuzz::run(&opts)?;
    println!(
        "fuzz {}: {} inputs from {} seeds in {:.1} s ({:.0}/s), {} crashes at {} sites",
        target.name(),
        report.iterations,
        report.seeds,
        report.seconds,
        report.inputs_per_s,
        report.crashes,
        report.unique.len()
    );
    for c in &report.unique {
        println!("  {} × {}: {} ({})", c.count, c.location, c.message, c.file.display());
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .wrap_err_with(|| format!("writing {}", path.display()))?;
    }
    if report.crashes > 0 {
        eyre::bail!("{} crashes", report.crashes);
    }
    Ok(())
}
