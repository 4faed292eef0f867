//! Swap calldata for each venue: Uniswap V2 `Router02`, V3 `SwapRouter` (single pool and
//! multi-hop paths) and the Balancer V2 Vault's `swap` (one pool, given in).

use alloy::primitives::{Address, Bytes, U256, aliases::U24, aliases::U160};
use alloy::sol_types::SolCall;
use keel_amm::abi::{IBalancerVault, ISwapRouter, IUniswapV2Router02};
use keel_amm::pool::Pool;

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
        };
        Ok(input.into())
    }
}
