//! rmcp's own client over `TowerHttpClient` against the testkit, over loopback TCP: the layer
//! authorizes the first request rmcp sends, and rmcp never sees the `401`.

use std::error::Error as _;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use mcp_oauth_testkit::{RecordedRequest, ServerRole, Testkit, TestkitConfig};
use rmcp::model::CallToolRequestParams;
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use tower_mcp_oauth::rmcp::{HyperOAuthService, TowerHttpClient, TowerHttpError};
use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthLayer};

const REDIRECT: &str = "http://localhost:3000/callback";
/// A bound on every session, so that a regression fails instead of hanging the suite.
const LIMIT: Duration = Duration::from_secs(30);

type Transport = StreamableHttpClientTransport<TowerHttpClient<HyperOAuthService<HttpConnector>>>;

fn transport(kit: &Testkit) -> Transport {
    let client = TowerHttpClient::http(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new());
    StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(kit.resource_url()),
    )
}

fn is_mcp(request: &RecordedRequest) -> bool {
    request.role == ServerRole::Resource && request.path == "/mcp"
}

fn rpc_method(request: &RecordedRequest) -> String {
    request
        .json()
        .and_then(|body| body["method"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Initialize, list the tools, call `test-tool`; then check in the servers' log that the flow
/// ran through the layer and that every MCP request after it carried the token.
async fn full_session(config: TestkitConfig) {
    let kit = Testkit::start(config).await.unwrap();
    let mcp = tokio::time::timeout(LIMIT, ().serve(transport(&kit)))
        .await
        .expect("initialize in time")
        .expect("initialize");
    let info = mcp.peer_info().expect("the server's initialize result");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("mcp-oauth-testkit")
    );

    let tools = tokio::time::timeout(LIMIT, mcp.list_all_tools())
        .await
        .unwrap()
        .unwrap();
    assert!(tools.iter().any(|t| t.name == "test-tool"), "{tools:?}");

    let result = tokio::time::timeout(
        LIMIT,
        mcp.call_tool(CallToolRequestParams::new("test-tool")),
    )
    .await
    .unwrap()
    .unwrap();
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.as_str());
    assert_eq!(text, Some("test"));
    mcp.cancel().await.unwrap();

    let log = kit.requests();
    let prm = log
        .iter()
        .position(|r| r.role == ServerRole::Resource && r.path.contains("oauth-protected-resource"))
        .expect("the layer fetched the protected resource metadata");
    let token_requests: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| r.role == ServerRole::Authorization && r.path.ends_with("/token"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        token_requests.len(),
        1,
        "one token request for the whole session"
    );
    let token_at = token_requests[0];
    assert!(prm < token_at);

    // The flow was started by rmcp's first POST, sent without a token.
    let first = log.iter().position(is_mcp).unwrap();
    assert!(first < prm && log[first].bearer().is_none());

    let after: Vec<&RecordedRequest> = log[token_at..].iter().filter(|r| is_mcp(r)).collect();
    let methods: Vec<String> = after.iter().map(|r| rpc_method(r)).collect();
    for expected in ["notifications/initialized", "tools/list", "tools/call"] {
        assert!(
            methods.iter().any(|m| m == expected),
            "{expected} missing from {methods:?}"
        );
    }
    let tokens: Vec<Option<String>> = after.iter().map(|r| r.bearer()).collect();
    assert!(
        tokens.iter().all(|t| t.is_some() && *t == tokens[0]),
        "every MCP request after the flow carries the one token: {methods:?}"
    );
}

#[tokio::test]
async fn json_responses() {
    full_session(TestkitConfig::default()).await;
}

#[tokio::test]
async fn sse_responses() {
    full_session(TestkitConfig::default().sse_responses(true)).await;
}

#[tokio::test]
async fn a_message_over_the_replay_cap_is_sent_again_with_the_token() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    // A cap smaller than any MCP message: the layer authorizes on rmcp's `initialize` but
    // cannot replay it, and hands the 401 back marked; the client sends it again.
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .max_replay_bytes(16);
    let client = TowerHttpClient::with_connector(HttpConnector::new(), layer);
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(kit.resource_url()),
    );
    let mcp = tokio::time::timeout(LIMIT, ().serve(transport))
        .await
        .expect("initialize in time")
        .expect("initialize");
    mcp.cancel().await.unwrap();

    let log = kit.requests();
    let initializes: Vec<Option<String>> = log
        .iter()
        .filter(|r| is_mcp(r) && rpc_method(r) == "initialize")
        .map(RecordedRequest::bearer)
        .collect();
    assert_eq!(initializes.len(), 2, "the first attempt and the one resend");
    assert!(initializes[0].is_none() && initializes[1].is_some());
}

#[tokio::test]
async fn a_failed_authorization_is_an_rmcp_error_that_names_the_kind() {
    let kit = Testkit::start(
        TestkitConfig::default().prm_resource_override("https://evil.example.com/mcp"),
    )
    .await
    .unwrap();
    let Err(error) = tokio::time::timeout(LIMIT, ().serve(transport(&kit)))
        .await
        .expect("the failure in time")
    else {
        panic!("initialize must fail");
    };

    // The whole chain, as an application would log it.
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" <- {cause}"));
        source = cause.source();
    }
    assert!(text.contains("ResourceMismatch"), "{text}");

    // And typed, for an application that matches on it: rmcp keeps the transport's error
    // boxed in the initialize error.
    let ClientInitializeError::TransportError {
        error: transport, ..
    } = &error
    else {
        panic!("expected a transport error, got {error:?}");
    };
    let Some(StreamableHttpError::Client(client)) = transport
        .error
        .downcast_ref::<StreamableHttpError<TowerHttpError>>()
    else {
        panic!("expected this crate's client error, got {transport:?}");
    };
    assert_eq!(client.kind(), Some(ErrorKind::ResourceMismatch));

    // The mismatch stops the flow before anything is asked of the authorization server.
    let log = kit.requests();
    let paths: Vec<&str> = log.iter().map(|r| r.path.as_str()).collect();
    assert!(
        log.iter().all(|r| r.role == ServerRole::Resource),
        "{paths:?}"
    );
}
