//! Keel's on-chain parameter registry (`KeelParams`, see `sim/contracts/KeelParams.sol`) in the
//! chain poller.
//!
//! Each block's one batch ([`super::batch`]) carries one more `eth_call`: the registry's
//! `params()`, everything it holds in one reply, pinned to the block. A reply byte-identical to the
//! last one publishes nothing (the common case: one comparison per block). A changed reply is
//! decoded and compared entry by entry with what was published; each changed entry becomes a
//! [`RegistryUpdate::Portfolio`] and a changed global pause a [`RegistryUpdate::Global`], pushed
//! to the registry queue that the engine thread drains between events. The first good read
//! publishes everything (the state Keel starts under).
//!
//! Skipped, logged and counted ([`PollStats`]): a read that fails or does not decode
//! (`registry_errors`: the parameters in force stay), an entry for a portfolio id that no
//! configured portfolio has (its id is keccak256 of the name) or with more tokens than an entry
//! holds (`registry_skipped`). A full queue counts in `dropped`, and the reply is not marked as
//! seen, so the next block publishes what was lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use alloy::primitives::{Address, B256, Bytes, keccak256};
use alloy::sol_types::SolCall;
use keel_amm::abi::IKeelParams;
use keel_engine::{PortfolioId, Queue, RegistryEntry, RegistryUpdate};

use super::PollStats;

/// The registry the poller reads every block, and where its changes go.
#[derive(Debug, Clone)]
pub struct RegistryTarget {
    /// The `KeelParams` contract.
    pub address: Address,
    /// Every configured portfolio: its registry id (keccak256 of its name) and its id.
    pub portfolios: Vec<(B256, PortfolioId)>,
    /// Changes go here (drained by the engine thread).
    pub queue: Arc<Queue<RegistryUpdate>>,
}

impl RegistryTarget {
    /// A target for `portfolios` named in config order (ids 0, 1, …).
    pub fn new<'a>(
        address: Address,
        names: impl IntoIterator<Item = &'a str>,
        queue: Arc<Queue<RegistryUpdate>>,
    ) -> Self {
        let portfolios =
            names.into_iter().enumerate().map(|(i, n)| (portfolio_key(n), PortfolioId(i as u32))).collect();
        Self { address, portfolios, queue }
    }
}

/// The registry's id of a portfolio: keccak256 of its name.
pub fn portfolio_key(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

/// The calldata of `params()`.
pub(crate) fn params_input() -> Vec<u8> {
    IKeelParams::paramsCall::new(()).abi_encode()
}

/// What the poller last published from the registry.
#[derive(Debug)]
pub(crate) struct RegistryView {
    /// The last reply whose changes were all published.
    last_raw: Option<Bytes>,
    /// The global pause and its block, as published.
    global: Option<(bool, u64)>,
    /// The entry published per configured portfolio (index of [`RegistryTarget::portfolios`]).
    entries: Vec<Option<RegistryEntry>>,
    /// Registry id → index of [`RegistryTarget::portfolios`].
    index: HashMap<B256, usize>,
    /// The last read failed (logs once per failing streak).
    failing: bool,
}

impl RegistryView {
    pub(crate) fn new(t: &RegistryTarget) -> Self {
        Self {
            last_raw: None,
            global: None,
            entries: vec![None; t.portfolios.len()],
            index: t.portfolios.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect(),
            failing: false,
        }
    }

    /// Handles block `block`'s read of the registry: publishes what changed.
    pub(crate) fn on_read(
        &mut self,
        t: &RegistryTarget,
        raw: Result<Bytes, String>,
        block: u64,
        stats: &PollStats,
    ) {
        let fail = |this: &mut Self, e: &str| {
            stats.registry_errors.fetch_add(1, Ordering::Relaxed);
            if !this.failing {
                tracing::error!(registry = %t.address, block, error = e, "registry read failed: the parameters in force stay");
            }
            this.failing = true;
        };
        let raw = match raw {
            Ok(r) => r,
            Err(e) => return fail(self, &e),
        };
        if self.last_raw.as_ref() == Some(&raw) {
            self.failing = false;
            return;
        }
        let decoded = match IKeelParams::paramsCall::abi_decode_returns(&raw) {
            Ok(d) => d,
            Err(e) => return fail(self, &format!("params() reply does not decode: {e}")),
        };
        if self.failing {
            tracing::info!(registry = %t.address, block, "registry read again");
        }
        self.failing = false;
        let mut all = true;
        let mut push = |u: RegistryUpdate| {
            let ok = t.queue.try_push(u).is_ok();
            if ok {
                stats.registry_changes.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            all &= ok;
            ok
        };
        let global = (decoded.paused, decoded.changedAt);
        if self.global != Some(global)
            && push(RegistryUpdate::Global { paused: global.0, changed_block: global.1, read_block: block })
        {
            self.global = Some(global);
        }
        for e in &decoded.all {
            let Some(&k) = self.index.get(&e.id) else {
                stats.registry_skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(registry = %t.address, id = %e.id, "registry entry for no configured portfolio (its id is keccak256 of the name): skipped");
                continue;
            };
            let pid = t.portfolios[k].1;
            let entry = match entry_of(pid, e, block) {
                Ok(x) => x,
                Err(reason) => {
                    stats.registry_skipped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(registry = %t.address, portfolio = pid.0, reason, "registry entry skipped");
                    continue;
                }
            };
            if self.entries[k].is_some_and(|old| old.same_params(&entry)) {
                continue;
            }
            if push(RegistryUpdate::Portfolio(entry)) {
                self.entries[k] = Some(entry);
            }
        }
        if all {
            self.last_raw = Some(raw);
        }
    }
}

/// One decoded entry as the engine's fixed-size [`RegistryEntry`], or why it cannot be.
fn entry_of(pid: PortfolioId, e: &IKeelParams::Entry, block: u64) -> Result<RegistryEntry, String> {
    if e.tokens.len() != e.weightsBps.len() {
        return Err(format!("{} tokens but {} weights", e.tokens.len(), e.weightsBps.len()));
    }
    let weights = e.tokens.iter().copied().zip(e.weightsBps.iter().copied());
    RegistryEntry::new(pid, e.changedAt, block, weights, e.bandBps, e.paused).map_err(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use alloy::sol_types::SolValue;

    use super::*;

    fn entry(name: &str, weights: &[(u8, u16)], band: u16, paused: bool, at: u64) -> IKeelParams::Entry {
        IKeelParams::Entry {
            id: portfolio_key(name),
            tokens: weights.iter().map(|w| Address::repeat_byte(w.0)).collect(),
            weightsBps: weights.iter().map(|w| w.1).collect(),
            bandBps: band,
            paused,
            changedAt: at,
        }
    }

    fn reply(paused: bool, at: u64, entries: Vec<IKeelParams::Entry>) -> Bytes {
        (paused, at, entries).abi_encode_params().into()
    }

    fn drain(q: &Queue<RegistryUpdate>) -> Vec<RegistryUpdate> {
        std::iter::from_fn(|| q.try_pop()).collect()
    }

    #[test]
    fn only_changes_are_published_and_each_carries_the_block_that_made_it() {
        let q = Arc::new(Queue::new(8));
        let t = RegistryTarget::new(Address::repeat_byte(0xee), ["core", "alt"], Arc::clone(&q));
        let stats = PollStats::default();
        let mut v = RegistryView::new(&t);
        // The first read publishes everything: the global flag and the one entry.
        let r1 = reply(false, 0, vec![entry("alt", &[(1, 6000), (2, 4000)], 0, false, 40)]);
        v.on_read(&t, Ok(r1.clone()), 41, &stats);
        let got = drain(&q);
        assert_eq!(got[0], RegistryUpdate::Global { paused: false, changed_block: 0, read_block: 41 });
        let RegistryUpdate::Portfolio(e) = got[1] else { panic!("{got:?}") };
        assert_eq!((e.portfolio, e.changed_block, e.read_block, e.len), (PortfolioId(1), 40, 41, 2));
        assert_eq!(e.weights().collect::<Vec<_>>()[0], (Address::repeat_byte(1), 6000));
        // The same reply next block: nothing.
        v.on_read(&t, Ok(r1), 42, &stats);
        assert!(drain(&q).is_empty());
        // The global pause set at block 43 and a new entry for `core`; `alt` unchanged.
        let r2 = reply(
            true,
            43,
            vec![entry("alt", &[(1, 6000), (2, 4000)], 0, false, 40), entry("core", &[], 150, true, 43)],
        );
        v.on_read(&t, Ok(r2), 44, &stats);
        let got = drain(&q);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], RegistryUpdate::Global { paused: true, changed_block: 43, read_block: 44 });
        let RegistryUpdate::Portfolio(e) = got[1] else { panic!("{got:?}") };
        assert_eq!((e.portfolio, e.band_bps, e.paused, e.changed_block), (PortfolioId(0), 150, true, 43));
        assert_eq!(stats.registry_changes.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn unknown_ids_bad_replies_and_a_full_queue_are_counted_and_nothing_is_lost() {
        let q = Arc::new(Queue::new(1));
        let t = RegistryTarget::new(Address::repeat_byte(0xee), ["core"], Arc::clone(&q));
        let stats = PollStats::default();
        let mut v = RegistryView::new(&t);
        v.on_read(&t, Err("execution reverted".into()), 5, &stats);
        v.on_read(&t, Ok(Bytes::from_static(b"\x01\x02")), 6, &stats);
        assert_eq!(stats.registry_errors.load(Ordering::Relaxed), 2);
        let r = reply(
            false,
            0,
            vec![entry("ghost", &[], 0, true, 3), entry("core", &[(1, 10_000)], 0, false, 4)],
        );
        // Room for one: the global flag goes, the entry is dropped and counted.
        v.on_read(&t, Ok(r.clone()), 7, &stats);
        assert_eq!(stats.registry_skipped.load(Ordering::Relaxed), 1);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 1);
        assert!(matches!(drain(&q)[..], [RegistryUpdate::Global { .. }]));
        // The same reply next block publishes what was dropped, and only that.
        v.on_read(&t, Ok(r.clone()), 8, &stats);
        let got = drain(&q);
        assert!(matches!(got[..], [RegistryUpdate::Portfolio(e)] if e.read_block == 8), "{got:?}");
        v.on_read(&t, Ok(r), 9, &stats);
        assert!(drain(&q).is_empty());
    }
}
