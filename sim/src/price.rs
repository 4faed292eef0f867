//! The reference price process: a seeded geometric Brownian motion per symbol with a shared two-state
//! Markov regime (calm: low volatility, no trend; volatile: high volatility and a trend whose sign is
//! drawn at each entry). The current mids live on a lock-free [`PriceBoard`] that the websocket server
//! writes and the chain's arbitrageur reads.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::StandardNormal;

use super::config::{SimConfig, StartRegime};

/// Current mid price per symbol, shared lock-free (an `f64` stored as bits in an `AtomicU64`).
#[derive(Debug)]
pub struct PriceBoard {
    symbols: Vec<String>,
    mids: Vec<AtomicU64>,
}

impl PriceBoard {
    /// A board with the given symbols and starting mids.
    pub(crate) fn new(entries: impl IntoIterator<Item = (String, f64)>) -> Self {
        let (symbols, mids) = entries.into_iter().map(|(s, p)| (s, AtomicU64::new(p.to_bits()))).unzip();
        Self { symbols, mids }
    }

    /// Dense index of `symbol`, if on the board.
    pub fn index(&self, symbol: &str) -> Option<usize> {
        self.symbols.iter().position(|s| s == symbol)
    }

    /// The symbols on the board, in index order.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The current mid of the symbol at `index`.
    pub fn mid(&self, index: usize) -> f64 {
        f64::from_bits(self.mids[index].load(Ordering::Acquire))
    }

    /// Publishes a new mid for the symbol at `index`.
    pub(crate) fn set(&self, index: usize, mid: f64) {
        self.mids[index].store(mid.to_bits(), Ordering::Release);
    }
}

/// Which regime the path is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Regime {
    Calm,
    Volatile,
}

/// The seeded path generator (owned by the tick task).
#[derive(Debug)]
pub(crate) struct PricePath {
    rng: StdRng,
    regime: Regime,
    /// Sign of the volatile regime's trend.
    trend_sign: f64,
    prices: Vec<f64>,
    calm_vol: f64,
    volatile_vol: f64,
    volatile_drift: f64,
    p_calm_to_volatile: f64,
    p_volatile_to_calm: f64,
}

impl PricePath {
    /// A path starting at each symbol's `start`, seeded with `cfg.seed`.
    pub(crate) fn new(cfg: &SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let trend_sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
        Self {
            rng,
            regime: match cfg.start_regime {
                StartRegime::Calm => Regime::Calm,
                StartRegime::Volatile => Regime::Volatile,
            },
            trend_sign,
            prices: cfg.symbols.iter().map(|s| s.start).collect(),
            calm_vol: cfg.calm_vol,
            volatile_vol: cfg.volatile_vol,
            volatile_drift: cfg.volatile_drift,
            p_calm_to_volatile: cfg.p_calm_to_volatile,
            p_volatile_to_calm: cfg.p_volatile_to_calm,
        }
    }

    /// Advances every symbol by `dt_secs` and returns the new prices.
    pub(crate) fn step(&mut self, dt_secs: f64) -> &[f64] {
        let p_switch = match self.regime {
            Regime::Calm => self.p_calm_to_volatile,
            Regime::Volatile => self.p_volatile_to_calm,
        };
        // Probability of at least one switch event in dt at the given per-second rate.
        let p = 1.0 - (1.0 - p_switch).powf(dt_secs);
        if self.rng.random::<f64>() < p {
            self.regime = match self.regime {
                Regime::Calm => {
                    self.trend_sign = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
                    Regime::Volatile
                }
                Regime::Volatile => Regime::Calm,
            };
        }
        let (vol, drift) = match self.regime {
            Regime::Calm => (self.calm_vol, 0.0),
            Regime::Volatile => (self.volatile_vol, self.trend_sign * self.volatile_drift),
        };
        for price in &mut self.prices {
            let z: f64 = self.rng.sample(StandardNormal);
            let log_ret = (drift - 0.5 * vol * vol) * dt_secs + vol * dt_secs.sqrt() * z;
            *price *= log_ret.exp();
        }
        &self.prices
    }

    /// A uniform draw in `[lo, hi)` from the path's generator (book quantities).
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.rng.random::<f64>()
    }

    /// The current regime.
    #[cfg(test)]
    pub(crate) fn regime(&self) -> Regime {
        self.regime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64) -> SimConfig {
        toml::from_str::<SimConfig>(&format!(
            "seed = {seed}\nsymbols = [{{ symbol = \"ETHUSDT\", start = 3000.0 }}, {{ symbol = \"BTCUSDT\", start = 60000.0 }}]"
        ))
        .unwrap()
    }

    #[test]
    fn same_seed_same_path() {
        let (mut a, mut b) = (PricePath::new(&cfg(1)), PricePath::new(&cfg(1)));
        for _ in 0..1000 {
            assert_eq!(a.step(0.1), b.step(0.1));
        }
        let mut c = PricePath::new(&cfg(2));
        c.step(0.1);
        let mut a = PricePath::new(&cfg(1));
        assert_ne!(a.step(0.1), c.step(0.1));
    }

    #[test]
    fn volatile_regime_moves_prices_several_percent_in_30s() {
        // Averaged over seeds: the 30 s absolute move in the volatile regime is several percent.
        let mut total = 0.0;
        let n = 200;
        for seed in 0..n {
            let mut c = cfg(seed);
            c.start_regime = StartRegime::Volatile;
            c.p_volatile_to_calm = 0.0;
            let mut p = PricePath::new(&c);
            let mut last = 3000.0;
            for _ in 0..300 {
                last = p.step(0.1)[0];
            }
            assert_eq!(p.regime(), Regime::Volatile);
            total += (last / 3000.0 - 1.0).abs();
        }
        let mean = total / n as f64;
        assert!(mean > 0.04, "mean 30 s move {mean}");
    }
}
