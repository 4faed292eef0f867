//! The latency scenario: `k` synthetic assets, each quoted against USDC on its own instrument
//! (`T0USDT`, `T1USDT`, …) and traded in its own Uniswap-V2 pool on the simulated chain, and one
//! 50/50 portfolio per asset on its own development account. Built as TOML text and parsed with the
//! project's own config types, so every section goes through the usual validation.

use keel_engine::config::{EngineConfig, PortfolioConfig, TokenConfig};
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::{DexConfig, PoolConfig, RelayConfig, RouterConfig};
use keel_router::signer::Signer;
use serde::Deserialize;

use keel_runtime::pipeline::{DEFAULT_SAMPLE_EVERY, PipelineSpec};
use keel_sim::{SimConfig, SimError, SimMarket, StartRegime};
use tokio_util::sync::CancellationToken;

/// Start (and calm) price of every synthetic asset, in USDC.
pub const START_PRICE: f64 = 100.0;
/// Absolute drift band of every portfolio (0.3 percentage points).
pub const DRIFT_BAND: f64 = 0.003;
/// Relative price move of a band-crossing frame: a 2 % move shifts a 50/50 weight by about 0.5
/// points, past [`DRIFT_BAND`], while the pool stays inside the router's 5 % deviation guard.
pub const FIRE_MOVE: f64 = 0.02;
/// Most portfolios the scenario can hold: development keys 1..=8 (key 9 signs relay requests).
pub const MAX_PORTFOLIOS: usize = 8;
/// Simulated block interval, ms.
pub const BLOCK_MS: u64 = 200;
/// Chain poll interval of the pipeline, ms.
pub const POLL_MS: u64 = 50;

/// The parsed scenario.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    /// `[engine]`.
    pub engine: EngineConfig,
    /// `[router]`.
    pub router: RouterConfig,
    /// `[[tokens]]`.
    pub tokens: Vec<TokenConfig>,
    /// `[[dexes]]`.
    pub dexes: Vec<DexConfig>,
    /// `[[pools]]`.
    pub pools: Vec<PoolConfig>,
    /// `[[portfolios]]`.
    pub portfolios: Vec<PortfolioConfig>,
    /// `[sim]`.
    pub sim: SimConfig,
}

impl Scenario {
    /// The scenario with `k` assets and portfolios (1..=[`MAX_PORTFOLIOS`]).
    pub fn new(k: usize) -> eyre::Result<Scenario> {
        let k = k.clamp(1, MAX_PORTFOLIOS);
        let text = scenario_toml(k)?;
        let s: Scenario = toml::from_str(&text)?;
        keel_engine::config::validate(&s.tokens, &s.portfolios)?;
        s.sim.validate()?;
        Ok(s)
    }

    /// The scenario with `k` assets and portfolios in a market that stays volatile (per-tick
    /// volatility 0.4%, no drift, a tick every 50 ms), so portfolios keep drifting out of their bands.
    pub fn volatile(k: usize) -> eyre::Result<Scenario> {
        let mut s = Scenario::new(k)?;
        s.sim.start_regime = StartRegime::Volatile;
        s.sim.volatile_vol = 0.004;
        s.sim.volatile_drift = 0.0;
        s.sim.p_volatile_to_calm = 0.0;
        s.sim.tick_ms = 50;
        Ok(s)
    }

    /// Starts this scenario's simulated market (stopped by `cancel`).
    pub async fn start_market(&self, cancel: CancellationToken) -> Result<SimMarket, SimError> {
        SimMarket::start(
            self.sim.clone(),
            self.tokens.clone(),
            self.dexes.clone(),
            self.pools.clone(),
            cancel,
        )
        .await
    }

    /// Exchange symbols, in asset order.
    pub fn symbols(&self) -> Vec<String> {
        (0..self.portfolios.len()).map(symbol).collect()
    }

    /// The portfolio account signers (dev keys 1..=k).
    pub fn accounts(&self) -> eyre::Result<Vec<Signer>> {
        (1..=self.portfolios.len()).map(|i| Ok(Signer::dev(i)?)).collect()
    }

    /// The production pipeline's spec for this scenario: market data from `ws_url`, the node at
    /// `rpc_url`, one relay (`"relay"`) at `relay_url`, dev key 9 as the reputation key.
    pub fn pipeline_spec(
        &self,
        ws_url: String,
        rpc_url: String,
        relay_url: String,
    ) -> eyre::Result<PipelineSpec> {
        Ok(PipelineSpec {
            engine: self.engine.clone(),
            tokens: self.tokens.clone(),
            portfolios: self.portfolios.clone(),
            router: self.router.clone(),
            dexes: self.dexes.clone(),
            pools: self.pools.clone(),
            relays: vec![RelayConfig {
                name: "relay".into(),
                url: relay_url,
                timeout_ms: 2_000,
                fast_path: true,
                ca_cert: None,
                coinbase: None,
            }],
            reputation: Signer::dev(9)?,
            accounts: self.accounts()?,
            binance: BinanceFeedConfig::new(ws_url, self.symbols()),
            rpc_url,
            poll_ms: POLL_MS,
            node_ws_url: None,
            mempool: Default::default(),
            native_symbol: None,
            sample_every: DEFAULT_SAMPLE_EVERY,
            safety: Default::default(),
            journal: None,
            record: None,
            predictors: Vec::new(),
            registry: None,
        })
    }
}

/// The scenario with `k` portfolios as a whole Keel config (its sections plus `[signers]`: dev
/// keys 1..=k, dev key 9 for reputation), as a recording of a harness run stores it; `keel replay`
/// and `keel-bench replay` read it back.
pub fn config_toml(k: usize) -> eyre::Result<String> {
    let k = k.clamp(1, MAX_PORTFOLIOS);
    let mut t = scenario_toml(k)?;
    let accounts: Vec<String> = (1..=k).map(|i| format!("\"dev:{i}\"")).collect();
    t.push_str(&format!("\n[signers]\nreputation_key = \"dev:9\"\naccounts = [{}]\n", accounts.join(", ")));
    Ok(t)
}

/// Exchange symbol of asset `i`.
pub fn symbol(i: usize) -> String {
    format!("T{i}USDT")
}

fn scenario_toml(k: usize) -> eyre::Result<String> {
    use std::fmt::Write;
    let mut t = String::new();
    let router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D";
    writeln!(
        t,
        r#"[engine]
stale_after_ms = 5000

[router]
chain_id = 31337
slippage_bps = 50
swap_deadline_secs = 120
bundle_blocks = 5
priority_fee_wei = 1000000000
base_fee_multiplier = 2
max_pool_deviation = 0.05

[[tokens]]
symbol = "USDC"
address = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
decimals = 6
price = {{ fixed = 1.0 }}

[[dexes]]
name = "uniswap-v2"
kind = "uniswap_v2"
router = "{router}"
"#
    )?;
    let mut sim_pools = String::new();
    let mut sim_accounts = String::new();
    let mut symbols = Vec::new();
    for i in 0..k {
        let account = Signer::dev(i + 1)?.address();
        // Asset addresses sort below USDC's, so each asset is its pool's token0.
        writeln!(
            t,
            r#"[[tokens]]
symbol = "T{i}"
address = "0x{:040x}"
decimals = 18
price = {{ symbol = "{sym}" }}

[[pools]]
name = "t{i}-usdc"
dex = "uniswap-v2"
address = "0x{:040x}"
token0 = "T{i}"
token1 = "USDC"
fee = 30

[[portfolios]]
name = "p{i}"
account = "{account}"
targets = {{ T{i} = 0.5, USDC = 0.5 }}
mode = "to_target"
cooldown_secs = 0.0
min_trade_notional = 10.0
triggers = [{{ type = "drift", abs_band = {DRIFT_BAND} }}]
"#,
            0x1000 + i,
            0x5000_0000_0000u64 + i as u64,
            sym = symbol(i),
        )?;
        symbols
            .push(format!(r#"{{ symbol = "{}", start = {START_PRICE:.1}, spread_bps = 1.0 }}"#, symbol(i)));
        writeln!(
            sim_pools,
            "[[sim.pools]]\npool = \"t{i}-usdc\"\nreserve0 = \"100000\"\nreserve1 = \"10000000\"\n"
        )?;
        writeln!(
            sim_accounts,
            "[[sim.accounts]]\naddress = \"{account}\"\neth = \"10\"\nbalances = {{ T{i} = \"250\", USDC = \"25000\" }}\n"
        )?;
    }
    writeln!(
        t,
        r#"[sim]
seed = 7
chain_id = 31337
block_ms = {BLOCK_MS}
tick_ms = 1000
start_regime = "calm"
calm_vol = 0.0
volatile_vol = 0.0
volatile_drift = 0.0
p_calm_to_volatile = 0.0
arbitrage = true
symbols = [{}]
"#,
        symbols.join(", ")
    )?;
    t.push_str(&sim_pools);
    t.push_str(&sim_accounts);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_parses_and_validates() {
        let s = Scenario::new(3).unwrap();
        assert_eq!(s.portfolios.len(), 3);
        assert_eq!(s.tokens.len(), 4);
        assert_eq!(s.symbols(), vec!["T0USDT", "T1USDT", "T2USDT"]);
        assert_eq!(s.accounts().unwrap().len(), 3);
    }
}
