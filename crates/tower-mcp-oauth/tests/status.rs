//! The status of one MCP server over loopback TCP (issue 9, item 4): not connected before a
//! login; issuer, scopes, expiry and refresh token after one; the last flow error with its kind
//! and time after a failure, cleared by the next success; not connected after a logout; and
//! per user on `WebLogin`, users kept apart. Also: a logout that runs while a flow is waiting
//! for consent wins; the flow's tokens are never installed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_mcp_oauth::web::WebLogin;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthLayer, Scopes,
    TokenStore, DEFAULT_MAX_RESPONSE_BYTES,
};

use support::consent::HeldConsent;
use support::lifecycle::{call, layer, service, TestClock, REDIRECT};
use support::{http_client, jsonrpc};

fn client() -> HttpClient {
    HttpClient::from_service(http_client(), DEFAULT_MAX_RESPONSE_BYTES)
}

#[tokio::test]
async fn status_through_login_failure_success_and_logout() {
    let kit = Testkit::start(
        TestkitConfig::default()
            .revocation(true)
            .prm_scopes_supported(["mcp:tools"]),
    )
    .await
    .unwrap();
    let clock = TestClock::default();
    let layer = layer(&clock);
    let url = kit.resource_url();

    let fresh = layer.status(&url).await.unwrap();
    assert!(!fresh.connected);
    assert!(fresh.issuer.is_none() && fresh.last_error.is_none());

    // A failed login: the token endpoint is down.
    kit.inject_fault(Step::Token, Fault::ServerError);
    let svc = service(layer.clone());
    let failed = svc
        .clone()
        .oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({})))
        .await;
    assert!(failed.is_err());
    let status = layer.status(&url).await.unwrap();
    assert!(!status.connected);
    let last = status.last_error.expect("the failure is recorded");
    assert_eq!(last.kind, ErrorKind::UnexpectedStatus);
    let age = clock.now().duration_since(last.at).unwrap();
    assert!(
        age < Duration::from_secs(5),
        "dated by the layer's clock: {age:?}"
    );
    assert!(last.message.contains("token endpoint"), "{}", last.message);

    // The next login succeeds: connected, and the error is gone.
    kit.clear_faults();
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let status = layer.status(&url).await.unwrap();
    assert!(status.connected && status.has_refresh_token, "{status:?}");
    assert_eq!(status.issuer.as_deref(), Some(kit.issuer().as_str()));
    let scopes = status.scopes.as_ref().expect("granted scopes");
    assert!(
        scopes.contains_all(&Scopes::parse("mcp:tools")),
        "{status:?}"
    );
    assert!(status.expires_at.unwrap() > clock.now());
    assert_eq!(
        status.resource.as_ref().map(|r| r.as_str()),
        Some(url.as_str())
    );
    assert!(status.last_error.is_none(), "cleared by the success");
    let shown = format!("{status:?}");
    for token in kit.requests().iter().filter_map(|r| r.bearer()) {
        assert!(!shown.contains(&token), "no token in the status");
    }

    // Logged out: not connected.
    layer.logout(&url, &client()).await.unwrap();
    let status = layer.status(&url).await.unwrap();
    assert!(!status.connected && status.issuer.is_none(), "{status:?}");
}

/// A new process knows nothing in memory: the status comes from the store alone, no request.
#[tokio::test]
async fn status_from_the_store_without_a_request() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let first = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&store));
    assert_eq!(
        call(&service(first), &kit, "tools/list").await.status(),
        200
    );
    let requests = kit.requests().len();
    let second = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&store));
    let status = second.status(&kit.resource_url()).await.unwrap();
    assert!(status.connected);
    assert_eq!(status.issuer.as_deref(), Some(kit.issuer().as_str()));
    assert_eq!(kit.requests().len(), requests, "read from the store only");
    let err = second.status("/mcp").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequestUri);
}

/// GETs the authorization URL (the testkit approves at once) and returns the callback query.
async fn approve(url: &url::Url) -> String {
    let request = http::Request::get(url.as_str()).body(Bytes::new()).unwrap();
    let response = client().send(request).await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()[http::header::LOCATION].to_str().unwrap();
    location.split_once('?').unwrap().1.to_owned()
}

#[tokio::test]
async fn web_login_status_per_user() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let login = WebLogin::new(ClientConfig::new(REDIRECT), client());
    let url = kit.resource_url();

    let started = login.start("alice", &url).await.unwrap();
    login
        .complete("alice", &approve(&started).await)
        .await
        .unwrap();

    // Bob's login fails at the token endpoint.
    let bobs = login.start("bob", &url).await.unwrap();
    kit.inject_fault(Step::Token, Fault::ServerError);
    let err = login
        .complete("bob", &approve(&bobs).await)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    kit.clear_faults();

    let alice = login.status("alice", &url).await.unwrap();
    assert!(alice.connected && alice.last_error.is_none(), "{alice:?}");
    assert_eq!(alice.issuer.as_deref(), Some(kit.issuer().as_str()));
    let bob = login.status("bob", &url).await.unwrap();
    assert!(!bob.connected && bob.issuer.is_none(), "{bob:?}");
    assert_eq!(bob.last_error.unwrap().kind, ErrorKind::UnexpectedStatus);
    let carol = login.status("carol", &url).await.unwrap();
    assert!(!carol.connected && carol.last_error.is_none());

    login.logout("alice", &url).await.unwrap();
    assert!(!login.status("alice", &url).await.unwrap().connected);
}

/// note-9: a flow running while `logout` runs must not install its tokens after the wipe.
/// Without the logout generation the flow below completes and stores its tokens.
#[tokio::test]
async fn a_logout_during_a_running_flow_wins() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let (reached, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let layer = OAuthLayer::new(
        ClientConfig::new(REDIRECT),
        HeldConsent {
            reached: Arc::clone(&reached),
            release: Arc::clone(&release),
        },
    )
    .token_store(Arc::clone(&store));
    let svc = service(layer.clone());
    let url = kit.resource_url();
    let request = tokio::spawn({
        let svc = svc.clone();
        let url = url.clone();
        async move {
            svc.oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({})))
                .await
        }
    });
    reached.notified().await;
    let logout = layer.logout(&url, &client()).await.unwrap();
    assert!(logout.resource.is_none(), "nothing held yet");
    release.notify_one();
    let err = request.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LoggedOut, "{err}");
    assert!(store.load_tokens(&url).await.unwrap().is_none());
    assert!(!layer.status(&url).await.unwrap().connected);
    // The token endpoint was reached: the flow did finish, and was overruled.
    assert!(kit.reached(Step::Token));
    // Connecting again right away works: the overruled flow is no failure to back off from.
    release.notify_one();
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert!(layer.status(&url).await.unwrap().connected);
}

/// A web login's calls are bounded like the layer's flows: a token endpoint that never
/// answers ends `complete` with a Timeout naming the limit, recorded in the user's status.
#[tokio::test]
async fn a_web_login_whose_token_endpoint_stalls_times_out() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let login = WebLogin::new(ClientConfig::new(REDIRECT), client())
        .request_timeout(Duration::from_millis(300))
        .flow_deadline(Duration::from_secs(5));
    let url = kit.resource_url();
    let started = login.start("alice", &url).await.unwrap();
    let callback = approve(&started).await;
    kit.inject_fault(Step::Token, Fault::Stall);
    let err = tokio::time::timeout(Duration::from_secs(10), login.complete("alice", &callback))
        .await
        .expect("complete was not bounded")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("within 300 ms"), "{err}");
    let status = login.status("alice", &url).await.unwrap();
    assert!(!status.connected);
    assert_eq!(status.last_error.unwrap().kind, ErrorKind::Timeout);
}
