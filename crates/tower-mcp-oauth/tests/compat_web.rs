//! The presets reach `WebLogin` through the same `ClientConfig::server`: against the testkit's
//! Entra ID imitation, a web login fails without the preset and succeeds with it.
#![cfg(feature = "web")]

mod support;

use mcp_oauth_testkit::{Imitation, Testkit, TestkitConfig};
use tower_mcp_oauth::web::WebLogin;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HttpClient, Preset, ServerOptions, DEFAULT_MAX_RESPONSE_BYTES,
};

const CALLBACK: &str = "http://127.0.0.1:3000/callback";

fn login(options: Option<ServerOptions>) -> WebLogin {
    let mut config = ClientConfig::new(CALLBACK);
    if let Some(options) = options {
        config = config.server(options);
    }
    let client = HttpClient::from_service(support::http_client(), DEFAULT_MAX_RESPONSE_BYTES);
    WebLogin::new(config, client)
}

/// The user's browser: the testkit approves at once; returns the callback's query.
async fn approve(authorization_url: &url::Url) -> String {
    let client = support::http_client();
    let request = http::Request::get(authorization_url.as_str())
        .body(tower_mcp_oauth::OAuthBody::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(client, request).await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    url::Url::parse(location)
        .unwrap()
        .query()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_web_login_at_entra_needs_the_preset() {
    let kit = Testkit::start(TestkitConfig::default().imitate(Imitation::EntraId))
        .await
        .unwrap();
    let url = kit.resource_url();

    let plain = login(None);
    let authorization_url = plain.start("alice", &url).await.unwrap();
    let error = plain
        .complete("alice", &approve(&authorization_url).await)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TokenRejected, "{error:#}");
    assert_eq!(error.oauth_error().unwrap().error, "invalid_target");

    let entra = login(Some(
        ServerOptions::for_issuer(kit.issuer()).preset(Preset::EntraId),
    ));
    let authorization_url = entra.start("alice", &url).await.unwrap();
    let query: Vec<(String, String)> = authorization_url.query_pairs().into_owned().collect();
    assert!(!query.iter().any(|(k, _)| k == "resource"), "{query:?}");
    let connection = entra
        .complete("alice", &approve(&authorization_url).await)
        .await
        .unwrap();
    assert_eq!(connection.protected_resource.as_str(), url);
    let token = kit
        .requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .last()
        .unwrap();
    assert_eq!(token.form_param("resource"), None);
}
