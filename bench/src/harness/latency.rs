//! `latency` and `throughput`: the production [`Pipeline`] (the code path `keel demo` runs: feed,
//! engine thread, router thread, signer, real relay client) against loopback services — the
//! [`Blaster`] for market data, the simulated market's node for chain reads, and the
//! [`StampingRelay`] (which forwards to the simulated relay) for bundles.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use keel_engine::clock::mono_now_ns;
use keel_engine::config::IdleWait;
use keel_feeds::binance::{InstrumentTable, Mapped, decode, map_decoded};
use tokio_util::sync::CancellationToken;

use super::blaster::{Blaster, BlasterConfig, FrameGen};
use super::relay::StampingRelay;
use super::report::{Stage, new_hist};
use super::scenario::{FIRE_MOVE, START_PRICE, Scenario};
use keel_runtime::pipeline::{Pipeline, PipelineReport};
use keel_sim::SimMarket;

/// Settings of a latency or throughput run.
#[derive(Debug, Clone)]
pub struct RigConfig {
    /// Portfolios (= assets = instruments), 1..=8.
    pub portfolios: usize,
    /// Fraction of frames that push a portfolio past its band.
    pub fire_fraction: f64,
    /// Print progress to stderr.
    pub progress: bool,
    /// How the engine and router threads wait when idle (`[engine] idle`, `idle_spin_us`).
    pub idle: (IdleWait, u64),
    /// Record every input of the run into this directory (`[record]`), to measure the recording's
    /// cost and to make a busy recording for `keel-bench replay`.
    pub record: Option<std::path::PathBuf>,
}

/// Everything running.
struct Rig {
    sim: SimMarket,
    relay: StampingRelay,
    blaster: Blaster,
    pipeline: Pipeline,
    cancel: CancellationToken,
    gen_cfg: BlasterConfig,
    symbols: Vec<String>,
}

impl Rig {
    async fn start(cfg: &RigConfig, rate: u64) -> eyre::Result<Rig> {
        let mut sc = Scenario::new(cfg.portfolios)?;
        (sc.engine.idle, sc.engine.idle_spin_us) = cfg.idle;
        let cancel = CancellationToken::new();
        let sim = sc.start_market(cancel.clone()).await?;
        let relay = StampingRelay::start(Some(sim.relay_url()), cancel.clone()).await?;
        let symbols = sc.symbols();
        let gen_cfg = BlasterConfig {
            symbols: symbols.iter().map(|s| (s.clone(), START_PRICE)).collect(),
            fire_fraction: cfg.fire_fraction,
            fire_move: FIRE_MOVE,
            stamp_crossings: false,
        };
        // The blaster starts paused: the pipeline must hold balances and pools first.
        let blaster = Blaster::start(gen_cfg.clone(), 0, cancel.clone()).await?;
        let mut spec = sc.pipeline_spec(blaster.url(), sim.rpc_url(), relay.url())?;
        if let Some(dir) = &cfg.record {
            spec.record = Some(keel_runtime::record::RecordSpec {
                dir: dir.clone(),
                max_file_bytes: keel_runtime::record::DEFAULT_MAX_FILE_MB * 1024 * 1024,
                config_toml: super::scenario::config_toml(cfg.portfolios)?,
                metadata_json: format!(r#"{{"recorder":"keel-bench","rate":{rate}}}"#),
            });
        }
        let pipeline = Pipeline::start(spec, &tokio::runtime::Handle::current())?;
        pipeline.observer().stamp_submits.store(true, Ordering::Relaxed);
        // Warm-up: let the poller read pools, balances and nonces, and a few frames set the prices.
        blaster.set_rate(1_000);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if pipeline.snapshot().portfolios.iter().all(|p| p.value.is_some())
                && t0.elapsed().as_millis() > 500
            {
                break;
            }
        }
        if cfg.progress {
            eprintln!(
                "warm-up {:.1} s: {} portfolios valued, {} frames read",
                t0.elapsed().as_secs_f64(),
                pipeline.snapshot().portfolios.iter().filter(|p| p.value.is_some()).count(),
                pipeline.feed_stats().frames
            );
        }
        blaster.set_rate(rate);
        Ok(Rig { sim, relay, blaster, pipeline, cancel, gen_cfg, symbols })
    }

    async fn stop(
        self,
    ) -> (PipelineReport, Vec<super::relay::Arrival>, Vec<keel_router::stage::SubmitStamp>) {
        self.blaster.set_rate(0);
        let observer = std::sync::Arc::clone(self.pipeline.observer());
        let report = self.pipeline.shutdown().await;
        // Replies to the last posts have had the pipeline's drain time; collect what arrived.
        let arrivals = self.relay.arrivals();
        let stamps = observer.submit_stamps.lock().clone();
        self.blaster.shutdown().await;
        self.relay.shutdown().await;
        self.sim.shutdown().await;
        self.cancel.cancel();
        (report, arrivals, stamps)
    }
}

/// What a latency run measured.
#[derive(Debug)]
pub struct LatencyRun {
    /// Frames the feed read.
    pub frames: u64,
    /// Frames the blaster sent.
    pub frames_sent: u64,
    /// Band-crossing frames sent.
    pub crossings: u64,
    /// Intents the engine emitted.
    pub fired: u64,
    /// Frames dropped at the engine queue.
    pub dropped: u64,
    /// Per-stage histograms, in pipeline order.
    pub stages: Vec<Stage>,
    /// Wall time of the measured part, s.
    pub seconds: f64,
    /// Rebalances that landed (executor outcomes).
    pub landed: u64,
    /// What the recording wrote, when the run was recorded.
    pub recording: Option<keel_runtime::record::RecordingReport>,
}

/// Times decode + instrument mapping of `n` frames of the sequence the blaster sends, one clock pair
/// per frame, on the calling thread.
pub fn decode_histogram(cfg: &BlasterConfig, symbols: &[String], n: u64) -> eyre::Result<Histogram<u64>> {
    let table = InstrumentTable::new(symbols.iter())?;
    let mut frames = FrameGen::new(cfg);
    let batch: Vec<String> = (0..n.min(100_000)).map(|_| frames.next_frame().0).collect();
    let mut h = new_hist();
    let mut left = n;
    while left > 0 {
        for f in batch.iter().take(left as usize) {
            let t0 = mono_now_ns();
            let ok = match decode(f.as_bytes()) {
                Ok(d) => matches!(map_decoded(&d, &table, t0), Mapped::Event(_)),
                Err(_) => false,
            };
            let t1 = mono_now_ns();
            std::hint::black_box(ok);
            h.record((t1 - t0).max(1))?;
        }
        left = left.saturating_sub(batch.len() as u64);
    }
    Ok(h)
}

/// Runs the pipeline at `rate` frames/s for `duration`, then collects the per-stage histograms.
pub async fn run_latency(cfg: &RigConfig, rate: u64, duration: Duration) -> eyre::Result<LatencyRun> {
    let rig = Rig::start(cfg, rate).await?;
    let (sent0, cross0) = (
        rig.blaster.stats().sent.load(Ordering::Relaxed),
        rig.blaster.stats().crossings.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    let mut last = Instant::now();
    while t0.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(100).min(duration.saturating_sub(t0.elapsed()))).await;
        if cfg.progress && last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let snap = rig.pipeline.snapshot();
            eprintln!(
                "t={:>4.1}s sent {:>8} read {:>8} triggers {:>5} queue {:>5} dropped {}",
                t0.elapsed().as_secs_f64(),
                rig.blaster.stats().sent.load(Ordering::Relaxed) - sent0,
                rig.pipeline.feed_stats().frames,
                snap.engine.triggers.drift + snap.engine.triggers.volatility + snap.engine.triggers.temporal,
                rig.pipeline.event_queue_len(),
                rig.pipeline.event_queue_stats().dropped,
            );
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let frames_sent = rig.blaster.stats().sent.load(Ordering::Relaxed) - sent0;
    let crossings = rig.blaster.stats().crossings.load(Ordering::Relaxed) - cross0;
    let (gen_cfg, symbols) = (rig.gen_cfg.clone(), rig.symbols.clone());
    let (report, arrivals, stamps) = rig.stop().await;

    let mut router_queue = new_hist();
    let mut route_sign = new_hist();
    let mut tick_to_signed = new_hist();
    let mut post = new_hist();
    let mut posted_to_relay = new_hist();
    let mut tick_to_wire = new_hist();
    let by_header: std::collections::HashMap<&str, u64> =
        arrivals.iter().map(|a| (a.signature_header.as_str(), a.arrival_ns)).collect();
    for s in &stamps {
        if s.decided_ns > 0 {
            router_queue.record(s.popped_ns.saturating_sub(s.decided_ns).max(1))?;
        }
        route_sign.record(s.signed_ns.saturating_sub(s.popped_ns).max(1))?;
        tick_to_signed.record(s.signed_ns.saturating_sub(s.event_recv_ns).max(1))?;
        post.record(s.posted_ns.saturating_sub(s.signed_ns).max(1))?;
        if let Some(&arr) = by_header.get(s.signature_header.as_str()) {
            posted_to_relay.record(arr.saturating_sub(s.posted_ns).max(1))?;
            tick_to_wire.record(arr.saturating_sub(s.event_recv_ns).max(1))?;
        }
    }
    let frames = report.feed.frames;
    let decode = decode_histogram(&gen_cfg, &symbols, frames.max(1))?;
    let landed = report
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o.status, keel_engine::event::OutcomeStatus::Landed { .. }))
        .count() as u64;
    let stages = vec![
        Stage {
            name: "decode",
            what: "frame bytes → decoded event (same frames, timed in the harness)",
            hist: decode,
        },
        Stage {
            name: "quote_to_decision",
            what: "frame read → engine applied it and evaluated triggers (every quote; includes the queue hop)",
            hist: report.engine.quote_to_decision.clone(),
        },
        Stage {
            name: "decide",
            what: "frame read → trigger decision and plan (quotes that fired)",
            hist: report.engine.decide.clone(),
        },
        Stage { name: "router_queue", what: "decision → popped by the router thread", hist: router_queue },
        Stage {
            name: "route_sign",
            what: "popped → routed, transaction signed, bundle encoded, header signed",
            hist: route_sign,
        },
        Stage {
            name: "tick_to_signed",
            what: "frame read → signed request ready to post",
            hist: tick_to_signed,
        },
        Stage {
            name: "post",
            what: "signed → request written to the relay socket (fast path) or handed to the runtime",
            hist: post,
        },
        Stage {
            name: "posted_to_relay",
            what: "written → loopback relay's handler saw it (kernel, relay wake-up, HTTP parsing)",
            hist: posted_to_relay,
        },
        Stage {
            name: "tick_to_wire",
            what: "frame read → request received by the loopback relay",
            hist: tick_to_wire,
        },
        Stage {
            name: "relay_ack",
            what: "post started → relay answer read (relay client round trip)",
            hist: report.relay_rtt.clone(),
        },
    ];
    Ok(LatencyRun {
        frames,
        frames_sent,
        crossings,
        fired: report.engine.fired.iter().sum(),
        dropped: report.event_queue.dropped,
        stages,
        seconds,
        landed,
        recording: report.recording.clone(),
    })
}

/// One step of the throughput ladder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThroughputTrial {
    /// Offered rate, frames/s.
    pub rate: u64,
    /// Achieved send rate, frames/s.
    pub sent_per_s: f64,
    /// Frames sent.
    pub sent: u64,
    /// Frames the feed read.
    pub read: u64,
    /// Frames dropped at the engine queue.
    pub dropped: u64,
    /// Deepest engine queue sampled (every ms).
    pub max_depth: usize,
    /// Whether the step passed.
    pub pass: bool,
}

/// Steps the rate up with short trials on one running pipeline; a trial passes when the blaster
/// sustained ≥ 97 % of the offered rate, the feed read every frame sent, none was dropped and the
/// engine queue never held more than `max_depth` events. Returns the trials run.
pub async fn run_throughput(
    cfg: &RigConfig,
    rates: &[u64],
    trial: Duration,
    max_depth: usize,
) -> eyre::Result<Vec<ThroughputTrial>> {
    let rig = Rig::start(cfg, 0).await?;
    let mut out = Vec::new();
    for &rate in rates {
        let st = rig.blaster.stats();
        // Every frame the feed reads comes from the blaster: running totals are compared, so frames
        // of a previous trial still in flight count where they belong.
        let (sent0, drop0) = (st.sent.load(Ordering::Relaxed), rig.pipeline.event_queue_stats().dropped);
        rig.blaster.set_rate(rate);
        let t0 = Instant::now();
        let mut depth = 0usize;
        while t0.elapsed() < trial {
            tokio::time::sleep(Duration::from_millis(1)).await;
            depth = depth.max(rig.pipeline.event_queue_len());
        }
        let secs = t0.elapsed().as_secs_f64();
        rig.blaster.set_rate(0);
        // Drain: everything sent must be read.
        let t1 = Instant::now();
        let unread = || st.sent.load(Ordering::Relaxed).saturating_sub(rig.pipeline.feed_stats().frames);
        while unread() > 0 && t1.elapsed() < Duration::from_millis(500) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            depth = depth.max(rig.pipeline.event_queue_len());
        }
        let sent = st.sent.load(Ordering::Relaxed) - sent0;
        let read = sent.saturating_sub(unread());
        let dropped = rig.pipeline.event_queue_stats().dropped - drop0;
        let sent_per_s = sent as f64 / secs;
        let pass = sent_per_s >= 0.97 * rate as f64 && read == sent && dropped == 0 && depth <= max_depth;
        if cfg.progress {
            eprintln!(
                "rate {rate:>7}/s: sent {sent_per_s:>9.0}/s read {read}/{sent} dropped {dropped} max depth {depth} → {}",
                if pass { "ok" } else { "FAIL" }
            );
        }
        out.push(ThroughputTrial { rate, sent_per_s, sent, read, dropped, max_depth: depth, pass });
        if !pass {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = rig.stop().await;
    Ok(out)
}
