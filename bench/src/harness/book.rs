//! A large book on the simulated market: `n` portfolios (1 … 100,000), each on its own account
//! (derived development keys, [`Signer::derived_dev`]), each holding two of [`BOOK_ASSETS`]
//! synthetic assets and USDC, funded `tilt` off target (by default [`FUNDING_TILT`], so that every
//! portfolio is out of its band at start and rebalances once its balances and prices are known);
//! the market's volatile regime keeps weights drifting out of the bands. Used by `keel-bench soak` and the
//! many-portfolio end-to-end tests.
//!
//! Built as TOML text and parsed with the project's own config types, so every section goes
//! through the usual validation (as [`super::scenario`] does).

use std::fmt::Write;

use keel_engine::config::{EngineConfig, PortfolioConfig, TokenConfig};
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::{DexConfig, PoolConfig, RelayConfig, RouterConfig};
use keel_router::signer::Signer;
use keel_runtime::pipeline::{DEFAULT_SAMPLE_EVERY, PipelineSpec};
use keel_sim::{SimConfig, SimError, SimMarket};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Synthetic assets (each quoted against USDC and traded in its own V2 pool).
pub const BOOK_ASSETS: usize = 8;
/// Start price of every asset, USDC.
pub const START_PRICE: f64 = 100.0;
/// Each asset is funded this fraction of the portfolio's value off its target (USDC takes up the
/// rest), so every portfolio starts outside its widest band.
pub const FUNDING_TILT: f64 = 0.06;
/// Most portfolios a book can hold.
pub const MAX_BOOK: usize = 100_000;
/// Chain poll interval of the pipeline, ms.
pub const POLL_MS: u64 = 50;
/// Block gas limit of the book's chain: room for every portfolio's rebalance in a few blocks.
pub const BOOK_GAS_LIMIT: u64 = 4_000_000_000;
/// Engine and router queue capacity: a block's balances (3 per portfolio) and nonces fit.
pub const BOOK_QUEUE_CAPACITY: usize = 1 << 19;

/// How the book is laid out.
#[derive(Debug, Clone)]
pub struct BookConfig {
    /// Portfolios (1 … [`MAX_BOOK`]).
    pub portfolios: usize,
    /// Simulated block interval, ms.
    pub block_ms: u64,
    /// Seconds between two rebalances of one portfolio.
    pub cooldown_secs: f64,
    /// Volatility of the market's (permanent) volatile regime, per √second.
    pub vol: f64,
    /// How far off target each asset is funded (fraction of the portfolio's value): at
    /// [`FUNDING_TILT`] every portfolio fires at start; at 0 they start on target and fire as the
    /// market moves them.
    pub tilt: f64,
}

impl BookConfig {
    /// `portfolios` portfolios, 1 s blocks, 30 s cooldown, 0.3%/√s volatility.
    pub fn new(portfolios: usize) -> Self {
        Self { portfolios, block_ms: 1_000, cooldown_secs: 30.0, vol: 0.003, tilt: FUNDING_TILT }
    }
}

/// The parsed book.
#[derive(Debug, Clone, Deserialize)]
pub struct Book {
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

/// Exchange symbol of asset `a`.
pub fn symbol(a: usize) -> String {
    format!("B{a}USDT")
}

/// The two assets of portfolio `i` (distinct).
pub fn assets_of(i: usize) -> (usize, usize) {
    let a = i % BOOK_ASSETS;
    let b = (a + 1 + (i / BOOK_ASSETS) % (BOOK_ASSETS - 1)) % BOOK_ASSETS;
    (a, b)
}

impl Book {
    /// Builds and validates the book.
    pub fn new(cfg: &BookConfig) -> eyre::Result<Book> {
        if !(1..=MAX_BOOK).contains(&cfg.portfolios) {
            eyre::bail!("portfolios: {} is outside 1..={MAX_BOOK}", cfg.portfolios);
        }
        let text = book_toml(cfg)?;
        let b: Book = toml::from_str(&text)?;
        keel_engine::config::validate(&b.tokens, &b.portfolios)?;
        b.sim.validate()?;
        Ok(b)
    }

    /// Starts the book's simulated market (stopped by `cancel`).
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
        (0..BOOK_ASSETS).map(symbol).collect()
    }

    /// The portfolio account signers, in portfolio order (derived keys 0 … n−1).
    pub fn accounts(&self) -> eyre::Result<Vec<Signer>> {
        (0..self.portfolios.len() as u64).map(|i| Ok(Signer::derived_dev(i)?)).collect()
    }

    /// The production pipeline's spec for this book: market data from `ws_url`, the node at
    /// `rpc_url`, one relay at `relay_url`, dev key 9 as the reputation key.
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
                timeout_ms: 5_000,
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

fn book_toml(cfg: &BookConfig) -> eyre::Result<String> {
    let n = cfg.portfolios;
    let mut t = String::with_capacity(n * 700);
    let router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D";
    writeln!(
        t,
        r#"[engine]
stale_after_ms = 5000
queue_capacity = {BOOK_QUEUE_CAPACITY}

[router]
chain_id = 31337
slippage_bps = 100
swap_deadline_secs = 120
bundle_blocks = 10
priority_fee_wei = 1000000000
base_fee_multiplier = 2
max_pool_deviation = 0.05
# One precompute thread and 1,024 nonces per key do not scale to thousands of accounts: plain
# libsecp256k1 signing (see docs/scale.md).
presign_pool = 0

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
    let mut sim_tail = String::new();
    let mut symbols = Vec::new();
    for a in 0..BOOK_ASSETS {
        // Asset addresses sort below USDC's, so each asset is its pool's token0.
        writeln!(
            t,
            r#"[[tokens]]
symbol = "B{a}"
address = "0x{:040x}"
decimals = 18
price = {{ symbol = "{sym}" }}

[[pools]]
name = "b{a}-usdc"
dex = "uniswap-v2"
address = "0x{:040x}"
token0 = "B{a}"
token1 = "USDC"
fee = 30
"#,
            0x2000 + a,
            0x6000_0000_0000u64 + a as u64,
            sym = symbol(a),
        )?;
        symbols
            .push(format!(r#"{{ symbol = "{}", start = {START_PRICE:.1}, spread_bps = 1.0 }}"#, symbol(a)));
        // Deep pools: a portfolio's trade moves the price by well under a basis point.
        writeln!(
            sim_tail,
            "[[sim.pools]]\npool = \"b{a}-usdc\"\nreserve0 = \"1000000\"\nreserve1 = \"100000000\"\n"
        )?;
    }
    for i in 0..n {
        let account = Signer::derived_dev(i as u64)?.address();
        let (a, b) = assets_of(i);
        // Bands from 1.5 to 3.5 points; every asset funded FUNDING_TILT above its 30% target.
        let band = 0.015 + 0.005 * (i % 5) as f64;
        writeln!(
            t,
            r#"[[portfolios]]
name = "p{i}"
account = "{account}"
targets = {{ B{a} = 0.3, B{b} = 0.3, USDC = 0.4 }}
mode = "to_target"
cooldown_secs = {cooldown:.1}
min_trade_notional = 10.0
triggers = [{{ type = "drift", abs_band = {band} }}]
"#,
            cooldown = cfg.cooldown_secs,
        )?;
        // Value 10,000 USDC: each asset at 30% + tilt, USDC the rest.
        let units = format!("{:.6}", 10_000.0 * (0.3 + cfg.tilt) / START_PRICE);
        let usdc = format!("{:.6}", 10_000.0 * (0.4 - 2.0 * cfg.tilt));
        writeln!(
            sim_tail,
            "[[sim.accounts]]\naddress = \"{account}\"\neth = \"10\"\nbalances = {{ B{a} = \"{units}\", B{b} = \"{units}\", USDC = \"{usdc}\" }}\n"
        )?;
    }
    writeln!(
        t,
        r#"[sim]
seed = 11
chain_id = 31337
block_ms = {block_ms}
tick_ms = 250
gas_limit = {BOOK_GAS_LIMIT}
start_regime = "volatile"
volatile_vol = {vol}
volatile_drift = 0.0
p_volatile_to_calm = 0.0
arbitrage = true
symbols = [{syms}]
"#,
        block_ms = cfg.block_ms,
        vol = cfg.vol,
        syms = symbols.join(", ")
    )?;
    t.push_str(&sim_tail);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_book_parses_and_gives_each_portfolio_its_own_account() {
        let b = Book::new(&BookConfig::new(50)).unwrap();
        assert_eq!(b.portfolios.len(), 50);
        assert_eq!(b.sim.accounts.len(), 50);
        let accounts: std::collections::HashSet<_> = b.portfolios.iter().map(|p| p.account).collect();
        assert_eq!(accounts.len(), 50);
        for i in 0..50 {
            let (a, c) = assets_of(i);
            assert_ne!(a, c);
        }
    }
}
