//! Response builders shared by both servers.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::record::CannedResponse;

/// The response type of both servers.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// A response with this status, content type and body.
pub(crate) fn with_body(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// An `application/json` response.
pub(crate) fn json(status: StatusCode, value: &Value) -> HttpResponse {
    with_body(status, "application/json", value.to_string())
}

/// A response without a body.
pub(crate) fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// 404 with a short text body.
pub(crate) fn not_found() -> HttpResponse {
    with_body(StatusCode::NOT_FOUND, "text/plain", "not found")
}

/// 405 with an `Allow` header.
pub(crate) fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = with_body(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain",
        "method not allowed",
    );
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// An OAuth error response `{"error": …, "error_description": …}` (never cached).
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let mut response = json(
        status,
        &json!({"error": error, "error_description": description}),
    );
    no_store(&mut response);
    response
}

/// A 400 OAuth error response.
pub(crate) fn bad_request(error: &str, description: &str) -> HttpResponse {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// Adds `Cache-Control: no-store`.
pub(crate) fn no_store(response: &mut HttpResponse) {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Sets a header from strings, ignoring invalid ones.
pub(crate) fn set_header(response: &mut HttpResponse, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        response.headers_mut().append(name, value);
    }
}

/// Turns an override into a response.
pub(crate) fn canned(canned: &CannedResponse) -> HttpResponse {
    let status = StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Full::new(canned.body.clone()));
    *response.status_mut() = status;
    for (name, value) in &canned.headers {
        set_header(&mut response, name, value);
    }
    response
}
