//! `connect` after the access token has expired: refreshed silently when the authorization
//! server issued a refresh token (an OpenID provider does so for `offline_access` only with
//! `prompt=consent`), authorized afresh when it issued none.

mod support;

use mcp_oauth_testkit::{RecordedRequest, Testkit, TestkitConfig};
use support::{approve, count, expire_stored_tokens, get, is_url_line, store_args, Run};

/// The first run: the browser approves, the tool is listed.
async fn first_login(args: &[&str]) -> String {
    let mut run = Run::start(args);
    let authorization_url = run.next_url().await;
    get(&approve(&authorization_url).await).await;
    let (code, out, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."], "{err:#?}");
    authorization_url
}

fn token_requests(kit: &Testkit) -> Vec<RecordedRequest> {
    kit.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/token"))
        .collect()
}

#[tokio::test]
async fn an_openid_provider_issues_a_refresh_token_with_prompt_consent_and_the_next_run_refreshes()
{
    let kit = Testkit::start(
        TestkitConfig::default()
            .offline_access_needs_consent(true)
            .prm_scopes_supported(["mcp"])
            .as_scopes_supported(["mcp", "offline_access"]),
    )
    .await
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let args = store_args(&url, &store);

    let authorization_url = first_login(&args).await;
    let query: Vec<(String, String)> = url::Url::parse(&authorization_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // OpenID Connect Core §11: offline access is asked for with prompt=consent.
    assert_eq!(param("scope"), Some("mcp offline_access"));
    assert_eq!(param("prompt"), Some("consent"));

    expire_stored_tokens(&store, &url).await;
    kit.clear_requests();
    let (code, out, err) = Run::start(&args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."]);
    assert!(!err.iter().any(|l| is_url_line(l)), "no browser: {err:#?}");
    assert_eq!(count(&kit, "/authorize"), 0);
    let grants: Vec<Option<String>> = token_requests(&kit)
        .iter()
        .map(|r| r.form_param("grant_type"))
        .collect();
    assert_eq!(grants, [Some("refresh_token".to_owned())]);
    // The expired token was never sent: every MCP request carried the refreshed one.
    let expired_sent = kit
        .requests()
        .iter()
        .filter(|r| r.path == "/mcp")
        .any(|r| r.bearer().is_none());
    assert!(!expired_sent);
}

#[tokio::test]
async fn with_no_refresh_token_the_next_run_after_expiry_authorizes_again() {
    let kit = Testkit::start(TestkitConfig::default().issue_refresh_tokens(false))
        .await
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let args = store_args(&url, &store);
    first_login(&args).await;

    expire_stored_tokens(&store, &url).await;
    kit.clear_requests();
    let mut second = Run::start(&args);
    let authorization_url = second.next_url().await;
    get(&approve(&authorization_url).await).await;
    let (code, out, err) = second.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."], "{err:#?}");
    assert_eq!(count(&kit, "/authorize"), 1);
    let mcp: Vec<Option<String>> = kit
        .requests()
        .iter()
        .filter(|r| r.path == "/mcp")
        .map(|r| r.bearer())
        .collect();
    // The expired token is no token: the first request goes without one; the rest carry the
    // new one.
    assert_eq!(mcp.first(), Some(&None), "{mcp:?}");
    assert!(mcp[1..].iter().all(Option::is_some), "{mcp:?}");
}
