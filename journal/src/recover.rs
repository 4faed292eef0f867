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
//!
//! The daily notional caps survive the restart too ([`restored_charges`]): every rebalance of the
//! last 24 hours that landed, or was adopted, is charged again to the new run's windows, so a crash
//! loop cannot trade past `max_daily_notional`.

use keel_engine::PortfolioId;

use super::store::{ChargedRebalance, OpenRebalance};
use keel_engine::chain::ReceiptInfo;
use keel_engine::record::Resolution;

/// A day in milliseconds: the window of the daily notional caps.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// A rebalance of an earlier run to charge to the daily notional windows again.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredCharge {
    /// Its portfolio in this run's config (`None`: no longer configured; counts for the total cap).
    pub portfolio: Option<PortfolioId>,
    /// Intent id.
    pub intent: u64,
    /// Notional of all legs.
    pub notional: f64,
    /// How long before `now_ms` it was decided.
    pub age_ms: u64,
}

/// The charges to restore at `now_ms`: of `charged` (from
/// [`Store::charged_since`](super::store::Store::charged_since), read before recovery settled
/// anything), those decided within the last day and not settled by recovery as unable to land
/// (`settled`); portfolios are matched by name against `portfolio_names` (this run's config).
pub fn restored_charges(
    charged: &[ChargedRebalance],
    settled: &[(u64, Resolution)],
    portfolio_names: &[String],
    now_ms: i64,
) -> Vec<RestoredCharge> {
    charged
        .iter()
        .filter(|c| {
            settled
                .iter()
                .find(|(intent, _)| *intent == c.intent)
                .is_none_or(|(_, r)| matches!(r, Resolution::Landed { .. } | Resolution::Adopted))
        })
        .filter_map(|c| {
            // A decision "from the future" (the clock stepped back) counts as just now.
            let age_ms = now_ms.saturating_sub(c.decided_ms).max(0);
            (age_ms < DAY_MS).then(|| RestoredCharge {
                portfolio: portfolio_names
                    .iter()
                    .position(|n| *n == c.portfolio_name)
                    .map(|i| PortfolioId(i as u32)),
                intent: c.intent,
                notional: c.notional,
                age_ms: age_ms as u64,
            })
        })
        .collect()
}

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
        let gas_used = ours.iter().map(|r| r.gas_used).fold(0, u64::saturating_add);
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
    use alloy_primitives::{Address, B256, Bytes};

    use super::*;
    use keel_engine::record::{SignedBundle, TxRecord};

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

    #[test]
    fn charges_of_the_last_day_that_landed_or_may_land_are_restored_by_portfolio_name() {
        let now = 10 * DAY_MS;
        let c = |intent: u64, name: &str, age_ms: i64| ChargedRebalance {
            intent,
            portfolio_name: name.into(),
            notional: 1000.0 * intent as f64,
            decided_ms: now - age_ms,
        };
        let charged = [
            c(1, "core", DAY_MS + 1), // older than a day
            c(2, "core", DAY_MS - 1),
            c(3, "alt", 60_000),  // open, adopted by recovery
            c(4, "alt", 50_000),  // open, expired at recovery
            c(5, "gone", 40_000), // a portfolio no longer configured
            c(6, "alt", -5_000),  // decided "after" now: the clock stepped back
        ];
        let settled = [(3, Resolution::Adopted), (4, Resolution::Expired)];
        // this run's config lists the portfolios in another order
        let names = ["alt".to_string(), "core".to_string()];
        let got = restored_charges(&charged, &settled, &names, now);
        let want = [
            (2, Some(PortfolioId(1)), 2000.0, (DAY_MS - 1) as u64),
            (3, Some(PortfolioId(0)), 3000.0, 60_000),
            (5, None, 5000.0, 40_000),
            (6, Some(PortfolioId(0)), 6000.0, 0),
        ];
        assert_eq!(
            got.iter().map(|r| (r.intent, r.portfolio, r.notional, r.age_ms)).collect::<Vec<_>>(),
            want
        );
    }
}
