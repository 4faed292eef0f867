//! The bundle relay (HTTP POST `/`, Flashbots protocol): `eth_sendBundle`, `eth_callBundle` and
//! `eth_cancelBundle`, authenticated by `X-Flashbots-Signature: <address>:<signature>` (EIP-191
//! personal_sign of the string `0x` + hex of keccak256(body); v of 0/1 or 27/28).
//!
//! Requests without a valid signature get HTTP 403 and a JSON-RPC error; malformed bundles get a
//! JSON-RPC error naming the problem, and every rejection is counted by reason. Accepted bundles wait
//! in the chain for their target block (see [`super::chain`]).

use std::{collections::HashSet, sync::Arc};

use alloy::{
    consensus::Transaction,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::ext::verify_flashbots_signature,
    rpc::types::mev::{EthCallBundleResponse, EthCallBundleTransactionResult},
    sol_types::{Revert, SolError},
};
use axum::{
    Json, Router,
    body::Bytes as Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    Shared,
    chain::{Chain, ExecEnv, PendingBundle, decode_signed_tx, execute},
    jsonrpc::{self, INVALID_REQUEST, METHOD_NOT_FOUND, RpcError, RpcResult, SERVER_ERROR, required},
    unix_now_secs,
};

/// Most transactions a bundle may carry.
pub const MAX_BUNDLE_TXS: usize = 100;
/// Most bytes (sum of the raw transactions) a bundle may carry.
pub const MAX_BUNDLE_BYTES: usize = 300_000;
/// The authentication header.
pub const SIGNATURE_HEADER: &str = "x-flashbots-signature";

/// Serves the relay on `listener` until `cancel`.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new().route("/", post(handler)).with_state(shared);
    axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await
}

async fn handler(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let signer = match authenticate(&headers, &body) {
        Ok(a) => a,
        Err((reason, message)) => {
            shared.chain.lock().count_rejected(reason);
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or(Value::Null);
            let body = jsonrpc::error_response(id, &RpcError::new(INVALID_REQUEST, message));
            return (StatusCode::FORBIDDEN, Json(body)).into_response();
        }
    };
    Json(jsonrpc::handle(&body, |m, p| dispatch(&shared, signer, m, p))).into_response()
}

/// Verifies `X-Flashbots-Signature` over the exact body; returns the signer.
fn authenticate(headers: &HeaderMap, body: &[u8]) -> Result<Address, (&'static str, String)> {
    let Some(value) = headers.get(SIGNATURE_HEADER) else {
        return Err(("missing_signature", "missing X-Flashbots-Signature header".to_owned()));
    };
    let value = value
        .to_str()
        .map_err(|_| ("bad_signature", "X-Flashbots-Signature is not ASCII".to_owned()))?
        .trim();
    verify_flashbots_signature(value, body)
        .map_err(|e| ("bad_signature", format!("invalid X-Flashbots-Signature: {e}")))
}

fn dispatch(shared: &Shared, signer: Address, method: &str, params: &Value) -> RpcResult {
    match method {
        "eth_sendBundle" => send_bundle(shared, signer, params),
        "eth_callBundle" => call_bundle(shared, params),
        "eth_cancelBundle" => {
            let obj = required(params, 0, "cancel request")?;
            let uuid = obj
                .get("replacementUuid")
                .and_then(Value::as_str)
                .ok_or_else(|| RpcError::params("missing `replacementUuid`"))?;
            shared.chain.lock().cancel_bundle(signer, uuid);
            Ok(Value::Null)
        }
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("the method {other} does not exist/is not available"),
        )),
    }
}

/// A bundle request's fields, parsed leniently where relays are (timestamps as numbers or hex).
struct BundleRequest {
    txs: Vec<Bytes>,
    block_number: u64,
    min_timestamp: Option<u64>,
    max_timestamp: Option<u64>,
    reverting: Vec<B256>,
    replacement_uuid: Option<String>,
}

fn opt_quantity(obj: &Value, key: &str) -> Result<Option<u64>, RpcError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => jsonrpc::quantity(v, key).map(Some),
    }
}

fn parse_txs(obj: &Value) -> Result<Vec<Bytes>, RpcError> {
    let txs =
        obj.get("txs").and_then(Value::as_array).ok_or_else(|| RpcError::params("missing `txs` array"))?;
    if txs.is_empty() {
        return Err(RpcError::params("`txs` is empty"));
    }
    txs.iter().enumerate().map(|(i, t)| jsonrpc::data(t, &format!("txs[{i}]"))).collect()
}

fn parse_bundle(params: &Value) -> Result<BundleRequest, RpcError> {
    let obj = required(params, 0, "bundle")?;
    if !obj.is_object() {
        return Err(RpcError::params("bundle must be an object"));
    }
    let txs = parse_txs(obj)?;
    let block_number = jsonrpc::quantity(
        obj.get("blockNumber").ok_or_else(|| RpcError::params("missing `blockNumber`"))?,
        "blockNumber",
    )?;
    let min_timestamp = opt_quantity(obj, "minTimestamp")?;
    let max_timestamp = opt_quantity(obj, "maxTimestamp")?;
    let reverting = match obj.get("revertingTxHashes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, h)| jsonrpc::hash(h, &format!("revertingTxHashes[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(RpcError::params(format!("revertingTxHashes: expected an array, got {other}")));
        }
    };
    let replacement_uuid = match obj.get("replacementUuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(other) => {
            return Err(RpcError::params(format!(
                "replacementUuid: expected a non-empty string, got {other}"
            )));
        }
    };
    match obj.get("builders") {
        None | Some(Value::Null) | Some(Value::Array(_)) => {}
        Some(other) => return Err(RpcError::params(format!("builders: expected an array, got {other}"))),
    }
    if let (Some(lo), Some(hi)) = (min_timestamp, max_timestamp)
        && lo > hi
    {
        return Err(RpcError::params(format!("minTimestamp {lo} is after maxTimestamp {hi}")));
    }
    Ok(BundleRequest { txs, block_number, min_timestamp, max_timestamp, reverting, replacement_uuid })
}

/// The bundle hash: keccak256 of the concatenated transaction hashes.
fn bundle_hash(hashes: impl IntoIterator<Item = B256>) -> B256 {
    let mut buf = Vec::new();
    for h in hashes {
        buf.extend_from_slice(h.as_slice());
    }
    keccak256(buf)
}

fn reject(chain: &mut Chain, reason: &'static str, message: String) -> RpcError {
    chain.count_rejected(reason);
    RpcError::new(INVALID_REQUEST, message)
}

fn send_bundle(shared: &Shared, signer: Address, params: &Value) -> RpcResult {
    let req = match parse_bundle(params) {
        Ok(r) => r,
        Err(e) => {
            shared.chain.lock().count_rejected("malformed");
            return Err(e);
        }
    };
    let chain_id = shared.chain.lock().u.chain_id;
    let bytes: usize = req.txs.iter().map(|t| t.len()).sum();
    if req.txs.len() > MAX_BUNDLE_TXS {
        let msg = format!("bundle has {} transactions; at most {MAX_BUNDLE_TXS}", req.txs.len());
        return Err(reject(&mut shared.chain.lock(), "too_many_txs", msg));
    }
    if bytes > MAX_BUNDLE_BYTES {
        let msg = format!("bundle has {bytes} bytes of transactions; at most {MAX_BUNDLE_BYTES}");
        return Err(reject(&mut shared.chain.lock(), "too_large", msg));
    }
    // Decode and recover outside the chain lock (signature recovery is the expensive part).
    let mut txs = Vec::with_capacity(req.txs.len());
    for (i, raw) in req.txs.iter().enumerate() {
        match decode_signed_tx(raw, chain_id) {
            Ok(t) => txs.push(t),
            Err(e) => return Err(reject(&mut shared.chain.lock(), "bad_tx", format!("txs[{i}]: {e}"))),
        }
    }
    let hashes: Vec<B256> = txs.iter().map(|t| *t.inner().tx_hash()).collect();
    let unique: HashSet<&B256> = hashes.iter().collect();
    if unique.len() != hashes.len() {
        return Err(reject(&mut shared.chain.lock(), "malformed", "bundle repeats a transaction".to_owned()));
    }
    let hash = bundle_hash(hashes);
    let bundle = PendingBundle {
        hash,
        block: req.block_number,
        min_timestamp: req.min_timestamp,
        max_timestamp: req.max_timestamp,
        txs,
        reverting: req.reverting.into_iter().collect(),
        uuid: req.replacement_uuid.map(|u| (signer, u)),
    };
    let mut chain = shared.chain.lock();
    match chain.submit_bundle(bundle) {
        Ok(()) => Ok(json!({ "bundleHash": hash })),
        Err((reason, message)) => Err(reject(&mut chain, reason, message)),
    }
}

fn call_bundle(shared: &Shared, params: &Value) -> RpcResult {
    let obj = required(params, 0, "bundle")?;
    let raw = parse_txs(obj)?;
    let block_number = jsonrpc::quantity(
        obj.get("blockNumber").ok_or_else(|| RpcError::params("missing `blockNumber`"))?,
        "blockNumber",
    )?;
    let timestamp = opt_quantity(obj, "timestamp")?;
    let head_now = shared.chain.lock().head();
    if block_number <= head_now {
        return Err(RpcError::params(format!(
            "blockNumber {block_number} is not after the head block {head_now}"
        )));
    }
    let chain_id = shared.chain.lock().u.chain_id;
    let txs = raw
        .iter()
        .enumerate()
        .map(|(i, r)| decode_signed_tx(r, chain_id).map_err(|e| RpcError::params(format!("txs[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;

    let chain = shared.chain.lock();
    let head = chain.head();
    let state_block = match obj.get("stateBlockNumber") {
        None | Some(Value::Null) => head,
        Some(Value::String(s)) if s == "latest" || s == "pending" => head,
        Some(v) => jsonrpc::quantity(v, "stateBlockNumber")?,
    };
    if state_block != head {
        return Err(RpcError::new(
            SERVER_ERROR,
            format!("state of block {state_block} is not available; only the head ({head}) is kept"),
        ));
    }
    let env = ExecEnv {
        timestamp: timestamp.unwrap_or_else(|| unix_now_secs().max(chain.head_header().timestamp)),
        base_fee: chain.next_base_fee(),
    };
    let mut scratch = chain.state.clone();
    let mut results = Vec::with_capacity(txs.len());
    let mut errors = Vec::with_capacity(txs.len());
    let (mut total_gas, mut gas_fees, mut coinbase_diff) = (0u64, U256::ZERO, U256::ZERO);
    for (i, tx) in txs.iter().enumerate() {
        let e = execute(&chain.u, &mut scratch, &env, tx).map_err(|e| {
            RpcError::new(SERVER_ERROR, format!("txs[{i}] ({}) is invalid: {e}", tx.inner().tx_hash()))
        })?;
        let tip = U256::from(e.gas_used) * U256::from(e.effective_gas_price - env.base_fee as u128);
        total_gas += e.gas_used;
        gas_fees += e.fees();
        coinbase_diff += tip;
        errors.push(e.revert.as_ref().map(|r| format!("execution reverted: {r}")));
        results.push(EthCallBundleTransactionResult {
            coinbase_diff: tip,
            eth_sent_to_coinbase: U256::ZERO,
            from_address: tx.signer(),
            gas_fees: e.fees(),
            gas_price: U256::from(e.effective_gas_price),
            gas_used: e.gas_used,
            to_address: tx.inner().to(),
            tx_hash: e.hash(),
            value: e.success.then(|| e.output.clone()),
            revert: e.revert.as_ref().map(|r| Revert::from(r.clone()).abi_encode().into()),
        });
    }
    let response = EthCallBundleResponse {
        bundle_hash: bundle_hash(txs.iter().map(|t| *t.inner().tx_hash())),
        bundle_gas_price: if total_gas == 0 { U256::ZERO } else { coinbase_diff / U256::from(total_gas) },
        coinbase_diff,
        eth_sent_to_coinbase: U256::ZERO,
        gas_fees,
        results,
        state_block_number: state_block,
        total_gas_used: total_gas,
    };
    let mut v = jsonrpc::to_value(&response)?;
    if let Some(rs) = v.get_mut("results").and_then(Value::as_array_mut) {
        for (r, err) in rs.iter_mut().zip(errors) {
            if let Some(err) = err {
                r["error"] = Value::String(err);
            }
        }
    }
    Ok(v)
}
