//! State machine tests: a fake network of canned responses, a scripted consent step, and
//! assertions on the exact sequence of sub-requests and on the final action.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::*;

const RS: &str = "http://localhost:3000";
const AS: &str = "http://localhost:4000";

type Canned = (u16, Vec<(&'static str, String)>, Bytes);

#[derive(Default)]
struct Net {
    routes: HashMap<String, Canned>,
}

impl Net {
    fn json(mut self, url: &str, status: u16, body: Value) -> Self {
        self.routes.insert(
            url.into(),
            (
                status,
                vec![("content-type", "application/json".into())],
                Bytes::from(body.to_string()),
            ),
        );
        self
    }
    fn raw(
        mut self,
        url: &str,
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: &str,
    ) -> Self {
        self.routes
            .insert(url.into(), (status, headers, Bytes::from(body.to_owned())));
        self
    }
    fn answer(&self, req: &http::Request<Bytes>) -> http::Response<Bytes> {
        let key = req.uri().to_string();
        let (status, headers, body) =
            self.routes
                .get(&key)
                .cloned()
                .unwrap_or((404, vec![], Bytes::new()));
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(body).unwrap()
    }
}

fn prm(resource: &str, issuer: &str) -> Value {
    json!({"resource": resource, "authorization_servers": [issuer]})
}

fn as_meta(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    })
}

fn std_net() -> Net {
    Net::default()
        .json(&format!("{RS}/.well-known/oauth-protected-resource/mcp"), 200, prm(&format!("{RS}/mcp"), AS))
        .json(&format!("{AS}/.well-known/oauth-authorization-server"), 200, as_meta(AS))
        .json(&format!("{AS}/register"), 201, json!({"client_id": "dcr-client", "token_endpoint_auth_method": "none"}))
        .json(&format!("{AS}/token"), 200, json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-1"}))
}

/// How the scripted user/server answers the authorization request.
enum Consent {
    /// Echo the state, add a code and, if given, this `iss`.
    Approve(Option<String>),
    /// Answer with this raw query.
    Raw(String),
}

struct Run {
    end: Action,
    sent: Vec<String>,
    bodies: Vec<Bytes>,
    authorize_url: Option<url::Url>,
    saved: Vec<ClientRegistration>,
    loaded: Vec<String>,
    dropped: Vec<String>,
}

impl Run {
    fn failed(&self) -> ErrorKind {
        match &self.end {
            Action::Failed(e) => e.kind(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    fn outcome(&self) -> &FlowOutcome {
        match &self.end {
            Action::Complete(o) => o,
            other => panic!("expected completion, got {other:?}"),
        }
    }
    fn sent_token_request(&self) -> bool {
        self.sent.iter().any(|s| s.ends_with("/token"))
    }
    fn authorize_param(&self, name: &str) -> Option<String> {
        self.authorize_url
            .as_ref()?
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    fn form(&self, index: usize, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.bodies[index])
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn run_with(
    config: ClientConfig,
    start: FlowStart,
    net: &Net,
    consent: Consent,
    stored: Option<ClientRegistration>,
) -> Run {
    let mut flow = Flow::new(
        Arc::new(config),
        start,
        FlowSecrets::from_entropy([9; 32], [8; 32]),
    );
    let mut run = Run {
        end: Action::Failed(Error::new(ErrorKind::InvalidTransition, "unfinished")),
        sent: vec![],
        bodies: vec![],
        authorize_url: None,
        saved: vec![],
        loaded: vec![],
        dropped: vec![],
    };
    for _ in 0..64 {
        let Some(action) = flow.poll_action() else {
            panic!("flow stalled in {flow:?}")
        };
        match action {
            Action::Send(sub) => {
                run.sent
                    .push(format!("{} {}", sub.request.method(), sub.request.uri()));
                run.bodies.push(sub.request.body().clone());
                flow.handle_response(net.answer(&sub.request), now());
            }
            Action::LoadClient { issuer } => {
                run.loaded.push(issuer);
                flow.handle_stored_client(stored.clone());
            }
            Action::SaveClient(reg) => run.saved.push(reg),
            Action::DropTokens => run.dropped.push("tokens".into()),
            Action::DropClient { issuer } => run.dropped.push(format!("client {issuer}")),
            Action::Authorize(req) => {
                run.sent.push(format!(
                    "AUTHORIZE {}",
                    req.url().as_str().split('?').next().unwrap()
                ));
                run.bodies.push(Bytes::new());
                let query = match &consent {
                    Consent::Approve(iss) => {
                        let mut q = format!("code=the-code&state={}", req.state().secret());
                        if let Some(iss) = iss {
                            q.push_str(&format!(
                                "&iss={}",
                                url::form_urlencoded::byte_serialize(iss.as_bytes())
                                    .collect::<String>()
                            ));
                        }
                        q
                    }
                    Consent::Raw(q) => q.replace("{state}", req.state().secret()),
                };
                run.authorize_url = Some(req.url().clone());
                flow.handle_authorization_response(AuthorizationResponse::from_query(&query));
            }
            end @ (Action::Complete(_) | Action::Failed(_)) => {
                assert!(flow.is_finished());
                assert!(flow.poll_action().is_none());
                run.end = end;
                return run;
            }
        }
    }
    panic!("flow did not finish");
}

fn config() -> ClientConfig {
    ClientConfig::new("http://localhost:3000/callback").client_name("test")
}

fn start(challenge: Option<&str>) -> FlowStart {
    FlowStart::new(url::Url::parse(&format!("{RS}/mcp")).unwrap())
        .challenge(challenge.map(|c| Challenge::parse_all([c]).unwrap().remove(0)))
}

fn challenge_with_prm() -> String {
    format!(
        r#"Bearer error="invalid_token", resource_metadata="{RS}/.well-known/oauth-protected-resource/mcp""#
    )
}

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
    assert_eq!(outcome.tokens.issuer(), format!("{RS}/oauth"));
    assert_eq!(outcome.tokens.resource(), None);
    assert_eq!(outcome.protected_resource.as_str(), format!("{RS}/"));
    assert_eq!(run.authorize_param("resource"), None);
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

#[test]
fn inputs_in_the_wrong_state_are_typed_errors() {
    let mut flow = Flow::new(
        Arc::new(config()),
        start(None),
        FlowSecrets::from_entropy([0; 32], [0; 32]),
    );
    let _ = flow.poll_action();
    flow.handle_authorization_response(AuthorizationResponse::default());
    match flow.poll_action() {
        Some(Action::Failed(e)) => assert_eq!(e.kind(), ErrorKind::InvalidTransition),
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
        let mut flow = Flow::new(Arc::new(config()), start(None), FlowSecrets::from_entropy([1; 32], [2; 32]));
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
                Some(Action::SaveClient(_)) | Some(Action::DropTokens) | Some(Action::DropClient { .. }) => {}
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
