//! [`OAuthService`]: attaches tokens, and hands `401`/`403` responses to the recovery path.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http_body::Body;
use mcp_oauth_flow::{BoxError, Error};
use tower_service::Service;

use crate::body::{prepare, OAuthBody};
use crate::cache::{Lookup, Sent};
use crate::client::transport_error;
use crate::future::ResponseFuture;
use crate::recovery::{first_contact, refresh_then_send, RetryContext, RetryParts};
use crate::state::LayerState;

/// The service [`OAuthLayer`](crate::OAuthLayer) produces. See the layer for what it does.
///
/// `poll_ready` only delegates to the inner service: it never waits on a flow, so it never
/// holds a `Buffer` slot or a `ConcurrencyLimit` permit while a user is at the browser.
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
///   says why the layer did not get past it.
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
/// # });
/// ```
pub struct OAuthService<S> {
    inner: S,
    state: Arc<LayerState>,
}

impl<S: Clone> Clone for OAuthService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            state: Arc::clone(&self.state),
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
        Self { inner, state }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// How many authorization or refresh flows this service's layer has started so far: one
    /// per origin however many callers needed it.
    pub fn flows_started(&self) -> u64 {
        self.state.flights.started()
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
        // The ready service goes into the future; a clone stays for the next call
        // (tower-service docs, "Be careful when cloning inner services").
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        let (mut parts, body) = request.into_parts();
        let clock = &self.state.clock;
        let sent = match self.state.cache.lookup(&parts.uri, || clock()) {
            Lookup::Fresh(header, sent) => {
                parts.headers.insert(AUTHORIZATION, header);
                sent
            }
            Lookup::Missing if !self.state.cache.origin_checked(&parts.uri) => {
                // The first request to this origin: look in the store first (once).
                let unreserved = inner.clone();
                drop(inner);
                let future = first_contact(Arc::clone(&self.state), unreserved, parts, body);
                return ResponseFuture::recovering(Box::pin(future));
            }
            Lookup::Missing => Sent::default(),
            Lookup::Stale(sent) => {
                // Refresh first. The reserved service is released (a clone is sent through
                // `Oneshot` later), so no Buffer slot or permit is held during the refresh.
                let unreserved = inner.clone();
                drop(inner);
                let future =
                    refresh_then_send(Arc::clone(&self.state), unreserved, parts, body, sent);
                return ResponseFuture::recovering(Box::pin(future));
            }
        };
        let (body, prepared) = prepare(body, self.state.max_replay_bytes);
        let retry = RetryParts::copy(&parts);
        let future = inner.call(http::Request::from_parts(parts, body));
        ResponseFuture::new(
            future,
            RetryContext {
                inner,
                state: Arc::clone(&self.state),
                parts: retry,
                prepared,
                sent,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;
    use mcp_oauth_flow::{ClientConfig, ErrorKind};
    use tower::{service_fn, ServiceExt};
    use tower_layer::Layer;

    use crate::{HeadlessAuthorizer, OAuthBody, OAuthLayer};

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
