//! The device authorization grant (RFC 8628) through the whole machine: the codes, the user
//! shown theirs, and the polls with their waits, against a token endpoint scripted poll by
//! poll.

use std::collections::VecDeque;

use super::*;
use crate::device::{UserCode, DEVICE_CODE_GRANT_TYPE};

fn device_meta() -> Value {
    let mut meta = as_meta(AS);
    meta["device_authorization_endpoint"] = json!(format!("{AS}/device"));
    meta
}

fn device_net(meta: Value) -> Net {
    std_net()
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        )
        .json(
            &format!("{AS}/device"),
            200,
            json!({"device_code": "dc-1", "user_code": "WDJB-MJHT",
                   "verification_uri": format!("{AS}/activate"),
                   "verification_uri_complete": format!("{AS}/activate?user_code=WDJB-MJHT"),
                   "expires_in": 60, "interval": 2}),
        )
}

fn device_config() -> ClientConfig {
    config()
        .pre_registered(PreRegisteredClient::new("cli-1"))
        .device_authorization(true)
}

struct DeviceRun {
    end: Action,
    /// `METHOD url`, `SHOW …`, `WAIT n`: in order.
    steps: Vec<String>,
    /// The body of each request, by its index in `steps`.
    bodies: HashMap<usize, Bytes>,
    shown: Option<UserCode>,
    /// The registrations saved, in order.
    saved: Vec<ClientRegistration>,
}

impl DeviceRun {
    fn form(&self, step: usize, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.bodies[&step])
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    fn failed(&self) -> &Error {
        match &self.end {
            Action::Failed(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// Drives the flow; each poll of `/token` takes the next of `polls`, and each wait moves the
/// clock on by what the flow asked for (plus `late`, a driver that oversleeps).
fn drive(config: ClientConfig, net: &Net, polls: Vec<Value>, late: Duration) -> DeviceRun {
    drive_stored(config, net, polls, late, None)
}

/// [`drive`], with `stored` the registration the store holds for the issuer.
fn drive_stored(
    config: ClientConfig,
    net: &Net,
    polls: Vec<Value>,
    late: Duration,
    stored: Option<ClientRegistration>,
) -> DeviceRun {
    let mut stored = stored;
    let mut polls: VecDeque<Value> = polls.into();
    let mut clock = now();
    let mut flow = Flow::new(
        Arc::new(config),
        start(None),
        FlowSecrets::from_entropy([9; 32], [8; 32]),
        clock,
    );
    let mut run = DeviceRun {
        end: Action::Failed(Error::new(ErrorKind::InvalidTransition, "unfinished")),
        steps: vec![],
        bodies: HashMap::new(),
        shown: None,
        saved: vec![],
    };
    for _ in 0..64 {
        let Some(action) = flow.poll_action() else {
            panic!("flow stalled in {flow:?}")
        };
        match action {
            Action::Send(sub) => {
                let uri = sub.request.uri().to_string();
                run.bodies
                    .insert(run.steps.len(), sub.request.body().clone());
                run.steps.push(format!("{} {uri}", sub.request.method()));
                let response = if uri == format!("{AS}/token") {
                    let body = polls.pop_front().expect("a poll the test did not script");
                    // `{"lost": true}` scripts a poll that gets no answer.
                    if body.get("lost").is_some() {
                        let lost = Error::new(ErrorKind::Transport, "connection reset");
                        flow.handle_send_failure(lost);
                        continue;
                    }
                    // `{"status": n}` scripts the server's own trouble; an `error` is a 400.
                    let status = match body.get("status").and_then(Value::as_u64) {
                        Some(status) => status as u16,
                        None if body.get("error").is_some() => 400,
                        None => 200,
                    };
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Bytes::from(body.to_string()))
                        .unwrap()
                } else {
                    net.answer(&sub.request)
                };
                flow.handle_response(response, clock);
            }
            Action::LoadClient { .. } => flow.handle_stored_client(stored.take()),
            Action::SaveClient(reg) => {
                run.steps.push(format!("SAVE {}", reg.client_id));
                run.saved.push(reg);
            }
            Action::DropClient { client_id, .. } => run.steps.push(format!("DROP {client_id}")),
            Action::ShowUserCode(code) => {
                run.steps.push(format!("SHOW {}", code.verification_uri));
                run.shown = Some(code);
            }
            Action::PollAfter(wait) => {
                run.steps.push(format!("WAIT {}", wait.as_secs()));
                clock += wait + late;
                flow.handle_poll_due(clock);
            }
            end @ (Action::Complete(_) | Action::Failed(_)) => {
                assert!(flow.is_finished());
                run.end = end;
                return run;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("flow did not finish");
}

fn pending() -> Value {
    json!({"error": "authorization_pending"})
}

fn tokens() -> Value {
    json!({"access_token": "at-device", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-d"})
}

/// §3.1 – §3.5 in order: request, show, wait the interval, poll while pending, tokens.
#[test]
fn pending_polls_wait_the_interval_then_tokens_arrive() {
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![pending(), pending(), tokens()],
        Duration::ZERO,
    );
    assert_eq!(
        run.steps,
        vec![
            format!("GET {RS}/.well-known/oauth-protected-resource/mcp"),
            format!("GET {AS}/.well-known/oauth-authorization-server"),
            format!("POST {AS}/device"),
            format!("SHOW {AS}/activate"),
            "WAIT 2".to_owned(),
            format!("POST {AS}/token"),
            "WAIT 2".to_owned(),
            format!("POST {AS}/token"),
            "WAIT 2".to_owned(),
            format!("POST {AS}/token"),
        ]
    );
    // §3.1 with RFC 8707: the public client's id, and the resource the token is for.
    assert_eq!(run.form(2, "client_id").as_deref(), Some("cli-1"));
    assert_eq!(run.form(2, "resource"), Some(format!("{RS}/mcp")));
    assert_eq!(run.form(2, "grant_type"), None);
    // §3.4.
    for poll in [5, 7, 9] {
        assert_eq!(
            run.form(poll, "grant_type").as_deref(),
            Some(DEVICE_CODE_GRANT_TYPE)
        );
        assert_eq!(run.form(poll, "device_code").as_deref(), Some("dc-1"));
        assert_eq!(run.form(poll, "client_id").as_deref(), Some("cli-1"));
        assert_eq!(run.form(poll, "resource"), Some(format!("{RS}/mcp")));
    }
    let shown = run.shown.as_ref().unwrap();
    assert_eq!(shown.user_code, "WDJB-MJHT");
    assert_eq!(
        shown.verification_uri_complete.as_deref(),
        Some(&*format!("{AS}/activate?user_code=WDJB-MJHT"))
    );
    assert_eq!(shown.expires_in, Duration::from_secs(60));
    let Action::Complete(outcome) = &run.end else {
        panic!("expected tokens, got {:?}", run.end)
    };
    assert_eq!(outcome.tokens.access_token().secret(), "at-device");
    assert_eq!(outcome.tokens.client_id(), "cli-1");
    assert_eq!(outcome.protected_resource.as_str(), format!("{RS}/mcp"));
}

/// §3.5: `slow_down` adds 5 s, and the longer interval stays for every later poll.
#[test]
fn slow_down_lengthens_every_later_wait() {
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![
            json!({"error": "slow_down"}),
            pending(),
            json!({"error": "slow_down"}),
            tokens(),
        ],
        Duration::ZERO,
    );
    let waits: Vec<&str> = run
        .steps
        .iter()
        .filter(|s| s.starts_with("WAIT"))
        .map(String::as_str)
        .collect();
    assert_eq!(waits, ["WAIT 2", "WAIT 7", "WAIT 7", "WAIT 12"]);
    assert!(matches!(run.end, Action::Complete(_)));
}

#[test]
fn access_denied_is_the_users_refusal() {
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![pending(), json!({"error": "access_denied"})],
        Duration::ZERO,
    );
    let err = run.failed();
    assert_eq!(err.kind(), ErrorKind::AuthorizationDenied);
    assert_eq!(err.oauth_error().unwrap().error, "access_denied");
}

#[test]
fn expired_token_is_an_expired_device_code() {
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![json!({"error": "expired_token"})],
        Duration::ZERO,
    );
    assert_eq!(run.failed().kind(), ErrorKind::DeviceCodeExpired);
}

/// §3.2 `expires_in`: once the code's lifetime has passed the flow stops without polling
/// (the server could only say `expired_token`).
#[test]
fn the_codes_lifetime_bounds_the_polling() {
    // Each wait overshoots by 20 s: polls at 22 s and 44 s; the third would be at 66 s, past
    // the code's 60 s (and unscripted: `drive` panics if it is sent).
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![pending(), pending()],
        Duration::from_secs(20),
    );
    assert_eq!(run.failed().kind(), ErrorKind::DeviceCodeExpired);
    let polls = run.steps.iter().filter(|s| s.ends_with("/token")).count();
    assert_eq!(polls, 2, "{:?}", run.steps);
}

/// §3.5: any other error ends the flow as the token endpoint's errors do.
#[test]
fn other_poll_errors_are_token_errors() {
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![json!({"error": "invalid_client"})],
        Duration::ZERO,
    );
    assert_eq!(run.failed().kind(), ErrorKind::TokenRejected);
    assert_eq!(run.failed().oauth_error().unwrap().error, "invalid_client");
}

/// RFC 8628 §4: the application chose the device grant; a server without the endpoint is an
/// error that says so, before any client is registered or any browser opened.
#[test]
fn a_server_without_the_endpoint_is_refused_with_the_fix() {
    let run = drive(
        config().device_authorization(true),
        &device_net(as_meta(AS)),
        vec![],
        Duration::ZERO,
    );
    let err = run.failed();
    assert_eq!(err.kind(), ErrorKind::GrantNotSupported);
    assert!(
        err.message().contains("device_authorization_endpoint"),
        "{err}"
    );
    assert_eq!(run.steps.len(), 2, "{:?}", run.steps);
}

/// A device authorization endpoint that refuses the client ends the flow with its code.
#[test]
fn a_refused_device_request_fails_with_the_servers_code() {
    let net = device_net(device_meta()).json(
        &format!("{AS}/device"),
        400,
        json!({"error": "unauthorized_client"}),
    );
    let run = drive(device_config(), &net, vec![], Duration::ZERO);
    assert_eq!(run.failed().kind(), ErrorKind::TokenRejected);
    assert_eq!(
        run.failed().oauth_error().unwrap().error,
        "unauthorized_client"
    );
    let report = run.failed().report().unwrap().to_string();
    assert!(report.contains("device authorization"), "{report}");
}

/// A poll due in any other state is an invalid transition, not a request.
#[test]
fn a_poll_due_out_of_turn_is_refused() {
    let mut flow = Flow::new(
        Arc::new(device_config()),
        start(None),
        FlowSecrets::from_entropy([9; 32], [8; 32]),
        now(),
    );
    let _ = flow.poll_action();
    flow.handle_poll_due(now());
    match flow.poll_action() {
        Some(Action::Failed(e)) => assert_eq!(e.kind(), ErrorKind::InvalidTransition),
        other => panic!("unexpected {other:?}"),
    }
}

/// The claims of a compact JWT (the signature is verified in `client_assertions.rs`; here
/// only the freshness of each poll's assertion matters).
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// RFC 7523 §2.2 / §3: a `private_key_jwt` client authenticates the device request and every
/// poll, each with its own `jti` and dated when it is sent (a server refuses a replayed one).
#[test]
fn a_private_key_client_signs_every_poll_afresh() {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let secret = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
    let key = ClientKey::from_pkcs8_pem(&secret.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap();
    let mut meta = device_meta();
    meta["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
    meta["token_endpoint_auth_signing_alg_values_supported"] = json!(["ES256"]);
    let config = config()
        .pre_registered(
            PreRegisteredClient::new("signer")
                .with_private_key(key)
                .for_issuer(AS),
        )
        .device_authorization(true);
    let run = drive(
        config,
        &device_net(meta),
        vec![pending(), tokens()],
        Duration::ZERO,
    );
    assert!(matches!(run.end, Action::Complete(_)), "{:?}", run.end);
    // The device request (step 2) and the two polls (steps 5 and 7).
    let assertions: Vec<Value> = [2, 5, 7]
        .iter()
        .map(|&step| claims(&run.form(step, "client_assertion").expect("signed")))
        .collect();
    let jtis: std::collections::HashSet<&str> = assertions
        .iter()
        .map(|c| c["jti"].as_str().unwrap())
        .collect();
    assert_eq!(jtis.len(), 3, "{assertions:?}");
    for c in &assertions {
        assert_eq!(c["iss"], "signer");
        assert_eq!(c["sub"], "signer");
    }
    // Dated when sent: the second poll comes two intervals after the first request.
    let iat = |i: usize| assertions[i]["iat"].as_u64().unwrap();
    assert_eq!(iat(2) - iat(0), 4);
}

/// The verification URI is where the user is sent, like the authorization endpoint: a public
/// server's device response that points at the cloud metadata address is refused before the
/// user is shown anything (the address policy, issue 8).
#[test]
fn a_verification_uri_on_a_forbidden_address_is_never_shown() {
    let net = device_net(device_meta()).json(
        &format!("{AS}/device"),
        200,
        json!({"device_code": "dc-1", "user_code": "WDJB-MJHT",
               "verification_uri": "https://169.254.169.254/activate",
               "expires_in": 60, "interval": 2}),
    );
    let run = drive(device_config(), &net, vec![], Duration::ZERO);
    assert_eq!(
        run.failed().kind(),
        ErrorKind::InsecureUrl,
        "{:?}",
        run.steps
    );
    assert!(run.shown.is_none(), "the user was shown the code");
}

/// A token endpoint failing (5xx, 429) is waited out, 5 s longer each time, and reported
/// once; when the code runs out meanwhile, the server's trouble is the error, not the user's
/// lateness.
#[test]
fn a_failing_token_endpoint_is_waited_out_and_named_when_the_code_runs_out() {
    let failing = || json!({"status": 500});
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![
            pending(),
            failing(),
            json!({"status": 429}),
            failing(),
            failing(),
            failing(),
        ],
        Duration::ZERO,
    );
    let waits: Vec<&String> = run.steps.iter().filter(|s| s.starts_with("WAIT")).collect();
    assert_eq!(
        waits,
        ["WAIT 2", "WAIT 2", "WAIT 7", "WAIT 12", "WAIT 17", "WAIT 22"]
    );
    let error = run.failed();
    assert_eq!(error.kind(), ErrorKind::UnexpectedStatus, "{error}");
    assert!(error.is_transient());
    assert_eq!(
        error.status(),
        Some(http::StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert!(error.to_string().contains("answered 500"), "{error}");
    // Reported once, when the trouble began, not at every poll.
    let report = error.report().unwrap();
    let troubled: Vec<_> = report
        .steps()
        .iter()
        .filter(|s| s.status == Some(500))
        .collect();
    assert_eq!(troubled.len(), 1, "{report}");
}

/// A poll that gets no answer (a connection reset, a timeout) keeps the device code, the user
/// may be approving it, and polls again less often (RFC 8628 §3.5: doubling the interval,
/// here up to a minute), the longer interval kept; the tokens then arrive.
#[test]
fn a_poll_lost_on_the_network_is_polled_again_less_often() {
    let lost = || json!({"lost": true});
    let run = drive(
        device_config(),
        &device_net(device_meta()),
        vec![pending(), lost(), pending(), lost(), tokens()],
        Duration::ZERO,
    );
    let waits: Vec<&String> = run.steps.iter().filter(|s| s.starts_with("WAIT")).collect();
    assert_eq!(waits, ["WAIT 2", "WAIT 2", "WAIT 4", "WAIT 4", "WAIT 8"]);
    let Action::Complete(outcome) = &run.end else {
        panic!("expected tokens, got {:?}", run.end);
    };
    assert_eq!(outcome.tokens.access_token().secret(), "at-device");
}

mod registration;
