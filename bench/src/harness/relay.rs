//! The harness's loopback relay: a backend of the relay core ([`keel_sim::relay`]) that accepts
//! `eth_sendBundle` itself and records, with [`keel_engine::clock::mono_now_ns`], the moment each
//! request reached it (its headers parsed by the HTTP server) — the end of tick-to-wire. It then
//! forwards the exact request (body and `X-Flashbots-Signature`) to the simulated market's relay in
//! the background, so bundles still land, without putting that hop on the acknowledgement path.
//!
//! The arrival stamp is wire time plus loopback delivery plus the server's header parsing: an upper
//! bound of "bundle bytes written to the socket", which the HTTP client does not expose.

use std::net::SocketAddr;
use std::sync::Arc;

use keel_router::bundle::FLASHBOTS_SIGNATURE_HEADER;
use keel_sim::relay::{BundleBackend, RelayError, RequestContext, SendBundle};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// One request as the relay saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// `X-Flashbots-Signature` value.
    pub signature_header: String,
    /// When the request's headers were parsed, [`keel_engine::clock::mono_now_ns`].
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
        let cancel = cancel.child_token();
        let serve = keel_sim::relay::serve(listener, Arc::clone(&state), cancel.clone());
        let task = tokio::spawn(async move {
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

impl BundleBackend for RelayState {
    // Stamping only: verifying would put an ECDSA recovery per request on the cores Keel is measured on.
    const VERIFY_SIGNATURE: bool = false;

    async fn on_send(&self, ctx: &RequestContext, _bundle: SendBundle) -> Result<(), RelayError> {
        self.arrivals
            .lock()
            .push(Arrival { signature_header: ctx.signature_header.clone(), arrival_ns: ctx.arrival_ns });
        if let Some(url) = self.forward_to.clone() {
            let http = self.http.clone();
            let (header, body) = (ctx.signature_header.clone(), ctx.body.clone());
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
        Ok(())
    }
}
