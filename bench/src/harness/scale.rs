//! `scale`: one [`Engine`] holding N portfolios over [`SCALE_ASSETS`] assets, driven directly (no
//! sockets): the cost of `process` for one quote across all of them.
//!
//! The workload is meant to be honest for the candidate index, which only evaluates the portfolios
//! whose safe box a price leaves (and those without a box, such as portfolios in flight):
//!
//! * portfolios start spread inside their bands, as a book rebalanced at different times is
//!   ([`FUNDING_TILT`]), not all on target;
//! * every asset follows an unclamped geometric random walk ([`TICK_VOL`] per quote), so weights
//!   drift, boxes are left and portfolios cross their bands and fire;
//! * a fired intent stays in flight for [`SETTLE_AFTER_TICKS`] quotes (its portfolio is then
//!   evaluated on every quote of its assets, held back), then lands: the post-trade balances and
//!   the outcome are processed outside the timed region, as the router's feedback would be.
//!
//! Only `process` of each quote is timed.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use keel_engine::clock::{LiveClock, mono_now_ns};
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::{Balance, Event, Outcome, OutcomeStatus, Quote};
use keel_engine::planner::float_to_units;
use keel_engine::{CandidateMode, Engine, InstrumentId, PortfolioId, RebalanceIntent};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use super::report::new_hist;

/// Number of risky assets (each quoted against USDC).
pub const SCALE_ASSETS: usize = 50;
/// Assets per portfolio (plus USDC).
pub const ASSETS_PER_PORTFOLIO: usize = 4;
/// Start price of every asset.
const PRICE: f64 = 100.0;
/// Each asset's funding is off target by a uniform factor in `1 ± FUNDING_TILT`, so weights start
/// spread over (and a few past) their ±2-point bands.
pub const FUNDING_TILT: f64 = 0.08;
/// Standard deviation of an asset's log return per quote of it: 1e-4, a 60%-a-year asset quoting
/// about once a second, or a calmer one quoting faster, compressed so that 10 s of quotes cover
/// hours of drift and the bands get crossed.
pub const TICK_VOL: f64 = 1e-4;
/// Quotes between a fire and its landing (about a block's worth of quotes).
pub const SETTLE_AFTER_TICKS: u64 = 10_000;

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
    /// Quotes that fired at least one intent (table only).
    #[serde(skip)]
    pub ticks_firing: u64,
    /// Portfolio evaluations per quote, on average (table only).
    #[serde(skip)]
    pub evaluated_per_tick: f64,
    /// Building and funding the engine took, s (table only).
    #[serde(skip)]
    pub setup_s: f64,
}

/// Builds an engine with `n` portfolios: portfolio i holds [`ASSETS_PER_PORTFOLIO`] assets picked
/// pseudo-randomly (seeded) plus USDC, equal targets, a 2-point drift band, $10k funded off target
/// by up to [`FUNDING_TILT`] per asset. Every asset is quoted at the start price first.
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
                targets: targets.into(),
                triggers: vec![TriggerConfig::Drift { abs_band: Some(0.02), rel_band: None }],
                mode: PlanMode::ToTarget,
                cooldown_secs: 0.0,
                min_trade_notional: 10.0,
                cost: Default::default(),
            }
        })
        .collect::<Vec<_>>();
    let mut engine = Engine::new(EngineConfig::default(), &tokens, &portfolios, Box::new(LiveClock))?;
    let mut out = Vec::new();
    let instruments = instrument_ids(&engine)?;
    for (a, &inst) in instruments.iter().enumerate() {
        engine.process(&quote(inst, PRICE, a as u64), &mut out);
    }
    let mut tilt = rand::rngs::StdRng::seed_from_u64(43);
    for (i, p) in portfolios.iter().enumerate() {
        for (sym, w) in p.targets.fixed().into_iter().flatten() {
            let tok = engine.token_id(sym).ok_or_else(|| eyre::eyre!("token {sym}"))?;
            let value = w * 10_000.0 * (1.0 + tilt.random_range(-FUNDING_TILT..FUNDING_TILT));
            let amount = if sym == "USDC" {
                U256::from((value * 1e6) as u128)
            } else {
                U256::from((value / PRICE * 1e6) as u128) * U256::from(10u64.pow(12))
            };
            engine.process(
                &Event::Balance(Balance {
                    portfolio: PortfolioId(i as u32),
                    token: tok,
                    amount,
                    block: 1,
                    recv_ns: 0,
                }),
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

/// An intent waiting to land.
struct Pending {
    intent: RebalanceIntent,
    due_tick: u64,
}

/// Lands an intent: the post-trade balances at a new block (legs filled at their reference
/// prices), then the outcome. Untimed: this is the router's and the chain's feedback.
fn settle(engine: &mut Engine, intent: &RebalanceIntent, block: u64, out: &mut Vec<RebalanceIntent>) {
    let Some(p) = engine.portfolio(intent.portfolio) else { return };
    let assets = p.assets().to_vec();
    let mut raw: Vec<f64> = p.holdings().iter().map(f64::from).collect();
    for leg in &intent.legs {
        let (Some(s), Some(b)) =
            (assets.iter().position(|&t| t == leg.sell), assets.iter().position(|&t| t == leg.buy))
        else {
            continue;
        };
        let (Some(ts), Some(tb)) = (engine.token(leg.sell), engine.token(leg.buy)) else { continue };
        let sold = f64::from(leg.amount_in);
        raw[s] -= sold;
        raw[b] += sold / ts.scale * leg.reference_price * tb.scale;
    }
    for (&token, x) in assets.iter().zip(raw) {
        let amount = float_to_units(x.max(0.0));
        // Landed (and read) at the moment it was decided: the simulated chain is instant.
        let recv_ns = intent.event_recv_ns;
        engine.process(
            &Event::Balance(Balance { portfolio: intent.portfolio, token, amount, block, recv_ns }),
            out,
        );
    }
    let landed = OutcomeStatus::Landed { block, gas_used: 0 };
    engine.process(
        &Event::Outcome(Outcome {
            intent: intent.id,
            portfolio: intent.portfolio,
            status: landed,
            at_ns: intent.event_recv_ns,
        }),
        out,
    );
}

/// Times `process` of quotes round-robin over the assets (each an unclamped random walk of
/// [`TICK_VOL`] per quote) for `budget` or `max_ticks`, whichever comes first, with the candidate
/// index.
pub fn measure(n: usize, budget: Duration, max_ticks: u64) -> eyre::Result<ScaleRow> {
    measure_with(n, budget, max_ticks, CandidateMode::Index)
}

/// [`measure`] with a chosen candidate mode ([`CandidateMode::FullScan`] is the baseline).
pub fn measure_with(
    n: usize,
    budget: Duration,
    max_ticks: u64,
    mode: CandidateMode,
) -> eyre::Result<ScaleRow> {
    let t_setup = Instant::now();
    let mut engine = build_engine(n)?;
    engine.set_candidate_mode(mode);
    let setup_s = t_setup.elapsed().as_secs_f64();
    let instruments = instrument_ids(&engine)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut mids = vec![PRICE; SCALE_ASSETS];
    let mut out: Vec<RebalanceIntent> = Vec::with_capacity(1024);
    let mut block = 2;
    // Portfolios funded past their bands fire on the first quotes: land those before timing.
    for (a, &inst) in instruments.iter().enumerate() {
        engine.process(&quote(inst, mids[a], a as u64), &mut out);
    }
    for intent in std::mem::take(&mut out) {
        settle(&mut engine, &intent, block, &mut out);
    }
    out.clear();
    let evaluated_before = engine.index_stats().evaluated;
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut settle_out = Vec::new();
    let mut h = new_hist();
    let (mut fired, mut ticks_firing) = (0u64, 0u64);
    let t0 = Instant::now();
    let mut t: u64 = 0;
    while t < max_ticks && (!t.is_multiple_of(256) || t0.elapsed() < budget) {
        let a = (t % SCALE_ASSETS as u64) as usize;
        let z: f64 = rng.sample(StandardNormal);
        mids[a] *= (TICK_VOL * z).exp();
        let ev = quote(instruments[a], mids[a], 1_000 + t);
        let s = mono_now_ns();
        engine.process(&ev, &mut out);
        let e = mono_now_ns();
        h.record((e - s).max(1))?;
        fired += out.len() as u64;
        ticks_firing += u64::from(!out.is_empty());
        pending.extend(out.drain(..).map(|intent| Pending { intent, due_tick: t + SETTLE_AFTER_TICKS }));
        if pending.front().is_some_and(|p| p.due_tick <= t) {
            block += 1;
            while let Some(p) = pending.pop_front_if(|p| p.due_tick <= t) {
                settle(&mut engine, &p.intent, block, &mut settle_out);
            }
            settle_out.clear();
        }
        t += 1;
    }
    let ticks = h.len();
    let evaluated = engine.index_stats().evaluated - evaluated_before;
    Ok(ScaleRow {
        portfolios: n,
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        ticks,
        fired,
        ticks_firing,
        evaluated_per_tick: evaluated as f64 / ticks.max(1) as f64,
        setup_s,
    })
}
