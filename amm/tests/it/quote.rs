//! `keel quote`: schema, error cases and a price-limited single-pool V3 swap.

use alloy_primitives::U256;
use keel_amm::quote::run_quote;
use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
use serde_json::{Value, json};

use crate::common::{A, B, H};

fn v2_pool(id: &str, r0: &str, r1: &str) -> Value {
    json!({"id": id, "kind": "uniswap_v2", "token0": A.to_string(), "token1": B.to_string(),
           "reserve0": r0, "reserve1": r1, "fee_bps": 30, "gas": 90000})
}

fn v3_pool(id: &str) -> Value {
    // price 1 (tick 0), liquidity 1e22 over [-600, 600) and 1e21 full range
    json!({"id": id, "kind": "uniswap_v3", "token0": A.to_string(), "token1": B.to_string(),
           "fee": 3000, "tick_spacing": 60,
           "sqrt_price_x96": get_sqrt_ratio_at_tick(0).unwrap().to_string(), "tick": 0,
           "liquidity": "11000000000000000000000",
           "ticks": [{"index": -887220, "liquidity_net": "1000000000000000000000"},
                     {"index": -600, "liquidity_net": "10000000000000000000000"},
                     {"index": 600, "liquidity_net": "-10000000000000000000000"},
                     {"index": 887220, "liquidity_net": "-1000000000000000000000"}],
           "gas": 130000})
}

fn request(pools: Vec<Value>) -> Value {
    json!({"pools": pools, "sell": A.to_string(), "buy": B.to_string(), "amount_in": "200000000000000000000"})
}

fn run(v: &Value) -> Result<Value, String> {
    run_quote(v.to_string().as_bytes()).map(|s| serde_json::from_str(&s).unwrap()).map_err(|e| e.to_string())
}

fn u(v: &Value) -> U256 {
    U256::from_str_radix(v.as_str().expect("decimal string"), 10).unwrap()
}

#[test]
fn full_request_gives_every_response_field() {
    let mut req =
        request(vec![v2_pool("v2-a", "10000000000000000000000", "10000000000000000000000"), v3_pool("v3-a")]);
    req["gas_price_wei"] = json!("1000000000");
    req["buy_per_native"] = json!("1.5");
    let r = run(&req).unwrap();
    assert_eq!(u(&r["amount_in"]), U256::from(200u64) * U256::from(10u64).pow(U256::from(18u8)));
    let legs = r["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2);
    assert_eq!(r["gas"], json!(220000));
    let mut sum_in = U256::ZERO;
    let mut sum_out = U256::ZERO;
    for leg in legs {
        sum_in += u(&leg["amount_in"]);
        sum_out += u(&leg["amount_out"]);
        match leg["pool"].as_str().unwrap() {
            "v2-a" => {
                assert!(leg["reserve0_after"].is_string() && leg["reserve1_after"].is_string());
                assert_eq!(
                    u(&leg["reserve0_after"]),
                    U256::from(10u64).pow(U256::from(22u8)) + u(&leg["amount_in"])
                );
            }
            "v3-a" => {
                assert!(leg["sqrt_price_x96_after"].is_string() && leg["liquidity_after"].is_string());
                assert!(leg["tick_after"].as_i64().unwrap() < 0);
            }
            other => panic!("unexpected pool {other}"),
        }
    }
    assert_eq!(sum_in, u(&r["amount_in"]));
    assert_eq!(sum_out, u(&r["amount_out"]));
    // exact output
    let mut out =
        request(vec![v2_pool("v2-a", "10000000000000000000000", "10000000000000000000000"), v3_pool("v3-a")]);
    out.as_object_mut().unwrap().remove("amount_in");
    out["amount_out"] = json!("150000000000000000000");
    let r = run(&out).unwrap();
    assert_eq!(r["amount_out"], json!("150000000000000000000"));
}

#[test]
fn two_hop_leg_names_both_pools_in_order() {
    let pool = |id: &str, t0: alloy_primitives::Address, t1: alloy_primitives::Address, r: &str| {
        json!({"id": id, "kind": "uniswap_v2", "token0": t0.to_string(), "token1": t1.to_string(),
               "reserve0": r, "reserve1": r, "fee_bps": 30})
    };
    let req = request(vec![
        pool("ab", A, B, "1000000000000000000"),
        pool("ah", A, H, "100000000000000000000000"),
        pool("bh", B, H, "100000000000000000000000"),
    ]);
    let r = run(&req).unwrap();
    let two =
        r["legs"].as_array().unwrap().iter().find(|l| l["pools"].is_array()).expect("two-hop leg").clone();
    assert_eq!(two["pools"], json!(["ah", "bh"]));
    assert_eq!(two["pool"], json!("ah>bh"));
    assert_eq!(two["hops"][0]["pool"], json!("ah"));
    assert_eq!(two["hops"][1]["amount_in"], two["hops"][0]["amount_out"]);
    assert_eq!(two["amount_out"], two["hops"][1]["amount_out"]);
}

#[test]
fn price_limited_single_v3_swap_stops_at_the_limit() {
    let mut req = request(vec![v3_pool("v3-a")]);
    let limit = get_sqrt_ratio_at_tick(-300).unwrap();
    req["amount_in"] = json!("1000000000000000000000000"); // far more than reaching tick -300 takes
    req["sqrt_price_limit_x96"] = json!(limit.to_string());
    let r = run(&req).unwrap();
    let leg = &r["legs"][0];
    assert_eq!(u(&leg["sqrt_price_x96_after"]), limit);
    assert!(u(&r["amount_in"]) < U256::from(10u64).pow(U256::from(24u8)), "filled less than asked");
    assert!(!u(&r["amount_out"]).is_zero());
    assert_eq!(leg["tick_after"], json!(-300));
    assert_eq!(r["gas"], json!(130000));
    // a limit on the wrong side of the price is refused, naming the field
    req["sqrt_price_limit_x96"] = json!(get_sqrt_ratio_at_tick(300).unwrap().to_string());
    assert!(run(&req).unwrap_err().starts_with("sqrt_price_limit_x96: "));
}

#[test]
fn bad_requests_name_the_field() {
    let base = request(vec![v3_pool("v3-a"), v2_pool("v2-a", "1000", "1000")]);
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut r = base.clone();
                r["amount_out"] = json!("1");
                r
            },
            "amount_in: give exactly one of amount_in and amount_out, not both",
        ),
        (
            {
                let mut r = base.clone();
                r.as_object_mut().unwrap().remove("amount_in");
                r
            },
            "amount_in: give exactly one of amount_in and amount_out",
        ),
        (
            {
                let mut r = base.clone();
                r["amount_in"] = json!("12x");
                r
            },
            "amount_in: `12x` is not a non-negative decimal integer",
        ),
        (
            {
                let mut r = base.clone();
                r["amount_in"] = json!(100);
                r
            },
            "amount_in: expected a decimal string",
        ),
        (
            {
                let mut r = base.clone();
                r["amount_in"] = json!("-5");
                r
            },
            "amount_in: `-5` is not a non-negative decimal integer",
        ),
        (
            {
                let mut r = base.clone();
                r["pools"][1]["kind"] = json!("curve");
                r
            },
            "pools[v2-a].kind: unknown pool kind `curve` (expected `uniswap_v2`, `uniswap_v3`, `uniswap_v4`, `balancer_weighted` or `curve_stableswap`)",
        ),
        (
            {
                let mut r = base.clone();
                r["pools"][1]["reserve0"] = json!("1.5");
                r
            },
            "pools[v2-a].reserve0: `1.5` is not a non-negative decimal integer",
        ),
        (
            {
                let mut r = base.clone();
                r["pools"][0]["ticks"][1]["liquidity_net"] = json!("ten");
                r
            },
            "pools[v3-a].ticks[1].liquidity_net: `ten` is not a decimal integer",
        ),
        (
            {
                let mut r = base.clone();
                r["sqrt_price_limit_x96"] = json!("79228162514264337593543950336");
                r
            },
            "sqrt_price_limit_x96: allowed only with a single pool (2 given)",
        ),
        (
            {
                let mut r = base.clone();
                r["gas_price_wei"] = json!("1");
                r
            },
            "buy_per_native: required with gas_price_wei",
        ),
        (
            {
                let mut r = base.clone();
                r["slippage"] = json!(1);
                r
            },
            "slippage: unknown field",
        ),
        (
            {
                let mut r = base.clone();
                r["pools"][1]["id"] = json!("v3-a");
                r
            },
            "pools[1].id: duplicate pool id `v3-a`",
        ),
        (
            {
                let mut r = base.clone();
                r["sell"] = json!("0x12");
                r
            },
            "sell: `0x12` is not a 0x-prefixed 20-byte hex address",
        ),
        (
            {
                let mut r = base.clone();
                r["amount_in"] = json!("0");
                r
            },
            "amount_in: must be greater than zero",
        ),
        (
            {
                let mut r = base.clone();
                r["pools"] = json!([]);
                r
            },
            "pools: at least one pool is required",
        ),
    ];
    for (req, want) in cases {
        assert_eq!(run(&req).unwrap_err(), want);
    }
    let e = run_quote(b"[1, 2]").unwrap_err().to_string();
    assert_eq!(e, "request: expected a JSON object");
    let e = run_quote(b"{").unwrap_err().to_string();
    assert!(e.starts_with("request: invalid JSON") && !e.contains('\n'), "{e}");
    // V2 pool with a limit, and a pool that cannot fill the order
    let mut lim = request(vec![v2_pool("v2-a", "1000000", "1000000")]);
    lim["sqrt_price_limit_x96"] = json!("79228162514264337593543950336");
    assert_eq!(
        run(&lim).unwrap_err(),
        "sqrt_price_limit_x96: applies to a uniswap_v3 or uniswap_v4 pool only"
    );
    let mut big = request(vec![v2_pool("v2-a", "1000000", "1000000")]);
    big.as_object_mut().unwrap().remove("amount_in");
    big["amount_out"] = json!("2000000");
    assert_eq!(run(&big).unwrap_err(), "amount_out: the pools cannot fill this amount");
}

fn balancer_pool(id: &str) -> Value {
    // 3-token 50/30/20 pool; the pair is A = token 2 (6 decimals), B = token 0 (18 decimals)
    json!({"id": id, "kind": "balancer_weighted", "token0": A.to_string(), "token1": B.to_string(),
           "index0": 2, "index1": 0,
           "balances": ["1000000000000000000000000", "3000000000000000000000", "1000000000000"],
           "weights": ["500000000000000000", "300000000000000000", "200000000000000000"],
           "decimals": [18, 18, 6], "swap_fee": "3000000000000000", "flavour": "v1"})
}

fn curve_pool(id: &str) -> Value {
    json!({"id": id, "kind": "curve_stableswap", "token0": A.to_string(), "token1": B.to_string(),
           "index0": 1, "index1": 0, "balances": ["2000000000000000000000000", "2000000000000"],
           "decimals": [18, 6], "a": "20000", "fee": 4000000})
}

#[test]
fn balancer_and_curve_pools_quote_exactly_and_name_their_fields() {
    use keel_amm::balancer::{PowFlavour, WeightedPool};
    use keel_amm::curve::{AmpRamp, FACTORY_ADMIN_FEE, Flavour, StableSwapPool};
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    // Balancer alone: the response is the weighted pool's exact given-in swap
    let mut req = request(vec![balancer_pool("bal")]);
    req["amount_in"] = json!("5000000000"); // 5,000 A (6 decimals)
    let r = run(&req).unwrap();
    let w = WeightedPool::new(
        &[U256::from(1_000_000u64) * e18, U256::from(3_000u64) * e18, U256::from(1_000_000_000_000u64)],
        &[e18 / U256::from(2u8), e18 * U256::from(3u8) / U256::from(10u8), e18 / U256::from(5u8)],
        &[18, 18, 6],
        e18 * U256::from(3u8) / U256::from(1000u16),
        PowFlavour::V1,
    )
    .unwrap();
    let want = w.swap_given_in(2, 0, U256::from(5_000_000_000u64)).unwrap();
    assert_eq!(u(&r["amount_out"]), want.amount_out);
    assert_eq!(r["gas"], json!(keel_amm::pool::DEFAULT_BALANCER_SWAP_GAS));
    let after = r["legs"][0]["balances_after"].as_array().unwrap();
    assert_eq!(u(&after[2]), U256::from(1_000_000_000_000u64 + 5_000_000_000));
    assert_eq!(u(&after[0]), U256::from(1_000_000u64) * e18 - want.amount_out);

    // Curve alone, exact output: the smallest input whose exact exchange pays it
    let mut req = request(vec![curve_pool("crv")]);
    req.as_object_mut().unwrap().remove("amount_in");
    req["amount_out"] = json!("1000000000000000000000"); // 1,000 B
    let r = run(&req).unwrap();
    let c = StableSwapPool::with_decimals(
        Flavour::FactoryPlain,
        &[U256::from(2_000_000u64) * e18, U256::from(2_000_000_000_000u64)],
        &[18, 6],
        AmpRamp::constant(U256::from(20_000u64)),
        4_000_000,
        FACTORY_ADMIN_FEE,
    )
    .unwrap();
    let dx = u(&r["amount_in"]);
    assert!(c.exchange(1, 0, dx, 0).unwrap().dy >= e18 * U256::from(1000u16));
    assert!(c.exchange(1, 0, dx - U256::from(1u8), 0).unwrap().dy < e18 * U256::from(1000u16));

    // all four kinds in one request route together
    let mut req =
        request(vec![v2_pool("v2", "1000000000000000000000000", "1000000000000000000000000"), v3_pool("v3")]);
    let mut bal = balancer_pool("bal2");
    bal["balances"] =
        json!(["1000000000000000000000000", "3000000000000000000000", "1000000000000000000000000"]);
    bal["decimals"] = json!([18, 18, 18]);
    let mut crv = curve_pool("crv2");
    crv["balances"] = json!(["300000000000000000000000", "300000000000000000000000"]);
    crv["decimals"] = json!([18, 18]);
    req["pools"].as_array_mut().unwrap().extend([bal, crv]);
    req["amount_in"] = json!("100000000000000000000000");
    let r = run(&req).unwrap();
    let ids: Vec<&str> = r["legs"].as_array().unwrap().iter().map(|l| l["pool"].as_str().unwrap()).collect();
    assert!(ids.len() >= 3, "{ids:?}");

    // errors name the field
    let cases = [
        (
            "weights",
            json!(["500000000000000000", "300000000000000000", "100000000000000000"]),
            "pools[bal]: invalid weighted pool: weights do not sum to 1e18 (BAL#308)",
        ),
        (
            "index1",
            json!(2),
            "pools[bal].index0: balancer pair: token indices must be two distinct tokens of the pool",
        ),
        (
            "flavour",
            json!("v9"),
            "pools[bal].flavour: unknown flavour `v9` (expected `v1` for April 2021 pools or `shortcuts`)",
        ),
        ("decimals", json!([18, 19, 6]), "pools[bal].decimals[1]: expected an integer 0..=18"),
        (
            "balances",
            json!(["1", "x", "2"]),
            "pools[bal].balances[1]: `x` is not a non-negative decimal integer",
        ),
    ];
    for (field, value, want) in cases {
        let mut p = balancer_pool("bal");
        p[field] = value;
        assert_eq!(run(&request(vec![p])).unwrap_err(), want);
    }
    let mut p = curve_pool("crv");
    p["balances"] = json!(["1", "2", "3", "4"]);
    assert_eq!(
        run(&request(vec![p])).unwrap_err(),
        "pools[crv]: 4 coins: only plain pools of 2 or 3 coins are supported"
    );
    let mut p = curve_pool("crv");
    p["ticks"] = json!([]);
    assert_eq!(run(&request(vec![p])).unwrap_err(), "pools[crv].ticks: unknown field");
}
