//! # keel-journal
//!
//! The journal: every decision and action of the router — the trigger with its inputs and planned
//! legs, each signed bundle version with its raw transactions, each relay's answer, the landing or
//! expiry — appended to an embedded durable store before anything relies on it.
//!
//! * **Store**: SQLite in WAL mode ([`store`]): one file, transactional, readable with the stock
//!   `sqlite3` tool, crash-safe against a killed process; `synchronous` follows [`SyncPolicy`].
//! * **Writer**: a dedicated thread ([`writer`]) batches records into transactions; the router
//!   thread only queues them, and waits for the commit of a bundle's record before sending it when
//!   [`JournalConfig::write_ahead`] is on (the default), so no bundle can land unjournaled.
//! * **Recovery** ([`recover`]): at start, rebalances left open are reconciled with the chain.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod recover;
pub mod stats;
pub mod store;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use keel_engine::record::{
    JournalRecord, RegistryRecord, Resolution, SignedBundle, TargetsRecord, TxRecord,
};
pub use store::{ChargedRebalance, Names, OpenRebalance, Pruned, RebalanceRow, RecordRow, Store};
pub use writer::{Journal, JournalHandle};

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// fsync at every commit: survives power loss (a commit costs a disk flush, ms on most disks).
    Full,
    /// WAL with `synchronous=NORMAL`: every commit survives a crash or kill of the process; the last
    /// commits before a power loss or OS crash may be lost (fsync at checkpoints only).
    #[default]
    Normal,
    /// No fsync at all (tests and benchmarks).
    Off,
}

/// The `[journal]` section.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// SQLite file (created when missing).
    pub path: PathBuf,
    /// fsync policy.
    #[serde(default)]
    pub sync: SyncPolicy,
    /// Wait for a bundle's record to be committed before sending the bundle (default true). Off,
    /// a crash right after a send can leave a landed bundle the journal does not know of.
    #[serde(default = "default_write_ahead")]
    pub write_ahead: bool,
    /// Longest wait for a commit before a bundle is held back, ms.
    #[serde(default = "default_commit_timeout_ms")]
    pub commit_timeout_ms: u64,
}

fn default_write_ahead() -> bool {
    true
}

fn default_commit_timeout_ms() -> u64 {
    2_000
}

impl JournalConfig {
    /// A journal at `path` with the defaults.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sync: SyncPolicy::default(),
            write_ahead: true,
            commit_timeout_ms: default_commit_timeout_ms(),
        }
    }

    /// The commit timeout.
    pub fn commit_timeout(&self) -> Duration {
        Duration::from_millis(self.commit_timeout_ms)
    }
}

/// SQLite's primary result code, for the cases a caller acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageCode {
    /// `SQLITE_BUSY`: another connection holds the lock past the busy timeout.
    Busy,
    /// `SQLITE_LOCKED`: a conflict within this connection.
    Locked,
    /// `SQLITE_CORRUPT` or `SQLITE_NOTADB`: the file is damaged or not a database.
    Corrupt,
    /// `SQLITE_FULL`: the disk (or quota) is full.
    Full,
    /// `SQLITE_READONLY`: the file or its directory is not writable.
    ReadOnly,
    /// `SQLITE_IOERR`: the operating system refused a read or write.
    Io,
    /// `SQLITE_CANTOPEN`.
    CannotOpen,
    /// Any other SQLite code (its primary code).
    Other(i32),
    /// Not an SQLite error (a conversion or an API misuse in rusqlite).
    NotSqlite,
}

/// A storage failure with SQLite's code kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    /// What failed, in SQLite's words.
    pub message: String,
    /// SQLite's code.
    pub code: StorageCode,
}

impl StorageError {
    /// True when retrying later may succeed (busy, locked).
    pub fn is_transient(&self) -> bool {
        matches!(self.code, StorageCode::Busy | StorageCode::Locked)
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let code = match e.sqlite_error_code() {
            Some(C::DatabaseBusy) => StorageCode::Busy,
            Some(C::DatabaseLocked) => StorageCode::Locked,
            Some(C::DatabaseCorrupt | C::NotADatabase) => StorageCode::Corrupt,
            Some(C::DiskFull) => StorageCode::Full,
            Some(C::ReadOnly) => StorageCode::ReadOnly,
            Some(C::SystemIoFailure) => StorageCode::Io,
            Some(C::CannotOpen) => StorageCode::CannotOpen,
            Some(_) => StorageCode::Other(e.sqlite_error().map_or(0, |f| f.extended_code & 0xff)),
            None => StorageCode::NotSqlite,
        };
        Self { message: e.to_string(), code }
    }
}

impl JournalError {
    /// The storage error behind this one, as the writer keeps it after a failure.
    pub fn storage(&self) -> StorageError {
        match self {
            Self::Store(e) => e.clone(),
            other => StorageError { message: other.to_string(), code: StorageCode::NotSqlite },
        }
    }
}

/// Journal failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened or initialised.
    #[error("opening the journal: {0}")]
    Open(String),
    /// A read or write failed; SQLite's code says why (busy, corrupt, full, …).
    #[error("journal store: {0}")]
    Store(StorageError),
    /// Stored data does not parse.
    #[error("journal data: {0}")]
    Corrupt(String),
    /// A commit did not happen in time.
    #[error("journal commit not confirmed within {0:?}")]
    Timeout(Duration),
    /// The writer has stopped.
    #[error("journal closed")]
    Closed,
}

#[cfg(test)]
mod tests;
