//! Logout with revocation (RFC 7009) over loopback TCP: the refresh token and then the access
//! token are revoked at the authorization server; with no revocation endpoint, or one that
//! refuses, or one lost on the network, the failure is reported; every time the local state is
//! wiped and the next request authorizes again. `WebLogin::logout` does it for one user only.

mod support;

use std::sync::Arc;

use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use tower::ServiceExt;
use tower_mcp_oauth::web::WebLogin;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthLayer, RevokedToken,
    TokenStore, DEFAULT_MAX_RESPONSE_BYTES,
};

use support::lifecycle::{call, count, last_bearer, service, REDIRECT};
use support::{http_client, jsonrpc};

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

#[tokio::test]
async fn a_revocation_lost_on_the_network_is_reported_and_the_tokens_are_still_forgotten() {
    let c = connected(TestkitConfig::default().revocation(true)).await;
    // The revocation endpoint closes every connection without an answer.
    c.kit.inject_fault(Step::Revocation, Fault::ConnectionReset);
    let logout = c
        .layer
        .logout(&c.kit.resource_url(), &c.client)
        .await
        .unwrap();
    assert!(!logout.all_revoked(), "{logout:?}");
    let kinds: Vec<RevokedToken> = logout.revocations.iter().map(|r| r.token).collect();
    assert_eq!(kinds, [RevokedToken::Refresh, RevokedToken::Access]);
    for revocation in &logout.revocations {
        let error = revocation.result.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transport, "{error:#}");
    }
    // Both revocations were attempted (and recorded) before the connection dropped.
    assert_eq!(count(&c.kit, "/revoke"), 2);
    c.kit.clear_faults();
    next_request_authorizes_again(&c).await;
}

/// Logs `user` in through `login` (the testkit approves at once).
async fn web_login(login: &WebLogin, user: &str, kit: &Testkit) {
    let started = login.start(user, &kit.resource_url()).await.unwrap();
    let request = http::Request::get(started.as_str())
        .body(bytes::Bytes::new())
        .unwrap();
    let response = web_client().send(request).await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()[http::header::LOCATION].to_str().unwrap();
    let query = location.split_once('?').unwrap().1.to_owned();
    login.complete(user, &query).await.unwrap();
}

fn web_client() -> HttpClient {
    HttpClient::from_service(http_client(), DEFAULT_MAX_RESPONSE_BYTES)
}

/// One MCP call as `user` through `login`'s layer for them.
async fn web_call(
    login: &WebLogin,
    user: &str,
    kit: &Testkit,
) -> Result<u16, tower_mcp_oauth::Error> {
    let svc = service(login.layer_for(user));
    svc.oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
        .await
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn a_web_logout_revokes_one_users_tokens_and_leaves_the_others() {
    let kit = Testkit::start(TestkitConfig::default().revocation(true))
        .await
        .unwrap();
    let login = WebLogin::new(ClientConfig::new(REDIRECT), web_client());
    web_login(&login, "alice", &kit).await;
    web_login(&login, "bob", &kit).await;
    assert_eq!(web_call(&login, "alice", &kit).await.unwrap(), 200);
    let url = kit.resource_url();
    let alices = login
        .user_store("alice")
        .load_tokens(&url)
        .await
        .unwrap()
        .unwrap();
    let bobs = login
        .user_store("bob")
        .load_tokens(&url)
        .await
        .unwrap()
        .unwrap();

    let logout = login.logout("alice", &url).await.unwrap();
    assert!(logout.all_revoked(), "{logout:?}");
    // Alice's refresh token first, then her access token, and nothing of Bob's.
    let revoked: Vec<(Option<String>, Option<String>)> = kit
        .requests()
        .iter()
        .filter(|r| r.path == "/revoke")
        .map(|r| (r.form_param("token_type_hint"), r.form_param("token")))
        .collect();
    assert_eq!(
        revoked,
        [
            (
                Some("refresh_token".into()),
                alices.refresh_token().map(|t| t.secret().clone())
            ),
            (
                Some("access_token".into()),
                Some(alices.access_token().secret().clone())
            ),
        ]
    );

    // Alice must log in again; Bob's tokens and calls are untouched.
    assert!(login
        .user_store("alice")
        .load_tokens(&url)
        .await
        .unwrap()
        .is_none());
    let error = web_call(&login, "alice", &kit).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InteractionRequired, "{error:#}");
    let kept = login
        .user_store("bob")
        .load_tokens(&url)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.access_token().secret(), bobs.access_token().secret());
    assert_eq!(web_call(&login, "bob", &kit).await.unwrap(), 200);
    web_login(&login, "alice", &kit).await;
    assert_eq!(web_call(&login, "alice", &kit).await.unwrap(), 200);
}

#[tokio::test]
async fn a_logout_revokes_what_another_process_refreshed_too() {
    // Two processes share a store: the first signed in and holds those tokens; the second
    // adopted them, met a 401 and refreshed them (a new refresh token, the old one spent).
    let c = connected(TestkitConfig::default().revocation(true)).await;
    let other = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&c.store));
    c.kit.revoke_all_tokens();
    assert_eq!(
        call(&service(other), &c.kit, "tools/list").await.status(),
        200
    );
    let refreshed = c
        .store
        .load_tokens(&c.kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    let live = refreshed.refresh_token().unwrap().secret().clone();

    // The first process logs out: the store's newer refresh token is revoked as well as the
    // tokens it held itself, the live one first.
    let logout = c
        .layer
        .logout(&c.kit.resource_url(), &c.client)
        .await
        .unwrap();
    assert!(logout.all_revoked(), "{:?}", logout.revocations);
    let revoked: Vec<String> = c
        .kit
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/revoke"))
        .map(|r| r.form_param("token").unwrap())
        .collect();
    assert_eq!(revoked.first(), Some(&live), "{revoked:?}");
    assert_eq!(revoked.len(), 4);
    next_request_authorizes_again(&c).await;
}
