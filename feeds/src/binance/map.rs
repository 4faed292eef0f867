//! **Hot path**: a [`Decoded`] frame to an engine [`Event`].

use keel_engine::event::{Quote, Trade};
use keel_engine::{Event, Nanos};

use super::table::InstrumentTable;
use super::types::Decoded;

/// What a decoded frame means for the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mapped {
    /// An event to push.
    Event(Event),
    /// A quote or trade for a symbol the table does not hold: skipped (and counted by the feed).
    UnknownSymbol,
    /// A frame that carries no engine event today (depth, kline, control, other).
    NoEvent,
}

/// Maps a decoded frame: `bookTicker` → [`Event::Quote`], `aggTrade` → [`Event::Trade`].
#[inline]
pub fn map_decoded(decoded: &Decoded<'_>, table: &InstrumentTable, recv_ns: Nanos) -> Mapped {
    match decoded {
        Decoded::BookTicker(t) => match table.get(t.symbol.as_bytes()) {
            Some(instrument) => Mapped::Event(Event::Quote(Quote {
                instrument,
                bid: t.bid,
                bid_qty: t.bid_qty,
                ask: t.ask,
                ask_qty: t.ask_qty,
                update_id: t.update_id,
                exchange_ms: t.event_ms,
                recv_ns,
            })),
            None => Mapped::UnknownSymbol,
        },
        Decoded::AggTrade(t) => match table.get(t.symbol.as_bytes()) {
            Some(instrument) => Mapped::Event(Event::Trade(Trade {
                instrument,
                price: t.price,
                qty: t.qty,
                exchange_ms: t.trade_ms,
                recv_ns,
            })),
            None => Mapped::UnknownSymbol,
        },
        Decoded::DepthUpdate(_)
        | Decoded::Kline(_)
        | Decoded::ControlResponse { .. }
        | Decoded::Other { .. } => Mapped::NoEvent,
    }
}

/// The engine event of a decoded frame, if it has one and its symbol is known.
///
/// Use [`map_decoded`] to tell an unknown symbol from a frame without an event.
#[inline]
pub fn to_event(decoded: &Decoded<'_>, table: &InstrumentTable, recv_ns: Nanos) -> Option<Event> {
    match map_decoded(decoded, table, recv_ns) {
        Mapped::Event(e) => Some(e),
        Mapped::UnknownSymbol | Mapped::NoEvent => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::decode;
    use keel_engine::InstrumentId;

    #[test]
    fn quote_trade_unknown_and_none() {
        let table = InstrumentTable::new(["SUSHIUSDT"]).unwrap();
        let bt = br#"{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT","b":"7.6110","B":"2","a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}}"#;
        let d = decode(bt).unwrap();
        assert_eq!(
            to_event(&d, &table, 42),
            Some(Event::Quote(Quote {
                instrument: InstrumentId(0),
                bid: 7.611,
                bid_qty: 2.0,
                ask: 7.612,
                ask_qty: 297.0,
                update_id: 600_859_600_576,
                exchange_ms: 1_626_992_741_017,
                recv_ns: 42,
            }))
        );
        let tr = br#"{"e":"aggTrade","E":1,"s":"SUSHIUSDT","a":9,"p":"7.6","q":"10","f":1,"l":1,"T":1626992741421,"m":false}"#;
        assert_eq!(
            to_event(&decode(tr).unwrap(), &table, 7),
            Some(Event::Trade(Trade {
                instrument: InstrumentId(0),
                price: 7.6,
                qty: 10.0,
                exchange_ms: 1_626_992_741_421,
                recv_ns: 7
            }))
        );
        let other = InstrumentTable::new(["ETHUSDT"]).unwrap();
        assert_eq!(map_decoded(&d, &other, 0), Mapped::UnknownSymbol);
        assert_eq!(map_decoded(&decode(br#"{"result":null,"id":1}"#).unwrap(), &table, 0), Mapped::NoEvent);
    }
}
