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

    /// Keeps `record` under `server` in `records`, at most `max` of them: a new server past
    /// the bound takes the place of the one whose record is oldest. Status records are kept
    /// per server URL, and an app whose users type the servers in (each failed `start` a
    /// record) would otherwise grow them for ever; the oldest is the least worth showing.
    pub(crate) fn keep_bounded(
        records: &mut std::collections::HashMap<String, LastFlow>,
        server: &str,
        record: LastFlow,
        max: usize,
    ) {
        if !records.contains_key(server) && records.len() >= max {
            let oldest = records
                .iter()
                .min_by_key(|(_, r)| r.at())
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                records.remove(&oldest);
            }
        }
        records.insert(server.to_owned(), record);
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::LastFlow;

    fn at(secs: u64) -> LastFlow {
        LastFlow::Succeeded {
            at: UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    /// Past the bound, a new server's record takes the oldest one's place; a server already
    /// kept is updated in place, whatever the count.
    #[test]
    fn records_stay_within_their_bound_and_the_oldest_goes() {
        let mut records = HashMap::new();
        for (n, secs) in [(0, 30), (1, 10), (2, 20)] {
            LastFlow::keep_bounded(&mut records, &format!("s{n}"), at(secs), 3);
        }
        LastFlow::keep_bounded(&mut records, "s3", at(40), 3);
        assert_eq!(records.len(), 3);
        assert!(!records.contains_key("s1"), "the oldest went");
        LastFlow::keep_bounded(&mut records, "s0", at(50), 3);
        assert_eq!(records.len(), 3);
        assert_eq!(records["s0"].at(), at(50).at());
        let mut many = HashMap::new();
        for n in 0..10_000 {
            LastFlow::keep_bounded(&mut many, &format!("https://x{n}.invalid/mcp"), at(n), 1024);
        }
        assert_eq!(many.len(), 1024);
        assert!(many.contains_key("https://x9999.invalid/mcp"));
    }
}
