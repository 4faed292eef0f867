//! A loopback Flashbots relay for anvil: `eth_sendBundle` and `eth_callBundle` over HTTP on 127.0.0.1.
//!
//! The relay owns block production: it turns anvil's automine off and mines a block every
//! [`RelayOptions::block_interval`] (and on demand through [`AnvilRelay::mine_block`]), so a bundle's
//! target block is well defined. Building block `N`:
//!
//! 1. the public transactions pending in anvil are remembered (raw bytes);
//! 2. each bundle targeting `N`, in arrival order, is simulated on top of the bundles already
//!    accepted for `N`: `evm_snapshot`, `eth_sendRawTransaction` of every transaction in order, `evm_mine`,
//!    receipts read, `evm_revert`, public transactions re-sent (a revert drops them from anvil's pool).
//!    It is accepted when every transaction mined and succeeded or is listed in `revertingTxHashes`,
//!    and the block timestamp is inside `[minTimestamp, maxTimestamp]`;
//! 3. the accepted bundles are sent in order and one block is mined. If that block does not reproduce
//!    the simulation it is reverted too and `N` is mined with public transactions only.
//!
//! So a bundle lands whole, in its target block, or not at all; a bundle whose target passed is
//! expired. anvil must order its pool first-in first-out (`--order fifo`, as [`super::AnvilChain`]
//! starts it) so that the transactions of a bundle execute in bundle order, after the public ones.
//!
//! Every request must carry `X-Flashbots-Signature: <address>:<sig>`, the EIP-191 signature of the
//! string `0x` + hex(keccak256(body)); v may be 0/1 or 27/28. Bundles are limited to 100
//! transactions and 300,000 bytes. `replacementUuid` replaces the earlier pending bundle with the
//! same id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::ext::verify_flashbots_signature;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::rpc::types::mev::{EthCallBundleResponse, EthCallBundleTransactionResult};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::error::{AnvilError, Result};

/// Default time between blocks the relay mines by itself.
pub const DEFAULT_BLOCK_INTERVAL: Duration = Duration::from_millis(1_000);
/// Most transactions in one bundle (Flashbots limit).
pub const MAX_BUNDLE_TXS: usize = 100;
/// Most bytes of raw transactions in one bundle (Flashbots limit).
pub const MAX_BUNDLE_BYTES: usize = 300_000;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-flashbots-signature";

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Mine a block this often; `None` mines only on [`AnvilRelay::mine_block`].
    pub block_interval: Option<Duration>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self { block_interval: Some(DEFAULT_BLOCK_INTERVAL) }
    }
}

/// Where a bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleStatus {
    /// Waiting for its target block.
    Pending {
        /// Target block.
        target: u64,
    },
    /// Included, whole, in `block`.
    Landed {
        /// The block.
        block: u64,
    },
    /// Simulated for its target block and refused; nothing of it is on chain.
    Failed {
        /// The target block.
        block: u64,
        /// Why.
        reason: String,
    },
    /// Its target block was built before it arrived, or it was replaced.
    Expired {
        /// Target block.
        target: u64,
    },
}

/// One bundle as the relay holds it.
#[derive(Debug, Clone)]
struct HeldBundle {
    hash: B256,
    txs: Vec<Bytes>,
    tx_hashes: Vec<B256>,
    target: u64,
    min_timestamp: Option<u64>,
    max_timestamp: Option<u64>,
    reverting: Vec<B256>,
    uuid: Option<String>,
}

/// What the relay has seen, for tests and reports.
#[derive(Debug, Default)]
struct Book {
    pending: Vec<HeldBundle>,
    status: HashMap<B256, BundleStatus>,
    signers: HashMap<B256, Address>,
    rejected_requests: u64,
}

#[derive(Debug)]
struct Shared {
    anvil: DynProvider,
    book: parking_lot::Mutex<Book>,
    /// Serialises everything that changes the chain.
    chain: Mutex<()>,
}

/// The loopback relay. Dropping it stops the server and the block timer (automine stays off; call
/// [`AnvilRelay::shutdown`] to turn it back on).
#[derive(Debug)]
pub struct AnvilRelay {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A `Quantity` that accepts a JSON number, a `0x` hex string or a decimal string.
#[derive(Debug, Clone, Copy)]
struct Quantity(u64);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64().map(Quantity).ok_or_else(|| D::Error::custom("not a u64")),
            Value::String(s) => {
                let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => s.parse(),
                };
                r.map(Quantity).map_err(|e| D::Error::custom(format!("bad quantity {s:?}: {e}")))
            }
            v => Err(D::Error::custom(format!("bad quantity {v}"))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendBundleParams {
    txs: Vec<Bytes>,
    block_number: Quantity,
    #[serde(default)]
    min_timestamp: Option<Quantity>,
    #[serde(default)]
    max_timestamp: Option<Quantity>,
    #[serde(default)]
    reverting_tx_hashes: Vec<B256>,
    #[serde(default)]
    replacement_uuid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallBundleParams {
    txs: Vec<Bytes>,
    #[serde(default)]
    block_number: Option<Quantity>,
    #[serde(default)]
    state_block_number: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RpcRequest {
    #[serde(default)]
    id: Value,
    method: String,
    #[serde(default)]
    params: Value,
}

/// A JSON-RPC error with its HTTP status.
#[derive(Debug)]
struct RpcError {
    http: StatusCode,
    code: i64,
    message: String,
}

impl RpcError {
    fn invalid(message: impl Into<String>) -> Self {
        Self { http: StatusCode::OK, code: -32602, message: message.into() }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self { http: StatusCode::OK, code: -32603, message: e.to_string() }
    }
}

fn tx_hashes(txs: &[Bytes]) -> core::result::Result<Vec<B256>, RpcError> {
    txs.iter()
        .enumerate()
        .map(|(i, raw)| {
            TxEnvelope::decode_2718(&mut raw.as_ref())
                .map(|tx| *tx.tx_hash())
                .map_err(|e| RpcError::invalid(format!("txs[{i}] is not a signed EIP-2718 transaction: {e}")))
        })
        .collect()
}

/// keccak256 of the concatenated transaction hashes.
pub fn bundle_hash(tx_hashes: &[B256]) -> B256 {
    let mut buf = Vec::with_capacity(32 * tx_hashes.len());
    for h in tx_hashes {
        buf.extend_from_slice(h.as_slice());
    }
    keccak256(buf)
}

fn check_limits(txs: &[Bytes]) -> core::result::Result<(), RpcError> {
    if txs.is_empty() {
        return Err(RpcError::invalid("bundle has no transactions"));
    }
    if txs.len() > MAX_BUNDLE_TXS {
        return Err(RpcError::invalid(format!(
            "bundle has {} transactions, at most {MAX_BUNDLE_TXS}",
            txs.len()
        )));
    }
    let bytes: usize = txs.iter().map(|t| t.len()).sum();
    if bytes > MAX_BUNDLE_BYTES {
        return Err(RpcError::invalid(format!("bundle has {bytes} bytes, at most {MAX_BUNDLE_BYTES}")));
    }
    Ok(())
}

fn one_param<T: serde::de::DeserializeOwned>(params: Value) -> core::result::Result<T, RpcError> {
    let first = match params {
        Value::Array(mut v) if !v.is_empty() => v.swap_remove(0),
        v @ Value::Object(_) => v,
        _ => return Err(RpcError::invalid("expected one bundle object in params")),
    };
    serde_json::from_value(first).map_err(|e| RpcError::invalid(format!("bad bundle: {e}")))
}

impl AnvilRelay {
    /// Starts the relay for the anvil at `anvil_http_url`: binds 127.0.0.1 on a free port, turns
    /// automine off and, when configured, starts the block timer.
    pub async fn start(anvil_http_url: &str, options: RelayOptions) -> Result<Self> {
        Self::start_on(anvil_http_url, options, 0).await
    }

    /// [`AnvilRelay::start`] on a given port of 127.0.0.1 (0: a free port).
    pub async fn start_on(anvil_http_url: &str, options: RelayOptions, port: u16) -> Result<Self> {
        let url = anvil_http_url.parse().map_err(|e| AnvilError::rpc("relay", format!("bad url: {e}")))?;
        let anvil = ProviderBuilder::new().disable_recommended_fillers().connect_http(url).erased();
        anvil
            .raw_request::<_, Value>("evm_setAutomine".into(), (false,))
            .await
            .map_err(|e| AnvilError::rpc("evm_setAutomine", e))?;
        let shared = Arc::new(Shared { anvil, book: Default::default(), chain: Mutex::new(()) });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let app = axum::Router::new().route("/", axum::routing::post(handle)).with_state(Arc::clone(&shared));
        let stop = cancel.clone();
        let server = tokio::spawn(async move {
            let serve =
                axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "anvil relay server stopped");
            }
        });
        let mut tasks = vec![server];
        if let Some(every) = options.block_interval {
            let shared = Arc::clone(&shared);
            let stop = cancel.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {
                            if let Err(e) = shared.build_block().await {
                                tracing::error!(error = %e, "anvil relay failed to build a block");
                            }
                        }
                    }
                }
            }));
        }
        Ok(Self { shared, addr, url: format!("http://{addr}"), cancel, tasks })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Builds and mines the next block now (with the bundles targeting it); returns its number.
    pub async fn mine_block(&self) -> Result<u64> {
        self.shared.build_block().await
    }

    /// Status of a bundle by its hash (as returned by `eth_sendBundle`).
    pub fn bundle_status(&self, hash: B256) -> Option<BundleStatus> {
        self.shared.book.lock().status.get(&hash).cloned()
    }

    /// The address that signed a bundle's request.
    pub fn bundle_signer(&self, hash: B256) -> Option<Address> {
        self.shared.book.lock().signers.get(&hash).copied()
    }

    /// Requests refused for a missing or bad signature.
    pub fn rejected_requests(&self) -> u64 {
        self.shared.book.lock().rejected_requests
    }

    /// Stops the server and the timer and turns anvil's automine back on.
    pub async fn shutdown(mut self) -> Result<()> {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let _guard = self.shared.chain.lock().await;
        self.shared
            .anvil
            .raw_request::<_, Value>("evm_setAutomine".into(), (true,))
            .await
            .map_err(|e| AnvilError::rpc("evm_setAutomine", e))?;
        Ok(())
    }
}

impl Drop for AnvilRelay {
    fn drop(&mut self) {
        self.cancel.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let reply = |id: Value, r: core::result::Result<Value, RpcError>| match r {
        Ok(result) => (StatusCode::OK, axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})))
            .into_response(),
        Err(e) => (
            e.http,
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})),
        )
            .into_response(),
    };
    let req: RpcRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let err = RpcError {
                http: StatusCode::BAD_REQUEST,
                code: -32700,
                message: format!("parse error: {e}"),
            };
            return reply(Value::Null, Err(err));
        }
    };
    let signer = match headers.get(SIGNATURE_HEADER).map(|v| v.to_str()) {
        None => Err("missing X-Flashbots-Signature header".to_string()),
        Some(Err(_)) => Err("X-Flashbots-Signature is not ASCII".to_string()),
        Some(Ok(h)) => {
            verify_flashbots_signature(h, &body).map_err(|e| format!("bad X-Flashbots-Signature: {e}"))
        }
    };
    let signer = match signer {
        Ok(s) => s,
        Err(message) => {
            shared.book.lock().rejected_requests += 1;
            return reply(req.id, Err(RpcError { http: StatusCode::FORBIDDEN, code: -32600, message }));
        }
    };
    let result = match req.method.as_str() {
        "eth_sendBundle" => shared.send_bundle(req.params, signer).await,
        "eth_callBundle" => shared.call_bundle(req.params).await,
        m => {
            Err(RpcError { http: StatusCode::OK, code: -32601, message: format!("method {m} not supported") })
        }
    };
    reply(req.id, result)
}

/// Result of sending a bundle's transactions and mining one block.
struct Mined {
    block: u64,
    timestamp: u64,
    base_fee: u128,
    miner: Address,
    receipts: Vec<Option<TransactionReceipt>>,
    send_errors: Vec<Option<String>>,
}

impl Shared {
    async fn head(&self) -> core::result::Result<u64, RpcError> {
        self.anvil.get_block_number().await.map_err(RpcError::internal)
    }

    async fn send_bundle(&self, params: Value, signer: Address) -> core::result::Result<Value, RpcError> {
        let p: SendBundleParams = one_param(params)?;
        check_limits(&p.txs)?;
        let tx_hashes = tx_hashes(&p.txs)?;
        let hash = bundle_hash(&tx_hashes);
        let head = self.head().await?;
        let bundle = HeldBundle {
            hash,
            txs: p.txs,
            tx_hashes,
            target: p.block_number.0,
            min_timestamp: p.min_timestamp.map(|q| q.0),
            max_timestamp: p.max_timestamp.map(|q| q.0),
            reverting: p.reverting_tx_hashes,
            uuid: p.replacement_uuid,
        };
        let mut book = self.book.lock();
        book.signers.insert(hash, signer);
        if bundle.target <= head {
            book.status.insert(hash, BundleStatus::Expired { target: bundle.target });
        } else {
            if let Some(uuid) = &bundle.uuid {
                let replaced: Vec<B256> =
                    book.pending.iter().filter(|b| b.uuid.as_ref() == Some(uuid)).map(|b| b.hash).collect();
                book.pending.retain(|b| b.uuid.as_ref() != Some(uuid));
                for h in replaced {
                    if h != hash {
                        let target = bundle.target;
                        book.status.insert(h, BundleStatus::Expired { target });
                    }
                }
            }
            book.status.insert(hash, BundleStatus::Pending { target: bundle.target });
            book.pending.retain(|b| b.hash != hash);
            book.pending.push(bundle);
        }
        Ok(json!({ "bundleHash": hash }))
    }

    async fn call_bundle(&self, params: Value) -> core::result::Result<Value, RpcError> {
        let p: CallBundleParams = one_param(params)?;
        check_limits(&p.txs)?;
        let hashes = tx_hashes(&p.txs)?;
        let _chain = self.chain.lock().await;
        let head = self.head().await?;
        match &p.state_block_number {
            None => {}
            Some(Value::String(s)) if s == "latest" || s == "pending" => {}
            Some(v) => {
                let n: Quantity =
                    serde_json::from_value(v.clone()).map_err(|e| RpcError::invalid(e.to_string()))?;
                if n.0 != head {
                    return Err(RpcError::invalid(format!(
                        "stateBlockNumber {} unavailable: the relay simulates on the head ({head})",
                        n.0
                    )));
                }
            }
        }
        if let Some(b) = p.block_number
            && b.0 != head + 1
        {
            tracing::debug!(block = b.0, head, "eth_callBundle for a block other than head + 1");
        }
        let public = self.public_pending().await.map_err(RpcError::internal)?;
        let snap = self.snapshot().await.map_err(RpcError::internal)?;
        let coinbase_before = self.coinbase_balance(None).await;
        let mined = self.send_and_mine(&p.txs).await;
        let coinbase_after = match &mined {
            Ok(m) => self.coinbase_balance(Some(m)).await,
            Err(_) => Ok(U256::ZERO),
        };
        self.restore(snap, &public).await.map_err(RpcError::internal)?;
        let mined = mined.map_err(RpcError::internal)?;
        let mut results = Vec::with_capacity(p.txs.len());
        let (mut total_gas, mut gas_fees, mut priority) = (0u64, U256::ZERO, U256::ZERO);
        for (i, (r, err)) in mined.receipts.iter().zip(&mined.send_errors).enumerate() {
            let Some(r) = r else {
                let why = err.clone().unwrap_or_else(|| "not included".into());
                return Err(RpcError::invalid(format!(
                    "txs[{i}] ({}) could not be executed: {why}",
                    hashes[i]
                )));
            };
            let price = U256::from(r.effective_gas_price);
            let fees = price * U256::from(r.gas_used);
            let tip =
                U256::from(r.effective_gas_price.saturating_sub(mined.base_fee)) * U256::from(r.gas_used);
            total_gas += r.gas_used;
            gas_fees += fees;
            priority += tip;
            results.push(EthCallBundleTransactionResult {
                coinbase_diff: tip,
                eth_sent_to_coinbase: U256::ZERO,
                from_address: r.from,
                gas_fees: fees,
                gas_price: price,
                gas_used: r.gas_used,
                to_address: r.to,
                tx_hash: r.transaction_hash,
                value: r.status().then(Bytes::new),
                revert: (!r.status()).then(Bytes::new),
            });
        }
        let coinbase_diff = match (coinbase_before, coinbase_after) {
            (Ok(b), Ok(a)) => a.saturating_sub(b),
            _ => priority,
        };
        let response = EthCallBundleResponse {
            bundle_hash: bundle_hash(&hashes),
            bundle_gas_price: if total_gas == 0 { U256::ZERO } else { coinbase_diff / U256::from(total_gas) },
            coinbase_diff,
            eth_sent_to_coinbase: coinbase_diff.saturating_sub(priority),
            gas_fees,
            results,
            state_block_number: head,
            total_gas_used: total_gas,
        };
        serde_json::to_value(response).map_err(RpcError::internal)
    }

    async fn snapshot(&self) -> Result<U256> {
        self.anvil
            .raw_request("evm_snapshot".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("evm_snapshot", e))
    }

    async fn coinbase_balance(&self, mined: Option<&Mined>) -> Result<U256> {
        let (miner, block) = match mined {
            Some(m) => (m.miner, Some(m.block)),
            None => {
                let b = self
                    .anvil
                    .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                    .await
                    .map_err(|e| AnvilError::rpc("eth_getBlockByNumber", e))?
                    .ok_or_else(|| AnvilError::rpc("eth_getBlockByNumber", "no latest block"))?;
                (b.header.beneficiary, None)
            }
        };
        let req = self.anvil.get_balance(miner);
        let req = match block {
            Some(n) => req.number(n),
            None => req,
        };
        req.await.map_err(|e| AnvilError::rpc("eth_getBalance", e))
    }

    /// Reverts to `snap` and puts the public pending transactions back into anvil's pool.
    async fn restore(&self, snap: U256, public: &[Bytes]) -> Result<()> {
        let ok: bool = self
            .anvil
            .raw_request("evm_revert".into(), (snap,))
            .await
            .map_err(|e| AnvilError::rpc("evm_revert", e))?;
        if !ok {
            return Err(AnvilError::rpc("evm_revert", format!("snapshot {snap} unknown")));
        }
        for raw in public {
            // Already pending (the revert kept it) is fine.
            let _ = self.anvil.send_raw_transaction(raw).await;
        }
        Ok(())
    }

    /// Raw bytes of the transactions pending in anvil's pool, in arrival order.
    async fn public_pending(&self) -> Result<Vec<Bytes>> {
        let content: Value = self
            .anvil
            .raw_request("txpool_content".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("txpool_content", e))?;
        let mut hashes = Vec::new();
        for section in ["pending", "queued"] {
            if let Some(by_sender) = content[section].as_object() {
                for by_nonce in by_sender.values() {
                    if let Some(txs) = by_nonce.as_object() {
                        let mut txs: Vec<(u64, &Value)> =
                            txs.iter().map(|(n, t)| (n.parse().unwrap_or(u64::MAX), t)).collect();
                        txs.sort_by_key(|(n, _)| *n);
                        hashes.extend(txs.iter().filter_map(|(_, t)| t["hash"].as_str().map(str::to_owned)));
                    }
                }
            }
        }
        let mut raws = Vec::with_capacity(hashes.len());
        for h in hashes {
            let raw: Option<Bytes> = self
                .anvil
                .raw_request("eth_getRawTransactionByHash".into(), (h,))
                .await
                .map_err(|e| AnvilError::rpc("eth_getRawTransactionByHash", e))?;
            raws.extend(raw);
        }
        Ok(raws)
    }

    /// Sends `txs` in order (send errors are recorded, not fatal), mines one block, reads receipts.
    async fn send_and_mine(&self, txs: &[Bytes]) -> Result<Mined> {
        let mut hashes = Vec::with_capacity(txs.len());
        let mut send_errors = Vec::with_capacity(txs.len());
        for raw in txs {
            let hash = TxEnvelope::decode_2718(&mut raw.as_ref()).map(|t| *t.tx_hash()).unwrap_or_default();
            hashes.push(hash);
            send_errors.push(self.anvil.send_raw_transaction(raw).await.err().map(|e| e.to_string()));
        }
        self.anvil
            .raw_request::<_, Value>("evm_mine".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("evm_mine", e))?;
        let block = self
            .anvil
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| AnvilError::rpc("eth_getBlockByNumber", e))?
            .ok_or_else(|| AnvilError::rpc("eth_getBlockByNumber", "no latest block"))?;
        let mut receipts = Vec::with_capacity(hashes.len());
        for h in &hashes {
            let r = self
                .anvil
                .get_transaction_receipt(*h)
                .await
                .map_err(|e| AnvilError::rpc("eth_getTransactionReceipt", e))?;
            // Only a receipt in this very block counts.
            receipts.push(r.filter(|r| r.block_number == Some(block.header.number)));
        }
        Ok(Mined {
            block: block.header.number,
            timestamp: block.header.timestamp,
            base_fee: block.header.base_fee_per_gas.unwrap_or(0) as u128,
            miner: block.header.beneficiary,
            receipts,
            send_errors,
        })
    }

    /// Why `bundle`'s part of a mined block is unacceptable, if it is.
    fn verdict(bundle: &HeldBundle, mined: &Mined, offset: usize) -> Option<String> {
        if let Some(min) = bundle.min_timestamp
            && mined.timestamp < min
        {
            return Some(format!("block timestamp {} before minTimestamp {min}", mined.timestamp));
        }
        if let Some(max) = bundle.max_timestamp
            && mined.timestamp > max
        {
            return Some(format!("block timestamp {} after maxTimestamp {max}", mined.timestamp));
        }
        for (i, h) in bundle.tx_hashes.iter().enumerate() {
            match &mined.receipts[offset + i] {
                None => {
                    let why = mined.send_errors[offset + i].clone().unwrap_or_else(|| "not included".into());
                    return Some(format!("tx {i} ({h}) not included: {why}"));
                }
                Some(r) if !r.status() && !bundle.reverting.contains(h) => {
                    return Some(format!("tx {i} ({h}) reverted"));
                }
                Some(_) => {}
            }
        }
        None
    }

    /// Builds the next block: simulates each due bundle, lands the accepted ones, mines.
    async fn build_block(&self) -> Result<u64> {
        let _chain = self.chain.lock().await;
        let head = self.anvil.get_block_number().await.map_err(|e| AnvilError::rpc("eth_blockNumber", e))?;
        let target = head + 1;
        let due: Vec<HeldBundle> = {
            let mut book = self.book.lock();
            let (due, keep): (Vec<_>, Vec<_>) = book.pending.drain(..).partition(|b| b.target <= target);
            book.pending = keep;
            for b in due.iter().filter(|b| b.target < target) {
                book.status.insert(b.hash, BundleStatus::Expired { target: b.target });
            }
            due.into_iter().filter(|b| b.target == target).collect()
        };
        let mut accepted: Vec<HeldBundle> = Vec::new();
        if !due.is_empty() {
            let public = self.public_pending().await?;
            for bundle in due {
                let mut txs: Vec<Bytes> = accepted.iter().flat_map(|b| b.txs.iter().cloned()).collect();
                let offset = txs.len();
                txs.extend(bundle.txs.iter().cloned());
                let snap = self.snapshot().await?;
                let mined = self.send_and_mine(&txs).await;
                self.restore(snap, &public).await?;
                let mined = mined?;
                let earlier_ok = {
                    let mut off = 0;
                    accepted.iter().all(|b| {
                        let ok = Self::verdict(b, &mined, off).is_none();
                        off += b.txs.len();
                        ok
                    })
                };
                match Self::verdict(&bundle, &mined, offset) {
                    None if earlier_ok => accepted.push(bundle),
                    None => {
                        let reason = "conflicts with a bundle accepted earlier for the block".to_string();
                        self.book
                            .lock()
                            .status
                            .insert(bundle.hash, BundleStatus::Failed { block: target, reason });
                    }
                    Some(reason) => {
                        tracing::debug!(bundle = %bundle.hash, %reason, "bundle refused");
                        self.book
                            .lock()
                            .status
                            .insert(bundle.hash, BundleStatus::Failed { block: target, reason });
                    }
                }
            }
            if !accepted.is_empty() {
                let txs: Vec<Bytes> = accepted.iter().flat_map(|b| b.txs.iter().cloned()).collect();
                let snap = self.snapshot().await?;
                let mined = self.send_and_mine(&txs).await?;
                let mut off = 0;
                let mut all_ok = true;
                for b in &accepted {
                    all_ok &= Self::verdict(b, &mined, off).is_none();
                    off += b.txs.len();
                }
                let mut book = self.book.lock();
                if all_ok && mined.block == target {
                    for b in &accepted {
                        book.status.insert(b.hash, BundleStatus::Landed { block: target });
                    }
                    return Ok(target);
                }
                drop(book);
                self.restore(snap, &public).await?;
                let mut book = self.book.lock();
                for b in &accepted {
                    let reason = "block did not reproduce the simulation".to_string();
                    book.status.insert(b.hash, BundleStatus::Failed { block: target, reason });
                }
            }
        }
        self.anvil
            .raw_request::<_, Value>("evm_mine".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("evm_mine", e))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_accepts_number_hex_and_decimal() {
        let q: Quantity = serde_json::from_value(json!(17)).unwrap();
        assert_eq!(q.0, 17);
        let q: Quantity = serde_json::from_value(json!("0x11")).unwrap();
        assert_eq!(q.0, 17);
        let q: Quantity = serde_json::from_value(json!("17")).unwrap();
        assert_eq!(q.0, 17);
        assert!(serde_json::from_value::<Quantity>(json!("0xzz")).is_err());
    }

    #[test]
    fn bundle_params_parse_both_timestamp_forms() {
        let p: SendBundleParams = one_param(json!([{
            "txs": ["0x01"], "blockNumber": "0x10", "minTimestamp": 5, "maxTimestamp": "0x20",
            "revertingTxHashes": [], "replacementUuid": "u"
        }]))
        .unwrap();
        assert_eq!((p.block_number.0, p.min_timestamp.unwrap().0, p.max_timestamp.unwrap().0), (16, 5, 32));
        assert!(check_limits(&[]).is_err());
        assert!(check_limits(&vec![Bytes::from(vec![0u8; 10]); MAX_BUNDLE_TXS + 1]).is_err());
    }

    #[test]
    fn bundle_hash_is_keccak_of_concatenated_hashes() {
        let a = B256::repeat_byte(1);
        let b = B256::repeat_byte(2);
        let mut cat = a.to_vec();
        cat.extend_from_slice(b.as_slice());
        assert_eq!(bundle_hash(&[a, b]), keccak256(cat));
    }
}
