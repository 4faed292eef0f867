//! Permit2 and the real Universal Router next to a [`V4Deployment`], so V4 swaps can go through
//! the router mainnet users send them to.
//!
//! Permit2 ships no deployable artifact in the pinned packages, but `@uniswap/v4-periphery` carries
//! its runtime bytecode as a hex literal in `lib/permit2/test/utils/DeployPermit2.sol` (what
//! `DeployPermit2` etches with `vm.etch`). It is read from that file at run time (never copied into
//! Keel) and installed with `anvil_setCode` at the canonical address
//! ([`keel_amm::abi::PERMIT2_ADDRESS`]). The Universal Router is deployed from
//! `@uniswap/universal-router`'s artifact with only its Permit2, WETH9 and V4 `PoolManager` set
//! (V2, V3, migration and Across fields zero: those commands are not used).

use alloy::primitives::{Address, B256, Bytes, hex};
use alloy::providers::Provider;
use alloy::sol_types::SolValue;
use keel_amm::abi::PERMIT2_ADDRESS;

use super::artifacts::{self, Artifact};
use super::error::{AnvilError, Result};
use super::harness::AnvilChain;
use super::routers::deploy;
use super::v4::V4Deployment;

/// Where Permit2's runtime bytecode is read, below `node_modules`.
pub const PERMIT2_SOURCE: &str = "@uniswap/v4-periphery/lib/permit2/test/utils/DeployPermit2.sol";

/// Permit2's runtime bytecode from the pinned `@uniswap/v4-periphery` package (the only `hex"…"`
/// literal of [`PERMIT2_SOURCE`]).
pub fn permit2_runtime_code() -> Result<Bytes> {
    let path = artifacts::chain_dir().join("node_modules").join(PERMIT2_SOURCE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            AnvilError::Missing {
                what: "Permit2 bytecode (DeployPermit2.sol)",
                path: path.display().to_string(),
                chain_dir: artifacts::chain_dir().display().to_string(),
                hint: "; run `make chain-deps`",
            }
        } else {
            AnvilError::Artifact { path: path.display().to_string(), reason: e.to_string() }
        }
    })?;
    let bad = |reason: &str| AnvilError::Artifact { path: path.display().to_string(), reason: reason.into() };
    let mut literals = text.split("hex\"").skip(1);
    let literal = literals.next().ok_or_else(|| bad("no hex\"…\" literal"))?;
    if literals.next().is_some() {
        return Err(bad("more than one hex\"…\" literal"));
    }
    let body = literal.split('"').next().unwrap_or_default();
    let code = hex::decode(body).map_err(|e| bad(&format!("bytecode is not hex: {e}")))?;
    if code.is_empty() {
        return Err(bad("empty bytecode"));
    }
    Ok(code.into())
}

/// Installs Permit2 at its canonical address with `anvil_setCode` (idempotent).
pub async fn install_permit2(chain: &AnvilChain) -> Result<Address> {
    let code = permit2_runtime_code()?;
    let _: serde_json::Value = chain
        .provider()
        .raw_request("anvil_setCode".into(), (PERMIT2_ADDRESS, code))
        .await
        .map_err(|e| AnvilError::rpc("anvil_setCode Permit2", e))?;
    Ok(PERMIT2_ADDRESS)
}

impl V4Deployment {
    /// Installs Permit2 (see [`install_permit2`]) and deploys a Universal Router over this
    /// deployment's `PoolManager` (automine must be on); returns the router's address.
    pub async fn deploy_universal_router(&self, chain: &AnvilChain) -> Result<Address> {
        let permit2 = install_permit2(chain).await?;
        // RouterParameters {permit2, weth9, v2Factory, v3Factory, pairInitCodeHash,
        // poolInitCodeHash, v4PoolManager, v3NFTPositionManager, v4PositionManager, spokePool}:
        // all static, so the struct encodes as its fields in a row.
        let params = (
            permit2,
            chain.addresses().weth,
            Address::ZERO,
            Address::ZERO,
            B256::ZERO,
            B256::ZERO,
            self.manager,
            Address::ZERO,
            Address::ZERO,
            Address::ZERO,
        )
            .abi_encode_params();
        deploy(chain, Artifact::UniversalRouter, params).await
    }
}
