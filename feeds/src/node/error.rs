//! Errors of the node feed.

/// Result alias for the node feed.
pub type Result<T> = core::result::Result<T, NodeError>;

/// What can go wrong in the node feed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Connecting, subscribing or an `eth_call` failed.
    #[error("node rpc {method}: {reason}")]
    Rpc {
        /// Method or step.
        method: String,
        /// Transport or node error.
        reason: String,
    },
    /// A log or a transaction could not be decoded.
    #[error("decode: {0}")]
    Decode(String),
    /// A change does not fit the book (wrong pool kind, a position the pool does not have).
    #[error("inconsistent pool state: {0}")]
    Inconsistent(String),
    /// A reorg deeper than the kept history: resync.
    #[error("reorg back to block {0} is deeper than the kept history")]
    ReorgTooDeep(u64),
    /// A subscription ended (the connection dropped).
    #[error("subscription {0} ended")]
    SubscriptionEnded(&'static str),
}

impl NodeError {
    /// Wraps an RPC error with the method it came from.
    pub fn rpc(method: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Rpc { method: method.into(), reason: e.to_string() }
    }

    /// True when reconnecting and resyncing is the cure.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            Self::Rpc { .. } | Self::SubscriptionEnded(_) | Self::ReorgTooDeep(_) | Self::Inconsistent(_)
        )
    }
}
