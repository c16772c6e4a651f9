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
use mcp_oauth_flow::{
    select_challenge, server_url_from_uri, BoxError, Challenge, Error, FlowStart,
};
use pin_project_lite::pin_project;
use tower::ServiceExt;
use tower_service::Service;
use tracing::warn;

use crate::body::{BodyNotReplayable, OAuthBody, Prepared};
use crate::cache::Sent;
use crate::client::InnerClient;
use crate::driver;
use crate::service::{transport_error, Shared};
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
}

/// Why a response asks for (more) authorization, if it does.
fn needs_authorization(
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Result<Option<Challenge>, Error>> {
    match status {
        StatusCode::UNAUTHORIZED => {
            Some(Challenge::from_headers(headers).map(|all| select_challenge(&all).cloned()))
        }
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
                    let response = ready!(future.poll(cx)).map_err(transport_error)?;
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

/// Runs (or skips, when another caller already got a newer token) the flow, then retries once.
async fn recover<S, B, RB>(
    context: RetryContext<S, B>,
    first: http::Response<RB>,
    challenge: Result<Option<Challenge>, Error>,
) -> Result<http::Response<RB>, Error>
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
    let RetryContext {
        inner,
        shared,
        parts,
        prepared,
        sent,
    } = context;
    let challenge = challenge?;
    let header = match shared.cache.newer(&parts.uri, sent) {
        Some(header) => header,
        None => {
            let step_up = first.status() == StatusCode::FORBIDDEN;
            let held_scopes = if step_up {
                shared
                    .cache
                    .session(&parts.uri)
                    .and_then(|s| s.tokens.scopes().cloned())
            } else {
                None
            };
            let start = FlowStart {
                server_url: server_url_from_uri(&parts.uri)?,
                challenge,
                held_scopes,
            };
            let client = InnerClient::for_service(inner.clone(), shared.max_response_bytes);
            let outcome = driver::run(&shared.deps, client, start).await?;
            if let Err(e) = shared
                .deps
                .store
                .save_tokens(outcome.protected_resource.as_str(), &outcome.tokens)
                .await
            {
                warn!(error = %e, "could not store tokens; they are kept in memory");
            }
            shared
                .cache
                .install(outcome.protected_resource, outcome.tokens)
        }
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
    inner.oneshot(request).await.map_err(transport_error)
}
