//! The token endpoint: client authentication, the authorization code and refresh token grants,
//! and the (quirk-shaped) token response.

use std::time::Duration;

use http::Method;

use crate::assertion_grants::{self, JWT_BEARER_GRANT};
use crate::codec::s256_challenge;
use crate::imitation;
use crate::record::RecordedRequest;
use crate::response::{bad_request, method_not_allowed, HttpResponse};
use crate::state::{Shared, State};
use crate::token_issue::{authenticate, token_response};

/// `POST token`: the authorization code and refresh token grants, shaped like the imitated
/// server's (if any).
pub(crate) fn token(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    let imitation = shared.config.imitate.as_ref();
    imitation::shape(imitation, request, grant(shared, request))
}

fn grant(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    if request.method != Method::POST {
        return method_not_allowed("POST");
    }
    let mut state = shared.lock();
    let grant_type = request.form_param("grant_type");
    let identifies_client = request.basic_credentials().is_some()
        || request.form_param("client_id").is_some()
        || request.form_param("client_assertion").is_some();
    if grant_type.as_deref() == Some(JWT_BEARER_GRANT) && !identifies_client {
        // RFC 7523 §3.1: client authentication is optional with a jwt-bearer grant.
        return assertion_grants::jwt_bearer_grant(shared, &mut state, request, None);
    }
    let client_id = match authenticate(shared, &mut state, request) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    if let Some(refusal) = imitation::refuse(shared.config.imitate.as_ref(), request) {
        return refusal;
    }
    match request.form_param("grant_type").as_deref() {
        Some("authorization_code") => {
            authorization_code_grant(shared, &mut state, request, &client_id)
        }
        Some("refresh_token") => refresh_token_grant(shared, &mut state, request, &client_id),
        Some(JWT_BEARER_GRANT) => {
            assertion_grants::jwt_bearer_grant(shared, &mut state, request, Some(&client_id))
        }
        Some(crate::DEVICE_CODE_GRANT) => {
            crate::device_grant::poll(shared, &mut state, request, &client_id)
        }
        Some(_) => bad_request(
            "unsupported_grant_type",
            "only authorization_code and refresh_token",
        ),
        None => bad_request("invalid_request", "missing grant_type"),
    }
}

fn authorization_code_grant(
    shared: &Shared,
    state: &mut State,
    request: &RecordedRequest,
    client_id: &str,
) -> HttpResponse {
    let config = &shared.config;
    let Some(code) = request.form_param("code") else {
        return bad_request("invalid_request", "missing code");
    };
    let Some(entry) = state.codes.remove(&code) else {
        return bad_request(
            "invalid_grant",
            "unknown or already used authorization code",
        );
    };
    if entry.client_id != client_id {
        return bad_request("invalid_grant", "code was issued to another client");
    }
    if request.form_param("redirect_uri").as_deref() != Some(entry.redirect_uri.as_str()) {
        return bad_request(
            "invalid_grant",
            "redirect_uri does not match the authorization request",
        );
    }
    let Some(verifier) = request.form_param("code_verifier") else {
        return bad_request("invalid_grant", "missing code_verifier");
    };
    let computed = match entry.challenge_method.as_str() {
        "plain" => verifier,
        _ => s256_challenge(&verifier),
    };
    if computed != entry.challenge {
        return bad_request("invalid_grant", "PKCE verification failed");
    }
    // RFC 8707 §2.2: the token request may restate the resource or leave it out (then the
    // authorization request's applies); naming another is refused.
    let resource = request.form_param("resource");
    if resource.is_some() && entry.resource.is_some() && resource != entry.resource {
        return bad_request(
            "invalid_target",
            "resource differs from the authorization request",
        );
    }
    let imitated = config.imitate.as_ref();
    let issuer = shared.site.metadata_issuer(config);
    let resource = imitation::token_audience(imitated, &entry.params, &issuer)
        .or_else(|| resource.or(entry.resource.clone()));
    let (scope, offline) = if config.offline_access_needs_consent {
        offline_grant(entry.scope.as_deref(), entry.prompt.as_deref())
    } else {
        (entry.scope.clone(), true)
    };
    let offline = imitation::issues_refresh_token(imitated, entry.scope.as_deref(), &entry.params)
        .unwrap_or(offline);
    let grant = state.next_id();
    let lifetime = Duration::from_secs(config.token_lifetime_secs);
    let access_token = state.issue_access_token(scope.clone(), resource.clone(), grant, lifetime);
    let refresh_token = (config.issue_refresh_tokens && offline)
        .then(|| state.issue_refresh_token(client_id, scope.clone(), resource, grant));
    token_response(
        shared,
        &access_token,
        refresh_token.as_deref(),
        scope.as_deref(),
    )
}

/// What an OpenID provider grants for offline access (OpenID Connect Core §11): `offline_access`
/// is granted, with a refresh token, only when the request asked for it with `prompt=consent`;
/// otherwise it is dropped from the scope. Returns the granted scope and whether a refresh token
/// goes with it.
fn offline_grant(scope: Option<&str>, prompt: Option<&str>) -> (Option<String>, bool) {
    let asked = scope.unwrap_or("").split_whitespace();
    let wants_offline = asked.clone().any(|s| s == "offline_access");
    let consent = prompt.is_some_and(|p| p.split_whitespace().any(|v| v == "consent"));
    if wants_offline && consent {
        return (scope.map(str::to_owned), true);
    }
    let kept: Vec<&str> = asked.filter(|s| *s != "offline_access").collect();
    let scope = (!kept.is_empty()).then(|| kept.join(" "));
    (scope, false)
}

fn refresh_token_grant(
    shared: &Shared,
    state: &mut State,
    request: &RecordedRequest,
    client_id: &str,
) -> HttpResponse {
    let config = &shared.config;
    let Some(presented) = request.form_param("refresh_token") else {
        return bad_request("invalid_request", "missing refresh_token");
    };
    let Some(entry) = state.refresh_tokens.get(&presented).cloned() else {
        return bad_request("invalid_grant", "unknown refresh token");
    };
    if entry.client_id != client_id {
        return bad_request(
            "invalid_grant",
            "refresh token was issued to another client",
        );
    }
    if !entry.active {
        state.revoke_grant(entry.grant);
        return bad_request(
            "invalid_grant",
            "refresh token reuse detected; the grant is revoked",
        );
    }
    let scope = match request.form_param("scope") {
        Some(asked) => {
            let granted: Vec<&str> = entry
                .scope
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if asked.split_whitespace().any(|s| !granted.contains(&s)) {
                return bad_request(
                    "invalid_scope",
                    "requested scope exceeds the original grant",
                );
            }
            Some(asked)
        }
        None => entry.scope.clone(),
    };
    let resource = request.form_param("resource").or(entry.resource.clone());
    let lifetime = Duration::from_secs(config.token_lifetime_secs);
    let access_token =
        state.issue_access_token(scope.clone(), resource.clone(), entry.grant, lifetime);
    let refresh_token = if config.rotate_refresh_tokens {
        if let Some(old) = state.refresh_tokens.get_mut(&presented) {
            old.active = false;
        }
        Some(state.issue_refresh_token(client_id, entry.scope.clone(), resource, entry.grant))
    } else {
        None
    };
    token_response(
        shared,
        &access_token,
        refresh_token.as_deref(),
        scope.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::offline_grant;

    #[test]
    fn offline_access_needs_consent_like_an_openid_provider() {
        let both = offline_grant(Some("mcp offline_access"), Some("consent"));
        assert_eq!(both, (Some("mcp offline_access".into()), true));
        let no_prompt = offline_grant(Some("mcp offline_access"), None);
        assert_eq!(no_prompt, (Some("mcp".into()), false));
        let other_prompt = offline_grant(Some("offline_access"), Some("login"));
        assert_eq!(other_prompt, (None, false));
        let not_asked = offline_grant(Some("mcp"), Some("consent"));
        assert_eq!(not_asked, (Some("mcp".into()), false));
        assert_eq!(offline_grant(None, Some("login consent")), (None, false));
    }
}
