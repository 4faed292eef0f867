//! Binance market data: frame decoding, symbol table, and mapping to engine events.
//!
//! ```text
//! websocket frame ──decode──▶ Decoded<'frame> ──map_decoded(table, recv_ns)──▶ Event::{Quote, Trade}
//! ```
//!
//! Everything here is on the hot path: no allocation, no lock, no syscall, no `unsafe`. [`decode()`]
//! borrows from the frame and never panics, whatever the bytes; [`InstrumentTable`] is built once at
//! start. It needs no network dependency (keel-feeds without its `net` feature); the websocket
//! client that drives it is `crate::ws`.
//!
//! One file per job:
//!
//! | module | job |
//! |---|---|
//! | `decode` | [`decode()`], the entry point: fast path, else general path |
//! | `fast` | the `bookTicker` fast path for the exact layout Binance sends |
//! | `parse` | the general path: any key order and spacing, every payload kind, precise errors |
//! | `scan` | the JSON scanner the general path walks the frame with ([`MAX_DEPTH`]) |
//! | `num` | decimals to `f64`, integers to `u64`, 8 digits at a time ([`parse_decimal`], [`parse_u64`]) |
//! | `word` | 8-byte word loads and byte classes shared by `scan`, `fast` and `num` |
//! | `types` | the output types: [`Decoded`] and its [`BookTicker`], [`AggTrade`], … |
//! | `error` | [`DecodeError`] |
//! | `table` | [`InstrumentTable`]: exchange symbol → dense instrument id |
//! | `map` | [`map_decoded`]/[`to_event`]: decoded frame → engine event |

mod decode;
mod error;
mod fast;
mod map;
mod num;
mod parse;
mod scan;
mod table;
mod types;
mod word;

pub use decode::decode;
pub use error::{DecodeError, Result};
pub use map::{Mapped, map_decoded, to_event};
pub use num::{parse_decimal, parse_u64};
pub use scan::MAX_DEPTH;
pub use table::{InstrumentTable, MAX_SYMBOL_LEN, TableError};
pub use types::{AggTrade, BookTicker, Decoded, DepthUpdate, Kline, LevelIter, Levels, Symbol};
