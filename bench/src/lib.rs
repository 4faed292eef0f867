//! # keel-bench
//!
//! Everything Keel runs against and measures itself with:
//!
//! * [`sim`] — the simulated market: a Binance-format websocket, an Ethereum JSON-RPC chain with V2
//!   pools and an arbitrageur, and a Flashbots relay that lands bundles atomically;
//! * [`anvil`] — real-chain tests: anvil with the real Uniswap V2/V3 contracts, and a loopback relay
//!   that lands bundles on it;
//! * [`quotes`] — a loopback Binance quote server with caller-set prices;
//! * [`pipeline`] — the production pipeline assembly shared by `keel run`, `keel demo` and the harness;
//! * [`safety`] — the kill switch (file, SIGUSR1, HTTP on 127.0.0.1) and dry runs;
//! * [`metrics`] — Prometheus `/metrics` on the same 127.0.0.1 control endpoint;
//! * [`harness`] — the latency harness behind `keel-bench` (latency, throughput and scale modes).

pub mod anvil;
pub mod harness;
pub mod metrics;
pub mod pipeline;
pub mod quotes;
pub mod recovery;
pub mod safety;
pub mod sim;
