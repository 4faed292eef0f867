//! The pools that planning routes on: a copy of the executor's pools that legs move as they are
//! routed (so that a later leg through the same pool sees the earlier one), kept between plans and
//! brought back in step by re-copying only the pools that changed since — the ones a plan moved and
//! the ones a chain update moved — instead of cloning every pool (V3 tick maps included) for every
//! intent and every size tried.

use keel_amm::pool::PoolEntry;

/// The planning copy of the pools (see the module docs).
#[derive(Debug, Default)]
pub(super) struct ScratchPools {
    pools: Vec<PoolEntry>,
    /// Indices whose copy may differ from the executor's pool.
    stale: Vec<usize>,
    /// Every copy may differ (after a plan that failed part way).
    all_stale: bool,
}

impl ScratchPools {
    /// A copy of `pools`.
    pub(super) fn new(pools: &[PoolEntry]) -> Self {
        Self { pools: pools.to_vec(), stale: Vec::new(), all_stale: false }
    }

    /// The executor's pool `i` changed.
    pub(super) fn mark(&mut self, i: usize) {
        if !self.stale.contains(&i) {
            self.stale.push(i);
        }
    }

    /// The copy, brought back to `pools` (re-copying only what changed), to route a plan on. Until
    /// the caller reports what it moved with [`ScratchPools::moved`], the whole copy counts as
    /// spoiled (a plan that fails part way does not know what it moved).
    pub(super) fn synced(&mut self, pools: &[PoolEntry]) -> &mut [PoolEntry] {
        if self.all_stale || self.pools.len() != pools.len() {
            self.pools.clone_from_slice_or_replace(pools);
            self.all_stale = false;
            self.stale.clear();
        } else {
            for i in self.stale.drain(..) {
                self.pools[i].clone_from(&pools[i]);
            }
        }
        self.all_stale = true;
        &mut self.pools
    }

    /// The plan routed on the copy succeeded and moved these pools (only these).
    pub(super) fn moved(&mut self, pools: impl IntoIterator<Item = usize>) {
        self.all_stale = false;
        for i in pools {
            self.mark(i);
        }
    }
}

/// `clone_from` for a whole vector whose length may differ.
trait ReplaceAll {
    fn clone_from_slice_or_replace(&mut self, src: &[PoolEntry]);
}

impl ReplaceAll for Vec<PoolEntry> {
    fn clone_from_slice_or_replace(&mut self, src: &[PoolEntry]) {
        if self.len() == src.len() {
            for (d, s) in self.iter_mut().zip(src) {
                d.clone_from(s);
            }
        } else {
            *self = src.to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};
    use keel_amm::pool::{Pool, PoolMeta};

    use super::*;

    fn v2(n: u8, r: u64) -> PoolEntry {
        let (token0, token1) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let meta = PoolMeta {
            id: format!("p{n}"),
            address: Address::repeat_byte(n),
            token0,
            token1,
            gas: 1,
            venue: 0,
        };
        let pool = Pool::V2 { reserve0: U256::from(r), reserve1: U256::from(r), fee_bps: 30 };
        PoolEntry::new(meta, pool).unwrap()
    }

    #[test]
    fn only_moved_and_updated_pools_are_copied_back() {
        let mut pools = vec![v2(10, 1_000), v2(11, 2_000)];
        let mut scratch = ScratchPools::new(&pools);
        // A plan moves pool 0 on the copy.
        scratch.synced(&pools)[0] = v2(10, 5);
        scratch.moved([0]);
        // The chain moves pool 1.
        pools[1] = v2(11, 7);
        scratch.mark(1);
        assert_eq!(scratch.synced(&pools), &pools[..]);
        scratch.moved([]);
        // Nothing unmarked is copied: a change a plan made but did not report stays...
        scratch.synced(&pools)[1] = v2(11, 9);
        scratch.moved([]);
        assert_ne!(scratch.synced(&pools)[1], pools[1]);
        // ...and a plan that never reports (it failed part way) leaves it all copied back.
        scratch.synced(&pools)[1] = v2(11, 9);
        assert_eq!(scratch.synced(&pools), &pools[..]);
    }
}
