//! `keel journal prune` as an operator runs it: settled rebalances older than the given age go, open
//! and recent ones stay, the listing shows what is left, and a bad age or a missing journal is a
//! clear error.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, U256};
use keel_engine::intent::{Leg, RebalanceIntent, TriggerReason};
use keel_engine::{PortfolioId, TokenId};
use keel_journal::{JournalRecord, Names, Store, SyncPolicy};

const DAY_MS: i64 = 86_400_000;

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel")).args(args).output().expect("run keel")
}

fn decided(id: u64) -> JournalRecord {
    JournalRecord::Decided(Box::new(RebalanceIntent {
        id,
        portfolio: PortfolioId(0),
        account: Address::repeat_byte(0xaa),
        reason: TriggerReason::Temporal { elapsed_s: 60.0 },
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

/// A journal with two settled and one open rebalance three days old, and one settled today.
fn journal(path: &Path) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let old = now - 3 * DAY_MS;
    let landed = |intent| JournalRecord::Landed { intent, block: 100, gas_used: 1, reverted: false };
    let names = Names { tokens: vec!["WETH".into(), "USDC".into()], portfolios: vec!["core".into()] };
    let mut store = Store::open(path, SyncPolicy::Full).unwrap();
    store
        .write_batch(
            &[
                (old, decided(1)),
                (old, landed(1)),
                (old, decided(2)),
                (old, JournalRecord::Refused { intent: 2, reason: "limit".into() }),
                (old, decided(3)), // open: never pruned
                (now, decided(4)),
                (now, landed(4)),
            ],
            &names,
        )
        .unwrap();
}

fn intents(path: &str) -> Vec<u64> {
    let out = keel(&["journal", "--json", "--path", path, "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array().unwrap().iter().map(|r| r["intent"].as_u64().unwrap()).collect()
}

#[test]
fn prune_removes_old_settled_rebalances_and_keeps_open_and_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel-journal.db");
    journal(&path);
    let p = path.to_str().unwrap();
    assert_eq!(intents(p), [4, 3, 2, 1]);

    let out = keel(&["journal", "--json", "--path", p, "prune", "--older-than-days", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pruned"]["rebalances"], 2, "{v}");
    assert_eq!(v["pruned"]["records"], 4, "{v}");
    assert_eq!(v["pruned"]["kept"], 2, "{v}");
    assert_eq!(intents(p), [4, 3]);

    // Nothing more is old enough; the table form says so in words.
    let out = keel(&["journal", "--path", p, "prune", "--older-than-days", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("removed 0 settled rebalances") && text.contains("2 kept"), "{text}");
    // A new run still numbers its intents above everything ever journaled.
    assert_eq!(Store::open_read_only(&path).unwrap().max_intent().unwrap(), 4);
}

#[test]
fn prune_refuses_an_age_under_a_day_and_a_missing_journal() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let out = keel(&["journal", "--path", missing.to_str().unwrap(), "prune", "--older-than-days", "0"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses the age");
    assert!(String::from_utf8_lossy(&out.stderr).contains("older-than-days"));
    let out = keel(&["journal", "--path", missing.to_str().unwrap(), "prune", "--older-than-days", "7"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such journal"));
    assert!(!missing.exists(), "a missing journal is not created");
}

#[test]
fn stats_counts_relays_builders_and_expiries_since_a_time() {
    use keel_engine::record::Inclusion;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel-journal.db");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let old = now - 3 * DAY_MS;
    let names = Names { tokens: vec!["WETH".into(), "USDC".into()], portfolios: vec!["core".into()] };
    let submitted = |intent, relay: &str, accepted| JournalRecord::Submitted {
        intent,
        relay: relay.into(),
        block: 100,
        accepted,
        detail: String::new(),
    };
    let included = |intent, blocks, fee_wei| {
        JournalRecord::Included(Box::new(Inclusion {
            intent,
            block: 100 + blocks,
            coinbase: Address::repeat_byte(0xc0),
            builder: "keel-sim".into(),
            blocks,
            seconds: Some(blocks as f64 * 12.0),
            versions: blocks as u32,
            fee_wei,
            relays: vec!["flashbots".into()],
        }))
    };
    let landed = |intent| JournalRecord::Landed { intent, block: 101, gas_used: 1, reverted: false };
    let mut store = Store::open(&path, SyncPolicy::Full).unwrap();
    store
        .write_batch(
            &[
                (old, decided(1)),
                (old, submitted(1, "flashbots", true)),
                (
                    old,
                    JournalRecord::Expired {
                        intent: 1,
                        block: 105,
                        reason: "deadline block 105 reached unlanded".into(),
                    },
                ),
                (now, decided(2)),
                (now, submitted(2, "flashbots", true)),
                (now, submitted(2, "titan", false)),
                (now, landed(2)),
                (now, included(2, 1, 2_000_000_000_000_000)),
                (now, decided(3)),
                (now, submitted(3, "flashbots", true)),
                (now, landed(3)),
                (now, included(3, 3, 1_000_000_000_000_000)),
            ],
            &names,
        )
        .unwrap();
    drop(store);
    let p = path.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = keel(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let all = run(&["journal", "--json", "--path", p, "stats"]);
    assert_eq!(all["outcomes"]["expired_by_reason"]["deadline"], 1, "{all}");
    assert_eq!(all["relays"][0]["relay"], "flashbots");
    assert_eq!(all["relays"][0]["landing_rate"].as_f64(), Some(2.0 / 3.0), "{all}");
    let day = run(&["journal", "--json", "--path", p, "stats", "--since", "24h"]);
    assert_eq!((day["outcomes"]["decided"].as_u64(), day["outcomes"]["landed"].as_u64()), (Some(2), Some(2)));
    assert_eq!(day["relays"][0]["landing_rate"].as_f64(), Some(1.0), "{day}");
    assert_eq!(day["relays"][1]["relay"], "titan");
    assert_eq!(day["relays"][1]["failed"], 1);
    let b = &day["builders"][0];
    assert_eq!((b["builder"].as_str(), b["landed"].as_u64()), (Some("keel-sim"), Some(2)));
    assert_eq!(
        (b["inclusion"]["blocks_p50"].as_u64(), b["inclusion"]["blocks_p90"].as_u64()),
        (Some(1), Some(3))
    );
    assert!((b["inclusion"]["fees_eth"].as_f64().unwrap() - 0.003).abs() < 1e-12, "{b}");
    // The table names each relay and builder; a bad duration is a clear error.
    let out = keel(&["journal", "--path", p, "stats"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("flashbots") && text.contains("keel-sim") && text.contains("expired (deadline): 1"),
        "{text}"
    );
    let out = keel(&["journal", "--path", p, "stats", "--since", "3w"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the unit must be s, m, h or d"));
}
