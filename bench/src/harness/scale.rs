//! `scale`: one [`Engine`] holding N portfolios over [`SCALE_ASSETS`] assets, driven directly (no
//! sockets): the cost of `process` for one quote across all of them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use keel_engine::clock::{LiveClock, mono_now_ns};
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::{Balance, Event, Quote};
use keel_engine::{Engine, InstrumentId, PortfolioId, RebalanceIntent};
use rand::{Rng, SeedableRng};

use super::report::new_hist;

/// Number of risky assets (each quoted against USDC).
pub const SCALE_ASSETS: usize = 50;
/// Assets per portfolio (plus USDC).
pub const ASSETS_PER_PORTFOLIO: usize = 4;
/// Start price of every asset.
const PRICE: f64 = 100.0;

/// One row of the scale table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScaleRow {
    /// Portfolios in the engine.
    pub portfolios: usize,
    /// Median `process` time of one quote, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns (table only).
    #[serde(skip)]
    pub p999_ns: u64,
    /// Largest, ns (table only).
    #[serde(skip)]
    pub max_ns: u64,
    /// Quotes timed (table only).
    #[serde(skip)]
    pub ticks: u64,
    /// Intents the quotes fired (table only).
    #[serde(skip)]
    pub fired: u64,
    /// Building and funding the engine took, s (table only).
    #[serde(skip)]
    pub setup_s: f64,
}

/// Builds an engine with `n` portfolios: portfolio i holds [`ASSETS_PER_PORTFOLIO`] assets picked
/// pseudo-randomly (seeded) plus USDC, equal targets, a 2-point drift band, funded on target.
pub fn build_engine(n: usize) -> eyre::Result<Engine> {
    let mut tokens = vec![TokenConfig {
        symbol: "USDC".into(),
        address: Address::with_last_byte(0xff),
        decimals: 6,
        price: PriceSource::Fixed { fixed: 1.0 },
    }];
    for a in 0..SCALE_ASSETS {
        tokens.push(TokenConfig {
            symbol: format!("A{a}"),
            address: Address::left_padding_from(&(0x1000 + a as u64).to_be_bytes()),
            decimals: 18,
            price: PriceSource::Instrument { symbol: format!("A{a}USDT") },
        });
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let target = 1.0 / (ASSETS_PER_PORTFOLIO + 1) as f64;
    let portfolios = (0..n)
        .map(|i| {
            let mut targets = BTreeMap::from([("USDC".to_string(), target)]);
            while targets.len() < ASSETS_PER_PORTFOLIO + 1 {
                targets.insert(format!("A{}", rng.random_range(0..SCALE_ASSETS)), target);
            }
            PortfolioConfig {
                name: format!("p{i}"),
                account: Address::left_padding_from(&(0x10_0000 + i as u64).to_be_bytes()),
                targets,
                triggers: vec![TriggerConfig::Drift { abs_band: Some(0.02), rel_band: None }],
                mode: PlanMode::ToTarget,
                cooldown_secs: 0.0,
                min_trade_notional: 10.0,
            }
        })
        .collect::<Vec<_>>();
    let mut engine = Engine::new(EngineConfig::default(), &tokens, &portfolios, Box::new(LiveClock))?;
    let mut out = Vec::new();
    let instruments = instrument_ids(&engine)?;
    for (a, &inst) in instruments.iter().enumerate() {
        engine.process(&quote(inst, PRICE, a as u64), &mut out);
    }
    for (i, p) in portfolios.iter().enumerate() {
        for (sym, w) in &p.targets {
            let tok = engine.token_id(sym).ok_or_else(|| eyre::eyre!("token {sym}"))?;
            // $10k per portfolio, on target.
            let amount = if sym == "USDC" {
                U256::from((w * 10_000.0 * 1e6) as u128)
            } else {
                U256::from((w * 10_000.0 / PRICE * 1e6) as u128) * U256::from(10u64.pow(12))
            };
            engine.process(
                &Event::Balance(Balance { portfolio: PortfolioId(i as u32), token: tok, amount, block: 1 }),
                &mut out,
            );
        }
    }
    Ok(engine)
}

fn instrument_ids(engine: &Engine) -> eyre::Result<Vec<InstrumentId>> {
    let syms = engine.instrument_symbols();
    (0..SCALE_ASSETS)
        .map(|a| {
            let s = format!("A{a}USDT");
            syms.iter()
                .position(|x| *x == s)
                .map(|i| InstrumentId(i as u16))
                .ok_or_else(|| eyre::eyre!("instrument {s} not in the engine"))
        })
        .collect()
}

fn quote(instrument: InstrumentId, mid: f64, u: u64) -> Event {
    Event::Quote(Quote {
        instrument,
        bid: mid * (1.0 - 0.5e-4),
        bid_qty: 10.0,
        ask: mid * (1.0 + 0.5e-4),
        ask_qty: 10.0,
        update_id: u,
        exchange_ms: 0,
        recv_ns: mono_now_ns(),
    })
}

/// Times `process` of quotes round-robin over the assets (each a ±0.05 % random walk around the
/// start price, inside every band) for `budget` or `max_ticks`, whichever comes first.
pub fn measure(n: usize, budget: Duration, max_ticks: u64) -> eyre::Result<ScaleRow> {
    let t_setup = Instant::now();
    let mut engine = build_engine(n)?;
    let setup_s = t_setup.elapsed().as_secs_f64();
    let instruments = instrument_ids(&engine)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut mids = vec![PRICE; SCALE_ASSETS];
    let mut out: Vec<RebalanceIntent> = Vec::with_capacity(1024);
    let mut h = new_hist();
    let mut fired = 0u64;
    let t0 = Instant::now();
    let mut t: u64 = 0;
    while t < max_ticks && (!t.is_multiple_of(256) || t0.elapsed() < budget) {
        let a = (t % SCALE_ASSETS as u64) as usize;
        mids[a] = (mids[a] * (1.0 + rng.random_range(-0.0002..0.0002))).clamp(PRICE * 0.9995, PRICE * 1.0005);
        let ev = quote(instruments[a], mids[a], 1_000 + t);
        let s = mono_now_ns();
        engine.process(&ev, &mut out);
        let e = mono_now_ns();
        h.record((e - s).max(1))?;
        fired += out.len() as u64;
        out.clear();
        t += 1;
    }
    Ok(ScaleRow {
        portfolios: n,
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        ticks: h.len(),
        fired,
        setup_s,
    })
}
