//! The simulated market's relay backend: `eth_sendBundle`, `eth_callBundle` and `eth_cancelBundle`
//! over the in-memory chain.
//!
//! Every refusal is counted by reason in the market's stats (the core reports signature and
//! `eth_sendBundle` refusals through [`BundleBackend::on_rejected`]). Accepted bundles wait in the
//! chain for their target block (see [`crate::chain`]).

use std::collections::HashSet;

use alloy::{
    consensus::Transaction,
    primitives::U256,
    rpc::types::mev::{EthCallBundleResponse, EthCallBundleTransactionResult},
    sol_types::{Revert, SolError},
};
use keel_router::bundle::bundle_hash;
use serde_json::Value;

use super::{BundleBackend, CallBundle, RelayError, RequestContext, SendBundle, StateBlock};
use crate::{
    Shared,
    chain::{ExecEnv, PendingBundle, decode_signed_tx, execute},
    jsonrpc, unix_now_secs,
};

impl BundleBackend for Shared {
    async fn on_send(&self, ctx: &RequestContext, req: SendBundle) -> Result<(), RelayError> {
        let chain_id = self.chain.lock().u.chain_id;
        // Decode and recover outside the chain lock (signature recovery is the expensive part).
        let mut txs = Vec::with_capacity(req.txs.len());
        for (i, raw) in req.txs.iter().enumerate() {
            match decode_signed_tx(raw, chain_id) {
                Ok(t) => txs.push(t),
                Err(e) => return Err(RelayError::rejected("bad_tx", format!("txs[{i}]: {e}"))),
            }
        }
        let unique: HashSet<_> = req.tx_hashes.iter().collect();
        if unique.len() != req.tx_hashes.len() {
            return Err(RelayError::rejected("malformed", "bundle repeats a transaction"));
        }
        let bundle = PendingBundle {
            hash: req.hash,
            block: req.block_number,
            min_timestamp: req.min_timestamp,
            max_timestamp: req.max_timestamp,
            txs,
            reverting: req.reverting_tx_hashes.into_iter().collect(),
            uuid: req.replacement_uuid.map(|u| (ctx.signer, u)),
        };
        self.chain
            .lock()
            .submit_bundle(bundle)
            .map_err(|(reason, message)| RelayError::rejected(reason, message))
    }

    async fn on_call(&self, _ctx: &RequestContext, req: CallBundle) -> Result<Value, RelayError> {
        let block_number =
            req.block_number.ok_or_else(|| RelayError::Params("missing `blockNumber`".to_owned()))?;
        let head_now = self.chain.lock().head();
        if block_number <= head_now {
            return Err(RelayError::Params(format!(
                "blockNumber {block_number} is not after the head block {head_now}"
            )));
        }
        let chain_id = self.chain.lock().u.chain_id;
        let txs = req
            .txs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                decode_signed_tx(r, chain_id).map_err(|e| RelayError::Params(format!("txs[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let chain = self.chain.lock();
        let head = chain.head();
        let state_block = match req.state_block {
            StateBlock::Head => head,
            StateBlock::Number(n) => n,
        };
        if state_block != head {
            return Err(RelayError::Server(format!(
                "state of block {state_block} is not available; only the head ({head}) is kept"
            )));
        }
        let env = ExecEnv {
            timestamp: req.timestamp.unwrap_or_else(|| unix_now_secs().max(chain.head_header().timestamp)),
            base_fee: chain.next_base_fee(),
        };
        let mut scratch = chain.state.clone();
        let mut results = Vec::with_capacity(txs.len());
        let mut errors = Vec::with_capacity(txs.len());
        let (mut total_gas, mut gas_fees, mut coinbase_diff) = (0u64, U256::ZERO, U256::ZERO);
        for (i, tx) in txs.iter().enumerate() {
            let e = execute(&chain.u, &mut scratch, &env, tx).map_err(|e| {
                RelayError::Server(format!("txs[{i}] ({}) is invalid: {e}", tx.inner().tx_hash()))
            })?;
            let tip = U256::from(e.gas_used) * U256::from(e.effective_gas_price - env.base_fee as u128);
            total_gas += e.gas_used;
            gas_fees += e.fees();
            coinbase_diff += tip;
            errors.push(e.revert.as_ref().map(|r| format!("execution reverted: {r}")));
            results.push(EthCallBundleTransactionResult {
                coinbase_diff: tip,
                eth_sent_to_coinbase: U256::ZERO,
                from_address: tx.signer(),
                gas_fees: e.fees(),
                gas_price: U256::from(e.effective_gas_price),
                gas_used: e.gas_used,
                to_address: tx.inner().to(),
                tx_hash: e.hash(),
                value: e.success.then(|| e.output.clone()),
                revert: e.revert.as_ref().map(|r| Revert::from(r.clone()).abi_encode().into()),
            });
        }
        let response = EthCallBundleResponse {
            bundle_hash: bundle_hash(txs.iter().map(|t| t.inner().tx_hash())),
            bundle_gas_price: if total_gas == 0 { U256::ZERO } else { coinbase_diff / U256::from(total_gas) },
            coinbase_diff,
            eth_sent_to_coinbase: U256::ZERO,
            gas_fees,
            results,
            state_block_number: state_block,
            total_gas_used: total_gas,
        };
        let mut v = jsonrpc::to_value(&response)?;
        if let Some(rs) = v.get_mut("results").and_then(Value::as_array_mut) {
            for (r, err) in rs.iter_mut().zip(errors) {
                if let Some(err) = err {
                    r["error"] = Value::String(err);
                }
            }
        }
        Ok(v)
    }

    fn on_cancel(&self, ctx: &RequestContext, replacement_uuid: &str) -> Result<(), RelayError> {
        self.chain.lock().cancel_bundle(ctx.signer, replacement_uuid);
        Ok(())
    }

    fn on_rejected(&self, error: &RelayError) {
        self.chain.lock().count_rejected(error.reason());
    }
}
