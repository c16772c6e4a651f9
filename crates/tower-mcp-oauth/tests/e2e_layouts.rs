//! End to end over real loopback TCP: hyper-util `Client` → `OAuthLayer` → testkit servers,
//! one test per discovery layout, asserting the exact sequence of requests the servers saw.

mod support;

use mcp_oauth_testkit::{DiscoveryLayout, ServerRole, Testkit, TestkitConfig};
use support::{http_client, jsonrpc, read_json};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};

const REDIRECT: &str = "http://localhost:3000/callback";

/// Runs `tools/call` twice through the layer and returns the request log as
/// `"<RS|AS> <METHOD> <path>"` lines.
async fn run(layout: DiscoveryLayout) -> Vec<String> {
    let kit = Testkit::start(TestkitConfig::default().layout(layout))
        .await
        .unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new());
    let service = ServiceBuilder::new().layer(layer).service(http_client());
    let call = || {
        jsonrpc(
            &kit.resource_url(),
            1,
            "tools/call",
            serde_json::json!({"name": "test-tool", "arguments": {}}),
        )
    };

    let response = service.clone().oneshot(call()).await.unwrap();
    assert_eq!(response.status(), 200, "{layout:?}");
    let body = read_json(response).await;
    assert_eq!(body["result"]["content"][0]["text"], "test", "{layout:?}");

    // The second call reuses the token: one request, no discovery.
    let before = kit.requests().len();
    let response = service.oneshot(call()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(kit.requests().len(), before + 1);

    kit.requests()
        .iter()
        .map(|r| {
            let role = match r.role {
                ServerRole::Resource => "RS",
                ServerRole::Authorization => "AS",
            };
            format!("{role} {} {}", r.method, r.path)
        })
        .collect()
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn challenge_url_layout() {
    assert_eq!(
        run(DiscoveryLayout::ChallengeUrl).await,
        lines(&[
            "RS POST /mcp",
            "RS GET /.well-known/oauth-protected-resource/mcp",
            "AS GET /.well-known/oauth-authorization-server",
            "AS POST /register",
            "AS GET /authorize",
            "AS POST /token",
            "RS POST /mcp",
            "RS POST /mcp",
        ])
    );
}

#[tokio::test]
async fn path_well_known_layout() {
    assert_eq!(
        run(DiscoveryLayout::PathWellKnown).await,
        lines(&[
            "RS POST /mcp",
            "RS GET /.well-known/oauth-protected-resource/mcp",
            "AS GET /.well-known/oauth-authorization-server",
            "AS GET /.well-known/openid-configuration",
            "AS POST /register",
            "AS GET /authorize",
            "AS POST /token",
            "RS POST /mcp",
            "RS POST /mcp",
        ])
    );
}

#[tokio::test]
async fn root_well_known_layout() {
    assert_eq!(
        run(DiscoveryLayout::RootWellKnown).await,
        lines(&[
            "RS POST /mcp",
            "RS GET /.well-known/oauth-protected-resource/mcp",
            "RS GET /.well-known/oauth-protected-resource",
            "AS GET /.well-known/oauth-authorization-server/tenant1",
            "AS POST /tenant1/register",
            "AS GET /tenant1/authorize",
            "AS POST /tenant1/token",
            "RS POST /mcp",
            "RS POST /mcp",
        ])
    );
}

#[tokio::test]
async fn custom_prm_url_with_oidc_path_append() {
    assert_eq!(
        run(DiscoveryLayout::CustomPrmUrl).await,
        lines(&[
            "RS POST /mcp",
            "RS GET /custom/metadata/location.json",
            "AS GET /.well-known/oauth-authorization-server/tenant1",
            "AS GET /.well-known/openid-configuration/tenant1",
            "AS GET /tenant1/.well-known/openid-configuration",
            "AS POST /tenant1/register",
            "AS GET /tenant1/authorize",
            "AS POST /tenant1/token",
            "RS POST /mcp",
            "RS POST /mcp",
        ])
    );
}

#[tokio::test]
async fn oidc_path_insertion_layout() {
    assert_eq!(
        run(DiscoveryLayout::OidcPathInsertion).await,
        lines(&[
            "RS POST /mcp",
            "RS GET /custom/metadata/location.json",
            "AS GET /.well-known/oauth-authorization-server/tenant1",
            "AS GET /.well-known/openid-configuration/tenant1",
            "AS POST /tenant1/register",
            "AS GET /tenant1/authorize",
            "AS POST /tenant1/token",
            "RS POST /mcp",
            "RS POST /mcp",
        ])
    );
}

#[tokio::test]
async fn legacy_metadata_at_origin_layout() {
    assert_eq!(
        run(DiscoveryLayout::LegacyMetadataAtOrigin).await,
        lines(&[
            "RS POST /mcp",
            "RS GET /.well-known/oauth-protected-resource/mcp",
            "RS GET /.well-known/oauth-protected-resource",
            "RS GET /.well-known/oauth-authorization-server",
            "RS POST /oauth/register",
            "RS GET /oauth/authorize",
            "RS POST /oauth/token",
            "RS POST /mcp",
            "RS POST /mcp",
        ])
    );
}

#[tokio::test]
async fn legacy_endpoint_fallback_layout() {
    assert_eq!(
        run(DiscoveryLayout::LegacyEndpointFallback).await,
        lines(&[
            "RS POST /mcp",
            "RS GET /.well-known/oauth-protected-resource/mcp",
            "RS GET /.well-known/oauth-protected-resource",
            "RS GET /.well-known/oauth-authorization-server",
            "RS GET /.well-known/openid-configuration",
            "RS POST /register",
            "RS GET /authorize",
            "RS POST /token",
            "RS POST /mcp",
            "RS POST /mcp",
        ])
    );
}
