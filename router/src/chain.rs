//! Chain state as the router stage receives it from the node feed.

use alloy::primitives::{Address, U256};
use keel_engine::event::BlockHeader;

use crate::pool::Pool;

/// A fact about the chain, tagged with the block it reflects.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainUpdate {
    /// A new head.
    Head(BlockHeader),
    /// A V2 pool's reserves.
    V2Reserves {
        /// Index of the pool in the configured pool list.
        pool: usize,
        /// Reserve of token0.
        reserve0: U256,
        /// Reserve of token1.
        reserve1: U256,
        /// Block the reserves are as of.
        block: u64,
    },
    /// A pool's full swap state (V3 pools, or V2 pools synced by the websocket node feed).
    PoolState {
        /// Index of the pool in the configured pool list.
        pool: usize,
        /// The state.
        state: Pool,
        /// Block the state is as of.
        block: u64,
    },
    /// The websocket node feed has seen head `block`: the pools it keeps (by their logs) are as
    /// current as this block. Pools kept that way are stale when it falls behind the head.
    PoolFeedHead {
        /// The feed's latest head (or the block of its latest full load).
        block: u64,
    },
    /// How far the swaps pending in the public mempool would move a pool's mid price (relative, ≥ 0),
    /// from the mempool feed's pending view; 0 when nothing is pending on it.
    PendingImpact {
        /// Index of the pool in the configured pool list.
        pool: usize,
        /// |mid after pending swaps / mid now − 1|.
        impact: f64,
    },
    /// An account's transaction count (its next nonce).
    Nonce {
        /// Account.
        account: Address,
        /// Transaction count at `block`.
        nonce: u64,
        /// Block.
        block: u64,
    },
    /// An allowance an account has given a spender (a DEX router).
    Allowance {
        /// Owner.
        owner: Address,
        /// Token.
        token: Address,
        /// Spender.
        spender: Address,
        /// Amount allowed.
        amount: U256,
    },
}
