//! The typed markers the layer puts on a response it passes on instead of an `Err`: the
//! server's own `403` or `401`, with why the layer could not do better.
//!
//! Why a marker and not an error: the response is the server's answer to the caller's request,
//! with its status, headers and body; throwing it away for an `Err` would hide what the server
//! said (tower-http's middleware hand back the server's response the same way, an unchanged
//! `3xx` when a redirect cannot be followed). See [`OAuthService`](crate::OAuthService) for the
//! whole rule.
//!
//! Both are opaque: only the layer makes them, and what they carry can grow without a breaking
//! change.

use mcp_oauth_flow::Error;

/// Marks a `403` the layer passes on because the step-up it would have run failed or was
/// refused by a limit ([`ErrorKind::StepUpLimit`](crate::ErrorKind::StepUpLimit),
/// [`ErrorKind::AuthorizationLimit`](crate::ErrorKind::AuthorizationLimit)). The `403` itself is
/// the resource's answer and is passed on untouched. A `401` refusing a refreshed token for
/// scopes it lacks (a server that answers so where RFC 6750 §3.1 has `403`) is stepped up the
/// same way, and marked the same way when that fails.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_mcp_oauth::{AuthorizationFailed, ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthBody, OAuthLayer};
/// # tokio_test::block_on(async {
/// // A resource that wants a scope the layer may not ask for: no step-up at all.
/// let resource = service_fn(|_req: http::Request<OAuthBody<Full<Bytes>>>| async {
///     let response = http::Response::builder()
///         .status(403)
///         .header("www-authenticate", r#"Bearer error="insufficient_scope", scope="admin""#)
///         .body(Full::new(Bytes::from("forbidden")))
///         .unwrap();
///     Ok::<_, std::convert::Infallible>(response)
/// });
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
///     .step_up_attempts(0);
/// let service = ServiceBuilder::new().layer(layer).service(resource);
/// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 403);
/// let failed = response.extensions().get::<AuthorizationFailed>().unwrap();
/// assert_eq!(failed.error().kind(), ErrorKind::StepUpLimit);
/// let error = failed.clone().into_error();
/// assert!(!error.is_transient());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizationFailed {
    error: Error,
}

impl AuthorizationFailed {
    pub(crate) fn new(error: Error) -> Self {
        Self { error }
    }

    /// Why the step-up did not happen.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The error, owned.
    pub fn into_error(self) -> Error {
        self.error
    }
}

/// Marks a `401` the layer passes on instead of retrying because the request body could not be
/// replayed (it was larger than
/// [`OAuthLayer::max_replay_bytes`](crate::OAuthLayer::max_replay_bytes), or streamed). The flow
/// did run: a token is now in place, so sending the request again will carry it.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_mcp_oauth::{
///     BodyNotReplayable, ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer,
///     TokenSet, TokenStore, TokenType,
/// };
/// # tokio_test::block_on(async {
/// let store = Arc::new(MemoryStore::new());
/// // A server that answers 401 to a request without a token; meanwhile another process of the
/// // fleet stored a token, which the layer's flow adopts.
/// let shared = Arc::clone(&store);
/// let server = service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
///     let store = Arc::clone(&shared);
///     async move {
///         if req.headers().contains_key("authorization") {
///             return Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("ok"))));
///         }
///         let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client");
///         store.save_tokens("http://127.0.0.1:1/mcp", &tokens).await.unwrap();
///         Ok(http::Response::builder().status(401).body(Full::new(Bytes::new())).unwrap())
///     }
/// });
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
///     .token_store(store)
///     .max_replay_bytes(4);
/// let service = layer.layer(server);
/// let request = || http::Request::post("http://127.0.0.1:1/mcp").body(Full::new(Bytes::from("{\"jsonrpc\":\"2.0\"}"))).unwrap();
///
/// // The body is over the replay limit: the 401 comes back marked, with a token in place...
/// let first = service.clone().oneshot(request()).await.unwrap();
/// assert_eq!(first.status(), 401);
/// assert!(first.extensions().get::<BodyNotReplayable>().is_some());
/// // ...so the caller sends the request again, and this time it carries the token.
/// let again = service.oneshot(request()).await.unwrap();
/// assert_eq!(again.status(), 200);
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyNotReplayable {
    _priv: (),
}

impl BodyNotReplayable {
    pub(crate) fn new() -> Self {
        Self { _priv: () }
    }
}
