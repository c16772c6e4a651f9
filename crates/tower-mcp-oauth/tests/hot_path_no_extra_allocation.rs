//! With a valid token, a typical MCP request allocates no more through the layer than through
//! the bare service with the header added by hand: the head kept for the transparent retry is
//! packed into a recycled buffer, so is a small body made at run time, the token is looked up in
//! place, and the retry's spare service is shared. Counted with stats_alloc's counting allocator, so this file holds one test (the
//! count is process-wide).

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer, TokenSet, TokenStore,
    TokenType,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MCP: &str = "http://127.0.0.1:1/mcp";
const N: usize = 200;

/// A request as an MCP client sends it after `initialize`, every header value and the body made
/// at run time (the costliest to keep: their bytes are not shared yet, and a `Vec` with no spare
/// capacity turned into `Bytes` allocates its reference count on its first clone).
fn request(authorization: Option<&http::HeaderValue>) -> http::Request<Full<Bytes>> {
    let session = format!("{:032x}", 0x5eed_u128);
    let mut request = http::Request::post(MCP)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", session.as_str())
        .body(Full::new(Bytes::from(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
        )))
        .unwrap();
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.clone());
    }
    request
}

/// Allocations per request of `send` over `N` requests built beforehand.
async fn per_request<F, Fut>(mut send: F, authorization: Option<&http::HeaderValue>) -> usize
where
    F: FnMut(http::Request<Full<Bytes>>) -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    for _ in 0..3 {
        assert_eq!(send(request(authorization)).await, 200);
    }
    let requests: Vec<_> = (0..N).map(|_| request(authorization)).collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        assert_eq!(send(request).await, 200);
    }
    let change = region.change();
    (change.allocations + change.reallocations) / N
}

fn answer<B>(request: &http::Request<B>) -> http::Response<Full<Bytes>> {
    let status = if request.headers().contains_key("authorization") {
        200
    } else {
        401
    };
    let mut response = http::Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_with_a_valid_token_allocates_no_more_than_the_bare_service() {
    let tokens = TokenSet::new("at", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() + Duration::from_secs(3600)));
    let header = tokens.authorization_value();

    let bare = service_fn(|request: http::Request<Full<Bytes>>| async move {
        Ok::<_, std::convert::Infallible>(answer(&request))
    });
    let bare = per_request(
        |request| async move { bare.oneshot(request).await.unwrap().status().as_u16() },
        Some(&header),
    )
    .await;

    let store = Arc::new(MemoryStore::new());
    store.save_tokens(MCP, &tokens).await.unwrap();
    let layer = OAuthLayer::new(
        ClientConfig::new("http://127.0.0.1:1/cb"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store as Arc<dyn TokenStore>);
    let layered = layer.layer(service_fn(
        |request: http::Request<OAuthBody<Full<Bytes>>>| async move {
            Ok::<_, std::convert::Infallible>(answer(&request))
        },
    ));
    let layered = per_request(
        |request| {
            let layered = layered.clone();
            async move { layered.oneshot(request).await.unwrap().status().as_u16() }
        },
        None,
    )
    .await;
    assert_eq!(layered, bare, "allocations per request: layered vs bare");
}
