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
