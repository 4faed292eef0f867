//! EIP-1559 transactions: fees from the head's base fee, per-account nonce tracking, local signing
//! and EIP-2718 encoding, all synchronous (this is on the tick-to-wire path).

use std::collections::HashMap;

use alloy::consensus::transaction::RlpEcdsaEncodableTx;
use alloy::consensus::{SignableTransaction, TxEip1559};
use alloy::primitives::{Address, Bytes, TxKind, U256, keccak256};

use crate::signer::Signer;
pub use keel_engine::signed::{Fees, SignedTx};

/// Why a transaction could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The signer failed.
    #[error("signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// No nonce is known for the account (it was never read from the chain).
    #[error("no nonce known for {0}: read it from the chain first")]
    UnknownNonce(Address),
}

/// Everything of a call but the nonce and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    /// Contract called.
    pub to: Address,
    /// Calldata.
    pub input: Bytes,
    /// Gas limit.
    pub gas_limit: u64,
    /// ETH sent.
    pub value: U256,
}

/// Builds and signs an EIP-1559 transaction (with a precomputed nonce when `signer` has a presign
/// pool with one ready; see [`crate::presign`]).
pub fn sign_call(
    signer: &mut Signer,
    chain_id: u64,
    nonce: u64,
    call: &CallRequest,
    fees: Fees,
) -> Result<SignedTx, TxError> {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: call.gas_limit,
        max_fee_per_gas: fees.max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        to: TxKind::Call(call.to),
        value: call.value,
        access_list: Default::default(),
        input: call.input.clone(),
    };
    let sig = signer.sign_hash(&tx.signature_hash())?;
    // Encoded once, into a buffer of its exact size; the hash is of those bytes (alloy's
    // `into_signed` + `encoded_2718` would encode it twice).
    let mut raw = Vec::with_capacity(tx.eip2718_encoded_length(&sig));
    tx.eip2718_encode(&sig, &mut raw);
    let hash = keccak256(&raw);
    Ok(SignedTx { raw: raw.into(), hash, from: signer.address(), nonce, gas_limit: call.gas_limit, fees })
}

/// Next nonce per account: read from the chain at start, then tracked locally so a bundle of several
/// transactions (and the next rebalance, before the chain catches up) gets consecutive nonces.
#[derive(Debug, Default, Clone)]
pub struct NonceTracker {
    next: HashMap<Address, u64>,
}

impl NonceTracker {
    /// The chain reports `account`'s transaction count. The local view never goes below it, and is
    /// pulled back to it by [`NonceTracker::reset_to_chain`] when reserved nonces were abandoned.
    pub fn observe_chain(&mut self, account: Address, chain_nonce: u64) {
        let e = self.next.entry(account).or_insert(chain_nonce);
        if *e < chain_nonce {
            *e = chain_nonce;
        }
    }

    /// Forgets reservations above the chain's count (after a bundle expired unlanded).
    pub fn reset_to_chain(&mut self, account: Address, chain_nonce: u64) {
        self.next.insert(account, chain_nonce);
    }

    /// Reserves `count` consecutive nonces and returns the first.
    pub fn reserve(&mut self, account: Address, count: u64) -> Result<u64, TxError> {
        let e = self.next.get_mut(&account).ok_or(TxError::UnknownNonce(account))?;
        let first = *e;
        *e += count;
        Ok(first)
    }

    /// The next nonce that would be reserved.
    pub fn peek(&self, account: Address) -> Option<u64> {
        self.next.get(&account).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::consensus::TxEnvelope;
    use alloy::consensus::transaction::SignerRecoverable;
    use alloy::eips::eip2718::Decodable2718;

    #[test]
    fn signed_tx_decodes_and_recovers_the_sender() {
        let mut signer = Signer::dev(0).unwrap();
        let call = CallRequest {
            to: Address::repeat_byte(0x11),
            input: Bytes::from(vec![1, 2, 3]),
            gas_limit: 100_000,
            value: U256::ZERO,
        };
        let fees = Fees::from_base_fee(10, 2, 1);
        let tx = sign_call(&mut signer, 31337, 7, &call, fees).unwrap();
        let env = TxEnvelope::decode_2718(&mut tx.raw.as_ref()).unwrap();
        assert_eq!(env.recover_signer().unwrap(), signer.address());
        assert_eq!(*env.tx_hash(), tx.hash);
        let TxEnvelope::Eip1559(s) = env else { panic!("not 1559") };
        assert_eq!(s.tx().nonce, 7);
        assert_eq!(s.tx().chain_id, 31337);
        assert_eq!(s.tx().max_fee_per_gas, 21);
    }

    /// Signs `count` transactions with `signer` and checks each with alloy: decodes, recovers the
    /// sender, carries its nonce, and its hash is the envelope's.
    fn sign_and_recover(signer: &mut Signer, count: u64) {
        let call = CallRequest {
            to: Address::repeat_byte(0x11),
            input: Bytes::from(vec![0x38; 4 + 32 * 9]),
            gas_limit: 150_000,
            value: U256::from(5u64),
        };
        for nonce in 0..count {
            let tx = sign_call(signer, 1, nonce, &call, Fees::from_base_fee(10, 2, 1)).unwrap();
            let env = TxEnvelope::decode_2718(&mut tx.raw.as_ref()).unwrap();
            assert_eq!(env.recover_signer().unwrap(), signer.address(), "nonce {nonce}");
            assert_eq!(*env.tx_hash(), tx.hash);
            let TxEnvelope::Eip1559(s) = env else { panic!("not 1559") };
            assert_eq!((s.tx().nonce, s.tx().chain_id), (nonce, 1));
        }
    }

    #[test]
    fn a_presigned_tx_decodes_and_recovers_the_sender_with_alloy() {
        use crate::presign::{PresignConfig, test_support::wait_until};
        let capacity = 64;
        let mut signer = Signer::dev(3).unwrap().with_presign(PresignConfig { capacity }).unwrap();
        wait_until("the pool is full", || signer.presign_stats().is_some_and(|s| s.pool_depth == capacity));
        sign_and_recover(&mut signer, capacity as u64);
        let stats = signer.presign_stats().unwrap();
        assert_eq!((stats.signed_precomputed, stats.fallbacks), (capacity as u64, 0), "{stats:?}");
    }

    #[test]
    fn nonces_are_consecutive_and_follow_the_chain() {
        let a = Address::repeat_byte(1);
        let mut n = NonceTracker::default();
        assert!(matches!(n.reserve(a, 1), Err(TxError::UnknownNonce(_))));
        n.observe_chain(a, 5);
        assert_eq!(n.reserve(a, 2).unwrap(), 5);
        assert_eq!(n.reserve(a, 1).unwrap(), 7);
        n.observe_chain(a, 6); // chain behind our reservations: keep ours
        assert_eq!(n.peek(a), Some(8));
        n.reset_to_chain(a, 6);
        assert_eq!(n.reserve(a, 1).unwrap(), 6);
    }

    #[test]
    fn effective_price_is_capped() {
        let f = Fees { max_fee_per_gas: 100, max_priority_fee_per_gas: 5 };
        assert_eq!(f.effective_price(50), 55);
        assert_eq!(f.effective_price(99), 100);
    }
}
