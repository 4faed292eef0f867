//! A recording JSON-RPC proxy: forwards every HTTP request to a node and remembers the methods
//! called. Tests put it between Keel and anvil to prove what Keel does — and does not — send to the
//! node (Keel must never broadcast its own transactions: they go to relays only).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{AnvilError, Result};

#[derive(Debug)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    methods: Mutex<Vec<String>>,
}

/// A running proxy on 127.0.0.1.
#[derive(Debug)]
pub struct RpcRecorder {
    url: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl RpcRecorder {
    /// Binds a free port on 127.0.0.1 and forwards to `upstream` (an HTTP JSON-RPC URL).
    pub async fn start(upstream: &str) -> Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            http: reqwest::Client::new(),
            methods: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let cancel = CancellationToken::new();
        let app =
            axum::Router::new().route("/", axum::routing::post(forward)).with_state(Arc::clone(&shared));
        let stop = cancel.clone();
        tokio::spawn(async move {
            let serve =
                axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "rpc recorder stopped");
            }
        });
        Ok(Self { url, shared, cancel })
    }

    /// The proxy's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every JSON-RPC method called so far, in order (batches flattened).
    pub fn methods(&self) -> Vec<String> {
        self.shared.methods.lock().clone()
    }
}

impl Drop for RpcRecorder {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> (StatusCode, Bytes) {
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        let calls = match v {
            Value::Array(items) => items,
            one => vec![one],
        };
        let mut methods = shared.methods.lock();
        for c in calls {
            methods.push(c.get("method").and_then(Value::as_str).unwrap_or("<none>").to_string());
        }
    }
    let mut req = shared.http.post(&shared.upstream).body(body);
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        req = req.header(reqwest::header::CONTENT_TYPE, ct.as_bytes());
    }
    match req.send().await {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match resp.bytes().await {
                Ok(b) => (status, b),
                Err(e) => (StatusCode::BAD_GATEWAY, Bytes::from(AnvilError::rpc("recorder", e).to_string())),
            }
        }
        Err(e) => (StatusCode::BAD_GATEWAY, Bytes::from(AnvilError::rpc("recorder", e).to_string())),
    }
}
