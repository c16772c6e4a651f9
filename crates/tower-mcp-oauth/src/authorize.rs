//! How the user's consent is obtained: the step between the authorization request and the
//! code.

use http::header::LOCATION;
use mcp_oauth_flow::{AuthorizationRequest, AuthorizationResponse, Error, ErrorKind};
use url::Url;

use crate::client::HttpClient;
use crate::BoxFuture;

/// Gets the user's consent for an authorization request and returns the parameters that came
/// back on the redirect URI.
///
/// The layer checks `state` and `iss` itself; an authorizer only carries the URL out and the
/// parameters back. It receives an [`HttpClient`] for authorizers that talk HTTP (the headless
/// one does; a browser-based one ignores it).
///
/// ```
/// use tower_mcp_oauth::{Authorizer, BoxFuture, HttpClient};
/// use mcp_oauth_flow::{AuthorizationRequest, AuthorizationResponse, Error};
///
/// /// Prints the URL and reads the redirect URL the user pastes back.
/// struct PasteBack;
/// impl Authorizer for PasteBack {
///     fn authorize(&self, request: AuthorizationRequest, _: HttpClient)
///         -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
///         println!("open {}", request.url());
///         Box::pin(async move {
///             let pasted = "http://127.0.0.1:1/cb?code=abc&state=xyz"; // read from stdin in real life
///             Ok(AuthorizationResponse::from_redirect_url(&pasted.parse().unwrap()))
///         })
///     }
/// }
/// ```
pub trait Authorizer: Send + Sync + 'static {
    /// Carries `request` to the user and the response back.
    fn authorize(
        &self,
        request: AuthorizationRequest,
        client: HttpClient,
    ) -> BoxFuture<'static, Result<AuthorizationResponse, Error>>;

    /// Whether a new authorization may be asked for at all. The layer asks before a flow that
    /// can only end in consent (no refresh token to try first), so an authorizer that never
    /// prompts, like a web app's per-user layer, stops that flow before any discovery or
    /// registration traffic. `server` is the MCP server that asked for authorization.
    /// Default: yes.
    fn check_prompt(&self, server: &url::Url) -> Result<(), Error> {
        let _ = server;
        Ok(())
    }
}

#[allow(dead_code)]
fn _object_safe(_: &dyn Authorizer) {}

/// An [`Authorizer`] for servers that approve without a user: it sends the authorization
/// request through the inner service, does not follow the redirect, and reads the response
/// parameters from `Location`.
///
/// For tests, the conformance suite and machine-to-machine setups whose authorization server
/// auto-approves. An interactive server answers with a login page, which this authorizer
/// reports as an [`ErrorKind::InteractionRequired`] error.
///
/// ```
/// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};
/// let layer = OAuthLayer::new(ClientConfig::new("http://localhost:3000/callback"), HeadlessAuthorizer::new());
/// # let _ = layer;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadlessAuthorizer {
    _priv: (),
}

impl HeadlessAuthorizer {
    /// A headless authorizer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Authorizer for HeadlessAuthorizer {
    fn authorize(
        &self,
        request: AuthorizationRequest,
        client: HttpClient,
    ) -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
        Box::pin(async move {
            let get = http::Request::get(request.url().as_str())
                .body(bytes::Bytes::new())
                .map_err(|e| {
                    Error::new(ErrorKind::Consent, format!("bad authorization URL: {e}"))
                })?;
            let response = client.send(get).await?;
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .filter(|_| status.is_redirection())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InteractionRequired,
                        format!(
                            "the authorization endpoint answered {status} instead of redirecting; \
                             it needs a user, so use an interactive authorizer"
                        ),
                    )
                    .with_status(status)
                })?;
            let target = Url::parse(location)
                .or_else(|_| {
                    Url::parse(request.redirect_uri()).and_then(|base| base.join(location))
                })
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Consent,
                        format!("redirect Location is not a URL: {e}"),
                    )
                })?;
            Ok(AuthorizationResponse::from_redirect_url(&target))
        })
    }
}
