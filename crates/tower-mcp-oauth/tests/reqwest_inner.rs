//! reqwest as the service the layer wraps ([`ReqwestService`]): the whole flow goes through
//! it, rmcp's client runs over it, and it follows no redirect, so the layer's own rules about
//! them hold (a same-origin discovery hop, none for a token request, the caller's `3xx` handed
//! back).

use std::time::Duration;

use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::{jsonrpc, Testkit, TestkitConfig};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt as _;
use serde_json::json;
use tower::{Layer, ServiceExt};
use tower_mcp_oauth::reqwest::ReqwestService;
use tower_mcp_oauth::rmcp::TowerHttpClient;
use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthLayer, OAuthService};

const REDIRECT: &str = "http://localhost:3000/callback";
/// A bound on each exchange, so that a regression fails instead of hanging the suite.
const LIMIT: Duration = Duration::from_secs(30);

/// The layer over reqwest, from a builder that asks for ten redirects: the service turns
/// them off whatever the builder says.
fn service() -> OAuthService<ReqwestService> {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10));
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .layer(ReqwestService::from_builder(builder).unwrap())
}

async fn call(
    service: &OAuthService<ReqwestService>,
    kit: &Testkit,
) -> Result<http::Response<reqwest::Body>, tower_mcp_oauth::Error> {
    let request = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    tokio::time::timeout(LIMIT, service.clone().oneshot(request))
        .await
        .expect("the call ended in time")
}

#[tokio::test]
async fn the_whole_flow_goes_through_reqwest() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = service();
    assert_eq!(call(&service, &kit).await.unwrap().status(), 200);
    assert_eq!(call(&service, &kit).await.unwrap().status(), 200);
    assert_eq!(service.flows_started(), 1);
    let log = kit.requests();
    let paths: Vec<&str> = log.iter().map(|r| r.path.as_str()).collect();
    for step in ["/register", "/authorize", "/token"] {
        assert_eq!(paths.iter().filter(|p| **p == step).count(), 1, "{paths:?}");
    }
    // The token request's form went whole, with its length (no chunked upload).
    let token = log.iter().find(|r| r.path == "/token").unwrap();
    assert_eq!(
        token.form_param("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert!(token.headers.contains_key(http::header::CONTENT_LENGTH));
    // Every MCP request after the first carried the token.
    let mcp: Vec<bool> = log
        .iter()
        .filter(|r| r.path == "/mcp")
        .map(|r| r.bearer().is_some())
        .collect();
    assert_eq!(mcp, [false, true, true]);
}

/// A redirect loop at discovery is the layer's `RedirectLimit` (it follows same-origin hops
/// up to its bound), and a token endpoint's redirect is refused at once: had reqwest followed
/// them, each would be a transport error after reqwest's own ten hops, and the token
/// request's `302` would have been sent on as a `GET`.
#[tokio::test]
async fn reqwest_follows_no_redirect_the_layer_has_rules_for() {
    for step in [Step::ResourceMetadata, Step::Token] {
        let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
        kit.inject_fault(step, Fault::RedirectLoop);
        let service = service();
        let error = call(&service, &kit).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::RedirectLimit,
            "{step:?}: {error:#}"
        );
        // The faulted endpoint's requests: reqwest's ten hops would make eleven.
        let prefix = match step {
            Step::Token => "/token",
            _ => "/.well-known/oauth-protected-resource",
        };
        let hits = kit
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count();
        let bound = if step == Step::Token { 1 } else { 6 };
        assert!((1..=bound).contains(&hits), "{step:?}: {hits} requests");
    }
}

/// The caller's own request answered with a redirect comes back to the caller as it is, as
/// from hyper-util's client.
#[tokio::test]
async fn the_callers_redirect_comes_back_to_the_caller() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = service();
    assert_eq!(call(&service, &kit).await.unwrap().status(), 200);
    kit.inject_fault(Step::ResourceRequest, Fault::RedirectLoop);
    let response = call(&service, &kit).await.unwrap();
    assert_eq!(response.status(), 302);
}

/// rmcp's own client over the layer over reqwest: initialize, list the tools, call one.
#[tokio::test]
async fn rmcp_runs_over_the_layer_over_reqwest() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let client = TowerHttpClient::new(service());
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(kit.resource_url()),
    );
    let mcp = tokio::time::timeout(LIMIT, ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    let tools = tokio::time::timeout(LIMIT, mcp.list_all_tools())
        .await
        .unwrap()
        .unwrap();
    assert!(tools.iter().any(|t| t.name == "test-tool"), "{tools:?}");
    mcp.cancel().await.unwrap();
    assert_eq!(
        kit.requests().iter().filter(|r| r.path == "/token").count(),
        1
    );
}

/// A proxy set for everything (here one that does not answer, as a corporate proxy in the
/// environment would be to a local server) is not taken to a loopback host: the URL policy
/// allows plain `http` there only because it stays on the machine.
#[tokio::test]
async fn a_loopback_server_is_reached_directly_whatever_the_proxy() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let dead_proxy = reqwest::Proxy::all("http://127.0.0.1:1").unwrap();
    let builder = reqwest::Client::builder().proxy(dead_proxy);
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .layer(ReqwestService::from_builder(builder).unwrap());
    assert_eq!(call(&service, &kit).await.unwrap().status(), 200);
    assert_eq!(service.flows_started(), 1);
}

/// reqwest names the request's URL in its errors, query and all; through the service they
/// name none, so a caller's `?api_key=` (or a `state` on the authorizer's hop) reaches no log.
#[tokio::test]
async fn a_transport_error_names_no_query() {
    let service = service();
    let request = jsonrpc(
        "http://127.0.0.1:1/mcp?api_key=SECRET-key",
        1,
        "ping",
        json!({}),
    );
    let error = tokio::time::timeout(LIMIT, service.oneshot(request))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:#}");
    for shown in [
        format!("{error}"),
        format!("{error:#}"),
        format!("{error:?}"),
    ] {
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}

/// A caller's body that is not `Sync` (an `UnsyncBoxBody`, as axum's is) goes through as well.
#[tokio::test]
async fn a_body_that_is_not_sync_goes_through() {
    use http_body_util::BodyExt;
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let service = service();
    let request = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}))
        .map(|body| body.map_err(tower_mcp_oauth::BoxError::from).boxed_unsync());
    let response = tokio::time::timeout(LIMIT, service.oneshot(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
}
