//! Dense integer ids assigned at load time. The hot path indexes `Vec`s with them; it never looks up
//! strings.

/// Index of a token in the engine's token table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct TokenId(pub u16);

/// Index of a portfolio in the engine's portfolio table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortfolioId(pub u32);

/// Index of a market-data instrument (an exchange symbol such as `ETHUSDT`) in the feed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct InstrumentId(pub u16);

impl TokenId {
    /// The id as a `usize` index.
    #[inline(always)]
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

impl PortfolioId {
    /// The id as a `usize` index.
    #[inline(always)]
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

impl InstrumentId {
    /// The id as a `usize` index.
    #[inline(always)]
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}
