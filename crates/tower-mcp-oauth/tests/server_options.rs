//! Per-server options over loopback TCP: extra parameters reach the authorization, token and
//! refresh requests exactly as configured; `prompt=consent` with offline access can be turned
//! off; a required refresh token fails the authorization and keeps nothing.

mod support;

use std::sync::Arc;

use mcp_oauth_testkit::{RecordedRequest, Testkit, TestkitConfig};
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, MemoryStore, OAuthLayer, RefreshPolicy,
    ServerOptions, TokenStore,
};

use support::lifecycle::{call, count, grants, service, TestClock, REDIRECT};

fn layer(config: ClientConfig, clock: &TestClock, store: Arc<MemoryStore>) -> OAuthLayer {
    let clock = clock.clone();
    OAuthLayer::new(config, HeadlessAuthorizer::new())
        .refresh_policy(RefreshPolicy::default().jitter(0.0))
        .failure_backoff(std::time::Duration::ZERO)
        .token_store(store)
        .clock(move || clock.now())
}

/// The parameter names of a request, in the order sent, with their values.
fn form(request: &RecordedRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn names(pairs: &[(String, String)]) -> Vec<&str> {
    pairs.iter().map(|(k, _)| k.as_str()).collect()
}

fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn extra_parameters_reach_every_request_exactly_as_configured() {
    let kit = Testkit::start(TestkitConfig::default().token_lifetime_secs(3600))
        .await
        .unwrap();
    // Google's offline access on the authorization request; Auth0's audience on token
    // requests, without the RFC 8707 resource that Entra ID v2 rejects there.
    let options = ServerOptions::for_server(&kit.resource_url())
        .unwrap()
        .authorization_param("access_type", "offline")
        .unwrap()
        .authorization_param("prompt", "select_account")
        .unwrap()
        .token_param("audience", "https://api.example.com")
        .unwrap()
        .remove_token_param("resource")
        .unwrap();
    let config = ClientConfig::new(REDIRECT).server(options);
    let clock = TestClock::default();
    let svc = service(layer(config, &clock, Arc::new(MemoryStore::new())));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);

    let authorize = kit
        .requests()
        .into_iter()
        .find(|r| r.path == "/authorize")
        .unwrap();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(authorize.query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        names(&query),
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "state",
            "resource",
            "access_type",
            "prompt"
        ]
    );
    assert_eq!(value(&query, "access_type"), Some("offline"));
    assert_eq!(value(&query, "prompt"), Some("select_account"));
    assert_eq!(value(&query, "resource"), Some(kit.resource_url().as_str()));

    let code = form(&grants(&kit, "authorization_code")[0]);
    assert_eq!(
        names(&code),
        [
            "grant_type",
            "code",
            "redirect_uri",
            "code_verifier",
            "client_id",
            "audience"
        ]
    );
    assert_eq!(value(&code, "audience"), Some("https://api.example.com"));

    // Past the refresh point: the refresh request carries them too.
    clock.set(3590);
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let refresh = form(&grants(&kit, "refresh_token")[0]);
    assert_eq!(
        names(&refresh),
        ["grant_type", "refresh_token", "client_id", "audience"]
    );
    assert_eq!(count(&kit, "/authorize"), 1);
}

#[tokio::test]
async fn options_for_another_server_change_nothing() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let options = ServerOptions::for_issuer("https://elsewhere.example.com")
        .remove_authorization_param("resource")
        .unwrap();
    let config = ClientConfig::new(REDIRECT).server(options);
    let svc = service(layer(
        config,
        &TestClock::default(),
        Arc::new(MemoryStore::new()),
    ));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let authorize = kit
        .requests()
        .into_iter()
        .find(|r| r.path == "/authorize")
        .unwrap();
    assert!(authorize.query_param("resource").is_some());
}

#[tokio::test]
async fn a_required_refresh_token_fails_the_authorization_and_keeps_nothing() {
    // An OpenID provider that grants offline access only with prompt=consent, for a client
    // whose operator turned prompt=consent off: no refresh token.
    let kit = Testkit::start(
        TestkitConfig::default()
            .offline_access_needs_consent(true)
            .prm_scopes_supported(["mcp"])
            .as_scopes_supported(["mcp", "offline_access"]),
    )
    .await
    .unwrap();
    let options = ServerOptions::for_issuer(kit.issuer())
        .prompt_consent_for_offline_access(false)
        .require_refresh_token(true);
    let config = ClientConfig::new(REDIRECT).server(options);
    let store = Arc::new(MemoryStore::new());
    let svc = service(layer(config, &TestClock::default(), Arc::clone(&store)));
    let request =
        mcp_oauth_testkit::jsonrpc(&kit.resource_url(), 1, "tools/list", serde_json::json!({}));
    let error = tower::ServiceExt::oneshot(svc.clone(), request)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoRefreshToken);
    let text = error.to_string();
    assert!(text.contains(&kit.issuer()), "{text}");
    assert!(text.contains(&kit.resource_url()), "{text}");
    assert!(text.contains("require_refresh_token"), "{text}");
    let authorize = kit
        .requests()
        .into_iter()
        .find(|r| r.path == "/authorize")
        .unwrap();
    assert_eq!(
        authorize.query_param("scope").as_deref(),
        Some("mcp offline_access")
    );
    assert_eq!(authorize.query_param("prompt"), None);
    // The tokens were issued, and neither stored nor used.
    assert_eq!(grants(&kit, "authorization_code").len(), 1);
    assert!(store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .is_none());
    let mcp_with_token = kit
        .requests()
        .iter()
        .filter(|r| r.path == "/mcp")
        .any(|r| r.bearer().is_some());
    assert!(!mcp_with_token);
}

#[tokio::test]
async fn with_prompt_consent_the_same_provider_issues_a_refresh_token() {
    let kit = Testkit::start(
        TestkitConfig::default()
            .offline_access_needs_consent(true)
            .prm_scopes_supported(["mcp"])
            .as_scopes_supported(["mcp", "offline_access"]),
    )
    .await
    .unwrap();
    let options = ServerOptions::for_issuer(kit.issuer()).require_refresh_token(true);
    let config = ClientConfig::new(REDIRECT).server(options);
    let store = Arc::new(MemoryStore::new());
    let svc = service(layer(config, &TestClock::default(), Arc::clone(&store)));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let stored = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.refresh_token().is_some());
}
