//! The one-time approvals an account sends before its first swap of a token through a venue.
//!
//! Most venues take the token by ERC-20 `transferFrom` from the account, so the router (or the
//! Balancer Vault) is approved as the spender. A Universal Router pays through Permit2 instead:
//! the account approves Permit2 as the ERC-20 spender, then, in Permit2, the router
//! (`Permit2.approve(token, router, max, max)`: the largest `uint160` amount and an expiration
//! that never comes). Both are sent together, ahead of the swap in the same bundle; the executor
//! keys the grant by `(account, token, router)` either way.

use alloy::primitives::{Address, U256, aliases::U48, aliases::U160};
use alloy::sol_types::SolCall;
use keel_amm::abi::{IERC20, IPermit2, PERMIT2_ADDRESS};

use super::PoolVenue;
use crate::config::{DEFAULT_APPROVE_GAS, DexKind, V4Via};
use crate::tx::CallRequest;

/// Gas limit of a `Permit2.approve` (one packed storage slot written: 47,818 measured by the
/// keel-sim chain test `keel_v4_swaps_through_the_universal_router_pay_exactly_the_quote`),
/// with headroom.
pub const PERMIT2_APPROVE_GAS: u64 = 70_000;

/// Whether swaps through `venue` pay through Permit2 (a Universal Router).
pub fn pays_through_permit2(venue: &PoolVenue) -> bool {
    venue.kind == DexKind::UniswapV4 && venue.via == V4Via::UniversalRouter
}

/// Appends the calls that let `venue` take `token` from the account; returns how many it
/// appended (one, or two for a Universal Router).
pub(super) fn push_approval(calls: &mut Vec<CallRequest>, token: Address, venue: &PoolVenue) -> usize {
    if pays_through_permit2(venue) {
        calls.push(CallRequest {
            to: token,
            input: IERC20::approveCall { spender: PERMIT2_ADDRESS, amount: U256::MAX }.abi_encode().into(),
            gas_limit: DEFAULT_APPROVE_GAS,
            value: U256::ZERO,
        });
        calls.push(CallRequest {
            to: PERMIT2_ADDRESS,
            input: IPermit2::approveCall {
                token,
                spender: venue.router,
                amount: U160::MAX,
                expiration: U48::MAX,
            }
            .abi_encode()
            .into(),
            gas_limit: PERMIT2_APPROVE_GAS,
            value: U256::ZERO,
        });
        2
    } else {
        calls.push(CallRequest {
            to: token,
            input: IERC20::approveCall { spender: venue.router, amount: U256::MAX }.abi_encode().into(),
            gas_limit: DEFAULT_APPROVE_GAS,
            value: U256::ZERO,
        });
        1
    }
}
