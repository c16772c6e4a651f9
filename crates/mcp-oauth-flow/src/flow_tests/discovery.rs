//! Discovery: metadata layouts, redirects, and refused or malformed
//! documents.

use super::*;

#[test]
fn root_prm_with_pathless_resource_and_path_issuer() {
    let issuer = format!("{AS}/tenant1");
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-protected-resource"),
            200,
            prm(RS, &issuer),
        )
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server/tenant1"),
            200,
            as_meta(&issuer),
        )
        .json(
            &format!("{issuer}/register"),
            201,
            json!({"client_id": "c"}),
        )
        .json(
            &format!("{issuer}/token"),
            200,
            json!({"access_token": "a", "token_type": "bearer"}),
        );
    let run = run_with(
        config(),
        start(Some("Bearer")),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent[..3],
        [
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {RS}/.well-known/oauth-protected-resource"),
            format!("GET {AS}/.well-known/oauth-authorization-server/tenant1"),
        ]
    );
    // Byte for byte as published: no trailing slash added.
    assert_eq!(run.authorize_param("resource").as_deref(), Some(RS));
    assert_eq!(run.form(5, "resource").as_deref(), Some(RS));
    assert_eq!(run.outcome().protected_resource.as_str(), format!("{RS}/"));
}

/// A path issuer named in the resource's metadata without the trailing `/` its own metadata
/// states (JumpCloud): the same tenant, so the flow goes on,
/// and from then on the issuer is the one the server states, for the credentials' binding
/// and the RFC 9207 `iss` it will send.
#[test]
fn a_path_issuer_stated_with_a_trailing_slash_is_the_one_named() {
    let named = format!("{AS}/tenant1");
    let stated = format!("{named}/");
    let mut meta = as_meta(&named);
    meta["issuer"] = stated.clone().into();
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-protected-resource"),
            200,
            prm(RS, &named),
        )
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server/tenant1"),
            200,
            meta,
        )
        .json(&format!("{named}/register"), 201, json!({"client_id": "c"}))
        .json(
            &format!("{named}/token"),
            200,
            json!({"access_token": "a", "token_type": "bearer"}),
        );
    let run = run_with(
        config(),
        start(Some("Bearer")),
        &net,
        Consent::Approve(None),
        None,
    );
    let outcome = run.outcome();
    assert_eq!(outcome.tokens.issuer(), stated);
}

/// The other way round: the resource's metadata names `…/tenant1/`, the server states
/// `…/tenant1`. Its metadata is looked for where RFC 8414 §3.1 puts it, the terminating `/`
/// removed, and found at the first try.
#[test]
fn a_path_issuer_named_with_a_trailing_slash_is_looked_up_without_it() {
    let named = format!("{AS}/tenant1/");
    let stated = format!("{AS}/tenant1");
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-protected-resource"),
            200,
            prm(RS, &named),
        )
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server/tenant1"),
            200,
            as_meta(&stated),
        )
        .json(
            &format!("{stated}/register"),
            201,
            json!({"client_id": "c"}),
        )
        .json(
            &format!("{stated}/token"),
            200,
            json!({"access_token": "a", "token_type": "bearer"}),
        );
    let run = run_with(
        config(),
        start(Some("Bearer")),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent[2],
        format!("GET {AS}/.well-known/oauth-authorization-server/tenant1")
    );
    assert_eq!(run.outcome().tokens.issuer(), stated);
}

#[test]
fn oidc_path_append_is_the_last_candidate() {
    let issuer = format!("{AS}/tenant1");
    let net = Net::default()
        .json(
            &format!("{RS}/custom.json"),
            200,
            prm(&format!("{RS}/mcp"), &issuer),
        )
        .json(
            &format!("{issuer}/.well-known/openid-configuration"),
            200,
            as_meta(&issuer),
        )
        .json(
            &format!("{issuer}/register"),
            201,
            json!({"client_id": "c"}),
        )
        .json(
            &format!("{issuer}/token"),
            200,
            json!({"access_token": "a"}),
        );
    let challenge = format!(r#"Bearer resource_metadata="{RS}/custom.json""#);
    let run = run_with(
        config(),
        start(Some(&challenge)),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent[..4],
        [
            format!("GET {RS}/custom.json"),
            format!("GET {AS}/.well-known/oauth-authorization-server/tenant1"),
            format!("GET {AS}/.well-known/openid-configuration/tenant1"),
            format!("GET {issuer}/.well-known/openid-configuration"),
        ]
    );
    run.outcome();
}

#[test]
fn resource_mismatch_stops_before_authorization() {
    let net = std_net().json(
        &format!("{RS}/.well-known/oauth-protected-resource/mcp"),
        200,
        prm("https://evil.example.com/mcp", AS),
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::ResourceMismatch);
    assert_eq!(run.sent.len(), 1);
    assert!(run.authorize_url.is_none());
}

#[test]
fn metadata_issuer_mismatch_uses_no_endpoint() {
    let mut meta = as_meta(AS);
    meta["issuer"] = "https://attacker.example.com".into();
    let net = std_net().json(
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
    assert_eq!(run.failed(), ErrorKind::IssuerMismatch);
    assert_eq!(run.sent.len(), 2);
}

#[test]
fn redirects_are_followed_within_limits() {
    let prm_url = format!("{RS}/.well-known/oauth-protected-resource/mcp");
    let moved = format!("{RS}/moved.json");
    let net = std_net()
        .raw(&prm_url, 301, vec![("location", "/moved.json".into())], "")
        .json(&moved, 200, prm(&format!("{RS}/mcp"), AS));
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent[..2],
        [format!("GET {prm_url}"), format!("GET {moved}")]
    );
    run.outcome();

    let loop_net = std_net()
        .raw(&prm_url, 302, vec![("location", moved.clone())], "")
        .raw(&moved, 302, vec![("location", prm_url.clone())], "");
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &loop_net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::RedirectLimit);

    // A cross-origin redirect is not followed; the next candidate is tried.
    let cross = std_net().raw(
        &prm_url,
        302,
        vec![("location", "https://elsewhere.example.com/prm".into())],
        "",
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &cross,
        Consent::Approve(None),
        None,
    );
    assert_eq!(
        run.sent[1],
        format!("GET {RS}/.well-known/oauth-protected-resource")
    );
}

#[test]
fn insecure_urls_are_refused() {
    let net = std_net().json(
        &format!("{RS}/.well-known/oauth-protected-resource/mcp"),
        200,
        prm(&format!("{RS}/mcp"), "http://as.example.com"),
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::InsecureUrl);
    let run = run_with(
        config(),
        start(Some(
            r#"Bearer resource_metadata="http://evil.example.com/prm""#,
        )),
        &std_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::InsecureUrl);
    assert!(run.sent.is_empty());
    let mut meta = as_meta(AS);
    meta["token_endpoint"] = "http://as.example.com/token".into();
    let net = std_net().json(
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
    assert_eq!(run.failed(), ErrorKind::InsecureUrl);
}

#[test]
fn malformed_documents() {
    let prm_url = format!("{RS}/.well-known/oauth-protected-resource/mcp");
    let net = std_net().raw(&prm_url, 200, vec![], "<html>");
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::InvalidResourceMetadata);
    let net = std_net().json(&prm_url, 200, json!({"resource": format!("{RS}/mcp")}));
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::InvalidResourceMetadata);

    let net = std_net()
        .raw(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            vec![],
            "not json",
        )
        .raw(
            &format!("{AS}/.well-known/openid-configuration"),
            200,
            vec![],
            "{\"issuer\": 5}",
        );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::InvalidAuthorizationServerMetadata);
    assert_eq!(run.sent.len(), 3);

    let mut meta = as_meta(AS);
    meta.as_object_mut().unwrap().remove("token_endpoint");
    let net = std_net().json(
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
    assert_eq!(run.failed(), ErrorKind::InvalidAuthorizationServerMetadata);

    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        404,
        json!({}),
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::AuthorizationServerMetadataNotFound);
}

#[test]
fn server_errors_are_transient() {
    let net = std_net().raw(
        &format!("{RS}/.well-known/oauth-protected-resource/mcp"),
        503,
        vec![],
        "",
    );
    let run = run_with(
        config(),
        start(Some(&challenge_with_prm())),
        &net,
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::UnexpectedStatus);
    match &run.end {
        Action::Failed(e) => assert!(e.is_transient()),
        _ => unreachable!(),
    }
}

#[test]
fn an_over_long_url_from_the_network_is_an_error_not_a_panic() {
    let long = format!(r#"Bearer resource_metadata="{RS}/{}""#, "a".repeat(70_000));
    let run = run_with(
        config(),
        start(Some(&long)),
        &std_net(),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.failed(), ErrorKind::InsecureUrl);
    let mut meta = as_meta(AS);
    meta["token_endpoint"] = format!("{AS}/{}", "t".repeat(70_000)).into();
    let net = std_net().json(
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
    assert_eq!(run.failed(), ErrorKind::InsecureUrl);
}

/// The flow keeps the report of what it fetched while it runs (a UI can show it before the
/// flow ends), and a failure takes the report with it.
#[test]
fn the_report_grows_with_each_response_and_rides_on_the_failure() {
    let first_response = |prm_body: Value| {
        let mut flow = Flow::new(
            Arc::new(config()),
            start(Some(&challenge_with_prm())),
            FlowSecrets::from_entropy([9; 32], [8; 32]),
            now(),
        );
        assert!(flow.report().steps().is_empty());
        let Some(Action::Send(sub)) = flow.poll_action() else {
            panic!("the flow starts with the PRM request")
        };
        let prm_url = sub.request.uri().to_string();
        let net = std_net().json(&prm_url, 200, prm_body);
        flow.handle_response(net.answer(&sub.request), now());
        (flow, prm_url)
    };

    let (flow, prm_url) = first_response(prm(&format!("{RS}/mcp"), AS));
    assert_eq!(flow.report().steps().len(), 1);
    assert_eq!(flow.report().steps()[0].url, prm_url);
    assert_eq!(flow.report().steps()[0].status, Some(200));

    let (mut flow, prm_url) = first_response(prm("https://evil.example.com/mcp", AS));
    let Some(Action::Failed(err)) = flow.poll_action() else {
        panic!("a resource mismatch ends the flow")
    };
    assert_eq!(err.kind(), ErrorKind::ResourceMismatch);
    assert_eq!(
        err.report().map(|r| r.steps()[0].url.clone()),
        Some(prm_url)
    );
}

/// A resource metadata location answering in a passing state (408, 421, 425) is no absence:
/// the other locations are tried, and if none serves the document the flow stops as on a 429
/// or a 5xx, to be tried again, rather than log in the 2025-03-26 way.
#[test]
fn a_passing_4xx_at_the_resource_metadata_is_no_absence() {
    let prm_url = format!("{RS}/.well-known/oauth-protected-resource/mcp");
    for status in [408, 421, 425, 429] {
        let net = Net::default().json(&prm_url, status, json!({})).json(
            &format!("{RS}/.well-known/oauth-authorization-server"),
            200,
            as_meta(RS),
        );
        let run = run_with(
            config(),
            start(Some("Bearer")),
            &net,
            Consent::Approve(None),
            None,
        );
        assert_eq!(run.failed(), ErrorKind::UnexpectedStatus, "{status}");
        let Action::Failed(error) = &run.end else {
            unreachable!()
        };
        assert!(error.is_transient(), "{status}");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
        // 429 stops at once; the others try the root location too, and nothing else.
        let tried = if status == 429 { 1 } else { 2 };
        assert_eq!(run.sent.len(), tried, "{status}: {:?}", run.sent);
        assert!(run
            .sent
            .iter()
            .all(|s| s.contains("oauth-protected-resource")));
    }
    // The advertised location misdirected (421), the well-known one serves the document: used.
    let net = std_net().json(&format!("{RS}/elsewhere/prm"), 421, json!({}));
    let challenge = format!(r#"Bearer resource_metadata="{RS}/elsewhere/prm""#);
    let run = run_with(
        config(),
        start(Some(&challenge)),
        &net,
        Consent::Approve(None),
        None,
    );
    assert!(run.authorize_url.is_some(), "{:?}", run.sent);
}
