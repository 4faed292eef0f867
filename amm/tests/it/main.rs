//! Integration tests of keel-router, one binary: the split optimiser's properties and `keel quote`.

mod common;
mod quote;
mod split;
