//! [`OAuthLayer`]: the configuration, and the token cache every service made from it shares.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::grants::{AssertionGrant, EnterpriseIdp};
use mcp_oauth_flow::{token::RefreshPolicy, ClientConfig};
use tower_layer::Layer;

use crate::assertion::AssertionSource;
use crate::authorize::Authorizer;
use crate::clock::Clock;
use crate::dpop::{Dpop, DpopState};
use crate::service::OAuthService;
use crate::state::LayerState;
use crate::store::TokenStore;

pub use crate::state::{DEFAULT_MAX_REPLAY_BYTES, DEFAULT_MAX_RESPONSE_BYTES};

/// A tower layer that gives an HTTP client the client side of MCP authorization.
///
/// Requests to a protected resource it holds a token for get an `Authorization` header (marked
/// sensitive), and to no other origin. A `401`, or a `403` with `insufficient_scope`, runs the
/// authorization flow through the inner service and retries the request once.
///
/// # Sharing
///
/// The token cache is created in [`OAuthLayer::new`] and shared by every service this layer
/// (and its clones) makes, like `GlobalConcurrencyLimitLayer`'s semaphore: cloning the layer does
/// not create a new cache.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
/// # tokio_test::block_on(async {
/// // A server that asks for a token and whose metadata is down: every flow fails fast.
/// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
///     let status = if req.uri().path() == "/mcp" { 401 } else { 503 };
///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(Full::new(Bytes::new())).unwrap())
/// });
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new());
/// let a = layer.clone().layer(server.clone());
/// let b = layer.max_replay_bytes(1 << 20).layer(server); // configured after the clone
/// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
/// assert!(a.oneshot(request).await.is_err());
/// // The flow `a` ran is counted by `b`: one cache and one set of flows for the whole layer.
/// assert_eq!(b.flows_started(), 1);
/// # });
/// ```
///
/// # Layer order
///
/// The layer bounds its own work ([`request_timeout`](Self::request_timeout),
/// [`flow_deadline`](Self::flow_deadline), [`consent_timeout`](Self::consent_timeout)); a
/// `Timeout`, if any, goes outside it (one inside would cut each round trip separately). Put
/// `FollowRedirect` outside it too, so every hop comes back through the layer, which attaches
/// the token only to the origin it is bound to (the README's "Layer order", proven by
/// `tests/layer_order.rs`), and `ConcurrencyLimit` inside it.
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};
/// # fn client() -> tower::util::BoxCloneService<http::Request<tower_mcp_oauth::OAuthBody<http_body_util::Full<bytes::Bytes>>>, http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> { unimplemented!() }
/// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new())
///     .max_replay_bytes(1 << 20);
/// # if false {
/// let service = ServiceBuilder::new().layer(layer).service(client());
/// # let _ = service;
/// # }
/// ```
#[derive(Clone)]
pub struct OAuthLayer {
    /// Shared with every clone and every service; the builder methods below change it in place
    /// while it is not shared yet, and copy the settings (never the cache) once it is.
    pub(crate) state: Arc<LayerState>,
}

impl std::fmt::Debug for OAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthLayer")
            .field("config", &self.state.config)
            .field("max_replay_bytes", &self.state.max_replay_bytes)
            .field("max_response_bytes", &self.state.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl OAuthLayer {
    /// A layer for a client configured by `config` that obtains consent through `authorizer`,
    /// with an in-memory [`MemoryStore`](crate::MemoryStore).
    pub fn new(config: ClientConfig, authorizer: impl Authorizer) -> Self {
        Self {
            state: Arc::new(LayerState::new(config, Arc::new(authorizer))),
        }
    }

    /// Authorizes with workload identity federation (SEP-1933): a jwt-bearer grant (RFC 7523
    /// §2.1) presenting the token `source` gives, asked afresh on every grant (a file the
    /// platform rotates is re-read). No user, no consent. An authorization server that does not
    /// offer the grant is an [`ErrorKind::GrantNotSupported`](crate::ErrorKind::GrantNotSupported),
    /// an expired token an `AssertionExpired`, a refused one an `AssertionRejected`: never a
    /// retry loop or another grant. A pre-registered client for the issuer, if any,
    /// authenticates the request. Default: off.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http_body_util::Full;
    /// # use mcp_oauth_testkit::scripted;
    /// use tower::{Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, FileAssertion, HeadlessAuthorizer, OAuthLayer};
    /// # tokio_test::block_on(async {
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .workload_identity(FileAssertion::new("/var/run/secrets/tokens/mcp"));
    /// // This server's authorization server offers only the authorization code.
    /// let server = tower::service_fn(|req: http::Request<_>| async move {
    ///     Ok::<_, std::convert::Infallible>(scripted::flow_response(&req).unwrap_or_else(scripted::unauthorized))
    /// });
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
    /// let error = layer.layer(server).oneshot(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::GrantNotSupported);
    /// # });
    /// ```
    pub fn workload_identity(mut self, source: impl AssertionSource) -> Self {
        let state = self.state_mut();
        Arc::make_mut(&mut state.config).assertion_grant = Some(AssertionGrant::WorkloadIdentity);
        state.assertions = Some(Arc::new(source));
        self
    }

    /// Authorizes with enterprise-managed authorization (SEP-990): the user's ID token from
    /// `id_token` (asked afresh on every grant, so the application can renew it) is exchanged
    /// at the enterprise `idp` (RFC 8693) for an ID-JAG addressed to the authorization server
    /// and the resource, which is then presented in a jwt-bearer grant authenticated as the
    /// pre-registered client for that server. Default: off.
    ///
    /// ```
    /// use tower_mcp_oauth::grants::EnterpriseIdp;
    /// use tower_mcp_oauth::{ClientConfig, EnvAssertion, HeadlessAuthorizer, OAuthLayer, PreRegisteredClient};
    /// let config = ClientConfig::new("http://127.0.0.1:1/cb").pre_registered(
    ///     PreRegisteredClient::new("mcp-client").with_secret("s3cret").for_issuer("https://auth.example.com"));
    /// let layer = OAuthLayer::new(config, HeadlessAuthorizer::new()).enterprise_managed(
    ///     EnterpriseIdp::new("https://idp.example.com/oauth2/token").client_id("idp-client"),
    ///     EnvAssertion::new("USER_ID_TOKEN"),
    /// );
    /// assert!(!format!("{layer:?}").contains("s3cret"));
    /// ```
    pub fn enterprise_managed(
        mut self,
        idp: EnterpriseIdp,
        id_token: impl AssertionSource,
    ) -> Self {
        let state = self.state_mut();
        Arc::make_mut(&mut state.config).assertion_grant =
            Some(AssertionGrant::EnterpriseManaged(idp));
        state.assertions = Some(Arc::new(id_token));
        self
    }

    /// Authorizes with the device authorization grant (RFC 8628), for a user with no browser on
    /// this machine (SSH, a container, CI): `prompt` is shown the URL and the user code, and the
    /// layer polls the token endpoint at the server's interval, sleeping on its
    /// [`Timer`](crate::Timer), until the user approves on another device. Refused
    /// (`access_denied`) is an [`ErrorKind::AuthorizationDenied`](crate::ErrorKind::AuthorizationDenied);
    /// a code that expires a `DeviceCodeExpired`; a wait past the
    /// [`consent_timeout`](Self::consent_timeout) a `ConsentTimeout`; an authorization server
    /// with no `device_authorization_endpoint` a `GrantNotSupported`, never a browser. The
    /// authorizer is not used. Default: off.
    ///
    /// ```
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer, StderrPrompt};
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .device_authorization(StderrPrompt);
    /// # let _ = layer;
    /// ```
    pub fn device_authorization(mut self, prompt: impl crate::device::DeviceCodePrompt) -> Self {
        let state = self.state_mut();
        Arc::make_mut(&mut state.config).device_authorization = true;
        state.device_prompt = Some(Arc::new(prompt));
        self
    }

    /// Whether `self` and `other` share one state (token cache, flows): clones of one layer.
    #[cfg(test)]
    pub(crate) fn shares_state_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }

    /// The settings, to change one: in place while this layer is the only holder of its state.
    pub(crate) fn state_mut(&mut self) -> &mut LayerState {
        Arc::make_mut(&mut self.state)
    }

    /// Keeps tokens and registrations in `store`: a store of its own (`FileStore::new(dir)?`),
    /// or one shared with other layers or the application (`Arc<FileStore>`,
    /// `Arc<dyn TokenStore>`; an `Arc` of a store is a store). Default: a new [`MemoryStore`](crate::MemoryStore).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_oauth::{ClientConfig, FileStore, HeadlessAuthorizer, OAuthLayer, TokenStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = || ClientConfig::new("http://127.0.0.1:1/cb");
    /// // Its own store...
    /// let alone = OAuthLayer::new(config(), HeadlessAuthorizer::new())
    ///     .token_store(FileStore::new(dir.path()).unwrap());
    /// // ...or one shared by two layers (tokens one obtains, the other finds).
    /// let shared: Arc<dyn TokenStore> = Arc::new(FileStore::new(dir.path()).unwrap());
    /// let a = OAuthLayer::new(config(), HeadlessAuthorizer::new()).token_store(Arc::clone(&shared));
    /// let b = OAuthLayer::new(config(), HeadlessAuthorizer::new()).token_store(Arc::clone(&shared));
    /// assert_eq!(Arc::strong_count(&shared), 3);
    /// # let _ = (alone, a, b);
    /// ```
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.state_mut().store = Arc::new(store);
        self
    }

    /// The largest request body kept for the retry after a `401`. A larger body is still sent,
    /// and its `401` comes back marked [`BodyNotReplayable`](crate::BodyNotReplayable) once the
    /// flow has run. Default: [`DEFAULT_MAX_REPLAY_BYTES`] (64 KiB). A body streamed in more
    /// than 1024 chunks is not kept either, whatever its size (their bookkeeping would cost more
    /// than their bytes): raised far, the limit counts for bodies in chunks of its 1024th. The example of
    /// [`BodyNotReplayable`](crate::BodyNotReplayable) shows a body over the limit.
    pub fn max_replay_bytes(mut self, bytes: usize) -> Self {
        self.state_mut().max_replay_bytes = bytes;
        self
    }

    /// The largest body accepted from a metadata, registration or token response; more is an
    /// [`ErrorKind::BodyTooLarge`](crate::ErrorKind::BodyTooLarge) error. Default:
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] (256 KiB).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthBody, OAuthLayer};
    /// # tokio_test::block_on(async {
    /// // A resource whose metadata document is 1 KiB long.
    /// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     let response = match req.uri().path() {
    ///         "/mcp" => http::Response::builder()
    ///             .status(401)
    ///             .header("www-authenticate", r#"Bearer resource_metadata="http://127.0.0.1:1/prm""#)
    ///             .body(Full::default()),
    ///         _ => http::Response::builder().status(200).body(Full::new(Bytes::from(vec![b' '; 1024]))),
    ///     };
    ///     Ok::<_, std::convert::Infallible>(response.unwrap())
    /// });
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .max_response_bytes(512);
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let error = layer.layer(server).oneshot(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::BodyTooLarge);
    /// # });
    /// ```
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.state_mut().max_response_bytes = bytes;
        self
    }

    /// When to refresh ahead of expiry. Default: [`RefreshPolicy::default`] (60 s, at most a
    /// tenth of the token's lifetime, up to 20 % jitter).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime};
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{
    ///     ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer, RefreshPolicy, TokenSet,
    ///     TokenStore, TokenType,
    /// };
    /// # tokio_test::block_on(async {
    /// // A stored token, good for another hour, with a refresh token.
    /// let now = SystemTime::now();
    /// let tokens = TokenSet::new("at", TokenType::Bearer, "http://127.0.0.1:2", "client")
    ///     .with_issued_at(Some(now))
    ///     .with_expires_at(Some(now + Duration::from_secs(3600)))
    ///     .with_refresh_token(Some(mcp_oauth_flow::secrets::RefreshToken::new("rt".into())));
    /// let server = service_fn(|_req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
    /// });
    /// let request = || http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let layer_with = |policy: RefreshPolicy| {
    ///     let tokens = tokens.clone();
    ///     async move {
    ///         let store = MemoryStore::new();
    ///         store.save_tokens("http://127.0.0.1:1/mcp", &tokens).await.unwrap();
    ///         OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///             .token_store(store)
    ///             .refresh_policy(policy)
    ///     }
    /// };
    ///
    /// // By default a token with an hour left is not refreshed.
    /// let relaxed = layer_with(RefreshPolicy::default()).await.layer(server.clone());
    /// for _ in 0..2 { relaxed.clone().oneshot(request()).await.unwrap(); }
    /// assert_eq!(relaxed.flows_started(), 0);
    ///
    /// // Refreshing up to two hours ahead (up to the whole lifetime, no jitter), it is due now.
    /// let eager = RefreshPolicy::default()
    ///     .skew(Duration::from_secs(7200))
    ///     .max_lifetime_fraction(1.0)
    ///     .jitter(0.0);
    /// let eager = layer_with(eager).await.layer(server);
    /// for _ in 0..2 { let _ = eager.clone().oneshot(request()).await; }
    /// assert!(eager.flows_started() >= 1);
    /// # });
    /// ```
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.state_mut().refresh_policy = policy;
        self
    }

    /// After a flow fails, callers of the same origin get the same error without a new flow
    /// for this long. Default: 1 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
    /// # tokio_test::block_on(async {
    /// // A resource that asks for a token while its metadata is down.
    /// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     let status = if req.uri().path() == "/mcp" { 401 } else { 503 };
    ///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(Full::<Bytes>::default()).unwrap())
    /// });
    /// let request = || http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let layer = || OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new());
    ///
    /// // Within the backoff, the second caller gets the first one's error: one flow.
    /// let patient = layer().failure_backoff(Duration::from_secs(60)).layer(server.clone());
    /// assert!(patient.clone().oneshot(request()).await.is_err());
    /// assert!(patient.clone().oneshot(request()).await.is_err());
    /// assert_eq!(patient.flows_started(), 1);
    ///
    /// // Without one, every caller tries again.
    /// let eager = layer().failure_backoff(Duration::ZERO).layer(server);
    /// assert!(eager.clone().oneshot(request()).await.is_err());
    /// assert!(eager.clone().oneshot(request()).await.is_err());
    /// assert_eq!(eager.flows_started(), 2);
    /// # });
    /// ```
    pub fn failure_backoff(mut self, backoff: Duration) -> Self {
        self.state_mut().limits.failure_backoff = backoff;
        self
    }

    /// How many times the layer re-authorizes for the same missing scopes before it hands the
    /// `403` (or the `401` naming them, see [`AuthorizationFailed`](crate::AuthorizationFailed))
    /// back marked [`AuthorizationFailed`](crate::AuthorizationFailed) with
    /// [`ErrorKind::StepUpLimit`](crate::ErrorKind::StepUpLimit). Default: 3. The example of
    /// [`AuthorizationFailed`](crate::AuthorizationFailed) sets it to 0.
    pub fn step_up_attempts(mut self, attempts: u32) -> Self {
        self.state_mut().limits.step_up_attempts = attempts;
        self
    }

    /// At most `count` interactive authorizations per MCP server within `window`; past that a
    /// flow fails with [`ErrorKind::AuthorizationLimit`](crate::ErrorKind::AuthorizationLimit)
    /// instead of asking the user again. Refreshes do not count. Per server, not per origin: a
    /// gateway's servers on one origin each get their own consent. Default: 10 per 10 minutes.
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
    /// use std::time::Duration;
    /// use tower::{Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthLayer};
    /// # tokio_test::block_on(async {
    /// // An MCP server whose authorization server would approve at once...
    /// let server = approving_server(token());
    /// // ...but this layer may not start a single authorization.
    /// let layer = OAuthLayer::new(ClientConfig::new("http://localhost:3000/callback"), HeadlessAuthorizer::new())
    ///     .authorization_budget(0, Duration::from_secs(600));
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let error = layer.layer(server).oneshot(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::AuthorizationLimit);
    /// # });
    /// ```
    pub fn authorization_budget(mut self, count: u32, window: Duration) -> Self {
        self.state_mut().limits.authorization_budget = count;
        self.state_mut().limits.budget_window = window;
        self
    }

    /// Lets every authorization or refresh flow run to its end on an executor, even when all
    /// the callers waiting on it are cancelled (an outer `Timeout`, a dropped request).
    ///
    /// Without it (the default: the layer does not assume a runtime) a flow runs only while
    /// someone waits on it; one whose waiters all went away is resumed by the next caller for
    /// the same origin, and meanwhile keeps any refresh lock it took and any rotated refresh
    /// token it is about to receive. With tokio:
    ///
    /// ```
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .spawn_flows_with(|flow| {
    ///         tokio::spawn(flow);
    ///     });
    /// # let _ = layer;
    /// ```
    ///
    /// Every flow goes through the function:
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
    /// # tokio_test::block_on(async {
    /// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     let status = if req.uri().path() == "/mcp" { 401 } else { 503 };
    ///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(Full::<Bytes>::default()).unwrap())
    /// });
    /// let spawned = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&spawned);
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .spawn_flows_with(move |flow| {
    ///         count.fetch_add(1, Ordering::SeqCst);
    ///         tokio::spawn(flow);
    ///     });
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// assert!(layer.layer(server).oneshot(request).await.is_err());
    /// assert_eq!(spawned.load(Ordering::SeqCst), 1);
    /// # });
    /// ```
    pub fn spawn_flows_with(
        mut self,
        spawn: impl Fn(crate::BoxFuture<'static, ()>) + Send + Sync + 'static,
    ) -> Self {
        self.state_mut().spawn = Some(Arc::new(spawn));
        self
    }

    /// The spawner as the web API keeps it (`None`: flows run while someone waits), for its
    /// users' layers.
    #[cfg(feature = "web")]
    pub(crate) fn spawn_option(mut self, spawn: Option<crate::state::Spawn>) -> Self {
        self.state_mut().spawn = spawn;
        self
    }

    /// The clock used for expiry and backoff. Default: the system's, [`SystemTime::now`],
    /// except for the check every request with an expiring token makes, which reads the
    /// system's coarse clock where there is one (Linux's `CLOCK_REALTIME_COARSE`: at most a
    /// scheduler tick, 1-10 ms, behind, for about a fifth of the cost). A clock given here is
    /// read for everything, that check included, once per such request: keep it cheap.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime};
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer, TokenSet, TokenStore, TokenType};
    /// # tokio_test::block_on(async {
    /// // A stored token valid for an hour from now, with no refresh token.
    /// let store = Arc::new(MemoryStore::new());
    /// let tokens = TokenSet::new("at", TokenType::Bearer, "http://127.0.0.1:2", "client")
    ///     .with_expires_at(Some(SystemTime::now() + Duration::from_secs(3600)));
    /// store.save_tokens("http://127.0.0.1:1/mcp", &tokens).await.unwrap();
    /// // A resource that accepts it, and whose metadata is down (so no new token can be had).
    /// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     let status = match req.uri().path() {
    ///         "/mcp" if req.headers().contains_key("authorization") => 200,
    ///         "/mcp" => 401,
    ///         _ => 503,
    ///     };
    ///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(Full::<Bytes>::default()).unwrap())
    /// });
    /// let request = || http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let layer = || OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .token_store(Arc::clone(&store));
    ///
    /// let now = layer().layer(server.clone());
    /// assert_eq!(now.clone().oneshot(request()).await.unwrap().status(), 200);
    /// assert_eq!(now.flows_started(), 0); // the stored token was good
    /// // Two hours later it has expired: the layer runs a flow to replace it.
    /// let later = layer().clock(|| SystemTime::now() + Duration::from_secs(7200)).layer(server);
    /// let _ = later.clone().oneshot(request()).await;
    /// assert_eq!(later.flows_started(), 1);
    /// # });
    /// ```
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.state_mut().clock = Clock::given(clock);
        self
    }

    /// Sets when and with which key the layer binds tokens with DPoP (RFC 9449); see [`Dpop`].
    /// Default: [`Dpop::new()`], DPoP whenever the authorization server advertises ES256, with
    /// a key the layer generates when it first needs one.
    ///
    /// ```
    /// use tower_mcp_oauth::{ClientConfig, Dpop, DpopPolicy, HeadlessAuthorizer, OAuthLayer};
    /// // Bearer tokens only, even from servers that offer DPoP.
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .dpop(Dpop::new().policy(DpopPolicy::Never));
    /// # let _ = layer;
    /// ```
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.state_mut().dpop = Arc::new(DpopState::new(dpop));
        self
    }
}

impl<S> Layer<S> for OAuthLayer {
    type Service = OAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuthService::new(inner, Arc::clone(&self.state))
    }
}
