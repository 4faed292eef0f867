//! A signed transaction as the router hands it on (to relays, to the journal): bytes, hash and the
//! facts recovery needs, in plain alloy primitives.

use alloy_primitives::{Address, B256, Bytes};

/// Fee caps of one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// `maxFeePerGas`, wei.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas` (builder tip), wei.
    pub max_priority_fee_per_gas: u128,
}

impl Fees {
    /// `maxFeePerGas = base_fee × multiplier + tip`: valid for several blocks of base-fee rises
    /// (each block can raise it by at most 12.5%).
    pub fn from_base_fee(base_fee: u128, multiplier: u128, tip: u128) -> Self {
        Self {
            max_fee_per_gas: base_fee.saturating_mul(multiplier).saturating_add(tip),
            max_priority_fee_per_gas: tip,
        }
    }

    /// The price actually paid per gas at `base_fee`.
    pub fn effective_price(&self, base_fee: u128) -> u128 {
        self.max_fee_per_gas.min(base_fee.saturating_add(self.max_priority_fee_per_gas))
    }
}

/// A signed, encoded transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// EIP-2718 bytes, as `eth_sendBundle` and `eth_sendRawTransaction` take them.
    pub raw: Bytes,
    /// Transaction hash.
    pub hash: B256,
    /// Sender.
    pub from: Address,
    /// Nonce used.
    pub nonce: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// Fee caps.
    pub fees: Fees,
}
