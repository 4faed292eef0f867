//! Integration tests of keel-amm, one binary: the split optimiser's properties, `keel quote`, and Curve StableSwap against its oracle.

mod common;
mod curve;
mod quote;
mod reference;
mod split;
mod subsets;
