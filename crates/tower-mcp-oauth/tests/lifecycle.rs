//! Token lifecycle over real loopback TCP, with a controllable clock: proactive refresh, refresh
//! skew for short-lived tokens, refresh on 401, rotating refresh tokens shared through one
//! file by two store handles, transient and terminal refresh failures, the refresh lock, and a
//! restarted client. Step-up is in step_up.rs.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{ClientConfig, ErrorKind, FileStore, OAuthLayer, OAuthService, TokenStore};

use support::lifecycle::*;

#[tokio::test]
async fn proactive_refresh_happens_before_expiry_not_after() {
    let kit = Testkit::start(TestkitConfig::default().token_lifetime_secs(3600))
        .await
        .unwrap();
    let clock = TestClock::default();
    let svc = service(layer(&clock));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let first_token = last_bearer(&kit).unwrap();

    // Before the refresh point (expiry - 60 s): the token is used as it is.
    clock.set(3500);
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert!(grants(&kit, "refresh_token").is_empty());
    assert_eq!(last_bearer(&kit).unwrap(), first_token);

    // Past it but before expiry: refreshed first, then sent with the new token, no 401 on the way.
    clock.set(3545);
    let before = kit.requests().len();
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let after: Vec<_> = kit.requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(after, ["/token", "/mcp"]);
    let refresh = &grants(&kit, "refresh_token")[0];
    assert_eq!(refresh.form_param("resource"), Some(kit.resource_url()));
    assert_ne!(last_bearer(&kit).unwrap(), first_token);
    assert_eq!(count(&kit, "/authorize"), 1);
}

#[tokio::test]
async fn a_short_lived_token_is_not_refreshed_on_every_call() {
    let kit = Testkit::start(TestkitConfig::default().token_lifetime_secs(20))
        .await
        .unwrap();
    // Frozen: the refresh falls due at 18 s, a second after the last check at 17 s, which a
    // loaded machine's real time between the calls would cross.
    let clock = TestClock::frozen();
    let svc = service(layer(&clock));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    // A fixed 60 s buffer would swallow its whole life; the skew is capped at 2 s (a tenth).
    for t in [0, 5, 10, 15, 17] {
        clock.set(t);
        assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    }
    assert!(grants(&kit, "refresh_token").is_empty());
    clock.set(19);
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_not_reauthorized() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let clock = TestClock::default();
    let svc = service(layer(&clock));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    kit.revoke_all_tokens();
    let before = kit.requests().len();
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let paths: Vec<_> = kit.requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    // The 401, the metadata re-read (has the server moved?), the refresh, the retry.
    assert_eq!(
        paths,
        [
            "/mcp",
            "/.well-known/oauth-protected-resource/mcp",
            "/token",
            "/mcp"
        ]
    );
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
    assert_eq!(count(&kit, "/authorize"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_never_sent_twice_across_two_store_handles() {
    let kit = Testkit::start(TestkitConfig::default().rotate_refresh_tokens(true))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::default();
    let a = service(layer(&clock).token_store(FileStore::new(dir.path()).unwrap()));
    let b = service(layer(&clock).token_store(FileStore::new(dir.path()).unwrap()));

    assert_eq!(call(&a, &kit, "tools/list").await.status(), 200);
    // B finds A's tokens in the shared file: no second authorization.
    assert_eq!(call(&b, &kit, "tools/list").await.status(), 200);
    assert_eq!(count(&kit, "/authorize"), 1);

    // Both are due for refresh; 20 callers on each race for it.
    clock.set(3550);
    let mut calls = Vec::new();
    for i in 0..40 {
        let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
        let url = kit.resource_url();
        calls.push(tokio::spawn(async move {
            svc.oneshot(jsonrpc(&url, 1, "tools/list", json!({})))
                .await
                .unwrap()
                .status()
        }));
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    let refreshes = grants(&kit, "refresh_token");
    assert_eq!(refreshes.len(), 1, "one refresh for both handles");
    let mut sent: Vec<_> = refreshes
        .iter()
        .map(|r| r.form_param("refresh_token").unwrap())
        .collect();
    sent.dedup();
    assert_eq!(
        sent.len(),
        refreshes.len(),
        "a refresh token was sent twice"
    );
    assert_eq!(count(&kit, "/authorize"), 1);
}

/// A layer logged in once against a fresh testkit, its tokens in a `FileStore`.
struct LoggedIn {
    kit: Testkit,
    store: Arc<FileStore>,
    clock: TestClock,
    svc: OAuthService<HttpClient>,
    _dir: tempfile::TempDir,
}

async fn logged_in_on_a_file_store() -> LoggedIn {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new(dir.path()).unwrap());
    let clock = TestClock::default();
    let svc = service(layer(&clock).token_store(store.clone() as Arc<dyn TokenStore>));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    LoggedIn {
        kit,
        store,
        clock,
        svc,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_transient_token_endpoint_failure_keeps_every_credential() {
    let LoggedIn {
        kit,
        store,
        clock,
        svc,
        _dir,
    } = logged_in_on_a_file_store().await;
    let before = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();

    clock.set(3550);
    kit.set_override(
        ServerRole::Authorization,
        "/token",
        CannedResponse::new(503, "down"),
    );
    // The refresh fails, the still-valid token is used, nothing is dropped.
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let kept = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    assert!(kept.same_tokens(&before));
    assert!(store.load_client(&kit.issuer()).await.unwrap().is_some());
    assert_eq!(grants(&kit, "refresh_token").len(), 1);

    // Past expiry with the endpoint still down: a typed, transient error.
    clock.set(3700);
    let err = svc
        .clone()
        .oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap()
        .same_tokens(&before));

    // Back up: the next call refreshes.
    kit.clear_overrides();
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert!(!store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap()
        .same_tokens(&before));
}

#[tokio::test]
async fn a_5xx_or_429_naming_an_oauth_error_keeps_every_credential() {
    // Entra answers 503 `temporarily_unavailable`, a backend on a database fault 500
    // `server_error`, a gateway may put any code on a 502 or a 429: none of them is the
    // server refusing the grant or the client.
    for (status, error) in [
        (503, "temporarily_unavailable"),
        (500, "server_error"),
        (502, "invalid_grant"),
        (429, "invalid_client"),
    ] {
        let LoggedIn {
            kit,
            store,
            clock,
            svc,
            _dir,
        } = logged_in_on_a_file_store().await;
        let before = store
            .load_tokens(&kit.resource_url())
            .await
            .unwrap()
            .unwrap();
        kit.set_override(
            ServerRole::Authorization,
            "/token",
            CannedResponse::json(status, json!({"error": error})),
        );
        // Past expiry: the refresh meets the error.
        clock.set(3700);
        let err = svc
            .clone()
            .oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{status} {error}: {err:#}");
        let kept = store.load_tokens(&kit.resource_url()).await.unwrap();
        assert!(
            kept.is_some_and(|kept| kept.same_tokens(&before)),
            "{status} {error}: the tokens were dropped"
        );
        assert!(store.load_client(&kit.issuer()).await.unwrap().is_some());
        // Back up: the next call refreshes with the same refresh token, no new consent.
        kit.clear_overrides();
        assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
        assert_eq!(count(&kit, "/authorize"), 1, "{status} {error}");
    }
}

#[tokio::test]
async fn invalid_grant_drops_the_tokens_and_authorizes_again() {
    let LoggedIn {
        kit,
        store,
        svc,
        _dir,
        ..
    } = logged_in_on_a_file_store().await;
    kit.revoke_all_tokens();
    kit.set_override(
        ServerRole::Authorization,
        "/token",
        CannedResponse::json(400, json!({"error": "invalid_grant"})),
    );
    let err = svc
        .clone()
        .oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenRejected);
    // The refused tokens are gone; the registration (not refused) is kept and reused.
    assert!(store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .is_none());
    assert!(store.load_client(&kit.issuer()).await.unwrap().is_some());
    assert_eq!(count(&kit, "/authorize"), 2);
    kit.clear_overrides();
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert_eq!(count(&kit, "/register"), 1);
}

/// A layer whose user takes their time at the consent step, logged in once, on a shared store
/// the test can take the refresh lock of.
struct AtTheBrowser {
    svc: OAuthService<HttpClient>,
    store: Arc<tower_mcp_oauth::MemoryStore>,
    go: Arc<tokio::sync::Notify>,
    asked: Arc<std::sync::atomic::AtomicBool>,
}

impl AtTheBrowser {
    async fn logged_in(kit: &Testkit) -> Self {
        let store = Arc::new(tower_mcp_oauth::MemoryStore::new());
        let go = Arc::new(tokio::sync::Notify::new());
        let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let layer = OAuthLayer::new(
            ClientConfig::new(REDIRECT),
            SlowUser(go.clone(), asked.clone()),
        )
        .token_store(store.clone() as Arc<dyn TokenStore>)
        .failure_backoff(Duration::ZERO);
        let svc = service(layer);
        go.notify_one(); // the first login goes straight through
        assert_eq!(call(&svc, kit, "tools/list").await.status(), 200);
        asked.store(false, Ordering::SeqCst);
        Self {
            svc,
            store,
            go,
            asked,
        }
    }

    /// Starts a call and waits until its flow is at the consent step.
    async fn call_until_consent(
        &self,
        kit: &Testkit,
    ) -> tokio::task::JoinHandle<Result<http::StatusCode, tower_mcp_oauth::Error>> {
        let pending = tokio::spawn({
            let (svc, url) = (self.svc.clone(), kit.resource_url());
            async move {
                svc.oneshot(jsonrpc(&url, 1, "tools/list", json!({})))
                    .await
                    .map(|r| r.status())
            }
        });
        while !self.asked.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pending
    }

    /// Takes and gives back the refresh lock, as another process would, while the user waits.
    async fn take_the_lock(&self, kit: &Testkit, why: &str) {
        let lock =
            tokio::time::timeout(Duration::from_secs(2), self.store.lock(&kit.resource_url()))
                .await
                .expect(why)
                .unwrap();
        lock.release().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_lock_is_not_held_while_the_user_reauthorizes() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let user = AtTheBrowser::logged_in(&kit).await;
    // The refresh is refused for good; a new authorization starts and waits for the user.
    kit.revoke_all_tokens();
    kit.set_override(
        ServerRole::Authorization,
        "/token",
        CannedResponse::json(400, json!({"error": "invalid_grant"})),
    );
    let pending = user.call_until_consent(&kit).await;
    // Meanwhile another process could take the refresh lock: it was given back at once.
    user.take_the_lock(
        &kit,
        "the lock is still held while the user is at the browser",
    )
    .await;
    kit.clear_overrides();
    user.go.notify_one();
    assert_eq!(pending.await.unwrap().unwrap(), 200);
}

#[tokio::test]
async fn a_restarted_client_sends_its_first_request_with_the_stored_token() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::default();
    let first = service(layer(&clock).token_store(FileStore::new(dir.path()).unwrap()));
    assert_eq!(call(&first, &kit, "tools/list").await.status(), 200);
    drop(first);

    // A new process: a new layer on the same store.
    kit.clear_requests();
    let restarted = service(layer(&clock).token_store(FileStore::new(dir.path()).unwrap()));
    assert_eq!(call(&restarted, &kit, "tools/list").await.status(), 200);
    let seen: Vec<_> = kit
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.bearer().is_some()))
        .collect();
    assert_eq!(
        seen,
        [("/mcp".to_string(), true)],
        "no 401 round trip, no flow"
    );

    // Stored tokens that are due are refreshed before the first request.
    clock.set(3550);
    kit.clear_requests();
    let later = service(layer(&clock).token_store(FileStore::new(dir.path()).unwrap()));
    assert_eq!(call(&later, &kit, "tools/list").await.status(), 200);
    let paths: Vec<_> = kit.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/token", "/mcp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_lock_is_not_held_while_the_user_authorizes_at_a_new_server() {
    // A 401 with a refresh token takes the refresh lock; the resource has moved to another
    // authorization server, so the flow goes to consent there without any refused refresh.
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let other = Testkit::start(TestkitConfig::default()).await.unwrap();
    let user = AtTheBrowser::logged_in(&kit).await;
    kit.set_prm_authorization_server(&other.issuer());
    let pending = user.call_until_consent(&kit).await;
    user.take_the_lock(
        &kit,
        "the refresh lock is still held while the user is at the new server's consent page",
    )
    .await;
    user.go.notify_one();
    assert_eq!(pending.await.unwrap().unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_executor_an_abandoned_refresh_still_finishes() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = Arc::new(tower_mcp_oauth::MemoryStore::new());
    let clock = TestClock::default();
    let client = http_client();
    // A slow token endpoint, so the caller gives up while the refresh is on the wire.
    let slow_token = tower::service_fn(
        move |req: http::Request<tower_mcp_oauth::OAuthBody<support::Body>>| {
            let client = client.clone();
            async move {
                if req.uri().path().ends_with("/token") {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                client.oneshot(req).await
            }
        },
    );
    let layer = layer(&clock)
        .token_store(store.clone() as Arc<dyn TokenStore>)
        .spawn_flows_with(|flow| {
            tokio::spawn(flow);
        });
    let svc = ServiceBuilder::new().layer(layer).service(slow_token);
    let list = || jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    assert_eq!(svc.clone().oneshot(list()).await.unwrap().status(), 200);
    let before = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();

    clock.set(3550);
    let abandoned =
        tokio::time::timeout(Duration::from_millis(50), svc.clone().oneshot(list())).await;
    assert!(abandoned.is_err(), "the caller gave up during the refresh");
    // Nobody waits on the refresh any more, yet it completes: the rotated tokens are stored and
    // the refresh lock is free. Looked for until a bound far past the 300 ms the token endpoint
    // takes (a fixed wait would race the loopback requests on a loaded machine); a refresh that
    // was dropped with its caller never stores anything.
    let stored = async {
        loop {
            let now = store.load_tokens(&kit.resource_url()).await.unwrap();
            match now {
                Some(after) if !after.same_tokens(&before) => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stored)
        .await
        .expect("the refresh was not finished");
    let lock = tokio::time::timeout(Duration::from_secs(5), store.lock(&kit.resource_url()))
        .await
        .expect("the refresh lock is still held");
    lock.unwrap().release().await;
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
}
