//! A Balancer V2 Vault and one weighted pool next to the chain's Uniswap contracts, deployed on
//! demand from `@balancer-labs/v2-deployments` (tasks `20210418-authorizer`, `20210418-vault`,
//! `20210418-weighted-pool`: the April 2021 `WeightedPool`, [`PowFlavour::V1`] in Keel's math).
//!
//! [`PowFlavour::V1`]: keel_amm::balancer::PowFlavour::V1

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::abi::IERC20;

use super::artifacts::Artifact;
use super::contracts::{IBalancerVault, IBalancerWeightedPool};
use super::error::{AnvilError, Result};
use super::harness::AnvilChain;
use super::routers::deploy;
use super::send::send;

/// What [`deploy_balancer_weighted`] deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancerDeployment {
    /// The Vault (the contract swaps go through, and the spender accounts approve).
    pub vault: Address,
    /// The weighted pool.
    pub pool: Address,
    /// The pool's id in the Vault.
    pub pool_id: B256,
}

/// One token of the pool: its address, normalized weight (18 decimals) and the amount the
/// funding account joins with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedToken {
    /// Token.
    pub token: Address,
    /// Normalized weight, 18 decimals (the weights sum to 1e18).
    pub weight: U256,
    /// Initial balance joined by the funder.
    pub amount: U256,
}

/// Deploys an Authorizer, a Vault and a weighted pool of `tokens` (automine must be on), and has
/// dev account `funder` (which must hold the amounts) join it with its initial balances. The pool
/// is owned by dev account 0; its swap fee is `swap_fee` (18 decimals).
pub async fn deploy_balancer_weighted(
    chain: &AnvilChain,
    tokens: &[WeightedToken],
    swap_fee: U256,
    funder: usize,
) -> Result<BalancerDeployment> {
    let mut tokens = tokens.to_vec();
    tokens.sort_by_key(|t| t.token);
    let admin = chain.address(0);
    let authorizer = deploy(chain, Artifact::BalancerAuthorizer, admin.abi_encode()).await?;
    let vault_args = (authorizer, chain.addresses().weth, U256::ZERO, U256::ZERO).abi_encode_params();
    let vault = deploy(chain, Artifact::BalancerVault, vault_args).await?;
    let addrs: Vec<Address> = tokens.iter().map(|t| t.token).collect();
    let pool_args = (
        vault,
        "Keel weighted".to_string(),
        "KW".to_string(),
        addrs.clone(),
        tokens.iter().map(|t| t.weight).collect::<Vec<_>>(),
        swap_fee,
        U256::ZERO,
        U256::ZERO,
        admin,
    )
        .abi_encode_params();
    let pool = deploy(chain, Artifact::BalancerWeightedPool, pool_args).await?;
    let pool_id = IBalancerWeightedPool::new(pool, chain.provider())
        .getPoolId()
        .call()
        .await
        .map_err(|e| AnvilError::rpc("getPoolId", e))?;
    let me = chain.address(funder);
    for t in &tokens {
        let call = IERC20::approveCall { spender: vault, amount: U256::MAX };
        send(chain, funder, t.token, call.abi_encode(), "approve the Vault").await?;
    }
    // INIT join (`WeightedPool.JoinKind.INIT` = 0) with the initial balances.
    let user_data = (U256::ZERO, tokens.iter().map(|t| t.amount).collect::<Vec<_>>()).abi_encode_params();
    let join = IBalancerVault::joinPoolCall {
        poolId: pool_id,
        sender: me,
        recipient: me,
        request: IBalancerVault::JoinPoolRequest {
            assets: addrs,
            maxAmountsIn: vec![U256::MAX; tokens.len()],
            userData: user_data.into(),
            fromInternalBalance: false,
        },
    };
    send(chain, funder, vault, join.abi_encode(), "init join").await?;
    Ok(BalancerDeployment { vault, pool, pool_id })
}
