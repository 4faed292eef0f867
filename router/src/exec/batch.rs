//! Batches: every rebalance decided for the same target block joins one batch, sent as ONE atomic
//! bundle under one `replacementUuid`.
//!
//! The first rebalance of a block is signed and sent at once, as a batch of one, so batching adds no
//! latency to it. Each later rebalance for that block re-plans the batch with it included and re-sends
//! it under the same uuid (the relay keeps the newest version): opposite legs of different
//! portfolios on one pair cross at the reference mid as ERC-20 transfers between their accounts
//! ([`super::net`]); the residuals are routed through the pools in batch order, each swap quoted on
//! the pool state the swaps before it leave. Every member keeps its own account and nonces; a
//! member's transactions are re-signed (same first nonce) only when its calls changed.
//!
//! A rebalance refused by a risk limit, the oracle guard or the kill switch never joins, so it cannot
//! block the others; one that cannot be planned into the batch is refused and the batch stays as it
//! was. Once the head moves past the batch's block the batch is closed: it is retargeted as a whole
//! (one bundle) until it lands or expires, and each member settles from its own account's nonce
//! and receipts.

use alloy::primitives::{Address, U256};
use alloy::sol_types::SolCall;
use keel_engine::Nanos;
use keel_engine::event::BlockHeader;
use keel_engine::intent::RebalanceIntent;
use keel_engine::record::JournalRecord;

use super::net::{self, NetLeg};
use super::{
    Action, ExecError, Executor, FillRecord, Inflight, IntentCost, MAX_REPORT_RECORDS,
    buy_per_wei_from_exchange, raw_price, scale_amount,
};
use crate::bundle::{BundleOptions, build_send_bundle};
use crate::cost::{self, RebalanceCost};
use crate::plan::{self, GasPricing};
use crate::tx::{CallRequest, Fees, SignedTx, TxError, sign_call};
use keel_amm::abi::IERC20;

/// Most rebalances in one batch; more decided for the same block start another batch (re-planning
/// a batch costs one routing per member, so its size bounds the latency of a late joiner).
pub const MAX_BATCH_MEMBERS: usize = 16;
/// Gas of one ERC-20 transfer of a cross, for its cost (a recipient's first balance slot is the
/// dearest case).
pub const TRANSFER_GAS: u64 = 52_000;
/// Gas limit of a cross's transfer.
pub const TRANSFER_GAS_LIMIT: u64 = 80_000;
/// Gas of a cross's native-ETH transfer: a plain value transfer to an account (no code runs).
pub const NATIVE_TRANSFER_GAS: u64 = 21_000;

/// A rebalance admitted to a batch: its intent at its chosen size.
#[derive(Debug, Clone)]
pub(super) struct Member {
    /// The intent.
    pub intent: RebalanceIntent,
    /// Fraction of the to-target trade chosen (1 in band mode).
    pub fraction: f64,
    /// Its cost routed alone, on the pool state it was decided on.
    pub alone: RebalanceCost,
    /// What is charged to its portfolio's cost for the batch's current version.
    pub charged: RebalanceCost,
}

/// The batch of the next block, still accepting rebalances.
#[derive(Debug, Clone)]
pub(super) struct OpenBatch {
    /// Its `replacementUuid`.
    pub uuid: String,
    /// The block it is built for; closed once the head reaches it.
    pub target_block: u64,
    /// Members in batch order (ascending intent id: the order their transactions appear in).
    pub members: Vec<Member>,
}

/// One member's transactions before signing, with what they trade and cost.
#[derive(Debug, Default)]
struct MemberPlan {
    calls: Vec<CallRequest>,
    granted: Vec<(Address, Address, Address)>,
    swap_pool: Vec<Option<(usize, u32)>>,
    fills: Vec<FillRecord>,
    cost: RebalanceCost,
}

impl Executor {
    /// Puts an admitted rebalance into the batch of the next block (a new one when there is none,
    /// netting is off or the batch is full), re-plans and signs the batch, and returns the journal
    /// records and the submission of its new version.
    pub(super) fn join_batch(
        &mut self,
        member: Member,
        head: BlockHeader,
        gas: &GasPricing,
        now_ns: Nanos,
    ) -> Result<Vec<Action>, ExecError> {
        let target = head.number.saturating_add(1);
        let event_recv_ns = member.intent.event_recv_ns;
        let intent_id = member.intent.id;
        let open = self
            .open_batch
            .as_ref()
            .filter(|b| self.cfg.netting && b.target_block == target && b.members.len() < MAX_BATCH_MEMBERS);
        let (uuid, mut members) = match open {
            Some(b) => (b.uuid.clone(), b.members.clone()),
            None => (format!("keel-batch-{intent_id}"), Vec::new()),
        };
        members.push(member);
        members.sort_by_key(|m| m.intent.id);
        // Approvals granted by this batch's current version do not count as granted when it is re-planned.
        let own_grants: Vec<(Address, Address, Address)> = members
            .iter()
            .filter_map(|m| self.inflight.iter().find(|f| f.intent == m.intent.id))
            .flat_map(|f| f.approvals.iter().copied())
            .collect();
        let plans = self.plan_batch(&members, &head, gas, &own_grants)?;

        // Sign what changed; nothing is committed until the whole batch is signed and encoded.
        let fees =
            Fees::from_base_fee(head.base_fee, self.cfg.base_fee_multiplier, self.cfg.priority_fee_wei);
        let mut signed: Vec<Option<Vec<SignedTx>>> = Vec::with_capacity(members.len());
        for (m, plan) in members.iter().zip(&plans) {
            let account = m.intent.account;
            let current = self.inflight.iter().find(|f| f.intent == m.intent.id);
            if current.is_some_and(|f| f.calls == plan.calls) {
                signed.push(None);
                continue;
            }
            let first = match current {
                Some(f) => f.first_nonce,
                None => self.nonces.peek(account).ok_or(TxError::UnknownNonce(account))?,
            };
            let signer = self.signers.get_mut(&account).ok_or(ExecError::NoSigner(account))?;
            let txs = plan
                .calls
                .iter()
                .enumerate()
                .map(|(j, call)| sign_call(signer, self.cfg.chain_id, first + j as u64, call, fees))
                .collect::<Result<Vec<_>, _>>()?;
            signed.push(Some(txs));
        }
        let mut bundle_txs: Vec<SignedTx> = Vec::new();
        for (m, txs) in members.iter().zip(&signed) {
            match txs {
                Some(t) => bundle_txs.extend(t.iter().cloned()),
                None => {
                    if let Some(f) = self.inflight.iter().find(|f| f.intent == m.intent.id) {
                        bundle_txs.extend(f.txs.iter().cloned());
                    }
                }
            }
        }
        self.request_id += 1;
        let block_uuid = super::settle::block_uuid(&uuid, target, self.cfg.target_blocks);
        let opts = BundleOptions { replacement_uuid: Some(block_uuid), ..Default::default() };
        let request = build_send_bundle(&bundle_txs, target, &opts, &mut self.auth, self.request_id)?;
        // With target_blocks > 1, the same version for the blocks after (not before a simulation:
        // the next head sends them once it passed).
        let later = match self.cfg.presimulate {
            None => {
                let deadline = head.number.saturating_add(self.cfg.bundle_blocks);
                let blocks = self.extra_blocks(target, deadline);
                self.window_requests(&bundle_txs, blocks, &uuid)?
            }
            Some(_) => Vec::new(),
        };
        let simulate = match self.cfg.presimulate {
            Some(_) => {
                self.request_id += 1;
                Some(crate::bundle::build_call_bundle(&bundle_txs, target, &mut self.auth, self.request_id)?)
            }
            None => None,
        };

        // Commit.
        let mut actions = Vec::with_capacity(members.len() + 1);
        let deadline_block = head.number.saturating_add(self.cfg.bundle_blocks);
        for ((m, plan), txs) in members.iter_mut().zip(plans).zip(signed) {
            let p = m.intent.portfolio.idx();
            if self.costs.len() <= p {
                self.costs.resize(p + 1, RebalanceCost::default());
            }
            self.costs[p].sub(&m.charged);
            self.costs[p].add(&plan.cost);
            m.charged = plan.cost;
            self.record_for_report(m, plan.fills);
            let Some(txs) = txs else { continue };
            self.stats.txs_signed += txs.len() as u64;
            let account = m.intent.account;
            let count = txs.len() as u64;
            let index = match self.inflight.iter().position(|f| f.intent == m.intent.id) {
                Some(i) => {
                    let f = &mut self.inflight[i];
                    let old = std::mem::replace(&mut f.txs, txs);
                    f.superseded.extend(old.iter().map(|t| t.hash));
                    f.version += 1;
                    f.same_shape = false;
                    f.last_nonce = f.first_nonce + count - 1;
                    f.calls = plan.calls;
                    f.swap_pool = plan.swap_pool;
                    for key in std::mem::replace(&mut f.approvals, plan.granted) {
                        self.allowances.remove(&key);
                    }
                    let first = f.first_nonce;
                    self.nonces.reset_to_chain(account, first + count);
                    i
                }
                None => {
                    let first = self.nonces.reserve(account, count)?;
                    self.inflight.push(Inflight {
                        intent: m.intent.id,
                        portfolio: m.intent.portfolio,
                        account,
                        first_nonce: first,
                        last_nonce: first + count - 1,
                        txs,
                        calls: plan.calls,
                        target_block: target,
                        deadline_block,
                        landed: false,
                        receiptless_landings: 0,
                        uuid: uuid.clone(),
                        superseded: Vec::new(),
                        same_shape: true,
                        version: 0,
                        first_sent_ns: now_ns,
                        first_target_block: target,
                        landed_ns: 0,
                        cancelled: false,
                        simulating: None,
                        unsimulated: false,
                        approvals: plan.granted,
                        swap_pool: plan.swap_pool,
                    });
                    self.inflight.len() - 1
                }
            };
            for key in &self.inflight[index].approvals {
                if self.allowances.insert(*key, U256::MAX) != Some(U256::MAX) {
                    self.stats.approvals += 1;
                }
            }
            actions.push(Action::Journal(JournalRecord::Signed(Box::new(
                self.signed_record(index, request.bundle_hash),
            ))));
        }
        if members.len() > 1 {
            tracing::info!(
                intent = intent_id,
                batch = %uuid,
                members = members.len(),
                txs = bundle_txs.len(),
                "rebalance joined the block's batch"
            );
        }
        if simulate.is_some() {
            for f in self.inflight.iter_mut().filter(|f| f.uuid == uuid) {
                f.simulating = Some(request.bundle_hash);
            }
        }
        self.open_batch = Some(OpenBatch { uuid, target_block: target, members });
        actions.push(Action::Submit {
            intent: intent_id,
            request,
            event_recv_ns,
            ready_ns: now_ns,
            simulate,
        });
        for request in later {
            self.stats.submissions += 1;
            actions.push(Action::Submit {
                intent: intent_id,
                request,
                event_recv_ns: 0,
                ready_ns: now_ns,
                simulate: None,
            });
        }
        Ok(actions)
    }

    /// Plans a batch: nets opposite legs, then routes every residual in batch order on one scratch
    /// copy of the pools. Approvals are judged against the known allowances, minus `own_grants`.
    fn plan_batch(
        &self,
        members: &[Member],
        head: &BlockHeader,
        gas: &GasPricing,
        own_grants: &[(Address, Address, Address)],
    ) -> Result<Vec<MemberPlan>, ExecError> {
        let mut legs: Vec<NetLeg> = Vec::new();
        let mut origin: Vec<(usize, usize)> = Vec::new();
        for (m, member) in members.iter().enumerate() {
            for (k, leg) in member.intent.legs.iter().enumerate() {
                let (sell, buy) = (&self.tokens[leg.sell.idx()], &self.tokens[leg.buy.idx()]);
                legs.push(NetLeg {
                    member: m,
                    sell: sell.address,
                    buy: buy.address,
                    amount_in: scale_amount(leg.amount_in, member.fraction),
                    price: raw_price(leg.reference_price, sell, buy),
                    notional: leg.notional * member.fraction,
                });
                origin.push((m, k));
            }
        }
        let netting = net::net(&legs);
        let mut plans: Vec<MemberPlan> = members.iter().map(|_| MemberPlan::default()).collect();
        let native_value = self.native_value(&legs).or_else(|| {
            members.iter().find_map(|m| m.intent.native_price.filter(|v| v.is_finite() && *v > 0.0))
        });
        let gas_native = |units: u64| units as f64 * gas.gas_price_wei as f64 / 1e18;
        let symbol = |a: Address| {
            self.tokens.iter().find(|t| t.address == a).map_or_else(|| a.to_string(), |t| t.symbol.clone())
        };
        // The crosses: two transfers each, before any swap of the batch.
        for c in &netting.crosses {
            let (s, b) = (&legs[c.seller], &legs[c.buyer]);
            let (ms, mb) = (s.member, b.member);
            let (to_buyer, to_seller) = (members[mb].intent.account, members[ms].intent.account);
            for (m, token, to, amount, got, other) in
                [(ms, s.sell, to_buyer, c.sold, c.paid, mb), (mb, b.sell, to_seller, c.paid, c.sold, ms)]
            {
                let plan = &mut plans[m];
                // Native ETH (the zero address) crosses as a plain value transfer.
                let (call, units) = if token.is_zero() {
                    (
                        CallRequest {
                            to,
                            input: Default::default(),
                            gas_limit: NATIVE_TRANSFER_GAS,
                            value: amount,
                        },
                        NATIVE_TRANSFER_GAS,
                    )
                } else {
                    (
                        CallRequest {
                            to: token,
                            input: IERC20::transferCall { to, amount }.abi_encode().into(),
                            gas_limit: TRANSFER_GAS_LIMIT,
                            value: U256::ZERO,
                        },
                        TRANSFER_GAS,
                    )
                };
                plan.calls.push(call);
                plan.swap_pool.push(None);
                plan.fills.push(FillRecord {
                    intent: members[m].intent.id,
                    pool: format!("cross:{}", members[other].intent.portfolio.0),
                    sell: symbol(token),
                    buy: symbol(if token == s.sell { s.buy } else { b.buy }),
                    amount_in: amount,
                    amount_out: got,
                    amount_out_min: got,
                });
                plan.cost.gas_units += units;
                plan.cost.gas_native += gas_native(units);
                plan.cost.gas += native_value.map_or(0.0, |v| gas_native(units) * v);
                plan.cost.notional += c.notional;
                plan.cost.crossed += c.notional;
            }
        }
        // The residuals, routed in batch order.
        let deadline = U256::from(head.timestamp.saturating_add(self.cfg.swap_deadline_secs));
        // Until `moved` is told what the routes moved, the whole copy counts as spoiled: a plan
        // that fails part way leaves it to be copied back in full.
        let mut copy = self.scratch.borrow_mut();
        let scratch = copy.synced(&self.pools);
        let mut routed: Vec<usize> = Vec::new();
        let mut granted_here: Vec<(Address, Address, Address)> = Vec::new();
        for (k, leg) in legs.iter().enumerate() {
            let amount = netting.residual[k];
            if amount.is_zero() {
                continue;
            }
            let (m, _) = origin[k];
            let account = members[m].intent.account;
            let buy_per_native = self.native_price_in(leg.buy, scratch).or_else(|| {
                let native = members[m].intent.native_price?;
                buy_per_wei_from_exchange(native, leg.notional, leg.amount_in, leg.price)
            });
            let route = plan::route_exact_in(
                scratch,
                leg.sell,
                leg.buy,
                amount,
                gas,
                buy_per_native,
                Some(leg.price),
                self.cfg.max_pool_deviation,
                self.cfg.slippage_bps,
            )?;
            routed.extend(super::intent::moved_pools(std::iter::once(&route)));
            let residual_notional = leg.notional * fraction_of(amount, leg.amount_in);
            let plan = &mut plans[m];
            plan.cost.add(&cost::leg_cost(
                &self.pools,
                &route,
                residual_notional,
                gas.gas_price_wei,
                native_value,
            ));
            for fill in &route.fills {
                let venue = self.venues[fill.pools[0]];
                let key = (account, leg.sell, venue.router);
                let known = if own_grants.contains(&key) {
                    U256::ZERO
                } else {
                    self.allowances.get(&key).copied().unwrap_or(U256::ZERO)
                };
                // Native ETH is paid as the call's value: nothing to approve.
                let native_in = leg.sell.is_zero();
                if !native_in && known < fill.amount_in && !granted_here.contains(&key) {
                    let n = super::approve::push_approval(&mut plan.calls, leg.sell, &venue);
                    granted_here.push(key);
                    plan.granted.push(key);
                    plan.swap_pool.extend(std::iter::repeat_n(None, n));
                }
                // The fill's limit: its base gas plus the margin, plus the worst-case gas of every
                // V3 tick its simulation crosses (plan::V3_GAS_LIMIT_PER_TICK_CROSSED) — and never
                // under the same from the pools' configured gas. A learned estimate prices gas, but a
                // limit it set too low would revert every later swap through the pool, and then no
                // receipt would ever correct it; a limit above what is used costs nothing.
                let crossed: u32 = fill.hops.iter().map(|h| h.ticks_crossed).fold(0, u32::saturating_add);
                let gas_limit = fill.gas_limit.max(self.configured_gas_limit(&fill.pools, crossed));
                let input = self.swap_calldata(fill, account, deadline)?;
                let value = if native_in { fill.amount_in } else { U256::ZERO };
                plan.calls.push(CallRequest { to: venue.router, input, gas_limit, value });
                plan.swap_pool.push((fill.pools.len() == 1).then(|| (fill.pools[0], crossed)));
                plan.fills.push(FillRecord {
                    intent: members[m].intent.id,
                    pool: fill
                        .pools
                        .iter()
                        .map(|&p| self.pools[p].meta.id.as_str())
                        .collect::<Vec<_>>()
                        .join(">"),
                    sell: symbol(leg.sell),
                    buy: symbol(leg.buy),
                    amount_in: fill.amount_in,
                    amount_out: fill.amount_out,
                    amount_out_min: fill.amount_out_min,
                });
            }
        }
        for (m, plan) in plans.iter_mut().enumerate() {
            if plan.calls.is_empty() {
                return Err(ExecError::NothingToTrade(members[m].intent.id));
            }
            plan.cost.saved = members[m].alone.total() - plan.cost.total();
        }
        copy.moved(routed);
        Ok(plans)
    }

    /// The numeraire value of one native token, from the first leg whose bought token has a ready
    /// pool against the native token (`None` when no leg gives one).
    fn native_value(&self, legs: &[NetLeg]) -> Option<f64> {
        legs.iter().find_map(|l| {
            let buy_per_wei = self.native_price_in(l.buy, &self.pools)?;
            let per_raw_buy = l.notional / (f64::from(l.amount_in) * l.price);
            let v = buy_per_wei * per_raw_buy * 1e18;
            (v.is_finite() && v > 0.0).then_some(v)
        })
    }

    /// Replaces a member's fills and cost in the report records (bounded: the oldest go first).
    /// In place and amortised O(1): this runs between routing and the wire.
    fn record_for_report(&mut self, m: &Member, fills: Vec<FillRecord>) {
        let id = m.intent.id;
        // A re-plan touches the members of the newest batch only: look at the tail, and drop this
        // member's previous fills there by compacting in place (order kept, nothing allocated).
        let tail = self.fills.len().saturating_sub(MAX_BATCH_MEMBERS * 64);
        let mut kept = tail;
        for r in tail..self.fills.len() {
            if self.fills[r].intent != id {
                self.fills.swap(kept, r);
                kept += 1;
            }
        }
        self.fills.truncate(kept);
        self.fills.extend(fills);
        let cost = IntentCost { intent: id, portfolio: m.intent.portfolio, cost: m.charged };
        match self.intent_costs.iter().rposition(|c| c.intent == id) {
            Some(i) => self.intent_costs[i] = cost,
            None => self.intent_costs.push(cost),
        }
        trim_oldest(&mut self.fills, MAX_REPORT_RECORDS);
        trim_oldest(&mut self.intent_costs, MAX_REPORT_RECORDS);
    }

    /// The members of the batch open for `target` that a new rebalance would join (netting on, room
    /// left), with the batch's current total cost; `None` when it would start a batch of its own.
    pub(super) fn open_members(&self, target: u64) -> Option<(Vec<Member>, RebalanceCost)> {
        let b = self.open_batch.as_ref().filter(|b| {
            self.cfg.netting && b.target_block == target && b.members.len() < MAX_BATCH_MEMBERS
        })?;
        let mut total = RebalanceCost::default();
        for m in &b.members {
            total.add(&m.charged);
        }
        Some((b.members.clone(), total))
    }

    /// What `intent` at `fraction` adds to the cost of a batch of `members` (whose cost is
    /// `without`): the whole batch re-planned with it, minus the batch without it. Negative when its
    /// crosses save the others more than it costs. `None` when the batch cannot be planned with it.
    pub(super) fn marginal_cost(
        &self,
        members: &[Member],
        without: &RebalanceCost,
        intent: &RebalanceIntent,
        fraction: f64,
        head: &BlockHeader,
        gas: &GasPricing,
    ) -> Option<RebalanceCost> {
        let mut with: Vec<Member> = members.to_vec();
        with.push(Member {
            intent: intent.clone(),
            fraction,
            alone: RebalanceCost::default(),
            charged: RebalanceCost::default(),
        });
        with.sort_by_key(|m| m.intent.id);
        let plans = self.plan_batch(&with, head, gas, &[]).ok()?;
        let mut cost = RebalanceCost::default();
        for p in &plans {
            cost.add(&p.cost);
        }
        cost.sub(without);
        // `saved` compares with trading alone, which is not what this number is.
        cost.saved = 0.0;
        Some(cost)
    }

    /// Takes a rebalance that never landed out of its portfolio's cost (its per-rebalance record
    /// stays, zeroed): what a portfolio spent counts landed and pending rebalances only.
    pub(super) fn release_cost(&mut self, intent: u64) {
        let Some(c) = self.intent_costs.iter_mut().rev().find(|c| c.intent == intent) else { return };
        if let Some(total) = self.costs.get_mut(c.portfolio.idx()) {
            total.sub(&c.cost);
        }
        c.cost = RebalanceCost::default();
    }

    /// Closes the open batch once the head has reached its block.
    pub(super) fn close_batch(&mut self, head: u64) {
        if self.open_batch.as_ref().is_some_and(|b| b.target_block <= head) {
            self.open_batch = None;
        }
    }
}

/// Keeps `records` to its newest `max` (at most a quarter more in between): the oldest are dropped
/// in one move once the slack is used up, so each record costs O(1) to bound, not a move of all of
/// them.
fn trim_oldest<T>(records: &mut Vec<T>, max: usize) {
    if records.len() > max.saturating_add(max / 4) {
        let excess = records.len() - max;
        records.drain(..excess);
    }
}

/// `part / whole` as a float (0 for an empty whole).
fn fraction_of(part: U256, whole: U256) -> f64 {
    if whole.is_zero() { 0.0 } else { f64::from(part) / f64::from(whole) }
}

#[cfg(test)]
mod tests {
    use super::trim_oldest;

    #[test]
    fn report_records_keep_the_newest_and_are_trimmed_in_one_move_past_a_quarter_of_slack() {
        let mut v: Vec<u32> = Vec::new();
        let mut moves = 0;
        for i in 0..10_000u32 {
            v.push(i);
            let before = v.len();
            trim_oldest(&mut v, 1_000);
            if v.len() != before {
                moves += 1;
                assert_eq!(v.len(), 1_000);
            }
            assert!(v.len() <= 1_250);
            assert_eq!(*v.last().unwrap(), i, "the newest is kept");
            assert_eq!(v[0], i + 1 - v.len() as u32, "what is kept is the newest, in order");
        }
        // One move per 250 records, not one per record.
        assert_eq!(moves, (10_000 - 1_250) / 251 + 1);
    }
}
