//! What the chain looked like at one head, as the router saw it: the base fee, and per pool its
//! mid price, a liquidity measure and the oracle guard's refusals so far. The router stage
//! publishes one per head (a lock and a small copy per block, off the tick path) for the kill
//! switch's chain watches, which run on another thread.

use keel_amm::pool::Pool;

use crate::exec::Executor;

/// Most head views kept waiting for the watches; older ones are dropped and counted.
pub const MAX_HEAD_VIEWS: usize = 256;

/// One pool at one head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolView {
    /// Raw token1 per raw token0, before fees; `None` before the pool's state is known.
    pub mid: Option<f64>,
    /// `√(reserve0 · reserve1)` for a V2 pool, the active liquidity `L` for a V3 pool (both in
    /// raw units: comparable across heads of one pool, not across pools); `None` when unknown.
    pub liquidity: Option<f64>,
    /// The oracle guard's refusals of this pool so far, all reasons.
    pub guard_refusals: u64,
}

/// The chain at one head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadView {
    /// Block number.
    pub block: u64,
    /// Its base fee, wei.
    pub base_fee_wei: u128,
    /// Every configured pool, in config order.
    pub pools: Vec<PoolView>,
}

impl HeadView {
    /// The view of `exec`'s pools at head `block`.
    pub fn of(exec: &Executor, block: u64, base_fee_wei: u128) -> Self {
        let refusals: Vec<u64> = exec.oracle().counts().per_pool().collect();
        let pools = exec
            .pools()
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let ready = exec.is_pool_ready(i);
                PoolView {
                    mid: ready.then(|| entry.pool().mid_price()).filter(|m| m.is_finite() && *m > 0.0),
                    liquidity: if ready { liquidity(entry.pool()) } else { None },
                    guard_refusals: refusals.get(i).copied().unwrap_or(0),
                }
            })
            .collect();
        Self { block, base_fee_wei, pools }
    }
}

/// The liquidity measure of [`PoolView::liquidity`].
fn liquidity(pool: &Pool) -> Option<f64> {
    if let Pool::V2 { reserve0, reserve1, .. } = pool {
        Some((f64::from(*reserve0) * f64::from(*reserve1)).sqrt())
    } else if let Pool::V3(p) = pool {
        Some(p.liquidity as f64)
    } else {
        None
    }
}
