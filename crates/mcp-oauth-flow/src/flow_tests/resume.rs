//! A flow stopped at the consent step, written out as a `PendingAuthorization` and resumed
//! elsewhere (another process of a web app), exchanges the code as the original would have.

use super::*;
use crate::server::ServerOptions;

/// Runs a flow until it asks for consent and returns it with the authorization URL. Every
/// sub-request is answered from `net`; a stored-client lookup finds nothing.
fn until_consent(config: &Arc<ClientConfig>, net: &Net) -> (Flow, url::Url) {
    until_consent_with(config, net, None)
}

/// As [`until_consent`], the stored-client lookup finding `stored`; no registration may be
/// saved before consent.
fn until_consent_with(
    config: &Arc<ClientConfig>,
    net: &Net,
    stored: Option<ClientRegistration>,
) -> (Flow, url::Url) {
    let saves = stored.is_none();
    let mut flow = Flow::new(
        Arc::clone(config),
        start(None),
        FlowSecrets::from_entropy([9; 32], [8; 32]),
        now(),
    );
    loop {
        match flow.poll_action() {
            Some(Action::Send(sub)) => flow.handle_response(net.answer(&sub.request), now()),
            Some(Action::LoadClient { .. }) => flow.handle_stored_client(stored.clone()),
            Some(Action::SaveClient(_)) if saves => {}
            Some(Action::Authorize(request)) => return (flow, request.url().clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn param(url: &url::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

fn form(body: &Bytes, name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[test]
fn a_resumed_flow_exchanges_the_code_with_the_original_verifier() {
    let config = Arc::new(config());
    let (flow, url) = until_consent(&config, &std_net());
    let json = serde_json::to_string(&flow.pending_authorization().unwrap()).unwrap();
    drop(flow);

    let pending: PendingAuthorization = serde_json::from_str(&json).unwrap();
    let mut resumed = Flow::resume(Arc::clone(&config), pending, now()).unwrap();
    assert!(resumed.poll_action().is_none(), "it waits for the callback");
    let query = format!("code=the-code&state={}&iss={AS}", param(&url, "state"));
    resumed.handle_authorization_response_at(AuthorizationResponse::from_query(&query), now());
    let Some(Action::Send(sub)) = resumed.poll_action() else {
        panic!("no token request")
    };
    assert_eq!(sub.request.uri().to_string(), format!("{AS}/token"));
    let body = sub.request.body();
    // The verifier whose S256 challenge the authorization request carried (RFC 7636 §4.6).
    let verifier = form(body, "code_verifier").unwrap();
    let challenge = Pkce::from_entropy([8; 32]);
    assert_eq!(verifier, *challenge.verifier().secret());
    assert_eq!(param(&url, "code_challenge"), challenge.challenge());
    assert_eq!(form(body, "code").as_deref(), Some("the-code"));
    assert_eq!(form(body, "client_id").as_deref(), Some("dcr-client"));
    assert_eq!(form(body, "resource"), Some(format!("{RS}/mcp")));
    assert_eq!(
        form(body, "redirect_uri").as_deref(),
        Some("http://localhost:3000/callback")
    );

    resumed.handle_response(std_net().answer(&sub.request), now());
    let Some(Action::Complete(outcome)) = resumed.poll_action() else {
        panic!("not completed")
    };
    assert_eq!(outcome.tokens.access_token().secret(), "at-1");
    assert_eq!(outcome.tokens.issuer(), AS);
    assert_eq!(outcome.protected_resource.as_str(), format!("{RS}/mcp"));
}

/// A registration kept until it gets tokens (it replaces one another application uses)
/// travels with the record: the process that gets the tokens is handed it with them.
#[test]
fn a_registration_saved_with_its_tokens_is_saved_by_the_resuming_process() {
    let config = Arc::new(config());
    let others = ClientRegistration {
        issuer: AS.into(),
        client_id: "other-app".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec!["https://other.example.com/callback".into()],
        grant_types: Vec::new(),
    };
    let (flow, url) = until_consent_with(&config, &std_net(), Some(others));
    let json = serde_json::to_string(&flow.pending_authorization().unwrap()).unwrap();
    drop(flow);

    let pending: PendingAuthorization = serde_json::from_str(&json).unwrap();
    let mut resumed = Flow::resume(Arc::clone(&config), pending, now()).unwrap();
    let query = format!("code=the-code&state={}&iss={AS}", param(&url, "state"));
    resumed.handle_authorization_response_at(AuthorizationResponse::from_query(&query), now());
    let Some(Action::Send(sub)) = resumed.poll_action() else {
        panic!("no token request")
    };
    resumed.handle_response(std_net().answer(&sub.request), now());
    let Some(Action::Complete(outcome)) = resumed.poll_action() else {
        panic!("not completed")
    };
    let handed = outcome
        .registration
        .expect("the registration was not handed over");
    assert_eq!(handed.client_id, "dcr-client");
    assert_eq!(handed.issuer, AS);
}

/// The callback is checked by the resumed flow exactly as by the original: a wrong `state`
/// or `iss` fails before any token request.
#[test]
fn a_resumed_flow_checks_state_and_iss() {
    let config = Arc::new(config());
    let (flow, url) = until_consent(&config, &std_net());
    let pending = flow.pending_authorization().unwrap();
    let state = param(&url, "state");
    for (query, kind) in [
        (
            format!("code=c&state=forged&iss={AS}"),
            ErrorKind::StateMismatch,
        ),
        (
            format!("code=c&state={state}&iss=https://evil.example"),
            ErrorKind::IssuerParameterMismatch,
        ),
    ] {
        let mut resumed = Flow::resume(Arc::clone(&config), pending.clone(), now()).unwrap();
        resumed.handle_authorization_response_at(AuthorizationResponse::from_query(&query), now());
        match resumed.poll_action() {
            Some(Action::Failed(e)) => assert_eq!(e.kind(), kind, "{query}"),
            other => panic!("expected a failure for {query}, got {other:?}"),
        }
    }
}

/// A confidential client's secret travels in the record, so the resuming process
/// authenticates the exchange the same way.
#[test]
fn a_confidential_clients_exchange_is_authenticated_after_resuming() {
    let config = Arc::new(
        config().pre_registered(
            PreRegisteredClient::new("app")
                .with_secret("s3cret")
                .for_issuer(AS),
        ),
    );
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        json!({
            "issuer": AS,
            "authorization_endpoint": format!("{AS}/authorize"),
            "token_endpoint": format!("{AS}/token"),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }),
    );
    let (flow, url) = until_consent(&config, &net);
    let json = serde_json::to_string(&flow.pending_authorization().unwrap()).unwrap();
    let mut resumed = Flow::resume(
        Arc::clone(&config),
        serde_json::from_str(&json).unwrap(),
        now(),
    )
    .unwrap();
    let query = format!("code=c&state={}", param(&url, "state"));
    resumed.handle_authorization_response_at(AuthorizationResponse::from_query(&query), now());
    let Some(Action::Send(sub)) = resumed.poll_action() else {
        panic!("no token request")
    };
    let basic = sub.request.headers()[http::header::AUTHORIZATION]
        .to_str()
        .unwrap();
    assert!(basic.starts_with("Basic "), "{basic}");
    assert!(!format!(
        "{:?}",
        PendingAuthorization::clone(&serde_json::from_str(&json).unwrap())
    )
    .contains("s3cret"));
}

#[test]
fn only_a_flow_waiting_for_consent_has_a_pending_authorization() {
    let config = Arc::new(config());
    let mut flow = Flow::new(
        Arc::clone(&config),
        start(None),
        FlowSecrets::from_entropy([9; 32], [8; 32]),
        now(),
    );
    assert!(flow.pending_authorization().is_none(), "discovering");
    let (mut waiting, url) = until_consent(&config, &std_net());
    assert_eq!(
        waiting.pending_authorization().unwrap().state(),
        param(&url, "state")
    );
    let query = format!("code=c&state={}&iss={AS}", param(&url, "state"));
    waiting.handle_authorization_response_at(AuthorizationResponse::from_query(&query), now());
    assert!(waiting.pending_authorization().is_none(), "exchanging");
    flow.fail(Error::new(ErrorKind::Transport, "gone"));
    assert!(flow.pending_authorization().is_none(), "finished");
}

/// On the 2025-03-26 path the credentials are bound to the server's origin, whatever issuer
/// its metadata claims; a resumed flow picks the options set for an issuer by that binding, as
/// the flow it resumes did, never by the issuer the metadata merely claims.
#[test]
fn a_resumed_flow_keeps_the_options_of_the_issuer_its_credentials_are_bound_to() {
    let claimed = "https://auth.victim.example";
    let mut meta = as_meta(claimed);
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
            json!({"client_id": "legacy-client"}),
        );
    let config = Arc::new(
        config()
            .server(
                ServerOptions::for_issuer(RS)
                    .token_param("bound", "1")
                    .unwrap(),
            )
            .server(
                ServerOptions::for_issuer(claimed)
                    .token_param("claimed", "1")
                    .unwrap(),
            ),
    );
    let mut flow = Flow::new(
        Arc::clone(&config),
        start(Some("Bearer")),
        FlowSecrets::from_entropy([9; 32], [8; 32]),
        now(),
    );
    let url = loop {
        match flow.poll_action() {
            Some(Action::Send(sub)) => flow.handle_response(net.answer(&sub.request), now()),
            Some(Action::LoadClient { .. }) => flow.handle_stored_client(None),
            Some(Action::SaveClient(_)) => {}
            Some(Action::Authorize(request)) => break request.url().clone(),
            other => panic!("unexpected {other:?}"),
        }
    };
    let pending = flow.pending_authorization().unwrap();
    let mut resumed = Flow::resume(Arc::clone(&config), pending, now()).unwrap();
    let query = format!("code=c&state={}", param(&url, "state"));
    resumed.handle_authorization_response_at(AuthorizationResponse::from_query(&query), now());
    let Some(Action::Send(sub)) = resumed.poll_action() else {
        panic!("no token request")
    };
    assert_eq!(sub.request.uri().to_string(), format!("{RS}/token"));
    assert_eq!(form(sub.request.body(), "bound").as_deref(), Some("1"));
    assert_eq!(form(sub.request.body(), "claimed"), None);
}
