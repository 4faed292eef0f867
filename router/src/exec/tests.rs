//! The executor's unit tests: intents, chain updates and receipts in, actions out.

use super::*;
use crate::config::RouterConfig;
use crate::tx::Fees;
use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Bytes, TxKind};
use keel_amm::pool::Pool;
use keel_amm::pool::PoolMeta;
use keel_engine::event::OutcomeStatus;
use keel_engine::intent::{Leg, TriggerReason};
use keel_engine::{PortfolioId, TokenId};
use std::sync::Arc;

const USDC: Address = Address::repeat_byte(0x10);
const WETH: Address = Address::repeat_byte(0x20);
const ROUTER: Address = Address::repeat_byte(0x77);

fn executor() -> (Executor, Address) {
    let (exec, accounts) = executor_for(1);
    (exec, accounts[0])
}

/// The tests' V2 venue: `ROUTER`.
fn v2_venue() -> PoolVenue {
    PoolVenue {
        kind: DexKind::UniswapV2,
        router: ROUTER,
        pool_id: None,
        via: Default::default(),
        curve_indices: Default::default(),
    }
}

/// An executor of [`one_pool_executor`] whose pool is unread: checks that it is not routable,
/// applies `snapshot` (the pool's first read), and has the account sell 1 WETH ([`intent`]);
/// the calls sent, as (to, input).
pub(super) fn first_sale_after_the_first_read(
    exec: &mut Executor,
    me: Address,
    snapshot: ChainUpdate,
) -> Vec<(Address, Bytes)> {
    let mut out = Vec::new();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 1 }, 0, &mut out);
    exec.on_chain(head(1), 0, &mut out);
    assert!(!exec.is_pool_ready(0), "unread: not routable");
    exec.on_chain(snapshot, 0, &mut out);
    assert!(exec.is_pool_ready(0));
    exec.on_chain(head(2), 0, &mut out);
    out.clear();
    exec.on_intent(&intent(1, me), 0, &mut out);
    sent(&out)
}

/// The tests' two tokens: USDC (6 decimals) and WETH (18).
pub(super) fn usdc_weth() -> Vec<ExecToken> {
    vec![
        ExecToken { symbol: "USDC".into(), address: USDC, decimals: 6 },
        ExecToken { symbol: "WETH".into(), address: WETH, decimals: 18 },
    ]
}

/// An executor over USDC/WETH with [`executor_for`]'s settings and one account, trading through
/// the one `pool` at `venue`; the account.
pub(super) fn one_pool_executor(pool: PoolEntry, venue: PoolVenue) -> (Executor, Address) {
    let (base, accounts) = executor_for(1);
    let tokens = usdc_weth();
    let exec = Executor::new(
        base.config().clone(),
        tokens,
        vec![pool],
        vec![venue],
        vec![Signer::dev(1).unwrap()],
        Signer::dev(9).unwrap(),
        Some(WETH),
    );
    (exec, accounts[0])
}

/// An executor holding the keys of `n` accounts (dev keys 1..=n).
pub(super) fn executor_for(n: usize) -> (Executor, Vec<Address>) {
    let cfg = RouterConfig {
        chain_id: 31337,
        slippage_bps: 50,
        swap_deadline_secs: 60,
        bundle_blocks: 2,
        priority_fee_wei: 1,
        base_fee_multiplier: 2,
        max_pool_deviation: 0.05,
        twap_window_secs: crate::config::DEFAULT_TWAP_WINDOW_SECS,
        max_pool_age_blocks: crate::config::DEFAULT_MAX_POOL_AGE_BLOCKS,
        defer_on_pending_volume: None,
        limits: Default::default(),
        netting: true,
        presign_pool: crate::config::DEFAULT_PRESIGN_POOL,
        tip_step_pct: 0,
        max_priority_fee_wei: None,
        presimulate: None,
        target_blocks: 1,
        gas_reserve_wei: crate::config::DEFAULT_GAS_RESERVE_WEI,
    };
    let tokens = usdc_weth();
    let meta = PoolMeta {
        id: "p".into(),
        address: Address::repeat_byte(0x50),
        token0: USDC,
        token1: WETH,
        gas: 100_000,
        venue: 0,
    };
    let pool =
        PoolEntry::new(meta, Pool::V2 { reserve0: U256::ZERO, reserve1: U256::ZERO, fee_bps: 30 }).unwrap();
    let signers: Vec<Signer> = (1..=n).map(|k| Signer::dev(k).unwrap()).collect();
    let accounts = signers.iter().map(Signer::address).collect();
    let venue = v2_venue();
    let exec =
        Executor::new(cfg, tokens, vec![pool], vec![venue], signers, Signer::dev(9).unwrap(), Some(WETH));
    (exec, accounts)
}

/// [`executor_for`] with native ETH (the zero address) in place of WETH: tokens USDC and ETH, one
/// V2-style pool of ETH (token0) and USDC at 3000 USDC per ETH, deep, with the accounts at nonce 0
/// and a head. (`check-config` allows native ETH in V4 pools only; the executor's plan is the
/// same whatever the venue, which is what this tests.)
pub(super) fn executor_native(n: usize) -> (Executor, Vec<Address>) {
    let (base, _) = executor_for(n);
    let tokens = vec![
        ExecToken { symbol: "USDC".into(), address: USDC, decimals: 6 },
        ExecToken { symbol: "ETH".into(), address: Address::ZERO, decimals: 18 },
    ];
    let meta = PoolMeta {
        id: "p".into(),
        address: Address::repeat_byte(0x50),
        token0: Address::ZERO,
        token1: USDC,
        gas: 100_000,
        venue: 0,
    };
    let pool =
        PoolEntry::new(meta, Pool::V2 { reserve0: U256::ZERO, reserve1: U256::ZERO, fee_bps: 30 }).unwrap();
    let signers: Vec<Signer> = (1..=n).map(|k| Signer::dev(k).unwrap()).collect();
    let accounts: Vec<Address> = signers.iter().map(Signer::address).collect();
    let venue = v2_venue();
    let mut exec = Executor::new(
        base.cfg.clone(),
        tokens,
        vec![pool],
        vec![venue],
        signers,
        Signer::dev(9).unwrap(),
        Some(Address::ZERO),
    );
    let mut out = Vec::new();
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    let usdc = U256::from(3_000_000_000_000u64);
    exec.on_chain(
        ChainUpdate::polled_v2_reserves(0, Address::ZERO, e18 * U256::from(1000u64), usdc, 1),
        0,
        &mut out,
    );
    for &a in &accounts {
        exec.on_chain(ChainUpdate::Nonce { account: a, nonce: 0, block: 1 }, 0, &mut out);
    }
    exec.on_chain(head(1), 0, &mut out);
    assert!(out.is_empty());
    (exec, accounts)
}

/// Pool state (3000 USDC per WETH, deep), the account's nonce and a head, as the node feed gives them.
pub(super) fn ready(exec: &mut Executor, me: Address, nonce: u64) {
    let mut out = Vec::new();
    exec.on_chain(reserves(3_000_000, 1), 0, &mut out);
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce, block: 1 }, 0, &mut out);
    exec.on_chain(head(1), 0, &mut out);
    assert!(out.is_empty());
}

/// Each transaction of the first bundle submitted in `out`: its raw bytes and the decoded EIP-1559
/// transaction.
fn first_bundle(out: &[Action]) -> Vec<(Bytes, alloy::consensus::Signed<alloy::consensus::TxEip1559>)> {
    let Some(Action::Submit { request, .. }) = out.iter().find(|a| matches!(a, Action::Submit { .. })) else {
        panic!("nothing submitted: {out:?}")
    };
    let v: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    v["params"][0]["txs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let raw: Bytes = t.as_str().unwrap().parse().unwrap();
            let TxEnvelope::Eip1559(s) = TxEnvelope::decode_2718(&mut raw.as_ref()).unwrap() else {
                panic!("not 1559")
            };
            (raw, s)
        })
        .collect()
}

/// The (to, input) of each transaction of the first bundle submitted in `out`.
pub(super) fn sent(out: &[Action]) -> Vec<(Address, Bytes)> {
    first_bundle(out)
        .into_iter()
        .map(|(_, s)| {
            let TxKind::Call(to) = s.tx().to else { panic!("a create") };
            (to, s.tx().input.clone())
        })
        .collect()
}

pub(super) fn head(n: u64) -> ChainUpdate {
    ChainUpdate::Head(BlockHeader { number: n, timestamp: 1_000 + n, base_fee: 10, recv_ns: 0 })
}

/// The actions of an intent refused before signing: journaled as decided, then refused with a
/// reason containing `words`, then a `Rejected` outcome; nothing signed or sent.
pub(super) fn decided_then_refused(out: &[Action], words: &str) -> bool {
    matches!(out, [
        Action::Journal(JournalRecord::Decided(_)),
        Action::Journal(JournalRecord::Refused { reason, .. }),
        Action::Outcome(o),
    ] if o.status == OutcomeStatus::Rejected && reason.contains(words))
}

/// Reserves of pool 0 read at `block`: `usdc` whole USDC against 1,000 WETH.
pub(super) fn reserves(usdc: u64, block: u64) -> ChainUpdate {
    let e6 = U256::from(1_000_000u64);
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    ChainUpdate::polled_v2_reserves(0, Address::ZERO, e6 * U256::from(usdc), e18 * U256::from(1000u64), block)
}

pub(super) fn intent(id: u64, account: Address) -> RebalanceIntent {
    RebalanceIntent {
        id,
        portfolio: PortfolioId(0),
        account,
        reason: TriggerReason::Temporal { elapsed_s: 1.0 },
        drift: 0.05,
        // Sell 1 WETH for USDC at the pool's price (3000 USDC per WETH).
        legs: vec![Leg {
            sell: TokenId(1),
            buy: TokenId(0),
            amount_in: U256::from(10u64).pow(U256::from(18u64)),
            notional: 3000.0,
            reference_price: 3000.0,
        }],
        event_recv_ns: 1,
        decided_ns: 1,
        planned_ns: 1,
        value: None,
        native_price: None,
    }
}

pub(super) fn submitted(actions: &[Action]) -> Vec<SignedTx> {
    first_bundle(actions)
        .into_iter()
        .map(|(raw, s)| SignedTx {
            hash: *s.hash(),
            raw,
            from: Address::ZERO,
            nonce: s.tx().nonce,
            gas_limit: s.tx().gas_limit,
            fees: Fees { max_fee_per_gas: 0, max_priority_fee_per_gas: 0 },
        })
        .collect()
}

#[test]
fn an_expired_bundle_releases_its_nonces_and_its_approvals() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    ready(&mut exec, me, 4);
    exec.on_intent(&intent(1, me), 0, &mut out);
    let first = submitted(&out);
    assert_eq!(first.len(), 2, "approve + swap");
    assert_eq!((first[0].nonce, first[1].nonce), (4, 5));
    out.clear();

    // Next block: the same transactions are resent for block 3.
    exec.on_chain(head(2), 0, &mut out);
    let again = submitted(&out);
    assert_eq!(
        again.iter().map(|t| t.hash).collect::<Vec<_>>(),
        first.iter().map(|t| t.hash).collect::<Vec<_>>()
    );
    out.clear();

    // Deadline: the head alone does not expire it (its block's reads may still come)...
    exec.on_chain(head(3), 0, &mut out);
    assert!(!out.iter().any(|a| matches!(a, Action::Outcome(_))), "{out:?}");
    // ...a nonce read of the deadline block showing it unlanded does: nonces and the optimistic
    // allowance released.
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 4, block: 4 }, 0, &mut out);
    exec.on_chain(head(3), 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::Outcome(o) if o.status == OutcomeStatus::Expired)));
    out.clear();
    exec.on_intent(&intent(2, me), 0, &mut out);
    let retry = submitted(&out);
    assert_eq!(retry.len(), 2, "the approve must be included again");
    assert_eq!((retry[0].nonce, retry[1].nonce), (4, 5), "the released nonces are reused");
    assert_eq!(exec.stats().expired, 1);
    // The expired rebalance costs nothing; the retry's cost is all that is counted.
    let retry_cost = exec.intent_costs().iter().find(|c| c.intent == 2).unwrap().cost;
    assert_eq!(exec.intent_costs().iter().find(|c| c.intent == 1).unwrap().cost.notional, 0.0);
    assert!((exec.costs()[0].notional - retry_cost.notional).abs() < 1e-9 && retry_cost.notional > 0.0);
}

#[test]
fn large_pending_swaps_defer_the_rebalance_until_they_clear() {
    let (mut exec, me) = executor();
    exec.cfg.defer_on_pending_volume = Some(0.005);
    let mut out = Vec::new();
    ready(&mut exec, me, 0);
    exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.02 }, 0, &mut out);
    exec.on_intent(&intent(1, me), 0, &mut out);
    // journaled as decided, then refused with the reason; nothing signed
    assert!(decided_then_refused(&out, "deferred"), "{out:?}");
    assert_eq!((exec.stats().deferred, exec.stats().submissions), (1, 0));
    out.clear();
    // Small pending flow does not defer; and once the pending swaps are mined it proceeds.
    exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.001 }, 0, &mut out);
    exec.on_intent(&intent(2, me), 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })), "{out:?}");
    assert_eq!(submitted(&out)[0].nonce, 0, "the deferral reserved no nonce");
}

#[test]
fn an_intent_before_the_chain_state_waits_for_it_then_is_sent() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    // Right after a start: no head, no pool state. Nothing is refused, nothing sent yet.
    exec.on_intent(&intent(1, me), 0, &mut out);
    assert!(matches!(out.as_slice(), [Action::Journal(JournalRecord::Decided(_))]), "{out:?}");
    // A head without the pool's state: still waiting.
    out.clear();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 1 }, 0, &mut out);
    exec.on_chain(head(1), 0, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // The pool is read, then the next head: signed and sent.
    exec.on_chain(reserves(3_000_000, 2), 0, &mut out);
    exec.on_chain(head(2), 0, &mut out);
    assert!(
        matches!(
            out.as_slice(),
            [Action::Journal(JournalRecord::Signed(_)), Action::Submit { intent: 1, .. }]
        ),
        "{out:?}"
    );
    assert_eq!((exec.stats().intents, exec.stats().rejected), (1, 0));
}

#[test]
fn an_intent_waits_a_few_heads_for_a_pool_then_is_refused() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 1 }, 0, &mut out);
    exec.on_chain(head(1), 0, &mut out);
    exec.on_intent(&intent(1, me), 0, &mut out);
    for n in 2..(1 + PARK_HEADS as u64) {
        exec.on_chain(head(n), 0, &mut out);
        assert!(!out.iter().any(|a| matches!(a, Action::Outcome(_))), "refused too early at head {n}");
    }
    out.clear();
    exec.on_chain(head(1 + PARK_HEADS as u64), 0, &mut out);
    assert!(
        matches!(out.as_slice(), [
            Action::Journal(JournalRecord::Refused { reason, .. }),
            Action::Outcome(o),
        ] if o.status == OutcomeStatus::Rejected && reason.contains("not known yet")),
        "{out:?}"
    );
}

#[test]
fn a_pool_pushed_off_the_reference_is_refused_by_the_oracle_guard() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    ready(&mut exec, me, 0);
    // The pool moves 10% (3300 USDC per WETH) while the reference stays at 3000.
    exec.on_chain(reserves(3_300_000, 2), 0, &mut out);
    exec.on_chain(head(2), 0, &mut out);
    exec.on_intent(&intent(1, me), 0, &mut out);
    // journaled as decided, then refused with the guard's reason
    assert!(decided_then_refused(&out, "spot_vs_reference"), "{out:?}");
    assert_eq!((exec.stats().oracle_blocked, exec.stats().submissions), (1, 0));
    assert_eq!(exec.oracle().counts().get("p", "spot_vs_reference"), 1);
}

/// An executor whose first rebalance (approve and swap, configured swap gas 100k: limit 130k)
/// landed with the swap using `swap_gas`; then the next rebalance's transactions.
fn first_swap_landed_using(swap_gas: u64) -> (Executor, Address, Vec<SignedTx>) {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    ready(&mut exec, me, 0);
    exec.on_intent(&intent(1, me), 0, &mut out);
    let txs = submitted(&out);
    assert_eq!(txs[1].gas_limit, 130_000, "configured 100k + 30% before any observation");
    out.clear();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 2 }, 0, &mut out);
    let receipts = [
        ReceiptInfo { hash: txs[0].hash, block: 2, gas_used: 46_000, success: true },
        ReceiptInfo { hash: txs[1].hash, block: 2, gas_used: swap_gas, success: true },
    ];
    exec.on_receipts(1, &receipts, &mut out);
    out.clear();
    exec.on_chain(head(2), 0, &mut out);
    exec.on_intent(&intent(2, me), 0, &mut out);
    let next = submitted(&out);
    assert_eq!(next.len(), 1, "already approved");
    (exec, me, next)
}

#[test]
fn landed_swaps_refine_the_gas_estimate_and_limit() {
    let (mut exec, me, next) = first_swap_landed_using(80_000);
    assert_eq!(exec.gas_estimate(0), Some(80_000), "the approve's gas is not a swap's");
    assert_eq!(next[0].gas_limit, 130_000, "80k observed prices gas; the limit keeps the configured floor");

    // A swap that used more raises the limit above the floor.
    let mut out = Vec::new();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 3, block: 3 }, 0, &mut out);
    let receipts = [ReceiptInfo { hash: next[0].hash, block: 3, gas_used: 150_000, success: true }];
    exec.on_receipts(2, &receipts, &mut out);
    assert_eq!(exec.gas_estimate(0), Some(150_000));
    out.clear();
    exec.on_chain(head(3), 0, &mut out);
    exec.on_intent(&intent(3, me), 0, &mut out);
    assert_eq!(submitted(&out)[0].gas_limit, 195_000, "150k observed + 30%");
}

#[test]
fn a_learned_estimate_below_the_configured_gas_never_lowers_the_gas_limit() {
    // A swap planned across ticks it did not cross (the pool moved before it ran) makes the
    // learned base far too low: gas is priced with it, but the limit keeps the configured floor.
    let (exec, _, next) = first_swap_landed_using(1_000);
    assert_eq!(exec.gas_estimate(0), Some(1_000));
    assert_eq!(next[0].gas_limit, 130_000);
}

#[test]
fn a_landing_is_counted_in_the_inclusion_histograms() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    ready(&mut exec, me, 0);
    exec.on_intent(&intent(1, me), 1_000_000_000, &mut out);
    let txs = submitted(&out);
    let target = match out.iter().find_map(|a| match a {
        Action::Submit { request, .. } => Some(request.block_number),
        _ => None,
    }) {
        Some(b) => b,
        None => panic!("nothing submitted: {out:?}"),
    };
    out.clear();
    // Seen landed 2.5 s after the first send, one block after the first target.
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: target + 1 }, 3_500_000_000, &mut out);
    let receipts: Vec<_> = txs
        .iter()
        .map(|t| ReceiptInfo { hash: t.hash, block: target + 1, gas_used: 50_000, success: true })
        .collect();
    exec.on_receipts(1, &receipts, &mut out);
    let inc = exec.inclusion();
    assert_eq!(inc.blocks.buckets().find(|(b, _)| *b == 2.0).map(|b| b.1), Some(1), "{inc:?}");
    assert_eq!((inc.blocks.count(), inc.blocks.sum()), (1, 2.0));
    assert_eq!((inc.seconds.count(), inc.seconds.sum()), (1, 2.5));
    assert_eq!((inc.versions.count(), inc.versions.sum()), (1, 1.0));
}

#[test]
fn risk_limits_refuse_and_say_which() {
    let rejected = |out: &[Action]| decided_then_refused(out, "risk limit");
    // Gas price cap: base fee 10 + tip 1 = 11 wei.
    let (mut exec, me) = executor();
    exec.cfg.limits.max_gas_price_wei = Some(10);
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 0, &mut out);
    assert!(rejected(&out), "{out:?}");
    assert_eq!(exec.stats().risk_refused, 1);
    // Per-trade cap: the leg is 3000.
    let (mut exec, me) = executor();
    exec.cfg.limits.max_trade_notional = Some(2_999.0);
    ready(&mut exec, me, 0);
    out.clear();
    exec.on_intent(&intent(1, me), 0, &mut out);
    assert!(rejected(&out));
    // Daily cap: 5000 allows one 3000 rebalance, not a second within 24 h, again after 24 h.
    let (mut exec, me) = executor();
    exec.cfg.limits.max_daily_notional = Some(5_000.0);
    ready(&mut exec, me, 0);
    // A rebalance refused after the limits charged it (here: deferred) is released again.
    exec.cfg.defer_on_pending_volume = Some(0.005);
    exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.02 }, 0, &mut out);
    out.clear();
    exec.on_intent(&intent(8, me), 0, &mut out);
    assert_eq!(exec.stats().deferred, 1, "{out:?}");
    exec.on_chain(ChainUpdate::PendingImpact { pool: 0, impact: 0.0 }, 0, &mut out);
    out.clear();
    exec.on_intent(&intent(1, me), 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })));
    // Let it expire unlanded: its notional is released.
    out.clear();
    exec.on_chain(head(2), 0, &mut out);
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 4 }, 0, &mut out);
    exec.on_chain(head(3), 0, &mut out);
    assert_eq!(exec.stats().expired, 1);
    out.clear();
    exec.on_intent(&intent(2, me), 1, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })), "expired notional is released: {out:?}");
    // It lands: the next one within 24 h is refused, one a day later passes.
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 4 }, 1, &mut out);
    let r = ReceiptInfo { hash: B256::ZERO, block: 4, gas_used: 1, success: true };
    exec.on_receipts(2, &[r], &mut out);
    out.clear();
    exec.on_intent(&intent(3, me), 2, &mut out);
    assert!(rejected(&out), "{out:?}");
    out.clear();
    let day = 24 * 3600 * 1_000_000_000;
    exec.on_intent(&intent(4, me), day + 2, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })), "{out:?}");
}

#[test]
fn restored_charges_count_towards_the_daily_caps_until_a_day_after_their_decision() {
    let rejected = |out: &[Action]| decided_then_refused(out, "risk limit");
    let submitted = |out: &[Action]| out.iter().any(|a| matches!(a, Action::Submit { .. }));
    let hour: Nanos = 3600 * 1_000_000_000;
    let now: Nanos = 5 * hour;
    // Per portfolio: a 3000 rebalance of the previous run, decided 23 h ago, fills the 5000 cap.
    let (mut exec, me) = executor();
    exec.cfg.limits.max_daily_notional = Some(5_000.0);
    ready(&mut exec, me, 0);
    exec.restore_charge(Some(PortfolioId(0)), 1, 3_000.0, 23 * hour, now);
    let mut out = Vec::new();
    exec.on_intent(&intent(2, me), now, &mut out);
    assert!(rejected(&out), "{out:?}");
    // An hour later (a day after its decision) it has left the window.
    out.clear();
    exec.on_intent(&intent(3, me), now + hour, &mut out);
    assert!(submitted(&out), "{out:?}");
    // A charge of another portfolio leaves this one's cap alone, and a day-old one is ignored.
    let (mut exec, me) = executor();
    exec.cfg.limits.max_daily_notional = Some(5_000.0);
    ready(&mut exec, me, 0);
    exec.restore_charge(Some(PortfolioId(1)), 1, 3_000.0, hour, now);
    exec.restore_charge(Some(PortfolioId(0)), 2, 3_000.0, 24 * hour, now);
    out.clear();
    exec.on_intent(&intent(3, me), now, &mut out);
    assert!(submitted(&out), "{out:?}");
    // The total cap counts every portfolio, even one no longer configured.
    let (mut exec, me) = executor();
    exec.cfg.limits.max_daily_notional_total = Some(5_000.0);
    ready(&mut exec, me, 0);
    exec.restore_charge(None, 1, 3_000.0, hour, now);
    out.clear();
    exec.on_intent(&intent(2, me), now, &mut out);
    assert!(rejected(&out), "{out:?}");
}

#[test]
fn a_landed_bundle_reports_one_outcome() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    ready(&mut exec, me, 0);
    exec.on_intent(&intent(1, me), 0, &mut out);
    out.clear();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 2 }, 0, &mut out);
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 3 }, 0, &mut out);
    let fetches = out.iter().filter(|a| matches!(a, Action::FetchReceipts { .. })).count();
    assert_eq!(fetches, 1);
    out.clear();
    let r = ReceiptInfo { hash: B256::ZERO, block: 2, gas_used: 50_000, success: true };
    exec.on_receipts(1, &[r, r], &mut out);
    exec.on_receipts(1, &[r, r], &mut out);
    let landed: Vec<_> = out.iter().filter(|a| matches!(a, Action::Outcome(_))).collect();
    assert_eq!(landed.len(), 1);
    assert!(
        matches!(landed[0], Action::Outcome(o) if o.status == OutcomeStatus::Landed { block: 2, gas_used: 100_000 })
    );
    assert_eq!(exec.inflight_count(), 0);
}

pub(super) fn cost_aware(mut i: RebalanceIntent, penalty: f64, weth: u64) -> RebalanceIntent {
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    i.legs[0].amount_in = e18 * U256::from(weth);
    i.legs[0].notional = 3000.0 * weth as f64;
    // κ V H dᵀΣd = penalty
    i.value = Some(keel_engine::value::ValueInputs {
        tracking_var_per_s: penalty,
        portfolio_value: 1.0,
        kappa: 1.0,
        horizon_secs: 1.0,
        margin: 0.0,
        sizes: vec![0.25, 0.5, 0.75, 1.0],
    });
    i
}

#[test]
fn a_cost_aware_rebalance_worth_less_than_its_cost_is_refused_with_both_numbers() {
    let (mut exec, me) = executor();
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    // Selling 1 WETH pays 9 USDC in pool fees alone; its tracking-error value is 5 USDC.
    exec.on_intent(&cost_aware(intent(1, me), 5.0, 1), 0, &mut out);
    assert!(decided_then_refused(&out, "not worth it"), "{out:?}");
    let Action::Journal(JournalRecord::Refused { reason, .. }) = &out[1] else { unreachable!() };
    // fees 9 + impact ≈ 3 (1 WETH into 1,000)
    assert!(reason.contains("worth 5.0000 and costs 11.9"), "{reason}");
    assert_eq!(exec.stats().not_worth_it, 1);
    assert!(exec.costs().iter().all(|c| c.notional == 0.0), "nothing was spent");
}

#[test]
fn a_cost_aware_rebalance_trades_less_than_to_target_when_the_last_part_does_not_pay() {
    let (mut exec, me) = executor();
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    // Selling 100 WETH into 1,000: impact grows with the square of the size (≈ 30,000 f² USDC), the
    // value with 1 − (1 − f)²: value − cost peaks at half the trade (net ≈ 15,000 vs ≈ 0 for all of it).
    exec.on_intent(&cost_aware(intent(1, me), 30_900.0, 100), 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })), "{out:?}");
    assert_eq!(exec.stats().resized, 1);
    let sold: U256 = exec.fills().iter().map(|f| f.amount_in).sum();
    assert_eq!(sold, U256::from(10u64).pow(U256::from(18u64)) * U256::from(50u64));
    // the cost recorded is that of the half actually sent: fees 0.3% of 150,000
    let c = exec.costs()[0];
    assert!((c.notional - 150_000.0).abs() < 1e-6, "{c:?}");
    assert!((c.pool_fees - 450.0).abs() < 1e-6, "{c:?}");
    assert!(c.impact > 6_000.0 && c.impact < 8_000.0, "{c:?}");
}

#[test]
fn band_mode_rebalances_are_costed_too() {
    let (mut exec, me) = executor();
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::Submit { .. })), "{out:?}");
    let c = exec.costs()[0];
    assert!((c.notional - 3000.0).abs() < 1e-9 && (c.pool_fees - 9.0).abs() < 1e-9, "{c:?}");
    assert!(c.gas_units > 0 && c.gas_native > 0.0);
}

#[test]
fn the_tip_rises_per_retarget_up_to_its_cap_and_the_gas_price_limit() {
    let (mut exec, _) = executor();
    exec.cfg.priority_fee_wei = 1_000_000_000;
    exec.cfg.tip_step_pct = 50;
    exec.cfg.max_priority_fee_wei = Some(3_000_000_000);
    let tips: Vec<u128> = (0..5).map(|k| exec.tip_after(k, 10)).collect();
    assert_eq!(tips, vec![1_000_000_000, 1_500_000_000, 2_250_000_000, 3_000_000_000, 3_000_000_000]);
    // A base fee of 8 gwei under a 10 gwei price limit leaves 2 gwei of tip.
    exec.cfg.limits.max_gas_price_wei = Some(10_000_000_000);
    assert_eq!(exec.tip_after(4, 8_000_000_000), 2_000_000_000);
    // Never below the configured tip, whatever the limit leaves.
    assert_eq!(exec.tip_after(4, 9_900_000_000), 1_000_000_000);
}

#[test]
fn a_missed_block_is_retargeted_with_a_higher_tip_resigned_on_the_same_nonces() {
    let (mut exec, me) = executor();
    exec.cfg.bundle_blocks = 10;
    exec.cfg.tip_step_pct = 100;
    exec.cfg.max_priority_fee_wei = Some(8);
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 1, &mut out);
    let first = nonces_and_tips(&out).expect("sent");
    assert!(first.iter().all(|(_, tip)| *tip == 1), "{first:?}");
    let mut tips = Vec::new();
    for n in 2..6 {
        out.clear();
        exec.on_chain(head(n), 1, &mut out);
        let txs = nonces_and_tips(&out).expect("resent");
        assert_eq!(
            txs.iter().map(|t| t.0).collect::<Vec<_>>(),
            first.iter().map(|t| t.0).collect::<Vec<_>>()
        );
        tips.push(txs[0].1);
    }
    assert_eq!(tips, vec![2, 4, 8, 8], "doubling per missed block, capped at 8");
}

#[test]
fn an_engaged_kill_switch_cancels_in_flight_bundles_and_stops_their_resends() {
    let (mut exec, me) = executor();
    exec.cfg.bundle_blocks = 5;
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 1, &mut out);
    assert_eq!(submitted(&out).len(), 2, "approve and swap");
    exec.set_halted(true);
    out.clear();
    exec.on_chain(head(2), 1, &mut out);
    assert!(nonces_and_tips(&out).is_none(), "resent after the kill: {out:?}");
    let cancels: Vec<_> = out.iter().filter(|a| matches!(a, Action::Cancel { .. })).collect();
    assert_eq!(cancels.len(), 1, "{out:?}");
    if let Action::Cancel { intent, request } = cancels[0] {
        assert_eq!(*intent, 1);
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["method"], "eth_cancelBundle");
        assert_eq!(body["params"][0]["replacementUuid"].as_str(), Some(request.uuid.as_str()));
        assert!(request.signature_header.contains(':'));
    }
    // Even once resumed, the cancelled bundle is never resent; it expires at its deadline.
    exec.set_halted(false);
    for n in 3..6 {
        out.clear();
        exec.on_chain(head(n), 1, &mut out);
        assert!(
            nonces_and_tips(&out).is_none() && !out.iter().any(|a| matches!(a, Action::Cancel { .. })),
            "{out:?}"
        );
    }
    out.clear();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 7 }, 1, &mut out);
    exec.on_chain(head(7), 1, &mut out);
    assert!(
        out.iter().any(|a| matches!(a, Action::Outcome(o) if o.status == OutcomeStatus::Expired)),
        "{out:?}"
    );
    assert_eq!(exec.stats().cancelled, 1);
}

/// The nonce and priority fee of each transaction of the first submission in `out`.
fn nonces_and_tips(out: &[Action]) -> Option<Vec<(u64, u128)>> {
    use alloy::consensus::TxEnvelope;
    use alloy::eips::eip2718::Decodable2718;
    let request = out.iter().find_map(|a| match a {
        Action::Submit { request, .. } => Some(request),
        _ => None,
    })?;
    let v: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    let txs = v["params"][0]["txs"].as_array().unwrap();
    Some(
        txs.iter()
            .map(|t| {
                let raw: Bytes = t.as_str().unwrap().parse().unwrap();
                let TxEnvelope::Eip1559(s) = TxEnvelope::decode_2718(&mut raw.as_ref()).unwrap() else {
                    panic!("not 1559")
                };
                (s.tx().nonce, s.tx().max_priority_fee_per_gas)
            })
            .collect(),
    )
}

/// An executor that presimulates on relay `r` (bundles live 5 blocks), and what its first
/// rebalance's intent produced.
fn presimulating_executor_with_one_intent() -> (Executor, Vec<Action>) {
    let (mut exec, me) = executor();
    exec.cfg.presimulate = Some("r".into());
    exec.cfg.bundle_blocks = 5;
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 1, &mut out);
    (exec, out)
}

#[test]
fn a_presimulated_bundle_is_not_resent_before_its_simulation_and_expires_if_it_reverted() {
    let (mut exec, mut out) = presimulating_executor_with_one_intent();
    let (hash, call) = out
        .iter()
        .find_map(|a| match a {
            Action::Submit { request, simulate: Some(call), .. } => Some((request.bundle_hash, call.clone())),
            _ => None,
        })
        .expect("a submission to simulate");
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["method"], "eth_callBundle");
    assert_eq!(body["params"][0]["stateBlockNumber"], "latest");
    assert_eq!(call.tx_hashes.len(), 2);
    // While it is being simulated, a new head does not resend it.
    out.clear();
    exec.on_chain(head(2), 1, &mut out);
    assert!(nonces_and_tips(&out).is_none(), "{out:?}");
    // Passed: resends go on.
    exec.on_simulated(hash, SimVerdict::Passed, &mut out);
    out.clear();
    exec.on_chain(head(3), 1, &mut out);
    assert!(nonces_and_tips(&out).is_some(), "{out:?}");

    // A second rebalance whose simulation reverts expires at once, saying which and why.
    let (mut exec, me) = executor();
    exec.cfg.presimulate = Some("r".into());
    ready(&mut exec, me, 0);
    out.clear();
    exec.on_intent(&intent(1, me), 1, &mut out);
    let hash = out
        .iter()
        .find_map(|a| match a {
            Action::Submit { request, .. } => Some(request.bundle_hash),
            _ => None,
        })
        .unwrap();
    out.clear();
    exec.on_simulated(B256::repeat_byte(1), SimVerdict::Failed("stale".into()), &mut out);
    assert!(out.is_empty(), "a result for another version is ignored: {out:?}");
    exec.on_simulated(
        hash,
        SimVerdict::Failed("transaction 1 (0xab) reverted: UniswapV2: K".into()),
        &mut out,
    );
    assert!(
        matches!(&out[..], [Action::Journal(JournalRecord::Expired { reason, .. }), Action::Outcome(o)]
            if reason == "reverted in simulation: transaction 1 (0xab) reverted: UniswapV2: K" && o.status == OutcomeStatus::Expired),
        "{out:?}"
    );
    assert_eq!((exec.stats().sim_reverted, exec.stats().expired), (1, 1));
    assert_eq!(exec.inflight_count(), 0);
}

#[test]
fn a_simulation_answered_after_its_block_sends_nothing_and_the_next_head_simulates_again() {
    let (mut exec, mut out) = presimulating_executor_with_one_intent();
    let simulated = |out: &[Action]| -> Vec<(B256, bool)> {
        out.iter()
            .filter_map(|a| match a {
                Action::Submit { request, simulate, .. } => Some((request.bundle_hash, simulate.is_some())),
                _ => None,
            })
            .collect()
    };
    let [(hash, true)] = simulated(&out)[..] else { panic!("one submission to simulate: {out:?}") };
    // Too late: nothing was sent, and the next head does not send it unsimulated.
    exec.on_simulated(hash, SimVerdict::TooLate, &mut out);
    out.clear();
    exec.on_chain(head(2), 1, &mut out);
    let [(again, true)] = simulated(&out)[..] else { panic!("the retarget is simulated again: {out:?}") };
    // While that one runs, heads send nothing.
    out.clear();
    exec.on_chain(head(3), 1, &mut out);
    assert!(simulated(&out).is_empty(), "{out:?}");
    // The same transactions make the same bundle: the version simulated again is the first one.
    assert_eq!(again, hash);
    // Once it passed, resends go on unsimulated.
    exec.on_simulated(again, SimVerdict::Passed, &mut out);
    out.clear();
    exec.on_chain(head(4), 1, &mut out);
    assert!(matches!(simulated(&out)[..], [(_, false)]), "{out:?}");
    assert_eq!(exec.stats().sim_reverted, 0);
}

#[test]
fn with_target_blocks_each_version_goes_to_the_next_blocks_under_a_uuid_per_block() {
    let (mut exec, me) = executor();
    exec.cfg.target_blocks = 3;
    exec.cfg.bundle_blocks = 4;
    ready(&mut exec, me, 0);
    let sent = |out: &[Action]| -> Vec<(u64, String)> {
        out.iter()
            .filter_map(|a| match a {
                Action::Submit { request, .. } => {
                    let v: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
                    Some((
                        request.block_number,
                        v["params"][0]["replacementUuid"].as_str().unwrap().to_string(),
                    ))
                }
                _ => None,
            })
            .collect()
    };
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 1, &mut out);
    let uuid = |b: u64| format!("keel-batch-1#{b}");
    assert_eq!(sent(&out), vec![(2, uuid(2)), (3, uuid(3)), (4, uuid(4))]);
    // The next head: the next block again (as every head does) and the newest one of the window.
    out.clear();
    exec.on_chain(head(2), 1, &mut out);
    assert_eq!(sent(&out), vec![(3, uuid(3)), (5, uuid(5))]);
    // Never past the deadline block (head 1 + 4).
    out.clear();
    exec.on_chain(head(3), 1, &mut out);
    assert_eq!(sent(&out), vec![(4, uuid(4))], "block 6 is past the deadline");
    // A kill cancels every uuid sent for.
    exec.set_halted(true);
    out.clear();
    exec.on_chain(head(4), 1, &mut out);
    let cancelled: Vec<String> = out
        .iter()
        .filter_map(|a| match a {
            Action::Cancel { request, .. } => Some(request.uuid.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, (2..=6).map(uuid).collect::<Vec<_>>());
}

/// USDC (6 decimals) and TKX (18), two equal USDC/TKX V2 pools and no pool against WETH, which is
/// listed as the native token; 1 TKX = 1 USDC; base fee 30 gwei.
fn no_weth_pool_executor() -> (Executor, Address) {
    const TKX: Address = Address::repeat_byte(0x30);
    let (mut exec, accounts) = {
        let cfg = RouterConfig { max_pool_deviation: 0.05, ..executor_for(1).0.cfg.clone() };
        let tokens = vec![
            ExecToken { symbol: "USDC".into(), address: USDC, decimals: 6 },
            ExecToken { symbol: "TKX".into(), address: TKX, decimals: 18 },
            ExecToken { symbol: "WETH".into(), address: WETH, decimals: 18 },
        ];
        let pool = |i: u8| {
            let meta = PoolMeta {
                id: format!("p{i}"),
                address: Address::repeat_byte(0x50 + i),
                token0: USDC,
                token1: TKX,
                gas: 120_000,
                venue: 0,
            };
            PoolEntry::new(meta, Pool::V2 { reserve0: U256::ZERO, reserve1: U256::ZERO, fee_bps: 30 })
                .unwrap()
        };
        let signer = Signer::dev(1).unwrap();
        let me = signer.address();
        let venue = PoolVenue {
            kind: DexKind::UniswapV2,
            router: ROUTER,
            pool_id: None,
            via: Default::default(),
            curve_indices: Default::default(),
        };
        let exec = Executor::new(
            cfg,
            tokens,
            vec![pool(0), pool(1)],
            vec![venue, venue],
            vec![signer],
            Signer::dev(9).unwrap(),
            Some(WETH),
        );
        (exec, vec![me])
    };
    let me = accounts[0];
    let mut out = Vec::new();
    let (e6, e18) = (U256::from(1_000_000u64), U256::from(10u64).pow(U256::from(18u64)));
    for i in 0..2u32 {
        let r = ChainUpdate::polled_v2_reserves(
            i,
            Address::ZERO,
            e6 * U256::from(1_000_000u64),
            e18 * U256::from(1_000_000u64),
            1,
        );
        exec.on_chain(r, 0, &mut out);
    }
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 1 }, 0, &mut out);
    let gwei30 = 30_000_000_000;
    exec.on_chain(
        ChainUpdate::Head(BlockHeader { number: 1, timestamp: 1_001, base_fee: gwei30, recv_ns: 0 }),
        0,
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    (exec, me)
}

/// Buys 2,000 TKX with USDC (TokenId 0 → 1).
fn buy_tkx(id: u64, account: Address, native_price: Option<f64>) -> RebalanceIntent {
    RebalanceIntent {
        legs: vec![Leg {
            sell: TokenId(0),
            buy: TokenId(1),
            amount_in: U256::from(2_000u64) * U256::from(1_000_000u64),
            notional: 2_000.0,
            reference_price: 1.0,
        }],
        native_price,
        ..intent(id, account)
    }
}

#[test]
fn without_a_weth_pool_gas_is_priced_through_the_exchange_price_of_eth() {
    // Two equal pools: ignoring gas, the split halves the order (less price impact); priced at
    // 30 gwei and 3,000 USDC per ETH, a second swap (120k gas ≈ 11 USDC) costs more than the
    // ≈ 2 USDC of impact it saves, so the order goes through one pool.
    let pools_used = |native_price| {
        let (mut exec, me) = no_weth_pool_executor();
        let mut out = Vec::new();
        exec.on_intent(&buy_tkx(1, me, native_price), 0, &mut out);
        assert!(!submitted(&out).is_empty(), "{out:?}");
        let fills: Vec<&FillRecord> = exec.fills().iter().filter(|f| f.intent == 1).collect();
        let gas_cost = exec.intent_costs().iter().find(|c| c.intent == 1).map(|c| c.cost.gas).unwrap();
        (fills.len(), gas_cost)
    };
    let (ignored, ignored_gas) = pools_used(None);
    assert_eq!((ignored, ignored_gas), (2, 0.0), "before: gas ignored, the order split in two");
    let (priced, priced_gas) = pools_used(Some(3_000.0));
    assert_eq!(priced, 1, "gas priced: one swap");
    assert!(priced_gas > 5.0 && priced_gas < 30.0, "one swap's gas in USDC: {priced_gas}");
}

#[test]
fn a_head_at_the_end_of_the_integers_saturates_the_target_block_and_deadline() {
    let (mut exec, me) = executor();
    let mut out = Vec::new();
    let last = u64::MAX - 1;
    exec.on_chain(reserves(3_000_000, last), 0, &mut out);
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: last }, 0, &mut out);
    let edge = BlockHeader { number: last, timestamp: u64::MAX - 10, base_fee: 10, recv_ns: 0 };
    exec.on_chain(ChainUpdate::Head(edge), 0, &mut out);
    out.clear();
    // target block (head + 1), deadline block (head + bundle_blocks) and the swap deadline
    // (timestamp + swap_deadline_secs) all pass u64::MAX: saturated, never wrapped to 0 or a panic.
    exec.on_intent(&intent(1, me), 0, &mut out);
    let target = out.iter().find_map(|a| match a {
        Action::Submit { request, .. } => Some(request.block_number),
        _ => None,
    });
    assert_eq!(target, Some(u64::MAX), "{out:?}");
    assert_eq!(submitted(&out).len(), 2, "approve and swap");
}

#[test]
fn a_receipt_claiming_more_gas_than_a_block_is_not_learned() {
    let (exec, _, next) = first_swap_landed_using(u64::MAX);
    assert_eq!(exec.gas_estimate(0), Some(100_000), "the configured figure stays");
    assert_eq!(next[0].gas_limit, 130_000, "100k + 30%, not a saturated u64::MAX");
}

#[test]
fn a_head_that_arrives_before_its_blocks_nonce_read_does_not_expire_a_bundle_that_landed_in_it() {
    let (mut exec, me) = executor();
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 0, &mut out);
    exec.on_chain(head(2), 0, &mut out);
    // Head 3 (the deadline) comes from newHeads before the poll's read of block 3...
    out.clear();
    exec.on_chain(head(3), 0, &mut out);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Outcome(_))),
        "expired before its block was read: {out:?}"
    );
    // ...which shows the bundle landed: it is settled as landed, not expired.
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 3 }, 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::FetchReceipts { intent: 1, .. })), "{out:?}");
    assert_eq!(exec.stats().expired, 0);
    // Reads that stall do not keep a bundle open for ever.
    let (mut exec, me) = executor();
    ready(&mut exec, me, 0);
    exec.on_intent(&intent(1, me), 0, &mut out);
    for n in 2..3 + NONCE_READ_GRACE_BLOCKS {
        exec.on_chain(head(n), 0, &mut out);
    }
    assert_eq!(exec.stats().expired, 0);
    exec.on_chain(head(3 + NONCE_READ_GRACE_BLOCKS), 0, &mut out);
    assert_eq!(exec.stats().expired, 1);
}

#[test]
fn a_landing_read_from_a_replaced_block_keeps_the_rebalance_in_flight_until_a_second_one() {
    let (mut exec, me) = executor();
    exec.cfg.bundle_blocks = 10;
    ready(&mut exec, me, 0);
    let mut out = Vec::new();
    exec.on_intent(&intent(1, me), 1, &mut out);
    // A read of a block later replaced shows the nonces used, yet no transaction of ours has a
    // receipt: it stays in flight, resent on the next head, and the chain's real count (back at
    // 0) is no landing.
    out.clear();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 2 }, 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::FetchReceipts { .. })));
    out.clear();
    exec.on_receipts(1, &[], &mut out);
    assert!(out.is_empty(), "voided on one receiptless read: {out:?}");
    assert_eq!(exec.inflight_count(), 1);
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 0, block: 2 }, 0, &mut out);
    exec.on_chain(head(2), 1, &mut out);
    assert!(nonces_and_tips(&out).is_some(), "not resent: {out:?}");
    // A second landing without a receipt of ours, from a later read: something else used them.
    out.clear();
    exec.on_chain(ChainUpdate::Nonce { account: me, nonce: 2, block: 3 }, 0, &mut out);
    exec.on_receipts(1, &[], &mut out);
    let expired = out.iter().any(|a| {
        matches!(a, Action::Journal(JournalRecord::Expired { reason, .. }) if reason.contains("used by other"))
    });
    assert!(expired, "{out:?}");
    assert_eq!(exec.inflight_count(), 0);
}

#[test]
fn two_chains_sharing_the_daily_total_are_refused_together_past_it_and_get_it_back_on_expiry() {
    let rejected = |out: &[Action]| decided_then_refused(out, "max_daily_notional_total");
    let submitted = |out: &[Action]| out.iter().any(|a| matches!(a, Action::Submit { .. }));
    // Two chains' executors (each with its own account and nonces) share one total window.
    let total = DailyTotal::shared();
    let (a, me_a) = executor();
    let (b, me_b) = executor();
    let mut a = a.with_daily_total(Arc::clone(&total));
    let mut b = b.with_daily_total(Arc::clone(&total));
    for exec in [&mut a, &mut b] {
        exec.cfg.limits.max_daily_notional_total = Some(5_000.0);
    }
    ready(&mut a, me_a, 0);
    ready(&mut b, me_b, 0);
    // Each chain alone is under the cap (3000 < 5000); together they would be 6000.
    let mut out = Vec::new();
    a.on_intent(&intent(1, me_a), 0, &mut out);
    assert!(submitted(&out), "{out:?}");
    assert_eq!(total.used(), 3_000.0);
    out.clear();
    b.on_intent(&intent(2, me_b), 0, &mut out);
    assert!(rejected(&out), "chain b is refused: chain a's 3000 counts: {out:?}");
    assert_eq!((b.stats().risk_refused, total.used()), (1, 3_000.0), "a refusal charges nothing");
    // Chain a's bundle expires unlanded: its notional is released from the shared total.
    out.clear();
    a.on_chain(head(2), 0, &mut out);
    a.on_chain(ChainUpdate::Nonce { account: me_a, nonce: 0, block: 4 }, 0, &mut out);
    a.on_chain(head(3), 0, &mut out);
    assert_eq!(a.stats().expired, 1);
    assert_eq!(total.used(), 0.0);
    out.clear();
    b.on_intent(&intent(3, me_b), 1, &mut out);
    assert!(submitted(&out), "chain b passes once chain a's charge is released: {out:?}");
    // A day later chain b's charge leaves the window at chain b's next head, even if chain b is
    // otherwise quiet, and chain a may trade again.
    let day: Nanos = 24 * 3600 * 1_000_000_000;
    out.clear();
    a.on_intent(&intent(4, me_a), 2, &mut out);
    assert!(rejected(&out), "{out:?}");
    b.on_chain(head(2), day + 1, &mut out);
    assert_eq!(total.used(), 0.0);
    out.clear();
    a.on_intent(&intent(5, me_a), day + 2, &mut out);
    assert!(submitted(&out), "{out:?}");
}

#[test]
fn a_charge_restored_on_one_chain_counts_towards_the_total_cap_of_another() {
    let hour: Nanos = 3600 * 1_000_000_000;
    let now: Nanos = 5 * hour;
    let total = DailyTotal::shared();
    let (a, _) = executor();
    let (b, me_b) = executor();
    let mut a = a.with_daily_total(Arc::clone(&total));
    let mut b = b.with_daily_total(Arc::clone(&total));
    b.cfg.limits.max_daily_notional_total = Some(5_000.0);
    ready(&mut b, me_b, 0);
    // Recovery gives chain a a 3000 rebalance of the previous run, decided an hour ago.
    a.restore_charge(Some(PortfolioId(0)), 1, 3_000.0, hour, now);
    // Restored twice (the same intent): counted once.
    a.restore_charge(Some(PortfolioId(0)), 1, 3_000.0, hour, now);
    assert_eq!(total.used(), 3_000.0);
    let mut out = Vec::new();
    b.on_intent(&intent(2, me_b), now, &mut out);
    assert!(decided_then_refused(&out, "max_daily_notional_total"), "{out:?}");
    // 23 hours later it leaves the window (at chain a's next head) and chain b may trade.
    a.on_chain(head(2), now + 23 * hour, &mut out);
    out.clear();
    b.on_intent(&intent(3, me_b), now + 23 * hour, &mut out);
    assert!(out.iter().any(|x| matches!(x, Action::Submit { .. })), "{out:?}");
}

/// The idle hot thread's rehearsal routes the latest intent again and changes nothing: no
/// statistic, fill, cost, in-flight bundle, nonce or pool moves, and the next intent is planned
/// exactly as it would have been without it.
#[test]
fn a_rehearsal_routes_the_latest_intent_and_commits_nothing() {
    let run = |rehearsals: usize| {
        let (mut exec, me) = executor();
        assert!(!exec.rehearse(), "nothing to rehearse before an intent");
        ready(&mut exec, me, 0);
        let mut out = Vec::new();
        exec.on_intent(&intent(1, me), 1, &mut out);
        assert!(!submitted(&out).is_empty());
        exec.keep_for_rehearsal(Box::new(intent(1, me)));
        let state = |e: &Executor| {
            (
                format!("{:?} {:?} {:?}", e.stats(), e.costs(), e.pools()),
                e.fills().to_vec(),
                e.inflight_count(),
            )
        };
        let before = state(&exec);
        for _ in 0..rehearsals {
            assert!(exec.rehearse(), "the kept intent routes on the current pools");
        }
        assert_eq!(state(&exec), before, "a rehearsal changed the executor");
        // The next block's intent: its calls (target, calldata, nonce, gas limit), signatures aside.
        exec.on_chain(head(2), 0, &mut out);
        out.clear();
        let mut second = intent(2, me);
        second.portfolio = PortfolioId(1);
        exec.on_intent(&second, 2, &mut out);
        first_bundle(&out)
            .into_iter()
            .map(|(_, s)| (s.tx().to, s.tx().input.clone(), s.tx().nonce, s.tx().gas_limit))
            .collect::<Vec<_>>()
    };
    let plain = run(0);
    assert!(!plain.is_empty());
    assert_eq!(run(7), plain);
}
