//! Sending the layer's own sub-requests through the inner service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mcp_oauth_flow::{BoxError, Error, ErrorKind};
use tower::ServiceExt;
use tower_service::Service;

use crate::body::OAuthBody;
use crate::timer::{human, within, Timer};
use crate::BoxFuture;

type SendFn = dyn Fn(http::Request<Bytes>) -> BoxFuture<'static, Result<http::Response<Bytes>, Error>>
    + Send
    + Sync;

/// The HTTP client an [`Authorizer`](crate::Authorizer) (and a web login) receives to talk to
/// the authorization server: it sends a request and returns the response with its body
/// collected, up to a byte limit.
///
/// The layer builds it over a clone of its inner service (never back through the layer), so
/// an authorizer's requests go out the way the layer's own discovery and token requests do:
/// each through `Oneshot` on a fresh clone, waiting for readiness like any other caller, and
/// composing with `Buffer` and `ConcurrencyLimit`.
///
/// ```
/// use bytes::Bytes;
/// use tower_mcp_oauth::HttpClient;
/// # tokio_test::block_on(async {
/// let client = HttpClient::from_fn(|req| async move {
///     Ok(http::Response::new(Bytes::from(format!("you asked for {}", req.uri()))))
/// });
/// let resp = client.send(http::Request::get("http://localhost/x").body(Bytes::new()).unwrap()).await.unwrap();
/// assert_eq!(resp.body(), "you asked for http://localhost/x");
/// # });
/// ```
#[derive(Clone)]
pub struct HttpClient {
    send: Arc<SendFn>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Sends a request and returns the response with its body collected.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, Error> {
        (self.send)(request).await
    }

    /// A client from a function, for tests and custom transports.
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(http::Request<Bytes>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<http::Response<Bytes>, Error>> + Send + 'static,
    {
        Self {
            send: Arc::new(move |req| Box::pin(f(req))),
        }
    }

    /// A client over a tower service: each request goes out through `Oneshot` on a fresh clone
    /// of `service`, and each response body is collected up to `max_body` bytes (more is an
    /// [`ErrorKind::BodyTooLarge`] error). This is how the layer sends its own sub-requests, and
    /// how code outside the layer (a web app's start/complete step) sends them the same way.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::service_fn;
    /// use tower_mcp_oauth::{ErrorKind, HttpClient, OAuthBody};
    /// # tokio_test::block_on(async {
    /// // A stand-in for hyper-util's Client.
    /// let service = service_fn(|_req: http::Request<OAuthBody<Full<Bytes>>>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("0123456789"))))
    /// });
    /// let get = || http::Request::get("http://localhost/x").body(Bytes::new()).unwrap();
    /// let client = HttpClient::from_service(service.clone(), 64);
    /// assert_eq!(client.send(get()).await.unwrap().body(), "0123456789");
    /// let small = HttpClient::from_service(service, 4);
    /// assert_eq!(small.send(get()).await.unwrap_err().kind(), ErrorKind::BodyTooLarge);
    /// # });
    /// ```
    pub fn from_service<S, B, RB>(service: S, max_body: usize) -> Self
    where
        S: Service<http::Request<OAuthBody<B>>, Response = http::Response<RB>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Send + 'static,
        RB: Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Into<BoxError>,
    {
        // The Mutex only makes the clone source `Sync`; it is held for a `clone()`, never
        // across an await.
        let service = Mutex::new(service);
        Self {
            send: Arc::new(move |req: http::Request<Bytes>| {
                let svc = service.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let url = crate::origin::loggable(req.uri());
                Box::pin(async move {
                    let response = svc
                        .oneshot(req.map(OAuthBody::full))
                        .await
                        .map_err(|e| transport(&url, e.into()))?;
                    collect(response, max_body, &url).await
                })
            }),
        }
    }

    /// This client with a time limit on each request: the whole exchange, from sending to the
    /// last byte of the body, must fit in `limit` on `timer`'s clock, or the request fails with
    /// [`ErrorKind::Timeout`] naming the URL and the limit. The layer puts one on every client
    /// it hands its flows and authorizers (see
    /// [`OAuthLayer::request_timeout`](crate::OAuthLayer::request_timeout)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::{ErrorKind, HttpClient, TokioTimer};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // A server that never answers.
    /// let stalled = HttpClient::from_fn(|_req| std::future::pending());
    /// let client = stalled.with_timeout(Duration::from_secs(30), Arc::new(TokioTimer));
    /// let request = http::Request::get("http://127.0.0.1:1/.well-known/x?q=1").body(Bytes::new()).unwrap();
    /// let error = client.send(request).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Timeout);
    /// assert!(error.is_transient());
    /// assert_eq!(error.to_string(), "no complete response from http://127.0.0.1:1/.well-known/x within 30 s");
    /// # }
    /// ```
    pub fn with_timeout(self, limit: Duration, timer: Arc<dyn Timer>) -> Self {
        let inner = self.send;
        Self {
            send: Arc::new(move |req: http::Request<Bytes>| {
                let url = crate::origin::loggable(req.uri());
                let exchange = inner(req);
                let timer = Arc::clone(&timer);
                Box::pin(async move {
                    within(Some(timer.as_ref()), limit, exchange)
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                ErrorKind::Timeout,
                                format!("no complete response from {url} within {}", human(limit)),
                            ))
                        })
                })
            }),
        }
    }

    /// [`with_timeout`](Self::with_timeout) on `timer` when there is one (none: the limits
    /// are not enforced, as the layer's are not without a timer).
    pub(crate) fn bounded_by(self, limit: Duration, timer: Option<&Arc<dyn Timer>>) -> Self {
        match timer {
            Some(timer) => self.with_timeout(limit, Arc::clone(timer)),
            None => self,
        }
    }
}

/// The URL of a sub-request as it may appear in errors and logs: without the query, where an
/// authorization request carries `state` and the PKCE challenge.
fn transport(url: &str, e: BoxError) -> Error {
    Error::new(ErrorKind::Transport, format!("request to {url} failed")).with_source(e)
}

/// Collects a response body, refusing more than `max` bytes.
async fn collect<RB>(
    response: http::Response<RB>,
    max: usize,
    url: &str,
) -> Result<http::Response<Bytes>, Error>
where
    RB: Body,
    RB::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(http::Response::from_parts(parts, collected.to_bytes())),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(Error::new(
            ErrorKind::BodyTooLarge,
            format!("{url} answered with more than {max} bytes"),
        )
        .with_status(parts.status)),
        Err(e) => Err(transport(url, e)),
    }
}

/// An error of the inner service. Its text is the source's, not repeated here.
pub(crate) fn transport_error(e: impl Into<BoxError>) -> Error {
    Error::new(ErrorKind::Transport, "the inner service failed").with_source(e)
}

/// An error of the inner service while sending a caller's request to `uri`.
pub(crate) fn send_error(uri: &http::Uri, e: impl Into<BoxError>) -> Error {
    Error::new(
        ErrorKind::Transport,
        format!(
            "sending the request to {} failed",
            crate::origin::loggable(uri)
        ),
    )
    .with_source(e)
}
