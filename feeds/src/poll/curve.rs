//! Curve StableSwap-NG plain pools in the chain poller.
//!
//! At start, one batch reads what does not change: each pool's `N_COINS()` and `admin_fee()`,
//! then a second batch its coins (`coins(i)`), which place the configured pair in the pool's coin
//! order. Each block then adds eight items per pool to the block's one batch ([`super::batch`]):
//! `get_balances()`, `stored_rates()`, the amplification ramp (`initial_A`, `future_A`,
//! `initial_A_time`, `future_A_time`), `fee()` and `offpeg_fee_multiplier()` — everything the
//! contract's `exchange` reads — and the poller publishes the pool as a [`PoolChange::Snapshot`]
//! of the configured pair, quoted at the block's timestamp, which replaces the router's copy whole.
//!
//! A pool whose start read is inconsistent (the configured tokens are not among its coins, or it
//! has more coins than Keel's StableSwap math takes) is logged and left out: the router then never
//! sees its state and refuses to route through it ("state not known yet").

use alloy::primitives::{Address, U256};
use keel_amm::curve::{AmpRamp, Flavour, StableSwapPool};
use keel_amm::pool::{CurvePair, Pool, PoolChange, PoolUpdate};
use keel_engine::chain::{ChainUpdate, PoolSource};

use super::PollError;

/// A Curve StableSwap-NG pool the poller reads every block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurveTarget {
    /// Index in the configured pool list.
    pub pool: u32,
    /// The pool contract (its own swap contract).
    pub address: Address,
    /// The configured pair: token0 (the lower address) and token1.
    pub token0: Address,
    /// Token1 of the configured pair.
    pub token1: Address,
}

/// What the start read learnt about one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurveMeta {
    pub(crate) admin_fee: u64,
    pub(crate) n_coins: usize,
    pub(crate) index0: u8,
    pub(crate) index1: u8,
}

/// A pool's coin count as `N_COINS()` answered it, if Keel's StableSwap math takes that many.
pub(crate) fn coin_count(n: U256) -> Result<usize, String> {
    usize::try_from(n)
        .ok()
        .filter(|n| (2..=keel_amm::curve::MAX_COINS).contains(n))
        .ok_or_else(|| format!("{n} coins: Keel's StableSwap math takes 2 to {}", keel_amm::curve::MAX_COINS))
}

/// The pair's indices among the pool's coins: the pool's meta, or why it cannot be traded.
pub(crate) fn meta_of(t: &CurveTarget, coins: &[Address], admin_fee: U256) -> Result<CurveMeta, String> {
    coin_count(U256::from(coins.len()))?;
    let index = |token: Address| {
        coins
            .iter()
            .position(|&x| x == token)
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| format!("token {token} is not a coin of the pool (its coins: {coins:?})"))
    };
    let (index0, index1) = (index(t.token0)?, index(t.token1)?);
    let admin_fee = u64::try_from(admin_fee).map_err(|_| format!("admin_fee {admin_fee} is out of range"))?;
    Ok(CurveMeta { admin_fee, n_coins: coins.len(), index0, index1 })
}

/// One block's read of a pool's state (the replies of its eight batch items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurveRead {
    pub(crate) balances: Vec<U256>,
    pub(crate) rates: Vec<U256>,
    pub(crate) amp: AmpRamp,
    pub(crate) fee: U256,
    pub(crate) offpeg_fee_multiplier: U256,
}

/// The router update for one block's read of a pool: its state at `block`, quoted at the block's
/// `timestamp`.
pub(crate) fn snapshot(
    t: &CurveTarget,
    meta: &CurveMeta,
    read: &CurveRead,
    block: u64,
    timestamp: u64,
) -> Result<ChainUpdate, PollError> {
    let bad = |e: &dyn std::fmt::Display| PollError::Rpc(format!("curve pool {}: {e}", t.address));
    if read.balances.len() != meta.n_coins || read.rates.len() != meta.n_coins {
        return Err(bad(&format!(
            "{} balances and {} rates for {} coins",
            read.balances.len(),
            read.rates.len(),
            meta.n_coins
        )));
    }
    let fee = u64::try_from(read.fee).map_err(|_| bad(&format!("fee {} is out of range", read.fee)))?;
    let multiplier = u64::try_from(read.offpeg_fee_multiplier)
        .map_err(|_| bad(&format!("offpeg_fee_multiplier {} is out of range", read.offpeg_fee_multiplier)))?;
    let mut pool = StableSwapPool::new(
        Flavour::FactoryPlain,
        &read.balances,
        &read.rates,
        read.amp,
        fee,
        meta.admin_fee,
    )
    .map_err(|e| bad(&e))?;
    pool.set_offpeg_fee_multiplier(multiplier);
    let pair = CurvePair::new(pool, meta.index0, meta.index1, timestamp).map_err(|e| bad(&e))?;
    Ok(ChainUpdate::Pool {
        update: PoolUpdate {
            pool: t.pool,
            address: t.address,
            block,
            change: PoolChange::Snapshot(Box::new(Pool::Curve(Box::new(pair)))),
            recv_ns: keel_engine::clock::mono_now_ns(),
        },
        source: PoolSource::Poll,
    })
}

/// A ramp's four storage values as read; times beyond `u64` are refused.
pub(crate) fn amp_ramp(
    initial_a: U256,
    future_a: U256,
    initial_a_time: U256,
    future_a_time: U256,
) -> Result<AmpRamp, String> {
    let time = |v: U256, what: &str| u64::try_from(v).map_err(|_| format!("{what} {v} is out of range"));
    Ok(AmpRamp {
        initial_a,
        future_a,
        initial_a_time: time(initial_a_time, "initial_A_time")?,
        future_a_time: time(future_a_time, "future_A_time")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> CurveTarget {
        CurveTarget {
            pool: 4,
            address: Address::repeat_byte(0xc0),
            token0: Address::repeat_byte(1),
            token1: Address::repeat_byte(3),
        }
    }

    fn e18(n: u64) -> U256 {
        U256::from(n) * U256::from(1_000_000_000_000_000_000u64)
    }

    #[test]
    fn a_three_coin_pool_is_traded_as_the_configured_pair_in_its_own_coin_order() {
        let coins = [Address::repeat_byte(3), Address::repeat_byte(2), Address::repeat_byte(1)];
        let m = meta_of(&target(), &coins, U256::from(5_000_000_000u64)).unwrap();
        assert_eq!((m.index0, m.index1, m.n_coins, m.admin_fee), (2, 0, 3, 5_000_000_000));
        let amp =
            amp_ramp(U256::from(20_000u64), U256::from(40_000u64), U256::from(100u64), U256::from(1_100u64))
                .unwrap();
        let read = CurveRead {
            balances: vec![e18(1_000_000), U256::from(900_000_000_000u64), e18(1_100_000)],
            rates: vec![e18(1), U256::from(10u128.pow(30)), e18(1)],
            amp,
            fee: U256::from(4_000_000u64),
            offpeg_fee_multiplier: U256::from(20_000_000_000u64),
        };
        let ChainUpdate::Pool { update, source } = snapshot(&target(), &m, &read, 77, 600).unwrap() else {
            panic!("not a pool update")
        };
        assert_eq!((update.pool, update.block, source), (4, 77, PoolSource::Poll));
        let PoolChange::Snapshot(pool) = update.change else { panic!("not a snapshot") };
        let Pool::Curve(pair) = *pool else { panic!("not a curve pool") };
        assert_eq!((pair.indices(), pair.timestamp()), ((2, 0), 600));
        assert_eq!(pair.pool().balances(), &read.balances[..]);
        // Halfway through the ramp: A is halfway between 200 and 400 (× A_PRECISION).
        assert_eq!(pair.pool().amp(600).unwrap(), U256::from(30_000u64));
        // A read whose lengths disagree with the pool's coin count is refused, not quoted.
        let short = CurveRead { balances: read.balances[..2].to_vec(), ..read.clone() };
        assert!(snapshot(&target(), &m, &short, 78, 612).is_err());
        let huge_fee = CurveRead { fee: U256::MAX, ..read };
        let e = snapshot(&target(), &m, &huge_fee, 78, 612).unwrap_err().to_string();
        assert!(e.contains("fee"), "{e}");
    }

    #[test]
    fn a_pool_without_the_configured_tokens_or_with_too_many_coins_is_refused_saying_why() {
        let coins = [Address::repeat_byte(1), Address::repeat_byte(2)];
        let e = meta_of(&target(), &coins, U256::ZERO).unwrap_err();
        assert!(e.contains("is not a coin of the pool"), "{e}");
        let many = vec![Address::repeat_byte(1); keel_amm::curve::MAX_COINS + 1];
        let e = meta_of(&target(), &many, U256::ZERO).unwrap_err();
        assert!(e.contains("coins"), "{e}");
        assert_eq!(coin_count(U256::from(3u8)), Ok(3));
        for n in [U256::from(1u8), U256::from(4u8), U256::MAX] {
            assert!(coin_count(n).unwrap_err().contains("2 to 3"), "{n}");
        }
        let e = amp_ramp(U256::from(1u8), U256::from(1u8), U256::MAX, U256::ZERO).unwrap_err();
        assert!(e.contains("initial_A_time"), "{e}");
    }
}
