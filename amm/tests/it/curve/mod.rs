//! Curve StableSwap (`keel_amm::curve`): oracle vectors from curvesim matched to the wei, and
//! property invariants with a no-panic fuzz.

mod invariants;
mod oracle;
