//! The control endpoint, on 127.0.0.1 only: `POST /kill`, `POST /resume` and `GET /status` for the
//! operator, each requiring `Authorization: Bearer <token>` (a missing or wrong token gets 401, is
//! logged and counted in `keel_control_unauthorized_total`), and `GET /metrics` (Prometheus text,
//! read-only counters, open so a scraper needs no secret). `GET /status` answers the kill switch's
//! state and each chain's ([`Status`]).
//!
//! The token comes from the environment or a file (`[safety] control_token = "env:VAR"` or
//! `"file:PATH"`), is compared in constant time, and never appears in `Debug` output or logs.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use crate::safety::KillSwitch;

/// Shortest token accepted, bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a control token could not be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The reference is neither `env:VAR` nor `file:PATH`.
    #[error("`{0}` is not a token reference: use env:VAR or file:PATH")]
    BadReference(String),
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    MissingVar(String),
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// Too short to resist guessing.
    #[error("the token has {0} bytes; at least {MIN_TOKEN_LEN} are required")]
    TooShort(usize),
}

/// The control endpoint's bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlToken(String);

impl fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlToken(<redacted>)")
    }
}

impl ControlToken {
    /// A token from its text (surrounding whitespace trimmed).
    pub fn new(token: &str) -> Result<Self, TokenError> {
        let t = token.trim();
        if t.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort(t.len()));
        }
        Ok(Self(t.to_owned()))
    }

    /// Resolves `env:VAR` or `file:PATH`.
    pub fn resolve(reference: &str) -> Result<Self, TokenError> {
        if let Some(var) = reference.strip_prefix("env:") {
            let value = std::env::var(var).map_err(|_| TokenError::MissingVar(var.to_owned()))?;
            Self::new(&value)
        } else if let Some(path) = reference.strip_prefix("file:") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| TokenError::File { path: path.to_owned(), message: e.to_string() })?;
            Self::new(&text)
        } else {
            Err(TokenError::BadReference(reference.to_owned()))
        }
    }

    /// Whether an `Authorization` header value carries this token (constant time in the token).
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(given) = authorization.and_then(|h| h.strip_prefix(b"Bearer ")) else { return false };
        let want = self.0.as_bytes();
        if given.len() != want.len() {
            return false;
        }
        given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// What `GET /status` answers: the kill switch ([`crate::safety::KillStatus`], its fields at the
/// top level as before) and each chain's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The kill switch.
    #[serde(flatten)]
    pub kill: crate::safety::KillStatus,
    /// Every chain, in configured order (one for a single-chain run, named `chain`).
    pub chains: Vec<ChainStatus>,
}

/// One chain's state in `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainStatus {
    /// Chain name.
    pub name: String,
    /// Highest block its poller has read (`None` before the first).
    pub head: Option<u64>,
    /// Blocks its poller has read.
    pub blocks: u64,
    /// Outcomes its router has decided (landed, expired, rejected).
    pub outcomes: u64,
    /// Submissions its relays (or private RPC endpoint) accepted, and failed.
    pub accepted: u64,
    /// See `accepted`.
    pub failed: u64,
    /// Intents waiting in its router's queue.
    pub router_queue: usize,
}

/// Each chain's [`ChainStatus`] now.
pub fn chain_status(m: &crate::metrics::MetricsSources) -> Vec<ChainStatus> {
    m.chains
        .iter()
        .map(|c| {
            let blocks = c.poll.blocks.load(Ordering::Relaxed);
            let relays = c.observer.relays.lock();
            ChainStatus {
                name: c.name.clone(),
                head: (blocks > 0).then(|| c.poll.last_block.load(Ordering::Relaxed)),
                blocks,
                outcomes: c.observer.outcomes_total.load(Ordering::Relaxed),
                accepted: relays.iter().map(|r| r.accepted).sum(),
                failed: relays.iter().map(|r| r.failed).sum(),
                router_queue: c.router_in.len(),
            }
        })
        .collect()
}

/// Counters of the control endpoint.
#[derive(Debug, Default)]
pub struct ControlStats {
    /// Requests refused for a missing or wrong token.
    pub unauthorized: AtomicU64,
}

/// Serves the control endpoint on `listener` (bound to 127.0.0.1) until `cancel`.
pub async fn serve_control(
    listener: tokio::net::TcpListener,
    switch: Arc<KillSwitch>,
    token: ControlToken,
    stats: Arc<ControlStats>,
    metrics: crate::metrics::MetricsSources,
    cancel: CancellationToken,
) {
    let metrics = Arc::new(metrics);
    let metrics_route = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(m): State<Arc<crate::metrics::MetricsSources>>| async move {
                ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], m.render())
            }),
        )
        .with_state(Arc::clone(&metrics));
    let chains = metrics;
    let gate = Arc::new((token, stats));
    let operator = axum::Router::new()
        .route(
            "/kill",
            axum::routing::post(|State(s): State<Arc<KillSwitch>>| async move {
                s.engage("HTTP POST /kill");
                axum::Json(s.status())
            }),
        )
        .route(
            "/resume",
            axum::routing::post(|State(s): State<Arc<KillSwitch>>| async move {
                s.release();
                axum::Json(s.status())
            }),
        )
        .route(
            "/status",
            axum::routing::get(move |State(s): State<Arc<KillSwitch>>| {
                let metrics = Arc::clone(&chains);
                async move { axum::Json(Status { kill: s.status(), chains: chain_status(&metrics) }) }
            }),
        )
        .with_state(switch)
        .route_layer(axum::middleware::from_fn_with_state(gate, require_token));
    let app = operator.merge(metrics_route);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await });
    if let Err(e) = serve.await {
        tracing::error!(error = %e, "control endpoint stopped");
    }
}

/// Lets a request through only with the bearer token.
async fn require_token(
    State(gate): State<Arc<(ControlToken, Arc<ControlStats>)>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes());
    if gate.0.admits(header) {
        return next.run(request).await;
    }
    gate.1.unauthorized.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(path = %request.uri().path(), "control endpoint: request without a valid bearer token refused");
    (StatusCode::UNAUTHORIZED, [(axum::http::header::WWW_AUTHENTICATE, "Bearer")], "unauthorized\n")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_exactly_and_never_shown() {
        let t = ControlToken::new("  s3cret-token-0123456789\n").unwrap();
        assert!(t.admits(Some(b"Bearer s3cret-token-0123456789")));
        for bad in [
            &b"Bearer s3cret-token-012345678"[..],
            b"Bearer s3cret-token-01234567890",
            b"s3cret-token-0123456789",
            b"Bearer S3cret-token-0123456789",
            b"",
        ] {
            assert!(!t.admits(Some(bad)), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!t.admits(None));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(ControlToken::new("short"), Err(TokenError::TooShort(5)));
    }

    #[test]
    fn references_resolve_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "file-token-abcdefghijkl\n").expect("write");
        let from_file = ControlToken::resolve(&format!("file:{}", path.display())).unwrap();
        assert!(from_file.admits(Some(b"Bearer file-token-abcdefghijkl")));
        // SAFETY: a variable only this test uses, set before it is read.
        unsafe { std::env::set_var("KEEL_TEST_CONTROL_TOKEN", "env-token-abcdefghijklm") };
        assert!(
            ControlToken::resolve("env:KEEL_TEST_CONTROL_TOKEN")
                .unwrap()
                .admits(Some(b"Bearer env-token-abcdefghijklm"))
        );
        assert_eq!(
            ControlToken::resolve("env:KEEL_TEST_CONTROL_TOKEN_UNSET"),
            Err(TokenError::MissingVar("KEEL_TEST_CONTROL_TOKEN_UNSET".into()))
        );
        assert!(matches!(ControlToken::resolve("plain"), Err(TokenError::BadReference(_))));
        assert!(matches!(
            ControlToken::resolve("file:/nonexistent/keel-token"),
            Err(TokenError::File { .. })
        ));
    }

    #[test]
    fn status_lists_every_chain_with_the_kill_switch_fields_at_the_top() {
        use std::sync::atomic::Ordering::Relaxed;
        let m = crate::metrics::tests::sources("relay");
        let mut m = m;
        m.chains =
            vec![crate::metrics::tests::chain("l1", "relay"), crate::metrics::tests::chain("l2", "rpc")];
        m.chains[0].poll.blocks.store(3, Relaxed);
        m.chains[0].poll.last_block.store(123, Relaxed);
        m.chains[1].observer.relays.lock()[0].accepted = 2;
        m.chains[1].observer.outcomes_total.store(1, Relaxed);
        let status = Status { kill: m.kill.status(), chains: chain_status(&m) };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["halted"], false, "{json}");
        assert_eq!(json["chains"][0]["name"], "l1");
        assert_eq!(json["chains"][0]["head"], 123);
        assert_eq!(json["chains"][1]["head"], serde_json::Value::Null, "no block read yet: {json}");
        assert_eq!(
            (json["chains"][1]["accepted"].as_u64(), json["chains"][1]["outcomes"].as_u64()),
            (Some(2), Some(1))
        );
    }
}
