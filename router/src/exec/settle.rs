//! Settlement of submitted bundles: on each head, resend for the next block (re-signed with the same
//! nonces when fees rose) or expire at the deadline; once landed, read the receipts and report.

use keel_engine::Nanos;
use keel_engine::event::{BlockHeader, Outcome, OutcomeStatus};
use keel_engine::record::JournalRecord;

use super::{Action, ExecError, Executor, InclusionStats, Inflight, LandingBlock, ReceiptInfo, SimVerdict};
use crate::bundle::{BundleOptions, SignedBundleRequest, build_send_bundle};
use crate::tx::{CallRequest, Fees, SignedTx, TxError, sign_call};
use alloy::primitives::B256;
use keel_engine::record::Inclusion;

/// Heads past a bundle's deadline after which it expires even without a nonce read of a block at
/// or after its deadline (the reads have stalled).
pub const NONCE_READ_GRACE_BLOCKS: u64 = 3;

impl Executor {
    pub(super) fn on_head(&mut self, h: BlockHeader, now_ns: Nanos, out: &mut Vec<Action>) {
        let mut i = 0;
        while i < self.inflight.len() {
            let f = &self.inflight[i];
            if f.landed {
                i += 1;
                continue;
            }
            // Expired once a nonce read at or after the deadline block shows it unlanded; heads
            // can come before that block's reads (newHeads before the poll), so the head alone
            // does not expire it — unless the reads lag by NONCE_READ_GRACE_BLOCKS.
            let read = self.nonce_read_block.get(&f.account).copied().unwrap_or(0);
            // A read of a block after the deadline: a read of the deadline block itself may come
            // from a block later replaced (a reorg).
            let past = h.number >= f.deadline_block
                && (read > f.deadline_block
                    || h.number >= f.deadline_block.saturating_add(NONCE_READ_GRACE_BLOCKS));
            if past {
                let reason = format!("deadline block {} reached unlanded", f.deadline_block);
                tracing::warn!(
                    intent = f.intent,
                    block = h.number,
                    "bundle not included before its deadline; abandoned"
                );
                self.abandon(i, h.number, reason, out);
                continue;
            }
            i += 1;
        }
        // Retarget every batch still open for business as ONE bundle: its members' transactions in
        // batch order (ascending intent id), under its uuid.
        let target = h.number.saturating_add(1);
        let mut batches: Vec<String> = Vec::new();
        for f in &self.inflight {
            if !f.landed && target > f.target_block && !batches.contains(&f.uuid) {
                batches.push(f.uuid.clone());
            }
        }
        for uuid in batches {
            let mut members: Vec<usize> =
                (0..self.inflight.len()).filter(|&k| self.inflight[k].uuid == uuid).collect();
            // A batch lands atomically: once one member's nonce shows it, none is resent.
            if members.iter().any(|&k| self.inflight[k].landed || self.inflight[k].cancelled) {
                continue;
            }
            // Not resent before its simulation passed (it is being sent then, if it does).
            if members.iter().any(|&k| self.inflight[k].simulating.is_some()) {
                continue;
            }
            if self.halted {
                self.cancel_batch(&members, out);
                continue;
            }
            members.sort_by_key(|&k| self.inflight[k].intent);
            let versions: Vec<u32> = members.iter().map(|&k| self.inflight[k].version).collect();
            // A version whose simulation came too late never passed one: simulated again before
            // anything is sent, and the window's later blocks wait for it to pass.
            let resimulate =
                self.cfg.presimulate.is_some() && members.iter().any(|&k| self.inflight[k].unsimulated);
            match self.retarget(&members, target, h.base_fee) {
                Ok(request) if resimulate => {
                    for (&k, v) in members.iter().zip(versions.iter().copied()) {
                        if self.inflight[k].version != v {
                            out.push(Action::Journal(JournalRecord::Signed(Box::new(
                                self.signed_record(k, request.bundle_hash),
                            ))));
                        }
                    }
                    let txs: Vec<SignedTx> =
                        members.iter().flat_map(|&k| self.inflight[k].txs.iter().cloned()).collect();
                    self.request_id += 1;
                    let call = match crate::bundle::build_call_bundle(
                        &txs,
                        target,
                        &mut self.auth,
                        self.request_id,
                    ) {
                        Ok(call) => call,
                        Err(e) => {
                            tracing::error!(batch = %uuid, error = %e, "building the bundle's simulation failed");
                            continue;
                        }
                    };
                    for &k in &members {
                        self.inflight[k].unsimulated = false;
                        self.inflight[k].simulating = Some(request.bundle_hash);
                    }
                    self.stats.submissions += 1;
                    out.push(Action::Submit {
                        intent: self.inflight[members[0]].intent,
                        request,
                        event_recv_ns: 0,
                        ready_ns: now_ns,
                        simulate: Some(call),
                    });
                }
                Ok(request) => {
                    for (&k, v) in members.iter().zip(versions.iter().copied()) {
                        if self.inflight[k].version != v {
                            out.push(Action::Journal(JournalRecord::Signed(Box::new(
                                self.signed_record(k, request.bundle_hash),
                            ))));
                        }
                    }
                    let resigned =
                        members.iter().zip(&versions).any(|(&k, v)| self.inflight[k].version != *v);
                    let intent = self.inflight[members[0]].intent;
                    let deadline =
                        members.iter().map(|&k| self.inflight[k].deadline_block).min().unwrap_or(target);
                    // The window's other blocks: all of them after a re-sign, else only the newest
                    // (the others already hold this version).
                    let extra = self.extra_blocks(target, deadline);
                    let newest = target.saturating_add(self.cfg.target_blocks.max(1) - 1);
                    let extra = if resigned {
                        extra
                    } else if newest > target && newest <= deadline {
                        newest..=newest
                    } else {
                        // nothing new in the window
                        newest.saturating_add(1)..=newest
                    };
                    let txs: Vec<SignedTx> =
                        members.iter().flat_map(|&k| self.inflight[k].txs.iter().cloned()).collect();
                    let mut requests = vec![request];
                    match self.window_requests(&txs, extra, &uuid) {
                        Ok(more) => requests.extend(more),
                        Err(e) => {
                            tracing::error!(batch = %uuid, error = %e, "bundles for the later blocks failed")
                        }
                    }
                    for request in requests {
                        self.stats.submissions += 1;
                        out.push(Action::Submit {
                            intent,
                            request,
                            event_recv_ns: 0,
                            ready_ns: now_ns,
                            simulate: None,
                        });
                    }
                }
                Err(e) => tracing::error!(batch = %uuid, error = %e, "retargeting a bundle failed"),
            }
        }
    }

    /// Gives up in-flight entry `i`: releases its nonces, approvals and cost, journals it expired
    /// with `reason` and reports it `Expired`.
    fn abandon(&mut self, i: usize, head: u64, reason: String, out: &mut Vec<Action>) {
        let f = self.inflight.swap_remove(i);
        let chain = self.chain_nonce.get(&f.account).copied().unwrap_or(0);
        self.nonces.reset_to_chain(f.account, chain);
        for key in &f.approvals {
            self.allowances.remove(key);
        }
        self.release_charges(|t| t.intent == f.intent);
        self.release_cost(f.intent);
        self.stats.expired += 1;
        out.push(Action::Journal(JournalRecord::Expired { intent: f.intent, block: head, reason }));
        out.push(Action::Outcome(Outcome {
            intent: f.intent,
            portfolio: f.portfolio,
            status: OutcomeStatus::Expired,
            at_ns: self.now_ns,
        }));
    }

    /// The simulation of the version with `bundle_hash` is done. [`SimVerdict::Passed`]: it was
    /// sent; resends go on as usual. [`SimVerdict::Failed`]: it was not sent, and every member of
    /// its batch expires with why. [`SimVerdict::TooLate`]: it was neither sent nor judged; the
    /// next head retargets it and simulates it again. A verdict on a version since replaced is
    /// ignored.
    pub fn on_simulated(&mut self, bundle_hash: B256, verdict: SimVerdict, out: &mut Vec<Action>) {
        let failure = match verdict {
            SimVerdict::Failed(why) => why,
            SimVerdict::Passed | SimVerdict::TooLate => {
                let late = verdict == SimVerdict::TooLate;
                for f in self.inflight.iter_mut().filter(|f| f.simulating == Some(bundle_hash)) {
                    f.simulating = None;
                    f.unsimulated = late;
                }
                return;
            }
        };
        let head = self.head.map_or(0, |h| h.number);
        let mut found = false;
        while let Some(i) = self.inflight.iter().position(|f| f.simulating == Some(bundle_hash)) {
            found = true;
            let intent = self.inflight[i].intent;
            tracing::error!(intent, %bundle_hash, reason = %failure, "bundle reverted in simulation: not sent");
            self.abandon(i, head, format!("reverted in simulation: {failure}"), out);
        }
        if found {
            self.stats.sim_reverted += 1;
            // The batch is gone: a later rebalance starts a new one.
            if self.open_batch.as_ref().is_some_and(|b| {
                b.members.iter().all(|m| !self.inflight.iter().any(|f| f.intent == m.intent.id))
            }) {
                self.open_batch = None;
            }
        }
    }

    /// The priority fee after `retargets` retargets: `priority_fee_wei` raised by `tip_step_pct`
    /// per retarget (compounding, integer wei), at most `max_priority_fee_wei`, and at most what
    /// the `max_gas_price_wei` limit leaves above `base_fee` (never below `priority_fee_wei`).
    pub(super) fn tip_after(&self, retargets: u64, base_fee: u128) -> u128 {
        let (base, step) = (self.cfg.priority_fee_wei, u128::from(self.cfg.tip_step_pct));
        let mut cap = self.cfg.max_priority_fee_wei.unwrap_or(base).max(base);
        if let Some(limit) = self.cfg.limits.max_gas_price_wei {
            cap = cap.min(limit.saturating_sub(base_fee)).max(base);
        }
        let mut tip = base;
        for _ in 0..retargets {
            if step == 0 || tip >= cap {
                break;
            }
            tip = tip.saturating_mul(100 + step) / 100;
        }
        tip.min(cap)
    }

    /// The kill switch engaged: cancels the batch of `members` on the relays and never resends it.
    fn cancel_batch(&mut self, members: &[usize], out: &mut Vec<Action>) {
        for &k in members {
            self.inflight[k].cancelled = true;
        }
        let (intent, uuid) = (self.inflight[members[0]].intent, self.inflight[members[0]].uuid.clone());
        self.stats.cancelled += 1;
        tracing::warn!(intent, batch = %uuid, "kill switch engaged: bundle cancelled, not resent");
        // One uuid, or with target_blocks > 1 one per block sent for.
        let n = self.cfg.target_blocks.max(1);
        let uuids: Vec<String> = if n == 1 {
            vec![uuid]
        } else {
            let first = members.iter().map(|&k| self.inflight[k].first_target_block).min().unwrap_or(0);
            let last = members
                .iter()
                .map(|&k| self.inflight[k].target_block)
                .max()
                .unwrap_or(0)
                .saturating_add(n - 1);
            (first..=last).map(|b| block_uuid(&uuid, b, n)).collect()
        };
        for u in uuids {
            self.request_id += 1;
            match crate::bundle::build_cancel_bundle(&u, &mut self.auth, self.request_id) {
                Ok(request) => out.push(Action::Cancel { intent, request }),
                Err(e) => {
                    tracing::error!(intent, error = %e, "building eth_cancelBundle failed; the bundle is still not resent")
                }
            }
        }
    }

    /// Rebuilds the request of a batch (in-flight `members`, in batch order) for `target`: the same
    /// transactions, each member's re-signed with the same nonces only when their fee cap no longer
    /// covers the next base fee.
    fn retarget(
        &mut self,
        members: &[usize],
        target: u64,
        base_fee: u128,
    ) -> Result<SignedBundleRequest, ExecError> {
        let next_base = base_fee.saturating_add(base_fee / 8);
        // Retargets so far: a bundle that keeps missing pays a rising tip.
        let first = members.iter().map(|&i| self.inflight[i].first_target_block).filter(|b| *b > 0).min();
        let retargets = first.map_or(0, |b| target.saturating_sub(b));
        let tip = self.tip_after(retargets, base_fee);
        let fees = Fees::from_base_fee(base_fee, self.cfg.base_fee_multiplier, tip);
        for &i in members {
            let stale =
                |t: &SignedTx| t.fees.max_fee_per_gas < next_base || t.fees.max_priority_fee_per_gas < tip;
            if !self.inflight[i].txs.iter().any(stale) {
                continue;
            }
            let account = self.inflight[i].account;
            let signer = self.signers.get_mut(&account).ok_or(ExecError::NoSigner(account))?;
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
        let mut txs: Vec<SignedTx> = Vec::new();
        for &i in members {
            self.inflight[i].target_block = target;
            txs.extend(self.inflight[i].txs.iter().cloned());
        }
        let uuid = self.inflight[members[0]].uuid.clone();
        let mut first = self.window_requests(&txs, target..=target, &uuid)?;
        first.pop().ok_or(ExecError::Bundle(crate::bundle::BundleError::Empty))
    }

    /// The bundle of `txs` for each block of `blocks`, each under the batch's replacement uuid —
    /// with `target_blocks` > 1, under `uuid#block`, so that the version for one block does not
    /// replace the one for another.
    pub(super) fn window_requests(
        &mut self,
        txs: &[SignedTx],
        blocks: std::ops::RangeInclusive<u64>,
        uuid: &str,
    ) -> Result<Vec<SignedBundleRequest>, ExecError> {
        let mut out = Vec::with_capacity(self.cfg.target_blocks.max(1) as usize);
        for block in blocks {
            self.request_id += 1;
            let replacement_uuid = Some(block_uuid(uuid, block, self.cfg.target_blocks));
            let opts = BundleOptions { replacement_uuid, ..Default::default() };
            out.push(build_send_bundle(txs, block, &opts, &mut self.auth, self.request_id)?);
        }
        Ok(out)
    }

    /// The blocks after `target` that a version sent for `target` is also sent for
    /// (`target_blocks` − 1 of them), never past the deadline block.
    pub(super) fn extra_blocks(&self, target: u64, deadline_block: u64) -> std::ops::RangeInclusive<u64> {
        let last = target.saturating_add(self.cfg.target_blocks.max(1) - 1).min(deadline_block);
        target.saturating_add(1)..=last
    }

    /// Receipts of a landed bundle and the block they are in: as [`Self::on_receipts`], and an
    /// `Included` record (builder, blocks and seconds to inclusion, versions, fees).
    pub fn on_receipts_in_block(
        &mut self,
        intent: u64,
        receipts: &[ReceiptInfo],
        block: Option<LandingBlock>,
        out: &mut Vec<Action>,
    ) {
        self.landing_block = block.map(|b| (intent, b));
        self.on_receipts(intent, receipts, out);
        self.landing_block = None;
    }

    /// Receipts of a landed bundle: report the outcome.
    pub fn on_receipts(&mut self, intent: u64, receipts: &[ReceiptInfo], out: &mut Vec<Action>) {
        let Some(i) = self.inflight.iter().position(|f| f.intent == intent) else { return };
        if receipts.is_empty() && self.inflight[i].receiptless_landings == 0 {
            // The nonce read that showed it landed may come from a block since replaced (a
            // reorg): it stays in flight, and only a
            // second landing without a receipt of ours, from a later read, voids it.
            let f = &mut self.inflight[i];
            f.receiptless_landings = 1;
            f.landed = false;
            tracing::warn!(
                intent,
                "nonces moved but none of the bundle's transactions has a receipt; rechecking"
            );
            return;
        }
        let f = self.inflight.swap_remove(i);
        if receipts.is_empty() {
            // The nonces moved, but none of this bundle's transactions has a receipt: something
            // else used them. The rebalance did not happen.
            self.release_charges(|t| t.intent == f.intent);
            self.release_cost(f.intent);
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
                at_ns: self.now_ns,
            }));
            return;
        }
        self.learn_gas(&f, receipts);
        // Receipts come from the node: saturating, so a wrong figure cannot wrap (or panic).
        let gas_used: u64 = receipts.iter().map(|r| r.gas_used).fold(0, u64::saturating_add);
        let block = receipts.iter().map(|r| r.block).max().unwrap_or(f.target_block);
        if receipts.iter().any(|r| !r.success) {
            tracing::warn!(intent, "a transaction of a landed bundle reverted");
        }
        self.stats.landed += 1;
        self.stats.gas_used = self.stats.gas_used.saturating_add(gas_used);
        self.observe_inclusion(&f, block);
        let included = self.landing_block.take().filter(|(i, _)| *i == intent).map(|(_, b)| {
            let text = std::str::from_utf8(&b.extra_data)
                .ok()
                .filter(|t| !t.is_empty() && t.chars().all(|c| !c.is_control()));
            JournalRecord::Included(Box::new(Inclusion {
                intent,
                block,
                coinbase: b.coinbase,
                builder: text.unwrap_or_default().to_string(),
                blocks: if f.first_target_block > 0 {
                    block.saturating_sub(f.first_target_block) + 1
                } else {
                    0
                },
                seconds: (f.first_sent_ns > 0 && f.landed_ns >= f.first_sent_ns)
                    .then(|| (f.landed_ns - f.first_sent_ns) as f64 / 1e9),
                versions: f.version.saturating_add(1),
                fee_wei: b.fee_wei,
                relays: self
                    .relay_builders
                    .iter()
                    .filter(|(_, coinbase)| *coinbase == b.coinbase)
                    .map(|(name, _)| name.clone())
                    .collect(),
            }))
        });
        out.push(Action::Journal(JournalRecord::Landed {
            intent,
            block,
            gas_used,
            reverted: receipts.iter().any(|r| !r.success),
        }));
        if let Some(record) = included {
            out.push(Action::Journal(record));
        }
        out.push(Action::Outcome(Outcome {
            intent,
            portfolio: f.portfolio,
            status: OutcomeStatus::Landed { block, gas_used },
            at_ns: self.now_ns,
        }));
    }
}

impl Executor {
    /// Counts a landed rebalance in the inclusion statistics.
    fn observe_inclusion(&mut self, f: &Inflight, block: u64) {
        let stats = &mut self.inclusion;
        stats.versions.observe(f64::from(f.version.saturating_add(1)));
        if f.first_target_block > 0 {
            // A bundle can only land at or after its first target; count from 1.
            stats.blocks.observe((block.saturating_sub(f.first_target_block) + 1) as f64);
        }
        if f.first_sent_ns > 0 && f.landed_ns >= f.first_sent_ns {
            stats.seconds.observe((f.landed_ns - f.first_sent_ns) as f64 / 1e9);
        }
    }

    /// How long landed rebalances took to be included (fixed buckets).
    pub fn inclusion(&self) -> &InclusionStats {
        &self.inclusion
    }
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

/// The replacement uuid of a batch's bundle for `block`: the batch's own with one target block,
/// `uuid#block` with several.
pub(super) fn block_uuid(uuid: &str, block: u64, target_blocks: u64) -> String {
    if target_blocks <= 1 { uuid.to_string() } else { format!("{uuid}#{block}") }
}
