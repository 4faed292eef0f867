//! Router and pool calldata → the swaps a pending transaction makes ([`PendingTx`]).
//!
//! Recognised, by the transaction's `to`:
//! * a V2 **Router02** (`swapExactTokensForTokens`, `swapTokensForExactTokens`);
//! * a V3 **SwapRouter** (`exactInputSingle`, `exactOutputSingle`, `exactInput`, `exactOutput`);
//! * **SwapRouter02** (its V2 and V3 swaps, bare or inside `multicall(bytes[])`,
//!   `multicall(uint256,bytes[])`, `multicall(bytes32,bytes[])`);
//! * the **Universal Router** (`execute(bytes,bytes[],uint256)`, `execute(bytes,bytes[])`: commands
//!   `V2_SWAP_EXACT_IN`, `V2_SWAP_EXACT_OUT`, `V3_SWAP_EXACT_IN`, `V3_SWAP_EXACT_OUT`, and the same
//!   inside `EXECUTE_SUB_PLAN`, and `V4_SWAP`; other commands such as `WRAP_ETH` or `SWEEP` move no
//!   pool);
//! * a v4-periphery **V4Router** (`executeActions`, as `MockV4Router` exposes it) and the Universal
//!   Router's `V4_SWAP`: actions `SWAP_EXACT_IN_SINGLE`, `SWAP_EXACT_IN`, `SWAP_EXACT_OUT_SINGLE`,
//!   `SWAP_EXACT_OUT` (settle and take actions move no pool). A V4 hop names its tracked pool by
//!   pool id (`keccak256(abi.encode(PoolKey))`); an amount of 0 (`OPEN_DELTA`) is decided at
//!   execution;
//! * a direct `swap` on a tracked V3 pool or V2 pair.
//!
//! Each swap becomes a [`Route`]: its hops in execution order (a V3 exact-output path is packed from
//! the output token back; it is turned around here) and the amount the calldata fixes (exact input
//! of the first hop, exact output of the last). An amount the router only learns at execution (its
//! own balance: SwapRouter02 `amountIn == 0`, Universal Router `CONTRACT_BALANCE` or `ALREADY_PAID`)
//! is `None`. A hop names its tracked pool when Keel follows one for its tokens (and fee on V3).
//!
//! Calldata that names a known router but does not decode is a [`DecodeError`] (the feed counts
//! and skips it), never a panic; every loop is bounded ([`MAX_ROUTES`], [`MAX_HOPS`],
//! [`MAX_COMMANDS`], one level of nesting).

use std::collections::HashMap;

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolCall, SolType};
use keel_amm::abi::{ISwapRouter, IUniswapV2Pair, IUniswapV2Router02, IUniswapV3Pool};
use keel_amm::pool::SwapAmount;

use super::abi::{
    IMulticallExtended, ISwapRouterMultiHop, IUniversalRouter, IV2SwapRouter, IV3SwapRouter, IV4Router,
    UrSubPlan, UrV2ExactIn, UrV2ExactOut, UrV3ExactIn, UrV3ExactOut, V4ExactIn, V4ExactInPerHop,
    V4ExactInSingle, V4ExactOut, V4ExactOutPerHop, V4ExactOutSingle, V4PathKey, V4Plan, V4PoolKey,
};
use super::{Hop, PendingTx, Route};
use crate::node::book::{PoolId, PoolKind};

/// Most swaps decoded from one transaction (further ones are an error).
pub const MAX_ROUTES: usize = 16;
/// Most hops in one path (a longer path is an error).
pub const MAX_HOPS: usize = 8;
/// Most Universal Router commands in one `execute` (more is an error).
pub const MAX_COMMANDS: usize = 64;

/// Universal Router command types (`Commands.sol`; the low six bits of a command byte).
mod command {
    pub(super) const V3_SWAP_EXACT_IN: u8 = 0x00;
    pub(super) const V3_SWAP_EXACT_OUT: u8 = 0x01;
    pub(super) const V2_SWAP_EXACT_IN: u8 = 0x08;
    pub(super) const V2_SWAP_EXACT_OUT: u8 = 0x09;
    pub(super) const V4_SWAP: u8 = 0x10;
    pub(super) const EXECUTE_SUB_PLAN: u8 = 0x21;
    pub(super) const TYPE_MASK: u8 = 0x3f;
}

/// v4-periphery `Actions` that swap (`Actions.sol`).
mod action {
    pub(super) const SWAP_EXACT_IN_SINGLE: u8 = 0x06;
    pub(super) const SWAP_EXACT_IN: u8 = 0x07;
    pub(super) const SWAP_EXACT_OUT_SINGLE: u8 = 0x08;
    pub(super) const SWAP_EXACT_OUT: u8 = 0x09;
}

/// Universal Router `ActionConstants.CONTRACT_BALANCE`: swap the router's whole balance.
const UR_CONTRACT_BALANCE: U256 = U256::from_limbs([0, 0, 0, 0x8000_0000_0000_0000]);

/// The kind of router a tracked address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterKind {
    /// Uniswap V2 Router02.
    V2Router02,
    /// Uniswap V3 SwapRouter (periphery).
    SwapRouter,
    /// SwapRouter02 (`@uniswap/swap-router-contracts`): V2 and V3 behind one address.
    SwapRouter02,
    /// The Universal Router (`@uniswap/universal-router`).
    UniversalRouter,
    /// A v4-periphery `V4Router` with `executeActions(bytes)` (`MockV4Router`).
    V4Router,
}

/// Why calldata sent to a known router or pool could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The arguments of a recognised function do not decode.
    #[error("{router:?}: calldata of {function} does not decode")]
    Calldata {
        /// Router (or pool) the call went to.
        router: RouterKind,
        /// Function whose arguments are malformed.
        function: &'static str,
    },
    /// The input of a Universal Router command does not decode.
    #[error("universal router: input {index} (command {command:#04x}) does not decode")]
    Command {
        /// Position in the command string.
        index: usize,
        /// Command byte.
        command: u8,
    },
    /// The Universal Router's command string and inputs differ in length.
    #[error("universal router: {commands} commands but {inputs} inputs")]
    CommandCount {
        /// Commands.
        commands: usize,
        /// Inputs.
        inputs: usize,
    },
    /// A path is too short, too long or not a packed V3 path.
    #[error("path of {len} bytes/addresses is not a valid swap path")]
    Path {
        /// Length in bytes (V3) or addresses (V2).
        len: usize,
    },
    /// More swaps, commands or nesting than the decoder follows.
    #[error("too many {what} (at most {max})")]
    TooMany {
        /// What overflowed (`swaps`, `commands`, `nested calls`).
        what: &'static str,
        /// The bound.
        max: usize,
    },
}

/// A pool the decoder recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolPool {
    /// Id in the [`crate::node::PoolBook`].
    pub id: PoolId,
    /// Pool contract.
    pub address: Address,
    /// Protocol.
    pub kind: PoolKind,
    /// Lower-address token.
    pub token0: Address,
    /// Higher-address token.
    pub token1: Address,
    /// V3 fee, pips (ignored for V2).
    pub fee: u32,
    /// A V4 pool's key (its swaps are told apart by pool id; `address` is the shared
    /// `PoolManager`); `None` on V2 and V3.
    pub pool_key: Option<keel_amm::v4::PoolKey>,
}

/// Decodes router and pool calls into [`PendingTx`]s.
#[derive(Debug, Clone, Default)]
pub struct MempoolDecoder {
    routers: HashMap<Address, RouterKind>,
    by_address: HashMap<Address, MempoolPool>,
    v2_by_tokens: HashMap<(Address, Address), PoolId>,
    v3_by_tokens: HashMap<(Address, Address, u32), PoolId>,
    v4_by_id: HashMap<B256, PoolId>,
}

/// `p` decoded as `T` only when it is exactly `T`'s encoding. The two layouts of V4's path
/// parameters (with and without `maxHopSlippage`) would otherwise decode each other's bytes into
/// wrong amounts.
fn canonical<T: SolType>(p: &[u8]) -> Option<T::RustType> {
    let v = T::abi_decode_validate(p).ok()?;
    (T::abi_encode(&v) == p).then_some(v)
}

fn sorted(a: Address, b: Address) -> (Address, Address) {
    if a < b { (a, b) } else { (b, a) }
}

/// The transaction a call came in: what the decoder copies into the [`PendingTx`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxMeta {
    /// Transaction hash.
    pub hash: B256,
    /// Sender (recovered signer).
    pub sender: Address,
    /// Sender's nonce.
    pub nonce: u64,
    /// When the feed saw it, monotonic ns.
    pub seen_ns: u64,
}

/// Swaps decoded so far from one transaction (bounded by [`MAX_ROUTES`]).
struct Routes(Vec<Route>);

impl Routes {
    fn push(&mut self, r: Route) -> Result<(), DecodeError> {
        if self.0.len() >= MAX_ROUTES {
            return Err(DecodeError::TooMany { what: "swaps", max: MAX_ROUTES });
        }
        self.0.push(r);
        Ok(())
    }
}

impl MempoolDecoder {
    /// A decoder for `pools` and the routers at the given addresses.
    pub fn new(pools: &[MempoolPool], routers: &[(Address, RouterKind)]) -> Self {
        let mut d = Self { routers: routers.iter().copied().collect(), ..Self::default() };
        for p in pools {
            let (t0, t1) = sorted(p.token0, p.token1);
            match p.kind {
                PoolKind::V2 => d.v2_by_tokens.insert((t0, t1), p.id),
                PoolKind::V3 => d.v3_by_tokens.insert((t0, t1, p.fee), p.id),
                // V4 swaps go through a router and the PoolManager's lock: never a direct call.
                PoolKind::V4 => {
                    if let Some(key) = &p.pool_key {
                        d.v4_by_id.insert(key.id(), p.id);
                    }
                    continue;
                }
            };
            d.by_address.insert(p.address, p.clone());
        }
        d
    }

    /// The swaps a call to `to` makes, when at least one hop is on a tracked pool.
    ///
    /// `Ok(None)`: not a router or pool Keel knows, not a swap, or no tracked pool on its path.
    pub fn decode(&self, to: Address, input: &[u8], tx: TxMeta) -> Result<Option<PendingTx>, DecodeError> {
        let mut routes = Routes(Vec::new());
        if let Some(&kind) = self.routers.get(&to) {
            self.router_call(kind, input, 0, &mut routes)?;
        } else if let Some(pool) = self.by_address.get(&to) {
            self.pool_call(pool, input, &mut routes)?;
        } else {
            return Ok(None);
        }
        let routes: Vec<Route> =
            routes.0.into_iter().filter(|r| r.hops.iter().any(|h| h.pool.is_some())).collect();
        if routes.is_empty() {
            return Ok(None);
        }
        Ok(Some(PendingTx { hash: tx.hash, sender: tx.sender, nonce: tx.nonce, seen_ns: tx.seen_ns, routes }))
    }

    fn v2_hops(&self, path: &[Address]) -> Result<Vec<Hop>, DecodeError> {
        if path.len() < 2 || path.len() > MAX_HOPS + 1 {
            return Err(DecodeError::Path { len: path.len() });
        }
        Ok(path
            .windows(2)
            .map(|w| Hop {
                kind: PoolKind::V2,
                token_in: w[0],
                token_out: w[1],
                fee: 0,
                pool: self.v2_by_tokens.get(&sorted(w[0], w[1])).copied(),
            })
            .collect())
    }

    fn v3_hop(&self, token_in: Address, token_out: Address, fee: u32) -> Hop {
        let (t0, t1) = sorted(token_in, token_out);
        Hop {
            kind: PoolKind::V3,
            token_in,
            token_out,
            fee,
            pool: self.v3_by_tokens.get(&(t0, t1, fee)).copied(),
        }
    }

    /// Hops of a packed V3 path (`token (20) fee (3) token …`), in execution order; `reversed` for
    /// exact-output paths, which are packed from the output token back.
    fn v3_path(&self, path: &[u8], reversed: bool) -> Result<Vec<Hop>, DecodeError> {
        let bad = DecodeError::Path { len: path.len() };
        if path.len() < 43 || !(path.len() - 20).is_multiple_of(23) || (path.len() - 20) / 23 > MAX_HOPS {
            return Err(bad);
        }
        let mut hops: Vec<Hop> = (0..(path.len() - 20) / 23)
            .map(|i| {
                let at = i * 23;
                let a = Address::from_slice(&path[at..at + 20]);
                let fee = u32::from_be_bytes([0, path[at + 20], path[at + 21], path[at + 22]]);
                let b = Address::from_slice(&path[at + 23..at + 43]);
                if reversed { self.v3_hop(b, a, fee) } else { self.v3_hop(a, b, fee) }
            })
            .collect();
        if reversed {
            hops.reverse();
        }
        Ok(hops)
    }

    fn router_call(
        &self,
        kind: RouterKind,
        input: &[u8],
        depth: usize,
        out: &mut Routes,
    ) -> Result<(), DecodeError> {
        let Some(selector) = input.get(..4) else { return Ok(()) };
        let selector: [u8; 4] = [selector[0], selector[1], selector[2], selector[3]];
        let bad = |function| DecodeError::Calldata { router: kind, function };
        // SwapRouter02 and the SwapRouter signal "the router's balance" with amountIn == 0.
        let known_in = |a: U256| (!a.is_zero()).then_some(SwapAmount::ExactIn(a));
        match kind {
            RouterKind::V2Router02 => match selector {
                IUniswapV2Router02::swapExactTokensForTokensCall::SELECTOR => {
                    let c = IUniswapV2Router02::swapExactTokensForTokensCall::abi_decode(input)
                        .map_err(|_| bad("swapExactTokensForTokens"))?;
                    out.push(Route {
                        hops: self.v2_hops(&c.path)?,
                        amount: Some(SwapAmount::ExactIn(c.amountIn)),
                    })
                }
                IUniswapV2Router02::swapTokensForExactTokensCall::SELECTOR => {
                    let c = IUniswapV2Router02::swapTokensForExactTokensCall::abi_decode(input)
                        .map_err(|_| bad("swapTokensForExactTokens"))?;
                    out.push(Route {
                        hops: self.v2_hops(&c.path)?,
                        amount: Some(SwapAmount::ExactOut(c.amountOut)),
                    })
                }
                _ => Ok(()),
            },
            RouterKind::SwapRouter => match selector {
                ISwapRouter::exactInputSingleCall::SELECTOR => {
                    let p = ISwapRouter::exactInputSingleCall::abi_decode(input)
                        .map_err(|_| bad("exactInputSingle"))?
                        .params;
                    let hop = self.v3_hop(p.tokenIn, p.tokenOut, p.fee.to::<u32>());
                    out.push(Route { hops: vec![hop], amount: Some(SwapAmount::ExactIn(p.amountIn)) })
                }
                ISwapRouter::exactOutputSingleCall::SELECTOR => {
                    let p = ISwapRouter::exactOutputSingleCall::abi_decode(input)
                        .map_err(|_| bad("exactOutputSingle"))?
                        .params;
                    let hop = self.v3_hop(p.tokenIn, p.tokenOut, p.fee.to::<u32>());
                    out.push(Route { hops: vec![hop], amount: Some(SwapAmount::ExactOut(p.amountOut)) })
                }
                ISwapRouterMultiHop::exactInputCall::SELECTOR => {
                    let p = ISwapRouterMultiHop::exactInputCall::abi_decode(input)
                        .map_err(|_| bad("exactInput"))?
                        .params;
                    out.push(Route {
                        hops: self.v3_path(&p.path, false)?,
                        amount: Some(SwapAmount::ExactIn(p.amountIn)),
                    })
                }
                ISwapRouterMultiHop::exactOutputCall::SELECTOR => {
                    let p = ISwapRouterMultiHop::exactOutputCall::abi_decode(input)
                        .map_err(|_| bad("exactOutput"))?
                        .params;
                    out.push(Route {
                        hops: self.v3_path(&p.path, true)?,
                        amount: Some(SwapAmount::ExactOut(p.amountOut)),
                    })
                }
                _ => Ok(()),
            },
            RouterKind::SwapRouter02 => match selector {
                IV2SwapRouter::swapExactTokensForTokensCall::SELECTOR => {
                    let c = IV2SwapRouter::swapExactTokensForTokensCall::abi_decode(input)
                        .map_err(|_| bad("swapExactTokensForTokens"))?;
                    out.push(Route { hops: self.v2_hops(&c.path)?, amount: known_in(c.amountIn) })
                }
                IV2SwapRouter::swapTokensForExactTokensCall::SELECTOR => {
                    let c = IV2SwapRouter::swapTokensForExactTokensCall::abi_decode(input)
                        .map_err(|_| bad("swapTokensForExactTokens"))?;
                    out.push(Route {
                        hops: self.v2_hops(&c.path)?,
                        amount: Some(SwapAmount::ExactOut(c.amountOut)),
                    })
                }
                IV3SwapRouter::exactInputSingleCall::SELECTOR => {
                    let p = IV3SwapRouter::exactInputSingleCall::abi_decode(input)
                        .map_err(|_| bad("exactInputSingle"))?
                        .params;
                    let hop = self.v3_hop(p.tokenIn, p.tokenOut, p.fee.to::<u32>());
                    out.push(Route { hops: vec![hop], amount: known_in(p.amountIn) })
                }
                IV3SwapRouter::exactInputCall::SELECTOR => {
                    let p = IV3SwapRouter::exactInputCall::abi_decode(input)
                        .map_err(|_| bad("exactInput"))?
                        .params;
                    out.push(Route { hops: self.v3_path(&p.path, false)?, amount: known_in(p.amountIn) })
                }
                IV3SwapRouter::exactOutputSingleCall::SELECTOR => {
                    let p = IV3SwapRouter::exactOutputSingleCall::abi_decode(input)
                        .map_err(|_| bad("exactOutputSingle"))?
                        .params;
                    let hop = self.v3_hop(p.tokenIn, p.tokenOut, p.fee.to::<u32>());
                    out.push(Route { hops: vec![hop], amount: Some(SwapAmount::ExactOut(p.amountOut)) })
                }
                IV3SwapRouter::exactOutputCall::SELECTOR => {
                    let p = IV3SwapRouter::exactOutputCall::abi_decode(input)
                        .map_err(|_| bad("exactOutput"))?
                        .params;
                    out.push(Route {
                        hops: self.v3_path(&p.path, true)?,
                        amount: Some(SwapAmount::ExactOut(p.amountOut)),
                    })
                }
                IMulticallExtended::multicall_0Call::SELECTOR => {
                    let c = IMulticallExtended::multicall_0Call::abi_decode(input)
                        .map_err(|_| bad("multicall(bytes[])"))?;
                    self.multicall(kind, &c.data, depth, out)
                }
                IMulticallExtended::multicall_1Call::SELECTOR => {
                    let c = IMulticallExtended::multicall_1Call::abi_decode(input)
                        .map_err(|_| bad("multicall(uint256,bytes[])"))?;
                    self.multicall(kind, &c.data, depth, out)
                }
                IMulticallExtended::multicall_2Call::SELECTOR => {
                    let c = IMulticallExtended::multicall_2Call::abi_decode(input)
                        .map_err(|_| bad("multicall(bytes32,bytes[])"))?;
                    self.multicall(kind, &c.data, depth, out)
                }
                _ => Ok(()),
            },
            RouterKind::UniversalRouter => match selector {
                IUniversalRouter::execute_0Call::SELECTOR => {
                    let c = IUniversalRouter::execute_0Call::abi_decode(input)
                        .map_err(|_| bad("execute(bytes,bytes[],uint256)"))?;
                    self.commands(&c.commands, &c.inputs, depth, out)
                }
                IUniversalRouter::execute_1Call::SELECTOR => {
                    let c = IUniversalRouter::execute_1Call::abi_decode(input)
                        .map_err(|_| bad("execute(bytes,bytes[])"))?;
                    self.commands(&c.commands, &c.inputs, depth, out)
                }
                _ => Ok(()),
            },
            RouterKind::V4Router => match selector {
                IV4Router::executeActionsCall::SELECTOR => {
                    let c = IV4Router::executeActionsCall::abi_decode(input)
                        .map_err(|_| bad("executeActions(bytes)"))?;
                    self.v4_plan(&c.params, out).map_err(|e| match e {
                        DecodeError::TooMany { .. } => e,
                        _ => bad("executeActions(bytes)"),
                    })
                }
                _ => Ok(()),
            },
        }
    }

    /// A V4 hop through `key` in direction `zero_for_one`.
    fn v4_hop(&self, key: &V4PoolKey, zero_for_one: bool) -> Hop {
        let key = keel_amm::v4::PoolKey {
            currency0: key.currency0,
            currency1: key.currency1,
            fee: key.fee.to::<u32>(),
            tick_spacing: key.tickSpacing.as_i32(),
            hooks: key.hooks,
        };
        let (token_in, token_out) =
            if zero_for_one { (key.currency0, key.currency1) } else { (key.currency1, key.currency0) };
        Hop {
            kind: PoolKind::V4,
            token_in,
            token_out,
            fee: key.fee,
            pool: self.v4_by_id.get(&key.id()).copied(),
        }
    }

    /// The V4 hop from `token_in` to `token_out` through the pool a `PathKey` names.
    fn v4_path_hop(&self, token_in: Address, token_out: Address, p: &V4PathKey) -> Hop {
        let (currency0, currency1) = sorted(token_in, token_out);
        let key = V4PoolKey { currency0, currency1, fee: p.fee, tickSpacing: p.tickSpacing, hooks: p.hooks };
        self.v4_hop(&key, token_in == currency0)
    }

    /// A `V4Router` plan (`abi.encode(bytes actions, bytes[] params)`): its swap actions.
    fn v4_plan(&self, payload: &[u8], out: &mut Routes) -> Result<(), DecodeError> {
        let malformed = DecodeError::Calldata { router: RouterKind::V4Router, function: "V4 actions" };
        let plan = V4Plan::abi_decode_params(payload).map_err(|_| malformed.clone())?;
        if plan.actions.len() != plan.params.len() {
            return Err(malformed);
        }
        if plan.actions.len() > MAX_COMMANDS {
            return Err(DecodeError::TooMany { what: "actions", max: MAX_COMMANDS });
        }
        // `OPEN_DELTA` (0): the amount is the router's open delta at execution.
        let known = |a: u128, f: fn(U256) -> SwapAmount| (a != 0).then(|| f(U256::from(a)));
        for (&a, p) in plan.actions.iter().zip(&plan.params) {
            let route = match a {
                action::SWAP_EXACT_IN_SINGLE => {
                    let s = V4ExactInSingle::abi_decode(p).map_err(|_| malformed.clone())?;
                    let hops = vec![self.v4_hop(&s.poolKey, s.zeroForOne)];
                    Route { hops, amount: known(s.amountIn, SwapAmount::ExactIn) }
                }
                action::SWAP_EXACT_OUT_SINGLE => {
                    let s = V4ExactOutSingle::abi_decode(p).map_err(|_| malformed.clone())?;
                    let hops = vec![self.v4_hop(&s.poolKey, s.zeroForOne)];
                    Route { hops, amount: known(s.amountOut, SwapAmount::ExactOut) }
                }
                action::SWAP_EXACT_IN => {
                    // currencyIn → path[0] → path[1] …, each hop through its PathKey's pool.
                    let s = match canonical::<V4ExactInPerHop>(p) {
                        Some(s) => V4ExactIn {
                            currencyIn: s.currencyIn,
                            path: s.path,
                            amountIn: s.amountIn,
                            amountOutMinimum: s.amountOutMinimum,
                        },
                        None => V4ExactIn::abi_decode(p).map_err(|_| malformed.clone())?,
                    };
                    if s.path.len() > MAX_HOPS {
                        return Err(DecodeError::TooMany { what: "hops", max: MAX_HOPS });
                    }
                    let mut token_in = s.currencyIn;
                    let mut hops = Vec::with_capacity(s.path.len());
                    for k in &s.path {
                        hops.push(self.v4_path_hop(token_in, k.intermediateCurrency, k));
                        token_in = k.intermediateCurrency;
                    }
                    Route { hops, amount: known(s.amountIn, SwapAmount::ExactIn) }
                }
                action::SWAP_EXACT_OUT => {
                    // path[0] → path[1] … → currencyOut; hop i pays path[i] into path[i]'s pool.
                    let s = match canonical::<V4ExactOutPerHop>(p) {
                        Some(s) => V4ExactOut {
                            currencyOut: s.currencyOut,
                            path: s.path,
                            amountOut: s.amountOut,
                            amountInMaximum: s.amountInMaximum,
                        },
                        None => V4ExactOut::abi_decode(p).map_err(|_| malformed.clone())?,
                    };
                    if s.path.len() > MAX_HOPS {
                        return Err(DecodeError::TooMany { what: "hops", max: MAX_HOPS });
                    }
                    let mut hops = Vec::with_capacity(s.path.len());
                    for (i, k) in s.path.iter().enumerate() {
                        let token_out = s.path.get(i + 1).map_or(s.currencyOut, |n| n.intermediateCurrency);
                        hops.push(self.v4_path_hop(k.intermediateCurrency, token_out, k));
                    }
                    Route { hops, amount: known(s.amountOut, SwapAmount::ExactOut) }
                }
                _ => continue, // settle, take, sweep …: no pool moves
            };
            if !route.hops.is_empty() {
                out.push(route)?;
            }
        }
        Ok(())
    }

    fn multicall(
        &self,
        kind: RouterKind,
        calls: &[alloy::primitives::Bytes],
        depth: usize,
        out: &mut Routes,
    ) -> Result<(), DecodeError> {
        if depth >= 1 {
            return Err(DecodeError::TooMany { what: "nested calls", max: 1 });
        }
        if calls.len() > MAX_COMMANDS {
            return Err(DecodeError::TooMany { what: "calls", max: MAX_COMMANDS });
        }
        calls.iter().try_for_each(|c| self.router_call(kind, c, depth + 1, out))
    }

    /// The Universal Router's commands (`Dispatcher.dispatch`).
    fn commands(
        &self,
        commands: &[u8],
        inputs: &[alloy::primitives::Bytes],
        depth: usize,
        out: &mut Routes,
    ) -> Result<(), DecodeError> {
        if commands.len() != inputs.len() {
            return Err(DecodeError::CommandCount { commands: commands.len(), inputs: inputs.len() });
        }
        if commands.len() > MAX_COMMANDS {
            return Err(DecodeError::TooMany { what: "commands", max: MAX_COMMANDS });
        }
        // The Universal Router's "amount decided at execution" sentinels.
        let ur_in = |a: U256| (!a.is_zero() && a != UR_CONTRACT_BALANCE).then_some(SwapAmount::ExactIn(a));
        for (index, (&byte, input)) in commands.iter().zip(inputs).enumerate() {
            let bad = DecodeError::Command { index, command: byte };
            match byte & command::TYPE_MASK {
                command::V2_SWAP_EXACT_IN => {
                    let c = UrV2ExactIn::abi_decode_params(input).map_err(|_| bad)?;
                    out.push(Route { hops: self.v2_hops(&c.path)?, amount: ur_in(c.amountIn) })?;
                }
                command::V2_SWAP_EXACT_OUT => {
                    let c = UrV2ExactOut::abi_decode_params(input).map_err(|_| bad)?;
                    out.push(Route {
                        hops: self.v2_hops(&c.path)?,
                        amount: Some(SwapAmount::ExactOut(c.amountOut)),
                    })?;
                }
                command::V3_SWAP_EXACT_IN => {
                    let c = UrV3ExactIn::abi_decode_params(input).map_err(|_| bad)?;
                    let amount =
                        (c.amountIn != UR_CONTRACT_BALANCE).then_some(SwapAmount::ExactIn(c.amountIn));
                    out.push(Route { hops: self.v3_path(&c.path, false)?, amount })?;
                }
                command::V3_SWAP_EXACT_OUT => {
                    let c = UrV3ExactOut::abi_decode_params(input).map_err(|_| bad)?;
                    out.push(Route {
                        hops: self.v3_path(&c.path, true)?,
                        amount: Some(SwapAmount::ExactOut(c.amountOut)),
                    })?;
                }
                command::V4_SWAP => self.v4_plan(input, out).map_err(|e| match e {
                    DecodeError::TooMany { .. } => e,
                    _ => bad,
                })?,
                command::EXECUTE_SUB_PLAN => {
                    if depth >= 1 {
                        return Err(DecodeError::TooMany { what: "nested calls", max: 1 });
                    }
                    let c = UrSubPlan::abi_decode_params(input).map_err(|_| bad)?;
                    self.commands(&c.commands, &c.inputs, depth + 1, out)?;
                }
                _ => {} // WRAP_ETH, SWEEP, PERMIT2_*, PAY_PORTION …: no pool moves
            }
        }
        Ok(())
    }

    /// A direct `swap` on a tracked pool (calldata that is not a `swap` is no swap).
    fn pool_call(&self, p: &MempoolPool, input: &[u8], out: &mut Routes) -> Result<(), DecodeError> {
        let (t0, t1) = sorted(p.token0, p.token1);
        let hop = |zero_for_one: bool| {
            let (token_in, token_out) = if zero_for_one { (t0, t1) } else { (t1, t0) };
            Hop { kind: p.kind, token_in, token_out, fee: p.fee, pool: Some(p.id) }
        };
        match p.kind {
            PoolKind::V3 => {
                let Ok(c) = IUniswapV3Pool::swapCall::abi_decode(input) else { return Ok(()) };
                let amt = c.amountSpecified.unsigned_abs();
                let amount = if c.amountSpecified.is_negative() {
                    SwapAmount::ExactOut(amt)
                } else {
                    SwapAmount::ExactIn(amt)
                };
                out.push(Route { hops: vec![hop(c.zeroForOne)], amount: Some(amount) })
            }
            PoolKind::V2 => {
                let Ok(c) = IUniswapV2Pair::swapCall::abi_decode(input) else { return Ok(()) };
                let (zero_for_one, amt) =
                    if !c.amount1Out.is_zero() { (true, c.amount1Out) } else { (false, c.amount0Out) };
                out.push(Route { hops: vec![hop(zero_for_one)], amount: Some(SwapAmount::ExactOut(amt)) })
            }
            // Never in `by_address` (see `new`).
            PoolKind::V4 => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::aliases::{U24, U160};
    use alloy::primitives::{Bytes, address};
    use alloy::sol_types::SolValue;

    use super::*;

    const A: Address = address!("0x000000000000000000000000000000000000000a");
    const B: Address = address!("0x000000000000000000000000000000000000000b");
    const C: Address = address!("0x000000000000000000000000000000000000000c");
    const UR: Address = address!("0x0000000000000000000000000000000000000001");
    const SR02: Address = address!("0x0000000000000000000000000000000000000002");
    const V2_AB: Address = address!("0x0000000000000000000000000000000000000ab2");
    const V3_BC: Address = address!("0x0000000000000000000000000000000000000bc3");
    const V4_ROUTER: Address = address!("0x0000000000000000000000000000000000000004");
    const MANAGER: Address = address!("0x0000000000000000000000000000000000000444");

    /// The tracked V4 pool: A/C, 0.3%, spacing 60, no hooks.
    fn v4_key() -> V4PoolKey {
        V4PoolKey {
            currency0: A,
            currency1: C,
            fee: U24::from(3000),
            tickSpacing: alloy::primitives::aliases::I24::try_from(60).unwrap(),
            hooks: Address::ZERO,
        }
    }

    fn path_key(intermediate: Address, fee: u32) -> V4PathKey {
        V4PathKey {
            intermediateCurrency: intermediate,
            fee: U24::from(fee),
            tickSpacing: alloy::primitives::aliases::I24::try_from(60).unwrap(),
            hooks: Address::ZERO,
            hookData: Bytes::new(),
        }
    }

    /// `abi.encode(actions, params)` with a settle (0x0c) and a take (0x0f) after `swaps`.
    fn v4_plan(swaps: Vec<(u8, Bytes)>) -> Bytes {
        let (mut actions, mut params): (Vec<u8>, Vec<Bytes>) = swaps.into_iter().unzip();
        let pay: Bytes = (A, U256::from(1u64)).abi_encode_params().into();
        actions.extend([0x0c, 0x0f]);
        params.extend([pay.clone(), pay]);
        V4Plan { actions: actions.into(), params }.abi_encode_params().into()
    }

    fn decoder() -> MempoolDecoder {
        MempoolDecoder::new(
            &[
                MempoolPool {
                    id: 0,
                    address: V2_AB,
                    kind: PoolKind::V2,
                    token0: A,
                    token1: B,
                    fee: 0,
                    pool_key: None,
                },
                MempoolPool {
                    id: 1,
                    address: V3_BC,
                    kind: PoolKind::V3,
                    token0: B,
                    token1: C,
                    fee: 500,
                    pool_key: None,
                },
                MempoolPool {
                    id: 2,
                    address: MANAGER,
                    kind: PoolKind::V4,
                    token0: A,
                    token1: C,
                    fee: 3000,
                    pool_key: Some(keel_amm::v4::PoolKey {
                        currency0: A,
                        currency1: C,
                        fee: 3000,
                        tick_spacing: 60,
                        hooks: Address::ZERO,
                    }),
                },
            ],
            &[
                (UR, RouterKind::UniversalRouter),
                (SR02, RouterKind::SwapRouter02),
                (V4_ROUTER, RouterKind::V4Router),
            ],
        )
    }

    fn meta() -> TxMeta {
        TxMeta { hash: B256::repeat_byte(1), sender: Address::repeat_byte(2), nonce: 7, seen_ns: 9 }
    }

    fn v3_path(tokens: &[Address], fees: &[u32]) -> Bytes {
        let mut p = tokens[0].to_vec();
        for (t, f) in tokens[1..].iter().zip(fees) {
            p.extend_from_slice(&f.to_be_bytes()[1..]);
            p.extend_from_slice(t.as_slice());
        }
        p.into()
    }

    fn e18(x: u64) -> U256 {
        U256::from(x) * U256::from(10u64).pow(U256::from(18u64))
    }

    fn hops(r: &Route) -> Vec<(Address, Address, Option<PoolId>)> {
        r.hops.iter().map(|h| (h.token_in, h.token_out, h.pool)).collect()
    }

    fn ur(commands: Vec<u8>, inputs: Vec<Bytes>) -> Vec<u8> {
        IUniversalRouter::execute_0Call { commands: commands.into(), inputs, deadline: U256::from(1u64) }
            .abi_encode()
    }

    #[test]
    fn v4_single_pool_swaps_decode_through_the_v4_router_and_the_universal_router() {
        let d = decoder();
        let exact_in = V4ExactInSingle {
            poolKey: v4_key(),
            zeroForOne: false,
            amountIn: 5_000,
            amountOutMinimum: 1,
            hookData: Bytes::new(),
        };
        let plan = v4_plan(vec![(0x06, exact_in.abi_encode().into())]);
        let call = IV4Router::executeActionsCall { params: plan.clone() }.abi_encode();
        let t = d.decode(V4_ROUTER, &call, meta()).unwrap().expect("a tracked V4 swap");
        assert_eq!(t.routes.len(), 1);
        assert_eq!(hops(&t.routes[0]), vec![(C, A, Some(2))]);
        assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactIn(U256::from(5_000u64))));
        assert_eq!(t.routes[0].hops[0].kind, PoolKind::V4);
        // The same payload in the Universal Router's V4_SWAP (0x10), after a WRAP_ETH.
        let wrap = (Address::ZERO, U256::from(1u64)).abi_encode_params();
        let t = d.decode(UR, &ur(vec![0x0b, 0x10], vec![wrap.into(), plan]), meta()).unwrap().unwrap();
        assert_eq!(hops(&t.routes[0]), vec![(C, A, Some(2))]);

        // Exact output; OPEN_DELTA (0) leaves the amount to execution; another fee tier is untracked.
        let out = |amount: u128, fee: u32| {
            let key = V4PoolKey { fee: U24::from(fee), ..v4_key() };
            let s = V4ExactOutSingle {
                poolKey: key,
                zeroForOne: true,
                amountOut: amount,
                amountInMaximum: u128::MAX,
                hookData: Bytes::new(),
            };
            IV4Router::executeActionsCall { params: v4_plan(vec![(0x08, s.abi_encode().into())]) }
                .abi_encode()
        };
        let t = d.decode(V4_ROUTER, &out(7, 3000), meta()).unwrap().unwrap();
        assert_eq!(hops(&t.routes[0]), vec![(A, C, Some(2))]);
        assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactOut(U256::from(7u64))));
        let t = d.decode(V4_ROUTER, &out(0, 3000), meta()).unwrap().unwrap();
        assert_eq!(t.routes[0].amount, None);
        assert_eq!(d.decode(V4_ROUTER, &out(7, 500), meta()), Ok(None));
    }

    #[test]
    fn v4_multi_hop_paths_decode_in_execution_order() {
        let d = decoder();
        // Exact input: B → A (untracked pool) → C (the tracked A/C pool).
        let s = V4ExactIn {
            currencyIn: B,
            path: vec![path_key(A, 500), path_key(C, 3000)],
            amountIn: 9,
            amountOutMinimum: 1,
        };
        let call = IV4Router::executeActionsCall { params: v4_plan(vec![(0x07, s.abi_encode().into())]) };
        let t = d.decode(V4_ROUTER, &call.abi_encode(), meta()).unwrap().unwrap();
        assert_eq!(hops(&t.routes[0]), vec![(B, A, None), (A, C, Some(2))]);
        assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactIn(U256::from(9u64))));
        // Exact output of B: C → A (tracked, paid in C) → B; path lists the inputs from the first.
        let s = V4ExactOut {
            currencyOut: B,
            path: vec![path_key(C, 3000), path_key(A, 500)],
            amountOut: 4,
            amountInMaximum: u128::MAX,
        };
        let call = IV4Router::executeActionsCall { params: v4_plan(vec![(0x09, s.abi_encode().into())]) };
        let t = d.decode(V4_ROUTER, &call.abi_encode(), meta()).unwrap().unwrap();
        assert_eq!(hops(&t.routes[0]), vec![(C, A, Some(2)), (A, B, None)]);
        assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactOut(U256::from(4u64))));
    }

    #[test]
    fn v4_paths_in_the_universal_routers_per_hop_layout_decode_to_the_same_hops_and_amounts() {
        let d = decoder();
        // The Universal Router 2.1 reads `maxHopSlippage` after the path; decoded as the 1.0
        // layout its offset would pass for the amount.
        let s = V4ExactInPerHop {
            currencyIn: B,
            path: vec![path_key(A, 500), path_key(C, 3000)],
            maxHopSlippage: vec![U256::from(1u64), U256::from(2u64)],
            amountIn: 9,
            amountOutMinimum: 1,
        };
        let t = d.decode(UR, &ur(vec![0x10], vec![v4_plan(vec![(0x07, s.abi_encode().into())])]), meta());
        let t = t.unwrap().unwrap();
        assert_eq!(hops(&t.routes[0]), vec![(B, A, None), (A, C, Some(2))]);
        assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactIn(U256::from(9u64))));
        let s = V4ExactOutPerHop {
            currencyOut: B,
            path: vec![path_key(C, 3000), path_key(A, 500)],
            maxHopSlippage: Vec::new(),
            amountOut: 4,
            amountInMaximum: u128::MAX,
        };
        let t = d.decode(UR, &ur(vec![0x10], vec![v4_plan(vec![(0x09, s.abi_encode().into())])]), meta());
        let t = t.unwrap().unwrap();
        assert_eq!(hops(&t.routes[0]), vec![(C, A, Some(2)), (A, B, None)]);
        assert_eq!(t.routes[0].amount, Some(SwapAmount::ExactOut(U256::from(4u64))));
    }

    #[test]
    fn malformed_v4_plans_are_typed_errors() {
        let d = decoder();
        let garbage = IV4Router::executeActionsCall { params: Bytes::from(vec![0xff; 40]) }.abi_encode();
        let bad = DecodeError::Calldata { router: RouterKind::V4Router, function: "executeActions(bytes)" };
        assert_eq!(d.decode(V4_ROUTER, &garbage, meta()), Err(bad.clone()));
        // One action byte too many for its parameters.
        let uneven = V4Plan { actions: vec![0x06, 0x0c].into(), params: vec![Bytes::new()] };
        let call = IV4Router::executeActionsCall { params: uneven.abi_encode_params().into() }.abi_encode();
        assert_eq!(d.decode(V4_ROUTER, &call, meta()), Err(bad));
        // A swap action whose parameters do not decode, inside the Universal Router.
        let broken = V4Plan { actions: vec![0x06].into(), params: vec![Bytes::from(vec![1; 10])] };
        let call = ur(vec![0x10], vec![broken.abi_encode_params().into()]);
        assert_eq!(d.decode(UR, &call, meta()), Err(DecodeError::Command { index: 0, command: 0x10 }));
        // A path longer than MAX_HOPS.
        let long = V4ExactIn {
            currencyIn: B,
            path: vec![path_key(A, 500); MAX_HOPS + 1],
            amountIn: 1,
            amountOutMinimum: 0,
        };
        let call = IV4Router::executeActionsCall { params: v4_plan(vec![(0x07, long.abi_encode().into())]) };
        assert_eq!(
            d.decode(V4_ROUTER, &call.abi_encode(), meta()),
            Err(DecodeError::TooMany { what: "hops", max: MAX_HOPS })
        );
    }

    #[test]
    fn universal_router_v2_and_v3_commands_decode_in_order() {
        let v2_in = (Address::ZERO, e18(5), U256::ZERO, vec![A, B, C], true).abi_encode_params();
        // Exact output of 3 B paid in C through the V3 0.05% pool: packed from the output, B 500 C.
        let v3_out = (Address::ZERO, e18(3), U256::MAX, v3_path(&[B, C], &[500]), false).abi_encode_params();
        let wrap = (Address::ZERO, U256::from(1u64)).abi_encode_params(); // WRAP_ETH: not a swap
        let input = ur(vec![0x0b, 0x08, 0x01 | 0x80], vec![wrap.into(), v2_in.into(), v3_out.into()]);
        let tx = decoder().decode(UR, &input, meta()).unwrap().unwrap();
        assert_eq!((tx.hash, tx.nonce, tx.seen_ns), (meta().hash, 7, 9));
        assert_eq!(tx.routes.len(), 2);
        assert_eq!(hops(&tx.routes[0]), [(A, B, Some(0)), (B, C, None)]); // V2 B/C untracked
        assert_eq!(tx.routes[0].amount, Some(SwapAmount::ExactIn(e18(5))));
        assert_eq!(hops(&tx.routes[1]), [(C, B, Some(1))]);
        assert!(!tx.routes[1].hops[0].zero_for_one());
        assert_eq!(tx.routes[1].amount, Some(SwapAmount::ExactOut(e18(3))));
    }

    #[test]
    fn universal_router_multi_hop_exact_output_is_turned_around() {
        // Buy 1 A with C through C→B (V3 500) then B→A (V3 3000): packed A 3000 B 500 C.
        let path = v3_path(&[A, B, C], &[3000, 500]);
        let input = (Address::ZERO, e18(1), U256::MAX, path, true).abi_encode_params();
        let tx = decoder().decode(UR, &ur(vec![0x01], vec![input.into()]), meta()).unwrap().unwrap();
        let r = &tx.routes[0];
        assert_eq!(hops(r), [(C, B, Some(1)), (B, A, None)]);
        assert_eq!((r.hops[0].fee, r.hops[1].fee), (500, 3000));
        assert_eq!(r.amount, Some(SwapAmount::ExactOut(e18(1))));
    }

    #[test]
    fn router_balance_sentinels_leave_the_amount_open_and_sub_plans_are_followed() {
        let balance = UR_CONTRACT_BALANCE;
        let v3_in = (Address::ZERO, balance, U256::ZERO, v3_path(&[B, C], &[500]), false).abi_encode_params();
        let v2_paid = (Address::ZERO, U256::ZERO, U256::ZERO, vec![A, B], false).abi_encode_params();
        let sub = (Bytes::from(vec![0x00u8, 0x08]), vec![Bytes::from(v3_in), Bytes::from(v2_paid)])
            .abi_encode_params();
        let tx = decoder().decode(UR, &ur(vec![0x21], vec![sub.into()]), meta()).unwrap().unwrap();
        assert_eq!(tx.routes.len(), 2);
        assert!(tx.routes.iter().all(|r| r.amount.is_none()));
        // A sub-plan inside a sub-plan is refused (bounded nesting).
        let inner = (Bytes::from(vec![0x21u8]), vec![Bytes::new()]).abi_encode_params();
        let outer = (Bytes::from(vec![0x21u8]), vec![Bytes::from(inner)]).abi_encode_params();
        assert_eq!(
            decoder().decode(UR, &ur(vec![0x21], vec![outer.into()]), meta()),
            Err(DecodeError::TooMany { what: "nested calls", max: 1 })
        );
    }

    #[test]
    fn swap_router02_calls_decode_bare_and_inside_each_multicall() {
        let v2 = IV2SwapRouter::swapTokensForExactTokensCall {
            amountOut: e18(2),
            amountInMax: U256::MAX,
            path: vec![B, A],
            to: Address::ZERO,
        }
        .abi_encode();
        let v3 = IV3SwapRouter::exactInputCall {
            params: IV3SwapRouter::ExactInputParams {
                path: v3_path(&[C, B, A], &[500, 3000]),
                recipient: Address::ZERO,
                amountIn: e18(4),
                amountOutMinimum: U256::ZERO,
            },
        }
        .abi_encode();
        let single = IV3SwapRouter::exactOutputSingleCall {
            params: IV3SwapRouter::ExactOutputSingleParams {
                tokenIn: B,
                tokenOut: C,
                fee: U24::from(500u32),
                recipient: Address::ZERO,
                amountOut: e18(1),
                amountInMaximum: U256::MAX,
                sqrtPriceLimitX96: U160::ZERO,
            },
        }
        .abi_encode();
        let d = decoder();
        let bare = d.decode(SR02, &v2, meta()).unwrap().unwrap();
        assert_eq!(hops(&bare.routes[0]), [(B, A, Some(0))]);
        assert_eq!(bare.routes[0].amount, Some(SwapAmount::ExactOut(e18(2))));
        let data: Vec<Bytes> = vec![v2.into(), v3.into(), single.into()];
        let calls = [
            IMulticallExtended::multicall_0Call { data: data.clone() }.abi_encode(),
            IMulticallExtended::multicall_1Call { deadline: U256::from(5u64), data: data.clone() }
                .abi_encode(),
            IMulticallExtended::multicall_2Call { previousBlockhash: B256::ZERO, data }.abi_encode(),
        ];
        for call in calls {
            let tx = d.decode(SR02, &call, meta()).unwrap().unwrap();
            assert_eq!(tx.routes.len(), 3);
            assert_eq!(hops(&tx.routes[1]), [(C, B, Some(1)), (B, A, None)]);
            assert_eq!(tx.routes[1].amount, Some(SwapAmount::ExactIn(e18(4))));
            assert_eq!(hops(&tx.routes[2]), [(B, C, Some(1))]);
            assert_eq!(tx.routes[2].amount, Some(SwapAmount::ExactOut(e18(1))));
        }
    }

    #[test]
    fn untracked_swaps_and_other_calls_are_not_swaps() {
        let d = decoder();
        let v2_ac = (Address::ZERO, e18(1), U256::ZERO, vec![A, C], true).abi_encode_params();
        assert_eq!(d.decode(UR, &ur(vec![0x08], vec![v2_ac.into()]), meta()), Ok(None));
        assert_eq!(d.decode(UR, &[0xde, 0xad, 0xbe, 0xef], meta()), Ok(None));
        assert_eq!(d.decode(Address::repeat_byte(0x77), &[1, 2, 3, 4, 5], meta()), Ok(None));
    }

    #[test]
    fn malformed_calldata_is_a_typed_error() {
        let d = decoder();
        let mut call = ur(vec![0x08], vec![Bytes::from(vec![1u8; 40])]);
        assert_eq!(d.decode(UR, &call, meta()), Err(DecodeError::Command { index: 0, command: 0x08 }));
        call.truncate(40);
        assert!(
            matches!(d.decode(UR, &call, meta()), Err(DecodeError::Calldata { function, .. }) if function.starts_with("execute"))
        );
        let counts = ur(vec![0x08, 0x08], vec![Bytes::new()]);
        assert_eq!(d.decode(UR, &counts, meta()), Err(DecodeError::CommandCount { commands: 2, inputs: 1 }));
        let bad_path =
            (Address::ZERO, e18(1), U256::ZERO, Bytes::from(vec![0u8; 44]), true).abi_encode_params();
        assert_eq!(
            d.decode(UR, &ur(vec![0x00], vec![bad_path.into()]), meta()),
            Err(DecodeError::Path { len: 44 })
        );
        let long: Vec<Address> = (0..12).map(|_| A).collect();
        let v2 = IV2SwapRouter::swapExactTokensForTokensCall {
            amountIn: U256::from(1u64),
            amountOutMin: U256::ZERO,
            path: long,
            to: Address::ZERO,
        };
        assert_eq!(d.decode(SR02, &v2.abi_encode(), meta()), Err(DecodeError::Path { len: 12 }));
        let too_many = ur(vec![0x0b; MAX_COMMANDS + 1], vec![Bytes::new(); MAX_COMMANDS + 1]);
        assert_eq!(
            d.decode(UR, &too_many, meta()),
            Err(DecodeError::TooMany { what: "commands", max: MAX_COMMANDS })
        );
    }

    #[test]
    fn random_and_truncated_calldata_never_panics() {
        let d = decoder();
        let v2_in = (Address::ZERO, e18(5), U256::ZERO, vec![A, B, C], true).abi_encode_params();
        let good = ur(vec![0x08], vec![v2_in.into()]);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..good.len() {
            let _ = d.decode(UR, &good[..len], meta());
            let mut m = good.clone();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % m.len();
            m[i] = m[i].wrapping_add((x >> 32) as u8 | 1);
            let _ = d.decode(UR, &m, meta());
            let _ = d.decode(SR02, &m, meta());
        }
    }
}
