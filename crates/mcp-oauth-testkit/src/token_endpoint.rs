//! The token endpoint: client authentication, the authorization code and refresh token grants,
//! and the (quirk-shaped) token response.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::assertion_grants::{self, JWT_BEARER_GRANT};
use crate::codec::s256_challenge;
use crate::record::RecordedRequest;
use crate::response::{self, bad_request, method_not_allowed, no_store, oauth_error, HttpResponse};
use crate::state::{Shared, State, AUTH_BASIC, AUTH_NONE, AUTH_POST};

/// `POST token`: the authorization code and refresh token grants.
pub(crate) fn token(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
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

/// Authenticates the client with the method it registered and returns its id; `Err` is the
/// error response.
pub(crate) fn authenticate(
    shared: &Shared,
    state: &mut State,
    request: &RecordedRequest,
) -> Result<String, Box<HttpResponse>> {
    if request.form_param("client_assertion").is_some() {
        return assertion_grants::authenticate_assertion(shared, state, request)
            .map_err(|why| Box::new(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why)));
    }
    let basic = request.basic_credentials();
    let body_id = request.form_param("client_id");
    let body_secret = request.form_param("client_secret");
    let unauthorized = |description: &str| {
        let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
        if basic.is_some() {
            response::set_header(
                &mut response,
                "www-authenticate",
                "Basic realm=\"mcp-oauth-testkit\"",
            );
        }
        Box::new(response)
    };
    let invalid_request = |description: &str| Box::new(bad_request("invalid_request", description));
    if let (Some((basic_id, _)), Some(body_id)) = (&basic, &body_id) {
        if basic_id != body_id {
            return Err(invalid_request("client_id differs between header and body"));
        }
    }
    let Some(client_id) = basic.as_ref().map(|(id, _)| id.clone()).or(body_id.clone()) else {
        return Err(unauthorized("no client identification"));
    };
    let Some(client) = state.client(&client_id, shared.config.cimd_supported) else {
        return Err(unauthorized("unknown client"));
    };
    let expected = client.secret.as_deref();
    match client.auth_method.as_str() {
        AUTH_BASIC => match &basic {
            Some((_, secret)) if Some(secret.as_str()) == expected => {}
            Some(_) => return Err(unauthorized("wrong client secret")),
            None => return Err(unauthorized("client_secret_basic required")),
        },
        AUTH_POST => {
            if basic.is_some() {
                return Err(unauthorized(
                    "client_secret_post required, got a Basic header",
                ));
            }
            if body_secret.is_none() || body_secret.as_deref() != expected {
                return Err(unauthorized("missing or wrong client_secret"));
            }
        }
        AUTH_NONE => {
            if basic.is_some() || body_secret.is_some() {
                return Err(unauthorized("public client must not send a secret"));
            }
            if body_id.is_none() {
                return Err(invalid_request("missing client_id"));
            }
        }
        assertion_grants::AUTH_PRIVATE_KEY_JWT => {
            return Err(unauthorized("private_key_jwt required"))
        }
        _ => return Err(unauthorized("unsupported client authentication method")),
    }
    Ok(client_id)
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
    let resource = resource.or(entry.resource);
    let (scope, offline) = if config.offline_access_needs_consent {
        offline_grant(entry.scope.as_deref(), entry.prompt.as_deref())
    } else {
        (entry.scope.clone(), true)
    };
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

/// The successful token response, shaped by the quirk switches.
pub(crate) fn token_response(
    shared: &Shared,
    access_token: &str,
    refresh_token: Option<&str>,
    scope: Option<&str>,
) -> HttpResponse {
    let config = &shared.config;
    let token_type = if config.token_type_lowercase {
        "bearer"
    } else {
        "Bearer"
    };
    let mut fields: Vec<(&str, Value)> = vec![
        ("access_token", json!(access_token)),
        ("token_type", json!(token_type)),
    ];
    if !config.omit_expires_in {
        let lifetime = config.token_lifetime_secs;
        let value = if config.expires_in_as_string {
            json!(lifetime.to_string())
        } else {
            json!(lifetime)
        };
        fields.push(("expires_in", value));
    }
    if let Some(refresh_token) = refresh_token {
        fields.push(("refresh_token", json!(refresh_token)));
    }
    if let Some(scope) = scope {
        fields.push(("scope", json!(scope)));
    }
    let mut response = if config.token_response_form_encoded {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &fields {
            match value {
                Value::String(text) => form.append_pair(name, text),
                other => form.append_pair(name, &other.to_string()),
            };
        }
        response::with_body(
            StatusCode::OK,
            "application/x-www-form-urlencoded",
            form.finish(),
        )
    } else {
        let object: Map<String, Value> = fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        response::json(StatusCode::OK, &Value::Object(object))
    };
    no_store(&mut response);
    response::set_header(&mut response, "pragma", "no-cache");
    response
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
