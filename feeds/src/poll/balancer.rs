//! Balancer V2 weighted pools in the chain poller.
//!
//! At start, one batch reads what does not change: each pool's tokens (the Vault's
//! `getPoolTokens(poolId)`) and normalized weights (`getNormalizedWeights()`), then a second batch
//! the decimals of every token in them. Each block then adds two items per pool to the block's one
//! batch ([`super::batch`]): the Vault's `getPoolTokens(poolId)` (balances) and the pool's
//! `getSwapFeePercentage()` (its owner may change it). The poller publishes the pool as a
//! [`PoolChange::Snapshot`] of the configured pair, which replaces the router's copy whole.
//!
//! A pool whose start read is inconsistent (the configured tokens are not in it, its weights do not
//! match its tokens, or [`WeightedPool::new`] refuses it) is logged and left out: the router then
//! never sees its state and refuses to route through it ("state not known yet").

use alloy::primitives::{Address, B256, U256};
use keel_amm::balancer::{PowFlavour, WeightedPool};
use keel_amm::pool::{BalancerPair, Pool, PoolChange, PoolUpdate};
use keel_engine::chain::{ChainUpdate, PoolSource};

use super::PollError;

/// A Balancer weighted pool the poller reads every block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerTarget {
    /// Index in the configured pool list.
    pub pool: u32,
    /// The pool contract.
    pub address: Address,
    /// The Vault holding its balances.
    pub vault: Address,
    /// Its id in the Vault.
    pub pool_id: B256,
    /// The configured pair: token0 (the lower address) and token1.
    pub token0: Address,
    /// Token1 of the configured pair.
    pub token1: Address,
    /// The `FixedPoint` release the pool was compiled with.
    pub flavour: PowFlavour,
}

/// What the start read learnt about one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BalancerMeta {
    pub(crate) tokens: Vec<Address>,
    pub(crate) weights: Vec<U256>,
    pub(crate) decimals: Vec<u8>,
    pub(crate) index0: u8,
    pub(crate) index1: u8,
}

/// The pair's indices in the pool's token order, checked against the weights: the pool's
/// meta, or why it cannot be traded.
pub(crate) fn meta_of(
    t: &BalancerTarget,
    tokens: Vec<Address>,
    weights: Vec<U256>,
    decimals: Vec<u8>,
) -> Result<BalancerMeta, String> {
    if tokens.len() != weights.len() || tokens.len() != decimals.len() {
        return Err(format!(
            "{} tokens, {} weights and {} decimals do not match",
            tokens.len(),
            weights.len(),
            decimals.len()
        ));
    }
    let index = |token: Address| {
        tokens
            .iter()
            .position(|&x| x == token)
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| format!("token {token} is not in the pool (its tokens: {tokens:?})"))
    };
    let (index0, index1) = (index(t.token0)?, index(t.token1)?);
    let zero = vec![U256::ZERO; tokens.len()];
    // The constructor's own checks (token count, weights, decimals), with a valid fee.
    WeightedPool::new(&zero, &weights, &decimals, keel_amm::balancer::pool::MIN_SWAP_FEE, t.flavour)
        .map_err(|e| e.to_string())?;
    Ok(BalancerMeta { tokens, weights, decimals, index0, index1 })
}

/// The router update for one block's read of a pool: its balances and fee at `block`.
pub(crate) fn snapshot(
    t: &BalancerTarget,
    meta: &BalancerMeta,
    tokens: &[Address],
    balances: &[U256],
    swap_fee: U256,
    block: u64,
) -> Result<ChainUpdate, PollError> {
    if tokens != meta.tokens.as_slice() {
        return Err(PollError::Rpc(format!(
            "balancer pool {}: the Vault lists tokens {tokens:?}, not {:?}",
            t.address, meta.tokens
        )));
    }
    let bad = |e: &dyn std::fmt::Display| PollError::Rpc(format!("balancer pool {}: {e}", t.address));
    let pool = WeightedPool::new(balances, &meta.weights, &meta.decimals, swap_fee, t.flavour)
        .map_err(|e| bad(&e))?;
    let pair = BalancerPair::new(pool, meta.index0, meta.index1).map_err(|e| bad(&e))?;
    Ok(ChainUpdate::Pool {
        update: PoolUpdate {
            pool: t.pool,
            address: t.address,
            block,
            change: PoolChange::Snapshot(Box::new(Pool::Balancer(Box::new(pair)))),
            recv_ns: keel_engine::clock::mono_now_ns(),
        },
        source: PoolSource::Poll,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> BalancerTarget {
        BalancerTarget {
            pool: 3,
            address: Address::repeat_byte(0xb0),
            vault: Address::repeat_byte(0xba),
            pool_id: B256::repeat_byte(0xb0),
            token0: Address::repeat_byte(1),
            token1: Address::repeat_byte(3),
            flavour: PowFlavour::V1,
        }
    }

    fn e16(n: u64) -> U256 {
        U256::from(n) * U256::from(10_000_000_000_000_000u64)
    }

    #[test]
    fn a_three_token_pool_is_traded_as_the_configured_pair_in_its_own_token_order() {
        let tokens = vec![Address::repeat_byte(3), Address::repeat_byte(2), Address::repeat_byte(1)];
        let m = meta_of(&target(), tokens.clone(), vec![e16(50), e16(30), e16(20)], vec![18, 6, 8]).unwrap();
        assert_eq!((m.index0, m.index1), (2, 0));
        let balances = [U256::from(10u128.pow(21)), U256::from(10u64.pow(9)), U256::from(10u64.pow(11))];
        let fee = U256::from(3_000_000_000_000_000u64);
        let ChainUpdate::Pool { update, source } =
            snapshot(&target(), &m, &tokens, &balances, fee, 77).unwrap()
        else {
            panic!("not a pool update")
        };
        assert_eq!((update.pool, update.block, source), (3, 77, PoolSource::Poll));
        let PoolChange::Snapshot(pool) = update.change else { panic!("not a snapshot") };
        let Pool::Balancer(pair) = *pool else { panic!("not a balancer pool") };
        assert_eq!(pair.indices(), (2, 0));
        assert_eq!(pair.pool().balances(), &balances);
        assert_eq!(pair.pool().swap_fee(), fee);
        assert_eq!(pair.pool().decimals()[..3], [18, 6, 8]);
        // Tokens that moved under the pool's id are refused, not quoted.
        let mut moved = tokens.clone();
        moved.swap(0, 1);
        assert!(snapshot(&target(), &m, &moved, &balances, fee, 78).is_err());
    }

    #[test]
    fn a_pool_without_the_configured_tokens_or_with_bad_weights_is_refused_saying_why() {
        let tokens = vec![Address::repeat_byte(1), Address::repeat_byte(2)];
        let e = meta_of(&target(), tokens.clone(), vec![e16(50), e16(50)], vec![18, 18]).unwrap_err();
        assert!(e.contains("is not in the pool"), "{e}");
        let mut t = target();
        t.token1 = Address::repeat_byte(2);
        let e = meta_of(&t, tokens.clone(), vec![e16(50), e16(40)], vec![18, 18]).unwrap_err();
        assert!(e.contains("1e18"), "{e}");
        let e = meta_of(&t, tokens, vec![e16(50)], vec![18, 18]).unwrap_err();
        assert!(e.contains("do not match"), "{e}");
    }
}
