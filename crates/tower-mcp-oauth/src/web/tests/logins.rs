//! Ownership, expiry and replay of web logins.

use super::*;
use crate::store::Replaced;
use crate::{BoxFuture, ClientRegistration, Error, StoreLock, TokenSet};

#[tokio::test]
async fn a_completed_login_stores_tokens_for_that_user_only() {
    let fake = Fake::new(3600);
    let (login, _, store) = setup_with_store(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    assert!(url.as_str().starts_with(&format!("{AS}/authorize?")));
    assert_eq!(login.pending_logins(), 1);

    let connection = login
        .complete("alice", &format!("?{}", approve(&url, "c1")))
        .await
        .unwrap();
    assert_eq!(connection.protected_resource.as_str(), MCP);
    assert_eq!(connection.server_url.as_str(), MCP);
    assert_eq!(connection.issuer, AS);
    assert_eq!(login.pending_logins(), 0);
    assert_eq!(tokens_of(&login, "alice").await.as_deref(), Some("at-c1"));
    assert_eq!(tokens_of(&login, "bob").await, None);
    // Never under the bare resource, where a plain layer on the same store would find it.
    assert!(store.load_tokens(MCP).await.unwrap().is_none());
}

#[tokio::test]
async fn another_users_callback_is_refused_and_consumes_nothing() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let alice_url = login.start("alice", MCP).await.unwrap();
    let bob_url = login.start("bob", MCP).await.unwrap();
    let alices_callback = approve(&alice_url, "c1");

    let err = login.complete("bob", &alices_callback).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    assert_eq!(
        fake.count("POST /token"),
        0,
        "no code exchange for a foreign callback"
    );
    assert_eq!(tokens_of(&login, "alice").await, None);
    assert_eq!(tokens_of(&login, "bob").await, None);
    assert_eq!(login.pending_logins(), 2, "both logins still wait");

    // Both users still complete their own logins.
    login.complete("alice", &alices_callback).await.unwrap();
    login
        .complete("bob", &approve(&bob_url, "c2"))
        .await
        .unwrap();
    assert_eq!(tokens_of(&login, "alice").await.as_deref(), Some("at-c1"));
    assert_eq!(tokens_of(&login, "bob").await.as_deref(), Some("at-c2"));
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    let callback = approve(&url, "c1");
    login.complete("alice", &callback).await.unwrap();
    let err = login.complete("alice", &callback).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    assert_eq!(fake.count("POST /token"), 1);
}

#[tokio::test]
async fn a_refused_or_failed_login_is_consumed_too() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    let state = url.query_pairs().find(|(k, _)| k == "state").unwrap().1;
    let denied = format!("error=access_denied&state={state}&iss={AS}");
    let err = login.complete("alice", &denied).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthorizationDenied);
    let err = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    assert_eq!(fake.count("POST /token"), 0);
}

#[tokio::test]
async fn an_expired_login_is_refused_and_purged() {
    let fake = Fake::new(3600);
    let (login, now) = setup(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    let kept = login.start("alice", MCP).await.unwrap();

    // Just before the deadline the login is still there.
    *now.lock().unwrap() += DEFAULT_PENDING_TTL - Duration::from_secs(1);
    login
        .complete("alice", &approve(&kept, "c0"))
        .await
        .unwrap();
    *now.lock().unwrap() += Duration::from_secs(1);
    let err = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    assert_eq!(login.pending_logins(), 0, "purged");
    assert_eq!(fake.count("POST /token"), 1);

    // Another user's start purges what expired meanwhile.
    login.start("alice", MCP).await.unwrap();
    *now.lock().unwrap() += DEFAULT_PENDING_TTL;
    login.start("bob", MCP).await.unwrap();
    assert_eq!(login.pending_logins(), 1);
}

#[tokio::test]
async fn a_shorter_ttl_is_honoured() {
    let fake = Fake::new(3600);
    let (login, now) = setup(&fake);
    let login = login.pending_ttl(Duration::from_secs(30));
    let url = login.start("alice", MCP).await.unwrap();
    *now.lock().unwrap() += Duration::from_secs(30);
    let err = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
}

#[tokio::test]
async fn callbacks_without_or_with_an_unknown_state_are_refused() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    for query in ["code=c1", "code=c1&state=", "code=c1&state=guess", ""] {
        let err = login.complete("alice", query).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StateMismatch, "{query:?}");
    }
    assert_eq!(login.pending_logins(), 1);
    login.complete("alice", &approve(&url, "c1")).await.unwrap();
}

#[tokio::test]
async fn one_user_may_have_a_few_logins_in_flight() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let mut urls = Vec::new();
    for _ in 0..=MAX_PENDING_PER_USER {
        urls.push(login.start("alice", MCP).await.unwrap());
    }
    assert_eq!(login.pending_logins(), MAX_PENDING_PER_USER);
    // The oldest was pushed out; the others complete in any order.
    let err = login
        .complete("alice", &approve(&urls[0], "c0"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    login
        .complete("alice", &approve(&urls[2], "c2"))
        .await
        .unwrap();
    login
        .complete("alice", &approve(&urls[1], "c1"))
        .await
        .unwrap();
    assert_eq!(tokens_of(&login, "alice").await.as_deref(), Some("at-c1"));
}

#[tokio::test]
async fn registrations_belong_to_the_app() {
    let fake = Fake::new(3600);
    let (login, _, store) = setup_with_store(&fake);
    for user in ["alice", "bob", "carol"] {
        log_in(&login, user, user).await;
    }
    assert_eq!(fake.count("POST /register"), 1);
    assert!(store.load_client(AS).await.unwrap().is_some());
}

/// Another application on the same store holds the issuer's registration (its own redirect
/// URI): the app registers its own, which takes the slot with the first login's tokens, and
/// a login abandoned at consent before that leaves the other's as it was.
#[tokio::test]
async fn a_registration_another_app_uses_is_replaced_with_the_first_tokens() {
    let fake = Fake::new(3600);
    let (login, _, store) = setup_with_store(&fake);
    store.save_client(&other_apps_registration()).await.unwrap();
    let stored = || async { store.load_client(AS).await.unwrap().unwrap().client_id };
    // Alice never comes back from the consent page.
    login.start("alice", MCP).await.unwrap();
    assert_eq!(stored().await, "other-app");
    log_in(&login, "bob", "b").await;
    assert_eq!(stored().await, "app");
    assert_eq!(tokens_of(&login, "bob").await.as_deref(), Some("at-b"));
}

#[tokio::test]
async fn credentials_in_the_server_url_go_nowhere() {
    let fake = Fake::new(3600);
    // A password no random `state` or PKCE challenge in the URLs can spell by chance ("pw"
    // could: one run in fifty).
    let (login, _) = setup(&fake);
    // Refused: shown without them.
    let err = login
        .start(
            "alice",
            "http://user:hunter2-secret@mcp.example.com/mcp?key=k",
        )
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("key=k"),
        "{shown}"
    );
    // Accepted: the login is for the server, and no request or status carries them.
    let url = login
        .start("alice", "https://user:hunter2-secret@mcp.example.com/mcp")
        .await
        .unwrap();
    assert!(!url.as_str().contains("hunter2"), "{url}");
    let connection = login.complete("alice", &approve(&url, "c1")).await.unwrap();
    assert_eq!(connection.server_url.as_str(), MCP);
    let log = fake.log.lock().unwrap().join("\n");
    assert!(!log.contains("hunter2"), "{log}");
    assert_eq!(tokens_of(&login, "alice").await.as_deref(), Some("at-c1"));
}

#[tokio::test]
async fn an_insecure_server_url_is_refused_before_any_request() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let err = login
        .start("alice", "http://mcp.example.com/mcp")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsecureUrl);
    assert!(fake.log.lock().unwrap().is_empty());
    assert_eq!(login.pending_logins(), 0);
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert!(!format!("{login:?}").contains(&state));
    let err = login
        .complete("mallory", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(&state));
    let connection = login.complete("alice", &approve(&url, "c1")).await.unwrap();
    assert!(!format!("{connection:?}").contains("at-c1"));
}

/// A store whose writes of tokens never answer; the rest is a memory store's.
struct TokensNeverWritten(MemoryStore);

impl TokenStore for TokensNeverWritten {
    fn load_tokens<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        self.0.load_tokens(r)
    }
    fn save_tokens<'a>(&'a self, _: &'a str, _: &'a TokenSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(std::future::pending())
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a TokenSet>,
        _: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        Box::pin(std::future::pending())
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.0.load_client(issuer)
    }
    fn save_client<'a>(&'a self, r: &'a ClientRegistration) -> BoxFuture<'a, Result<(), Error>> {
        self.0.save_client(r)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.0.remove_client(issuer)
    }
    fn lock<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        self.0.lock(r)
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_never_writes_the_tokens_fails_the_callback_at_the_deadline() {
    let fake = Fake::new(3600);
    let (login, _, _) = setup_over(&fake, Arc::new(TokensNeverWritten(MemoryStore::new())));
    let login = login.flow_deadline(Duration::from_secs(10));
    let url = login.start("alice", MCP).await.unwrap();
    let callback = approve(&url, "c1");
    let started = tokio::time::Instant::now();
    let complete = login.complete("alice", &callback);
    let error = tokio::time::timeout(Duration::from_secs(3600), complete)
        .await
        .expect("the callback waited on the store for an hour")
        .unwrap_err();
    // Not transient: the code is spent, the same callback cannot pass again.
    assert_eq!(error.kind(), ErrorKind::Store, "{error:#}");
    assert!(!error.is_transient());
    assert_eq!(
        error.message(),
        "the token store did not write the tokens within the flow's 10 s deadline; the \
         login's tokens were not kept: start the login again"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    // The user's status says why.
    let status = login.status("alice", MCP).await.unwrap();
    assert_eq!(status.last_error.map(|e| e.kind), Some(ErrorKind::Store));
}

/// The issuer's registration of another application sharing the store (its own redirect URI).
fn other_apps_registration() -> ClientRegistration {
    ClientRegistration {
        issuer: AS.into(),
        client_id: "other-app".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec!["https://other.example.com/callback".into()],
        grant_types: Vec::new(),
    }
}

/// A web login whose tokens the store does not keep leaves the registration another app uses
/// as it was: the new one would be kept for tokens nobody has.
#[tokio::test(start_paused = true)]
async fn a_login_whose_tokens_were_not_kept_leaves_the_other_apps_registration() {
    let fake = Fake::new(3600);
    let (login, _, store) = setup_over(&fake, Arc::new(TokensNeverWritten(MemoryStore::new())));
    store.save_client(&other_apps_registration()).await.unwrap();
    let login = login.flow_deadline(Duration::from_secs(10));
    let url = login.start("alice", MCP).await.unwrap();
    let error = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store, "{error:#}");
    let kept = store.load_client(AS).await.unwrap().unwrap();
    assert_eq!(kept.client_id, "other-app");
}

/// A pending-login store that never answers.
struct SilentPending;

impl PendingLoginStore for SilentPending {
    fn put<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a PendingLogin,
        _: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(std::future::pending())
    }
    fn take<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingLogin>, Error>> {
        Box::pin(std::future::pending())
    }
    fn forget_user<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_pending_login_store_that_never_answers_fails_each_call_at_the_deadline() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let login = login
        .pending_login_store(SilentPending)
        .flow_deadline(Duration::from_secs(10));
    let hour = Duration::from_secs(3600);
    let started = tokio::time::Instant::now();
    let start = tokio::time::timeout(hour, login.start("alice", MCP)).await;
    let error = start.expect("start waited an hour").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(error.is_transient());
    assert_eq!(started.elapsed(), Duration::from_secs(10));

    let callback = "code=c1&state=s1";
    let complete = tokio::time::timeout(hour, login.complete("alice", callback)).await;
    let error = complete.expect("complete waited an hour").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    let forget = tokio::time::timeout(hour, login.forget_user("alice")).await;
    let error = forget.expect("forget_user waited an hour").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test]
async fn a_pending_ttl_past_the_clocks_range_is_a_day() {
    let fake = Fake::new(3600);
    let (login, now) = setup(&fake);
    // `SystemTime + Duration::MAX` panics; the login is kept for a day instead.
    let login = login.pending_ttl(Duration::MAX);
    let url = login.start("alice", MCP).await.unwrap();
    *now.lock().unwrap() += Duration::from_secs(23 * 60 * 60);
    login.complete("alice", &approve(&url, "c1")).await.unwrap();
    let url = login.start("alice", MCP).await.unwrap();
    *now.lock().unwrap() += Duration::from_secs(25 * 60 * 60);
    assert!(login.complete("alice", &approve(&url, "c2")).await.is_err());
}

#[tokio::test]
async fn a_logout_during_the_code_exchange_overrules_the_login() {
    let fake = Fake::new(3600);
    // The code exchange waits until the test has logged the user out.
    let (exchange_reached, logged_out) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let client = {
        let (f, reached, out) = (
            Arc::clone(&fake),
            Arc::clone(&exchange_reached),
            Arc::clone(&logged_out),
        );
        HttpClient::from_fn(move |req| {
            let exchange = req.uri().path() == "/token"
                && String::from_utf8_lossy(req.body()).contains("authorization_code");
            let response = f.handle(req);
            let (reached, out) = (Arc::clone(&reached), Arc::clone(&out));
            async move {
                if exchange {
                    reached.notify_one();
                    out.notified().await;
                }
                Ok(response)
            }
        })
    };
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let login = Arc::new(
        WebLogin::new(ClientConfig::new(REDIRECT), client).token_store(Arc::clone(&store)),
    );
    let url = login.start("alice", MCP).await.unwrap();
    let completing = {
        let (login, callback) = (Arc::clone(&login), approve(&url, "c1"));
        tokio::spawn(async move { login.complete("alice", &callback).await })
    };
    exchange_reached.notified().await;
    // Nothing stored yet: the logout has nothing to revoke, and records itself.
    login.logout("alice", MCP).await.unwrap();
    logged_out.notify_one();
    let err = completing.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LoggedOut);
    // The login's tokens are not kept.
    assert_eq!(tokens_of(&login, "alice").await, None);
}
