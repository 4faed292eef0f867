//! # keel-router
//!
//! The execution stage: takes the engine's [`keel_engine::RebalanceIntent`]s, prices each leg against
//! exact pool state, splits it across pools for the best output after gas, builds and signs EIP-1559
//! transactions, and submits them as a private Flashbots bundle to every configured relay — or, on a
//! chain without Flashbots, as raw transactions to a private RPC endpoint ([`private`]).
//! Signatures (the transactions' and the `X-Flashbots-Signature`) use nonces precomputed by a
//! background thread per key ([`presign`]; `[router] presign_pool`), well under a microsecond each.
//!
//! All on-chain amounts are integers (`U256`); pool math reproduces the contracts to the wei.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod bundle;
pub mod config;
pub mod cost;
pub mod exec;
pub mod fastpost;
pub mod head_view;
pub mod oracle;
pub mod plan;
pub mod presign;
pub mod private;
pub mod relay;
pub mod signer;
pub mod stage;
pub mod tx;
