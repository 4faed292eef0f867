//! Keel's whole configuration file: each crate owns its section's types; this module composes them,
//! resolves references between sections, and validates the file naming the field and the problem.

use std::path::Path;

use alloy::primitives::Address;
use eyre::{Context, eyre};
use keel_engine::config::{EngineConfig, PortfolioConfig, TokenConfig};
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::config::{DexConfig, PoolConfig, RelayConfig, RouterConfig};
use keel_router::signer::KeySource;
use keel_sim::config::SimConfig;
use serde::Deserialize;

/// Default interval between chain head polls, milliseconds.
pub(crate) const DEFAULT_CHAIN_POLL_MS: u64 = keel_feeds::poll::DEFAULT_POLL_MS;

/// The TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeelConfig {
    /// Engine settings.
    #[serde(default)]
    pub(crate) engine: EngineConfig,
    /// Market-data feeds. Filled in by `keel demo` from the simulated market.
    #[serde(default)]
    pub(crate) feeds: FeedsConfig,
    /// The Ethereum node. Filled in by `keel demo`.
    #[serde(default)]
    pub(crate) chain: Option<ChainConfig>,
    /// Several chains in one process (instead of `[chain]`; see [`crate::chains`]).
    #[serde(default)]
    pub(crate) chains: Vec<crate::chains::ChainEntry>,
    /// Execution settings.
    pub(crate) router: RouterConfig,
    /// Keys.
    pub(crate) signers: SignersConfig,
    /// Bundle relays. Filled in by `keel demo`.
    #[serde(default)]
    pub(crate) relays: Vec<RelayConfig>,
    /// Tokens.
    pub(crate) tokens: Vec<TokenConfig>,
    /// DEX deployments.
    pub(crate) dexes: Vec<DexConfig>,
    /// Pools.
    pub(crate) pools: Vec<PoolConfig>,
    /// Portfolios (their `chain` key is read into [`KeelConfig::portfolio_chains`]).
    #[serde(deserialize_with = "crate::chains::portfolios_without_chain")]
    pub(crate) portfolios: Vec<PortfolioConfig>,
    /// Each portfolio's `chain` (a `[[chains]]` name), in portfolio order.
    #[serde(skip)]
    pub(crate) portfolio_chains: Vec<Option<String>>,
    /// The simulated market (`keel demo` only).
    #[serde(default)]
    pub(crate) sim: Option<SimConfig>,
    /// Kill switch and dry run.
    #[serde(default)]
    pub(crate) safety: SafetyConfig,
    /// The durable journal of decisions and actions, and crash recovery from it.
    #[serde(default)]
    pub(crate) journal: Option<keel_journal::JournalConfig>,
    /// Record every input of the run for `keel replay` (`keel record` sets it).
    #[serde(default)]
    pub(crate) record: Option<RecordConfig>,
    /// Predictor sockets for portfolios whose targets are `external` (docs/predictor.md).
    #[serde(default)]
    pub(crate) predictors: Vec<keel_runtime::predictor::PredictorConfig>,
    /// The on-chain parameter registry read every block (targets, bands, pause; README).
    #[serde(default)]
    pub(crate) registry: Option<RegistryConfig>,
    /// The file's text as loaded (stored in a recording's header).
    #[serde(skip)]
    pub(crate) source_toml: String,
}

/// Bounds of `[chain] poll_ms`: 1 ms to a minute.
pub(crate) const CHAIN_POLL_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=60_000;
/// Bounds of `[journal] commit_timeout_ms`: 1 ms to ten minutes.
pub(crate) const JOURNAL_COMMIT_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 1..=600_000;

/// Largest `[record] max_file_mb`.
pub(crate) const MAX_RECORD_FILE_MB: u64 = 64 * 1024;

fn default_record_file_mb() -> u64 {
    keel_runtime::record::DEFAULT_MAX_FILE_MB
}

/// `[record]`: where a run's inputs are recorded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordConfig {
    /// Directory of the recording (created if missing; must not already hold one).
    pub(crate) dir: std::path::PathBuf,
    /// Size at which a file is closed and the next one started, MiB (1 ..= 65536; default
    /// [`keel_runtime::record::DEFAULT_MAX_FILE_MB`]).
    #[serde(default = "default_record_file_mb")]
    pub(crate) max_file_mb: u64,
}

/// `[registry]`: Keel's on-chain parameter registry (`sim/contracts/KeelParams.sol`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryConfig {
    /// The `KeelParams` contract's address.
    pub(crate) address: Address,
}

/// `[safety]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SafetyConfig {
    /// Do everything but submit: bundles are built, signed, logged and counted, never posted.
    #[serde(default)]
    pub(crate) dry_run: bool,
    /// Stop new rebalances at once when this file exists.
    #[serde(default)]
    pub(crate) kill_file: Option<std::path::PathBuf>,
    /// Serve `POST /kill`, `POST /resume`, `GET /status` on this port of 127.0.0.1.
    #[serde(default)]
    pub(crate) control_port: Option<u16>,
    /// Where the control endpoint's bearer token is: `env:VAR` or `file:PATH` (required with
    /// `control_port`; resolved when the config is loaded, never logged).
    #[serde(default)]
    pub(crate) control_token: Option<String>,
    /// `[safety.watch]`: kill switches that watch the chain.
    #[serde(default)]
    pub(crate) watch: keel_runtime::watch::WatchSpec,
}

/// `[feeds]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedsConfig {
    /// Binance market streams (spot or USD-M futures, by URL).
    #[serde(default)]
    pub(crate) binance: Option<BinanceFeedConfig>,
}

fn default_chain_poll_ms() -> u64 {
    DEFAULT_CHAIN_POLL_MS
}

/// `[chain]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainConfig {
    /// JSON-RPC HTTP URL of the node.
    pub(crate) rpc_url: String,
    /// Head poll interval, milliseconds.
    #[serde(default = "default_chain_poll_ms")]
    pub(crate) poll_ms: u64,
    /// Websocket URL of the node: pool state (V2 and V3) from `eth_subscribe` logs. Required for
    /// `uniswap_v3` pools; without it V2 reserves are polled each block.
    #[serde(default)]
    pub(crate) ws_url: Option<String>,
    /// `[chain.mempool]`: routers decoded beyond the DEXes' own, pending age/count bounds, backoff.
    #[serde(default)]
    pub(crate) mempool: keel_feeds::node::MempoolConfig,
}

/// `[signers]`: key references only (`env:VAR`, `keystore:PATH[?password_env=VAR]` or `dev:N`; see
/// [`KeySource`]), never keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignersConfig {
    /// The key that signs `X-Flashbots-Signature` (reputation; holds no funds).
    pub(crate) reputation_key: KeySource,
    /// Keys of the portfolio accounts; each portfolio's `account` must be one of them.
    pub(crate) accounts: Vec<KeySource>,
}

/// `line L, column C (field): message` for a TOML error, naming the field from the table header and
/// the key left of `=` — never echoing the value, which may be a pasted secret.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end();
    let Some(span) = e.span() else { return msg.to_string() };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty() && !k.starts_with('['));
    let table = text
        .lines()
        .take(line_no)
        .map(str::trim)
        .filter(|l| l.starts_with('['))
        .last()
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    let field = match (table, key) {
        (Some(t), Some(k)) => format!(" ({t}.{k})"),
        (None, Some(k)) => format!(" ({k})"),
        (Some(t), None) => format!(" ({t})"),
        (None, None) => String::new(),
    };
    format!("line {line_no}, column {column}{field}: {msg}")
}

/// What the file is for: a demo needs `[sim]`; a live run needs endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `keel demo`.
    Demo,
    /// `keel run`.
    Live,
}

impl KeelConfig {
    /// Reads and validates a file.
    pub(crate) fn load(path: &Path) -> eyre::Result<Self> {
        let text = std::fs::read_to_string(path).wrap_err_with(|| format!("reading {}", path.display()))?;
        Self::parse(&text).wrap_err_with(|| format!("in {}", path.display()))
    }

    /// Parses and validates TOML text.
    pub(crate) fn parse(text: &str) -> eyre::Result<Self> {
        let mut cfg: KeelConfig =
            toml::from_str(text).map_err(|e| eyre!("{}", describe_toml_error(text, &e)))?;
        cfg.source_toml = text.to_owned();
        cfg.portfolio_chains = crate::chains::portfolio_chains(text)?;
        cfg.validate_sections()?;
        Ok(cfg)
    }

    /// Checks a config changed in code (a backtest's sweep point) as a file would be checked.
    pub(crate) fn revalidate(self) -> eyre::Result<Self> {
        self.validate_sections()?;
        Ok(self)
    }

    fn validate_sections(&self) -> eyre::Result<()> {
        if let Some(r) = &self.record {
            if r.dir.as_os_str().is_empty() {
                return Err(eyre!("record.dir: must not be empty"));
            }
            if !(1..=MAX_RECORD_FILE_MB).contains(&r.max_file_mb) {
                return Err(eyre!(
                    "record.max_file_mb: {} is outside 1..={MAX_RECORD_FILE_MB}",
                    r.max_file_mb
                ));
            }
        }
        if let Some(j) = &self.journal {
            if j.path.as_os_str().is_empty() {
                return Err(eyre!("journal.path: must not be empty"));
            }
            if !JOURNAL_COMMIT_TIMEOUT_MS_RANGE.contains(&j.commit_timeout_ms) {
                return Err(eyre!(
                    "journal.commit_timeout_ms: {} is outside {JOURNAL_COMMIT_TIMEOUT_MS_RANGE:?}",
                    j.commit_timeout_ms
                ));
            }
        }
        if let Some(c) = &self.chain {
            c.mempool.validate().map_err(|e| eyre!(e))?;
            if !CHAIN_POLL_MS_RANGE.contains(&c.poll_ms) {
                return Err(eyre!("chain.poll_ms: {} is outside {CHAIN_POLL_MS_RANGE:?}", c.poll_ms));
            }
            if !(c.rpc_url.starts_with("http://") || c.rpc_url.starts_with("https://")) {
                return Err(eyre!("chain.rpc_url: must be an http(s) URL"));
            }
            if let Some(ws) = &c.ws_url
                && !(ws.starts_with("ws://") || ws.starts_with("wss://"))
            {
                return Err(eyre!("chain.ws_url: must be a ws(s) URL"));
            }
        }
        if let Some(b) = &self.feeds.binance {
            b.validate().map_err(|e| match e {
                keel_feeds::ws::FeedError::Config(m) => eyre!("feeds.binance.{m}"),
                other => eyre!("feeds.binance: {other}"),
            })?;
        }
        if let Some(r) = &self.registry
            && r.address == Address::ZERO
        {
            return Err(eyre!("registry.address: the zero address is no registry"));
        }
        if self.safety.control_port == Some(0) {
            return Err(eyre!("safety.control_port: 0 is outside 1..=65535"));
        }
        self.engine.validate()?;
        if self.engine.mode == keel_engine::config::StageMode::Inline && self.chains.len() > 1 {
            return Err(eyre!(
                "engine.mode: \"inline\" runs one chain's router on the engine thread; {} [[chains]] are configured (use \"pipelined\")",
                self.chains.len()
            ));
        }
        keel_engine::config::validate(&self.tokens, &self.portfolios)?;
        // Relays may be filled in later by the demo; validate them only when present.
        let relays_ok = if self.relays.is_empty() {
            vec![RelayConfig {
                name: "placeholder".into(),
                url: "http://127.0.0.1".into(),
                timeout_ms: 1,
                fast_path: true,
                ca_cert: None,
                coinbase: None,
            }]
        } else {
            self.relays.clone()
        };
        keel_router::config::validate(&self.tokens, &self.dexes, &self.pools, &self.router, &relays_ok)?;
        crate::chains::validate(self)?;
        let accounts = self.account_addresses()?;
        // With [[chains]], accounts and pools are checked per chain (crate::chains::validate).
        for p in self.portfolios.iter().filter(|_| self.chains.is_empty()) {
            if !accounts.contains(&p.account) {
                return Err(eyre!(
                    "portfolios[{}].account: {} is not the address of any key in signers.accounts",
                    p.name,
                    p.account
                ));
            }
        }
        // Every external source names a configured predictor, and predictors are unique.
        let mut seen = std::collections::HashSet::new();
        for pr in &self.predictors {
            if !seen.insert(pr.name.as_str()) {
                return Err(eyre!("predictors[{}].name: duplicate predictor name", pr.name));
            }
        }
        for p in &self.portfolios {
            if let keel_engine::config::TargetsConfig::External(e) = &p.targets
                && !seen.contains(e.name.as_str())
            {
                return Err(eyre!(
                    "portfolios[{}].targets.external: unknown predictor `{}` (add a [[predictors]] with that name)",
                    p.name,
                    e.name
                ));
            }
        }
        // Every pair a portfolio may trade needs a pool (directly).
        for p in self.portfolios.iter().filter(|_| self.chains.is_empty()) {
            let syms: Vec<&String> = p.targets.keys().collect();
            for (i, a) in syms.iter().enumerate() {
                for b in &syms[i + 1..] {
                    let has = self.pools.iter().any(|pool| {
                        (&pool.token0 == *a && &pool.token1 == *b)
                            || (&pool.token0 == *b && &pool.token1 == *a)
                    });
                    if !has {
                        return Err(eyre!("portfolios[{}].targets: no pool trades {a}/{b}", p.name));
                    }
                }
            }
        }
        match (&self.safety.control_port, &self.safety.control_token) {
            (Some(_), None) => {
                return Err(eyre!(
                    "safety.control_token: required with control_port (env:VAR or file:PATH holding a token of at least {} bytes)",
                    keel_runtime::control::MIN_TOKEN_LEN
                ));
            }
            (_, Some(t)) if !(t.starts_with("env:") || t.starts_with("file:")) => {
                return Err(eyre!("safety.control_token: `{t}` is not env:VAR or file:PATH"));
            }
            _ => {}
        }
        let symbols: Vec<String> = self.tokens.iter().map(|t| t.symbol.clone()).collect();
        self.safety.watch.validate(&symbols)?;
        if let Some(sim) = &self.sim
            && sim.chain_id != self.router.chain_id
        {
            return Err(eyre!(
                "sim.chain_id: {} differs from router.chain_id {}",
                sim.chain_id,
                self.router.chain_id
            ));
        }
        Ok(())
    }

    /// Checks that the file has what `purpose` needs.
    pub(crate) fn check_purpose(&self, purpose: Purpose) -> eyre::Result<()> {
        match purpose {
            Purpose::Demo => {
                if self.registry.is_some() {
                    return Err(eyre!(
                        "registry: the simulated market runs no contracts; [registry] needs `keel run` against a node"
                    ));
                }
                let Some(sim) = &self.sim else {
                    return Err(eyre!("sim: a demo config needs a [sim] section"));
                };
                // Everything the simulated market checks at its start (amounts, reserves, flows).
                keel_sim::SimMarket::check(sim, &self.tokens, &self.dexes, &self.pools)
                    .map_err(|e| eyre!("{e}"))?;
            }
            Purpose::Live if !self.chains.is_empty() => {
                if self.feeds.binance.is_none() {
                    return Err(eyre!("feeds.binance: a live config needs a market-data feed"));
                }
                crate::chains::check_live(self)?;
            }
            Purpose::Live => {
                if self.chain.is_none() {
                    return Err(eyre!(
                        "chain: a live config needs [chain] with rpc_url (or several [[chains]])"
                    ));
                }
                if self.relays.is_empty() {
                    return Err(eyre!("relays: a live config needs at least one [[relays]] entry"));
                }
                if self.feeds.binance.is_none() {
                    return Err(eyre!("feeds.binance: a live config needs a market-data feed"));
                }
                let has_ws = self.chain.as_ref().is_some_and(|c| c.ws_url.is_some());
                for (kind, name) in [
                    (keel_router::config::DexKind::UniswapV3, "uniswap_v3"),
                    (keel_router::config::DexKind::UniswapV4, "uniswap_v4"),
                ] {
                    let pool = self
                        .pools
                        .iter()
                        .find(|p| self.dexes.iter().any(|d| d.name == p.dex && d.kind == kind));
                    if let (Some(p), false) = (pool, has_ws) {
                        return Err(eyre!(
                            "pools[{}]: {name} pools need the websocket node feed: set [chain] ws_url",
                            p.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Addresses of the account keys (loading each key; `dev:` keys only on chain 31337).
    pub(crate) fn account_addresses(&self) -> eyre::Result<Vec<Address>> {
        self.signers
            .accounts
            .iter()
            .enumerate()
            .map(|(i, k)| {
                k.load(self.router.chain_id)
                    .map(|s| s.address())
                    .map_err(|e| eyre!("signers.accounts[{i}]: {e}"))
            })
            .collect()
    }

    /// Exchange symbols the engine prices tokens from.
    pub(crate) fn feed_symbols(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.tokens {
            if let keel_engine::config::PriceSource::Instrument { symbol } = &t.price
                && !out.contains(symbol)
            {
                out.push(symbol.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_text() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/demo.toml")).unwrap()
    }

    #[test]
    fn every_shipped_config_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                // mainnet.example.toml uses env: keys, which need not be set to parse.
                let text = std::fs::read_to_string(&path).unwrap();
                let cfg: Result<KeelConfig, _> = toml::from_str(&text);
                assert!(cfg.is_ok(), "{}: {:?}", path.display(), cfg.err());
                n += 1;
            }
        }
        assert!(n >= 2);
        let demo = KeelConfig::parse(&demo_text()).unwrap();
        demo.check_purpose(Purpose::Demo).unwrap();
    }

    #[test]
    fn the_built_in_demo_config_is_configs_demo_toml() {
        assert_eq!(crate::demo::BUILT_IN_CONFIG, demo_text(), "rebuild after editing configs/demo.toml");
        KeelConfig::parse(crate::demo::BUILT_IN_CONFIG).unwrap().check_purpose(Purpose::Demo).unwrap();
    }

    #[test]
    fn the_control_port_needs_a_token_reference() {
        let with = |safety: &str| KeelConfig::parse(&format!("{}\n[safety]\n{safety}\n", demo_text()));
        let err = format!("{:#}", with("control_port = 9464").unwrap_err());
        assert!(err.contains("safety.control_token: required with control_port"), "{err}");
        let err =
            format!("{:#}", with("control_port = 9464\ncontrol_token = \"hunter2-plain\"").unwrap_err());
        assert!(err.contains("is not env:VAR or file:PATH"), "{err}");
        with("control_port = 9464\ncontrol_token = \"env:KEEL_CONTROL_TOKEN\"").unwrap();
    }

    #[test]
    fn chain_watches_parse_and_out_of_range_values_name_the_field() {
        let with = |watch: &str| KeelConfig::parse(&format!("{}\n{watch}\n", demo_text()));
        let ok = with("[safety.watch.base_fee]\nmax_gwei = 200\nblocks = 3\n[[safety.watch.depeg]]\ntoken = \"USDC\"\nmax_deviation = 0.02").unwrap();
        assert_eq!(ok.safety.watch.depeg[0].peg, 1.0);
        let err = format!("{:#}", with("[safety.watch.landing]\nlast = 0\nmin_rate = 0.5").unwrap_err());
        assert!(err.contains("safety.watch.landing.last: 0 is outside 1..=10000"), "{err}");
        let err = format!(
            "{:#}",
            with("[[safety.watch.depeg]]\ntoken = \"XYZ\"\nmax_deviation = 0.02").unwrap_err()
        );
        assert!(err.contains("safety.watch.depeg[0].token: `XYZ` is not a configured token"), "{err}");
    }

    #[test]
    fn a_registry_address_parses_and_a_bad_one_names_the_field() {
        let with = |section: &str| KeelConfig::parse(&format!("{}\n{section}\n", demo_text()));
        let ok = with("[registry]\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"").unwrap();
        assert_eq!(ok.registry.unwrap().address.to_string(), "0x5FbDB2315678afecb367f032d93F642f64180aa3");
        let err = format!("{:#}", with("[registry]\naddress = \"0x1234\"").unwrap_err());
        assert!(err.contains("registry") && err.contains("address"), "{err}");
        let err = format!(
            "{:#}",
            with("[registry]\naddress = \"0x0000000000000000000000000000000000000000\"").unwrap_err()
        );
        assert!(err.contains("registry.address: the zero address"), "{err}");
        let err = format!(
            "{:#}",
            with("[registry]\naddres = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"").unwrap_err()
        );
        assert!(err.contains("addres"), "{err}");
        // The simulated market runs no contracts: a demo refuses it.
        let demo = with("[registry]\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"").unwrap();
        let err = format!("{:#}", demo.check_purpose(Purpose::Demo).unwrap_err());
        assert!(err.contains("registry: the simulated market runs no contracts"), "{err}");
    }

    #[test]
    fn an_external_target_source_needs_its_predictor() {
        let text = demo_text().replacen(
            "targets = { WETH = 0.6, USDC = 0.4 }",
            "targets = { external = \"alpha\", fallback = { WETH = 0.6, USDC = 0.4 }, max_step = 0.1 }",
            1,
        );
        let err = format!("{:#}", KeelConfig::parse(&text).unwrap_err());
        assert!(err.contains("portfolios[core].targets.external: unknown predictor `alpha`"), "{err}");
        let with = format!("{text}\n[[predictors]]\nname = \"alpha\"\nlisten = \"127.0.0.1:0\"\n");
        let ok = KeelConfig::parse(&with).unwrap();
        assert_eq!(ok.portfolios[0].targets.kind(), "external");
        let twice = format!("{with}\n[[predictors]]\nname = \"alpha\"\nlisten = \"unix:/tmp/x\"\n");
        let err = format!("{:#}", KeelConfig::parse(&twice).unwrap_err());
        assert!(err.contains("predictors[alpha].name: duplicate"), "{err}");
        let bad = with.replacen("max_step = 0.1", "max_step = 0.0", 1);
        let err = format!("{:#}", KeelConfig::parse(&bad).unwrap_err());
        assert!(err.contains("portfolios[core].targets.max_step: 0 is outside (0, 1]"), "{err}");
    }

    #[test]
    fn a_v4_pool_is_checked_and_needs_the_node_websocket() {
        use keel_router::config::{DexConfig, DexKind};
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil.toml")).unwrap();
        let mut cfg = KeelConfig::parse(&text).unwrap();
        let v3: Vec<String> =
            cfg.dexes.iter().filter(|d| d.kind == DexKind::UniswapV3).map(|d| d.name.clone()).collect();
        cfg.pools.retain(|p| !v3.contains(&p.dex));
        cfg.dexes.push(DexConfig {
            name: "v4".into(),
            kind: DexKind::UniswapV4,
            router: Address::repeat_byte(0x44),
            factory: None,
            via: Default::default(),
        });
        let mut pool = cfg.pools[0].clone();
        pool.name = "v4-pool".into();
        pool.dex = "v4".into();
        pool.address = Address::repeat_byte(0x4d);
        pool.fee = Some(3000);
        pool.tick_spacing = Some(60);
        cfg.pools.push(pool);
        let cfg = cfg.revalidate().unwrap();
        cfg.check_purpose(Purpose::Live).unwrap();
        let mut hooked = cfg.clone();
        let mut hook = [0u8; 20];
        hook[19] = 1 << 6; // afterSwap
        hooked.pools.last_mut().unwrap().hooks = Some(Address::from(hook));
        let e = format!("{:#}", hooked.revalidate().unwrap_err());
        assert!(e.contains("pools[v4-pool].hooks") && e.contains("hookless"), "{e}");
        let mut cfg = cfg;
        if let Some(c) = cfg.chain.as_mut() {
            c.ws_url = None;
        }
        let e = cfg.check_purpose(Purpose::Live).unwrap_err().to_string();
        assert!(e.contains("uniswap_v4 pools need the websocket node feed"), "{e}");
    }

    #[test]
    fn a_v3_pool_without_the_node_websocket_is_refused_at_check_time() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil.toml")).unwrap();
        let ok = KeelConfig::parse(&text).unwrap();
        ok.check_purpose(Purpose::Live).unwrap();
        let mut no_ws = ok.clone();
        if let Some(c) = no_ws.chain.as_mut() {
            c.ws_url = None;
        }
        let e = no_ws.check_purpose(Purpose::Live).unwrap_err().to_string();
        assert!(e.contains("uniswap_v3 pools need the websocket node feed"), "{e}");
    }

    #[test]
    fn bad_weights_name_the_portfolio_and_field() {
        let text = demo_text().replacen("WETH = 0.6", "WETH = 0.57", 1);
        let err = format!("{:#}", KeelConfig::parse(&text).unwrap_err());
        assert!(err.contains("portfolios[core].targets") && err.contains("sum to 0.97"), "{err}");
    }

    #[test]
    fn a_relay_fast_path_is_on_unless_switched_off() {
        let relays = "\n[[relays]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n\
                      \n[[relays]]\nname = \"b\"\nurl = \"http://127.0.0.1:2\"\nfast_path = false\n";
        let cfg = KeelConfig::parse(&format!("{}{relays}", demo_text())).unwrap();
        assert_eq!(cfg.relays.iter().map(|r| r.fast_path).collect::<Vec<_>>(), [true, false]);
    }

    #[test]
    fn a_record_section_is_read_and_its_bounds_are_checked() {
        let cfg = KeelConfig::parse(&format!("{}\n[record]\ndir = \"rec\"\n", demo_text())).unwrap();
        let r = cfg.record.as_ref().unwrap();
        assert_eq!(
            (r.dir.as_os_str(), r.max_file_mb),
            ("rec".as_ref(), keel_runtime::record::DEFAULT_MAX_FILE_MB)
        );
        assert!(cfg.source_toml.contains("[record]"));
        let err = format!(
            "{:#}",
            KeelConfig::parse(&format!("{}\n[record]\ndir = \"rec\"\nmax_file_mb = 0\n", demo_text()))
                .unwrap_err()
        );
        assert!(err.contains("record.max_file_mb"), "{err}");
        let err = format!(
            "{:#}",
            KeelConfig::parse(&format!("{}\n[record]\ndir = \"rec\"\nmax_mb = 5\n", demo_text()))
                .unwrap_err()
        );
        assert!(err.contains("max_mb"), "{err}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let text = demo_text().replacen("[router]", "[router]\nslipage_bps = 5", 1);
        let err = format!("{:#}", KeelConfig::parse(&text).unwrap_err());
        assert!(err.contains("slipage_bps"), "{err}");
    }

    #[test]
    fn keystore_account_keys_load_through_the_config() {
        use keel_router::signer::{FastSigner, Signer};
        let dir = tempfile::tempdir().unwrap();
        // The public dev key 2 (the demo's second account), encrypted.
        let pk: alloy::primitives::B256 =
            "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a".parse().unwrap();
        let mut rng = alloy::signers::k256::elliptic_curve::rand_core::OsRng;
        FastSigner::encrypt_keystore(dir.path(), &mut rng, pk, "pw-config-test", Some("acct2.json")).unwrap();
        let path = dir.path().join("acct2.json");
        let var = "KEEL_TEST_CONFIG_KEYSTORE_PASS";
        let text = demo_text().replacen(
            r#"accounts = ["dev:1", "dev:2","#,
            &format!(r#"accounts = ["dev:1", "keystore:{}?password_env={var}","#, path.display()),
            1,
        );
        assert!(text.contains("keystore:"), "configs/demo.toml changed shape: update this test");
        // Without the password the file parses but the account cannot be resolved, and says why.
        let err = format!("{:#}", KeelConfig::parse(&text).unwrap_err());
        assert!(err.contains("signers.accounts[1]") && err.contains(var), "{err}");
        // SAFETY: a variable only this test uses, set before it is read.
        unsafe { std::env::set_var(var, "pw-config-test") };
        let cfg = KeelConfig::parse(&text).unwrap();
        assert_eq!(cfg.account_addresses().unwrap()[1], Signer::dev(2).unwrap().address());
        assert!(!format!("{cfg:?}").contains("pw-config-test"));
    }

    #[test]
    fn raw_private_key_in_config_is_refused() {
        let text = demo_text().replacen(
            "reputation_key = \"dev:9\"",
            "reputation_key = \"0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\"",
            1,
        );
        let err = format!("{:#}", KeelConfig::parse(&text).unwrap_err());
        assert!(err.contains("env:VAR") && !err.contains("bacb478cbed5efcae784d7bf4f2ff80"), "{err}");
    }
}
