//! Swap calldata for each venue: Uniswap V2 `Router02`, V3 `SwapRouter` (single pool and
//! multi-hop paths), the Balancer V2 Vault's `swap` (one pool, given in) and a Uniswap V4
//! `V4Router`'s `executeActions` or the Universal Router's `execute` with its `V4_SWAP` command
//! (exact in through one pool or a two-hop path; the same three actions either way).

use alloy::primitives::{Address, Bytes, U256, aliases::U24, aliases::U160};
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::abi::{
    IBalancerVault, ICurveStableSwap, ICurveStableSwapU128, ISwapRouter, IUniswapV2Router02,
    IUniversalRouter, IV4Router,
};
use keel_amm::pool::Pool;
use keel_amm::v4::PoolKey;

use super::{ExecError, Executor};
use crate::config::{CurveIndices, DexKind};
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
            DexKind::CurveStableswap => {
                // One pool per Curve fill, sent to the pool: `exchange(i, j, dx, min_dy)`, paid
                // to the caller (the account).
                let entry = &self.pools[fill.pools[0]];
                let (Pool::Curve(pair), [_], [token_in, _]) =
                    (entry.pool(), fill.pools.as_slice(), fill.path.as_slice())
                else {
                    return Err(ExecError::Unroutable(entry.meta.id.clone()));
                };
                let (i, j) = pair.io(*token_in == entry.meta.token0);
                let (dx, min_dy) = (fill.amount_in, fill.amount_out_min);
                match venue.curve_indices {
                    CurveIndices::Int128 => {
                        ICurveStableSwap::exchangeCall { i: i as i128, j: j as i128, dx, min_dy }.abi_encode()
                    }
                    CurveIndices::Uint128 => {
                        ICurveStableSwapU128::exchangeCall { i: i as u128, j: j as u128, dx, min_dy }
                            .abi_encode()
                    }
                }
            }
            DexKind::UniswapV4 => {
                let unroutable = || ExecError::Unroutable(self.pools[fill.pools[0]].meta.id.clone());
                let (Ok(amount_in), Ok(min_out)) =
                    (u128::try_from(fill.amount_in), u128::try_from(fill.amount_out_min))
                else {
                    return Err(unroutable());
                };
                let key_of = |p: usize| match self.pools[p].pool() {
                    Pool::V4(pool) => Ok(pool.key()),
                    _ => Err(unroutable()),
                };
                let hops;
                let route = match (fill.pools.as_slice(), fill.path.as_slice()) {
                    ([p], [token_in, _]) => {
                        let key = key_of(*p)?;
                        V4Route::Single { key, zero_for_one: *token_in == key.currency0 }
                    }
                    // A two-hop path (two pools of this venue): each hop's key and what it pays out.
                    (pools, [token_in, rest @ ..]) if pools.len() == rest.len() => {
                        hops = pools
                            .iter()
                            .zip(rest)
                            .map(|(&p, &out)| key_of(p).map(|k| (*k, out)))
                            .collect::<Result<Vec<_>, _>>()?;
                        V4Route::Path { currency_in: *token_in, hops: &hops }
                    }
                    _ => return Err(unroutable()),
                };
                if super::approve::pays_through_permit2(&venue) {
                    universal_router_v4(route, amount_in, min_out, deadline)
                } else {
                    v4_execute_actions(route, amount_in, min_out)
                }
            }
        };
        Ok(input.into())
    }
}

/// One V4 exact-input swap: through one pool, or along a path of pools (each hop's key and the
/// currency it pays out, in order).
#[derive(Debug, Clone, Copy)]
pub enum V4Route<'a> {
    /// Through one pool.
    Single {
        /// The pool's key.
        key: &'a PoolKey,
        /// Selling `currency0`.
        zero_for_one: bool,
    },
    /// Along a path: `currency_in`, then each hop's pool and output currency.
    Path {
        /// What the caller pays.
        currency_in: Address,
        /// Each hop: its pool's key and the currency it pays out (the last one is the output).
        hops: &'a [(PoolKey, Address)],
    },
}

impl V4Route<'_> {
    /// The currencies paid and received.
    fn currencies(&self) -> (Address, Address) {
        match *self {
            Self::Single { key, zero_for_one: true } => (key.currency0, key.currency1),
            Self::Single { key, zero_for_one: false } => (key.currency1, key.currency0),
            Self::Path { currency_in, hops } => (currency_in, hops.last().map_or(currency_in, |h| h.1)),
        }
    }
}

/// `V4Router.executeActions` calldata for one exact-input swap through one V4 pool:
/// actions `SWAP_EXACT_IN_SINGLE` (0x06), `SETTLE_ALL` (0x0c: pay at most `amount_in` of the
/// input from the caller) and `TAKE_ALL` (0x0f: take the output, at least `min_out`, to the
/// caller). The router reverts `V4TooLittleReceived` below `min_out`. The payload inside is what
/// the Universal Router's `V4_SWAP` command (0x10) carries too ([`universal_router_v4_swap`]).
pub fn v4_exact_in_single(key: &PoolKey, zero_for_one: bool, amount_in: u128, min_out: u128) -> Vec<u8> {
    v4_execute_actions(V4Route::Single { key, zero_for_one }, amount_in, min_out)
}

/// `V4Router.executeActions` calldata for one exact-input swap along `route`: through one pool as
/// [`v4_exact_in_single`], along a path with `SWAP_EXACT_IN` (0x07, one `PathKey` per hop) in
/// place of `SWAP_EXACT_IN_SINGLE`.
pub fn v4_execute_actions(route: V4Route<'_>, amount_in: u128, min_out: u128) -> Vec<u8> {
    IV4Router::executeActionsCall {
        params: v4_actions(route, amount_in, min_out, PathLayout::V4Periphery1).into(),
    }
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
    universal_router_v4(V4Route::Single { key, zero_for_one }, amount_in, min_out, deadline)
}

/// [`universal_router_v4_swap`] along any `route`: the payload of [`v4_execute_actions`], except
/// that a path's `SWAP_EXACT_IN` parameters carry the Universal Router 2.1's `maxHopSlippage`
/// (empty: no per-hop bound, `min_out` bounds the whole path).
pub fn universal_router_v4(route: V4Route<'_>, amount_in: u128, min_out: u128, deadline: U256) -> Vec<u8> {
    IUniversalRouter::executeCall {
        commands: Bytes::from_static(&[V4_SWAP]),
        inputs: vec![v4_actions(route, amount_in, min_out, PathLayout::PerHopSlippage).into()],
        deadline,
    }
    .abi_encode()
}

/// Universal Router command `V4_SWAP`.
pub const V4_SWAP: u8 = 0x10;
/// `Actions.SWAP_EXACT_IN_SINGLE`.
pub const SWAP_EXACT_IN_SINGLE: u8 = 0x06;
/// `Actions.SWAP_EXACT_IN`.
pub const SWAP_EXACT_IN: u8 = 0x07;
/// `Actions.SETTLE_ALL`.
pub const SETTLE_ALL: u8 = 0x0c;
/// `Actions.TAKE_ALL`.
pub const TAKE_ALL: u8 = 0x0f;

/// How a router reads `SWAP_EXACT_IN`'s parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathLayout {
    /// v4-periphery 1.0 (`V4Router`, `MockV4Router`): `(currencyIn, path, amountIn, amountOutMinimum)`.
    V4Periphery1,
    /// The Universal Router 2.1: `maxHopSlippage` after `path`, sent empty (no per-hop bound).
    PerHopSlippage,
}

/// `abi.encode(bytes actions, bytes[] params)` of the three actions.
fn v4_actions(route: V4Route<'_>, amount_in: u128, min_out: u128, layout: PathLayout) -> Vec<u8> {
    let (c_in, c_out) = route.currencies();
    let (action, swap) = match route {
        V4Route::Single { key, zero_for_one } => {
            let swap = IV4Router::ExactInputSingleParams {
                poolKey: key.into(),
                zeroForOne: zero_for_one,
                amountIn: amount_in,
                amountOutMinimum: min_out,
                hookData: Bytes::new(),
            };
            (SWAP_EXACT_IN_SINGLE, swap.abi_encode())
        }
        V4Route::Path { currency_in, hops } => {
            let path = hops.iter().map(|(key, out)| key.path_key(*out)).collect();
            let swap = match layout {
                PathLayout::V4Periphery1 => IV4Router::ExactInputParams {
                    currencyIn: currency_in,
                    path,
                    amountIn: amount_in,
                    amountOutMinimum: min_out,
                }
                .abi_encode(),
                PathLayout::PerHopSlippage => IV4Router::ExactInputParamsPerHop {
                    currencyIn: currency_in,
                    path,
                    maxHopSlippage: Vec::new(),
                    amountIn: amount_in,
                    amountOutMinimum: min_out,
                }
                .abi_encode(),
            };
            (SWAP_EXACT_IN, swap)
        }
    };
    let params: Vec<Bytes> = vec![
        swap.into(),
        (c_in, U256::from(amount_in)).abi_encode_params().into(),
        (c_out, U256::from(min_out)).abi_encode_params().into(),
    ];
    let actions = Bytes::from(vec![action, SETTLE_ALL, TAKE_ALL]);
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

    /// A two-hop path: `SWAP_EXACT_IN` with one `PathKey` per hop (the currency it pays out and its
    /// pool's fee, spacing and hooks), `SETTLE_ALL` of the first currency, `TAKE_ALL` of the last.
    #[test]
    fn a_v4_path_is_one_exact_in_swap_with_a_path_key_per_hop() {
        let second = PoolKey {
            currency0: Address::repeat_byte(2),
            currency1: Address::repeat_byte(3),
            fee: 500,
            tick_spacing: 10,
            hooks: Address::ZERO,
        };
        let hops = [(key(), Address::repeat_byte(2)), (second, Address::repeat_byte(3))];
        let route = V4Route::Path { currency_in: Address::repeat_byte(1), hops: &hops };
        let data = v4_execute_actions(route, 5_000, 4_900);
        let call = IV4Router::executeActionsCall::abi_decode(&data).expect("executeActions");
        let (actions, params) = <(Bytes, Vec<Bytes>)>::abi_decode_params(&call.params).expect("payload");
        assert_eq!(actions.as_ref(), &[SWAP_EXACT_IN, SETTLE_ALL, TAKE_ALL]);
        let swap = IV4Router::ExactInputParams::abi_decode(&params[0]).expect("swap params");
        assert_eq!(swap.currencyIn, Address::repeat_byte(1));
        assert_eq!((swap.amountIn, swap.amountOutMinimum), (5_000, 4_900));
        let hops: Vec<_> = swap
            .path
            .iter()
            .map(|k| (k.intermediateCurrency, k.fee.to::<u32>(), k.tickSpacing.as_i32(), k.hooks))
            .collect();
        assert_eq!(
            hops,
            vec![
                (Address::repeat_byte(2), 3000, 60, Address::ZERO),
                (Address::repeat_byte(3), 500, 10, Address::ZERO)
            ]
        );
        let settle = <(Address, U256)>::abi_decode_params(&params[1]).expect("settle");
        assert_eq!(settle, (Address::repeat_byte(1), U256::from(5_000u64)));
        let take = <(Address, U256)>::abi_decode_params(&params[2]).expect("take");
        assert_eq!(take, (Address::repeat_byte(3), U256::from(4_900u64)));
        // The Universal Router 2.1 reads the path with an (empty) maxHopSlippage after it; the
        // rest of the payload is the same.
        let ur = universal_router_v4(route, 5_000, 4_900, U256::from(9u64));
        let ur = IUniversalRouter::executeCall::abi_decode(&ur).expect("execute");
        assert_eq!(ur.commands.as_ref(), &[V4_SWAP]);
        let (ur_actions, ur_params) =
            <(Bytes, Vec<Bytes>)>::abi_decode_params(&ur.inputs[0]).expect("payload");
        assert_eq!((ur_actions, &ur_params[1..]), (actions, &params[1..]));
        let per_hop = IV4Router::ExactInputParamsPerHop::abi_decode(&ur_params[0]).expect("swap params");
        assert!(per_hop.maxHopSlippage.is_empty());
        assert_eq!((per_hop.currencyIn, per_hop.amountIn), (swap.currencyIn, 5_000));
        assert_eq!(per_hop.path.abi_encode(), swap.path.abi_encode());
    }
}
