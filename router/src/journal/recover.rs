//! Settling, at start, the rebalances a previous run left open: pure decisions from chain facts.
//!
//! The chain is the referee. A rebalance's transactions hold consecutive nonces of its account, and
//! every version of its bundle (the first, retargets, fee re-signs) uses the *same* nonces, so at
//! most one version can ever land, and once the account's nonce has moved past them none can land
//! any more. So for each open rebalance:
//!
//! * never signed → nothing reached a relay: closed as never sent (the engine decides afresh);
//! * a receipt of one of its transactions exists → it landed (while Keel was down);
//! * the account's nonce is past its first nonce, no receipt of ours → its nonces were used by
//!   something else: it can never land, closed;
//! * nonce not used, deadline not passed → it may still land: adopted, resent with the *same*
//!   transactions for the next blocks (never re-planned with new nonces), the portfolio stays busy;
//! * nonce not used, deadline passed → expired (no relay holds a version for a later block).

use super::record::Resolution;
use super::store::OpenRebalance;
use crate::exec::ReceiptInfo;

/// What the chain says about one open rebalance's account and transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainFacts {
    /// The account's confirmed transaction count (the next nonce) at `head`.
    pub account_nonce: u64,
    /// The latest block number.
    pub head: u64,
    /// Receipts found for any of the rebalance's transaction hashes (all versions).
    pub receipts: Vec<ReceiptInfo>,
}

/// Decides how an open rebalance is settled, with words for the journal.
pub fn reconcile(open: &OpenRebalance, facts: &ChainFacts) -> (Resolution, String) {
    let Some(bundle) = &open.latest else {
        return (Resolution::NeverSent, "decided but never signed; nothing was sent".into());
    };
    let ours: Vec<&ReceiptInfo> =
        facts.receipts.iter().filter(|r| open.all_hashes.contains(&r.hash)).collect();
    if !ours.is_empty() {
        let block = ours.iter().map(|r| r.block).max().unwrap_or(0);
        let gas_used = ours.iter().map(|r| r.gas_used).sum();
        let reverted = ours.iter().any(|r| !r.success);
        let detail = format!("{} of {} transactions found on chain", ours.len(), bundle.txs.len());
        return (Resolution::Landed { block, gas_used, reverted }, detail);
    }
    let first = bundle.txs.first().map_or(0, |t| t.nonce);
    if facts.account_nonce > first {
        let detail = format!(
            "account nonce {} is past the bundle's first nonce {first}, and none of its transactions landed",
            facts.account_nonce
        );
        return (Resolution::NoncesUsedElsewhere, detail);
    }
    if facts.head >= bundle.deadline_block {
        let detail = format!("head {} reached the deadline block {}", facts.head, bundle.deadline_block);
        return (Resolution::Expired, detail);
    }
    let detail = format!(
        "nonce {first} still free at head {}; resending version {} until block {}",
        facts.head, bundle.version, bundle.deadline_block
    );
    (Resolution::Adopted, detail)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, Bytes};

    use super::*;
    use crate::journal::record::{SignedBundle, TxRecord};

    fn open(signed: bool) -> OpenRebalance {
        let txs = vec![
            TxRecord { hash: B256::repeat_byte(1), nonce: 5, raw: Bytes::from_static(b"a") },
            TxRecord { hash: B256::repeat_byte(2), nonce: 6, raw: Bytes::from_static(b"b") },
        ];
        OpenRebalance {
            intent: 7,
            portfolio: 0,
            portfolio_name: "core".into(),
            account: Address::repeat_byte(9),
            latest: signed.then(|| SignedBundle {
                intent: 7,
                portfolio: 0,
                account: Address::repeat_byte(9),
                version: 1,
                uuid: "u".into(),
                target_block: 100,
                deadline_block: 110,
                bundle_hash: B256::ZERO,
                txs: txs.clone(),
            }),
            // version 0 had other hashes
            all_hashes: vec![
                B256::repeat_byte(3),
                B256::repeat_byte(4),
                B256::repeat_byte(1),
                B256::repeat_byte(2),
            ],
        }
    }

    fn receipt(byte: u8, block: u64, success: bool) -> ReceiptInfo {
        ReceiptInfo { hash: B256::repeat_byte(byte), block, gas_used: 50_000, success }
    }

    #[test]
    fn never_signed_is_never_sent() {
        let (r, _) = reconcile(&open(false), &ChainFacts { account_nonce: 9, head: 200, receipts: vec![] });
        assert_eq!(r, Resolution::NeverSent);
    }

    #[test]
    fn a_receipt_of_any_version_means_landed() {
        let facts = ChainFacts {
            account_nonce: 7,
            head: 105,
            receipts: vec![receipt(3, 103, true), receipt(4, 103, false)],
        };
        let (r, _) = reconcile(&open(true), &facts);
        assert_eq!(r, Resolution::Landed { block: 103, gas_used: 100_000, reverted: true });
    }

    #[test]
    fn foreign_receipts_are_ignored() {
        let facts = ChainFacts { account_nonce: 5, head: 105, receipts: vec![receipt(0xee, 103, true)] };
        assert_eq!(reconcile(&open(true), &facts).0, Resolution::Adopted);
    }

    #[test]
    fn used_nonces_without_our_receipts_can_never_land() {
        let facts = ChainFacts { account_nonce: 6, head: 105, receipts: vec![] };
        assert_eq!(reconcile(&open(true), &facts).0, Resolution::NoncesUsedElsewhere);
    }

    #[test]
    fn free_nonce_before_the_deadline_is_adopted_and_after_it_expired() {
        let live = ChainFacts { account_nonce: 5, head: 109, receipts: vec![] };
        assert_eq!(reconcile(&open(true), &live).0, Resolution::Adopted);
        let dead = ChainFacts { account_nonce: 5, head: 110, receipts: vec![] };
        assert_eq!(reconcile(&open(true), &dead).0, Resolution::Expired);
    }
}
