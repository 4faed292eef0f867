//! The chain poller: one batched read per block however many portfolios (counted at the simulated
//! node), and heads from the node's `newHeads` stream with HTTP polling as the fallback when the
//! websocket drops (on anvil, through a proxy that can be cut).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use keel_bench::harness::book::{Book, BookConfig};
use keel_engine::chain::ChainUpdate;
use keel_engine::clock::LiveClock;
use keel_engine::{Engine, Event, PortfolioId, Queue, TokenId};
use keel_feeds::poll::{PollConfig, PollStats, PollTargets, WS_RETRY_EVERY, run_chain_poller};
use keel_runtime::pipeline::poll_targets;
use keel_sim::anvil::AnvilChain;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A running poller, cancelled on drop.
struct Poller {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<PollStats>,
    events: Arc<Queue<Event>>,
}

impl Poller {
    fn start(config: PollConfig, targets: PollTargets) -> Poller {
        let cancel = CancellationToken::new();
        let stats = Arc::new(PollStats::default());
        let events = Arc::new(Queue::new(1 << 20));
        let router: Arc<Queue<ChainUpdate>> = Arc::new(Queue::new(1 << 20));
        let (s, e, c) = (Arc::clone(&stats), Arc::clone(&events), cancel.clone());
        let task = tokio::spawn(async move {
            run_chain_poller(config, targets, e, router, s, c).await.expect("poller");
        });
        Poller { cancel, task, stats, events }
    }

    async fn stop(self) -> Arc<PollStats> {
        self.cancel.cancel();
        let _ = self.task.await;
        self.stats
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "{what}: not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_reads_each_block_of_300_portfolios_in_one_request() {
    let mut cfg = BookConfig::new(300);
    cfg.block_ms = 250;
    let book = Book::new(&cfg).unwrap();
    let sim = book.start_market(CancellationToken::new()).await.unwrap();
    let spec = book.pipeline_spec(sim.ws_url(), sim.rpc_url(), sim.relay_url()).unwrap();
    let engine =
        Engine::new(spec.engine.clone(), &spec.tokens, &spec.portfolios, Box::new(LiveClock)).unwrap();
    let targets = poll_targets(&spec, &engine).unwrap();
    assert_eq!(targets.balances.len(), 900, "three tokens per portfolio");
    assert_eq!(targets.accounts.len(), 300);
    let per_block_events = 1 + targets.balances.len() as u64;

    let before = sim.stats();
    let poller =
        Poller::start(PollConfig { rpc_url: sim.rpc_url(), ws_url: None, poll_ms: 50 }, targets.clone());
    let stats = Arc::clone(&poller.stats);
    wait_for("8 blocks read", Duration::from_secs(30), || stats.blocks.load(Ordering::Relaxed) >= 8).await;
    let events = Arc::clone(&poller.events);
    let stats = poller.stop().await;
    let after = sim.stats();
    sim.shutdown().await;

    let blocks = stats.blocks.load(Ordering::Relaxed);
    let batches = stats.batches.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    assert_eq!(errors, 0);
    // One batch per block read (the last may have been cut by the stop), plus the allowances' one.
    assert!(batches == blocks || batches == blocks + 1, "batches {batches}, blocks {blocks}");
    let node_batches = after.rpc_batches - before.rpc_batches;
    assert!(
        node_batches == blocks + 1 || node_batches == blocks + 2,
        "the node saw {node_batches} batch requests for {blocks} blocks (+1 for the allowances)"
    );
    // No state read outside a batch: every other request is a head poll.
    assert_eq!(after.rpc_single_state_reads, before.rpc_single_state_reads);
    // Each block read delivered the head and every balance.
    let mut n = 0u64;
    while events.try_pop().is_some() {
        n += 1;
    }
    assert_eq!(
        n,
        blocks * per_block_events,
        "{blocks} blocks × (head + {} balances)",
        targets.balances.len()
    );
}

/// A TCP proxy to `upstream` that can be cut: [`CutProxy::cut`] closes the listener and every
/// connection (a node whose websocket went away); [`CutProxy::start_on`] reopens on the same port.
struct CutProxy {
    port: u16,
    cancel: CancellationToken,
}

impl CutProxy {
    async fn start_on(port: u16, upstream: std::net::SocketAddr) -> CutProxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = c.cancelled() => return,
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => return },
                };
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = c.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        CutProxy { port, cancel }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.cancel.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_come_from_new_heads_and_fall_back_to_polling_when_the_websocket_drops() {
    let chain = AnvilChain::start().await.expect("anvil with Uniswap (run `make chain-deps`)");
    chain.set_automine(false).await.unwrap();
    let upstream = chain.ws_url().trim_start_matches("ws://").parse().expect("anvil ws address");
    let proxy = CutProxy::start_on(0, upstream).await;
    let port = proxy.port;
    let me = chain.address(1);
    let token = chain.addresses().token("TKA").unwrap();
    let targets = PollTargets {
        v2_pools: Vec::new(),
        balances: vec![(PortfolioId(0), me, TokenId(0), token)],
        accounts: vec![me],
        allowances: Vec::new(),
        ..Default::default()
    };
    let poller = Poller::start(
        PollConfig { rpc_url: chain.http_url().to_string(), ws_url: Some(proxy.url()), poll_ms: 50 },
        targets,
    );
    let stats = Arc::clone(&poller.stats);
    let read = |n: u64| stats.blocks.load(Ordering::Relaxed) >= n;
    wait_for("the newHeads session", Duration::from_secs(10), || {
        stats.ws_sessions.load(Ordering::Relaxed) == 1
    })
    .await;
    // The start's head is polled once; then every head comes from the stream.
    wait_for("the start block read", Duration::from_secs(10), || read(1)).await;
    let polled_at_start = stats.polled_heads.load(Ordering::Relaxed);
    assert_eq!(polled_at_start, 1);
    for k in 2..=4 {
        chain.mine().await.unwrap();
        wait_for("a streamed head read", Duration::from_secs(10), || read(k)).await;
    }
    assert!(stats.ws_heads.load(Ordering::Relaxed) >= 3);
    assert_eq!(stats.polled_heads.load(Ordering::Relaxed), polled_at_start, "no head polled while streaming");
    assert_eq!(stats.ws_fallbacks.load(Ordering::Relaxed), 0);

    // The websocket drops: polling takes over at once, and heads keep coming.
    proxy.cut();
    wait_for("the fallback", Duration::from_secs(10), || stats.ws_fallbacks.load(Ordering::Relaxed) >= 1)
        .await;
    let ws_heads = stats.ws_heads.load(Ordering::Relaxed);
    for k in 5..=7 {
        chain.mine().await.unwrap();
        wait_for("a polled head read", Duration::from_secs(5), || read(k)).await;
    }
    assert!(stats.polled_heads.load(Ordering::Relaxed) >= polled_at_start + 3);
    assert_eq!(stats.ws_heads.load(Ordering::Relaxed), ws_heads);

    // The websocket comes back: the poller returns to the stream on its next retry.
    let _proxy = CutProxy::start_on(port, upstream).await;
    wait_for("the second newHeads session", WS_RETRY_EVERY * 3, || {
        stats.ws_sessions.load(Ordering::Relaxed) == 2
    })
    .await;
    chain.mine().await.unwrap();
    wait_for("a streamed head after the return", Duration::from_secs(10), || {
        stats.ws_heads.load(Ordering::Relaxed) > ws_heads
    })
    .await;
    let stats = poller.stop().await;
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
}
