//! `[[chains]]`: several chains in one `keel run`. Each entry names its node, its submission path
//! (Flashbots-style `relays`, by name from `[[relays]]`, or a `private_rpc` endpoint that takes raw
//! transactions), its pools (by name from `[[pools]]`; a pool is on one chain), its accounts and the
//! token addresses that differ from `[[tokens]]`; each portfolio names its chain (`chain = "…"`).
//! The single `[chain]` form stays: it is one chain holding every portfolio.
//!
//! Validation here checks the chains against each other and against the rest of the file; the
//! runtime splits the pipeline into one lane per chain (`keel_runtime::chains`).

use std::collections::BTreeMap;

use alloy::primitives::Address;
use eyre::eyre;
use keel_router::signer::KeySource;
use keel_runtime::chains::ChainSpec;
use serde::{Deserialize, Deserializer};

use crate::config::{CHAIN_POLL_MS_RANGE, DEFAULT_CHAIN_POLL_MS, KeelConfig};

fn default_chain_poll_ms() -> u64 {
    DEFAULT_CHAIN_POLL_MS
}

/// One `[[chains]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainEntry {
    /// Name, unique; portfolios name it in `chain`.
    pub(crate) name: String,
    /// Chain id its transactions are signed for (unique among the chains).
    pub(crate) chain_id: u64,
    /// JSON-RPC HTTP URL of its node.
    pub(crate) rpc_url: String,
    /// Websocket URL of its node (pool logs, heads, mempool); required for its `uniswap_v3` pools.
    #[serde(default)]
    pub(crate) ws_url: Option<String>,
    /// Head poll interval, milliseconds.
    #[serde(default = "default_chain_poll_ms")]
    pub(crate) poll_ms: u64,
    /// `[chains.mempool]`, as `[chain.mempool]`.
    #[serde(default)]
    pub(crate) mempool: keel_feeds::node::MempoolConfig,
    /// Names of the `[[relays]]` its bundles go to. Exclusive with `private_rpc`.
    #[serde(default)]
    pub(crate) relays: Vec<String>,
    /// A chain without Flashbots (a rollup): each rebalance's signed transactions are sent here with
    /// `eth_sendRawTransaction`, one per leg in order. Exclusive with `relays`.
    #[serde(default)]
    pub(crate) private_rpc: Option<String>,
    /// Names of the `[[pools]]` on this chain.
    pub(crate) pools: Vec<String>,
    /// Keys of its accounts (default: `[signers] accounts`), loaded for its chain id.
    #[serde(default)]
    pub(crate) accounts: Option<Vec<KeySource>>,
    /// Token addresses on this chain that differ from `[[tokens]] address`, by symbol.
    #[serde(default)]
    pub(crate) tokens: BTreeMap<String, Address>,
}

/// `[[portfolios]]` read for their engine settings: the `chain` key (which the engine does not
/// know) is taken out first and read separately ([`portfolio_chains`]).
pub(crate) fn portfolios_without_chain<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<keel_engine::config::PortfolioConfig>, D::Error> {
    let tables: Vec<toml::Table> = Vec::deserialize(d)?;
    tables
        .into_iter()
        .map(|mut t| {
            t.remove("chain");
            keel_engine::config::PortfolioConfig::deserialize(toml::Value::Table(t))
                .map_err(serde::de::Error::custom)
        })
        .collect()
}

/// Each portfolio's `chain`, in file order (`None` where unset). Read after the strict parse, so
/// the text is known to be valid TOML with a `portfolios` array.
pub(crate) fn portfolio_chains(text: &str) -> eyre::Result<Vec<Option<String>>> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        portfolios: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        chain: Option<toml::Value>,
    }
    let f: File = toml::from_str(text).map_err(|e| eyre!("portfolios: {}", e.message()))?;
    f.portfolios
        .into_iter()
        .map(|e| match e.chain {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(eyre!("portfolios[].chain: must be a chain name (a string)")),
        })
        .collect()
}

fn http(field: String, url: &str) -> eyre::Result<()> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(eyre!("{field}: must be an http(s) URL"))
    }
}

/// Checks `[[chains]]` and each portfolio's `chain` against the rest of the file.
pub(crate) fn validate(cfg: &KeelConfig) -> eyre::Result<()> {
    let chains = &cfg.chains;
    if chains.is_empty() {
        for (p, c) in cfg.portfolios.iter().zip(&cfg.portfolio_chains) {
            if let Some(c) = c {
                return Err(eyre!(
                    "portfolios[{}].chain: names chain `{c}` but no [[chains]] is configured",
                    p.name
                ));
            }
        }
        return Ok(());
    }
    if cfg.chain.is_some() {
        return Err(eyre!("chain: use either one [chain] or several [[chains]], not both"));
    }
    for (i, c) in chains.iter().enumerate() {
        let field = |f: &str| format!("chains[{}].{f}", c.name);
        if c.name.trim().is_empty() {
            return Err(eyre!("chains[{i}].name: must not be empty"));
        }
        if let Some(other) = chains[..i].iter().find(|o| o.name == c.name) {
            return Err(eyre!("chains[{}].name: duplicate chain name", other.name));
        }
        if let Some(other) = chains[..i].iter().find(|o| o.chain_id == c.chain_id) {
            return Err(eyre!(
                "{}: {} is already the chain id of chain `{}`",
                field("chain_id"),
                c.chain_id,
                other.name
            ));
        }
        http(field("rpc_url"), &c.rpc_url)?;
        if let Some(ws) = &c.ws_url
            && !(ws.starts_with("ws://") || ws.starts_with("wss://"))
        {
            return Err(eyre!("{}: must be a ws(s) URL", field("ws_url")));
        }
        if !CHAIN_POLL_MS_RANGE.contains(&c.poll_ms) {
            return Err(eyre!("{}: {} is outside {CHAIN_POLL_MS_RANGE:?}", field("poll_ms"), c.poll_ms));
        }
        c.mempool.validate().map_err(|e| eyre!("chains[{}]: {e}", c.name))?;
        match (&c.private_rpc, c.relays.is_empty()) {
            (Some(_), false) => {
                return Err(eyre!(
                    "chains[{}]: set either relays or private_rpc, not both (a chain without Flashbots uses private_rpc)",
                    c.name
                ));
            }
            (None, true) => {
                return Err(eyre!(
                    "chains[{}]: needs relays (names of [[relays]]) or private_rpc (a chain without Flashbots)",
                    c.name
                ));
            }
            (Some(url), true) => http(field("private_rpc"), url)?,
            (None, false) => {}
        }
        for r in &c.relays {
            if !cfg.relays.iter().any(|x| x.name == *r) {
                return Err(eyre!("{}: unknown relay `{r}` (no [[relays]] has that name)", field("relays")));
            }
        }
        for sym in c.tokens.keys() {
            if !cfg.tokens.iter().any(|t| t.symbol == *sym) {
                return Err(eyre!("{}: unknown token `{sym}`", field("tokens")));
            }
        }
        for p in &c.pools {
            if !cfg.pools.iter().any(|x| x.name == *p) {
                return Err(eyre!("{}: unknown pool `{p}` (no [[pools]] has that name)", field("pools")));
            }
        }
    }
    if !chains.iter().any(|c| c.chain_id == cfg.router.chain_id) {
        return Err(eyre!(
            "router.chain_id: {} is not the chain id of any [[chains]] (each chain signs with its own chain_id)",
            cfg.router.chain_id
        ));
    }
    for pool in &cfg.pools {
        let on: Vec<&str> =
            chains.iter().filter(|c| c.pools.contains(&pool.name)).map(|c| c.name.as_str()).collect();
        match on.as_slice() {
            [] => return Err(eyre!("pools[{}]: on no chain (list it in one [[chains]] pools)", pool.name)),
            [_] => {}
            [a, b, ..] => {
                return Err(eyre!(
                    "pools[{}]: listed on chains `{a}` and `{b}`; a pool is on one chain (give each chain its own [[pools]] entry)",
                    pool.name
                ));
            }
        }
    }
    for (p, c) in cfg.portfolios.iter().zip(&cfg.portfolio_chains) {
        let Some(name) = c else {
            return Err(eyre!("portfolios[{}].chain: required when [[chains]] are configured", p.name));
        };
        let Some(chain) = chains.iter().find(|c| c.name == *name) else {
            return Err(eyre!("portfolios[{}].chain: unknown chain `{name}`", p.name));
        };
        let accounts = account_addresses(cfg, chain)?;
        if !accounts.contains(&p.account) {
            return Err(eyre!(
                "portfolios[{}].account: {} is not the address of any key of chain `{name}`",
                p.name,
                p.account
            ));
        }
        // Every pair the portfolio may trade needs a pool on its own chain.
        let syms: Vec<&String> = p.targets.keys().collect();
        for (i, a) in syms.iter().enumerate() {
            for b in &syms[i + 1..] {
                let trades = |pool: &&keel_router::config::PoolConfig| {
                    (&pool.token0 == *a && &pool.token1 == *b) || (&pool.token0 == *b && &pool.token1 == *a)
                };
                let here = cfg.pools.iter().filter(trades).any(|pool| chain.pools.contains(&pool.name));
                if here {
                    continue;
                }
                let elsewhere = cfg.pools.iter().filter(trades).find_map(|pool| {
                    chains.iter().find(|c| c.pools.contains(&pool.name)).map(|c| (&pool.name, &c.name))
                });
                return Err(match elsewhere {
                    Some((pool, other)) => eyre!(
                        "portfolios[{}].targets: no pool on chain `{name}` trades {a}/{b} (pool `{pool}` is on chain `{other}`)",
                        p.name
                    ),
                    None => eyre!("portfolios[{}].targets: no pool on chain `{name}` trades {a}/{b}", p.name),
                });
            }
        }
    }
    Ok(())
}

/// The key sources of `chain`'s accounts.
fn account_sources<'a>(cfg: &'a KeelConfig, chain: &'a ChainEntry) -> &'a [KeySource] {
    chain.accounts.as_deref().unwrap_or(&cfg.signers.accounts)
}

/// Addresses of `chain`'s account keys (loaded for its chain id).
fn account_addresses(cfg: &KeelConfig, chain: &ChainEntry) -> eyre::Result<Vec<Address>> {
    account_sources(cfg, chain)
        .iter()
        .enumerate()
        .map(|(i, k)| {
            k.load(chain.chain_id)
                .map(|s| s.address())
                .map_err(|e| eyre!("chains[{}].accounts[{i}]: {e}", chain.name))
        })
        .collect()
}

/// Checks what `keel run` needs of each chain: V3 pools need the chain's websocket, Balancer pools
/// the poller (no websocket).
pub(crate) fn check_live(cfg: &KeelConfig) -> eyre::Result<()> {
    use keel_router::config::DexKind;
    for c in &cfg.chains {
        for name in &c.pools {
            let Some(pool) = cfg.pools.iter().find(|p| p.name == *name) else { continue };
            let kind = cfg.dexes.iter().find(|d| d.name == pool.dex).map(|d| d.kind);
            if kind == Some(DexKind::UniswapV3) && c.ws_url.is_none() {
                return Err(eyre!(
                    "pools[{name}]: uniswap_v3 pools need the websocket node feed: set chains[{}].ws_url",
                    c.name
                ));
            }
        }
    }
    Ok(())
}

/// The runtime's view of each chain (keys loaded for each chain's id).
pub(crate) fn chain_specs(cfg: &KeelConfig) -> eyre::Result<Vec<ChainSpec>> {
    cfg.chains
        .iter()
        .map(|c| {
            let accounts = account_sources(cfg, c)
                .iter()
                .enumerate()
                .map(|(i, k)| k.load(c.chain_id).map_err(|e| eyre!("chains[{}].accounts[{i}]: {e}", c.name)))
                .collect::<eyre::Result<Vec<_>>>()?;
            Ok(ChainSpec {
                name: c.name.clone(),
                router: keel_router::config::RouterConfig { chain_id: c.chain_id, ..cfg.router.clone() },
                pools: cfg.pools.iter().filter(|p| c.pools.contains(&p.name)).cloned().collect(),
                relays: cfg.relays.iter().filter(|r| c.relays.contains(&r.name)).cloned().collect(),
                private_rpc: c.private_rpc.clone(),
                accounts,
                token_addresses: c.tokens.iter().map(|(s, a)| (s.clone(), *a)).collect(),
                rpc_url: c.rpc_url.clone(),
                poll_ms: c.poll_ms,
                node_ws_url: c.ws_url.clone(),
                mempool: c.mempool.clone(),
                portfolios: cfg
                    .portfolios
                    .iter()
                    .zip(&cfg.portfolio_chains)
                    .filter(|(_, pc)| pc.as_deref() == Some(c.name.as_str()))
                    .map(|(p, _)| p.name.clone())
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::{KeelConfig, Purpose};

    const L2_SECTIONS: &str = r#"
[[portfolios]]
name = "second"
account = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"
targets = { TKA = 0.5, TKB = 0.5 }
triggers = [{ type = "drift", abs_band = 0.01 }]
chain = "l2"

[[pools]]
name = "l2-v2-tka-tkb"
dex = "uniswap-v2"
address = "0x7b8960CC288Dc7b6CcF5ca620264C1E6d3438C8a"
token0 = "TKB"
token1 = "TKA"
fee = 30

[[chains]]
name = "l1"
chain_id = 31337
rpc_url = "http://127.0.0.1:8545"
ws_url = "ws://127.0.0.1:8545"
relays = ["anvil-relay"]
pools = ["v2-tka-tkb", "v3-tka-tkb", "v2-weth-tka", "v4-tka-tkb", "bal-tka-tkb", "curve-tka-tkb"]

[[chains]]
name = "l2"
chain_id = 1337
rpc_url = "http://127.0.0.1:8546"
private_rpc = "http://127.0.0.1:8546"
accounts = ["dev:7"]
pools = ["l2-v2-tka-tkb"]
"#;

    /// configs/anvil.toml with its `[chain]` replaced by two `[[chains]]` and a second portfolio.
    fn two_chains() -> String {
        let base =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil.toml")).unwrap();
        let single =
            "[chain]\nrpc_url = \"http://127.0.0.1:8545\"\nws_url = \"ws://127.0.0.1:8545\"\npoll_ms = 50\n";
        assert!(
            base.contains(single) && base.trim_end().ends_with("abs_band = 0.01 }]"),
            "anvil.toml changed shape"
        );
        format!("{}\nchain = \"l1\"\n{L2_SECTIONS}", base.replace(single, "").trim_end())
    }

    fn err(text: &str) -> String {
        match KeelConfig::parse(text).and_then(|c| c.check_purpose(Purpose::Live).map(|()| c)) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn two_chains_parse_and_each_gets_its_pools_portfolios_and_submission_path() {
        let cfg = KeelConfig::parse(&two_chains()).unwrap();
        cfg.check_purpose(Purpose::Live).unwrap();
        let specs = super::chain_specs(&cfg).unwrap();
        let l1 = &specs[0];
        assert_eq!(
            (l1.name.as_str(), l1.router.chain_id, l1.portfolios.as_slice()),
            ("l1", 31337, &["devnet".to_string()][..])
        );
        assert_eq!((l1.pools.len(), l1.relays.len(), l1.private_rpc.is_none()), (6, 1, true));
        let l2 = &specs[1];
        assert_eq!((l2.router.chain_id, l2.portfolios.as_slice()), (1337, &["second".to_string()][..]));
        assert_eq!(l2.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["l2-v2-tka-tkb"]);
        assert!(l2.relays.is_empty() && l2.private_rpc.as_deref() == Some("http://127.0.0.1:8546"));
        // Each chain's keys, loaded for its chain id.
        assert_eq!(l2.accounts[0].address(), keel_router::signer::Signer::dev(7).unwrap().address());
        assert_eq!(l1.accounts[0].address(), keel_router::signer::Signer::dev(6).unwrap().address());
    }

    #[test]
    fn chain_names_and_ids_must_be_unique() {
        let text = two_chains();
        let e = err(&text.replacen("chain_id = 1337", "chain_id = 31337", 1));
        assert!(e.contains("chains[l2].chain_id: 31337 is already the chain id of chain `l1`"), "{e}");
        let e = err(&text.replacen("name = \"l2\"", "name = \"l1\"", 1));
        assert!(e.contains("chains[l1].name: duplicate chain name"), "{e}");
    }

    #[test]
    fn a_portfolio_must_name_a_configured_chain() {
        let text = two_chains();
        let e = err(&text.replacen("chain = \"l2\"", "chain = \"l3\"", 1));
        assert!(e.contains("portfolios[second].chain: unknown chain `l3`"), "{e}");
        let e = err(&text.replacen("chain = \"l2\"", "", 1));
        assert!(e.contains("portfolios[second].chain: required when [[chains]] are configured"), "{e}");
        let anvil =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil.toml")).unwrap();
        let e = err(&format!("{}\nchain = \"l1\"\n", anvil.trim_end()));
        assert!(
            e.contains("portfolios[devnet].chain: names chain `l1` but no [[chains]] is configured"),
            "{e}"
        );
    }

    #[test]
    fn a_portfolio_cannot_trade_through_a_pool_of_another_chain() {
        // `second` on l2 holds TKA and WETH: the only TKA/WETH pool is on l1.
        let text = two_chains().replacen(
            "targets = { TKA = 0.5, TKB = 0.5 }\ntriggers = [{ type = \"drift\", abs_band = 0.01 }]\nchain = \"l2\"",
            "targets = { TKA = 0.5, WETH = 0.5 }\ntriggers = [{ type = \"drift\", abs_band = 0.01 }]\nchain = \"l2\"",
            1,
        );
        let e = err(&text);
        assert!(
            e.contains("portfolios[second].targets: no pool on chain `l2` trades TKA/WETH (pool `v2-weth-tka` is on chain `l1`)"),
            "{e}"
        );
        let e = err(&two_chains().replacen(
            "pools = [\"l2-v2-tka-tkb\"]",
            "pools = [\"l2-v2-tka-tkb\", \"v2-tka-tkb\"]",
            1,
        ));
        assert!(e.contains("pools[v2-tka-tkb]: listed on chains `l1` and `l2`"), "{e}");
        let e = err(&two_chains().replacen("pools = [\"l2-v2-tka-tkb\"]", "pools = [\"nope\"]", 1));
        assert!(e.contains("chains[l2].pools: unknown pool `nope`"), "{e}");
    }

    #[test]
    fn each_chain_has_one_submission_path_and_one_form_of_chain_config() {
        let text = two_chains();
        let e = err(&text.replacen("private_rpc = \"http://127.0.0.1:8546\"\n", "", 1));
        assert!(e.contains("chains[l2]: needs relays (names of [[relays]]) or private_rpc"), "{e}");
        let e = err(&text.replacen("private_rpc =", "relays = [\"anvil-relay\"]\nprivate_rpc =", 1));
        assert!(e.contains("chains[l2]: set either relays or private_rpc, not both"), "{e}");
        let e = err(&text.replacen("relays = [\"anvil-relay\"]", "relays = [\"other\"]", 1));
        assert!(e.contains("chains[l1].relays: unknown relay `other`"), "{e}");
        let e = err(&text.replacen("private_rpc = \"http://", "private_rpc = \"ws://", 1));
        assert!(e.contains("chains[l2].private_rpc: must be an http(s) URL"), "{e}");
        let e = err(&format!("{text}\n[chain]\nrpc_url = \"http://127.0.0.1:8545\"\n"));
        assert!(e.contains("use either one [chain] or several [[chains]], not both"), "{e}");
        // A V3 pool on a chain without a websocket node feed.
        let e = err(&text
            .replacen(
                "pools = [\"v2-tka-tkb\", \"v3-tka-tkb\", \"v2-weth-tka\", \"v4-tka-tkb\", \"bal-tka-tkb\", \"curve-tka-tkb\"]",
                "pools = [\"v2-tka-tkb\", \"v2-weth-tka\", \"v4-tka-tkb\", \"bal-tka-tkb\", \"curve-tka-tkb\"]",
                1,
            )
            .replacen("pools = [\"l2-v2-tka-tkb\"]", "pools = [\"l2-v2-tka-tkb\", \"v3-tka-tkb\"]", 1));
        assert!(
            e.contains(
                "pools[v3-tka-tkb]: uniswap_v3 pools need the websocket node feed: set chains[l2].ws_url"
            ),
            "{e}"
        );
    }
}
