//! The production pipeline, assembled: the one code path that `keel run`, `keel demo` and the
//! latency harness all start.
//!
//! ```text
//!  tokio: Binance websocket feed ─┐                      ┌─▶ tokio: relay posts, receipt reads
//!  tokio: chain poller ───────────┼─▶ Queue<Event> ─▶ engine thread ─▶ Queue<RouterInput> ─▶ router thread
//!          (heads, balances) ─────┘        ▲          (process)              ▲  (route, sign, bundle)
//!          (pools, nonces) ───────────────────────────────────────────────────┘
//!                                          └──────────── outcomes ───────────┘
//! ```
//!
//! The engine thread owns the [`Engine`] and its latency histogram (no lock on the hot path); it
//! publishes a snapshot for progress output and samples weights for reports off the hot path, at a
//! fixed interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;
use keel_amm::pool::{BalancerPair, CurvePair, Pool, PoolEntry, PoolError, PoolMeta};
use keel_amm::v3::V3Pool;
use keel_engine::clock::{LiveClock, Nanos, mono_now_ns};
use keel_engine::config::{EngineConfig, PortfolioConfig, StageMode, TokenConfig};
use keel_engine::event::{Event, Outcome, OutcomeStatus};
use keel_engine::portfolio::PortfolioStatus;
use keel_engine::queue::{Either, Queue, QueueStats, WaitPolicy, pop_either};
use keel_engine::stats::EngineStats;
use keel_engine::token::PriceOrigin;
use keel_engine::{Engine, PortfolioId, RebalanceIntent, TargetUpdate};
use keel_feeds::binance::InstrumentTable;
use keel_feeds::hot::HotFeed;
use keel_feeds::node::{
    MempoolConfig, MempoolDecoder, MempoolFeedConfig, MempoolPool, MempoolStats, NodeFeedConfig,
    NodeFeedOutputs, NodeFeedStats, PoolKind, RouterKind, TrackedPool, run_mempool_feed, run_node_feed,
};
use keel_feeds::poll::{BalancerTarget, CurveTarget, PollConfig, PollStats, PollTargets, run_chain_poller};
use keel_feeds::stats::{FeedStats, FeedStatsSnapshot};
use keel_feeds::ws::{BinanceFeedConfig, run_binance_feed_recorded};
use keel_journal::{Journal, JournalConfig, Names, Resolution};
use keel_recording::SOURCE_ENGINE;
use keel_router::config::{DexConfig, DexKind, PoolConfig, RelayConfig, RouterConfig, V4Via};
use keel_router::exec::{ExecError, ExecStats, ExecToken, Executor, FillRecord, PoolVenue};

use crate::chains::{ChainReport, ChainSpec, Lane};
use crate::hot_turn::{HotStep, Rehearsal, hot_step};
use keel_router::relay::RelayClient;
use keel_router::signer::Signer;
use keel_router::stage::{
    RelayCounters, RouterInput, RouterStage, StageIo, StageJournal, StageObserver, run_router_stage,
};

use crate::bounded::{MAX_KEPT_DRIFTS, MAX_KEPT_INTENTS, MAX_KEPT_SAMPLES, Newest, Thinning};
use crate::predictor::{
    PredictorConfig, PredictorListener, PredictorOutputs, PredictorStats, TARGETS_QUEUE_CAPACITY, Validator,
    run_predictor,
};
use crate::record::{RecordError, RecordSpec, Recording, RecordingReport};
use crate::recovery::Recovered;
use crate::safety::{KillStatus, KillSwitch, SafetySpec, watch_kill_file, watch_signal};
use keel_amm::v3::sqrt_price_math::Q96;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Default interval between weight samples for reports.
pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// Pending mempool swaps queued between the mempool feed and the node feed.
pub const PENDING_SWAPS_CAPACITY: usize = 4096;
/// Interval of the engine's timer events (temporal triggers and staleness).
pub const TIMER_EVERY: Duration = Duration::from_millis(100);
/// Inline mode, idle and not spinning: the longest the engine thread sleeps on the exchange socket
/// before it looks at its queues again (heads, receipts, relay answers, node and poller events).
/// A frame ends the sleep at once; the queues are drained before each frame.
pub const HOT_IDLE_SLICE: Duration = Duration::from_millis(1);

/// Everything the pipeline needs, resolved (keys loaded, endpoints known).
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// Engine settings.
    pub engine: EngineConfig,
    /// Tokens.
    pub tokens: Vec<TokenConfig>,
    /// Portfolios.
    pub portfolios: Vec<PortfolioConfig>,
    /// Execution settings.
    pub router: RouterConfig,
    /// DEXes.
    pub dexes: Vec<DexConfig>,
    /// Pools.
    pub pools: Vec<PoolConfig>,
    /// Relays.
    pub relays: Vec<RelayConfig>,
    /// Signs `X-Flashbots-Signature`.
    pub reputation: Signer,
    /// Portfolio account keys.
    pub accounts: Vec<Signer>,
    /// Market data.
    pub binance: BinanceFeedConfig,
    /// Node JSON-RPC URL.
    pub rpc_url: String,
    /// Node poll interval.
    pub poll_ms: u64,
    /// Node websocket URL. When set, pool state (V2 and V3) comes from `eth_subscribe` logs with an
    /// exact in-memory book (required for V3 pools); otherwise V2 reserves are polled each block.
    pub node_ws_url: Option<String>,
    /// Mempool feed settings (`[chain.mempool]`: extra routers decoded, pending age and count
    /// bounds, reconnect backoff); used when `node_ws_url` is set.
    pub mempool: MempoolConfig,
    /// Symbol of the wrapped native token (gas is priced through it), if listed.
    pub native_symbol: Option<String>,
    /// Weight sampling interval for reports.
    pub sample_every: Duration,
    /// Kill switch sources and dry run.
    pub safety: SafetySpec,
    /// The journal (start with [`Pipeline::launch`], which recovers from it first).
    pub journal: Option<JournalConfig>,
    /// Record every input into this recording (`[record]`, `keel record`).
    pub record: Option<RecordSpec>,
    /// Predictor sockets (`[[predictors]]`) for portfolios with `external` targets.
    pub predictors: Vec<PredictorConfig>,
    /// The on-chain parameter registry (`[registry] address`), read every block by the chain
    /// poller ([`crate::registry`]).
    pub registry: Option<alloy::primitives::Address>,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The engine refused its config (tokens, portfolios, triggers).
    #[error("config: {0}")]
    Engine(#[from] keel_engine::config::ConfigError),
    /// A `[safety.watch]` value is out of range.
    #[error("config: {0}")]
    Watch(#[from] crate::watch::WatchConfigError),
    /// `[engine] mode = "inline"` with several chains: one thread runs one chain's router stage.
    #[error(
        "config: engine.mode: \"inline\" runs one chain's router on the engine thread; {0} chains are configured (use \"pipelined\")"
    )]
    InlineMultiChain(usize),
    /// The exchange feed's settings are invalid, or its connector thread cannot start.
    #[error("exchange feed: {0}")]
    ExchangeFeed(#[from] keel_feeds::ws::FeedError),
    /// The exchange feed cannot subscribe the configured symbols.
    #[error("config: feed symbols: {0}")]
    FeedSymbols(#[from] keel_feeds::binance::TableError),
    /// A name refers to nothing configured.
    #[error("config: {field}: unknown {what} `{name}`")]
    Unknown {
        /// Where the name stands (e.g. `pools[weth-usdc].dex`).
        field: String,
        /// What kind of thing it names (`dex`, `token`).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A Uniswap V3 pool without the websocket node feed (its ticks come only from logs).
    #[error("config: pools[{pool}]: uniswap_v3 pools need the websocket node feed: set [chain] ws_url")]
    V3NeedsWebsocket {
        /// The pool.
        pool: String,
    },
    /// A Uniswap V4 pool without the websocket node feed (its state follows the `PoolManager`'s
    /// logs).
    #[error("config: pools[{pool}]: uniswap_v4 pools need the websocket node feed: set [chain] ws_url")]
    V4NeedsWebsocket {
        /// The pool.
        pool: String,
    },
    /// A Uniswap V4 pool whose key is not one the router can trade (hooks, fee, spacing).
    #[error("config: pools[{pool}]: {source}")]
    BadV4Pool {
        /// The pool.
        pool: String,
        /// Why.
        source: keel_amm::v4::V4Error,
    },
    /// A Uniswap V3 pool whose tick spacing is neither configured nor that of a canonical fee tier.
    #[error(
        "config: pools[{pool}]: fee {fee} is not a canonical Uniswap V3 tier (100, 500, 3000, 10000): set tick_spacing"
    )]
    TickSpacingUnknown {
        /// The pool.
        pool: String,
        /// Its fee, pips.
        fee: u32,
    },
    /// A pool's parameters do not make a valid pool.
    #[error("config: pools[{pool}]: {source}")]
    BadPool {
        /// The pool.
        pool: String,
        /// Why.
        source: PoolError,
    },
    /// A V3 pool's parameters do not make a valid pool.
    #[error("config: pools[{pool}]: {source}")]
    BadV3Pool {
        /// The pool.
        pool: String,
        /// Why.
        source: keel_amm::v3::V3Error,
    },
    /// A predictor socket could not be bound.
    #[error("config: {0}")]
    Predictor(#[from] crate::predictor::ListenError),
    /// `control_port` without `control_token`: the control endpoint never runs unauthenticated.
    #[error("config: safety.control_token: required with control_port (env:VAR or file:PATH)")]
    ControlNeedsToken,
    /// A pipeline with a journal was started without recovery.
    #[error("a pipeline with a journal starts with Pipeline::launch (recovery first)")]
    JournalNeedsLaunch,
    /// The journal's open rebalances do not fit the engine.
    #[error("resuming from the journal: {0}")]
    Resume(keel_engine::restore::ResumeError),
    /// A rebalance left in flight could not be adopted.
    #[error("adopting intent {intent}: {source}")]
    Adopt {
        /// The intent.
        intent: u64,
        /// Why.
        source: ExecError,
    },
    /// A thread could not be spawned.
    #[error("spawning a thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The relay client could not be built.
    #[error("relay client: {0}")]
    Relay(#[from] keel_router::relay::RelayError),
    /// The journal could not be opened or the previous run's rebalances not settled.
    #[error("recovery: {0}")]
    Recovery(#[from] crate::recovery::RecoveryError),
    /// The recording could not be started.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The chains and the portfolios on them do not fit together.
    #[error("config: {0}")]
    Chains(String),
}

impl PipelineError {
    fn unknown(field: impl Into<String>, what: &'static str, name: impl Into<String>) -> Self {
        Self::Unknown { field: field.into(), what, name: name.into() }
    }
}

/// One portfolio's state at a moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PortfolioView {
    /// Name.
    pub name: String,
    /// Value in the numeraire, when known.
    pub value: Option<f64>,
    /// (symbol, weight, target).
    pub weights: Vec<(String, f64, f64)>,
    /// Band in force.
    pub band: f64,
    /// Largest |w − t|.
    pub max_drift: Option<f64>,
    /// Busy with a rebalance (in flight or awaiting balances).
    pub busy: bool,
}

/// What the engine thread publishes for progress output.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    /// Seconds since start.
    pub t_s: f64,
    /// Engine counters.
    pub engine: EngineStats,
    /// Portfolios.
    pub portfolios: Vec<PortfolioView>,
    /// Chain head.
    pub head: Option<u64>,
    /// Each token's numeraire price (mid; NaN before its first quote), in token order.
    pub prices: Vec<f64>,
    /// Whether each token's price comes from the exchange (not a fixed price).
    pub exchange_priced: Vec<bool>,
}

/// A weight sample for plots.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Seconds since start.
    pub t_s: f64,
    /// Portfolio index.
    pub portfolio: usize,
    /// Weights in target order.
    pub weights: Vec<f64>,
    /// Band in force.
    pub band: f64,
    /// Targets in force, in the same order (they move for CPPI, momentum and external sources).
    pub targets: Vec<f64>,
}

/// What the engine thread hands back at the end.
#[derive(Debug)]
pub struct EngineRun {
    /// The engine in its final state.
    pub engine: Engine,
    /// Event receive → trigger decision, for events that fired, ns.
    pub decide: Histogram<u64>,
    /// Event receive → state applied and trigger evaluated, for every quote, ns.
    pub quote_to_decision: Histogram<u64>,
    /// The newest intents emitted (the last [`crate::bounded::MAX_KEPT_INTENTS`]).
    pub intents: Vec<RebalanceIntent>,
    /// Intents emitted over the whole run, per portfolio id.
    pub fired: Vec<u64>,
    /// Largest drift when a trigger fired, over the whole run.
    pub max_drift_fired: f64,
    /// (portfolio, drift) measured when post-landing balances arrived (the newest
    /// [`crate::bounded::MAX_KEPT_DRIFTS`]).
    pub drift_after_landing: Vec<(usize, f64)>,
    /// Largest post-landing drift over the whole run.
    pub max_drift_after: f64,
    /// Weight samples over the whole run, thinned to at most [`crate::bounded::MAX_KEPT_SAMPLES`].
    pub samples: Vec<Sample>,
    /// First known value of each portfolio.
    pub start_values: Vec<Option<f64>>,
}

/// Everything measured over a run.
#[derive(Debug)]
pub struct PipelineReport {
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// The engine side.
    pub engine: EngineRun,
    /// Executor counters.
    pub exec: ExecStats,
    /// Fills submitted.
    pub fills: Vec<FillRecord>,
    /// What each rebalance submitted costs.
    pub intent_costs: Vec<keel_router::exec::IntentCost>,
    /// What the submitted rebalances cost, per portfolio id (gas, pool fees, impact against the
    /// reference mid), computed on the routes the transactions were built from.
    pub costs: Vec<keel_router::cost::RebalanceCost>,
    /// Tick-to-wire histogram, ns.
    pub tick_to_wire: Histogram<u64>,
    /// Relay round trips, ns.
    pub relay_rtt: Histogram<u64>,
    /// Per relay.
    pub relays: Vec<RelayCounters>,
    /// How long landed rebalances took to be included.
    pub inclusion: keel_router::exec::InclusionStats,
    /// (seconds since start, outcome): the newest [`keel_router::stage::MAX_KEPT_OUTCOMES`].
    pub outcomes: Vec<(f64, keel_engine::event::Outcome)>,
    /// Outcomes the engine queue refused (must stay 0).
    pub outcomes_dropped: u64,
    /// Feed counters.
    pub feed: FeedStatsSnapshot,
    /// Blocks read by the poller.
    pub blocks: u64,
    /// Engine input queue.
    pub event_queue: QueueStats,
    /// Router input queue.
    pub router_queue: QueueStats,
    /// The kill switch at the end.
    pub kill: KillStatus,
    /// Router threads that ran (one per chain pipelined; none inline, where the engine thread
    /// runs the router stage).
    pub router_threads: usize,
    /// Bundles built and signed but not posted (dry run).
    pub dry_run_bundles: u64,
    /// Journal records written this run (`None` without a journal); an error when the journal
    /// failed.
    pub journal_records: Option<Result<u64, String>>,
    /// Rebalances of a previous run settled at start.
    pub recovered: Vec<(u64, Resolution)>,
    /// What the input recording wrote (`None` without `[record]`).
    pub recording: Option<RecordingReport>,
    /// Per chain, in configured order (one entry for a single-chain run). The figures above sum
    /// every chain's.
    pub chains: Vec<ChainReport>,
}

/// One chain's running share: its router thread and what it reports through.
#[derive(Debug)]
struct LaneRun {
    name: String,
    chain_id: u64,
    private: bool,
    portfolios: Vec<String>,
    router_thread: Option<JoinHandle<Executor>>,
    observer: Arc<StageObserver>,
    poll_stats: Arc<PollStats>,
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    cancel: CancellationToken,
    stop: Arc<AtomicBool>,
    router_stop: Arc<AtomicBool>,
    /// The engine thread; in inline mode it returns the chain's executor too.
    engine_thread: Option<JoinHandle<(EngineRun, Option<Executor>)>>,
    lanes: Vec<LaneRun>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    snapshot: Arc<Mutex<Snapshot>>,
    observer: Arc<StageObserver>,
    feed_stats: Arc<FeedStats>,
    poll_stats: Arc<PollStats>,
    events: Arc<Queue<Event>>,
    router_in: Arc<Queue<RouterInput>>,
    started_ns: Nanos,
    kill: Arc<KillSwitch>,
    watch_stats: Arc<crate::watch::WatchStats>,
    control_addr: Option<std::net::SocketAddr>,
    journal: Option<Journal>,
    recovered: Vec<(u64, Resolution)>,
    recording: Option<Recording>,
    predictor_stats: Arc<PredictorStats>,
    predictor_addrs: Vec<(String, Option<std::net::SocketAddr>)>,
}

impl Pipeline {
    /// Starts the pipeline; with a journal configured, first settles what the previous run left
    /// open (see [`crate::recovery`]) and resumes it: adopted bundles are resent unchanged, their
    /// portfolios stay busy, intent ids continue.
    pub async fn launch(
        spec: PipelineSpec,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Pipeline, PipelineError> {
        Self::launch_chains(spec, Vec::new(), runtime).await
    }

    /// [`Pipeline::launch`] over several chains ([`crate::chains`]): `spec` holds the engine, the
    /// tokens, every portfolio and the shared settings; each of `chains` its node, submission
    /// path, pools and accounts. Empty `chains`: the single chain of `spec`. Recovery reads each
    /// open rebalance's chain facts from its portfolio's chain, and the journal names the chain.
    pub async fn launch_chains(
        spec: PipelineSpec,
        chains: Vec<ChainSpec>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Pipeline, PipelineError> {
        let lanes = crate::chains::lanes(&spec, &chains)?;
        let Some(cfg) = spec.journal.clone() else { return Self::start_inner(spec, lanes, runtime, None) };
        let names = Names {
            tokens: spec.tokens.iter().map(|t| t.symbol.clone()).collect(),
            portfolios: spec.portfolios.iter().map(|p| p.name.clone()).collect(),
        };
        let lane_of = crate::chains::lane_of_portfolio(&lanes, spec.portfolios.len());
        let routes = crate::recovery::RpcRoutes {
            default: lanes[0].spec.rpc_url.clone(),
            by_portfolio: spec
                .portfolios
                .iter()
                .zip(&lane_of)
                .map(|(p, &l)| (p.name.clone(), lanes[l].spec.rpc_url.clone()))
                .collect(),
            chains: if chains.is_empty() {
                Vec::new()
            } else {
                lane_of.iter().map(|&l| lanes[l].name.clone()).collect()
            },
        };
        let (journal, recovered) = crate::recovery::recover_routed(&cfg, &routes, names).await?;
        Self::start_inner(spec, lanes, runtime, Some((journal, recovered)))
    }

    /// Starts the feeds on `runtime` and the engine and router threads (no journal: a spec with
    /// one must go through [`Pipeline::launch`]).
    pub fn start(spec: PipelineSpec, runtime: &tokio::runtime::Handle) -> Result<Pipeline, PipelineError> {
        if spec.journal.is_some() {
            return Err(PipelineError::JournalNeedsLaunch);
        }
        let lanes = crate::chains::lanes(&spec, &[])?;
        Self::start_inner(spec, lanes, runtime, None)
    }

    fn start_inner(
        spec: PipelineSpec,
        lanes: Vec<Lane>,
        runtime: &tokio::runtime::Handle,
        journal: Option<(Journal, Recovered)>,
    ) -> Result<Pipeline, PipelineError> {
        if spec.safety.control_port.is_some() && spec.safety.control_token.is_none() {
            return Err(PipelineError::ControlNeedsToken);
        }
        let started_ns = mono_now_ns();
        let recording = spec.record.as_ref().map(|r| Recording::start(r, started_ns)).transpose()?;
        let recorder = recording.as_ref().map(|r| Arc::clone(r.recorder()));
        let mut engine =
            Engine::new(spec.engine.clone(), &spec.tokens, &spec.portfolios, Box::new(LiveClock))?;
        engine.set_native_token(spec.native_symbol.as_deref().and_then(|s| engine.token_id(s)));
        let table = InstrumentTable::new(engine.instrument_symbols().iter())?;
        let lane_of = crate::chains::lane_of_portfolio(&lanes, spec.portfolios.len());
        let mut executors = lane_executors(&lanes)?;
        let mut lane_targets = Vec::with_capacity(lanes.len());
        for lane in &lanes {
            lane_targets.push(poll_targets_on(&lane.spec, &engine, Some(&lane.on_chain))?);
        }
        let (journal, recovered) = match journal {
            Some((j, r)) => (Some(j), r),
            None => (None, Recovered::default()),
        };
        engine.resume(recovered.next_intent, &recovered.in_flight()).map_err(PipelineError::Resume)?;
        for a in &recovered.adopted {
            // Nonces are per chain and account: the bundle goes back to its portfolio's chain.
            let lane = lane_of.get(a.bundle.portfolio as usize).copied().unwrap_or(0);
            executors[lane]
                .adopt(&a.bundle, &a.all_hashes, a.chain_nonce)
                .map_err(|source| PipelineError::Adopt { intent: a.bundle.intent, source })?;
        }
        restore_charges(&mut executors, &lane_of, &recovered.charges, mono_now_ns());
        if !recovered.charges.is_empty() {
            let total: f64 = recovered.charges.iter().map(|c| c.notional).sum();
            tracing::info!(
                rebalances = recovered.charges.len(),
                notional = total,
                "daily notional caps resume with the last 24 h of the journal"
            );
        }
        let stage_journal = match (&journal, &spec.journal) {
            (Some(j), Some(cfg)) => Some(StageJournal {
                handle: Arc::new(j.handle()),
                write_ahead: cfg.write_ahead,
                commit_timeout: cfg.commit_timeout(),
            }),
            _ => None,
        };

        let events = Arc::new(Queue::new(spec.engine.queue_capacity));
        let cancel = CancellationToken::new();
        let stop = Arc::new(AtomicBool::new(false));
        let router_stop = Arc::new(AtomicBool::new(false));
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let feed_stats = Arc::new(FeedStats::new());
        let kill = Arc::new(KillSwitch::default());
        // One halt flag mirrored by the kill switch, read by every chain's router.
        let halted = Arc::new(AtomicBool::new(false));
        kill.mirror_to(Arc::clone(&halted));
        let mut lane_io = Vec::with_capacity(lanes.len());
        for lane in &lanes {
            let names: Vec<String> = match &lane.private_rpc {
                Some(_) => vec![keel_router::stage::PRIVATE_RPC_NAME.to_string()],
                None => lane.spec.relays.iter().map(|r| r.name.clone()).collect(),
            };
            let mut observer = StageObserver::new(names);
            observer.halted = Arc::clone(&halted);
            observer.dry_run.store(spec.safety.dry_run, Ordering::Release);
            lane_io.push((
                Arc::new(observer),
                Arc::new(PollStats::default()),
                Arc::new(Queue::<RouterInput>::new(spec.engine.queue_capacity)),
            ));
        }
        // The first chain's, for the single-chain accessors ([`Pipeline::observer`]).
        let (observer, poll_stats, router_in) =
            (Arc::clone(&lane_io[0].0), Arc::clone(&lane_io[0].1), Arc::clone(&lane_io[0].2));
        let mut tasks = Vec::new();
        if let Some(path) = spec.safety.kill_file.clone() {
            tasks.push(runtime.spawn(watch_kill_file(path, Arc::clone(&kill), cancel.clone())));
        }
        tasks.push(runtime.spawn(watch_signal(Arc::clone(&kill), cancel.clone())));
        let watch_stats = Arc::new(crate::watch::WatchStats::default());
        let predictor_stats = Arc::new(PredictorStats::default());
        if spec.safety.watch.any() {
            // Every chain's heads and pools are watched; a trip's reason names its chain when
            // there are several.
            let several = lanes.len() > 1;
            let mut chains = Vec::with_capacity(lanes.len());
            for (lane, io) in lanes.iter().zip(&lane_io) {
                io.0.publish_heads.store(true, Ordering::Release);
                chains.push(crate::watch::ChainWatches {
                    chain: several.then(|| lane.name.clone()),
                    watches: chain_watches(&lane.spec)?,
                    observer: Arc::clone(&io.0),
                });
            }
            tasks.push(runtime.spawn(crate::watch::run_watches(
                chains,
                Arc::clone(&snapshot),
                Arc::clone(&kill),
                Arc::clone(&watch_stats),
                cancel.clone(),
            )));
        }
        // The node and mempool feeds' counters, read by the metrics endpoint.
        let node_stats = Arc::new(NodeFeedStats::default());
        let mempool_stats = Arc::new(MempoolStats::default());
        let control_addr = match spec.safety.control_port {
            Some(port) => {
                let token = spec.safety.control_token.clone().ok_or(PipelineError::ControlNeedsToken)?;
                let control_stats = Arc::new(crate::control::ControlStats::default());
                let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
                std_listener.set_nonblocking(true)?;
                let addr = std_listener.local_addr()?;
                let _guard = runtime.enter();
                let listener = tokio::net::TcpListener::from_std(std_listener)?;
                let metrics = crate::metrics::MetricsSources {
                    snapshot: Arc::clone(&snapshot),
                    chains: lanes
                        .iter()
                        .zip(&lane_io)
                        .map(|(lane, io)| crate::metrics::ChainSources {
                            name: lane.name.clone(),
                            observer: Arc::clone(&io.0),
                            router_in: Arc::clone(&io.2),
                            poll: Arc::clone(&io.1),
                        })
                        .collect(),
                    feed: Arc::clone(&feed_stats),
                    events: Arc::clone(&events),
                    kill: Arc::clone(&kill),
                    control: Arc::clone(&control_stats),
                    recorder: recorder.clone(),
                    watches: Arc::clone(&watch_stats),
                    predictors: Arc::clone(&predictor_stats),
                    node: Arc::clone(&node_stats),
                    mempool: Arc::clone(&mempool_stats),
                };
                let control = crate::control::serve_control(
                    listener,
                    Arc::clone(&kill),
                    token,
                    control_stats,
                    metrics,
                    cancel.clone(),
                );
                tasks.push(runtime.spawn(control));
                Some(addr)
            }
            None => None,
        };
        let target_updates = Arc::new(Queue::new(TARGETS_QUEUE_CAPACITY));
        let registry = spec.registry.map(|address| {
            let queue = Arc::new(Queue::new(crate::registry::REGISTRY_QUEUE_CAPACITY));
            let names = spec.portfolios.iter().map(|p| p.name.as_str());
            lane_targets[0].registry =
                Some(keel_feeds::poll::RegistryTarget::new(address, names, Arc::clone(&queue)));
            crate::registry::RegistryApplier::new(queue, journal.as_ref().map(|j| Arc::new(j.handle())))
        });
        let mut predictor_addrs = Vec::new();
        {
            let validator = Validator::new(&spec.portfolios, &engine);
            for name in validator.predictors() {
                if !spec.predictors.iter().any(|p| p.name == name) {
                    return Err(PipelineError::unknown("portfolios[].targets.external", "predictor", name));
                }
            }
            let validator = Arc::new(Mutex::new(validator));
            let journal_handle = journal.as_ref().map(|j| Arc::new(j.handle()));
            for cfg in &spec.predictors {
                let _guard = runtime.enter();
                let listener = PredictorListener::bind(cfg)?;
                predictor_addrs.push((cfg.name.clone(), listener.local_addr()));
                let out = PredictorOutputs {
                    queue: Arc::clone(&target_updates),
                    journal: journal_handle.clone(),
                    stats: Arc::clone(&predictor_stats),
                };
                tasks.push(runtime.spawn(run_predictor(
                    cfg.name.clone(),
                    listener,
                    Arc::clone(&validator),
                    out,
                    cancel.clone(),
                )));
            }
        }
        let inline_mode = spec.engine.mode == StageMode::Inline;
        if inline_mode && lanes.len() > 1 {
            return Err(PipelineError::InlineMultiChain(lanes.len()));
        }
        // Inline: the engine thread reads the exchange socket itself.
        let mut exchange = None;
        if inline_mode {
            exchange = Some(HotFeed::start(
                spec.binance.clone(),
                Arc::new(table),
                Arc::clone(&feed_stats),
                recorder.clone(),
            )?);
        } else {
            let (cfg, table, q, st, c) = (
                spec.binance.clone(),
                Arc::new(table),
                Arc::clone(&events),
                Arc::clone(&feed_stats),
                cancel.clone(),
            );
            let rec = recorder.clone();
            tasks.push(runtime.spawn(async move {
                if let Err(e) = run_binance_feed_recorded(cfg, table, q, st, rec, c).await {
                    tracing::error!(error = %e, "market-data feed stopped");
                }
            }));
        }
        for (li, lane) in lanes.iter().enumerate() {
            {
                let (q, r, st, c) = (
                    Arc::clone(&events),
                    Arc::clone(&lane_io[li].2),
                    Arc::clone(&lane_io[li].1),
                    cancel.clone(),
                );
                let targets = lane_targets.remove(0);
                let poll = PollConfig {
                    rpc_url: lane.spec.rpc_url.clone(),
                    ws_url: lane.spec.node_ws_url.clone(),
                    poll_ms: lane.spec.poll_ms,
                };
                let name = lane.name.clone();
                tasks.push(runtime.spawn(async move {
                    if let Err(e) = run_chain_poller(poll, targets, q, r, st, c).await {
                        tracing::error!(chain = %name, error = %e, "chain poller stopped");
                    }
                }));
            }
            if let Some(ws_url) = lane.spec.node_ws_url.clone() {
                let tracked = tracked_pools(&lane.spec)?;
                // The public mempool: swaps pending on tracked pools, for `defer_on_pending_volume`; the
                // node feed keeps them against its pool book and reports their impact to the router.
                let (pending_tx, pending_rx) = tokio::sync::mpsc::channel(PENDING_SWAPS_CAPACITY);
                let decoder = mempool_decoder(&lane.spec, &tracked)?;
                let (pool_ids, pools): (Vec<u32>, Vec<TrackedPool>) = tracked.into_iter().unzip();
                let cfg = NodeFeedConfig { ws_url: ws_url.clone(), pools, balances: Vec::new() };
                let outputs = NodeFeedOutputs {
                    router: Arc::clone(&lane_io[li].2),
                    events: Arc::clone(&events),
                    pending: Some(pending_rx),
                    pending_limits: lane.spec.mempool.limits(),
                    pool_ids,
                };
                let (st, c) = (Arc::clone(&node_stats), cancel.clone());
                tasks.push(runtime.spawn(async move {
                    if let Err(e) = run_node_feed(cfg, outputs, st, c).await {
                        tracing::error!(error = %e, "node feed stopped");
                    }
                }));
                // Reconnects with backoff until cancelled: it never ends on a transport error.
                let mempool_cfg = MempoolFeedConfig { ws_url, backoff: lane.spec.mempool.backoff };
                let c = cancel.clone();
                let mempool_stats = Arc::clone(&mempool_stats);
                tasks.push(runtime.spawn(run_mempool_feed(
                    mempool_cfg,
                    decoder,
                    pending_tx,
                    mempool_stats,
                    c,
                )));
            }
        }
        let routes: Vec<Arc<Queue<RouterInput>>> = lane_io.iter().map(|l| Arc::clone(&l.2)).collect();
        let mut inline_stage: Option<RouterStage> = None;
        let mut lane_runs = Vec::with_capacity(lanes.len());
        for ((lane, executor), (lane_observer, lane_poll, lane_in)) in
            lanes.iter().zip(executors).zip(lane_io)
        {
            let relays = RelayClient::new(lane.spec.relays.clone())?;
            let private_rpc = lane
                .private_rpc
                .as_ref()
                .map(|url| {
                    keel_router::private::PrivateRpcClient::new(
                        url.clone(),
                        keel_router::private::DEFAULT_PRIVATE_RPC_TIMEOUT_MS,
                    )
                })
                .transpose()?;
            let (input, events, observer, stop) = (
                Arc::clone(&lane_in),
                Arc::clone(&events),
                Arc::clone(&lane_observer),
                Arc::clone(&router_stop),
            );
            let io = StageIo {
                relays,
                receipts_rpc: match keel_feeds::http::http_provider(&lane.spec.rpc_url) {
                    Ok(p) => Some(p),
                    Err(error) => {
                        tracing::error!(%error, "receipts will not be read");
                        None
                    }
                },
                runtime: runtime.clone(),
                journal: stage_journal.clone(),
                wait: spec.engine.wait_policy(),
                recorder: recorder.clone(),
                private_rpc,
            };
            let router_thread = if inline_mode {
                // Inline: the engine thread runs this chain's stage (single-chain, checked above).
                inline_stage = Some(RouterStage::new(executor, input, events, io, observer));
                None
            } else {
                // The first chain's thread keeps the single-chain name (tools pin it by name).
                let thread_name = if lane_runs.is_empty() {
                    "keel-router".to_string()
                } else {
                    format!("keel-router-{}", lane.name)
                };
                Some(
                    std::thread::Builder::new()
                        .name(thread_name)
                        .spawn(move || run_router_stage(executor, input, events, io, observer, stop))?,
                )
            };
            lane_runs.push(LaneRun {
                name: lane.name.clone(),
                chain_id: lane.spec.router.chain_id,
                private: lane.private_rpc.is_some(),
                portfolios: spec
                    .portfolios
                    .iter()
                    .zip(&lane.on_chain)
                    .filter(|(_, on)| **on)
                    .map(|(p, _)| p.name.clone())
                    .collect(),
                router_thread,
                observer: lane_observer,
                poll_stats: lane_poll,
            });
        }
        let engine_thread = {
            let (events, stop, snapshot) = (Arc::clone(&events), Arc::clone(&stop), Arc::clone(&snapshot));
            let lane_of = lane_of.clone();
            let sample_every = spec.sample_every;
            let kill = Arc::clone(&kill);
            let wait = spec.engine.wait_policy();
            let targets = Arc::clone(&target_updates);
            let registry = registry;
            let recorder = recorder.clone();
            let (inline, hot_cpu) = (inline_stage, spec.engine.hot_cpu);
            let exchange = exchange.take();
            std::thread::Builder::new().name("keel-engine".into()).spawn(move || {
                engine_loop(
                    engine,
                    EngineThread {
                        events,
                        routes,
                        lane_of,
                        stop,
                        snapshot,
                        sample_every,
                        started_ns,
                        kill,
                        wait,
                        targets,
                        registry,
                        recorder,
                        inline,
                        exchange,
                        hot_cpu,
                        rehearse_us: spec.engine.rehearse_us,
                    },
                )
            })?
        };
        Ok(Pipeline {
            cancel,
            stop,
            router_stop,
            engine_thread: Some(engine_thread),
            lanes: lane_runs,
            tasks,
            snapshot,
            observer,
            feed_stats,
            poll_stats,
            events,
            router_in,
            started_ns,
            kill,
            watch_stats,
            control_addr,
            journal,
            recovered: recovered.settled,
            recording,
            predictor_stats,
            predictor_addrs,
        })
    }

    /// Trips of the chain watches so far.
    pub fn watch_stats(&self) -> &Arc<crate::watch::WatchStats> {
        &self.watch_stats
    }

    /// The input recording's counters now (`None` without `[record]`).
    pub fn recording_stats(&self) -> Option<keel_recording::RecorderStats> {
        self.recording.as_ref().map(|r| r.recorder().stats())
    }

    /// The latest snapshot the engine thread published.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().clone()
    }

    /// Feed counters now.
    pub fn feed_stats(&self) -> FeedStatsSnapshot {
        self.feed_stats.snapshot()
    }

    /// Each chain's name and the highest block its poller has published (`None` before the
    /// first), in configured order (one entry for a single-chain run).
    pub fn chain_heads(&self) -> Vec<(String, Option<u64>)> {
        self.lanes
            .iter()
            .map(|l| {
                let n = l.poll_stats.last_block.load(Ordering::Relaxed);
                (l.name.clone(), (l.poll_stats.blocks.load(Ordering::Relaxed) > 0).then_some(n))
            })
            .collect()
    }

    /// The chain poller's counters (blocks read, batches, heads by source, fallbacks).
    pub fn poll_stats(&self) -> &Arc<PollStats> {
        &self.poll_stats
    }

    /// The router stage's observer (histograms, counters and, when enabled, submission stamps).
    pub fn observer(&self) -> &Arc<StageObserver> {
        &self.observer
    }

    /// The engine input queue's counters now.
    pub fn event_queue_stats(&self) -> QueueStats {
        self.events.stats()
    }

    /// Events waiting in the engine input queue now.
    pub fn event_queue_len(&self) -> usize {
        self.events.len()
    }

    /// The kill switch (engage it from code; operators use the file, SIGUSR1 or the endpoint).
    pub fn kill_switch(&self) -> &Arc<KillSwitch> {
        &self.kill
    }

    /// Counters of the predictor readers.
    pub fn predictor_stats(&self) -> &Arc<PredictorStats> {
        &self.predictor_stats
    }

    /// Each predictor's name and bound TCP address (`None` for a Unix socket).
    pub fn predictor_addrs(&self) -> &[(String, Option<std::net::SocketAddr>)] {
        &self.predictor_addrs
    }

    /// Address of the control endpoint, when one was asked for.
    pub fn control_addr(&self) -> Option<std::net::SocketAddr> {
        self.control_addr
    }

    /// Outcomes decided so far (landed, expired, rejected), over the whole run.
    pub fn outcomes_so_far(&self) -> usize {
        self.observer.outcomes_total.load(Ordering::Relaxed) as usize
    }

    /// Stops the feeds, drains the queues, joins the threads and returns what was measured.
    pub async fn shutdown(mut self) -> PipelineReport {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // Let in-flight relay posts and receipt reads finish briefly, then stop the threads in the
        // order data flows: the engine first (it drains its queue), then the router (it drains the
        // intents the engine handed it last).
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.stop.store(true, Ordering::Release);
        let engine_thread = self.engine_thread.take();
        let router_threads: Vec<_> = self.lanes.iter_mut().map(|l| l.router_thread.take()).collect();
        let router_thread_count = router_threads.iter().filter(|t| t.is_some()).count();
        let router_stop = Arc::clone(&self.router_stop);
        let (engine, execs) = tokio::task::spawn_blocking(move || {
            let e = engine_thread.map(|t| t.join());
            router_stop.store(true, Ordering::Release);
            let r: Vec<_> = router_threads.into_iter().map(|t| t.map(|t| t.join())).collect();
            (e, r)
        })
        .await
        .unwrap_or((None, Vec::new()));
        let (engine, mut inline_exec) = match engine {
            Some(Ok(run)) => run,
            _ => panic!("engine thread panicked"),
        };
        // A lane without a router thread ran inline, on the engine thread.
        let execs: Vec<Executor> = execs
            .into_iter()
            .map(|x| match x {
                Some(Ok(x)) => x,
                None => {
                    inline_exec.take().expect("an inline lane's executor comes back from the engine thread")
                }
                Some(Err(_)) => panic!("router thread panicked"),
            })
            .collect();
        let merged = merge_lanes(&self.lanes, &execs, self.started_ns);
        // Every record the stage queued is written before the journal closes.
        let journal_records = match self.journal.take() {
            Some(j) => Some(
                tokio::task::spawn_blocking(move || j.close().map_err(|e| e.to_string()))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string())),
            ),
            None => None,
        };
        // Every producer has stopped: what is queued is written and the last file closed.
        let recording = match self.recording.take() {
            Some(r) => tokio::task::spawn_blocking(move || r.finish()).await.ok(),
            None => None,
        };
        let start = self.started_ns;
        PipelineReport {
            duration_s: (mono_now_ns() - start) as f64 / 1e9,
            exec: merged.exec,
            fills: merged.fills,
            intent_costs: merged.intent_costs,
            costs: merged.costs,
            engine,
            tick_to_wire: merged.tick_to_wire,
            relay_rtt: merged.relay_rtt,
            relays: merged.relays,
            inclusion: execs.first().map(|x| x.inclusion().clone()).unwrap_or_default(),
            outcomes: merged.outcomes,
            outcomes_dropped: merged.outcomes_dropped,
            feed: self.feed_stats.snapshot(),
            blocks: merged.blocks,
            event_queue: self.events.stats(),
            router_queue: self.router_in.stats(),
            kill: self.kill.status(),
            router_threads: router_thread_count,
            dry_run_bundles: self.observer.dry_run_bundles.load(Ordering::Relaxed),
            journal_records,
            recovered: std::mem::take(&mut self.recovered),
            recording,
            chains: merged.chains,
        }
    }
}

/// Every chain's router figures, summed (counters, histograms) or concatenated (fills, costs,
/// outcomes in time order) for the report.
struct Merged {
    exec: ExecStats,
    fills: Vec<FillRecord>,
    intent_costs: Vec<keel_router::exec::IntentCost>,
    costs: Vec<keel_router::cost::RebalanceCost>,
    tick_to_wire: Histogram<u64>,
    relay_rtt: Histogram<u64>,
    relays: Vec<RelayCounters>,
    outcomes: Vec<(f64, Outcome)>,
    outcomes_dropped: u64,
    blocks: u64,
    chains: Vec<ChainReport>,
}

fn merge_lanes(lanes: &[LaneRun], execs: &[Executor], start: Nanos) -> Merged {
    let mut m = Merged {
        exec: ExecStats::default(),
        fills: Vec::new(),
        intent_costs: Vec::new(),
        costs: Vec::new(),
        tick_to_wire: new_hist(),
        relay_rtt: new_hist(),
        relays: Vec::new(),
        outcomes: Vec::new(),
        outcomes_dropped: 0,
        blocks: 0,
        chains: Vec::with_capacity(lanes.len()),
    };
    for (lane, exec) in lanes.iter().zip(execs) {
        m.exec.absorb(exec.stats());
        m.fills.extend_from_slice(exec.fills());
        m.intent_costs.extend_from_slice(exec.intent_costs());
        // Costs are indexed by portfolio id, which every chain shares: a portfolio is on one
        // chain, so the others hold zeros for it.
        if m.costs.len() < exec.costs().len() {
            m.costs.resize(exec.costs().len(), Default::default());
        }
        for (dst, c) in m.costs.iter_mut().zip(exec.costs()) {
            dst.add(c);
        }
        let _ = m.tick_to_wire.add(&*lane.observer.tick_to_wire.lock());
        let _ = m.relay_rtt.add(&*lane.observer.relay_rtt.lock());
        m.relays.extend(lane.observer.relays.lock().iter().cloned());
        m.outcomes.extend(
            lane.observer.outcomes.lock().iter().map(|(t, o)| ((t.saturating_sub(start)) as f64 / 1e9, *o)),
        );
        m.outcomes_dropped =
            m.outcomes_dropped.saturating_add(lane.observer.outcomes_dropped.load(Ordering::Relaxed));
        let blocks = lane.poll_stats.blocks.load(Ordering::Relaxed);
        m.blocks = m.blocks.saturating_add(blocks);
        m.chains.push(ChainReport {
            name: lane.name.clone(),
            chain_id: lane.chain_id,
            submission: if lane.private { "private_rpc" } else { "relays" },
            exec: exec.stats().clone(),
            blocks,
            portfolios: lane.portfolios.clone(),
        });
    }
    m.outcomes.sort_by(|a, b| a.0.total_cmp(&b.0));
    m
}

fn new_hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is valid")
}

/// The router queue of `portfolio`'s chain: two `Vec` indexings, no lookup by name (the first
/// chain's for an id out of range, which the engine never emits).
fn route<'a>(
    routes: &'a [Arc<Queue<RouterInput>>],
    lane_of: &[usize],
    portfolio: PortfolioId,
) -> &'a Queue<RouterInput> {
    let lane = lane_of.get(portfolio.idx()).copied().unwrap_or(0);
    routes.get(lane).or_else(|| routes.first()).expect("a pipeline has at least one chain")
}

/// Sends an intent to the router — or, when the kill switch is engaged or the router queue is full,
/// returns the `Rejected` outcome the engine must see, so the portfolio cools down instead of waiting
/// forever for an intent that was never sent.
fn dispatch(router_in: &Queue<RouterInput>, intent: RebalanceIntent, kill: &KillSwitch) -> Option<Outcome> {
    if let Some(bounce) = killed(&intent, kill) {
        return Some(bounce);
    }
    let bounce = bounce_of(&intent);
    match router_in.try_push(RouterInput::Intent(Box::new(intent))) {
        Ok(()) => None,
        Err(_) => {
            tracing::error!(intent = bounce.intent, "router queue full: rebalance not sent");
            Some(bounce)
        }
    }
}

/// The `Rejected` outcome of an intent that is not sent, settled by the event that decided it: the
/// engine cools the portfolio down from then.
fn bounce_of(intent: &RebalanceIntent) -> Outcome {
    Outcome {
        intent: intent.id,
        portfolio: intent.portfolio,
        status: OutcomeStatus::Rejected,
        at_ns: intent.event_recv_ns,
    }
}

/// The bounce of an intent decided while the kill switch is engaged (counted and logged).
fn killed(intent: &RebalanceIntent, kill: &KillSwitch) -> Option<Outcome> {
    if !kill.is_engaged() {
        return None;
    }
    kill.count_blocked();
    tracing::warn!(
        intent = intent.id,
        portfolio = intent.portfolio.0,
        "kill switch engaged: rebalance not sent"
    );
    Some(bounce_of(intent))
}

/// Hands an intent over: to the router stage on this thread (inline mode: routed, signed and
/// written to the relays before this returns) or to its chain's router queue. Returns the bounce
/// the engine must see when it is not sent.
fn hand_over(
    inline: &mut Option<RouterStage>,
    routes: &[Arc<Queue<RouterInput>>],
    lane_of: &[usize],
    intent: RebalanceIntent,
    kill: &KillSwitch,
) -> Option<Outcome> {
    match inline {
        Some(stage) => {
            if let Some(bounce) = killed(&intent, kill) {
                return Some(bounce);
            }
            stage.handle(RouterInput::Intent(Box::new(intent)));
            None
        }
        None => dispatch(route(routes, lane_of, intent.portfolio), intent, kill),
    }
}

/// The engine thread: events in, intents out; timers, snapshots and samples at fixed intervals.
/// What the engine thread works with, besides the engine.
struct EngineThread {
    events: Arc<Queue<Event>>,
    /// One router queue per chain.
    routes: Vec<Arc<Queue<RouterInput>>>,
    /// The chain (index into `routes`) of each portfolio, by engine id.
    lane_of: Vec<usize>,
    stop: Arc<AtomicBool>,
    snapshot: Arc<Mutex<Snapshot>>,
    sample_every: Duration,
    started_ns: Nanos,
    kill: Arc<KillSwitch>,
    wait: WaitPolicy,
    /// Validated predictor weights, drained between events without waiting.
    targets: Arc<Queue<TargetUpdate>>,
    /// The on-chain registry's changes, drained between events without waiting.
    registry: Option<crate::registry::RegistryApplier>,
    /// Records the timers this thread runs, when the run is recorded.
    recorder: Option<Arc<keel_recording::Recorder>>,
    /// Inline mode: the (single) chain's router stage, run on this thread.
    inline: Option<RouterStage>,
    /// Inline mode: the exchange feed, read on this thread.
    exchange: Option<HotFeed>,
    /// The CPU to pin this thread to.
    hot_cpu: Option<usize>,
    /// Inline mode with the exchange socket: `[engine] rehearse_us`.
    rehearse_us: u64,
}

fn engine_loop(mut engine: Engine, ctx: EngineThread) -> (EngineRun, Option<Executor>) {
    let EngineThread {
        events,
        routes,
        lane_of,
        stop,
        snapshot,
        sample_every,
        started_ns,
        kill,
        wait,
        targets,
        mut registry,
        recorder,
        mut inline,
        mut exchange,
        hot_cpu,
        rehearse_us,
    } = ctx;
    if let Some(cpu) = hot_cpu {
        match crate::affinity::pin_current(&[cpu]) {
            Ok(()) => tracing::info!(cpu, "engine thread pinned"),
            Err(e) => tracing::warn!(cpu, error = %e, "engine thread not pinned"),
        }
    }
    // A timer is an input to the engine like any other: when it runs decides what it sees.
    let record_timer = |now: Nanos| {
        if let Some(r) = &recorder {
            r.timer(now);
        }
    };
    let n = engine.portfolios().len();
    let mut decide = new_hist();
    let mut quote_to_decision = new_hist();
    let mut intents = Newest::new(MAX_KEPT_INTENTS);
    let mut fired = vec![0u64; n];
    let mut max_drift_fired: f64 = 0.0;
    let mut drift_after_landing = Newest::new(MAX_KEPT_DRIFTS);
    let mut max_drift_after: f64 = 0.0;
    let mut samples = Thinning::new(MAX_KEPT_SAMPLES);
    let mut sample_tick = 0u64;
    let mut start_values = vec![None; n];
    let mut awaiting = vec![false; n];
    let mut views = portfolio_views(&engine);
    let mut out: Vec<RebalanceIntent> = Vec::with_capacity(16);
    let mut bounced: Vec<Outcome> = Vec::with_capacity(16);
    let timer_ns = TIMER_EVERY.as_nanos() as u64;
    let sample_ns = sample_every.as_nanos().max(1) as u64;
    let mut next_timer = mono_now_ns() + timer_ns;
    let mut next_sample = mono_now_ns();
    let mut busy_ns = mono_now_ns();
    let mut turn: u32 = 0;
    let mut rehearsal = Rehearsal::new(rehearse_us);
    loop {
        let ev = match (inline.as_mut(), exchange.as_mut()) {
            (None, _) => events.pop_with(wait, TIMER_EVERY),
            // Inline, the exchange socket read here: frame → event → decision → signed bundle on
            // the wire without leaving this thread.
            (Some(stage), Some(feed)) => {
                match next_hot(&events, stage, feed, wait, &mut busy_ns, &mut turn, &mut rehearsal) {
                    Some(ev) => Some(ev),
                    None if mono_now_ns() < next_timer && !stop.load(Ordering::Acquire) => continue,
                    None => None,
                }
            }
            // Inline: the router's inputs (heads, pool changes, receipts, relay answers) wake this
            // thread too, and are handled here, between events.
            (Some(stage), None) => match pop_either(&events, stage.input(), wait, TIMER_EVERY) {
                Some(Either::First(ev)) => Some(ev),
                Some(Either::Second(msg)) => {
                    stage.handle(msg);
                    if mono_now_ns() < next_timer && !stop.load(Ordering::Acquire) {
                        continue;
                    }
                    None
                }
                None => None,
            },
        };
        let now = mono_now_ns();
        let ev = match ev {
            Some(ev) => ev,
            None if stop.load(Ordering::Acquire) => break,
            None => {
                next_timer = now + timer_ns;
                record_timer(now);
                Event::Timer { now_ns: now }
            }
        };
        // Heads and balance reads are recorded as this thread takes them (the producers do not):
        // a replay meets them in the order the engine did, between the same frames, stamped with
        // their own receive times (the engine decides by those). Frames are recorded as read,
        // timers as run; outcomes are the replay's own.
        if let (Some(r), Event::Block(_) | Event::Balance(_)) = (&recorder, &ev) {
            r.engine_event(SOURCE_ENGINE, keel_router::stage::stamp_or(ev.time_ns(), now), &ev);
        }
        // Predictor weights: a non-blocking drain of a bounded queue, off the quote path.
        while let Some(u) = targets.try_pop() {
            if let Err(e) = engine.apply_target_update(&u) {
                tracing::warn!(portfolio = u.portfolio.0, error = %e, "engine refused predicted targets");
            }
        }
        // Registry changes: the same non-blocking drain; a global pause holds the kill switch.
        if let Some(r) = registry.as_mut() {
            r.drain(&mut engine, &kill);
        }
        engine.process(&ev, &mut out);
        if let Event::Quote(q) = ev {
            let _ = quote_to_decision.record(mono_now_ns().saturating_sub(q.recv_ns).max(1));
        }
        for intent in out.drain(..) {
            let _ = decide.record(intent.decided_ns.saturating_sub(intent.event_recv_ns).max(1));
            note_fired(&intent, &mut fired, &mut max_drift_fired);
            intents.push(intent.clone());
            bounced.extend(hand_over(&mut inline, &routes, &lane_of, intent, &kill));
        }
        for o in bounced.drain(..) {
            engine.process(&Event::Outcome(o), &mut out);
        }
        // Drift right after a landed rebalance: once its outcome is in and the engine holds balances
        // read at or after the landing block (they may arrive before or after the outcome). Only
        // the portfolio the event concerns is looked at: O(1) per event at any book size.
        let concerned = match ev {
            Event::Outcome(o) => {
                if matches!(o.status, keel_engine::event::OutcomeStatus::Landed { .. })
                    && let Some(a) = awaiting.get_mut(o.portfolio.idx())
                {
                    *a = true;
                }
                Some(o.portfolio)
            }
            Event::Balance(b) => Some(b.portfolio),
            _ => None,
        };
        if let Some(pid) = concerned
            && awaiting.get(pid.idx()).copied().unwrap_or(false)
            && !matches!(engine.status(pid), Some(PortfolioStatus::AwaitingBalances(_)))
            && let Some(d) = engine.max_drift(pid)
        {
            drift_after_landing.push((pid.idx(), d));
            max_drift_after = max_drift_after.max(d);
            awaiting[pid.idx()] = false;
        }
        if now >= next_timer {
            next_timer = now + timer_ns;
            record_timer(now);
            engine.process(&Event::Timer { now_ns: now }, &mut out);
            for intent in out.drain(..) {
                note_fired(&intent, &mut fired, &mut max_drift_fired);
                intents.push(intent.clone());
                bounced.extend(hand_over(&mut inline, &routes, &lane_of, intent, &kill));
            }
            for o in bounced.drain(..) {
                engine.process(&Event::Outcome(o), &mut out);
            }
        }
        if now >= next_sample {
            next_sample = now + sample_ns;
            let t_s = (now - started_ns) as f64 / 1e9;
            let tick = sample_tick;
            sample_tick += 1;
            // In place: the views were built once; a sample rewrites their numbers.
            refresh_views(&engine, &mut views);
            for (i, v) in views.iter().enumerate() {
                if start_values[i].is_none() {
                    start_values[i] = v.value;
                }
            }
            // Only the ticks the thinned history keeps build samples (every 2^k-th, k growing
            // with uptime).
            if samples.wants(tick) {
                for (i, v) in views.iter().enumerate().filter(|(_, v)| v.value.is_some()) {
                    let weights = v.weights.iter().map(|w| w.1).collect();
                    let targets = v.weights.iter().map(|w| w.2).collect();
                    samples.push(tick, Sample { t_s, portfolio: i, weights, band: v.band, targets });
                }
            }
            // Never wait for a reader (progress, metrics) that is copying the snapshot: skip this
            // publication instead; the next interval publishes again.
            if let Some(mut snap) = snapshot.try_lock() {
                snap.t_s = t_s;
                snap.engine = engine.stats();
                snap.head = engine.head().map(|h| h.number);
                // Prices for the chain watches, rewritten in place after the first publication.
                let prices = engine.tokens().prices();
                snap.prices.resize(prices.len(), f64::NAN);
                snap.exchange_priced.resize(prices.len(), false);
                let snap = &mut *snap;
                for ((dst, priced), p) in
                    snap.prices.iter_mut().zip(snap.exchange_priced.iter_mut()).zip(prices)
                {
                    *dst = p.mid;
                    *priced = matches!(p.origin, PriceOrigin::Instrument(_));
                }
                if snap.portfolios.len() == views.len() {
                    for (dst, src) in snap.portfolios.iter_mut().zip(&views) {
                        dst.copy_numbers_from(src);
                    }
                } else {
                    snap.portfolios.clone_from(&views);
                }
            }
        }
    }
    if let Some(feed) = exchange {
        feed.shutdown();
        tracing::info!(
            rehearsals = rehearsal.routed,
            "hot thread stopped; its idle rehearsals of the latest route"
        );
    }
    // Inline: what the stage's tasks handed back since the last event is handled before it ends.
    let exec = inline.map(|mut stage| {
        while let Some(msg) = stage.input().try_pop() {
            stage.handle(msg);
        }
        stage.finish()
    });
    let run = EngineRun {
        engine,
        decide,
        quote_to_decision,
        intents: intents.into_vec(),
        fired,
        max_drift_fired,
        drift_after_landing: drift_after_landing.into_vec(),
        max_drift_after,
        samples: samples.into_vec(),
        start_values,
    };
    (run, exec)
}

/// Inline mode's next event, the exchange socket read on this thread. Other feeds' events come
/// first: each was recorded before anything the socket gives now, so the engine takes inputs in
/// their recorded order. Then the socket, without blocking. Then the router stage's inputs, handled
/// here — and one of them every [`HOT_ROUTER_TURN`](crate::hot_turn::HOT_ROUTER_TURN) events even
/// while the socket has more ([`hot_step`]), so a flood of frames cannot hold back heads and
/// receipts. With nothing to do, the thread waits as `wait` says: it busy-polls (`Spin`, and
/// `SpinThenPark` within its spin of the last input), or sleeps on the socket for at most
/// [`HOT_IDLE_SLICE`]; before that, once idle for `[engine] rehearse_us`, it routes its latest
/// intent again, committing nothing, to keep the path warm ([`Rehearsal`]). `None`: nothing for
/// the engine now.
#[inline]
fn next_hot(
    events: &Queue<Event>,
    stage: &mut RouterStage,
    feed: &mut HotFeed,
    wait: WaitPolicy,
    busy_ns: &mut Nanos,
    turn: &mut u32,
    rehearsal: &mut Rehearsal,
) -> Option<Event> {
    let input = stage.input();
    match hot_step(turn, || events.try_pop().or_else(|| feed.try_next()), || input.try_pop()) {
        HotStep::Event(ev) => {
            *busy_ns = ev.time_ns();
            Some(ev)
        }
        HotStep::Router(msg) => {
            stage.handle(msg);
            *busy_ns = mono_now_ns();
            None
        }
        HotStep::Idle => {
            let now = mono_now_ns();
            if rehearsal.due(now, *busy_ns) {
                let routed = stage.rehearse();
                rehearsal.ran(now, routed);
            }
            let sleep = match wait {
                WaitPolicy::Spin => false,
                WaitPolicy::Park => true,
                WaitPolicy::SpinThenPark { spin } => now.saturating_sub(*busy_ns) > spin.as_nanos() as u64,
            };
            if sleep {
                feed.wait(HOT_IDLE_SLICE);
            }
            None
        }
    }
}

/// Counts an emitted intent in the whole-run aggregates.
fn note_fired(intent: &RebalanceIntent, fired: &mut [u64], max_drift: &mut f64) {
    if let Some(n) = fired.get_mut(intent.portfolio.idx()) {
        *n += 1;
    }
    *max_drift = max_drift.max(intent.drift);
}

/// Rewrites the numbers of `views` (built by [`portfolio_views`] for this engine) in place:
/// value, weights, targets, band, drift, busy. Allocates nothing.
pub fn refresh_views(engine: &Engine, views: &mut [PortfolioView]) {
    for (i, v) in views.iter_mut().enumerate() {
        let pid = PortfolioId(i as u32);
        for slot in &mut v.weights {
            slot.1 = f64::NAN;
        }
        let mut k = 0;
        engine.visit_weights(pid, |_, w, t| {
            if let Some(slot) = v.weights.get_mut(k) {
                slot.1 = w;
                slot.2 = t;
            }
            k += 1;
        });
        v.value = engine.portfolio_value(pid);
        v.band = engine.current_band(pid);
        v.max_drift = engine.max_drift(pid);
        v.busy = matches!(
            engine.status(pid),
            Some(PortfolioStatus::InFlight(_) | PortfolioStatus::AwaitingBalances(_))
        );
    }
}

impl PortfolioView {
    /// Copies the numbers of `src` (a view of the same portfolio) into `self` without allocating.
    fn copy_numbers_from(&mut self, src: &PortfolioView) {
        self.value = src.value;
        self.band = src.band;
        self.max_drift = src.max_drift;
        self.busy = src.busy;
        for (d, s) in self.weights.iter_mut().zip(&src.weights) {
            d.1 = s.1;
            d.2 = s.2;
        }
    }
}

/// Views of every portfolio, one weight entry per asset in target order (a weight is NaN while
/// the portfolio's value is unknown). Allocates: built once, then kept current with
/// [`refresh_views`].
pub fn portfolio_views(engine: &Engine) -> Vec<PortfolioView> {
    let mut views: Vec<PortfolioView> = engine
        .portfolios()
        .iter()
        .map(|p| PortfolioView {
            name: p.name().to_string(),
            value: None,
            weights: p
                .assets()
                .iter()
                .zip(p.targets())
                .map(|(&tok, &t)| {
                    (engine.token(tok).map(|t| t.symbol.clone()).unwrap_or_default(), f64::NAN, t)
                })
                .collect(),
            band: 0.0,
            max_drift: None,
            busy: false,
        })
        .collect();
    refresh_views(engine, &mut views);
    views
}

fn token_address(spec: &PipelineSpec, symbol: &str) -> Result<alloy::primitives::Address, PipelineError> {
    spec.tokens
        .iter()
        .find(|t| t.symbol == symbol)
        .map(|t| t.address)
        .ok_or_else(|| PipelineError::unknown("tokens", "token", symbol))
}

/// One executor per lane (chain). `max_daily_notional_total` caps every chain together: the
/// executors share one total window ([`keel_router::exec::DailyTotal`]).
pub(crate) fn lane_executors(lanes: &[Lane]) -> Result<Vec<Executor>, PipelineError> {
    let daily_total = keel_router::exec::DailyTotal::shared();
    lanes.iter().map(|l| Ok(build_executor(&l.spec)?.with_daily_total(Arc::clone(&daily_total)))).collect()
}

/// Charges each chain's daily windows with the rebalances of the previous run (recovery reads
/// them from the journal): a charge goes to its portfolio's chain, and one of a portfolio no longer
/// configured to the first chain, where it counts towards the total cap only. The executors share
/// one total window, so every restored charge counts towards every chain's total cap.
pub(crate) fn restore_charges(
    executors: &mut [Executor],
    lane_of: &[usize],
    charges: &[keel_journal::recover::RestoredCharge],
    now: Nanos,
) {
    for c in charges {
        let lane = c.portfolio.and_then(|p| lane_of.get(p.idx()).copied()).unwrap_or(0);
        if let Some(exec) = executors.get_mut(lane) {
            exec.restore_charge(c.portfolio, c.intent, c.notional, c.age_ms.saturating_mul(1_000_000), now);
        }
    }
}

/// Builds the executor from the spec: tokens by engine id, pools with empty state until read.
pub(crate) fn build_executor(spec: &PipelineSpec) -> Result<Executor, PipelineError> {
    let tokens = spec
        .tokens
        .iter()
        .map(|t| ExecToken { symbol: t.symbol.clone(), address: t.address, decimals: t.decimals })
        .collect();
    let mut pools = Vec::with_capacity(spec.pools.len());
    let mut venues = Vec::with_capacity(spec.pools.len());
    for p in &spec.pools {
        let (venue, dex) = spec
            .dexes
            .iter()
            .enumerate()
            .find(|(_, d)| d.name == p.dex)
            .ok_or_else(|| PipelineError::unknown(format!("pools[{}].dex", p.name), "dex", &p.dex))?;
        let meta = PoolMeta {
            id: p.name.clone(),
            address: p.address,
            token0: token_address(spec, &p.token0)?,
            token1: token_address(spec, &p.token1)?,
            gas: p.swap_gas(dex.kind),
            venue: venue as u16,
        };
        let state = match dex.kind {
            DexKind::UniswapV2 => Pool::V2 {
                reserve0: alloy::primitives::U256::ZERO,
                reserve1: alloy::primitives::U256::ZERO,
                fee_bps: p.fee(),
            },
            DexKind::UniswapV3 => {
                if spec.node_ws_url.is_none() {
                    return Err(PipelineError::V3NeedsWebsocket { pool: p.name.clone() });
                }
                let spacing = p.v3_tick_spacing().ok_or_else(|| PipelineError::TickSpacingUnknown {
                    pool: p.name.clone(),
                    fee: p.fee(),
                })?;
                // Empty until the node feed's first snapshot (which must agree on fee and spacing);
                // the executor does not route through a pool before its state is known.
                Pool::V3(
                    V3Pool::new(p.fee(), spacing, Q96, 0, 0, &[])
                        .map_err(|source| PipelineError::BadV3Pool { pool: p.name.clone(), source })?,
                )
            }
            // Unread until the chain poller's first snapshot.
            DexKind::BalancerWeighted => {
                Pool::Balancer(Box::new(BalancerPair::unread(p.flavour.unwrap_or_default())))
            }
            DexKind::UniswapV4 => {
                if spec.node_ws_url.is_none() {
                    return Err(PipelineError::V4NeedsWebsocket { pool: p.name.clone() });
                }
                empty_v4(spec, p)?
            }
            // Unread until the chain poller's first snapshot.
            DexKind::CurveStableswap => Pool::Curve(Box::new(CurvePair::unread())),
        };
        pools.push(
            PoolEntry::new(meta, state)
                .map_err(|source| PipelineError::BadPool { pool: p.name.clone(), source })?,
        );
        venues.push(PoolVenue {
            kind: dex.kind,
            router: p.swap_target(dex),
            pool_id: p.pool_id,
            via: dex.via,
            curve_indices: p.curve_indices.unwrap_or_default(),
        });
    }
    let native = match &spec.native_symbol {
        Some(s) => Some(token_address(spec, s)?),
        None => None,
    };
    Ok(Executor::new(
        spec.router.clone(),
        tokens,
        pools,
        venues,
        spec.accounts.clone(),
        spec.reputation.clone(),
        native,
    )
    .with_relay_builders(spec.relays.iter().filter_map(|r| Some((r.name.clone(), r.coinbase?))).collect()))
}
/// A V4 pool's key from its config entry (token0 is the lower address; validated by
/// `check-config`).
pub(crate) fn v4_key(
    spec: &PipelineSpec,
    p: &keel_router::config::PoolConfig,
) -> Result<keel_amm::v4::PoolKey, PipelineError> {
    let (a, b) = (token_address(spec, &p.token0)?, token_address(spec, &p.token1)?);
    Ok(p.v4_key(a.min(b), a.max(b)))
}

/// A V4 pool with no liquidity at price 1: its state until the node feed's first snapshot (the
/// executor does not route through a pool before its state is known). Refuses the key as the
/// pool model does (hooks that change swaps, bad fee or spacing).
pub(crate) fn empty_v4(
    spec: &PipelineSpec,
    p: &keel_router::config::PoolConfig,
) -> Result<Pool, PipelineError> {
    let key = v4_key(spec, p)?;
    let pool = keel_amm::v4::V4Pool::new(key, Q96, 0, 0, key.fee, 0, &[])
        .map_err(|source| PipelineError::BadV4Pool { pool: p.name.clone(), source })?;
    Ok(Pool::V4(Box::new(pool)))
}

/// What the chain poller reads each block for `spec`: V2 pools (without the websocket node feed),
/// each portfolio's balance of each of its tokens, each account's nonce, and the allowances read at
/// start.
pub fn poll_targets(spec: &PipelineSpec, engine: &Engine) -> Result<PollTargets, PipelineError> {
    poll_targets_on(spec, engine, None)
}

/// [`poll_targets`] for one chain: only the portfolios marked in `on_chain` (by engine id; `None`:
/// all) are read, with their engine ids.
pub fn poll_targets_on(
    spec: &PipelineSpec,
    engine: &Engine,
    on_chain: Option<&[bool]>,
) -> Result<PollTargets, PipelineError> {
    let mut t = PollTargets {
        native_reserve: alloy::primitives::U256::from(spec.router.gas_reserve_wei),
        ..PollTargets::default()
    };
    for (i, p) in spec.pools.iter().enumerate() {
        let kind = spec
            .dexes
            .iter()
            .find(|d| d.name == p.dex)
            .ok_or_else(|| PipelineError::unknown(format!("pools[{}].dex", p.name), "dex", &p.dex))?;
        match kind.kind {
            DexKind::BalancerWeighted => {
                let field = |f: &str| format!("pools[{}].{f}", p.name);
                let (a, b) = (token_address(spec, &p.token0)?, token_address(spec, &p.token1)?);
                t.balancer_pools.push(BalancerTarget {
                    pool: i as u32,
                    address: p.address,
                    vault: kind.router,
                    pool_id: p
                        .pool_id
                        .ok_or_else(|| PipelineError::unknown(field("pool_id"), "pool id", "none"))?,
                    token0: a.min(b),
                    token1: a.max(b),
                    flavour: p
                        .flavour
                        .ok_or_else(|| PipelineError::unknown(field("flavour"), "flavour", "none"))?,
                });
            }
            DexKind::CurveStableswap => {
                let (a, b) = (token_address(spec, &p.token0)?, token_address(spec, &p.token1)?);
                t.curve_pools.push(CurveTarget {
                    pool: i as u32,
                    address: p.address,
                    token0: a.min(b),
                    token1: a.max(b),
                });
            }
            // Without the node feed, V2 pools are read here (V3 and V4 pools need the node feed).
            DexKind::UniswapV2 | DexKind::UniswapV3 if spec.node_ws_url.is_none() => {
                t.v2_pools.push((i as u32, p.address));
            }
            DexKind::UniswapV2 | DexKind::UniswapV3 | DexKind::UniswapV4 => {}
        }
    }
    let mut accounts = Vec::new();
    for (i, p) in spec.portfolios.iter().enumerate() {
        if on_chain.is_some_and(|on| !on.get(i).copied().unwrap_or(false)) {
            continue;
        }
        for sym in p.targets.keys() {
            let tok = engine.token_id(sym).ok_or_else(|| {
                PipelineError::unknown(format!("portfolios[{}].targets", p.name), "token", sym)
            })?;
            let address = token_address(spec, sym)?;
            t.balances.push((PortfolioId(i as u32), p.account, tok, address));
            // Native ETH is paid as a call's value: no allowance to read.
            if address.is_zero() {
                continue;
            }
            for pool in &spec.pools {
                if pool.token0 == *sym || pool.token1 == *sym {
                    let dex = spec.dexes.iter().find(|d| d.name == pool.dex);
                    if let Some(dex) = dex {
                        let key = (p.account, address, pool.swap_target(dex));
                        // A Universal Router takes tokens through Permit2: its allowance is read there.
                        let list = if dex.kind == DexKind::UniswapV4 && dex.via == V4Via::UniversalRouter {
                            &mut t.permit2_allowances
                        } else {
                            &mut t.allowances
                        };
                        if !list.contains(&key) {
                            list.push(key);
                        }
                    }
                }
            }
        }
        if !accounts.contains(&p.account) {
            accounts.push(p.account);
        }
    }
    t.accounts = accounts;
    Ok(t)
}

/// The pools the node feed follows, each with its index in the configured pool list (under which
/// its updates are published): every Uniswap pool. Balancer and Curve pools are read by the chain
/// poller every block instead, so they are left out.
fn tracked_pools(spec: &PipelineSpec) -> Result<Vec<(u32, TrackedPool)>, PipelineError> {
    let mut tracked = Vec::with_capacity(spec.pools.len());
    for (i, p) in spec.pools.iter().enumerate() {
        let dex = spec
            .dexes
            .iter()
            .find(|d| d.name == p.dex)
            .ok_or_else(|| PipelineError::unknown(format!("pools[{}].dex", p.name), "dex", &p.dex))?;
        let (kind, tick_spacing, pool_key) = match dex.kind {
            DexKind::UniswapV2 => (PoolKind::V2, None, None),
            DexKind::UniswapV3 => (PoolKind::V3, p.v3_tick_spacing(), None),
            DexKind::UniswapV4 => {
                let key = v4_key(spec, p)?;
                (PoolKind::V4, Some(key.tick_spacing), Some(key))
            }
            DexKind::BalancerWeighted | DexKind::CurveStableswap => continue,
        };
        let pool = TrackedPool { address: p.address, kind, fee: p.fee(), tick_spacing, pool_key };
        tracked.push((i as u32, pool));
    }
    Ok(tracked)
}

/// The mempool decoder for the configured pools: every `[[dexes]]` router, then the
/// `[chain.mempool]` routers (the Universal Router, SwapRouter02).
///
/// A decoded hop names its pool by its index in `tracked` (the node feed's book), which the feed
/// publishes under the configured index.
fn mempool_decoder(
    spec: &PipelineSpec,
    tracked: &[(u32, TrackedPool)],
) -> Result<MempoolDecoder, PipelineError> {
    let mut pools = Vec::with_capacity(tracked.len());
    for (i, (configured, t)) in tracked.iter().enumerate() {
        let p = &spec.pools[*configured as usize];
        pools.push(MempoolPool {
            id: i as u32,
            address: p.address,
            kind: t.kind,
            token0: token_address(spec, &p.token0)?,
            token1: token_address(spec, &p.token1)?,
            fee: p.fee(),
            pool_key: t.pool_key,
        });
    }
    let mut routers: Vec<(alloy::primitives::Address, RouterKind)> = spec
        .dexes
        .iter()
        .filter_map(|d| {
            let kind = match d.kind {
                DexKind::UniswapV2 => RouterKind::V2Router02,
                DexKind::UniswapV3 => RouterKind::SwapRouter,
                DexKind::UniswapV4 => match d.via {
                    keel_router::config::V4Via::V4Router => RouterKind::V4Router,
                    keel_router::config::V4Via::UniversalRouter => RouterKind::UniversalRouter,
                },
                DexKind::BalancerWeighted | DexKind::CurveStableswap => return None,
            };
            Some((d.router, kind))
        })
        .collect();
    routers.extend(spec.mempool.routers.iter().map(|r| (r.address, r.kind)));
    Ok(MempoolDecoder::new(&pools, &routers))
}

/// The chain watches of `spec` over its tokens and pools.
fn chain_watches(spec: &PipelineSpec) -> Result<crate::watch::Watches, PipelineError> {
    use crate::watch::{WatchedPool, WatchedToken, Watches};
    let symbols: Vec<String> = spec.tokens.iter().map(|t| t.symbol.clone()).collect();
    spec.safety.watch.validate(&symbols)?;
    let index = |field: String, name: &str| {
        symbols.iter().position(|s| s == name).ok_or_else(|| PipelineError::Unknown {
            field,
            what: "token",
            name: name.to_string(),
        })
    };
    let mut pools = Vec::with_capacity(spec.pools.len());
    for p in &spec.pools {
        let t0 = index(format!("pools[{}].token0", p.name), &p.token0)?;
        let t1 = index(format!("pools[{}].token1", p.name), &p.token1)?;
        pools.push(WatchedPool { name: p.name.clone(), tokens: (t0, t1) });
    }
    let tokens =
        spec.tokens.iter().map(|t| WatchedToken { symbol: t.symbol.clone(), decimals: t.decimals }).collect();
    Ok(Watches::new(spec.safety.watch.clone(), tokens, pools))
}
