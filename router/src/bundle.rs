//! Flashbots `eth_sendBundle` requests: the exact JSON-RPC body, its bundle hash, and the
//! `X-Flashbots-Signature` header (EIP-191 signature, by a reputation key, of the hex keccak of the
//! exact body bytes).

use alloy::primitives::{B256, Bytes, keccak256};
use alloy::rpc::types::mev::EthSendBundle;

use crate::signer::Signer;
use crate::tx::SignedTx;

/// Name of the authentication header.
pub const FLASHBOTS_SIGNATURE_HEADER: &str = "X-Flashbots-Signature";
/// Most transactions a relay accepts in one bundle.
pub const MAX_BUNDLE_TXS: usize = 100;
/// Most bytes of transactions a relay accepts in one bundle.
pub const MAX_BUNDLE_BYTES: usize = 300_000;

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Empty bundle.
    #[error("a bundle needs at least one transaction")]
    Empty,
    /// Over the relay limits.
    #[error(
        "bundle too large: {txs} transactions, {bytes} bytes (limits {MAX_BUNDLE_TXS}, {MAX_BUNDLE_BYTES})"
    )]
    TooLarge {
        /// Transactions.
        txs: usize,
        /// Bytes.
        bytes: usize,
    },
    /// The reputation key failed to sign.
    #[error("signing the request failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// Serialisation failed (not expected for these types).
    #[error("encoding the request failed: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A bundle ready to post: the body bytes and the header value that authenticates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBundleRequest {
    /// The exact JSON-RPC body.
    pub body: Vec<u8>,
    /// `X-Flashbots-Signature` value: `<address>:<0x signature>`.
    pub signature_header: String,
    /// keccak256 of the concatenated transaction hashes.
    pub bundle_hash: B256,
    /// The block the bundle targets.
    pub block_number: u64,
}

/// Options of one bundle beyond its transactions and target block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleOptions {
    /// Earliest block timestamp.
    pub min_timestamp: Option<u64>,
    /// Latest block timestamp.
    pub max_timestamp: Option<u64>,
    /// Transactions allowed to revert without voiding the bundle.
    pub reverting_tx_hashes: Vec<B256>,
    /// Lets a later bundle with the same id replace this one.
    pub replacement_uuid: Option<String>,
}

/// keccak256 of the concatenated transaction hashes, as relays report it.
pub fn bundle_hash<'a>(hashes: impl IntoIterator<Item = &'a B256>) -> B256 {
    let mut buf = Vec::with_capacity(32 * 4);
    for h in hashes {
        buf.extend_from_slice(h.as_slice());
    }
    keccak256(&buf)
}

/// The `X-Flashbots-Signature` value for `body`: `personal_sign` of the string `0x` + hex(keccak(body)).
/// With a presign pool on `auth` the signature uses a precomputed nonce (see [`crate::presign`]).
pub fn flashbots_signature(auth: &mut Signer, body: &[u8]) -> Result<String, alloy::signers::Error> {
    // The string `0x` + lowercase hex of the digest, on the stack.
    let mut digest = [0u8; 66];
    digest[..2].copy_from_slice(b"0x");
    alloy::primitives::hex::encode_to_slice(keccak256(body), &mut digest[2..])
        .map_err(alloy::signers::Error::other)?;
    let sig = auth.sign_message(&digest)?;
    let mut bytes = [0u8; 65];
    bytes[..32].copy_from_slice(&sig.r().to_be_bytes::<32>());
    bytes[32..64].copy_from_slice(&sig.s().to_be_bytes::<32>());
    bytes[64] = sig.v() as u8;
    // `<checksummed address>:0x<130 hex digits>`, written into one allocation of its final size
    // (the address text is the signer's, computed once: no keccak for the checksum per request).
    let mut hex = [0u8; 130];
    alloy::primitives::hex::encode_to_slice(bytes, &mut hex).map_err(alloy::signers::Error::other)?;
    let address = auth.address_checksummed();
    let mut header = String::with_capacity(address.len() + 3 + hex.len());
    header.push_str(address);
    header.push_str(":0x");
    header.push_str(std::str::from_utf8(&hex).map_err(alloy::signers::Error::other)?);
    Ok(header)
}

/// The JSON-RPC envelope of an `eth_sendBundle` call.
#[derive(serde::Serialize)]
struct SendBundleRequest<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'static str,
    params: [&'a EthSendBundle; 1],
}

/// Builds and authenticates an `eth_sendBundle` request for `block_number`.
pub fn build_send_bundle(
    txs: &[SignedTx],
    block_number: u64,
    opts: &BundleOptions,
    auth: &mut Signer,
    request_id: u64,
) -> Result<SignedBundleRequest, BundleError> {
    if txs.is_empty() {
        return Err(BundleError::Empty);
    }
    let bytes: usize = txs.iter().map(|t| t.raw.len()).sum();
    if txs.len() > MAX_BUNDLE_TXS || bytes > MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge { txs: txs.len(), bytes });
    }
    let bundle = EthSendBundle {
        txs: txs.iter().map(|t| t.raw.clone()).collect::<Vec<Bytes>>(),
        block_number,
        min_timestamp: opts.min_timestamp,
        max_timestamp: opts.max_timestamp,
        reverting_tx_hashes: opts.reverting_tx_hashes.clone(),
        replacement_uuid: opts.replacement_uuid.clone(),
        ..Default::default()
    };
    // Written straight from the typed request (no intermediate `serde_json::Value`): about
    // twice the transactions' bytes (hex) plus the envelope.
    let mut body = Vec::with_capacity(256 + 2 * bytes + 70 * txs.len());
    let request =
        SendBundleRequest { jsonrpc: "2.0", id: request_id, method: "eth_sendBundle", params: [&bundle] };
    serde_json::to_writer(&mut body, &request)?;
    let signature_header = flashbots_signature(auth, &body)?;
    Ok(SignedBundleRequest {
        body,
        signature_header,
        bundle_hash: bundle_hash(txs.iter().map(|t| &t.hash)),
        block_number,
    })
}

/// An authenticated `eth_callBundle` request: the simulation of a bundle before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCallRequest {
    /// JSON-RPC body.
    pub body: Vec<u8>,
    /// `X-Flashbots-Signature` value for `body`.
    pub signature_header: String,
    /// Hashes of the bundle's transactions, in order (to name the one that reverted).
    pub tx_hashes: Vec<B256>,
}

/// Builds and authenticates `eth_callBundle` for `txs` as they would run in `block_number`, on
/// the latest state: `{"txs":[…],"blockNumber":"0x…","stateBlockNumber":"latest"}`.
pub fn build_call_bundle(
    txs: &[SignedTx],
    block_number: u64,
    auth: &mut Signer,
    request_id: u64,
) -> Result<SignedCallRequest, BundleError> {
    if txs.is_empty() {
        return Err(BundleError::Empty);
    }
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "eth_callBundle",
        "params": [{
            "txs": txs.iter().map(|t| t.raw.to_string()).collect::<Vec<_>>(),
            "blockNumber": format!("{block_number:#x}"),
            "stateBlockNumber": "latest",
        }],
    });
    let body = serde_json::to_vec(&request)?;
    let signature_header = flashbots_signature(auth, &body)?;
    Ok(SignedCallRequest { body, signature_header, tx_hashes: txs.iter().map(|t| t.hash).collect() })
}

/// An authenticated `eth_cancelBundle` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCancelRequest {
    /// JSON-RPC body.
    pub body: Vec<u8>,
    /// `X-Flashbots-Signature` value for `body`.
    pub signature_header: String,
    /// The `replacementUuid` cancelled.
    pub uuid: String,
}

/// Builds and authenticates `eth_cancelBundle` for the bundles sent under `uuid` (by this
/// reputation key): `{"method":"eth_cancelBundle","params":[{"replacementUuid":uuid}]}`.
pub fn build_cancel_bundle(
    uuid: &str,
    auth: &mut Signer,
    request_id: u64,
) -> Result<SignedCancelRequest, BundleError> {
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "eth_cancelBundle",
        "params": [{ "replacementUuid": uuid }],
    });
    let body = serde_json::to_vec(&request)?;
    let signature_header = flashbots_signature(auth, &body)?;
    Ok(SignedCancelRequest { body, signature_header, uuid: uuid.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{CallRequest, Fees, sign_call};
    use alloy::primitives::{Address, U256};
    use alloy::providers::ext::verify_flashbots_signature;

    fn tx(nonce: u64) -> SignedTx {
        let mut s = Signer::dev(1).unwrap();
        let call = CallRequest {
            to: Address::repeat_byte(2),
            input: Bytes::new(),
            gas_limit: 21_000,
            value: U256::ZERO,
        };
        sign_call(&mut s, 31337, nonce, &call, Fees::from_base_fee(1, 2, 1)).unwrap()
    }

    #[test]
    fn body_is_the_flashbots_wire_format() {
        let mut auth = Signer::dev(9).unwrap();
        let txs = [tx(0), tx(1)];
        let opts = BundleOptions { replacement_uuid: Some("abc".into()), ..Default::default() };
        let req = build_send_bundle(&txs, 0x1234, &opts, &mut auth, 7).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(v["method"], "eth_sendBundle");
        assert_eq!(v["id"], 7);
        let p = &v["params"][0];
        assert_eq!(p["blockNumber"], "0x1234");
        assert_eq!(p["txs"].as_array().unwrap().len(), 2);
        assert_eq!(p["txs"][0], serde_json::Value::String(txs[0].raw.to_string()));
        assert_eq!(p["replacementUuid"], "abc");
        assert!(p.get("revertingTxHashes").is_none());
        assert_eq!(req.bundle_hash, keccak256([txs[0].hash.as_slice(), txs[1].hash.as_slice()].concat()));
    }

    #[test]
    fn signature_header_verifies_against_the_exact_body() {
        let mut auth = Signer::dev(9).unwrap();
        let req = build_send_bundle(&[tx(0)], 10, &BundleOptions::default(), &mut auth, 1).unwrap();
        let who = verify_flashbots_signature(&req.signature_header, &req.body).unwrap();
        assert_eq!(who, auth.address());
        // `<EIP-55 address>:0x<r s v>`, the address as `Display` writes it (from the signer's
        // cached text), the signature in lowercase hex.
        let (address, sig) = req.signature_header.split_once(':').unwrap();
        assert_eq!(address, auth.address().to_string());
        assert_eq!(address, auth.clone().address_checksummed());
        assert!(sig.len() == 132 && sig.starts_with("0x"), "{sig}");
        assert!(sig[2..].bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{sig}");
        let mut tampered = req.body.clone();
        tampered.push(b' ');
        assert!(verify_flashbots_signature(&req.signature_header, &tampered).is_err());
    }

    #[test]
    fn empty_bundle_is_refused() {
        let mut auth = Signer::dev(9).unwrap();
        assert!(matches!(
            build_send_bundle(&[], 1, &BundleOptions::default(), &mut auth, 1),
            Err(BundleError::Empty)
        ));
    }

    #[test]
    fn a_presigned_signature_header_verifies_against_the_exact_body() {
        use crate::presign::{PresignConfig, test_support::wait_until};
        let capacity = 16;
        let mut auth = Signer::dev(9).unwrap().with_presign(PresignConfig { capacity }).unwrap();
        let expected = auth.address();
        wait_until("the pool is full", || auth.presign_stats().is_some_and(|s| s.pool_depth == capacity));
        let txs = [tx(0)];
        for id in 0..capacity as u64 {
            let req = build_send_bundle(&txs, 10 + id, &BundleOptions::default(), &mut auth, id).unwrap();
            assert_eq!(verify_flashbots_signature(&req.signature_header, &req.body).unwrap(), expected);
            let mut tampered = req.body.clone();
            tampered.push(b' ');
            assert!(verify_flashbots_signature(&req.signature_header, &tampered).is_err());
        }
        let stats = auth.presign_stats().unwrap();
        assert_eq!((stats.signed_precomputed, stats.fallbacks), (capacity as u64, 0), "{stats:?}");
    }
}
