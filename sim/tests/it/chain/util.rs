//! Shared helpers for the chain tests.

use std::time::Duration;

use keel_sim::anvil::AnvilChain;

/// Starts a chain or panics with the harness's message (which names the install command).
pub(crate) async fn chain() -> AnvilChain {
    match AnvilChain::start().await {
        Ok(c) => {
            eprintln!("anvil up and Uniswap deployed in {:?}", c.deploy_time());
            c
        }
        Err(e) => panic!("chain tests need anvil and the Uniswap artifacts: {e}"),
    }
}

/// `n` whole tokens (18 decimals).
pub(crate) fn e18(n: u64) -> alloy::primitives::U256 {
    alloy::primitives::U256::from(n)
        * alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(18u64))
}

/// Upper bound on any single wait in these tests.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A signed EIP-1559 transaction: raw EIP-2718 bytes and hash.
pub(crate) struct SignedTx {
    pub(crate) raw: alloy::primitives::Bytes,
    pub(crate) hash: alloy::primitives::B256,
}

/// Signs a call from dev account `from` with an explicit nonce; fees from the latest base fee.
pub(crate) async fn sign_call(
    chain: &AnvilChain,
    from: usize,
    nonce: u64,
    to: alloy::primitives::Address,
    input: Vec<u8>,
) -> SignedTx {
    use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy::eips::eip2718::Encodable2718;
    use alloy::providers::Provider;
    use alloy::signers::SignerSync;
    let block = chain
        .provider()
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .expect("latest block");
    let base = u128::from(block.header.base_fee_per_gas.unwrap_or(1_000_000_000));
    let tip = 1_000_000_000u128;
    let tx = TxEip1559 {
        chain_id: chain.chain_id(),
        nonce,
        gas_limit: 400_000,
        max_fee_per_gas: base * 2 + tip,
        max_priority_fee_per_gas: tip,
        to: alloy::primitives::TxKind::Call(to),
        value: alloy::primitives::U256::ZERO,
        access_list: Default::default(),
        input: input.into(),
    };
    let sig = chain.signer(from).sign_hash_sync(&tx.signature_hash()).unwrap();
    let env: TxEnvelope = tx.into_signed(sig).into();
    SignedTx { hash: *env.tx_hash(), raw: env.encoded_2718().into() }
}

/// The next nonce of dev account `i`.
pub(crate) async fn nonce(chain: &AnvilChain, i: usize) -> u64 {
    use alloy::providers::Provider;
    chain.provider().get_transaction_count(chain.address(i)).await.unwrap()
}
