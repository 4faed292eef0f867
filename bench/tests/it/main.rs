//! Integration tests of keel-bench, one binary (see STYLE.md §11): the harness modes, and the
//! production pipeline on the harness's scenario under faults and the safety switches.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

mod chain_watches;
mod faults;
mod harness;
mod inclusion;
mod isolated;
mod poll;
mod safety;
mod tls_relay;
