//! [`OAuthLayer`]: the configuration, and the token cache every service made from it shares.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::{ClientConfig, RefreshPolicy};
use tower_layer::Layer;

use crate::authorize::Authorizer;
use crate::cache::Cache;
use crate::driver::FlowDeps;
use crate::flight::{Flights, Limits};
use crate::service::OAuthService;
use crate::store::{MemoryStore, TokenStore};

/// Default cap on the request body kept for the retry after a `401`.
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 64 * 1024;
/// Default cap on the body of every metadata, registration and token response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The layer's source of wall-clock time (tests pass a controllable one).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Runs a future to completion in the background (`tokio::spawn`, say).
pub type Spawn = Arc<dyn Fn(crate::BoxFuture<'static, ()>) + Send + Sync>;

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
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) cache: Arc<Cache>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) clock: Clock,
    pub(crate) refresh_policy: RefreshPolicy,
    pub(crate) limits: Limits,
    pub(crate) max_replay_bytes: usize,
    pub(crate) max_response_bytes: usize,
    pub(crate) spawn: Option<Spawn>,
}

impl std::fmt::Debug for OAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthLayer")
            .field("config", &self.config)
            .field("max_replay_bytes", &self.max_replay_bytes)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl OAuthLayer {
    /// A layer for a client configured by `config` that obtains consent through `authorizer`,
    /// with an in-memory [`MemoryStore`].
    pub fn new(config: ClientConfig, authorizer: impl Authorizer) -> Self {
        Self {
            config: Arc::new(config),
            authorizer: Arc::new(authorizer),
            store: Arc::new(MemoryStore::new()),
            cache: Arc::new(Cache::default()),
            flights: Arc::new(Flights::default()),
            clock: Arc::new(SystemTime::now),
            refresh_policy: RefreshPolicy::default(),
            limits: Limits {
                failure_backoff: Duration::from_secs(1),
                step_up_attempts: 3,
                authorization_budget: 10,
                budget_window: Duration::from_secs(600),
            },
            max_replay_bytes: DEFAULT_MAX_REPLAY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            spawn: None,
        }
    }

    /// Keeps tokens and registrations in `store`. Default: a new [`MemoryStore`].
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Keeps tokens and registrations in a store shared with other layers.
    pub fn shared_token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = store;
        self
    }

    /// The largest request body kept for the retry after a `401`. A larger body is still sent,
    /// and its `401` comes back marked [`BodyNotReplayable`](crate::BodyNotReplayable) once the
    /// flow has run. Default: [`DEFAULT_MAX_REPLAY_BYTES`] (64 KiB).
    pub fn max_replay_bytes(mut self, bytes: usize) -> Self {
        self.max_replay_bytes = bytes;
        self
    }

    /// The largest body accepted from a metadata, registration or token response; more is an
    /// [`ErrorKind::BodyTooLarge`](crate::ErrorKind::BodyTooLarge) error. Default:
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] (256 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// When to refresh ahead of expiry. Default: [`RefreshPolicy::default`] (60 s, at most a
    /// tenth of the token's lifetime, up to 20 % jitter).
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.refresh_policy = policy;
        self
    }

    /// After a flow fails, callers of the same origin get the same error without a new flow
    /// for this long. Default: 1 s.
    pub fn failure_backoff(mut self, backoff: Duration) -> Self {
        self.limits.failure_backoff = backoff;
        self
    }

    /// How many times the layer re-authorizes for the same missing scopes before it hands the
    /// `403` back marked [`AuthorizationFailed`](crate::AuthorizationFailed) with
    /// [`ErrorKind::StepUpLimit`](crate::ErrorKind::StepUpLimit). Default: 3.
    pub fn step_up_attempts(mut self, attempts: u32) -> Self {
        self.limits.step_up_attempts = attempts;
        self
    }

    /// At most `count` interactive authorizations per origin within `window`; past that a flow
    /// fails with [`ErrorKind::AuthorizationLimit`](crate::ErrorKind::AuthorizationLimit)
    /// instead of asking the user again. Refreshes do not count. Default: 10 per 10 minutes.
    pub fn authorization_budget(mut self, count: u32, window: Duration) -> Self {
        self.limits.authorization_budget = count;
        self.limits.budget_window = window;
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
        self.spawn = Some(Arc::new(spawn));
        self
    }

    /// The clock used for expiry and backoff. Default: [`SystemTime::now`].
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub(crate) fn deps(&self) -> FlowDeps {
        FlowDeps {
            config: Arc::clone(&self.config),
            authorizer: Arc::clone(&self.authorizer),
            store: Arc::clone(&self.store),
        }
    }
}

impl<S> Layer<S> for OAuthLayer {
    type Service = OAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuthService::new(inner, self)
    }
}
