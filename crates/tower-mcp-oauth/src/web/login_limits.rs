//! [`WebLogin`]'s time limits and its bound on the users it keeps layers for, and the bounded
//! drive of a login's flow they apply to (as `time_limits.rs` is the layer's).

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_flow::{Error, ErrorKind, Flow};
use url::Url;

use super::drive::{drive, Io, Step};
use super::login::WebLogin;
use super::user_layers::UserLayers;
use crate::timer::{human, within, Deadline, Timer};

impl WebLogin {
    /// The time one sub-request of [`start`](Self::start) or [`complete`](Self::complete) may
    /// take (discovery, registration, the token request), from sending it to the last byte of
    /// its body; past it the call fails with [`ErrorKind::Timeout`] naming the URL and the
    /// limit. The users' own layers ([`layer_for`](Self::layer_for)) bound their refreshes the
    /// same way. Default: [`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) (30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, HttpClient};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // An MCP server that accepts the connection and never answers.
    /// let stalled = HttpClient::from_fn(|_req| std::future::pending());
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), stalled)
    ///     .request_timeout(Duration::from_secs(5));
    /// let error = login.start("alice", "https://mcp.example.com/mcp").await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Timeout);
    /// assert!(error.to_string().contains("within 5 s"), "{error}");
    /// # }
    /// ```
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// The time one call of [`start`](Self::start) or [`complete`](Self::complete) may take
    /// in all, every sub-request and store access (the user's time at the authorization server
    /// is between the two calls, so it is not counted); past it the call fails with
    /// [`ErrorKind::Timeout`] naming the server and the limit. The store steps outside the
    /// flow (the pending login kept by `start` and taken by `complete`, the user's tokens and
    /// the status record written after a completed login) get the same time again; a store
    /// that does not answer within it fails the call with a transient
    /// [`ErrorKind::Timeout`]. Default:
    /// [`DEFAULT_FLOW_DEADLINE`](crate::DEFAULT_FLOW_DEADLINE) (2 minutes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, HttpClient};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Every answer takes 4 s and is a 404: each is within the request timeout, together
    /// // they pass the deadline.
    /// let slow = HttpClient::from_fn(|_req| async {
    ///     tokio::time::sleep(Duration::from_secs(4)).await;
    ///     Ok(http::Response::builder().status(404).body(Bytes::new()).unwrap())
    /// });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), slow)
    ///     .request_timeout(Duration::from_secs(5))
    ///     .flow_deadline(Duration::from_secs(6));
    /// let error = login.start("alice", "https://mcp.example.com/mcp").await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Timeout);
    /// assert!(error.to_string().contains("within its 6 s deadline"), "{error}");
    /// # }
    /// ```
    pub fn flow_deadline(mut self, limit: Duration) -> Self {
        self.flow_deadline = limit;
        self
    }

    /// How many users' layers (their token caches, single-flight refreshes, failure backoff)
    /// are kept in memory, about: past it, a new user's layer replaces another user's that
    /// nothing else holds. Nothing is lost with it (the tokens are in the store, and the user's
    /// next request makes a layer that adopts them), so the bound costs a store read for a
    /// user who comes back, and keeps an app that makes up an id per anonymous visitor from
    /// keeping a layer for each forever. A layer the app still holds (a service it keeps for
    /// the user, a request in flight) is not replaced, so that a logout reaches its cache.
    /// Default: 65,536.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient, TokenSet, TokenStore, TokenType};
    /// # tokio_test::block_on(async {
    /// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .max_cached_users(1);
    /// let url = "https://mcp.example.com/mcp";
    /// let tokens = TokenSet::new("at-alice", TokenType::Bearer, "https://as.example.com", "c");
    /// login.user_store("alice").save_tokens(url, &tokens).await.unwrap();
    /// let alice = login.layer_for("alice");
    /// drop(alice);
    /// // Room for one layer a shard: a flood of other users replaces alice's, which nothing
    /// // holds any more...
    /// for i in 0..1_000 {
    ///     let _ = login.layer_for(&format!("visitor-{i}"));
    /// }
    /// // ...and her next layer finds her tokens in the store.
    /// assert!(login.layer_for("alice").status(url).await.unwrap().connected);
    /// # });
    /// ```
    pub fn max_cached_users(mut self, users: usize) -> Self {
        self.layers = UserLayers::with_capacity(users);
        self
    }

    /// The timer the time limits run on, for the logins and the users' layers. Default:
    /// [`TokioTimer`](crate::TokioTimer) with the `tokio` feature (on by default); without
    /// it, none, and the limits are not enforced until one is set.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient, TokioTimer};
    /// let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client)
    ///     .timer(TokioTimer);
    /// # let _ = login;
    /// ```
    pub fn timer(mut self, timer: impl Timer) -> Self {
        self.timer = Some(Arc::new(timer));
        self
    }

    /// A deadline of the flow deadline's length for a call's store steps outside its flow:
    /// the pending login kept or taken, the user's tokens and the status record written after
    /// it (as for a layer's flights, see [`Deadline`](crate::timer::Deadline)).
    pub(super) fn store_deadline(&self) -> Deadline<'_> {
        Deadline::new(self.timer.as_deref(), self.flow_deadline)
    }

    /// Drives `flow` until it needs the user or ends, each sub-request within the request
    /// timeout and the whole within the flow deadline.
    pub(super) async fn drive_bounded(
        &self,
        flow: &mut Flow,
        server_url: &Url,
    ) -> Result<Step, Error> {
        let timer = self.timer.as_deref();
        // Judged like a layer's flow's sub-requests: every URL by the policy, each name's
        // addresses too when a resolver is set; the lookup within the request's bound.
        let client = crate::resolve::guarded(
            self.client.clone(),
            Arc::clone(&self.config.url_policy),
            self.resolver.clone(),
            server_url.clone(),
        )
        .bounded_by(self.request_timeout, self.timer.as_ref());
        let io = Io {
            client: &client,
            store: &*self.store,
            clock: &self.clock,
            dpop: &self.dpop,
        };
        within(timer, self.flow_deadline, drive(flow, &io))
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the login for {server_url} did not finish within its {} deadline",
                        human(self.flow_deadline)
                    ),
                ))
            })
    }
}
