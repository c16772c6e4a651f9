//! A store that panics where the layer records how a flow ended (an application's store with a
//! bug): the flow's callers get its error, none is left waiting, and the origin is not stuck
//! on the abandoned flow.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_flow::token::TokenSet;
use mcp_oauth_testkit::scripted::json;
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    BoxFuture, ClientConfig, ClientRegistration, Error, ErrorKind, HeadlessAuthorizer, LastFlow,
    MemoryStore, OAuthBody, OAuthLayer, Replaced, StoreLock, TokenStore,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

/// A `MemoryStore` whose first `save_last_flow` panics.
#[derive(Default)]
struct PanicsOnce {
    inner: MemoryStore,
    panicked: AtomicBool,
}

impl TokenStore for PanicsOnce {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        self.inner.load_tokens(resource)
    }
    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_tokens(resource, tokens)
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        self.inner.compare_and_swap_tokens(resource, current, new)
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.inner.load_client(issuer)
    }
    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_client(registration)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_client(issuer)
    }
    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        self.inner.lock(resource)
    }
    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if !self.panicked.swap(true, Ordering::SeqCst) {
                panic!("the store's bug");
            }
            self.inner.save_last_flow(server, record).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_panicking_as_a_flow_ends_leaves_no_caller_waiting() {
    // The MCP server wants a token; its resource metadata is down, and answers only once the
    // second caller's request was refused, so that the second caller finds the flow running.
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let second_refused = Arc::new(tokio::sync::Notify::new());
    let server = service_fn(move |req: Req| {
        let (refused, second_refused) = (Arc::clone(&refused), Arc::clone(&second_refused));
        async move {
            if req.uri().path() == "/mcp" {
                if refused.fetch_add(1, Ordering::SeqCst) == 1 {
                    second_refused.notify_one();
                }
                return Ok::<_, Infallible>(
                    http::Response::builder()
                        .status(401)
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                );
            }
            if refused.load(Ordering::SeqCst) < 2 {
                second_refused.notified().await;
                // Wakes any other metadata request waiting too.
                second_refused.notify_one();
            }
            Ok(json(503, json!({})))
        }
    });
    let service = OAuthLayer::new(
        ClientConfig::new("http://127.0.0.1:1/cb"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::new(PanicsOnce::default()))
    .failure_backoff(Duration::ZERO)
    .layer(server);
    let request = || {
        http::Request::post("http://127.0.0.1:1/mcp")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let first = tokio::spawn(service.clone().oneshot(request()));
    let second = tokio::spawn(service.clone().oneshot(request()));
    for (who, call) in [("first", first), ("second", second)] {
        let result = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .unwrap_or_else(|_| panic!("the {who} caller was left waiting"))
            .unwrap_or_else(|e| panic!("the {who} caller panicked: {e}"));
        let error = result.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::UnexpectedStatus,
            "{who}: {error:#}"
        );
    }
    // The origin is not stuck on the abandoned flow: the next caller runs one of its own.
    let third = tokio::time::timeout(Duration::from_secs(10), service.clone().oneshot(request()))
        .await
        .expect("the third caller was left waiting");
    assert_eq!(third.unwrap_err().kind(), ErrorKind::UnexpectedStatus);
    // One flow for the first two (or, if the second came after the first's end, two), then
    // the third's own.
    assert!((2..=3).contains(&service.flows_started()));
}
