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
//! * The hot path — price update, weight recomputation, trigger decision — lives in [`hot`] and
//!   allocates nothing, takes no lock and makes no syscall. Planning runs only after a trigger fired.
//! * Amounts are raw integer token units (`U256`); prices and weights are `f64`, used only to decide
//!   and to size; the router turns sizes into exact on-chain amounts.
//! * The engine knows nothing of websockets, HTTP or pools.

pub mod clock;
pub mod config;
pub mod event;
pub mod ids;
pub mod intent;
pub mod queue;

pub use clock::{Clock, LiveClock, ManualClock, Nanos};
pub use event::Event;
pub use ids::{InstrumentId, PortfolioId, TokenId};
pub use intent::{Leg, RebalanceIntent, TriggerReason};
pub use queue::{Queue, QueueStats};
