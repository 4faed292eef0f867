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

use std::collections::HashMap;

use alloy::primitives::{Address, B256, Bytes, U256, aliases::U24, aliases::U160};
use alloy::sol_types::SolCall;
use keel_engine::event::{BlockHeader, Outcome, OutcomeStatus};
use keel_engine::intent::RebalanceIntent;
use keel_engine::{Nanos, PortfolioId};

use crate::bundle::{BundleError, BundleOptions, SignedBundleRequest, build_send_bundle};
use crate::config::{DEFAULT_APPROVE_GAS, DexKind, RouterConfig};
use crate::oracle::{GuardError, Oracle};
use crate::plan::{self, GasPricing, OrderRoute};
use crate::signer::Signer;
use crate::tx::{CallRequest, Fees, NonceTracker, SignedTx, TxError, sign_call};
use keel_amm::abi::{IERC20, ISwapRouter, IUniswapV2Router02};
use keel_amm::pool::{Pool, PoolEntry};
pub use keel_engine::chain::ReceiptInfo;
use keel_engine::chain::{ChainUpdate, PoolSource};
use keel_engine::record::{JournalRecord, SignedBundle, TxRecord};

/// Gas limit headroom over the configured per-swap gas, percent.
pub const GAS_LIMIT_MARGIN_PCT: u64 = 30;

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
    /// Router contract swaps are sent to.
    pub router: Address,
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
}

/// The risk limits of `[router.limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskLimitKind {
    /// `max_gas_price_wei`: base fee + tip.
    GasPrice,
    /// `max_trade_notional`: one leg.
    TradeNotional,
    /// `max_daily_notional`: one portfolio over any 24 h.
    DailyNotional,
    /// `max_daily_notional_total`: all portfolios over any 24 h.
    DailyNotionalTotal,
}

impl RiskLimitKind {
    /// The config key, as metrics label it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::GasPrice => "max_gas_price_wei",
            Self::TradeNotional => "max_trade_notional",
            Self::DailyNotional => "max_daily_notional",
            Self::DailyNotionalTotal => "max_daily_notional_total",
        }
    }
}

impl std::fmt::Display for RiskLimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    last_nonce: u64,
    target_block: u64,
    deadline_block: u64,
    landed: bool,
    uuid: String,
    /// Hashes of earlier versions (before a fee re-sign), any of which may be the one that lands.
    superseded: Vec<B256>,
    /// Signed versions so far minus one (0: the first signing).
    version: u32,
    /// Allowances this bundle's approvals grant: recorded optimistically, rolled back if it never lands.
    approvals: Vec<(Address, Address, Address)>,
    /// For each transaction: the pool it swaps through when it is a single-pool swap (its receipt
    /// then refines that pool's gas estimate).
    swap_pool: Vec<Option<usize>>,
}

/// The transactions of one rebalance before signing.
#[derive(Debug)]
struct TxPlan {
    /// The calls, in order.
    calls: Vec<CallRequest>,
    /// Allowances the approvals among them grant.
    granted: Vec<(Address, Address, Address)>,
    /// Per call: the pool of a single-pool swap.
    swap_pool: Vec<Option<usize>>,
}

/// Heads a rebalance waits for missing chain state (first head, a pool's first read) before it is
/// refused.
pub const PARK_HEADS: u32 = 5;
/// Most rebalances waiting for chain state at once; beyond, they are refused at once.
pub const MAX_PARKED: usize = 64;

/// How many recent landed swaps a pool's gas estimate looks at.
pub const GAS_OBSERVATIONS: usize = 8;

/// Counters of the execution stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExecStats {
    /// Intents received.
    pub intents: u64,
    /// Intents refused before submission (by reason in the log).
    pub rejected: u64,
    /// Bundle requests handed to the relays (first submissions and retargets).
    pub submissions: u64,
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

/// The length of the rolling windows of the daily notional caps.
const DAY_NS: Nanos = 24 * 3600 * 1_000_000_000;

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
}

/// The execution state machine.
#[derive(Debug)]
pub struct Executor {
    cfg: RouterConfig,
    tokens: Vec<ExecToken>,
    pools: Vec<PoolEntry>,
    pool_ready: Vec<bool>,
    pending_impact: Vec<f64>,
    oracle: Oracle,
    gas_seen: Vec<Vec<u64>>,
    /// Notional charged to the rolling 24-hour windows; released when a bundle expires unlanded.
    traded: Vec<Charge>,
    venues: Vec<PoolVenue>,
    signers: HashMap<Address, Signer>,
    auth: Signer,
    nonces: NonceTracker,
    chain_nonce: HashMap<Address, u64>,
    allowances: HashMap<(Address, Address, Address), U256>,
    head: Option<BlockHeader>,
    inflight: Vec<Inflight>,
    /// Intents waiting for chain state (see [`Executor::on_intent`]), with the heads waited.
    parked: Vec<(RebalanceIntent, u32)>,
    request_id: u64,
    native: Option<Address>,
    stats: ExecStats,
    fills: Vec<FillRecord>,
}

impl Executor {
    /// A new executor. `pools` and `venues` are parallel (config order); V2 pools start with unknown
    /// state until the first chain update.
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
        let oracle = Oracle::new(
            pools.iter().map(|p| p.meta.id.clone()).collect(),
            cfg.twap_window_secs,
            cfg.max_pool_age_blocks,
        );
        Self {
            cfg,
            tokens,
            pools,
            pool_ready: vec![false; n],
            pending_impact: vec![0.0; n],
            oracle,
            gas_seen: vec![Vec::new(); n],
            traded: Vec::new(),
            venues,
            signers: signers.into_iter().map(|s| (s.address(), s)).collect(),
            auth,
            nonces: NonceTracker::default(),
            chain_nonce: HashMap::new(),
            allowances: HashMap::new(),
            head: None,
            inflight: Vec::new(),
            parked: Vec::new(),
            request_id: 0,
            native,
            stats: ExecStats::default(),
            fills: Vec::new(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &ExecStats {
        &self.stats
    }

    /// Every fill planned and submitted so far.
    pub fn fills(&self) -> &[FillRecord] {
        &self.fills
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
        match update {
            ChainUpdate::Pool { update, source } => {
                let pool = update.pool as usize;
                if let Some(entry) = self.pools.get_mut(pool) {
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
            ChainUpdate::Nonce { account, nonce, .. } => {
                self.chain_nonce.insert(account, nonce);
                self.nonces.observe_chain(account, nonce);
                for f in self.inflight.iter_mut().filter(|f| f.account == account && !f.landed) {
                    if nonce > f.last_nonce {
                        f.landed = true;
                        let hashes =
                            f.txs.iter().map(|t| t.hash).chain(f.superseded.iter().copied()).collect();
                        out.push(Action::FetchReceipts { intent: f.intent, hashes, expected: f.txs.len() });
                    }
                }
            }
            ChainUpdate::Head(h) => {
                self.head = Some(h);
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

    fn on_head(&mut self, h: BlockHeader, now_ns: Nanos, out: &mut Vec<Action>) {
        let mut i = 0;
        while i < self.inflight.len() {
            let f = &self.inflight[i];
            if f.landed {
                i += 1;
                continue;
            }
            if h.number >= f.deadline_block {
                let f = self.inflight.swap_remove(i);
                let chain = self.chain_nonce.get(&f.account).copied().unwrap_or(0);
                self.nonces.reset_to_chain(f.account, chain);
                for key in &f.approvals {
                    self.allowances.remove(key);
                }
                self.traded.retain(|t| t.intent != f.intent);
                self.stats.expired += 1;
                tracing::warn!(
                    intent = f.intent,
                    block = h.number,
                    "bundle not included before its deadline; abandoned"
                );
                out.push(Action::Journal(JournalRecord::Expired {
                    intent: f.intent,
                    block: h.number,
                    reason: format!("deadline block {} reached unlanded", f.deadline_block),
                }));
                out.push(Action::Outcome(Outcome {
                    intent: f.intent,
                    portfolio: f.portfolio,
                    status: OutcomeStatus::Expired,
                }));
                continue;
            }
            let target = h.number + 1;
            if target > f.target_block {
                let version = self.inflight[i].version;
                match self.retarget(i, target, h.base_fee) {
                    Ok(request) => {
                        if self.inflight[i].version != version {
                            out.push(Action::Journal(JournalRecord::Signed(Box::new(
                                self.signed_record(i, request.bundle_hash),
                            ))));
                        }
                        self.stats.submissions += 1;
                        out.push(Action::Submit {
                            intent: self.inflight[i].intent,
                            request,
                            event_recv_ns: 0,
                            ready_ns: now_ns,
                        });
                    }
                    Err(e) => tracing::error!(error = %e, "retargeting a bundle failed"),
                }
            }
            i += 1;
        }
    }

    /// Rebuilds the request of in-flight `i` for `target`: the same transactions, re-signed with the
    /// same nonces only when their fee cap no longer covers the next base fee.
    fn retarget(&mut self, i: usize, target: u64, base_fee: u128) -> Result<SignedBundleRequest, ExecError> {
        let next_base = base_fee + base_fee / 8;
        let needs_resign = self.inflight[i].txs.iter().any(|t| t.fees.max_fee_per_gas < next_base);
        if needs_resign {
            let fees = Fees::from_base_fee(base_fee, self.cfg.base_fee_multiplier, self.cfg.priority_fee_wei);
            let account = self.inflight[i].account;
            let signer = self.signers.get(&account).ok_or(ExecError::NoSigner(account))?;
            let mut resigned = Vec::with_capacity(self.inflight[i].txs.len());
            for t in &self.inflight[i].txs {
                let call = decode_call(t)?;
                resigned.push(sign_call(signer, self.cfg.chain_id, t.nonce, &call, fees)?);
            }
            self.stats.txs_signed += resigned.len() as u64;
            let old = std::mem::replace(&mut self.inflight[i].txs, resigned);
            self.inflight[i].superseded.extend(old.iter().map(|t| t.hash));
            self.inflight[i].version += 1;
        }
        let f = &mut self.inflight[i];
        f.target_block = target;
        self.request_id += 1;
        let opts = BundleOptions { replacement_uuid: Some(f.uuid.clone()), ..Default::default() };
        Ok(build_send_bundle(&f.txs, target, &opts, &self.auth, self.request_id)?)
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

    /// Takes back a rebalance a previous run left in flight (see `keel_journal::recover`): its
    /// journaled transactions are resent unchanged — same nonces, same `replacementUuid` — from the
    /// next head until its deadline, and its nonces stay reserved. `earlier` holds the hashes of its
    /// other versions; `chain_nonce` is the account's confirmed nonce.
    pub fn adopt(
        &mut self,
        bundle: &SignedBundle,
        earlier: &[B256],
        chain_nonce: u64,
    ) -> Result<(), ExecError> {
        let txs = bundle
            .txs
            .iter()
            .map(|t| signed_from_record(t, bundle.account))
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (txs.first().map(|t| t.nonce), txs.last().map(|t| t.nonce)) else {
            return Err(ExecError::Tx(TxError::Sign(alloy::signers::Error::other(
                "adopted bundle has no transactions",
            ))));
        };
        if first < chain_nonce {
            return Err(ExecError::Tx(TxError::Sign(alloy::signers::Error::other(
                "adopted bundle's nonces are already used on chain",
            ))));
        }
        self.chain_nonce.insert(bundle.account, chain_nonce);
        self.nonces.observe_chain(bundle.account, chain_nonce);
        if self.nonces.peek(bundle.account).unwrap_or(0) <= last {
            self.nonces.reset_to_chain(bundle.account, last + 1);
        }
        let current: Vec<B256> = txs.iter().map(|t| t.hash).collect();
        self.inflight.push(Inflight {
            intent: bundle.intent,
            portfolio: PortfolioId(bundle.portfolio),
            account: bundle.account,
            txs,
            last_nonce: last,
            // resent for the next head's block
            target_block: 0,
            deadline_block: bundle.deadline_block,
            landed: false,
            uuid: bundle.uuid.clone(),
            superseded: earlier.iter().filter(|h| !current.contains(h)).copied().collect(),
            version: bundle.version,
            approvals: Vec::new(),
            swap_pool: Vec::new(),
        });
        Ok(())
    }

    /// Charges the daily windows with a rebalance of an earlier run that landed or may still land,
    /// decided `age_ns` before `now_ns` (recovery reads them from the journal): a restart does not
    /// reset `max_daily_notional` and `max_daily_notional_total`. `portfolio` is `None` when the
    /// portfolio is no longer configured (it then counts towards the total cap only). A charge
    /// older than a day is ignored.
    pub fn restore_charge(
        &mut self,
        portfolio: Option<PortfolioId>,
        intent: u64,
        notional: f64,
        age_ns: Nanos,
        now_ns: Nanos,
    ) {
        if age_ns >= DAY_NS || !notional.is_finite() || notional <= 0.0 {
            return;
        }
        self.traded.retain(|t| t.intent != intent);
        self.traded.push(Charge {
            expires_ns: now_ns.saturating_add(DAY_NS - age_ns),
            portfolio,
            intent,
            notional,
        });
    }

    /// Receipts of a landed bundle: report the outcome.
    pub fn on_receipts(&mut self, intent: u64, receipts: &[ReceiptInfo], out: &mut Vec<Action>) {
        let Some(i) = self.inflight.iter().position(|f| f.intent == intent) else { return };
        let f = self.inflight.swap_remove(i);
        if receipts.is_empty() {
            // The nonces moved, but none of this bundle's transactions has a receipt: something
            // else used them. The rebalance did not happen.
            self.traded.retain(|t| t.intent != f.intent);
            for key in &f.approvals {
                self.allowances.remove(key);
            }
            self.stats.expired += 1;
            tracing::error!(intent, "the account's nonces were used by other transactions; rebalance void");
            out.push(Action::Journal(JournalRecord::Expired {
                intent,
                block: self.head.map_or(0, |h| h.number),
                reason: "nonces used by other transactions; none of the bundle's landed".into(),
            }));
            out.push(Action::Outcome(Outcome {
                intent,
                portfolio: f.portfolio,
                status: OutcomeStatus::Expired,
            }));
            return;
        }
        self.learn_gas(&f, receipts);
        let gas_used: u64 = receipts.iter().map(|r| r.gas_used).sum();
        let block = receipts.iter().map(|r| r.block).max().unwrap_or(f.target_block);
        if receipts.iter().any(|r| !r.success) {
            tracing::warn!(intent, "a transaction of a landed bundle reverted");
        }
        self.stats.landed += 1;
        self.stats.gas_used += gas_used;
        out.push(Action::Journal(JournalRecord::Landed {
            intent,
            block,
            gas_used,
            reverted: receipts.iter().any(|r| !r.success),
        }));
        out.push(Action::Outcome(Outcome {
            intent,
            portfolio: f.portfolio,
            status: OutcomeStatus::Landed { block, gas_used },
        }));
    }

    /// The risk limits of `[router.limits]`; on success the intent's notional is charged to the
    /// rolling 24-hour windows (and released again if its bundle expires unlanded).
    fn check_limits(
        &mut self,
        intent: &RebalanceIntent,
        head: &BlockHeader,
        now_ns: Nanos,
    ) -> Result<(), ExecError> {
        let limits = &self.cfg.limits;
        if let Some(cap) = limits.max_gas_price_wei {
            let price = head.base_fee.saturating_add(self.cfg.priority_fee_wei);
            if price > cap {
                return Err(ExecError::RiskLimit {
                    kind: RiskLimitKind::GasPrice,
                    value: price as f64,
                    cap: cap as f64,
                });
            }
        }
        if let Some(cap) = limits.max_trade_notional
            && let Some(leg) = intent.legs.iter().find(|l| l.notional > cap)
        {
            return Err(ExecError::RiskLimit {
                kind: RiskLimitKind::TradeNotional,
                value: leg.notional,
                cap,
            });
        }
        self.traded.retain(|t| t.expires_ns > now_ns);
        let notional: f64 = intent.legs.iter().map(|l| l.notional).sum();
        if let Some(cap) = limits.max_daily_notional {
            let used: f64 = self
                .traded
                .iter()
                .filter(|t| t.portfolio == Some(intent.portfolio))
                .map(|t| t.notional)
                .sum();
            if used + notional > cap {
                return Err(ExecError::RiskLimit {
                    kind: RiskLimitKind::DailyNotional,
                    value: used + notional,
                    cap,
                });
            }
        }
        if let Some(cap) = limits.max_daily_notional_total {
            let used: f64 = self.traded.iter().map(|t| t.notional).sum();
            if used + notional > cap {
                return Err(ExecError::RiskLimit {
                    kind: RiskLimitKind::DailyNotionalTotal,
                    value: used + notional,
                    cap,
                });
            }
        }
        self.traded.push(Charge {
            expires_ns: now_ns.saturating_add(DAY_NS),
            portfolio: Some(intent.portfolio),
            intent: intent.id,
            notional,
        });
        Ok(())
    }

    /// Refines each pool's swap-gas estimate from the receipts of a landed bundle: the estimate is the
    /// largest of the last [`GAS_OBSERVATIONS`] successful single-pool swaps, and it prices gas in the
    /// split optimiser and sets gas limits (× [`GAS_LIMIT_MARGIN_PCT`]) from then on. Until a pool
    /// has landed a swap, its configured (measured) default is used. No node round trip is added to
    /// the tick-to-wire path.
    fn learn_gas(&mut self, f: &Inflight, receipts: &[ReceiptInfo]) {
        let n = f.txs.len().max(1);
        for r in receipts.iter().filter(|r| r.success && r.gas_used > 0) {
            let index = f
                .txs
                .iter()
                .position(|t| t.hash == r.hash)
                .or_else(|| f.superseded.iter().position(|h| *h == r.hash).map(|k| k % n));
            let Some(Some(pool)) = index.and_then(|k| f.swap_pool.get(k)) else { continue };
            let seen = &mut self.gas_seen[*pool];
            if seen.len() == GAS_OBSERVATIONS {
                seen.remove(0);
            }
            seen.push(r.gas_used);
            if let Some(&estimate) = seen.iter().max() {
                self.pools[*pool].meta.gas = estimate;
            }
        }
    }

    /// The current swap-gas estimate of a pool (see [`Executor::learn_gas`]).
    pub fn gas_estimate(&self, pool: usize) -> Option<u64> {
        self.pools.get(pool).map(|p| p.meta.gas)
    }

    /// Plans, signs and submits an intent. Failures are reported as a `Rejected` outcome (and logged),
    /// so the engine's cooldown applies.
    ///
    /// An intent that arrives before the first head or before the state of a pool it needs has been
    /// read (right after a start) is parked and retried at each head, for up to
    /// [`PARK_HEADS`] heads, instead of being refused at once.
    pub fn on_intent(&mut self, intent: &RebalanceIntent, now_ns: Nanos, out: &mut Vec<Action>) {
        self.stats.intents += 1;
        out.push(Action::Journal(JournalRecord::Decided(Box::new(intent.clone()))));
        let result = self.execute(intent, now_ns);
        if matches!(result, Err(ExecError::NoHead | ExecError::PoolNotReady(_)))
            && self.parked.len() < MAX_PARKED
        {
            tracing::info!(intent = intent.id, "chain state not read yet: rebalance waits for the next head");
            self.parked.push((intent.clone(), 0));
            return;
        }
        self.settle_attempt(intent, result, out);
    }

    /// Retries parked intents after a head (pool updates of a block arrive before its head).
    fn retry_parked(&mut self, now_ns: Nanos, out: &mut Vec<Action>) {
        for (intent, waited) in std::mem::take(&mut self.parked) {
            let result = self.execute(&intent, now_ns);
            if matches!(result, Err(ExecError::NoHead | ExecError::PoolNotReady(_)))
                && waited + 1 < PARK_HEADS
            {
                self.parked.push((intent, waited + 1));
                continue;
            }
            self.settle_attempt(&intent, result, out);
        }
    }

    /// Emits what an execution attempt produced: the signed record and the submission, or the
    /// refusal with its reason and the `Rejected` outcome.
    fn settle_attempt(
        &mut self,
        intent: &RebalanceIntent,
        result: Result<Action, ExecError>,
        out: &mut Vec<Action>,
    ) {
        match result {
            Ok(action) => {
                self.stats.submissions += 1;
                if let Action::Submit { request, .. } = &action
                    && let Some(i) = self.inflight.iter().rposition(|f| f.intent == intent.id)
                {
                    out.push(Action::Journal(JournalRecord::Signed(Box::new(
                        self.signed_record(i, request.bundle_hash),
                    ))));
                }
                out.push(action);
            }
            Err(e) => {
                if matches!(e, ExecError::Deferred { .. }) {
                    self.stats.deferred += 1;
                } else if matches!(e, ExecError::RiskLimit { .. }) {
                    self.stats.risk_refused += 1;
                } else if matches!(e, ExecError::OracleGuard(_)) {
                    self.stats.oracle_blocked += 1;
                } else {
                    self.stats.rejected += 1;
                }
                // Anything charged to the daily windows before the refusal is released.
                self.traded.retain(|t| t.intent != intent.id);
                tracing::warn!(intent = intent.id, portfolio = intent.portfolio.0, error = %e, "rebalance not submitted");
                out.push(Action::Journal(JournalRecord::Refused {
                    intent: intent.id,
                    reason: e.to_string(),
                }));
                out.push(Action::Outcome(Outcome {
                    intent: intent.id,
                    portfolio: intent.portfolio,
                    status: OutcomeStatus::Rejected,
                }));
            }
        }
    }

    fn execute(&mut self, intent: &RebalanceIntent, now_ns: Nanos) -> Result<Action, ExecError> {
        let head = self.head.ok_or(ExecError::NoHead)?;
        if self.inflight.iter().any(|f| f.portfolio == intent.portfolio) {
            return Err(ExecError::Busy(intent.portfolio));
        }
        let account = intent.account;
        if !self.signers.contains_key(&account) {
            return Err(ExecError::NoSigner(account));
        }
        if let Some(i) = self.pool_ready.iter().position(|r| !r) {
            return Err(ExecError::PoolNotReady(self.pools[i].meta.id.clone()));
        }
        // Oracle guard, before the risk limits charge the notional: every pool trading a leg's pair
        // directly must be fresh and agree with the reference and with its own short TWAP.
        for leg in &intent.legs {
            let (sell, buy) = (&self.tokens[leg.sell.idx()], &self.tokens[leg.buy.idx()]);
            let reference = raw_price(leg.reference_price, sell, buy);
            let bound = self.cfg.max_pool_deviation;
            if let Err(e) = self.oracle.check_leg(&self.pools, sell.address, buy.address, reference, bound) {
                tracing::warn!(
                    intent = intent.id,
                    portfolio = intent.portfolio.0,
                    pool = e.pool(),
                    reason = e.reason(),
                    sell = %sell.symbol,
                    buy = %buy.symbol,
                    detail = %e,
                    "oracle guard: rebalance blocked"
                );
                return Err(e.into());
            }
        }
        self.check_limits(intent, &head, now_ns)?;
        if let Some(limit) = self.cfg.defer_on_pending_volume {
            for leg in &intent.legs {
                let (sell, buy) = (self.tokens[leg.sell.idx()].address, self.tokens[leg.buy.idx()].address);
                for (p, &impact) in self.pools.iter().zip(&self.pending_impact) {
                    if impact > limit && p.other(sell) == Some(buy) {
                        return Err(ExecError::Deferred { pool: p.meta.id.clone(), impact, limit });
                    }
                }
            }
        }
        // Route every leg on a scratch copy of the pools, in order, so legs through the same pool
        // see each other's effect.
        let gas = GasPricing {
            gas_price_wei: Fees::from_base_fee(head.base_fee, 1, self.cfg.priority_fee_wei).max_fee_per_gas,
        };
        let mut scratch = self.pools.clone();
        let mut routes: Vec<(usize, OrderRoute)> = Vec::with_capacity(intent.legs.len());
        for (k, leg) in intent.legs.iter().enumerate() {
            let sell = self.tokens[leg.sell.idx()].address;
            let buy = self.tokens[leg.buy.idx()].address;
            let native_per_buy = self.native_price_in(buy, &scratch);
            let route = plan::route_exact_in(
                &mut scratch,
                sell,
                buy,
                leg.amount_in,
                &gas,
                native_per_buy,
                Some(raw_price(
                    leg.reference_price,
                    &self.tokens[leg.sell.idx()],
                    &self.tokens[leg.buy.idx()],
                )),
                self.cfg.max_pool_deviation,
                self.cfg.slippage_bps,
            )?;
            routes.push((k, route));
        }
        // Transactions.
        let deadline = U256::from(head.timestamp + self.cfg.swap_deadline_secs);
        let mut calls: Vec<CallRequest> = Vec::new();
        let mut swap_pool: Vec<Option<usize>> = Vec::new();
        let mut granted: Vec<(Address, Address, Address)> = Vec::new();
        for (k, route) in &routes {
            let leg = &intent.legs[*k];
            let sell = self.tokens[leg.sell.idx()].address;
            for fill in &route.fills {
                let venue = self.venues[fill.pools[0]];
                let key = (account, sell, venue.router);
                let allowed = self.allowances.get(&key).copied().unwrap_or(U256::ZERO);
                if allowed < fill.amount_in {
                    calls.push(CallRequest {
                        to: sell,
                        input: IERC20::approveCall { spender: venue.router, amount: U256::MAX }
                            .abi_encode()
                            .into(),
                        gas_limit: DEFAULT_APPROVE_GAS,
                        value: U256::ZERO,
                    });
                    self.allowances.insert(key, U256::MAX);
                    granted.push(key);
                    swap_pool.push(None);
                }
                let gas_limit: u64 = fill.pools.iter().map(|&p| self.pools[p].meta.gas).sum::<u64>()
                    * (100 + GAS_LIMIT_MARGIN_PCT)
                    / 100;
                let input = self.swap_calldata(fill, account, deadline)?;
                calls.push(CallRequest { to: venue.router, input, gas_limit, value: U256::ZERO });
                swap_pool.push((fill.pools.len() == 1).then(|| fill.pools[0]));
                self.fills.push(FillRecord {
                    intent: intent.id,
                    pool: fill
                        .pools
                        .iter()
                        .map(|&p| self.pools[p].meta.id.as_str())
                        .collect::<Vec<_>>()
                        .join(">"),
                    sell: self.tokens[leg.sell.idx()].symbol.clone(),
                    buy: self.tokens[leg.buy.idx()].symbol.clone(),
                    amount_in: fill.amount_in,
                    amount_out: fill.amount_out,
                    amount_out_min: fill.amount_out_min,
                });
            }
        }
        let plan = TxPlan { calls, granted, swap_pool };
        match self.sign_and_bundle(intent, head, account, &plan, now_ns) {
            Ok(action) => Ok(action),
            Err(e) => {
                for key in &plan.granted {
                    self.allowances.remove(key);
                }
                Err(e)
            }
        }
    }

    fn sign_and_bundle(
        &mut self,
        intent: &RebalanceIntent,
        head: BlockHeader,
        account: Address,
        plan: &TxPlan,
        now_ns: Nanos,
    ) -> Result<Action, ExecError> {
        let TxPlan { calls, granted, swap_pool } = plan;
        let signer = self.signers.get(&account).ok_or(ExecError::NoSigner(account))?;
        let first = self.nonces.reserve(account, calls.len() as u64)?;
        let fees =
            Fees::from_base_fee(head.base_fee, self.cfg.base_fee_multiplier, self.cfg.priority_fee_wei);
        let mut txs = Vec::with_capacity(calls.len());
        for (j, call) in calls.iter().enumerate() {
            match sign_call(signer, self.cfg.chain_id, first + j as u64, call, fees) {
                Ok(t) => txs.push(t),
                Err(e) => {
                    let chain = self.chain_nonce.get(&account).copied().unwrap_or(first);
                    self.nonces.reset_to_chain(account, chain);
                    return Err(e.into());
                }
            }
        }
        self.stats.txs_signed += txs.len() as u64;
        self.stats.approvals += granted.len() as u64;
        let target = head.number + 1;
        let uuid = format!("keel-{}-{}", intent.portfolio.0, intent.id);
        self.request_id += 1;
        let opts = BundleOptions { replacement_uuid: Some(uuid.clone()), ..Default::default() };
        let request = match build_send_bundle(&txs, target, &opts, &self.auth, self.request_id) {
            Ok(r) => r,
            Err(e) => {
                // Nothing was sent: release the reserved nonces, or every later bundle would have a gap.
                let chain = self.chain_nonce.get(&account).copied().unwrap_or(first);
                self.nonces.reset_to_chain(account, chain);
                return Err(e.into());
            }
        };
        let last_nonce = first + txs.len() as u64 - 1;
        self.inflight.push(Inflight {
            intent: intent.id,
            portfolio: intent.portfolio,
            account,
            txs,
            last_nonce,
            target_block: target,
            deadline_block: head.number + self.cfg.bundle_blocks,
            landed: false,
            uuid,
            superseded: Vec::new(),
            version: 0,
            approvals: granted.clone(),
            swap_pool: swap_pool.clone(),
        });
        Ok(Action::Submit {
            intent: intent.id,
            request,
            event_recv_ns: intent.event_recv_ns,
            ready_ns: now_ns,
        })
    }

    fn swap_calldata(&self, fill: &plan::Fill, account: Address, deadline: U256) -> Result<Bytes, ExecError> {
        let venue = self.venues[fill.pools[0]];
        let input = match venue.kind {
            DexKind::UniswapV2 => IUniswapV2Router02::swapExactTokensForTokensCall {
                amountIn: fill.amount_in,
                amountOutMin: fill.amount_out_min,
                path: fill.path.clone(),
                to: account,
                deadline,
            }
            .abi_encode(),
            DexKind::UniswapV3 => {
                if fill.pools.len() == 1 {
                    let fee = match self.pools[fill.pools[0]].pool() {
                        Pool::V3(p) => p.fee,
                        Pool::V2 { .. } => 0,
                    };
                    ISwapRouter::exactInputSingleCall {
                        params: ISwapRouter::ExactInputSingleParams {
                            tokenIn: fill.path[0],
                            tokenOut: fill.path[1],
                            fee: U24::from(fee),
                            recipient: account,
                            deadline,
                            amountIn: fill.amount_in,
                            amountOutMinimum: fill.amount_out_min,
                            sqrtPriceLimitX96: U160::ZERO,
                        },
                    }
                    .abi_encode()
                } else {
                    // Multi-hop V3 path: token (20 bytes) | fee (3 bytes) | token | ...
                    let mut path = Vec::with_capacity(20 + 23 * fill.pools.len());
                    path.extend_from_slice(fill.path[0].as_slice());
                    for (h, &p) in fill.pools.iter().enumerate() {
                        let fee = match self.pools[p].pool() {
                            Pool::V3(v) => v.fee,
                            Pool::V2 { .. } => 0,
                        };
                        path.extend_from_slice(&fee.to_be_bytes()[1..]);
                        path.extend_from_slice(fill.path[h + 1].as_slice());
                    }
                    ISwapRouter::exactInputCall {
                        params: ISwapRouter::ExactInputParams {
                            path: path.into(),
                            recipient: account,
                            deadline,
                            amountIn: fill.amount_in,
                            amountOutMinimum: fill.amount_out_min,
                        },
                    }
                    .abi_encode()
                }
            }
        };
        Ok(input.into())
    }

    /// Raw `buy` units per wei of the native token, from a ready pool pairing the wrapped native
    /// token with `buy` (the split optimiser prices gas with it); `None` when no such pool is known.
    fn native_price_in(&self, buy: Address, pools: &[PoolEntry]) -> Option<f64> {
        let native = self.native?;
        if buy == native {
            return Some(1.0);
        }
        pools
            .iter()
            .zip(&self.pool_ready)
            .filter(|(p, ready)| **ready && p.other(native) == Some(buy))
            .find_map(|(p, _)| p.mid_price_of(native))
    }
}

/// A price in whole `buy` per whole `sell` as raw units of `buy` per raw unit of `sell`.
fn raw_price(whole: f64, sell: &ExecToken, buy: &ExecToken) -> f64 {
    whole * 10f64.powi(buy.decimals as i32 - sell.decimals as i32)
}

/// A journaled transaction back as a [`SignedTx`] (nonce, gas and fees read from its bytes).
fn signed_from_record(t: &TxRecord, from: Address) -> Result<SignedTx, ExecError> {
    use alloy::consensus::{Transaction, TxEnvelope};
    use alloy::eips::eip2718::Decodable2718;
    let env = TxEnvelope::decode_2718(&mut t.raw.as_ref())
        .map_err(|e| ExecError::Tx(TxError::Sign(alloy::signers::Error::other(e.to_string()))))?;
    if *env.tx_hash() != t.hash || env.nonce() != t.nonce {
        return Err(ExecError::Tx(TxError::Sign(alloy::signers::Error::other(
            "journaled transaction bytes do not match its hash or nonce",
        ))));
    }
    Ok(SignedTx {
        raw: t.raw.clone(),
        hash: t.hash,
        from,
        nonce: t.nonce,
        gas_limit: env.gas_limit(),
        fees: Fees {
            max_fee_per_gas: env.max_fee_per_gas(),
            max_priority_fee_per_gas: env.max_priority_fee_per_gas().unwrap_or(0),
        },
    })
}

/// Recovers the call of a signed transaction (for re-signing with new fees and the same nonce).
fn decode_call(t: &SignedTx) -> Result<CallRequest, ExecError> {
    use alloy::consensus::{Transaction, TxEnvelope};
    use alloy::eips::eip2718::Decodable2718;
    let env = TxEnvelope::decode_2718(&mut t.raw.as_ref())
        .map_err(|e| ExecError::Tx(TxError::Sign(alloy::signers::Error::other(e.to_string()))))?;
    Ok(CallRequest {
        to: env.to().unwrap_or_default(),
        input: env.input().clone(),
        gas_limit: env.gas_limit(),
        value: env.value(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouterConfig;
    use keel_amm::pool::PoolMeta;
    use keel_engine::intent::{Leg, TriggerReason};
    use keel_engine::{PortfolioId, TokenId};

    const USDC: Address = Address::repeat_byte(0x10);
    const WETH: Address = Address::repeat_byte(0x20);
    const ROUTER: Address = Address::repeat_byte(0x77);

    fn executor() -> (Executor, Address) {
        let cfg = RouterConfig {
            chain_id: 31337,
            slippage_bps: 50,
            swap_deadline_secs: 60,
            bundle_blocks: 2,
            priority_fee_wei: 1,
            base_fee_multiplier: 2,
            max_pool_deviation: 0.05,
            twap_window_secs: crate::config::DEFAULT_TWAP_WINDOW_SECS,
            max_pool_age_blocks: crate::config::DEFAULT_MAX_POOL_AGE_BLOCKS,
            defer_on_pending_volume: None,
            limits: Default::default(),
        };
        let tokens = vec![
            ExecToken { symbol: "USDC".into(), address: USDC, decimals: 6 },
            ExecToken { symbol: "WETH".into(), address: WETH, decimals: 18 },
        ];
        let meta = PoolMeta {
            id: "p".into(),
            address: Address::repeat_byte(0x50),
            token0: USDC,
            token1: WETH,
            gas: 100_000,
            venue: 0,
        };
        let pool = PoolEntry::new(meta, Pool::V2 { reserve0: U256::ZERO, reserve1: U256::ZERO, fee_bps: 30 })
            .unwrap();
        let signer = Signer::dev(1).unwrap();
        let account = signer.address();
        let venue = PoolVenue { kind: DexKind::UniswapV2, router: ROUTER };
        let exec = Executor::new(
            cfg,
            tokens,
            vec![pool],
            vec![venue],
            vec![signer],
            Signer::dev(9).unwrap(),
            Some(WETH),
        );
        (exec, account)
    }

    /// Pool state (3000 USDC per WETH, deep), the account's nonce and a head, as the node feed gives them.
    fn ready(exec: &mut Executor, me: Address, nonce: u64) {
        let mut out = Vec::new();
        exec.on_chain(reserves(3_000_000, 1), 0, &mut out);
        exec.on_chain(ChainUpdate::Nonce { account: me, nonce, block: 1 }, 0, &mut out);
        exec.on_chain(head(1), 0, &mut out);
        assert!(out.is_empty());
    }

    fn head(n: u64) -> ChainUpdate {
        ChainUpdate::Head(BlockHeader { number: n, timestamp: 1_000 + n, base_fee: 10, recv_ns: 0 })
    }

    /// The actions of an intent refused before signing: journaled as decided, then refused with a
    /// reason containing `words`, then a `Rejected` outcome; nothing signed or sent.
    fn decided_then_refused(out: &[Action], words: &str) -> bool {
        matches!(out, [
            Action::Journal(JournalRecord::Decided(_)),
            Action::Journal(JournalRecord::Refused { reason, .. }),
            Action::Outcome(o),
        ] if o.status == OutcomeStatus::Rejected && reason.contains(words))
    }

    /// Reserves of pool 0 read at `block`: `usdc` whole USDC against 1,000 WETH.
    fn reserves(usdc: u64, block: u64) -> ChainUpdate {
        let e6 = U256::from(1_000_000u64);
        let e18 = U256::from(10u64).pow(U256::from(18u64));
        ChainUpdate::polled_v2_reserves(
            0,
            Address::ZERO,
            e6 * U256::from(usdc),
            e18 * U256::from(1000u64),
            block,
        )
    }

    fn intent(id: u64, account: Address) -> RebalanceIntent {
        RebalanceIntent {
            id,
            portfolio: PortfolioId(0),
            account,
            reason: TriggerReason::Temporal { elapsed_s: 1.0 },
            drift: 0.05,
            // Sell 1 WETH for USDC at the pool's price (3000 USDC per WETH).
            legs: vec![Leg {
                sell: TokenId(1),
                buy: TokenId(0),
                amount_in: U256::from(10u64).pow(U256::from(18u64)),
                notional: 3000.0,
                reference_price: 3000.0,
            }],
            event_recv_ns: 1,
            decided_ns: 1,
            planned_ns: 1,
        }
    }

    fn submitted(actions: &[Action]) -> Vec<SignedTx> {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Submit { request, .. } => {
                    let v: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                    Some(
                        v["params"][0]["txs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|t| {
                                use alloy::consensus::TxEnvelope;
                                use alloy::eips::eip2718::Decodable2718;
                                let raw: Bytes = t.as_str().unwrap().parse().unwrap();
                                let env = TxEnvelope::decode_2718(&mut raw.as_ref()).unwrap();
                                let TxEnvelope::Eip1559(s) = &env else { panic!("not 1559") };
                                SignedTx {
                                    raw: raw.clone(),
                                    hash: *env.tx_hash(),
                                    from: Address::ZERO,
                                    nonce: s.tx().nonce,
                                    gas_limit: s.tx().gas_limit,
                                    fees: Fees { max_fee_per_gas: 0, max_priority_fee_per_gas: 0 },
                                }
                            })
                            .collect(),
                    )
                }
                _ => None,
            })
            .expect("a submission")
    }

    #[test]
    fn an_expired_bundle_releases_its_nonces_and_its_approvals() {
        let (mut exec, me) = executor();
        let mut out = Vec::new();
        ready(&mut exec, me, 4);
        exec.on_intent(&intent(1, me), 0, &mut out);
        let first = submitted(&out);
        assert_eq!(first.len(), 2, "approve + swap");
        assert_eq!((first[0].nonce, first[1].nonce), (4, 5));
        out.clear();

        // Next block: the same transactions are resent for block 3.
        exec.on_chain(head(2), 0, &mut out);
        let again = submitted(&out);
        assert_eq!(
            again.iter().map(|t| t.hash).collect::<Vec<_>>(),
            first.iter().map(|t| t.hash).collect::<Vec<_>>()
        );
        out.clear();

        // Deadline: expired, nonces and the optimistic allowance released.
        exec.on_chain(head(3), 0, &mut out);
        assert!(out.iter().any(|a| matches!(a, Action::Outcome(o) if o.status == OutcomeStatus::Expired)));
        out.clear();
        exec.on_intent(&intent(2, me), 0, &mut out);
        let retry = submitted(&out);
        assert_eq!(retry.len(), 2, "the approve must be included again");
        assert_eq!((retry[0].nonce, retry[1].nonce), (4, 5), "the released nonces are reused");
        assert_eq!(exec.stats().expired, 1);
    }

    #[test]
    fn large_pending_swaps_defer_the_rebalance_until_they_clear() {
        let (mut exec, me) = executor();
        exec.cfg.defer_on_pending_volume = Some(0.005);
        let mut out = Vec::new();
        ready(&mut exec, me, 0);
        exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.02 }, 0, &mut out);
        exec.on_intent(&intent(1, me), 0, &mut out);
        // journaled as decided, then refused with the reason; nothing signed
        assert!(decided_then_refused(&out, "deferred"), "{out:?}");
        assert_eq!((exec.stats().deferred, exec.stats().submissions), (1, 0));
        out.clear();
        // Small pending flow does not defer; and once the pending swaps are mined it proceeds.
        exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.001 }, 0, &mut out);
        exec.on_intent(&intent(2, me), 0, &mut out);
        assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })), "{out:?}");
        assert_eq!(submitted(&out)[0].nonce, 0, "the deferral reserved no nonce");
    }

    #[test]
    fn an_intent_before_the_chain_state_waits_for_it_then_is_sent() {
        let (mut exec, me) = executor();
        let mut out = Vec::new();
        // Right after a start: no head, no pool state. Nothing is refused, nothing sent yet.
        exec.on_intent(&intent(1, me), 0, &mut out);
        assert!(matches!(out.as_slice(), [Action::Journal(JournalRecord::Decided(_))]), "{out:?}");
        // A head without the pool's state: still waiting.
        out.clear();
        exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 1 }, 0, &mut out);
        exec.on_chain(head(1), 0, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // The pool is read, then the next head: signed and sent.
        exec.on_chain(reserves(3_000_000, 2), 0, &mut out);
        exec.on_chain(head(2), 0, &mut out);
        assert!(
            matches!(
                out.as_slice(),
                [Action::Journal(JournalRecord::Signed(_)), Action::Submit { intent: 1, .. }]
            ),
            "{out:?}"
        );
        assert_eq!((exec.stats().intents, exec.stats().rejected), (1, 0));
    }

    #[test]
    fn an_intent_waits_a_few_heads_for_a_pool_then_is_refused() {
        let (mut exec, me) = executor();
        let mut out = Vec::new();
        exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 1 }, 0, &mut out);
        exec.on_chain(head(1), 0, &mut out);
        exec.on_intent(&intent(1, me), 0, &mut out);
        for n in 2..(1 + PARK_HEADS as u64) {
            exec.on_chain(head(n), 0, &mut out);
            assert!(!out.iter().any(|a| matches!(a, Action::Outcome(_))), "refused too early at head {n}");
        }
        out.clear();
        exec.on_chain(head(1 + PARK_HEADS as u64), 0, &mut out);
        assert!(
            matches!(out.as_slice(), [
                Action::Journal(JournalRecord::Refused { reason, .. }),
                Action::Outcome(o),
            ] if o.status == OutcomeStatus::Rejected && reason.contains("not known yet")),
            "{out:?}"
        );
    }

    #[test]
    fn a_pool_pushed_off_the_reference_is_refused_by_the_oracle_guard() {
        let (mut exec, me) = executor();
        let mut out = Vec::new();
        ready(&mut exec, me, 0);
        // The pool moves 10% (3300 USDC per WETH) while the reference stays at 3000.
        exec.on_chain(reserves(3_300_000, 2), 0, &mut out);
        exec.on_chain(head(2), 0, &mut out);
        exec.on_intent(&intent(1, me), 0, &mut out);
        // journaled as decided, then refused with the guard's reason
        assert!(decided_then_refused(&out, "spot_vs_reference"), "{out:?}");
        assert_eq!((exec.stats().oracle_blocked, exec.stats().submissions), (1, 0));
        assert_eq!(exec.oracle().counts().get("p", "spot_vs_reference"), 1);
    }

    #[test]
    fn landed_swaps_refine_the_gas_estimate_and_limit() {
        let (mut exec, me) = executor();
        let mut out = Vec::new();
        ready(&mut exec, me, 0);
        exec.on_intent(&intent(1, me), 0, &mut out);
        let txs = submitted(&out);
        assert_eq!(txs[1].gas_limit, 130_000, "configured 100k + 30% before any observation");
        out.clear();
        exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 2 }, 0, &mut out);
        let receipts = [
            ReceiptInfo { hash: txs[0].hash, block: 2, gas_used: 46_000, success: true },
            ReceiptInfo { hash: txs[1].hash, block: 2, gas_used: 80_000, success: true },
        ];
        exec.on_receipts(1, &receipts, &mut out);
        assert_eq!(exec.gas_estimate(0), Some(80_000), "the approve's gas is not a swap's");
        out.clear();
        exec.on_chain(head(2), 0, &mut out);
        exec.on_intent(&intent(2, me), 0, &mut out);
        let next = submitted(&out);
        assert_eq!(next.len(), 1, "already approved");
        assert_eq!(next[0].gas_limit, 104_000, "80k observed + 30%");
    }

    #[test]
    fn risk_limits_refuse_and_say_which() {
        let rejected = |out: &[Action]| decided_then_refused(out, "risk limit");
        // Gas price cap: base fee 10 + tip 1 = 11 wei.
        let (mut exec, me) = executor();
        exec.cfg.limits.max_gas_price_wei = Some(10);
        ready(&mut exec, me, 0);
        let mut out = Vec::new();
        exec.on_intent(&intent(1, me), 0, &mut out);
        assert!(rejected(&out), "{out:?}");
        assert_eq!(exec.stats().risk_refused, 1);
        // Per-trade cap: the leg is 3000.
        let (mut exec, me) = executor();
        exec.cfg.limits.max_trade_notional = Some(2_999.0);
        ready(&mut exec, me, 0);
        out.clear();
        exec.on_intent(&intent(1, me), 0, &mut out);
        assert!(rejected(&out));
        // Daily cap: 5000 allows one 3000 rebalance, not a second within 24 h, again after 24 h.
        let (mut exec, me) = executor();
        exec.cfg.limits.max_daily_notional = Some(5_000.0);
        ready(&mut exec, me, 0);
        // A rebalance refused after the limits charged it (here: deferred) is released again.
        exec.cfg.defer_on_pending_volume = Some(0.005);
        exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.02 }, 0, &mut out);
        out.clear();
        exec.on_intent(&intent(8, me), 0, &mut out);
        assert_eq!(exec.stats().deferred, 1, "{out:?}");
        exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.0 }, 0, &mut out);
        out.clear();
        exec.on_intent(&intent(1, me), 0, &mut out);
        assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })));
        // Let it expire unlanded: its notional is released.
        out.clear();
        exec.on_chain(head(2), 0, &mut out);
        exec.on_chain(head(3), 0, &mut out);
        assert_eq!(exec.stats().expired, 1);
        out.clear();
        exec.on_intent(&intent(2, me), 1, &mut out);
        assert!(
            out.iter().any(|a| matches!(a, Action::Submit { .. })),
            "expired notional is released: {out:?}"
        );
        // It lands: the next one within 24 h is refused, one a day later passes.
        exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 4 }, 1, &mut out);
        let r = ReceiptInfo { hash: B256::ZERO, block: 4, gas_used: 1, success: true };
        exec.on_receipts(2, &[r], &mut out);
        out.clear();
        exec.on_intent(&intent(3, me), 2, &mut out);
        assert!(rejected(&out), "{out:?}");
        out.clear();
        let day = 24 * 3600 * 1_000_000_000;
        exec.on_intent(&intent(4, me), day + 2, &mut out);
        assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })), "{out:?}");
    }

    #[test]
    fn restored_charges_count_towards_the_daily_caps_until_a_day_after_their_decision() {
        let rejected = |out: &[Action]| decided_then_refused(out, "risk limit");
        let submitted = |out: &[Action]| out.iter().any(|a| matches!(a, Action::Submit { .. }));
        let hour: Nanos = 3600 * 1_000_000_000;
        let now: Nanos = 5 * hour;
        // Per portfolio: a 3000 rebalance of the previous run, decided 23 h ago, fills the 5000 cap.
        let (mut exec, me) = executor();
        exec.cfg.limits.max_daily_notional = Some(5_000.0);
        ready(&mut exec, me, 0);
        exec.restore_charge(Some(PortfolioId(0)), 1, 3_000.0, 23 * hour, now);
        let mut out = Vec::new();
        exec.on_intent(&intent(2, me), now, &mut out);
        assert!(rejected(&out), "{out:?}");
        // An hour later (a day after its decision) it has left the window.
        out.clear();
        exec.on_intent(&intent(3, me), now + hour, &mut out);
        assert!(submitted(&out), "{out:?}");
        // A charge of another portfolio leaves this one's cap alone, and a day-old one is ignored.
        let (mut exec, me) = executor();
        exec.cfg.limits.max_daily_notional = Some(5_000.0);
        ready(&mut exec, me, 0);
        exec.restore_charge(Some(PortfolioId(1)), 1, 3_000.0, hour, now);
        exec.restore_charge(Some(PortfolioId(0)), 2, 3_000.0, 24 * hour, now);
        out.clear();
        exec.on_intent(&intent(3, me), now, &mut out);
        assert!(submitted(&out), "{out:?}");
        // The total cap counts every portfolio, even one no longer configured.
        let (mut exec, me) = executor();
        exec.cfg.limits.max_daily_notional_total = Some(5_000.0);
        ready(&mut exec, me, 0);
        exec.restore_charge(None, 1, 3_000.0, hour, now);
        out.clear();
        exec.on_intent(&intent(2, me), now, &mut out);
        assert!(rejected(&out), "{out:?}");
    }

    #[test]
    fn a_landed_bundle_reports_one_outcome() {
        let (mut exec, me) = executor();
        let mut out = Vec::new();
        ready(&mut exec, me, 0);
        exec.on_intent(&intent(1, me), 0, &mut out);
        out.clear();
        exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 2 }, 0, &mut out);
        exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 3 }, 0, &mut out);
        let fetches = out.iter().filter(|a| matches!(a, Action::FetchReceipts { .. })).count();
        assert_eq!(fetches, 1);
        out.clear();
        let r = ReceiptInfo { hash: B256::ZERO, block: 2, gas_used: 50_000, success: true };
        exec.on_receipts(1, &[r, r], &mut out);
        exec.on_receipts(1, &[r, r], &mut out);
        let landed: Vec<_> = out.iter().filter(|a| matches!(a, Action::Outcome(_))).collect();
        assert_eq!(landed.len(), 1);
        assert!(
            matches!(landed[0], Action::Outcome(o) if o.status == OutcomeStatus::Landed { block: 2, gas_used: 100_000 })
        );
        assert_eq!(exec.inflight_count(), 0);
    }
}
