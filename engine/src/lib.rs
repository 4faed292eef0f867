//! # keel-engine
//!
//! Keel's deterministic core. Data flows one way:
//!
//! ```text
//! feeds ──Event──▶ [bounded queue] ──▶ Engine::process ──RebalanceIntent──▶ [bounded queue] ──▶ router
//! ```
//!
//! * The engine is a state machine: [`Engine::process`] takes one [`Event`] and emits zero or more
//!   [`RebalanceIntent`]s. Time comes from an injected [`Clock`], so the live run, the demo, the
//!   latency harness and replays run the same code.
//! * The hot path — price update, candidate selection, weight recomputation, trigger decision —
//!   lives in [`hot`] and [`index`] and allocates nothing, takes no lock and makes no syscall.
//!   Planning runs only after a trigger fired.
//! * Amounts are raw integer token units (`U256`); prices and weights are `f64`, used only to decide
//!   and to size; the router turns sizes into exact on-chain amounts.
//! * The engine knows nothing of websockets, HTTP or pools.
#![cfg_attr(test, allow(unused_crate_dependencies))]

//!
//! ## Modules
//!
//! * [`token`] — token and instrument tables, per-token price state and staleness.
//! * [`portfolio`] — holdings, weights and the rebalance lifecycle (in flight → landed → awaiting
//!   post-landing balances → cooldown).
//! * [`trigger`] — drift, temporal and volatility-targeted triggers; the EWMA volatility table.
//! * [`target_config`] and [`target`] — where targets come from (fixed, CPPI, momentum, a
//!   predictor) and how they move: CPPI inside each weight scan, momentum on timer samples, external
//!   weights through [`Engine::apply_target_update`]; all in place, without allocating.
//! * [`registry`] — parameters governed on chain (targets, bands, pause) and how an entry of the
//!   on-chain registry is checked and applied ([`Engine::apply_registry`]).
//! * [`hot`] — the allocation-free path from a quote to a trigger decision.
//! * [`safe_box`] and [`index`] — per portfolio, the price box inside which no band can be crossed,
//!   and the per-token heaps of those boxes that make a quote touch only the portfolios whose box
//!   it left (sublinear in the number of portfolios).
//! * [`planner`] — the legs that restore the targets (or the band edges).
//! * [`engine`] — [`Engine`], which ties them together; [`stats`] — its counters.
//!
//! ## Invariants
//!
//! * Ids are dense and assigned at load: tokens in config order, instruments in first-seen order
//!   ([`Engine::instrument_symbols`]), portfolios in config order.
//! * A portfolio has at most one intent in flight, and fires on no missing or stale price, on no
//!   unknown holding, during no cooldown, and not between a landed outcome and the balances read at
//!   or after the landing block.
//! * A plan never sells more of a token than the portfolio holds.

pub mod chain;
pub mod clock;
pub mod config;
pub mod engine;
pub mod event;
pub mod hot;
pub mod ids;
pub mod index;
pub mod intent;
pub mod planner;
pub mod portfolio;
pub mod queue;
pub mod record;
pub mod registry;
pub mod restore;
pub mod safe_box;
pub mod signed;
pub mod stats;
pub mod target;
pub mod target_config;
pub mod token;
pub mod trigger;
pub mod value;

pub use clock::{Clock, LiveClock, ManualClock, Nanos};
pub use engine::Engine;
pub use event::Event;
pub use ids::{InstrumentId, PortfolioId, TokenId};
pub use index::{CandidateMode, IndexStats};
pub use intent::{Leg, RebalanceIntent, TriggerReason};
pub use planner::{Plan, PlanAsset};
pub use portfolio::{Portfolio, PortfolioStatus};
pub use queue::{Queue, QueueStats};
pub use registry::{RegistryEntry, RegistryReject, RegistryUpdate};
pub use stats::EngineStats;
pub use target::{TargetReject, TargetUpdate};
pub use token::{Price, PriceOrigin, Token, TokenTable};
pub use trigger::{Trigger, TriggerKind, VolTable};
