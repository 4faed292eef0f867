//! The engine: one deterministic state machine over tokens, prices and portfolios.
//!
//! [`Engine::process`] applies one [`Event`] and appends the intents it caused to `out`:
//!
//! | event | effect |
//! | --- | --- |
//! | `Quote` | prices of the instrument's tokens; volatility samples; drift and volatility triggers of the portfolios holding those tokens whose safe box the price left or that have none ([`hot`](crate::hot), [`index`](crate::index)) |
//! | `Trade` | the instrument's last trade (stored only) |
//! | `Block` | the chain head |
//! | `Balance` | a holding; may end the wait for post-landing balances and start the cooldown; recomputes the portfolio's safe box |
//! | `Outcome` | clears the in-flight intent; `Landed` waits for balances at or after its block, then cools down; `Expired`/`Rejected` cool down at once |
//! | `Timer` | every trigger of every portfolio, temporal ones included (portfolios without a box get one if they can) |
//!
//! "Now", for every decision, is the time of the event being decided on ([`Event::time_ns`]): a
//! quote's receipt gates the trigger it fires (cooldown, staleness), a timer's tick its triggers,
//! and a rebalance settles — its cooldown starts — when its outcome was settled or its balances
//! were read, whichever is later. Never the moment the engine's thread got to the event, nor the
//! order in which two threads' events reached it: a replay of the recorded times decides as the
//! recorded run did, however late its threads were. The injected clock only stamps when the
//! engine decided and planned (`decided_ns`, `planned_ns`: latency, measured) and starts the
//! temporal triggers at construction. A fired trigger is gated (in flight, awaiting
//! balances, cooldown, stale price: each counted) and then planned; a plan with no leg left emits no
//! intent, counts `plans_empty` and starts the cooldown (so a portfolio too small to trade does not
//! replan on every quote) and the temporal clock. Intent ids start at 1 and increase.

use crate::clock::{Clock, Nanos};
use crate::config::{self, ConfigError, EngineConfig, PortfolioConfig, TokenConfig};
use crate::event::{Balance, BlockHeader, Event, Outcome, OutcomeStatus, Trade};
use crate::ids::{InstrumentId, PortfolioId, TokenId};
use crate::index::{CandidateMode, IndexStats, PortfolioIndex};
use crate::intent::{RebalanceIntent, TriggerReason};
use crate::planner::{self, PlanAsset};
use crate::portfolio::{Portfolio, PortfolioStatus};
use crate::stats::EngineStats;
use crate::target::{TargetReject, TargetSource, TargetUpdate};
use crate::token::{Price, Token, TokenTable};
use crate::trigger::{Trigger, TriggerKind, VolTable, VolTableBuilder};

/// Keel's engine. See the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) tokens: TokenTable,
    pub(crate) vol: VolTable,
    /// Covariance of the tokens' returns, for the value model of cost-aware portfolios.
    pub(crate) cov: crate::value::CovTable,
    pub(crate) portfolios: Vec<Portfolio>,
    pub(crate) index: PortfolioIndex,
    pub(crate) head: Option<BlockHeader>,
    pub(crate) next_intent_id: u64,
    pub(crate) stats: EngineStats,
    /// The token whose exchange mid prices the native token (ETH) in intents, if set.
    pub(crate) native: Option<TokenId>,
}

impl Engine {
    /// Validates the config ([`config::validate`]) and builds the tables, the per-portfolio scratch
    /// and the candidate index. Portfolios get ids in config order; their temporal triggers count
    /// from `clock.now_ns()` at construction.
    pub fn new(
        config: EngineConfig,
        tokens: &[TokenConfig],
        portfolios: &[PortfolioConfig],
        clock: Box<dyn Clock>,
    ) -> Result<Engine, ConfigError> {
        config.validate()?;
        config::validate(tokens, portfolios)?;
        if portfolios.len() > u32::MAX as usize {
            return Err(ConfigError::new("portfolios", "too many portfolios"));
        }
        let table = TokenTable::new(tokens, config.stale_after_ms)?;
        let start = clock.now_ns();
        let mut vol = VolTableBuilder::default();
        let mut list = Vec::with_capacity(portfolios.len());
        for (i, cfg) in portfolios.iter().enumerate() {
            let p = Portfolio::new(PortfolioId(i as u32), cfg, &table, &mut vol, start).ok_or_else(|| {
                ConfigError::new(format!("portfolios[{}].targets", cfg.name), "unknown token")
            })?;
            list.push(p);
        }
        let vol = vol.build(table.len());
        let cov = crate::value::CovTable::new(table.len(), crate::value::DEFAULT_COV_HALFLIFE_SECS);
        let index = PortfolioIndex::new(&table, &list);
        Ok(Engine {
            config,
            clock,
            tokens: table,
            vol,
            cov,
            portfolios: list,
            index,
            head: None,
            next_intent_id: 1,
            stats: EngineStats::default(),
            native: None,
        })
    }

    /// Names the token (e.g. WETH) whose exchange mid is the price of the native token: every
    /// intent then carries it ([`RebalanceIntent::native_price`]) so the router can price gas in a
    /// bought token that has no pool against the wrapped native token.
    pub fn set_native_token(&mut self, token: Option<TokenId>) {
        self.native = token;
    }

    /// Applies one event; intents it causes are appended to `out` (which is not cleared).
    ///
    /// Never panics on bad input: unknown ids, invalid prices, stale balances and unmatched outcomes
    /// are counted in [`EngineStats::rejected`] and change nothing.
    #[inline]
    pub fn process(&mut self, event: &Event, out: &mut Vec<RebalanceIntent>) {
        match event {
            Event::Quote(q) => {
                self.stats.events.quotes += 1;
                self.on_quote(q, out);
            }
            Event::Trade(t) => {
                self.stats.events.trades += 1;
                self.on_trade(t);
            }
            Event::Block(b) => {
                self.stats.events.blocks += 1;
                self.head = Some(*b);
            }
            Event::Balance(b) => {
                self.stats.events.balances += 1;
                self.on_balance(b);
            }
            Event::Outcome(o) => {
                self.stats.events.outcomes += 1;
                self.on_outcome(o);
            }
            Event::Timer { now_ns } => {
                self.stats.events.timers += 1;
                self.on_timer(*now_ns, out);
            }
        }
    }

    fn on_trade(&mut self, t: &Trade) {
        match self.tokens.apply_trade(t) {
            Ok(()) => {}
            Err(crate::token::QuoteReject::UnknownInstrument) => self.stats.rejected.unknown_instrument += 1,
            Err(crate::token::QuoteReject::Invalid) => self.stats.rejected.invalid_quote += 1,
        }
    }

    fn on_balance(&mut self, b: &Balance) {
        let Some(p) = self.portfolios.get_mut(b.portfolio.idx()) else {
            self.stats.rejected.unknown_portfolio += 1;
            return;
        };
        let (Some(i), Some(token)) = (p.asset_index(b.token), self.tokens.token(b.token)) else {
            self.stats.rejected.unknown_token += 1;
            return;
        };
        if !p.set_balance(i, b.amount, token.to_whole(&b.amount), b.block) {
            self.stats.rejected.stale_balance += 1;
            return;
        }
        if let Some(block) = p.awaiting_block
            && p.balances_at_or_after(block)
        {
            // Settled when the last of its outcome and its balances came in.
            finish_rebalance(p, p.landed_ns.max(b.recv_ns));
        }
        // CPPI's targets follow the value, which a balance moves: the scan recomputes them (the
        // index's refresh scans anyway).
        if self.index.mode != CandidateMode::Index && p.targets_follow_prices() {
            let _ = p.scan(&self.tokens);
        }
        self.refresh_box(b.portfolio);
    }

    fn on_outcome(&mut self, o: &Outcome) {
        let Some(p) = self.portfolios.get_mut(o.portfolio.idx()) else {
            self.stats.rejected.unknown_portfolio += 1;
            return;
        };
        if p.in_flight != Some(o.intent) {
            self.stats.rejected.unmatched_outcome += 1;
            return;
        }
        p.in_flight = None;
        let now = o.at_ns;
        match o.status {
            OutcomeStatus::Landed { block, .. } => {
                self.stats.outcomes.landed += 1;
                p.awaiting_block = Some(block);
                p.landed_ns = now;
                if p.balances_at_or_after(block) {
                    finish_rebalance(p, now);
                }
            }
            OutcomeStatus::Expired => {
                self.stats.outcomes.expired += 1;
                p.cooldown_until = now.saturating_add(p.cooldown_ns);
            }
            OutcomeStatus::Rejected => {
                self.stats.outcomes.rejected += 1;
                p.cooldown_until = now.saturating_add(p.cooldown_ns);
            }
        }
    }

    fn on_timer(&mut self, tick_ns: Nanos, out: &mut Vec<RebalanceIntent>) {
        let now = tick_ns;
        let tokens = &self.tokens;
        self.cov.on_timer(now, |t| tokens.price(t).filter(|p| p.is_known()).map(|p| p.mid));
        for i in 0..self.portfolios.len() {
            let pid = PortfolioId(i as u32);
            if self.timer_targets(pid, now) {
                self.refresh_box(pid);
            }
            self.evaluate(pid, Some(now), tick_ns, out);
        }
    }

    /// The timer's part of the moving targets: a momentum ring sample, the external backstop.
    /// Returns true when the targets changed. No allocation.
    #[inline]
    fn timer_targets(&mut self, pid: PortfolioId, now: Nanos) -> bool {
        let Some(p) = self.portfolios.get_mut(pid.idx()) else { return false };
        let changed = match &mut p.source {
            TargetSource::Fixed | TargetSource::Cppi(_) => return false,
            TargetSource::Momentum(m) => {
                let (tokens, assets) = (&self.tokens, &p.assets);
                let mid = |i: usize| {
                    let t = *assets.get(i)?;
                    let price = tokens.price(t)?;
                    (price.is_known() && !tokens.is_stale(t, now)).then_some(price.mid)
                };
                let changed = m.on_timer(now, mid, &mut p.targets);
                self.stats.targets.momentum_retargets += u64::from(changed);
                changed
            }
            TargetSource::External(e) => {
                let changed = e.check_stale(now, &mut p.targets);
                self.stats.targets.external_fallbacks += u64::from(changed);
                changed
            }
        };
        if changed {
            p.sync_targets();
        }
        changed
    }

    /// Applies a predictor's weights (or its fallback) to an external portfolio: checked again
    /// here (a distribution, at most `max_step` from the targets in force), counted, and the
    /// portfolio's bands and box follow. Off the hot path; allocates nothing. The runtime drains
    /// its bounded queue of updates between events.
    pub fn apply_target_update(&mut self, u: &TargetUpdate) -> Result<(), TargetReject> {
        let now = self.clock.now_ns();
        let Some(p) = self.portfolios.get_mut(u.portfolio.idx()) else {
            self.stats.targets.external_refused += 1;
            return Err(TargetReject::NotExternal(u.portfolio));
        };
        let TargetSource::External(e) = &mut p.source else {
            self.stats.targets.external_refused += 1;
            return Err(TargetReject::NotExternal(u.portfolio));
        };
        if let Err(r) = e.apply(u, now, &mut p.targets) {
            self.stats.targets.external_refused += 1;
            return Err(r);
        }
        if u.fallback {
            self.stats.targets.external_fallbacks += 1;
        } else {
            self.stats.targets.external_applied += 1;
        }
        p.sync_targets();
        self.refresh_box(u.portfolio);
        Ok(())
    }

    /// Applies the on-chain registry's entry for a portfolio ([`crate::registry`]): its targets,
    /// drift bands and pause from the next decision on; counted, and the portfolio's box follows.
    /// A refused entry changes nothing. Off the hot path; allocates only on a portfolio's first
    /// registry change. The runtime drains its bounded queue of registry changes between events.
    pub fn apply_registry(
        &mut self,
        e: &crate::registry::RegistryEntry,
    ) -> Result<(), crate::registry::RegistryReject> {
        let Some(p) = self.portfolios.get_mut(e.portfolio.idx()) else {
            self.stats.targets.registry_refused += 1;
            return Err(crate::registry::RegistryReject::UnknownPortfolio(e.portfolio));
        };
        if let Err(r) = crate::registry::apply(p, e, &self.tokens) {
            self.stats.targets.registry_refused += 1;
            return Err(r);
        }
        self.stats.targets.registry_applied += 1;
        self.refresh_box(e.portfolio);
        Ok(())
    }

    /// A trigger fired on `pid`: gate it, plan it, emit the intent. Off the hot path.
    #[cold]
    #[inline(never)]
    pub(crate) fn fire(
        &mut self,
        pid: PortfolioId,
        reason: TriggerReason,
        kind: TriggerKind,
        event_recv_ns: Nanos,
        out: &mut Vec<RebalanceIntent>,
    ) {
        // Decided on the event's time; the clock says when the decision was made (measured).
        let now = event_recv_ns;
        let decided_ns = self.clock.now_ns();
        let Some(p) = self.portfolios.get_mut(pid.idx()) else { return };
        let s = &mut self.stats.suppressed;
        if p.registry_paused {
            s.registry_paused += 1;
            return;
        }
        if p.in_flight.is_some() {
            s.in_flight += 1;
            return;
        }
        if p.awaiting_block.is_some() {
            s.awaiting_balances += 1;
            return;
        }
        if now < p.cooldown_until {
            s.cooldown += 1;
            return;
        }
        if p.assets.iter().any(|&t| self.tokens.is_stale(t, now)) {
            s.stale_price += 1;
            return;
        }
        match kind {
            TriggerKind::Drift => self.stats.triggers.drift += 1,
            TriggerKind::Volatility => self.stats.triggers.volatility += 1,
            TriggerKind::Temporal => self.stats.triggers.temporal += 1,
        }
        let drift = p.max_drift_of(&p.weights);
        let assets: Vec<PlanAsset> = p
            .assets
            .iter()
            .enumerate()
            .map(|(i, &t)| PlanAsset {
                token: t,
                holding: p.holdings[i],
                scale: self.tokens.token(t).map_or(1.0, |k| k.scale),
                mid: self.tokens.price(t).map_or(f64::NAN, |x| x.mid),
                target: p.targets[i],
                band: p.asset_band(i, &self.tokens, &self.vol),
            })
            .collect();
        let plan = planner::plan(&assets, p.mode, p.min_trade_notional);
        self.stats.legs_skipped += u64::from(plan.skipped);
        if plan.legs.is_empty() {
            self.stats.plans_empty += 1;
            p.cooldown_until = now.saturating_add(p.cooldown_ns);
            p.last_rebalance_ns = now;
            return;
        }
        let id = self.next_intent_id;
        self.next_intent_id += 1;
        p.in_flight = Some(id);
        self.stats.intents_emitted += 1;
        self.stats.legs_planned += plan.legs.len() as u64;
        let value = p.cost.as_ref().map(|c| {
            let d: Vec<f64> = p.weights.iter().zip(&p.targets).map(|(w, t)| w - t).collect();
            let value = p
                .slots
                .iter()
                .map(|s| s.whole * self.tokens.price(s.token).map_or(f64::NAN, |x| x.mid))
                .sum::<f64>();
            crate::value::ValueInputs {
                tracking_var_per_s: self.cov.quadratic(&p.assets, &d),
                portfolio_value: value,
                kappa: c.kappa,
                horizon_secs: c.horizon_secs,
                margin: c.margin,
                sizes: c.sizes.clone(),
            }
        });
        let planned_ns = self.clock.now_ns();
        out.push(RebalanceIntent {
            id,
            portfolio: pid,
            account: p.account,
            reason,
            drift,
            legs: plan.legs,
            event_recv_ns,
            decided_ns,
            planned_ns,
            value,
            native_price: self
                .native
                .and_then(|t| self.tokens.price(t))
                .map(|x| x.mid)
                .filter(|m| m.is_finite() && *m > 0.0),
        });
    }

    // ----- candidate selection -----

    /// How quotes pick the portfolios to evaluate.
    pub fn candidate_mode(&self) -> CandidateMode {
        self.index.mode
    }

    /// Switches how quotes pick the portfolios to evaluate. Decisions and stats are the same either
    /// way; [`CandidateMode::FullScan`] is the reference the index is tested and benchmarked
    /// against. Switching to [`CandidateMode::Index`] starts every portfolio without a box (each is
    /// boxed on its next evaluation or balance). Allocates: not for the hot path.
    pub fn set_candidate_mode(&mut self, mode: CandidateMode) {
        if mode == self.index.mode {
            return;
        }
        self.index.mode = mode;
        if mode == CandidateMode::Index {
            self.index.reset(&self.portfolios);
        }
    }

    /// The candidate index's counters.
    pub fn index_stats(&self) -> IndexStats {
        self.index.stats
    }

    // ----- lookups and reporting -----

    /// The engine-wide config.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The current time of the injected clock.
    pub fn now_ns(&self) -> Nanos {
        self.clock.now_ns()
    }

    /// The token table (tokens, instruments, prices).
    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    /// A token by id.
    pub fn token(&self, id: TokenId) -> Option<&Token> {
        self.tokens.token(id)
    }

    /// A token's id by config symbol.
    pub fn token_id(&self, symbol: &str) -> Option<TokenId> {
        self.tokens.id_of(symbol)
    }

    /// A token's current price.
    pub fn price(&self, id: TokenId) -> Option<&Price> {
        self.tokens.price(id)
    }

    /// Exchange symbols by [`InstrumentId`], for the feed's lookup table.
    pub fn instrument_symbols(&self) -> &[String] {
        self.tokens.instrument_symbols()
    }

    /// An instrument's last trade print.
    pub fn last_trade(&self, id: InstrumentId) -> Option<&Trade> {
        self.tokens.last_trade(id)
    }

    /// The latest chain head received.
    pub fn head(&self) -> Option<&BlockHeader> {
        self.head.as_ref()
    }

    /// All portfolios, indexed by [`PortfolioId`].
    pub fn portfolios(&self) -> &[Portfolio] {
        &self.portfolios
    }

    /// A portfolio by id.
    pub fn portfolio(&self, id: PortfolioId) -> Option<&Portfolio> {
        self.portfolios.get(id.idx())
    }

    /// A portfolio's id by name.
    pub fn portfolio_id(&self, name: &str) -> Option<PortfolioId> {
        self.portfolios.iter().find(|p| p.name() == name).map(Portfolio::id)
    }

    /// A portfolio's lifecycle state now.
    pub fn status(&self, id: PortfolioId) -> Option<PortfolioStatus> {
        Some(self.portfolio(id)?.status(self.clock.now_ns()))
    }

    /// Calls `f(token, weight, target)` for each asset of a portfolio, with weights at the current
    /// mids, without allocating. Returns false (calling nothing) when the weights are unknown
    /// (unknown id, a missing balance or price, or a zero value).
    pub fn visit_weights(&self, id: PortfolioId, mut f: impl FnMut(TokenId, f64, f64)) -> bool {
        let Some(p) = self.portfolio(id) else { return false };
        let Some(total) = self.portfolio_value(id) else { return false };
        let prices = self.tokens.prices();
        for s in &p.slots {
            let mid = prices.get(s.token.idx()).map_or(f64::NAN, |x| x.mid);
            f(s.token, s.whole * mid / total, s.target);
        }
        true
    }

    /// `(token, weight, target)` per asset at the current mids; `None` when unknown (see
    /// [`Engine::visit_weights`]).
    pub fn portfolio_weights(&self, id: PortfolioId) -> Option<Vec<(TokenId, f64, f64)>> {
        let mut v = Vec::new();
        self.visit_weights(id, |t, w, x| v.push((t, w, x))).then_some(v)
    }

    /// A portfolio's value in the numeraire at the current mids; `None` when a balance or price is
    /// missing, or the value is zero.
    pub fn portfolio_value(&self, id: PortfolioId) -> Option<f64> {
        let p = self.portfolio(id)?;
        if !p.holdings_known() {
            return None;
        }
        let prices = self.tokens.prices();
        let mut total = 0.0;
        for s in &p.slots {
            let price = prices.get(s.token.idx())?;
            if !price.is_known() {
                return None;
            }
            total += s.whole * price.mid;
        }
        (total > 0.0 && total.is_finite()).then_some(total)
    }

    /// Largest `|weight - target|` of a portfolio now; `None` when the weights are unknown.
    pub fn max_drift(&self, id: PortfolioId) -> Option<f64> {
        let mut m: f64 = 0.0;
        self.visit_weights(id, |_, w, t| m = m.max((w - t).abs())).then_some(m)
    }

    /// The band in force, for plots: the tightest absolute band over the portfolio's drift and
    /// volatility triggers and its assets (volatility bands as they stand now). NaN for an unknown
    /// id or a portfolio with only temporal triggers.
    pub fn current_band(&self, id: PortfolioId) -> f64 {
        let Some(p) = self.portfolio(id) else { return f64::NAN };
        let b = (0..p.assets.len())
            .map(|i| p.asset_band(i, &self.tokens, &self.vol))
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() { b } else { f64::NAN }
    }

    /// The σ driving a portfolio's first volatility trigger (largest annualised σ of its assets), once
    /// every asset has warmed up; `None` otherwise or without such a trigger.
    pub fn portfolio_sigma(&self, id: PortfolioId) -> Option<f64> {
        let p = self.portfolio(id)?;
        let slot = p.triggers.iter().find_map(|t| match t {
            Trigger::Volatility { slot, .. } => Some(*slot),
            _ => None,
        })?;
        p.vol_sigma(&self.tokens, &self.vol, slot)
    }

    /// A copy of the counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }
}

/// Post-landing balances are in: the rebalance is complete; start the cooldown.
fn finish_rebalance(p: &mut Portfolio, now: Nanos) {
    p.awaiting_block = None;
    p.cooldown_until = now.saturating_add(p.cooldown_ns);
    p.last_rebalance_ns = now;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use alloy_primitives::{Address, U256};

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{PlanMode, PriceSource, TriggerConfig};
    use crate::event::Quote;
    use crate::planner::float_to_units;
    use crate::trigger::SECONDS_PER_YEAR;

    const T0: Nanos = 1_000_000_000_000;
    const SEC: Nanos = 1_000_000_000;
    const WETH: TokenId = TokenId(0);
    const USDC: TokenId = TokenId(1);
    const WBTC: TokenId = TokenId(2);
    const ETHUSDT: InstrumentId = InstrumentId(0);
    const BTCUSDT: InstrumentId = InstrumentId(1);
    const P0: PortfolioId = PortfolioId(0);

    fn tokens() -> Vec<TokenConfig> {
        let t = |symbol: &str, b: u8, decimals: u8, price: PriceSource| TokenConfig {
            symbol: symbol.into(),
            address: Address::repeat_byte(b),
            decimals,
            price,
        };
        vec![
            t("WETH", 1, 18, PriceSource::Instrument { symbol: "ETHUSDT".into() }),
            t("USDC", 2, 6, PriceSource::Fixed { fixed: 1.0 }),
            t("WBTC", 3, 8, PriceSource::Instrument { symbol: "BTCUSDT".into() }),
        ]
    }

    fn portfolio(targets: &[(&str, f64)], triggers: Vec<TriggerConfig>, mode: PlanMode) -> PortfolioConfig {
        PortfolioConfig {
            name: "core".into(),
            account: Address::repeat_byte(0xaa),
            targets: targets.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
            triggers,
            mode,
            cooldown_secs: 10.0,
            min_trade_notional: 10.0,
            cost: Default::default(),
        }
    }

    fn abs(b: f64) -> TriggerConfig {
        TriggerConfig::Drift { abs_band: Some(b), rel_band: None }
    }

    struct Rig {
        e: Engine,
        clock: Arc<ManualClock>,
        out: Vec<RebalanceIntent>,
        block: u64,
    }

    impl Rig {
        fn new(p: PortfolioConfig) -> Self {
            let clock = Arc::new(ManualClock::new(T0));
            let e = Engine::new(EngineConfig::default(), &tokens(), &[p], Box::new(clock.clone())).unwrap();
            Self { e, clock, out: Vec::new(), block: 10 }
        }

        fn eth_usdc(triggers: Vec<TriggerConfig>) -> Self {
            Self::new(portfolio(&[("WETH", 0.5), ("USDC", 0.5)], triggers, PlanMode::ToTarget))
        }

        fn send(&mut self, ev: Event) -> usize {
            let before = self.out.len();
            self.e.process(&ev, &mut self.out);
            self.out.len() - before
        }

        fn quote(&mut self, instrument: InstrumentId, mid: f64) -> usize {
            let now = self.clock.now_ns();
            self.send(Event::Quote(Quote {
                instrument,
                bid: mid,
                bid_qty: 1.0,
                ask: mid,
                ask_qty: 1.0,
                update_id: 0,
                exchange_ms: 0,
                recv_ns: now,
            }))
        }

        fn balance_at(&mut self, token: TokenId, whole: f64, block: u64) -> usize {
            let dec = self.e.token(token).unwrap().decimals;
            let amount = float_to_units(whole * 10f64.powi(dec as i32));
            let recv_ns = self.clock.now_ns();
            self.send(Event::Balance(Balance { portfolio: P0, token, amount, block, recv_ns }))
        }

        fn balance(&mut self, token: TokenId, whole: f64) -> usize {
            self.balance_at(token, whole, self.block)
        }

        fn outcome(&mut self, intent: u64, status: OutcomeStatus) -> usize {
            let at_ns = self.clock.now_ns();
            self.send(Event::Outcome(Outcome { intent, portfolio: P0, status, at_ns }))
        }

        fn timer(&mut self) -> usize {
            let now = self.clock.now_ns();
            self.send(Event::Timer { now_ns: now })
        }

        fn whole(&self, token: TokenId) -> f64 {
            let p = self.e.portfolio(P0).unwrap();
            let i = p.asset_index(token).unwrap();
            self.e.token(token).unwrap().to_whole(&p.holdings()[i])
        }

        /// Executes the last intent's legs at the current mids and reports the new balances at
        /// `block`.
        fn settle_last(&mut self, block: u64) {
            let intent = self.out.last().unwrap().clone();
            let assets = self.e.portfolio(P0).unwrap().assets().to_vec();
            let mut h: Vec<f64> = assets.iter().map(|&t| self.whole(t)).collect();
            for l in &intent.legs {
                let s = assets.iter().position(|&t| t == l.sell).unwrap();
                let b = assets.iter().position(|&t| t == l.buy).unwrap();
                let sold = self.e.token(l.sell).unwrap().to_whole(&l.amount_in);
                h[s] -= sold;
                h[b] += sold * l.reference_price;
            }
            for (t, x) in assets.iter().zip(h) {
                self.balance_at(*t, x, block);
            }
        }
    }

    /// ETH/USDC with 1 WETH and 2000 USDC, ETH at 2000: exactly on target.
    fn seeded(triggers: Vec<TriggerConfig>) -> Rig {
        let mut r = Rig::eth_usdc(triggers);
        r.quote(ETHUSDT, 2000.0);
        r.balance(WETH, 1.0);
        r.balance(USDC, 2000.0);
        r
    }

    /// The ETH mid at which WETH's weight is `w` with 1 WETH and `usdc` USDC.
    fn mid_for(w: f64, usdc: f64) -> f64 {
        w * usdc / (1.0 - w)
    }

    #[test]
    fn abs_band_fires_exactly_when_crossed() {
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.e.max_drift(P0), Some(0.0));
        let edge = mid_for(0.55, 2000.0);
        assert_eq!(r.quote(ETHUSDT, edge * (1.0 - 1e-9)), 0);
        assert_eq!(r.quote(ETHUSDT, mid_for(0.45, 2000.0) * (1.0 + 1e-9)), 0);
        assert_eq!(r.quote(ETHUSDT, edge * (1.0 + 1e-9)), 1);
        let i = &r.out[0];
        assert_eq!(i.id, 1);
        assert_eq!(i.portfolio, P0);
        assert_eq!(i.account, Address::repeat_byte(0xaa));
        match i.reason {
            TriggerReason::Drift { token, weight, target, band } => {
                assert_eq!((token, target, band), (WETH, 0.5, 0.05));
                assert!(weight > 0.55 && weight < 0.55 + 1e-8);
            }
            other => panic!("{other:?}"),
        }
        assert!((i.drift - 0.05).abs() < 1e-8);
        assert_eq!(i.legs.len(), 1);
        assert_eq!((i.legs[0].sell, i.legs[0].buy), (WETH, USDC));
        assert_eq!(i.event_recv_ns, T0);
        assert_eq!(i.decided_ns, T0);
        assert_eq!(r.e.stats().triggers.drift, 1);
        assert_eq!(r.e.stats().intents_emitted, 1);
    }

    #[test]
    fn abs_band_fires_downwards_too() {
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, mid_for(0.45, 2000.0) * (1.0 - 1e-9)), 1);
        assert_eq!((r.out[0].legs[0].sell, r.out[0].legs[0].buy), (USDC, WETH));
    }

    #[test]
    fn rel_band_fires_exactly_when_crossed() {
        // Targets 0.4 / 0.6 with a 10% relative band: WETH's band is 0.04, USDC's 0.06, so WETH
        // binds: fires outside [0.36, 0.44].
        let p = portfolio(
            &[("WETH", 0.4), ("USDC", 0.6)],
            vec![TriggerConfig::Drift { abs_band: None, rel_band: Some(0.1) }],
            PlanMode::ToTarget,
        );
        let mut r = Rig::new(p);
        r.quote(ETHUSDT, 2000.0);
        r.balance(WETH, 1.0);
        r.balance(USDC, 3000.0);
        assert_eq!(r.e.current_band(P0), 0.04000000000000001f64.min(0.1 * 0.4));
        assert_eq!(r.quote(ETHUSDT, mid_for(0.44, 3000.0) * (1.0 - 1e-9)), 0);
        assert_eq!(r.quote(ETHUSDT, mid_for(0.36, 3000.0) * (1.0 + 1e-9)), 0);
        assert_eq!(r.quote(ETHUSDT, mid_for(0.36, 3000.0) * (1.0 - 1e-9)), 1);
        match r.out[0].reason {
            TriggerReason::Drift { token, band, .. } => {
                assert_eq!(token, WETH);
                assert!((band - 0.04).abs() < 1e-15);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn temporal_fires_on_interval() {
        let mut r = seeded(vec![TriggerConfig::Temporal { interval_secs: 60.0 }]);
        // Slightly off target so that the plan has a leg above the minimum notional.
        r.quote(ETHUSDT, 2100.0);
        r.clock.set(T0 + 59 * SEC);
        r.quote(ETHUSDT, 2100.0);
        assert_eq!(r.timer(), 0, "quotes never fire temporal triggers; timers do, on the interval");
        r.clock.set(T0 + 60 * SEC);
        assert_eq!(r.quote(ETHUSDT, 2100.0), 0);
        assert_eq!(r.timer(), 1);
        match r.out[0].reason {
            TriggerReason::Temporal { elapsed_s } => assert!((elapsed_s - 60.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.e.stats().triggers.temporal, 1);
        // Landed and settled at T0 + 61 s: the next one is due 60 s after that (cooldown is 10 s).
        r.clock.set(T0 + 61 * SEC);
        r.outcome(1, OutcomeStatus::Landed { block: 20, gas_used: 1 });
        r.settle_last(20);
        r.clock.set(T0 + 120 * SEC);
        r.quote(ETHUSDT, 2200.0);
        assert_eq!(r.timer(), 0);
        r.clock.set(T0 + 121 * SEC);
        r.quote(ETHUSDT, 2200.0);
        assert_eq!(r.timer(), 1);
        // A timer on a stale price is suppressed.
        r.outcome(2, OutcomeStatus::Rejected);
        r.clock.set(T0 + 200 * SEC);
        assert_eq!(r.timer(), 0);
        assert_eq!(r.e.stats().suppressed.stale_price, 1);
    }

    #[test]
    fn temporal_with_nothing_to_trade_restarts_the_interval() {
        let mut r = seeded(vec![TriggerConfig::Temporal { interval_secs: 60.0 }]);
        r.clock.set(T0 + 60 * SEC);
        r.quote(ETHUSDT, 2000.0);
        assert_eq!(r.timer(), 0);
        assert_eq!(r.e.stats().plans_empty, 1);
        assert_eq!(r.e.portfolio(P0).unwrap().last_rebalance_ns(), T0 + 60 * SEC);
        r.clock.set(T0 + 119 * SEC);
        r.quote(ETHUSDT, 2000.0);
        assert_eq!(r.timer(), 0);
        assert_eq!(r.e.stats().plans_empty, 1);
    }

    #[test]
    fn any_trigger_fires() {
        let mut r = seeded(vec![abs(0.05), TriggerConfig::Temporal { interval_secs: 60.0 }]);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 1);
        assert!(matches!(r.out[0].reason, TriggerReason::Drift { .. }));
    }

    /// Feeds one quote per second for `secs` seconds, alternating log returns of ±`r`.
    fn oscillate(r: &mut Rig, mid: &mut f64, step: &mut u64, secs: u64, ret: f64) {
        for _ in 0..secs {
            r.clock.advance(SEC);
            *step += 1;
            *mid *= if *step % 2 == 1 { ret.exp() } else { (-ret).exp() };
            r.quote(ETHUSDT, *mid);
        }
    }

    #[test]
    fn vol_band_widens_in_volatile_regime_and_narrows_in_calm() {
        let vol = TriggerConfig::Volatility {
            base_band: 0.05,
            reference_vol: 0.6,
            min_band: 0.01,
            max_band: 0.2,
            halflife_secs: 10.0,
        };
        // No balances: nothing fires, but volatility is tracked per token.
        let mut r = Rig::eth_usdc(vec![vol]);
        let (mut mid, mut step) = (2000.0, 0u64);
        r.quote(ETHUSDT, mid);
        oscillate(&mut r, &mut mid, &mut step, 5, 0.01);
        assert_eq!(r.e.current_band(P0), 0.05, "before warm-up: base band");
        assert_eq!(r.e.portfolio_sigma(P0), None);
        // σ = 1.2 (twice the reference): band 0.1.
        let ret = 1.2 / SECONDS_PER_YEAR.sqrt();
        oscillate(&mut r, &mut mid, &mut step, 300, ret);
        let sigma = r.e.portfolio_sigma(P0).unwrap();
        assert!((sigma - 1.2).abs() < 1e-5, "{sigma}");
        assert!((r.e.current_band(P0) - 0.1).abs() < 1e-6);
        // Volatile: the band widens to its cap.
        let mut last = r.e.current_band(P0);
        for _ in 0..10 {
            oscillate(&mut r, &mut mid, &mut step, 2, 0.02);
            let b = r.e.current_band(P0);
            assert!(b >= last - 1e-12 && b <= 0.2, "{b} after {last}");
            last = b;
        }
        assert_eq!(last, 0.2);
        // Calm: it narrows to its floor, never below.
        for _ in 0..100 {
            oscillate(&mut r, &mut mid, &mut step, 4, 1e-6);
            let b = r.e.current_band(P0);
            assert!(b <= last + 1e-12 && b >= 0.01, "{b} after {last}");
            last = b;
        }
        assert_eq!(last, 0.01);
    }

    #[test]
    fn vol_trigger_fires_on_the_scaled_band() {
        let vol = TriggerConfig::Volatility {
            base_band: 0.05,
            reference_vol: 0.6,
            min_band: 0.01,
            max_band: 0.2,
            halflife_secs: 10.0,
        };
        let mut r = Rig::eth_usdc(vec![vol]);
        let (mut mid, mut step) = (2000.0, 0u64);
        r.quote(ETHUSDT, mid);
        oscillate(&mut r, &mut mid, &mut step, 300, 1.2 / SECONDS_PER_YEAR.sqrt());
        assert!((r.e.current_band(P0) - 0.1).abs() < 1e-6);
        // 0.58: outside the base band, inside the scaled one.
        r.balance(WETH, 1.0);
        r.balance(USDC, 0.42 / 0.58 * mid);
        assert_eq!(r.quote(ETHUSDT, mid), 0);
        assert_eq!(r.e.stats().triggers.volatility, 0);
        r.balance(USDC, 0.38 / 0.62 * mid);
        assert_eq!(r.quote(ETHUSDT, mid), 1);
        assert_eq!(r.e.stats().triggers.volatility, 1);
        match r.out[0].reason {
            TriggerReason::Drift { band, .. } => assert!((band - 0.1).abs() < 1e-6),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_flight_and_cooldown_suppress() {
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 1);
        assert_eq!(r.quote(ETHUSDT, 2600.0), 0);
        assert_eq!(r.timer(), 0);
        assert_eq!(r.e.stats().suppressed.in_flight, 2);
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::InFlight(1)));
        // An outcome for another intent changes nothing.
        assert_eq!(r.outcome(7, OutcomeStatus::Expired), 0);
        assert_eq!(r.e.stats().rejected.unmatched_outcome, 1);
        r.clock.advance(SEC);
        r.outcome(1, OutcomeStatus::Expired);
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::Cooldown(T0 + 11 * SEC)));
        r.clock.set(T0 + 11 * SEC - 1);
        assert_eq!(r.quote(ETHUSDT, 2600.0), 0);
        assert_eq!(r.e.stats().suppressed.cooldown, 1);
        r.clock.set(T0 + 11 * SEC);
        assert_eq!(r.quote(ETHUSDT, 2600.0), 1);
        assert_eq!(r.out[1].id, 2);
        // Rejected cools down at once too.
        r.outcome(2, OutcomeStatus::Rejected);
        assert_eq!(r.quote(ETHUSDT, 2600.0), 0);
        assert_eq!(r.e.stats().suppressed.cooldown, 2);
        assert_eq!(r.e.stats().outcomes.expired, 1);
        assert_eq!(r.e.stats().outcomes.rejected, 1);
    }

    #[test]
    fn landed_outcome_waits_for_post_landing_balances() {
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 1);
        r.outcome(1, OutcomeStatus::Landed { block: 100, gas_used: 150_000 });
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::AwaitingBalances(100)));
        // Pre-trade holdings still look drifted: must not fire again.
        r.clock.set(T0 + 60 * SEC);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 0);
        assert_eq!(r.e.stats().suppressed.awaiting_balances, 1);
        // Balances before the landing block don't release it; older than held ones are refused.
        r.balance_at(USDC, 2000.0, 99);
        r.balance_at(USDC, 2000.0, 98);
        assert_eq!(r.e.stats().rejected.stale_balance, 1);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 0);
        assert_eq!(r.e.stats().suppressed.awaiting_balances, 2);
        // One asset at the landing block is not enough.
        r.clock.set(T0 + 61 * SEC);
        r.settle_last(100);
        // Both in: cooldown from now.
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::Cooldown(T0 + 71 * SEC)));
        assert!(r.e.max_drift(P0).unwrap() < 1e-9);
        assert_eq!(r.e.stats().outcomes.landed, 1);
    }

    /// The engine decides on the events' times, not on when it got to them: an outcome taken in
    /// late (a thread hand-off behind a later quote) still starts the cooldown when it was settled,
    /// and a quote is gated at its own receipt time — so a replay of the recorded times, which
    /// takes every event in at once, decides the same.
    #[test]
    fn cooldowns_run_on_event_times_whatever_the_clock_says_when_the_event_is_taken_in() {
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 1);
        // Settled by the router at T0 + 1 s; the engine's thread gets to it 3 ms later, after a
        // quote received at T0 + 1 s + 1 ms.
        let settled = T0 + SEC;
        r.clock.set(settled + 1_000_000);
        assert_eq!(r.quote(ETHUSDT, 2600.0), 0, "in flight");
        r.clock.set(settled + 3_000_000);
        r.send(Event::Outcome(Outcome {
            intent: 1,
            portfolio: P0,
            status: OutcomeStatus::Expired,
            at_ns: settled,
        }));
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::Cooldown(settled + 10 * SEC)));
        // A quote received 1 ns before the cooldown ends is held even if it is taken in after the
        // end; one received at the end fires even if it is taken in much later.
        let quote_at = |r: &mut Rig, recv_ns: Nanos, taken_in: Nanos| {
            r.clock.set(taken_in);
            r.send(Event::Quote(Quote {
                instrument: ETHUSDT,
                bid: 2600.0,
                bid_qty: 1.0,
                ask: 2600.0,
                ask_qty: 1.0,
                update_id: 0,
                exchange_ms: 0,
                recv_ns,
            }))
        };
        let end = settled + 10 * SEC;
        assert_eq!(quote_at(&mut r, end - 1, end + 5_000_000), 0);
        assert_eq!(r.e.stats().suppressed.cooldown, 1);
        assert_eq!(quote_at(&mut r, end, end + 9_000_000), 1);
        // The intent says when it was decided (the clock) and on what (the quote's time).
        let i = r.out.last().unwrap();
        assert_eq!((i.event_recv_ns, i.decided_ns), (end, end + 9_000_000));

        // A landing settles when the later of its outcome and its balances came in: balances read
        // at +2 s and taken in first, the outcome settled at +2.5 s and taken in at +4 s.
        let landed_at = end + 2 * SEC + SEC / 2;
        r.clock.set(end + 2 * SEC);
        r.settle_last(100);
        r.clock.set(end + 4 * SEC);
        r.send(Event::Outcome(Outcome {
            intent: 2,
            portfolio: P0,
            status: OutcomeStatus::Landed { block: 100, gas_used: 1 },
            at_ns: landed_at,
        }));
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::Cooldown(landed_at + 10 * SEC)));
    }

    #[test]
    fn landed_after_balances_already_arrived_cools_down_at_once() {
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 1);
        r.settle_last(100);
        r.outcome(1, OutcomeStatus::Landed { block: 100, gas_used: 1 });
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::Cooldown(T0 + 10 * SEC)));
    }

    #[test]
    fn one_balance_at_landing_block_is_not_enough() {
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, 2500.0), 1);
        r.outcome(1, OutcomeStatus::Landed { block: 100, gas_used: 1 });
        r.balance_at(WETH, 0.9, 100);
        assert_eq!(r.e.status(P0), Some(PortfolioStatus::AwaitingBalances(100)));
        r.balance_at(USDC, 2250.0, 101);
        assert!(matches!(r.e.status(P0), Some(PortfolioStatus::Cooldown(_))));
    }

    #[test]
    fn stale_price_suppresses() {
        let p =
            portfolio(&[("WETH", 0.4), ("WBTC", 0.4), ("USDC", 0.2)], vec![abs(0.05)], PlanMode::ToTarget);
        let mut r = Rig::new(p);
        r.quote(ETHUSDT, 2000.0);
        r.quote(BTCUSDT, 40_000.0);
        r.balance(WETH, 2.0);
        r.balance(WBTC, 0.1);
        r.balance(USDC, 2000.0);
        assert!(r.e.max_drift(P0).unwrap() < 1e-12);
        // BTC's price is 5 s old: not yet stale; 5 s + 1 ns: stale.
        r.clock.set(T0 + 5 * SEC + 1);
        assert!(r.e.tokens().is_stale(WBTC, r.clock.now_ns()));
        assert!(!r.e.tokens().is_stale(USDC, r.clock.now_ns()));
        assert_eq!(r.quote(ETHUSDT, 3000.0), 0);
        assert_eq!(r.timer(), 0);
        assert_eq!(r.e.stats().suppressed.stale_price, 2);
        assert_eq!(r.quote(BTCUSDT, 40_000.0), 1);
    }

    #[test]
    fn missing_prices_and_holdings_suppress() {
        let mut r = Rig::eth_usdc(vec![abs(0.05)]);
        r.balance(WETH, 1.0);
        r.balance(USDC, 2000.0);
        assert_eq!(r.timer(), 0);
        assert_eq!(r.e.stats().suppressed.missing_price, 1);
        assert_eq!(r.e.portfolio_value(P0), None);
        let mut r = Rig::eth_usdc(vec![abs(0.05)]);
        r.balance(WETH, 1.0);
        assert_eq!(r.quote(ETHUSDT, 5000.0), 0);
        assert_eq!(r.e.stats().suppressed.holdings_unknown, 1);
        assert_eq!(r.e.portfolio_weights(P0), None);
        r.balance(USDC, 0.0);
        r.balance(WETH, 0.0);
        assert_eq!(r.quote(ETHUSDT, 5000.0), 0);
        assert_eq!(r.e.stats().suppressed.zero_value, 1);
    }

    #[test]
    fn to_target_legs_restore_targets() {
        let p =
            portfolio(&[("WETH", 0.3), ("WBTC", 0.3), ("USDC", 0.4)], vec![abs(0.02)], PlanMode::ToTarget);
        let mut r = Rig::new(p);
        r.quote(ETHUSDT, 2000.0);
        r.quote(BTCUSDT, 40_000.0);
        r.balance(WETH, 300.0);
        r.balance(WBTC, 15.0);
        r.balance(USDC, 800_000.0);
        assert_eq!(r.quote(ETHUSDT, 2600.0), 1);
        r.outcome(1, OutcomeStatus::Landed { block: 11, gas_used: 1 });
        r.settle_last(11);
        r.e.visit_weights(P0, |_, w, t| assert!((w - t).abs() < 1e-9, "{w} vs {t}"));
        assert!(r.e.max_drift(P0).unwrap() < 1e-9);
    }

    #[test]
    fn to_band_legs_stop_at_the_edge() {
        let p = portfolio(&[("WETH", 0.5), ("USDC", 0.5)], vec![abs(0.05)], PlanMode::ToBand);
        let mut r = Rig::new(p);
        r.quote(ETHUSDT, 2000.0);
        r.balance(WETH, 1.0);
        r.balance(USDC, 2000.0);
        assert_eq!(r.quote(ETHUSDT, 3000.0), 1);
        r.settle_last(11);
        let w = r.e.portfolio_weights(P0).unwrap();
        assert!((w[0].1 - 0.55).abs() < 1e-9 && (w[1].1 - 0.45).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn small_portfolio_plans_nothing_and_cools_down() {
        let mut r = Rig::eth_usdc(vec![abs(0.05)]);
        r.quote(ETHUSDT, 2000.0);
        r.balance(WETH, 0.001);
        r.balance(USDC, 1.0);
        assert_eq!(r.quote(ETHUSDT, 2000.0), 0);
        let s = r.e.stats();
        assert_eq!((s.plans_empty, s.legs_skipped, s.intents_emitted), (1, 1, 0));
        assert_eq!(r.quote(ETHUSDT, 2000.0), 0);
        assert_eq!(r.e.stats().suppressed.cooldown, 1);
    }

    #[test]
    fn bad_input_is_counted_not_fatal() {
        let mut r = seeded(vec![abs(0.05)]);
        let q = Quote {
            instrument: InstrumentId(9),
            bid: 1.0,
            bid_qty: 1.0,
            ask: 1.0,
            ask_qty: 1.0,
            update_id: 0,
            exchange_ms: 0,
            recv_ns: 0,
        };
        r.send(Event::Quote(q));
        r.send(Event::Quote(Quote { instrument: ETHUSDT, bid: f64::NAN, ..q }));
        r.send(Event::Quote(Quote { instrument: ETHUSDT, bid: -1.0, ask: -1.0, ..q }));
        r.send(Event::Trade(Trade {
            instrument: InstrumentId(9),
            price: 1.0,
            qty: 1.0,
            exchange_ms: 0,
            recv_ns: 0,
        }));
        r.send(Event::Balance(Balance {
            portfolio: PortfolioId(5),
            token: WETH,
            amount: U256::MAX,
            block: 1,
            recv_ns: 0,
        }));
        r.send(Event::Balance(Balance {
            portfolio: P0,
            token: WBTC,
            amount: U256::MAX,
            block: 1,
            recv_ns: 0,
        }));
        r.send(Event::Balance(Balance {
            portfolio: P0,
            token: TokenId(77),
            amount: U256::MAX,
            block: 1,
            recv_ns: 0,
        }));
        r.send(Event::Outcome(Outcome {
            intent: 1,
            portfolio: PortfolioId(5),
            status: OutcomeStatus::Rejected,
            at_ns: 0,
        }));
        let s = r.e.stats();
        assert_eq!(s.rejected.unknown_instrument, 2);
        assert_eq!(s.rejected.invalid_quote, 2);
        assert_eq!(s.rejected.unknown_portfolio, 2);
        assert_eq!(s.rejected.unknown_token, 2);
        assert_eq!(r.e.price(WETH).unwrap().mid, 2000.0);
        assert!(r.e.current_band(PortfolioId(5)).is_nan());
        assert_eq!(r.e.portfolio_value(PortfolioId(5)), None);
        // A huge balance doesn't break anything either.
        r.balance(WETH, 1e60);
        assert_eq!(r.quote(ETHUSDT, 2000.0), 1);
        let held = r.e.portfolio(P0).unwrap().holdings()[0];
        assert!(r.out[0].legs.iter().all(|l| l.amount_in <= held));
    }

    #[test]
    fn events_blocks_trades_and_lookups() {
        let mut r = seeded(vec![abs(0.05)]);
        let b = BlockHeader { number: 7, timestamp: 1_700_000_000, base_fee: 3, recv_ns: 5 };
        r.send(Event::Block(b));
        assert_eq!(r.e.head(), Some(&b));
        let t = Trade { instrument: ETHUSDT, price: 2001.0, qty: 0.5, exchange_ms: 9, recv_ns: 6 };
        r.send(Event::Trade(t));
        assert_eq!(r.e.last_trade(ETHUSDT), Some(&t));
        assert_eq!(r.e.instrument_symbols(), &["ETHUSDT".to_string(), "BTCUSDT".to_string()]);
        assert_eq!(r.e.token_id("USDC"), Some(USDC));
        assert_eq!(r.e.portfolio_id("core"), Some(P0));
        assert_eq!(r.e.portfolio_id("nope"), None);
        assert_eq!(r.e.portfolio_value(P0), Some(4000.0));
        assert_eq!(r.e.portfolio_weights(P0), Some(vec![(WETH, 0.5, 0.5), (USDC, 0.5, 0.5)]));
        assert_eq!(r.e.current_band(P0), 0.05);
        let s = r.e.stats();
        assert_eq!((s.events.quotes, s.events.balances, s.events.blocks, s.events.trades), (1, 2, 1, 1));
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["events"]["quotes"], 1);
        assert_eq!(json["suppressed"]["holdings_unknown"], 1);
    }

    fn with_targets(targets: crate::config::TargetsConfig, triggers: Vec<TriggerConfig>) -> Rig {
        Rig::new(PortfolioConfig { targets, ..portfolio(&[], triggers, PlanMode::ToTarget) })
    }

    fn cppi(floor: f64, multiplier: f64) -> crate::config::TargetsConfig {
        crate::config::TargetsConfig::Cppi(crate::config::CppiConfig {
            floor,
            multiplier,
            risky: vec!["WETH".into()],
            safe: "USDC".into(),
        })
    }

    #[test]
    fn cppi_targets_follow_the_cushion_and_a_fall_sells_the_risky_asset() {
        // F = 8000, m = 3; 2 WETH + 4000 USDC.
        let mut r = with_targets(cppi(8000.0, 3.0), vec![abs(0.05)]);
        r.balance(WETH, 2.0);
        r.balance(USDC, 4000.0);
        // WETH at 3000: V = 10000, cushion 2000, risky 0.6 = the weight 6000 / 10000: no trade.
        assert_eq!(r.quote(ETHUSDT, 3000.0), 0);
        let t = r.e.portfolio(P0).unwrap().targets().to_vec();
        assert!((t[0] - 0.6).abs() < 1e-12 && (t[1] - 0.4).abs() < 1e-12, "{t:?}");
        // WETH at 2500: V = 9000, cushion 1000 → risky 3000/9000 = 1/3, weight 5000/9000 = 0.556:
        // drift 0.222 > 0.05 → sell WETH for USDC down to 1/3 of 9000 = 3000 USD = 1.2 WETH.
        assert_eq!(r.quote(ETHUSDT, 2500.0), 1);
        let t = r.e.portfolio(P0).unwrap().targets().to_vec();
        assert!((t[0] - 1.0 / 3.0).abs() < 1e-12, "{t:?}");
        let leg = &r.out[0].legs[0];
        assert_eq!((leg.sell, leg.buy), (WETH, USDC));
        assert!((leg.notional - 2000.0).abs() < 1e-6, "{leg:?}");
        match r.out[0].reason {
            TriggerReason::Drift { target, .. } => assert!((target - 1.0 / 3.0).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
        // Below the floor: everything safe.
        r.outcome(1, OutcomeStatus::Rejected);
        r.clock.advance(20 * SEC);
        assert_eq!(r.quote(ETHUSDT, 1500.0), 1);
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[0.0, 1.0]);
        assert_eq!(r.out[1].legs[0].amount_in, U256::from(2u128 * 10u128.pow(18)));
    }

    #[test]
    fn cppi_targets_follow_balances_and_never_get_a_box() {
        let mut r = with_targets(cppi(8000.0, 3.0), vec![abs(0.5)]);
        r.quote(ETHUSDT, 3000.0);
        r.balance(WETH, 2.0);
        r.balance(USDC, 4000.0);
        assert!((r.e.portfolio(P0).unwrap().targets()[0] - 0.6).abs() < 1e-12);
        // More USDC: V = 13000, cushion 5000 → risky min(1, 15000/13000) = 1.
        r.balance(USDC, 7000.0);
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[1.0, 0.0]);
        assert_eq!(r.e.index_stats().boxes, 0, "a CPPI portfolio is evaluated on every quote");
    }

    #[test]
    fn cppi_refuses_a_relative_band_alone() {
        let p = PortfolioConfig {
            targets: cppi(1.0, 2.0),
            ..portfolio(
                &[],
                vec![TriggerConfig::Drift { abs_band: None, rel_band: Some(0.1) }],
                PlanMode::ToTarget,
            )
        };
        let e = Engine::new(EngineConfig::default(), &tokens(), &[p], Box::new(ManualClock::new(0)));
        assert_eq!(e.unwrap_err().field, "portfolios[core].triggers[0].rel_band");
    }

    #[test]
    fn momentum_tilts_after_the_lookback_and_the_tilted_band_fires() {
        let m = crate::config::TargetsConfig::Momentum(crate::config::MomentumConfig {
            lookback_secs: 16.0,
            tilt: 2.0,
            max_tilt: 0.5,
            base: [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into(),
        });
        let mut r = with_targets(m, vec![abs(0.03)]);
        r.quote(ETHUSDT, 2000.0);
        r.balance(WETH, 1.0);
        r.balance(USDC, 2000.0);
        // One sample a second; WETH moves to 2200 at the last one (+10 %): holdings are 2200/4200
        // = 0.5238 WETH, inside the base band; the tilted target 6/11 = 0.5455 is 0.0216 away:
        // still inside 0.03. Then WETH falls back to 2000 with the targets tilted: 0.5 vs 0.5455.
        for k in 0..=16u64 {
            r.clock.set(T0 + k * SEC);
            let mid = if k == 16 { 2200.0 } else { 2000.0 };
            r.quote(ETHUSDT, mid);
            assert_eq!(r.timer(), 0, "tick {k}");
            let want = if k == 16 { 6.0 / 11.0 } else { 0.5 };
            assert!((r.e.portfolio(P0).unwrap().targets()[0] - want).abs() < 1e-12, "tick {k}");
        }
        assert_eq!(r.e.stats().targets.momentum_retargets, 1);
        assert_eq!(r.quote(ETHUSDT, 2000.0), 1, "0.5 vs the tilted 0.5455 breaches 0.03");
        // The plan buys WETH toward 6/11 of 4000.
        let leg = &r.out[0].legs[0];
        assert_eq!((leg.sell, leg.buy), (USDC, WETH));
        assert!((leg.notional - (6.0 / 11.0 * 4000.0 - 2000.0)).abs() < 1e-6, "{leg:?}");
    }

    #[test]
    fn external_updates_apply_are_refused_and_fall_back() {
        use crate::target::{TargetReject, TargetUpdate};
        let ext = crate::config::TargetsConfig::External(crate::config::ExternalConfig {
            name: "alpha".into(),
            fallback: [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into(),
            max_age_secs: 10.0,
            max_step: 0.2,
        });
        let mut r = with_targets(ext, vec![abs(0.05)]);
        r.quote(ETHUSDT, 2000.0);
        r.balance(WETH, 1.0);
        r.balance(USDC, 2000.0);
        assert_eq!(r.e.portfolio(P0).unwrap().on_fallback(), Some(true));
        let mut u = TargetUpdate { portfolio: P0, weights: [0.0; 16], fallback: false };
        u.weights[..2].copy_from_slice(&[0.6, 0.4]);
        r.e.apply_target_update(&u).unwrap();
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[0.6, 0.4]);
        assert_eq!(r.e.portfolio(P0).unwrap().on_fallback(), Some(false));
        // The box followed: a quote that moves nothing still finds the 0.1 drift and fires.
        assert_eq!(r.quote(ETHUSDT, 2000.0), 1);
        u.weights[..2].copy_from_slice(&[0.9, 0.1]);
        assert!(matches!(r.e.apply_target_update(&u), Err(TargetReject::StepTooLarge { .. })));
        let wrong = TargetUpdate { portfolio: PortfolioId(3), ..u };
        assert_eq!(r.e.apply_target_update(&wrong), Err(TargetReject::NotExternal(PortfolioId(3))));
        // The backstop: 2 × max_age without an update → fallback.
        r.clock.advance(20 * SEC);
        r.quote(ETHUSDT, 2000.0);
        r.timer();
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[0.6, 0.4]);
        r.clock.advance(1);
        r.quote(ETHUSDT, 2000.0);
        r.timer();
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[0.5, 0.5]);
        let s = r.e.stats().targets;
        assert_eq!((s.external_applied, s.external_refused, s.external_fallbacks), (1, 2, 1));
    }

    fn reg(weights: &[(u8, u16)], band_bps: u16, paused: bool) -> crate::registry::RegistryEntry {
        let w = weights.iter().map(|&(b, bps)| (Address::repeat_byte(b), bps));
        crate::registry::RegistryEntry::new(P0, 50, 51, w.collect::<Vec<_>>().into_iter(), band_bps, paused)
            .unwrap()
    }

    #[test]
    fn registry_targets_apply_from_the_next_decision_and_an_empty_list_restores_the_config() {
        // On target at 0.5/0.5 with a 5 % band: nothing fires.
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, 2000.0), 0);
        // The registry moves WETH to 70 %: the same quote now finds a 0.2 drift and buys WETH
        // for 0.2 × 4000 = 800 USDC.
        r.e.apply_registry(&reg(&[(1, 7000), (2, 3000)], 0, false)).unwrap();
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[0.7, 0.3]);
        assert_eq!(r.quote(ETHUSDT, 2000.0), 1);
        let leg = &r.out[0].legs[0];
        assert_eq!((leg.sell, leg.buy), (USDC, WETH));
        assert!((leg.notional - 800.0).abs() < 1e-6, "{leg:?}");
        // A token left out gets 0; an empty list hands the targets back to the config.
        r.e.apply_registry(&reg(&[(1, 10_000)], 0, false)).unwrap();
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[1.0, 0.0]);
        r.e.apply_registry(&reg(&[], 0, false)).unwrap();
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[0.5, 0.5]);
        assert_eq!(r.e.stats().targets.registry_applied, 3);
    }

    #[test]
    fn a_registry_band_replaces_the_absolute_band_and_zero_restores_it() {
        // WETH at 2100: weight 2100 / 4100 = 0.512, inside 5 %.
        let mut r = seeded(vec![abs(0.05)]);
        assert_eq!(r.quote(ETHUSDT, 2100.0), 0);
        // A 1 % band (100 bps): the same weight is out.
        r.e.apply_registry(&reg(&[], 100, false)).unwrap();
        assert_eq!(r.e.current_band(P0), 0.01);
        assert_eq!(r.quote(ETHUSDT, 2100.0), 1);
        r.outcome(1, OutcomeStatus::Rejected);
        r.e.apply_registry(&reg(&[], 0, false)).unwrap();
        assert_eq!(r.e.current_band(P0), 0.05);
    }

    #[test]
    fn a_registry_pause_holds_the_portfolio_until_unpaused() {
        let mut r = seeded(vec![abs(0.05)]);
        r.e.apply_registry(&reg(&[], 0, true)).unwrap();
        assert!(r.e.portfolio(P0).unwrap().registry_paused());
        assert_eq!(r.quote(ETHUSDT, 3000.0), 0);
        assert_eq!(r.e.stats().suppressed.registry_paused, 1);
        r.e.apply_registry(&reg(&[], 0, false)).unwrap();
        assert_eq!(r.quote(ETHUSDT, 3000.0), 1);
    }

    #[test]
    fn bad_registry_entries_are_refused_whole_and_counted() {
        use crate::registry::RegistryReject as R;
        let mut r = seeded(vec![abs(0.05)]);
        // Sum 9999, a token the portfolio does not hold (WBTC), a token twice, a band above 1.
        assert_eq!(
            r.e.apply_registry(&reg(&[(1, 6000), (2, 3999)], 0, false)),
            Err(R::WeightSum { sum: 9999 })
        );
        let wbtc = Address::repeat_byte(3);
        assert_eq!(
            r.e.apply_registry(&reg(&[(1, 6000), (3, 4000)], 0, false)),
            Err(R::UnknownToken { token: wbtc })
        );
        let weth = Address::repeat_byte(1);
        assert_eq!(
            r.e.apply_registry(&reg(&[(1, 5000), (1, 5000)], 0, false)),
            Err(R::DuplicateToken { token: weth })
        );
        assert_eq!(r.e.apply_registry(&reg(&[], 10_001, true)), Err(R::BadBand { band_bps: 10_001 }));
        let other = crate::registry::RegistryEntry { portfolio: PortfolioId(4), ..reg(&[], 0, false) };
        assert_eq!(r.e.apply_registry(&other), Err(R::UnknownPortfolio(PortfolioId(4))));
        // Nothing of them applied: not the targets, not the pause.
        assert_eq!(r.e.portfolio(P0).unwrap().targets(), &[0.5, 0.5]);
        assert!(!r.e.portfolio(P0).unwrap().registry_paused());
        let s = r.e.stats().targets;
        assert_eq!((s.registry_applied, s.registry_refused), (0, 5));
        // Targets on a CPPI portfolio, a band without a drift trigger.
        let mut c = with_targets(cppi(8000.0, 3.0), vec![abs(0.05)]);
        assert_eq!(
            c.e.apply_registry(&reg(&[(1, 5000), (2, 5000)], 0, false)),
            Err(R::NotFixed { source_kind: "cppi" })
        );
        let mut t = Rig::eth_usdc(vec![TriggerConfig::Temporal { interval_secs: 60.0 }]);
        assert_eq!(t.e.apply_registry(&reg(&[], 200, false)), Err(R::NoDriftTrigger));
    }

    #[test]
    fn invalid_config_is_an_error() {
        let mut p = portfolio(&[("WETH", 0.5), ("USDC", 0.4)], vec![abs(0.05)], PlanMode::ToTarget);
        let e = Engine::new(EngineConfig::default(), &tokens(), &[p.clone()], Box::new(ManualClock::new(0)));
        assert_eq!(e.unwrap_err().field, "portfolios[core].targets");
        p.targets = [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into();
        assert!(Engine::new(EngineConfig::default(), &tokens(), &[p], Box::new(ManualClock::new(0))).is_ok());
    }
}
