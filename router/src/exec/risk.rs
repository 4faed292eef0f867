//! The risk limits of `[router.limits]`: the gas price cap, the per-trade cap, and the daily notional
//! caps over rolling 24-hour windows (charged on submission, released when a bundle expires unlanded,
//! restored from the journal after a restart).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::utils::CachePadded;
use keel_engine::event::BlockHeader;
use keel_engine::intent::RebalanceIntent;
use keel_engine::{Nanos, PortfolioId};

use super::{Charge, ExecError, Executor};

/// Notional units per unit of the quote currency in [`DailyTotal`] (micro-units: exact integer
/// sums, so releasing a charge takes back exactly what charging it added).
pub const DAILY_TOTAL_UNITS: f64 = 1e6;

/// The notional charged to `max_daily_notional_total` by every executor that shares it: the
/// chains of one run each have their own executor, and the total cap counts all of them together.
///
/// One atomic counter in [`DAILY_TOTAL_UNITS`]; a charge is reserved with a compare-and-swap that
/// refuses to pass the cap (two chains charging at once cannot both pass it), and each executor
/// takes back its own charges when they leave the 24-hour window or their bundle never lands. No
/// lock. An executor built alone gets its own (the single-chain case).
#[derive(Debug, Default)]
pub struct DailyTotal {
    used: CachePadded<AtomicU64>,
}

impl DailyTotal {
    /// A new, empty total, to share between executors with [`Executor::with_daily_total`].
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The notional charged now, quote currency.
    pub fn used(&self) -> f64 {
        self.used.load(Ordering::Acquire) as f64 / DAILY_TOTAL_UNITS
    }

    /// Charges `units` if the total stays within `cap` units; otherwise returns the total it
    /// would have reached (saturated) and charges nothing.
    fn try_charge(&self, units: u64, cap: Option<u64>) -> Result<(), u64> {
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            let next = cur.saturating_add(units);
            if let Some(cap) = cap
                && (next > cap || cur.checked_add(units).is_none())
            {
                return Err(next);
            }
            match self.used.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes back `units` charged earlier (saturating at zero).
    fn release(&self, units: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| Some(cur.saturating_sub(units)));
    }
}

/// A notional in [`DAILY_TOTAL_UNITS`], rounded up (a non-finite or negative one is 0).
fn to_units(notional: f64) -> u64 {
    if notional.is_finite() && notional > 0.0 {
        // `as` saturates at u64::MAX for a notional too large to count.
        (notional * DAILY_TOTAL_UNITS).ceil() as u64
    } else {
        0
    }
}

/// The risk limits of `[router.limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskLimitKind {
    /// `max_gas_price_wei`: base fee + tip.
    GasPrice,
    /// `max_trade_notional`: one leg.
    TradeNotional,
    /// `max_daily_notional`: one portfolio over any 24 h.
    DailyNotional,
    /// `max_daily_notional_total`: all portfolios over any 24 h.
    DailyNotionalTotal,
}

impl RiskLimitKind {
    /// The config key, as metrics label it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::GasPrice => "max_gas_price_wei",
            Self::TradeNotional => "max_trade_notional",
            Self::DailyNotional => "max_daily_notional",
            Self::DailyNotionalTotal => "max_daily_notional_total",
        }
    }
}

impl std::fmt::Display for RiskLimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The length of the rolling windows of the daily notional caps.
const DAY_NS: Nanos = 24 * 3600 * 1_000_000_000;

impl Executor {
    /// Charges the daily windows with a rebalance of an earlier run that landed or may still land,
    /// decided `age_ns` before `now_ns` (recovery reads them from the journal): a restart does not
    /// reset `max_daily_notional` and `max_daily_notional_total`. `portfolio` is `None` when the
    /// portfolio is no longer configured (it then counts towards the total cap only). A charge
    /// older than a day is ignored.
    pub fn restore_charge(
        &mut self,
        portfolio: Option<PortfolioId>,
        intent: u64,
        notional: f64,
        age_ns: Nanos,
        now_ns: Nanos,
    ) {
        if age_ns >= DAY_NS || !notional.is_finite() || notional <= 0.0 {
            return;
        }
        self.release_charges(|t| t.intent == intent);
        let units = to_units(notional);
        // It happened: charged whatever the cap (a restart never forgets what was traded).
        let _ = self.daily_total.try_charge(units, None);
        self.traded.push(Charge {
            expires_ns: now_ns.saturating_add(DAY_NS - age_ns),
            portfolio,
            intent,
            notional,
            units,
        });
    }

    /// Shares the `max_daily_notional_total` window with other executors (the chains of one
    /// run). Call before anything is charged (before [`Executor::restore_charge`]).
    pub fn with_daily_total(mut self, total: Arc<DailyTotal>) -> Self {
        self.daily_total = total;
        self
    }

    /// The `max_daily_notional_total` window this executor charges (shared between chains).
    pub fn daily_total(&self) -> &Arc<DailyTotal> {
        &self.daily_total
    }

    /// Removes the charges `drop` selects from the 24-hour windows (this executor's list and the
    /// shared total).
    pub(super) fn release_charges(&mut self, drop: impl Fn(&Charge) -> bool) {
        let total = &self.daily_total;
        self.traded.retain(|t| {
            let gone = drop(t);
            if gone {
                total.release(t.units);
            }
            !gone
        });
    }

    /// Lets the charges older than a day leave the windows (at every check and every head, so
    /// that a quiet chain's old charges do not hold the shared total).
    pub(super) fn expire_charges(&mut self, now_ns: Nanos) {
        if !self.traded.is_empty() {
            self.release_charges(|t| t.expires_ns <= now_ns);
        }
    }

    /// The risk limits of `[router.limits]`; on success the intent's notional is charged to the
    /// rolling 24-hour windows (and released again if its bundle expires unlanded).
    pub(super) fn check_limits(
        &mut self,
        intent: &RebalanceIntent,
        head: &BlockHeader,
        now_ns: Nanos,
    ) -> Result<(), ExecError> {
        // A copy (four options): the charges below need `self` mutably.
        let limits = self.cfg.limits;
        if let Some(cap) = limits.max_gas_price_wei {
            let price = head.base_fee.saturating_add(self.cfg.priority_fee_wei);
            if price > cap {
                return Err(ExecError::RiskLimit {
                    kind: RiskLimitKind::GasPrice,
                    value: price as f64,
                    cap: cap as f64,
                });
            }
        }
        if let Some(cap) = limits.max_trade_notional
            && let Some(leg) = intent.legs.iter().find(|l| l.notional > cap)
        {
            return Err(ExecError::RiskLimit {
                kind: RiskLimitKind::TradeNotional,
                value: leg.notional,
                cap,
            });
        }
        self.expire_charges(now_ns);
        let notional: f64 = intent.legs.iter().map(|l| l.notional).sum();
        if let Some(cap) = limits.max_daily_notional {
            let used: f64 = self
                .traded
                .iter()
                .filter(|t| t.portfolio == Some(intent.portfolio))
                .map(|t| t.notional)
                .sum();
            if used + notional > cap {
                return Err(ExecError::RiskLimit {
                    kind: RiskLimitKind::DailyNotional,
                    value: used + notional,
                    cap,
                });
            }
        }
        // The window is kept only for the caps that read it: without a daily cap nothing is
        // charged, so no list grows with the rebalance rate (with one, it holds one day's charges).
        if limits.max_daily_notional.is_none() && limits.max_daily_notional_total.is_none() {
            return Ok(());
        }
        // The total cap counts every chain's charges: reserved atomically, so two chains
        // charging at once cannot both pass it.
        let units = to_units(notional);
        let cap_units = limits.max_daily_notional_total.map(to_units);
        if let Err(reached) = self.daily_total.try_charge(units, cap_units) {
            return Err(ExecError::RiskLimit {
                kind: RiskLimitKind::DailyNotionalTotal,
                value: reached as f64 / DAILY_TOTAL_UNITS,
                cap: limits.max_daily_notional_total.unwrap_or(f64::INFINITY),
            });
        }
        self.traded.push(Charge {
            expires_ns: now_ns.saturating_add(DAY_NS),
            portfolio: Some(intent.portfolio),
            intent: intent.id,
            notional,
            units,
        });
        Ok(())
    }
}
