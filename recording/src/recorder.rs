//! [`Recorder`]: what the feeds and stages hold to record their inputs — a [`RecordSink`] plus the
//! recording's start on the process's monotonic timeline and the [`codec`](crate::codec) encodings.
//!
//! Every call is one copy into a preallocated slot of the sink (chain inputs are first encoded on
//! the stack); a full sink counts a drop and returns at once. The only allocation is for a V3 pool
//! snapshot larger than the stack buffer (a full pool load: start-up and resyncs, never per log).

use std::sync::Arc;

use keel_engine::chain::{ChainUpdate, ReceiptInfo};
use keel_engine::clock::Nanos;
use keel_engine::event::Event;

use crate::codec::{self, RelayAnswer};
use crate::{RecordKind, RecordSink, SinkStats};

/// Source id of records from the exchange websocket feed.
pub const SOURCE_EXCHANGE: u16 = 0;
/// Source id of records from the HTTP chain poller.
pub const SOURCE_POLLER: u16 = 1;
/// Source id of records from the websocket node feed (heads, logs, balances, pending impact).
pub const SOURCE_NODE_FEED: u16 = 2;
/// Source id of records from the router stage (receipts it read, relays' answers).
pub const SOURCE_ROUTER: u16 = 3;
/// Source id of records from the engine thread (the timers it ran).
pub const SOURCE_ENGINE: u16 = 4;

/// Stack buffer for an encoded chain input; larger ones (V3 snapshots) go through the heap.
const STACK_BYTES: usize = 256;

/// Counters of a [`Recorder`] (its sink's).
pub type RecorderStats = SinkStats;

/// Records inputs into a [`RecordSink`], stamping them relative to the recording's start.
#[derive(Debug, Clone)]
pub struct Recorder {
    sink: Arc<RecordSink>,
    start_ns: Nanos,
}

impl Recorder {
    /// A recorder into `sink` for a recording that started at `start_ns` on the process's monotonic
    /// timeline ([`keel_engine::clock::mono_now_ns`]).
    pub fn new(sink: Arc<RecordSink>, start_ns: Nanos) -> Self {
        Self { sink, start_ns }
    }

    /// The sink.
    pub fn sink(&self) -> &Arc<RecordSink> {
        &self.sink
    }

    /// Start of the recording on the process's monotonic timeline.
    pub fn start_ns(&self) -> Nanos {
        self.start_ns
    }

    /// Counters now: records drained, drops (full, oversized), records queued.
    pub fn stats(&self) -> RecorderStats {
        self.sink.stats()
    }

    #[inline]
    fn rel(&self, recv_ns: Nanos) -> u64 {
        recv_ns.saturating_sub(self.start_ns)
    }

    /// Records a raw exchange websocket frame received at `recv_ns`. `false`: dropped and counted.
    #[inline]
    pub fn exchange_frame(&self, recv_ns: Nanos, bytes: &[u8]) -> bool {
        self.sink.try_record(RecordKind::ExchangeFrame, SOURCE_EXCHANGE, self.rel(recv_ns), bytes)
    }

    /// Records an update as it enters the router queue.
    #[inline]
    pub fn chain_update(&self, source: u16, recv_ns: Nanos, u: &ChainUpdate) -> bool {
        let len = codec::update_len(u);
        let kind = codec::kind_of_update(u);
        if len <= STACK_BYTES {
            let mut buf = [0u8; STACK_BYTES];
            let n = codec::encode_update(u, &mut buf);
            self.sink.try_record(kind, source, self.rel(recv_ns), buf.get(..n).unwrap_or_default())
        } else {
            let mut buf = vec![0u8; len];
            let n = codec::encode_update(u, &mut buf);
            self.sink.try_record(kind, source, self.rel(recv_ns), buf.get(..n).unwrap_or_default())
        }
    }

    /// Records an event as it enters the engine queue: heads and balances (quotes and trades are
    /// recorded as their frames; outcomes are Keel's own and are ignored, returning `false`).
    /// Timers go through [`Recorder::timer`].
    #[inline]
    pub fn engine_event(&self, source: u16, recv_ns: Nanos, ev: &Event) -> bool {
        if codec::event_len(ev).is_none() {
            return false;
        }
        let mut buf = [0u8; STACK_BYTES];
        let n = codec::encode_event(ev, &mut buf);
        self.sink.try_record(
            codec::kind_of_event(ev),
            source,
            self.rel(recv_ns),
            buf.get(..n).unwrap_or_default(),
        )
    }

    /// Records a timer the engine thread ran at `now_ns`: when it runs between the inputs decides
    /// what it sees, so a replay runs the recorded ones instead of a grid of its own.
    #[inline]
    pub fn timer(&self, now_ns: Nanos) -> bool {
        self.engine_event(SOURCE_ENGINE, now_ns, &Event::Timer { now_ns })
    }

    /// Records receipts the router stage read for `intent`.
    pub fn receipts(&self, recv_ns: Nanos, intent: u64, receipts: &[ReceiptInfo]) -> bool {
        let mut buf = vec![0u8; codec::receipts_len(receipts)];
        let n = codec::encode_receipts(intent, receipts, &mut buf);
        self.sink.try_record(
            RecordKind::Other,
            SOURCE_ROUTER,
            self.rel(recv_ns),
            buf.get(..n).unwrap_or_default(),
        )
    }

    /// Records a relay's answer.
    pub fn relay_answer(&self, recv_ns: Nanos, answer: &RelayAnswer) -> bool {
        let mut buf = [0u8; 64 + codec::MAX_DETAIL_BYTES];
        let n = codec::encode_relay_answer(answer, &mut buf);
        self.sink.try_record(
            RecordKind::RelayAnswer,
            SOURCE_ROUTER,
            self.rel(recv_ns),
            buf.get(..n).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Address;

    use super::*;
    use crate::codec::Input;
    use crate::{SinkConfig, SlotClass};

    #[test]
    fn inputs_are_stamped_from_the_start_and_decode_back() {
        let sink = Arc::new(
            RecordSink::new(&SinkConfig { classes: vec![SlotClass { slot_bytes: 512, slots: 8 }] }).unwrap(),
        );
        let rec = Recorder::new(Arc::clone(&sink), 1_000);
        assert!(rec.exchange_frame(1_500, br#"{"u":1}"#));
        let nonce = ChainUpdate::Nonce { account: Address::repeat_byte(1), nonce: 3, block: 4 };
        assert!(rec.chain_update(SOURCE_POLLER, 2_000, &nonce));
        let outcome = keel_engine::event::Outcome {
            intent: 1,
            portfolio: keel_engine::PortfolioId(0),
            status: keel_engine::event::OutcomeStatus::Expired,
            at_ns: 1,
        };
        assert!(!rec.engine_event(SOURCE_POLLER, 2_000, &Event::Outcome(outcome)), "not an input");
        assert!(rec.timer(3_000));
        let mut got = Vec::new();
        sink.drain_with(usize::MAX, |r| {
            got.push((r.kind, r.source, r.recv_ns, r.payload.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].0, got[0].2, got[0].3.as_slice()),
            (RecordKind::ExchangeFrame, 500, &br#"{"u":1}"#[..])
        );
        assert_eq!((got[1].0, got[1].1, got[1].2), (RecordKind::NonceRead, SOURCE_POLLER, 1_000));
        assert_eq!(codec::decode(got[1].0, &got[1].3, got[1].2).unwrap(), Input::Router(nonce));
        assert_eq!((got[2].0, got[2].1, got[2].2), (RecordKind::Other, SOURCE_ENGINE, 2_000));
        assert_eq!(
            codec::decode(got[2].0, &got[2].3, got[2].2).unwrap(),
            Input::Engine(Event::Timer { now_ns: 2_000 })
        );
    }
}
