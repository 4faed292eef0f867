//! Netting of a batch: legs of different portfolios that trade one pair in opposite directions cross
//! at the reference mid, as two ERC-20 transfers between their accounts; only what is left of each
//! leg (its residual) goes to the pools.
//!
//! Amounts are integers end to end. The reference price of a pair is held as a fixed-point ratio
//! oriented so that it is ≥ 1 (raw units of the cheap token per raw unit of the dear one, scaled by
//! 10¹⁸), so its relative precision is at least 10⁻¹⁸ whatever the tokens' decimals. A cross of
//! `b` raw units of the dear token pays `⌊b × ratio / 10¹⁸⌋` of the cheap one: rounding always
//! favours the side that gives the dear token by less than one raw unit of the cheap one.
//!
//! Matching is greedy in batch order (the order portfolios joined), so it is deterministic. Every
//! match consumes one of its two legs entirely, so each cross removes a swap (a Uniswap swap costs
//! more gas than the two transfers that replace it) and saves the pool fee and price impact of the
//! crossed amount on both sides. A residual below one millionth of its leg (rounding dust of a
//! cross) is not traded.

use alloy::primitives::{Address, U256};
use keel_amm::v3::full_math::mul_div;

/// Fixed-point scale of a pair's price ratio.
const RATIO_ONE: u128 = 1_000_000_000_000_000_000;
/// A residual below `amount_in / DUST_DIVISOR` is rounding dust of a cross and is not traded.
const DUST_DIVISOR: u64 = 1_000_000;

/// One leg of one member of a batch, as netting sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct NetLeg {
    /// Index of the member in the batch.
    pub member: usize,
    /// Token sold.
    pub sell: Address,
    /// Token bought.
    pub buy: Address,
    /// Raw amount sold (already scaled to the member's chosen size).
    pub amount_in: U256,
    /// Reference price, raw `buy` per raw `sell`.
    pub price: f64,
    /// Notional of the whole leg, numeraire.
    pub notional: f64,
}

/// One internal cross: `seller` gives `sold` of its leg's sell token to `buyer`, which gives `paid`
/// of the other token back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cross {
    /// Leg index (into the netting input) whose sell token is given first.
    pub seller: usize,
    /// Leg index trading the opposite way.
    pub buyer: usize,
    /// Raw amount of `legs[seller].sell` moved from the seller's account to the buyer's.
    pub sold: U256,
    /// Raw amount of `legs[buyer].sell` moved from the buyer's account to the seller's.
    pub paid: U256,
    /// Notional crossed, numeraire (each side's share of its leg's notional, averaged).
    pub notional: f64,
}

/// What netting leaves: the crosses and, per leg, the raw amount still to route through pools.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Netting {
    /// Internal crosses, in matching order.
    pub crosses: Vec<Cross>,
    /// Per input leg: the amount left for the pools (0 when fully crossed).
    pub residual: Vec<U256>,
}

#[cfg(test)]
impl Netting {
    /// The amount of leg `k` crossed internally.
    fn crossed(&self, legs: &[NetLeg], k: usize) -> U256 {
        legs[k].amount_in.saturating_sub(self.residual[k])
    }
}

/// Nets `legs`: crosses every pair's opposite legs as far as they go.
pub(super) fn net(legs: &[NetLeg]) -> Netting {
    let mut out = Netting { crosses: Vec::new(), residual: legs.iter().map(|l| l.amount_in).collect() };
    let mut done_pairs: Vec<(Address, Address)> = Vec::new();
    for first in 0..legs.len() {
        let (a, b) = (legs[first].sell, legs[first].buy);
        let pair = if a < b { (a, b) } else { (b, a) };
        if a == b || done_pairs.contains(&pair) {
            continue;
        }
        done_pairs.push(pair);
        let Some(ratio) = pair_ratio(legs, pair) else { continue };
        // `dear` sellers give the token with the larger raw value.
        let (dear, cheap) = (ratio.dear, ratio.cheap);
        let sellers: Vec<usize> =
            (0..legs.len()).filter(|&k| legs[k].sell == dear && legs[k].buy == cheap).collect();
        let buyers: Vec<usize> =
            (0..legs.len()).filter(|&k| legs[k].sell == cheap && legs[k].buy == dear).collect();
        cross_pair(legs, &sellers, &buyers, ratio.fixed, &mut out);
    }
    for (k, leg) in legs.iter().enumerate() {
        let dust = leg.amount_in / U256::from(DUST_DIVISOR);
        if out.residual[k] < leg.amount_in && out.residual[k] <= dust {
            out.residual[k] = U256::ZERO;
        }
    }
    out
}

/// A pair's reference price as a fixed-point ratio ≥ 1.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    /// The token whose raw unit is worth more.
    dear: Address,
    /// The other one.
    cheap: Address,
    /// Raw `cheap` per raw `dear`, × 10¹⁸.
    fixed: U256,
}

/// The pair's price from the last leg (in batch order) that trades it: the newest reference.
fn pair_ratio(legs: &[NetLeg], pair: (Address, Address)) -> Option<Ratio> {
    let leg = legs.iter().rev().find(|l| (l.sell, l.buy) == pair || (l.buy, l.sell) == pair)?;
    if !(leg.price.is_finite() && leg.price > 0.0) {
        return None;
    }
    let (dear, cheap, p) =
        if leg.price >= 1.0 { (leg.sell, leg.buy, leg.price) } else { (leg.buy, leg.sell, 1.0 / leg.price) };
    let scaled = p * RATIO_ONE as f64;
    // Beyond u128 the pair's raw units differ by more than 10²⁰: no cross (routed as usual).
    if !(scaled.is_finite() && scaled < u128::MAX as f64) {
        return None;
    }
    Some(Ratio { dear, cheap, fixed: U256::from(scaled as u128) })
}

/// Greedy matching of one pair's opposite legs, in batch order.
fn cross_pair(legs: &[NetLeg], sellers: &[usize], buyers: &[usize], ratio: U256, out: &mut Netting) {
    let one = U256::from(RATIO_ONE);
    let (mut i, mut j) = (0, 0);
    while i < sellers.len() && j < buyers.len() {
        let (s, b) = (sellers[i], buyers[j]);
        if legs[s].member == legs[b].member {
            // One portfolio never trades a pair both ways; if it did, it does not cross with itself.
            j += 1;
            continue;
        }
        let (have_dear, have_cheap) = (out.residual[s], out.residual[b]);
        let cheap_in_dear = mul_div(have_cheap, one, ratio).unwrap_or(U256::ZERO);
        let sold = have_dear.min(cheap_in_dear);
        if sold.is_zero() {
            if have_dear.is_zero() {
                i += 1;
            } else {
                j += 1;
            }
            continue;
        }
        // ⌊sold × ratio⌋ ≤ have_cheap, because sold ≤ ⌊have_cheap / ratio⌋.
        let paid = mul_div(sold, ratio, one).unwrap_or(U256::ZERO).min(have_cheap);
        let notional = (share(legs[s].notional, sold, legs[s].amount_in)
            + share(legs[b].notional, paid, legs[b].amount_in))
            / 2.0;
        out.residual[s] = have_dear - sold;
        out.residual[b] = have_cheap - paid;
        out.crosses.push(Cross { seller: s, buyer: b, sold, paid, notional });
        if out.residual[s].is_zero() {
            i += 1;
        }
        if sold == cheap_in_dear {
            j += 1;
        }
    }
}

/// `notional × part / whole`.
fn share(notional: f64, part: U256, whole: U256) -> f64 {
    if whole.is_zero() { 0.0 } else { notional * (f64::from(part) / f64::from(whole)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USDC: Address = Address::repeat_byte(0x10);
    const WETH: Address = Address::repeat_byte(0x20);
    const WBTC: Address = Address::repeat_byte(0x30);

    fn e18(x: f64) -> U256 {
        U256::from((x * 1e18) as u128)
    }
    fn e6(x: f64) -> U256 {
        U256::from((x * 1e6) as u128)
    }
    fn close(a: U256, b: U256) -> bool {
        a.max(b) - a.min(b) < U256::from(1_000u64)
    }
    /// Sell WETH for USDC at 3000.
    fn sell_weth(member: usize, weth: f64) -> NetLeg {
        NetLeg {
            member,
            sell: WETH,
            buy: USDC,
            amount_in: e18(weth),
            price: 3000e6 / 1e18,
            notional: weth * 3000.0,
        }
    }
    /// Sell USDC for WETH at 3000.
    fn buy_weth(member: usize, usdc: f64) -> NetLeg {
        NetLeg { member, sell: USDC, buy: WETH, amount_in: e6(usdc), price: 1e18 / 3000e6, notional: usdc }
    }

    #[test]
    fn opposite_legs_cross_at_the_mid_and_leave_the_residual() {
        let legs = [sell_weth(0, 2.0), buy_weth(1, 3000.0)];
        let n = net(&legs);
        assert_eq!(n.crosses.len(), 1);
        let c = n.crosses[0];
        // USDC's raw unit is the dear one (1 raw USDC = 10^12/3000 raw WETH).
        assert_eq!((legs[c.seller].sell, legs[c.buyer].sell), (USDC, WETH));
        assert_eq!(c.sold, e6(3000.0), "all of the buyer's USDC crosses");
        // The mid is an f64: exact to its 53 bits (≈1e-16), so to within a few hundred wei of 1e18.
        assert!(close(c.paid, e18(1.0)), "one WETH at the mid: {}", c.paid);
        assert_eq!(c.paid + n.residual[0], legs[0].amount_in, "the WETH leg keeps the rest");
        assert_eq!(n.residual[1], U256::ZERO);
        assert!((c.notional - 3000.0).abs() < 1e-6);
    }

    #[test]
    fn amounts_never_exceed_what_a_leg_sells_and_rounding_dust_is_dropped() {
        // An awkward price: the cheap side pays ⌊sold × ratio⌋, never more than it has.
        let mut a = sell_weth(0, 1.234_567_891_234_567);
        a.price = 2_999.123_456_789e6 / 1e18;
        let mut b = buy_weth(1, 1_234.567_891);
        b.price = 1.0 / a.price;
        let legs = [a, b];
        let n = net(&legs);
        for c in &n.crosses {
            assert!(c.sold <= legs[c.seller].amount_in && c.paid <= legs[c.buyer].amount_in);
        }
        for k in 0..2 {
            assert_eq!(n.crossed(&legs, k) + n.residual[k], legs[k].amount_in, "leg {k} is conserved");
        }
        // The USDC leg is the smaller one: crossed whole (its sub-unit remainder is dust).
        assert_eq!(n.residual[1], U256::ZERO);
        assert!(n.residual[0] > U256::ZERO);
    }

    #[test]
    fn many_members_match_in_batch_order() {
        let legs = [
            sell_weth(0, 1.0),
            sell_weth(1, 1.0),
            buy_weth(2, 4500.0),
            NetLeg { member: 3, ..buy_weth(3, 0.0) },
        ];
        let n = net(&legs);
        // 4500 USDC buys 1.5 WETH: all of member 0's, half of member 1's.
        assert_eq!(n.residual[0], U256::ZERO);
        assert!(close(n.residual[1], e18(0.5)), "{}", n.residual[1]);
        assert_eq!(n.residual[2], U256::ZERO);
        let paid_weth: U256 = n.crosses.iter().map(|c| c.paid).fold(U256::ZERO, |s, x| s + x);
        assert!(close(paid_weth, e18(1.5)));
        // What is neither crossed nor left for the pools is dust below a millionth of a leg.
        assert!(close(paid_weth + n.residual[1], e18(2.0)) && paid_weth + n.residual[1] <= e18(2.0));
    }

    #[test]
    fn same_direction_or_other_pairs_do_not_cross() {
        let other = NetLeg {
            member: 1,
            sell: USDC,
            buy: WBTC,
            amount_in: e6(1000.0),
            price: 1e8 / 60_000e6,
            notional: 1000.0,
        };
        let legs = [sell_weth(0, 1.0), sell_weth(1, 1.0), other];
        let n = net(&legs);
        assert!(n.crosses.is_empty());
        assert_eq!(n.residual, legs.iter().map(|l| l.amount_in).collect::<Vec<_>>());
    }

    #[test]
    fn one_member_does_not_cross_with_itself() {
        let legs = [sell_weth(0, 1.0), buy_weth(0, 3000.0)];
        assert!(net(&legs).crosses.is_empty());
    }
}
