//! The hot path allocates nothing: quotes that fire no trigger (including those whose trigger is
//! held back by an in-flight intent, and those that take a volatility sample) and timer ticks that
//! fire nothing allocate zero bytes, and so does the candidate index behind them with thousands of
//! portfolios (boxes left and recomputed, dirty lists walked, heaps compacted in place), and so do
//! the balances and outcomes that recompute boxes. A counting global allocator measures the test
//! thread only.
//!
//! This is its own test binary because a global allocator is per binary.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

use std::sync::Arc;

use alloy_primitives::{Address, U256};
use keel_amm::alloc_count::{CountingAllocator, allocations as counted};
use keel_engine::config::{
    CppiConfig, EngineConfig, MomentumConfig, PlanMode, PortfolioConfig, PriceSource, TargetsConfig,
    TokenConfig, TriggerConfig,
};
use keel_engine::event::{Balance, Outcome, OutcomeStatus, Quote};
use keel_engine::{Engine, Event, InstrumentId, ManualClock, PortfolioId, TokenId};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns (bytes, calls) allocated on this thread meanwhile.
fn allocations(f: impl FnOnce()) -> (u64, u64) {
    let ((), a) = counted(f);
    (a.bytes, a.calls)
}

const SEC: u64 = 1_000_000_000;

fn token(symbol: &str, b: u8, decimals: u8, price: PriceSource) -> TokenConfig {
    TokenConfig { symbol: symbol.into(), address: Address::repeat_byte(b), decimals, price }
}

fn portfolio(name: &str, targets: &[(&str, f64)], triggers: Vec<TriggerConfig>) -> PortfolioConfig {
    PortfolioConfig {
        name: name.into(),
        // One account per portfolio (two on one account is a config error).
        account: Address::from_slice(&alloy_primitives::keccak256(name.as_bytes())[12..]),
        targets: targets.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
        triggers,
        mode: PlanMode::ToTarget,
        cooldown_secs: 10.0,
        min_trade_notional: 10.0,
        cost: Default::default(),
    }
}

fn quote(instrument: u16, mid: f64, recv_ns: u64) -> Event {
    Event::Quote(Quote {
        instrument: InstrumentId(instrument),
        bid: mid - 0.01,
        bid_qty: 1.0,
        ask: mid + 0.01,
        ask_qty: 1.0,
        update_id: recv_ns,
        exchange_ms: 0,
        recv_ns,
    })
}

#[test]
fn quotes_that_fire_nothing_allocate_nothing() {
    let tokens = [
        token("WETH", 1, 18, PriceSource::Instrument { symbol: "ETHUSDT".into() }),
        token("USDC", 2, 6, PriceSource::Fixed { fixed: 1.0 }),
        token("WBTC", 3, 8, PriceSource::Instrument { symbol: "BTCUSDT".into() }),
    ];
    let portfolios = [
        portfolio(
            "two",
            &[("WETH", 0.5), ("USDC", 0.5)],
            vec![TriggerConfig::Drift { abs_band: Some(0.05), rel_band: Some(0.2) }],
        ),
        portfolio(
            "three",
            &[("WETH", 0.4), ("WBTC", 0.4), ("USDC", 0.2)],
            vec![
                TriggerConfig::Volatility {
                    base_band: 0.05,
                    reference_vol: 0.6,
                    min_band: 0.02,
                    max_band: 0.2,
                    halflife_secs: 30.0,
                },
                TriggerConfig::Temporal { interval_secs: 3600.0 },
            ],
        ),
        // Fires at once and stays in flight: its quotes are suppressed, not planned.
        portfolio(
            "busy",
            &[("WETH", 0.5), ("USDC", 0.5)],
            vec![TriggerConfig::Drift { abs_band: Some(0.01), rel_band: None }],
        ),
        // CPPI: targets recomputed on every scan (value 4000, floor 2000, m 1 → 0.5 risky).
        PortfolioConfig {
            targets: TargetsConfig::Cppi(CppiConfig {
                floor: 2000.0,
                multiplier: 1.0,
                risky: vec!["WETH".into()],
                safe: "USDC".into(),
            }),
            ..portfolio("cppi", &[], vec![TriggerConfig::Drift { abs_band: Some(0.1), rel_band: None }])
        },
        // Momentum: a ring sample on every timer tick, which rewrites its targets and its box.
        PortfolioConfig {
            targets: TargetsConfig::Momentum(MomentumConfig {
                lookback_secs: 2.0,
                tilt: 1.0,
                max_tilt: 0.5,
                base: [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into(),
            }),
            ..portfolio(
                "momentum",
                &[],
                vec![TriggerConfig::Drift { abs_band: Some(0.1), rel_band: Some(0.5) }],
            )
        },
    ];
    let clock = Arc::new(ManualClock::new(SEC));
    let mut e = Engine::new(EngineConfig::default(), &tokens, &portfolios, Box::new(clock.clone())).unwrap();
    let mut out = Vec::with_capacity(16);
    let bal = |p: u32, t: u16, raw: u128| {
        Event::Balance(Balance {
            portfolio: PortfolioId(p),
            token: TokenId(t),
            amount: U256::from(raw),
            block: 1,
            recv_ns: SEC,
        })
    };
    for ev in [
        quote(0, 2000.0, SEC),
        quote(1, 40_000.0, SEC),
        bal(0, 0, 10u128.pow(18)),
        bal(0, 1, 2000 * 10u128.pow(6)),
        bal(1, 0, 2 * 10u128.pow(18)),
        bal(1, 2, 10u128.pow(7)),
        bal(1, 1, 2000 * 10u128.pow(6)),
        bal(2, 0, 10u128.pow(18)),
        bal(2, 1, 1000 * 10u128.pow(6)),
        bal(3, 0, 10u128.pow(18)),
        bal(3, 1, 2000 * 10u128.pow(6)),
        bal(4, 0, 10u128.pow(18)),
        bal(4, 1, 2000 * 10u128.pow(6)),
    ] {
        e.process(&ev, &mut out);
    }
    e.process(&quote(0, 2000.0, SEC), &mut out);
    assert_eq!(out.len(), 1, "the busy portfolio fired once");
    assert_eq!(e.portfolio(PortfolioId(2)).unwrap().in_flight(), Some(1));

    // Warm up (first-call lazies, if any), then measure.
    let mut t = SEC;
    let mut step = 0u64;
    let mut run = |e: &mut Engine, out: &mut Vec<_>, n: u64| {
        for _ in 0..n {
            step += 1;
            t += 50_000_000; // 50 ms: a volatility sample every 20 quotes
            clock.set(t);
            let wiggle = if step.is_multiple_of(2) { 1.0 } else { -1.0 };
            e.process(&quote(0, 2000.0 + wiggle, t), out);
            e.process(&quote(1, 40_000.0 - 10.0 * wiggle, t), out);
            if step.is_multiple_of(100) {
                e.process(&Event::Timer { now_ns: t }, out);
            }
        }
    };
    run(&mut e, &mut out, 100);
    // The counter sees allocations on this thread.
    let probe = allocations(|| drop(std::hint::black_box(vec![0u8; 10])));
    assert_eq!(probe, (10, 1));
    let (bytes, calls) = allocations(|| run(&mut e, &mut out, 20_000));
    assert_eq!((bytes, calls), (0, 0), "hot path allocated {bytes} bytes in {calls} calls");
    assert_eq!(out.len(), 1, "nothing else fired");
    let s = e.stats();
    assert!(s.suppressed.in_flight >= 20_000, "{s:?}");
    assert!(s.events.quotes >= 40_000);
    assert!(e.portfolio_sigma(PortfolioId(1)).is_some(), "volatility samples were taken");
    assert!(s.targets.momentum_retargets > 100, "momentum retargeted: {:?}", s.targets);
    let cppi = e.portfolio(PortfolioId(3)).unwrap().targets();
    assert!((cppi[0] - 0.5).abs() < 1e-3, "cppi targets follow the value: {cppi:?}");
}

/// A small deterministic generator (xorshift64*), so the walk needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

#[test]
fn index_with_thousands_of_portfolios_allocates_nothing() {
    // USDC and ten assets at 100, each its own instrument.
    const ASSETS: usize = 10;
    const N: usize = 2_000;
    let mut tokens = vec![token("USDC", 0xff, 6, PriceSource::Fixed { fixed: 1.0 })];
    let symbols: Vec<String> = (0..ASSETS).map(|a| format!("A{a}")).collect();
    for (a, s) in symbols.iter().enumerate() {
        tokens.push(token(s, a as u8 + 1, 18, PriceSource::Instrument { symbol: format!("{s}USDT") }));
    }
    // Four assets and USDC at 0.2 each, a 2-point band. Prices stay within ±6% of the start, so
    // no weight can leave [0.1836, 0.2173]: nothing fires, but boxes recentred near the edge of
    // that range are small and keep being left.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut held = Vec::with_capacity(N + 1);
    let mut portfolios = Vec::with_capacity(N + 1);
    for i in 0..N {
        let mut assets: Vec<usize> = Vec::new();
        while assets.len() < 4 {
            let a = (rng.next() % ASSETS as u64) as usize;
            if !assets.contains(&a) {
                assets.push(a);
            }
        }
        let mut targets: Vec<(&str, f64)> = assets.iter().map(|&a| (symbols[a].as_str(), 0.2)).collect();
        targets.push(("USDC", 0.2));
        portfolios.push(portfolio(
            &format!("p{i}"),
            &targets,
            vec![TriggerConfig::Drift { abs_band: Some(0.02), rel_band: None }],
        ));
        held.push(assets);
    }
    // Over its band from the start and in flight after the first quote: dirty throughout.
    portfolios.push(portfolio(
        "busy",
        &[("A0", 0.2), ("A1", 0.2), ("A2", 0.2), ("A3", 0.2), ("USDC", 0.2)],
        vec![TriggerConfig::Drift { abs_band: Some(0.01), rel_band: None }],
    ));
    held.push(vec![0, 1, 2, 3]);
    let clock = Arc::new(ManualClock::new(SEC));
    let mut e = Engine::new(EngineConfig::default(), &tokens, &portfolios, Box::new(clock.clone())).unwrap();
    let mut out = Vec::with_capacity(16);
    for a in 0..ASSETS {
        e.process(&quote(a as u16, 100.0, SEC), &mut out);
    }
    let token_of = |a: usize| e.token_id(&symbols[a]).unwrap();
    let ids: Vec<TokenId> = (0..ASSETS).map(token_of).collect();
    let usdc = e.token_id("USDC").unwrap();
    // $10k per portfolio ($2k per asset); the busy one holds 50% more of A0.
    let fund = |i: usize, a: Option<usize>, block: u64| {
        let (token, raw) = match a {
            Some(a) => {
                let extra = if i == N && a == 0 { 3 } else { 2 };
                (ids[a], U256::from(10u128.pow(18) * 10 * extra))
            }
            None => (usdc, U256::from(2_000 * 10u128.pow(6))),
        };
        Event::Balance(Balance { portfolio: PortfolioId(i as u32), token, amount: raw, block, recv_ns: 0 })
    };
    for (i, assets) in held.iter().enumerate() {
        for &a in assets {
            e.process(&fund(i, Some(a), 1), &mut out);
        }
        e.process(&fund(i, None, 1), &mut out);
    }
    e.process(&quote(0, 100.0, SEC), &mut out);
    assert_eq!(out.len(), 1, "the busy portfolio fired once");
    assert_eq!(e.portfolio(PortfolioId(N as u32)).unwrap().in_flight(), Some(1));

    let mut mids = [100.0f64; ASSETS];
    let mut t = SEC;
    let mut block = 1;
    let mut step = 0u64;
    let mut run = |e: &mut Engine, out: &mut Vec<_>, n: u64| {
        for _ in 0..n {
            step += 1;
            t += 1_000_000;
            clock.set(t);
            let a = (step % ASSETS as u64) as usize;
            mids[a] = (mids[a] * (1.0 + 0.01 * rng.unit())).clamp(94.0, 106.0);
            e.process(&quote(a as u16, mids[a], t), out);
            if step.is_multiple_of(50) {
                // The same holding again at a newer block: the box is recomputed.
                block += 1;
                let i = (rng.next() % N as u64) as usize;
                e.process(&fund(i, None, block), out);
            }
            if step.is_multiple_of(97) {
                let o = Outcome {
                    intent: 99,
                    portfolio: PortfolioId(0),
                    status: OutcomeStatus::Expired,
                    at_ns: t,
                };
                e.process(&Event::Outcome(o), out);
            }
            if step.is_multiple_of(1_000) {
                e.process(&Event::Timer { now_ns: t }, out);
            }
        }
    };
    run(&mut e, &mut out, 5_000);
    let before = e.index_stats();
    let (bytes, calls) = allocations(|| run(&mut e, &mut out, 50_000));
    assert_eq!((bytes, calls), (0, 0), "hot path allocated {bytes} bytes in {calls} calls");
    assert_eq!(out.len(), 1, "nothing else fired");
    let s = e.index_stats();
    assert!(s.left_box - before.left_box > 10_000, "{before:?} → {s:?}");
    assert!(s.boxes - before.boxes > 10_000, "{before:?} → {s:?}");
    assert!(s.compactions > before.compactions, "{before:?} → {s:?}");
    // The busy portfolio is dirty: evaluated (and held back) on each quote of its four assets.
    assert!(e.stats().suppressed.in_flight >= 20_000, "{:?}", e.stats());
}
