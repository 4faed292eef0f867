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
    /// Monotonic receive time of the event, when it came from outside.
    pub fn recv_ns(&self) -> Option<Nanos> {
        match self {
            Event::Quote(q) => Some(q.recv_ns),
            Event::Trade(t) => Some(t.recv_ns),
            Event::Block(b) => Some(b.recv_ns),
            Event::Timer { now_ns } => Some(*now_ns),
            Event::Balance(_) | Event::Outcome(_) => None,
        }
    }
}
