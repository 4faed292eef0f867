//! Bounded, lock-free multi-producer queues between stages.
//!
//! A full queue never blocks the producer and never grows: `try_push` hands the value back and the
//! drop is counted, so overload shows in the stats instead of as latency or memory. How an idle
//! consumer waits is a [`WaitPolicy`]: by default it spins briefly, then parks; a producer unparks it
//! only when it is parked, so the fast path is one atomic push and one relaxed load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::Backoff;

/// How a consumer waits for the next value when its queue is empty.
///
/// Parking frees the core but a wake-up costs a futex call on the producer side and a scheduler
/// hop (tens of µs, more on a loaded machine); spinning answers within a cache-line transfer but
/// burns the core it runs on, which on a machine with few cores competes with the threads it waits
/// for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitPolicy {
    /// Spin for a few microseconds (exponential backoff), then park until woken.
    #[default]
    Park,
    /// Busy-poll until a value arrives or the timeout passes; never parks.
    Spin,
    /// Busy-poll for `spin`, then park for the rest of the timeout.
    SpinThenPark {
        /// How long to busy-poll before parking.
        spin: Duration,
    },
}

/// A bounded MPMC queue with drop accounting and a parking consumer.
#[derive(Debug)]
pub struct Queue<T> {
    inner: ArrayQueue<T>,
    pushed: AtomicU64,
    dropped: AtomicU64,
    high_water: AtomicU64,
    parked: AtomicBool,
    consumer: OnceLock<Thread>,
}

/// Counters of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Values accepted.
    pub pushed: u64,
    /// Values refused because the queue was full.
    pub dropped: u64,
    /// Largest depth seen by a producer right after pushing.
    pub high_water: u64,
    /// Capacity.
    pub capacity: u64,
}

impl<T> Queue<T> {
    /// A queue holding at most `capacity` values (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: ArrayQueue::new(capacity.max(1)),
            pushed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            consumer: OnceLock::new(),
        }
    }

    /// Pushes `value`, or hands it back (and counts a drop) when the queue is full.
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), T> {
        match self.inner.push(value) {
            Ok(()) => {
                self.pushed.fetch_add(1, Ordering::Relaxed);
                let depth = self.inner.len() as u64;
                if depth > self.high_water.load(Ordering::Relaxed) {
                    self.high_water.fetch_max(depth, Ordering::Relaxed);
                }
                if self.parked.load(Ordering::Acquire)
                    && let Some(t) = self.consumer.get()
                {
                    t.unpark();
                }
                Ok(())
            }
            Err(v) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(v)
            }
        }
    }

    /// Pops a value if one is there.
    #[inline]
    pub fn try_pop(&self) -> Option<T> {
        self.inner.pop()
    }

    /// Pops a value, spinning briefly and then parking for at most `timeout`. Returns `None` on timeout.
    ///
    /// Only one thread may wait on a queue: the first caller becomes its consumer.
    pub fn pop_wait(&self, timeout: Duration) -> Option<T> {
        self.pop_with(WaitPolicy::Park, timeout)
    }

    /// Pops a value, waiting at most `timeout` as `policy` says. Returns `None` on timeout.
    ///
    /// Only one thread may park on a queue: the first caller that parks becomes its consumer.
    #[inline]
    pub fn pop_with(&self, policy: WaitPolicy, timeout: Duration) -> Option<T> {
        wait_for(|| self.inner.pop(), &[self.doorbell()], policy, timeout)
    }

    /// What a consumer parked on this queue is woken through.
    fn doorbell(&self) -> Doorbell<'_> {
        Doorbell { parked: &self.parked, consumer: &self.consumer }
    }

    /// Values waiting.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            pushed: self.pushed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            high_water: self.high_water.load(Ordering::Relaxed),
            capacity: self.inner.capacity() as u64,
        }
    }
}

/// What [`pop_either`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Either<A, B> {
    /// A value from the first queue.
    First(A),
    /// A value from the second queue.
    Second(B),
}

/// Pops from `first` or `second` (the first is tried first), waiting at most `timeout` as `policy`
/// says; `None` on timeout. One thread waits on both: it becomes the consumer of both, and a push
/// to either wakes it. The inline engine thread waits so on its events and the router stage's
/// inputs.
pub fn pop_either<A, B>(
    first: &Queue<A>,
    second: &Queue<B>,
    policy: WaitPolicy,
    timeout: Duration,
) -> Option<Either<A, B>> {
    let take = || match first.inner.pop() {
        Some(a) => Some(Either::First(a)),
        None => second.inner.pop().map(Either::Second),
    };
    wait_for(take, &[first.doorbell(), second.doorbell()], policy, timeout)
}

/// A queue's parking state, as its consumer announces a park on it.
struct Doorbell<'a> {
    parked: &'a AtomicBool,
    consumer: &'a OnceLock<Thread>,
}

/// The one way a consumer waits: `take` until it yields a value, spinning and parking as `policy`
/// says, for at most `timeout`. Before parking it becomes the consumer of every queue in `doorbells`
/// and announces the park on each, so that a push to any of them wakes it.
#[inline]
fn wait_for<V>(
    take: impl Fn() -> Option<V>,
    doorbells: &[Doorbell<'_>],
    policy: WaitPolicy,
    timeout: Duration,
) -> Option<V> {
    // Busy-polls for at most `budget`; reading the clock costs ~20 ns: it is read every 64 polls.
    let spin = |budget: Duration| {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            if let Some(v) = take() {
                return Some(v);
            }
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(64) && start.elapsed() >= budget {
                return take();
            }
        }
    };
    let park_for = match policy {
        WaitPolicy::Park => timeout,
        WaitPolicy::Spin => return spin(timeout),
        WaitPolicy::SpinThenPark { spin: budget } => {
            if let Some(v) = spin(budget.min(timeout)) {
                return Some(v);
            }
            timeout.saturating_sub(budget)
        }
    };
    // A few microseconds of backoff, then park.
    let backoff = Backoff::new();
    loop {
        if let Some(v) = take() {
            return Some(v);
        }
        if backoff.is_completed() {
            break;
        }
        backoff.snooze();
    }
    for d in doorbells {
        let _ = d.consumer.get_or_init(std::thread::current);
        d.parked.store(true, Ordering::Release);
    }
    // Re-check after announcing the park, so a push that raced with us is not missed.
    let v = take().or_else(|| {
        std::thread::park_timeout(park_for);
        None
    });
    for d in doorbells {
        d.parked.store(false, Ordering::Release);
    }
    v.or_else(take)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn full_queue_refuses_and_counts() {
        let q = Queue::new(2);
        assert!(q.try_push(1).is_ok());
        assert!(q.try_push(2).is_ok());
        assert_eq!(q.try_push(3), Err(3));
        let s = q.stats();
        assert_eq!((s.pushed, s.dropped, s.high_water, s.capacity), (2, 1, 2, 2));
        assert_eq!(q.try_pop(), Some(1));
    }

    #[test]
    fn parked_consumer_is_woken_by_a_push() {
        let q = Arc::new(Queue::new(8));
        let q2 = Arc::clone(&q);
        let consumer = std::thread::spawn(move || q2.pop_wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        q.try_push(7u32).unwrap();
        assert_eq!(consumer.join().unwrap(), Some(7));
    }

    #[test]
    fn wait_times_out_empty() {
        let q: Queue<u8> = Queue::new(1);
        assert_eq!(q.pop_wait(Duration::from_millis(5)), None);
        assert_eq!(q.pop_with(WaitPolicy::Spin, Duration::from_millis(2)), None);
        let policy = WaitPolicy::SpinThenPark { spin: Duration::from_millis(1) };
        assert_eq!(q.pop_with(policy, Duration::from_millis(3)), None);
    }

    #[test]
    fn every_policy_receives_a_push_from_another_thread() {
        let policies = [
            WaitPolicy::Park,
            WaitPolicy::Spin,
            WaitPolicy::SpinThenPark { spin: Duration::from_micros(50) },
        ];
        for policy in policies {
            let q = Arc::new(Queue::new(8));
            let q2 = Arc::clone(&q);
            let consumer = std::thread::spawn(move || {
                // Loop on timeouts like the stage threads do, so the test never depends on timing.
                loop {
                    if let Some(v) = q2.pop_with(policy, Duration::from_millis(20)) {
                        return v;
                    }
                }
            });
            std::thread::sleep(Duration::from_millis(10));
            q.try_push(9u32).unwrap();
            assert_eq!(consumer.join().unwrap(), 9, "{policy:?}");
        }
    }

    #[test]
    fn a_thread_parked_on_two_queues_is_woken_by_a_push_to_either() {
        for policy in [WaitPolicy::Park, WaitPolicy::SpinThenPark { spin: Duration::from_micros(50) }] {
            let (a, b) = (Arc::new(Queue::<u32>::new(8)), Arc::new(Queue::<&str>::new(8)));
            let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
            // Ten seconds: only a wake-up by the push returns within the test's time.
            let consumer = std::thread::spawn(move || {
                let started = Instant::now();
                let v = pop_either(&a2, &b2, policy, Duration::from_secs(10));
                (v, started.elapsed())
            });
            std::thread::sleep(Duration::from_millis(50));
            b.try_push("head").unwrap();
            let (v, waited) = consumer.join().unwrap();
            assert_eq!(v, Some(Either::Second("head")), "{policy:?}");
            assert!(waited < Duration::from_secs(5), "{policy:?}: woken after {waited:?}");
        }
        // The first queue is taken first; an empty pair times out.
        let (a, b) = (Queue::new(2), Queue::new(2));
        a.try_push(1u8).unwrap();
        b.try_push(2u8).unwrap();
        assert_eq!(pop_either(&a, &b, WaitPolicy::Park, Duration::ZERO), Some(Either::First(1)));
        assert_eq!(pop_either(&a, &b, WaitPolicy::Spin, Duration::ZERO), Some(Either::Second(2)));
        assert_eq!(pop_either(&a, &b, WaitPolicy::Park, Duration::from_millis(5)), None);
        assert_eq!(pop_either(&a, &b, WaitPolicy::Spin, Duration::from_millis(2)), None);
    }
}
