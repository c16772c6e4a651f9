//! The layer order the README recommends, each claim run against the real middleware:
//!
//! - `Timeout` outside: it bounds the whole flow, not each round trip;
//! - `Retry` outside: a retried request is authorized like any other;
//! - tower-http's `FollowRedirect` (standard policy) outside or inside: a redirect to another
//!   origin never carries the bearer, a same-origin one still does. Inside, it also follows the
//!   flow's own sub-requests (the `HeadlessAuthorizer`'s request to the authorization endpoint
//!   among them), so the whole stack puts it outside;
//! - `ConcurrencyLimit` and `Buffer` inside (and `Buffer` outside): a flow waiting for consent
//!   holds no permit and no buffer slot, so other requests get through, and a limit of 1 does
//!   not starve the flow's own sub-requests;
//! - tower-http's `Trace` outside sees each call once, inside it sees every sub-request.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use support::lifecycle::SlowUser;
use support::{http_client, jsonrpc, Body, HttpClient};
use tower::retry::Policy;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_http::follow_redirect::policy::Limited;
use tower_http::follow_redirect::FollowRedirectLayer;
use tower_http::trace::TraceLayer;
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};

fn layer() -> OAuthLayer {
    OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
}

/// Retries a request once more when it failed or answered 5xx.
#[derive(Clone)]
struct RetryServerErrors(usize);

impl<Res> Policy<http::Request<Body>, http::Response<Res>, BoxError> for RetryServerErrors {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut http::Request<Body>,
        result: &mut Result<http::Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let failed = match result {
            Ok(r) => r.status().is_server_error(),
            Err(_) => true,
        };
        (failed && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }

    fn clone_request(&mut self, req: &http::Request<Body>) -> Option<http::Request<Body>> {
        let mut out = http::Request::new(req.body().clone());
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.headers_mut() = req.headers().clone();
        Some(out)
    }
}

/// Compile-time check: the full stack is a `Service` with the expected types.
#[allow(dead_code)]
fn stacks_compile(client: HttpClient) {
    fn assert_service<S: Service<http::Request<Body>> + Clone + Send + 'static>(_: &S)
    where
        S::Future: Send,
    {
    }
    let with_timeout = ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .layer(layer())
        .service(client.clone());
    assert_service(&with_timeout);
    let with_retry = ServiceBuilder::new()
        .retry(RetryServerErrors(1))
        .map_err(Into::<BoxError>::into)
        .layer(layer())
        .service(client.clone());
    assert_service(&with_retry);
    // Every composition the README recommends, in its order, around one client.
    let everything = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .timeout(Duration::from_secs(30))
        .retry(RetryServerErrors(1))
        .map_err(Into::<BoxError>::into)
        .layer(FollowRedirectLayer::new())
        .layer(layer())
        .concurrency_limit(8)
        .buffer(8)
        .service(client);
    assert_service(&everything);
}

fn tools_list(kit: &Testkit) -> http::Request<Body> {
    jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}))
}

#[tokio::test]
async fn under_a_timeout() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .layer(layer())
        .service(http_client());
    let response = service.oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_timeout_bounds_the_whole_flow() {
    // A resource whose metadata never answers in time: the outer timeout ends the call.
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let stalled = tower::service_fn(
        move |req: http::Request<tower_mcp_oauth::OAuthBody<Body>>| {
            let client = http_client();
            async move {
                if req.uri().path().starts_with("/.well-known") {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                client.oneshot(req).await
            }
        },
    );
    let service = ServiceBuilder::new()
        .timeout(Duration::from_millis(300))
        .layer(layer())
        .service(stalled);
    let err = service.oneshot(tools_list(&kit)).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
}

#[tokio::test]
async fn under_a_retry() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    // The first MCP request fails with a 503 before the layer sees anything: the retry outside
    // the layer resends it, the layer authorizes on the 401, and the call succeeds.
    let mcp_calls = Arc::new(AtomicUsize::new(0));
    let counter = mcp_calls.clone();
    let flaky = tower::service_fn(
        move |req: http::Request<tower_mcp_oauth::OAuthBody<Body>>| {
            let client = http_client();
            let n = if req.uri().path() == "/mcp" {
                counter.fetch_add(1, Ordering::SeqCst)
            } else {
                usize::MAX
            };
            async move {
                if n == 0 {
                    let busy = http::Response::builder()
                        .status(503)
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap();
                    return Ok::<_, BoxError>(busy.map(http_body_util::Either::Left));
                }
                let resp = client.oneshot(req).await?;
                Ok(resp.map(http_body_util::Either::Right))
            }
        },
    );
    let service = ServiceBuilder::new()
        .retry(RetryServerErrors(1))
        .map_err(Into::<BoxError>::into)
        .layer(layer())
        .service(flaky);
    let response = service.oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 200);
    // 503, then 401 (unauthenticated retry), then the layer's authorized retry.
    assert_eq!(mcp_calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        kit.requests().iter().filter(|r| r.path == "/token").count(),
        1
    );
}

#[tokio::test]
async fn the_whole_recommended_stack() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .timeout(Duration::from_secs(30))
        .retry(RetryServerErrors(1))
        .map_err(Into::<BoxError>::into)
        .layer(FollowRedirectLayer::new())
        .layer(layer())
        .concurrency_limit(1)
        .buffer(1)
        .service(http_client());
    let response = service.oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        kit.requests().iter().filter(|r| r.path == "/token").count(),
        1
    );
}

/// A server on its own loopback port (so another origin than the testkit's) that answers 200
/// to anything and records each request's headers.
struct OtherOrigin {
    url: String,
    seen: Arc<Mutex<Vec<http::HeaderMap>>>,
}

impl OtherOrigin {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/landing", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            record.lock().unwrap().push(req.headers().clone());
                            async {
                                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, seen }
    }

    fn authorizations(&self) -> Vec<Option<http::HeaderValue>> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .map(|h| h.get("authorization").cloned())
            .collect()
    }
}

/// A GET (an empty body, which `FollowRedirect` can resend) under the resource's path.
fn get(kit: &Testkit, path: &str) -> http::Request<Body> {
    http::Request::get(format!("{}{path}", kit.resource_origin()))
        .body(Body::new(Bytes::new()))
        .unwrap()
}

/// The bearer the testkit saw on its last request to `path`.
fn bearer_at(kit: &Testkit, path: &str) -> Option<String> {
    kit.requests()
        .iter()
        .rev()
        .find(|r| r.path == path)
        .and_then(|r| r.bearer())
}

/// Sends `service` (logged in already) to a path the resource moved to another origin, then to
/// one it moved within its own origin: the other origin never sees the bearer, the same origin
/// does.
async fn redirects_keep_the_bearer_home<S>(service: S, kit: &Testkit)
where
    S: Service<http::Request<Body>, Response = http::Response<hyper::body::Incoming>> + Clone,
    S::Error: std::fmt::Debug,
{
    let other = OtherOrigin::start().await;
    kit.set_override(
        ServerRole::Resource,
        "/mcp/moved",
        CannedResponse::new(307, "").header("location", other.url.clone()),
    );
    let response = service
        .clone()
        .oneshot(get(kit, "/mcp/moved"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the redirect was followed");
    // The first hop carried the bearer; the other origin got the request without it.
    assert!(bearer_at(kit, "/mcp/moved").is_some());
    assert_eq!(other.authorizations(), vec![None]);

    kit.set_override(
        ServerRole::Resource,
        "/mcp/here",
        CannedResponse::new(307, "")
            .header("location", format!("{}/mcp/there", kit.resource_origin())),
    );
    kit.set_override(
        ServerRole::Resource,
        "/mcp/there",
        CannedResponse::new(200, "ok"),
    );
    let response = service.oneshot(get(kit, "/mcp/here")).await.unwrap();
    assert_eq!(response.status(), 200);
    let first = bearer_at(kit, "/mcp/here");
    assert!(first.is_some());
    assert_eq!(bearer_at(kit, "/mcp/there"), first);
}

#[tokio::test]
async fn follow_redirect_inside_never_takes_the_bearer_to_another_origin() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let layer = layer();
    // Log in through a sibling service of the same layer (they share its tokens): the
    // `HeadlessAuthorizer` sends its authorization request through the inner service, where
    // `FollowRedirect` would follow the server's 302 to the redirect URI itself.
    let plain = ServiceBuilder::new()
        .layer(layer.clone())
        .service(http_client());
    let response = plain.oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 200);

    let service = ServiceBuilder::new()
        .layer(layer)
        .layer(FollowRedirectLayer::new())
        .service(http_client());
    redirects_keep_the_bearer_home(service, &kit).await;
}

#[tokio::test]
async fn follow_redirect_outside_never_takes_the_bearer_to_another_origin() {
    // Outside, each hop passes through the layer, which sends a token only to the origin and
    // path it was issued for; the flow's own sub-requests are not redirected by it.
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(layer())
        .service(http_client());
    let response = service.clone().oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 200);
    redirects_keep_the_bearer_home(service, &kit).await;
}

/// The control for the inside placement: without the standard policy's `FilterCredentials`, the same
/// redirect does take the bearer along, so the test above would see a leak.
#[tokio::test]
async fn without_filter_credentials_the_bearer_would_leak() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let other = OtherOrigin::start().await;
    let layer = layer();
    let plain = ServiceBuilder::new()
        .layer(layer.clone())
        .service(http_client());
    let response = plain.oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 200);
    let service = ServiceBuilder::new()
        .layer(layer)
        .layer(FollowRedirectLayer::with_policy(Limited::default()))
        .service(http_client());
    kit.set_override(
        ServerRole::Resource,
        "/mcp/moved",
        CannedResponse::new(307, "").header("location", other.url.clone()),
    );
    let response = service.oneshot(get(&kit, "/mcp/moved")).await.unwrap();
    assert_eq!(response.status(), 200);
    let leaked = other.authorizations();
    assert_eq!(leaked.len(), 1);
    assert!(leaked[0].is_some());
}

#[tokio::test]
async fn a_concurrency_limit_of_one_inside_lets_the_flow_through() {
    // The flow's sub-requests (metadata, registration, token) go through the same limit as
    // the request that met the 401: were its permit still held, they would wait forever.
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = ServiceBuilder::new()
        .layer(layer())
        .concurrency_limit(1)
        .service(http_client());
    let calls = (0..3).map(|_| {
        let service = service.clone();
        let request = tools_list(&kit);
        tokio::spawn(async move { service.oneshot(request).await })
    });
    for call in calls.collect::<Vec<_>>() {
        let response = tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("the flow got its permits")
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        kit.requests().iter().filter(|r| r.path == "/token").count(),
        1
    );
}

/// While a flow waits for the user's consent, a request to another origin goes through
/// `service` at once: the waiting flow holds no permit and no buffer slot.
async fn others_pass_while_consent_is_pending<S>(
    service: S,
    kit: &Testkit,
    go: Arc<tokio::sync::Notify>,
    asked: Arc<AtomicBool>,
) where
    S: Service<http::Request<Body>, Response = http::Response<hyper::body::Incoming>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    let other = OtherOrigin::start().await;
    let waiting = tokio::spawn(service.clone().oneshot(tools_list(kit)));
    while !asked.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let request = http::Request::get(other.url.clone())
        .body(Body::new(Bytes::new()))
        .unwrap();
    let passed = tokio::time::timeout(Duration::from_secs(5), service.oneshot(request))
        .await
        .expect("the request passed while the flow waited for consent")
        .unwrap();
    assert_eq!(passed.status(), 200);
    assert!(
        !waiting.is_finished(),
        "the flow is still waiting for consent"
    );

    go.notify_one();
    let response = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn slow_user_layer() -> (OAuthLayer, Arc<tokio::sync::Notify>, Arc<AtomicBool>) {
    let (go, asked) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(AtomicBool::new(false)),
    );
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        SlowUser(go.clone(), asked.clone()),
    );
    (layer, go, asked)
}

#[tokio::test]
async fn a_concurrency_limit_inside_is_free_while_a_flow_waits_for_consent() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (layer, go, asked) = slow_user_layer();
    let service = ServiceBuilder::new()
        .layer(layer)
        .concurrency_limit(1)
        .service(http_client());
    others_pass_while_consent_is_pending(service, &kit, go, asked).await;
}

#[tokio::test]
async fn a_buffer_inside_is_free_while_a_flow_waits_for_consent() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (layer, go, asked) = slow_user_layer();
    let service = ServiceBuilder::new()
        .layer(layer)
        .buffer(1)
        .service(http_client());
    others_pass_while_consent_is_pending(service, &kit, go, asked).await;
}

#[tokio::test]
async fn a_buffer_outside_is_free_while_a_flow_waits_for_consent() {
    // The buffer's worker calls the layer's `poll_ready` for every request: were it to wait for
    // the flow, nothing else would pass.
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (layer, go, asked) = slow_user_layer();
    let service = ServiceBuilder::new()
        .buffer(1)
        .layer(layer)
        .service(http_client());
    others_pass_while_consent_is_pending(service, &kit, go, asked).await;
}

#[tokio::test]
async fn trace_outside_sees_each_call_once_and_inside_every_sub_request() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (outside, inside) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, i) = (outside.clone(), inside.clone());
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http().on_request(
            move |_: &http::Request<Body>, _: &tracing::Span| {
                o.fetch_add(1, Ordering::SeqCst);
            },
        ))
        .layer(layer())
        .layer(TraceLayer::new_for_http().on_request(
            move |_: &http::Request<OAuthBody<Body>>, _: &tracing::Span| {
                i.fetch_add(1, Ordering::SeqCst);
            },
        ))
        .service(http_client());
    let response = service.oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(outside.load(Ordering::SeqCst), 1);
    // Discovery, registration, authorization, token, the first attempt and the retry: every
    // request the servers saw went through the inner `Trace`.
    assert_eq!(inside.load(Ordering::SeqCst), kit.requests().len());
    assert!(kit.requests().len() >= 6);
}
