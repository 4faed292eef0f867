//! The harness's loopback relay: answers `eth_sendBundle` itself and stamps, with
//! [`mono_now_ns`], the moment each request reached it (its headers parsed by the HTTP server) — the
//! end of tick-to-wire. It then forwards the exact request (body and `X-Flashbots-Signature`) to
//! the simulated market's relay in the background, so bundles still land, without putting that hop
//! on the acknowledgement path.
//!
//! The arrival stamp is wire time plus loopback delivery plus the server's header parsing: an upper
//! bound of "bundle bytes written to the socket", which the HTTP client does not expose.

use std::net::SocketAddr;
use std::sync::Arc;

use alloy::primitives::{B256, keccak256};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keel_engine::clock::mono_now_ns;
use keel_router::bundle::FLASHBOTS_SIGNATURE_HEADER;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// One request as the relay saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// `X-Flashbots-Signature` value.
    pub signature_header: String,
    /// When the request's headers were parsed, [`mono_now_ns`].
    pub arrival_ns: u64,
}

#[derive(Debug)]
struct RelayState {
    arrivals: Mutex<Vec<Arrival>>,
    forward_to: Option<String>,
    http: reqwest::Client,
}

/// A running stamping relay.
#[derive(Debug)]
pub struct StampingRelay {
    addr: SocketAddr,
    state: Arc<RelayState>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl StampingRelay {
    /// Binds 127.0.0.1:0; forwards every accepted request to `forward_to` when given.
    pub async fn start(forward_to: Option<String>, cancel: CancellationToken) -> eyre::Result<StampingRelay> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(RelayState {
            arrivals: Mutex::new(Vec::new()),
            forward_to,
            http: reqwest::Client::builder().tcp_nodelay(true).build()?,
        });
        let app = axum::Router::new().route("/", axum::routing::post(handle)).with_state(Arc::clone(&state));
        let cancel = cancel.child_token();
        let c = cancel.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move { c.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "harness relay stopped");
            }
        });
        Ok(StampingRelay { addr, state, cancel, task })
    }

    /// URL to post bundles to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every arrival so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.lock().clone()
    }

    /// Stops the server.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

fn rpc_error(id: serde_json::Value, msg: &str) -> axum::response::Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": msg}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// keccak256 of the concatenated transaction hashes (a tx hash is keccak256 of its EIP-2718 bytes).
fn bundle_hash(txs: &[serde_json::Value]) -> Option<B256> {
    let mut cat = Vec::with_capacity(32 * txs.len());
    for tx in txs {
        let raw = alloy::primitives::hex::decode(tx.as_str()?).ok()?;
        cat.extend_from_slice(keccak256(&raw).as_slice());
    }
    Some(keccak256(&cat))
}

async fn handle(State(state): State<Arc<RelayState>>, req: Request) -> axum::response::Response {
    let arrival_ns = mono_now_ns();
    let header =
        req.headers().get(FLASHBOTS_SIGNATURE_HEADER).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let Ok(body) = axum::body::to_bytes(req.into_body(), 1 << 20).await else {
        return rpc_error(serde_json::Value::Null, "body too large");
    };
    let Some(header) = header else {
        return rpc_error(serde_json::Value::Null, "missing X-Flashbots-Signature");
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return rpc_error(serde_json::Value::Null, "malformed JSON");
    };
    let id = v.get("id").cloned().unwrap_or(serde_json::Value::Null);
    let txs = v.pointer("/params/0/txs").and_then(|t| t.as_array());
    let Some(hash) = txs.and_then(|t| bundle_hash(t)) else {
        return rpc_error(id, "params[0].txs: expected raw transactions");
    };
    state.arrivals.lock().push(Arrival { signature_header: header.clone(), arrival_ns });
    if let Some(url) = state.forward_to.clone() {
        let http = state.http.clone();
        tokio::spawn(async move {
            let r = http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(FLASHBOTS_SIGNATURE_HEADER, header)
                .body(body)
                .send()
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "forwarding a bundle to the simulated relay failed");
            }
        });
    }
    axum::Json(serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"bundleHash": hash}}))
        .into_response()
}
