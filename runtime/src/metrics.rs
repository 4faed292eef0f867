//! Prometheus exposition of a running pipeline: engine events, triggers and suppressions, queue
//! depths and drops, feed health, relay submissions per relay, landing rate, tick-to-wire and relay
//! round-trip histograms, time to inclusion, the kill switch, and the oracle guard's refusals by pool
//! and reason. Served at `GET /metrics` on the control endpoint (127.0.0.1), in the OpenMetrics text
//! format, encoded by the `prometheus-client` crate (label values escaped by it).
//!
//! Everything is read at scrape time from counters and snapshots the stages already keep (a
//! [`Collector`]); rendering takes the few locks off the hot path (the engine publishes its snapshot
//! every sample interval). Histograms keep fixed buckets; the tick-to-wire and relay round-trip
//! ones are read off the stage's HDR histograms (3 significant digits), so their `_sum` is the
//! HDR mean × count.
//!
//! With several chains (`[[chains]]`), every series read from a chain's router stage, router queue
//! or poller is exported once per chain with a `chain` label ([`ChainSources`]); a single-chain
//! run's series carry no `chain` label, as before chains existed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use keel_engine::event::Event;
use keel_engine::queue::Queue;
use keel_feeds::stats::FeedStats;
use keel_router::exec::FixedHistogram;
use keel_router::stage::{RouterInput, StageObserver};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::pipeline::Snapshot;
use crate::safety::KillSwitch;

/// The `Content-Type` of [`MetricsSources::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the tick-to-wire histogram's buckets.
pub const TICK_TO_WIRE_BOUNDS: &[f64] =
    &[5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1.0];
/// Upper bounds (seconds) of the relay round-trip histogram's buckets.
pub const RELAY_RTT_BOUNDS: &[f64] =
    &[100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 5.0];

/// Where the metrics come from.
#[derive(Debug, Clone)]
pub struct MetricsSources {
    /// The engine's published snapshot.
    pub snapshot: Arc<Mutex<Snapshot>>,
    /// Each chain's router stage, input queue and poller (one for a single-chain run). With
    /// several, every router series gets a `chain` label; with one, the series are unlabelled by
    /// chain, as before chains existed.
    pub chains: Vec<ChainSources>,
    /// The market-data feed's counters.
    pub feed: Arc<FeedStats>,
    /// The engine input queue.
    pub events: Arc<Queue<Event>>,
    /// The kill switch.
    pub kill: Arc<KillSwitch>,
    /// The control endpoint's counters.
    pub control: Arc<crate::control::ControlStats>,
    /// The input recording, when `[record]` is on.
    pub recorder: Option<Arc<keel_recording::Recorder>>,
    /// The chain watches' trips.
    pub watches: Arc<crate::watch::WatchStats>,
    /// The predictor readers' counters.
    pub predictors: Arc<crate::predictor::PredictorStats>,
    /// The node feed's counters (zero without `ws_url`).
    pub node: Arc<keel_feeds::node::NodeFeedStats>,
    /// The mempool feed's counters (zero without `ws_url`).
    pub mempool: Arc<keel_feeds::node::MempoolStats>,
}

/// One chain's sources of metrics.
#[derive(Debug, Clone)]
pub struct ChainSources {
    /// Chain name (the `chain` label).
    pub name: String,
    /// Its router stage's observations.
    pub observer: Arc<StageObserver>,
    /// Its router's input queue.
    pub router_in: Arc<Queue<RouterInput>>,
    /// Its chain poller's counters (blocks read, last head).
    pub poll: Arc<keel_feeds::poll::PollStats>,
}

type Fmt = Result<(), std::fmt::Error>;

/// Borrowed series of owned label sets.
fn series<'a>(v: &'a [(Vec<(&'a str, &'a str)>, u64)]) -> Vec<(&'a [(&'a str, &'a str)], u64)> {
    v.iter().map(|(l, n)| (&l[..], *n)).collect()
}

/// `labels` with `("chain", name)` in front when `several` chains run.
fn with_chain<'a>(several: bool, name: &'a str, labels: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut out = Vec::with_capacity(labels.len() + 1);
    if several {
        out.push(("chain", name));
    }
    out.extend_from_slice(labels);
    out
}

/// One counter series per label set. `name` without the `_total` suffix (the encoder adds it).
fn counters(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(&[(&str, &str)], u64)],
) -> Fmt {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    if let [(labels, value)] = series
        && labels.is_empty()
    {
        return ConstCounter::new(*value).encode(family);
    }
    for (labels, value) in series {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// One unlabelled counter.
fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Fmt {
    counters(enc, name, help, &[(&[], value)])
}

/// One gauge series per label set.
fn gauges<N: EncodeGaugeValue + Copy>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(&[(&str, &str)], N)],
) -> Fmt {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if let [(labels, value)] = series
        && labels.is_empty()
    {
        return ConstGauge::new(*value).encode(family);
    }
    for (labels, value) in series {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// A fixed-bucket histogram series of `family` with `labels`.
fn fixed_histogram(
    family: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &[(&str, &str)],
    h: &FixedHistogram,
) -> Fmt {
    let buckets: Vec<(f64, u64)> = h.buckets().collect();
    if labels.is_empty() {
        return family.encode_histogram::<NoLabelSet>(h.sum(), h.count(), &buckets, None);
    }
    family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(h.sum(), h.count(), &buckets, None)
}

/// An HDR histogram of nanoseconds as a histogram series of seconds over `bounds`, of `family`
/// with `labels`.
fn hdr_histogram(
    family: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &[(&str, &str)],
    h: &Histogram<u64>,
    bounds: &[f64],
) -> Fmt {
    let buckets = hdr_buckets(h, bounds);
    let sum = if h.is_empty() { 0.0 } else { h.mean() * h.len() as f64 / 1e9 };
    if labels.is_empty() {
        return family.encode_histogram::<NoLabelSet>(sum, h.len(), &buckets, None);
    }
    family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, h.len(), &buckets, None)
}

/// Per-bucket counts (not cumulative) of an HDR histogram of nanoseconds over `bounds` in seconds,
/// plus the `+Inf` bucket. A value falls in the first bucket whose bound holds it, as HDR's
/// equivalent-value ranges place it.
fn hdr_buckets(h: &Histogram<u64>, bounds: &[f64]) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut below = 0u64;
    for &b in bounds {
        let ns = (b * 1e9) as u64;
        let upto = if h.is_empty() { 0 } else { h.count_between(0, ns) };
        out.push((b, upto.saturating_sub(below)));
        below = upto.max(below);
    }
    out.push((f64::INFINITY, h.len().saturating_sub(below)));
    out
}

impl MetricsSources {
    /// The exposition text (OpenMetrics, ending in `# EOF`).
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::with_capacity(8192);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

impl Collector for MetricsSources {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Fmt {
        let enc = &mut enc;
        let snap = self.snapshot.lock().clone();
        let e = &snap.engine;
        let ev = &e.events;
        counters(
            enc,
            "keel_events",
            "Events processed by the engine, by kind.",
            &[
                (&[("kind", "quote")], ev.quotes),
                (&[("kind", "trade")], ev.trades),
                (&[("kind", "block")], ev.blocks),
                (&[("kind", "balance")], ev.balances),
                (&[("kind", "outcome")], ev.outcomes),
                (&[("kind", "timer")], ev.timers),
            ],
        )?;
        counters(
            enc,
            "keel_triggers",
            "Triggers fired, by kind.",
            &[
                (&[("kind", "drift")], e.triggers.drift),
                (&[("kind", "volatility")], e.triggers.volatility),
                (&[("kind", "temporal")], e.triggers.temporal),
            ],
        )?;
        let s = &e.suppressed;
        counters(
            enc,
            "keel_suppressed",
            "Trigger evaluations suppressed, by reason.",
            &[
                (&[("reason", "in_flight")], s.in_flight),
                (&[("reason", "awaiting_balances")], s.awaiting_balances),
                (&[("reason", "cooldown")], s.cooldown),
                (&[("reason", "stale_price")], s.stale_price),
                (&[("reason", "missing_price")], s.missing_price),
                (&[("reason", "holdings_unknown")], s.holdings_unknown),
            ],
        )?;
        counter(enc, "keel_intents", "Rebalances decided.", e.intents_emitted)?;
        let o = &e.outcomes;
        counters(
            enc,
            "keel_outcomes",
            "Rebalance outcomes, by status.",
            &[
                (&[("status", "landed")], o.landed),
                (&[("status", "expired")], o.expired),
                (&[("status", "rejected")], o.rejected),
            ],
        )?;
        let settled = o.landed + o.expired;
        let rate = if settled > 0 { o.landed as f64 / settled as f64 } else { 0.0 };
        gauges(enc, "keel_landing_rate", "Landed / (landed + expired) rebalances.", &[(&[], rate)])?;
        let several = self.chains.len() > 1;
        let router_labels: Vec<Vec<(&str, &str)>> =
            self.chains.iter().map(|c| with_chain(several, &c.name, &[("queue", "router")])).collect();
        let mut depth: Vec<(&[(&str, &str)], u64)> = vec![(&[("queue", "events")], self.events.len() as u64)];
        let mut dropped: Vec<(&[(&str, &str)], u64)> =
            vec![(&[("queue", "events")], self.events.stats().dropped)];
        for (c, labels) in self.chains.iter().zip(&router_labels) {
            depth.push((labels, c.router_in.len() as u64));
            dropped.push((labels, c.router_in.stats().dropped));
        }
        gauges(enc, "keel_queue_depth", "Values waiting in a queue.", &depth)?;
        counters(enc, "keel_queue_dropped", "Values refused by a full queue.", &dropped)?;
        let head_labels: Vec<Vec<(&str, &str)>> =
            self.chains.iter().map(|c| with_chain(several, &c.name, &[])).collect();
        let heads: Vec<(&[(&str, &str)], i64)> = self
            .chains
            .iter()
            .zip(&head_labels)
            .map(|(c, l)| (&l[..], c.poll.last_block.load(Ordering::Relaxed).min(i64::MAX as u64) as i64))
            .collect();
        gauges(enc, "keel_chain_head", "Highest block the chain poller has read (0: none yet).", &heads)?;
        let skipped: Vec<(&[(&str, &str)], u64)> = self
            .chains
            .iter()
            .zip(&head_labels)
            .map(|(c, l)| (&l[..], c.poll.pool_reads_skipped.load(Ordering::Relaxed)))
            .collect();
        counters(
            enc,
            "keel_pool_reads_skipped",
            "Balancer and Curve pool reads the chain poller skipped because they failed (one per pool and block).",
            &skipped,
        )?;
        let pr = &self.predictors;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        counter(enc, "keel_predictor_messages", "Predictor messages read.", ld(&pr.messages))?;
        counter(enc, "keel_predictor_applied", "Predictor weights applied.", ld(&pr.applied))?;
        counter(
            enc,
            "keel_predictor_fallbacks",
            "Fallbacks to configured targets (stale predictor).",
            ld(&pr.fallbacks),
        )?;
        let kinds: Vec<[(&str, &str); 1]> =
            crate::predictor::REFUSAL_KINDS.iter().map(|k| [("kind", *k)]).collect();
        let refused: Vec<(&[(&str, &str)], u64)> =
            kinds.iter().zip(&pr.refused).map(|(l, n)| (&l[..], ld(n))).collect();
        counters(enc, "keel_predictor_refused", "Predictor messages refused, by kind.", &refused)?;
        let (n, m) = (&self.node, &self.mempool);
        counter(enc, "keel_node_heads", "Heads from the node's newHeads stream.", ld(&n.heads))?;
        counter(enc, "keel_node_logs", "Pool logs from the node.", ld(&n.logs))?;
        counter(
            enc,
            "keel_node_resyncs",
            "Full pool reloads (start, gap, reconnect, deep reorg).",
            ld(&n.resyncs),
        )?;
        counter(enc, "keel_node_reorgs", "Reorg rollbacks of pool state.", ld(&n.reorgs))?;
        counter(
            enc,
            "keel_node_reconnects",
            "Node feed sessions that ended in an error.",
            ld(&n.reconnects),
        )?;
        counter(enc, "keel_node_dropped", "Node feed messages refused by a full queue.", ld(&n.dropped))?;
        let evicted = [
            (&[("why", "replaced")][..], ld(&n.pending_replaced)),
            (&[("why", "included")][..], ld(&n.pending_included)),
            (&[("why", "aged")][..], ld(&n.pending_aged)),
            (&[("why", "capped")][..], ld(&n.pending_capped)),
        ];
        counters(enc, "keel_mempool_evicted", "Pending swaps evicted from the view, by reason.", &evicted)?;
        gauges(
            enc,
            "keel_mempool_pending",
            "Pending swaps on tracked pools in the view.",
            &[(&[], ld(&n.pending_txs) as i64)],
        )?;
        counter(enc, "keel_mempool_received", "Pending transactions received.", ld(&m.received))?;
        counter(enc, "keel_mempool_decoded", "Pending swaps decoded on tracked pools.", ld(&m.decoded))?;
        counter(
            enc,
            "keel_mempool_malformed",
            "Calldata to a known router that did not decode.",
            ld(&m.malformed),
        )?;
        counter(
            enc,
            "keel_mempool_dropped",
            "Decoded pending swaps refused by a full queue.",
            ld(&m.dropped),
        )?;
        counter(enc, "keel_mempool_reconnects", "Mempool feed sessions restarted.", ld(&m.reconnects))?;
        let f = self.feed.snapshot();
        counter(enc, "keel_feed_frames", "Exchange frames read.", f.frames)?;
        counter(enc, "keel_feed_malformed", "Malformed frames skipped.", f.malformed)?;
        counter(enc, "keel_feed_reconnects", "Exchange feed reconnects.", f.reconnects)?;
        let relays: Vec<_> = self.chains.iter().map(|c| c.observer.relays.lock().clone()).collect();
        let mut family = enc.encode_descriptor(
            "keel_relay_requests",
            "Bundle submissions per relay and result.",
            None,
            MetricType::Counter,
        )?;
        for (c, relays) in self.chains.iter().zip(&relays) {
            for r in relays {
                for (result, n) in [("accepted", r.accepted), ("failed", r.failed)] {
                    let labels =
                        with_chain(several, &c.name, &[("relay", r.name.as_str()), ("result", result)]);
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let by: Vec<_> = self.chains.iter().map(|c| c.observer.included_by.lock().clone()).collect();
        let mut family = enc.encode_descriptor(
            "keel_included",
            "Landed rebalances by the builder that included them (its extra data, else its coinbase).",
            None,
            MetricType::Counter,
        )?;
        for (c, by) in self.chains.iter().zip(&by) {
            for (builder, n) in &by.builders {
                let labels = with_chain(several, &c.name, &[("builder", builder.as_str())]);
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = enc.encode_descriptor(
            "keel_relay_included",
            "Landed rebalances included by each relay's builder (`[[relays]] coinbase`).",
            None,
            MetricType::Counter,
        )?;
        for ((c, relays), by) in self.chains.iter().zip(&relays).zip(&by) {
            for r in relays {
                let n = by.relays.iter().find(|(name, _)| *name == r.name).map_or(0, |(_, n)| *n);
                let labels = with_chain(several, &c.name, &[("relay", r.name.as_str())]);
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = enc.encode_descriptor(
            "keel_relay_tls_refused",
            "Submissions whose TLS handshake failed (the relay's certificate not trusted), per relay.",
            None,
            MetricType::Counter,
        )?;
        for (c, relays) in self.chains.iter().zip(&relays) {
            for r in relays {
                let labels = with_chain(several, &c.name, &[("relay", r.name.as_str())]);
                ConstCounter::new(r.tls_refused).encode(family.encode_family(&labels)?)?;
            }
        }
        let hists: Vec<_> = self
            .chains
            .iter()
            .map(|c| {
                let t = c.observer.tick_to_wire.lock().clone();
                let r = c.observer.relay_rtt.lock().clone();
                (t, r, c.observer.inclusion.lock().clone())
            })
            .collect();
        let mut family = enc.encode_descriptor(
            "keel_tick_to_wire_seconds",
            "Event receive to signed bundle request handed to the relay client.",
            None,
            MetricType::Histogram,
        )?;
        for (c, (t, _, _)) in self.chains.iter().zip(&hists) {
            hdr_histogram(&mut family, &with_chain(several, &c.name, &[]), t, TICK_TO_WIRE_BOUNDS)?;
        }
        let mut family = enc.encode_descriptor(
            "keel_relay_rtt_seconds",
            "Relay request round trip.",
            None,
            MetricType::Histogram,
        )?;
        for (c, (_, r, _)) in self.chains.iter().zip(&hists) {
            hdr_histogram(&mut family, &with_chain(several, &c.name, &[]), r, RELAY_RTT_BOUNDS)?;
        }
        type Pick = fn(&keel_router::exec::InclusionStats) -> &FixedHistogram;
        let inclusion: [(&str, &str, Pick); 3] = [
            (
                "keel_inclusion_blocks",
                "Blocks from a landed rebalance's first target block to its landing block (1 = first try).",
                |i| &i.blocks,
            ),
            (
                "keel_inclusion_seconds",
                "Seconds from a landed rebalance's first send to the head that showed it landed.",
                |i| &i.seconds,
            ),
            (
                "keel_inclusion_versions",
                "Signed versions sent of a landed rebalance (fee re-signs and batch re-plans add one).",
                |i| &i.versions,
            ),
        ];
        for (name, help, pick) in inclusion {
            let mut family = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (c, (_, _, inc)) in self.chains.iter().zip(&hists) {
                fixed_histogram(&mut family, &with_chain(several, &c.name, &[]), pick(inc))?;
            }
        }
        let k = self.kill.status();
        gauges(
            enc,
            "keel_kill_switch_engaged",
            "1 while new rebalances are stopped.",
            &[(&[], i64::from(k.halted))],
        )?;
        counter(enc, "keel_kill_switch_blocked", "Rebalances the kill switch stopped.", k.blocked)?;
        let trips: Vec<_> =
            crate::watch::WatchKind::ALL.iter().map(|w| (w.label(), self.watches.trips(*w))).collect();
        let mut family = enc.encode_descriptor(
            "keel_kill_switch_trips",
            "Chain watches that engaged the kill switch, by watch (depeg, liquidity, landing, oracle, base_fee).",
            None,
            MetricType::Counter,
        )?;
        for (watch, n) in trips {
            ConstCounter::new(n).encode(family.encode_family(&[("watch", watch)])?)?;
        }
        counter(
            enc,
            "keel_control_unauthorized",
            "Control requests refused for a missing or wrong bearer token.",
            self.control.unauthorized.load(Ordering::Relaxed),
        )?;
        let guards: Vec<_> = self.chains.iter().map(|c| c.observer.oracle_guard.lock().clone()).collect();
        let mut family = enc.encode_descriptor(
            "keel_oracle_guard_blocked",
            "Rebalances the oracle guard refused, by pool and reason (stale_pool, spot_vs_reference, twap_vs_reference, spot_vs_twap).",
            None,
            MetricType::Counter,
        )?;
        for (c, guard) in self.chains.iter().zip(&guards) {
            for (pool, reason, n) in guard.iter() {
                let labels = with_chain(several, &c.name, &[("pool", pool), ("reason", reason)]);
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let per_chain = |read: fn(&StageObserver) -> u64| -> Vec<(Vec<(&str, &str)>, u64)> {
            self.chains.iter().map(|c| (with_chain(several, &c.name, &[]), read(&c.observer))).collect()
        };
        let dry = per_chain(|o| o.dry_run_bundles.load(Ordering::Relaxed));
        let held = per_chain(|o| o.journal_held.load(Ordering::Relaxed));
        counters(enc, "keel_dry_run_bundles", "Bundles built but not posted (dry run).", &series(&dry))?;
        counters(
            enc,
            "keel_journal_held_bundles",
            "Bundles held back because their journal record could not be committed (must stay 0).",
            &series(&held),
        )?;
        if let Some(r) = &self.recorder {
            let st = r.stats();
            counter(enc, "keel_record_records", "Inputs written to the recording.", st.records)?;
            counters(
                enc,
                "keel_record_dropped",
                "Inputs the recording dropped (its queue full, or larger than a slot); the run is unaffected.",
                &[(&[("reason", "full")], st.dropped_full), (&[("reason", "oversize")], st.dropped_oversize)],
            )?;
            gauges(
                enc,
                "keel_record_queued",
                "Inputs waiting for the recording's writer.",
                &[(&[], st.queued)],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sources(relay: &str) -> MetricsSources {
        let m = MetricsSources {
            snapshot: Arc::new(Mutex::new(Snapshot::default())),
            chains: vec![chain("chain", relay)],
            feed: Arc::new(FeedStats::new()),
            events: Arc::new(Queue::new(8)),
            kill: Arc::new(KillSwitch::default()),
            control: Arc::new(crate::control::ControlStats::default()),
            recorder: None,
            watches: Default::default(),
            predictors: Default::default(),
            node: Default::default(),
            mempool: Default::default(),
        };
        let oracle = keel_router::oracle::Oracle::new(vec!["pool-a".into()], 60, 10);
        *m.chains[0].observer.oracle_guard.lock() = oracle.counts().clone();
        m
    }

    pub(crate) fn chain(name: &str, relay: &str) -> ChainSources {
        ChainSources {
            name: name.into(),
            observer: Arc::new(StageObserver::new([relay.to_string()])),
            router_in: Arc::new(Queue::new(8)),
            poll: Default::default(),
        }
    }

    #[test]
    fn with_several_chains_every_router_series_names_its_chain() {
        use std::sync::atomic::Ordering::Relaxed;
        let mut m = sources("flashbots");
        // l1 keeps the fixture's observer (its oracle guard knows `pool-a`).
        m.chains =
            vec![ChainSources { name: "l1".into(), ..m.chains[0].clone() }, chain("l2", "private_rpc")];
        m.chains[0].observer.relays.lock()[0].accepted = 3;
        m.chains[1].observer.relays.lock()[0].accepted = 5;
        m.chains[1].observer.tick_to_wire.lock().record(20_000).unwrap();
        m.chains[0].poll.last_block.store(123, Relaxed);
        m.chains[1].poll.last_block.store(45, Relaxed);
        m.chains[1].poll.pool_reads_skipped.store(4, Relaxed);
        m.chains[1].observer.dry_run_bundles.store(2, Relaxed);
        let text = m.render();
        let l1 = r#"keel_relay_requests_total{chain="l1",relay="flashbots",result="accepted"}"#;
        let l2 = r#"keel_relay_requests_total{chain="l2",relay="private_rpc",result="accepted"}"#;
        assert_eq!((value(&text, l1), value(&text, l2)), (3.0, 5.0), "{text}");
        assert_eq!(value(&text, r#"keel_tick_to_wire_seconds_count{chain="l2"}"#), 1.0, "{text}");
        assert_eq!(value(&text, r#"keel_tick_to_wire_seconds_count{chain="l1"}"#), 0.0, "{text}");
        assert_eq!(value(&text, r#"keel_inclusion_blocks_count{chain="l2"}"#), 0.0, "{text}");
        assert_eq!(value(&text, r#"keel_chain_head{chain="l1"}"#), 123.0, "{text}");
        assert_eq!(value(&text, r#"keel_chain_head{chain="l2"}"#), 45.0, "{text}");
        assert_eq!(value(&text, r#"keel_pool_reads_skipped_total{chain="l2"}"#), 4.0, "{text}");
        assert_eq!(value(&text, r#"keel_pool_reads_skipped_total{chain="l1"}"#), 0.0, "{text}");
        assert_eq!(value(&text, r#"keel_queue_depth{chain="l2",queue="router"}"#), 0.0, "{text}");
        assert_eq!(value(&text, r#"keel_dry_run_bundles_total{chain="l2"}"#), 2.0, "{text}");
        assert_eq!(
            value(&text, r#"keel_oracle_guard_blocked_total{chain="l1",pool="pool-a",reason="stale_pool"}"#),
            0.0,
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        // One chain: no chain label, as before.
        let one = sources("flashbots").render();
        assert_eq!(value(&one, "keel_chain_head"), 0.0, "{one}");
        assert!(!one.contains("chain=\""), "{one}");
    }

    /// The value of the series line that starts with `prefix ` (exact series name and labels).
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn tick_to_wire_is_a_cumulative_histogram_in_seconds() {
        let m = sources("relay");
        for ns in [3_000u64, 20_000, 20_000, 400_000, 2_000_000_000] {
            m.chains[0].observer.tick_to_wire.lock().record(ns).unwrap();
        }
        let text = m.render();
        assert!(text.contains("# TYPE keel_tick_to_wire_seconds histogram"), "{text}");
        assert_eq!(value(&text, "keel_tick_to_wire_seconds_bucket{le=\"0.000005\"}"), 1.0, "{text}");
        assert_eq!(value(&text, "keel_tick_to_wire_seconds_bucket{le=\"0.000025\"}"), 3.0, "{text}");
        assert_eq!(value(&text, "keel_tick_to_wire_seconds_bucket{le=\"0.0005\"}"), 4.0, "{text}");
        assert_eq!(value(&text, "keel_tick_to_wire_seconds_bucket{le=\"1.0\"}"), 4.0, "{text}");
        assert_eq!(value(&text, "keel_tick_to_wire_seconds_bucket{le=\"+Inf\"}"), 5.0, "{text}");
        assert_eq!(value(&text, "keel_tick_to_wire_seconds_count"), 5.0);
        let sum = value(&text, "keel_tick_to_wire_seconds_sum");
        assert!((sum - 2.000443).abs() < 0.002, "sum {sum}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped_and_counters_end_in_total() {
        let m = sources("odd \"relay\"\\name\n");
        let text = m.render();
        assert!(
            text.contains(r#"keel_relay_requests_total{relay="odd \"relay\"\\name\n",result="accepted"} 0"#),
            "{text}"
        );
        assert!(text.contains("# TYPE keel_events counter"), "{text}");
        assert_eq!(value(&text, "keel_events_total{kind=\"quote\"}"), 0.0);
        assert!(text.contains("\nkeel_kill_switch_engaged 0\n"), "{text}");
        m.kill.engage("test");
        assert!(m.render().contains("\nkeel_kill_switch_engaged 1\n"));
    }

    #[test]
    fn inclusion_histograms_are_exported() {
        let m = sources("relay");
        {
            let mut inc = m.chains[0].observer.inclusion.lock();
            inc.blocks.observe(1.0);
            inc.blocks.observe(3.0);
            inc.seconds.observe(0.7);
        }
        let text = m.render();
        assert_eq!(value(&text, "keel_inclusion_blocks_bucket{le=\"1.0\"}"), 1.0, "{text}");
        assert_eq!(value(&text, "keel_inclusion_blocks_bucket{le=\"3.0\"}"), 2.0, "{text}");
        assert_eq!(value(&text, "keel_inclusion_blocks_count"), 2.0);
        assert_eq!(value(&text, "keel_inclusion_seconds_bucket{le=\"1.0\"}"), 1.0, "{text}");
    }

    #[test]
    fn landings_are_counted_per_builder_and_per_relays_builder() {
        use alloy::primitives::Address;
        let m = sources("alpha");
        let landing = |builder: &str, relays: &[&str]| keel_engine::record::Inclusion {
            intent: 1,
            block: 1,
            coinbase: Address::repeat_byte(0xa1),
            builder: builder.into(),
            blocks: 1,
            seconds: None,
            versions: 1,
            fee_wei: 0,
            relays: relays.iter().map(|r| r.to_string()).collect(),
        };
        m.chains[0].observer.count_inclusion(&landing("titan", &["alpha"]));
        m.chains[0].observer.count_inclusion(&landing("titan", &["alpha"]));
        m.chains[0].observer.count_inclusion(&landing("", &[]));
        let text = m.render();
        assert_eq!(value(&text, "keel_included_total{builder=\"titan\"}"), 2.0, "{text}");
        let by_address = format!("keel_included_total{{builder=\"{}\"}}", Address::repeat_byte(0xa1));
        assert_eq!(value(&text, &by_address), 1.0);
        assert_eq!(value(&text, "keel_relay_included_total{relay=\"alpha\"}"), 2.0);
        // Bounded: builders past the named ones are counted as `other`.
        for i in 0..100 {
            m.chains[0].observer.count_inclusion(&landing(&format!("b{i}"), &[]));
        }
        let by = m.chains[0].observer.included_by.lock().clone();
        assert_eq!(by.builders.len(), keel_router::stage::MAX_NAMED_BUILDERS);
        let total: u64 = by.builders.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 103);
    }

    #[test]
    fn node_and_mempool_feed_counters_are_exported() {
        use std::sync::atomic::Ordering::Relaxed;
        let m = sources("relay");
        m.mempool.received.store(7, Relaxed);
        m.mempool.malformed.store(2, Relaxed);
        m.node.pending_included.store(3, Relaxed);
        m.node.pending_txs.store(4, Relaxed);
        m.node.reorgs.store(1, Relaxed);
        let text = m.render();
        assert_eq!(value(&text, "keel_mempool_received_total"), 7.0, "{text}");
        assert_eq!(value(&text, "keel_mempool_malformed_total"), 2.0);
        assert_eq!(value(&text, "keel_mempool_evicted_total{why=\"included\"}"), 3.0);
        assert_eq!(value(&text, "keel_mempool_evicted_total{why=\"aged\"}"), 0.0);
        assert_eq!(value(&text, "keel_mempool_pending"), 4.0);
        assert_eq!(value(&text, "keel_node_reorgs_total"), 1.0);
    }
}

#[cfg(test)]
mod dashboard_tests {
    use super::tests::sources;

    /// The Grafana dashboard shipped in `docs/grafana/` queries only series that Keel exports.
    #[test]
    fn every_series_the_dashboard_queries_is_exported() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/keel-dashboard.json");
        let text = std::fs::read_to_string(path).unwrap();
        let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
        let m = sources("relay");
        // One landing, so that the per-builder series has a sample.
        m.chains[0].observer.count_inclusion(&keel_engine::record::Inclusion {
            intent: 1,
            block: 1,
            coinbase: alloy::primitives::Address::ZERO,
            builder: "b".into(),
            blocks: 1,
            seconds: None,
            versions: 1,
            fee_wei: 0,
            relays: vec!["relay".into()],
        });
        let exported = m.render();
        let mut names = Vec::new();
        for panel in dash["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let mut rest = expr;
                while let Some(at) = rest.find("keel_") {
                    let tail = &rest[at..];
                    let end =
                        tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
                    names.push(tail[..end].to_string());
                    rest = &tail[end..];
                }
            }
        }
        assert!(names.len() > 20, "{names:?}");
        for name in names {
            let line_starts = exported
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")));
            assert!(
                line_starts,
                "the dashboard queries `{name}`, which /metrics does not export:\n{exported}"
            );
        }
    }
}
