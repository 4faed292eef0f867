//! The router stage's thread: pops [`RouterInput`]s, drives the [`Executor`], and performs its
//! actions — relay posts, receipt reads, outcomes back to the engine.
//!
//! Posting: to a plain-`http://` relay the thread writes the signed request itself, on a
//! pre-connected keep-alive socket ([`crate::fastpost`]); answers are read on that relay's reader
//! thread. TLS relays, and a plain relay whose connection is down at that moment, are posted by
//! [`RelayClient`] on the tokio runtime. Both paths record answers the same way
//! ([`record_reply`]). The thread never waits for an answer, a connection or a name lookup;
//! receipts come back through the same input queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider};
use hdrhistogram::Histogram;
use keel_engine::clock::{Nanos, mono_now_ns};
use keel_engine::event::{Event, Outcome, OutcomeStatus};
use keel_engine::intent::RebalanceIntent;
use keel_engine::queue::{Queue, WaitPolicy};
use parking_lot::Mutex;

use crate::exec::{Action, Executor, InclusionStats, LandingBlock, ReceiptInfo, SimVerdict};
use crate::head_view::{HeadView, MAX_HEAD_VIEWS};
use keel_engine::chain::ChainUpdate;

use crate::fastpost::{FastPostError, FastPoster, ReplySink};
use crate::oracle::GuardCounts;
use crate::relay::{RelayClient, RelayError, RelayReply};
use keel_engine::record::{JournalRecord, RecordSink};
use keel_recording::codec::RelayAnswer;
use keel_recording::{Recorder, SOURCE_ROUTER};

/// Most outcomes the observer keeps for reports (the newest); counts cover the whole run.
pub const MAX_KEPT_OUTCOMES: usize = 10_000;

/// How long the stage thread waits for input before checking whether to stop.
pub const IDLE_PARK: Duration = Duration::from_millis(20);
/// How many times a receipt read is retried before the landing is reported without gas figures.
pub const RECEIPT_RETRIES: u32 = 20;

/// Everything the router stage consumes.
#[derive(Debug, Clone)]
pub enum RouterInput {
    /// A rebalance decided by the engine.
    Intent(Box<RebalanceIntent>),
    /// A chain fact from the node feed.
    Chain(ChainUpdate),
    /// Receipts the driver read for a landed bundle.
    Receipts {
        /// The intent.
        intent: u64,
        /// One per transaction.
        receipts: Vec<ReceiptInfo>,
        /// The block they are in, when it could be read.
        block: Option<LandingBlock>,
        /// Monotonic time they arrived (the time they are recorded with).
        recv_ns: Nanos,
    },
    /// The pre-simulation of a bundle version is done (`[router] presimulate`).
    Simulated {
        /// The version's bundle hash.
        bundle_hash: B256,
        /// What the simulating relay said.
        verdict: SimVerdict,
    },
}

impl From<ChainUpdate> for RouterInput {
    fn from(u: ChainUpdate) -> Self {
        Self::Chain(u)
    }
}

/// Per-relay counters.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RelayCounters {
    /// Relay name.
    pub name: String,
    /// Requests accepted (a bundle hash returned).
    pub accepted: u64,
    /// Requests refused or failed (TLS refusals included).
    pub failed: u64,
    /// Requests that failed in the TLS handshake (the relay's certificate not trusted).
    pub tls_refused: u64,
}

/// The stage's timestamps of one intent's first submission, kept only while
/// [`StageObserver::stamp_submits`] is set (the latency harness joins them with the relay's arrival
/// times by `signature_header`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitStamp {
    /// The intent.
    pub intent: u64,
    /// Receive time of the event that fired it.
    pub event_recv_ns: u64,
    /// When the engine decided it.
    pub decided_ns: u64,
    /// When this stage popped it from its input queue.
    pub popped_ns: u64,
    /// When the executor returned the signed, encoded request (routing, signing and encoding done).
    pub signed_ns: u64,
    /// When the request had been written to every fast-path relay's socket and handed to the
    /// runtime for the others.
    pub posted_ns: u64,
    /// The request's `X-Flashbots-Signature` value (unique per body).
    pub signature_header: String,
}

/// Shared, lock-light observations of the stage, read by reports and metrics.
#[derive(Debug)]
pub struct StageObserver {
    /// Tick-to-wire: event receive → signed request handed to the HTTP client, ns.
    pub tick_to_wire: Mutex<Histogram<u64>>,
    /// Relay round trip, ns.
    pub relay_rtt: Mutex<Histogram<u64>>,
    /// Per relay.
    pub relays: Mutex<Vec<RelayCounters>>,
    /// The newest outcomes (at most [`MAX_KEPT_OUTCOMES`]), in order, with the time they were
    /// decided (ns); [`StageObserver::outcomes_total`] counts them all.
    pub outcomes: Mutex<VecDeque<(u64, Outcome)>>,
    /// Outcomes decided over the whole run.
    pub outcomes_total: AtomicU64,
    /// Outcomes the engine queue refused (must stay 0).
    pub outcomes_dropped: AtomicU64,
    /// Dry run: bundles are built and signed but never posted.
    pub dry_run: AtomicBool,
    /// Bundles a dry run built and did not post.
    pub dry_run_bundles: AtomicU64,
    /// Whether to keep a [`SubmitStamp`] per first submission (off by default; the harness sets it).
    pub stamp_submits: AtomicBool,
    /// The stamps kept while [`StageObserver::stamp_submits`] is set.
    pub submit_stamps: Mutex<Vec<SubmitStamp>>,
    /// Bundles held back because their journal record could not be committed.
    pub journal_held: AtomicU64,
    /// The oracle guard's refusals by pool and reason, republished after each refusal.
    pub oracle_guard: Mutex<GuardCounts>,
    /// Inclusion statistics of landed rebalances, republished after each landing.
    pub inclusion: Mutex<InclusionStats>,
    /// One view per head, for the chain watches (at most [`MAX_HEAD_VIEWS`]; taken by
    /// [`StageObserver::take_heads`]).
    pub heads: Mutex<std::collections::VecDeque<HeadView>>,
    /// Head views dropped because nobody took them in time.
    pub heads_dropped: AtomicU64,
    /// Whether to publish head views (set when a chain watch is configured).
    pub publish_heads: AtomicBool,
    /// The kill switch is engaged (mirrored by the runtime's switch): in-flight bundles are
    /// cancelled at the next head and never resent.
    pub halted: Arc<AtomicBool>,
    /// `eth_cancelBundle` requests answered without error, and failed, over all relays.
    pub cancels: Mutex<(u64, u64)>,
    /// Landed rebalances by the builder that included them (its name, else its coinbase), and by
    /// the relay whose builder it is (`[[relays]] coinbase`); see [`StageObserver::count_inclusion`].
    pub included_by: Mutex<IncludedBy>,
}

/// Most builders [`IncludedBy`] names; the rest are counted as `other`.
pub const MAX_NAMED_BUILDERS: usize = 32;

/// Landings per builder and per relay (bounded: at most [`MAX_NAMED_BUILDERS`] builders named).
#[derive(Debug, Clone, Default)]
pub struct IncludedBy {
    /// Builder name (or coinbase) and landings, in first-seen order; `other` last once full.
    pub builders: Vec<(String, u64)>,
    /// Relay name and landings its builder included.
    pub relays: Vec<(String, u64)>,
}

impl StageObserver {
    /// Takes the head views published since the last call, oldest first.
    pub fn take_heads(&self) -> Vec<HeadView> {
        self.heads.lock().drain(..).collect()
    }

    /// Publishes a head view, dropping (and counting) the oldest past [`MAX_HEAD_VIEWS`].
    pub fn publish_head(&self, view: HeadView) {
        let mut heads = self.heads.lock();
        if heads.len() >= MAX_HEAD_VIEWS {
            heads.pop_front();
            self.heads_dropped.fetch_add(1, Ordering::Relaxed);
        }
        heads.push_back(view);
    }

    /// Fresh counters for `relay_names`.
    pub fn new(relay_names: impl IntoIterator<Item = String>) -> Self {
        let hist = || Mutex::new(Histogram::new(3).expect("3 significant digits is valid"));
        Self {
            tick_to_wire: hist(),
            relay_rtt: hist(),
            relays: Mutex::new(
                relay_names.into_iter().map(|name| RelayCounters { name, ..Default::default() }).collect(),
            ),
            outcomes: Mutex::new(VecDeque::new()),
            outcomes_total: AtomicU64::new(0),
            outcomes_dropped: AtomicU64::new(0),
            dry_run: AtomicBool::new(false),
            dry_run_bundles: AtomicU64::new(0),
            stamp_submits: AtomicBool::new(false),
            submit_stamps: Mutex::new(Vec::new()),
            journal_held: AtomicU64::new(0),
            oracle_guard: Mutex::new(GuardCounts::default()),
            inclusion: Mutex::new(InclusionStats::default()),
            heads: Mutex::new(std::collections::VecDeque::new()),
            heads_dropped: AtomicU64::new(0),
            publish_heads: AtomicBool::new(false),
            halted: Arc::new(AtomicBool::new(false)),
            cancels: Mutex::new((0, 0)),
            included_by: Mutex::new(IncludedBy::default()),
        }
    }

    /// Counts a landing's builder and the relays whose builder it is.
    pub fn count_inclusion(&self, inclusion: &keel_engine::record::Inclusion) {
        let name = if inclusion.builder.is_empty() {
            inclusion.coinbase.to_string()
        } else {
            inclusion.builder.clone()
        };
        let mut by = self.included_by.lock();
        let full = by.builders.len() >= MAX_NAMED_BUILDERS;
        let slot = match by.builders.iter().position(|(b, _)| *b == name) {
            Some(i) => i,
            None if !full => {
                by.builders.push((name, 0));
                by.builders.len() - 1
            }
            // Past the named ones: the last slot becomes `other` (keeping its count).
            None => {
                let last = by.builders.len() - 1;
                by.builders[last].0 = "other".to_string();
                last
            }
        };
        by.builders[slot].1 += 1;
        for relay in &inclusion.relays {
            match by.relays.iter_mut().find(|(r, _)| r == relay) {
                Some((_, n)) => *n += 1,
                None => by.relays.push((relay.clone(), 1)),
            }
        }
    }
}

/// The stage's journal: where records go, and whether a bundle waits for its record's commit.
#[derive(Debug, Clone)]
pub struct StageJournal {
    /// Appends records (the journal's writer).
    pub handle: Arc<dyn RecordSink>,
    /// Wait for the commit of a bundle's `Signed` record before sending it.
    pub write_ahead: bool,
    /// Longest wait; past it the bundle is held back (not sent) and the error logged.
    pub commit_timeout: Duration,
}

/// The stage's connections to the outside.
#[derive(Debug, Clone)]
pub struct StageIo {
    /// The relays bundles go to.
    pub relays: RelayClient,
    /// The node's JSON-RPC, for receipts (`None`: receipts are not read). One provider for the
    /// stage's whole run; the runtime builds it with a capped reply (`keel_feeds::http`).
    pub receipts_rpc: Option<DynProvider>,
    /// Runtime for relay posts and receipt reads.
    pub runtime: tokio::runtime::Handle,
    /// The journal, when one is configured.
    pub journal: Option<StageJournal>,
    /// How the thread waits for input when idle.
    pub wait: WaitPolicy,
    /// Records the chain facts and receipts the stage takes, as it takes them, and the relays'
    /// answers (`keel record`, `[record]`).
    pub recorder: Option<Arc<Recorder>>,
    /// A chain without Flashbots: every bundle version is sent to this endpoint as raw
    /// transactions ([`crate::private`]) instead of to the relays (which are then empty). Its
    /// answers are counted as relay 0, named [`PRIVATE_RPC_NAME`].
    pub private_rpc: Option<crate::private::PrivateRpcClient>,
}

/// The name under which a private RPC endpoint's answers are counted and journaled.
pub const PRIVATE_RPC_NAME: &str = "private-rpc";

/// What an answer is recorded against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    /// The intent.
    pub intent: u64,
    /// The block the bundle targets.
    pub block: u64,
}

/// Records one relay answer: a journal `Submitted` record, the round trip, the relay's counters.
/// Called from whichever thread read the answer.
pub fn record_reply(
    observer: &StageObserver,
    journal: Option<&Arc<dyn RecordSink>>,
    relay_names: &[String],
    posted: Posted,
    reply: &RelayReply,
) {
    let Posted { intent, block } = posted;
    if let Some(j) = journal {
        j.append(JournalRecord::Submitted {
            intent,
            relay: relay_names
                .get(reply.relay)
                .map_or_else(|| format!("relay#{}", reply.relay), Clone::clone),
            block,
            accepted: reply.result.is_ok(),
            detail: match &reply.result {
                Ok(hash) => hash.to_string(),
                Err(e) => e.to_string(),
            },
        });
    }
    let _ = observer.relay_rtt.lock().record((reply.elapsed.as_nanos() as u64).max(1));
    let mut counters = observer.relays.lock();
    let Some(c) = counters.get_mut(reply.relay) else { return };
    match &reply.result {
        Ok(hash) => {
            c.accepted += 1;
            tracing::debug!(intent, relay = %c.name, bundle = %hash, block, "bundle accepted");
        }
        Err(e) => {
            c.failed += 1;
            if matches!(e, crate::relay::RelayError::Tls(_)) {
                c.tls_refused += 1;
            }
            tracing::warn!(intent, relay = %c.name, error = %e, "relay refused or failed");
        }
    }
}

/// The time an outcome settled by `msg` is stamped with ([`Outcome::at_ns`]): the time of what
/// settled it — the receipts' arrival, the head or pool change that expired it, the event that
/// decided a refused intent — rather than when this thread got to it, so that a replay (which
/// has those times) settles it at the same moment.
fn settle_time(msg: &RouterInput, now: Nanos) -> Nanos {
    match msg {
        RouterInput::Intent(i) => stamp_or(i.event_recv_ns, now),
        RouterInput::Chain(u) => chain_settle_time(u, now),
        RouterInput::Receipts { recv_ns, .. } => stamp_or(*recv_ns, now),
        RouterInput::Simulated { .. } => now,
    }
}

/// When an outcome settled by the chain fact `u`, taken at `now`, is stamped settled: a head's or
/// a pool change's receive time (when the chain told Keel), `now` for the other facts. A replay
/// stamps its outcomes with this too, so its cooldowns start when the recorded run's did.
pub fn chain_settle_time(u: &ChainUpdate, now: Nanos) -> Nanos {
    match u {
        ChainUpdate::Head(h) => stamp_or(h.recv_ns, now),
        ChainUpdate::Pool { update, .. } => stamp_or(update.recv_ns, now),
        _ => now,
    }
}

/// An input's own receive time, or `now` when it carries none (0).
pub fn stamp_or(stamp: Nanos, now: Nanos) -> Nanos {
    if stamp == 0 { now } else { stamp }
}

/// The router stage: routes, signs and sends what it is handed, one input at a time
/// ([`RouterStage::handle`]). [`run_router_stage`] runs it on a thread of its own behind a queue
/// (`pipelined`); the engine thread runs it inline, with no hand-off (`[engine] mode = "inline"`).
pub struct RouterStage {
    exec: Executor,
    input: Arc<Queue<RouterInput>>,
    engine: Arc<Queue<Event>>,
    relays: RelayClient,
    /// The node that receipts are read from: one client for the run (building one loads the
    /// system's root certificates, milliseconds of CPU); `None` when the URL does not parse.
    receipts_rpc: Option<DynProvider>,
    runtime: tokio::runtime::Handle,
    journal: Option<StageJournal>,
    recorder: Option<Arc<Recorder>>,
    private_rpc: Option<crate::private::PrivateRpcClient>,
    observer: Arc<StageObserver>,
    presim_relay: Option<usize>,
    sink: ReplySink<Posted>,
    fast: Option<FastPoster<Posted>>,
    slow: Vec<usize>,
    actions: Vec<Action>,
    last_journaled: u64,
    guard_published: u64,
}

impl std::fmt::Debug for RouterStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterStage").field("inflight", &self.exec.inflight_count()).finish_non_exhaustive()
    }
}

impl RouterStage {
    /// A stage over `exec`: `input` is where the tasks it spawns hand back their results
    /// (receipts, simulations), `engine` where outcomes go.
    pub fn new(
        exec: Executor,
        input: Arc<Queue<RouterInput>>,
        engine: Arc<Queue<Event>>,
        io: StageIo,
        observer: Arc<StageObserver>,
    ) -> Self {
        let StageIo { relays, receipts_rpc, runtime, journal, wait: _, recorder, private_rpc } = io;
        let relay_names: Arc<[String]> = match &private_rpc {
            Some(_) => [PRIVATE_RPC_NAME.to_string()].into_iter().collect(),
            None => relays.relays().iter().map(|r| r.name.clone()).collect(),
        };
        let presim_relay =
            exec.config().presimulate.as_ref().and_then(|name| relay_names.iter().position(|n| n == name));
        let sink: ReplySink<Posted> = {
            let (observer, names) = (Arc::clone(&observer), Arc::clone(&relay_names));
            let journal = journal.as_ref().map(|j| j.handle.clone());
            let recorder = recorder.clone();
            Arc::new(move |posted, reply| {
                if let Some(r) = &recorder {
                    r.relay_answer(
                        mono_now_ns(),
                        &RelayAnswer {
                            relay: u16::try_from(reply.relay).unwrap_or(u16::MAX),
                            intent: posted.intent,
                            block: posted.block,
                            accepted: reply.result.is_ok(),
                            elapsed_ns: u64::try_from(reply.elapsed.as_nanos()).unwrap_or(u64::MAX),
                            detail: match &reply.result {
                                Ok(hash) => hash.to_string(),
                                Err(e) => e.to_string(),
                            },
                        },
                    );
                }
                record_reply(&observer, journal.as_ref(), &names, posted, &reply)
            })
        };
        let fast = match FastPoster::new(relays.relays(), Arc::clone(&sink)) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(error = %e, "relay fast path not started: every relay is posted through the HTTP client");
                None
            }
        };
        let slow: Vec<usize> = Vec::with_capacity(relays.relays().len());
        let actions = Vec::with_capacity(16);
        // Every pool and reason from the start (zeros), so the metric series exist before a refusal.
        *observer.oracle_guard.lock() = exec.oracle().counts().clone();
        let guard_published = exec.oracle().counts().total();
        Self {
            exec,
            input,
            engine,
            relays,
            receipts_rpc,
            runtime,
            journal,
            recorder,
            private_rpc,
            observer,
            presim_relay,
            sink,
            fast,
            slow,
            actions,
            last_journaled: 0,
            guard_published,
        }
    }

    /// The queue the stage's tasks hand their results back on.
    pub fn input(&self) -> &Arc<Queue<RouterInput>> {
        &self.input
    }

    /// Routes the latest intent again, committing nothing, to keep the routing path warm while
    /// the thread is idle ([`Executor::rehearse`]); whether it routed.
    pub fn rehearse(&self) -> bool {
        self.exec.rehearse()
    }

    /// Handles one input: routes and signs an intent and hands the bundle to the relays, applies a
    /// chain update (retargets, settlements), settles receipts. Takes no lock on the way from an
    /// intent to the wire.
    pub fn handle(&mut self, msg: RouterInput) {
        let RouterStage {
            exec,
            input,
            engine,
            relays,
            receipts_rpc,
            runtime,
            journal,
            recorder,
            private_rpc,
            observer,
            presim_relay,
            sink,
            fast,
            slow,
            actions,
            last_journaled,
            guard_published,
        } = self;
        let presim_relay = *presim_relay;
        let now = mono_now_ns();
        let stamping = observer.stamp_submits.load(Ordering::Relaxed);
        let mut decided_ns = 0;
        let settled_ns = settle_time(&msg, now);
        // The intent, kept for rehearsals once its bundle is written (moved, not copied).
        let mut rehearsal = None;
        // Chain facts and receipts are recorded as this stage takes them, by the thread that takes
        // them: a replay meets them in the order they were handled (inline, interleaved with the
        // frames and events the same thread took), not in the order their producers read them.
        // Each is stamped with the time it settles outcomes by (when it was read, for a head, a
        // pool change or receipts), which is also the time the replay hands it on with.
        if let Some(r) = recorder.as_deref() {
            match &msg {
                RouterInput::Chain(u) => {
                    r.chain_update(SOURCE_ROUTER, settled_ns, u);
                }
                RouterInput::Receipts { intent, receipts, .. } => {
                    r.receipts(settled_ns, *intent, receipts);
                }
                RouterInput::Intent(_) | RouterInput::Simulated { .. } => {}
            }
        }
        match msg {
            RouterInput::Intent(intent) => {
                decided_ns = intent.decided_ns;
                exec.on_intent(&intent, now, actions);
                rehearsal = Some(intent);
                // A lock and a copy only after an oracle-guard refusal (no submission follows it).
                let refused = exec.oracle().counts().total();
                if refused != *guard_published {
                    *guard_published = refused;
                    *observer.oracle_guard.lock() = exec.oracle().counts().clone();
                }
            }
            RouterInput::Chain(update) => {
                exec.set_halted(observer.halted.load(Ordering::Acquire));
                let head = match &update {
                    ChainUpdate::Head(h) => Some((h.number, h.base_fee)),
                    _ => None,
                };
                exec.on_chain(update, now, actions);
                if let Some((block, base_fee)) =
                    head.filter(|_| observer.publish_heads.load(Ordering::Relaxed))
                {
                    // Once per block, off the tick path: the chain watches' view of this head.
                    observer.publish_head(HeadView::of(exec, block, base_fee));
                }
            }
            RouterInput::Receipts { intent, receipts, block, .. } => {
                exec.on_receipts_in_block(intent, &receipts, block, actions)
            }
            RouterInput::Simulated { bundle_hash, verdict } => {
                exec.on_simulated(bundle_hash, verdict, actions)
            }
        }
        // After routing and signing: the request is handed to the HTTP client right below.
        let signed_ns = mono_now_ns();
        for action in actions.drain(..) {
            match action {
                Action::Journal(record) => {
                    if let JournalRecord::Included(i) = &record {
                        observer.count_inclusion(i);
                    }
                    if let Some(j) = &journal {
                        *last_journaled = j.handle.append(record);
                    }
                }
                Action::Submit { intent, request, event_recv_ns, simulate, .. } => {
                    if let Some(j) = journal.as_ref().filter(|j| j.write_ahead)
                        && let Err(e) = j.handle.wait_committed(*last_journaled, j.commit_timeout)
                    {
                        observer.journal_held.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(intent, error = %e, "bundle held back: its journal record is not committed");
                        continue;
                    }
                    if event_recv_ns > 0 {
                        let _ = observer
                            .tick_to_wire
                            .lock()
                            .record(signed_ns.saturating_sub(event_recv_ns).max(1));
                    }
                    if observer.dry_run.load(Ordering::Relaxed) {
                        observer.dry_run_bundles.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            intent,
                            bundle = %request.bundle_hash,
                            block = request.block_number,
                            bytes = request.body.len(),
                            "dry run: bundle built and signed, not submitted"
                        );
                        continue;
                    }
                    let stamp = (stamping && event_recv_ns > 0).then(|| SubmitStamp {
                        intent,
                        event_recv_ns,
                        decided_ns,
                        popped_ns: now,
                        signed_ns,
                        posted_ns: 0,
                        signature_header: request.signature_header.clone(),
                    });
                    let posted = Posted { intent, block: request.block_number };
                    if let Some(private) = &private_rpc {
                        // No Flashbots on this chain: the legs go to the endpoint as raw
                        // transactions, in order, off this thread.
                        let (private, sink) = (private.clone(), Arc::clone(sink));
                        runtime.spawn(async move {
                            let reply = private.send_bundle_body(&request.body).await;
                            sink(posted, reply);
                        });
                        if let Some(mut stamp) = stamp {
                            stamp.posted_ns = mono_now_ns();
                            observer.submit_stamps.lock().push(stamp);
                        }
                        continue;
                    }
                    if let (Some(call), Some(sim_relay)) = (simulate, presim_relay) {
                        // Off the fast path: simulate, then send to every relay only if nothing reverted.
                        let (relays, sink, input) = (relays.clone(), Arc::clone(sink), Arc::clone(input));
                        runtime.spawn(async move {
                            let verdict = match relays.call_bundle(sim_relay, &call).await {
                                Ok(None) => SimVerdict::Passed,
                                Ok(Some(why)) => SimVerdict::Failed(why),
                                // Its block has passed: neither sent nor judged; the next head
                                // retargets it and simulates again.
                                Err(RelayError::TooLate(m)) => {
                                    tracing::debug!(intent, relay_said = %m, "simulated after its block: not sent");
                                    SimVerdict::TooLate
                                }
                                Err(e) => {
                                    tracing::warn!(intent, error = %e, "no simulation to be had: the bundle is sent unsimulated");
                                    SimVerdict::Passed
                                }
                            };
                            let send = verdict == SimVerdict::Passed;
                            if send {
                                let all: Vec<usize> = (0..relays.relays().len()).collect();
                                for reply in relays.send_to(&request, &all).await {
                                    sink(posted, reply);
                                }
                            }
                            let bundle_hash = request.bundle_hash;
                            if input.try_push(RouterInput::Simulated { bundle_hash, verdict }).is_err() {
                                tracing::error!(intent, "router queue full: simulation result dropped");
                            }
                        });
                        continue;
                    }
                    slow.clear();
                    for relay in 0..relays.relays().len() {
                        let Some(f) = fast.as_mut().filter(|f| f.handles(relay)) else {
                            slow.push(relay);
                            continue;
                        };
                        if let Err((_, e)) = f.send(relay, &request, posted) {
                            if !matches!(e, FastPostError::NoFastPath(_)) {
                                tracing::debug!(intent, error = %e, "relay fast path unavailable: posting through the HTTP client");
                            }
                            slow.push(relay);
                        }
                    }
                    if !slow.is_empty() {
                        let (relays, sink, targets) = (relays.clone(), Arc::clone(sink), slow.clone());
                        runtime.spawn(async move {
                            for reply in relays.send_to(&request, &targets).await {
                                sink(posted, reply);
                            }
                        });
                    }
                    if let Some(mut stamp) = stamp {
                        stamp.posted_ns = mono_now_ns();
                        observer.submit_stamps.lock().push(stamp);
                    }
                }
                Action::FetchReceipts { intent, hashes, expected } => {
                    let input = Arc::clone(input);
                    let provider = receipts_rpc.clone();
                    runtime.spawn(async move {
                        let (receipts, block) = match provider {
                            Some(p) => fetch_receipts(&p, &hashes, expected).await,
                            None => (Vec::new(), None),
                        };
                        let recv_ns = mono_now_ns();
                        // Recorded when the stage takes them (`handle`).
                        let _ = input.try_push(RouterInput::Receipts { intent, receipts, block, recv_ns });
                    });
                }
                Action::Cancel { intent, .. } if private_rpc.is_some() => {
                    // Raw transactions cannot be withdrawn: they land or their nonces are reused.
                    tracing::warn!(
                        intent,
                        "kill switch: raw transactions sent to the private RPC cannot be cancelled"
                    );
                }
                Action::Cancel { intent, request } => {
                    let (relays, observer) = (relays.clone(), Arc::clone(observer));
                    runtime.spawn(async move {
                        for (relay, result) in relays.send_cancel(&request).await {
                            let name = relays.relays().get(relay).map_or("?", |r| r.name.as_str());
                            let mut counts = observer.cancels.lock();
                            match result {
                                Ok(()) => counts.0 += 1,
                                Err(e) => {
                                    counts.1 += 1;
                                    tracing::warn!(intent, relay = name, error = %e, "eth_cancelBundle refused or failed");
                                }
                            }
                        }
                    });
                }
                Action::Outcome(mut o) => {
                    o.at_ns = settled_ns;
                    if matches!(o.status, OutcomeStatus::Landed { .. }) {
                        // A lock and a copy only after a landing (nothing is sent after it).
                        observer.inclusion.lock().clone_from(exec.inclusion());
                    }
                    {
                        let mut kept = observer.outcomes.lock();
                        if kept.len() >= MAX_KEPT_OUTCOMES {
                            kept.pop_front();
                        }
                        kept.push_back((mono_now_ns(), o));
                    }
                    observer.outcomes_total.fetch_add(1, Ordering::Relaxed);
                    if engine.try_push(Event::Outcome(o)).is_err() {
                        observer.outcomes_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(intent = o.intent, "engine queue full: outcome dropped");
                    }
                }
            }
        }
        if let Some(intent) = rehearsal {
            exec.keep_for_rehearsal(intent);
        }
    }

    /// Ends the stage: waits for the answers still owed on the fast path (each at most its relay's
    /// timeout) and returns the executor, for final statistics.
    pub fn finish(self) -> Executor {
        drop(self.fast);
        self.exec
    }
}

/// Runs the stage on the current thread until `stop` is set and the input queue is drained.
/// Returns the executor, for final statistics.
pub fn run_router_stage(
    exec: Executor,
    input: Arc<Queue<RouterInput>>,
    engine: Arc<Queue<Event>>,
    io: StageIo,
    observer: Arc<StageObserver>,
    stop: Arc<AtomicBool>,
) -> Executor {
    let wait = io.wait;
    let mut stage = RouterStage::new(exec, Arc::clone(&input), engine, io, observer);
    loop {
        let Some(msg) = input.pop_with(wait, IDLE_PARK) else {
            if stop.load(Ordering::Acquire) {
                break;
            }
            continue;
        };
        stage.handle(msg);
    }
    stage.finish()
}

/// Reads receipts for `hashes` — every version of a landed bundle's transactions — until `expected`
/// are found, retrying while the node has not indexed them yet. Versions that never landed simply
/// have no receipt. Missing receipts are logged; the landing itself is proven by the account nonce.
/// Also reads the block they landed in (its coinbase and extra data) and sums the fees paid.
async fn fetch_receipts(
    provider: &DynProvider,
    hashes: &[B256],
    expected: usize,
) -> (Vec<ReceiptInfo>, Option<LandingBlock>) {
    let mut fee_wei: u128 = 0;
    let mut found: Vec<(B256, ReceiptInfo)> = Vec::with_capacity(expected);
    for attempt in 0..RECEIPT_RETRIES {
        for hash in hashes {
            if found.iter().any(|(h, _)| h == hash) {
                continue;
            }
            match provider.get_transaction_receipt(*hash).await {
                Ok(Some(r)) => {
                    let fee = u128::from(r.gas_used).saturating_mul(r.effective_gas_price);
                    fee_wei = fee_wei.saturating_add(fee);
                    found.push((
                        *hash,
                        ReceiptInfo {
                            hash: *hash,
                            block: r.block_number.unwrap_or(0),
                            gas_used: r.gas_used,
                            success: r.status(),
                        },
                    ))
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(%hash, attempt, error = %e, "receipt read failed"),
            }
        }
        if found.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if found.len() < expected {
        tracing::warn!(found = found.len(), expected, "receipts of a landed bundle not all found");
    }
    let receipts: Vec<ReceiptInfo> = found.into_iter().map(|(_, r)| r).collect();
    let mut block = None;
    if let Some(n) = receipts.iter().map(|r| r.block).max().filter(|b| *b > 0) {
        // Retried as the receipts are: a node under load can refuse one read, and without the
        // block there is no inclusion record (builder, time to inclusion) for this rebalance.
        for attempt in 0..RECEIPT_RETRIES {
            match provider.get_block_by_number(n.into()).await {
                Ok(Some(b)) => {
                    block = Some(LandingBlock {
                        coinbase: b.header.beneficiary,
                        extra_data: b.header.extra_data.clone(),
                        fee_wei,
                    });
                    break;
                }
                Ok(None) => tracing::debug!(block = n, attempt, "landing block not found yet"),
                Err(e) => tracing::debug!(block = n, attempt, error = %e, "landing block read failed"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if block.is_none() {
            tracing::warn!(block = n, "landing block not read: no inclusion record");
        }
    }
    (receipts, block)
}
