//! Shared fixtures: tokens, V2 and V3 pools, and a deterministic generator of mixed pool sets
//! (also used by `benches/split.rs`).
#![allow(dead_code, unreachable_pub)]

use alloy_primitives::{Address, U256};
use keel_amm::pool::{Pool, PoolEntry, PoolMeta};
use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
use keel_amm::v3::{TickInfo, V3Pool};

/// Sold token of most tests (token0 of the A/B pools).
pub const A: Address = Address::repeat_byte(0x11);
/// Bought token.
pub const B: Address = Address::repeat_byte(0x22);
/// Hub token.
pub const H: Address = Address::repeat_byte(0x33);

pub fn v2(id: &str, t0: Address, t1: Address, r0: U256, r1: U256, gas: u64) -> PoolEntry {
    let meta = PoolMeta { id: id.into(), address: Address::ZERO, token0: t0, token1: t1, gas, venue: 0 };
    PoolEntry::new(meta, Pool::V2 { reserve0: r0, reserve1: r1, fee_bps: 30 }).expect("v2 fixture")
}

/// A V3 pool at `tick` (price exactly on it) with the given positions `(lower, upper, liquidity)`.
pub fn v3_pool(fee: u32, spacing: i32, tick: i32, positions: &[(i32, i32, u128)]) -> V3Pool {
    let mut nets: Vec<TickInfo> = Vec::new();
    let mut liquidity = 0u128;
    for &(lo, hi, l) in positions {
        for (t, d) in [(lo, l as i128), (hi, -(l as i128))] {
            match nets.iter_mut().find(|x| x.index == t) {
                Some(x) => x.liquidity_net += d,
                None => nets.push(TickInfo { index: t, liquidity_net: d }),
            }
        }
        if lo <= tick && tick < hi {
            liquidity += l;
        }
    }
    let sqrt = get_sqrt_ratio_at_tick(tick).expect("tick in range");
    V3Pool::new(fee, spacing, sqrt, tick, liquidity, &nets).expect("v3 fixture")
}

pub fn v3(id: &str, t0: Address, t1: Address, pool: V3Pool, gas: u64) -> PoolEntry {
    let meta = PoolMeta { id: id.into(), address: Address::ZERO, token0: t0, token1: t1, gas, venue: 1 };
    PoolEntry::new(meta, Pool::V3(pool)).expect("v3 fixture")
}

/// Small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

pub fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// `n` pools of the A/B pair, alternating V2 and V3 (starting with `first_v3`), mids within about
/// ±0.2% of 1 (so sizeable orders split), depths over two orders of magnitude; each V3 pool has about `ticks` initialized ticks
/// (half as many positions) spread around its price.
pub fn mixed_pools(seed: u64, n: usize, ticks: usize, first_v3: bool) -> Vec<PoolEntry> {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut pools = Vec::with_capacity(n);
    for i in 0..n {
        let tick = rng.range(-20, 20) as i32;
        let depth = rng.range(1, 100) as u128;
        if (i % 2 == 0) == first_v3 {
            let (fee, spacing) = [(500, 10), (3000, 60), (10_000, 200)][rng.range(0, 3) as usize];
            let center = tick - tick.rem_euclid(spacing);
            let mut positions = Vec::with_capacity(ticks / 2);
            for _ in 0..(ticks / 2).max(1) {
                let lo = center - spacing * rng.range(1, 400) as i32;
                let hi = center + spacing * rng.range(1, 400) as i32;
                let l = depth * 10u128.pow(19) * rng.range(1, 20) as u128;
                positions.push((lo, hi, l));
            }
            pools.push(v3(&format!("v3-{i}"), A, B, v3_pool(fee, spacing, center, &positions), 130_000));
        } else {
            let r0 = U256::from(depth) * e18(1_000);
            let price = 1.0001f64.powi(tick);
            let r1 = U256::from((depth as f64 * 1_000.0 * price * 1e6) as u128)
                * U256::from(10u64).pow(U256::from(12u8));
            pools.push(v2(&format!("v2-{i}"), A, B, r0, r1, 90_000));
        }
    }
    pools
}
