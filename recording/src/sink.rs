//! [`RecordSink`]: the recording front end for hot threads. A bounded, preallocated, lock-free
//! queue that a hot thread copies a record into without blocking, and a writer thread drains into a
//! [`RecordWriter`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use thiserror::Error;

use crate::format::{MAX_PAYLOAD_BYTES, RecordKind};
use crate::writer::{RecordWriter, WriteError, WriterStats};

/// Default small slots: 8192 of 2 KiB (16 MiB), for frames, logs, heads and reads.
pub const DEFAULT_SMALL_SLOTS: SlotClass = SlotClass { slot_bytes: 2 * 1024, slots: 8192 };
/// Default large slots: 64 of 256 KiB (16 MiB), for snapshots and large pending transactions.
pub const DEFAULT_LARGE_SLOTS: SlotClass = SlotClass { slot_bytes: 256 * 1024, slots: 64 };
/// Default [`DrainPolicy::batch`].
pub const DEFAULT_DRAIN_BATCH: usize = 1024;
/// Default [`DrainPolicy::idle_wait`]: 1 ms.
pub const DEFAULT_IDLE_WAIT: Duration = Duration::from_millis(1);
/// Most slot classes a sink may have.
pub const MAX_SLOT_CLASSES: usize = 8;

/// A number of preallocated payload buffers of one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotClass {
    /// Payload capacity of each slot (1 ..= [`MAX_PAYLOAD_BYTES`]).
    pub slot_bytes: usize,
    /// Number of slots (≥ 1).
    pub slots: usize,
}

/// The sink's slot classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// Slot classes in strictly increasing `slot_bytes` (1 ..= [`MAX_SLOT_CLASSES`] of them).
    pub classes: Vec<SlotClass>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self { classes: vec![DEFAULT_SMALL_SLOTS, DEFAULT_LARGE_SLOTS] }
    }
}

/// How the writer thread drains the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainPolicy {
    /// Records written per drain call before the stop flag is looked at again.
    pub batch: usize,
    /// How long the thread parks when the queue is empty.
    pub idle_wait: Duration,
    /// Flush the writer whenever the queue runs empty, so a quiet recording reaches the OS within
    /// `idle_wait` rather than waiting for the flush policy's thresholds.
    pub flush_when_idle: bool,
}

impl Default for DrainPolicy {
    fn default() -> Self {
        Self { batch: DEFAULT_DRAIN_BATCH, idle_wait: DEFAULT_IDLE_WAIT, flush_when_idle: true }
    }
}

/// Why the sink or its writer thread failed.
#[derive(Debug, Error)]
pub enum SinkError {
    /// A config field is invalid.
    #[error("sink config `{field}`: {problem}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The writer failed; the thread stopped (records queued since are dropped once the queue is full).
    #[error("recording writer failed: {0}")]
    Write(WriteError),
    /// The writer thread could not be started.
    #[error("cannot spawn the recording writer thread: {0}")]
    Spawn(std::io::Error),
    /// The writer thread panicked.
    #[error("the recording writer thread panicked")]
    ThreadPanicked,
}

/// A snapshot of a sink's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkStats {
    /// Records drained (handed to the writer or the drain callback).
    pub records: u64,
    /// Payload bytes of those records.
    pub bytes: u64,
    /// Records dropped because no slot of a fitting size was free.
    pub dropped_full: u64,
    /// Records dropped because the payload exceeds the largest slot.
    pub dropped_oversize: u64,
    /// Records queued and not yet drained, at the time of the snapshot.
    pub queued: u64,
}

impl SinkStats {
    /// All records dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped_full + self.dropped_oversize
    }
}

/// A record as the drain callback sees it; the payload borrows the slot until the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkRecord<'a> {
    /// The record's kind.
    pub kind: RecordKind,
    /// Its source id.
    pub source: u16,
    /// Its receive time, monotonic ns since recording start.
    pub recv_ns: u64,
    /// The copied payload.
    pub payload: &'a [u8],
}

/// A filled slot on its way to the writer.
#[derive(Debug)]
struct Filled {
    class: usize,
    kind: RecordKind,
    source: u16,
    recv_ns: u64,
    len: usize,
    buf: Box<[u8]>,
}

#[derive(Debug)]
struct Class {
    slot_bytes: usize,
    free: ArrayQueue<Box<[u8]>>,
}

/// The recording front end for hot threads.
///
/// * **Memory**: every slot is allocated in [`RecordSink::new`]; nothing is allocated afterwards.
///   Slots circulate between per-class free lists and one FIFO of filled slots (crossbeam
///   [`ArrayQueue`]s, lock-free, any number of producers and consumers).
/// * **[`RecordSink::try_record`] never blocks**: it takes a free slot of the smallest class that
///   fits the payload (or, if that class is exhausted, of a larger class), copies the payload, and
///   enqueues it. If no fitting slot is free it returns `false` and counts a `dropped_full`.
/// * **Oversized payloads are dropped, not spilled**: a payload larger than the largest slot is
///   counted in `dropped_oversize` and `false` is returned. Spilling would allocate on the hot
///   thread; size the largest class for the largest input you must keep.
/// * **Order**: records are drained in the order their slots were enqueued. With several producers
///   that is not necessarily the order of their receive times.
/// * **Counters** sit on their own cache lines; producers touch only the drop counters (and only
///   when dropping), the drainer the record and byte counters.
#[derive(Debug)]
pub struct RecordSink {
    classes: Box<[Class]>,
    filled: ArrayQueue<Filled>,
    drained_records: CachePadded<AtomicU64>,
    drained_bytes: CachePadded<AtomicU64>,
    dropped_full: CachePadded<AtomicU64>,
    dropped_oversize: CachePadded<AtomicU64>,
}

fn invalid(field: &'static str, problem: String) -> SinkError {
    SinkError::InvalidConfig { field, problem }
}

impl RecordSink {
    /// Allocates every slot.
    pub fn new(config: &SinkConfig) -> Result<Self, SinkError> {
        if config.classes.is_empty() || config.classes.len() > MAX_SLOT_CLASSES {
            return Err(invalid("classes", format!("must hold 1 ..= {MAX_SLOT_CLASSES} slot classes")));
        }
        let mut total = 0usize;
        let mut previous = 0usize;
        let mut classes = Vec::with_capacity(config.classes.len());
        for class in &config.classes {
            if class.slot_bytes == 0 || class.slot_bytes > MAX_PAYLOAD_BYTES {
                return Err(invalid("classes.slot_bytes", format!("must be 1 ..= {MAX_PAYLOAD_BYTES}")));
            }
            if class.slot_bytes <= previous {
                return Err(invalid(
                    "classes.slot_bytes",
                    "must strictly increase from class to class".into(),
                ));
            }
            if class.slots == 0 {
                return Err(invalid("classes.slots", "must be at least 1".into()));
            }
            previous = class.slot_bytes;
            total = total
                .checked_add(class.slots)
                .ok_or_else(|| invalid("classes.slots", "total overflows".into()))?;
            let free = ArrayQueue::new(class.slots);
            for _ in 0..class.slots {
                // `free` has room for exactly `slots` buffers.
                let _ = free.push(vec![0u8; class.slot_bytes].into_boxed_slice());
            }
            classes.push(Class { slot_bytes: class.slot_bytes, free });
        }
        Ok(Self {
            classes: classes.into_boxed_slice(),
            // Room for every slot, so pushing a filled slot never fails.
            filled: ArrayQueue::new(total),
            drained_records: CachePadded::new(AtomicU64::new(0)),
            drained_bytes: CachePadded::new(AtomicU64::new(0)),
            dropped_full: CachePadded::new(AtomicU64::new(0)),
            dropped_oversize: CachePadded::new(AtomicU64::new(0)),
        })
    }

    /// Copies a record into a free slot and enqueues it. Never blocks, never allocates, takes no
    /// lock and makes no syscall; `false` means the record was dropped and counted.
    #[inline]
    pub fn try_record(&self, kind: RecordKind, source: u16, recv_ns: u64, payload: &[u8]) -> bool {
        let len = payload.len();
        let Some(first) = self.classes.iter().position(|c| c.slot_bytes >= len) else {
            self.dropped_oversize.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        for (class, slots) in self.classes.iter().enumerate().skip(first) {
            let Some(mut buf) = slots.free.pop() else { continue };
            if let Some(dst) = buf.get_mut(..len) {
                dst.copy_from_slice(payload);
            }
            return match self.filled.push(Filled { class, kind, source, recv_ns, len, buf }) {
                Ok(()) => true,
                // Unreachable (`filled` holds every slot); the slot goes back and the record is dropped.
                Err(filled) => {
                    let _ = slots.free.push(filled.buf);
                    self.dropped_full.fetch_add(1, Ordering::Relaxed);
                    false
                }
            };
        }
        self.dropped_full.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Hands up to `max` queued records, oldest first, to `f`, returning each slot as soon as `f`
    /// returns. Stops at the first error, which is returned (that record is lost). Returns how many
    /// records `f` accepted.
    pub fn drain_with<E>(
        &self,
        max: usize,
        mut f: impl FnMut(SinkRecord<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let (mut records, mut bytes) = (0usize, 0usize);
        let mut result = Ok(());
        while records < max {
            let Some(filled) = self.filled.pop() else { break };
            let payload = filled.buf.get(..filled.len).unwrap_or_default();
            let outcome =
                f(SinkRecord { kind: filled.kind, source: filled.source, recv_ns: filled.recv_ns, payload });
            let len = filled.len;
            if let Some(class) = self.classes.get(filled.class) {
                // The free list has room for every slot of its class.
                let _ = class.free.push(filled.buf);
            }
            if let Err(e) = outcome {
                result = Err(e);
                break;
            }
            records += 1;
            bytes += len;
        }
        self.drained_records.fetch_add(records as u64, Ordering::Relaxed);
        self.drained_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        result.map(|()| records)
    }

    /// Writes up to `max` queued records to `writer`.
    pub fn drain_into(&self, writer: &mut RecordWriter, max: usize) -> Result<usize, WriteError> {
        self.drain_with(max, |r| writer.write(r.kind, r.source, r.recv_ns, r.payload))
    }

    /// Counters now.
    pub fn stats(&self) -> SinkStats {
        SinkStats {
            records: self.drained_records.load(Ordering::Relaxed),
            bytes: self.drained_bytes.load(Ordering::Relaxed),
            dropped_full: self.dropped_full.load(Ordering::Relaxed),
            dropped_oversize: self.dropped_oversize.load(Ordering::Relaxed),
            queued: self.filled.len() as u64,
        }
    }

    /// The largest payload a slot can take.
    pub fn max_payload(&self) -> usize {
        self.classes.last().map_or(0, |c| c.slot_bytes)
    }

    /// Starts a thread that drains this sink into `writer` until [`SinkWriterHandle::stop`].
    ///
    /// The thread writes records in batches, parks for `policy.idle_wait` when the queue is empty
    /// (producers never wake it: that would be a syscall on the hot path), and on stop drains what
    /// is queued and closes the writer. If the writer fails the thread ends and returns the error;
    /// the queue then fills and further records are counted as dropped, so hot threads are never
    /// held up by the disk.
    pub fn spawn_writer(
        self: &Arc<Self>,
        mut writer: RecordWriter,
        policy: DrainPolicy,
    ) -> Result<SinkWriterHandle, SinkError> {
        let sink = Arc::clone(self);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let batch = policy.batch.max(1);
        let thread = thread::Builder::new()
            .name("keel-recorder".into())
            .spawn(move || -> Result<WriterStats, WriteError> {
                loop {
                    // Read the flag before draining, so everything enqueued before `stop` is written.
                    let stopping = stop_flag.load(Ordering::Acquire);
                    let written = sink.drain_into(&mut writer, batch)?;
                    if written == 0 {
                        if stopping {
                            return writer.close();
                        }
                        if policy.flush_when_idle {
                            writer.flush()?;
                        }
                        thread::park_timeout(policy.idle_wait);
                    }
                }
            })
            .map_err(SinkError::Spawn)?;
        Ok(SinkWriterHandle { stop, thread: Some(thread) })
    }
}

/// The writer thread started by [`RecordSink::spawn_writer`]. Dropping it stops the thread as
/// [`SinkWriterHandle::stop`] does, discarding the result.
#[derive(Debug)]
pub struct SinkWriterHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<WriterStats, WriteError>>>,
}

impl SinkWriterHandle {
    /// Whether the thread has ended (stopped, or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Drains everything enqueued before this call, closes the writer and returns its stats.
    /// Call it after the producers have stopped recording; records enqueued during the call may or
    /// may not be written.
    pub fn stop(mut self) -> Result<WriterStats, SinkError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<WriterStats, SinkError> {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else { return Err(SinkError::ThreadPanicked) };
        thread.thread().unpark();
        match thread.join() {
            Ok(result) => result.map_err(SinkError::Write),
            Err(_) => Err(SinkError::ThreadPanicked),
        }
    }
}

impl Drop for SinkWriterHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::RecordingHeader;
    use crate::reader::RecordReader;
    use crate::writer::{FsyncPolicy, WriterConfig};

    fn sink(slots: usize, slot_bytes: usize) -> RecordSink {
        RecordSink::new(&SinkConfig { classes: vec![SlotClass { slot_bytes, slots }] }).unwrap()
    }

    fn drain_all(sink: &RecordSink) -> Vec<(RecordKind, u16, u64, Vec<u8>)> {
        let mut out = Vec::new();
        sink.drain_with(usize::MAX, |r| {
            out.push((r.kind, r.source, r.recv_ns, r.payload.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_full_sink_counts_drops_and_returns_at_once() {
        let sink = sink(16, 64);
        for i in 0..16 {
            assert!(sink.try_record(RecordKind::ExchangeFrame, 1, i, b"frame"));
        }
        let started = Instant::now();
        for i in 0..10_000 {
            assert!(!sink.try_record(RecordKind::ExchangeFrame, 1, i, b"frame"), "nothing was drained");
        }
        // 10k refusals are a few hundred microseconds of work; a blocking call would hang here.
        assert!(started.elapsed() < Duration::from_secs(5));
        let stats = sink.stats();
        assert_eq!((stats.dropped_full, stats.dropped_oversize, stats.queued), (10_000, 0, 16));
        assert_eq!(drain_all(&sink).len(), 16);
        assert!(sink.try_record(RecordKind::ExchangeFrame, 1, 0, b"frame"), "draining frees slots");
        assert_eq!(sink.stats().records, 16);
    }

    #[test]
    fn an_oversized_payload_is_dropped_and_counted_apart() {
        let sink = sink(4, 8);
        assert!(sink.try_record(RecordKind::Other, 0, 0, &[1; 8]));
        assert!(!sink.try_record(RecordKind::Other, 0, 0, &[1; 9]));
        let stats = sink.stats();
        assert_eq!((stats.dropped_oversize, stats.dropped_full, stats.queued), (1, 0, 1));
        assert_eq!(stats.dropped(), 1);
    }

    #[test]
    fn records_drain_in_order_with_their_fields_and_the_right_class() {
        let sink = RecordSink::new(&SinkConfig {
            classes: vec![SlotClass { slot_bytes: 4, slots: 2 }, SlotClass { slot_bytes: 100, slots: 2 }],
        })
        .unwrap();
        assert!(sink.try_record(RecordKind::Head, 1, 10, b"ab"));
        assert!(sink.try_record(RecordKind::PoolLog, 2, 11, &[9; 50]));
        assert!(sink.try_record(RecordKind::NonceRead, 3, 12, b"cd"));
        // Small class exhausted: a small record spills up into the large class …
        assert!(sink.try_record(RecordKind::BalanceRead, 4, 13, b"ef"));
        // … which is now exhausted too.
        assert!(!sink.try_record(RecordKind::BalanceRead, 4, 14, b"gh"));
        let got = drain_all(&sink);
        assert_eq!(
            got,
            vec![
                (RecordKind::Head, 1, 10, b"ab".to_vec()),
                (RecordKind::PoolLog, 2, 11, vec![9; 50]),
                (RecordKind::NonceRead, 3, 12, b"cd".to_vec()),
                (RecordKind::BalanceRead, 4, 13, b"ef".to_vec()),
            ]
        );
        // Every slot went back to its own class.
        for i in 0..2 {
            assert!(sink.try_record(RecordKind::Head, 0, i, &[0; 100]));
        }
        assert!(!sink.try_record(RecordKind::Head, 0, 2, &[0; 100]));
        for i in 0..2 {
            assert!(sink.try_record(RecordKind::Head, 0, i, b"x"));
        }
    }

    #[test]
    fn a_failing_drain_callback_stops_the_drain_and_returns_the_slot() {
        let sink = sink(2, 8);
        assert!(sink.try_record(RecordKind::Head, 0, 0, b"a"));
        assert!(sink.try_record(RecordKind::Head, 0, 1, b"b"));
        assert_eq!(sink.drain_with(10, |_| Err("disk full")), Err("disk full"));
        assert_eq!(sink.stats().queued, 1);
        assert!(sink.try_record(RecordKind::Head, 0, 2, b"c"), "the failed record's slot is free again");
    }

    #[test]
    fn invalid_config_is_refused_with_the_field_named() {
        let bad = |classes| RecordSink::new(&SinkConfig { classes }).unwrap_err().to_string();
        assert!(bad(vec![]).contains("`classes`"));
        assert!(bad(vec![SlotClass { slot_bytes: 8, slots: 0 }]).contains("classes.slots"));
        assert!(bad(vec![SlotClass { slot_bytes: 0, slots: 1 }]).contains("classes.slot_bytes"));
        let not_increasing =
            vec![SlotClass { slot_bytes: 8, slots: 1 }, SlotClass { slot_bytes: 8, slots: 1 }];
        assert!(bad(not_increasing).contains("strictly increase"));
    }

    #[test]
    fn producers_and_the_writer_thread_record_everything_that_was_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = WriterConfig::new(dir.path(), "rec");
        cfg.max_file_bytes = 32 * 1024;
        cfg.fsync = FsyncPolicy::Never;
        let header = RecordingHeader { start_epoch_ns: 5, ..RecordingHeader::default() };
        let writer = RecordWriter::create(cfg, &header).unwrap();
        let sink = Arc::new(sink(256, 128));
        let handle = sink.spawn_writer(writer, DrainPolicy::default()).unwrap();
        let producers: Vec<_> = (0..2u16)
            .map(|source| {
                let sink = Arc::clone(&sink);
                thread::spawn(move || {
                    let mut accepted = Vec::new();
                    for i in 0..20_000u64 {
                        let payload = i.to_le_bytes();
                        if sink.try_record(RecordKind::ExchangeFrame, source, i, &payload) {
                            accepted.push(i);
                        }
                        if i % 64 == 0 {
                            thread::yield_now();
                        }
                    }
                    accepted
                })
            })
            .collect();
        let accepted: Vec<Vec<u64>> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        let stats = handle.stop().unwrap();
        let sink_stats = sink.stats();
        let total: u64 = accepted.iter().map(|a| a.len() as u64).sum();
        assert_eq!(stats.records, total);
        assert_eq!(sink_stats.records, total);
        assert_eq!(total + sink_stats.dropped_full, 40_000);

        let mut reader = RecordReader::open(dir.path(), "rec").unwrap();
        let mut got = [Vec::new(), Vec::new()];
        while let Some(item) = reader.next_record() {
            let r = item.unwrap();
            assert_eq!(r.payload, r.recv_ns.to_le_bytes());
            got[r.source as usize].push(r.recv_ns);
        }
        assert_eq!(got[0], accepted[0], "each producer's records in its order");
        assert_eq!(got[1], accepted[1]);
    }
}
