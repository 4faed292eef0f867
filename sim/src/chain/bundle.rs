//! Bundles waiting for their target block, their statuses, and their submission to the chain: the
//! relay's bundles and the public mempool.

#[allow(unused_imports)]
use super::*;

/// A bundle waiting for its target block.
#[derive(Debug, Clone)]
pub(crate) struct PendingBundle {
    pub(crate) hash: B256,
    pub(crate) block: u64,
    pub(crate) min_timestamp: Option<u64>,
    pub(crate) max_timestamp: Option<u64>,
    pub(crate) txs: Vec<Recovered<TxEnvelope>>,
    pub(crate) reverting: HashSet<B256>,
    /// (signer, replacementUuid).
    pub(crate) uuid: Option<(Address, String)>,
}

/// What became of a bundle submitted to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleStatus {
    /// Waiting for its target block.
    Pending {
        /// Target block.
        block: u64,
    },
    /// Included, all its transactions in order, in `block`.
    Landed {
        /// Block it landed in.
        block: u64,
    },
    /// Considered at its target block and discarded as a whole.
    Failed {
        /// Target block.
        block: u64,
        /// Why (the first failing transaction and its error).
        reason: String,
    },
    /// Its target block passed without it being eligible (timestamp window missed).
    Expired {
        /// Target block.
        block: u64,
        /// Why.
        reason: String,
    },
    /// Replaced by a newer bundle with the same `replacementUuid`.
    Replaced,
    /// Cancelled with `eth_cancelBundle`.
    Cancelled,
}

impl Chain {
    /// Accepts a public transaction into the mempool (the next block includes it if still valid).
    pub(crate) fn submit_public(&mut self, tx: Recovered<TxEnvelope>) -> Result<B256, String> {
        let hash = *tx.inner().tx_hash();
        if self.receipts.contains_key(&hash) || self.mempool.iter().any(|m| m.inner().tx_hash() == &hash) {
            return Err("already known".to_owned());
        }
        let nonce = self.state.nonce_of(tx.signer());
        if tx.inner().nonce() < nonce {
            return Err(format!(
                "nonce too low: transaction has {}, account has {nonce}",
                tx.inner().nonce()
            ));
        }
        self.counters.public_txs += 1;
        self.mempool.push(tx);
        Ok(hash)
    }

    /// Queues a relay bundle for its target block (which must be after the head).
    pub(crate) fn submit_bundle(&mut self, b: PendingBundle) -> Result<(), (&'static str, String)> {
        let head = self.head();
        if b.block <= head {
            return Err((
                "past_block",
                format!("target block {} is not after the head block {head}", b.block),
            ));
        }
        if let Some(key) = &b.uuid {
            let before = self.bundles.len();
            let mut replaced = Vec::new();
            self.bundles.retain(|o| {
                let same = o.uuid.as_ref() == Some(key);
                if same {
                    replaced.push(o.hash);
                }
                !same
            });
            self.counters.bundles_replaced += (before - self.bundles.len()) as u64;
            for h in replaced {
                if h != b.hash {
                    self.bundle_status.insert(h, BundleStatus::Replaced);
                }
            }
        }
        self.counters.bundles_received += 1;
        if !matches!(self.bundle_status.get(&b.hash), Some(BundleStatus::Landed { .. })) {
            self.bundle_status.insert(b.hash, BundleStatus::Pending { block: b.block });
        }
        self.bundles.push(b);
        Ok(())
    }

    /// Cancels the pending bundles of `signer` with `uuid`; returns how many.
    pub(crate) fn cancel_bundle(&mut self, signer: Address, uuid: &str) -> usize {
        let mut cancelled = Vec::new();
        self.bundles.retain(|o| {
            let hit = o.uuid.as_ref().is_some_and(|(s, u)| *s == signer && u == uuid);
            if hit {
                cancelled.push(o.hash);
            }
            !hit
        });
        self.counters.bundles_cancelled += cancelled.len() as u64;
        for h in &cancelled {
            self.bundle_status.insert(*h, BundleStatus::Cancelled);
        }
        cancelled.len()
    }

    /// Counts a rejected bundle under `reason`.
    pub(crate) fn count_rejected(&mut self, reason: &str) {
        *self.counters.bundles_rejected.entry(reason.to_owned()).or_default() += 1;
    }

    /// Status of a bundle by hash.
    pub(crate) fn bundle_status(&self, hash: &B256) -> Option<BundleStatus> {
        self.bundle_status.get(hash).cloned()
    }

    /// Runs a bundle's transactions on `st`: `Err((index, reason))` for the first transaction that is
    /// invalid or reverts without being allowed to.
    pub(crate) fn run_bundle(
        u: &Universe,
        st: &mut State,
        env: &ExecEnv,
        txs: &[Recovered<TxEnvelope>],
        reverting: &HashSet<B256>,
    ) -> Result<Vec<Executed>, (usize, String)> {
        let mut out = Vec::with_capacity(txs.len());
        for (i, tx) in txs.iter().enumerate() {
            let e = execute(u, st, env, tx).map_err(|e| (i, e))?;
            if !e.success && !reverting.contains(&e.hash()) {
                return Err((i, format!("reverted: {}", e.revert.unwrap_or_default())));
            }
            out.push(e);
        }
        Ok(out)
    }
}
