//! Refresh paths of the flow: proactive, after a 401, after a migration, and every failure
//! class.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::*;
use crate::{authorization::*, client::*, secrets::*, token::*};

const RS: &str = "http://localhost:3000";
const AS: &str = "http://localhost:4000";
const AS2: &str = "http://localhost:5000";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn held(method: ClientAuthMethod) -> TokenSet {
    TokenSet::new("at-old", TokenType::Bearer, AS, "client-1")
        .with_refresh_token(Some(RefreshToken::new("rt-old".into())))
        .with_scopes(Some(Scopes::parse("mcp:read")))
        .with_resource(Some(format!("{RS}/mcp")))
        .with_expires_at(Some(now() + Duration::from_secs(5)))
        .with_token_endpoint(Some(format!("{AS}/token")), Some(method))
}

fn response(status: u16, body: Value) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn start(trigger: Trigger, tokens: TokenSet) -> Flow {
    let start = FlowStart::new(url::Url::parse(&format!("{RS}/mcp")).unwrap())
        .trigger(trigger)
        .held(
            Some(tokens),
            Some(url::Url::parse(&format!("{RS}/mcp")).unwrap()),
        );
    let config = ClientConfig::new("http://localhost:3000/callback").pre_registered(
        PreRegisteredClient::new("pre")
            .with_secret("pre-secret")
            .for_issuer(AS),
    );
    Flow::new(
        Arc::new(config),
        start,
        FlowSecrets::from_entropy([1; 32], [2; 32]),
        now(),
    )
}

fn expect_send(flow: &mut Flow) -> http::Request<Bytes> {
    match flow.poll_action() {
        Some(Action::Send(sub)) => sub.request,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn form(req: &http::Request<Bytes>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.body())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn prm(issuer: &str) -> http::Response<Bytes> {
    response(
        200,
        json!({"resource": format!("{RS}/mcp"), "authorization_servers": [issuer]}),
    )
}

#[test]
fn proactive_refresh_sends_resource_and_scope_and_keeps_the_refresh_token() {
    let mut flow = start(Trigger::Expiring, held(ClientAuthMethod::None));
    let req = expect_send(&mut flow);
    assert_eq!(req.uri().to_string(), format!("{AS}/token"));
    assert_eq!(form(&req, "grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(form(&req, "refresh_token").as_deref(), Some("rt-old"));
    assert_eq!(form(&req, "resource"), Some(format!("{RS}/mcp")));
    assert_eq!(form(&req, "scope").as_deref(), Some("mcp:read"));
    assert_eq!(form(&req, "client_id").as_deref(), Some("client-1"));
    flow.handle_response(
        response(200, json!({"access_token": "at-new", "expires_in": 60})),
        now(),
    );
    match flow.poll_action() {
        Some(Action::Complete(outcome)) => {
            assert!(outcome.refreshed);
            assert_eq!(outcome.tokens.access_token().secret(), "at-new");
            assert_eq!(outcome.tokens.refresh_token().unwrap().secret(), "rt-old");
            assert_eq!(outcome.tokens.scopes().unwrap().to_string(), "mcp:read");
            assert_eq!(
                outcome.tokens.token_endpoint(),
                Some(format!("{AS}/token").as_str())
            );
            assert_eq!(outcome.protected_resource.as_str(), format!("{RS}/mcp"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refresh_after_401_checks_the_resource_metadata_first() {
    let mut flow = start(Trigger::Unauthorized, held(ClientAuthMethod::None));
    let req = expect_send(&mut flow);
    assert!(req.uri().path().contains("oauth-protected-resource"));
    flow.handle_response(prm(AS), now());
    let req = expect_send(&mut flow);
    assert_eq!(form(&req, "grant_type").as_deref(), Some("refresh_token"));
    flow.handle_response(
        response(
            200,
            json!({"access_token": "at-new", "refresh_token": "rt-new"}),
        ),
        now(),
    );
    assert!(
        matches!(flow.poll_action(), Some(Action::Complete(o)) if o.tokens.refresh_token().unwrap().secret() == "rt-new")
    );
}

#[test]
fn a_moved_resource_is_authorized_at_its_new_server_without_refresh() {
    let mut flow = start(Trigger::Unauthorized, held(ClientAuthMethod::None));
    expect_send(&mut flow);
    flow.handle_response(prm(AS2), now());
    let req = expect_send(&mut flow);
    assert_eq!(
        req.uri().to_string(),
        format!("{AS2}/.well-known/oauth-authorization-server")
    );
}

#[test]
fn invalid_grant_drops_the_tokens_and_authorizes_again() {
    let mut flow = start(Trigger::Unauthorized, held(ClientAuthMethod::None));
    expect_send(&mut flow);
    flow.handle_response(prm(AS), now());
    expect_send(&mut flow);
    flow.handle_response(response(400, json!({"error": "invalid_grant"})), now());
    assert!(matches!(flow.poll_action(), Some(Action::DropTokens)));
    let req = expect_send(&mut flow);
    assert_eq!(
        req.uri().to_string(),
        format!("{AS}/.well-known/oauth-authorization-server")
    );

    // Proactive: the same, starting from discovery.
    let mut flow = start(Trigger::Expiring, held(ClientAuthMethod::None));
    expect_send(&mut flow);
    flow.handle_response(response(400, json!({"error": "invalid_grant"})), now());
    assert!(matches!(flow.poll_action(), Some(Action::DropTokens)));
    let req = expect_send(&mut flow);
    assert!(req.uri().path().contains("oauth-protected-resource"));
}

#[test]
fn invalid_client_drops_a_registration_but_never_a_pre_registered_client() {
    // A dynamically registered confidential client: loaded from the store, dropped on invalid_client.
    let mut flow = start(Trigger::Expiring, held(ClientAuthMethod::ClientSecretBasic));
    assert!(matches!(flow.poll_action(), Some(Action::LoadClient { issuer }) if issuer == AS));
    flow.handle_stored_client(Some(ClientRegistration {
        issuer: AS.into(),
        client_id: "client-1".into(),
        client_secret: Some(ClientSecret::new("s".into())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    }));
    let req = expect_send(&mut flow);
    assert!(req.headers()["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    flow.handle_response(response(401, json!({"error": "invalid_client"})), now());
    assert!(matches!(flow.poll_action(), Some(Action::DropTokens)));
    assert!(
        matches!(flow.poll_action(), Some(Action::DropClient { issuer, client_id }) if issuer == AS && client_id == "client-1")
    );

    // A pre-registered client: its secret comes from the configuration; nothing is dropped
    // but the tokens.
    let tokens = TokenSet::new("a", TokenType::Bearer, AS, "pre")
        .with_refresh_token(Some(RefreshToken::new("r".into())))
        .with_token_endpoint(
            Some(format!("{AS}/token")),
            Some(ClientAuthMethod::ClientSecretPost),
        );
    let mut flow = start(Trigger::Expiring, tokens);
    let req = expect_send(&mut flow);
    assert_eq!(form(&req, "client_secret").as_deref(), Some("pre-secret"));
    flow.handle_response(response(401, json!({"error": "invalid_client"})), now());
    assert!(matches!(flow.poll_action(), Some(Action::DropTokens)));
    assert!(matches!(flow.poll_action(), Some(Action::Send(_))));
}

/// A public client registered dynamically (no secret: refreshed without loading its
/// registration) is dropped on `invalid_client` too: kept, the authorization that follows
/// would send the user to the server with an identifier it no longer knows, which it must not
/// redirect back from (RFC 6749 §4.1.2.1). A public pre-registered one is kept.
#[test]
fn invalid_client_drops_a_public_registration_too() {
    let mut flow = start(Trigger::Expiring, held(ClientAuthMethod::None));
    let req = expect_send(&mut flow);
    assert_eq!(form(&req, "client_id").as_deref(), Some("client-1"));
    flow.handle_response(response(400, json!({"error": "invalid_client"})), now());
    assert!(matches!(flow.poll_action(), Some(Action::DropTokens)));
    assert!(
        matches!(flow.poll_action(), Some(Action::DropClient { issuer, client_id }) if issuer == AS && client_id == "client-1")
    );

    let public_pre = TokenSet::new("a", TokenType::Bearer, AS, "public-pre")
        .with_refresh_token(Some(RefreshToken::new("r".into())))
        .with_token_endpoint(Some(format!("{AS}/token")), Some(ClientAuthMethod::None));
    let config = ClientConfig::new("http://localhost:3000/callback")
        .pre_registered(PreRegisteredClient::new("public-pre"));
    let start = FlowStart::new(url::Url::parse(&format!("{RS}/mcp")).unwrap())
        .trigger(Trigger::Expiring)
        .held(
            Some(public_pre),
            Some(url::Url::parse(&format!("{RS}/mcp")).unwrap()),
        );
    let mut flow = Flow::new(
        Arc::new(config),
        start,
        FlowSecrets::from_entropy([1; 32], [2; 32]),
        now(),
    );
    expect_send(&mut flow);
    flow.handle_response(response(400, json!({"error": "invalid_client"})), now());
    assert!(matches!(flow.poll_action(), Some(Action::DropTokens)));
    assert!(
        !matches!(flow.poll_action(), Some(Action::DropClient { .. })),
        "a pre-registered client is the application's to fix"
    );
}

#[test]
fn transient_failures_keep_every_credential() {
    for (status, body) in [
        (503, json!({})),
        (429, json!({})),
        (200, json!({"token_type": "Bearer"})),
    ] {
        let mut flow = start(Trigger::Expiring, held(ClientAuthMethod::None));
        expect_send(&mut flow);
        flow.handle_response(response(status, body), now());
        match flow.poll_action() {
            Some(Action::Failed(e)) => assert!(
                e.is_transient() || e.kind() == ErrorKind::InvalidTokenResponse,
                "{status}: {e}"
            ),
            other => panic!("{status}: {other:?}"),
        }
        assert!(flow.poll_action().is_none());
    }
}

#[test]
fn tokens_without_a_stored_client_are_not_refreshed() {
    let mut flow = start(Trigger::Expiring, held(ClientAuthMethod::ClientSecretBasic));
    assert!(matches!(
        flow.poll_action(),
        Some(Action::LoadClient { .. })
    ));
    flow.handle_stored_client(None);
    let req = expect_send(&mut flow);
    assert!(req.uri().path().contains("oauth-protected-resource"));
}

#[test]
fn no_refresh_token_means_no_refresh() {
    let tokens = TokenSet::new("a", TokenType::Bearer, AS, "c")
        .with_token_endpoint(Some(format!("{AS}/token")), None);
    let mut flow = start(Trigger::Expiring, tokens);
    let req = expect_send(&mut flow);
    assert!(req.uri().path().contains("oauth-protected-resource"));
}

/// `now` reaches the refresh: a `private_key_jwt` client signs a fresh assertion for the tokens'
/// issuer, dated `now`, instead of skipping the refresh.
#[test]
fn a_private_key_client_refreshes_with_an_assertion_dated_now() {
    use base64::Engine;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let secret = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let config = ClientConfig::new("http://localhost:3000/callback").pre_registered(
        PreRegisteredClient::new("client-1")
            .with_private_key(ClientKey::from_pkcs8_pem(&pem).unwrap())
            .for_issuer(AS),
    );
    let start = FlowStart::new(url::Url::parse(&format!("{RS}/mcp")).unwrap())
        .trigger(Trigger::Expiring)
        .held(Some(held(ClientAuthMethod::PrivateKeyJwt)), None);
    let mut flow = Flow::new(
        Arc::new(config),
        start,
        FlowSecrets::from_entropy([1; 32], [2; 32]),
        now(),
    );
    let req = expect_send(&mut flow);
    assert_eq!(req.uri().to_string(), format!("{AS}/token"));
    assert_eq!(form(&req, "grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(
        form(&req, "client_assertion_type").as_deref(),
        Some(JWT_BEARER_ASSERTION_TYPE)
    );
    let assertion = form(&req, "client_assertion").expect("a client assertion");
    let claims = assertion.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], AS);
    assert_eq!(claims["sub"], "client-1");
    assert_eq!(claims["iat"], 1_700_000_000);
    assert!(req.headers().get("authorization").is_none());
}

/// A refresh of a public client's tokens under `options`.
fn start_with(options: server::ServerOptions) -> Flow {
    let start = FlowStart::new(url::Url::parse(&format!("{RS}/mcp")).unwrap())
        .trigger(Trigger::Expiring)
        .held(
            Some(held(ClientAuthMethod::None)),
            Some(url::Url::parse(&format!("{RS}/mcp")).unwrap()),
        );
    let config = ClientConfig::new("http://localhost:3000/callback").server(options);
    Flow::new(
        Arc::new(config),
        start,
        FlowSecrets::from_entropy([1; 32], [2; 32]),
        now(),
    )
}

fn invalid_scope() -> http::Response<Bytes> {
    response(400, json!({"error": "invalid_scope"}))
}

#[test]
fn refresh_scope_never_leaves_scope_off_and_omit_resource_the_resource() {
    let options = server::ServerOptions::for_issuer(AS)
        .refresh_scope(server::RefreshScope::Never)
        .omit_resource(true);
    let mut flow = start_with(options);
    let req = expect_send(&mut flow);
    assert_eq!(form(&req, "grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(form(&req, "scope"), None);
    assert_eq!(form(&req, "resource"), None);
}

#[test]
fn invalid_scope_is_retried_once_without_scope_then_succeeds() {
    let options =
        server::ServerOptions::for_issuer(AS).refresh_scope(server::RefreshScope::RetryWithout);
    let mut flow = start_with(options);
    let first = expect_send(&mut flow);
    assert_eq!(form(&first, "scope").as_deref(), Some("mcp:read"));
    flow.handle_response(invalid_scope(), now());
    let retry = expect_send(&mut flow);
    assert_eq!(form(&retry, "grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(form(&retry, "refresh_token").as_deref(), Some("rt-old"));
    assert_eq!(form(&retry, "scope"), None);
    flow.handle_response(response(200, json!({"access_token": "at-new"})), now());
    match flow.poll_action() {
        Some(Action::Complete(outcome)) => {
            assert!(outcome.refreshed);
            // Without a scope in the answer, the granted scope is unchanged (RFC 6749 §6).
            assert_eq!(outcome.tokens.scopes().unwrap().to_string(), "mcp:read");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_invalid_scope_is_a_refused_refresh_with_no_third_request() {
    let options =
        server::ServerOptions::for_issuer(AS).refresh_scope(server::RefreshScope::RetryWithout);
    let mut flow = start_with(options);
    expect_send(&mut flow);
    flow.handle_response(invalid_scope(), now());
    expect_send(&mut flow);
    flow.handle_response(invalid_scope(), now());
    // Refused for good: the tokens go, and the flow starts discovery for a new login.
    assert!(matches!(flow.poll_action(), Some(Action::DropTokens)));
    let next = expect_send(&mut flow);
    assert!(next.uri().path().contains("oauth-protected-resource"));
    assert_eq!(form(&next, "grant_type"), None);
}

#[test]
fn invalid_scope_is_not_retried_without_the_policy_nor_for_other_errors() {
    for (policy, answer) in [
        (server::RefreshScope::Always, invalid_scope()),
        (
            server::RefreshScope::RetryWithout,
            response(400, json!({"error": "invalid_grant"})),
        ),
    ] {
        let mut flow = start_with(server::ServerOptions::for_issuer(AS).refresh_scope(policy));
        expect_send(&mut flow);
        flow.handle_response(answer, now());
        assert!(
            matches!(flow.poll_action(), Some(Action::DropTokens)),
            "{policy:?}"
        );
    }
}
