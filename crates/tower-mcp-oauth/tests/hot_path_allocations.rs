//! The hot path (a request with a valid token) allocates no more with the layer limited to its
//! MCP servers (`only_for`) and with the time limits configured than without: the scope check
//! compares the URI in place, and no timer is started; and a request outside those servers
//! allocates no more than without the layer. Counted with stats_alloc's counting allocator, so
//! this file holds one test (the count is process-wide).

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, McpServers, MemoryStore, OAuthBody, OAuthLayer, TokenSet,
    TokenStore, TokenType,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MCP: &str = "http://127.0.0.1:1/mcp";

/// Allocations of `n` requests with a valid stored token through `layer`, after a warm-up.
async fn allocations_per_request(layer: OAuthLayer, n: usize) -> usize {
    let server = service_fn(|req: http::Request<OAuthBody<Full<Bytes>>>| async move {
        assert!(
            req.headers().contains_key("authorization"),
            "the token is sent"
        );
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let service = layer.layer(server);
    let request = || http::Request::get(MCP).body(Full::default()).unwrap();
    for _ in 0..3 {
        service.clone().oneshot(request()).await.unwrap();
    }
    let requests: Vec<_> = (0..n).map(|_| request()).collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let change = region.change();
    let total = change.allocations + change.reallocations;
    assert_eq!(service.flows_started(), 0);
    total / n
}

async fn layer() -> OAuthLayer {
    let store = Arc::new(MemoryStore::new());
    let tokens = TokenSet::new("at", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() + Duration::from_secs(3600)));
    store.save_tokens(MCP, &tokens).await.unwrap();
    OAuthLayer::new(
        ClientConfig::new("http://127.0.0.1:1/cb"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store as Arc<dyn TokenStore>)
}

#[tokio::test(flavor = "current_thread")]
async fn the_scope_check_and_the_time_limits_add_no_allocation_to_the_hot_path() {
    let plain = allocations_per_request(layer().await, 200).await;
    let limited = layer()
        .await
        .only_for(
            McpServers::prefixes(["http://127.0.0.1:1/mcp", "https://other.example"]).unwrap(),
        )
        .request_timeout(Duration::from_secs(5))
        .flow_deadline(Duration::from_secs(10));
    let limited = allocations_per_request(limited, 200).await;
    assert_eq!(limited, plain, "allocations per request");
    // A request outside the servers is passed on: its body in memory costs no box.
    let (passed_on, bare) = passed_on_and_bare().await;
    assert_eq!(passed_on, bare, "allocations per request passed on");
}

/// Allocations per request of `n` POSTs with a body in memory through `call`, after a warm-up.
async fn allocations_of<F, Fut>(call: F, n: usize) -> usize
where
    F: Fn(http::Request<Full<Bytes>>) -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let request = || {
        http::Request::post("http://127.0.0.1:1/other")
            .body(Full::new(Bytes::from_static(br#"{"jsonrpc":"2.0"}"#)))
            .unwrap()
    };
    for _ in 0..3 {
        call(request()).await;
    }
    let requests: Vec<_> = (0..n).map(|_| request()).collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        assert_eq!(call(request).await, 200);
    }
    let change = region.change();
    (change.allocations + change.reallocations) / n
}

/// Allocations per request passed on outside the layer's servers, and the same bare.
async fn passed_on_and_bare() -> (usize, usize) {
    async fn answer<B>(
        _: http::Request<B>,
    ) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
        Ok(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    }
    let bare = service_fn(answer::<Full<Bytes>>);
    let bare = allocations_of(
        |req| async move { bare.oneshot(req).await.unwrap().status().as_u16() },
        200,
    )
    .await;
    let layered = layer()
        .await
        .only_for(McpServers::prefixes(["http://127.0.0.1:1/mcp"]).unwrap())
        .layer(service_fn(answer::<OAuthBody<Full<Bytes>>>));
    let layered = allocations_of(
        |req| {
            let layered = layered.clone();
            async move { layered.oneshot(req).await.unwrap().status().as_u16() }
        },
        200,
    )
    .await;
    (layered, bare)
}
