//! Integration tests of keel-bench, one binary (see STYLE.md §11): the harness modes, and the
//! production pipeline on the harness's scenario under faults and the safety switches.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

mod chain_watches;
mod faults;
mod harness;
mod hot_path;
mod inclusion;
mod isolated;
mod poll;
mod safety;
mod tls_relay;

use keel_amm::alloc_count::{CountingAllocator, allocations as counted};

/// Counts what the test thread allocates while [`allocations`] runs (`hot_path.rs`); every other
/// test pays one thread-local check per allocation.
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns (calls, bytes) allocated on this thread meanwhile.
pub(crate) fn allocations(f: impl FnOnce()) -> (u64, u64) {
    let ((), a) = counted(f);
    (a.calls, a.bytes)
}
