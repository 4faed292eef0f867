//! The journal's durable store: one SQLite file in WAL mode.
//!
//! Two kinds of table: `records`, append-only, one row per [`JournalRecord`] in the order it
//! happened (the journal proper); and the views it keeps current in the same transaction —
//! `rebalances` (one row per intent with its state), `bundles` (each signed version) and `txs` (every
//! signed transaction, raw bytes included) — which `keel journal` and recovery read.

use std::path::Path;
use std::str::FromStr;

use alloy_primitives::{Address, B256, Bytes};
use keel_engine::intent::TriggerReason;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::{JournalError, SyncPolicy};
use keel_engine::record::{JournalRecord, Resolution, SignedBundle, TxRecord};

/// Schema version stored in `meta`.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    intent INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_intent ON records(intent);
CREATE TABLE IF NOT EXISTS rebalances (
    intent INTEGER PRIMARY KEY,
    portfolio INTEGER NOT NULL,
    portfolio_name TEXT NOT NULL,
    account TEXT NOT NULL,
    decided_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    notional REAL NOT NULL,
    legs INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    block INTEGER,
    gas_used INTEGER,
    detail TEXT,
    chain TEXT
);
CREATE INDEX IF NOT EXISTS rebalances_by_state ON rebalances(state);
CREATE TABLE IF NOT EXISTS bundles (
    intent INTEGER NOT NULL,
    version INTEGER NOT NULL,
    account TEXT NOT NULL,
    uuid TEXT NOT NULL,
    target_block INTEGER NOT NULL,
    deadline_block INTEGER NOT NULL,
    bundle_hash TEXT NOT NULL,
    PRIMARY KEY (intent, version)
);
CREATE TABLE IF NOT EXISTS txs (
    hash TEXT PRIMARY KEY,
    intent INTEGER NOT NULL,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    raw BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_by_intent ON txs(intent);
";

/// States of a rebalance in the `rebalances` table.
pub mod state {
    /// Decided by the engine, not signed yet.
    pub const DECIDED: &str = "decided";
    /// Signed and (being) sent to relays.
    pub const SUBMITTED: &str = "submitted";
    /// Landed on chain.
    pub const LANDED: &str = "landed";
    /// Refused by the router before signing.
    pub const REFUSED: &str = "refused";
    /// Deadline passed unlanded.
    pub const EXPIRED: &str = "expired";
    /// Closed at recovery without landing (never sent, or its nonces were used elsewhere).
    pub const ABANDONED: &str = "abandoned";
}

/// Display names for ids, so the journal reads without the config.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Token symbols by token index.
    pub tokens: Vec<String>,
    /// Portfolio names by portfolio index.
    pub portfolios: Vec<String>,
}

impl Names {
    fn token(&self, i: usize) -> String {
        self.tokens.get(i).cloned().unwrap_or_else(|| format!("token#{i}"))
    }

    fn portfolio(&self, i: usize) -> String {
        self.portfolios.get(i).cloned().unwrap_or_else(|| format!("portfolio#{i}"))
    }
}

/// One rebalance as `keel journal` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RebalanceRow {
    /// Intent id.
    pub intent: u64,
    /// Portfolio index.
    pub portfolio: u32,
    /// Portfolio name.
    pub portfolio_name: String,
    /// Account.
    pub account: String,
    /// Decision time, ms since the Unix epoch.
    pub decided_ms: i64,
    /// Trigger, in words.
    pub reason: String,
    /// Notional of all legs.
    pub notional: f64,
    /// Number of legs.
    pub legs: u32,
    /// State (see [`state`]).
    pub state: String,
    /// Last change, ms since the Unix epoch.
    pub updated_ms: i64,
    /// Block of inclusion, when landed.
    pub block: Option<u64>,
    /// Gas used, when landed.
    pub gas_used: Option<u64>,
    /// Extra words on the state.
    pub detail: Option<String>,
    /// The chain (`[[chains]]` name) it was decided for; `None` for a single-chain run.
    pub chain: Option<String>,
}

/// One journal entry as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordRow {
    /// Order of writing.
    pub seq: i64,
    /// Time, ms since the Unix epoch.
    pub at_ms: i64,
    /// Kind.
    pub kind: String,
    /// JSON body.
    pub body: serde_json::Value,
}

/// A rebalance found neither landed nor closed: what recovery works from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRebalance {
    /// Intent id.
    pub intent: u64,
    /// Portfolio index in the config of the run that decided it.
    pub portfolio: u32,
    /// Portfolio name (how a later run with a reordered config finds it).
    pub portfolio_name: String,
    /// Account.
    pub account: Address,
    /// The newest signed version, if one was signed.
    pub latest: Option<SignedBundle>,
    /// Hashes of every signed version's transactions (any one version may have landed).
    pub all_hashes: Vec<B256>,
}

/// A rebalance that counts towards the daily notional caps (landed, or not settled yet).
#[derive(Debug, Clone, PartialEq)]
pub struct ChargedRebalance {
    /// Intent id.
    pub intent: u64,
    /// Portfolio name.
    pub portfolio_name: String,
    /// Notional of all legs.
    pub notional: f64,
    /// Decision time, ms since the Unix epoch.
    pub decided_ms: i64,
}

/// Rebalances removed per transaction by [`Store::prune`].
pub const PRUNE_BATCH: u64 = 500;

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Rebalances removed (with their records, bundles and transactions).
    pub rebalances: u64,
    /// Records removed.
    pub records: u64,
    /// Rebalances kept.
    pub kept: u64,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// Chain name of each portfolio, by portfolio index (empty for a single-chain run).
    chains: Vec<String>,
    /// Whether `rebalances` has the `chain` column (a read-only older journal may not).
    chain_column: bool,
}

fn has_chain_column(conn: &Connection) -> Result<bool, JournalError> {
    conn.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('rebalances') WHERE name = 'chain'", [], |r| {
        r.get(0)
    })
    .map_err(db)
}

/// The largest intent id in `records` or remembered in `meta` by a prune.
fn max_intent_of(conn: &Connection) -> Result<u64, JournalError> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT MAX(COALESCE((SELECT MAX(intent) FROM records), 0),
                        COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'max_intent'), 0))",
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

fn db(e: rusqlite::Error) -> JournalError {
    JournalError::Store(e.into())
}

impl Store {
    /// Opens (creating if needed) the journal at `path` with the given fsync policy.
    pub fn open(path: &Path, sync: SyncPolicy) -> Result<Store, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| JournalError::Open(format!("{}: {e}", dir.display())))?;
        }
        let conn =
            Connection::open(path).map_err(|e| JournalError::Open(format!("{}: {e}", path.display())))?;
        Self::init(conn, sync)
    }

    /// Opens an existing journal for reading only (`keel journal`).
    pub fn open_read_only(path: &Path) -> Result<Store, JournalError> {
        if !path.exists() {
            return Err(JournalError::Open(format!("{}: no such journal", path.display())));
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| JournalError::Open(format!("{}: {e}", path.display())))?;
        // A journal written before several chains ran in one process has no `chain` column.
        let chain_column = has_chain_column(&conn)?;
        Ok(Store { conn, chains: Vec::new(), chain_column })
    }

    fn init(conn: Connection, sync: SyncPolicy) -> Result<Store, JournalError> {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::Open(format!("WAL mode refused (got {mode})")));
        }
        let level = match sync {
            SyncPolicy::Full => "FULL",
            SyncPolicy::Normal => "NORMAL",
            SyncPolicy::Off => "OFF",
        };
        conn.execute_batch(&format!("PRAGMA synchronous={level}; PRAGMA busy_timeout=5000;")).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        // Journals written before several chains ran in one process have no `chain` column.
        if !has_chain_column(&conn)? {
            conn.execute_batch("ALTER TABLE rebalances ADD COLUMN chain TEXT;").map_err(db)?;
        }
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(db)?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) => {
                return Err(JournalError::Open(format!(
                    "journal schema {v}, this build reads {SCHEMA_VERSION}"
                )));
            }
        }
        Ok(Store { conn, chains: Vec::new(), chain_column: true })
    }

    /// Writes `batch` in one transaction (one commit, so one fsync under `full`).
    fn chain_select(&self) -> &'static str {
        if self.chain_column { "chain" } else { "NULL AS chain" }
    }

    /// Names the chain of each portfolio (by portfolio index) for the rebalances decided from now
    /// on: `rebalances.chain` and the `decided` record say which chain a rebalance was for.
    pub fn set_portfolio_chains(&mut self, chains: Vec<String>) {
        self.chains = chains;
    }

    /// Writes `batch` in one transaction.
    pub fn write_batch(&mut self, batch: &[(i64, JournalRecord)], names: &Names) -> Result<(), JournalError> {
        let tx = self.conn.transaction().map_err(db)?;
        for (at_ms, rec) in batch {
            write_one(&tx, *at_ms, rec, names, &self.chains)?;
        }
        tx.commit().map_err(db)
    }

    /// The largest intent id ever journaled (0 when empty), pruned ones included: a new run
    /// numbers its intents above it, so bundle uuids never repeat.
    pub fn max_intent(&self) -> Result<u64, JournalError> {
        max_intent_of(&self.conn)
    }

    /// Removes every settled rebalance (landed, refused, expired, abandoned) whose last change was
    /// before `before_ms`, with its records, bundles and transactions. It works in transactions of
    /// at most [`PRUNE_BATCH`] rebalances, so a running Keel's writer never waits long for the
    /// lock. Open rebalances are never removed, and the largest intent id is kept in `meta`. Freed
    /// pages are reused by later writes (`VACUUM`, with Keel stopped, shrinks the file).
    pub fn prune(&mut self, before_ms: i64) -> Result<Pruned, JournalError> {
        self.conn
            .execute_batch("CREATE TEMP TABLE IF NOT EXISTS prune_set (intent INTEGER PRIMARY KEY);")
            .map_err(db)?;
        let mut total = Pruned::default();
        loop {
            let (rebalances, records) = self.prune_batch(before_ms)?;
            total.rebalances += rebalances;
            total.records += records;
            if rebalances < PRUNE_BATCH {
                break;
            }
        }
        let kept: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM rebalances", [], |r| r.get(0)).map_err(db)?;
        total.kept = kept.max(0) as u64;
        Ok(total)
    }

    /// One transaction of [`Store::prune`]: (rebalances, records) removed.
    fn prune_batch(&mut self, before_ms: i64) -> Result<(u64, u64), JournalError> {
        // Take the write lock first: the largest id and the rows removed come from one snapshot,
        // so a writer's commit cannot slip in between them.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db)?;
        let max = max_intent_of(&tx)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('max_intent', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![max.to_string()],
        )
        .map_err(db)?;
        tx.execute("DELETE FROM prune_set", []).map_err(db)?;
        let rebalances = tx
            .execute(
                "INSERT INTO prune_set SELECT intent FROM rebalances
                 WHERE updated_ms < ?1 AND state NOT IN (?2, ?3) ORDER BY intent LIMIT ?4",
                params![before_ms, state::DECIDED, state::SUBMITTED, PRUNE_BATCH as i64],
            )
            .map_err(db)? as u64;
        let records = tx
            .execute("DELETE FROM records WHERE intent IN (SELECT intent FROM prune_set)", [])
            .map_err(db)? as u64;
        for table in ["bundles", "txs", "rebalances"] {
            tx.execute(&format!("DELETE FROM {table} WHERE intent IN (SELECT intent FROM prune_set)"), [])
                .map_err(db)?;
        }
        tx.execute("DELETE FROM prune_set", []).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok((rebalances, records))
    }

    /// The newest `limit` rebalances, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<RebalanceRow>, JournalError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT intent, portfolio, portfolio_name, account, decided_ms, reason, notional, legs, state,
                        updated_ms, block, gas_used, detail, {}
                 FROM rebalances ORDER BY intent DESC LIMIT ?1",
                self.chain_select()
            ))
            .map_err(db)?;
        let rows = st.query_map(params![limit as i64], row_to_rebalance).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// One rebalance.
    pub fn rebalance(&self, intent: u64) -> Result<Option<RebalanceRow>, JournalError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT intent, portfolio, portfolio_name, account, decided_ms, reason, notional, legs, state,
                        updated_ms, block, gas_used, detail, {}
                 FROM rebalances WHERE intent = ?1",
                    self.chain_select()
                ),
                params![intent as i64],
                row_to_rebalance,
            )
            .optional()
            .map_err(db)
    }

    /// Every record of one rebalance, in order.
    pub fn records(&self, intent: u64) -> Result<Vec<RecordRow>, JournalError> {
        let mut st = self
            .conn
            .prepare("SELECT seq, at_ms, kind, body FROM records WHERE intent = ?1 ORDER BY seq")
            .map_err(db)?;
        let rows = st
            .query_map(params![intent as i64], |r| {
                let body: String = r.get(3)?;
                Ok(RecordRow {
                    seq: r.get(0)?,
                    at_ms: r.get(1)?,
                    kind: r.get(2)?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Every record written at or after `since_ms`, in order, with its intent.
    pub fn records_since(&self, since_ms: i64) -> Result<Vec<(u64, RecordRow)>, JournalError> {
        let mut st = self
            .conn
            .prepare("SELECT seq, at_ms, kind, body, intent FROM records WHERE at_ms >= ?1 ORDER BY seq")
            .map_err(db)?;
        let rows = st
            .query_map(params![since_ms], |r| {
                let body: String = r.get(3)?;
                let intent: i64 = r.get(4)?;
                Ok((
                    u64::try_from(intent).unwrap_or(0),
                    RecordRow {
                        seq: r.get(0)?,
                        at_ms: r.get(1)?,
                        kind: r.get(2)?,
                        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                    },
                ))
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Every journaled transaction hash with its intent and version.
    pub fn all_txs(&self) -> Result<Vec<(B256, u64, u32, u64)>, JournalError> {
        let mut st = self.conn.prepare("SELECT hash, intent, version, nonce FROM txs").map_err(db)?;
        let rows = st
            .query_map([], |r| {
                let h: String = r.get(0)?;
                Ok((h, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (h, i, v, n) = row.map_err(db)?;
            let hash = B256::from_str(&h).map_err(|e| JournalError::Corrupt(format!("tx hash {h}: {e}")))?;
            out.push((hash, i as u64, v as u32, n as u64));
        }
        Ok(out)
    }

    /// Rebalances decided at or after `since_ms` that landed or are not settled yet (so may still
    /// land): what the daily notional caps count after a restart. Oldest first.
    pub fn charged_since(&self, since_ms: i64) -> Result<Vec<ChargedRebalance>, JournalError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT intent, portfolio_name, notional, decided_ms FROM rebalances
                 WHERE decided_ms >= ?1 AND state IN (?2, ?3, ?4) ORDER BY intent",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![since_ms, state::LANDED, state::SUBMITTED, state::DECIDED], |r| {
                Ok(ChargedRebalance {
                    intent: r.get::<_, i64>(0)? as u64,
                    portfolio_name: r.get(1)?,
                    notional: r.get(2)?,
                    decided_ms: r.get(3)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Rebalances neither landed nor closed, oldest first.
    pub fn open_rebalances(&self) -> Result<Vec<OpenRebalance>, JournalError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT intent, portfolio, account, portfolio_name FROM rebalances
                 WHERE state IN (?1, ?2) ORDER BY intent",
            )
            .map_err(db)?;
        let heads = st
            .query_map(params![state::DECIDED, state::SUBMITTED], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u32,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        let mut out = Vec::with_capacity(heads.len());
        for (intent, portfolio, account, portfolio_name) in heads {
            let account = Address::from_str(&account)
                .map_err(|e| JournalError::Corrupt(format!("intent {intent}: account {account}: {e}")))?;
            let latest = self.latest_bundle(intent, portfolio)?;
            let all_hashes = self.all_txs_of(intent)?;
            out.push(OpenRebalance { intent, portfolio, portfolio_name, account, latest, all_hashes });
        }
        Ok(out)
    }

    fn latest_bundle(&self, intent: u64, portfolio: u32) -> Result<Option<SignedBundle>, JournalError> {
        let head = self
            .conn
            .query_row(
                "SELECT version, account, uuid, target_block, deadline_block, bundle_hash FROM bundles
                 WHERE intent = ?1 ORDER BY version DESC LIMIT 1",
                params![intent as i64],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(db)?;
        let Some((version, account, uuid, target, deadline, bundle_hash)) = head else { return Ok(None) };
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            JournalError::Corrupt(format!("intent {intent}: {what}: {e}"))
        };
        let mut st = self
            .conn
            .prepare("SELECT hash, nonce, raw FROM txs WHERE intent = ?1 AND version = ?2 ORDER BY position")
            .map_err(db)?;
        let txs = st
            .query_map(params![intent as i64, version], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        let mut records = Vec::with_capacity(txs.len());
        for (h, nonce, raw) in txs {
            let hash = B256::from_str(&h).map_err(|e| corrupt("tx hash", &e))?;
            records.push(TxRecord { hash, nonce: nonce as u64, raw: Bytes::from(raw) });
        }
        Ok(Some(SignedBundle {
            intent,
            portfolio,
            account: Address::from_str(&account).map_err(|e| corrupt("account", &e))?,
            version: version as u32,
            uuid,
            target_block: target as u64,
            deadline_block: deadline as u64,
            bundle_hash: B256::from_str(&bundle_hash).map_err(|e| corrupt("bundle hash", &e))?,
            txs: records,
        }))
    }

    fn all_txs_of(&self, intent: u64) -> Result<Vec<B256>, JournalError> {
        let mut st = self
            .conn
            .prepare("SELECT hash FROM txs WHERE intent = ?1 ORDER BY version, position")
            .map_err(db)?;
        let hashes = st
            .query_map(params![intent as i64], |r| r.get::<_, String>(0))
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        hashes
            .iter()
            .map(|h| {
                B256::from_str(h)
                    .map_err(|e| JournalError::Corrupt(format!("intent {intent}: tx hash {h}: {e}")))
            })
            .collect()
    }
}

fn row_to_rebalance(r: &rusqlite::Row<'_>) -> rusqlite::Result<RebalanceRow> {
    Ok(RebalanceRow {
        intent: r.get::<_, i64>(0)? as u64,
        portfolio: r.get::<_, i64>(1)? as u32,
        portfolio_name: r.get(2)?,
        account: r.get(3)?,
        decided_ms: r.get(4)?,
        reason: r.get(5)?,
        notional: r.get(6)?,
        legs: r.get::<_, i64>(7)? as u32,
        state: r.get(8)?,
        updated_ms: r.get(9)?,
        block: r.get::<_, Option<i64>>(10)?.map(|b| b as u64),
        gas_used: r.get::<_, Option<i64>>(11)?.map(|g| g as u64),
        detail: r.get(12)?,
        chain: r.get(13)?,
    })
}

fn reason_words(reason: &TriggerReason, names: &Names) -> String {
    match reason {
        TriggerReason::Drift { token, weight, target, band } => {
            format!("drift: {} at {weight:.4}, target {target:.4} ± {band:.4}", names.token(token.idx()))
        }
        TriggerReason::Temporal { elapsed_s } => format!("timer: {elapsed_s:.0} s since the last rebalance"),
    }
}

fn set_state(
    tx: &rusqlite::Transaction<'_>,
    intent: u64,
    at_ms: i64,
    new_state: &str,
    block: Option<u64>,
    gas: Option<u64>,
    detail: Option<&str>,
) -> Result<(), JournalError> {
    tx.execute(
        "UPDATE rebalances SET state = ?2, updated_ms = ?3, block = COALESCE(?4, block),
                gas_used = COALESCE(?5, gas_used), detail = COALESCE(?6, detail)
         WHERE intent = ?1",
        params![intent as i64, new_state, at_ms, block.map(|b| b as i64), gas.map(|g| g as i64), detail],
    )
    .map_err(db)?;
    Ok(())
}

fn write_one(
    tx: &rusqlite::Transaction<'_>,
    at_ms: i64,
    rec: &JournalRecord,
    names: &Names,
    chains: &[String],
) -> Result<(), JournalError> {
    let intent = rec.intent();
    let body = match rec {
        JournalRecord::Decided(i) => {
            let legs: Vec<_> = i
                .legs
                .iter()
                .map(|l| {
                    json!({
                        "sell": names.token(l.sell.idx()),
                        "buy": names.token(l.buy.idx()),
                        "amount_in": l.amount_in.to_string(),
                        "notional": l.notional,
                        "reference_price": l.reference_price,
                    })
                })
                .collect();
            let reason = reason_words(&i.reason, names);
            let notional: f64 = i.legs.iter().map(|l| l.notional).sum();
            let chain = chains.get(i.portfolio.idx());
            tx.execute(
                "INSERT OR IGNORE INTO rebalances
                    (intent, portfolio, portfolio_name, account, decided_ms, reason, notional, legs, state, updated_ms, chain)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?5, ?10)",
                params![
                    intent as i64,
                    i.portfolio.0,
                    names.portfolio(i.portfolio.idx()),
                    i.account.to_string(),
                    at_ms,
                    reason,
                    notional,
                    i.legs.len() as i64,
                    state::DECIDED,
                    chain,
                ],
            )
            .map_err(db)?;
            json!({
                "portfolio": names.portfolio(i.portfolio.idx()),
                "chain": chain,
                "account": i.account.to_string(),
                "trigger": reason,
                "drift": i.drift,
                "legs": legs,
                "event_recv_ns": i.event_recv_ns,
                "decided_ns": i.decided_ns,
            })
        }
        JournalRecord::Refused { reason, .. } => {
            set_state(tx, intent, at_ms, state::REFUSED, None, None, Some(reason))?;
            json!({ "reason": reason })
        }
        JournalRecord::Signed(b) => {
            tx.execute(
                "INSERT INTO bundles (intent, version, account, uuid, target_block, deadline_block, bundle_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    intent as i64,
                    b.version,
                    b.account.to_string(),
                    b.uuid,
                    b.target_block as i64,
                    b.deadline_block as i64,
                    b.bundle_hash.to_string(),
                ],
            )
            .map_err(db)?;
            for (k, t) in b.txs.iter().enumerate() {
                tx.execute(
                    "INSERT OR IGNORE INTO txs (hash, intent, version, position, nonce, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![t.hash.to_string(), intent as i64, b.version, k as i64, t.nonce as i64, t.raw.as_ref()],
                )
                .map_err(db)?;
            }
            set_state(tx, intent, at_ms, state::SUBMITTED, None, None, None)?;
            json!({
                "version": b.version,
                "uuid": b.uuid,
                "target_block": b.target_block,
                "deadline_block": b.deadline_block,
                "bundle_hash": b.bundle_hash.to_string(),
                "txs": b.txs.iter().map(|t| json!({ "hash": t.hash.to_string(), "nonce": t.nonce })).collect::<Vec<_>>(),
            })
        }
        JournalRecord::Submitted { relay, block, accepted, detail, .. } => {
            json!({ "relay": relay, "block": block, "accepted": accepted, "detail": detail })
        }
        JournalRecord::Landed { block, gas_used, reverted, .. } => {
            let detail = reverted.then_some("a transaction reverted");
            set_state(tx, intent, at_ms, state::LANDED, Some(*block), Some(*gas_used), detail)?;
            json!({ "block": block, "gas_used": gas_used, "reverted": reverted })
        }
        JournalRecord::Included(i) => json!({
            "block": i.block,
            "coinbase": i.coinbase.to_string(),
            "builder": i.builder,
            "blocks": i.blocks,
            "seconds": i.seconds,
            "versions": i.versions,
            "fee_wei": i.fee_wei.to_string(),
            "relays": i.relays,
        }),
        JournalRecord::Expired { block, reason, .. } => {
            set_state(
                tx,
                intent,
                at_ms,
                state::EXPIRED,
                None,
                None,
                Some(&format!("{reason} (head {block})")),
            )?;
            json!({ "block": block, "reason": reason })
        }
        JournalRecord::Targets(t) => json!({
            "portfolio": names.portfolio(t.portfolio as usize),
            "predictor": t.predictor,
            "fallback": t.fallback,
            "weights": t.weights.iter().map(|(s, w)| (s.clone(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "detail": t.detail,
        }),
        JournalRecord::Registry(r) => json!({
            "portfolio": r.portfolio.map(|p| names.portfolio(p as usize)),
            "block": r.block,
            "read_block": r.read_block,
            "applied": r.applied,
            "paused": r.paused,
            "weights": r.weights.iter().map(|(s, w)| (s.clone(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "band_bps": r.band_bps,
            "detail": r.detail,
        }),
        JournalRecord::Recovered { resolution, detail, .. } => {
            let words = format!("recovery: {} ({detail})", resolution.as_str());
            match resolution {
                Resolution::Landed { block, gas_used, reverted } => {
                    let d = if *reverted { format!("{words}; a transaction reverted") } else { words };
                    set_state(tx, intent, at_ms, state::LANDED, Some(*block), Some(*gas_used), Some(&d))?;
                }
                Resolution::Adopted => {
                    set_state(tx, intent, at_ms, state::SUBMITTED, None, None, Some(&words))?
                }
                Resolution::Expired => {
                    set_state(tx, intent, at_ms, state::EXPIRED, None, None, Some(&words))?
                }
                Resolution::NeverSent | Resolution::NoncesUsedElsewhere => {
                    set_state(tx, intent, at_ms, state::ABANDONED, None, None, Some(&words))?
                }
            }
            json!({ "resolution": resolution.as_str(), "detail": detail })
        }
    };
    tx.execute(
        "INSERT INTO records (at_ms, intent, kind, body) VALUES (?1, ?2, ?3, ?4)",
        params![at_ms, intent as i64, rec.kind(), body.to_string()],
    )
    .map_err(db)?;
    Ok(())
}
