//! The predictor hook: external processes send target weights over a local socket; this module
//! reads, validates and journals them and hands the good ones to the engine.
//!
//! ```text
//!  predictor ──NDJSON over 127.0.0.1 TCP or a Unix socket──▶ reader task (tokio)
//!      ▲                                                     │ validate (Validator)
//!      └──────────── one reply line per message ◀────────────┤ journal `targets` record
//!                                                            ▼
//!                                       Queue<TargetUpdate> (bounded, try_push)
//!                                                            ▼
//!                                 engine thread drains it between events (try_pop, no wait)
//! ```
//!
//! The protocol is in `docs/predictor.md`. Each line is one JSON object
//! `{"portfolio": "pred", "ts_ms": 1765000000000, "weights": {"WETH": 0.6, "USDC": 0.4}}`; Keel
//! answers each with `{"ok":true}` or `{"ok":false,"kind":"step","error":"…"}`.
//!
//! A message is refused (logged, counted by kind in [`PredictorStats`], answered with the
//! [`MessageError`]) when it is not JSON or longer than [`MAX_LINE_BYTES`]; names a portfolio whose
//! targets are not `external` from this predictor; names a token that is not one of the portfolio's
//! assets or leaves one out; has a weight that is not finite or outside [0, 1]; has weights that do
//! not sum to 1 within [`SUM_TOLERANCE`]; moves any weight more than the portfolio's `max_step`
//! away from the targets in force; is older than `max_age_secs` by its `ts_ms` (or more than that
//! ahead of Keel's clock); or finds the engine's queue full. A good message becomes the portfolio's
//! targets (renormalised to sum to exactly 1) and is journaled. When a portfolio has had no good
//! message for `max_age_secs`, the fallback targets take over (journaled, counted) until the next
//! good message, whose step is then measured from the fallback.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_engine::clock::{Nanos, mono_now_ns};
use keel_engine::config::{MAX_EXTERNAL_ASSETS, PortfolioConfig, TargetsConfig};
use keel_engine::queue::Queue;
use keel_engine::{Engine, PortfolioId, TargetUpdate};
use keel_journal::{JournalHandle, JournalRecord, TargetsRecord};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// Longest accepted line, bytes: a longer one is refused and the connection closed.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Tolerance on the sum of a message's weights.
pub const SUM_TOLERANCE: f64 = 1e-3;
/// Capacity of the queue of updates into the engine.
pub const TARGETS_QUEUE_CAPACITY: usize = 1024;
/// How often the reader looks for stale predictors.
pub const STALENESS_CHECK_EVERY: Duration = Duration::from_millis(100);

/// `[[predictors]]`: one local socket on which a predictor sends weights.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PredictorConfig {
    /// Name, as portfolios' `targets = { external = "name", … }` refer to it.
    pub name: String,
    /// `127.0.0.1:PORT` (loopback only; port 0 picks one) or `unix:/path/to/socket`.
    pub listen: String,
}

/// Why a predictor's message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    /// Not a JSON object of the documented shape.
    #[error("not a valid message: {0}")]
    Parse(String),
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("line longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    /// No portfolio of that name takes targets from this predictor.
    #[error("portfolio `{portfolio}` does not take its targets from predictor `{predictor}`")]
    UnknownPortfolio {
        /// The name sent.
        portfolio: String,
        /// This predictor.
        predictor: String,
    },
    /// A token that is not one of the portfolio's assets.
    #[error("portfolio `{portfolio}`: unknown token `{token}` (its assets: {assets})")]
    UnknownToken {
        /// The portfolio.
        portfolio: String,
        /// The token sent.
        token: String,
        /// Its assets, comma-separated.
        assets: String,
    },
    /// An asset of the portfolio has no weight.
    #[error("portfolio `{portfolio}`: no weight for `{token}`")]
    MissingToken {
        /// The portfolio.
        portfolio: String,
        /// The asset left out.
        token: String,
    },
    /// A weight that is not finite or outside [0, 1].
    #[error("weight of `{token}` is {weight}, outside [0, 1]")]
    BadWeight {
        /// The token.
        token: String,
        /// Its weight.
        weight: f64,
    },
    /// The weights do not sum to 1.
    #[error("weights sum to {sum}, expected 1 ± {SUM_TOLERANCE}")]
    Sum {
        /// Their sum.
        sum: f64,
    },
    /// A weight moved further than `max_step` from the targets in force.
    #[error("`{token}` moves from {from:.4} to {to:.4}, more than max_step {max_step}")]
    Step {
        /// The token.
        token: String,
        /// Its target in force.
        from: f64,
        /// The weight sent.
        to: f64,
        /// The bound.
        max_step: f64,
    },
    /// The message's `ts_ms` is older than `max_age_secs` (or as far ahead of Keel's clock).
    #[error("message time is {age_ms} ms from now, beyond max_age {max_age_ms} ms")]
    Stale {
        /// Now minus `ts_ms` (negative: in the future).
        age_ms: i64,
        /// The bound.
        max_age_ms: u64,
    },
    /// The engine's queue of updates is full.
    #[error("the engine's target queue is full")]
    QueueFull,
}

impl MessageError {
    /// Short kind, as counted and answered.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageError::Parse(_) => "parse",
            MessageError::TooLong => "too_long",
            MessageError::UnknownPortfolio { .. } => "unknown_portfolio",
            MessageError::UnknownToken { .. } => "unknown_token",
            MessageError::MissingToken { .. } => "missing_token",
            MessageError::BadWeight { .. } => "bad_weight",
            MessageError::Sum { .. } => "sum",
            MessageError::Step { .. } => "step",
            MessageError::Stale { .. } => "stale",
            MessageError::QueueFull => "queue_full",
        }
    }
}

/// Kinds of refusal, in [`PredictorStats::refused`] order.
pub const REFUSAL_KINDS: [&str; 10] = [
    "parse",
    "too_long",
    "unknown_portfolio",
    "unknown_token",
    "missing_token",
    "bad_weight",
    "sum",
    "step",
    "stale",
    "queue_full",
];

/// Counters of the predictor readers (all predictors together).
#[derive(Debug, Default)]
pub struct PredictorStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Messages read.
    pub messages: AtomicU64,
    /// Messages applied.
    pub applied: AtomicU64,
    /// Fallbacks to the configured targets.
    pub fallbacks: AtomicU64,
    /// Refusals by kind ([`REFUSAL_KINDS`] order).
    pub refused: [AtomicU64; REFUSAL_KINDS.len()],
}

impl PredictorStats {
    fn refuse(&self, e: &MessageError) {
        if let Some(k) = REFUSAL_KINDS.iter().position(|k| *k == e.kind()) {
            self.refused[k].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refusals of one kind.
    pub fn refused(&self, kind: &str) -> u64 {
        REFUSAL_KINDS.iter().position(|k| *k == kind).map_or(0, |k| self.refused[k].load(Ordering::Relaxed))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    portfolio: String,
    ts_ms: u64,
    weights: HashMap<String, f64>,
    #[serde(default)]
    seq: Option<u64>,
}

/// One external portfolio as the validator tracks it.
#[derive(Debug, Clone)]
struct Tracked {
    pid: PortfolioId,
    name: String,
    predictor: String,
    /// Asset symbols in the engine's asset order.
    symbols: Vec<String>,
    fallback: Vec<f64>,
    current: Vec<f64>,
    max_age_ns: Nanos,
    max_step: f64,
    /// Monotonic time of the last good message, while on predicted targets.
    last_good_ns: Option<Nanos>,
}

/// The state behind validation: per external portfolio, the targets in force and when the last
/// good message came. Pure (time is passed in), so it is tested without sockets.
#[derive(Debug, Clone)]
pub struct Validator {
    tracked: Vec<Tracked>,
}

/// A validated change, ready for the engine queue and the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The engine's update.
    pub update: TargetUpdate,
    /// The journal's record.
    pub record: TargetsRecord,
}

impl Validator {
    /// The external portfolios of `portfolios` (as built into `engine`).
    pub fn new(portfolios: &[PortfolioConfig], engine: &Engine) -> Self {
        let mut tracked = Vec::new();
        for (i, cfg) in portfolios.iter().enumerate() {
            let TargetsConfig::External(e) = &cfg.targets else { continue };
            let Some(p) = engine.portfolio(PortfolioId(i as u32)) else { continue };
            let symbols: Vec<String> = p
                .assets()
                .iter()
                .map(|&t| engine.token(t).map_or_else(String::new, |k| k.symbol.clone()))
                .collect();
            let fallback: Vec<f64> =
                symbols.iter().map(|s| e.fallback.get(s).copied().unwrap_or(0.0)).collect();
            let sum: f64 = fallback.iter().sum();
            let fallback: Vec<f64> = fallback.iter().map(|w| w / sum).collect();
            tracked.push(Tracked {
                pid: PortfolioId(i as u32),
                name: cfg.name.clone(),
                predictor: e.name.clone(),
                symbols,
                current: fallback.clone(),
                fallback,
                max_age_ns: (e.max_age_secs * 1e9) as Nanos,
                max_step: e.max_step,
                last_good_ns: None,
            });
        }
        Self { tracked }
    }

    /// Names of the predictors that some portfolio uses.
    pub fn predictors(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tracked.iter().map(|t| t.predictor.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Validates one line from `predictor`, received at wall-clock `now_ms` and monotonic `now_ns`.
    /// A good message becomes the targets in force (call [`Validator::revert`] if the engine's
    /// queue then refuses it).
    pub fn check(
        &mut self,
        predictor: &str,
        line: &str,
        now_ms: u64,
        now_ns: Nanos,
    ) -> Result<Change, MessageError> {
        if line.len() > MAX_LINE_BYTES {
            return Err(MessageError::TooLong);
        }
        let m: Message = serde_json::from_str(line).map_err(|e| MessageError::Parse(e.to_string()))?;
        let Some(t) = self.tracked.iter_mut().find(|t| t.name == m.portfolio && t.predictor == predictor)
        else {
            return Err(MessageError::UnknownPortfolio {
                portfolio: m.portfolio,
                predictor: predictor.into(),
            });
        };
        let age_ms = now_ms as i64 - m.ts_ms as i64;
        let max_age_ms = t.max_age_ns / 1_000_000;
        if age_ms.unsigned_abs() > max_age_ms {
            return Err(MessageError::Stale { age_ms, max_age_ms });
        }
        for token in m.weights.keys() {
            if !t.symbols.contains(token) {
                return Err(MessageError::UnknownToken {
                    portfolio: t.name.clone(),
                    token: token.clone(),
                    assets: t.symbols.join(", "),
                });
            }
        }
        let mut w = [0.0f64; MAX_EXTERNAL_ASSETS];
        let mut sum = 0.0f64;
        for (i, s) in t.symbols.iter().enumerate() {
            let Some(&x) = m.weights.get(s) else {
                return Err(MessageError::MissingToken { portfolio: t.name.clone(), token: s.clone() });
            };
            if !(x.is_finite() && (0.0..=1.0).contains(&x)) {
                return Err(MessageError::BadWeight { token: s.clone(), weight: x });
            }
            w[i] = x;
            sum += x;
        }
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(MessageError::Sum { sum });
        }
        for (i, s) in t.symbols.iter().enumerate() {
            let to = w[i] / sum;
            if (to - t.current[i]).abs() > t.max_step + 1e-9 {
                return Err(MessageError::Step {
                    token: s.clone(),
                    from: t.current[i],
                    to,
                    max_step: t.max_step,
                });
            }
        }
        for (i, c) in t.current.iter_mut().enumerate() {
            w[i] /= sum;
            *c = w[i];
        }
        t.last_good_ns = Some(now_ns);
        let detail =
            m.seq.map_or_else(|| format!("ts_ms {}", m.ts_ms), |s| format!("seq {s}, ts_ms {}", m.ts_ms));
        Ok(Change {
            update: TargetUpdate { portfolio: t.pid, weights: w, fallback: false },
            record: record(t, false, detail),
        })
    }

    /// Undoes the last accepted change of a portfolio whose update did not reach the engine: its
    /// targets in force are the engine's, `previous`.
    pub fn revert(&mut self, pid: PortfolioId, previous: &[f64], previous_good: Option<Nanos>) {
        if let Some(t) = self.tracked.iter_mut().find(|t| t.pid == pid) {
            t.current.copy_from_slice(previous);
            t.last_good_ns = previous_good;
        }
    }

    /// The targets in force of a portfolio and when its last good message came (for
    /// [`Validator::revert`]).
    pub fn in_force(&self, name: &str) -> Option<(PortfolioId, Vec<f64>, Option<Nanos>)> {
        self.tracked.iter().find(|t| t.name == name).map(|t| (t.pid, t.current.clone(), t.last_good_ns))
    }

    /// The portfolios of `predictor` whose last good message is older than their `max_age`: each
    /// goes back to its fallback (returned as changes to send and journal).
    pub fn stale(&mut self, predictor: &str, now_ns: Nanos) -> Vec<Change> {
        let mut out = Vec::new();
        for t in self.tracked.iter_mut().filter(|t| t.predictor == predictor) {
            let Some(last) = t.last_good_ns else { continue };
            let age = now_ns.saturating_sub(last);
            if age <= t.max_age_ns {
                continue;
            }
            t.last_good_ns = None;
            t.current.clone_from(&t.fallback);
            let detail = format!(
                "no good message for {:.1} s (max_age {:.1} s)",
                age as f64 / 1e9,
                t.max_age_ns as f64 / 1e9
            );
            out.push(Change {
                update: TargetUpdate {
                    portfolio: t.pid,
                    weights: [0.0; MAX_EXTERNAL_ASSETS],
                    fallback: true,
                },
                record: record(t, true, detail),
            });
        }
        out
    }
}

fn record(t: &Tracked, fallback: bool, detail: String) -> TargetsRecord {
    TargetsRecord {
        portfolio: t.pid.0,
        predictor: t.predictor.clone(),
        fallback,
        weights: t.symbols.iter().cloned().zip(t.current.iter().copied()).collect(),
        detail,
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Where the reader's changes go.
#[derive(Debug, Clone)]
pub struct PredictorOutputs {
    /// The engine's bounded queue of updates.
    pub queue: Arc<Queue<TargetUpdate>>,
    /// The journal, when configured.
    pub journal: Option<Arc<JournalHandle>>,
    /// Counters.
    pub stats: Arc<PredictorStats>,
}

impl PredictorOutputs {
    /// Sends a change to the engine and journals it; `Err(QueueFull)` when the queue is full.
    fn send(&self, name: &str, c: Change) -> Result<(), MessageError> {
        if self.queue.try_push(c.update).is_err() {
            return Err(MessageError::QueueFull);
        }
        if c.update.fallback {
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(predictor = name, portfolio = c.record.portfolio, detail = %c.record.detail, "predictor stale: fallback targets");
        } else {
            self.stats.applied.fetch_add(1, Ordering::Relaxed);
            tracing::info!(predictor = name, portfolio = c.record.portfolio, weights = ?c.record.weights, "predicted targets applied");
        }
        if let Some(j) = &self.journal {
            j.append(JournalRecord::Targets(Box::new(c.record)));
        }
        Ok(())
    }
}

/// A bound predictor socket.
#[derive(Debug)]
pub enum PredictorListener {
    /// 127.0.0.1 TCP.
    Tcp(tokio::net::TcpListener),
    /// A Unix socket (its path is removed when the reader stops).
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

/// Why a predictor socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Not `127.0.0.1:PORT` or `unix:PATH`.
    #[error("predictors[{name}].listen: `{listen}` is neither 127.0.0.1:PORT nor unix:/path")]
    Address {
        /// The predictor.
        name: String,
        /// The address given.
        listen: String,
    },
    /// The bind failed.
    #[error("predictors[{name}].listen: binding {listen}: {source}")]
    Bind {
        /// The predictor.
        name: String,
        /// The address given.
        listen: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl PredictorListener {
    /// Binds `cfg.listen` (loopback TCP only, or a Unix socket path). Must run inside a tokio runtime.
    pub fn bind(cfg: &PredictorConfig) -> Result<Self, ListenError> {
        let bind = |source| ListenError::Bind { name: cfg.name.clone(), listen: cfg.listen.clone(), source };
        if let Some(path) = cfg.listen.strip_prefix("unix:") {
            let path = std::path::PathBuf::from(path);
            let l = tokio::net::UnixListener::bind(&path).map_err(bind)?;
            return Ok(Self::Unix(l, path));
        }
        let addr: std::net::SocketAddr = cfg
            .listen
            .parse()
            .ok()
            .filter(|a: &std::net::SocketAddr| a.ip().is_loopback() && a.is_ipv4())
            .ok_or_else(|| ListenError::Address { name: cfg.name.clone(), listen: cfg.listen.clone() })?;
        let std = std::net::TcpListener::bind(addr).map_err(bind)?;
        std.set_nonblocking(true).map_err(bind)?;
        Ok(Self::Tcp(tokio::net::TcpListener::from_std(std).map_err(bind)?))
    }

    /// The bound TCP address (for port 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix(..) => None,
        }
    }
}

/// Serves one predictor until `cancel`: accepts connections (one at a time is the expected use;
/// several are served concurrently), validates and forwards each line, answers each, and sends
/// fallbacks when its portfolios go stale.
pub async fn run_predictor(
    name: String,
    listener: PredictorListener,
    validator: Arc<parking_lot::Mutex<Validator>>,
    out: PredictorOutputs,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(STALENESS_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                let changes = validator.lock().stale(&name, mono_now_ns());
                for c in changes {
                    let pid = c.update.portfolio;
                    if out.send(&name, c).is_err() {
                        // Retried at the next tick: the portfolio counts as stale since forever.
                        tracing::error!(predictor = %name, portfolio = pid.0, "engine target queue full: fallback retried");
                        let mut v = validator.lock();
                        if let Some(t) = v.tracked.iter_mut().find(|t| t.pid == pid) {
                            t.last_good_ns = Some(0);
                        }
                    }
                }
            }
            accepted = accept(&listener) => match accepted {
                Ok(stream) => {
                    out.stats.connections.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(predictor = %name, "predictor connected");
                    let (n, v, o, c) = (name.clone(), Arc::clone(&validator), out.clone(), cancel.clone());
                    conns.spawn(async move { serve(n, stream, v, o, c).await });
                }
                Err(e) => {
                    tracing::warn!(predictor = %name, error = %e, "predictor accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
    if let PredictorListener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

type Stream = Box<dyn Duplex>;
trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

async fn accept(l: &PredictorListener) -> std::io::Result<Stream> {
    Ok(match l {
        PredictorListener::Tcp(l) => Box::new(l.accept().await?.0),
        PredictorListener::Unix(l, _) => Box::new(l.accept().await?.0),
    })
}

async fn serve(
    name: String,
    stream: Stream,
    validator: Arc<parking_lot::Mutex<Validator>>,
    out: PredictorOutputs,
    cancel: CancellationToken,
) {
    let (r, mut w) = tokio::io::split(stream);
    // The cap bounds memory: a line past it is refused and the connection closed.
    let mut lines = BufReader::new(r);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            n = read_line_capped(&mut lines, &mut buf) => n,
        };
        let (line, too_long) = match read {
            Ok(None) => {
                tracing::warn!(predictor = %name, "predictor disconnected");
                return;
            }
            Ok(Some(too_long)) => (String::from_utf8_lossy(&buf).trim().to_string(), too_long),
            Err(e) => {
                tracing::warn!(predictor = %name, error = %e, "predictor read failed");
                return;
            }
        };
        if line.is_empty() && !too_long {
            continue;
        }
        out.stats.messages.fetch_add(1, Ordering::Relaxed);
        let result =
            if too_long { Err(MessageError::TooLong) } else { apply(&name, &line, &validator, &out) };
        let reply = match &result {
            Ok(()) => "{\"ok\":true}\n".to_string(),
            Err(e) => {
                out.stats.refuse(e);
                tracing::warn!(predictor = %name, kind = e.kind(), error = %e, "predictor message refused");
                let err = serde_json::json!({ "ok": false, "kind": e.kind(), "error": e.to_string() });
                format!("{err}\n")
            }
        };
        if w.write_all(reply.as_bytes()).await.is_err() || too_long {
            return;
        }
    }
}

fn apply(
    name: &str,
    line: &str,
    validator: &parking_lot::Mutex<Validator>,
    out: &PredictorOutputs,
) -> Result<(), MessageError> {
    let mut v = validator.lock();
    let portfolio = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|j| j.get("portfolio").and_then(|p| p.as_str()).map(str::to_string));
    let before = portfolio.as_deref().and_then(|p| v.in_force(p));
    let change = v.check(name, line, wall_ms(), mono_now_ns())?;
    if let Err(e) = out.send(name, change) {
        if let Some((pid, prev, good)) = before {
            v.revert(pid, &prev, good);
        }
        return Err(e);
    }
    Ok(())
}

/// Reads one line into `buf` (without the newline), at most [`MAX_LINE_BYTES`]. `Ok(None)` at end
/// of stream, `Ok(Some(true))` when the line was too long (the rest is not read).
async fn read_line_capped<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() { None } else { Some(false) });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE_BYTES + 1 - buf.len().min(MAX_LINE_BYTES + 1);
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        if buf.len() > MAX_LINE_BYTES {
            return Ok(Some(true));
        }
        if done {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            return Ok(Some(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader as StdBufReader, Write};

    use keel_engine::ManualClock;
    use keel_engine::config::{
        EngineConfig, ExternalConfig, PlanMode, PriceSource, TokenConfig, TriggerConfig,
    };
    use keel_journal::{JournalConfig, Names, Store, SyncPolicy};

    use super::*;

    const SEC: Nanos = 1_000_000_000;

    fn tokens() -> Vec<TokenConfig> {
        let t = |s: &str, b: u8, price| TokenConfig {
            symbol: s.into(),
            address: alloy::primitives::Address::repeat_byte(b),
            decimals: 18,
            price,
        };
        vec![
            t("WETH", 1, PriceSource::Instrument { symbol: "ETHUSDT".into() }),
            t("USDC", 2, PriceSource::Fixed { fixed: 1.0 }),
            t("WBTC", 3, PriceSource::Instrument { symbol: "BTCUSDT".into() }),
        ]
    }

    fn portfolios() -> Vec<PortfolioConfig> {
        let p = |name: &str, b: u8, targets: TargetsConfig| PortfolioConfig {
            name: name.into(),
            account: alloy::primitives::Address::repeat_byte(b),
            targets,
            triggers: vec![TriggerConfig::Drift { abs_band: Some(0.05), rel_band: None }],
            mode: PlanMode::ToTarget,
            cooldown_secs: 1.0,
            min_trade_notional: 1.0,
            cost: Default::default(),
        };
        vec![
            p("fixed", 0xa0, [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into()),
            p(
                "pred",
                0xa1,
                TargetsConfig::External(ExternalConfig {
                    name: "alpha".into(),
                    fallback: [("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)].into(),
                    max_age_secs: 1.0,
                    max_step: 0.2,
                }),
            ),
        ]
    }

    fn engine(clock: Arc<ManualClock>) -> Engine {
        Engine::new(EngineConfig::default(), &tokens(), &portfolios(), Box::new(clock)).unwrap()
    }

    fn msg(portfolio: &str, ts_ms: u64, weights: &str) -> String {
        format!(r#"{{"portfolio":"{portfolio}","ts_ms":{ts_ms},"weights":{weights}}}"#)
    }

    #[test]
    fn each_kind_of_bad_message_is_refused_by_name() {
        let e = engine(Arc::new(ManualClock::new(0)));
        let mut v = Validator::new(&portfolios(), &e);
        assert_eq!(v.predictors(), vec!["alpha".to_string()]);
        let now = 1_000_000u64;
        let kind = |v: &mut Validator, line: &str| v.check("alpha", line, now, 0).unwrap_err().kind();
        assert_eq!(kind(&mut v, "{not json"), "parse");
        assert_eq!(kind(&mut v, &"x".repeat(MAX_LINE_BYTES + 1)), "too_long");
        assert_eq!(kind(&mut v, &msg("fixed", now, r#"{"WETH":0.6,"USDC":0.4}"#)), "unknown_portfolio");
        assert_eq!(kind(&mut v, &msg("pred", now, r#"{"WETH":0.6,"WBTC":0.4}"#)), "unknown_token");
        assert_eq!(kind(&mut v, &msg("pred", now, r#"{"WETH":1.0}"#)), "missing_token");
        assert_eq!(kind(&mut v, &msg("pred", now, r#"{"WETH":1.5,"USDC":-0.5}"#)), "bad_weight");
        assert_eq!(kind(&mut v, &msg("pred", now, r#"{"WETH":0.6,"USDC":0.3}"#)), "sum");
        assert_eq!(kind(&mut v, &msg("pred", now, r#"{"WETH":0.9,"USDC":0.1}"#)), "step");
        assert_eq!(kind(&mut v, &msg("pred", now - 1_001, r#"{"WETH":0.6,"USDC":0.4}"#)), "stale");
        assert_eq!(kind(&mut v, &msg("pred", now + 1_001, r#"{"WETH":0.6,"USDC":0.4}"#)), "stale");
        // Another predictor may not drive this portfolio.
        let e2 = v.check("beta", &msg("pred", now, r#"{"WETH":0.6,"USDC":0.4}"#), now, 0).unwrap_err();
        assert_eq!(e2.to_string(), "portfolio `pred` does not take its targets from predictor `beta`");
        // Errors name what was wrong.
        let step = v.check("alpha", &msg("pred", now, r#"{"WETH":0.9,"USDC":0.1}"#), now, 0).unwrap_err();
        assert_eq!(step.to_string(), "`WETH` moves from 0.5000 to 0.9000, more than max_step 0.2");
        // A good one: the step is then measured from it; renormalised within the tolerance.
        let c = v.check("alpha", &msg("pred", now, r#"{"WETH":0.6995,"USDC":0.3}"#), now, 0).unwrap();
        assert!((c.update.weights[0] + c.update.weights[1] - 1.0).abs() < 1e-12);
        assert!(v.check("alpha", &msg("pred", now, r#"{"WETH":0.85,"USDC":0.15}"#), now, 0).is_ok());
        // Stale after max_age (1 s) without a good message: the fallback, once.
        assert!(v.stale("alpha", SEC).is_empty());
        let f = v.stale("alpha", SEC + 1);
        assert_eq!(f.len(), 1);
        assert!(f[0].update.fallback && f[0].record.fallback);
        assert_eq!(f[0].record.weights, vec![("WETH".to_string(), 0.5), ("USDC".to_string(), 0.5)]);
        assert!(v.stale("alpha", 10 * SEC).is_empty());
        // After the fallback, a jump from the fallback is measured from it.
        assert_eq!(kind(&mut v, &msg("pred", now, r#"{"WETH":0.9,"USDC":0.1}"#)), "step");
    }

    /// A scripted predictor on a real 127.0.0.1 socket: good messages reach the engine's targets and
    /// the journal; each kind of bad one is refused with its kind in the reply, counted, and changes
    /// nothing; when the predictor dies, its portfolio falls back after max_age (journaled).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scripted_predictor_is_applied_refused_and_its_death_falls_back() {
        let clock = Arc::new(ManualClock::new(0));
        let mut e = engine(Arc::clone(&clock));
        let dir = tempfile::tempdir().unwrap();
        let mut jcfg = JournalConfig::at(dir.path().join("journal.db"));
        jcfg.sync = SyncPolicy::Off;
        let names = Names {
            tokens: vec!["WETH".into(), "USDC".into(), "WBTC".into()],
            portfolios: vec!["fixed".into(), "pred".into()],
        };
        let journal = keel_journal::Journal::open(&jcfg, names).unwrap();
        let queue = Arc::new(Queue::new(TARGETS_QUEUE_CAPACITY));
        let stats = Arc::new(PredictorStats::default());
        let out = PredictorOutputs {
            queue: Arc::clone(&queue),
            journal: Some(Arc::new(journal.handle())),
            stats: Arc::clone(&stats),
        };
        let cfg = PredictorConfig { name: "alpha".into(), listen: "127.0.0.1:0".into() };
        let listener = PredictorListener::bind(&cfg).unwrap();
        let addr = listener.local_addr().unwrap();
        let validator = Arc::new(parking_lot::Mutex::new(Validator::new(&portfolios(), &e)));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_predictor("alpha".into(), listener, validator, out, cancel.clone()));

        // The predictor: a thread that sends a script and reads one reply per line, then dies.
        let script = move || {
            let now = wall_ms();
            let lines = [
                msg("pred", now, r#"{"WETH":0.6,"USDC":0.4}"#),
                msg("pred", now, r#"{"WETH":0.85,"USDC":0.15}"#),
                "not json".to_string(),
                msg("pred", now, r#"{"WETH":0.6,"WBTC":0.4}"#),
                msg("pred", now, r#"{"WETH":0.7,"USDC":0.2}"#),
                msg("pred", now - 60_000, r#"{"WETH":0.7,"USDC":0.3}"#),
                msg("fixed", now, r#"{"WETH":0.7,"USDC":0.3}"#),
                msg("pred", now, r#"{"WETH":0.75,"USDC":0.25}"#),
            ];
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let mut r = StdBufReader::new(s.try_clone().unwrap());
            let mut replies = Vec::new();
            for l in lines {
                writeln!(s, "{l}").unwrap();
                let mut reply = String::new();
                r.read_line(&mut reply).unwrap();
                replies.push(serde_json::from_str::<serde_json::Value>(&reply).unwrap());
            }
            replies
        };
        let replies = tokio::task::spawn_blocking(script).await.unwrap();
        let kinds: Vec<&str> = replies
            .iter()
            .map(|r| r["kind"].as_str().unwrap_or(if r["ok"] == true { "ok" } else { "?" }))
            .collect();
        assert_eq!(
            kinds,
            ["ok", "step", "parse", "unknown_token", "sum", "stale", "unknown_portfolio", "ok"]
        );
        assert!(replies[1]["error"].as_str().unwrap().contains("more than max_step 0.2"), "{:?}", replies[1]);

        // The engine drains the queue: the two good ones, in order.
        let pid = PortfolioId(1);
        let mut seen = Vec::new();
        while let Some(u) = queue.try_pop() {
            e.apply_target_update(&u).unwrap();
            seen.push(e.portfolio(pid).unwrap().targets().to_vec());
        }
        assert_eq!(seen, vec![vec![0.6, 0.4], vec![0.75, 0.25]]);
        assert_eq!(e.portfolio(pid).unwrap().on_fallback(), Some(false));
        assert_eq!(stats.applied.load(Ordering::Relaxed), 2);
        for k in ["step", "parse", "unknown_token", "sum", "stale", "unknown_portfolio"] {
            assert_eq!(stats.refused(k), 1, "{k}");
        }

        // The predictor is dead: after max_age (1 s) the reader sends the fallback.
        let t0 = std::time::Instant::now();
        let fallback = loop {
            if let Some(u) = queue.try_pop() {
                break u;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "no fallback after the predictor died");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(fallback.fallback);
        e.apply_target_update(&fallback).unwrap();
        assert_eq!(e.portfolio(pid).unwrap().targets(), &[0.5, 0.5]);
        assert_eq!(e.portfolio(pid).unwrap().on_fallback(), Some(true));
        assert_eq!(stats.fallbacks.load(Ordering::Relaxed), 1);
        assert_eq!(e.stats().targets.external_applied, 2);

        cancel.cancel();
        task.await.unwrap();
        journal.close().unwrap();
        // Every change is journaled, in order: two applied weights, then the fallback.
        let store = Store::open_read_only(&jcfg.path).unwrap();
        let recs: Vec<_> =
            store.records_since(0).unwrap().into_iter().filter(|(_, r)| r.kind == "targets").collect();
        assert_eq!(recs.len(), 3, "{recs:?}");
        let body = |i: usize| &recs[i].1.body;
        assert_eq!(
            (body(0)["portfolio"].as_str(), body(0)["fallback"].as_bool()),
            (Some("pred"), Some(false))
        );
        assert_eq!(body(0)["weights"]["WETH"], 0.6);
        assert_eq!(body(1)["weights"]["WETH"], 0.75);
        assert_eq!(body(2)["fallback"], true);
        assert_eq!(body(2)["weights"]["WETH"], 0.5);
        assert!(body(2)["detail"].as_str().unwrap().contains("no good message"));
    }

    /// The same reader on a Unix socket: a good message is answered and queued; a non-loopback
    /// TCP address is refused at bind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unix_socket_predictor_works_and_only_loopback_tcp_binds() {
        let e = engine(Arc::new(ManualClock::new(0)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alpha.sock");
        let cfg = PredictorConfig { name: "alpha".into(), listen: format!("unix:{}", path.display()) };
        let listener = PredictorListener::bind(&cfg).unwrap();
        let queue = Arc::new(Queue::new(8));
        let out = PredictorOutputs { queue: Arc::clone(&queue), journal: None, stats: Default::default() };
        let validator = Arc::new(parking_lot::Mutex::new(Validator::new(&portfolios(), &e)));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_predictor("alpha".into(), listener, validator, out, cancel.clone()));
        let p = path.clone();
        let reply = tokio::task::spawn_blocking(move || {
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            writeln!(s, "{}", msg("pred", wall_ms(), r#"{"WETH":0.55,"USDC":0.45}"#)).unwrap();
            let mut reply = String::new();
            StdBufReader::new(s).read_line(&mut reply).unwrap();
            reply
        })
        .await
        .unwrap();
        assert_eq!(reply, "{\"ok\":true}\n");
        assert_eq!(queue.try_pop().map(|u| u.weights[0]), Some(0.55));
        cancel.cancel();
        task.await.unwrap();
        assert!(!path.exists(), "the socket file is removed at stop");
        let public = PredictorConfig { name: "alpha".into(), listen: "0.0.0.0:7070".into() };
        let err = PredictorListener::bind(&public).unwrap_err().to_string();
        assert!(err.contains("is neither 127.0.0.1:PORT nor unix:/path"), "{err}");
    }
}
