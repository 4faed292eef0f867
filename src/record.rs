//! `keel record`: a run with every input recorded into `--out` — the demo pipeline against the
//! simulated market when the config has `[sim]`, else the live pipeline against the config's
//! endpoints (a `keel devnet` config records the devnet). The run's report and plot go next to the
//! recording, so a replay can be compared with what the run decided.

use std::path::Path;
use std::time::{Duration, Instant};

use eyre::eyre;
use keel_runtime::pipeline::Pipeline;
use keel_runtime::record::RecordingReport;

use crate::config::{KeelConfig, Purpose, RecordConfig};
use crate::report;

/// Runs `config` for `duration_s` seconds, recording into `out`, and writes the run's report there.
pub(crate) fn run(config: &Path, duration_s: u64, out: &Path, max_file_mb: Option<u64>) -> eyre::Result<()> {
    let mut cfg = KeelConfig::load(config)?;
    let purpose = if cfg.sim.is_some() { Purpose::Demo } else { Purpose::Live };
    cfg.check_purpose(purpose)?;
    let max_file_mb = max_file_mb
        .or(cfg.record.as_ref().map(|r| r.max_file_mb))
        .unwrap_or(keel_runtime::record::DEFAULT_MAX_FILE_MB);
    if !(1..=crate::config::MAX_RECORD_FILE_MB).contains(&max_file_mb) {
        return Err(eyre!(
            "--max-file-mb: {max_file_mb} is outside 1..={}",
            crate::config::MAX_RECORD_FILE_MB
        ));
    }
    cfg.record = Some(RecordConfig { dir: out.to_path_buf(), max_file_mb });
    let rt = crate::io_runtime()?;
    let duration = Duration::from_secs(duration_s);
    let (report, recording) = rt.block_on(async move {
        match purpose {
            Purpose::Demo => record_demo(cfg, duration).await,
            Purpose::Live => record_live(cfg, duration).await,
        }
    })?;
    report::write_outputs(&report, out)?;
    report::print_summary(&report, out);
    let Some(rec) = recording else { return Err(eyre!("the run ended without its recording report")) };
    print_recording(&rec);
    if let Some(e) = &rec.error {
        return Err(eyre!("recording failed: {e}"));
    }
    Ok(())
}

/// The closing lines about a recording.
pub(crate) fn print_recording(r: &RecordingReport) {
    println!(
        "recording: {} records, {:.1} KiB in {} file(s) under {}; dropped {} (queue full) + {} (oversize)",
        r.records,
        r.file_bytes as f64 / 1024.0,
        r.files,
        r.dir.display(),
        r.dropped_full,
        r.dropped_oversize
    );
    println!(
        "replay it: keel replay {} --out <dir>  (add --config FILE to replay with other settings)",
        r.dir.display()
    );
}

async fn record_live(
    cfg: KeelConfig,
    duration: Duration,
) -> eyre::Result<(report::RunReport, Option<RecordingReport>)> {
    let spec = crate::live::spec_from_config(&cfg)?;
    if spec.registry.is_some() {
        tracing::warn!(
            "[registry] changes are applied but not recorded: a replay of this recording runs without them"
        );
    }
    let pipeline = Pipeline::launch(spec, &tokio::runtime::Handle::current()).await?;
    run_for(&pipeline, duration).await;
    let mut run = pipeline.shutdown().await;
    let recording = run.recording.take();
    Ok((report::build(&cfg, run, None), recording))
}

/// The demo's set-up (as `keel demo`), with the recording on.
async fn record_demo(
    cfg: KeelConfig,
    duration: Duration,
) -> eyre::Result<(report::RunReport, Option<RecordingReport>)> {
    let (sim, cancel, spec) = crate::demo::start_market(&cfg, true).await?;
    let pipeline = Pipeline::launch(spec, &tokio::runtime::Handle::current()).await?;
    run_for(&pipeline, duration).await;
    let mut run = pipeline.shutdown().await;
    let recording = run.recording.take();
    let sim_stats = sim.stats();
    let report = report::build(&cfg, run, Some(sim_stats));
    sim.shutdown().await;
    cancel.cancel();
    Ok((report, recording))
}

/// Waits `duration` (or Ctrl-C), printing the run's progress and the recording's every second.
async fn run_for(pipeline: &Pipeline, duration: Duration) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut shutdown => {
                eprintln!("interrupted: draining, closing the recording and writing the report");
                break;
            }
        }
        let rec = pipeline.recording_stats().unwrap_or_default();
        eprintln!(
            "{}  | recorded {} (queued {}, dropped {})",
            report::progress_line(&pipeline.snapshot(), &pipeline.feed_stats(), &pipeline.chain_heads()),
            rec.records,
            rec.queued,
            rec.dropped()
        );
        if start.elapsed() >= duration {
            break;
        }
    }
}
