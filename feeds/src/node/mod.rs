//! The Ethereum node feed: exact pool state and chain heads from websocket subscriptions.
//!
//! ```text
//! newHeads ──▶ Event::Block, Event::Balance ──try_push──▶ Queue<Event>        (engine)
//! logs (Sync/Swap/Mint/Burn) ──▶ PoolBook ──ChainUpdate::Pool──try_push──▶ router queue
//! ```
//!
//! * [`book`]: the [`PoolBook`] (V2 reserves, V3 [`keel_amm::v3::V3Pool`]), each pool tagged with
//!   the block it reflects; logs applied in order, duplicates ignored, reorgs rolled back.
//! * [`sync`]: the initial / resync load by `eth_call` pinned at one block.
//! * [`feed`]: the async task (subscribe, load, apply, reconnect with backoff and resync on a gap).

pub mod book;
pub mod error;
pub mod feed;
pub mod mempool;
pub mod sync;

pub use book::{Applied, Pool, PoolBook, PoolChange, PoolEntry, PoolId, PoolKind, PoolUpdate, TrackedPool};
pub use error::{NodeError, Result};
pub use feed::{BalanceWatch, NodeFeedConfig, NodeFeedOutputs, NodeFeedStats, run_node_feed};
pub use mempool::{
    DecodeError, Hop, MempoolConfig, MempoolDecoder, MempoolFeedConfig, MempoolPool, MempoolRouter,
    MempoolStats, PendingTx, PendingView, Route, RouterKind, TxMeta, ViewLimits, run_mempool_feed,
};
