//! [`ResponseFuture`]: the first attempt, then (on `401` or `403 insufficient_scope`) one flow
//! and one retry.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use http_body::Body;
use mcp_oauth_flow::{select_challenge, BoxError, Challenge, Error};
use pin_project_lite::pin_project;
use tower::ServiceExt;
use tower_service::Service;
use tracing::warn;

use crate::acquire::{adopt_stored, flight_key, obtain, Need};
use crate::body::{prepare, BodyNotReplayable, OAuthBody, Prepared};
use crate::bounds::{CallerBody, InnerService, ResponseBody};
use crate::cache::{Lookup, Sent};
use crate::service::{send_error, Shared};
use crate::BoxFuture;

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
}

pub(crate) struct RetryContext<S, B> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) parts: RetryParts,
    pub(crate) prepared: Prepared<B>,
    pub(crate) sent: Sent,
}

pin_project! {
    /// The response future of [`OAuthService`](crate::OAuthService).
    pub struct ResponseFuture<S, B>
    where
        S: Service<http::Request<OAuthBody<B>>>,
    {
        #[pin]
        state: State<S::Future, S::Response>,
        context: Option<RetryContext<S, B>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Sending { #[pin] future: F },
        Recovering { future: BoxFuture<'static, Result<R, Error>> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<http::Request<OAuthBody<B>>>,
{
    pub(crate) fn new(future: S::Future, context: RetryContext<S, B>) -> Self {
        Self {
            state: State::Sending { future },
            context: Some(context),
        }
    }

    pub(crate) fn recovering(future: BoxFuture<'static, Result<S::Response, Error>>) -> Self {
        Self {
            state: State::Recovering { future },
            context: None,
        }
    }
}

/// Why a response asks for (more) authorization, if it does.
fn needs_authorization(
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Result<Option<Challenge>, Error>> {
    match status {
        StatusCode::UNAUTHORIZED => match Challenge::from_headers(headers) {
            Ok(all) => match select_challenge(&all) {
                Some(challenge) => Some(Ok(Some(challenge.clone()))),
                // A 401 with no challenge at all (some 2025-03-26 servers) still means OAuth;
                // one that only offers other schemes (Basic, Negotiate) is not ours to answer.
                None if all.is_empty() => Some(Ok(None)),
                None => None,
            },
            Err(e) => Some(Err(e)),
        },
        // RFC 6750 §3.1: only `insufficient_scope` asks for a new authorization; any other 403
        // is the resource's final word.
        StatusCode::FORBIDDEN => match Challenge::from_headers(headers) {
            Ok(all) => select_challenge(&all)
                .filter(|c| c.is_insufficient_scope())
                .cloned()
                .map(|c| Ok(Some(c))),
            Err(_) => None,
        },
        _ => None,
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
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
    type Output = Result<http::Response<RB>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sending { future } => {
                    let response = ready!(future.poll(cx)).map_err(|e| {
                        let uri = this.context.as_ref().map(|c| &c.parts.uri);
                        send_error(uri.unwrap_or(&http::Uri::from_static("/")), e)
                    })?;
                    let Some(challenge) =
                        needs_authorization(response.status(), response.headers())
                    else {
                        return Poll::Ready(Ok(response));
                    };
                    let context = this.context.take().expect("polled after completion");
                    let future = Box::pin(recover(context, response, challenge));
                    this.state.set(State::Recovering { future });
                }
                StateProj::Recovering { future } => return future.as_mut().poll(cx),
            }
        }
    }
}

/// A response extension on a `403` the layer returns because the step-up it would have run
/// failed or was refused by a limit ([`ErrorKind::StepUpLimit`](crate::ErrorKind::StepUpLimit),
/// [`ErrorKind::AuthorizationLimit`](crate::ErrorKind::AuthorizationLimit)). The `403` itself is
/// the resource's answer and is passed on untouched.
///
/// ```
/// use tower_mcp_oauth::{AuthorizationFailed, Error, ErrorKind};
/// let marked = http::Response::builder()
///     .status(403)
///     .extension(AuthorizationFailed(Error::new(ErrorKind::StepUpLimit, "gave up")))
///     .body(()).unwrap();
/// let failure = marked.extensions().get::<AuthorizationFailed>().unwrap();
/// assert_eq!(failure.0.kind(), ErrorKind::StepUpLimit);
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizationFailed(pub Error);

/// Sends the first request to an origin: adopts stored tokens (an earlier run's, another
/// process's) first, then sends like any request, refreshing first if they are due.
pub(crate) async fn first_contact<S, B, RB>(
    shared: Arc<Shared>,
    inner: S,
    mut parts: http::request::Parts,
    body: B,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    adopt_stored(&shared, &parts.uri).await;
    let sent = match shared.cache.lookup(&parts.uri, || (shared.clock)()) {
        Lookup::Stale(sent) => return refresh_then_send(shared, inner, parts, body, sent).await,
        Lookup::Fresh(header, sent) => {
            parts.headers.insert(AUTHORIZATION, header);
            sent
        }
        Lookup::Missing => Sent::default(),
    };
    send_and_recover(shared, inner, parts, body, sent).await
}

/// Sends a request whose token is due for refresh: refresh (joining any flow already running),
/// then send, then recover from a `401`/`403` like any other request.
pub(crate) async fn refresh_then_send<S, B, RB>(
    shared: Arc<Shared>,
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
    let header = match obtain(&shared, inner.clone(), &parts.uri, sent, Need::Expiring).await {
        Ok(header) => Some(header),
        // The refresh could not happen now (network, 5xx, 429): every credential is kept, and
        // the old token is used while it lasts.
        Err(e) if e.is_transient() => match shared.cache.session(&parts.uri) {
            Some(s)
                if !s
                    .tokens
                    .is_expired((shared.clock)(), std::time::Duration::ZERO) =>
            {
                warn!(error = %e, "refresh failed; using the current token while it lasts");
                shared.cache.header(&parts.uri).map(|(h, _)| h)
            }
            _ => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let sent = match header {
        Some(header) => {
            parts.headers.insert(AUTHORIZATION, header);
            shared
                .cache
                .header(&parts.uri)
                .map(|(_, s)| s)
                .unwrap_or_default()
        }
        None => Sent::default(),
    };
    send_and_recover(shared, inner, parts, body, sent).await
}

/// Sends a prepared request through a fresh clone of the inner service, then recovers from a
/// `401`/`403` like the ordinary path does.
async fn send_and_recover<S, B, RB>(
    shared: Arc<Shared>,
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
    let (body, prepared) = prepare(body, shared.max_replay_bytes);
    let retry = RetryParts::copy(&parts);
    let response = inner
        .clone()
        .oneshot(http::Request::from_parts(parts, body))
        .await
        .map_err(|e| send_error(&retry.uri, e))?;
    match needs_authorization(response.status(), response.headers()) {
        None => Ok(response),
        Some(challenge) => {
            let context = RetryContext {
                inner,
                shared,
                parts: retry,
                prepared,
                sent,
            };
            recover(context, response, challenge).await
        }
    }
}

/// Gets a token that meets the need (joining the flow for the origin, or skipping it when
/// another caller already got a newer token), then retries once.
async fn recover<S, B, RB>(
    context: RetryContext<S, B>,
    first: http::Response<RB>,
    challenge: Result<Option<Challenge>, Error>,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    let RetryContext {
        inner,
        shared,
        parts,
        prepared,
        sent,
    } = context;
    let challenge = challenge?;
    let step_up = first.status() == StatusCode::FORBIDDEN;
    let key = flight_key(&parts.uri);
    let (need, scope) = match challenge {
        Some(c) if step_up => {
            let scope = c.scope().unwrap_or("").to_owned();
            (Need::InsufficientScope(c), Some(scope))
        }
        other => (Need::Unauthorized(other), None),
    };
    // The step-up bound is counted by the flow that authorizes (see `acquire`), not here:
    // callers that join one step-up flow count once between them.
    let header = match obtain(&shared, inner.clone(), &parts.uri, sent, need).await {
        Ok(header) => header,
        Err(e) if step_up => {
            let mut first = first;
            first.extensions_mut().insert(AuthorizationFailed(e));
            return Ok(first);
        }
        Err(e) => return Err(e),
    };
    let Some(body) = prepared.replay() else {
        let mut first = first;
        first.extensions_mut().insert(BodyNotReplayable);
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
            shared.flights.step_up_succeeded(&key, &scope);
        }
    }
    Ok(response)
}
