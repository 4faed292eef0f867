//! One block's reads in one HTTP request: a JSON-RPC batch (an array of requests in one POST body)
//! holding the block's header, every V2 pool's `getReserves`, every (portfolio, token)
//! `balanceOf` and every account's `eth_getTransactionCount`, all pinned to the same block number.
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
use keel_amm::abi::{IERC20, IUniswapV2Pair};
use keel_engine::chain::ChainUpdate;
use keel_engine::event::{Balance, BlockHeader, Event};

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
pub(crate) async fn read_block<P: Provider>(
    provider: &P,
    targets: &PollTargets,
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
    let balances = targets
        .balances
        .iter()
        .map(|&(_, account, _, token)| {
            let input = IERC20::balanceOfCall::new((account,)).abi_encode();
            batch.add_call::<_, Bytes>("eth_call", &call_params(token, input, at))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(&add)?;
    let nonces = targets
        .accounts
        .iter()
        .map(|&account| batch.add_call::<_, U64>("eth_getTransactionCount", &(account, at)))
        .collect::<Result<Vec<_>, _>>()
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
    let mut engine = Vec::with_capacity(balances.len());
    for (w, &(portfolio, _, token, token_addr)) in balances.into_iter().zip(&targets.balances) {
        let out = w.await.map_err(transport("balanceOf"))?;
        let amount = decode::<IERC20::balanceOfCall>(&out, token_addr)?;
        engine.push(Event::Balance(Balance { portfolio, token, amount, block: number }));
    }
    for (w, &account) in nonces.into_iter().zip(&targets.accounts) {
        let nonce = w.await.map_err(transport("eth_getTransactionCount"))?;
        router.push(ChainUpdate::Nonce { account, nonce: nonce.to::<u64>(), block: number });
    }
    Ok(BlockRead { head, engine, router })
}

/// Reads every allowance in `targets` at the latest block, in one JSON-RPC batch request.
pub(crate) async fn read_allowances<P: Provider>(
    provider: &P,
    targets: &PollTargets,
) -> Result<Vec<ChainUpdate>, PollError> {
    if targets.allowances.is_empty() {
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
    batch.send().await.map_err(transport("allowance batch"))?;
    let mut out = Vec::with_capacity(waiters.len());
    for (w, &(owner, token, spender)) in waiters.into_iter().zip(&targets.allowances) {
        let reply = w.await.map_err(transport("allowance"))?;
        let amount = decode::<IERC20::allowanceCall>(&reply, token)?;
        out.push(ChainUpdate::Allowance { owner, token, spender, amount });
    }
    Ok(out)
}
