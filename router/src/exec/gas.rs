//! Swap-gas estimates: learned per pool from the receipts of landed bundles.

use super::{Executor, Inflight, ReceiptInfo};
use crate::plan::V3_GAS_PER_TICK_CROSSED;

/// Gas limit headroom over the configured per-swap gas, percent.
pub use crate::plan::GAS_LIMIT_MARGIN_PCT;

/// How many recent landed swaps a pool's gas estimate looks at.
pub const GAS_OBSERVATIONS: usize = 8;

impl Executor {
    /// Refines each pool's swap-gas estimate from the receipts of a landed bundle: the estimate is the
    /// largest of the last [`GAS_OBSERVATIONS`] successful single-pool swaps' gas used, less
    /// [`V3_GAS_PER_TICK_CROSSED`] per V3 tick the plan's simulation crossed in that swap (the plan
    /// adds the crossings of each new swap on top of this base), and it prices gas in the
    /// split optimiser and sets gas limits (× [`GAS_LIMIT_MARGIN_PCT`]) from then on. Until a pool
    /// has landed a swap, its configured (measured) default is used. No node round trip is added to
    /// the tick-to-wire path.
    pub(super) fn learn_gas(&mut self, f: &Inflight, receipts: &[ReceiptInfo]) {
        let n = f.txs.len().max(1);
        for r in receipts.iter().filter(|r| r.success && r.gas_used > 0) {
            let index = f.txs.iter().position(|t| t.hash == r.hash).or_else(|| {
                // An earlier version maps by position only when every version had the same calls.
                f.superseded.iter().position(|h| *h == r.hash).filter(|_| f.same_shape).map(|k| k % n)
            });
            let Some(Some((pool, crossed))) = index.and_then(|k| f.swap_pool.get(k)) else { continue };
            // The plan adds V3_GAS_PER_TICK_CROSSED per tick it crosses on top of the estimate:
            // learn the swap's base gas, not base + this swap's crossings (counted twice after).
            let crossings = u64::from(*crossed).saturating_mul(V3_GAS_PER_TICK_CROSSED);
            let base = r.gas_used.saturating_sub(crossings).max(1);
            let seen = &mut self.gas_seen[*pool];
            if seen.len() == GAS_OBSERVATIONS {
                seen.remove(0);
            }
            seen.push(base);
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
