//! keel-engine's integration tests, one binary (`no_alloc` is separate: it needs its own global
//! allocator).
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

mod index;
