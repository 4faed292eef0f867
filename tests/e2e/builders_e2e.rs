//! Getting bundles included, on anvil with the loopback relay's builders: two relays whose
//! builders build blocks with different probabilities, measured by `keel journal stats`; a builder
//! with a tip floor that includes a rebalance once the tip schedule has raised its tip; and a kill
//! during a pending rebalance that cancels it on the relay and stops its resends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, TriggerConfig};
use keel_engine::event::OutcomeStatus;
use keel_feeds::ws::BinanceFeedConfig;
use keel_journal::{JournalConfig, SyncPolicy};
use keel_router::config::{RelayConfig, RouterConfig};
use keel_router::signer::Signer;
use keel_runtime::pipeline::{Pipeline, PipelineSpec};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{AnvilChain, AnvilRelay, BuilderOptions, RelayOptions};
use keel_sim::quotes::QuoteServer;

use crate::anvil_e2e::{Market, market, router_config};

const GWEI: u128 = 1_000_000_000;

/// anvil, the relay with `builders`, funded portfolios and a quote feed.
struct Rig {
    chain: AnvilChain,
    relay: AnvilRelay,
    quotes: QuoteServer,
    /// The exchange's starting mid (the V2 pool's).
    mid: f64,
    spec: PipelineSpec,
    journal: PathBuf,
    _dir: tempfile::TempDir,
}

/// `portfolios` accounts, each funded with `a`/`b` whole TKA/TKB; one relay per builder, named
/// after it and told its coinbase.
async fn rig(
    portfolios: usize,
    (a, b): (u64, u64),
    builders: Vec<BuilderOptions>,
    block_ms: u64,
    band: impl Fn(usize) -> f64,
    router: impl FnOnce(&mut RouterConfig),
) -> Rig {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let Market { tokens, dexes, pools, tka, tkb, pair, v3, .. } = market(&chain);
    let signers: Vec<Signer> =
        (0..portfolios as u64).map(|i| Signer::derived_dev(3_000 + i).unwrap()).collect();
    let funder = chain.wallet_provider(1);
    let unit = U256::from(10u64).pow(U256::from(18u64));
    for s in &signers {
        let me: Address = s.address();
        chain.provider().anvil_set_balance(me, U256::from(10u64).pow(U256::from(20u64))).await.unwrap();
        for (t, n) in [(tka, a), (tkb, b)] {
            let token = IERC20::new(t, &funder);
            token.transfer(me, unit * U256::from(n)).send().await.unwrap().get_receipt().await.unwrap();
        }
    }
    let relays: Vec<(String, Address)> = builders.iter().map(|b| (b.name.clone(), b.coinbase)).collect();
    let options = RelayOptions {
        block_interval: Some(Duration::from_millis(block_ms)),
        builders,
        seed: 7,
        seal_gate: None,
    };
    let relay = AnvilRelay::start(chain.http_url(), options).await.expect("relay");
    let (mid, _) = chain.mids(tka, pair, v3).await.unwrap();
    let quotes = QuoteServer::start(&[("TKAUSDT", mid)], Duration::from_millis(50)).await.unwrap();
    let portfolios = signers
        .iter()
        .enumerate()
        .map(|(i, s)| PortfolioConfig {
            name: format!("p{i}"),
            account: s.address(),
            targets: [("TKA".to_string(), 0.5), ("TKB".to_string(), 0.5)].into_iter().collect(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(band(i)), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 0.2,
            min_trade_notional: 0.01,
            cost: Default::default(),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("keel-journal.db");
    // One bundle per rebalance (no netting), each sent for the next block only.
    let mut router_cfg = router_config(chain.chain_id(), None, false);
    router(&mut router_cfg);
    let relay_configs = relays
        .iter()
        .zip(relay.builder_urls())
        .map(|((name, coinbase), url)| RelayConfig {
            name: name.clone(),
            url: url.clone(),
            timeout_ms: 5_000,
            fast_path: true,
            ca_cert: None,
            coinbase: Some(*coinbase),
        })
        .collect();
    let spec = PipelineSpec {
        engine: EngineConfig { stale_after_ms: 5_000, ..EngineConfig::default() },
        tokens,
        portfolios,
        router: router_cfg,
        dexes,
        pools,
        relays: relay_configs,
        reputation: Signer::dev(9).unwrap(),
        accounts: signers,
        binance: BinanceFeedConfig::new(quotes.url(), ["TKAUSDT"]),
        rpc_url: chain.http_url().to_string(),
        poll_ms: 50,
        node_ws_url: Some(chain.ws_url().to_string()),
        mempool: Default::default(),
        native_symbol: Some("WETH".into()),
        sample_every: Duration::from_millis(100),
        safety: Default::default(),
        journal: Some(JournalConfig { sync: SyncPolicy::Off, ..JournalConfig::at(journal.clone()) }),
        record: None,
        predictors: Vec::new(),
        registry: None,
    };
    Rig { chain, relay, quotes, mid, spec, journal, _dir: dir }
}

fn builder(name: &str, coinbase: Address, share: f64, min_tip_wei: u128) -> BuilderOptions {
    BuilderOptions { name: name.into(), coinbase, share, min_tip_wei }
}

fn landed(pipeline: &Pipeline) -> usize {
    let outcomes = pipeline.observer().outcomes.lock();
    outcomes.iter().filter(|(_, o)| matches!(o.status, OutcomeStatus::Landed { .. })).count()
}

/// `keel journal stats --json` on `journal`.
fn journal_stats(journal: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["journal", "--json", "--path", journal.to_str().unwrap(), "stats"])
        .output()
        .expect("run keel journal stats");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The builders' shares of the blocks; the rest are built by nobody Keel reaches.
const ALPHA_SHARE: f64 = 0.6;
const BETA_SHARE: f64 = 0.3;
/// How far a measured inclusion rate may sit from its builder's share: about three standard
/// deviations of a rate measured over 200 blocks (the draws are per block, not per bundle).
const TOLERANCE: f64 = 0.1;
/// Blocks each relay must have been given a chance in before the rates are judged.
const MIN_CHANCES: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_stats_measure_each_relays_inclusion_rate_near_its_builders_share() {
    // Shown only when the test fails: the relay's refusals and the router's warnings say why
    // bundles did not land.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "keel_sim=debug,keel_router=info,keel_feeds=info,keel_runtime=info,keel_engine=info",
        )
    });
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    let (alpha, beta) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    let builders = vec![builder("alpha", alpha, ALPHA_SHARE, 0), builder("beta", beta, BETA_SHARE, 0)];
    // Bands from 0.4% to 0.9%: the portfolios leave them at different moments of the swing.
    let band = |i: usize| 0.004 + 0.001 * i as f64;
    let Rig { chain, relay, quotes, mid, spec, journal, _dir } =
        rig(6, (20, 20), builders, 400, band, |_| {}).await;
    let pipeline = Pipeline::launch(spec, &tokio::runtime::Handle::current()).await.expect("pipeline");
    // The exchange price swings ±3% around the pool's in a 2.6-second cycle (not a multiple of
    // the block time), so that most blocks find some portfolio out of its band.
    let t0 = Instant::now();
    let mut step = 0u32;
    while landed(&pipeline) < 4 * MIN_CHANCES as usize / 3 && t0.elapsed() < Duration::from_secs(150) {
        let phase = f64::from(step) * std::f64::consts::TAU / 8.0;
        quotes.set_price("TKAUSDT", mid * (1.0 + 0.03 * phase.sin()));
        step += 1;
        tokio::time::sleep(Duration::from_millis(330)).await;
    }
    let (took, n_landed) = (t0.elapsed(), landed(&pipeline));
    let report = pipeline.shutdown().await;
    drop((quotes, relay, chain));

    let stats = journal_stats(&journal);
    eprintln!(
        "{n_landed} rebalances landed in {took:?}; exec {:?}\nrelays: {}",
        report.exec, stats["relays"]
    );
    for (name, share) in [("alpha", ALPHA_SHARE), ("beta", BETA_SHARE)] {
        let r = stats["relays"].as_array().unwrap().iter().find(|r| r["relay"] == name).expect(name);
        let chances = r["block_chances"].as_u64().unwrap();
        let rate = r["inclusion_rate"].as_f64().unwrap();
        assert!(chances >= MIN_CHANCES, "{name}: {chances} chances, fewer than {MIN_CHANCES}: {r}");
        assert!((rate - share).abs() <= TOLERANCE, "{name}: inclusion rate {rate:.3} vs share {share}: {r}");
    }
    // The builders table names both fee recipients, alpha's with the larger share.
    let builders = stats["builders"].as_array().unwrap();
    let share_of = |coinbase: Address| {
        let b = builders.iter().find(|b| b["coinbase"].as_str() == Some(&coinbase.to_string()));
        b.map_or(0.0, |b| b["share"].as_f64().unwrap())
    };
    assert!(share_of(alpha) > share_of(beta) && share_of(beta) > 0.0, "{builders:?}");
}

/// One portfolio 10 points off target; the only builder wants 3 gwei of tip, Keel starts at 1.
async fn tipping_rig(step_pct: u32) -> Rig {
    let builders = vec![builder("solo", Address::repeat_byte(0x5e), 1.0, 3 * GWEI)];
    rig(
        1,
        (60, 40),
        builders,
        400,
        |_| 0.03,
        |r| {
            r.priority_fee_wei = GWEI;
            r.bundle_blocks = 8;
            r.tip_step_pct = step_pct;
            r.max_priority_fee_wei = Some(4 * GWEI);
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_that_misses_blocks_lands_after_its_tip_rises() {
    // Without the schedule the tip stays 1 gwei: the rebalance expires unlanded.
    let Rig { chain, relay, quotes, spec, .. } = tipping_rig(0).await;
    let pipeline = Pipeline::launch(spec, &tokio::runtime::Handle::current()).await.expect("pipeline");
    let t0 = Instant::now();
    while pipeline.snapshot().engine.outcomes.expired == 0 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = pipeline.shutdown().await;
    assert_eq!(report.exec.landed, 0, "{:?}", report.exec);
    assert!(report.exec.expired >= 1, "{:?}", report.exec);
    drop((quotes, relay, chain));

    // 1 → 1.5 → 2.25 → 3.375 gwei: the tip for a block is set by how many blocks after the
    // first target it is, so nothing before the fourth block targeted can land.
    let Rig { chain, relay, quotes, spec, journal, .. } = tipping_rig(50).await;
    let pipeline = Pipeline::launch(spec, &tokio::runtime::Handle::current()).await.expect("pipeline");
    let t0 = Instant::now();
    while landed(&pipeline) == 0 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = pipeline.shutdown().await;
    assert_eq!(report.exec.landed, 1, "{:?}\n{:?}", report.exec, relay.statuses());
    // On chain: every landed transaction tips at least the builder's 3 gwei.
    let landed_txs: Vec<_> = relay.landed().into_iter().flat_map(|b| b.tx_hashes).collect();
    assert!(!landed_txs.is_empty());
    for h in landed_txs {
        use alloy::consensus::Transaction;
        use alloy::providers::Provider;
        let tx = chain.provider().get_transaction_by_hash(h).await.unwrap().expect("landed tx");
        let tip = tx.inner.max_priority_fee_per_gas().expect("EIP-1559");
        assert!((3 * GWEI..=4 * GWEI).contains(&tip), "tip {tip}");
    }
    drop((quotes, relay, chain));
    let stats = journal_stats(&journal);
    let inclusion = &stats["inclusion"];
    assert_eq!(inclusion["count"], 1, "{stats}");
    let blocks = inclusion["blocks_p50"].as_u64().unwrap();
    assert!((4..=8).contains(&blocks), "landed {blocks} blocks after its first target: {stats}");
    assert!(inclusion["versions_mean"].as_f64().unwrap() >= 2.0, "never re-signed: {stats}");
    assert_eq!(stats["builders"][0]["coinbase"], Address::repeat_byte(0x5e).to_string(), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_pending_rebalance_cancels_it_and_stops_its_resends() {
    // A builder that never includes it: the bundle is resent every block until its deadline.
    let builders = vec![builder("solo", Address::repeat_byte(0x5e), 1.0, 1_000 * GWEI)];
    let Rig { chain, relay, quotes, spec, .. } =
        rig(1, (60, 40), builders, 300, |_| 0.03, |r| r.bundle_blocks = 40).await;
    let pipeline = Pipeline::launch(spec, &tokio::runtime::Handle::current()).await.expect("pipeline");
    let t0 = Instant::now();
    while relay.requests().0 < 3 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no resends: {:?}", relay.requests());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pipeline.kill_switch().engage("test: kill during a pending rebalance");
    // The next head cancels it; give it that head and the cancel's round trip.
    let t1 = Instant::now();
    while relay.requests().1 == 0 {
        assert!(t1.elapsed() < Duration::from_secs(5), "no cancel: {:?}", relay.requests());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sent, head) = (relay.requests().0, chain.block_number().await.unwrap());
    // Five more blocks: nothing more is sent, and what the relay held is cancelled.
    while chain.block_number().await.unwrap() < head + 5 {
        assert!(t1.elapsed() < Duration::from_secs(15), "the relay stopped mining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(relay.requests().0, sent, "resent after the kill");
    let report = pipeline.shutdown().await;
    assert_eq!((report.exec.cancelled, report.exec.landed), (1, 0), "{:?}", report.exec);
    drop((quotes, relay, chain));
}
