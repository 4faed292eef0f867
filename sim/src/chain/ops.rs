//! The operations a transaction can perform (Router02 swaps, ERC-20 `approve`/`transfer`, ETH
//! transfers), decoded from calldata, with exact V2 math and fixed gas.

#[allow(unused_imports)]
use super::*;

/// What a call does, decided from its target and calldata before executing (to know its gas).
pub(super) enum Op {
    SwapExactIn { dex: usize, call: IUniswapV2Router02::swapExactTokensForTokensCall },
    SwapExactOut { dex: usize, call: IUniswapV2Router02::swapTokensForExactTokensCall },
    Approve { token: usize, call: IERC20::approveCall },
    Transfer { token: usize, call: IERC20::transferCall },
    Plain,
    Fail { gas: u64, reason: String },
}

impl Op {
    pub(super) fn decode(u: &Universe, to: Address, value: U256, input: &[u8]) -> Op {
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

    pub(super) fn gas(&self) -> u64 {
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

pub(super) fn selector(input: &[u8]) -> Option<[u8; 4]> {
    input.get(..4).map(|s| [s[0], s[1], s[2], s[3]])
}

pub(super) fn v2_reason(e: V2Error, exact_out: bool) -> String {
    match e {
        V2Error::InsufficientAmount if exact_out => "UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT".to_owned(),
        V2Error::InsufficientAmount => "UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT".to_owned(),
        V2Error::InsufficientLiquidity => "UniswapV2Library: INSUFFICIENT_LIQUIDITY".to_owned(),
        V2Error::BadFee(f) => format!("pool fee {f} bps is invalid"),
    }
}

/// One hop of a path: the pool and whether the input is its token0.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hop {
    pool: usize,
    in_is_0: bool,
    token_in: usize,
}

pub(super) fn resolve_path(u: &Universe, dex: usize, path: &[Address]) -> Result<Vec<Hop>, String> {
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
pub(super) fn amounts_out(
    u: &Universe,
    st: &State,
    hops: &[Hop],
    amount_in: U256,
) -> Result<Vec<U256>, String> {
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
pub(super) fn amounts_in(
    u: &Universe,
    st: &State,
    hops: &[Hop],
    amount_out: U256,
) -> Result<Vec<U256>, String> {
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
pub(super) fn router_swap(
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
pub(super) fn apply_op(
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
