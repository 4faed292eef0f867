//! Portfolio state: assets and targets, on-chain holdings, weights, and the rebalance lifecycle.
//!
//! A portfolio's assets are its target tokens in [`TokenId`] order (token config order); targets are
//! normalised at load to sum to exactly 1 (validation allows a `1e-6` slack). Holdings are raw integer
//! amounts (`U256`) taken from [`Balance`](crate::event::Balance) events; a float copy in whole tokens
//! is kept beside them for the hot path. Weights are `holding × mid / 10^decimals` over the total.
//!
//! Lifecycle: `Idle` → a trigger fires → `InFlight(intent)` → the outcome arrives:
//! `Expired`/`Rejected` start the cooldown at once; `Landed { block }` moves to
//! `AwaitingBalances(block)` until a balance read at `block` or later has arrived for every asset
//! (firing on pre-trade holdings would trade twice), and then starts the cooldown.

use alloy_primitives::{Address, U256};

use crate::clock::Nanos;
use crate::config::{PlanMode, PortfolioConfig};
use crate::ids::{PortfolioId, TokenId};
use crate::token::{PriceOrigin, TokenTable};
use crate::trigger::{Trigger, VolTable, VolTableBuilder, secs_to_ns, vol_band};

/// Where a portfolio is in its rebalance lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum PortfolioStatus {
    /// Triggers may fire.
    Idle,
    /// An intent is out; its id.
    InFlight(u64),
    /// The intent landed in this block; waiting for balances read at or after it.
    AwaitingBalances(u64),
    /// Cooling down until this time.
    Cooldown(Nanos),
}

/// Why weights cannot be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeightError {
    /// Some asset has no balance yet.
    HoldingsUnknown,
    /// Some asset has no price yet.
    MissingPrice,
    /// The portfolio is worth nothing.
    ZeroValue,
}

/// One portfolio.
#[derive(Debug, Clone)]
pub struct Portfolio {
    pub(crate) id: PortfolioId,
    pub(crate) name: String,
    pub(crate) account: Address,
    pub(crate) mode: PlanMode,
    pub(crate) cooldown_ns: Nanos,
    pub(crate) min_trade_notional: f64,
    pub(crate) assets: Vec<TokenId>,
    pub(crate) targets: Vec<f64>,
    pub(crate) holdings: Vec<U256>,
    /// Holdings in whole tokens (raw / 10^decimals).
    pub(crate) whole: Vec<f64>,
    pub(crate) balance_blocks: Vec<Option<u64>>,
    /// Number of assets with a balance.
    pub(crate) known: usize,
    /// Scratch: weights from the last evaluation (hot path writes here, never allocates).
    pub(crate) weights: Vec<f64>,
    pub(crate) triggers: Vec<Trigger>,
    pub(crate) in_flight: Option<u64>,
    pub(crate) awaiting_block: Option<u64>,
    pub(crate) cooldown_until: Nanos,
    pub(crate) last_rebalance_ns: Nanos,
}

impl Portfolio {
    /// Builds a portfolio from its (validated) config.
    pub(crate) fn new(
        id: PortfolioId,
        cfg: &PortfolioConfig,
        tokens: &TokenTable,
        vol: &mut VolTableBuilder,
        start_ns: Nanos,
    ) -> Option<Self> {
        let mut pairs: Vec<(TokenId, f64)> =
            cfg.targets.iter().map(|(s, &w)| tokens.id_of(s).map(|t| (t, w))).collect::<Option<_>>()?;
        pairs.sort_by_key(|p| p.0);
        let sum: f64 = pairs.iter().map(|p| p.1).sum();
        let assets: Vec<TokenId> = pairs.iter().map(|p| p.0).collect();
        let targets: Vec<f64> = pairs.iter().map(|p| p.1 / sum).collect();
        let n = assets.len();
        let triggers: Vec<Trigger> =
            cfg.triggers.iter().map(|t| Trigger::compile(t, &targets, vol)).collect();
        Some(Self {
            id,
            name: cfg.name.clone(),
            account: cfg.account,
            mode: cfg.mode,
            cooldown_ns: secs_to_ns(cfg.cooldown_secs),
            min_trade_notional: cfg.min_trade_notional,
            triggers,
            holdings: vec![U256::ZERO; n],
            whole: vec![0.0; n],
            balance_blocks: vec![None; n],
            known: 0,
            weights: vec![0.0; n],
            assets,
            targets,
            in_flight: None,
            awaiting_block: None,
            cooldown_until: 0,
            last_rebalance_ns: start_ns,
        })
    }

    /// Its id.
    pub fn id(&self) -> PortfolioId {
        self.id
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The on-chain account holding it.
    pub fn account(&self) -> Address {
        self.account
    }

    /// How far its rebalances trade.
    pub fn mode(&self) -> PlanMode {
        self.mode
    }

    /// Its assets, in [`TokenId`] order.
    pub fn assets(&self) -> &[TokenId] {
        &self.assets
    }

    /// Target weights, aligned with [`Portfolio::assets`], summing to 1.
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// Raw holdings, aligned with [`Portfolio::assets`] (zero until a balance arrives).
    pub fn holdings(&self) -> &[U256] {
        &self.holdings
    }

    /// Block of the latest balance per asset (`None` before the first).
    pub fn balance_blocks(&self) -> &[Option<u64>] {
        &self.balance_blocks
    }

    /// Whether every asset has a balance.
    #[inline(always)]
    pub fn holdings_known(&self) -> bool {
        self.known == self.assets.len()
    }

    /// Its compiled triggers.
    pub fn triggers(&self) -> &[Trigger] {
        &self.triggers
    }

    /// The intent in flight, if any.
    pub fn in_flight(&self) -> Option<u64> {
        self.in_flight
    }

    /// End of the current or last cooldown.
    pub fn cooldown_until_ns(&self) -> Nanos {
        self.cooldown_until
    }

    /// When the last rebalance completed (its post-landing balances arrived, or a fired trigger
    /// found nothing worth trading), or when the engine started.
    pub fn last_rebalance_ns(&self) -> Nanos {
        self.last_rebalance_ns
    }

    /// Seconds after an outcome before triggers may fire again.
    pub fn cooldown_ns(&self) -> Nanos {
        self.cooldown_ns
    }

    /// Legs below this notional (USD) are skipped.
    pub fn min_trade_notional(&self) -> f64 {
        self.min_trade_notional
    }

    /// Its lifecycle state at `now`.
    pub fn status(&self, now: Nanos) -> PortfolioStatus {
        if let Some(id) = self.in_flight {
            PortfolioStatus::InFlight(id)
        } else if let Some(b) = self.awaiting_block {
            PortfolioStatus::AwaitingBalances(b)
        } else if now < self.cooldown_until {
            PortfolioStatus::Cooldown(self.cooldown_until)
        } else {
            PortfolioStatus::Idle
        }
    }

    /// Position of a token among the assets.
    #[inline]
    pub fn asset_index(&self, token: TokenId) -> Option<usize> {
        self.assets.iter().position(|&t| t == token)
    }

    /// Writes the current weights into `out` (aligned with the assets) and returns the total value.
    /// Hot path: no allocation.
    #[inline(always)]
    pub(crate) fn fill_weights(&self, tokens: &TokenTable, out: &mut [f64]) -> Result<f64, WeightError> {
        if !self.holdings_known() {
            return Err(WeightError::HoldingsUnknown);
        }
        let prices = tokens.prices();
        let mut total = 0.0;
        for ((&t, &h), o) in self.assets.iter().zip(&self.whole).zip(out.iter_mut()) {
            let Some(p) = prices.get(t.idx()) else { return Err(WeightError::MissingPrice) };
            if !p.is_known() {
                return Err(WeightError::MissingPrice);
            }
            let v = h * p.mid;
            *o = v;
            total += v;
        }
        if !(total > 0.0 && total.is_finite()) {
            return Err(WeightError::ZeroValue);
        }
        let inv = 1.0 / total;
        for o in out.iter_mut() {
            *o *= inv;
        }
        Ok(total)
    }

    /// Recomputes the weights scratch. Hot path.
    #[inline(always)]
    pub(crate) fn update_weights(&mut self, tokens: &TokenTable) -> Result<f64, WeightError> {
        let mut w = std::mem::take(&mut self.weights);
        let r = self.fill_weights(tokens, &mut w);
        self.weights = w;
        r
    }

    /// Largest `|w - t|` of a weight vector aligned with the assets.
    #[inline(always)]
    pub(crate) fn max_drift_of(&self, weights: &[f64]) -> f64 {
        weights.iter().zip(&self.targets).fold(0.0, |m: f64, (w, t)| m.max((w - t).abs()))
    }

    /// The largest σ among the instrument-priced assets for a volatility slot, or `None` when any of
    /// them has not warmed up (or none is instrument-priced).
    #[inline]
    pub(crate) fn vol_sigma(&self, tokens: &TokenTable, vol: &VolTable, slot: usize) -> Option<f64> {
        let mut max: Option<f64> = None;
        for &t in &self.assets {
            let priced = tokens.token(t).is_some_and(|k| matches!(k.origin, PriceOrigin::Instrument(_)));
            if priced {
                let s = vol.sigma(t, slot)?;
                max = Some(max.map_or(s, |m| m.max(s)));
            }
        }
        max
    }

    /// The band of a volatility trigger now (`None` for other kinds).
    #[inline]
    pub(crate) fn trigger_band(&self, trig: &Trigger, tokens: &TokenTable, vol: &VolTable) -> Option<f64> {
        match *trig {
            Trigger::Volatility { slot, base_band, reference_vol, min_band, max_band } => {
                let sigma = self.vol_sigma(tokens, vol, slot);
                Some(vol_band(sigma, base_band, reference_vol, min_band, max_band))
            }
            _ => None,
        }
    }

    /// The absolute band in force for asset `i`: the tightest over the drift and volatility
    /// triggers (+∞ when there is none).
    pub(crate) fn asset_band(&self, i: usize, tokens: &TokenTable, vol: &VolTable) -> f64 {
        let mut b = f64::INFINITY;
        for trig in &self.triggers {
            match trig {
                Trigger::Drift { bands } => b = b.min(bands.get(i).copied().unwrap_or(f64::INFINITY)),
                Trigger::Volatility { .. } => {
                    b = b.min(self.trigger_band(trig, tokens, vol).unwrap_or(f64::INFINITY));
                }
                Trigger::Temporal { .. } => {}
            }
        }
        b
    }

    /// Applies a balance for asset `i`. Returns false (and changes nothing) when it is older than the
    /// one held.
    pub(crate) fn set_balance(&mut self, i: usize, amount: U256, whole: f64, block: u64) -> bool {
        let (Some(prev), Some(h), Some(w)) =
            (self.balance_blocks.get_mut(i), self.holdings.get_mut(i), self.whole.get_mut(i))
        else {
            return false;
        };
        match *prev {
            Some(b) if block < b => return false,
            Some(_) => {}
            None => self.known += 1,
        }
        *prev = Some(block);
        *h = amount;
        *w = if whole.is_finite() { whole } else { f64::MAX };
        true
    }

    /// Whether every asset has a balance read at `block` or later.
    pub(crate) fn balances_at_or_after(&self, block: u64) -> bool {
        self.balance_blocks.iter().all(|b| b.is_some_and(|b| b >= block))
    }
}
