//! The whole flow against the in-process testkit servers: no setup, no network.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! An MCP client built from hyper-util's `Client` and `OAuthLayer` calls a protected MCP
//! server. Every request the inner client sends is printed as it happens, so the run shows each
//! discovery URL tried, the registration, the authorization, the token request, and the retried
//! call; then a second call that needs nothing but the cached token.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::{jsonrpc, read_json, DiscoveryLayout, Testkit, TestkitConfig};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};

/// The request body the demo sends.
type Body = Full<Bytes>;

/// What a request is, in the protocol's words.
fn describe(method: &http::Method, path: &str) -> &'static str {
    match (method.as_str(), path) {
        (_, p) if p.contains("oauth-protected-resource") || p.contains("/custom/") => {
            "protected resource metadata (RFC 9728)"
        }
        (_, p) if p.contains("oauth-authorization-server") => {
            "authorization server metadata (RFC 8414)"
        }
        (_, p) if p.contains("openid-configuration") => {
            "authorization server metadata (OpenID Connect)"
        }
        (_, p) if p.ends_with("/register") => "dynamic client registration (RFC 7591)",
        (_, p) if p.ends_with("/authorize") => {
            "authorization request, PKCE S256 (RFC 7636), consent"
        }
        (_, p) if p.ends_with("/token") => {
            "token request: code or refresh (RFC 6749 §4.1.3, §6; RFC 8707)"
        }
        _ => "MCP request",
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(error) = run().await {
        match error.downcast_ref::<tower_mcp_oauth::Error>() {
            // `{:#}`: the kind, the message and every cause, on one line.
            Some(e) => eprintln!("error: {e:#}"),
            None => eprintln!("error: {error}"),
        }
        if let Some(e) = error.downcast_ref::<tower_mcp_oauth::Error>() {
            eprintln!("kind: {:?}", e.kind());
            if let Some(report) = e.report() {
                eprintln!("discovery report (every URL the flow tried):\n{report}");
            }
        }
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let layout = match std::env::args().nth(1).as_deref() {
        Some("legacy") => DiscoveryLayout::LegacyMetadataAtOrigin,
        Some("root") => DiscoveryLayout::RootWellKnown,
        _ => DiscoveryLayout::ChallengeUrl,
    };
    let kit = Testkit::start(
        TestkitConfig::default()
            .layout(layout)
            .prm_scopes_supported(["mcp:tools"])
            .as_scopes_supported(["mcp:tools", "offline_access"]),
    )
    .await?;
    println!(
        "testkit: MCP server {}  authorization server {}",
        kit.resource_url(),
        kit.issuer()
    );
    println!("layout:  {layout:?}\n");

    // The inner client, wrapped only to print what goes over the wire.
    // The layer hands its inner service `OAuthBody<B>`, the body it can replay after a 401.
    let client = Client::builder(TokioExecutor::new()).build_http::<OAuthBody<Body>>();
    let started = Instant::now();
    let logged = tower::service_fn(move |req: http::Request<OAuthBody<Body>>| {
        let client = client.clone();
        async move {
            let what = describe(req.method(), req.uri().path());
            // The authorization URL carries `state`: print it without its query.
            let shown = format!(
                "{}://{}{}",
                req.uri().scheme_str().unwrap_or("http"),
                req.uri().authority().map(|a| a.as_str()).unwrap_or(""),
                req.uri().path()
            );
            let method = req.method().clone();
            let has_auth = req.headers().contains_key("authorization");
            let response = client.oneshot(req).await?;
            println!(
                "  {:>6.1} ms  {method:<4} {shown:<72} {}  {what}{}",
                started.elapsed().as_secs_f64() * 1e3,
                response.status().as_u16(),
                if has_auth {
                    " [Authorization: Bearer ***]"
                } else {
                    ""
                }
            );
            Ok::<_, hyper_util::client::legacy::Error>(response)
        }
    });

    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback").client_name("tower-mcp-oauth demo"),
        HeadlessAuthorizer::new(),
    );
    let service = ServiceBuilder::new().layer(layer).service(logged);

    println!("1. tools/call with no token: the layer runs the whole flow, then retries");
    let call = jsonrpc(
        &kit.resource_url(),
        1,
        "tools/call",
        json!({"name": "test-tool", "arguments": {}}),
    );
    let response = service.clone().oneshot(call).await?;
    let status = response.status();
    let body = read_json(response).await;
    println!("   -> {status}  result: {}\n", body["result"]);

    println!("2. tools/list: the cached token is attached, nothing else is sent");
    let response = service
        .clone()
        .oneshot(jsonrpc(&kit.resource_url(), 2, "tools/list", json!({})))
        .await?;
    let status = response.status();
    let body = read_json(response).await;
    println!(
        "   -> {status}  tools: {}\n",
        body["result"]["tools"].as_array().map_or(0, Vec::len)
    );

    println!("3. the server revokes the token: the next call re-reads the metadata and refreshes");
    kit.revoke_all_tokens();
    let response = service
        .oneshot(jsonrpc(&kit.resource_url(), 3, "tools/list", json!({})))
        .await?;
    println!("   -> {}\n", response.status());

    println!("sub-requests seen by the servers: {}", kit.requests().len());
    println!("try also: cargo run --example demo -- legacy   |   cargo run --example demo -- root");
    Ok(())
}
