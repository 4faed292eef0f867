//! Operator safety controls of a running pipeline: the kill switch and dry runs.
//!
//! The kill switch stops new rebalances at once: the engine thread checks it for every intent it
//! emits (an atomic load), and an intent emitted while it is engaged is never sent to the router —
//! the portfolio gets a `Rejected` outcome and cools down. It can be engaged three ways: a flag file
//! appearing, `SIGUSR1`, or `POST /kill` on the control endpoint (127.0.0.1 only); `POST /resume`
//! releases it, `GET /status` reports it; `GET /metrics` serves Prometheus metrics. Every engagement is logged with its reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// How often the kill file is looked for.
pub const KILL_FILE_POLL: Duration = Duration::from_millis(100);

/// Safety settings of a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetySpec {
    /// Do everything but submit: bundles are built and signed, logged and counted, never posted.
    pub dry_run: bool,
    /// Engage the kill switch when this file exists.
    pub kill_file: Option<PathBuf>,
    /// Serve the control endpoint on this port of 127.0.0.1 (0: a free port).
    pub control_port: Option<u16>,
}

/// The kill switch's state.
#[derive(Debug, Default)]
pub struct KillSwitch {
    engaged: AtomicBool,
    reason: Mutex<Option<String>>,
    blocked: AtomicU64,
}

/// What `GET /status` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KillStatus {
    /// Whether new rebalances are stopped.
    pub halted: bool,
    /// Why, when halted.
    pub reason: Option<String>,
    /// Rebalances stopped so far.
    pub blocked: u64,
}

impl KillSwitch {
    /// Whether new rebalances are stopped (one relaxed atomic load: safe on the hot path).
    #[inline]
    pub fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::Acquire)
    }

    /// Stops new rebalances, saying why.
    pub fn engage(&self, reason: &str) {
        if !self.engaged.swap(true, Ordering::AcqRel) {
            *self.reason.lock() = Some(reason.to_string());
            tracing::error!(reason, "KILL SWITCH ENGAGED: no new rebalance will be sent");
        }
    }

    /// Lets rebalances through again.
    pub fn release(&self) {
        if self.engaged.swap(false, Ordering::AcqRel) {
            *self.reason.lock() = None;
            tracing::warn!("kill switch released: rebalancing resumes");
        }
    }

    /// Counts a rebalance the switch stopped.
    pub fn count_blocked(&self) {
        self.blocked.fetch_add(1, Ordering::Relaxed);
    }

    /// The state, for reports and the endpoint.
    pub fn status(&self) -> KillStatus {
        KillStatus {
            halted: self.is_engaged(),
            reason: self.reason.lock().clone(),
            blocked: self.blocked.load(Ordering::Relaxed),
        }
    }
}

/// Watches the kill file until `cancel`.
pub async fn watch_kill_file(path: PathBuf, switch: Arc<KillSwitch>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(KILL_FILE_POLL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if path.exists() {
            switch.engage(&format!("kill file {} present", path.display()));
        }
    }
}

/// Engages the switch on `SIGUSR1` until `cancel`.
pub async fn watch_signal(switch: Arc<KillSwitch>, cancel: CancellationToken) {
    let Ok(mut usr1) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) else {
        tracing::warn!("cannot listen for SIGUSR1; the kill switch still has its file and endpoint");
        return;
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = usr1.recv() => match got {
                Some(()) => switch.engage("SIGUSR1"),
                None => return,
            },
        }
    }
}

/// Serves `POST /kill`, `POST /resume`, `GET /status` and `GET /metrics` (Prometheus text from
/// `metrics`) on `listener` (bound to 127.0.0.1) until `cancel`.
pub async fn serve_control(
    listener: tokio::net::TcpListener,
    switch: Arc<KillSwitch>,
    metrics: crate::metrics::MetricsSources,
    cancel: CancellationToken,
) {
    let metrics_route = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(m): State<Arc<crate::metrics::MetricsSources>>| async move {
                ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render())
            }),
        )
        .with_state(Arc::new(metrics));
    let app = axum::Router::new()
        .route(
            "/kill",
            axum::routing::post(|State(s): State<Arc<KillSwitch>>| async move {
                s.engage("HTTP POST /kill");
                axum::Json(s.status())
            }),
        )
        .route(
            "/resume",
            axum::routing::post(|State(s): State<Arc<KillSwitch>>| async move {
                s.release();
                axum::Json(s.status())
            }),
        )
        .route(
            "/status",
            axum::routing::get(|State(s): State<Arc<KillSwitch>>| async move { axum::Json(s.status()) }),
        )
        .with_state(switch)
        .merge(metrics_route);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await });
    if let Err(e) = serve.await {
        tracing::error!(error = %e, "control endpoint stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engage_release_and_status() {
        let k = KillSwitch::default();
        assert!(!k.is_engaged());
        k.engage("test");
        k.engage("second reason is ignored while engaged");
        k.count_blocked();
        assert_eq!(k.status(), KillStatus { halted: true, reason: Some("test".into()), blocked: 1 });
        k.release();
        assert!(!k.status().halted && k.status().reason.is_none());
    }
}
