//! Parameters governed on chain: what Keel's parameter registry (`sim/contracts/KeelParams.sol`)
//! says about a portfolio, and how the engine applies it.
//!
//! The chain poller reads the registry every block and hands each *changed* entry to the runtime,
//! which passes it to [`Engine::apply_registry`](crate::Engine::apply_registry) between events; it
//! takes effect from the next decision on. An entry is the registry's whole view of one portfolio,
//! so applying it is idempotent:
//!
//! | field | effect |
//! | --- | --- |
//! | `tokens`/`weights_bps` | the portfolio's targets (basis points / 10 000; assets not listed get 0); an empty list restores the configured targets |
//! | `band_bps` | the absolute band of every drift trigger (basis points / 10 000; relative bands stay); 0 restores the configured ones |
//! | `paused` | no new rebalance of this portfolio fires while set (counted in `suppressed.registry_paused`) |
//!
//! An entry is refused whole, changing nothing ([`RegistryReject`], counted in
//! `targets.registry_refused`), when its weights do not sum to exactly 10 000 basis points, name a
//! token that is not one of the portfolio's assets or name one twice, when it sets targets on a
//! portfolio whose targets are not `fixed` (CPPI, momentum and predictors own theirs), when its
//! band is above 10 000 or set on a portfolio without a drift trigger. The global pause is not the
//! engine's: the runtime turns it into the kill switch.
//!
//! Costs: an entry is `Copy` and fixed-size (pushing it through a queue allocates nothing);
//! applying one allocates only the first time the registry changes a portfolio (a copy of its
//! configured targets and bands, to restore them), never on the quote path.

use alloy_primitives::Address;

use crate::config::MAX_EXTERNAL_ASSETS;
use crate::ids::PortfolioId;
use crate::portfolio::Portfolio;
use crate::target::TargetSource;
use crate::token::TokenTable;
use crate::trigger::{Trigger, drift_band};

/// Most tokens one registry entry lists (the contract's `MAX_TOKENS`).
pub const MAX_REGISTRY_TOKENS: usize = MAX_EXTERNAL_ASSETS;
/// Basis points in one: weights sum to this, and a band of this is 1.
pub const REGISTRY_BPS: u16 = 10_000;

/// The registry's view of one portfolio, as read at a block. Fixed-size and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The portfolio (the registry keys it by keccak256 of its name).
    pub portfolio: PortfolioId,
    /// The block of the transaction that last changed the entry (the contract's `changedAt`).
    pub changed_block: u64,
    /// The block Keel read it at.
    pub read_block: u64,
    /// Number of `tokens` and `weights_bps` in use.
    pub len: u8,
    /// Token addresses with a target; slots past `len` are zero.
    pub tokens: [Address; MAX_REGISTRY_TOKENS],
    /// Their targets, basis points.
    pub weights_bps: [u16; MAX_REGISTRY_TOKENS],
    /// Absolute drift band, basis points (0: the configured bands).
    pub band_bps: u16,
    /// New rebalances of this portfolio stop while set.
    pub paused: bool,
}

impl RegistryEntry {
    /// An entry from `(token, basis points)` pairs; refused when there are more than
    /// [`MAX_REGISTRY_TOKENS`].
    pub fn new(
        portfolio: PortfolioId,
        changed_block: u64,
        read_block: u64,
        weights: impl ExactSizeIterator<Item = (Address, u16)>,
        band_bps: u16,
        paused: bool,
    ) -> Result<Self, RegistryReject> {
        let len = weights.len();
        if len > MAX_REGISTRY_TOKENS {
            return Err(RegistryReject::TooManyTokens { len });
        }
        let mut e = RegistryEntry {
            portfolio,
            changed_block,
            read_block,
            len: len as u8,
            tokens: [Address::ZERO; MAX_REGISTRY_TOKENS],
            weights_bps: [0; MAX_REGISTRY_TOKENS],
            band_bps,
            paused,
        };
        for (i, (t, w)) in weights.enumerate() {
            e.tokens[i] = t;
            e.weights_bps[i] = w;
        }
        Ok(e)
    }

    /// The listed `(token, basis points)` pairs.
    pub fn weights(&self) -> impl Iterator<Item = (Address, u16)> + '_ {
        let n = usize::from(self.len).min(MAX_REGISTRY_TOKENS);
        self.tokens[..n].iter().copied().zip(self.weights_bps[..n].iter().copied())
    }

    /// Whether two reads say the same thing (the blocks they were read at aside).
    pub fn same_params(&self, other: &RegistryEntry) -> bool {
        RegistryEntry { read_block: 0, ..*self } == RegistryEntry { read_block: 0, ..*other }
    }
}

/// A change the chain poller found in the registry.
// Unboxed on purpose: an update is `Copy` and goes through a preallocated queue without
// allocating; the global variant is rare and small, so the size is the entry's anyway.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryUpdate {
    /// The global pause (the runtime engages the kill switch while it is set).
    Global {
        /// Whether every rebalance must stop.
        paused: bool,
        /// The block of the transaction that set it (0: never set).
        changed_block: u64,
        /// The block Keel read it at.
        read_block: u64,
    },
    /// One portfolio's entry changed.
    Portfolio(RegistryEntry),
}

/// Why a registry entry was refused (nothing of it applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistryReject {
    /// No such portfolio.
    #[error("no portfolio {0:?}")]
    UnknownPortfolio(PortfolioId),
    /// More tokens than an entry holds.
    #[error("{len} tokens, more than {MAX_REGISTRY_TOKENS}")]
    TooManyTokens {
        /// How many.
        len: usize,
    },
    /// A token that is not one of the portfolio's assets.
    #[error("token {token} is not one of the portfolio's assets")]
    UnknownToken {
        /// The token.
        token: Address,
    },
    /// A token listed twice.
    #[error("token {token} is listed twice")]
    DuplicateToken {
        /// The token.
        token: Address,
    },
    /// The weights do not sum to 10 000 basis points.
    #[error("weights sum to {sum} bps, expected exactly 10000")]
    WeightSum {
        /// Their sum.
        sum: u32,
    },
    /// A band above 10 000 basis points.
    #[error("band {band_bps} bps is above 10000")]
    BadBand {
        /// The band.
        band_bps: u16,
    },
    /// Targets for a portfolio whose targets come from another source.
    #[error("its targets are `{source_kind}`; the registry sets only fixed targets")]
    NotFixed {
        /// Its source's kind.
        source_kind: &'static str,
    },
    /// A band for a portfolio without a drift trigger.
    #[error("a band was set but the portfolio has no drift trigger")]
    NoDriftTrigger,
}

impl RegistryReject {
    /// Short kind, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownPortfolio(_) => "unknown_portfolio",
            Self::TooManyTokens { .. } => "too_many_tokens",
            Self::UnknownToken { .. } => "unknown_token",
            Self::DuplicateToken { .. } => "duplicate_token",
            Self::WeightSum { .. } => "weight_sum",
            Self::BadBand { .. } => "bad_band",
            Self::NotFixed { .. } => "not_fixed",
            Self::NoDriftTrigger => "no_drift_trigger",
        }
    }
}

/// What the registry overrides of a portfolio, as configured: kept from its first registry
/// change on, to restore when the registry hands a parameter back.
#[derive(Debug, Clone)]
pub(crate) struct RegistryBase {
    /// The configured targets.
    targets: Vec<f64>,
    /// The configured absolute band of each trigger (`None` for non-drift triggers).
    abs_bands: Vec<Option<f64>>,
}

/// Checks `e` against portfolio `p` and, if it fits, applies it: targets, drift bands, pause.
/// Nothing changes on a refusal.
pub(crate) fn apply(p: &mut Portfolio, e: &RegistryEntry, tokens: &TokenTable) -> Result<(), RegistryReject> {
    let n = usize::from(e.len);
    if n > MAX_REGISTRY_TOKENS {
        return Err(RegistryReject::TooManyTokens { len: n });
    }
    if e.band_bps > REGISTRY_BPS {
        return Err(RegistryReject::BadBand { band_bps: e.band_bps });
    }
    // Position of each listed token among the assets.
    let mut at = [0usize; MAX_REGISTRY_TOKENS];
    if n > 0 {
        if !matches!(p.source, TargetSource::Fixed) {
            return Err(RegistryReject::NotFixed { source_kind: p.source.kind() });
        }
        let mut sum: u32 = 0;
        for (k, (token, w)) in e.weights().enumerate() {
            let i = p
                .assets
                .iter()
                .position(|&a| tokens.token(a).is_some_and(|t| t.address == token))
                .ok_or(RegistryReject::UnknownToken { token })?;
            if at[..k].contains(&i) {
                return Err(RegistryReject::DuplicateToken { token });
            }
            at[k] = i;
            sum += u32::from(w); // at most 16 × 65 535: no overflow
        }
        if sum != u32::from(REGISTRY_BPS) {
            return Err(RegistryReject::WeightSum { sum });
        }
    }
    if e.band_bps > 0 && !p.triggers.iter().any(|t| matches!(t, Trigger::Drift { .. })) {
        return Err(RegistryReject::NoDriftTrigger);
    }
    let base = p.registry_base.get_or_insert_with(|| {
        Box::new(RegistryBase {
            targets: p.targets.clone(),
            abs_bands: p
                .triggers
                .iter()
                .map(|t| match t {
                    Trigger::Drift { abs_band, .. } => *abs_band,
                    _ => None,
                })
                .collect(),
        })
    });
    if n > 0 {
        p.targets.iter_mut().for_each(|t| *t = 0.0);
        for (k, (_, w)) in e.weights().enumerate() {
            p.targets[at[k]] = f64::from(w) / f64::from(REGISTRY_BPS);
        }
    } else {
        p.targets.copy_from_slice(&base.targets);
    }
    for (trig, &configured) in p.triggers.iter_mut().zip(&base.abs_bands) {
        if let Trigger::Drift { bands, abs_band, rel_band } = trig {
            *abs_band = if e.band_bps > 0 {
                Some(f64::from(e.band_bps) / f64::from(REGISTRY_BPS))
            } else {
                configured
            };
            for (b, &t) in bands.iter_mut().zip(&p.targets) {
                *b = drift_band(*abs_band, *rel_band, t);
            }
        }
    }
    p.registry_paused = e.paused;
    p.sync_targets();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(weights: &[(Address, u16)], band_bps: u16, paused: bool) -> RegistryEntry {
        RegistryEntry::new(PortfolioId(0), 7, 9, weights.iter().copied(), band_bps, paused).unwrap()
    }

    #[test]
    fn an_entry_holds_at_most_sixteen_tokens_and_compares_without_its_read_block() {
        let many = (0..17u8).map(|i| (Address::repeat_byte(i), 1u16));
        assert_eq!(
            RegistryEntry::new(PortfolioId(0), 1, 1, many, 0, false),
            Err(RegistryReject::TooManyTokens { len: 17 })
        );
        let a = entry(&[(Address::repeat_byte(1), 6000), (Address::repeat_byte(2), 4000)], 0, false);
        assert_eq!(a.weights().collect::<Vec<_>>().len(), 2);
        let b = RegistryEntry { read_block: 99, ..a };
        assert!(a.same_params(&b));
        assert!(!a.same_params(&RegistryEntry { paused: true, ..b }));
        assert_eq!(RegistryReject::WeightSum { sum: 9999 }.kind(), "weight_sum");
    }
}
