//! Requests the layer must leave (partly) to their caller. One whose `Host` header names
//! another authority than its URI (a gateway copying an incoming request's headers, a fronted
//! domain) is steered by it, past a shared ingress, to another server: the layer sends it
//! untouched, with no token and no flow on its `401`. So is one whose scheme the connectors do
//! not read as `http`/`https`. And a nonce challenge to the caller's own DPoP proof is the
//! caller's.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_testkit::scripted::{flow_response, json, resource, RS};
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer, TokenSet, TokenStore,
    TokenType,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;
/// What the server side saw of one request: its path, `Host` and `Authorization`.
type Seen = (String, Option<String>, Option<String>);
/// What the server side saw of one request: its scheme as written, and its `Authorization`.
type SchemeSeen = (String, Option<String>);

#[tokio::test]
async fn a_request_steered_elsewhere_by_its_host_header_goes_without_the_token() {
    let url = format!("{RS}/mcp");
    let store = MemoryStore::new();
    let tokens = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c");
    store.save_tokens(&url, &tokens).await.unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let server = service_fn({
        let seen = Arc::clone(&seen);
        move |req: Req| {
            let header = |name| {
                req.headers()
                    .get(name)
                    .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
            };
            let entry = (
                req.uri().path().to_owned(),
                header(http::header::HOST),
                header(http::header::AUTHORIZATION),
            );
            seen.lock().unwrap().push(entry);
            let response = flow_response(&req).unwrap_or_else(|| resource(&req, "at-1"));
            async move { Ok::<_, Infallible>(response) }
        }
    });
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store)
    .layer(server);
    let send = |host: Option<&str>| {
        let mut request = http::Request::post(&url);
        if let Some(host) = host {
            request = request.header(http::header::HOST, host);
        }
        // A head too large to pack in place is kept another way; the `Host` rule is the same.
        if host.is_some_and(|h| h.starts_with("big.")) {
            request = request.header("x-large", "x".repeat(4096));
        }
        service
            .clone()
            .oneshot(request.body(Full::new(Bytes::new())).unwrap())
    };

    // Its own authority, however written, or none: the token goes.
    for host in [None, Some("127.0.0.1:1"), Some("127.0.0.1:01")] {
        assert_eq!(send(host).await.unwrap().status(), 200, "{host:?}");
    }
    // Another: untouched, and its 401 is passed on with no flow behind it.
    for host in ["tenant-b.example.net", "big.example.net"] {
        let response = send(Some(host)).await.unwrap();
        assert_eq!(response.status(), 401, "{host}");
    }
    // Two: its own first, another after (a gateway appending a copied one).
    let request = http::Request::post(&url)
        .header(http::header::HOST, "127.0.0.1:1")
        .header(http::header::HOST, "tenant-b.example.net")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    let seen = seen.lock().unwrap().clone();
    let bearer = Some("Bearer at-1".to_owned());
    let host = |h: &str| Some(h.to_owned());
    assert_eq!(
        seen,
        [
            ("/mcp".to_owned(), None, bearer.clone()),
            ("/mcp".to_owned(), host("127.0.0.1:1"), bearer.clone()),
            ("/mcp".to_owned(), host("127.0.0.1:01"), bearer),
            ("/mcp".to_owned(), host("tenant-b.example.net"), None),
            ("/mcp".to_owned(), host("big.example.net"), None),
            ("/mcp".to_owned(), host("127.0.0.1:1"), None),
        ]
    );
}

/// A URI whose scheme was set apart in other letters (`Uri::builder().scheme("HTTPS")`) is
/// not `https` to `http` and the connectors: hyper-tls sends it without TLS, to port 80. The
/// layer holds a token for the origin its letters spell, and sends it no token, starts no
/// flow, and keeps its session for the real scheme (with the store's token adopted for the
/// URI written the usual way, then sent only there).
#[tokio::test]
async fn a_scheme_in_other_letters_gets_no_token() {
    let url = format!("{RS}/mcp");
    let store = MemoryStore::new();
    let tokens = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c");
    store.save_tokens(&url, &tokens).await.unwrap();
    let seen: Arc<Mutex<Vec<SchemeSeen>>> = Arc::default();
    let server = service_fn({
        let seen = Arc::clone(&seen);
        move |req: Req| {
            let authorization = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            let scheme = req.uri().scheme_str().unwrap_or("").to_owned();
            seen.lock().unwrap().push((scheme, authorization));
            let response = flow_response(&req).unwrap_or_else(|| resource(&req, "at-1"));
            async move { Ok::<_, Infallible>(response) }
        }
    });
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store)
    .layer(server);
    let parsed: http::Uri = url.parse().unwrap();
    let authority = parsed.authority().unwrap().as_str().to_owned();
    let odd_at = |scheme: &str, authority: &str| {
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/mcp")
            .build()
            .unwrap();
        http::Request::post(uri)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let odd = |scheme: &str| odd_at(scheme, &authority);
    // Before any session (the first contact would adopt the stored token), and after one.
    let first = service.clone().oneshot(odd("HTTP")).await.unwrap();
    assert_eq!(first.status(), 401);
    let usual = http::Request::post(&url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(service.clone().oneshot(usual).await.unwrap().status(), 200);
    let again = service.clone().oneshot(odd("Http")).await.unwrap();
    assert_eq!(again.status(), 401);
    // Its authority written otherwise too (userinfo, a padded port): looked up by its parsed
    // origin, which an odd scheme does not have either.
    for written in [format!("u@{authority}"), authority.replace(':', ":0")] {
        let response = service.clone().oneshot(odd_at("HTTP", &written)).await;
        assert_eq!(response.unwrap().status(), 401, "{written}");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("HTTP".to_owned(), None),
            ("http".to_owned(), Some("Bearer at-1".to_owned())),
            ("Http".to_owned(), None),
            ("HTTP".to_owned(), None),
            ("HTTP".to_owned(), None),
        ]
    );
}

/// The caller's own `DPoP` header on a request the layer sends with its bearer token: a
/// `use_dpop_nonce` challenge to it is about the caller's proof, and comes back to the caller
/// as it is (no retry with the caller's `Authorization` or none, no refresh of a valid token).
#[tokio::test]
async fn a_nonce_challenge_to_the_callers_own_proof_is_the_callers() {
    let url = format!("{RS}/mcp");
    let store = MemoryStore::new();
    let tokens = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c");
    store.save_tokens(&url, &tokens).await.unwrap();
    let seen: Arc<Mutex<Vec<SchemeSeen>>> = Arc::default();
    let server = service_fn({
        let seen = Arc::clone(&seen);
        move |req: Req| {
            let authorization = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            seen.lock()
                .unwrap()
                .push((req.uri().path().to_owned(), authorization));
            let response = if req.headers().contains_key("dpop") {
                http::Response::builder()
                    .status(401)
                    .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                    .header("dpop-nonce", "n-1")
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            } else {
                flow_response(&req).unwrap_or_else(|| resource(&req, "at-1"))
            };
            async move { Ok::<_, Infallible>(response) }
        }
    });
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store)
    .layer(server);
    let plain = http::Request::post(&url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(service.clone().oneshot(plain).await.unwrap().status(), 200);
    let proved = http::Request::post(&url)
        .header("dpop", "the-callers-proof")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = service.clone().oneshot(proved).await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.headers()["dpop-nonce"], "n-1");
    let bearer = Some("Bearer at-1".to_owned());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("/mcp".to_owned(), bearer.clone()),
            ("/mcp".to_owned(), bearer)
        ]
    );
}

/// A server that answers every request carrying a `DPoP` header with a nonce challenge, and
/// is otherwise the scripted resource wanting `Bearer at-1`; the requests it saw, with their
/// `DPoP` headers.
fn nonce_challenging(
    seen: &Arc<Mutex<Vec<SchemeSeen>>>,
) -> impl tower::Service<
    Req,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    let seen = Arc::clone(seen);
    service_fn(move |req: Req| {
        let proof = req
            .headers()
            .get("dpop")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.lock()
            .unwrap()
            .push((req.uri().path().to_owned(), proof.clone()));
        let response = if proof.is_some() {
            http::Response::builder()
                .status(401)
                .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .header("dpop-nonce", "n-1")
                .body(Full::new(Bytes::new()))
                .unwrap()
        } else {
            flow_response(&req).unwrap_or_else(|| resource(&req, "at-1"))
        };
        async move { Ok::<_, Infallible>(response) }
    })
}

/// The same on an origin's first request, which the layer sends through its slow path (the
/// store is read first), with no token to attach: the `DPoP` header is the caller's, and so is
/// the nonce challenge to it. Sent again by the layer, the same proof (its `jti` spent) would
/// be refused again.
#[tokio::test]
async fn a_nonce_challenge_to_the_callers_proof_on_a_first_request_is_the_callers() {
    let seen: Arc<Mutex<Vec<SchemeSeen>>> = Arc::default();
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .layer(nonce_challenging(&seen));
    let proved = http::Request::post(format!("{RS}/mcp"))
        .header("dpop", "the-callers-proof")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = service.clone().oneshot(proved).await.unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.headers()["dpop-nonce"], "n-1");
    assert_eq!(
        *seen.lock().unwrap(),
        [("/mcp".to_owned(), Some("the-callers-proof".to_owned()))]
    );
    assert_eq!(service.flows_started(), 0);
}

/// A nonce challenge to a request that carried no proof at all (no token yet) says the
/// resource wants a token: the layer authorizes as for any `401`, then retries.
#[tokio::test]
async fn a_nonce_challenge_to_a_request_without_a_proof_is_authorized() {
    let server = service_fn(|req: Req| {
        let response = if req.uri().path() == "/token" {
            json(
                200,
                serde_json::json!({"access_token": "at-1", "token_type": "Bearer"}),
            )
        } else if req.headers().contains_key(http::header::AUTHORIZATION)
            || req.uri().path() != "/mcp"
        {
            flow_response(&req).unwrap_or_else(|| resource(&req, "at-1"))
        } else {
            http::Response::builder()
                .status(401)
                .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .header("dpop-nonce", "n-1")
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        async move { Ok::<_, Infallible>(response) }
    });
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .layer(server);
    let plain = http::Request::post(format!("{RS}/mcp"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = service.clone().oneshot(plain).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(service.flows_started(), 1);
}
