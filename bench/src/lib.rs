//! # keel-bench
//!
//! The simulated market (exchange websocket, chain, relay) and the latency harness.

pub mod anvil;

pub mod sim;
pub mod pipeline;
pub mod quotes;
pub mod harness;
