//! Simulating the loopback relay's next block without mining it: `eth_simulateV1` on anvil.
//!
//! A simulation used to be a block mined and reverted (`evm_snapshot`, `evm_mine`, `evm_revert`).
//! Every reader of the node saw that block until the revert: a nonce that moved, a receipt, a
//! public transaction mined into it that vanished with it. No real builder shows its simulations,
//! and an executor that read one took its bundle for landed. `eth_simulateV1` runs the block on
//! top of the head and changes nothing.
//!
//! anvil's simulation leaves out the checks a block does on its own (its `validation` flag checks
//! neither nonces nor the fee cap against the base fee), so they are done here, in block order:
//! each sender's nonce must follow its last one (the head's nonce first) and each fee cap must
//! cover the block's base fee. A transaction that fails them is skipped, as a block builder
//! skips it, and the ones after it run without it.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::consensus::transaction::{Recovered, SignerRecoverable};
use alloy::consensus::{Transaction, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, Bytes, U256, address, b256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::simulate::{SimBlock, SimCallResult, SimulatePayload};
use alloy::rpc::types::{BlockOverrides, TransactionReceipt, TransactionRequest};
use serde_json::Value;

use super::error::{AnvilError, Result};

/// The pseudo-contract whose `Transfer` logs report ether transfers (ERC-7528), as
/// `eth_simulateV1` emits them with `traceTransfers`.
const ETHER: Address = address!("0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE");
/// `Transfer(address,address,uint256)`.
const TRANSFER: B256 = b256!("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// The block being built: its number, timestamp, base fee and fee recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockEnv {
    pub(crate) number: u64,
    pub(crate) timestamp: u64,
    pub(crate) base_fee: u128,
    pub(crate) coinbase: Address,
}

impl BlockEnv {
    /// The block after the head, built by `coinbase`: anvil's own base fee for it
    /// (`eth_feeHistory`) and the timestamp anvil would give it (the wall clock, never before the
    /// head's). The block is mined with exactly this timestamp ([`mine`]), so what the simulation
    /// saw (a deadline, `minTimestamp`) is what the block sees.
    pub(crate) async fn next(anvil: &DynProvider, coinbase: Address) -> Result<Self> {
        let head = anvil
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| AnvilError::rpc("eth_getBlockByNumber", e))?
            .ok_or_else(|| AnvilError::rpc("eth_getBlockByNumber", "no latest block"))?;
        let history: Value = anvil
            .raw_request("eth_feeHistory".into(), ("0x1", "latest", Vec::<f64>::new()))
            .await
            .map_err(|e| AnvilError::rpc("eth_feeHistory", e))?;
        // baseFeePerGas holds the newest block's and the next block's.
        let next = history["baseFeePerGas"].as_array().and_then(|a| a.last()).and_then(Value::as_str);
        let base_fee = next
            .and_then(|h| u128::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| AnvilError::rpc("eth_feeHistory", format!("no next base fee in {history}")))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let number = head
            .header
            .number
            .checked_add(1)
            .ok_or_else(|| AnvilError::rpc("eth_getBlockByNumber", "head block number at u64::MAX"))?;
        Ok(Self { number, timestamp: now.max(head.header.timestamp), base_fee, coinbase })
    }
}

/// One transaction that executed in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Executed {
    pub(crate) hash: B256,
    pub(crate) from: Address,
    pub(crate) to: Option<Address>,
    /// `false`: it reverted (its gas is still paid).
    pub(crate) success: bool,
    pub(crate) gas_used: u64,
    /// Priority fee per gas it paid: effective gas price − base fee.
    pub(crate) tip_per_gas: u128,
    /// Wei its calls sent to the fee recipient (only known from a simulation; 0 for a mined one).
    pub(crate) to_coinbase: U256,
    /// Why it reverted, as the node said (`execution reverted: …`, with the revert data), when a
    /// simulation says; empty otherwise.
    pub(crate) revert: String,
}

/// What became of one transaction of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    Executed(Executed),
    /// Not in the block, and why (a nonce out of order, a fee cap under the base fee, a send the
    /// node refused).
    Skipped(String),
}

/// Simulates the block `env` on top of the head: `public` first (what anvil's first-in first-out
/// pool mines first), then `txs`. Returns the fate of each of `txs`, in order.
pub(crate) async fn simulate(
    anvil: &DynProvider,
    env: &BlockEnv,
    public: &[Bytes],
    txs: &[Bytes],
) -> Result<Vec<Fate>> {
    let mut next_nonce: HashMap<Address, u64> = HashMap::new();
    let mut calls = Vec::with_capacity(public.len() + txs.len());
    // Per transaction of `txs`: the index of its call, or why it was skipped.
    let mut slots: Vec<core::result::Result<(usize, Recovered<TxEnvelope>), String>> =
        Vec::with_capacity(txs.len());
    for (k, raw) in public.iter().chain(txs).enumerate() {
        let checked = admit(anvil, env, raw, &mut next_nonce).await?;
        let slot = checked.map(|tx| {
            calls.push(TransactionRequest::from_recovered_transaction(tx.clone()));
            (calls.len() - 1, tx)
        });
        if k >= public.len() {
            slots.push(slot);
        }
    }
    let overrides = BlockOverrides {
        number: Some(U256::from(env.number)),
        time: Some(env.timestamp),
        coinbase: Some(env.coinbase),
        base_fee: Some(U256::from(env.base_fee)),
        ..Default::default()
    };
    let payload = SimulatePayload {
        block_state_calls: vec![SimBlock { block_overrides: Some(overrides), state_overrides: None, calls }],
        trace_transfers: true,
        validation: true,
        return_full_transactions: false,
    };
    /// The part of a simulated block read here.
    #[derive(Debug, serde::Deserialize)]
    struct Simulated {
        calls: Vec<SimCallResult>,
    }
    let blocks: Vec<Simulated> = anvil
        .raw_request("eth_simulateV1".into(), (payload, "latest"))
        .await
        .map_err(|e| AnvilError::rpc("eth_simulateV1", e))?;
    let results = match blocks.as_slice() {
        [block] => &block.calls,
        other => return Err(AnvilError::rpc("eth_simulateV1", format!("{} blocks for 1", other.len()))),
    };
    slots
        .into_iter()
        .map(|slot| match slot {
            Err(why) => Ok(Fate::Skipped(why)),
            Ok((i, tx)) => {
                let r = results.get(i).ok_or_else(|| {
                    AnvilError::rpc(
                        "eth_simulateV1",
                        format!("{} call results, none for call {i}", results.len()),
                    )
                })?;
                let to_coinbase = r
                    .logs
                    .iter()
                    .filter(|l| l.address() == ETHER && l.topics().len() == 3 && l.topics()[0] == TRANSFER)
                    .filter(|l| Address::from_word(l.topics()[2]) == env.coinbase)
                    .map(|l| U256::try_from_be_slice(&l.data().data).unwrap_or_default())
                    .fold(U256::ZERO, U256::saturating_add);
                Ok(Fate::Executed(Executed {
                    hash: *tx.inner().tx_hash(),
                    from: tx.signer(),
                    to: tx.to(),
                    success: r.status,
                    gas_used: r.gas_used,
                    tip_per_gas: tip(tx.inner(), env.base_fee),
                    to_coinbase,
                    revert: revert_reason(r),
                }))
            }
        })
        .collect()
}

/// Why a simulated call failed: the node's message and the decoded revert reason (or the revert
/// data when it is not a known error); empty when it did not fail.
fn revert_reason(r: &SimCallResult) -> String {
    if r.status {
        return String::new();
    }
    let message = r.error.as_ref().map_or("reverted", |e| e.message.as_str());
    let data =
        r.error.as_ref().and_then(|e| e.data.as_ref()).filter(|d| !d.is_empty()).unwrap_or(&r.return_data);
    if data.is_empty() {
        return message.to_string();
    }
    match alloy::sol_types::decode_revert_reason(data) {
        Some(reason) => format!("{message}: {reason}"),
        None => format!("{message}: data {data}"),
    }
}

/// Checks `raw` against the block as a builder would; `Ok(Err(why))`: it is skipped.
async fn admit(
    anvil: &DynProvider,
    env: &BlockEnv,
    raw: &Bytes,
    next_nonce: &mut HashMap<Address, u64>,
) -> Result<core::result::Result<Recovered<TxEnvelope>, String>> {
    let tx = match TxEnvelope::decode_2718(&mut raw.as_ref()) {
        Ok(tx) => tx,
        Err(e) => return Ok(Err(format!("not a signed EIP-2718 transaction: {e}"))),
    };
    let from = match tx.recover_signer() {
        Ok(a) => a,
        Err(e) => return Ok(Err(format!("signature does not recover: {e}"))),
    };
    let expected = match next_nonce.get(&from) {
        Some(n) => *n,
        None => anvil
            .get_transaction_count(from)
            .await
            .map_err(|e| AnvilError::rpc("eth_getTransactionCount", e))?,
    };
    next_nonce.insert(from, expected);
    if tx.nonce() < expected {
        return Ok(Err(format!("nonce too low: {} (the account's next is {expected})", tx.nonce())));
    }
    if tx.nonce() > expected {
        return Ok(Err(format!("nonce gap: {} (the account's next is {expected})", tx.nonce())));
    }
    if tx.max_fee_per_gas() < env.base_fee {
        return Ok(Err(format!(
            "max fee per gas {} under the block's base fee {}",
            tx.max_fee_per_gas(),
            env.base_fee
        )));
    }
    next_nonce.insert(from, expected + 1);
    Ok(Ok(Recovered::new_unchecked(tx, from)))
}

/// Priority fee per gas `tx` pays over `base_fee` (0 when its fee cap is under it).
pub(crate) fn tip(tx: &TxEnvelope, base_fee: u128) -> u128 {
    u64::try_from(base_fee).ok().and_then(|b| tx.effective_tip_per_gas(b)).unwrap_or(0)
}

/// Sends `txs` in order (a refused send is recorded, not fatal) and mines block `env` with its
/// timestamp; returns the block number and each transaction's fate from the receipts.
pub(crate) async fn mine(anvil: &DynProvider, env: &BlockEnv, txs: &[Bytes]) -> Result<(u64, Vec<Fate>)> {
    let mut hashes = Vec::with_capacity(txs.len());
    let mut send_errors = Vec::with_capacity(txs.len());
    for raw in txs {
        let hash = TxEnvelope::decode_2718(&mut raw.as_ref()).map(|t| *t.tx_hash()).unwrap_or_default();
        hashes.push(hash);
        send_errors.push(anvil.send_raw_transaction(raw).await.err().map(|e| e.to_string()));
    }
    mine_pool(anvil, env).await?;
    let block = anvil
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(|e| AnvilError::rpc("eth_getBlockByNumber", e))?
        .ok_or_else(|| AnvilError::rpc("eth_getBlockByNumber", "no latest block"))?;
    let receipts: Vec<TransactionReceipt> = if hashes.is_empty() {
        Vec::new()
    } else {
        anvil
            .get_block_receipts(block.header.number.into())
            .await
            .map_err(|e| AnvilError::rpc("eth_getBlockReceipts", e))?
            .unwrap_or_default()
    };
    let base_fee = block.header.base_fee_per_gas.map_or(0, u128::from);
    let fates = hashes
        .iter()
        .zip(send_errors)
        .map(|(h, send_error)| match receipts.iter().find(|r| r.transaction_hash == *h) {
            Some(r) => Fate::Executed(Executed {
                hash: *h,
                from: r.from,
                to: r.to,
                success: r.status(),
                gas_used: r.gas_used,
                tip_per_gas: r.effective_gas_price.saturating_sub(base_fee),
                to_coinbase: U256::ZERO,
                revert: String::new(),
            }),
            None => Fate::Skipped(send_error.unwrap_or_else(|| "not included".into())),
        })
        .collect();
    Ok((block.header.number, fates))
}

/// Mines block `env` with what anvil's pool holds (its public transactions), at `env`'s timestamp.
pub(crate) async fn mine_pool(anvil: &DynProvider, env: &BlockEnv) -> Result<()> {
    anvil
        .raw_request::<_, Value>("evm_mine".into(), (env.timestamp,))
        .await
        .map_err(|e| AnvilError::rpc("evm_mine", e))?;
    Ok(())
}
