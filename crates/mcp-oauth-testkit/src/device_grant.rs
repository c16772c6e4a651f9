//! The device authorization grant (RFC 8628), server side: the device authorization endpoint
//! (§3.1, §3.2), and the token endpoint's answers to polls (§3.4, §3.5), decided by the test:
//! approve or deny a user code by hand, or let [`DeviceConfig::outcome`](crate::DeviceConfig::outcome) decide after a number
//! of polls, with `slow_down` for the first polls if asked.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::config::DeviceOutcome;
use crate::record::RecordedRequest;
use crate::response::{self, bad_request, method_not_allowed, no_store, HttpResponse};
use crate::state::{Decision, DeviceCode, Shared, State};
use crate::Testkit;

/// The `grant_type` of a device poll (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Where the device authorization endpoint is served, on the authorization server's origin.
pub const DEVICE_AUTHORIZATION_PATH: &str = "/device_authorization";

/// Adds `device_authorization_endpoint` and the grant type to the metadata (RFC 8628 §4).
pub(crate) fn extend_metadata(
    config: &crate::TestkitConfig,
    endpoint_url: String,
    doc: &mut serde_json::Map<String, Value>,
) {
    if config.device.is_none() {
        return;
    }
    doc.insert("device_authorization_endpoint".into(), json!(endpoint_url));
    if let Some(Value::Array(grants)) = doc.get_mut("grant_types_supported") {
        grants.push(json!(DEVICE_CODE_GRANT));
    }
}

/// `POST device_authorization` (RFC 8628 §3.1, §3.2): the client authenticates as at the token
/// endpoint; the answer carries fresh codes.
pub(crate) fn device_authorization(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    let Some(device) = &shared.config.device else {
        return response::not_found();
    };
    if request.method != Method::POST {
        return method_not_allowed("POST");
    }
    let mut state = shared.lock();
    let client_id = match crate::token_issue::authenticate(shared, &mut state, request) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let device_code = format!("dc-{}", state.random());
    let user_code = user_code(&state.random());
    state.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            client_id,
            user_code: user_code.clone(),
            scope: request.form_param("scope"),
            resource: request.form_param("resource"),
            expires_at: Instant::now() + Duration::from_secs(device.expires_in_secs),
            polls: 0,
            decision: Decision::Pending,
        },
    );
    let verification_uri = shared.site.endpoint_url("/device");
    let mut body = json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": device.expires_in_secs,
        "interval": device.interval_secs,
    });
    if device.verification_uri_complete {
        body["verification_uri_complete"] =
            json!(format!("{verification_uri}?user_code={user_code}"));
    }
    let mut response = response::json(StatusCode::OK, &body);
    no_store(&mut response);
    response
}

/// `XXXX-XXXX` from random hex, the shape RFC 8628 §6.1 suggests (short, case-insensitive).
fn user_code(random: &str) -> String {
    let letters: String = random
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// A poll of the token endpoint (RFC 8628 §3.4, §3.5) by the authenticated `client_id`.
pub(crate) fn poll(
    shared: &Shared,
    state: &mut State,
    request: &RecordedRequest,
    client_id: &str,
) -> HttpResponse {
    let Some(device) = shared.config.device.clone() else {
        return bad_request("unsupported_grant_type", "the device grant is off");
    };
    let Some(code) = request.form_param("device_code") else {
        return bad_request("invalid_request", "missing device_code");
    };
    let Some(entry) = state.device_codes.get_mut(&code) else {
        return bad_request("invalid_grant", "unknown or already used device_code");
    };
    if entry.client_id != client_id {
        return bad_request("invalid_grant", "device_code was issued to another client");
    }
    if Instant::now() >= entry.expires_at {
        return bad_request("expired_token", "the device code has expired");
    }
    entry.polls += 1;
    let after = entry.polls - 1;
    match device.outcome {
        DeviceOutcome::ApproveAfter(n) if after >= n => entry.decision = Decision::Approved,
        DeviceOutcome::DenyAfter(n) if after >= n => entry.decision = Decision::Denied,
        DeviceOutcome::ExpireAfter(n) if after >= n => {
            return bad_request("expired_token", "the device code has expired")
        }
        _ => {}
    }
    match entry.decision {
        Decision::Pending if entry.polls <= device.slow_down_polls => {
            bad_request("slow_down", "polling too fast")
        }
        Decision::Pending => bad_request("authorization_pending", "the user has not approved yet"),
        Decision::Denied => {
            state.device_codes.remove(&code);
            bad_request("access_denied", "the user denied the request")
        }
        Decision::Approved => {
            let entry = state.device_codes.remove(&code).expect("found above");
            let resource = request.form_param("resource").or(entry.resource);
            let grant = state.next_id();
            let lifetime = Duration::from_secs(shared.config.token_lifetime_secs);
            let access_token =
                state.issue_access_token(entry.scope.clone(), resource.clone(), grant, lifetime);
            let refresh_token = shared.config.issue_refresh_tokens.then(|| {
                state.issue_refresh_token(client_id, entry.scope.clone(), resource, grant)
            });
            crate::token_issue::token_response(
                shared,
                &access_token,
                refresh_token.as_deref(),
                entry.scope.as_deref(),
            )
        }
    }
}

impl Testkit {
    /// Approves the pending device authorization with this user code (case-insensitive, as
    /// RFC 8628 §6.1 suggests); `false` if there is none.
    pub fn approve_user_code(&self, user_code: &str) -> bool {
        self.decide(user_code, Decision::Approved)
    }

    /// Denies it: the next poll answers `access_denied`.
    pub fn deny_user_code(&self, user_code: &str) -> bool {
        self.decide(user_code, Decision::Denied)
    }

    /// How many times the device code of this user code has been polled.
    pub fn device_polls(&self, user_code: &str) -> Option<u32> {
        let state = self.shared().lock();
        let found = state
            .device_codes
            .values()
            .find(|c| c.user_code.eq_ignore_ascii_case(user_code))
            .map(|c| c.polls);
        found
    }

    fn decide(&self, user_code: &str, decision: Decision) -> bool {
        let mut state = self.shared().lock();
        let found = state.device_codes.values_mut().find(|c| {
            c.user_code.eq_ignore_ascii_case(user_code) && c.decision == Decision::Pending
        });
        match found {
            Some(code) => {
                code.decision = decision;
                true
            }
            None => false,
        }
    }
}
