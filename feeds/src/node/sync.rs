//! Initial and resync state by `eth_call`, every call pinned at one block.
//!
//! V2: `getReserves`. V3: `slot0`, `liquidity`, `fee`, `tickSpacing`, then every `tickBitmap` word
//! over the whole usable tick range (`MIN_TICK / spacing ..= MAX_TICK / spacing`, 256 ticks per
//! word) and `ticks(t)` for each set bit, so the pool holds every initialized tick with its exact
//! gross and net liquidity.
//!
//! V4: the pool's storage in the `PoolManager` by `extsload(bytes32[])` ([`keel_amm::v4::storage`]):
//! `slot0` and `liquidity`, every `tickBitmap` word over the usable range, then the first slot of
//! every initialized tick, [`EXTSLOAD_SLOTS`] slots per call.

use alloy::eips::BlockId;
use alloy::primitives::B256;
use alloy::primitives::aliases::I24;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use futures_util::future::try_join_all;
use keel_amm::abi::{IPoolManager, IUniswapV2Pair, IUniswapV3Pool};
use keel_amm::pool::Pool;
use keel_amm::v3::{MAX_TICK, MIN_TICK, V3Pool};
use keel_amm::v4::{V4Pool, storage};

use super::book::{PoolKind, TrackedPool};
use super::error::{NodeError, Result};
use crate::rpc::{CallError, call};

/// Bitmap words fetched concurrently.
const WORDS_IN_FLIGHT: usize = 32;
/// Storage slots per V4 `extsload` call (spacing 1 has 6,932 bitmap words: 7 calls).
pub const EXTSLOAD_SLOTS: usize = 1024;

/// Reads one pool's whole state at `block`. A V3 pool whose fee or tick spacing differs from the
/// configuration is an error (the config is wrong, or the address is).
pub async fn load_pool<P: Provider>(provider: &P, pool: &TrackedPool, block: u64) -> Result<Pool> {
    let at = BlockId::number(block);
    let addr = pool.address;
    match pool.kind {
        PoolKind::V2 => {
            let r = call(provider, addr, &IUniswapV2Pair::getReservesCall::new(()), at)
                .await
                .map_err(|e| NodeError::rpc(format!("getReserves {addr}"), e))?;
            Ok(Pool::V2 {
                reserve0: U256::from(r.reserve0),
                reserve1: U256::from(r.reserve1),
                fee_bps: pool.fee,
            })
        }
        PoolKind::V3 => {
            let err = |m: &str| {
                let m = format!("{m} {addr}");
                move |e: CallError| NodeError::rpc(m, e)
            };
            let (slot0, liquidity, fee, spacing) = tokio::try_join!(
                async {
                    call(provider, addr, &IUniswapV3Pool::slot0Call::new(()), at).await.map_err(err("slot0"))
                },
                async {
                    call(provider, addr, &IUniswapV3Pool::liquidityCall::new(()), at)
                        .await
                        .map_err(err("liquidity"))
                },
                async {
                    call(provider, addr, &IUniswapV3Pool::feeCall::new(()), at).await.map_err(err("fee"))
                },
                async {
                    call(provider, addr, &IUniswapV3Pool::tickSpacingCall::new(()), at)
                        .await
                        .map_err(err("tickSpacing"))
                },
            )?;
            let spacing = spacing.as_i32();
            if spacing <= 0 {
                return Err(NodeError::Inconsistent(format!("pool {addr} has tick spacing {spacing}")));
            }
            if pool.tick_spacing.is_some_and(|s| s != spacing) {
                return Err(NodeError::Inconsistent(format!(
                    "pool {addr} has tick spacing {spacing} but the config says {:?}",
                    pool.tick_spacing
                )));
            }
            let fee = fee.to::<u32>();
            if fee != pool.fee {
                return Err(NodeError::Inconsistent(format!(
                    "pool {addr} charges fee {fee} but the config says {}",
                    pool.fee
                )));
            }
            let mut pool = V3Pool::new(
                fee,
                spacing,
                U256::from(slot0.sqrtPriceX96),
                slot0.tick.as_i32(),
                liquidity,
                &[],
            )
            .map_err(|e| NodeError::Inconsistent(format!("pool {addr}: {e}")))?;
            let (min_word, max_word) =
                ((MIN_TICK.div_euclid(spacing)) >> 8, (MAX_TICK.div_euclid(spacing)) >> 8);
            let words: Vec<i32> = (min_word..=max_word).collect();
            let mut initialized = Vec::new();
            for chunk in words.chunks(WORDS_IN_FLIGHT) {
                let bitmaps = try_join_all(chunk.iter().map(|&w| async move {
                    let word = i16::try_from(w).map_err(|_| NodeError::Inconsistent(format!("word {w}")))?;
                    call(provider, addr, &IUniswapV3Pool::tickBitmapCall::new((word,)), at)
                        .await
                        .map(|b| (w, b))
                        .map_err(err("tickBitmap"))
                }))
                .await?;
                for (w, bits) in bitmaps {
                    for bit in 0..256usize {
                        if bits.bit(bit) {
                            initialized.push(((w << 8) + bit as i32) * spacing);
                        }
                    }
                }
            }
            for chunk in initialized.chunks(WORDS_IN_FLIGHT) {
                let ticks = try_join_all(chunk.iter().map(|&t| async move {
                    let i = I24::try_from(t).map_err(|_| NodeError::Inconsistent(format!("tick {t}")))?;
                    call(provider, addr, &IUniswapV3Pool::ticksCall::new((i,)), at)
                        .await
                        .map(|r| (t, r))
                        .map_err(err("ticks"))
                }))
                .await?;
                for (t, info) in ticks {
                    pool.set_tick_with_gross(t, info.liquidityGross, info.liquidityNet)
                        .map_err(|e| NodeError::Inconsistent(format!("pool {addr} tick {t}: {e}")))?;
                }
            }
            Ok(Pool::V3(pool))
        }
        PoolKind::V4 => load_v4(provider, pool, at).await,
    }
}

/// Reads `slots` of the `PoolManager` at `at`, [`EXTSLOAD_SLOTS`] per call, concurrently.
async fn extsload<P: Provider>(
    provider: &P,
    manager: Address,
    slots: &[B256],
    at: BlockId,
) -> Result<Vec<B256>> {
    let parts = try_join_all(slots.chunks(EXTSLOAD_SLOTS).map(|chunk| async move {
        let r = call(provider, manager, &IPoolManager::extsloadCall::new((chunk.to_vec(),)), at)
            .await
            .map_err(|e| NodeError::rpc(format!("extsload {manager}"), e))?;
        if r.len() != chunk.len() {
            return Err(NodeError::Inconsistent(format!(
                "extsload {manager}: {} values for {} slots",
                r.len(),
                chunk.len()
            )));
        }
        Ok(r)
    }))
    .await?;
    Ok(parts.into_iter().flatten().collect())
}

/// One V4 pool's whole state from the `PoolManager`'s storage at `at`. A pool that is not
/// initialized, or whose LP fee differs from its key's, is an error.
async fn load_v4<P: Provider>(provider: &P, pool: &TrackedPool, at: BlockId) -> Result<Pool> {
    let manager = pool.address;
    let key = pool
        .pool_key
        .ok_or_else(|| NodeError::Inconsistent(format!("v4 pool in {manager} tracked without its key")))?;
    let id = key.id();
    let base = storage::state_slot(id);
    let head = extsload(provider, manager, &[B256::from(base), storage::liquidity_slot(base)], at).await?;
    let (sqrt, tick, protocol_fee, lp_fee) = storage::unpack_slot0(head[0]);
    if sqrt.is_zero() {
        return Err(NodeError::Inconsistent(format!("v4 pool {id} is not initialized in {manager}")));
    }
    let liquidity = u128::try_from(U256::from_be_bytes(head[1].0))
        .map_err(|_| NodeError::Inconsistent(format!("v4 pool {id}: liquidity slot above uint128")))?;
    let spacing = key.tick_spacing;
    let (min_word, max_word) = ((MIN_TICK.div_euclid(spacing)) >> 8, (MAX_TICK.div_euclid(spacing)) >> 8);
    let words: Vec<i16> = (min_word..=max_word).filter_map(|w| i16::try_from(w).ok()).collect();
    let slots: Vec<B256> = words.iter().map(|&w| storage::bitmap_slot(base, w)).collect();
    let bitmaps = extsload(provider, manager, &slots, at).await?;
    let mut initialized = Vec::new();
    for (&w, bits) in words.iter().zip(&bitmaps) {
        let bits = U256::from_be_bytes(bits.0);
        for bit in 0..256usize {
            if bits.bit(bit) {
                initialized.push(((i32::from(w) << 8) + bit as i32) * spacing);
            }
        }
    }
    let slots: Vec<B256> = initialized.iter().map(|&t| storage::tick_slot(base, t)).collect();
    let infos = extsload(provider, manager, &slots, at).await?;
    let bad = |e: &dyn std::fmt::Display| NodeError::Inconsistent(format!("v4 pool {id}: {e}"));
    let mut v4 = V4Pool::new(key, sqrt, tick, liquidity, lp_fee, protocol_fee, &[]).map_err(|e| bad(&e))?;
    for (&t, info) in initialized.iter().zip(&infos) {
        let (gross, net) = storage::unpack_tick(*info);
        v4.state_mut().set_tick_with_gross(t, gross, net).map_err(|e| bad(&e))?;
    }
    Ok(Pool::V4(Box::new(v4)))
}
