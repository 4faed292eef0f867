//! `keel demo`: the simulated market and the full pipeline in one process, with live progress, a
//! summary, `report.json` and `weights.svg`.

use std::path::Path;
use std::time::{Duration, Instant};

use eyre::{Context, eyre};
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::RelayConfig;
use keel_runtime::pipeline::{DEFAULT_SAMPLE_EVERY, Pipeline, PipelineSpec};
use keel_sim::SimMarket;
use tokio_util::sync::CancellationToken;

use crate::config::{KeelConfig, Purpose};
use crate::report::{self, RunReport};

/// The demo config built into the binary: `configs/demo.toml` as it was at build time.
pub(crate) const BUILT_IN_CONFIG: &str = include_str!("../configs/demo.toml");

/// Runs the demo for `duration_s` seconds and writes its outputs into `out`; `config` defaults to
/// [`BUILT_IN_CONFIG`].
pub(crate) fn run(config: Option<&Path>, duration_s: u64, out: &Path, progress: bool) -> eyre::Result<()> {
    let cfg = match config {
        Some(path) => KeelConfig::load(path)?,
        None => KeelConfig::parse(BUILT_IN_CONFIG).wrap_err("in the built-in demo config")?,
    };
    cfg.check_purpose(Purpose::Demo)?;
    let rt = crate::io_runtime()?;
    let report = rt.block_on(run_async(cfg, Duration::from_secs(duration_s), progress))?;
    report::write_outputs(&report, out)?;
    report::print_summary(&report, out);
    if report.rebalances_landed == 0 {
        return Err(eyre!("no bundle landed during the demo: see the log above (run with --log info)"));
    }
    Ok(())
}

/// The demo without its file outputs: start the market and the pipeline, run, collect the report.
pub(crate) async fn run_async(
    cfg: KeelConfig,
    duration: Duration,
    progress: bool,
) -> eyre::Result<RunReport> {
    let (sim, cancel, spec) = start_market(&cfg, progress).await?;
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current())?;
    run_for(&pipeline, duration, progress).await;
    let run = pipeline.shutdown().await;
    let sim_stats = sim.stats();
    let report = report::build(&cfg, run, Some(sim_stats));
    sim.shutdown().await;
    cancel.cancel();
    Ok(report)
}

/// Starts the simulated market of `cfg`'s `[sim]` and the pipeline spec pointed at it (exchange
/// websocket, node, relay): the set-up `keel demo` and `keel record` share.
pub(crate) async fn start_market(
    cfg: &KeelConfig,
    progress: bool,
) -> eyre::Result<(SimMarket, CancellationToken, PipelineSpec)> {
    let sim_cfg = cfg.sim.clone().ok_or_else(|| eyre!("sim: missing"))?;
    let cancel = CancellationToken::new();
    let sim =
        SimMarket::start(sim_cfg, cfg.tokens.clone(), cfg.dexes.clone(), cfg.pools.clone(), cancel.clone())
            .await
            .wrap_err("starting the simulated market")?;
    if progress {
        eprintln!(
            "simulated market: exchange {}  node {}  relay {}",
            sim.ws_url(),
            sim.rpc_url(),
            sim.relay_url()
        );
    }
    let mut spec = crate::live::spec_from_config(cfg)?;
    spec.binance = BinanceFeedConfig::new(sim.ws_url(), cfg.feed_symbols());
    spec.rpc_url = sim.rpc_url();
    spec.relays = vec![RelayConfig {
        name: "sim-relay".into(),
        url: sim.relay_url(),
        timeout_ms: 2_000,
        fast_path: true,
        ca_cert: None,
        coinbase: None,
    }];
    spec.poll_ms = cfg.chain.as_ref().map(|c| c.poll_ms).unwrap_or(50);
    spec.sample_every = DEFAULT_SAMPLE_EVERY;
    Ok((sim, cancel, spec))
}

/// Waits `duration` (or Ctrl-C), printing a progress line every second.
pub(crate) async fn run_for(pipeline: &Pipeline, duration: Duration, progress: bool) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut shutdown => {
                eprintln!("interrupted: draining and writing the report");
                break;
            }
        }
        if progress {
            eprintln!(
                "{}",
                report::progress_line(&pipeline.snapshot(), &pipeline.feed_stats(), &pipeline.chain_heads())
            );
        }
        if start.elapsed() >= duration {
            break;
        }
    }
}
