//! # keel-feeds
//!
//! Market data and chain state in, engine events out.
//!
//! ```text
//! Binance ws ──ws::run_binance_feed──▶ binance::decode ──▶ binance::map_decoded ──try_push──▶ Queue<Event>
//! ```
//!
//! * [`binance`] is the hot path: a borrowed, allocation-free frame decoder, the symbol →
//!   `InstrumentId` table, and the mapping to engine events.
//! * [`ws`] is the async client task (connect, ping/pong, idle detection, reconnect with
//!   [`backoff`], shutdown on a cancellation token); [`stats`] holds its counters.
//! * A full engine queue drops the event and counts it; nothing here blocks or buffers without bound.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod backoff;
pub mod binance;
pub mod node;
pub mod poll;
pub mod rpc;
pub mod stats;
pub mod ws;
