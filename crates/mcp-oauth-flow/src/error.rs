//! The one error type of the flow, opaque with a [`ErrorKind`].

use std::fmt;

use crate::escaped::Escaped;

mod kind;

pub use kind::ErrorKind;

/// A boxed error from a lower layer (a transport, a store, an authorizer).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An OAuth error response (RFC 6749 §5.2), as the server sent it.
///
/// `error_description` is server-provided text; it is kept for diagnostics and never contains a
/// secret of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthErrorResponse {
    /// The `error` code, e.g. `invalid_grant`.
    pub error: String,
    /// The optional `error_description`.
    pub error_description: Option<String>,
}

/// An error of the authorization flow.
///
/// Opaque on purpose (hyper-util's `Error` is the model): the [`kind`](Error::kind) is what to
/// match on, the message says what happened in words a user can act on, and new detail can be
/// added without a breaking change. It never holds a secret: no token, code, verifier or client
/// secret is ever put into a message.
///
/// It is `Clone`, so that every caller waiting on one shared flow sees the same error.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    oauth: Option<OAuthErrorResponse>,
    status: Option<http::StatusCode>,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
    report: Option<crate::report::DiscoveryReport>,
    /// Set by whoever knows the cause may pass (a store's timeout), for kinds that can go
    /// either way.
    transient: bool,
}

impl Error {
    /// Creates an error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                oauth: None,
                status: None,
                source: None,
                report: None,
                transient: false,
            }),
        }
    }

    /// Attaches the error that caused this one.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(std::sync::Arc::from(source.into()));
        self
    }

    /// Marks the error as one that may go away by itself, for a cause its kind does not tell:
    /// a store sets it for a timeout or a dropped connection, and leaves it unset for a
    /// permission denied or a corrupt file.
    ///
    /// ```
    /// use mcp_oauth_flow::{Error, ErrorKind};
    /// let denied = Error::new(ErrorKind::Store, "cannot write /tokens: permission denied");
    /// let timed_out = Error::new(ErrorKind::Store, "Redis did not answer").mark_transient();
    /// assert!(!denied.is_transient());
    /// assert!(timed_out.is_transient());
    /// ```
    pub fn mark_transient(mut self) -> Self {
        self.inner.transient = true;
        self
    }

    /// Attaches the OAuth error response the server sent.
    pub fn with_oauth_error(mut self, oauth: OAuthErrorResponse) -> Self {
        self.inner.oauth = Some(oauth);
        self
    }

    /// Attaches the HTTP status of the response that caused the error.
    pub fn with_status(mut self, status: http::StatusCode) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Attaches the record of every URL the flow tried.
    pub fn with_report(mut self, report: crate::report::DiscoveryReport) -> Self {
        self.inner.report = Some(report);
        self
    }

    /// Every URL the failed flow tried, with its status and why it was not used: the first
    /// thing to print when discovery goes wrong.
    pub fn report(&self) -> Option<&crate::report::DiscoveryReport> {
        self.inner.report.as_ref()
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether the error may go away by itself, so that repeating the same call can succeed:
    /// its kind always may ([`ErrorKind::is_transient`]), or whoever made it marked its cause so
    /// ([`mark_transient`](Self::mark_transient)).
    pub fn is_transient(&self) -> bool {
        self.inner.transient || self.inner.kind.is_transient()
    }

    /// The OAuth error response, when a server sent one.
    pub fn oauth_error(&self) -> Option<&OAuthErrorResponse> {
        self.inner.oauth.as_ref()
    }

    /// The HTTP status of the response behind the error, when there was one.
    pub fn status(&self) -> Option<http::StatusCode> {
        self.inner.status
    }

    /// The human-readable detail, without the kind.
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(oauth) = &self.inner.oauth {
            d.field("oauth", oauth);
        }
        if let Some(status) = &self.inner.status {
            d.field("status", status);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

/// The message alone: each message names what went wrong and for which URL, so prefixing the
/// kind would say it twice. The cause, when there is one, is [`source`](std::error::Error::source)
/// and is not repeated here (the Rust API guidelines' rule for error chains).
///
/// The alternate form, `{:#}`, is the one line to print or log: the kind, the message, then
/// every cause down the chain, separated by `: ` (a cause whose text repeats the link before it
/// is written once).
///
/// ```
/// use mcp_oauth_flow::{Error, ErrorKind};
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let err = Error::new(ErrorKind::Transport, "request to http://127.0.0.1:1/mcp failed").with_source(io);
/// assert_eq!(err.to_string(), "request to http://127.0.0.1:1/mcp failed");
/// assert_eq!(
///     format!("{err:#}"),
///     "transport error: request to http://127.0.0.1:1/mcp failed: connection refused"
/// );
/// ```
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return self.fmt_chain(f);
        }
        self.fmt_message(f)
    }
}

/// Whether `code` is an OAuth `error` code as RFC 6749 writes them (§4.1.2.1, §5.2: one or
/// more of `%x20-21 / %x23-5B / %x5D-7E`, printable ASCII but `"` and `\`).
fn is_error_code(code: &str) -> bool {
    !code.is_empty()
        && code
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl Error {
    /// The message (or the kind, when there is none) and the server's OAuth error code.
    fn fmt_message(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inner.message.is_empty() {
            f.write_str(self.inner.kind.as_str())?;
        } else {
            write!(f, "{}", Escaped(&self.inner.message))?;
        }
        if let Some(oauth) = &self.inner.oauth {
            // The code as it came when it is one RFC 6749 allows; else quoted and escaped, as
            // the description is: a hostile server's control characters (a terminal escape, a
            // forged log line) reach no terminal or log through this error.
            if is_error_code(&oauth.error) {
                write!(f, " (error={}", oauth.error)?;
            } else {
                write!(f, " (error={:?}", oauth.error)?;
            }
            if let Some(desc) = &oauth.error_description {
                write!(f, ", error_description={desc:?}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }

    /// `kind: message: cause: cause…`, on one line.
    fn fmt_chain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.as_str())?;
        if !self.inner.message.is_empty() || self.inner.oauth.is_some() {
            f.write_str(": ")?;
            self.fmt_message(f)?;
        }
        // A wrapper often repeats its source's text as its message: each text is written once
        // (compared as shown, escaped as this error's own message is).
        let mut previous = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            let text = Escaped(&error.to_string()).to_string();
            if text != previous {
                write!(f, ": {text}")?;
            }
            previous = text;
            cause = error.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's control characters in a message or a cause reach no terminal or log line.
    #[test]
    fn control_characters_are_escaped() {
        let source = std::io::Error::other("reset\r\nby peer");
        let err = Error::new(
            ErrorKind::NoUsableAuthorizationServer,
            "x\u{1b}[2J: none\nFORGED LINE",
        )
        .with_source(source);
        for shown in [err.to_string(), format!("{err:#}")] {
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
        assert_eq!(err.to_string(), "x\\u{1b}[2J: none\\nFORGED LINE");
        assert!(format!("{err:#}").ends_with("reset\\r\\nby peer"));
        assert_eq!(Escaped("plain é").to_string(), "plain é");
        // A wrapper repeating its source's text: once, escaped or not.
        let io = std::io::Error::other("reset\nby peer");
        let wrapped = Error::new(ErrorKind::Transport, "reset\nby peer").with_source(io);
        assert_eq!(
            format!("{wrapped:#}").matches("reset").count(),
            1,
            "{wrapped:#}"
        );
    }

    #[test]
    fn display_names_kind_and_oauth_code() {
        let err = Error::new(ErrorKind::TokenRejected, "token endpoint said no").with_oauth_error(
            OAuthErrorResponse {
                error: "invalid_grant".into(),
                error_description: Some("code expired".into()),
            },
        );
        let text = err.to_string();
        assert!(text.starts_with("token endpoint said no"));
        assert!(text.contains("error=invalid_grant"));
        assert!(text.contains("code expired"));
    }

    #[test]
    fn an_error_code_outside_rfc_6749s_characters_is_shown_escaped() {
        let with = |code: &str| {
            Error::new(ErrorKind::AuthorizationDenied, "denied")
                .with_oauth_error(OAuthErrorResponse {
                    error: code.into(),
                    error_description: None,
                })
                .to_string()
        };
        // A terminal escape and a forged log line, from a hostile authorization server.
        let shown = with("x\u{1b}]0;pwned\u{7}\nFAKE LOG LINE");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(
            shown.contains(r#"error="x\u{1b}]0;pwned\u{7}\nFAKE LOG LINE""#),
            "{shown}"
        );
        // `"` and `\` are outside too; a code as RFC 6749 writes them is shown as it is.
        assert!(with("a\"b").contains(r#"error="a\"b""#));
        assert!(with("access_denied").contains("(error=access_denied)"));
        assert!(with("").contains(r#"(error="")"#));
    }

    #[test]
    fn error_is_small_and_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn store_transience_comes_from_the_cause() {
        let denied = Error::new(ErrorKind::Store, "permission denied");
        assert!(!denied.is_transient());
        let timed_out = denied.clone().mark_transient();
        assert!(timed_out.is_transient());
        assert_eq!(timed_out.kind(), ErrorKind::Store);
        // A clone keeps the mark: every waiter of a shared flow sees the same answer.
        assert!(timed_out.clone().is_transient());
    }

    #[derive(Debug)]
    struct Text(&'static str, Option<Box<Text>>);
    impl fmt::Display for Text {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Text {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|t| t as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn alternate_display_prints_the_whole_chain_on_one_line() {
        let chain = Text(
            "tcp connect error",
            Some(Box::new(Text("connection refused", None))),
        );
        let err =
            Error::new(ErrorKind::Transport, "request to http://h/mcp failed").with_source(chain);
        assert_eq!(err.to_string(), "request to http://h/mcp failed");
        assert_eq!(
            format!("{err:#}"),
            "transport error: request to http://h/mcp failed: tcp connect error: connection refused"
        );

        // A link repeating the one before is written once.
        let err = Error::new(ErrorKind::Transport, "connection refused")
            .with_source(Text("connection refused", None));
        assert_eq!(format!("{err:#}"), "transport error: connection refused");

        // The server's OAuth error stays with the message it explains.
        let err = Error::new(ErrorKind::TokenRejected, "token endpoint said no").with_oauth_error(
            OAuthErrorResponse {
                error: "invalid_grant".into(),
                error_description: None,
            },
        );
        assert_eq!(
            format!("{err:#}"),
            "token request rejected: token endpoint said no (error=invalid_grant)"
        );

        // No message: the kind alone, never an empty link.
        let bare = Error::new(ErrorKind::Store, "");
        assert_eq!(format!("{bare:#}"), "token store error");
        assert_eq!(bare.to_string(), "token store error");
    }

    /// The message is the text given, without the OAuth error that `Display` appends.
    #[test]
    fn message_is_the_text_given() {
        let err = Error::new(
            ErrorKind::TokenRejected,
            "the token endpoint refused the code",
        )
        .with_oauth_error(OAuthErrorResponse {
            error: "invalid_grant".into(),
            error_description: None,
        });
        assert_eq!(err.message(), "the token endpoint refused the code");
    }

    /// A report attached to an error comes back with its steps.
    #[test]
    fn report_comes_back_with_its_steps() {
        let mut report = crate::report::DiscoveryReport::default();
        report.push(
            crate::report::Purpose::ResourceMetadata,
            "https://mcp.example.com/.well-known/oauth-protected-resource",
            Some(404),
            "not found",
        );
        let err = Error::new(ErrorKind::ResourceMetadataNotFound, "no metadata");
        assert!(err.report().is_none());
        let err = err.with_report(report.clone());
        assert_eq!(err.report(), Some(&report));
        assert_eq!(err.report().unwrap().steps().len(), 1);
    }

    /// `Debug` names the kind, the message and the OAuth error, for logs.
    #[test]
    fn debug_names_kind_message_and_oauth_error() {
        let err =
            Error::new(ErrorKind::TokenRejected, "refused").with_oauth_error(OAuthErrorResponse {
                error: "invalid_grant".into(),
                error_description: None,
            });
        let text = format!("{err:?}");
        assert!(text.contains("TokenRejected"), "{text}");
        assert!(text.contains("refused"), "{text}");
        assert!(text.contains("invalid_grant"), "{text}");
    }
}
