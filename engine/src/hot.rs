//! # The hot path
//!
//! From a decoded [`Quote`] to a trigger decision: price update, volatility sample, weight
//! recomputation and trigger checks for the portfolios holding the quoted tokens.
//!
//! **Nothing in this module may allocate, take a lock or make a syscall**, and neither may anything
//! it calls before a trigger has fired. Per-portfolio scratch (the weight vector) is allocated when
//! the engine is built; the candidate lists are built once; counters are plain integers. The clock is
//! read only after a trigger fired (to gate on cooldown and staleness and to stamp the intent), and
//! planning — which allocates the legs — runs only then, in the `#[cold]` `Engine::fire` path.
//! `engine/tests/no_alloc.rs` proves with a counting allocator that quotes which fire nothing
//! allocate zero bytes; `engine/benches/trigger.rs` measures this path.

use crate::clock::Nanos;
use crate::engine::Engine;
use crate::event::Quote;
use crate::ids::{PortfolioId, TokenId};
use crate::intent::{RebalanceIntent, TriggerReason};
use crate::portfolio::{Portfolio, Scan, WeightError};
use crate::token::{QuoteReject, TokenTable};
use crate::trigger::{Trigger, TriggerKind, VolTable, worst_breach};

/// Which portfolios to evaluate when a token's price moves.
///
/// Today: every portfolio holding the token (lists precomputed at load). Later, for very many
/// portfolios, an interval index drops in behind [`PortfolioIndex::candidates`]: per token, the
/// price intervals inside which each portfolio stays within its bands, so a price move yields only
/// the portfolios whose interval it left. The engine only calls `candidates`.
#[derive(Debug, Clone)]
pub(crate) struct PortfolioIndex {
    by_token: Vec<Vec<PortfolioId>>,
}

impl PortfolioIndex {
    pub(crate) fn new(n_tokens: usize, portfolios: &[Portfolio]) -> Self {
        let mut by_token = vec![Vec::new(); n_tokens];
        for p in portfolios {
            for &t in p.assets() {
                if let Some(list) = by_token.get_mut(t.idx()) {
                    list.push(p.id());
                }
            }
        }
        Self { by_token }
    }

    /// The portfolios to evaluate after `token`'s price moved to `_mid`.
    #[inline(always)]
    pub(crate) fn candidates(&self, token: TokenId, _mid: f64) -> &[PortfolioId] {
        self.by_token.get(token.idx()).map_or(&[], Vec::as_slice)
    }
}

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
        for k in 0..n {
            let token = self.tokens.instrument_tokens(q.instrument)[k];
            let mid = self.tokens.prices().get(token.idx()).map_or(f64::NAN, |p| p.mid);
            let m = self.index.candidates(token, mid).len();
            for j in 0..m {
                let pid = self.index.candidates(token, mid)[j];
                // A portfolio holding two tokens of this instrument is evaluated once.
                if k > 0 && self.holds_earlier(pid, q.instrument, k) {
                    continue;
                }
                self.evaluate(pid, None, q.recv_ns, out);
            }
        }
    }

    #[cold]
    fn holds_earlier(&self, pid: PortfolioId, instrument: crate::ids::InstrumentId, k: usize) -> bool {
        let Some(p) = self.portfolios.get(pid.idx()) else { return false };
        self.tokens.instrument_tokens(instrument)[..k].iter().any(|t| p.assets().contains(t))
    }

    /// Recomputes a portfolio's weights and checks its triggers; on a fire, hands over to the cold
    /// [`Engine::fire`]. `now` is `Some` on timer ticks, which also check temporal triggers.
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
                return;
            }
        };
        if let Some((reason, kind)) = check_triggers(p, &scan, &self.tokens, &self.vol, now) {
            self.fire(pid, reason, kind, recv_ns, out);
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
