//! The simulated chain: Uniswap V2 pools, ERC-20 and ETH balances, nonces, EIP-1559 blocks, and the
//! execution of signed transactions (Router02 swaps, ERC-20 `approve`/`transfer`, plain ETH
//! transfers) with exact V2 math and fixed gas per operation.
//!
//! A block is built, in order: (a) the relay's bundles targeted at it, each atomic (applied on a copy
//! of the state that is committed only if every transaction succeeded or may revert), in arrival
//! order, then the public mempool; (b) the arbitrageur trades every pool toward its reference price;
//! (c) the block is sealed (header hash over the real RLP header, receipts stored by tx hash).
//!
//! Invalid transactions (wrong chain, nonce, fee below the base fee, funds short of
//! `gas_limit × max_fee + value`) are never included. Valid ones that revert are included with status
//! 0 and pay their gas, as on Ethereum. Timestamps are wall-clock seconds, never decreasing (with
//! sub-second blocks several blocks share a second).

mod arbitrage;
mod block;
mod bundle;
mod exec;
mod ops;
mod query;
mod state;
mod view;

pub use self::bundle::BundleStatus;
pub use self::exec::{
    COINBASE, GAS_APPROVE, GAS_BAD_CALL, GAS_ETH_TRANSFER, GAS_EXTRA_HOP, GAS_ROUTER_SWAP, GAS_TRANSFER,
};
use self::ops::*;
pub(crate) use self::{arbitrage::*, bundle::*, exec::*, state::*, view::*};

use std::collections::{HashMap, HashSet};

use alloy::{
    consensus::{
        Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction, TxEnvelope, TxType,
        constants::EMPTY_OMMER_ROOT_HASH,
        proofs::{calculate_receipt_root, calculate_transaction_root},
        transaction::{Recovered, SignerRecoverable},
    },
    eips::{eip1559::BaseFeeParams, eip2718::Decodable2718},
    primitives::{Address, B256, Bloom, Bytes, TxKind, U256, keccak256},
    rpc::types::{
        Block as RpcBlock, BlockTransactions, Header as RpcHeader, Log as RpcLog,
        Transaction as RpcTransaction, TransactionReceipt,
    },
    sol_types::{Revert, SolCall, SolError},
};
use keel_amm::{
    abi::{IERC20, IUniswapV2Pair, IUniswapV2Router02},
    v2::{self, V2Error},
};

use super::price::PriceBoard;

/// Counters of the chain and relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ChainCounters {
    pub(crate) bundles_received: u64,
    pub(crate) bundles_rejected: std::collections::BTreeMap<String, u64>,
    pub(crate) bundles_landed: u64,
    pub(crate) bundles_failed: u64,
    pub(crate) bundles_expired: u64,
    pub(crate) bundles_replaced: u64,
    pub(crate) bundles_cancelled: u64,
    pub(crate) public_txs: u64,
    pub(crate) public_txs_included: u64,
    pub(crate) public_txs_dropped: u64,
    pub(crate) arbitrage_trades: u64,
    pub(crate) flows_applied: u64,
    pub(crate) flows_skipped: u64,
}

/// A sealed block and its transactions.
#[derive(Debug, Clone)]
struct SealedBlock {
    header: RpcHeader,
    txs: Vec<Executed>,
}

/// The chain: state, blocks, receipts, mempool and the relay's pending bundles. Guarded by one mutex
/// in [`super::Shared`]; nothing here awaits.
#[derive(Debug)]
pub(crate) struct Chain {
    pub(crate) u: std::sync::Arc<Universe>,
    pub(crate) state: State,
    blocks: Vec<SealedBlock>,
    block_by_hash: HashMap<B256, u64>,
    receipts: HashMap<B256, TransactionReceipt>,
    mempool: Vec<Recovered<TxEnvelope>>,
    bundles: Vec<PendingBundle>,
    bundle_status: HashMap<B256, BundleStatus>,
    pub(crate) counters: ChainCounters,
    /// Pools the arbitrageur leaves alone (test control: [`super::SimMarket::hold_pool`]).
    pub(crate) held: std::collections::HashSet<usize>,
}

impl Chain {
    /// A chain with a genesis block at `timestamp` with base fee `base_fee`.
    pub(crate) fn new(u: std::sync::Arc<Universe>, state: State, timestamp: u64, base_fee: u64) -> Self {
        let header = Header {
            number: 0,
            timestamp,
            gas_limit: u.gas_limit,
            base_fee_per_gas: Some(base_fee),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            transactions_root: calculate_transaction_root::<TxEnvelope>(&[]),
            receipts_root: calculate_receipt_root::<ReceiptEnvelope>(&[]),
            extra_data: Bytes::from_static(b"keel-sim"),
            ..Default::default()
        };
        let header = RpcHeader::new(header);
        let mut block_by_hash = HashMap::new();
        block_by_hash.insert(header.hash, 0);
        Self {
            u,
            state,
            blocks: vec![SealedBlock { header, txs: Vec::new() }],
            block_by_hash,
            receipts: HashMap::new(),
            mempool: Vec::new(),
            bundles: Vec::new(),
            bundle_status: HashMap::new(),
            counters: ChainCounters::default(),
            held: Default::default(),
        }
    }

    /// The head block's number.
    pub(crate) fn head(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    /// The head block's header.
    pub(crate) fn head_header(&self) -> &RpcHeader {
        &self.blocks[self.blocks.len() - 1].header
    }
}
