//! [`OAuthService`]: attaches tokens, and hands `401`/`403` responses to the recovery path.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http_body::Body;
use mcp_oauth_flow::{BoxError, Error, ErrorKind};
use tower_service::Service;

use crate::body::{prepare, OAuthBody};
use crate::cache::{Cache, Sent};
use crate::driver::FlowDeps;
use crate::future::{ResponseFuture, RetryContext, RetryParts};
use crate::layer::OAuthLayer;

/// State shared by every service made from one layer.
pub(crate) struct Shared {
    pub(crate) deps: FlowDeps,
    pub(crate) cache: Arc<Cache>,
    pub(crate) max_replay_bytes: usize,
    pub(crate) max_response_bytes: usize,
}

/// The service [`OAuthLayer`] produces. See the layer for what it does.
///
/// `poll_ready` only delegates to the inner service: it never waits on a flow, so it never
/// holds a `Buffer` slot or a `ConcurrencyLimit` permit while a user is at the browser.
pub struct OAuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for OAuthService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
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
    pub(crate) fn new(inner: S, layer: &OAuthLayer) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                deps: layer.deps(),
                cache: Arc::clone(&layer.cache),
                max_replay_bytes: layer.max_replay_bytes,
                max_response_bytes: layer.max_response_bytes,
            }),
        }
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
}

pub(crate) fn transport_error(e: impl Into<BoxError>) -> Error {
    let e = e.into();
    Error::new(ErrorKind::Transport, e.to_string()).with_source(e)
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
        let sent = match self.shared.cache.lookup(&parts.uri) {
            Some((header, sent)) => {
                parts.headers.insert(AUTHORIZATION, header);
                sent
            }
            None => Sent::default(),
        };
        let (body, prepared) = prepare(body, self.shared.max_replay_bytes);
        let retry = RetryParts::copy(&parts);
        let future = inner.call(http::Request::from_parts(parts, body));
        ResponseFuture::new(
            future,
            RetryContext {
                inner,
                shared: Arc::clone(&self.shared),
                parts: retry,
                prepared,
                sent,
            },
        )
    }
}
