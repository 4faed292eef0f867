//! The precompute thread and the state it shares with the signer.
//!
//! Data flow: the producer takes a wiped cell from `spare` (or allocates one), fills it from the OS
//! CSPRNG and pushes it to `ready`; the signer pops from `ready`, signs, wipes the cell in place and
//! pushes it back to `spare`. Only the `Box` pointer moves through the queues; the secret stays in its
//! heap cell. Both queues are bounded lock-free rings (`crossbeam::queue::ArrayQueue`): a pop hands an
//! element out exactly once, whatever the number of threads.
//!
//! Waiting: the producer refills in bursts. Once `ready` is full it raises `idle` and parks until the
//! pool is down to its low watermark (half the capacity): the signer, which sees the depth after
//! each signature, wakes it then; a backstop timeout re-checks the depth, so a lost wake-up costs at
//! most [`PARK_BACKSTOP`] of refill delay, never a hang. So a burst of signatures that leaves half
//! the pool never has k·G competing with it for a core, and a futex wake costs the hot thread at
//! most once per half pool.

use std::{
    sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering, fence},
    thread,
    time::Duration,
};

use crossbeam::{queue::ArrayQueue, utils::CachePadded};
use zeroize::Zeroize;

use super::nonce::Presig;

/// Longest the producer sleeps on a full pool before looking again without being woken.
pub(crate) const PARK_BACKSTOP: Duration = Duration::from_millis(10);

/// State of the precompute thread, as seen by [`PresignStats`](super::PresignStats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProducerStatus {
    /// Filling the pool or waiting for it to drain.
    Running,
    /// Stopped on request (the signer is being dropped).
    Stopped,
    /// The OS random number generator returned an error; the thread exited. Signing falls back.
    RngFailed,
    /// The thread panicked; signing falls back.
    Panicked,
}

impl ProducerStatus {
    const fn to_u8(self) -> u8 {
        match self {
            Self::Running => 0,
            Self::Stopped => 1,
            Self::RngFailed => 2,
            Self::Panicked => 3,
        }
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Running,
            1 => Self::Stopped,
            2 => Self::RngFailed,
            _ => Self::Panicked,
        }
    }
}

/// Test-only behaviour injected into the producer.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct ProducerHooks {
    /// Panic after this many entries were pushed.
    pub(crate) panic_after: Option<u64>,
}

/// What the signer and the producer share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Filled entries, oldest first.
    pub(crate) ready: ArrayQueue<Box<Presig>>,
    /// Wiped cells for the producer to reuse, so steady state allocates nothing.
    pub(crate) spare: ArrayQueue<Box<Presig>>,
    /// Set by the signer's `Drop`.
    pub(crate) stop: CachePadded<AtomicBool>,
    /// The producer is parked (or about to park) on a full pool.
    pub(crate) idle: CachePadded<AtomicBool>,
    status: AtomicU8,
    /// The producer sleeps while more than this many entries are ready (half the capacity).
    pub(crate) low_watermark: usize,
    /// Entries pushed since start (producer-written only).
    produced: CachePadded<AtomicU64>,
    #[cfg(test)]
    pub(crate) hooks: ProducerHooks,
}

impl Shared {
    /// Both rings of `capacity` slots. The caller has validated `capacity ≥ 1`.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            ready: ArrayQueue::new(capacity),
            spare: ArrayQueue::new(capacity),
            stop: CachePadded::new(AtomicBool::new(false)),
            idle: CachePadded::new(AtomicBool::new(false)),
            status: AtomicU8::new(ProducerStatus::Running.to_u8()),
            low_watermark: capacity / 2,
            produced: CachePadded::new(AtomicU64::new(0)),
            #[cfg(test)]
            hooks: ProducerHooks::default(),
        }
    }

    /// Current producer state.
    pub(crate) fn status(&self) -> ProducerStatus {
        ProducerStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    fn set_status(&self, status: ProducerStatus) {
        self.status.store(status.to_u8(), Ordering::Release);
    }

    /// Returns a used cell for reuse; wipes it first.
    #[inline]
    pub(crate) fn recycle(&self, mut cell: Box<Presig>) {
        cell.zeroize();
        // The spare ring only overflows if the producer allocated while cells were in flight; the extra
        // cell is dropped (and wiped again by `Drop`).
        if let Err(extra) = self.spare.push(cell) {
            drop(extra);
        }
    }
}

/// Marks the status `Panicked` if the thread unwinds.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.set_status(ProducerStatus::Panicked);
        }
    }
}

/// The precompute thread's body: fill `ready` to capacity, then park until it is down to the low
/// watermark; exit on `stop`.
pub(crate) fn run(shared: &Shared) {
    let _guard = PanicGuard(shared);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            shared.set_status(ProducerStatus::Stopped);
            return;
        }
        if shared.ready.is_full() {
            park_while_above_low_watermark(shared);
            continue;
        }
        let mut cell = shared.spare.pop().unwrap_or_else(Presig::blank);
        if cell.fill_from_os_rng().is_err() {
            shared.set_status(ProducerStatus::RngFailed);
            return;
        }
        // Only this thread pushes, and `ready` was not full: the push succeeds. Were it ever to fail,
        // the entry goes back to `spare` wiped, never to `ready` twice.
        if let Err(cell) = shared.ready.push(cell) {
            shared.recycle(cell);
        }
        shared.produced.fetch_add(1, Ordering::Relaxed);
        #[cfg(test)]
        test_hooks::after_push(shared);
    }
}

fn park_while_above_low_watermark(shared: &Shared) {
    loop {
        shared.idle.store(true, Ordering::Relaxed);
        // Pairs with the fence in `PresignPool::wake_producer`: either the signer sees `idle` and
        // unparks us, or we see its pop here and do not park.
        fence(Ordering::SeqCst);
        if shared.ready.len() <= shared.low_watermark || shared.stop.load(Ordering::Acquire) {
            break;
        }
        thread::park_timeout(PARK_BACKSTOP);
    }
    shared.idle.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod test_hooks {
    use std::sync::atomic::Ordering;

    use super::Shared;

    pub(super) fn after_push(shared: &Shared) {
        let produced = shared.produced.load(Ordering::Relaxed);
        if shared.hooks.panic_after.is_some_and(|n| produced >= n) {
            panic!("test hook: the precompute thread panics after {produced} entries");
        }
    }
}
