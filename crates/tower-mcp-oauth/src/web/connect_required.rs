//! What a per-user layer does when the user has no usable token: it refuses, and says so in a
//! way the web app can recognise.

use std::fmt;

use mcp_oauth_flow::{
    authorization::{AuthorizationRequest, AuthorizationResponse},
    Error, ErrorKind,
};

use crate::authorize::Authorizer;
use crate::client::HttpClient;
use crate::BoxFuture;

/// The source of the [`ErrorKind::InteractionRequired`] error a [`WebLogin::layer_for`] layer fails with
/// when its user has no usable token: the user must connect (go through
/// [`WebLogin::start`] and [`WebLogin::complete`]) first.
///
/// A web app cannot open a browser for a user from inside an MCP call, so the layer never
/// starts a login on its own; the app catches this and sends the user to its connect page.
///
/// [`WebLogin::layer_for`]: super::WebLogin::layer_for
/// [`WebLogin::start`]: super::WebLogin::start
/// [`WebLogin::complete`]: super::WebLogin::complete
///
/// ```
/// use tower_mcp_oauth::web::ConnectRequired;
/// use tower_mcp_oauth::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::InteractionRequired, "not connected")
///     .with_source(ConnectRequired::new("https://as.example.com"));
/// assert_eq!(ConnectRequired::find(&err).unwrap().issuer(), "https://as.example.com");
/// // Any other error is not a request to connect.
/// assert!(ConnectRequired::find(&Error::new(ErrorKind::Consent, "browser closed")).is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequired {
    issuer: String,
}

impl ConnectRequired {
    /// A request to connect to the authorization server `issuer`.
    ///
    /// ```
    /// use tower_mcp_oauth::web::ConnectRequired;
    /// assert_eq!(ConnectRequired::new("https://as.example.com").issuer(), "https://as.example.com");
    /// ```
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
        }
    }

    /// Whom the user must connect to: the authorization server's issuer when the layer got as
    /// far as discovering it (a refused refresh), else the MCP server's URL (the layer refuses
    /// before any discovery when it holds nothing to refresh).
    ///
    /// ```
    /// use tower_mcp_oauth::web::ConnectRequired;
    /// let c = ConnectRequired::new("https://as.example.com");
    /// assert!(c.to_string().contains(c.issuer()));
    /// ```
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Finds a `ConnectRequired` in `error` or its chain of sources: pass the layer's
    /// [`Error`], or a `BoxError` from a stack with more layers.
    ///
    /// ```
    /// use tower_mcp_oauth::web::ConnectRequired;
    /// use tower_mcp_oauth::{Error, ErrorKind};
    /// let boxed: Box<dyn std::error::Error + Send + Sync> = Error::new(ErrorKind::InteractionRequired, "not connected")
    ///     .with_source(ConnectRequired::new("https://as.example.com"))
    ///     .into();
    /// assert!(ConnectRequired::find(boxed.as_ref()).is_some());
    /// ```
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ConnectRequired> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<ConnectRequired>() {
                return Some(found);
            }
            current = e.source();
        }
        None
    }
}

impl fmt::Display for ConnectRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the user must connect to {} before their MCP requests can be authorized",
            self.issuer
        )
    }
}

impl std::error::Error for ConnectRequired {}

/// The [`Authorizer`] of a per-user layer: it never asks for consent, it reports that the user
/// must connect.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MustConnect;

fn must_connect(required: ConnectRequired) -> Error {
    Error::new(
        ErrorKind::InteractionRequired,
        format!("the user must connect to {} first (web login: start, then complete); no login is started from an MCP request", required.issuer()),
    )
    .with_source(required)
}

impl Authorizer for MustConnect {
    fn check_prompt(&self, server: &url::Url) -> Result<(), Error> {
        // Refused before any discovery: an unconnected user's calls cost no traffic.
        Err(must_connect(ConnectRequired::new(server.as_str())))
    }

    fn authorize(
        &self,
        request: AuthorizationRequest,
        _client: HttpClient,
    ) -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
        // The request is dropped unused: its `state` and PKCE challenge never leave the process.
        Box::pin(std::future::ready(Err(must_connect(ConnectRequired::new(
            request.issuer(),
        )))))
    }
}
