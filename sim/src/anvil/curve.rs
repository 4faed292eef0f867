//! Curve's StableSwap-NG plain pool on anvil: the genuine Vyper contract (`CurveStableSwapNG.vy`,
//! curvefi/stableswap-ng at fd54b9a), compiled by vyper 0.4.3 from PyPI (`tests/chain/curve.sh`),
//! deployed on demand with plain ERC-20 coins (asset type 0, no oracles).
//!
//! The deployer stands as the pool's factory, so the entry points that ask the factory (the views
//! contract behind the external `get_dy`, admin fees, `ramp_A`) are not used; `exchange`,
//! `add_liquidity` and the storage views are the contract's own.
#![allow(missing_docs)]

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;

use super::artifacts::Artifact;
use super::error::{AnvilError, Result};
use super::harness::AnvilChain;
use super::routers::deploy;
use super::send::send;

alloy::sol! {
    /// The pool's entry points the tests call (this port takes `uint128` coin indices).
    #[sol(rpc)]
    interface ICurveStableSwapNG {
        function exchange(uint128 i, uint128 j, uint256 dx, uint256 min_dy) external returns (uint256);
        function add_liquidity(uint256[] amounts, uint256 min_mint_amount) external returns (uint256);
        function get_balances() external view returns (uint256[]);
        function stored_rates() external view returns (uint256[]);
        function balances(uint256 i) external view returns (uint256);
        function admin_balances(uint256 i) external view returns (uint256);
        function A_precise() external view returns (uint256);
        function fee() external view returns (uint256);
        function offpeg_fee_multiplier() external view returns (uint256);
        function admin_fee() external view returns (uint256);
        event TokenExchange(address indexed buyer, int128 sold_id, uint256 tokens_sold, int128 bought_id, uint256 tokens_bought);
    }

    /// The constructor's parameters, encoded as a call's (the selector dropped).
    function curveNgConstructor(
        string name,
        string symbol,
        uint256 a,
        uint256 fee,
        uint256 offpeg_fee_multiplier,
        uint256 ma_exp_time,
        address[] coins,
        uint256[] rate_multipliers,
        uint8[] asset_types,
        bytes4[] method_ids,
        address[] oracles
    );
}

/// A StableSwap-NG plain pool to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveNgParams {
    /// The coins (2 to 8 plain ERC-20s).
    pub coins: Vec<Address>,
    /// Each coin's rate multiplier, `10^(36 − decimals)` for a coin of `decimals` (the pool
    /// takes the rate as given: the tests may pair an 18-decimal token with the rate of a
    /// 6-decimal one).
    pub rate_multipliers: Vec<U256>,
    /// Amplification `A` (the contract stores `A × 100`).
    pub a: u64,
    /// Swap fee, parts of 10¹⁰ (at most 1%).
    pub fee: u64,
    /// Off-peg fee multiplier, parts of 10¹⁰: at most 10¹⁰ keeps the fee constant, above it the
    /// fee grows as the pool leaves its peg (`_dynamic_fee`).
    pub offpeg_fee_multiplier: u64,
}

/// Deploys a StableSwap-NG plain pool as dev account 0 (its factory); its address.
pub async fn deploy_curve_ng(chain: &AnvilChain, p: &CurveNgParams) -> Result<Address> {
    let n = p.coins.len();
    let args = curveNgConstructorCall {
        name: "Keel test stableswap".into(),
        symbol: "KEELSS".into(),
        a: U256::from(p.a),
        fee: U256::from(p.fee),
        offpeg_fee_multiplier: U256::from(p.offpeg_fee_multiplier),
        ma_exp_time: U256::from(866u64),
        coins: p.coins.clone(),
        rate_multipliers: p.rate_multipliers.clone(),
        asset_types: vec![0; n],
        method_ids: vec![Default::default(); n],
        oracles: vec![Address::ZERO; n],
    }
    .abi_encode();
    deploy(chain, Artifact::CurveStableSwapNg, args[4..].to_vec()).await
}

/// Dev account `from` (which must hold the amounts) approves the pool for each coin and deposits
/// `amounts` (one per coin, in the pool's coin order) with `add_liquidity`.
pub async fn seed_curve_ng(
    chain: &AnvilChain,
    pool: Address,
    coins: &[Address],
    amounts: &[U256],
    from: usize,
) -> Result<()> {
    for &coin in coins {
        let approve = super::contracts::rpc::IERC20::approveCall { spender: pool, amount: U256::MAX };
        send(chain, from, coin, approve.abi_encode(), "approve the curve pool").await?;
    }
    let add =
        ICurveStableSwapNG::add_liquidityCall { amounts: amounts.to_vec(), min_mint_amount: U256::ZERO };
    send(chain, from, pool, add.abi_encode(), "curve add_liquidity").await
}

/// The pool's state as Keel's exact math takes it, read from the contract's own views
/// (`get_balances`, `stored_rates`, `A_precise`, `fee`, `admin_fee`, `offpeg_fee_multiplier`;
/// the test pools never ramp `A`).
pub async fn read_ng_pool<P: Provider>(
    provider: &P,
    pool: Address,
) -> Result<keel_amm::curve::StableSwapPool> {
    let c = ICurveStableSwapNG::new(pool, provider);
    let rpc = |what: &'static str| move |e: alloy::contract::Error| AnvilError::rpc(what, e);
    let balances = c.get_balances().call().await.map_err(rpc("get_balances"))?;
    let rates = c.stored_rates().call().await.map_err(rpc("stored_rates"))?;
    let amp = c.A_precise().call().await.map_err(rpc("A_precise"))?;
    let word = |v: U256, what: &str| {
        u64::try_from(v).map_err(|_| AnvilError::rpc(what.to_string(), format!("{v} does not fit u64")))
    };
    let fee = word(c.fee().call().await.map_err(rpc("fee"))?, "fee")?;
    let admin_fee = word(c.admin_fee().call().await.map_err(rpc("admin_fee"))?, "admin_fee")?;
    let multiplier = word(
        c.offpeg_fee_multiplier().call().await.map_err(rpc("offpeg_fee_multiplier"))?,
        "offpeg_fee_multiplier",
    )?;
    let mut p = keel_amm::curve::StableSwapPool::new(
        keel_amm::curve::Flavour::FactoryPlain,
        &balances,
        &rates,
        keel_amm::curve::AmpRamp::constant(amp),
        fee,
        admin_fee,
    )
    .map_err(|e| AnvilError::rpc("curve pool state", e))?;
    p.set_offpeg_fee_multiplier(multiplier);
    Ok(p)
}

/// The amount of coin `i` to sell into `pool` for coin `j` so that its mid price of `i` in `j`
/// (raw units, before fees) falls to `target`: bisected on Keel's exact math; zero when the mid
/// is already at or below it.
pub fn dx_to_price(pool: &keel_amm::curve::StableSwapPool, i: usize, j: usize, target: f64) -> U256 {
    let mid_after = |dx: U256| -> Option<f64> {
        let mut p = pool.clone();
        if !dx.is_zero() {
            let o = p.exchange(i, j, dx, 0).ok()?;
            p.set_balances(&o.balances[..p.n_coins()]).ok()?;
        }
        let pair = keel_amm::pool::CurvePair::new(p, u8::try_from(i).ok()?, u8::try_from(j).ok()?, 0).ok()?;
        Some(keel_amm::pool::Pool::Curve(Box::new(pair)).mid_price())
    };
    if mid_after(U256::ZERO).is_none_or(|m| m <= target) {
        return U256::ZERO;
    }
    let (mut lo, mut hi) = (U256::ZERO, pool.balances()[i]);
    for _ in 0..96 {
        let mid = (lo + hi) >> 1;
        if mid == lo {
            break;
        }
        match mid_after(mid) {
            Some(m) if m > target => lo = mid,
            _ => hi = mid,
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_amm::curve::{AmpRamp, Flavour, StableSwapPool};
    use keel_amm::pool::{CurvePair, Pool};

    #[test]
    fn dx_to_price_sells_the_coin_down_to_the_target_mid_and_no_further() {
        let e18 = U256::from(10u64).pow(U256::from(18u8));
        let k = U256::from(10_000u64) * e18;
        let pool = StableSwapPool::new(
            Flavour::FactoryPlain,
            &[k, k],
            &[e18, e18],
            AmpRamp::constant(U256::from(500u64)),
            4_000_000,
            0,
        )
        .unwrap();
        let mid = |p: &StableSwapPool| {
            Pool::Curve(Box::new(CurvePair::new(p.clone(), 0, 1, 0).unwrap())).mid_price()
        };
        assert!((mid(&pool) - 1.0).abs() < 1e-9);
        let dx = dx_to_price(&pool, 0, 1, 0.97);
        let mut after = pool.clone();
        let o = after.exchange(0, 1, dx, 0).unwrap();
        after.set_balances(&o.balances[..2]).unwrap();
        assert!((mid(&after) / 0.97 - 1.0).abs() < 1e-6, "{}", mid(&after));
        // Already below the target: nothing to sell.
        assert_eq!(dx_to_price(&after, 0, 1, 0.98), U256::ZERO);
    }
}
