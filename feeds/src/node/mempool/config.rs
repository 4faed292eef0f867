//! `[chain.mempool]`: which routers the mempool decoder reads beyond the configured DEXes' own, how
//! long and how many pending transactions are kept, and the reconnect backoff.

use alloy::primitives::Address;
use serde::Deserialize;

use super::decode::RouterKind;
use super::view::{DEFAULT_MAX_PENDING_AGE_SECS, DEFAULT_MAX_PENDING_TXS, ViewLimits};
use crate::backoff::BackoffConfig;

/// Largest accepted `max_pending_age_secs` (one day).
pub const MAX_PENDING_AGE_SECS_BOUND: u64 = 86_400;
/// Largest accepted `max_pending_txs`.
pub const MAX_PENDING_TXS_BOUND: usize = 1_000_000;

/// A router whose pending calls are decoded (`[[chain.mempool.routers]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolRouter {
    /// Contract address.
    pub address: Address,
    /// What it is: `v2_router02`, `swap_router`, `swap_router02` or `universal_router`.
    pub kind: RouterKind,
}

/// Mempool feed settings (`[chain.mempool]`); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Routers decoded in addition to each `[[dexes]]` router (e.g. the Universal Router and
    /// SwapRouter02, which carry most swaps on mainnet).
    #[serde(default)]
    pub routers: Vec<MempoolRouter>,
    /// A pending transaction older than this is dropped from the view, seconds
    /// (default [`DEFAULT_MAX_PENDING_AGE_SECS`]).
    #[serde(default = "default_age")]
    pub max_pending_age_secs: u64,
    /// Most pending transactions kept, oldest evicted first (default [`DEFAULT_MAX_PENDING_TXS`]).
    #[serde(default = "default_txs")]
    pub max_pending_txs: usize,
    /// Reconnect delays of the mempool subscription.
    #[serde(default)]
    pub backoff: BackoffConfig,
}

fn default_age() -> u64 {
    DEFAULT_MAX_PENDING_AGE_SECS
}
fn default_txs() -> usize {
    DEFAULT_MAX_PENDING_TXS
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            routers: Vec::new(),
            max_pending_age_secs: DEFAULT_MAX_PENDING_AGE_SECS,
            max_pending_txs: DEFAULT_MAX_PENDING_TXS,
            backoff: BackoffConfig::default(),
        }
    }
}

impl MempoolConfig {
    /// Checks the bounds; the error names the field and the bound.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_pending_age_secs == 0 || self.max_pending_age_secs > MAX_PENDING_AGE_SECS_BOUND {
            return Err(format!(
                "chain.mempool.max_pending_age_secs: {} is outside 1..={MAX_PENDING_AGE_SECS_BOUND}",
                self.max_pending_age_secs
            ));
        }
        if self.max_pending_txs == 0 || self.max_pending_txs > MAX_PENDING_TXS_BOUND {
            return Err(format!(
                "chain.mempool.max_pending_txs: {} is outside 1..={MAX_PENDING_TXS_BOUND}",
                self.max_pending_txs
            ));
        }
        self.backoff.validate().map_err(|e| format!("chain.mempool.{e}"))
    }

    /// The view's bounds.
    pub fn limits(&self) -> ViewLimits {
        ViewLimits {
            max_age_ns: self.max_pending_age_secs.min(MAX_PENDING_AGE_SECS_BOUND) * 1_000_000_000,
            max_txs: self.max_pending_txs.clamp(1, MAX_PENDING_TXS_BOUND),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bounds_and_router_kinds_parse() {
        let c: MempoolConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, MempoolConfig::default());
        assert!(c.validate().is_ok());
        let c: MempoolConfig = serde_json::from_str(
            r#"{"routers":[{"address":"0x66a9893cc07d91d95644aedd05d03f95e1dba8af","kind":"universal_router"},
                {"address":"0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45","kind":"swap_router02"},
                {"address":"0x0000000000000000000000000000000000000004","kind":"v4_router"}],
                "max_pending_age_secs":30}"#,
        )
        .unwrap();
        assert_eq!(c.routers[0].kind, RouterKind::UniversalRouter);
        assert_eq!(c.routers[2].kind, RouterKind::V4Router);
        assert_eq!(c.limits().max_age_ns, 30_000_000_000);
        let bad = MempoolConfig { max_pending_age_secs: 0, ..MempoolConfig::default() };
        assert!(bad.validate().unwrap_err().contains("max_pending_age_secs"));
        let bad = MempoolConfig { max_pending_txs: 2_000_000, ..MempoolConfig::default() };
        assert!(bad.validate().unwrap_err().contains("max_pending_txs: 2000000 is outside 1..=1000000"));
        assert!(serde_json::from_str::<MempoolConfig>(r#"{"max_age":1}"#).is_err());
    }
}
