//! What flows into the engine. Every event carries the monotonic time at which Keel received it, so
//! each stage's latency can be measured from the wire onwards.
//!
//! Events are `Copy` and small: pushing one through a queue never allocates.

use alloy_primitives::U256;

use crate::clock::Nanos;
use crate::ids::{InstrumentId, PortfolioId, TokenId};

/// Top of book for one instrument (Binance `bookTicker`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quote {
    /// Which instrument.
    pub instrument: InstrumentId,
    /// Best bid price.
    pub bid: f64,
    /// Best bid quantity.
    pub bid_qty: f64,
    /// Best ask price.
    pub ask: f64,
    /// Best ask quantity.
    pub ask_qty: f64,
    /// Exchange order-book update id (`u`), for gap and ordering checks.
    pub update_id: u64,
    /// Exchange event time in milliseconds since the Unix epoch, when the venue sends it (futures `E`);
    /// otherwise 0.
    pub exchange_ms: u64,
    /// Monotonic time at which the frame's bytes were read from the socket.
    pub recv_ns: Nanos,
}

/// One trade print (Binance `aggTrade`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trade {
    /// Which instrument.
    pub instrument: InstrumentId,
    /// Trade price.
    pub price: f64,
    /// Trade quantity.
    pub qty: f64,
    /// Exchange trade time, milliseconds since the Unix epoch.
    pub exchange_ms: u64,
    /// Monotonic receive time.
    pub recv_ns: Nanos,
}

/// A new chain head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block number.
    pub number: u64,
    /// Block timestamp, seconds since the Unix epoch.
    pub timestamp: u64,
    /// EIP-1559 base fee of the block, wei.
    pub base_fee: u128,
    /// Monotonic receive time.
    pub recv_ns: Nanos,
}

/// A portfolio account's on-chain balance of one token, as of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// Whose balance.
    pub portfolio: PortfolioId,
    /// Which token.
    pub token: TokenId,
    /// Raw amount in the token's smallest unit.
    pub amount: U256,
    /// The block the balance was read at.
    pub block: u64,
    /// Monotonic time the read's answer arrived (recorded with it: a replay has the same).
    pub recv_ns: Nanos,
}

/// How a submitted rebalance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeStatus {
    /// Included on chain in `block`.
    Landed {
        /// Block of inclusion.
        block: u64,
        /// Gas used by the rebalance's transactions.
        gas_used: u64,
    },
    /// Never included before its deadline.
    Expired,
    /// Not submitted: no route, a guard refused, or the transactions could not be built.
    Rejected,
}

/// The router's report on a rebalance intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The intent this reports on.
    pub intent: u64,
    /// Its portfolio.
    pub portfolio: PortfolioId,
    /// What happened.
    pub status: OutcomeStatus,
    /// Monotonic time of what settled it, on the router's side: the receipts' arrival, the head
    /// that expired it, the event that decided a refused intent. Not when the engine took it in
    /// (a thread hand-off later), so that a replay, which has these times, settles it at the same
    /// moment.
    pub at_ns: Nanos,
}

/// Everything the engine reacts to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// Top-of-book update.
    Quote(Quote),
    /// Trade print.
    Trade(Trade),
    /// New chain head.
    Block(BlockHeader),
    /// On-chain balance of a portfolio account.
    Balance(Balance),
    /// A rebalance intent ended.
    Outcome(Outcome),
    /// Nothing happened but time passed: lets temporal triggers and staleness checks run.
    Timer {
        /// Monotonic time of the tick.
        now_ns: Nanos,
    },
}

impl Event {
    /// The event's time on the monotonic clock: when it was received (a quote, trade, head or
    /// balance), settled (an outcome) or ticked (a timer). The engine's decisions run on these
    /// times, never on the moment its thread got to the event, so that a replay of the recorded
    /// times decides as the recorded run did, whatever the load on its threads.
    #[inline]
    pub fn time_ns(&self) -> Nanos {
        match self {
            Event::Quote(q) => q.recv_ns,
            Event::Trade(t) => t.recv_ns,
            Event::Block(b) => b.recv_ns,
            Event::Balance(b) => b.recv_ns,
            Event::Outcome(o) => o.at_ns,
            Event::Timer { now_ns } => *now_ns,
        }
    }
}
