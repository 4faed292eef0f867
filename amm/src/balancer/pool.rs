//! [`WeightedPool`]: a Balancer V2 weighted pool's swap state and its exact `onSwap`, as the Vault
//! runs it for `swap` / `batchSwap` / `queryBatchSwap`.

use alloy_primitives::U256;

use super::fixed_point::{self as fp, PowFlavour};
use super::weighted_math;
use super::{BalancerError, Result};

/// Most tokens a weighted pool holds (`WeightedPool`'s limit).
pub const MAX_TOKENS: usize = 8;
/// Smallest normalized weight a pool accepts: 1% (`_MIN_WEIGHT`).
pub const MIN_WEIGHT: U256 = U256::from_limbs([10_000_000_000_000_000, 0, 0, 0]);
/// Smallest swap fee a pool accepts: 0.0001% (`_MIN_SWAP_FEE_PERCENTAGE`).
pub const MIN_SWAP_FEE: U256 = U256::from_limbs([1_000_000_000_000, 0, 0, 0]);
/// Largest swap fee a pool accepts: 10% (`_MAX_SWAP_FEE_PERCENTAGE`).
pub const MAX_SWAP_FEE: U256 = U256::from_limbs([100_000_000_000_000_000, 0, 0, 0]);

/// A weighted pool: balances as the Vault holds them (raw token units, cash plus managed),
/// normalized weights and swap fee (18 decimals), and the tokens' scaling factors. Fixed-size
/// arrays: quoting allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedPool {
    n: usize,
    balances: [U256; MAX_TOKENS],
    weights: [U256; MAX_TOKENS],
    scaling: [U256; MAX_TOKENS],
    swap_fee: U256,
    flavour: PowFlavour,
}

/// What one swap pays: both amounts in raw token units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancerSwap {
    /// Token in paid to the Vault, fee included.
    pub amount_in: U256,
    /// Token out paid by the Vault.
    pub amount_out: U256,
    /// The part of `amount_in` that is the swap fee (raw units of the token in).
    pub fee: U256,
}

impl WeightedPool {
    /// A pool with these balances, weights (18 decimals, each at least 1%, summing to exactly 1),
    /// token decimals (at most 18) and swap fee (18 decimals, 0.0001% to 10%): the checks the
    /// pool's constructor makes.
    pub fn new(
        balances: &[U256],
        weights: &[U256],
        decimals: &[u8],
        swap_fee: U256,
        flavour: PowFlavour,
    ) -> Result<Self> {
        let n = weights.len();
        if !(2..=MAX_TOKENS).contains(&n) {
            return Err(BalancerError::BadPool("a weighted pool holds 2 to 8 tokens"));
        }
        if balances.len() != n || decimals.len() != n {
            return Err(BalancerError::BadPool("balances, weights and decimals differ in length"));
        }
        let mut sum = U256::ZERO;
        for &w in weights {
            if w < MIN_WEIGHT {
                return Err(BalancerError::BadPool("a weight is below 1% (BAL#302)"));
            }
            sum = fp::add(sum, w)?;
        }
        if sum != fp::ONE {
            return Err(BalancerError::BadPool("weights do not sum to 1e18 (BAL#308)"));
        }
        if !(MIN_SWAP_FEE..=MAX_SWAP_FEE).contains(&swap_fee) {
            return Err(BalancerError::BadPool("swap fee outside 1e12..=1e17 (BAL#203/BAL#202)"));
        }
        let mut pool = Self {
            n,
            balances: [U256::ZERO; MAX_TOKENS],
            weights: [U256::ZERO; MAX_TOKENS],
            scaling: [U256::ZERO; MAX_TOKENS],
            swap_fee,
            flavour,
        };
        for k in 0..n {
            if decimals[k] > 18 {
                return Err(BalancerError::BadPool("a token has more than 18 decimals"));
            }
            pool.balances[k] = balances[k];
            pool.weights[k] = weights[k];
            pool.scaling[k] = U256::from(10u64).pow(U256::from(18 - decimals[k]));
        }
        Ok(pool)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: a pool holds at least two tokens.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Balances (raw units), in the pool's token order.
    pub fn balances(&self) -> &[U256] {
        &self.balances[..self.n]
    }

    /// Normalized weights (18 decimals).
    pub fn weights(&self) -> &[U256] {
        &self.weights[..self.n]
    }

    /// Token decimals, in the pool's token order (from the scaling factors `10^(18 − decimals)`).
    pub fn decimals(&self) -> [u8; MAX_TOKENS] {
        let mut d = [0u8; MAX_TOKENS];
        for (k, s) in self.scaling[..self.n].iter().enumerate() {
            let (mut s, mut zeros) = (*s, 0u8);
            while s > U256::from(1u8) {
                s /= U256::from(10u8);
                zeros += 1;
            }
            d[k] = 18 - zeros.min(18);
        }
        d
    }

    /// Swap fee (18 decimals).
    pub fn swap_fee(&self) -> U256 {
        self.swap_fee
    }

    /// The `FixedPoint` flavour the pool was compiled with.
    pub fn flavour(&self) -> PowFlavour {
        self.flavour
    }

    fn pair(&self, i: usize, j: usize) -> Result<()> {
        for index in [i, j] {
            if index >= self.n {
                return Err(BalancerError::TokenIndex { index, len: self.n });
            }
        }
        if i == j {
            return Err(BalancerError::SameToken);
        }
        Ok(())
    }

    fn upscale(&self, k: usize, amount: U256) -> Result<U256> {
        amount.checked_mul(self.scaling[k]).ok_or(BalancerError::Overflow { op: "upscale" })
    }

    /// Sell exactly `amount_in` of token `i` for token `j` (`SwapKind.GIVEN_IN`).
    pub fn swap_given_in(&self, i: usize, j: usize, amount_in: U256) -> Result<BalancerSwap> {
        self.pair(i, j)?;
        if amount_in.is_zero() {
            return Err(BalancerError::ZeroAmount);
        }
        let fee = fp::mul_up(amount_in, self.swap_fee)?;
        let net = fp::sub(amount_in, fee)?;
        let out = weighted_math::calc_out_given_in(
            self.upscale(i, self.balances[i])?,
            self.weights[i],
            self.upscale(j, self.balances[j])?,
            self.weights[j],
            self.upscale(i, net)?,
            self.flavour,
        )?;
        Ok(BalancerSwap { amount_in, amount_out: out / self.scaling[j], fee })
    }

    /// Buy exactly `amount_out` of token `j` with token `i` (`SwapKind.GIVEN_OUT`).
    pub fn swap_given_out(&self, i: usize, j: usize, amount_out: U256) -> Result<BalancerSwap> {
        self.pair(i, j)?;
        if amount_out.is_zero() {
            return Err(BalancerError::ZeroAmount);
        }
        let scaled_in = weighted_math::calc_in_given_out(
            self.upscale(i, self.balances[i])?,
            self.weights[i],
            self.upscale(j, self.balances[j])?,
            self.weights[j],
            self.upscale(j, amount_out)?,
            self.flavour,
        )?;
        let net = div_ceil(scaled_in, self.scaling[i]);
        let amount_in = fp::div_up(net, fp::complement(self.swap_fee))?;
        Ok(BalancerSwap { amount_in, amount_out, fee: amount_in - net })
    }

    /// Largest `amount_in` of token `i` that a given-in swap accepts (MAX_IN_RATIO after the fee),
    /// exactly: the ratio check is monotone in the amount, so this is a binary search over it.
    pub fn max_in(&self, i: usize) -> Result<U256> {
        if i >= self.n {
            return Err(BalancerError::TokenIndex { index: i, len: self.n });
        }
        let limit = fp::mul_down(self.upscale(i, self.balances[i])?, weighted_math::MAX_IN_RATIO)?;
        let fits = |a: U256| -> Result<bool> {
            let net = fp::sub(a, fp::mul_up(a, self.swap_fee)?)?;
            Ok(self.upscale(i, net)? <= limit)
        };
        // The fee is at most 10%, so the answer is below balance·0.3/0.9 < balance/2 + 1.
        let (mut lo, mut hi) = (U256::ZERO, self.balances[i] / U256::from(2u8) + U256::from(2u8));
        while hi - lo > U256::from(1u8) {
            let mid = lo + (hi - lo) / U256::from(2u8);
            if fits(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Largest `amount_out` of token `j` that a given-out swap accepts (MAX_OUT_RATIO), exactly.
    pub fn max_out(&self, j: usize) -> Result<U256> {
        if j >= self.n {
            return Err(BalancerError::TokenIndex { index: j, len: self.n });
        }
        let limit = fp::mul_down(self.upscale(j, self.balances[j])?, weighted_math::MAX_OUT_RATIO)?;
        Ok(limit / self.scaling[j])
    }

    /// Marginal price of a tiny given-in swap of `i` for `j`, fee included: raw units of `j` per
    /// raw unit of `i`, `(1 − fee) · (Bⱼ/wⱼ) / (Bᵢ/wᵢ)`. A float, for the optimiser's search and
    /// analytics only; `None` for a bad index or an empty balance.
    pub fn marginal_price(&self, i: usize, j: usize) -> Option<f64> {
        if i >= self.n || j >= self.n || i == j || self.balances[i].is_zero() {
            return None;
        }
        let f = |x: U256| -> f64 { x.to_string().parse().unwrap_or(f64::NAN) };
        let fee = f(self.swap_fee) / 1e18;
        Some(
            (1.0 - fee) * f(self.balances[j]) * f(self.weights[i])
                / (f(self.balances[i]) * f(self.weights[j])),
        )
    }

    /// Moves the balances as the Vault does after a swap: `+amount_in` to token `i`,
    /// `−amount_out` from token `j`, checked.
    pub fn apply(&mut self, i: usize, j: usize, amount_in: U256, amount_out: U256) -> Result<()> {
        self.pair(i, j)?;
        let bin = fp::add(self.balances[i], amount_in)?;
        let bout = fp::sub(self.balances[j], amount_out)?;
        self.balances[i] = bin;
        self.balances[j] = bout;
        Ok(())
    }

    /// Replaces the balance of token `k` (a `PoolBalanceChanged` event or a fresh read).
    pub fn set_balance(&mut self, k: usize, balance: U256) -> Result<()> {
        if k >= self.n {
            return Err(BalancerError::TokenIndex { index: k, len: self.n });
        }
        self.balances[k] = balance;
        Ok(())
    }
}

/// `⌈a / b⌉` for `b > 0` (`Math.divUp`: `0` stays `0`).
fn div_ceil(a: U256, b: U256) -> U256 {
    if a.is_zero() { U256::ZERO } else { (a - U256::from(1u8)) / b + U256::from(1u8) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: u128) -> U256 {
        U256::from(v)
    }
    const E18: u128 = 1_000_000_000_000_000_000;

    fn pool(decimals: [u8; 2], fee: u128) -> WeightedPool {
        let b = [
            u(1_000) * U256::from(10u64).pow(U256::from(decimals[0])),
            u(2_000) * U256::from(10u64).pow(U256::from(decimals[1])),
        ];
        WeightedPool::new(&b, &[u(E18 / 5 * 4), u(E18 / 5)], &decimals, u(fee), PowFlavour::V1).unwrap()
    }

    #[test]
    fn given_in_and_given_out_are_consistent_and_favour_the_pool() {
        for decimals in [[18, 18], [6, 18], [18, 8], [6, 6]] {
            let p = pool(decimals, 3 * E18 / 1000);
            let one_in = U256::from(10u64).pow(U256::from(decimals[0]));
            let s = p.swap_given_in(0, 1, one_in).unwrap();
            assert!(s.amount_out > U256::ZERO && s.fee > U256::ZERO);
            // Buying what selling paid costs at least as much as was sold when the output keeps
            // full precision (both directions round for the pool), and never differs by more than
            // 1e-8 of it (the output's own rounding to 8 decimals, plus two roundings up).
            let back = p.swap_given_out(0, 1, s.amount_out).unwrap();
            if decimals[1] == 18 {
                assert!(back.amount_in >= s.amount_in, "{decimals:?}: {back:?} vs {s:?}");
            }
            let diff = back.amount_in.abs_diff(s.amount_in);
            assert!(diff <= one_in / u(10u128.pow(8)) + u(2), "{decimals:?}: {back:?} vs {s:?}");
            // 80/20: spot price of token0 in token1 is (2000/0.2)/(1000/0.8) = 8.
            let out = s.amount_out.to_string().parse::<f64>().unwrap() / 10f64.powi(decimals[1] as i32);
            assert!(out > 7.9 && out < 8.0, "{out}");
        }
    }

    #[test]
    fn refusals_name_the_contract_error() {
        let p = pool([18, 18], 10u128.pow(16));
        assert!(matches!(p.swap_given_in(0, 1, u(400 * E18)), Err(BalancerError::MaxInRatio { .. })));
        assert!(matches!(p.swap_given_out(0, 1, u(700 * E18)), Err(BalancerError::MaxOutRatio { .. })));
        assert_eq!(p.swap_given_in(0, 0, u(1)), Err(BalancerError::SameToken));
        assert_eq!(p.swap_given_in(0, 1, U256::ZERO), Err(BalancerError::ZeroAmount));
        assert_eq!(p.swap_given_in(0, 2, u(1)), Err(BalancerError::TokenIndex { index: 2, len: 2 }));
        let w = [u(E18 / 2), u(E18 / 2)];
        let b = [u(1), u(1)];
        assert!(WeightedPool::new(&b, &w, &[18, 18], u(E18 / 5), PowFlavour::V1).is_err());
        assert!(
            WeightedPool::new(&b, &[u(E18 / 2), u(E18 / 3)], &[18, 18], u(E18 / 100), PowFlavour::V1)
                .is_err()
        );
        assert!(WeightedPool::new(&b, &w, &[18, 19], u(E18 / 100), PowFlavour::V1).is_err());
        assert!(WeightedPool::new(&[u(1)], &[u(E18)], &[18], u(E18 / 100), PowFlavour::V1).is_err());
    }

    #[test]
    fn capacities_are_the_exact_ratio_edges() {
        for (decimals, fee) in [([18, 18], 3 * E18 / 1000), ([6, 8], E18 / 10), ([8, 6], 10u128.pow(12))] {
            let p = pool(decimals, fee);
            for (i, j) in [(0, 1), (1, 0)] {
                let max_in = p.max_in(i).unwrap();
                assert!(p.swap_given_in(i, j, max_in).is_ok(), "{decimals:?} {i}: {max_in}");
                assert!(matches!(
                    p.swap_given_in(i, j, max_in + u(1)),
                    Err(BalancerError::MaxInRatio { .. })
                ));
                let max_out = p.max_out(j).unwrap();
                assert!(p.swap_given_out(i, j, max_out).is_ok());
                assert!(matches!(
                    p.swap_given_out(i, j, max_out + u(1)),
                    Err(BalancerError::MaxOutRatio { .. })
                ));
            }
            // A tiny trade pays the marginal price.
            let m = p.marginal_price(0, 1).unwrap();
            let tiny = U256::from(10u64).pow(U256::from(decimals[0] - 2));
            let out = p.swap_given_in(0, 1, tiny).unwrap().amount_out.to_string().parse::<f64>().unwrap();
            let tiny = tiny.to_string().parse::<f64>().unwrap();
            assert!((out / tiny / m - 1.0).abs() < 1e-3, "{decimals:?}: {} vs {m}", out / tiny);
        }
        assert!(pool([18, 18], E18 / 100).marginal_price(0, 0).is_none());
    }

    #[test]
    fn apply_moves_balances_as_the_vault_does() {
        let mut p = pool([18, 18], 10u128.pow(16));
        let s = p.swap_given_in(1, 0, u(10 * E18)).unwrap();
        p.apply(1, 0, s.amount_in, s.amount_out).unwrap();
        assert_eq!(p.balances(), &[u(1_000 * E18) - s.amount_out, u(2_010 * E18)]);
        assert_eq!(p.apply(1, 0, u(0), u(10_000 * E18)), Err(BalancerError::SubOverflow));
        assert_eq!(p.balances()[1], u(2_010 * E18), "a refused apply changes nothing");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn f(x: U256) -> f64 {
            x.to_string().parse().unwrap()
        }

        /// A random 2-token pool: balances 10³..10⁹ whole tokens, weight 2..98%, fee 0.0001..10%,
        /// decimals 6/8/18, either flavour.
        fn arb_pool() -> impl Strategy<Value = WeightedPool> {
            (
                1_000u64..1_000_000_000,
                1_000u64..1_000_000_000,
                2u128..=98,
                1u128..=100_000,
                prop::sample::select(vec![6u8, 8, 18]),
                prop::sample::select(vec![6u8, 8, 18]),
                any::<bool>(),
            )
                .prop_map(|(b0, b1, w0, fee, d0, d1, short)| {
                    let b = [
                        U256::from(b0) * U256::from(10u64).pow(U256::from(d0)),
                        U256::from(b1) * U256::from(10u64).pow(U256::from(d1)),
                    ];
                    let w = [u(w0 * E16), u((100 - w0) * E16)];
                    let flavour = if short { PowFlavour::Shortcuts } else { PowFlavour::V1 };
                    WeightedPool::new(&b, &w, &[d0, d1], u(fee * 1_000_000_000_000), flavour).unwrap()
                })
        }
        const E16: u128 = E18 / 100;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Output grows with input, input with output, and neither beats the real-number
            /// formula `Bo·(1 − (Bi/(Bi + a(1−fee)))^(wi/wo))` / its inverse: rounding favours
            /// the pool (1e-9 relative slack for the f64 reference itself).
            #[test]
            fn quotes_are_monotone_and_never_better_than_the_real_formula(
                p in arb_pool(), frac in 1e-9f64..0.25, bump in 1u64..1_000_000, zfo in any::<bool>(),
            ) {
                let (i, j) = if zfo { (0, 1) } else { (1, 0) };
                let (bi, bo) = (p.balances()[i], p.balances()[j]);
                let (wi, wo) = (f(p.weights()[i]), f(p.weights()[j]));
                let fee = f(p.swap_fee()) / 1e18;
                let a = U256::from((f(bi) * frac) as u128).max(u(1));
                let q = p.swap_given_in(i, j, a).unwrap();
                let q2 = p.swap_given_in(i, j, (a + U256::from(bump)).min(p.max_in(i).unwrap())).unwrap();
                prop_assert!(q2.amount_out >= q.amount_out || q2.amount_in < a);
                let real = f(bo) * (1.0 - (f(bi) / (f(bi) + f(a) * (1.0 - fee))).powf(wi / wo));
                prop_assert!(f(q.amount_out) <= real * (1.0 + 1e-9) + 1.0, "{} > {real}", q.amount_out);

                let o = U256::from((f(bo) * frac) as u128).max(u(1));
                let r = p.swap_given_out(i, j, o).unwrap();
                let r2 = p.swap_given_out(i, j, (o + U256::from(bump)).min(p.max_out(j).unwrap())).unwrap();
                prop_assert!(r2.amount_in >= r.amount_in || r2.amount_out < o);
                let real_in = f(bi) * ((f(bo) / (f(bo) - f(o))).powf(wo / wi) - 1.0) / (1.0 - fee);
                prop_assert!(f(r.amount_in) >= real_in * (1.0 - 1e-9) - 1.0, "{} < {real_in}", r.amount_in);
            }
        }
    }
}
