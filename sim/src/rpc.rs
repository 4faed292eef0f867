//! The Ethereum JSON-RPC node endpoint (HTTP POST `/`), answering in the exact formats of geth/anvil:
//! hex quantities, alloy's RPC types for blocks, transactions and receipts, ABI-encoded `eth_call`
//! results, and batch requests. State queries always answer from the latest state (the simulation
//! keeps no history of state), whatever block tag is passed.

use std::sync::Arc;

use alloy::{
    primitives::{Address, U256, hex},
    sol_types::{Revert, SolError},
};
use axum::{Json, Router, body::Bytes, extract::State, response::IntoResponse, routing::post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    Shared,
    chain::{CallError, ExecEnv, decode_signed_tx, estimate_gas},
    jsonrpc::{
        self, EXECUTION_REVERTED, METHOD_NOT_FOUND, RpcError, RpcResult, SERVER_ERROR, address, data, hash,
        hex_u64, param, required,
    },
};

/// Priority fee the node suggests (`eth_maxPriorityFeePerGas`), wei.
pub const SUGGESTED_PRIORITY_FEE_WEI: u64 = 1_000_000_000;

/// Largest request body the node accepts (a block's batched read of a large book: about 250 bytes
/// per read, 40,000 reads for 10,000 portfolios).
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// Serves the node on `listener` until `cancel`.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", post(handler))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(shared);
    axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await
}

async fn handler(State(shared): State<Arc<Shared>>, body: Bytes) -> impl IntoResponse {
    shared.rpc_counters.count(&body);
    Json(jsonrpc::handle(&body, |m, p| dispatch(&shared, m, p)))
}

/// A block parameter: a number, or `None` for a tag resolving to the head.
fn block_number(shared: &Shared, v: Option<&Value>) -> Result<u64, RpcError> {
    let head = shared.chain.lock().head();
    match v {
        None | Some(Value::Null) => Ok(head),
        Some(Value::String(s)) => match s.as_str() {
            "latest" | "pending" | "safe" | "finalized" => Ok(head),
            "earliest" => Ok(0),
            s => jsonrpc::parse_hex_u64(s).map_err(|e| RpcError::params(format!("block: {e}"))),
        },
        Some(Value::Object(o)) => match o.get("blockNumber") {
            Some(n) => jsonrpc::quantity(n, "blockNumber"),
            None => Err(RpcError::params("block: only {blockNumber} objects are supported")),
        },
        Some(other) => Err(RpcError::params(format!("block: expected a tag or hex number, got {other}"))),
    }
}

fn full_flag(params: &Value) -> Result<bool, RpcError> {
    match param(params, 1) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(RpcError::params(format!("full transactions flag: expected a bool, got {other}"))),
    }
}

fn dispatch(shared: &Shared, method: &str, params: &Value) -> RpcResult {
    match method {
        "eth_chainId" => Ok(hex_u64(shared.chain.lock().u.chain_id)),
        "net_version" => Ok(Value::String(shared.chain.lock().u.chain_id.to_string())),
        "web3_clientVersion" => Ok(json!(concat!("keel-sim/", env!("CARGO_PKG_VERSION")))),
        "eth_blockNumber" => Ok(hex_u64(shared.chain.lock().head())),
        "eth_gasPrice" => Ok(hex_u64(shared.chain.lock().next_base_fee() + SUGGESTED_PRIORITY_FEE_WEI)),
        "eth_maxPriorityFeePerGas" => Ok(hex_u64(SUGGESTED_PRIORITY_FEE_WEI)),
        "eth_getBlockByNumber" => {
            let n = block_number(shared, Some(required(params, 0, "block")?))?;
            let full = full_flag(params)?;
            let block = shared.chain.lock().rpc_block(n, full);
            jsonrpc::to_value(&block)
        }
        "eth_getBlockByHash" => {
            let h = hash(required(params, 0, "block hash")?, "block hash")?;
            let full = full_flag(params)?;
            let chain = shared.chain.lock();
            let block = chain.block_number_by_hash(&h).and_then(|n| chain.rpc_block(n, full));
            jsonrpc::to_value(&block)
        }
        "eth_getTransactionCount" => {
            let a = address(required(params, 0, "address")?, "address")?;
            block_number(shared, param(params, 1))?;
            Ok(hex_u64(shared.chain.lock().state.nonce_of(a)))
        }
        "eth_getBalance" => {
            let a = address(required(params, 0, "address")?, "address")?;
            block_number(shared, param(params, 1))?;
            jsonrpc::to_value(&shared.chain.lock().state.eth_of(a))
        }
        "eth_call" => {
            let call = required(params, 0, "call object")?;
            let to: Address = address(
                call.get("to").ok_or_else(|| RpcError::params("call object: missing `to`"))?,
                "call object `to`",
            )?;
            let input = match call.get("input").or_else(|| call.get("data")) {
                Some(Value::Null) | None => Default::default(),
                Some(v) => data(v, "call object `input`")?,
            };
            block_number(shared, param(params, 1))?;
            let chain = shared.chain.lock();
            match super::chain::call_view(&chain.u, &chain.state, to, &input) {
                Ok(out) => jsonrpc::to_value(&out),
                Err(CallError::Revert(reason)) => Err(RpcError {
                    code: EXECUTION_REVERTED,
                    message: format!("execution reverted: {reason}"),
                    data: Some(Value::String(hex::encode_prefixed(Revert::from(reason).abi_encode()))),
                }),
            }
        }
        "eth_estimateGas" => {
            let call = required(params, 0, "call object")?;
            let field = |k: &str| call.get(k).filter(|v| !v.is_null());
            let from =
                field("from").map(|v| address(v, "call object `from`")).transpose()?.unwrap_or_default();
            let to = field("to").map(|v| address(v, "call object `to`")).transpose()?;
            let value = match field("value") {
                Some(v) => serde_json::from_value::<U256>(v.clone())
                    .map_err(|e| RpcError::params(format!("call object `value`: {e}")))?,
                None => U256::ZERO,
            };
            let input = match field("input").or_else(|| field("data")) {
                Some(v) => data(v, "call object `input`")?,
                None => Default::default(),
            };
            let chain = shared.chain.lock();
            let env = ExecEnv {
                timestamp: super::unix_now_secs().max(chain.head_header().timestamp),
                base_fee: chain.next_base_fee(),
            };
            match estimate_gas(&chain.u, &chain.state, &env, from, to, value, &input) {
                Ok(gas) => Ok(hex_u64(gas)),
                Err(reason) => Err(RpcError {
                    code: EXECUTION_REVERTED,
                    message: format!("execution reverted: {reason}"),
                    data: Some(Value::String(hex::encode_prefixed(Revert::from(reason).abi_encode()))),
                }),
            }
        }
        "eth_feeHistory" => {
            let count = jsonrpc::quantity(required(params, 0, "block count")?, "block count")?;
            let newest = block_number(shared, Some(required(params, 1, "newest block")?))?;
            let percentiles: Vec<f64> = match param(params, 2) {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| RpcError::params(format!("reward percentiles: {e}")))?,
            };
            if percentiles.iter().any(|p| !(0.0..=100.0).contains(p))
                || percentiles.windows(2).any(|w| w[0] > w[1])
            {
                return Err(RpcError::params("reward percentiles must be increasing values in [0, 100]"));
            }
            if count == 0 {
                return Err(RpcError::params("block count must be > 0"));
            }
            let history = shared.chain.lock().fee_history(count, newest, &percentiles);
            jsonrpc::to_value(&history)
        }
        "eth_getTransactionReceipt" => {
            let h = hash(required(params, 0, "transaction hash")?, "transaction hash")?;
            let chain = shared.chain.lock();
            jsonrpc::to_value(&chain.receipt(&h))
        }
        "eth_getTransactionByHash" => {
            let h = hash(required(params, 0, "transaction hash")?, "transaction hash")?;
            let tx = shared.chain.lock().rpc_transaction(&h);
            jsonrpc::to_value(&tx)
        }
        "eth_sendRawTransaction" => {
            let raw = data(required(params, 0, "raw transaction")?, "raw transaction")?;
            let mut chain = shared.chain.lock();
            let tx = decode_signed_tx(&raw, chain.u.chain_id).map_err(|e| RpcError::new(SERVER_ERROR, e))?;
            let h = chain.submit_public(tx).map_err(|e| RpcError::new(SERVER_ERROR, e))?;
            jsonrpc::to_value(&h)
        }
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("the method {other} does not exist/is not available"),
        )),
    }
}
