//! The token table, the instrument table and per-token price state.
//!
//! Tokens get dense [`TokenId`]s in config order. Every distinct exchange symbol named by a
//! [`PriceSource::Instrument`] gets an [`InstrumentId`] in first-seen order (walking the tokens in
//! config order); [`TokenTable::instrument_symbols`] lists them by id so the feed builds its
//! symbol → id lookup with the same numbering. Several tokens may share one instrument (say `WETH`
//! and `ETH` both priced off `ETHUSDT`): a quote updates all of them.
//!
//! A token's price is the mid of its instrument's top of book, or a fixed price. An instrument price
//! is *stale* when `now - recv_ns > stale_after_ms`; a fixed price is never stale. A token whose
//! instrument has not quoted yet has no price ([`Price::is_known`] is false).

use alloy_primitives::{Address, U256};

use crate::clock::Nanos;
use crate::config::{ConfigError, PriceSource, TokenConfig};
use crate::event::{Quote, Trade};
use crate::ids::{InstrumentId, TokenId};

/// Where a token's price comes from, resolved to ids.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum PriceOrigin {
    /// The mid of an instrument's top of book.
    Instrument(InstrumentId),
    /// A fixed price in the numeraire.
    Fixed(f64),
}

/// A token of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Its id (its index in the table).
    pub id: TokenId,
    /// Symbol from the config, e.g. `WETH`.
    pub symbol: String,
    /// ERC-20 contract address.
    pub address: Address,
    /// ERC-20 decimals.
    pub decimals: u8,
    /// Price source.
    pub origin: PriceOrigin,
    /// `10^decimals` as a float: raw amount / `scale` = whole tokens.
    pub scale: f64,
}

impl Token {
    /// A raw integer amount of this token in whole tokens (lossy above 2^53 units, as every float).
    #[inline]
    pub fn to_whole(&self, raw: &U256) -> f64 {
        f64::from(raw) / self.scale
    }
}

/// The current price of one token.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Price {
    /// Best bid (equals `mid` for a fixed price; NaN before the first quote).
    pub bid: f64,
    /// Best ask (equals `mid` for a fixed price; NaN before the first quote).
    pub ask: f64,
    /// `(bid + ask) / 2`, or the fixed price; NaN before the first quote.
    pub mid: f64,
    /// Where it comes from.
    pub origin: PriceOrigin,
    /// Exchange event time of the last quote, ms since the Unix epoch (0 when not sent or fixed).
    pub exchange_ms: u64,
    /// Monotonic receive time of the last quote (0 for a fixed price).
    pub recv_ns: Nanos,
}

impl Price {
    fn initial(origin: PriceOrigin) -> Self {
        match origin {
            PriceOrigin::Fixed(p) => Self { bid: p, ask: p, mid: p, origin, exchange_ms: 0, recv_ns: 0 },
            PriceOrigin::Instrument(_) => {
                Self { bid: f64::NAN, ask: f64::NAN, mid: f64::NAN, origin, exchange_ms: 0, recv_ns: 0 }
            }
        }
    }

    /// Whether there is a price at all (a fixed price, or at least one valid quote).
    #[inline(always)]
    pub fn is_known(&self) -> bool {
        self.mid > 0.0
    }

    /// Whether the price is older than `stale_after_ns` at `now` (`now - recv_ns > stale_after_ns`).
    /// A fixed price is never stale; a missing price is not stale (it is missing: see
    /// [`Price::is_known`]).
    #[inline(always)]
    pub fn is_stale(&self, now: Nanos, stale_after_ns: u64) -> bool {
        matches!(self.origin, PriceOrigin::Instrument(_))
            && self.is_known()
            && now.saturating_sub(self.recv_ns) > stale_after_ns
    }
}

/// Why a quote was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuoteReject {
    /// Its instrument id is not in the table.
    UnknownInstrument,
    /// Bid or ask not finite and positive, or the book is crossed.
    Invalid,
}

/// Tokens, instruments and their prices.
#[derive(Debug, Clone)]
pub struct TokenTable {
    tokens: Vec<Token>,
    prices: Vec<Price>,
    instruments: Vec<String>,
    instrument_tokens: Vec<Vec<TokenId>>,
    last_trades: Vec<Option<Trade>>,
    stale_after_ns: u64,
}

impl TokenTable {
    /// Builds the table from the `[[tokens]]` config, in config order.
    pub fn new(configs: &[TokenConfig], stale_after_ms: u64) -> Result<Self, ConfigError> {
        if configs.len() > u16::MAX as usize {
            return Err(ConfigError::new("tokens", "too many tokens"));
        }
        let mut tokens = Vec::with_capacity(configs.len());
        let mut instruments: Vec<String> = Vec::new();
        let mut instrument_tokens: Vec<Vec<TokenId>> = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let id = TokenId(i as u16);
            let origin = match &c.price {
                PriceSource::Fixed { fixed } => PriceOrigin::Fixed(*fixed),
                PriceSource::Instrument { symbol } => {
                    let k = match instruments.iter().position(|s| s == symbol) {
                        Some(k) => k,
                        None => {
                            if instruments.len() >= u16::MAX as usize {
                                return Err(ConfigError::new(
                                    format!("tokens[{}].price.symbol", c.symbol),
                                    "too many instruments",
                                ));
                            }
                            instruments.push(symbol.clone());
                            instrument_tokens.push(Vec::new());
                            instruments.len() - 1
                        }
                    };
                    instrument_tokens[k].push(id);
                    PriceOrigin::Instrument(InstrumentId(k as u16))
                }
            };
            tokens.push(Token {
                id,
                symbol: c.symbol.clone(),
                address: c.address,
                decimals: c.decimals,
                origin,
                scale: 10f64.powi(i32::from(c.decimals)),
            });
        }
        let prices = tokens.iter().map(|t| Price::initial(t.origin)).collect();
        let last_trades = vec![None; instruments.len()];
        Ok(Self {
            tokens,
            prices,
            instruments,
            instrument_tokens,
            last_trades,
            stale_after_ns: stale_after_ms.saturating_mul(1_000_000),
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the table is empty (never, once built from a validated config).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// All tokens, indexed by [`TokenId`].
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// One token.
    #[inline(always)]
    pub fn token(&self, id: TokenId) -> Option<&Token> {
        self.tokens.get(id.idx())
    }

    /// The id of the token with this config symbol.
    pub fn id_of(&self, symbol: &str) -> Option<TokenId> {
        self.tokens.iter().find(|t| t.symbol == symbol).map(|t| t.id)
    }

    /// The current price of a token.
    #[inline(always)]
    pub fn price(&self, id: TokenId) -> Option<&Price> {
        self.prices.get(id.idx())
    }

    /// All prices, indexed by [`TokenId`].
    #[inline(always)]
    pub fn prices(&self) -> &[Price] {
        &self.prices
    }

    /// Exchange symbols indexed by [`InstrumentId`]: the feed's lookup table must use these ids.
    pub fn instrument_symbols(&self) -> &[String] {
        &self.instruments
    }

    /// The id of an exchange symbol.
    pub fn instrument_id(&self, symbol: &str) -> Option<InstrumentId> {
        self.instruments.iter().position(|s| s == symbol).map(|k| InstrumentId(k as u16))
    }

    /// The tokens priced off an instrument (empty for an unknown id).
    #[inline(always)]
    pub fn instrument_tokens(&self, id: InstrumentId) -> &[TokenId] {
        self.instrument_tokens.get(id.idx()).map_or(&[], Vec::as_slice)
    }

    /// The last trade print of an instrument.
    pub fn last_trade(&self, id: InstrumentId) -> Option<&Trade> {
        self.last_trades.get(id.idx()).and_then(Option::as_ref)
    }

    /// The staleness threshold in nanoseconds.
    #[inline(always)]
    pub fn stale_after_ns(&self) -> u64 {
        self.stale_after_ns
    }

    /// Whether a token's price is stale at `now` (false for unknown ids, fixed and missing prices).
    #[inline]
    pub fn is_stale(&self, id: TokenId, now: Nanos) -> bool {
        self.prices.get(id.idx()).is_some_and(|p| p.is_stale(now, self.stale_after_ns))
    }

    /// Applies a quote to every token priced off its instrument. Hot path: no allocation.
    #[inline]
    pub(crate) fn apply_quote(&mut self, q: &Quote) -> Result<(), QuoteReject> {
        let Some(list) = self.instrument_tokens.get(q.instrument.idx()) else {
            return Err(QuoteReject::UnknownInstrument);
        };
        // `!(x > 0)` also rejects NaN.
        if !(q.bid > 0.0 && q.ask >= q.bid && q.ask.is_finite()) {
            return Err(QuoteReject::Invalid);
        }
        let mid = 0.5 * (q.bid + q.ask);
        for &t in list {
            if let Some(p) = self.prices.get_mut(t.idx()) {
                p.bid = q.bid;
                p.ask = q.ask;
                p.mid = mid;
                p.exchange_ms = q.exchange_ms;
                p.recv_ns = q.recv_ns;
            }
        }
        Ok(())
    }

    /// Stores a trade print as its instrument's last trade.
    pub(crate) fn apply_trade(&mut self, t: &Trade) -> Result<(), QuoteReject> {
        let Some(slot) = self.last_trades.get_mut(t.instrument.idx()) else {
            return Err(QuoteReject::UnknownInstrument);
        };
        if !(t.price > 0.0 && t.price.is_finite()) {
            return Err(QuoteReject::Invalid);
        }
        *slot = Some(*t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(symbol: &str, byte: u8, price: PriceSource) -> TokenConfig {
        TokenConfig { symbol: symbol.into(), address: Address::repeat_byte(byte), decimals: 18, price }
    }

    fn inst(s: &str) -> PriceSource {
        PriceSource::Instrument { symbol: s.into() }
    }

    #[test]
    fn ids_in_config_order_and_instruments_first_seen() {
        let t = TokenTable::new(
            &[
                cfg("WETH", 1, inst("ETHUSDT")),
                cfg("USDC", 2, PriceSource::Fixed { fixed: 1.0 }),
                cfg("WBTC", 3, inst("BTCUSDT")),
                cfg("ETH", 4, inst("ETHUSDT")),
            ],
            1_000,
        )
        .unwrap();
        assert_eq!(t.id_of("WBTC"), Some(TokenId(2)));
        assert_eq!(t.instrument_symbols(), &["ETHUSDT".to_string(), "BTCUSDT".to_string()]);
        assert_eq!(t.instrument_tokens(InstrumentId(0)), &[TokenId(0), TokenId(3)]);
        assert_eq!(t.instrument_tokens(InstrumentId(9)), &[] as &[TokenId]);
        assert!(t.price(TokenId(1)).unwrap().is_known());
        assert!(!t.price(TokenId(0)).unwrap().is_known());
    }

    #[test]
    fn quotes_update_every_token_of_the_instrument_and_bad_ones_are_refused() {
        let mut t =
            TokenTable::new(&[cfg("WETH", 1, inst("ETHUSDT")), cfg("ETH", 2, inst("ETHUSDT"))], 1_000)
                .unwrap();
        let q = Quote {
            instrument: InstrumentId(0),
            bid: 99.0,
            bid_qty: 1.0,
            ask: 101.0,
            ask_qty: 1.0,
            update_id: 1,
            exchange_ms: 7,
            recv_ns: 10,
        };
        t.apply_quote(&q).unwrap();
        for id in [TokenId(0), TokenId(1)] {
            let p = t.price(id).unwrap();
            assert_eq!((p.bid, p.ask, p.mid, p.exchange_ms, p.recv_ns), (99.0, 101.0, 100.0, 7, 10));
        }
        assert_eq!(t.apply_quote(&Quote { bid: f64::NAN, ..q }), Err(QuoteReject::Invalid));
        assert_eq!(t.apply_quote(&Quote { ask: 98.0, ..q }), Err(QuoteReject::Invalid));
        assert_eq!(t.apply_quote(&Quote { bid: 0.0, ..q }), Err(QuoteReject::Invalid));
        assert_eq!(t.apply_quote(&Quote { ask: f64::INFINITY, ..q }), Err(QuoteReject::Invalid));
        assert_eq!(
            t.apply_quote(&Quote { instrument: InstrumentId(3), ..q }),
            Err(QuoteReject::UnknownInstrument)
        );
        // Stale strictly after the threshold.
        assert!(!t.is_stale(TokenId(0), 10 + 1_000_000_000));
        assert!(t.is_stale(TokenId(0), 11 + 1_000_000_000));
    }
}
