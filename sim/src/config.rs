//! The `[sim]` section of Keel's TOML: the simulated market's seed, chain, price process, pools and
//! accounts. Every default is a documented constant; [`SimConfig::validate`] names the field and the
//! problem.

use std::{collections::BTreeMap, path::PathBuf};

use alloy::primitives::{Address, U256};
use serde::Deserialize;

use keel_engine::config::ConfigError;

/// Default seed of the price path and of the book quantities.
pub const DEFAULT_SEED: u64 = 42;
/// Default chain id (anvil's and hardhat's).
pub const DEFAULT_CHAIN_ID: u64 = 31_337;
/// Default block interval, milliseconds.
pub const DEFAULT_BLOCK_MS: u64 = 1_000;
/// Default interval between two price frames of one symbol, milliseconds.
pub const DEFAULT_TICK_MS: u64 = 100;
/// Default bid/ask spread, basis points of the mid.
pub const DEFAULT_SPREAD_BPS: f64 = 1.0;
/// Default price tick of a symbol (bid rounded down, ask up to a multiple of it).
pub const DEFAULT_TICK_SIZE: f64 = 0.01;
/// Default volatility of the calm regime, per √second (0.0002/√s ≈ 112% annualised).
pub const DEFAULT_CALM_VOL: f64 = 0.000_2;
/// Default volatility of the volatile regime, per √second (0.004/√s: one σ over 30 s ≈ 2.2%).
pub const DEFAULT_VOLATILE_VOL: f64 = 0.004;
/// Default absolute trend of the volatile regime, per second; its sign is drawn at each entry into
/// the regime (0.002/s: 6% over 30 s).
pub const DEFAULT_VOLATILE_DRIFT: f64 = 0.002;
/// Default probability per second of switching from the calm to the volatile regime.
pub const DEFAULT_P_CALM_TO_VOLATILE: f64 = 0.1;
/// Default probability per second of switching from the volatile to the calm regime.
pub const DEFAULT_P_VOLATILE_TO_CALM: f64 = 0.05;
/// Default base fee of the genesis block, wei (1 gwei).
pub const DEFAULT_BASE_FEE_WEI: u64 = 1_000_000_000;
/// Default block gas limit (the EIP-1559 target is half of it).
pub const DEFAULT_GAS_LIMIT: u64 = 30_000_000;
/// Default: an arbitrageur trades every pool back toward the reference price each block.
pub const DEFAULT_ARBITRAGE: bool = true;

fn default_seed() -> u64 {
    DEFAULT_SEED
}
fn default_chain_id() -> u64 {
    DEFAULT_CHAIN_ID
}
fn default_block_ms() -> u64 {
    DEFAULT_BLOCK_MS
}
fn default_tick_ms() -> u64 {
    DEFAULT_TICK_MS
}
fn default_spread_bps() -> f64 {
    DEFAULT_SPREAD_BPS
}
fn default_tick_size() -> f64 {
    DEFAULT_TICK_SIZE
}
fn default_calm_vol() -> f64 {
    DEFAULT_CALM_VOL
}
fn default_volatile_vol() -> f64 {
    DEFAULT_VOLATILE_VOL
}
fn default_volatile_drift() -> f64 {
    DEFAULT_VOLATILE_DRIFT
}
fn default_p_calm_to_volatile() -> f64 {
    DEFAULT_P_CALM_TO_VOLATILE
}
fn default_p_volatile_to_calm() -> f64 {
    DEFAULT_P_VOLATILE_TO_CALM
}
fn default_base_fee_wei() -> u64 {
    DEFAULT_BASE_FEE_WEI
}
fn default_gas_limit() -> u64 {
    DEFAULT_GAS_LIMIT
}
fn default_arbitrage() -> bool {
    DEFAULT_ARBITRAGE
}
fn default_eth() -> String {
    "0".to_owned()
}

/// The regime the price path starts in.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartRegime {
    /// Low volatility, no trend.
    #[default]
    Calm,
    /// High volatility with a trend.
    Volatile,
}

/// The simulated market (`[sim]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of the price path and book quantities: the same seed gives the same path.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Chain id the simulated node reports and transactions must be signed for.
    #[serde(default = "default_chain_id")]
    pub chain_id: u64,
    /// Block interval, milliseconds.
    #[serde(default = "default_block_ms")]
    pub block_ms: u64,
    /// Interval between two price frames of one symbol, milliseconds.
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Exchange instruments served on the websocket.
    pub symbols: Vec<SimSymbolConfig>,
    /// Volatility of the calm regime, per √second (annualised = this × √31 536 000 ≈ this × 5616).
    #[serde(default = "default_calm_vol")]
    pub calm_vol: f64,
    /// Volatility of the volatile regime, per √second.
    #[serde(default = "default_volatile_vol")]
    pub volatile_vol: f64,
    /// Absolute log-price trend of the volatile regime, per second (sign drawn at each entry).
    #[serde(default = "default_volatile_drift")]
    pub volatile_drift: f64,
    /// Probability per second of switching from calm to volatile.
    #[serde(default = "default_p_calm_to_volatile")]
    pub p_calm_to_volatile: f64,
    /// Probability per second of switching from volatile to calm.
    #[serde(default = "default_p_volatile_to_calm")]
    pub p_volatile_to_calm: f64,
    /// Regime at start.
    #[serde(default)]
    pub start_regime: StartRegime,
    /// A capture file (cryptofeed format) whose bookTicker frames are replayed, looping, instead of
    /// the synthetic path.
    #[serde(default)]
    pub replay: Option<PathBuf>,
    /// Initial pool reserves; every pool listed must belong to a `uniswap_v2` DEX.
    #[serde(default)]
    pub pools: Vec<SimPoolConfig>,
    /// Funded accounts.
    #[serde(default)]
    pub accounts: Vec<SimAccountConfig>,
    /// Base fee of the genesis block, wei.
    #[serde(default = "default_base_fee_wei")]
    pub base_fee_wei: u64,
    /// Block gas limit.
    #[serde(default = "default_gas_limit")]
    pub gas_limit: u64,
    /// Whether an arbitrageur trades each pool back toward the reference price every block.
    #[serde(default = "default_arbitrage")]
    pub arbitrage: bool,
    /// Client flows: money moved between accounts from outside Keel (deposits, withdrawals).
    #[serde(default)]
    pub flows: Vec<SimFlowConfig>,
    /// The builder includes a bundle only if each of its transactions pays at least this priority
    /// fee per gas at the block's base fee (a builder that drops unprofitable bundles); 0: any.
    #[serde(default)]
    pub builder_min_tip_wei: u64,
}

/// A client flow (`[[sim.flows]]`): every `every_blocks` blocks, `amount` of `token` leaves one of
/// the two accounts of `between` for the other, alternating direction (first from `between[0]`), as
/// a fund's investor moving capital from one portfolio to another would. The move is applied to the
/// chain's state at the end of the block (no transaction), and skipped, counted, when the sending
/// account holds less than `amount`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimFlowConfig {
    /// Token symbol.
    pub token: String,
    /// Whole tokens moved each time, decimal string.
    pub amount: String,
    /// The two accounts.
    pub between: [Address; 2],
    /// Blocks between two moves (≥ 1); the first is at block `every_blocks`.
    pub every_blocks: u64,
}

/// One exchange instrument (`[[sim.symbols]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimSymbolConfig {
    /// Exchange symbol, upper case (`ETHUSDT`).
    pub symbol: String,
    /// Starting mid price.
    pub start: f64,
    /// Bid/ask spread, basis points of the mid.
    #[serde(default = "default_spread_bps")]
    pub spread_bps: f64,
    /// Price tick.
    #[serde(default = "default_tick_size")]
    pub tick_size: f64,
}

/// Initial reserves of a pool (`[[sim.pools]]`), in whole tokens as decimal strings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimPoolConfig {
    /// Name of the pool in `[[pools]]`.
    pub pool: String,
    /// Reserve of token0, whole tokens (`"1000"`, `"0.5"`).
    pub reserve0: String,
    /// Reserve of token1, whole tokens.
    pub reserve1: String,
}

/// A funded account (`[[sim.accounts]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimAccountConfig {
    /// The account.
    pub address: Address,
    /// Native ETH, whole ether as a decimal string.
    #[serde(default = "default_eth")]
    pub eth: String,
    /// ERC-20 balances by token symbol, whole tokens as decimal strings.
    #[serde(default)]
    pub balances: BTreeMap<String, String>,
}

/// Bounds of `sim.block_ms`: 1 ms to a minute.
pub const BLOCK_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=60_000;
/// Bounds of `sim.tick_ms`: 1 ms to a minute.
pub const TICK_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=60_000;
/// Bounds of `sim.base_fee_wei`: up to 100,000 gwei.
pub const BASE_FEE_WEI_RANGE: std::ops::RangeInclusive<u64> = 1..=100_000_000_000_000;
/// Bounds of `sim.gas_limit`: one million to one hundred billion gas (the simulated chain is a test
/// bench: a 10,000-portfolio book may rebalance in one block, far above mainnet's limit).
pub const GAS_LIMIT_RANGE: std::ops::RangeInclusive<u64> = 1_000_000..=100_000_000_000;
/// Bounds of `sim.flows[].every_blocks`: up to a million blocks.
pub const FLOW_EVERY_BLOCKS_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000;

impl SimConfig {
    /// Checks the values that do not depend on the rest of Keel's config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v, range) in [
            ("sim.chain_id", self.chain_id, 1..=u64::MAX),
            ("sim.block_ms", self.block_ms, BLOCK_MS_RANGE),
            ("sim.tick_ms", self.tick_ms, TICK_MS_RANGE),
            ("sim.base_fee_wei", self.base_fee_wei, BASE_FEE_WEI_RANGE),
            ("sim.gas_limit", self.gas_limit, GAS_LIMIT_RANGE),
        ] {
            if !range.contains(&v) {
                return Err(ConfigError::new(field, format!("{v} is outside {range:?}")));
            }
        }
        for (i, f) in self.flows.iter().enumerate() {
            if !FLOW_EVERY_BLOCKS_RANGE.contains(&f.every_blocks) {
                return Err(ConfigError::new(
                    format!("sim.flows[{i}].every_blocks"),
                    format!("{} is outside {FLOW_EVERY_BLOCKS_RANGE:?}", f.every_blocks),
                ));
            }
        }
        if self.symbols.is_empty() && self.replay.is_none() {
            return Err(ConfigError::new(
                "sim.symbols",
                "at least one symbol is required (or a replay file)",
            ));
        }
        for (i, s) in self.symbols.iter().enumerate() {
            let at = |f: &str| format!("sim.symbols[{}].{f}", s.symbol);
            if s.symbol.is_empty() || !s.symbol.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                return Err(ConfigError::new(
                    at("symbol"),
                    "must be non-empty upper-case ASCII letters/digits",
                ));
            }
            if self.symbols[..i].iter().any(|o| o.symbol == s.symbol) {
                return Err(ConfigError::new(at("symbol"), "duplicate symbol"));
            }
            if !(s.start.is_finite() && s.start > 0.0) {
                return Err(ConfigError::new(at("start"), "must be > 0"));
            }
            if !(s.spread_bps.is_finite() && s.spread_bps >= 0.0 && s.spread_bps < 10_000.0) {
                return Err(ConfigError::new(at("spread_bps"), "must be in [0, 10000)"));
            }
            if !(s.tick_size.is_finite() && s.tick_size > 0.0 && s.tick_size < s.start) {
                return Err(ConfigError::new(at("tick_size"), "must be > 0 and below the start price"));
            }
        }
        let non_negative = [
            ("sim.calm_vol", self.calm_vol),
            ("sim.volatile_vol", self.volatile_vol),
            ("sim.volatile_drift", self.volatile_drift),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(ConfigError::new(field, format!("{v} is outside [0, 1)")));
            }
        }
        for (field, v) in [
            ("sim.p_calm_to_volatile", self.p_calm_to_volatile),
            ("sim.p_volatile_to_calm", self.p_volatile_to_calm),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(ConfigError::new(field, format!("{v} is outside [0, 1]")));
            }
        }
        for (i, p) in self.pools.iter().enumerate() {
            if self.pools[..i].iter().any(|o| o.pool == p.pool) {
                return Err(ConfigError::new(format!("sim.pools[{}].pool", p.pool), "listed twice"));
            }
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if self.accounts[..i].iter().any(|o| o.address == a.address) {
                return Err(ConfigError::new(format!("sim.accounts[{}].address", a.address), "listed twice"));
            }
        }
        Ok(())
    }
}

/// Converts a decimal string of whole units (`"1000"`, `"0.25"`, `"1_000.5"` is refused) to the
/// integer amount with `decimals` decimals, exactly. More fractional digits than `decimals` is an
/// error, not a rounding.
pub fn parse_units(s: &str, decimals: u8) -> Result<U256, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty amount".to_owned());
    }
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(format!("`{s}` is not a decimal number"));
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a non-negative decimal number"));
    }
    if frac.len() > decimals as usize {
        return Err(format!(
            "`{s}` has {} fractional digits; the token has only {decimals} decimals",
            frac.len()
        ));
    }
    let digits = format!("{int}{frac}{}", "0".repeat(decimals as usize - frac.len()));
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 10).map_err(|_| format!("`{s}` does not fit in 256 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_exactly() {
        assert_eq!(
            parse_units("1000", 18).unwrap(),
            U256::from(1000u64) * U256::from(10u64).pow(U256::from(18))
        );
        assert_eq!(parse_units("0.5", 6).unwrap(), U256::from(500_000u64));
        assert_eq!(parse_units("3000000", 6).unwrap(), U256::from(3_000_000_000_000u64));
        assert_eq!(parse_units("1.", 2).unwrap(), U256::from(100u64));
        assert_eq!(parse_units(".25", 2).unwrap(), U256::from(25u64));
        assert_eq!(parse_units("0", 18).unwrap(), U256::ZERO);
        assert!(parse_units("0.1234567", 6).unwrap_err().contains("fractional digits"));
        assert!(parse_units("-1", 6).is_err());
        assert!(parse_units("1e3", 6).is_err());
        assert!(parse_units("", 6).is_err());
        assert!(parse_units(".", 6).is_err());
    }

    #[test]
    fn parses_toml_and_rejects_unknown_fields() {
        let cfg: SimConfig = toml::from_str(
            r#"
            seed = 7
            block_ms = 200
            symbols = [{ symbol = "ETHUSDT", start = 3000.0, spread_bps = 1.0 }]
            [[pools]]
            pool = "uni-weth-usdc"
            reserve0 = "1000"
            reserve1 = "3000000"
            [[accounts]]
            address = "0x00000000000000000000000000000000000000aa"
            eth = "10"
            balances = { WETH = "10", USDC = "30000" }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.chain_id, DEFAULT_CHAIN_ID);
        assert_eq!(cfg.block_ms, 200);
        assert_eq!(cfg.accounts[0].balances["USDC"], "30000");
        cfg.validate().unwrap();
        assert!(toml::from_str::<SimConfig>("symbols = []\nbogus = 1").is_err());
    }
}
