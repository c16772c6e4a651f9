//! The 2025-03-26 path: a server that publishes no protected resource metadata, its
//! authorization server at its origin (or the default endpoints there), and when a flow may
//! and may not take that path.

use super::*;

#[test]
fn legacy_metadata_at_origin_accepts_its_issuer() {
    let mut meta = as_meta(&format!("{RS}/oauth"));
    meta["authorization_endpoint"] = format!("{RS}/oauth/authorize").into();
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        )
        .json(
            &format!("{RS}/oauth/register"),
            201,
            json!({"client_id": "c"}),
        )
        .json(
            &format!("{RS}/oauth/token"),
            200,
            json!({"access_token": "a"}),
        );
    let run = run_with(
        config(),
        start(Some("Bearer")),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent,
        [
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {RS}/.well-known/oauth-protected-resource"),
            format!("GET {RS}/.well-known/oauth-authorization-server"),
            format!("POST {RS}/oauth/register"),
            format!("AUTHORIZE {RS}/oauth/authorize"),
            format!("POST {RS}/oauth/token"),
        ]
    );
    let outcome = run.outcome();
    // The issuer as served is not the one derived from the server, so credentials are bound to
    // the server's origin, not to whatever the metadata claims.
    assert_eq!(outcome.tokens.issuer(), RS);
    assert_eq!(run.saved[0].issuer, RS);
    assert_eq!(run.loaded, [RS]);
    assert_eq!(outcome.tokens.resource(), None);
    assert_eq!(outcome.protected_resource.as_str(), format!("{RS}/"));
    assert_eq!(run.authorize_param("resource"), None);
}

#[test]
fn a_legacy_server_cannot_claim_another_issuers_credentials() {
    // A 2025-03-26-style server publishes metadata at its own origin claiming a victim's issuer,
    // with endpoints of its own: it must get neither the victim's pre-registered client nor a
    // registration stored for the victim.
    let victim = "https://auth.victim.example";
    let mut meta = as_meta(victim);
    for (field, path) in [
        ("authorization_endpoint", "authorize"),
        ("token_endpoint", "token"),
        ("registration_endpoint", "register"),
    ] {
        meta[field] = format!("{RS}/{path}").into();
    }
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        )
        .json(
            &format!("{RS}/register"),
            201,
            json!({"client_id": "evil-registration"}),
        )
        .json(&format!("{RS}/token"), 200, json!({"access_token": "a"}));
    let cfg = config().pre_registered(
        PreRegisteredClient::new("victim-client")
            .with_secret("s3cret")
            .for_issuer(victim),
    );
    let stored_for_victim = ClientRegistration {
        issuer: victim.into(),
        client_id: "victim-dcr".into(),
        client_secret: Some(ClientSecret::new("dcr-secret".into())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_post".into()),
        redirect_uris: vec![],
        grant_types: Vec::new(),
    };
    let run = run_with(
        cfg,
        start(Some("Bearer")),
        &net,
        Consent::Approve(None),
        Some(stored_for_victim),
    );
    assert_eq!(
        run.loaded,
        [RS],
        "the store is asked for the server's own origin"
    );
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("evil-registration")
    );
    for body in &run.bodies {
        let text = String::from_utf8_lossy(body);
        assert!(
            !text.contains("s3cret") && !text.contains("dcr-secret") && !text.contains("victim-"),
            "{text}"
        );
    }
    assert_eq!(
        run.saved[0].issuer, RS,
        "its registration is not filed under the victim"
    );
    assert_eq!(run.outcome().tokens.issuer(), RS);
}

#[test]
fn legacy_endpoint_fallback() {
    let net = Net::default()
        .json(&format!("{RS}/register"), 201, json!({"client_id": "c"}))
        .json(&format!("{RS}/token"), 200, json!({"access_token": "a"}));
    let run = run_with(config(), start(None), &net, Consent::Approve(None), None);
    assert_eq!(
        run.sent[2..],
        [
            format!("GET {RS}/.well-known/oauth-authorization-server"),
            format!("GET {RS}/.well-known/openid-configuration"),
            format!("POST {RS}/register"),
            format!("AUTHORIZE {RS}/authorize"),
            format!("POST {RS}/token"),
        ]
    );
    assert_eq!(
        run.authorize_param("code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(run.outcome().tokens.issuer(), RS);
}

/// A server whose challenge names its resource metadata is no 2025-03-26 server: when the
/// metadata is at none of its locations, the flow fails rather than log in the old way (no
/// resource indicator, tokens for the whole origin), even with authorization server metadata
/// at the server's origin.
#[test]
fn an_advertised_resource_metadata_missing_is_no_way_down_to_the_legacy_path() {
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-authorization-server"),
            200,
            as_meta(RS),
        )
        .json(&format!("{RS}/register"), 201, json!({"client_id": "c"}))
        .json(&format!("{RS}/token"), 200, json!({"access_token": "a"}));
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::ResourceMetadataNotFound);
    assert!(run.authorize_url.is_none());
    assert!(
        run.sent
            .iter()
            .all(|s| s.contains("oauth-protected-resource")),
        "{:?}",
        run.sent
    );
    // Without it in the challenge, the same server is a 2025-03-26 one, as before.
    let run = run_with(
        config(),
        start(Some("Bearer")),
        &net,
        Consent::Approve(None),
        None,
    );
    assert!(run.authorize_url.is_some(), "{:?}", run.sent);
}

/// On the 2025-03-26 path, metadata the server publishes but that does not validate is an
/// error, not a reason to guess `/authorize`, `/token` and `/register` (which may not be its
/// endpoints at all); a page that is no JSON document (a web app's catch-all HTML) still leaves
/// the defaults.
#[test]
fn a_broken_metadata_document_is_not_replaced_by_the_legacy_defaults() {
    let mut broken = as_meta(RS);
    broken["code_challenge_methods_supported"] = json!("S256");
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-authorization-server"),
            200,
            broken,
        )
        .json(&format!("{RS}/register"), 201, json!({"client_id": "c"}))
        .json(&format!("{RS}/token"), 200, json!({"access_token": "a"}));
    let run = run_with(config(), start(None), &net, Consent::Approve(None), None);
    assert_eq!(
        run.failed(),
        ErrorKind::InvalidAuthorizationServerMetadata,
        "{:?}",
        run.sent
    );
    assert!(run.authorize_url.is_none());

    let page = Net::default()
        .raw(
            &format!("{RS}/.well-known/oauth-authorization-server"),
            200,
            vec![("content-type", "text/html".into())],
            "<!doctype html><html><body>app</body></html>",
        )
        .json(&format!("{RS}/register"), 201, json!({"client_id": "c"}))
        .json(&format!("{RS}/token"), 200, json!({"access_token": "a"}));
    let run = run_with(config(), start(None), &page, Consent::Approve(None), None);
    assert_eq!(
        run.authorize_url.map(|u| u.path().to_owned()).as_deref(),
        Some("/authorize")
    );
    // Nor does an application's answer to every path that is JSON but no metadata.
    for body in [json!({}), json!({"status": "ok"})] {
        let catch_all = Net::default()
            .json(
                &format!("{RS}/.well-known/oauth-authorization-server"),
                200,
                body.clone(),
            )
            .json(&format!("{RS}/register"), 201, json!({"client_id": "c"}));
        let run = run_with(
            config(),
            start(None),
            &catch_all,
            Consent::Approve(None),
            None,
        );
        assert!(run.authorize_url.is_some(), "{body}: {:?}", run.sent);
    }
}

/// A `401` from a 2025-03-26 server (no resource metadata) to refreshable tokens of its own is
/// answered with a refresh, as on the other path, not a new sign-in; tokens of another issuer
/// are not refreshed there.
#[test]
fn a_2025_03_26_servers_401_to_refreshable_tokens_refreshes_them() {
    let held = |issuer: &str| {
        TokenSet::new("at-old", TokenType::Bearer, issuer, "c")
            .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
            .with_token_endpoint(Some(format!("{RS}/token")), Some(ClientAuthMethod::None))
    };
    let net = Net::default()
        .json(
            &format!("{RS}/token"),
            200,
            json!({"access_token": "at-new", "token_type": "Bearer", "refresh_token": "rt-2"}),
        )
        .json(&format!("{RS}/register"), 201, json!({"client_id": "c"}));
    let run = run_with(
        config(),
        start(Some("Bearer")).held(Some(held(RS)), None),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent,
        [
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {RS}/.well-known/oauth-protected-resource"),
            format!("POST {RS}/token"),
        ]
    );
    assert_eq!(run.form(2, "grant_type").as_deref(), Some("refresh_token"));
    assert!(run.outcome().refreshed);
    assert_eq!(run.outcome().tokens.access_token().secret(), "at-new");

    // Tokens another issuer gave: not refreshed here; a sign-in the 2025-03-26 way.
    let run = run_with(
        config(),
        start(Some("Bearer")).held(Some(held("https://other.example")), None),
        &net,
        Consent::Approve(None),
        None,
    );
    assert!(run.authorize_url.is_some(), "{:?}", run.sent);
}

/// Tokens signed in for the 2025-03-26 way (no `resource`, the server's whole origin) meet the
/// same server publishing resource metadata now, and checking tokens' audience: its `401` is
/// answered with a refresh that asks for the resource it names (RFC 8707 §2.2; without one the
/// new token would be refused again, on every request). The new tokens stay where the held
/// ones were kept (see `refreshed_protected_resource`).
#[test]
fn tokens_of_the_2025_03_26_path_are_refreshed_for_the_resource_a_server_names_later() {
    let held = TokenSet::new("at-old", TokenType::Bearer, AS, "c")
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
        .with_token_endpoint(Some(format!("{AS}/token")), Some(ClientAuthMethod::None));
    let origin = url::Url::parse(&format!("{RS}/")).unwrap();
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())).held(Some(held), Some(origin.clone())),
        &std_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent,
        [
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("POST {AS}/token"),
        ]
    );
    assert_eq!(run.form(1, "grant_type").as_deref(), Some("refresh_token"));
    let named = format!("{RS}/mcp");
    assert_eq!(run.form(1, "resource").as_deref(), Some(named.as_str()));
    let outcome = run.outcome();
    assert!(outcome.refreshed);
    assert_eq!(outcome.tokens.resource(), Some(named.as_str()));
    assert_eq!(outcome.protected_resource, origin);
}
