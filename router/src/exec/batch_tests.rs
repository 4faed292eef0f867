//! Netting and batches: rebalances of several portfolios decided for one block go out as one bundle,
//! opposite legs crossed as transfers between the accounts.

use super::tests::{cost_aware, decided_then_refused, executor_for, executor_native, head, intent, ready};
use super::*;
use alloy::consensus::TxEnvelope;
use alloy::consensus::transaction::SignerRecoverable;
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::Bytes;
use alloy::sol_types::SolCall;
use keel_amm::abi::IERC20;
use keel_engine::TokenId;
use keel_engine::intent::Leg;

const USDC_ADDR: Address = Address::repeat_byte(0x10);
const WETH_ADDR: Address = Address::repeat_byte(0x20);

/// A transaction of a submitted bundle: who signed it, its nonce, where it goes, its calldata.
#[derive(Debug)]
struct SentTx {
    from: Address,
    nonce: u64,
    to: Address,
    input: Bytes,
    value: U256,
}

/// The bundle of the (last) submission in `out`, and its `replacementUuid`.
fn bundle(out: &[Action]) -> (Vec<SentTx>, String) {
    let request = out
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Submit { request, .. } => Some(request),
            _ => None,
        })
        .expect("a submission");
    let v: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    let txs = v["params"][0]["txs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            use alloy::consensus::Transaction;
            let raw: Bytes = t.as_str().unwrap().parse().unwrap();
            let env = TxEnvelope::decode_2718(&mut raw.as_ref()).unwrap();
            SentTx {
                from: env.recover_signer().unwrap(),
                nonce: env.nonce(),
                to: env.to().unwrap(),
                input: env.input().clone(),
                value: env.value(),
            }
        })
        .collect();
    (txs, v["params"][0]["replacementUuid"].as_str().unwrap().to_owned())
}

/// Portfolio `p` on `account` buys WETH with `usdc` whole USDC.
fn buy_weth(id: u64, p: u32, account: Address, usdc: u64) -> RebalanceIntent {
    RebalanceIntent {
        portfolio: PortfolioId(p),
        legs: vec![Leg {
            sell: TokenId(0),
            buy: TokenId(1),
            amount_in: U256::from(usdc) * U256::from(1_000_000u64),
            notional: usdc as f64,
            reference_price: 1.0 / 3000.0,
        }],
        ..intent(id, account)
    }
}

/// Two accounts ready at nonces 0 (a) and 7 (b).
fn two_accounts() -> (Executor, Address, Address) {
    let (mut exec, acc) = executor_for(3);
    ready(&mut exec, acc[0], 0);
    let mut out = Vec::new();
    exec.on_chain(ChainUpdate::Nonce { account: acc[1], nonce: 7, block: 1 }, 0, &mut out);
    exec.on_chain(ChainUpdate::Nonce { account: acc[2], nonce: 0, block: 1 }, 0, &mut out);
    (exec, acc[0], acc[1])
}

fn transfer_of(tx: &SentTx) -> Option<(Address, U256)> {
    IERC20::transferCall::abi_decode(&tx.input).ok().map(|c| (c.to, c.amount))
}

/// Native ETH (the zero address): selling it alone is one swap that carries the amount in as its
/// value, with no approval; crossed against a buyer in the same block, it goes to the buyer as a
/// plain value transfer (no calldata, 21,000 gas), and the buyer's USDC comes back as an ERC-20
/// transfer.
#[test]
fn native_eth_is_sold_as_the_swaps_value_and_crossed_as_a_value_transfer() {
    let (mut exec, acc) = executor_native(2);
    let (a, b) = (acc[0], acc[1]);
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    let mut out = Vec::new();
    exec.on_intent(&intent(1, a), 0, &mut out);
    let (alone, _) = bundle(&out);
    assert_eq!(alone.len(), 1, "no approval before a native sale: {alone:?}");
    assert_eq!(
        (alone[0].to, alone[0].value),
        (Address::repeat_byte(0x77), e18),
        "the swap pays 1 ETH as its value"
    );
    out.clear();

    exec.on_intent(&buy_weth(2, 1, b, 3000), 0, &mut out);
    let (txs, _) = bundle(&out);
    let from_a: Vec<&SentTx> = txs.iter().filter(|t| t.from == a).collect();
    let from_b: Vec<&SentTx> = txs.iter().filter(|t| t.from == b).collect();
    assert_eq!((from_a.len(), from_b.len()), (1, 1), "fully crossed: {txs:?}");
    assert_eq!(from_a[0].to, b, "ETH goes straight to the buyer");
    assert!(from_a[0].input.is_empty(), "a plain value transfer");
    assert!(e18 - from_a[0].value < U256::from(1_000u64), "about 1 ETH: {}", from_a[0].value);
    let (to, usdc) = transfer_of(from_b[0]).expect("b transfers USDC");
    assert_eq!((from_b[0].to, to, from_b[0].value), (USDC_ADDR, a, U256::ZERO));
    assert_eq!(usdc, U256::from(3_000_000_000u64));
}

#[test]
fn opposite_rebalances_of_one_block_cross_in_one_bundle() {
    let (mut exec, a, b) = two_accounts();
    let mut out = Vec::new();
    // a sells 1 WETH: sent at once, alone (approve + swap).
    exec.on_intent(&intent(1, a), 0, &mut out);
    let (first, uuid) = bundle(&out);
    assert_eq!(first.len(), 2);
    out.clear();

    // b buys WETH with 4500 USDC in the same block: the batch is re-sent under the same uuid.
    exec.on_intent(&buy_weth(2, 1, b, 4500), 0, &mut out);
    let (txs, uuid2) = bundle(&out);
    assert_eq!(uuid2, uuid, "one replacementUuid per batch");
    // a: one transfer of its WETH to b, nothing left to swap; b: its USDC to a, then approve + swap
    // of the residual 1500 USDC.
    let from_a: Vec<&SentTx> = txs.iter().filter(|t| t.from == a).collect();
    let from_b: Vec<&SentTx> = txs.iter().filter(|t| t.from == b).collect();
    assert_eq!(from_a.len(), 1, "{txs:?}");
    assert_eq!(from_b.len(), 3, "{txs:?}");
    assert_eq!(from_a[0].nonce, 0);
    assert_eq!(from_b.iter().map(|t| t.nonce).collect::<Vec<_>>(), vec![7, 8, 9]);
    let (to, weth) = transfer_of(from_a[0]).expect("a transfers");
    assert_eq!((from_a[0].to, to), (WETH_ADDR, b));
    let (to, usdc) = transfer_of(from_b[0]).expect("b transfers first");
    assert_eq!((from_b[0].to, to), (USDC_ADDR, a));
    // At the mid: 1 WETH for 3000 USDC (to the f64 mid's precision).
    assert!(weth <= U256::from(10u64).pow(U256::from(18u64)));
    assert!(U256::from(10u64).pow(U256::from(18u64)) - weth < U256::from(1_000u64), "{weth}");
    assert_eq!(usdc, U256::from(3_000_000_000u64));
    // Both portfolios' reports show the cross and what it saved against trading alone.
    let (ca, cb) = (exec.costs()[0], exec.costs()[1]);
    assert!((ca.crossed - 3000.0).abs() < 1e-6 && (cb.crossed - 3000.0).abs() < 1e-6, "{ca:?} {cb:?}");
    assert!(ca.saved > 0.0 && cb.saved > 0.0, "{ca:?} {cb:?}");
    assert_eq!(ca.pool_fees, 0.0, "a no longer pays a pool fee");
    // The journal has each member's current version, both pointing at the batch's bundle.
    let signed: Vec<_> = out
        .iter()
        .filter_map(|x| match x {
            Action::Journal(JournalRecord::Signed(s)) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(signed.len(), 2, "both members re-signed");
    assert!(signed.iter().all(|s| s.uuid == uuid && s.bundle_hash == signed[0].bundle_hash));
    assert_eq!(exec.inflight_count(), 2);

    // The next head resends the batch as one bundle, unchanged.
    out.clear();
    exec.on_chain(head(2), 0, &mut out);
    let submits = out.iter().filter(|x| matches!(x, Action::Submit { .. })).count();
    assert_eq!(submits, 1);
    let (again, uuid3) = bundle(&out);
    assert_eq!((again.len(), uuid3), (4, uuid));

    // Landing: each account's nonce shows it, each member settles from its own receipts.
    out.clear();
    exec.on_chain(ChainUpdate::Nonce { account: a, nonce: 1, block: 2 }, 0, &mut out);
    exec.on_chain(ChainUpdate::Nonce { account: b, nonce: 10, block: 2 }, 0, &mut out);
    let fetched: Vec<u64> = out
        .iter()
        .filter_map(|x| match x {
            Action::FetchReceipts { intent, expected, .. } => Some(*intent * 10 + *expected as u64),
            _ => None,
        })
        .collect();
    assert_eq!(fetched, vec![11, 23], "intent 1: 1 receipt, intent 2: 3 receipts");
}

#[test]
fn a_refused_rebalance_stays_out_of_the_batch_and_blocks_nobody() {
    let (mut exec, a, b) = two_accounts();
    let mut out = Vec::new();
    exec.on_intent(&intent(1, a), 0, &mut out);
    out.clear();
    // An account with no key is refused before it joins.
    exec.on_intent(&buy_weth(2, 1, Address::repeat_byte(0x99), 4500), 0, &mut out);
    assert!(decided_then_refused(&out, "no signer"), "{out:?}");
    out.clear();
    // The batch goes on: b joins and crosses with a.
    exec.on_intent(&buy_weth(3, 2, b, 1500), 0, &mut out);
    let (txs, _) = bundle(&out);
    assert!(txs.iter().any(|t| t.from == a) && txs.iter().any(|t| t.from == b));
    assert!(txs.iter().filter(|t| t.from == b).all(|t| transfer_of(t).is_some()), "b is fully crossed");
}

#[test]
fn without_netting_each_rebalance_is_a_bundle_of_its_own() {
    let (mut exec, a, b) = two_accounts();
    exec.cfg.netting = false;
    let mut out = Vec::new();
    exec.on_intent(&intent(1, a), 0, &mut out);
    let (_, uuid) = bundle(&out);
    out.clear();
    exec.on_intent(&buy_weth(2, 1, b, 4500), 0, &mut out);
    let (txs, uuid2) = bundle(&out);
    assert_ne!(uuid, uuid2);
    assert!(txs.iter().all(|t| t.from == b && transfer_of(t).is_none()), "{txs:?}");
    // Each is retargeted on its own at the next head.
    out.clear();
    exec.on_chain(head(2), 0, &mut out);
    assert_eq!(out.iter().filter(|x| matches!(x, Action::Submit { .. })).count(), 2);
}

#[test]
fn a_rebalance_of_the_next_block_starts_a_new_batch() {
    let (mut exec, a, b) = two_accounts();
    let mut out = Vec::new();
    exec.on_intent(&intent(1, a), 0, &mut out);
    let (_, uuid) = bundle(&out);
    exec.on_chain(head(2), 0, &mut out);
    out.clear();
    exec.on_intent(&buy_weth(2, 1, b, 4500), 0, &mut out);
    let (txs, uuid2) = bundle(&out);
    assert_ne!(uuid, uuid2, "the head moved: the first batch is closed");
    assert!(txs.iter().all(|t| t.from == b));
}

#[test]
fn a_batch_taken_back_after_a_restart_is_resent_as_one_bundle() {
    let (mut exec, a, b) = two_accounts();
    let mut out = Vec::new();
    exec.on_intent(&intent(1, a), 0, &mut out);
    exec.on_intent(&buy_weth(2, 1, b, 4500), 0, &mut out);
    // What the journal holds: each member's newest version.
    let mut journaled: Vec<keel_engine::record::SignedBundle> = Vec::new();
    for x in &out {
        if let Action::Journal(JournalRecord::Signed(s)) = x {
            journaled.retain(|j| j.intent != s.intent);
            journaled.push((**s).clone());
        }
    }
    let (sent, uuid) = bundle(&out);

    // A new process adopts both members; the next head resends them as ONE bundle, unchanged.
    let (mut fresh, _) = executor_for(3);
    ready(&mut fresh, a, 0);
    for s in &journaled {
        fresh.adopt(s, &[], if s.account == a { 0 } else { 7 }).unwrap();
    }
    let mut out = Vec::new();
    fresh.on_chain(head(2), 0, &mut out);
    assert_eq!(out.iter().filter(|x| matches!(x, Action::Submit { .. })).count(), 1, "{out:?}");
    let (resent, uuid2) = bundle(&out);
    assert_eq!(uuid2, uuid);
    let nonces = |txs: &[SentTx]| txs.iter().map(|t| (t.from, t.nonce)).collect::<Vec<_>>();
    assert_eq!(nonces(&resent), nonces(&sent), "same transactions, same order");
}

#[test]
fn a_cost_aware_rebalance_is_priced_by_what_it_adds_to_the_batch() {
    let (mut exec, a, b) = two_accounts();
    let mut out = Vec::new();
    // Alone, selling 1 WETH costs ≈ 12 USDC (fees and impact) for a value of 5: refused.
    exec.on_intent(&cost_aware(intent(1, a), 5.0, 1), 0, &mut out);
    assert!(decided_then_refused(&out, "not worth it"), "{out:?}");
    out.clear();
    // With b buying 3000 USDC of WETH in the same block, the same sale crosses whole against it:
    // what it adds to the batch is two transfers' gas minus b's fee and impact saved. Sent.
    exec.on_intent(&buy_weth(2, 1, b, 3000), 0, &mut out);
    out.clear();
    exec.on_intent(&cost_aware(intent(3, a), 5.0, 1), 0, &mut out);
    let (txs, _) = bundle(&out);
    let from_a: Vec<&SentTx> = txs.iter().filter(|t| t.from == a).collect();
    assert_eq!(from_a.len(), 1, "{txs:?}");
    assert!(transfer_of(from_a[0]).is_some(), "a's whole sale is a transfer to b");
    assert_eq!(exec.stats().not_worth_it, 1);
}
