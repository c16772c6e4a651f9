//! [`OAuthService`]: attaches tokens, and hands `401`/`403` responses to the recovery path.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::Uri;
use http_body::Body;
use mcp_oauth_flow::{BoxError, Error};
use tower_service::Service;

use crate::body::OAuthBody;
use crate::cache::Lookup;
use crate::client::transport_error;
use crate::future::ResponseFuture;
use crate::reader::Reader;
use crate::route::{route, Route};
use crate::shared::Shared;
use crate::state::LayerState;

/// The service [`OAuthLayer`](crate::OAuthLayer) produces. See the layer for what it does.
///
/// `poll_ready` only delegates to the inner service: it never waits on a flow, so it never
/// holds a `Buffer` slot or a `ConcurrencyLimit` permit while a user is at the browser.
///
/// Clone it per request (`service.clone().oneshot(request)`), or share one and send through
/// `&service` when `&S` is a service, as hyper-util's `&Client` is: no clone of the service per
/// request (see the `Service` impl for `&OAuthService`).
///
/// # Failures: one rule
///
/// **The server's response is never thrown away.** Whenever the server answered the caller's
/// request, the caller gets that response, `Ok`; the layer adds a typed marker to its
/// extensions when it could not do better, as tower-http's middleware hand back the server's
/// own answer (an unchanged `3xx` when a redirect cannot be followed):
///
/// - `Ok(403)` marked [`AuthorizationFailed`](crate::AuthorizationFailed): the resource asked
///   for more scopes (`insufficient_scope`) and the step-up failed or was refused by a limit.
///   The `403` is the resource's answer, and [`error()`](crate::AuthorizationFailed::error)
///   says why the layer did not get past it. So is `Ok(401)` marked the same way: a refreshed
///   token refused for scopes it lacks, whose step-up failed or was refused.
/// - `Ok(401)` marked [`BodyNotReplayable`](crate::BodyNotReplayable): the flow ran and a token
///   is in place, but the request body was too large (or streamed) to send again; the caller
///   sends the request again itself.
/// - Any other response, `401` and `403` included, is passed on as the server sent it.
///
/// **`Err(Error)` means the request got no usable answer**: the inner service failed to send
/// it ([`ErrorKind::Transport`](crate::ErrorKind::Transport)), or the `401` asked for a token
/// and the flow could not get one (discovery, registration, consent, the token endpoint, the
/// store). The `401` carries nothing the caller can use without a token, so the flow's error is
/// the more useful answer. [`Error::kind`](crate::Error::kind) says the cause,
/// [`is_transient`](crate::Error::is_transient) whether the same call may succeed later, and
/// `{:#}` prints the whole cause chain on one line.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthBody, OAuthLayer};
/// # tokio_test::block_on(async {
/// // The MCP endpoint asks for a token, and its metadata is down: no flow can succeed now.
/// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
///     let status = if req.uri().path() == "/mcp" { 401 } else { 503 };
///     let response = http::Response::builder().status(status).body(Full::new(Bytes::new())).unwrap();
///     Ok::<_, std::convert::Infallible>(response)
/// });
/// let service = ServiceBuilder::new()
///     .layer(OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new()))
///     .service(server);
/// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
/// let error = service.oneshot(request).await.unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::UnexpectedStatus);
/// assert!(error.is_transient()); // a 503 may pass: the same call may succeed later
/// assert!(format!("{error:#}").starts_with("unexpected HTTP status: "), "{error:#}");
/// // Every URL the flow tried, with its status.
/// let report = error.report().unwrap();
/// assert!(report.steps().iter().any(|step| step.status == Some(503)), "{report}");
/// # });
/// ```
///
/// When a server refused with an OAuth error, [`oauth_error`](crate::Error::oauth_error) holds
/// its `error` and `error_description`:
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
/// use serde_json::json;
/// use tower::{Layer, ServiceExt};
/// use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthLayer};
/// # tokio_test::block_on(async {
/// // The token endpoint refuses the code.
/// let server = approving_server(json!({"error": "invalid_grant", "error_description": "code expired"}));
/// let layer = OAuthLayer::new(ClientConfig::new("http://localhost:3000/callback"), HeadlessAuthorizer::new());
/// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
/// let error = layer.layer(server).oneshot(request).await.unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::TokenRejected);
/// assert!(!error.is_transient());
/// let oauth = error.oauth_error().unwrap();
/// assert_eq!(oauth.error, "invalid_grant");
/// assert_eq!(oauth.error_description.as_deref(), Some("code expired"));
/// # });
/// ```
pub struct OAuthService<S> {
    inner: S,
    /// The layer's state and the spare service retries go through, shared with every future.
    shared: Arc<Shared<S>>,
    /// This service's reads of the tokens held (a clone reads on its own).
    sessions: Reader,
}

impl<S: Clone> Clone for OAuthService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            sessions: self.sessions.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for OAuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> OAuthService<S> {
    pub(crate) fn new(inner: S, state: Arc<LayerState>) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared::new(state)),
            sessions: Reader::default(),
        }
    }

    /// A clone of the inner service for a slow path, with the reservation `poll_ready` made
    /// given back: the reserved service is swapped out and dropped, so no `Buffer` slot or
    /// `ConcurrencyLimit` permit is held while a flow runs (tower-service docs, "Be careful
    /// when cloning inner services").
    fn unreserved(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        drop(std::mem::replace(&mut self.inner, clone));
        self.inner.clone()
    }

    /// The inner service.
    ///
    /// ```
    /// use tower::Layer;
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new());
    /// // Any value can stand for the inner service here; a client in real life.
    /// let mut service = layer.layer(String::from("client"));
    /// assert_eq!(service.get_ref(), "client");
    /// service.get_mut().push_str(" v2");
    /// assert_eq!(service.into_inner(), "client v2");
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably (see [`get_ref`](Self::get_ref) for an example). The layer's
    /// flows and retries go through the service as changed from then on.
    pub fn get_mut(&mut self) -> &mut S {
        // The spare inner service retries and flows go through is a clone taken at the first
        // request: this service starts a share of its own, whose spare is taken from the
        // service as changed. Its clones keep theirs (they do not see the change either), and
        // requests in flight keep the one they were sent with.
        self.shared = Arc::new(Shared::new(Arc::clone(&self.shared.state)));
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service (see [`get_ref`](Self::get_ref) for an
    /// example).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// How many authorization or refresh flows this service's layer has started so far: one
    /// per origin however many callers needed it.
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
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};
    /// # tokio_test::block_on(async {
    /// let layer = OAuthLayer::new(ClientConfig::new("http://localhost:3000/callback"), HeadlessAuthorizer::new());
    /// let service = layer.layer(approving_server(token()));
    /// assert_eq!(service.flows_started(), 0);
    /// let request = || http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
    /// // The first request runs a flow; the second finds the token.
    /// assert_eq!(service.clone().oneshot(request()).await.unwrap().status(), 200);
    /// assert_eq!(service.clone().oneshot(request()).await.unwrap().status(), 200);
    /// assert_eq!(service.flows_started(), 1);
    /// # });
    /// ```
    pub fn flows_started(&self) -> u64 {
        self.shared.state.flights.started()
    }
}

impl<S, B, RB> Service<http::Request<B>> for OAuthService<S>
where
    S: Service<http::Request<OAuthBody<B>>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    type Response = http::Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(transport_error)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        route(self, request)
    }
}

/// A shared `OAuthService` is a service too, as hyper-util's `&Client` is: callers that hold
/// one (in an `Arc`, a `static`, a struct they lend out) send through `&service` without a
/// clone per request. It needs `&S` to be a service (hyper-util's `Client` is); retries and
/// flows go through clones of `S`.
///
/// Every call reads the tokens through the layer's shared snapshot (a clone of the service
/// keeps a snapshot of its own from its second request on), and `poll_ready` is `&S`'s.
///
/// ```
/// # use std::convert::Infallible;
/// # use std::future::{ready, Ready};
/// # use std::task::{Context, Poll};
/// # use bytes::Bytes;
/// # use http_body_util::Full;
/// # use tower_mcp_oauth::OAuthBody;
/// # type Request = http::Request<OAuthBody<Full<Bytes>>>;
/// # type Response = http::Response<Full<Bytes>>;
/// # /// A client that is a service both owned and shared, as hyper-util's `Client` is; it
/// # /// answers with the `Authorization` it was sent and which form sent it.
/// # #[derive(Clone)]
/// # struct Client;
/// # fn answer(req: Request, via: &'static str) -> Ready<Result<Response, Infallible>> {
/// #     let seen = req.headers().get("authorization").cloned();
/// #     let mut response = http::Response::new(Full::new(Bytes::new()));
/// #     response.headers_mut().insert("x-via", http::HeaderValue::from_static(via));
/// #     if let Some(seen) = seen { response.headers_mut().insert("x-seen", seen); }
/// #     ready(Ok(response))
/// # }
/// # impl tower::Service<Request> for Client {
/// #     type Response = Response; type Error = Infallible; type Future = Ready<Result<Response, Infallible>>;
/// #     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> { Poll::Ready(Ok(())) }
/// #     fn call(&mut self, req: Request) -> Self::Future { answer(req, "clone") }
/// # }
/// # impl tower::Service<Request> for &Client {
/// #     type Response = Response; type Error = Infallible; type Future = Ready<Result<Response, Infallible>>;
/// #     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> { Poll::Ready(Ok(())) }
/// #     fn call(&mut self, req: Request) -> Self::Future { answer(req, "reference") }
/// # }
/// use std::sync::Arc;
/// use tower::{Layer, Service, ServiceExt};
/// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer, TokenSet, TokenStore, TokenType};
///
/// # tokio_test::block_on(async {
/// let url = "http://127.0.0.1:3000/mcp";
/// let store = MemoryStore::new();
/// let tokens = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:9000", "client-1");
/// store.save_tokens(url, &tokens).await.unwrap();
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
///     .token_store(store);
/// // One service for every caller: no clone of it per request.
/// let service = Arc::new(layer.layer(Client));
/// let request = || http::Request::post(url).body(Full::new(Bytes::new())).unwrap();
///
/// // The first request to the server adopts the stored token (through a clone of the client,
/// // as every slow path goes)...
/// let mut shared = &*service;
/// let first = shared.ready().await.unwrap().call(request()).await.unwrap();
/// assert_eq!(first.headers()["x-seen"], "Bearer at-1");
/// // ...and the next ones send through `&Client`, the token added.
/// let next = shared.ready().await.unwrap().call(request()).await.unwrap();
/// assert_eq!(next.headers()["x-via"], "reference");
/// assert_eq!(next.headers()["x-seen"], "Bearer at-1");
/// // `oneshot` works on the reference too.
/// let again = (&*service).oneshot(request()).await.unwrap();
/// assert_eq!(again.headers()["x-via"], "reference");
/// # });
/// ```
impl<'a, S, B, RB> Service<http::Request<B>> for &'a OAuthService<S>
where
    S: Service<http::Request<OAuthBody<B>>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    &'a S: Service<http::Request<OAuthBody<B>>, Response = http::Response<RB>>,
    <&'a S as Service<http::Request<OAuthBody<B>>>>::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    type Response = http::Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, B, <&'a S as Service<http::Request<OAuthBody<B>>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let mut inner = &self.inner;
        inner.poll_ready(cx).map_err(transport_error)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        route(self, request)
    }
}

impl<'a, S, B> Route<S, B> for &'a OAuthService<S>
where
    S: Clone,
    &'a S: Service<http::Request<OAuthBody<B>>>,
{
    type Sender = &'a S;

    #[inline(always)]
    fn shared(&self) -> &Arc<Shared<S>> {
        &self.shared
    }

    #[inline(always)]
    fn inner(&self) -> &S {
        &self.inner
    }

    #[inline(always)]
    fn lookup(&mut self, uri: &Uri, now: impl FnOnce() -> SystemTime) -> Lookup {
        self.shared.cache.lookup(uri, now)
    }

    #[inline(always)]
    fn send(
        &mut self,
        request: http::Request<OAuthBody<B>>,
    ) -> <&'a S as Service<http::Request<OAuthBody<B>>>>::Future {
        let mut inner: &'a S = &self.inner;
        inner.call(request)
    }

    fn detached(&mut self) -> S {
        // A reference holds no reservation to give back.
        self.inner.clone()
    }
}

impl<S, B> Route<S, B> for OAuthService<S>
where
    S: Service<http::Request<OAuthBody<B>>> + Clone,
{
    type Sender = S;

    #[inline(always)]
    fn shared(&self) -> &Arc<Shared<S>> {
        &self.shared
    }

    #[inline(always)]
    fn inner(&self) -> &S {
        &self.inner
    }

    #[inline(always)]
    fn lookup(&mut self, uri: &Uri, now: impl FnOnce() -> SystemTime) -> Lookup {
        self.sessions.lookup(&self.shared.cache, uri, now)
    }

    #[inline(always)]
    fn send(&mut self, request: http::Request<OAuthBody<B>>) -> S::Future {
        self.inner.call(request)
    }

    fn detached(&mut self) -> S {
        self.unreserved()
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body_util::Full;
    use mcp_oauth_flow::{ClientConfig, ErrorKind};
    use tower::{service_fn, ServiceExt};
    use tower_layer::Layer;

    use crate::{HeadlessAuthorizer, OAuthBody, OAuthLayer};

    /// An inner service, owned or shared, that is never ready: it failed.
    #[derive(Clone)]
    struct Broken;

    type Request = http::Request<OAuthBody<Full<Bytes>>>;
    type Answer = std::future::Ready<Result<http::Response<Full<Bytes>>, std::io::Error>>;

    fn broken() -> std::io::Error {
        std::io::Error::other("connection pool closed")
    }

    impl tower_service::Service<Request> for Broken {
        type Response = http::Response<Full<Bytes>>;
        type Error = std::io::Error;
        type Future = Answer;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            Poll::Ready(Err(broken()))
        }
        fn call(&mut self, _: Request) -> Answer {
            unreachable!("never ready")
        }
    }

    impl tower_service::Service<Request> for &Broken {
        type Response = http::Response<Full<Bytes>>;
        type Error = std::io::Error;
        type Future = Answer;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            Poll::Ready(Err(broken()))
        }
        fn call(&mut self, _: Request) -> Answer {
            unreachable!("never ready")
        }
    }

    #[tokio::test]
    async fn readiness_is_the_inner_services_owned_or_shared() {
        let layer = OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            HeadlessAuthorizer::new(),
        );
        let mut service = layer.layer(Broken);
        let mut shared = &service.clone();
        let error = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut shared)
            .await
            .err()
            .expect("`&S` was not ready");
        assert_eq!(error.kind(), ErrorKind::Transport, "{error:#}");
        assert!(
            format!("{error:#}").contains("connection pool closed"),
            "{error:#}"
        );
        let error = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut service)
            .await
            .err()
            .expect("`S` was not ready");
        assert_eq!(error.kind(), ErrorKind::Transport, "{error:#}");
    }

    #[tokio::test]
    async fn a_401_to_a_relative_uri_is_an_invalid_request_uri() {
        let server = service_fn(|_req: http::Request<OAuthBody<Full<Bytes>>>| async {
            let response = http::Response::builder()
                .status(401)
                .body(Full::new(Bytes::new()))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        });
        let layer = OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            HeadlessAuthorizer::new(),
        );
        let request = http::Request::get("/mcp")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let error = layer.layer(server).oneshot(request).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequestUri, "{error:#}");
    }
}
