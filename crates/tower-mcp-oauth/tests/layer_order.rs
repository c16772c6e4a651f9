//! The layer composes with hyper-util's `Client` and with `tower::ServiceBuilder` stacks
//! (`timeout`, `retry`): one compile-time check and one runtime check each.

mod support;

use std::time::Duration;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc, Body, HttpClient};
use tower::retry::Policy;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};

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
        .service(client);
    assert_service(&with_retry);
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
