//! `&OAuthService` as a service, as hyper-util's `&Client` is: a caller that shares one service
//! (an `Arc`, a `static`) sends through a reference, with no clone per request, and gets
//! everything a clone gets: the flow on the first request, the token on the next ones, the
//! recovery and the retry after a `401`, one flow for many callers at once, requests outside
//! the layer's servers passed on untouched, a token due for refresh refreshed first. Over real
//! loopback HTTP against the testkit.

mod support;

use std::sync::Arc;

use futures_util::future::join_all;
use mcp_oauth_testkit::{RecordedRequest, Testkit, TestkitConfig};
use serde_json::json;
use support::lifecycle::{self, TestClock};
use support::{http_client, jsonrpc, HttpClient};
use tower::{Layer, Service, ServiceExt};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, McpServers, OAuthLayer, OAuthService};

fn layer() -> OAuthLayer {
    OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
}

fn tools_list(kit: &Testkit) -> http::Request<support::Body> {
    jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}))
}

/// The requests to the MCP endpoint the testkit saw, in order.
fn mcp_requests(kit: &Testkit) -> Vec<RecordedRequest> {
    let path = http::Uri::try_from(kit.resource_url())
        .unwrap()
        .path()
        .to_owned();
    kit.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

fn grants(kit: &Testkit) -> Vec<String> {
    kit.requests()
        .iter()
        .filter(|r| r.path == "/token")
        .map(|r| r.form_param("grant_type").unwrap())
        .collect()
}

#[tokio::test]
async fn through_a_reference_the_first_request_runs_the_flow_and_the_next_carry_its_token() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service: OAuthService<HttpClient> = layer().layer(http_client());

    let first = (&service).oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(service.flows_started(), 1);
    let second = (&service).oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(second.status(), 200);

    // The first request went out without a token, was answered 401 and sent again with one;
    // the second went with the same token at once.
    let sent: Vec<_> = mcp_requests(&kit).iter().map(|r| r.bearer()).collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0], None);
    assert!(sent[1].is_some());
    assert_eq!(sent[2], sent[1]);
    assert_eq!(grants(&kit), ["authorization_code"]);
}

#[tokio::test]
async fn a_401_on_the_hot_path_of_a_reference_is_recovered_and_the_body_sent_again() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = layer().layer(http_client());
    assert_eq!(
        (&service).oneshot(tools_list(&kit)).await.unwrap().status(),
        200
    );

    // The server forgets every token: the next request, sent through `&S` with the old one, is
    // answered 401; the layer refreshes and sends it again (through a clone of `S`).
    kit.revoke_all_tokens();
    kit.clear_requests();
    let request = jsonrpc(&kit.resource_url(), 7, "tools/list", json!({}));
    let response = (&service).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let sent = mcp_requests(&kit);
    assert_eq!(sent.len(), 2, "the request and its retry");
    assert_ne!(sent[0].bearer(), sent[1].bearer());
    assert!(sent[1].bearer().is_some());
    assert_eq!(sent[0].json(), sent[1].json(), "the body replayed whole");
    assert_eq!(sent[1].json().unwrap()["id"], 7);
    assert_eq!(grants(&kit), ["refresh_token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_sharing_one_reference_share_one_flow() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = Arc::new(layer().layer(http_client()));
    // Sixteen tasks, on both worker threads, each sending through the one service.
    let calls = (0..16).map(|_| {
        let (service, request) = (Arc::clone(&service), tools_list(&kit));
        tokio::spawn(async move { (&*service).oneshot(request).await.unwrap().status() })
    });
    let statuses: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(service.flows_started(), 1);
    assert_eq!(grants(&kit), ["authorization_code"]);
}

#[tokio::test]
async fn a_token_due_for_refresh_is_refreshed_before_a_request_through_a_reference() {
    let kit = Testkit::start(TestkitConfig::default().token_lifetime_secs(3600))
        .await
        .unwrap();
    let clock = TestClock::default();
    let service = lifecycle::service(lifecycle::layer(&clock));
    assert_eq!(
        (&service).oneshot(tools_list(&kit)).await.unwrap().status(),
        200
    );
    let first = mcp_requests(&kit).last().unwrap().bearer();

    // Past the refresh point (expiry - 60 s), before expiry: `&service` refreshes first (through
    // a clone of the client: a reference holds no reservation) and sends with the new token.
    clock.set(3545);
    kit.clear_requests();
    let mut shared = &service;
    let response = shared
        .ready()
        .await
        .unwrap()
        .call(tools_list(&kit))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let paths: Vec<_> = kit.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/token", "/mcp"]);
    assert_eq!(grants(&kit), ["refresh_token"]);
    let sent = mcp_requests(&kit)[0].bearer();
    assert!(sent.is_some());
    assert_ne!(sent, first);
}

#[tokio::test]
async fn a_request_outside_the_layers_servers_passes_through_a_reference_untouched() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let servers = McpServers::prefixes([format!("{}/elsewhere", kit.resource_origin())]).unwrap();
    let service = layer().only_for(servers).layer(http_client());

    // The MCP endpoint is outside the one server the layer covers: its 401 comes back as it
    // is, no flow runs, no token is sent.
    let response = (&service).oneshot(tools_list(&kit)).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(service.flows_started(), 0);
    assert_eq!(mcp_requests(&kit).len(), 1);
    assert!(grants(&kit).is_empty());
}

/// A request's future rides through the caller's `async` blocks and the executor, moved at
/// each step: at 128 bytes or less the compiler moves it with a few vector moves (x86-64's
/// baseline, SSE2), past that with a call to `memcpy` each time (see the note on the crate's
/// `SentHead`). Both forms over hyper-util's client stay within it.
#[tokio::test]
async fn a_requests_future_is_small_enough_to_move_without_memcpy() {
    let mut service: OAuthService<HttpClient> = layer().layer(http_client());
    // Made, never polled: nothing is sent.
    let request = || jsonrpc("http://127.0.0.1:1/mcp", 1, "tools/list", json!({}));
    let owned = service.ready().await.unwrap().call(request());
    let shared = (&service).ready().await.unwrap().call(request());
    assert!(
        std::mem::size_of_val(&owned) <= 128,
        "{}",
        std::mem::size_of_val(&owned)
    );
    assert!(
        std::mem::size_of_val(&shared) <= 128,
        "{}",
        std::mem::size_of_val(&shared)
    );
}
