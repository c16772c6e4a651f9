//! The slow path: what a request goes through when the cached token is not enough. The first
//! request to an origin (adopt stored tokens first), a request whose token is due (refresh,
//! then send), and a `401`/`403 insufficient_scope` (one flow, one retry; and when a refreshed
//! token is refused for scopes it lacks, one step-up and one retry more).
//!
//! The hot path (a fresh token, one send) stays in [`service`](crate::OAuthService) and
//! [`ResponseFuture`](crate::ResponseFuture); everything here runs in a boxed future.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderValue, Method, Uri, Version};
use mcp_oauth_flow::dpop::{resource_nonce_challenge, DPOP};
use mcp_oauth_flow::token::{classify_refresh_failure, RefreshFailure};
use mcp_oauth_flow::{Error, ErrorKind};
use tower::ServiceExt;
use tracing::warn;

use crate::acquire::{flight_key, obtain};
use crate::body::OAuthBody;
use crate::bounds::{CallerBody, InnerService, ResponseBody};
use crate::cache::{Lookup, Provenance, Sent, Session};
use crate::classify::{may_need_authorization, needs_authorization, Verdict};
use crate::client::send_error;
use crate::dpop::{
    resource::{attach, attach_for},
    token::{refused, rejected},
};
use crate::head::{ProvedFor, SentHead};
use crate::markers::{AuthorizationFailed, BodyNotReplayable};
use crate::need::{refresh_cannot_meet, Need};
use crate::prepare::{prepare, Prepared};
use crate::shared::Shared;
use crate::state::LayerState;
use crate::stored::adopt_stored;
use crate::BoxFuture;

/// What is needed to send the request again: everything but the body, which
/// [`Prepared`] keeps.
pub(crate) struct RetryParts {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    /// The DPoP-bound tokens the layer's proof was last made for.
    proved_for: ProvedFor,
}

impl RetryParts {
    /// The head the request was sent with, its headers unpacked for changing.
    fn from_sent(head: SentHead) -> Self {
        let (method, uri, version, headers, extensions, proved_for) = head.unpack();
        Self {
            method,
            uri,
            version,
            headers,
            extensions,
            proved_for,
        }
    }

    /// Proves again for the tokens the request presents (a nonce retry, RFC 9449 §9): a fresh
    /// proof for the tokens the last one was made for, whatever the cache holds by now (a
    /// refresh may have replaced them meanwhile: looked up by the header, they would be found
    /// no more and the request would go without a proof).
    fn prove_again(&mut self, state: &LayerState) {
        let Some(header) = self.headers.get(AUTHORIZATION).cloned() else {
            return;
        };
        match self.proved_for.clone() {
            Some(tokens) => {
                let (method, uri) = (&self.method, &self.uri);
                let now = state.now();
                attach_for(
                    &state.dpop,
                    now,
                    &mut self.headers,
                    method,
                    uri,
                    header,
                    Some(tokens),
                );
            }
            None => self.authorize(state, header),
        }
    }

    /// Presents `session`'s tokens from now on, with a fresh DPoP proof when they are bound.
    fn authorize_as(&mut self, state: &LayerState, session: &Session) {
        self.proved_for = session.dpop_tokens();
        let header = session.authorization().clone();
        let (method, uri) = (&self.method, &self.uri);
        attach_for(
            &state.dpop,
            state.now(),
            &mut self.headers,
            method,
            uri,
            header,
            session.dpop_tokens(),
        );
    }

    /// Presents `header` from now on, with a fresh DPoP proof when its tokens are bound.
    fn authorize(&mut self, state: &LayerState, header: HeaderValue) {
        let now = state.now();
        let (cache, dpop) = (&state.cache, &state.dpop);
        attach(
            cache,
            dpop,
            now,
            &mut self.headers,
            &self.method,
            &self.uri,
            header,
        );
    }

    /// The request again, with `body`.
    fn request<B>(&self, body: B) -> http::Request<B> {
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        request
    }
}

/// Sends the request again with `body` (a replay of its body the caller took). When the
/// resource asks for a DPoP nonce (RFC 9449 §9) and the request carried a proof, it is sent
/// with a fresh proof carrying the nonce and another replay, at most `nonce_retries` times
/// more; a nonce challenge past that is a
/// [`DpopRejected`](mcp_oauth_flow::ErrorKind::DpopRejected) error, and a body that cannot be
/// replayed once more leaves the last challenge as the answer, marked
/// [`BodyNotReplayable`]: the caller sends the request again itself, and the nonce is
/// remembered for it.
async fn send_again<S, B, RB>(
    inner: S,
    state: &LayerState,
    parts: &mut RetryParts,
    prepared: &Prepared<B>,
    body: OAuthBody<B>,
    mut nonce_retries: u8,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    // The first send's body was taken by the caller, where it decided to send again; a body
    // that cannot be replayed once more after that: the last challenge is the answer.
    let mut body = Some(body);
    let mut last = None;
    loop {
        let Some(body) = body.take().or_else(|| prepared.replay()) else {
            let mut last: http::Response<RB> = last.ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidTransition,
                    "no request body to send again",
                )
            })?;
            last.extensions_mut().insert(BodyNotReplayable::new());
            return Ok(last);
        };
        let proved = parts.headers.contains_key(DPOP);
        let response = inner
            .clone()
            .oneshot(parts.request(body))
            .await
            .map_err(|e| send_error(&parts.uri, e))?;
        if !proved {
            return Ok(response);
        }
        state.dpop.note_response(&parts.uri, response.headers());
        if resource_nonce_challenge(response.status(), response.headers()).is_none() {
            return Ok(response);
        }
        if nonce_retries == 0 {
            return Err(rejected(&parts.uri));
        }
        last = Some(response);
        nonce_retries -= 1;
        // The nonce is remembered (above): a fresh proof for the same token carries it.
        parts.prove_again(state);
    }
}

pub(crate) struct RetryContext<S, B> {
    /// The layer's state and the spare service a retry is sent through.
    pub(crate) shared: Arc<Shared<S>>,
    /// The request's head as sent, unpacked only if it is sent again.
    pub(crate) head: SentHead,
    pub(crate) prepared: Prepared<B>,
    pub(crate) sent: Sent,
}

impl<S, B> RetryContext<S, B> {
    /// Remembers the nonce an answer to a proved request brings.
    pub(crate) fn note_answer(&self, headers: &HeaderMap) {
        // A bearer request never looks.
        if self.head.proved() {
            self.shared
                .state
                .dpop
                .note_response(&self.head.uri(), headers);
        }
    }
}

// The slow paths' futures are several kilobytes each. Built and boxed where they are chosen (in
// `route::route`, or in `ResponseFuture::poll`, which is inlined into its caller's), the
// caller's frame reserves room for them on every request, the hot path's included: call's frame
// was 12.5 KB, with a probe write on each of its pages, and the inner service's frames ran
// kilobytes deeper than the bare client's, over stack lines and pages no bare call touches.
// So each is started in a frame of its own, which only a slow path enters.

/// [`first_contact`], boxed in its own frame (see above).
#[cold]
#[inline(never)]
pub(crate) fn start_first_contact<S, B, RB>(
    state: Arc<LayerState>,
    inner: S,
    parts: http::request::Parts,
    body: B,
) -> BoxFuture<'static, Result<http::Response<RB>, Error>>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    Box::pin(first_contact(state, inner, parts, body))
}

/// [`refresh_then_send`], boxed in its own frame (see above).
#[cold]
#[inline(never)]
pub(crate) fn start_refresh_then_send<S, B, RB>(
    state: Arc<LayerState>,
    inner: S,
    parts: http::request::Parts,
    body: B,
    sent: Sent,
) -> BoxFuture<'static, Result<http::Response<RB>, Error>>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    Box::pin(refresh_then_send(state, inner, parts, body, sent))
}

/// [`recover`], boxed in its own frame (see above).
#[cold]
#[inline(never)]
pub(crate) fn start_recovery<S, B, RB>(
    context: RetryContext<S, B>,
    first: http::Response<RB>,
    verdict: Verdict,
) -> BoxFuture<'static, Result<http::Response<RB>, Error>>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    Box::pin(recover(context, first, verdict))
}

/// Sends the first request to an origin: adopts stored tokens (an earlier run's, another
/// process's) first, then sends like any request, refreshing first if they are due.
pub(crate) async fn first_contact<S, B, RB>(
    state: Arc<LayerState>,
    inner: S,
    mut parts: http::request::Parts,
    body: B,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    adopt_stored(&state, &parts.uri).await;
    let attached = match state.cache.lookup(&parts.uri, || state.now()) {
        Lookup::Stale(sent) => return refresh_then_send(state, inner, parts, body, sent).await,
        Lookup::Fresh(header, sent, tokens) => {
            let now = state.now();
            let (method, uri) = (&parts.method, &parts.uri);
            let headers = &mut parts.headers;
            attach_for(
                &state.dpop,
                now,
                headers,
                method,
                uri,
                header,
                tokens.clone(),
            );
            (sent, tokens)
        }
        // No token: a `DPoP` header the request carries is the caller's.
        Lookup::Missing => return send_and_recover(state, inner, parts, body, None).await,
    };
    send_and_recover(state, inner, parts, body, Some(attached)).await
}

/// Sends a request whose token is due for refresh: refresh (joining any flow already running),
/// then send, then recover from a `401`/`403` like any other request.
pub(crate) async fn refresh_then_send<S, B, RB>(
    state: Arc<LayerState>,
    inner: S,
    mut parts: http::request::Parts,
    body: B,
    sent: Sent,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    let session = match obtain(&state, inner.clone(), &parts.uri, sent, Need::Expiring).await {
        Ok(session) => session,
        // The refresh could not happen now, and the server said nothing about the grant:
        // every credential is kept, and the old token is used while it lasts.
        Err(e) if old_token_may_serve(&e) => match state.cache.session(&parts.uri) {
            Some(s) if !s.tokens.is_expired(state.now(), std::time::Duration::ZERO) => {
                warn!(error = %e, "refresh failed; using the current token while it lasts");
                s
            }
            _ => return Err(e),
        },
        Err(e) => return Err(e),
    };
    // The header, its proof and the epoch a refusal is judged by, from the one session.
    let (method, uri) = (&parts.method, &parts.uri);
    let header = session.authorization().clone();
    let tokens = session.dpop_tokens();
    attach_for(
        &state.dpop,
        state.now(),
        &mut parts.headers,
        method,
        uri,
        header,
        tokens.clone(),
    );
    let sent = Sent {
        epoch: session.epoch,
    };
    send_and_recover(state, inner, parts, body, Some((sent, tokens))).await
}

/// Whether a failed proactive refresh may fall back to the current token while it is valid.
///
/// Only the token endpoint's refusal says the grant or the client cannot be used (RFC 6749
/// §5.2: `invalid_grant`, `invalid_client` and the other OAuth errors, or a bare `401`; see
/// [`classify_refresh_failure`]; the flow then drops the tokens and authorizes afresh, so the
/// cache holds nothing to fall back to); a network error, a `5xx`,
/// a `429`, or an answer that could not be read (malformed, oversized, an unexpected redirect)
/// says nothing about it, so the token the server issued is still good until it expires. A
/// local store failure is different: it needs someone to fix it, so it surfaces at once (unless
/// its cause is marked transient).
fn old_token_may_serve(error: &Error) -> bool {
    error.is_transient()
        || (error.kind() != ErrorKind::Store
            && classify_refresh_failure(error) == RefreshFailure::Transient)
}

/// Sends a prepared request through a fresh clone of the inner service, then recovers from a
/// `401`/`403` like the ordinary path does. `attached`: the tokens the layer attached, and
/// the DPoP-bound ones it proved for (`None`: none, the request goes as the caller made it).
async fn send_and_recover<S, B, RB>(
    state: Arc<LayerState>,
    inner: S,
    parts: http::request::Parts,
    body: B,
    attached: Option<(Sent, ProvedFor)>,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    let (body, prepared) = prepare(body, state.max_replay_bytes);
    let mut head = SentHead::keep(&parts);
    // Attaching a token replaces any `DPoP` header with the layer's proof (or none): one there
    // now is the layer's. Without a token it is the caller's, and so is a nonce it is asked for.
    let sent = match attached {
        Some((sent, proved_for)) => {
            if let (Some(tokens), true) = (proved_for, parts.headers.contains_key(DPOP)) {
                head.carried_proof(tokens);
            }
            sent
        }
        None => Sent::default(),
    };
    let response = inner
        .clone()
        .oneshot(http::Request::from_parts(parts, body))
        .await
        .map_err(|e| send_error(&head.uri(), e))?;
    let context = RetryContext {
        shared: Arc::new(Shared::with_spare(state, inner)),
        head,
        prepared,
        sent,
    };
    match needs_authorization(response.status(), response.headers()) {
        Verdict::PassOn => {
            context.note_answer(response.headers());
            Ok(response)
        }
        verdict => recover(context, response, verdict).await,
    }
}

/// Gets a token that meets the need (joining the flow for the origin, or skipping it when
/// another caller already got a newer token), then retries once; a retry whose refreshed token
/// is refused for scopes it lacks gets one step-up and one retry more.
pub(crate) async fn recover<S, B, RB>(
    context: RetryContext<S, B>,
    first: http::Response<RB>,
    verdict: Verdict,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    let RetryContext {
        shared,
        head,
        prepared,
        sent,
    } = context;
    let state = Arc::clone(&shared.state);
    let Some(inner) = shared.spare() else {
        return Err(Error::new(
            ErrorKind::InvalidTransition,
            "no inner service was kept for the retry",
        ));
    };
    let proved = head.proved();
    let mut parts = RetryParts::from_sent(head);
    // A proof without the resource's nonce: the same request once more with it, no new token
    // (RFC 9449 §9). What that answers is then handled like a first answer.
    let (first, verdict) = match verdict {
        // The layer's proof refused for good: no new token fixes it, and each request would
        // otherwise refresh (or ask the user) for nothing. The caller's own proof: its answer
        // is the caller's. A request without any proof falls through to a plain `401`.
        Verdict::DpopRefused(_) if proved => {
            // A server may send the next nonce with any answer (RFC 9449 §8.2), a refusal of a
            // stale one included: kept, the next request's proof carries it.
            state.dpop.note_response(&parts.uri, first.headers());
            return Err(refused(&parts.uri));
        }
        Verdict::DpopRefused(_) if parts.headers.contains_key(DPOP) => return Ok(first),
        // A proof the layer did not make (the caller's own `DPoP` header, beside the layer's
        // bearer token or no token at all): its nonce is the caller's to answer with a proof
        // of its own key; retried by the layer, the request would go with the caller's
        // `Authorization` or none, and a token still valid could be refreshed for nothing.
        // A request without any proof falls through: its nonce challenge is a plain `401`.
        Verdict::DpopNonce { .. } if !proved && parts.headers.contains_key(DPOP) => {
            return Ok(first)
        }
        Verdict::DpopNonce { nonce, .. } if parts.headers.contains_key(DPOP) => {
            state.dpop.remember_nonce(&parts.uri, nonce);
            parts.prove_again(&state);
            let Some(body) = prepared.replay() else {
                let mut first = first;
                first.extensions_mut().insert(BodyNotReplayable::new());
                return Ok(first);
            };
            let again = send_again(inner.clone(), &state, &mut parts, &prepared, body, 0).await?;
            let verdict = needs_authorization(again.status(), again.headers());
            (again, verdict)
        }
        verdict => (first, verdict),
    };
    let (mut first, mut verdict, mut sent) = (first, verdict, sent);
    // At most two rounds: the flow the answer asks for, then, when a `401` answered the tokens
    // a refresh just made with scopes they lack, one step-up (see `refresh_cannot_meet`).
    loop {
        let (need, scope) = match verdict {
            Verdict::PassOn => return Ok(first),
            Verdict::Malformed(e) => return Err(e),
            // The proof the nonce retry carried refused for good.
            Verdict::DpopRefused(_) if parts.headers.contains_key(DPOP) => {
                state.dpop.note_response(&parts.uri, first.headers());
                return Err(refused(&parts.uri));
            }
            Verdict::DpopRefused(challenge) => (Need::Unauthorized(challenge), None),
            // A nonce challenge to a request without a proof is a plain `401`.
            Verdict::DpopNonce { challenge, .. } => (Need::Unauthorized(challenge), None),
            Verdict::Unauthorized(challenge) => (Need::Unauthorized(challenge), None),
            Verdict::InsufficientScope(c) => {
                let scope = c.scope().unwrap_or("").to_owned();
                (Need::InsufficientScope(c), Some(scope))
            }
        };
        let step_up = scope.is_some();
        let key = flight_key(&parts.uri);
        // The tokens the retry carries, with its header in one snapshot, for a second look at
        // its answer. The step-up bound is counted by the flow that authorizes (see `acquire`),
        // not here: callers that join one step-up flow count once between them.
        let carried = match obtain(&state, inner.clone(), &parts.uri, sent, need).await {
            Ok(session) => session,
            Err(e) if step_up => {
                first.extensions_mut().insert(AuthorizationFailed::new(e));
                return Ok(first);
            }
            Err(e) => return Err(e),
        };
        // Taken once per round, here: checked here and taken again later, a first attempt
        // still sending the body past the replay cap in between would leave the retry with
        // nothing to send, and the `401` (with its marker) would be lost.
        let Some(body) = prepared.replay() else {
            first.extensions_mut().insert(BodyNotReplayable::new());
            return Ok(first);
        };
        // The first response's body is not read: dropping it may cost its pooled connection, a
        // price paid once per flow.
        drop(first);
        parts.authorize_as(&state, &carried);
        // A new DPoP token's first request may meet the resource's nonce challenge: one more
        // try.
        let response = send_again(inner.clone(), &state, &mut parts, &prepared, body, 1).await?;
        if let Some(scope) = scope {
            if !may_need_authorization(response.status()) {
                state.flights.step_up_succeeded(&key, &scope);
            }
            return Ok(response);
        }
        // Refreshed tokens refused again for scopes they lack: a refresh cannot add scopes, so
        // every later request would refresh and fail the same way. Only tokens of a refresh,
        // which asked no one: after a new login granted fewer scopes than asked, the user is
        // not asked again within the same request.
        let escalate = match needs_authorization(response.status(), response.headers()) {
            Verdict::Unauthorized(Some(challenge))
                if carried.provenance == Provenance::Refreshed
                    && refresh_cannot_meet(&challenge, &carried.tokens) =>
            {
                Some((
                    Sent {
                        epoch: carried.epoch,
                    },
                    challenge,
                ))
            }
            _ => None,
        };
        let Some((retried_with, challenge)) = escalate else {
            return Ok(response);
        };
        (first, verdict, sent) = (
            response,
            Verdict::InsufficientScope(challenge),
            retried_with,
        );
    }
}

#[cfg(test)]
mod tests;
