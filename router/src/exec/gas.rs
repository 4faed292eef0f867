//! Swap-gas estimates: learned per pool from the receipts of landed bundles.

use super::{Executor, Inflight, ReceiptInfo};
use crate::config::MAX_POOL_GAS;
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
    /// split optimiser and sets gas limits (× [`GAS_LIMIT_MARGIN_PCT`]) from then on, never under
    /// those its configured gas sets ([`Executor::configured_gas_limit`]). Until a pool
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
            let Some(Some((pool, crossed))) = index.and_then(|k| f.swap_pool.get(k)) else { continue };
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
                self.scratch.get_mut().mark(*pool);
            }
        }
    }

    /// The gas limit a swap through `pools` crossing `crossed` V3 ticks gets from the pools'
    /// configured gas alone: the floor under the limit from the learned estimates.
    pub(super) fn configured_gas_limit(&self, pools: &[usize], crossed: u32) -> u64 {
        let base = pools
            .iter()
            .map(|&p| self.configured_gas.get(p).copied().unwrap_or(0))
            .fold(0u64, u64::saturating_add);
        (base.saturating_mul(100 + GAS_LIMIT_MARGIN_PCT) / 100)
            .saturating_add(u64::from(crossed).saturating_mul(crate::plan::V3_GAS_LIMIT_PER_TICK_CROSSED))
    }

    /// The current swap-gas estimate of a pool (see [`Executor::learn_gas`]).
    pub fn gas_estimate(&self, pool: usize) -> Option<u64> {
        self.pools.get(pool).map(|p| p.meta.gas)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{B256, Bytes};
    use keel_engine::PortfolioId;

    use super::*;
    use crate::tx::{Fees, SignedTx};

    #[test]
    fn a_landed_v3_swap_teaches_its_base_gas_without_the_ticks_it_crossed() {
        let (mut exec, accounts) = super::super::tests::executor_for(1);
        let tx = |n: u8| SignedTx {
            raw: Bytes::new(),
            hash: B256::repeat_byte(n),
            from: accounts[0],
            nonce: u64::from(n),
            gas_limit: 1_000_000,
            fees: Fees { max_fee_per_gas: 1, max_priority_fee_per_gas: 1 },
        };
        let f = Inflight {
            intent: 1,
            portfolio: PortfolioId(0),
            account: accounts[0],
            txs: vec![tx(1), tx(2)],
            calls: Vec::new(),
            first_nonce: 1,
            last_nonce: 2,
            target_block: 2,
            deadline_block: 3,
            landed: true,
            receiptless_landings: 0,
            uuid: String::new(),
            superseded: Vec::new(),
            same_shape: true,
            version: 0,
            first_sent_ns: 0,
            first_target_block: 0,
            landed_ns: 0,
            cancelled: false,
            simulating: None,
            unsimulated: false,
            approvals: Vec::new(),
            // an approval, then a swap through pool 0 whose simulation crossed 10 ticks
            swap_pool: vec![None, Some((0, 10))],
        };
        let receipts = [
            ReceiptInfo { hash: tx(1).hash, block: 2, gas_used: 46_000, success: true },
            ReceiptInfo { hash: tx(2).hash, block: 2, gas_used: 450_000, success: true },
        ];
        exec.learn_gas(&f, &receipts);
        // 450,000 − 10 × 31,000: the next plan adds its own crossings on top of 140,000.
        assert_eq!(exec.gas_estimate(0), Some(140_000));
    }
}
