//! The pending view: the transactions pending on tracked pools, bounded, and pools' states after them.

use std::collections::VecDeque;

use alloy::primitives::{Address, B256, U256};
use keel_amm::pool::{Pool, SwapAmount};

use super::PendingTx;
use crate::node::book::{PoolBook, PoolId};

/// Default age after which a pending transaction is dropped from the view, seconds (five mainnet
/// blocks: a swap that waits longer is stuck, replaced unseen, or dropped by the node).
pub const DEFAULT_MAX_PENDING_AGE_SECS: u64 = 60;
/// Default largest number of pending transactions kept (oldest evicted first).
pub const DEFAULT_MAX_PENDING_TXS: usize = 4_096;

/// Bounds of the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewLimits {
    /// Age after which a transaction is evicted, ns.
    pub max_age_ns: u64,
    /// Most transactions kept.
    pub max_txs: usize,
}

impl Default for ViewLimits {
    fn default() -> Self {
        Self { max_age_ns: DEFAULT_MAX_PENDING_AGE_SECS * 1_000_000_000, max_txs: DEFAULT_MAX_PENDING_TXS }
    }
}

/// Transactions evicted from the view, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evictions {
    /// Replaced by another transaction of the same sender and nonce.
    pub replaced: u64,
    /// Included in a block, or passed by a later nonce of the same sender.
    pub included: u64,
    /// Older than the view's age limit.
    pub aged: u64,
    /// Evicted (oldest first) because the view was full.
    pub capped: u64,
}

/// What [`PendingView::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new transaction.
    New,
    /// The same hash was already pending: ignored.
    Duplicate,
    /// It replaced the pending transaction with the same sender and nonce.
    Replaced,
}

/// A transaction in a block: what inclusion eviction matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mined {
    /// Hash.
    pub hash: B256,
    /// Sender.
    pub sender: Address,
    /// Nonce.
    pub nonce: u64,
}

/// Pending transactions in arrival order, bounded by [`ViewLimits`].
#[derive(Debug, Clone, Default)]
pub struct PendingView {
    txs: VecDeque<PendingTx>,
    limits: ViewLimits,
    evictions: Evictions,
}

impl PendingView {
    /// An empty view with these bounds.
    pub fn new(limits: ViewLimits) -> Self {
        Self { txs: VecDeque::new(), limits, evictions: Evictions::default() }
    }

    /// Adds a transaction: a duplicate hash is ignored, the same sender and nonce replaces the
    /// older one, and a full view evicts its oldest first.
    pub fn add(&mut self, tx: PendingTx) -> Added {
        if self.txs.iter().any(|t| t.hash == tx.hash) {
            return Added::Duplicate;
        }
        let mut added = Added::New;
        if let Some(i) = self.txs.iter().position(|t| t.sender == tx.sender && t.nonce == tx.nonce) {
            self.txs.remove(i);
            self.evictions.replaced += 1;
            added = Added::Replaced;
        }
        while self.txs.len() >= self.limits.max_txs.max(1) {
            self.txs.pop_front();
            self.evictions.capped += 1;
        }
        self.txs.push_back(tx);
        added
    }

    /// Drops the transactions a block includes, and those whose sender's nonce the block passed
    /// (a replacement Keel did not decode was mined). Returns how many left.
    pub fn remove_included(&mut self, mined: &[Mined]) -> usize {
        let before = self.txs.len();
        self.txs.retain(|t| {
            !mined.iter().any(|m| m.hash == t.hash || (m.sender == t.sender && m.nonce >= t.nonce))
        });
        let n = before - self.txs.len();
        self.evictions.included += n as u64;
        n
    }

    /// Drops the transactions seen more than the age limit before `now_ns`. Returns how many left.
    pub fn evict_aged(&mut self, now_ns: u64) -> usize {
        let before = self.txs.len();
        let max = self.limits.max_age_ns;
        self.txs.retain(|t| now_ns.saturating_sub(t.seen_ns) <= max);
        let n = before - self.txs.len();
        self.evictions.aged += n as u64;
        n
    }

    /// Pending transactions, oldest first.
    pub fn pending(&self) -> impl ExactSizeIterator<Item = &PendingTx> {
        self.txs.iter()
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Evictions so far.
    pub fn evictions(&self) -> Evictions {
        self.evictions
    }

    /// Sum of the amounts the pending routes fix on `pool` (exact inputs of first hops and exact
    /// outputs of last hops alike).
    pub fn pending_volume(&self, pool: PoolId) -> U256 {
        let mut sum = U256::ZERO;
        for r in self.txs.iter().flat_map(|t| &t.routes) {
            let (hop, amt) = match r.amount {
                Some(SwapAmount::ExactIn(a)) => (r.hops.first(), a),
                Some(SwapAmount::ExactOut(a)) => (r.hops.last(), a),
                None => continue,
            };
            if hop.and_then(|h| h.pool) == Some(pool) {
                sum = sum.saturating_add(amt);
            }
        }
        sum
    }

    /// Every pool's state in `book` after the pending routes, in arrival order (index = pool id;
    /// `None` before the pool is loaded).
    ///
    /// An exact-input route runs forward, each hop's output paying the next; an exact-output route
    /// runs backward from its last hop, each hop's input being what the previous must deliver (as
    /// the routers compute it). A route stops at a hop on an untracked or unloaded pool (what follows
    /// cannot be priced) and one that would revert is undone whole, as the chain would revert it.
    pub fn replay(&self, book: &PoolBook) -> Vec<Option<Pool>> {
        let mut states: Vec<Option<Pool>> = book.pools().iter().map(|e| e.state.clone()).collect();
        let mut undo: Vec<(usize, Pool)> = Vec::new();
        for route in self.txs.iter().flat_map(|t| &t.routes) {
            let Some(amount) = route.amount else { continue };
            undo.clear();
            let (mut amt, exact_in) = match amount {
                SwapAmount::ExactIn(a) => (a, true),
                SwapAmount::ExactOut(a) => (a, false),
            };
            let mut reverted = false;
            let mut step = |hop: &super::Hop, amt: &mut U256| -> bool {
                let Some(state) =
                    hop.pool.and_then(|id| states.get_mut(id as usize)).and_then(Option::as_mut)
                else {
                    return false;
                };
                let a = if exact_in { SwapAmount::ExactIn(*amt) } else { SwapAmount::ExactOut(*amt) };
                match state.swap(hop.zero_for_one(), a, None) {
                    Ok(q) => {
                        undo.push((hop.pool.unwrap_or_default() as usize, state.clone()));
                        if state.apply(&q.change).is_err() {
                            reverted = true;
                            return false;
                        }
                        *amt = if exact_in { q.amount_out } else { q.amount_in };
                        true
                    }
                    Err(_) => {
                        reverted = true;
                        false
                    }
                }
            };
            if exact_in {
                for hop in &route.hops {
                    if !step(hop, &mut amt) {
                        break;
                    }
                }
            } else {
                for hop in route.hops.iter().rev() {
                    if !step(hop, &mut amt) {
                        break;
                    }
                }
            }
            if reverted {
                for (id, old) in undo.drain(..).rev() {
                    states[id] = Some(old);
                }
            }
        }
        states
    }

    /// `pool`'s state after the pending routes (see [`PendingView::replay`]).
    pub fn pool_after(&self, book: &PoolBook, pool: PoolId) -> Option<Pool> {
        self.replay(book).into_iter().nth(pool as usize).flatten()
    }

    /// |mid after the pending routes / mid now − 1| per pool into `out` (index = pool id; 0 with
    /// nothing pending or no state).
    pub fn impacts(&self, book: &PoolBook, out: &mut [f64]) {
        out.fill(0.0);
        if self.txs.is_empty() {
            return;
        }
        let after = self.replay(book);
        for ((o, entry), after) in out.iter_mut().zip(book.pools()).zip(&after) {
            let now = entry.state.as_ref().map(Pool::mid_price);
            let then = after.as_ref().map(Pool::mid_price);
            if let (Some(a), Some(b)) = (now, then)
                && a.is_finite()
                && a > 0.0
                && b.is_finite()
            {
                *o = (b / a - 1.0).abs();
            }
        }
    }

    /// `pool`'s entry of [`PendingView::impacts`].
    pub fn impact(&self, book: &PoolBook, pool: PoolId) -> f64 {
        let mut out = vec![0.0; book.pools().len()];
        self.impacts(book, &mut out);
        out.get(pool as usize).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;
    use keel_amm::pool::Pool;

    use super::super::{Hop, Route};
    use super::*;
    use crate::node::book::{PoolKind, TrackedPool};

    const A: Address = address!("0x000000000000000000000000000000000000000a");
    const B: Address = address!("0x000000000000000000000000000000000000000b");
    const C: Address = address!("0x000000000000000000000000000000000000000c");
    const SECOND: u64 = 1_000_000_000;

    fn e18(x: u64) -> U256 {
        U256::from(x) * U256::from(10u64).pow(U256::from(18u64))
    }

    /// Two V2 pools: A/B (id 0) and B/C (id 1), 1,000 of each token.
    fn book() -> PoolBook {
        let tracked =
            |a| TrackedPool { address: a, kind: PoolKind::V2, fee: 30, tick_spacing: None, pool_key: None };
        let mut book = PoolBook::new(&[tracked(Address::repeat_byte(1)), tracked(Address::repeat_byte(2))]);
        for id in 0..2 {
            let pool = Pool::V2 { reserve0: e18(1_000), reserve1: e18(1_000), fee_bps: 30 };
            book.set_state(id, pool, 1, 0);
        }
        book
    }

    fn hop(token_in: Address, token_out: Address, pool: Option<PoolId>) -> Hop {
        Hop { kind: PoolKind::V2, token_in, token_out, fee: 0, pool }
    }

    fn tx(n: u8, sender: u8, nonce: u64, seen_s: u64, amount: SwapAmount, hops: Vec<Hop>) -> PendingTx {
        PendingTx {
            hash: B256::repeat_byte(n),
            sender: Address::repeat_byte(sender),
            nonce,
            seen_ns: seen_s * SECOND,
            routes: vec![Route { hops, amount: Some(amount) }],
        }
    }

    fn sell_a(n: u8, sender: u8, nonce: u64, seen_s: u64, amount: u64) -> PendingTx {
        tx(n, sender, nonce, seen_s, SwapAmount::ExactIn(e18(amount)), vec![hop(A, B, Some(0))])
    }

    fn limits(max_age_s: u64, max_txs: usize) -> ViewLimits {
        ViewLimits { max_age_ns: max_age_s * SECOND, max_txs }
    }

    #[test]
    fn same_sender_and_nonce_replaces_and_duplicates_are_ignored() {
        let mut v = PendingView::new(limits(60, 10));
        assert_eq!(v.add(sell_a(1, 9, 4, 0, 100)), Added::New);
        assert_eq!(v.add(sell_a(1, 9, 4, 0, 100)), Added::Duplicate);
        assert_eq!(v.add(sell_a(2, 9, 5, 0, 10)), Added::New);
        assert_eq!(v.add(sell_a(3, 9, 4, 1, 1)), Added::Replaced); // speed-up of nonce 4
        assert_eq!(v.pending().map(|t| t.hash[0]).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(v.pending_volume(0), e18(11));
        assert_eq!(v.evictions(), Evictions { replaced: 1, ..Evictions::default() });
    }

    #[test]
    fn a_block_evicts_what_it_includes_and_every_nonce_it_passes() {
        let mut v = PendingView::new(limits(60, 10));
        v.add(sell_a(1, 9, 4, 0, 1));
        v.add(sell_a(2, 9, 6, 0, 1));
        v.add(sell_a(3, 8, 0, 0, 1));
        // Sender 9's nonce 5 (a transfer Keel never decoded) mined: nonce 4 can never be.
        let mined = [Mined { hash: B256::repeat_byte(0x55), sender: Address::repeat_byte(9), nonce: 5 }];
        assert_eq!(v.remove_included(&mined), 1);
        let mined = [Mined { hash: B256::repeat_byte(3), sender: Address::repeat_byte(8), nonce: 0 }];
        assert_eq!(v.remove_included(&mined), 1);
        assert_eq!(v.pending().map(|t| t.hash[0]).collect::<Vec<_>>(), [2]);
        assert_eq!(v.evictions().included, 2);
    }

    #[test]
    fn age_and_cap_bound_the_view() {
        let mut v = PendingView::new(limits(12, 3));
        for n in 0..5u8 {
            v.add(sell_a(n + 1, n, 0, u64::from(n) * 5, 1));
        }
        assert_eq!(v.len(), 3);
        assert_eq!(v.evictions().capped, 2);
        assert_eq!(v.evict_aged(26 * SECOND), 1); // seen at 10 s: 16 s old; 15 s: 11 s old
        assert_eq!(v.pending().map(|t| t.hash[0]).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(v.evict_aged(28 * SECOND), 1);
        assert_eq!(v.evictions().aged, 2);
    }

    #[test]
    fn a_stuck_swap_stops_moving_its_pool_after_age_eviction_and_after_inclusion() {
        let book = book();
        let mut impacts = [0.0; 2];
        for release in ["age", "inclusion"] {
            let mut v = PendingView::new(limits(60, 100));
            v.add(sell_a(1, 9, 0, 100, 100));
            v.impacts(&book, &mut impacts);
            assert!(impacts[0] > 0.15, "a 10% sale moves the mid: {impacts:?}");
            assert_eq!(impacts[1], 0.0);
            v.evict_aged(150 * SECOND);
            v.impacts(&book, &mut impacts);
            assert!(impacts[0] > 0.15, "still young at 50 s");
            match release {
                "age" => assert_eq!(v.evict_aged(161 * SECOND), 1),
                _ => {
                    let m = Mined { hash: B256::repeat_byte(1), sender: Address::repeat_byte(9), nonce: 0 };
                    assert_eq!(v.remove_included(&[m]), 1)
                }
            }
            v.impacts(&book, &mut impacts);
            assert_eq!(impacts, [0.0, 0.0], "released after {release}");
        }
    }

    #[test]
    fn multi_hop_routes_chain_each_output_into_the_next_hop() {
        let book = book();
        let mut v = PendingView::new(limits(60, 10));
        // Sell 100 A for C through A/B then B/C.
        v.add(tx(1, 1, 0, 0, SwapAmount::ExactIn(e18(100)), vec![hop(A, B, Some(0)), hop(B, C, Some(1))]));
        let after = v.replay(&book);
        let pools: Vec<Pool> = book.pools().iter().map(|e| e.state.clone().unwrap()).collect();
        let q0 = pools[0].swap(true, SwapAmount::ExactIn(e18(100)), None).unwrap();
        let q1 = pools[1].swap(true, SwapAmount::ExactIn(q0.amount_out), None).unwrap();
        let (mut p0, mut p1) = (pools[0].clone(), pools[1].clone());
        p0.apply(&q0.change).unwrap();
        p1.apply(&q1.change).unwrap();
        assert_eq!(after, [Some(p0), Some(p1)]);

        // Buy 10 C with A: backward from the last hop.
        let mut v = PendingView::new(limits(60, 10));
        v.add(tx(2, 1, 0, 0, SwapAmount::ExactOut(e18(10)), vec![hop(A, B, Some(0)), hop(B, C, Some(1))]));
        let q1 = pools[1].swap(true, SwapAmount::ExactOut(e18(10)), None).unwrap();
        let q0 = pools[0].swap(true, SwapAmount::ExactOut(q1.amount_in), None).unwrap();
        let (mut p0, mut p1) = (pools[0].clone(), pools[1].clone());
        p0.apply(&q0.change).unwrap();
        p1.apply(&q1.change).unwrap();
        assert_eq!(v.replay(&book), [Some(p0), Some(p1)]);
    }

    #[test]
    fn a_route_that_would_revert_moves_nothing_and_an_untracked_hop_ends_the_chain() {
        let book = book();
        let before: Vec<Option<Pool>> = book.pools().iter().map(|e| e.state.clone()).collect();
        let mut v = PendingView::new(limits(60, 10));
        // Buy 2,000 C (more than the B/C pool holds): the whole route reverts.
        v.add(tx(1, 1, 0, 0, SwapAmount::ExactOut(e18(2_000)), vec![hop(A, B, Some(0)), hop(B, C, Some(1))]));
        assert_eq!(v.replay(&book), before);
        // Sell A through an untracked pool first: nothing after it can be priced.
        v.add(tx(2, 2, 0, 0, SwapAmount::ExactIn(e18(5)), vec![hop(C, A, None), hop(A, B, Some(0))]));
        assert_eq!(v.replay(&book), before);
    }
}
