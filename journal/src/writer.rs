//! The journal's writer thread: records arrive over a channel, are written in batches (one
//! transaction each) and acknowledged by sequence number, so the router thread never does disk I/O
//! itself and waits only when it must (before sending a bundle, under `write_ahead`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{Receiver, Sender, unbounded};
use parking_lot::{Condvar, Mutex};

use super::store::{Names, Store};
use super::{JournalConfig, JournalError};
use keel_engine::record::JournalRecord;

/// Most records written in one transaction.
pub const MAX_BATCH: usize = 512;

enum Msg {
    Record(i64, JournalRecord),
    Close,
}

#[derive(Debug, Default)]
struct Progress {
    /// Records handed to the channel.
    sent: u64,
    /// Records committed.
    committed: u64,
    /// The first write error; once set, nothing more is acknowledged.
    failed: Option<crate::StorageError>,
    /// The writer has exited.
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

/// A cheap, cloneable handle to append records and wait for them to be durable.
#[derive(Clone)]
pub struct JournalHandle {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for JournalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.shared.progress.lock();
        f.debug_struct("JournalHandle").field("sent", &p.sent).field("committed", &p.committed).finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl JournalHandle {
    /// Queues a record; returns its sequence number (1-based) for [`JournalHandle::wait`].
    pub fn append(&self, record: JournalRecord) -> u64 {
        // The send happens under the progress lock: sequence numbers follow channel order (so
        // "committed ≥ n" means the first n records are written), and the writer's final drain,
        // taken under the same lock, cannot miss a record.
        let mut p = self.shared.progress.lock();
        if p.closed {
            tracing::error!(
                kind = record.kind(),
                intent = record.intent(),
                "journal closed: record not written"
            );
            return u64::MAX;
        }
        p.sent += 1;
        let seq = p.sent;
        if self.tx.send(Msg::Record(now_ms(), record)).is_err() {
            tracing::error!("journal writer gone: record not written");
        }
        seq
    }

    /// Records queued so far (the sequence number of the last one).
    pub fn last_seq(&self) -> u64 {
        self.shared.progress.lock().sent
    }

    /// Blocks until record `seq` (and every earlier one) is committed, the writer failed, or
    /// `timeout` passed.
    pub fn wait(&self, seq: u64, timeout: Duration) -> Result<(), JournalError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut p = self.shared.progress.lock();
        loop {
            if let Some(e) = &p.failed {
                return Err(JournalError::Store(e.clone()));
            }
            if p.committed >= seq {
                return Ok(());
            }
            if p.closed {
                return Err(JournalError::Closed);
            }
            if self.shared.changed.wait_until(&mut p, deadline).timed_out() {
                return Err(JournalError::Timeout(timeout));
            }
        }
    }

    /// Blocks until everything queued so far is committed.
    pub fn flush(&self, timeout: Duration) -> Result<(), JournalError> {
        let seq = self.last_seq();
        self.wait(seq, timeout)
    }
}

/// The journal: a writer thread owning the store. Dropping it (or [`Journal::close`]) writes
/// everything queued, then stops the thread.
#[derive(Debug)]
pub struct Journal {
    handle: JournalHandle,
    thread: Option<JoinHandle<()>>,
}

impl Journal {
    /// Opens the store at `cfg.path` and starts the writer thread.
    pub fn open(cfg: &JournalConfig, names: Names) -> Result<Journal, JournalError> {
        let store = Store::open(&cfg.path, cfg.sync)?;
        Self::start(store, names)
    }

    /// Starts the writer thread on an opened store.
    pub fn start(store: Store, names: Names) -> Result<Journal, JournalError> {
        let (tx, rx) = unbounded();
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("keel-journal".into())
                .spawn(move || writer_loop(store, names, rx, shared))
                .map_err(|e| JournalError::Open(format!("writer thread: {e}")))?
        };
        Ok(Journal { handle: JournalHandle { tx, shared }, thread: Some(thread) })
    }

    /// A handle for appending.
    pub fn handle(&self) -> JournalHandle {
        self.handle.clone()
    }

    /// Writes everything queued, then stops the writer. Returns the number of records written.
    pub fn close(mut self) -> Result<u64, JournalError> {
        self.stop();
        let p = self.handle.shared.progress.lock();
        match &p.failed {
            Some(e) => Err(JournalError::Store(e.clone())),
            None => Ok(p.committed),
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.handle.tx.send(Msg::Close);
            let _ = t.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

fn writer_loop(mut store: Store, names: Names, rx: Receiver<Msg>, shared: Arc<Shared>) {
    let mut batch: Vec<(i64, JournalRecord)> = Vec::with_capacity(MAX_BATCH);
    let mut closing = false;
    while !closing {
        match rx.recv() {
            Ok(Msg::Record(at, r)) => batch.push((at, r)),
            Ok(Msg::Close) | Err(_) => closing = true,
        }
        while batch.len() < MAX_BATCH && !closing {
            match rx.try_recv() {
                Ok(Msg::Record(at, r)) => batch.push((at, r)),
                Ok(Msg::Close) => closing = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len() as u64;
        let result = store.write_batch(&batch, &names);
        batch.clear();
        let mut p = shared.progress.lock();
        match result {
            Ok(()) if p.failed.is_none() => p.committed += n,
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, records = n, "journal write failed: no further bundle will be sent");
                p.failed.get_or_insert_with(|| e.storage());
            }
        }
        drop(p);
        shared.changed.notify_all();
    }
    // Anything appended concurrently with Close is still written: appends send under this lock.
    let mut p = shared.progress.lock();
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Record(at, r) = msg {
            batch.push((at, r));
        }
    }
    if !batch.is_empty() {
        let n = batch.len() as u64;
        match store.write_batch(&batch, &names) {
            Ok(()) if p.failed.is_none() => p.committed += n,
            Ok(()) => {}
            Err(e) => {
                p.failed.get_or_insert_with(|| e.storage());
            }
        }
    }
    p.closed = true;
    drop(p);
    shared.changed.notify_all();
}

impl keel_engine::record::RecordSink for JournalHandle {
    fn append(&self, record: JournalRecord) -> keel_engine::record::RecordSeq {
        JournalHandle::append(self, record)
    }

    fn wait_committed(
        &self,
        seq: keel_engine::record::RecordSeq,
        timeout: Duration,
    ) -> Result<(), keel_engine::record::CommitError> {
        self.wait(seq, timeout).map_err(|e| match e {
            JournalError::Timeout(t) => keel_engine::record::CommitError::Timeout(t),
            other => keel_engine::record::CommitError::Failed(other.to_string()),
        })
    }
}
