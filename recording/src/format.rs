//! The byte layout: constants, record kinds, the file header and the record frame.
//!
//! Everything here is pure (no I/O) and shared by the writer and the reader; the layout itself is
//! described in the crate doc ([`crate`]).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

// Lengths read from disk are `u32` and are widened to `usize` with `as usize`: lossless on every
// target this crate builds for.
const _: () = assert!(usize::BITS >= 32);

/// The first eight bytes of every recording file.
///
/// PNG-style: the high-bit first byte catches 7-bit transfers, `\r\n` catches newline conversion,
/// `0x1A` stops `type` on DOS-like terminals.
pub const MAGIC: [u8; 8] = [0x89, b'K', b'L', b'O', b'G', b'\r', b'\n', 0x1A];

/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

/// Extension of recording files: `<prefix>-000001.klog`.
pub const FILE_EXTENSION: &str = "klog";

/// Digits of the file number in a file name (more are used past 999,999 files).
pub const FILE_SEQ_DIGITS: usize = 6;

/// Bytes of the fixed part of the header: magic, version, file number, start epoch.
pub const HEADER_FIXED_BYTES: usize = 8 + 2 + 4 + 8;

/// Largest config or metadata text a header may hold, in bytes; a larger length field is refused.
pub const MAX_HEADER_TEXT_BYTES: u32 = 16 * 1024 * 1024;

/// Bytes of a record's length field.
pub const LEN_BYTES: usize = 4;

/// Bytes between the length field and the payload: kind (1), source (2), receive time (8).
pub const RECORD_META_BYTES: usize = 1 + 2 + 8;

/// Bytes of a record's trailing checksum.
pub const CRC_BYTES: usize = 4;

/// Bytes a record adds to its payload on disk: length, kind, source, time, checksum.
pub const RECORD_OVERHEAD_BYTES: usize = LEN_BYTES + RECORD_META_BYTES + CRC_BYTES;

/// Smallest valid value of a record's length field (an empty payload).
pub const MIN_RECORD_LEN: u32 = (RECORD_META_BYTES + CRC_BYTES) as u32;

/// Largest valid value of a record's length field (the bytes after it: kind through checksum).
///
/// A length field read from disk is untrusted; anything larger is treated as corruption.
pub const MAX_RECORD_BYTES: u32 = 16 * 1024 * 1024;

/// Largest payload a record can carry.
pub const MAX_PAYLOAD_BYTES: usize = (MAX_RECORD_BYTES - MIN_RECORD_LEN) as usize;

/// What a record holds. Stored as one byte; `0` is never written, so zero-filled space never
/// decodes as a record kind.
///
/// New kinds may be added without a format version bump: a reader that does not know a kind
/// reports the record ([`UnknownKind`]) and skips it.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// A raw exchange websocket frame, as received.
    ExchangeFrame = 1,
    /// A new chain head.
    Head = 2,
    /// A pool event log.
    PoolLog = 3,
    /// A pending transaction seen in the mempool.
    PendingTx = 4,
    /// The answer to a balance read.
    BalanceRead = 5,
    /// The answer to a nonce read.
    NonceRead = 6,
    /// A relay's answer to a submitted bundle or transaction.
    RelayAnswer = 7,
    /// Anything else; the payload says what.
    Other = 8,
}

impl RecordKind {
    /// Every kind, in byte order.
    pub const ALL: [Self; 8] = [
        Self::ExchangeFrame,
        Self::Head,
        Self::PoolLog,
        Self::PendingTx,
        Self::BalanceRead,
        Self::NonceRead,
        Self::RelayAnswer,
        Self::Other,
    ];

    /// The byte stored on disk.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// A stable snake_case name, for logs and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ExchangeFrame => "exchange_frame",
            Self::Head => "head",
            Self::PoolLog => "pool_log",
            Self::PendingTx => "pending_tx",
            Self::BalanceRead => "balance_read",
            Self::NonceRead => "nonce_read",
            Self::RelayAnswer => "relay_answer",
            Self::Other => "other",
        }
    }
}

/// A kind byte that names no [`RecordKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown record kind byte {0}")]
pub struct UnknownKind(pub u8);

impl TryFrom<u8> for RecordKind {
    type Error = UnknownKind;

    fn try_from(byte: u8) -> Result<Self, UnknownKind> {
        Ok(match byte {
            1 => Self::ExchangeFrame,
            2 => Self::Head,
            3 => Self::PoolLog,
            4 => Self::PendingTx,
            5 => Self::BalanceRead,
            6 => Self::NonceRead,
            7 => Self::RelayAnswer,
            8 => Self::Other,
            other => return Err(UnknownKind(other)),
        })
    }
}

impl From<RecordKind> for u8 {
    fn from(kind: RecordKind) -> u8 {
        kind.as_u8()
    }
}

/// What every file of one recording repeats in its header: the recording's identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordingHeader {
    /// Wall-clock time at recording start, in nanoseconds since the Unix epoch. A record's receive
    /// time is monotonic nanoseconds since that start; their sum is the record's wall-clock time.
    pub start_epoch_ns: u64,
    /// The run's config, as TOML text.
    pub config_toml: String,
    /// Free-form metadata (build, host, command line …) as JSON text; not validated here.
    pub metadata_json: String,
}

impl RecordingHeader {
    /// The wall-clock time, in Unix-epoch nanoseconds, of a record received `recv_ns` after start.
    pub fn wall_clock_ns(&self, recv_ns: u64) -> u64 {
        self.start_epoch_ns.saturating_add(recv_ns)
    }
}

/// Why a file header was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The file does not start with [`MAGIC`]: it is not a Keel recording.
    #[error("not a Keel recording: starts with {found:02x?}, expected magic {MAGIC:02x?}")]
    BadMagic {
        /// The first bytes found (up to eight).
        found: Vec<u8>,
    },
    /// The file was written by a format version this build does not read.
    #[error("recording format version {found} is not supported: this build reads version {supported} only")]
    UnsupportedVersion {
        /// The version stored in the file.
        found: u16,
        /// [`FORMAT_VERSION`].
        supported: u16,
    },
    /// The file ends inside its header.
    #[error("header is truncated: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes needed to read the header as far as its lengths are known.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// A header text's length field exceeds [`MAX_HEADER_TEXT_BYTES`].
    #[error("header field `{field}` claims {len} bytes, more than the {max} allowed")]
    FieldTooLong {
        /// `config_toml` or `metadata_json`.
        field: &'static str,
        /// The length (stored, or given to the writer).
        len: u64,
        /// [`MAX_HEADER_TEXT_BYTES`].
        max: u32,
    },
    /// The header checksum does not match its bytes.
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum stored after the header.
        stored: u32,
        /// The checksum of the header bytes as read.
        computed: u32,
    },
    /// A header text is not UTF-8 (its checksum matched, so it was written so).
    #[error("header field `{field}` is not valid UTF-8")]
    NotUtf8 {
        /// `config_toml` or `metadata_json`.
        field: &'static str,
    },
    /// The header's file number is 0; numbering starts at 1.
    #[error("header file number is 0; numbering starts at 1")]
    ZeroFileSeq,
}

impl HeaderError {
    /// Whether the file simply ends inside its header, as a crash right after a file was created
    /// leaves it.
    pub fn is_truncation(&self) -> bool {
        matches!(self, Self::Truncated { .. })
    }
}

/// A decoded file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The file's number within its recording, from 1.
    pub file_seq: u32,
    /// The recording's identity, the same in every file.
    pub recording: RecordingHeader,
    /// Bytes the header occupies; the first record starts here.
    pub len: usize,
}

/// Bytes the header of `header` occupies on disk.
pub fn header_len(header: &RecordingHeader) -> usize {
    HEADER_FIXED_BYTES + 4 + header.config_toml.len() + 4 + header.metadata_json.len() + CRC_BYTES
}

fn text_len(field: &'static str, text: &str) -> Result<u32, HeaderError> {
    match u32::try_from(text.len()) {
        Ok(len) if len <= MAX_HEADER_TEXT_BYTES => Ok(len),
        _ => Err(HeaderError::FieldTooLong { field, len: text.len() as u64, max: MAX_HEADER_TEXT_BYTES }),
    }
}

/// Replaces `out` with the encoded header of file `file_seq`.
pub(crate) fn encode_header(
    out: &mut Vec<u8>,
    file_seq: u32,
    header: &RecordingHeader,
) -> Result<(), HeaderError> {
    let config_len = text_len("config_toml", &header.config_toml)?;
    let meta_len = text_len("metadata_json", &header.metadata_json)?;
    if file_seq == 0 {
        return Err(HeaderError::ZeroFileSeq);
    }
    out.clear();
    out.reserve(header_len(header));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&file_seq.to_le_bytes());
    out.extend_from_slice(&header.start_epoch_ns.to_le_bytes());
    out.extend_from_slice(&config_len.to_le_bytes());
    out.extend_from_slice(header.config_toml.as_bytes());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(header.metadata_json.as_bytes());
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Rewrites the file number of an encoded header in place and recomputes its checksum.
///
/// Allocation-free; `encoded` must come from [`encode_header`] (else nothing changes and `false` is
/// returned).
pub(crate) fn patch_file_seq(encoded: &mut [u8], file_seq: u32) -> bool {
    let Some(crc_at) = encoded.len().checked_sub(CRC_BYTES) else { return false };
    let Some(seq) = encoded.get_mut(10..14) else { return false };
    seq.copy_from_slice(&file_seq.to_le_bytes());
    let crc = crc32fast::hash(encoded.get(..crc_at).unwrap_or_default());
    match encoded.get_mut(crc_at..) {
        Some(tail) => {
            tail.copy_from_slice(&crc.to_le_bytes());
            true
        }
        None => false,
    }
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    bytes.get(at..)?.first_chunk::<2>().map(|b| u16::from_le_bytes(*b))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..)?.first_chunk::<4>().map(|b| u32::from_le_bytes(*b))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    bytes.get(at..)?.first_chunk::<8>().map(|b| u64::from_le_bytes(*b))
}

/// Decodes the header at the start of `bytes`.
///
/// Checks, in order: magic, version (so a future file is refused as such, whatever its layout),
/// lengths against [`MAX_HEADER_TEXT_BYTES`], presence of all bytes, checksum, UTF-8, file number.
/// [`HeaderError::Truncated`] says how many bytes are needed as far as the lengths are known, so a
/// caller reading a file piecewise can read that much and call again.
pub fn decode_header(bytes: &[u8]) -> Result<FileHeader, HeaderError> {
    let available = bytes.len() as u64;
    let truncated = |needed: usize| HeaderError::Truncated { needed: needed as u64, available };
    let magic_len = MAGIC.len().min(bytes.len());
    if bytes.get(..magic_len) != MAGIC.get(..magic_len) {
        return Err(HeaderError::BadMagic { found: bytes.get(..magic_len).unwrap_or_default().to_vec() });
    }
    let version = read_u16(bytes, 8).ok_or_else(|| truncated(HEADER_FIXED_BYTES + 4))?;
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    let file_seq = read_u32(bytes, 10).ok_or_else(|| truncated(HEADER_FIXED_BYTES + 4))?;
    let start_epoch_ns = read_u64(bytes, 14).ok_or_else(|| truncated(HEADER_FIXED_BYTES + 4))?;

    let mut at = HEADER_FIXED_BYTES;
    let mut texts: [&[u8]; 2] = [&[], &[]];
    for (slot, field) in texts.iter_mut().zip(["config_toml", "metadata_json"]) {
        let len = read_u32(bytes, at).ok_or_else(|| truncated(at + 4 + 4))?;
        if len > MAX_HEADER_TEXT_BYTES {
            return Err(HeaderError::FieldTooLong { field, len: u64::from(len), max: MAX_HEADER_TEXT_BYTES });
        }
        // Both lengths are capped at 16 MiB, so these sums cannot overflow.
        let start = at + 4;
        let end = start + len as usize;
        // Ask for the next length field (or the checksum) along with this text.
        *slot = bytes.get(start..end).ok_or_else(|| truncated(end + 4))?;
        at = end;
    }
    let stored = read_u32(bytes, at).ok_or_else(|| truncated(at + CRC_BYTES))?;
    let computed = crc32fast::hash(bytes.get(..at).unwrap_or_default());
    if stored != computed {
        return Err(HeaderError::Checksum { stored, computed });
    }
    let [config, meta] = texts;
    let config_toml =
        std::str::from_utf8(config).map_err(|_| HeaderError::NotUtf8 { field: "config_toml" })?.to_owned();
    let metadata_json =
        std::str::from_utf8(meta).map_err(|_| HeaderError::NotUtf8 { field: "metadata_json" })?.to_owned();
    if file_seq == 0 {
        return Err(HeaderError::ZeroFileSeq);
    }
    Ok(FileHeader {
        file_seq,
        recording: RecordingHeader { start_epoch_ns, config_toml, metadata_json },
        len: at + CRC_BYTES,
    })
}

/// The 15 bytes before a record's payload: length, kind, source, receive time.
#[inline]
pub(crate) fn record_prefix(kind: u8, source: u16, recv_ns: u64, payload_len: usize) -> [u8; 15] {
    // The caller has checked `payload_len <= MAX_PAYLOAD_BYTES`, so this fits in a `u32`.
    let len = (RECORD_META_BYTES + CRC_BYTES + payload_len) as u32;
    let mut head = [0u8; LEN_BYTES + RECORD_META_BYTES];
    let (len_bytes, meta) = head.split_at_mut(LEN_BYTES);
    len_bytes.copy_from_slice(&len.to_le_bytes());
    let (kind_byte, rest) = meta.split_at_mut(1);
    kind_byte.copy_from_slice(&[kind]);
    let (source_bytes, time_bytes) = rest.split_at_mut(2);
    source_bytes.copy_from_slice(&source.to_le_bytes());
    time_bytes.copy_from_slice(&recv_ns.to_le_bytes());
    head
}

/// The checksum of a record: CRC-32 (IEEE, as `crc32fast`) over kind, source, time and payload.
#[inline]
pub(crate) fn record_crc(prefix: &[u8; 15], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(prefix.get(LEN_BYTES..).unwrap_or_default());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one encoded record to `out`. The caller has checked `payload.len() <= MAX_PAYLOAD_BYTES`
/// and reserved room, so this does not allocate.
#[inline]
pub(crate) fn encode_record(out: &mut Vec<u8>, kind: u8, source: u16, recv_ns: u64, payload: &[u8]) {
    let prefix = record_prefix(kind, source, recv_ns, payload.len());
    let covered_from = out.len() + LEN_BYTES;
    out.extend_from_slice(&prefix);
    out.extend_from_slice(payload);
    // One pass over the contiguous bytes: cheaper than hashing prefix and payload apart.
    let crc = crc32fast::hash(out.get(covered_from..).unwrap_or_default());
    out.extend_from_slice(&crc.to_le_bytes());
}

/// What sits at an offset of a file, as far as framing and checksum go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete record with a valid checksum, `frame_len` bytes long (length field included).
    Valid { frame_len: usize },
    /// Fewer than four bytes remain.
    Short,
    /// The length field is outside `MIN_RECORD_LEN..=MAX_RECORD_BYTES`.
    BadLength { len: u32 },
    /// The length field is plausible but runs past the end of the bytes.
    PastEnd { len: u32 },
    /// The record is complete but its checksum does not match.
    BadChecksum { stored: u32, computed: u32 },
}

/// Checks the record frame at `pos` of `bytes`; never panics, whatever the bytes.
#[inline]
pub(crate) fn check_frame(bytes: &[u8], pos: usize) -> Frame {
    let Some(rest) = bytes.get(pos..) else { return Frame::Short };
    let Some(len_bytes) = rest.first_chunk::<LEN_BYTES>() else { return Frame::Short };
    let len = u32::from_le_bytes(*len_bytes);
    if !(MIN_RECORD_LEN..=MAX_RECORD_BYTES).contains(&len) {
        return Frame::BadLength { len };
    }
    // `len` is capped at 16 MiB: no overflow.
    let frame_len = LEN_BYTES + len as usize;
    let Some(frame) = rest.get(..frame_len) else { return Frame::PastEnd { len } };
    let Some((covered, crc)) = frame.get(LEN_BYTES..).and_then(<[u8]>::split_last_chunk::<CRC_BYTES>) else {
        return Frame::PastEnd { len };
    };
    let stored = u32::from_le_bytes(*crc);
    let computed = crc32fast::hash(covered);
    if stored == computed { Frame::Valid { frame_len } } else { Frame::BadChecksum { stored, computed } }
}

/// The fields of a frame that [`check_frame`] found valid: (kind byte, source, receive time,
/// payload, stored checksum). `None` only if `frame` is not such a frame.
#[inline]
pub(crate) fn split_frame(frame: &[u8]) -> Option<(u8, u16, u64, &[u8], u32)> {
    let body = frame.get(LEN_BYTES..)?;
    let (meta, rest) = body.split_first_chunk::<RECORD_META_BYTES>()?;
    let (payload, crc) = rest.split_last_chunk::<CRC_BYTES>()?;
    let (kind, meta) = meta.split_first()?;
    let (source, time) = meta.split_first_chunk::<2>()?;
    let time = time.first_chunk::<8>()?;
    Some((*kind, u16::from_le_bytes(*source), u64::from_le_bytes(*time), payload, u32::from_le_bytes(*crc)))
}

/// The name of file `file_seq` of the recording `prefix`: `<prefix>-000001.klog`.
pub fn file_name(prefix: &str, file_seq: u32) -> String {
    let mut name = String::with_capacity(prefix.len() + 1 + 10 + 1 + FILE_EXTENSION.len());
    push_file_name(&mut name, prefix, file_seq);
    name
}

/// Writes [`file_name`] into `out` (cleared first); allocation-free if `out` has the capacity.
pub(crate) fn push_file_name(out: &mut String, prefix: &str, file_seq: u32) {
    use std::fmt::Write as _;
    out.clear();
    // Writing into a `String` cannot fail.
    let _ = write!(out, "{prefix}-{file_seq:0width$}.{FILE_EXTENSION}", width = FILE_SEQ_DIGITS);
}

/// The file number in `name` if it is a canonical file name of the recording `prefix` (exactly what
/// [`file_name`] produces, with a number from 1).
pub fn parse_file_name(prefix: &str, name: &str) -> Option<u32> {
    let digits =
        name.strip_prefix(prefix)?.strip_prefix('-')?.strip_suffix(FILE_EXTENSION)?.strip_suffix('.')?;
    if digits.len() < FILE_SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq: u32 = digits.parse().ok()?;
    // Only the canonical spelling: `rec-0000001.klog` and `rec-000001.klog` are not both file 1.
    (seq != 0 && file_name(prefix, seq) == name).then_some(seq)
}

/// A clock for recording: monotonic nanoseconds since the recording started, plus the wall-clock
/// time of that start, which goes into the [`RecordingHeader`].
///
/// [`RecordingClock::now_ns`] reads the monotonic clock (a vDSO call, no syscall on Linux).
#[derive(Debug, Clone, Copy)]
pub struct RecordingClock {
    start: Instant,
    start_epoch_ns: u64,
}

impl RecordingClock {
    /// Starts the clock now.
    pub fn start() -> Self {
        let start_epoch_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self { start: Instant::now(), start_epoch_ns }
    }

    /// Nanoseconds since [`RecordingClock::start`], monotonic.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Wall-clock time of the start, in nanoseconds since the Unix epoch.
    pub fn start_epoch_ns(&self) -> u64 {
        self.start_epoch_ns
    }

    /// A header for a recording started by this clock.
    pub fn header(
        &self,
        config_toml: impl Into<String>,
        metadata_json: impl Into<String>,
    ) -> RecordingHeader {
        RecordingHeader {
            start_epoch_ns: self.start_epoch_ns,
            config_toml: config_toml.into(),
            metadata_json: metadata_json.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordingHeader {
        RecordingHeader {
            start_epoch_ns: 1_750_000_000_123_456_789,
            config_toml: "[engine]\nqueue = 4096\n".into(),
            metadata_json: r#"{"git":"abc123"}"#.into(),
        }
    }

    #[test]
    fn every_kind_byte_round_trips_and_every_other_byte_is_unknown() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::try_from(kind.as_u8()), Ok(kind));
        }
        let known: Vec<u8> = RecordKind::ALL.iter().map(|k| k.as_u8()).collect();
        for byte in 0..=u8::MAX {
            if !known.contains(&byte) {
                assert_eq!(RecordKind::try_from(byte), Err(UnknownKind(byte)));
            }
        }
        assert_eq!(RecordKind::try_from(0), Err(UnknownKind(0)), "zero-filled space is never a kind");
    }

    #[test]
    fn header_round_trips_and_its_length_is_predicted() {
        let mut out = Vec::new();
        encode_header(&mut out, 7, &header()).unwrap();
        assert_eq!(out.len(), header_len(&header()));
        let decoded = decode_header(&out).unwrap();
        assert_eq!(decoded, FileHeader { file_seq: 7, recording: header(), len: out.len() });
    }

    #[test]
    fn patching_the_file_number_keeps_the_header_valid() {
        let mut out = Vec::new();
        encode_header(&mut out, 1, &header()).unwrap();
        assert!(patch_file_seq(&mut out, 42));
        assert_eq!(decode_header(&out).unwrap().file_seq, 42);
    }

    #[test]
    fn wrong_magic_is_refused_as_not_a_recording() {
        let mut out = Vec::new();
        encode_header(&mut out, 1, &header()).unwrap();
        out[1] = b'X';
        let err = decode_header(&out).unwrap_err();
        assert!(matches!(err, HeaderError::BadMagic { .. }), "{err}");
        assert!(err.to_string().contains("not a Keel recording"));
        assert!(matches!(decode_header(b"{\"json\": 1}"), Err(HeaderError::BadMagic { .. })));
    }

    #[test]
    fn future_version_is_refused_before_anything_else_is_read() {
        let mut out = Vec::new();
        encode_header(&mut out, 1, &header()).unwrap();
        out[8..10].copy_from_slice(&2u16.to_le_bytes());
        // A future layout: garbage after the version must not turn this into a checksum error.
        out.truncate(10);
        out.extend_from_slice(&[0xFF; 40]);
        let err = decode_header(&out).unwrap_err();
        assert_eq!(err, HeaderError::UnsupportedVersion { found: 2, supported: FORMAT_VERSION });
        assert!(err.to_string().contains("version 2 is not supported"), "{err}");
    }

    #[test]
    fn header_checksum_catches_a_flipped_byte_anywhere_past_the_version() {
        let mut clean = Vec::new();
        encode_header(&mut clean, 1, &header()).unwrap();
        for i in 10..clean.len() {
            let mut bad = clean.clone();
            bad[i] ^= 0x01;
            assert!(decode_header(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn every_truncation_of_a_header_is_reported_as_truncated() {
        let mut out = Vec::new();
        encode_header(&mut out, 1, &header()).unwrap();
        for cut in 0..out.len() {
            let err = decode_header(&out[..cut]).unwrap_err();
            let HeaderError::Truncated { needed, available } = err else { panic!("cut {cut}: {err:?}") };
            assert_eq!(available, cut as u64);
            assert!(needed > available && needed <= out.len() as u64, "cut {cut}: needs {needed}");
        }
    }

    #[test]
    fn oversized_header_text_length_is_refused_without_reading_it() {
        let mut out = Vec::new();
        encode_header(&mut out, 1, &header()).unwrap();
        out[HEADER_FIXED_BYTES..HEADER_FIXED_BYTES + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_header(&out), Err(HeaderError::FieldTooLong { field: "config_toml", .. })));
    }

    #[test]
    fn a_record_frame_round_trips_through_check_and_split() {
        let mut out = vec![0xAA, 0xBB];
        encode_record(&mut out, RecordKind::PoolLog.as_u8(), 513, 99, b"hello");
        assert_eq!(check_frame(&out, 2), Frame::Valid { frame_len: RECORD_OVERHEAD_BYTES + 5 });
        let (kind, source, recv, payload, _) = split_frame(&out[2..]).unwrap();
        assert_eq!((kind, source, recv, payload), (3, 513, 99, &b"hello"[..]));
        assert_eq!(check_frame(&out, 3), Frame::BadLength { len: u32::from_le_bytes([0, 0, 0, 3]) });
        assert_eq!(check_frame(&out, out.len() - 2), Frame::Short);
    }

    #[test]
    fn file_names_are_canonical_and_parse_back() {
        assert_eq!(file_name("rec", 1), "rec-000001.klog");
        assert_eq!(file_name("a-b", 1_234_567), "a-b-1234567.klog");
        assert_eq!(parse_file_name("rec", "rec-000001.klog"), Some(1));
        assert_eq!(parse_file_name("a-b", "a-b-1234567.klog"), Some(1_234_567));
        for name in ["rec-1.klog", "rec-0000001.klog", "rec-000000.klog", "rec-00000x.klog", "rec-000001.log"]
        {
            assert_eq!(parse_file_name("rec", name), None, "{name}");
        }
        assert_eq!(parse_file_name("re", "rec-000001.klog"), None);
    }
}
