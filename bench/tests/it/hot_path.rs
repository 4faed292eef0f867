//! The hot path, frame bytes to request bytes, under a counting allocator: a Binance `bookTicker`
//! frame decoded ([`keel_feeds::binance::decode`]), mapped to a quote, processed by the engine
//! and, when it fires, routed, signed and encoded into the signed `eth_sendBundle` body by the
//! executor ([`keel_router::exec::Executor::on_intent`]) — on one thread, as `keel run`'s stages
//! run it.
//!
//! Frames that fire nothing allocate nothing. A frame that fires allocates the same — calls and
//! bytes — whatever the size of the pools it routes on: with a V3 pool of 10 initialized ticks as
//! with one of 2,002, after the pool has moved since the last plan. The planning copy of a pool
//! that moved is brought back in step in place (`clone_from` reuses its buffers), so no pool (tick
//! table included) is cloned per intent.

use std::sync::Arc;

use alloy::primitives::{Address, U256};
use keel_amm::pool::{Pool, PoolChange, PoolEntry, PoolMeta, PoolUpdate};
use keel_amm::v3::{TickInfo, V3Pool, sqrt_price_math::Q96};
use keel_engine::chain::{ChainUpdate, PoolSource};
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::{Balance, BlockHeader};
use keel_engine::{Engine, Event, ManualClock, PortfolioId, TokenId};
use keel_feeds::binance::{InstrumentTable, Mapped, decode, map_decoded};
use keel_router::config::{DexKind, RouterConfig};
use keel_router::exec::{Action, ExecToken, Executor, PoolVenue};
use keel_router::signer::Signer;

use crate::allocations;

const TKA: Address = Address::repeat_byte(0x0a);
const TKB: Address = Address::repeat_byte(0x0b);
const SEC: u64 = 1_000_000_000;
const E18: u128 = 1_000_000_000_000_000_000;

/// The accounts of the two portfolios.
fn account(k: u32) -> Signer {
    Signer::dev(4 + k as usize).expect("dev key")
}

/// Two 50/50 TKA/TKB portfolios (TKA priced by the exchange, TKB at 1.0), with bands of 5 and 10
/// points, holding 1,000 of each.
fn engine(clock: Arc<ManualClock>) -> Engine {
    let token =
        |symbol: &str, address, price| TokenConfig { symbol: symbol.into(), address, decimals: 18, price };
    let tokens = [
        token("TKA", TKA, PriceSource::Instrument { symbol: "TKAUSDT".into() }),
        token("TKB", TKB, PriceSource::Fixed { fixed: 1.0 }),
    ];
    let portfolio = |k: u32, band| PortfolioConfig {
        name: format!("p{k}"),
        account: account(k).address(),
        targets: [("TKA".to_string(), 0.5), ("TKB".to_string(), 0.5)].into_iter().collect(),
        triggers: vec![TriggerConfig::Drift { abs_band: Some(band), rel_band: None }],
        mode: PlanMode::ToTarget,
        cooldown_secs: 1.0,
        min_trade_notional: 1.0,
        cost: Default::default(),
    };
    let portfolios = [portfolio(0, 0.05), portfolio(1, 0.10)];
    let mut e = Engine::new(EngineConfig::default(), &tokens, &portfolios, Box::new(clock)).unwrap();
    let mut out = Vec::new();
    for (p, t) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let amount = U256::from(1_000 * E18);
        e.process(
            &Event::Balance(Balance {
                portfolio: PortfolioId(p),
                token: TokenId(t),
                amount,
                block: 1,
                recv_ns: 0,
            }),
            &mut out,
        );
    }
    assert!(out.is_empty());
    e
}

/// An executor routing TKA/TKB over a V2 pair and a V3 pool whose `positions` narrow positions
/// (beside a full-range one) put `2 × positions` initialized ticks in its table; both at price 1,
/// read at block 1 with the account's nonce.
fn executor(positions: i32) -> Executor {
    let cfg = RouterConfig {
        // The frame that fires moves the exchange 30% off the pools: the guard would refuse it.
        max_pool_deviation: 0.5,
        max_pool_age_blocks: u64::MAX,
        ..RouterConfig::for_chain(31337)
    };

    let tokens = vec![
        ExecToken { symbol: "TKA".into(), address: TKA, decimals: 18 },
        ExecToken { symbol: "TKB".into(), address: TKB, decimals: 18 },
    ];
    let meta = |id: &str, b: u8, gas, venue| PoolMeta {
        id: id.into(),
        address: Address::repeat_byte(b),
        token0: TKA,
        token1: TKB,
        gas,
        venue,
    };
    let v2 = PoolEntry::new(
        meta("v2", 0x20, 120_000, 0),
        Pool::V2 { reserve0: U256::ZERO, reserve1: U256::ZERO, fee_bps: 30 },
    )
    .unwrap();
    let mut ticks = vec![TickInfo { index: -887_220, liquidity_net: 10i128.pow(22) }];
    for k in 1..=positions {
        ticks.push(TickInfo { index: -60 * k, liquidity_net: 10i128.pow(19) });
        ticks.push(TickInfo { index: 60 * k, liquidity_net: -(10i128.pow(19)) });
    }
    ticks.push(TickInfo { index: 887_220, liquidity_net: -(10i128.pow(22)) });
    ticks.sort_by_key(|t| t.index);
    let liquidity = 10u128.pow(22) + positions as u128 * 10u128.pow(19);
    let state = V3Pool::new(3000, 60, Q96, 0, liquidity, &ticks).unwrap();
    let empty = V3Pool::new(3000, 60, Q96, 0, 0, &[]).unwrap();
    let v3 = PoolEntry::new(meta("v3", 0x30, 150_000, 1), Pool::V3(empty)).unwrap();
    let venue = |kind, b| PoolVenue {
        kind,
        router: Address::repeat_byte(b),
        pool_id: None,
        via: Default::default(),
        curve_indices: Default::default(),
    };
    let mut ex = Executor::new(
        cfg,
        tokens,
        vec![v2, v3],
        vec![venue(DexKind::UniswapV2, 0x72), venue(DexKind::UniswapV3, 0x73)],
        vec![account(0), account(1)],
        Signer::dev(9).unwrap(),
        None,
    );
    let mut out = Vec::new();
    let head = BlockHeader { number: 1, timestamp: 1_700_000_000, base_fee: 1_000_000_000, recv_ns: 1 };
    let reserve = U256::from(10_000 * E18);
    for u in [
        ChainUpdate::polled_v2_reserves(0, Address::repeat_byte(0x20), reserve, reserve, 1),
        ChainUpdate::Pool {
            update: PoolUpdate {
                pool: 1,
                address: Address::repeat_byte(0x30),
                block: 1,
                change: PoolChange::Snapshot(Box::new(Pool::V3(state))),
                recv_ns: 1,
            },
            source: PoolSource::Logs,
        },
        ChainUpdate::Nonce { account: account(0).address(), nonce: 0, block: 1 },
        ChainUpdate::Nonce { account: account(1).address(), nonce: 0, block: 1 },
        ChainUpdate::Head(head),
    ] {
        ex.on_chain(u, 1, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    ex
}

fn frame(mid: f64) -> Vec<u8> {
    format!(
        r#"{{"u":7,"s":"TKAUSDT","b":"{:.5}","B":"10.0","a":"{:.5}","A":"10.0"}}"#,
        mid - 0.00005,
        mid + 0.00005
    )
    .into_bytes()
}

/// Frame bytes → quote → engine → (when it fires) executor → actions; the number of submissions.
fn hot_path(
    bytes: &[u8],
    table: &InstrumentTable,
    engine: &mut Engine,
    ex: &mut Executor,
    intents: &mut Vec<keel_engine::intent::RebalanceIntent>,
    actions: &mut Vec<Action>,
    now: u64,
) -> usize {
    let Ok(decoded) = decode(bytes) else { panic!("a valid frame") };
    let Mapped::Event(event) = map_decoded(&decoded, table, now) else { panic!("a known symbol") };
    engine.process(&event, intents);
    for intent in intents.drain(..) {
        ex.on_intent(&intent, now, actions);
    }
    actions.iter().filter(|a| matches!(a, Action::Submit { .. })).count()
}

/// (calls, bytes) the firing frame allocated, after `quiet` frames that fired nothing and
/// allocated nothing.
fn measure(positions: i32, quiet: usize) -> (u64, u64) {
    let clock = Arc::new(ManualClock::new(SEC));
    let mut engine = engine(clock.clone());
    let mut ex = executor(positions);
    let table = InstrumentTable::new(["TKAUSDT"]).unwrap();
    let (mut intents, mut actions) = (Vec::with_capacity(8), Vec::with_capacity(64));
    let mut now = SEC;
    // Warm up: first prices, first calls.
    for k in 0..4 {
        now += SEC / 100;
        clock.set(now);
        let bytes = frame(1.0 + 0.0001 * f64::from(k));
        hot_path(&bytes, &table, &mut engine, &mut ex, &mut intents, &mut actions, now);
    }
    assert!(actions.is_empty(), "fired while on target: {actions:?}");
    let frames: Vec<Vec<u8>> = (0..quiet).map(|k| frame(1.0 + 0.001 * ((k % 7) as f64 - 3.0))).collect();
    for bytes in &frames {
        now += SEC / 100;
        clock.set(now);
        let (calls, bytes_allocated) = allocations(|| {
            let sent = hot_path(bytes, &table, &mut engine, &mut ex, &mut intents, &mut actions, now);
            assert_eq!(sent, 0);
        });
        assert_eq!((calls, bytes_allocated), (0, 0), "a frame that fires nothing allocated");
    }
    // TKA 30% up: the first portfolio's weight leaves its band; its rebalance is routed, signed
    // and encoded (the path's first firing: the planning copy takes the pools' sizes).
    let fire = |mid, now, engine: &mut Engine, ex: &mut Executor, actions: &mut Vec<Action>| {
        let bytes = frame(mid);
        let mut intents = Vec::with_capacity(8);
        actions.clear();
        let mut sent = 0;
        let counted = allocations(|| sent = hot_path(&bytes, &table, engine, ex, &mut intents, actions, now));
        assert_eq!(sent, 1, "the frame fired one signed bundle: {actions:?}");
        let Some(Action::Submit { request, .. }) =
            actions.iter().find(|a| matches!(a, Action::Submit { .. }))
        else {
            unreachable!()
        };
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["method"], "eth_sendBundle");
        counted
    };
    now += SEC / 100;
    clock.set(now);
    fire(1.3, now, &mut engine, &mut ex, &mut actions);
    // The next block: the V3 pool moved (another trader's swap), the batch is closed.
    let mut out = Vec::new();
    let moved = PoolChange::V3Swap {
        sqrt_price_x96: Q96 + U256::from(1u64 << 60),
        tick: 0,
        liquidity: 10u128.pow(22),
    };
    let head = BlockHeader { number: 2, timestamp: 1_700_000_012, base_fee: 1_000_000_000, recv_ns: 2 };
    for u in [
        ChainUpdate::Pool {
            update: PoolUpdate {
                pool: 1,
                address: Address::repeat_byte(0x30),
                block: 2,
                change: moved,
                recv_ns: 2,
            },
            source: PoolSource::Logs,
        },
        ChainUpdate::Head(head),
    ] {
        ex.on_chain(u, now, &mut out);
    }
    // TKA 60% up: the second portfolio fires, routed on the pools as they moved: measured.
    now += SEC / 100;
    clock.set(now);
    fire(1.6, now, &mut engine, &mut ex, &mut actions)
}

#[test]
fn frames_that_fire_nothing_allocate_nothing_and_one_that_fires_allocates_the_same_whatever_the_pools() {
    let small = measure(4, 500);
    let large = measure(1_000, 50);
    eprintln!(
        "firing frame → signed bundle body: {} allocations, {} bytes (10 ticks); {} allocations, {} bytes (2,002 ticks)",
        small.0, small.1, large.0, large.1
    );
    assert_eq!(small, large, "what a firing frame allocates depends on the pool's tick table");
}
