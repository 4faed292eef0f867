//! The risk limits of `[router.limits]`: the gas price cap, the per-trade cap, and the daily notional
//! caps over rolling 24-hour windows (charged on submission, released when a bundle expires unlanded,
//! restored from the journal after a restart).

use keel_engine::event::BlockHeader;
use keel_engine::intent::RebalanceIntent;
use keel_engine::{Nanos, PortfolioId};

use super::{Charge, ExecError, Executor};

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
        self.traded.retain(|t| t.intent != intent);
        self.traded.push(Charge {
            expires_ns: now_ns.saturating_add(DAY_NS - age_ns),
            portfolio,
            intent,
            notional,
        });
    }

    /// The risk limits of `[router.limits]`; on success the intent's notional is charged to the
    /// rolling 24-hour windows (and released again if its bundle expires unlanded).
    pub(super) fn check_limits(
        &mut self,
        intent: &RebalanceIntent,
        head: &BlockHeader,
        now_ns: Nanos,
    ) -> Result<(), ExecError> {
        let limits = &self.cfg.limits;
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
        self.traded.retain(|t| t.expires_ns > now_ns);
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
        if let Some(cap) = limits.max_daily_notional_total {
            let used: f64 = self.traded.iter().map(|t| t.notional).sum();
            if used + notional > cap {
                return Err(ExecError::RiskLimit {
                    kind: RiskLimitKind::DailyNotionalTotal,
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
        self.traded.push(Charge {
            expires_ns: now_ns.saturating_add(DAY_NS),
            portfolio: Some(intent.portfolio),
            intent: intent.id,
            notional,
        });
        Ok(())
    }
}
