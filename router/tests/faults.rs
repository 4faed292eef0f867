//! Relay faults: a loopback relay (raw HTTP/1.1 on `127.0.0.1:0`) that answers 500, then hangs past
//! the client's timeout, then a JSON-RPC error, then success, next to a healthy relay. Each answer
//! is classified as the right [`RelayError`], and the [`Executor`] driving the bundle resubmits the
//! *same* signed transactions for every next block whatever the relays said, gives up after
//! `bundle_blocks`, and settles a landing exactly once.
//!
//! Also here: the relay-answer parser fuzzed with random and structure-aware bodies
//! (`KEEL_FUZZ_CASES` / `PROPTEST_CASES` raise the case count).
//!
//! And the executor signing with presigned nonces (`[router] presign_pool`): transactions and the
//! `X-Flashbots-Signature` from warm pools, each recovered and verified.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::consensus::{Transaction, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, U256};
use keel_amm::pool::{Pool, PoolEntry, PoolMeta};
use keel_engine::chain::ChainUpdate;
use keel_engine::event::{BlockHeader, Outcome, OutcomeStatus};
use keel_engine::intent::{Leg, RebalanceIntent, TriggerReason};
use keel_engine::record::JournalRecord;
use keel_engine::{PortfolioId, TokenId};
use keel_router::bundle::SignedBundleRequest;
use keel_router::config::{DexKind, RelayConfig, RouterConfig};
use keel_router::exec::{Action, ExecToken, Executor, PoolVenue, ReceiptInfo};
use keel_router::relay::{RelayClient, RelayError, parse_send_bundle_response};
use keel_router::signer::Signer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Upper bound on a test.
const LIMIT: Duration = Duration::from_secs(20);
/// The relay client's timeout.
const TIMEOUT_MS: u64 = 300;
/// How long the hanging relay sleeps (well past [`TIMEOUT_MS`]).
const HANG: Duration = Duration::from_secs(3);
/// The hash the relays report on success.
const RELAY_HASH: B256 = B256::repeat_byte(0xab);

// ----- A scripted relay. -----

/// What the relay does with one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// HTTP 500 with a plain-text body.
    Status500,
    /// Reads the request and answers nothing for [`HANG`].
    Hang,
    /// HTTP 200 with a JSON-RPC error.
    RpcError,
    /// HTTP 200 with `result.bundleHash`.
    Ok,
}

/// A loopback relay answering its `n`-th request with `script[n]` (the last entry repeats).
struct Relay {
    url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(script: Vec<Reply>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (script, seen) = (Arc::new(script), Arc::clone(&bodies));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            // Connection tasks live in the set: aborting this task drops it, which aborts them.
            let mut conns = JoinSet::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let (script, seen, hits) = (Arc::clone(&script), Arc::clone(&seen), Arc::clone(&hits));
                conns.spawn(serve_connection(sock, script, seen, hits));
                while conns.try_join_next().is_some() {}
            }
        });
        Relay { url, bodies, task }
    }

    fn config(&self, name: &str) -> RelayConfig {
        RelayConfig {
            name: name.into(),
            url: self.url.clone(),
            timeout_ms: TIMEOUT_MS,
            fast_path: true,
            ca_cert: None,
            coinbase: None,
        }
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().expect("lock").clone()
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Reads one HTTP/1.1 request (headers, then a `Content-Length` body); `None` at end of stream.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let mut chunk = [0u8; 4096];
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Some(body);
        }
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve_connection(
    mut sock: TcpStream,
    script: Arc<Vec<Reply>>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    hits: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    while let Some(body) = read_request(&mut sock, &mut buf).await {
        let n = hits.fetch_add(1, Ordering::SeqCst);
        seen.lock().expect("lock").push(body);
        let reply = script[n.min(script.len() - 1)];
        let (status, json) = match reply {
            Reply::Status500 => ("500 Internal Server Error", false),
            Reply::Hang => {
                tokio::time::sleep(HANG).await;
                return;
            }
            Reply::RpcError => ("200 OK", true),
            Reply::Ok => ("200 OK", true),
        };
        let body = match reply {
            Reply::Status500 => "internal server error".to_string(),
            Reply::RpcError => {
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"bundle rejected: simulation failed"}}"#
                    .to_string()
            }
            _ => format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bundleHash":"{RELAY_HASH}"}}}}"#),
        };
        let ctype = if json { "application/json" } else { "text/plain" };
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if sock.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ----- An executor with one V2 pool. -----

const USDC: Address = Address::repeat_byte(0x11);
const WETH: Address = Address::repeat_byte(0x22);
const POOL: Address = Address::repeat_byte(0x50);
const DEX_ROUTER: Address = Address::repeat_byte(0x72);
const BUNDLE_BLOCKS: u64 = 5;
const FIRST_NONCE: u64 = 7;
const GWEI: u128 = 1_000_000_000;

fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

fn account() -> Signer {
    Signer::dev(1).expect("dev key")
}

/// Built as `bench/src/pipeline.rs` `build_executor` does: tokens in engine order, V2 pools with
/// unknown state until the first chain update.
fn executor() -> Executor {
    let cfg = RouterConfig {
        bundle_blocks: BUNDLE_BLOCKS,
        priority_fee_wei: GWEI,
        // These tests advance heads without re-reading the pool; pool staleness is tested in
        // `oracle.rs` and the executor's tests.
        max_pool_age_blocks: u64::MAX,
        ..RouterConfig::for_chain(31337)
    };

    let tokens = vec![
        ExecToken { symbol: "USDC".into(), address: USDC, decimals: 6 },
        ExecToken { symbol: "WETH".into(), address: WETH, decimals: 18 },
    ];
    let meta = PoolMeta {
        id: "uni-usdc-weth".into(),
        address: POOL,
        token0: USDC,
        token1: WETH,
        gas: 120_000,
        venue: 0,
    };
    let pool = PoolEntry::new(meta, Pool::V2 { reserve0: U256::ZERO, reserve1: U256::ZERO, fee_bps: 30 })
        .expect("pool");
    let venue = PoolVenue {
        kind: DexKind::UniswapV2,
        router: DEX_ROUTER,
        pool_id: None,
        via: Default::default(),
        curve_indices: Default::default(),
    };
    Executor::new(
        cfg,
        tokens,
        vec![pool],
        vec![venue],
        vec![account()],
        Signer::dev(9).expect("dev key"),
        None,
    )
}

fn head(number: u64) -> ChainUpdate {
    ChainUpdate::Head(BlockHeader {
        number,
        timestamp: 1_700_000_000 + 12 * number,
        base_fee: GWEI,
        recv_ns: 1,
    })
}

fn nonce(n: u64, block: u64) -> ChainUpdate {
    ChainUpdate::Nonce { account: account().address(), nonce: n, block }
}

/// Sell 1 WETH for USDC at 3000 (the pool's mid).
fn intent(id: u64) -> RebalanceIntent {
    RebalanceIntent {
        id,
        portfolio: PortfolioId(0),
        account: account().address(),
        reason: TriggerReason::Drift { token: TokenId(1), weight: 0.6, target: 0.5, band: 0.05 },
        drift: 0.1,
        legs: vec![Leg {
            sell: TokenId(1),
            buy: TokenId(0),
            amount_in: e18(1),
            notional: 3_000.0,
            reference_price: 3_000.0,
        }],
        event_recv_ns: 1,
        decided_ns: 1,
        planned_ns: 1,
        value: None,
        native_price: None,
    }
}

/// An executor at block 100 with the pool's reserves and the account's nonce known.
fn ready_executor() -> Executor {
    let mut ex = executor();
    let mut out = Vec::new();
    ex.on_chain(head(100), 1, &mut out);
    ex.on_chain(
        ChainUpdate::polled_v2_reserves(0, Address::ZERO, U256::from(3_000_000_000_000u64), e18(1_000), 100),
        1,
        &mut out,
    );
    ex.on_chain(nonce(FIRST_NONCE, 100), 1, &mut out);
    assert!(out.is_empty(), "{out:?}");
    ex
}

/// What a submitted `eth_sendBundle` carries: target block, (nonce, hash) of each transaction, uuid.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    block: u64,
    txs: Vec<(u64, B256)>,
    uuid: String,
}

fn sent(body: &[u8]) -> Sent {
    let v: Value = serde_json::from_slice(body).expect("request body is JSON");
    assert_eq!(v["method"], "eth_sendBundle");
    let b = &v["params"][0];
    let block = b["blockNumber"].as_str().expect("blockNumber");
    let block = u64::from_str_radix(block.trim_start_matches("0x"), 16).expect("hex block");
    let txs = b["txs"]
        .as_array()
        .expect("txs")
        .iter()
        .map(|t| {
            let raw = alloy::primitives::hex::decode(t.as_str().expect("hex tx")).expect("hex");
            let env = TxEnvelope::decode_2718(&mut raw.as_slice()).expect("EIP-2718 transaction");
            (env.nonce(), *env.tx_hash())
        })
        .collect();
    Sent { block, txs, uuid: b["replacementUuid"].as_str().expect("replacementUuid").to_string() }
}

fn submits(out: &[Action]) -> Vec<SignedBundleRequest> {
    out.iter()
        .filter_map(|a| match a {
            Action::Submit { request, .. } => Some(request.clone()),
            _ => None,
        })
        .collect()
}

/// The actions other than journal records.
fn acts(out: &[Action]) -> Vec<Action> {
    out.iter().filter(|a| !matches!(a, Action::Journal(_))).cloned().collect()
}

/// The journal records among the actions.
fn records(out: &[Action]) -> Vec<JournalRecord> {
    out.iter()
        .filter_map(|a| match a {
            Action::Journal(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn outcomes(out: &[Action]) -> Vec<Outcome> {
    out.iter()
        .filter_map(|a| match a {
            Action::Outcome(o) => Some(*o),
            _ => None,
        })
        .collect()
}

fn fetches(out: &[Action]) -> Vec<(u64, Vec<B256>)> {
    out.iter()
        .filter_map(|a| match a {
            Action::FetchReceipts { intent, hashes, .. } => Some((*intent, hashes.clone())),
            _ => None,
        })
        .collect()
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(LIMIT, test).await.expect("test finished in time");
}

/// 500, timeout, JSON-RPC error, success: each classified right, the healthy relay unaffected, and the
/// executor resubmitting the same signed transactions for each next block until it gives up.
#[tokio::test]
async fn relay_faults_are_classified_and_the_same_bundle_is_retried_until_it_expires() {
    bounded(async {
        let faulty = Relay::start(vec![Reply::Status500, Reply::Hang, Reply::RpcError, Reply::Ok]).await;
        let healthy = Relay::start(vec![Reply::Ok]).await;
        let client = RelayClient::new(vec![faulty.config("faulty"), healthy.config("healthy")]).expect("client");

        let mut ex = ready_executor();
        let mut out = Vec::new();
        ex.on_intent(&intent(1), 1, &mut out);
        let mut requests = submits(&out);
        assert_eq!(requests.len(), 1, "{out:?}");
        let first = sent(&requests[0].body);
        assert_eq!(first.block, 101);
        let nonces: Vec<u64> = first.txs.iter().map(|t| t.0).collect();
        assert_eq!(nonces, [FIRST_NONCE, FIRST_NONCE + 1], "approve then swap, consecutive nonces");

        // One relay answer per block: each next head retargets the same transactions.
        let expect: [fn(&RelayError) -> bool; 3] = [
            |e| matches!(e, RelayError::Status { status: 500, .. }),
            |e| matches!(e, RelayError::Transport(_)),
            |e| matches!(e, RelayError::Rpc { code: -32000, message } if message.contains("simulation failed")),
        ];
        for (k, block) in (100..104).enumerate() {
            if k > 0 {
                out.clear();
                ex.on_chain(head(block), 1, &mut out);
                assert!(outcomes(&out).is_empty() && fetches(&out).is_empty(), "{out:?}");
                let r = submits(&out);
                assert_eq!(r.len(), 1, "one resubmission at head {block}: {out:?}");
                requests.push(r[0].clone());
            }
            let req = requests.last().expect("request");
            assert_eq!(req.block_number, block + 1);
            let replies = client.send(req).await;
            assert_eq!(replies.len(), 2);
            let (bad, good) = (&replies[0], &replies[1]);
            assert_eq!(good.result, Ok(RELAY_HASH), "the healthy relay is unaffected");
            assert!(good.elapsed < Duration::from_millis(TIMEOUT_MS), "{good:?}");
            match k {
                0..=2 => {
                    let e = bad.result.as_ref().expect_err("faulty relay fails");
                    assert!(expect[k](e), "answer {k}: {e:?}");
                    assert_eq!(e.is_recoverable(), k < 2, "500 and timeouts are recoverable: {e:?}");
                    if k == 1 {
                        assert!(bad.elapsed >= Duration::from_millis(TIMEOUT_MS) && bad.elapsed < HANG, "{bad:?}");
                    }
                }
                _ => assert_eq!(bad.result, Ok(RELAY_HASH)),
            }
        }
        // Both relays saw every submission, each the same transactions for the next block.
        for relay in [&faulty, &healthy] {
            let seen: Vec<Sent> = relay.bodies().iter().map(|b| sent(b)).collect();
            assert_eq!(seen.len(), 4);
            for (k, s) in seen.iter().enumerate() {
                assert_eq!(s.txs, first.txs, "same signed transactions (nonces and hashes) at {k}");
                assert_eq!(s.uuid, first.uuid);
                assert_eq!(s.block, 101 + k as u64);
            }
        }
        for (k, r) in requests.iter().enumerate() {
            assert_eq!(r.bundle_hash, requests[0].bundle_hash, "request {k}");
        }

        // No nonce movement: one more retarget at 104, then Expired at 105 = 100 + bundle_blocks,
        // exactly once, and nothing after it.
        out.clear();
        ex.on_chain(head(104), 1, &mut out);
        assert_eq!(submits(&out).len(), 1);
        assert_eq!(sent(&submits(&out)[0].body).txs, first.txs);
        out.clear();
        // The deadline block's nonce read shows it unlanded (read in the same poll as its head).
        ex.on_chain(nonce(FIRST_NONCE, 101 + BUNDLE_BLOCKS), 1, &mut out);
        ex.on_chain(head(100 + BUNDLE_BLOCKS), 1, &mut out);
        assert_eq!(
            acts(&out),
            [Action::Outcome(Outcome {
                intent: 1,
                portfolio: PortfolioId(0),
                status: OutcomeStatus::Expired,
                at_ns: 1
            })]
        );
        assert!(
            matches!(records(&out).as_slice(), [JournalRecord::Expired { intent: 1, block, .. }] if *block == 100 + BUNDLE_BLOCKS),
            "{out:?}"
        );
        assert_eq!(ex.inflight_count(), 0);
        for b in 106..110 {
            out.clear();
            ex.on_chain(head(b), 1, &mut out);
            ex.on_chain(nonce(FIRST_NONCE, b), 1, &mut out);
            assert!(out.is_empty(), "nothing after expiry: {out:?}");
        }
        assert_eq!((ex.stats().expired, ex.stats().landed, ex.stats().submissions), (1, 0, 5));

        // The nonces (and the unlanded approval) were released: the next rebalance reuses them.
        ex.on_intent(&intent(2), 1, &mut out);
        let again = sent(&submits(&out)[0].body);
        assert_eq!(again.txs.iter().map(|t| t.0).collect::<Vec<_>>(), nonces, "approve again, same nonces");

        faulty.stop().await;
        healthy.stop().await;
    })
    .await;
}

/// After a bundle with an approval expired unlanded, the next rebalance must approve again: the chain
/// allowance is still zero (the executor records an approval optimistically when it signs it, and must
/// roll that back on expiry, as the poller reads allowances only at start).
#[test]
fn an_expired_approval_is_sent_again() {
    let mut ex = ready_executor();
    let mut out = Vec::new();
    ex.on_intent(&intent(1), 1, &mut out);
    assert_eq!(sent(&submits(&out)[0].body).txs.len(), 2, "approve + swap");
    for b in 101..=100 + BUNDLE_BLOCKS {
        ex.on_chain(nonce(FIRST_NONCE, b + 1), 1, &mut out);
        ex.on_chain(head(b), 1, &mut out);
    }
    assert_eq!(ex.stats().expired, 1);
    out.clear();
    ex.on_intent(&intent(2), 1, &mut out);
    let again = sent(&submits(&out)[0].body);
    assert_eq!(again.txs.len(), 2, "the approval must be sent again: {again:?}");
}

/// The nonce moving past the bundle's last nonce settles it: one FetchReceipts, one Landed, never
/// two, however often the nonce and later heads are seen again; no Expired even past the deadline.
#[test]
fn a_landing_is_settled_exactly_once() {
    let mut ex = ready_executor();
    let mut out = Vec::new();
    ex.on_intent(&intent(1), 1, &mut out);
    let first = sent(&submits(&out)[0].body);
    let hashes: Vec<B256> = first.txs.iter().map(|t| t.1).collect();
    let last_nonce = first.txs.last().expect("txs").0;
    for b in 101..103 {
        out.clear();
        ex.on_chain(head(b), 1, &mut out);
        assert_eq!(sent(&submits(&out)[0].body).txs, first.txs);
    }
    // The nonce at the last nonce itself: not landed yet (only the approve could be in).
    out.clear();
    ex.on_chain(nonce(last_nonce, 103), 1, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // Landed in block 103: the nonce update comes before the head, as the poller publishes them.
    ex.on_chain(nonce(last_nonce + 1, 103), 1, &mut out);
    ex.on_chain(head(103), 1, &mut out);
    ex.on_chain(nonce(last_nonce + 1, 104), 1, &mut out);
    ex.on_chain(head(104), 1, &mut out);
    ex.on_chain(nonce(last_nonce + 2, 105), 1, &mut out);
    ex.on_chain(head(100 + BUNDLE_BLOCKS), 1, &mut out);
    ex.on_chain(head(100 + BUNDLE_BLOCKS + 3), 1, &mut out);
    assert_eq!(fetches(&out), [(1, hashes.clone())], "exactly one receipt read: {out:?}");
    assert!(submits(&out).is_empty() && outcomes(&out).is_empty(), "{out:?}");

    out.clear();
    let receipts = [
        ReceiptInfo { hash: B256::ZERO, block: 103, gas_used: 46_000, success: true },
        ReceiptInfo { hash: B256::ZERO, block: 103, gas_used: 98_000, success: true },
    ];
    ex.on_receipts(1, &receipts, &mut out);
    assert_eq!(
        records(&out),
        [JournalRecord::Landed { intent: 1, block: 103, gas_used: 144_000, reverted: false }]
    );
    assert_eq!(
        acts(&out),
        [Action::Outcome(Outcome {
            intent: 1,
            portfolio: PortfolioId(0),
            status: OutcomeStatus::Landed { block: 103, gas_used: 144_000 },
            at_ns: 1
        })]
    );
    // Duplicated receipts and later chain updates report nothing more.
    out.clear();
    ex.on_receipts(1, &receipts, &mut out);
    ex.on_chain(nonce(last_nonce + 3, 110), 1, &mut out);
    ex.on_chain(head(110), 1, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!((ex.stats().landed, ex.stats().expired, ex.inflight_count()), (1, 0, 0));
}

/// A base-fee jump re-signs the bundle with the same nonces (so at most one version can land).
#[test]
fn a_fee_bump_keeps_the_nonces() {
    let mut ex = ready_executor();
    let mut out = Vec::new();
    ex.on_intent(&intent(1), 1, &mut out);
    let first = sent(&submits(&out)[0].body);
    out.clear();
    ex.on_chain(
        ChainUpdate::Head(BlockHeader {
            number: 101,
            timestamp: 1_700_001_212,
            base_fee: 50 * GWEI,
            recv_ns: 1,
        }),
        1,
        &mut out,
    );
    let bumped = sent(&submits(&out)[0].body);
    assert_eq!(bumped.block, 102);
    assert_eq!(bumped.uuid, first.uuid);
    let n = |s: &Sent| s.txs.iter().map(|t| t.0).collect::<Vec<_>>();
    assert_eq!(n(&bumped), n(&first));
    assert!(bumped.txs.iter().zip(&first.txs).all(|(a, b)| a.1 != b.1), "re-signed with new fees");
}

/// Waits (at most [`LIMIT`]) until every key of the executor has a full presign pool.
fn wait_for_full_pools(ex: &Executor, keys: usize) {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let stats = ex.presign_stats();
        if stats.len() == keys && stats.iter().all(|(_, s)| s.pool_depth == s.capacity) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "presign pools not full in time: {stats:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Presigned-nonce counters of `who` among the executor's keys: (signed from the pool, fallbacks).
fn presigned(ex: &Executor, who: Address) -> (u64, u64) {
    let stats = ex.presign_stats();
    let (_, s) = stats.iter().find(|(a, _)| *a == who).expect("a pool for the key");
    (s.signed_precomputed, s.fallbacks)
}

/// With `[router] presign_pool` (on by default) and warm pools, the executor signs every
/// transaction (first submission and a fee-bump re-sign) and every `X-Flashbots-Signature` with
/// precomputed nonces, and each verifies: alloy recovers the account from every transaction and the
/// relay-side verifier (`verify_flashbots_signature`, as the sim relay runs it) recovers the
/// reputation key from the exact body.
#[test]
fn presigned_transactions_and_bundle_signatures_verify_and_recover() {
    use alloy::consensus::transaction::SignerRecoverable;
    use alloy::providers::ext::verify_flashbots_signature;

    let (me, auth) = (account().address(), Signer::dev(9).expect("dev key").address());
    let mut ex = ready_executor();
    wait_for_full_pools(&ex, 2);
    let check = |req: &SignedBundleRequest| {
        let v: Value = serde_json::from_slice(&req.body).expect("JSON body");
        for t in v["params"][0]["txs"].as_array().expect("txs") {
            let raw = alloy::primitives::hex::decode(t.as_str().expect("hex tx")).expect("hex");
            let env = TxEnvelope::decode_2718(&mut raw.as_slice()).expect("EIP-2718 transaction");
            assert_eq!(env.recover_signer().expect("recovers"), me);
        }
        assert_eq!(verify_flashbots_signature(&req.signature_header, &req.body).expect("verifies"), auth);
    };

    let mut out = Vec::new();
    ex.on_intent(&intent(1), 1, &mut out);
    let first = submits(&out);
    assert_eq!(first.len(), 1, "{out:?}");
    check(&first[0]);
    assert_eq!(sent(&first[0].body).txs.len(), 2, "approve and swap");
    assert_eq!((presigned(&ex, me), presigned(&ex, auth)), ((2, 0), (1, 0)));

    // A base-fee jump re-signs both transactions (settle's retarget) and the request.
    out.clear();
    let bump = BlockHeader { number: 101, timestamp: 1_700_001_212, base_fee: 50 * GWEI, recv_ns: 1 };
    ex.on_chain(ChainUpdate::Head(bump), 1, &mut out);
    let bumped = submits(&out);
    assert_eq!(bumped.len(), 1, "{out:?}");
    check(&bumped[0]);
    assert_ne!(sent(&bumped[0].body).txs, sent(&first[0].body).txs, "re-signed");
    assert_eq!((presigned(&ex, me), presigned(&ex, auth)), ((4, 0), (2, 0)));
}

// ----- The relay-answer parser, fuzzed. -----

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn cases(default: u32) -> u32 {
        ["KEEL_FUZZ_CASES", "PROPTEST_CASES"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
            .unwrap_or(default)
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<[u8; 32]>().prop_map(|b| Value::from(B256::from(b).to_string())),
            "(0x)?[0-9a-fA-F]{0,70}".prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec(("[a-zA-Z]{1,10}", inner), 0..3)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// JSON-RPC-shaped answers: each member present, absent or of any shape.
    fn response() -> impl Strategy<Value = Value> {
        let result = prop_oneof![leaf().prop_map(|h| serde_json::json!({ "bundleHash": h })), value(),];
        let error = prop_oneof![
            (value(), value()).prop_map(|(c, m)| serde_json::json!({ "code": c, "message": m })),
            (any::<i64>(), any::<String>()).prop_map(|(c, m)| serde_json::json!({ "code": c, "message": m })),
            value(),
        ];
        (proptest::option::of(result), proptest::option::of(error), proptest::option::of(value())).prop_map(
            |(r, e, id)| {
                let mut o = serde_json::Map::new();
                o.insert("jsonrpc".into(), "2.0".into());
                if let Some(id) = id {
                    o.insert("id".into(), id);
                }
                if let Some(r) = r {
                    o.insert("result".into(), r);
                }
                if let Some(e) = e {
                    o.insert("error".into(), e);
                }
                Value::Object(o)
            },
        )
    }

    fn status() -> impl Strategy<Value = u16> {
        prop_oneof![
            Just(200u16),
            Just(201),
            Just(204),
            Just(400),
            Just(403),
            Just(429),
            Just(500),
            Just(502),
            Just(503),
            any::<u16>()
        ]
    }

    /// What the parser must answer, from the documented contract.
    fn check(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
        let got = parse_send_bundle_response(status, body);
        let json = serde_json::from_slice::<Value>(body).ok();
        let error = json.as_ref().and_then(|v| v.get("error")).filter(|e| !e.is_null());
        let ok2xx = (200..300).contains(&status);
        match &got {
            Ok(h) => {
                prop_assert!(ok2xx && error.is_none(), "{status} {}", body.escape_ascii());
                let shown =
                    json.as_ref().and_then(|v| v["result"]["bundleHash"].as_str()).map(str::parse::<B256>);
                prop_assert_eq!(shown.and_then(Result::ok), Some(*h));
            }
            Err(RelayError::Rpc { code, message }) => {
                prop_assert!(status < 500 && status != 429, "overload statuses are Status errors");
                let e = error.expect("an Rpc error comes from an error member");
                prop_assert_eq!(*code, e.get("code").and_then(Value::as_i64).unwrap_or(0));
                prop_assert_eq!(message.as_str(), e.get("message").and_then(Value::as_str).unwrap_or(""));
            }
            Err(e @ RelayError::Status { status: s, body: shown }) => {
                // 5xx and 429 are Status errors whatever the body says; others only without an error member.
                prop_assert!(!ok2xx && *s == status);
                prop_assert!(error.is_none() || status >= 500 || status == 429);
                prop_assert!(shown.len() <= 200 * 3, "the body is cut: {}", shown.len());
                prop_assert_eq!(e.is_recoverable(), status >= 500 || status == 429);
            }
            Err(RelayError::Malformed(_)) => prop_assert!(ok2xx && error.is_none()),
            Err(other) => prop_assert!(false, "parser cannot produce {other:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(3_000), ..ProptestConfig::default() })]

        #[test]
        fn random_bytes(status in status(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
            check(status, &body)?;
        }

        #[test]
        fn json_rpc_shaped_answers(status in status(), v in response(), pretty: bool) {
            let body = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.expect("json");
            check(status, &body)?;
        }

        /// A valid success answer with its bytes corrupted.
        #[test]
        fn corrupted_success(
            status in status(),
            cuts in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..5),
        ) {
            let mut body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bundleHash":"{RELAY_HASH}"}}}}"#).into_bytes();
            for (at, byte, op) in cuts {
                let at = at % (body.len() + 1);
                match op {
                    0 => body.insert(at, byte),
                    1 if at < body.len() => body[at] = byte,
                    _ => body.truncate(at),
                }
            }
            check(status, &body)?;
        }
    }

    /// `"error": null` next to a result (JSON-RPC 1.0 style, sent by some servers) is a success.
    #[test]
    fn null_error_member_is_not_an_error() {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bundleHash":"{RELAY_HASH}"}},"error":null}}"#);
        assert_eq!(parse_send_bundle_response(200, body.as_bytes()), Ok(RELAY_HASH));
    }
}

/// The journal sees a bundle's `Signed` record (with exactly the transactions that go out) before
/// its `Submit`; a fresh executor that adopts that record after a crash resends the very same
/// transactions (same nonces, hashes and uuid) for the next block, keeps the nonces reserved so
/// a new rebalance queues behind them, and settles the landing once.
#[test]
fn a_journaled_bundle_is_adopted_after_a_crash_and_resent_unchanged() {
    let mut ex = ready_executor();
    let mut out = Vec::new();
    ex.on_intent(&intent(7), 1, &mut out);
    let signed_at = out.iter().position(|a| matches!(a, Action::Journal(JournalRecord::Signed(_))));
    let submit_at = out.iter().position(|a| matches!(a, Action::Submit { .. }));
    assert!(matches!(out.first(), Some(Action::Journal(JournalRecord::Decided(_)))), "{out:?}");
    assert!(signed_at.expect("signed record") < submit_at.expect("submit"), "{out:?}");
    let Some(Action::Journal(JournalRecord::Signed(bundle))) = signed_at.map(|i| out[i].clone()) else {
        unreachable!()
    };
    let first = sent(&submits(&out)[0].body);
    let journaled: Vec<(u64, B256)> = bundle.txs.iter().map(|t| (t.nonce, t.hash)).collect();
    assert_eq!(journaled, first.txs);
    assert_eq!(bundle.uuid, first.uuid);

    // The process dies; a new executor at block 102 adopts the journaled bundle.
    let mut ex = executor();
    let mut out = Vec::new();
    ex.on_chain(
        ChainUpdate::polled_v2_reserves(0, Address::ZERO, U256::from(3_000_000_000_000u64), e18(1_000), 102),
        1,
        &mut out,
    );
    ex.adopt(&bundle, &journaled.iter().map(|t| t.1).collect::<Vec<_>>(), FIRST_NONCE).expect("adopt");
    ex.on_chain(head(102), 1, &mut out);
    let again = submits(&out);
    assert_eq!(again.len(), 1, "{out:?}");
    let resent = sent(&again[0].body);
    assert_eq!(
        (resent.txs.clone(), resent.uuid.clone(), resent.block),
        (first.txs.clone(), first.uuid.clone(), 103)
    );
    // The adopted portfolio stays busy; another portfolio's rebalance (same account) gets nonces
    // after the adopted ones.
    out.clear();
    ex.on_intent(&intent(8), 1, &mut out);
    assert!(
        matches!(records(&out).as_slice(), [_, JournalRecord::Refused { reason, .. }] if reason.contains("in flight")),
        "{out:?}"
    );
    out.clear();
    let mut other = intent(9);
    other.portfolio = PortfolioId(1);
    ex.on_intent(&other, 1, &mut out);
    let next = sent(&submits(&out)[0].body);
    let last = first.txs.last().expect("txs").0;
    assert_eq!(next.txs.first().expect("txs").0, last + 1, "{next:?}");
    // The adopted bundle lands: one FetchReceipts with its hashes, one Landed outcome.
    out.clear();
    ex.on_chain(nonce(last + 1, 103), 1, &mut out);
    assert_eq!(fetches(&out), [(7, journaled.iter().map(|t| t.1).collect::<Vec<_>>())]);
    out.clear();
    let receipts: Vec<ReceiptInfo> = journaled
        .iter()
        .map(|t| ReceiptInfo { hash: t.1, block: 103, gas_used: 60_000, success: true })
        .collect();
    ex.on_receipts(7, &receipts, &mut out);
    assert_eq!(
        outcomes(&out),
        [Outcome {
            intent: 7,
            portfolio: PortfolioId(0),
            status: OutcomeStatus::Landed { block: 103, gas_used: 120_000 },
            at_ns: 1
        }]
    );
}

/// Journaled bytes that do not match their hash, or whose nonces are used, are refused, not resent.
#[test]
fn a_corrupt_journaled_bundle_is_not_adopted() {
    let mut ex = ready_executor();
    let mut out = Vec::new();
    ex.on_intent(&intent(7), 1, &mut out);
    let Some(Action::Journal(JournalRecord::Signed(mut bundle))) =
        out.iter().find(|a| matches!(a, Action::Journal(JournalRecord::Signed(_)))).cloned()
    else {
        unreachable!()
    };
    // nonces already used on chain: it can never land, so it is not adopted either
    let mut fresh = executor();
    assert!(fresh.adopt(&bundle, &[], FIRST_NONCE + 1).is_err());
    bundle.txs[0].hash = B256::repeat_byte(0xab);
    assert!(fresh.adopt(&bundle, &[], FIRST_NONCE).is_err());
    assert_eq!(fresh.inflight_count(), 0);
}
