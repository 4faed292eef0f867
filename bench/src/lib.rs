//! # keel-bench
//!
//! Keel's latency harness (behind the `keel-bench` binary) and nothing else: it measures the
//! production pipeline ([`keel_runtime::pipeline`]) against the simulated market ([`keel_sim`]).
//!
//! * [`fuzz`] — `keel-bench fuzz`: a stable-Rust mutation fuzzer for the parsers of outside input.
//! * [`harness`] — latency, throughput and scale modes, their reports, histograms and plots.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod fuzz;
pub mod harness;

// The `keel-bench` binary's own dependencies (a package's library and binary share one list).
use clap as _;
use mimalloc as _;
use tracing_subscriber as _;
