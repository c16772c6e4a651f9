//! Several authorization servers in the resource metadata (RFC 9728 §7.6): tried in order until
//! one's metadata validates, or as the application's chooser says; credentials stay per issuer.

use super::*;

const AS2: &str = "http://localhost:5000";

fn two_servers() -> Value {
    json!({"resource": format!("{RS}/mcp"), "authorization_servers": [AS, AS2]})
}

/// The resource lists `AS` then `AS2`; `AS2` is complete, `AS` serves `first`.
fn net_with_first(first: Option<Value>) -> Net {
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-protected-resource/mcp"),
            200,
            two_servers(),
        )
        .json(
            &format!("{AS2}/.well-known/oauth-authorization-server"),
            200,
            as_meta(AS2),
        )
        .json(
            &format!("{AS2}/register"),
            201,
            json!({"client_id": "c2", "token_endpoint_auth_method": "none"}),
        )
        .json(
            &format!("{AS2}/token"),
            200,
            json!({"access_token": "at-2", "token_type": "Bearer"}),
        );
    match first {
        Some(meta) => net.json(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        ),
        None => net,
    }
}

fn report_of(run: &Run) -> String {
    match &run.end {
        Action::Complete(o) => o.report.to_string(),
        Action::Failed(e) => e.report().map(ToString::to_string).unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_first_server_with_no_metadata_is_passed_over_for_the_second() {
    let run = run_with(
        config(),
        start(None),
        &net_with_first(None),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.outcome().tokens.issuer(), AS2);
    assert_eq!(
        run.sent[1..4],
        [
            format!("GET {AS}/.well-known/oauth-authorization-server"),
            format!("GET {AS}/.well-known/openid-configuration"),
            format!("GET {AS2}/.well-known/oauth-authorization-server"),
        ]
    );
    // Credentials belong to the server used: the stored client is looked up, and registered,
    // for the second issuer only.
    assert_eq!(run.loaded, [AS2]);
    assert_eq!(run.saved.len(), 1);
    assert_eq!(run.saved[0].issuer, AS2);
    let report = report_of(&run);
    assert!(
        report.contains(&format!(
            "authorization servers {AS}, {AS2} (tried in this order)"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("{AS}  (passed over: ")),
        "{report}"
    );
    assert!(report.contains(&format!("used: issuer {AS2}")), "{report}");
}

#[test]
fn a_first_server_that_does_not_answer_is_passed_over() {
    let net = net_with_first(Some(as_meta(AS))).down(AS);
    let run = run_with(config(), start(None), &net, Consent::Approve(None), None);
    assert_eq!(run.outcome().tokens.issuer(), AS2);
    let report = report_of(&run);
    assert!(
        report.contains("passed over: connection refused"),
        "{report}"
    );
    // Elsewhere a send failure still ends the flow: here, the second server's token endpoint.
    let net = net_with_first(None).down(&format!("{AS2}/token"));
    let run = run_with(config(), start(None), &net, Consent::Approve(None), None);
    assert_eq!(run.failed(), ErrorKind::Transport);
}

#[test]
fn a_first_server_whose_metadata_fails_its_checks_is_passed_over() {
    // Another issuer (RFC 8414 §3.3), then one without its required token endpoint.
    for broken in [
        as_meta("http://localhost:4444"),
        json!({"issuer": AS, "authorization_endpoint": format!("{AS}/authorize")}),
    ] {
        let run = run_with(
            config(),
            start(None),
            &net_with_first(Some(broken.clone())),
            Consent::Approve(None),
            None,
        );
        assert_eq!(run.outcome().tokens.issuer(), AS2, "{broken}");
        assert!(!run
            .sent
            .iter()
            .any(|s| s.starts_with(&format!("GET {AS}/register"))));
    }
}

#[test]
fn every_server_broken_names_each_one() {
    let net = Net::default()
        .json(
            &format!("{RS}/.well-known/oauth-protected-resource/mcp"),
            200,
            two_servers(),
        )
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            as_meta("http://localhost:4444"),
        );
    let run = run_with(config(), start(None), &net, Consent::Approve(None), None);
    assert_eq!(run.failed(), ErrorKind::NoUsableAuthorizationServer);
    let Action::Failed(error) = &run.end else {
        unreachable!()
    };
    let text = error.to_string();
    assert!(
        text.contains(&format!("{AS}: ")) && text.contains("localhost:4444"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{AS2}: no authorization server metadata")),
        "{text}"
    );
    assert!(!run
        .sent
        .iter()
        .any(|s| s.contains("/register") || s.starts_with("AUTHORIZE")));
    let report = report_of(&run);
    assert!(
        report.contains(&format!("{AS}  (passed over: ")),
        "{report}"
    );
}

#[test]
fn a_chooser_picks_the_second_and_the_first_is_never_fetched() {
    let chooser = AuthorizationServerChooser::new(|listed: &[url::Url]| {
        assert_eq!(listed.len(), 2, "given every listed server");
        vec![listed[1].clone()]
    });
    let run = run_with(
        config().choose_authorization_server(chooser),
        start(None),
        &net_with_first(Some(as_meta(AS))),
        Consent::Approve(None),
        None,
    );
    assert_eq!(run.outcome().tokens.issuer(), AS2);
    assert!(
        !run.sent.iter().any(|s| s.contains("localhost:4000")),
        "{:?}",
        run.sent
    );
    let report = report_of(&run);
    assert!(
        report.contains(&format!("{AS}  (passed over: not chosen")),
        "{report}"
    );
}

#[test]
fn tokens_of_the_second_listed_server_are_refreshed_there() {
    let held = TokenSet::new("old", TokenType::Bearer, AS2, "c2")
        .with_refresh_token(Some(oauth2::RefreshToken::new("rt".into())))
        .with_token_endpoint(Some(format!("{AS2}/token")), Some(ClientAuthMethod::None));
    let start = start(None).held(Some(held), None);
    let run = run_with(
        config(),
        start,
        &net_with_first(Some(as_meta(AS))),
        Consent::Approve(None),
        None,
    );
    assert!(
        run.outcome().refreshed,
        "kept, not dropped as another server's"
    );
    assert_eq!(run.sent.last().unwrap(), &format!("POST {AS2}/token"));
}
