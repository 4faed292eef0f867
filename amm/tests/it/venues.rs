//! The split across every venue kind at once: Uniswap V2, V3, Balancer weighted and Curve
//! StableSwap pools of one pair, each with its own gas, against every single venue exactly.

use alloy_primitives::{Address, U256};
use keel_amm::balancer::{PowFlavour, WeightedPool};
use keel_amm::curve::{AmpRamp, FACTORY_ADMIN_FEE, Flavour, StableSwapPool};
use keel_amm::pool::{
    BalancerPair, CurvePair, DEFAULT_BALANCER_SWAP_GAS, DEFAULT_CURVE_SWAP_GAS, Pool, PoolEntry, PoolMeta,
    SwapAmount,
};
use keel_amm::split::{GasPrice, Split, candidate_paths, split};

use crate::common::{A, B, Rng, e18, v2, v3, v3_pool};

const E18: u128 = 1_000_000_000_000_000_000;

fn meta(id: &str, gas: u64, venue: u16) -> PoolMeta {
    PoolMeta { id: id.into(), address: Address::ZERO, token0: A, token1: B, gas, venue }
}

/// A 2-token weighted pool of A (index `a_index`) and B, balances in whole tokens.
fn balancer(id: &str, bal_a: u128, bal_b: u128, weight_a_pct: u128, fee_bps: u128, a_index: u8) -> PoolEntry {
    let (w_a, w_b) = (U256::from(weight_a_pct * E18 / 100), U256::from((100 - weight_a_pct) * E18 / 100));
    let (bal_a, bal_b) = (U256::from(bal_a * E18), U256::from(bal_b * E18));
    let (balances, weights) =
        if a_index == 0 { ([bal_a, bal_b], [w_a, w_b]) } else { ([bal_b, bal_a], [w_b, w_a]) };
    let pool = WeightedPool::new(
        &balances,
        &weights,
        &[18, 18],
        U256::from(fee_bps * E18 / 10_000),
        PowFlavour::Shortcuts,
    )
    .unwrap();
    let pair = BalancerPair::new(pool, a_index, 1 - a_index).unwrap();
    PoolEntry::new(meta(id, DEFAULT_BALANCER_SWAP_GAS, 2), Pool::Balancer(Box::new(pair))).unwrap()
}

/// A 2-coin factory plain pool of A (coin 0) and B, balances in whole tokens, `a` the real A.
fn curve(id: &str, bal_a: u128, bal_b: u128, a: u128, fee: u64) -> PoolEntry {
    let pool = StableSwapPool::with_decimals(
        Flavour::FactoryPlain,
        &[U256::from(bal_a * E18), U256::from(bal_b * E18)],
        &[18, 18],
        AmpRamp::constant(U256::from(a * 100)),
        fee,
        FACTORY_ADMIN_FEE,
    )
    .unwrap();
    let pair = CurvePair::new(pool, 0, 1, 0).unwrap();
    PoolEntry::new(meta(id, DEFAULT_CURVE_SWAP_GAS, 3), Pool::Curve(Box::new(pair))).unwrap()
}

fn to_i128(x: U256) -> i128 {
    i128::try_from(x).expect("amounts fit i128")
}

fn gas_units(gas: u64, per_gas: f64) -> i128 {
    (gas as f64 * per_gas).ceil() as i128
}

fn split_net(s: &Split, per_gas: f64) -> i128 {
    s.legs.iter().map(|l| to_i128(l.amount_out) - gas_units(l.gas, per_gas)).sum()
}

/// Best exact net of one pool alone (exact input `x` of A), if it fills.
fn best_single(pools: &[PoolEntry], x: U256, per_gas: f64) -> (i128, String) {
    pools
        .iter()
        .filter_map(|p| {
            let q = p.pool().quote_exact_in(true, x).ok().filter(|q| q.amount_in == x)?;
            Some((to_i128(q.amount_out) - gas_units(p.meta.gas, per_gas), p.meta.id.clone()))
        })
        .max()
        .expect("some pool fills")
}

fn kinds(pools: &[PoolEntry], s: &Split) -> Vec<&'static str> {
    let mut k: Vec<&'static str> = s.legs.iter().map(|l| pools[l.path.first.pool].pool().kind()).collect();
    k.sort_unstable();
    k.dedup();
    k
}

fn four_venues() -> Vec<PoolEntry> {
    vec![
        v2("v2", A, B, e18(400_000), e18(400_000), 120_000),
        v3(
            "v3",
            A,
            B,
            v3_pool(3000, 60, 0, &[(-600, 600, 2_000_000 * E18), (-6000, 6000, 500_000 * E18)]),
            160_000,
        ),
        balancer("bal", 300_000, 300_000, 50, 10, 0),
        curve("crv", 60_000, 60_000, 50, 4_000_000),
    ]
}

#[test]
fn a_leg_splits_across_all_four_venue_kinds_and_beats_every_single_venue_after_gas() {
    let pools = four_venues();
    let paths = candidate_paths(&pools, A, B, true);
    assert_eq!(paths.len(), 4, "Balancer and Curve are direct paths, never hops");
    // gas at 20 gwei, 2,000 B per ETH: a 120k-gas swap costs 4.8 B
    let per_gas = GasPrice { gas_price_wei: 20_000_000_000, buy_per_native: 2000.0, buy_decimals: 18 }
        .buy_units_per_gas();
    let x = e18(100_000);
    let s = split(&pools, &paths, SwapAmount::ExactIn(x), per_gas).unwrap();
    assert_eq!(s.amount_in, x);
    let used = kinds(&pools, &s);
    assert!(
        used.len() >= 3,
        "legs use {used:?}: {:?}",
        s.legs.iter().map(|l| l.amount_in).collect::<Vec<_>>()
    );
    let net = split_net(&s, per_gas);
    let (single, who) = best_single(&pools, x, per_gas);
    assert!(net > single, "split {net} vs {who} alone {single}");
    // each leg is the venue's exact quote
    for l in &s.legs {
        let q = pools[l.path.first.pool].pool().quote_exact_in(true, l.amount_in).unwrap();
        assert_eq!(q.amount_out, l.amount_out);
    }
    println!(
        "four venues, {used:?}: net {net}, best single {who} {single} (+{:.4}%)",
        (net - single) as f64 / single as f64 * 100.0
    );

    // exact output: delivers exactly, never costs more than the best single venue
    let y = e18(100_000);
    let s = split(&pools, &paths, SwapAmount::ExactOut(y), per_gas).unwrap();
    assert_eq!(s.legs.iter().map(|l| l.amount_out).fold(U256::ZERO, |a, b| a + b), y);
    assert!(kinds(&pools, &s).len() >= 3);
    for l in &s.legs {
        let q = pools[l.path.first.pool].pool().quote_exact_in(true, l.amount_in).unwrap();
        assert!(q.amount_out >= l.amount_out, "leg input buys its output");
    }
    for p in &pools {
        if let Ok(q) = p.pool().quote_exact_out(true, y) {
            assert!(
                s.amount_in <= q.amount_in,
                "{} alone costs {}, split {}",
                p.meta.id,
                q.amount_in,
                s.amount_in
            );
        }
    }
}

/// Random mixed sets of the four kinds (depths over two orders of magnitude, prices within about
/// ±0.5%, random Balancer weights and Curve A), random orders and gas prices: the split is never
/// worse than the best single venue after gas, exactly.
#[test]
fn over_random_four_venue_sets_the_split_never_loses_to_a_single_venue_after_gas() {
    let mut rng = Rng(0x5eed_4ea1);
    let mut multi_kind = 0;
    let cases = 200;
    for case in 0..cases {
        let d = |rng: &mut Rng| rng.range(10_000, 1_000_000) as u128;
        let skew = |rng: &mut Rng, x: u128| x * (1000 + rng.range(-5, 6)) as u128 / 1000;
        let (d1, d2, d3, d4) = (d(&mut rng), d(&mut rng), d(&mut rng), d(&mut rng));
        let w = rng.range(20, 81) as u128;
        let pools = vec![
            v2("v2", A, B, e18(d1 as u64), e18(skew(&mut rng, d1) as u64), 120_000),
            v3(
                "v3",
                A,
                B,
                v3_pool(500, 10, rng.range(-50, 50) as i32, &[(-1000, 1000, d2 * 20 * E18)]),
                160_000,
            ),
            balancer(
                "bal",
                d3 * w / 50,
                skew(&mut rng, d3 * (100 - w) / 50),
                w,
                rng.range(1, 50) as u128,
                (case % 2) as u8,
            ),
            curve(
                "crv",
                d4 / 4,
                skew(&mut rng, d4 / 4),
                rng.range(10, 2000) as u128,
                rng.range(1, 40) as u64 * 1_000_000,
            ),
        ];
        let paths = candidate_paths(&pools, A, B, true);
        let x = e18(rng.range(100, 200_000) as u64);
        let per_gas = [0.0, 1e9, 1e11, 1e13][rng.range(0, 4) as usize];
        let s = match split(&pools, &paths, SwapAmount::ExactIn(x), per_gas) {
            Ok(s) => s,
            Err(e) => panic!("case {case}: {e}"),
        };
        assert_eq!(s.amount_in, x, "case {case}");
        let net = split_net(&s, per_gas);
        let (single, who) = best_single(&pools, x, per_gas);
        assert!(net >= single, "case {case}: split {net} < {who} alone {single}");
        if kinds(&pools, &s).len() >= 3 {
            multi_kind += 1;
        }
        // exact output of half what the split bought: delivers exactly, never costs more (input
        // plus gas) than any single venue. Gas is counted here at 1 B = 1 A, while the split
        // converts it at the best spot rate (within about 1% of 1): 1e-6 of the input covers that.
        let y = s.amount_out / U256::from(2u8);
        let o = split(&pools, &paths, SwapAmount::ExactOut(y), per_gas)
            .unwrap_or_else(|e| panic!("case {case}: exact out {y}: {e}"));
        assert_eq!(o.legs.iter().map(|l| l.amount_out).fold(U256::ZERO, |a, b| a + b), y, "case {case}");
        let cost = to_i128(o.amount_in) + o.legs.iter().map(|l| gas_units(l.gas, per_gas)).sum::<i128>();
        for p in &pools {
            if let Ok(q) = p.pool().quote_exact_out(true, y) {
                let alone = to_i128(q.amount_in) + gas_units(p.meta.gas, per_gas);
                assert!(
                    cost <= alone + alone / 1_000_000,
                    "case {case}: split costs {cost}, {} alone {alone}",
                    p.meta.id
                );
            }
        }
    }
    println!("{multi_kind} of {cases} random orders used three or more venue kinds");
    assert!(multi_kind > 0);
}

/// Alone, a Balancer pool fills through the split exactly what the Vault accepts: every given-in
/// amount up to `MAX_IN_RATIO` (even where the output passes 30% of its balance, as on an 80/20
/// pool selling the heavy token) and every given-out amount up to `MAX_OUT_RATIO`, one unit more
/// being refused; and each fill is the pool's exact quote.
#[test]
fn alone_a_balancer_pool_fills_up_to_the_vaults_ratio_limits_and_no_further() {
    for (weight_a, a_index) in [(80, 0), (80, 1), (20, 0), (50, 1)] {
        let pools = vec![balancer("bal", 1_000, 1_000, weight_a, 30, a_index)];
        let paths = candidate_paths(&pools, A, B, true);
        let Pool::Balancer(b) = pools[0].pool() else { unreachable!() };
        let (i, j) = b.io(true);
        let max_in = b.pool().max_in(i).unwrap();
        for x in [max_in / U256::from(3u8), max_in - U256::from(1u8), max_in] {
            let s = split(&pools, &paths, SwapAmount::ExactIn(x), 0.0).unwrap();
            assert_eq!(s.amount_in, x);
            assert_eq!(
                s.amount_out,
                b.pool().swap_given_in(i, j, x).unwrap().amount_out,
                "w {weight_a}: {x}"
            );
        }
        assert!(split(&pools, &paths, SwapAmount::ExactIn(max_in + U256::from(1u8)), 0.0).is_err());
        let max_out = b.pool().max_out(j).unwrap();
        for y in [max_out / U256::from(3u8), max_out] {
            let s = split(&pools, &paths, SwapAmount::ExactOut(y), 0.0)
                .unwrap_or_else(|e| panic!("w {weight_a} a{a_index}: out {y} of max {max_out}: {e}"));
            assert_eq!(s.amount_in, b.pool().swap_given_out(i, j, y).unwrap().amount_in, "w {weight_a}: {y}");
        }
        assert!(split(&pools, &paths, SwapAmount::ExactOut(max_out + U256::from(1u8)), 0.0).is_err());
    }
}

/// A hookless Uniswap V4 pool (fee 0.05% at spacing 60, a pairing no V3 tier has) in the same
/// split as the other four kinds: the optimiser walks it as a tick ladder, uses it, each of its
/// legs is the V4 pool's exact quote, and the split beats every single venue after gas.
#[test]
fn a_v4_pool_joins_the_split_with_the_other_four_kinds() {
    use keel_amm::pool::DEFAULT_V4_SWAP_GAS;
    use keel_amm::v4::{PoolKey, V4Pool};
    let state = v3_pool(500, 60, 0, &[(-600, 600, 1_500_000 * E18), (-6000, 6000, 300_000 * E18)]);
    let key = PoolKey { currency0: A, currency1: B, fee: 500, tick_spacing: 60, hooks: Address::ZERO };
    let ticks: Vec<_> = state.ticks().collect();
    let v4 = V4Pool::new(key, state.sqrt_price_x96, state.tick, state.liquidity, 500, 0, &ticks).unwrap();
    let mut pools = four_venues();
    pools.push(PoolEntry::new(meta("v4", DEFAULT_V4_SWAP_GAS, 4), Pool::V4(Box::new(v4))).unwrap());
    let paths = candidate_paths(&pools, A, B, true);
    assert_eq!(paths.len(), 5, "a V4 pool is a direct path");
    let per_gas = GasPrice { gas_price_wei: 20_000_000_000, buy_per_native: 2000.0, buy_decimals: 18 }
        .buy_units_per_gas();
    let x = e18(150_000);
    let s = split(&pools, &paths, SwapAmount::ExactIn(x), per_gas).unwrap();
    assert_eq!(s.amount_in, x);
    let used = kinds(&pools, &s);
    assert!(used.contains(&"uniswap_v4") && used.len() >= 3, "legs use {used:?}");
    for l in &s.legs {
        let q = pools[l.path.first.pool].pool().quote_exact_in(true, l.amount_in).unwrap();
        assert_eq!(q.amount_out, l.amount_out);
    }
    let (net, (single, who)) = (split_net(&s, per_gas), best_single(&pools, x, per_gas));
    assert!(net > single, "split {net} vs {who} alone {single}");
    println!("five venues, {used:?}: net {net}, best single {who} {single}");
}

/// Two hookless V4 pools sharing a hub token, under one venue (one router), make a two-hop path:
/// the only route from A to C here. The split walks it, and each hop of its leg is that pool's
/// exact quote on the input the hop before paid out. Pools of different venues never pair.
#[test]
fn two_v4_pools_of_one_venue_make_a_two_hop_path() {
    use keel_amm::pool::DEFAULT_V4_SWAP_GAS;
    use keel_amm::v4::{PoolKey, V4Pool};
    let c = Address::repeat_byte(0x33);
    let v4 = |id: &str, t0: Address, t1: Address, fee: u32, venue: u16| {
        let state = v3_pool(fee, 60, 0, &[(-600, 600, 1_000_000 * E18), (-6000, 6000, 200_000 * E18)]);
        let key = PoolKey { currency0: t0, currency1: t1, fee, tick_spacing: 60, hooks: Address::ZERO };
        let ticks: Vec<_> = state.ticks().collect();
        let pool =
            V4Pool::new(key, state.sqrt_price_x96, state.tick, state.liquidity, fee, 0, &ticks).unwrap();
        let meta = PoolMeta { token0: t0, token1: t1, ..meta(id, DEFAULT_V4_SWAP_GAS, venue) };
        PoolEntry::new(meta, Pool::V4(Box::new(pool))).unwrap()
    };
    let pools = vec![v4("ab", A, B, 3000, 4), v4("bc", B, c, 500, 4)];
    let paths = candidate_paths(&pools, A, c, true);
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert_eq!((paths[0].first.pool, paths[0].second.map(|h| h.pool)), (0, Some(1)));
    let x = e18(20_000);
    let s = split(&pools, &paths, SwapAmount::ExactIn(x), 0.0).unwrap();
    let [leg] = &s.legs[..] else { panic!("one leg: {s:?}") };
    let first = pools[0].pool().quote_exact_in(true, x).unwrap();
    let second = pools[1].pool().quote_exact_in(true, first.amount_out).unwrap();
    assert_eq!((leg.amount_in, leg.amount_out), (x, second.amount_out));
    assert_eq!(leg.gas, 2 * DEFAULT_V4_SWAP_GAS);

    // Under two venues (two routers), no single call executes the path.
    let pools = vec![v4("ab", A, B, 3000, 4), v4("bc", B, c, 500, 5)];
    assert!(candidate_paths(&pools, A, c, true).is_empty());
}
