//! # keel-runtime
//!
//! The production assembly behind `keel run` (and, with a simulated market around it, `keel demo`
//! and the latency harness): the one code path that starts Keel's stages and wires them together.
//!
//! ```text
//!  tokio: exchange feed ─────────┐                       ┌─▶ tokio: relay posts, receipt reads
//!  tokio: chain poller ──────────┼─▶ Queue<Event> ─▶ engine thread ─▶ Queue<RouterInput> ─▶ router thread
//!  tokio: node feed (logs, heads)┘         ▲          (process)              ▲  (route, sign, bundle)
//!         pools, nonces, pending impact ──────────────────────────────────────┘
//!                                          └──────────── outcomes ───────────┘
//! ```
//!
//! * [`pipeline`] — start, run and stop the stages; the report at the end;
//! * [`chains`] — several chains in one process: one router lane per chain behind the one engine;
//! * [`recovery`] — settle what a previous run left open in the journal before trading;
//! * [`safety`] — the kill switch (file, SIGUSR1, the control endpoint) and dry runs;
//! * [`control`] — the control endpoint (bearer token) serving the kill switch and metrics;
//! * [`metrics`] — Prometheus `/metrics` on the control endpoint;
//! * [`predictor`] — the predictor hook: weights from a local socket, validated, journaled, queued
//!   to the engine;
//! * [`bounded`] — report buffers that stay bounded over weeks of uptime;
//! * [`record`] — recording every input (`[record]`, `keel record`) for `keel replay`;
//! * [`replay`] — the same engine and router over a recording, in virtual time.
//!
//! It never links the simulator (`keel-sim`) or the latency harness (`keel-bench`).
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod affinity;
pub mod bounded;
pub mod chains;
pub mod control;
mod hot_turn;
pub mod metrics;
pub mod pipeline;
pub mod predictor;
pub mod record;
pub mod recovery;
pub mod registry;
pub mod replay;
pub mod safety;
pub mod watch;
