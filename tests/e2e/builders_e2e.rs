//! Per-relay inclusion on anvil: two loopback relays whose builders build blocks with different
//! probabilities, a market that keeps portfolios rebalancing, and `keel journal stats` naming how
//! often each relay's builder included what it was sent.

use std::process::Command;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, TriggerConfig};
use keel_engine::event::OutcomeStatus;
use keel_feeds::ws::BinanceFeedConfig;
use keel_journal::{JournalConfig, SyncPolicy};
use keel_router::config::RelayConfig;
use keel_router::signer::Signer;
use keel_runtime::pipeline::{Pipeline, PipelineSpec};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{AnvilChain, AnvilRelay, BuilderOptions, RelayOptions};
use keel_sim::quotes::QuoteServer;

use crate::anvil_e2e::{Market, market, router_config};

const PORTFOLIOS: usize = 6;
/// The builders' shares of the blocks; the rest are built by nobody Keel reaches.
const ALPHA_SHARE: f64 = 0.6;
const BETA_SHARE: f64 = 0.3;
/// How far a measured inclusion rate may sit from its builder's share: about three standard
/// deviations of a rate measured over 200 blocks (the draws are per block, not per bundle).
const TOLERANCE: f64 = 0.1;
/// Blocks each relay must have been given a chance in before the rates are judged.
const MIN_CHANCES: u64 = 200;

fn landed(pipeline: &Pipeline) -> usize {
    let outcomes = pipeline.observer().outcomes.lock();
    outcomes.iter().filter(|(_, o)| matches!(o.status, OutcomeStatus::Landed { .. })).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_stats_measure_each_relays_inclusion_rate_near_its_builders_share() {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let Market { tokens, dexes, pools, tka, tkb, pair, v3, .. } = market(&chain);
    let signers: Vec<Signer> =
        (0..PORTFOLIOS as u64).map(|i| Signer::derived_dev(3_000 + i).unwrap()).collect();
    let funder = chain.wallet_provider(1);
    let unit = U256::from(10u64).pow(U256::from(18u64));
    for s in &signers {
        let me: Address = s.address();
        chain.provider().anvil_set_balance(me, U256::from(10u64).pow(U256::from(20u64))).await.unwrap();
        for t in [tka, tkb] {
            let token = IERC20::new(t, &funder);
            token.transfer(me, unit * U256::from(20u64)).send().await.unwrap().get_receipt().await.unwrap();
        }
    }
    let (alpha, beta) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    let builder = |name: &str, coinbase, share| BuilderOptions { name: name.into(), coinbase, share };
    let relay = AnvilRelay::start(
        chain.http_url(),
        RelayOptions {
            block_interval: Some(Duration::from_millis(400)),
            builders: vec![builder("alpha", alpha, ALPHA_SHARE), builder("beta", beta, BETA_SHARE)],
            seed: 7,
        },
    )
    .await
    .expect("relay");
    let (v2_mid, _) = chain.mids(tka, pair, v3).await.unwrap();
    let quotes = QuoteServer::start(&[("TKAUSDT", v2_mid)], Duration::from_millis(50)).await.unwrap();
    // Bands from 0.4% to 0.9%: the portfolios leave them at different moments of the swing.
    let portfolios = signers
        .iter()
        .enumerate()
        .map(|(i, s)| PortfolioConfig {
            name: format!("p{i}"),
            account: s.address(),
            targets: [("TKA".to_string(), 0.5), ("TKB".to_string(), 0.5)].into_iter().collect(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(0.004 + 0.001 * i as f64), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 0.2,
            min_trade_notional: 0.01,
            cost: Default::default(),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("keel-journal.db");
    let relay_config = |name: &str, url: &str, coinbase| RelayConfig {
        name: name.into(),
        url: url.to_string(),
        timeout_ms: 5_000,
        fast_path: true,
        ca_cert: None,
        coinbase: Some(coinbase),
    };
    let urls = relay.builder_urls();
    let spec = PipelineSpec {
        engine: EngineConfig { stale_after_ms: 5_000, ..EngineConfig::default() },
        tokens,
        portfolios,
        // One bundle per rebalance (no netting), each sent for the next block only.
        router: router_config(chain.chain_id(), None, false),
        dexes,
        pools,
        relays: vec![relay_config("alpha", &urls[0], alpha), relay_config("beta", &urls[1], beta)],
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
        journal: Some(JournalConfig { sync: SyncPolicy::Off, ..JournalConfig::at(journal_path.clone()) }),
        record: None,
    };
    let pipeline = Pipeline::launch(spec, &tokio::runtime::Handle::current()).await.expect("pipeline");
    // The exchange price swings ±3% around the pool's in a 2-second cycle, so that most blocks
    // find some portfolio out of its band.
    let t0 = Instant::now();
    let mut step = 0u32;
    while landed(&pipeline) < 4 * MIN_CHANCES as usize / 3 && t0.elapsed() < Duration::from_secs(150) {
        let phase = f64::from(step) * std::f64::consts::TAU / 8.0;
        quotes.set_price("TKAUSDT", v2_mid * (1.0 + 0.03 * phase.sin()));
        step += 1;
        tokio::time::sleep(Duration::from_millis(330)).await;
    }
    let took = t0.elapsed();
    let n_landed = landed(&pipeline);
    let report = pipeline.shutdown().await;
    drop((quotes, relay));

    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["journal", "--json", "--path", journal_path.to_str().unwrap(), "stats"])
        .output()
        .expect("run keel journal stats");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
