//! Overrides, token response quirks, expiry and the recorded-request helpers.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::client::{authorize, endpoints, exchange, get, mcp, param, register, VERIFIER};
use crate::{CannedResponse, DiscoveryLayout, RecordedRequest, ServerRole, Testkit, TestkitConfig};

#[tokio::test]
async fn override_replaces_the_answer_and_is_recorded() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let metadata_url = format!(
        "{}/.well-known/oauth-authorization-server",
        kit.auth_server_origin()
    );
    let canned = CannedResponse::json(503, json!({"error": "temporarily_unavailable"}))
        .header("retry-after", "1");
    kit.set_override(
        ServerRole::Authorization,
        "/.well-known/oauth-authorization-server",
        canned,
    );
    let reply = get(&format!("{metadata_url}?x=1")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    // Same path on the other server is untouched.
    let other = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        kit.resource_origin()
    ))
    .await;
    assert_eq!(other.status, 404);

    let requests = kit.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].path_and_query(),
        "/.well-known/oauth-authorization-server?x=1"
    );
    assert_eq!(requests[0].query_param("x").as_deref(), Some("1"));

    kit.clear_overrides();
    kit.clear_requests();
    assert_eq!(get(&metadata_url).await.status, 200);
    assert_eq!(kit.requests().len(), 1);
}

#[tokio::test]
async fn token_response_quirks_and_expiry() {
    let config = TestkitConfig::default()
        .layout(DiscoveryLayout::LegacyMetadataAtOrigin)
        .token_response_form_encoded(true)
        .token_type_lowercase(true)
        .expires_in_as_string(true)
        .issue_refresh_tokens(false)
        .token_lifetime_secs(1);
    let kit = Testkit::start(config).await.unwrap();
    let client = register(&kit, "client_secret_post").await;
    let location = authorize(&kit, &client.id, None).await;
    assert_eq!(param(&location, "iss"), Some(kit.resource_origin()));
    let code = param(&location, "code").unwrap();
    // A client_secret_post client must not use Basic.
    let rejected = exchange(&kit, &client, &code, VERIFIER).await;
    assert_eq!(rejected.status, 401);

    let location = authorize(&kit, &client.id, None).await;
    let code = param(&location, "code").unwrap();
    let (_, token_url, _) = endpoints(&kit);
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", super::client::REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client.id.as_str()),
        ("client_secret", client.secret.as_deref().unwrap()),
        ("resource", &kit.resource_url()),
    ];
    let reply = super::client::post_form(&token_url, &fields, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&reply.body)
        .into_owned()
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("token_type").as_deref(), Some("bearer"));
    assert_eq!(field("expires_in").as_deref(), Some("1"));
    assert_eq!(field("refresh_token"), None);
    let access_token = field("access_token").unwrap();
    assert_eq!(
        mcp(&kit, Some(&access_token), "tools/list", json!({}))
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = mcp(&kit, Some(&access_token), "tools/list", json!({})).await;
    assert_eq!(expired.status, 401);
    assert!(expired
        .header("www-authenticate")
        .unwrap()
        .contains("expired"));
}

#[tokio::test]
async fn registration_and_preregistered_clients() {
    let config = TestkitConfig::default()
        .token_endpoint_auth_methods(["client_secret_post", "none"])
        .preregistered_client("pre", Some("pre secret"));
    let kit = Testkit::start(config).await.unwrap();
    // Unsupported method falls back to the first supported one.
    let client = register(&kit, "private_key_jwt").await;
    assert!(client.secret.is_some());
    let (_, token_url, register_url) = endpoints(&kit);
    let recorded = kit.requests().pop().unwrap();
    assert_eq!(
        recorded.json().unwrap()["token_endpoint_auth_method"],
        "private_key_jwt"
    );
    let missing = super::client::send(
        http::Method::POST,
        &register_url,
        &[("content-type", "application/json")],
        json!({"redirect_uris": []}).to_string(),
    )
    .await;
    assert_eq!(
        (missing.status, missing.json()["error"].clone()),
        (400, json!("invalid_redirect_uri"))
    );

    // The pre-registered client authenticates with client_secret_basic from any redirect URI.
    let location = authorize(&kit, "pre", None).await;
    let code = param(&location, "code").unwrap();
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", super::client::REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", &kit.resource_url()),
    ];
    let reply = super::client::post_form(&token_url, &fields, Some(("pre", "pre secret"))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let recorded = kit.requests().pop().unwrap();
    assert_eq!(
        recorded.basic_credentials(),
        Some(("pre".to_owned(), "pre secret".to_owned()))
    );
}

#[test]
fn recorded_request_helpers_decode() {
    let mut headers = http::HeaderMap::new();
    // "a%3Ab:s+c%2B" -> id "a:b", secret "s c+".
    headers.insert("authorization", "basic YSUzQWI6cytjJTJC".parse().unwrap());
    let request = RecordedRequest {
        role: ServerRole::Authorization,
        method: http::Method::POST,
        path: "/token".into(),
        query: Some("q=a%20b&q=c".into()),
        headers,
        body: Bytes::from_static(b"scope=x+y&resource=http%3A%2F%2Fh%2Fmcp"),
    };
    assert_eq!(
        request.basic_credentials(),
        Some(("a:b".into(), "s c+".into()))
    );
    assert_eq!(request.bearer(), None);
    assert_eq!(request.query_param("q").as_deref(), Some("a b"));
    assert_eq!(request.form_param("scope").as_deref(), Some("x y"));
    assert_eq!(
        request.form_param("resource").as_deref(),
        Some("http://h/mcp")
    );
    assert_eq!(request.json(), None);
    assert_eq!(request.path_and_query(), "/token?q=a%20b&q=c");

    let mut bearer = request.clone();
    bearer
        .headers
        .insert("authorization", "BEARER tok-1".parse().unwrap());
    assert_eq!(bearer.bearer().as_deref(), Some("tok-1"));
}
