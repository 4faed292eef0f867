//! How long landed rebalances took to be included: blocks from the first targeted block to the
//! landing block, seconds from the first send to the head that showed the account's nonces move,
//! and how many signed versions were sent. Fixed buckets, so memory stays constant for any uptime.

/// Upper bounds of the blocks-to-inclusion buckets (1: landed in the first block targeted).
pub const INCLUSION_BLOCK_BOUNDS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0];
/// Upper bounds of the seconds-to-inclusion buckets.
pub const INCLUSION_SECOND_BOUNDS: &[f64] =
    &[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 36.0, 60.0, 120.0, 300.0];
/// Upper bounds of the versions-sent buckets.
pub const VERSION_BOUNDS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0];

/// A histogram over fixed upper bounds (Prometheus' shape): per-bucket counts (not cumulative),
/// with a last bucket for values above every bound, and the exact sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedHistogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl FixedHistogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    /// Counts one observation. Non-finite values are ignored.
    pub fn observe(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let bucket = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.counts[bucket] = self.counts[bucket].saturating_add(1);
        self.sum += value;
        self.count = self.count.saturating_add(1);
    }

    /// `(upper bound, count in that bucket)`, the last bound being `+∞`.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds.iter().copied().chain([f64::INFINITY]).zip(self.counts.iter().copied())
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Inclusion statistics of landed rebalances.
#[derive(Debug, Clone, PartialEq)]
pub struct InclusionStats {
    /// Blocks from the first block targeted to the landing block, inclusive (1 = first try).
    pub blocks: FixedHistogram,
    /// Seconds from the first send to the head at which the landing was seen (adopted bundles,
    /// whose first send was before a restart, are not counted here).
    pub seconds: FixedHistogram,
    /// Signed versions sent (re-signs for fees or batch re-plans add one each).
    pub versions: FixedHistogram,
}

impl Default for InclusionStats {
    fn default() -> Self {
        Self {
            blocks: FixedHistogram::new(INCLUSION_BLOCK_BOUNDS),
            seconds: FixedHistogram::new(INCLUSION_SECOND_BOUNDS),
            versions: FixedHistogram::new(VERSION_BOUNDS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_in_the_first_bucket_that_holds_them() {
        let mut h = FixedHistogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 7.0, f64::NAN] {
            h.observe(v);
        }
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b, vec![(1.0, 2), (2.0, 1), (f64::INFINITY, 1)]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum(), 10.0);
    }
}
