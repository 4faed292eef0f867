//! Swap-gas estimates: learned per pool from the receipts of landed bundles.

use super::{Executor, Inflight, ReceiptInfo};
use crate::config::MAX_POOL_GAS;

/// Gas limit headroom over the configured per-swap gas, percent.
pub const GAS_LIMIT_MARGIN_PCT: u64 = 30;

/// How many recent landed swaps a pool's gas estimate looks at.
pub const GAS_OBSERVATIONS: usize = 8;

impl Executor {
    /// Refines each pool's swap-gas estimate from the receipts of a landed bundle: the estimate is the
    /// largest of the last [`GAS_OBSERVATIONS`] successful single-pool swaps, and it prices gas in the
    /// split optimiser and sets gas limits (× [`GAS_LIMIT_MARGIN_PCT`]) from then on. Until a pool
    /// has landed a swap, its configured (measured) default is used. A receipt above
    /// [`MAX_POOL_GAS`] (a block's worth, the configured bound too) is not learned. No node round trip is added to
    /// the tick-to-wire path.
    pub(super) fn learn_gas(&mut self, f: &Inflight, receipts: &[ReceiptInfo]) {
        let n = f.txs.len().max(1);
        for r in receipts.iter().filter(|r| r.success && r.gas_used > 0) {
            let index = f.txs.iter().position(|t| t.hash == r.hash).or_else(|| {
                // An earlier version maps by position only when every version had the same calls.
                f.superseded.iter().position(|h| *h == r.hash).filter(|_| f.same_shape).map(|k| k % n)
            });
            let Some(Some(pool)) = index.and_then(|k| f.swap_pool.get(k)) else { continue };
            if r.gas_used > MAX_POOL_GAS {
                // No swap costs more than a block: a node that reports it is wrong, and learning it
                // would make every later gas limit exceed the block's and never land.
                tracing::warn!(
                    pool = *pool,
                    gas_used = r.gas_used,
                    max = MAX_POOL_GAS,
                    "receipt gas above a block's: not learned"
                );
                continue;
            }
            let seen = &mut self.gas_seen[*pool];
            if seen.len() == GAS_OBSERVATIONS {
                seen.remove(0);
            }
            seen.push(r.gas_used);
            if let Some(&estimate) = seen.iter().max() {
                self.pools[*pool].meta.gas = estimate;
            }
        }
    }

    /// The current swap-gas estimate of a pool (see [`Executor::learn_gas`]).
    pub fn gas_estimate(&self, pool: usize) -> Option<u64> {
        self.pools.get(pool).map(|p| p.meta.gas)
    }
}
