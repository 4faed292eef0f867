//! **The reference**: Keel's decoder as it was before this rewrite, kept verbatim (its `decode.rs` and
//! `num.rs` from `keel-feeds/src/binance/` at commit 7fe76da, unit tests removed) so that tests and the
//! bench can hold the new decoder to exactly its answers.
//!
//! Do not edit these two files: they are the yardstick. Its types mirror the new crate's field for
//! field, so `format!("{:?}")` of both is the same text exactly when every value is the same
//! (`f64`'s `Debug` is shortest-round-trip, so equal text means equal bits, `-0.0` included).

#![allow(dead_code, unused_imports, unreachable_pub, missing_docs, clippy::all)]

mod decode;
mod num;

pub use decode::decode;
pub use num::{parse_decimal, parse_u64};
