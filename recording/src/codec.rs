//! The compact binary encoding of the chain-side inputs a recording holds: the engine's
//! [`Event::Block`] and [`Event::Balance`], the router's [`ChainUpdate`]s, receipt reads and relay
//! answers. Exchange frames need no encoding: they are stored as received.
//!
//! Layout of a payload: one tag byte ([`Tag`]), then the fields in declaration order, integers
//! little-endian, `U256`/`B256` as 32 bytes (big-endian, as alloy stores them), addresses as 20
//! bytes, `f64` as its IEEE bits, booleans as one byte (0 or 1). A V3 snapshot ends with its tick
//! count (`u32`) and that many `(index i32, liquidity_net i128)` pairs; a relay answer ends with a
//! detail text (`u16` length, UTF-8, at most [`MAX_DETAIL_BYTES`]).
//!
//! The tag says which queue the input entered, so a replay hands each one to the same stage:
//! tags `0x0_` went to the engine, `0x1_` to the router, `0x2_`/`0x3_` are the router stage's own
//! reads (receipts, relay answers).
//!
//! Encoding writes into a caller's slice sized by [`encoded_len`] (no allocation); decoding
//! range-checks every length and never panics: a short or malformed payload is a [`CodecError`]
//! naming the field.

use alloy_primitives::{Address, B256, U256};
use keel_amm::balancer::{PowFlavour, WeightedPool};
use keel_amm::curve::{AmpRamp, Flavour, StableSwapPool};
use keel_amm::pool::{BalancerPair, CurvePair, Pool, PoolChange, PoolUpdate};
use keel_amm::v3::{TickInfo, V3Pool};
use keel_engine::chain::{ChainUpdate, PoolSource, ReceiptInfo};
use keel_engine::event::{Balance, BlockHeader, Event};
use keel_engine::{PortfolioId, TokenId};
use thiserror::Error;

use crate::RecordKind;

/// Longest relay-answer detail kept, in bytes (longer texts are cut at a character boundary).
pub const MAX_DETAIL_BYTES: usize = 256;
/// Most ticks a recorded V3 snapshot may carry (a larger count is refused as corrupt).
pub const MAX_SNAPSHOT_TICKS: u32 = 1 << 20;

/// The first byte of an encoded payload.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// [`Event::Block`] into the engine queue.
    EngineBlock = 0x01,
    /// [`Event::Balance`] into the engine queue.
    EngineBalance = 0x02,
    /// An [`Event::Timer`] the engine thread ran (its time is the record's receive time).
    EngineTimer = 0x03,
    /// [`ChainUpdate::Head`] into the router queue.
    RouterHead = 0x10,
    /// [`ChainUpdate::Pool`].
    RouterPool = 0x11,
    /// [`ChainUpdate::PoolFeedHead`].
    RouterPoolFeedHead = 0x12,
    /// [`ChainUpdate::PendingImpact`].
    RouterPendingImpact = 0x13,
    /// [`ChainUpdate::Nonce`].
    RouterNonce = 0x14,
    /// [`ChainUpdate::Allowance`].
    RouterAllowance = 0x15,
    /// Receipts read for a landed bundle.
    Receipts = 0x20,
    /// A relay's answer to a bundle.
    RelayAnswer = 0x30,
}

impl Tag {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::EngineBlock,
            0x02 => Self::EngineBalance,
            0x03 => Self::EngineTimer,
            0x10 => Self::RouterHead,
            0x11 => Self::RouterPool,
            0x12 => Self::RouterPoolFeedHead,
            0x13 => Self::RouterPendingImpact,
            0x14 => Self::RouterNonce,
            0x15 => Self::RouterAllowance,
            0x20 => Self::Receipts,
            0x30 => Self::RelayAnswer,
            _ => return None,
        })
    }
}

/// A relay's answer, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAnswer {
    /// Index of the relay in the configured list.
    pub relay: u16,
    /// The intent the bundle belongs to.
    pub intent: u64,
    /// The block the bundle targeted.
    pub block: u64,
    /// Whether the relay accepted it.
    pub accepted: bool,
    /// Round trip, ns.
    pub elapsed_ns: u64,
    /// The bundle hash, or the error (cut to [`MAX_DETAIL_BYTES`]).
    pub detail: String,
}

/// A decoded chain-side input.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An event that entered the engine queue.
    Engine(Event),
    /// An update that entered the router queue.
    Router(ChainUpdate),
    /// Receipts the router stage read.
    Receipts {
        /// The intent.
        intent: u64,
        /// The receipts.
        receipts: Vec<ReceiptInfo>,
        /// When they were read (the record's receive time).
        recv_ns: u64,
    },
    /// A relay's answer.
    RelayAnswer(RelayAnswer),
}

/// Why a payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The payload is empty.
    #[error("empty payload")]
    Empty,
    /// The tag byte names no input.
    #[error("unknown payload tag {0:#04x}")]
    UnknownTag(u8),
    /// The payload ends before `field`.
    #[error("payload truncated at `{field}` (offset {at})")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its offset.
        at: usize,
    },
    /// Bytes are left after the last field.
    #[error("{extra} bytes left after the last field")]
    Trailing {
        /// How many.
        extra: usize,
    },
    /// A field holds a value it cannot hold.
    #[error("field `{field}`: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The payload is not of an input the record kind can hold (e.g. an exchange frame).
    #[error("record kind `{}` holds no chain input", .0.name())]
    NotChainInput(RecordKind),
}

/// The record kind an input is filed under.
pub fn kind_of_update(u: &ChainUpdate) -> RecordKind {
    match u {
        ChainUpdate::Head(_) | ChainUpdate::PoolFeedHead { .. } => RecordKind::Head,
        ChainUpdate::Pool { .. } => RecordKind::PoolLog,
        ChainUpdate::PendingImpact { .. } => RecordKind::PendingTx,
        ChainUpdate::Nonce { .. } => RecordKind::NonceRead,
        ChainUpdate::Allowance { .. } => RecordKind::BalanceRead,
    }
}

/// Bytes [`encode_update`] writes for `u`.
pub fn update_len(u: &ChainUpdate) -> usize {
    1 + match u {
        ChainUpdate::Head(_) => HEADER_LEN,
        ChainUpdate::Pool { update, .. } => 4 + 20 + 8 + 1 + change_len(&update.change),
        ChainUpdate::PoolFeedHead { .. } => 8,
        ChainUpdate::PendingImpact { .. } => 8 + 8,
        ChainUpdate::Nonce { .. } => 20 + 8 + 8,
        ChainUpdate::Allowance { .. } => 20 + 20 + 20 + 32,
    }
}

const HEADER_LEN: usize = 8 + 8 + 16;

fn change_len(c: &PoolChange) -> usize {
    1 + match c {
        PoolChange::V2 { .. } => 64,
        PoolChange::V3Swap { .. } => 32 + 4 + 16,
        PoolChange::V3Position { .. } => 4 + 4 + 16,
        PoolChange::Balances { .. } => 1 + 1 + 32 + 32,
        PoolChange::Snapshot(pool) => match pool.as_ref() {
            Pool::V2 { .. } => 64 + 4,
            Pool::V3(p) => 4 + 4 + 32 + 4 + 16 + 4 + p.tick_count() * 20,
            Pool::Balancer(p) => 4 + 32 + p.pool().len() * (32 + 32 + 1),
            Pool::Curve(p) => 4 + 8 + 8 + 8 + 32 + 32 + 8 + 8 + p.pool().n_coins() * 64,
            Pool::V4(p) => 20 + 20 + 4 + 4 + 20 + 4 + 4 + 32 + 4 + 16 + 4 + p.state().tick_count() * 20,
        },
    }
}

/// A cursor writing into a slice sized by the `*_len` functions; writes past the end are dropped
/// (and the length functions make sure there are none).
struct W<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl W<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.out.get_mut(self.at..self.at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.put(&v.to_le_bytes());
    }
    fn i128(&mut self, v: i128) {
        self.put(&v.to_le_bytes());
    }
    fn u256(&mut self, v: &U256) {
        self.put(&v.to_be_bytes::<32>());
    }
    fn addr(&mut self, a: &Address) {
        self.put(a.as_slice());
    }
    fn header(&mut self, h: &BlockHeader) {
        self.u64(h.number);
        self.u64(h.timestamp);
        self.u128(h.base_fee);
    }
}

/// Encodes a router-queue update into `out[..update_len(u)]`; returns the bytes written.
pub fn encode_update(u: &ChainUpdate, out: &mut [u8]) -> usize {
    let mut w = W { out, at: 0 };
    match u {
        ChainUpdate::Head(h) => {
            w.u8(Tag::RouterHead as u8);
            w.header(h);
        }
        ChainUpdate::Pool { update, source } => {
            w.u8(Tag::RouterPool as u8);
            w.u32(update.pool);
            w.addr(&update.address);
            w.u64(update.block);
            w.u8(match source {
                PoolSource::Poll => 0,
                PoolSource::Logs => 1,
            });
            encode_change(&mut w, &update.change);
        }
        ChainUpdate::PoolFeedHead { block } => {
            w.u8(Tag::RouterPoolFeedHead as u8);
            w.u64(*block);
        }
        ChainUpdate::PendingImpact { pool, impact } => {
            w.u8(Tag::RouterPendingImpact as u8);
            w.u64(*pool as u64);
            w.u64(impact.to_bits());
        }
        ChainUpdate::Nonce { account, nonce, block } => {
            w.u8(Tag::RouterNonce as u8);
            w.addr(account);
            w.u64(*nonce);
            w.u64(*block);
        }
        ChainUpdate::Allowance { owner, token, spender, amount } => {
            w.u8(Tag::RouterAllowance as u8);
            w.addr(owner);
            w.addr(token);
            w.addr(spender);
            w.u256(amount);
        }
    }
    w.at
}

fn encode_change(w: &mut W<'_>, c: &PoolChange) {
    match c {
        PoolChange::V2 { reserve0, reserve1 } => {
            w.u8(0);
            w.u256(reserve0);
            w.u256(reserve1);
        }
        PoolChange::V3Swap { sqrt_price_x96, tick, liquidity } => {
            w.u8(1);
            w.u256(sqrt_price_x96);
            w.i32(*tick);
            w.u128(*liquidity);
        }
        PoolChange::V3Position { tick_lower, tick_upper, liquidity_delta } => {
            w.u8(2);
            w.i32(*tick_lower);
            w.i32(*tick_upper);
            w.i128(*liquidity_delta);
        }
        PoolChange::Balances { token_in, token_out, amount_in, amount_out } => {
            w.u8(5);
            w.u8(*token_in);
            w.u8(*token_out);
            w.u256(amount_in);
            w.u256(amount_out);
        }
        PoolChange::Snapshot(pool) => match pool.as_ref() {
            Pool::Balancer(b) => {
                w.u8(6);
                let p = b.pool();
                let (i0, i1) = b.indices();
                w.u8(p.len() as u8);
                w.u8(i0);
                w.u8(i1);
                w.u8(match p.flavour() {
                    PowFlavour::V1 => 0,
                    PowFlavour::Shortcuts => 1,
                });
                w.u256(&p.swap_fee());
                let decimals = p.decimals();
                for ((b, wt), d) in p.balances().iter().zip(p.weights()).zip(decimals) {
                    w.u256(b);
                    w.u256(wt);
                    w.u8(d);
                }
            }
            Pool::Curve(c) => {
                w.u8(7);
                let p = c.pool();
                let (i0, i1) = c.indices();
                w.u8(p.n_coins() as u8);
                w.u8(i0);
                w.u8(i1);
                w.u8(match p.flavour() {
                    Flavour::ThreePool => 0,
                    Flavour::FactoryPlain => 1,
                });
                w.u64(c.timestamp());
                w.u64(p.fee());
                w.u64(p.admin_fee());
                let amp = p.amp_ramp();
                w.u256(&amp.initial_a);
                w.u256(&amp.future_a);
                w.u64(amp.initial_a_time);
                w.u64(amp.future_a_time);
                for (b, rate) in p.balances().iter().zip(p.rates()) {
                    w.u256(b);
                    w.u256(rate);
                }
            }
            Pool::V2 { reserve0, reserve1, fee_bps } => {
                w.u8(3);
                w.u256(reserve0);
                w.u256(reserve1);
                w.u32(*fee_bps);
            }
            Pool::V4(p) => {
                w.u8(8);
                let k = p.key();
                w.addr(&k.currency0);
                w.addr(&k.currency1);
                w.u32(k.fee);
                w.i32(k.tick_spacing);
                w.addr(&k.hooks);
                w.u32(p.lp_fee());
                w.u32(p.protocol_fee());
                let s = p.state();
                w.u256(&s.sqrt_price_x96);
                w.i32(s.tick);
                w.u128(s.liquidity);
                w.u32(s.tick_count() as u32);
                for t in s.ticks() {
                    w.i32(t.index);
                    w.i128(t.liquidity_net);
                }
            }
            Pool::V3(p) => {
                w.u8(4);
                w.u32(p.fee);
                w.i32(p.tick_spacing);
                w.u256(&p.sqrt_price_x96);
                w.i32(p.tick);
                w.u128(p.liquidity);
                w.u32(p.tick_count() as u32);
                for t in p.ticks() {
                    w.i32(t.index);
                    w.i128(t.liquidity_net);
                }
            }
        },
    }
}

/// Bytes [`encode_event`] writes for `ev`, or `None` for an event that is not recorded here
/// (quotes and trades are recorded as raw frames; outcomes are Keel's own). A timer is recorded:
/// when it runs, between which inputs, decides what it sees, and its phase is the engine
/// thread's, not a grid a replay could recompute.
pub fn event_len(ev: &Event) -> Option<usize> {
    match ev {
        Event::Block(_) => Some(1 + HEADER_LEN),
        Event::Balance(_) => Some(1 + 4 + 2 + 32 + 8),
        Event::Timer { .. } => Some(1),
        Event::Quote(_) | Event::Trade(_) | Event::Outcome(_) => None,
    }
}

/// The record kind of an engine event [`event_len`] accepts.
pub fn kind_of_event(ev: &Event) -> RecordKind {
    match ev {
        Event::Balance(_) => RecordKind::BalanceRead,
        Event::Timer { .. } => RecordKind::Other,
        _ => RecordKind::Head,
    }
}

/// Encodes an engine-queue event (see [`event_len`]); returns the bytes written (0 for events that
/// are not recorded).
pub fn encode_event(ev: &Event, out: &mut [u8]) -> usize {
    let mut w = W { out, at: 0 };
    match ev {
        Event::Block(h) => {
            w.u8(Tag::EngineBlock as u8);
            w.header(h);
        }
        Event::Balance(b) => {
            w.u8(Tag::EngineBalance as u8);
            w.u32(b.portfolio.0);
            w.put(&b.token.0.to_le_bytes());
            w.u256(&b.amount);
            w.u64(b.block);
        }
        Event::Timer { .. } => w.u8(Tag::EngineTimer as u8),
        _ => {}
    }
    w.at
}

/// Bytes [`encode_receipts`] writes.
pub fn receipts_len(receipts: &[ReceiptInfo]) -> usize {
    1 + 8 + 4 + receipts.len() * (32 + 8 + 8 + 1)
}

/// Encodes a receipt read; returns the bytes written.
pub fn encode_receipts(intent: u64, receipts: &[ReceiptInfo], out: &mut [u8]) -> usize {
    let mut w = W { out, at: 0 };
    w.u8(Tag::Receipts as u8);
    w.u64(intent);
    w.u32(receipts.len() as u32);
    for r in receipts {
        w.put(r.hash.as_slice());
        w.u64(r.block);
        w.u64(r.gas_used);
        w.u8(u8::from(r.success));
    }
    w.at
}

/// `detail` cut to at most [`MAX_DETAIL_BYTES`] at a character boundary.
fn cut(detail: &str) -> &str {
    let mut end = detail.len().min(MAX_DETAIL_BYTES);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    detail.get(..end).unwrap_or_default()
}

/// Bytes [`encode_relay_answer`] writes.
pub fn relay_answer_len(detail: &str) -> usize {
    1 + 2 + 8 + 8 + 1 + 8 + 2 + cut(detail).len()
}

/// Encodes a relay answer (the detail cut to [`MAX_DETAIL_BYTES`]); returns the bytes written.
pub fn encode_relay_answer(a: &RelayAnswer, out: &mut [u8]) -> usize {
    let mut w = W { out, at: 0 };
    let detail = cut(&a.detail);
    w.u8(Tag::RelayAnswer as u8);
    w.put(&a.relay.to_le_bytes());
    w.u64(a.intent);
    w.u64(a.block);
    w.u8(u8::from(a.accepted));
    w.u64(a.elapsed_ns);
    w.put(&(detail.len() as u16).to_le_bytes());
    w.put(detail.as_bytes());
    w.at
}

/// A cursor reading a payload; every read is range-checked.
struct R<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> R<'a> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CodecError> {
        let chunk = self
            .bytes
            .get(self.at..)
            .and_then(<[u8]>::first_chunk::<N>)
            .ok_or(CodecError::Truncated { field, at: self.at })?;
        self.at += N;
        Ok(*chunk)
    }
    fn slice(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        let s = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or(CodecError::Truncated { field, at: self.at })?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self, f: &'static str) -> Result<u8, CodecError> {
        Ok(self.take::<1>(f)?[0])
    }
    fn bool(&mut self, f: &'static str) -> Result<bool, CodecError> {
        match self.u8(f)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(CodecError::Invalid { field: f, problem: format!("boolean byte {b}") }),
        }
    }
    fn u16(&mut self, f: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.take(f)?))
    }
    fn u32(&mut self, f: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take(f)?))
    }
    fn i32(&mut self, f: &'static str) -> Result<i32, CodecError> {
        Ok(i32::from_le_bytes(self.take(f)?))
    }
    fn u64(&mut self, f: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(f)?))
    }
    fn u128(&mut self, f: &'static str) -> Result<u128, CodecError> {
        Ok(u128::from_le_bytes(self.take(f)?))
    }
    fn i128(&mut self, f: &'static str) -> Result<i128, CodecError> {
        Ok(i128::from_le_bytes(self.take(f)?))
    }
    fn u256(&mut self, f: &'static str) -> Result<U256, CodecError> {
        Ok(U256::from_be_bytes(self.take::<32>(f)?))
    }
    fn addr(&mut self, f: &'static str) -> Result<Address, CodecError> {
        Ok(Address::new(self.take::<20>(f)?))
    }
    fn header(&mut self, recv_ns: u64) -> Result<BlockHeader, CodecError> {
        Ok(BlockHeader {
            number: self.u64("header.number")?,
            timestamp: self.u64("header.timestamp")?,
            base_fee: self.u128("header.base_fee")?,
            recv_ns,
        })
    }
}

/// Decodes a chain-side payload of a record of `kind`. `recv_ns` (the record's receive time) is
/// put wherever the engine types carry a receive time.
pub fn decode(kind: RecordKind, payload: &[u8], recv_ns: u64) -> Result<Input, CodecError> {
    if kind == RecordKind::ExchangeFrame {
        return Err(CodecError::NotChainInput(kind));
    }
    let (&tag, _) = payload.split_first().ok_or(CodecError::Empty)?;
    let tag = Tag::from_u8(tag).ok_or(CodecError::UnknownTag(tag))?;
    let mut r = R { bytes: payload, at: 1 };
    let input = match tag {
        Tag::EngineBlock => Input::Engine(Event::Block(r.header(recv_ns)?)),
        Tag::EngineBalance => Input::Engine(Event::Balance(Balance {
            portfolio: PortfolioId(r.u32("balance.portfolio")?),
            token: TokenId(r.u16("balance.token")?),
            amount: r.u256("balance.amount")?,
            block: r.u64("balance.block")?,
            recv_ns,
        })),
        Tag::EngineTimer => Input::Engine(Event::Timer { now_ns: recv_ns }),
        Tag::RouterHead => Input::Router(ChainUpdate::Head(r.header(recv_ns)?)),
        Tag::RouterPool => {
            let pool = r.u32("pool.pool")?;
            let address = r.addr("pool.address")?;
            let block = r.u64("pool.block")?;
            let source = match r.u8("pool.source")? {
                0 => PoolSource::Poll,
                1 => PoolSource::Logs,
                b => return Err(CodecError::Invalid { field: "pool.source", problem: format!("byte {b}") }),
            };
            let change = decode_change(&mut r)?;
            Input::Router(ChainUpdate::Pool {
                update: PoolUpdate { pool, address, block, change, recv_ns },
                source,
            })
        }
        Tag::RouterPoolFeedHead => {
            Input::Router(ChainUpdate::PoolFeedHead { block: r.u64("pool_feed_head.block")? })
        }
        Tag::RouterPendingImpact => {
            let pool = usize::try_from(r.u64("pending.pool")?).map_err(|_| CodecError::Invalid {
                field: "pending.pool",
                problem: "does not fit this platform's usize".into(),
            })?;
            let impact = f64::from_bits(r.u64("pending.impact")?);
            if !impact.is_finite() || impact < 0.0 {
                return Err(CodecError::Invalid { field: "pending.impact", problem: format!("{impact}") });
            }
            Input::Router(ChainUpdate::PendingImpact { pool, impact })
        }
        Tag::RouterNonce => Input::Router(ChainUpdate::Nonce {
            account: r.addr("nonce.account")?,
            nonce: r.u64("nonce.nonce")?,
            block: r.u64("nonce.block")?,
        }),
        Tag::RouterAllowance => Input::Router(ChainUpdate::Allowance {
            owner: r.addr("allowance.owner")?,
            token: r.addr("allowance.token")?,
            spender: r.addr("allowance.spender")?,
            amount: r.u256("allowance.amount")?,
        }),
        Tag::Receipts => {
            let intent = r.u64("receipts.intent")?;
            let n = r.u32("receipts.count")? as usize;
            // Bounded by the payload: each receipt takes 49 bytes.
            if n > payload.len() / 49 {
                return Err(CodecError::Truncated { field: "receipts", at: r.at });
            }
            let mut receipts = Vec::with_capacity(n);
            for _ in 0..n {
                receipts.push(ReceiptInfo {
                    hash: B256::new(r.take::<32>("receipt.hash")?),
                    block: r.u64("receipt.block")?,
                    gas_used: r.u64("receipt.gas_used")?,
                    success: r.bool("receipt.success")?,
                });
            }
            Input::Receipts { intent, receipts, recv_ns }
        }
        Tag::RelayAnswer => {
            let relay = r.u16("relay.relay")?;
            let intent = r.u64("relay.intent")?;
            let block = r.u64("relay.block")?;
            let accepted = r.bool("relay.accepted")?;
            let elapsed_ns = r.u64("relay.elapsed_ns")?;
            let len = r.u16("relay.detail_len")? as usize;
            let detail = std::str::from_utf8(r.slice(len, "relay.detail")?)
                .map_err(|_| CodecError::Invalid { field: "relay.detail", problem: "not UTF-8".into() })?
                .to_owned();
            Input::RelayAnswer(RelayAnswer { relay, intent, block, accepted, elapsed_ns, detail })
        }
    };
    if r.at != payload.len() {
        return Err(CodecError::Trailing { extra: payload.len() - r.at });
    }
    Ok(input)
}

fn decode_change(r: &mut R<'_>) -> Result<PoolChange, CodecError> {
    Ok(match r.u8("pool.change")? {
        0 => PoolChange::V2 { reserve0: r.u256("v2.reserve0")?, reserve1: r.u256("v2.reserve1")? },
        1 => PoolChange::V3Swap {
            sqrt_price_x96: r.u256("v3.sqrt_price_x96")?,
            tick: r.i32("v3.tick")?,
            liquidity: r.u128("v3.liquidity")?,
        },
        2 => PoolChange::V3Position {
            tick_lower: r.i32("v3.tick_lower")?,
            tick_upper: r.i32("v3.tick_upper")?,
            liquidity_delta: r.i128("v3.liquidity_delta")?,
        },
        3 => PoolChange::Snapshot(Box::new(Pool::V2 {
            reserve0: r.u256("v2.reserve0")?,
            reserve1: r.u256("v2.reserve1")?,
            fee_bps: r.u32("v2.fee_bps")?,
        })),
        4 => {
            let fee = r.u32("v3.fee")?;
            let spacing = r.i32("v3.tick_spacing")?;
            let sqrt = r.u256("v3.sqrt_price_x96")?;
            let tick = r.i32("v3.tick")?;
            let liquidity = r.u128("v3.liquidity")?;
            let n = r.u32("v3.tick_count")?;
            if n > MAX_SNAPSHOT_TICKS || n as usize > r.bytes.len().saturating_sub(r.at) / 20 {
                return Err(CodecError::Invalid { field: "v3.tick_count", problem: format!("{n} ticks") });
            }
            let mut ticks = Vec::with_capacity(n as usize);
            for _ in 0..n {
                ticks
                    .push(TickInfo { index: r.i32("v3.tick.index")?, liquidity_net: r.i128("v3.tick.net")? });
            }
            let pool = V3Pool::new(fee, spacing, sqrt, tick, liquidity, &ticks)
                .map_err(|e| CodecError::Invalid { field: "v3.snapshot", problem: e.to_string() })?;
            PoolChange::Snapshot(Box::new(Pool::V3(pool)))
        }
        5 => PoolChange::Balances {
            token_in: r.u8("balances.token_in")?,
            token_out: r.u8("balances.token_out")?,
            amount_in: r.u256("balances.amount_in")?,
            amount_out: r.u256("balances.amount_out")?,
        },
        6 => {
            let n = usize::from(r.u8("balancer.tokens")?);
            if !(2..=keel_amm::balancer::MAX_TOKENS).contains(&n) {
                return Err(CodecError::Invalid { field: "balancer.tokens", problem: format!("{n} tokens") });
            }
            let (i0, i1) = (r.u8("balancer.index0")?, r.u8("balancer.index1")?);
            let flavour = match r.u8("balancer.flavour")? {
                0 => PowFlavour::V1,
                1 => PowFlavour::Shortcuts,
                b => {
                    return Err(CodecError::Invalid {
                        field: "balancer.flavour",
                        problem: format!("byte {b}"),
                    });
                }
            };
            let fee = r.u256("balancer.swap_fee")?;
            let (mut bal, mut wt, mut dec) = ([U256::ZERO; 8], [U256::ZERO; 8], [0u8; 8]);
            for k in 0..n {
                bal[k] = r.u256("balancer.balance")?;
                wt[k] = r.u256("balancer.weight")?;
                dec[k] = r.u8("balancer.decimals")?;
            }
            let invalid = |e: String| CodecError::Invalid { field: "balancer.snapshot", problem: e };
            let pool = WeightedPool::new(&bal[..n], &wt[..n], &dec[..n], fee, flavour)
                .map_err(|e| invalid(e.to_string()))?;
            let pair = BalancerPair::new(pool, i0, i1).map_err(|e| invalid(e.to_string()))?;
            PoolChange::Snapshot(Box::new(Pool::Balancer(Box::new(pair))))
        }
        7 => {
            let n = usize::from(r.u8("curve.coins")?);
            if !(2..=keel_amm::curve::MAX_COINS).contains(&n) {
                return Err(CodecError::Invalid { field: "curve.coins", problem: format!("{n} coins") });
            }
            let (i0, i1) = (r.u8("curve.index0")?, r.u8("curve.index1")?);
            let flavour = match r.u8("curve.flavour")? {
                0 => Flavour::ThreePool,
                1 => Flavour::FactoryPlain,
                b => {
                    return Err(CodecError::Invalid { field: "curve.flavour", problem: format!("byte {b}") });
                }
            };
            let timestamp = r.u64("curve.timestamp")?;
            let (fee, admin_fee) = (r.u64("curve.fee")?, r.u64("curve.admin_fee")?);
            let amp = AmpRamp {
                initial_a: r.u256("curve.initial_a")?,
                future_a: r.u256("curve.future_a")?,
                initial_a_time: r.u64("curve.initial_a_time")?,
                future_a_time: r.u64("curve.future_a_time")?,
            };
            let (mut bal, mut rates) = ([U256::ZERO; 3], [U256::ZERO; 3]);
            for k in 0..n {
                bal[k] = r.u256("curve.balance")?;
                rates[k] = r.u256("curve.rate")?;
            }
            let invalid = |e: String| CodecError::Invalid { field: "curve.snapshot", problem: e };
            let pool = StableSwapPool::new(flavour, &bal[..n], &rates[..n], amp, fee, admin_fee)
                .map_err(|e| invalid(e.to_string()))?;
            let pair = CurvePair::new(pool, i0, i1, timestamp).map_err(|e| invalid(e.to_string()))?;
            PoolChange::Snapshot(Box::new(Pool::Curve(Box::new(pair))))
        }
        8 => {
            let key = keel_amm::v4::PoolKey {
                currency0: r.addr("v4.currency0")?,
                currency1: r.addr("v4.currency1")?,
                fee: r.u32("v4.fee")?,
                tick_spacing: r.i32("v4.tick_spacing")?,
                hooks: r.addr("v4.hooks")?,
            };
            let (lp_fee, protocol_fee) = (r.u32("v4.lp_fee")?, r.u32("v4.protocol_fee")?);
            let sqrt = r.u256("v4.sqrt_price_x96")?;
            let tick = r.i32("v4.tick")?;
            let liquidity = r.u128("v4.liquidity")?;
            let n = r.u32("v4.tick_count")?;
            if n > MAX_SNAPSHOT_TICKS || n as usize > r.bytes.len().saturating_sub(r.at) / 20 {
                return Err(CodecError::Invalid { field: "v4.tick_count", problem: format!("{n} ticks") });
            }
            let mut ticks = Vec::with_capacity(n as usize);
            for _ in 0..n {
                ticks
                    .push(TickInfo { index: r.i32("v4.tick.index")?, liquidity_net: r.i128("v4.tick.net")? });
            }
            let pool = keel_amm::v4::V4Pool::new(key, sqrt, tick, liquidity, lp_fee, protocol_fee, &ticks)
                .map_err(|e| CodecError::Invalid { field: "v4.snapshot", problem: e.to_string() })?;
            PoolChange::Snapshot(Box::new(Pool::V4(Box::new(pool))))
        }
        b => return Err(CodecError::Invalid { field: "pool.change", problem: format!("variant byte {b}") }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_update(u: ChainUpdate) {
        let mut buf = vec![0u8; update_len(&u)];
        assert_eq!(encode_update(&u, &mut buf), buf.len(), "{u:?}");
        let recv = match &u {
            ChainUpdate::Head(h) => h.recv_ns,
            ChainUpdate::Pool { update, .. } => update.recv_ns,
            _ => 0,
        };
        assert_eq!(decode(kind_of_update(&u), &buf, recv).unwrap(), Input::Router(u));
    }

    fn balancer_snapshot() -> Pool {
        let e16 = U256::from(10u64).pow(U256::from(16u8));
        let w = WeightedPool::new(
            &[U256::from(5u8), U256::from(6u8), U256::MAX],
            &[e16 * U256::from(50u8), e16 * U256::from(30u8), e16 * U256::from(20u8)],
            &[18, 6, 8],
            e16,
            PowFlavour::V1,
        )
        .unwrap();
        Pool::Balancer(Box::new(BalancerPair::new(w, 2, 1).unwrap()))
    }

    fn curve_snapshot() -> Pool {
        let p = StableSwapPool::with_decimals(
            Flavour::FactoryPlain,
            &[U256::from(5u8), U256::from(6u8), U256::from(7u8)],
            &[18, 6, 6],
            AmpRamp {
                initial_a: U256::from(100u8),
                future_a: U256::from(200u8),
                initial_a_time: 3,
                future_a_time: 9,
            },
            4_000_000,
            5_000_000_000,
        )
        .unwrap();
        Pool::Curve(Box::new(CurvePair::new(p, 0, 2, 1_700_000_000).unwrap()))
    }

    #[test]
    fn every_chain_update_round_trips() {
        let a = Address::repeat_byte(7);
        let header =
            BlockHeader { number: 9, timestamp: 1_700_000_000, base_fee: 7_000_000_123, recv_ns: 55 };
        roundtrip_update(ChainUpdate::Head(header));
        roundtrip_update(ChainUpdate::PoolFeedHead { block: 12 });
        roundtrip_update(ChainUpdate::PendingImpact { pool: 3, impact: 0.0125 });
        roundtrip_update(ChainUpdate::Nonce { account: a, nonce: 4, block: 8 });
        roundtrip_update(ChainUpdate::Allowance {
            owner: a,
            token: Address::repeat_byte(1),
            spender: Address::repeat_byte(2),
            amount: U256::MAX,
        });
        let q96 = keel_amm::v3::sqrt_price_math::Q96;
        let v3 = V3Pool::new(
            3000,
            60,
            q96,
            0,
            10u128.pow(20),
            &[
                TickInfo { index: -600, liquidity_net: 10i128.pow(20) },
                TickInfo { index: 600, liquidity_net: -(10i128.pow(20)) },
            ],
        )
        .unwrap();
        for (change, source) in [
            (PoolChange::V2 { reserve0: U256::from(5u8), reserve1: U256::MAX }, PoolSource::Poll),
            (PoolChange::V3Swap { sqrt_price_x96: q96, tick: -3, liquidity: u128::MAX }, PoolSource::Logs),
            (
                PoolChange::V3Position { tick_lower: -60, tick_upper: 60, liquidity_delta: -5 },
                PoolSource::Logs,
            ),
            (
                PoolChange::Snapshot(Box::new(Pool::V2 {
                    reserve0: U256::from(1u8),
                    reserve1: U256::from(2u8),
                    fee_bps: 30,
                })),
                PoolSource::Poll,
            ),
            (PoolChange::Snapshot(Box::new(Pool::V3(v3.clone()))), PoolSource::Logs),
            (
                PoolChange::Snapshot(Box::new(Pool::V4(Box::new(
                    keel_amm::v4::V4Pool::new(
                        keel_amm::v4::PoolKey {
                            currency0: Address::ZERO,
                            currency1: Address::repeat_byte(3),
                            fee: 3000,
                            tick_spacing: 60,
                            // afterSwap only (0x4040 & 0x3fff): amount-neutral, accepted
                            hooks: Address::repeat_byte(0x40),
                        },
                        q96,
                        0,
                        10u128.pow(20),
                        3000,
                        0x3e8_3e8,
                        &v3.ticks().collect::<Vec<_>>(),
                    )
                    .unwrap(),
                )))),
                PoolSource::Logs,
            ),
            (
                PoolChange::Balances {
                    token_in: 2,
                    token_out: 0,
                    amount_in: U256::from(7u8),
                    amount_out: U256::MAX,
                },
                PoolSource::Logs,
            ),
            (PoolChange::Snapshot(Box::new(balancer_snapshot())), PoolSource::Poll),
            (PoolChange::Snapshot(Box::new(curve_snapshot())), PoolSource::Poll),
        ] {
            roundtrip_update(ChainUpdate::Pool {
                update: PoolUpdate { pool: 2, address: a, block: 77, change, recv_ns: 99 },
                source,
            });
        }
    }

    #[test]
    fn engine_events_receipts_and_relay_answers_round_trip() {
        let ev = Event::Balance(Balance {
            portfolio: PortfolioId(2),
            token: TokenId(5),
            amount: U256::from(123_456_789u64),
            block: 10,
            recv_ns: 0,
        });
        let mut buf = vec![0u8; event_len(&ev).unwrap()];
        assert_eq!(encode_event(&ev, &mut buf), buf.len());
        assert_eq!(decode(kind_of_event(&ev), &buf, 0).unwrap(), Input::Engine(ev));
        // A timer is its tag; its time is the record's.
        let timer = Event::Timer { now_ns: 1 };
        let mut buf = vec![0u8; event_len(&timer).unwrap()];
        assert_eq!(encode_event(&timer, &mut buf), 1);
        assert_eq!(kind_of_event(&timer), RecordKind::Other);
        assert_eq!(decode(RecordKind::Other, &buf, 7).unwrap(), Input::Engine(Event::Timer { now_ns: 7 }));
        let outcome = keel_engine::event::Outcome {
            intent: 1,
            portfolio: PortfolioId(0),
            status: keel_engine::event::OutcomeStatus::Expired,
            at_ns: 1,
        };
        assert_eq!(event_len(&Event::Outcome(outcome)), None, "an outcome is Keel's own");

        let receipts =
            [ReceiptInfo { hash: B256::repeat_byte(3), block: 5, gas_used: 98_000, success: true }];
        let mut buf = vec![0u8; receipts_len(&receipts)];
        assert_eq!(encode_receipts(42, &receipts, &mut buf), buf.len());
        assert_eq!(
            decode(RecordKind::Other, &buf, 0).unwrap(),
            Input::Receipts { intent: 42, receipts: receipts.to_vec(), recv_ns: 0 }
        );

        let long = "é".repeat(200);
        let a = RelayAnswer { relay: 1, intent: 2, block: 3, accepted: false, elapsed_ns: 4, detail: long };
        let mut buf = vec![0u8; relay_answer_len(&a.detail)];
        assert_eq!(encode_relay_answer(&a, &mut buf), buf.len());
        let Input::RelayAnswer(back) = decode(RecordKind::RelayAnswer, &buf, 0).unwrap() else { panic!() };
        assert_eq!(back.detail.len(), MAX_DETAIL_BYTES);
        assert!(a.detail.starts_with(&back.detail));
    }

    #[test]
    fn every_truncation_and_a_bad_tag_are_typed_errors() {
        let u = ChainUpdate::Nonce { account: Address::ZERO, nonce: 1, block: 2 };
        let mut buf = vec![0u8; update_len(&u)];
        encode_update(&u, &mut buf);
        for cut in 0..buf.len() {
            assert!(decode(RecordKind::NonceRead, &buf[..cut], 0).is_err(), "cut {cut}");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(decode(RecordKind::NonceRead, &longer, 0), Err(CodecError::Trailing { extra: 1 }));
        buf[0] = 0x7F;
        assert_eq!(decode(RecordKind::NonceRead, &buf, 0), Err(CodecError::UnknownTag(0x7F)));
        assert!(matches!(
            decode(RecordKind::ExchangeFrame, b"{}", 0),
            Err(CodecError::NotChainInput(RecordKind::ExchangeFrame))
        ));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode(RecordKind::PoolLog, &bytes, 0);
        }
    }
}
