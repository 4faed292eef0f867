//! # keel-feeds
//!
//! Market data and chain state in, engine events out.
