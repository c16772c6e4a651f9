//! Compatibility switches and presets over loopback TCP, each against the testkit's imitation
//! of the server it is for: without it the login (or the silent refresh) fails as it would
//! there, with it the flow succeeds. Plus the refresh-scope retry: one retry, never two.

mod support;

use std::sync::Arc;

use mcp_oauth_testkit::{CannedResponse, Imitation, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use tower_mcp_oauth::{
    ClientConfig, Error, ErrorKind, HeadlessAuthorizer, MemoryStore, OAuthLayer, OAuthService,
    Preset, RefreshPolicy, RefreshScope, ServerOptions, TokenStore,
};

use support::lifecycle::{count, grants, service, TestClock, REDIRECT};
use support::HttpClient;

/// A layer with `options` (none: the defaults).
fn layer(
    options: Option<ServerOptions>,
    clock: &TestClock,
    store: Arc<MemoryStore>,
) -> OAuthService<HttpClient> {
    let mut config = ClientConfig::new(REDIRECT);
    if let Some(options) = options {
        config = config.server(options);
    }
    let clock = clock.clone();
    service(
        OAuthLayer::new(config, HeadlessAuthorizer::new())
            .refresh_policy(RefreshPolicy::default().jitter(0.0))
            .failure_backoff(std::time::Duration::ZERO)
            .token_store(store)
            .clock(move || clock.now()),
    )
}

fn options(kit: &Testkit) -> ServerOptions {
    ServerOptions::for_server(&kit.resource_url()).unwrap()
}

/// One MCP request: its status, or the layer's error.
async fn outcome(svc: &OAuthService<HttpClient>, kit: &Testkit) -> Result<u16, Error> {
    let request = mcp_oauth_testkit::jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    tower::ServiceExt::oneshot(svc.clone(), request)
        .await
        .map(|r| r.status().as_u16())
}

async fn kit(imitation: Imitation) -> Testkit {
    Testkit::start(
        TestkitConfig::default()
            .imitate(imitation)
            .prm_scopes_supported(["mcp"]),
    )
    .await
    .unwrap()
}

fn authorize_param(kit: &Testkit, name: &str) -> Option<String> {
    kit.requests()
        .into_iter()
        .find(|r| r.path.ends_with("/authorize"))
        .and_then(|r| r.query_param(name))
}

async fn has_refresh_token(store: &MemoryStore, kit: &Testkit) -> bool {
    let tokens = store.load_tokens(&kit.resource_url()).await.unwrap();
    tokens.is_some_and(|t| t.refresh_token().is_some())
}

#[tokio::test]
async fn entra_refuses_the_resource_indicator_until_it_is_omitted() {
    let kit = kit(Imitation::EntraId).await;
    let clock = TestClock::default();
    let svc = layer(None, &clock, Arc::new(MemoryStore::new()));
    let error = outcome(&svc, &kit).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TokenRejected, "{error:#}");
    let oauth = error.oauth_error().unwrap();
    assert_eq!(oauth.error, "invalid_target");
    assert!(oauth
        .error_description
        .as_deref()
        .unwrap()
        .contains("AADSTS9010010"));

    let kit = self::kit(Imitation::EntraId).await;
    let switch = options(&kit).omit_resource(true);
    let svc = layer(Some(switch), &clock, Arc::new(MemoryStore::new()));
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    assert_eq!(authorize_param(&kit, "resource"), None);
    let code = &grants(&kit, "authorization_code")[0];
    assert_eq!(code.form_param("resource"), None);
}

#[tokio::test]
async fn the_entra_preset_logs_in_and_refreshes_silently() {
    let kit = kit(Imitation::EntraId).await;
    let clock = TestClock::default();
    let store = Arc::new(MemoryStore::new());
    let preset = options(&kit).preset(Preset::EntraId);
    let svc = layer(Some(preset), &clock, Arc::clone(&store));
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    // offline_access asked for although the metadata does not list it: a refresh token.
    assert_eq!(
        authorize_param(&kit, "scope").as_deref(),
        Some("mcp offline_access")
    );
    assert!(has_refresh_token(&store, &kit).await);
    clock.set(3590);
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    let refresh = &grants(&kit, "refresh_token")[0];
    assert_eq!(
        refresh.form_param("scope").as_deref(),
        Some("mcp offline_access")
    );
    assert_eq!(refresh.form_param("resource"), None);
    assert_eq!(count(&kit, "/authorize"), 1);
}

#[tokio::test]
async fn a_refresh_without_scope_at_entra_means_a_new_login() {
    // RefreshScope::Never where the server requires scope: the refresh is refused
    // (AADSTS900144) and the user must authorize again; Always refreshes silently.
    for (policy, logins) in [(RefreshScope::Never, 2), (RefreshScope::Always, 1)] {
        let kit = kit(Imitation::EntraId).await;
        let clock = TestClock::default();
        let switches = options(&kit)
            .omit_resource(true)
            .request_offline_access(true)
            .refresh_scope(policy);
        let svc = layer(Some(switches), &clock, Arc::new(MemoryStore::new()));
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
        clock.set(3590);
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
        assert_eq!(count(&kit, "/authorize"), logins, "{policy:?}");
        let refresh = &grants(&kit, "refresh_token")[0];
        assert_eq!(
            refresh.form_param("scope").is_some(),
            policy == RefreshScope::Always
        );
    }
}

#[tokio::test]
async fn salesforce_refreshes_silently_only_without_scope() {
    // (policy, refresh requests, logins)
    for (policy, refreshes, logins) in [
        (RefreshScope::Always, 1, 2),
        (RefreshScope::Never, 1, 1),
        (RefreshScope::RetryWithout, 2, 1),
    ] {
        let kit = kit(Imitation::Salesforce).await;
        let clock = TestClock::default();
        let switch = options(&kit).refresh_scope(policy);
        let svc = layer(Some(switch), &clock, Arc::new(MemoryStore::new()));
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
        clock.set(3590);
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
        let sent = grants(&kit, "refresh_token");
        assert_eq!(sent.len(), refreshes, "{policy:?}");
        assert_eq!(count(&kit, "/authorize"), logins, "{policy:?}");
        let scopes: Vec<Option<String>> = sent.iter().map(|r| r.form_param("scope")).collect();
        let expected: Vec<Option<String>> = match policy {
            RefreshScope::Always => vec![Some("mcp".into())],
            RefreshScope::Never => vec![None],
            _ => vec![Some("mcp".into()), None],
        };
        assert_eq!(scopes, expected, "{policy:?}");
        // The retry presents the same (unrotated) refresh token.
        if sent.len() == 2 {
            assert_eq!(
                sent[0].form_param("refresh_token"),
                sent[1].form_param("refresh_token")
            );
        }
    }
}

#[tokio::test]
async fn the_retry_without_scope_is_made_once_and_then_fails_typed() {
    let kit = Testkit::start(TestkitConfig::default().prm_scopes_supported(["mcp"]))
        .await
        .unwrap();
    let clock = TestClock::default();
    let switch = options(&kit).refresh_scope(RefreshScope::RetryWithout);
    let svc = layer(Some(switch), &clock, Arc::new(MemoryStore::new()));
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    // From now on the token endpoint refuses everything with invalid_scope.
    kit.set_override(
        ServerRole::Authorization,
        "/token",
        CannedResponse::json(
            400,
            json!({"error": "invalid_scope", "error_description": "no"}),
        ),
    );
    clock.set(3700);
    let error = outcome(&svc, &kit).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TokenRejected, "{error:#}");
    assert_eq!(error.oauth_error().unwrap().error, "invalid_scope");
    let sent = grants(&kit, "refresh_token");
    assert_eq!(sent.len(), 2, "one refresh and one retry, never more");
    assert_eq!(sent[0].form_param("scope").as_deref(), Some("mcp"));
    assert_eq!(sent[1].form_param("scope"), None);
    // After both, the tokens were dropped and a new login tried (and refused likewise).
    assert_eq!(count(&kit, "/authorize"), 2);
    assert_eq!(grants(&kit, "authorization_code").len(), 2);
}

#[tokio::test]
async fn auth0_needs_an_audience() {
    let kit = kit(Imitation::Auth0).await;
    let clock = TestClock::default();
    let svc = layer(None, &clock, Arc::new(MemoryStore::new()));
    // The opaque /userinfo token is refused by the MCP server even after authorization; the
    // layer hands back the server's own 401 (README, "Failures: one rule").
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 401);
    assert_eq!(grants(&kit, "authorization_code").len(), 1);

    let kit = self::kit(Imitation::Auth0).await;
    let switch = options(&kit).audience(kit.resource_url());
    let svc = layer(Some(switch), &clock, Arc::new(MemoryStore::new()));
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    assert_eq!(authorize_param(&kit, "audience"), Some(kit.resource_url()));
    let code = &grants(&kit, "authorization_code")[0];
    assert_eq!(code.form_param("audience"), Some(kit.resource_url()));
}

#[tokio::test]
async fn the_auth0_preset_logs_in_with_a_refresh_token() {
    let kit = kit(Imitation::Auth0).await;
    let clock = TestClock::default();
    let store = Arc::new(MemoryStore::new());
    let preset = options(&kit).preset(Preset::Auth0 {
        audience: kit.resource_url(),
    });
    let svc = layer(Some(preset), &clock, Arc::clone(&store));
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    assert!(has_refresh_token(&store, &kit).await);
    clock.set(3590);
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    let refresh = &grants(&kit, "refresh_token")[0];
    assert_eq!(refresh.form_param("audience"), Some(kit.resource_url()));
    assert_eq!(count(&kit, "/authorize"), 1);
}

/// Imitations that issue a refresh token only when asked the right way: without the switch or
/// preset a required refresh token fails the login (`NoRefreshToken`), with it there is one.
async fn refresh_token_needs(imitation: Imitation, fix: ServerOptions) {
    let kit = kit(imitation.clone()).await;
    let clock = TestClock::default();
    let required = options(&kit).require_refresh_token(true);
    let svc = layer(Some(required), &clock, Arc::new(MemoryStore::new()));
    let error = outcome(&svc, &kit).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoRefreshToken, "{imitation:?}");

    let kit = self::kit(imitation.clone()).await;
    let store = Arc::new(MemoryStore::new());
    let fix = rebind(fix, &kit);
    let svc = layer(
        Some(fix.require_refresh_token(true)),
        &clock,
        Arc::clone(&store),
    );
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200, "{imitation:?}");
    assert!(has_refresh_token(&store, &kit).await);
    clock.set(3590);
    assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
    assert_eq!(
        count(&kit, "/authorize"),
        1,
        "{imitation:?}: silent refresh"
    );
}

/// The switches of `options` on options for `kit`'s server.
fn rebind(options: ServerOptions, kit: &Testkit) -> ServerOptions {
    let c = options.compat();
    let mut fresh = self::options(kit)
        .omit_resource(c.omit_resource())
        .refresh_scope(c.refresh_scope())
        .google_offline_access(c.google_offline_access())
        .request_offline_access(c.request_offline_access())
        .comma_separated_scope(c.comma_separated_scope());
    if let Some(audience) = c.audience() {
        fresh = fresh.audience(audience);
    }
    fresh
}

fn anywhere() -> ServerOptions {
    ServerOptions::for_issuer("https://placeholder.invalid")
}

#[tokio::test]
async fn google_issues_a_refresh_token_with_the_switch_or_the_preset() {
    refresh_token_needs(Imitation::Google, anywhere().google_offline_access(true)).await;
    refresh_token_needs(Imitation::Google, anywhere().preset(Preset::Google)).await;
}

#[tokio::test]
async fn okta_issues_a_refresh_token_with_the_switch_or_the_preset() {
    let imitation = Imitation::OfflineAccessScope;
    refresh_token_needs(imitation.clone(), anywhere().request_offline_access(true)).await;
    refresh_token_needs(imitation, anywhere().preset(Preset::Okta)).await;
}

#[tokio::test]
async fn keycloak_refreshes_after_the_browser_session_only_with_an_offline_token() {
    // Keycloak issues a refresh token either way, so a required one does not tell them apart;
    // without offline_access it dies with the browser session, and the user logs in again.
    // (options, logins)
    type Fix = Option<fn(&Testkit) -> ServerOptions>;
    let cases: [(Fix, usize); 3] = [
        (None, 2),
        (Some(|k| options(k).preset(Preset::Keycloak)), 1),
        (Some(|k| options(k).request_offline_access(true)), 1),
    ];
    for (fix, logins) in cases {
        let kit = kit(Imitation::Keycloak).await;
        let clock = TestClock::default();
        let store = Arc::new(MemoryStore::new());
        let o = fix.map_or_else(|| options(&kit), |f| f(&kit));
        let svc = layer(
            Some(o.require_refresh_token(true)),
            &clock,
            Arc::clone(&store),
        );
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
        assert!(has_refresh_token(&store, &kit).await);
        kit.end_sessions();
        clock.set(3590);
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200);
        assert_eq!(grants(&kit, "refresh_token").len(), 1);
        assert_eq!(
            count(&kit, "/authorize"),
            logins,
            "offline: {}",
            fix.is_some()
        );
    }
}

/// The scopes held for `kit`'s server, as the store has them.
async fn scopes_held(store: &MemoryStore, kit: &Testkit) -> Vec<String> {
    let tokens = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    let scopes = tokens.scopes().cloned().unwrap_or_default();
    scopes.iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn github_needs_the_preset_or_the_comma_switch_to_refresh_silently() {
    // GitHub grants `mcp,read`. Read as RFC 6749 §3.3 says, that is one scope named
    // "mcp,read"; restated on the refresh, GitHub refuses it (invalid_scope, in a 200) and the
    // user must log in again. The preset reads the scope comma-separated and sends none on the
    // refresh; the comma switch alone restates the two scopes it really granted.
    let github = |kit: &Testkit| options(kit).preset(Preset::GitHub);
    let comma = |kit: &Testkit| options(kit).comma_separated_scope(true);
    let none = |_: &Testkit| -> Option<ServerOptions> { None };
    type Case<'a> = (
        &'a str,
        Box<dyn Fn(&Testkit) -> Option<ServerOptions>>,
        Option<&'a str>,
        usize,
        &'a [&'a str],
    );
    // (name, options, scope on the first refresh, logins, scopes held after the login)
    let cases: [Case; 3] = [
        ("none", Box::new(none), Some("mcp,read"), 2, &["mcp,read"]),
        (
            "preset",
            Box::new(move |k| Some(github(k))),
            None,
            1,
            &["mcp", "read"],
        ),
        (
            "comma",
            Box::new(move |k| Some(comma(k))),
            Some("mcp read"),
            1,
            &["mcp", "read"],
        ),
    ];
    for (name, options, refresh_scope, logins, held) in cases {
        let kit = Testkit::start(
            TestkitConfig::default()
                .imitate(Imitation::GitHub)
                .prm_scopes_supported(["mcp", "read"]),
        )
        .await
        .unwrap();
        let clock = TestClock::default();
        let store = Arc::new(MemoryStore::new());
        let svc = layer(options(&kit), &clock, Arc::clone(&store));
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200, "{name}");
        assert_eq!(scopes_held(&store, &kit).await, held, "{name}");
        clock.set(3590);
        assert_eq!(outcome(&svc, &kit).await.unwrap(), 200, "{name}");
        let refresh = &grants(&kit, "refresh_token")[0];
        assert_eq!(
            refresh.form_param("scope").as_deref(),
            refresh_scope,
            "{name}"
        );
        assert_eq!(count(&kit, "/authorize"), logins, "{name}");
    }
}
