//! [`route`]: the layer's hot path, one function for [`OAuthService`](crate::OAuthService)
//! and a shared `&OAuthService`; [`Route`] is what differs between the two.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{AUTHORIZATION, HOST};
use http::request::Parts;
use http::{HeaderValue, Uri};
use mcp_oauth_flow::dpop::DPOP;
use mcp_oauth_flow::token::TokenSet;
use tower_service::Service;

use crate::body::OAuthBody;
use crate::bounds::{CallerBody, InnerService, ResponseBody};
use crate::cache::{Lookup, Sent};
use crate::future::ResponseFuture;
use crate::head::SentHead;
use crate::origin::host_header_matches;
use crate::prepare::{pass_on, prepare};
use crate::recovery::{start_first_contact, start_refresh_then_send, RetryContext};
use crate::shared::Shared;
use crate::state::LayerState;

/// The future of the service a [`Route`] sends through.
pub(crate) type SenderFuture<R, S, B> =
    <<R as Route<S, B>>::Sender as Service<http::Request<OAuthBody<B>>>>::Future;

/// How a call reaches the inner service: through the service's own (`OAuthService`), or
/// through a reference to it (`&OAuthService`, as hyper-util's `&Client`). [`route`] is the
/// one hot path; this is what differs between the two.
pub(crate) trait Route<S, B> {
    /// What the request is sent through: `S`, or `&S`.
    type Sender: Service<http::Request<OAuthBody<B>>>;

    /// The layer's state and the spare inner service, shared with every future.
    fn shared(&self) -> &Arc<Shared<S>>;

    /// What to send with a request to `uri` (see `Cache::lookup`).
    fn lookup(&mut self, uri: &Uri, now: impl FnOnce() -> SystemTime) -> Lookup;

    /// The inner service (a spare clone of it is kept for retries).
    fn inner(&self) -> &S;

    /// Sends `request` through the inner service.
    fn send(
        &mut self,
        request: http::Request<OAuthBody<B>>,
    ) -> <Self::Sender as Service<http::Request<OAuthBody<B>>>>::Future;

    /// An inner service of the slow path's own, holding no reservation.
    fn detached(&mut self) -> S;
}

/// The layer's hot path, for both [`Route`]s: looks the token up, adds it, keeps the head for a
/// retry, and sends; the slow paths (first contact, refresh) start boxed futures of their own.
// The lookup, the head's keeping and the body's wrapping are inlined here (`#[inline(always)]`
// on `Cache::lookup`, `SentHead::keep` and `prepare`): a call over loopback runs more code than
// the core's L1 instruction cache holds, so the layer's code is fetched again on every call,
// and in one function its hot lines lie together, where the fetches stream, rather than in four
// places of the binary. Measured alternated: end to end, sequential, 1.0115x against 1.015x
// (median of six runs each); the head's packing itself stays out of line (inlined too, it cost
// 270 more instructions). The owned service's lookup (`Reader::lookup`) is left to the
// compiler, which keeps it out of line: forced in, it saved 19 instructions and measured no
// better (cloned per call, end to end 1.016x/1.016x/1.014x against 1.018x/1.012x/1.013x; (a)
// 1.205x-1.223x against 1.181x-1.210x).
#[inline(always)]
pub(crate) fn route<R, S, B, RB>(
    this: &mut R,
    request: http::Request<B>,
) -> ResponseFuture<S, B, SenderFuture<R, S, B>>
where
    R: Route<S, B>,
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    // Outside the servers the layer is limited to: untouched, no store, no flow.
    let outside = {
        let shared = this.shared();
        shared.limited
            && shared
                .state
                .servers
                .as_ref()
                .is_some_and(|servers| !servers.covers(request.uri()))
    };
    if outside {
        return untouched(this, request);
    }
    // Its own reference for the future; borrowed from `this`, it would keep `this` from the
    // lookup and the send below.
    let shared = Arc::clone(this.shared());
    let state = &shared.state;
    let (mut parts, body) = request.into_parts();
    let clock = &shared.clock;
    // The caller's head is kept before the layer adds its headers (those are kept as
    // values), straight into the variable the future takes it from.
    let (mut head, names_a_host) = SentHead::keep_noting_host(&parts);
    // Steered by its `Host` header to another authority than its URI's: untouched as well.
    if names_a_host && steered_elsewhere(&parts) {
        return untouched(this, http::Request::from_parts(parts, body));
    }
    let sent = match this.lookup(&parts.uri, || clock.now_coarse()) {
        Lookup::Fresh(header, sent, dpop) => {
            // A bearer token costs nothing more; a DPoP-bound one gets its fresh proof.
            if let Some(tokens) = dpop {
                prove(state, &tokens, &mut parts, &mut head, &header, clock.now());
            }
            parts.headers.insert(AUTHORIZATION, header);
            sent
        }
        // The slow paths below keep the head their own way; the copy above was wasted on
        // them, once per origin or per refresh.
        // A scheme the inner client does not read as `http`/`https` (set apart, in capitals):
        // no token, no flow, whatever origin its letters spell.
        Lookup::Missing
            if parts.uri.scheme().is_some() && crate::origin::web_scheme(&parts.uri).is_none() =>
        {
            return untouched(this, http::Request::from_parts(parts, body));
        }
        Lookup::Missing if !state.cache.origin_checked(&parts.uri) => {
            // The first request to this origin: look in the store first (once).
            let state = Arc::clone(state);
            let future = start_first_contact(state, this.detached(), parts, body);
            return ResponseFuture::recovering(future);
        }
        Lookup::Missing => Sent::default(),
        Lookup::Stale(sent) => {
            // Refresh first, through a service of the slow path's own (an owned service gives
            // its reservation back), so no Buffer slot or permit is held during the refresh.
            let state = Arc::clone(state);
            let future = start_refresh_then_send(state, this.detached(), parts, body, sent);
            return ResponseFuture::recovering(future);
        }
    };
    let (body, prepared) = prepare(body, shared.max_replay_bytes);
    // A retry goes through a clone of the inner service, kept at the first request.
    shared.keep_spare(this.inner());
    let future = this.send(http::Request::from_parts(parts, body));
    ResponseFuture::new(
        future,
        RetryContext {
            shared,
            head,
            prepared,
            sent,
        },
    )
}

/// Sends `request` as the caller made it: no token, no store, no flow on its `401` (outside
/// the servers the layer is limited to, or steered elsewhere by its `Host`). Out of line, as
/// the few requests that take it are.
#[cold]
#[inline(never)]
fn untouched<R, S, B>(
    this: &mut R,
    request: http::Request<B>,
) -> ResponseFuture<S, B, SenderFuture<R, S, B>>
where
    R: Route<S, B>,
    S: Service<http::Request<OAuthBody<B>>>,
    B: CallerBody,
{
    let uri = request.uri().clone();
    let future = this.send(request.map(pass_on));
    ResponseFuture::passthrough(future, uri)
}

/// Whether the request's `Host` header names another authority than its URI (see
/// `origin::host_header_matches`). Out of line: a caller rarely sets `Host` (hyper-util writes
/// it from the URI).
#[cold]
#[inline(never)]
fn steered_elsewhere(parts: &Parts) -> bool {
    // Every value: a second `Host` (a gateway appending a copied one) is written out too, and
    // a lenient proxy may route by it.
    let mut hosts = parts.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => !host_header_matches(&parts.uri, host),
        _ => true,
    }
}

/// Sets a fresh DPoP proof (RFC 9449 §7.1) on a request presenting DPoP-bound `tokens` with
/// `authorization`, and keeps both for a retry (none when no proof could be signed, see
/// `resource_proof`).
///
/// Out of line and cold: the hot path is a bearer token's, and this branch, written in `route`,
/// put a kilobyte of code no bearer request runs between the lines each of them runs.
#[cold]
#[inline(never)]
fn prove(
    state: &LayerState,
    tokens: &Arc<TokenSet>,
    parts: &mut Parts,
    head: &mut SentHead,
    authorization: &HeaderValue,
    now: SystemTime,
) {
    let Some(proof) = state
        .dpop
        .resource_proof(tokens, &parts.method, &parts.uri, now)
    else {
        return;
    };
    parts.headers.insert(DPOP, proof.clone());
    head.set_by_layer(authorization.clone(), proof, Arc::clone(tokens));
}
