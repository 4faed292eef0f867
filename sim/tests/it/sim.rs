//! The simulated market against real clients: alloy's HTTP provider and MEV API, raw HTTP with
//! hand-made Flashbots signatures, and a tokio-tungstenite websocket client.

use std::time::Duration;

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::{BlockNumberOrTag, eip2718::Encodable2718},
    primitives::{Address, B256, Bytes, TxKind, U256, address, keccak256},
    providers::{
        Provider, ProviderBuilder,
        ext::{MevApi, sign_flashbots_payload},
    },
    rpc::types::mev::{EthCallBundle, EthSendBundle},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::SolCall,
};
use futures_util::{SinkExt, StreamExt};
use keel_amm::v2;
use keel_engine::config::{PriceSource, TokenConfig};
use keel_router::config::{DexConfig, DexKind, PoolConfig};
use keel_sim::anvil::contracts::rpc::{IERC20, IUniswapV2Pair, IUniswapV2Router02};
use keel_sim::{BundleStatus, SimConfig, SimMarket};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const WETH: Address = address!("0x1111111111111111111111111111111111111111");
const USDC: Address = address!("0x2222222222222222222222222222222222222222");
const DAI: Address = address!("0x5555555555555555555555555555555555555555");
const POOL: Address = address!("0x3333333333333333333333333333333333333333");
const POOL2: Address = address!("0x6666666666666666666666666666666666666666");
const ROUTER: Address = address!("0x4444444444444444444444444444444444444444");
const V3_ROUTER: Address = address!("0x7777777777777777777777777777777777777777");
const V3_POOL: Address = address!("0x8888888888888888888888888888888888888888");
const WAIT: Duration = Duration::from_secs(10);
const GWEI: u128 = 1_000_000_000;

fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}
fn e6(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000u64)
}

fn trader() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap()
}
fn searcher() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x22)).unwrap()
}

fn tokens() -> Vec<TokenConfig> {
    vec![
        TokenConfig {
            symbol: "WETH".into(),
            address: WETH,
            decimals: 18,
            price: PriceSource::Instrument { symbol: "ETHUSDT".into() },
        },
        TokenConfig {
            symbol: "USDC".into(),
            address: USDC,
            decimals: 6,
            price: PriceSource::Fixed { fixed: 1.0 },
        },
        TokenConfig {
            symbol: "DAI".into(),
            address: DAI,
            decimals: 18,
            price: PriceSource::Fixed { fixed: 1.0 },
        },
    ]
}

fn dexes() -> Vec<DexConfig> {
    vec![
        DexConfig {
            name: "univ2".into(),
            kind: DexKind::UniswapV2,
            router: ROUTER,
            factory: None,
            via: Default::default(),
        },
        DexConfig {
            name: "univ3".into(),
            kind: DexKind::UniswapV3,
            router: V3_ROUTER,
            factory: None,
            via: Default::default(),
        },
    ]
}

fn pools() -> Vec<PoolConfig> {
    let p = |name: &str, dex: &str, address, t0: &str, t1: &str, fee| PoolConfig {
        name: name.into(),
        dex: dex.into(),
        address,
        token0: t0.into(),
        token1: t1.into(),
        fee: Some(fee),
        gas: None,
        tick_spacing: None,
        pool_id: None,
        flavour: None,
        hooks: None,
        curve_indices: None,
    };
    vec![
        p("weth-usdc", "univ2", POOL, "WETH", "USDC", 30),
        p("usdc-dai", "univ2", POOL2, "USDC", "DAI", 30),
        p("weth-usdc-v3", "univ3", V3_POOL, "WETH", "USDC", 500),
    ]
}

/// A `[sim]` section: zero volatility (reference stays at 3000) unless `vol`.
fn sim_config(block_ms: u64, arbitrage: bool, usdc_reserve: &str) -> SimConfig {
    let cfg = format!(
        r#"
        seed = 1
        block_ms = {block_ms}
        tick_ms = 50
        calm_vol = 0.0
        volatile_vol = 0.0
        volatile_drift = 0.0
        arbitrage = {arbitrage}
        symbols = [{{ symbol = "ETHUSDT", start = 3000.0, spread_bps = 1.0 }}]
        [[pools]]
        pool = "weth-usdc"
        reserve0 = "1000"
        reserve1 = "{usdc_reserve}"
        [[pools]]
        pool = "usdc-dai"
        reserve0 = "1000000"
        reserve1 = "1000000"
        [[accounts]]
        address = "{}"
        eth = "10"
        balances = {{ WETH = "10", USDC = "30000" }}
        "#,
        trader().address()
    );
    toml::from_str(&cfg).unwrap()
}

async fn start(block_ms: u64, arbitrage: bool) -> SimMarket {
    start_with(sim_config(block_ms, arbitrage, "3000000")).await
}

async fn start_with(cfg: SimConfig) -> SimMarket {
    SimMarket::start(cfg, tokens(), dexes(), pools(), CancellationToken::new()).await.unwrap()
}

/// Signs an EIP-1559 call from `signer`; returns the raw EIP-2718 bytes and the hash.
fn sign_call(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: Address,
    input: Vec<u8>,
    gas_limit: u64,
) -> (Bytes, B256) {
    let tx = TxEip1559 {
        chain_id: 31_337,
        nonce,
        gas_limit,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: TxKind::Call(to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: input.into(),
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    let env: TxEnvelope = tx.into_signed(sig).into();
    (env.encoded_2718().into(), *env.tx_hash())
}

fn approve(nonce: u64, amount: U256) -> (Bytes, B256) {
    sign_call(&trader(), nonce, WETH, IERC20::approveCall { spender: ROUTER, amount }.abi_encode(), 60_000)
}

fn swap(nonce: u64, amount_in: U256, min_out: U256, deadline: u64) -> (Bytes, B256) {
    let call = IUniswapV2Router02::swapExactTokensForTokensCall {
        amountIn: amount_in,
        amountOutMin: min_out,
        path: vec![WETH, USDC],
        to: trader().address(),
        deadline: U256::from(deadline),
    };
    sign_call(&trader(), nonce, ROUTER, call.abi_encode(), 150_000)
}

fn bundle_hash(hashes: &[B256]) -> B256 {
    keccak256(hashes.iter().flat_map(|h| h.0).collect::<Vec<u8>>())
}

async fn send_bundle(m: &SimMarket, txs: Vec<Bytes>, block: u64, reverting: Vec<B256>) -> B256 {
    let relay = ProviderBuilder::new().connect_http(m.relay_url().parse().unwrap());
    let bundle =
        EthSendBundle { txs, block_number: block, reverting_tx_hashes: reverting, ..Default::default() };
    relay.send_bundle(bundle).with_auth(searcher()).await.unwrap().unwrap().bundle_hash
}

/// Posts a raw JSON-RPC body to `url` with an optional `X-Flashbots-Signature`.
async fn post(url: &str, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut req =
        reqwest::Client::new().post(url).header("content-type", "application/json").body(body.to_owned());
    if let Some(s) = signature {
        req = req.header("X-Flashbots-Signature", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloy_provider_reads_the_node() {
    let m = start(100, false).await;
    let p = ProviderBuilder::new().connect_http(m.rpc_url().parse().unwrap());
    assert_eq!(p.get_chain_id().await.unwrap(), 31_337);
    m.wait_for_block(2, WAIT).await.unwrap();
    let n = p.get_block_number().await.unwrap();
    assert!(n >= 2);
    let block = p.get_block_by_number(BlockNumberOrTag::Number(n)).await.unwrap().unwrap();
    assert_eq!(block.header.number, n);
    assert!(block.header.base_fee_per_gas.unwrap() > 0);
    let parent = p.get_block_by_number(BlockNumberOrTag::Number(n - 1)).await.unwrap().unwrap();
    assert_eq!(block.header.parent_hash, parent.header.hash);
    assert!(block.header.timestamp >= parent.header.timestamp);
    let latest = p.get_block_by_number(BlockNumberOrTag::Latest).await.unwrap().unwrap();
    assert!(latest.header.number >= n);
    assert!(p.get_block_by_number(BlockNumberOrTag::Number(1_000_000)).await.unwrap().is_none());
    let by_hash = p.get_block_by_hash(block.header.hash).await.unwrap().unwrap();
    assert_eq!(by_hash.header.number, n);

    let me = trader().address();
    assert_eq!(p.get_transaction_count(me).await.unwrap(), 0);
    assert_eq!(p.get_balance(me).await.unwrap(), e18(10));

    let pair = IUniswapV2Pair::new(POOL, &p);
    let r = pair.getReserves().call().await.unwrap();
    assert_eq!(U256::from(r.reserve0), e18(1000));
    assert_eq!(U256::from(r.reserve1), e6(3_000_000));
    assert_eq!(pair.token0().call().await.unwrap(), WETH);
    assert_eq!(pair.token1().call().await.unwrap(), USDC);

    let weth = IERC20::new(WETH, &p);
    assert_eq!(weth.balanceOf(me).call().await.unwrap(), e18(10));
    assert_eq!(weth.balanceOf(POOL).call().await.unwrap(), e18(1000));
    assert_eq!(weth.decimals().call().await.unwrap(), 18);
    assert_eq!(IERC20::new(USDC, &p).balanceOf(me).call().await.unwrap(), e6(30_000));
    assert_eq!(weth.allowance(me, ROUTER).call().await.unwrap(), U256::ZERO);

    let router = IUniswapV2Router02::new(ROUTER, &p);
    let amounts = router.getAmountsOut(e18(1), vec![WETH, USDC, DAI]).call().await.unwrap();
    let hop1 = v2::get_amount_out(e18(1), e18(1000), e6(3_000_000), 30).unwrap();
    let hop2 = v2::get_amount_out(hop1, e6(1_000_000), e18(1_000_000), 30).unwrap();
    assert_eq!(amounts, vec![e18(1), hop1, hop2]);
    // A revert carries geth's error shape.
    let err = router.getAmountsOut(e18(1), vec![WETH, DAI]).call().await.unwrap_err();
    assert!(err.to_string().contains("no pair"), "{err}");

    // Gas estimates and fee history, as alloy's fillers use them.
    let approve_req = alloy::rpc::types::TransactionRequest::default()
        .from(me)
        .to(WETH)
        .input(IERC20::approveCall { spender: ROUTER, amount: e18(1) }.abi_encode().into());
    assert_eq!(p.estimate_gas(approve_req).await.unwrap(), 46_000);
    let swap_req = alloy::rpc::types::TransactionRequest::default().from(me).to(ROUTER).input(
        IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: e18(1),
            amountOutMin: U256::ZERO,
            path: vec![WETH, USDC],
            to: me,
            deadline: U256::from(u64::MAX),
        }
        .abi_encode()
        .into(),
    );
    let err = p.estimate_gas(swap_req).await.unwrap_err();
    assert!(err.to_string().contains("TRANSFER_FROM_FAILED"), "{err}");
    let fees = p.estimate_eip1559_fees().await.unwrap();
    assert!(fees.max_fee_per_gas > 0);
    let history = p.get_fee_history(2, BlockNumberOrTag::Latest, &[50.0]).await.unwrap();
    assert_eq!(history.base_fee_per_gas.len(), 3);

    // Unknown methods and batches, raw.
    let (_, v) = post(&m.rpc_url(), r#"{"jsonrpc":"2.0","id":7,"method":"eth_foo","params":[]}"#, None).await;
    assert_eq!(v["error"]["code"], -32601);
    assert_eq!(v["id"], 7);
    let (_, v) = post(
        &m.rpc_url(),
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]}]"#,
        None,
    )
    .await;
    assert_eq!(v[0]["result"], "0x7a69");
    assert!(v[1]["result"].as_str().unwrap().starts_with("0x"));
    let (_, v) = post(&m.rpc_url(), "{not json", None).await;
    assert_eq!(v["error"]["code"], -32700);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_bundle_lands_with_exact_v2_math() {
    let m = start(150, false).await;
    let p = ProviderBuilder::new().connect_http(m.rpc_url().parse().unwrap());
    let me = trader().address();
    let amount_in = e18(1);
    let out = v2::get_amount_out(amount_in, e18(1000), e6(3_000_000), 30).unwrap();
    let (raw1, h1) = approve(0, amount_in);
    let (raw2, h2) = swap(1, amount_in, out, m.head_timestamp() + 120);
    let target = m.head() + 2;
    let hash = send_bundle(&m, vec![raw1, raw2], target, vec![]).await;
    assert_eq!(hash, bundle_hash(&[h1, h2]));
    assert_eq!(m.bundle_status(hash), Some(BundleStatus::Pending { block: target }));
    m.wait_for_block(target, WAIT).await.unwrap();
    assert_eq!(m.bundle_status(hash), Some(BundleStatus::Landed { block: target }));

    assert_eq!(m.balance(me, WETH), e18(9));
    assert_eq!(m.balance(me, USDC), e6(30_000) + out);
    assert_eq!(m.reserves(POOL), Some((e18(1001), e6(3_000_000) - out)));
    assert_eq!(m.nonce(me), 2);
    assert_eq!(p.get_transaction_count(me).await.unwrap(), 2);
    // The allowance was used up exactly.
    assert_eq!(IERC20::new(WETH, &p).allowance(me, ROUTER).call().await.unwrap(), U256::ZERO);

    let block = p.get_block_by_number(BlockNumberOrTag::Number(target)).await.unwrap().unwrap();
    assert_eq!(block.transactions.hashes().collect::<Vec<_>>(), vec![h1, h2]);
    assert_eq!(block.header.gas_used, 46_000 + 98_000);
    let base = block.header.base_fee_per_gas.unwrap() as u128;
    let price = (10 * GWEI).min(base + GWEI);
    let r2 = p.get_transaction_receipt(h2).await.unwrap().unwrap();
    assert!(r2.status());
    assert_eq!(r2.gas_used, 98_000);
    assert_eq!(r2.effective_gas_price, price);
    assert_eq!(r2.block_number, Some(target));
    assert_eq!(r2.block_hash, Some(block.header.hash));
    assert_eq!(r2.transaction_index, Some(1));
    assert_eq!(r2.from, me);
    assert_eq!(r2.to, Some(ROUTER));
    assert_eq!(r2.inner.cumulative_gas_used(), 144_000);
    assert!(p.get_transaction_receipt(B256::repeat_byte(9)).await.unwrap().is_none());
    assert_eq!(m.eth_balance(me), e18(10) - U256::from(144_000u128 * price));
    let stats = m.stats();
    assert_eq!((stats.bundles_received, stats.bundles_landed, stats.bundles_failed), (1, 1, 0));
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked_and_bad_ones_apply_nothing() {
    let m = start(100, false).await;
    let me = trader().address();
    let (raw1, _) = approve(0, e18(1));
    let body = |block: u64| {
        json!({"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":[raw1],"blockNumber":format!("{block:#x}")}]})
            .to_string()
    };
    let target = m.head() + 3;
    let good = body(target);

    // Missing header.
    let (status, v) = post(&m.relay_url(), &good, None).await;
    assert_eq!(status, 403);
    assert!(v["error"]["message"].as_str().unwrap().contains("X-Flashbots-Signature"));
    // Signature over a different body.
    let other = sign_flashbots_payload(body(target + 1), &searcher()).await.unwrap();
    let (status, v) = post(&m.relay_url(), &good, Some(other)).await;
    assert_eq!(status, 403);
    assert!(v["error"]["message"].as_str().unwrap().contains("invalid"), "{v}");
    // Garbage.
    let (status, _) = post(&m.relay_url(), &good, Some("0xabc:0xdef".into())).await;
    assert_eq!(status, 403);
    let stats = m.stats();
    assert_eq!(stats.bundles_rejected.get("missing_signature"), Some(&1));
    assert_eq!(stats.bundles_rejected.get("bad_signature"), Some(&2));
    assert_eq!(stats.bundles_received, 0);

    m.wait_for_block(target + 1, WAIT).await.unwrap();
    assert_eq!(m.nonce(me), 0);
    assert_eq!(m.balance(me, WETH), e18(10));
    assert_eq!(m.eth_balance(me), e18(10));

    // The same body correctly signed, with v as 27/28 instead of 0/1: accepted.
    let target = m.head() + 2;
    let good = body(target);
    let header = sign_flashbots_payload(good.clone(), &searcher()).await.unwrap();
    let (addr, sig) = header.split_once(':').unwrap();
    let mut bytes = alloy::primitives::hex::decode(sig).unwrap();
    assert!(bytes[64] <= 1);
    bytes[64] += 27;
    let header27 = format!("{addr}:{}", alloy::primitives::hex::encode_prefixed(&bytes));
    let (status, v) = post(&m.relay_url(), &good, Some(header27)).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["result"]["bundleHash"].as_str().unwrap().starts_with("0x"));
    m.wait_for_block(target, WAIT).await.unwrap();
    assert_eq!(m.nonce(me), 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_second_tx_discards_the_whole_bundle_unless_allowed_to_revert() {
    let m = start(120, false).await;
    let p = ProviderBuilder::new().connect_http(m.rpc_url().parse().unwrap());
    let me = trader().address();
    let amount_in = e18(1);
    let out = v2::get_amount_out(amount_in, e18(1000), e6(3_000_000), 30).unwrap();
    let (raw1, h1) = approve(0, amount_in);
    let (raw2, h2) = swap(1, amount_in, out + U256::from(1u8), m.head_timestamp() + 120);

    // Without revertingTxHashes: nothing lands, not even the approval.
    let target = m.head() + 2;
    let hash = send_bundle(&m, vec![raw1.clone(), raw2.clone()], target, vec![]).await;
    m.wait_for_block(target, WAIT).await.unwrap();
    match m.bundle_status(hash) {
        Some(BundleStatus::Failed { block, reason }) => {
            assert_eq!(block, target);
            assert!(reason.contains("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"), "{reason}");
        }
        other => panic!("unexpected status {other:?}"),
    }
    assert_eq!(m.nonce(me), 0);
    assert_eq!(IERC20::new(WETH, &p).allowance(me, ROUTER).call().await.unwrap(), U256::ZERO);
    assert_eq!(m.eth_balance(me), e18(10));
    assert_eq!(m.reserves(POOL), Some((e18(1000), e6(3_000_000))));
    assert!(p.get_transaction_receipt(h1).await.unwrap().is_none());
    assert_eq!(m.stats().bundles_failed, 1);

    // With the swap's hash in revertingTxHashes: the approval lands, the swap is included reverted.
    let target = m.head() + 2;
    let hash = send_bundle(&m, vec![raw1, raw2], target, vec![h2]).await;
    m.wait_for_block(target, WAIT).await.unwrap();
    assert_eq!(m.bundle_status(hash), Some(BundleStatus::Landed { block: target }));
    assert_eq!(m.nonce(me), 2);
    assert_eq!(IERC20::new(WETH, &p).allowance(me, ROUTER).call().await.unwrap(), amount_in);
    assert_eq!(m.balance(me, WETH), e18(10));
    assert_eq!(m.reserves(POOL), Some((e18(1000), e6(3_000_000))));
    let r1 = p.get_transaction_receipt(h1).await.unwrap().unwrap();
    let r2 = p.get_transaction_receipt(h2).await.unwrap().unwrap();
    assert!(r1.status());
    assert!(!r2.status());
    assert_eq!(r2.gas_used, 98_000);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_past_bundles_are_rejected() {
    let m = start(100, false).await;
    m.wait_for_block(2, WAIT).await.unwrap();
    let relay = ProviderBuilder::new().connect_http(m.relay_url().parse().unwrap());
    let (raw1, _) = approve(0, e18(1));

    let past = EthSendBundle { txs: vec![raw1.clone()], block_number: m.head(), ..Default::default() };
    let err = relay.send_bundle(past).with_auth(searcher()).await.unwrap_err();
    assert!(err.to_string().contains("not after the head"), "{err}");

    let garbage = EthSendBundle {
        txs: vec![Bytes::from_static(b"\x02\x01")],
        block_number: m.head() + 5,
        ..Default::default()
    };
    let err = relay.send_bundle(garbage).with_auth(searcher()).await.unwrap_err();
    assert!(err.to_string().contains("txs[0]"), "{err}");

    // Signed for another chain.
    let mut tx = TxEip1559 {
        chain_id: 1,
        gas_limit: 60_000,
        max_fee_per_gas: GWEI,
        to: TxKind::Call(WETH),
        ..Default::default()
    };
    tx.input = IERC20::approveCall { spender: ROUTER, amount: U256::from(1u8) }.abi_encode().into();
    let sig = trader().sign_hash_sync(&tx.signature_hash()).unwrap();
    let env: TxEnvelope = tx.into_signed(sig).into();
    let wrong_chain = EthSendBundle {
        txs: vec![env.encoded_2718().into()],
        block_number: m.head() + 5,
        ..Default::default()
    };
    let err = relay.send_bundle(wrong_chain).with_auth(searcher()).await.unwrap_err();
    assert!(err.to_string().contains("chain id"), "{err}");

    let too_many =
        EthSendBundle { txs: vec![raw1.clone(); 101], block_number: m.head() + 5, ..Default::default() };
    let err = relay.send_bundle(too_many).with_auth(searcher()).await.unwrap_err();
    assert!(err.to_string().contains("at most 100"), "{err}");

    // Timestamps as JSON numbers and hex strings both parse.
    let body = json!({"jsonrpc":"2.0","id":3,"method":"eth_sendBundle","params":[{
        "txs":[raw1], "blockNumber": format!("{:#x}", m.head() + 5), "minTimestamp": 0, "maxTimestamp": "0xffffffffff",
        "revertingTxHashes": [], "replacementUuid": "a2b9c1d0-0000-4000-8000-000000000001", "builders": ["flashbots"]
    }]})
    .to_string();
    let sig = sign_flashbots_payload(body.clone(), &searcher()).await.unwrap();
    let (status, v) = post(&m.relay_url(), &body, Some(sig)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], 3);
    let bad = body.replace("\"0xffffffffff\"", "\"soon\"");
    let sig = sign_flashbots_payload(bad.clone(), &searcher()).await.unwrap();
    let (_, v) = post(&m.relay_url(), &bad, Some(sig)).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");

    let stats = m.stats();
    assert_eq!(stats.bundles_rejected.get("past_block"), Some(&1));
    assert_eq!(stats.bundles_rejected.get("bad_tx"), Some(&2));
    assert_eq!(stats.bundles_rejected.get("too_many_txs"), Some(&1));
    assert_eq!(stats.bundles_rejected.get("malformed"), Some(&1));
    assert_eq!(stats.bundles_received, 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_uuid_replaces_and_call_bundle_simulates() {
    let m = start(150, false).await;
    let relay = ProviderBuilder::new().connect_http(m.relay_url().parse().unwrap());
    let p = ProviderBuilder::new().connect_http(m.rpc_url().parse().unwrap());
    let me = trader().address();

    // eth_callBundle: results without landing.
    let (raw1, h1) = approve(0, e18(1));
    let (raw2, h2) = swap(1, e18(1), U256::ZERO, m.head_timestamp() + 120);
    let call = EthCallBundle {
        txs: vec![raw1.clone(), raw2.clone()],
        block_number: m.head() + 1,
        state_block_number: BlockNumberOrTag::Latest,
        ..Default::default()
    };
    let sim = relay.call_bundle(call).with_auth(searcher()).await.unwrap().unwrap();
    assert_eq!(sim.bundle_hash, bundle_hash(&[h1, h2]));
    assert_eq!(sim.results.len(), 2);
    assert_eq!(sim.results[0].gas_used, 46_000);
    assert_eq!(sim.results[1].gas_used, 98_000);
    assert_eq!(sim.results[1].from_address, me);
    assert_eq!(sim.results[1].to_address, Some(ROUTER));
    assert_eq!(sim.total_gas_used, 144_000);
    let out = v2::get_amount_out(e18(1), e18(1000), e6(3_000_000), 30).unwrap();
    let ret = IUniswapV2Router02::swapExactTokensForTokensCall::abi_decode_returns(
        sim.results[1].value.as_ref().unwrap(),
    )
    .unwrap();
    assert_eq!(ret, vec![e18(1), out]);
    assert_eq!(m.nonce(me), 0);

    // Two bundles with the same replacementUuid: only the newer one lands.
    let target = m.head() + 3;
    let uuid = "0c9a4f5e-1111-4222-8333-444455556666".to_owned();
    let mk = |raw: Bytes| EthSendBundle {
        txs: vec![raw],
        block_number: target,
        replacement_uuid: Some(uuid.clone()),
        ..Default::default()
    };
    let old = relay.send_bundle(mk(raw1)).with_auth(searcher()).await.unwrap().unwrap().bundle_hash;
    let (raw_new, _) = approve(0, e18(2));
    let new = relay.send_bundle(mk(raw_new)).with_auth(searcher()).await.unwrap().unwrap().bundle_hash;
    assert_eq!(m.bundle_status(old), Some(BundleStatus::Replaced));
    m.wait_for_block(target, WAIT).await.unwrap();
    assert_eq!(m.bundle_status(new), Some(BundleStatus::Landed { block: target }));
    assert_eq!(IERC20::new(WETH, &p).allowance(me, ROUTER).call().await.unwrap(), e18(2));
    assert_eq!(m.stats().bundles_replaced, 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_transactions_are_mined_and_expired_deadlines_revert() {
    let m = start(100, false).await;
    let p = ProviderBuilder::new().connect_http(m.rpc_url().parse().unwrap());
    let (raw1, h1) = approve(0, U256::MAX);
    // Deadline already passed.
    let (raw2, h2) = swap(1, e18(1), U256::ZERO, m.head_timestamp() - 1);
    let pending = p.send_raw_transaction(&raw1).await.unwrap();
    assert_eq!(*pending.tx_hash(), h1);
    let _ = p.send_raw_transaction(&raw2).await.unwrap();
    let err = p.send_raw_transaction(&raw1).await.unwrap_err();
    assert!(err.to_string().contains("already known"), "{err}");
    let head = m.head();
    m.wait_for_block(head + 2, WAIT).await.unwrap();
    let r1 = p.get_transaction_receipt(h1).await.unwrap().unwrap();
    let r2 = p.get_transaction_receipt(h2).await.unwrap().unwrap();
    assert!(r1.status() && !r2.status());
    let tx = p.get_transaction_by_hash(h2).await.unwrap().unwrap();
    assert_eq!(tx.block_number, r2.block_number);
    let stats = m.stats();
    assert_eq!((stats.public_txs, stats.public_txs_included), (2, 2));
    // An infinite allowance is not decremented.
    let (raw3, _) = swap(2, e18(1), U256::ZERO, m.head_timestamp() + 60);
    let _ = p.send_raw_transaction(&raw3).await.unwrap();
    m.wait_for_block(m.head() + 2, WAIT).await.unwrap();
    assert_eq!(m.balance(trader().address(), WETH), e18(9));
    assert_eq!(IERC20::new(WETH, &p).allowance(trader().address(), ROUTER).call().await.unwrap(), U256::MAX);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrage_pulls_a_displaced_pool_to_the_reference() {
    // The pool starts at 2700 USDC/WETH; the reference is 3000 (zero volatility).
    let m = start_with(sim_config(100, true, "2700000")).await;
    let reference = m.reference_price("ETHUSDT").unwrap();
    assert!((reference - 3000.0).abs() < 1e-6, "{reference}");
    m.wait_for_block(2, WAIT).await.unwrap();
    let (r0, r1) = m.reserves(POOL).unwrap();
    let mid = f64::from(r1) / 1e6 / (f64::from(r0) / 1e18);
    let gamma = 0.997;
    assert!(mid > 3000.0 * gamma * (1.0 - 1e-6) && mid < 3000.0 / gamma, "mid {mid}");
    assert!(m.stats().arbitrage_trades >= 1);
    // k grew (fees) and the arbitrageur bought WETH.
    assert!(r0 < e18(1000) && r1 > e6(2_700_000));
    assert!(r0 * r1 >= e18(1000) * e6(2_700_000));
    // Once in the band it stops trading.
    let trades = m.stats().arbitrage_trades;
    m.wait_for_block(m.head() + 2, WAIT).await.unwrap();
    assert_eq!(m.stats().arbitrage_trades, trades);
    let pools = m.pools();
    assert_eq!(pools[0].reserve0, m.reserves(POOL).unwrap().0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_are_clear() {
    let cancel = CancellationToken::new();
    let mut cfg = sim_config(100, true, "3000000");
    cfg.pools.push(toml::from_str("pool = \"weth-usdc-v3\"\nreserve0 = \"1\"\nreserve1 = \"1\"").unwrap());
    let err = SimMarket::start(cfg, tokens(), dexes(), pools(), cancel.clone()).await.unwrap_err();
    assert!(err.to_string().contains("only uniswap_v2"), "{err}");

    let mut cfg = sim_config(100, true, "3000000");
    cfg.pools[0].reserve0 = "1.0000000000000000001".into();
    let err = SimMarket::start(cfg, tokens(), dexes(), pools(), cancel.clone()).await.unwrap_err();
    assert!(err.to_string().contains("sim.pools[weth-usdc].reserve0"), "{err}");

    let mut cfg = sim_config(100, true, "3000000");
    cfg.symbols.clear();
    cfg.symbols.push(toml::from_str("symbol = \"BTCUSDT\"\nstart = 60000.0").unwrap());
    let err = SimMarket::start(cfg, tokens(), dexes(), pools(), cancel.clone()).await.unwrap_err();
    assert!(err.to_string().contains("ETHUSDT"), "{err}");

    let mut cfg = sim_config(100, true, "3000000");
    cfg.accounts[0].balances.insert("XYZ".into(), "1".into());
    let err = SimMarket::start(cfg, tokens(), dexes(), pools(), cancel).await.unwrap_err();
    assert!(err.to_string().contains("unknown token `XYZ`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_flows_move_funds_between_accounts_alternately_and_skip_when_short() {
    let (a, b) = (trader().address(), searcher().address());
    let mut cfg = sim_config(40, false, "3000000");
    cfg.flows.push(
        toml::from_str(&format!(
            "token = \"USDC\"\namount = \"1000\"\nbetween = [\"{a}\", \"{b}\"]\nevery_blocks = 2"
        ))
        .unwrap(),
    );
    // Neither account holds 100 WETH: this flow is always skipped.
    cfg.flows.push(
        toml::from_str(&format!(
            "token = \"WETH\"\namount = \"100\"\nbetween = [\"{b}\", \"{a}\"]\nevery_blocks = 2"
        ))
        .unwrap(),
    );
    let m = start_with(cfg).await;
    let t0 = std::time::Instant::now();
    loop {
        // A consistent read: no flow ran between the counter and the balances.
        let before = m.stats();
        let (ua, ub) = (m.balance(a, USDC), m.balance(b, USDC));
        let after = m.stats();
        if before.flows_applied == after.flows_applied && after.flows_applied >= 3 {
            let moves = after.flows_applied;
            // Odd moves: 1000 USDC sits with b; even: back with a. Nothing created or lost.
            let at_b = if moves % 2 == 1 { e6(1000) } else { U256::ZERO };
            assert_eq!((ua, ub), (e6(30_000) - at_b, at_b), "after {moves} moves");
            assert!(after.flows_skipped >= 1, "the WETH flow is skipped: {after:?}");
            assert_eq!(m.balance(a, WETH), e18(10), "a skipped flow moves nothing");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "flows did not run: {after:?}");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    m.shutdown().await;

    // Bad flows are named.
    let mut cfg = sim_config(100, true, "3000000");
    cfg.flows.push(
        toml::from_str(&format!(
            "token = \"USDC\"\namount = \"1\"\nbetween = [\"{a}\", \"{a}\"]\nevery_blocks = 1"
        ))
        .unwrap(),
    );
    let err = SimMarket::start(cfg, tokens(), dexes(), pools(), CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("sim.flows[0].between"), "{err}");
    let mut cfg = sim_config(100, true, "3000000");
    cfg.flows.push(
        toml::from_str(&format!(
            "token = \"USDC\"\namount = \"1\"\nbetween = [\"{a}\", \"{b}\"]\nevery_blocks = 0"
        ))
        .unwrap(),
    );
    let err = SimMarket::start(cfg, tokens(), dexes(), pools(), CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("sim.flows[0].every_blocks"), "{err}");
}

fn check_book_ticker(data: &Value, last_u: &mut u64) {
    let obj = data.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{data}");
    for k in ["u", "s", "b", "B", "a", "A"] {
        assert!(obj.contains_key(k), "{k} missing in {data}");
    }
    let u = data["u"].as_u64().unwrap();
    assert!(u > *last_u);
    *last_u = u;
    assert_eq!(data["s"], "ETHUSDT");
    for k in ["b", "B", "a", "A"] {
        let s = data[k].as_str().unwrap();
        let (int, frac) = s.split_once('.').unwrap();
        assert!(!int.is_empty() && int.bytes().all(|b| b.is_ascii_digit()), "{s}");
        assert_eq!(frac.len(), 8, "{s}");
        assert!(s.parse::<f64>().unwrap() > 0.0);
    }
    let (b, a): (f64, f64) =
        (data["b"].as_str().unwrap().parse().unwrap(), data["a"].as_str().unwrap().parse().unwrap());
    assert!(b < a && (2990.0..3010.0).contains(&b), "{b} {a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_binance_frames() {
    let m = start(200, false).await;
    let url = format!("{}/stream?streams=ethusdt@bookTicker", m.ws_url());
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let mut last_u = 0;
    for _ in 0..3 {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
        assert_eq!(v["stream"], "ethusdt@bookTicker");
        check_book_ticker(&v["data"], &mut last_u);
    }
    // Ping → Pong with the same payload.
    ws.send(Message::Ping(b"keel".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => return p,
                Some(Ok(_)) => continue,
                other => panic!("connection ended: {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"keel");
    assert!(m.stats().frames_sent >= 3);

    // Raw stream.
    let (mut raw, _) =
        tokio_tungstenite::connect_async(format!("{}/ws/ethusdt@bookTicker", m.ws_url())).await.unwrap();
    let msg = tokio::time::timeout(WAIT, raw.next()).await.unwrap().unwrap().unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    let mut u = 0;
    check_book_ticker(&v, &mut u);

    // Unknown stream: the handshake is refused.
    assert!(tokio_tungstenite::connect_async(format!("{}/ws/btcusdt@bookTicker", m.ws_url())).await.is_err());

    // Dropping connections ends both streams; a reconnect works.
    m.drop_ws_connections();
    for s in [&mut ws, &mut raw] {
        let ended = tokio::time::timeout(WAIT, async {
            loop {
                match s.next().await {
                    None | Some(Err(_)) => return true,
                    Some(Ok(Message::Close(_))) => return true,
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .unwrap();
        assert!(ended);
    }
    let (mut again, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let msg = tokio::time::timeout(WAIT, again.next()).await.unwrap().unwrap().unwrap();
    assert!(msg.is_text());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_replays_a_capture() {
    let path =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../feeds/tests/data/BINANCE.ws.1.0"));
    let mut cfg = sim_config(200, false, "3000000");
    cfg.replay = Some(path.to_owned());
    let m = start_with(cfg).await;
    let url = format!("{}/stream?streams=nknusdt@bookTicker", m.ws_url());
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v["stream"], "nknusdt@bookTicker");
    assert_eq!(v["data"]["s"], "NKNUSDT");
    assert!(m.reference_price("NKNUSDT").unwrap() > 0.0);
    m.shutdown().await;
}
