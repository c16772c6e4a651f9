//! What every token-issuing endpoint shares: client authentication (RFC 6749 §2.3, RFC 7523
//! §2.2) and the successful token response (§5.1) shaped by the quirk switches. Below the
//! token endpoint and the device grant, which both use it.

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::assertion_grants;
use crate::record::RecordedRequest;
use crate::response::{self, bad_request, no_store, oauth_error, HttpResponse};
use crate::state::{Shared, State, AUTH_BASIC, AUTH_NONE, AUTH_POST, AUTH_PRIVATE_KEY_JWT};

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
        AUTH_PRIVATE_KEY_JWT => return Err(unauthorized("private_key_jwt required")),
        _ => return Err(unauthorized("unsupported client authentication method")),
    }
    Ok(client_id)
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
