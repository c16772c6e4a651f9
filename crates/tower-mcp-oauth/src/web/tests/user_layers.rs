//! Each user's layer: their own token, refresh and connect errors.

use super::*;

type McpService = tower::util::BoxCloneService<
    http::Request<OAuthBody<Full<Bytes>>>,
    http::Response<Full<Bytes>>,
    std::convert::Infallible,
>;

/// The fake behind a tower service, as the per-user layers wrap it.
fn mcp_service(fake: &Arc<Fake>) -> McpService {
    let fake = Arc::clone(fake);
    McpService::new(service_fn(
        move |req: http::Request<OAuthBody<Full<Bytes>>>| {
            let fake = Arc::clone(&fake);
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let response = fake.handle(http::Request::from_parts(parts, body));
                Ok(response.map(Full::new))
            }
        },
    ))
}

fn mcp_call() -> http::Request<Full<Bytes>> {
    http::Request::post(MCP)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )))
        .unwrap()
}

#[tokio::test]
async fn each_users_layer_carries_their_own_token() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    for (user, code) in [("alice", "ca"), ("bob", "cb")] {
        log_in(&login, user, code).await;
    }
    for user in ["alice", "bob", "alice"] {
        let service = ServiceBuilder::new()
            .layer(login.layer_for(user))
            .service(mcp_service(&fake));
        let response = service.oneshot(mcp_call()).await.unwrap();
        assert_eq!(response.status(), 200, "{user}");
    }
    let bearers = fake.bearers();
    // Each fresh layer finds the stored token before its first request; the cached one sends it
    // at once.
    assert_eq!(bearers, ["at-ca", "at-cb", "at-ca"]);
}

#[tokio::test]
async fn a_user_who_never_connected_is_told_to_connect() {
    let fake = Fake::new(3600);
    let (login, now) = setup(&fake);
    let service = ServiceBuilder::new()
        .layer(login.layer_for("bob"))
        .service(mcp_service(&fake));
    for _ in 0..12 {
        // More flows than the default authorization budget (past the failure backoff each
        // time): still "connect", never a limit error.
        *now.lock().unwrap() += Duration::from_secs(2);
        let err = service.clone().oneshot(mcp_call()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InteractionRequired);
        // Refused before discovery: it names the MCP server, not an issuer it never looked up.
        assert_eq!(ConnectRequired::find(&err).unwrap().issuer(), MCP);
        assert!(err.to_string().contains("must connect"));
    }
    // ...and an unconnected user's calls cost no discovery traffic at all.
    assert_eq!(
        fake.count("GET /.well-known/oauth-protected-resource/mcp"),
        0
    );
    assert_eq!(fake.count("GET /authorize"), 0);
    assert_eq!(fake.count("POST /token"), 0);
    // Nor any record in the shared store (one per visitor, kept for ever, would grow without
    // bound); the user's status says "not connected", and their layer remembers the refusal.
    let stored = login.user_store("bob").load_last_flow(MCP).await.unwrap();
    assert!(stored.is_none(), "{stored:?}");
    let status = login.status("bob", MCP).await.unwrap();
    assert!(!status.connected);
    let remembered = status.last_error.expect("the layer's own memory");
    assert_eq!(remembered.kind, ErrorKind::InteractionRequired);
}

#[tokio::test]
async fn connecting_clears_a_recent_connect_failure() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let layer = login.layer_for("alice");
    let err = ServiceBuilder::new()
        .layer(layer)
        .service(mcp_service(&fake))
        .oneshot(mcp_call())
        .await
        .unwrap_err();
    assert!(ConnectRequired::find(&err).is_some());
    log_in(&login, "alice", "c1").await;
    // Within the failure backoff of the old layer: the new one does not repeat its error.
    let response = ServiceBuilder::new()
        .layer(login.layer_for("alice"))
        .service(mcp_service(&fake))
        .oneshot(mcp_call())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_users_layer_refreshes_their_token_in_their_own_slot() {
    let fake = Fake::new(3600);
    let (login, now) = setup(&fake);
    for (user, code) in [("alice", "ca"), ("bob", "cb")] {
        log_in(&login, user, code).await;
    }
    let alice = ServiceBuilder::new()
        .layer(login.layer_for("alice"))
        .service(mcp_service(&fake));
    alice.clone().oneshot(mcp_call()).await.unwrap();
    *now.lock().unwrap() += Duration::from_secs(3600);
    let response = alice.oneshot(mcp_call()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.bearers().last().map(String::as_str), Some("at-r1"));
    assert_eq!(tokens_of(&login, "alice").await.as_deref(), Some("at-r1"));
    assert_eq!(tokens_of(&login, "bob").await.as_deref(), Some("at-cb"));
}

#[tokio::test]
async fn server_options_shape_the_web_login_authorization_request() {
    let fake = Fake::new(3600);
    let f = Arc::clone(&fake);
    let client = HttpClient::from_fn(move |req| {
        let response = f.handle(req);
        async move { Ok(response) }
    });
    let options = crate::ServerOptions::for_server(MCP)
        .unwrap()
        .authorization_param("access_type", "offline")
        .unwrap()
        .remove_authorization_param("resource")
        .unwrap();
    let login = WebLogin::new(ClientConfig::new(REDIRECT).server(options), client);
    let url = login.start("alice", MCP).await.unwrap();
    let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        names,
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "state",
            "access_type"
        ]
    );
    let connection = login.complete("alice", &approve(&url, "c1")).await.unwrap();
    assert_eq!(connection.issuer, AS);
}

/// A config with an assertion grant is refused by name: a web login is a user at a browser,
/// and the assertion source lives on an `OAuthLayer`.
#[tokio::test]
async fn an_assertion_grant_config_is_refused_with_the_reason() {
    let fake = Fake::new(3600);
    let f = Arc::clone(&fake);
    let client = HttpClient::from_fn(move |req| {
        let response = f.handle(req);
        async move { Ok(response) }
    });
    let config = ClientConfig::new(REDIRECT)
        .assertion_grant(mcp_oauth_flow::grants::AssertionGrant::WorkloadIdentity);
    let login = WebLogin::new(config, client);
    let err = login.start("alice", MCP).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GrantNotSupported, "{err:#}");
    assert!(err.to_string().contains("WebLogin"), "{err}");
}

#[tokio::test]
async fn a_logout_reaches_the_layer_a_kept_service_sends_through_after_a_flood_of_users() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    // Room for one layer a shard.
    let login = login.max_cached_users(1);
    log_in(&login, "alice", "ca").await;
    log_in(&login, "bob", "cb").await;
    // The app keeps alice's and bob's services (their MCP sessions), which cache their tokens;
    // bob's layer was set up further first (a copy of its settings, sharing its cache).
    let alice = ServiceBuilder::new()
        .layer(login.layer_for("alice"))
        .service(mcp_service(&fake));
    let bob = ServiceBuilder::new()
        .layer(login.layer_for("bob").max_replay_bytes(1 << 16))
        .service(mcp_service(&fake));
    for service in [&alice, &bob] {
        let response = service.clone().oneshot(mcp_call()).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // Anonymous visitors, many more than the bound.
    for i in 0..1_000 {
        drop(login.layer_for(&format!("visitor-{i}")));
    }
    login.logout("alice", MCP).await.unwrap();
    login.logout("bob", MCP).await.unwrap();
    // The kept services' caches were cleared: they no longer send the logged-out tokens.
    for service in [alice, bob] {
        let err = service.oneshot(mcp_call()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InteractionRequired, "{err:#}");
    }
    assert_eq!(fake.bearers(), ["at-ca", "at-cb"]);
}

/// A user who connects again, or whom the app forgets (signed out of the app), while the app
/// keeps a service built on their layer: the layer stays where a logout reaches it, and after a
/// new login it sends the new token, not the one it held.
#[tokio::test]
async fn a_kept_service_follows_a_new_login_and_a_logout_after_forget_user() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    log_in(&login, "alice", "ca").await;
    let kept = ServiceBuilder::new()
        .layer(login.layer_for("alice"))
        .service(mcp_service(&fake));
    assert_eq!(
        kept.clone().oneshot(mcp_call()).await.unwrap().status(),
        200
    );
    // Alice connects again: the kept service sends her new token from its next call on.
    log_in(&login, "alice", "cb").await;
    assert_eq!(
        kept.clone().oneshot(mcp_call()).await.unwrap().status(),
        200
    );
    assert_eq!(fake.bearers(), ["at-ca", "at-cb"]);
    // The app forgets her (she signed out of it), then logs her out of the server: the kept
    // service's cache is reached all the same.
    login.forget_user("alice").await.unwrap();
    login.logout("alice", MCP).await.unwrap();
    let err = kept.oneshot(mcp_call()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InteractionRequired, "{err:#}");
    assert_eq!(fake.bearers(), ["at-ca", "at-cb"]);
}

/// A refresh the kept layer started before the user connected again ends after the new login
/// installed its tokens: refused, it drops only the tokens it tried to renew, and the kept
/// service goes on with the new ones.
#[tokio::test]
async fn a_refresh_refused_after_a_new_login_leaves_the_new_tokens() {
    let fake = Fake::new(3600);
    let (login, clock) = setup(&fake);
    log_in(&login, "alice", "ca").await;
    // The kept service's refreshes wait at a gate the test opens.
    let (reached, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let inner = mcp_service(&fake);
    let gated = McpService::new(service_fn({
        let (reached, release) = (Arc::clone(&reached), Arc::clone(&release));
        move |req: http::Request<OAuthBody<Full<Bytes>>>| {
            let (reached, release, inner) =
                (Arc::clone(&reached), Arc::clone(&release), inner.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                if body.windows(22).any(|w| w == b"grant_type=refresh_tok") {
                    reached.notify_one();
                    release.notified().await;
                }
                let req = http::Request::from_parts(parts, OAuthBody::passthrough(Full::new(body)));
                inner.oneshot(req).await
            }
        }
    }));
    let kept = ServiceBuilder::new()
        .layer(login.layer_for("alice"))
        .service(gated);
    assert_eq!(
        kept.clone().oneshot(mcp_call()).await.unwrap().status(),
        200
    );
    // An hour on, the token is due: the kept service's next call refreshes it, and the
    // server will refuse the refresh.
    *clock.lock().unwrap() += Duration::from_secs(3600);
    fake.refuse_refreshes.store(true, Ordering::SeqCst);
    let call = tokio::spawn(kept.clone().oneshot(mcp_call()));
    reached.notified().await;
    // Meanwhile alice connects again.
    log_in(&login, "alice", "cb").await;
    release.notify_one();
    let _ = call.await.unwrap();
    // The refused refresh dropped nothing but the tokens it tried: the kept service sends the
    // new ones.
    let response = kept.oneshot(mcp_call()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.bearers().last().map(String::as_str), Some("at-cb"));
}

/// Where a [`GatedStore`] waits for the test, once armed.
#[derive(Clone, Copy, PartialEq)]
enum Gate {
    /// After its next compare-and-swap lands, before it answers: a refresh whose write
    /// reached the store and whose install has not happened yet.
    AfterSwap,
    /// Before its next read of a status record: a login's last write in flight.
    BeforeStatusRead,
}

/// A memory store that, once armed, waits at its [`Gate`] until the test releases it.
struct GatedStore {
    inner: crate::MemoryStore,
    gate: Gate,
    armed: std::sync::atomic::AtomicBool,
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl GatedStore {
    fn new(gate: Gate) -> Self {
        Self {
            inner: crate::MemoryStore::new(),
            gate,
            armed: Default::default(),
            reached: Default::default(),
            release: Default::default(),
        }
    }

    /// Waits for the test here if this is the armed gate.
    async fn pass(&self, at: Gate) {
        if self.gate == at && self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}

impl TokenStore for GatedStore {
    fn load_tokens<'a>(
        &'a self,
        r: &'a str,
    ) -> crate::BoxFuture<'a, Result<Option<crate::TokenSet>, crate::Error>> {
        self.inner.load_tokens(r)
    }
    fn save_tokens<'a>(
        &'a self,
        r: &'a str,
        t: &'a crate::TokenSet,
    ) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        self.inner.save_tokens(r, t)
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        r: &'a str,
        current: Option<&'a crate::TokenSet>,
        new: Option<&'a crate::TokenSet>,
    ) -> crate::BoxFuture<'a, Result<crate::store::Replaced, crate::Error>> {
        Box::pin(async move {
            let swapped = self.inner.compare_and_swap_tokens(r, current, new).await;
            self.pass(Gate::AfterSwap).await;
            swapped
        })
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> crate::BoxFuture<'a, Result<Option<crate::ClientRegistration>, crate::Error>> {
        self.inner.load_client(issuer)
    }
    fn save_client<'a>(
        &'a self,
        r: &'a crate::ClientRegistration,
    ) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        self.inner.save_client(r)
    }
    fn remove_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        self.inner.remove_client(issuer)
    }
    fn lock<'a>(
        &'a self,
        r: &'a str,
    ) -> crate::BoxFuture<'a, Result<crate::StoreLock, crate::Error>> {
        self.inner.lock(r)
    }
    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a crate::store::LastFlow,
    ) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        self.inner.save_last_flow(server, record)
    }
    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> crate::BoxFuture<'a, Result<Option<crate::store::LastFlow>, crate::Error>> {
        Box::pin(async move {
            self.pass(Gate::BeforeStatusRead).await;
            self.inner.load_last_flow(server).await
        })
    }
}

/// A refresh the kept layer started before the user connected again writes its tokens to the
/// store and then, after the new login installed its own, comes to install them: the new
/// login's stay in the cache (the store holds them too).
#[tokio::test]
async fn a_refresh_that_installs_after_a_new_login_leaves_the_new_tokens() {
    let fake = Fake::new(3600);
    let store = Arc::new(GatedStore::new(Gate::AfterSwap));
    let (login, clock, _) = setup_over(&fake, Arc::clone(&store) as Arc<dyn TokenStore>);
    log_in(&login, "alice", "ca").await;
    let kept = ServiceBuilder::new()
        .layer(login.layer_for("alice"))
        .service(mcp_service(&fake));
    assert_eq!(
        kept.clone().oneshot(mcp_call()).await.unwrap().status(),
        200
    );
    *clock.lock().unwrap() += Duration::from_secs(3600);
    store.armed.store(true, Ordering::SeqCst);
    let call = tokio::spawn(kept.clone().oneshot(mcp_call()));
    store.reached.notified().await;
    // The refresh's tokens are in the store; alice connects again before they are installed.
    log_in(&login, "alice", "cb").await;
    store.release.notify_one();
    let _ = call.await.unwrap();
    let response = kept.oneshot(mcp_call()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.bearers().last().map(String::as_str), Some("at-cb"));
}

/// A user logged out in another process while this one's layer held their tokens: its next
/// refresh finds the store empty under the lock, sends no refresh (its grant is revoked, or
/// would be minted past the logout's revocation), and tells the app the user must connect
/// (`ConnectRequired`, as for any grant gone), not the logout's error. The status in the store
/// shows no error of the server for it.
#[tokio::test]
async fn a_logout_in_another_process_leaves_the_user_to_connect_again() {
    let fake = Fake::new(3600);
    let (here, clock, store) = setup_with_store(&fake);
    let (elsewhere, _, _) = setup_over(&fake, Arc::clone(&store));
    let url = here.start("alice", MCP).await.unwrap();
    here.complete("alice", &approve(&url, "c1")).await.unwrap();
    let service = ServiceBuilder::new()
        .layer(here.layer_for("alice"))
        .service(mcp_service(&fake));
    assert_eq!(
        service.clone().oneshot(mcp_call()).await.unwrap().status(),
        200
    );

    elsewhere.logout("alice", MCP).await.unwrap();
    // The token is due for refresh here.
    *clock.lock().unwrap() += Duration::from_secs(3590);
    let err = service.oneshot(mcp_call()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InteractionRequired, "{err:#}");
    assert!(ConnectRequired::find(&err).is_some(), "{err:#}");
    assert_eq!(
        fake.count("POST /token"),
        1,
        "the code exchange only: no refresh"
    );
    let status = here.status("alice", MCP).await.unwrap();
    assert!(!status.connected);
    let stored = here.user_store("alice").load_last_flow(MCP).await.unwrap();
    assert!(stored.is_none(), "{stored:?}");
}

/// A logout while a login's last writes are in flight (after its tokens were stored and its
/// logout check passed): the service the app keeps does not take the tokens the logout wiped.
#[tokio::test]
async fn a_logout_during_a_logins_last_writes_is_not_undone_for_a_kept_service() {
    let fake = Fake::new(3600);
    let store = Arc::new(GatedStore::new(Gate::BeforeStatusRead));
    let (login, _, _) = setup_over(&fake, Arc::clone(&store) as Arc<dyn TokenStore>);
    let login = Arc::new(login);
    let kept = ServiceBuilder::new()
        .layer(login.layer_for("alice"))
        .service(mcp_service(&fake));
    let url = login.start("alice", MCP).await.unwrap();
    store.armed.store(true, Ordering::SeqCst);
    let completing = tokio::spawn({
        let login = Arc::clone(&login);
        async move { login.complete("alice", &approve(&url, "c1")).await }
    });
    store.reached.notified().await;
    login.logout("alice", MCP).await.unwrap();
    store.release.notify_one();
    completing.await.unwrap().unwrap();
    let err = kept.oneshot(mcp_call()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InteractionRequired, "{err:#}");
    assert!(fake.bearers().is_empty(), "{:?}", fake.bearers());
}
