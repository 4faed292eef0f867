//! Integration tests of keel-sim, one binary (see STYLE.md §11): the simulated market against the
//! production feeds and router, and the chain tests against real anvil.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

mod chain;
mod sim;
