//! Quote event → trigger decision, for one portfolio of two and of three assets (no trigger fires,
//! which is the common case and the path that must stay under ~50 ns). The baseline row applies the
//! same quote to a bare price array, so the figures read as ratios.
//!
//! `quote_to_decision/*` runs the default candidate index: the quotes stay inside the portfolio's
//! safe box, so this is the price update plus the index lookup. `quote_to_decision_full_scan/*`
//! evaluates the portfolio on every quote (weights and triggers): the cost of one evaluation, which
//! the index pays for each portfolio whose box a quote leaves.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

use std::hint::black_box;

use alloy_primitives::{Address, U256};
use criterion::{Criterion, criterion_main};
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::{Balance, Quote};
use keel_engine::{CandidateMode, Engine, Event, InstrumentId, ManualClock, PortfolioId};

const SEC: u64 = 1_000_000_000;

fn token(symbol: &str, b: u8, decimals: u8, price: PriceSource) -> TokenConfig {
    TokenConfig { symbol: symbol.into(), address: Address::repeat_byte(b), decimals, price }
}

fn tokens() -> Vec<TokenConfig> {
    vec![
        token("WETH", 1, 18, PriceSource::Instrument { symbol: "ETHUSDT".into() }),
        token("USDC", 2, 6, PriceSource::Fixed { fixed: 1.0 }),
        token("WBTC", 3, 8, PriceSource::Instrument { symbol: "BTCUSDT".into() }),
    ]
}

fn engine(targets: &[(&str, f64)], triggers: Vec<TriggerConfig>) -> Engine {
    let p = PortfolioConfig {
        name: "p".into(),
        account: Address::repeat_byte(0xaa),
        targets: targets.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
        triggers,
        mode: PlanMode::ToTarget,
        cooldown_secs: 10.0,
        min_trade_notional: 10.0,
        cost: Default::default(),
    };
    let mut e =
        Engine::new(EngineConfig::default(), &tokens(), &[p], Box::new(ManualClock::new(SEC))).unwrap();
    let mut out = Vec::new();
    let value = 1_000_000.0;
    for (i, (sym, w)) in targets.iter().enumerate() {
        let id = e.token_id(sym).unwrap();
        let (mid, dec) = match *sym {
            "WETH" => (2000.0, 18),
            "WBTC" => (40_000.0, 8),
            _ => (1.0, 6),
        };
        let raw = (value * w / mid * 10f64.powi(dec)) as u128;
        let ev = Event::Balance(Balance {
            portfolio: PortfolioId(0),
            token: id,
            amount: U256::from(raw),
            block: i as u64,
            recv_ns: 0,
        });
        e.process(&ev, &mut out);
    }
    e.process(&quote(0, 2000.0, SEC), &mut out);
    e.process(&quote(1, 40_000.0, SEC), &mut out);
    assert!(out.is_empty());
    e
}

fn quote(instrument: u16, mid: f64, recv_ns: u64) -> Event {
    Event::Quote(Quote {
        instrument: InstrumentId(instrument),
        bid: mid - 0.01,
        bid_qty: 1.5,
        ask: mid + 0.01,
        ask_qty: 2.5,
        update_id: recv_ns,
        exchange_ms: 0,
        recv_ns,
    })
}

/// Alternates two ETH quotes 1 µs apart, so the weights move but stay inside the band.
fn run(c: &mut Criterion, name: &str, mut e: Engine) {
    let mut out = Vec::with_capacity(4);
    let mut t = SEC;
    let mut flip = false;
    c.bench_function(name, |b| {
        b.iter(|| {
            t += 1_000;
            flip = !flip;
            let ev = quote(0, if flip { 2000.5 } else { 1999.5 }, t);
            e.process(black_box(&ev), &mut out);
        })
    });
    assert!(out.is_empty(), "{name}: a trigger fired");
}

fn benches(c: &mut Criterion) {
    // Baseline: the same quote written into a bare price slot.
    let mut mids = [0.0f64; 4];
    let mut flip = false;
    c.bench_function("baseline/price_slot", |b| {
        b.iter(|| {
            flip = !flip;
            let ev = quote(0, if flip { 2000.5 } else { 1999.5 }, 0);
            if let Event::Quote(q) = black_box(&ev) {
                mids[q.instrument.0 as usize] = 0.5 * (q.bid + q.ask);
            }
            black_box(&mids);
        })
    });
    let drift = || TriggerConfig::Drift { abs_band: Some(0.05), rel_band: Some(0.2) };
    let vol = || TriggerConfig::Volatility {
        base_band: 0.05,
        reference_vol: 0.6,
        min_band: 0.02,
        max_band: 0.2,
        halflife_secs: 60.0,
    };
    for (group, mode) in [
        ("quote_to_decision", CandidateMode::Index),
        ("quote_to_decision_full_scan", CandidateMode::FullScan),
    ] {
        let with_mode = |mut e: Engine| {
            e.set_candidate_mode(mode);
            e
        };
        run(
            c,
            &format!("{group}/2_assets_drift"),
            with_mode(engine(&[("WETH", 0.5), ("USDC", 0.5)], vec![drift()])),
        );
        run(
            c,
            &format!("{group}/3_assets_drift"),
            with_mode(engine(&[("WETH", 0.4), ("WBTC", 0.4), ("USDC", 0.2)], vec![drift()])),
        );
        run(
            c,
            &format!("{group}/3_assets_drift_vol_temporal"),
            with_mode(engine(
                &[("WETH", 0.4), ("WBTC", 0.4), ("USDC", 0.2)],
                vec![drift(), vol(), TriggerConfig::Temporal { interval_secs: 3600.0 }],
            )),
        );
    }
}

/// The group (written out: `criterion_group!` would generate an undocumented `pub fn`).
fn trigger() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
}

criterion_main!(trigger);
