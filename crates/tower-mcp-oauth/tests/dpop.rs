//! DPoP (RFC 9449) end to end over loopback TCP: the testkit's servers verify every proof
//! (signature with the proof's own key, `htm`, `htu`, `iat`, `jti` replay, `ath`, the key the
//! token is bound to) and demand nonces; these tests check what the client sent and did.

mod support;

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mcp_oauth_testkit::{DpopConfig, RecordedRequest, ServerRole, Testkit, TestkitConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::lifecycle::{call, count, grants, layer, service, TestClock};
use tower::ServiceExt;
use tower_mcp_oauth::{Dpop, DpopKey, DpopPolicy, ErrorKind, FileStore, TokenStore};

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The header and claims of the request's `DPoP` proof.
fn proof(request: &RecordedRequest) -> (Value, Value) {
    let jwt = request
        .headers
        .get("dpop")
        .expect("a DPoP proof")
        .to_str()
        .unwrap();
    let mut parts = jwt.split('.');
    (decode(parts.next().unwrap()), decode(parts.next().unwrap()))
}

/// RFC 7638 thumbprint of a proof's `jwk`, computed here.
fn thumbprint(header: &Value) -> String {
    let jwk = &header["jwk"];
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
}

fn dpop_kit(dpop: DpopConfig) -> TestkitConfig {
    TestkitConfig::default().dpop(dpop)
}

#[tokio::test]
async fn nonces_at_both_servers_are_honoured_without_reauthorizing() {
    let kit = Testkit::start(dpop_kit(
        DpopConfig::default()
            .as_nonce("as-nonce")
            .rs_nonce("rs-nonce"),
    ))
    .await
    .unwrap();
    let clock = TestClock::default();
    let svc = service(layer(&clock));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);

    // The token endpoint: a proof without the nonce, challenged, then a fresh proof with it.
    let tokens = grants(&kit, "authorization_code");
    assert_eq!(tokens.len(), 2, "one challenge, one retry");
    let (h0, c0) = proof(&tokens[0]);
    let (h1, c1) = proof(&tokens[1]);
    assert_eq!(h0["typ"], "dpop+jwt");
    assert_eq!(h0["alg"], "ES256");
    assert!(h0["jwk"].get("d").is_none());
    assert_eq!(c0["htm"], "POST");
    assert_eq!(c0["htu"], format!("{}/token", kit.auth_server_origin()));
    assert!(c0.get("nonce").is_none() && c0.get("ath").is_none());
    assert_eq!(c1["nonce"], "as-nonce");
    assert_ne!(
        c0["jti"], c1["jti"],
        "a fresh proof, not the same one again"
    );
    let jkt = thumbprint(&h1);
    assert_eq!(thumbprint(&h0), jkt);

    // The resource: DPoP scheme, a proof per request with the token's hash; one nonce retry.
    let mcp: Vec<_> = kit
        .requests()
        .into_iter()
        .filter(|r| r.path == "/mcp")
        .collect();
    let authorized: Vec<_> = mcp
        .iter()
        .filter(|r| r.headers.contains_key("authorization"))
        .collect();
    assert_eq!(
        authorized.len(),
        2,
        "the retry after the flow, then the nonce retry"
    );
    let mut jtis = HashSet::new();
    for request in &authorized {
        let value = request.headers["authorization"].to_str().unwrap();
        let token = value
            .strip_prefix("DPoP ")
            .expect("the DPoP scheme, not Bearer");
        let (header, claims) = proof(request);
        assert_eq!(thumbprint(&header), jkt, "the key the token is bound to");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], kit.resource_url());
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(token)));
        assert!(jtis.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
    assert!(proof(authorized[0]).1.get("nonce").is_none());
    assert_eq!(proof(authorized[1]).1["nonce"], "rs-nonce");
    assert_eq!(count(&kit, "/authorize"), 1);

    // The nonces are remembered per origin: the next request carries the RS's at once.
    kit.clear_requests();
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
    let requests = kit.requests();
    assert_eq!(requests.len(), 1, "no challenge, no flow");
    assert_eq!(proof(&requests[0]).1["nonce"], "rs-nonce");
}

#[tokio::test]
async fn a_bound_refresh_token_works_after_a_restart() {
    let kit = Testkit::start(dpop_kit(DpopConfig::default()).token_lifetime_secs(20))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::default();
    let first = service(layer(&clock).token_store(FileStore::new(dir.path()).unwrap()));
    assert_eq!(call(&first, &kit, "tools/list").await.status(), 200);
    let issued = grants(&kit, "authorization_code");
    let jkt = thumbprint(&proof(&issued[0]).0);
    drop(first);

    // What is stored is the key with the tokens, backward compatible: a field more.
    let store = FileStore::new(dir.path()).unwrap();
    let stored = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.token_type(), tower_mcp_oauth::TokenType::DPoP);
    assert!(stored.dpop_key().is_some());

    // A new process whose layer has another key: the stored tokens keep theirs.
    kit.clear_requests();
    clock.set(19);
    let other = DpopKey::from_entropy([42; 32]).unwrap();
    let restarted = service(
        layer(&clock)
            .dpop(Dpop::new().key(other))
            .token_store(FileStore::new(dir.path()).unwrap()),
    );
    assert_eq!(call(&restarted, &kit, "tools/list").await.status(), 200);
    let paths: Vec<_> = kit.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/token", "/mcp"], "refreshed, not re-authorized");
    let refresh = &grants(&kit, "refresh_token")[0];
    assert_eq!(thumbprint(&proof(refresh).0), jkt);
    let mcp = &kit.requests()[1];
    assert_eq!(thumbprint(&proof(mcp).0), jkt);
}

/// A refresh answered with bound tokens but no `token_type` (RFC 6749 §5.1 requires one;
/// servers omit it): the refreshed token is still sent as `DPoP` with a proof, not as `Bearer`,
/// which the resource refuses on every request.
#[tokio::test]
async fn a_refresh_answer_naming_no_token_type_keeps_the_tokens_dpop() {
    let kit = Testkit::start(
        dpop_kit(DpopConfig::default().untyped_refresh(true)).token_lifetime_secs(20),
    )
    .await
    .unwrap();
    let clock = TestClock::default();
    let svc = service(layer(&clock));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);

    kit.clear_requests();
    clock.set(19);
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let paths: Vec<_> = kit.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/token", "/mcp"], "refreshed once, then accepted");
    let mcp = &kit.requests()[1];
    let authorization = mcp.headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("DPoP "), "{authorization}");
    assert!(mcp.headers.contains_key("dpop"));
}

#[tokio::test]
async fn a_proof_rejected_twice_is_a_typed_error() {
    for server in [ServerRole::Authorization, ServerRole::Resource] {
        let kit = Testkit::start(dpop_kit(DpopConfig::default().endless_nonces(server)))
            .await
            .unwrap();
        let svc = service(layer(&TestClock::default()));
        let request = support::jsonrpc(&kit.resource_url(), 1, "tools/list", serde_json::json!({}));
        let error = svc.oneshot(request).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::DpopRejected,
            "{server:?}: {error:#}"
        );
        assert!(!error.is_transient());
        let proofs = kit
            .requests()
            .into_iter()
            .filter(|r| r.role == server && r.headers.contains_key("dpop"))
            .count();
        assert_eq!(proofs, 2, "{server:?}: one retry, no loop");
        assert_eq!(
            count(&kit, "/authorize"),
            1,
            "{server:?}: never re-authorized"
        );
    }
}

#[tokio::test]
async fn dpop_turned_off_gets_bearer_tokens_from_a_dpop_server() {
    let kit = Testkit::start(dpop_kit(DpopConfig::default()))
        .await
        .unwrap();
    let clock = TestClock::default();
    let svc = service(layer(&clock).dpop(Dpop::new().policy(DpopPolicy::Never)));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert!(kit
        .requests()
        .iter()
        .all(|r| !r.headers.contains_key("dpop")));
    let last = kit
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/mcp")
        .unwrap();
    assert!(last.bearer().is_some());
}

#[tokio::test]
async fn a_server_without_dpop_is_not_offered_it_unless_asked() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let clock = TestClock::default();
    let svc = service(layer(&clock));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert!(kit
        .requests()
        .iter()
        .all(|r| !r.headers.contains_key("dpop")));

    // Asked for: the proof goes along; a server that ignores it issues a bearer token, used
    // as such.
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let dpop = Dpop::new()
        .policy(DpopPolicy::Always)
        .extra_claims(|method, htu| {
            let mut claims = serde_json::Map::new();
            claims.insert("seen".into(), format!("{method} {htu}").into());
            claims.insert("htm".into(), "GET".into()); // cannot replace the RFC's own
            claims
        });
    let svc = service(layer(&clock).dpop(dpop));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let token = &grants(&kit, "authorization_code")[0];
    let (_, claims) = proof(token);
    let url = format!("{}/token", kit.auth_server_origin());
    assert_eq!(
        claims["seen"],
        format!("POST {url}"),
        "the application's claim"
    );
    assert_eq!(claims["htm"], "POST");
    let last = kit
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/mcp")
        .unwrap();
    assert!(last.bearer().is_some() && !last.headers.contains_key("dpop"));
}

/// Three requests with a DPoP-bound token from the store, against a resource that hands out a
/// new nonce with every success and challenges (RFC 9449 §9) a proof without the one it handed
/// out last; when `first_needs_nonce` is false, the first proof needs none. The first request
/// reads the store and is sent by the slow path, the next ones by the hot path. Returns the
/// requests the resource accepted and the challenges it issued.
async fn against_a_nonce_per_answer(first_needs_nonce: bool) -> (u32, u32) {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::Full;
    use tower::ServiceBuilder;
    use tower_mcp_oauth::{
        ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer, TokenSet, TokenType,
    };

    const URL: &str = "http://127.0.0.1:1/mcp";
    let store = Arc::new(MemoryStore::new());
    let key = DpopKey::from_entropy([8; 32]).unwrap();
    let tokens =
        TokenSet::new("at", TokenType::DPoP, "http://127.0.0.1:2", "c").with_dpop_key(Some(key));
    store.save_tokens(URL, &tokens).await.unwrap();

    // (nonce number handed out last, 0 before any; challenges issued)
    let server_state = Arc::new(Mutex::new((0u32, 0u32)));
    let seen = Arc::clone(&server_state);
    let server = tower::service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
        let state = Arc::clone(&seen);
        async move {
            let jwt = req.headers()["dpop"].to_str().unwrap();
            let claims = decode(jwt.split('.').nth(1).unwrap());
            let mut state = state.lock().unwrap();
            let current = format!("n{}", state.0);
            let accepted =
                (!first_needs_nonce && state.0 == 0) || claims["nonce"] == current.as_str();
            let response = if accepted {
                state.0 += 1;
                http::Response::builder()
                    .status(200)
                    .header("dpop-nonce", format!("n{}", state.0))
            } else {
                state.1 += 1;
                http::Response::builder()
                    .status(401)
                    .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                    .header("dpop-nonce", current)
            };
            Ok::<_, std::convert::Infallible>(response.body(Full::new(Bytes::new())).unwrap())
        }
    });
    let layer = OAuthLayer::new(
        ClientConfig::new("http://127.0.0.1:1/cb"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::clone(&store));
    let svc = ServiceBuilder::new().layer(layer).service(server);
    for _ in 0..3 {
        let request = http::Request::post(URL)
            .body(Full::new(Bytes::from("{}")))
            .unwrap();
        assert_eq!(svc.clone().oneshot(request).await.unwrap().status(), 200);
    }
    let counts = *server_state.lock().unwrap();
    counts
}

/// RFC 9449 §9: a resource may hand out the next nonce with any answer. A layer that notes it
/// is challenged once, not on every request, by a server whose nonce changes each time.
#[tokio::test]
async fn a_nonce_sent_with_a_success_is_used_for_the_next_proof() {
    assert_eq!(
        against_a_nonce_per_answer(true).await,
        (3, 1),
        "challenged on the first request only"
    );
}

/// The same when the first success already brings a nonce: that request was sent by the slow
/// path (the store read at the first request), which made its proof there, not on the hot
/// path; the nonce is used for the next proof all the same, so the resource never challenges.
#[tokio::test]
async fn a_nonce_sent_with_the_first_success_is_used_for_the_next_proof() {
    assert_eq!(
        against_a_nonce_per_answer(false).await,
        (3, 0),
        "never challenged"
    );
}

/// One web app, two users: each login's tokens are bound to a key of its own (the one the
/// token request proved with, stored with the tokens), so one user's stored record proves
/// nothing for the other's tokens; and each user's layer proves with its user's key.
#[tokio::test]
async fn each_web_login_binds_its_tokens_to_a_key_of_its_own() {
    use tower::Layer;
    use tower_mcp_oauth::web::WebLogin;
    use tower_mcp_oauth::{ClientConfig, HttpClient, DEFAULT_MAX_RESPONSE_BYTES};
    // The authorization server asks for a nonce: each token request is sent twice, and both
    // must prove with the login's one key.
    let kit = Testkit::start(dpop_kit(DpopConfig::default().as_nonce("as-nonce")))
        .await
        .unwrap();
    let client = HttpClient::from_service(support::http_client(), DEFAULT_MAX_RESPONSE_BYTES);
    let login = WebLogin::new(ClientConfig::new("http://127.0.0.1:3000/callback"), client);
    let mut keys = Vec::new();
    for user in ["alice", "bob"] {
        let before = kit
            .requests()
            .iter()
            .filter(|r| r.role == ServerRole::Authorization && r.path == "/token")
            .count();
        let authorization_url = login.start(user, &kit.resource_url()).await.unwrap();
        let browser = support::http_client();
        let request = http::Request::get(authorization_url.as_str())
            .body(tower_mcp_oauth::OAuthBody::empty())
            .unwrap();
        let response = browser.oneshot(request).await.unwrap();
        let location = response.headers()["location"].to_str().unwrap();
        let query = url::Url::parse(location)
            .unwrap()
            .query()
            .unwrap()
            .to_owned();
        login.complete(user, &query).await.unwrap();
        let stored = login
            .user_store(user)
            .load_tokens(&kit.resource_url())
            .await
            .unwrap()
            .expect("the user's tokens are stored");
        let key = stored.dpop_key().expect("bound to a key, stored with them");
        // The key the token request proved with: the one the tokens are bound to.
        let token_requests: Vec<_> = kit
            .requests()
            .into_iter()
            .filter(|r| r.role == ServerRole::Authorization && r.path == "/token")
            .collect();
        let this_login = &token_requests[before..];
        // The first login meets the nonce challenge and sends again; the second has the nonce
        // already (nonces are the origin's, shared).
        assert_eq!(
            this_login.len(),
            if user == "alice" { 2 } else { 1 },
            "{user}"
        );
        for request in this_login {
            assert_eq!(thumbprint(&proof(request).0), key.thumbprint(), "{user}");
        }
        keys.push(key.thumbprint());

        // The user's layer calls the resource with a proof of that key.
        let service = login.layer_for(user).layer(support::http_client());
        let response = service
            .oneshot(support::jsonrpc(
                &kit.resource_url(),
                1,
                "tools/list",
                serde_json::json!({}),
            ))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{user}");
        let mcp = kit
            .requests()
            .into_iter()
            .filter(|r| r.role == ServerRole::Resource && r.path == "/mcp")
            .last()
            .unwrap();
        assert_eq!(thumbprint(&proof(&mcp).0), key.thumbprint(), "{user}");
    }
    assert_ne!(keys[0], keys[1], "two users' tokens bound to one key");
}

/// RFC 9449 §7.1: a resource that refuses the proof itself (`invalid_dpop_proof`: a skewed
/// clock, an `htu` it reads otherwise) is not answered with a new token, which no proof fix
/// comes with: the call fails with `DpopRejected`, and no refresh is spent (with rotating
/// refresh tokens, one per request) nor a user asked. A nonce sent with the refusal (RFC 9449
/// §8.2 lets any answer carry the next one) is used by the next proof. The same for a nonce
/// challenge whose nonce cannot be used.
#[tokio::test]
async fn a_resource_refusing_the_proof_itself_is_dpop_rejected_without_a_refresh() {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::Full;
    use mcp_oauth_flow::secrets::RefreshToken;
    use tower::ServiceBuilder;
    use tower_mcp_oauth::{
        ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer, TokenSet, TokenType,
    };

    const URL: &str = "http://127.0.0.1:1/mcp";
    for (challenge, nonce) in [
        (
            r#"DPoP error="invalid_dpop_proof", algs="ES256""#,
            Some("n-9".to_owned()),
        ),
        (r#"DPoP error="use_dpop_nonce""#, Some("x".repeat(3000))),
    ] {
        let store = Arc::new(MemoryStore::new());
        let key = DpopKey::from_entropy([8; 32]).unwrap();
        let tokens = TokenSet::new("at", TokenType::DPoP, "http://127.0.0.1:2", "c")
            .with_dpop_key(Some(key))
            .with_refresh_token(Some(RefreshToken::new("rt".into())))
            .with_token_endpoint(Some("http://127.0.0.1:2/token".into()), None);
        store.save_tokens(URL, &tokens).await.unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&paths);
        let proofs = Arc::new(Mutex::new(Vec::new()));
        let proved = Arc::clone(&proofs);
        let server = tower::service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
            seen.lock().unwrap().push(req.uri().path().to_owned());
            if let Some(proof) = req.headers().get("dpop") {
                let claims = decode(proof.to_str().unwrap().split('.').nth(1).unwrap());
                proved.lock().unwrap().push(claims["nonce"].clone());
            }
            let mut response = http::Response::builder().status(401);
            if req.headers().contains_key("dpop") {
                response = response.header("www-authenticate", challenge);
                if let Some(nonce) = &nonce {
                    response = response.header("dpop-nonce", nonce.as_str());
                }
            }
            let response = response.body(Full::new(Bytes::new())).unwrap();
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let layer = OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            HeadlessAuthorizer::new(),
        )
        .token_store(Arc::clone(&store));
        let svc = ServiceBuilder::new().layer(layer).service(server);
        for _ in 0..2 {
            let request = http::Request::post(URL)
                .body(Full::new(Bytes::from("{}")))
                .unwrap();
            let error = svc.clone().oneshot(request).await.unwrap_err();
            assert_eq!(
                error.kind(),
                ErrorKind::DpopRejected,
                "{challenge}: {error:#}"
            );
        }
        assert_eq!(*paths.lock().unwrap(), ["/mcp", "/mcp"], "{challenge}");
        assert_eq!(svc.flows_started(), 0, "{challenge}");
        if challenge.contains("invalid_dpop_proof") {
            let nonces = proofs.lock().unwrap().clone();
            assert_eq!(nonces, [Value::Null, Value::from("n-9")], "{challenge}");
        }
    }
}

/// A `DPoP` token issued to a token request that carried no proof (DPoP turned off, or not
/// offered) is bound to no key the client holds (RFC 9449 §5): it is refused as a token
/// response, not presented as `Authorization: DPoP` without a proof at every request.
#[tokio::test]
async fn a_dpop_token_for_a_request_without_a_proof_is_refused() {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::Full;
    use mcp_oauth_testkit::scripted::{flow_response, json, resource, RS};
    use tower::Layer;
    use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};

    let presented = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&presented);
    let server = tower::service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
        if let Some(v) = req.headers().get("authorization") {
            seen.lock().unwrap().push(v.to_str().unwrap().to_owned());
        }
        let response = if req.uri().path() == "/token" {
            json(
                200,
                serde_json::json!({"access_token": "at-1", "token_type": "DPoP"}),
            )
        } else {
            flow_response(&req).unwrap_or_else(|| resource(&req, "at-1"))
        };
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .dpop(Dpop::new().policy(DpopPolicy::Never))
    .layer(server);
    let request = http::Request::post(format!("{RS}/mcp"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let error = service.oneshot(request).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidTokenResponse, "{error:#}");
    assert!(
        !presented
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.starts_with("DPoP")),
        "{:?}",
        presented.lock().unwrap()
    );
}
