//! JSON-RPC 2.0 framing shared by the node and the relay: single and batch requests, standard error
//! codes, and parameter helpers for Ethereum's hex quantities.

use alloy::primitives::{Address, B256, Bytes};
use serde_json::{Value, json};

/// Invalid JSON.
pub(crate) const PARSE_ERROR: i64 = -32700;
/// Not a valid request object.
pub(crate) const INVALID_REQUEST: i64 = -32600;
/// Unknown method.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters.
pub(crate) const INVALID_PARAMS: i64 = -32602;
/// Server-side failure of a valid request (e.g. a transaction the node refuses).
pub(crate) const SERVER_ERROR: i64 = -32000;
/// `eth_call` reverted (geth's code, with the revert data in `data`).
pub(crate) const EXECUTION_REVERTED: i64 = 3;

/// A JSON-RPC error object.
#[derive(Debug, Clone)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }
    pub(crate) fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
    fn to_json(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

/// Result of one method call.
pub(crate) type RpcResult = Result<Value, RpcError>;

/// An error response with a null id (for bodies that are not requests at all).
pub(crate) fn error_response(id: Value, err: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": err.to_json() })
}

/// Handles a request body (single object or batch) with `dispatch(method, params)`.
pub(crate) fn handle(body: &[u8], mut dispatch: impl FnMut(&str, &Value) -> RpcResult) -> Value {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(Value::Null, &RpcError::new(PARSE_ERROR, format!("parse error: {e}")));
        }
    };
    match parsed {
        Value::Array(items) if items.is_empty() => {
            error_response(Value::Null, &RpcError::new(INVALID_REQUEST, "empty batch"))
        }
        Value::Array(items) => Value::Array(items.iter().map(|r| one(r, &mut dispatch)).collect()),
        other => one(&other, &mut dispatch),
    }
}

fn one(req: &Value, dispatch: &mut impl FnMut(&str, &Value) -> RpcResult) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(obj) = req.as_object() else {
        return error_response(id, &RpcError::new(INVALID_REQUEST, "request must be an object"));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return error_response(id, &RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return error_response(id, &RpcError::new(INVALID_REQUEST, "missing `method`"));
    };
    let empty = Value::Array(Vec::new());
    let params = obj.get("params").unwrap_or(&empty);
    match dispatch(method, params) {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => error_response(id, &e),
    }
}

/// The `i`-th positional parameter.
pub(crate) fn param(params: &Value, i: usize) -> Option<&Value> {
    params.as_array().and_then(|a| a.get(i))
}

/// The `i`-th parameter, required.
pub(crate) fn required<'a>(params: &'a Value, i: usize, what: &str) -> Result<&'a Value, RpcError> {
    param(params, i)
        .filter(|v| !v.is_null())
        .ok_or_else(|| RpcError::params(format!("missing parameter {i} ({what})")))
}

/// Parses a hex quantity (`"0x1a"`) or, leniently, a JSON number.
pub(crate) fn quantity(v: &Value, what: &str) -> Result<u64, RpcError> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| RpcError::params(format!("{what}: {n} is not a u64"))),
        Value::String(s) => parse_hex_u64(s).map_err(|e| RpcError::params(format!("{what}: {e}"))),
        other => Err(RpcError::params(format!("{what}: expected a hex quantity, got {other}"))),
    }
}

/// Parses `"0x…"` into a u64 (no leading-zero strictness).
pub(crate) fn parse_hex_u64(s: &str) -> Result<u64, String> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| format!("`{s}` is not 0x-prefixed"))?;
    if h.is_empty() {
        return Err(format!("`{s}` has no digits"));
    }
    u64::from_str_radix(h, 16).map_err(|_| format!("`{s}` is not a hex u64"))
}

/// Formats a hex quantity.
pub(crate) fn hex_u64(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

/// Parses an address parameter.
pub(crate) fn address(v: &Value, what: &str) -> Result<Address, RpcError> {
    v.as_str()
        .and_then(|s| s.parse::<Address>().ok())
        .ok_or_else(|| RpcError::params(format!("{what}: expected a 20-byte hex address, got {v}")))
}

/// Parses a 32-byte hash parameter.
pub(crate) fn hash(v: &Value, what: &str) -> Result<B256, RpcError> {
    v.as_str()
        .and_then(|s| s.parse::<B256>().ok())
        .ok_or_else(|| RpcError::params(format!("{what}: expected a 32-byte hex hash, got {v}")))
}

/// Parses a hex data parameter.
pub(crate) fn data(v: &Value, what: &str) -> Result<Bytes, RpcError> {
    v.as_str()
        .and_then(|s| s.parse::<Bytes>().ok())
        .ok_or_else(|| RpcError::params(format!("{what}: expected 0x-prefixed hex data, got {v}")))
}

/// Serialises a value that cannot fail to serialise (alloy RPC types), mapping the impossible case to
/// an internal error instead of a panic.
pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> RpcResult {
    serde_json::to_value(v)
        .map_err(|e| RpcError::new(SERVER_ERROR, format!("internal serialisation error: {e}")))
}
