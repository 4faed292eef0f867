//! Resuming after a restart: the router's journal tells the engine which intent ids are taken and
//! which portfolios still have a rebalance in flight (see `keel_router::journal::recover`).

use crate::engine::Engine;
use crate::ids::PortfolioId;

/// Why a resume was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The portfolio index is not in this engine's config.
    #[error("portfolio {0} is not configured")]
    UnknownPortfolio(u32),
    /// Two in-flight rebalances for one portfolio.
    #[error("portfolio {0} has two rebalances in flight ({1} and {2})")]
    TwoInFlight(u32, u64, u64),
}

impl Engine {
    /// Numbers new intents from `next_intent_id` (ids stay unique across restarts), and marks each
    /// `(portfolio, intent)` of `in_flight` busy: the portfolio fires nothing new until the outcome
    /// of that intent arrives, exactly as if this engine had emitted it. Call before the first event.
    pub fn resume(
        &mut self,
        next_intent_id: u64,
        in_flight: &[(PortfolioId, u64)],
    ) -> Result<(), ResumeError> {
        for &(pid, intent) in in_flight {
            let p = self.portfolios.get(pid.idx()).ok_or(ResumeError::UnknownPortfolio(pid.0))?;
            if let Some(other) = p.in_flight.filter(|&o| o != intent) {
                return Err(ResumeError::TwoInFlight(pid.0, other, intent));
            }
            if let Some(p) = self.portfolios.get_mut(pid.idx()) {
                p.in_flight = Some(intent);
            }
        }
        let highest = in_flight.iter().map(|&(_, i)| i + 1).max().unwrap_or(1);
        self.next_intent_id = self.next_intent_id.max(next_intent_id).max(highest);
        Ok(())
    }

    /// The id the next intent will get.
    pub fn next_intent_id(&self) -> u64 {
        self.next_intent_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{EngineConfig, PlanMode, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
    use crate::event::{Event, Outcome, OutcomeStatus};
    use alloy_primitives::Address;

    fn engine() -> Engine {
        let t = |symbol: &str, b: u8, price: PriceSource| TokenConfig {
            symbol: symbol.into(),
            address: Address::repeat_byte(b),
            decimals: 18,
            price,
        };
        let tokens = vec![
            t("WETH", 1, PriceSource::Instrument { symbol: "ETHUSDT".into() }),
            t("USDC", 2, PriceSource::Fixed { fixed: 1.0 }),
        ];
        let p = PortfolioConfig {
            name: "core".into(),
            account: Address::repeat_byte(0xaa),
            targets: [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into_iter().collect(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(0.01), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 10.0,
            min_trade_notional: 10.0,
            cost: Default::default(),
        };
        Engine::new(EngineConfig::default(), &tokens, &[p], Box::new(ManualClock::new(1))).unwrap()
    }

    #[test]
    fn resumed_portfolio_is_busy_until_its_outcome_and_ids_continue() {
        let mut e = engine();
        e.resume(42, &[(PortfolioId(0), 17)]).unwrap();
        assert_eq!(e.next_intent_id(), 42);
        assert_eq!(e.portfolios()[0].in_flight, Some(17));
        let mut out = Vec::new();
        e.process(
            &Event::Outcome(Outcome {
                intent: 17,
                portfolio: PortfolioId(0),
                status: OutcomeStatus::Expired,
                at_ns: 1,
            }),
            &mut out,
        );
        assert_eq!(e.portfolios()[0].in_flight, None);
        assert_eq!(e.stats().outcomes.expired, 1);
    }

    #[test]
    fn bad_resumes_are_refused() {
        let mut e = engine();
        assert_eq!(e.resume(1, &[(PortfolioId(3), 1)]), Err(ResumeError::UnknownPortfolio(3)));
        assert_eq!(
            e.resume(1, &[(PortfolioId(0), 1), (PortfolioId(0), 2)]),
            Err(ResumeError::TwoInFlight(0, 1, 2))
        );
        let mut e = engine();
        e.resume(1, &[(PortfolioId(0), 9)]).unwrap();
        assert_eq!(e.next_intent_id(), 10);
    }
}
