//! The parameters of `eth_sendBundle` and `eth_callBundle`, parsed exactly as Flashbots sends them:
//! `blockNumber` a hex quantity, `minTimestamp`/`maxTimestamp` a hex string or a JSON number,
//! `revertingTxHashes`, `replacementUuid` and `builders` optional; and the relay limits.

use alloy::primitives::{B256, Bytes, keccak256};
use keel_router::bundle::bundle_hash;
use serde_json::Value;

use super::{MAX_BUNDLE_BYTES, MAX_BUNDLE_TXS, RelayError};
use crate::jsonrpc;

/// An `eth_sendBundle` request, checked against the limits and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBundle {
    /// The raw signed transactions (EIP-2718), in bundle order.
    pub txs: Vec<Bytes>,
    /// keccak256 of each raw transaction: the transaction hashes.
    pub tx_hashes: Vec<B256>,
    /// The bundle hash ([`keel_router::bundle::bundle_hash`] of `tx_hashes`).
    pub hash: B256,
    /// The target block.
    pub block_number: u64,
    /// Earliest block timestamp, seconds.
    pub min_timestamp: Option<u64>,
    /// Latest block timestamp, seconds.
    pub max_timestamp: Option<u64>,
    /// Transactions allowed to revert.
    pub reverting_tx_hashes: Vec<B256>,
    /// Replaces the sender's earlier pending bundle with the same id.
    pub replacement_uuid: Option<String>,
    /// Builders to share the bundle with (accepted, not used by a loopback relay).
    pub builders: Vec<String>,
}

/// Which state an `eth_callBundle` simulates on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateBlock {
    /// The head (`stateBlockNumber` absent, `latest` or `pending`).
    Head,
    /// A numbered block.
    Number(u64),
}

/// An `eth_callBundle` request, checked against the limits and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallBundle {
    /// The raw signed transactions (EIP-2718), in bundle order.
    pub txs: Vec<Bytes>,
    /// keccak256 of each raw transaction.
    pub tx_hashes: Vec<B256>,
    /// The bundle hash.
    pub hash: B256,
    /// The block the simulation pretends to build (Flashbots requires it; the anvil relay does not).
    pub block_number: Option<u64>,
    /// The state to simulate on.
    pub state_block: StateBlock,
    /// The block timestamp to simulate with.
    pub timestamp: Option<u64>,
}

/// The first positional parameter, which must be an object.
fn bundle_object(params: &Value) -> Result<&Value, RelayError> {
    let obj = jsonrpc::required(params, 0, "bundle")?;
    if !obj.is_object() {
        return Err(RelayError::Params("bundle must be an object".to_owned()));
    }
    Ok(obj)
}

fn opt_quantity(obj: &Value, key: &str) -> Result<Option<u64>, RelayError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(jsonrpc::quantity(v, key)?)),
    }
}

/// `txs`: a non-empty array of hex strings, within the limits.
fn parse_txs(obj: &Value) -> Result<Vec<Bytes>, RelayError> {
    let txs = obj
        .get("txs")
        .and_then(Value::as_array)
        .ok_or_else(|| RelayError::Params("missing `txs` array".to_owned()))?;
    if txs.is_empty() {
        return Err(RelayError::Params("`txs` is empty".to_owned()));
    }
    let txs = txs
        .iter()
        .enumerate()
        .map(|(i, t)| jsonrpc::data(t, &format!("txs[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    check_limits(&txs)?;
    Ok(txs)
}

/// Refuses a bundle over [`MAX_BUNDLE_TXS`] transactions or [`MAX_BUNDLE_BYTES`] bytes.
pub fn check_limits(txs: &[Bytes]) -> Result<(), RelayError> {
    if txs.len() > MAX_BUNDLE_TXS {
        return Err(RelayError::TooManyTxs { count: txs.len() });
    }
    let bytes: usize = txs.iter().map(|t| t.len()).sum();
    if bytes > MAX_BUNDLE_BYTES {
        return Err(RelayError::TooLarge { bytes });
    }
    Ok(())
}

/// Transaction hashes (keccak256 of the raw bytes) and the bundle hash.
fn hashes(txs: &[Bytes]) -> (Vec<B256>, B256) {
    let tx_hashes: Vec<B256> = txs.iter().map(keccak256).collect();
    let hash = bundle_hash(&tx_hashes);
    (tx_hashes, hash)
}

impl SendBundle {
    /// Parses `eth_sendBundle`'s params (`[{...}]`).
    pub fn parse(params: &Value) -> Result<Self, RelayError> {
        let obj = bundle_object(params)?;
        let txs = parse_txs(obj)?;
        let block_number = jsonrpc::quantity(
            obj.get("blockNumber").ok_or_else(|| RelayError::Params("missing `blockNumber`".to_owned()))?,
            "blockNumber",
        )?;
        let min_timestamp = opt_quantity(obj, "minTimestamp")?;
        let max_timestamp = opt_quantity(obj, "maxTimestamp")?;
        let reverting_tx_hashes = match obj.get("revertingTxHashes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, h)| jsonrpc::hash(h, &format!("revertingTxHashes[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(RelayError::Params(format!("revertingTxHashes: expected an array, got {other}")));
            }
        };
        let replacement_uuid = match obj.get("replacementUuid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(other) => {
                return Err(RelayError::Params(format!(
                    "replacementUuid: expected a non-empty string, got {other}"
                )));
            }
        };
        let builders = match obj.get("builders") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(other) => {
                return Err(RelayError::Params(format!("builders: expected an array, got {other}")));
            }
        };
        if let (Some(lo), Some(hi)) = (min_timestamp, max_timestamp)
            && lo > hi
        {
            return Err(RelayError::Params(format!("minTimestamp {lo} is after maxTimestamp {hi}")));
        }
        let (tx_hashes, hash) = hashes(&txs);
        Ok(Self {
            txs,
            tx_hashes,
            hash,
            block_number,
            min_timestamp,
            max_timestamp,
            reverting_tx_hashes,
            replacement_uuid,
            builders,
        })
    }
}

impl CallBundle {
    /// Parses `eth_callBundle`'s params (`[{...}]`).
    pub fn parse(params: &Value) -> Result<Self, RelayError> {
        let obj = bundle_object(params)?;
        let txs = parse_txs(obj)?;
        let block_number = opt_quantity(obj, "blockNumber")?;
        let timestamp = opt_quantity(obj, "timestamp")?;
        let state_block = match obj.get("stateBlockNumber") {
            None | Some(Value::Null) => StateBlock::Head,
            Some(Value::String(s)) if s == "latest" || s == "pending" => StateBlock::Head,
            Some(v) => StateBlock::Number(jsonrpc::quantity(v, "stateBlockNumber")?),
        };
        let (tx_hashes, hash) = hashes(&txs);
        Ok(Self { txs, tx_hashes, hash, block_number, state_block, timestamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn send_bundle_takes_timestamps_as_hex_or_number() {
        let p = SendBundle::parse(&json!([{
            "txs": ["0x01"], "blockNumber": "0x10", "minTimestamp": 5, "maxTimestamp": "0x20",
            "revertingTxHashes": [], "replacementUuid": "u", "builders": ["flashbots"]
        }]))
        .unwrap();
        assert_eq!((p.block_number, p.min_timestamp, p.max_timestamp), (16, Some(5), Some(32)));
        assert_eq!(p.replacement_uuid.as_deref(), Some("u"));
        assert_eq!(p.builders, vec!["flashbots".to_owned()]);
        assert_eq!(p.hash, bundle_hash(&[keccak256([1u8])]));
        let bad =
            SendBundle::parse(&json!([{"txs": ["0x01"], "blockNumber": "0x10", "maxTimestamp": "soon"}]));
        assert!(matches!(bad, Err(RelayError::Params(_))));
    }

    #[test]
    fn limits_and_empty_bundles_are_refused() {
        let empty = SendBundle::parse(&json!([{"txs": [], "blockNumber": "0x1"}]));
        assert!(matches!(empty, Err(RelayError::Params(_))));
        let many = vec![Bytes::from(vec![0u8; 10]); MAX_BUNDLE_TXS + 1];
        assert_eq!(check_limits(&many), Err(RelayError::TooManyTxs { count: MAX_BUNDLE_TXS + 1 }));
        let big = vec![Bytes::from(vec![0u8; MAX_BUNDLE_BYTES / 2 + 1]); 2];
        assert!(matches!(check_limits(&big), Err(RelayError::TooLarge { .. })));
        assert!(RelayError::TooManyTxs { count: 101 }.to_string().contains("at most 100"));
    }

    #[test]
    fn call_bundle_state_block_defaults_to_the_head() {
        let c = CallBundle::parse(&json!([{"txs": ["0x01"], "blockNumber": "0x2"}])).unwrap();
        assert_eq!((c.block_number, c.state_block), (Some(2), StateBlock::Head));
        let c = CallBundle::parse(&json!([{"txs": ["0x01"], "stateBlockNumber": "0x7"}])).unwrap();
        assert_eq!((c.block_number, c.state_block), (None, StateBlock::Number(7)));
    }
}
