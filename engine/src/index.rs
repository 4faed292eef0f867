//! # The candidate index
//!
//! Which portfolios a quote must evaluate. A portfolio that was evaluated with known weights and no
//! asset at or near a band gets a [safe box](crate::safe_box): a price interval per
//! instrument-priced asset inside which no quote can make it fire. Those intervals are indexed per
//! token in two heaps — the lowest upper bound on top of one, the highest lower bound on top of the
//! other — so a price move pops exactly the portfolios whose interval it left, in `O(k log n)` for
//! `k` popped. A portfolio without a box (*dirty*: weights unknown, or an asset at or over its band,
//! which includes every portfolio whose trigger fired and was held back) sits in a per-token list
//! and is evaluated on every quote of its tokens, exactly as a full scan would.
//!
//! ## Invariants
//!
//! * A box depends only on the holdings, the prices and the targets: triggers are fixed at load,
//!   volatility bands never fall below the floor the box uses, and the lifecycle (in flight,
//!   cooldown, staleness) only gates a trigger that fired, which cannot happen inside a box. So a
//!   box stays valid until a price leaves it (the quote pops it), a holding changes (a balance
//!   recomputes it) or the targets move (a momentum sample or a predictor update recomputes it);
//!   outcomes leave it alone. Targets that move with prices (CPPI) get no box at all.
//! * A boxed portfolio's current prices are inside its box; anything else is dirty or being
//!   evaluated.
//! * Each portfolio has a generation, bumped whenever its box changes; heap and list entries carry
//!   the generation they were pushed with and are dropped lazily once it is stale. A portfolio has at
//!   most one live entry per heap and list of each of its tokens, so compacting a container in place
//!   when it is full leaves it at most a third (heaps) or half (lists) full; capacities are reserved
//!   at load and nothing here allocates afterwards.
//! * Candidates of one quote are deduplicated and evaluated in the full scan's order (by the first
//!   quoted token the portfolio holds, then by id), so intent ids and stats are the same as a full
//!   scan's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::ids::{PortfolioId, TokenId};
use crate::portfolio::Portfolio;
use crate::token::{Price, PriceOrigin, TokenTable};

/// How the engine picks the portfolios to evaluate on a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateMode {
    /// Portfolios whose safe box the new price left, and those without a box (the default).
    #[default]
    Index,
    /// Every portfolio holding a quoted token: the reference the index is tested against.
    FullScan,
}

/// Counters of the candidate index (all zero in [`CandidateMode::FullScan`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    /// Portfolios evaluated on quotes (their box was left, or they had none).
    pub evaluated: u64,
    /// Boxes left by a price (live heap entries popped).
    pub left_box: u64,
    /// Boxes computed.
    pub boxes: u64,
    /// Times a portfolio lost its box (it is then evaluated on every quote of its tokens).
    pub unboxed: u64,
    /// In-place compactions of a full heap or list.
    pub compactions: u64,
}

/// A heap entry: one end of a portfolio's interval for one token.
#[derive(Debug, Clone, Copy)]
struct Bound {
    /// The lower bound, or minus the upper bound (both heaps are max-heaps).
    key: f64,
    pid: u32,
    generation: u32,
}

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bound {}
impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bound {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.total_cmp(&other.key)
    }
}

/// A dirty-list entry.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    pid: u32,
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoxState {
    /// No box: evaluated on every quote of its tokens.
    Dirty,
    /// Its live bounds are in the heaps of its tokens.
    Boxed,
    /// Popped by the current quote, awaiting evaluation.
    Pending,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u32,
    state: BoxState,
    /// Sequence number of the last quote that made it a candidate.
    mark: u64,
}

/// One token's heaps and dirty list.
#[derive(Debug, Clone, Default)]
struct TokenLists {
    /// Max-heap of minus the upper bounds: the lowest upper bound on top.
    above: BinaryHeap<Bound>,
    /// Max-heap of the lower bounds.
    below: BinaryHeap<Bound>,
    dirty: Vec<Stamp>,
}

/// See the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct PortfolioIndex {
    pub(crate) mode: CandidateMode,
    /// Portfolios holding each token, ascending: the full scan's lists.
    by_token: Vec<Vec<PortfolioId>>,
    /// Whether each token's price moves (is instrument-priced): only those are indexed.
    moves: Vec<bool>,
    lists: Vec<TokenLists>,
    slots: Vec<Slot>,
    seq: u64,
    /// The current quote's candidates as sort keys: `first quoted token held << 32 | id`.
    pub(crate) candidates: Vec<u64>,
    pub(crate) stats: IndexStats,
}

impl PortfolioIndex {
    /// Builds the lists and reserves every capacity; every portfolio starts dirty.
    pub(crate) fn new(tokens: &TokenTable, portfolios: &[Portfolio]) -> Self {
        let n_tokens = tokens.len();
        let mut by_token = vec![Vec::new(); n_tokens];
        for p in portfolios {
            for &t in p.assets() {
                if let Some(list) = by_token.get_mut(t.idx()) {
                    list.push(p.id());
                }
            }
        }
        let moves = tokens.tokens().iter().map(|t| matches!(t.origin, PriceOrigin::Instrument(_))).collect();
        let mut index = Self {
            mode: CandidateMode::Index,
            by_token,
            moves,
            lists: Vec::new(),
            slots: vec![Slot { generation: 0, state: BoxState::Dirty, mark: 0 }; portfolios.len()],
            seq: 0,
            candidates: Vec::with_capacity(portfolios.len()),
            stats: IndexStats::default(),
        };
        index.reset(portfolios);
        index
    }

    /// Empties the index and makes every portfolio dirty (allocates: load time and mode switches
    /// only).
    pub(crate) fn reset(&mut self, portfolios: &[Portfolio]) {
        self.lists = self
            .by_token
            .iter()
            .zip(&self.moves)
            .map(|(holders, &moves)| {
                let h = if moves { holders.len() } else { 0 };
                TokenLists {
                    above: BinaryHeap::with_capacity(3 * h + 8),
                    below: BinaryHeap::with_capacity(3 * h + 8),
                    dirty: Vec::with_capacity(2 * h + 8),
                }
            })
            .collect();
        for (slot, p) in self.slots.iter_mut().zip(portfolios) {
            slot.generation = slot.generation.wrapping_add(1);
            slot.state = BoxState::Dirty;
            for &t in p.assets() {
                if self.moves.get(t.idx()).copied().unwrap_or(false)
                    && let Some(l) = self.lists.get_mut(t.idx())
                {
                    l.dirty.push(Stamp { pid: p.id().0, generation: slot.generation });
                }
            }
        }
    }

    /// The portfolios holding `token`, ascending (the full scan).
    #[inline(always)]
    pub(crate) fn holders(&self, token: TokenId) -> &[PortfolioId] {
        self.by_token.get(token.idx()).map_or(&[], Vec::as_slice)
    }

    /// Starts a quote: clears the candidates.
    #[inline(always)]
    pub(crate) fn begin(&mut self) {
        self.seq += 1;
        self.candidates.clear();
    }

    /// Adds the candidates of `token` now at `mid`: its dirty portfolios and those whose interval
    /// `mid` left (which become pending). Keys are bare ids; see [`PortfolioIndex::candidates`].
    #[inline]
    pub(crate) fn collect(&mut self, token: TokenId, mid: f64) {
        let Some(l) = self.lists.get_mut(token.idx()) else { return };
        let (slots, cands, seq) = (&mut self.slots, &mut self.candidates, self.seq);
        let mut i = 0;
        while let Some(&s) = l.dirty.get(i) {
            let Some(slot) = slots.get_mut(s.pid as usize) else { break };
            if slot.generation != s.generation {
                l.dirty.swap_remove(i);
                continue;
            }
            if slot.mark != seq {
                slot.mark = seq;
                cands.push(u64::from(s.pid));
            }
            i += 1;
        }
        // Left above: upper < mid, i.e. -upper > -mid.
        while let Some(b) = l.above.peek().copied().filter(|b| b.key > -mid) {
            l.above.pop();
            pop(slots, cands, &mut self.stats, b, seq);
        }
        // Left below: lower > mid.
        while let Some(b) = l.below.peek().copied().filter(|b| b.key > mid) {
            l.below.pop();
            pop(slots, cands, &mut self.stats, b, seq);
        }
    }

    /// Sorts the candidates into evaluation order.
    #[inline(always)]
    pub(crate) fn sort(&mut self) {
        self.candidates.sort_unstable();
    }

    /// Whether a portfolio holds a box (which stays valid while its prices are inside it).
    #[inline(always)]
    pub(crate) fn is_boxed(&self, pid: PortfolioId) -> bool {
        self.slots.get(pid.idx()).is_some_and(|s| s.state == BoxState::Boxed)
    }

    /// Gives `p` the box of half-width `eps` around `prices`, or makes it dirty (`None`).
    pub(crate) fn settle(&mut self, p: &Portfolio, eps: Option<f64>, prices: &[Price]) {
        let Some(slot) = self.slots.get_mut(p.id().idx()) else { return };
        match eps {
            None if slot.state == BoxState::Dirty => {}
            None => {
                slot.generation = slot.generation.wrapping_add(1);
                slot.state = BoxState::Dirty;
                self.stats.unboxed += 1;
                let stamp = Stamp { pid: p.id().0, generation: slot.generation };
                for &t in p.assets() {
                    if let Some(l) = self.lists.get_mut(t.idx()).filter(|_| self.moves[t.idx()]) {
                        if l.dirty.len() == l.dirty.capacity() {
                            let slots = &self.slots;
                            l.dirty.retain(|s| live(slots, s.pid, s.generation));
                            self.stats.compactions += 1;
                        }
                        l.dirty.push(stamp);
                    }
                }
            }
            Some(eps) => {
                slot.generation = slot.generation.wrapping_add(1);
                slot.state = BoxState::Boxed;
                self.stats.boxes += 1;
                let generation = slot.generation;
                for &t in p.assets() {
                    let Some(l) = self.lists.get_mut(t.idx()).filter(|_| self.moves[t.idx()]) else {
                        continue;
                    };
                    let mid = prices.get(t.idx()).map_or(f64::NAN, |x| x.mid);
                    let pid = p.id().0;
                    let hi = Bound { key: -(mid * (1.0 + eps)), pid, generation };
                    let lo = Bound { key: mid * (1.0 - eps), pid, generation };
                    push(&mut l.above, hi, &self.slots, &mut self.stats);
                    push(&mut l.below, lo, &self.slots, &mut self.stats);
                }
            }
        }
    }
}

#[inline(always)]
fn live(slots: &[Slot], pid: u32, generation: u32) -> bool {
    slots.get(pid as usize).is_some_and(|s| s.generation == generation)
}

/// A popped bound: when live, its portfolio becomes a pending candidate (its other bounds go stale).
#[inline(always)]
fn pop(slots: &mut [Slot], cands: &mut Vec<u64>, stats: &mut IndexStats, b: Bound, seq: u64) {
    let Some(slot) = slots.get_mut(b.pid as usize) else { return };
    if slot.generation != b.generation {
        return;
    }
    stats.left_box += 1;
    slot.generation = slot.generation.wrapping_add(1);
    slot.state = BoxState::Pending;
    if slot.mark != seq {
        slot.mark = seq;
        cands.push(u64::from(b.pid));
    }
}

/// Pushes within the reserved capacity, compacting in place first when full.
#[inline]
fn push(heap: &mut BinaryHeap<Bound>, b: Bound, slots: &[Slot], stats: &mut IndexStats) {
    if heap.len() == heap.capacity() {
        heap.retain(|e| live(slots, e.pid, e.generation));
        stats.compactions += 1;
    }
    heap.push(b);
}
