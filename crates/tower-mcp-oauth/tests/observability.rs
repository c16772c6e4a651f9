//! Every flow step is traced with its URL, and no secret ever reaches the logs, `Debug` or
//! `Display`: not the access or refresh token, the code, the PKCE verifier, the `state`, or the
//! client secret.

mod support;

use support::logs::capture;

use std::sync::Arc;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer, TokenStore};

#[tokio::test(flavor = "current_thread")]
async fn flow_steps_are_traced_and_no_secret_is_logged() {
    let (captured, _guard) = capture(tracing::Level::TRACE);

    // A confidential client (client_secret_post) so there is a client secret to leak.
    let kit = Testkit::start(
        TestkitConfig::default().token_endpoint_auth_methods(["client_secret_post"]),
    )
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store.clone() as Arc<dyn TokenStore>);
    let service = ServiceBuilder::new().layer(layer).service(http_client());
    let response = service
        .clone()
        .oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // And a refresh, so a rotated refresh token goes through the logs too.
    kit.revoke_all_tokens();
    let response = service
        .oneshot(jsonrpc(&kit.resource_url(), 2, "tools/list", json!({})))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let logs = captured.text();
    // Every step, with its URL.
    for needle in [
        "oauth_flow",
        "oauth_request",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/register",
        "/token",
        "requesting consent",
    ] {
        assert!(
            logs.contains(needle),
            "missing {needle:?} in the logs:\n{logs}"
        );
    }

    // The secrets, read from where they went over the wire and where they are stored.
    let tokens = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    let registration = store.load_client(&kit.issuer()).await.unwrap().unwrap();
    let mut secrets = vec![
        tokens.access_token().secret().clone(),
        tokens.refresh_token().unwrap().secret().clone(),
        registration
            .client_secret
            .as_ref()
            .expect("a confidential client")
            .secret()
            .clone(),
    ];
    for r in kit.requests() {
        for name in ["code", "code_verifier", "refresh_token", "client_secret"] {
            secrets.extend(r.form_param(name));
        }
        secrets.extend(r.query_param("state"));
        secrets.extend(r.bearer());
    }
    secrets.retain(|s| s.len() >= 8);
    assert!(
        secrets.len() >= 8,
        "the test must look for real secrets: {}",
        secrets.len()
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
        assert!(
            !format!("{tokens:?}").contains(secret.as_str()),
            "a secret leaked into Debug"
        );
        assert!(
            !format!("{registration:?}").contains(secret.as_str()),
            "a secret leaked into Debug"
        );
    }
}
