//! The slow path: what a request goes through when the cached token is not enough. The first
//! request to an origin (adopt stored tokens first), a request whose token is due (refresh,
//! then send), and a `401`/`403 insufficient_scope` (one flow, one retry).
//!
//! The hot path (a fresh token, one send) stays in [`service`](crate::OAuthService) and
//! [`ResponseFuture`](crate::ResponseFuture); everything here runs in a boxed future.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use mcp_oauth_flow::token::{classify_refresh_failure, RefreshFailure};
use mcp_oauth_flow::{Error, ErrorKind};
use tower::ServiceExt;
use tracing::warn;

use crate::acquire::{flight_key, obtain};
use crate::body::{prepare, Prepared};
use crate::bounds::{CallerBody, InnerService, ResponseBody};
use crate::cache::{Lookup, Sent};
use crate::classify::{needs_authorization, Verdict};
use crate::client::send_error;
use crate::markers::{AuthorizationFailed, BodyNotReplayable};
use crate::need::Need;
use crate::state::LayerState;
use crate::stored::adopt_stored;

/// What is needed to send the request again: everything but the body, which
/// [`Prepared`] keeps.
pub(crate) struct RetryParts {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl RetryParts {
    pub(crate) fn copy(parts: &http::request::Parts) -> Self {
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
        }
    }

    /// Where the request goes.
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }
}

pub(crate) struct RetryContext<S, B> {
    pub(crate) inner: S,
    pub(crate) state: Arc<LayerState>,
    pub(crate) parts: RetryParts,
    pub(crate) prepared: Prepared<B>,
    pub(crate) sent: Sent,
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
    let sent = match state.cache.lookup(&parts.uri, || state.now()) {
        Lookup::Stale(sent) => return refresh_then_send(state, inner, parts, body, sent).await,
        Lookup::Fresh(header, sent) => {
            parts.headers.insert(AUTHORIZATION, header);
            sent
        }
        Lookup::Missing => Sent::default(),
    };
    send_and_recover(state, inner, parts, body, sent).await
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
    let header = match obtain(&state, inner.clone(), &parts.uri, sent, Need::Expiring).await {
        Ok(header) => Some(header),
        // The refresh could not happen now, and the server said nothing about the grant:
        // every credential is kept, and the old token is used while it lasts.
        Err(e) if old_token_may_serve(&e) => match state.cache.session(&parts.uri) {
            Some(s) if !s.tokens.is_expired(state.now(), std::time::Duration::ZERO) => {
                warn!(error = %e, "refresh failed; using the current token while it lasts");
                state.cache.header(&parts.uri).map(|(h, _)| h)
            }
            _ => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let sent = match header {
        Some(header) => {
            parts.headers.insert(AUTHORIZATION, header);
            state
                .cache
                .header(&parts.uri)
                .map(|(_, s)| s)
                .unwrap_or_default()
        }
        None => Sent::default(),
    };
    send_and_recover(state, inner, parts, body, sent).await
}

/// Whether a failed proactive refresh may fall back to the current token while it is valid.
///
/// Only an OAuth error response says the grant or the client is gone (RFC 6749 §5.2:
/// `invalid_grant`, `invalid_client`; [`classify_refresh_failure`]); a network error, a `5xx`,
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
/// `401`/`403` like the ordinary path does.
async fn send_and_recover<S, B, RB>(
    state: Arc<LayerState>,
    inner: S,
    parts: http::request::Parts,
    body: B,
    sent: Sent,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    let (body, prepared) = prepare(body, state.max_replay_bytes);
    let retry = RetryParts::copy(&parts);
    let response = inner
        .clone()
        .oneshot(http::Request::from_parts(parts, body))
        .await
        .map_err(|e| send_error(&retry.uri, e))?;
    match needs_authorization(response.status(), response.headers()) {
        Verdict::PassOn => Ok(response),
        verdict => {
            let context = RetryContext {
                inner,
                state,
                parts: retry,
                prepared,
                sent,
            };
            recover(context, response, verdict).await
        }
    }
}

/// Gets a token that meets the need (joining the flow for the origin, or skipping it when
/// another caller already got a newer token), then retries once.
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
        inner,
        state,
        parts,
        prepared,
        sent,
    } = context;
    let (need, scope) = match verdict {
        Verdict::PassOn => return Ok(first),
        Verdict::Malformed(e) => return Err(e),
        Verdict::Unauthorized(challenge) => (Need::Unauthorized(challenge), None),
        Verdict::InsufficientScope(c) => {
            let scope = c.scope().unwrap_or("").to_owned();
            (Need::InsufficientScope(c), Some(scope))
        }
    };
    let step_up = scope.is_some();
    let key = flight_key(&parts.uri);
    // The step-up bound is counted by the flow that authorizes (see `acquire`), not here:
    // callers that join one step-up flow count once between them.
    let header = match obtain(&state, inner.clone(), &parts.uri, sent, need).await {
        Ok(header) => header,
        Err(e) if step_up => {
            let mut first = first;
            first.extensions_mut().insert(AuthorizationFailed::new(e));
            return Ok(first);
        }
        Err(e) => return Err(e),
    };
    let Some(body) = prepared.replay() else {
        let mut first = first;
        first.extensions_mut().insert(BodyNotReplayable::new());
        return Ok(first);
    };
    // The first response's body is not read: dropping it may cost its pooled connection, a
    // price paid once per flow.
    drop(first);
    let mut request = http::Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = parts.uri;
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers;
    *request.extensions_mut() = parts.extensions;
    request.headers_mut().insert(AUTHORIZATION, header);
    let uri = request.uri().clone();
    let response = inner
        .oneshot(request)
        .await
        .map_err(|e| send_error(&uri, e))?;
    if let Some(scope) = scope {
        if response.status() != StatusCode::FORBIDDEN {
            state.flights.step_up_succeeded(&key, &scope);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_oauth_flow::OAuthErrorResponse;

    #[test]
    fn the_old_token_serves_unless_the_server_spoke_or_the_store_broke() {
        let oauth = |code: &str| {
            Error::new(ErrorKind::TokenRejected, "refused").with_oauth_error(OAuthErrorResponse {
                error: code.into(),
                error_description: None,
            })
        };
        // The server said nothing about the grant: keep serving.
        assert!(old_token_may_serve(&Error::new(
            ErrorKind::UnexpectedStatus,
            "503"
        )));
        assert!(old_token_may_serve(&Error::new(
            ErrorKind::Transport,
            "reset"
        )));
        assert!(old_token_may_serve(&Error::new(
            ErrorKind::InvalidTokenResponse,
            "garbage"
        )));
        assert!(old_token_may_serve(&Error::new(
            ErrorKind::BodyTooLarge,
            "4 MiB"
        )));
        // It did: the grant or the client is gone.
        assert!(!old_token_may_serve(&oauth("invalid_grant")));
        assert!(!old_token_may_serve(&oauth("invalid_client")));
        // A local store fault surfaces, unless it may pass.
        assert!(!old_token_may_serve(&Error::new(
            ErrorKind::Store,
            "permission denied"
        )));
        assert!(old_token_may_serve(
            &Error::new(ErrorKind::Store, "timed out").mark_transient()
        ));
    }
}
