//! [`OAuthLayer`]: the configuration, and the token cache every service made from it shares.

use std::sync::Arc;

use mcp_oauth_flow::ClientConfig;
use tower_layer::Layer;

use crate::authorize::Authorizer;
use crate::cache::Cache;
use crate::driver::FlowDeps;
use crate::service::OAuthService;
use crate::store::{MemoryStore, TokenStore};

/// Default cap on the request body kept for the retry after a `401`.
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 64 * 1024;
/// Default cap on the body of every metadata, registration and token response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

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
    pub(crate) max_replay_bytes: usize,
    pub(crate) max_response_bytes: usize,
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
            max_replay_bytes: DEFAULT_MAX_REPLAY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
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
