//! # The hot path
//!
//! From a decoded [`Quote`] to a trigger decision: price update, volatility sample, then weight
//! recomputation and trigger checks for the candidate portfolios: those whose
//! [safe box](crate::safe_box) the new price left and those without a box, found by the
//! [candidate index](crate::index) (or, in [`CandidateMode::FullScan`], every portfolio holding a
//! quoted token). Either way the candidates are evaluated in the same order, so both modes emit the
//! same intents and count the same stats.
//!
//! **Nothing in this module may allocate, take a lock or make a syscall**, and neither may anything
//! it calls before a trigger has fired. Per-portfolio scratch (the weight vector) is allocated when
//! the engine is built; the index reserves its heaps and lists at load and compacts them in place;
//! counters are plain integers. The clock is
//! read only after a trigger fired (to gate on cooldown and staleness and to stamp the intent), and
//! planning — which allocates the legs — runs only then, in the `#[cold]` `Engine::fire` path.
//! Moving targets stay inside these rules: a CPPI portfolio's targets are rewritten in place inside
//! its weight scan, and momentum samples go into a ring sized at load.
//! `engine/tests/no_alloc.rs` proves with a counting allocator that quotes which fire nothing
//! allocate zero bytes; `engine/benches/trigger.rs` measures this path.

use crate::clock::Nanos;
use crate::engine::Engine;
use crate::event::Quote;
use crate::ids::{InstrumentId, PortfolioId, TokenId};
use crate::index::CandidateMode;
use crate::intent::{RebalanceIntent, TriggerReason};
use crate::portfolio::{Portfolio, Scan, WeightError};
use crate::safe_box::{MAX_BOX_VALUE, MIN_BOX_VALUE, safe_epsilon};
use crate::token::{QuoteReject, TokenTable};
use crate::trigger::{Trigger, TriggerKind, VolTable, worst_breach};

impl Engine {
    /// A quote: update prices, then evaluate the portfolios holding the quoted tokens.
    #[inline]
    pub(crate) fn on_quote(&mut self, q: &Quote, out: &mut Vec<RebalanceIntent>) {
        match self.tokens.apply_quote(q) {
            Ok(()) => {}
            Err(QuoteReject::UnknownInstrument) => {
                self.stats.rejected.unknown_instrument += 1;
                return;
            }
            Err(QuoteReject::Invalid) => {
                self.stats.rejected.invalid_quote += 1;
                return;
            }
        }
        let n = self.tokens.instrument_tokens(q.instrument).len();
        for k in 0..n {
            let token = self.tokens.instrument_tokens(q.instrument)[k];
            let mid = self.tokens.prices().get(token.idx()).map_or(f64::NAN, |p| p.mid);
            self.vol.on_price(token, mid, q.recv_ns);
        }
        match self.index.mode {
            CandidateMode::Index => self.evaluate_candidates(q, n, out),
            CandidateMode::FullScan => self.evaluate_holders(q, n, out),
        }
    }

    /// Index mode: evaluates the portfolios whose box a quoted token's new price left and those
    /// without a box, in the full scan's order.
    #[inline]
    fn evaluate_candidates(&mut self, q: &Quote, n: usize, out: &mut Vec<RebalanceIntent>) {
        self.index.begin();
        for k in 0..n {
            let token = self.tokens.instrument_tokens(q.instrument)[k];
            let mid = self.tokens.prices().get(token.idx()).map_or(f64::NAN, |p| p.mid);
            self.index.collect(token, mid);
        }
        if n > 1 {
            self.order_by_first_token(q.instrument);
        }
        self.index.sort();
        let m = self.index.candidates.len();
        self.index.stats.evaluated += m as u64;
        for j in 0..m {
            let pid = PortfolioId(self.index.candidates[j] as u32);
            self.evaluate(pid, None, q.recv_ns, out);
        }
    }

    /// The full scan evaluates a portfolio with the first of the instrument's tokens it holds: key
    /// the candidates by that token's position.
    #[cold]
    fn order_by_first_token(&mut self, instrument: InstrumentId) {
        let tokens = self.tokens.instrument_tokens(instrument);
        for key in &mut self.index.candidates {
            let Some(p) = self.portfolios.get(*key as usize) else { continue };
            let k = tokens.iter().position(|t| p.assets().contains(t)).unwrap_or(0);
            *key |= (k as u64) << 32;
        }
    }

    /// Full-scan mode: evaluates every portfolio holding a quoted token.
    #[inline]
    fn evaluate_holders(&mut self, q: &Quote, n: usize, out: &mut Vec<RebalanceIntent>) {
        for k in 0..n {
            let token = self.tokens.instrument_tokens(q.instrument)[k];
            let m = self.index.holders(token).len();
            for j in 0..m {
                let pid = self.index.holders(token)[j];
                // A portfolio holding two tokens of this instrument is evaluated once.
                if k > 0 && self.holds_earlier(pid, q.instrument, k) {
                    continue;
                }
                self.evaluate(pid, None, q.recv_ns, out);
            }
        }
    }

    #[cold]
    fn holds_earlier(&self, pid: PortfolioId, instrument: InstrumentId, k: usize) -> bool {
        let Some(p) = self.portfolios.get(pid.idx()) else { return false };
        self.tokens.instrument_tokens(instrument)[..k].iter().any(|t| p.assets().contains(t))
    }

    /// Recomputes a portfolio's weights and checks its triggers; on a fire, hands over to the cold
    /// [`Engine::fire`]. `now` is `Some` on timer ticks, which also check temporal triggers. In index
    /// mode a portfolio without a valid box then gets one, or stays dirty.
    #[inline]
    pub(crate) fn evaluate(
        &mut self,
        pid: PortfolioId,
        now: Option<Nanos>,
        recv_ns: Nanos,
        out: &mut Vec<RebalanceIntent>,
    ) {
        let Some(p) = self.portfolios.get_mut(pid.idx()) else { return };
        let scan = match p.scan(&self.tokens) {
            Ok(scan) => scan,
            Err(e) => {
                let s = &mut self.stats.suppressed;
                match e {
                    WeightError::HoldingsUnknown => s.holdings_unknown += 1,
                    WeightError::MissingPrice => s.missing_price += 1,
                    WeightError::ZeroValue => s.zero_value += 1,
                }
                if self.index.mode == CandidateMode::Index {
                    self.index.settle(p, None, self.tokens.prices());
                }
                return;
            }
        };
        if let Some((reason, kind)) = check_triggers(p, &scan, &self.tokens, &self.vol, now) {
            self.fire(pid, reason, kind, recv_ns, out);
        }
        // A box stays valid while the prices are inside it (timer ticks), whatever `fire` did:
        // it never changes holdings.
        if self.index.mode == CandidateMode::Index && !self.index.is_boxed(pid) {
            self.rebox(pid, scan.total);
        }
    }

    /// Computes the box of `pid` from its weights scratch (fresh from a successful scan worth
    /// `total`) and files it in the index. Off the common path: only candidates get here.
    #[inline(never)]
    pub(crate) fn rebox(&mut self, pid: PortfolioId, total: f64) {
        let Some(p) = self.portfolios.get(pid.idx()) else { return };
        // CPPI's targets move with every price: no price box can hold them still.
        let eps = if p.targets_follow_prices() {
            None
        } else if (MIN_BOX_VALUE..=MAX_BOX_VALUE).contains(&total) {
            let tokens = &self.tokens;
            safe_epsilon(&p.weights, &p.targets, &p.box_bands, |i| {
                p.assets
                    .get(i)
                    .and_then(|&t| tokens.token(t))
                    .is_some_and(|t| matches!(t.origin, crate::token::PriceOrigin::Instrument(_)))
            })
        } else {
            None
        };
        self.index.settle(p, eps, self.tokens.prices());
    }

    /// A portfolio's holdings changed: recomputes its weights (no stats: this is no evaluation) and
    /// its box.
    pub(crate) fn refresh_box(&mut self, pid: PortfolioId) {
        if self.index.mode != CandidateMode::Index {
            return;
        }
        let Some(p) = self.portfolios.get_mut(pid.idx()) else { return };
        match p.scan(&self.tokens) {
            Ok(scan) => self.rebox(pid, scan.total),
            Err(_) => self.index.settle(p, None, self.tokens.prices()),
        }
    }
}

/// The trigger that fires on the portfolio's current weights, if any: drift bands first (all drift
/// triggers are folded at load into one band per asset, the tightest), then volatility and temporal
/// triggers in config order.
#[inline(always)]
pub(crate) fn check_triggers(
    p: &Portfolio,
    scan: &Scan,
    tokens: &TokenTable,
    vol: &VolTable,
    now: Option<Nanos>,
) -> Option<(TriggerReason, TriggerKind)> {
    let drift_reason = |(i, band): (usize, f64)| {
        let token = p.assets.get(i).copied().unwrap_or(TokenId(0));
        let weight = p.weights.get(i).copied().unwrap_or(f64::NAN);
        let target = p.targets.get(i).copied().unwrap_or(f64::NAN);
        TriggerReason::Drift { token, weight, target, band }
    };
    if let Some(worst) = scan.worst {
        return Some((drift_reason(worst), TriggerKind::Drift));
    }
    for trig in &p.triggers {
        match trig {
            Trigger::Drift { .. } => {}
            Trigger::Volatility { min_band, .. } => {
                // The band is at least `min_band`: skip the σ lookups when nothing can breach.
                if scan.max_drift <= *min_band {
                    continue;
                }
                let band = p.trigger_band(trig, tokens, vol).unwrap_or(f64::INFINITY);
                if let Some(b) = worst_breach(&p.weights, &p.targets, |_| band) {
                    return Some((drift_reason(b), TriggerKind::Volatility));
                }
            }
            Trigger::Temporal { interval_ns } => {
                if let Some(now) = now {
                    let elapsed = now.saturating_sub(p.last_rebalance_ns);
                    if elapsed >= *interval_ns {
                        let elapsed_s = elapsed as f64 * 1e-9;
                        return Some((TriggerReason::Temporal { elapsed_s }, TriggerKind::Temporal));
                    }
                }
            }
        }
    }
    None
}
