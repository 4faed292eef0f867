//! [`RecordWriter`]: appends records to size-rotated files through one reused buffer.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::format::{
    self, HeaderError, MAX_PAYLOAD_BYTES, RECORD_OVERHEAD_BYTES, RecordKind, RecordingHeader,
};

/// Default [`WriterConfig::max_file_bytes`]: 256 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Default [`FlushPolicy::every_records`].
pub const DEFAULT_FLUSH_EVERY_RECORDS: u32 = 4096;
/// Default [`FlushPolicy::every_bytes`]: 256 KiB.
pub const DEFAULT_FLUSH_EVERY_BYTES: usize = 256 * 1024;
/// The write buffer holds at least this many bytes, whatever [`FlushPolicy::every_bytes`] says.
pub const MIN_BUFFER_BYTES: usize = 64 * 1024;
/// Largest accepted [`FlushPolicy::every_bytes`]: 256 MiB.
pub const MAX_FLUSH_EVERY_BYTES: usize = 256 * 1024 * 1024;
/// Longest accepted [`WriterConfig::prefix`], in bytes.
pub const MAX_PREFIX_BYTES: usize = 64;

/// When buffered records are handed to the operating system (`write(2)`).
///
/// A flush happens when either threshold is reached, before a rotation, on [`RecordWriter::flush`],
/// [`RecordWriter::close`] and on drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush once this many records are buffered (≥ 1).
    pub every_records: u32,
    /// Flush once this many bytes are buffered (1 ..= [`MAX_FLUSH_EVERY_BYTES`]). The buffer is
    /// sized `max(every_bytes, MIN_BUFFER_BYTES)`; a record larger than it is written straight through.
    pub every_bytes: usize,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self { every_records: DEFAULT_FLUSH_EVERY_RECORDS, every_bytes: DEFAULT_FLUSH_EVERY_BYTES }
    }
}

/// When written data is forced to stable storage (`fdatasync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never: a process crash loses only what was still buffered, a power loss may lose more.
    Never,
    /// When a file is completed (rotation) and on close or drop; the directory is synced after a
    /// new file is created.
    #[default]
    OnRotateAndClose,
    /// After every flush, plus everything `OnRotateAndClose` does. Costs a disk round trip per flush.
    EveryFlush,
}

/// Where and how a recording is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// Directory of the recording's files; must exist.
    pub dir: PathBuf,
    /// File name prefix: files are `<prefix>-000001.klog`, `<prefix>-000002.klog`, … ASCII letters,
    /// digits, `_`, `-`, `.`; not starting with `.`; at most [`MAX_PREFIX_BYTES`].
    pub prefix: String,
    /// A record that would take a file past this size starts a new file instead, unless it is the
    /// file's first record (so a file holds at least one record, and exceeds this only then).
    pub max_file_bytes: u64,
    /// When buffered records are written.
    pub flush: FlushPolicy,
    /// When written records are synced to disk.
    pub fsync: FsyncPolicy,
}

impl WriterConfig {
    /// A config with the defaults for everything but the location.
    pub fn new(dir: impl Into<PathBuf>, prefix: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            prefix: prefix.into(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            flush: FlushPolicy::default(),
            fsync: FsyncPolicy::default(),
        }
    }
}

/// Why writing failed.
#[derive(Debug, Error)]
pub enum WriteError {
    /// An operating-system call failed; `op` says which.
    #[error("cannot {op} {}: {error}", path.display())]
    Io {
        /// What was being done: `create`, `write`, `sync`, `list`.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error, with its code (in the message, so not repeated as a source).
        error: io::Error,
    },
    /// The payload exceeds [`MAX_PAYLOAD_BYTES`]; nothing was written.
    #[error("payload of {len} bytes exceeds the {max}-byte maximum; record not written")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// [`MAX_PAYLOAD_BYTES`].
        max: usize,
    },
    /// A config field is invalid.
    #[error("writer config `{field}`: {problem}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The header cannot be encoded (a text over the size limit).
    #[error("recording header: {0}")]
    Header(HeaderError),
    /// A file of this recording already exists; recordings are never overwritten or appended to.
    #[error("{} already exists; a recording never overwrites or appends to a file", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file number would pass `u32::MAX`.
    #[error("recording has reached the maximum number of files")]
    TooManyFiles,
}

impl From<HeaderError> for WriteError {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

impl WriteError {
    /// Whether the writer can go on after this error: an I/O error (the next write starts a new
    /// file; buffered records were lost and counted in [`WriterStats::records_lost`]) or a payload
    /// too large (that record only was refused).
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::PayloadTooLarge { .. })
    }

    /// The OS error code, if this is an I/O error that has one (e.g. `ENOSPC`).
    pub fn os_code(&self) -> Option<i32> {
        match self {
            Self::Io { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }
}

/// What a [`RecordWriter`] has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Records accepted by [`RecordWriter::write`].
    pub records: u64,
    /// Payload bytes of those records.
    pub payload_bytes: u64,
    /// Bytes handed to the OS, headers and framing included.
    pub file_bytes: u64,
    /// Files created.
    pub files: u32,
    /// Flushes that wrote something.
    pub flushes: u64,
    /// Accepted records discarded because the write of their buffer failed.
    pub records_lost: u64,
}

/// Appends records to `<prefix>-NNNNNN.klog` files, rotating by size.
///
/// * Single-threaded; the hot-thread front end is [`RecordSink`](crate::RecordSink).
/// * After [`RecordWriter::create`], writing allocates nothing: records are encoded into one buffer
///   sized at creation, records larger than it are written straight through from the caller's slice,
///   and rotation reuses the name buffer and the encoded header (only its file number and checksum
///   change). Paths longer than the standard library's 384-byte stack buffer are the exception: the
///   OS call that opens a new file then allocates its C string.
/// * After an I/O error the buffered records are dropped (counted in
///   [`WriterStats::records_lost`]) and the next write starts a new file, so a damaged file ends
///   with at most a torn tail.
/// * Dropping the writer flushes (and syncs, per [`FsyncPolicy`]) on a best-effort basis; call
///   [`RecordWriter::close`] to see errors.
#[derive(Debug)]
pub struct RecordWriter {
    config: WriterConfig,
    /// The encoded header of the current file.
    header: Vec<u8>,
    buf: Vec<u8>,
    /// Bytes `buf` may hold without reallocating.
    buf_limit: usize,
    buf_records: u32,
    file: File,
    /// Path of the current file; its file name is rewritten in place on rotation.
    path: PathBuf,
    name: String,
    file_seq: u32,
    /// Bytes of the current file, buffered bytes included.
    file_bytes: u64,
    /// An I/O error happened: the next write starts a new file.
    broken: bool,
    closed: bool,
    stats: WriterStats,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> WriteError + 'p {
    move |error| WriteError::Io { op, path: path.to_path_buf(), error }
}

fn invalid(field: &'static str, problem: String) -> WriteError {
    WriteError::InvalidConfig { field, problem }
}

impl RecordWriter {
    /// Validates `config`, refuses if any file of the recording `config.prefix` exists in
    /// `config.dir`, and creates file 1 with its header.
    ///
    /// This is where all of the writer's memory is allocated.
    pub fn create(config: WriterConfig, header: &RecordingHeader) -> Result<Self, WriteError> {
        let prefix = &config.prefix;
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
            return Err(invalid("prefix", format!("must be 1 to {MAX_PREFIX_BYTES} bytes long")));
        }
        if prefix.starts_with('.')
            || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(invalid(
                "prefix",
                format!(
                    "`{prefix}` may hold only ASCII letters, digits, `_`, `-`, `.`, and not start with `.`"
                ),
            ));
        }
        let flush = config.flush;
        if flush.every_records == 0 {
            return Err(invalid("flush.every_records", "must be at least 1".into()));
        }
        if flush.every_bytes == 0 || flush.every_bytes > MAX_FLUSH_EVERY_BYTES {
            return Err(invalid("flush.every_bytes", format!("must be 1 ..= {MAX_FLUSH_EVERY_BYTES}")));
        }
        let mut encoded = Vec::new();
        format::encode_header(&mut encoded, 1, header)?;
        let min_file = (encoded.len() + RECORD_OVERHEAD_BYTES) as u64;
        if config.max_file_bytes < min_file {
            return Err(invalid(
                "max_file_bytes",
                format!(
                    "{} is smaller than the header plus one empty record ({min_file} bytes)",
                    config.max_file_bytes
                ),
            ));
        }
        // Refuse to mix with an existing recording of the same prefix.
        let entries = std::fs::read_dir(&config.dir).map_err(io_err("list", &config.dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("list", &config.dir))?;
            if let Some(name) = entry.file_name().to_str()
                && format::parse_file_name(prefix, name).is_some()
            {
                return Err(WriteError::AlreadyExists { path: entry.path() });
            }
        }

        let buf_limit = flush.every_bytes.max(MIN_BUFFER_BYTES);
        let mut name = String::with_capacity(prefix.len() + 32);
        format::push_file_name(&mut name, prefix, 1);
        let mut path = PathBuf::with_capacity(config.dir.as_os_str().len() + name.len() + 32);
        path.push(&config.dir);
        path.push(&name);
        let file = Self::open_new(&path)?;
        let mut writer = Self {
            config,
            header: encoded,
            buf: Vec::with_capacity(buf_limit),
            buf_limit,
            buf_records: 0,
            file,
            path,
            name,
            file_seq: 1,
            file_bytes: 0,
            broken: false,
            closed: false,
            stats: WriterStats::default(),
        };
        writer.start_file()?;
        Ok(writer)
    }

    fn open_new(path: &Path) -> Result<File, WriteError> {
        OpenOptions::new().write(true).create_new(true).open(path).map_err(|error| {
            if error.kind() == io::ErrorKind::AlreadyExists {
                WriteError::AlreadyExists { path: path.to_path_buf() }
            } else {
                WriteError::Io { op: "create", path: path.to_path_buf(), error }
            }
        })
    }

    /// Writes the header of the freshly opened current file.
    fn start_file(&mut self) -> Result<(), WriteError> {
        self.stats.files = self.stats.files.saturating_add(1);
        self.file_bytes = self.header.len() as u64;
        if let Err(err) = self.file.write_all(&self.header) {
            self.broken = true;
            return Err(io_err("write", &self.path)(err));
        }
        self.stats.file_bytes += self.header.len() as u64;
        if self.config.fsync != FsyncPolicy::Never {
            // Make the new directory entry durable.
            File::open(&self.config.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io_err("sync", &self.config.dir))?;
        }
        Ok(())
    }

    /// Appends one record. Never allocates (see the type's doc).
    ///
    /// `recv_ns` is the receive time in monotonic nanoseconds since the recording started (see
    /// [`RecordingClock`](crate::RecordingClock)).
    #[inline]
    pub fn write(
        &mut self,
        kind: RecordKind,
        source: u16,
        recv_ns: u64,
        payload: &[u8],
    ) -> Result<(), WriteError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(WriteError::PayloadTooLarge { len: payload.len(), max: MAX_PAYLOAD_BYTES });
        }
        let record = RECORD_OVERHEAD_BYTES + payload.len();
        let has_records = self.file_bytes > self.header.len() as u64;
        if self.broken || (has_records && self.file_bytes + record as u64 > self.config.max_file_bytes) {
            self.rotate()?;
        }
        if self.buf.len() + record > self.buf_limit {
            self.flush_buffer()?;
        }
        if record > self.buf_limit {
            self.write_through(kind, source, recv_ns, payload)?;
        } else {
            format::encode_record(&mut self.buf, kind.as_u8(), source, recv_ns, payload);
            self.buf_records += 1;
        }
        self.file_bytes += record as u64;
        self.stats.records += 1;
        self.stats.payload_bytes += payload.len() as u64;
        if self.buf_records >= self.config.flush.every_records
            || self.buf.len() >= self.config.flush.every_bytes
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes a record larger than the buffer straight to the file (the buffer is empty).
    fn write_through(
        &mut self,
        kind: RecordKind,
        source: u16,
        recv_ns: u64,
        payload: &[u8],
    ) -> Result<(), WriteError> {
        let prefix = format::record_prefix(kind.as_u8(), source, recv_ns, payload.len());
        let crc = format::record_crc(&prefix, payload).to_le_bytes();
        let result = self
            .file
            .write_all(&prefix)
            .and_then(|()| self.file.write_all(payload))
            .and_then(|()| self.file.write_all(&crc))
            .map_err(io_err("write", &self.path));
        match result {
            Ok(()) => {
                self.stats.file_bytes += (RECORD_OVERHEAD_BYTES + payload.len()) as u64;
                self.stats.flushes += 1;
            }
            Err(_) => {
                self.stats.records_lost += 1;
                self.broken = true;
            }
        }
        result
    }

    /// Hands the buffer to the OS; on failure drops it, counts the loss and marks the file broken.
    fn flush_buffer(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buf).map_err(io_err("write", &self.path));
        match result {
            Ok(()) => {
                self.stats.file_bytes += self.buf.len() as u64;
                self.stats.flushes += 1;
            }
            Err(_) => {
                self.stats.records_lost += u64::from(self.buf_records);
                self.broken = true;
            }
        }
        self.buf.clear();
        self.buf_records = 0;
        result
    }

    fn sync(&mut self) -> Result<(), WriteError> {
        self.file.sync_data().map_err(io_err("sync", &self.path))
    }

    /// Finishes the current file and starts the next one.
    fn rotate(&mut self) -> Result<(), WriteError> {
        self.flush_buffer()?;
        if self.config.fsync != FsyncPolicy::Never && !self.broken {
            self.sync()?;
        }
        let next = self.file_seq.checked_add(1).ok_or(WriteError::TooManyFiles)?;
        format::push_file_name(&mut self.name, &self.config.prefix, next);
        self.path.set_file_name(&self.name);
        // The old file is complete; if the new one cannot be created, the next write tries again.
        self.broken = true;
        // The old file is closed when replaced.
        self.file = Self::open_new(&self.path)?;
        self.file_seq = next;
        self.broken = false;
        format::patch_file_seq(&mut self.header, next);
        self.start_file()
    }

    /// Writes buffered records to the OS, and syncs them if the policy is
    /// [`FsyncPolicy::EveryFlush`].
    pub fn flush(&mut self) -> Result<(), WriteError> {
        let wrote = !self.buf.is_empty();
        self.flush_buffer()?;
        if wrote && self.config.fsync == FsyncPolicy::EveryFlush {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes buffered records and syncs the current file to disk, whatever the policy.
    pub fn sync_all(&mut self) -> Result<(), WriteError> {
        self.flush_buffer()?;
        self.sync()
    }

    /// Flushes, syncs per the policy, closes the file and returns the final stats.
    pub fn close(mut self) -> Result<WriterStats, WriteError> {
        self.closed = true;
        self.flush_buffer()?;
        if self.config.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        Ok(self.stats)
    }

    /// Counters so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The file being written.
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    /// The number of the file being written, from 1.
    pub fn current_file_seq(&self) -> u32 {
        self.file_seq
    }

    /// The writer's config.
    pub fn config(&self) -> &WriterConfig {
        &self.config
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Best effort: errors cannot be returned from drop; `close` reports them.
        if self.flush_buffer().is_ok() && self.config.fsync != FsyncPolicy::Never {
            let _ = self.sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{decode_header, header_len, parse_file_name};

    fn header() -> RecordingHeader {
        RecordingHeader { start_epoch_ns: 1, config_toml: "a = 1\n".into(), metadata_json: "{}".into() }
    }

    fn files(dir: &Path) -> Vec<(u32, u64)> {
        let mut out: Vec<(u32, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter_map(|e| {
                let seq = parse_file_name("rec", e.file_name().to_str()?)?;
                Some((seq, e.metadata().unwrap().len()))
            })
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn files_rotate_by_size_and_never_exceed_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = WriterConfig::new(dir.path(), "rec");
        cfg.max_file_bytes = 1000;
        let mut w = RecordWriter::create(cfg, &header()).unwrap();
        for i in 0..100u64 {
            w.write(RecordKind::Head, 1, i, &[7; 50]).unwrap();
        }
        let stats = w.close().unwrap();
        let files = files(dir.path());
        let per_file = (1000 - header_len(&header())) / (RECORD_OVERHEAD_BYTES + 50);
        assert_eq!(files.len(), 100usize.div_ceil(per_file));
        assert_eq!(stats.files as usize, files.len());
        for (i, (seq, len)) in files.iter().enumerate() {
            assert_eq!(*seq as usize, i + 1, "numbered from 1 without gaps");
            assert!(*len <= 1000, "file {seq} is {len} bytes");
            let bytes = std::fs::read(dir.path().join(format::file_name("rec", *seq))).unwrap();
            assert_eq!(decode_header(&bytes).unwrap().file_seq, *seq, "each file has its own header");
        }
        assert_eq!(stats.file_bytes, files.iter().map(|f| f.1).sum::<u64>());
    }

    #[test]
    fn a_record_larger_than_a_file_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = WriterConfig::new(dir.path(), "rec");
        cfg.max_file_bytes = 200;
        let mut w = RecordWriter::create(cfg, &header()).unwrap();
        w.write(RecordKind::Other, 0, 0, &[1; 10]).unwrap();
        w.write(RecordKind::Other, 0, 1, &[2; 500]).unwrap();
        w.write(RecordKind::Other, 0, 2, &[3; 10]).unwrap();
        drop(w);
        let files = files(dir.path());
        assert_eq!(files.len(), 3);
        assert_eq!(files[1].1, (header_len(&header()) + RECORD_OVERHEAD_BYTES + 500) as u64);
    }

    #[test]
    fn flush_policy_hands_records_to_the_os_every_n_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = WriterConfig::new(dir.path(), "rec");
        cfg.flush = FlushPolicy { every_records: 3, every_bytes: 1 << 20 };
        cfg.fsync = FsyncPolicy::Never;
        let mut w = RecordWriter::create(cfg, &header()).unwrap();
        let on_disk = |w: &RecordWriter| std::fs::metadata(w.current_path()).unwrap().len();
        let h = header_len(&header()) as u64;
        let rec = (RECORD_OVERHEAD_BYTES + 4) as u64;
        w.write(RecordKind::Head, 0, 0, b"abcd").unwrap();
        w.write(RecordKind::Head, 0, 0, b"abcd").unwrap();
        assert_eq!(on_disk(&w), h, "two records stay buffered");
        w.write(RecordKind::Head, 0, 0, b"abcd").unwrap();
        assert_eq!(on_disk(&w), h + 3 * rec, "the third flushes");
        w.write(RecordKind::Head, 0, 0, b"abcd").unwrap();
        w.flush().unwrap();
        assert_eq!(on_disk(&w), h + 4 * rec);
    }

    #[test]
    fn flush_policy_hands_records_to_the_os_every_n_bytes_and_large_records_go_straight_through() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = WriterConfig::new(dir.path(), "rec");
        cfg.flush = FlushPolicy { every_records: u32::MAX, every_bytes: 100 };
        let mut w = RecordWriter::create(cfg, &header()).unwrap();
        let path = w.current_path().to_path_buf();
        let h = header_len(&header()) as u64;
        w.write(RecordKind::Head, 0, 0, &[0; 60]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), h);
        w.write(RecordKind::Head, 0, 0, &[0; 60]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), h + 2 * 79);
        w.write(RecordKind::Head, 0, 0, &vec![0; MIN_BUFFER_BYTES + 1]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), h + 2 * 79 + 19 + MIN_BUFFER_BYTES as u64 + 1);
    }

    #[test]
    fn records_written_straight_through_read_back_like_buffered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RecordWriter::create(WriterConfig::new(dir.path(), "rec"), &header()).unwrap();
        let large: Vec<u8> = (0..MIN_BUFFER_BYTES * 3).map(|i| (i % 251) as u8).collect();
        w.write(RecordKind::PendingTx, 1, 10, b"small").unwrap();
        w.write(RecordKind::PendingTx, 2, 11, &large).unwrap();
        w.write(RecordKind::PendingTx, 3, 12, b"small again").unwrap();
        let path = w.current_path().to_path_buf();
        w.close().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let segment = crate::Segment::parse(&bytes, &path).unwrap();
        let got: Vec<_> =
            segment.records().map(|r| r.unwrap()).map(|r| (r.source, r.payload.len())).collect();
        assert_eq!(got, [(1, 5), (2, large.len()), (3, 11)]);
    }

    #[test]
    fn dropping_the_writer_flushes_what_it_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RecordWriter::create(WriterConfig::new(dir.path(), "rec"), &header()).unwrap();
        w.write(RecordKind::NonceRead, 9, 5, b"nonce").unwrap();
        let path = w.current_path().to_path_buf();
        drop(w);
        let len = std::fs::metadata(path).unwrap().len();
        assert_eq!(len, (header_len(&header()) + RECORD_OVERHEAD_BYTES + 5) as u64);
    }

    #[test]
    fn an_existing_recording_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rec-000003.klog"), b"x").unwrap();
        let err = RecordWriter::create(WriterConfig::new(dir.path(), "rec"), &header()).unwrap_err();
        assert!(matches!(err, WriteError::AlreadyExists { .. }), "{err}");
        // Another prefix in the same directory is fine.
        RecordWriter::create(WriterConfig::new(dir.path(), "other"), &header()).unwrap();
    }

    #[test]
    fn invalid_config_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = WriterConfig::new(dir.path(), "../x");
        let err = RecordWriter::create(cfg.clone(), &header()).unwrap_err();
        assert!(matches!(err, WriteError::InvalidConfig { field: "prefix", .. }), "{err}");
        cfg.prefix = "rec".into();
        cfg.max_file_bytes = 10;
        let err = RecordWriter::create(cfg.clone(), &header()).unwrap_err();
        assert!(matches!(err, WriteError::InvalidConfig { field: "max_file_bytes", .. }), "{err}");
        cfg.max_file_bytes = DEFAULT_MAX_FILE_BYTES;
        cfg.flush.every_records = 0;
        let err = RecordWriter::create(cfg, &header()).unwrap_err();
        assert!(err.to_string().contains("flush.every_records"), "{err}");
        assert!(!err.is_recoverable());
    }

    #[test]
    fn an_oversized_payload_is_refused_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RecordWriter::create(WriterConfig::new(dir.path(), "rec"), &header()).unwrap();
        let err = w.write(RecordKind::Other, 0, 0, &vec![0; MAX_PAYLOAD_BYTES + 1]).unwrap_err();
        assert!(matches!(err, WriteError::PayloadTooLarge { .. }) && err.is_recoverable());
        w.write(RecordKind::Other, 0, 0, &vec![0; MAX_PAYLOAD_BYTES]).unwrap();
        assert_eq!(w.close().unwrap().records, 1);
    }
}
