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

/// Gas of a Router02 swap with one hop (measured on anvil: about 98k).
pub const GAS_ROUTER_SWAP: u64 = 98_000;
/// Extra gas per additional hop of a Router02 swap.
pub const GAS_EXTRA_HOP: u64 = 20_000;
/// Gas of an ERC-20 `approve`.
pub const GAS_APPROVE: u64 = 46_000;
/// Gas of an ERC-20 `transfer`.
pub const GAS_TRANSFER: u64 = 51_000;
/// Gas of a plain ETH transfer (or a call to an address without code).
pub const GAS_ETH_TRANSFER: u64 = 21_000;
/// Gas charged for a call to a simulated contract that reverts before doing anything (unknown
/// selector, value sent to a non-payable function).
pub const GAS_BAD_CALL: u64 = 30_000;
/// The block's fee recipient (priority fees are credited to it).
pub const COINBASE: Address = Address::new([0xc0; 20]);

/// Largest reserve a V2 pair can hold (`uint112`).
fn max_reserve() -> U256 {
    (U256::from(1u8) << 112) - U256::from(1u8)
}

/// A token's reference price in the numeraire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefPrice {
    /// The mid of a board symbol.
    Board(usize),
    /// A fixed price.
    Fixed(f64),
    /// No reference (the token is in no simulated pool, or its instrument is not served).
    None,
}

/// A token the chain knows.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub(crate) symbol: String,
    pub(crate) address: Address,
    pub(crate) decimals: u8,
    pub(crate) price: RefPrice,
}

/// A simulated V2 pool.
#[derive(Debug, Clone)]
pub(crate) struct PoolInfo {
    pub(crate) name: String,
    pub(crate) address: Address,
    pub(crate) dex: usize,
    pub(crate) token0: usize,
    pub(crate) token1: usize,
    pub(crate) fee_bps: u32,
}

/// A simulated V2 DEX (its Router02 address).
#[derive(Debug, Clone)]
pub(crate) struct DexInfo {
    pub(crate) name: String,
    pub(crate) router: Address,
}

/// Everything fixed at start: tokens, DEXes, pools and their indexes.
#[derive(Debug)]
pub(crate) struct Universe {
    pub(crate) chain_id: u64,
    pub(crate) gas_limit: u64,
    pub(crate) arbitrage: bool,
    pub(crate) tokens: Vec<TokenInfo>,
    pub(crate) token_by_addr: HashMap<Address, usize>,
    pub(crate) dexes: Vec<DexInfo>,
    pub(crate) dex_by_router: HashMap<Address, usize>,
    pub(crate) pools: Vec<PoolInfo>,
    pub(crate) pool_by_addr: HashMap<Address, usize>,
    /// (dex, lower token address, higher token address) → pool.
    pub(crate) pool_by_pair: HashMap<(usize, Address, Address), usize>,
}

impl Universe {
    fn pool_for(&self, dex: usize, a: Address, b: Address) -> Option<usize> {
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        self.pool_by_pair.get(&(dex, lo, hi)).copied()
    }
}

/// Mutable chain state; cloned to execute a bundle atomically.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    /// (reserve0, reserve1) per pool index.
    pub(crate) reserves: Vec<(U256, U256)>,
    /// `blockTimestampLast` per pool index.
    pub(crate) reserve_ts: Vec<u32>,
    /// ERC-20 balances: (token index, owner) → amount. A pool's own tokens are its reserves instead.
    pub(crate) erc20: HashMap<(usize, Address), U256>,
    /// Allowances: (token index, owner, spender) → amount.
    pub(crate) allowances: HashMap<(usize, Address, Address), U256>,
    /// Native balances.
    pub(crate) eth: HashMap<Address, U256>,
    /// Account nonces.
    pub(crate) nonces: HashMap<Address, u64>,
}

impl State {
    /// ERC-20 balance, counting a pool's reserves as its balance of its own tokens.
    pub(crate) fn balance_of(&self, u: &Universe, token: usize, owner: Address) -> U256 {
        let held = self.erc20.get(&(token, owner)).copied().unwrap_or_default();
        if let Some(&p) = u.pool_by_addr.get(&owner) {
            let pool = &u.pools[p];
            if pool.token0 == token {
                return held + self.reserves[p].0;
            }
            if pool.token1 == token {
                return held + self.reserves[p].1;
            }
        }
        held
    }

    pub(crate) fn eth_of(&self, who: Address) -> U256 {
        self.eth.get(&who).copied().unwrap_or_default()
    }

    pub(crate) fn nonce_of(&self, who: Address) -> u64 {
        self.nonces.get(&who).copied().unwrap_or_default()
    }

    fn allowance(&self, token: usize, owner: Address, spender: Address) -> U256 {
        self.allowances.get(&(token, owner, spender)).copied().unwrap_or_default()
    }

    fn credit(&mut self, token: usize, who: Address, amount: U256) {
        *self.erc20.entry((token, who)).or_default() += amount;
    }
}

/// The block a transaction executes in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecEnv {
    pub(crate) timestamp: u64,
    pub(crate) base_fee: u64,
}

/// A transaction that was valid and executed (successfully or reverted).
#[derive(Debug, Clone)]
pub(crate) struct Executed {
    pub(crate) tx: Recovered<TxEnvelope>,
    pub(crate) success: bool,
    pub(crate) gas_used: u64,
    pub(crate) effective_gas_price: u128,
    /// Return data on success, the ABI-encoded `Error(string)` on revert.
    pub(crate) output: Bytes,
    /// The revert reason.
    pub(crate) revert: Option<String>,
}

impl Executed {
    pub(crate) fn hash(&self) -> B256 {
        *self.tx.inner().tx_hash()
    }
    /// Gas fees paid (gas used × effective price), wei.
    pub(crate) fn fees(&self) -> U256 {
        U256::from(self.gas_used) * U256::from(self.effective_gas_price)
    }
}

/// Decodes a raw EIP-2718 transaction (legacy, EIP-2930 or EIP-1559), checks its chain id and recovers
/// its sender.
pub(crate) fn decode_signed_tx(raw: &[u8], chain_id: u64) -> Result<Recovered<TxEnvelope>, String> {
    let env = TxEnvelope::decode_2718_exact(raw).map_err(|e| format!("undecodable transaction: {e}"))?;
    match env.tx_type() {
        TxType::Legacy | TxType::Eip2930 | TxType::Eip1559 => {}
        other => return Err(format!("unsupported transaction type {other}")),
    }
    match env.chain_id() {
        Some(id) if id == chain_id => {}
        Some(id) => return Err(format!("transaction chain id {id}, expected {chain_id}")),
        None => return Err("pre-EIP-155 transaction without chain id".to_owned()),
    }
    let signer = env.recover_signer().map_err(|e| format!("cannot recover the sender: {e}"))?;
    Ok(Recovered::new_unchecked(env, signer))
}

/// What a call does, decided from its target and calldata before executing (to know its gas).
enum Op {
    SwapExactIn { dex: usize, call: IUniswapV2Router02::swapExactTokensForTokensCall },
    SwapExactOut { dex: usize, call: IUniswapV2Router02::swapTokensForExactTokensCall },
    Approve { token: usize, call: IERC20::approveCall },
    Transfer { token: usize, call: IERC20::transferCall },
    Plain,
    Fail { gas: u64, reason: String },
}

impl Op {
    fn decode(u: &Universe, to: Address, value: U256, input: &[u8]) -> Op {
        let fail = |reason: &str| Op::Fail { gas: GAS_BAD_CALL, reason: reason.to_owned() };
        if let Some(&dex) = u.dex_by_router.get(&to) {
            if !value.is_zero() {
                return fail("non-payable function received value");
            }
            return match selector(input) {
                Some(IUniswapV2Router02::swapExactTokensForTokensCall::SELECTOR) => {
                    match IUniswapV2Router02::swapExactTokensForTokensCall::abi_decode(input) {
                        Ok(call) => Op::SwapExactIn { dex, call },
                        Err(_) => fail("malformed calldata for swapExactTokensForTokens"),
                    }
                }
                Some(IUniswapV2Router02::swapTokensForExactTokensCall::SELECTOR) => {
                    match IUniswapV2Router02::swapTokensForExactTokensCall::abi_decode(input) {
                        Ok(call) => Op::SwapExactOut { dex, call },
                        Err(_) => fail("malformed calldata for swapTokensForExactTokens"),
                    }
                }
                _ => fail("function not supported by the simulated Router02"),
            };
        }
        if let Some(&token) = u.token_by_addr.get(&to) {
            if !value.is_zero() {
                return fail("non-payable function received value");
            }
            return match selector(input) {
                Some(IERC20::approveCall::SELECTOR) => match IERC20::approveCall::abi_decode(input) {
                    Ok(call) => Op::Approve { token, call },
                    Err(_) => fail("malformed calldata for approve"),
                },
                Some(IERC20::transferCall::SELECTOR) => match IERC20::transferCall::abi_decode(input) {
                    Ok(call) => Op::Transfer { token, call },
                    Err(_) => fail("malformed calldata for transfer"),
                },
                _ => fail("function not supported by the simulated ERC-20"),
            };
        }
        if u.pool_by_addr.contains_key(&to) {
            return fail("direct pair calls are not supported by the simulation; use the Router02");
        }
        Op::Plain
    }

    fn gas(&self) -> u64 {
        let hops = |n: usize| GAS_ROUTER_SWAP + GAS_EXTRA_HOP * (n.saturating_sub(2) as u64);
        match self {
            Op::SwapExactIn { call, .. } => hops(call.path.len()),
            Op::SwapExactOut { call, .. } => hops(call.path.len()),
            Op::Approve { .. } => GAS_APPROVE,
            Op::Transfer { .. } => GAS_TRANSFER,
            Op::Plain => GAS_ETH_TRANSFER,
            Op::Fail { gas, .. } => *gas,
        }
    }
}

fn selector(input: &[u8]) -> Option<[u8; 4]> {
    input.get(..4).map(|s| [s[0], s[1], s[2], s[3]])
}

fn v2_reason(e: V2Error, exact_out: bool) -> String {
    match e {
        V2Error::InsufficientAmount if exact_out => "UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT".to_owned(),
        V2Error::InsufficientAmount => "UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT".to_owned(),
        V2Error::InsufficientLiquidity => "UniswapV2Library: INSUFFICIENT_LIQUIDITY".to_owned(),
        V2Error::BadFee(f) => format!("pool fee {f} bps is invalid"),
    }
}

/// One hop of a path: the pool and whether the input is its token0.
#[derive(Debug, Clone, Copy)]
struct Hop {
    pool: usize,
    in_is_0: bool,
    token_in: usize,
}

fn resolve_path(u: &Universe, dex: usize, path: &[Address]) -> Result<Vec<Hop>, String> {
    if path.len() < 2 {
        return Err("UniswapV2Library: INVALID_PATH".to_owned());
    }
    path.windows(2)
        .map(|w| {
            if w[0] == w[1] {
                return Err("UniswapV2Library: IDENTICAL_ADDRESSES".to_owned());
            }
            let pool = u
                .pool_for(dex, w[0], w[1])
                .ok_or_else(|| format!("no pair for {}/{} on DEX `{}`", w[0], w[1], u.dexes[dex].name))?;
            let p = &u.pools[pool];
            let in_is_0 = u.tokens[p.token0].address == w[0];
            Ok(Hop { pool, in_is_0, token_in: if in_is_0 { p.token0 } else { p.token1 } })
        })
        .collect()
}

/// Router02 `getAmountsOut`: every hop quoted on the current reserves.
fn amounts_out(u: &Universe, st: &State, hops: &[Hop], amount_in: U256) -> Result<Vec<U256>, String> {
    // No pair can take more than uint112 (and the math below stays far from 256-bit wrap-around).
    if amount_in > max_reserve() {
        return Err("UniswapV2: OVERFLOW".to_owned());
    }
    let mut amounts = vec![amount_in];
    for h in hops {
        let (r0, r1) = st.reserves[h.pool];
        let (rin, rout) = if h.in_is_0 { (r0, r1) } else { (r1, r0) };
        let last = amounts[amounts.len() - 1];
        amounts.push(
            v2::get_amount_out(last, rin, rout, u.pools[h.pool].fee_bps).map_err(|e| v2_reason(e, false))?,
        );
    }
    Ok(amounts)
}

/// Router02 `getAmountsIn`.
fn amounts_in(u: &Universe, st: &State, hops: &[Hop], amount_out: U256) -> Result<Vec<U256>, String> {
    if amount_out > max_reserve() {
        return Err("UniswapV2Library: INSUFFICIENT_LIQUIDITY".to_owned());
    }
    let mut amounts = vec![U256::ZERO; hops.len() + 1];
    amounts[hops.len()] = amount_out;
    for (i, h) in hops.iter().enumerate().rev() {
        let (r0, r1) = st.reserves[h.pool];
        let (rin, rout) = if h.in_is_0 { (r0, r1) } else { (r1, r0) };
        amounts[i] = v2::get_amount_in(amounts[i + 1], rin, rout, u.pools[h.pool].fee_bps)
            .map_err(|e| v2_reason(e, true))?;
        if amounts[i] > max_reserve() {
            return Err("UniswapV2: OVERFLOW".to_owned());
        }
    }
    Ok(amounts)
}

/// Executes the router's `_swap` over `hops` with the precomputed `amounts`: pulls `amounts[0]` from
/// `from` (allowance to `router` and balance checked), moves each pair's reserves (checking the pair's
/// fee-adjusted K invariant and `uint112` bound, as `UniswapV2Pair.swap` does), pays the last amount to
/// `to`. Atomic: nothing is written unless every check passes.
#[allow(clippy::too_many_arguments)]
fn router_swap(
    u: &Universe,
    st: &mut State,
    env: &ExecEnv,
    hops: &[Hop],
    amounts: &[U256],
    from: Address,
    router: Address,
    to: Address,
) -> Result<(), String> {
    let token_in = hops[0].token_in;
    let amount_in = amounts[0];
    let allowance = st.allowance(token_in, from, router);
    if allowance < amount_in || st.balance_of(u, token_in, from) < amount_in {
        return Err("TransferHelper: TRANSFER_FROM_FAILED".to_owned());
    }
    if u.pool_by_addr.contains_key(&from) {
        return Err("the simulation does not let a pair swap its own reserves".to_owned());
    }
    let mut reserves = st.reserves.clone();
    let bps = U256::from(10_000u64);
    for (i, h) in hops.iter().enumerate() {
        let (a_in, a_out) = (amounts[i], amounts[i + 1]);
        let (r0, r1) = reserves[h.pool];
        let (rin, rout) = if h.in_is_0 { (r0, r1) } else { (r1, r0) };
        if a_out >= rout {
            return Err("UniswapV2: INSUFFICIENT_LIQUIDITY".to_owned());
        }
        let (nin, nout) = (rin + a_in, rout - a_out);
        // balanceAdjusted = balance·10000 − amountIn·fee; require adjIn·adjOut ≥ rin·rout·10000²
        let fee = U256::from(u.pools[h.pool].fee_bps);
        let adj_in = nin * bps - a_in * fee;
        let adj_out = nout * bps;
        if adj_in * adj_out < rin * rout * bps * bps {
            return Err("UniswapV2: K".to_owned());
        }
        if nin > max_reserve() || nout > max_reserve() {
            return Err("UniswapV2: OVERFLOW".to_owned());
        }
        reserves[h.pool] = if h.in_is_0 { (nin, nout) } else { (nout, nin) };
    }
    // Commit.
    let held = st.erc20.entry((token_in, from)).or_default();
    *held -= amount_in;
    if allowance != U256::MAX {
        st.allowances.insert((token_in, from, router), allowance - amount_in);
    }
    for h in hops {
        st.reserve_ts[h.pool] = env.timestamp as u32;
    }
    st.reserves = reserves;
    let last = hops[hops.len() - 1];
    let p = &u.pools[last.pool];
    let token_out = if last.in_is_0 { p.token1 } else { p.token0 };
    st.credit(token_out, to, amounts[amounts.len() - 1]);
    Ok(())
}

/// Applies `op` (state untouched on error). Returns the call's return data.
fn apply_op(
    u: &Universe,
    st: &mut State,
    env: &ExecEnv,
    from: Address,
    to: Address,
    value: U256,
    op: &Op,
) -> Result<Bytes, String> {
    match op {
        Op::SwapExactIn { dex, call } => {
            if call.deadline < U256::from(env.timestamp) {
                return Err("UniswapV2Router: EXPIRED".to_owned());
            }
            let hops = resolve_path(u, *dex, &call.path)?;
            let amounts = amounts_out(u, st, &hops, call.amountIn)?;
            if amounts[amounts.len() - 1] < call.amountOutMin {
                return Err("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT".to_owned());
            }
            router_swap(u, st, env, &hops, &amounts, from, to, call.to)?;
            Ok(IUniswapV2Router02::swapExactTokensForTokensCall::abi_encode_returns(&amounts).into())
        }
        Op::SwapExactOut { dex, call } => {
            if call.deadline < U256::from(env.timestamp) {
                return Err("UniswapV2Router: EXPIRED".to_owned());
            }
            let hops = resolve_path(u, *dex, &call.path)?;
            let amounts = amounts_in(u, st, &hops, call.amountOut)?;
            if amounts[0] > call.amountInMax {
                return Err("UniswapV2Router: EXCESSIVE_INPUT_AMOUNT".to_owned());
            }
            router_swap(u, st, env, &hops, &amounts, from, to, call.to)?;
            Ok(IUniswapV2Router02::swapTokensForExactTokensCall::abi_encode_returns(&amounts).into())
        }
        Op::Approve { token, call } => {
            if call.spender.is_zero() {
                return Err("ERC20: approve to the zero address".to_owned());
            }
            st.allowances.insert((*token, from, call.spender), call.amount);
            Ok(IERC20::approveCall::abi_encode_returns(&true).into())
        }
        Op::Transfer { token, call } => {
            if call.to.is_zero() {
                return Err("ERC20: transfer to the zero address".to_owned());
            }
            if u.pool_by_addr.contains_key(&from) {
                return Err("the simulation does not let a pair transfer its reserves".to_owned());
            }
            let bal = st.balance_of(u, *token, from);
            if bal < call.amount {
                return Err("ERC20: transfer amount exceeds balance".to_owned());
            }
            st.erc20.insert((*token, from), bal - call.amount);
            st.credit(*token, call.to, call.amount);
            Ok(IERC20::transferCall::abi_encode_returns(&true).into())
        }
        Op::Plain => {
            if !value.is_zero() {
                // Funds were checked up front (gas_limit × max_fee + value).
                let f = st.eth.entry(from).or_default();
                *f -= value;
                *st.eth.entry(to).or_default() += value;
            }
            Ok(Bytes::new())
        }
        Op::Fail { reason, .. } => Err(reason.clone()),
    }
}

/// Executes a transaction on `st`. `Err` = invalid (not includable; `st` untouched); `Ok` = included,
/// successful or reverted (nonce bumped and gas paid either way).
pub(crate) fn execute(
    u: &Universe,
    st: &mut State,
    env: &ExecEnv,
    tx: &Recovered<TxEnvelope>,
) -> Result<Executed, String> {
    let from = tx.signer();
    let t = tx.inner();
    if t.chain_id() != Some(u.chain_id) {
        return Err(format!("wrong chain id {:?}, expected {}", t.chain_id(), u.chain_id));
    }
    let nonce = st.nonce_of(from);
    if t.nonce() != nonce {
        let rel = if t.nonce() < nonce { "too low" } else { "too high" };
        return Err(format!("nonce {rel}: transaction has {}, account {from} has {nonce}", t.nonce()));
    }
    let max_fee = t.max_fee_per_gas();
    if max_fee < env.base_fee as u128 {
        return Err(format!("max fee per gas {max_fee} is below the block's base fee {}", env.base_fee));
    }
    if let Some(prio) = t.max_priority_fee_per_gas()
        && prio > max_fee
    {
        return Err(format!("max priority fee per gas {prio} is above max fee per gas {max_fee}"));
    }
    let effective = t.effective_gas_price(Some(env.base_fee));
    let upfront = U256::from(t.gas_limit()).saturating_mul(U256::from(max_fee)).saturating_add(t.value());
    let funds = st.eth_of(from);
    if funds < upfront {
        return Err(format!("insufficient funds for gas * price + value: have {funds}, want {upfront}"));
    }
    if t.gas_limit() < GAS_ETH_TRANSFER {
        return Err(format!("intrinsic gas too low: gas limit {} < {GAS_ETH_TRANSFER}", t.gas_limit()));
    }
    if t.gas_limit() > u.gas_limit {
        return Err(format!("gas limit {} exceeds the block gas limit {}", t.gas_limit(), u.gas_limit));
    }
    let (gas_used, result) = match t.kind() {
        TxKind::Create => {
            (GAS_BAD_CALL.min(t.gas_limit()), Err("contract creation is not supported".to_owned()))
        }
        TxKind::Call(to) => {
            let op = Op::decode(u, to, t.value(), t.input());
            let gas = op.gas();
            if t.gas_limit() < gas {
                (t.gas_limit(), Err("out of gas".to_owned()))
            } else {
                (gas, apply_op(u, st, env, from, to, t.value(), &op))
            }
        }
    };
    let fees = U256::from(gas_used) * U256::from(effective);
    *st.eth.entry(from).or_default() -= fees;
    let tip = U256::from(gas_used) * U256::from(effective - env.base_fee as u128);
    *st.eth.entry(COINBASE).or_default() += tip;
    st.nonces.insert(from, nonce + 1);
    let (success, output, revert) = match result {
        Ok(out) => (true, out, None),
        Err(reason) => (false, Revert::from(reason.clone()).abi_encode().into(), Some(reason)),
    };
    Ok(Executed { tx: tx.clone(), success, gas_used, effective_gas_price: effective, output, revert })
}

/// Estimates the gas of a call from `from` (`eth_estimateGas`): the operation's fixed gas, or the
/// revert reason if it would revert on the current state.
pub(crate) fn estimate_gas(
    u: &Universe,
    st: &State,
    env: &ExecEnv,
    from: Address,
    to: Option<Address>,
    value: U256,
    input: &[u8],
) -> Result<u64, String> {
    let Some(to) = to else {
        return Err("contract creation is not supported".to_owned());
    };
    if st.eth_of(from) < value {
        return Err("insufficient funds for transfer".to_owned());
    }
    let op = Op::decode(u, to, value, input);
    let mut scratch = st.clone();
    apply_op(u, &mut scratch, env, from, to, value, &op)?;
    Ok(op.gas())
}

/// Why an `eth_call` failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The call reverted with this reason.
    Revert(String),
}

/// Answers a read-only call (`eth_call`) on the current state. A call to an address without code
/// returns empty data, as a node does.
pub(crate) fn call_view(u: &Universe, st: &State, to: Address, input: &[u8]) -> Result<Bytes, CallError> {
    let rev = |s: &str| CallError::Revert(s.to_owned());
    if let Some(&token) = u.token_by_addr.get(&to) {
        return match selector(input) {
            Some(IERC20::balanceOfCall::SELECTOR) => {
                let c = IERC20::balanceOfCall::abi_decode(input).map_err(|_| rev("malformed calldata"))?;
                Ok(IERC20::balanceOfCall::abi_encode_returns(&st.balance_of(u, token, c.owner)).into())
            }
            Some(IERC20::allowanceCall::SELECTOR) => {
                let c = IERC20::allowanceCall::abi_decode(input).map_err(|_| rev("malformed calldata"))?;
                Ok(IERC20::allowanceCall::abi_encode_returns(&st.allowance(token, c.owner, c.spender)).into())
            }
            Some(IERC20::decimalsCall::SELECTOR) => {
                Ok(IERC20::decimalsCall::abi_encode_returns(&u.tokens[token].decimals).into())
            }
            _ => Err(rev("function not supported by the simulated ERC-20")),
        };
    }
    if let Some(&p) = u.pool_by_addr.get(&to) {
        let pool = &u.pools[p];
        return match selector(input) {
            Some(IUniswapV2Pair::getReservesCall::SELECTOR) => {
                let (r0, r1) = st.reserves[p];
                let ret = IUniswapV2Pair::getReservesReturn {
                    reserve0: r0.to::<alloy::primitives::aliases::U112>(),
                    reserve1: r1.to::<alloy::primitives::aliases::U112>(),
                    blockTimestampLast: st.reserve_ts[p],
                };
                Ok(IUniswapV2Pair::getReservesCall::abi_encode_returns(&ret).into())
            }
            Some(IUniswapV2Pair::token0Call::SELECTOR) => {
                Ok(IUniswapV2Pair::token0Call::abi_encode_returns(&u.tokens[pool.token0].address).into())
            }
            Some(IUniswapV2Pair::token1Call::SELECTOR) => {
                Ok(IUniswapV2Pair::token1Call::abi_encode_returns(&u.tokens[pool.token1].address).into())
            }
            _ => Err(rev("function not supported by the simulated pair")),
        };
    }
    if let Some(&dex) = u.dex_by_router.get(&to) {
        return match selector(input) {
            Some(IUniswapV2Router02::getAmountsOutCall::SELECTOR) => {
                let c = IUniswapV2Router02::getAmountsOutCall::abi_decode(input)
                    .map_err(|_| rev("malformed calldata"))?;
                let hops = resolve_path(u, dex, &c.path).map_err(CallError::Revert)?;
                let amounts = amounts_out(u, st, &hops, c.amountIn).map_err(CallError::Revert)?;
                Ok(IUniswapV2Router02::getAmountsOutCall::abi_encode_returns(&amounts).into())
            }
            _ => Err(rev("function not supported by the simulated Router02")),
        };
    }
    Ok(Bytes::new())
}

/// Lossless-enough conversion of a reserve to `f64` (analytics and the arbitrageur's sizing only).
fn to_f64(x: U256) -> f64 {
    f64::from(x)
}

/// The arbitrageur: trades `pool` until its mid is at the edge of the fee band around the reference
/// price (the profit-maximising size), with exact V2 math. Returns whether it traded.
pub(crate) fn arbitrage_pool(
    u: &Universe,
    st: &mut State,
    board: &PriceBoard,
    pool: usize,
    timestamp: u64,
) -> bool {
    let p = &u.pools[pool];
    let price = |t: usize| match u.tokens[t].price {
        RefPrice::Board(i) => Some(board.mid(i)),
        RefPrice::Fixed(f) => Some(f),
        RefPrice::None => None,
    };
    let (Some(p0), Some(p1)) = (price(p.token0), price(p.token1)) else {
        return false;
    };
    if !(p0 > 0.0 && p1 > 0.0 && p0.is_finite() && p1.is_finite()) {
        return false;
    }
    let (d0, d1) = (u.tokens[p.token0].decimals as i32, u.tokens[p.token1].decimals as i32);
    // Reference price of token0 in raw token1 units per raw token0 unit.
    let target = p0 / p1 * 10f64.powi(d1 - d0);
    let (r0, r1) = st.reserves[pool];
    let (f0, f1) = (to_f64(r0), to_f64(r1));
    if f0 <= 0.0 || f1 <= 0.0 {
        return false;
    }
    let gamma = 1.0 - p.fee_bps as f64 / 10_000.0;
    let mid = f1 / f0;
    // Optimal input x of token `in` against reference price P (in-units per out-unit):
    // x = (sqrt(γ·r_in·r_out·P) − r_in) / γ
    let (in_is_0, x) = if mid < target * gamma {
        (false, ((gamma * f1 * f0 * target).sqrt() - f1) / gamma)
    } else if mid > target / gamma {
        (true, ((gamma * f0 * f1 / target).sqrt() - f0) / gamma)
    } else {
        return false;
    };
    if !(x.is_finite() && x >= 1.0 && x < u128::MAX as f64) {
        return false;
    }
    let a_in = U256::from(x as u128);
    let (rin, rout) = if in_is_0 { (r0, r1) } else { (r1, r0) };
    let Ok(a_out) = v2::get_amount_out(a_in, rin, rout, p.fee_bps) else {
        return false;
    };
    if a_out.is_zero() || a_out >= rout || rin + a_in > max_reserve() {
        return false;
    }
    st.reserves[pool] = if in_is_0 { (rin + a_in, rout - a_out) } else { (rout - a_out, rin + a_in) };
    st.reserve_ts[pool] = timestamp as u32;
    true
}

/// A bundle waiting for its target block.
#[derive(Debug, Clone)]
pub(crate) struct PendingBundle {
    pub(crate) hash: B256,
    pub(crate) block: u64,
    pub(crate) min_timestamp: Option<u64>,
    pub(crate) max_timestamp: Option<u64>,
    pub(crate) txs: Vec<Recovered<TxEnvelope>>,
    pub(crate) reverting: HashSet<B256>,
    /// (signer, replacementUuid).
    pub(crate) uuid: Option<(Address, String)>,
}

/// What became of a bundle submitted to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleStatus {
    /// Waiting for its target block.
    Pending {
        /// Target block.
        block: u64,
    },
    /// Included, all its transactions in order, in `block`.
    Landed {
        /// Block it landed in.
        block: u64,
    },
    /// Considered at its target block and discarded as a whole.
    Failed {
        /// Target block.
        block: u64,
        /// Why (the first failing transaction and its error).
        reason: String,
    },
    /// Its target block passed without it being eligible (timestamp window missed).
    Expired {
        /// Target block.
        block: u64,
        /// Why.
        reason: String,
    },
    /// Replaced by a newer bundle with the same `replacementUuid`.
    Replaced,
    /// Cancelled with `eth_cancelBundle`.
    Cancelled,
}

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

    /// Base fee of the next block.
    pub(crate) fn next_base_fee(&self) -> u64 {
        self.head_header().inner.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(1)
    }

    /// Block by number, as the JSON-RPC serialises it.
    pub(crate) fn rpc_block(&self, number: u64, full: bool) -> Option<RpcBlock> {
        let b = self.blocks.get(usize::try_from(number).ok()?)?;
        let transactions = if full {
            BlockTransactions::Full(
                b.txs
                    .iter()
                    .enumerate()
                    .map(|(i, e)| RpcTransaction {
                        inner: e.tx.clone(),
                        block_hash: Some(b.header.hash),
                        block_number: Some(b.header.number),
                        transaction_index: Some(i as u64),
                        effective_gas_price: Some(e.effective_gas_price),
                        block_timestamp: Some(b.header.timestamp),
                    })
                    .collect(),
            )
        } else {
            BlockTransactions::Hashes(b.txs.iter().map(Executed::hash).collect())
        };
        Some(RpcBlock { header: b.header.clone(), uncles: Vec::new(), transactions, withdrawals: None })
    }

    /// `eth_feeHistory` over up to `count` blocks ending at `newest`: base fees (plus the next
    /// block's), gas-used ratios, and the priority fees paid at each percentile (by transaction, 0 in
    /// empty blocks).
    pub(crate) fn fee_history(
        &self,
        count: u64,
        newest: u64,
        percentiles: &[f64],
    ) -> alloy::rpc::types::FeeHistory {
        let newest = newest.min(self.head());
        let count = count.min(newest + 1).min(1024);
        let oldest = newest + 1 - count;
        let mut base_fee_per_gas = Vec::new();
        let mut gas_used_ratio = Vec::new();
        let mut reward = Vec::new();
        for n in oldest..=newest {
            let b = &self.blocks[n as usize];
            let base = b.header.base_fee_per_gas.unwrap_or_default();
            base_fee_per_gas.push(base as u128);
            gas_used_ratio.push(b.header.gas_used as f64 / b.header.gas_limit.max(1) as f64);
            let mut tips: Vec<u128> =
                b.txs.iter().map(|e| e.effective_gas_price.saturating_sub(base as u128)).collect();
            tips.sort_unstable();
            reward.push(
                percentiles
                    .iter()
                    .map(|p| {
                        if tips.is_empty() {
                            0
                        } else {
                            let i = ((p / 100.0) * (tips.len() - 1) as f64).round() as usize;
                            tips[i.min(tips.len() - 1)]
                        }
                    })
                    .collect(),
            );
        }
        let last = &self.blocks[newest as usize].header;
        base_fee_per_gas.push(last.inner.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(1) as u128);
        alloy::rpc::types::FeeHistory {
            base_fee_per_gas,
            gas_used_ratio,
            base_fee_per_blob_gas: Vec::new(),
            blob_gas_used_ratio: Vec::new(),
            oldest_block: oldest,
            reward: if percentiles.is_empty() { None } else { Some(reward) },
        }
    }

    /// Number of the block with `hash`.
    pub(crate) fn block_number_by_hash(&self, hash: &B256) -> Option<u64> {
        self.block_by_hash.get(hash).copied()
    }

    /// Receipt of an included transaction.
    pub(crate) fn receipt(&self, hash: &B256) -> Option<&TransactionReceipt> {
        self.receipts.get(hash)
    }

    /// A mined transaction by hash, as the JSON-RPC serialises it.
    pub(crate) fn rpc_transaction(&self, hash: &B256) -> Option<RpcTransaction> {
        let r = self.receipts.get(hash)?;
        let b = &self.blocks[r.block_number? as usize];
        let i = r.transaction_index? as usize;
        let e = &b.txs[i];
        Some(RpcTransaction {
            inner: e.tx.clone(),
            block_hash: Some(b.header.hash),
            block_number: Some(b.header.number),
            transaction_index: Some(i as u64),
            effective_gas_price: Some(e.effective_gas_price),
            block_timestamp: Some(b.header.timestamp),
        })
    }

    /// Accepts a public transaction into the mempool (the next block includes it if still valid).
    pub(crate) fn submit_public(&mut self, tx: Recovered<TxEnvelope>) -> Result<B256, String> {
        let hash = *tx.inner().tx_hash();
        if self.receipts.contains_key(&hash) || self.mempool.iter().any(|m| m.inner().tx_hash() == &hash) {
            return Err("already known".to_owned());
        }
        let nonce = self.state.nonce_of(tx.signer());
        if tx.inner().nonce() < nonce {
            return Err(format!(
                "nonce too low: transaction has {}, account has {nonce}",
                tx.inner().nonce()
            ));
        }
        self.counters.public_txs += 1;
        self.mempool.push(tx);
        Ok(hash)
    }

    /// Queues a relay bundle for its target block (which must be after the head).
    pub(crate) fn submit_bundle(&mut self, b: PendingBundle) -> Result<(), (&'static str, String)> {
        let head = self.head();
        if b.block <= head {
            return Err((
                "past_block",
                format!("target block {} is not after the head block {head}", b.block),
            ));
        }
        if let Some(key) = &b.uuid {
            let before = self.bundles.len();
            let mut replaced = Vec::new();
            self.bundles.retain(|o| {
                let same = o.uuid.as_ref() == Some(key);
                if same {
                    replaced.push(o.hash);
                }
                !same
            });
            self.counters.bundles_replaced += (before - self.bundles.len()) as u64;
            for h in replaced {
                if h != b.hash {
                    self.bundle_status.insert(h, BundleStatus::Replaced);
                }
            }
        }
        self.counters.bundles_received += 1;
        if !matches!(self.bundle_status.get(&b.hash), Some(BundleStatus::Landed { .. })) {
            self.bundle_status.insert(b.hash, BundleStatus::Pending { block: b.block });
        }
        self.bundles.push(b);
        Ok(())
    }

    /// Cancels the pending bundles of `signer` with `uuid`; returns how many.
    pub(crate) fn cancel_bundle(&mut self, signer: Address, uuid: &str) -> usize {
        let mut cancelled = Vec::new();
        self.bundles.retain(|o| {
            let hit = o.uuid.as_ref().is_some_and(|(s, u)| *s == signer && u == uuid);
            if hit {
                cancelled.push(o.hash);
            }
            !hit
        });
        self.counters.bundles_cancelled += cancelled.len() as u64;
        for h in &cancelled {
            self.bundle_status.insert(*h, BundleStatus::Cancelled);
        }
        cancelled.len()
    }

    /// Counts a rejected bundle under `reason`.
    pub(crate) fn count_rejected(&mut self, reason: &str) {
        *self.counters.bundles_rejected.entry(reason.to_owned()).or_default() += 1;
    }

    /// Status of a bundle by hash.
    pub(crate) fn bundle_status(&self, hash: &B256) -> Option<BundleStatus> {
        self.bundle_status.get(hash).cloned()
    }

    /// Runs a bundle's transactions on `st`: `Err((index, reason))` for the first transaction that is
    /// invalid or reverts without being allowed to.
    pub(crate) fn run_bundle(
        u: &Universe,
        st: &mut State,
        env: &ExecEnv,
        txs: &[Recovered<TxEnvelope>],
        reverting: &HashSet<B256>,
    ) -> Result<Vec<Executed>, (usize, String)> {
        let mut out = Vec::with_capacity(txs.len());
        for (i, tx) in txs.iter().enumerate() {
            let e = execute(u, st, env, tx).map_err(|e| (i, e))?;
            if !e.success && !reverting.contains(&e.hash()) {
                return Err((i, format!("reverted: {}", e.revert.unwrap_or_default())));
            }
            out.push(e);
        }
        Ok(out)
    }

    /// Builds, executes and seals the next block at wall-clock `now_secs`. Returns its number.
    pub(crate) fn produce_block(&mut self, now_secs: u64, board: &PriceBoard) -> u64 {
        let u = self.u.clone();
        let parent = self.head_header().clone();
        let number = parent.number + 1;
        let env = ExecEnv { timestamp: now_secs.max(parent.timestamp), base_fee: self.next_base_fee() };
        let mut included: Vec<Executed> = Vec::new();
        let mut gas_used = 0u64;

        // (a) bundles for this block, in arrival order; then the public mempool.
        let pending = std::mem::take(&mut self.bundles);
        let mut landed_hashes = HashSet::new();
        for b in pending {
            if b.block > number {
                self.bundles.push(b);
                continue;
            }
            if landed_hashes.contains(&b.hash)
                || matches!(self.bundle_status.get(&b.hash), Some(BundleStatus::Landed { .. }))
            {
                // The same transactions already landed (a bundle retargeted over several blocks).
                continue;
            }
            if b.block < number {
                self.counters.bundles_expired += 1;
                self.bundle_status.insert(
                    b.hash,
                    BundleStatus::Expired { block: b.block, reason: "target block passed".to_owned() },
                );
                continue;
            }
            if b.min_timestamp.is_some_and(|t| env.timestamp < t)
                || b.max_timestamp.is_some_and(|t| env.timestamp > t)
            {
                self.counters.bundles_expired += 1;
                let reason = format!(
                    "block timestamp {} outside [{:?}, {:?}]",
                    env.timestamp, b.min_timestamp, b.max_timestamp
                );
                self.bundle_status.insert(b.hash, BundleStatus::Expired { block: b.block, reason });
                continue;
            }
            let mut scratch = self.state.clone();
            let outcome = Self::run_bundle(&u, &mut scratch, &env, &b.txs, &b.reverting).and_then(|txs| {
                let g: u64 = txs.iter().map(|e| e.gas_used).sum();
                if gas_used + g > u.gas_limit {
                    Err((0, "bundle does not fit in the block's remaining gas".to_owned()))
                } else {
                    Ok(txs)
                }
            });
            match outcome {
                Ok(txs) => {
                    self.state = scratch;
                    gas_used += txs.iter().map(|e| e.gas_used).sum::<u64>();
                    included.extend(txs);
                    self.counters.bundles_landed += 1;
                    landed_hashes.insert(b.hash);
                    self.bundle_status.insert(b.hash, BundleStatus::Landed { block: number });
                }
                Err((i, reason)) => {
                    self.counters.bundles_failed += 1;
                    let reason = format!("tx {i} ({}): {reason}", b.txs[i].inner().tx_hash());
                    tracing::debug!(bundle = %b.hash, %reason, "bundle failed");
                    self.bundle_status.insert(b.hash, BundleStatus::Failed { block: number, reason });
                }
            }
        }
        // Drop still-pending duplicates of bundles that just landed.
        self.bundles.retain(|b| !landed_hashes.contains(&b.hash));

        let mempool = std::mem::take(&mut self.mempool);
        for tx in mempool {
            if gas_used + tx.inner().gas_limit() > u.gas_limit {
                self.mempool.push(tx);
                continue;
            }
            if tx.inner().nonce() > self.state.nonce_of(tx.signer()) {
                // Nonce gap: wait for the missing transactions.
                self.mempool.push(tx);
                continue;
            }
            match execute(&u, &mut self.state, &env, &tx) {
                Ok(e) => {
                    gas_used += e.gas_used;
                    self.counters.public_txs_included += 1;
                    included.push(e);
                }
                Err(reason) => {
                    self.counters.public_txs_dropped += 1;
                    tracing::debug!(tx = %tx.inner().tx_hash(), %reason, "public transaction dropped");
                }
            }
        }

        // (b) arbitrage toward the reference prices.
        if u.arbitrage {
            for pool in (0..u.pools.len()).filter(|p| !self.held.contains(p)) {
                if arbitrage_pool(&u, &mut self.state, board, pool, env.timestamp) {
                    self.counters.arbitrage_trades += 1;
                    let (r0, r1) = self.state.reserves[pool];
                    let p = &u.pools[pool];
                    tracing::trace!(
                        pool = %p.name, token0 = %u.tokens[p.token0].symbol, token1 = %u.tokens[p.token1].symbol,
                        %r0, %r1, "arbitrage"
                    );
                }
            }
        }

        // (c) seal.
        let mut cumulative = 0u64;
        let mut consensus_receipts = Vec::with_capacity(included.len());
        let mut cumulative_per_tx = Vec::with_capacity(included.len());
        for e in &included {
            cumulative += e.gas_used;
            cumulative_per_tx.push(cumulative);
            consensus_receipts.push(receipt_envelope::<alloy::primitives::Log>(e, cumulative));
        }
        let envelopes: Vec<TxEnvelope> = included.iter().map(|e| e.tx.inner().clone()).collect();
        let header = Header {
            parent_hash: parent.hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: COINBASE,
            state_root: keccak256([parent.inner.state_root.as_slice(), &number.to_be_bytes()].concat()),
            transactions_root: calculate_transaction_root(&envelopes),
            receipts_root: calculate_receipt_root(&consensus_receipts),
            number,
            gas_limit: u.gas_limit,
            gas_used,
            timestamp: env.timestamp,
            base_fee_per_gas: Some(env.base_fee),
            extra_data: Bytes::from_static(b"keel-sim"),
            ..Default::default()
        };
        let header = RpcHeader::new(header);
        for (i, e) in included.iter().enumerate() {
            let receipt = TransactionReceipt {
                inner: receipt_envelope::<RpcLog>(e, cumulative_per_tx[i]),
                transaction_hash: e.hash(),
                transaction_index: Some(i as u64),
                block_hash: Some(header.hash),
                block_number: Some(number),
                gas_used: e.gas_used,
                effective_gas_price: e.effective_gas_price,
                blob_gas_used: None,
                blob_gas_price: None,
                from: e.tx.signer(),
                to: e.tx.inner().to(),
                contract_address: None,
            };
            self.receipts.insert(e.hash(), receipt);
        }
        self.block_by_hash.insert(header.hash, number);
        self.blocks.push(SealedBlock { header, txs: included });
        number
    }
}

fn receipt_envelope<L>(e: &Executed, cumulative_gas_used: u64) -> ReceiptEnvelope<L> {
    let rwb = ReceiptWithBloom {
        receipt: Receipt { status: Eip658Value::Eip658(e.success), cumulative_gas_used, logs: Vec::new() },
        logs_bloom: Bloom::ZERO,
    };
    match e.tx.inner().tx_type() {
        TxType::Legacy => ReceiptEnvelope::Legacy(rwb),
        TxType::Eip2930 => ReceiptEnvelope::Eip2930(rwb),
        TxType::Eip4844 => ReceiptEnvelope::Eip4844(rwb),
        TxType::Eip7702 => ReceiptEnvelope::Eip7702(rwb),
        TxType::Eip1559 => ReceiptEnvelope::Eip1559(rwb),
    }
}
