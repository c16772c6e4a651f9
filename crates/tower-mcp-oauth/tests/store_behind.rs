//! A store that missed a write: the refreshed tokens live only in memory, and the store still
//! holds the ones they were refreshed from, whose refresh token the server has rotated away.
//! The next refresh must start from the tokens in memory (sending the spent refresh token
//! again is refused, or revokes the whole grant where the server detects reuse), and its write
//! must land on the store's older tokens rather than lose a "race" to them.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mcp_oauth_flow::client::ClientAuthMethod;
use mcp_oauth_flow::secrets::RefreshToken;
use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{
    BoxFuture, ClientConfig, ClientRegistration, Error, ErrorKind, HeadlessAuthorizer, HttpClient,
    MemoryStore, OAuthBody, OAuthLayer, Replaced, StoreLock, TokenSet, TokenStore, TokenType,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

/// A memory store whose next `failing` token writes fail (every one while it is down), or
/// whose next write lands and then reports a failure (a reply lost after the write) when
/// `lose_next_reply` is set; then, if `down_after_lost_reply` is set, it goes down, and if
/// `after_lost_reply` holds something, that is what it holds next (another process's tokens,
/// or nothing: a logout). Its failures are passing ones (`is_transient`), as a dropped
/// connection's or a timed-out reply's are.
struct MissesAWrite {
    inner: MemoryStore,
    failing: AtomicU32,
    lose_next_reply: AtomicBool,
    down_after_lost_reply: AtomicBool,
    after_lost_reply: Mutex<Option<Option<TokenSet>>>,
    /// Token reads until one fails (that one included: 1 fails the next read); below 1, none
    /// does.
    read_fails_at: AtomicI64,
    /// How many times the refresh lock was asked for.
    locks: AtomicU32,
}

impl MissesAWrite {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            failing: AtomicU32::new(0),
            lose_next_reply: AtomicBool::new(false),
            down_after_lost_reply: AtomicBool::new(false),
            after_lost_reply: Mutex::new(None),
            read_fails_at: AtomicI64::new(0),
            locks: AtomicU32::new(0),
        }
    }

    /// The `n`th token read from now fails (a passing trouble), and only that one.
    fn fail_read(&self, n: i64) {
        self.read_fails_at.store(n, Ordering::SeqCst);
    }

    /// Every token write fails until [`up`](Self::up): however often the layer tries, the
    /// write is missed.
    fn down(&self) {
        self.failing.store(u32::MAX, Ordering::SeqCst);
    }

    fn up(&self) {
        self.failing.store(0, Ordering::SeqCst);
    }

    fn fails(&self) -> Result<(), Error> {
        let failing = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(Error::new(ErrorKind::Store, "the store is down").mark_transient());
        }
        Ok(())
    }

    async fn reply<T>(&self, resource: &str, landed: Result<T, Error>) -> Result<T, Error> {
        if self.lose_next_reply.swap(false, Ordering::SeqCst) {
            if self.down_after_lost_reply.swap(false, Ordering::SeqCst) {
                self.down();
            }
            let next = self.after_lost_reply.lock().unwrap().take();
            match next {
                Some(Some(tokens)) => self.inner.save_tokens(resource, &tokens).await.unwrap(),
                Some(None) => {
                    let stored = self.inner.load_tokens(resource).await.unwrap();
                    let removed =
                        self.inner
                            .compare_and_swap_tokens(resource, stored.as_ref(), None);
                    removed.await.unwrap();
                }
                None => {}
            }
            return Err(Error::new(ErrorKind::Store, "the reply was lost").mark_transient());
        }
        landed
    }
}

impl TokenStore for MissesAWrite {
    fn load_tokens<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        let left = self
            .read_fails_at
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 0).then(|| n - 1)
            });
        if left == Ok(1) {
            return Box::pin(async {
                Err(Error::new(ErrorKind::Store, "the read was lost").mark_transient())
            });
        }
        self.inner.load_tokens(r)
    }
    fn save_tokens<'a>(&'a self, r: &'a str, t: &'a TokenSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.fails()?;
            self.inner.save_tokens(r, t).await
        })
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        r: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        Box::pin(async move {
            self.fails()?;
            let landed = self.inner.compare_and_swap_tokens(r, current, new).await;
            self.reply(r, landed).await
        })
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.inner.load_client(issuer)
    }
    fn save_client<'a>(&'a self, r: &'a ClientRegistration) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_client(r)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_client(issuer)
    }
    fn lock<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        self.locks.fetch_add(1, Ordering::SeqCst);
        self.inner.lock(r)
    }
}

/// The authorization server's rotating grant: refresh token `rt-n` gets `at-(n+1)` and
/// `rt-(n+1)`; any refresh token but the latest is refused (`invalid_grant`). The resource
/// accepts the latest access token only. Every refresh token sent is noted.
#[derive(Default)]
struct Grant {
    latest: Mutex<u32>,
    sent: Mutex<Vec<String>>,
    /// The resource turns every token away until the next refresh (the access token revoked
    /// on the server's side).
    turn_away: AtomicBool,
}

fn server(grant: Arc<Grant>) -> BoxCloneService<Req, http::Response<Full<Bytes>>, Infallible> {
    BoxCloneService::new(service_fn(move |req: Req| {
        let grant = Arc::clone(&grant);
        async move {
            if req.uri().path() == "/token" {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let sent = form
                    .iter()
                    .find(|(k, _)| k == "refresh_token")
                    .map(|(_, v)| v.clone());
                let mut latest = grant.latest.lock().unwrap();
                // A code exchange starts a new grant; a refresh must send the latest token.
                if let Some(sent) = sent {
                    grant.sent.lock().unwrap().push(sent.clone());
                    if sent != format!("rt-{latest}") {
                        return Ok::<_, Infallible>(json(400, json!({"error": "invalid_grant"})));
                    }
                }
                *latest += 1;
                grant.turn_away.store(false, Ordering::SeqCst);
                return Ok(json(
                    200,
                    json!({"access_token": format!("at-{latest}"), "refresh_token": format!("rt-{latest}"),
                           "token_type": "Bearer", "expires_in": 3600}),
                ));
            }
            if let Some(response) = flow_response(&req) {
                return Ok(response);
            }
            let latest = format!("Bearer at-{}", grant.latest.lock().unwrap());
            let current = !grant.turn_away.load(Ordering::SeqCst)
                && req
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v == &latest);
            Ok(if current {
                json(200, json!({"ok": true}))
            } else {
                unauthorized()
            })
        }
    }))
}

fn request() -> http::Request<Full<Bytes>> {
    http::Request::get(format!("{RS}/mcp"))
        .body(Full::default())
        .unwrap()
}

/// Tokens from an earlier run: expired, refreshable where they were issued, as a public
/// client, with refresh token `rt-1`.
fn first_tokens() -> TokenSet {
    TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
        .with_token_endpoint(
            Some("http://127.0.0.1:2/token".into()),
            Some(ClientAuthMethod::None),
        )
}

/// A store holding `first_tokens` for the resource, and a grant whose latest refresh token is
/// `rt-1`.
struct Rig {
    resource: String,
    store: Arc<MissesAWrite>,
    grant: Arc<Grant>,
}

async fn rig() -> Rig {
    let resource = format!("{RS}/mcp");
    let store = Arc::new(MissesAWrite::new());
    store
        .inner
        .save_tokens(&resource, &first_tokens())
        .await
        .unwrap();
    let grant = Arc::new(Grant {
        latest: Mutex::new(1),
        ..Grant::default()
    });
    Rig {
        resource,
        store,
        grant,
    }
}

/// The layer of these tests over `store`: no failure backoff, so the next call is the very
/// next one.
fn layer(store: &Arc<MissesAWrite>) -> OAuthLayer {
    OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::clone(store) as Arc<dyn TokenStore>)
    .failure_backoff(Duration::ZERO)
}

#[tokio::test]
async fn a_logout_forgets_that_the_store_was_behind() {
    let Rig {
        resource,
        store,
        grant,
    } = rig().await;
    let layer = layer(&store);
    let service = layer.clone().layer(server(Arc::clone(&grant)));
    // A refresh whose write is missed: the store is behind, holding rt-1.
    store.down();
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    store.up();
    // Logged out (no revocation endpoint: forgotten all the same).
    let client = HttpClient::from_fn(|_req| async {
        let metadata = json!({"issuer": "http://127.0.0.1:2",
            "authorization_endpoint": "http://127.0.0.1:2/authorize",
            "token_endpoint": "http://127.0.0.1:2/token"});
        Ok(http::Response::new(Bytes::from(metadata.to_string())))
    });
    layer.logout(&resource, &client).await.unwrap();
    assert!(store.inner.load_tokens(&resource).await.unwrap().is_none());
    // A new login whose write is missed too: the store, empty, is behind again.
    store.down();
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    store.up();
    assert!(store.inner.load_tokens(&resource).await.unwrap().is_none());
    // Its refresh meets the empty store: the tokens never reached it, no logout removed them,
    // and the refreshed ones are written.
    grant.turn_away.store(true, Ordering::SeqCst);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(stored.access_token().secret(), "at-4");
}

#[tokio::test]
async fn after_a_missed_write_the_next_refresh_starts_from_the_tokens_in_memory() {
    let Rig {
        resource,
        store,
        grant,
    } = rig().await;
    let service = layer(&store).layer(server(Arc::clone(&grant)));

    // The refresh rt-1 -> rt-2 succeeds; its write to the store fails.
    store.down();
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    store.up();
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(
        stored.access_token().secret(),
        "at-1",
        "the write was missed"
    );

    // The resource turns the token away: the next refresh sends rt-2, never the spent rt-1
    // the store still holds, and its tokens reach the store (their write lands on the store's
    // older tokens rather than lose to them).
    grant.turn_away.store(true, Ordering::SeqCst);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(*grant.sent.lock().unwrap(), ["rt-1", "rt-2"]);
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(stored.access_token().secret(), "at-3");
    assert_eq!(stored.refresh_token().unwrap().secret(), "rt-3");
}

/// The store is behind (it holds rt-1; memory holds rt-2), and the read that tells the write
/// what to replace fails: the write still lands on the store's older tokens, rather than lose
/// to them as to another process's refresh and install them, their rt-1 spent.
#[tokio::test]
async fn a_failed_read_before_the_write_does_not_make_the_stores_older_tokens_a_winner() {
    let Rig {
        resource,
        store,
        grant,
    } = rig().await;
    let service = layer(&store).layer(server(Arc::clone(&grant)));
    store.down();
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    store.up();
    // rt-2 -> rt-3: the read under the refresh lock works (the store still holds rt-1, behind);
    // the one before the write fails.
    grant.turn_away.store(true, Ordering::SeqCst);
    store.fail_read(2);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(
        store.read_fails_at.load(Ordering::SeqCst),
        0,
        "the second read failed"
    );
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(stored.refresh_token().unwrap().secret(), "rt-3");
    // And the next refresh sends rt-3.
    grant.turn_away.store(true, Ordering::SeqCst);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(*grant.sent.lock().unwrap(), ["rt-1", "rt-2", "rt-3"]);
}

#[tokio::test]
async fn a_refresh_of_another_process_tokens_is_installed_over_the_refused_ones() {
    let Rig {
        resource,
        store,
        grant,
    } = rig().await;
    // This process adopts at-1, which has no refresh token...
    let unrefreshable = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() + Duration::from_secs(3600)));
    store
        .inner
        .save_tokens(&resource, &unrefreshable)
        .await
        .unwrap();
    let service = layer(&store).layer(server(Arc::clone(&grant)));
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    // ...another process then stores tokens of its own with rt-1 (expired by now), and the
    // resource turns at-1 away.
    let theirs = TokenSet::new("at-theirs", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
        .with_token_endpoint(
            Some("http://127.0.0.1:2/token".into()),
            Some(ClientAuthMethod::None),
        );
    store.inner.save_tokens(&resource, &theirs).await.unwrap();
    grant.turn_away.store(true, Ordering::SeqCst);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(*grant.sent.lock().unwrap(), ["rt-1"]);
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(stored.access_token().secret(), "at-2");
    // The cache holds them too: the next request is answered at once, no flow.
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(*grant.sent.lock().unwrap(), ["rt-1"]);
    // Found without the lock (at-1 had no refresh token), they were refreshed under it.
    assert_eq!(
        store.locks.load(Ordering::SeqCst),
        1,
        "refreshed under the lock"
    );
}

#[tokio::test]
async fn a_write_that_landed_though_it_seemed_to_fail_leaves_no_stale_memory() {
    let Rig {
        resource,
        store,
        grant,
    } = rig().await;
    let service = layer(&store).layer(server(Arc::clone(&grant)));
    // rt-1 -> rt-2: the write lands, its reply is lost, and the store is down for the
    // attempts after it.
    store.lose_next_reply.store(true, Ordering::SeqCst);
    store.down_after_lost_reply.store(true, Ordering::SeqCst);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    store.up();
    // rt-2 -> rt-3: the store holds rt-2 (so it was not behind); this write really fails.
    grant.turn_away.store(true, Ordering::SeqCst);
    store.down();
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    store.up();
    // rt-3 -> rt-4: from memory, not the store's spent rt-2, and written over it.
    grant.turn_away.store(true, Ordering::SeqCst);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(*grant.sent.lock().unwrap(), ["rt-1", "rt-2", "rt-3"]);
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(stored.access_token().secret(), "at-4");
}

#[tokio::test]
async fn a_write_that_fails_once_lands_at_the_next_attempt() {
    let Rig {
        resource,
        store,
        grant,
    } = rig().await;
    let service = layer(&store).layer(server(Arc::clone(&grant)));
    // The refresh rt-1 -> rt-2 succeeds; the first attempt to write its tokens fails.
    store.failing.store(1, Ordering::SeqCst);
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(
        stored.access_token().secret(),
        "at-2",
        "the write was not tried again"
    );
}

/// Two processes sharing the store (two layers over it, one lock): the first refreshes, and
/// its write fails once. Had the lock been given back with the store still holding rt-1, the
/// second would refresh with it, which the server rotated away (refused here; the whole grant
/// revoked where the server detects reuse). The write is tried again under the lock, so the
/// second finds the first one's tokens.
#[tokio::test]
async fn a_process_sharing_the_store_never_sends_a_refresh_token_spent_by_a_missed_write() {
    let Rig {
        resource: _,
        store,
        grant,
    } = rig().await;
    let first = layer(&store).layer(server(Arc::clone(&grant)));
    let second = layer(&store).layer(server(Arc::clone(&grant)));
    store.failing.store(1, Ordering::SeqCst);
    assert_eq!(first.oneshot(request()).await.unwrap().status(), 200);
    assert_eq!(second.oneshot(request()).await.unwrap().status(), 200);
    assert_eq!(*grant.sent.lock().unwrap(), ["rt-1"]);
}

/// Another process's tokens, valid for an hour.
fn others_tokens() -> TokenSet {
    TokenSet::new("at-other", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() + Duration::from_secs(3600)))
        .with_refresh_token(Some(RefreshToken::new("rt-other".into())))
}

/// A first login whose write landed with its reply lost, after which another process sharing
/// the store replaced those tokens (it refreshed them, or logged in anew). A new login's write
/// is not tried again (unlike a refresh's): another attempt, meeting the replacement, could
/// not tell it from tokens that were there before the login, which a login writes over, and
/// writing over a refresh of its own tokens would bring back a refresh token the server has
/// rotated away. The replacement stays; the login's tokens serve this process.
#[tokio::test]
async fn a_login_whose_write_landed_unseen_is_not_written_over_what_replaced_it() {
    let resource = format!("{RS}/mcp");
    let store = Arc::new(MissesAWrite::new());
    let grant = Arc::new(Grant {
        latest: Mutex::new(1),
        ..Grant::default()
    });
    store.lose_next_reply.store(true, Ordering::SeqCst);
    *store.after_lost_reply.lock().unwrap() = Some(Some(others_tokens()));
    let service = layer(&store).layer(server(Arc::clone(&grant)));
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let stored = store.inner.load_tokens(&resource).await.unwrap().unwrap();
    assert_eq!(stored.access_token().secret(), "at-other");
}

/// A refresh's write that landed with its reply lost, the tokens then removed before the next
/// attempt (a logout elsewhere): the next attempt reads it as the logout it is, and does not
/// write the refreshed tokens back.
#[tokio::test]
async fn a_write_found_removed_after_a_lost_reply_is_read_as_a_logout() {
    let Rig {
        resource,
        store,
        grant,
    } = rig().await;
    let service = layer(&store).layer(server(Arc::clone(&grant)));
    // rt-1 -> rt-2, a refresh of the stored tokens: written, the reply lost, then logged out.
    store.lose_next_reply.store(true, Ordering::SeqCst);
    *store.after_lost_reply.lock().unwrap() = Some(None);
    let error = service.oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoggedOut, "{error:#}");
    assert!(store.inner.load_tokens(&resource).await.unwrap().is_none());
}
