//! Crash recovery against real anvil and the real Uniswap contracts: `keel run` is killed with
//! SIGKILL 50 times at random points of its rebalances (once a new rebalance is open in the journal:
//! in 45 of them within 20 ms, while it is signed, sent or waiting for its block, so at least 40 kills
//! must find a rebalance open; in every tenth after 0.3–1.5 s, once it has usually landed and
//! settled), and restarted each time. A round in which no rebalance opens within 8 s is killed too
//! but does not count toward the 50. Then a last run with the kill switch engaged settles what is
//! left, and the journal is
//! checked against the chain:
//!
//! * every transaction the portfolio account ever sent is in the journal (nothing executed
//!   unjournaled), and the account's nonce equals their count;
//! * at most one version of each rebalance landed, and the journal says `landed` (same block)
//!   exactly for the rebalances that have transactions on chain; every other one is closed;
//! * no rebalance was executed twice: each landed rebalance was decided after the previous landed
//!   rebalance of the portfolio was known to have landed;
//! * nothing is left open in the journal.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Devnet;
use alloy::primitives::{Address, B256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::BlockNumberOrTag;
use keel_journal::Store;
use rand::{Rng, SeedableRng};

const KILLS: usize = 50;
/// Longest wait for a new decision before killing anyway.
const DECISION_WAIT: Duration = Duration::from_secs(8);
/// Rounds allowed (idle ones included) to make the KILLS kills that follow a fresh rebalance.
const MAX_ROUNDS: usize = 80;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `keel` binary: Cargo's, or `KEEL_TEST_BIN` when set (a copy that parallel builds sharing
/// the target directory cannot replace mid-test).
fn keel_bin() -> String {
    std::env::var("KEEL_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_keel").to_string())
}

/// (highest intent the router accepted, whether any rebalance is open) — `None` while the journal
/// does not exist yet. Decisions the router refused (a guard or a limit said no) sign and send
/// nothing, so they are not worth a kill.
fn journal_state(path: &Path) -> Option<(u64, bool)> {
    let store = Store::open_read_only(path).ok()?;
    let top =
        store.recent(20).ok()?.iter().filter(|r| r.state != "refused").map(|r| r.intent).max().unwrap_or(0);
    let open = !store.open_rebalances().ok()?.is_empty();
    Some((top, open))
}

fn spawn_run(cfg: &Path, out: &Path, log: &Path, duration: Option<u64>) -> Child {
    let log = OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut cmd = Command::new(keel_bin());
    cmd.args(["--log", "keel_runtime::recovery=warn,keel_router=warn,warn", "run", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out);
    if let Some(d) = duration {
        cmd.args(["--duration", &d.to_string()]);
    }
    cmd.stdout(Stdio::null()).stderr(log).spawn().expect("spawn keel run")
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn sigkill_during_rebalances_never_executes_one_twice_nor_loses_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("devnet.toml");
    let keel = keel_bin();
    let mut devnet =
        Devnet::start(&keel, &["--block-ms", "200", "--move-every", "1", "--duration", "900"], &cfg);
    let anvil = devnet.anvil_port;
    let journal = dir.path().join("journal.db");
    let kill_file = dir.path().join("KILL");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[journal]\npath = \"{}\"\nsync = \"normal\"\n\n[safety]\nkill_file = \"{}\"\n",
        journal.display(),
        kill_file.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    let log = dir.path().join("keel.log");
    let out = dir.path().join("out");

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b65656c);
    let mut last_seen = 0u64;
    let mut kills_mid_rebalance = 0;
    // Kills that followed a fresh open rebalance count toward KILLS; a round in which none opened
    // within DECISION_WAIT (a slow restart on a loaded machine, or a portfolio still inside its
    // band) is a crash at an arbitrary point: it is made and reported, but does not count.
    let mut kills = 0;
    let mut idle_rounds = 0;
    let mut round = 0;
    while kills < KILLS {
        assert!(
            round < MAX_ROUNDS,
            "only {kills} of {round} rounds saw a rebalance open within {DECISION_WAIT:?}:\n{}",
            tail(&log)
        );
        let mut run = KillOnDrop(spawn_run(&cfg, &out, &log, None));
        let t0 = Instant::now();
        // Wait for an open rebalance newer than any seen, then kill after a random delay.
        let mut fresh = false;
        loop {
            if let Ok(Some(status)) = run.0.try_wait() {
                let devnet = devnet.alive().err().unwrap_or_default();
                panic!("keel run exited by itself in round {round} ({status}):\n{}\n{devnet}", tail(&log));
            }
            if let Some((top, open)) = journal_state(&journal)
                && top > last_seen
            {
                last_seen = top;
                // One that already closed (landed between two looks) is not worth a kill.
                if open {
                    let delay =
                        if kills % 10 == 9 { rng.random_range(300..1500) } else { rng.random_range(0..20) };
                    std::thread::sleep(Duration::from_millis(delay));
                    fresh = true;
                    break;
                }
            }
            if t0.elapsed() > DECISION_WAIT {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        run.0.kill().expect("SIGKILL");
        run.0.wait().expect("reaped");
        round += 1;
        if fresh {
            kills += 1;
        } else {
            idle_rounds += 1;
        }
        if journal_state(&journal).is_some_and(|(_, open)| open) {
            kills_mid_rebalance += 1;
        }
    }

    // A last run with the kill switch engaged: recovery settles what is open, adopted bundles land or
    // expire (10 blocks of 200 ms), nothing new is decided; it ends gracefully and flushes.
    std::fs::write(&kill_file, b"stop").unwrap();
    let status = spawn_run(&cfg, &out, &log, Some(6)).wait().expect("final run");
    assert!(status.success(), "final keel run failed ({status}):\n{}", tail(&log));

    let store = Store::open_read_only(&journal).expect("journal");
    assert!(store.open_rebalances().unwrap().is_empty(), "rebalances left open:\n{}", tail(&log));
    let rebalances = store.recent(10_000).unwrap();
    // Every signed version of every rebalance, by transaction hash. Two rebalances can sign the
    // very same transaction (same nonce, calls and fees, signed deterministically when the
    // presigned nonces are not warm yet right after a restart): a hash maps to all of them.
    let mut journaled: HashMap<B256, Vec<(u64, u32)>> = HashMap::new();
    for r in &rebalances {
        for rec in store.records(r.intent).unwrap().iter().filter(|rec| rec.kind == "signed") {
            let version = rec.body["version"].as_u64().unwrap_or(0) as u32;
            for t in rec.body["txs"].as_array().into_iter().flatten() {
                let hash: B256 = t["hash"].as_str().unwrap().parse().unwrap();
                journaled.entry(hash).or_default().push((r.intent, version));
            }
        }
    }
    for (h, intent, version, _) in store.all_txs().unwrap() {
        let e = journaled.entry(h).or_default();
        if !e.contains(&(intent, version)) {
            e.push((intent, version));
        }
    }
    let state_of = |intent: u64| rebalances.iter().find(|r| r.intent == intent).map(|r| r.state.clone());

    // The chain: every transaction of the portfolio account.
    let account: Address = rebalances.first().expect("rebalances were decided").account.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (on_chain, nonce) = rt.block_on(async {
        let provider =
            ProviderBuilder::new().connect_http(format!("http://127.0.0.1:{anvil}").parse().unwrap());
        let head = provider.get_block_number().await.unwrap();
        let mut txs: Vec<(B256, u64)> = Vec::new();
        for n in 0..=head {
            let block =
                provider.get_block_by_number(BlockNumberOrTag::Number(n)).full().await.unwrap().unwrap();
            for tx in block.transactions.txns() {
                if tx.inner.signer() == account {
                    txs.push((*tx.inner.hash(), n));
                }
            }
        }
        (txs, provider.get_transaction_count(account).await.unwrap())
    });
    assert_eq!(nonce as usize, on_chain.len(), "every nonce used is a transaction found in a block");

    // Nothing executed unjournaled; at most one version per rebalance landed.
    let mut landed: BTreeMap<u64, (HashSet<u32>, u64)> = BTreeMap::new();
    for (hash, block) in &on_chain {
        let candidates = journaled
            .get(hash)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| panic!("transaction {hash} in block {block} is not journaled"));
        // Shared by several rebalances: exactly one of them is journaled landed.
        let (intent, version) = if candidates.len() == 1 {
            candidates[0]
        } else {
            let landed_ones: Vec<_> =
                candidates.iter().filter(|(i, _)| state_of(*i).as_deref() == Some("landed")).collect();
            assert_eq!(
                landed_ones.len(),
                1,
                "transaction {hash} is shared by {candidates:?}; landed: {landed_ones:?}"
            );
            *landed_ones[0]
        };
        let e = landed.entry(intent).or_insert_with(|| (HashSet::new(), 0));
        e.0.insert(version);
        e.1 = e.1.max(*block);
    }
    for (intent, (versions, _)) in &landed {
        assert_eq!(versions.len(), 1, "rebalance {intent}: versions {versions:?} all landed");
    }
    // The journal's outcome of every rebalance matches the chain.
    for r in &rebalances {
        match landed.get(&r.intent) {
            Some((_, block)) => {
                assert_eq!(r.state, "landed", "rebalance {} is on chain but journaled {r:?}", r.intent);
                assert_eq!(r.block, Some(*block), "rebalance {}", r.intent);
            }
            None => assert!(
                ["expired", "abandoned", "refused"].contains(&r.state.as_str()),
                "rebalance {} has no transaction on chain but is journaled {r:?}",
                r.intent
            ),
        }
    }
    // Rebalances that landed while Keel ran (not found landed by recovery) say how: their block,
    // the block's coinbase, and the versions sent.
    let records = store.records_since(0).unwrap();
    let included: Vec<_> = records.iter().filter(|(_, r)| r.kind == "included").collect();
    let normal = records.iter().filter(|(_, r)| r.kind == "landed").count();
    // (A kill can fall between a `landed` record's commit and its `included` record's.)
    assert!(
        !included.is_empty() && included.len() <= normal,
        "{} included of {normal} landed",
        included.len()
    );
    for (intent, r) in &included {
        let (_, block) = landed.get(intent).expect("included rebalance is on chain");
        assert_eq!(r.body["block"].as_u64(), Some(*block), "{r:?}");
        assert!(
            r.body["coinbase"].as_str().is_some_and(|c| c.starts_with("0x"))
                && r.body["versions"].as_u64() >= Some(1),
            "{r:?}"
        );
    }
    // Never twice: each landed rebalance was decided after the previous one was known landed.
    let mut by_portfolio: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for intent in landed.keys() {
        let r = rebalances.iter().find(|r| r.intent == *intent).expect("journaled");
        by_portfolio.entry(r.portfolio).or_default().push(*intent);
    }
    for intents in by_portfolio.values() {
        for pair in intents.windows(2) {
            let known_landed = store
                .records(pair[0])
                .unwrap()
                .iter()
                .filter(|rec| {
                    rec.kind == "landed" || (rec.kind == "recovered" && rec.body["resolution"] == "landed")
                })
                .map(|rec| rec.at_ms)
                .min()
                .expect("landed record");
            let next = store.rebalance(pair[1]).unwrap().expect("row");
            assert!(
                next.decided_ms >= known_landed,
                "rebalance {} was decided at {} before rebalance {} was known landed at {known_landed}",
                pair[1],
                next.decided_ms,
                pair[0]
            );
        }
    }
    let recovered: usize = rebalances
        .iter()
        .map(|r| store.records(r.intent).unwrap().iter().filter(|x| x.kind == "recovered").count())
        .sum();
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rebalances {
        *states.entry(r.state.clone()).or_default() += 1;
    }
    if let Some(r) = rebalances.iter().find(|r| r.state != "landed") {
        eprintln!("e.g. rebalance {}: {} — {:?}", r.intent, r.state, r.detail);
    }
    eprintln!(
        "states {states:?}; {KILLS} kills after a fresh rebalance and {idle_rounds} in rounds without one, {kills_mid_rebalance} with a rebalance open; {} rebalances, {} landed, {recovered} settled by recovery",
        rebalances.len(),
        landed.len()
    );
    // `keel journal` reads the same: the list as JSON, one rebalance in full.
    let listed = Command::new(keel_bin())
        .args(["journal", "--json", "--path"])
        .arg(&journal)
        .args(["list", "--limit", "1000"])
        .output()
        .expect("keel journal list");
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON list");
    assert_eq!(listed.as_array().map(Vec::len), Some(rebalances.len()));
    // one that went the whole way in one run: decided, signed, answered by the relay, landed
    let first = landed
        .keys()
        .find(|i| {
            let kinds: Vec<String> = store.records(**i).unwrap().into_iter().map(|r| r.kind).collect();
            ["decided", "signed", "submitted", "landed"].iter().all(|k| kinds.iter().any(|x| x == k))
        })
        .expect("a rebalance journaled from decision to landing");
    let shown = Command::new(keel_bin())
        .args(["journal", "--path"])
        .arg(&journal)
        .args(["show", &first.to_string()])
        .output()
        .expect("keel journal show");
    let shown = String::from_utf8_lossy(&shown.stdout);
    for kind in ["decided", "signed", "submitted"] {
        assert!(shown.contains(kind), "`keel journal show {first}` lacks {kind}:\n{shown}");
    }
    assert!(shown.contains("state:    landed"), "{shown}");
    assert!(
        kills_mid_rebalance >= 40,
        "only {kills_mid_rebalance} of {} kills hit an open rebalance",
        KILLS + idle_rounds
    );
    assert!(recovered >= 10, "recovery settled only {recovered} rebalances");
    assert!(landed.len() >= 10, "only {} rebalances landed", landed.len());
}
