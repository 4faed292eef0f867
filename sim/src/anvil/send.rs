//! Sending one setup transaction from a dev account and waiting for it (automine on), shared by
//! the venue deployers.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;

use super::error::{AnvilError, Result};
use super::harness::AnvilChain;

/// Sends `input` to `to` from dev account `from`; an error naming `label` if it fails or reverts.
pub(crate) async fn send(
    chain: &AnvilChain,
    from: usize,
    to: Address,
    input: Vec<u8>,
    label: &str,
) -> Result<()> {
    send_paying(chain, from, to, input, U256::ZERO, label).await
}

/// [`send`] with `value` wei attached.
pub(crate) async fn send_paying(
    chain: &AnvilChain,
    from: usize,
    to: Address,
    input: Vec<u8>,
    value: U256,
    label: &str,
) -> Result<()> {
    let tx = TransactionRequest::default()
        .with_to(to)
        .with_input(input)
        .with_value(value)
        .with_gas_limit(3_000_000);
    landed(&chain.wallet_provider(from), tx, label).await.map(|_| ())
}

/// Sends `tx` through `wallet` (a provider that signs) and waits for its receipt; an error naming
/// `label` if sending fails or the transaction reverts.
pub(crate) async fn landed<P: Provider>(
    wallet: &P,
    tx: TransactionRequest,
    label: &str,
) -> Result<alloy::rpc::types::TransactionReceipt> {
    let r = wallet
        .send_transaction(tx)
        .await
        .map_err(|e| AnvilError::rpc(label.to_string(), e))?
        .get_receipt()
        .await
        .map_err(|e| AnvilError::rpc(label.to_string(), e))?;
    if !r.status() {
        return Err(AnvilError::Reverted { label: label.into(), hash: r.transaction_hash });
    }
    Ok(r)
}
