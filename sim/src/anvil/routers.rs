//! The routers that carry most mainnet swaps, deployed on demand from their npm artifacts:
//! SwapRouter02 (`@uniswap/swap-router-contracts`) and the Universal Router
//! (`@uniswap/universal-router`), wired to the chain's own V2 and V3 factories.
//!
//! Permit2 ships no bytecode in these packages, so the Universal Router is given a placeholder
//! Permit2 address (an account without code): swaps that pay from the router's own balance
//! (`payerIsUser = false`, the path the router takes after `WRAP_ETH` or a prior transfer) never
//! touch it; a `payerIsUser = true` swap would revert.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::abi::IERC20;

use super::artifacts::{self, Artifact};
use super::error::{AnvilError, Result};
use super::harness::AnvilChain;

/// The Universal Router's Permit2 placeholder (no code; see the module docs).
pub const PERMIT2_PLACEHOLDER: Address = Address::new([0x22; 20]);

/// Addresses of the routers [`deploy_routers`] deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterAddresses {
    /// SwapRouter02.
    pub swap_router02: Address,
    /// Universal Router.
    pub universal_router: Address,
}

pub(crate) async fn deploy(chain: &AnvilChain, artifact: Artifact, args: Vec<u8>) -> Result<Address> {
    let mut code = artifacts::bytecode(artifact)?.to_vec();
    code.extend_from_slice(&args);
    let tx = TransactionRequest::default().with_deploy_code(Bytes::from(code)).with_gas_limit(12_000_000);
    let label = format!("deploy {artifact:?}");
    let receipt = chain
        .wallet_provider(0)
        .send_transaction(tx)
        .await
        .map_err(|e| AnvilError::rpc(label.clone(), e))?
        .get_receipt()
        .await
        .map_err(|e| AnvilError::rpc(label.clone(), e))?;
    if !receipt.status() {
        return Err(AnvilError::Reverted { label, hash: receipt.transaction_hash });
    }
    receipt.contract_address.ok_or_else(|| AnvilError::rpc(label, "no contract address in the receipt"))
}

/// Deploys SwapRouter02 and the Universal Router (automine must be on) and lets the funded dev
/// accounts `approvers` spend every token through SwapRouter02.
pub async fn deploy_routers(chain: &AnvilChain, approvers: &[usize]) -> Result<RouterAddresses> {
    let a = chain.addresses().clone();
    let swap_router02 = deploy(
        chain,
        Artifact::SwapRouter02,
        (a.v2_factory, a.v3_factory, a.v3_position_manager, a.weth).abi_encode_params(),
    )
    .await?;
    // RouterParameters {permit2, weth9, v2Factory, v3Factory, pairInitCodeHash, poolInitCodeHash,
    // v4PoolManager, v3NFTPositionManager, v4PositionManager, spokePool}: all static, so the
    // struct encodes as its fields in a row.
    let params = (
        PERMIT2_PLACEHOLDER,
        a.weth,
        a.v2_factory,
        a.v3_factory,
        artifacts::init_code_hash(Artifact::V2Pair)?,
        artifacts::init_code_hash(Artifact::V3Pool)?,
        Address::ZERO,
        a.v3_position_manager,
        Address::ZERO,
        Address::ZERO,
    )
        .abi_encode_params();
    let universal_router = deploy(chain, Artifact::UniversalRouter, params).await?;
    let mut tokens = vec![a.weth];
    tokens.extend(a.tokens.iter().map(|t| t.address));
    for &i in approvers {
        let p = chain.wallet_provider(i);
        for &t in &tokens {
            let call = IERC20::approveCall { spender: swap_router02, amount: U256::MAX };
            let tx = TransactionRequest::default().with_to(t).with_input(call.abi_encode());
            let r = p
                .send_transaction(tx)
                .await
                .map_err(|e| AnvilError::rpc("approve SwapRouter02", e))?
                .get_receipt()
                .await
                .map_err(|e| AnvilError::rpc("approve SwapRouter02", e))?;
            if !r.status() {
                return Err(AnvilError::Reverted {
                    label: "approve SwapRouter02".into(),
                    hash: r.transaction_hash,
                });
            }
        }
    }
    Ok(RouterAddresses { swap_router02, universal_router })
}
