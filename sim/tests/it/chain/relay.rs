//! The loopback relay lands signed bundles atomically in their target block.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256, keccak256};
use alloy::providers::ext::MevApi;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::mev::{EthCallBundle, EthSendBundle};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use keel_sim::anvil::contracts::rpc::{IERC20, IUniswapV2Pair, IUniswapV2Router02};
use keel_sim::anvil::{AnvilChain, AnvilRelay, BundleStatus, RelayOptions, SealGate};

use super::util::{SignedTx, WAIT, chain, e18, nonce, sign_call};

const TRADER: usize = 1;
const KEEL: usize = 2;
const SINK: usize = 5;

fn searcher() -> PrivateKeySigner {
    PrivateKeySigner::random()
}

fn relay_client(relay: &AnvilRelay) -> impl Provider + MevApi<alloy::network::Ethereum> {
    ProviderBuilder::new().connect_http(relay.url().parse().unwrap())
}

/// Keel's two-transaction bundle: a V2 swap TKA -> TKB (`min_out` guards it) and a TKC transfer.
async fn keel_bundle(chain: &AnvilChain, min_out: U256) -> (SignedTx, SignedTx) {
    let a = chain.addresses();
    let (tka, tkb, tkc) = (a.token("TKA").unwrap(), a.token("TKB").unwrap(), a.token("TKC").unwrap());
    let n = nonce(chain, KEEL).await;
    let swap = IUniswapV2Router02::swapExactTokensForTokensCall {
        amountIn: e18(10),
        amountOutMin: min_out,
        path: vec![tka, tkb],
        to: chain.address(KEEL),
        deadline: U256::from(4_000_000_000u64),
    };
    let transfer = IERC20::transferCall { to: chain.address(SINK), amount: e18(7) };
    let tx1 = sign_call(chain, KEEL, n, tkc, transfer.abi_encode()).await;
    let tx2 = sign_call(chain, KEEL, n + 1, a.v2_router, swap.abi_encode()).await;
    (tx1, tx2)
}

async fn public_transfer(chain: &AnvilChain) -> SignedTx {
    let tka = chain.addresses().token("TKA").unwrap();
    let call = IERC20::transferCall { to: chain.address(SINK), amount: e18(1) };
    let tx = sign_call(chain, TRADER, nonce(chain, TRADER).await, tka, call.abi_encode()).await;
    let _pending = chain.provider().send_raw_transaction(&tx.raw).await.unwrap();
    tx
}

async fn mined_in(chain: &AnvilChain, tx: &SignedTx) -> Option<(u64, bool)> {
    let r = chain.provider().get_transaction_receipt(tx.hash).await.unwrap()?;
    Some((r.block_number.unwrap(), r.status()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_bundle_lands_in_its_target_block() {
    let chain = chain().await;
    let relay =
        AnvilRelay::start(chain.http_url(), RelayOptions { block_interval: None, ..Default::default() })
            .await
            .unwrap();
    let client = relay_client(&relay);
    let tkc = chain.addresses().token("TKC").unwrap();
    let sink_before = chain.balance_of(tkc, chain.address(SINK)).await.unwrap();
    let public = public_transfer(&chain).await;

    let (tx1, tx2) = keel_bundle(&chain, U256::from(1u64)).await;
    let head = chain.block_number().await.unwrap();

    // Simulation first: both succeed, nothing changes on chain.
    let sim = client
        .call_bundle(EthCallBundle {
            txs: vec![tx1.raw.clone(), tx2.raw.clone()],
            block_number: head + 1,
            state_block_number: alloy::eips::BlockNumberOrTag::Latest,
            ..Default::default()
        })
        .with_auth(searcher())
        .await
        .unwrap()
        .expect("callBundle result");
    assert_eq!(sim.results.len(), 2);
    assert!(sim.results.iter().all(|r| r.revert.is_none() && r.gas_used > 21_000), "{sim:?}");
    assert_eq!(sim.results[0].tx_hash, tx1.hash);
    assert_eq!(sim.state_block_number, head);
    assert!(sim.total_gas_used > 100_000 && sim.coinbase_diff > U256::ZERO);
    assert_eq!(chain.block_number().await.unwrap(), head);
    assert_eq!(mined_in(&chain, &tx1).await, None);
    assert_eq!(mined_in(&chain, &public).await, None, "the public tx is still pending after a simulation");

    let key = searcher();
    let sent = client
        .send_bundle(EthSendBundle {
            txs: vec![tx1.raw.clone(), tx2.raw.clone()],
            block_number: head + 1,
            ..Default::default()
        })
        .with_auth(key.clone())
        .await
        .unwrap()
        .expect("bundle hash");
    assert_eq!(relay.bundle_status(sent.bundle_hash), Some(BundleStatus::Pending { target: head + 1 }));
    assert_eq!(relay.bundle_signer(sent.bundle_hash), Some(key.address()));

    assert_eq!(relay.mine_block().await.unwrap(), head + 1);
    assert_eq!(relay.bundle_status(sent.bundle_hash), Some(BundleStatus::Landed { block: head + 1 }));
    assert_eq!(mined_in(&chain, &tx1).await, Some((head + 1, true)));
    assert_eq!(mined_in(&chain, &tx2).await, Some((head + 1, true)));
    assert_eq!(mined_in(&chain, &public).await, Some((head + 1, true)), "public txs survive the simulations");
    assert_eq!(chain.balance_of(tkc, chain.address(SINK)).await.unwrap(), sink_before + e18(7));
    drop(client);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_with_a_failing_tx_lands_nothing() {
    let chain = chain().await;
    let relay =
        AnvilRelay::start(chain.http_url(), RelayOptions { block_interval: None, ..Default::default() })
            .await
            .unwrap();
    let client = relay_client(&relay);
    let tkc = chain.addresses().token("TKC").unwrap();
    let sink_before = chain.balance_of(tkc, chain.address(SINK)).await.unwrap();
    let nonce_before = nonce(&chain, KEEL).await;
    let public = public_transfer(&chain).await;

    // amountOutMin far above what the pool gives: the swap reverts, so the transfer must not land either.
    let (tx1, tx2) = keel_bundle(&chain, e18(1_000)).await;
    let head = chain.block_number().await.unwrap();
    let sim = client
        .call_bundle(EthCallBundle {
            txs: vec![tx1.raw.clone(), tx2.raw.clone()],
            block_number: head + 1,
            state_block_number: alloy::eips::BlockNumberOrTag::Latest,
            ..Default::default()
        })
        .with_auth(searcher())
        .await
        .unwrap()
        .unwrap();
    assert!(sim.results[0].revert.is_none() && sim.results[1].revert.is_some(), "{sim:?}");

    let bundle = EthSendBundle {
        txs: vec![tx1.raw.clone(), tx2.raw.clone()],
        block_number: head + 1,
        ..Default::default()
    };
    let sent = client.send_bundle(bundle).with_auth(searcher()).await.unwrap().unwrap();
    assert_eq!(relay.mine_block().await.unwrap(), head + 1);
    match relay.bundle_status(sent.bundle_hash) {
        Some(BundleStatus::Failed { block, reason }) => {
            assert_eq!(block, head + 1);
            // The node's own reason, as the relay tells it.
            assert!(reason.starts_with("tx 1 (") && reason.contains(") reverted: "), "{reason}");
            assert!(reason.contains("INSUFFICIENT_OUTPUT_AMOUNT"), "{reason}");
        }
        s => panic!("expected Failed, got {s:?}"),
    }
    assert_eq!(chain.block_number().await.unwrap(), head + 1);
    assert_eq!(mined_in(&chain, &tx1).await, None);
    assert_eq!(mined_in(&chain, &tx2).await, None);
    assert_eq!(nonce(&chain, KEEL).await, nonce_before);
    assert_eq!(chain.balance_of(tkc, chain.address(SINK)).await.unwrap(), sink_before);
    assert_eq!(mined_in(&chain, &public).await, Some((head + 1, true)), "the block was still built");

    // The same bundle with the swap allowed to revert lands, revert and all.
    let bundle = EthSendBundle {
        txs: vec![tx1.raw.clone(), tx2.raw.clone()],
        block_number: head + 2,
        reverting_tx_hashes: vec![tx2.hash],
        ..Default::default()
    };
    let sent = client.send_bundle(bundle).with_auth(searcher()).await.unwrap().unwrap();
    relay.mine_block().await.unwrap();
    assert_eq!(relay.bundle_status(sent.bundle_hash), Some(BundleStatus::Landed { block: head + 2 }));
    assert_eq!(mined_in(&chain, &tx1).await, Some((head + 2, true)));
    assert_eq!(mined_in(&chain, &tx2).await, Some((head + 2, false)));
    assert_eq!(chain.balance_of(tkc, chain.address(SINK)).await.unwrap(), sink_before + e18(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_signature_is_rejected() {
    let chain = chain().await;
    let relay =
        AnvilRelay::start(chain.http_url(), RelayOptions { block_interval: None, ..Default::default() })
            .await
            .unwrap();
    let (tx1, _) = keel_bundle(&chain, U256::from(1u64)).await;
    let head = chain.block_number().await.unwrap();
    let body = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "eth_sendBundle",
        "params": [{"txs": [tx1.raw], "blockNumber": format!("0x{:x}", head + 1), "minTimestamp": 0}]
    }))
    .unwrap();
    let http = reqwest::Client::new();
    let post = |header: Option<String>| {
        let mut req = http.post(relay.url()).header("content-type", "application/json").body(body.clone());
        if let Some(h) = header {
            req = req.header("X-Flashbots-Signature", h);
        }
        req.send()
    };
    let key = searcher();
    let hash_str = keccak256(&body).to_string();
    let sig = key.sign_message(hash_str.as_bytes()).await.unwrap();
    let mut raw = sig.as_bytes();

    // Missing header; a valid signature claimed for another address; a signature over another body.
    let resp = post(None).await.unwrap();
    assert_eq!(resp.status(), 403);
    let text = resp.text().await.unwrap();
    assert!(text.contains("missing X-Flashbots-Signature"), "{text}");
    let resp =
        post(Some(format!("{}:{}", Address::repeat_byte(7), alloy::primitives::hex::encode_prefixed(raw))))
            .await
            .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("signature mismatch"));
    let other = key.sign_message(keccak256(b"other body").to_string().as_bytes()).await.unwrap();
    let resp = post(Some(format!(
        "{}:{}",
        key.address(),
        alloy::primitives::hex::encode_prefixed(other.as_bytes())
    )))
    .await
    .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(relay.rejected_requests(), 3);

    // The right signature with v = 27/28 (not alloy's 0/1) is accepted.
    raw[64] = 27 + u8::from(sig.v());
    let resp = post(Some(format!("{}:{}", key.address(), alloy::primitives::hex::encode_prefixed(raw))))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    let hash: alloy::primitives::B256 = serde_json::from_value(v["result"]["bundleHash"].clone()).unwrap();
    assert_eq!(relay.bundle_status(hash), Some(BundleStatus::Pending { target: head + 1 }));
    assert_eq!(relay.rejected_requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_bundle_is_resent_and_lands_later() {
    let chain = chain().await;
    // Timer-driven blocks this time.
    let relay = AnvilRelay::start(
        chain.http_url(),
        RelayOptions { block_interval: Some(Duration::from_millis(150)), ..Default::default() },
    )
    .await
    .unwrap();
    let client = relay_client(&relay);
    let (tx1, tx2) = keel_bundle(&chain, U256::from(1u64)).await;
    let txs = vec![tx1.raw.clone(), tx2.raw.clone()];

    // Aimed at a block that is already built: refused, and never lands.
    let head = chain.block_number().await.unwrap();
    let late = client
        .send_bundle(EthSendBundle { txs: txs.clone(), block_number: head, ..Default::default() })
        .with_auth(searcher())
        .await;
    let err = late.expect_err("a bundle for a built block is refused").to_string();
    assert!(err.contains("is not after the head block"), "{err}");

    // Aimed at the next block but only valid before a timestamp long past: the block is built without it.
    let missed = client
        .send_bundle(EthSendBundle {
            txs: txs.clone(),
            block_number: head + 1,
            max_timestamp: Some(1),
            ..Default::default()
        })
        .with_auth(searcher())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let missed_block = loop {
        match relay.bundle_status(missed.bundle_hash) {
            Some(BundleStatus::Failed { block, reason }) => {
                assert!(reason.contains("maxTimestamp"), "{reason}");
                break block;
            }
            Some(BundleStatus::Expired { target }) => break target,
            _ if Instant::now() > deadline => panic!("bundle never resolved"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!(mined_in(&chain, &tx1).await, None);

    // Retargeted two blocks ahead, it lands there.
    let target = chain.block_number().await.unwrap() + 2;
    let resent = client
        .send_bundle(EthSendBundle { txs, block_number: target, ..Default::default() })
        .with_auth(searcher())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.bundle_hash, missed.bundle_hash, "same transactions, same bundle hash");
    let deadline = Instant::now() + WAIT;
    loop {
        match relay.bundle_status(resent.bundle_hash) {
            Some(BundleStatus::Landed { block }) => {
                assert_eq!(block, target);
                break;
            }
            Some(BundleStatus::Pending { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            s => {
                panic!("expected the resent bundle to land in {target}, got {s:?} (missed in {missed_block})")
            }
        }
    }
    assert_eq!(mined_in(&chain, &tx1).await, Some((target, true)));
    assert_eq!(mined_in(&chain, &tx2).await, Some((target, true)));
}

/// A bundle transaction that could not be mined in the simulation (its nonce is ahead of the
/// account's) must not stay in anvil's pool: once the gap filled it would be mined later as a
/// public transaction, after its target block, and Keel would see a rebalance it had expired land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bundle_never_lands_after_its_target_block() {
    let chain = chain().await;
    let relay =
        AnvilRelay::start(chain.http_url(), RelayOptions { block_interval: None, ..Default::default() })
            .await
            .unwrap();
    let client = relay_client(&relay);
    let (tx1, tx2) = keel_bundle(&chain, U256::from(1u64)).await;
    let head = chain.block_number().await.unwrap();

    // Only the second transaction (nonce n + 1): not mineable, so the bundle is refused.
    for (block, simulate_first) in [(head + 1, true), (head + 2, false)] {
        if simulate_first {
            let call = EthCallBundle {
                txs: vec![tx2.raw.clone()],
                block_number: block,
                state_block_number: alloy::eips::BlockNumberOrTag::Latest,
                ..Default::default()
            };
            let _ = client.call_bundle(call).with_auth(searcher()).await;
        }
        let bundle = EthSendBundle { txs: vec![tx2.raw.clone()], block_number: block, ..Default::default() };
        let sent = client.send_bundle(bundle).with_auth(searcher()).await.unwrap().unwrap();
        assert_eq!(relay.mine_block().await.unwrap(), block);
        assert!(
            matches!(relay.bundle_status(sent.bundle_hash), Some(BundleStatus::Failed { .. })),
            "{:?}",
            relay.bundle_status(sent.bundle_hash)
        );
    }
    // Nonce n lands publicly; the refused n + 1 must not follow it in this or a later block.
    let _pending = chain.provider().send_raw_transaction(&tx1.raw).await.unwrap();
    relay.mine_block().await.unwrap();
    relay.mine_block().await.unwrap();
    assert_eq!(mined_in(&chain, &tx1).await, Some((head + 3, true)));
    assert_eq!(mined_in(&chain, &tx2).await, None, "a refused bundle's transaction was mined later");
    drop(client);
    relay.shutdown().await.unwrap();
}

/// Simulations are invisible: a reader subscribed to new heads sees exactly one head per block the
/// relay builds, never a simulation's block, and a refused bundle's account nonce never moves,
/// however many bundles (landing, reverting, out of nonce order) and `eth_callBundle`s it judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_one_head_per_built_block_and_no_simulation() {
    use alloy::providers::WsConnect;
    use futures_util::StreamExt;

    let chain = chain().await;
    let relay =
        AnvilRelay::start(chain.http_url(), RelayOptions { block_interval: None, ..Default::default() })
            .await
            .unwrap();
    let client = relay_client(&relay);
    let ws = ProviderBuilder::new().connect_ws(WsConnect::new(chain.ws_url().to_string())).await.unwrap();
    let mut heads = ws.subscribe_blocks().await.unwrap().into_stream();
    let head = chain.block_number().await.unwrap();

    // Block head+1: a bundle whose swap reverts (refused), then a good one with the same nonces.
    let (bad1, bad2) = keel_bundle(&chain, e18(1_000)).await;
    let (good1, good2) = keel_bundle(&chain, U256::from(1u64)).await;
    let send = |txs: Vec<alloy::primitives::Bytes>, block: u64| {
        let bundle = EthSendBundle { txs, block_number: block, ..Default::default() };
        client.send_bundle(bundle).with_auth(searcher())
    };
    let bad = send(vec![bad1.raw.clone(), bad2.raw.clone()], head + 1).await.unwrap().unwrap();
    let good = send(vec![good1.raw.clone(), good2.raw.clone()], head + 1).await.unwrap().unwrap();
    for _ in 0..3 {
        let call = EthCallBundle {
            txs: vec![good1.raw.clone(), good2.raw.clone()],
            block_number: head + 1,
            state_block_number: alloy::eips::BlockNumberOrTag::Latest,
            ..Default::default()
        };
        client.call_bundle(call).with_auth(searcher()).await.unwrap().unwrap();
    }
    let nonce_before = nonce(&chain, KEEL).await;
    assert_eq!(relay.mine_block().await.unwrap(), head + 1);
    assert!(matches!(relay.bundle_status(bad.bundle_hash), Some(BundleStatus::Failed { .. })));
    assert_eq!(relay.bundle_status(good.bundle_hash), Some(BundleStatus::Landed { block: head + 1 }));
    assert_eq!(nonce(&chain, KEEL).await, nonce_before + 2);

    // Block head+2: the landed bundle again (nonces now too low) is refused, and nothing moves.
    let stale = send(vec![good1.raw.clone(), good2.raw.clone()], head + 2).await.unwrap().unwrap();
    assert_eq!(relay.mine_block().await.unwrap(), head + 2);
    match relay.bundle_status(stale.bundle_hash) {
        Some(BundleStatus::Failed { reason, .. }) => assert!(reason.contains("nonce too low"), "{reason}"),
        s => panic!("expected Failed, got {s:?}"),
    }
    assert_eq!(nonce(&chain, KEEL).await, nonce_before + 2);

    let mut seen = Vec::new();
    while let Ok(Some(h)) = tokio::time::timeout(Duration::from_millis(500), heads.next()).await {
        seen.push(h.number);
    }
    assert_eq!(seen, vec![head + 1, head + 2], "heads seen by a subscriber");
}

/// A public swap that arrives while a block is being built (after its bundles were judged, before
/// anything is mined) is mined first; the accepted bundle it breaks is judged again on top of it
/// and refused, saying why; the block holds the public swap alone and Keel's nonce never moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_swap_arriving_mid_build_is_mined_first_and_the_bundle_it_breaks_is_refused() {
    let chain = chain().await;
    let gate = std::sync::Arc::new(SealGate::default());
    let options = RelayOptions { block_interval: None, seal_gate: Some(gate.clone()), ..Default::default() };
    let relay = AnvilRelay::start(chain.http_url(), options).await.unwrap();
    let client = relay_client(&relay);
    let a = chain.addresses().clone();
    let (tka, tkb) = (a.token("TKA").unwrap(), a.token("TKB").unwrap());
    let pair = a.v2_pairs.iter().find(|p| p.name == "TKA/TKB" || p.name == "TKB/TKA").unwrap().address;
    let r = IUniswapV2Pair::new(pair, chain.provider()).getReserves().call().await.unwrap();
    let (r0, r1) = (U256::from(r.reserve0), U256::from(r.reserve1));
    let (reserve_in, reserve_out) = if tka < tkb { (r0, r1) } else { (r1, r0) };
    // Keel's swap asks for exactly what the pool pays now: any sale before it breaks it.
    let exact = keel_amm::v2::get_amount_out(e18(10), reserve_in, reserve_out, 30).unwrap();
    let (tx1, tx2) = keel_bundle(&chain, exact).await;
    let (head, keel_nonce) = (chain.block_number().await.unwrap(), nonce(&chain, KEEL).await);
    let bundle =
        EthSendBundle { txs: vec![tx1.raw, tx2.raw.clone()], block_number: head + 1, ..Default::default() };
    let sent = client.send_bundle(bundle).with_auth(searcher()).await.unwrap().expect("bundle hash");

    // Mid-build: another account sells TKA into the same pair, publicly.
    let front_run = async {
        gate.judged.notified().await;
        let sale = IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: e18(50),
            amountOutMin: U256::from(1u8),
            path: vec![tka, tkb],
            to: chain.address(TRADER),
            deadline: U256::from(4_000_000_000u64),
        };
        let tx = sign_call(&chain, TRADER, nonce(&chain, TRADER).await, a.v2_router, sale.abi_encode()).await;
        let _pending = chain.provider().send_raw_transaction(&tx.raw).await.unwrap();
        gate.go.notify_one();
        tx
    };
    let (built, public) = tokio::join!(relay.mine_block(), front_run);
    assert_eq!(built.unwrap(), head + 1);
    match relay.bundle_status(sent.bundle_hash) {
        Some(BundleStatus::Failed { block, reason }) => {
            assert_eq!(block, head + 1);
            assert!(
                reason.starts_with("after public transactions that arrived during the build: tx 1 (")
                    && reason.contains("INSUFFICIENT_OUTPUT_AMOUNT"),
                "{reason}"
            );
        }
        s => panic!("expected Failed, got {s:?}"),
    }
    assert_eq!(mined_in(&chain, &public).await, Some((head + 1, true)), "the public sale is in the block");
    assert_eq!(mined_in(&chain, &tx2).await, None);
    assert_eq!(nonce(&chain, KEEL).await, keel_nonce);
    assert_eq!(chain.block_number().await.unwrap(), head + 1, "one block, nothing reverted");
    drop(client);
    relay.shutdown().await.unwrap();
}
