//! Errors of the anvil harness and relay.

use alloy::primitives::B256;

/// Result alias for the anvil harness.
pub type Result<T> = core::result::Result<T, AnvilError>;

/// What can go wrong while starting, deploying on or driving anvil.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// The anvil binary or the npm artifacts are not installed.
    #[error(
        "{what} not found at {path}: install the chain packages with `{chain_dir}/setup.sh` (runs `npm ci --prefix {chain_dir}`), or set KEEL_CHAIN_DIR to a folder where `npm ci` installed Keel's tests/chain/package.json{hint}"
    )]
    Missing {
        /// What is missing.
        what: &'static str,
        /// Where it was looked for.
        path: String,
        /// The folder of the pinned npm packages that was searched (see `artifacts::chain_dir`).
        chain_dir: String,
        /// Extra hint (e.g. the override variable).
        hint: &'static str,
    },
    /// anvil could not be spawned or did not come up.
    #[error("anvil failed to start: {0}")]
    Spawn(String),
    /// An artifact file could not be read or has no bytecode.
    #[error("artifact {path}: {reason}")]
    Artifact {
        /// Artifact path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON-RPC call failed.
    #[error("rpc {method}: {reason}")]
    Rpc {
        /// The method or step.
        method: String,
        /// The transport or node error.
        reason: String,
    },
    /// A deployment or setup transaction reverted.
    #[error("transaction `{label}` ({hash}) reverted")]
    Reverted {
        /// What the transaction was for.
        label: String,
        /// Its hash.
        hash: B256,
    },
    /// An I/O error (relay socket).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl AnvilError {
    /// Wraps an RPC error with the method it came from.
    pub fn rpc(method: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Rpc { method: method.into(), reason: e.to_string() }
    }

    /// True when retrying could help (transport hiccups); false for missing installs and reverts.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::Rpc { .. } | Self::Io(_))
    }
}
