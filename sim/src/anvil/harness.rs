//! [`AnvilChain`]: anvil on 127.0.0.1 with Uniswap V2 and V3 deployed, pools seeded and accounts funded.
//!
//! Deployment sends pre-signed transactions with locally tracked nonces and fixed gas limits (no
//! estimation round trips) while automine is on; contract, pair and pool addresses are computed
//! locally (CREATE / CREATE2), and every receipt is checked once at the end. Addresses are
//! deterministic on a fresh anvil.
//!
//! Accounts (anvil's dev keys): `0` deploys and provides all liquidity; `1..=4` each hold
//! [`FUNDED_TOKENS`] of every token and [`FUNDED_WETH`] WETH and have approved Router02, SwapRouter
//! and the position manager for every token. Tests conventionally use `1` as "another trader" and
//! `2` as Keel's portfolio account.

use std::sync::Mutex;

use alloy::eips::BlockId;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolValue};
use keel_amm::abi::{IERC20, IUniswapV2Pair, IUniswapV3Pool};
use keel_feeds::rpc::call;

use super::artifacts::{self, Artifact};
use super::contracts::{IERC20Mintable, INonfungiblePositionManager, IUniswapV2Router02Liquidity, IWETH9};
use super::error::{AnvilError, Result};

/// Fee of every V3 pool the harness creates, pips (0.3%).
pub const V3_FEE: u32 = 3000;
/// Tick spacing of a 0.3% V3 pool.
pub const V3_TICK_SPACING: i32 = 60;
/// Tokens (whole units, 18 decimals) minted to each funded account.
pub const FUNDED_TOKENS: u64 = 1_000_000;
/// WETH (whole units) each funded account wraps.
pub const FUNDED_WETH: u64 = 1_000;
/// Dev accounts that are funded and have approved the routers (`0` is the deployer).
pub const FUNDED_ACCOUNTS: usize = 5;
/// `maxFeePerGas` of setup transactions, wei.
const SETUP_MAX_FEE: u128 = 100_000_000_000;
/// `maxPriorityFeePerGas` of setup transactions, wei.
const SETUP_TIP: u128 = 1_000_000_000;
/// `TickMath.MAX_TICK`.
const MAX_TICK: i32 = 887_272;
/// Longest wait for one setup receipt.
const RECEIPT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Deadline passed to periphery calls during setup.
const FAR_DEADLINE: u64 = 4_000_000_000;

fn e18(units: u64) -> U256 {
    U256::from(units) * U256::from(10u64).pow(U256::from(18u64))
}

/// A token on the test chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Symbol (`WETH`, `TKA`, ...).
    pub symbol: String,
    /// Contract address.
    pub address: Address,
    /// Decimals (18 for all harness tokens).
    pub decimals: u8,
}

/// A Uniswap V2 pair on the test chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2PairInfo {
    /// Name, `SYM0/SYM1` in token order.
    pub name: String,
    /// Pair contract.
    pub address: Address,
    /// Lower-address token.
    pub token0: Address,
    /// Higher-address token.
    pub token1: Address,
}

/// A Uniswap V3 pool on the test chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3PoolInfo {
    /// Name, `SYM0/SYM1` in token order.
    pub name: String,
    /// Pool contract.
    pub address: Address,
    /// Lower-address token.
    pub token0: Address,
    /// Higher-address token.
    pub token1: Address,
    /// Fee, pips.
    pub fee: u32,
    /// Tick spacing.
    pub tick_spacing: i32,
    /// The tick the pool was initialised at.
    pub initial_tick: i32,
    /// The `(tickLower, tickUpper)` of every position the harness minted.
    pub positions: Vec<(i32, i32)>,
}

/// Every address the harness deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAddresses {
    /// WETH9.
    pub weth: Address,
    /// Mintable test tokens `TKA`, `TKB`, `TKC` (the deployer holds the minter role).
    pub tokens: Vec<TokenInfo>,
    /// Uniswap V2 factory.
    pub v2_factory: Address,
    /// Uniswap V2 Router02.
    pub v2_router: Address,
    /// Uniswap V3 factory.
    pub v3_factory: Address,
    /// Uniswap V3 NonfungiblePositionManager.
    pub v3_position_manager: Address,
    /// Uniswap V3 SwapRouter.
    pub v3_swap_router: Address,
    /// Uniswap V3 QuoterV2.
    pub v3_quoter: Address,
    /// V2 pairs: `TKA/TKB`, `TKB/TKC`, `WETH/TKA` (names in token order).
    pub v2_pairs: Vec<V2PairInfo>,
    /// V3 pools (fee 3000, spacing 60) over the same token pairs as `v2_pairs`.
    pub v3_pools: Vec<V3PoolInfo>,
}

impl ChainAddresses {
    /// The address of a token by symbol (`WETH` included).
    pub fn token(&self, symbol: &str) -> Option<Address> {
        if symbol == "WETH" {
            return Some(self.weth);
        }
        self.tokens.iter().find(|t| t.symbol == symbol).map(|t| t.address)
    }

    /// Every token, WETH first.
    pub fn all_tokens(&self) -> Vec<Address> {
        std::iter::once(self.weth).chain(self.tokens.iter().map(|t| t.address)).collect()
    }
}

/// anvil with Uniswap V2/V3 deployed. Dropping it kills anvil.
#[derive(Debug)]
pub struct AnvilChain {
    /// Kept for its Drop, which kills anvil.
    _anvil: AnvilInstance,
    addresses: ChainAddresses,
    signers: Vec<PrivateKeySigner>,
    http_url: String,
    ws_url: String,
    chain_id: u64,
    provider: DynProvider,
    baseline: Mutex<U256>,
    deploy_time: std::time::Duration,
}

/// Sends setup transactions with local nonces and remembers them for one receipt check at the end.
struct Sender<'a> {
    provider: &'a DynProvider,
    signers: &'a [PrivateKeySigner],
    chain_id: u64,
    nonces: Vec<u64>,
    sent: Vec<(String, B256)>,
}

impl Sender<'_> {
    async fn send(
        &mut self,
        from: usize,
        to: Option<Address>,
        input: Bytes,
        value: U256,
        gas: u64,
        label: String,
    ) -> Result<()> {
        let nonce = self.nonces[from];
        self.nonces[from] += 1;
        let mut tx = TransactionRequest::default()
            .with_from(self.signers[from].address())
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            .with_gas_limit(gas)
            .with_max_fee_per_gas(SETUP_MAX_FEE)
            .with_max_priority_fee_per_gas(SETUP_TIP)
            .with_value(value)
            .with_input(input);
        match to {
            Some(to) => tx.set_to(to),
            None => tx.set_create(),
        }
        let pending = self
            .provider
            .send_transaction(tx)
            .await
            .map_err(|e| AnvilError::rpc(format!("send {label}"), e))?;
        self.sent.push((label, *pending.tx_hash()));
        Ok(())
    }

    /// Deploys `code ++ args` from account 0 and returns the CREATE address.
    async fn deploy(&mut self, artifact: Artifact, args: Vec<u8>, gas: u64) -> Result<Address> {
        let address = self.signers[0].address().create(self.nonces[0]);
        let mut code = artifacts::bytecode(artifact)?.to_vec();
        code.extend_from_slice(&args);
        self.send(0, None, code.into(), U256::ZERO, gas, format!("deploy {artifact:?}")).await?;
        Ok(address)
    }

    async fn call<C: SolCall>(
        &mut self,
        from: usize,
        to: Address,
        call: C,
        gas: u64,
        label: &str,
    ) -> Result<()> {
        self.send(from, Some(to), call.abi_encode().into(), U256::ZERO, gas, label.to_string()).await
    }

    /// Waits for every receipt (automine mines asynchronously; each is polled for up to
    /// [`RECEIPT_WAIT`]) and fails on the first revert.
    async fn check(&mut self) -> Result<()> {
        for (label, hash) in self.sent.drain(..) {
            let deadline = std::time::Instant::now() + RECEIPT_WAIT;
            let mut flush_at = std::time::Instant::now() + std::time::Duration::from_secs(1);
            let receipt = loop {
                let r = self
                    .provider
                    .get_transaction_receipt(hash)
                    .await
                    .map_err(|e| AnvilError::rpc(format!("receipt of {label}"), e))?;
                match r {
                    Some(r) => break r,
                    None if std::time::Instant::now() < deadline => {
                        // anvil's automine can leave a ready transaction unmined when many arrive
                        // at once (foundry-rs/foundry#10122): after a second, mine a block to flush it.
                        if std::time::Instant::now() >= flush_at {
                            flush_at = std::time::Instant::now() + std::time::Duration::from_secs(1);
                            self.provider
                                .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
                                .await
                                .map_err(|e| AnvilError::rpc("evm_mine (flushing the pool)", e))?;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await
                    }
                    None => {
                        // What the node says, so a rare miss can be told apart from automine off.
                        let automine: Option<bool> =
                            self.provider.raw_request("anvil_getAutomine".into(), ()).await.ok();
                        let tx = self.provider.get_transaction_by_hash(hash).await.ok().flatten();
                        let head = self.provider.get_block_number().await.ok();
                        return Err(AnvilError::rpc(
                            format!("receipt of {label}"),
                            format!(
                                "not mined after {RECEIPT_WAIT:?} (automine {automine:?}, head {head:?}, \
                                 transaction {})",
                                if tx.is_some() {
                                    "known to the node, unmined"
                                } else {
                                    "unknown to the node"
                                }
                            ),
                        ));
                    }
                }
            };
            if !receipt.status() {
                return Err(AnvilError::Reverted { label, hash });
            }
        }
        Ok(())
    }
}

/// `sqrt(amount1 / amount0) · 2^96`, floored (amounts in raw units, each below 2^64).
fn sqrt_price_x96(amount0: U256, amount1: U256) -> U256 {
    ((amount1 << 192usize) / amount0).root(2)
}

fn floor_to_spacing(tick: i32, spacing: i32) -> i32 {
    tick.div_euclid(spacing) * spacing
}

/// V2 create2 pair address.
fn v2_pair_address(factory: Address, token0: Address, token1: Address, init_hash: B256) -> Address {
    let mut salt = [0u8; 40];
    salt[..20].copy_from_slice(token0.as_slice());
    salt[20..].copy_from_slice(token1.as_slice());
    factory.create2(keccak256(salt), init_hash)
}

/// V3 create2 pool address (`PoolAddress.computeAddress`).
fn v3_pool_address(factory: Address, token0: Address, token1: Address, fee: u32, init_hash: B256) -> Address {
    let salt = keccak256((token0, token1, alloy::primitives::aliases::U24::from(fee)).abi_encode());
    factory.create2(salt, init_hash)
}

/// One pool to seed: tokens by symbol and the whole-unit amounts of each that set the price.
struct PoolSpec {
    a: &'static str,
    b: &'static str,
    amount_a: u64,
    amount_b: u64,
}

const POOLS: [PoolSpec; 3] = [
    PoolSpec { a: "TKA", b: "TKB", amount_a: 10_000, amount_b: 10_000 },
    PoolSpec { a: "TKB", b: "TKC", amount_a: 10_000, amount_b: 20_000 },
    PoolSpec { a: "WETH", b: "TKA", amount_a: 100, amount_b: 200_000 },
];

/// V3 positions around the initial tick, in multiples of the spacing, and their share of the
/// pool's seed amounts in percent. Ranges above or below the price hold one token only.
const V3_POSITIONS: [(i32, i32, u64); 5] =
    [(-10, 10, 20), (-4, 4, 10), (-30, -2, 20), (2, 30, 20), (-6, 14, 15)];

impl AnvilChain {
    /// Spawns anvil on 127.0.0.1 (free port), deploys and seeds everything, and leaves automine on.
    ///
    /// Fails with [`AnvilError::Missing`] naming `tests/chain/setup.sh` when anvil or the artifacts
    /// are not installed.
    pub async fn start() -> Result<Self> {
        Self::start_on(0).await
    }

    /// [`AnvilChain::start`] on a given port of 127.0.0.1 (0: a free port), for devnets whose config
    /// names fixed URLs.
    pub async fn start_on(port: u16) -> Result<Self> {
        Self::start_with(port, 31337).await
    }

    /// [`AnvilChain::start_on`] with chain id `chain_id` (a second local chain beside the first:
    /// the same contracts at the same addresses, signed for another chain).
    pub async fn start_with(port: u16, chain_id: u64) -> Result<Self> {
        let started = std::time::Instant::now();
        let path = artifacts::anvil_path()?;
        // Check the artifacts before spawning, so a half install fails fast.
        for a in [Artifact::Weth9, Artifact::V2Pair, Artifact::V3Pool, Artifact::V3PositionManager] {
            artifacts::bytecode(a)?;
        }
        // anvil reports a taken port only on its stderr, which the spawner reads as a timeout.
        if port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(AnvilError::Spawn(format!("port 127.0.0.1:{port} is already in use")));
        }
        let instance = Anvil::at(path)
            .host("127.0.0.1")
            .port(port)
            .chain_id(chain_id)
            .args(["--accounts", "10", "--balance", "100000", "--order", "fifo"])
            .try_spawn()
            .map_err(|e| AnvilError::Spawn(e.to_string()))?;
        let http_url = instance.endpoint();
        let ws_url = instance.ws_endpoint();
        let signers: Vec<PrivateKeySigner> =
            instance.keys().iter().cloned().map(PrivateKeySigner::from).collect();
        let mut wallet = EthereumWallet::new(signers[0].clone());
        for s in &signers[1..] {
            wallet.register_signer(s.clone());
        }
        let url = http_url.parse().map_err(|e| AnvilError::Spawn(format!("bad url {http_url}: {e}")))?;
        let provider =
            ProviderBuilder::new().disable_recommended_fillers().wallet(wallet).connect_http(url).erased();
        let addresses = deploy(&provider, &signers, chain_id).await?;
        let mut chain = Self {
            _anvil: instance,
            addresses,
            signers,
            http_url,
            ws_url,
            chain_id,
            provider,
            baseline: Mutex::new(U256::ZERO),
            deploy_time: std::time::Duration::ZERO,
        };
        let id = chain.snapshot().await?;
        *chain.baseline.lock().unwrap_or_else(|e| e.into_inner()) = id;
        chain.deploy_time = started.elapsed();
        Ok(chain)
    }

    /// Everything deployed.
    pub fn addresses(&self) -> &ChainAddresses {
        &self.addresses
    }

    /// HTTP JSON-RPC endpoint (`http://127.0.0.1:PORT`).
    pub fn http_url(&self) -> &str {
        &self.http_url
    }

    /// Websocket JSON-RPC endpoint (`ws://127.0.0.1:PORT`).
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// Chain id (31337 unless started with [`AnvilChain::start_with`]).
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// anvil's dev keys (10 accounts; see the module docs for their roles).
    pub fn signers(&self) -> &[PrivateKeySigner] {
        &self.signers
    }

    /// Dev account `i`'s signer.
    ///
    /// # Panics
    /// When `i >= 10`.
    pub fn signer(&self, i: usize) -> PrivateKeySigner {
        self.signers[i].clone()
    }

    /// Dev account `i`'s address.
    ///
    /// # Panics
    /// When `i >= 10`.
    pub fn address(&self, i: usize) -> Address {
        self.signers[i].address()
    }

    /// Wall time `start` took (spawn, deploy, seed, fund).
    pub fn deploy_time(&self) -> std::time::Duration {
        self.deploy_time
    }

    /// An HTTP provider without fillers that can sign for every dev account (set nonce, gas and fees
    /// yourself, or use [`Self::wallet_provider`]).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// A fresh HTTP provider with alloy's recommended fillers (gas estimate, nonce, chain id) signing
    /// as dev account `i`. Make a new one after [`Self::revert`]: the nonce filler caches.
    pub fn wallet_provider(&self, i: usize) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::new(self.signer(i)))
            .connect_http(self.http_url.parse().expect("anvil url parses"))
            .erased()
    }

    /// `evm_snapshot`: returns the snapshot id.
    pub async fn snapshot(&self) -> Result<U256> {
        self.provider
            .raw_request("evm_snapshot".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("evm_snapshot", e))
    }

    /// `evm_revert` to `id` (anvil deletes the snapshot and every later one). Returns anvil's answer.
    pub async fn revert(&self, id: U256) -> Result<bool> {
        self.provider
            .raw_request("evm_revert".into(), (id,))
            .await
            .map_err(|e| AnvilError::rpc("evm_revert", e))
    }

    /// Reverts to the state right after deployment and takes a new baseline snapshot.
    pub async fn reset(&self) -> Result<()> {
        let id = *self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        if !self.revert(id).await? {
            return Err(AnvilError::rpc("evm_revert", format!("snapshot {id} unknown")));
        }
        let id = self.snapshot().await?;
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = id;
        Ok(())
    }

    /// `evm_setAutomine`.
    pub async fn set_automine(&self, on: bool) -> Result<()> {
        self.provider
            .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (on,))
            .await
            .map_err(|e| AnvilError::rpc("evm_setAutomine", e))?;
        Ok(())
    }

    /// `evm_mine`: mines one block with whatever is pending.
    pub async fn mine(&self) -> Result<()> {
        self.provider
            .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("evm_mine", e))?;
        Ok(())
    }

    /// Latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.provider.get_block_number().await.map_err(|e| AnvilError::rpc("eth_blockNumber", e))
    }

    /// ERC-20 balance of `owner`.
    pub async fn balance_of(&self, token: Address, owner: Address) -> Result<U256> {
        call(&self.provider, token, &IERC20::balanceOfCall::new((owner,)), BlockId::latest())
            .await
            .map_err(|e| AnvilError::rpc("balanceOf", e))
    }

    /// Mid prices of a V2 pair and a V3 pool trading the same two tokens, both as the other token
    /// per `base` (raw units; fees excluded).
    pub async fn mids(&self, base: Address, v2_pair: Address, v3_pool: Address) -> Result<(f64, f64)> {
        let p = &self.provider;
        let at = BlockId::latest();
        let r = call(p, v2_pair, &IUniswapV2Pair::getReservesCall::new(()), at)
            .await
            .map_err(|e| AnvilError::rpc("getReserves", e))?;
        let (r0, r1) = (f64::from(U256::from(r.reserve0)), f64::from(U256::from(r.reserve1)));
        let base_is_0 = call(p, v2_pair, &IUniswapV2Pair::token0Call::new(()), at)
            .await
            .map_err(|e| AnvilError::rpc("token0", e))?
            == base;
        let v2 = if base_is_0 { r1 / r0 } else { r0 / r1 };
        let slot0 = call(p, v3_pool, &IUniswapV3Pool::slot0Call::new(()), at)
            .await
            .map_err(|e| AnvilError::rpc("slot0", e))?;
        let sqrt = f64::from(U256::from(slot0.sqrtPriceX96)) / 2f64.powi(96);
        let base_is_0 = call(p, v3_pool, &IUniswapV3Pool::token0Call::new(()), at)
            .await
            .map_err(|e| AnvilError::rpc("token0", e))?
            == base;
        let v3 = if base_is_0 { sqrt * sqrt } else { 1.0 / (sqrt * sqrt) };
        Ok((v2, v3))
    }
}

async fn deploy(
    provider: &DynProvider,
    signers: &[PrivateKeySigner],
    chain_id: u64,
) -> Result<ChainAddresses> {
    let first_nonce = |i: usize| {
        let p = provider.clone();
        let a = signers[i].address();
        async move { p.get_transaction_count(a).await.map_err(|e| AnvilError::rpc("eth_getTransactionCount", e)) }
    };
    let mut nonces = Vec::with_capacity(signers.len());
    for i in 0..signers.len() {
        nonces.push(first_nonce(i).await?);
    }
    let mut tx = Sender { provider, signers, chain_id, nonces, sent: Vec::new() };
    let me = signers[0].address();

    let weth = tx.deploy(Artifact::Weth9, Vec::new(), 2_000_000).await?;
    let mut tokens = Vec::new();
    for (sym, name) in [("TKA", "Token A"), ("TKB", "Token B"), ("TKC", "Token C")] {
        let address = tx
            .deploy(
                Artifact::Erc20Mintable,
                (name.to_string(), sym.to_string()).abi_encode_params(),
                3_000_000,
            )
            .await?;
        tokens.push(TokenInfo { symbol: sym.into(), address, decimals: 18 });
    }
    let v2_factory = tx.deploy(Artifact::V2Factory, me.abi_encode(), 5_000_000).await?;
    let v2_router =
        tx.deploy(Artifact::V2Router02, (v2_factory, weth).abi_encode_params(), 6_000_000).await?;
    let v3_factory = tx.deploy(Artifact::V3Factory, Vec::new(), 8_000_000).await?;
    // The token descriptor is only read by tokenURI(); any address will do (see the reference notes).
    let descriptor = Address::with_last_byte(1);
    let v3_position_manager = tx
        .deploy(Artifact::V3PositionManager, (v3_factory, weth, descriptor).abi_encode_params(), 8_000_000)
        .await?;
    let v3_swap_router =
        tx.deploy(Artifact::V3SwapRouter, (v3_factory, weth).abi_encode_params(), 5_000_000).await?;
    let v3_quoter =
        tx.deploy(Artifact::V3QuoterV2, (v3_factory, weth).abi_encode_params(), 5_000_000).await?;

    // Fund: account 0 (liquidity provider) and the funded accounts.
    let mut all_tokens = vec![weth];
    all_tokens.extend(tokens.iter().map(|t| t.address));
    for (i, signer) in signers.iter().enumerate().take(FUNDED_ACCOUNTS) {
        let holder = signer.address();
        let (tok_units, weth_units) =
            if i == 0 { (10 * FUNDED_TOKENS, 10 * FUNDED_WETH) } else { (FUNDED_TOKENS, FUNDED_WETH) };
        for t in &tokens {
            let call = IERC20Mintable::mintCall { to: holder, amount: e18(tok_units) };
            tx.call(0, t.address, call, 200_000, &format!("mint {} to #{i}", t.symbol)).await?;
        }
        let deposit = IWETH9::depositCall {}.abi_encode().into();
        tx.send(i, Some(weth), deposit, e18(weth_units), 100_000, format!("wrap WETH #{i}")).await?;
        for &token in &all_tokens {
            for spender in [v2_router, v3_swap_router, v3_position_manager] {
                let call = IERC20::approveCall { spender, amount: U256::MAX };
                tx.call(i, token, call, 100_000, &format!("approve #{i}")).await?;
            }
        }
    }

    let symbol_of = |a: Address| -> String {
        if a == weth {
            "WETH".into()
        } else {
            tokens.iter().find(|t| t.address == a).map(|t| t.symbol.clone()).unwrap_or_default()
        }
    };
    let addr_of = |s: &str| -> Address {
        if s == "WETH" {
            weth
        } else {
            tokens.iter().find(|t| t.symbol == s).map(|t| t.address).unwrap_or_default()
        }
    };
    let pair_hash = artifacts::init_code_hash(Artifact::V2Pair)?;
    let pool_hash = artifacts::init_code_hash(Artifact::V3Pool)?;
    let mut v2_pairs = Vec::new();
    let mut v3_pools = Vec::new();
    for spec in &POOLS {
        let (a, b) = (addr_of(spec.a), addr_of(spec.b));
        let (token0, token1, amount0, amount1) =
            if a < b { (a, b, spec.amount_a, spec.amount_b) } else { (b, a, spec.amount_b, spec.amount_a) };
        let name = format!("{}/{}", symbol_of(token0), symbol_of(token1));

        // V2: Router02.addLiquidity creates the pair.
        let add = IUniswapV2Router02Liquidity::addLiquidityCall {
            tokenA: token0,
            tokenB: token1,
            amountADesired: e18(amount0),
            amountBDesired: e18(amount1),
            amountAMin: U256::ZERO,
            amountBMin: U256::ZERO,
            to: me,
            deadline: U256::from(FAR_DEADLINE),
        };
        tx.call(0, v2_router, add, 5_000_000, &format!("V2 addLiquidity {name}")).await?;
        let address = v2_pair_address(v2_factory, token0, token1, pair_hash);
        v2_pairs.push(V2PairInfo { name: name.clone(), address, token0, token1 });

        // V3: create + initialise at the same price, then mint the positions.
        let sqrt_price = sqrt_price_x96(U256::from(amount0), U256::from(amount1));
        // Only places the positions; the exact tick is read back from slot0 after deployment.
        let approx_tick = ((amount1 as f64 / amount0 as f64).ln() / 1.0001f64.ln()).floor() as i32;
        let create = INonfungiblePositionManager::createAndInitializePoolIfNecessaryCall {
            token0,
            token1,
            fee: alloy::primitives::aliases::U24::from(V3_FEE),
            sqrtPriceX96: alloy::primitives::aliases::U160::from(sqrt_price),
        };
        tx.call(0, v3_position_manager, create, 6_000_000, &format!("V3 create {name}")).await?;
        let base = floor_to_spacing(approx_tick, V3_TICK_SPACING);
        let max_usable = floor_to_spacing(MAX_TICK, V3_TICK_SPACING);
        let mut positions = vec![(-max_usable, max_usable, 100u64)];
        positions.extend(
            V3_POSITIONS
                .iter()
                .map(|&(l, u, pct)| (base + l * V3_TICK_SPACING, base + u * V3_TICK_SPACING, pct)),
        );
        for &(lower, upper, pct) in &positions {
            let mint = INonfungiblePositionManager::mintCall {
                params: INonfungiblePositionManager::MintParams {
                    token0,
                    token1,
                    fee: alloy::primitives::aliases::U24::from(V3_FEE),
                    tickLower: alloy::primitives::aliases::I24::try_from(lower).unwrap_or_default(),
                    tickUpper: alloy::primitives::aliases::I24::try_from(upper).unwrap_or_default(),
                    amount0Desired: e18(amount0) * U256::from(pct) / U256::from(100u64),
                    amount1Desired: e18(amount1) * U256::from(pct) / U256::from(100u64),
                    amount0Min: U256::ZERO,
                    amount1Min: U256::ZERO,
                    recipient: me,
                    deadline: U256::from(FAR_DEADLINE),
                },
            };
            tx.call(0, v3_position_manager, mint, 1_000_000, &format!("V3 mint {name} [{lower},{upper}]"))
                .await?;
        }
        let address = v3_pool_address(v3_factory, token0, token1, V3_FEE, pool_hash);
        v3_pools.push(V3PoolInfo {
            name,
            address,
            token0,
            token1,
            fee: V3_FEE,
            tick_spacing: V3_TICK_SPACING,
            initial_tick: 0,
            positions: positions.iter().map(|&(l, u, _)| (l, u)).collect(),
        });
    }
    tx.check().await?;
    for pool in &mut v3_pools {
        let slot0 = call(provider, pool.address, &IUniswapV3Pool::slot0Call::new(()), BlockId::latest())
            .await
            .map_err(|e| AnvilError::rpc(format!("slot0 of {}", pool.name), e))?;
        pool.initial_tick = slot0.tick.as_i32();
    }
    Ok(ChainAddresses {
        weth,
        tokens,
        v2_factory,
        v2_router,
        v3_factory,
        v3_position_manager,
        v3_swap_router,
        v3_quoter,
        v2_pairs,
        v3_pools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqrt_price_of_one_is_two_pow_96() {
        assert_eq!(sqrt_price_x96(U256::from(1u64), U256::from(1u64)), U256::from(1u64) << 96);
        assert_eq!(floor_to_spacing(-1, 60), -60);
        assert_eq!(floor_to_spacing(59, 60), 0);
    }
}
