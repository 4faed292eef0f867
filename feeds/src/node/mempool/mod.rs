//! The mempool stream: pending swaps on tracked pools, and each pool's state after them.
//!
//! ```text
//! eth_subscribe newPendingTransactions ──▶ MempoolDecoder ──PendingTx──try_send──▶ node feed
//!   (reconnects with backoff)                                                    │ PendingView
//! each head's transactions (sender, nonce) ─── inclusion eviction ───────────────┘ age / cap eviction
//! ```
//!
//! * [`decode`]: Router02, SwapRouter, SwapRouter02 (and its multicalls), the Universal Router's V2,
//!   V3 and V4 swap commands, a v4-periphery `V4Router`'s swap actions, and direct pool `swap`s → [`PendingTx`] (one [`Route`] per swap, its
//!   [`Hop`]s in execution order). Malformed calldata to a known router is a typed
//!   [`DecodeError`], counted and skipped.
//! * [`view`]: the [`PendingView`] — arrival-ordered, bounded ([`ViewLimits`]); a transaction
//!   leaves it when another with the same sender and nonce replaces it, when a block includes it or
//!   a later nonce of its sender, when it is older than the configured age, or when the cap is
//!   reached (oldest first). Every eviction is counted ([`Evictions`]). It replays the pending
//!   routes on the book's mined states, chaining each hop's output into the next.
//! * [`feed`]: the websocket task; it never ends on a transport error, it reconnects with
//!   [`crate::backoff::Backoff`] and counts each reconnect ([`MempoolStats`]).
//!
//! A stuck pending swap cannot defer a pair forever: age eviction removes it and the node feed then
//! reports the pool's pending impact as 0, which releases the router's deferral.

pub mod abi;
pub mod config;
pub mod decode;
pub mod feed;
pub mod view;

use alloy::primitives::{Address, B256};
use keel_amm::pool::SwapAmount;

use super::book::{PoolId, PoolKind};

pub use config::{MempoolConfig, MempoolRouter};
pub use decode::{DecodeError, MempoolDecoder, MempoolPool, RouterKind, TxMeta};
pub use feed::{MempoolFeedConfig, MempoolStats, run_mempool_feed};
pub use view::{
    Added, DEFAULT_MAX_PENDING_AGE_SECS, DEFAULT_MAX_PENDING_TXS, Evictions, Mined, PendingView, ViewLimits,
};

/// One pool a pending swap goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// Protocol of the pool.
    pub kind: PoolKind,
    /// Token paid into the pool.
    pub token_in: Address,
    /// Token taken out.
    pub token_out: Address,
    /// V3 fee, pips (0 on V2).
    pub fee: u32,
    /// The tracked pool for these tokens (and fee), if Keel follows one.
    pub pool: Option<PoolId>,
}

impl Hop {
    /// Sells token0 (the lower address) for token1.
    pub fn zero_for_one(&self) -> bool {
        self.token_in < self.token_out
    }
}

/// One swap of a pending transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Hops in execution order (first: pays the user's input token).
    pub hops: Vec<Hop>,
    /// What the calldata fixes: exact input of the first hop or exact output of the last; `None`
    /// when the router decides at execution (it swaps its own balance).
    pub amount: Option<SwapAmount>,
}

/// A pending transaction with at least one swap through a tracked pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTx {
    /// Transaction hash.
    pub hash: B256,
    /// Sender.
    pub sender: Address,
    /// Sender's nonce (a later transaction with the same nonce replaces this one).
    pub nonce: u64,
    /// When the feed saw it, monotonic ns (age eviction).
    pub seen_ns: u64,
    /// Swaps, in call order.
    pub routes: Vec<Route>,
}
