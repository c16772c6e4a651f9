//! How an HTTP response becomes rmcp's answer or error, the same way rmcp's own reqwest client
//! classifies it, so that an application sees the same `StreamableHttpError` variants whichever
//! client it plugs in.

use std::borrow::Cow;

use ::rmcp::model::{ClientJsonRpcMessage, ClientRequest, ErrorData, ServerJsonRpcMessage};
use ::rmcp::transport::common::http_header::{
    EVENT_STREAM_MIME_TYPE, HEADER_SESSION_ID, JSON_MIME_TYPE,
};
use ::rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpError,
};
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use mcp_oauth_flow::{
    challenge::{
        insufficient_scope_challenge, may_name_an_oauth_scheme, select_challenge, Challenge,
    },
    BoxError,
};
use tracing::warn;

use super::error::TowerHttpError;
use crate::AuthorizationFailed;

pub(crate) type HttpError = StreamableHttpError<TowerHttpError>;

/// rmcp's limit on a successful JSON response body (its reqwest client uses the same).
pub(crate) const MAX_JSON_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// rmcp's limit on the body of a failed response, read only to find a JSON-RPC error in it.
pub(crate) const MAX_ERROR_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of an unparsable body goes into an error message.
const PREVIEW_BYTES: usize = 256;
/// rmcp keeps a `Retry-After` value only up to this length.
const MAX_RETRY_AFTER_BYTES: usize = 128;

/// A `401` or `403` that carries a challenge, as rmcp's auth errors.
///
/// The layer has already done what it can by the time such a response reaches here: it ran
/// the flow and retried, or it refused a step-up (and says why in
/// [`AuthorizationFailed`](crate::AuthorizationFailed)). rmcp's error types have no room for
/// that reason, so it is logged.
pub(crate) fn auth_error<B>(response: &http::Response<B>) -> Option<HttpError> {
    let (status, headers) = (response.status(), response.headers());
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return None;
    }
    if let Some(failed) = response.extensions().get::<AuthorizationFailed>() {
        let error = failed.error();
        warn!(kind = ?error.kind(), %error, "the layer did not authorize the step-up");
    }
    // Every line, read lossily (a quoted string may hold bytes past ASCII, RFC 9110
    // `obs-text`, which rmcp's text field cannot hold as they came), the lines with an OAuth
    // challenge first: rmcp's own reader takes the first `scope=` or `error=` it finds. A line
    // of another scheme that cannot be read is left out, as the core's parser leaves it.
    let (mut oauth, mut other) = (Vec::new(), Vec::new());
    for line in headers.get_all(WWW_AUTHENTICATE) {
        let text = String::from_utf8_lossy(line.as_bytes()).into_owned();
        let is_oauth = |c: &Challenge| c.scheme_is("bearer") || c.scheme_is("dpop");
        match Challenge::parse_all([line.as_bytes()]) {
            Ok(all) if all.iter().any(is_oauth) => oauth.push(text),
            Ok(_) => other.push(text),
            Err(_) if may_name_an_oauth_scheme(&text) => oauth.push(text),
            Err(_) => {}
        }
    }
    if oauth.is_empty() && other.is_empty() {
        return None;
    }
    oauth.append(&mut other);
    let header = oauth.join(", ");
    if status == StatusCode::UNAUTHORIZED {
        return Some(StreamableHttpError::AuthRequired(AuthRequiredError::new(
            header,
        )));
    }
    // The RFC 9110 parser of the core, not a substring search: `scope=` may be quoted, may sit
    // in a later challenge, and must not be taken from another parameter's value.
    let scope = Challenge::from_headers(headers).ok().and_then(|all| {
        insufficient_scope_challenge(&all)
            .or_else(|| select_challenge(&all))
            .and_then(|c| c.scope().map(str::to_owned))
    });
    Some(StreamableHttpError::InsufficientScope(
        InsufficientScopeError::new(header, scope),
    ))
}

/// `429` and `5xx` as rmcp's body-free status error, with a bounded `Retry-After`.
pub(crate) fn status_error(status: StatusCode, headers: &HeaderMap) -> Option<HttpStatusError> {
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    let retry_after = headers
        .get(RETRY_AFTER)
        .filter(|v| v.len() <= MAX_RETRY_AFTER_BYTES)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Some(HttpStatusError::new(status.as_u16(), retry_after))
}

/// The `Content-Type` header, if any, as text.
pub(crate) fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.starts_with(JSON_MIME_TYPE))
}

pub(crate) fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.starts_with(EVENT_STREAM_MIME_TYPE))
}

/// The `Mcp-Session-Id` the server assigned, if it sent a readable one.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether a POST of `message` expects no JSON-RPC reply (so an empty or odd `200` is as good
/// as a `202`).
pub(crate) fn expects_no_reply(message: &ClientJsonRpcMessage) -> bool {
    matches!(
        message,
        ClientJsonRpcMessage::Notification(_)
            | ClientJsonRpcMessage::Response(_)
            | ClientJsonRpcMessage::Error(_)
    )
}

/// Why a body could not be read whole.
pub(crate) enum ReadError {
    TooLarge,
    Body(BoxError),
}

impl ReadError {
    pub(crate) fn into_http_error(self, max_size: usize) -> HttpError {
        match self {
            Self::TooLarge => StreamableHttpError::ResponseBodyTooLarge { max_size },
            Self::Body(e) => StreamableHttpError::Client(TowerHttpError::Body(e)),
        }
    }
}

/// Reads `body` whole, refusing more than `max` bytes. The size hint only rejects early; the
/// count of bytes actually read is what decides.
pub(crate) async fn read_bounded<B>(body: B, max: usize) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > max as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Body(e.into()))?;
        if let Ok(data) = frame.into_data() {
            if data.len() > max - collected.len() {
                return Err(ReadError::TooLarge);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// The start of an unusable body, for an error message: an empty body, an HTML page and `{}`
/// should be told apart without logging a whole page.
pub(crate) fn preview(body: &[u8]) -> Cow<'static, str> {
    if body.is_empty() {
        return Cow::Borrowed("<empty>");
    }
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(PREVIEW_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(text[..end].to_owned())
}

/// A JSON-RPC error carried by a failed response, if the body is one.
pub(crate) fn json_rpc_error(body: &[u8]) -> Option<ServerJsonRpcMessage> {
    match serde_json::from_slice::<ServerJsonRpcMessage>(body) {
        Ok(message @ ServerJsonRpcMessage::Error(_)) => Some(message),
        _ => None,
    }
}

/// A sessionless `server/discover` refused with a `4xx` (other than `401`/`403`) is how a
/// server of an older protocol answers: rmcp needs it as a JSON-RPC error with the request's
/// id to fall back to `initialize`, as its own clients deliver it.
pub(crate) fn refused_discover(
    message: &ClientJsonRpcMessage,
    session_attached: bool,
    status: StatusCode,
    body: &[u8],
) -> Option<ServerJsonRpcMessage> {
    if session_attached
        || !status.is_client_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
    {
        return None;
    }
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    if !matches!(request.request, ClientRequest::DiscoverRequest(_)) {
        return None;
    }
    let error = match json_rpc_error(body).and_then(|m| m.into_error()) {
        Some((error, _)) => error,
        None => ErrorData::invalid_request(
            format!(
                "server/discover rejected with HTTP {status}: {}",
                preview(body)
            ),
            None,
        ),
    };
    Some(ServerJsonRpcMessage::error(error, Some(request.id.clone())))
}
