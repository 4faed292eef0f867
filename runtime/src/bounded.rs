//! Report buffers that stay bounded however long a run lasts: the last N records of a kind, and
//! weight samples that thin themselves out (every other one dropped, the interval doubled) instead
//! of growing past their cap, so a week-long run keeps a full-length, coarser history.

use std::collections::VecDeque;

/// Most intents kept for the report (the newest); counts and maxima cover the whole run.
pub const MAX_KEPT_INTENTS: usize = 10_000;
/// Most post-landing drift measurements kept (the newest).
pub const MAX_KEPT_DRIFTS: usize = 10_000;
/// Most weight samples kept; beyond, the history is thinned by half.
pub const MAX_KEPT_SAMPLES: usize = 100_000;

/// The newest `cap` items pushed.
#[derive(Debug, Clone)]
pub struct Newest<T> {
    items: VecDeque<T>,
    cap: usize,
    pushed: u64,
}

impl<T> Newest<T> {
    /// Keeps at most `cap` (≥ 1) items.
    pub fn new(cap: usize) -> Self {
        Self { items: VecDeque::new(), cap: cap.max(1), pushed: 0 }
    }

    /// Adds an item, dropping the oldest when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(item);
        self.pushed += 1;
    }

    /// Items pushed over the whole run (kept or not).
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The kept items, oldest first.
    pub fn into_vec(self) -> Vec<T> {
        self.items.into()
    }
}

/// Samples taken every `stride`-th tick of a fixed sampling clock; when `cap` would be exceeded,
/// every other kept sample is dropped and the stride doubles, so the kept ones stay evenly spaced
/// over the whole run.
#[derive(Debug, Clone)]
pub struct Thinning<T> {
    items: Vec<(u64, T)>,
    cap: usize,
    stride: u64,
}

impl<T> Thinning<T> {
    /// Keeps at most `cap` (≥ 2) samples.
    pub fn new(cap: usize) -> Self {
        Self { items: Vec::new(), cap: cap.max(2), stride: 1 }
    }

    /// Whether sampling tick `tick` (0, 1, 2, … of the sampling clock) is kept at the current
    /// resolution: check before building a sample.
    pub fn wants(&self, tick: u64) -> bool {
        tick.is_multiple_of(self.stride)
    }

    /// Adds the sample of tick `tick` (one already [`wanted`](Self::wants)).
    pub fn push(&mut self, tick: u64, item: T) {
        if self.items.len() >= self.cap {
            self.stride = self.stride.saturating_mul(2);
            let stride = self.stride;
            self.items.retain(|(t, _)| t.is_multiple_of(stride));
        }
        if self.wants(tick) {
            self.items.push((tick, item));
        }
    }

    /// The current interval between kept samples, in sampling ticks.
    pub fn stride(&self) -> u64 {
        self.stride
    }

    /// The kept samples, oldest first.
    pub fn into_vec(self) -> Vec<T> {
        self.items.into_iter().map(|(_, s)| s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_keeps_the_last_items_and_counts_all() {
        let mut n = Newest::new(3);
        for i in 0..10 {
            n.push(i);
        }
        assert_eq!(n.pushed(), 10);
        assert_eq!(n.into_vec(), vec![7, 8, 9]);
    }

    #[test]
    fn thinning_stays_under_its_cap_and_spans_the_whole_run() {
        let mut s = Thinning::new(100);
        for tick in 0..1_000_000u64 {
            if s.wants(tick) {
                s.push(tick, tick);
            }
        }
        assert!(s.stride() > 1);
        let kept = s.into_vec();
        assert!(kept.len() <= 100 && kept.len() >= 50, "{}", kept.len());
        assert_eq!(kept[0], 0, "the start of the run is kept");
        assert!(*kept.last().unwrap() > 990_000, "and its end: {:?}", kept.last());
        let gaps: Vec<u64> = kept.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g == gaps[0]), "evenly spaced");
    }
}
