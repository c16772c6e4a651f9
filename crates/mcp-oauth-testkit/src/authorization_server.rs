//! The authorization server's authorize (auto-approving) and register endpoints; the token
//! endpoint lives in [`crate::token_endpoint`].

use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::codec::unix_now;
use crate::config::IssInRedirect;
use crate::record::RecordedRequest;
use crate::response::{self, bad_request, method_not_allowed, no_store, oauth_error, HttpResponse};
use crate::state::{AuthCode, Client, Shared, AUTH_BASIC, AUTH_NONE};

/// `GET authorize`: validates the request and redirects back with a fresh code.
pub(crate) fn authorize(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    if request.method != Method::GET {
        return method_not_allowed("GET");
    }
    let bad =
        |error: &str, description: &str| oauth_error(StatusCode::BAD_REQUEST, error, description);
    let config = &shared.config;
    if request.query_param("response_type").as_deref() != Some("code") {
        return bad("unsupported_response_type", "response_type must be code");
    }
    let Some(client_id) = request.query_param("client_id") else {
        return bad("invalid_request", "missing client_id");
    };
    let mut state = shared.lock();
    let Some(client) = state.client(&client_id, config.cimd_supported) else {
        return bad("invalid_client", "unknown client_id");
    };
    let Some(redirect_uri) = request.query_param("redirect_uri") else {
        return bad("invalid_request", "missing redirect_uri");
    };
    let registered = client.redirect_uris.is_empty()
        || client
            .redirect_uris
            .iter()
            .any(|allowed| redirect_matches(allowed, &redirect_uri));
    if !registered {
        return bad(
            "invalid_request",
            "redirect_uri is not registered for this client",
        );
    }
    let Ok(mut location) = url::Url::parse(&redirect_uri) else {
        return bad("invalid_request", "redirect_uri is not an absolute URL");
    };
    let Some(challenge) = request.query_param("code_challenge") else {
        return bad(
            "invalid_request",
            "missing code_challenge (PKCE is required)",
        );
    };
    let method = request
        .query_param("code_challenge_method")
        .unwrap_or_default();
    let plain_allowed = config
        .pkce_methods
        .as_ref()
        .is_some_and(|methods| methods.iter().any(|m| m == "plain"));
    if method != "S256" && !(method == "plain" && plain_allowed) {
        return bad("invalid_request", "code_challenge_method must be S256");
    }
    let code = format!("code-{}", state.random());
    state.codes.insert(
        code.clone(),
        AuthCode {
            client_id,
            redirect_uri,
            challenge,
            challenge_method: method,
            scope: request.query_param("scope"),
            resource: request.query_param("resource"),
            prompt: request.query_param("prompt"),
            params: url::form_urlencoded::parse(request.query.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        },
    );
    drop(state);
    {
        let mut pairs = location.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(state) = request.query_param("state") {
            pairs.append_pair("state", &state);
        }
        let iss = match &config.iss_in_redirect {
            IssInRedirect::Issuer => Some(shared.site.metadata_issuer(config)),
            IssInRedirect::Omit => None,
            IssInRedirect::Value(value) => Some(value.clone()),
        };
        if let Some(iss) = iss {
            pairs.append_pair("iss", &iss);
        }
    }
    let mut response = response::empty(StatusCode::FOUND);
    if let Ok(value) = HeaderValue::from_str(location.as_str()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    no_store(&mut response);
    response
}

/// Exact match, except that a loopback IP redirect URI may use any port (OAuth 2.1
/// section 8.4.2).
fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(mut registered), Ok(mut requested)) =
        (url::Url::parse(registered), url::Url::parse(requested))
    else {
        return false;
    };
    let loopback = |url: &url::Url| {
        let loopback_host = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        };
        url.scheme() == "http" && loopback_host
    };
    if !loopback(&registered) || !loopback(&requested) {
        return false;
    }
    let _ = registered.set_port(None);
    let _ = requested.set_port(None);
    registered == requested
}

/// `POST register` (RFC 7591 dynamic client registration).
pub(crate) fn register(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    if request.method != Method::POST {
        return method_not_allowed("POST");
    }
    let Some(Value::Object(mut metadata)) = request.json() else {
        return bad_request("invalid_client_metadata", "the body must be a JSON object");
    };
    let redirect_uris: Option<Vec<String>> = metadata
        .get("redirect_uris")
        .and_then(Value::as_array)
        .and_then(|uris| uris.iter().map(|u| u.as_str().map(str::to_owned)).collect());
    let redirect_uris = match redirect_uris {
        Some(uris) if !uris.is_empty() => uris,
        _ => {
            return bad_request(
                "invalid_redirect_uri",
                "redirect_uris must be a non-empty array of URIs",
            )
        }
    };
    let supported = &shared.config.token_endpoint_auth_methods;
    let requested = metadata
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or(AUTH_BASIC);
    let auth_method = if supported.iter().any(|m| m == requested) {
        requested.to_owned()
    } else {
        supported
            .first()
            .cloned()
            .unwrap_or_else(|| AUTH_BASIC.to_owned())
    };
    let mut state = shared.lock();
    let client_id = format!("client-{}", state.next_id());
    let secret = (auth_method != AUTH_NONE).then(|| format!("secret-{}", state.random()));
    state.clients.insert(
        client_id.clone(),
        Client {
            secret: secret.clone(),
            redirect_uris,
            auth_method: auth_method.clone(),
        },
    );
    drop(state);
    metadata.insert("client_id".into(), json!(client_id));
    metadata.insert("client_id_issued_at".into(), json!(unix_now()));
    metadata.insert("token_endpoint_auth_method".into(), json!(auth_method));
    if let Some(secret) = secret {
        metadata.insert("client_secret".into(), json!(secret));
        metadata.insert("client_secret_expires_at".into(), json!(0));
    }
    let mut response = response::json(StatusCode::CREATED, &Value::Object(metadata));
    no_store(&mut response);
    response
}
