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
use crate::config::{PlanMode, PortfolioConfig, TargetsConfig};
use crate::ids::{PortfolioId, TokenId};
use crate::target::{Cppi, External, Momentum, TargetSource};
use crate::token::{PriceOrigin, TokenTable};
use crate::trigger::{Trigger, VolTable, VolTableBuilder, drift_band, secs_to_ns, vol_band};

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

/// What the hot path reads per asset, packed together (one cache line holds two).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AssetSlot {
    /// The token.
    pub(crate) token: TokenId,
    /// Holding in whole tokens (raw / 10^decimals).
    pub(crate) whole: f64,
    /// Target weight.
    pub(crate) target: f64,
    /// The tightest band over the portfolio's drift triggers (+∞ without one).
    pub(crate) drift_band: f64,
}

/// The result of a weight scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scan {
    /// Largest `|w - t|`.
    pub(crate) max_drift: f64,
    /// The asset whose drift exceeds its drift band by the most, with that band.
    pub(crate) worst: Option<(usize, f64)>,
    /// The portfolio's value in the numeraire.
    pub(crate) total: f64,
}

/// One portfolio.
#[derive(Debug, Clone)]
pub struct Portfolio {
    pub(crate) id: PortfolioId,
    pub(crate) name: String,
    pub(crate) account: Address,
    pub(crate) mode: PlanMode,
    /// The value model, in cost-aware mode only.
    pub(crate) cost: Option<Box<crate::value::CostConfig>>,
    pub(crate) cooldown_ns: Nanos,
    pub(crate) min_trade_notional: f64,
    pub(crate) assets: Vec<TokenId>,
    pub(crate) targets: Vec<f64>,
    pub(crate) holdings: Vec<U256>,
    /// Hot per-asset data, aligned with `assets`.
    pub(crate) slots: Vec<AssetSlot>,
    pub(crate) balance_blocks: Vec<Option<u64>>,
    /// Number of assets with a balance.
    pub(crate) known: usize,
    /// Scratch: weights from the last evaluation (hot path writes here, never allocates).
    pub(crate) weights: Vec<f64>,
    pub(crate) triggers: Vec<Trigger>,
    /// Per asset, the tightest band any quote-driven trigger can apply: the drift band and every
    /// volatility trigger's `min_band` (+∞ without either). What the [safe box](crate::safe_box)
    /// keeps the weights inside.
    pub(crate) box_bands: Vec<f64>,
    /// The tightest volatility `min_band` (+∞ without a volatility trigger).
    pub(crate) vol_floor: f64,
    /// Where the targets come from ([`crate::target`]).
    pub(crate) source: TargetSource,
    pub(crate) in_flight: Option<u64>,
    pub(crate) awaiting_block: Option<u64>,
    /// When the outcome of the rebalance awaiting its balances was settled.
    pub(crate) landed_ns: Nanos,
    pub(crate) cooldown_until: Nanos,
    pub(crate) last_rebalance_ns: Nanos,
    /// The on-chain registry paused this portfolio ([`crate::registry`]).
    pub(crate) registry_paused: bool,
    /// Its configured targets and bands, kept from the registry's first change on.
    pub(crate) registry_base: Option<Box<crate::registry::RegistryBase>>,
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
        let initial = cfg.targets.initial();
        let mut pairs: Vec<(TokenId, f64)> =
            initial.iter().map(|(s, &w)| tokens.id_of(s).map(|t| (t, w))).collect::<Option<_>>()?;
        pairs.sort_by_key(|p| p.0);
        let sum: f64 = pairs.iter().map(|p| p.1).sum();
        let assets: Vec<TokenId> = pairs.iter().map(|p| p.0).collect();
        let targets: Vec<f64> = pairs.iter().map(|p| p.1 / sum).collect();
        let n = assets.len();
        let triggers: Vec<Trigger> =
            cfg.triggers.iter().map(|t| Trigger::compile(t, &targets, vol)).collect();
        let slots = assets
            .iter()
            .zip(&targets)
            .enumerate()
            .map(|(i, (&token, &target))| {
                let drift_band = triggers
                    .iter()
                    .filter_map(|t| match t {
                        Trigger::Drift { bands, .. } => bands.get(i).copied(),
                        _ => None,
                    })
                    .fold(f64::INFINITY, f64::min);
                AssetSlot { token, whole: 0.0, target, drift_band }
            })
            .collect::<Vec<AssetSlot>>();
        let vol_floor = triggers
            .iter()
            .filter_map(|t| match t {
                Trigger::Volatility { min_band, .. } => Some(*min_band),
                _ => None,
            })
            .fold(f64::INFINITY, f64::min);
        let box_bands = slots.iter().map(|s| s.drift_band.min(vol_floor)).collect();
        let source = match &cfg.targets {
            TargetsConfig::Fixed(_) => TargetSource::Fixed,
            TargetsConfig::Cppi(c) => {
                let risky: Vec<bool> =
                    assets.iter().map(|&t| c.risky.iter().any(|s| tokens.id_of(s) == Some(t))).collect();
                let n_risky = risky.iter().filter(|&&r| r).count().max(1) as f64;
                TargetSource::Cppi(Cppi { floor: c.floor, multiplier: c.multiplier, risky, n_risky })
            }
            TargetsConfig::Momentum(m) => TargetSource::Momentum(Box::new(Momentum::new(
                targets.clone(),
                m.tilt,
                m.max_tilt,
                m.lookback_secs,
                start_ns,
            ))),
            TargetsConfig::External(e) => TargetSource::External(Box::new(External {
                fallback: targets.clone(),
                max_age_ns: secs_to_ns(e.max_age_secs),
                max_step: e.max_step,
                last_ns: start_ns,
                on_fallback: true,
            })),
        };
        Some(Self {
            id,
            name: cfg.name.clone(),
            account: cfg.account,
            mode: cfg.mode,
            cost: (cfg.cost.mode == crate::value::CostMode::CostAware).then(|| Box::new(cfg.cost.clone())),
            cooldown_ns: secs_to_ns(cfg.cooldown_secs),
            min_trade_notional: cfg.min_trade_notional,
            triggers,
            box_bands,
            vol_floor,
            source,
            holdings: vec![U256::ZERO; n],
            slots,
            balance_blocks: vec![None; n],
            known: 0,
            weights: vec![0.0; n],
            assets,
            targets,
            in_flight: None,
            awaiting_block: None,
            landed_ns: 0,
            cooldown_until: 0,
            last_rebalance_ns: start_ns,
            registry_paused: false,
            registry_base: None,
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
        self.known == self.slots.len()
    }

    /// Holdings in whole tokens (raw / 10^decimals, as a float), aligned with the assets.
    pub fn whole_holdings(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.slots.iter().map(|s| s.whole)
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

    /// Recomputes the weights scratch and scans drifts against the drift bands, in two passes over
    /// the packed slots. Hot path: no allocation.
    #[inline(always)]
    pub(crate) fn scan(&mut self, tokens: &TokenTable) -> Result<Scan, WeightError> {
        if self.known != self.slots.len() {
            return Err(WeightError::HoldingsUnknown);
        }
        let prices = tokens.prices();
        let mut total = 0.0;
        for (s, w) in self.slots.iter().zip(self.weights.iter_mut()) {
            let mid = prices.get(s.token.idx()).map_or(f64::NAN, |p| p.mid);
            // NaN: no quote yet.
            if mid.is_nan() || mid <= 0.0 {
                return Err(WeightError::MissingPrice);
            }
            let v = s.whole * mid;
            *w = v;
            total += v;
        }
        if total.is_nan() || total <= 0.0 || total.is_infinite() {
            return Err(WeightError::ZeroValue);
        }
        // CPPI's targets are a function of the value: recomputed before the drift pass.
        if let TargetSource::Cppi(c) = &self.source {
            c.retarget(total, &mut self.targets);
            self.sync_targets();
        }
        let inv = 1.0 / total;
        let mut scan = Scan { max_drift: 0.0, worst: None, total };
        let mut best = 0.0;
        for (i, (s, w)) in self.slots.iter().zip(self.weights.iter_mut()).enumerate() {
            *w *= inv;
            let d = (*w - s.target).abs();
            scan.max_drift = scan.max_drift.max(d);
            // Finite floats: `d - b > 0 ⟺ d > b`, so this fires exactly when the band is crossed.
            let excess = d - s.drift_band;
            if excess > best {
                best = excess;
                scan.worst = Some((i, s.drift_band));
            }
        }
        Ok(scan)
    }

    /// After `targets` moved: copies them into the hot slots and recompiles the bands that depend
    /// on them (relative drift bands, the box bands). No allocation.
    #[inline]
    pub(crate) fn sync_targets(&mut self) {
        for trig in &mut self.triggers {
            if let Trigger::Drift { bands, abs_band, rel_band: rel @ Some(_) } = trig {
                for (b, &t) in bands.iter_mut().zip(&self.targets) {
                    *b = drift_band(*abs_band, *rel, t);
                }
            }
        }
        for i in 0..self.slots.len() {
            let band = self
                .triggers
                .iter()
                .filter_map(|t| match t {
                    Trigger::Drift { bands, .. } => bands.get(i).copied(),
                    _ => None,
                })
                .fold(f64::INFINITY, f64::min);
            if let (Some(s), Some(&t), Some(bb)) =
                (self.slots.get_mut(i), self.targets.get(i), self.box_bands.get_mut(i))
            {
                s.target = t;
                s.drift_band = band;
                *bb = band.min(self.vol_floor);
            }
        }
    }

    /// Whether the on-chain registry paused it ([`crate::registry`]).
    pub fn registry_paused(&self) -> bool {
        self.registry_paused
    }

    /// Kind of its target source: `fixed`, `cppi`, `momentum` or `external`.
    pub fn target_source(&self) -> &'static str {
        self.source.kind()
    }

    /// For external targets, whether the fallback is in force (`None` for other sources).
    pub fn on_fallback(&self) -> Option<bool> {
        match &self.source {
            TargetSource::External(e) => Some(e.on_fallback),
            _ => None,
        }
    }

    /// Whether its targets move with prices (CPPI): it never gets a safe box.
    #[inline]
    pub(crate) fn targets_follow_prices(&self) -> bool {
        matches!(self.source, TargetSource::Cppi(_))
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
                Trigger::Drift { bands, .. } => b = b.min(bands.get(i).copied().unwrap_or(f64::INFINITY)),
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
        let (Some(prev), Some(h), Some(slot)) =
            (self.balance_blocks.get_mut(i), self.holdings.get_mut(i), self.slots.get_mut(i))
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
        slot.whole = if whole.is_finite() { whole } else { f64::MAX };
        true
    }

    /// Whether every asset has a balance read at `block` or later.
    pub(crate) fn balances_at_or_after(&self, block: u64) -> bool {
        self.balance_blocks.iter().all(|b| b.is_some_and(|b| b >= block))
    }
}
