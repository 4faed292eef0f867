//! Settlement of submitted bundles: on each head, resend for the next block (re-signed with the same
//! nonces when fees rose) or expire at the deadline; once landed, read the receipts and report.

use keel_engine::Nanos;
use keel_engine::event::{BlockHeader, Outcome, OutcomeStatus};
use keel_engine::record::JournalRecord;

use super::{Action, ExecError, Executor, ReceiptInfo};
use crate::bundle::{BundleOptions, SignedBundleRequest, build_send_bundle};
use crate::tx::{CallRequest, Fees, SignedTx, TxError, sign_call};

impl Executor {
    pub(super) fn on_head(&mut self, h: BlockHeader, now_ns: Nanos, out: &mut Vec<Action>) {
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
                self.release_cost(f.intent);
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
            if members.iter().any(|&k| self.inflight[k].landed) {
                continue;
            }
            members.sort_by_key(|&k| self.inflight[k].intent);
            let versions: Vec<u32> = members.iter().map(|&k| self.inflight[k].version).collect();
            match self.retarget(&members, target, h.base_fee) {
                Ok(request) => {
                    for (&k, v) in members.iter().zip(versions) {
                        if self.inflight[k].version != v {
                            out.push(Action::Journal(JournalRecord::Signed(Box::new(
                                self.signed_record(k, request.bundle_hash),
                            ))));
                        }
                    }
                    self.stats.submissions += 1;
                    out.push(Action::Submit {
                        intent: self.inflight[members[0]].intent,
                        request,
                        event_recv_ns: 0,
                        ready_ns: now_ns,
                    });
                }
                Err(e) => tracing::error!(batch = %uuid, error = %e, "retargeting a bundle failed"),
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
        let next_base = base_fee + base_fee / 8;
        let fees = Fees::from_base_fee(base_fee, self.cfg.base_fee_multiplier, self.cfg.priority_fee_wei);
        for &i in members {
            if !self.inflight[i].txs.iter().any(|t| t.fees.max_fee_per_gas < next_base) {
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
        self.request_id += 1;
        let uuid = self.inflight[members[0]].uuid.clone();
        let opts = BundleOptions { replacement_uuid: Some(uuid), ..Default::default() };
        Ok(build_send_bundle(&txs, target, &opts, &mut self.auth, self.request_id)?)
    }

    /// Receipts of a landed bundle: report the outcome.
    pub fn on_receipts(&mut self, intent: u64, receipts: &[ReceiptInfo], out: &mut Vec<Action>) {
        let Some(i) = self.inflight.iter().position(|f| f.intent == intent) else { return };
        let f = self.inflight.swap_remove(i);
        if receipts.is_empty() {
            // The nonces moved, but none of this bundle's transactions has a receipt: something
            // else used them. The rebalance did not happen.
            self.traded.retain(|t| t.intent != f.intent);
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
