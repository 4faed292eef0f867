//! Submission to a private RPC endpoint, for chains without Flashbots (a rollup's sequencer, a
//! private mempool): a bundle's signed transactions are sent one per leg, in order, with
//! `eth_sendRawTransaction`. There is no bundle atomicity and no target block: a transaction waits
//! in the endpoint's pool until it is included. Inclusion is tracked exactly as for bundles — the
//! account's nonce moves past the bundle's nonces, then its receipts are read.
//!
//! The executor builds one `eth_sendBundle` request per version whatever the endpoint; this module
//! takes the raw transactions back out of that request off the router thread, in the task that
//! sends them (the hot path stays as it is). A resend of a transaction the endpoint already holds
//! (or has already included) is answered `already known` / `nonce too low`: that counts as
//! accepted, the transaction is where it should be.

use std::time::{Duration, Instant};

use alloy::primitives::{B256, Bytes, keccak256};

use crate::fastpost::MAX_RESPONSE_BYTES;
use crate::relay::{RelayError, RelayReply, read_capped};

/// Default timeout of one `eth_sendRawTransaction` call, milliseconds.
pub const DEFAULT_PRIVATE_RPC_TIMEOUT_MS: u64 = 2_000;

/// A private submission endpoint.
#[derive(Debug, Clone)]
pub struct PrivateRpcClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

#[derive(serde::Deserialize)]
struct BundleBody {
    params: [BundleParams; 1],
}

#[derive(serde::Deserialize)]
struct BundleParams {
    txs: Vec<Bytes>,
    #[serde(rename = "replacementUuid", default)]
    replacement_uuid: Option<String>,
}

/// An `eth_sendBundle` body read back: what a relay would hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentBundle {
    /// The raw transactions, in bundle order (at least one).
    pub txs: Vec<Bytes>,
    /// The id a later bundle with the same one replaces this one by.
    pub replacement_uuid: Option<String>,
}

/// Reads an `eth_sendBundle` body back (one the executor built).
pub fn read_sent_bundle(body: &[u8]) -> Result<SentBundle, RelayError> {
    let b: BundleBody = serde_json::from_slice(body)
        .map_err(|e| RelayError::Malformed(format!("not an eth_sendBundle body: {e}")))?;
    let [params] = b.params;
    if params.txs.is_empty() {
        return Err(RelayError::Malformed("eth_sendBundle body without transactions".into()));
    }
    Ok(SentBundle { txs: params.txs, replacement_uuid: params.replacement_uuid })
}

/// The raw transactions of an `eth_sendBundle` body, in bundle order.
pub fn raw_txs_of_bundle(body: &[u8]) -> Result<Vec<Bytes>, RelayError> {
    read_sent_bundle(body).map(|b| b.txs)
}

/// Whether a JSON-RPC error to `eth_sendRawTransaction` says the transaction is already pooled or
/// included (a resend), not refused.
pub fn is_already_known(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already known") || m.contains("already imported") || m.contains("nonce too low")
}

/// Reads an `eth_sendRawTransaction` answer: the transaction hash, or why it was refused.
pub fn parse_send_raw_response(status: u16, body: &[u8], expected: B256) -> Result<B256, RelayError> {
    let v = match crate::relay::read_json_rpc(status, body)? {
        Ok(v) => v,
        Err((_, message)) if is_already_known(&message) => return Ok(expected),
        Err((code, message)) => return Err(RelayError::Rpc { code, message }),
    };
    let hash = v
        .get("result")
        .and_then(|r| r.as_str())
        .ok_or_else(|| RelayError::Malformed("eth_sendRawTransaction answer without result".into()))?;
    hash.parse().map_err(|_| RelayError::Malformed(format!("`{hash}` is not a transaction hash")))
}

impl PrivateRpcClient {
    /// A client of the endpoint at `url` (`http(s)://`), each call bounded by `timeout_ms`.
    pub fn new(url: impl Into<String>, timeout_ms: u64) -> Result<Self, RelayError> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| RelayError::Client(e.to_string()))?;
        Ok(Self { http, url: url.into(), timeout: Duration::from_millis(timeout_ms) })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends the transactions of the `eth_sendBundle` `body` one by one, in order, and stops at
    /// the first refusal (a later leg depends on the earlier ones' nonces). The reply is for the
    /// whole bundle: `Ok` with the last transaction's hash when every leg was accepted.
    pub async fn send_bundle_body(&self, body: &[u8]) -> RelayReply {
        let t0 = Instant::now();
        let result = async {
            let txs = raw_txs_of_bundle(body)?;
            let mut last = B256::ZERO;
            for (i, raw) in txs.iter().enumerate() {
                last = self.send_raw(i, raw).await?;
            }
            Ok(last)
        }
        .await;
        RelayReply { relay: 0, result, elapsed: t0.elapsed() }
    }

    async fn send_raw(&self, id: usize, raw: &Bytes) -> Result<B256, RelayError> {
        let req = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "eth_sendRawTransaction",
            "params": [raw.to_string()],
        });
        let resp = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(req.to_string())
            .send()
            .await
            .map_err(|e| RelayError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = read_capped(resp, MAX_RESPONSE_BYTES).await?;
        parse_send_raw_response(status, &bytes, keccak256(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_transactions_come_back_out_of_a_bundle_body_in_order() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[{"txs":["0x01","0x0203"],"blockNumber":"0x5"}]}"#;
        let txs = raw_txs_of_bundle(body).unwrap();
        assert_eq!(txs, vec![Bytes::from(vec![1u8]), Bytes::from(vec![2u8, 3])]);
        assert_eq!(read_sent_bundle(body).unwrap().replacement_uuid, None);
        let with_id =
            br#"{"params":[{"txs":["0x01"],"blockNumber":"0x5","replacementUuid":"keel-batch-3-b5"}]}"#;
        assert_eq!(read_sent_bundle(with_id).unwrap().replacement_uuid.as_deref(), Some("keel-batch-3-b5"));
        assert!(raw_txs_of_bundle(br#"{"params":[{"txs":[]}]}"#).is_err());
        assert!(raw_txs_of_bundle(b"not json").is_err());
    }

    #[test]
    fn a_resend_the_endpoint_already_holds_counts_as_accepted_and_a_refusal_does_not() {
        let h = B256::repeat_byte(7);
        let known =
            br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32000,"message":"transaction already imported"}}"#;
        assert_eq!(parse_send_raw_response(200, known, h).unwrap(), h);
        let low = br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32003,"message":"nonce too low"}}"#;
        assert_eq!(parse_send_raw_response(200, low, h).unwrap(), h);
        let refused = br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32003,"message":"insufficient funds"}}"#;
        assert!(matches!(
            parse_send_raw_response(200, refused, h),
            Err(RelayError::Rpc { code: -32003, .. })
        ));
        let ok = format!(r#"{{"jsonrpc":"2.0","id":0,"result":"{h}"}}"#);
        assert_eq!(parse_send_raw_response(200, ok.as_bytes(), B256::ZERO).unwrap(), h);
        assert!(matches!(
            parse_send_raw_response(503, b"busy", h),
            Err(RelayError::Status { status: 503, .. })
        ));
    }
}
