//! Where the assertions of the assertion grants come from: the application's closure, an
//! environment variable, or a file the platform rotates. Each is asked afresh every time the
//! flow runs its grant, so a rotated token is picked up without a restart.

use std::path::PathBuf;

use mcp_oauth_flow::grants::{AssertionKind, AssertionRequest};
use mcp_oauth_flow::{BoxError, Error, ErrorKind};

use crate::BoxFuture;

/// Supplies the assertion of an assertion grant: the workload identity token (SEP-1933) or the
/// user's ID token (SEP-990), as [`AssertionRequest::kind`] says.
///
/// Implemented by [`EnvAssertion`], [`FileAssertion`], and any
/// `Fn(&AssertionRequest) -> Result<String, BoxError>` closure (which may mint or fetch one);
/// implement it for an asynchronous source (a cloud metadata service, an SSO session).
///
/// ```
/// use tower_mcp_oauth::{AssertionSource, grants::{AssertionKind, AssertionRequest}};
/// let source = |request: &AssertionRequest| -> Result<String, tower_mcp_oauth::BoxError> {
///     assert_eq!(request.kind, AssertionKind::WorkloadIdentity);
///     Ok("eyJ...".to_owned())
/// };
/// # let _ = &source as &dyn AssertionSource;
/// ```
pub trait AssertionSource: Send + Sync + 'static {
    /// The assertion for `request`, or why there is none (reported as
    /// [`ErrorKind::AssertionUnavailable`] unless it already is an [`Error`]).
    fn assertion(&self, request: &AssertionRequest) -> BoxFuture<'static, Result<String, Error>>;
}

impl<F> AssertionSource for F
where
    F: Fn(&AssertionRequest) -> Result<String, BoxError> + Send + Sync + 'static,
{
    fn assertion(&self, request: &AssertionRequest) -> BoxFuture<'static, Result<String, Error>> {
        let result = self(request).map_err(|e| match e.downcast::<Error>() {
            Ok(error) => *error,
            Err(e) => Error::new(
                ErrorKind::AssertionUnavailable,
                format!(
                    "the application's assertion source failed for {}",
                    what(request)
                ),
            )
            .with_source(e),
        });
        Box::pin(std::future::ready(result))
    }
}

/// The assertion in an environment variable, read each time it is needed (a CI system's OIDC
/// token, say).
///
/// ```
/// use tower_mcp_oauth::{AssertionSource, EnvAssertion, ErrorKind};
/// use tower_mcp_oauth::grants::{AssertionKind, AssertionRequest};
/// # tokio_test::block_on(async {
/// let source = EnvAssertion::new("MCP_OAUTH_DOC_UNSET_VARIABLE");
/// let request = AssertionRequest::workload("https://as.example.com", None);
/// let err = source.assertion(&request).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::AssertionUnavailable);
/// assert!(err.message().contains("MCP_OAUTH_DOC_UNSET_VARIABLE"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct EnvAssertion {
    variable: String,
}

impl EnvAssertion {
    /// Reads the assertion from `variable`.
    pub fn new(variable: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
        }
    }
}

impl AssertionSource for EnvAssertion {
    fn assertion(&self, request: &AssertionRequest) -> BoxFuture<'static, Result<String, Error>> {
        let result = match std::env::var(&self.variable) {
            Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
            Ok(_) | Err(std::env::VarError::NotPresent) => Err(Error::new(
                ErrorKind::AssertionUnavailable,
                format!(
                    "environment variable {} is unset or empty; set it to the {}",
                    self.variable,
                    what(request)
                ),
            )),
            // Not the `VarError` as a source: its text quotes the value, the assertion itself.
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::new(
                ErrorKind::AssertionUnavailable,
                format!("environment variable {} is not UTF-8 text", self.variable),
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

/// The assertion in a file the platform writes and rotates (a Kubernetes projected service
/// account token, `/var/run/secrets/tokens/mcp`), re-read every time it is needed, so a
/// rotated token is used without a restart.
///
/// ```
/// use tower_mcp_oauth::{AssertionSource, FileAssertion};
/// use tower_mcp_oauth::grants::AssertionRequest;
/// # tokio_test::block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("token");
/// let source = FileAssertion::new(&path);
/// let request = AssertionRequest::workload("https://as.example.com", None);
/// std::fs::write(&path, "first\n").unwrap();
/// assert_eq!(source.assertion(&request).await.unwrap(), "first");
/// std::fs::write(&path, "rotated").unwrap();
/// assert_eq!(source.assertion(&request).await.unwrap(), "rotated");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct FileAssertion {
    path: PathBuf,
}

impl FileAssertion {
    /// Reads the assertion from the file at `path` (surrounding whitespace is ignored).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl AssertionSource for FileAssertion {
    fn assertion(&self, request: &AssertionRequest) -> BoxFuture<'static, Result<String, Error>> {
        // A token file is a few KiB on a local or in-memory file system: read in place.
        let result = match std::fs::read_to_string(&self.path) {
            Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
            Ok(_) => Err(Error::new(
                ErrorKind::AssertionUnavailable,
                format!(
                    "{} is empty; the platform should write the {} there",
                    self.path.display(),
                    what(request)
                ),
            )),
            Err(e) => Err(Error::new(
                ErrorKind::AssertionUnavailable,
                format!(
                    "cannot read the {} from {}: {e}; check the path and the mount",
                    what(request),
                    self.path.display()
                ),
            )
            .with_source(e)),
        };
        Box::pin(std::future::ready(result))
    }
}

fn what(request: &AssertionRequest) -> &'static str {
    match request.kind {
        AssertionKind::IdToken => "user's ID token",
        _ => "workload identity token",
    }
}

/// The error when a flow asks for an assertion and the layer has no source.
pub(crate) fn no_source() -> Error {
    Error::new(
        ErrorKind::AssertionUnavailable,
        "the client is configured for an assertion grant but the layer has no assertion source; \
         use OAuthLayer::workload_identity or OAuthLayer::enterprise_managed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closure_error_is_assertion_unavailable_unless_it_is_an_error_already() {
        let request = AssertionRequest::workload("https://as", None);
        let failing = |_: &AssertionRequest| -> Result<String, BoxError> { Err("no token".into()) };
        let err = failing.assertion(&request).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AssertionUnavailable);
        let typed = |_: &AssertionRequest| -> Result<String, BoxError> {
            Err(Box::new(Error::new(ErrorKind::AssertionExpired, "old")))
        };
        assert_eq!(
            typed.assertion(&request).await.unwrap_err().kind(),
            ErrorKind::AssertionExpired
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_variable_that_is_not_text_is_refused_without_quoting_it() {
        use std::os::unix::ffi::OsStrExt;
        // A token with one byte that is not UTF-8.
        let value = std::ffi::OsStr::from_bytes(b"eyJ-secret-token-\xff");
        let name = "TOWER_MCP_OAUTH_TEST_NOT_UTF8_ASSERTION";
        std::env::set_var(name, value);
        let err = EnvAssertion::new(name)
            .assertion(&AssertionRequest::workload("https://as", None))
            .await
            .unwrap_err();
        std::env::remove_var(name);
        assert_eq!(err.kind(), ErrorKind::AssertionUnavailable);
        let shown = format!("{err} {err:#} {err:?}");
        assert!(shown.contains(name), "{shown}");
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    #[tokio::test]
    async fn a_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let err = FileAssertion::new(&path)
            .assertion(&AssertionRequest::workload("https://as", None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AssertionUnavailable);
        assert!(err.message().contains("absent"));
        std::fs::write(&path, "  \n").unwrap();
        let err = FileAssertion::new(&path)
            .assertion(&AssertionRequest::workload("https://as", None))
            .await
            .unwrap_err();
        assert!(err.message().contains("empty"));
    }
}
