//! [`OAuthLayer`]: the configuration, and the token cache every service made from it shares.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::{ClientConfig, RefreshPolicy};
use tower_layer::Layer;

use crate::authorize::Authorizer;
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
/// Put `Timeout` outside this layer (a flow is several round trips, and a timeout inside would
/// cut each one separately), `FollowRedirect` inside it (its standard policy strips
/// `Authorization` on cross-origin hops), and `ConcurrencyLimit` inside it.
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
    state: Arc<LayerState>,
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

    /// The settings, to change one: in place while this layer is the only holder of its state.
    fn state_mut(&mut self) -> &mut LayerState {
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
    /// flow has run. Default: [`DEFAULT_MAX_REPLAY_BYTES`] (64 KiB).
    pub fn max_replay_bytes(mut self, bytes: usize) -> Self {
        self.state_mut().max_replay_bytes = bytes;
        self
    }

    /// The largest body accepted from a metadata, registration or token response; more is an
    /// [`ErrorKind::BodyTooLarge`](crate::ErrorKind::BodyTooLarge) error. Default:
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] (256 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.state_mut().max_response_bytes = bytes;
        self
    }

    /// When to refresh ahead of expiry. Default: [`RefreshPolicy::default`] (60 s, at most a
    /// tenth of the token's lifetime, up to 20 % jitter).
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.state_mut().refresh_policy = policy;
        self
    }

    /// After a flow fails, callers of the same origin get the same error without a new flow
    /// for this long. Default: 1 s.
    pub fn failure_backoff(mut self, backoff: Duration) -> Self {
        self.state_mut().limits.failure_backoff = backoff;
        self
    }

    /// How many times the layer re-authorizes for the same missing scopes before it hands the
    /// `403` back marked [`AuthorizationFailed`](crate::AuthorizationFailed) with
    /// [`ErrorKind::StepUpLimit`](crate::ErrorKind::StepUpLimit). Default: 3.
    pub fn step_up_attempts(mut self, attempts: u32) -> Self {
        self.state_mut().limits.step_up_attempts = attempts;
        self
    }

    /// At most `count` interactive authorizations per origin within `window`; past that a flow
    /// fails with [`ErrorKind::AuthorizationLimit`](crate::ErrorKind::AuthorizationLimit)
    /// instead of asking the user again. Refreshes do not count. Default: 10 per 10 minutes.
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
    pub fn spawn_flows_with(
        mut self,
        spawn: impl Fn(crate::BoxFuture<'static, ()>) + Send + Sync + 'static,
    ) -> Self {
        self.state_mut().spawn = Some(Arc::new(spawn));
        self
    }

    /// The clock used for expiry and backoff. Default: [`SystemTime::now`].
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.state_mut().clock = Arc::new(clock);
        self
    }
}

impl<S> Layer<S> for OAuthLayer {
    type Service = OAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuthService::new(inner, Arc::clone(&self.state))
    }
}
