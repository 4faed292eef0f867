//! # keel-sim
//!
//! What Keel runs against when it is not in production — used by `keel demo`, `keel devnet` and the
//! tests, never linked by `keel run`'s pipeline (`keel-runtime`):
//!
//! * the simulated market (this module's root, below);
//! * [`anvil`] — real-chain tests and the devnet: anvil with the real Uniswap V2/V3 contracts from
//!   the pinned npm packages, and a loopback relay that lands bundles on it;
//! * [`quotes`] — a loopback Binance quote server with caller-set prices;
//! * [`relay`] — the one loopback Flashbots relay core (HTTP JSON-RPC, signature, limits, bundle
//!   hash, errors) behind [`relay::BundleBackend`], which the simulated chain, the anvil lander and
//!   the harness's stamping relay implement;
//! * [`ws_server`] — the one Binance-format websocket server core used by the simulated market's
//!   feed, the quote server and the harness's load generator.
//!
//! ## The simulated market
//!
//! Three loopback services that speak the real wire protocols, so Keel talks to them exactly as to
//! production: a Binance-spot websocket ([`ws`]), an Ethereum JSON-RPC node ([`rpc`]) and a Flashbots
//! relay ([`relay`], with the chain as its backend), all over one in-memory chain ([`chain`]).
//!
//! Data flow: a driver task steps a seeded regime-switching GBM ([`price`]) every `tick_ms`, publishes
//! the mids on a lock-free [`PriceBoard`] and broadcasts bookTicker frames to websocket clients. A block
//! task seals a block every `block_ms`: it lands the relay's bundles for that block (atomically), then
//! the public mempool, then lets an arbitrageur trade every pool toward the board's reference prices.
//! The node answers reads from the chain's latest state.
//!
//! Every listener binds 127.0.0.1 (port 0 = a free port; the handle reports the bound address) and
//! every task stops on the cancellation token given to [`SimMarket::start`] (or on
//! [`SimMarket::shutdown`]/drop).
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod anvil;
pub mod chain;
pub mod config;
mod jsonrpc;
pub mod price;
pub mod quotes;
pub mod relay;
pub mod rpc;
pub mod tls;
pub mod ws;
pub mod ws_server;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use alloy::primitives::{Address, B256, U256};
use keel_engine::config::{ConfigError, PriceSource, TokenConfig};
use keel_router::config::{DexConfig, DexKind, PoolConfig};
use parking_lot::Mutex;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use self::{
    chain::BundleStatus,
    config::{SimAccountConfig, SimConfig, SimFlowConfig, SimPoolConfig, SimSymbolConfig, StartRegime},
    price::PriceBoard,
};
use self::{
    chain::{Chain, DexInfo, PoolInfo, RefPrice, State, TokenInfo, Universe},
    config::parse_units,
    price::PricePath,
};

/// Errors of the simulated market.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The `[sim]` section (or its links to tokens, DEXes and pools) is invalid.
    #[error("invalid sim config: {0}")]
    Config(#[from] ConfigError),
    /// A listener could not bind.
    #[error("cannot bind {what} on 127.0.0.1: {source}")]
    Bind {
        /// Which service.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The replay capture is unreadable or holds nothing to replay.
    #[error("replay: {0}")]
    Replay(String),
    /// A wait ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A test control was given something the market does not have or cannot do.
    #[error("control: {0}")]
    Control(String),
}

impl SimError {
    /// Whether retrying can help (bind races and timeouts), as opposed to a config problem.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, SimError::Bind { .. } | SimError::Timeout(_))
    }
}

/// Counters of the simulated market.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// Websocket frames sent (summed over connections).
    pub frames_sent: u64,
    /// Frames a slow connection skipped (broadcast lag).
    pub frames_lagged: u64,
    /// Open websocket connections.
    pub ws_connections: u64,
    /// Head block number (blocks sealed since genesis).
    pub blocks: u64,
    /// Bundles accepted by the relay.
    pub bundles_received: u64,
    /// Bundles rejected by the relay, by reason (`missing_signature`, `bad_signature`, `malformed`,
    /// `too_many_txs`, `too_large`, `bad_tx`, `past_block`).
    pub bundles_rejected: BTreeMap<String, u64>,
    /// Bundles that landed.
    pub bundles_landed: u64,
    /// Bundles discarded at their target block (a transaction invalid or reverting).
    pub bundles_failed: u64,
    /// Bundles whose target block passed without them being eligible.
    pub bundles_expired: u64,
    /// Bundles replaced by a newer one with the same `replacementUuid`.
    pub bundles_replaced: u64,
    /// Bundles cancelled.
    pub bundles_cancelled: u64,
    /// Transactions accepted by `eth_sendRawTransaction`.
    pub public_txs: u64,
    /// Public transactions included in a block.
    pub public_txs_included: u64,
    /// Public transactions dropped as invalid when their block was built.
    pub public_txs_dropped: u64,
    /// Arbitrage trades (one per pool and block at most).
    pub arbitrage_trades: u64,
    /// Client flows moved (`[[sim.flows]]`).
    pub flows_applied: u64,
    /// Client flows skipped because the sending account held too little.
    pub flows_skipped: u64,
    /// HTTP requests to the node endpoint.
    pub rpc_requests: u64,
    /// Of which JSON-RPC batch requests.
    pub rpc_batches: u64,
    /// Single (non-batch) state reads: `eth_call`, `eth_getBalance`, `eth_getTransactionCount`.
    pub rpc_single_state_reads: u64,
}

/// A simulated pool and its current reserves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPool {
    /// Name in `[[pools]]`.
    pub name: String,
    /// Pair address.
    pub address: Address,
    /// DEX name.
    pub dex: String,
    /// The DEX's Router02 address.
    pub router: Address,
    /// token0 address (the lower).
    pub token0: Address,
    /// token1 address.
    pub token1: Address,
    /// Fee, basis points.
    pub fee_bps: u32,
    /// Current reserve of token0 (raw units).
    pub reserve0: U256,
    /// Current reserve of token1 (raw units).
    pub reserve1: U256,
}

/// Requests the node endpoint received.
#[derive(Debug, Default)]
pub(crate) struct RpcCounters {
    /// HTTP requests (bodies).
    requests: std::sync::atomic::AtomicU64,
    /// Of which JSON-RPC batches (a body that is an array).
    batches: std::sync::atomic::AtomicU64,
    /// Single (non-batch) requests that read state: `eth_call`, `eth_getBalance`,
    /// `eth_getTransactionCount`.
    single_state_reads: std::sync::atomic::AtomicU64,
}

impl RpcCounters {
    fn count(&self, body: &[u8]) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            self.batches.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let text = std::str::from_utf8(body).unwrap_or_default();
        if ["\"eth_call\"", "\"eth_getBalance\"", "\"eth_getTransactionCount\""]
            .iter()
            .any(|m| text.contains(m))
        {
            self.single_state_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// State shared by the services.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) rpc_counters: RpcCounters,
    pub(crate) chain: Mutex<Chain>,
    pub(crate) board: Arc<PriceBoard>,
    pub(crate) ws_counters: Arc<ws_server::WsCounters>,
    /// Cancelled (and replaced) by [`SimMarket::drop_ws_connections`].
    pub(crate) ws_drop: Mutex<CancellationToken>,
    pub(crate) head: watch::Sender<u64>,
}

/// Wall-clock seconds since the Unix epoch.
pub(crate) fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A running simulated market. Dropping it stops its tasks (as [`SimMarket::shutdown`] does, without
/// waiting for them).
#[derive(Debug)]
pub struct SimMarket {
    shared: Arc<Shared>,
    ws_addr: SocketAddr,
    rpc_addr: SocketAddr,
    relay_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(what: &'static str) -> Result<TcpListener, SimError> {
    TcpListener::bind(("127.0.0.1", 0)).await.map_err(|source| SimError::Bind { what, source })
}

fn build_universe(
    sim: &SimConfig,
    tokens: &[TokenConfig],
    dexes: &[DexConfig],
    pools: &[PoolConfig],
    board: &PriceBoard,
) -> Result<(Universe, State), ConfigError> {
    let token_idx = |sym: &str, field: &str| {
        tokens
            .iter()
            .position(|t| t.symbol == sym)
            .ok_or_else(|| ConfigError::new(field.to_owned(), format!("unknown token `{sym}`")))
    };
    let mut infos: Vec<TokenInfo> = tokens
        .iter()
        .map(|t| TokenInfo {
            symbol: t.symbol.clone(),
            address: t.address,
            decimals: t.decimals,
            price: RefPrice::None,
        })
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        if tokens[..i].iter().any(|o| o.address == t.address) {
            return Err(ConfigError::new(format!("tokens[{}].address", t.symbol), "duplicate address"));
        }
        infos[i].price = match &t.price {
            PriceSource::Fixed { fixed } => RefPrice::Fixed(*fixed),
            PriceSource::Instrument { symbol } => board.index(symbol).map_or(RefPrice::None, RefPrice::Board),
        };
    }
    let mut dex_infos = Vec::new();
    let mut dex_by_router = HashMap::new();
    let mut dex_map: HashMap<&str, usize> = HashMap::new();
    for d in dexes.iter().filter(|d| d.kind == DexKind::UniswapV2) {
        dex_map.insert(d.name.as_str(), dex_infos.len());
        dex_by_router.insert(d.router, dex_infos.len());
        dex_infos.push(DexInfo { name: d.name.clone(), router: d.router });
    }
    let mut u = Universe {
        chain_id: sim.chain_id,
        gas_limit: sim.gas_limit,
        builder_min_tip_wei: sim.builder_min_tip_wei,
        arbitrage: sim.arbitrage,
        token_by_addr: infos.iter().enumerate().map(|(i, t)| (t.address, i)).collect(),
        tokens: infos,
        dexes: dex_infos,
        dex_by_router,
        pools: Vec::new(),
        pool_by_addr: HashMap::new(),
        pool_by_pair: HashMap::new(),
        flows: Vec::new(),
    };
    let mut state = State::default();
    for sp in &sim.pools {
        let at = |f: &str| format!("sim.pools[{}].{f}", sp.pool);
        let p = pools.iter().find(|p| p.name == sp.pool).ok_or_else(|| {
            ConfigError::new(at("pool"), format!("no pool named `{}` in [[pools]]", sp.pool))
        })?;
        let dex_cfg = dexes.iter().find(|d| d.name == p.dex).ok_or_else(|| {
            ConfigError::new(at("pool"), format!("pool's DEX `{}` is not in [[dexes]]", p.dex))
        })?;
        let Some(&dex) = dex_map.get(p.dex.as_str()) else {
            return Err(ConfigError::new(
                at("pool"),
                format!(
                    "DEX `{}` is {:?}; only uniswap_v2 pools can be simulated",
                    dex_cfg.name, dex_cfg.kind
                ),
            ));
        };
        if p.fee() >= 10_000 {
            return Err(ConfigError::new(
                format!("pools[{}].fee", p.name),
                "V2 fee is in basis points and must be < 10000",
            ));
        }
        let t0 = token_idx(&p.token0, &format!("pools[{}].token0", p.name))?;
        let t1 = token_idx(&p.token1, &format!("pools[{}].token1", p.name))?;
        let (a0, a1) = (u.tokens[t0].address, u.tokens[t1].address);
        if a0 >= a1 {
            return Err(ConfigError::new(
                format!("pools[{}].token0", p.name),
                format!(
                    "token0 ({}) must have the lower address, as the pair contract orders them",
                    p.token0
                ),
            ));
        }
        if u.pool_by_addr.contains_key(&p.address) || u.token_by_addr.contains_key(&p.address) {
            return Err(ConfigError::new(format!("pools[{}].address", p.name), "address already used"));
        }
        if u.pool_by_pair.contains_key(&(dex, a0, a1)) {
            return Err(ConfigError::new(
                at("pool"),
                format!("DEX `{}` already has a {}/{} pool", p.dex, p.token0, p.token1),
            ));
        }
        let r0 = parse_units(&sp.reserve0, u.tokens[t0].decimals)
            .map_err(|e| ConfigError::new(at("reserve0"), e))?;
        let r1 = parse_units(&sp.reserve1, u.tokens[t1].decimals)
            .map_err(|e| ConfigError::new(at("reserve1"), e))?;
        let max = (U256::from(1u8) << 112) - U256::from(1u8);
        for (f, r) in [("reserve0", r0), ("reserve1", r1)] {
            if r.is_zero() {
                return Err(ConfigError::new(at(f), "must be > 0"));
            }
            if r > max {
                return Err(ConfigError::new(at(f), "exceeds uint112"));
            }
        }
        if sim.arbitrage {
            for t in [t0, t1] {
                if matches!(u.tokens[t].price, RefPrice::None) {
                    let why = match &tokens[t].price {
                        PriceSource::Instrument { symbol } => {
                            format!("its instrument `{symbol}` is not among sim.symbols")
                        }
                        PriceSource::Fixed { .. } => "it has no price".to_owned(),
                    };
                    return Err(ConfigError::new(
                        at("pool"),
                        format!("arbitrage needs a reference price for {}, but {why}", tokens[t].symbol),
                    ));
                }
            }
        }
        let idx = u.pools.len();
        u.pools.push(PoolInfo {
            name: p.name.clone(),
            address: p.address,
            dex,
            token0: t0,
            token1: t1,
            fee_bps: p.fee(),
        });
        u.pool_by_addr.insert(p.address, idx);
        u.pool_by_pair.insert((dex, a0, a1), idx);
        state.reserves.push((r0, r1));
        state.reserve_ts.push(0);
    }
    for a in &sim.accounts {
        let at = |f: &str| format!("sim.accounts[{}].{f}", a.address);
        // Far above any real supply, and far from 256-bit wrap-around in the balance arithmetic.
        let cap = U256::from(1u8) << 128;
        let eth = parse_units(&a.eth, 18).map_err(|e| ConfigError::new(at("eth"), e))?;
        if eth >= cap {
            return Err(ConfigError::new(at("eth"), "must be below 2^128 wei"));
        }
        state.eth.insert(a.address, eth);
        for (sym, amount) in &a.balances {
            let t = token_idx(sym, &at("balances"))?;
            let field = at(&format!("balances.{sym}"));
            let v =
                parse_units(amount, u.tokens[t].decimals).map_err(|e| ConfigError::new(field.clone(), e))?;
            if v >= cap {
                return Err(ConfigError::new(field, "must be below 2^128 raw units"));
            }
            state.erc20.insert((t, a.address), v);
        }
    }
    for (i, f) in sim.flows.iter().enumerate() {
        let at = |field: &str| format!("sim.flows[{i}].{field}");
        let token = token_idx(&f.token, &at("token"))?;
        let amount = parse_units(&f.amount, u.tokens[token].decimals)
            .map_err(|e| ConfigError::new(at("amount"), e))?;
        if amount.is_zero() || amount >= U256::from(1u8) << 128 {
            return Err(ConfigError::new(at("amount"), "must be > 0 and below 2^128 raw units"));
        }
        if f.every_blocks == 0 {
            return Err(ConfigError::new(at("every_blocks"), "must be ≥ 1"));
        }
        if f.between[0] == f.between[1] {
            return Err(ConfigError::new(at("between"), "the two accounts must differ"));
        }
        u.flows.push(chain::Flow { token, amount, between: f.between, every_blocks: f.every_blocks });
    }
    Ok((u, state))
}

/// What [`SimMarket::start`] builds from the config before it binds anything.
struct Prepared {
    capture: Option<Vec<ws::CapturedFrame>>,
    board: Arc<PriceBoard>,
    universe: Universe,
    state: State,
}

/// Validates `sim` against Keel's tokens, DEXes and pools and builds the chain's start state:
/// everything that can fail in the config, with nothing started.
fn prepare(
    sim: &SimConfig,
    tokens: &[TokenConfig],
    dexes: &[DexConfig],
    pools: &[PoolConfig],
) -> Result<Prepared, SimError> {
    sim.validate()?;
    let capture = match &sim.replay {
        Some(p) => Some(ws::load_capture(p)?),
        None => None,
    };
    let mut board_entries: Vec<(String, f64)> =
        sim.symbols.iter().map(|s| (s.symbol.clone(), s.start)).collect();
    if let Some(frames) = &capture {
        for (sym, mid) in ws::capture_symbols(frames) {
            if !board_entries.iter().any(|(s, _)| *s == sym) {
                board_entries.push((sym, mid));
            }
        }
    }
    let board = Arc::new(PriceBoard::new(board_entries));
    let (universe, state) = build_universe(sim, tokens, dexes, pools, &board)?;
    Ok(Prepared { capture, board, universe, state })
}

impl SimMarket {
    /// Checks `sim` against Keel's `tokens`, `dexes` and `pools` exactly as [`SimMarket::start`]
    /// does (amounts, reserves, flows, the replay file), without starting anything: what
    /// `keel check-config` runs, so that a config it accepts does not fail at start.
    pub fn check(
        sim: &SimConfig,
        tokens: &[TokenConfig],
        dexes: &[DexConfig],
        pools: &[PoolConfig],
    ) -> Result<(), SimError> {
        prepare(sim, tokens, dexes, pools).map(|_| ())
    }

    /// Starts the market: validates `sim` against Keel's `tokens`, `dexes` and `pools`, binds the three
    /// listeners on 127.0.0.1 and spawns the price, websocket, node, relay and block tasks. Everything
    /// stops when `cancel` is cancelled.
    pub async fn start(
        sim: SimConfig,
        tokens: Vec<TokenConfig>,
        dexes: Vec<DexConfig>,
        pools: Vec<PoolConfig>,
        cancel: CancellationToken,
    ) -> Result<SimMarket, SimError> {
        let Prepared { capture, board, universe, state } = prepare(&sim, &tokens, &dexes, &pools)?;

        let ws_listener = bind("the exchange websocket").await?;
        let rpc_listener = bind("the JSON-RPC node").await?;
        let relay_listener = bind("the relay").await?;
        let addr = |l: &TcpListener, what: &'static str| {
            l.local_addr().map_err(|source| SimError::Bind { what, source })
        };
        let (ws_addr, rpc_addr, relay_addr) =
            (addr(&ws_listener, "websocket")?, addr(&rpc_listener, "node")?, addr(&relay_listener, "relay")?);

        let cancel = cancel.child_token();
        let chain = Chain::new(Arc::new(universe), state, unix_now_secs(), sim.base_fee_wei);
        let (head, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            rpc_counters: RpcCounters::default(),
            chain: Mutex::new(chain),
            board: board.clone(),
            ws_counters: Arc::default(),
            ws_drop: Mutex::new(cancel.child_token()),
            head,
        });

        let (tx, _) = tokio::sync::broadcast::channel(ws::BROADCAST_CAPACITY);
        let mut tasks = Vec::new();
        let served: BTreeSet<String> = match &capture {
            Some(frames) => frames.iter().map(|f| f.stream.clone()).collect(),
            None => sim.symbols.iter().map(|s| ws::book_ticker_stream(&s.symbol)).collect(),
        };
        match capture {
            Some(frames) => {
                tasks.push(tokio::spawn(ws::run_replay(shared.clone(), frames, tx.clone(), cancel.clone())))
            }
            None => tasks.push(tokio::spawn(ws::run_synthetic(
                shared.clone(),
                sim.symbols.clone(),
                PricePath::new(&sim),
                tx.clone(),
                sim.tick_ms,
                cancel.clone(),
            ))),
        }
        tasks.push(tokio::spawn(ws::serve(
            ws_listener,
            shared.clone(),
            tx,
            ws_server::Served::Only(Arc::new(served)),
            cancel.clone(),
        )));
        let (s, c) = (shared.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = rpc::serve(rpc_listener, s, c).await {
                tracing::error!(error = %e, "sim node stopped");
            }
        }));
        let (s, c) = (shared.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = relay::serve(relay_listener, s, c).await {
                tracing::error!(error = %e, "sim relay stopped");
            }
        }));
        tasks.push(tokio::spawn(run_blocks(shared.clone(), sim.block_ms, cancel.clone())));
        tracing::info!(%ws_addr, %rpc_addr, %relay_addr, "simulated market started");
        Ok(SimMarket { shared, ws_addr, rpc_addr, relay_addr, cancel, tasks })
    }

    /// Base websocket URL, e.g. `ws://127.0.0.1:PORT` (append `/stream?streams=..` or `/ws/<stream>`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// JSON-RPC node URL, e.g. `http://127.0.0.1:PORT`.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.rpc_addr)
    }

    /// Relay URL (accepts `eth_sendBundle`), e.g. `http://127.0.0.1:PORT`.
    pub fn relay_url(&self) -> String {
        format!("http://{}", self.relay_addr)
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        let chain = self.shared.chain.lock();
        let c = &chain.counters;
        SimStats {
            frames_sent: self.shared.ws_counters.frames_sent.load(Ordering::Relaxed),
            frames_lagged: self.shared.ws_counters.frames_lagged.load(Ordering::Relaxed),
            ws_connections: self.shared.ws_counters.connections.load(Ordering::Relaxed),
            blocks: chain.head(),
            bundles_received: c.bundles_received,
            bundles_rejected: c.bundles_rejected.clone(),
            bundles_landed: c.bundles_landed,
            bundles_failed: c.bundles_failed,
            bundles_expired: c.bundles_expired,
            bundles_replaced: c.bundles_replaced,
            bundles_cancelled: c.bundles_cancelled,
            public_txs: c.public_txs,
            public_txs_included: c.public_txs_included,
            public_txs_dropped: c.public_txs_dropped,
            arbitrage_trades: c.arbitrage_trades,
            flows_applied: c.flows_applied,
            flows_skipped: c.flows_skipped,
            rpc_requests: self.shared.rpc_counters.requests.load(Ordering::Relaxed),
            rpc_batches: self.shared.rpc_counters.batches.load(Ordering::Relaxed),
            rpc_single_state_reads: self.shared.rpc_counters.single_state_reads.load(Ordering::Relaxed),
        }
    }

    /// ERC-20 balance of `account` in the token at `token` (zero for an unknown token). A pool's
    /// balance of its own tokens is its reserve.
    pub fn balance(&self, account: Address, token: Address) -> U256 {
        let chain = self.shared.chain.lock();
        match chain.u.token_by_addr.get(&token) {
            Some(&t) => chain.state.balance_of(&chain.u, t, account),
            None => U256::ZERO,
        }
    }

    /// Native ETH balance of `account`, wei.
    pub fn eth_balance(&self, account: Address) -> U256 {
        self.shared.chain.lock().state.eth_of(account)
    }

    /// Nonce of `account`.
    pub fn nonce(&self, account: Address) -> u64 {
        self.shared.chain.lock().state.nonce_of(account)
    }

    /// Reserves (reserve0, reserve1) of the pool at `pool`, or `None` if it is not simulated.
    pub fn reserves(&self, pool: Address) -> Option<(U256, U256)> {
        let chain = self.shared.chain.lock();
        chain.u.pool_by_addr.get(&pool).map(|&p| chain.state.reserves[p])
    }

    /// The simulated pools with their current reserves, in `[sim.pools]` order.
    pub fn pools(&self) -> Vec<SimPool> {
        let chain = self.shared.chain.lock();
        let u = &chain.u;
        u.pools
            .iter()
            .enumerate()
            .map(|(i, p)| SimPool {
                name: p.name.clone(),
                address: p.address,
                dex: u.dexes[p.dex].name.clone(),
                router: u.dexes[p.dex].router,
                token0: u.tokens[p.token0].address,
                token1: u.tokens[p.token1].address,
                fee_bps: p.fee_bps,
                reserve0: chain.state.reserves[i].0,
                reserve1: chain.state.reserves[i].1,
            })
            .collect()
    }

    /// Current reference mid of an exchange symbol (`ETHUSDT`), or `None` if it is not served.
    pub fn reference_price(&self, symbol: &str) -> Option<f64> {
        self.shared.board.index(symbol).map(|i| self.shared.board.mid(i))
    }

    /// Head block number.
    pub fn head(&self) -> u64 {
        self.shared.chain.lock().head()
    }

    /// Timestamp (seconds) of the head block.
    pub fn head_timestamp(&self) -> u64 {
        self.shared.chain.lock().head_header().timestamp
    }

    /// Base fee of the next block, wei.
    pub fn next_base_fee(&self) -> u64 {
        self.shared.chain.lock().next_base_fee()
    }

    /// What became of the bundle with `bundle_hash` (as returned by `eth_sendBundle`).
    pub fn bundle_status(&self, bundle_hash: B256) -> Option<BundleStatus> {
        self.shared.chain.lock().bundle_status(&bundle_hash)
    }

    /// Waits until the head block is at least `number`.
    pub async fn wait_for_block(&self, number: u64, timeout: Duration) -> Result<(), SimError> {
        let mut rx = self.shared.head.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|h| *h >= number))
            .await
            .map_err(|_| SimError::Timeout(format!("block {number} not reached within {timeout:?}")))?
            .map_err(|_| SimError::Timeout("the simulated market stopped".to_owned()))?;
        Ok(())
    }

    /// Test control: moves the mid of the pool at `pool` by `factor` (reserve1/reserve0 × factor, at
    /// constant product, as a large trade would) and keeps the arbitrageur away from it until
    /// [`SimMarket::release_pool`], so the pool stays off the reference price. Returns the new
    /// reserves.
    pub fn hold_pool(&self, pool: Address, factor: f64) -> Result<(U256, U256), SimError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(SimError::Control(format!("price factor {factor} is not a positive number")));
        }
        let mut chain = self.shared.chain.lock();
        let &p = chain
            .u
            .pool_by_addr
            .get(&pool)
            .ok_or_else(|| SimError::Control(format!("no simulated pool at {pool}")))?;
        let (r0, r1) = chain.state.reserves[p];
        let root = factor.sqrt();
        let (n0, n1) = (f64::from(r0) / root, f64::from(r1) * root);
        let max = 2f64.powi(112);
        if !(n0 >= 1.0 && n1 >= 1.0 && n0 < max && n1 < max) {
            return Err(SimError::Control(format!("factor {factor} takes the reserves out of uint112")));
        }
        let new = (U256::from(n0 as u128), U256::from(n1 as u128));
        chain.state.reserves[p] = new;
        chain.held.insert(p);
        Ok(new)
    }

    /// Test control: withdraws `fraction` of the liquidity of the pool at `pool` (both reserves
    /// scaled by `1 − fraction`, the price unchanged), as a large liquidity provider leaving would.
    /// Returns the new reserves.
    pub fn drain_pool(&self, pool: Address, fraction: f64) -> Result<(U256, U256), SimError> {
        if !(fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
            return Err(SimError::Control(format!("fraction {fraction} is outside (0, 1)")));
        }
        let mut chain = self.shared.chain.lock();
        let &p = chain
            .u
            .pool_by_addr
            .get(&pool)
            .ok_or_else(|| SimError::Control(format!("no simulated pool at {pool}")))?;
        let (r0, r1) = chain.state.reserves[p];
        // Integer scaling: keep = 1e6 − fraction·1e6 parts per million.
        let keep = U256::from(((1.0 - fraction) * 1e6).round() as u64);
        let million = U256::from(1_000_000u64);
        let new = (r0 * keep / million, r1 * keep / million);
        if new.0.is_zero() || new.1.is_zero() {
            return Err(SimError::Control(format!("draining {fraction} empties the pool")));
        }
        chain.state.reserves[p] = new;
        Ok(new)
    }

    /// Test control: lets the arbitrageur trade the pool at `pool` again (from the next block).
    pub fn release_pool(&self, pool: Address) -> Result<(), SimError> {
        let mut chain = self.shared.chain.lock();
        let &p = chain
            .u
            .pool_by_addr
            .get(&pool)
            .ok_or_else(|| SimError::Control(format!("no simulated pool at {pool}")))?;
        chain.held.remove(&p);
        Ok(())
    }

    /// Test control: drops every open websocket connection abruptly (no close handshake), to exercise
    /// reconnects. New connections are accepted as usual.
    pub fn drop_ws_connections(&self) {
        let mut token = self.shared.ws_drop.lock();
        token.cancel();
        *token = self.cancel.child_token();
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for t in std::mem::take(&mut self.tasks) {
            if let Err(e) = t.await
                && e.is_panic()
            {
                tracing::error!(error = %e, "a simulated-market task panicked");
            }
        }
    }
}

impl Drop for SimMarket {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Seals a block every `block_ms` until `cancel`.
async fn run_blocks(shared: Arc<Shared>, block_ms: u64, cancel: CancellationToken) {
    let period = Duration::from_millis(block_ms);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        let n = shared.chain.lock().produce_block(unix_now_secs(), &shared.board);
        shared.head.send_replace(n);
    }
}
