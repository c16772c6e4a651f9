//! Imitations of real authorization servers: where each departs from the specifications in a
//! way a client must be configured for. Chosen with [`TestkitConfig::imitate`]; the token
//! endpoint consults the rules here at the points named on each variant.
//!
//! [`TestkitConfig::imitate`]: crate::TestkitConfig::imitate
//!
//! Below the settings (which name an [`Imitation`]) and above the responses: the rules take a
//! redeemed code's scope and parameters, not the kit's state.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{header, StatusCode};
use http_body::Body as _;
use http_body_util::Full;
use serde_json::Value;

use crate::record::RecordedRequest;
use crate::response::{self, bad_request, HttpResponse};

/// Which real authorization server the kit behaves like.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Imitation {
    /// Microsoft Entra ID v2: a token request carrying the RFC 8707 `resource` is refused with
    /// `invalid_target` and `AADSTS9010010`; a refresh without `scope` is refused with
    /// `invalid_request` and `AADSTS900144`; a refresh token only for `offline_access`.
    EntraId,
    /// Auth0: the access token is for the API named by the authorization request's `audience`
    /// (`resource` is ignored); without one it is an opaque token for the server's own
    /// `/userinfo`, which the MCP server refuses. A refresh token only for `offline_access`.
    Auth0,
    /// Google: a refresh token only for `access_type=offline` with `prompt=consent`.
    Google,
    /// GitHub: the token response is form-encoded unless the request accepts
    /// `application/json`, errors are answered with `200 OK`, and the granted `scope` is
    /// comma-separated (`repo,gist`, where RFC 6749 §3.3 has spaces). GitHub documents no
    /// `scope` on a refresh; one restating `repo,gist` names a scope never granted, which the
    /// kit refuses with `invalid_scope` as RFC 6749 §6 says. Refresh tokens follow the kit's
    /// rules, as for a GitHub App with expiring user tokens (a GitHub OAuth app issues none).
    GitHub,
    /// Okta: a refresh token only for `offline_access`.
    OfflineAccessScope,
    /// Keycloak: a refresh token always, but without `offline_access` it is bound to the
    /// user's browser session: once [`Testkit::end_sessions`] ends it (a logout at Keycloak,
    /// or its idle timeout) the refresh is refused with `invalid_grant` (Keycloak's description
    /// is `Session not active`).
    /// With `offline_access` it is an offline token, which outlives the session.
    ///
    /// [`Testkit::end_sessions`]: crate::Testkit::end_sessions
    Keycloak,
    /// Salesforce: a refresh carrying `scope` is refused with `invalid_scope`.
    Salesforce,
}

/// A token request the imitated server refuses before looking at the grant, or `None`.
pub(crate) fn refuse(
    imitation: Option<&Imitation>,
    request: &RecordedRequest,
) -> Option<HttpResponse> {
    let refresh = request.form_param("grant_type").as_deref() == Some("refresh_token");
    match imitation? {
        Imitation::EntraId if request.form_param("resource").is_some() => Some(bad_request(
            "invalid_target",
            "AADSTS9010010: The resource parameter provided in the request doesn't match with \
             the requested scopes.",
        )),
        Imitation::EntraId if refresh && request.form_param("scope").is_none() => {
            Some(bad_request(
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'scope'.",
            ))
        }
        Imitation::Salesforce if refresh && request.form_param("scope").is_some() => {
            Some(bad_request(
                "invalid_scope",
                "the refresh token flow takes no scope parameter",
            ))
        }
        _ => None,
    }
}

/// The value of `name` among an authorization request's parameters.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the imitated server issues a refresh token for a code redeemed for `scope`, whose
/// authorization request had `params` (`None`: the kit's own rules decide).
pub(crate) fn issues_refresh_token(
    imitation: Option<&Imitation>,
    scope: Option<&str>,
    params: &[(String, String)],
) -> Option<bool> {
    let param = |name| param(params, name);
    let offline_scope = scope.is_some_and(|s| s.split_whitespace().any(|s| s == "offline_access"));
    match imitation? {
        Imitation::EntraId | Imitation::Auth0 | Imitation::OfflineAccessScope => {
            Some(offline_scope)
        }
        Imitation::Google => Some(
            param("access_type") == Some("offline")
                && param("prompt").is_some_and(|p| p.split_whitespace().any(|p| p == "consent")),
        ),
        Imitation::Keycloak => Some(true),
        Imitation::GitHub | Imitation::Salesforce => None,
    }
}

/// Whether a refresh token granted for `scope` ends with the browser session: under Keycloak,
/// one granted without `offline_access` (an offline token outlives it).
pub(crate) fn ends_with_session(imitation: Option<&Imitation>, scope: Option<&str>) -> bool {
    imitation == Some(&Imitation::Keycloak)
        && !scope.is_some_and(|s| s.split_whitespace().any(|s| s == "offline_access"))
}

/// The audience of the access token the imitated server issues for a code whose
/// authorization request had `params` (`None`: the kit's own, the RFC 8707 `resource`).
/// Auth0 ignores `resource` and uses `audience`, or its own `/userinfo`.
pub(crate) fn token_audience(
    imitation: Option<&Imitation>,
    params: &[(String, String)],
    issuer: &str,
) -> Option<String> {
    match imitation? {
        Imitation::Auth0 => Some(match param(params, "audience") {
            Some(audience) => audience.to_owned(),
            None => format!("{}/userinfo", issuer.trim_end_matches('/')),
        }),
        _ => None,
    }
}

/// The token endpoint's answer as the imitated server would shape it: GitHub answers errors
/// with `200 OK`, joins the granted scopes with commas, and answers form-encoded unless asked
/// for JSON.
pub(crate) fn shape(
    imitation: Option<&Imitation>,
    request: &RecordedRequest,
    answer: HttpResponse,
) -> HttpResponse {
    if imitation != Some(&Imitation::GitHub) {
        return answer;
    }
    let wants_json = request
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let (mut parts, body) = answer.into_parts();
    let body = read_full(body);
    if parts.status.is_client_error() {
        parts.status = StatusCode::OK;
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::from_parts(parts, Full::new(body));
    };
    if let Some(Value::String(scope)) = fields.get_mut("scope") {
        *scope = comma_joined(scope);
    }
    if wants_json {
        let body = Bytes::from(Value::Object(fields).to_string());
        return HttpResponse::from_parts(parts, Full::new(body));
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &fields {
        match value {
            Value::String(text) => form.append_pair(name, text),
            other => form.append_pair(name, &other.to_string()),
        };
    }
    let mut shaped = HttpResponse::from_parts(parts, Full::new(Bytes::from(form.finish())));
    shaped.headers_mut().remove(header::CONTENT_TYPE);
    response::set_header(
        &mut shaped,
        "content-type",
        "application/x-www-form-urlencoded",
    );
    shaped
}

/// Space-delimited scopes (RFC 6749 §3.3) written GitHub's way, joined with commas.
fn comma_joined(scope: &str) -> String {
    scope.split_whitespace().collect::<Vec<_>>().join(",")
}

/// The bytes of a `Full` body (one frame, always ready).
fn read_full(body: Full<Bytes>) -> Bytes {
    let mut body = pin!(body);
    let mut cx = Context::from_waker(Waker::noop());
    match body.as_mut().poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth0_audience_and_offline_rules() {
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let auth0 = Some(&Imitation::Auth0);
        assert_eq!(
            token_audience(
                auth0,
                &params(&[("audience", "https://api")]),
                "https://as/"
            ),
            Some("https://api".into())
        );
        assert_eq!(
            token_audience(
                auth0,
                &params(&[("resource", "https://mcp")]),
                "https://as/"
            ),
            Some("https://as/userinfo".into())
        );
        assert_eq!(token_audience(None, &[], "https://as"), None);
        let google = Some(&Imitation::Google);
        let both = params(&[("access_type", "offline"), ("prompt", "login consent")]);
        assert_eq!(issues_refresh_token(google, None, &both), Some(true));
        assert_eq!(
            issues_refresh_token(google, Some("offline_access"), &[]),
            Some(false)
        );
        let okta = Some(&Imitation::OfflineAccessScope);
        assert_eq!(
            issues_refresh_token(okta, Some("a offline_access"), &[]),
            Some(true)
        );
        assert_eq!(issues_refresh_token(okta, Some("a"), &both), Some(false));
        assert_eq!(
            issues_refresh_token(Some(&Imitation::GitHub), None, &[]),
            None
        );
        let keycloak = Some(&Imitation::Keycloak);
        assert_eq!(issues_refresh_token(keycloak, Some("a"), &[]), Some(true));
        assert!(ends_with_session(keycloak, Some("a")));
        assert!(!ends_with_session(keycloak, Some("a offline_access")));
        assert!(!ends_with_session(okta, Some("a")));
    }

    #[test]
    fn github_joins_scopes_with_commas() {
        assert_eq!(comma_joined("repo  gist"), "repo,gist");
        assert_eq!(comma_joined(""), "");
    }

    #[test]
    fn a_full_body_reads_back() {
        assert_eq!(read_full(Full::new(Bytes::from("abc"))), "abc");
        assert_eq!(read_full(Full::new(Bytes::new())), "");
    }
}
