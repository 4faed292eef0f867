//! The oracle guard: no trade while a pool's spot mid, its short TWAP and the reference (CEX) price
//! disagree, and none through a pool whose state is stale.
//!
//! # Data flow
//! The executor feeds every chain update it receives: each per-block pool read
//! ([`Oracle::on_pool_read`]) and each head ([`Oracle::on_head`]), which samples the mid of every
//! pool whose state is known into that pool's fixed ring of [`TWAP_RING`] samples (no allocation
//! after construction). Before routing an intent, [`Oracle::check_leg`] checks every pool that
//! trades the leg's pair directly.
//!
//! # The TWAP
//! Time-weighted over block timestamps, like Uniswap's oracles: a sample taken at head `t_i` holds
//! until the next sample's timestamp, and the mean is over the last `window` seconds ending at the
//! latest head. The latest sample itself therefore has no weight yet: the TWAP is the pool's recent
//! *past*, so a pool pushed in the latest block shows up as spot ≠ TWAP. The mean is geometric
//! (over ln mid, as Uniswap V3's tick accumulator), so it is the same whichever token prices the
//! other. Samples with the timestamp of the one before replace it (several blocks in one second
//! weigh as the last of them). When the ring holds less than the window (a chain with sub-second
//! blocks and a long window), the TWAP covers what the ring holds.
//!
//! **Too little history**: until a pool has samples spanning a positive time (two heads with
//! different timestamps), it has no TWAP and only spot vs reference is checked; the guard does not
//! wait for a full window after start, so a fresh start trades as before this guard existed.
//!
//! # The checks, in order (the first failing one is reported)
//! 1. `stale_pool`: a pool read every block by the chain poller (`V2Reserves`) whose latest read is
//!    more than `max_pool_age_blocks` behind the head (e.g. reads dropped by a full queue). A pool
//!    kept by the websocket node feed (`PoolState`) changes only when it trades, so its own age says
//!    nothing; the *feed's* does: such pools are stale when the feed's latest head
//!    ([`Oracle::on_pool_feed_head`]) is more than `max_pool_age_blocks` behind the head (a stalled
//!    or reconnecting websocket while the poller's heads go on). Before the feed has reported any
//!    head they are exempt (they are not loaded yet either).
//! 2. `spot_vs_reference`: |spot / reference − 1| > bound.
//! 3. `twap_vs_reference`: |TWAP / reference − 1| > bound.
//! 4. `spot_vs_twap`: |spot / TWAP − 1| > bound.
//!
//! The bound is `router.max_pool_deviation`, the one tolerance for price disagreement; the
//! planner's path-level deviation check keeps covering two-hop routes. A stale reference price
//! never reaches the guard: the engine fires no trigger on a price older than
//! `engine.stale_after_ms`. Prices are raw units of the bought token per raw unit of the sold one;
//! a non-finite or non-positive price fails its checks.

use alloy::primitives::Address;

use keel_amm::pool::PoolEntry;

/// Samples kept per pool. With second-resolution block timestamps this covers at least
/// [`TWAP_RING`] seconds.
pub const TWAP_RING: usize = 64;

/// Which two prices disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PricePair {
    /// The pool's spot mid and the reference price.
    SpotVsReference,
    /// The pool's TWAP and the reference price.
    TwapVsReference,
    /// The pool's spot mid and its TWAP.
    SpotVsTwap,
}

impl PricePair {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            PricePair::SpotVsReference => "spot_vs_reference",
            PricePair::TwapVsReference => "twap_vs_reference",
            PricePair::SpotVsTwap => "spot_vs_twap",
        }
    }
}

/// Why the guard refused a leg.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// The pool's latest per-block read, or the latest head of the feed that keeps it, is too far
    /// behind the head.
    #[error("pool `{pool}`: state as of block {read_at}, {age} blocks behind the head (limit {max_age})")]
    StalePool {
        /// Pool id.
        pool: String,
        /// Block of the latest read (or the feed's latest head).
        read_at: u64,
        /// Head minus that block.
        age: u64,
        /// `max_pool_age_blocks`.
        max_age: u64,
    },
    /// Two of the pool's three prices disagree by more than the bound.
    #[error("pool `{pool}`: {} {first:e} vs {second:e} differ by {divergence:.4} (bound {bound})", pair.label())]
    Divergence {
        /// Pool id.
        pool: String,
        /// Which two prices.
        pair: PricePair,
        /// The first price of the pair (raw buy per raw sell).
        first: f64,
        /// The second price of the pair, the base of the relative gap.
        second: f64,
        /// |first / second − 1| (NaN when a price is invalid).
        divergence: f64,
        /// The bound.
        bound: f64,
    },
}

impl GuardError {
    /// The pool the refusal is about.
    pub fn pool(&self) -> &str {
        match self {
            GuardError::StalePool { pool, .. } | GuardError::Divergence { pool, .. } => pool,
        }
    }

    /// The reason as a metric label: `stale_pool` or a [`PricePair`] label.
    pub fn reason(&self) -> &'static str {
        match self {
            GuardError::StalePool { .. } => "stale_pool",
            GuardError::Divergence { pair, .. } => pair.label(),
        }
    }

    fn reason_index(&self) -> usize {
        match self {
            GuardError::StalePool { .. } => 0,
            GuardError::Divergence { pair: PricePair::SpotVsReference, .. } => 1,
            GuardError::Divergence { pair: PricePair::TwapVsReference, .. } => 2,
            GuardError::Divergence { pair: PricePair::SpotVsTwap, .. } => 3,
        }
    }
}

/// Every reason label, in counter order.
pub const GUARD_REASONS: [&str; 4] = ["stale_pool", "spot_vs_reference", "twap_vs_reference", "spot_vs_twap"];

/// Refusals per pool and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardCounts {
    pools: Vec<String>,
    counts: Vec<[u64; GUARD_REASONS.len()]>,
    total: u64,
}

impl GuardCounts {
    /// Refusals in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// `(pool, reason, count)` for every pool and reason, zeros included (stable metric series).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'static str, u64)> + '_ {
        self.pools.iter().zip(&self.counts).flat_map(|(pool, c)| {
            GUARD_REASONS.iter().zip(c).map(move |(reason, n)| (pool.as_str(), *reason, *n))
        })
    }

    /// Refusals of each pool, all reasons together, in pool order.
    pub fn per_pool(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().map(|c| c.iter().sum())
    }

    /// Refusals of `pool` for `reason` (0 when either is unknown).
    pub fn get(&self, pool: &str, reason: &str) -> u64 {
        self.iter().find(|(p, r, _)| *p == pool && *r == reason).map_or(0, |t| t.2)
    }
}

/// A fixed ring of (timestamp, ln mid) samples.
#[derive(Debug, Clone)]
struct Ring {
    t: [u64; TWAP_RING],
    ln_mid: [f64; TWAP_RING],
    /// Index of the oldest sample.
    start: usize,
    len: usize,
}

impl Ring {
    fn new() -> Self {
        Self { t: [0; TWAP_RING], ln_mid: [0.0; TWAP_RING], start: 0, len: 0 }
    }

    fn at(&self, k: usize) -> (u64, f64) {
        let i = (self.start + k) % TWAP_RING;
        (self.t[i], self.ln_mid[i])
    }

    fn push(&mut self, t: u64, ln_mid: f64) {
        if self.len > 0 {
            let last = (self.start + self.len - 1) % TWAP_RING;
            if t == self.t[last] {
                self.ln_mid[last] = ln_mid;
                return;
            }
            if t < self.t[last] {
                // Never reached through `Oracle::on_head`, which keeps time monotonic.
                return;
            }
        }
        if self.len == TWAP_RING {
            self.t[self.start] = t;
            self.ln_mid[self.start] = ln_mid;
            self.start = (self.start + 1) % TWAP_RING;
        } else {
            let i = (self.start + self.len) % TWAP_RING;
            self.t[i] = t;
            self.ln_mid[i] = ln_mid;
            self.len += 1;
        }
    }

    /// Geometric time-weighted mean over `[now − window, now]`, `None` without a positive span.
    fn twap(&self, now: u64, window: u64) -> Option<f64> {
        let from = now.saturating_sub(window);
        let (mut acc, mut span) = (0.0f64, 0u64);
        for k in 0..self.len {
            let (t, ln_mid) = self.at(k);
            let until = if k + 1 < self.len { self.at(k + 1).0 } else { now };
            let (a, b) = (t.max(from), until.min(now));
            if b > a {
                acc += ln_mid * (b - a) as f64;
                span += b - a;
            }
        }
        (span > 0).then(|| (acc / span as f64).exp())
    }
}

/// How a pool's state arrives, for the staleness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// No per-block read seen (event-fed, or not loaded yet): exempt.
    Event,
    /// Read every block; the latest read was at this block.
    ReadAt(u64),
}

/// Per-pool TWAPs and staleness, and the guard over them.
#[derive(Debug, Clone)]
pub struct Oracle {
    window_secs: u64,
    max_age_blocks: u64,
    rings: Vec<Ring>,
    freshness: Vec<Freshness>,
    /// The websocket node feed's latest head, for the pools it keeps.
    feed_head: Option<u64>,
    head: Option<(u64, u64)>,
    counts: GuardCounts,
}

impl Oracle {
    /// An oracle for pools with ids `pool_ids` (config order), a TWAP over `window_secs` and stale
    /// per-block reads beyond `max_age_blocks`.
    pub fn new(pool_ids: Vec<String>, window_secs: u64, max_age_blocks: u64) -> Self {
        let n = pool_ids.len();
        Self {
            window_secs,
            max_age_blocks,
            rings: vec![Ring::new(); n],
            freshness: vec![Freshness::Event; n],
            feed_head: None,
            head: None,
            counts: GuardCounts { pools: pool_ids, counts: vec![[0; GUARD_REASONS.len()]; n], total: 0 },
        }
    }

    /// A per-block read of `pool` as of `block` (the chain poller's `V2Reserves`).
    pub fn on_pool_read(&mut self, pool: usize, block: u64) {
        if let Some(f) = self.freshness.get_mut(pool) {
            *f = match *f {
                Freshness::ReadAt(b) if b > block => Freshness::ReadAt(b),
                _ => Freshness::ReadAt(block),
            };
        }
    }

    /// The websocket node feed has seen head `block` (see the module docs, check 1).
    pub fn on_pool_feed_head(&mut self, block: u64) {
        self.feed_head = Some(self.feed_head.map_or(block, |b| b.max(block)));
    }

    /// A new head: samples `mids` (one per pool, raw token1 per raw token0; `None` while a pool's
    /// state is unknown) at the head's timestamp.
    pub fn on_head(&mut self, number: u64, timestamp: u64, mids: impl IntoIterator<Item = Option<f64>>) {
        let now = self.head.map_or(timestamp, |(_, t)| t.max(timestamp));
        self.head = Some((number, now));
        if timestamp < now {
            // A head older than one already seen (a reorg): time does not run back; no sample.
            return;
        }
        for (ring, mid) in self.rings.iter_mut().zip(mids) {
            if let Some(m) = mid.filter(|m| m.is_finite() && *m > 0.0) {
                ring.push(timestamp, m.ln());
            }
        }
    }

    /// The TWAP of `pool` (raw token1 per raw token0) over the window ending at the latest head;
    /// `None` before its samples span a positive time.
    pub fn twap(&self, pool: usize) -> Option<f64> {
        let (_, now) = self.head?;
        self.rings.get(pool)?.twap(now, self.window_secs)
    }

    /// Refusals so far.
    pub fn counts(&self) -> &GuardCounts {
        &self.counts
    }

    /// Checks every pool of `pools` that trades `sell` for `buy` directly against `reference` (raw
    /// `buy` per raw `sell`) and its own TWAP, with relative `bound`; counts and returns the first
    /// refusal (see the module docs for the order).
    pub fn check_leg(
        &mut self,
        pools: &[PoolEntry],
        sell: Address,
        buy: Address,
        reference: f64,
        bound: f64,
    ) -> Result<(), GuardError> {
        for (i, p) in pools.iter().enumerate() {
            if p.other(sell) != Some(buy) {
                continue;
            }
            if let Err(e) = self.check_pool(i, p, sell, reference, bound) {
                if let Some(c) = self.counts.counts.get_mut(i) {
                    c[e.reason_index()] += 1;
                }
                self.counts.total += 1;
                return Err(e);
            }
        }
        Ok(())
    }

    fn check_pool(
        &self,
        i: usize,
        p: &PoolEntry,
        sell: Address,
        reference: f64,
        bound: f64,
    ) -> Result<(), GuardError> {
        let pool = || p.meta.id.clone();
        let as_of = match self.freshness.get(i) {
            Some(Freshness::ReadAt(b)) => Some(*b),
            _ => self.feed_head,
        };
        if let (Some(read_at), Some((head, _))) = (as_of, self.head) {
            let age = head.saturating_sub(read_at);
            if age > self.max_age_blocks {
                return Err(GuardError::StalePool {
                    pool: pool(),
                    read_at,
                    age,
                    max_age: self.max_age_blocks,
                });
            }
        }
        let zero_for_one = p.direction(sell) == Some(true);
        let orient = |m: f64| if zero_for_one { m } else { 1.0 / m };
        let spot = orient(p.pool().mid_price());
        let twap = self.twap(i).map(orient);
        let diverges = |pair, first: f64, second: f64| {
            let divergence = (first / second - 1.0).abs();
            let valid = first.is_finite() && first > 0.0 && second.is_finite() && second > 0.0;
            // Written so that a NaN divergence or bound fails too.
            let within = valid && divergence <= bound;
            (!within).then(|| GuardError::Divergence { pool: pool(), pair, first, second, divergence, bound })
        };
        if let Some(e) = diverges(PricePair::SpotVsReference, spot, reference) {
            return Err(e);
        }
        if let Some(twap) = twap {
            if let Some(e) = diverges(PricePair::TwapVsReference, twap, reference) {
                return Err(e);
            }
            if let Some(e) = diverges(PricePair::SpotVsTwap, spot, twap) {
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;
    use keel_amm::pool::{Pool, PoolMeta};

    const A: Address = Address::repeat_byte(1);
    const B: Address = Address::repeat_byte(2);
    const C: Address = Address::repeat_byte(3);

    fn close(a: f64, b: f64) -> bool {
        (a / b - 1.0).abs() < 1e-9
    }

    /// A V2 pool of A (token0) and `t1` with mid `mid` (raw t1 per raw A).
    fn pool(id: &str, t1: Address, mid: f64) -> PoolEntry {
        let meta =
            PoolMeta { id: id.into(), address: Address::ZERO, token0: A, token1: t1, gas: 1, venue: 0 };
        let r0 = U256::from(1_000_000_000_000u64);
        let r1 = U256::from((1e12 * mid) as u128);
        PoolEntry::new(meta, Pool::V2 { reserve0: r0, reserve1: r1, fee_bps: 30 }).unwrap()
    }

    #[test]
    fn twap_is_time_weighted_over_irregular_block_times_and_excludes_the_latest_sample() {
        let mut o = Oracle::new(vec!["p".into()], 60, 3);
        assert_eq!(o.twap(0), None, "no head yet");
        o.on_head(1, 1000, [Some(1.0)]);
        assert_eq!(o.twap(0), None, "one sample spans no time");
        o.on_head(2, 1000, [Some(9.0)]);
        assert_eq!(o.twap(0), None, "same timestamp replaces the sample: still no span");
        // 1.0 (replaced by 9.0 at t=1000) for 2 s, then 4.0 for 10 s, then 2.0 is the latest.
        o.on_head(3, 1002, [Some(4.0)]);
        assert!(close(o.twap(0).unwrap(), 9.0));
        o.on_head(4, 1012, [Some(2.0)]);
        let want = ((2.0 * 9f64.ln() + 10.0 * 4f64.ln()) / 12.0).exp();
        assert!(close(o.twap(0).unwrap(), want), "{:?} vs {want}", o.twap(0));
        // A pool not known at a head keeps its last price until the next sample.
        o.on_head(5, 1020, [None]);
        let want = ((2.0 * 9f64.ln() + 10.0 * 4f64.ln() + 8.0 * 2f64.ln()) / 20.0).exp();
        assert!(close(o.twap(0).unwrap(), want));
        // The window clips the oldest sample: [1020 − 15, 1020] = 7 s of 4.0 and 8 s of 2.0.
        let mut short = o.clone();
        short.window_secs = 15;
        let want = ((7.0 * 4f64.ln() + 8.0 * 2f64.ln()) / 15.0).exp();
        assert!(close(short.twap(0).unwrap(), want));
        // Geometric: the TWAP of the inverse pool is the inverse.
        let mut inv = Oracle::new(vec!["q".into()], 60, 3);
        for (n, t, m) in [(1, 1000, 1.0 / 9.0), (3, 1002, 0.25), (4, 1012, 0.5)] {
            inv.on_head(n, t, [Some(m)]);
        }
        let mut fwd = Oracle::new(vec!["q".into()], 60, 3);
        for (n, t, m) in [(1, 1000, 9.0), (3, 1002, 4.0), (4, 1012, 2.0)] {
            fwd.on_head(n, t, [Some(m)]);
        }
        assert!(close(inv.twap(0).unwrap(), 1.0 / fwd.twap(0).unwrap()));
        // Non-finite or non-positive mids are not sampled; a timestamp going back is ignored.
        o.on_head(6, 1030, [Some(f64::NAN)]);
        o.on_head(7, 1025, [Some(100.0)]);
        let want = ((2.0 * 9f64.ln() + 10.0 * 4f64.ln() + 18.0 * 2f64.ln()) / 30.0).exp();
        assert!(close(o.twap(0).unwrap(), want));
    }

    #[test]
    fn the_ring_wraps_and_keeps_the_latest_samples() {
        let mut o = Oracle::new(vec!["p".into()], 10_000, 3);
        // 200 one-second samples: price 1.0 for the first 100, 3.0 after; the ring keeps 64.
        for k in 0..200u64 {
            o.on_head(k, k, [Some(if k < 100 { 1.0 } else { 3.0 })]);
        }
        assert_eq!(o.rings[0].len, TWAP_RING);
        assert_eq!(o.rings[0].at(0).0, 200 - TWAP_RING as u64);
        assert!(close(o.twap(0).unwrap(), 3.0), "only the last {TWAP_RING} samples remain");
        // Timestamps stay ordered across the wrap.
        let ts: Vec<u64> = (0..TWAP_RING).map(|k| o.rings[0].at(k).0).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn with_too_little_history_only_spot_vs_reference_is_checked() {
        let mut o = Oracle::new(vec!["p".into()], 60, 3);
        let pools = [pool("p", B, 2.0)];
        o.on_head(1, 1000, [Some(20.0)]);
        assert_eq!(o.twap(0), None);
        // The one sample (20.0) would fail spot vs TWAP; with no TWAP only spot vs reference counts.
        assert_eq!(o.check_leg(&pools, A, B, 2.05, 0.05), Ok(()));
        let e = o.check_leg(&pools, A, B, 2.2, 0.05).unwrap_err();
        assert_eq!(e.reason(), "spot_vs_reference");
        assert_eq!(o.counts().get("p", "spot_vs_reference"), 1);
    }

    #[test]
    fn each_pair_of_prices_is_checked_and_named() {
        // History at 2.0; then the pool moves to `spot`; reference `r`.
        let run = |spot: f64, r: f64, history: f64| {
            let mut o = Oracle::new(vec!["p".into(), "other".into()], 60, 3);
            o.on_head(1, 1000, [Some(history), Some(1.0)]);
            o.on_head(2, 1012, [Some(spot), Some(1.0)]);
            let pools = [pool("p", B, spot), pool("other", C, 50.0)];
            let res = o.check_leg(&pools, A, B, r, 0.05);
            (res, o)
        };
        // All agree within 5%.
        assert_eq!(run(2.0, 2.04, 2.0).0, Ok(()));
        // Pool pushed 10% from the reference, TWAP still at it.
        let (res, o) = run(2.2, 2.0, 2.0);
        let e = res.unwrap_err();
        assert!(
            matches!(&e, GuardError::Divergence { pool, pair: PricePair::SpotVsReference, divergence, .. }
                if pool == "p" && (divergence - 0.1).abs() < 1e-3),
            "{e}"
        );
        assert!(e.to_string().contains("spot_vs_reference") && e.to_string().contains("`p`"), "{e}");
        assert_eq!((o.counts().total(), o.counts().get("p", "spot_vs_reference")), (1, 1));
        assert_eq!(o.counts().get("other", "spot_vs_reference"), 0, "a pool of another pair is not checked");
        // Spot back at the reference, TWAP still 10% off (the pool was off for the window).
        let (res, _) = run(2.0, 2.0, 2.2);
        assert_eq!(res.unwrap_err().reason(), "twap_vs_reference");
        // Spot and reference 4% apart one way, TWAP 4% the other way: each within the bound of
        // the reference, 8% from each other.
        let (res, _) = run(2.08, 2.0, 1.92);
        assert!(matches!(res.unwrap_err(), GuardError::Divergence { pair: PricePair::SpotVsTwap, .. }));
        // Selling B for A: prices are inverted, the same verdicts.
        let mut o = Oracle::new(vec!["p".into()], 60, 3);
        o.on_head(1, 1000, [Some(2.0)]);
        o.on_head(2, 1012, [Some(2.2)]);
        let e = o.check_leg(&[pool("p", B, 2.2)], B, A, 0.5, 0.05).unwrap_err();
        assert!(matches!(e, GuardError::Divergence { first, second, .. }
            if close(first, 1.0 / 2.2) && close(second, 0.5)));
        // An invalid reference never passes.
        let (res, _) = run(2.0, f64::NAN, 2.0);
        assert_eq!(res.unwrap_err().reason(), "spot_vs_reference");
    }

    #[test]
    fn a_pool_whose_per_block_reads_stop_is_stale() {
        let mut o = Oracle::new(vec!["p".into()], 60, 2);
        let pools = [pool("p", B, 2.0)];
        // Event-fed (never read per block): exempt.
        o.on_head(10, 1000, [Some(2.0)]);
        assert_eq!(o.check_leg(&pools, A, B, 2.0, 0.05), Ok(()));
        o.on_pool_read(0, 10);
        o.on_pool_read(0, 9); // an older read arriving late does not roll it back
        o.on_head(12, 1024, [Some(2.0)]);
        assert_eq!(o.check_leg(&pools, A, B, 2.0, 0.05), Ok(()), "2 blocks old: at the limit");
        o.on_head(13, 1036, [Some(2.0)]);
        let e = o.check_leg(&pools, A, B, 2.0, 0.05).unwrap_err();
        assert_eq!(e, GuardError::StalePool { pool: "p".into(), read_at: 10, age: 3, max_age: 2 });
        assert_eq!(o.counts().get("p", "stale_pool"), 1);
        o.on_pool_read(0, 13);
        assert_eq!(o.check_leg(&pools, A, B, 2.0, 0.05), Ok(()));
    }

    #[test]
    fn pools_kept_by_the_node_feed_are_stale_while_the_feed_lags_the_head() {
        let mut o = Oracle::new(vec!["p".into()], 60, 2);
        let pools = [pool("p", B, 2.0)];
        o.on_head(10, 1000, [Some(2.0)]);
        // No feed head yet: exempt.
        assert_eq!(o.check_leg(&pools, A, B, 2.0, 0.05), Ok(()));
        o.on_pool_feed_head(10);
        o.on_pool_feed_head(8); // an older report does not roll it back
        o.on_head(12, 1024, [Some(2.0)]);
        assert_eq!(o.check_leg(&pools, A, B, 2.0, 0.05), Ok(()), "2 blocks behind: at the limit");
        // The websocket stalls while the poller's heads go on.
        o.on_head(13, 1036, [Some(2.0)]);
        let e = o.check_leg(&pools, A, B, 2.0, 0.05).unwrap_err();
        assert_eq!(e, GuardError::StalePool { pool: "p".into(), read_at: 10, age: 3, max_age: 2 });
        assert_eq!(o.counts().get("p", "stale_pool"), 1);
        // It catches up (a reconnect reloads every pool): tradable again.
        o.on_pool_feed_head(13);
        assert_eq!(o.check_leg(&pools, A, B, 2.0, 0.05), Ok(()));
        // A pool read per block goes by its own reads, not the feed's head.
        o.on_pool_read(0, 9);
        assert_eq!(o.check_leg(&pools, A, B, 2.0, 0.05).unwrap_err().reason(), "stale_pool");
    }
}
