//! # keel-amm
//!
//! Keel's exact pool math and its one pool model, usable on its own: it depends on the alloy
//! primitives and `sol!` types only (no async runtime, HTTP client, database or signer), so a
//! research project can add Keel's exact Uniswap math without the engine.
//!
//! * [`abi`]: the Solidity interfaces Keel reads and calls (`sol!` bindings, calldata and events).
//! * [`v2`], [`v3`]: integer-exact Uniswap V2 `getAmountOut`/`getAmountIn` and the V3 swap loop
//!   (`SwapMath`, `SqrtPriceMath`, `TickMath`, full-precision `mulDiv`), reproducing the contracts
//!   to the wei.
//! * [`pool`]: the ONE pool model — [`pool::Pool`] (swap state), [`pool::PoolChange`] (what a quote or
//!   a pool log changes), [`pool::PoolUpdate`] (a change to a configured pool, as the node feed
//!   publishes it and the router applies it) and [`pool::PoolEntry`] (state plus metadata).
//! * [`balancer`]: integer-exact Balancer V2 weighted pools (`FixedPoint`, `LogExpMath.pow`,
//!   `WeightedMath` and the pool's fee and decimal scaling), checked to the wei against the real
//!   Vault on anvil; a pool kind of [`pool::Pool`] through [`venue::BalancerPair`].
//! * [`curve`]: integer-exact Curve StableSwap (plain pools of 2 and 3 coins; the 3pool and the
//!   factory plain-pool flavours), checked to the wei against curvesim; a pool kind of
//!   [`pool::Pool`] through [`venue::CurvePair`].
//! * [`venue`]: the two multi-token venues as two-token pools of the one model (exact quotes, the
//!   optimiser's float curves, default gas).
//! * [`split`]: the split optimiser (one order across several pools, maximising output after gas).
//! * [`quote`]: `keel quote`'s JSON request and response around the optimiser.
//!
//! All on-chain amounts are integers (`U256`, `u128`); floats only guide the optimiser's search and
//! serve analytics (mid prices).
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod abi;
#[cfg(any(test, feature = "alloc-count"))]
pub mod alloc_count;
pub mod balancer;
pub mod curve;
pub mod pool;
pub mod quote;
pub mod split;
pub mod v2;
pub mod v3;
pub mod v4;
pub mod venue;
