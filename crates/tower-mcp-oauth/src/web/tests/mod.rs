//! Ownership, expiry and replay of web logins (`logins.rs`), the per-user layers
//! (`user_layers.rs`) and logins across processes (`processes.rs`), against a fake resource and
//! authorization server defined here.

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
    /// Whether refreshes are refused (`invalid_grant`).
    refuse_refreshes: std::sync::atomic::AtomicBool,
}

impl Fake {
    fn new(lifetime: u64) -> Arc<Self> {
        Arc::new(Self {
            log: Mutex::default(),
            valid: Mutex::default(),
            refreshes: AtomicU32::new(0),
            lifetime,
            refuse_refreshes: Default::default(),
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
                Some("refresh_token") if self.refuse_refreshes.load(Ordering::SeqCst) => {
                    (400, json!({"error": "invalid_grant"}))
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
    setup_over(fake, Arc::new(MemoryStore::new()))
}

/// A login over `fake` keeping its tokens in `store`.
fn setup_over(
    fake: &Arc<Fake>,
    store: Arc<dyn TokenStore>,
) -> (WebLogin, Clock, Arc<dyn TokenStore>) {
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

/// Logs `user` in: starts the login and completes it with `code`, as the browser would.
async fn log_in(login: &WebLogin, user: &str, code: &str) {
    let url = login.start(user, MCP).await.unwrap();
    login.complete(user, &approve(&url, code)).await.unwrap();
}

async fn tokens_of(login: &WebLogin, user: &str) -> Option<String> {
    login
        .user_store(user)
        .load_tokens(MCP)
        .await
        .unwrap()
        .map(|t| t.access_token().secret().clone())
}

mod logins;
mod processes;
mod user_layers;
