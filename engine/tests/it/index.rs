//! The candidate index decides exactly as the full scan: two engines, one per
//! [`CandidateMode`], driven with the same random streams of quotes, balances, outcomes, settlements,
//! timer ticks and clock moves over many portfolios, emit the same intents and count the same stats
//! after every event. Also: the index evaluates far fewer portfolios than the scan.

use std::sync::Arc;

use alloy_primitives::Address;
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
use keel_engine::event::{Balance, Outcome, OutcomeStatus, Quote};
use keel_engine::planner::float_to_units;
use keel_engine::{
    CandidateMode, Clock, Engine, Event, InstrumentId, ManualClock, PortfolioId, RebalanceIntent, TokenId,
};
use proptest::prelude::*;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_000 * SEC;

/// (symbol, decimals, instrument or fixed price, start price).
const TOKENS: &[(&str, u8, Option<&str>, f64)] = &[
    ("USDC", 6, None, 1.0),
    ("WETH", 18, Some("ETHUSDT"), 2000.0),
    // Priced off the same instrument as WETH: one quote moves both.
    ("ETH", 18, Some("ETHUSDT"), 2000.0),
    ("WBTC", 8, Some("BTCUSDT"), 40_000.0),
    ("SOL", 9, Some("SOLUSDT"), 100.0),
    ("DAI", 18, None, 1.0),
];
const INSTRUMENTS: usize = 3;

fn tokens() -> Vec<TokenConfig> {
    TOKENS
        .iter()
        .enumerate()
        .map(|(i, &(symbol, decimals, inst, price))| TokenConfig {
            symbol: symbol.into(),
            address: Address::repeat_byte(i as u8 + 1),
            decimals,
            price: match inst {
                Some(s) => PriceSource::Instrument { symbol: s.into() },
                None => PriceSource::Fixed { fixed: price },
            },
        })
        .collect()
}

#[derive(Debug, Clone)]
struct PortfolioSpec {
    /// Bit i: holds TOKENS[i] (at least two bits are set).
    assets: u8,
    weights: [f64; 6],
    triggers: Vec<TriggerConfig>,
    to_band: bool,
    cooldown_secs: f64,
    min_notional: f64,
    /// Per asset: funding off target (value factor), or `None` to leave the balance missing.
    funding: [Option<f64>; 6],
}

fn trigger() -> impl Strategy<Value = TriggerConfig> {
    prop_oneof![
        (0.005f64..0.1).prop_map(|b| TriggerConfig::Drift { abs_band: Some(b), rel_band: None }),
        (0.02f64..0.5).prop_map(|r| TriggerConfig::Drift { abs_band: None, rel_band: Some(r) }),
        (0.005f64..0.1, 0.02f64..0.5)
            .prop_map(|(b, r)| TriggerConfig::Drift { abs_band: Some(b), rel_band: Some(r) }),
        (0.005f64..0.05, 0.0f64..0.1, 0.0f64..0.2, 1.0f64..30.0).prop_map(|(min, base, extra, h)| {
            TriggerConfig::Volatility {
                base_band: (min + base).min(1.0),
                reference_vol: 0.6,
                min_band: min,
                max_band: (min + base + extra).min(1.0),
                halflife_secs: h,
            }
        }),
        (1.0f64..120.0).prop_map(|s| TriggerConfig::Temporal { interval_secs: s }),
    ]
}

fn portfolio() -> impl Strategy<Value = PortfolioSpec> {
    (
        1u8..64,
        prop::array::uniform6(0.05f64..1.0),
        prop::collection::vec(trigger(), 1..4),
        any::<bool>(),
        prop_oneof![Just(0.0), 0.0f64..20.0],
        prop_oneof![Just(0.0), 0.0f64..50.0],
        prop::array::uniform6(prop_oneof![
            1 => Just(None),
            12 => (0.7f64..1.3).prop_map(Some),
        ]),
    )
        .prop_map(|(mut assets, weights, triggers, to_band, cooldown_secs, min_notional, funding)| {
            if assets.count_ones() < 2 {
                assets |= 0b11;
            }
            PortfolioSpec { assets, weights, triggers, to_band, cooldown_secs, min_notional, funding }
        })
}

#[derive(Debug, Clone)]
enum Op {
    /// Quote an instrument at its last mid times `exp(ret)`, with a half-spread.
    Quote {
        inst: usize,
        ret: f64,
        half_spread: f64,
    },
    /// Move the clock forward.
    Advance {
        ms: u64,
    },
    Timer,
    /// Land the k-th open intent (mod their number) and report the post-trade balances, in
    /// either order.
    Settle {
        k: usize,
        balances_first: bool,
    },
    /// End the k-th open intent with an outcome other than landing.
    Fail {
        k: usize,
        expired: bool,
    },
    /// An outcome for an intent that is not in flight.
    BogusOutcome {
        portfolio: usize,
    },
    /// A portfolio's holding of one of its assets scaled by `factor` at a new block (or an old one).
    Balance {
        portfolio: usize,
        asset: usize,
        factor: f64,
        stale: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..INSTRUMENTS, prop_oneof![3 => -0.004f64..0.004, 2 => -0.05f64..0.05, 1 => Just(0.0)],
               prop_oneof![Just(0.0), 0.0f64..0.001])
            .prop_map(|(inst, ret, half_spread)| Op::Quote { inst, ret, half_spread }),
        3 => (0u64..4_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Timer),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(k, balances_first)| Op::Settle { k, balances_first }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, expired)| Op::Fail { k, expired }),
        1 => any::<usize>().prop_map(|portfolio| Op::BogusOutcome { portfolio }),
        2 => (any::<usize>(), any::<usize>(), prop_oneof![0.0f64..2.0, Just(0.0), Just(1.0)], prop::bool::weighted(0.1))
            .prop_map(|(portfolio, asset, factor, stale)| Op::Balance { portfolio, asset, factor, stale }),
    ]
}

/// Two engines fed the same events, one per candidate mode.
struct Pair {
    engines: [Engine; 2],
    clocks: [Arc<ManualClock>; 2],
    outs: [Vec<RebalanceIntent>; 2],
    mids: [f64; INSTRUMENTS],
    block: u64,
    /// Intents emitted and not ended yet.
    open: Vec<RebalanceIntent>,
}

impl Pair {
    fn new(specs: &[PortfolioSpec]) -> Self {
        let configs: Vec<PortfolioConfig> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let held: Vec<usize> = (0..TOKENS.len()).filter(|&j| s.assets >> j & 1 == 1).collect();
                let sum: f64 = held.iter().map(|&j| s.weights[j]).sum();
                PortfolioConfig {
                    name: format!("p{i}"),
                    // One account per portfolio (two on one account is a config error).
                    account: Address::left_padding_from(&(i as u64 + 1).to_be_bytes()),
                    targets: held.iter().map(|&j| (TOKENS[j].0.to_string(), s.weights[j] / sum)).collect(),
                    triggers: s.triggers.clone(),
                    mode: if s.to_band { PlanMode::ToBand } else { PlanMode::ToTarget },
                    cooldown_secs: s.cooldown_secs,
                    min_trade_notional: s.min_notional,
                    cost: Default::default(),
                }
            })
            .collect();
        let make = |mode| {
            let clock = Arc::new(ManualClock::new(T0));
            let mut e =
                Engine::new(EngineConfig::default(), &tokens(), &configs, Box::new(clock.clone())).unwrap();
            e.set_candidate_mode(mode);
            (e, clock)
        };
        let (a, ca) = make(CandidateMode::Index);
        let (b, cb) = make(CandidateMode::FullScan);
        assert_eq!(a.candidate_mode(), CandidateMode::Index);
        assert_eq!(b.candidate_mode(), CandidateMode::FullScan);
        let mut pair = Pair {
            engines: [a, b],
            clocks: [ca, cb],
            outs: [Vec::new(), Vec::new()],
            mids: [2000.0, 40_000.0, 100.0],
            block: 1,
            open: Vec::new(),
        };
        // Fund before any price: the first quotes evaluate (and box) everything.
        for (i, (s, c)) in specs.iter().zip(&configs).enumerate() {
            for (sym, w) in c.targets.fixed().expect("fixed targets") {
                let j = TOKENS.iter().position(|t| t.0 == *sym).unwrap();
                if let Some(f) = s.funding[j] {
                    let whole = 10_000.0 * w * f / TOKENS[j].3;
                    pair.balance(i, TokenId(j as u16), whole, 1);
                }
            }
        }
        for inst in 0..INSTRUMENTS {
            pair.quote(inst, 0.0, 0.0);
        }
        pair
    }

    fn send(&mut self, ev: Event) {
        for (e, out) in self.engines.iter_mut().zip(&mut self.outs) {
            e.process(&ev, out);
        }
        assert_eq!(self.outs[0], self.outs[1], "intents differ after {ev:?}");
        assert_eq!(self.engines[0].stats(), self.engines[1].stats(), "stats differ after {ev:?}");
        self.open.append(&mut self.outs[0]);
        self.outs[1].clear();
    }

    fn now(&self) -> u64 {
        self.clocks[0].now_ns()
    }

    fn quote(&mut self, inst: usize, ret: f64, half_spread: f64) {
        self.mids[inst] *= ret.exp();
        let mid = self.mids[inst];
        let now = self.now();
        self.send(Event::Quote(Quote {
            instrument: InstrumentId(inst as u16),
            bid: mid * (1.0 - half_spread),
            bid_qty: 1.0,
            ask: mid * (1.0 + half_spread),
            ask_qty: 1.0,
            update_id: 0,
            exchange_ms: 0,
            recv_ns: now,
        }));
    }

    fn balance(&mut self, portfolio: usize, token: TokenId, whole: f64, block: u64) {
        let dec = TOKENS[token.idx()].1;
        let amount = float_to_units(whole * 10f64.powi(dec as i32));
        let recv_ns = self.now();
        self.send(Event::Balance(Balance {
            portfolio: PortfolioId(portfolio as u32),
            token,
            amount,
            block,
            recv_ns,
        }));
    }

    fn whole(&self, p: PortfolioId, token: TokenId) -> f64 {
        let e = &self.engines[0];
        let port = e.portfolio(p).unwrap();
        let i = port.asset_index(token).unwrap();
        e.token(token).unwrap().to_whole(&port.holdings()[i])
    }

    fn outcome(&mut self, intent: u64, portfolio: PortfolioId, status: OutcomeStatus) {
        let at_ns = self.now();
        self.send(Event::Outcome(Outcome { intent, portfolio, status, at_ns }));
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Quote { inst, ret, half_spread } => self.quote(inst, ret, half_spread),
            Op::Advance { ms } => {
                for c in &self.clocks {
                    c.advance(ms * 1_000_000);
                }
            }
            Op::Timer => {
                let now = self.now();
                self.send(Event::Timer { now_ns: now });
            }
            Op::Settle { k, balances_first } => {
                if self.open.is_empty() {
                    return;
                }
                let intent = self.open.remove(k % self.open.len());
                self.block += 1;
                let block = self.block;
                let landed = OutcomeStatus::Landed { block, gas_used: 1 };
                if !balances_first {
                    self.outcome(intent.id, intent.portfolio, landed);
                }
                let assets = self.engines[0].portfolio(intent.portfolio).unwrap().assets().to_vec();
                let mut h: Vec<f64> = assets.iter().map(|&t| self.whole(intent.portfolio, t)).collect();
                for l in &intent.legs {
                    let s = assets.iter().position(|&t| t == l.sell).unwrap();
                    let b = assets.iter().position(|&t| t == l.buy).unwrap();
                    let sold = self.engines[0].token(l.sell).unwrap().to_whole(&l.amount_in);
                    h[s] -= sold;
                    h[b] += sold * l.reference_price;
                }
                for (t, x) in assets.iter().zip(h) {
                    self.balance(intent.portfolio.idx(), *t, x.max(0.0), block);
                }
                if balances_first {
                    self.outcome(intent.id, intent.portfolio, landed);
                }
            }
            Op::Fail { k, expired } => {
                if self.open.is_empty() {
                    return;
                }
                let intent = self.open.remove(k % self.open.len());
                let status = if expired { OutcomeStatus::Expired } else { OutcomeStatus::Rejected };
                self.outcome(intent.id, intent.portfolio, status);
            }
            Op::BogusOutcome { portfolio } => {
                let n = self.engines[0].portfolios().len();
                self.outcome(u64::MAX, PortfolioId((portfolio % n) as u32), OutcomeStatus::Expired);
            }
            Op::Balance { portfolio, asset, factor, stale } => {
                let n = self.engines[0].portfolios().len();
                let pid = PortfolioId((portfolio % n) as u32);
                let assets = self.engines[0].portfolio(pid).unwrap().assets().to_vec();
                let t = assets[asset % assets.len()];
                let whole = self.whole(pid, t) * factor;
                let block = if stale { 0 } else { self.block };
                self.balance(pid.idx(), t, whole, block);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(128)
    ))]

    #[test]
    fn index_decides_exactly_as_the_full_scan(
        specs in prop::collection::vec(portfolio(), 1..32),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let mut pair = Pair::new(&specs);
        for op in &ops {
            pair.apply(op);
        }
    }
}

/// 2,000 two-asset portfolios on target with a 5-point band; prices wiggling by 0.1% never leave
/// their boxes, so after the first quote (which boxes everything) a quote evaluates nothing.
#[test]
fn quotes_inside_the_boxes_evaluate_nothing() {
    let n = 2_000;
    let configs: Vec<PortfolioConfig> = (0..n)
        .map(|i| PortfolioConfig {
            name: format!("p{i}"),
            account: Address::left_padding_from(&(i as u64 + 1).to_be_bytes()),
            targets: [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(0.05), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 0.0,
            min_trade_notional: 10.0,
            cost: Default::default(),
        })
        .collect();
    let clock = Arc::new(ManualClock::new(T0));
    let mut e = Engine::new(EngineConfig::default(), &tokens(), &configs, Box::new(clock.clone())).unwrap();
    let mut out = Vec::new();
    let q = |mid: f64| {
        Event::Quote(Quote {
            instrument: InstrumentId(0),
            bid: mid,
            bid_qty: 1.0,
            ask: mid,
            ask_qty: 1.0,
            update_id: 0,
            exchange_ms: 0,
            recv_ns: T0,
        })
    };
    e.process(&q(2000.0), &mut out);
    for i in 0..n {
        for (t, whole) in [(TokenId(0), 5_000.0), (TokenId(1), 2.5)] {
            let amount = float_to_units(whole * 10f64.powi(TOKENS[t.idx()].1 as i32));
            e.process(
                &Event::Balance(Balance {
                    portfolio: PortfolioId(i as u32),
                    token: t,
                    amount,
                    block: 1,
                    recv_ns: 0,
                }),
                &mut out,
            );
        }
    }
    // Funded at current prices: every portfolio is boxed at once.
    assert_eq!(e.index_stats().boxes, n as u64);
    let before = e.index_stats().evaluated;
    for k in 0..1_000 {
        e.process(&q(if k % 2 == 0 { 2002.0 } else { 1998.0 }), &mut out);
    }
    assert_eq!(e.index_stats().evaluated, before);
    assert!(out.is_empty());
    // A 30% move leaves every box and fires every portfolio (0.5 → 0.565).
    e.process(&q(2600.0), &mut out);
    assert_eq!(e.index_stats().evaluated, before + n as u64);
    assert_eq!(out.len(), n);
    // In flight and over the band: dirty, evaluated (and suppressed) on every quote.
    e.process(&q(2600.0), &mut out);
    assert_eq!(e.index_stats().evaluated, before + 2 * n as u64);
    assert_eq!(e.stats().suppressed.in_flight, n as u64);
    // Back inside the band: evaluated once more, boxed again, then left alone.
    e.process(&q(2000.0), &mut out);
    e.process(&q(2001.0), &mut out);
    assert_eq!(e.index_stats().evaluated, before + 3 * n as u64);
}
