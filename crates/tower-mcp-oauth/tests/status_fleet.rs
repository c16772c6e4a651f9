//! The status as a fleet sees it (issue 9, item 4, after review): the last error is kept per
//! MCP server (not per origin) and in the token store, and logouts reach only their server.
//! Two layers on one store stand for two processes: a logout or a failure in one shows in the
//! other's status, and a layer whose cached token another process revoked authorizes again.
//! The same across two connections to one Redis server, and for `WebLogin` users.
//!
//! The second server on the testkit's origin (`/other`) is only ever named, never served: what
//! is under test is that nothing keyed by it touches the server at `/mcp`.
//!
//! The Redis case needs `redis-server` on PATH (`scripts/ensure-redis.sh` installs it).

mod support;

use std::sync::Arc;

use bytes::Bytes;
use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::redis::RedisServer;
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_mcp_oauth::redis::RedisStore;
use tower_mcp_oauth::web::WebLogin;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HttpClient, MemoryStore, OAuthLayer, TokenStore,
    DEFAULT_MAX_RESPONSE_BYTES,
};

use support::consent::HeldConsent;
use support::lifecycle::{call, grants, last_bearer, layer, service, TestClock, REDIRECT};
use support::{http_client, jsonrpc};

fn client() -> HttpClient {
    HttpClient::from_service(http_client(), DEFAULT_MAX_RESPONSE_BYTES)
}

/// A layer of its own ("a process") on a store shared with others.
fn process(clock: &TestClock, store: Arc<dyn TokenStore>) -> OAuthLayer {
    layer(clock).token_store(store)
}

/// A logout of `https://host/other` while a login for `https://host/mcp` waits at the consent
/// page: the login completes and its tokens are kept. Keyed by origin, it was overruled
/// (`LoggedOut`).
#[tokio::test]
async fn a_logout_of_one_server_leaves_a_login_for_another_on_its_origin_alone() {
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
    let url = kit.resource_url();
    let other = format!("{}/other", kit.resource_origin());
    let request = tokio::spawn({
        let svc = service(layer.clone());
        let url = url.clone();
        async move {
            svc.oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({})))
                .await
        }
    });
    reached.notified().await;
    let logout = layer.logout(&other, &client()).await.unwrap();
    assert!(logout.resource.is_none());
    release.notify_one();
    let response = request
        .await
        .unwrap()
        .expect("not overruled by another server's logout");
    assert_eq!(response.status(), 200);
    assert!(store.load_tokens(&url).await.unwrap().is_some());
    let status = layer.status(&url).await.unwrap();
    assert!(
        status.connected && status.last_error.is_none(),
        "{status:?}"
    );
}

/// A failure at `/mcp` is `/mcp`'s last error, not that of every server on its origin.
#[tokio::test]
async fn a_last_error_shows_on_its_own_server_only() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let clock = TestClock::default();
    let layer = layer(&clock);
    let url = kit.resource_url();
    kit.inject_fault(Step::Token, Fault::ServerError);
    let failed = service(layer.clone())
        .oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({})))
        .await;
    assert!(failed.is_err());
    let mine = layer.status(&url).await.unwrap().last_error;
    assert_eq!(mine.unwrap().kind, ErrorKind::UnexpectedStatus);
    let other = format!("{}/other", kit.resource_origin());
    let theirs = layer.status(&other).await.unwrap();
    assert!(theirs.last_error.is_none(), "{theirs:?}");
}

/// Process B logs out: A's status says so at once (it reads the store, not its cache). A's next
/// request, sent with the token B revoked, gets a 401; the refresh it would make finds the
/// store empty under its lock, a logout: no refresh is sent (its grant is revoked, or would be
/// minted past the logout's revocation), and the request fails `LoggedOut`, as one racing the
/// logout does (A cannot tell which it was). The one after it authorizes again.
#[tokio::test]
async fn a_logout_in_one_process_shows_in_the_others_status_and_its_request_after_next_reauthorizes(
) {
    let kit = Testkit::start(TestkitConfig::default().revocation(true))
        .await
        .unwrap();
    let clock = TestClock::default();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (a, b) = (
        process(&clock, Arc::clone(&store)),
        process(&clock, Arc::clone(&store)),
    );
    let url = kit.resource_url();
    let svc_a = service(a.clone());
    assert_eq!(call(&svc_a, &kit, "tools/list").await.status(), 200);
    let first = last_bearer(&kit).unwrap();
    assert!(b.status(&url).await.unwrap().connected, "from the store");

    let logout = b.logout(&url, &client()).await.unwrap();
    assert!(
        logout.all_revoked() && logout.resource.is_some(),
        "{logout:?}"
    );
    let status = a.status(&url).await.unwrap();
    assert!(!status.connected && status.issuer.is_none(), "{status:?}");

    let logins = grants(&kit, "authorization_code").len();
    let request = jsonrpc(&url, 1, "tools/list", serde_json::json!({}));
    let err = svc_a.clone().oneshot(request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LoggedOut, "{err:#}");
    assert!(grants(&kit, "refresh_token").is_empty());
    // The logout is what happened, not the server's fault: B, which ran no flow, reads no
    // error from the store.
    let seen_by_b = b.status(&url).await.unwrap();
    assert!(seen_by_b.last_error.is_none(), "{seen_by_b:?}");
    assert_eq!(call(&svc_a, &kit, "tools/list").await.status(), 200);
    assert_ne!(
        last_bearer(&kit).unwrap(),
        first,
        "the revoked token is not sent again"
    );
    assert_eq!(grants(&kit, "authorization_code").len(), logins + 1);
    assert!(a.status(&url).await.unwrap().connected);
    assert!(b.status(&url).await.unwrap().connected);
}

/// A's failure shows in B's status (B ran no flow); B's later success clears it for A too,
/// although A still remembers its own failure.
#[tokio::test]
async fn a_last_error_is_shared_through_the_store_until_a_success() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let clock = TestClock::default();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (a, b) = (
        process(&clock, Arc::clone(&store)),
        process(&clock, Arc::clone(&store)),
    );
    let url = kit.resource_url();
    kit.inject_fault(Step::Token, Fault::ServerError);
    let failed = service(a.clone())
        .oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({})))
        .await;
    assert!(failed.is_err());
    let seen_by_b = b.status(&url).await.unwrap().last_error;
    assert_eq!(seen_by_b.unwrap().kind, ErrorKind::UnexpectedStatus);

    kit.clear_faults();
    clock.set(1);
    assert_eq!(
        call(&service(b.clone()), &kit, "tools/list").await.status(),
        200
    );
    let status = a.status(&url).await.unwrap();
    assert!(
        status.connected && status.last_error.is_none(),
        "{status:?}"
    );
}

/// The same two processes on one Redis server, each with its own connection.
#[tokio::test]
async fn two_processes_on_one_redis_see_one_status() {
    let redis = RedisServer::start();
    let kit = Testkit::start(TestkitConfig::default().revocation(true))
        .await
        .unwrap();
    let clock = TestClock::default();
    let connect = || async {
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        Arc::new(store.prefix("status")) as Arc<dyn TokenStore>
    };
    let (a, b) = (
        process(&clock, connect().await),
        process(&clock, connect().await),
    );
    let url = kit.resource_url();

    kit.inject_fault(Step::Token, Fault::ServerError);
    let failed = service(a.clone())
        .oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({})))
        .await;
    assert!(failed.is_err());
    let seen_by_b = b.status(&url).await.unwrap();
    assert!(!seen_by_b.connected);
    assert_eq!(
        seen_by_b.last_error.unwrap().kind,
        ErrorKind::UnexpectedStatus
    );

    kit.clear_faults();
    clock.set(1);
    assert_eq!(
        call(&service(b.clone()), &kit, "tools/list").await.status(),
        200
    );
    let status = a.status(&url).await.unwrap();
    assert!(
        status.connected && status.last_error.is_none(),
        "{status:?}"
    );

    // A logs out; B's status shows it, though B's cache still holds the tokens.
    a.logout(&url, &client()).await.unwrap();
    assert!(!b.status(&url).await.unwrap().connected);
}

/// GETs the authorization URL (the testkit approves at once) and returns the callback query.
async fn approve(url: &url::Url) -> String {
    let request = http::Request::get(url.as_str()).body(Bytes::new()).unwrap();
    let response = client().send(request).await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()[http::header::LOCATION].to_str().unwrap();
    location.split_once('?').unwrap().1.to_owned()
}

/// Two app processes (two `WebLogin`s on one store): a user's failed login in one shows in the
/// other, still per user; a logout in one shows in the other although its user layer cached
/// the tokens.
#[tokio::test]
async fn web_logins_in_two_processes_share_each_users_status() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let web =
        || WebLogin::new(ClientConfig::new(REDIRECT), client()).token_store(Arc::clone(&store));
    let (one, two) = (web(), web());
    let url = kit.resource_url();

    let started = one.start("alice", &url).await.unwrap();
    one.complete("alice", &approve(&started).await)
        .await
        .unwrap();
    // Alice's layer in process two caches her tokens.
    let svc = tower::ServiceBuilder::new()
        .layer(two.layer_for("alice"))
        .service(http_client());
    let response = svc
        .oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let bobs = one.start("bob", &url).await.unwrap();
    kit.inject_fault(Step::Token, Fault::ServerError);
    let err = one
        .complete("bob", &approve(&bobs).await)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    kit.clear_faults();
    let bob = two.status("bob", &url).await.unwrap();
    assert_eq!(bob.last_error.unwrap().kind, ErrorKind::UnexpectedStatus);
    assert!(two
        .status("alice", &url)
        .await
        .unwrap()
        .last_error
        .is_none());

    one.logout("alice", &url).await.unwrap();
    let alice = two.status("alice", &url).await.unwrap();
    assert!(!alice.connected, "{alice:?}");
}
