//! Reads of sealed blocks for the node: blocks, fee history, receipts and transactions.

#[allow(unused_imports)]
use super::*;

impl Chain {
    /// Block by number, as the JSON-RPC serialises it.
    pub(crate) fn rpc_block(&self, number: u64, full: bool) -> Option<RpcBlock> {
        let b = self.blocks.get(usize::try_from(number).ok()?)?;
        let transactions = if full {
            BlockTransactions::Full(b.txs.iter().enumerate().map(|(i, e)| rpc_transaction(b, i, e)).collect())
        } else {
            BlockTransactions::Hashes(b.txs.iter().map(Executed::hash).collect())
        };
        Some(RpcBlock { header: b.header.clone(), uncles: Vec::new(), transactions, withdrawals: None })
    }

    /// `eth_feeHistory` over up to `count` blocks ending at `newest`: base fees (plus the next
    /// block's), gas-used ratios, and the priority fees paid at each percentile (by transaction, 0 in
    /// empty blocks).
    pub(crate) fn fee_history(
        &self,
        count: u64,
        newest: u64,
        percentiles: &[f64],
    ) -> alloy::rpc::types::FeeHistory {
        let newest = newest.min(self.head());
        let count = count.min(newest + 1).min(1024);
        let oldest = newest + 1 - count;
        let mut base_fee_per_gas = Vec::new();
        let mut gas_used_ratio = Vec::new();
        let mut reward = Vec::new();
        for n in oldest..=newest {
            let b = &self.blocks[n as usize];
            let base = b.header.base_fee_per_gas.unwrap_or_default();
            base_fee_per_gas.push(base as u128);
            gas_used_ratio.push(b.header.gas_used as f64 / b.header.gas_limit.max(1) as f64);
            let mut tips: Vec<u128> =
                b.txs.iter().map(|e| e.effective_gas_price.saturating_sub(base as u128)).collect();
            tips.sort_unstable();
            reward.push(
                percentiles
                    .iter()
                    .map(|p| {
                        if tips.is_empty() {
                            0
                        } else {
                            let i = ((p / 100.0) * (tips.len() - 1) as f64).round() as usize;
                            tips[i.min(tips.len() - 1)]
                        }
                    })
                    .collect(),
            );
        }
        let last = &self.blocks[newest as usize].header;
        base_fee_per_gas.push(last.inner.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(1) as u128);
        alloy::rpc::types::FeeHistory {
            base_fee_per_gas,
            gas_used_ratio,
            base_fee_per_blob_gas: Vec::new(),
            blob_gas_used_ratio: Vec::new(),
            oldest_block: oldest,
            reward: if percentiles.is_empty() { None } else { Some(reward) },
        }
    }

    /// Number of the block with `hash`.
    pub(crate) fn block_number_by_hash(&self, hash: &B256) -> Option<u64> {
        self.block_by_hash.get(hash).copied()
    }

    /// Receipt of an included transaction.
    pub(crate) fn receipt(&self, hash: &B256) -> Option<&TransactionReceipt> {
        self.receipts.get(hash)
    }

    /// A mined transaction by hash, as the JSON-RPC serialises it.
    pub(crate) fn rpc_transaction(&self, hash: &B256) -> Option<RpcTransaction> {
        let r = self.receipts.get(hash)?;
        let b = &self.blocks[r.block_number? as usize];
        let i = r.transaction_index? as usize;
        Some(rpc_transaction(b, i, &b.txs[i]))
    }
}

/// The `i`-th transaction `e` of sealed block `b`, as the node returns it.
fn rpc_transaction(b: &SealedBlock, i: usize, e: &Executed) -> RpcTransaction {
    RpcTransaction {
        inner: e.tx.clone(),
        block_hash: Some(b.header.hash),
        block_number: Some(b.header.number),
        transaction_index: Some(i as u64),
        effective_gas_price: Some(e.effective_gas_price),
        block_timestamp: Some(b.header.timestamp),
    }
}
