//! [`WebLogin`]: start a login in one request, complete it in another, then call MCP servers
//! with the user's own tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::{
    authorization::{AuthorizationResponse, Scopes},
    url_policy::parse_secure_url,
    ClientConfig, Error, ErrorKind, Flow, FlowStart,
};
use tracing::debug;
use url::Url;

use super::connect_required::MustConnect;
use super::drive::{new_flow, Step};
use super::memory_pending::MemoryPendingLogins;
use super::pending_store::{PendingLogin, PendingLoginStore, PENDING_LOGIN_VERSION};
use super::user_layers::UserLayers;
use super::user_store::UserTokenStore;
use crate::client::HttpClient;
use crate::clock::Clock;
use crate::layer::OAuthLayer;
use crate::store::{MemoryStore, TokenStore};
use crate::timer::Timer;

mod settings;

/// How long a started login waits for its callback by default: the layer's
/// [`DEFAULT_CONSENT_TIMEOUT`](crate::DEFAULT_CONSENT_TIMEOUT), 10 minutes, the lifetime
/// RFC 6749 §4.1.2 recommends at most for the authorization code it leads to.
///
/// ```
/// assert_eq!(tower_mcp_oauth::web::DEFAULT_PENDING_TTL, tower_mcp_oauth::DEFAULT_CONSENT_TIMEOUT);
/// ```
pub const DEFAULT_PENDING_TTL: Duration = crate::DEFAULT_CONSENT_TIMEOUT;

/// The split start/complete authorization of a web app that connects many users to MCP
/// servers. See the [module docs](super) for the whole picture and a runnable example.
///
/// One `WebLogin` serves every user: share it (`Arc<WebLogin>`) between request handlers.
/// Pending logins live in this process's memory by default; an app served by several
/// processes gives each the same [`pending_login_store`](Self::pending_login_store) and
/// [`token_store`](Self::token_store) (Redis with the `redis` feature), so a login started in
/// one process completes in any other, without sticky sessions.
///
/// `Debug` shows counts, never a `state` value, code or token.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use tower_mcp_oauth::web::WebLogin;
/// use tower_mcp_oauth::{ClientConfig, HttpClient};
/// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
/// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
///     .pending_ttl(Duration::from_secs(300));
/// assert_eq!(login.pending_logins(), 0);
/// ```
pub struct WebLogin {
    pub(super) config: Arc<ClientConfig>,
    pub(super) client: HttpClient,
    pub(super) store: Arc<dyn TokenStore>,
    pending: Arc<dyn PendingLoginStore>,
    /// Whether `pending` is the memory store `new` made, which follows [`Self::clock`].
    pending_is_default: bool,
    pending_ttl: Duration,
    /// One layer per user, so a user's token cache, single-flight refresh and failure backoff
    /// survive between the app's requests; found without a lock however many users there are.
    pub(super) layers: UserLayers,
    pub(super) clock: Clock,
    /// DPoP with the defaults: offered when the server advertises it; each login's tokens are
    /// bound to a key generated for them (unless the app gave one), stored with them, so the
    /// user's layer proves with it and no other user's tokens share it.
    pub(super) dpop: Arc<crate::dpop::DpopState>,
    /// The bound of each sub-request of `start` and `complete`, and of each call's whole drive.
    pub(super) request_timeout: Duration,
    pub(super) flow_deadline: Duration,
    /// What the limits run on; `None` (no `tokio` feature, no timer given): not enforced.
    pub(super) timer: Option<Arc<dyn Timer>>,
    /// What the users' layers run their flows on ([`Self::spawn_flows_with`]).
    spawn: Option<crate::state::Spawn>,
    /// Checks the addresses of the names sub-requests go to ([`Self::resolve_with`]).
    pub(super) resolver: Option<Arc<dyn crate::Resolver>>,
}

impl std::fmt::Debug for WebLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLogin")
            .field("redirect_uri", &self.config.redirect_uri)
            .field("pending", &self.pending.count())
            .field("pending_ttl", &self.pending_ttl)
            .finish_non_exhaustive()
    }
}

/// What a completed login connected: the user's tokens are stored for `protected_resource`.
///
/// ```
/// use tower_mcp_oauth::web::Connection;
/// fn describe(c: &Connection) -> String {
///     format!("connected to {} through {}", c.protected_resource, c.issuer)
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Connection {
    /// The MCP server URL the login was started for.
    pub server_url: Url,
    /// The URL prefix the tokens are stored for and may be sent to.
    pub protected_resource: Url,
    /// The authorization server that issued the tokens.
    pub issuer: String,
    /// The scopes granted, when known.
    pub scopes: Option<Scopes>,
}

impl WebLogin {
    /// Starts a login of `user` to the MCP server at `server_url`: discovers its authorization
    /// server from the URL (RFC 9728, RFC 8414, or the 2025-03-26 defaults), identifies the app
    /// (pre-registered, client ID metadata document, a stored registration, or RFC 7591
    /// registration), and returns the authorization URL to redirect the user's browser to.
    ///
    /// The login (its PKCE verifier, `state` and discovery results, see
    /// [`PendingLogin`](super::PendingLogin)) waits in the
    /// [`pending_login_store`](Self::pending_login_store) for [`complete`](Self::complete), in
    /// this process or another, for [`pending_ttl`](Self::pending_ttl). Calling `start` again
    /// opens another login; the earlier one stays valid until it expires. If the store cannot
    /// keep the login, `start` fails with its error and no URL is handed out.
    ///
    /// The URL carries the login's `state`: redirect to it, do not log it.
    ///
    /// ```
    /// # async fn connect(login: &tower_mcp_oauth::web::WebLogin) -> Result<(), tower_mcp_oauth::Error> {
    /// let url = login.start("alice", "https://mcp.example.com/mcp").await?;
    /// // respond 302 with `Location: {url}`
    /// # let _ = url; Ok(())
    /// # }
    /// ```
    pub async fn start(&self, user: &str, server_url: &str) -> Result<Url, Error> {
        let mut server_url = parse_secure_url(server_url, "MCP server URL")?;
        // A resource identifier has no query or fragment (RFC 8707 §2), and names no user:
        // credentials in the URL would go to the authorization server as the `resource`, and
        // into the user's status and the errors that name the server.
        server_url.set_query(None);
        server_url.set_fragment(None);
        let _ = server_url.set_username("");
        let _ = server_url.set_password(None);
        let mut flow = new_flow(
            &self.config,
            FlowStart::new(server_url.clone()),
            self.clock.now(),
        )?;
        let driven = self.drive_bounded(&mut flow, &server_url).await;
        if let Err(e) = &driven {
            self.record_failure(user, &server_url, e).await;
        }
        match driven? {
            Step::Authorize(request) => {
                let Some(authorization) = flow.pending_authorization() else {
                    return Err(Error::new(
                        ErrorKind::InvalidTransition,
                        "the login asked for consent but is not waiting for the callback",
                    ));
                };
                // The time-to-live runs from the moment the URL is handed out.
                let expires_at = self.clock.now() + self.pending_ttl;
                let login = PendingLogin::new(authorization, expires_at);
                let put =
                    self.pending
                        .put(user, request.state().secret(), &login, self.pending_ttl);
                self.store_deadline()
                    .step("the pending-login store did not keep the login", put)
                    .await?;
                Ok(request.url().clone())
            }
            Step::Complete(_) => Err(Error::new(
                ErrorKind::InvalidTransition,
                "the login finished without asking for the user's consent",
            )),
        }
    }

    /// Completes a login of `user` from the query string of the callback request
    /// (`code=…&state=…&iss=…`, with or without the leading `?`), and stores the tokens under
    /// (`user`, protected resource).
    ///
    /// The callback must carry the `state` of a login *this user* started and that is neither
    /// expired nor already completed: this binds the callback to the user's session, so an
    /// attacker cannot make a victim's session complete the attacker's login (login CSRF,
    /// RFC 6749 §10.12). Anything else fails with [`ErrorKind::StateMismatch`] and consumes
    /// nothing: another user's pending login stays theirs. An expired login fails the same
    /// way, its message naming the expiry (a login whose store already dropped it cannot be
    /// told from one that never was, and the message says so). A matching login is taken
    /// from the [`pending_login_store`](Self::pending_login_store) in one atomic step whatever
    /// happens next, so a callback works once, even when two processes receive it at once.
    /// The flow is then rebuilt from the stored record; it checks `state` again and the
    /// RFC 9207 `iss`, and exchanges the code with the PKCE verifier. The tokens go to the
    /// [`token_store`](Self::token_store), where the process that started the login finds them.
    ///
    /// ```
    /// # async fn callback(login: &tower_mcp_oauth::web::WebLogin, query: &str) {
    /// use tower_mcp_oauth::ErrorKind;
    /// match login.complete("alice", query).await {
    ///     Ok(connection) => println!("connected to {}", connection.protected_resource),
    ///     Err(e) if e.kind() == ErrorKind::StateMismatch => println!("not your login: {e}"),
    ///     Err(e) => println!("login failed: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn complete(&self, user: &str, callback_query: &str) -> Result<Connection, Error> {
        let query = callback_query.strip_prefix('?').unwrap_or(callback_query);
        let response = AuthorizationResponse::from_query(query);
        let Some(state) = response.state.as_deref() else {
            return Err(Error::new(
                ErrorKind::StateMismatch,
                "the callback carries no state, so it cannot be matched to a login",
            ));
        };
        // The messages name neither the state nor the user: both end up in logs.
        let take = self.pending.take(user, state);
        let missed = "the pending-login store did not answer";
        let Some(login) = self.store_deadline().step(missed, take).await? else {
            return Err(Error::new(
                ErrorKind::StateMismatch,
                format!(
                    "no login of this user is waiting for this callback: it expired (logins \
                     wait {} s), was started by another user, or was already completed",
                    self.pending_ttl.as_secs()
                ),
            ));
        };
        let now = self.clock.now();
        if now >= login.expires_at() {
            return Err(Error::new(
                ErrorKind::StateMismatch,
                "the login this callback belongs to has expired: start it again",
            ));
        }
        if login.version() != PENDING_LOGIN_VERSION {
            return Err(Error::new(
                ErrorKind::Store,
                format!(
                    "the pending login was stored in version {} of its form, this build reads \
                     version {PENDING_LOGIN_VERSION}: start the login again",
                    login.version()
                ),
            ));
        }
        let server_url = login.server_url().clone();
        // A logout of this server while the code is exchanged overrules the login, as it does
        // the layer's own flows: the logouts so far are taken now. The user's layer is held
        // meanwhile, so the logout reaches this one (a held layer is never dropped from the
        // map).
        let layer = self.layer_for(user);
        let generation = layer.logout_generation(&server_url);
        let mut flow = Flow::resume(Arc::clone(&self.config), login.into_authorization(), now)?;
        flow.handle_authorization_response_at(response, now);
        let driven = self.drive_bounded(&mut flow, &server_url).await;
        if let Err(e) = &driven {
            self.record_failure(user, &server_url, e).await;
        }
        let outcome = match driven? {
            Step::Complete(outcome) => outcome,
            Step::Authorize(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidTransition,
                    "the login asked for consent twice",
                ))
            }
        };
        // A new authorization is what the user just approved: it replaces whatever was stored.
        // Within the writes' deadline, as a flight's: a store that stopped answering fails the
        // callback rather than holding it for ever.
        let user_store = self.user_store(user);
        let save = user_store.save_tokens(outcome.protected_resource.as_str(), &outcome.tokens);
        let mut writes = self.store_deadline();
        let saved = writes.step(crate::stored::NOT_WRITTEN, save).await;
        if let Err(e) = saved {
            // The code is spent and the login taken: the same callback cannot pass again,
            // whatever the store's trouble, so the error is not transient. Recorded, so the
            // user's status says why.
            let e = Error::new(
                ErrorKind::Store,
                format!(
                    "{}; the login's tokens were not kept: start the login again",
                    e.message()
                ),
            );
            // A deadline of its own: the save that failed may have spent the writes'.
            self.record_failure(user, &server_url, &e).await;
            return Err(e);
        }
        // Logged out meanwhile: the tokens go (only while they are the ones stored: a login
        // completed since stays), and are revoked, never having been used.
        if let Err(e) = layer.check_logouts(&generation, &outcome.protected_resource) {
            debug!(resource = %outcome.protected_resource, "logged out during the login; its tokens are dropped");
            let resource = outcome.protected_resource.as_str();
            let remove = user_store.compare_and_swap_tokens(resource, Some(&outcome.tokens), None);
            if let Err(e) = writes.step(crate::stored::NOT_WRITTEN, remove).await {
                tracing::warn!(error = %e, "could not remove the tokens a logout overruled");
            }
            layer
                .revoke_overruled(&server_url, &outcome.tokens, &self.client)
                .await;
            return Err(e);
        }
        // Which layer the logouts were counted by (held no longer: see below).
        let counted_by = Arc::downgrade(&layer.state);
        drop(layer);
        // The client the tokens were issued to, if the flow kept its registration until now
        // (it replaces one another application sharing the store uses).
        if let Some(registration) = &outcome.registration {
            let mut deadline = self.store_deadline();
            crate::stored::save_registration(&user_store, registration, &mut deadline).await;
        }
        self.record_outcome(user, &server_url, &Ok(()), &mut writes)
            .await;
        // The user's cached layer may hold older tokens, or a recent "must connect" failure:
        // unheld, it is forgotten and the next `layer_for` adopts the stored tokens; one a
        // service the app keeps still holds stays, and takes the new tokens now (dropped from
        // the map, it would go on sending the old ones, out of reach of a logout). So does one
        // a lookup took as it was being forgotten.
        // Not if a logout came during the writes just made (after the check above): it wiped
        // these tokens from the store, and the kept layer must not take them back. (A layer
        // other than the one that counted the logouts has counts of its own: only the same
        // layer is asked, and any other takes the tokens.)
        if let Some(held) = self.layers.remove_unless_held(user) {
            let same = std::ptr::eq(counted_by.as_ptr(), Arc::as_ptr(&held.state));
            let logged_out = same
                && held
                    .check_logouts(&generation, &outcome.protected_resource)
                    .is_err();
            if !logged_out {
                held.adopt_login(
                    &server_url,
                    outcome.protected_resource.clone(),
                    outcome.tokens.clone(),
                );
            }
        }
        debug!(resource = %outcome.protected_resource, issuer = outcome.tokens.issuer(), "web login completed");
        Ok(Connection {
            server_url,
            protected_resource: outcome.protected_resource,
            issuer: outcome.tokens.issuer().to_owned(),
            scopes: outcome.tokens.scopes().cloned(),
        })
    }

    /// The layer for `user`'s MCP calls: it sends their tokens, refreshes them when due, and
    /// shares one store with every other user. All layers returned for one user share one
    /// token cache; after a new login, one that a service the app keeps still holds takes the
    /// new tokens, and one nothing holds is replaced by a fresh one.
    ///
    /// It never starts a login: when the user has no usable token (never connected, or the
    /// grant was revoked) the call fails with [`ErrorKind::InteractionRequired`] carrying
    /// [`ConnectRequired`](super::ConnectRequired), so the app can send the user to its
    /// connect page. Configure it further like any [`OAuthLayer`] (a clone shares the cache).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    /// use tower_mcp_oauth::web::{ConnectRequired, WebLogin};
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, HttpClient, OAuthBody};
    /// # tokio_test::block_on(async {
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client);
    /// // An MCP server of the 2025-03-26 kind that wants a token; Bob never connected.
    /// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     let (status, body) = match req.uri().path() {
    ///         "/mcp" => (401, ""),
    ///         "/register" => (201, r#"{"client_id":"forum"}"#),
    ///         _ => (404, ""),
    ///     };
    ///     let response = http::Response::builder().status(status)
    ///         .header("content-type", "application/json").body(Full::new(Bytes::from(body)));
    ///     Ok::<_, std::convert::Infallible>(response.unwrap())
    /// });
    /// let service = ServiceBuilder::new().layer(login.layer_for("bob")).service(server);
    /// let request = http::Request::post("https://mcp.example.com/mcp").body(Full::new(Bytes::new())).unwrap();
    /// let err = service.oneshot(request).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InteractionRequired);
    /// assert!(ConnectRequired::find(&err).is_some());
    /// # });
    /// ```
    pub fn layer_for(&self, user: &str) -> OAuthLayer {
        self.layers.get_or_insert_with(user, || {
            OAuthLayer::new((*self.config).clone(), MustConnect)
                .users_connect_in_browser()
                .token_store(self.user_store(user))
                .with_shared_clock(self.clock.clone())
                .dpop(self.dpop.settings.clone())
                // The budget stops a layer from prompting a user over and over; this
                // layer never prompts, and its "must connect" answer must not turn into an
                // AuthorizationLimit error for a user who keeps coming back unconnected.
                .authorization_budget(u32::MAX, Duration::ZERO)
                .request_timeout(self.request_timeout)
                .flow_deadline(self.flow_deadline)
                .timer_option(self.timer.clone())
                .spawn_option(self.spawn.clone())
                .resolver_option(self.resolver.clone())
        })
    }

    /// `user`'s view of the store: their tokens, the app's registrations. Use it to see
    /// whether a user holds tokens for a resource, or to drop them (disconnect).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient, TokenStore};
    /// # tokio_test::block_on(async {
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client);
    /// let connected = login.user_store("alice").load_tokens("https://mcp.example.com/mcp").await.unwrap();
    /// assert!(connected.is_none());
    /// # });
    /// ```
    pub fn user_store(&self, user: &str) -> UserTokenStore {
        UserTokenStore::new(user, Arc::clone(&self.store))
    }

    /// Forgets `user`'s pending logins (in the
    /// [`pending_login_store`](Self::pending_login_store)) and the layer this process holds
    /// for them, e.g. when they sign out of the app; a layer a service the app keeps still
    /// holds stays, so that a [`logout`](Self::logout) reaches it. Their stored tokens stay:
    /// drop them through [`user_store`](Self::user_store), or log them out. Fails with the
    /// store's error, or with a transient [`ErrorKind::Timeout`] when it does not answer within
    /// the flow deadline.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient};
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client);
    /// let _layer = login.layer_for("alice");
    /// # tokio_test::block_on(async {
    /// login.forget_user("alice").await.unwrap();
    /// # });
    /// ```
    pub async fn forget_user(&self, user: &str) -> Result<(), Error> {
        // A layer a service the app keeps still holds stays, so that a logout reaches it.
        self.layers.remove_unless_held(user);
        let forget = self.pending.forget_user(user);
        self.store_deadline()
            .step("the pending-login store did not forget the user", forget)
            .await
    }

    /// How many logins wait for their callback, over all users (expired ones until the next
    /// `start` or `complete` purges them), when the
    /// [`pending_login_store`](Self::pending_login_store) can tell without a round trip
    /// ([`PendingLoginStore::count`]); 0 when it cannot (Redis: count the keys there).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient};
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client);
    /// assert_eq!(login.pending_logins(), 0);
    /// ```
    pub fn pending_logins(&self) -> usize {
        self.pending.count().unwrap_or(0)
    }

    /// Logs `user` out of the MCP server at `server_url`: forgets their tokens, then revokes
    /// them there (RFC 7009) through the app's client, as
    /// [`OAuthLayer::logout`](crate::OAuthLayer::logout) does. The app's client registration
    /// is kept. The user's next request to that server needs a new login.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient};
    /// # tokio_test::block_on(async {
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client);
    /// let logout = login.logout("alice", "https://mcp.example.com/mcp").await.unwrap();
    /// assert!(logout.resource.is_none()); // alice held nothing
    /// # });
    /// ```
    pub async fn logout(&self, user: &str, server_url: &str) -> Result<crate::Logout, Error> {
        self.layer_for(user).logout(server_url, &self.client).await
    }
}
