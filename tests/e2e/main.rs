//! End-to-end tests of the `keel` binary and the crates together, one test binary (see STYLE.md
//! §11): the demo, the devnet, `keel run` against anvil, crash recovery under SIGKILL, the journal
//! and quote commands, config fuzzing and secret handling, record and replay.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

mod common;

mod anvil_e2e;
mod balancer_e2e;
mod book_e2e;
mod builders_e2e;
mod cppi_e2e;
mod crash_recovery;
mod curve_e2e;
mod demo_e2e;
mod devnet_e2e;
mod fuzz_config;
mod journal_cli;
mod multichain_e2e;
mod netting_e2e;
mod pair_rig;
mod predictor_e2e;
mod quote_cli;
mod registry_e2e;
mod replay_e2e;
mod secrets;
mod v4_e2e;
