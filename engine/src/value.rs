//! What a rebalance is worth, in money: the reduction of tracking error that it buys.
//!
//! # The model
//!
//! A portfolio of value `V` (numeraire, e.g. USD) holds weights `w` against targets `t`. Its
//! deviation `d = w − t` makes its return differ from the target portfolio's by `dᵀr`, where `r` are
//! the assets' returns. With `Σ` the covariance of the assets' log returns per second, the variance
//! of that tracking difference over a horizon `H` (seconds) is `H · dᵀΣd`. The operator prices it
//! with a penalty `κ` (money per unit of variance per unit of value): leaving the deviation in place
//! for the horizon costs
//!
//! ```text
//! penalty(d) = κ · V · H · dᵀΣd
//! ```
//!
//! A rebalance that trades a fraction `f` of the way to the targets leaves `(1 − f)·d`, so it is
//! worth
//!
//! ```text
//! value(f) = κ · V · H · dᵀΣd · (1 − (1 − f)²)
//! ```
//!
//! The router weighs this against the exact cost of executing that fraction (gas, pool fees, price
//! impact against the reference mid, the same simulation that builds the transactions) and fires only
//! when `value ≥ cost × (1 + margin)`, at the fraction that maximises `value − cost`.
//!
//! `Σ` is estimated online from the exchange mids ([`CovTable`]): every
//! [`COV_SAMPLE_INTERVAL_NS`] the engine's timer samples every priced token; the log returns since
//! the previous sample give the observation `r rᵀ / dt`, folded into an EWMA with weight
//! `α = 1 − 2^(−dt / halflife)` (time-normalised, like the volatility trigger's estimator). Tokens
//! with a fixed price (a stablecoin numeraire) have zero variance.
//!
//! Units: `κ` is dimensionless per unit of value and variance (a κ of 1 charges, for a 1% tracking
//! standard deviation over the horizon, 1 bp of the portfolio's value); `horizon_secs` in seconds.

use serde::Deserialize;

use crate::clock::Nanos;
use crate::config::ConfigError;
use crate::ids::TokenId;

/// How often the covariance is sampled, ns (1 s).
pub const COV_SAMPLE_INTERVAL_NS: Nanos = 1_000_000_000;
/// Samples before the covariance is trusted.
pub const COV_WARMUP_SAMPLES: u32 = 10;
/// Default half-life of the covariance EWMA, seconds.
pub const DEFAULT_COV_HALFLIFE_SECS: f64 = 1_800.0;
/// Default penalty κ.
pub const DEFAULT_KAPPA: f64 = 1.0;
/// Default horizon over which an untraded deviation persists, seconds (one day).
pub const DEFAULT_HORIZON_SECS: f64 = 86_400.0;
/// Default margin: fire when value ≥ cost × (1 + margin).
pub const DEFAULT_MARGIN: f64 = 0.0;
/// Default fractions of the to-target trade the router prices.
pub const DEFAULT_SIZES: [f64; 4] = [0.25, 0.5, 0.75, 1.0];

/// Whether a portfolio's rebalances are decided by the band alone or by value against cost.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CostMode {
    /// Fire on every band breach, trade as `mode` says (the default).
    #[default]
    Band,
    /// A band breach (or timer) proposes; the router fires only when the tracking-error value of
    /// the trade exceeds its exact cost, at the size that maximises value − cost.
    CostAware,
}

/// `[portfolios.cost]`: the value model of one portfolio.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Band alone, or value against cost.
    #[serde(default)]
    pub mode: CostMode,
    /// Penalty κ on tracking-error variance (see the module docs).
    #[serde(default = "default_kappa")]
    pub kappa: f64,
    /// Horizon H over which an untraded deviation persists, seconds.
    #[serde(default = "default_horizon_secs")]
    pub horizon_secs: f64,
    /// Fire when value ≥ cost × (1 + margin).
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Fractions of the to-target trade the router prices (each in (0, 1]).
    #[serde(default = "default_sizes")]
    pub sizes: Vec<f64>,
}

fn default_kappa() -> f64 {
    DEFAULT_KAPPA
}
fn default_horizon_secs() -> f64 {
    DEFAULT_HORIZON_SECS
}
fn default_margin() -> f64 {
    DEFAULT_MARGIN
}
fn default_sizes() -> Vec<f64> {
    DEFAULT_SIZES.to_vec()
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            mode: CostMode::Band,
            kappa: DEFAULT_KAPPA,
            horizon_secs: DEFAULT_HORIZON_SECS,
            margin: DEFAULT_MARGIN,
            sizes: DEFAULT_SIZES.to_vec(),
        }
    }
}

impl CostConfig {
    /// Checks every field; `at` names the portfolio's section.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let field = |f: &str| format!("{at}.cost.{f}");
        if !(self.kappa.is_finite() && self.kappa > 0.0 && self.kappa <= 1e9) {
            return Err(ConfigError::new(field("kappa"), format!("{} is outside (0, 1e9]", self.kappa)));
        }
        if !(self.horizon_secs.is_finite() && self.horizon_secs > 0.0 && self.horizon_secs <= 3.2e8) {
            return Err(ConfigError::new(
                field("horizon_secs"),
                format!("{} is outside (0, 3.2e8] (ten years)", self.horizon_secs),
            ));
        }
        if !(self.margin.is_finite() && (0.0..=100.0).contains(&self.margin)) {
            return Err(ConfigError::new(field("margin"), format!("{} is outside [0, 100]", self.margin)));
        }
        if self.sizes.is_empty() || self.sizes.len() > 16 {
            return Err(ConfigError::new(field("sizes"), "between 1 and 16 fractions"));
        }
        if let Some(s) = self.sizes.iter().find(|s| !(s.is_finite() && **s > 0.0 && **s <= 1.0)) {
            return Err(ConfigError::new(field("sizes"), format!("{s} is outside (0, 1]")));
        }
        Ok(())
    }
}

/// What the router needs to price a rebalance's value: carried by the intent, computed when it
/// fired.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ValueInputs {
    /// `dᵀΣd`: the tracking-difference variance per second of the current deviation.
    pub tracking_var_per_s: f64,
    /// Portfolio value in the numeraire.
    pub portfolio_value: f64,
    /// κ.
    pub kappa: f64,
    /// H, seconds.
    pub horizon_secs: f64,
    /// Required margin of value over cost.
    pub margin: f64,
    /// Fractions of the to-target trade to price.
    pub sizes: Vec<f64>,
}

impl ValueInputs {
    /// The penalty of leaving the deviation in place for the horizon, in the numeraire.
    pub fn penalty(&self) -> f64 {
        self.kappa * self.portfolio_value * self.horizon_secs * self.tracking_var_per_s
    }

    /// What trading fraction `f` of the way to the targets is worth, in the numeraire.
    pub fn value_of(&self, f: f64) -> f64 {
        let f = f.clamp(0.0, 1.0);
        self.penalty() * (1.0 - (1.0 - f) * (1.0 - f))
    }

    /// Whether a trade worth `value` and costing `cost` is worth doing.
    pub fn pays(&self, value: f64, cost: f64) -> bool {
        value.is_finite() && cost.is_finite() && value > 0.0 && value >= cost * (1.0 + self.margin)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Anchor {
    mid: f64,
    set: bool,
}

/// EWMA covariance of the tokens' log returns per second (see the module docs). Dense `N × N`,
/// allocated once; sampling allocates nothing.
#[derive(Debug, Clone)]
pub struct CovTable {
    n: usize,
    halflife_secs: f64,
    cov: Vec<f64>,
    anchors: Vec<Anchor>,
    returns: Vec<f64>,
    have: Vec<bool>,
    last_ns: Option<Nanos>,
    samples: u32,
}

impl CovTable {
    /// A table for `n` tokens.
    pub fn new(n: usize, halflife_secs: f64) -> Self {
        Self {
            n,
            halflife_secs,
            cov: vec![0.0; n * n],
            anchors: vec![Anchor::default(); n],
            returns: vec![0.0; n],
            have: vec![false; n],
            last_ns: None,
            samples: 0,
        }
    }

    /// Samples when due: `mid(token)` gives each token's current mid (NaN or `None` when unknown).
    pub fn on_timer(&mut self, now_ns: Nanos, mid: impl Fn(TokenId) -> Option<f64>) {
        if let Some(last) = self.last_ns
            && now_ns.saturating_sub(last) < COV_SAMPLE_INTERVAL_NS
        {
            return;
        }
        let dt = self.last_ns.map(|l| now_ns.saturating_sub(l) as f64 * 1e-9);
        self.last_ns = Some(now_ns);
        for i in 0..self.n {
            let m = mid(TokenId(i as u16)).filter(|m| m.is_finite() && *m > 0.0);
            let a = &mut self.anchors[i];
            self.have[i] = false;
            if let Some(m) = m {
                if a.set {
                    self.returns[i] = (m / a.mid).ln();
                    self.have[i] = self.returns[i].is_finite();
                }
                *a = Anchor { mid: m, set: true };
            }
        }
        let Some(dt) = dt.filter(|d| *d > 0.0) else { return };
        let alpha = if self.samples == 0 { 1.0 } else { 1.0 - (-dt / self.halflife_secs).exp2() };
        for i in 0..self.n {
            if !self.have[i] {
                continue;
            }
            for j in i..self.n {
                if !self.have[j] {
                    continue;
                }
                let obs = self.returns[i] * self.returns[j] / dt;
                let c = &mut self.cov[i * self.n + j];
                *c += alpha * (obs - *c);
                self.cov[j * self.n + i] = self.cov[i * self.n + j];
            }
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// Covariance per second of two tokens' log returns (0 before any sample).
    pub fn cov(&self, a: TokenId, b: TokenId) -> f64 {
        self.cov.get(a.idx() * self.n + b.idx()).copied().unwrap_or(0.0)
    }

    /// Whether enough samples were taken to trust the estimate.
    pub fn warmed_up(&self) -> bool {
        self.samples >= COV_WARMUP_SAMPLES
    }

    /// `dᵀΣd` for deviations `d` over `tokens`.
    pub fn quadratic(&self, tokens: &[TokenId], d: &[f64]) -> f64 {
        let mut q = 0.0;
        for (i, &a) in tokens.iter().enumerate() {
            for (j, &b) in tokens.iter().enumerate() {
                q += d[i] * d[j] * self.cov(a, b);
            }
        }
        q.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(var: f64) -> ValueInputs {
        ValueInputs {
            tracking_var_per_s: var,
            portfolio_value: 1_000_000.0,
            kappa: 2.0,
            horizon_secs: 86_400.0,
            margin: 0.5,
            sizes: DEFAULT_SIZES.to_vec(),
        }
    }

    #[test]
    fn value_is_the_penalty_removed_by_the_fraction_traded() {
        // 10% deviation on an asset with 80% annual vol against a stable: var/s = 0.01 × 0.64 / 31_536_000
        let var = 0.01 * 0.64 / 31_536_000.0;
        let v = inputs(var);
        // κ V H var = 2 × 1e6 × 86400 × 2.0294e-10 = 35.07
        assert!((v.penalty() - 35.068).abs() < 0.01, "{}", v.penalty());
        assert_eq!(v.value_of(1.0), v.penalty());
        assert!((v.value_of(0.5) - 0.75 * v.penalty()).abs() < 1e-9);
        assert_eq!(v.value_of(0.0), 0.0);
        // diminishing: the last half of the trade buys a third of what the first half buys
        assert!((v.value_of(1.0) - v.value_of(0.5)) * 3.0 - v.value_of(0.5) < 1e-9);
        // margin 0.5: value must be 1.5 × cost
        assert!(v.pays(15.0, 10.0));
        assert!(!v.pays(14.9, 10.0));
        assert!(!v.pays(f64::NAN, 1.0));
    }

    #[test]
    fn covariance_of_a_scripted_path_is_its_sample_moment() {
        let mut t = CovTable::new(3, 1e12); // halflife ≫ the run: an equal-weight average
        let (a, b, c) = (TokenId(0), TokenId(1), TokenId(2));
        // a moves ±1%, b moves the opposite way by 2%, c is fixed
        let mut pa = 100.0;
        let mut pb = 50.0;
        let mut ns = 0;
        for k in 0..40 {
            let s = if k % 2 == 0 { 1.01 } else { 1.0 / 1.01 };
            t.on_timer(ns, |tok| Some([pa, pb, 1.0][tok.idx()]));
            pa *= s;
            pb /= s * s;
            ns += COV_SAMPLE_INTERVAL_NS;
        }
        assert!(t.warmed_up());
        let r = 1.01f64.ln();
        assert!((t.cov(a, a) - r * r).abs() < 1e-9 * r * r * 1e3, "{}", t.cov(a, a));
        assert!((t.cov(a, b) + 2.0 * r * r).abs() < 1e-6);
        assert_eq!(t.cov(a, c), 0.0);
        // dᵀΣd of (+0.1, +0.05): a and b hedge each other exactly
        let q = t.quadratic(&[a, b], &[0.1, 0.05]);
        assert!(q < 1e-12, "{q}");
        assert!(t.quadratic(&[a, c], &[0.1, -0.1]) > 0.0);
    }

    #[test]
    fn config_bounds_name_the_field() {
        let mut c = CostConfig { kappa: -1.0, ..CostConfig::default() };
        assert_eq!(c.validate("portfolios[x]").unwrap_err().field, "portfolios[x].cost.kappa");
        c.kappa = 1.0;
        c.sizes = vec![0.5, 1.5];
        assert_eq!(c.validate("portfolios[x]").unwrap_err().field, "portfolios[x].cost.sizes");
        c.sizes = vec![1.0];
        assert!(c.validate("portfolios[x]").is_ok());
    }
}
