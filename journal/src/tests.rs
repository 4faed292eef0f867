//! Journal store and writer: round trips, open rebalances for recovery, failure handling.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256};
use keel_engine::intent::{Leg, RebalanceIntent, TriggerReason};
use keel_engine::{PortfolioId, TokenId};

use super::store::state;
use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn names() -> Names {
    Names { tokens: vec!["WETH".into(), "USDC".into()], portfolios: vec!["core".into(), "alt".into()] }
}

fn decided(id: u64, portfolio: u32) -> JournalRecord {
    JournalRecord::Decided(Box::new(RebalanceIntent {
        id,
        portfolio: PortfolioId(portfolio),
        account: Address::repeat_byte(0xaa),
        reason: TriggerReason::Drift { token: TokenId(0), weight: 0.63, target: 0.6, band: 0.02 },
        drift: 0.03,
        legs: vec![Leg {
            sell: TokenId(0),
            buy: TokenId(1),
            amount_in: U256::from(10u64).pow(U256::from(18u64)),
            notional: 3000.0,
            reference_price: 3000.0,
        }],
        event_recv_ns: 1,
        decided_ns: 2,
        planned_ns: 3,
        value: None,
        native_price: None,
    }))
}

fn signed(id: u64, version: u32, first_nonce: u64) -> JournalRecord {
    let tx = |k: u64| TxRecord {
        hash: B256::with_last_byte((id * 16 + u64::from(version) * 4 + k) as u8),
        nonce: first_nonce + k,
        raw: Bytes::from(vec![version as u8, k as u8]),
    };
    JournalRecord::Signed(Box::new(SignedBundle {
        intent: id,
        portfolio: 0,
        account: Address::repeat_byte(0xaa),
        version,
        uuid: format!("keel-0-{id}"),
        target_block: 100 + u64::from(version),
        deadline_block: 110,
        bundle_hash: B256::repeat_byte(version as u8 + 1),
        txs: vec![tx(0), tx(1)],
    }))
}

fn journal(dir: &tempfile::TempDir) -> (JournalConfig, Journal) {
    let cfg = JournalConfig { sync: SyncPolicy::Full, ..JournalConfig::at(dir.path().join("j.db")) };
    let j = Journal::open(&cfg, names()).expect("open");
    (cfg, j)
}

#[test]
fn a_rebalance_round_trips_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, j) = journal(&dir);
    let h = j.handle();
    h.append(decided(1, 0));
    h.append(signed(1, 0, 5));
    h.append(JournalRecord::Submitted {
        intent: 1,
        relay: "flashbots".into(),
        block: 100,
        accepted: true,
        detail: "0xabc".into(),
    });
    let seq = h.append(JournalRecord::Landed { intent: 1, block: 101, gas_used: 150_000, reverted: false });
    h.wait(seq, WAIT).expect("committed");
    assert_eq!(j.close().expect("close"), 4);

    let store = Store::open_read_only(&cfg.path).expect("reopen");
    let rows = store.recent(10).expect("recent");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.intent, r.portfolio_name.as_str(), r.state.as_str()), (1, "core", state::LANDED));
    assert_eq!((r.block, r.gas_used, r.legs), (Some(101), Some(150_000), 1));
    assert!(r.reason.contains("WETH at 0.6300"), "{}", r.reason);
    let kinds: Vec<String> = store.records(1).expect("records").into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["decided", "signed", "submitted", "landed"]);
    let legs = &store.records(1).expect("records")[0].body["legs"][0];
    assert_eq!(
        (legs["sell"].as_str(), legs["amount_in"].as_str()),
        (Some("WETH"), Some("1000000000000000000"))
    );
    assert_eq!(store.all_txs().expect("txs").len(), 2);
    assert_eq!(store.max_intent().expect("max"), 1);
    assert!(store.open_rebalances().expect("open").is_empty());
}

#[test]
fn open_rebalances_carry_the_newest_version_and_every_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, j) = journal(&dir);
    let h = j.handle();
    for r in [
        decided(1, 0),
        decided(2, 1),
        signed(2, 0, 5),
        signed(2, 1, 5),
        decided(3, 0),
        JournalRecord::Refused { intent: 3, reason: "routing".into() },
        decided(4, 0),
        signed(4, 0, 7),
        JournalRecord::Expired { intent: 4, block: 110, reason: "deadline".into() },
    ] {
        h.append(r);
    }
    drop(j);
    let store = Store::open(&cfg.path, SyncPolicy::Normal).expect("reopen");
    let open = store.open_rebalances().expect("open");
    assert_eq!(open.iter().map(|o| o.intent).collect::<Vec<_>>(), [1, 2]);
    assert!(open[0].latest.is_none() && open[0].all_hashes.is_empty());
    let latest = open[1].latest.as_ref().expect("signed");
    assert_eq!(latest.version, 1);
    let JournalRecord::Signed(v1) = signed(2, 1, 5) else { unreachable!() };
    // the portfolio comes from the decision's row
    assert_eq!(latest, &SignedBundle { portfolio: 1, ..*v1 });
    assert_eq!(open[1].all_hashes.len(), 4);
    assert_eq!(store.max_intent().expect("max"), 4);
}

#[test]
fn recovery_records_close_rebalances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, j) = journal(&dir);
    let h = j.handle();
    h.append(decided(1, 0));
    h.append(decided(2, 0));
    h.append(signed(2, 0, 5));
    h.append(decided(3, 0));
    h.append(signed(3, 0, 7));
    h.append(JournalRecord::Recovered { intent: 1, resolution: Resolution::NeverSent, detail: "x".into() });
    h.append(JournalRecord::Recovered {
        intent: 2,
        resolution: Resolution::Landed { block: 103, gas_used: 9, reverted: false },
        detail: "y".into(),
    });
    h.append(JournalRecord::Recovered { intent: 3, resolution: Resolution::Adopted, detail: "z".into() });
    h.flush(WAIT).expect("flush");
    drop(j);
    let store = Store::open_read_only(&cfg.path).expect("reopen");
    let states: Vec<(u64, String)> =
        store.recent(10).expect("recent").into_iter().map(|r| (r.intent, r.state)).collect();
    assert_eq!(states, [(3, "submitted".into()), (2, "landed".into()), (1, "abandoned".into())]);
    assert_eq!(store.open_rebalances().expect("open").iter().map(|o| o.intent).collect::<Vec<_>>(), [3]);
}

#[test]
fn charged_rebalances_are_those_landed_or_open_since_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, j) = journal(&dir);
    let h = j.handle();
    for r in [
        decided(1, 0), // open, never signed
        decided(2, 1),
        signed(2, 0, 5),
        JournalRecord::Landed { intent: 2, block: 101, gas_used: 1, reverted: false },
        decided(3, 0),
        JournalRecord::Refused { intent: 3, reason: "limit".into() },
        decided(4, 0),
        signed(4, 0, 7),
        JournalRecord::Expired { intent: 4, block: 110, reason: "deadline".into() },
        decided(5, 0),
        signed(5, 0, 9), // open, submitted
    ] {
        h.append(r);
    }
    h.flush(WAIT).expect("flush");
    drop(j);
    let store = Store::open_read_only(&cfg.path).expect("reopen");
    let charged = store.charged_since(0).expect("charged");
    assert_eq!(
        charged.iter().map(|c| (c.intent, c.portfolio_name.as_str(), c.notional)).collect::<Vec<_>>(),
        [(1, "core", 3000.0), (2, "alt", 3000.0), (5, "core", 3000.0)]
    );
    assert!(charged.iter().all(|c| c.decided_ms > 0));
    assert!(store.charged_since(i64::MAX).expect("none").is_empty());
}

#[test]
fn pruning_removes_settled_rebalances_only_and_keeps_the_intent_numbering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, j) = journal(&dir);
    let h = j.handle();
    for r in [
        decided(1, 0),
        signed(1, 0, 5),
        JournalRecord::Landed { intent: 1, block: 101, gas_used: 1, reverted: false },
        decided(2, 0),
        JournalRecord::Refused { intent: 2, reason: "limit".into() },
        decided(3, 0),
        signed(3, 0, 7), // open
        decided(4, 1),   // open, never signed
    ] {
        h.append(r);
    }
    h.flush(WAIT).expect("flush");
    drop(j);
    let mut store = Store::open(&cfg.path, SyncPolicy::Normal).expect("reopen");
    // Nothing was settled before the epoch.
    assert_eq!(store.prune(0).expect("prune"), Pruned { rebalances: 0, records: 0, kept: 4 });
    let pruned = store.prune(i64::MAX).expect("prune");
    assert_eq!(pruned, Pruned { rebalances: 2, records: 5, kept: 2 });
    let left: Vec<u64> = store.recent(10).expect("recent").iter().map(|r| r.intent).collect();
    assert_eq!(left, [4, 3]);
    assert!(store.records(1).expect("records").is_empty());
    assert_eq!(store.all_txs().expect("txs").len(), 2, "the open rebalance's transactions stay");
    assert_eq!(store.open_rebalances().expect("open").len(), 2);
    // Even with every record of the highest intents gone, numbering continues above them.
    let j = Journal::open(&cfg, names()).expect("open");
    let seq = j.handle().append(JournalRecord::Refused { intent: 4, reason: "x".into() });
    j.handle().wait(seq, WAIT).expect("committed");
    let seq = j.handle().append(JournalRecord::Expired { intent: 3, block: 9, reason: "x".into() });
    j.handle().wait(seq, WAIT).expect("committed");
    j.close().expect("close");
    let mut store = Store::open(&cfg.path, SyncPolicy::Normal).expect("reopen");
    assert_eq!(store.prune(i64::MAX).expect("prune").kept, 0);
    assert_eq!(store.max_intent().expect("max"), 4);
}

#[test]
fn pruning_while_the_writer_runs_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, j) = journal(&dir);
    let h = j.handle();
    let mut last = 0;
    for id in 1..=400u64 {
        h.append(decided(id, 0));
        last = h.append(JournalRecord::Refused { intent: id, reason: "x".into() });
        if id % 50 == 0 {
            // another process's prune, concurrently with the writer thread's commits
            let mut other = Store::open(&cfg.path, SyncPolicy::Normal).expect("second connection");
            other.prune(i64::MAX).expect("prune");
        }
    }
    h.wait(last, WAIT).expect("every record committed");
    j.close().expect("close");
    let mut store = Store::open(&cfg.path, SyncPolicy::Normal).expect("reopen");
    assert_eq!(store.max_intent().expect("max"), 400);
    store.prune(i64::MAX).expect("prune");
    assert!(store.recent(10).expect("recent").is_empty());
}

#[test]
fn pruning_works_in_batches_until_nothing_old_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, j) = journal(&dir);
    let h = j.handle();
    let n = 2 * store::PRUNE_BATCH + 7;
    for id in 1..=n {
        h.append(decided(id, 0));
        h.append(JournalRecord::Refused { intent: id, reason: "x".into() });
    }
    h.append(decided(n + 1, 0)); // open
    h.flush(WAIT).expect("flush");
    drop(j);
    let mut store = Store::open(&cfg.path, SyncPolicy::Off).expect("reopen");
    let pruned = store.prune(i64::MAX).expect("prune");
    assert_eq!(pruned, Pruned { rebalances: n, records: 2 * n, kept: 1 });
    assert_eq!(store.max_intent().expect("max"), n + 1);
}

#[test]
fn a_failed_write_is_reported_to_waiters_and_nothing_more_is_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cfg, j) = journal(&dir);
    let h = j.handle();
    h.append(decided(1, 0));
    h.append(signed(1, 0, 5));
    // the same version twice violates the bundles key: the batch fails
    let bad = h.append(signed(1, 0, 5));
    // the writer keeps SQLite's code: a constraint violation, not a busy or a full disk
    match h.wait(bad, WAIT) {
        Err(JournalError::Store(e)) => {
            assert_eq!(e.code, StorageCode::Other(19), "{e}"); // SQLITE_CONSTRAINT
            assert!(!e.is_transient());
        }
        other => panic!("{other:?}"),
    }
    let later = h.append(decided(2, 0));
    assert!(matches!(h.wait(later, WAIT), Err(JournalError::Store(_))));
    assert!(j.close().is_err());
}

#[test]
fn a_missing_journal_is_a_clear_error_for_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Store::open_read_only(&dir.path().join("none.db")).expect_err("missing");
    assert!(err.to_string().contains("no such journal"), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite");
    std::fs::write(&path, vec![0x5a_u8; 8192]).expect("write");
    match Store::open(&path, SyncPolicy::Off) {
        Err(JournalError::Store(e)) => assert_eq!(e.code, StorageCode::Corrupt, "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_multi_chain_run_writes_each_rebalances_chain_and_an_older_journal_gains_the_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("j.db");
    // A journal as written before chains: no `chain` column.
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(
            "CREATE TABLE rebalances (intent INTEGER PRIMARY KEY, portfolio INTEGER NOT NULL,
             portfolio_name TEXT NOT NULL, account TEXT NOT NULL, decided_ms INTEGER NOT NULL,
             reason TEXT NOT NULL, notional REAL NOT NULL, legs INTEGER NOT NULL, state TEXT NOT NULL,
             updated_ms INTEGER NOT NULL, block INTEGER, gas_used INTEGER, detail TEXT);",
        )
        .expect("old schema");
    }
    let before = Store::open_read_only(&path).expect("read-only open of an old journal");
    assert!(before.recent(10).expect("listing an old journal").is_empty());
    let mut store = Store::open(&path, SyncPolicy::Off).expect("open upgrades");
    store.write_batch(&[(1, decided(1, 0))], &names()).expect("single-chain write");
    store.set_portfolio_chains(vec!["l1".into(), "l2".into()]);
    store.write_batch(&[(2, decided(2, 1)), (3, decided(3, 0))], &names()).expect("write");
    let rows = store.recent(10).expect("recent");
    let chains: Vec<(u64, Option<&str>)> = rows.iter().map(|r| (r.intent, r.chain.as_deref())).collect();
    assert_eq!(chains, [(3, Some("l1")), (2, Some("l2")), (1, None)]);
    let decided_body = &store.records(2).expect("records")[0].body;
    assert_eq!(decided_body["chain"], "l2");
}
