//! # keel-recording: Keel's input log, behind `keel record` and `keel replay`
//!
//! Every input Keel receives is recorded with its receive time: raw exchange websocket frames,
//! chain heads, pool logs, pending transactions, balance and nonce reads, relay answers. A replay
//! feeds the same bytes, in the same order, with the same times, to the same code.
//!
//! ```text
//! hot threads ──try_record──▶ RecordSink ──(writer thread)──▶ RecordWriter ──▶ <prefix>-000001.klog
//!   (copy into a preallocated      (bounded, drops              (one reused buffer,   <prefix>-000002.klog
//!    slot; never blocks)            are counted)                 size rotation)       …
//!
//! replay ◀── RecordRef (zero-copy, checksum verified) ◀── RecordReader ◀── the files, in number order
//!        ◀── ReadIssue (torn tail, corrupt record, unknown kind, missing file): reported, read past
//! ```
//!
//! * [`RecordWriter`] — appends records to size-rotated files; allocation-free after creation.
//! * [`RecordSink`] — the front end for hot threads: [`RecordSink::try_record`] copies a record
//!   into a preallocated slot or counts a drop; [`RecordSink::spawn_writer`] drains it.
//! * [`RecordReader`] — iterates a recording's files in order, verifying every checksum;
//!   [`Segment`] does the same for one file's bytes already in memory (a real [`Iterator`]).
//!
//! ## Byte layout
//!
//! All integers are little-endian. Checksums are CRC-32/ISO-HDLC (the IEEE 802.3 / zlib
//! polynomial), as computed by `crc32fast`.
//!
//! **File header**, at offset 0 of every file:
//!
//! | offset     | size | field            | value                                                      |
//! |------------|------|------------------|------------------------------------------------------------|
//! | 0          | 8    | magic            | `89 4B 4C 4F 47 0D 0A 1A` (`\x89KLOG\r\n\x1A`, [`MAGIC`])  |
//! | 8          | 2    | version `u16`    | [`FORMAT_VERSION`] = 1                                     |
//! | 10         | 4    | file_seq `u32`   | the file's number, from 1; equals the number in its name   |
//! | 14         | 8    | start_epoch_ns `u64` | wall clock at recording start, ns since the Unix epoch |
//! | 22         | 4    | C `u32`          | config length, ≤ [`MAX_HEADER_TEXT_BYTES`] (16 MiB)        |
//! | 26         | C    | config           | the run's config, TOML, UTF-8                              |
//! | 26+C       | 4    | M `u32`          | metadata length, ≤ 16 MiB                                  |
//! | 30+C       | M    | metadata         | free-form JSON, UTF-8 (not validated)                      |
//! | 30+C+M     | 4    | header_crc `u32` | CRC-32 of bytes `0 .. 30+C+M`                              |
//!
//! **Records** follow from offset `34+C+M`, back to back, unaligned, no padding:
//!
//! | offset | size | field          | value                                                          |
//! |--------|------|----------------|----------------------------------------------------------------|
//! | 0      | 4    | len `u32`      | bytes after this field = 15 + P; in 15 ..= [`MAX_RECORD_BYTES`] (16 MiB) |
//! | 4      | 1    | kind `u8`      | [`RecordKind`]: 1 ExchangeFrame … 8 Other; 0 is never written  |
//! | 5      | 2    | source `u16`   | the caller's source id (connection, node, relay …)             |
//! | 7      | 8    | recv_ns `u64`  | receive time, monotonic ns since recording start               |
//! | 15     | P    | payload        | the input's bytes, as received                                 |
//! | 15+P   | 4    | crc `u32`      | CRC-32 of bytes `4 .. 15+P` (kind through payload)             |
//!
//! A record costs [`RECORD_OVERHEAD_BYTES`] = 19 bytes more than its payload. A record's wall-clock
//! time is `start_epoch_ns + recv_ns` ([`RecordingHeader::wall_clock_ns`]). Files are named
//! `<prefix>-000001.klog`, `<prefix>-000002.klog` … (more digits past 999,999).
//!
//! ## Invariants
//!
//! * Files are numbered from 1 without gaps as written, and each carries a complete header; the
//!   headers of one recording are identical but for `file_seq` (and its checksum).
//! * A cleanly closed file ends exactly at a record boundary. A file exceeds `max_file_bytes` only
//!   when its single record does.
//! * Records appear in the order they were written ([`RecordWriter::write`] calls, or for the sink
//!   the order slots were enqueued). `recv_ns` is what the caller gave: with several producer
//!   threads it is not guaranteed non-decreasing in file order.
//! * The checksum does not cover the length field, but a wrong length moves where the checksum is
//!   read and which bytes it covers, so a corrupt length fails the check (but with probability
//!   2⁻³²) or runs out of range.
//! * Every length read from disk is range-checked before use (record lengths ≤ 16 MiB, header
//!   texts ≤ 16 MiB), and all offset arithmetic on them is bounded by those caps; files are read by
//!   their real size. Nothing the reader does can panic or allocate according to a length field.
//! * The writer never overwrites or appends to an existing file: a recording is created whole.
//! * Kinds may be added without a version bump: older readers report [`ReadIssue::UnknownKind`]
//!   and skip those records. Any change to the layout above bumps [`FORMAT_VERSION`], and readers
//!   refuse versions they do not know.
//!
//! ## Reading damaged files
//!
//! [`RecordReader::open`] refuses the recording with a [`ReadError`] if a file has the wrong magic,
//! an unsupported version (checked before anything else, so a future layout is refused as such), a
//! header checksum mismatch, an oversized or non-UTF-8 header text, a header number that is not the
//! one in its name, or a header that differs from the first file's (another recording). One
//! exception: a truncated header in the *last* file is what a crash right after rotation leaves,
//! and is reported as a torn tail at offset 0.
//!
//! Within a file, each position is checked: length in range, record complete, checksum matches.
//!
//! * Valid, known kind: yielded as `Ok(`[`RecordRef`]`)`, borrowing the file buffer (zero-copy).
//! * Valid, unknown kind: [`ReadIssue::UnknownKind`]; skipped by its (verified) length.
//! * Fewer than 4 bytes left, or only zero bytes left: [`ReadIssue::TornTail`]; the file is done.
//! * Otherwise the record is corrupt and the reader **resynchronises**.
//!
//! **Resync rule.** From the corrupt record's offset `o`, scan `o+1, o+2, …` for the first offset
//! `p` at which a complete, valid record starts: length field in `15 ..= 16 MiB`, `p + 4 + len` ≤
//! end of file, and the stored CRC equals the CRC of its kind-through-payload bytes. If found,
//! [`ReadIssue::Corrupt`] `{ offset: o, resumed_at: Some(p) }` is reported and reading resumes at
//! `p`. If not, the file is done: reported as [`ReadIssue::TornTail`] if the bad record's length ran
//! past the end of the file (a truncated record), else as `Corrupt { resumed_at: None }`. A resync
//! never crosses into the next file, which starts clean at its own header.
//!
//! **False positives.** At an offset that is not a record boundary, random bytes pass the
//! checksum with probability 2⁻³². A scan over n bytes therefore accepts a false record with
//! probability at most n · 2⁻³² — about 2·10⁻⁸ after a 100-byte record, 2·10⁻⁴ after a 1 MiB one —
//! and far less in practice, since most offsets fail the length check first (a length ≤ 16 MiB
//! needs a zero top byte, which text payloads rarely have). The bound assumes payloads are not
//! themselves encoded records: a payload that embeds a byte-exact record (say, a recording of a
//! recording) is resynced into whenever corruption precedes it. Resync only runs after
//! corruption; an undamaged file is read by its lengths alone. Cost: a few ns per scanned byte, plus
//! one CRC per plausible candidate (adversarial bytes could make that O(n × 16 MiB)).
//!
//! No record with a wrong checksum is ever yielded, whatever the bytes (a fuzz test checks this).
//!
//! ## What is guaranteed after a crash
//!
//! * **Process crash** (kill, abort): every record handed to the OS by a flush is in its file;
//!   records still in the writer's buffer (at most [`FlushPolicy`]'s thresholds) or queued in the
//!   sink are lost. The last file may end inside a record: a torn tail, reported with its file and
//!   offset; every earlier record reads back.
//! * **Power loss or OS crash**: only what was synced is guaranteed. With
//!   [`FsyncPolicy::OnRotateAndClose`] (the default) every completed file is durable; with
//!   [`FsyncPolicy::EveryFlush`] every flushed record. The unsynced tail of the current file may be
//!   missing, torn or zero-filled (reported as a torn tail), or in rare file-system failure modes
//!   hold stale blocks (reported as corruption and read past). A file created just before the crash
//!   may hold a partial header, reported as a torn tail at offset 0 when it is the last file.
//! * **Never**: a panic in the reader, an allocation sized by an unchecked length field, a
//!   checksum-failing record yielded, or an earlier complete file made unreadable by a later crash.
//!
//! ## Costs
//!
//! Measured with a criterion bench of the prototype this crate grew from (100-byte payloads, 2 vCPUs
//! shared with other work, load average 4–7, so figures spread by up to 2× between runs; ratios to
//! the baseline rows are steadier). The workspace keeps the end-to-end figure in the latency harness
//! (`keel-bench replay REC --json FILE`, `events_per_s`) rather than a criterion bench here.
//!
//! | what                                   | median, range over 5 runs      | baseline row                          |
//! |----------------------------------------|--------------------------------|---------------------------------------|
//! | [`RecordWriter::write`], page cache    | 88–212 ns (4.7–11.4 M rec/s)   | `BufWriter` of same bytes: 49–110 ns  |
//! | [`RecordSink::try_record`], accepted   | 25–36 ns                       | `ArrayQueue<u64>` push+pop: 17–32 ns  |
//! | [`RecordSink::try_record`], sink full  | 9–15 ns                        |                                       |
//! | [`Segment`] iteration, in memory       | 18–41 M rec/s                  | CRC-32 alone: 27–79 M rec/s           |
//! | [`RecordReader`], files in page cache  | 11–40 M rec/s (file loads included) |                                  |
//!
//! Writing is bound by the kernel's page-cache copy (two thirds of a profile) and the checksum
//! (a sixth); reading by the checksum and, through [`RecordReader`], the copy of each file into the
//! buffer. Replay needs 1 M events/s: reading leaves it an order of magnitude of headroom.
//!
//! ## Payloads
//!
//! Exchange frames are stored as received (the websocket text bytes). Chain inputs are engine
//! types, stored in the compact binary encoding of [`codec`] (one kind byte per variant, integers
//! little-endian, `U256` as 32 bytes); [`Recorder`] stamps and encodes them without allocating.

#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod codec;
mod format;
#[cfg(test)]
mod no_alloc_tests;
mod reader;
mod recorder;
mod sink;
mod writer;

pub use format::{
    CRC_BYTES, FILE_EXTENSION, FILE_SEQ_DIGITS, FORMAT_VERSION, FileHeader, HEADER_FIXED_BYTES, HeaderError,
    LEN_BYTES, MAGIC, MAX_HEADER_TEXT_BYTES, MAX_PAYLOAD_BYTES, MAX_RECORD_BYTES, MIN_RECORD_LEN,
    RECORD_META_BYTES, RECORD_OVERHEAD_BYTES, RecordKind, RecordingClock, RecordingHeader, UnknownKind,
    decode_header, file_name, header_len, parse_file_name,
};
pub use reader::{
    Corruption, ReadError, ReadIssue, ReaderStats, RecordReader, RecordRef, Segment, SegmentRecords,
    list_files,
};
pub use recorder::{
    Recorder, RecorderStats, SOURCE_ENGINE, SOURCE_EXCHANGE, SOURCE_NODE_FEED, SOURCE_POLLER, SOURCE_ROUTER,
};
pub use sink::{
    DEFAULT_DRAIN_BATCH, DEFAULT_IDLE_WAIT, DEFAULT_LARGE_SLOTS, DEFAULT_SMALL_SLOTS, DrainPolicy,
    MAX_SLOT_CLASSES, RecordSink, SinkConfig, SinkError, SinkRecord, SinkStats, SinkWriterHandle, SlotClass,
};
pub use writer::{
    DEFAULT_FLUSH_EVERY_BYTES, DEFAULT_FLUSH_EVERY_RECORDS, DEFAULT_MAX_FILE_BYTES, FlushPolicy, FsyncPolicy,
    MAX_FLUSH_EVERY_BYTES, MAX_PREFIX_BYTES, MIN_BUFFER_BYTES, RecordWriter, WriteError, WriterConfig,
    WriterStats,
};
