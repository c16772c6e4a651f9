//! RFC 7591 client metadata at dynamic registration, over loopback TCP: what the authorization
//! server shows on its consent page reaches it.

mod support;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use tower_mcp_oauth::{ClientConfig, ClientMetadata, HeadlessAuthorizer, OAuthLayer};

use support::lifecycle::{call, service, REDIRECT};

#[tokio::test]
async fn registration_sends_every_configured_metadata_field() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let metadata = ClientMetadata::default()
        .client_uri("https://agent.example.com")
        .logo_uri("https://agent.example.com/logo.png")
        .tos_uri("https://agent.example.com/terms")
        .policy_uri("https://agent.example.com/privacy")
        .contact("ops@agent.example.com")
        .software_id("b6f1c2d4-agent")
        .software_version("3.2.1");
    let config = ClientConfig::new(REDIRECT)
        .client_name("Agent")
        .metadata(metadata);
    let svc = service(OAuthLayer::new(config, HeadlessAuthorizer::new()));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let register = kit
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/register"))
        .unwrap();
    let body = register.json().unwrap();
    let expected = [
        ("client_name", json!("Agent")),
        ("client_uri", json!("https://agent.example.com")),
        ("logo_uri", json!("https://agent.example.com/logo.png")),
        ("tos_uri", json!("https://agent.example.com/terms")),
        ("policy_uri", json!("https://agent.example.com/privacy")),
        ("contacts", json!(["ops@agent.example.com"])),
        ("software_id", json!("b6f1c2d4-agent")),
        ("software_version", json!("3.2.1")),
        ("redirect_uris", json!([REDIRECT])),
    ];
    for (name, value) in expected {
        assert_eq!(body[name], value, "{name}");
    }
}

#[tokio::test]
async fn without_metadata_registration_sends_none_of_it() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let svc = service(OAuthLayer::new(
        ClientConfig::new(REDIRECT),
        HeadlessAuthorizer::new(),
    ));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    let register = kit
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/register"))
        .unwrap();
    let body = register.json().unwrap();
    for name in [
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "contacts",
    ] {
        assert!(body.get(name).is_none(), "{name}");
    }
}
