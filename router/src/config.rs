//! The router's part of Keel's TOML configuration: DEXes, pools, execution settings, relays and
//! signers. Every default is a documented constant.

use alloy::primitives::Address;
use serde::Deserialize;

use keel_engine::config::{ConfigError, TokenConfig};

/// Default slippage tolerance: `amountOutMin = quote × (1 − tolerance)`.
pub const DEFAULT_SLIPPAGE_BPS: u32 = 50;
/// Default seconds until a swap's on-chain `deadline`.
pub const DEFAULT_SWAP_DEADLINE_SECS: u64 = 120;
/// Default number of blocks a bundle is retargeted over before the rebalance is abandoned.
pub const DEFAULT_BUNDLE_BLOCKS: u64 = 5;
/// Default priority fee (builder tip) per gas, wei.
pub const DEFAULT_PRIORITY_FEE_WEI: u128 = 1_000_000_000;
/// Default headroom on the base fee: `maxFeePerGas = base_fee × multiplier + tip`.
pub const DEFAULT_BASE_FEE_MULTIPLIER: u128 = 2;
pub use keel_amm::pool::{
    DEFAULT_BALANCER_SWAP_GAS, DEFAULT_V2_SWAP_GAS, DEFAULT_V3_SWAP_GAS, DEFAULT_V4_SWAP_GAS,
};
/// Default gas of an ERC-20 approval.
pub const DEFAULT_APPROVE_GAS: u64 = 60_000;
/// Default HTTP timeout for a relay request, milliseconds.
pub const DEFAULT_RELAY_TIMEOUT_MS: u64 = 2_000;
/// Default largest relative gap between a pool's mid and the reference (CEX) price before a leg is refused.
pub const DEFAULT_MAX_POOL_DEVIATION: f64 = 0.05;
/// Default window of the oracle guard's per-pool TWAP, seconds (five mainnet blocks).
pub const DEFAULT_TWAP_WINDOW_SECS: u64 = 60;
/// Default largest number of blocks a per-block pool read may lag the head before the pool is stale.
pub const DEFAULT_MAX_POOL_AGE_BLOCKS: u64 = 2;
/// Default number of precomputed ECDSA nonces kept ready per key (`[router] presign_pool`): a burst
/// of this many signatures per key signs in well under a microsecond each; about 110 KB per key and
/// one k·G (tens of µs) of background CPU per nonce.
pub const DEFAULT_PRESIGN_POOL: usize = crate::presign::DEFAULT_CAPACITY;

/// The protocol a DEX speaks.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DexKind {
    /// Uniswap V2 (constant product, Router02).
    UniswapV2,
    /// Uniswap V3 (concentrated liquidity, SwapRouter).
    UniswapV3,
    /// Balancer V2 weighted pools: `router` is the Vault (swaps go through `Vault.swap`, and the
    /// Vault is the spender the accounts approve).
    BalancerWeighted,
    /// Uniswap V4 pools without hooks: each pool's `address` is the `PoolManager` and its key is
    /// `(token0, token1, fee, tick_spacing, hooks)`; `router` is a v4-periphery `V4Router`
    /// exposing `executeActions` (swaps are `SWAP_EXACT_IN_SINGLE`, `SETTLE_ALL`, `TAKE_ALL`;
    /// the accounts approve it as an ERC-20 spender).
    UniswapV4,
    /// Curve StableSwap-NG plain pools: each pool is its own swap contract (`exchange(i, j, dx,
    /// min_dy)`, and the spender the accounts approve), so the DEX sets no `router`; its state
    /// is read from the pool every block.
    CurveStableswap,
}

impl DexKind {
    /// The kind's name in the config (`kind = "…"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::UniswapV2 => "uniswap_v2",
            Self::UniswapV3 => "uniswap_v3",
            Self::BalancerWeighted => "balancer_weighted",
            Self::UniswapV4 => "uniswap_v4",
            Self::CurveStableswap => "curve_stableswap",
        }
    }
}

/// The integer type a Curve pool's `exchange` takes its coin indices as (`[[pools]]
/// curve_indices`): `int128` on the pools deployed on mainnet (`exchange(int128,int128,uint256,
/// uint256)`), `uint128` in the Vyper 0.4 port of StableSwap-NG that vyper's release ships.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CurveIndices {
    /// `exchange(int128, int128, uint256, uint256)`.
    #[default]
    Int128,
    /// `exchange(uint128, uint128, uint256, uint256)`.
    Uint128,
}

/// A DEX deployment (`[[dexes]]`): one factory and its router.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DexConfig {
    /// Unique name, referenced by pools.
    pub name: String,
    /// Protocol.
    pub kind: DexKind,
    /// Contract Keel sends swaps to (Router02, SwapRouter, V4Router, Universal Router or the
    /// Balancer Vault). Required for every kind but `curve_stableswap`, whose swaps go to each
    /// pool's own address (and which must not set it).
    #[serde(default)]
    pub router: Address,
    /// Factory contract (informational; pools are listed explicitly).
    #[serde(default)]
    pub factory: Option<Address>,
    /// Uniswap V4 only: which contract `router` is (default `v4_router`).
    #[serde(default)]
    pub via: V4Via,
}

/// The contract a Uniswap V4 DEX's `router` is (`[[dexes]] via`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum V4Via {
    /// A v4-periphery `V4Router` exposing `executeActions(bytes)`, paid by ERC-20 `transferFrom`
    /// (the accounts approve the router itself).
    #[default]
    V4Router,
    /// Uniswap's Universal Router: `execute(commands, inputs, deadline)` with the `V4_SWAP`
    /// command, paid through Permit2 at its canonical address
    /// ([`keel_amm::abi::PERMIT2_ADDRESS`]): the accounts approve Permit2 as an ERC-20 spender and
    /// the router in Permit2 (`Permit2.approve(token, router, max, max)`), once per token.
    UniversalRouter,
}

/// A pool (`[[pools]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Unique name.
    pub name: String,
    /// The DEX it belongs to.
    pub dex: String,
    /// Pool (pair) contract address; for a Uniswap V4 pool, the `PoolManager` that holds it.
    pub address: Address,
    /// Symbol of token0 (the lower address, as the contract orders them). For a Balancer pool of
    /// more than two tokens, the pair of its tokens this entry trades (one entry per pair).
    pub token0: String,
    /// Symbol of token1.
    pub token1: String,
    /// Fee: basis points for V2 (30 = 0.3%), pips for V3 and V4 (3000 = 0.3%). Required for
    /// Uniswap pools; not set for Balancer pools (their swap fee is read from the pool every block).
    #[serde(default)]
    pub fee: Option<u32>,
    /// Balancer: the pool's id in the Vault (`getPoolId()`, 32 bytes; its first 20 bytes are the
    /// pool's address). Required for Balancer pools only.
    #[serde(default)]
    pub pool_id: Option<alloy::primitives::B256>,
    /// Balancer: the `FixedPoint` release the pool was compiled with (`"v1"`: the April 2021
    /// `WeightedPool` / `WeightedPool2Tokens`; `"shortcuts"`: weighted pool v2 onwards). Required
    /// for Balancer pools: the wrong one misquotes by a few wei on some trades.
    #[serde(default)]
    pub flavour: Option<keel_amm::balancer::PowFlavour>,
    /// Uniswap V4: the key's hook contract. Only hookless pools are routed, so when set it must be
    /// the zero address (a pool with a hook is refused, naming the hook's permissions).
    #[serde(default)]
    pub hooks: Option<Address>,
    /// Gas one swap through this pool costs; defaults by protocol.
    #[serde(default)]
    pub gas: Option<u64>,
    /// V3 tick spacing; required unless `fee` is a canonical tier (100 → 1, 500 → 10, 3000 → 60,
    /// 10000 → 200). Checked against the pool's own `tickSpacing()` when its state is loaded.
    /// V4: always required (part of the pool key); with `pool_id` set, the key must hash to it.
    #[serde(default)]
    pub tick_spacing: Option<i32>,
    /// Curve: the integer type of `exchange`'s coin indices (default `int128`, mainnet's).
    #[serde(default)]
    pub curve_indices: Option<CurveIndices>,
}

fn default_slippage_bps() -> u32 {
    DEFAULT_SLIPPAGE_BPS
}
fn default_swap_deadline_secs() -> u64 {
    DEFAULT_SWAP_DEADLINE_SECS
}
fn default_bundle_blocks() -> u64 {
    DEFAULT_BUNDLE_BLOCKS
}
fn default_priority_fee_wei() -> u128 {
    DEFAULT_PRIORITY_FEE_WEI
}
fn default_base_fee_multiplier() -> u128 {
    DEFAULT_BASE_FEE_MULTIPLIER
}
fn default_true() -> bool {
    true
}
fn default_relay_timeout_ms() -> u64 {
    DEFAULT_RELAY_TIMEOUT_MS
}
fn default_max_pool_deviation() -> f64 {
    DEFAULT_MAX_POOL_DEVIATION
}
fn default_twap_window_secs() -> u64 {
    DEFAULT_TWAP_WINDOW_SECS
}
fn default_max_pool_age_blocks() -> u64 {
    DEFAULT_MAX_POOL_AGE_BLOCKS
}
fn default_presign_pool() -> usize {
    DEFAULT_PRESIGN_POOL
}

/// Execution settings (`[router]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Chain id transactions are signed for.
    pub chain_id: u64,
    /// Slippage tolerance on every leg, basis points.
    #[serde(default = "default_slippage_bps")]
    pub slippage_bps: u32,
    /// Seconds from the head block's timestamp to a swap's `deadline`.
    #[serde(default = "default_swap_deadline_secs")]
    pub swap_deadline_secs: u64,
    /// Blocks a bundle is retargeted over before the rebalance is abandoned.
    #[serde(default = "default_bundle_blocks")]
    pub bundle_blocks: u64,
    /// Priority fee per gas (builder tip), wei.
    #[serde(default = "default_priority_fee_wei")]
    pub priority_fee_wei: u128,
    /// `maxFeePerGas = base_fee × base_fee_multiplier + priority_fee_wei`.
    #[serde(default = "default_base_fee_multiplier")]
    pub base_fee_multiplier: u128,
    /// Largest relative gap between a pool's mid price and the reference price; beyond it no plan.
    /// Also the oracle guard's bound between any two of a pool's spot mid, its short TWAP and the
    /// reference (see [`crate::oracle`]).
    #[serde(default = "default_max_pool_deviation")]
    pub max_pool_deviation: f64,
    /// Window of the oracle guard's per-pool TWAP of the pool mid, seconds of block time.
    #[serde(default = "default_twap_window_secs")]
    pub twap_window_secs: u64,
    /// A pool read every block by the chain poller whose latest read lags the head by more than
    /// this many blocks is stale and not traded.
    #[serde(default = "default_max_pool_age_blocks")]
    pub max_pool_age_blocks: u64,
    /// Postpone a rebalance while swaps pending in the public mempool would move the mid price of a
    /// pool it trades by more than this fraction (e.g. 0.005 = 0.5%); the engine retries after its
    /// cooldown. Needs the node websocket (`[chain] ws_url`). Off when absent.
    #[serde(default)]
    pub defer_on_pending_volume: Option<f64>,
    /// Risk limits (`[router.limits]`); each is off when absent.
    #[serde(default)]
    pub limits: RiskLimits,
    /// Net portfolios into one bundle per block (default on): every rebalance decided for the same
    /// target block joins one batch, opposite flows on a pair cross internally at the reference mid
    /// as ERC-20 transfers between the accounts, and only the residual is routed through the pools.
    /// `false` sends each rebalance as a bundle of its own.
    #[serde(default = "default_true")]
    pub netting: bool,
    /// Precomputed ECDSA nonces kept ready per key (each account key and the reputation key), so
    /// the transactions and the `X-Flashbots-Signature` sign in well under a microsecond (see
    /// [`crate::presign`]; its threat model is in the module docs). An empty pool falls back to
    /// plain libsecp256k1 signing, counted. `0` turns it off. Default [`DEFAULT_PRESIGN_POOL`],
    /// at most [`crate::presign::MAX_CAPACITY`].
    #[serde(default = "default_presign_pool")]
    pub presign_pool: usize,
    /// Each retarget of an unlanded bundle raises its priority fee by this percentage of the last
    /// (compounding), up to `max_priority_fee_wei`, re-signing with the same nonces: a bundle that
    /// misses blocks pays more to land. 0 (default): the tip stays `priority_fee_wei`.
    #[serde(default)]
    pub tip_step_pct: u32,
    /// The highest priority fee the tip schedule reaches, wei (default: `priority_fee_wei`). The
    /// risk limit `max_gas_price_wei` also bounds it.
    #[serde(default)]
    pub max_priority_fee_wei: Option<u128>,
    /// Simulate every new bundle version with `eth_callBundle` on the relay of this name before
    /// sending it: one that reverts (or that the relay refuses) is not sent, and its rebalance
    /// expires saying which transaction reverted and why. Adds the simulation's round trip to
    /// tick-to-wire; off (default) where latency matters. A simulation that cannot be had
    /// (transport, status) sends the bundle anyway, logged; one answered after its target block
    /// sends nothing, and the next head simulates it again.
    #[serde(default)]
    pub presimulate: Option<String>,
    /// Send each bundle version for this many blocks at once (the next one and the ones after,
    /// never past its deadline), each under its own replacement uuid (`uuid#block`); each new head
    /// adds the newest block. 1 (default): the next block only. At most [`MAX_TARGET_BLOCKS`].
    #[serde(default = "default_target_blocks")]
    pub target_blocks: u64,
    /// Native ETH kept out of trading, wei, in every account that holds native ETH (a token at the
    /// zero address) as a portfolio token: the engine sees its balance less this (never below
    /// zero), so a rebalance never sells the ETH that pays the account's gas. Default
    /// [`DEFAULT_GAS_RESERVE_WEI`] (0.05 ETH); at most [`MAX_GAS_RESERVE_WEI`].
    #[serde(default = "default_gas_reserve_wei")]
    pub gas_reserve_wei: u128,
}

/// Default `gas_reserve_wei`: 0.05 ETH.
pub const DEFAULT_GAS_RESERVE_WEI: u128 = 50_000_000_000_000_000;
/// Largest `gas_reserve_wei`: 9 ETH (a TOML integer is at most about 9.22e18).
pub const MAX_GAS_RESERVE_WEI: u128 = 9_000_000_000_000_000_000;

fn default_gas_reserve_wei() -> u128 {
    DEFAULT_GAS_RESERVE_WEI
}

impl RouterConfig {
    /// The settings of a `[router]` section that names only `chain_id`: every other field at its
    /// documented default.
    pub fn for_chain(chain_id: u64) -> Self {
        Self {
            chain_id,
            slippage_bps: default_slippage_bps(),
            swap_deadline_secs: default_swap_deadline_secs(),
            bundle_blocks: default_bundle_blocks(),
            priority_fee_wei: default_priority_fee_wei(),
            base_fee_multiplier: default_base_fee_multiplier(),
            max_pool_deviation: default_max_pool_deviation(),
            twap_window_secs: default_twap_window_secs(),
            max_pool_age_blocks: default_max_pool_age_blocks(),
            defer_on_pending_volume: None,
            limits: RiskLimits::default(),
            netting: true,
            presign_pool: default_presign_pool(),
            tip_step_pct: 0,
            max_priority_fee_wei: None,
            presimulate: None,
            target_blocks: default_target_blocks(),
            gas_reserve_wei: default_gas_reserve_wei(),
        }
    }
}

/// Largest `target_blocks`.
pub const MAX_TARGET_BLOCKS: u64 = 8;

fn default_target_blocks() -> u64 {
    1
}

/// Largest `tip_step_pct`.
pub const MAX_TIP_STEP_PCT: u32 = 1_000;

/// Risk limits checked before any rebalance is signed (`[router.limits]`). A refused rebalance is
/// reported `Rejected` (the engine cools down) and logged with the limit it hit.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RiskLimits {
    /// Largest notional (USD) of one leg.
    #[serde(default)]
    pub max_trade_notional: Option<f64>,
    /// Largest notional (USD) one portfolio may trade over any 24 hours.
    #[serde(default)]
    pub max_daily_notional: Option<f64>,
    /// Largest notional (USD) all portfolios together may trade over any 24 hours.
    #[serde(default)]
    pub max_daily_notional_total: Option<f64>,
    /// Highest price per gas (base fee + tip), wei, Keel will pay.
    #[serde(default)]
    pub max_gas_price_wei: Option<u128>,
}

/// A bundle relay or builder endpoint (`[[relays]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Name, for logs and stats.
    pub name: String,
    /// JSON-RPC URL accepting `eth_sendBundle`.
    pub url: String,
    /// Request timeout, milliseconds.
    #[serde(default = "default_relay_timeout_ms")]
    pub timeout_ms: u64,
    /// For a plain `http://` relay: write requests from the router thread on a kept-alive
    /// connection, several in flight on it (default). `false` sends through the HTTP client, one
    /// request per connection at a time (for a relay that mishandles pipelined requests).
    #[serde(default = "default_true")]
    pub fast_path: bool,
    /// For an `https://` relay: a PEM file of the CA certificates to trust for it, *instead of* the
    /// system's roots (a relay behind a private CA, or a test's own). Unset: the system's roots.
    #[serde(default)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// The fee recipient of the blocks that this relay's builder builds. A landed rebalance whose
    /// block has it is attributed to this relay in `keel journal stats` (its inclusion rate).
    /// Unset: a landing counts for every relay that had accepted the bundle for that block.
    #[serde(default)]
    pub coinbase: Option<alloy::primitives::Address>,
}

/// Checks DEXes and pools against the token list and each other.
pub fn validate(
    tokens: &[TokenConfig],
    dexes: &[DexConfig],
    pools: &[PoolConfig],
    router: &RouterConfig,
    relays: &[RelayConfig],
) -> Result<(), ConfigError> {
    for (i, d) in dexes.iter().enumerate() {
        if dexes[..i].iter().any(|o| o.name == d.name) {
            return Err(ConfigError::new(format!("dexes[{}].name", d.name), "duplicate DEX name"));
        }
        match (d.kind, d.router.is_zero()) {
            (DexKind::CurveStableswap, false) => {
                return Err(ConfigError::new(
                    format!("dexes[{}].router", d.name),
                    "not set for curve_stableswap DEXes: each pool is its own swap contract",
                ));
            }
            (DexKind::CurveStableswap, true) | (_, false) => {}
            (kind, true) => {
                return Err(ConfigError::new(
                    format!("dexes[{}].router", d.name),
                    format!("required for {} DEXes (the contract swaps are sent to)", kind.name()),
                ));
            }
        }
        if d.via == V4Via::UniversalRouter && d.kind != DexKind::UniswapV4 {
            return Err(ConfigError::new(
                format!("dexes[{}].via", d.name),
                "`universal_router` applies to uniswap_v4 DEXes only",
            ));
        }
    }
    if pools.is_empty() {
        return Err(ConfigError::new("pools", "at least one pool is required"));
    }
    for (i, p) in pools.iter().enumerate() {
        let at = |f: &str| format!("pools[{}].{f}", p.name);
        if pools[..i].iter().any(|o| o.name == p.name) {
            return Err(ConfigError::new(at("name"), "duplicate pool name"));
        }
        let Some(dex) = dexes.iter().find(|d| d.name == p.dex) else {
            return Err(ConfigError::new(at("dex"), format!("unknown DEX `{}`", p.dex)));
        };
        let find = |sym: &str, f: &str| {
            tokens
                .iter()
                .find(|t| t.symbol == sym)
                .ok_or_else(|| ConfigError::new(at(f), format!("unknown token `{sym}`")))
        };
        let t0 = find(&p.token0, "token0")?;
        let t1 = find(&p.token1, "token1")?;
        if t0.address >= t1.address {
            return Err(ConfigError::new(
                at("token0"),
                format!(
                    "token0 ({}) must have the lower address, as the pool contract orders them",
                    p.token0
                ),
            ));
        }
        if let Some(g) = p.gas
            && !(21_000..=MAX_POOL_GAS).contains(&g)
        {
            return Err(ConfigError::new(at("gas"), format!("{g} is outside 21000..={MAX_POOL_GAS}")));
        }
        if (t0.address.is_zero() || t1.address.is_zero()) && dex.kind != DexKind::UniswapV4 {
            return Err(ConfigError::new(
                at("token0"),
                format!(
                    "{} is native ETH (the zero address), which only uniswap_v4 pools hold; a {} pool holds WETH",
                    p.token0,
                    dex.kind.name()
                ),
            ));
        }
        validate_pool_kind(p, dex.kind, &at)?;
        if dex.kind == DexKind::UniswapV4 {
            validate_v4_key(p, t0.address, t1.address, &at)?;
        }
    }
    if router.slippage_bps >= 10_000 {
        return Err(ConfigError::new("router.slippage_bps", "must be < 10000"));
    }
    for (field, v, lo, hi) in [
        ("router.bundle_blocks", u128::from(router.bundle_blocks), 1, MAX_BUNDLE_BLOCKS as u128),
        (
            "router.swap_deadline_secs",
            u128::from(router.swap_deadline_secs),
            1,
            MAX_SWAP_DEADLINE_SECS as u128,
        ),
        ("router.twap_window_secs", u128::from(router.twap_window_secs), 1, MAX_TWAP_WINDOW_SECS as u128),
        ("router.max_pool_age_blocks", u128::from(router.max_pool_age_blocks), 0, MAX_BUNDLE_BLOCKS as u128),
        ("router.priority_fee_wei", router.priority_fee_wei, 0, MAX_FEE_WEI),
        ("router.base_fee_multiplier", router.base_fee_multiplier, 1, MAX_BASE_FEE_MULTIPLIER),
        ("router.presign_pool", router.presign_pool as u128, 0, crate::presign::MAX_CAPACITY as u128),
        ("router.tip_step_pct", u128::from(router.tip_step_pct), 0, u128::from(MAX_TIP_STEP_PCT)),
        ("router.target_blocks", u128::from(router.target_blocks), 1, u128::from(MAX_TARGET_BLOCKS)),
        ("router.gas_reserve_wei", router.gas_reserve_wei, 0, MAX_GAS_RESERVE_WEI),
        (
            "router.max_priority_fee_wei",
            router.max_priority_fee_wei.unwrap_or(router.priority_fee_wei),
            router.priority_fee_wei,
            MAX_FEE_WEI,
        ),
    ] {
        if !(lo..=hi).contains(&v) {
            return Err(ConfigError::new(field, format!("{v} is outside {lo}..={hi}")));
        }
    }
    if !(router.max_pool_deviation.is_finite()
        && router.max_pool_deviation > 0.0
        && router.max_pool_deviation <= 1.0)
    {
        return Err(ConfigError::new(
            "router.max_pool_deviation",
            format!("{} is outside (0, 1]", router.max_pool_deviation),
        ));
    }
    if let Some(x) = router.defer_on_pending_volume
        && !(x.is_finite() && x > 0.0 && x < 1.0)
    {
        return Err(ConfigError::new("router.defer_on_pending_volume", "must be in (0, 1)"));
    }
    let l = &router.limits;
    if let Some(cap) = l.max_gas_price_wei
        && !(1..=MAX_FEE_WEI).contains(&cap)
    {
        return Err(ConfigError::new(
            "router.limits.max_gas_price_wei",
            format!("{cap} is outside 1..={MAX_FEE_WEI}"),
        ));
    }
    for (field, v) in [
        ("router.limits.max_trade_notional", l.max_trade_notional),
        ("router.limits.max_daily_notional", l.max_daily_notional),
        ("router.limits.max_daily_notional_total", l.max_daily_notional_total),
    ] {
        if let Some(x) = v
            && !(x.is_finite() && x > 0.0)
        {
            return Err(ConfigError::new(field, "must be > 0"));
        }
    }
    if relays.is_empty() {
        return Err(ConfigError::new("relays", "at least one relay is required"));
    }
    if let Some(name) = &router.presimulate
        && !relays.iter().any(|r| &r.name == name)
    {
        return Err(ConfigError::new("router.presimulate", format!("no relay named `{name}`")));
    }
    for r in relays {
        if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
            return Err(ConfigError::new(format!("relays[{}].url", r.name), "must be an http(s) URL"));
        }
        if let Some(path) = &r.ca_cert {
            let field = format!("relays[{}].ca_cert", r.name);
            if !r.url.starts_with("https://") {
                return Err(ConfigError::new(field, "is only used with an https:// relay url"));
            }
            crate::relay::read_ca_certs(path).map_err(|e| ConfigError::new(field, e))?;
        }
        if !RELAY_TIMEOUT_MS_RANGE.contains(&r.timeout_ms) {
            return Err(ConfigError::new(
                format!("relays[{}].timeout_ms", r.name),
                format!("{} is outside {RELAY_TIMEOUT_MS_RANGE:?}", r.timeout_ms),
            ));
        }
    }
    Ok(())
}

/// Largest `bundle_blocks` (and `max_pool_age_blocks`): about an hour of Ethereum blocks.
pub const MAX_BUNDLE_BLOCKS: u64 = 300;
/// Largest `swap_deadline_secs`: one day.
pub const MAX_SWAP_DEADLINE_SECS: u64 = 86_400;
/// Largest `twap_window_secs`: one day.
pub const MAX_TWAP_WINDOW_SECS: u64 = 86_400;
/// Largest `priority_fee_wei` (and `max_gas_price_wei`): 100,000 gwei.
pub const MAX_FEE_WEI: u128 = 100_000_000_000_000;
/// Largest `base_fee_multiplier`.
pub const MAX_BASE_FEE_MULTIPLIER: u128 = 100;
/// Bounds of `[[relays]].timeout_ms`: 1 ms to a minute (an answer later than a few blocks is useless).
pub const RELAY_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=60_000;
/// Largest `[[pools]].gas`: a block's worth.
pub const MAX_POOL_GAS: u64 = 30_000_000;

/// Checks the fields that depend on the pool's protocol: each kind's required fields are set,
/// and fields of other kinds are not.
fn validate_pool_kind(p: &PoolConfig, kind: DexKind, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let only = |field: &str, set: bool, kinds: &str| {
        if set { Err(ConfigError::new(at(field), format!("applies to {kinds} pools only"))) } else { Ok(()) }
    };
    if kind != DexKind::UniswapV4 {
        only("hooks", p.hooks.is_some(), "uniswap_v4")?;
    }
    if kind != DexKind::CurveStableswap {
        only("curve_indices", p.curve_indices.is_some(), "curve_stableswap")?;
    }
    match kind {
        DexKind::CurveStableswap => {
            if p.fee.is_some() {
                return Err(ConfigError::new(
                    at("fee"),
                    "not set for curve_stableswap pools: the fee is read from the pool every block",
                ));
            }
            only("pool_id", p.pool_id.is_some(), "balancer_weighted or uniswap_v4")?;
            only("flavour", p.flavour.is_some(), "balancer_weighted")?;
            only("tick_spacing", p.tick_spacing.is_some(), "uniswap_v3 or uniswap_v4")
        }
        DexKind::UniswapV4 => {
            only("flavour", p.flavour.is_some(), "balancer_weighted")?;
            if p.fee.is_none() {
                return Err(ConfigError::new(at("fee"), "required for uniswap pools"));
            }
            if p.tick_spacing.is_none() {
                return Err(ConfigError::new(
                    at("tick_spacing"),
                    "required for uniswap_v4 pools (part of the pool key)",
                ));
            }
            Ok(())
        }
        DexKind::UniswapV2 | DexKind::UniswapV3 => {
            only("pool_id", p.pool_id.is_some(), "balancer_weighted or uniswap_v4")?;
            only("flavour", p.flavour.is_some(), "balancer_weighted")?;
            let Some(fee) = p.fee else {
                return Err(ConfigError::new(at("fee"), "required for uniswap pools"));
            };
            match kind {
                DexKind::UniswapV2 if fee >= 10_000 => {
                    Err(ConfigError::new(at("fee"), "V2 fee is in basis points and must be < 10000"))
                }
                DexKind::UniswapV2 => only("tick_spacing", p.tick_spacing.is_some(), "uniswap_v3"),
                _ if fee >= 1_000_000 => {
                    Err(ConfigError::new(at("fee"), "V3 fee is in pips and must be < 1000000"))
                }
                _ => match p.v3_tick_spacing() {
                    None => Err(ConfigError::new(
                        at("tick_spacing"),
                        format!(
                            "fee {fee} is not a canonical V3 tier (100, 500, 3000, 10000): set tick_spacing"
                        ),
                    )),
                    Some(s) if !(1..=16_384).contains(&s) => {
                        Err(ConfigError::new(at("tick_spacing"), "must be in 1..=16384"))
                    }
                    Some(_) => Ok(()),
                },
            }
        }
        DexKind::BalancerWeighted => {
            if p.fee.is_some() {
                return Err(ConfigError::new(
                    at("fee"),
                    "not set for balancer_weighted pools: the swap fee is read from the pool",
                ));
            }
            only("tick_spacing", p.tick_spacing.is_some(), "uniswap_v3")?;
            let Some(id) = p.pool_id else {
                return Err(ConfigError::new(at("pool_id"), "required for balancer_weighted pools"));
            };
            if id[..20] != p.address[..] {
                return Err(ConfigError::new(
                    at("pool_id"),
                    format!(
                        "{id} does not belong to pool {} (a pool id starts with its pool's address)",
                        p.address
                    ),
                ));
            }
            if p.flavour.is_none() {
                return Err(ConfigError::new(
                    at("flavour"),
                    "required for balancer_weighted pools: \"v1\" (April 2021 WeightedPool) or \"shortcuts\" (weighted pool v2 onwards)",
                ));
            }
            Ok(())
        }
    }
}

/// Checks a V4 pool's key as the `PoolManager` would (currency order, fee, tick spacing, hook
/// address) and refuses every hook: a hook that can change swap amounts with the permission
/// that does it, any other because `keel run` sends no hook data and routes hookless pools only.
/// A configured `pool_id` must be the key's.
fn validate_v4_key(
    p: &PoolConfig,
    currency0: Address,
    currency1: Address,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let key = p.v4_key(currency0, currency1);
    if let Err(e) = key.validate() {
        let field = match e {
            keel_amm::v4::V4Error::BadFee(_) => "fee",
            keel_amm::v4::V4Error::BadTickSpacing(_) => "tick_spacing",
            keel_amm::v4::V4Error::CurrencyOrder => "token0",
            _ => "hooks",
        };
        return Err(ConfigError::new(at(field), format!("{e}")));
    }
    if key.hooks != Address::ZERO {
        return Err(ConfigError::new(
            at("hooks"),
            format!(
                "pool hook {} (permissions {:#06x}): keel run routes hookless uniswap_v4 pools only (a hook acts on every swap and keel sends no hook data)",
                key.hooks,
                key.hook_flags().0
            ),
        ));
    }
    if let Some(id) = p.pool_id
        && id != key.id()
    {
        return Err(ConfigError::new(
            at("pool_id"),
            format!("{id} is not the id of the configured key (keccak256(abi.encode(key)) = {})", key.id()),
        ));
    }
    Ok(())
}

/// Tick spacing of a canonical Uniswap V3 fee tier (the factory's `feeAmountTickSpacing`).
pub fn canonical_tick_spacing(fee: u32) -> Option<i32> {
    match fee {
        100 => Some(1),
        500 => Some(10),
        3000 => Some(60),
        10_000 => Some(200),
        _ => None,
    }
}

impl PoolConfig {
    /// A V3 pool's tick spacing: the configured one, else the canonical tier's; `None` when
    /// neither is known (a config error, never a guess).
    pub fn v3_tick_spacing(&self) -> Option<i32> {
        self.tick_spacing.or_else(|| canonical_tick_spacing(self.fee()))
    }

    /// The configured fee (basis points for V2, pips for V3); 0 for Balancer pools, whose fee is
    /// read from the chain. Validation makes it present on every Uniswap pool.
    pub fn fee(&self) -> u32 {
        self.fee.unwrap_or(0)
    }

    /// The V4 pool key of this entry, given its tokens' addresses (token0 is the lower):
    /// `(token0, token1, fee, tick_spacing, hooks or zero)`.
    pub fn v4_key(&self, currency0: Address, currency1: Address) -> keel_amm::v4::PoolKey {
        keel_amm::v4::PoolKey {
            currency0,
            currency1,
            fee: self.fee(),
            tick_spacing: self.tick_spacing.unwrap_or(0),
            hooks: self.hooks.unwrap_or(Address::ZERO),
        }
    }

    /// Gas of one swap through this pool: the configured figure or the protocol default.
    pub fn swap_gas(&self, kind: DexKind) -> u64 {
        self.gas.unwrap_or(match kind {
            DexKind::UniswapV2 => DEFAULT_V2_SWAP_GAS,
            DexKind::UniswapV3 => DEFAULT_V3_SWAP_GAS,
            DexKind::BalancerWeighted => DEFAULT_BALANCER_SWAP_GAS,
            DexKind::UniswapV4 => DEFAULT_V4_SWAP_GAS,
            DexKind::CurveStableswap => keel_amm::pool::DEFAULT_CURVE_SWAP_GAS,
        })
    }

    /// The contract a swap through this pool is sent to, and the spender its account approves:
    /// the DEX's router, or for a Curve pool the pool itself.
    pub fn swap_target(&self, dex: &DexConfig) -> Address {
        match dex.kind {
            DexKind::CurveStableswap => self.address,
            _ => dex.router,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::config::PriceSource;

    #[test]
    fn for_chain_is_a_router_section_with_only_its_chain_id() {
        let parsed: RouterConfig = serde_json::from_str(r#"{"chain_id": 5}"#).unwrap();
        assert_eq!(RouterConfig::for_chain(5), parsed);
    }

    fn setup() -> (Vec<TokenConfig>, Vec<DexConfig>, Vec<PoolConfig>, RouterConfig, Vec<RelayConfig>) {
        let tok = |s: &str, b: u8| TokenConfig {
            symbol: s.into(),
            address: Address::repeat_byte(b),
            decimals: 18,
            price: PriceSource::Fixed { fixed: 1.0 },
        };
        let dexes = vec![DexConfig {
            name: "v2".into(),
            kind: DexKind::UniswapV2,
            router: Address::repeat_byte(9),
            factory: None,
            via: Default::default(),
        }];
        let pools = vec![PoolConfig {
            name: "a-b".into(),
            dex: "v2".into(),
            address: Address::repeat_byte(7),
            token0: "A".into(),
            token1: "B".into(),
            fee: Some(30),
            gas: None,
            tick_spacing: None,
            pool_id: None,
            flavour: None,
            hooks: None,
            curve_indices: None,
        }];
        let router: RouterConfig = toml::from_str("chain_id = 1").expect("router");
        let relays = vec![RelayConfig {
            name: "r".into(),
            url: "http://127.0.0.1:1".into(),
            timeout_ms: 1,
            fast_path: true,
            ca_cert: None,
            coinbase: None,
        }];
        (vec![tok("A", 1), tok("B", 2)], dexes, pools, router, relays)
    }

    /// Native ETH (a token at the zero address) is held by uniswap_v4 pools only: a V2 pool of it
    /// is refused naming the pool and why; a V4 pool of it is accepted. The gas reserve defaults to
    /// 0.05 ETH and is bounded.
    #[test]
    fn native_eth_trades_through_v4_pools_only_and_its_gas_reserve_is_bounded() {
        let (mut t, mut d, mut p, r, rl) = setup();
        t[0].address = Address::ZERO;
        t[0].symbol = "ETH".into();
        p[0].token0 = "ETH".into();
        let e = validate(&t, &d, &p, &r, &rl).unwrap_err();
        assert_eq!(e.field, "pools[a-b].token0");
        assert!(e.problem.contains("native ETH") && e.problem.contains("uniswap_v4"), "{}", e.problem);
        d.push(v4_dex());
        p[0] = PoolConfig { dex: "v4".into(), tick_spacing: Some(60), fee: Some(3000), ..p[0].clone() };
        assert!(validate(&t, &d, &p, &r, &rl).is_ok());

        assert_eq!(r.gas_reserve_wei, DEFAULT_GAS_RESERVE_WEI);
        assert_eq!(DEFAULT_GAS_RESERVE_WEI, 5 * 10u128.pow(16));
        let r: RouterConfig = toml::from_str("chain_id = 1\ngas_reserve_wei = 0").expect("router");
        assert!(validate(&t, &d, &p, &r, &rl).is_ok());
        let over = RouterConfig { gas_reserve_wei: MAX_GAS_RESERVE_WEI + 1, ..r };
        assert_eq!(validate(&t, &d, &p, &over, &rl).unwrap_err().field, "router.gas_reserve_wei");
    }

    /// A `uniswap_v4` DEX named "v4" behind a V4Router.
    fn v4_dex() -> DexConfig {
        DexConfig {
            name: "v4".into(),
            kind: DexKind::UniswapV4,
            router: Address::repeat_byte(0x44),
            factory: None,
            via: Default::default(),
        }
    }

    #[test]
    fn out_of_range_numbers_are_refused_naming_the_field_and_the_bound() {
        let (t, d, p, r, rl) = setup();
        assert!(validate(&t, &d, &p, &r, &rl).is_ok());
        let field = |r: &RouterConfig, p: &[PoolConfig]| validate(&t, &d, p, r, &rl).unwrap_err().field;
        let with = |f: &dyn Fn(&mut RouterConfig)| {
            let mut r = r.clone();
            f(&mut r);
            r
        };
        assert_eq!(field(&with(&|r| r.swap_deadline_secs = u64::MAX), &p), "router.swap_deadline_secs");
        assert_eq!(field(&with(&|r| r.bundle_blocks = u64::MAX), &p), "router.bundle_blocks");
        assert_eq!(field(&with(&|r| r.bundle_blocks = 0), &p), "router.bundle_blocks");
        assert_eq!(field(&with(&|r| r.twap_window_secs = 0), &p), "router.twap_window_secs");
        assert_eq!(field(&with(&|r| r.base_fee_multiplier = u128::MAX), &p), "router.base_fee_multiplier");
        assert_eq!(field(&with(&|r| r.priority_fee_wei = u128::MAX), &p), "router.priority_fee_wei");
        assert_eq!(field(&with(&|r| r.presign_pool = (1 << 20) + 1), &p), "router.presign_pool");
        assert_eq!(field(&with(&|r| r.max_pool_deviation = 2.0), &p), "router.max_pool_deviation");
        let mut slow = rl.clone();
        slow[0].timeout_ms = 0;
        assert_eq!(validate(&t, &d, &p, &r, &slow).unwrap_err().field, "relays[r].timeout_ms");
        assert!(validate(&t, &d, &p, &with(&|r| r.presign_pool = 0), &rl).is_ok(), "0 turns it off");
        assert_eq!(r.presign_pool, DEFAULT_PRESIGN_POOL);
        assert_eq!(
            field(&with(&|r| r.limits.max_gas_price_wei = Some(0)), &p),
            "router.limits.max_gas_price_wei"
        );
        let e = validate(&t, &d, &p, &with(&|r| r.swap_deadline_secs = u64::MAX), &rl).unwrap_err();
        assert!(e.problem.contains("1..=86400"), "{e}");
        let mut big_gas = p.clone();
        big_gas[0].gas = Some(u64::MAX);
        assert_eq!(field(&r, &big_gas), "pools[a-b].gas");
    }

    #[test]
    fn v4_pools_need_their_key_and_refuse_hooks_naming_why() {
        let (t, mut d, p, r, rl) = setup();
        d.push(v4_dex());
        let manager = Address::repeat_byte(0x4d);
        let mut ok = p.clone();
        ok.push(PoolConfig {
            name: "v4-a-b".into(),
            dex: "v4".into(),
            address: manager,
            tick_spacing: Some(60),
            fee: Some(3000),
            ..p[0].clone()
        });
        assert!(validate(&t, &d, &ok, &r, &rl).is_ok());
        assert_eq!(ok[1].swap_gas(DexKind::UniswapV4), DEFAULT_V4_SWAP_GAS);
        let key = ok[1].v4_key(Address::repeat_byte(1), Address::repeat_byte(2));
        let check = |f: &dyn Fn(&mut PoolConfig)| {
            let mut pools = ok.clone();
            f(&mut pools[1]);
            validate(&t, &d, &pools, &r, &rl).map_err(|e| (e.field.clone(), e.problem))
        };
        // The right id is accepted, any other is refused with the key's.
        assert!(check(&|p| p.pool_id = Some(key.id())).is_ok());
        let (f, why) = check(&|p| p.pool_id = Some(alloy::primitives::B256::repeat_byte(1))).unwrap_err();
        assert_eq!(f, "pools[v4-a-b].pool_id");
        assert!(why.contains(&key.id().to_string()), "{why}");
        // The key's fields are required and checked like the PoolManager checks them.
        assert_eq!(check(&|p| p.tick_spacing = None).unwrap_err().0, "pools[v4-a-b].tick_spacing");
        assert_eq!(check(&|p| p.tick_spacing = Some(40_000)).unwrap_err().0, "pools[v4-a-b].tick_spacing");
        assert_eq!(check(&|p| p.fee = None).unwrap_err().0, "pools[v4-a-b].fee");
        assert_eq!(check(&|p| p.fee = Some(1_000_001)).unwrap_err().0, "pools[v4-a-b].fee");
        assert_eq!(
            check(&|p| p.flavour = Some(keel_amm::balancer::PowFlavour::V1)).unwrap_err().0,
            "pools[v4-a-b].flavour"
        );
        // Hooks: the zero address is hookless; a hook that changes swap amounts is refused with its
        // permission, any other hook because keel run routes hookless pools only.
        assert!(check(&|p| p.hooks = Some(Address::ZERO)).is_ok());
        let mut returns_delta = [0x42u8; 20];
        returns_delta[18] = 0;
        returns_delta[19] = (1 << 7) | (1 << 3); // beforeSwap + beforeSwapReturnDelta
        let (f, why) = check(&|p| p.hooks = Some(Address::from(returns_delta))).unwrap_err();
        assert_eq!(f, "pools[v4-a-b].hooks");
        assert!(why.contains("beforeSwapReturnDelta"), "{why}");
        let mut after_swap = [0x42u8; 20];
        after_swap[18] = 0;
        after_swap[19] = 1 << 6;
        let (f, why) = check(&|p| p.hooks = Some(Address::from(after_swap))).unwrap_err();
        assert_eq!(f, "pools[v4-a-b].hooks");
        assert!(why.contains("hookless uniswap_v4 pools only"), "{why}");
        // Hooks belong to V4 pools only.
        let mut v2 = ok.clone();
        v2[0].hooks = Some(Address::ZERO);
        assert_eq!(validate(&t, &d, &v2, &r, &rl).unwrap_err().field, "pools[a-b].hooks");
        // From TOML.
        let dex: DexConfig = toml::from_str(
            "name = \"v4\"\nkind = \"uniswap_v4\"\nrouter = \"0x4444444444444444444444444444444444444444\"",
        )
        .expect("v4 dex");
        assert_eq!(dex.kind, DexKind::UniswapV4);
        assert_eq!(dex.via, V4Via::V4Router, "the default router of a V4 DEX");
    }

    /// `via = "universal_router"` is read from TOML, accepted on a V4 DEX and refused, naming the
    /// field, on any other; an unknown router name is a parse error.
    #[test]
    fn a_universal_router_is_a_v4_dex_router_only() {
        let (t, d, p, r, rl) = setup();
        let v4: DexConfig = toml::from_str(
            "name = \"v4\"\nkind = \"uniswap_v4\"\nvia = \"universal_router\"\nrouter = \"0x4444444444444444444444444444444444444444\"",
        )
        .expect("v4 dex via the universal router");
        assert_eq!(v4.via, V4Via::UniversalRouter);
        let mut dexes = d.clone();
        dexes.push(v4);
        assert!(validate(&t, &dexes, &p, &r, &rl).is_ok());
        let mut wrong = d.clone();
        wrong[0].via = V4Via::UniversalRouter;
        let e = validate(&t, &wrong, &p, &r, &rl).unwrap_err();
        assert_eq!(e.field, format!("dexes[{}].via", d[0].name));
        assert!(e.problem.contains("uniswap_v4"), "{}", e.problem);
        let typo = toml::from_str::<DexConfig>(
            "name = \"v4\"\nkind = \"uniswap_v4\"\nvia = \"universal\"\nrouter = \"0x4444444444444444444444444444444444444444\"",
        );
        assert!(typo.is_err());
    }

    #[test]
    fn balancer_pools_need_their_pool_id_and_flavour_and_no_uniswap_fields() {
        let (t, mut d, p, r, rl) = setup();
        d.push(DexConfig {
            name: "bal".into(),
            kind: DexKind::BalancerWeighted,
            router: Address::repeat_byte(0xba),
            factory: None,
            via: Default::default(),
        });
        let pool = Address::repeat_byte(0xb0);
        let mut id = [0u8; 32];
        id[..20].copy_from_slice(pool.as_slice());
        id[31] = 1;
        let mut ok = p.clone();
        ok.push(PoolConfig {
            name: "bal-a-b".into(),
            dex: "bal".into(),
            address: pool,
            fee: None,
            pool_id: Some(id.into()),
            flavour: Some(keel_amm::balancer::PowFlavour::V1),
            ..p[0].clone()
        });
        assert!(validate(&t, &d, &ok, &r, &rl).is_ok());
        assert_eq!(ok[1].swap_gas(DexKind::BalancerWeighted), DEFAULT_BALANCER_SWAP_GAS);
        let field = |f: &dyn Fn(&mut PoolConfig)| {
            let mut pools = ok.clone();
            f(&mut pools[1]);
            let e = validate(&t, &d, &pools, &r, &rl).unwrap_err();
            (e.field.clone(), e.problem)
        };
        assert_eq!(field(&|p| p.pool_id = None).0, "pools[bal-a-b].pool_id");
        let (f, why) = field(&|p| p.address = Address::repeat_byte(0xb1));
        assert_eq!(f, "pools[bal-a-b].pool_id");
        assert!(why.contains("starts with its pool's address"), "{why}");
        assert_eq!(field(&|p| p.flavour = None).0, "pools[bal-a-b].flavour");
        assert_eq!(field(&|p| p.fee = Some(30)).0, "pools[bal-a-b].fee");
        assert_eq!(field(&|p| p.tick_spacing = Some(60)).0, "pools[bal-a-b].tick_spacing");
        // Uniswap pools need their fee, and take no Balancer fields.
        let mut v2 = ok.clone();
        v2[0].fee = None;
        assert_eq!(validate(&t, &d, &v2, &r, &rl).unwrap_err().field, "pools[a-b].fee");
        v2[0].fee = Some(30);
        v2[0].pool_id = Some(id.into());
        assert_eq!(validate(&t, &d, &v2, &r, &rl).unwrap_err().field, "pools[a-b].pool_id");
        // From TOML: the kind, a 32-byte id and the flavour by name.
        let parsed: PoolConfig = toml::from_str(&format!(
            "name = \"x\"\ndex = \"bal\"\naddress = \"{pool}\"\ntoken0 = \"A\"\ntoken1 = \"B\"\npool_id = \"{}\"\nflavour = \"shortcuts\"",
            alloy::primitives::B256::from(id)
        ))
        .expect("balancer pool");
        assert_eq!(parsed.flavour, Some(keel_amm::balancer::PowFlavour::Shortcuts));
        assert_eq!(parsed.fee, None);
        let dex: DexConfig =
            toml::from_str("name = \"b\"\nkind = \"balancer_weighted\"\nrouter = \"0xBA12222222228d8Ba445958a75a0704d566BF2C8\"")
                .expect("balancer dex");
        assert_eq!(dex.kind, DexKind::BalancerWeighted);
    }

    /// A Curve DEX names no router (each pool is its own swap contract and spender), every other
    /// DEX must; a Curve pool takes no fee, pool id, flavour or tick spacing (its fee is read
    /// from the pool), and `curve_indices` belongs to Curve pools only.
    #[test]
    fn curve_pools_are_their_own_router_and_take_no_uniswap_or_balancer_fields() {
        let (t, mut d, p, r, rl) = setup();
        d.push(toml::from_str("name = \"curve\"\nkind = \"curve_stableswap\"").expect("curve dex"));
        let pool = Address::repeat_byte(0xc0);
        let mut ok = p.clone();
        ok.push(
            toml::from_str(&format!(
                "name = \"curve-a-b\"\ndex = \"curve\"\naddress = \"{pool}\"\ntoken0 = \"A\"\ntoken1 = \"B\"\ncurve_indices = \"uint128\""
            ))
            .expect("curve pool"),
        );
        assert_eq!(ok[1].curve_indices, Some(CurveIndices::Uint128));
        assert!(validate(&t, &d, &ok, &r, &rl).is_ok());
        assert_eq!(ok[1].swap_target(&d[1]), pool, "a Curve pool is its own swap target");
        assert_eq!(ok[0].swap_target(&d[0]), d[0].router);
        assert_eq!(ok[1].swap_gas(DexKind::CurveStableswap), keel_amm::pool::DEFAULT_CURVE_SWAP_GAS);
        let field = |f: &dyn Fn(&mut PoolConfig)| {
            let mut pools = ok.clone();
            f(&mut pools[1]);
            let e = validate(&t, &d, &pools, &r, &rl).unwrap_err();
            (e.field.clone(), e.problem)
        };
        let (f, why) = field(&|p| p.fee = Some(4));
        assert_eq!(f, "pools[curve-a-b].fee");
        assert!(why.contains("read from the pool"), "{why}");
        assert_eq!(field(&|p| p.tick_spacing = Some(1)).0, "pools[curve-a-b].tick_spacing");
        assert_eq!(
            field(&|p| p.flavour = Some(keel_amm::balancer::PowFlavour::V1)).0,
            "pools[curve-a-b].flavour"
        );
        assert_eq!(field(&|p| p.pool_id = Some(Default::default())).0, "pools[curve-a-b].pool_id");
        // The index type belongs to Curve pools only.
        let mut v2 = ok.clone();
        v2[0].curve_indices = Some(CurveIndices::Int128);
        assert_eq!(validate(&t, &d, &v2, &r, &rl).unwrap_err().field, "pools[a-b].curve_indices");
        // A Curve DEX with a router is refused, and so is any other DEX without one.
        let mut dexes = d.clone();
        dexes[1].router = Address::repeat_byte(0x11);
        let e = validate(&t, &dexes, &ok, &r, &rl).unwrap_err();
        assert_eq!(e.field, "dexes[curve].router");
        assert!(e.problem.contains("its own swap contract"), "{}", e.problem);
        let mut dexes = d.clone();
        dexes[0].router = Address::ZERO;
        let e = validate(&t, &dexes, &ok, &r, &rl).unwrap_err();
        assert_eq!(e.field, format!("dexes[{}].router", d[0].name));
        assert!(e.problem.contains("required") && e.problem.contains(d[0].kind.name()), "{}", e.problem);
        // Each kind's name is its config spelling.
        for kind in [
            DexKind::UniswapV2,
            DexKind::UniswapV3,
            DexKind::UniswapV4,
            DexKind::BalancerWeighted,
            DexKind::CurveStableswap,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        // An unknown index type is a parse error; the default is mainnet's int128.
        assert!(toml::from_str::<PoolConfig>(&format!(
            "name = \"x\"\ndex = \"curve\"\naddress = \"{pool}\"\ntoken0 = \"A\"\ntoken1 = \"B\"\ncurve_indices = \"int256\""
        ))
        .is_err());
        assert_eq!(CurveIndices::default(), CurveIndices::Int128);
    }

    #[test]
    fn a_ca_cert_needs_an_https_relay_and_a_readable_pem() {
        let (t, d, p, r, mut rl) = setup();
        let dir = tempfile::tempdir().expect("dir");
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "not a certificate").expect("write");
        rl[0].ca_cert = Some(pem.clone());
        let e = validate(&t, &d, &p, &r, &rl).unwrap_err();
        assert_eq!((e.field.as_str(), e.problem.contains("https://")), ("relays[r].ca_cert", true), "{e}");
        rl[0].url = "https://localhost:1/".into();
        let e = validate(&t, &d, &p, &r, &rl).unwrap_err();
        assert!(e.problem.contains("no PEM certificate"), "{e}");
        rl[0].ca_cert = Some(dir.path().join("missing.pem"));
        let e = validate(&t, &d, &p, &r, &rl).unwrap_err();
        assert!(e.problem.contains("cannot read"), "{e}");
    }
}
