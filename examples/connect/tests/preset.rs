//! `--preset NAME` against the testkit's imitation of that server, over loopback TCP: the
//! login fails as it would there without the preset, and succeeds with it.

mod support;

use mcp_oauth_testkit::{Imitation, Testkit, TestkitConfig};
use support::{approve, count, get, store_args, Run};

async fn entra() -> Testkit {
    Testkit::start(TestkitConfig::default().imitate(Imitation::EntraId))
        .await
        .unwrap()
}

#[tokio::test]
async fn without_the_entra_preset_the_login_fails_with_aadsts9010010() {
    let kit = entra().await;
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut run = Run::start(&store_args(&url, &store));
    get(&approve(&run.next_url().await).await).await;
    let (code, _, err) = run.finish().await;
    assert_eq!(code, 1);
    let text = err.join("\n");
    assert!(text.contains("kind: TokenRejected"), "{text}");
    assert!(text.contains("AADSTS9010010"), "{text}");
}

#[tokio::test]
async fn with_the_entra_preset_the_login_succeeds_with_a_refresh_token() {
    let kit = entra().await;
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.extend(["--preset", "entra", "--require-refresh-token"]);
    let mut run = Run::start(&args);
    let authorization_url = run.next_url().await;
    let query: Vec<(String, String)> = url::Url::parse(&authorization_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(!query.iter().any(|(k, _)| k == "resource"), "{query:?}");
    assert!(
        query
            .iter()
            .any(|(k, v)| k == "scope" && v.split(' ').any(|s| s == "offline_access")),
        "{query:?}"
    );
    get(&approve(&authorization_url).await).await;
    let (code, _, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(count(&kit, "/token"), 1);
}

#[tokio::test]
async fn auth0_needs_an_audience_on_the_command_line() {
    let (code, _, err) = Run::start(&["http://127.0.0.1:1/mcp", "--preset", "auth0"])
        .finish()
        .await;
    assert_eq!(code, 2);
    assert!(err[0].contains("--audience"), "{err:?}");

    let kit = Testkit::start(TestkitConfig::default().imitate(Imitation::Auth0))
        .await
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let url = kit.resource_url();
    let mut args = store_args(&url, &store);
    args.extend(["--preset", "auth0", "--audience", &url]);
    let mut run = Run::start(&args);
    let authorization_url = run.next_url().await;
    get(&approve(&authorization_url).await).await;
    let (code, _, err) = run.finish().await;
    assert_eq!(code, 0, "{err:#?}");
    let authorize = kit
        .requests()
        .into_iter()
        .find(|r| r.path == "/authorize")
        .unwrap();
    assert_eq!(authorize.query_param("audience"), Some(url));
}
