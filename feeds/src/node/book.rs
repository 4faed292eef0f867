//! [`PoolBook`]: exact integer state of every tracked pool, tagged with the block it reflects.
//!
//! Logs are applied in chain order (block, log index); a log at or before a pool's last applied
//! position is a duplicate and ignored, so replays after a resync are harmless. Before the first
//! log of a block touches a pool, the pool's state is saved; a log with `removed: true` (a reorg)
//! restores every pool to its state before that block and forgets the later history. History is
//! kept for [`REORG_DEPTH`] blocks; a deeper reorg asks for a full resync.
//!
//! Every change is also emitted as a [`PoolUpdate`] of keel-amm's one pool model, which the router
//! applies to its own pools with the same [`Pool::apply`] this book uses.

use std::collections::{HashMap, VecDeque};

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use keel_amm::abi::{IPoolManager, IUniswapV2Pair, IUniswapV3Pool};
pub use keel_amm::pool::{Pool, PoolChange, PoolId, PoolUpdate};
use keel_amm::v4::PoolKey;
use keel_engine::Nanos;

use super::error::{NodeError, Result};

/// Blocks of history kept for reorg rollback.
pub const REORG_DEPTH: u64 = 64;

/// Protocol of a tracked pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Uniswap V2 pair.
    V2,
    /// Uniswap V3 pool.
    V3,
    /// Uniswap V4 pool: state inside the `PoolManager` (the tracked address), named by its key's
    /// id in the first topic of the manager's `Swap`, `ModifyLiquidity` and `ProtocolFeeUpdated`
    /// events.
    V4,
}

/// A pool the node feed tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedPool {
    /// Pool contract.
    pub address: Address,
    /// Protocol.
    pub kind: PoolKind,
    /// Fee, from the configuration: basis points for V2 (the pair does not expose it), pips for V3
    /// (checked against the pool's own `fee()` at every load).
    pub fee: u32,
    /// V3 tick spacing from the configuration (checked against the pool's `tickSpacing()` at every
    /// load); `None` for V2.
    pub tick_spacing: Option<i32>,
    /// V4: the pool's key (its `fee` and `tick_spacing` equal the fields above); `None` for V2
    /// and V3.
    pub pool_key: Option<PoolKey>,
}

impl TrackedPool {
    /// The V4 pool `key` of the `PoolManager` at `manager`.
    pub fn v4(manager: Address, key: PoolKey) -> Self {
        Self {
            address: manager,
            kind: PoolKind::V4,
            fee: key.fee,
            tick_spacing: Some(key.tick_spacing),
            pool_key: Some(key),
        }
    }
}

/// A pool in the book.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolEntry {
    /// Configuration.
    pub pool: TrackedPool,
    /// Current state; `None` until loaded.
    pub state: Option<Pool>,
    /// Block the state reflects.
    pub block: u64,
    /// Position `(block, log index)` of the last applied log.
    pub last_log: Option<(u64, u64)>,
}

/// What applying a log did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The log changed a pool.
    Updated(PoolUpdate),
    /// A reorg: these pools were rolled back to the state before the removed log's block.
    RolledBack(Vec<PoolUpdate>),
    /// Duplicate, unknown pool or unrelated event.
    Ignored,
}

/// A pool's state and position before a block touched it: (state, block, last log).
type Saved = (Option<Pool>, u64, Option<(u64, u64)>);

/// Exact state of every tracked pool.
#[derive(Debug, Clone, Default)]
pub struct PoolBook {
    pools: Vec<PoolEntry>,
    by_address: HashMap<Address, PoolId>,
    /// V4 pools by pool id (their address is the shared `PoolManager`).
    by_v4_id: HashMap<B256, PoolId>,
    /// Per block (ascending): each pool's state and position before the block's first log touched it.
    history: VecDeque<(u64, Vec<(PoolId, Saved)>)>,
}

impl PoolBook {
    /// A book for `pools` (ids are their indices), all unloaded.
    pub fn new(pools: &[TrackedPool]) -> Self {
        let mut by_address = HashMap::new();
        let mut by_v4_id = HashMap::new();
        for (i, p) in pools.iter().enumerate() {
            match (p.kind, p.pool_key) {
                (PoolKind::V4, Some(key)) => by_v4_id.insert(key.id(), i as PoolId),
                _ => by_address.insert(p.address, i as PoolId),
            };
        }
        let pools = pools
            .iter()
            .map(|p| PoolEntry { pool: p.clone(), state: None, block: 0, last_log: None })
            .collect();
        Self { pools, by_address, by_v4_id, history: VecDeque::new() }
    }

    /// Every pool, by id.
    pub fn pools(&self) -> &[PoolEntry] {
        &self.pools
    }

    /// A pool by id.
    pub fn get(&self, id: PoolId) -> Option<&PoolEntry> {
        self.pools.get(id as usize)
    }

    /// A pool's id by address (V2 and V3; V4 pools share their manager's address, see
    /// [`Self::id_of_log`]).
    pub fn id_of(&self, address: Address) -> Option<PoolId> {
        self.by_address.get(&address).copied()
    }

    /// The pool a log belongs to: by its address, or for a V4 `PoolManager` log by the pool id in
    /// its first topic.
    pub fn id_of_log(&self, log: &Log) -> Option<PoolId> {
        if let Some(id) = self.id_of(log.address()) {
            return Some(id);
        }
        let id = *self.by_v4_id.get(log.topics().get(1)?)?;
        (self.pools[id as usize].pool.address == log.address()).then_some(id)
    }

    /// A pool's state by address.
    pub fn state_of(&self, address: Address) -> Option<&Pool> {
        self.id_of(address).and_then(|id| self.pools[id as usize].state.as_ref())
    }

    /// The oldest block every loaded pool reflects (0 when none is loaded).
    pub fn min_block(&self) -> u64 {
        self.pools.iter().filter(|p| p.state.is_some()).map(|p| p.block).min().unwrap_or(0)
    }

    /// Sets a pool's whole state as of `block` (load or resync) and forgets its history.
    pub fn set_state(&mut self, id: PoolId, state: Pool, block: u64, recv_ns: Nanos) -> Option<PoolUpdate> {
        let entry = self.pools.get_mut(id as usize)?;
        entry.state = Some(state.clone());
        entry.block = block;
        entry.last_log = Some((block, u64::MAX));
        for (_, saved) in &mut self.history {
            saved.retain(|(p, _)| *p != id);
        }
        Some(PoolUpdate {
            pool: id,
            address: entry.pool.address,
            block,
            change: PoolChange::Snapshot(Box::new(state)),
            recv_ns,
        })
    }

    /// Applies one log from the node (in chain order).
    pub fn apply_log(&mut self, log: &Log, recv_ns: Nanos) -> Result<Applied> {
        let Some(id) = self.id_of_log(log) else { return Ok(Applied::Ignored) };
        let (Some(block), Some(index)) = (log.block_number, log.log_index) else {
            return Ok(Applied::Ignored); // pending logs carry no position
        };
        if log.removed {
            return self.rollback(block, recv_ns).map(Applied::RolledBack);
        }
        let entry = &self.pools[id as usize];
        if entry.state.is_none() || entry.last_log.is_some_and(|last| (block, index) <= last) {
            return Ok(Applied::Ignored);
        }
        let change = match decode_change(entry.pool.kind, log)? {
            Some(change) => change,
            None => match protocol_fee_change(entry, log)? {
                Some(change) => change,
                None => return Ok(Applied::Ignored),
            },
        };
        self.save_before(id, block);
        let entry = &mut self.pools[id as usize];
        if let Some(state) = &mut entry.state {
            state
                .apply(&change)
                .map_err(|e| NodeError::Inconsistent(format!("{}: {e}", entry.pool.address)))?;
        }
        entry.block = block;
        entry.last_log = Some((block, index));
        let address = entry.pool.address;
        self.prune(block);
        Ok(Applied::Updated(PoolUpdate { pool: id, address, block, change, recv_ns }))
    }

    /// Marks every loaded pool as reflecting `block` (a head with no log for it changes nothing).
    pub fn advance_to(&mut self, block: u64) {
        for p in &mut self.pools {
            if p.state.is_some() && p.block < block {
                p.block = block;
            }
        }
        self.prune(block);
    }

    fn save_before(&mut self, id: PoolId, block: u64) {
        let entry = &self.pools[id as usize];
        let saved = (id, (entry.state.clone(), entry.block, entry.last_log));
        match self.history.back_mut() {
            Some((b, v)) if *b == block => {
                if !v.iter().any(|(p, _)| *p == id) {
                    v.push(saved);
                }
            }
            _ => self.history.push_back((block, vec![saved])),
        }
    }

    fn prune(&mut self, head: u64) {
        // Block numbers come from the node: saturating, so one at u64::MAX cannot wrap or panic.
        while self.history.front().is_some_and(|(b, _)| b.saturating_add(REORG_DEPTH) < head) {
            self.history.pop_front();
        }
    }

    /// Restores every pool touched at or after `block` to its state before `block`.
    fn rollback(&mut self, block: u64, recv_ns: Nanos) -> Result<Vec<PoolUpdate>> {
        let newest = self.pools.iter().filter_map(|p| p.last_log.map(|(b, _)| b)).max().unwrap_or(0);
        if block.saturating_add(REORG_DEPTH) < newest {
            return Err(NodeError::ReorgTooDeep(block));
        }
        let mut restored: HashMap<PoolId, Saved> = HashMap::new();
        while self.history.back().is_some_and(|(b, _)| *b >= block) {
            let Some((_, saved)) = self.history.pop_back() else { break };
            for (id, before) in saved {
                // Later entries are popped first; the earliest saved state wins.
                restored.insert(id, before);
            }
        }
        let mut updates = Vec::with_capacity(restored.len());
        let mut ids: Vec<_> = restored.into_iter().collect();
        ids.sort_by_key(|(id, _)| *id);
        for (id, (state, b, last)) in ids {
            let entry = &mut self.pools[id as usize];
            entry.state = state.clone();
            entry.block = b;
            entry.last_log = last;
            if let Some(s) = state {
                updates.push(PoolUpdate {
                    pool: id,
                    address: entry.pool.address,
                    block: b,
                    change: PoolChange::Snapshot(Box::new(s)),
                    recv_ns,
                });
            }
        }
        Ok(updates)
    }
}

/// A V4 `ProtocolFeeUpdated` log: the pool's whole state with its new protocol fee (the pool
/// model has no delta for it); `None` for any other log.
fn protocol_fee_change(entry: &PoolEntry, log: &Log) -> Result<Option<PoolChange>> {
    if entry.pool.kind != PoolKind::V4
        || log.topic0() != Some(&IPoolManager::ProtocolFeeUpdated::SIGNATURE_HASH)
    {
        return Ok(None);
    }
    let e = IPoolManager::ProtocolFeeUpdated::decode_log(&log.inner)
        .map_err(|e| NodeError::Decode(format!("log at {}: {e}", log.address())))?;
    let Some(Pool::V4(p)) = &entry.state else {
        return Err(NodeError::Inconsistent(format!("v4 pool {} has no v4 state", e.id)));
    };
    let mut p = p.clone();
    p.set_protocol_fee(e.protocolFee.to::<u32>())
        .map_err(|err| NodeError::Inconsistent(format!("v4 pool {}: {err}", e.id)))?;
    Ok(Some(PoolChange::Snapshot(Box::new(Pool::V4(p)))))
}

/// Decodes a pool event into a change; `None` for events the book does not track.
pub fn decode_change(kind: PoolKind, log: &Log) -> Result<Option<PoolChange>> {
    let Some(topic0) = log.topic0().copied() else { return Ok(None) };
    let bad = |e: alloy::sol_types::Error| NodeError::Decode(format!("log at {}: {e}", log.address()));
    Ok(match kind {
        PoolKind::V2 if topic0 == IUniswapV2Pair::Sync::SIGNATURE_HASH => {
            let e = IUniswapV2Pair::Sync::decode_log(&log.inner).map_err(bad)?;
            Some(PoolChange::V2 { reserve0: U256::from(e.reserve0), reserve1: U256::from(e.reserve1) })
        }
        PoolKind::V3 if topic0 == IUniswapV3Pool::Swap::SIGNATURE_HASH => {
            let e = IUniswapV3Pool::Swap::decode_log(&log.inner).map_err(bad)?;
            Some(PoolChange::V3Swap {
                sqrt_price_x96: U256::from(e.sqrtPriceX96),
                tick: e.tick.as_i32(),
                liquidity: e.liquidity,
            })
        }
        PoolKind::V3 if topic0 == IUniswapV3Pool::Mint::SIGNATURE_HASH => {
            let e = IUniswapV3Pool::Mint::decode_log(&log.inner).map_err(bad)?;
            let delta =
                i128::try_from(e.amount).map_err(|_| NodeError::Decode("mint amount > i128".into()))?;
            Some(PoolChange::V3Position {
                tick_lower: e.tickLower.as_i32(),
                tick_upper: e.tickUpper.as_i32(),
                liquidity_delta: delta,
            })
        }
        PoolKind::V3 if topic0 == IUniswapV3Pool::Burn::SIGNATURE_HASH => {
            let e = IUniswapV3Pool::Burn::decode_log(&log.inner).map_err(bad)?;
            let delta =
                i128::try_from(e.amount).map_err(|_| NodeError::Decode("burn amount > i128".into()))?;
            Some(PoolChange::V3Position {
                tick_lower: e.tickLower.as_i32(),
                tick_upper: e.tickUpper.as_i32(),
                liquidity_delta: -delta,
            })
        }
        PoolKind::V4 if topic0 == IPoolManager::Swap::SIGNATURE_HASH => {
            let e = IPoolManager::Swap::decode_log(&log.inner).map_err(bad)?;
            Some(PoolChange::V3Swap {
                sqrt_price_x96: U256::from(e.sqrtPriceX96),
                tick: e.tick.as_i32(),
                liquidity: e.liquidity,
            })
        }
        PoolKind::V4 if topic0 == IPoolManager::ModifyLiquidity::SIGNATURE_HASH => {
            let e = IPoolManager::ModifyLiquidity::decode_log(&log.inner).map_err(bad)?;
            // `Pool.modifyLiquidity` takes `liquidityDelta.toInt128()`: a wider one reverted.
            let delta = i128::try_from(e.liquidityDelta)
                .map_err(|_| NodeError::Decode("v4 liquidity delta > i128".into()))?;
            Some(PoolChange::V3Position {
                tick_lower: e.tickLower.as_i32(),
                tick_upper: e.tickUpper.as_i32(),
                liquidity_delta: delta,
            })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, LogData, aliases::U112};

    fn sync_log(pool: Address, block: u64, index: u64, r0: u64, r1: u64, removed: bool) -> Log {
        let data =
            IUniswapV2Pair::Sync { reserve0: U112::from(r0), reserve1: U112::from(r1) }.encode_log_data();
        Log {
            inner: alloy::primitives::Log {
                address: pool,
                data: LogData::new_unchecked(data.topics().to_vec(), data.data),
            },
            block_hash: Some(B256::repeat_byte(block as u8)),
            block_number: Some(block),
            block_timestamp: None,
            transaction_hash: None,
            transaction_index: Some(0),
            log_index: Some(index),
            removed,
        }
    }

    fn reserves(book: &PoolBook, a: Address) -> (u64, u64) {
        match book.state_of(a) {
            Some(Pool::V2 { reserve0, reserve1, .. }) => (reserve0.to(), reserve1.to()),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn applies_in_order_ignores_duplicates_and_rolls_back_a_reorg() {
        let a = Address::repeat_byte(1);
        let mut book = PoolBook::new(&[TrackedPool {
            address: a,
            kind: PoolKind::V2,
            fee: 30,
            tick_spacing: None,
            pool_key: None,
        }]);
        book.set_state(
            0,
            Pool::V2 { reserve0: U256::from(10u64), reserve1: U256::from(20u64), fee_bps: 30 },
            5,
            0,
        );
        // A log from the loaded block itself is already reflected.
        assert_eq!(book.apply_log(&sync_log(a, 5, 3, 1, 1, false), 0).unwrap(), Applied::Ignored);
        assert!(matches!(book.apply_log(&sync_log(a, 6, 0, 11, 19, false), 0).unwrap(), Applied::Updated(_)));
        assert!(matches!(book.apply_log(&sync_log(a, 7, 2, 12, 18, false), 0).unwrap(), Applied::Updated(_)));
        assert!(matches!(book.apply_log(&sync_log(a, 7, 4, 13, 17, false), 0).unwrap(), Applied::Updated(_)));
        assert_eq!(book.apply_log(&sync_log(a, 7, 2, 99, 99, false), 0).unwrap(), Applied::Ignored);
        assert_eq!(reserves(&book, a), (13, 17));
        assert_eq!(book.get(0).unwrap().block, 7);
        // Block 7 is reorged out: back to the state after block 6.
        match book.apply_log(&sync_log(a, 7, 2, 12, 18, true), 0).unwrap() {
            Applied::RolledBack(u) => assert_eq!(u.len(), 1),
            x => panic!("{x:?}"),
        }
        assert_eq!(reserves(&book, a), (11, 19));
        assert_eq!(book.get(0).unwrap().block, 6);
        // The new canonical block 7 applies.
        book.apply_log(&sync_log(a, 7, 1, 30, 40, false), 0).unwrap();
        assert_eq!(reserves(&book, a), (30, 40));
        // The router's pool model follows the published updates with the same `Pool::apply`.
        let mut mirror = Pool::V2 { reserve0: U256::from(10u64), reserve1: U256::from(20u64), fee_bps: 30 };
        let snap = book.clone().set_state(0, book.state_of(a).unwrap().clone(), 7, 0).unwrap();
        mirror.apply(&snap.change).unwrap();
        assert_eq!(Some(&mirror), book.state_of(a));
    }

    fn v4_log(manager: Address, block: u64, index: u64, data: alloy::primitives::LogData) -> Log {
        Log {
            inner: alloy::primitives::Log { address: manager, data },
            block_hash: Some(B256::repeat_byte(block as u8)),
            block_number: Some(block),
            block_timestamp: None,
            transaction_hash: None,
            transaction_index: Some(0),
            log_index: Some(index),
            removed: false,
        }
    }

    #[test]
    fn v4_logs_of_one_manager_are_told_apart_by_pool_id() {
        use alloy::primitives::aliases::{I24, U24, U160};
        use keel_amm::v3::tick_math::get_sqrt_ratio_at_tick;
        let manager = Address::repeat_byte(0x4d);
        let key = |fee: u32, tick_spacing: i32| PoolKey {
            currency0: Address::repeat_byte(1),
            currency1: Address::repeat_byte(2),
            fee,
            tick_spacing,
            hooks: Address::ZERO,
        };
        let (k0, k1) = (key(3000, 60), key(500, 10));
        let tracked = |k: PoolKey| TrackedPool::v4(manager, k);
        let mut book = PoolBook::new(&[tracked(k0), tracked(k1)]);
        let l = 10u128.pow(20);
        for (i, k) in [k0, k1].into_iter().enumerate() {
            let s = k.tick_spacing;
            let ticks = [
                keel_amm::v3::TickInfo { index: -100 * s, liquidity_net: l as i128 },
                keel_amm::v3::TickInfo { index: 100 * s, liquidity_net: -(l as i128) },
            ];
            let p = keel_amm::v4::V4Pool::new(k, get_sqrt_ratio_at_tick(0).unwrap(), 0, l, k.fee, 0, &ticks)
                .unwrap();
            book.set_state(i as u32, Pool::V4(Box::new(p)), 5, 0);
        }
        // A swap on the second pool changes only the second pool.
        let swap = IPoolManager::Swap {
            id: k1.id(),
            sender: Address::repeat_byte(9),
            amount0: -5,
            amount1: 4,
            sqrtPriceX96: U160::from(get_sqrt_ratio_at_tick(7).unwrap()),
            liquidity: l,
            tick: I24::try_from(7).unwrap(),
            fee: U24::from(500u32),
        };
        let Applied::Updated(u) = book.apply_log(&v4_log(manager, 6, 0, swap.encode_log_data()), 0).unwrap()
        else {
            panic!("swap not applied")
        };
        assert_eq!(u.pool, 1);
        let tick = |book: &PoolBook, i: u32| match &book.get(i).unwrap().state {
            Some(Pool::V4(p)) => p.state().tick,
            s => panic!("{s:?}"),
        };
        assert_eq!((tick(&book, 0), tick(&book, 1)), (0, 7));
        // A position on the first pool.
        let modify = IPoolManager::ModifyLiquidity {
            id: k0.id(),
            sender: Address::repeat_byte(9),
            tickLower: I24::try_from(-60).unwrap(),
            tickUpper: I24::try_from(120).unwrap(),
            liquidityDelta: alloy::primitives::I256::try_from(1_000i64).unwrap(),
            salt: B256::ZERO,
        };
        let Applied::Updated(u) =
            book.apply_log(&v4_log(manager, 6, 1, modify.encode_log_data()), 0).unwrap()
        else {
            panic!("position not applied")
        };
        assert_eq!(u.pool, 0);
        assert_eq!(
            u.change,
            PoolChange::V3Position { tick_lower: -60, tick_upper: 120, liquidity_delta: 1_000 }
        );
        // Another pool's id, or the right id from another address, is not ours.
        let mut other = swap.clone();
        other.id = key(100, 1).id();
        assert_eq!(
            book.apply_log(&v4_log(manager, 6, 2, other.encode_log_data()), 0).unwrap(),
            Applied::Ignored
        );
        let elsewhere = v4_log(Address::repeat_byte(0x4e), 6, 3, swap.encode_log_data());
        assert_eq!(book.apply_log(&elsewhere, 0).unwrap(), Applied::Ignored);
        // A protocol fee update republishes the pool with the new fee (zeroForOne 0.05%).
        let fee = IPoolManager::ProtocolFeeUpdated { id: k0.id(), protocolFee: U24::from(500u32) };
        let Applied::Updated(u) = book.apply_log(&v4_log(manager, 7, 0, fee.encode_log_data()), 0).unwrap()
        else {
            panic!("protocol fee not applied")
        };
        let PoolChange::Snapshot(p) = u.change else { panic!("not a snapshot") };
        let Pool::V4(p) = *p else { panic!("not v4") };
        assert_eq!((p.protocol_fee(), p.swap_fee(true), p.swap_fee(false)), (500, 3499, 3000));
        // A protocol fee the PoolManager could never set is an inconsistency (resync).
        let bad = IPoolManager::ProtocolFeeUpdated { id: k0.id(), protocolFee: U24::from(1001u32) };
        assert!(matches!(
            book.apply_log(&v4_log(manager, 7, 1, bad.encode_log_data()), 0),
            Err(NodeError::Inconsistent(_))
        ));
    }

    /// Found by `keel-bench fuzz --target logs`: a log at a block near `u64::MAX` overflowed the
    /// history's prune (and a removed one the reorg depth check).
    #[test]
    fn logs_at_the_last_block_numbers_neither_wrap_nor_panic() {
        let a = Address::repeat_byte(1);
        let mut book = PoolBook::new(&[TrackedPool {
            address: a,
            kind: PoolKind::V2,
            fee: 30,
            tick_spacing: None,
            pool_key: None,
        }]);
        book.set_state(
            0,
            Pool::V2 { reserve0: U256::from(10u64), reserve1: U256::from(20u64), fee_bps: 30 },
            5,
            0,
        );
        let last = u64::MAX;
        assert!(matches!(
            book.apply_log(&sync_log(a, last - 1, 0, 11, 19, false), 0),
            Ok(Applied::Updated(_))
        ));
        assert!(matches!(book.apply_log(&sync_log(a, last, 0, 12, 18, false), 0), Ok(Applied::Updated(_))));
        book.advance_to(last);
        match book.apply_log(&sync_log(a, last, 0, 12, 18, true), 0) {
            Ok(Applied::RolledBack(u)) => assert_eq!(u.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(reserves(&book, a), (11, 19));
        // A removed log far below a block near the end is a reorg too deep, not a wrap.
        assert!(matches!(book.apply_log(&sync_log(a, 1, 0, 1, 1, true), 0), Err(NodeError::ReorgTooDeep(1))));
    }
}
