//! The loopback Flashbots relay core: one HTTP JSON-RPC server (POST `/`) for every relay Keel
//! tests against, with the chain-specific part behind [`BundleBackend`].
//!
//! The core owns everything a relay does before and after the chain:
//!
//! 1. stamps the request's arrival ([`mono_now_ns`]) as soon as its headers are parsed;
//! 2. authenticates `X-Flashbots-Signature: <address>:<signature>`, the EIP-191 `personal_sign` of
//!    the string `0x` + hex(keccak256(body)), v as 0/1 or 27/28 (HTTP 403 otherwise);
//! 3. parses JSON-RPC 2.0 (a single request or a batch) and the bundle parameters exactly as
//!    Flashbots sends them ([`SendBundle`], [`CallBundle`]), enforces the limits
//!    ([`MAX_BUNDLE_TXS`], [`MAX_BUNDLE_BYTES`]) and computes the bundle hash with
//!    [`keel_router::bundle::bundle_hash`];
//! 4. hands the bundle to the backend and writes the JSON-RPC reply or error ([`RelayError`]).
//!
//! Three backends: the simulated market's chain (`market.rs`), the anvil lander
//! ([`crate::anvil::AnvilRelay`]) and the latency harness's stamping relay (in keel-bench).

mod error;
mod market;
mod request;

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use alloy::providers::ext::verify_flashbots_signature;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keel_engine::clock::mono_now_ns;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use self::error::RelayError;
pub use self::request::{CallBundle, SendBundle, StateBlock, check_limits};
pub use keel_router::bundle::{MAX_BUNDLE_BYTES, MAX_BUNDLE_TXS};

/// The authentication header (lower case, as HTTP/2 and axum's `HeaderMap` hold it).
pub const SIGNATURE_HEADER: &str = "x-flashbots-signature";
/// Largest request body read, bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What the core knows about an authenticated request, handed to the backend with each call.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The address that signed the body.
    pub signer: Address,
    /// The `X-Flashbots-Signature` value, as received.
    pub signature_header: String,
    /// The exact body bytes (for a backend that forwards the request).
    pub body: Bytes,
    /// When the request's headers were parsed, [`mono_now_ns`].
    pub arrival_ns: u64,
}

/// The chain behind a relay. The core calls it only for authenticated, well-formed requests,
/// one call per JSON-RPC request, in arrival order within a batch; calls of concurrent HTTP
/// requests may overlap, so a backend serialises what must be serial itself.
pub trait BundleBackend: Send + Sync + 'static {
    /// Whether the core verifies `X-Flashbots-Signature` (an ECDSA recovery, tens of µs of CPU).
    /// Every backend verifies except the latency harness's stamping relay, which shares the
    /// machine's cores with the pipeline it measures: it only checks that the header is present
    /// and names an address, so that the harness measures Keel rather than its own relay.
    const VERIFY_SIGNATURE: bool = true;

    /// `eth_sendBundle`: accept `bundle` (the core replies `{"bundleHash": bundle.hash}`) or refuse
    /// it. Sending the same bundle twice must not land it twice.
    fn on_send(
        &self,
        ctx: &RequestContext,
        bundle: SendBundle,
    ) -> impl Future<Output = Result<(), RelayError>> + Send;

    /// `eth_callBundle`: simulate `bundle` and return the result object. Must not change the chain.
    fn on_call(
        &self,
        ctx: &RequestContext,
        bundle: CallBundle,
    ) -> impl Future<Output = Result<Value, RelayError>> + Send {
        let _ = (ctx, bundle);
        async { Err(RelayError::MethodNotFound("eth_callBundle".to_owned())) }
    }

    /// `eth_cancelBundle`: drop the signer's pending bundles with `replacement_uuid`.
    fn on_cancel(&self, ctx: &RequestContext, replacement_uuid: &str) -> Result<(), RelayError> {
        let _ = (ctx, replacement_uuid);
        Err(RelayError::MethodNotFound("eth_cancelBundle".to_owned()))
    }

    /// Told of every refused signature and every refused `eth_sendBundle` (whether the core or
    /// [`BundleBackend::on_send`] refused it), for counters. Must not block.
    fn on_rejected(&self, error: &RelayError) {
        let _ = error;
    }
}

/// The axum router serving `backend` on POST `/`.
pub fn router<B: BundleBackend>(backend: Arc<B>) -> axum::Router {
    axum::Router::new().route("/", axum::routing::post(handle::<B>)).with_state(backend)
}

/// Serves `backend` on `listener` until `cancel`.
pub async fn serve<B: BundleBackend>(
    listener: TcpListener,
    backend: Arc<B>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(backend)).with_graceful_shutdown(cancel.cancelled_owned()).await
}

/// Verifies `X-Flashbots-Signature` over the exact body; returns the header and the signer.
pub fn authenticate(headers: &HeaderMap, body: &[u8]) -> Result<(String, Address), RelayError> {
    let value = signature_header(headers)?;
    let signer =
        verify_flashbots_signature(value, body).map_err(|e| RelayError::BadSignature(e.to_string()))?;
    Ok((value.to_owned(), signer))
}

/// The `X-Flashbots-Signature` value, trimmed.
fn signature_header(headers: &HeaderMap) -> Result<&str, RelayError> {
    let value = headers.get(SIGNATURE_HEADER).ok_or(RelayError::MissingSignature)?;
    Ok(value.to_str().map_err(|_| RelayError::BadSignature("the header is not ASCII".to_owned()))?.trim())
}

/// The header's claimed signer, unverified (see [`BundleBackend::VERIFY_SIGNATURE`]).
fn claimed(headers: &HeaderMap) -> Result<(String, Address), RelayError> {
    let value = signature_header(headers)?;
    let (addr, _) = value
        .split_once(':')
        .ok_or_else(|| RelayError::BadSignature("expected `address:signature`".to_owned()))?;
    let signer = addr.parse().map_err(|_| RelayError::BadSignature(format!("`{addr}` is not an address")))?;
    Ok((value.to_owned(), signer))
}

fn error_object(id: Value, e: &RelayError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": e.code(), "message": e.to_string() } })
}

fn error_reply(id: Value, e: &RelayError) -> Response {
    (e.http_status(), axum::Json(error_object(id, e))).into_response()
}

async fn handle<B: BundleBackend>(State(backend): State<Arc<B>>, req: Request) -> Response {
    let arrival_ns = mono_now_ns();
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return error_reply(Value::Null, &RelayError::InvalidRequest(format!("body unreadable: {e}")));
        }
    };
    let parsed = serde_json::from_slice::<Value>(&body);
    let auth =
        if B::VERIFY_SIGNATURE { authenticate(&parts.headers, &body) } else { claimed(&parts.headers) };
    let (signature_header, signer) = match auth {
        Ok(a) => a,
        Err(e) => {
            backend.on_rejected(&e);
            let id = parsed.ok().and_then(|v| v.get("id").cloned()).unwrap_or(Value::Null);
            return error_reply(id, &e);
        }
    };
    let parsed = match parsed {
        Ok(v) => v,
        Err(e) => return error_reply(Value::Null, &RelayError::Parse(e.to_string())),
    };
    let ctx = RequestContext { signer, signature_header, body, arrival_ns };
    match parsed {
        Value::Array(items) if items.is_empty() => {
            error_reply(Value::Null, &RelayError::InvalidRequest("empty batch".to_owned()))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in &items {
                out.push(one(&*backend, &ctx, item).await);
            }
            (StatusCode::OK, axum::Json(Value::Array(out))).into_response()
        }
        single => (StatusCode::OK, axum::Json(one(&*backend, &ctx, &single).await)).into_response(),
    }
}

/// Answers one JSON-RPC request object.
async fn one<B: BundleBackend>(backend: &B, ctx: &RequestContext, req: &Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    match dispatch(backend, ctx, req).await {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => error_object(id, &e),
    }
}

async fn dispatch<B: BundleBackend>(
    backend: &B,
    ctx: &RequestContext,
    req: &Value,
) -> Result<Value, RelayError> {
    let Some(obj) = req.as_object() else {
        return Err(RelayError::InvalidRequest("request must be an object".to_owned()));
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(RelayError::InvalidRequest("`jsonrpc` must be \"2.0\"".to_owned()));
    }
    let method = obj
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| RelayError::InvalidRequest("missing `method`".to_owned()))?;
    let empty = Value::Array(Vec::new());
    let params = obj.get("params").unwrap_or(&empty);
    match method {
        "eth_sendBundle" => {
            let sent = match SendBundle::parse(params) {
                Ok(bundle) => {
                    let hash: B256 = bundle.hash;
                    backend.on_send(ctx, bundle).await.map(|()| json!({ "bundleHash": hash }))
                }
                Err(e) => Err(e),
            };
            if let Err(e) = &sent {
                backend.on_rejected(e);
            }
            sent
        }
        "eth_callBundle" => backend.on_call(ctx, CallBundle::parse(params)?).await,
        "eth_cancelBundle" => {
            let obj = crate::jsonrpc::required(params, 0, "cancel request")?;
            let uuid = obj
                .get("replacementUuid")
                .and_then(Value::as_str)
                .ok_or_else(|| RelayError::Params("missing `replacementUuid`".to_owned()))?;
            backend.on_cancel(ctx, uuid).map(|()| Value::Null)
        }
        other => Err(RelayError::MethodNotFound(other.to_owned())),
    }
}
