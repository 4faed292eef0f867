//! Binance market data: frame decoding, symbol table, and mapping to engine events.
//!
//! ```text
//! websocket frame ──decode──▶ Decoded<'frame> ──map_decoded(table, recv_ns)──▶ Event::{Quote, Trade}
//! ```
//!
//! Everything here is on the hot path: no allocation, no lock, no syscall. [`decode`] borrows from
//! the frame and never panics, whatever the bytes; [`InstrumentTable`] is built once at start.
//! The websocket client that drives this is [`crate::ws`].

mod decode;
mod map;
mod num;
mod table;

pub use decode::{
    AggTrade, BookTicker, DecodeError, Decoded, DepthUpdate, Kline, LevelIter, Levels, MAX_DEPTH, Symbol,
    decode,
};
pub use map::{Mapped, map_decoded, to_event};
pub use num::{parse_decimal, parse_u64};
pub use table::{InstrumentTable, MAX_SYMBOL_LEN, TableError};
