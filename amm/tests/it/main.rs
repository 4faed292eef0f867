//! Integration tests of keel-amm, one binary: the split optimiser's properties, `keel quote`, and Curve StableSwap against its oracle.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

mod common;
mod curve;
mod quote;
mod reference;
mod split;
mod subsets;
mod venues;
