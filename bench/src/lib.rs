//! # keel-bench
//!
//! Keel's latency harness (behind the `keel-bench` binary) and nothing else: it measures the
//! production pipeline ([`keel_runtime::pipeline`]) against the simulated market ([`keel_sim`]).
//!
//! * [`harness`] — latency, throughput and scale modes, their reports, histograms and plots.

pub mod harness;
