//! Bad input from the network ends in a typed error, never a panic, and loses nothing that was
//! stored. Each test injects one fault into the testkit.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_testkit::{CannedResponse, IssInRedirect, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    BodyNotReplayable, ClientConfig, ErrorKind, HeadlessAuthorizer, MemoryStore, OAuthLayer,
    OAuthService, TokenStore,
};

const REDIRECT: &str = "http://localhost:3000/callback";

struct Setup {
    kit: Testkit,
    store: Arc<MemoryStore>,
    service: OAuthService<HttpClient>,
}

async fn setup(config: TestkitConfig) -> Setup {
    let kit = Testkit::start(config).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    // No failure backoff: each test injects several faults in a row and wants each one seen.
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store.clone() as Arc<dyn TokenStore>)
        .failure_backoff(std::time::Duration::ZERO);
    let service = ServiceBuilder::new().layer(layer).service(http_client());
    Setup {
        kit,
        store,
        service,
    }
}

impl Setup {
    async fn call_error(&self) -> tower_mcp_oauth::Error {
        let req = jsonrpc(&self.kit.resource_url(), 1, "tools/list", json!({}));
        self.service
            .clone()
            .oneshot(req)
            .await
            .expect_err("the flow must fail")
    }

    async fn call_ok(&self) {
        let req = jsonrpc(&self.kit.resource_url(), 1, "tools/list", json!({}));
        let resp = self.service.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    fn saw(&self, path: &str) -> bool {
        self.kit.requests().iter().any(|r| r.path == path)
    }

    fn as_override(&self, path: &str, response: CannedResponse) {
        self.kit
            .set_override(ServerRole::Authorization, path, response);
    }

    fn rs_override(&self, path: &str, response: CannedResponse) {
        self.kit.set_override(ServerRole::Resource, path, response);
    }
}

#[tokio::test]
async fn malformed_and_duplicated_challenge_parameters() {
    let s = setup(TestkitConfig::default()).await;
    for header in [
        r#"Bearer scope="a", scope="b""#,
        r#"Bearer scope="unterminated"#,
        "Bearer ===, x",
    ] {
        s.rs_override(
            "/mcp",
            CannedResponse::new(401, "").header("www-authenticate", header),
        );
        let err = s.call_error().await;
        assert_eq!(err.kind(), ErrorKind::InvalidChallenge, "{header}: {err}");
    }
    assert!(!s.saw("/.well-known/oauth-protected-resource/mcp"));
}

#[tokio::test]
async fn resource_metadata_not_json_missing_fields_or_too_large() {
    let s = setup(TestkitConfig::default()).await;
    let prm = "/.well-known/oauth-protected-resource/mcp";
    s.rs_override(prm, CannedResponse::new(200, "<html>not json</html>"));
    assert_eq!(
        s.call_error().await.kind(),
        ErrorKind::InvalidResourceMetadata
    );
    s.rs_override(
        prm,
        CannedResponse::json(200, json!({"resource": s.kit.resource_url()})),
    );
    assert_eq!(
        s.call_error().await.kind(),
        ErrorKind::InvalidResourceMetadata
    );
    s.rs_override(prm, CannedResponse::new(200, vec![b' '; 1024 * 1024]));
    assert_eq!(s.call_error().await.kind(), ErrorKind::BodyTooLarge);
    assert!(!s.saw("/authorize"));
}

#[tokio::test]
async fn authorization_server_metadata_faults() {
    let s = setup(TestkitConfig::default()).await;
    let meta = "/.well-known/oauth-authorization-server";
    let issuer = s.kit.issuer();
    s.as_override(meta, CannedResponse::json(200, json!({"issuer": issuer})));
    assert_eq!(
        s.call_error().await.kind(),
        ErrorKind::InvalidAuthorizationServerMetadata
    );
    s.as_override(
        meta,
        CannedResponse::json(
            200,
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": "http://as.example.com/token",
                "code_challenge_methods_supported": ["S256"],
            }),
        ),
    );
    assert_eq!(s.call_error().await.kind(), ErrorKind::InsecureUrl);
    s.as_override(meta, CannedResponse::new(200, vec![b'{'; 300 * 1024]));
    assert_eq!(s.call_error().await.kind(), ErrorKind::BodyTooLarge);
    assert!(!s.saw("/register") && !s.saw("/authorize"));
}

#[tokio::test]
async fn issuer_mismatch_stops_before_any_endpoint() {
    let s =
        setup(TestkitConfig::default().metadata_issuer_override("https://attacker.example.com"))
            .await;
    let err = s.call_error().await;
    assert_eq!(err.kind(), ErrorKind::IssuerMismatch);
    assert!(!s.saw("/register") && !s.saw("/authorize") && !s.saw("/token"));
    // The report says where it looked.
    let report = err.report().expect("a report").to_string();
    assert!(
        report.contains("/.well-known/oauth-authorization-server"),
        "{report}"
    );
}

#[tokio::test]
async fn resource_mismatch_stops_before_authorization() {
    let s =
        setup(TestkitConfig::default().prm_resource_override("https://evil.example.com/mcp")).await;
    assert_eq!(s.call_error().await.kind(), ErrorKind::ResourceMismatch);
    assert!(s.saw("/.well-known/oauth-protected-resource/mcp"));
    assert!(!s.saw("/authorize"));
}

#[tokio::test]
async fn iss_mismatch_and_state_mismatch_make_no_token_request() {
    let s = setup(
        TestkitConfig::default()
            .iss_in_redirect(IssInRedirect::Value("https://evil.example.com".into())),
    )
    .await;
    assert_eq!(
        s.call_error().await.kind(),
        ErrorKind::IssuerParameterMismatch
    );
    assert!(s.saw("/authorize") && !s.saw("/token"));

    let s = setup(TestkitConfig::default()).await;
    s.as_override(
        "/authorize",
        CannedResponse::new(302, "")
            .header("location", format!("{REDIRECT}?code=stolen&state=forged")),
    );
    assert_eq!(s.call_error().await.kind(), ErrorKind::StateMismatch);
    assert!(!s.saw("/token"));
}

#[tokio::test]
async fn token_response_without_access_token() {
    let s = setup(TestkitConfig::default()).await;
    s.as_override(
        "/token",
        CannedResponse::json(200, json!({"token_type": "Bearer", "expires_in": 60})),
    );
    assert_eq!(s.call_error().await.kind(), ErrorKind::InvalidTokenResponse);
    // The registration made on the way was kept: the next flow reuses it.
    let issuer = s.kit.issuer();
    assert!(s.store.load_client(&issuer).await.unwrap().is_some());
    s.kit.clear_overrides();
    s.call_ok().await;
    let registrations = s
        .kit
        .requests()
        .iter()
        .filter(|r| r.path == "/register")
        .count();
    assert_eq!(registrations, 1);
}

#[tokio::test]
async fn a_failed_flow_keeps_what_was_stored() {
    let s = setup(TestkitConfig::default()).await;
    s.call_ok().await;
    let resource = s.kit.resource_url();
    let before = s
        .store
        .load_tokens(&resource)
        .await
        .unwrap()
        .expect("tokens stored");
    // The server revokes the token and its metadata breaks: the flow fails...
    s.kit.revoke_all_tokens();
    s.rs_override(
        "/.well-known/oauth-protected-resource/mcp",
        CannedResponse::new(503, "down"),
    );
    let err = s.call_error().await;
    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    assert!(err.is_transient());
    // ...and nothing stored was dropped.
    let after = s
        .store
        .load_tokens(&resource)
        .await
        .unwrap()
        .expect("tokens kept");
    assert_eq!(
        after.access_token().secret(),
        before.access_token().secret()
    );
    assert!(s
        .store
        .load_client(&s.kit.issuer())
        .await
        .unwrap()
        .is_some());
    // Once the server recovers, the next call authorizes again.
    s.kit.clear_overrides();
    s.call_ok().await;
}

#[tokio::test]
async fn an_oversized_body_gets_its_401_back_marked() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .max_replay_bytes(16);
    let service = ServiceBuilder::new().layer(layer).service(http_client());
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": "x".repeat(100)}});
    let request = || {
        http::Request::post(kit.resource_url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(Bytes::from(big.to_string())))
            .unwrap()
    };
    let first = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(first.status(), 401);
    assert!(first.extensions().get::<BodyNotReplayable>().is_some());
    // The flow ran: resending carries the token.
    let second = service.oneshot(request()).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(
        kit.requests().iter().filter(|r| r.path == "/token").count(),
        1
    );
}

#[tokio::test]
async fn a_401_for_another_auth_scheme_is_passed_through_untouched() {
    let s = setup(TestkitConfig::default()).await;
    s.rs_override(
        "/mcp",
        CannedResponse::new(401, "").header("www-authenticate", r#"Basic realm="intranet""#),
    );
    let req = jsonrpc(&s.kit.resource_url(), 1, "tools/list", json!({}));
    let response = s.service.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        s.kit.requests().len(),
        1,
        "no discovery for a Basic challenge"
    );
}

#[tokio::test]
async fn a_failed_authorization_request_does_not_leak_state_into_the_error() {
    let s = setup(TestkitConfig::default()).await;
    let issuer = s.kit.issuer();
    // The authorization endpoint is unreachable: the headless authorizer's GET fails.
    s.as_override(
        "/.well-known/oauth-authorization-server",
        CannedResponse::json(
            200,
            json!({
                "issuer": issuer,
                "authorization_endpoint": "http://127.0.0.1:9/authorize",
                "token_endpoint": format!("{issuer}/token"),
                "registration_endpoint": format!("{issuer}/register"),
                "code_challenge_methods_supported": ["S256"],
            }),
        ),
    );
    let err = s.call_error().await;
    assert_eq!(err.kind(), ErrorKind::Transport);
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("http://127.0.0.1:9/authorize"), "{shown}");
    assert!(
        !shown.contains("state=") && !shown.contains("code_challenge="),
        "{shown}"
    );
}

#[tokio::test]
async fn an_authorization_endpoint_that_answers_an_error_does_not_get_state_into_it() {
    for (status, kind) in [
        (500, ErrorKind::UnexpectedStatus),
        (400, ErrorKind::AuthorizationDenied),
    ] {
        let s = setup(TestkitConfig::default()).await;
        s.as_override("/authorize", CannedResponse::json(status, json!({})));
        let err = s.call_error().await;
        assert_eq!(err.kind(), kind, "{err:#}");
        let shown = format!("{err} {err:#} {err:?}");
        assert!(shown.contains("/authorize"), "{shown}");
        assert!(
            !shown.contains("state=") && !shown.contains("code_challenge="),
            "{shown}"
        );
    }
}
