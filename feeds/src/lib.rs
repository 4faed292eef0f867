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
//! * [`hot`] is the same feed read on the engine thread itself (inline mode): a non-blocking
//!   socket it polls, with a connector thread doing the connecting and the backoff.
//! * [`ws`] is the async client task (connect, ping/pong, idle detection, reconnect with
//!   [`backoff`], shutdown on a cancellation token); [`stats`] holds its counters.
//! * A full engine queue drops the event and counts it; nothing here blocks or buffers without bound.
//!
//! The network side ([`ws`], [`backoff`], [`poll`], [`node`], [`rpc`]) is the default feature
//! `net`. With `default-features = false` the crate is the decoder alone ([`binance`], [`stats`]):
//! it depends on keel-engine, serde and thiserror only.
#![cfg_attr(test, allow(unused_crate_dependencies))]

#[cfg(feature = "net")]
pub mod backoff;
pub mod binance;
#[cfg(feature = "net")]
pub(crate) mod frames;
#[cfg(feature = "net")]
pub mod hot;
#[cfg(feature = "net")]
pub mod http;
#[cfg(feature = "net")]
pub mod node;
#[cfg(feature = "net")]
pub mod poll;
#[cfg(feature = "net")]
pub mod rpc;
pub mod stats;
#[cfg(feature = "net")]
pub mod ws;
