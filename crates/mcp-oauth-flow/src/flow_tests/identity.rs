//! Client identity: pre-registered clients, client ID metadata documents, stored
//! registrations and loopback ports.

use super::*;

#[test]
fn pre_registered_client_bound_to_its_issuer() {
    let mut meta = as_meta(AS);
    meta["token_endpoint_auth_methods_supported"] = json!(["client_secret_basic"]);
    meta.as_object_mut()
        .unwrap()
        .remove("registration_endpoint");
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    );
    let cfg = config().pre_registered(
        PreRegisteredClient::new("pre")
            .with_secret("sec")
            .for_issuer(AS),
    );
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    run.outcome();
    assert!(run.loaded.is_empty() && run.saved.is_empty());
    assert_eq!(
        run.form(3, "client_id"),
        None,
        "basic auth keeps the id out of the body"
    );
    assert_eq!(run.authorize_param("client_id").as_deref(), Some("pre"));

    // Bound to another issuer: not used; no registration endpoint: a clear error.
    let cfg = config()
        .pre_registered(PreRegisteredClient::new("pre").for_issuer("https://other.example.com"));
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::NoClientIdentity);
}

#[test]
fn client_metadata_document_when_supported() {
    let mut meta = as_meta(AS);
    meta["client_id_metadata_document_supported"] = json!(true);
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    );
    let cfg = config().client_metadata_document("https://client.example.com/meta.json");
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("https://client.example.com/meta.json")
    );
    assert!(!run.sent.iter().any(|s| s.contains("/register")));
    // Not advertised: dynamic registration instead.
    let cfg = config().client_metadata_document("https://client.example.com/meta.json");
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("dcr-client")
    );
}

#[test]
fn stored_client_is_reused_only_for_its_issuer() {
    let stored = ClientRegistration {
        issuer: AS.into(),
        client_id: "kept".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    };
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        Some(stored.clone()),
    );
    assert_eq!(run.authorize_param("client_id").as_deref(), Some("kept"));
    assert!(!run.sent.iter().any(|s| s.contains("/register")));

    let foreign = ClientRegistration {
        issuer: "http://localhost:5000".into(),
        ..stored
    };
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        Some(foreign),
    );
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("dcr-client")
    );
}

/// The store keeps one registration per issuer. One that another application still uses (its
/// redirect URI is not ours, its secret alive) is replaced only by a registration that got
/// tokens: handed to the driver with them, never saved before; an expired one is replaced at
/// once, so a login abandoned at consent reuses the new one.
#[test]
fn a_registration_in_use_elsewhere_is_replaced_only_once_the_new_one_got_tokens() {
    let others = ClientRegistration {
        issuer: AS.into(),
        client_id: "other-app".into(),
        client_secret: Some(oauth2::ClientSecret::new("other-secret".into())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        redirect_uris: vec!["https://other.example.com/callback".into()],
        grant_types: Vec::new(),
    };
    // Approved: handed over with the tokens, never saved before.
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        Some(others.clone()),
    );
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("dcr-client")
    );
    assert!(run.saved.is_empty(), "{:?}", run.saved_after);
    let handed = run.outcome().registration.as_ref().unwrap();
    assert_eq!(handed.client_id, "dcr-client");
    assert_eq!(handed.issuer, AS);
    assert_eq!(run.outcome().tokens.client_id(), "dcr-client");
    // Refused at consent, or by the token endpoint: the other application's stays.
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        refused_consent(),
        Some(others.clone()),
    );
    assert_eq!(run.failed(), ErrorKind::AuthorizationDenied);
    assert!(run.saved.is_empty(), "{:?}", run.saved_after);
    let net = std_net().json(
        &format!("{AS}/token"),
        400,
        json!({"error": "invalid_grant"}),
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        Some(others.clone()),
    );
    assert_eq!(run.failed(), ErrorKind::TokenRejected);
    assert!(run.saved.is_empty());

    // Its secret expired, another issuer's (a file name's hash collision), or nothing
    // stored: saved as soon as it is made, before consent.
    let expired = ClientRegistration {
        client_secret_expires_at: Some(1_600_000_000),
        ..others.clone()
    };
    let foreign = ClientRegistration {
        issuer: "https://other-issuer.example.com".into(),
        ..others
    };
    for stored in [Some(expired), Some(foreign), None] {
        let run = run_with(
            config(),
            start(Some(&challenge_with_prm())),
            &std_net(),
            refused_consent(),
            stored,
        );
        assert_eq!(run.failed(), ErrorKind::AuthorizationDenied);
        assert_eq!(run.saved.len(), 1);
        assert_eq!(run.saved_after, [Some(format!("POST {AS}/register"))]);
    }
    // And a flow that saved it hands nothing over.
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.saved.len(), 1);
    assert!(run.outcome().registration.is_none());
}

fn refused_consent() -> Consent {
    Consent::Raw("error=access_denied&state={state}".into())
}

#[test]
fn a_registration_from_an_earlier_loopback_port_is_reused() {
    // RFC 8252 §7.3: the port of a loopback IP redirect may change from run to run.
    let stored = ClientRegistration {
        issuer: AS.into(),
        client_id: "kept".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec!["http://127.0.0.1:1111/callback".into()],
        grant_types: Vec::new(),
    };
    let cfg = ClientConfig::new("http://127.0.0.1:2222/callback");
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        Some(stored.clone()),
    );
    assert_eq!(run.authorize_param("client_id").as_deref(), Some("kept"));
    // Another path is another redirect URI: register again.
    let cfg = ClientConfig::new("http://127.0.0.1:2222/other");
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        Some(stored),
    );
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("dcr-client")
    );
}

fn client_credentials_net() -> Net {
    let mut meta = as_meta(AS);
    let m = meta.as_object_mut().unwrap();
    m.remove("authorization_endpoint");
    m.remove("registration_endpoint");
    m.insert(
        "grant_types_supported".into(),
        json!(["client_credentials"]),
    );
    m.insert(
        "token_endpoint_auth_methods_supported".into(),
        json!(["client_secret_basic", "private_key_jwt"]),
    );
    std_net()
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        )
        .json(
            &format!("{AS}/token"),
            200,
            json!({"access_token": "cc", "token_type": "Bearer", "expires_in": 60}),
        )
}

#[test]
fn a_machine_only_server_gets_the_client_credentials_grant() {
    let cfg = config().pre_registered(
        PreRegisteredClient::new("svc")
            .with_secret("s")
            .for_issuer(AS),
    );
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &client_credentials_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent,
        [
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {AS}/.well-known/oauth-authorization-server"),
            format!("POST {AS}/token"),
        ],
        "no consent step, no registration"
    );
    assert_eq!(
        run.form(2, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(run.form(2, "resource"), Some(format!("{RS}/mcp")));
    // client_secret_basic: the secret is in the Authorization header, not the body.
    assert_eq!(run.form(2, "client_secret"), None);
    assert_eq!(run.outcome().tokens.access_token().secret(), "cc");
    assert_eq!(run.outcome().tokens.client_id(), "svc");
}

/// The client on its own behalf asks for the resource's scopes, not `offline_access` (SEP-2207
/// is a user's session; RFC 6749 §4.4.3 gives this grant no refresh token), even from a server
/// that lists it.
#[test]
fn client_credentials_do_not_ask_for_offline_access() {
    let mut net = client_credentials_net();
    let mut meta = as_meta(AS);
    let m = meta.as_object_mut().unwrap();
    m.remove("authorization_endpoint");
    m.remove("registration_endpoint");
    m.insert(
        "grant_types_supported".into(),
        json!(["client_credentials"]),
    );
    m.insert("scopes_supported".into(), json!(["mcp", "offline_access"]));
    net = net.json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    );
    let cfg = config()
        .pre_registered(
            PreRegisteredClient::new("svc")
                .with_secret("s")
                .for_issuer(AS),
        )
        .default_scopes(Scopes::parse("mcp"));
    let run = run_with(
        cfg,
        start(Some("Bearer")),
        &net,
        Consent::Approve(None),
        None,
    );
    let token = run
        .sent
        .iter()
        .position(|s| *s == format!("POST {AS}/token"))
        .unwrap();
    assert_eq!(
        run.form(token, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(run.form(token, "scope").as_deref(), Some("mcp"));
}

#[test]
fn client_credentials_with_a_private_key_sends_a_signed_assertion() {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let secret = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let cfg = config().pre_registered(
        PreRegisteredClient::new("svc")
            .with_private_key(ClientKey::from_pkcs8_pem(&pem).unwrap())
            .for_issuer(AS),
    );
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &client_credentials_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.form(2, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        run.form(2, "client_assertion_type").as_deref(),
        Some(JWT_BEARER_ASSERTION_TYPE)
    );
    let jwt = run.form(2, "client_assertion").unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwt.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "svc");
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["aud"], AS);
    assert_eq!(
        run.outcome().tokens.client_auth(),
        Some(ClientAuthMethod::PrivateKeyJwt)
    );
}

#[test]
fn a_machine_only_server_without_client_credentials_configured_is_a_clear_error() {
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &client_credentials_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::NoClientIdentity);
    assert!(run.authorize_url.is_none());
}

#[test]
fn a_registration_the_token_endpoint_refuses_is_dropped_and_one_whose_secret_expired_is_not_used() {
    let stored = ClientRegistration {
        issuer: AS.into(),
        client_id: "forgotten".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    };
    // The server forgot the registration: the code exchange is refused with invalid_client.
    let net = std_net().json(
        &format!("{AS}/token"),
        401,
        json!({"error": "invalid_client"}),
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        Some(stored.clone()),
    );
    assert_eq!(run.failed(), ErrorKind::TokenRejected);
    assert_eq!(run.dropped, [format!("client {AS} {}", stored.client_id)]);
    // A 401 with no error code that challenges the client's authentication is that
    // authentication failing too: dropped, or every authorization would ask for consent and
    // fail again.
    let challenge = vec![("www-authenticate", r#"Basic realm="as""#.to_owned())];
    let bare = std_net().raw(&format!("{AS}/token"), 401, challenge, "");
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &bare,
        Consent::Approve(None),
        Some(stored.clone()),
    );
    assert_eq!(run.failed(), ErrorKind::TokenRejected);
    assert_eq!(run.dropped, [format!("client {AS} {}", stored.client_id)]);
    // A 401 page without a challenge (a gateway's) says nothing of the client: kept, as every
    // user of the issuer shares it.
    let page = vec![("content-type", "text/html".to_owned())];
    let gateway = std_net().raw(&format!("{AS}/token"), 401, page, "<h1>Unauthorized</h1>");
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &gateway,
        Consent::Approve(None),
        Some(stored.clone()),
    );
    assert_eq!(run.failed(), ErrorKind::TokenRejected);
    assert!(run.dropped.is_empty(), "{:?}", run.dropped);
    // A 5xx naming invalid_client is the server's trouble: kept.
    let down = std_net().json(
        &format!("{AS}/token"),
        503,
        json!({"error": "invalid_client"}),
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &down,
        Consent::Approve(None),
        Some(stored.clone()),
    );
    assert_eq!(run.failed(), ErrorKind::UnexpectedStatus);
    assert!(run.dropped.is_empty(), "{:?}", run.dropped);
    // A pre-registered client is the application's: kept.
    let cfg = config().pre_registered(PreRegisteredClient::new("app-client").for_issuer(AS));
    let run = run_with(
        cfg,
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::TokenRejected);
    assert!(run.dropped.is_empty(), "{:?}", run.dropped);
    // A secret that expired (RFC 7591 §3.2.1): the client registers again.
    let expired = ClientRegistration {
        client_secret_expires_at: Some(1),
        ..stored
    };
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        Some(expired),
    );
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("dcr-client")
    );
}

/// A hostile MCP server names an authorization server of its own that offers only the
/// client-credentials grant, which needs no user: a pre-registered secret bound to no issuer
/// would go to it. The flow refuses the configuration before sending anything; bound, or
/// allowed any issuer by the application, the client is used.
#[test]
fn a_secret_bound_to_no_issuer_goes_to_no_authorization_server() {
    let unbound = PreRegisteredClient::new("svc").with_secret("s3cret");
    let run = run_with(
        config().pre_registered(unbound.clone()),
        start(Some(&challenge_with_prm())),
        &client_credentials_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::NoClientIdentity);
    assert!(run.sent.is_empty(), "{:?}", run.sent);
    let Action::Failed(error) = &run.end else {
        unreachable!()
    };
    assert!(error.to_string().contains("for_issuer"), "{error}");
    assert!(!error.to_string().contains("s3cret"), "{error}");

    // Allowed any issuer, the application takes the risk, and the grant is made.
    let run = run_with(
        config().pre_registered(unbound.any_issuer()),
        start(Some(&challenge_with_prm())),
        &client_credentials_net(),
        Consent::Approve(None),
        None,
    );
    assert!(run.sent_token_request());
    assert_eq!(run.outcome().tokens.access_token().secret(), "cc");
}
