//! Start-up recovery: open the journal, settle every rebalance a previous run left open against the
//! chain (see [`keel_journal::recover`]), journal how each was settled, and hand the
//! pipeline what it must resume — the bundles to keep resending and the portfolios that stay busy.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use keel_engine::PortfolioId;
use keel_engine::chain::ReceiptInfo;
use keel_journal::recover::{ChainFacts, DAY_MS, RestoredCharge, reconcile, restored_charges};
use keel_journal::{
    Journal, JournalConfig, JournalError, JournalRecord, Names, OpenRebalance, Resolution, SignedBundle,
    Store,
};

/// How many times receipts are read for a rebalance whose nonces moved (the node may lag).
const RECEIPT_ATTEMPTS: u32 = 10;

/// Why recovery failed. Keel does not start trading without it.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The journal could not be opened, read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The node could not be asked.
    #[error("reading the chain for recovery: {0}")]
    Chain(String),
    /// A rebalance that may still land belongs to a portfolio the config no longer has: Keel will
    /// not start blind to it.
    #[error(
        "rebalance {intent} of portfolio `{portfolio}` may still land, but `{portfolio}` is not in the config; \
         restore it to the config (or wait until block {deadline_block}, after which it can no longer land)"
    )]
    UnknownPortfolio {
        /// The intent.
        intent: u64,
        /// The portfolio's name in the journal.
        portfolio: String,
        /// Its deadline block.
        deadline_block: u64,
    },
}

/// A bundle to resend as it is.
#[derive(Debug, Clone)]
pub struct Adoption {
    /// Its newest signed version.
    pub bundle: SignedBundle,
    /// Hashes of all its versions.
    pub all_hashes: Vec<B256>,
    /// The account's confirmed nonce when it was adopted.
    pub chain_nonce: u64,
}

/// What recovery hands the pipeline.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The engine numbers new intents from here.
    pub next_intent: u64,
    /// Bundles that may still land: resent unchanged until their deadline.
    pub adopted: Vec<Adoption>,
    /// Every open rebalance and how it was settled.
    pub settled: Vec<(u64, Resolution)>,
    /// Rebalances of the last 24 h that landed or may still land: charged again to the daily
    /// notional caps.
    pub charges: Vec<RestoredCharge>,
}

impl Recovered {
    /// The portfolios that stay busy, with their intents.
    pub fn in_flight(&self) -> Vec<(PortfolioId, u64)> {
        self.adopted.iter().map(|a| (PortfolioId(a.bundle.portfolio), a.bundle.intent)).collect()
    }
}

/// Opens the journal, settles what a previous run left open, and starts the journal's writer.
/// Portfolios are matched by name, so a config whose portfolios were reordered between runs still
/// resumes the right one.
pub async fn recover(
    cfg: &JournalConfig,
    rpc_url: &str,
    names: Names,
) -> Result<(Journal, Recovered), RecoveryError> {
    let routes = RpcRoutes { default: rpc_url.to_string(), by_portfolio: Vec::new(), chains: Vec::new() };
    recover_routed(cfg, &routes, names).await
}

/// Which node answers for which portfolio's rebalances, when several chains run in one process:
/// nonces and receipts are per chain, so an open rebalance is settled against its portfolio's chain.
#[derive(Debug, Clone, Default)]
pub struct RpcRoutes {
    /// The node of portfolios not listed (and of portfolios no longer configured).
    pub default: String,
    /// (portfolio name, its chain's node JSON-RPC URL).
    pub by_portfolio: Vec<(String, String)>,
    /// Chain name of each portfolio by index, written to the journal with each rebalance decided
    /// (empty for a single-chain run).
    pub chains: Vec<String>,
}

impl RpcRoutes {
    /// The node for `portfolio`'s rebalances.
    pub fn url_for(&self, portfolio: &str) -> &str {
        self.by_portfolio.iter().find(|(p, _)| p == portfolio).map_or(self.default.as_str(), |(_, u)| u)
    }
}

/// [`recover`] over several chains: each open rebalance is reconciled with the node of its
/// portfolio's chain ([`RpcRoutes`]), and the journal names each new rebalance's chain.
pub async fn recover_routed(
    cfg: &JournalConfig,
    routes: &RpcRoutes,
    names: Names,
) -> Result<(Journal, Recovered), RecoveryError> {
    let mut store = Store::open(&cfg.path, cfg.sync)?;
    store.set_portfolio_chains(routes.chains.clone());
    let open = store.open_rebalances()?;
    let next_intent = store.max_intent()? + 1;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // Read before anything is settled; `restored_charges` drops what recovery finds unable to land.
    let charged = store.charged_since(now_ms - DAY_MS)?;
    let portfolio_names = names.portfolios.clone();
    let journal = Journal::start(store, names)?;
    let mut recovered = Recovered { next_intent, ..Default::default() };
    if open.is_empty() {
        recovered.charges = restored_charges(&charged, &[], &portfolio_names, now_ms);
        return Ok((journal, recovered));
    }
    let handle = journal.handle();
    for rebalance in &open {
        let rpc_url = routes.url_for(&rebalance.portfolio_name);
        let provider =
            keel_feeds::http::http_provider(rpc_url).map_err(|e| RecoveryError::Chain(e.to_string()))?;
        let facts = chain_facts_retried(&provider, rebalance).await?;
        let (resolution, detail) = reconcile(rebalance, &facts);
        tracing::warn!(
            intent = rebalance.intent,
            portfolio = rebalance.portfolio,
            resolution = resolution.as_str(),
            %detail,
            "recovered a rebalance left open by the previous run"
        );
        if let (Resolution::Adopted, Some(bundle)) = (resolution, &rebalance.latest) {
            let Some(index) = portfolio_names.iter().position(|n| *n == rebalance.portfolio_name) else {
                return Err(RecoveryError::UnknownPortfolio {
                    intent: rebalance.intent,
                    portfolio: rebalance.portfolio_name.clone(),
                    deadline_block: bundle.deadline_block,
                });
            };
            recovered.adopted.push(Adoption {
                bundle: SignedBundle { portfolio: index as u32, ..bundle.clone() },
                all_hashes: rebalance.all_hashes.clone(),
                chain_nonce: facts.account_nonce,
            });
        }
        recovered.settled.push((rebalance.intent, resolution));
        handle.append(JournalRecord::Recovered { intent: rebalance.intent, resolution, detail });
    }
    handle.flush(cfg.commit_timeout())?;
    recovered.charges = restored_charges(&charged, &recovered.settled, &portfolio_names, now_ms);
    Ok((journal, recovered))
}

/// Head first, then the nonce, then receipts: a landing between two reads then shows in the later
/// ones, so a rebalance is never judged expired or free while it has in fact landed.
/// Attempts at reading a rebalance's chain facts before recovery gives up (a node restarting with
/// Keel, or briefly overloaded, is waited for).
pub const CHAIN_READ_ATTEMPTS: u32 = 10;
/// Pause between two attempts.
pub const CHAIN_READ_RETRY: Duration = Duration::from_millis(500);

/// [`chain_facts`], retried on node errors ([`CHAIN_READ_ATTEMPTS`] × [`CHAIN_READ_RETRY`]).
async fn chain_facts_retried(
    provider: &impl Provider,
    rebalance: &OpenRebalance,
) -> Result<ChainFacts, RecoveryError> {
    let mut attempt = 1;
    loop {
        match chain_facts(provider, rebalance).await {
            Err(RecoveryError::Chain(e)) if attempt < CHAIN_READ_ATTEMPTS => {
                tracing::warn!(intent = rebalance.intent, attempt, error = %e, "recovery: node read failed; retrying");
                attempt += 1;
                tokio::time::sleep(CHAIN_READ_RETRY).await;
            }
            other => return other,
        }
    }
}

async fn chain_facts(
    provider: &impl Provider,
    rebalance: &OpenRebalance,
) -> Result<ChainFacts, RecoveryError> {
    let chain = |e: alloy::transports::TransportError| RecoveryError::Chain(e.to_string());
    if rebalance.latest.is_none() {
        return Ok(ChainFacts::default());
    }
    let head = provider.get_block_number().await.map_err(chain)?;
    let account_nonce = nonce_of(provider, rebalance.account).await?;
    let first = rebalance.latest.as_ref().and_then(|b| b.txs.first()).map_or(0, |t| t.nonce);
    let mut receipts = Vec::new();
    // Receipts can only exist once the nonce moved; then keep asking while the node indexes them.
    let attempts = if account_nonce > first { RECEIPT_ATTEMPTS } else { 1 };
    for attempt in 0..attempts {
        receipts.clear();
        let mut unsettled = false;
        for hash in &rebalance.all_hashes {
            if let Some(r) = provider.get_transaction_receipt(*hash).await.map_err(chain)? {
                let block = r.block_number.unwrap_or(0);
                // A receipt counts once its block has a successor and is still the chain's block
                // at that height: a block about to be replaced (a reorg) is waited out, not taken
                // for a landing.
                if attempt + 1 < attempts && !is_settled(provider, block, r.block_hash).await? {
                    unsettled = true;
                    continue;
                }
                receipts.push(ReceiptInfo { hash: *hash, block, gas_used: r.gas_used, success: r.status() });
            }
        }
        if (!receipts.is_empty() && !unsettled) || attempt + 1 == attempts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The nonce, read again once the receipts settled, is the settled chain's.
    let account_nonce =
        if account_nonce > first { nonce_of(provider, rebalance.account).await? } else { account_nonce };
    Ok(ChainFacts { account_nonce, head, receipts })
}

/// Whether block `number` has a successor and its hash is still `hash`.
async fn is_settled(
    provider: &impl Provider,
    number: u64,
    hash: Option<alloy::primitives::B256>,
) -> Result<bool, RecoveryError> {
    let chain = |e: alloy::transports::TransportError| RecoveryError::Chain(e.to_string());
    if provider.get_block_number().await.map_err(chain)? <= number {
        return Ok(false);
    }
    let canonical = provider.get_block_by_number(number.into()).await.map_err(chain)?;
    Ok(canonical.is_some_and(|b| Some(b.header.hash) == hash))
}

async fn nonce_of(provider: &impl Provider, account: Address) -> Result<u64, RecoveryError> {
    provider
        .get_transaction_count(account)
        .block_id(alloy::eips::BlockId::latest())
        .await
        .map_err(|e| RecoveryError::Chain(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::RpcRoutes;

    #[test]
    fn an_open_rebalance_is_read_from_its_portfolios_chain() {
        let routes = RpcRoutes {
            default: "http://l1".into(),
            by_portfolio: vec![("core".into(), "http://l1".into()), ("l2-book".into(), "http://l2".into())],
            chains: vec!["l1".into(), "l2".into()],
        };
        assert_eq!(routes.url_for("l2-book"), "http://l2");
        assert_eq!(routes.url_for("core"), "http://l1");
        // A portfolio no longer configured: the first chain's node (recovery then refuses to start
        // blind to it if it may still land).
        assert_eq!(routes.url_for("gone"), "http://l1");
    }

    /// A receipt's block counts once it has a successor and is still the chain's block at its
    /// height: on anvil, a block is replaced by reverting to a snapshot and mining another.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receipt_counts_once_its_block_has_a_successor_and_not_once_it_is_replaced() {
        use alloy::network::TransactionBuilder;
        use alloy::providers::Provider;
        use alloy::providers::ext::AnvilApi;

        let chain = keel_sim::anvil::AnvilChain::start().await.expect("anvil (run `make chain-deps`)");
        let p = chain.provider();
        let snap = chain.snapshot().await.unwrap();
        let tx = alloy::rpc::types::TransactionRequest::default()
            .with_to(chain.address(2))
            .with_value(alloy::primitives::U256::from(1u64));
        let receipt =
            chain.wallet_provider(1).send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
        let (number, hash) = (receipt.block_number.unwrap(), receipt.block_hash);
        assert!(!super::is_settled(p, number, hash).await.unwrap(), "the head has no successor yet");
        chain.mine().await.unwrap();
        assert!(super::is_settled(p, number, hash).await.unwrap(), "a successor settles it");
        // The receipt's block replaced by another at the same height (a later timestamp, no
        // transaction), with a successor.
        assert!(chain.revert(snap).await.unwrap());
        let later = p.get_block_by_number(number.into()).await.unwrap();
        assert!(later.is_none(), "reverted past the receipt's block");
        p.evm_mine(Some(alloy::rpc::types::anvil::MineOptions::Timestamp(Some(4_000_000_000))))
            .await
            .unwrap();
        chain.mine().await.unwrap();
        assert!(p.get_block_number().await.unwrap() > number);
        assert!(!super::is_settled(p, number, hash).await.unwrap(), "a replaced block is not settled");
    }
}
