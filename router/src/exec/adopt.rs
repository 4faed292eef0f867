//! Adoption after a restart: a bundle the journal shows in flight is taken back and resent unchanged.

use alloy::primitives::{Address, B256};
use keel_engine::PortfolioId;
use keel_engine::record::{SignedBundle, TxRecord};

use super::{ExecError, Executor, Inflight};
use crate::tx::{Fees, SignedTx, TxError};

impl Executor {
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
            self.nonces.reset_to_chain(bundle.account, last.saturating_add(1));
        }
        let current: Vec<B256> = txs.iter().map(|t| t.hash).collect();
        self.inflight.push(Inflight {
            intent: bundle.intent,
            portfolio: PortfolioId(bundle.portfolio),
            account: bundle.account,
            txs,
            calls: Vec::new(),
            first_nonce: first,
            last_nonce: last,
            // resent for the next head's block
            target_block: 0,
            deadline_block: bundle.deadline_block,
            landed: false,
            receiptless_landings: 0,
            uuid: bundle.uuid.clone(),
            superseded: earlier.iter().filter(|h| !current.contains(h)).copied().collect(),
            same_shape: false,
            version: bundle.version,
            first_sent_ns: 0,
            first_target_block: 0,
            landed_ns: 0,
            cancelled: false,
            simulating: None,
            unsimulated: false,
            approvals: Vec::new(),
            swap_pool: Vec::new(),
        });
        Ok(())
    }
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
