//! What the journal records: one entry per decision or action, in the order they happen; and
//! [`RecordSink`], the one method set through which the router hands records on (the journal crate
//! implements it; the router does not import the journal, nor the journal the router).

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};

use crate::intent::RebalanceIntent;
use crate::signed::SignedTx;

/// One signed transaction of a bundle version, kept whole so a recovered rebalance can be resent
/// byte for byte (same nonces, same hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// Transaction hash.
    pub hash: B256,
    /// Nonce.
    pub nonce: u64,
    /// EIP-2718 bytes.
    pub raw: Bytes,
}

impl From<&SignedTx> for TxRecord {
    fn from(t: &SignedTx) -> Self {
        Self { hash: t.hash, nonce: t.nonce, raw: t.raw.clone() }
    }
}

/// A signed version of a rebalance's bundle: the first, or a fee re-sign with the same nonces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBundle {
    /// The intent.
    pub intent: u64,
    /// Portfolio index.
    pub portfolio: u32,
    /// Signing account.
    pub account: Address,
    /// 0 for the first version, then one more per re-sign.
    pub version: u32,
    /// The bundle's `replacementUuid`. Every member of one batch (rebalances of several portfolios
    /// netted into one bundle) carries the batch's uuid; `txs` are this member's share of it.
    pub uuid: String,
    /// Block the version was first sent for.
    pub target_block: u64,
    /// After this block the rebalance is abandoned.
    pub deadline_block: u64,
    /// keccak of the transaction hashes.
    pub bundle_hash: B256,
    /// This rebalance's transactions, in bundle order.
    pub txs: Vec<TxRecord>,
}

/// How a rebalance found open at start was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Decided but never signed: nothing reached a relay.
    NeverSent,
    /// Its bundle landed while Keel was down.
    Landed {
        /// Block of inclusion.
        block: u64,
        /// Gas used by its transactions.
        gas_used: u64,
        /// Whether a transaction reverted.
        reverted: bool,
    },
    /// Its nonces were used by transactions that are not its own: it can never land.
    NoncesUsedElsewhere,
    /// It can still land: adopted again and resent (same transactions) until its deadline.
    Adopted,
    /// Its deadline block passed unlanded.
    Expired,
}

impl Resolution {
    /// Short name, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Resolution::NeverSent => "never_sent",
            Resolution::Landed { .. } => "landed",
            Resolution::NoncesUsedElsewhere => "nonces_used_elsewhere",
            Resolution::Adopted => "adopted",
            Resolution::Expired => "expired",
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq)]
pub enum JournalRecord {
    /// The engine decided a rebalance: trigger, inputs and planned legs.
    Decided(Box<RebalanceIntent>),
    /// The router refused it before anything was signed or sent.
    Refused {
        /// The intent.
        intent: u64,
        /// Why.
        reason: String,
    },
    /// A bundle version was signed. Journaled (and, with `write_ahead`, committed) before it is sent.
    Signed(Box<SignedBundle>),
    /// One relay's answer to one submission.
    Submitted {
        /// The intent.
        intent: u64,
        /// Relay name.
        relay: String,
        /// Target block.
        block: u64,
        /// Accepted (a bundle hash came back).
        accepted: bool,
        /// The bundle hash returned, or the error.
        detail: String,
    },
    /// The bundle landed.
    Landed {
        /// The intent.
        intent: u64,
        /// Block of inclusion.
        block: u64,
        /// Gas used.
        gas_used: u64,
        /// Whether a transaction reverted.
        reverted: bool,
    },
    /// The rebalance will never land (deadline passed, or its nonces were used by other
    /// transactions); nonces released.
    Expired {
        /// The intent.
        intent: u64,
        /// The head at expiry.
        block: u64,
        /// Why.
        reason: String,
    },
    /// How a landed rebalance was included: by whom, after how long, at what fee. Follows its
    /// `Landed` record when the block could be read.
    Included(Box<Inclusion>),
    /// An external portfolio's targets changed: a predictor's weights were applied, or it went
    /// stale and the fallback took over. Belongs to no rebalance (intent 0).
    Targets(Box<TargetsRecord>),
    /// A change read from the on-chain parameter registry, applied or refused, with the block of
    /// the transaction that made it. Belongs to no rebalance (intent 0).
    Registry(Box<RegistryRecord>),
    /// Found open at start and settled by reconciling with the chain.
    Recovered {
        /// The intent.
        intent: u64,
        /// The outcome.
        resolution: Resolution,
        /// The chain facts it was based on, for the operator.
        detail: String,
    },
}

/// A change of an external portfolio's targets (see [`JournalRecord::Targets`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetsRecord {
    /// Portfolio index.
    pub portfolio: u32,
    /// The predictor's name.
    pub predictor: String,
    /// True when the fallback targets took over (the predictor went stale).
    pub fallback: bool,
    /// The targets now in force, by token symbol.
    pub weights: Vec<(String, f64)>,
    /// Why: the message's sequence number, or the staleness that caused the fallback.
    pub detail: String,
}

/// A change of the on-chain parameter registry (see [`JournalRecord::Registry`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryRecord {
    /// Portfolio index; `None` for the global pause.
    pub portfolio: Option<u32>,
    /// The block of the transaction that made the change (the registry's `changedAt`).
    pub block: u64,
    /// The block Keel read it at.
    pub read_block: u64,
    /// Whether it was applied (false: refused, see `detail`).
    pub applied: bool,
    /// The pause flag now (the portfolio's, or the global one).
    pub paused: bool,
    /// The targets now in force by token symbol (empty for the global pause).
    pub weights: Vec<(String, f64)>,
    /// The band set on chain (0: the configured ones), basis points.
    pub band_bps: u16,
    /// What happened, or why it was refused.
    pub detail: String,
}

/// The inclusion of a landed rebalance (see [`JournalRecord::Included`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Inclusion {
    /// The intent.
    pub intent: u64,
    /// Block of inclusion.
    pub block: u64,
    /// The block's fee recipient (the builder's address).
    pub coinbase: Address,
    /// The builder's name: the block's extra data when it is printable text, else empty.
    pub builder: String,
    /// Blocks from the first block targeted to the landing block (1: the first), 0 if unknown.
    pub blocks: u64,
    /// Seconds from the first send to the head that showed it landed, if known.
    pub seconds: Option<f64>,
    /// Signed versions sent.
    pub versions: u32,
    /// Fees paid by its transactions (gas used × effective gas price), wei.
    pub fee_wei: u128,
    /// The relays whose builder has this block's coinbase (`[[relays]] coinbase`); empty when
    /// none is configured for it.
    pub relays: Vec<String>,
}

impl JournalRecord {
    /// The intent the record belongs to.
    pub fn intent(&self) -> u64 {
        match self {
            JournalRecord::Decided(i) => i.id,
            JournalRecord::Signed(b) => b.intent,
            JournalRecord::Included(i) => i.intent,
            JournalRecord::Targets(_) | JournalRecord::Registry(_) => 0,
            JournalRecord::Refused { intent, .. }
            | JournalRecord::Submitted { intent, .. }
            | JournalRecord::Landed { intent, .. }
            | JournalRecord::Expired { intent, .. }
            | JournalRecord::Recovered { intent, .. } => *intent,
        }
    }

    /// Short kind name, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            JournalRecord::Decided(_) => "decided",
            JournalRecord::Refused { .. } => "refused",
            JournalRecord::Signed(_) => "signed",
            JournalRecord::Submitted { .. } => "submitted",
            JournalRecord::Landed { .. } => "landed",
            JournalRecord::Included(_) => "included",
            JournalRecord::Expired { .. } => "expired",
            JournalRecord::Recovered { .. } => "recovered",
            JournalRecord::Targets(_) => "targets",
            JournalRecord::Registry(_) => "registry",
        }
    }
}

/// A record's place in the sink's order: [`RecordSink::wait_committed`] waits for it.
pub type RecordSeq = u64;

/// Why a record's commit could not be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The commit did not happen within the wait.
    #[error("not committed within {0:?}")]
    Timeout(Duration),
    /// The sink failed or stopped; its message.
    #[error("journal failed: {0}")]
    Failed(String),
}

/// Where the router's records go (the journal's writer). Implementations queue without blocking.
pub trait RecordSink: Send + Sync + std::fmt::Debug {
    /// Queues a record; returns its sequence number.
    fn append(&self, record: JournalRecord) -> RecordSeq;
    /// Waits until record `seq` (and all before it) is durably committed, at most `timeout`.
    fn wait_committed(&self, seq: RecordSeq, timeout: Duration) -> Result<(), CommitError>;
}
