//! Building and sealing a block: base fee (EIP-1559), the bundles then the mempool, the
//! arbitrageur, the header and receipts.

#[allow(unused_imports)]
use super::*;

impl Chain {
    /// Base fee of the next block.
    pub(crate) fn next_base_fee(&self) -> u64 {
        self.head_header().inner.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(1)
    }
}

impl Chain {
    /// Builds, executes and seals the next block at wall-clock `now_secs`. Returns its number.
    pub(crate) fn produce_block(&mut self, now_secs: u64, board: &PriceBoard) -> u64 {
        let u = self.u.clone();
        let parent = self.head_header().clone();
        let number = parent.number + 1;
        let env = ExecEnv { timestamp: now_secs.max(parent.timestamp), base_fee: self.next_base_fee() };
        let mut included: Vec<Executed> = Vec::new();
        let mut gas_used = 0u64;

        // (a) bundles for this block, in arrival order; then the public mempool.
        let pending = std::mem::take(&mut self.bundles);
        let mut landed_hashes = HashSet::new();
        for b in pending {
            if b.block > number {
                self.bundles.push(b);
                continue;
            }
            if landed_hashes.contains(&b.hash)
                || matches!(self.bundle_status.get(&b.hash), Some(BundleStatus::Landed { .. }))
            {
                // The same transactions already landed (a bundle retargeted over several blocks).
                continue;
            }
            if b.block < number {
                self.counters.bundles_expired += 1;
                self.bundle_status.insert(
                    b.hash,
                    BundleStatus::Expired { block: b.block, reason: "target block passed".to_owned() },
                );
                continue;
            }
            if b.min_timestamp.is_some_and(|t| env.timestamp < t)
                || b.max_timestamp.is_some_and(|t| env.timestamp > t)
            {
                self.counters.bundles_expired += 1;
                let reason = format!(
                    "block timestamp {} outside [{:?}, {:?}]",
                    env.timestamp, b.min_timestamp, b.max_timestamp
                );
                self.bundle_status.insert(b.hash, BundleStatus::Expired { block: b.block, reason });
                continue;
            }
            let floor = u.builder_min_tip_wei;
            let tip = b.txs.iter().filter_map(|t| t.inner().effective_tip_per_gas(env.base_fee)).min();
            if floor > 0 && tip.is_some_and(|t| t < u128::from(floor)) {
                self.counters.bundles_expired += 1;
                let reason = format!("tip {} wei below the builder's floor of {floor}", tip.unwrap_or(0));
                self.bundle_status.insert(b.hash, BundleStatus::Expired { block: b.block, reason });
                continue;
            }
            let mut scratch = self.state.clone();
            let outcome = Self::run_bundle(&u, &mut scratch, &env, &b.txs, &b.reverting).and_then(|txs| {
                let g: u64 = txs.iter().map(|e| e.gas_used).sum();
                if gas_used + g > u.gas_limit {
                    Err((0, "bundle does not fit in the block's remaining gas".to_owned()))
                } else {
                    Ok(txs)
                }
            });
            match outcome {
                Ok(txs) => {
                    self.state = scratch;
                    gas_used += txs.iter().map(|e| e.gas_used).sum::<u64>();
                    included.extend(txs);
                    self.counters.bundles_landed += 1;
                    landed_hashes.insert(b.hash);
                    self.bundle_status.insert(b.hash, BundleStatus::Landed { block: number });
                }
                Err((i, reason)) => {
                    self.counters.bundles_failed += 1;
                    let reason = format!("tx {i} ({}): {reason}", b.txs[i].inner().tx_hash());
                    tracing::debug!(bundle = %b.hash, %reason, "bundle failed");
                    self.bundle_status.insert(b.hash, BundleStatus::Failed { block: number, reason });
                }
            }
        }
        // Drop still-pending duplicates of bundles that just landed.
        self.bundles.retain(|b| !landed_hashes.contains(&b.hash));

        let mempool = std::mem::take(&mut self.mempool);
        for tx in mempool {
            if gas_used + tx.inner().gas_limit() > u.gas_limit {
                self.mempool.push(tx);
                continue;
            }
            if tx.inner().nonce() > self.state.nonce_of(tx.signer()) {
                // Nonce gap: wait for the missing transactions.
                self.mempool.push(tx);
                continue;
            }
            match execute(&u, &mut self.state, &env, &tx) {
                Ok(e) => {
                    gas_used += e.gas_used;
                    self.counters.public_txs_included += 1;
                    included.push(e);
                }
                Err(reason) => {
                    self.counters.public_txs_dropped += 1;
                    tracing::debug!(tx = %tx.inner().tx_hash(), %reason, "public transaction dropped");
                }
            }
        }

        // (b) arbitrage toward the reference prices.
        if u.arbitrage {
            for pool in (0..u.pools.len()).filter(|p| !self.held.contains(p)) {
                if arbitrage_pool(&u, &mut self.state, board, pool, env.timestamp) {
                    self.counters.arbitrage_trades += 1;
                    let (r0, r1) = self.state.reserves[pool];
                    let p = &u.pools[pool];
                    tracing::trace!(
                        pool = %p.name, token0 = %u.tokens[p.token0].symbol, token1 = %u.tokens[p.token1].symbol,
                        %r0, %r1, "arbitrage"
                    );
                }
            }
        }

        // (c) client flows, applied to the state as the block closes.
        for f in u.flows.iter().filter(|f| number.is_multiple_of(f.every_blocks)) {
            let forward = (number / f.every_blocks) % 2 == 1;
            let [a, b] = f.between;
            let (from, to) = if forward { (a, b) } else { (b, a) };
            if self.state.move_funds(f.token, from, to, f.amount) {
                self.counters.flows_applied += 1;
                tracing::info!(block = number, %from, %to, token = %u.tokens[f.token].symbol, amount = %f.amount, "client flow");
            } else {
                self.counters.flows_skipped += 1;
                tracing::warn!(block = number, %from, token = %u.tokens[f.token].symbol, "client flow skipped: balance short");
            }
        }

        // (d) seal.
        let mut cumulative = 0u64;
        let mut consensus_receipts = Vec::with_capacity(included.len());
        let mut cumulative_per_tx = Vec::with_capacity(included.len());
        for e in &included {
            cumulative += e.gas_used;
            cumulative_per_tx.push(cumulative);
            consensus_receipts.push(receipt_envelope::<alloy::primitives::Log>(e, cumulative));
        }
        let envelopes: Vec<TxEnvelope> = included.iter().map(|e| e.tx.inner().clone()).collect();
        let header = Header {
            parent_hash: parent.hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: COINBASE,
            state_root: keccak256([parent.inner.state_root.as_slice(), &number.to_be_bytes()].concat()),
            transactions_root: calculate_transaction_root(&envelopes),
            receipts_root: calculate_receipt_root(&consensus_receipts),
            number,
            gas_limit: u.gas_limit,
            gas_used,
            timestamp: env.timestamp,
            base_fee_per_gas: Some(env.base_fee),
            extra_data: Bytes::from_static(b"keel-sim"),
            ..Default::default()
        };
        let header = RpcHeader::new(header);
        for (i, e) in included.iter().enumerate() {
            let receipt = TransactionReceipt {
                inner: receipt_envelope::<RpcLog>(e, cumulative_per_tx[i]),
                transaction_hash: e.hash(),
                transaction_index: Some(i as u64),
                block_hash: Some(header.hash),
                block_number: Some(number),
                gas_used: e.gas_used,
                effective_gas_price: e.effective_gas_price,
                blob_gas_used: None,
                blob_gas_price: None,
                from: e.tx.signer(),
                to: e.tx.inner().to(),
                contract_address: None,
            };
            self.receipts.insert(e.hash(), receipt);
        }
        self.block_by_hash.insert(header.hash, number);
        self.blocks.push(SealedBlock { header, txs: included });
        number
    }
}

pub(super) fn receipt_envelope<L>(e: &Executed, cumulative_gas_used: u64) -> ReceiptEnvelope<L> {
    let rwb = ReceiptWithBloom {
        receipt: Receipt { status: Eip658Value::Eip658(e.success), cumulative_gas_used, logs: Vec::new() },
        logs_bloom: Bloom::ZERO,
    };
    match e.tx.inner().tx_type() {
        TxType::Legacy => ReceiptEnvelope::Legacy(rwb),
        TxType::Eip2930 => ReceiptEnvelope::Eip2930(rwb),
        TxType::Eip4844 => ReceiptEnvelope::Eip4844(rwb),
        TxType::Eip7702 => ReceiptEnvelope::Eip7702(rwb),
        TxType::Eip1559 => ReceiptEnvelope::Eip1559(rwb),
    }
}
