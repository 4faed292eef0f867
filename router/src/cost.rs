//! The cost of a rebalance in money: one function for the decision and for the report, computed on
//! the exact routes that the transactions are built from, so the number that decides a trade is the
//! number that executes it.
//!
//! For each routed leg (an [`OrderRoute`] of `amount_in` sold at the reference price `p`, raw bought
//! units per raw sold unit):
//!
//! * its fair output is `amount_in × p`, worth the leg's notional `N` in the numeraire, so one raw
//!   bought unit is worth `N / (amount_in × p)`;
//! * **pool fees**: each fill pays `1 − Π(1 − fee_hop)` of its input, valued at its share of `N`;
//! * **price impact**: the rest of the shortfall `amount_in × p − amount_out` (the route's slippage
//!   against the reference mid, fees excluded);
//! * **gas**: the route's gas units × the gas price, in the native token (wei → ETH) and, through the
//!   bought token's price in wei (or the native token's reference price), in the numeraire.
//!
//! The cost is an estimate of what the bundle will pay only in one respect: gas is priced at the
//! price offered (base fee + tip, the cap the transactions carry is higher).

use keel_amm::pool::PoolEntry;
use keel_engine::value::ValueInputs;

use crate::plan::OrderRoute;

/// Wei per native token.
const WEI_PER_NATIVE: f64 = 1e18;

/// What executing a set of routes costs, in the numeraire unless named otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct RebalanceCost {
    /// Gas units of the swaps (approvals excluded).
    pub gas_units: u64,
    /// Gas in the native token (ETH), at the price offered.
    pub gas_native: f64,
    /// Gas in the numeraire (0 when no price of the native token is known).
    pub gas: f64,
    /// Pool fees.
    pub pool_fees: f64,
    /// Price impact against the reference mid, fees excluded (negative when a pool pays better
    /// than the reference).
    pub impact: f64,
    /// Notional traded.
    pub notional: f64,
    /// Notional crossed internally against other portfolios of the same batch (part of `notional`;
    /// no pool fee, no impact, one transfer's gas).
    pub crossed: f64,
    /// What netting saved: the cost of routing each rebalance alone on the same pool state, minus
    /// its cost in the batch (negative when a batch's earlier swaps left a worse price).
    pub saved: f64,
}

impl RebalanceCost {
    /// Gas + fees + impact.
    pub fn total(&self) -> f64 {
        self.gas + self.pool_fees + self.impact
    }

    /// Adds another leg's cost.
    pub fn add(&mut self, o: &RebalanceCost) {
        self.gas_units = self.gas_units.saturating_add(o.gas_units);
        self.gas_native += o.gas_native;
        self.gas += o.gas;
        self.pool_fees += o.pool_fees;
        self.impact += o.impact;
        self.notional += o.notional;
        self.crossed += o.crossed;
        self.saved += o.saved;
    }

    /// Takes back a cost added before (a batch re-planned as another rebalance joined it).
    pub fn sub(&mut self, o: &RebalanceCost) {
        self.gas_units = self.gas_units.saturating_sub(o.gas_units);
        self.gas_native -= o.gas_native;
        self.gas -= o.gas;
        self.pool_fees -= o.pool_fees;
        self.impact -= o.impact;
        self.notional -= o.notional;
        self.crossed -= o.crossed;
        self.saved -= o.saved;
    }
}

/// The cost of one routed leg of notional `notional`; `gas_price_wei` is the price offered per gas
/// and `native_value` the numeraire value of one native token, when known (used when the route
/// could not price its gas in the bought token).
pub fn leg_cost(
    pools: &[PoolEntry],
    route: &OrderRoute,
    notional: f64,
    gas_price_wei: u128,
    native_value: Option<f64>,
) -> RebalanceCost {
    let amount_in = f64::from(route.amount_in);
    let fair = amount_in * route.cost.price;
    let per_raw_buy = if fair > 0.0 && fair.is_finite() { notional / fair } else { 0.0 };
    let gas_native = route.gas as f64 * gas_price_wei as f64 / WEI_PER_NATIVE;
    let gas = if route.cost.gas > 0.0 {
        route.cost.gas * per_raw_buy
    } else {
        native_value.filter(|v| v.is_finite() && *v > 0.0).map_or(0.0, |v| gas_native * v)
    };
    let mut pool_fees = 0.0;
    if amount_in > 0.0 {
        for fill in &route.fills {
            let keep: f64 = fill
                .pools
                .iter()
                .filter_map(|&p| pools.get(p))
                .map(|e| 1.0 - e.pool().fee_fraction())
                .product();
            pool_fees += f64::from(fill.amount_in) / amount_in * notional * (1.0 - keep);
        }
    }
    let slippage = route.cost.slippage * per_raw_buy;
    RebalanceCost {
        gas_units: route.gas,
        gas_native,
        gas,
        pool_fees,
        impact: slippage - pool_fees,
        notional,
        ..Default::default()
    }
}

/// A cost-aware rebalance's size: the fraction of the to-target trade, what it is worth and what it
/// costs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SizeDecision {
    /// Fraction of the to-target trade (each leg's `amount_in` scaled by it).
    pub fraction: f64,
    /// Tracking-error value of trading that fraction, numeraire.
    pub value: f64,
    /// Its exact cost.
    pub cost: RebalanceCost,
}

/// No size of the trade pays for itself: the full trade's value and cost, and the best net seen.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "not worth it: the full trade is worth {value:.4} and costs {cost:.4} (needs value ≥ cost × {need:.2}); \
     best fraction {best_fraction} nets {best_net:.4}"
)]
pub struct NotWorthIt {
    /// Value of the full trade.
    pub value: f64,
    /// Cost of the full trade (`f64::INFINITY` when it could not be routed).
    pub cost: f64,
    /// `1 + margin`.
    pub need: f64,
    /// The fraction with the best value − cost.
    pub best_fraction: f64,
    /// Its value − cost.
    pub best_net: f64,
}

/// Chooses the size of a cost-aware rebalance: prices every fraction in `inputs.sizes` with
/// `price(f)` (the exact cost of the legs scaled by `f`, `None` when they cannot be routed) and
/// returns the one that maximises value − cost among those whose value ≥ cost × (1 + margin).
pub fn choose_size(
    inputs: &ValueInputs,
    mut price: impl FnMut(f64) -> Option<RebalanceCost>,
) -> Result<SizeDecision, NotWorthIt> {
    let mut best: Option<SizeDecision> = None;
    let mut best_any = (f64::NAN, f64::NEG_INFINITY);
    let mut full = (inputs.value_of(1.0), f64::INFINITY);
    for &f in &inputs.sizes {
        let Some(cost) = price(f) else { continue };
        let value = inputs.value_of(f);
        let net = value - cost.total();
        if (f - 1.0).abs() < 1e-12 {
            full = (value, cost.total());
        }
        if net > best_any.1 {
            best_any = (f, net);
        }
        if inputs.pays(value, cost.total()) && best.is_none_or(|b| net > b.value - b.cost.total()) {
            best = Some(SizeDecision { fraction: f, value, cost });
        }
    }
    best.ok_or(NotWorthIt {
        value: full.0,
        cost: full.1,
        need: 1.0 + inputs.margin,
        best_fraction: best_any.0,
        best_net: best_any.1,
    })
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, U256};
    use keel_amm::pool::{Pool, PoolMeta, SwapAmount};

    use super::*;
    use crate::plan::{GasPricing, Guards, route_order};

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
    }

    #[test]
    fn fees_impact_and_gas_add_up_to_the_shortfall_against_the_reference() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let meta =
            PoolMeta { id: "p".into(), address: Address::ZERO, token0: a, token1: b, gas: 100_000, venue: 0 };
        let pools = vec![
            PoolEntry::new(meta, Pool::V2 { reserve0: e18(1000), reserve1: e18(1000), fee_bps: 30 }).unwrap(),
        ];
        // sell 10 A at a reference of 1 B per A; 1 B = 1 wei of native per raw unit? use 1e-3 native per B
        let gas = GasPricing { gas_price_wei: 10_000_000_000 }; // 10 gwei
        let buy_per_native = Some(1e3 / 1.0); // raw B per wei: 1 ETH = 1000 B
        let guards = Guards { reference_price: Some(1.0), ..Guards::default() };
        let route =
            route_order(&pools, a, b, SwapAmount::ExactIn(e18(10)), &gas, buy_per_native, &guards).unwrap();
        // notional: 10 B worth 2000 numeraire (1 B = 200)
        let c = leg_cost(&pools, &route, 2000.0, gas.gas_price_wei, None);
        assert!((c.pool_fees - 6.0).abs() < 1e-9, "{c:?}"); // 0.3% of 2000
        // constant product: out = 10×0.997×1000/(1000+9.97) = 9.8715…; shortfall 0.1285 B = 25.7
        let shortfall = (10.0 - f64::from(route.amount_out) / 1e18) * 200.0;
        assert!((c.pool_fees + c.impact - shortfall).abs() < 1e-6, "{c:?} {shortfall}");
        assert!(c.impact > 0.0);
        // gas: 100k × 10 gwei = 0.001 ETH = 1 B = 200 numeraire
        assert!((c.gas_native - 0.001).abs() < 1e-12);
        assert!((c.gas - 200.0).abs() < 1e-6, "{c:?}");
        assert!((c.total() - (c.gas + shortfall)).abs() < 1e-6);
        // without a gas price in the bought token, the native token's value prices it
        let route0 = route_order(&pools, a, b, SwapAmount::ExactIn(e18(10)), &gas, None, &guards).unwrap();
        let c0 = leg_cost(&pools, &route0, 2000.0, gas.gas_price_wei, Some(3000.0));
        assert!((c0.gas - 3.0).abs() < 1e-9, "{c0:?}");
    }

    fn inputs(penalty: f64, margin: f64) -> ValueInputs {
        // κ V H var = penalty with κ = 1, V = 1, H = 1
        ValueInputs {
            tracking_var_per_s: penalty,
            portfolio_value: 1.0,
            kappa: 1.0,
            horizon_secs: 1.0,
            margin,
            sizes: vec![0.25, 0.5, 0.75, 1.0],
        }
    }

    /// A cost that grows faster than linearly with size (fixed gas + convex impact).
    fn convex(f: f64) -> RebalanceCost {
        RebalanceCost { gas: 1.0, impact: 40.0 * f * f, ..RebalanceCost::default() }
    }

    #[test]
    fn the_size_that_maximises_value_minus_cost_is_chosen_and_the_last_part_may_not_pay() {
        // value(f) = 100 (1 − (1−f)²): 43.75, 75, 93.75, 100; cost 1 + 40 f²: 3.5, 11, 23.5, 41
        // nets 40.25, 64, 70.25, 59: the last quarter costs 17.5 and buys only 6.25
        let d = choose_size(&inputs(100.0, 0.0), |f| Some(convex(f))).unwrap();
        assert_eq!(d.fraction, 0.75, "{d:?}");
        assert_eq!(d.value, 93.75);
        assert_eq!(d.cost.total(), 23.5);
        // with a cheaper, linear impact the whole trade pays best
        let d = choose_size(&inputs(100.0, 0.0), |f| {
            Some(RebalanceCost { impact: 10.0 * f, ..Default::default() })
        })
        .unwrap();
        assert_eq!(d.fraction, 1.0);
    }

    #[test]
    fn a_trade_whose_cost_exceeds_its_value_is_refused_with_both_numbers() {
        let e = choose_size(&inputs(10.0, 0.0), |f| {
            Some(RebalanceCost { gas: 30.0, impact: f, ..Default::default() })
        })
        .unwrap_err();
        assert_eq!(e.value, 10.0);
        assert_eq!(e.cost, 31.0);
        assert!(e.to_string().contains("worth 10.0000 and costs 31.0000"), "{e}");
        // a margin turns a marginal trade away too
        let ok = choose_size(&inputs(10.0, 0.0), |_| Some(RebalanceCost { gas: 5.0, ..Default::default() }));
        assert!(ok.is_ok());
        let refused =
            choose_size(&inputs(10.0, 1.5), |_| Some(RebalanceCost { gas: 5.0, ..Default::default() }));
        assert!(refused.is_err());
        // nothing routable: refused, the cost infinite
        let e = choose_size(&inputs(10.0, 0.0), |_| None).unwrap_err();
        assert!(e.cost.is_infinite());
    }
}
