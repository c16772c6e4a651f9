//! [`WebLogin`]'s construction and settings: the client it sends through, the stores it keeps
//! tokens and pending logins in, how long a login waits, its clock, DPoP, and what the users'
//! layers run their flows on. (Its time limits are in `login_limits.rs`.)

// The types the login's fields are made of, as `mod.rs` names them.
use super::*;

/// The longest [`WebLogin::pending_ttl`].
const MAX_PENDING_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl WebLogin {
    /// A web login for the app described by `config`, whose `redirect_uri` is the app's
    /// callback URL. Sub-requests (discovery, registration, token) go through `client`, e.g.
    /// [`HttpClient::from_service`] over hyper-util's `Client`. Tokens and registrations are
    /// kept in a new [`MemoryStore`] until [`token_store`](Self::token_store) says otherwise.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient, OAuthBody, DEFAULT_MAX_RESPONSE_BYTES};
    /// # tokio_test::block_on(async {
    /// let http = Client::builder(TokioExecutor::new()).build_http::<OAuthBody<Full<Bytes>>>();
    /// let login = WebLogin::new(
    ///     ClientConfig::new("https://forum.example.com/callback").client_name("Forum"),
    ///     HttpClient::from_service(http, DEFAULT_MAX_RESPONSE_BYTES),
    /// );
    /// # let _ = login;
    /// # });
    /// ```
    pub fn new(config: ClientConfig, client: HttpClient) -> Self {
        let clock = Clock::system();
        Self {
            config: Arc::new(config),
            client,
            store: Arc::new(MemoryStore::new()),
            pending: Arc::new(MemoryPendingLogins::new().with_shared_clock(clock.clone())),
            pending_is_default: true,
            pending_ttl: DEFAULT_PENDING_TTL,
            layers: UserLayers::default(),
            clock,
            dpop: Arc::new(crate::dpop::DpopState::per_login(crate::Dpop::default())),
            request_timeout: crate::DEFAULT_REQUEST_TIMEOUT,
            flow_deadline: crate::DEFAULT_FLOW_DEADLINE,
            timer: crate::timer::default_timer(),
            spawn: None,
            resolver: None,
        }
    }

    /// Checks the addresses each host name resolves to before every sub-request to it (in
    /// [`start`](Self::start), [`complete`](Self::complete), a logout, and the users' layers'
    /// refreshes), with the config's `url_policy` against the MCP server's own addresses, as
    /// [`OAuthLayer::resolve_with`](crate::OAuthLayer::resolve_with) does: a name leading to a
    /// private or cloud-metadata address, or starting to (DNS rebinding), is refused like an
    /// IP literal. Where users type in the MCP servers to connect, this keeps their metadata
    /// from steering the app's requests into its own network. Default: off.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient, TokioResolver};
    /// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .resolve_with(TokioResolver);
    /// # let _ = login;
    /// ```
    pub fn resolve_with(mut self, resolver: impl crate::Resolver) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Keeps every user's tokens (under [`UserTokenStore`] keys) and the app's registrations
    /// in `store`. Default: a new [`MemoryStore`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, FileStore, HttpClient};
    /// let dir = std::env::temp_dir().join(format!("web-login-doc-{}", std::process::id()));
    /// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .token_store(FileStore::new(&dir).unwrap());
    /// # let _ = login;
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn token_store(mut self, store: impl TokenStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// How long a started login waits for its callback before it is purged; a callback after
    /// that is refused. Default: [`DEFAULT_PENDING_TTL`] (10 minutes); at most a day (a
    /// longer one is a day: no one finishes a sign-in later, and an expiry past the clock's
    /// range would fail every login).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient};
    /// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .pending_ttl(Duration::from_secs(120));
    /// # let _ = login;
    /// ```
    pub fn pending_ttl(mut self, ttl: Duration) -> Self {
        self.pending_ttl = ttl.min(MAX_PENDING_TTL);
        self
    }

    /// Keeps the logins waiting for their callback in `store`. Default: a
    /// [`MemoryPendingLogins`] of this process. An app served by several processes gives
    /// them all one shared store, and one shared [`token_store`](Self::token_store), so the
    /// callback may reach any process: with the `redis` feature,
    /// [`RedisStore`](crate::redis::RedisStore) is both.
    ///
    /// The store holds each login's PKCE verifier and `state` (and a confidential client's
    /// secret) until the login completes or expires: keep it where you keep tokens.
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::redis::RedisStore;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient};
    /// # async fn run() -> Result<(), tower_mcp_oauth::Error> {
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let redis = RedisStore::connect("redis://redis.internal:6379/").await?.prefix("forum");
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .token_store(redis.clone())
    ///     .pending_login_store(redis);
    /// # let _ = login;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pending_login_store(mut self, store: impl PendingLoginStore) -> Self {
        self.pending = Arc::new(store);
        self.pending_is_default = false;
        self
    }

    /// The clock for pending-login expiry and, in the layers of [`layer_for`](Self::layer_for),
    /// token expiry. Default: the system's, read as [`OAuthLayer::clock`] describes (its
    /// coarse copy for the check every request with an expiring token makes). A clock given
    /// here is read for everything.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient};
    /// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .clock(|| SystemTime::now() + Duration::from_secs(5)); // a skewed host
    /// # let _ = login;
    /// ```
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Clock::given(clock);
        if self.pending_is_default {
            self.pending =
                Arc::new(MemoryPendingLogins::new().with_shared_clock(self.clock.clone()));
        }
        self
    }

    /// DPoP (RFC 9449) for the logins and the layers of [`layer_for`](Self::layer_for); see
    /// [`Dpop`](crate::Dpop). Default: [`Dpop::new()`](crate::Dpop::new), used when the
    /// authorization server offers it. Each login binds its tokens to a key generated for it,
    /// unless [`Dpop::key`](crate::Dpop::key) gives the app's own: one user's stored record
    /// (tokens and key) proves nothing for another user's tokens. A user's tokens are stored
    /// with their key, so the user's layer proves with it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, Dpop, DpopPolicy, HttpClient};
    /// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .dpop(Dpop::new().policy(DpopPolicy::Never));
    /// # let _ = login;
    /// ```
    pub fn dpop(mut self, dpop: crate::Dpop) -> Self {
        self.dpop = Arc::new(crate::dpop::DpopState::per_login(dpop));
        self
    }

    /// Lets the refreshes of every user's layer ([`layer_for`](Self::layer_for)) run to their
    /// end on an executor, even when every request waiting on one is cancelled (a browser that
    /// went away dropped its handler): see [`OAuthLayer::spawn_flows_with`]. Without it a
    /// refresh runs only while some request of that user waits on it, and keeps its store lock
    /// meanwhile; with a store a fleet of processes shares, a refresh cut off after the server
    /// rotated the refresh token must still write the new one, so give one.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime};
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use mcp_oauth_flow::client::ClientAuthMethod;
    /// use mcp_oauth_flow::secrets::RefreshToken;
    /// use mcp_oauth_testkit::scripted;
    /// use tower::{Layer, ServiceExt};
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient, OAuthBody, TokenSet, TokenStore, TokenType};
    /// # tokio_test::block_on(async {
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let spawned = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&spawned);
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .spawn_flows_with(move |flow| {
    ///         count.fetch_add(1, Ordering::SeqCst);
    ///         tokio::spawn(flow);
    ///     });
    /// // Alice connected earlier; her token is due for a refresh.
    /// let due = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "client")
    ///     .with_expires_at(Some(SystemTime::now() - Duration::from_secs(1)))
    ///     .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
    ///     .with_token_endpoint(Some("http://127.0.0.1:2/token".into()), Some(ClientAuthMethod::None));
    /// login.user_store("alice").save_tokens("http://127.0.0.1:1/mcp", &due).await.unwrap();
    /// // The MCP server, its authorization server answering the refresh with `at-2`.
    /// let server = tower::service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     if let Some(response) = scripted::flow_response(&req) { return Ok(response); }
    ///     Ok::<_, std::convert::Infallible>(match req.uri().path() {
    ///         "/token" => scripted::json(200, serde_json::json!({"access_token": "at-2", "token_type": "Bearer"})),
    ///         _ if req.headers().get("authorization").is_some_and(|v| v == "Bearer at-2") => scripted::json(200, serde_json::json!({})),
    ///         _ => scripted::unauthorized(),
    ///     })
    /// });
    /// let request = http::Request::post("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
    /// let response = login.layer_for("alice").layer(server).oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(spawned.load(Ordering::SeqCst), 1); // the refresh ran on the executor
    /// # });
    /// ```
    pub fn spawn_flows_with(
        mut self,
        spawn: impl Fn(crate::BoxFuture<'static, ()>) + Send + Sync + 'static,
    ) -> Self {
        self.spawn = Some(Arc::new(spawn));
        self
    }
}
