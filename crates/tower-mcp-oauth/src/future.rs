//! [`ResponseFuture`]: the first attempt, then (on `401` or `403 insufficient_scope`) one flow
//! and one retry.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Body;
use mcp_oauth_flow::{BoxError, Error};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::OAuthBody;
use crate::classify::{may_need_authorization, needs_authorization, Verdict};
use crate::client::send_error;
use crate::recovery::{start_recovery, RetryContext};
use crate::BoxFuture;

pin_project! {
    /// The response future of [`OAuthService`](crate::OAuthService) and of a shared
    /// `&OAuthService`: the first attempt, then (on a `401`, or a `403` with
    /// `insufficient_scope`) the flow and one retry. It resolves to the response of the last
    /// attempt, or to the flow's [`Error`].
    ///
    /// `S` is the inner service, `B` the caller's body type, and `F` the first attempt's future:
    /// `S::Future` by default, `<&S as Service>::Future` when sent through `&OAuthService`.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http_body_util::Full;
    /// # use mcp_oauth_testkit::scripted;
    /// # use tower::util::BoxCloneService;
    /// # use tower_mcp_oauth::OAuthBody;
    /// # type Server = BoxCloneService<http::Request<OAuthBody<Full<Bytes>>>, http::Response<Full<Bytes>>, std::convert::Infallible>;
    /// # /// An MCP server at 127.0.0.1:1 whose authorization server (127.0.0.1:2) approves at once
    /// # /// and answers the token request with `token`; `/mcp` wants `Bearer at-1`.
    /// # fn approving_server(token: serde_json::Value) -> Server {
    /// #     BoxCloneService::new(tower::service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
    /// #         let token = token.clone();
    /// #         async move {
    /// #             if let Some(response) = scripted::flow_response(&req) { return Ok(response); }
    /// #             Ok(match req.uri().path() {
    /// #                 "/token" => scripted::json(if token.get("error").is_some() { 400 } else { 200 }, token),
    /// #                 _ if req.headers().get("authorization").is_some_and(|v| v == "Bearer at-1") => http::Response::new(Full::new(Bytes::from("ok"))),
    /// #                 _ => scripted::unauthorized(),
    /// #             })
    /// #         }
    /// #     }))
    /// # }
    /// # fn token() -> serde_json::Value { serde_json::json!({"access_token": "at-1", "token_type": "Bearer"}) }
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer, ResponseFuture};
    /// # tokio_test::block_on(async {
    /// let layer = OAuthLayer::new(ClientConfig::new("http://localhost:3000/callback"), HeadlessAuthorizer::new());
    /// let mut service = layer.layer(approving_server(token()));
    /// let request = http::Request::get("http://127.0.0.1:1/mcp").body(Full::new(Bytes::new())).unwrap();
    /// // `Server` is the inner service's type, `Full<Bytes>` the caller's body type.
    /// let future: ResponseFuture<Server, Full<Bytes>> = service.ready().await.unwrap().call(request);
    /// // The server answered 401; the future ran the flow and retried with the token.
    /// let response = future.await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(service.flows_started(), 1);
    /// # });
    /// ```
    pub struct ResponseFuture<S, B, F = <S as Service<http::Request<OAuthBody<B>>>>::Future>
    where
        S: Service<http::Request<OAuthBody<B>>>,
    {
        #[pin]
        state: State<F, S::Response>,
        context: Sending<S, B>,
    }
}

/// What the first attempt keeps beside its future. One field, not two: the future is moved a
/// few times on its way to the executor, and every byte of it is copied each time.
// Boxing the large variant would cost an allocation per request, which is what it is kept
// inline to avoid.
#[allow(clippy::large_enum_variant)]
enum Sending<S, B> {
    /// What the retry after a `401` needs.
    Retry(RetryContext<S, B>),
    /// A request outside the layer's servers: its response is passed on as it is, and its URI
    /// names it in a transport error.
    Passthrough(http::Uri),
    /// Recovering, or done.
    Nothing,
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Sending { #[pin] future: F },
        Recovering { future: BoxFuture<'static, Result<R, Error>> },
    }
}

impl<S, B, F> ResponseFuture<S, B, F>
where
    S: Service<http::Request<OAuthBody<B>>>,
{
    pub(crate) fn new(future: F, context: RetryContext<S, B>) -> Self {
        Self {
            state: State::Sending { future },
            context: Sending::Retry(context),
        }
    }

    /// A request the layer does not act on: the inner service's answer, whatever it is.
    pub(crate) fn passthrough(future: F, uri: http::Uri) -> Self {
        Self {
            state: State::Sending { future },
            context: Sending::Passthrough(uri),
        }
    }

    pub(crate) fn recovering(future: BoxFuture<'static, Result<S::Response, Error>>) -> Self {
        Self {
            state: State::Recovering { future },
            context: Sending::Nothing,
        }
    }
}

impl<S, B, RB, F, E> Future for ResponseFuture<S, B, F>
where
    S: Service<http::Request<OAuthBody<B>>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    F: Future<Output = Result<http::Response<RB>, E>>,
    E: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    type Output = Result<http::Response<RB>, Error>;

    // Inlined into the caller's poll (`Oneshot`'s, a task's): the response, well over a hundred
    // bytes, is then written where the caller keeps it rather than returned through a copy
    // (about 200 instructions a request over loopback). `always`, because with the recovery
    // started out of line (`start_recovery`) the compiler judged `poll` not worth inlining.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sending { future } => {
                    // Matched, not `map_err` and `?`: those moved the response (over a hundred
                    // bytes) through results of their own, one `memcpy` call more.
                    let response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(e) => return Poll::Ready(Err(transport_error(this.context, e))),
                    };
                    // Looked at in place: moving the context out copies it, and only a
                    // recovery needs it moved.
                    let retry = match &*this.context {
                        Sending::Retry(context) => context,
                        Sending::Passthrough(_) => return Poll::Ready(Ok(response)),
                        Sending::Nothing => panic!("`ResponseFuture` polled after completion"),
                    };
                    // Nearly every answer is neither a 401 nor a 403: it passes on without
                    // a verdict built, matched and dropped.
                    if !may_need_authorization(response.status()) {
                        retry.note_answer(response.headers());
                        return Poll::Ready(Ok(response));
                    }
                    let verdict = needs_authorization(response.status(), response.headers());
                    if let Verdict::PassOn = verdict {
                        retry.note_answer(response.headers());
                        return Poll::Ready(Ok(response));
                    }
                    let Sending::Retry(context) = std::mem::replace(this.context, Sending::Nothing)
                    else {
                        unreachable!("matched as `Retry` above");
                    };
                    let future = start_recovery(context, response, verdict);
                    this.state.set(State::Recovering { future });
                }
                StateProj::Recovering { future } => return future.as_mut().poll(cx),
            }
        }
    }
}

/// The error of a first attempt the inner service failed to send, naming where it went.
#[cold]
#[inline(never)]
fn transport_error<S, B>(context: &Sending<S, B>, e: impl Into<BoxError>) -> Error {
    let uri = match context {
        Sending::Retry(context) => context.head.uri(),
        Sending::Passthrough(uri) => uri.clone(),
        Sending::Nothing => http::Uri::from_static("/"),
    };
    send_error(&uri, e)
}
