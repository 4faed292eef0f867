//! Swap calldata for each venue: Uniswap V2 `Router02`, V3 `SwapRouter` (single pool and
//! multi-hop paths), the Balancer V2 Vault's `swap` (one pool, given in) and a Uniswap V4
//! `V4Router`'s `executeActions` or the Universal Router's `execute` with its `V4_SWAP` command
//! (one pool, exact in; the same three actions either way).

use alloy::primitives::{Address, Bytes, U256, aliases::I24, aliases::U24, aliases::U160};
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::abi::{IBalancerVault, ISwapRouter, IUniswapV2Router02, IUniversalRouter, IV4Router};
use keel_amm::pool::Pool;
use keel_amm::v4::PoolKey;

use super::{ExecError, Executor};
use crate::config::DexKind;
use crate::plan;

impl Executor {
    pub(super) fn swap_calldata(
        &self,
        fill: &plan::Fill,
        account: Address,
        deadline: U256,
    ) -> Result<Bytes, ExecError> {
        let venue = self.venues[fill.pools[0]];
        let input = match venue.kind {
            DexKind::UniswapV2 => IUniswapV2Router02::swapExactTokensForTokensCall {
                amountIn: fill.amount_in,
                amountOutMin: fill.amount_out_min,
                path: fill.path.clone(),
                to: account,
                deadline,
            }
            .abi_encode(),
            DexKind::UniswapV3 => {
                if fill.pools.len() == 1 {
                    let fee = match self.pools[fill.pools[0]].pool() {
                        Pool::V3(p) => p.fee,
                        Pool::V2 { .. } | Pool::Balancer(_) | Pool::Curve(_) | Pool::V4(_) => 0,
                    };
                    ISwapRouter::exactInputSingleCall {
                        params: ISwapRouter::ExactInputSingleParams {
                            tokenIn: fill.path[0],
                            tokenOut: fill.path[1],
                            fee: U24::from(fee),
                            recipient: account,
                            deadline,
                            amountIn: fill.amount_in,
                            amountOutMinimum: fill.amount_out_min,
                            sqrtPriceLimitX96: U160::ZERO,
                        },
                    }
                    .abi_encode()
                } else {
                    // Multi-hop V3 path: token (20 bytes) | fee (3 bytes) | token | ...
                    let mut path = Vec::with_capacity(20 + 23 * fill.pools.len());
                    path.extend_from_slice(fill.path[0].as_slice());
                    for (h, &p) in fill.pools.iter().enumerate() {
                        let fee = match self.pools[p].pool() {
                            Pool::V3(v) => v.fee,
                            Pool::V2 { .. } | Pool::Balancer(_) | Pool::Curve(_) | Pool::V4(_) => 0,
                        };
                        path.extend_from_slice(&fee.to_be_bytes()[1..]);
                        path.extend_from_slice(fill.path[h + 1].as_slice());
                    }
                    ISwapRouter::exactInputCall {
                        params: ISwapRouter::ExactInputParams {
                            path: path.into(),
                            recipient: account,
                            deadline,
                            amountIn: fill.amount_in,
                            amountOutMinimum: fill.amount_out_min,
                        },
                    }
                    .abi_encode()
                }
            }
            DexKind::BalancerWeighted => {
                // One pool per Balancer fill (the pool model keeps Balancer out of two-hop paths).
                let (Some(pool_id), [_], [asset_in, asset_out]) =
                    (venue.pool_id, fill.pools.as_slice(), fill.path.as_slice())
                else {
                    return Err(ExecError::Unroutable(self.pools[fill.pools[0]].meta.id.clone()));
                };
                IBalancerVault::swapCall {
                    singleSwap: IBalancerVault::SingleSwap {
                        poolId: pool_id,
                        kind: IBalancerVault::SwapKind::GIVEN_IN,
                        assetIn: *asset_in,
                        assetOut: *asset_out,
                        amount: fill.amount_in,
                        userData: Bytes::new(),
                    },
                    funds: IBalancerVault::FundManagement {
                        sender: account,
                        fromInternalBalance: false,
                        recipient: account,
                        toInternalBalance: false,
                    },
                    limit: fill.amount_out_min,
                    deadline,
                }
                .abi_encode()
            }
            DexKind::UniswapV4 => {
                // One pool per V4 fill (`Pool::supports_two_hop` keeps V4 out of two-hop paths).
                let ([p], [token_in, _]) = (fill.pools.as_slice(), fill.path.as_slice()) else {
                    return Err(ExecError::Unroutable(self.pools[fill.pools[0]].meta.id.clone()));
                };
                let Pool::V4(pool) = self.pools[*p].pool() else {
                    return Err(ExecError::Unroutable(self.pools[*p].meta.id.clone()));
                };
                let key = pool.key();
                let zero_for_one = *token_in == key.currency0;
                let (Ok(amount_in), Ok(min_out)) =
                    (u128::try_from(fill.amount_in), u128::try_from(fill.amount_out_min))
                else {
                    return Err(ExecError::Unroutable(self.pools[*p].meta.id.clone()));
                };
                if super::approve::pays_through_permit2(&venue) {
                    universal_router_v4_swap(key, zero_for_one, amount_in, min_out, deadline)
                } else {
                    v4_exact_in_single(key, zero_for_one, amount_in, min_out)
                }
            }
        };
        Ok(input.into())
    }
}

/// `V4Router.executeActions` calldata for one exact-input swap through one V4 pool: actions
/// `SWAP_EXACT_IN_SINGLE` (0x06), `SETTLE_ALL` (0x0c: pay at most `amount_in` of the input from
/// the caller) and `TAKE_ALL` (0x0f: take the output, at least `min_out`, to the caller). The
/// router reverts `V4TooLittleReceived` below `min_out`. The payload inside is what the
/// Universal Router's `V4_SWAP` command (0x10) carries too ([`universal_router_v4_swap`]).
pub fn v4_exact_in_single(key: &PoolKey, zero_for_one: bool, amount_in: u128, min_out: u128) -> Vec<u8> {
    IV4Router::executeActionsCall { params: v4_actions(key, zero_for_one, amount_in, min_out).into() }
        .abi_encode()
}

/// The Universal Router's `execute(0x10 /* V4_SWAP */, [actions payload], deadline)` for the same
/// swap as [`v4_exact_in_single`]; `keel run` sends it to a `[[dexes]]` entry with
/// `via = "universal_router"`. The Universal Router pays through Permit2, which the account must
/// have approved (ERC-20 approval of Permit2, then `Permit2.approve` of the router).
pub fn universal_router_v4_swap(
    key: &PoolKey,
    zero_for_one: bool,
    amount_in: u128,
    min_out: u128,
    deadline: U256,
) -> Vec<u8> {
    IUniversalRouter::executeCall {
        commands: Bytes::from_static(&[V4_SWAP]),
        inputs: vec![v4_actions(key, zero_for_one, amount_in, min_out).into()],
        deadline,
    }
    .abi_encode()
}

/// Universal Router command `V4_SWAP`.
pub const V4_SWAP: u8 = 0x10;
/// `Actions.SWAP_EXACT_IN_SINGLE`.
pub const SWAP_EXACT_IN_SINGLE: u8 = 0x06;
/// `Actions.SETTLE_ALL`.
pub const SETTLE_ALL: u8 = 0x0c;
/// `Actions.TAKE_ALL`.
pub const TAKE_ALL: u8 = 0x0f;

/// `abi.encode(bytes actions, bytes[] params)` of the three actions.
fn v4_actions(key: &PoolKey, zero_for_one: bool, amount_in: u128, min_out: u128) -> Vec<u8> {
    let (c_in, c_out) =
        if zero_for_one { (key.currency0, key.currency1) } else { (key.currency1, key.currency0) };
    let swap = IV4Router::ExactInputSingleParams {
        poolKey: IV4Router::PoolKey {
            currency0: key.currency0,
            currency1: key.currency1,
            fee: U24::from(key.fee),
            tickSpacing: I24::try_from(key.tick_spacing).unwrap_or(I24::ZERO),
            hooks: key.hooks,
        },
        zeroForOne: zero_for_one,
        amountIn: amount_in,
        amountOutMinimum: min_out,
        hookData: Bytes::new(),
    };
    let params: Vec<Bytes> = vec![
        swap.abi_encode().into(),
        (c_in, U256::from(amount_in)).abi_encode_params().into(),
        (c_out, U256::from(min_out)).abi_encode_params().into(),
    ];
    let actions = Bytes::from(vec![SWAP_EXACT_IN_SINGLE, SETTLE_ALL, TAKE_ALL]);
    (actions, params).abi_encode_params()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::aliases::U24;

    fn key() -> PoolKey {
        PoolKey {
            currency0: Address::repeat_byte(1),
            currency1: Address::repeat_byte(2),
            fee: 3000,
            tick_spacing: 60,
            hooks: Address::ZERO,
        }
    }

    /// The payload decodes back to the three actions with the amounts of the quote: the swap's
    /// exact input and floor, `SETTLE_ALL` of the input currency capped at the input, `TAKE_ALL`
    /// of the output currency at the floor.
    #[test]
    fn v4_swap_calldata_carries_the_quote_in_three_actions() {
        let data = v4_exact_in_single(&key(), false, 1_000, 990);
        let call = IV4Router::executeActionsCall::abi_decode(&data).expect("executeActions");
        let (actions, params) = <(Bytes, Vec<Bytes>)>::abi_decode_params(&call.params).expect("payload");
        assert_eq!(actions.as_ref(), &[SWAP_EXACT_IN_SINGLE, SETTLE_ALL, TAKE_ALL]);
        assert_eq!(params.len(), 3);
        let swap = IV4Router::ExactInputSingleParams::abi_decode(&params[0]).expect("swap params");
        assert_eq!(swap.poolKey.fee, U24::from(3000u32));
        assert_eq!(swap.poolKey.tickSpacing.as_i32(), 60);
        assert!(!swap.zeroForOne);
        assert_eq!((swap.amountIn, swap.amountOutMinimum), (1_000, 990));
        assert!(swap.hookData.is_empty());
        let settle = <(Address, U256)>::abi_decode_params(&params[1]).expect("settle");
        assert_eq!(settle, (Address::repeat_byte(2), U256::from(1_000u64)));
        let take = <(Address, U256)>::abi_decode_params(&params[2]).expect("take");
        assert_eq!(take, (Address::repeat_byte(1), U256::from(990u64)));
        // The Universal Router's V4_SWAP carries the same payload.
        let ur = universal_router_v4_swap(&key(), false, 1_000, 990, U256::from(7u64));
        let ur = IUniversalRouter::executeCall::abi_decode(&ur).expect("execute");
        assert_eq!(ur.commands.as_ref(), &[V4_SWAP]);
        assert_eq!(ur.inputs, vec![call.params]);
        assert_eq!(ur.deadline, U256::from(7u64));
    }
}
