//! JSON-RPC over HTTP to the node with a bounded reply.
//!
//! alloy's HTTP transport reads a reply whole, however long: a broken or hostile node (or a proxy
//! in front of it) could make a process that runs for weeks buffer gigabytes. [`CappedHttp`] is
//! the same transport with a cap: it refuses a reply whose `Content-Length` exceeds the cap before
//! reading it, and stops reading one without a length as soon as it passes the cap, with an error
//! naming the size and the cap. The largest legitimate replies Keel asks for are pool snapshots
//! (`extsload` of a V4 pool's bitmap words and ticks, `eth_call` batches) and receipts: a few MiB
//! at most, far under [`MAX_REPLY_BYTES`].

use std::task::{Context, Poll};

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::utils::guess_local_url;
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};

/// Default cap on one node reply, bytes: 64 MiB, the bound the node's websocket connections
/// already have (tungstenite's default largest message, which alloy's websocket transport keeps).
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// Why an HTTP provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpProviderError {
    /// The URL does not parse.
    #[error("bad node RPC URL `{url}`: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// An HTTP JSON-RPC transport whose replies are at most `max_reply_bytes` long.
#[derive(Debug, Clone)]
pub struct CappedHttp {
    client: reqwest::Client,
    url: reqwest::Url,
    max_reply_bytes: usize,
}

impl CappedHttp {
    /// A transport to `url` (one kept-alive client) with replies capped at `max_reply_bytes`.
    pub fn new(url: reqwest::Url, max_reply_bytes: usize) -> Self {
        Self { client: reqwest::Client::new(), url, max_reply_bytes }
    }

    async fn request(self, req: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let mut resp = self
            .client
            .post(self.url)
            .json(&req)
            .headers(req.headers())
            .send()
            .await
            .map_err(TransportErrorKind::custom)?;
        let status = resp.status();
        let cap = self.max_reply_bytes;
        if let Some(len) = resp.content_length()
            && len > cap as u64
        {
            return Err(over_cap(&len.to_string(), cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(TransportErrorKind::custom)? {
            if body.len() + chunk.len() > cap {
                return Err(over_cap(&format!("more than {}", body.len() + chunk.len()), cap));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(TransportErrorKind::http_error(
                status.as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| TransportError::deser_err(e, String::from_utf8_lossy(&body)))
    }
}

fn over_cap(size: &str, cap: usize) -> TransportError {
    TransportErrorKind::custom_str(&format!("node reply of {size} bytes refused: over the {cap}-byte cap"))
}

impl tower::Service<RequestPacket> for CappedHttp {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        Box::pin(self.clone().request(req))
    }
}

/// A provider over [`CappedHttp`] to `url`, replies capped at [`MAX_REPLY_BYTES`].
pub fn http_provider(url: &str) -> Result<DynProvider, HttpProviderError> {
    http_provider_capped(url, MAX_REPLY_BYTES)
}

/// A provider over [`CappedHttp`] to `url`, replies capped at `max_reply_bytes`.
pub fn http_provider_capped(url: &str, max_reply_bytes: usize) -> Result<DynProvider, HttpProviderError> {
    let parsed = url
        .parse::<reqwest::Url>()
        .map_err(|e| HttpProviderError::BadUrl { url: url.to_owned(), reason: e.to_string() })?;
    let local = guess_local_url(parsed.as_str());
    let client = RpcClient::new(CappedHttp::new(parsed, max_reply_bytes), local);
    Ok(ProviderBuilder::new().connect_client(client).erased())
}
