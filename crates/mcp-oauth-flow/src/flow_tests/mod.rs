//! State machine tests: a fake network of canned responses, a scripted consent step, and
//! assertions on the exact sequence of sub-requests and on the final action.

mod addresses;
mod authorization;
mod client_assertions;
mod device;
mod discovery;
mod dpop;
mod grants;
mod identity;
mod legacy;
mod resume;
mod servers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::*;
use crate::{authorization::*, challenge::*, client::*, secrets::*, token::*};

const RS: &str = "http://localhost:3000";
const AS: &str = "http://localhost:4000";

type Canned = (u16, Vec<(&'static str, String)>, Bytes);

#[derive(Default)]
struct Net {
    routes: HashMap<String, Canned>,
    /// What the application's source gives for `Action::ObtainAssertion`; `None`: it fails.
    assertion: Option<String>,
    /// Origins that answer nothing (the driver reports a send failure).
    down: Vec<String>,
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
    fn down(mut self, origin: &str) -> Self {
        self.down.push(origin.to_owned());
        self
    }
    fn assertion(mut self, assertion: &str) -> Self {
        self.assertion = Some(assertion.to_owned());
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
    /// The `Authorization` header of each entry of `sent`.
    auth: Vec<Option<String>>,
    authorize_url: Option<url::Url>,
    saved: Vec<ClientRegistration>,
    /// For each of `saved`, the entry of `sent` it came after (`None`: before any).
    saved_after: Vec<Option<String>>,
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
        now(),
    );
    let mut run = Run {
        end: Action::Failed(Error::new(ErrorKind::InvalidTransition, "unfinished")),
        sent: vec![],
        bodies: vec![],
        auth: vec![],
        authorize_url: None,
        saved: vec![],
        saved_after: vec![],
        loaded: vec![],
        dropped: vec![],
    };
    for _ in 0..64 {
        let Some(action) = flow.poll_action() else {
            panic!("flow stalled in {flow:?}")
        };
        match action {
            Action::Send(sub) => {
                // The flow waits for this response: it is not finished.
                assert!(!flow.is_finished());
                run.sent
                    .push(format!("{} {}", sub.request.method(), sub.request.uri()));
                run.bodies.push(sub.request.body().clone());
                run.auth.push(
                    sub.request
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap().to_owned()),
                );
                let uri = sub.request.uri().to_string();
                if net
                    .down
                    .iter()
                    .any(|origin| uri.starts_with(origin.as_str()))
                {
                    flow.handle_send_failure(Error::new(
                        ErrorKind::Transport,
                        "connection refused",
                    ));
                } else {
                    flow.handle_response(net.answer(&sub.request), now());
                }
            }
            Action::LoadClient { issuer } => {
                run.loaded.push(issuer);
                flow.handle_stored_client(stored.clone());
            }
            Action::SaveClient(reg) => {
                run.saved.push(reg);
                run.saved_after.push(run.sent.last().cloned());
            }
            Action::DropTokens => run.dropped.push("tokens".into()),
            Action::DropClient { issuer, client_id } => {
                run.dropped.push(format!("client {issuer} {client_id}"))
            }
            Action::ObtainAssertion(req) => {
                run.sent
                    .push(format!("ASSERTION {:?} for {}", req.kind, req.issuer));
                run.bodies.push(Bytes::new());
                run.auth.push(None);
                let given = net
                    .assertion
                    .clone()
                    .ok_or_else(|| Error::new(ErrorKind::AssertionUnavailable, "no token file"));
                flow.handle_assertion(given, now());
            }
            Action::Authorize(req) => {
                run.auth.push(None);
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
            Action::ShowUserCode(code) => {
                run.sent.push(format!("SHOW {}", code.verification_uri));
                run.bodies.push(Bytes::new());
                run.auth.push(None);
            }
            Action::PollAfter(_) => flow.handle_poll_due(now()),
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
