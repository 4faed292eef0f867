//! Contract bytecode from the pinned npm packages in `tests/chain/node_modules`.
//!
//! The packages ship three artifact formats: Waffle (`@uniswap/v2-*`: `bytecode` hex without `0x`),
//! Hardhat (`@uniswap/v3-*`, OpenZeppelin: `bytecode` with `0x`), Foundry (`@uniswap/v4-core`
//! `out/`: `bytecode.object`) and Balancer's deployment tasks
//! (`@balancer-labs/v2-deployments` `dist/tasks/<task>/bytecode/<Contract>.json`: `creationCode`).
//! All are read here as creation bytecode; the ABIs come from `sol!` interfaces, so no
//! normalisation step is needed.

use std::path::{Path, PathBuf};

use alloy::primitives::{B256, Bytes, hex, keccak256};

use super::error::{AnvilError, Result};

/// Environment variable overriding the anvil binary.
pub const ANVIL_ENV: &str = "KEEL_ANVIL";
/// Environment variable overriding the folder holding `package.json` and `node_modules`.
pub const CHAIN_DIR_ENV: &str = "KEEL_CHAIN_DIR";

/// A contract Keel's test chain deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// Wrapped ether.
    Weth9,
    /// OpenZeppelin 3.4 `ERC20PresetMinterPauser` (18 decimals, deployer may mint).
    Erc20Mintable,
    /// Uniswap V2 factory.
    V2Factory,
    /// Uniswap V2 pair (only its init-code hash is needed).
    V2Pair,
    /// Uniswap V2 Router02.
    V2Router02,
    /// Uniswap V3 factory.
    V3Factory,
    /// Uniswap V3 pool (only its init-code hash is needed).
    V3Pool,
    /// Uniswap V3 NonfungiblePositionManager.
    V3PositionManager,
    /// Uniswap V3 SwapRouter.
    V3SwapRouter,
    /// Uniswap V3 QuoterV2.
    V3QuoterV2,
    /// Balancer V2 `Authorizer` (task `20210418-authorizer`; constructor `(admin)`).
    BalancerAuthorizer,
    /// Balancer V2 `Vault` (task `20210418-vault`; constructor
    /// `(authorizer, weth, pauseWindowDuration, bufferPeriodDuration)`).
    BalancerVault,
    /// Balancer V2 `WeightedPool`, April 2021 release (task `20210418-weighted-pool`; constructor
    /// `(vault, name, symbol, tokens, normalizedWeights, swapFeePercentage, pauseWindowDuration,
    /// bufferPeriodDuration, owner)`, tokens sorted by address; it registers itself with the Vault).
    BalancerWeightedPool,
    /// Balancer V2 `ProtocolFeePercentagesProvider` (task `20220725-protocol-fee-percentages-provider`;
    /// constructor `(vault, maxYieldValue, maxAUMValue)`), needed by pools from 2022 on.
    BalancerProtocolFeeProvider,
    /// Balancer V2 `WeightedPool` v3 (task `20230206-weighted-pool-v3`; constructor
    /// `(NewPoolParams{name, symbol, tokens, normalizedWeights, rateProviders, assetManagers,
    /// swapFeePercentage}, vault, protocolFeeProvider, pauseWindowDuration, bufferPeriodDuration,
    /// owner, version)`).
    BalancerWeightedPoolV3,
    /// SwapRouter02 (`@uniswap/swap-router-contracts`): V2 and V3 swaps, multicall.
    SwapRouter02,
    /// The Universal Router (`@uniswap/universal-router`).
    UniversalRouter,
    /// Uniswap V4 `PoolManager` (`@uniswap/v4-core` `out/`; constructor `(initialOwner)`).
    V4PoolManager,
    /// v4-core's test router `PoolSwapTest` (constructor `(manager)`): unlocks, swaps, settles
    /// and takes for `msg.sender` (ERC-20 approvals to the router; ETH as `msg.value`).
    V4PoolSwapTest,
    /// v4-core's test router `PoolModifyLiquidityTest` (constructor `(manager)`).
    V4PoolModifyLiquidityTest,
    /// v4-periphery's `MockV4Router` (`foundry-out/`; constructor `(manager)`): the production
    /// `V4Router` action set behind `executeActions(bytes)`, paying with plain ERC-20
    /// `transferFrom` from the caller (no Permit2).
    V4Router,
    /// Curve's StableSwap-NG plain pool (`CurveStableSwapNG.vy`, curvefi/stableswap-ng at
    /// fd54b9a), compiled by vyper 0.4.3 from PyPI by `tests/chain/curve.sh` into
    /// `tests/chain/artifacts/curve/` (not an npm package: Curve publishes no bytecode there).
    /// Constructor `(name, symbol, A, fee, offpeg_fee_multiplier, ma_exp_time, coins,
    /// rate_multipliers, asset_types, method_ids, oracles)`; the deployer is its factory.
    CurveStableSwapNg,
}

impl Artifact {
    /// The artifact's file: below `node_modules` ([`Self::relative_path`]), or for Curve's pool
    /// what `tests/chain/curve.sh` built.
    pub fn path(self) -> PathBuf {
        match self {
            Self::CurveStableSwapNg => chain_dir().join("artifacts/curve/CurveStableSwapNG.json"),
            _ => chain_dir().join("node_modules").join(self.relative_path()),
        }
    }

    /// Path of the artifact below `node_modules` (Curve's pool: below `tests/chain`).
    pub fn relative_path(self) -> &'static str {
        match self {
            Self::CurveStableSwapNg => "artifacts/curve/CurveStableSwapNG.json",
            Self::Weth9 => "@uniswap/v2-periphery/build/WETH9.json",
            Self::Erc20Mintable => "@openzeppelin/contracts/build/contracts/ERC20PresetMinterPauser.json",
            Self::V2Factory => "@uniswap/v2-core/build/UniswapV2Factory.json",
            Self::V2Pair => "@uniswap/v2-core/build/UniswapV2Pair.json",
            Self::V2Router02 => "@uniswap/v2-periphery/build/UniswapV2Router02.json",
            Self::V3Factory => {
                "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"
            }
            Self::V3Pool => "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
            Self::V3PositionManager => {
                "@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
            }
            Self::V3SwapRouter => "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
            Self::V3QuoterV2 => "@uniswap/v3-periphery/artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json",
            Self::BalancerAuthorizer => {
                "@balancer-labs/v2-deployments/dist/tasks/20210418-authorizer/bytecode/Authorizer.json"
            }
            Self::BalancerVault => {
                "@balancer-labs/v2-deployments/dist/tasks/20210418-vault/bytecode/Vault.json"
            }
            Self::BalancerWeightedPool => {
                "@balancer-labs/v2-deployments/dist/tasks/20210418-weighted-pool/bytecode/WeightedPool.json"
            }
            Self::BalancerProtocolFeeProvider => {
                "@balancer-labs/v2-deployments/dist/tasks/20220725-protocol-fee-percentages-provider/bytecode/ProtocolFeePercentagesProvider.json"
            }
            Self::BalancerWeightedPoolV3 => {
                "@balancer-labs/v2-deployments/dist/tasks/20230206-weighted-pool-v3/artifact/WeightedPool.json"
            }
            Self::SwapRouter02 => {
                "@uniswap/swap-router-contracts/artifacts/contracts/SwapRouter02.sol/SwapRouter02.json"
            }
            Self::UniversalRouter => {
                "@uniswap/universal-router/artifacts/contracts/UniversalRouter.sol/UniversalRouter.json"
            }
            Self::V4PoolManager => "@uniswap/v4-core/out/PoolManager.sol/PoolManager.json",
            Self::V4PoolSwapTest => "@uniswap/v4-core/out/PoolSwapTest.sol/PoolSwapTest.json",
            Self::V4PoolModifyLiquidityTest => {
                "@uniswap/v4-core/out/PoolModifyLiquidityTest.sol/PoolModifyLiquidityTest.json"
            }
            Self::V4Router => "@uniswap/v4-periphery/foundry-out/MockV4Router.sol/MockV4Router.json",
        }
    }
}

/// The folder holding the pinned npm packages: `KEEL_CHAIN_DIR` or `<workspace>/tests/chain`.
pub fn chain_dir() -> PathBuf {
    std::env::var_os(CHAIN_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/chain"))
}

/// The anvil binary: `KEEL_ANVIL` or the one shipped in `@foundry-rs/anvil-linux-amd64`.
pub fn anvil_path() -> Result<PathBuf> {
    let (path, hint) = match std::env::var_os(ANVIL_ENV) {
        Some(p) => (PathBuf::from(p), "; KEEL_ANVIL is set: check it"),
        None => (
            chain_dir().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"),
            "; or set KEEL_ANVIL to an anvil binary",
        ),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(AnvilError::Missing {
            what: "anvil binary",
            path: path.display().to_string(),
            chain_dir: chain_dir().display().to_string(),
            hint,
        })
    }
}

/// Reads an artifact's creation bytecode.
pub fn bytecode(artifact: Artifact) -> Result<Bytes> {
    let path = artifact.path();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            AnvilError::Missing {
                what: "contract artifact",
                path: path.display().to_string(),
                chain_dir: chain_dir().display().to_string(),
                hint: if artifact == Artifact::CurveStableSwapNg {
                    "; Curve's StableSwap-NG pool is built by `tests/chain/curve.sh` (which `make chain-deps` runs)"
                } else {
                    ""
                },
            }
        } else {
            AnvilError::Artifact { path: path.display().to_string(), reason: e.to_string() }
        }
    })?;
    let bad = |reason: String| AnvilError::Artifact { path: path.display().to_string(), reason };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let code = match (&json["bytecode"], &json["creationCode"]) {
        (serde_json::Value::String(s), _) | (_, serde_json::Value::String(s)) => s.as_str(),
        (v, _) => v["object"].as_str().ok_or_else(|| bad("no `bytecode` or `creationCode` string".into()))?,
    };
    let bytes = hex::decode(code).map_err(|e| bad(format!("bytecode is not hex: {e}")))?;
    if bytes.is_empty() {
        return Err(bad("empty bytecode".into()));
    }
    Ok(bytes.into())
}

/// keccak256 of an artifact's creation code (the CREATE2 init-code hash of pairs and pools).
pub fn init_code_hash(artifact: Artifact) -> Result<B256> {
    Ok(keccak256(bytecode(artifact)?))
}
