//! keel-feeds integration tests, linked as one binary.
//!
//! * `captures`: every frame of three real Binance sessions decodes, and agrees with `serde_json`.
//! * `fuzz`: random bytes and mutated real frames never panic the decoder.
//! * `loopback`: the websocket client against a local server: replay, reconnect, ping/pong, idle,
//!   malformed frames, full queue, shutdown.

mod captures;
mod fuzz;
mod loopback;
mod support;
