//! Typed errors of the presign signer.

/// Result alias for this module.
pub type Result<T, E = PresignError> = std::result::Result<T, E>;

/// What can go wrong when building a [`PresignPool`](super::PresignPool).
///
/// Taking from the pool never fails: an empty pool or a dead precompute thread makes
/// [`PresignPool::try_sign_prehash`](super::PresignPool::try_sign_prehash) return `None`, and the
/// [`Signer`](crate::signer::Signer) signs on its normal libsecp256k1 path instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    /// `PresignConfig::capacity` is outside `min..=max`.
    #[error("presign config: `capacity` is {capacity}, expected {min}..={max}")]
    InvalidCapacity {
        /// The rejected value.
        capacity: usize,
        /// Smallest accepted value.
        min: usize,
        /// Largest accepted value.
        max: usize,
    },
    /// The secret key is zero or not below the group order n.
    #[error("secret key is not a valid secp256k1 scalar (zero, or not below the group order)")]
    InvalidSecretKey,
    /// The operating system refused to start the precompute thread.
    #[error("could not spawn the nonce precompute thread")]
    Spawn(#[source] std::io::Error),
}

impl PresignError {
    /// Whether retrying the same call may succeed: only a failed thread spawn (resource exhaustion) is
    /// transient; a bad config or key stays bad.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::Spawn(_))
    }
}
