//! The device grant and the client's registration: registering the grant, reusing a
//! registration only when it allows it, dropping one the server refuses, and never trading the
//! chosen grant for the client's own.

use super::*;

/// A dynamically registered client registers the device grant too (RFC 7591 §2), then uses
/// its new client_id for the device request.
#[test]
fn a_registered_client_registers_the_device_grant() {
    let net = device_net(device_meta());
    let run = drive(
        config().device_authorization(true),
        &net,
        vec![tokens()],
        Duration::ZERO,
    );
    assert_eq!(run.steps[2], format!("POST {AS}/register"));
    let body: Value = serde_json::from_slice(&run.bodies[&2]).unwrap();
    assert!(body["grant_types"]
        .as_array()
        .unwrap()
        .contains(&json!(DEVICE_CODE_GRANT_TYPE)));
    assert_eq!(run.steps[3], "SAVE dcr-client");
    assert_eq!(run.form(4, "client_id").as_deref(), Some("dcr-client"));
    assert!(matches!(run.end, Action::Complete(_)));
}

/// A registration the server made for sign-in in the browser, without the device grant (RFC
/// 7591 §3.2.1 echoes the grant types it registered), is not used for a device login, which
/// the server would refuse with `unauthorized_client` at every try: the client registers
/// again, asking for the device grant. One that registered it, or says nothing of its grants,
/// is used.
#[test]
fn a_registration_without_the_device_grant_is_not_used_for_a_device_login() {
    let stored = |grants: &[&str]| ClientRegistration {
        issuer: AS.into(),
        client_id: "browser-client".into(),
        client_secret: None,
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("none".into()),
        redirect_uris: vec![],
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
    };
    let device_login = |stored| {
        drive_stored(
            config().device_authorization(true),
            &device_net(device_meta()),
            vec![tokens()],
            Duration::ZERO,
            Some(stored),
        )
    };
    let run = device_login(stored(&["authorization_code", "refresh_token"]));
    assert!(matches!(run.end, Action::Complete(_)));
    assert!(
        run.steps.contains(&format!("POST {AS}/register")),
        "{:?}",
        run.steps
    );
    let device_request = run
        .steps
        .iter()
        .position(|s| *s == format!("POST {AS}/device"))
        .unwrap();
    assert_eq!(
        run.form(device_request, "client_id").as_deref(),
        Some("dcr-client")
    );

    for grants in [&["authorization_code", DEVICE_CODE_GRANT_TYPE][..], &[]] {
        let run = device_login(stored(grants));
        assert!(matches!(run.end, Action::Complete(_)));
        assert!(
            !run.steps.contains(&format!("POST {AS}/register")),
            "{grants:?}: {:?}",
            run.steps
        );
        let device_request = run
            .steps
            .iter()
            .position(|s| *s == format!("POST {AS}/device"))
            .unwrap();
        assert_eq!(
            run.form(device_request, "client_id").as_deref(),
            Some("browser-client")
        );
    }
}

/// A server that echoes grant types without the device grant it was asked for (RFC 7591 §3.2.1
/// lets it replace values) has its registration kept with its grants unknown: reused by the
/// next device login, not registered again at every one.
#[test]
fn a_registration_echoing_other_grants_is_reused_not_registered_again() {
    let net = device_net(device_meta()).json(
        &format!("{AS}/register"),
        201,
        json!({"client_id": "echoing", "grant_types": ["authorization_code", "refresh_token"]}),
    );
    let device_login = |stored| {
        drive_stored(
            config().device_authorization(true),
            &net,
            vec![tokens()],
            Duration::ZERO,
            stored,
        )
    };
    let first = device_login(None);
    assert!(matches!(first.end, Action::Complete(_)));
    let saved = first.saved.last().cloned().expect("saved");
    assert_eq!(saved.client_id, "echoing");
    let second = device_login(Some(saved));
    assert!(matches!(second.end, Action::Complete(_)));
    assert!(
        !second.steps.contains(&format!("POST {AS}/register")),
        "{:?}",
        second.steps
    );
}

/// A server that lists client credentials beside the device grant, and no authorization code,
/// still gets a device login when the application chose one: the client's own token
/// (RFC 6749 §4.4) in place of the user's would be a silent swap of identities.
#[test]
fn the_device_grant_chosen_is_not_replaced_by_client_credentials() {
    let mut meta = device_meta();
    meta["grant_types_supported"] = json!([
        "client_credentials",
        DEVICE_CODE_GRANT_TYPE,
        "refresh_token"
    ]);
    let config = config()
        .pre_registered(
            PreRegisteredClient::new("confidential")
                .with_secret("s3cret")
                .for_issuer(AS),
        )
        .device_authorization(true);
    let run = drive(config, &device_net(meta), vec![tokens()], Duration::ZERO);
    assert!(matches!(run.end, Action::Complete(_)), "{:?}", run.steps);
    let token_requests: Vec<_> = run
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == format!("POST {AS}/token"))
        .map(|(i, _)| run.form(i, "grant_type"))
        .collect();
    assert_eq!(
        token_requests,
        [Some(DEVICE_CODE_GRANT_TYPE.to_owned())],
        "{:?}",
        run.steps
    );
    assert!(run.steps.contains(&format!("POST {AS}/device")));
}

/// A registration the server no longer knows (`invalid_client`), met at the device
/// authorization endpoint or at a poll, is dropped as at the token endpoint of the browser
/// flow: kept, every later device login would load it and fail the same way.
#[test]
fn a_registration_the_server_refuses_is_dropped_in_device_mode_too() {
    // A client registered dynamically (a pre-registered one is the application's to fix).
    let registering = || config().device_authorization(true);
    let refused = json!({"error": "invalid_client"});
    let net = device_net(device_meta()).json(&format!("{AS}/device"), 401, refused.clone());
    let run = drive(registering(), &net, vec![], Duration::ZERO);
    assert_eq!(run.failed().oauth_error().unwrap().error, "invalid_client");
    let registered = run
        .steps
        .iter()
        .find_map(|s| s.strip_prefix("SAVE "))
        .unwrap();
    assert!(
        run.steps.contains(&format!("DROP {registered}")),
        "{:?}",
        run.steps
    );

    let run = drive(
        registering(),
        &device_net(device_meta()),
        vec![pending(), refused],
        Duration::ZERO,
    );
    assert_eq!(run.failed().oauth_error().unwrap().error, "invalid_client");
    let registered = run
        .steps
        .iter()
        .find_map(|s| s.strip_prefix("SAVE "))
        .unwrap();
    assert!(
        run.steps.contains(&format!("DROP {registered}")),
        "{:?}",
        run.steps
    );

    // Another refusal says nothing of the client: it is kept.
    let net = device_net(device_meta()).json(
        &format!("{AS}/device"),
        400,
        json!({"error": "unauthorized_client"}),
    );
    let run = drive(registering(), &net, vec![], Duration::ZERO);
    assert!(
        !run.steps.iter().any(|s| s.starts_with("DROP")),
        "{:?}",
        run.steps
    );
}
