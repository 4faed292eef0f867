//! Recording a run's inputs (`[record]`, `keel record`): the recording is opened before the feeds
//! start, the exchange feed, the engine thread and the router stage hold its [`Recorder`], and a
//! writer thread drains the bounded sink into size-rotated files. See `keel_recording` for the
//! format. Every input but a frame is recorded by the thread that takes it from its queue, as it
//! takes it, so a recording holds each thread's inputs in the order that thread handled them.
//!
//! ```text
//! exchange frames, as read (ws.rs / hot.rs) ───────────┐
//! heads, balances, as the engine thread takes them ────┼─▶ Recorder ─try_record─▶ RecordSink ─▶ keel-recorder thread ─▶ DIR/keel-000001.klog …
//! pools, nonces, pending, heads, receipts, as the ─────┤     (one copy; a full sink is counted, never waited on)
//!   router stage takes them; relays' answers            │
//! the engine's timers, as it runs them ────────────────┘
//! ```
//!
//! The header's metadata says that the engine's timers are recorded ([`ENGINE_TIMERS_KEY`]): a
//! replay of such a recording runs them at their recorded times, where one of an older recording
//! runs its own every 100 ms.

use std::path::PathBuf;
use std::sync::Arc;

use keel_engine::clock::Nanos;
use keel_recording::{
    DrainPolicy, RecordSink, RecordWriter, Recorder, RecordingHeader, SinkConfig, SinkError,
    SinkWriterHandle, WriteError, WriterConfig,
};

/// File name prefix of a run's recording: `keel-000001.klog`, `keel-000002.klog`, …
pub const RECORDING_PREFIX: &str = "keel";
/// Default size at which a recording file is closed and the next one started, MiB.
pub const DEFAULT_MAX_FILE_MB: u64 = 256;
/// Metadata key (`true`) of a recording that holds the engine thread's timers.
pub const ENGINE_TIMERS_KEY: &str = "engine_timers";

/// The metadata stored in the header: the caller's JSON object with [`ENGINE_TIMERS_KEY`] set (text
/// that is not a JSON object is kept under `"metadata"`).
fn header_metadata(caller: &str) -> String {
    let mut meta = match serde_json::from_str::<serde_json::Value>(caller) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => {
            let mut m = serde_json::Map::new();
            m.insert("metadata".into(), serde_json::Value::String(caller.to_owned()));
            m
        }
    };
    meta.insert(ENGINE_TIMERS_KEY.into(), serde_json::Value::Bool(true));
    serde_json::Value::Object(meta).to_string()
}

/// Whether a recording's header metadata says that it holds the engine's timers.
pub fn records_engine_timers(metadata_json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(metadata_json)
        .ok()
        .and_then(|m| m.get(ENGINE_TIMERS_KEY)?.as_bool())
        .unwrap_or(false)
}

/// Where and how to record a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    /// Directory of the recording (created if missing; must not hold a recording already).
    pub dir: PathBuf,
    /// Rotation size, bytes.
    pub max_file_bytes: u64,
    /// The run's config, as TOML, stored in every file's header (replay reads it back).
    pub config_toml: String,
    /// Free-form JSON stored in the header (what recorded it, the command).
    pub metadata_json: String,
}

/// Why recording could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The directory could not be created.
    #[error("record.dir {}: {error}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error (in the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// The first file could not be created (or a recording is already there).
    #[error("record: {0}")]
    Write(WriteError),
    /// The sink or its writer thread failed.
    #[error("record: {0}")]
    Sink(SinkError),
}

/// What a recording wrote, for reports and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordingReport {
    /// The directory.
    pub dir: PathBuf,
    /// Records written.
    pub records: u64,
    /// Payload bytes written.
    pub payload_bytes: u64,
    /// Bytes written, headers and framing included.
    pub file_bytes: u64,
    /// Files written.
    pub files: u32,
    /// Inputs dropped because the recording's queue was full (the run itself went on).
    pub dropped_full: u64,
    /// Inputs dropped because they were larger than the largest slot.
    pub dropped_oversize: u64,
    /// The writer's error, if it failed (records after it were dropped and counted).
    pub error: Option<String>,
}

/// A recording in progress: the recorder the stages hold and the writer thread.
#[derive(Debug)]
pub struct Recording {
    recorder: Arc<Recorder>,
    writer: SinkWriterHandle,
    dir: PathBuf,
}

impl Recording {
    /// Creates the directory and the first file, and starts the writer thread. `start_ns` is the
    /// run's start on the process's monotonic timeline: receive times are recorded relative to it.
    pub fn start(spec: &RecordSpec, start_ns: Nanos) -> Result<Self, RecordError> {
        std::fs::create_dir_all(&spec.dir)
            .map_err(|error| RecordError::Dir { dir: spec.dir.clone(), error })?;
        let mut cfg = WriterConfig::new(&spec.dir, RECORDING_PREFIX);
        cfg.max_file_bytes = spec.max_file_bytes;
        let start_epoch_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let header = RecordingHeader {
            start_epoch_ns,
            config_toml: spec.config_toml.clone(),
            metadata_json: header_metadata(&spec.metadata_json),
        };
        let writer = RecordWriter::create(cfg, &header).map_err(RecordError::Write)?;
        let sink = Arc::new(RecordSink::new(&SinkConfig::default()).map_err(RecordError::Sink)?);
        let handle = sink.spawn_writer(writer, DrainPolicy::default()).map_err(RecordError::Sink)?;
        Ok(Self { recorder: Arc::new(Recorder::new(sink, start_ns)), writer: handle, dir: spec.dir.clone() })
    }

    /// The recorder to hand to the feeds and the router stage.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Drains what is queued, closes the last file and reports. Call after the producers stopped.
    pub fn finish(self) -> RecordingReport {
        let result = self.writer.stop();
        let sink = self.recorder.stats();
        let mut report = RecordingReport {
            dir: self.dir,
            dropped_full: sink.dropped_full,
            dropped_oversize: sink.dropped_oversize,
            ..RecordingReport::default()
        };
        match result {
            Ok(w) => {
                report.records = w.records;
                report.payload_bytes = w.payload_bytes;
                report.file_bytes = w.file_bytes;
                report.files = w.files;
            }
            Err(e) => {
                tracing::error!(error = %e, "recording failed");
                report.records = sink.records;
                report.payload_bytes = sink.bytes;
                report.error = Some(e.to_string());
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_says_that_timers_are_recorded_and_keeps_the_callers_metadata() {
        let meta = header_metadata(r#"{"recorder":"keel 0.1","chain_id":1}"#);
        assert!(records_engine_timers(&meta));
        let v: serde_json::Value = serde_json::from_str(&meta).unwrap();
        assert_eq!((v["recorder"].as_str(), v["chain_id"].as_u64()), (Some("keel 0.1"), Some(1)));
        let text = header_metadata("not json");
        assert!(records_engine_timers(&text));
        assert!(text.contains(r#""metadata":"not json""#), "{text}");
        // An older recording's metadata: the replay runs timers of its own.
        assert!(!records_engine_timers(r#"{"recorder":"keel 0.1"}"#));
        assert!(!records_engine_timers(r#"{"engine_timers":"yes"}"#));
        assert!(!records_engine_timers(""));
    }
}
