//! keel-feeds integration tests, linked as one binary.
//!
//! * `captures`: every frame of three real Binance sessions decodes, and agrees with `serde_json`.
//! * `faults`: a server that drops the feed 100 times: reconnects, no quote while down, no trade on
//!   the stale price; a message above the size cap drops the connection, which reconnects.
//! * `fuzz`: random bytes and mutated real frames never panic the decoder; node logs and mempool
//!   calldata never panic theirs.
//!   A million mutated frames, `#[ignore]`d: `cargo test --release -p keel-feeds --test it -- --ignored`.
//! * `hot`: the feed read on the calling thread (inline mode): every frame in order over four
//!   connections ended four ways, pings answered, reconnects with backoff, a prompt shutdown.
//! * `http`: the node's HTTP JSON-RPC with a capped reply: read under the cap, refused over it
//!   (announced or streamed), an error status reported with its body.
//! * `loopback`: the websocket client against a local server: replay, reconnect, ping/pong, idle,
//!   malformed frames, full queue, shutdown.
//! * `same_as_before`: the decoder answers exactly what the previous decoder (`reference`, kept
//!   here unchanged) answers, on every captured frame, its prefixes and single-byte edits.
// Test and bench targets see every dependency of their crate; only the library is checked.
#![allow(unused_crate_dependencies)]

mod captures;
mod faults;
mod fuzz;
mod hot;
mod http;
mod loopback;
mod reference;
mod same_as_before;
mod support;
