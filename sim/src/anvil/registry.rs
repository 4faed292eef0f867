//! Keel's parameter registry (`sim/contracts/KeelParams.sol`) on the test chain: compiled at run
//! time with the pinned solc-js (`solc` in `tests/chain/package.json`, run by `node`), deployed by
//! dev account 0 (its owner), and driven by owner transactions in tests and `keel devnet`.
//!
//! Only the Solidity source is in the repository; the bytecode is compiled on each deployment
//! (about 1.5 s) and never committed.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, hex, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use keel_amm::abi::IKeelParams;

use super::artifacts::chain_dir;
use super::error::{AnvilError, Result};
use super::harness::AnvilChain;

/// The registry's Solidity source.
pub const KEEL_PARAMS_SOURCE: &str = include_str!("../../contracts/KeelParams.sol");

/// The EVM version the registry is compiled for (anvil's default fork runs it).
pub const EVM_VERSION: &str = "cancun";

/// The node script: reads the source on stdin, compiles it with `solc` from the chain folder's
/// `node_modules`, prints the creation bytecode (hex) or the compiler's errors (exit 1).
const COMPILE_JS: &str = r#"
const solc = require(process.argv[1]);
let src = '';
process.stdin.on('data', (d) => { src += d; });
process.stdin.on('end', () => {
  const input = {
    language: 'Solidity',
    sources: { 'KeelParams.sol': { content: src } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: process.argv[2],
      outputSelection: { '*': { '*': ['evm.bytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors || []).filter((e) => e.severity === 'error');
  if (errors.length > 0) {
    process.stderr.write(errors.map((e) => e.formattedMessage).join('\n'));
    process.exit(1);
  }
  process.stdout.write(out.contracts['KeelParams.sol'].KeelParams.evm.bytecode.object);
});
"#;

/// Where the pinned solc-js package is looked for.
pub fn solc_path() -> PathBuf {
    chain_dir().join("node_modules/solc")
}

/// Compiles `KeelParams.sol` with the pinned solc-js; its creation bytecode.
pub fn compile_keel_params() -> Result<Bytes> {
    let solc = solc_path();
    if !solc.join("package.json").is_file() {
        return Err(AnvilError::Missing {
            what: "solc-js (npm package `solc`)",
            path: solc.display().to_string(),
            chain_dir: chain_dir().display().to_string(),
            hint: "",
        });
    }
    let artifact =
        |reason: String| AnvilError::Artifact { path: "sim/contracts/KeelParams.sol".into(), reason };
    let mut child = Command::new("node")
        .args(["--input-type=commonjs", "-e", COMPILE_JS])
        .arg(&solc)
        .arg(EVM_VERSION)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| artifact(format!("running node (is Node.js installed?): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(KEEL_PARAMS_SOURCE.as_bytes())
            .map_err(|e| artifact(format!("writing to solc: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| artifact(format!("waiting for solc: {e}")))?;
    if !out.status.success() {
        return Err(artifact(format!(
            "solc failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let code =
        hex::decode(out.stdout.trim_ascii()).map_err(|e| artifact(format!("solc output is not hex: {e}")))?;
    if code.is_empty() {
        return Err(artifact("solc produced empty bytecode".into()));
    }
    Ok(code.into())
}

/// The registry's id of a portfolio: keccak256 of its name in Keel's config.
pub fn portfolio_key(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

/// Sends `input` to `to` (or deploys it) through `wallet` (a provider that signs) and waits for
/// the receipt; the block it landed in and the contract it created.
async fn send<P: Provider>(
    wallet: &P,
    to: Option<Address>,
    input: Vec<u8>,
    label: &str,
) -> Result<(u64, Option<Address>)> {
    let tx = match to {
        Some(to) => TransactionRequest::default().with_to(to).with_input(input),
        None => TransactionRequest::default().with_deploy_code(Bytes::from(input)),
    }
    .with_gas_limit(3_000_000);
    let r = super::send::landed(wallet, tx, label).await?;
    let block =
        r.block_number.ok_or_else(|| AnvilError::rpc(label.to_string(), "no block in the receipt"))?;
    Ok((block, r.contract_address))
}

/// Compiles and deploys the registry from dev account `owner` (its owner); its address.
pub async fn deploy_keel_params(chain: &AnvilChain, owner: usize) -> Result<Address> {
    let code = compile_keel_params()?;
    let (_, address) = send(&chain.wallet_provider(owner), None, code.to_vec(), "deploy KeelParams").await?;
    address.ok_or_else(|| AnvilError::rpc("deploy KeelParams", "no contract address in the receipt"))
}

/// Owner transaction (`owner`: a provider signing as the registry's owner): portfolio `name`'s
/// targets, `(token, basis points)`; the block it landed in.
pub async fn set_targets<P: Provider>(
    owner: &P,
    registry: Address,
    name: &str,
    weights: &[(Address, u16)],
) -> Result<u64> {
    let call = IKeelParams::setTargetsCall {
        id: portfolio_key(name),
        tokens: weights.iter().map(|w| w.0).collect(),
        weightsBps: weights.iter().map(|w| w.1).collect(),
    };
    Ok(send(owner, Some(registry), call.abi_encode(), "KeelParams.setTargets").await?.0)
}

/// Owner transaction: portfolio `name`'s band, basis points; the block it landed in.
pub async fn set_band<P: Provider>(owner: &P, registry: Address, name: &str, band_bps: u16) -> Result<u64> {
    let call = IKeelParams::setBandCall { id: portfolio_key(name), bandBps: band_bps };
    Ok(send(owner, Some(registry), call.abi_encode(), "KeelParams.setBand").await?.0)
}

/// Owner transaction: the global pause; the block it landed in.
pub async fn set_global_paused<P: Provider>(owner: &P, registry: Address, paused: bool) -> Result<u64> {
    let call = IKeelParams::setGlobalPausedCall { paused };
    Ok(send(owner, Some(registry), call.abi_encode(), "KeelParams.setGlobalPaused").await?.0)
}
