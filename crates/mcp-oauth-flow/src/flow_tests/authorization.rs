//! The authorization leg: the happy path, PKCE, `iss` and `state` checks, token responses,
//! scopes, transitions, and the termination property.

use super::*;

#[test]
fn happy_path_sequence_and_parameters() {
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent,
        [
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {AS}/.well-known/oauth-authorization-server"),
            format!("POST {AS}/register"),
            format!("AUTHORIZE {AS}/authorize"),
            format!("POST {AS}/token"),
        ]
    );
    let outcome = run.outcome();
    assert_eq!(outcome.tokens.access_token().secret(), "at-1");
    assert_eq!(outcome.tokens.issuer(), AS);
    assert_eq!(outcome.tokens.client_id(), "dcr-client");
    assert_eq!(
        outcome.tokens.expires_at(),
        Some(now() + Duration::from_secs(3600))
    );
    assert_eq!(outcome.protected_resource.as_str(), format!("{RS}/mcp"));
    assert_eq!(run.saved.len(), 1);
    assert_eq!(run.saved[0].issuer, AS);
    assert_eq!(run.loaded, [AS]);

    // Registration body: SEP-837 application_type, refresh_token grant.
    let reg: Value = serde_json::from_slice(&run.bodies[2]).unwrap();
    assert_eq!(reg["application_type"], "native");
    assert_eq!(
        reg["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        reg["redirect_uris"],
        json!(["http://localhost:3000/callback"])
    );
    // Authorization request: PKCE S256, resource verbatim, no scope.
    assert_eq!(
        run.authorize_param("code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(run.authorize_param("resource"), Some(format!("{RS}/mcp")));
    assert_eq!(run.authorize_param("scope"), None);
    assert_eq!(
        run.authorize_param("client_id").as_deref(),
        Some("dcr-client")
    );
    // Token request: the verifier matches the challenge; resource on both legs.
    let verifier = run.form(4, "code_verifier").unwrap();
    let expected = oauth2::PkceCodeChallenge::from_code_verifier_sha256(
        &oauth2::PkceCodeVerifier::new(verifier),
    );
    assert_eq!(
        run.authorize_param("code_challenge").as_deref(),
        Some(expected.as_str())
    );
    assert_eq!(run.form(4, "resource"), Some(format!("{RS}/mcp")));
    assert_eq!(run.form(4, "client_id").as_deref(), Some("dcr-client"));
    assert_eq!(run.form(4, "code").as_deref(), Some("the-code"));
    // The report lists every URL.
    assert_eq!(outcome.report.steps().len(), 4);
}

#[test]
fn pkce_must_be_advertised_unless_opted_out() {
    let mut meta = as_meta(AS);
    meta.as_object_mut()
        .unwrap()
        .remove("code_challenge_methods_supported");
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta.clone(),
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::PkceNotSupported);
    let run = run_with(
        config().pkce_policy(PkcePolicy::AssumeWhenAbsent),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    run.outcome();
    // Listing only `plain` is refused even with the opt-out.
    meta["code_challenge_methods_supported"] = json!(["plain"]);
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    );
    let run = run_with(
        config().pkce_policy(PkcePolicy::AssumeWhenAbsent),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::PkceNotSupported);
}

#[test]
fn iss_rules_gate_the_token_request() {
    let mut meta = as_meta(AS);
    meta["authorization_response_iss_parameter_supported"] = json!(true);
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    );
    let go = |net: &Net, iss: Option<&str>| {
        run_with(
            config(),
            start(Some(&challenge_with_prm())),
            net,
            Consent::Approve(iss.map(str::to_owned)),
            None,
        )
    };

    assert!(go(&net, Some(AS)).sent_token_request());
    for bad in [
        None,
        Some("https://evil.example.com"),
        Some("http://localhost:4000/"),
    ] {
        let run = go(&net, bad);
        assert_eq!(run.failed(), ErrorKind::IssuerParameterMismatch, "{bad:?}");
        assert!(!run.sent_token_request());
    }
    // Not advertised: absent is fine, a wrong one is still refused.
    assert!(go(&std_net(), None).sent_token_request());
    let run = go(&std_net(), Some("https://evil.example.com"));
    assert_eq!(run.failed(), ErrorKind::IssuerParameterMismatch);
    assert!(!run.sent_token_request());
}

#[test]
fn state_mismatch_gates_the_token_request() {
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Raw("code=c&state=forged".into()),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::StateMismatch);
    assert!(!run.sent_token_request());
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &std_net(),
        Consent::Raw("error=access_denied&state={state}".into()),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::AuthorizationDenied);
}

#[test]
fn bad_token_responses() {
    let net = std_net().json(&format!("{AS}/token"), 200, json!({"token_type": "Bearer"}));
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::InvalidTokenResponse);
    // The registration was still handed out to be stored: nothing is lost.
    assert_eq!(run.saved.len(), 1);
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
        None,
    );
    assert_eq!(run.failed(), ErrorKind::TokenRejected);
}

#[test]
fn scope_choice_step_up_union_and_offline_access() {
    let mut net_prm = prm(&format!("{RS}/mcp"), AS);
    net_prm["scopes_supported"] = json!(["mcp:read", "mcp:write"]);
    let mut meta = as_meta(AS);
    meta["scopes_supported"] = json!(["mcp:read", "mcp:write", "mcp:admin", "offline_access"]);
    let net = std_net()
        .json(
            &format!("{RS}/.well-known/oauth-protected-resource/mcp"),
            200,
            net_prm,
        )
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        );

    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.authorize_param("scope").as_deref(),
        Some("mcp:read mcp:write offline_access")
    );

    let c = format!(
        r#"Bearer error="insufficient_scope", scope="mcp:admin", resource_metadata="{RS}/.well-known/oauth-protected-resource/mcp""#
    );
    let held = TokenSet::new("old", TokenType::Bearer, AS, "dcr-client")
        .with_scopes(Some(Scopes::parse("mcp:read")));
    let s = start(Some(&c))
        .trigger(Trigger::InsufficientScope)
        .held(Some(held), None);
    let run = run_with(config(), s, &net, Consent::Approve(None), None);
    assert_eq!(
        run.authorize_param("scope").as_deref(),
        Some("mcp:read mcp:admin offline_access")
    );
    assert_eq!(
        run.outcome().tokens.scopes().unwrap().to_string(),
        "mcp:read mcp:admin offline_access"
    );
}

/// A refresh cannot widen a grant (RFC 6749 §6): a step-up authorizes afresh even when the held
/// tokens could be refreshed, and a 401 with the same tokens refreshes instead.
#[test]
fn step_up_authorizes_even_with_a_refreshable_token() {
    let net = std_net();
    let c = format!(
        r#"Bearer error="insufficient_scope", scope="mcp:admin", resource_metadata="{RS}/.well-known/oauth-protected-resource/mcp""#
    );
    let held = || {
        TokenSet::new("old", TokenType::Bearer, AS, "dcr-client")
            .with_scopes(Some(Scopes::parse("mcp:read")))
            .with_refresh_token(Some(RefreshToken::new("rt".into())))
            .with_token_endpoint(Some(format!("{AS}/token")), None)
    };
    // The registration the held tokens were issued to, so a refresh could really happen.
    let stored = || {
        Some(ClientRegistration {
            issuer: AS.into(),
            client_id: "dcr-client".into(),
            client_secret: None,
            client_secret_expires_at: None,
            token_endpoint_auth_method: Some("none".into()),
            redirect_uris: vec!["http://localhost:3000/callback".into()],
            grant_types: Vec::new(),
        })
    };
    let step_up = start(Some(&c))
        .trigger(Trigger::InsufficientScope)
        .held(Some(held()), None);
    let run = run_with(config(), step_up, &net, Consent::Approve(None), stored());
    let first_token = run.sent.iter().position(|s| s.ends_with("/token")).unwrap();
    assert!(
        run.sent[..first_token]
            .iter()
            .any(|s| s.starts_with("AUTHORIZE")),
        "{:?}",
        run.sent
    );
    assert_eq!(
        run.form(first_token, "grant_type").as_deref(),
        Some("authorization_code")
    );

    let unauthorized = start(Some(&challenge_with_prm())).held(Some(held()), None);
    let run = run_with(
        config(),
        unauthorized,
        &net,
        Consent::Approve(None),
        stored(),
    );
    let first_token = run.sent.iter().position(|s| s.ends_with("/token")).unwrap();
    assert_eq!(
        run.form(first_token, "grant_type").as_deref(),
        Some("refresh_token")
    );
    assert!(
        !run.sent.iter().any(|s| s.starts_with("AUTHORIZE")),
        "{:?}",
        run.sent
    );
}

#[test]
fn inputs_in_the_wrong_state_are_typed_errors() {
    let mut flow = Flow::new(
        Arc::new(config()),
        start(None),
        FlowSecrets::from_entropy([0; 32], [0; 32]),
        now(),
    );
    let _ = flow.poll_action();
    // The state it waits in shows in `Debug` and in the error, for whoever reads the log.
    assert!(
        format!("{flow:?}").contains("ExpectResourceMetadata"),
        "{flow:?}"
    );
    flow.handle_authorization_response(AuthorizationResponse::default());
    match flow.poll_action() {
        Some(Action::Failed(e)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidTransition);
            assert!(
                e.to_string().contains("in state ExpectResourceMetadata"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    flow.handle_stored_client(None);
    assert!(matches!(flow.poll_action(), Some(Action::Failed(_))));
}

proptest::proptest! {
    /// Whatever the network answers, the flow ends in Complete or Failed within a bounded
    /// number of steps and never panics.
    #[test]
    fn arbitrary_responses_always_terminate(
        answers in proptest::collection::vec((proptest::sample::select(vec![200u16, 201, 301, 302, 400, 401, 404, 500]), proptest::sample::select(vec![
            "".to_string(), "{}".to_string(), "not json".to_string(),
            prm(&format!("{RS}/mcp"), AS).to_string(), as_meta(AS).to_string(),
            json!({"client_id": "c"}).to_string(), json!({"access_token": "a"}).to_string(),
        ])), 1..40)
    ) {
        let mut flow = Flow::new(Arc::new(config()), start(None), FlowSecrets::from_entropy([1; 32], [2; 32]), now());
        let mut i = 0;
        let mut steps = 0;
        loop {
            steps += 1;
            proptest::prop_assert!(steps < 200);
            match flow.poll_action() {
                Some(Action::Send(_)) => {
                    let (status, body) = answers[i % answers.len()].clone();
                    i += 1;
                    let resp = http::Response::builder().status(status).header("location", "/x").body(Bytes::from(body)).unwrap();
                    flow.handle_response(resp, now());
                }
                Some(Action::LoadClient { .. }) => flow.handle_stored_client(None),
                Some(Action::ObtainAssertion(_)) => flow.handle_assertion(Ok("a.b.c".into()), now()),
                Some(Action::SaveClient(_)) | Some(Action::DropTokens) | Some(Action::DropClient { .. }) => {}
                Some(Action::ShowUserCode(_)) => {}
                Some(Action::PollAfter(_)) => flow.handle_poll_due(now()),
                Some(Action::Authorize(req)) => {
                    let q = format!("code=c&state={}", req.state().secret());
                    flow.handle_authorization_response(AuthorizationResponse::from_query(&q));
                }
                Some(Action::Complete(_)) | Some(Action::Failed(_)) => break,
                None => proptest::prop_assert!(false, "stalled"),
            }
        }
    }
}
