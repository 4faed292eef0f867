//! The on-chain parameter registry at run time: the engine thread's side.
//!
//! ```text
//!  chain poller (feeds) ── one batch per block, incl. KeelParams.params() ──▶ changed entries
//!        │                                                                     │
//!        └──────────── Queue<RegistryUpdate> (bounded, try_push) ◀─────────────┘
//!                                       ▼
//!  engine thread, between events (try_pop, no wait): RegistryApplier::drain
//!        ├─ a portfolio's entry → Engine::apply_registry (checked; applied or refused)
//!        ├─ the global pause    → the kill switch, KillSource::Registry, reason "registry pause …"
//!        └─ each of them        → one `registry` journal record with the block that made it
//! ```
//!
//! Until the first good read of the registry the kill switch is held too (reason
//! [`REGISTRY_UNREAD_REASON`]): Keel with a registry never trades on parameters it has not read
//! (a registry that cannot be read keeps it halted, and the poller logs why). The first read lets
//! go of that hold unless it says paused. (No rebalance could fire before the first block's
//! balances anyway, and the poller queues the registry's changes before that block's events.)
//!
//! Semantics of the global pause: set on chain, it holds the kill switch (and takes it again at the
//! next drain if an operator's `POST /resume` let go while the chain still says paused); cleared
//! on chain, it is logged and journaled but the switch keeps holding until the operator's
//! `POST /resume`, the explicit-resume rule of every other kill source. A portfolio's own pause
//! stops only that portfolio, in the engine ([`keel_engine::registry`]).
//!
//! Costs: a drain with nothing queued is one queue pop (plus one atomic load while paused); a
//! change allocates its journal record and log line, off the quote path.

use std::sync::Arc;

use keel_engine::{Engine, Queue, RegistryEntry, RegistryUpdate};
use keel_journal::{JournalHandle, JournalRecord, RegistryRecord};

use crate::safety::{KillSource, KillSwitch};

/// Capacity of the queue of registry changes into the engine thread.
pub const REGISTRY_QUEUE_CAPACITY: usize = 1024;
/// The start of the kill switch's reason while the registry's global pause holds it.
pub const REGISTRY_PAUSE_REASON: &str = "registry pause";
/// The kill switch's reason until the registry has been read once.
pub const REGISTRY_UNREAD_REASON: &str = "registry not read yet";

/// Applies the registry's changes on the engine thread (see the [module docs](self)).
#[derive(Debug)]
pub struct RegistryApplier {
    queue: Arc<Queue<RegistryUpdate>>,
    journal: Option<Arc<JournalHandle>>,
    /// The chain's global pause, as last read, and the block that set it.
    paused: Option<u64>,
    /// Whether any global read arrived yet.
    seen_global: bool,
}

impl RegistryApplier {
    /// An applier draining `queue`, journaling to `journal`.
    pub fn new(queue: Arc<Queue<RegistryUpdate>>, journal: Option<Arc<JournalHandle>>) -> Self {
        Self { queue, journal, paused: None, seen_global: false }
    }

    /// Applies every queued change (never waits), then keeps the kill switch held while the
    /// chain says paused.
    #[inline]
    pub fn drain(&mut self, engine: &mut Engine, kill: &KillSwitch) {
        while let Some(u) = self.queue.try_pop() {
            self.apply(engine, kill, &u);
        }
        if !self.seen_global {
            if !kill.is_held_by(KillSource::Registry) {
                kill.hold(KillSource::Registry, REGISTRY_UNREAD_REASON);
            }
        } else if let Some(block) = self.paused
            && !kill.is_held_by(KillSource::Registry)
        {
            kill.hold(KillSource::Registry, &pause_reason(block));
        }
    }

    #[cold]
    fn apply(&mut self, engine: &mut Engine, kill: &KillSwitch, u: &RegistryUpdate) {
        match *u {
            RegistryUpdate::Global { paused, changed_block, read_block } => {
                let was = self.paused.is_some();
                let first = !self.seen_global;
                self.seen_global = true;
                if first {
                    // The start-up hold ends with the first read (taken again below if paused).
                    kill.let_go(KillSource::Registry);
                    tracing::info!(paused, block = read_block, "registry read");
                }
                if paused {
                    self.paused = Some(changed_block);
                    kill.hold(KillSource::Registry, &pause_reason(changed_block));
                } else {
                    self.paused = None;
                }
                if paused == was && !(first && paused) {
                    return;
                }
                let detail = if paused {
                    tracing::error!(
                        block = changed_block,
                        "registry: global pause set on chain; kill switch engaged"
                    );
                    "global pause set: kill switch engaged".to_string()
                } else {
                    tracing::warn!(
                        block = changed_block,
                        "registry: global pause cleared on chain; the kill switch holds until POST /resume"
                    );
                    "global pause cleared: the kill switch holds until POST /resume".to_string()
                };
                self.journal(RegistryRecord {
                    portfolio: None,
                    block: changed_block,
                    read_block,
                    applied: true,
                    paused,
                    weights: Vec::new(),
                    band_bps: 0,
                    detail,
                });
            }
            RegistryUpdate::Portfolio(e) => self.apply_entry(engine, &e),
        }
    }

    fn apply_entry(&self, engine: &mut Engine, e: &RegistryEntry) {
        let (applied, detail) = match engine.apply_registry(e) {
            Ok(()) => {
                tracing::info!(
                    portfolio = e.portfolio.0,
                    block = e.changed_block,
                    tokens = e.len,
                    band_bps = e.band_bps,
                    paused = e.paused,
                    "registry: parameters applied from the next decision on"
                );
                (true, "applied".to_string())
            }
            Err(r) => {
                tracing::warn!(portfolio = e.portfolio.0, block = e.changed_block, kind = r.kind(), reason = %r, "registry: entry refused, the parameters in force stay");
                (false, format!("refused ({}): {r}", r.kind()))
            }
        };
        let weights = engine
            .portfolio(e.portfolio)
            .map(|p| {
                p.assets()
                    .iter()
                    .zip(p.targets())
                    .map(|(&t, &w)| {
                        (engine.token(t).map_or_else(|| format!("#{}", t.0), |k| k.symbol.clone()), w)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.journal(RegistryRecord {
            portfolio: Some(e.portfolio.0),
            block: e.changed_block,
            read_block: e.read_block,
            applied,
            paused: e.paused,
            weights,
            band_bps: e.band_bps,
            detail,
        });
    }

    fn journal(&self, r: RegistryRecord) {
        if let Some(j) = &self.journal {
            j.append(JournalRecord::Registry(Box::new(r)));
        }
    }
}

fn pause_reason(block: u64) -> String {
    format!("{REGISTRY_PAUSE_REASON} (set on chain at block {block})")
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;
    use keel_engine::PortfolioId;
    use keel_engine::config::{EngineConfig, PortfolioConfig, PriceSource, TokenConfig, TriggerConfig};
    use keel_journal::{JournalConfig, Names, Store, SyncPolicy};

    use super::*;

    fn engine() -> Engine {
        let t = |symbol: &str, b: u8| TokenConfig {
            symbol: symbol.into(),
            address: Address::repeat_byte(b),
            decimals: 18,
            price: PriceSource::Fixed { fixed: 1.0 },
        };
        let p = PortfolioConfig {
            name: "core".into(),
            account: Address::repeat_byte(0xaa),
            targets: [("TKA".to_string(), 0.5), ("TKB".to_string(), 0.5)].into(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(0.05), rel_band: None }],
            mode: Default::default(),
            cooldown_secs: 1.0,
            min_trade_notional: 1.0,
            cost: Default::default(),
        };
        Engine::new(
            EngineConfig::default(),
            &[t("TKA", 1), t("TKB", 2)],
            &[p],
            Box::new(keel_engine::ManualClock::new(0)),
        )
        .expect("engine")
    }

    fn entry(weights: &[(u8, u16)], changed_block: u64) -> RegistryUpdate {
        let w: Vec<(Address, u16)> = weights.iter().map(|&(b, w)| (Address::repeat_byte(b), w)).collect();
        RegistryUpdate::Portfolio(
            RegistryEntry::new(PortfolioId(0), changed_block, changed_block + 1, w.into_iter(), 0, false)
                .unwrap(),
        )
    }

    #[test]
    fn the_global_pause_holds_the_switch_through_a_resume_and_unpausing_needs_one() {
        let mut engine = engine();
        let q = Arc::new(Queue::new(8));
        let mut a = RegistryApplier::new(Arc::clone(&q), None);
        let kill = KillSwitch::default();
        let global = |paused, changed_block| RegistryUpdate::Global { paused, changed_block, read_block: 99 };
        // Not read yet: held, saying so (a resume cannot release it either).
        a.drain(&mut engine, &kill);
        assert_eq!(kill.status().reason.as_deref(), Some(REGISTRY_UNREAD_REASON));
        kill.release();
        a.drain(&mut engine, &kill);
        assert!(kill.is_held_by(KillSource::Registry));
        // Read, unpaused: released.
        q.try_push(global(false, 0)).unwrap();
        a.drain(&mut engine, &kill);
        assert!(!kill.is_engaged(), "{:?}", kill.status());
        // Paused at block 12: engaged, reason shown.
        q.try_push(global(true, 12)).unwrap();
        a.drain(&mut engine, &kill);
        let s = kill.status();
        assert!(s.halted && s.held_by == vec![KillSource::Registry], "{s:?}");
        assert_eq!(s.reason.as_deref(), Some("registry pause (set on chain at block 12)"));
        // An operator's resume while the chain still says paused: taken again at the next drain.
        kill.release();
        a.drain(&mut engine, &kill);
        assert!(kill.is_held_by(KillSource::Registry));
        // Unpaused on chain: still held until the operator resumes.
        q.try_push(global(false, 15)).unwrap();
        a.drain(&mut engine, &kill);
        assert!(kill.is_engaged());
        kill.release();
        a.drain(&mut engine, &kill);
        assert!(!kill.is_engaged());
    }

    #[test]
    fn every_change_applied_or_refused_is_journaled_with_the_block_that_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut jcfg = JournalConfig::at(dir.path().join("journal.db"));
        jcfg.sync = SyncPolicy::Off;
        let names = Names { tokens: vec!["TKA".into(), "TKB".into()], portfolios: vec!["core".into()] };
        let journal = keel_journal::Journal::open(&jcfg, names).unwrap();
        let mut engine = engine();
        let q = Arc::new(Queue::new(8));
        let mut a = RegistryApplier::new(Arc::clone(&q), Some(Arc::new(journal.handle())));
        let kill = KillSwitch::default();
        q.try_push(entry(&[(1, 7000), (2, 3000)], 40)).unwrap();
        q.try_push(entry(&[(1, 7000), (3, 3000)], 41)).unwrap(); // an unknown token
        q.try_push(RegistryUpdate::Global { paused: true, changed_block: 42, read_block: 43 }).unwrap();
        a.drain(&mut engine, &kill);
        assert_eq!(engine.portfolio(PortfolioId(0)).unwrap().targets(), &[0.7, 0.3]);
        // Paused at the first read: the headline reason is the pause, not the start-up hold.
        assert_eq!(kill.status().reason.as_deref(), Some("registry pause (set on chain at block 42)"));
        journal.close().unwrap();
        let store = Store::open_read_only(&dir.path().join("journal.db")).unwrap();
        let recs: Vec<serde_json::Value> = store.records(0).unwrap().into_iter().map(|r| r.body).collect();
        assert_eq!(recs.len(), 3, "{recs:#?}");
        assert_eq!((recs[0]["block"].as_u64(), recs[0]["read_block"].as_u64()), (Some(40), Some(41)));
        assert_eq!((recs[0]["portfolio"].as_str(), recs[0]["applied"].as_bool()), (Some("core"), Some(true)));
        assert_eq!(
            (recs[0]["weights"]["TKA"].as_f64(), recs[0]["weights"]["TKB"].as_f64()),
            (Some(0.7), Some(0.3))
        );
        assert_eq!((recs[1]["block"].as_u64(), recs[1]["applied"].as_bool()), (Some(41), Some(false)));
        assert!(recs[1]["detail"].as_str().unwrap().contains("unknown_token"), "{}", recs[1]);
        assert_eq!((recs[2]["block"].as_u64(), recs[2]["paused"].as_bool()), (Some(42), Some(true)));
        assert!(recs[2]["portfolio"].is_null());
    }
}
