//! The execution stage as a synchronous state machine: rebalance intents and chain updates in,
//! actions out (post this bundle; report this outcome; fetch these receipts). An async driver
//! performs the actions, so the logic here is deterministic and tested without sockets.
//!
//! Life of an intent:
//! 1. route every leg against the exact pool state (split across pools, guards applied);
//! 2. for each pool fill: an `approve` first when the account's allowance for that DEX router is short,
//!    then the swap with `amountOutMin = quote × (1 − slippage)` and a deadline;
//! 3. reserve consecutive nonces, sign every transaction (EIP-1559, fees from the head's base fee),
//!    build the bundle for the next block and sign the request (`X-Flashbots-Signature`);
//! 4. on each new head, until the account's nonce shows the bundle landed: resubmit the *same*
//!    transactions (same nonces, so at most one version can ever land) for the next block; after
//!    `bundle_blocks` blocks give up, report `Expired` and release the nonces.
//!
//! Where each part lives: `intent` (steps 1–3, parking and the oracle guard), `risk` (the limits and
//! the 24-hour windows), `calldata` (swap calldata per venue), `settle` (step 4, landing and
//! receipts), `gas` (estimates learned from receipts), `adopt` (bundles taken back after a restart).

use std::collections::HashMap;

use alloy::primitives::{Address, B256, U256};
use keel_engine::event::{BlockHeader, Outcome};
use keel_engine::intent::RebalanceIntent;
use keel_engine::{Nanos, PortfolioId};

use crate::bundle::{BundleError, SignedBundleRequest};
use crate::config::{DexKind, RouterConfig};
use crate::oracle::{GuardError, Oracle};
use crate::plan;
use crate::signer::Signer;
use crate::tx::{CallRequest, NonceTracker, SignedTx, TxError};
use keel_amm::pool::PoolEntry;
pub use keel_engine::chain::ReceiptInfo;
use keel_engine::chain::{ChainUpdate, PoolSource};
use keel_engine::record::{JournalRecord, SignedBundle, TxRecord};

mod adopt;
mod approve;
#[cfg(test)]
mod balancer_tests;
mod batch;
#[cfg(test)]
mod batch_tests;
mod calldata;
#[cfg(test)]
mod curve_tests;
#[cfg(test)]
mod ur_tests;
pub use calldata::{
    SETTLE_ALL, SWAP_EXACT_IN, SWAP_EXACT_IN_SINGLE, TAKE_ALL, V4_SWAP, V4Route, universal_router_v4,
    universal_router_v4_swap, v4_exact_in_single, v4_execute_actions,
};
mod gas;
mod inclusion;
mod intent;
mod net;
mod risk;
mod scratch;
mod settle;
#[cfg(test)]
mod tests;

pub use approve::{PERMIT2_APPROVE_GAS, pays_through_permit2};
pub use batch::{MAX_BATCH_MEMBERS, NATIVE_TRANSFER_GAS, TRANSFER_GAS, TRANSFER_GAS_LIMIT};
pub use gas::{GAS_LIMIT_MARGIN_PCT, GAS_OBSERVATIONS};
pub use inclusion::{
    FixedHistogram, INCLUSION_BLOCK_BOUNDS, INCLUSION_SECOND_BOUNDS, InclusionStats, VERSION_BOUNDS,
};
pub use intent::{MAX_PARKED, PARK_HEADS};
use intent::{buy_per_wei_from_exchange, raw_price, scale_amount};
pub use risk::{DAILY_TOTAL_UNITS, DailyTotal, RiskLimitKind};
pub use settle::NONCE_READ_GRACE_BLOCKS;

/// A token as the executor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecToken {
    /// Symbol, for logs.
    pub symbol: String,
    /// ERC-20 address.
    pub address: Address,
    /// Decimals.
    pub decimals: u8,
}

/// How a pool is reached: its DEX's protocol and router contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolVenue {
    /// Protocol.
    pub kind: DexKind,
    /// Contract swaps are sent to (and the spender the account approves): Router02, SwapRouter,
    /// a V4 router, the Balancer Vault, or the Curve pool itself.
    pub router: Address,
    /// The Balancer pool's id in the Vault; `None` for other kinds.
    pub pool_id: Option<alloy::primitives::B256>,
    /// Uniswap V4: whether `router` is a `V4Router` or a Universal Router (which pays through
    /// Permit2, so the account's approvals differ); ignored for other kinds.
    pub via: crate::config::V4Via,
    /// Curve: the integer type of `exchange`'s coin indices; ignored for other kinds.
    pub curve_indices: crate::config::CurveIndices,
}

/// Why an intent could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No chain head yet (fees and deadlines need it).
    #[error("no chain head yet")]
    NoHead,
    /// No key for the portfolio's account.
    #[error("no signer for account {0}")]
    NoSigner(Address),
    /// A pool's state has not been read yet.
    #[error("state of pool `{0}` not known yet")]
    PoolNotReady(String),
    /// Routing failed.
    #[error("routing: {0}")]
    Route(#[from] plan::PlanError),
    /// Signing failed.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// Bundle building failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Pending swaps in the mempool would move a pool this rebalance trades too far
    /// (`defer_on_pending_volume`); the engine retries after its cooldown.
    #[error("deferred: pending swaps would move pool `{pool}` by {impact:.4} (limit {limit})")]
    Deferred {
        /// The pool.
        pool: String,
        /// Its pending impact.
        impact: f64,
        /// The configured limit.
        limit: f64,
    },
    /// A cost-aware rebalance is worth less than it costs at every size priced.
    #[error(transparent)]
    NotWorthIt(#[from] crate::cost::NotWorthIt),
    /// A risk limit refused the rebalance: which limit, the value it would reach, and the cap.
    #[error("risk limit: {kind} would be {value:.2}, above the cap {cap}")]
    RiskLimit {
        /// Which limit.
        kind: RiskLimitKind,
        /// The value the rebalance would bring it to (wei per gas for the gas price; the quote
        /// currency for notionals).
        value: f64,
        /// The configured cap, same unit.
        cap: f64,
    },
    /// The portfolio already has a rebalance in flight.
    #[error("portfolio {0:?} already has a rebalance in flight")]
    Busy(PortfolioId),
    /// The oracle guard refused a leg: a stale pool, or its spot, TWAP and reference disagree.
    #[error("oracle guard: {0}")]
    OracleGuard(#[from] GuardError),
    /// Nothing of the intent is left to trade once netted (every amount rounded to zero).
    #[error("intent {0} has nothing left to trade")]
    NothingToTrade(u64),
    /// A fill the pool's venue cannot carry: a Balancer pool without its pool id, or in a
    /// multi-hop path.
    #[error("pool `{0}`: its venue cannot carry this fill")]
    Unroutable(String),
}

/// What the relay named by `[router] presimulate` said of a bundle version (see
/// [`Executor::on_simulated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimVerdict {
    /// Nothing reverted: the version was sent to every relay.
    Passed,
    /// A transaction reverted or the relay refused the bundle (why): it was not sent.
    Failed(String),
    /// The answer came after its target block was built: it was neither sent nor judged, and the
    /// next retarget simulates it again.
    TooLate,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Post this request to every relay.
    Submit {
        /// The intent.
        intent: u64,
        /// The signed request.
        request: SignedBundleRequest,
        /// Receive time of the event that fired the intent (tick-to-wire start); 0 for resubmissions.
        event_recv_ns: Nanos,
        /// When the request was ready (signed and encoded).
        ready_ns: Nanos,
        /// With `[router] presimulate`: simulate this first, and send only if nothing reverts
        /// (then report [`Executor::on_simulated`]).
        simulate: Option<crate::bundle::SignedCallRequest>,
    },
    /// The bundle landed by `block` (the account's nonce moved past it): read these receipts and
    /// call [`Executor::on_receipts`].
    FetchReceipts {
        /// The intent.
        intent: u64,
        /// Transaction hashes of every version of the bundle (a fee re-sign keeps the nonces but
        /// changes the hashes, and any one version may have landed).
        hashes: Vec<B256>,
        /// Transactions in the bundle: reading stops once this many receipts are found.
        expected: usize,
    },
    /// Cancel the bundles sent under a batch's uuid (`eth_cancelBundle`) on every relay: the kill
    /// switch engaged while it was in flight. It is never resent; it settles when its nonces move
    /// (an earlier version landed anyway) or expires at its deadline.
    Cancel {
        /// The batch's first intent.
        intent: u64,
        /// The signed request.
        request: crate::bundle::SignedCancelRequest,
    },
    /// Report to the engine.
    Outcome(Outcome),
    /// Append to the journal. Always emitted before the action that relies on it (a bundle's
    /// `Signed` record precedes its `Submit`).
    Journal(JournalRecord),
}

/// A submitted, not yet settled rebalance.
#[derive(Debug, Clone)]
struct Inflight {
    intent: u64,
    portfolio: PortfolioId,
    account: Address,
    txs: Vec<SignedTx>,
    /// The calls `txs` sign (empty for an adopted bundle): a batch re-plan re-signs only on change.
    calls: Vec<CallRequest>,
    first_nonce: u64,
    last_nonce: u64,
    target_block: u64,
    deadline_block: u64,
    landed: bool,
    /// Landings (nonce reads past `last_nonce`) already found without a receipt of ours: the
    /// first may be a read of a block later replaced (a reorg, a relay's simulation).
    receiptless_landings: u8,
    uuid: String,
    /// Hashes of earlier versions (before a fee re-sign or a batch re-plan), any of which may be the
    /// one that lands.
    superseded: Vec<B256>,
    /// Every version has the same calls (only fees re-signed): receipts of an earlier version map to
    /// its calls by position.
    same_shape: bool,
    /// Signed versions so far minus one (0: the first signing).
    version: u32,
    /// When it was first sent (0: adopted after a restart, unknown).
    first_sent_ns: Nanos,
    /// The first block it targeted (0: adopted after a restart, unknown).
    first_target_block: u64,
    /// When the head that showed its nonces move arrived (0: not yet).
    landed_ns: Nanos,
    /// Cancelled after the kill switch engaged: never resent.
    cancelled: bool,
    /// The bundle hash of the version being simulated (`[router] presimulate`): not resent until
    /// the simulation passes.
    simulating: Option<B256>,
    /// Its last simulation was answered after its target block (`[router] presimulate`): it has
    /// never passed one, so the next retarget simulates it again before anything is sent.
    unsimulated: bool,
    /// Allowances this bundle's approvals grant: recorded optimistically, rolled back if it never lands.
    approvals: Vec<(Address, Address, Address)>,
    /// For each transaction: the pool it swaps through when it is a single-pool swap, and the V3
    /// ticks the plan's simulation crosses in it (its receipt then refines that pool's base gas
    /// estimate, the crossings taken out).
    swap_pool: Vec<Option<(usize, u32)>>,
}

/// Counters of the execution stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExecStats {
    /// Intents received.
    pub intents: u64,
    /// Intents refused before submission (by reason in the log).
    pub rejected: u64,
    /// Bundle requests handed to the relays (first submissions and retargets).
    pub submissions: u64,
    /// Bundle versions that reverted in simulation (or that the simulating relay refused), not sent.
    pub sim_reverted: u64,
    /// In-flight batches cancelled because the kill switch engaged (not resent after).
    pub cancelled: u64,
    /// Rebalances whose bundle landed.
    pub landed: u64,
    /// Rebalances abandoned after their last block.
    pub expired: u64,
    /// Rebalances postponed because of large pending swaps on a pool they trade.
    pub deferred: u64,
    /// Rebalances refused by a risk limit.
    pub risk_refused: u64,
    /// Rebalances refused by the oracle guard (per pool and reason: [`Executor::oracle`]).
    pub oracle_blocked: u64,
    /// Transactions signed.
    pub txs_signed: u64,
    /// Approvals included.
    pub approvals: u64,
    /// Gas used by landed bundles.
    pub gas_used: u64,
    /// Cost-aware rebalances refused because no size was worth its cost.
    pub not_worth_it: u64,
    /// Cost-aware rebalances sent at less than the full to-target size.
    pub resized: u64,
}

impl ExecStats {
    /// Adds `other`'s counters to these (the executors of several chains, summed for a report).
    pub fn absorb(&mut self, other: &ExecStats) {
        let ExecStats {
            intents,
            rejected,
            submissions,
            sim_reverted,
            cancelled,
            landed,
            expired,
            deferred,
            risk_refused,
            oracle_blocked,
            txs_signed,
            approvals,
            gas_used,
            not_worth_it,
            resized,
        } = other;
        self.intents = self.intents.saturating_add(*intents);
        self.rejected = self.rejected.saturating_add(*rejected);
        self.submissions = self.submissions.saturating_add(*submissions);
        self.sim_reverted = self.sim_reverted.saturating_add(*sim_reverted);
        self.cancelled = self.cancelled.saturating_add(*cancelled);
        self.landed = self.landed.saturating_add(*landed);
        self.expired = self.expired.saturating_add(*expired);
        self.deferred = self.deferred.saturating_add(*deferred);
        self.risk_refused = self.risk_refused.saturating_add(*risk_refused);
        self.oracle_blocked = self.oracle_blocked.saturating_add(*oracle_blocked);
        self.txs_signed = self.txs_signed.saturating_add(*txs_signed);
        self.approvals = self.approvals.saturating_add(*approvals);
        self.gas_used = self.gas_used.saturating_add(*gas_used);
        self.not_worth_it = self.not_worth_it.saturating_add(*not_worth_it);
        self.resized = self.resized.saturating_add(*resized);
    }
}

/// Most fills and per-rebalance costs kept for reports; the oldest are dropped beyond (a run of
/// weeks keeps bounded memory).
pub const MAX_REPORT_RECORDS: usize = 20_000;

/// What one rebalance costs (its current version), for reports.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IntentCost {
    /// Intent.
    pub intent: u64,
    /// Its portfolio.
    pub portfolio: PortfolioId,
    /// Its cost.
    pub cost: crate::cost::RebalanceCost,
}

/// A record of a landed or planned trade, for reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FillRecord {
    /// Intent.
    pub intent: u64,
    /// Pool name.
    pub pool: String,
    /// Token sold.
    pub sell: String,
    /// Token bought.
    pub buy: String,
    /// Raw amount in.
    pub amount_in: U256,
    /// Raw amount out quoted.
    pub amount_out: U256,
    /// Minimum accepted on chain.
    pub amount_out_min: U256,
}

/// One rebalance's notional, charged to the daily windows until it expires.
#[derive(Debug, Clone, Copy)]
struct Charge {
    /// When it leaves the 24-hour window.
    expires_ns: Nanos,
    /// Its portfolio (`None`: restored for a portfolio no longer configured).
    portfolio: Option<PortfolioId>,
    /// Its intent, to release it if its bundle never lands.
    intent: u64,
    /// The sum of its legs' notionals.
    notional: f64,
    /// The same in [`DAILY_TOTAL_UNITS`], as charged to the shared total.
    units: u64,
}

/// The execution state machine.
#[derive(Debug)]
pub struct Executor {
    cfg: RouterConfig,
    tokens: Vec<ExecToken>,
    pools: Vec<PoolEntry>,
    pool_ready: Vec<bool>,
    pending_impact: Vec<f64>,
    /// Cost of the rebalances submitted, per portfolio id (bounded by the number of portfolios).
    costs: Vec<crate::cost::RebalanceCost>,
    oracle: Oracle,
    gas_seen: Vec<Vec<u64>>,
    /// Each pool's configured (measured) swap gas: the floor of its gas limits, whatever is learned.
    configured_gas: Vec<u64>,
    /// Notional charged to the rolling 24-hour windows; released when a bundle expires unlanded.
    traded: Vec<Charge>,
    /// The `max_daily_notional_total` window, shared with the other chains' executors.
    daily_total: std::sync::Arc<DailyTotal>,
    venues: Vec<PoolVenue>,
    signers: HashMap<Address, Signer>,
    auth: Signer,
    nonces: NonceTracker,
    chain_nonce: HashMap<Address, u64>,
    /// The block of each account's latest nonce read: a bundle expires only once a read at or
    /// after its deadline block shows it unlanded (heads can arrive before that block's reads).
    nonce_read_block: HashMap<Address, u64>,
    allowances: HashMap<(Address, Address, Address), U256>,
    head: Option<BlockHeader>,
    inflight: Vec<Inflight>,
    /// The batch of the next block, while rebalances can still join it.
    open_batch: Option<batch::OpenBatch>,
    /// Intents waiting for chain state (see [`Executor::on_intent`]), with the heads waited.
    parked: Vec<(RebalanceIntent, u32)>,
    /// The latest intent, routed again (nothing committed) while idle to keep the path warm.
    rehearsal: Option<Box<RebalanceIntent>>,
    request_id: u64,
    native: Option<Address>,
    stats: ExecStats,
    fills: Vec<FillRecord>,
    /// Cost of each rebalance submitted (the last [`MAX_REPORT_RECORDS`]).
    intent_costs: Vec<IntentCost>,
    inclusion: InclusionStats,
    /// The kill switch is engaged: in-flight bundles are cancelled and not resent.
    halted: bool,
    /// The block a landed bundle's receipts came from, for its `Included` record.
    landing_block: Option<(u64, LandingBlock)>,
    /// The pools plans route on, re-copied only where they changed (see [`scratch`]).
    scratch: std::cell::RefCell<scratch::ScratchPools>,
    /// Relays by the coinbase of their builder's blocks (`[[relays]] coinbase`).
    relay_builders: Vec<(String, Address)>,
    /// The latest `now_ns` an input came with: the time outcomes are stamped with
    /// ([`Outcome::at_ns`](keel_engine::event::Outcome::at_ns); the stage may restamp them with
    /// the time of the input that settled them).
    now_ns: Nanos,
}

/// The block a bundle landed in, as the receipts' driver read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandingBlock {
    /// Its fee recipient.
    pub coinbase: Address,
    /// Its extra data (builders put their name there).
    pub extra_data: alloy::primitives::Bytes,
    /// Fees the bundle's transactions paid (gas used × effective gas price), wei.
    pub fee_wei: u128,
}

impl Executor {
    /// A new executor. `pools` and `venues` are parallel (config order); V2 pools start with unknown
    /// state until the first chain update.
    /// Each signer and `auth` gets a pool of `cfg.presign_pool` precomputed nonces (none for 0).
    pub fn new(
        cfg: RouterConfig,
        tokens: Vec<ExecToken>,
        pools: Vec<PoolEntry>,
        venues: Vec<PoolVenue>,
        signers: Vec<Signer>,
        auth: Signer,
        native: Option<Address>,
    ) -> Self {
        let n = pools.len();
        let configured_gas = pools.iter().map(|p| p.meta.gas).collect();
        let scratch = std::cell::RefCell::new(scratch::ScratchPools::new(&pools));
        let oracle = Oracle::new(
            pools.iter().map(|p| p.meta.id.clone()).collect(),
            cfg.twap_window_secs,
            cfg.max_pool_age_blocks,
        );
        let presign = cfg.presign_pool;
        Self {
            cfg,
            tokens,
            pools,
            pool_ready: vec![false; n],
            pending_impact: vec![0.0; n],
            costs: Vec::new(),
            oracle,
            gas_seen: vec![Vec::new(); n],
            configured_gas,
            traded: Vec::new(),
            daily_total: DailyTotal::shared(),
            venues,
            signers: signers.into_iter().map(|s| (s.address(), s.with_presign_pool(presign))).collect(),
            auth: auth.with_presign_pool(presign),
            nonces: NonceTracker::default(),
            chain_nonce: HashMap::new(),
            nonce_read_block: HashMap::new(),
            allowances: HashMap::new(),
            head: None,
            rehearsal: None,
            inflight: Vec::new(),
            open_batch: None,
            parked: Vec::new(),
            request_id: 0,
            native,
            stats: ExecStats::default(),
            fills: Vec::new(),
            intent_costs: Vec::new(),
            inclusion: InclusionStats::default(),
            halted: false,
            landing_block: None,
            relay_builders: Vec::new(),
            scratch,
            now_ns: 0,
        }
    }

    /// Names the relays whose builder's blocks have each coinbase, so that an inclusion record
    /// says which relay's builder included the bundle.
    pub fn with_relay_builders(mut self, relays: Vec<(String, Address)>) -> Self {
        self.relay_builders = relays;
        self
    }

    /// Counters.
    pub fn stats(&self) -> &ExecStats {
        &self.stats
    }

    /// Presign pool counters of each key that has a pool: the accounts', then the reputation key's.
    pub fn presign_stats(&self) -> Vec<(Address, crate::presign::PresignStats)> {
        let keys = self.signers.values().chain(std::iter::once(&self.auth));
        keys.filter_map(|s| Some((s.address(), s.presign_stats()?))).collect()
    }

    /// The fills planned and submitted so far (the last [`MAX_REPORT_RECORDS`]).
    pub fn fills(&self) -> &[FillRecord] {
        &self.fills[self.fills.len().saturating_sub(MAX_REPORT_RECORDS)..]
    }

    /// What each rebalance submitted so far costs (the last [`MAX_REPORT_RECORDS`]).
    pub fn intent_costs(&self) -> &[IntentCost] {
        &self.intent_costs[self.intent_costs.len().saturating_sub(MAX_REPORT_RECORDS)..]
    }

    /// What the rebalances submitted so far cost, per portfolio id (gas, pool fees, impact against
    /// the reference mid), from the same routes the transactions were built from; a rebalance that
    /// expires unlanded is taken back out.
    pub fn costs(&self) -> &[crate::cost::RebalanceCost] {
        &self.costs
    }

    /// Its execution settings.
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// Tells the executor whether the kill switch is engaged (checked at every head: an engaged
    /// switch cancels in-flight bundles and stops their resends).
    pub fn set_halted(&mut self, halted: bool) {
        self.halted = halted;
    }

    /// Whether pool `i`'s state has been read or streamed at least once.
    pub fn is_pool_ready(&self, i: usize) -> bool {
        self.pool_ready.get(i).copied().unwrap_or(false)
    }

    /// Pools with their current state.
    pub fn pools(&self) -> &[PoolEntry] {
        &self.pools
    }

    /// The oracle guard: per-pool TWAPs and its refusals by pool and reason.
    pub fn oracle(&self) -> &Oracle {
        &self.oracle
    }

    /// Rebalances submitted and not yet settled.
    pub fn inflight_count(&self) -> usize {
        self.inflight.len()
    }

    /// Applies a chain update; may settle or retarget in-flight bundles.
    pub fn on_chain(&mut self, update: ChainUpdate, now_ns: Nanos, out: &mut Vec<Action>) {
        self.now_ns = self.now_ns.max(now_ns);
        match update {
            ChainUpdate::Pool { update, source } => {
                let pool = update.pool as usize;
                if let Some(entry) = self.pools.get_mut(pool) {
                    self.scratch.get_mut().mark(pool);
                    match entry.apply(&update.change) {
                        Ok(()) => {
                            self.pool_ready[pool] = true;
                            if source == PoolSource::Poll {
                                self.oracle.on_pool_read(pool, update.block);
                            }
                        }
                        Err(e) => {
                            tracing::error!(pool = %entry.meta.id, error = %e, "pool update refused");
                        }
                    }
                }
            }
            ChainUpdate::PoolFeedHead { block } => self.oracle.on_pool_feed_head(block),
            ChainUpdate::PendingImpact { pool, impact } => {
                if let Some(slot) = self.pending_impact.get_mut(pool) {
                    *slot = impact;
                }
            }
            ChainUpdate::Allowance { owner, token, spender, amount } => {
                self.allowances.insert((owner, token, spender), amount);
            }
            ChainUpdate::Nonce { account, nonce, block } => {
                self.chain_nonce.insert(account, nonce);
                let read = self.nonce_read_block.entry(account).or_insert(0);
                *read = (*read).max(block);
                self.nonces.observe_chain(account, nonce);
                for f in self.inflight.iter_mut().filter(|f| f.account == account && !f.landed) {
                    if nonce > f.last_nonce {
                        f.landed = true;
                        f.landed_ns = now_ns;
                        let hashes =
                            f.txs.iter().map(|t| t.hash).chain(f.superseded.iter().copied()).collect();
                        out.push(Action::FetchReceipts { intent: f.intent, hashes, expected: f.txs.len() });
                    }
                }
            }
            ChainUpdate::Head(h) => {
                self.head = Some(h);
                self.expire_charges(now_ns);
                self.close_batch(h.number);
                let mids =
                    self.pools.iter().zip(&self.pool_ready).map(|(p, r)| r.then(|| p.pool().mid_price()));
                self.oracle.on_head(h.number, h.timestamp, mids);
                self.on_head(h, now_ns, out);
                if !self.parked.is_empty() {
                    self.retry_parked(now_ns, out);
                }
            }
        }
    }

    /// The journal record of in-flight `i`'s current version.
    fn signed_record(&self, i: usize, bundle_hash: B256) -> SignedBundle {
        let f = &self.inflight[i];
        SignedBundle {
            intent: f.intent,
            portfolio: f.portfolio.0,
            account: f.account,
            version: f.version,
            uuid: f.uuid.clone(),
            target_block: f.target_block,
            deadline_block: f.deadline_block,
            bundle_hash,
            txs: f.txs.iter().map(TxRecord::from).collect(),
        }
    }
}
