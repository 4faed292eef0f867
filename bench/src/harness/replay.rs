//! `replay`: how fast a recording replays — the engine, the executor (routing and signing) and the
//! simulated chain of `keel_runtime::replay` over every record, on one thread, without writing
//! outputs. `events_per_s` is records read per second of wall time, set-up included.
//!
//! The config comes from `--config` or, by default, from the recording's header (the config the
//! run was recorded with; `keel-bench latency --record DIR` stores the harness scenario there).
//! Only the sections replay needs are read: `[engine]`, `[router]`, tokens, dexes, pools,
//! portfolios, `[signers]` and `[chain] ws_url`; the rest (endpoints, `[sim]`, …) is ignored.

use std::path::Path;
use std::time::Instant;

use eyre::{Context, eyre};
use keel_engine::config::{EngineConfig, PortfolioConfig, TokenConfig};
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::{DexConfig, PoolConfig, RouterConfig};
use keel_router::signer::KeySource;
use keel_runtime::pipeline::{DEFAULT_SAMPLE_EVERY, PipelineSpec};
use keel_runtime::replay::{ReplayOptions, ReplayStats, open_recording, replay};
use serde::Deserialize;
use serde_json::json;

/// The parts of a Keel config a replay uses.
#[derive(Debug, Deserialize)]
struct ReplayConfig {
    #[serde(default)]
    engine: EngineConfig,
    router: RouterConfig,
    tokens: Vec<TokenConfig>,
    dexes: Vec<DexConfig>,
    pools: Vec<PoolConfig>,
    portfolios: Vec<PortfolioConfig>,
    signers: Signers,
    #[serde(default)]
    chain: Option<Chain>,
}

#[derive(Debug, Deserialize)]
struct Signers {
    reputation_key: KeySource,
    accounts: Vec<KeySource>,
}

#[derive(Debug, Deserialize)]
struct Chain {
    #[serde(default)]
    ws_url: Option<String>,
}

fn spec(text: &str) -> eyre::Result<PipelineSpec> {
    let cfg: ReplayConfig = toml::from_str(text).wrap_err("the replay config")?;
    keel_engine::config::validate(&cfg.tokens, &cfg.portfolios)?;
    let chain_id = cfg.router.chain_id;
    let reputation =
        cfg.signers.reputation_key.load(chain_id).map_err(|e| eyre!("signers.reputation_key: {e}"))?;
    let accounts = cfg
        .signers
        .accounts
        .iter()
        .enumerate()
        .map(|(i, k)| k.load(chain_id).map_err(|e| eyre!("signers.accounts[{i}]: {e}")))
        .collect::<eyre::Result<Vec<_>>>()?;
    let native_symbol =
        ["WETH", "WETH9"].iter().find(|s| cfg.tokens.iter().any(|t| &t.symbol == *s)).map(|s| s.to_string());
    Ok(PipelineSpec {
        engine: cfg.engine,
        tokens: cfg.tokens,
        portfolios: cfg.portfolios,
        router: cfg.router,
        dexes: cfg.dexes,
        pools: cfg.pools,
        relays: Vec::new(),
        reputation,
        accounts,
        binance: BinanceFeedConfig::new("ws://127.0.0.1:1", Vec::<String>::new()),
        rpc_url: String::new(),
        poll_ms: 0,
        node_ws_url: cfg.chain.and_then(|c| c.ws_url),
        mempool: Default::default(),
        native_symbol,
        sample_every: DEFAULT_SAMPLE_EVERY,
        safety: Default::default(),
        journal: None,
        record: None,
        predictors: Vec::new(),
        registry: None,
    })
}

/// Replays `rec` `runs` times and reports the fastest; writes the JSON summary to `json`.
pub fn replay_bench(
    rec: &Path,
    config: Option<&Path>,
    runs: u32,
    json: Option<&Path>,
) -> eyre::Result<serde_json::Value> {
    let header_config = open_recording(rec)
        .wrap_err_with(|| format!("opening the recording {}", rec.display()))?
        .header()
        .config_toml
        .clone();
    let text = match config {
        Some(p) => std::fs::read_to_string(p).wrap_err_with(|| format!("reading {}", p.display()))?,
        None => header_config,
    };
    let spec = spec(&text)?;
    let mut best: Option<(f64, ReplayStats)> = None;
    for run in 1..=runs.max(1) {
        let mut reader = open_recording(rec)?;
        let t0 = Instant::now();
        let out = replay(&mut reader, &spec, ReplayOptions::default(), |_| {})?;
        let wall = t0.elapsed().as_secs_f64();
        let stats = out.stats;
        eprintln!(
            "run {run}: {} records in {wall:.3} s = {:.0} events/s ({:.1} s virtual, {:.0}× real time)",
            stats.records,
            stats.records as f64 / wall,
            stats.virtual_ns as f64 / 1e9,
            stats.virtual_ns as f64 / 1e9 / wall
        );
        if best.as_ref().is_none_or(|(w, _)| wall < *w) {
            best = Some((wall, stats));
        }
    }
    let Some((wall, stats)) = best else { return Err(eyre!("no run")) };
    let events_per_s = stats.records as f64 / wall;
    let virtual_s = stats.virtual_ns as f64 / 1e9;
    println!(
        "replay: {} records ({} frames) in {:.3} s: {:.0} events/s, {:.0}× real time; {} issues; bundles sent {} included {}",
        stats.records,
        stats.frames,
        wall,
        events_per_s,
        virtual_s / wall,
        stats.issues,
        stats.bundles_sent,
        stats.bundles_included
    );
    let v = json!({
        "mode": "replay",
        "recording": rec.display().to_string(),
        "records": stats.records,
        "frames": stats.frames,
        "engine_events": stats.engine_events,
        "wall_s": wall,
        "events_per_s": events_per_s,
        "virtual_s": virtual_s,
        "real_time_factor": virtual_s / wall,
        "runs": runs,
        "issues": stats.issues,
        "bundles_sent": stats.bundles_sent,
        "bundles_included": stats.bundles_included,
        "threads": 1,
    });
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_vec_pretty(&v)?)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(v)
}
