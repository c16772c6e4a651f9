//! A refresh against what the store holds when it writes: a logout that ran while the refresh
//! waited for the store's lock (in this process, or another sharing the store) is not undone,
//! and a login the store could not keep when it was written is refreshed, not taken for a
//! logout. Over the testkit, with the clock the test moves.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc};
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_mcp_oauth::{
    BoxFuture, ClientRegistration, Error, ErrorKind, HttpClient, MemoryStore, OAuthLayer, Replaced,
    StoreLock, TokenSet, TokenStore, DEFAULT_MAX_RESPONSE_BYTES,
};

use support::lifecycle::*;

fn logout_client() -> HttpClient {
    HttpClient::from_service(http_client(), DEFAULT_MAX_RESPONSE_BYTES)
}

/// A shared store that says when a caller asks for its refresh lock, and refuses every write
/// while `down` is set.
#[derive(Default)]
struct Watched {
    store: Arc<MemoryStore>,
    lock_asked: Arc<Notify>,
    down: Arc<AtomicBool>,
}

impl Watched {
    fn refused(&self) -> Option<Error> {
        self.down
            .load(Ordering::SeqCst)
            .then(|| Error::new(ErrorKind::Store, "the store is down"))
    }
}

impl TokenStore for Watched {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        self.store.load_tokens(resource)
    }
    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        match self.refused() {
            Some(e) => Box::pin(async move { Err(e) }),
            None => self.store.save_tokens(resource, tokens),
        }
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        match self.refused() {
            Some(e) => Box::pin(async move { Err(e) }),
            None => self.store.compare_and_swap_tokens(resource, current, new),
        }
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.store.load_client(issuer)
    }
    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.store.save_client(registration)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.store.remove_client(issuer)
    }
    fn lock<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        self.lock_asked.notify_one();
        self.store.lock(resource)
    }
}

/// A logged-in layer over a shared store, its refresh due, and the store's refresh lock held
/// by the test (as another process would hold it): the next call's refresh waits for it.
struct RefreshWaiting {
    layer: OAuthLayer,
    store: Arc<MemoryStore>,
    pending: tokio::task::JoinHandle<Result<http::StatusCode, Error>>,
    lock: StoreLock,
}

impl RefreshWaiting {
    async fn start(kit: &Testkit, clock: &TestClock) -> Self {
        let watched = Watched::default();
        let (store, asked) = (Arc::clone(&watched.store), Arc::clone(&watched.lock_asked));
        let layer = layer(clock).token_store(watched);
        let svc = service(layer.clone());
        assert_eq!(call(&svc, kit, "tools/list").await.status(), 200);
        let lock = store.lock(&kit.resource_url()).await.unwrap();
        clock.set(3550);
        let pending = tokio::spawn({
            let url = kit.resource_url();
            async move {
                svc.oneshot(jsonrpc(&url, 1, "tools/list", json!({})))
                    .await
                    .map(|r| r.status())
            }
        });
        asked.notified().await;
        Self {
            layer,
            store,
            pending,
            lock,
        }
    }
}

fn kit_config() -> TestkitConfig {
    TestkitConfig::default().token_lifetime_secs(3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_while_a_refresh_waits_for_the_lock_is_not_undone() {
    let kit = Testkit::start(kit_config()).await.unwrap();
    let clock = TestClock::default();
    let waiting = RefreshWaiting::start(&kit, &clock).await;
    let url = kit.resource_url();
    waiting.layer.logout(&url, &logout_client()).await.unwrap();
    waiting.lock.release().await;
    let err = waiting.pending.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LoggedOut, "{err}");
    assert!(waiting.store.load_tokens(&url).await.unwrap().is_none());
    assert!(!waiting.layer.status(&url).await.unwrap().connected);
    // Found under the lock, before the refresh: none was sent (it would mint a grant the
    // logout could no longer revoke).
    assert!(grants(&kit, "refresh_token").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_in_another_process_while_a_refresh_waits_is_not_undone() {
    let kit = Testkit::start(kit_config()).await.unwrap();
    let clock = TestClock::default();
    let waiting = RefreshWaiting::start(&kit, &clock).await;
    let url = kit.resource_url();
    // Another process on the same store logs out: it holds no session, it finds the stored one.
    let elsewhere = layer(&clock).token_store(Arc::clone(&waiting.store));
    let logout = elsewhere.logout(&url, &logout_client()).await.unwrap();
    assert!(logout.resource.is_some(), "the stored tokens were found");
    waiting.lock.release().await;
    let err = waiting.pending.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LoggedOut, "{err}");
    assert!(waiting.store.load_tokens(&url).await.unwrap().is_none());
    assert!(!waiting.layer.status(&url).await.unwrap().connected);
    // Found under the lock, before the refresh: none was sent (it would mint a grant the
    // logout could no longer revoke).
    assert!(grants(&kit, "refresh_token").is_empty());
}

#[tokio::test]
async fn a_login_the_store_could_not_keep_is_refreshed_not_taken_for_a_logout() {
    let kit = Testkit::start(kit_config()).await.unwrap();
    let clock = TestClock::default();
    let watched = Watched::default();
    let (store, down) = (Arc::clone(&watched.store), Arc::clone(&watched.down));
    down.store(true, Ordering::SeqCst);
    let svc = service(layer(&clock).token_store(watched));
    // The login is kept in memory only: the store was down when it was written.
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert!(store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .is_none());
    // The store is back; the refresh finds it empty, which is no logout here.
    down.store(false, Ordering::SeqCst);
    clock.set(3550);
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
    let stored = store.load_tokens(&kit.resource_url()).await.unwrap();
    assert!(stored.is_some(), "the refreshed tokens are stored now");
}
