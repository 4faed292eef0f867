//! Chain facts as the router stage receives them from the feeds (the HTTP poller, the websocket
//! node feed, the mempool view): the types where ingest and execution meet, so that neither
//! imports the other.

use alloy_primitives::{Address, B256, U256};
use keel_amm::pool::PoolUpdate;

use crate::event::BlockHeader;

/// Where a pool update came from: the oracle guard treats their staleness differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolSource {
    /// Read by the chain poller at every block (V2 reserves over HTTP): stale when the latest read
    /// lags the head.
    Poll,
    /// Kept from the node's log subscription (V2 and V3): changes only when traded; stale while
    /// the feed's head lags (see [`ChainUpdate::PoolFeedHead`]).
    Logs,
}

/// A fact about the chain, tagged with the block it reflects.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainUpdate {
    /// A new head.
    Head(BlockHeader),
    /// A change to one configured pool, applied by the router to its pool model as is.
    Pool {
        /// The change.
        update: PoolUpdate,
        /// Who saw it.
        source: PoolSource,
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

impl ChainUpdate {
    /// A V2 pair's reserves as the chain poller reads them at `block`.
    pub fn polled_v2_reserves(
        pool: u32,
        address: Address,
        reserve0: U256,
        reserve1: U256,
        block: u64,
    ) -> Self {
        Self::Pool {
            update: PoolUpdate {
                pool,
                address,
                block,
                change: keel_amm::pool::PoolChange::V2 { reserve0, reserve1 },
                recv_ns: crate::clock::mono_now_ns(),
            },
            source: PoolSource::Poll,
        }
    }
}

/// One landed transaction's receipt, as the driver read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptInfo {
    /// Transaction hash.
    pub hash: B256,
    /// Block of inclusion.
    pub block: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Whether it succeeded.
    pub success: bool,
}
