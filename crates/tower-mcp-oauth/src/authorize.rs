//! How the user's consent is obtained: the step between the authorization request and the
//! code.

use http::header::LOCATION;
use mcp_oauth_flow::{
    authorization::{AuthorizationRequest, AuthorizationResponse},
    Error, ErrorKind,
};
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
/// # use bytes::Bytes;
/// # use http_body_util::Full;
/// # use mcp_oauth_testkit::scripted;
/// # use tower::util::BoxCloneService;
/// # use tower_mcp_oauth::OAuthBody;
/// # type Server = BoxCloneService<http::Request<OAuthBody<Full<Bytes>>>, http::Response<Full<Bytes>>, std::convert::Infallible>;
/// # /// An MCP server at 127.0.0.1:1 whose authorization server (127.0.0.1:2) approves at once
/// # /// and answers the token request with `token`; `/mcp` wants `Bearer at-1`.
/// # fn approving_server(token: serde_json::Value) -> Server {
/// #     BoxCloneService::new(tower::service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
/// #         let token = token.clone();
/// #         async move {
/// #             if let Some(response) = scripted::flow_response(&req) { return Ok(response); }
/// #             Ok(match req.uri().path() {
/// #                 "/token" => scripted::json(if token.get("error").is_some() { 400 } else { 200 }, token),
/// #                 _ if req.headers().get("authorization").is_some_and(|v| v == "Bearer at-1") => http::Response::new(Full::new(Bytes::from("ok"))),
/// #                 _ => scripted::unauthorized(),
/// #             })
/// #         }
/// #     }))
/// # }
/// # fn token() -> serde_json::Value { serde_json::json!({"access_token": "at-1", "token_type": "Bearer"}) }
/// use std::sync::{Arc, Mutex};
/// use tower::{Layer, ServiceExt};
/// use tower_mcp_oauth::{Authorizer, BoxFuture, ClientConfig, HttpClient, OAuthLayer};
/// use tower_mcp_oauth::{AuthorizationRequest, AuthorizationResponse, Error};
///
/// /// Shows the URL and reads back the redirect URL the user pastes.
/// struct PasteBack {
///     shown: Arc<Mutex<Vec<String>>>,
/// }
///
/// impl Authorizer for PasteBack {
///     fn authorize(&self, request: AuthorizationRequest, _: HttpClient)
///         -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
///         self.shown.lock().unwrap().push(request.url().to_string()); // println! in real life
///         // What the user pastes after approving (read from stdin in real life).
///         let pasted = format!("{}?code=abc&state={}", request.redirect_uri(), request.state().secret());
///         Box::pin(async move { Ok(AuthorizationResponse::from_redirect_url(&pasted.parse().unwrap())) })
///     }
/// }
///
/// # tokio_test::block_on(async {
/// let shown = Arc::new(Mutex::new(Vec::new()));
/// let authorizer = PasteBack { shown: Arc::clone(&shown) };
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), authorizer);
/// let service = layer.layer(approving_server(token()));
/// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
/// assert_eq!(service.oneshot(request).await.unwrap().status(), 200);
/// let shown = shown.lock().unwrap();
/// assert_eq!(shown.len(), 1);
/// assert!(shown[0].starts_with("http://127.0.0.1:2/authorize?"), "{}", shown[0]);
/// # });
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
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http_body_util::Full;
    /// # use mcp_oauth_testkit::scripted;
    /// # use tower::util::BoxCloneService;
    /// # use tower_mcp_oauth::OAuthBody;
    /// # type Server = BoxCloneService<http::Request<OAuthBody<Full<Bytes>>>, http::Response<Full<Bytes>>, std::convert::Infallible>;
    /// # /// An MCP server at 127.0.0.1:1 whose authorization server (127.0.0.1:2) approves at once
    /// # /// and answers the token request with `token`; `/mcp` wants `Bearer at-1`.
    /// # fn approving_server(token: serde_json::Value) -> Server {
    /// #     BoxCloneService::new(tower::service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
    /// #         let token = token.clone();
    /// #         async move {
    /// #             if let Some(response) = scripted::flow_response(&req) { return Ok(response); }
    /// #             Ok(match req.uri().path() {
    /// #                 "/token" => scripted::json(if token.get("error").is_some() { 400 } else { 200 }, token),
    /// #                 _ if req.headers().get("authorization").is_some_and(|v| v == "Bearer at-1") => http::Response::new(Full::new(Bytes::from("ok"))),
    /// #                 _ => scripted::unauthorized(),
    /// #             })
    /// #         }
    /// #     }))
    /// # }
    /// # fn token() -> serde_json::Value { serde_json::json!({"access_token": "at-1", "token_type": "Bearer"}) }
    /// use tower::{Layer, ServiceExt};
    /// use tower_mcp_oauth::{Authorizer, BoxFuture, ClientConfig, ErrorKind, HttpClient, OAuthLayer};
    /// use tower_mcp_oauth::{AuthorizationRequest, AuthorizationResponse, Error};
    ///
    /// /// Never asks anyone: a background job that may only use tokens it already has.
    /// struct NoPrompt;
    /// impl Authorizer for NoPrompt {
    ///     fn authorize(&self, _: AuthorizationRequest, _: HttpClient)
    ///         -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
    ///         unreachable!("check_prompt refuses first")
    ///     }
    ///     fn check_prompt(&self, server: &url::Url) -> Result<(), Error> {
    ///         Err(Error::new(ErrorKind::InteractionRequired, format!("log in to {server} first")))
    ///     }
    /// }
    ///
    /// # tokio_test::block_on(async {
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), NoPrompt);
    /// let service = layer.layer(approving_server(token()));
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
    /// let error = service.oneshot(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::InteractionRequired);
    /// # });
    /// ```
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
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthBody, OAuthLayer};
/// # use mcp_oauth_testkit::scripted;
/// # tokio_test::block_on(async {
/// let layer = OAuthLayer::new(ClientConfig::new("http://localhost:3000/callback"), HeadlessAuthorizer::new());
/// // An authorization server that shows a login page instead of redirecting.
/// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
///     if req.uri().path() == "/authorize" {
///         return Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("<form>log in</form>"))));
///     }
///     // ... the resource's 401 and the discovery and registration answers ...
/// #   Ok(scripted::flow_response(&req).unwrap_or_else(scripted::unauthorized))
/// });
/// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
/// let error = layer.layer(server).oneshot(request).await.unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::InteractionRequired);
/// # });
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
            let redirect_uri = Url::parse(request.redirect_uri()).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidRedirectUri,
                    format!("redirect URI is not a URL: {e}"),
                )
            })?;
            let mut url = request.url().clone();
            for _ in 0..=MAX_AUTHORIZATION_HOPS {
                let target = match authorization_hop(&client, &url, &redirect_uri).await? {
                    Hop::Back(target) => {
                        return Ok(AuthorizationResponse::from_redirect_url(&target))
                    }
                    Hop::Follow(next) => next,
                };
                url = target;
            }
            Err(Error::new(
                ErrorKind::RedirectLimit,
                format!(
                    "the authorization endpoint redirected more than {MAX_AUTHORIZATION_HOPS} \
                     times without coming back to the redirect URI"
                ),
            ))
        })
    }
}

/// Redirects followed within the authorization server's origin (a consent step, say) before
/// giving up, as a browser does with a redirect loop.
const MAX_AUTHORIZATION_HOPS: usize = 10;

/// Where one step of a headless authorization leads.
enum Hop {
    /// Back to the redirect URI: the authorization response.
    Back(Url),
    /// Another page of the authorization server.
    Follow(Url),
}

/// The authorization endpoint `url` is a request to, without its query (the request's
/// `state`, PKCE challenge and client), for error messages.
fn endpoint(url: &Url) -> &str {
    &url[..url::Position::AfterPath]
}

/// Fetches `url` without following its redirect, and says where it leads.
///
/// - a redirect back to the redirect URI is the authorization response;
/// - a redirect within `url`'s origin is followed (bounded by the caller);
/// - a redirect elsewhere (a login or identity provider) or a page (`2xx`) needs a user:
///   [`ErrorKind::InteractionRequired`];
/// - a `5xx` or `429` is the server's trouble, which may pass: [`ErrorKind::UnexpectedStatus`];
/// - any other `4xx` is the server refusing the request without redirecting, as RFC 6749
///   §4.1.2.1 has it do for a bad `client_id` or `redirect_uri`: [`ErrorKind::AuthorizationDenied`].
async fn authorization_hop(
    client: &HttpClient,
    url: &Url,
    redirect_uri: &Url,
) -> Result<Hop, Error> {
    let get = http::Request::get(url.as_str())
        .body(bytes::Bytes::new())
        .map_err(|e| Error::new(ErrorKind::Consent, format!("bad authorization URL: {e}")))?;
    let response = client.send(get).await?;
    let status = response.status();
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::new(
            ErrorKind::UnexpectedStatus,
            format!(
                "the authorization endpoint {} answered {status}",
                endpoint(url)
            ),
        )
        .with_status(status));
    }
    if status.is_client_error() {
        return Err(Error::new(
            ErrorKind::AuthorizationDenied,
            format!(
                "the authorization endpoint {} refused the request with {status}",
                endpoint(url)
            ),
        )
        .with_status(status));
    }
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
    // RFC 9110 §10.2.2: a relative Location is relative to the URL requested.
    let next = url.join(location).map_err(|e| {
        Error::new(
            ErrorKind::Consent,
            format!("redirect Location is not a URL: {e}"),
        )
    })?;
    if is_redirect_back(&next, redirect_uri) {
        return Ok(Hop::Back(next));
    }
    if next.origin() == url.origin() {
        return Ok(Hop::Follow(next));
    }
    Err(Error::new(
        ErrorKind::InteractionRequired,
        format!(
            "the authorization endpoint sent the browser to {}, not back to the redirect URI; \
             it needs a user, so use an interactive authorizer",
            next.origin().ascii_serialization()
        ),
    ))
}

/// Whether `target` is the redirect URI (same scheme, host, port and path; its query carries
/// the response).
fn is_redirect_back(target: &Url, redirect_uri: &Url) -> bool {
    target.scheme() == redirect_uri.scheme()
        && target.host() == redirect_uri.host()
        && target.port_or_known_default() == redirect_uri.port_or_known_default()
        && target.path() == redirect_uri.path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_redirect_uri_itself_is_the_way_back() {
        let ours = Url::parse("http://localhost:3000/callback").unwrap();
        let at = |s: &str| Url::parse(s).unwrap();
        assert!(is_redirect_back(
            &at("http://localhost:3000/callback?code=c&state=s"),
            &ours
        ));
        assert!(is_redirect_back(
            &at("http://localhost:80/x"),
            &at("http://localhost/x")
        ));
        assert!(!is_redirect_back(
            &at("http://localhost:3001/callback?code=c"),
            &ours
        ));
        assert!(!is_redirect_back(
            &at("https://localhost:3000/callback?code=c"),
            &ours
        ));
        assert!(!is_redirect_back(
            &at("http://localhost:3000/callback/x?code=c"),
            &ours
        ));
        assert!(!is_redirect_back(
            &at("http://127.0.0.1:3000/callback?code=c"),
            &ours
        ));
    }
}
