//! Reconnect delays: exponential backoff with full jitter.
//!
//! The n-th consecutive failure waits a uniformly random time in `[0, min(max, base · 2^n)]`
//! ("full jitter"), so many clients that lost the same server do not come back in lock-step.
//! [`Backoff::reset`] after a healthy connection starts the sequence over.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

/// Default first ceiling of the delay.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 250;
/// Default largest delay.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 30_000;

/// Largest `base_ms` and `max_ms`: an hour.
pub const MAX_BACKOFF_MS: u64 = 3_600_000;

/// Backoff settings (`[feeds.binance.backoff]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// Ceiling of the first delay, ms (doubles after each consecutive failure).
    #[serde(default = "default_base_ms")]
    pub base_ms: u64,
    /// Largest delay, ms.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self { base_ms: DEFAULT_BACKOFF_BASE_MS, max_ms: DEFAULT_BACKOFF_MAX_MS }
    }
}

fn default_base_ms() -> u64 {
    DEFAULT_BACKOFF_BASE_MS
}
fn default_max_ms() -> u64 {
    DEFAULT_BACKOFF_MAX_MS
}

impl BackoffConfig {
    /// Checks the settings; the error names the field and the problem.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_BACKOFF_MS).contains(&self.base_ms) {
            return Err(format!("backoff.base_ms: {} is outside 1..={MAX_BACKOFF_MS}", self.base_ms));
        }
        if !(self.base_ms..=MAX_BACKOFF_MS).contains(&self.max_ms) {
            return Err(format!(
                "backoff.max_ms: {} is outside base_ms..={MAX_BACKOFF_MS} ({}..={MAX_BACKOFF_MS})",
                self.max_ms, self.base_ms
            ));
        }
        Ok(())
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// A backoff seeded from the operating system's randomness (or the clock, if that fails).
    pub fn new(cfg: BackoffConfig) -> Self {
        let rng = SmallRng::try_from_os_rng().unwrap_or_else(|_| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            SmallRng::seed_from_u64(t.as_nanos() as u64)
        });
        Self::with_rng(cfg, rng)
    }

    /// A backoff with a fixed seed (reproducible delays, for tests).
    pub fn with_seed(cfg: BackoffConfig, seed: u64) -> Self {
        Self::with_rng(cfg, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(cfg: BackoffConfig, rng: SmallRng) -> Self {
        let base = Duration::from_millis(cfg.base_ms.max(1));
        let max = Duration::from_millis(cfg.max_ms).max(base);
        Self { base, max, attempt: 0, rng }
    }

    /// Ceiling of the next delay: `min(max, base · 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt, uniform in `[0, ceiling]`; then doubles the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1).min(31);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.random_range(0..=nanos))
    }

    /// Consecutive failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Starts over from `base` (call after a healthy connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(base_ms: u64, max_ms: u64) -> BackoffConfig {
        BackoffConfig { base_ms, max_ms }
    }

    #[test]
    fn ceiling_doubles_up_to_max() {
        let mut b = Backoff::with_seed(cfg(100, 1_000), 1);
        let ceilings: Vec<u64> = (0..7)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_delay();
                assert!(d <= c, "{d:?} > {c:?}");
                c.as_millis() as u64
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_millis(1_000));
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::with_seed(cfg(50, 10_000), 2);
        for _ in 0..5 {
            b.next_delay();
        }
        assert_eq!(b.attempt(), 5);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.ceiling(), Duration::from_millis(50));
        assert!(b.next_delay() <= Duration::from_millis(50));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::with_seed(cfg(1_000, 1_000), 3);
        let delays: Vec<Duration> = (0..200).map(|_| b.next_delay()).collect();
        let lo = delays.iter().filter(|d| **d < Duration::from_millis(250)).count();
        let hi = delays.iter().filter(|d| **d > Duration::from_millis(750)).count();
        assert!(lo > 20 && hi > 20, "not spread: {lo} low, {hi} high");
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::with_seed(cfg(u64::MAX / 2, u64::MAX), 4);
        for _ in 0..100 {
            b.next_delay();
        }
        assert!(b.attempt() <= 31);
    }

    #[test]
    fn config_validation_and_defaults() {
        assert!(cfg(0, 10).validate().unwrap_err().contains("base_ms"));
        assert!(cfg(10, 5).validate().unwrap_err().contains("max_ms"));
        let d: BackoffConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d, BackoffConfig::default());
        assert!(serde_json::from_str::<BackoffConfig>(r#"{"base":1}"#).is_err());
    }
}
