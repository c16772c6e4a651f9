//! [`LastFlow`]: how the last authorization flow for one MCP server ended, as a store keeps it
//! so that every process sharing the store (and the next run) shows the same status.

use std::time::SystemTime;

use mcp_oauth_flow::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// A flow's failure as a [`ServerStatus`](crate::ServerStatus) shows it. It holds no secret:
/// an error's message names URLs and reasons, never a token, code or verifier.
///
/// ```
/// use std::time::SystemTime;
/// use tower_mcp_oauth::{ErrorKind, LastError};
/// let at = SystemTime::UNIX_EPOCH;
/// let error = LastError::new(ErrorKind::TokenRejected, "invalid_grant", at);
/// assert_eq!((error.kind, error.at), (ErrorKind::TokenRejected, at));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LastError {
    /// What went wrong, as one actionable cause.
    pub kind: ErrorKind,
    /// The error's message (it names URLs and reasons, never a secret).
    pub message: String,
    /// When the flow ended with it.
    pub at: SystemTime,
}

impl LastError {
    /// A failure of `kind` with `message` at `at` (for stores that rebuild one they kept).
    pub fn new(kind: ErrorKind, message: impl Into<String>, at: SystemTime) -> Self {
        Self {
            kind,
            message: message.into(),
            at,
        }
    }

    /// `error` as a status shows it: its kind and its `Display` (which holds no secret).
    pub(crate) fn of(error: &Error, at: SystemTime) -> Self {
        Self::new(error.kind(), error.to_string(), at)
    }
}

/// How the last authorization flow (login, refresh or step-up) for one MCP server ended:
/// what [`TokenStore::save_last_flow`](crate::TokenStore::save_last_flow) keeps per server.
///
/// A success is kept too, with its time, rather than removing the failure: a process that
/// remembers an older failure of its own can then tell that another process succeeded since.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_mcp_oauth::{ErrorKind, LastError, LastFlow};
/// let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
/// let failed = LastFlow::Failed(LastError::new(ErrorKind::Timeout, "no answer", t(1)));
/// let succeeded = LastFlow::Succeeded { at: t(2) };
/// assert_eq!(failed.error().map(|e| e.kind), Some(ErrorKind::Timeout));
/// assert!(succeeded.error().is_none());
/// assert_eq!(LastFlow::newest(Some(failed), Some(succeeded.clone())), Some(succeeded));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LastFlow {
    /// The flow got tokens.
    Succeeded {
        /// When it ended.
        at: SystemTime,
    },
    /// The flow failed.
    Failed(LastError),
}

impl LastFlow {
    /// The record of a flow that ended at `at` with `result`.
    pub(crate) fn of(result: &Result<(), Error>, at: SystemTime) -> Self {
        match result {
            Ok(()) => Self::Succeeded { at },
            Err(error) => Self::Failed(LastError::of(error, at)),
        }
    }

    /// When the flow ended.
    pub fn at(&self) -> SystemTime {
        match self {
            Self::Succeeded { at } => *at,
            Self::Failed(error) => error.at,
        }
    }

    /// The failure, unless the flow succeeded.
    pub fn error(&self) -> Option<&LastError> {
        match self {
            Self::Succeeded { .. } => None,
            Self::Failed(error) => Some(error),
        }
    }

    /// The later of two records (a tie goes to `b`): what one process remembers and what the
    /// shared store holds are merged so.
    pub fn newest(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if a.at() > b.at() { a } else { b }),
            (a, b) => b.or(a),
        }
    }
}
