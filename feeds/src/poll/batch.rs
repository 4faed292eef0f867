//! One block's reads in one HTTP request: a JSON-RPC batch (an array of requests in one POST body)
//! holding the block's header, every V2 pool's `getReserves`, every Balancer pool's balances (the
//! Vault's `getPoolTokens`) and swap fee, every Curve pool's state (eight views), every
//! (portfolio, token) `balanceOf`, every account's
//! `eth_getTransactionCount` and the parameter registry's `params()`, all pinned to the same block
//! number.
//!
//! Why a JSON-RPC batch rather than Multicall3's `aggregate3`: nonces are not readable from a
//! contract (Multicall3 has `getEthBalance`, not nonces), so a Multicall3 read would still need a
//! second request per block; a batch carries every kind of read in one round trip, needs no
//! contract deployed on the node (anvil, the devnet and Keel's simulated chain serve it as they
//! are), and each item fails or succeeds on its own with the node's error. Every standard node
//! (geth, reth, erigon, anvil) answers batches; geth caps a batch at 1,000 items by default
//! (`--rpc.batch-request-limit`), so a large book on geth needs that limit raised.
//!
//! Costs: the request is built and its replies decoded off the hot path (the poller's task);
//! it allocates about one small buffer per item per block.

use alloy::eips::BlockId;
use alloy::primitives::{Bytes, U64, U256};
use alloy::providers::Provider;
use alloy::rpc::client::{BatchRequest, Waiter};
use alloy::rpc::types::{Block, BlockNumberOrTag, TransactionRequest};
use alloy::sol_types::SolCall;
use keel_amm::abi::{
    IBalancerVault, IBalancerWeightedPool, ICurveStableSwap, IERC20, IPermit2, IUniswapV2Pair,
    PERMIT2_ADDRESS,
};
use keel_engine::chain::ChainUpdate;
use keel_engine::event::{Balance, BlockHeader, Event};

use super::balancer::{self, BalancerMeta};
use super::curve::{self, CurveMeta, CurveRead};
use super::{PollError, PollTargets};

/// What one block's batch read returned.
#[derive(Debug)]
pub(crate) struct BlockRead {
    /// The block's header (its receive time is set by the caller).
    pub(crate) head: BlockHeader,
    /// Balances, for the engine.
    pub(crate) engine: Vec<Event>,
    /// Pool reserves and nonces, for the router.
    pub(crate) router: Vec<ChainUpdate>,
    /// The registry's `params()` reply, or why the call failed (the block's other reads stand).
    pub(crate) registry: Option<Result<Bytes, String>>,
    /// Balancer and Curve pools whose reads failed this block (the block's other reads stand).
    pub(crate) skipped: Vec<SkippedPool>,
}

fn call_params(to: alloy::primitives::Address, input: Vec<u8>, at: BlockId) -> (TransactionRequest, BlockId) {
    (TransactionRequest::default().to(to).input(Bytes::from(input).into()), at)
}

fn transport(what: &'static str) -> impl Fn(alloy::transports::TransportError) -> PollError {
    move |e| PollError::Rpc(format!("{what}: {e}"))
}

fn decode<C: SolCall>(out: &[u8], to: alloy::primitives::Address) -> Result<C::Return, PollError> {
    C::abi_decode_returns(out)
        .map_err(|e| PollError::Rpc(format!("{} on {to}: undecodable reply: {e}", C::SIGNATURE)))
}

/// Reads block `number`'s header and every target pinned to it, in one JSON-RPC batch request.
/// `balancer` and `curve` hold the start reads of each of `targets.balancer_pools` and
/// `targets.curve_pools` (`None`: left out).
pub(crate) async fn read_block<P: Provider>(
    provider: &P,
    targets: &PollTargets,
    balancer: &[Option<BalancerMeta>],
    curve: &[Option<CurveMeta>],
    number: u64,
) -> Result<BlockRead, PollError> {
    let at = BlockId::number(number);
    let client = provider.client();
    let mut batch = BatchRequest::new(client);
    let add = transport("building the batch");
    let block: Waiter<Option<Block>> =
        batch.add_call("eth_getBlockByNumber", &(BlockNumberOrTag::Number(number), false)).map_err(&add)?;
    let reserves_input = IUniswapV2Pair::getReservesCall::new(()).abi_encode();
    let pools = targets
        .v2_pools
        .iter()
        .map(|&(_, addr)| {
            batch.add_call::<_, Bytes>("eth_call", &call_params(addr, reserves_input.clone(), at))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(&add)?;
    let mut weighted = Vec::with_capacity(targets.balancer_pools.len());
    for (t, meta) in targets.balancer_pools.iter().zip(balancer) {
        if meta.is_none() {
            continue;
        }
        let tokens = IBalancerVault::getPoolTokensCall::new((t.pool_id,)).abi_encode();
        let fee = IBalancerWeightedPool::getSwapFeePercentageCall::new(()).abi_encode();
        let tokens =
            batch.add_call::<_, Bytes>("eth_call", &call_params(t.vault, tokens, at)).map_err(&add)?;
        let fee = batch.add_call::<_, Bytes>("eth_call", &call_params(t.address, fee, at)).map_err(&add)?;
        weighted.push((t, meta, tokens, fee));
    }
    let mut stable = Vec::with_capacity(targets.curve_pools.len());
    for (t, meta) in targets.curve_pools.iter().zip(curve) {
        let Some(meta) = meta else { continue };
        let mut view =
            |input: Vec<u8>| batch.add_call::<_, Bytes>("eth_call", &call_params(t.address, input, at));
        let views = [
            view(ICurveStableSwap::get_balancesCall::new(()).abi_encode()),
            view(ICurveStableSwap::stored_ratesCall::new(()).abi_encode()),
            view(ICurveStableSwap::initial_ACall::new(()).abi_encode()),
            view(ICurveStableSwap::future_ACall::new(()).abi_encode()),
            view(ICurveStableSwap::initial_A_timeCall::new(()).abi_encode()),
            view(ICurveStableSwap::future_A_timeCall::new(()).abi_encode()),
            view(ICurveStableSwap::feeCall::new(()).abi_encode()),
            view(ICurveStableSwap::offpeg_fee_multiplierCall::new(()).abi_encode()),
        ];
        let [a, b, c, d, e, f, g, h] = views;
        stable.push((
            t,
            meta,
            [
                a.map_err(&add)?,
                b.map_err(&add)?,
                c.map_err(&add)?,
                d.map_err(&add)?,
                e.map_err(&add)?,
                f.map_err(&add)?,
                g.map_err(&add)?,
                h.map_err(&add)?,
            ],
        ));
    }
    let balances = targets
        .balances
        .iter()
        .map(|&(_, account, _, token)| {
            if token.is_zero() {
                // Native ETH.
                batch.add_call::<_, U256>("eth_getBalance", &(account, at)).map(BalanceWaiter::Native)
            } else {
                let input = IERC20::balanceOfCall::new((account,)).abi_encode();
                batch
                    .add_call::<_, Bytes>("eth_call", &call_params(token, input, at))
                    .map(BalanceWaiter::Erc20)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(&add)?;
    let nonces = targets
        .accounts
        .iter()
        .map(|&account| batch.add_call::<_, U64>("eth_getTransactionCount", &(account, at)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(&add)?;
    let registry = targets
        .registry
        .as_ref()
        .map(|r| {
            batch.add_call::<_, Bytes>(
                "eth_call",
                &call_params(r.address, super::registry::params_input(), at),
            )
        })
        .transpose()
        .map_err(&add)?;
    batch.send().await.map_err(transport("batch read"))?;

    let block = block
        .await
        .map_err(transport("eth_getBlockByNumber"))?
        .ok_or_else(|| PollError::Rpc(format!("block {number} not found")))?;
    let head = BlockHeader {
        number,
        timestamp: block.header.timestamp,
        base_fee: u128::from(block.header.base_fee_per_gas.unwrap_or(0)),
        recv_ns: 0,
    };
    let mut router = Vec::with_capacity(pools.len() + nonces.len());
    for (w, &(pool, addr)) in pools.into_iter().zip(&targets.v2_pools) {
        let out = w.await.map_err(transport("getReserves"))?;
        let r = decode::<IUniswapV2Pair::getReservesCall>(&out, addr)?;
        router.push(ChainUpdate::polled_v2_reserves(
            pool,
            addr,
            U256::from(r.reserve0),
            U256::from(r.reserve1),
            number,
        ));
    }
    // A pool whose reads fail (a view that reverts, a reply that does not decode) is skipped for
    // this block, saying why: the block's other reads stand, and the router sees that pool age.
    let mut skipped = Vec::new();
    for (t, meta, tokens, fee) in weighted {
        let Some(meta) = meta else { continue };
        let read = async {
            let out = tokens.await.map_err(transport("getPoolTokens"))?;
            let r = decode::<IBalancerVault::getPoolTokensCall>(&out, t.vault)?;
            let out = fee.await.map_err(transport("getSwapFeePercentage"))?;
            let fee = decode::<IBalancerWeightedPool::getSwapFeePercentageCall>(&out, t.address)?;
            balancer::snapshot(t, meta, &r.tokens, &r.balances, fee, number)
        };
        match read.await {
            Ok(u) => router.push(u),
            Err(e) => skipped.push(SkippedPool { pool: t.pool, address: t.address, error: e }),
        }
    }
    for (t, meta, [balances, rates, initial_a, future_a, initial_t, future_t, fee, offpeg]) in stable {
        let read = async {
            let a = t.address;
            let word = |out: Bytes, what: &'static str| -> Result<U256, PollError> {
                <alloy::sol_types::sol_data::Uint<256> as alloy::sol_types::SolType>::abi_decode(&out)
                    .map_err(|e| PollError::Rpc(format!("{what} on {a}: undecodable reply: {e}")))
            };
            let balances = decode::<ICurveStableSwap::get_balancesCall>(
                &balances.await.map_err(transport("get_balances"))?,
                a,
            )?;
            let rates = decode::<ICurveStableSwap::stored_ratesCall>(
                &rates.await.map_err(transport("stored_rates"))?,
                a,
            )?;
            let amp = curve::amp_ramp(
                word(initial_a.await.map_err(transport("initial_A"))?, "initial_A()")?,
                word(future_a.await.map_err(transport("future_A"))?, "future_A()")?,
                word(initial_t.await.map_err(transport("initial_A_time"))?, "initial_A_time()")?,
                word(future_t.await.map_err(transport("future_A_time"))?, "future_A_time()")?,
            )
            .map_err(|e| PollError::Rpc(format!("curve pool {a}: {e}")))?;
            let fee = word(fee.await.map_err(transport("fee"))?, "fee()")?;
            let offpeg_fee_multiplier =
                word(offpeg.await.map_err(transport("offpeg_fee_multiplier"))?, "offpeg_fee_multiplier()")?;
            let read = CurveRead { balances, rates, amp, fee, offpeg_fee_multiplier };
            curve::snapshot(t, meta, &read, number, head.timestamp)
        };
        match read.await {
            Ok(u) => router.push(u),
            Err(e) => skipped.push(SkippedPool { pool: t.pool, address: t.address, error: e }),
        }
    }
    let mut engine = Vec::with_capacity(balances.len());
    for (w, &(portfolio, _, token, token_addr)) in balances.into_iter().zip(&targets.balances) {
        let amount = match w {
            BalanceWaiter::Erc20(w) => {
                let out = w.await.map_err(transport("balanceOf"))?;
                decode::<IERC20::balanceOfCall>(&out, token_addr)?
            }
            // What the account may trade: its gas reserve is kept out.
            BalanceWaiter::Native(w) => {
                w.await.map_err(transport("eth_getBalance"))?.saturating_sub(targets.native_reserve)
            }
        };
        // Stamped with the block's receive time when it is handed on.
        engine.push(Event::Balance(Balance { portfolio, token, amount, block: number, recv_ns: 0 }));
    }
    for (w, &account) in nonces.into_iter().zip(&targets.accounts) {
        let nonce = w.await.map_err(transport("eth_getTransactionCount"))?;
        router.push(ChainUpdate::Nonce { account, nonce: nonce.to::<u64>(), block: number });
    }
    let registry = match registry {
        Some(w) => Some(w.await.map_err(|e| format!("params(): {e}"))),
        None => None,
    };
    Ok(BlockRead { head, engine, router, registry, skipped })
}

/// A pool left out of one block's read, and why.
#[derive(Debug)]
pub(crate) struct SkippedPool {
    /// Its index in the configured pool list.
    pub(crate) pool: u32,
    /// Its address.
    pub(crate) address: alloy::primitives::Address,
    /// What failed.
    pub(crate) error: PollError,
}

/// A balance read waiting in a batch: an ERC-20 `balanceOf` or a native `eth_getBalance`.
enum BalanceWaiter {
    Erc20(Waiter<Bytes>),
    Native(Waiter<U256>),
}

/// Reads every allowance in `targets` at the latest block, in one JSON-RPC batch request.
pub(crate) async fn read_allowances<P: Provider>(
    provider: &P,
    targets: &PollTargets,
) -> Result<Vec<ChainUpdate>, PollError> {
    if targets.allowances.is_empty() && targets.permit2_allowances.is_empty() {
        return Ok(Vec::new());
    }
    let client = provider.client();
    let mut batch = BatchRequest::new(client);
    let waiters = targets
        .allowances
        .iter()
        .map(|&(owner, token, spender)| {
            let input = IERC20::allowanceCall::new((owner, spender)).abi_encode();
            batch.add_call::<_, Bytes>("eth_call", &call_params(token, input, BlockId::latest()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(transport("building the batch"))?;
    let permit2 = targets
        .permit2_allowances
        .iter()
        .map(|&(owner, token, spender)| {
            let erc20 = IERC20::allowanceCall::new((owner, PERMIT2_ADDRESS)).abi_encode();
            let grant = IPermit2::allowanceCall::new((owner, token, spender)).abi_encode();
            Ok((
                batch.add_call::<_, Bytes>("eth_call", &call_params(token, erc20, BlockId::latest()))?,
                batch.add_call::<_, Bytes>(
                    "eth_call",
                    &call_params(PERMIT2_ADDRESS, grant, BlockId::latest()),
                )?,
            ))
        })
        .collect::<Result<Vec<_>, alloy::transports::TransportError>>()
        .map_err(transport("building the batch"))?;
    batch.send().await.map_err(transport("allowance batch"))?;
    let mut out = Vec::with_capacity(waiters.len() + permit2.len());
    for (w, &(owner, token, spender)) in waiters.into_iter().zip(&targets.allowances) {
        let reply = w.await.map_err(transport("allowance"))?;
        let amount = decode::<IERC20::allowanceCall>(&reply, token)?;
        out.push(ChainUpdate::Allowance { owner, token, spender, amount });
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for ((erc20, grant), &(owner, token, spender)) in permit2.into_iter().zip(&targets.permit2_allowances) {
        let erc20 = decode::<IERC20::allowanceCall>(&erc20.await.map_err(transport("allowance"))?, token)?;
        let reply = grant.await.map_err(transport("Permit2 allowance"))?;
        let grant = decode::<IPermit2::allowanceCall>(&reply, PERMIT2_ADDRESS)?;
        let live = u64::try_from(grant.expiration).unwrap_or(u64::MAX) > now;
        let amount = if live { erc20.min(U256::from(grant.amount)) } else { U256::ZERO };
        out.push(ChainUpdate::Allowance { owner, token, spender, amount });
    }
    Ok(out)
}

/// Reads what does not change of every Balancer pool in `targets` (tokens, weights, the tokens'
/// decimals) at the latest block, in two JSON-RPC batch requests. A pool that cannot be traded
/// as configured is logged and left out (`None`); a transport failure is an error (retried).
pub(crate) async fn read_balancer_meta<P: Provider>(
    provider: &P,
    targets: &PollTargets,
) -> Result<Vec<Option<BalancerMeta>>, PollError> {
    if targets.balancer_pools.is_empty() {
        return Ok(Vec::new());
    }
    let client = provider.client();
    let add = transport("building the batch");
    let latest = BlockId::latest();
    let mut batch = BatchRequest::new(client);
    let mut waiters = Vec::with_capacity(targets.balancer_pools.len());
    for t in &targets.balancer_pools {
        let tokens = IBalancerVault::getPoolTokensCall::new((t.pool_id,)).abi_encode();
        let weights = IBalancerWeightedPool::getNormalizedWeightsCall::new(()).abi_encode();
        let tokens =
            batch.add_call::<_, Bytes>("eth_call", &call_params(t.vault, tokens, latest)).map_err(&add)?;
        let weights =
            batch.add_call::<_, Bytes>("eth_call", &call_params(t.address, weights, latest)).map_err(&add)?;
        waiters.push((tokens, weights));
    }
    batch.send().await.map_err(transport("balancer pool batch"))?;
    let mut read = Vec::with_capacity(waiters.len());
    for ((tokens, weights), t) in waiters.into_iter().zip(&targets.balancer_pools) {
        // A revert (no such pool id, not a weighted pool) leaves the pool out, like a mismatch.
        let tokens = match tokens.await {
            Ok(out) => decode::<IBalancerVault::getPoolTokensCall>(&out, t.vault).map(|r| r.tokens),
            Err(e) => Err(PollError::Rpc(format!("getPoolTokens: {e}"))),
        };
        let weights = match weights.await {
            Ok(out) => decode::<IBalancerWeightedPool::getNormalizedWeightsCall>(&out, t.address),
            Err(e) => Err(PollError::Rpc(format!("getNormalizedWeights: {e}"))),
        };
        read.push(tokens.and_then(|tk| Ok((tk, weights?))));
    }
    let mut batch = BatchRequest::new(client);
    let mut decimals = Vec::with_capacity(read.len());
    for r in &read {
        let mut ws = Vec::new();
        if let Ok((tokens, _)) = r {
            for &token in tokens {
                let input = IERC20::decimalsCall::new(()).abi_encode();
                ws.push(
                    batch
                        .add_call::<_, Bytes>("eth_call", &call_params(token, input, latest))
                        .map_err(&add)?,
                );
            }
        }
        decimals.push(ws);
    }
    batch.send().await.map_err(transport("token decimals batch"))?;
    let mut out = Vec::with_capacity(read.len());
    for ((r, ws), t) in read.into_iter().zip(decimals).zip(&targets.balancer_pools) {
        let meta = async {
            let (tokens, weights) = r.map_err(|e| e.to_string())?;
            let mut d = Vec::with_capacity(ws.len());
            for (w, &token) in ws.into_iter().zip(&tokens) {
                let reply = w.await.map_err(|e| format!("decimals of {token}: {e}"))?;
                d.push(decode::<IERC20::decimalsCall>(&reply, token).map_err(|e| e.to_string())?);
            }
            balancer::meta_of(t, tokens, weights, d)
        }
        .await;
        match meta {
            Ok(m) => out.push(Some(m)),
            Err(reason) => {
                tracing::error!(pool = %t.address, %reason, "balancer pool left out: it cannot be traded as configured");
                out.push(None);
            }
        }
    }
    Ok(out)
}

/// Reads what does not change of every Curve pool in `targets` (its coin count and admin fee, then
/// its coins) at the latest block, in two JSON-RPC batch requests. A pool that cannot be traded as
/// configured is logged and left out (`None`); a transport failure is an error (retried).
pub(crate) async fn read_curve_meta<P: Provider>(
    provider: &P,
    targets: &PollTargets,
) -> Result<Vec<Option<CurveMeta>>, PollError> {
    if targets.curve_pools.is_empty() {
        return Ok(Vec::new());
    }
    let client = provider.client();
    let add = transport("building the batch");
    let latest = BlockId::latest();
    let mut batch = BatchRequest::new(client);
    let mut waiters = Vec::with_capacity(targets.curve_pools.len());
    for t in &targets.curve_pools {
        let n = ICurveStableSwap::N_COINSCall::new(()).abi_encode();
        let admin = ICurveStableSwap::admin_feeCall::new(()).abi_encode();
        let n = batch.add_call::<_, Bytes>("eth_call", &call_params(t.address, n, latest)).map_err(&add)?;
        let admin =
            batch.add_call::<_, Bytes>("eth_call", &call_params(t.address, admin, latest)).map_err(&add)?;
        waiters.push((n, admin));
    }
    batch.send().await.map_err(transport("curve pool batch"))?;
    let mut read = Vec::with_capacity(waiters.len());
    for ((n, admin), t) in waiters.into_iter().zip(&targets.curve_pools) {
        // A revert (not a StableSwap-NG pool) leaves the pool out, like a mismatch.
        let n = match n.await {
            Ok(out) => decode::<ICurveStableSwap::N_COINSCall>(&out, t.address)
                .map_err(|e| e.to_string())
                .and_then(curve::coin_count),
            Err(e) => Err(format!("N_COINS(): {e}")),
        };
        let admin = match admin.await {
            Ok(out) => decode::<ICurveStableSwap::admin_feeCall>(&out, t.address).map_err(|e| e.to_string()),
            Err(e) => Err(format!("admin_fee(): {e}")),
        };
        read.push(n.and_then(|n| Ok((n, admin?))));
    }
    let mut batch = BatchRequest::new(client);
    let mut coins = Vec::with_capacity(read.len());
    for (r, t) in read.iter().zip(&targets.curve_pools) {
        let mut ws = Vec::new();
        if let Ok((n, _)) = r {
            for i in 0..*n {
                let input = ICurveStableSwap::coinsCall::new((U256::from(i),)).abi_encode();
                ws.push(
                    batch
                        .add_call::<_, Bytes>("eth_call", &call_params(t.address, input, latest))
                        .map_err(&add)?,
                );
            }
        }
        coins.push(ws);
    }
    batch.send().await.map_err(transport("curve coins batch"))?;
    let mut out = Vec::with_capacity(read.len());
    for ((r, ws), t) in read.into_iter().zip(coins).zip(&targets.curve_pools) {
        let meta = async {
            let (_, admin_fee) = r?;
            let mut c = Vec::with_capacity(ws.len());
            for (i, w) in ws.into_iter().enumerate() {
                let reply = w.await.map_err(|e| format!("coins({i}): {e}"))?;
                c.push(decode::<ICurveStableSwap::coinsCall>(&reply, t.address).map_err(|e| e.to_string())?);
            }
            curve::meta_of(t, &c, admin_fee)
        }
        .await;
        match meta {
            Ok(m) => out.push(Some(m)),
            Err(reason) => {
                tracing::error!(pool = %t.address, %reason, "curve pool left out: it cannot be traded as configured");
                out.push(None);
            }
        }
    }
    Ok(out)
}
