//! [`TowerHttpError`]: the `Client` error of rmcp's `StreamableHttpError` for this transport.

use std::fmt;

use mcp_oauth_flow::{BoxError, Error, ErrorKind};

/// What went wrong below rmcp: the layer, the response body, or building the request.
///
/// rmcp hands it back as `StreamableHttpError::Client(TowerHttpError)`, and reports it by its
/// text: `StreamableHttpError::Client` has no `source`, so a chain of causes stops there. That
/// is why the `Display` of a layer error carries everything: the [`ErrorKind`] name first
/// (`ResourceMismatch: …`), the layer's message, then each cause (`…: tcp connect error:
/// Connection refused`). For the typed error, downcast rmcp's boxed transport error to
/// `StreamableHttpError<TowerHttpError>` and use [`layer_error`](Self::layer_error).
///
/// ```
/// use tower_mcp_oauth::rmcp::TowerHttpError;
/// use tower_mcp_oauth::{Error, ErrorKind};
///
/// let error = TowerHttpError::from(Error::new(ErrorKind::ResourceMismatch, "wrong resource"));
/// assert_eq!(error.kind(), Some(ErrorKind::ResourceMismatch));
/// assert!(error.to_string().starts_with("ResourceMismatch: "));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TowerHttpError {
    /// The layer failed: the authorization flow (discovery, consent, token) or sending the
    /// request at all ([`ErrorKind::Transport`]).
    Layer(Error),
    /// The response body failed while it was being read.
    Body(BoxError),
    /// One SSE event was larger than the transport's `max_sse_event_size`.
    SseEventTooLarge {
        /// The limit, in bytes.
        max_size: usize,
    },
    /// The request could not be built (a URI or header rmcp passed is invalid).
    InvalidRequest(http::Error),
    /// The JSON-RPC message could not be serialized.
    Serialize(serde_json::Error),
}

impl TowerHttpError {
    /// The kind of a layer error; `None` for the other variants.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.layer_error().map(Error::kind)
    }

    /// The layer's error, with its [`report`](Error::report) and
    /// [`oauth_error`](Error::oauth_error), when the layer failed.
    pub fn layer_error(&self) -> Option<&Error> {
        match self {
            Self::Layer(error) => Some(error),
            _ => None,
        }
    }
}

impl From<Error> for TowerHttpError {
    fn from(error: Error) -> Self {
        Self::Layer(error)
    }
}

impl fmt::Display for TowerHttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The Debug name (`ResourceMismatch`) is the stable, greppable one; the layer
            // error's own Display adds the detail.
            Self::Layer(error) => {
                write!(f, "{:?}: {error}", error.kind())?;
                // A link that says what the previous one said is not written twice.
                let mut previous = error.message().to_owned();
                let mut cause = std::error::Error::source(error);
                while let Some(error) = cause {
                    let text = error.to_string();
                    if text != previous {
                        write!(f, ": {text}")?;
                    }
                    previous = text;
                    cause = error.source();
                }
                Ok(())
            }
            Self::Body(error) => write!(f, "reading the response body failed: {error}"),
            Self::SseEventTooLarge { max_size } => {
                write!(f, "SSE event exceeded the maximum size of {max_size} bytes")
            }
            Self::InvalidRequest(error) => write!(f, "invalid request: {error}"),
            Self::Serialize(error) => write!(f, "serializing the message failed: {error}"),
        }
    }
}

impl std::error::Error for TowerHttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Its causes are already in the Display (see the type's docs).
            Self::Layer(_) => None,
            Self::Body(error) => Some(&**error),
            Self::SseEventTooLarge { .. } => None,
            Self::InvalidRequest(error) => Some(error),
            Self::Serialize(error) => Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn layer_error_text_has_kind_message_and_every_cause() {
        #[derive(Debug)]
        struct Connect(std::io::Error);
        impl fmt::Display for Connect {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl std::error::Error for Connect {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let cause = Connect(std::io::Error::other("connection refused"));
        let error = TowerHttpError::from(
            Error::new(ErrorKind::Transport, "tcp connect error").with_source(cause),
        );
        assert_eq!(error.kind(), Some(ErrorKind::Transport));
        assert_eq!(
            error.to_string(),
            "Transport: tcp connect error: connection refused"
        );
        // Not repeated by a reporter that walks the chain.
        assert!(error.source().is_none());
    }

    #[test]
    fn other_variants_have_no_kind() {
        let error = TowerHttpError::SseEventTooLarge { max_size: 8 };
        assert_eq!(error.kind(), None);
        assert!(error.layer_error().is_none());
        assert!(error.to_string().contains("8 bytes"));
    }
}
