//! End to end: `keel record` records a demo run; `keel replay` of that recording reproduces the
//! run's decisions, twice byte for byte; `--latency-us` makes bundles miss their block; a damaged
//! recording is replayed past the damage, which is reported with its offsets; a recording of
//! `keel run` against `keel devnet` (anvil, real Uniswap V2/V3) replays to the same decisions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn keel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keel"))
}

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml");

/// The live run's journal, next to the recording.
const LIVE_JOURNAL: &str = "live.sqlite";

/// One demo recording shared by the tests of this module (recording takes seconds of wall time);
/// the recorded run keeps a journal, so its decisions can be compared with a replay's.
fn recording() -> &'static Path {
    static REC: OnceLock<PathBuf> = OnceLock::new();
    REC.get_or_init(|| record_demo(false))
}

/// The same recording made with `[engine] mode = "inline"`: the engine thread read the exchange
/// socket itself and took the other feeds' events between frames.
fn inline_recording() -> &'static Path {
    static REC: OnceLock<PathBuf> = OnceLock::new();
    REC.get_or_init(|| record_demo(true))
}

/// Records 10 s of the demo (see [`recording`]), pipelined or inline.
fn record_demo(inline: bool) -> PathBuf {
    {
        let name = if inline { "replay-e2e-inline" } else { "replay-e2e" };
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("demo-journal.toml");
        // Without the demo's client flows: they move balances outside any transaction, and the replay
        // chain owns the balances once it has read them (docs/recording.md), so a replay would not see
        // them. And with "balanced" funded on target: funded off target, it fires at start on whichever
        // quote is in when its first balances arrive, a race between two feeds' threads that the
        // recording's order does not pin down to the nanosecond (it decided on a neighbouring quote
        // in about one run in ten under load); later decisions follow quotes in recorded order.
        let text = without_flows(&std::fs::read_to_string(DEMO).unwrap());
        let funded = r#"balances = { WETH = "8.3333", WBTC = "0.16666", USDC = "15000" }"#;
        assert!(text.contains(funded), "configs/demo.toml changed shape");
        let text = text.replace(funded, r#"balances = { WETH = "6.6667", WBTC = "0.25", USDC = "15000" }"#);
        let text = if inline {
            assert!(text.contains("\n[engine]\n"), "configs/demo.toml changed shape");
            text.replace("\n[engine]\n", "\n[engine]\nmode = \"inline\"\n")
        } else {
            text
        };
        let journal = dir.join(LIVE_JOURNAL);
        std::fs::write(&config, format!("{text}\n[journal]\npath = {:?}\n", journal.display().to_string()))
            .unwrap();
        let out = keel()
            .args(["record", "--duration", "10", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&dir)
            .output()
            .expect("run keel record");
        assert!(
            out.status.success(),
            "keel record failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("recording: ") && stdout.contains("dropped 0 (queue full)"), "{stdout}");
        dir
    }
}

/// The config text without its `[[sim.flows]]` tables.
fn without_flows(text: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = line.trim() == "[[sim.flows]]";
        }
        if !skipping {
            out.push(line);
        }
    }
    let text = out.join("\n") + "\n";
    assert!(
        !text.lines().any(|l| l.trim() == "[[sim.flows]]") && text.contains("\n[sim]\n"),
        "configs/demo.toml changed shape"
    );
    text
}

fn replay(rec: &Path, out: &Path, extra: &[&str]) -> String {
    let run = keel()
        .arg("replay")
        .arg(rec)
        .args(["--config", DEMO, "--quiet", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run keel replay");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "keel replay failed: {stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    stdout
}

/// What the journal says of one rebalance: the decision (portfolio, trigger, legs as (sell, buy,
/// amount in): what the engine decided, without times), whether a relay refused one of its
/// submissions, and the block its first bundle targeted.
struct Journaled {
    decision: serde_json::Value,
    refused: bool,
    first_target: Option<u64>,
}

/// Every rebalance the journal `db` holds, oldest first.
fn journaled(db: &Path) -> Vec<Journaled> {
    let journal = |args: &[&str]| -> serde_json::Value {
        let out = keel().args(["journal", "--json", "--path"]).arg(db).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mut intents: Vec<u64> = journal(&["list", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["intent"].as_u64().unwrap())
        .collect();
    intents.sort_unstable();
    intents
        .iter()
        .map(|i| {
            let shown = journal(&["show", &i.to_string()]);
            let records = shown["records"].as_array().unwrap();
            let refused = records.iter().any(|r| r["kind"] == "submitted" && r["body"]["accepted"] == false);
            let first_target =
                records.iter().find(|r| r["kind"] == "signed").and_then(|r| r["body"]["target_block"].as_u64());
            let decided = records
                .iter()
                .find(|r| r["kind"] == "decided")
                .unwrap_or_else(|| panic!("intent {i} has no decided record: {shown:#}"))
                .clone();
            let body = &decided["body"];
            let legs: Vec<serde_json::Value> = body["legs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| serde_json::json!([l["sell"], l["buy"], l["amount_in"]]))
                .collect();
            let decision =
                serde_json::json!({ "portfolio": body["portfolio"], "trigger": body["trigger"], "legs": legs });
            Journaled { decision, refused, first_target }
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// (file name, bytes) of every file in `dir`, sorted by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Checks that the replay's journal `replayed` holds the decisions of the recorded run's `live`
/// one, up to and including the first that was sent otherwise than in the replay (see
/// [`same_decisions_as_recorded`]); returns that one's position, if any.
fn assert_same_decisions(live: &Path, replayed: &Path) -> Option<usize> {
    let live = journaled(live);
    assert!(!live.is_empty(), "the recorded run decided nothing");
    let replayed = journaled(replayed);
    let live_decisions: Vec<_> = live.iter().map(|j| j.decision.clone()).collect();
    let replayed_decisions: Vec<_> = replayed.iter().map(|j| j.decision.clone()).collect();
    // The first decision whose bundle a relay refused live, or that targeted another block live
    // than in the replay (compared while the decisions agree).
    let sent_otherwise = live.iter().enumerate().position(|(k, l)| {
        l.refused
            || replayed.get(k).is_some_and(|r| r.decision == l.decision && r.first_target != l.first_target)
    });
    match sent_otherwise {
        None => assert_eq!(replayed_decisions, live_decisions),
        Some(k) => {
            eprintln!(
                "decision {} of {} was sent otherwise live than in the replay (refused: {}, first target {:?} live, {:?} replayed): compared up to it",
                k + 1,
                live.len(),
                live[k].refused,
                live[k].first_target,
                replayed.get(k).and_then(|r| r.first_target),
            );
            assert!(replayed_decisions.len() > k, "{replayed_decisions:#?}\n{live_decisions:#?}");
            assert_eq!(replayed_decisions[..=k], live_decisions[..=k]);
        }
    }
    sent_otherwise
}

/// Checks that the replay in `out` of the recording `rec` decided what the recorded run decided:
/// the same rebalances, triggers, legs and amounts (where and when they landed may differ: the
/// timing model aside), landed some, and ran the recorded timers and reads. Returns replay.json.
///
/// What a recording cannot show: when the recorded run's builder built a block, and when its
/// router thread took an intent. A bundle sent after its target block was built but before Keel saw
/// that block's head is refused live as late ("target block … is not after the head block …") and
/// lands later, at other prices, where the replay, whose block is cut when the run saw its head,
/// lands it on time; and in pipelined mode the router thread may take a head between the frame
/// that fired an intent and the intent, so the live bundle targets a later block than the
/// replay's, which hands every intent over at once. Both happen on loaded machines. The decisions
/// must be equal up to and including the first sent otherwise live; after it they may differ, and
/// the comparison stops there (it says so).
fn same_decisions_as_recorded(rec: &Path, out: &Path) -> serde_json::Value {
    let sent_otherwise = assert_same_decisions(&rec.join(LIVE_JOURNAL), &out.join("journal.sqlite"));
    let live_report = json(&rec.join("report.json"));
    let replayed = json(&out.join("report.json"));
    if sent_otherwise.is_none() {
        assert_eq!(replayed["rebalances"], live_report["rebalances"]);
    }
    assert_eq!(replayed["price_updates"], live_report["price_updates"]);
    assert!(replayed["rebalances_landed"].as_u64().unwrap() >= 1, "{replayed:#}");
    let stats = json(&out.join("replay.json"));
    assert_eq!(stats["issues"], 0);
    assert!(stats["bundles_included"].as_u64().unwrap() >= 1, "{stats:#}");
    // The engine's timer ticks were recorded and run at their recorded times (about one per
    // 100 ms of the 10 s run), and every later balance and nonce read was answered by the chain.
    assert!(stats["timers_recorded"].as_u64().unwrap() >= 50, "{stats:#}");
    assert!(stats["reads_superseded"].as_u64().unwrap() >= 100, "{stats:#}");
    stats
}

#[test]
fn a_replay_reproduces_the_recorded_runs_decisions_and_two_replays_are_byte_identical() {
    let rec = recording();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    replay(rec, &a, &[]);
    replay(rec, &b, &[]);
    let (fa, fb) = (files(&a), files(&b));
    let names: Vec<&str> = fa.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["cost.svg", "journal.sqlite", "replay.json", "report.json", "weights.svg"]);
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{name} differs between two replays of one recording");
    }

    let stats = same_decisions_as_recorded(rec, &a);
    // Every call the devnet config sends (V2, V3, and V4 through the Universal Router with
    // Permit2) is one the replay's chain executes.
    let failed = stats["bundles_failed"].as_object().unwrap();
    assert!(
        !failed.keys().any(|k| k.contains("unknown call")
            || k.contains("unsupported")
            || k.contains("no configured pool")),
        "{stats:#}"
    );
}

/// A run whose engine thread read the exchange socket itself (inline mode) replays to the same
/// decisions: frames were recorded as read, and the other feeds' events, drained before each frame,
/// were taken in their recorded order.
#[test]
fn a_recording_made_in_inline_mode_replays_to_the_recorded_runs_decisions() {
    let rec = inline_recording();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    replay(rec, &out, &[]);
    assert_eq!(json(&rec.join("report.json"))["stage_mode"], "inline");
    same_decisions_as_recorded(rec, &out);
}

#[test]
fn sends_delayed_past_the_block_interval_miss_their_blocks() {
    let rec = recording();
    let dir = tempfile::tempdir().unwrap();
    // The demo's blocks come every 500 ms: 2 s of latency misses every target block.
    replay(rec, dir.path(), &["--latency-us", "2000000"]);
    let stats = json(&dir.path().join("replay.json"));
    let report = json(&dir.path().join("report.json"));
    assert!(stats["bundles_late"].as_u64().unwrap() >= 1, "{stats:#}");
    assert_eq!(stats["bundles_included"], 0, "{stats:#}");
    assert_eq!(report["rebalances_landed"], 0, "{report:#}");
}

#[test]
fn a_corrupt_record_and_a_torn_tail_are_reported_with_their_offsets_and_the_rest_is_replayed() {
    let rec = recording();
    let dir = tempfile::tempdir().unwrap();
    let clean_out = dir.path().join("clean");
    replay(rec, &clean_out, &[]);
    let clean = json(&clean_out.join("replay.json"));

    let damaged = dir.path().join("rec");
    std::fs::create_dir(&damaged).unwrap();
    let name = "keel-000001.klog";
    let mut bytes = std::fs::read(rec.join(name)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5A;
    // A crash mid-write: the last record loses its last bytes.
    bytes.truncate(bytes.len() - 3);
    std::fs::write(damaged.join(name), &bytes).unwrap();

    let out = dir.path().join("out");
    let stdout = replay(&damaged, &out, &[]);
    let stats = json(&out.join("replay.json"));
    assert_eq!(stats["issues"], 2, "{stats:#}");
    let issues: Vec<&str> =
        stats["issue_list"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert!(issues[0].contains("corrupt record") && issues[0].contains("at offset"), "{issues:?}");
    assert!(issues[0].contains("reading resumed at offset"), "{issues:?}");
    assert!(issues[1].contains("torn tail") && issues[1].contains("at offset"), "{issues:?}");
    // The offsets named are the damaged record's start (at or before the flipped byte) and the
    // torn record's start.
    let offset_after = |text: &str, marker: &str| -> u64 {
        let at = text.find(marker).unwrap() + marker.len();
        text[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let corrupt_at = offset_after(issues[0], "at offset ");
    assert!(corrupt_at <= mid as u64 && mid as u64 - corrupt_at < 4096, "{corrupt_at} vs {mid}");
    assert!(offset_after(issues[1], "at offset ") < bytes.len() as u64);
    // Everything else was read and replayed.
    assert_eq!(stats["records"].as_u64().unwrap(), clean["records"].as_u64().unwrap() - 2, "{stats:#}");
    assert!(stdout.contains("recording damage: 2 issue(s)"), "{stdout}");
}

/// `keel record` against `keel devnet` (anvil, the real Uniswap V2 and V3 contracts, the websocket
/// node feed), then `keel replay` with the recorded config: the same decisions as the recorded run.
#[test]
fn a_devnet_recording_replays_to_the_recorded_runs_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("devnet.toml");
    let _devnet = crate::common::Devnet::start(
        env!("CARGO_BIN_EXE_keel"),
        &["--block-ms", "500", "--move-every", "2", "--duration", "90"],
        &cfg,
    );
    let journal = dir.path().join(LIVE_JOURNAL);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[journal]\npath = {:?}\n", journal.display().to_string()));
    std::fs::write(&cfg, text).unwrap();
    let rec = dir.path().join("rec");
    let out = keel()
        .args(["record", "--duration", "25", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&rec)
        .output()
        .expect("run keel record");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "keel record failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("dropped 0 (queue full)"), "{stdout}");

    // No --config: the config stored in the recording.
    let replayed = dir.path().join("replay");
    let run = keel().arg("replay").arg(&rec).args(["--quiet", "--out"]).arg(&replayed).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_same_decisions(&journal, &replayed.join("journal.sqlite"));
    let stats = json(&replayed.join("replay.json"));
    assert_eq!(stats["issues"], 0);
    assert_eq!(stats["undecodable"], 0);
    assert!(stats["bundles_included"].as_u64().unwrap() >= 1, "{stats:#}");
}

fn backtest(args: &[&str], out: &Path) {
    let run = keel()
        .args(["--log", "error", "backtest"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("keel backtest");
    assert!(
        run.status.success(),
        "keel backtest failed: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn a_backtest_sweeps_configs_over_a_recording_in_shards_that_merge_into_the_whole() {
    let rec = recording();
    let rec_s = rec.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sweep = "abs_band=0.01,0.02 cost_aware=off,on latency_us=0,2000000";
    let whole = dir.path().join("whole");
    backtest(&[rec_s, "--config", DEMO, "--quiet", "--sweep", sweep], &whole);
    let (s0, s1, merged) = (dir.path().join("s0"), dir.path().join("s1"), dir.path().join("merged"));
    backtest(&[rec_s, "--config", DEMO, "--quiet", "--sweep", sweep, "--shard", "0/2"], &s0);
    backtest(&[rec_s, "--config", DEMO, "--quiet", "--sweep", sweep, "--shard", "1/2"], &s1);
    let run = keel()
        .args(["backtest", "merge", "--out"])
        .arg(&merged)
        .arg(&s0)
        .arg(&s1)
        .output()
        .expect("keel backtest merge");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    // Every config once, in sweep order; shards merged equal the whole sweep run at once (each
    // config is an independent, deterministic replay).
    let result = json(&whole.join("backtest.json"));
    let rows = result["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().enumerate().all(|(i, r)| r["index"] == i), "{result:#}");
    assert_eq!(json(&merged.join("backtest.json")), result);
    assert_eq!(json(&s0.join("backtest.json"))["rows"].as_array().unwrap().len(), 4);
    // Band-only configs without latency trade and land; 2 s of latency on 500 ms blocks lands
    // nothing, and leaves the tracking error higher.
    let at = |band: &str, aware: &str, lat: &str| {
        rows.iter()
            .find(|r| {
                r["params"]["abs_band"] == band
                    && r["params"]["cost_aware"] == aware
                    && r["params"]["latency_us"] == lat
            })
            .unwrap()
    };
    let fast = at("0.01", "off", "0");
    let slow = at("0.01", "off", "2000000");
    assert!(fast["landed"].as_u64().unwrap() >= 1, "{fast:#}");
    assert_eq!(slow["landed"], 0, "{slow:#}");
    assert!(slow["tracking_error"].as_f64().unwrap() > fast["tracking_error"].as_f64().unwrap());
    // A front at each latency, and both plots.
    for lat in ["0", "2000000"] {
        assert!(rows.iter().any(|r| r["params"]["latency_us"] == lat && r["pareto"] == true), "{result:#}");
    }
    for f in ["backtest.md", "frontier.svg", "latency.svg"] {
        let text = std::fs::read_to_string(merged.join(f)).unwrap();
        assert!(!text.is_empty(), "{f}");
    }
    assert!(std::fs::read_to_string(merged.join("frontier.svg")).unwrap().contains("Pareto front"));
    assert!(std::fs::read_to_string(merged.join("latency.svg")).unwrap().contains("latency 2000000 µs"));
    // Bad sweeps are named.
    let bad = keel().args(["backtest", rec_s, "--sweep", "bogus=1"]).output().unwrap();
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown parameter `bogus`")
    );
}

#[test]
fn the_shipped_recordings_replay_with_the_config_they_were_recorded_with() {
    // (directory, fewest bundles its replay must include)
    for (name, least) in [("demo-60s", 10), ("binance-futures-60s", 1)] {
        let rec = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings").join(name);
        let dir = tempfile::tempdir().unwrap();
        let run = keel()
            .args(["--log", "error", "replay"])
            .arg(&rec)
            .args(["--quiet", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let stats = json(&dir.path().join("replay.json"));
        assert_eq!(stats["issues"], 0, "{name}: {stats:#}");
        assert!(stats["bundles_included"].as_u64().unwrap() >= least, "{name}: {stats:#}");
        let report = json(&dir.path().join("report.json"));
        assert!(report["rebalances_landed"].as_u64().unwrap() >= least, "{name}: {report:#}");
    }
}
