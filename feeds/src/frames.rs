//! One exchange frame → at most one engine event: record, decode, map, count.
//!
//! Shared by the feed task ([`crate::ws`], which queues the event) and the hot thread's own socket
//! ([`crate::hot`], which hands it straight to the engine). Allocation-free; a malformed frame or a
//! symbol not in the table is counted and warned about at most once a second.

use std::sync::Arc;

use keel_engine::{Event, Nanos};
use keel_recording::Recorder;
use tracing::{debug, warn};

use crate::binance::{Decoded, InstrumentTable, Mapped, decode, map_decoded};
use crate::stats::{Counter, FeedStats};

/// Least interval between two warnings of the same kind.
pub(crate) const WARN_INTERVAL_NS: Nanos = 1_000_000_000;
/// Bytes of a malformed frame shown in its warning.
const FRAME_PREVIEW: usize = 160;

/// Lets a warning through at most once per [`WARN_INTERVAL_NS`], counting the ones held back.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    last_ns: Option<Nanos>,
    suppressed: u64,
}

impl RateLimit {
    /// `Some(suppressed since the last one)` when a warning may be logged now.
    pub(crate) fn allow(&mut self, now_ns: Nanos) -> Option<u64> {
        if self.last_ns.is_none_or(|l| now_ns.saturating_sub(l) >= WARN_INTERVAL_NS) {
            self.last_ns = Some(now_ns);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Records, decodes, maps and counts data frames.
pub(crate) struct FrameMapper {
    table: Arc<InstrumentTable>,
    stats: Arc<FeedStats>,
    recorder: Option<Arc<Recorder>>,
    malformed_log: RateLimit,
    unknown_log: RateLimit,
}

impl FrameMapper {
    /// A mapper onto `table`'s instruments, counting in `stats`, recording into `recorder`.
    pub(crate) fn new(
        table: Arc<InstrumentTable>,
        stats: Arc<FeedStats>,
        recorder: Option<Arc<Recorder>>,
    ) -> Self {
        Self {
            table,
            stats,
            recorder,
            malformed_log: RateLimit::default(),
            unknown_log: RateLimit::default(),
        }
    }

    /// The counters.
    pub(crate) fn stats(&self) -> &FeedStats {
        &self.stats
    }

    /// One data frame read at `recv_ns`: recorded first (with a recorder: one copy into a bounded
    /// queue), then decoded and mapped. The engine event it carries, if any.
    #[inline]
    pub(crate) fn frame(&mut self, bytes: &[u8], recv_ns: Nanos) -> Option<Event> {
        if let Some(r) = &self.recorder {
            r.exchange_frame(recv_ns, bytes);
        }
        self.stats.inc(Counter::Frames);
        let decoded = match decode(bytes) {
            Ok(d) => d,
            Err(error) => {
                self.stats.inc(Counter::Malformed);
                if let Some(suppressed) = self.malformed_log.allow(recv_ns) {
                    let preview = &bytes[..bytes.len().min(FRAME_PREVIEW)];
                    warn!(%error, suppressed, frame = %preview.escape_ascii(), "malformed binance frame");
                }
                return None;
            }
        };
        self.stats.inc(Counter::of_decoded(&decoded));
        match map_decoded(&decoded, &self.table, recv_ns) {
            Mapped::Event(event) => Some(event),
            Mapped::UnknownSymbol => {
                self.stats.inc(Counter::UnknownSymbol);
                if let Some(suppressed) = self.unknown_log.allow(recv_ns) {
                    let symbol = match decoded {
                        Decoded::BookTicker(t) => t.symbol,
                        Decoded::AggTrade(t) => t.symbol,
                        _ => Default::default(),
                    };
                    debug!(%symbol, suppressed, "binance frame for a symbol not in the table: skipped");
                }
                None
            }
            Mapped::NoEvent => {
                if let Decoded::ControlResponse { id, error: Some(error) } = decoded {
                    warn!(?id, error = %error.escape_ascii(), "binance refused a request");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit() {
        let mut r = RateLimit::default();
        assert_eq!(r.allow(0), Some(0));
        assert_eq!(r.allow(1), None);
        assert_eq!(r.allow(2), None);
        assert_eq!(r.allow(WARN_INTERVAL_NS + 1), Some(2));
    }
}
