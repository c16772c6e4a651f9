//! The flags that shape requests for one server: `--authorize-param`, `--token-param` (`K=`
//! removes a default) and `--require-refresh-token`, over loopback TCP.

mod support;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use support::{approve, count, get, store_args, Run};

#[tokio::test]
async fn parameter_flags_reach_the_authorization_and_token_requests() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.extend([
        "--authorize-param",
        "access_type=offline",
        "--token-param",
        "resource=",
        "--token-param",
        "audience=https://api.example.com",
    ]);
    let mut run = Run::start(&args);
    let authorization_url = run.next_url().await;
    let query: Vec<(String, String)> = url::Url::parse(&authorization_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        query.last(),
        Some(&("access_type".to_owned(), "offline".to_owned()))
    );
    assert!(query.iter().any(|(k, v)| k == "resource" && *v == url));
    get(&approve(&authorization_url).await).await;
    let (code, _, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    let token = kit
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(
        token.form_param("audience").as_deref(),
        Some("https://api.example.com")
    );
    assert_eq!(token.form_param("resource"), None);
}

#[tokio::test]
async fn require_refresh_token_fails_the_login_and_stores_nothing() {
    let kit = Testkit::start(TestkitConfig::default().issue_refresh_tokens(false))
        .await
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.push("--require-refresh-token");
    let mut run = Run::start(&args);
    get(&approve(&run.next_url().await).await).await;
    let (code, out, err) = run.finish().await;
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let text = err.join("\n");
    assert!(text.contains("kind: NoRefreshToken"), "{text}");
    assert!(text.contains("issued no refresh token"), "{text}");
    assert_eq!(count(&kit, "/token"), 1);

    // Nothing was stored: the next run (without the flag) logs in again.
    let mut again = Run::start(&store_args(&url, &store));
    get(&approve(&again.next_url().await).await).await;
    let (code, _, err) = again.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(count(&kit, "/authorize"), 2);
}

#[tokio::test]
async fn a_protected_parameter_is_a_usage_error() {
    let (code, _, err) = Run::start(&[
        "http://127.0.0.1:1/mcp",
        "--authorize-param",
        "redirect_uri=https://evil.example.com",
    ])
    .finish()
    .await;
    assert_eq!(code, 2);
    assert!(err[0].contains("redirect_uri"), "{err:?}");
}

#[tokio::test]
async fn refresh_scope_retry_lets_a_salesforce_like_server_refresh_silently() {
    // Salesforce refuses a refresh that carries scope (invalid_scope); by default the second
    // run would have to log in again. With --refresh-scope retry it refreshes without scope.
    let kit = Testkit::start(
        TestkitConfig::default()
            .imitate(mcp_oauth_testkit::Imitation::Salesforce)
            .prm_scopes_supported(["mcp"]),
    )
    .await
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.extend(["--refresh-scope", "retry"]);
    let mut run = Run::start(&args);
    get(&approve(&run.next_url().await).await).await;
    let (code, _, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");

    support::expire_stored_tokens(&store, &url).await;
    let (code, out, err) = Run::start(&args).finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, ["test-tool\tAnswers \"test\"."], "{err:#?}");
    let scopes: Vec<Option<String>> = kit
        .requests()
        .iter()
        .filter(|r| r.form_param("grant_type").as_deref() == Some("refresh_token"))
        .map(|r| r.form_param("scope"))
        .collect();
    assert_eq!(scopes, [Some("mcp".to_owned()), None]);
    assert_eq!(count(&kit, "/authorize"), 1, "no second login");
}
