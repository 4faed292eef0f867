//! Several chains in one process: what each chain brings (its node, submission path, pools,
//! accounts, token addresses), and how a [`PipelineSpec`] is split into one *lane* per chain.
//!
//! ```text
//!                       ┌─▶ Queue<RouterInput> ─▶ router thread (chain A: executor, relays)
//!  engine thread ───────┤        ▲ chain A's poller / node feed
//!  (one engine,         └─▶ Queue<RouterInput> ─▶ router thread (chain B: executor, private RPC)
//!   every portfolio)             ▲ chain B's poller / node feed
//! ```
//!
//! The engine stays one engine over every portfolio (its ids are global); each portfolio belongs
//! to one chain, and the engine thread sends its plans to that chain's router queue (a `Vec`
//! index, no lookup by name). Each lane has its own executor — pool state, nonces per account,
//! in-flight bundles, risk windows — its own heads, poller and node feed, and its own relays or
//! private RPC endpoint. Every lane's poller feeds balances and heads into the one engine queue;
//! the one exchange feed prices every chain's tokens.
//!
//! A lane's executor, poll targets and node feed are built by the single-chain code from a
//! [`PipelineSpec`] rewritten for that chain ([`Lane::spec`]): same tokens (with the chain's
//! addresses), same engine ids, the chain's pools, relays, accounts, router settings and node.
//! The single `[chain]` form is one lane holding every portfolio.

use alloy::primitives::Address;
use keel_feeds::node::MempoolConfig;
use keel_router::config::{PoolConfig, RelayConfig, RouterConfig};
use keel_router::exec::ExecStats;
use keel_router::signer::Signer;

use crate::pipeline::{PipelineError, PipelineSpec};

/// One chain of a multi-chain run (`[[chains]]`), resolved (keys loaded).
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// Name, unique; portfolios name it.
    pub name: String,
    /// Execution settings for this chain (its `chain_id` signs the transactions).
    pub router: RouterConfig,
    /// Its pools (a subset of the configured pools; each pool is on one chain).
    pub pools: Vec<PoolConfig>,
    /// Flashbots-style relays bundles go to (empty with `private_rpc`).
    pub relays: Vec<RelayConfig>,
    /// A chain without Flashbots: each bundle's transactions go here as raw transactions.
    pub private_rpc: Option<String>,
    /// Keys of the accounts on this chain (loaded for its chain id).
    pub accounts: Vec<Signer>,
    /// Token addresses on this chain that differ from `[[tokens]] address`, by symbol.
    pub token_addresses: Vec<(String, Address)>,
    /// Node JSON-RPC URL.
    pub rpc_url: String,
    /// Head poll interval, ms.
    pub poll_ms: u64,
    /// Node websocket URL (pool logs, heads, mempool), when set.
    pub node_ws_url: Option<String>,
    /// Mempool feed settings.
    pub mempool: MempoolConfig,
    /// Names of the portfolios on this chain.
    pub portfolios: Vec<String>,
}

/// One chain's share of the pipeline.
#[derive(Debug, Clone)]
pub struct Lane {
    /// Chain name (`chain` for the single `[chain]` form).
    pub name: String,
    /// The single-chain view of the spec for this chain.
    pub spec: PipelineSpec,
    /// Whether each portfolio (by engine id) is on this chain.
    pub on_chain: Vec<bool>,
    /// Raw-transaction submission endpoint, when the chain has no relays.
    pub private_rpc: Option<String>,
}

/// The name of the one lane of a single-chain run.
pub const SINGLE_CHAIN_NAME: &str = "chain";

/// Splits `spec` into one lane per chain (one lane with every portfolio when `chains` is empty).
/// Every portfolio must be on exactly one chain.
pub fn lanes(spec: &PipelineSpec, chains: &[ChainSpec]) -> Result<Vec<Lane>, PipelineError> {
    let n = spec.portfolios.len();
    if chains.is_empty() {
        return Ok(vec![Lane {
            name: SINGLE_CHAIN_NAME.to_string(),
            spec: spec.clone(),
            on_chain: vec![true; n],
            private_rpc: None,
        }]);
    }
    let mut owner: Vec<Option<usize>> = vec![None; n];
    let mut out = Vec::with_capacity(chains.len());
    for (ci, c) in chains.iter().enumerate() {
        let mut on_chain = vec![false; n];
        for name in &c.portfolios {
            let i = spec.portfolios.iter().position(|p| p.name == *name).ok_or_else(|| {
                PipelineError::Unknown {
                    field: format!("chains[{}].portfolios", c.name),
                    what: "portfolio",
                    name: name.clone(),
                }
            })?;
            if let Some(other) = owner[i] {
                return Err(PipelineError::Chains(format!(
                    "portfolios[{name}]: on chains `{}` and `{}`; a portfolio is on one chain",
                    chains[other].name, c.name
                )));
            }
            owner[i] = Some(ci);
            on_chain[i] = true;
        }
        let mut tokens = spec.tokens.clone();
        for (sym, addr) in &c.token_addresses {
            let t = tokens.iter_mut().find(|t| t.symbol == *sym).ok_or_else(|| PipelineError::Unknown {
                field: format!("chains[{}].tokens", c.name),
                what: "token",
                name: sym.clone(),
            })?;
            t.address = *addr;
        }
        let lane_spec = PipelineSpec {
            tokens,
            router: c.router.clone(),
            pools: c.pools.clone(),
            relays: c.relays.clone(),
            accounts: c.accounts.clone(),
            rpc_url: c.rpc_url.clone(),
            poll_ms: c.poll_ms,
            node_ws_url: c.node_ws_url.clone(),
            mempool: c.mempool.clone(),
            ..spec.clone()
        };
        out.push(Lane {
            name: c.name.clone(),
            spec: lane_spec,
            on_chain,
            private_rpc: c.private_rpc.clone(),
        });
    }
    if let Some(i) = owner.iter().position(Option::is_none) {
        return Err(PipelineError::Chains(format!(
            "portfolios[{}].chain: the portfolio is on no chain",
            spec.portfolios[i].name
        )));
    }
    Ok(out)
}

/// The lane of each portfolio, by engine id (what the engine thread routes plans by).
pub fn lane_of_portfolio(lanes: &[Lane], portfolios: usize) -> Vec<usize> {
    (0..portfolios).map(|i| lanes.iter().position(|l| l.on_chain[i]).unwrap_or(0)).collect()
}

/// What one chain did over a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainReport {
    /// Chain name.
    pub name: String,
    /// Chain id.
    pub chain_id: u64,
    /// `relays` or `private_rpc`.
    pub submission: &'static str,
    /// Its executor's counters.
    pub exec: ExecStats,
    /// Blocks its poller read.
    pub blocks: u64,
    /// Names of its portfolios.
    pub portfolios: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::config::{EngineConfig, PortfolioConfig, TokenConfig};

    fn test_spec() -> PipelineSpec {
        let tokens: Vec<TokenConfig> = serde_json::from_value(serde_json::json!([
            { "symbol": "WETH", "address": Address::repeat_byte(1), "decimals": 18, "price": { "symbol": "ETHUSDT" } },
            { "symbol": "USDC", "address": Address::repeat_byte(2), "decimals": 6, "price": { "fixed": 1.0 } },
        ]))
        .unwrap();
        let portfolio = |name: &str| -> PortfolioConfig {
            serde_json::from_value(serde_json::json!({
                "name": name,
                "account": Signer::dev(6).unwrap().address(),
                "targets": { "WETH": 0.5, "USDC": 0.5 },
                "triggers": [{ "type": "drift", "abs_band": 0.01 }],
            }))
            .unwrap()
        };
        PipelineSpec {
            engine: EngineConfig::default(),
            tokens,
            portfolios: vec![portfolio("a"), portfolio("b")],
            router: serde_json::from_value(serde_json::json!({ "chain_id": 31337 })).unwrap(),
            dexes: serde_json::from_value(serde_json::json!([{
                "name": "v2", "kind": "uniswap_v2", "router": Address::repeat_byte(3), "factory": Address::repeat_byte(4)
            }]))
            .unwrap(),
            pools: serde_json::from_value(serde_json::json!([{
                "name": "p", "dex": "v2", "address": Address::repeat_byte(5), "token0": "WETH", "token1": "USDC", "fee": 30
            }]))
            .unwrap(),
            relays: Vec::new(),
            reputation: Signer::dev(9).unwrap(),
            accounts: vec![Signer::dev(6).unwrap()],
            binance: keel_feeds::ws::BinanceFeedConfig::new("ws://127.0.0.1:1", ["ETHUSDT"]),
            rpc_url: "http://127.0.0.1:1".into(),
            poll_ms: 50,
            node_ws_url: None,
            mempool: MempoolConfig::default(),
            native_symbol: None,
            sample_every: std::time::Duration::from_millis(200),
            safety: crate::safety::SafetySpec::default(),
            journal: None,
            record: None,
            predictors: Vec::new(),
            registry: None,
        }
    }

    fn chain(name: &str, id: u64, portfolios: &[&str]) -> ChainSpec {
        let spec = test_spec();
        ChainSpec {
            name: name.into(),
            router: RouterConfig { chain_id: id, ..spec.router.clone() },
            pools: spec.pools.clone(),
            relays: Vec::new(),
            private_rpc: Some("http://127.0.0.1:1".into()),
            accounts: spec.accounts.clone(),
            token_addresses: vec![("USDC".into(), Address::repeat_byte(9))],
            rpc_url: format!("http://127.0.0.1:{id}"),
            poll_ms: 10,
            node_ws_url: None,
            mempool: MempoolConfig::default(),
            portfolios: portfolios.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn each_portfolio_goes_to_its_chain_and_the_chain_sees_its_own_addresses() {
        let spec = test_spec();
        let names: Vec<&str> = spec.portfolios.iter().map(|p| p.name.as_str()).collect();
        assert!(names.len() >= 2, "the fixture has two portfolios");
        let ls = lanes(&spec, &[chain("l1", 1337, &names[..1]), chain("l2", 31337, &names[1..])]).unwrap();
        assert_eq!(ls.len(), 2);
        assert_eq!(lane_of_portfolio(&ls, names.len())[..2], [0, 1]);
        assert_eq!(ls[1].spec.router.chain_id, 31337);
        assert_eq!(ls[1].spec.rpc_url, "http://127.0.0.1:31337");
        let usdc = ls[0].spec.tokens.iter().find(|t| t.symbol == "USDC").unwrap();
        assert_eq!(usdc.address, Address::repeat_byte(9));
        // The single-chain form: one lane with every portfolio.
        let one = lanes(&spec, &[]).unwrap();
        assert_eq!((one.len(), one[0].on_chain.iter().all(|b| *b)), (1, true));
    }

    #[test]
    fn a_portfolio_on_no_chain_or_two_chains_or_an_unknown_one_is_refused() {
        let spec = test_spec();
        let names: Vec<&str> = spec.portfolios.iter().map(|p| p.name.as_str()).collect();
        let e = lanes(&spec, &[chain("l1", 1, &names[..1])]).unwrap_err().to_string();
        assert!(e.contains("on no chain"), "{e}");
        let e = lanes(&spec, &[chain("l1", 1, &names), chain("l2", 2, &names[..1])]).unwrap_err().to_string();
        assert!(e.contains("on chains `l1` and `l2`"), "{e}");
        let e = lanes(&spec, &[chain("l1", 1, &["nope"])]).unwrap_err().to_string();
        assert!(e.contains("chains[l1].portfolios: unknown portfolio `nope`"), "{e}");
    }

    #[test]
    fn the_chains_executors_share_one_daily_total_and_recovery_charges_it_from_every_chain() {
        use keel_engine::PortfolioId;
        use keel_journal::recover::RestoredCharge;
        let spec = test_spec();
        let names: Vec<&str> = spec.portfolios.iter().map(|p| p.name.as_str()).collect();
        let ls = lanes(&spec, &[chain("l1", 1337, &names[..1]), chain("l2", 31337, &names[1..])]).unwrap();
        let mut execs = crate::pipeline::lane_executors(&ls).unwrap();
        assert_eq!(execs.len(), 2);
        assert!(std::sync::Arc::ptr_eq(execs[0].daily_total(), execs[1].daily_total()));
        let charge = |portfolio: Option<usize>, intent: u64, notional: f64| RestoredCharge {
            portfolio: portfolio.map(|p| PortfolioId(p as u32)),
            intent,
            notional,
            age_ms: 3_600_000,
        };
        // One rebalance of the previous run on each chain, and one of a portfolio since removed.
        let charges = [charge(Some(0), 1, 1_000.0), charge(Some(1), 2, 2_500.0), charge(None, 3, 500.0)];
        let lane_of = lane_of_portfolio(&ls, names.len());
        crate::pipeline::restore_charges(&mut execs, &lane_of, &charges, 10_000_000_000_000);
        // Every chain's executor sees all three towards the total cap.
        assert_eq!(execs[0].daily_total().used(), 4_000.0);
        assert_eq!(execs[1].daily_total().used(), 4_000.0);
        // A single-chain run: one executor with a window of its own.
        let one = crate::pipeline::lane_executors(&lanes(&spec, &[]).unwrap()).unwrap();
        assert_eq!((one.len(), one[0].daily_total().used()), (1, 0.0));
    }
}
