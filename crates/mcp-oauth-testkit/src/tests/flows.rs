//! Whole authorization code flows by hand, refresh, revocation and scopes.

use serde_json::{json, Value};

use super::client::{
    authorize, endpoints, exchange, mcp, obtain_tokens, param, post_form, refresh, register,
    TestClient, REDIRECT, VERIFIER,
};
use crate::codec::s256_challenge;
use crate::{DiscoveryLayout, IssInRedirect, ServerRole, Testkit, TestkitConfig};

fn token_of(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {body}"))
        .to_owned()
}

#[tokio::test]
async fn default_layout_full_flow() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let client = register(&kit, "client_secret_basic").await;
    assert!(client.id.starts_with("client-") && client.secret.is_some());

    let location = authorize(&kit, &client.id, Some("mcp:read mcp:write")).await;
    assert!(location.as_str().starts_with(REDIRECT));
    assert_eq!(param(&location, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&location, "iss"), Some(kit.issuer()));
    let code = param(&location, "code").unwrap();

    let reply = exchange(&kit, &client, &code, VERIFIER).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "mcp:read mcp:write");
    assert!(token_of(&body, "refresh_token").starts_with("rt-"));
    let access_token = token_of(&body, "access_token");
    assert!(access_token.starts_with("at-"));

    let called = mcp(
        &kit,
        Some(&access_token),
        "tools/call",
        json!({"name": "test-tool"}),
    )
    .await;
    assert_eq!(called.status, 200);
    assert_eq!(called.json()["result"]["content"][0]["text"], "test");
    let init = mcp(
        &kit,
        Some(&access_token),
        "initialize",
        json!({"protocolVersion": "2025-06-18"}),
    )
    .await;
    assert_eq!(init.json()["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(
        init.json()["result"]["serverInfo"]["name"],
        "mcp-oauth-testkit"
    );
    let listed = mcp(&kit, Some(&access_token), "tools/list", json!({})).await;
    assert_eq!(listed.json()["result"]["tools"][0]["name"], "test-tool");
    let unknown = mcp(&kit, Some(&access_token), "resources/list", json!({})).await;
    assert_eq!(unknown.json()["error"]["code"], -32601);

    // The code is single use.
    let again = exchange(&kit, &client, &code, VERIFIER).await;
    assert_eq!(
        (again.status, again.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );

    let requests = kit.requests();
    let token_request = requests
        .iter()
        .find(|r| r.role == ServerRole::Authorization && r.path == "/token")
        .unwrap();
    assert_eq!(
        token_request.form_param("code_verifier").as_deref(),
        Some(VERIFIER)
    );
    assert_eq!(
        token_request.form_param("resource"),
        Some(kit.resource_url())
    );
    let (basic_id, _) = token_request.basic_credentials().unwrap();
    assert_eq!(basic_id, client.id);
    let authorize_request = requests.iter().find(|r| r.path == "/authorize").unwrap();
    assert_eq!(
        authorize_request.query_param("scope").as_deref(),
        Some("mcp:read mcp:write")
    );
    let mcp_request = requests.iter().rev().find(|r| r.path == "/mcp").unwrap();
    assert_eq!(mcp_request.bearer(), Some(access_token));
    assert_eq!(mcp_request.json().unwrap()["method"], "resources/list");
}

#[tokio::test]
async fn legacy_fallback_flow_with_public_client_and_sse() {
    let config = TestkitConfig::default()
        .layout(DiscoveryLayout::LegacyEndpointFallback)
        .sse_responses(true)
        .iss_in_redirect(IssInRedirect::Omit);
    let kit = Testkit::start(config).await.unwrap();
    let client = register(&kit, "none").await;
    assert!(client.secret.is_none());
    let location = authorize(&kit, &client.id, None).await;
    assert_eq!(param(&location, "iss"), None);
    let code = param(&location, "code").unwrap();
    let body = exchange(&kit, &client, &code, VERIFIER).await.json();
    assert!(body.get("scope").is_none());
    let access_token = token_of(&body, "access_token");

    let called = mcp(
        &kit,
        Some(&access_token),
        "tools/call",
        json!({"name": "test-tool"}),
    )
    .await;
    assert_eq!(called.status, 200);
    assert_eq!(
        called.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let text = String::from_utf8(called.body.to_vec()).unwrap();
    let data = text
        .strip_prefix("event: message\ndata: ")
        .unwrap()
        .trim_end();
    let message: Value = serde_json::from_str(data).unwrap();
    assert_eq!(message["result"]["content"][0]["text"], "test");

    assert!(kit
        .requests()
        .iter()
        .all(|r| r.role == ServerRole::Resource));
}

#[tokio::test]
async fn pkce_mismatch_and_wrong_client_auth_are_rejected() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let client = register(&kit, "client_secret_post").await;
    let location = authorize(&kit, &client.id, None).await;
    let code = param(&location, "code").unwrap();
    let (_, token, _) = endpoints(&kit);
    let secret = client.secret.clone().unwrap();
    fn fields<'a>(verifier: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_secret", secret),
        ]
    }
    let mut wrong_secret = fields(VERIFIER, "nope");
    wrong_secret.extend([("client_id", client.id.as_str()), ("code", code.as_str())]);
    let reply = post_form(&token, &wrong_secret, None).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (401, json!("invalid_client"))
    );

    let mut wrong_verifier = fields(
        "another-verifier-another-verifier-another-verifier",
        &secret,
    );
    wrong_verifier.extend([("client_id", client.id.as_str()), ("code", code.as_str())]);
    let reply = post_form(&token, &wrong_verifier, None).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );

    // The authorization endpoint insists on S256.
    let (authorize_url, _, _) = endpoints(&kit);
    let challenge = s256_challenge(VERIFIER);
    let plain = format!(
        "{authorize_url}?response_type=code&client_id={}&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=plain",
        client.id
    );
    let reply = super::client::get(&plain).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (400, json!("invalid_request"))
    );

    // Registered redirect URIs match exactly, except for the port of a loopback IP.
    for (redirect, status) in [
        ("http://127.0.0.1:4567/callback", 302),
        ("http://127.0.0.1:9/elsewhere", 400),
        ("http://localhost:9/callback", 400),
    ] {
        let url = format!(
            "{authorize_url}?response_type=code&client_id={}&redirect_uri={redirect}&code_challenge={challenge}&code_challenge_method=S256",
            client.id
        );
        assert_eq!(super::client::get(&url).await.status, status, "{redirect}");
    }
}

#[tokio::test]
async fn refresh_rotation_reuse_detection_and_revocation() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (client, body) = obtain_tokens(&kit, Some("s1 s2")).await;
    let first_at = token_of(&body, "access_token");
    let first_rt = token_of(&body, "refresh_token");

    kit.revoke_all_tokens();
    let revoked = mcp(&kit, Some(&first_at), "tools/list", json!({})).await;
    assert_eq!(revoked.status, 401);
    assert!(revoked
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));

    // Refresh tokens survive revoke_all_tokens; rotation hands out a new one.
    let rotated = refresh(&kit, &client, &first_rt).await.json();
    assert_eq!(rotated["scope"], "s1 s2");
    let second_at = token_of(&rotated, "access_token");
    let second_rt = token_of(&rotated, "refresh_token");
    assert_ne!(second_rt, first_rt);
    assert_eq!(
        mcp(&kit, Some(&second_at), "tools/list", json!({}))
            .await
            .status,
        200
    );

    // Reusing the rotated-away token revokes the whole grant.
    let reuse = refresh(&kit, &client, &first_rt).await;
    assert_eq!(
        (reuse.status, reuse.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    assert_eq!(
        mcp(&kit, Some(&second_at), "tools/list", json!({}))
            .await
            .status,
        401
    );
    let after = refresh(&kit, &client, &second_rt).await;
    assert_eq!(after.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn tool_call_scopes_answer_403_insufficient_scope() {
    let config = TestkitConfig::default()
        .required_scopes(["mcp"])
        .tool_call_scopes(["tools"])
        .challenge_scope("mcp");
    let kit = Testkit::start(config).await.unwrap();
    let unauthenticated = mcp(&kit, None, "tools/list", json!({})).await;
    let header = unauthenticated.header("www-authenticate").unwrap();
    assert!(header.contains("scope=\"mcp\""), "{header}");

    let (client, body) = obtain_tokens(&kit, Some("mcp tools")).await;
    let refresh_token = token_of(&body, "refresh_token");
    // A narrower refresh keeps only `mcp`.
    let (_, token_url, _) = endpoints(&kit);
    let fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_token),
        ("scope", "mcp"),
    ];
    let narrow = post_form(&token_url, &fields, client.basic()).await.json();
    assert_eq!(narrow["scope"], "mcp");
    let narrow_at = token_of(&narrow, "access_token");

    assert_eq!(
        mcp(&kit, Some(&narrow_at), "tools/list", json!({}))
            .await
            .status,
        200
    );
    let denied = mcp(
        &kit,
        Some(&narrow_at),
        "tools/call",
        json!({"name": "test-tool"}),
    )
    .await;
    assert_eq!(denied.status, 403);
    let header = denied.header("www-authenticate").unwrap();
    assert!(
        header.starts_with("Bearer error=\"insufficient_scope\""),
        "{header}"
    );
    assert!(header.contains("scope=\"mcp tools\""), "{header}");
    let prm = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        kit.resource_origin()
    );
    assert!(
        header.contains(&format!("resource_metadata=\"{prm}\"")),
        "{header}"
    );

    let full_at = token_of(&body, "access_token");
    let allowed = mcp(
        &kit,
        Some(&full_at),
        "tools/call",
        json!({"name": "test-tool"}),
    )
    .await;
    assert_eq!(allowed.status, 200);
}

#[tokio::test]
async fn migrated_resource_trusts_only_the_new_authorization_server() {
    let old = Testkit::start(TestkitConfig::default()).await.unwrap();
    let new = Testkit::start(TestkitConfig::default().cimd_supported(true))
        .await
        .unwrap();
    let (_, body) = obtain_tokens(&old, None).await;
    let old_at = token_of(&body, "access_token");
    old.set_prm_authorization_server(&new.issuer());
    assert_eq!(
        mcp(&old, Some(&old_at), "tools/list", json!({}))
            .await
            .status,
        401
    );

    // A client id metadata document URL is a public client at the new AS; the token is bound to
    // the old kit's resource, which now trusts it.
    let cimd = TestClient {
        id: "https://client.example/metadata.json".to_owned(),
        secret: None,
    };
    let (authorize_url, _, _) = endpoints(&new);
    let url = format!(
        "{authorize_url}?response_type=code&client_id={}&redirect_uri={REDIRECT}&code_challenge={}&code_challenge_method=S256&resource={}",
        cimd.id,
        s256_challenge(VERIFIER),
        old.resource_url(),
    );
    let location = super::client::get(&url).await.header("location").unwrap();
    let code = param(&url::Url::parse(&location).unwrap(), "code").unwrap();
    let (_, token_url, _) = endpoints(&new);
    let resource = old.resource_url();
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", &cimd.id),
        ("resource", &resource),
    ];
    let body = post_form(&token_url, &fields, None).await.json();
    let new_at = token_of(&body, "access_token");
    assert_eq!(
        mcp(&old, Some(&new_at), "tools/list", json!({}))
            .await
            .status,
        200
    );
    // …but the new kit's own resource rejects a token bound to the old resource.
    assert_eq!(
        mcp(&new, Some(&new_at), "tools/list", json!({}))
            .await
            .status,
        401
    );
}
