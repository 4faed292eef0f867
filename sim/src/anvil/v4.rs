//! A Uniswap V4 `PoolManager`, v4-periphery's `V4Router` (`MockV4Router`) and hookless pools next
//! to the chain's other contracts, deployed on demand from the pinned `@uniswap/v4-core` and
//! `@uniswap/v4-periphery` packages.
//!
//! Liquidity goes in through v4-core's `PoolModifyLiquidityTest` (deployed alongside), which
//! settles from its caller's ERC-20 approvals.

use alloy::primitives::{Address, B256, Bytes, I256, U256, aliases::I24, aliases::U24, aliases::U160};
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::abi::IERC20;
use keel_amm::v4::PoolKey;

use super::artifacts::Artifact;
use super::contracts::{IV4PoolManager, IV4PoolModifyLiquidityTest, V4PoolKey};
use super::error::{AnvilError, Result};
use super::harness::AnvilChain;
use super::routers::deploy;
use super::send::{send, send_paying};

/// What [`deploy_v4`] deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Deployment {
    /// The `PoolManager` (every pool's state and tokens).
    pub manager: Address,
    /// v4-periphery's `MockV4Router`: `executeActions(bytes)`, pays by ERC-20 `transferFrom`.
    pub router: Address,
    /// v4-core's `PoolModifyLiquidityTest` (adds and removes liquidity for its caller).
    pub liquidity_router: Address,
}

/// A position to add: ticks (multiples of the pool's spacing) and liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Position {
    /// Lower tick.
    pub tick_lower: i32,
    /// Upper tick.
    pub tick_upper: i32,
    /// Liquidity (positive adds, negative removes).
    pub liquidity: i128,
    /// Position salt (distinct positions of one owner and range).
    pub salt: u64,
}

/// The `sol!` key of a [`PoolKey`].
pub fn sol_key(k: &PoolKey) -> V4PoolKey {
    V4PoolKey {
        currency0: k.currency0,
        currency1: k.currency1,
        fee: U24::from(k.fee),
        tickSpacing: I24::try_from(k.tick_spacing).unwrap_or(I24::ZERO),
        hooks: k.hooks,
    }
}

/// Deploys a `PoolManager` (owned by dev account 0), a `MockV4Router` and a
/// `PoolModifyLiquidityTest` (automine must be on).
pub async fn deploy_v4(chain: &AnvilChain) -> Result<V4Deployment> {
    let manager = deploy(chain, Artifact::V4PoolManager, chain.address(0).abi_encode()).await?;
    let router = deploy(chain, Artifact::V4Router, manager.abi_encode()).await?;
    let liquidity_router = deploy(chain, Artifact::V4PoolModifyLiquidityTest, manager.abi_encode()).await?;
    Ok(V4Deployment { manager, router, liquidity_router })
}

impl V4Deployment {
    /// Initializes the pool of `key` at `sqrt_price_x96`; returns its id.
    pub async fn initialize(&self, chain: &AnvilChain, key: &PoolKey, sqrt_price_x96: U256) -> Result<B256> {
        let call =
            IV4PoolManager::initializeCall { key: sol_key(key), sqrtPriceX96: U160::from(sqrt_price_x96) };
        send(chain, 0, self.manager, call.abi_encode(), "initialize the v4 pool").await?;
        Ok(key.id())
    }

    /// Has dev account `from` approve the liquidity router for both currencies (ERC-20s only).
    pub async fn approve_liquidity(&self, chain: &AnvilChain, key: &PoolKey, from: usize) -> Result<()> {
        for c in [key.currency0, key.currency1] {
            if c != Address::ZERO {
                let call = IERC20::approveCall { spender: self.liquidity_router, amount: U256::MAX };
                send(chain, from, c, call.abi_encode(), "approve the liquidity router").await?;
            }
        }
        Ok(())
    }

    /// Adds (or removes) a position as dev account `from` (which must hold the tokens and have
    /// called [`Self::approve_liquidity`]).
    pub async fn modify(
        &self,
        chain: &AnvilChain,
        key: &PoolKey,
        from: usize,
        pos: V4Position,
    ) -> Result<()> {
        self.modify_paying(chain, key, from, pos, U256::ZERO).await
    }

    /// [`Self::modify`] sending `value` wei with the call: a pool of native ETH (currency
    /// `address(0)`) is paid from it, and `PoolModifyLiquidityTest` returns what is left over.
    pub async fn modify_paying(
        &self,
        chain: &AnvilChain,
        key: &PoolKey,
        from: usize,
        pos: V4Position,
        value: U256,
    ) -> Result<()> {
        let range =
            |t: i32| I24::try_from(t).map_err(|_| AnvilError::rpc("modifyLiquidity", format!("tick {t}")));
        let call = IV4PoolModifyLiquidityTest::modifyLiquidityCall {
            key: sol_key(key),
            params: IV4PoolModifyLiquidityTest::ModifyLiquidityParams {
                tickLower: range(pos.tick_lower)?,
                tickUpper: range(pos.tick_upper)?,
                liquidityDelta: I256::try_from(pos.liquidity).unwrap_or(I256::ZERO),
                salt: B256::from(U256::from(pos.salt)),
            },
            hookData: Bytes::new(),
        };
        send_paying(chain, from, self.liquidity_router, call.abi_encode(), value, "modify v4 liquidity").await
    }
}
