//! `keel run`: the pipeline against the endpoints in a config.

use std::path::Path;
use std::time::Duration;

use eyre::eyre;
use keel_runtime::pipeline::{DEFAULT_SAMPLE_EVERY, Pipeline, PipelineSpec};

use crate::config::{DEFAULT_CHAIN_POLL_MS, KeelConfig, Purpose};
use crate::report;

/// Resolves a config into a pipeline spec: loads the keys (from the environment or the dev set).
/// Endpoints are taken from the config when present; `keel demo` overrides them.
pub(crate) fn spec_from_config(cfg: &KeelConfig) -> eyre::Result<PipelineSpec> {
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
    // Gas is priced through native ETH itself when a portfolio holds it (a token at the zero
    // address), else through wrapped ETH.
    let native_symbol =
        cfg.tokens.iter().find(|t| t.address.is_zero()).map(|t| t.symbol.clone()).or_else(|| {
            ["WETH", "WETH9"]
                .iter()
                .find(|s| cfg.tokens.iter().any(|t| &t.symbol == *s))
                .map(|s| s.to_string())
        });
    Ok(PipelineSpec {
        engine: cfg.engine.clone(),
        tokens: cfg.tokens.clone(),
        portfolios: cfg.portfolios.clone(),
        router: cfg.router.clone(),
        dexes: cfg.dexes.clone(),
        pools: cfg.pools.clone(),
        relays: cfg.relays.clone(),
        reputation,
        accounts,
        binance: cfg.feeds.binance.clone().unwrap_or_else(|| {
            keel_feeds::ws::BinanceFeedConfig::new(keel_feeds::ws::DEFAULT_BINANCE_WS_URL, cfg.feed_symbols())
        }),
        rpc_url: cfg.chain.as_ref().map(|c| c.rpc_url.clone()).unwrap_or_default(),
        poll_ms: cfg.chain.as_ref().map(|c| c.poll_ms).unwrap_or(DEFAULT_CHAIN_POLL_MS),
        node_ws_url: cfg.chain.as_ref().and_then(|c| c.ws_url.clone()),
        mempool: cfg.chain.as_ref().map(|c| c.mempool.clone()).unwrap_or_default(),
        native_symbol,
        sample_every: DEFAULT_SAMPLE_EVERY,
        safety: keel_runtime::safety::SafetySpec {
            dry_run: cfg.safety.dry_run,
            kill_file: cfg.safety.kill_file.clone(),
            control_port: cfg.safety.control_port,
            control_token: cfg
                .safety
                .control_token
                .as_deref()
                .map(keel_runtime::control::ControlToken::resolve)
                .transpose()
                .map_err(|e| eyre::eyre!("safety.control_token: {e}"))?,
            watch: cfg.safety.watch.clone(),
        },
        journal: cfg.journal.clone(),
        record: cfg.record.as_ref().map(|r| keel_runtime::record::RecordSpec {
            dir: r.dir.clone(),
            max_file_bytes: r.max_file_mb.saturating_mul(1024 * 1024),
            config_toml: cfg.source_toml.clone(),
            metadata_json: format!(
                "{{\"recorder\":\"keel {}\",\"chain_id\":{}}}",
                env!("CARGO_PKG_VERSION"),
                cfg.router.chain_id
            ),
        }),
        predictors: cfg.predictors.clone(),
        registry: cfg.registry.as_ref().map(|r| r.address),
    })
}

/// Runs until Ctrl-C (or `duration_s`), then writes the report.
pub(crate) fn run(config: &Path, duration_s: Option<u64>, out: &Path) -> eyre::Result<()> {
    let cfg = KeelConfig::load(config)?;
    cfg.check_purpose(Purpose::Live)?;
    let mut spec = spec_from_config(&cfg)?;
    let chains = crate::chains::chain_specs(&cfg)?;
    if let Some(first) = cfg.chains.first() {
        // The shared spec's node is the first chain's (each lane overrides it with its own).
        spec.rpc_url = first.rpc_url.clone();
    }
    let rt = crate::io_runtime()?;
    let report = rt.block_on(async {
        let pipeline = Pipeline::launch_chains(spec, chains, &tokio::runtime::Handle::current()).await?;
        let duration = duration_s.map(Duration::from_secs).unwrap_or(Duration::from_secs(u64::MAX / 4));
        crate::demo::run_for(&pipeline, duration, true).await;
        let mut run = pipeline.shutdown().await;
        let recording = run.recording.take();
        Ok::<_, eyre::Report>((report::build(&cfg, run, None), recording))
    })?;
    let (report, recording) = report;
    report::write_outputs(&report, out)?;
    report::print_summary(&report, out);
    if let Some(r) = recording {
        crate::record::print_recording(&r);
        if let Some(e) = &r.error {
            return Err(eyre!("recording failed: {e}"));
        }
    }
    Ok(())
}
