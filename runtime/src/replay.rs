//! `keel replay`: the same engine, planner, router ([`Executor`]) and signer over a recording, in
//! virtual time, against a chain simulated from the recorded pool state.
//!
//! ```text
//! RecordReader ──record (recv_ns)──▶ virtual clock ──▶ exchange frame ─decode─▶ Event::Quote ──▶ Engine ─intents─▶ Executor
//!   (file order)                     (timers every      heads, pools, reads ───▶ ReplayChain ──▶ (same queues' order)  │
//!                                     100 ms, samples)                         (blocks, inclusion,   ◀── Submit ─────────┘
//!                                                                               nonces, balances, receipts)
//! ```
//!
//! * **Clock.** No wall clock and no socket: the clock is the records' receive times (kept
//!   non-decreasing in file order). Timer events run at their recorded times (a recording without
//!   them, made before they were recorded, gets one at every [`TIMER_EVERY`] boundary of virtual
//!   time) and weight samples at every `sample_every`, as the engine thread does live. Everything
//!   that happens in reaction to one record (intents, routing, signing, outcomes) happens at that
//!   record's time, in a fixed FIFO order — so two replays of one recording with one config are
//!   identical, byte for byte.
//! * **Chain.** [`ReplayChain`] keeps every configured pool at its recorded state (the recorded
//!   logs and reserve reads are the market), and the portfolio accounts' token balances, nonces and
//!   allowances — seeded from the first recorded read of each, then kept by the simulation: each
//!   later recorded read of a seeded value is reported when the recorded run had it, with the
//!   chain's value (counted as superseded; a read recorded before its head, as a poller's nonces
//!   are, once that head has built its block).
//! * **Inclusion.** A bundle sent at virtual time `t` arrives at `t + latency`. Block `b` is built
//!   when its head is first seen in the recording (at that record's receive time: the cutoff); it
//!   includes, in arrival order, the bundles that target `b` and arrived by the cutoff, each atomic:
//!   every transaction must decode, be signed for the configured chain by an account at its nonce,
//!   pay at least the block's base fee, and succeed on the pool state *before* block `b`'s recorded
//!   changes (the state the bundle would have met at the top of the block) — ERC-20 `approve`,
//!   Router02 `swapExactTokensForTokens`, SwapRouter `exactInputSingle`/`exactInput`, a V4Router's
//!   `executeActions` and a Universal Router's `execute(V4_SWAP)` (one pool or a path), the
//!   Balancer Vault's `swap` (given in, by pool id), `Permit2.approve`, plain native-ETH transfers
//!   and native-ETH swaps (the value is the amount in), with the exact V2/V3/V4/Balancer math of
//!   `keel_amm`, `amountOutMin`, deadline, balance and allowance (a Universal Router's through
//!   Permit2) checked.
//!   Included swaps move the account's balances exactly; they do not move the recorded pools (the
//!   recording is the market; a later recorded state replaces it). Gas is the configured per-pool
//!   swap gas and [`APPROVE_GAS`] per approval; native ETH for gas is not simulated.
//!
//! The chain's memory is bounded by the configuration (pools, accounts) and the rebalances in
//! flight (their transactions and receipts are dropped when they settle); the journal is written in
//! batches of [`JOURNAL_BATCH`] records. The run report keeps what `keel run`'s does (intents,
//! fills, outcomes, weight samples), which grows with the recording's length as a live run's does.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use alloy::consensus::transaction::SignerRecoverable;
use alloy::consensus::{Transaction, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::{SolCall, SolType};
use hdrhistogram::Histogram;
use keel_amm::abi::{
    IBalancerVault, ICurveStableSwap, ICurveStableSwapU128, IERC20, IPermit2, ISwapRouter,
    IUniswapV2Router02, IUniversalRouter, IV4Router, PERMIT2_ADDRESS,
};
use keel_amm::pool::{Pool, PoolChange};
use keel_engine::chain::{ChainUpdate, ReceiptInfo};
use keel_engine::clock::{ManualClock, Nanos};
use keel_engine::event::{Balance, BlockHeader, Event, Outcome, OutcomeStatus};
use keel_engine::portfolio::PortfolioStatus;
use keel_engine::queue::QueueStats;
use keel_engine::record::{JournalRecord, TxRecord};
use keel_engine::{Engine, PortfolioId, RebalanceIntent, TokenId};
use keel_feeds::binance::{InstrumentTable, Mapped, decode, map_decoded};
use keel_feeds::stats::{Counter, FeedStats};
use keel_journal::{Names, Store, SyncPolicy};
use keel_recording::codec::{self, Input};
use keel_recording::{ReadIssue, RecordKind, RecordReader};
use keel_router::config::{CurveIndices, DexKind, V4Via};
use keel_router::exec::{Action, Executor};
use keel_router::stage::RelayCounters;

use crate::pipeline::{
    EngineRun, PipelineError, PipelineReport, PipelineSpec, Sample, TIMER_EVERY, build_executor,
    poll_targets, portfolio_views,
};
use crate::safety::KillSwitch;

/// Gas charged for an ERC-20 `approve` in a replayed block.
pub const APPROVE_GAS: u64 = 46_000;
/// Journal records written per SQLite transaction.
pub const JOURNAL_BATCH: usize = 256;
/// Issues kept (with their offsets) for the replay's summary; more are counted only.
pub const MAX_ISSUES_KEPT: usize = 64;
/// A receipt read is answered when the recorded run's read of the same intent's receipts comes
/// up in the recording (so the landing reaches the engine when it did live), or this long after
/// it was asked for when the recording has none (the recorded run did not land that intent).
pub const RECEIPT_FALLBACK_NS: u64 = 1_000_000_000;
/// Name of the relay the replay's chain stands for, in reports.
pub const REPLAY_RELAY: &str = "replay-chain";

/// How to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Every bundle reaches the chain this long after it was sent, ns.
    pub latency_ns: u64,
    /// Write the journal (SQLite) here; none when `None`.
    pub journal: Option<std::path::PathBuf>,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The engine, executor or pool set-up refused the config (boxed: pool errors are large).
    #[error(transparent)]
    Config(Box<PipelineError>),
    /// The journal could not be written.
    #[error("journal: {0}")]
    Journal(#[from] keel_journal::JournalError),
}

impl From<PipelineError> for ReplayError {
    fn from(e: PipelineError) -> Self {
        ReplayError::Config(Box::new(e))
    }
}

/// What the replay read and simulated, beside the run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStats {
    /// Records read.
    pub records: u64,
    /// Exchange frames among them.
    pub frames: u64,
    /// Chain-side inputs handed to the engine or router.
    pub chain_inputs: u64,
    /// Recorded balance and nonce reads whose value the simulated chain's replaced (each is
    /// reported at the read's time, with the chain's value).
    pub reads_superseded: u64,
    /// Engine timers run at their recorded times (0 for a recording made before timers were
    /// recorded: its replay runs one every 100 ms of virtual time).
    pub timers_recorded: u64,
    /// Recorded receipt reads and relay answers: their content is the simulated chain's; a receipt
    /// read only sets when the replay's read of the same intent is answered.
    pub answers_ignored: u64,
    /// Records whose payload did not decode (skipped).
    pub undecodable: u64,
    /// Issues the reader reported (torn tails, corrupt records, unknown kinds, missing files).
    pub issues: u64,
    /// The first [`MAX_ISSUES_KEPT`] issues, as text (file and offset included).
    pub issue_list: Vec<String>,
    /// Events processed by the engine (inputs, timers, outcomes).
    pub engine_events: u64,
    /// Blocks built.
    pub blocks: u64,
    /// Bundle submissions (first sends and retargets).
    pub bundles_sent: u64,
    /// Bundles included.
    pub bundles_included: u64,
    /// Bundles that arrived after their block's cutoff (or were sent for a block already built).
    pub bundles_late: u64,
    /// Bundles refused by their block, by reason.
    pub bundles_failed: BTreeMap<String, u64>,
    /// Virtual time covered, ns.
    pub virtual_ns: u64,
}

/// A replay's results: the run report (as `keel run` builds it) and the replay's own counters.
#[derive(Debug)]
pub struct ReplayOutput {
    /// The report.
    pub report: PipelineReport,
    /// The replay's counters.
    pub stats: ReplayStats,
}

/// A bundle on its way to, or waiting in, the chain.
#[derive(Debug, Clone)]
struct PendingBundle {
    intent: u64,
    block: u64,
    arrival_ns: Nanos,
    /// The transactions of the request as sent (a netted batch's carry every member's).
    txs: Vec<TxRecord>,
    /// Its `replacementUuid`: a later bundle with the same one replaces it.
    uuid: Option<String>,
}

/// A configured pool as the chain sees it.
#[derive(Debug, Clone)]
struct ChainPool {
    router: Address,
    kind: DexKind,
    token0: Address,
    token1: Address,
    fee: u32,
    gas: u64,
    /// Uniswap V4: the pool's key (swaps name it) and whether its router is a Universal Router
    /// (paid through Permit2).
    v4: Option<(keel_amm::v4::PoolKey, V4Via)>,
    /// Balancer: the pool's id in the Vault (`Vault.swap` names it).
    pool_id: Option<B256>,
    /// Curve: the integer type of `exchange`'s coin indices (a call of the other type reverts).
    curve_indices: Option<CurveIndices>,
}

/// The simulated chain: recorded pools, simulated accounts.
#[derive(Debug)]
struct ReplayChain {
    chain_id: u64,
    info: Vec<ChainPool>,
    /// Pools as last recorded.
    pools: Vec<Pool>,
    /// Pools before the recorded changes of block `pre_block` (the top of that block).
    pre: Vec<Pool>,
    pre_block: u64,
    /// Block of the latest recorded pool change.
    pools_block: u64,
    /// The last block built.
    head: u64,
    header: Option<BlockHeader>,
    balances: BTreeMap<(Address, Address), U256>,
    nonces: BTreeMap<Address, u64>,
    allowances: BTreeMap<(Address, Address, Address), U256>,
    /// Permit2's allowances, `(owner, token, spender)`: what a Universal Router may pull.
    permit2: BTreeMap<(Address, Address, Address), U256>,
    receipts: BTreeMap<B256, ReceiptInfo>,
    /// The hashes of every transaction signed for each intent in flight (all its versions, from
    /// the executor's `Signed` records): its receipts are dropped when it settles.
    signed: BTreeMap<u64, Vec<B256>>,
    pending: Vec<PendingBundle>,
}

impl ReplayChain {
    /// Called with each recorded pool change, before it is handed to the router.
    fn on_pool(&mut self, pool: usize, block: u64, change: &PoolChange) {
        if block > self.pools_block {
            // The first change of a new block: keep the state it starts from.
            self.pre.clone_from(&self.pools);
            self.pre_block = block;
            self.pools_block = block;
        }
        if let Some(p) = self.pools.get_mut(pool)
            && let Err(e) = p.apply(change)
        {
            tracing::debug!(pool, error = %e, "recorded pool change does not apply to the replay's pool");
        }
    }

    /// The executor signed `txs` for `intent` (a version of its own transactions; a netted batch's
    /// members each name only theirs): their receipts are kept until the intent settles.
    fn on_signed(&mut self, intent: u64, txs: &[TxRecord]) {
        let hashes = self.signed.entry(intent).or_default();
        for t in txs {
            if !hashes.contains(&t.hash) {
                hashes.push(t.hash);
            }
        }
    }

    /// A bundle request for `intent` (a batch's first member) reaches the chain at `arrival_ns`.
    /// The chain runs what was sent, the request's own transactions: a netted batch carries every
    /// member's, and one re-sent after a member settled is a bundle that no `Signed` record names.
    /// As a relay does, it replaces the pending bundle with the same `replacementUuid` (a batch
    /// re-signed with a new member replaces the version sent before it for that block).
    fn on_sent(
        &mut self,
        intent: u64,
        request: &keel_router::bundle::SignedBundleRequest,
        arrival_ns: Nanos,
    ) -> Result<(), keel_router::relay::RelayError> {
        let sent = keel_router::private::read_sent_bundle(&request.body)?;
        if let Some(uuid) = &sent.replacement_uuid {
            self.pending.retain(|p| p.uuid.as_ref() != Some(uuid));
        }
        self.pending.push(PendingBundle {
            intent,
            block: request.block_number,
            arrival_ns,
            txs: sent.txs.into_iter().map(sent_tx).collect(),
            uuid: sent.replacement_uuid,
        });
        Ok(())
    }

    /// `intent` settled: its bundles, their transactions and receipts are no longer needed.
    fn on_settled(&mut self, intent: u64) {
        self.pending.retain(|p| p.intent != intent);
        for hash in self.signed.remove(&intent).unwrap_or_default() {
            self.receipts.remove(&hash);
        }
    }

    /// Builds every block up to `number` at virtual time `now` (the cutoff).
    fn build_to(&mut self, number: u64, header: Option<BlockHeader>, now: Nanos, stats: &mut ReplayStats) {
        if let Some(h) = header {
            self.header = Some(h);
        }
        if self.head == 0 {
            // The first head seen: only it is built (bundles sent before it target it).
            self.head = number.saturating_sub(1);
        }
        while self.head < number {
            self.head += 1;
            let b = self.head;
            self.build(b, now, stats);
        }
    }

    fn build(&mut self, block: u64, cutoff: Nanos, stats: &mut ReplayStats) {
        stats.blocks += 1;
        let mut state = if self.pre_block == block { self.pre.clone() } else { self.pools.clone() };
        let pending = std::mem::take(&mut self.pending);
        for b in pending {
            if b.block > block {
                self.pending.push(b);
                continue;
            }
            if b.block < block || b.arrival_ns > cutoff {
                // Sent for a block already built, or arrived after this block's cutoff.
                stats.bundles_late += 1;
                continue;
            }
            match self.run_bundle(&b.txs, block, &mut state) {
                Ok(()) => {
                    stats.bundles_included += 1;
                    tracing::debug!(intent = b.intent, block, "replay: bundle included");
                }
                Err(reason) => {
                    tracing::debug!(intent = b.intent, block, %reason, "replay: bundle failed");
                    *stats.bundles_failed.entry(reason).or_default() += 1;
                }
            }
        }
    }

    /// Runs a bundle atomically on copies; commits balances, nonces, allowances and receipts if
    /// every transaction succeeds. The error names the first failure (a short, stable reason).
    fn run_bundle(&mut self, txs: &[TxRecord], block: u64, state: &mut Vec<Pool>) -> Result<(), String> {
        let mut scratch = state.clone();
        let mut balances = self.balances.clone();
        let mut nonces = self.nonces.clone();
        let mut allowances = self.allowances.clone();
        let mut permit2 = self.permit2.clone();
        let mut receipts = Vec::with_capacity(txs.len());
        let header = self.header.ok_or_else(|| "no block header known".to_string())?;
        for t in txs {
            let env =
                TxEnvelope::decode_2718_exact(&t.raw).map_err(|_| "undecodable transaction".to_string())?;
            if env.chain_id() != Some(self.chain_id) {
                return Err("wrong chain id".into());
            }
            let from = env.recover_signer().map_err(|_| "unrecoverable signature".to_string())?;
            let nonce = nonces.get(&from).copied().ok_or_else(|| "account nonce unknown".to_string())?;
            if env.nonce() != nonce {
                return Err("nonce mismatch".into());
            }
            if env.max_fee_per_gas() < header.base_fee {
                return Err("max fee below the base fee".into());
            }
            let to = env.to().ok_or_else(|| "contract creation".to_string())?;
            let input = env.input();
            let value = env.value();
            let gas = if input.is_empty() {
                // A plain native-ETH transfer (a netted batch's cross of native ETH).
                let have = balances.get(&(from, Address::ZERO)).copied().unwrap_or_default();
                if have < value {
                    return Err("native balance short for a transfer".into());
                }
                balances.insert((from, Address::ZERO), have - value);
                let got = balances.get(&(to, Address::ZERO)).copied().unwrap_or_default();
                balances.insert((to, Address::ZERO), got.saturating_add(value));
                keel_router::exec::NATIVE_TRANSFER_GAS
            } else if let Ok(c) = IERC20::approveCall::abi_decode(input) {
                allowances.insert((from, to, c.spender), c.amount);
                APPROVE_GAS
            } else if to == PERMIT2_ADDRESS
                && let Ok(c) = IPermit2::approveCall::abi_decode(input)
            {
                // An expired grant is none.
                let live = u64::try_from(c.expiration).unwrap_or(u64::MAX) >= header.timestamp;
                permit2
                    .insert((from, c.token, c.spender), if live { U256::from(c.amount) } else { U256::ZERO });
                keel_router::exec::PERMIT2_APPROVE_GAS
            } else if let Ok(c) = IERC20::transferCall::abi_decode(input) {
                // A netted batch's internal cross: `to` is the token.
                let have = balances.get(&(from, to)).copied().unwrap_or_default();
                if have < c.amount {
                    return Err("balance short for a transfer".into());
                }
                balances.insert((from, to), have - c.amount);
                let got = balances.get(&(c.to, to)).copied().unwrap_or_default();
                balances.insert((c.to, to), got.saturating_add(c.amount));
                keel_router::exec::TRANSFER_GAS
            } else {
                let (amount_in, min_out, path, deadline) = self.decode_swap(to, input)?;
                if deadline < U256::from(header.timestamp) {
                    return Err("deadline passed".into());
                }
                let (sell, buy) = match (path.first(), path.last()) {
                    (Some(s), Some(b)) if path.len() >= 2 => (s.0, b.0),
                    _ => return Err("swap path too short".into()),
                };
                // The last entry only names the token bought.
                let hops = path.get(..path.len() - 1).unwrap_or_default();
                // Native ETH is paid as the call's value, all of it into the swap (what the
                // router settles), with nothing to approve; an ERC-20 swap carries no value.
                let native_in = sell.is_zero();
                if native_in && value != amount_in {
                    return Err("value differs from the native amount in".into());
                }
                if !native_in && !value.is_zero() {
                    return Err("value sent with an ERC-20 swap".into());
                }
                // A Universal Router pulls through Permit2: the ERC-20 allowance is Permit2's, and
                // Permit2's own grant to the router must cover it too.
                let via_permit2 = !native_in
                    && hops
                        .first()
                        .and_then(|(_, pool)| self.info.get(*pool))
                        .is_some_and(|p| matches!(p.v4, Some((_, V4Via::UniversalRouter))));
                let spender = if via_permit2 { PERMIT2_ADDRESS } else { to };
                if !native_in {
                    let allowance = allowances.get(&(from, sell, spender)).copied().unwrap_or_default();
                    if allowance < amount_in {
                        return Err("allowance short".into());
                    }
                    if allowance != U256::MAX {
                        allowances.insert((from, sell, spender), allowance - amount_in);
                    }
                }
                if via_permit2 {
                    let granted = permit2.get(&(from, sell, to)).copied().unwrap_or_default();
                    if granted < amount_in {
                        return Err("Permit2 allowance short".into());
                    }
                    if granted != U256::from(alloy::primitives::aliases::U160::MAX) {
                        permit2.insert((from, sell, to), granted - amount_in);
                    }
                }
                let have = balances.get(&(from, sell)).copied().unwrap_or_default();
                if have < amount_in {
                    return Err("balance short".into());
                }
                let mut amount = amount_in;
                let mut gas = 0u64;
                for (token_in, pool) in hops {
                    let p = scratch.get_mut(*pool).ok_or_else(|| "pool unknown".to_string())?;
                    let info = self.info.get(*pool).ok_or_else(|| "pool unknown".to_string())?;
                    let zero_for_one = *token_in == info.token0;
                    let q = p.quote_exact_in(zero_for_one, amount).map_err(|e| format!("swap: {e}"))?;
                    if q.amount_in < amount {
                        return Err("swap: price limit reached".into());
                    }
                    p.apply(&q.change).map_err(|e| format!("swap: {e}"))?;
                    amount = q.amount_out;
                    gas += info.gas;
                }
                if amount < min_out {
                    return Err("output below amountOutMin".into());
                }
                balances.insert((from, sell), have - amount_in);
                let got = balances.get(&(from, buy)).copied().unwrap_or_default();
                balances.insert((from, buy), got.saturating_add(amount));
                gas.max(1)
            };
            nonces.insert(from, nonce + 1);
            receipts.push(ReceiptInfo { hash: t.hash, block, gas_used: gas, success: true });
        }
        *state = scratch;
        self.balances = balances;
        self.nonces = nonces;
        self.allowances = allowances;
        self.permit2 = permit2;
        for r in receipts {
            self.receipts.insert(r.hash, r);
        }
        Ok(())
    }

    /// `(amount_in, amount_out_min, hops as (token in, pool), deadline)` of a swap sent to `router`;
    /// the last hop's entry is `(token out, last pool)` so the path's ends are its first and last.
    #[allow(clippy::type_complexity)]
    fn decode_swap(
        &self,
        router: Address,
        input: &[u8],
    ) -> Result<(U256, U256, Vec<(Address, usize)>, U256), String> {
        let find = |a: Address, b: Address, kind: DexKind, fee: Option<u32>| {
            self.info
                .iter()
                .position(|p| {
                    p.router == router
                        && p.kind == kind
                        && ((p.token0 == a && p.token1 == b) || (p.token0 == b && p.token1 == a))
                        && fee.is_none_or(|f| f == p.fee)
                })
                .ok_or_else(|| format!("no configured pool for the hop on {kind:?}"))
        };
        let mut hops = Vec::new();
        if let Some(pool) =
            self.info.iter().position(|p| p.kind == DexKind::CurveStableswap && p.router == router)
        {
            // A Curve pool's own `exchange(i, j, dx, min_dy)`, paid to the caller; no deadline.
            let (i, j, dx, min_dy) = match self.info[pool].curve_indices {
                Some(CurveIndices::Int128) => ICurveStableSwap::exchangeCall::abi_decode(input)
                    .map(|c| (u128::try_from(c.i).ok(), u128::try_from(c.j).ok(), c.dx, c.min_dy)),
                Some(CurveIndices::Uint128) => ICurveStableSwapU128::exchangeCall::abi_decode(input)
                    .map(|c| (Some(c.i), Some(c.j), c.dx, c.min_dy)),
                None => return Err("curve pool without an index type".into()),
            }
            .map_err(|_| "not a curve exchange of the pool's index type".to_string())?;
            let Some(Pool::Curve(pair)) = self.pools.get(pool) else {
                return Err("curve pool state unknown".into());
            };
            let (index0, index1) = pair.indices();
            let (i0, i1) = (Some(u128::from(index0)), Some(u128::from(index1)));
            let info = &self.info[pool];
            let (sell, buy) = if (i, j) == (i0, i1) {
                (info.token0, info.token1)
            } else if (i, j) == (i1, i0) {
                (info.token1, info.token0)
            } else {
                return Err("curve exchange between coins that are not the configured pair".into());
            };
            hops.push((sell, pool));
            push_end(&mut hops, Some(buy));
            return Ok((dx, min_dy, hops, U256::MAX));
        }
        if let Ok(c) = IBalancerVault::swapCall::abi_decode(input) {
            // The Vault's `swap`, given in, paid from and to the caller (Keel's own calldata).
            let s = c.singleSwap;
            if !matches!(s.kind, IBalancerVault::SwapKind::GIVEN_IN) {
                return Err("unsupported Balancer swap kind".into());
            }
            if c.funds.fromInternalBalance || c.funds.toInternalBalance || c.funds.sender != c.funds.recipient
            {
                return Err("unsupported Balancer funds".into());
            }
            let pool = self
                .info
                .iter()
                .position(|p| p.router == router && p.pool_id == Some(s.poolId))
                .ok_or_else(|| "no configured pool for the hop on BalancerWeighted".to_string())?;
            let info = &self.info[pool];
            let pair = [info.token0, info.token1];
            if !(pair.contains(&s.assetIn) && pair.contains(&s.assetOut) && s.assetIn != s.assetOut) {
                return Err("no configured pool for the hop on BalancerWeighted".into());
            }
            hops.push((s.assetIn, pool));
            push_end(&mut hops, Some(s.assetOut));
            return Ok((s.amount, c.limit, hops, c.deadline));
        }
        if let Ok(c) = IUniswapV2Router02::swapExactTokensForTokensCall::abi_decode(input) {
            for w in c.path.windows(2) {
                if let [a, b] = w {
                    hops.push((*a, find(*a, *b, DexKind::UniswapV2, None)?));
                }
            }
            push_end(&mut hops, c.path.last().copied());
            return Ok((c.amountIn, c.amountOutMin, hops, c.deadline));
        }
        if let Ok(c) = ISwapRouter::exactInputSingleCall::abi_decode(input) {
            let p = c.params;
            let fee = u32::try_from(p.fee.to::<u64>()).unwrap_or(u32::MAX);
            hops.push((p.tokenIn, find(p.tokenIn, p.tokenOut, DexKind::UniswapV3, Some(fee))?));
            push_end(&mut hops, Some(p.tokenOut));
            return Ok((p.amountIn, p.amountOutMinimum, hops, p.deadline));
        }
        if let Ok(c) = ISwapRouter::exactInputCall::abi_decode(input) {
            let p = c.params;
            let path = p.path.as_ref();
            let mut at = 0usize;
            let token = |at: usize| path.get(at..at + 20).map(Address::from_slice);
            let mut last = token(0);
            while let (Some(a), Some(fee), Some(b)) = (token(at), path.get(at + 20..at + 23), token(at + 23))
            {
                let fee = u32::from_be_bytes([0, fee[0], fee[1], fee[2]]);
                hops.push((a, find(a, b, DexKind::UniswapV3, Some(fee))?));
                last = Some(b);
                at += 23;
            }
            if at + 20 != path.len() {
                return Err("malformed V3 path".into());
            }
            push_end(&mut hops, last);
            return Ok((p.amountIn, p.amountOutMinimum, hops, p.deadline));
        }
        // Uniswap V4: a V4Router's `executeActions`, or a Universal Router's `execute` with one
        // `V4_SWAP`; the same actions either way.
        let (payload, deadline, per_hop) = if let Ok(c) = IV4Router::executeActionsCall::abi_decode(input) {
            (c.params, U256::MAX, false)
        } else if let Ok(c) = IUniversalRouter::executeCall::abi_decode(input) {
            match (c.commands.as_ref(), c.inputs.as_slice()) {
                ([keel_router::exec::V4_SWAP], [payload]) => (payload.clone(), c.deadline, true),
                _ => return Err("unsupported Universal Router commands".into()),
            }
        } else {
            return Err("unknown call".into());
        };
        let find_v4 = |key: keel_amm::v4::PoolKey| {
            self.info
                .iter()
                .position(|p| p.router == router && p.v4.is_some_and(|(k, _)| k == key))
                .ok_or_else(|| "no configured pool for the hop on UniswapV4".to_string())
        };
        let (actions, params) = <(
            alloy::sol_types::sol_data::Bytes,
            alloy::sol_types::sol_data::Array<alloy::sol_types::sol_data::Bytes>,
        )>::abi_decode_params(&payload)
        .map_err(|_| "malformed V4 actions".to_string())?;
        use keel_router::exec::{SETTLE_ALL, SWAP_EXACT_IN, SWAP_EXACT_IN_SINGLE, TAKE_ALL};
        match (actions.as_ref(), params.as_slice()) {
            ([SWAP_EXACT_IN_SINGLE, SETTLE_ALL, TAKE_ALL], [swap, _, _]) => {
                let p = IV4Router::ExactInputSingleParams::abi_decode(swap)
                    .map_err(|_| "malformed V4 swap".to_string())?;
                let key = keel_amm::v4::PoolKey::from(&p.poolKey);
                let (token_in, token_out) = if p.zeroForOne {
                    (key.currency0, key.currency1)
                } else {
                    (key.currency1, key.currency0)
                };
                hops.push((token_in, find_v4(key)?));
                push_end(&mut hops, Some(token_out));
                Ok((U256::from(p.amountIn), U256::from(p.amountOutMinimum), hops, deadline))
            }
            ([SWAP_EXACT_IN, SETTLE_ALL, TAKE_ALL], [swap, _, _]) => {
                let (currency_in, path, amount_in, min_out) = if per_hop {
                    let p = IV4Router::ExactInputParamsPerHop::abi_decode(swap)
                        .map_err(|_| "malformed V4 swap".to_string())?;
                    (p.currencyIn, p.path, p.amountIn, p.amountOutMinimum)
                } else {
                    let p = IV4Router::ExactInputParams::abi_decode(swap)
                        .map_err(|_| "malformed V4 swap".to_string())?;
                    (p.currencyIn, p.path, p.amountIn, p.amountOutMinimum)
                };
                let mut token_in = currency_in;
                for k in &path {
                    let key = keel_amm::v4::PoolKey::of_path_hop(token_in, k);
                    hops.push((token_in, find_v4(key)?));
                    token_in = k.intermediateCurrency;
                }
                push_end(&mut hops, Some(token_in));
                Ok((U256::from(amount_in), U256::from(min_out), hops, deadline))
            }
            _ => Err("unsupported V4 actions".into()),
        }
    }
}

/// Appends the path's last token with the last hop's pool (read as the path's end only).
fn push_end(hops: &mut Vec<(Address, usize)>, last: Option<Address>) {
    if let (Some(t), Some(&(_, pool))) = (last, hops.last()) {
        hops.push((t, pool));
    }
}

/// Work handed between the replayed stages at one virtual time, in FIFO order.
#[derive(Debug)]
enum Work {
    Engine(Event),
    Intent(Box<RebalanceIntent>),
    Chain(ChainUpdate),
    /// Receipts read for `intent`, settling its outcome at `settled_ns`.
    Receipts {
        intent: u64,
        receipts: Vec<ReceiptInfo>,
        settled_ns: Nanos,
    },
}

fn new_hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is valid")
}

/// The replay's engine and router, driven by hand.
struct Driver {
    engine: Engine,
    exec: Executor,
    clock: Arc<ManualClock>,
    chain: ReplayChain,
    opts: ReplayOptions,
    stats: ReplayStats,
    work: VecDeque<Work>,
    out: Vec<RebalanceIntent>,
    actions: Vec<Action>,
    // What the engine thread would have kept.
    decide: Histogram<u64>,
    quote_to_decision: Histogram<u64>,
    intents: Vec<RebalanceIntent>,
    drift_after_landing: Vec<(usize, f64)>,
    samples: Vec<Sample>,
    start_values: Vec<Option<f64>>,
    awaiting: Vec<bool>,
    // What the router stage would have kept.
    tick_to_wire: Histogram<u64>,
    relay_rtt: Histogram<u64>,
    relay: RelayCounters,
    outcomes: Vec<(f64, Outcome)>,
    feed: FeedStats,
    // What each recorded balance read reads: (portfolio, account, token id, token address).
    balance_targets: Vec<(PortfolioId, Address, TokenId, Address)>,
    journal: Option<(Store, Names)>,
    /// Receipt reads asked for and not answered yet: (intent, hashes, answer at the latest).
    receipt_reads: Vec<(u64, Vec<B256>, Nanos)>,
    journal_batch: Vec<(i64, JournalRecord)>,
    journal_records: u64,
    start_epoch_ms: i64,
    now: Nanos,
    /// The recording holds the engine's timers: they run at their recorded times, and the
    /// replay runs none of its own.
    recorded_timers: bool,
    /// Reads of values the chain owns, recorded before the chain built their block, in order.
    early_reads: Vec<OwnedRead>,
    /// When an outcome of the work being handled settles (the router stage's stamp live).
    settled_ns: Nanos,
}

/// Most reads kept waiting for their block's head (a block's reads are a few per account and token).
const MAX_EARLY_READS: usize = 1 << 16;

/// A recorded read of a value the simulated chain owns: reported at the read's time (or when its
/// block is built) with the chain's value.
#[derive(Debug)]
enum OwnedRead {
    /// A balance read, and the `(account, token)` it reads.
    Balance { read: Balance, key: (Address, Address) },
    /// A nonce read.
    Nonce { account: Address, block: u64 },
}

impl OwnedRead {
    fn block(&self) -> u64 {
        match self {
            OwnedRead::Balance { read, .. } => read.block,
            OwnedRead::Nonce { block, .. } => *block,
        }
    }
}

impl Driver {
    fn set_now(&mut self, t: Nanos) {
        self.now = self.now.max(t);
        self.clock.set(self.now);
    }

    /// Fires the timers and samples due at or before `t`, each at its own time.
    fn run_timers_until(
        &mut self,
        t: Nanos,
        next_timer: &mut Nanos,
        next_sample: &mut Nanos,
        sample_ns: u64,
    ) {
        let timer_ns = TIMER_EVERY.as_nanos() as u64;
        if self.recorded_timers {
            *next_timer = Nanos::MAX;
        }
        while *next_timer <= t || *next_sample <= t {
            if *next_timer <= *next_sample {
                let at = *next_timer;
                *next_timer += timer_ns;
                self.set_now(at);
                self.work.push_back(Work::Engine(Event::Timer { now_ns: at }));
                self.drain();
            } else {
                let at = *next_sample;
                *next_sample += sample_ns;
                self.set_now(at);
                self.sample();
            }
        }
    }

    fn sample(&mut self) {
        let t_s = self.now as f64 / 1e9;
        for (i, v) in portfolio_views(&self.engine).iter().enumerate() {
            if let Some(s) = self.start_values.get_mut(i)
                && s.is_none()
            {
                *s = v.value;
            }
            if v.value.is_some() {
                self.samples.push(Sample {
                    t_s,
                    portfolio: i,
                    weights: v.weights.iter().map(|w| w.1).collect(),
                    band: v.band,
                    targets: v.weights.iter().map(|w| w.2).collect(),
                });
            }
        }
    }

    /// Processes queued work until none is left.
    fn drain(&mut self) {
        while let Some(w) = self.work.pop_front() {
            let now = self.now;
            self.settled_ns = match &w {
                Work::Engine(_) => now,
                Work::Intent(i) => keel_router::stage::stamp_or(i.event_recv_ns, now),
                Work::Chain(u) => keel_router::stage::chain_settle_time(u, now),
                Work::Receipts { settled_ns, .. } => *settled_ns,
            };
            match w {
                Work::Engine(ev) => {
                    self.stats.engine_events += 1;
                    self.engine.process(&ev, &mut self.out);
                    if let Event::Quote(q) = ev {
                        let _ = self.quote_to_decision.record(now.saturating_sub(q.recv_ns).max(1));
                    }
                    for intent in self.out.drain(..) {
                        let _ =
                            self.decide.record(intent.decided_ns.saturating_sub(intent.event_recv_ns).max(1));
                        self.intents.push(intent.clone());
                        self.work.push_back(Work::Intent(Box::new(intent)));
                    }
                    if let Event::Outcome(o) = ev
                        && matches!(o.status, OutcomeStatus::Landed { .. })
                        && let Some(a) = self.awaiting.get_mut(o.portfolio.idx())
                    {
                        *a = true;
                    }
                    if matches!(ev, Event::Balance(_) | Event::Outcome(_)) {
                        for (i, pending) in self.awaiting.iter_mut().enumerate() {
                            let pid = PortfolioId(i as u32);
                            if *pending
                                && !matches!(
                                    self.engine.status(pid),
                                    Some(PortfolioStatus::AwaitingBalances(_))
                                )
                                && let Some(d) = self.engine.max_drift(pid)
                            {
                                self.drift_after_landing.push((i, d));
                                *pending = false;
                            }
                        }
                    }
                }
                Work::Intent(intent) => self.exec.on_intent(&intent, now, &mut self.actions),
                Work::Chain(u) => self.exec.on_chain(u, now, &mut self.actions),
                Work::Receipts { intent, receipts, .. } => {
                    self.exec.on_receipts(intent, &receipts, &mut self.actions)
                }
            }
            let actions = std::mem::take(&mut self.actions);
            for a in actions {
                self.act(a);
            }
        }
    }

    fn act(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Journal(record) => {
                if let JournalRecord::Signed(b) = &record {
                    self.chain.on_signed(b.intent, &b.txs);
                }
                self.journal(record);
            }
            Action::Submit { intent, request, event_recv_ns, .. } => {
                self.stats.bundles_sent += 1;
                if event_recv_ns > 0 {
                    let _ = self.tick_to_wire.record(now.saturating_sub(event_recv_ns).max(1));
                }
                let _ = self.relay_rtt.record(self.opts.latency_ns.max(1));
                self.relay.accepted += 1;
                self.journal(JournalRecord::Submitted {
                    intent,
                    relay: REPLAY_RELAY.into(),
                    block: request.block_number,
                    accepted: true,
                    detail: request.bundle_hash.to_string(),
                });
                let arrival_ns = now.saturating_add(self.opts.latency_ns);
                if let Err(e) = self.chain.on_sent(intent, &request, arrival_ns) {
                    tracing::error!(intent, error = %e, "replay: a bundle request without readable transactions");
                    *self.stats.bundles_failed.entry("request unreadable".into()).or_default() += 1;
                }
            }
            Action::FetchReceipts { intent, hashes, .. } => {
                self.receipt_reads.push((intent, hashes, now.saturating_add(RECEIPT_FALLBACK_NS)));
            }
            Action::Cancel { intent, .. } => {
                // A replay has no kill switch, so no cancel is ever asked; if one were, its
                // pending bundles would simply not be built into a block.
                self.chain.pending.retain(|p| p.intent != intent);
            }
            Action::Outcome(mut o) => {
                // Settled by the work being handled, stamped as the stage stamps it live.
                o.at_ns = self.settled_ns;
                self.outcomes.push((now as f64 / 1e9, o));
                self.chain.on_settled(o.intent);
                self.work.push_back(Work::Engine(Event::Outcome(o)));
            }
        }
    }

    /// Answers the receipt reads of `intent` (all of them when `None`) that are due by `t`; the
    /// answers settle at `read_ns` (the recorded read's time), or at `t` for reads answered for
    /// want of one.
    fn answer_receipts(&mut self, intent: Option<u64>, t: Nanos, read_ns: Option<Nanos>) {
        let mut i = 0;
        while i < self.receipt_reads.len() {
            let (id, _, due) = &self.receipt_reads[i];
            if intent == Some(*id) || *due <= t {
                let (intent, hashes, _) = self.receipt_reads.remove(i);
                let receipts = hashes.iter().filter_map(|h| self.chain.receipts.get(h).copied()).collect();
                let settled_ns = read_ns.filter(|&r| r > 0).unwrap_or(t.min(self.now));
                self.work.push_back(Work::Receipts { intent, receipts, settled_ns });
            } else {
                i += 1;
            }
        }
    }

    fn journal(&mut self, record: JournalRecord) {
        if self.journal.is_none() {
            return;
        }
        let ts = self.start_epoch_ms.saturating_add((self.now / 1_000_000) as i64);
        self.journal_batch.push((ts, record));
        if self.journal_batch.len() >= JOURNAL_BATCH {
            self.flush_journal_soft();
        }
    }

    fn flush_journal_soft(&mut self) {
        if let Some((store, names)) = &mut self.journal {
            match store.write_batch(&self.journal_batch, names) {
                Ok(()) => self.journal_records += self.journal_batch.len() as u64,
                Err(e) => tracing::error!(error = %e, "replay journal: batch not written"),
            }
        }
        self.journal_batch.clear();
    }

    /// A recorded head of `number` (with its header when it has one): build the blocks, then
    /// report the reads of them that were recorded before their head.
    fn on_head(&mut self, number: u64, header: Option<BlockHeader>) {
        let now = self.now;
        self.chain.build_to(number, header, now, &mut self.stats);
        let mut i = 0;
        while i < self.early_reads.len() {
            if self.early_reads[i].block() <= self.chain.head {
                let read = self.early_reads.remove(i);
                self.report_read(read);
            } else {
                i += 1;
            }
        }
    }

    /// Reports a read of a value the chain owns: the recorded run's read, when it had it, with the
    /// simulated chain's value — once the chain has built the block it was read at (a poller reads
    /// a block before its head record reaches the queues, so a read can be recorded before it).
    fn read(&mut self, read: OwnedRead) {
        self.stats.reads_superseded += 1;
        if read.block() <= self.chain.head {
            self.report_read(read);
            return;
        }
        // Bounded: a recording whose heads stop (damage, a truncated file) reports its oldest
        // early read at once rather than keeping every later one.
        if self.early_reads.len() >= MAX_EARLY_READS {
            let oldest = self.early_reads.remove(0);
            self.report_read(oldest);
        }
        self.early_reads.push(read);
    }

    fn report_read(&mut self, read: OwnedRead) {
        match read {
            OwnedRead::Balance { read, key } => {
                let amount = self.chain.balances.get(&key).copied().unwrap_or(read.amount);
                self.work.push_back(Work::Engine(Event::Balance(Balance { amount, ..read })));
            }
            OwnedRead::Nonce { account, block } => {
                if let Some(&nonce) = self.chain.nonces.get(&account) {
                    self.work.push_back(Work::Chain(ChainUpdate::Nonce { account, nonce, block }));
                }
            }
        }
    }

    /// One chain-side input from the recording.
    fn input(&mut self, input: Input) {
        let now = self.now;
        match input {
            Input::Engine(Event::Block(h)) => {
                self.on_head(h.number, Some(h));
                self.stats.chain_inputs += 1;
                self.work.push_back(Work::Engine(Event::Block(h)));
            }
            Input::Engine(Event::Timer { .. }) => {
                // A timer the recorded run's engine thread ran now: the replay runs it now too
                // (an older recording's timers are the replay's own, and none are recorded).
                if self.recorded_timers {
                    self.stats.timers_recorded += 1;
                    self.work.push_back(Work::Engine(Event::Timer { now_ns: now }));
                }
            }
            Input::Engine(Event::Balance(b)) => {
                let address = self
                    .balance_targets
                    .iter()
                    .find(|t| t.0 == b.portfolio && t.2 == b.token)
                    .map(|t| (t.1, t.3));
                match address {
                    // The chain owns this balance: the read is reported when the recorded run
                    // had it, with the simulated chain's value.
                    Some(key) if self.chain.balances.contains_key(&key) => {
                        self.read(OwnedRead::Balance { read: b, key });
                    }
                    Some(key) => {
                        self.chain.balances.insert(key, b.amount);
                        self.stats.chain_inputs += 1;
                        self.work.push_back(Work::Engine(Event::Balance(b)));
                    }
                    None => {
                        self.stats.chain_inputs += 1;
                        self.work.push_back(Work::Engine(Event::Balance(b)));
                    }
                }
            }
            Input::Engine(other) => {
                self.stats.chain_inputs += 1;
                self.work.push_back(Work::Engine(other));
            }
            Input::Router(u) => match u {
                ChainUpdate::Head(h) => {
                    self.on_head(h.number, Some(h));
                    self.stats.chain_inputs += 1;
                    self.work.push_back(Work::Chain(ChainUpdate::Head(h)));
                }
                ChainUpdate::PoolFeedHead { block } => {
                    self.on_head(block, None);
                    self.stats.chain_inputs += 1;
                    self.work.push_back(Work::Chain(u));
                }
                ChainUpdate::Pool { update, source } => {
                    self.chain.on_pool(update.pool as usize, update.block, &update.change);
                    self.stats.chain_inputs += 1;
                    self.work.push_back(Work::Chain(ChainUpdate::Pool { update, source }));
                }
                ChainUpdate::Nonce { account, block, .. } if self.chain.nonces.contains_key(&account) => {
                    self.read(OwnedRead::Nonce { account, block });
                }
                ChainUpdate::Nonce { account, nonce, .. } => {
                    self.chain.nonces.insert(account, nonce);
                    self.stats.chain_inputs += 1;
                    self.work.push_back(Work::Chain(u));
                }
                ChainUpdate::Allowance { owner, token, spender, amount } => {
                    self.chain.allowances.entry((owner, token, spender)).or_insert(amount);
                    self.stats.chain_inputs += 1;
                    self.work.push_back(Work::Chain(u));
                }
                ChainUpdate::PendingImpact { .. } => {
                    self.stats.chain_inputs += 1;
                    self.work.push_back(Work::Chain(u));
                }
            },
            Input::Receipts { intent, recv_ns, .. } => {
                // The recorded run read this intent's receipts now: the replay's read answers now,
                // settling when the recorded read did.
                self.stats.answers_ignored += 1;
                self.answer_receipts(Some(intent), now, Some(recv_ns));
            }
            Input::RelayAnswer(_) => self.stats.answers_ignored += 1,
        }
    }

    fn frame(&mut self, table: &InstrumentTable, bytes: &[u8]) {
        self.stats.frames += 1;
        self.feed.inc(Counter::Frames);
        let decoded = match decode(bytes) {
            Ok(d) => d,
            Err(e) => {
                self.feed.inc(Counter::Malformed);
                tracing::debug!(error = %e, "replay: malformed exchange frame skipped");
                return;
            }
        };
        self.feed.inc(Counter::of_decoded(&decoded));
        match map_decoded(&decoded, table, self.now) {
            Mapped::Event(ev) => {
                self.feed.inc(Counter::Pushed);
                self.work.push_back(Work::Engine(ev));
            }
            Mapped::UnknownSymbol => self.feed.inc(Counter::UnknownSymbol),
            Mapped::NoEvent => {}
        }
    }
}

/// Replays the recording `reader` with `spec` (tokens, pools, portfolios, engine and router
/// settings, keys; endpoints are not used). `progress` is called about every 2^16 records with the
/// counters so far.
pub fn replay(
    reader: &mut RecordReader,
    spec: &PipelineSpec,
    opts: ReplayOptions,
    mut progress: impl FnMut(&ReplayStats),
) -> Result<ReplayOutput, ReplayError> {
    let clock = Arc::new(ManualClock::new(0));
    let engine =
        Engine::new(spec.engine.clone(), &spec.tokens, &spec.portfolios, Box::new(Arc::clone(&clock)))
            .map_err(PipelineError::from)?;
    let table = InstrumentTable::new(engine.instrument_symbols().iter()).map_err(PipelineError::from)?;
    // Deterministic signatures (RFC 6979): presigned nonces are random, and two replays of one
    // recording must write the same journal.
    let mut deterministic = spec.clone();
    deterministic.router.presign_pool = 0;
    let exec = build_executor(&deterministic)?;
    let targets = poll_targets(spec, &engine)?;
    let mut info = Vec::with_capacity(spec.pools.len());
    let mut pools = Vec::with_capacity(spec.pools.len());
    for p in &spec.pools {
        let dex = spec.dexes.iter().find(|d| d.name == p.dex).ok_or_else(|| PipelineError::Unknown {
            field: format!("pools[{}].dex", p.name),
            what: "dex",
            name: p.dex.clone(),
        })?;
        let addr = |sym: &str| {
            spec.tokens.iter().find(|t| t.symbol == sym).map(|t| t.address).ok_or_else(|| {
                PipelineError::Unknown {
                    field: format!("pools[{}]", p.name),
                    what: "token",
                    name: sym.to_string(),
                }
            })
        };
        let (a, b) = (addr(&p.token0)?, addr(&p.token1)?);
        let (token0, token1) = if a < b { (a, b) } else { (b, a) };
        let v4 = match dex.kind {
            DexKind::UniswapV4 => Some((crate::pipeline::v4_key(spec, p)?, dex.via)),
            _ => None,
        };
        info.push(ChainPool {
            router: p.swap_target(dex),
            kind: dex.kind,
            token0,
            token1,
            fee: p.fee(),
            gas: p.swap_gas(dex.kind),
            v4,
            pool_id: (dex.kind == DexKind::BalancerWeighted).then_some(p.pool_id).flatten(),
            curve_indices: (dex.kind == DexKind::CurveStableswap)
                .then(|| p.curve_indices.unwrap_or_default()),
        });
        pools.push(empty_pool(spec, dex.kind, p)?);
    }
    let journal = match &opts.journal {
        Some(path) => Some((
            Store::open(path, SyncPolicy::Off)?,
            Names {
                tokens: spec.tokens.iter().map(|t| t.symbol.clone()).collect(),
                portfolios: spec.portfolios.iter().map(|p| p.name.clone()).collect(),
            },
        )),
        None => None,
    };
    let n = spec.portfolios.len();
    let start_epoch_ms = i64::try_from(reader.header().start_epoch_ns / 1_000_000).unwrap_or(i64::MAX);
    let mut d = Driver {
        engine,
        exec,
        clock,
        chain: ReplayChain {
            chain_id: spec.router.chain_id,
            info,
            pre: pools.clone(),
            pools,
            pre_block: 0,
            pools_block: 0,
            head: 0,
            header: None,
            balances: BTreeMap::new(),
            nonces: BTreeMap::new(),
            allowances: BTreeMap::new(),
            permit2: BTreeMap::new(),
            receipts: BTreeMap::new(),
            signed: BTreeMap::new(),
            pending: Vec::new(),
        },
        opts,
        stats: ReplayStats::default(),
        work: VecDeque::with_capacity(64),
        out: Vec::with_capacity(16),
        actions: Vec::with_capacity(16),
        decide: new_hist(),
        quote_to_decision: new_hist(),
        intents: Vec::new(),
        drift_after_landing: Vec::new(),
        samples: Vec::new(),
        start_values: vec![None; n],
        awaiting: vec![false; n],
        tick_to_wire: new_hist(),
        relay_rtt: new_hist(),
        relay: RelayCounters { name: REPLAY_RELAY.into(), ..Default::default() },
        outcomes: Vec::new(),
        feed: FeedStats::new(),
        balance_targets: targets.balances.clone(),
        journal,
        receipt_reads: Vec::new(),
        journal_batch: Vec::with_capacity(JOURNAL_BATCH),
        journal_records: 0,
        start_epoch_ms,
        now: 0,
        recorded_timers: crate::record::records_engine_timers(&reader.header().metadata_json),
        early_reads: Vec::new(),
        settled_ns: 0,
    };
    let sample_ns = spec.sample_every.as_nanos().max(1) as u64;
    let timer_ns = TIMER_EVERY.as_nanos() as u64;
    let (mut next_timer, mut next_sample) = (timer_ns, 0u64);
    while let Some(item) = reader.next_record() {
        let record = match item {
            Ok(r) => r,
            Err(issue) => {
                note_issue(&mut d.stats, &issue);
                continue;
            }
        };
        d.stats.records += 1;
        let t = record.recv_ns.max(d.now);
        d.run_timers_until(t, &mut next_timer, &mut next_sample, sample_ns);
        d.set_now(t);
        if d.receipt_reads.iter().any(|r| r.2 <= t) {
            d.answer_receipts(None, t, None);
            d.drain();
        }
        if record.kind == RecordKind::ExchangeFrame {
            d.frame(&table, record.payload);
        } else {
            // Decoded with the record's own time: a head, balance, pool change or receipt read is
            // recorded where it was taken, stamped when it was read, and the engine and router
            // decide by that stamp (the replay's clock itself never goes back).
            match codec::decode(record.kind, record.payload, record.recv_ns) {
                Ok(input) => d.input(input),
                Err(e) => {
                    d.stats.undecodable += 1;
                    tracing::warn!(file = record.file_seq, offset = record.offset, error = %e, "replay: record skipped");
                }
            }
        }
        d.drain();
        if d.stats.records.is_multiple_of(65_536) {
            progress(&d.stats);
        }
    }
    // Reads still owed at the end of the recording are answered there.
    d.answer_receipts(None, u64::MAX, None);
    d.drain();
    d.flush_journal_soft();
    d.stats.virtual_ns = d.now;
    progress(&d.stats);
    let exec_stats = d.exec.stats().clone();
    let mut fired = vec![0u64; d.start_values.len()];
    for i in &d.intents {
        if let Some(n) = fired.get_mut(i.portfolio.idx()) {
            *n += 1;
        }
    }
    let max_drift_fired = d.intents.iter().map(|i| i.drift).fold(0.0, f64::max);
    let max_drift_after = d.drift_after_landing.iter().map(|(_, x)| *x).fold(0.0, f64::max);
    let report = PipelineReport {
        duration_s: d.now as f64 / 1e9,
        engine: EngineRun {
            engine: d.engine,
            decide: d.decide,
            quote_to_decision: d.quote_to_decision,
            intents: d.intents,
            fired,
            max_drift_fired,
            drift_after_landing: d.drift_after_landing,
            max_drift_after,
            samples: d.samples,
            start_values: d.start_values,
        },
        exec: exec_stats,
        fills: d.exec.fills().to_vec(),
        intent_costs: d.exec.intent_costs().to_vec(),
        costs: d.exec.costs().to_vec(),
        tick_to_wire: d.tick_to_wire,
        relay_rtt: d.relay_rtt,
        relays: vec![d.relay],
        inclusion: d.exec.inclusion().clone(),
        outcomes: d.outcomes,
        outcomes_dropped: 0,
        feed: d.feed.snapshot(),
        blocks: d.stats.blocks,
        event_queue: QueueStats::default(),
        router_queue: QueueStats::default(),
        kill: KillSwitch::default().status(),
        router_threads: 0,
        dry_run_bundles: 0,
        journal_records: d.journal.as_ref().map(|_| Ok(d.journal_records)),
        recovered: Vec::new(),
        recording: None,
        chains: Vec::new(),
    };
    Ok(ReplayOutput { report, stats: d.stats })
}

/// A transaction as a bundle request carried it (an undecodable one keeps nonce 0: the block
/// refuses it as undecodable).
fn sent_tx(raw: alloy::primitives::Bytes) -> TxRecord {
    let nonce = TxEnvelope::decode_2718_exact(&raw).map(|e| e.nonce()).unwrap_or_default();
    TxRecord { hash: keccak256(&raw), nonce, raw }
}

/// An empty pool of the venue's kind, until the recording's first state of it (as the executor
/// starts its own).
fn empty_pool(
    spec: &PipelineSpec,
    kind: DexKind,
    p: &keel_router::config::PoolConfig,
) -> Result<Pool, PipelineError> {
    Ok(match kind {
        DexKind::UniswapV2 => Pool::V2 { reserve0: U256::ZERO, reserve1: U256::ZERO, fee_bps: p.fee() },
        DexKind::UniswapV3 => {
            let spacing = p
                .v3_tick_spacing()
                .ok_or_else(|| PipelineError::TickSpacingUnknown { pool: p.name.clone(), fee: p.fee() })?;
            Pool::V3(
                keel_amm::v3::V3Pool::new(p.fee(), spacing, keel_amm::v3::sqrt_price_math::Q96, 0, 0, &[])
                    .map_err(|source| PipelineError::BadV3Pool { pool: p.name.clone(), source })?,
            )
        }
        DexKind::BalancerWeighted => {
            Pool::Balancer(Box::new(keel_amm::pool::BalancerPair::unread(p.flavour.unwrap_or_default())))
        }
        DexKind::UniswapV4 => crate::pipeline::empty_v4(spec, p)?,
        DexKind::CurveStableswap => Pool::Curve(Box::new(keel_amm::pool::CurvePair::unread())),
    })
}

fn note_issue(stats: &mut ReplayStats, issue: &ReadIssue) {
    stats.issues += 1;
    tracing::warn!(%issue, "replay: recording damaged; reading on");
    if stats.issue_list.len() < MAX_ISSUES_KEPT {
        stats.issue_list.push(issue.to_string());
    }
}

/// Opens the recording in `dir` (the prefix `keel-record` writes).
pub fn open_recording(dir: &Path) -> Result<RecordReader, keel_recording::ReadError> {
    RecordReader::open(dir, crate::record::RECORDING_PREFIX)
}

#[cfg(test)]
mod settle_tests;

#[cfg(test)]
mod tests {
    use alloy::primitives::Bytes;
    use keel_router::signer::Signer;
    use keel_router::tx::{CallRequest, Fees, sign_call};

    use super::*;

    const ROUTER: Address = Address::repeat_byte(0xAA);
    const A: Address = Address::repeat_byte(0x01);
    const B: Address = Address::repeat_byte(0x02);
    const CHAIN: u64 = 31337;

    fn chain(account: Address) -> ReplayChain {
        let pool =
            Pool::V2 { reserve0: U256::from(1_000_000u64), reserve1: U256::from(2_000_000u64), fee_bps: 30 };
        let mut c = ReplayChain {
            chain_id: CHAIN,
            info: vec![ChainPool {
                router: ROUTER,
                kind: DexKind::UniswapV2,
                token0: A,
                token1: B,
                fee: 30,
                gas: 100_000,
                v4: None,
                pool_id: None,
                curve_indices: None,
            }],
            pools: vec![pool.clone()],
            pre: vec![pool],
            pre_block: 0,
            pools_block: 0,
            head: 0,
            header: Some(BlockHeader { number: 1, timestamp: 1_000, base_fee: 10, recv_ns: 0 }),
            balances: BTreeMap::new(),
            nonces: BTreeMap::new(),
            allowances: BTreeMap::new(),
            permit2: BTreeMap::new(),
            receipts: BTreeMap::new(),
            signed: BTreeMap::new(),
            pending: Vec::new(),
        };
        c.balances.insert((account, A), U256::from(10_000u64));
        c.nonces.insert(account, 0);
        c.allowances.insert((account, A, ROUTER), U256::MAX);
        c
    }

    fn swap(signer: &mut Signer, nonce: u64, amount_in: u64, min_out: U256) -> TxRecord {
        TxRecord::from(&signed_swap(signer, nonce, amount_in, min_out))
    }

    fn signed_swap(
        signer: &mut Signer,
        nonce: u64,
        amount_in: u64,
        min_out: U256,
    ) -> keel_router::tx::SignedTx {
        let input = IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: U256::from(amount_in),
            amountOutMin: min_out,
            path: vec![A, B],
            to: signer.address(),
            deadline: U256::from(2_000u64),
        }
        .abi_encode();
        let call =
            CallRequest { to: ROUTER, input: Bytes::from(input), gas_limit: 200_000, value: U256::ZERO };
        let fees = Fees { max_fee_per_gas: 100, max_priority_fee_per_gas: 1 };
        sign_call(signer, CHAIN, nonce, &call, fees).unwrap()
    }

    #[test]
    fn a_swap_that_meets_its_minimum_moves_the_balances_exactly_and_one_below_is_refused_whole() {
        let mut signer = Signer::dev(1).unwrap();
        let me = signer.address();
        let exact = keel_amm::v2::get_amount_out(
            U256::from(1_000u64),
            U256::from(1_000_000u64),
            U256::from(2_000_000u64),
            30,
        )
        .unwrap();

        // One wei more than the pool gives: refused, nothing moves.
        let mut c = chain(me);
        let mut state = c.pools.clone();
        let err =
            c.run_bundle(&[swap(&mut signer, 0, 1_000, exact + U256::from(1u8))], 1, &mut state).unwrap_err();
        assert_eq!(err, "output below amountOutMin");
        assert_eq!(c.nonces[&me], 0);
        assert_eq!(c.balances[&(me, A)], U256::from(10_000u64));
        assert_eq!(state, c.pools);

        // At the minimum: included; balances move by the exact V2 amounts, the nonce by one.
        let tx = swap(&mut signer, 0, 1_000, exact);
        c.run_bundle(std::slice::from_ref(&tx), 1, &mut state).unwrap();
        assert_eq!(c.balances[&(me, A)], U256::from(9_000u64));
        assert_eq!(c.balances[&(me, B)], exact);
        assert_eq!(c.nonces[&me], 1);
        assert_eq!(
            c.receipts[&tx.hash],
            ReceiptInfo { hash: tx.hash, block: 1, gas_used: 100_000, success: true }
        );
        // The block's later bundles see the swap: the pool moved.
        assert_ne!(state, c.pools);
        // The same transaction again: its nonce is used.
        assert_eq!(c.run_bundle(&[tx], 2, &mut state).unwrap_err(), "nonce mismatch");
    }

    /// A chain with two full-range V4 pools of one manager, A/B (0.3%) and B/C (0.05%), reached
    /// through `ROUTER` as `via`; the account holds 10 A.
    fn v4_chain(account: Address, via: V4Via) -> ReplayChain {
        use keel_amm::v3::{TickInfo, sqrt_price_math::Q96};
        use keel_amm::v4::{PoolKey, V4Pool};
        let c = Address::repeat_byte(0x03);
        let pool = |key: PoolKey| {
            let edge = (887_272 / key.tick_spacing) * key.tick_spacing;
            let l = 10i128.pow(21);
            let ticks =
                [TickInfo { index: -edge, liquidity_net: l }, TickInfo { index: edge, liquidity_net: -l }];
            Pool::V4(Box::new(V4Pool::new(key, Q96, 0, l as u128, key.fee, 0, &ticks).unwrap()))
        };
        let (ab, bc) = (PoolKey::hookless(A, B, 3000, 60), PoolKey::hookless(B, c, 500, 10));
        let info = |key: PoolKey| ChainPool {
            router: ROUTER,
            kind: DexKind::UniswapV4,
            token0: key.currency0,
            token1: key.currency1,
            fee: key.fee,
            gas: 130_000,
            v4: Some((key, via)),
            pool_id: None,
            curve_indices: None,
        };
        let mut chain = chain(account);
        chain.info = vec![info(ab), info(bc)];
        chain.pools = vec![pool(ab), pool(bc)];
        chain.pre = chain.pools.clone();
        chain.allowances.clear();
        chain.balances.insert((account, A), U256::from(10u128 * 10u128.pow(18)));
        chain
    }

    fn call(signer: &mut Signer, nonce: u64, to: Address, input: Vec<u8>) -> TxRecord {
        call_paying(signer, nonce, to, input, U256::ZERO)
    }

    fn call_paying(signer: &mut Signer, nonce: u64, to: Address, input: Vec<u8>, value: U256) -> TxRecord {
        let call = CallRequest { to, input: Bytes::from(input), gas_limit: 500_000, value };
        let fees = Fees { max_fee_per_gas: 100, max_priority_fee_per_gas: 1 };
        TxRecord::from(&sign_call(signer, CHAIN, nonce, &call, fees).unwrap())
    }

    /// Native ETH (currency `address(0)`) replays as `keel run` sends it: a V4 swap selling it
    /// carries the amount in as its value and needs no approval, through either router; the
    /// swap buying it back pays out native ETH; a value other than the amount in is refused whole;
    /// a netted cross of native ETH is a plain value transfer.
    #[test]
    fn native_eth_swaps_pay_their_value_and_a_native_cross_is_a_value_transfer() {
        use keel_amm::v3::{TickInfo, sqrt_price_math::Q96};
        use keel_amm::v4::{PoolKey, V4Pool};
        use keel_router::exec::{V4Route, universal_router_v4, v4_execute_actions};
        let eth = Address::ZERO;
        let key = PoolKey::hookless(eth, B, 3000, 60);
        let edge = (887_272 / key.tick_spacing) * key.tick_spacing;
        let l = 10i128.pow(21);
        let ticks =
            [TickInfo { index: -edge, liquidity_net: l }, TickInfo { index: edge, liquidity_net: -l }];
        let pool = Pool::V4(Box::new(V4Pool::new(key, Q96, 0, l as u128, key.fee, 0, &ticks).unwrap()));
        let amount = 10u128.pow(18);
        for via in [V4Via::V4Router, V4Via::UniversalRouter] {
            let mut signer = Signer::dev(1).unwrap();
            let me = signer.address();
            let mut chain = chain(me);
            chain.info = vec![ChainPool {
                router: ROUTER,
                kind: DexKind::UniswapV4,
                token0: eth,
                token1: B,
                fee: key.fee,
                gas: 130_000,
                v4: Some((key, via)),
                pool_id: None,
                curve_indices: None,
            }];
            chain.pools = vec![pool.clone()];
            chain.pre = chain.pools.clone();
            chain.allowances.clear();
            chain.balances.clear();
            chain.balances.insert((me, eth), U256::from(5 * amount));
            let mut state = chain.pools.clone();
            let out = state[0].quote_exact_in(true, U256::from(amount)).unwrap().amount_out;
            let sell_eth = |min_out: U256| {
                let route = V4Route::Single { key: &key, zero_for_one: true };
                match via {
                    V4Via::V4Router => v4_execute_actions(route, amount, min_out.to::<u128>()),
                    V4Via::UniversalRouter => {
                        universal_router_v4(route, amount, min_out.to::<u128>(), U256::from(2_000u64))
                    }
                }
            };
            // A value short of the amount in: refused, nothing moves.
            let short = call_paying(&mut signer, 0, ROUTER, sell_eth(out), U256::from(amount - 1));
            assert_eq!(
                chain.run_bundle(&[short], 1, &mut state).unwrap_err(),
                "value differs from the native amount in",
                "{via:?}"
            );
            // No approval sent, the value is the amount in: the exact quote, the ETH gone.
            let swap = call_paying(&mut signer, 0, ROUTER, sell_eth(out), U256::from(amount));
            chain.run_bundle(&[swap], 1, &mut state).unwrap();
            assert_eq!(chain.balances[&(me, eth)], U256::from(4 * amount), "{via:?}");
            assert_eq!(chain.balances[&(me, B)], out, "{via:?}");
            // Buying it back: no value sent (the pool pays out native ETH), exactly the quote.
            let b_in = out / U256::from(2u8);
            let back = state[0].quote_exact_in(false, b_in).unwrap().amount_out;
            let route = V4Route::Single { key: &key, zero_for_one: false };
            let (b_in, min) = (b_in.to::<u128>(), back.to::<u128>());
            let buy_eth = match via {
                V4Via::V4Router => v4_execute_actions(route, b_in, min),
                V4Via::UniversalRouter => universal_router_v4(route, b_in, min, U256::from(2_000u64)),
            };
            chain
                .allowances
                .insert((me, B, if via == V4Via::V4Router { ROUTER } else { PERMIT2_ADDRESS }), U256::MAX);
            chain.permit2.insert((me, B, ROUTER), U256::MAX);
            chain.run_bundle(&[call(&mut signer, 1, ROUTER, buy_eth)], 2, &mut state).unwrap();
            assert_eq!(chain.balances[&(me, eth)], U256::from(4 * amount) + back, "{via:?}");
            // A native cross: a plain transfer of 1 ETH to another account.
            let other = Address::repeat_byte(0x77);
            let cross = call_paying(&mut signer, 2, other, Vec::new(), U256::from(amount));
            chain.run_bundle(&[cross], 3, &mut state).unwrap();
            assert_eq!(chain.balances[&(me, eth)], U256::from(3 * amount) + back);
            assert_eq!(chain.balances[&(other, eth)], U256::from(amount));
            // More than it holds: refused.
            let overdraw = call_paying(&mut signer, 3, other, Vec::new(), U256::from(4 * amount));
            assert_eq!(
                chain.run_bundle(&[overdraw], 4, &mut state).unwrap_err(),
                "native balance short for a transfer"
            );
        }
    }

    /// A Balancer Vault swap replays as `keel run` sends it (`Vault.swap`, given in, from and to
    /// the account, after an approval of the Vault): it pays exactly the weighted pool's quote and
    /// is refused whole one wei above it; a swap naming a pool id not configured is refused.
    #[test]
    fn a_balancer_vault_swap_moves_the_balances_exactly() {
        use keel_amm::balancer::{PowFlavour, WeightedPool};
        let mut signer = Signer::dev(1).unwrap();
        let me = signer.address();
        let vault = Address::repeat_byte(0xBA);
        let pool_id = B256::repeat_byte(0x42);
        let e18 = U256::from(10u64).pow(U256::from(18u8));
        let half = U256::from(500_000_000_000_000_000u64);
        let weighted = WeightedPool::new(
            &[U256::from(1_000u64) * e18, U256::from(2_000u64) * e18],
            &[half, half],
            &[18, 18],
            U256::from(3_000_000_000_000_000u64),
            PowFlavour::V1,
        )
        .unwrap();
        let pool = Pool::Balancer(Box::new(keel_amm::pool::BalancerPair::new(weighted, 0, 1).unwrap()));
        let mut chain = chain(me);
        chain.info = vec![ChainPool {
            router: vault,
            kind: DexKind::BalancerWeighted,
            token0: A,
            token1: B,
            fee: 0,
            gas: 111_000,
            v4: None,
            pool_id: Some(pool_id),
            curve_indices: None,
        }];
        chain.pools = vec![pool];
        chain.pre = chain.pools.clone();
        chain.allowances.insert((me, A, vault), U256::MAX);
        chain.balances.insert((me, A), U256::from(10u64) * e18);
        let mut state = chain.pools.clone();
        let amount = e18;
        let quote = state[0].quote_exact_in(true, amount).unwrap().amount_out;
        let swap = |id: B256, limit: U256| {
            IBalancerVault::swapCall {
                singleSwap: IBalancerVault::SingleSwap {
                    poolId: id,
                    kind: IBalancerVault::SwapKind::GIVEN_IN,
                    assetIn: A,
                    assetOut: B,
                    amount,
                    userData: Bytes::new(),
                },
                funds: IBalancerVault::FundManagement {
                    sender: me,
                    fromInternalBalance: false,
                    recipient: me,
                    toInternalBalance: false,
                },
                limit,
                deadline: U256::from(2_000u64),
            }
            .abi_encode()
        };
        let unknown = call(&mut signer, 0, vault, swap(B256::repeat_byte(1), quote));
        assert_eq!(
            chain.run_bundle(&[unknown], 1, &mut state).unwrap_err(),
            "no configured pool for the hop on BalancerWeighted"
        );
        let greedy = call(&mut signer, 0, vault, swap(pool_id, quote + U256::from(1u8)));
        assert_eq!(chain.run_bundle(&[greedy], 1, &mut state).unwrap_err(), "output below amountOutMin");
        let exact = call(&mut signer, 0, vault, swap(pool_id, quote));
        chain.run_bundle(&[exact], 1, &mut state).unwrap();
        assert_eq!(chain.balances[&(me, A)], U256::from(9u64) * e18);
        assert_eq!(chain.balances[&(me, B)], quote);
        assert!(quote > e18 && quote < U256::from(2u8) * e18, "about 2 B per A less the fee: {quote}");
    }

    /// A Curve pool's own `exchange` replays in the index ABI the pool takes: it pays Keel's exact
    /// quote, is refused one wei above it, refused in the other ABI (the contract has no such
    /// function) and between coins that are not the configured pair, and needs the pool's approval.
    #[test]
    fn a_curve_exchange_moves_the_balances_exactly_in_the_pools_index_abi() {
        use keel_amm::curve::{AmpRamp, Flavour, StableSwapPool};
        let mut signer = Signer::dev(1).unwrap();
        let me = signer.address();
        let pool_addr = Address::repeat_byte(0xC0);
        let e18 = U256::from(10u64).pow(U256::from(18u8));
        // Three coins: B, a third coin, A (so the pair's coins are 2 and 0).
        let stable = StableSwapPool::new(
            Flavour::FactoryPlain,
            &[U256::from(1_000u64) * e18, U256::from(1_000u64) * e18, U256::from(900u64) * e18],
            &[e18; 3],
            AmpRamp::constant(U256::from(10_000u64)),
            4_000_000,
            keel_amm::curve::FACTORY_ADMIN_FEE,
        )
        .unwrap();
        let pool = Pool::Curve(Box::new(keel_amm::pool::CurvePair::new(stable, 2, 0, 1_000).unwrap()));
        let mut chain = chain(me);
        chain.info = vec![ChainPool {
            router: pool_addr,
            kind: DexKind::CurveStableswap,
            token0: A,
            token1: B,
            fee: 0,
            gas: 150_000,
            v4: None,
            pool_id: None,
            curve_indices: Some(CurveIndices::Uint128),
        }];
        chain.pools = vec![pool];
        chain.pre = chain.pools.clone();
        chain.balances.insert((me, A), U256::from(10u64) * e18);
        let mut state = chain.pools.clone();
        let dx = e18;
        let quote = state[0].quote_exact_in(true, dx).unwrap().amount_out;
        let u128_call = |i: u128, j: u128, min_dy: U256| {
            ICurveStableSwapU128::exchangeCall { i, j, dx, min_dy }.abi_encode()
        };
        let no_allowance = call(&mut signer, 0, pool_addr, u128_call(2, 0, quote));
        assert_eq!(chain.run_bundle(&[no_allowance], 1, &mut state).unwrap_err(), "allowance short");
        chain.allowances.insert((me, A, pool_addr), U256::MAX);
        let int128 = ICurveStableSwap::exchangeCall { i: 2, j: 0, dx, min_dy: quote }.abi_encode();
        let other_abi = call(&mut signer, 0, pool_addr, int128);
        assert_eq!(
            chain.run_bundle(&[other_abi], 1, &mut state).unwrap_err(),
            "not a curve exchange of the pool's index type"
        );
        let third_coin = call(&mut signer, 0, pool_addr, u128_call(2, 1, U256::ZERO));
        assert_eq!(
            chain.run_bundle(&[third_coin], 1, &mut state).unwrap_err(),
            "curve exchange between coins that are not the configured pair"
        );
        let greedy = call(&mut signer, 0, pool_addr, u128_call(2, 0, quote + U256::from(1u8)));
        assert_eq!(chain.run_bundle(&[greedy], 1, &mut state).unwrap_err(), "output below amountOutMin");
        let exact = call(&mut signer, 0, pool_addr, u128_call(2, 0, quote));
        chain.run_bundle(&[exact], 1, &mut state).unwrap();
        assert_eq!(chain.balances[&(me, A)], U256::from(9u64) * e18);
        assert_eq!(chain.balances[&(me, B)], quote);
        let Pool::Curve(after) = &state[0] else { unreachable!() };
        assert_eq!(after.pool().balances()[2], U256::from(901u64) * e18, "the pool holds the A sold");
        assert!(
            quote > e18 && quote < e18 * U256::from(11u8) / U256::from(10u8),
            "A is the scarcer coin: {quote}"
        );
    }

    /// V4 swaps replay as `keel run` sends them: through a V4Router after an ERC-20 approval, and
    /// through a Universal Router after the approval of Permit2 and Permit2's of the router; one
    /// pool or a two-hop path, each paying Keel's exact quote and refused one wei above it.
    #[test]
    fn v4_swaps_through_a_v4_router_and_a_universal_router_move_the_balances_exactly() {
        use keel_amm::v4::PoolKey;
        use keel_router::exec::{V4Route, universal_router_v4, v4_execute_actions};
        let c = Address::repeat_byte(0x03);
        let (ab, bc) = (PoolKey::hookless(A, B, 3000, 60), PoolKey::hookless(B, c, 500, 10));
        let amount = 10u128.pow(18);
        let hops = [(ab, B), (bc, c)];
        let path = V4Route::Path { currency_in: A, hops: &hops };
        for via in [V4Via::V4Router, V4Via::UniversalRouter] {
            let mut signer = Signer::dev(1).unwrap();
            let me = signer.address();
            let mut chain = v4_chain(me, via);
            let mut state = chain.pools.clone();
            // Keel's quotes on the pools, hop by hop.
            let single = state[0].quote_exact_in(A == ab.currency0, U256::from(amount)).unwrap().amount_out;
            let both = state[1].quote_exact_in(B == bc.currency0, single).unwrap().amount_out;
            let swap = |min_out: U256| {
                let min_out = min_out.to::<u128>();
                match via {
                    V4Via::V4Router => v4_execute_actions(path, amount, min_out),
                    V4Via::UniversalRouter => {
                        universal_router_v4(path, amount, min_out, U256::from(2_000u64))
                    }
                }
            };
            let erc20 = |spender| IERC20::approveCall { spender, amount: U256::MAX }.abi_encode();
            let mut bundle = match via {
                V4Via::V4Router => vec![call(&mut signer, 0, A, erc20(ROUTER))],
                V4Via::UniversalRouter => {
                    let grant = IPermit2::approveCall {
                        token: A,
                        spender: ROUTER,
                        amount: alloy::primitives::aliases::U160::MAX,
                        expiration: alloy::primitives::aliases::U48::MAX,
                    };
                    vec![
                        call(&mut signer, 0, A, erc20(PERMIT2_ADDRESS)),
                        call(&mut signer, 1, PERMIT2_ADDRESS, grant.abi_encode()),
                    ]
                }
            };
            let n = bundle.len() as u64;
            // One wei above the quote: refused whole.
            let greedy =
                [bundle.clone(), vec![call(&mut signer, n, ROUTER, swap(both + U256::from(1u8)))]].concat();
            assert_eq!(
                chain.run_bundle(&greedy, 1, &mut state).unwrap_err(),
                "output below amountOutMin",
                "{via:?}"
            );
            if via == V4Via::UniversalRouter {
                // The Universal Router's deadline: one second before the block is too late.
                let late = universal_router_v4(path, amount, both.to(), U256::from(999u64));
                let stale = [bundle.clone(), vec![call(&mut signer, n, ROUTER, late)]].concat();
                assert_eq!(chain.run_bundle(&stale, 1, &mut state).unwrap_err(), "deadline passed");
                // Without Permit2's grant to the router, the router cannot pull.
                let no_grant =
                    [bundle[..1].to_vec(), vec![call(&mut signer, 1, ROUTER, swap(both))]].concat();
                assert_eq!(
                    chain.run_bundle(&no_grant, 1, &mut state).unwrap_err(),
                    "Permit2 allowance short"
                );
            }
            bundle.push(call(&mut signer, n, ROUTER, swap(both)));
            chain.run_bundle(&bundle, 1, &mut state).unwrap();
            assert_eq!(chain.balances[&(me, A)], U256::from(9u128 * amount), "{via:?}");
            assert_eq!(chain.balances[&(me, c)], both, "{via:?}: received exactly the quote");
            assert_eq!(chain.balances.get(&(me, B)).copied().unwrap_or_default(), U256::ZERO);
            assert_eq!(chain.receipts[&bundle[n as usize].hash].gas_used, 260_000, "two pools' gas");

            // One pool: the single-swap action.
            let mut chain = v4_chain(me, via);
            let mut state = chain.pools.clone();
            let one = match via {
                V4Via::V4Router => {
                    keel_router::exec::v4_exact_in_single(&ab, A == ab.currency0, amount, single.to())
                }
                V4Via::UniversalRouter => keel_router::exec::universal_router_v4_swap(
                    &ab,
                    A == ab.currency0,
                    amount,
                    single.to(),
                    U256::from(2_000u64),
                ),
            };
            bundle[n as usize] = call(&mut signer, n, ROUTER, one);
            chain.run_bundle(&bundle, 1, &mut state).unwrap();
            assert_eq!(chain.balances[&(me, B)], single, "{via:?}: one pool, exactly the quote");
        }
    }

    /// A bundle request as the executor sends it, of `txs` for `block`.
    fn request(
        txs: &[keel_router::tx::SignedTx],
        block: u64,
        uuid: Option<&str>,
    ) -> keel_router::bundle::SignedBundleRequest {
        let mut auth = Signer::dev(9).unwrap();
        let opts = keel_router::bundle::BundleOptions {
            replacement_uuid: uuid.map(str::to_owned),
            ..Default::default()
        };
        keel_router::bundle::build_send_bundle(txs, block, &opts, &mut auth, 1).unwrap()
    }

    /// A netted batch: intent 1's bundle is re-signed with intent 2 joining it, under the same
    /// `replacementUuid`, for the same block; each one's `Signed` record names only its own
    /// transaction under the batch's hash. The second request replaces the first (which alone
    /// would spend intent 1's nonce and void the batch), and the chain runs it as sent, both
    /// transactions. A member re-sent alone after the other settled (a bundle that no `Signed`
    /// record names) lands too.
    #[test]
    fn a_netted_batch_runs_every_members_transactions_and_a_member_resent_alone_lands() {
        let (mut one, mut two) = (Signer::dev(1).unwrap(), Signer::dev(2).unwrap());
        let mut c = chain(one.address());
        c.balances.insert((two.address(), A), U256::from(10_000u64));
        c.nonces.insert(two.address(), 0);
        c.allowances.insert((two.address(), A, ROUTER), U256::MAX);
        let mut stats = ReplayStats::default();
        c.build_to(1, None, 0, &mut stats);

        let first = signed_swap(&mut one, 0, 900, U256::from(1u8));
        c.on_signed(1, &[TxRecord::from(&first)]);
        c.on_sent(1, &request(std::slice::from_ref(&first), 2, Some("batch-1")), 0).unwrap();
        let (a, b) = (
            signed_swap(&mut one, 0, 1_000, U256::from(1u8)),
            signed_swap(&mut two, 0, 1_000, U256::from(1u8)),
        );
        c.on_signed(1, &[TxRecord::from(&a)]);
        c.on_signed(2, &[TxRecord::from(&b)]);
        c.on_sent(1, &request(&[a.clone(), b.clone()], 2, Some("batch-1")), 5).unwrap();
        c.build_to(2, None, 10, &mut stats);
        assert_eq!((stats.bundles_included, stats.bundles_failed.len()), (1, 0), "{stats:?}");
        assert!(c.receipts.contains_key(&a.hash) && c.receipts.contains_key(&b.hash));
        assert!(!c.receipts.contains_key(&first.hash));
        assert_eq!(c.balances[&(one.address(), A)], U256::from(9_000u64), "the re-signed version ran");
        assert_eq!((c.nonces[&one.address()], c.nonces[&two.address()]), (1, 1));

        // Intent 1 settles: its receipts go (both versions'), intent 2's stay until it settles.
        assert_eq!(c.signed[&1], vec![first.hash, a.hash]);
        c.on_settled(1);
        assert!(!c.receipts.contains_key(&a.hash) && c.receipts.contains_key(&b.hash));
        c.on_settled(2);
        assert!(c.receipts.is_empty() && c.signed.is_empty());

        // A batch member re-sent on its own (its batch partner settled): no `Signed` record names
        // this bundle, and it lands.
        let again = signed_swap(&mut two, 1, 1_000, U256::from(1u8));
        c.on_signed(3, &[TxRecord::from(&again)]);
        c.on_sent(3, &request(std::slice::from_ref(&again), 3, None), 20).unwrap();
        c.build_to(3, None, 30, &mut stats);
        assert_eq!(stats.bundles_included, 2, "{stats:?}");
        assert!(c.receipts.contains_key(&again.hash));

        // A request whose body is not a bundle is refused by name, not run.
        let mut bad = request(std::slice::from_ref(&again), 4, None);
        bad.body = b"{}".to_vec();
        assert!(c.on_sent(4, &bad, 40).is_err());
    }

    #[test]
    fn a_bundle_is_built_into_its_block_only_if_it_arrived_by_the_cutoff() {
        let mut signer = Signer::dev(1).unwrap();
        let me = signer.address();
        let mut stats = ReplayStats::default();
        let mut c = chain(me);
        c.build_to(1, None, 0, &mut stats);
        let on_time = swap(&mut signer, 0, 1_000, U256::from(1u8));
        let late = swap(&mut signer, 1, 1_000, U256::from(1u8));
        for (i, (tx, arrival)) in [(&on_time, 900u64), (&late, 1_100)].into_iter().enumerate() {
            c.pending.push(PendingBundle {
                intent: i as u64,
                block: 2,
                arrival_ns: arrival,
                txs: vec![tx.clone()],
                uuid: None,
            });
        }
        c.build_to(2, None, 1_000, &mut stats);
        // Blocks 1 (the first head) and 2 were built; one bundle made block 2's cutoff.
        assert_eq!((stats.blocks, stats.bundles_included, stats.bundles_late), (2, 1, 1));
        assert!(c.receipts.contains_key(&on_time.hash) && !c.receipts.contains_key(&late.hash));
        assert_eq!(c.nonces[&me], 1);
    }
}
