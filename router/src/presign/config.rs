//! Configuration of the nonce pool.

use super::error::{PresignError, Result};

/// Default number of precomputed nonces kept ready ([`PresignConfig::capacity`]).
pub const DEFAULT_CAPACITY: usize = 1024;
/// Smallest accepted [`PresignConfig::capacity`].
pub const MIN_CAPACITY: usize = 1;
/// Largest accepted [`PresignConfig::capacity`] (about 110 MB of pool at this size).
pub const MAX_CAPACITY: usize = 1 << 20;

/// Pool settings for a [`PresignPool`](super::PresignPool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresignConfig {
    /// How many precomputed nonces the background thread keeps ready, in
    /// `MIN_CAPACITY..=MAX_CAPACITY`. Each costs one k·G (tens of µs) to make and about 110 bytes to
    /// hold; a burst longer than this falls back to normal (RFC 6979, libsecp256k1) signing until the
    /// pool refills.
    pub capacity: usize,
}

impl Default for PresignConfig {
    fn default() -> Self {
        Self { capacity: DEFAULT_CAPACITY }
    }
}

impl PresignConfig {
    /// Checks every field, naming the field and the accepted range on error.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(PresignError::InvalidCapacity {
                capacity: self.capacity,
                min: MIN_CAPACITY,
                max: MAX_CAPACITY,
            });
        }
        Ok(())
    }
}
