//! Typed `eth_call`s of the `sol!` interfaces in [`keel_amm::abi`] (which carries no provider code,
//! so that the pool math links without an RPC stack): encode the call, `eth_call` it pinned to a
//! block, decode the return.

use alloy::eips::BlockId;
use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;

/// Why a typed call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The node did not answer, or answered with an error (a revert included).
    #[error("eth_call {function} on {to}: {source}")]
    Transport {
        /// The function's signature.
        function: &'static str,
        /// The contract.
        to: Address,
        /// The transport's error.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// The reply does not decode as the function's return type.
    #[error("eth_call {function} on {to}: undecodable reply: {source}")]
    Decode {
        /// The function's signature.
        function: &'static str,
        /// The contract.
        to: Address,
        /// The decoder's error.
        #[source]
        source: alloy::sol_types::Error,
    },
}

/// `eth_call`s `call` on `to` at `block` and decodes its return.
pub async fn call<P: Provider, C: SolCall>(
    provider: &P,
    to: Address,
    call: &C,
    block: BlockId,
) -> Result<C::Return, CallError> {
    let tx = TransactionRequest::default().to(to).input(call.abi_encode().into());
    let out = provider.call(tx).block(block).await.map_err(|source| CallError::Transport {
        function: C::SIGNATURE,
        to,
        source,
    })?;
    C::abi_decode_returns(&out).map_err(|source| CallError::Decode { function: C::SIGNATURE, to, source })
}
