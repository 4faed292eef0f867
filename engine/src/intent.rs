//! What flows out of the engine: a decision to rebalance one portfolio, with the trades that restore
//! its targets. The router prices, splits and signs the legs; the engine knows nothing of pools.

use alloy_primitives::{Address, U256};

use crate::clock::Nanos;
use crate::ids::{PortfolioId, TokenId};

/// Why a trigger fired.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerReason {
    /// A weight left its band.
    Drift {
        /// The asset that breached.
        token: TokenId,
        /// Its weight.
        weight: f64,
        /// Its target.
        target: f64,
        /// The absolute band in force (it may be volatility-scaled).
        band: f64,
    },
    /// The rebalance interval elapsed.
    Temporal {
        /// Seconds since the last rebalance.
        elapsed_s: f64,
    },
}

/// One trade of a rebalance: sell `amount_in` of `sell` for `buy`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Leg {
    /// Token sold.
    pub sell: TokenId,
    /// Token bought.
    pub buy: TokenId,
    /// Raw amount of `sell` to trade.
    pub amount_in: U256,
    /// Value of the leg in the numeraire (USD), at the reference mid prices.
    pub notional: f64,
    /// Reference price of the trade: whole `buy` tokens per whole `sell` token, from the CEX mids.
    /// The router checks pool prices against it.
    pub reference_price: f64,
}

/// A decision to rebalance a portfolio.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RebalanceIntent {
    /// Unique, increasing id of this intent within the run.
    pub id: u64,
    /// The portfolio.
    pub portfolio: PortfolioId,
    /// The on-chain account that holds it and signs its trades.
    pub account: Address,
    /// What fired.
    pub reason: TriggerReason,
    /// Largest |weight - target| across the portfolio's assets when it fired.
    pub drift: f64,
    /// The trades, in the order they should execute.
    pub legs: Vec<Leg>,
    /// Receive time of the event that fired the trigger (start of tick-to-wire).
    pub event_recv_ns: Nanos,
    /// When the trigger decision was made.
    pub decided_ns: Nanos,
    /// When the legs were planned.
    pub planned_ns: Nanos,
    /// The value model's inputs, in cost-aware mode: the router fires only when the trade's value
    /// exceeds its exact cost, at the size that maximises value − cost.
    pub value: Option<crate::value::ValueInputs>,
    /// Numeraire value of one whole native token (ETH) at the exchange mid when the intent was
    /// decided, if the engine prices it ([`crate::Engine::set_native_token`]). The router prices
    /// gas with it when a bought token has no pool against the wrapped native token.
    pub native_price: Option<f64>,
}
