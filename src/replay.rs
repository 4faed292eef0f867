//! `keel replay REC --config FILE --out DIR [--latency-us N]`: the engine, planner, router and
//! signer over a recording in virtual time (see `keel_runtime::replay`), with the outputs of
//! `keel demo --out`: `report.json`, `weights.svg`, the journal (`journal.sqlite`, readable with
//! `keel journal --path`), plus `replay.json` (what the replay read and simulated). Two replays of
//! one recording with one config write byte-identical directories; wall-clock speed goes to
//! stderr only.

use std::path::Path;
use std::time::Instant;

use eyre::{Context, eyre};
use keel_runtime::replay::{ReplayOptions, ReplayStats, open_recording, replay};

use crate::config::KeelConfig;
use crate::report;

/// The journal's file name in `--out`.
pub(crate) const JOURNAL_FILE: &str = "journal.sqlite";

/// Replays `rec` with `config` (default: the config stored in the recording) into `out`.
pub(crate) fn run(
    rec: &Path,
    config: Option<&Path>,
    out: &Path,
    latency_us: u64,
    progress: bool,
) -> eyre::Result<()> {
    let mut reader =
        open_recording(rec).wrap_err_with(|| format!("opening the recording {}", rec.display()))?;
    let (cfg, config_name) = match config {
        Some(p) => (KeelConfig::load(p)?, p.display().to_string()),
        None => (
            KeelConfig::parse(&reader.header().config_toml)
                .wrap_err("the config stored in the recording (pass --config FILE to use another)")?,
            "the recorded config".to_string(),
        ),
    };
    let spec = crate::live::spec_from_config(&cfg)?;
    std::fs::create_dir_all(out).wrap_err_with(|| format!("creating {}", out.display()))?;
    let journal = out.join(JOURNAL_FILE);
    if journal.exists() {
        return Err(eyre!("{} exists: replay into an empty --out directory", journal.display()));
    }
    if progress {
        let files = reader.files().count();
        eprintln!(
            "replaying {} ({files} file(s)) with {config_name}, latency {latency_us} µs",
            rec.display()
        );
    }
    let opts = ReplayOptions { latency_ns: latency_us.saturating_mul(1_000), journal: Some(journal) };
    let started = Instant::now();
    let output = replay(&mut reader, &spec, opts, |s| {
        if progress {
            eprintln!("{}", progress_line(s));
        }
    })?;
    let wall = started.elapsed().as_secs_f64();
    let stats = output.stats;
    let run = report::build(&cfg, output.report, None);
    report::write_outputs(&run, out)?;
    let json = serde_json::to_string_pretty(&stats)?;
    std::fs::write(out.join("replay.json"), json).wrap_err("writing replay.json")?;
    report::print_summary(&run, out);
    print_replay(&stats, wall);
    Ok(())
}

fn progress_line(s: &ReplayStats) -> String {
    format!(
        "[{:>8.1}s virtual] records {} (frames {}) | blocks {} | bundles sent {} included {} late {} | issues {}",
        s.virtual_ns as f64 / 1e9,
        s.records,
        s.frames,
        s.blocks,
        s.bundles_sent,
        s.bundles_included,
        s.bundles_late,
        s.issues
    )
}

fn print_replay(s: &ReplayStats, wall_s: f64) {
    println!(
        "replay: {} records ({} frames, {} chain inputs, {} reads superseded by the simulated chain) over {:.1} s of virtual time in {:.3} s ({:.0} records/s)",
        s.records,
        s.frames,
        s.chain_inputs,
        s.reads_superseded,
        s.virtual_ns as f64 / 1e9,
        wall_s,
        s.records as f64 / wall_s.max(1e-9)
    );
    println!(
        "chain: {} blocks | bundles sent {} included {} late {} failed {:?}",
        s.blocks, s.bundles_sent, s.bundles_included, s.bundles_late, s.bundles_failed
    );
    if s.issues > 0 || s.undecodable > 0 {
        println!("recording damage: {} issue(s), {} undecodable record(s) skipped:", s.issues, s.undecodable);
        for i in &s.issue_list {
            println!("  {i}");
        }
    }
}
