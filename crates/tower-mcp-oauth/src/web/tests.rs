//! Ownership, expiry and replay of web logins, and the per-user layers, against a fake
//! resource and authorization server.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use url::Url;

use super::{
    ConnectRequired, MemoryPendingLogins, PendingLogin, PendingLoginStore, WebLogin,
    DEFAULT_PENDING_TTL, MAX_PENDING_PER_USER,
};
use crate::{ClientConfig, ErrorKind, HttpClient, MemoryStore, OAuthBody, TokenStore};

const RS: &str = "https://mcp.example.com";
const AS: &str = "https://as.example.com";
const MCP: &str = "https://mcp.example.com/mcp";
const REDIRECT: &str = "https://app.example.com/callback";

/// A resource server and an authorization server in one function. Tokens are `at-<code>`
/// (or `at-r<n>` after a refresh) and live `lifetime` seconds.
struct Fake {
    log: Mutex<Vec<String>>,
    valid: Mutex<HashSet<String>>,
    refreshes: AtomicU32,
    lifetime: u64,
}

impl Fake {
    fn new(lifetime: u64) -> Arc<Self> {
        Arc::new(Self {
            log: Mutex::default(),
            valid: Mutex::default(),
            refreshes: AtomicU32::new(0),
            lifetime,
        })
    }

    fn count(&self, line: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == line)
            .count()
    }

    /// The bearer tokens the resource saw, in order.
    fn bearers(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("POST /mcp ").map(str::to_owned))
            .collect()
    }

    fn tokens(&self, access: String, refresh: String) -> (u16, serde_json::Value) {
        self.valid.lock().unwrap().insert(access.clone());
        let body = json!({"access_token": access, "token_type": "Bearer",
                          "expires_in": self.lifetime, "refresh_token": refresh});
        (200, body)
    }

    fn handle(&self, req: http::Request<Bytes>) -> http::Response<Bytes> {
        let url = req.uri().to_string();
        let path = req.uri().path().to_owned();
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let form: Vec<(String, String)> = url::form_urlencoded::parse(req.body())
            .into_owned()
            .collect();
        let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        self.log.lock().unwrap().push(match &bearer {
            Some(b) if path == "/mcp" => format!("{} {path} {b}", req.method()),
            _ => format!("{} {path}", req.method()),
        });
        let (status, body) = match url.as_str() {
            u if u == format!("{RS}/.well-known/oauth-protected-resource/mcp") => {
                (200, json!({"resource": MCP, "authorization_servers": [AS]}))
            }
            u if u == format!("{AS}/.well-known/oauth-authorization-server") => (
                200,
                json!({"issuer": AS,
                       "authorization_endpoint": format!("{AS}/authorize"),
                       "token_endpoint": format!("{AS}/token"),
                       "registration_endpoint": format!("{AS}/register"),
                       "response_types_supported": ["code"],
                       "code_challenge_methods_supported": ["S256"],
                       "grant_types_supported": ["authorization_code", "refresh_token",
                           "urn:ietf:params:oauth:grant-type:jwt-bearer"],
                       "authorization_response_iss_parameter_supported": true}),
            ),
            u if u == format!("{AS}/register") => (
                201,
                json!({"client_id": "app", "redirect_uris": [REDIRECT],
                       "token_endpoint_auth_method": "none"}),
            ),
            u if u == format!("{AS}/token") => match param("grant_type").as_deref() {
                Some("authorization_code") => {
                    let code = param("code").unwrap_or_default();
                    self.tokens(format!("at-{code}"), format!("rt-{code}"))
                }
                Some("refresh_token") => {
                    let n = self.refreshes.fetch_add(1, Ordering::Relaxed) + 1;
                    self.tokens(format!("at-r{n}"), format!("rt-r{n}"))
                }
                _ => (400, json!({"error": "unsupported_grant_type"})),
            },
            MCP => {
                if bearer.is_some_and(|b| self.valid.lock().unwrap().contains(&b)) {
                    (
                        200,
                        json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}),
                    )
                } else {
                    let challenge = format!(
                        r#"Bearer resource_metadata="{RS}/.well-known/oauth-protected-resource/mcp""#
                    );
                    return http::Response::builder()
                        .status(401)
                        .header("www-authenticate", challenge)
                        .body(Bytes::new())
                        .unwrap();
                }
            }
            _ => (404, json!({})),
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }
}

type Clock = Arc<Mutex<SystemTime>>;

/// A login over `fake`, with a clock the test moves.
fn setup(fake: &Arc<Fake>) -> (WebLogin, Clock) {
    let (login, now, _) = setup_with_store(fake);
    (login, now)
}

fn setup_with_store(fake: &Arc<Fake>) -> (WebLogin, Clock, Arc<dyn TokenStore>) {
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let now: Clock = Arc::new(Mutex::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    let f = Arc::clone(fake);
    let client = HttpClient::from_fn(move |req| {
        let response = f.handle(req);
        async move { Ok(response) }
    });
    let clock = Arc::clone(&now);
    let login = WebLogin::new(ClientConfig::new(REDIRECT), client)
        .token_store(Arc::clone(&store))
        .clock(move || *clock.lock().unwrap());
    (login, now, store)
}

/// What the browser brings back to the callback after the (auto-approving) server: the
/// authorization URL's `state`, a code, and the RFC 9207 `iss`.
fn approve(url: &Url, code: &str) -> String {
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .expect("the authorization URL carries a state")
        .1
        .into_owned();
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", code)
        .append_pair("state", &state)
        .append_pair("iss", AS)
        .finish()
}

async fn tokens_of(login: &WebLogin, user: &str) -> Option<String> {
    login
        .user_store(user)
        .load_tokens(MCP)
        .await
        .unwrap()
        .map(|t| t.access_token().secret().clone())
}

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
        let url = login.start(user, MCP).await.unwrap();
        login.complete(user, &approve(&url, user)).await.unwrap();
    }
    assert_eq!(fake.count("POST /register"), 1);
    assert!(store.load_client(AS).await.unwrap().is_some());
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
        let url = login.start(user, MCP).await.unwrap();
        login.complete(user, &approve(&url, code)).await.unwrap();
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
    let url = login.start("alice", MCP).await.unwrap();
    login.complete("alice", &approve(&url, "c1")).await.unwrap();
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
        let url = login.start(user, MCP).await.unwrap();
        login.complete(user, &approve(&url, code)).await.unwrap();
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

/// One process of a web app served by several: its own `WebLogin` (its own memory, layers and
/// DPoP key) over the stores every process shares.
fn process(
    fake: &Arc<Fake>,
    redirect: &str,
    pending: Arc<dyn PendingLoginStore>,
    store: Arc<dyn TokenStore>,
) -> WebLogin {
    let f = Arc::clone(fake);
    let client = HttpClient::from_fn(move |req| {
        let response = f.handle(req);
        async move { Ok(response) }
    });
    WebLogin::new(ClientConfig::new(redirect), client)
        .token_store(store)
        .pending_login_store(pending)
}

fn shared_stores() -> (Arc<dyn PendingLoginStore>, Arc<dyn TokenStore>) {
    (
        Arc::new(MemoryPendingLogins::new()),
        Arc::new(MemoryStore::new()),
    )
}

#[tokio::test]
async fn a_login_started_in_one_process_completes_in_another() {
    let fake = Fake::new(3600);
    let (pending, store) = shared_stores();
    let a = process(&fake, REDIRECT, Arc::clone(&pending), Arc::clone(&store));
    let b = process(&fake, REDIRECT, Arc::clone(&pending), store);
    let url = a.start("alice", MCP).await.unwrap();
    assert_eq!(b.pending_logins(), 1, "the login waits in the shared store");

    let connection = b.complete("alice", &approve(&url, "c1")).await.unwrap();
    assert_eq!(connection.server_url.as_str(), MCP);
    assert_eq!(connection.issuer, AS);
    assert_eq!(fake.count("POST /token"), 1);
    // The process that started the login finds the tokens the other one stored.
    assert_eq!(tokens_of(&a, "alice").await.as_deref(), Some("at-c1"));
    let err = a.complete("alice", &approve(&url, "c1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch, "used once, anywhere");
}

#[tokio::test]
async fn two_processes_completing_one_callback_have_one_winner() {
    let fake = Fake::new(3600);
    let (pending, store) = shared_stores();
    let a = process(&fake, REDIRECT, Arc::clone(&pending), Arc::clone(&store));
    let b = process(&fake, REDIRECT, pending, store);
    let url = a.start("alice", MCP).await.unwrap();
    let callback = approve(&url, "c1");
    let (from_a, from_b) = tokio::join!(
        a.complete("alice", &callback),
        b.complete("alice", &callback)
    );
    let kinds: Vec<_> = [&from_a, &from_b]
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.kind()))
        .collect();
    assert_eq!(kinds, [ErrorKind::StateMismatch], "{from_a:?} {from_b:?}");
    assert_eq!(fake.count("POST /token"), 1, "the code is exchanged once");
}

#[tokio::test]
async fn a_process_with_another_redirect_uri_cannot_complete_the_login() {
    let fake = Fake::new(3600);
    let (pending, store) = shared_stores();
    let a = process(&fake, REDIRECT, Arc::clone(&pending), Arc::clone(&store));
    let b = process(&fake, "https://other.example.com/callback", pending, store);
    let url = a.start("alice", MCP).await.unwrap();
    let err = b.complete("alice", &approve(&url, "c1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRedirectUri);
    assert_eq!(fake.count("POST /token"), 0);
}

/// A store that keeps everything and fails when told to: the login checks expiry itself, and
/// a store error reaches the caller.
#[derive(Default)]
struct Forever {
    logins: Mutex<Vec<(String, String, PendingLogin)>>,
    broken: bool,
}

impl PendingLoginStore for Forever {
    fn put<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
        login: &'a PendingLogin,
        _ttl: Duration,
    ) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        let result = if self.broken {
            Err(crate::Error::new(ErrorKind::Store, "the store is down"))
        } else {
            self.logins
                .lock()
                .unwrap()
                .push((user.into(), state.into(), login.clone()));
            Ok(())
        };
        Box::pin(async move { result })
    }

    fn take<'a>(
        &'a self,
        user: &'a str,
        state: &'a str,
    ) -> crate::BoxFuture<'a, Result<Option<PendingLogin>, crate::Error>> {
        let mut logins = self.logins.lock().unwrap();
        let found = logins.iter().position(|(u, s, _)| u == user && s == state);
        let login = found.map(|i| logins.remove(i).2);
        Box::pin(async move { Ok(login) })
    }

    fn forget_user<'a>(&'a self, user: &'a str) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        self.logins.lock().unwrap().retain(|(u, _, _)| u != user);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn an_expired_login_is_refused_even_if_its_store_still_has_it() {
    let fake = Fake::new(3600);
    let (login, now) = setup(&fake);
    let store = Arc::new(Forever::default());
    let login = login.pending_login_store(Arc::clone(&store));
    let url = login.start("alice", MCP).await.unwrap();
    assert_eq!(login.pending_logins(), 0, "this store cannot count");
    *now.lock().unwrap() += DEFAULT_PENDING_TTL;
    let err = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(fake.count("POST /token"), 0);
    assert!(
        store.logins.lock().unwrap().is_empty(),
        "taken all the same"
    );
}

#[tokio::test]
async fn a_start_whose_login_cannot_be_kept_fails() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let login = login.pending_login_store(Forever {
        broken: true,
        ..Forever::default()
    });
    let err = login.start("alice", MCP).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
}

#[tokio::test]
async fn forgetting_a_user_drops_their_pending_logins() {
    let fake = Fake::new(3600);
    let (login, _) = setup(&fake);
    let url = login.start("alice", MCP).await.unwrap();
    login.start("bob", MCP).await.unwrap();
    login.forget_user("alice").await.unwrap();
    assert_eq!(login.pending_logins(), 1);
    let err = login
        .complete("alice", &approve(&url, "c1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
}
