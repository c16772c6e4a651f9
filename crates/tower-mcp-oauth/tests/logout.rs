//! Logout with revocation (RFC 7009) over loopback TCP: the refresh token and then the access
//! token are revoked at the authorization server; with no revocation endpoint, or one that
//! refuses, the failure is reported; every time the local state is wiped and the next request
//! authorizes again.

mod support;

use std::sync::Arc;

use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use tower::ServiceExt;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthLayer, RevokedToken,
    TokenStore, DEFAULT_MAX_RESPONSE_BYTES,
};

use support::http_client;
use support::lifecycle::{call, count, last_bearer, service, REDIRECT};

struct Connected {
    kit: Testkit,
    layer: OAuthLayer,
    store: Arc<MemoryStore>,
    client: HttpClient,
}

/// A layer that has logged in to a testkit configured by `config`.
async fn connected(config: TestkitConfig) -> Connected {
    let kit = Testkit::start(config).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&store));
    let svc = service(layer.clone());
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let client = HttpClient::from_service(http_client(), DEFAULT_MAX_RESPONSE_BYTES);
    Connected {
        kit,
        layer,
        store,
        client,
    }
}

/// After a logout: nothing stored, and the next request authorizes again and succeeds.
async fn next_request_authorizes_again(c: &Connected) {
    let stored = c.store.load_tokens(&c.kit.resource_url()).await.unwrap();
    assert!(stored.is_none());
    let svc = service(c.layer.clone());
    assert_eq!(call(&svc, &c.kit, "tools/list").await.status(), 200);
    assert_eq!(count(&c.kit, "/authorize"), 2);
}

#[tokio::test]
async fn revokes_the_refresh_then_the_access_token_and_forgets_them() {
    let c = connected(TestkitConfig::default().revocation(true)).await;
    let old_token = last_bearer(&c.kit).unwrap();
    let logout = c
        .layer
        .logout(&c.kit.resource_url(), &c.client)
        .await
        .unwrap();
    assert!(logout.all_revoked(), "{logout:?}");
    assert_eq!(logout.issuer.as_deref(), Some(c.kit.issuer().as_str()));
    assert_eq!(
        logout.resource.as_ref().map(|r| r.as_str().to_owned()),
        Some(c.kit.resource_url())
    );
    let kinds: Vec<RevokedToken> = logout.revocations.iter().map(|r| r.token).collect();
    assert_eq!(kinds, [RevokedToken::Refresh, RevokedToken::Access]);
    let hints: Vec<Option<String>> = c
        .kit
        .requests()
        .iter()
        .filter(|r| r.path == "/revoke")
        .map(|r| r.form_param("token_type_hint"))
        .collect();
    assert_eq!(
        hints,
        [Some("refresh_token".into()), Some("access_token".into())]
    );
    // The authorization server no longer honours the old token.
    let request = http::Request::post(c.kit.resource_url())
        .header("authorization", format!("Bearer {old_token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string(),
        )))
        .unwrap();
    let plain = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    assert_eq!(plain.oneshot(request).await.unwrap().status(), 401);
    next_request_authorizes_again(&c).await;
}

#[tokio::test]
async fn without_a_revocation_endpoint_the_tokens_are_still_forgotten() {
    let c = connected(TestkitConfig::default()).await;
    let logout = c
        .layer
        .logout(&c.kit.resource_url(), &c.client)
        .await
        .unwrap();
    assert!(!logout.all_revoked());
    assert_eq!(logout.revocations.len(), 2);
    for revocation in &logout.revocations {
        let error = revocation.result.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::RevocationUnsupported);
    }
    assert_eq!(count(&c.kit, "/revoke"), 0);
    next_request_authorizes_again(&c).await;
}

#[tokio::test]
async fn a_refused_revocation_is_reported_and_the_tokens_are_still_forgotten() {
    let c = connected(TestkitConfig::default().revocation(true)).await;
    c.kit.set_override(
        ServerRole::Authorization,
        "/revoke",
        CannedResponse::json(400, json!({"error": "invalid_client"})),
    );
    let logout = c
        .layer
        .logout(&c.kit.resource_url(), &c.client)
        .await
        .unwrap();
    assert_eq!(logout.revocations.len(), 2);
    for revocation in &logout.revocations {
        let error = revocation.result.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::RevocationRefused);
        assert_eq!(error.oauth_error().unwrap().error, "invalid_client");
    }
    next_request_authorizes_again(&c).await;
}

#[tokio::test]
async fn nothing_held_is_nothing_to_do() {
    let kit = Testkit::start(TestkitConfig::default().revocation(true))
        .await
        .unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new());
    let client = HttpClient::from_service(http_client(), DEFAULT_MAX_RESPONSE_BYTES);
    let logout = layer.logout(&kit.resource_url(), &client).await.unwrap();
    assert!(logout.resource.is_none() && logout.revocations.is_empty());
    assert!(kit.requests().is_empty());
    let err = layer.logout("/mcp", &client).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequestUri);
}
