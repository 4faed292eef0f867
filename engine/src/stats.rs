//! The engine's counters. Plain integers bumped on the hot path (no atomics: the engine is owned by
//! one thread); [`Engine::stats`](crate::Engine::stats) returns a copy for reports.

/// Events processed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventCounts {
    /// [`Event::Quote`](crate::Event::Quote).
    pub quotes: u64,
    /// [`Event::Trade`](crate::Event::Trade).
    pub trades: u64,
    /// [`Event::Block`](crate::Event::Block).
    pub blocks: u64,
    /// [`Event::Balance`](crate::Event::Balance).
    pub balances: u64,
    /// [`Event::Outcome`](crate::Event::Outcome).
    pub outcomes: u64,
    /// [`Event::Timer`](crate::Event::Timer).
    pub timers: u64,
}

/// Triggers that fired and passed every gate (each led to a plan), by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TriggerCounts {
    /// Fixed drift band.
    pub drift: u64,
    /// Volatility-scaled band.
    pub volatility: u64,
    /// Elapsed interval.
    pub temporal: u64,
}

/// Evaluations held back, by reason.
///
/// `holdings_unknown`, `missing_price` and `zero_value` count evaluations that could not compute
/// weights at all; the others count evaluations where a trigger fired but the portfolio was blocked
/// (checked in this order: in flight, awaiting post-landing balances, cooldown, stale price; only the
/// first reason that applies is counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SuppressedCounts {
    /// An intent of the portfolio was in flight.
    pub in_flight: u64,
    /// Its intent landed; balances read at or after the landing block had not all arrived.
    pub awaiting_balances: u64,
    /// Within `cooldown_secs` of the last outcome.
    pub cooldown: u64,
    /// A price of one of its assets was older than `stale_after_ms`.
    pub stale_price: u64,
    /// An asset had no price yet.
    pub missing_price: u64,
    /// An asset had no balance yet.
    pub holdings_unknown: u64,
    /// The portfolio was worth nothing.
    pub zero_value: u64,
    /// The on-chain registry paused the portfolio (checked before every other gate).
    pub registry_paused: u64,
}

/// Inputs refused, by reason. None of them changes state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RejectedCounts {
    /// A quote or trade for an instrument id not in the table.
    pub unknown_instrument: u64,
    /// A quote with a non-positive or non-finite price or a crossed book, or a bad trade price.
    pub invalid_quote: u64,
    /// A balance or outcome for a portfolio id not in the table.
    pub unknown_portfolio: u64,
    /// A balance for a token the portfolio does not hold.
    pub unknown_token: u64,
    /// A balance read at an older block than the one held.
    pub stale_balance: u64,
    /// An outcome for an intent that is not the portfolio's in-flight intent.
    pub unmatched_outcome: u64,
}

/// Outcomes applied, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutcomeCounts {
    /// Landed on chain.
    pub landed: u64,
    /// Expired before inclusion.
    pub expired: u64,
    /// Rejected before submission.
    pub rejected: u64,
}

/// Target changes of moving target sources ([`crate::target`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TargetCounts {
    /// Momentum ring samples that rewrote a portfolio's targets.
    pub momentum_retargets: u64,
    /// Predictor updates applied.
    pub external_applied: u64,
    /// Predictor updates refused by the engine (see [`crate::target::TargetReject`]).
    pub external_refused: u64,
    /// Fallbacks to the configured targets (told by the reader, or by the engine's backstop).
    pub external_fallbacks: u64,
    /// On-chain registry entries applied ([`crate::registry`]).
    pub registry_applied: u64,
    /// On-chain registry entries refused (see [`crate::registry::RegistryReject`]).
    pub registry_refused: u64,
}

/// Everything the engine counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Events by kind.
    pub events: EventCounts,
    /// Triggers fired by kind.
    pub triggers: TriggerCounts,
    /// Evaluations suppressed by reason.
    pub suppressed: SuppressedCounts,
    /// Inputs refused by reason.
    pub rejected: RejectedCounts,
    /// Outcomes by status.
    pub outcomes: OutcomeCounts,
    /// Legs in emitted intents.
    pub legs_planned: u64,
    /// Legs skipped below `min_trade_notional` (or rounding to zero units).
    pub legs_skipped: u64,
    /// Fired triggers whose plan had no leg left to trade (no intent; the cooldown starts).
    pub plans_empty: u64,
    /// Intents emitted.
    pub intents_emitted: u64,
    /// Target changes of moving sources.
    pub targets: TargetCounts,
}
