//! Netting on a real chain: three portfolios on three accounts, two of them with opposite drift on
//! TKA/TKB, all decided for one block. Keel sends ONE bundle holding the internal crosses (ERC-20
//! transfers between the accounts) and the residual swap; anvil lands it atomically, every account's
//! balances move exactly as planned (to the wei), and the gas used is below what the same three
//! rebalances cost as separate bundles (a second run on a fresh chain, netting off).
//! Needs anvil: `make chain-deps` (the test fails loudly without it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, I256, U256};
use keel_engine::config::{EngineConfig, PlanMode, PortfolioConfig, TriggerConfig};
use keel_engine::event::OutcomeStatus;
use keel_feeds::ws::BinanceFeedConfig;
use keel_router::signer::Signer;
use keel_runtime::pipeline::{Pipeline, PipelineReport, PipelineSpec};
use keel_sim::anvil::contracts::rpc::IERC20;
use keel_sim::anvil::{AnvilChain, AnvilRelay, RelayOptions};
use keel_sim::quotes::QuoteServer;

use crate::anvil_e2e::{Market, market, router_config};

/// Dev keys of the three portfolio accounts, and each portfolio's TKA target. All start with 1000
/// TKA + 1000 TKB (TKA = 1 TKB): "sell-a" sells 300 TKA, "sell-b" 200, and "buy" buys TKA with 600
/// TKB: both sellers cross whole against the buyer, whose last 100 TKB go to the pools.
const PORTFOLIOS: [(&str, usize, f64); 3] = [("sell-a", 6, 0.35), ("buy", 7, 0.8), ("sell-b", 8, 0.4)];

fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// What one run produced.
struct Run {
    report: PipelineReport,
    /// Gas of every landed rebalance.
    gas_used: u64,
    /// Bundles the relay landed: (block, transactions).
    landed: Vec<(u64, usize)>,
    /// Per account: (TKA, TKB) balance change on chain.
    deltas: BTreeMap<Address, (I256, I256)>,
}

/// Starts anvil, funds the accounts, runs Keel until the three rebalances are decided (no block is
/// mined meanwhile, so they are all for one block), mines, and waits for them to land.
async fn run(netting: bool) -> Run {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    let Market { tokens, dexes, pools, tka, tkb, pair, v3, .. } = market(&chain);
    let funder = chain.wallet_provider(1);
    let accounts: Vec<Address> = PORTFOLIOS.iter().map(|p| Signer::dev(p.1).unwrap().address()).collect();
    for &me in &accounts {
        for t in [tka, tkb] {
            IERC20::new(t, &funder)
                .transfer(me, e18(1000))
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
        }
    }
    let balances = async |me: Address| {
        (chain.balance_of(tka, me).await.unwrap(), chain.balance_of(tkb, me).await.unwrap())
    };
    let mut before = Vec::new();
    for &me in &accounts {
        before.push(balances(me).await);
    }
    // Blocks only when the test mines one.
    let relay =
        AnvilRelay::start(chain.http_url(), RelayOptions { block_interval: None, ..Default::default() })
            .await
            .expect("relay");
    let (v2_mid, _) = chain.mids(tka, pair, v3).await.unwrap();
    let quotes = QuoteServer::start(&[("TKAUSDT", v2_mid)], Duration::from_millis(50)).await.unwrap();
    let portfolios = PORTFOLIOS
        .iter()
        .zip(&accounts)
        .map(|(&(name, _, tka_target), &account)| PortfolioConfig {
            name: name.into(),
            account,
            targets: [("TKA".to_string(), tka_target), ("TKB".to_string(), 1.0 - tka_target)]
                .into_iter()
                .collect(),
            triggers: vec![TriggerConfig::Drift { abs_band: Some(0.02), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 60.0,
            min_trade_notional: 1.0,
            cost: Default::default(),
        })
        .collect();
    let spec = PipelineSpec {
        engine: EngineConfig { stale_after_ms: 5_000, queue_capacity: 4_096, ..EngineConfig::default() },
        tokens,
        portfolios,
        router: router_config(chain.chain_id(), None, netting),
        dexes,
        pools,
        relays: vec![crate::anvil_e2e::anvil_relay_config(&relay, 2_000)],
        reputation: Signer::dev(9).unwrap(),
        accounts: PORTFOLIOS.iter().map(|p| Signer::dev(p.1).unwrap()).collect(),
        binance: BinanceFeedConfig::new(quotes.url(), ["TKAUSDT"]),
        rpc_url: chain.http_url().to_string(),
        poll_ms: 50,
        node_ws_url: Some(chain.ws_url().to_string()),
        mempool: Default::default(),
        native_symbol: Some("WETH".into()),
        sample_every: Duration::from_millis(200),
        safety: Default::default(),
        journal: None,
        record: None,
        predictors: Vec::new(),
        registry: None,
    };
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");

    // All three decide and are in flight, in the one block the chain is waiting to build.
    let t0 = Instant::now();
    loop {
        let snap = pipeline.snapshot();
        if snap.engine.intents_emitted >= 3 && snap.portfolios.iter().all(|p| p.busy) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the three rebalances were not all decided: {snap:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Mine block by block (each head also wakes rebalances parked until the pools' first read)
    // until all three have landed.
    let mut blocks = Vec::new();
    while pipeline.snapshot().engine.outcomes.landed < 3 && blocks.len() < 8 {
        // The batch's last version reaches the relay (loopback, pipelined on one connection).
        tokio::time::sleep(Duration::from_millis(700)).await;
        blocks.push(relay.mine_block().await.expect("mine"));
        let t0 = Instant::now();
        while pipeline.snapshot().engine.outcomes.landed < 3 && t0.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let report = pipeline.shutdown().await;
    assert_eq!(
        report.outcomes.len(),
        3,
        "not all landed in blocks {blocks:?}: outcomes {:?}, exec {:?}, relays {:?}, bundles {:?}",
        report.outcomes,
        report.exec,
        report.relays,
        relay.statuses()
    );
    let mut gas_used = 0;
    let mut landed_in = Vec::new();
    for (_, o) in &report.outcomes {
        if let OutcomeStatus::Landed { block, gas_used: g } = o.status {
            landed_in.push(block);
            gas_used += g;
        }
    }
    landed_in.dedup();
    assert_eq!(landed_in.len(), 1, "all three rebalances land in one block: {:?}", report.outcomes);
    let landed = relay.landed().iter().map(|b| (b.block, b.tx_hashes.len())).collect();
    let mut deltas = BTreeMap::new();
    for (&me, (a0, b0)) in accounts.iter().zip(before) {
        let (a1, b1) = balances(me).await;
        deltas.insert(me, (signed(a1) - signed(a0), signed(b1) - signed(b0)));
    }
    relay.shutdown().await.expect("relay shutdown");
    drop(quotes);
    drop(chain);
    Run { report, gas_used, landed, deltas }
}

fn signed(x: U256) -> I256 {
    I256::try_from(x).expect("balance fits")
}

/// Per account, the (TKA, TKB) change the plan says: what its fills sold and bought (crosses at the
/// amounts transferred, swaps at their quoted output).
fn planned(report: &PipelineReport) -> BTreeMap<Address, (I256, I256)> {
    let account_of: BTreeMap<u64, Address> =
        report.engine.intents.iter().map(|i| (i.id, i.account)).collect();
    let mut out: BTreeMap<Address, (I256, I256)> = BTreeMap::new();
    for f in &report.fills {
        let e = out.entry(account_of[&f.intent]).or_default();
        for (sym, amount) in [(&f.sell, -signed(f.amount_in)), (&f.buy, signed(f.amount_out))] {
            match sym.as_str() {
                "TKA" => e.0 += amount,
                "TKB" => e.1 += amount,
                other => panic!("unexpected token {other}"),
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_portfolios_net_into_one_bundle_that_lands_exactly_as_planned_and_saves_gas() {
    let netted = run(true).await;
    let r = &netted.report;
    // ONE bundle, holding every transaction of the three rebalances.
    let txs: u64 = r.exec.txs_signed;
    assert_eq!(netted.landed.len(), 1, "one bundle expected: {:?}", netted.landed);
    let crosses: Vec<_> = r.fills.iter().filter(|f| f.pool.starts_with("cross:")).collect();
    let swaps: Vec<_> = r.fills.iter().filter(|f| !f.pool.starts_with("cross:")).collect();
    assert!(!crosses.is_empty() && !swaps.is_empty(), "transfers and a residual swap: {:?}", r.fills);
    assert!(netted.landed[0].1 as u64 <= txs, "{:?} vs {txs} signed", netted.landed);
    // Both sellers are crossed whole against the buyer; only the buyer's residual is routed.
    let account_of: BTreeMap<u64, Address> = r.engine.intents.iter().map(|i| (i.id, i.account)).collect();
    let buyer = Signer::dev(PORTFOLIOS[1].1).unwrap().address();
    assert!(swaps.iter().all(|f| account_of[&f.intent] == buyer), "{:?}\n{:?}", r.fills, r.engine.intents);
    // Balances moved exactly as planned, to the wei, on every account.
    assert_eq!(netted.deltas, planned(r), "on-chain balance changes against the plan");
    let crossed: f64 = r.costs.iter().map(|c| c.crossed).sum();
    let saved: f64 = r.costs.iter().map(|c| c.saved).sum();
    // 500 TKA against 500 TKB, counted on both sides.
    assert!((crossed - 1000.0).abs() < 1.0, "{:?}", r.costs);
    assert!(saved > 0.0, "{:?}", r.costs);

    // The same three rebalances as separate bundles, on a fresh chain.
    let alone = run(false).await;
    assert_eq!(alone.landed.len(), 3, "three bundles without netting: {:?}", alone.landed);
    assert!(alone.report.fills.iter().all(|f| !f.pool.starts_with("cross:")));
    assert!(
        netted.gas_used < alone.gas_used,
        "netted gas {} should be below separate bundles' {}",
        netted.gas_used,
        alone.gas_used
    );
    eprintln!(
        "gas: netted {} vs separate {}; crossed {crossed:.1}, saved {saved:.2}",
        netted.gas_used, alone.gas_used
    );
}
