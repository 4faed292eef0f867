//! The intent → batch flow: park an intent until the chain state it needs is read, apply the oracle
//! guard and the risk limits, size it (cost-aware mode), and hand it to the block's batch
//! ([`super::batch`]), which plans, signs and bundles.

use alloy::primitives::{Address, U256};
use keel_engine::Nanos;
use keel_engine::event::{Outcome, OutcomeStatus};
use keel_engine::intent::RebalanceIntent;
use keel_engine::record::JournalRecord;

use super::batch::Member;
use super::{Action, ExecError, ExecToken, Executor};
use crate::cost;
use crate::plan::{self, GasPricing, OrderRoute};
use crate::tx::Fees;
use keel_amm::pool::PoolEntry;

/// Heads a rebalance waits for missing chain state (first head, a pool's first read) before it is
/// refused.
pub const PARK_HEADS: u32 = 5;
/// Most rebalances waiting for chain state at once; beyond, they are refused at once.
pub const MAX_PARKED: usize = 64;

impl Executor {
    /// Plans, signs and submits an intent. Failures are reported as a `Rejected` outcome (and logged),
    /// so the engine's cooldown applies.
    ///
    /// An intent that arrives before the first head or before the state of a pool it needs has been
    /// read (right after a start) is parked and retried at each head, for up to
    /// [`PARK_HEADS`] heads, instead of being refused at once.
    pub fn on_intent(&mut self, intent: &RebalanceIntent, now_ns: Nanos, out: &mut Vec<Action>) {
        self.now_ns = self.now_ns.max(now_ns);
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

    /// Keeps `intent` (the latest, handed over once its bundle is on its way) for
    /// [`Executor::rehearse`].
    pub fn keep_for_rehearsal(&mut self, intent: Box<RebalanceIntent>) {
        self.rehearsal = Some(intent);
    }

    /// Routes the latest intent again, whole, on the scratch copy of the pools and the current
    /// head, and commits nothing: no nonce, signature, record, statistic or outcome; the pools,
    /// the in-flight bundles and the limits are untouched. Called while the thread is idle, it
    /// keeps the routing code and data in the caches, so the next intent's routing finds them
    /// there. Whether it routed (`false`: no intent or head yet, or no route now).
    pub fn rehearse(&self) -> bool {
        let (Some(intent), Some(head)) = (&self.rehearsal, &self.head) else { return false };
        let gas = GasPricing {
            gas_price_wei: Fees::from_base_fee(head.base_fee, 1, self.cfg.priority_fee_wei).max_fee_per_gas,
        };
        std::hint::black_box(self.route_legs(intent, 1.0, &gas)).is_ok()
    }

    /// Retries parked intents after a head (pool updates of a block arrive before its head).
    pub(super) fn retry_parked(&mut self, now_ns: Nanos, out: &mut Vec<Action>) {
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
        result: Result<Vec<Action>, ExecError>,
        out: &mut Vec<Action>,
    ) {
        match result {
            Ok(actions) => {
                self.stats.submissions += 1;
                out.extend(actions);
            }
            Err(e) => {
                if matches!(e, ExecError::Deferred { .. }) {
                    self.stats.deferred += 1;
                } else if matches!(e, ExecError::RiskLimit { .. }) {
                    self.stats.risk_refused += 1;
                } else if matches!(e, ExecError::OracleGuard(_)) {
                    self.stats.oracle_blocked += 1;
                } else if matches!(e, ExecError::NotWorthIt(_)) {
                    self.stats.not_worth_it += 1;
                } else {
                    self.stats.rejected += 1;
                }
                // Anything charged to the daily windows before the refusal is released.
                self.release_charges(|t| t.intent == intent.id);
                tracing::warn!(intent = intent.id, portfolio = intent.portfolio.0, error = %e, "rebalance not submitted");
                out.push(Action::Journal(JournalRecord::Refused {
                    intent: intent.id,
                    reason: e.to_string(),
                }));
                out.push(Action::Outcome(Outcome {
                    intent: intent.id,
                    portfolio: intent.portfolio,
                    status: OutcomeStatus::Rejected,
                    at_ns: self.now_ns,
                }));
            }
        }
    }

    fn execute(&mut self, intent: &RebalanceIntent, now_ns: Nanos) -> Result<Vec<Action>, ExecError> {
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
        let gas = GasPricing {
            gas_price_wei: Fees::from_base_fee(head.base_fee, 1, self.cfg.priority_fee_wei).max_fee_per_gas,
        };
        // Cost-aware: price every candidate size with the same routing the transactions use, and
        // trade the one whose value exceeds its cost by the most (or refuse, naming both numbers).
        // Routes priced while sizing, by fraction: the chosen size's is not routed again.
        let mut priced: Vec<(f64, Vec<(usize, OrderRoute)>)> = Vec::new();
        let fraction = match &intent.value {
            Some(v) => {
                // With a batch open for the same block, a size is priced by what it adds to the
                // batch's cost (crosses included), so a trade that nets is not refused or cut for
                // what it would cost alone.
                let batch = self.open_members(head.number.saturating_add(1));
                let d = cost::choose_size(v, |f| match &batch {
                    Some((members, without)) => self.marginal_cost(members, without, intent, f, &head, &gas),
                    None => {
                        let routes = self.route_legs(intent, f, &gas).ok()?;
                        let cost = self.cost_of(intent, &routes, f, &gas);
                        priced.push((f, routes));
                        Some(cost)
                    }
                })?;
                tracing::info!(
                    intent = intent.id,
                    fraction = d.fraction,
                    value = d.value,
                    cost = d.cost.total(),
                    "cost-aware rebalance sized"
                );
                if d.fraction < 1.0 {
                    self.stats.resized += 1;
                }
                d.fraction
            }
            None => 1.0,
        };
        // The same routing as a rebalance of its own: its cost alone, against which netting's
        // saving is measured.
        let routes = match priced.into_iter().find(|(f, _)| *f == fraction) {
            Some((_, routes)) => routes,
            None => self.route_legs(intent, fraction, &gas)?,
        };
        let alone = self.cost_of(intent, &routes, fraction, &gas);
        let member =
            Member { intent: intent.clone(), fraction, alone, charged: cost::RebalanceCost::default() };
        self.join_batch(member, head, &gas, now_ns)
    }

    /// Raw `buy` units per wei of the native token, from a ready pool pairing the wrapped native
    /// token with `buy` (the split optimiser prices gas with it); `None` when no such pool is known
    /// (the callers then fall back to the exchange price, [`buy_per_wei_from_exchange`]).
    /// Routes every leg, its `amount_in` scaled by `fraction`, on a scratch copy of the pools, in
    /// order, so legs through the same pool see each other's effect.
    fn route_legs(
        &self,
        intent: &RebalanceIntent,
        fraction: f64,
        gas: &GasPricing,
    ) -> Result<Vec<(usize, OrderRoute)>, ExecError> {
        let mut copy = self.scratch.borrow_mut();
        let scratch = copy.synced(&self.pools);
        let mut routes: Vec<(usize, OrderRoute)> = Vec::with_capacity(intent.legs.len());
        for (k, leg) in intent.legs.iter().enumerate() {
            let sell = self.tokens[leg.sell.idx()].address;
            let buy = self.tokens[leg.buy.idx()].address;
            // Gas in bought units: through a pool against the wrapped native token, else through
            // the exchange price of ETH the engine carried in the intent.
            let price =
                raw_price(leg.reference_price, &self.tokens[leg.sell.idx()], &self.tokens[leg.buy.idx()]);
            let native_per_buy = self.native_price_in(buy, scratch).or_else(|| {
                buy_per_wei_from_exchange(intent.native_price?, leg.notional, leg.amount_in, price)
            });
            let route = plan::route_exact_in(
                scratch,
                sell,
                buy,
                scale_amount(leg.amount_in, fraction),
                gas,
                native_per_buy,
                Some(raw_price(
                    leg.reference_price,
                    &self.tokens[leg.sell.idx()],
                    &self.tokens[leg.buy.idx()],
                )),
                self.cfg.max_pool_deviation,
                self.cfg.slippage_bps,
            );
            // An error leaves the copy spoiled (see `ScratchPools::synced`).
            routes.push((k, route?));
        }
        copy.moved(moved_pools(routes.iter().map(|(_, r)| r)));
        Ok(routes)
    }

    /// The cost of routed legs (scaled by `fraction`), in the numeraire.
    fn cost_of(
        &self,
        intent: &RebalanceIntent,
        routes: &[(usize, OrderRoute)],
        fraction: f64,
        gas: &GasPricing,
    ) -> cost::RebalanceCost {
        let mut total = cost::RebalanceCost::default();
        for (k, route) in routes {
            let notional = intent.legs[*k].notional * fraction;
            total.add(&cost::leg_cost(&self.pools, route, notional, gas.gas_price_wei, None));
        }
        total
    }

    pub(super) fn native_price_in(&self, buy: Address, pools: &[PoolEntry]) -> Option<f64> {
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

/// Raw `buy` units per wei from the exchange price of the native token: `native_value` (numeraire
/// per whole native token) over the numeraire value of one raw `buy` unit, which a leg gives as
/// `notional / (amount_in × price)` (`price`: raw buy per raw sell). `None` when any input is not
/// a positive finite number.
pub(super) fn buy_per_wei_from_exchange(
    native_value: f64,
    notional: f64,
    amount_in: U256,
    price: f64,
) -> Option<f64> {
    let per_raw_buy = notional / (f64::from(amount_in) * price);
    let v = native_value / 1e18 / per_raw_buy;
    (native_value > 0.0 && v.is_finite() && v > 0.0).then_some(v)
}

/// A price in whole `buy` per whole `sell` as raw units of `buy` per raw unit of `sell`.
/// `amount × fraction`, rounded down, in millionths (exact for the whole amount).
pub(super) fn scale_amount(amount: U256, fraction: f64) -> U256 {
    if fraction >= 1.0 {
        return amount;
    }
    let ppm = (fraction.max(0.0) * 1e6).round() as u64;
    keel_amm::v3::full_math::mul_div(amount, U256::from(ppm), U256::from(1_000_000u64)).unwrap_or(U256::ZERO)
}

pub(super) fn raw_price(whole: f64, sell: &ExecToken, buy: &ExecToken) -> f64 {
    whole * 10f64.powi(buy.decimals as i32 - sell.decimals as i32)
}

/// The pools that `routes` moved (each once or more).
pub(super) fn moved_pools<'a>(routes: impl Iterator<Item = &'a OrderRoute>) -> impl Iterator<Item = usize> {
    routes.flat_map(|r| r.fills.iter().flat_map(|f| f.hops.iter().map(|h| h.pool)))
}
