//! The layer's time limits, configured on [`OAuthLayer`]: one per sub-request, one for the
//! non-interactive part of a flow, one for the consent wait, and the [`Timer`] they run on.
//!
//! None of them touches a request that already has a valid token: they bound the flow only.

use std::sync::Arc;
use std::time::Duration;

use crate::layer::OAuthLayer;
use crate::timer::Timer;

impl OAuthLayer {
    /// The time one sub-request of a flow may take (discovery, registration, token, refresh,
    /// and an authorizer's own requests), from sending it to the last byte of its body; past it
    /// the flow fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) naming the URL and
    /// the limit. Stored credentials are kept, and the next call (after the
    /// [`failure_backoff`](Self::failure_backoff)) tries again. Default:
    /// [`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) (30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthBody, OAuthLayer};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // A resource that asks for a token, and whose metadata server never answers.
    /// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     if req.uri().path() != "/mcp" {
    ///         std::future::pending::<()>().await;
    ///     }
    ///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(401).body(Full::<Bytes>::default()).unwrap())
    /// });
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .request_timeout(Duration::from_secs(5));
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let error = layer.layer(server).oneshot(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Timeout);
    /// assert!(error.to_string().contains("within 5 s"), "{error}");
    /// # }
    /// ```
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.state_mut().limits.request_timeout = limit;
        self
    }

    /// The time the non-interactive part of one flow may take: every sub-request and store
    /// access, but not the wait for the user's consent (bounded by the authorizer, and by
    /// [`consent_timeout`](Self::consent_timeout)). The user's answer starts it over, and so
    /// does each poll of a device login (each follows a wait for the user). Past it the flow
    /// fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) naming the server and the
    /// limit. The store writes after a flow, whatever its end (the tokens, the refresh lock's
    /// release, the flow's record for [`status`](Self::status)), get the same time again, as do
    /// the lock's release before a consent and the drop of refused tokens: a store that does
    /// not answer within it is a store that failed, and the tokens are used from memory and
    /// written at the next flow.
    /// Default: [`DEFAULT_FLOW_DEADLINE`](crate::DEFAULT_FLOW_DEADLINE) (2 minutes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthBody, OAuthLayer};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Every metadata request takes 4 s and then fails: each is within the 5 s request
    /// // timeout, but together they pass the 10 s deadline.
    /// let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    ///     if req.uri().path() != "/mcp" {
    ///         tokio::time::sleep(Duration::from_secs(4)).await;
    ///     }
    ///     let status = if req.uri().path() == "/mcp" { 401 } else { 404 };
    ///     Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(Full::<Bytes>::default()).unwrap())
    /// });
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .request_timeout(Duration::from_secs(5))
    ///     .flow_deadline(Duration::from_secs(10));
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let error = layer.layer(server).oneshot(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Timeout);
    /// assert!(error.to_string().contains("within its 10 s deadline"), "{error}");
    /// # }
    /// ```
    pub fn flow_deadline(mut self, limit: Duration) -> Self {
        self.state_mut().limits.flow_deadline = limit;
        self
    }

    /// The longest one consent wait may take, whatever the authorizer: past it the flow fails
    /// with [`ErrorKind::ConsentTimeout`](crate::ErrorKind::ConsentTimeout). It is a backstop:
    /// an authorizer bounds its own wait (the loopback receiver's
    /// [`timeout`](crate::loopback::LoopbackBuilder::timeout), 5 minutes by default), and this
    /// matters for one that would wait forever. Default:
    /// [`DEFAULT_CONSENT_TIMEOUT`](crate::DEFAULT_CONSENT_TIMEOUT) (10 minutes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_mcp_oauth::{AuthorizationRequest, AuthorizationResponse, Authorizer, BoxFuture, Error, HttpClient};
    /// use tower_mcp_oauth::{ClientConfig, ErrorKind, OAuthLayer};
    /// # use bytes::Bytes;
    /// # use http_body_util::Full;
    /// # use mcp_oauth_testkit::scripted;
    /// # use tower::{Layer, ServiceExt};
    /// # use tower_mcp_oauth::OAuthBody;
    /// /// Asks a user who never answers.
    /// struct Forever;
    /// impl Authorizer for Forever {
    ///     fn authorize(&self, _: AuthorizationRequest, _: HttpClient) -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
    ///         Box::pin(std::future::pending())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let server = tower::service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
    /// #     Ok::<_, std::convert::Infallible>(scripted::flow_response(&req).unwrap_or_else(scripted::unauthorized))
    /// # });
    /// let layer = OAuthLayer::new(ClientConfig::new("http://localhost:3000/callback"), Forever)
    ///     .consent_timeout(Duration::from_secs(60));
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::default()).unwrap();
    /// let error = layer.layer(server).oneshot(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::ConsentTimeout, "{error:#}");
    /// # }
    /// ```
    pub fn consent_timeout(mut self, limit: Duration) -> Self {
        self.state_mut().limits.consent_timeout = limit;
        self
    }

    /// The timer the time limits run on. Default: [`TokioTimer`](crate::TokioTimer) with the
    /// `tokio` feature (on by default); without it, none, and the limits are not enforced
    /// until one is set. Any runtime's sleep fits (see [`Timer`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer, TokioTimer};
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .timer(TokioTimer);
    /// # let _ = layer;
    /// ```
    pub fn timer(mut self, timer: impl Timer) -> Self {
        self.state_mut().timer = Some(Arc::new(timer));
        self
    }

    /// The timer as the web API keeps it (`None`: limits not enforced), for its users' layers.
    #[cfg(feature = "web")]
    pub(crate) fn timer_option(mut self, timer: Option<Arc<dyn Timer>>) -> Self {
        self.state_mut().timer = timer;
        self
    }
}
