//! Each imitation misbehaves as the real server does, and stops when asked the right way.

use http::Method;
use serde_json::json;

use super::client::{
    endpoints, get, mcp, param, post_form, register, send, Reply, TestClient, REDIRECT, VERIFIER,
};
use crate::codec::s256_challenge;
use crate::{Imitation, Testkit, TestkitConfig};

async fn kit(imitation: Imitation) -> Testkit {
    Testkit::start(TestkitConfig::default().imitate(imitation))
        .await
        .unwrap()
}

/// Authorizes with `params` on top of the code flow's own and returns the code.
async fn code(kit: &Testkit, client: &TestClient, params: &[(&str, &str)]) -> String {
    let (authorize, _, _) = endpoints(kit);
    let mut url = url::Url::parse(&authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "xyz")
        .extend_pairs(params);
    let reply = get(url.as_str()).await;
    assert_eq!(reply.status, 302, "{:?}", reply.body);
    let location = url::Url::parse(&reply.header("location").unwrap()).unwrap();
    param(&location, "code").unwrap()
}

/// A token request of `grant_type` with `fields`, authenticated with Basic.
async fn token(kit: &Testkit, client: &TestClient, fields: &[(&str, &str)]) -> Reply {
    let (_, token, _) = endpoints(kit);
    post_form(&token, fields, client.basic()).await
}

async fn exchange(kit: &Testkit, client: &TestClient, code: &str, extra: &[(&str, &str)]) -> Reply {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    fields.extend_from_slice(extra);
    token(kit, client, &fields).await
}

fn error_of(reply: &Reply) -> (String, String) {
    let body = reply.json();
    (
        body["error"].as_str().unwrap_or_default().to_owned(),
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn entra_refuses_resource_and_a_refresh_without_scope() {
    let kit = kit(Imitation::EntraId).await;
    let client = register(&kit, "client_secret_basic").await;
    let resource = kit.resource_url();
    let scope = [("scope", "mcp offline_access")];

    let c = code(&kit, &client, &scope).await;
    let refused = exchange(&kit, &client, &c, &[("resource", &resource)]).await;
    assert_eq!(refused.status, 400);
    let (error, description) = error_of(&refused);
    assert_eq!(error, "invalid_target");
    assert!(description.starts_with("AADSTS9010010"), "{description}");

    let c = code(&kit, &client, &scope).await;
    let ok = exchange(&kit, &client, &c, &[]).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let refresh_token = ok.json()["refresh_token"].as_str().unwrap().to_owned();

    let no_scope = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    let refused = token(&kit, &client, &no_scope).await;
    assert_eq!(refused.status, 400);
    let (error, description) = error_of(&refused);
    assert_eq!(error, "invalid_request");
    assert!(description.starts_with("AADSTS900144"), "{description}");
    let with_scope = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("scope", "mcp offline_access"),
    ];
    assert_eq!(token(&kit, &client, &with_scope).await.status, 200);

    // No offline_access, no refresh token.
    let c = code(&kit, &client, &[("scope", "mcp")]).await;
    let online = exchange(&kit, &client, &c, &[]).await.json();
    assert!(online["access_token"].is_string());
    assert!(online.get("refresh_token").is_none(), "{online}");
}

#[tokio::test]
async fn auth0_issues_a_usable_token_only_for_an_audience() {
    let kit = kit(Imitation::Auth0).await;
    let client = register(&kit, "client_secret_basic").await;
    let resource = kit.resource_url();

    // `resource` is ignored: the token is for /userinfo, which the MCP server refuses.
    let c = code(&kit, &client, &[("resource", &resource)]).await;
    let opaque = exchange(&kit, &client, &c, &[("resource", &resource)]).await;
    assert_eq!(opaque.status, 200);
    let body = opaque.json();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(
        mcp(&kit, Some(at), "tools/list", json!({})).await.status,
        401
    );

    let c = code(
        &kit,
        &client,
        &[("audience", &resource), ("scope", "offline_access")],
    )
    .await;
    let body = exchange(&kit, &client, &c, &[]).await.json();
    assert!(body["refresh_token"].is_string(), "{body}");
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(
        mcp(&kit, Some(at), "tools/list", json!({})).await.status,
        200
    );
}

#[tokio::test]
async fn google_issues_a_refresh_token_only_for_offline_access_type_with_consent() {
    let kit = kit(Imitation::Google).await;
    let client = register(&kit, "client_secret_basic").await;
    for (params, refresh) in [
        (&[][..], false),
        (&[("access_type", "offline")][..], false),
        (&[("prompt", "consent")][..], false),
        (
            &[("access_type", "offline"), ("prompt", "consent")][..],
            true,
        ),
    ] {
        let c = code(&kit, &client, params).await;
        let body = exchange(&kit, &client, &c, &[]).await.json();
        assert!(body["access_token"].is_string());
        assert_eq!(body["refresh_token"].is_string(), refresh, "{params:?}");
    }
}

#[tokio::test]
async fn okta_issues_a_refresh_token_only_for_offline_access() {
    let kit = kit(Imitation::OfflineAccessScope).await;
    let client = register(&kit, "client_secret_basic").await;
    for (scope, refresh) in [("mcp", false), ("mcp offline_access", true)] {
        let c = code(&kit, &client, &[("scope", scope)]).await;
        let body = exchange(&kit, &client, &c, &[]).await.json();
        assert_eq!(body["refresh_token"].is_string(), refresh, "{scope}");
    }
}

#[tokio::test]
async fn salesforce_refuses_scope_on_a_refresh() {
    let kit = kit(Imitation::Salesforce).await;
    let client = register(&kit, "client_secret_basic").await;
    let c = code(&kit, &client, &[("scope", "mcp")]).await;
    let body = exchange(&kit, &client, &c, &[]).await.json();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let with_scope = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("scope", "mcp"),
    ];
    let refused = token(&kit, &client, &with_scope).await;
    assert_eq!(refused.status, 400);
    assert_eq!(error_of(&refused).0, "invalid_scope");
    // The refused request rotated nothing: the same token refreshes without scope.
    let without = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    assert_eq!(token(&kit, &client, &without).await.status, 200);
}

#[tokio::test]
async fn github_answers_form_encoded_unless_asked_for_json_and_errors_with_200() {
    let kit = kit(Imitation::GitHub).await;
    let client = register(&kit, "client_secret_basic").await;
    let c = code(&kit, &client, &[]).await;
    let form = exchange(&kit, &client, &c, &[]).await;
    assert_eq!(form.status, 200);
    assert_eq!(
        form.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&form.body)
        .into_owned()
        .collect();
    assert!(
        fields.iter().any(|(k, _)| k == "access_token"),
        "{fields:?}"
    );

    let c = code(&kit, &client, &[]).await;
    let (_, token_url, _) = endpoints(&kit);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", c.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_deref().unwrap()),
        ])
        .finish();
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
    ];
    // A client_secret_basic client sending its secret in the form: refused, with 200.
    let refused = send(Method::POST, &token_url, &headers, body).await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.json()["error"], "invalid_client");
    let c = code(&kit, &client, &[]).await;
    let json = exchange_json(&kit, &client, &c).await;
    assert_eq!(json.status, 200);
    assert!(json.json()["access_token"].is_string());

    // The granted scope comes back comma-separated, in JSON and in the form.
    let c = code(&kit, &client, &[("scope", "repo gist")]).await;
    let json = exchange_json(&kit, &client, &c).await;
    assert_eq!(json.json()["scope"], "repo,gist");
    let c = code(&kit, &client, &[("scope", "repo gist")]).await;
    let form = exchange(&kit, &client, &c, &[]).await;
    let scope = url::form_urlencoded::parse(&form.body)
        .into_owned()
        .find(|(k, _)| k == "scope");
    assert_eq!(scope.map(|(_, v)| v).as_deref(), Some("repo,gist"));
}

async fn exchange_json(kit: &Testkit, client: &TestClient, code: &str) -> Reply {
    let (_, token_url, _) = endpoints(kit);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .finish();
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            client.id,
            client.secret.as_deref().unwrap()
        ))
    );
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
        ("authorization", basic.as_str()),
    ];
    send(Method::POST, &token_url, &headers, body).await
}
