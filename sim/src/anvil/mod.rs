//! A real local chain for tests and benchmarks: anvil running the real Uniswap V2 and V3 contracts,
//! and a loopback Flashbots relay that lands bundles on it.
//!
//! * [`harness::AnvilChain`] spawns anvil (from the pinned npm package in `tests/chain/`, or
//!   `KEEL_ANVIL`) on 127.0.0.1 with a free port, deploys WETH9, three mintable ERC-20s, Uniswap V2
//!   (factory, Router02) and V3 (factory, NonfungiblePositionManager, SwapRouter, QuoterV2), creates
//!   pools with liquidity (V3 with several overlapping positions, so swaps cross initialized ticks),
//!   funds the dev accounts and kills anvil when dropped.
//! * [`relay::AnvilRelay`] serves `eth_sendBundle` / `eth_callBundle` over HTTP on 127.0.0.1 and
//!   drives block production: it holds bundles until their target block and lands each one
//!   atomically or not at all.
//!
//! * [`balancer::deploy_balancer_weighted`] adds a Balancer V2 Vault and a weighted pool on demand.
//! * [`curve::deploy_curve_ng`] deploys Curve's StableSwap-NG plain pool, compiled from its Vyper
//!   source by `tests/chain/curve.sh` (vyper from PyPI).
//! * [`registry::deploy_keel_params`] compiles Keel's parameter registry with the pinned solc-js and
//!   deploys it; [`registry::set_targets`] and friends are its owner's transactions.
//! * [`v4::deploy_v4`] adds a Uniswap V4 `PoolManager`, a `V4Router` and a liquidity router on
//!   demand; pools are initialized and funded through the returned [`V4Deployment`], and
//!   [`V4Deployment::deploy_universal_router`] adds Permit2 (runtime code from the pinned
//!   v4-periphery package, `anvil_setCode`) and the real Universal Router over its `PoolManager`.
//!
//! Contract bytecode is read at run time from the npm artifacts (`tests/chain/node_modules`); a
//! missing install is a loud error naming the command that fixes it, never a silent skip.

pub mod artifacts;
pub mod balancer;
mod blocksim;
pub mod contracts;
pub mod curve;
pub mod error;
pub mod harness;
pub mod recorder;
pub mod registry;
pub mod relay;
pub mod routers;
mod send;
pub mod universal_router;
pub mod v4;

pub use balancer::{BalancerDeployment, WeightedToken, deploy_balancer_weighted};
pub use curve::{CurveNgParams, deploy_curve_ng, dx_to_price, read_ng_pool, seed_curve_ng};
pub use error::{AnvilError, Result};
pub use harness::{AnvilChain, ChainAddresses, TokenInfo, V2PairInfo, V3PoolInfo};
pub use recorder::RpcRecorder;
pub use relay::{AnvilRelay, BuilderOptions, BundleStatus, LandedBundle, RelayOptions, SealGate};
pub use routers::{RouterAddresses, deploy_routers};
pub use universal_router::{install_permit2, permit2_runtime_code};
pub use v4::{V4Deployment, V4Position, deploy_v4};
