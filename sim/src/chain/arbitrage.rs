//! The arbitrageur: after each block's transactions it trades every pool toward the reference
//! prices on the board.

#[allow(unused_imports)]
use super::*;

/// Lossless-enough conversion of a reserve to `f64` (analytics and the arbitrageur's sizing only).
pub(super) fn to_f64(x: U256) -> f64 {
    f64::from(x)
}

/// The arbitrageur: trades `pool` until its mid is at the edge of the fee band around the reference
/// price (the profit-maximising size), with exact V2 math. Returns whether it traded.
pub(crate) fn arbitrage_pool(
    u: &Universe,
    st: &mut State,
    board: &PriceBoard,
    pool: usize,
    timestamp: u64,
) -> bool {
    let p = &u.pools[pool];
    let price = |t: usize| match u.tokens[t].price {
        RefPrice::Board(i) => Some(board.mid(i)),
        RefPrice::Fixed(f) => Some(f),
        RefPrice::None => None,
    };
    let (Some(p0), Some(p1)) = (price(p.token0), price(p.token1)) else {
        return false;
    };
    if !(p0 > 0.0 && p1 > 0.0 && p0.is_finite() && p1.is_finite()) {
        return false;
    }
    let (d0, d1) = (u.tokens[p.token0].decimals as i32, u.tokens[p.token1].decimals as i32);
    // Reference price of token0 in raw token1 units per raw token0 unit.
    let target = p0 / p1 * 10f64.powi(d1 - d0);
    let (r0, r1) = st.reserves[pool];
    let (f0, f1) = (to_f64(r0), to_f64(r1));
    if f0 <= 0.0 || f1 <= 0.0 {
        return false;
    }
    let gamma = 1.0 - p.fee_bps as f64 / 10_000.0;
    let mid = f1 / f0;
    // Optimal input x of token `in` against reference price P (in-units per out-unit):
    // x = (sqrt(γ·r_in·r_out·P) − r_in) / γ
    let (in_is_0, x) = if mid < target * gamma {
        (false, ((gamma * f1 * f0 * target).sqrt() - f1) / gamma)
    } else if mid > target / gamma {
        (true, ((gamma * f0 * f1 / target).sqrt() - f0) / gamma)
    } else {
        return false;
    };
    if !(x.is_finite() && x >= 1.0 && x < u128::MAX as f64) {
        return false;
    }
    let a_in = U256::from(x as u128);
    let (rin, rout) = if in_is_0 { (r0, r1) } else { (r1, r0) };
    let Ok(a_out) = v2::get_amount_out(a_in, rin, rout, p.fee_bps) else {
        return false;
    };
    if a_out.is_zero() || a_out >= rout || rin + a_in > max_reserve() {
        return false;
    }
    st.reserves[pool] = if in_is_0 { (rin + a_in, rout - a_out) } else { (rout - a_out, rin + a_in) };
    st.reserve_ts[pool] = timestamp as u32;
    true
}
