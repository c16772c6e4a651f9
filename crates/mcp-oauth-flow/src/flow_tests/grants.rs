//! The assertion grants through the whole machine: workload identity (SEP-1933) and
//! enterprise-managed authorization (SEP-990).

use super::*;
use crate::grants::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const IDP: &str = "http://localhost:5000";

/// An unsigned JWT with these claims (the flow reads only `exp`; the server verifies).
fn jwt(claims: Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn workload_token() -> String {
    jwt(json!({"iss": "https://idp.local", "sub": "workload", "aud": AS, "exp": secs(now()) + 300}))
}

/// An authorization server offering only the jwt-bearer grant, no registration (the harness's
/// workload identity server).
fn jwt_bearer_net() -> Net {
    let mut meta = as_meta(AS);
    meta["grant_types_supported"] = json!([JWT_BEARER_GRANT_TYPE]);
    meta.as_object_mut()
        .unwrap()
        .remove("registration_endpoint");
    std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    )
}

fn workload_config() -> ClientConfig {
    config().assertion_grant(AssertionGrant::WorkloadIdentity)
}

#[test]
fn workload_identity_presents_the_platform_token_in_a_jwt_bearer_grant() {
    let token = workload_token();
    let net = jwt_bearer_net().assertion(&token);
    let run = run_with(
        workload_config(),
        start(None),
        &net,
        Consent::Raw(String::new()),
        None,
    );
    assert_eq!(
        run.sent,
        vec![
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {AS}/.well-known/oauth-authorization-server"),
            format!("ASSERTION WorkloadIdentity for {AS}"),
            format!("POST {AS}/token"),
        ]
    );
    assert_eq!(
        run.form(3, "grant_type").as_deref(),
        Some(JWT_BEARER_GRANT_TYPE)
    );
    // Presented as the platform issued it: the flow does not rewrite its audience.
    assert_eq!(run.form(3, "assertion"), Some(token));
    assert_eq!(run.form(3, "resource"), Some(format!("{RS}/mcp")));
    // No client configured: no client_id, no client authentication (RFC 7523 §3.1).
    assert_eq!(run.form(3, "client_id"), None);
    assert_eq!(run.auth[3], None);
    assert_eq!(run.outcome().tokens.access_token().secret(), "at-1");
    assert!(run.saved.is_empty() && run.authorize_url.is_none());
}

#[test]
fn a_pre_registered_public_client_names_itself() {
    let net = jwt_bearer_net().assertion(&workload_token());
    let config = workload_config().pre_registered(PreRegisteredClient::new("wif-client"));
    let run = run_with(config, start(None), &net, Consent::Raw(String::new()), None);
    assert_eq!(run.form(3, "client_id").as_deref(), Some("wif-client"));
    assert!(matches!(run.end, Action::Complete(_)));
}

#[test]
fn an_expired_workload_token_is_not_sent() {
    let expired = jwt(json!({"sub": "workload", "exp": secs(now()) - 1}));
    let net = jwt_bearer_net().assertion(&expired);
    let run = run_with(
        workload_config(),
        start(None),
        &net,
        Consent::Raw(String::new()),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::AssertionExpired);
    assert!(!run.sent_token_request());
}

#[test]
fn a_source_that_fails_ends_the_flow() {
    let run = run_with(
        workload_config(),
        start(None),
        &jwt_bearer_net(),
        Consent::Raw(String::new()),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::AssertionUnavailable);
    assert!(!run.sent_token_request());
}

#[test]
fn a_rejected_assertion_is_typed_and_never_retried_or_replaced() {
    let net = jwt_bearer_net().assertion(&workload_token()).json(
        &format!("{AS}/token"),
        400,
        json!({"error": "invalid_grant", "error_description": "audience"}),
    );
    let run = run_with(
        workload_config(),
        start(None),
        &net,
        Consent::Raw(String::new()),
        None,
    );
    let Action::Failed(error) = &run.end else {
        panic!("expected a failure")
    };
    assert_eq!(error.kind(), ErrorKind::AssertionRejected);
    assert_eq!(error.oauth_error().unwrap().error, "invalid_grant");
    assert!(!error.is_transient());
    // One token request, no second grant, no authorization request.
    assert_eq!(run.sent.iter().filter(|s| s.ends_with("/token")).count(), 1);
    assert!(run.authorize_url.is_none());
}

#[test]
fn a_server_without_the_jwt_bearer_grant_is_refused_without_a_fallback() {
    // The standard server offers the authorization code (RFC 8414 default) and registration.
    let net = std_net().assertion(&workload_token());
    let run = run_with(
        workload_config(),
        start(None),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::GrantNotSupported);
    assert!(!run.sent.iter().any(|s| s.starts_with("ASSERTION")));
    assert!(run.authorize_url.is_none() && !run.sent_token_request());
    assert!(run.saved.is_empty());
}

fn id_token() -> String {
    jwt(
        json!({"iss": IDP, "sub": "user@example.com", "aud": "idp-client", "exp": secs(now()) + 3600}),
    )
}

fn enterprise_config() -> ClientConfig {
    config()
        .assertion_grant(AssertionGrant::EnterpriseManaged(
            EnterpriseIdp::new(format!("{IDP}/token")).client_id("idp-client"),
        ))
        .pre_registered(
            PreRegisteredClient::new("xaa-client")
                .with_secret("xaa-secret")
                .for_issuer(AS),
        )
}

fn enterprise_net() -> Net {
    let mut meta = as_meta(AS);
    meta["grant_types_supported"] = json!([JWT_BEARER_GRANT_TYPE]);
    meta["token_endpoint_auth_methods_supported"] = json!(["client_secret_basic"]);
    std_net()
        .json(&format!("{AS}/.well-known/oauth-authorization-server"), 200, meta)
        .json(
            &format!("{IDP}/token"),
            200,
            json!({"access_token": "the-id-jag", "issued_token_type": ID_JAG_TOKEN_TYPE, "token_type": "N_A"}),
        )
        .assertion(&id_token())
}

#[test]
fn enterprise_managed_exchanges_the_id_token_then_presents_the_id_jag() {
    let run = run_with(
        enterprise_config(),
        start(None),
        &enterprise_net(),
        Consent::Raw(String::new()),
        None,
    );
    assert_eq!(
        run.sent,
        vec![
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {AS}/.well-known/oauth-authorization-server"),
            format!("ASSERTION IdToken for {AS}"),
            format!("POST {IDP}/token"),
            format!("POST {AS}/token"),
        ]
    );
    // RFC 8693 at the IdP: the ID token for an ID-JAG addressed to the AS and the resource.
    assert_eq!(
        run.form(3, "grant_type").as_deref(),
        Some(TOKEN_EXCHANGE_GRANT_TYPE)
    );
    assert_eq!(run.form(3, "subject_token"), Some(id_token()));
    assert_eq!(
        run.form(3, "subject_token_type").as_deref(),
        Some(ID_TOKEN_TYPE)
    );
    assert_eq!(
        run.form(3, "requested_token_type").as_deref(),
        Some(ID_JAG_TOKEN_TYPE)
    );
    assert_eq!(run.form(3, "audience").as_deref(), Some(AS));
    assert_eq!(run.form(3, "resource"), Some(format!("{RS}/mcp")));
    assert_eq!(run.form(3, "client_id").as_deref(), Some("idp-client"));
    assert_eq!(
        run.auth[3], None,
        "the AS client's secret never reaches the IdP"
    );
    // RFC 7523 at the AS, authenticated as the pre-registered client.
    assert_eq!(
        run.form(4, "grant_type").as_deref(),
        Some(JWT_BEARER_GRANT_TYPE)
    );
    assert_eq!(run.form(4, "assertion").as_deref(), Some("the-id-jag"));
    use base64::engine::general_purpose::STANDARD;
    let basic = format!("Basic {}", STANDARD.encode("xaa-client:xaa-secret"));
    assert_eq!(run.auth[4].as_deref(), Some(basic.as_str()));
    assert_eq!(run.outcome().tokens.access_token().secret(), "at-1");
}

#[test]
fn enterprise_managed_needs_a_client_the_server_can_authenticate() {
    let config = config().assertion_grant(AssertionGrant::EnterpriseManaged(EnterpriseIdp::new(
        format!("{IDP}/token"),
    )));
    let run = run_with(
        config,
        start(None),
        &enterprise_net(),
        Consent::Raw(String::new()),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::NoClientIdentity);
    assert!(!run.sent.contains(&format!("POST {AS}/token")));
}

#[test]
fn an_idp_refusal_stops_before_the_authorization_server() {
    let net = enterprise_net().json(
        &format!("{IDP}/token"),
        400,
        json!({"error": "invalid_grant"}),
    );
    let run = run_with(
        enterprise_config(),
        start(None),
        &net,
        Consent::Raw(String::new()),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::AssertionRejected);
    assert!(!run.sent.contains(&format!("POST {AS}/token")));
    let Action::Failed(error) = &run.end else {
        unreachable!()
    };
    let report = error.report().expect("a report").to_string();
    assert!(report.contains("token exchange"), "{report}");
}

#[test]
fn an_expired_id_token_is_not_exchanged() {
    let expired = jwt(json!({"sub": "user", "exp": secs(now()) - 3600}));
    let net = enterprise_net().assertion(&expired);
    let run = run_with(
        enterprise_config(),
        start(None),
        &net,
        Consent::Raw(String::new()),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::AssertionExpired);
    assert!(!run.sent.iter().any(|s| s.starts_with("POST")));
}

#[test]
fn a_legacy_server_claiming_another_issuer_is_not_given_an_assertion_for_it() {
    // MCP 2025-03-26: no resource metadata, authorization server metadata at the server's own
    // origin claiming a victim's issuer, with a token endpoint of its own. The assertion source
    // is asked for a token for the issuer the credentials are bound to, the server's origin:
    // one minted for the victim would be posted to the server and replayable at the victim.
    let victim = "https://login.victim.example";
    let mut meta = as_meta(victim);
    meta["grant_types_supported"] = json!([JWT_BEARER_GRANT_TYPE]);
    meta["token_endpoint"] = format!("{RS}/token").into();
    meta.as_object_mut()
        .unwrap()
        .remove("registration_endpoint");
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        )
        .json(&format!("{RS}/token"), 200, json!({"access_token": "a"}))
        .assertion(&workload_token());
    let run = run_with(
        workload_config(),
        start(Some("Bearer")),
        &net,
        Consent::Raw(String::new()),
        None,
    );
    let asked: Vec<&String> = run
        .sent
        .iter()
        .filter(|s| s.starts_with("ASSERTION"))
        .collect();
    assert_eq!(asked, [&format!("ASSERTION WorkloadIdentity for {RS}")]);
    assert!(
        run.sent.iter().all(|s| !s.contains(victim)),
        "{:?}",
        run.sent
    );
}
