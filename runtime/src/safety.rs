//! Operator safety controls of a running pipeline: the kill switch and dry runs.
//!
//! The kill switch stops new rebalances at once: the engine thread checks it for every intent it
//! emits (an atomic load), and an intent emitted while it is engaged is never sent to the router —
//! the portfolio gets a `Rejected` outcome and cools down. It can be engaged three ways, each a
//! [`KillSource`] of its own, and it is engaged while any source holds it:
//!
//! * the kill file is level-triggered: present, it holds the switch; removed, it lets go (the
//!   switch releases unless another source still holds it);
//! * `SIGUSR1` and `POST /kill` on the control endpoint (127.0.0.1 only) hold it until
//!   `POST /resume`, which lets go of those two (a kill file still present keeps holding it);
//! * the on-chain parameter registry's global pause ([`crate::registry`]) holds it with the reason
//!   `registry pause …` while the chain says paused (a `POST /resume` then does not release it: the
//!   next block's check takes it again), and after the chain unpauses it keeps holding until the
//!   operator's `POST /resume`: unpausing on chain never resumes rebalancing by itself.
//!
//! `GET /status` reports whether it is engaged, why, and which sources hold it; `GET /metrics`
//! serves Prometheus metrics (see [`crate::control`]). Every engagement and release is logged with
//! its reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// How often the kill file is looked for.
pub const KILL_FILE_POLL: Duration = Duration::from_millis(100);

/// Safety settings of a pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SafetySpec {
    /// Do everything but submit: bundles are built and signed, logged and counted, never posted.
    pub dry_run: bool,
    /// Engage the kill switch when this file exists.
    pub kill_file: Option<PathBuf>,
    /// Serve the control endpoint on this port of 127.0.0.1 (0: a free port).
    pub control_port: Option<u16>,
    /// The bearer token its `POST /kill`, `POST /resume` and `GET /status` require (required with
    /// `control_port`).
    pub control_token: Option<crate::control::ControlToken>,
    /// Kill switches that watch the chain (`[safety.watch]`).
    pub watch: crate::watch::WatchSpec,
}

/// What holds the kill switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KillSource {
    /// The kill file exists.
    File,
    /// `SIGUSR1`.
    Signal,
    /// `POST /kill`, or code ([`KillSwitch::engage`]).
    Operator,
    /// A chain watch (`[safety.watch]`, [`crate::watch`]).
    Chain,
    /// The on-chain parameter registry's global pause (`[registry]`, [`crate::registry`]).
    Registry,
}

impl KillSource {
    const ALL: [KillSource; 5] =
        [KillSource::File, KillSource::Signal, KillSource::Operator, KillSource::Chain, KillSource::Registry];

    /// What lets go of this source.
    pub fn released_by(self) -> &'static str {
        match self {
            Self::File => "removing the kill file",
            Self::Signal | Self::Operator | Self::Chain => "POST /resume",
            Self::Registry => "unpausing the registry on chain, then POST /resume",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::File => 1,
            Self::Signal => 2,
            Self::Operator => 4,
            Self::Chain => 8,
            Self::Registry => 16,
        }
    }
}

/// The kill switch's state: a bit per [`KillSource`] holding it.
#[derive(Debug, Default)]
pub struct KillSwitch {
    /// The sources holding it, one bit each. Changed only with `why` locked, so a status read
    /// (which takes the same lock) never sees a held switch without its reason; read alone, it
    /// is the hot path's lock-free check.
    held: AtomicU8,
    why: Mutex<Why>,
    blocked: AtomicU64,
    /// A flag kept equal to "engaged", for a stage that cannot see this type (the router's).
    mirror: std::sync::OnceLock<Arc<std::sync::atomic::AtomicBool>>,
}

/// The reasons of an engaged switch (both empty when released).
#[derive(Debug, Default)]
struct Why {
    /// The first source's reason.
    first: Option<String>,
    /// Every reason given while engaged (at most [`MAX_KILL_REASONS`]), cleared on release.
    all: Vec<String>,
}

/// Most reasons [`KillStatus::reasons`] lists (later ones are logged, not kept).
pub const MAX_KILL_REASONS: usize = 32;

/// What `GET /status` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KillStatus {
    /// Whether new rebalances are stopped.
    pub halted: bool,
    /// Why, when halted (the first source's reason).
    pub reason: Option<String>,
    /// Every reason given since it engaged (file, signal, operator, chain watches), oldest first.
    pub reasons: Vec<String>,
    /// The sources holding it.
    pub held_by: Vec<KillSource>,
    /// What lets go of each source in `held_by`, in the same order (all of them must let go).
    pub released_by: Vec<&'static str>,
    /// Rebalances stopped so far.
    pub blocked: u64,
}

impl KillSwitch {
    /// Whether new rebalances are stopped (one relaxed atomic load: safe on the hot path).
    #[inline]
    pub fn is_engaged(&self) -> bool {
        self.held.load(Ordering::Acquire) != 0
    }

    /// Stops new rebalances, saying why (held by the operator until [`Self::release`]).
    pub fn engage(&self, reason: &str) {
        self.hold(KillSource::Operator, reason);
    }

    /// Keeps `flag` equal to [`Self::is_engaged`] from now on (the router stage reads it at each
    /// head to cancel in-flight bundles). A second call is ignored.
    pub fn mirror_to(&self, flag: Arc<std::sync::atomic::AtomicBool>) {
        flag.store(self.is_engaged(), Ordering::Release);
        let _ = self.mirror.set(flag);
    }

    fn update_mirror(&self) {
        if let Some(m) = self.mirror.get() {
            m.store(self.is_engaged(), Ordering::Release);
        }
    }

    /// `source` holds the switch; the first reason is kept while it is engaged.
    pub fn hold(&self, source: KillSource, reason: &str) {
        let mut why = self.why.lock();
        let before = self.held.fetch_or(source.bit(), Ordering::AcqRel);
        if before == 0 {
            why.first = Some(reason.to_string());
        }
        if why.all.len() < MAX_KILL_REASONS && !why.all.iter().any(|r| r == reason) {
            why.all.push(reason.to_string());
        }
        self.update_mirror();
        drop(why);
        if before == 0 {
            tracing::error!(reason, "KILL SWITCH ENGAGED: no new rebalance will be sent");
        }
    }

    /// `source` lets go; the switch releases when no source holds it.
    pub fn let_go(&self, source: KillSource) {
        let mut why = self.why.lock();
        let before = self.held.fetch_and(!source.bit(), Ordering::AcqRel);
        let released = before != 0 && before & !source.bit() == 0;
        if released {
            *why = Why::default();
        }
        self.update_mirror();
        drop(why);
        if released {
            tracing::warn!(?source, "kill switch released: rebalancing resumes");
        }
    }

    /// The operator's resume (`POST /resume`): lets go of the operator's, the signal's, the
    /// chain watches' and the registry's hold. A kill file still present keeps holding the switch,
    /// and so does a registry still paused on chain (it takes the switch again at its next check).
    pub fn release(&self) {
        self.let_go(KillSource::Signal);
        self.let_go(KillSource::Operator);
        self.let_go(KillSource::Chain);
        self.let_go(KillSource::Registry);
        if self.is_engaged() {
            tracing::warn!("resume asked, but the kill file is still present: the switch stays engaged");
        }
    }

    /// Whether `source` holds the switch now.
    pub fn is_held_by(&self, source: KillSource) -> bool {
        self.held.load(Ordering::Acquire) & source.bit() != 0
    }

    /// Counts a rebalance the switch stopped.
    pub fn count_blocked(&self) {
        self.blocked.fetch_add(1, Ordering::Relaxed);
    }

    /// The state, for reports and the endpoint.
    pub fn status(&self) -> KillStatus {
        let why = self.why.lock();
        let held = self.held.load(Ordering::Acquire);
        let held_by: Vec<KillSource> = KillSource::ALL.into_iter().filter(|s| held & s.bit() != 0).collect();
        KillStatus {
            halted: held != 0,
            reason: why.first.clone(),
            reasons: why.all.clone(),
            released_by: held_by.iter().map(|s| s.released_by()).collect(),
            held_by,
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
        check_kill_file(&path, &switch);
    }
}

/// One look at the kill file: present, it holds the switch; absent, it lets go.
pub fn check_kill_file(path: &std::path::Path, switch: &KillSwitch) {
    if path.exists() {
        switch.hold(KillSource::File, &format!("kill file {} present", path.display()));
    } else {
        switch.let_go(KillSource::File);
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
                Some(()) => switch.hold(KillSource::Signal, "SIGUSR1"),
                None => return,
            },
        }
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
        k.engage("a second reason is listed, not the headline");
        k.hold(KillSource::Chain, "depeg: USDC");
        k.count_blocked();
        assert_eq!(
            k.status(),
            KillStatus {
                halted: true,
                reason: Some("test".into()),
                reasons: vec![
                    "test".into(),
                    "a second reason is listed, not the headline".into(),
                    "depeg: USDC".into()
                ],
                held_by: vec![KillSource::Operator, KillSource::Chain],
                released_by: vec!["POST /resume", "POST /resume"],
                blocked: 1
            }
        );
        // Resuming is explicit, and lets go of the chain watches' hold too.
        k.release();
        assert!(!k.status().halted && k.status().reason.is_none() && k.status().reasons.is_empty());
    }

    #[test]
    fn the_kill_file_holds_the_switch_while_present_and_resume_cannot_override_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("KILL");
        let k = KillSwitch::default();
        check_kill_file(&path, &k);
        assert!(!k.is_engaged());
        std::fs::write(&path, b"").expect("touch");
        check_kill_file(&path, &k);
        assert!(k.is_engaged());
        assert_eq!(k.status().held_by, vec![KillSource::File]);
        assert_eq!(k.status().released_by, vec!["removing the kill file"]);
        // resume does not override a present file
        k.release();
        check_kill_file(&path, &k);
        assert!(k.is_engaged());
        // removing the file releases it
        std::fs::remove_file(&path).expect("rm");
        check_kill_file(&path, &k);
        assert!(!k.is_engaged(), "{:?}", k.status());
        // with the operator also holding it, removing the file is not enough
        std::fs::write(&path, b"").expect("touch");
        check_kill_file(&path, &k);
        k.engage("operator");
        std::fs::remove_file(&path).expect("rm");
        check_kill_file(&path, &k);
        assert!(k.is_engaged());
        assert_eq!(k.status().held_by, vec![KillSource::Operator]);
        assert_eq!(
            k.status().reason.as_deref(),
            Some(format!("kill file {} present", path.display()).as_str())
        );
        k.release();
        assert!(!k.is_engaged());
    }

    /// The control endpoint reads the status while other threads hold and let go: a halted
    /// status always carries its reason, and a released one none (the CI once saw a halted
    /// status with no reason, read between the bit and the reason being set).
    #[test]
    fn a_status_read_while_sources_hold_and_let_go_is_never_halted_without_a_reason() {
        let k = std::sync::Arc::new(KillSwitch::default());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = |source: KillSource, reason: &'static str| {
            let (k, stop) = (k.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    k.hold(source, reason);
                    k.let_go(source);
                }
            })
        };
        let workers = [churn(KillSource::Registry, "registry pause"), churn(KillSource::Chain, "depeg")];
        let (mut halted, t0) = (0u64, std::time::Instant::now());
        while t0.elapsed() < std::time::Duration::from_millis(300) {
            let s = k.status();
            assert_eq!(s.halted, s.reason.is_some(), "{s:?}");
            assert_eq!(s.halted, !s.reasons.is_empty(), "{s:?}");
            assert_eq!(s.halted, !s.held_by.is_empty(), "{s:?}");
            halted += u64::from(s.halted);
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("worker");
        }
        assert!(halted > 0, "no read saw the switch held");
    }
}
