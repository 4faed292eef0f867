//! `keel quote`: the operator's dry run of one order, JSON in and JSON out.
//!
//! [`run_quote`] parses a request, routes it with the split optimiser (or, with
//! `sqrt_price_limit_x96`, swaps the single pool up to that price) and renders the response. Every
//! problem with the request is a [`QuoteError`] naming the field and the problem on one line.
//!
//! # Request
//! ```json
//! {"pools": [
//!    {"id": "v2-a", "kind": "uniswap_v2", "token0": "0x…", "token1": "0x…",
//!     "reserve0": "…", "reserve1": "…", "fee_bps": 30, "gas": 90000},
//!    {"id": "v3-a", "kind": "uniswap_v3", "token0": "0x…", "token1": "0x…", "fee": 3000,
//!     "tick_spacing": 60, "sqrt_price_x96": "…", "tick": -200, "liquidity": "…",
//!     "ticks": [{"index": -887220, "liquidity_net": "…"}, {"index": 887220, "liquidity_net": "-…"}],
//!     "gas": 130000},
//!    {"id": "bal-a", "kind": "balancer_weighted", "token0": "0x…", "token1": "0x…",
//!     "index0": 0, "index1": 1, "balances": ["…", "…"], "weights": ["800000000000000000",
//!     "200000000000000000"], "decimals": [18, 6], "swap_fee": "3000000000000000",
//!     "flavour": "shortcuts"},
//!    {"id": "v4-a", "kind": "uniswap_v4", "token0": "0x0000000000000000000000000000000000000000",
//!     "token1": "0x…", "fee": 3000, "tick_spacing": 60, "hooks": "0x0…0", "sqrt_price_x96": "…",
//!     "tick": 10, "liquidity": "…", "ticks": [{"index": -600, "liquidity_net": "…"}, …]},
//!    {"id": "crv-a", "kind": "curve_stableswap", "token0": "0x…", "token1": "0x…",
//!     "index0": 1, "index1": 0, "balances": ["…", "…", "…"], "decimals": [18, 6, 6],
//!     "a": "200000", "fee": 4000000, "flavour": "factory_plain"}],
//!  "sell": "0x…", "buy": "0x…",
//!  "amount_in": "…",
//!  "sqrt_price_limit_x96": "…",
//!  "gas_price_wei": "…", "buy_per_native": "1834.5", "buy_decimals": 6}
//! ```
//! - Token amounts, reserves, liquidity and prices are decimal strings (`liquidity_net` may start
//!   with `-`); fees, tick spacing, ticks and gas are JSON integers (decimal strings also accepted).
//! - Exactly one of `amount_in` / `amount_out`.
//! - `sqrt_price_limit_x96` only with a single `uniswap_v3` or `uniswap_v4` pool: the swap stops at that price and
//!   may fill less than asked (the response shows what it filled).
//! - `gas_price_wei` and `buy_per_native` (whole bought tokens per native token) together, or
//!   neither (gas ignored). `buy_decimals` (default 18) converts whole tokens to raw units.
//! - `balancer_weighted`: the whole pool (2–8 tokens) in its own token order: `balances` (raw
//!   units, the Vault's `getPoolTokens`), normalized `weights` and `swap_fee` (18-decimal strings),
//!   token `decimals` (≤ 18); `index0` / `index1` are the positions of the pair's `token0` (the
//!   lower address) and `token1` in that order. `flavour`: `shortcuts` (2022+ pools, default) or
//!   `v1` (April 2021 pools). Refused as the pool's constructor refuses (weights below 1% or not
//!   summing to 1, fee outside 0.0001%–10%, more than 18 decimals).
//! - `curve_stableswap`: a plain pool of 2 or 3 coins in its coin order: `balances` (the contract's
//!   `balances`), `decimals` (rates `10^(36 − decimals)`), `a` (storage convention: `A·100` =
//!   `A_precise()` for `factory_plain`, plain `A` for `three_pool`), optional ramp `future_a`,
//!   `initial_a_time`, `future_a_time` and the block `timestamp` to quote at (default 0: a pool
//!   without a ramp), `fee` and `admin_fee` (parts of 10¹⁰; `admin_fee` defaults to the factory's
//!   50%, 0 for the 3pool), `index0` / `index1` as for Balancer. A StableSwap-NG pool is a
//!   `factory_plain` one with its `offpeg_fee_multiplier` (parts of 10¹⁰, default 0: a constant
//!   fee, as at most 10¹⁰ is too).
//! - `uniswap_v4`: the pool's key — `token0` / `token1` are `currency0` / `currency1`
//!   (`0x0000000000000000000000000000000000000000` is native ETH), `fee` (pips, at most 1000000, or
//!   8388608 = `0x800000` for a dynamic fee), `tick_spacing` (1–32767, independent of the fee),
//!   `hooks` (default none) — then `slot0`'s `lp_fee` (default `fee`; required for a dynamic fee)
//!   and `protocol_fee` (default 0; 12 bits per direction, zeroForOne low), and the state as for
//!   V3 (`sqrt_price_x96`, `tick`, `liquidity`, `ticks`). `address` is the `PoolManager`. A pool
//!   whose hook can change swap amounts (`beforeSwapReturnDelta` / `afterSwapReturnDelta`
//!   permission bits in its address, or `beforeSwap` on a dynamic-fee pool) is refused, naming the
//!   permission. Two V4 pools can make a two-hop path (one router executes it); a V4 leg
//!   shows the V3 fields (`sqrt_price_x96_after`, `tick_after`, `liquidity_after`).
//! - A pool's `gas` defaults to [`DEFAULT_V2_SWAP_GAS`] / [`DEFAULT_V3_SWAP_GAS`] /
//!   [`DEFAULT_BALANCER_SWAP_GAS`] / [`DEFAULT_CURVE_SWAP_GAS`] / [`DEFAULT_V4_SWAP_GAS`];
//!   `address` is optional. Unknown
//!   fields are errors. Balancer and Curve pools are single-pool paths (never a hop of a two-hop
//!   path).
//!
//! # Response
//! ```json
//! {"amount_in": "…", "amount_out": "…", "gas": 220000,
//!  "legs": [{"pool": "v3-a", "amount_in": "…", "amount_out": "…",
//!            "sqrt_price_x96_after": "…", "tick_after": -250, "liquidity_after": "…"},
//!           {"pool": "v2-a", "amount_in": "…", "amount_out": "…",
//!            "reserve0_after": "…", "reserve1_after": "…"}]}
//! ```
//! A Balancer or Curve leg shows `"balances_after"` (the pool's balances, its token order).
//! Legs are in execution order. A two-hop leg has `"pool": "a>b"`, `"pools": ["a", "b"]`, its
//! total `amount_in` / `amount_out`, and `"hops"`: one single-pool object (as above) per hop, in order.

use core::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, U256};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::pool::{
    DEFAULT_BALANCER_SWAP_GAS, DEFAULT_CURVE_SWAP_GAS, DEFAULT_V2_SWAP_GAS, DEFAULT_V3_SWAP_GAS,
    DEFAULT_V4_SWAP_GAS, Pool, PoolChange, PoolEntry, PoolError, PoolMeta, SwapAmount,
};
use crate::split::{self, GasPrice, SplitError};
use crate::v3::{TickInfo, V3Pool};

/// A bad request: the field (a JSON path such as `pools[1].kind`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteError {
    /// JSON path of the offending field (`request` for the document itself).
    pub field: String,
    /// What is wrong, one line.
    pub problem: String,
}

impl QuoteError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into().replace('\n', " ") }
    }
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for QuoteError {}

type Result<T> = core::result::Result<T, QuoteError>;

// ---------------------------------------------------------------------------------------------
// Field readers
// ---------------------------------------------------------------------------------------------

struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: impl Into<String>) -> Result<Self> {
        let path = path.into();
        match v.as_object() {
            Some(map) => Ok(Self { map, path }),
            None if path.is_empty() => Err(QuoteError::new("request", "expected a JSON object")),
            None => Err(QuoteError::new(path, "expected a JSON object")),
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    fn deny_unknown(&self, known: &[&str]) -> Result<()> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(QuoteError::new(self.at(k), "unknown field")),
            None => Ok(()),
        }
    }

    fn opt(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn req(&self, key: &str) -> Result<&'a Value> {
        self.opt(key).ok_or_else(|| QuoteError::new(self.at(key), "missing"))
    }

    fn str(&self, key: &str) -> Result<&'a str> {
        self.req(key)?.as_str().ok_or_else(|| QuoteError::new(self.at(key), "expected a string"))
    }

    fn address(&self, key: &str) -> Result<Address> {
        let s = self.str(key)?;
        if !(s.len() == 42 && s.starts_with("0x")) {
            return Err(QuoteError::new(
                self.at(key),
                format!("`{s}` is not a 0x-prefixed 20-byte hex address"),
            ));
        }
        Address::from_str(s)
            .map_err(|e| QuoteError::new(self.at(key), format!("`{s}` is not an address: {e}")))
    }

    /// A non-negative integer as a decimal string.
    fn uint(&self, key: &str) -> Result<U256> {
        let at = self.at(key);
        let s = self.req(key)?.as_str().ok_or_else(|| QuoteError::new(&at, "expected a decimal string"))?;
        parse_u256(s).map_err(|p| QuoteError::new(at, p))
    }

    fn opt_uint(&self, key: &str) -> Result<Option<U256>> {
        match self.opt(key) {
            Some(_) => self.uint(key).map(Some),
            None => Ok(None),
        }
    }

    /// A small integer: a JSON integer or a decimal string.
    fn int<T: TryFrom<i128>>(&self, key: &str) -> Result<T> {
        let at = self.at(key);
        let v = self.req(key)?;
        let n: i128 = match v {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .ok_or_else(|| QuoteError::new(&at, format!("`{n}` is not an integer")))?,
            Value::String(s) => parse_i128(s).map_err(|p| QuoteError::new(&at, p))?,
            _ => return Err(QuoteError::new(at, "expected an integer")),
        };
        T::try_from(n).map_err(|_| QuoteError::new(at, format!("{n} is out of range")))
    }
}

fn parse_u256(s: &str) -> core::result::Result<U256, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a non-negative decimal integer"));
    }
    U256::from_str_radix(s, 10).map_err(|_| format!("`{s}` does not fit 256 bits"))
}

fn parse_i128(s: &str) -> core::result::Result<i128, String> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a decimal integer"));
    }
    s.parse::<i128>().map_err(|_| format!("`{s}` does not fit 128 bits"))
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

const TOP_FIELDS: &[&str] = &[
    "pools",
    "sell",
    "buy",
    "amount_in",
    "amount_out",
    "sqrt_price_limit_x96",
    "gas_price_wei",
    "buy_per_native",
    "buy_decimals",
];
const V2_FIELDS: &[&str] =
    &["id", "kind", "address", "token0", "token1", "reserve0", "reserve1", "fee_bps", "gas"];
const V3_FIELDS: &[&str] = &[
    "id",
    "kind",
    "address",
    "token0",
    "token1",
    "fee",
    "tick_spacing",
    "sqrt_price_x96",
    "tick",
    "liquidity",
    "ticks",
    "gas",
];
const V4_FIELDS: &[&str] = &[
    "id",
    "kind",
    "address",
    "token0",
    "token1",
    "fee",
    "tick_spacing",
    "hooks",
    "lp_fee",
    "protocol_fee",
    "sqrt_price_x96",
    "tick",
    "liquidity",
    "ticks",
    "gas",
];
const BALANCER_FIELDS: &[&str] = &[
    "id", "kind", "address", "token0", "token1", "index0", "index1", "balances", "weights", "decimals",
    "swap_fee", "flavour", "gas",
];
const CURVE_FIELDS: &[&str] = &[
    "id",
    "kind",
    "address",
    "token0",
    "token1",
    "index0",
    "index1",
    "balances",
    "decimals",
    "flavour",
    "a",
    "future_a",
    "initial_a_time",
    "future_a_time",
    "fee",
    "admin_fee",
    "offpeg_fee_multiplier",
    "timestamp",
    "gas",
];

impl Obj<'_> {
    /// An array of decimal strings.
    fn uints(&self, key: &str) -> Result<Vec<U256>> {
        let at = self.at(key);
        let arr = self.req(key)?.as_array().ok_or_else(|| QuoteError::new(&at, "expected an array"))?;
        arr.iter()
            .enumerate()
            .map(|(k, v)| {
                let s = v
                    .as_str()
                    .ok_or_else(|| QuoteError::new(format!("{at}[{k}]"), "expected a decimal string"))?;
                parse_u256(s).map_err(|p| QuoteError::new(format!("{at}[{k}]"), p))
            })
            .collect()
    }

    /// An array of token decimals (JSON integers, at most 18 for Balancer, 36 for Curve).
    fn decimals(&self, key: &str, max: u8) -> Result<Vec<u8>> {
        let at = self.at(key);
        let arr = self.req(key)?.as_array().ok_or_else(|| QuoteError::new(&at, "expected an array"))?;
        arr.iter()
            .enumerate()
            .map(|(k, v)| match v.as_u64() {
                Some(d) if d <= u64::from(max) => Ok(d as u8),
                _ => Err(QuoteError::new(format!("{at}[{k}]"), format!("expected an integer 0..={max}"))),
            })
            .collect()
    }

    fn opt_int<T: TryFrom<i128>>(&self, key: &str, default: T) -> Result<T> {
        match self.opt(key) {
            Some(_) => self.int(key),
            None => Ok(default),
        }
    }
}

fn parse_balancer(o: &Obj<'_>) -> Result<Pool> {
    use crate::balancer::{PowFlavour, WeightedPool};
    let flavour = match o.opt("flavour").map(|_| o.str("flavour")).transpose()? {
        None | Some("shortcuts") => PowFlavour::Shortcuts,
        Some("v1") => PowFlavour::V1,
        Some(other) => {
            return Err(QuoteError::new(
                o.at("flavour"),
                format!("unknown flavour `{other}` (expected `v1` for April 2021 pools or `shortcuts`)"),
            ));
        }
    };
    let pool = WeightedPool::new(
        &o.uints("balances")?,
        &o.uints("weights")?,
        &o.decimals("decimals", 18)?,
        o.uint("swap_fee")?,
        flavour,
    )
    .map_err(|e| QuoteError::new(o.path.clone(), e.to_string()))?;
    let pair = crate::pool::BalancerPair::new(pool, o.int("index0")?, o.int("index1")?)
        .map_err(|e| QuoteError::new(o.at("index0"), e.to_string()))?;
    Ok(Pool::Balancer(Box::new(pair)))
}

fn parse_curve(o: &Obj<'_>) -> Result<Pool> {
    use crate::curve::{AmpRamp, FACTORY_ADMIN_FEE, Flavour, StableSwapPool};
    let flavour = match o.opt("flavour").map(|_| o.str("flavour")).transpose()? {
        None | Some("factory_plain") => Flavour::FactoryPlain,
        Some("three_pool") => Flavour::ThreePool,
        Some(other) => {
            return Err(QuoteError::new(
                o.at("flavour"),
                format!("unknown flavour `{other}` (expected `factory_plain` or `three_pool`)"),
            ));
        }
    };
    let a = o.uint("a")?;
    let amp = AmpRamp {
        initial_a: a,
        future_a: o.opt_uint("future_a")?.unwrap_or(a),
        initial_a_time: o.opt_int("initial_a_time", 0u64)?,
        future_a_time: o.opt_int("future_a_time", 0u64)?,
    };
    let admin_default = if flavour == Flavour::FactoryPlain { FACTORY_ADMIN_FEE } else { 0 };
    let offpeg = o.opt_int("offpeg_fee_multiplier", 0u64)?;
    if offpeg != 0 && flavour != Flavour::FactoryPlain {
        return Err(QuoteError::new(
            o.at("offpeg_fee_multiplier"),
            "only a `factory_plain` pool (StableSwap-NG) has an off-peg fee multiplier",
        ));
    }
    let mut pool = StableSwapPool::with_decimals(
        flavour,
        &o.uints("balances")?,
        &o.decimals("decimals", 36)?,
        amp,
        o.int("fee")?,
        o.opt_int("admin_fee", admin_default)?,
    )
    .map_err(|e| QuoteError::new(o.path.clone(), e.to_string()))?;
    pool.set_offpeg_fee_multiplier(offpeg);
    let pair =
        crate::pool::CurvePair::new(pool, o.int("index0")?, o.int("index1")?, o.opt_int("timestamp", 0u64)?)
            .map_err(|e| QuoteError::new(o.at("index0"), e.to_string()))?;
    Ok(Pool::Curve(Box::new(pair)))
}

fn parse_pool(v: &Value, i: usize) -> Result<PoolEntry> {
    let o = Obj::new(v, format!("pools[{i}]"))?;
    let id = o.str("id")?.to_string();
    if id.is_empty() {
        return Err(QuoteError::new(o.at("id"), "must not be empty"));
    }
    // name the pool by id in later messages
    let o = Obj { map: o.map, path: format!("pools[{id}]") };
    let kind = o.str("kind")?;
    let fields = match kind {
        "uniswap_v2" => V2_FIELDS,
        "uniswap_v3" => V3_FIELDS,
        "uniswap_v4" => V4_FIELDS,
        "balancer_weighted" => BALANCER_FIELDS,
        "curve_stableswap" => CURVE_FIELDS,
        other => {
            return Err(QuoteError::new(
                o.at("kind"),
                format!(
                    "unknown pool kind `{other}` (expected `uniswap_v2`, `uniswap_v3`, `uniswap_v4`, \
                     `balancer_weighted` or `curve_stableswap`)"
                ),
            ));
        }
    };
    o.deny_unknown(fields)?;
    let token0 = o.address("token0")?;
    let token1 = o.address("token1")?;
    if token0 >= token1 {
        return Err(QuoteError::new(
            o.at("token0"),
            "must be the lower address (as the pool contract orders them)",
        ));
    }
    let address = match o.opt("address") {
        Some(_) => o.address("address")?,
        None => Address::ZERO,
    };
    let (pool, default_gas, venue) = if kind == "uniswap_v2" {
        let fee_bps: u32 = o.int("fee_bps")?;
        if fee_bps >= 10_000 {
            return Err(QuoteError::new(o.at("fee_bps"), format!("{fee_bps} is not below 10000")));
        }
        let (reserve0, reserve1) = (o.uint("reserve0")?, o.uint("reserve1")?);
        for (k, r) in [("reserve0", reserve0), ("reserve1", reserve1)] {
            if r > crate::pool::MAX_V2_RESERVE {
                return Err(QuoteError::new(o.at(k), "exceeds uint112"));
            }
        }
        (Pool::V2 { reserve0, reserve1, fee_bps }, DEFAULT_V2_SWAP_GAS, 0)
    } else if kind == "balancer_weighted" {
        (parse_balancer(&o)?, DEFAULT_BALANCER_SWAP_GAS, 2)
    } else if kind == "curve_stableswap" {
        (parse_curve(&o)?, DEFAULT_CURVE_SWAP_GAS, 3)
    } else if kind == "uniswap_v4" {
        (parse_v4(&o, token0, token1)?, DEFAULT_V4_SWAP_GAS, 4)
    } else {
        let fee: u32 = o.int("fee")?;
        let tick_spacing: i32 = o.int("tick_spacing")?;
        let (sqrt_price_x96, tick, liquidity, ticks) = parse_tick_state(&o)?;
        let p = V3Pool::new(fee, tick_spacing, sqrt_price_x96, tick, liquidity, &ticks)
            .map_err(|e| QuoteError::new(o.path.clone(), e.to_string()))?;
        (Pool::V3(p), DEFAULT_V3_SWAP_GAS, 1)
    };
    let gas: u64 = match o.opt("gas") {
        Some(_) => o.int("gas")?,
        None => default_gas,
    };
    let meta = PoolMeta { id, address, token0, token1, gas, venue };
    PoolEntry::new(meta, pool).map_err(|e| QuoteError::new(o.path.clone(), e.to_string()))
}

/// A V4 pool: its key (`token0`/`token1` are the currencies, `0x0…0` for native ETH; `fee`,
/// `tick_spacing`, `hooks`), `slot0`'s `lp_fee` and `protocol_fee`, and the V3-shaped state.
fn parse_v4(o: &Obj<'_>, token0: Address, token1: Address) -> Result<Pool> {
    use crate::v4::{PoolKey, V4Pool};
    let fee: u32 = o.int("fee")?;
    let hooks = match o.opt("hooks") {
        Some(_) => o.address("hooks")?,
        None => Address::ZERO,
    };
    let key =
        PoolKey { currency0: token0, currency1: token1, fee, tick_spacing: o.int("tick_spacing")?, hooks };
    let lp_fee: u32 = match o.opt("lp_fee") {
        Some(_) => o.int("lp_fee")?,
        None if key.is_dynamic_fee() => {
            return Err(QuoteError::new(o.at("lp_fee"), "required for a dynamic-fee pool (slot0.lpFee)"));
        }
        None => fee,
    };
    let protocol_fee: u32 = o.opt_int("protocol_fee", 0u32)?;
    let (sqrt_price_x96, tick, liquidity, ticks) = parse_tick_state(o)?;
    let p = V4Pool::new(key, sqrt_price_x96, tick, liquidity, lp_fee, protocol_fee, &ticks)
        .map_err(|e| QuoteError::new(o.path.clone(), e.to_string()))?;
    Ok(Pool::V4(Box::new(p)))
}

/// `sqrt_price_x96`, `tick`, `liquidity` and `ticks` of a V3 or V4 pool.
fn parse_tick_state(o: &Obj<'_>) -> Result<(U256, i32, u128, Vec<TickInfo>)> {
    {
        let sqrt_price_x96 = o.uint("sqrt_price_x96")?;
        let tick: i32 = o.int("tick")?;
        let liquidity: u128 = {
            let at = o.at("liquidity");
            let s = o
                .req("liquidity")?
                .as_str()
                .ok_or_else(|| QuoteError::new(&at, "expected a decimal string"))?;
            let v = parse_u256(s).map_err(|p| QuoteError::new(&at, p))?;
            u128::try_from(v).map_err(|_| QuoteError::new(at, "exceeds uint128"))?
        };
        let ticks_v = o.req("ticks")?;
        let arr = ticks_v.as_array().ok_or_else(|| QuoteError::new(o.at("ticks"), "expected an array"))?;
        let mut ticks = Vec::with_capacity(arr.len());
        for (j, t) in arr.iter().enumerate() {
            let to = Obj::new(t, format!("{}[{j}]", o.at("ticks")))?;
            to.deny_unknown(&["index", "liquidity_net"])?;
            let index: i32 = to.int("index")?;
            let at = to.at("liquidity_net");
            let s = to
                .req("liquidity_net")?
                .as_str()
                .ok_or_else(|| QuoteError::new(&at, "expected a decimal string"))?;
            let liquidity_net = parse_i128(s).map_err(|p| QuoteError::new(at, p))?;
            ticks.push(TickInfo { index, liquidity_net });
        }
        Ok((sqrt_price_x96, tick, liquidity, ticks))
    }
}

/// A parsed `keel quote` request.
#[derive(Debug, Clone)]
struct Request {
    pools: Vec<PoolEntry>,
    sell: Address,
    buy: Address,
    amount: SwapAmount,
    limit: Option<U256>,
    gas: Option<GasPrice>,
}

fn parse_request(bytes: &[u8]) -> Result<Request> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| QuoteError::new("request", format!("invalid JSON: {e}")))?;
    let o = Obj::new(&doc, "")?;
    o.deny_unknown(TOP_FIELDS)?;
    let pools_v = o.req("pools")?.as_array().ok_or_else(|| QuoteError::new("pools", "expected an array"))?;
    if pools_v.is_empty() {
        return Err(QuoteError::new("pools", "at least one pool is required"));
    }
    let mut pools = Vec::with_capacity(pools_v.len());
    for (i, v) in pools_v.iter().enumerate() {
        let p = parse_pool(v, i)?;
        if pools.iter().any(|q: &PoolEntry| q.meta.id == p.meta.id) {
            return Err(QuoteError::new(
                format!("pools[{i}].id"),
                format!("duplicate pool id `{}`", p.meta.id),
            ));
        }
        pools.push(p);
    }
    let sell = o.address("sell")?;
    let buy = o.address("buy")?;
    if sell == buy {
        return Err(QuoteError::new("buy", "must differ from sell"));
    }
    let amount = match (o.opt_uint("amount_in")?, o.opt_uint("amount_out")?) {
        (Some(_), Some(_)) => {
            return Err(QuoteError::new(
                "amount_in",
                "give exactly one of amount_in and amount_out, not both",
            ));
        }
        (None, None) => {
            return Err(QuoteError::new("amount_in", "give exactly one of amount_in and amount_out"));
        }
        (Some(a), None) => SwapAmount::ExactIn(a),
        (None, Some(a)) => SwapAmount::ExactOut(a),
    };
    if amount.value().is_zero() {
        let k = if matches!(amount, SwapAmount::ExactIn(_)) { "amount_in" } else { "amount_out" };
        return Err(QuoteError::new(k, "must be greater than zero"));
    }
    let limit = o.opt_uint("sqrt_price_limit_x96")?;
    if limit.is_some() {
        if pools.len() != 1 {
            return Err(QuoteError::new(
                "sqrt_price_limit_x96",
                format!("allowed only with a single pool ({} given)", pools.len()),
            ));
        }
        if pools[0].pool().tick_state().is_none() {
            return Err(QuoteError::new(
                "sqrt_price_limit_x96",
                "applies to a uniswap_v3 or uniswap_v4 pool only",
            ));
        }
    }
    let gas_price = o.opt_uint("gas_price_wei")?;
    let buy_per_native = match o.opt("buy_per_native") {
        None => None,
        Some(v) => {
            let parsed = match v {
                Value::String(s) => s.trim().parse::<f64>().ok().filter(|_| !s.trim().is_empty()),
                Value::Number(n) => n.as_f64(),
                _ => None,
            };
            match parsed {
                Some(x) if x.is_finite() && x > 0.0 => Some(x),
                _ => {
                    return Err(QuoteError::new(
                        "buy_per_native",
                        "expected a positive decimal number, e.g. \"1834.5\"",
                    ));
                }
            }
        }
    };
    let buy_decimals: u8 = match o.opt("buy_decimals") {
        Some(_) => o.int("buy_decimals")?,
        None => 18,
    };
    if buy_decimals > 77 {
        return Err(QuoteError::new("buy_decimals", "must be at most 77"));
    }
    let gas = match (gas_price, buy_per_native) {
        (None, None) => None,
        (Some(_), None) => return Err(QuoteError::new("buy_per_native", "required with gas_price_wei")),
        (None, Some(_)) => return Err(QuoteError::new("gas_price_wei", "required with buy_per_native")),
        (Some(g), Some(b)) => Some(GasPrice {
            gas_price_wei: u128::try_from(g)
                .map_err(|_| QuoteError::new("gas_price_wei", "exceeds uint128"))?,
            buy_per_native: b,
            buy_decimals,
        }),
    };
    Ok(Request { pools, sell, buy, amount, limit, gas })
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

/// One pool's part of a leg.
#[derive(Debug, Serialize)]
struct HopOut {
    pool: String,
    amount_in: String,
    amount_out: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sqrt_price_x96_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tick_after: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    liquidity_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reserve0_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reserve1_after: Option<String>,
    /// Balancer / Curve: the pool's balances after the swap, in the pool's token order.
    #[serde(skip_serializing_if = "Option::is_none")]
    balances_after: Option<Vec<String>>,
}

impl HopOut {
    fn new(entry: &PoolEntry, amount_in: U256, amount_out: U256, change: &PoolChange) -> Self {
        let id = &entry.meta.id;
        let mut h = Self {
            pool: id.to_string(),
            amount_in: amount_in.to_string(),
            amount_out: amount_out.to_string(),
            sqrt_price_x96_after: None,
            tick_after: None,
            liquidity_after: None,
            reserve0_after: None,
            reserve1_after: None,
            balances_after: None,
        };
        match change {
            PoolChange::V2 { reserve0, reserve1 } => {
                h.reserve0_after = Some(reserve0.to_string());
                h.reserve1_after = Some(reserve1.to_string());
            }
            PoolChange::V3Swap { sqrt_price_x96, tick, liquidity } => {
                h.sqrt_price_x96_after = Some(sqrt_price_x96.to_string());
                h.tick_after = Some(*tick);
                h.liquidity_after = Some(liquidity.to_string());
            }
            PoolChange::Balances { .. } => {
                let mut after = entry.pool().clone();
                if after.apply(change).is_ok() {
                    h.balances_after = Some(match &after {
                        Pool::Balancer(p) => p.pool().balances().iter().map(U256::to_string).collect(),
                        Pool::Curve(p) => p.pool().balances().iter().map(U256::to_string).collect(),
                        Pool::V2 { .. } | Pool::V3(_) | Pool::V4(_) => Vec::new(),
                    });
                }
            }
            PoolChange::Snapshot(_) | PoolChange::V3Position { .. } => {}
        }
        h
    }
}

#[derive(Debug, Serialize)]
struct TwoHopOut {
    pool: String,
    pools: [String; 2],
    amount_in: String,
    amount_out: String,
    hops: [HopOut; 2],
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum LegOut {
    Single(HopOut),
    Two(Box<TwoHopOut>),
}

#[derive(Debug, Serialize)]
struct Response {
    amount_in: String,
    amount_out: String,
    gas: u64,
    legs: Vec<LegOut>,
}

fn split_error(e: SplitError, pools: &[PoolEntry], amount: SwapAmount) -> QuoteError {
    let amount_field = if matches!(amount, SwapAmount::ExactIn(_)) { "amount_in" } else { "amount_out" };
    match e {
        SplitError::ZeroAmount => QuoteError::new(amount_field, "must be greater than zero"),
        SplitError::NoRoute => QuoteError::new(
            "pools",
            "no pool with liquidity trades sell for buy (directly or through one hub)",
        ),
        SplitError::InsufficientLiquidity => {
            QuoteError::new(amount_field, "the pools cannot fill this amount")
        }
        SplitError::BadPath(i) | SplitError::Pool { pool: i, .. } if i >= pools.len() => {
            QuoteError::new("pools", e.to_string())
        }
        SplitError::BadPath(i) => {
            QuoteError::new(format!("pools[{}]", pools[i].meta.id), "does not trade the pair")
        }
        SplitError::Pool { pool, source } => pool_error(&pools[pool], *source, amount_field),
    }
}

fn pool_error(p: &PoolEntry, e: PoolError, amount_field: &str) -> QuoteError {
    let problem = format!("pool `{}`: {e}", p.meta.id);
    match e {
        PoolError::V3(crate::v3::V3Error::PriceLimit { .. }) => {
            QuoteError::new("sqrt_price_limit_x96", e.to_string())
        }
        PoolError::BadMeta(_) => QuoteError::new(format!("pools[{}]", p.meta.id), e.to_string()),
        _ => QuoteError::new(amount_field, problem),
    }
}

/// Runs one `keel quote` request; returns the response JSON (one line, no trailing newline).
pub fn run_quote(request_json: &[u8]) -> core::result::Result<String, QuoteError> {
    let req = parse_request(request_json)?;
    let pools = &req.pools;
    let amount_field = if matches!(req.amount, SwapAmount::ExactIn(_)) { "amount_in" } else { "amount_out" };
    let response = if let Some(limit) = req.limit {
        let p = &pools[0];
        let zfo = match (p.direction(req.sell), p.other(req.sell)) {
            (Some(z), Some(other)) if other == req.buy => z,
            _ => {
                return Err(QuoteError::new(
                    "pools",
                    format!("pool `{}` does not trade sell for buy", p.meta.id),
                ));
            }
        };
        let q = p.pool().swap(zfo, req.amount, Some(limit)).map_err(|e| pool_error(p, e, amount_field))?;
        Response {
            amount_in: q.amount_in.to_string(),
            amount_out: q.amount_out.to_string(),
            gas: p.meta.gas,
            legs: vec![LegOut::Single(HopOut::new(p, q.amount_in, q.amount_out, &q.change))],
        }
    } else {
        let paths = split::candidate_paths(pools, req.sell, req.buy, true);
        let per_gas = req.gas.map_or(0.0, |g| g.buy_units_per_gas());
        let s = split::split(pools, &paths, req.amount, per_gas)
            .map_err(|e| split_error(e, pools, req.amount))?;
        let legs = s
            .legs
            .iter()
            .map(|l| {
                let hop = |h: &split::LegHop| {
                    HopOut::new(&pools[h.hop.pool], h.quote.amount_in, h.quote.amount_out, &h.quote.change)
                };
                match &l.second {
                    None => LegOut::Single(hop(&l.first)),
                    Some(second) => {
                        let (a, b) =
                            (pools[l.first.hop.pool].meta.id.clone(), pools[second.hop.pool].meta.id.clone());
                        LegOut::Two(Box::new(TwoHopOut {
                            pool: format!("{a}>{b}"),
                            pools: [a, b],
                            amount_in: l.amount_in.to_string(),
                            amount_out: l.amount_out.to_string(),
                            hops: [hop(&l.first), hop(second)],
                        }))
                    }
                }
            })
            .collect();
        Response {
            amount_in: s.amount_in.to_string(),
            amount_out: s.amount_out.to_string(),
            gas: s.gas,
            legs,
        }
    };
    serde_json::to_string(&response).map_err(|e| QuoteError::new("response", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_parsers_are_strict() {
        assert!(parse_u256("123").is_ok());
        for bad in ["", "-1", "+1", "1e18", "0x10", " 1", "1.0"] {
            assert!(parse_u256(bad).is_err(), "{bad}");
        }
        assert!(parse_u256(&"9".repeat(80)).is_err());
        assert_eq!(parse_i128("-42"), Ok(-42));
        assert!(parse_i128("-").is_err());
    }

    #[test]
    fn errors_are_one_line() {
        let e = run_quote(b"{not json").unwrap_err();
        assert_eq!(e.field, "request");
        assert!(!e.to_string().contains('\n'));
    }

    fn v4_request(hooks: &str, amount_in: &str) -> String {
        let l = "1000000000000000000000";
        format!(
            r#"{{"pools": [{{"id": "v4", "kind": "uniswap_v4",
                "token0": "0x0000000000000000000000000000000000000000",
                "token1": "0x1111111111111111111111111111111111111111",
                "fee": 3000, "tick_spacing": 60, "hooks": "{hooks}",
                "sqrt_price_x96": "79228162514264337593543950336", "tick": 0, "liquidity": "{l}",
                "ticks": [{{"index": -600, "liquidity_net": "{l}"}}, {{"index": 600, "liquidity_net": "-{l}"}}]}}],
              "sell": "0x0000000000000000000000000000000000000000",
              "buy": "0x1111111111111111111111111111111111111111", "amount_in": "{amount_in}"}}"#
        )
    }

    /// A hookless V4 pool with native ETH as currency0 quotes what the V4 pool model swaps.
    #[test]
    fn uniswap_v4_pools_quote_through_the_pool_model() {
        let answer = run_quote(
            v4_request("0x0000000000000000000000000000000000000000", "1000000000000000").as_bytes(),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&answer).unwrap();
        let key = crate::v4::PoolKey {
            currency0: Address::ZERO,
            currency1: Address::repeat_byte(0x11),
            fee: 3000,
            tick_spacing: 60,
            hooks: Address::ZERO,
        };
        let l = 10u128.pow(21);
        let ticks = [
            TickInfo { index: -600, liquidity_net: l as i128 },
            TickInfo { index: 600, liquidity_net: -(l as i128) },
        ];
        let sqrt = U256::from(1u8) << 96usize;
        let pool = Pool::V4(Box::new(crate::v4::V4Pool::new(key, sqrt, 0, l, 3000, 0, &ticks).unwrap()));
        let q = pool.quote_exact_in(true, U256::from(10u64.pow(15))).unwrap();
        assert_eq!(v["amount_out"], Value::String(q.amount_out.to_string()));
        assert!(v["legs"][0]["sqrt_price_x96_after"].is_string(), "{answer}");
    }

    /// A hook with `afterSwapReturnDelta` (bits 6 and 2 of its address) is refused by name.
    #[test]
    fn uniswap_v4_pools_with_swap_delta_hooks_are_refused() {
        let e = run_quote(v4_request("0x4242424242424242424242424242424242420044", "1000").as_bytes())
            .unwrap_err();
        assert_eq!(e.field, "pools[v4]");
        assert!(e.problem.contains("afterSwapReturnDelta"), "{e}");
    }
}
