//! Several chains in one process: `keel devnet --chains 2` starts two anvils (chain ids 31337 and
//! 1337, a block every 300 ms and every 700 ms) with the same contracts, and moves both markets;
//! one `keel run` on the `[[chains]]` config it writes rebalances a portfolio on each — chain `l1`
//! through the Flashbots-style relay, chain `l2` by raw transactions to its node (`private_rpc`).
//! The report counts each chain's landings; the journal names each rebalance's chain, and every
//! landed rebalance's transactions are found on that chain and not on the other.

use std::process::{Command, Stdio};

use alloy::primitives::B256;
use alloy::providers::{Provider, ProviderBuilder};
use keel_journal::Store;

use crate::common::{Devnet, free_port};

#[test]
fn portfolios_on_two_chains_rebalance_in_one_run_each_landing_on_its_own_chain() {
    let keel = env!("CARGO_BIN_EXE_keel");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("devnet2.toml");
    let port2 = free_port().to_string();
    let devnet = Devnet::start(
        keel,
        &[
            "--chains",
            "2",
            "--port-2",
            &port2,
            "--block-ms",
            "300",
            "--block-ms-2",
            "700",
            "--move-every",
            "2",
            "--duration",
            "120",
        ],
        &cfg,
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("[[chains]]") && text.contains("private_rpc") && !text.contains("[chain]\n"),
        "{text}"
    );
    // The committed two-chain config is the devnet's, with the default ports.
    let written = text
        .replace(&format!(":{}", devnet.anvil_port), ":8545")
        .replace(&format!(":{}", devnet.relay_port), ":8550")
        .replace(&format!(":{}", devnet.quotes_port), ":8551")
        .replace(&format!(":{port2}"), ":8546");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/anvil-2chains.toml")).unwrap();
    assert_eq!(
        written, committed,
        "configs/anvil-2chains.toml is stale: regenerate it with `keel devnet --chains 2 --write-config configs/anvil-2chains.toml`"
    );
    let journal = dir.path().join("journal.sqlite");
    let run_cfg = dir.path().join("run.toml");
    std::fs::write(
        &run_cfg,
        format!("{text}\n\n[journal]\npath = \"{}\"\nsync = \"off\"\n", journal.display()),
    )
    .unwrap();
    let check = Command::new(keel).arg("check-config").arg(&run_cfg).output().expect("run keel check-config");
    assert!(check.status.success(), "check-config: {}", String::from_utf8_lossy(&check.stderr));

    let out = dir.path().join("run");
    let status = Command::new(keel)
        .args(["run", "--duration", "30", "--config"])
        .arg(&run_cfg)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("run keel run");
    assert!(status.success(), "keel run failed: {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let chains = report["chains"].as_array().expect("report.chains");
    let summary: Vec<_> = chains
        .iter()
        .map(|c| {
            (c["name"].as_str().unwrap(), c["chain_id"].as_u64().unwrap(), c["submission"].as_str().unwrap())
        })
        .collect();
    assert_eq!(summary, [("l1", 31337, "relays"), ("l2", 1337, "private_rpc")]);
    for c in chains {
        assert!(
            c["exec"]["landed"].as_u64().unwrap() >= 1,
            "no rebalance landed on {}: {report:#}",
            c["name"]
        );
        assert!(c["blocks"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        report["rebalances_landed"].as_u64().unwrap(),
        chains.iter().map(|c| c["exec"]["landed"].as_u64().unwrap()).sum::<u64>()
    );

    // The journal names each rebalance's chain; a landed rebalance's transactions are on that
    // chain (a successful receipt in the block it landed in) and on no other.
    let store = Store::open_read_only(&journal).unwrap();
    let rows = store.recent(10_000).unwrap();
    let txs = store.all_txs().unwrap();
    let urls = [
        ("l1", format!("http://127.0.0.1:{}", devnet.anvil_port)),
        ("l2", format!("http://127.0.0.1:{port2}")),
    ];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut landed = [0u32; 2];
    for row in rows.iter().filter(|r| r.state == "landed") {
        let chain = row.chain.as_deref().expect("a multi-chain journal names the chain");
        let expected = if row.portfolio_name == "devnet-l2" { "l2" } else { "l1" };
        assert_eq!(chain, expected, "rebalance {} of `{}`", row.intent, row.portfolio_name);
        let own = urls.iter().position(|(n, _)| *n == chain).unwrap();
        landed[own] += 1;
        let hashes: Vec<B256> = txs.iter().filter(|t| t.1 == row.intent).map(|t| t.0).collect();
        assert!(!hashes.is_empty());
        rt.block_on(async {
            let on = |i: usize| ProviderBuilder::new().connect_http(urls[i].1.parse().unwrap());
            let (mine, other) = (on(own), on(1 - own));
            let mut found = 0;
            for h in &hashes {
                if let Some(r) = mine.get_transaction_receipt(*h).await.unwrap() {
                    assert!(r.status(), "transaction {h} of rebalance {} reverted", row.intent);
                    assert_eq!(r.block_number, row.block, "rebalance {}", row.intent);
                    found += 1;
                }
                assert!(
                    other.get_transaction_receipt(*h).await.unwrap().is_none(),
                    "transaction {h} of chain {chain} found on the other chain"
                );
            }
            assert!(found >= 1, "rebalance {} landed on {chain} but no receipt is there", row.intent);
        });
    }
    assert!(landed.iter().all(|n| *n >= 1), "landed per chain in the journal: {landed:?}");
    drop(devnet);
}
