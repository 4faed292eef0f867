//! The replay settles a rebalance when the recorded run's router stage did: at the recorded
//! stamp of the receipt read that settled it, not where the record sits in the file. A synthetic
//! recording: a portfolio fires, its bundle lands at the next head, and the receipt read is
//! written after a later frame (its thread took it late) but stamped when it was read.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256};
use keel_engine::chain::{ChainUpdate, ReceiptInfo};
use keel_engine::config::{EngineConfig, PortfolioConfig, TokenConfig};
use keel_engine::event::{Balance, BlockHeader, Event};
use keel_engine::{PortfolioId, TokenId};
use keel_recording::{SOURCE_ENGINE, SOURCE_ROUTER};
use keel_router::signer::Signer;

use super::{ReplayOptions, open_recording, replay};
use crate::pipeline::PipelineSpec;
use crate::record::{RecordSpec, Recording};

const MS: u64 = 1_000_000;
const WETH: Address = Address::repeat_byte(0x01);
const USDC: Address = Address::repeat_byte(0x02);
const ROUTER: Address = Address::repeat_byte(0x03);
const POOL: Address = Address::repeat_byte(0x05);

/// WETH priced by `ETHUSDT`, USDC at 1.0, one V2 pool between them, one 50/50 portfolio with a
/// 1% band and a one-second cooldown.
fn spec(account: Address) -> PipelineSpec {
    let tokens: Vec<TokenConfig> = serde_json::from_value(serde_json::json!([
        { "symbol": "WETH", "address": WETH, "decimals": 18, "price": { "symbol": "ETHUSDT" } },
        { "symbol": "USDC", "address": USDC, "decimals": 6, "price": { "fixed": 1.0 } },
    ]))
    .unwrap();
    let portfolio: PortfolioConfig = serde_json::from_value(serde_json::json!({
        "name": "p",
        "account": account,
        "targets": { "WETH": 0.5, "USDC": 0.5 },
        "triggers": [{ "type": "drift", "abs_band": 0.01 }],
        "cooldown_secs": 1.0,
    }))
    .unwrap();
    PipelineSpec {
        engine: EngineConfig::default(),
        tokens,
        portfolios: vec![portfolio],
        router: serde_json::from_value(serde_json::json!({ "chain_id": 31337, "max_pool_deviation": 0.5 }))
            .unwrap(),
        dexes: serde_json::from_value(
            serde_json::json!([{ "name": "v2", "kind": "uniswap_v2", "router": ROUTER }]),
        )
        .unwrap(),
        pools: serde_json::from_value(serde_json::json!([{
            "name": "weth-usdc", "dex": "v2", "address": POOL, "token0": "WETH", "token1": "USDC", "fee": 30
        }]))
        .unwrap(),
        relays: Vec::new(),
        reputation: Signer::dev(9).unwrap(),
        accounts: vec![Signer::dev(6).unwrap()],
        binance: keel_feeds::ws::BinanceFeedConfig::new("ws://127.0.0.1:1", ["ETHUSDT"]),
        rpc_url: "http://127.0.0.1:1".into(),
        poll_ms: 50,
        node_ws_url: None,
        mempool: Default::default(),
        native_symbol: Some("WETH".into()),
        sample_every: std::time::Duration::from_millis(200),
        safety: Default::default(),
        journal: None,
        record: None,
        predictors: Vec::new(),
        registry: None,
    }
}

fn frame(price: f64) -> Vec<u8> {
    format!(r#"{{"u":1,"s":"ETHUSDT","b":"{:.2}","B":"1","a":"{:.2}","A":"1"}}"#, price - 0.05, price + 0.05)
        .into_bytes()
}

fn head(number: u64, at: u64) -> BlockHeader {
    BlockHeader { number, timestamp: 1_000 + 12 * number, base_fee: 1_000_000_000, recv_ns: at }
}

/// Records the run described in the module docs, the receipt read stamped `receipts_read_at`
/// (written after a frame at 260 ms), and replays it; the receive times of the intents' events.
fn fired_at(receipts_read_at: u64) -> Vec<u64> {
    let me = Signer::dev(6).unwrap().address();
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("rec");
    let spec_ = spec(me);
    let rec = Recording::start(
        &RecordSpec {
            dir: rec_dir.clone(),
            max_file_bytes: 1 << 20,
            config_toml: String::new(),
            metadata_json: "{}".into(),
        },
        0,
    )
    .unwrap();
    let r = rec.recorder();
    let balance = |token: u16, amount: U256, block: u64, at: u64| {
        Event::Balance(Balance {
            portfolio: PortfolioId(0),
            token: TokenId(token),
            amount,
            block,
            recv_ns: at,
        })
    };
    let e18 = U256::from(10u64).pow(U256::from(18u8));
    // Block 1: the pool at 3000 USDC per WETH, the account's nonce, allowances and holdings
    // (10 WETH and 30,000 USDC: on target at 3000).
    let (reserve0, reserve1) = (U256::from(1_000u64) * e18, U256::from(3_000_000_000_000u64));
    r.chain_update(SOURCE_ROUTER, MS, &ChainUpdate::polled_v2_reserves(0, POOL, reserve0, reserve1, 1));
    r.chain_update(SOURCE_ROUTER, MS, &ChainUpdate::Nonce { account: me, nonce: 0, block: 1 });
    for token in [WETH, USDC] {
        let grant = ChainUpdate::Allowance { owner: me, token, spender: ROUTER, amount: U256::MAX };
        r.chain_update(SOURCE_ROUTER, MS, &grant);
    }
    r.engine_event(SOURCE_ENGINE, 2 * MS, &Event::Block(head(1, 2 * MS)));
    r.chain_update(SOURCE_ROUTER, 2 * MS, &ChainUpdate::Head(head(1, 2 * MS)));
    r.engine_event(SOURCE_ENGINE, 3 * MS, &balance(0, U256::from(10u64) * e18, 1, 3 * MS));
    r.engine_event(SOURCE_ENGINE, 3 * MS, &balance(1, U256::from(30_000_000_000u64), 1, 3 * MS));
    r.exchange_frame(10 * MS, &frame(3000.0));
    // ETH rises: the portfolio sells WETH; its bundle targets block 2.
    r.exchange_frame(100 * MS, &frame(3300.0));
    // Block 2 (it lands), the balances after it, a frame, then the receipt read, taken late.
    r.engine_event(SOURCE_ENGINE, 200 * MS, &Event::Block(head(2, 200 * MS)));
    r.chain_update(SOURCE_ROUTER, 200 * MS, &ChainUpdate::Nonce { account: me, nonce: 0, block: 2 });
    r.chain_update(SOURCE_ROUTER, 200 * MS, &ChainUpdate::Head(head(2, 200 * MS)));
    r.engine_event(SOURCE_ENGINE, 205 * MS, &balance(0, U256::ZERO, 2, 205 * MS));
    r.engine_event(SOURCE_ENGINE, 205 * MS, &balance(1, U256::ZERO, 2, 205 * MS));
    r.exchange_frame(260 * MS, &frame(3300.0));
    r.receipts(
        receipts_read_at,
        1,
        &[ReceiptInfo { hash: Default::default(), block: 2, gas_used: 1, success: true }],
    );
    // ETH rises again, after the cooldown of a rebalance settled at 210 ms but before that of
    // one settled at 260 ms; then once more, after both.
    r.exchange_frame(1_230 * MS, &frame(3700.0));
    r.exchange_frame(1_300 * MS, &frame(3700.0));
    r.exchange_frame(1_400 * MS, &frame(3700.0));
    rec.finish();

    let mut reader = open_recording(&rec_dir).unwrap();
    let out = replay(&mut reader, &spec_, ReplayOptions { latency_ns: MS, journal: None }, |_| {}).unwrap();
    assert_eq!(out.stats.bundles_included, 1, "{:?}", out.stats);
    let landed: BTreeMap<u64, u64> = out
        .report
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o.status, keel_engine::event::OutcomeStatus::Landed { .. }))
        .map(|(_, o)| (o.intent, o.at_ns))
        .collect();
    assert_eq!(
        landed.get(&1),
        Some(&receipts_read_at),
        "settled at the read's stamp: {landed:?} {:?} {:?}",
        out.report.outcomes,
        out.report.exec
    );
    out.report.engine.intents.iter().map(|i| i.event_recv_ns).collect()
}

#[test]
fn a_receipt_read_taken_late_settles_the_rebalance_when_it_was_read() {
    // Read at 210 ms: the cooldown ends at 1.21 s, and the frame at 1.23 s fires.
    assert_eq!(fired_at(210 * MS), [100 * MS, 1_230 * MS]);
    // Read at 260 ms (as the replay used to settle it: where the record sits): the frame at
    // 1.23 s is inside the cooldown and the one at 1.3 s fires.
    assert_eq!(fired_at(260 * MS), [100 * MS, 1_300 * MS]);
}
