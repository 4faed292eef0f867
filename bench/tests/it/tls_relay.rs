//! The `https://` relay path, as every real relay is reached: a loopback relay behind TLS with a
//! certificate made in the test, trusted through `[[relays]] ca_cert`, carries real rebalances that
//! land on the simulated chain; a relay whose certificate another CA signed is refused in the
//! handshake (nothing is sent to it) and counted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keel_bench::harness::scenario::Scenario;
use keel_router::config::RelayConfig;
use keel_runtime::pipeline::Pipeline;
use keel_sim::tls::{TestCa, TlsFront};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_relay_trusted_through_ca_cert_lands_rebalances_and_a_wrong_certificate_is_refused() {
    let sc = Scenario::volatile(2).expect("scenario");
    let sim = sc.start_market(CancellationToken::new()).await.expect("simulated market");
    let relay_addr: SocketAddr =
        sim.relay_url().trim_start_matches("http://").trim_end_matches('/').parse().expect("relay address");

    let dir = tempfile::tempdir().unwrap();
    let ours = TestCa::new("keel test CA").unwrap();
    let theirs = TestCa::new("someone else's CA").unwrap();
    let ca_file = dir.path().join("relay-ca.pem");
    std::fs::write(&ca_file, ours.cert_pem()).unwrap();
    let good = TlsFront::start(&ours.issue_localhost().unwrap(), relay_addr).await.unwrap();
    let wrong = TlsFront::start(&theirs.issue_localhost().unwrap(), relay_addr).await.unwrap();

    let mut spec = sc.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).expect("spec");
    let relay = |name: &str, url: String| RelayConfig {
        name: name.into(),
        url,
        timeout_ms: 2_000,
        fast_path: true,
        ca_cert: Some(ca_file.clone()),
        coinbase: None,
    };
    spec.relays = vec![relay("tls", good.url()), relay("wrong-cert", wrong.url())];
    let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current()).expect("pipeline");
    let t0 = Instant::now();
    while pipeline.snapshot().engine.outcomes.landed < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "no landing over TLS: {:?}",
            pipeline.snapshot().engine
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = pipeline.shutdown().await;
    let stats = sim.stats();
    sim.shutdown().await;
    good.shutdown().await;
    wrong.shutdown().await;

    let (tls, bad) = (&report.relays[0], &report.relays[1]);
    // (Under load a request can miss its block and be refused by the relay: never for TLS.)
    assert!(tls.accepted >= 2 && tls.tls_refused == 0, "{tls:?}");
    assert_eq!(bad.accepted, 0, "a relay with an untrusted certificate was sent a bundle: {bad:?}");
    assert!(bad.failed >= 1 && bad.tls_refused == bad.failed, "{bad:?}");
    // Only the trusted front forwarded anything: every bundle the relay saw came through it.
    assert!(
        (tls.accepted..=tls.accepted + tls.failed).contains(&stats.bundles_received),
        "{stats:?} {tls:?}"
    );
    assert!(stats.bundles_landed >= 2, "{stats:?}");
}

#[test]
fn a_ca_cert_that_is_not_a_certificate_is_refused_naming_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-cert.pem");
    std::fs::write(&path, "hello").unwrap();
    let cfg = RelayConfig {
        name: "r1".into(),
        url: "https://localhost:1/".into(),
        timeout_ms: 100,
        fast_path: true,
        ca_cert: Some(path),
        coinbase: None,
    };
    let err = keel_router::relay::RelayClient::new(vec![cfg]).unwrap_err().to_string();
    assert!(err.contains("relays[r1].ca_cert") && err.contains("no PEM certificate"), "{err}");
}
