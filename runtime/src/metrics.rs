//! Prometheus text exposition of a running pipeline: engine events, triggers and suppressions,
//! queue depths and drops, feed health, relay submissions per relay, landing rate, tick-to-wire
//! latency, the kill switch, and the oracle guard's refusals by pool and reason. Served at
//! `GET /metrics` on the control endpoint (127.0.0.1).
//!
//! Everything is read from counters and snapshots the stages already keep; rendering takes the
//! few locks off the hot path (the engine publishes its snapshot every sample interval).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use keel_engine::event::Event;
use keel_engine::queue::Queue;
use keel_feeds::stats::FeedStats;
use keel_router::stage::{RouterInput, StageObserver};
use parking_lot::Mutex;

use crate::pipeline::Snapshot;
use crate::safety::KillSwitch;

/// Where the metrics come from.
#[derive(Debug, Clone)]
pub struct MetricsSources {
    /// The engine's published snapshot.
    pub snapshot: Arc<Mutex<Snapshot>>,
    /// The router stage's observations.
    pub observer: Arc<StageObserver>,
    /// The market-data feed's counters.
    pub feed: Arc<FeedStats>,
    /// The engine input queue.
    pub events: Arc<Queue<Event>>,
    /// The router input queue.
    pub router_in: Arc<Queue<RouterInput>>,
    /// The kill switch.
    pub kill: Arc<KillSwitch>,
    /// The control endpoint's counters.
    pub control: Arc<crate::control::ControlStats>,
    /// The input recording, when `[record]` is on.
    pub recorder: Option<Arc<keel_recording::Recorder>>,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

impl MetricsSources {
    /// The exposition text.
    pub fn render(&self) -> String {
        let snap = self.snapshot.lock().clone();
        let e = &snap.engine;
        let mut out = String::with_capacity(4096);
        let ev = &e.events;
        metric(
            &mut out,
            "keel_events_total",
            "counter",
            "Events processed by the engine, by kind.",
            &[
                ("kind=\"quote\"", ev.quotes as f64),
                ("kind=\"trade\"", ev.trades as f64),
                ("kind=\"block\"", ev.blocks as f64),
                ("kind=\"balance\"", ev.balances as f64),
                ("kind=\"outcome\"", ev.outcomes as f64),
                ("kind=\"timer\"", ev.timers as f64),
            ],
        );
        metric(
            &mut out,
            "keel_triggers_total",
            "counter",
            "Triggers fired, by kind.",
            &[
                ("kind=\"drift\"", e.triggers.drift as f64),
                ("kind=\"volatility\"", e.triggers.volatility as f64),
                ("kind=\"temporal\"", e.triggers.temporal as f64),
            ],
        );
        let s = &e.suppressed;
        metric(
            &mut out,
            "keel_suppressed_total",
            "counter",
            "Trigger evaluations suppressed, by reason.",
            &[
                ("reason=\"in_flight\"", s.in_flight as f64),
                ("reason=\"awaiting_balances\"", s.awaiting_balances as f64),
                ("reason=\"cooldown\"", s.cooldown as f64),
                ("reason=\"stale_price\"", s.stale_price as f64),
                ("reason=\"missing_price\"", s.missing_price as f64),
                ("reason=\"holdings_unknown\"", s.holdings_unknown as f64),
            ],
        );
        metric(
            &mut out,
            "keel_intents_total",
            "counter",
            "Rebalances decided.",
            &[("", e.intents_emitted as f64)],
        );
        let o = &e.outcomes;
        metric(
            &mut out,
            "keel_outcomes_total",
            "counter",
            "Rebalance outcomes, by status.",
            &[
                ("status=\"landed\"", o.landed as f64),
                ("status=\"expired\"", o.expired as f64),
                ("status=\"rejected\"", o.rejected as f64),
            ],
        );
        let settled = o.landed + o.expired;
        let rate = if settled > 0 { o.landed as f64 / settled as f64 } else { 0.0 };
        metric(
            &mut out,
            "keel_landing_rate",
            "gauge",
            "Landed / (landed + expired) rebalances.",
            &[("", rate)],
        );
        let (q, r) = (self.events.stats(), self.router_in.stats());
        metric(
            &mut out,
            "keel_queue_depth",
            "gauge",
            "Values waiting in a queue.",
            &[
                ("queue=\"events\"", self.events.len() as f64),
                ("queue=\"router\"", self.router_in.len() as f64),
            ],
        );
        metric(
            &mut out,
            "keel_queue_dropped_total",
            "counter",
            "Values refused by a full queue.",
            &[("queue=\"events\"", q.dropped as f64), ("queue=\"router\"", r.dropped as f64)],
        );
        let f = self.feed.snapshot();
        metric(
            &mut out,
            "keel_feed_frames_total",
            "counter",
            "Exchange frames read.",
            &[("", f.frames as f64)],
        );
        metric(
            &mut out,
            "keel_feed_malformed_total",
            "counter",
            "Malformed frames skipped.",
            &[("", f.malformed as f64)],
        );
        metric(
            &mut out,
            "keel_feed_reconnects_total",
            "counter",
            "Exchange feed reconnects.",
            &[("", f.reconnects as f64)],
        );
        let relays = self.observer.relays.lock().clone();
        let lines: Vec<(String, f64)> = relays
            .iter()
            .flat_map(|c| {
                [
                    (format!("relay=\"{}\",result=\"accepted\"", c.name), c.accepted as f64),
                    (format!("relay=\"{}\",result=\"failed\"", c.name), c.failed as f64),
                ]
            })
            .collect();
        let refs: Vec<(&str, f64)> = lines.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            &mut out,
            "keel_relay_requests_total",
            "counter",
            "Bundle submissions per relay and result.",
            &refs,
        );
        let h = self.observer.tick_to_wire.lock().clone();
        let q = |p: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(p) as f64 / 1e9 };
        metric(
            &mut out,
            "keel_tick_to_wire_seconds",
            "summary",
            "Event receive to signed bundle request.",
            &[("quantile=\"0.5\"", q(0.5)), ("quantile=\"0.99\"", q(0.99))],
        );
        let _ = writeln!(out, "keel_tick_to_wire_seconds_count {}", h.len());
        let k = self.kill.status();
        metric(
            &mut out,
            "keel_kill_switch_engaged",
            "gauge",
            "1 while new rebalances are stopped.",
            &[("", if k.halted { 1.0 } else { 0.0 })],
        );
        metric(
            &mut out,
            "keel_kill_switch_blocked_total",
            "counter",
            "Rebalances the kill switch stopped.",
            &[("", k.blocked as f64)],
        );
        metric(
            &mut out,
            "keel_control_unauthorized_total",
            "counter",
            "Control requests refused for a missing or wrong bearer token.",
            &[("", self.control.unauthorized.load(std::sync::atomic::Ordering::Relaxed) as f64)],
        );
        let guard = self.observer.oracle_guard.lock().clone();
        let lines: Vec<(String, f64)> = guard
            .iter()
            .map(|(pool, reason, n)| (format!("pool=\"{pool}\",reason=\"{reason}\""), n as f64))
            .collect();
        let refs: Vec<(&str, f64)> = lines.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            &mut out,
            "keel_oracle_guard_blocked_total",
            "counter",
            "Rebalances the oracle guard refused, by pool and reason (stale_pool, spot_vs_reference, twap_vs_reference, spot_vs_twap).",
            &refs,
        );
        metric(
            &mut out,
            "keel_dry_run_bundles_total",
            "counter",
            "Bundles built but not posted (dry run).",
            &[("", self.observer.dry_run_bundles.load(Ordering::Relaxed) as f64)],
        );
        metric(
            &mut out,
            "keel_journal_held_bundles_total",
            "counter",
            "Bundles held back because their journal record could not be committed (must stay 0).",
            &[("", self.observer.journal_held.load(Ordering::Relaxed) as f64)],
        );
        if let Some(r) = &self.recorder {
            let st = r.stats();
            metric(
                &mut out,
                "keel_record_records_total",
                "counter",
                "Inputs written to the recording.",
                &[("", st.records as f64)],
            );
            metric(
                &mut out,
                "keel_record_dropped_total",
                "counter",
                "Inputs the recording dropped (its queue full, or larger than a slot); the run is unaffected.",
                &[
                    ("reason=\"full\"", st.dropped_full as f64),
                    ("reason=\"oversize\"", st.dropped_oversize as f64),
                ],
            );
            metric(
                &mut out,
                "keel_record_queued",
                "gauge",
                "Inputs waiting for the recording's writer.",
                &[("", st.queued as f64)],
            );
        }
        out
    }
}
