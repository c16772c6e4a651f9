//! The stored form of tokens and registrations: their serde JSON.

use mcp_oauth_flow::{Error, ErrorKind};
use serde::de::DeserializeOwned;

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value)
        .map_err(|e| Error::new(ErrorKind::Store, format!("cannot encode for Redis: {e}")))
}

/// Parses a stored value. The serde error is not attached: its text may quote part of the
/// value, which may be a token; its category and position are enough to find the problem.
pub(super) fn decode<T: DeserializeOwned>(json: &str, kind: &str, name: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| {
        Error::new(
            ErrorKind::Store,
            format!(
                "the stored {kind} of {name} are not valid ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}
