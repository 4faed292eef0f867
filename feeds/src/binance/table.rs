//! Exchange symbol → [`InstrumentId`], built once at start, looked up without allocating.

use keel_engine::InstrumentId;

/// Longest symbol accepted.
pub const MAX_SYMBOL_LEN: usize = 32;

/// Why a symbol list could not become a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A symbol is empty, too long, or has a character other than `A-Z a-z 0-9 _ -`.
    #[error("symbol {0:?}: expected 1 to {MAX_SYMBOL_LEN} characters of A-Z, a-z, 0-9, `_` or `-`")]
    InvalidSymbol(String),
    /// The same symbol appears twice (case-insensitively).
    #[error("symbol {0:?} listed twice")]
    Duplicate(String),
    /// More symbols than an [`InstrumentId`] can index.
    #[error("{0} symbols: at most {max} fit an InstrumentId", max = u16::MAX)]
    TooMany(usize),
}

/// Maps exchange symbols (upper case, as Binance sends them in `s`) to dense [`InstrumentId`]s in the
/// order they were given.
///
/// Lookup hashes the bytes (FxHash-style, 8 bytes at a time) into an open-addressing table at most
/// half full, then compares the bytes: no allocation, a couple of cache lines.
#[derive(Debug, Clone)]
pub struct InstrumentTable {
    symbols: Vec<Box<str>>,
    /// `id + 1`, or 0 for an empty slot; length is a power of two.
    slots: Box<[u32]>,
    mask: usize,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[inline(always)]
fn hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(SEED);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(SEED);
    }
    h ^ (h >> 32)
}

impl InstrumentTable {
    /// Builds the table; the i-th symbol gets `InstrumentId(i)`. Symbols are stored upper case, so
    /// `ethusdt` and `ETHUSDT` name the same instrument.
    pub fn new<I, S>(symbols: I) -> Result<Self, TableError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let symbols: Vec<Box<str>> =
            symbols.into_iter().map(|s| s.as_ref().to_ascii_uppercase().into_boxed_str()).collect();
        if symbols.len() > usize::from(u16::MAX) {
            return Err(TableError::TooMany(symbols.len()));
        }
        let cap = (symbols.len() * 2).next_power_of_two().max(8);
        let mut slots = vec![0u32; cap].into_boxed_slice();
        let mask = cap - 1;
        for (id, sym) in symbols.iter().enumerate() {
            let valid = !sym.is_empty()
                && sym.len() <= MAX_SYMBOL_LEN
                && sym.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if !valid {
                return Err(TableError::InvalidSymbol(sym.to_string()));
            }
            let mut i = hash(sym.as_bytes()) as usize & mask;
            loop {
                match slots[i] {
                    0 => {
                        slots[i] = id as u32 + 1;
                        break;
                    }
                    other if symbols[other as usize - 1] == *sym => {
                        return Err(TableError::Duplicate(sym.to_string()));
                    }
                    _ => i = (i + 1) & mask,
                }
            }
        }
        Ok(Self { symbols, slots, mask })
    }

    /// The id of `symbol` (exact bytes, upper case), if it is in the table.
    #[inline]
    pub fn get(&self, symbol: &[u8]) -> Option<InstrumentId> {
        let mut i = hash(symbol) as usize & self.mask;
        loop {
            let slot = *self.slots.get(i)?;
            if slot == 0 {
                return None;
            }
            let id = slot as usize - 1;
            if self.symbols.get(id).is_some_and(|s| s.as_bytes() == symbol) {
                return Some(InstrumentId(id as u16));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The symbol of `id`.
    pub fn symbol(&self, id: InstrumentId) -> Option<&str> {
        self.symbols.get(id.idx()).map(|s| &**s)
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The symbols in id order.
    pub fn symbols(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.symbols.iter().map(|s| &**s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup() {
        let t = InstrumentTable::new(["ethusdt", "BTCUSDT", "SUSHIUSDT", "A", "BTCUSDT_240329"]).unwrap();
        assert_eq!(t.get(b"ETHUSDT"), Some(InstrumentId(0)));
        assert_eq!(t.get(b"BTCUSDT"), Some(InstrumentId(1)));
        assert_eq!(t.get(b"SUSHIUSDT"), Some(InstrumentId(2)));
        assert_eq!(t.get(b"A"), Some(InstrumentId(3)));
        assert_eq!(t.get(b"BTCUSDT_240329"), Some(InstrumentId(4)));
        assert_eq!(t.get(b"ethusdt"), None);
        assert_eq!(t.get(b"XRPUSDT"), None);
        assert_eq!(t.get(b""), None);
        assert_eq!(t.symbol(InstrumentId(0)), Some("ETHUSDT"));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn many_symbols() {
        let syms: Vec<String> = (0..3000).map(|i| format!("SYM{i}USDT")).collect();
        let t = InstrumentTable::new(&syms).unwrap();
        for (i, s) in syms.iter().enumerate() {
            assert_eq!(t.get(s.as_bytes()), Some(InstrumentId(i as u16)));
        }
        assert_eq!(t.get(b"SYM3000USDT"), None);
        let empty = InstrumentTable::new(Vec::<String>::new()).unwrap();
        assert_eq!(empty.get(b"X"), None);
    }

    #[test]
    fn refuses_bad_lists() {
        assert_eq!(
            InstrumentTable::new(["ETHUSDT", "ethusdt"]).unwrap_err(),
            TableError::Duplicate("ETHUSDT".into())
        );
        assert!(matches!(InstrumentTable::new([""]), Err(TableError::InvalidSymbol(_))));
        assert!(matches!(InstrumentTable::new(["ETH/USDT"]), Err(TableError::InvalidSymbol(_))));
        assert!(matches!(InstrumentTable::new(["ethusdt@bookTicker"]), Err(TableError::InvalidSymbol(_))));
    }
}
