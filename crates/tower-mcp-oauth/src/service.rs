//! [`OAuthService`]: attaches tokens, and hands `401`/`403` responses to the recovery path.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http_body::Body;
use mcp_oauth_flow::{BoxError, Error, ErrorKind, RefreshPolicy, TokenSet};
use tower_service::Service;

use crate::body::{prepare, OAuthBody};
use crate::cache::{Cache, Lookup, Sent};
use crate::driver::FlowDeps;
use crate::flight::{Flights, Limits};
use crate::future::{first_contact, refresh_then_send, ResponseFuture, RetryContext, RetryParts};
use crate::layer::{Clock, OAuthLayer, Spawn};

/// State shared by every service made from one layer.
pub(crate) struct Shared {
    pub(crate) deps: FlowDeps,
    pub(crate) cache: Arc<Cache>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) clock: Clock,
    pub(crate) refresh_policy: RefreshPolicy,
    pub(crate) limits: Limits,
    pub(crate) max_replay_bytes: usize,
    pub(crate) max_response_bytes: usize,
    pub(crate) spawn: Option<Spawn>,
}

impl Shared {
    /// When to refresh `tokens`, with a random jitter sample so a fleet spreads out.
    pub(crate) fn refresh_at(&self, tokens: &TokenSet) -> Option<SystemTime> {
        let mut bytes = [0u8; 4];
        let sample = match getrandom::getrandom(&mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
            Err(_) => 0.0,
        };
        self.refresh_policy.refresh_at(tokens, sample)
    }

    /// Whether `tokens` are due for refresh at `now` (the earliest point, before jitter).
    pub(crate) fn refresh_due(&self, tokens: &TokenSet, now: SystemTime) -> bool {
        self.refresh_policy
            .refresh_at(tokens, 0.0)
            .is_some_and(|at| at <= now)
    }
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
                flights: Arc::clone(&layer.flights),
                clock: Arc::clone(&layer.clock),
                refresh_policy: layer.refresh_policy,
                limits: layer.limits,
                max_replay_bytes: layer.max_replay_bytes,
                max_response_bytes: layer.max_response_bytes,
                spawn: layer.spawn.clone(),
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

    /// How many authorization or refresh flows this service's layer has started so far: one
    /// per origin however many callers needed it.
    pub fn flows_started(&self) -> u64 {
        self.shared.flights.started()
    }
}

/// An error of the inner service. Its text is the source's, not repeated here.
pub(crate) fn transport_error(e: impl Into<BoxError>) -> Error {
    Error::new(ErrorKind::Transport, "the inner service failed").with_source(e)
}

/// An error of the inner service while sending a request to `uri`.
pub(crate) fn send_error(uri: &http::Uri, e: impl Into<BoxError>) -> Error {
    Error::new(
        ErrorKind::Transport,
        format!("sending the request to {uri} failed"),
    )
    .with_source(e)
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
        let clock = &self.shared.clock;
        let sent = match self.shared.cache.lookup(&parts.uri, || clock()) {
            Lookup::Fresh(header, sent) => {
                parts.headers.insert(AUTHORIZATION, header);
                sent
            }
            Lookup::Missing if !self.shared.cache.origin_checked(&parts.uri) => {
                // The first request to this origin: look in the store first (once).
                let unreserved = inner.clone();
                drop(inner);
                let future = first_contact(Arc::clone(&self.shared), unreserved, parts, body);
                return ResponseFuture::recovering(Box::pin(future));
            }
            Lookup::Missing => Sent::default(),
            Lookup::Stale(sent) => {
                // Refresh first. The reserved service is released (a clone is sent through
                // `Oneshot` later), so no Buffer slot or permit is held during the refresh.
                let unreserved = inner.clone();
                drop(inner);
                let future =
                    refresh_then_send(Arc::clone(&self.shared), unreserved, parts, body, sent);
                return ResponseFuture::recovering(Box::pin(future));
            }
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
