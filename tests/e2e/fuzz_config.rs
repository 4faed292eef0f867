//! Config fuzzing: `keel check-config` on mutated versions of `configs/demo.toml` exits 0 (valid) or
//! 1 with one `error: ...` line first on stderr, and never panics, crashes or hangs.
//!
//! Mutations are structure-aware (the TOML tree with values replaced by others of any type or range,
//! keys removed, renamed or added, tables emptied) or textual (lines deleted, duplicated or swapped,
//! the file cut short, bytes flipped, invalid UTF-8). Each case runs the binary, so the default count
//! is small; `KEEL_FUZZ_CASES` (or `PROPTEST_CASES`) raises it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use toml::Value;

/// Bound on one `check-config` run.
const RUN_LIMIT: Duration = Duration::from_secs(10);

fn cases(default: u32) -> u32 {
    ["KEEL_FUZZ_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
        .unwrap_or(default)
}

fn demo_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml")).expect("demo.toml")
}

/// Runs `keel check-config` on `bytes`; returns (exit code, stdout, stderr).
fn check_config(bytes: &[u8]) -> (Option<i32>, String, String) {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
    file.write_all(bytes).expect("write");
    file.flush().expect("flush");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("check-config")
        .arg(file.path())
        .env_remove("KEEL_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keel");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check-config hung on:\n{}", String::from_utf8_lossy(bytes));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The contract of `check-config`'s answer.
fn assert_clean_answer(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (code, stdout, stderr) = check_config(bytes);
    let shown = || {
        format!(
            "exit {code:?}\nstdout: {stdout}\nstderr: {stderr}\ninput:\n{}",
            String::from_utf8_lossy(bytes)
        )
    };
    prop_assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic: {}", shown());
    match code {
        Some(0) => {
            prop_assert!(stdout.contains(": ok ("), "{}", shown());
            prop_assert!(stderr.trim().is_empty(), "{}", shown());
        }
        Some(1) => {
            let first = stderr.lines().next().unwrap_or_default();
            prop_assert!(first.starts_with("error: ") && first.len() > "error: ".len() + 5, "{}", shown());
            let errors = stderr.lines().filter(|l| l.starts_with("error")).count();
            prop_assert_eq!(errors, 1, "one error line: {}", shown());
            prop_assert!(stdout.trim().is_empty(), "{}", shown());
        }
        _ => prop_assert!(false, "exit code must be 0 or 1: {}", shown()),
    }
    Ok(())
}

// ----- Structure-aware: the TOML tree. -----

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        prop::sample::select(vec![0i64, -1, 1, 2, 31337, 1 << 53, i64::MAX, i64::MIN])
            .prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            0.5,
            1e308,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-12
        ])
        .prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        prop::sample::select(vec![
            "",
            "dev:0",
            "dev:99",
            "env:",
            "env:KEEL_SURELY_UNSET_VAR",
            "uniswap_v3",
            "uniswap_v2",
            "to_band",
            "drift",
            "volatility",
            "temporal",
            "WETH",
            "USDC",
            "BTCUSDT",
            "0x",
            "0x0000000000000000000000000000000000000000",
            "0xffffffffffffffffffffffffffffffffffffffff",
            "1e40",
            "-1",
            "340282366920938463463374607431768211456",
            "http://127.0.0.1:1",
            "ws://x",
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        ])
        .prop_map(|s| Value::String(s.into())),
        any::<String>().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,12}", inner), 0..3)
                .prop_map(|kv| Value::Table(kv.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum TreeEdit {
    Replace { at: usize, with: Value },
    Remove { at: usize, k: usize },
    Add { at: usize, key: String, with: Value },
    Rename { at: usize, k: usize, key: String },
    Clear { at: usize },
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "type",
            "name",
            "symbol",
            "address",
            "decimals",
            "price",
            "fixed",
            "targets",
            "triggers",
            "abs_band",
            "rel_band",
            "fee",
            "dex",
            "token0",
            "token1",
            "chain_id",
            "bundle_blocks",
            "stale_after_ms",
            "queue_capacity",
            "slippage_bps",
            "accounts",
            "reputation_key",
            "binance",
            "rpc_url",
            "relays",
        ])
        .prop_map(String::from),
        "[a-z_]{1,12}",
    ];
    prop_oneof![
        4 => (any::<usize>(), value()).prop_map(|(at, with)| TreeEdit::Replace { at, with }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(at, k)| TreeEdit::Remove { at, k }),
        1 => (any::<usize>(), key.clone(), value()).prop_map(|(at, key, with)| TreeEdit::Add { at, key, with }),
        1 => (any::<usize>(), any::<usize>(), key).prop_map(|(at, k, key)| TreeEdit::Rename { at, k, key }),
        1 => any::<usize>().prop_map(|at| TreeEdit::Clear { at }),
    ]
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Table(t) => t.values().map(count).sum(),
        _ => 0,
    }
}

fn nth<'v>(v: &'v mut Value, i: &mut usize) -> Option<&'v mut Value> {
    if *i == 0 {
        return Some(v);
    }
    *i -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|x| nth(x, i)),
        Value::Table(t) => t.iter_mut().find_map(|(_, x)| nth(x, i)),
        _ => None,
    }
}

fn edit(root: &mut Value, e: &TreeEdit) {
    let at = match e {
        TreeEdit::Replace { at, .. }
        | TreeEdit::Remove { at, .. }
        | TreeEdit::Add { at, .. }
        | TreeEdit::Rename { at, .. }
        | TreeEdit::Clear { at } => *at,
    };
    // Never replace the root itself: the file must stay a table to be TOML at all.
    let mut i = 1 + at % count(root).saturating_sub(1).max(1);
    let Some(node) = nth(root, &mut i) else { return };
    match e {
        TreeEdit::Replace { with, .. } => *node = with.clone(),
        TreeEdit::Remove { k, .. } => match node {
            Value::Array(a) if !a.is_empty() => {
                let n = a.len();
                a.remove(k % n);
            }
            Value::Table(t) if !t.is_empty() => {
                let key = t.keys().nth(k % t.len()).cloned().unwrap_or_default();
                t.remove(&key);
            }
            _ => {}
        },
        TreeEdit::Add { key, with, .. } => match node {
            Value::Table(t) => {
                t.insert(key.clone(), with.clone());
            }
            Value::Array(a) => a.push(with.clone()),
            _ => {}
        },
        TreeEdit::Rename { k, key, .. } => {
            if let Value::Table(t) = node
                && !t.is_empty()
            {
                let old = t.keys().nth(k % t.len()).cloned().unwrap_or_default();
                if let Some(v) = t.remove(&old) {
                    t.insert(key.clone(), v);
                }
            }
        }
        TreeEdit::Clear { .. } => match node {
            Value::Array(a) => a.clear(),
            Value::Table(t) => t.clear(),
            _ => {}
        },
    }
}

// ----- Textual: lines and bytes. -----

#[derive(Debug, Clone)]
enum TextEdit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
    SetByte(usize, u8),
    InsertBytes(usize, Vec<u8>),
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    let bytes = prop_oneof![
        proptest::collection::vec(prop::sample::select(&b"[]{}=\"',.#\n\\ 0123456789-+eE_x:"[..]), 1..6),
        proptest::collection::vec(any::<u8>(), 1..6),
    ];
    prop_oneof![
        any::<usize>().prop_map(TextEdit::DeleteLine),
        any::<usize>().prop_map(TextEdit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| TextEdit::SwapLines(a, b)),
        any::<usize>().prop_map(TextEdit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| TextEdit::SetByte(a, b)),
        (any::<usize>(), bytes).prop_map(|(a, b)| TextEdit::InsertBytes(a, b)),
    ]
}

fn edit_text(text: &mut Vec<u8>, e: &TextEdit) {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let n = lines.len().max(1);
    match e {
        TextEdit::DeleteLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
        }
        TextEdit::DuplicateLine(i) => {
            if let Some(l) = lines.get(i % n).cloned() {
                lines.insert(i % n, l);
            }
        }
        TextEdit::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
        }
        TextEdit::Truncate(at) => {
            text.truncate(at % (text.len() + 1));
            return;
        }
        TextEdit::SetByte(at, b) => {
            if !text.is_empty() {
                let n = text.len();
                text[at % n] = *b;
            }
            return;
        }
        TextEdit::InsertBytes(at, b) => {
            let at = at % (text.len() + 1);
            text.splice(at..at, b.iter().copied());
            return;
        }
    }
    *text = lines.join(&b'\n');
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(200), ..ProptestConfig::default() })]

    /// The demo config with its TOML tree edited.
    #[test]
    fn check_config_on_edited_trees(edits in proptest::collection::vec(tree_edit(), 1..4)) {
        let mut tree: Value = toml::from_str(&demo_text()).expect("demo.toml parses");
        for e in &edits {
            edit(&mut tree, e);
        }
        // Some trees have no TOML form (e.g. NaN keys are fine, but a non-table root is not).
        if let Ok(text) = toml::to_string(&tree) {
            assert_clean_answer(text.as_bytes())?;
        }
    }

    /// The demo config with lines and bytes edited.
    #[test]
    fn check_config_on_edited_text(edits in proptest::collection::vec(text_edit(), 1..4)) {
        let mut text = demo_text().into_bytes();
        for e in &edits {
            edit_text(&mut text, e);
        }
        assert_clean_answer(&text)?;
    }
}

/// The unmutated demo config is valid, and a missing file is one clear error: the oracle's two ends.
#[test]
fn check_config_contract_holds_for_known_inputs() {
    let (code, stdout, _) = check_config(demo_text().as_bytes());
    assert_eq!(code, Some(0), "{stdout}");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["check-config", "/nonexistent/keel.toml"])
        .output()
        .expect("run keel");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ") && stderr.lines().count() == 1, "{stderr}");
    // Found by this fuzzer: a long non-ASCII key reference panicked while being redacted.
    let text = demo_text().replacen(
        r#"reputation_key = "dev:9""#,
        "reputation_key = \"A\u{16B7D}\u{1F300}\u{F00} x\"",
        1,
    );
    assert!(text.contains("\u{1F300}"));
    let (code, _, stderr) = check_config(text.as_bytes());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("reputation_key"), "{stderr}");
}

// ----- Bounds: every numeric field, each side of its range. -----

/// Sets `path` (`router.bundle_blocks`, `pools[0].gas`, `portfolios[1].triggers[0].halflife_secs`)
/// in `doc` to `value` (TOML text), creating missing tables; `None` removes the key.
fn set_path(doc: &mut Value, path: &str, value: Option<&str>) {
    let value = value.map(|v| {
        let wrapped: Value = toml::from_str(&format!("v = {v}")).expect("value snippet");
        wrapped.get("v").expect("v").clone()
    });
    let parts: Vec<&str> = path.split('.').collect();
    let mut at = doc;
    for (i, part) in parts.iter().enumerate() {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']').parse::<usize>().expect("index"))),
            None => (*part, None),
        };
        let table = at.as_table_mut().expect("a table on the path");
        let last = i + 1 == parts.len();
        if last && index.is_none() {
            match value {
                Some(v) => table.insert(key.to_string(), v),
                None => table.remove(key),
            };
            return;
        }
        let entry = table.entry(key.to_string()).or_insert_with(|| Value::Table(Default::default()));
        at = match index {
            Some(k) => entry.as_array_mut().expect("an array").get_mut(k).expect("an element"),
            None => entry,
        };
    }
}

/// `keel check-config` refuses each out-of-range number in every config section with one error
/// line naming the field and its bound (a zero queue, a wrapped deadline, a zero block interval, a
/// timeout of centuries: each once passed the check and failed, or misbehaved, at start).
#[test]
fn check_config_refuses_every_out_of_range_number_naming_the_field_and_the_bound() {
    let demo = demo_text();
    let anvil = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil.toml"))
        .expect("anvil.toml");
    // (base, path, value, words the error must contain: the field, then the bound)
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, &[&str])] = &[
        ("demo", "engine.queue_capacity", "0", &["engine.queue_capacity", "16..=16777216"]),
        ("demo", "engine.queue_capacity", "16777217", &["engine.queue_capacity", "16..=16777216"]),
        ("demo", "engine.stale_after_ms", "0", &["engine.stale_after_ms", "1..=86400000"]),
        ("demo", "engine.stale_after_ms", "86400001", &["engine.stale_after_ms", "1..=86400000"]),
        ("demo", "engine.idle_spin_us", "1000001", &["engine.idle_spin_us", "0..=1000000"]),
        ("demo", "engine.hot_cpu", "1024", &["engine.hot_cpu", "0..1024"]),
        ("demo", "engine.rehearse_us", "1000001", &["engine.rehearse_us", "0..=1000000"]),
        ("demo", "router.gas_reserve_wei", "9000000000000000001", &["router.gas_reserve_wei", "0..=9000000000000000000"]),
        ("demo", "router.bundle_blocks", "0", &["router.bundle_blocks", "1..=300"]),
        ("demo", "router.bundle_blocks", "9223372036854775807", &["router.bundle_blocks", "1..=300"]),
        ("demo", "router.swap_deadline_secs", "0", &["router.swap_deadline_secs", "1..=86400"]),
        ("demo", "router.swap_deadline_secs", "9223372036854775807", &["router.swap_deadline_secs", "1..=86400"]),
        ("demo", "router.twap_window_secs", "0", &["router.twap_window_secs", "1..=86400"]),
        ("demo", "router.max_pool_age_blocks", "301", &["router.max_pool_age_blocks", "0..=300"]),
        ("demo", "router.priority_fee_wei", "100000000000001", &["router.priority_fee_wei", "0..=100000000000000"]),
        ("demo", "router.base_fee_multiplier", "0", &["router.base_fee_multiplier", "1..=100"]),
        ("demo", "router.base_fee_multiplier", "101", &["router.base_fee_multiplier", "1..=100"]),
        ("demo", "router.presign_pool", "1048577", &["router.presign_pool", "0..=1048576"]),
        ("demo", "router.slippage_bps", "10000", &["router.slippage_bps", "< 10000"]),
        ("demo", "router.max_pool_deviation", "0.0", &["router.max_pool_deviation", "(0, 1]"]),
        ("demo", "router.max_pool_deviation", "1.5", &["router.max_pool_deviation", "(0, 1]"]),
        ("demo", "router.defer_on_pending_volume", "1.0", &["router.defer_on_pending_volume", "(0, 1)"]),
        ("demo", "router.limits.max_gas_price_wei", "0", &["router.limits.max_gas_price_wei", "1..=100000000000000"]),
        ("demo", "router.limits.max_trade_notional", "-1.0", &["router.limits.max_trade_notional", "> 0"]),
        ("demo", "router.chain_id", "-1", &["router.chain_id"]),
        ("demo", "pools[0].gas", "20999", &["pools[uni-usdc-weth].gas", "21000..=30000000"]),
        ("demo", "pools[0].gas", "30000001", &["pools[uni-usdc-weth].gas", "21000..=30000000"]),
        ("demo", "pools[0].fee", "10000", &["pools[uni-usdc-weth].fee", "< 10000"]),
        ("demo", "pools[0].fee", "-1", &["pools.fee"]),
        ("demo", "tokens[0].decimals", "37", &["tokens[WBTC].decimals", "0..=36"]),
        ("demo", "tokens[0].decimals", "256", &["tokens.decimals"]),
        ("demo", "tokens[1].price", "{ fixed = 0.0 }", &["tokens[USDC].price.fixed", "> 0"]),
        ("demo", "portfolios[0].cooldown_secs", "-1.0", &["portfolios[core].cooldown_secs", "[0, 31536000]"]),
        ("demo", "portfolios[0].cooldown_secs", "1e300", &["portfolios[core].cooldown_secs", "[0, 31536000]"]),
        ("demo", "portfolios[0].min_trade_notional", "-1.0", &["portfolios[core].min_trade_notional", "[0, 1000000000000]"]),
        ("demo", "portfolios[0].min_trade_notional", "1e13", &["portfolios[core].min_trade_notional", "[0, 1000000000000]"]),
        ("demo", "portfolios[0].triggers[0].abs_band", "1.5", &["portfolios[core].triggers[0].abs_band", "(0, 1]"]),
        ("demo", "portfolios[1].triggers[0].halflife_secs", "0.0", &["portfolios[balanced].triggers[0].halflife_secs", "(0, 31536000]"]),
        ("demo", "portfolios[1].triggers[0].reference_vol", "1000.0", &["portfolios[balanced].triggers[0].reference_vol", "(0, 100]"]),
        ("demo", "portfolios[1].triggers[1].interval_secs", "1e12", &["portfolios[balanced].triggers[1].interval_secs", "(0, 31536000]"]),
        ("demo", "portfolios[0].cost", "{ kappa = 0.0 }", &["portfolios[core].cost.kappa", "(0, 1e9]"]),
        ("demo", "portfolios[4].targets.cppi.multiplier", "0.0", &["portfolios[insured].targets.cppi.multiplier", "(0, 100]"]),
        ("demo", "portfolios[4].targets.cppi.floor", "-1.0", &["portfolios[insured].targets.cppi.floor", "[0, 1000000000000000]"]),
        ("demo", "portfolios[0].targets", "{ momentum = { lookback_secs = 0.5, tilt = 1.0, base = { WETH = 0.6, USDC = 0.4 } } }", &["portfolios[core].targets.momentum.lookback_secs", "[1, 31536000]"]),
        ("demo", "portfolios[0].targets", "{ momentum = { lookback_secs = 60, tilt = 1.0, max_tilt = 1.0, base = { WETH = 0.6, USDC = 0.4 } } }", &["portfolios[core].targets.momentum.max_tilt", "(0, 1)"]),
        ("demo", "portfolios[0].targets", "{ momentum = { lookback_secs = 60, tilt = 101.0, base = { WETH = 0.6, USDC = 0.4 } } }", &["portfolios[core].targets.momentum.tilt", "[0, 100]"]),
        ("demo", "relays", r#"[{ name = "r", url = "http://127.0.0.1:1", timeout_ms = 0 }]"#, &["relays[r].timeout_ms", "1..=60000"]),
        ("demo", "relays", r#"[{ name = "r", url = "http://127.0.0.1:1", timeout_ms = 60001 }]"#, &["relays[r].timeout_ms", "1..=60000"]),
        ("demo", "journal", r#"{ path = "j.db", commit_timeout_ms = 0 }"#, &["journal.commit_timeout_ms", "1..=600000"]),
        ("demo", "journal", r#"{ path = "j.db", commit_timeout_ms = 600001 }"#, &["journal.commit_timeout_ms", "1..=600000"]),
        ("demo", "record", r#"{ dir = "rec", max_file_mb = 0 }"#, &["record.max_file_mb", "1..=65536"]),
        ("demo", "safety", r#"{ control_port = 0, control_token = "env:X" }"#, &["safety.control_port", "1..=65535"]),
        ("demo", "safety", r#"{ control_port = 65536, control_token = "env:X" }"#, &["safety.control_port"]),
        ("demo", "sim.chain_id", "0", &["sim.chain_id", "differs from router.chain_id"]),
        ("demo", "sim.block_ms", "0", &["sim.block_ms", "1..=60000"]),
        ("demo", "sim.block_ms", "60001", &["sim.block_ms", "1..=60000"]),
        ("demo", "sim.tick_ms", "0", &["sim.tick_ms", "1..=60000"]),
        ("demo", "sim.base_fee_wei", "0", &["sim.base_fee_wei", "1..=100000000000000"]),
        ("demo", "sim.gas_limit", "999999", &["sim.gas_limit", "1000000..=100000000000"]),
        ("demo", "sim.gas_limit", "100000000001", &["sim.gas_limit", "1000000..=100000000000"]),
        ("demo", "sim.flows[0].every_blocks", "0", &["sim.flows[0].every_blocks", "1..=1000000"]),
        ("demo", "sim.volatile_vol", "1.0", &["sim.volatile_vol", "[0, 1)"]),
        ("demo", "sim.p_calm_to_volatile", "1.5", &["sim.p_calm_to_volatile", "[0, 1]"]),
        ("demo", "sim.pools[0].reserve0", "\"0\"", &["sim.pools[uni-usdc-weth].reserve0", "> 0"]),
        ("anvil", "chain.poll_ms", "0", &["chain.poll_ms", "1..=60000"]),
        ("anvil", "chain.poll_ms", "60001", &["chain.poll_ms", "1..=60000"]),
        ("anvil", "feeds.binance.connect_timeout_ms", "0", &["feeds.binance.connect_timeout_ms", "1..=60000"]),
        ("anvil", "feeds.binance.idle_timeout_ms", "3600001", &["feeds.binance.idle_timeout_ms", "1..=3600000"]),
        ("anvil", "feeds.binance.backoff", "{ base_ms = 0 }", &["feeds.binance.backoff.base_ms", "1..=3600000"]),
        ("anvil", "feeds.binance.backoff", "{ base_ms = 10, max_ms = 3600001 }", &["feeds.binance.backoff.max_ms", "..=3600000"]),
        ("anvil", "pools[1].tick_spacing", "16385", &["pools[v3-tka-tkb].tick_spacing", "1..=16384"]),
        ("anvil", "pools[5].fee", "4", &["pools[curve-tka-tkb].fee", "read from the pool"]),
        ("anvil", "pools[5].curve_indices", "\"int256\"", &["curve_indices"]),
        ("anvil", "dexes[4].router", "\"0x1111111111111111111111111111111111111111\"", &["dexes[curve].router", "its own swap contract"]),
        ("anvil", "dexes[0].router", "\"0x0000000000000000000000000000000000000000\"", &["dexes[uniswap-v2].router", "required"]),
    ];
    let mut failures = Vec::new();
    for (base, path, value, words) in table {
        let mut doc: Value =
            toml::from_str(if *base == "demo" { &demo } else { &anvil }).expect("base parses");
        set_path(&mut doc, path, Some(value));
        let text = toml::to_string(&doc).expect("serialise");
        let (code, _, stderr) = check_config(text.as_bytes());
        let first = stderr.lines().next().unwrap_or_default();
        let named = words.iter().all(|w| first.contains(w));
        if code != Some(1) || !named || !first.starts_with("error: ") || stderr.contains("panicked") {
            failures.push(format!("{path} = {value}: exit {code:?}, expected {words:?} in: {stderr}"));
        }
    }
    // The two bases are valid as they are, so each refusal above is the edited field's.
    for base in [&demo, &anvil] {
        let doc: Value = toml::from_str(base).expect("base parses");
        let (code, stdout, stderr) = check_config(toml::to_string(&doc).expect("serialise").as_bytes());
        assert_eq!(code, Some(0), "{stdout}{stderr}");
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), table.len(), failures.join("\n"));
}

/// A V3 pool needs the node's websocket: `check-config` says so, not only `keel run`.
#[test]
fn check_config_refuses_a_v3_pool_without_the_node_websocket() {
    let anvil = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil.toml"))
        .expect("anvil.toml");
    let mut doc: Value = toml::from_str(&anvil).expect("parses");
    set_path(&mut doc, "chain.ws_url", None);
    let (code, _, stderr) = check_config(toml::to_string(&doc).expect("serialise").as_bytes());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("pools[v3-tka-tkb]") && stderr.contains("set [chain] ws_url"), "{stderr}");
}
