//! `eth_call` on the simulated contracts: the read-only views (balances, allowances, reserves,
//! router quotes).

#[allow(unused_imports)]
use super::*;

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
