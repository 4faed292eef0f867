//! A loopback Flashbots relay for anvil: `eth_sendBundle` and `eth_callBundle` over HTTP on 127.0.0.1.
//!
//! The relay owns block production: it turns anvil's automine off and mines a block every
//! [`RelayOptions::block_interval`] (and on demand through [`AnvilRelay::mine_block`]), so a bundle's
//! target block is well defined. Building block `N`:
//!
//! 1. the public transactions pending in anvil are read (raw bytes);
//! 2. each bundle targeting `N`, in arrival order, is simulated on top of the public transactions
//!    and the bundles already accepted for `N`, with `eth_simulateV1` and `N`'s number, timestamp,
//!    base fee and fee recipient (nothing is mined, so no reader of the node ever sees a
//!    simulation; nonce order and fee caps, which anvil's simulation does not check, are checked
//!    here: [`super::blocksim`]). It is accepted when every transaction executes and succeeds or is
//!    listed in `revertingTxHashes`, and the block timestamp is inside
//!    `[minTimestamp, maxTimestamp]`;
//! 3. the accepted bundles are sent in order and one block is mined, with the simulated timestamp.
//!    If that block does not reproduce the simulation (a public transaction arrived in between) it
//!    is reverted and `N` is mined with public transactions only.
//!
//! So a bundle lands whole, in its target block, or not at all; a bundle whose target passed is
//! expired. anvil must order its pool first-in first-out (`--order fifo`, as [`super::AnvilChain`]
//! starts it) so that the transactions of a bundle execute in bundle order, after the public ones.
//!
//! # Several builders
//!
//! With [`RelayOptions::builders`] the relay serves one endpoint per builder, each on its own port
//! with its own bundles, and each block is built by one of them: builder `i` wins block `N` with
//! probability `share_i` (a draw from `keccak(seed ‖ N)`, so a seed fixes the winner of every block
//! number), none of them with the remaining probability (a block of public transactions only).
//! Only the winner's bundles for `N` are considered; the others' become
//! [`BundleStatus::Outbid`]. The block's fee recipient is the winner's `coinbase`
//! (`anvil_setCoinbase`), so Keel can tell which builder included a bundle, as it does on mainnet.
//! Without builders, one endpoint builds every block with anvil's own coinbase.
//!
//! The HTTP side (authentication, parameters, limits, bundle hash, errors) is the relay core,
//! [`crate::relay`]; this module is its anvil backend. `replacementUuid` replaces the earlier
//! pending bundle with the same id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::consensus::TxEnvelope;
use alloy::consensus::transaction::SignerRecoverable;
use alloy::eips::eip2718::{Decodable2718, Encodable2718};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::mev::{EthCallBundleResponse, EthCallBundleTransactionResult};
use keel_router::bundle::bundle_hash;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::blocksim::{self, BlockEnv, Fate};
use super::error::{AnvilError, Result};
use crate::relay::{BundleBackend, CallBundle, RelayError, RequestContext, SendBundle, StateBlock};
pub use crate::relay::{MAX_BUNDLE_BYTES, MAX_BUNDLE_TXS, SIGNATURE_HEADER};

/// Default time between blocks the relay mines by itself.
pub const DEFAULT_BLOCK_INTERVAL: Duration = Duration::from_millis(1_000);

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Mine a block this often; `None` mines only on [`AnvilRelay::mine_block`].
    pub block_interval: Option<Duration>,
    /// Builders, one endpoint each (see the module docs); empty: one endpoint that builds every
    /// block.
    pub builders: Vec<BuilderOptions>,
    /// Seeds the draw of each block's builder.
    pub seed: u64,
    /// Tests only: every build with accepted bundles stops here after judging them and before
    /// looking again for public transactions (see [`SealGate`]).
    pub seal_gate: Option<Arc<SealGate>>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self { block_interval: Some(DEFAULT_BLOCK_INTERVAL), builders: Vec::new(), seed: 0, seal_gate: None }
    }
}

/// A pause in a block's build, for tests of the re-judge: once the bundles are judged the build
/// signals [`judged`](Self::judged) and waits for [`go`](Self::go), so a test can send a public
/// transaction exactly while a block is being built.
#[derive(Debug, Default)]
pub struct SealGate {
    /// Signalled when a build has judged its bundles.
    pub judged: tokio::sync::Notify,
    /// The build goes on once signalled.
    pub go: tokio::sync::Notify,
}

/// One builder behind the relay.
#[derive(Debug, Clone)]
pub struct BuilderOptions {
    /// Its name, for logs.
    pub name: String,
    /// The fee recipient of the blocks it builds.
    pub coinbase: Address,
    /// The probability that it builds a given block, in `[0, 1]`; the shares sum to at most 1.
    pub share: f64,
    /// Smallest priority fee per gas (effective: capped by max fee − base fee), wei, that each
    /// transaction of a bundle must pay for it to include the bundle; 0: any.
    pub min_tip_wei: u128,
}

/// Where a bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleStatus {
    /// Waiting for its target block.
    Pending {
        /// Target block.
        target: u64,
    },
    /// Included, whole, in `block`.
    Landed {
        /// The block.
        block: u64,
    },
    /// Simulated for its target block and refused; nothing of it is on chain.
    Failed {
        /// The target block.
        block: u64,
        /// Why.
        reason: String,
    },
    /// Its target block was built before it arrived, or it was replaced.
    Expired {
        /// Target block.
        target: u64,
    },
    /// Another builder (or none of the relay's) built its target block.
    Outbid {
        /// The target block.
        block: u64,
    },
    /// Cancelled by its signer (`eth_cancelBundle`) before its block was built.
    Cancelled {
        /// The target block.
        target: u64,
    },
}

/// One bundle as the relay holds it.
#[derive(Debug, Clone)]
struct HeldBundle {
    /// The endpoint (builder) it was sent to.
    builder: usize,
    /// Who signed the request (only they may cancel it).
    signer: Address,
    hash: B256,
    txs: Vec<Bytes>,
    tx_hashes: Vec<B256>,
    target: u64,
    min_timestamp: Option<u64>,
    max_timestamp: Option<u64>,
    reverting: Vec<B256>,
    uuid: Option<String>,
}

/// What the relay has seen, for tests and reports.
#[derive(Debug, Default)]
struct Book {
    pending: Vec<HeldBundle>,
    status: HashMap<B256, BundleStatus>,
    signers: HashMap<B256, Address>,
    /// Bundles landed, in landing order: hash, block and transaction hashes.
    landed: Vec<LandedBundle>,
    rejected_requests: u64,
    /// `eth_sendBundle` requests received (late ones included), and `eth_cancelBundle` requests.
    sends: u64,
    cancels: u64,
}

/// Most landed bundles [`AnvilRelay::landed`] remembers (the devnet runs for hours).
pub const MAX_LANDED_KEPT: usize = 4_096;

/// A bundle the relay landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedBundle {
    /// Its hash (as `eth_sendBundle` returned it).
    pub hash: B256,
    /// The block it landed in.
    pub block: u64,
    /// Its transactions, in order.
    pub tx_hashes: Vec<B256>,
}

#[derive(Debug)]
struct Shared {
    anvil: DynProvider,
    /// One book per endpoint (builder).
    books: Vec<parking_lot::Mutex<Book>>,
    /// The builders (empty: one implicit builder of every block).
    builders: Vec<BuilderOptions>,
    seed: u64,
    /// anvil's own fee recipient, for blocks none of the builders wins.
    public_coinbase: Address,
    /// The newest block built for good (not one being built and possibly reverted): a bundle for
    /// it or an earlier block arrives too late.
    sealed: std::sync::atomic::AtomicU64,
    /// Serialises everything that changes the chain.
    chain: Mutex<()>,
    seal_gate: Option<Arc<SealGate>>,
}

/// The loopback relay. Dropping it stops the server and the block timer (automine stays off; call
/// [`AnvilRelay::shutdown`] to turn it back on).
#[derive(Debug)]
pub struct AnvilRelay {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    /// Every endpoint's URL, by builder.
    urls: Vec<String>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Checks that every raw transaction decodes as a signed EIP-2718 transaction.
fn check_decodes(txs: &[Bytes]) -> core::result::Result<(), RelayError> {
    for (i, raw) in txs.iter().enumerate() {
        TxEnvelope::decode_2718(&mut raw.as_ref())
            .map_err(|e| RelayError::Params(format!("txs[{i}] is not a signed EIP-2718 transaction: {e}")))?;
    }
    Ok(())
}

/// One builder's endpoint: the relay core serves it on its own port.
#[derive(Debug)]
struct Endpoint {
    shared: Arc<Shared>,
    builder: usize,
}

fn internal(e: impl std::fmt::Display) -> RelayError {
    RelayError::Internal(e.to_string())
}

impl AnvilRelay {
    /// Starts the relay for the anvil at `anvil_http_url`: binds 127.0.0.1 on a free port, turns
    /// automine off and, when configured, starts the block timer.
    pub async fn start(anvil_http_url: &str, options: RelayOptions) -> Result<Self> {
        Self::start_on(anvil_http_url, options, 0).await
    }

    /// [`AnvilRelay::start`] on a given port of 127.0.0.1 (0: a free port).
    pub async fn start_on(anvil_http_url: &str, options: RelayOptions, port: u16) -> Result<Self> {
        if options.block_interval.is_some_and(|d| d.is_zero()) {
            // A zero period would panic the block timer's task and leave a relay that never mines.
            return Err(AnvilError::rpc("relay", "block_interval must be > 0"));
        }
        let shares: f64 = options.builders.iter().map(|b| b.share).sum();
        if options.builders.iter().any(|b| !(0.0..=1.0).contains(&b.share)) || shares > 1.0 + 1e-9 {
            return Err(AnvilError::rpc("relay", "builder shares must be in [0, 1] and sum to at most 1"));
        }
        let url = anvil_http_url.parse().map_err(|e| AnvilError::rpc("relay", format!("bad url: {e}")))?;
        let anvil = ProviderBuilder::new().disable_recommended_fillers().connect_http(url).erased();
        anvil
            .raw_request::<_, Value>("evm_setAutomine".into(), (false,))
            .await
            .map_err(|e| AnvilError::rpc("evm_setAutomine", e))?;
        let public_coinbase: Address = anvil
            .raw_request("eth_coinbase".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("eth_coinbase", e))?;
        let endpoints = options.builders.len().max(1);
        let sealed = anvil.get_block_number().await.map_err(|e| AnvilError::rpc("eth_blockNumber", e))?;
        let shared = Arc::new(Shared {
            anvil,
            books: (0..endpoints).map(|_| Default::default()).collect(),
            builders: options.builders.clone(),
            seed: options.seed,
            public_coinbase,
            sealed: sealed.into(),
            chain: Mutex::new(()),
            seal_gate: options.seal_gate.clone(),
        });
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut urls = Vec::new();
        let mut addr = None;
        for builder in 0..endpoints {
            // The first endpoint on `port`, the others on free ports.
            let listener =
                tokio::net::TcpListener::bind(("127.0.0.1", if builder == 0 { port } else { 0 })).await?;
            let bound = listener.local_addr()?;
            addr.get_or_insert(bound);
            urls.push(format!("http://{bound}"));
            let endpoint = Arc::new(Endpoint { shared: Arc::clone(&shared), builder });
            let server = tokio::spawn(crate::relay::serve(listener, endpoint, cancel.clone()));
            tasks.push(tokio::spawn(async move {
                if let Ok(Err(e)) = server.await {
                    tracing::error!(error = %e, "anvil relay server stopped");
                }
            }));
        }
        let addr = addr.expect("at least one endpoint");
        if let Some(every) = options.block_interval {
            let shared = Arc::clone(&shared);
            let stop = cancel.clone();
            tasks.push(tokio::spawn(async move {
                // The interval runs from the end of one build to the start of the next: a build
                // slower than the interval must not leave no time for the next block's bundles.
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(every) => {
                            if let Err(e) = shared.build_block().await {
                                tracing::error!(error = %e, "anvil relay failed to build a block");
                            }
                        }
                    }
                }
            }));
        }
        Ok(Self { shared, addr, url: format!("http://{addr}"), urls, cancel, tasks })
    }

    /// `http://127.0.0.1:PORT` (the first builder's endpoint).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Each builder's endpoint, in [`RelayOptions::builders`] order.
    pub fn builder_urls(&self) -> &[String] {
        &self.urls
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Builds and mines the next block now (with the bundles targeting it); returns its number.
    pub async fn mine_block(&self) -> Result<u64> {
        self.shared.build_block().await
    }

    /// Status of a bundle by its hash (as returned by `eth_sendBundle`).
    pub fn bundle_status(&self, hash: B256) -> Option<BundleStatus> {
        self.shared.books.iter().find_map(|b| b.lock().status.get(&hash).cloned())
    }

    /// Status of a bundle at one builder's endpoint.
    pub fn bundle_status_at(&self, builder: usize, hash: B256) -> Option<BundleStatus> {
        self.shared.books.get(builder)?.lock().status.get(&hash).cloned()
    }

    /// The bundles landed so far (the last [`MAX_LANDED_KEPT`]), in landing order.
    pub fn landed(&self) -> Vec<LandedBundle> {
        let mut all: Vec<LandedBundle> =
            self.shared.books.iter().flat_map(|b| b.lock().landed.clone()).collect();
        all.sort_by_key(|b| b.block);
        all
    }

    /// Every bundle the relay accepted, with its status now.
    pub fn statuses(&self) -> Vec<(B256, BundleStatus)> {
        let books = self.shared.books.iter();
        books.flat_map(|b| b.lock().status.iter().map(|(h, s)| (*h, s.clone())).collect::<Vec<_>>()).collect()
    }

    /// The address that signed a bundle's request.
    pub fn bundle_signer(&self, hash: B256) -> Option<Address> {
        self.shared.books.iter().find_map(|b| b.lock().signers.get(&hash).copied())
    }

    /// `eth_sendBundle` requests received (authenticated and well formed) and `eth_cancelBundle`
    /// requests answered, over all endpoints.
    pub fn requests(&self) -> (u64, u64) {
        let books = self.shared.books.iter().map(|b| {
            let b = b.lock();
            (b.sends, b.cancels)
        });
        books.fold((0, 0), |(s, c), (bs, bc)| (s + bs, c + bc))
    }

    /// Requests refused for a missing or bad signature.
    pub fn rejected_requests(&self) -> u64 {
        self.shared.books.iter().map(|b| b.lock().rejected_requests).sum()
    }

    /// Stops the server and the timer and turns anvil's automine back on.
    pub async fn shutdown(mut self) -> Result<()> {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let _guard = self.shared.chain.lock().await;
        self.shared
            .anvil
            .raw_request::<_, Value>("evm_setAutomine".into(), (true,))
            .await
            .map_err(|e| AnvilError::rpc("evm_setAutomine", e))?;
        Ok(())
    }
}

impl Drop for AnvilRelay {
    fn drop(&mut self) {
        self.cancel.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl BundleBackend for Endpoint {
    async fn on_send(&self, ctx: &RequestContext, p: SendBundle) -> core::result::Result<(), RelayError> {
        self.shared.on_send(self.builder, ctx, p).await
    }

    async fn on_call(&self, ctx: &RequestContext, p: CallBundle) -> core::result::Result<Value, RelayError> {
        self.shared.on_call(self.builder, ctx, p).await
    }

    fn on_cancel(
        &self,
        ctx: &RequestContext,
        replacement_uuid: &str,
    ) -> core::result::Result<(), RelayError> {
        let mut book = self.shared.books[self.builder].lock();
        let cancelled: Vec<(B256, u64)> = book
            .pending
            .iter()
            .filter(|b| b.signer == ctx.signer && b.uuid.as_deref() == Some(replacement_uuid))
            .map(|b| (b.hash, b.target))
            .collect();
        book.pending.retain(|b| !(b.signer == ctx.signer && b.uuid.as_deref() == Some(replacement_uuid)));
        for (hash, target) in cancelled {
            book.status.insert(hash, BundleStatus::Cancelled { target });
        }
        book.cancels += 1;
        Ok(())
    }

    fn on_rejected(&self, error: &RelayError) {
        if error.is_auth() {
            self.shared.books[self.builder].lock().rejected_requests += 1;
        }
    }
}

impl Shared {
    async fn on_send(
        &self,
        builder: usize,
        ctx: &RequestContext,
        p: SendBundle,
    ) -> core::result::Result<(), RelayError> {
        check_decodes(&p.txs)?;
        let hash = p.hash;
        // Not the node's head: while a block is built, it shows the simulations' blocks.
        let head = self.sealed.load(std::sync::atomic::Ordering::Acquire);
        let bundle = HeldBundle {
            builder,
            signer: ctx.signer,
            hash,
            txs: p.txs,
            tx_hashes: p.tx_hashes,
            target: p.block_number,
            min_timestamp: p.min_timestamp,
            max_timestamp: p.max_timestamp,
            reverting: p.reverting_tx_hashes,
            uuid: p.replacement_uuid,
        };
        let mut book = self.books[builder].lock();
        book.sends += 1;
        book.signers.insert(hash, ctx.signer);
        if bundle.target <= head {
            // Refused, as the simulated market's relay does: the sender learns it was too late
            // (and does not count the block as a chance it was given).
            book.status.insert(hash, BundleStatus::Expired { target: bundle.target });
            return Err(RelayError::Params(format!(
                "target block {} is not after the head block {head}",
                bundle.target
            )));
        } else {
            if let Some(uuid) = &bundle.uuid {
                let replaced: Vec<B256> =
                    book.pending.iter().filter(|b| b.uuid.as_ref() == Some(uuid)).map(|b| b.hash).collect();
                book.pending.retain(|b| b.uuid.as_ref() != Some(uuid));
                for h in replaced {
                    if h != hash {
                        let target = bundle.target;
                        book.status.insert(h, BundleStatus::Expired { target });
                    }
                }
            }
            book.status.insert(hash, BundleStatus::Pending { target: bundle.target });
            // The same transactions for another block are another submission.
            book.pending.retain(|b| !(b.hash == hash && b.target == bundle.target));
            book.pending.push(bundle);
        }
        Ok(())
    }

    async fn on_call(
        &self,
        builder: usize,
        _ctx: &RequestContext,
        p: CallBundle,
    ) -> core::result::Result<Value, RelayError> {
        check_decodes(&p.txs)?;
        let hashes = &p.tx_hashes;
        // Nothing is mined: the lock only keeps a block being landed out of the simulation.
        let _chain = self.chain.lock().await;
        let coinbase = self.builders.get(builder).map_or(self.public_coinbase, |b| b.coinbase);
        let mut env = BlockEnv::next(&self.anvil, coinbase).await.map_err(internal)?;
        let head = env.number - 1;
        if let StateBlock::Number(n) = p.state_block
            && n != head
        {
            return Err(RelayError::Params(format!(
                "stateBlockNumber {n} unavailable: the relay simulates on the head ({head})"
            )));
        }
        if let Some(b) = p.block_number {
            if b <= head {
                // As the simulated market's relay answers, and Flashbots' wording.
                return Err(RelayError::Params(format!(
                    "blockNumber {b} is not after the head block {head}"
                )));
            }
            env.number = b;
        }
        if let Some(t) = p.timestamp {
            env.timestamp = t;
        }
        let public = self.public_pending().await.map_err(internal)?;
        let fates = blocksim::simulate(&self.anvil, &env, &public, &p.txs).await.map_err(internal)?;
        let mut results = Vec::with_capacity(p.txs.len());
        let (mut total_gas, mut gas_fees, mut coinbase_diff, mut sent) =
            (0u64, U256::ZERO, U256::ZERO, U256::ZERO);
        for (i, fate) in fates.iter().enumerate() {
            let r = match fate {
                Fate::Executed(r) => r,
                Fate::Skipped(why) => {
                    return Err(RelayError::Params(format!(
                        "txs[{i}] ({}) could not be executed: {why}",
                        hashes[i]
                    )));
                }
            };
            let price = U256::from(env.base_fee.saturating_add(r.tip_per_gas));
            let fees = price.saturating_mul(U256::from(r.gas_used));
            let tip = U256::from(r.tip_per_gas).saturating_mul(U256::from(r.gas_used));
            total_gas = total_gas.saturating_add(r.gas_used);
            gas_fees = gas_fees.saturating_add(fees);
            coinbase_diff = coinbase_diff.saturating_add(tip).saturating_add(r.to_coinbase);
            sent = sent.saturating_add(r.to_coinbase);
            results.push(EthCallBundleTransactionResult {
                coinbase_diff: tip.saturating_add(r.to_coinbase),
                eth_sent_to_coinbase: r.to_coinbase,
                from_address: r.from,
                gas_fees: fees,
                gas_price: price,
                gas_used: r.gas_used,
                to_address: r.to,
                tx_hash: r.hash,
                value: r.success.then(Bytes::new),
                revert: (!r.success).then(Bytes::new),
            });
        }
        let response = EthCallBundleResponse {
            bundle_hash: bundle_hash(hashes),
            bundle_gas_price: if total_gas == 0 { U256::ZERO } else { coinbase_diff / U256::from(total_gas) },
            coinbase_diff,
            eth_sent_to_coinbase: sent,
            gas_fees,
            results,
            state_block_number: head,
            total_gas_used: total_gas,
        };
        let mut v = serde_json::to_value(response).map_err(internal)?;
        // Flashbots names a failed transaction's error next to its revert data.
        if let Some(rs) = v.get_mut("results").and_then(Value::as_array_mut) {
            for (r, fate) in rs.iter_mut().zip(&fates) {
                if let Fate::Executed(e) = fate
                    && !e.success
                {
                    r["error"] = Value::String(e.revert.clone());
                }
            }
        }
        Ok(v)
    }

    /// Why `bundle`'s builder refuses it for its tip, judged from the transactions' fee fields and
    /// the block's base fee; `None`: it does not.
    fn tip_refusal(&self, bundle: &HeldBundle, base_fee: u128) -> Option<String> {
        let min_tip = self.builders.get(bundle.builder).map_or(0, |b| b.min_tip_wei);
        if min_tip == 0 {
            return None;
        }
        for (i, raw) in bundle.txs.iter().enumerate() {
            let Ok(tx) = TxEnvelope::decode_2718(&mut raw.as_ref()) else { continue };
            let tip = blocksim::tip(&tx, base_fee);
            if tip < min_tip {
                return Some(format!("tx {i} tips {tip} wei per gas, under the builder's {min_tip}"));
            }
        }
        None
    }

    /// The builder that builds block `number`: a draw from `keccak(seed ‖ number)` against the
    /// cumulative shares; `None` when none of them does. Without builders, the one endpoint.
    fn winner(&self, number: u64) -> Option<usize> {
        if self.builders.is_empty() {
            return Some(0);
        }
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&self.seed.to_be_bytes());
        seed[8..].copy_from_slice(&number.to_be_bytes());
        let h = alloy::primitives::keccak256(seed);
        let draw = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) as f64 / (u64::MAX as f64 + 1.0);
        let mut cumulative = 0.0;
        for (i, b) in self.builders.iter().enumerate() {
            cumulative += b.share;
            if draw < cumulative {
                return Some(i);
            }
        }
        None
    }

    async fn snapshot(&self) -> Result<U256> {
        self.anvil
            .raw_request("evm_snapshot".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("evm_snapshot", e))
    }

    /// Reverts to `snap` (a landing block that did not reproduce its simulation), takes the
    /// bundle transactions `simulated` out of anvil's pool and puts back `public`, the public
    /// transactions pending before the block.
    ///
    /// A bundle transaction that was sent but not mined outlives the revert in anvil's pool; left
    /// there it would be mined later as a public transaction, after its target block, which no
    /// builder does with a bundle.
    async fn restore(&self, snap: U256, public: &[Bytes], simulated: &[Bytes]) -> Result<()> {
        let ok: bool = self
            .anvil
            .raw_request("evm_revert".into(), (snap,))
            .await
            .map_err(|e| AnvilError::rpc("evm_revert", e))?;
        if !ok {
            return Err(AnvilError::rpc("evm_revert", format!("snapshot {snap} unknown")));
        }
        // `anvil_dropTransaction` leaves queued (nonce-gapped) transactions in place; clearing the
        // senders' pool entries removes both kinds, and their public ones are re-sent below.
        let mut senders: Vec<Address> = Vec::new();
        for raw in simulated {
            let Ok(tx) = TxEnvelope::decode_2718(&mut raw.as_ref()) else { continue };
            if let Ok(sender) = tx.recover_signer()
                && !senders.contains(&sender)
            {
                senders.push(sender);
            }
        }
        for sender in senders {
            self.anvil
                .raw_request::<_, Value>("anvil_removePoolTransactions".into(), (sender,))
                .await
                .map_err(|e| AnvilError::rpc("anvil_removePoolTransactions", e))?;
        }
        // Only the public transactions pending before the block are re-sent, never its other
        // transactions: one of them can be another bundle's, which must not land outside it.
        for raw in public {
            // Already pending (the revert kept it) is fine.
            let _ = self.anvil.send_raw_transaction(raw).await;
        }
        Ok(())
    }

    /// Raw bytes of the transactions pending in anvil's pool, senders in address order, each
    /// sender's in nonce order, from one `txpool_content` request (the same pool replays the same
    /// way every time).
    async fn public_pending(&self) -> Result<Vec<Bytes>> {
        /// `txpool_content`'s reply: sender → nonce → transaction, pending and queued.
        #[derive(Debug, serde::Deserialize)]
        struct Content {
            pending: std::collections::BTreeMap<Address, HashMap<String, alloy::rpc::types::Transaction>>,
            queued: std::collections::BTreeMap<Address, HashMap<String, alloy::rpc::types::Transaction>>,
        }
        let content: Content = self
            .anvil
            .raw_request("txpool_content".into(), ())
            .await
            .map_err(|e| AnvilError::rpc("txpool_content", e))?;
        let mut raws = Vec::new();
        for section in [content.pending, content.queued] {
            for by_nonce in section.into_values() {
                let mut txs: Vec<(u64, alloy::rpc::types::Transaction)> =
                    by_nonce.into_iter().map(|(n, t)| (n.parse().unwrap_or(u64::MAX), t)).collect();
                txs.sort_by_key(|(n, _)| *n);
                raws.extend(txs.into_iter().map(|(_, t)| Bytes::from(t.inner.into_inner().encoded_2718())));
            }
        }
        Ok(raws)
    }

    /// Why `bundle`'s part of a block (`fates`, its transactions' fates, in a block with
    /// timestamp `timestamp`) is unacceptable, if it is.
    fn verdict(&self, bundle: &HeldBundle, fates: &[Fate], timestamp: u64) -> Option<String> {
        let min_tip = self.builders.get(bundle.builder).map_or(0, |b| b.min_tip_wei);
        for (i, fate) in fates.iter().enumerate() {
            if let Fate::Executed(r) = fate
                && r.tip_per_gas < min_tip
            {
                return Some(format!(
                    "tx {i} tips {} wei per gas, under the builder's {min_tip}",
                    r.tip_per_gas
                ));
            }
        }
        if let Some(min) = bundle.min_timestamp
            && timestamp < min
        {
            return Some(format!("block timestamp {timestamp} before minTimestamp {min}"));
        }
        if let Some(max) = bundle.max_timestamp
            && timestamp > max
        {
            return Some(format!("block timestamp {timestamp} after maxTimestamp {max}"));
        }
        for (i, (h, fate)) in bundle.tx_hashes.iter().zip(fates).enumerate() {
            match fate {
                Fate::Skipped(why) => return Some(format!("tx {i} ({h}) not included: {why}")),
                Fate::Executed(r) if !r.success && !bundle.reverting.contains(h) => {
                    return Some(format!("tx {i} ({h}) reverted: {}", r.revert));
                }
                Fate::Executed(_) => {}
            }
        }
        None
    }

    /// Whether every bundle of `bundles`, laid out in that order in `fates`, is acceptable.
    fn all_acceptable(&self, bundles: &[HeldBundle], fates: &[Fate], timestamp: u64) -> bool {
        let mut off = 0;
        bundles.iter().all(|b| {
            let ok = self.verdict(b, &fates[off..off + b.txs.len()], timestamp).is_none();
            off += b.txs.len();
            ok
        })
    }

    /// Records `reason` as why `bundle` failed for block `target`.
    fn fail(&self, bundle: &HeldBundle, target: u64, reason: String) {
        tracing::debug!(bundle = %bundle.hash, %reason, "bundle refused");
        self.books[bundle.builder]
            .lock()
            .status
            .insert(bundle.hash, BundleStatus::Failed { block: target, reason });
    }

    /// Simulates `bundle` after the bundles `before` on top of `public` in block `env`: `None`
    /// when every one of them is acceptable there, else why `bundle` is refused.
    async fn judge(
        &self,
        before: &[HeldBundle],
        bundle: &HeldBundle,
        env: &BlockEnv,
        public: &[Bytes],
    ) -> Result<Option<String>> {
        let mut txs: Vec<Bytes> = before.iter().flat_map(|b| b.txs.iter().cloned()).collect();
        let offset = txs.len();
        txs.extend(bundle.txs.iter().cloned());
        let fates = blocksim::simulate(&self.anvil, env, public, &txs).await?;
        if let Some(reason) = self.verdict(bundle, &fates[offset..], env.timestamp) {
            return Ok(Some(reason));
        }
        if !self.all_acceptable(before, &fates[..offset], env.timestamp) {
            return Ok(Some("conflicts with a bundle accepted earlier for the block".to_string()));
        }
        Ok(None)
    }

    /// `accepted` judged again, in order, on top of `public`: the ones still acceptable, the
    /// others failed.
    async fn rejudge(
        &self,
        accepted: Vec<HeldBundle>,
        env: &BlockEnv,
        public: &[Bytes],
    ) -> Result<Vec<HeldBundle>> {
        let mut kept: Vec<HeldBundle> = Vec::with_capacity(accepted.len());
        for bundle in accepted {
            match self.judge(&kept, &bundle, env, public).await? {
                None => kept.push(bundle),
                Some(reason) => {
                    let reason = format!("after public transactions that arrived during the build: {reason}");
                    self.fail(&bundle, env.number, reason);
                }
            }
        }
        Ok(kept)
    }

    /// Builds the next block: simulates each due bundle (`eth_simulateV1`, nothing mined), lands
    /// the accepted ones, mines.
    async fn build_block(&self) -> Result<u64> {
        let _chain = self.chain.lock().await;
        let head = self.anvil.get_block_number().await.map_err(|e| AnvilError::rpc("eth_blockNumber", e))?;
        self.sealed.store(head, std::sync::atomic::Ordering::Release);
        let target = head + 1;
        let winner = self.winner(target);
        let mut due: Vec<HeldBundle> = Vec::new();
        for (i, book) in self.books.iter().enumerate() {
            let mut book = book.lock();
            let (mine, keep): (Vec<_>, Vec<_>) = book.pending.drain(..).partition(|b| b.target <= target);
            book.pending = keep;
            for b in mine {
                if b.target < target {
                    book.status.insert(b.hash, BundleStatus::Expired { target: b.target });
                } else if Some(i) == winner {
                    due.push(b);
                } else {
                    book.status.insert(b.hash, BundleStatus::Outbid { block: target });
                }
            }
        }
        let coinbase = winner.and_then(|w| self.builders.get(w)).map_or(self.public_coinbase, |b| b.coinbase);
        if !self.builders.is_empty() {
            self.anvil
                .raw_request::<_, Value>("anvil_setCoinbase".into(), (coinbase,))
                .await
                .map_err(|e| AnvilError::rpc("anvil_setCoinbase", e))?;
        }
        let env = BlockEnv::next(&self.anvil, coinbase).await?;
        if env.number != target {
            return Err(AnvilError::rpc(
                "relay",
                format!("the head moved under the builder: {} != {target}", env.number),
            ));
        }
        let mut accepted: Vec<HeldBundle> = Vec::new();
        // Bundles that arrive while the block is built are still considered, until it is sealed,
        // as a builder does: the queue is topped up from the winner's book whenever it empties.
        let mut queue: std::collections::VecDeque<HeldBundle> = due.into();
        let mut public: Option<Vec<Bytes>> = None;
        loop {
            if queue.is_empty()
                && let Some(w) = winner
            {
                let mut book = self.books[w].lock();
                let (late, keep): (Vec<_>, Vec<_>) = book.pending.drain(..).partition(|b| b.target == target);
                book.pending = keep;
                queue.extend(late);
            }
            let Some(bundle) = queue.pop_front() else { break };
            if let Some(reason) = self.tip_refusal(&bundle, env.base_fee) {
                self.fail(&bundle, target, reason);
                continue;
            }
            let public = match &public {
                Some(p) => p,
                None => public.insert(self.public_pending().await?),
            };
            match self.judge(&accepted, &bundle, &env, public).await? {
                None => accepted.push(bundle),
                Some(reason) => self.fail(&bundle, target, reason),
            }
        }
        let mut public = public.unwrap_or_default();
        if !accepted.is_empty()
            && let Some(gate) = &self.seal_gate
        {
            gate.judged.notify_one();
            gate.go.notified().await;
        }
        if !accepted.is_empty() {
            // Public transactions that arrived while the bundles were simulated are mined first:
            // the accepted bundles are judged again on top of them before anything is mined.
            let public_now = self.public_pending().await?;
            let sorted = |v: &[Bytes]| {
                let mut v = v.to_vec();
                v.sort_unstable();
                v
            };
            if sorted(&public_now) != sorted(&public) {
                public = public_now;
                accepted = self.rejudge(accepted, &env, &public).await?;
            }
        }
        if !accepted.is_empty() {
            let txs: Vec<Bytes> = accepted.iter().flat_map(|b| b.txs.iter().cloned()).collect();
            let snap = self.snapshot().await?;
            let (block, fates) = blocksim::mine(&self.anvil, &env, &txs).await?;
            if block == target && self.all_acceptable(&accepted, &fates, env.timestamp) {
                for b in &accepted {
                    let mut book = self.books[b.builder].lock();
                    book.status.insert(b.hash, BundleStatus::Landed { block: target });
                    if book.landed.len() == MAX_LANDED_KEPT {
                        book.landed.remove(0);
                    }
                    book.landed.push(LandedBundle {
                        hash: b.hash,
                        block: target,
                        tx_hashes: b.tx_hashes.clone(),
                    });
                }
                self.sealed.store(target, std::sync::atomic::Ordering::Release);
                return Ok(target);
            }
            // Something changed between the last simulation and the block (a public transaction
            // that arrived in between): the block is taken back and built without the bundles.
            // Only here does a reader get a glimpse of a block that is then reverted.
            tracing::warn!(block = target, "the block did not reproduce its simulation; reverted");
            self.restore(snap, &public, &txs).await?;
            for b in &accepted {
                self.fail(b, target, "block did not reproduce the simulation".to_string());
            }
        }
        blocksim::mine_pool(&self.anvil, &env).await?;
        self.sealed.store(target, std::sync::atomic::Ordering::Release);
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_zero_block_interval_is_an_error_not_a_dead_timer() {
        let options = RelayOptions { block_interval: Some(Duration::ZERO), ..Default::default() };
        // Refused before the node is contacted (nothing listens on port 1).
        let Err(e) = AnvilRelay::start("http://127.0.0.1:1", options).await else {
            panic!("a zero block interval was accepted");
        };
        assert!(e.to_string().contains("block_interval must be > 0"), "{e}");
    }
}
