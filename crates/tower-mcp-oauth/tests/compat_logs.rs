//! The compatibility switches say at `debug` what they changed, naming the switch and the
//! parameter, and nothing secret. A test binary of its own: tracing's callsite interest is
//! process-wide, and tests running beside it without a subscriber would race it.

mod support;

use support::logs::capture;

use std::sync::Arc;

use mcp_oauth_testkit::{Imitation, Testkit, TestkitConfig};
use serde_json::json;
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer, RefreshPolicy, RefreshScope,
    ServerOptions, TokenStore,
};

use support::lifecycle::{service, TestClock, REDIRECT};

#[tokio::test(flavor = "current_thread")]
async fn each_switch_says_at_debug_what_it_changed_and_nothing_secret() {
    let (captured, _guard) = capture(tracing::Level::DEBUG);

    let kit = Testkit::start(
        TestkitConfig::default()
            .imitate(Imitation::Salesforce)
            .prm_scopes_supported(["mcp"]),
    )
    .await
    .unwrap();
    let clock = TestClock::default();
    let store = Arc::new(MemoryStore::new());
    let switches = ServerOptions::for_server(&kit.resource_url())
        .unwrap()
        .omit_resource(true)
        .audience("https://api.example.com")
        .google_offline_access(true)
        .request_offline_access(true)
        .refresh_scope(RefreshScope::RetryWithout);
    let config = ClientConfig::new(REDIRECT).server(switches);
    let now = clock.clone();
    let svc = service(
        OAuthLayer::new(config, HeadlessAuthorizer::new())
            .refresh_policy(RefreshPolicy::default().jitter(0.0))
            .failure_backoff(std::time::Duration::ZERO)
            .token_store(Arc::clone(&store))
            .clock(move || now.now()),
    );
    for at in [0, 3590] {
        clock.set(at);
        let request = mcp_oauth_testkit::jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
        let response = tower::ServiceExt::oneshot(svc.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Both refreshes were made: with scope, refused, and once more without.
    let refreshes = kit
        .requests()
        .iter()
        .filter(|r| r.form_param("grant_type").as_deref() == Some("refresh_token"))
        .count();
    assert_eq!(refreshes, 2);

    let logs = captured.text();
    for (switch, parameter) in [
        ("omit_resource", "resource"),
        ("audience", "audience"),
        ("google_offline_access", "access_type"),
        ("google_offline_access", "prompt"),
        ("request_offline_access", "scope"),
        ("refresh_scope", "scope"),
    ] {
        let needle = format!("switch=\"{switch}\" parameter=\"{parameter}\"");
        assert!(
            logs.lines()
                .any(|l| l.contains("DEBUG") && l.contains(&needle)),
            "missing {needle} in:\n{logs}"
        );
    }
    let tokens = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    for secret in [
        tokens.access_token().secret().as_str(),
        tokens.refresh_token().unwrap().secret().as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} logged");
    }
}
