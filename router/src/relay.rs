//! The relay client: posts a signed bundle to every configured relay at once over keep-alive HTTP
//! connections, and reads each relay's answer.

use std::time::{Duration, Instant};

use alloy::primitives::B256;
use futures_util::future::join_all;

use crate::bundle::{FLASHBOTS_SIGNATURE_HEADER, SignedBundleRequest};
use crate::config::RelayConfig;
use crate::fastpost::MAX_RESPONSE_BYTES;

/// What went wrong with one relay.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
    /// Could not build the HTTP client.
    #[error("http client: {0}")]
    Client(String),
    /// The request did not complete (connect, write, read or timeout).
    #[error("transport: {0}")]
    Transport(String),
    /// The relay answered with a non-success HTTP status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// The relay answered with a JSON-RPC error.
    #[error("relay error {code}: {message}")]
    Rpc {
        /// JSON-RPC error code.
        code: i64,
        /// Message.
        message: String,
    },
    /// The answer is not a JSON-RPC response we understand.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The TLS handshake failed: the relay's certificate is not trusted (wrong CA, wrong name,
    /// expired) or the protocol could not be agreed. Nothing was sent.
    #[error("TLS: {0}")]
    Tls(String),
    /// The relay's head had already passed the block the request was for: the answer came too
    /// late to say anything about the bundle (the relay's message).
    #[error("too late for its block: {0}")]
    TooLate(String),
}

impl RelayError {
    /// Whether trying again (for the next block) may succeed.
    pub fn is_recoverable(&self) -> bool {
        match self {
            RelayError::Transport(_) | RelayError::TooLate(_) => true,
            RelayError::Status { status, .. } => *status >= 500 || *status == 429,
            RelayError::Rpc { .. }
            | RelayError::Malformed(_)
            | RelayError::Client(_)
            | RelayError::Tls(_) => false,
        }
    }
}

/// One relay's answer to one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReply {
    /// Index of the relay in the configured list.
    pub relay: usize,
    /// The bundle hash the relay reported, or the failure.
    pub result: Result<B256, RelayError>,
    /// Time from starting the request to the full answer.
    pub elapsed: Duration,
}

/// Posts bundles to all configured relays.
#[derive(Debug, Clone)]
pub struct RelayClient {
    /// One HTTP client per relay (relays without `ca_cert` share one connection pool).
    http: Vec<reqwest::Client>,
    relays: Vec<RelayConfig>,
}

impl RelayClient {
    /// A client with keep-alive connection pools: one shared by the relays trusting the system's
    /// roots, one per relay with its own `ca_cert`.
    pub fn new(relays: Vec<RelayConfig>) -> Result<Self, RelayError> {
        let builder = || {
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(4)
        };
        let shared = builder().build().map_err(|e| RelayError::Client(e.to_string()))?;
        let mut http = Vec::with_capacity(relays.len());
        for relay in &relays {
            let client = match &relay.ca_cert {
                None => shared.clone(),
                Some(path) => {
                    let certs = read_ca_certs(path)
                        .map_err(|e| RelayError::Client(format!("relays[{}].ca_cert: {e}", relay.name)))?;
                    builder()
                        .tls_certs_only(certs)
                        .build()
                        .map_err(|e| RelayError::Client(format!("relays[{}]: {e}", relay.name)))?
                }
            };
            http.push(client);
        }
        Ok(Self { http, relays })
    }

    /// The configured relays.
    pub fn relays(&self) -> &[RelayConfig] {
        &self.relays
    }

    /// Sends `req` to every relay concurrently and returns every answer.
    pub async fn send(&self, req: &SignedBundleRequest) -> Vec<RelayReply> {
        let all: Vec<usize> = (0..self.relays.len()).collect();
        self.send_to(req, &all).await
    }

    /// Sends `req` to the relays at `indices` (positions in [`RelayClient::relays`]; others are
    /// skipped) concurrently and returns their answers.
    pub async fn send_to(&self, req: &SignedBundleRequest, indices: &[usize]) -> Vec<RelayReply> {
        let posts =
            indices.iter().filter_map(|&i| self.relays.get(i).map(|r| (i, r))).map(|(i, relay)| async move {
                let t0 = Instant::now();
                let result = self.post_one(&self.http[i], relay, req).await;
                RelayReply { relay: i, result, elapsed: t0.elapsed() }
            });
        join_all(posts).await
    }

    /// Sends `eth_cancelBundle` to every relay concurrently: per relay, `Ok` when it answered
    /// without a JSON-RPC error (a relay without the method answers one, which is logged).
    pub async fn send_cancel(
        &self,
        req: &crate::bundle::SignedCancelRequest,
    ) -> Vec<(usize, Result<(), RelayError>)> {
        let posts = self.relays.iter().enumerate().map(|(i, relay)| async move {
            let result = async {
                let (status, bytes) =
                    post_signed(&self.http[i], relay, &req.body, &req.signature_header).await?;
                parse_cancel_response(status, &bytes)
            }
            .await;
            (i, result)
        });
        join_all(posts).await
    }

    /// Simulates a bundle with `eth_callBundle` on relay `relay` (an index into
    /// [`RelayClient::relays`]): `Ok(None)` when every transaction succeeded, `Ok(Some(why))` when
    /// the relay refused the bundle or a transaction reverted (naming it), `Err` when no
    /// simulation could be had (transport, HTTP status, a reply we cannot read).
    pub async fn call_bundle(
        &self,
        relay: usize,
        req: &crate::bundle::SignedCallRequest,
    ) -> Result<Option<String>, RelayError> {
        let (Some(cfg), Some(http)) = (self.relays.get(relay), self.http.get(relay)) else {
            return Err(RelayError::Client(format!("no relay #{relay}")));
        };
        let (status, bytes) = post_signed(http, cfg, &req.body, &req.signature_header).await?;
        parse_call_bundle_response(status, &bytes, &req.tx_hashes)
    }

    async fn post_one(
        &self,
        http: &reqwest::Client,
        relay: &RelayConfig,
        req: &SignedBundleRequest,
    ) -> Result<B256, RelayError> {
        let (status, bytes) = post_signed(http, relay, &req.body, &req.signature_header).await?;
        parse_send_bundle_response(status, &bytes)
    }
}

/// POSTs a signed JSON-RPC `body` to `relay` (its timeout, `X-Flashbots-Signature`) and reads the
/// answer under [`MAX_RESPONSE_BYTES`]: `(HTTP status, body)`.
async fn post_signed(
    http: &reqwest::Client,
    relay: &RelayConfig,
    body: &[u8],
    signature_header: &str,
) -> Result<(u16, Vec<u8>), RelayError> {
    let resp = http
        .post(&relay.url)
        .timeout(Duration::from_millis(relay.timeout_ms))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(FLASHBOTS_SIGNATURE_HEADER, signature_header)
        .body(body.to_vec())
        .send()
        .await
        .map_err(transport_error)?;
    let status = resp.status().as_u16();
    Ok((status, read_capped(resp, MAX_RESPONSE_BYTES).await?))
}

/// Reads a PEM file of CA certificates (at least one) for a relay's `ca_cert`.
pub fn read_ca_certs(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Classifies a failed request: a refused certificate or failed handshake is [`RelayError::Tls`]
/// (found by walking the error's causes, where rustls reports it), anything else is transport.
fn transport_error(e: reqwest::Error) -> RelayError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if text.contains("certificate") || text.contains("handshake") || text.contains("TLS") {
            return RelayError::Tls(text);
        }
        cause = c.source();
    }
    RelayError::Transport(e.to_string())
}

/// A JSON-RPC answer once its HTTP status is judged: a 5xx or 429 is [`RelayError::Status`]
/// (recoverable), a body that is not JSON [`RelayError::Malformed`]; a JSON-RPC `error` comes back
/// apart, as `Ok(Err((code, message)))`, for the caller to tell a refusal from a resend.
pub(crate) fn read_json_rpc(
    status: u16,
    body: &[u8],
) -> Result<Result<serde_json::Value, (i64, String)>, RelayError> {
    if status >= 500 || status == 429 {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(RelayError::Status { status, body: text });
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RelayError::Malformed(e.to_string()))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let code = err.get("code").and_then(|c| c.as_i64()).unwrap_or(0);
        let message = err.get("message").and_then(|m| m.as_str()).unwrap_or("(no message)").to_string();
        return Ok(Err((code, message)));
    }
    Ok(Ok(v))
}

/// Reads a relay's answer to `eth_callBundle` (see [`RelayClient::call_bundle`]). A JSON-RPC
/// error is the relay refusing the bundle (an invalid transaction: nonce, funds, fees).
pub fn parse_call_bundle_response(
    status: u16,
    body: &[u8],
    tx_hashes: &[B256],
) -> Result<Option<String>, RelayError> {
    let v = match read_json_rpc(status, body)? {
        Ok(v) => v,
        // A target block the relay's head has passed (the simulation came late) says nothing
        // about the bundle: no simulation was had.
        Err((_, message)) if message.contains("blockNumber") => return Err(RelayError::TooLate(message)),
        Err((_, message)) => return Ok(Some(format!("the relay refused the bundle: {message}"))),
    };
    let results = v
        .pointer("/result/results")
        .and_then(|r| r.as_array())
        .ok_or_else(|| RelayError::Malformed("eth_callBundle answer without result.results".into()))?;
    for (i, r) in results.iter().enumerate() {
        let error = r.get("error").and_then(|e| e.as_str());
        let revert = r.get("revert").filter(|x| !x.is_null()).map(|x| x.to_string());
        if error.is_some() || revert.is_some() {
            let hash = tx_hashes.get(i).map_or_else(|| "?".to_string(), |h| h.to_string());
            let why = error.map(str::to_string).or(revert).unwrap_or_default();
            return Ok(Some(format!("transaction {i} ({hash}) reverted: {why}")));
        }
    }
    Ok(None)
}

/// Reads a relay's answer to `eth_cancelBundle`: any `result` (Flashbots answers `null` or a
/// list), or the JSON-RPC error.
pub fn parse_cancel_response(status: u16, body: &[u8]) -> Result<(), RelayError> {
    let v = read_json_rpc(status, body)?.map_err(|(code, message)| RelayError::Rpc { code, message })?;
    if v.get("result").is_none() {
        return Err(RelayError::Malformed("neither result nor error".into()));
    }
    Ok(())
}

/// Reads a response body of at most `cap` bytes: a larger announced `Content-Length` is refused
/// before any byte is read, and a body that grows past `cap` is dropped as soon as it does (a relay
/// cannot make Keel buffer an unbounded answer).
pub async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, RelayError> {
    let too_large =
        |n: u64| RelayError::Transport(format!("answer of {n} bytes is above the cap of {cap} bytes"));
    if let Some(n) = resp.content_length()
        && n > cap as u64
    {
        return Err(too_large(n));
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(1024, |n| n as usize));
    while let Some(chunk) = resp.chunk().await.map_err(|e| RelayError::Transport(e.to_string()))? {
        if chunk.len() > cap - body.len() {
            return Err(too_large((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a relay's HTTP answer to `eth_sendBundle`: `{"result": {"bundleHash": "0x…"}}`, or a
/// JSON-RPC error (which some relays send with a 4xx/5xx status).
///
/// A 5xx or 429 status is [`RelayError::Status`] (recoverable: overload or an internal failure)
/// even when the body carries a JSON-RPC error; other JSON-RPC errors are [`RelayError::Rpc`]
/// (a rejection of this request).
pub fn parse_send_bundle_response(status: u16, body: &[u8]) -> Result<B256, RelayError> {
    if status >= 500 || status == 429 {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(RelayError::Status { status, body: text });
    }
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(body);
    if let Ok(v) = &parsed
        && let Some(err) = v.get("error").filter(|e| !e.is_null())
    {
        let code = err.get("code").and_then(|c| c.as_i64()).unwrap_or(0);
        let message = err.get("message").and_then(|m| m.as_str()).unwrap_or("").to_string();
        return Err(RelayError::Rpc { code, message });
    }
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(RelayError::Status { status, body: text });
    }
    let v = parsed.map_err(|e| RelayError::Malformed(e.to_string()))?;
    let hash = v
        .get("result")
        .and_then(|r| r.get("bundleHash"))
        .and_then(|h| h.as_str())
        .ok_or_else(|| RelayError::Malformed("no result.bundleHash".into()))?;
    hash.parse::<B256>().map_err(|e| RelayError::Malformed(format!("bundleHash: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_success_and_errors() {
        let h = "0x".to_string() + &"ab".repeat(32);
        let ok = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bundleHash":"{h}"}}}}"#);
        assert_eq!(parse_send_bundle_response(200, ok.as_bytes()).unwrap(), h.parse::<B256>().unwrap());
        let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"bad signature"}}"#;
        assert_eq!(
            parse_send_bundle_response(403, err),
            Err(RelayError::Rpc { code: -32000, message: "bad signature".into() })
        );
        let e = parse_send_bundle_response(502, b"<html>bad gateway</html>").unwrap_err();
        assert!(e.is_recoverable());
        assert!(matches!(parse_send_bundle_response(200, b"{}"), Err(RelayError::Malformed(_))));
        assert!(matches!(parse_send_bundle_response(200, b"not json"), Err(RelayError::Malformed(_))));
    }

    /// A loopback relay that reads one request and writes `answer`, then closes.
    fn one_shot_relay(answer: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(&answer);
        });
        (url, server)
    }

    fn request() -> SignedBundleRequest {
        SignedBundleRequest {
            body: b"{}".to_vec(),
            signature_header: "0x00:0x00".into(),
            bundle_hash: B256::ZERO,
            block_number: 1,
        }
    }

    #[tokio::test]
    async fn the_http_client_path_reads_answers_with_a_size_cap() {
        let client_for = |url: String| {
            RelayClient::new(vec![RelayConfig {
                name: "r".into(),
                url,
                timeout_ms: 20_000,
                fast_path: false,
                ca_cert: None,
                coinbase: None,
            }])
            .unwrap()
        };
        // An announced length above the cap is refused before the body is read.
        let (url, server) = one_shot_relay(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{{}}", MAX_RESPONSE_BYTES + 1).into_bytes(),
        );
        let reply = client_for(url).send(&request()).await.remove(0);
        match reply.result {
            Err(RelayError::Transport(m)) => assert!(m.contains("above the cap"), "{m}"),
            other => panic!("expected the cap, got {other:?}"),
        }
        server.join().unwrap();
        // A chunked body that grows past the cap is dropped when it does.
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let piece = vec![b'a'; 64 * 1024];
        for _ in 0..(MAX_RESPONSE_BYTES / piece.len() + 2) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(&piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (url, server) = one_shot_relay(chunked);
        let reply = client_for(url).send(&request()).await.remove(0);
        match reply.result {
            Err(RelayError::Transport(m)) => assert!(m.contains("above the cap"), "{m}"),
            other => panic!("expected the cap, got {other:?}"),
        }
        server.join().unwrap();
        // Under the cap, the answer is read and parsed.
        let h = B256::repeat_byte(0xab);
        let body = format!(r#"{{"result":{{"bundleHash":"{h}"}}}}"#);
        let (url, server) = one_shot_relay(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes(),
        );
        assert_eq!(client_for(url).send(&request()).await.remove(0).result, Ok(h));
        server.join().unwrap();
    }
}

#[cfg(test)]
mod call_bundle_tests {
    use super::*;

    #[test]
    fn a_refused_bundle_a_revert_and_a_late_simulation_are_told_apart() {
        let h = [B256::repeat_byte(1), B256::repeat_byte(2)];
        let refused = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"txs[0] is invalid: insufficient funds"}}"#;
        assert!(
            parse_call_bundle_response(200, refused, &h).unwrap().unwrap().contains("insufficient funds")
        );
        let late = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"blockNumber 9 is not after the head block 9"}}"#;
        assert!(matches!(parse_call_bundle_response(200, late, &h), Err(RelayError::TooLate(_))));
        let reverted = br#"{"jsonrpc":"2.0","id":1,"result":{"results":[{"gasUsed":1},{"error":"execution reverted: K"}]}}"#;
        let why = parse_call_bundle_response(200, reverted, &h).unwrap().unwrap();
        assert!(
            why.starts_with("transaction 1 (0x0202") && why.ends_with("reverted: execution reverted: K"),
            "{why}"
        );
        let fine = br#"{"jsonrpc":"2.0","id":1,"result":{"results":[{"gasUsed":1},{"gasUsed":2}]}}"#;
        assert_eq!(parse_call_bundle_response(200, fine, &h).unwrap(), None);
    }
}
