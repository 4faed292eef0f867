//! Why the relay core or a backend refused a request, and how that reads on the wire.

use axum::http::StatusCode;

use crate::jsonrpc::{INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, SERVER_ERROR};

use super::{MAX_BUNDLE_BYTES, MAX_BUNDLE_TXS};

/// JSON-RPC internal error.
const INTERNAL_ERROR: i64 = -32603;

/// A refused relay request. Every variant maps to one JSON-RPC error code ([`RelayError::code`]),
/// one HTTP status ([`RelayError::http_status`]) and one counter label ([`RelayError::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// No `X-Flashbots-Signature` header.
    #[error("missing X-Flashbots-Signature header")]
    MissingSignature,
    /// The header is not ASCII, not `<address>:<signature>`, or does not sign the body.
    #[error("invalid X-Flashbots-Signature: {0}")]
    BadSignature(String),
    /// The body is not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// The body is JSON but not a JSON-RPC 2.0 request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A method the relay does not serve.
    #[error("the method {0} does not exist/is not available")]
    MethodNotFound(String),
    /// Missing or malformed parameters.
    #[error("{0}")]
    Params(String),
    /// More than [`MAX_BUNDLE_TXS`] transactions.
    #[error("bundle has {count} transactions; at most {MAX_BUNDLE_TXS}")]
    TooManyTxs {
        /// Transactions in the bundle.
        count: usize,
    },
    /// More than [`MAX_BUNDLE_BYTES`] bytes of raw transactions.
    #[error("bundle has {bytes} bytes of transactions; at most {MAX_BUNDLE_BYTES}")]
    TooLarge {
        /// Bytes of raw transactions.
        bytes: usize,
    },
    /// A backend refused a well-formed bundle (a transaction it cannot decode, a past target block,
    /// a repeated transaction).
    #[error("{message}")]
    Rejected {
        /// Counter label, e.g. `bad_tx`, `past_block`.
        reason: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The backend could not serve a valid request (a state it does not keep, a failed execution).
    #[error("{0}")]
    Server(String),
    /// The backend failed (its chain did not answer).
    #[error("internal error: {0}")]
    Internal(String),
}

impl RelayError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => PARSE_ERROR,
            Self::MissingSignature
            | Self::BadSignature(_)
            | Self::InvalidRequest(_)
            | Self::TooManyTxs { .. }
            | Self::TooLarge { .. }
            | Self::Rejected { .. } => INVALID_REQUEST,
            Self::MethodNotFound(_) => METHOD_NOT_FOUND,
            Self::Params(_) => INVALID_PARAMS,
            Self::Server(_) => SERVER_ERROR,
            Self::Internal(_) => INTERNAL_ERROR,
        }
    }

    /// The HTTP status of a reply that carries only this error: 403 for authentication, 400 for a
    /// body that is not a request, 200 (a JSON-RPC error) otherwise.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::MissingSignature | Self::BadSignature(_) => StatusCode::FORBIDDEN,
            Self::Parse(_) | Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        }
    }

    /// The label under which a refusal is counted: `missing_signature`, `bad_signature`,
    /// `too_many_txs`, `too_large`, a backend's own reason, `internal` for backend failures, and
    /// `malformed` for everything else.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::BadSignature(_) => "bad_signature",
            Self::TooManyTxs { .. } => "too_many_txs",
            Self::TooLarge { .. } => "too_large",
            Self::Rejected { reason, .. } => reason,
            Self::Server(_) | Self::Internal(_) => "internal",
            Self::Parse(_) | Self::InvalidRequest(_) | Self::MethodNotFound(_) | Self::Params(_) => {
                "malformed"
            }
        }
    }

    /// Whether the refusal is about authentication (the request was never read).
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::MissingSignature | Self::BadSignature(_))
    }

    /// A [`RelayError::Rejected`].
    pub fn rejected(reason: &'static str, message: impl Into<String>) -> Self {
        Self::Rejected { reason, message: message.into() }
    }
}

impl From<crate::jsonrpc::RpcError> for RelayError {
    fn from(e: crate::jsonrpc::RpcError) -> Self {
        match e.code {
            PARSE_ERROR => Self::Parse(e.message),
            INVALID_PARAMS => Self::Params(e.message),
            _ => Self::Server(e.message),
        }
    }
}
