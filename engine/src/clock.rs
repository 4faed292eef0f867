//! Injected clocks. The engine never reads the system time itself: the live run passes a monotonic
//! clock, replays and tests pass a clock they drive, so `process(event)` is deterministic.

use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds on a monotonic timeline shared by every stage of one process.
pub type Nanos = u64;

/// A source of the current time in nanoseconds.
pub trait Clock: std::fmt::Debug + Send {
    /// The current time.
    fn now_ns(&self) -> Nanos;
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Monotonic nanoseconds since the first call in this process (vDSO `clock_gettime`, no syscall).
#[inline]
pub fn mono_now_ns() -> Nanos {
    epoch().elapsed().as_nanos() as Nanos
}

/// The live clock: [`mono_now_ns`].
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveClock;

impl Clock for LiveClock {
    #[inline]
    fn now_ns(&self) -> Nanos {
        mono_now_ns()
    }
}

/// A clock that only moves when told to: for replay, backtests and tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start_ns`.
    pub fn new(start_ns: Nanos) -> Self {
        Self { now: std::sync::atomic::AtomicU64::new(start_ns) }
    }

    /// Sets the time (it may not go backwards; an earlier time is ignored).
    pub fn set(&self, ns: Nanos) {
        self.now.fetch_max(ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// Moves the clock forward by `ns`.
    pub fn advance(&self, ns: Nanos) {
        self.now.fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> Nanos {
        self.now.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<C: Clock + Sync> Clock for std::sync::Arc<C> {
    fn now_ns(&self) -> Nanos {
        (**self).now_ns()
    }
}
