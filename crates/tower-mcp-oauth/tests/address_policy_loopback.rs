//! The address policy over loopback TCP, against the testkit: a resource on `127.0.0.1` whose
//! metadata names a private or cloud-metadata authorization server, or whose authorization
//! server names such a token endpoint, gets no request sent there (a real connection attempt
//! would end in `Transport` or `Timeout`, not `InsecureUrl`); and loopback, the testkit's own
//! network, keeps working.

mod support;

use std::sync::Arc;

use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, MemoryStore, OAuthLayer, OAuthService, TokenStore,
};

const REDIRECT: &str = "http://localhost:3000/callback";

async fn setup() -> (Testkit, OAuthService<HttpClient>) {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::new(MemoryStore::new()) as Arc<dyn TokenStore>)
        .failure_backoff(std::time::Duration::ZERO);
    let service = ServiceBuilder::new().layer(layer).service(http_client());
    (kit, service)
}

async fn call(kit: &Testkit, service: &OAuthService<HttpClient>) -> Result<u16, String> {
    let req = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    match service.clone().oneshot(req).await {
        Ok(response) => Ok(response.status().as_u16()),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InsecureUrl, "{e}");
            Err(e.to_string())
        }
    }
}

#[tokio::test]
async fn metadata_naming_a_private_or_metadata_server_is_refused_before_any_request_to_it() {
    for (issuer, rule) in [
        ("https://10.0.0.1", "private address (RFC 1918)"),
        ("http://169.254.169.254", "must use https"),
        ("https://169.254.169.254", "never fetched"),
        ("https://[fd00:ec2::254]", "never fetched"),
    ] {
        let (kit, service) = setup().await;
        kit.set_prm_authorization_server(issuer);
        let error = call(&kit, &service).await.expect_err(issuer);
        assert!(error.contains(rule), "{issuer}: {error}");
        // The resource and its metadata were asked; the testkit's own AS never was.
        let paths: Vec<String> = kit.requests().iter().map(|r| r.path.clone()).collect();
        assert!(
            paths
                .iter()
                .any(|p| p.starts_with("/.well-known/oauth-protected-resource")),
            "{paths:?}"
        );
        assert!(
            paths
                .iter()
                .all(|p| !p.contains("oauth-authorization-server")),
            "{paths:?}"
        );
    }
}

#[tokio::test]
async fn a_token_endpoint_at_the_cloud_metadata_service_is_never_called() {
    let (kit, service) = setup().await;
    let issuer = kit.issuer();
    kit.set_override(
        ServerRole::Authorization,
        "/.well-known/oauth-authorization-server",
        CannedResponse::json(
            200,
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": "https://169.254.169.254/latest/api/token",
                "registration_endpoint": format!("{issuer}/register"),
                "code_challenge_methods_supported": ["S256"],
            }),
        ),
    );
    let error = call(&kit, &service).await.unwrap_err();
    assert!(error.contains("169.254.169.254"), "{error}");
    assert!(error.contains("never fetched"), "{error}");
    let saw = |path: &str| kit.requests().iter().any(|r| r.path == path);
    assert!(saw("/authorize"), "consent ran first, at the loopback AS");
    assert!(!saw("/token"));
}

#[tokio::test]
async fn loopback_servers_keep_working() {
    let (kit, service) = setup().await;
    assert_eq!(call(&kit, &service).await.unwrap(), 200);
}
