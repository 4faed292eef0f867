//! Robustness: whatever the bytes, the decoder returns `Ok` or `Err`, never panics, and it accepts
//! and rejects the same frames as `serde_json` (up to the documented leniencies).
//!
//! Also fuzzed here, the node-side decoders: pool event logs ([`decode_change`], and
//! [`PoolBook::apply_log`] on a loaded book), and mempool calldata ([`MempoolDecoder::decode`], then
//! [`PendingView::pool_after`]). Every target gets random input and structure-aware mutations of valid
//! input (real captured frames, re-serialised JSON trees with replaced or removed nodes, ABI-encoded
//! events and calls with corrupted words).
//!
//! Case counts: the defaults keep the whole set to a few seconds; `KEEL_FUZZ_CASES=100000` (or
//! `PROPTEST_CASES`) runs every property longer.

use keel_feeds::binance::{BookTicker, DecodeError, Decoded, decode};
use proptest::prelude::*;

use crate::support::captures;

/// Cases per property: `KEEL_FUZZ_CASES`, else `PROPTEST_CASES`, else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    ["KEEL_FUZZ_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
        .unwrap_or(default)
}

/// Errors that mean "not JSON", as opposed to "JSON of the wrong shape".
fn is_syntax(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::Empty
            | DecodeError::UnexpectedEnd
            | DecodeError::UnexpectedByte { .. }
            | DecodeError::InvalidString { .. }
            | DecodeError::InvalidNumber { .. }
            | DecodeError::TrailingBytes { .. }
    )
}

/// Our verdict on syntax must match serde_json's, except where we are lenient on purpose: we do not
/// validate UTF-8 or surrogate pairs inside strings, nor the range of numbers we do not read.
fn agrees_with_serde(frame: &[u8]) -> Result<(), TestCaseError> {
    let ours = decode(frame);
    let theirs = serde_json::from_slice::<serde_json::Value>(frame);
    match (&ours, &theirs) {
        (Err(e), Ok(v)) if is_syntax(e) => {
            prop_assert!(false, "we said {e}, serde_json parsed {v}: {}", frame.escape_ascii());
        }
        (Ok(d), Err(e)) => {
            let lenient = std::str::from_utf8(frame).is_err()
                || frame.windows(2).any(|w| w == b"\\u")
                || e.to_string().contains("number out of range");
            prop_assert!(lenient, "we decoded {d:?}, serde_json said {e}: {}", frame.escape_ascii());
        }
        _ => {}
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(&b"{}[]\":,\\-.0123456789eE+ tfnu\x00\x1f\xff"[..]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), interesting.clone()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), interesting).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (any::<usize>(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    let n = frame.len().max(1);
    match *m {
        Mutation::Flip { at, bit } => {
            if let Some(b) = frame.get_mut(at % n) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Set { at, byte } => {
            if let Some(b) = frame.get_mut(at % n) {
                *b = byte;
            }
        }
        Mutation::Insert { at, byte } => frame.insert(at % (frame.len() + 1), byte),
        Mutation::Delete { at, len } => {
            let start = at % n;
            let end = (start + len).min(frame.len());
            if start < end {
                frame.drain(start..end);
            }
        }
        Mutation::Truncate { at } => frame.truncate(at % n),
        Mutation::Duplicate { at, len } => {
            let start = at % n;
            let end = (start + len).min(frame.len());
            if start < end {
                let piece = frame[start..end].to_vec();
                frame.splice(end..end, piece);
            }
        }
    }
}

fn real_frame(i: usize) -> Vec<u8> {
    let all = captures();
    let total: usize = all.iter().map(|c| c.frames.len()).sum();
    let mut i = i % total;
    for c in all {
        if i < c.frames.len() {
            return c.frames[i].clone();
        }
        i -= c.frames.len();
    }
    unreachable!("index within total")
}

fn decimal() -> impl Strategy<Value = String> {
    ("[0-9]{1,12}", proptest::option::of("[0-9]{1,10}")).prop_map(|(i, f)| match f {
        Some(f) => format!("{i}.{f}"),
        None => i,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes);
        agrees_with_serde(&bytes)?;
    }

    #[test]
    fn random_json_ish_text_never_panics(s in r#"[{}\[\]":,\\0-9a-zA-Z.\- ]{0,200}"#) {
        let _ = decode(s.as_bytes());
        agrees_with_serde(s.as_bytes())?;
    }

    #[test]
    fn mutated_real_frames_never_panic(i in any::<usize>(), muts in proptest::collection::vec(mutation(), 1..6)) {
        let mut frame = real_frame(i);
        for m in &muts {
            apply(&mut frame, m);
        }
        let _ = decode(&frame);
        agrees_with_serde(&frame)?;
    }

    /// Generated bookTicker frames (any key order, spot or futures form) decode to the values
    /// `str::parse` gives.
    #[test]
    fn generated_book_tickers_roundtrip(
        sym in "[A-Z0-9]{1,12}",
        u: u64,
        b in decimal(), bq in decimal(), a in decimal(), aq in decimal(),
        times in proptest::option::of((any::<u64>(), any::<u64>())),
        order in Just((0..9).collect::<Vec<usize>>()).prop_shuffle(),
        envelope: bool,
    ) {
        let mut fields = vec![
            format!(r#""u":{u}"#), format!(r#""s":"{sym}""#), format!(r#""b":"{b}""#),
            format!(r#""B":"{bq}""#), format!(r#""a":"{a}""#), format!(r#""A":"{aq}""#),
        ];
        if let Some((e, t)) = times {
            fields.extend([r#""e":"bookTicker""#.to_string(), format!(r#""E":{e}"#), format!(r#""T":{t}"#)]);
        }
        let body: Vec<&str> = order.iter().filter_map(|&i| fields.get(i).map(String::as_str)).collect();
        let payload = format!("{{{}}}", body.join(","));
        let frame = if envelope {
            format!(r#"{{"stream":"{}@bookTicker","data":{payload}}}"#, sym.to_lowercase())
        } else {
            payload
        };
        let p = |s: &str| s.parse::<f64>().expect("decimal");
        let (e, t) = times.unwrap_or((0, 0));
        let want = BookTicker {
            symbol: keel_feeds::binance::Symbol::new(sym.as_bytes()),
            update_id: u, bid: p(&b), bid_qty: p(&bq), ask: p(&a), ask_qty: p(&aq), event_ms: e, transact_ms: t,
        };
        prop_assert_eq!(decode(frame.as_bytes()), Ok(Decoded::BookTicker(want)));
    }
}

// ----- Structure-aware mutations of real frames: edit the JSON tree, re-serialise, decode. -----

use serde_json::Value;

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "0",
            "-0",
            "1e999",
            "-1e-999",
            "NaN",
            "inf",
            "0x10",
            "1.",
            ".5",
            "+1",
            "00.1",
            "1.2.3",
            "99999999999999999999999",
            "18446744073709551616",
            "bookTicker",
            "aggTrade",
            "depthUpdate",
            "kline",
            "ETHUSDT",
            "\u{0}",
            "\\",
            "\u{1F600}",
        ])
        .prop_map(Value::from),
        "-?[0-9]{0,25}(\\.[0-9]{0,25})?([eE][+-]?[0-9]{1,4})?".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,2}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An edit of one node of a JSON tree (nodes numbered in pre-order).
#[derive(Debug, Clone)]
enum TreeEdit {
    /// The node becomes another value.
    Replace { at: usize, with: Value },
    /// The node (an object or array) loses one member.
    Remove { at: usize, k: usize },
    /// The node (an object) has one key renamed (to a key Binance uses, or any).
    Rename { at: usize, k: usize, key: String },
    /// The node is wrapped in `depth` arrays.
    Nest { at: usize, depth: usize },
    /// A number becomes a string and a numeric string becomes a number.
    Retype { at: usize },
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "e", "E", "s", "u", "U", "b", "B", "a", "A", "p", "q", "T", "k", "stream", "data", "result", "id"
        ])
        .prop_map(String::from),
        "[ -~]{0,4}",
    ];
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(at, with)| TreeEdit::Replace { at, with }),
        (any::<usize>(), any::<usize>()).prop_map(|(at, k)| TreeEdit::Remove { at, k }),
        (any::<usize>(), any::<usize>(), key).prop_map(|(at, k, key)| TreeEdit::Rename { at, k, key }),
        (any::<usize>(), 1usize..80).prop_map(|(at, depth)| TreeEdit::Nest { at, depth }),
        any::<usize>().prop_map(|at| TreeEdit::Retype { at }),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `i`-th node in pre-order.
fn nth_node<'v>(v: &'v mut Value, i: &mut usize) -> Option<&'v mut Value> {
    if *i == 0 {
        return Some(v);
    }
    *i -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|x| nth_node(x, i)),
        Value::Object(o) => o.values_mut().find_map(|x| nth_node(x, i)),
        _ => None,
    }
}

fn edit_tree(root: &mut Value, edit: &TreeEdit) {
    let at = match edit {
        TreeEdit::Replace { at, .. }
        | TreeEdit::Remove { at, .. }
        | TreeEdit::Rename { at, .. }
        | TreeEdit::Nest { at, .. }
        | TreeEdit::Retype { at } => *at,
    };
    let mut i = at % count_nodes(root);
    let Some(node) = nth_node(root, &mut i) else { return };
    match edit {
        TreeEdit::Replace { with, .. } => *node = with.clone(),
        TreeEdit::Remove { k, .. } => match node {
            Value::Array(a) if !a.is_empty() => {
                let n = a.len();
                a.remove(k % n);
            }
            Value::Object(o) if !o.is_empty() => {
                let key = o.keys().nth(k % o.len()).cloned().unwrap_or_default();
                o.remove(&key);
            }
            _ => {}
        },
        TreeEdit::Rename { k, key, .. } => {
            if let Value::Object(o) = node
                && !o.is_empty()
            {
                let old = o.keys().nth(k % o.len()).cloned().unwrap_or_default();
                if let Some(v) = o.remove(&old) {
                    o.insert(key.clone(), v);
                }
            }
        }
        TreeEdit::Nest { depth, .. } => {
            for _ in 0..*depth {
                *node = Value::Array(vec![node.take()]);
            }
        }
        TreeEdit::Retype { .. } => {
            let new = match &*node {
                Value::Number(n) => Some(Value::String(n.to_string())),
                Value::String(s) => serde_json::from_str::<serde_json::Number>(s).ok().map(Value::Number),
                _ => None,
            };
            if let Some(new) = new {
                *node = new;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3_000), ..ProptestConfig::default() })]

    /// Real frames with edited JSON trees (values of the wrong type or range, missing or renamed
    /// fields, deep nesting), compact or pretty-printed: `Ok`/`Err`, never a panic, same syntax
    /// verdict as serde_json.
    #[test]
    fn real_frames_with_edited_json_trees_never_panic(
        i in any::<usize>(),
        edits in proptest::collection::vec(tree_edit(), 1..4),
        pretty: bool,
    ) {
        let mut tree: Value = serde_json::from_slice(&real_frame(i)).expect("captured frames are JSON");
        for e in &edits {
            edit_tree(&mut tree, e);
        }
        let bytes = if pretty { serde_json::to_vec_pretty(&tree) } else { serde_json::to_vec(&tree) }
            .expect("serialise");
        let _ = decode(&bytes);
        agrees_with_serde(&bytes)?;
    }

    /// Re-serialising a real frame (keys sorted, whitespace changed) does not change what it decodes to.
    #[test]
    fn reserialised_real_frames_decode_the_same(i in any::<usize>(), pretty: bool) {
        let frame = real_frame(i);
        let tree: Value = serde_json::from_slice(&frame).expect("captured frames are JSON");
        let bytes = if pretty { serde_json::to_vec_pretty(&tree) } else { serde_json::to_vec(&tree) }
            .expect("serialise");
        let (a, b) = (decode(&frame), decode(&bytes));
        match (&a, &b) {
            (Ok(Decoded::BookTicker(x)), Ok(Decoded::BookTicker(y))) => prop_assert_eq!(x, y),
            (Ok(Decoded::AggTrade(x)), Ok(Decoded::AggTrade(y))) => prop_assert_eq!(x, y),
            (Ok(x), Ok(y)) => prop_assert_eq!(std::mem::discriminant(x), std::mem::discriminant(y)),
            _ => prop_assert!(false, "{a:?} vs {b:?} for {}", frame.escape_ascii()),
        }
    }

    /// The number parsers: any bytes give `Some`/`None`; where they accept, `str::parse` agrees.
    #[test]
    fn number_parsers_never_panic_and_agree_with_std(
        s in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "-?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][+-]?[0-9]{0,5})?".prop_map(String::into_bytes),
        ],
    ) {
        use keel_feeds::binance::{parse_decimal, parse_u64};
        if let Some(v) = parse_decimal(&s) {
            let std = std::str::from_utf8(&s).ok().and_then(|t| t.parse::<f64>().ok());
            prop_assert_eq!(Some(v), std, "{}", s.escape_ascii());
            prop_assert!(v.is_finite());
        }
        if let Some(v) = parse_u64(&s) {
            let std = std::str::from_utf8(&s).ok().and_then(|t| t.parse::<u64>().ok());
            prop_assert_eq!(Some(v), std, "{}", s.escape_ascii());
        }
    }
}

// ----- Node notifications: pool event logs and mempool calldata. -----

mod node {
    use alloy::primitives::aliases::{I24, U24, U112, U160};
    use alloy::primitives::{Address, B256, Bytes, I256, LogData, U256};
    use alloy::rpc::types::Log;
    use alloy::sol_types::{SolCall, SolEvent};
    use keel_amm::abi::{ISwapRouter, IUniswapV2Pair, IUniswapV2Router02, IUniswapV3Pool};
    use keel_amm::pool::SwapAmount;
    use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
    use keel_amm::v3::{TickInfo, V3Pool};
    use keel_feeds::node::book::{PoolChange, decode_change};
    use keel_feeds::node::{
        MempoolDecoder, MempoolPool, PendingTx, PendingView, Pool, PoolBook, PoolKind, RouterKind,
        TrackedPool, TxMeta, ViewLimits,
    };
    use proptest::prelude::*;

    use super::{Mutation, apply, cases, mutation};

    const V2_POOL: Address = Address::repeat_byte(0x52);
    const V3_POOL: Address = Address::repeat_byte(0x53);
    const V2_ROUTER: Address = Address::repeat_byte(0x72);
    const V3_ROUTER: Address = Address::repeat_byte(0x73);
    const V4_MANAGER: Address = Address::repeat_byte(0x54);
    const V4_ROUTER: Address = Address::repeat_byte(0x74);
    const TOKEN_A: Address = Address::repeat_byte(0x0a);
    const TOKEN_B: Address = Address::repeat_byte(0x0b);
    const TOKEN_C: Address = Address::repeat_byte(0x0c);
    const V3_FEE: u32 = 3_000;

    fn u256() -> impl Strategy<Value = U256> {
        prop_oneof![
            any::<u64>().prop_map(U256::from),
            any::<[u64; 4]>().prop_map(U256::from_limbs),
            Just(U256::MAX),
            Just(U256::ZERO),
        ]
    }

    fn i256() -> impl Strategy<Value = I256> {
        prop_oneof![
            any::<i64>().prop_map(I256::try_from).prop_map(|r| r.unwrap_or_default()),
            any::<[u64; 4]>().prop_map(|l| I256::from_raw(U256::from_limbs(l))),
            Just(I256::MIN),
            Just(I256::MAX),
        ]
    }

    fn tick() -> impl Strategy<Value = i32> {
        prop_oneof![
            -1_200i32..1_200,
            (-14_787i32..14_787).prop_map(|t| t * 60),
            any::<i32>(),
            -(1 << 23)..(1 << 23)
        ]
    }

    fn i24(t: i32) -> I24 {
        I24::try_from(t).unwrap_or_default()
    }

    /// A valid pool event, with the change `decode_change` must report for it (as `Err(())` when the
    /// event is well-formed but out of range for the book).
    fn valid_event() -> impl Strategy<Value = (PoolKind, LogData, Result<PoolChange, ()>)> {
        let u112 = any::<u128>().prop_map(|x| x & ((1u128 << 112) - 1));
        prop_oneof![
            (u112.clone(), u112).prop_map(|(r0, r1)| {
                let data = IUniswapV2Pair::Sync { reserve0: U112::from(r0), reserve1: U112::from(r1) }
                    .encode_log_data();
                let want = PoolChange::V2 { reserve0: U256::from(r0), reserve1: U256::from(r1) };
                (PoolKind::V2, data, Ok(want))
            }),
            (i256(), i256(), any::<[u64; 3]>(), any::<u128>(), tick()).prop_map(|(a0, a1, sp, liq, t)| {
                let sqrt = U160::from_limbs([sp[0], sp[1], sp[2] & u64::from(u32::MAX)]);
                let tick = i24(t);
                let data = IUniswapV3Pool::Swap {
                    sender: Address::repeat_byte(1),
                    recipient: Address::repeat_byte(2),
                    amount0: a0,
                    amount1: a1,
                    sqrtPriceX96: sqrt,
                    liquidity: liq,
                    tick,
                }
                .encode_log_data();
                let want = PoolChange::V3Swap {
                    sqrt_price_x96: U256::from(sqrt),
                    tick: tick.as_i32(),
                    liquidity: liq,
                };
                (PoolKind::V3, data, Ok(want))
            }),
            (tick(), tick(), any::<u128>(), any::<bool>()).prop_map(|(lo, hi, amount, mint)| {
                let (tick_lower, tick_upper) = (i24(lo), i24(hi));
                let data = if mint {
                    IUniswapV3Pool::Mint {
                        sender: Address::repeat_byte(1),
                        owner: Address::repeat_byte(2),
                        tickLower: tick_lower,
                        tickUpper: tick_upper,
                        amount,
                        amount0: U256::from(7u64),
                        amount1: U256::from(9u64),
                    }
                    .encode_log_data()
                } else {
                    IUniswapV3Pool::Burn {
                        owner: Address::repeat_byte(2),
                        tickLower: tick_lower,
                        tickUpper: tick_upper,
                        amount,
                        amount0: U256::ZERO,
                        amount1: U256::ZERO,
                    }
                    .encode_log_data()
                };
                let want = i128::try_from(amount).map_err(|_| ()).map(|d| PoolChange::V3Position {
                    tick_lower: tick_lower.as_i32(),
                    tick_upper: tick_upper.as_i32(),
                    liquidity_delta: if mint { d } else { -d },
                });
                (PoolKind::V3, data, want)
            }),
        ]
    }

    /// A corruption of an event: its data bytes, or a topic dropped, added or replaced.
    #[derive(Debug, Clone)]
    enum LogMutation {
        Data(Mutation),
        Word { at: usize, word: [u8; 32] },
        DropTopic { at: usize },
        AddTopic(B256),
        SetTopic { at: usize, topic: B256 },
    }

    fn interesting_word() -> impl Strategy<Value = [u8; 32]> {
        prop_oneof![
            any::<[u8; 32]>(),
            Just([0xff; 32]),
            Just([0; 32]),
            any::<u64>().prop_map(|x| U256::from(x).to_be_bytes::<32>()),
            (0u64..512).prop_map(|x| U256::from(x).to_be_bytes::<32>()),
        ]
    }

    fn topic() -> impl Strategy<Value = B256> {
        prop_oneof![
            any::<[u8; 32]>().prop_map(B256::from),
            prop::sample::select(vec![
                IUniswapV2Pair::Sync::SIGNATURE_HASH,
                IUniswapV2Pair::Swap::SIGNATURE_HASH,
                IUniswapV3Pool::Swap::SIGNATURE_HASH,
                IUniswapV3Pool::Mint::SIGNATURE_HASH,
                IUniswapV3Pool::Burn::SIGNATURE_HASH,
            ]),
        ]
    }

    fn log_mutation() -> impl Strategy<Value = LogMutation> {
        prop_oneof![
            mutation().prop_map(LogMutation::Data),
            (any::<usize>(), interesting_word()).prop_map(|(at, word)| LogMutation::Word { at, word }),
            any::<usize>().prop_map(|at| LogMutation::DropTopic { at }),
            topic().prop_map(LogMutation::AddTopic),
            (any::<usize>(), topic()).prop_map(|(at, topic)| LogMutation::SetTopic { at, topic }),
        ]
    }

    fn set_word(bytes: &mut [u8], offset: usize, at: usize, word: &[u8; 32]) {
        let words = bytes.len().saturating_sub(offset) / 32;
        if words > 0 {
            let start = offset + 32 * (at % words);
            bytes[start..start + 32].copy_from_slice(word);
        }
    }

    fn mutate_log(data: &LogData, muts: &[LogMutation]) -> LogData {
        let mut topics = data.topics().to_vec();
        let mut bytes = data.data.to_vec();
        for m in muts {
            match m {
                LogMutation::Data(m) => apply(&mut bytes, m),
                LogMutation::Word { at, word } => set_word(&mut bytes, 0, *at, word),
                LogMutation::DropTopic { at } => {
                    if !topics.is_empty() {
                        let n = topics.len();
                        topics.remove(at % n);
                    }
                }
                LogMutation::AddTopic(t) => topics.push(*t),
                LogMutation::SetTopic { at, topic } => {
                    if !topics.is_empty() {
                        let n = topics.len();
                        topics[at % n] = *topic;
                    }
                }
            }
        }
        LogData::new_unchecked(topics, bytes.into())
    }

    fn log(address: Address, data: LogData, block: u64, index: u64, removed: bool) -> Log {
        Log {
            inner: alloy::primitives::Log { address, data },
            block_hash: Some(B256::repeat_byte(block as u8)),
            block_number: Some(block),
            block_timestamp: None,
            transaction_hash: None,
            transaction_index: Some(0),
            log_index: Some(index),
            removed,
        }
    }

    fn any_log_data() -> impl Strategy<Value = LogData> {
        (proptest::collection::vec(topic(), 0..5), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(t, d)| LogData::new_unchecked(t, d.into()))
    }

    /// A loaded book: a V2 pair and a V3 pool with positions around tick 0.
    fn loaded_book() -> PoolBook {
        let mut book = PoolBook::new(&[
            TrackedPool { address: V2_POOL, kind: PoolKind::V2, fee: 30, tick_spacing: None, pool_key: None },
            TrackedPool {
                address: V3_POOL,
                kind: PoolKind::V3,
                fee: 3000,
                tick_spacing: Some(60),
                pool_key: None,
            },
        ]);
        let l = 10u128.pow(18);
        let v3 = V3Pool::new(
            V3_FEE,
            60,
            get_sqrt_ratio_at_tick(0).expect("tick 0"),
            0,
            2 * l,
            &[
                TickInfo { index: -600, liquidity_net: l as i128 },
                TickInfo { index: -120, liquidity_net: l as i128 },
                TickInfo { index: 120, liquidity_net: -(l as i128) },
                TickInfo { index: 600, liquidity_net: -(l as i128) },
            ],
        )
        .expect("v3 fixture");
        let e18 = U256::from(l);
        book.set_state(
            0,
            Pool::V2 { reserve0: e18 * U256::from(1000u64), reserve1: e18, fee_bps: 30 },
            10,
            0,
        );
        book.set_state(1, Pool::V3(v3), 10, 0);
        book
    }

    /// A log step for a book: which pool (or another address), the event, block advance, index, removed.
    fn book_step() -> impl Strategy<Value = (u8, LogData, u64, u64, bool)> {
        let data = prop_oneof![
            3 => valid_event().prop_map(|(_, d, _)| d),
            2 => (valid_event(), proptest::collection::vec(log_mutation(), 1..4))
                .prop_map(|((_, d, _), m)| mutate_log(&d, &m)),
            1 => any_log_data(),
        ];
        (0u8..3, data, 0u64..3, 0u64..4, prop::bool::weighted(0.05))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

        /// Valid events decode to exactly their fields, for the right pool kind only.
        #[test]
        fn valid_pool_events_decode_exactly((kind, data, want) in valid_event()) {
            let l = log(V3_POOL, data, 11, 0, false);
            let got = decode_change(kind, &l);
            match want {
                Ok(w) => prop_assert_eq!(got.expect("valid event"), Some(w)),
                Err(()) => prop_assert!(got.is_err(), "{got:?}"),
            }
            let other = if kind == PoolKind::V2 { PoolKind::V3 } else { PoolKind::V2 };
            prop_assert!(matches!(decode_change(other, &l), Ok(None)));
        }

        /// Corrupted and random logs: `Ok`/`Err` for either pool kind, never a panic.
        #[test]
        fn corrupted_pool_events_never_panic(
            (_, data, _) in valid_event(),
            muts in proptest::collection::vec(log_mutation(), 1..5),
            random in any_log_data(),
        ) {
            for d in [mutate_log(&data, &muts), random] {
                let l = log(V2_POOL, d, 11, 0, false);
                let _ = decode_change(PoolKind::V2, &l);
                let _ = decode_change(PoolKind::V3, &l);
            }
        }

        /// A loaded book fed a stream of valid, corrupted and random logs (with reorgs) never panics,
        /// and every update it reports is reflected in the pool's block.
        #[test]
        fn pool_book_survives_any_log_stream(steps in proptest::collection::vec(book_step(), 1..24)) {
            let mut book = loaded_book();
            let mut block = 10u64;
            for (pool, data, advance, index, removed) in steps {
                block += advance;
                let address = [V2_POOL, V3_POOL, Address::repeat_byte(0x99)][pool as usize];
                let l = log(address, data, block, index, removed);
                if let Ok(keel_feeds::node::Applied::Updated(u)) = book.apply_log(&l, 1) {
                    prop_assert_eq!(book.get(u.pool).expect("pool").block, u.block);
                }
            }
            book.advance_to(block + 1);
        }
    }

    // Mempool calldata.

    fn decoder() -> MempoolDecoder {
        MempoolDecoder::new(
            &[
                MempoolPool {
                    id: 0,
                    address: V2_POOL,
                    kind: PoolKind::V2,
                    token0: TOKEN_A,
                    token1: TOKEN_B,
                    fee: 0,
                    pool_key: None,
                },
                MempoolPool {
                    id: 1,
                    address: V3_POOL,
                    kind: PoolKind::V3,
                    token0: TOKEN_A,
                    token1: TOKEN_B,
                    fee: V3_FEE,
                    pool_key: None,
                },
                MempoolPool {
                    id: 2,
                    address: V4_MANAGER,
                    kind: PoolKind::V4,
                    token0: TOKEN_A,
                    token1: TOKEN_B,
                    fee: V3_FEE,
                    pool_key: Some(v4_key()),
                },
            ],
            &[
                (V2_ROUTER, RouterKind::V2Router02),
                (V3_ROUTER, RouterKind::SwapRouter),
                (V4_ROUTER, RouterKind::V4Router),
            ],
        )
    }

    fn v4_key() -> keel_amm::v4::PoolKey {
        keel_amm::v4::PoolKey {
            currency0: TOKEN_A,
            currency1: TOKEN_B,
            fee: V3_FEE,
            tick_spacing: 60,
            hooks: Address::ZERO,
        }
    }

    /// `executeActions` with one single-pool swap on the V4 pool (or, `tracked == false`, on
    /// another fee tier), then `SETTLE_ALL` and `TAKE_ALL`.
    fn v4_call(amount: u128, zero_for_one: bool, exact_in: bool, tracked: bool) -> Vec<u8> {
        use alloy::sol_types::SolValue;
        use keel_feeds::node::mempool::abi::{
            IV4Router, V4ExactInSingle, V4ExactOutSingle, V4Plan, V4PoolKey,
        };
        let k = v4_key();
        let fee = if tracked { k.fee } else { 500 };
        let key = V4PoolKey {
            currency0: k.currency0,
            currency1: k.currency1,
            fee: U24::from(fee),
            tickSpacing: I24::try_from(k.tick_spacing).unwrap(),
            hooks: k.hooks,
        };
        let swap: Bytes = if exact_in {
            let p = V4ExactInSingle {
                poolKey: key,
                zeroForOne: zero_for_one,
                amountIn: amount,
                amountOutMinimum: 1,
                hookData: Bytes::new(),
            };
            p.abi_encode().into()
        } else {
            let p = V4ExactOutSingle {
                poolKey: key,
                zeroForOne: zero_for_one,
                amountOut: amount,
                amountInMaximum: u128::MAX,
                hookData: Bytes::new(),
            };
            p.abi_encode().into()
        };
        let settle: Bytes = (TOKEN_A, U256::from(amount)).abi_encode_params().into();
        let plan = V4Plan {
            actions: vec![0x06 + 2 * u8::from(!exact_in), 0x0c, 0x0f].into(),
            params: vec![swap, settle.clone(), settle],
        };
        IV4Router::executeActionsCall { params: plan.abi_encode_params().into() }.abi_encode()
    }

    /// Which swap a valid call must decode to: `(pool, zero_for_one, amount)` of the hop whose
    /// amount the calldata fixes.
    type Want = Option<(u32, bool, SwapAmount)>;

    fn meta(k: u64) -> TxMeta {
        TxMeta { hash: B256::from(U256::from(k)), sender: Address::repeat_byte(8), nonce: k, seen_ns: 0 }
    }

    /// The first route's fixed-amount hop, as [`Want`].
    fn leg(t: &PendingTx) -> Want {
        let r = t.routes.first()?;
        let h = match r.amount? {
            SwapAmount::ExactIn(_) => r.hops.first()?,
            SwapAmount::ExactOut(_) => r.hops.last()?,
        };
        Some((h.pool?, h.zero_for_one(), r.amount?))
    }

    fn pair() -> impl Strategy<Value = (Address, Address)> {
        prop::sample::select(vec![(TOKEN_A, TOKEN_B), (TOKEN_B, TOKEN_A), (TOKEN_A, TOKEN_C)])
    }

    /// A valid router or pool call, its target, and what it must decode to.
    fn valid_call() -> impl Strategy<Value = (Address, Vec<u8>, Want)> {
        let to = Address::repeat_byte(0xee);
        let dl = U256::from(1_700_000_000u64);
        prop_oneof![
            (u256(), u256(), pair(), any::<bool>()).prop_map(move |(amount, min, (a, b), hop)| {
                let path = if hop { vec![a, b, TOKEN_C] } else { vec![a, b] };
                let input = IUniswapV2Router02::swapExactTokensForTokensCall {
                    amountIn: amount,
                    amountOutMin: min,
                    path,
                    to,
                    deadline: dl,
                }
                .abi_encode();
                let want = if b == TOKEN_C { None } else { Some((0, a < b, SwapAmount::ExactIn(amount))) };
                (V2_ROUTER, input, want)
            }),
            (u256(), u256(), pair()).prop_map(move |(amount, max, (a, b))| {
                let input = IUniswapV2Router02::swapTokensForExactTokensCall {
                    amountOut: amount,
                    amountInMax: max,
                    path: vec![TOKEN_C, a, b],
                    to,
                    deadline: dl,
                }
                .abi_encode();
                let want = if b == TOKEN_C { None } else { Some((0, a < b, SwapAmount::ExactOut(amount))) };
                (V2_ROUTER, input, want)
            }),
            (u256(), pair(), prop::sample::select(vec![500u32, V3_FEE]), any::<bool>()).prop_map(
                move |(amount, (a, b), fee, exact_in)| {
                    let input = if exact_in {
                        ISwapRouter::exactInputSingleCall {
                            params: ISwapRouter::ExactInputSingleParams {
                                tokenIn: a,
                                tokenOut: b,
                                fee: U24::from(fee),
                                recipient: to,
                                deadline: dl,
                                amountIn: amount,
                                amountOutMinimum: U256::ZERO,
                                sqrtPriceLimitX96: U160::ZERO,
                            },
                        }
                        .abi_encode()
                    } else {
                        ISwapRouter::exactOutputSingleCall {
                            params: ISwapRouter::ExactOutputSingleParams {
                                tokenIn: a,
                                tokenOut: b,
                                fee: U24::from(fee),
                                recipient: to,
                                deadline: dl,
                                amountOut: amount,
                                amountInMaximum: U256::MAX,
                                sqrtPriceLimitX96: U160::ZERO,
                            },
                        }
                        .abi_encode()
                    };
                    let tracked = b != TOKEN_C && fee == V3_FEE;
                    let amount =
                        if exact_in { SwapAmount::ExactIn(amount) } else { SwapAmount::ExactOut(amount) };
                    let want = tracked.then_some((1, a < b, amount));
                    (V3_ROUTER, input, want)
                },
            ),
            (i256(), any::<bool>()).prop_map(move |(amount, z)| {
                let input = IUniswapV3Pool::swapCall {
                    recipient: to,
                    zeroForOne: z,
                    amountSpecified: amount,
                    sqrtPriceLimitX96: U160::from(4_295_128_740u64),
                    data: Bytes::new(),
                }
                .abi_encode();
                let a = amount.unsigned_abs();
                let amount =
                    if amount.is_negative() { SwapAmount::ExactOut(a) } else { SwapAmount::ExactIn(a) };
                (V3_POOL, input, Some((1, z, amount)))
            }),
            (u256(), u256()).prop_map(move |(o0, o1)| {
                let input =
                    IUniswapV2Pair::swapCall { amount0Out: o0, amount1Out: o1, to, data: Bytes::new() }
                        .abi_encode();
                let want = if !o1.is_zero() {
                    Some((0, true, SwapAmount::ExactOut(o1)))
                } else {
                    Some((0, false, SwapAmount::ExactOut(o0)))
                };
                (V2_POOL, input, want)
            }),
            (any::<u128>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
                |(amount, z, exact_in, tracked)| {
                    let input = v4_call(amount, z, exact_in, tracked);
                    let a = U256::from(amount);
                    let a = if exact_in { SwapAmount::ExactIn(a) } else { SwapAmount::ExactOut(a) };
                    // 0 is OPEN_DELTA: the amount is decided at execution.
                    let want = (tracked && amount != 0).then_some((2, z, a));
                    (V4_ROUTER, input, want)
                }
            ),
        ]
    }

    #[derive(Debug, Clone)]
    enum CallMutation {
        Byte(Mutation),
        Word { at: usize, word: [u8; 32] },
    }

    fn call_mutation() -> impl Strategy<Value = CallMutation> {
        prop_oneof![
            mutation().prop_map(CallMutation::Byte),
            (any::<usize>(), interesting_word()).prop_map(|(at, word)| CallMutation::Word { at, word }),
        ]
    }

    fn mutate_call(input: &mut Vec<u8>, muts: &[CallMutation]) {
        for m in muts {
            match m {
                CallMutation::Byte(m) => apply(input, m),
                CallMutation::Word { at, word } => set_word(input, 4, *at, word),
            }
        }
    }

    fn target() -> impl Strategy<Value = Address> {
        prop::sample::select(vec![
            V2_ROUTER,
            V3_ROUTER,
            V4_ROUTER,
            V2_POOL,
            V3_POOL,
            Address::repeat_byte(0x99),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

        /// Valid calls decode to the swap they make (or to nothing on an untracked pool).
        #[test]
        fn valid_calls_decode_exactly((to, input, want) in valid_call()) {
            let d = decoder();
            let got = d.decode(to, &input, meta(7));
            prop_assert_eq!(got.clone().ok().flatten().and_then(|t| leg(&t)), want);
            prop_assert!(got.is_ok());
        }

        /// Corrupted and random calldata to any target never panics the decoder, and whatever it
        /// decodes replays on the pools' states without a panic.
        #[test]
        fn corrupted_calls_never_panic_and_replay(
            calls in proptest::collection::vec(
                prop_oneof![
                    (valid_call(), proptest::collection::vec(call_mutation(), 0..4), target())
                        .prop_map(|((to, mut input, _), m, other)| {
                            mutate_call(&mut input, &m);
                            (if m.len() % 2 == 1 { other } else { to }, input)
                        }),
                    (target(), proptest::collection::vec(any::<u8>(), 0..400)),
                ],
                1..8,
            ),
        ) {
            let d = decoder();
            let book = loaded_book();
            let mut view = PendingView::new(ViewLimits::default());
            for (k, (to, input)) in calls.iter().enumerate() {
                if let Ok(Some(tx)) = d.decode(*to, input, meta(k as u64)) {
                    for h in tx.routes.iter().flat_map(|r| &r.hops) {
                        // The decoder's three pools; the book holds only the first two, so a V4
                        // hop replays as an unloaded pool (the route stops there).
                        prop_assert!(h.pool.is_none_or(|p| p < 3));
                    }
                    view.add(tx);
                }
            }
            for pool in 0..2 {
                let _ = view.pending_volume(pool);
                prop_assert!(view.pool_after(&book, pool).is_some());
            }
        }
    }
}

// ----- A million mutated real frames (release, `#[ignore]`d). -----

/// A small deterministic generator (SplitMix64), so that a failing case can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn mutation(&mut self) -> Mutation {
        const INTERESTING: &[u8] = b"{}[]\":,\\-.0123456789eE+ tfnu\x00\x1f\xff";
        let at = self.next() as usize;
        let byte = if self.next().is_multiple_of(4) {
            self.next() as u8
        } else {
            INTERESTING[self.below(INTERESTING.len())]
        };
        match self.below(6) {
            0 => Mutation::Flip { at, bit: self.below(8) as u8 },
            1 => Mutation::Set { at, byte },
            2 => Mutation::Insert { at, byte },
            3 => Mutation::Delete { at, len: 1 + self.below(7) },
            4 => Mutation::Truncate { at },
            _ => Mutation::Duplicate { at, len: 1 + self.below(15) },
        }
    }

    /// Changes, inserts or deletes a digit next to a digit, or inserts or deletes a dot there.
    fn digit_edit(&mut self, frame: &mut Vec<u8>) {
        let digits: Vec<usize> = (0..frame.len()).filter(|&i| frame[i].is_ascii_digit()).collect();
        if digits.is_empty() {
            return;
        }
        let at = digits[self.below(digits.len())];
        let digit = b'0' + self.below(10) as u8;
        match self.below(6) {
            0 | 1 => frame[at] = digit,
            2 => frame.insert(at, digit),
            3 => {
                frame.remove(at);
            }
            4 => frame.insert(at, b'.'),
            _ => {
                if let Some(dot) = frame[at..].iter().take(20).position(|&b| b == b'.') {
                    frame.remove(at + dot);
                }
            }
        }
    }
}

/// The decimal field `v` of serde_json's view agrees with ours: a string parses to the same bits; a
/// bare number (which we also accept) to the same value up to serde_json's own rounding.
fn same_decimal(ours: f64, v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => s.parse::<f64>().is_ok_and(|x| x.to_bits() == ours.to_bits()),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| (x - ours).abs() <= x.abs() * 1e-15),
        _ => false,
    }
}

/// A required integer field.
fn same_int(ours: u64, v: Option<&Value>) -> bool {
    v.and_then(Value::as_u64) == Some(ours)
}

/// An optional integer field: absent reads as 0.
fn same_opt_int(ours: u64, v: Option<&Value>) -> bool {
    match v {
        None => ours == 0,
        Some(v) => v.as_u64() == Some(ours),
    }
}

fn same_str(ours: &[u8], v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| s.as_bytes() == ours)
}

/// Any `Ok` answer is what serde_json's parse of the same bytes says, when serde_json parses them.
fn consistent_with_serde(d: &Decoded<'_>, frame: &[u8]) -> Result<(), String> {
    let Ok(v) = serde_json::from_slice::<Value>(frame) else { return Ok(()) };
    let Some(top) = v.as_object() else { return Err(format!("{d:?} from a non-object")) };
    let (data, stream) = match top.get("data") {
        Some(Value::Object(data)) => (data, top.get("stream")),
        Some(_) => return Err(format!("{d:?} with a non-object `data`")),
        None => (top, None),
    };
    let f = |k: &str| data.get(k);
    let ok = match d {
        Decoded::BookTicker(t) => {
            matches!(f("e"), None | Some(Value::String(_)))
                && f("e").is_none_or(|e| e == "bookTicker")
                && same_str(t.symbol.as_bytes(), f("s"))
                && same_int(t.update_id, f("u"))
                && same_decimal(t.bid, f("b"))
                && same_decimal(t.bid_qty, f("B"))
                && same_decimal(t.ask, f("a"))
                && same_decimal(t.ask_qty, f("A"))
                && same_opt_int(t.event_ms, f("E"))
                && same_opt_int(t.transact_ms, f("T"))
        }
        Decoded::AggTrade(t) => {
            f("e").is_some_and(|e| e == "aggTrade")
                && same_str(t.symbol.as_bytes(), f("s"))
                && same_int(t.agg_id, f("a"))
                && same_decimal(t.price, f("p"))
                && same_decimal(t.qty, f("q"))
                && same_opt_int(t.first_trade_id, f("f"))
                && same_opt_int(t.last_trade_id, f("l"))
                && same_int(t.trade_ms, f("T"))
                && same_opt_int(t.event_ms, f("E"))
                && f("m").map_or(Some(false), Value::as_bool) == Some(t.buyer_is_maker)
        }
        Decoded::DepthUpdate(u) => {
            let side = |levels: keel_feeds::binance::Levels<'_>, v: Option<&Value>| {
                let Some(want) = v.and_then(Value::as_array) else { return false };
                levels.len() == want.len()
                    && levels.iter().zip(want).all(|((p, q), w)| {
                        w.as_array().is_some_and(|w| {
                            w.len() == 2 && same_decimal(p, w.first()) && same_decimal(q, w.get(1))
                        })
                    })
            };
            f("e").is_some_and(|e| e == "depthUpdate")
                && same_str(u.symbol.as_bytes(), f("s"))
                && same_int(u.first_id, f("U"))
                && same_int(u.last_id, f("u"))
                && same_opt_int(u.prev_last_id, f("pu"))
                && same_opt_int(u.event_ms, f("E"))
                && same_opt_int(u.transact_ms, f("T"))
                && side(u.bids, f("b"))
                && side(u.asks, f("a"))
        }
        Decoded::Kline(k) => {
            let kv = f("k").and_then(Value::as_object);
            let g = |key: &str| kv.and_then(|kv| kv.get(key));
            f("e").is_some_and(|e| e == "kline")
                && same_str(k.symbol.as_bytes(), f("s"))
                && same_str(k.interval, g("i"))
                && same_int(k.open_ms, g("t"))
                && same_int(k.close_ms, g("T"))
                && same_decimal(k.open, g("o"))
                && same_decimal(k.high, g("h"))
                && same_decimal(k.low, g("l"))
                && same_decimal(k.close, g("c"))
                && same_decimal(k.volume, g("v"))
                && same_opt_int(k.trades, g("n"))
                && g("x").and_then(Value::as_bool) == Some(k.is_closed)
                && same_opt_int(k.event_ms, f("E"))
        }
        Decoded::ControlResponse { id, error } => {
            top.get("id").and_then(Value::as_u64) == *id
                && match error {
                    None => top.get("error").is_none_or(Value::is_null),
                    Some(raw) => serde_json::from_slice::<Value>(raw).ok().as_ref() == top.get("error"),
                }
        }
        Decoded::Other { stream: s, event } => {
            (stream.is_none() && s.is_empty() || same_str(s, stream))
                && (f("e").is_none() && event.is_empty() || same_str(event, f("e")))
        }
    };
    if ok { Ok(()) } else { Err(format!("{d:?} but serde_json reads {v}")) }
}

/// A million (`KEEL_FUZZ_ITERS`) random mutations of real frames, three quarters of them `bookTicker`
/// frames (a third of those with their keys reordered):
/// the decoder never panics, answers exactly what the old decoder answers, and any `Ok` agrees
/// with serde_json's reading of the same bytes. Seeded by `KEEL_FUZZ_SEED` (default 1).
///
/// `cargo test --release --test it -- --ignored million`
#[test]
#[ignore = "a million cases: run in release with --ignored"]
fn a_million_mutated_real_frames_never_panic_and_agree() {
    let iters: u64 = std::env::var("KEEL_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let seed: u64 = std::env::var("KEEL_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let all: Vec<&[u8]> = captures().iter().flat_map(|c| c.frames.iter().map(Vec::as_slice)).collect();
    let tickers: Vec<&[u8]> =
        all.iter().copied().filter(|f| f.windows(12).any(|w| w == b"@bookTicker\"")).collect();
    // The bookTicker frames again with their keys sorted (serde_json's map order), for the fast
    // path's second pass.
    let resorted: Vec<Vec<u8>> = tickers
        .iter()
        .map(|f| serde_json::to_vec(&serde_json::from_slice::<Value>(f).expect("JSON")).expect("JSON"))
        .collect();
    let resorted: Vec<&[u8]> = resorted.iter().map(Vec::as_slice).collect();
    let mut rng = Rng(seed);
    let (mut ok, mut fast_shape) = (0u64, 0u64);
    for case in 0..iters {
        let pool = match rng.below(4) {
            0 | 1 => &tickers,
            2 => &resorted,
            _ => &all,
        };
        let mut frame = pool[rng.below(pool.len())].to_vec();
        if rng.next().is_multiple_of(2) {
            // Byte-level damage: mostly invalid JSON, some of it still valid.
            for _ in 0..1 + rng.below(5) {
                let m = rng.mutation();
                apply(&mut frame, &m);
            }
        } else {
            // Number edits that keep the frame valid more often: other values, lengths and dots.
            for _ in 0..1 + rng.below(4) {
                rng.digit_edit(&mut frame);
            }
        }
        let ours = std::panic::catch_unwind(|| format!("{:?}", decode(&frame)))
            .unwrap_or_else(|_| panic!("case {case} (seed {seed}) panicked: {}", frame.escape_ascii()));
        let theirs = format!("{:?}", crate::reference::decode(&frame));
        assert_eq!(ours, theirs, "case {case} (seed {seed}): {}", frame.escape_ascii());
        if let Ok(d) = decode(&frame) {
            ok += 1;
            fast_shape += u64::from(matches!(d, Decoded::BookTicker(_)));
            if let Err(e) = consistent_with_serde(&d, &frame) {
                panic!("case {case} (seed {seed}): {e}: {}", frame.escape_ascii());
            }
        }
    }
    // The mutations must leave enough frames valid for the agreement checks to mean something.
    assert!(ok > iters / 4 && fast_shape > iters / 8, "{ok} Ok, {fast_shape} bookTicker of {iters}");
    eprintln!("{iters} cases: {ok} decoded Ok ({fast_shape} bookTicker), all agreeing");
}
