//! One exchange per method of rmcp's trait: send through the service, classify the answer.

use std::collections::HashMap;
use std::sync::Arc;

use ::rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use ::rmcp::transport::common::http_header::JSON_MIME_TYPE;
use ::rmcp::transport::streamable_http_client::{
    AuthRequiredError, StreamableHttpError, StreamableHttpPostResponse,
};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body::Body;
use http_body_util::Full;
use mcp_oauth_flow::{BoxError, Error};
use tower::ServiceExt;
use tower_service::Service;
use tracing::{debug, warn};

use super::client::TowerHttpClient;
use super::error::TowerHttpError;
use super::request::Outgoing;
use super::response::{
    auth_error, content_type, expects_no_reply, is_event_stream, is_json, json_rpc_error, preview,
    read_bounded, refused_discover, session_id, status_error, HttpError, ReadError,
    MAX_ERROR_RESPONSE_BYTES, MAX_JSON_RESPONSE_BYTES,
};
use super::sse::{event_stream, EventStream};
use crate::BodyNotReplayable;

fn layer_error(error: Error) -> HttpError {
    StreamableHttpError::Client(TowerHttpError::Layer(error))
}

/// A layer error on the event stream's GET as rmcp's reconnecting worker should read it.
/// rmcp retries every `Client` error for ever (its `classify_reconnect_error` ends only on
/// `AuthRequired`, `InsufficientScope` and a server without SSE), so a refusal no retry can
/// lift (the user must connect, a limit reached, a consent refused or timed out, a logout)
/// would loop in the background while the app never hears of it: it is rmcp's `AuthRequired`
/// here, with no challenge (none came from the server), and the layer's own error is logged.
/// Every other error passes as it is.
fn stream_error(error: HttpError) -> HttpError {
    use mcp_oauth_flow::ErrorKind::*;
    match error {
        StreamableHttpError::Client(TowerHttpError::Layer(e))
            if matches!(
                e.kind(),
                InteractionRequired
                    | AuthorizationLimit
                    | StepUpLimit
                    | AuthorizationDenied
                    | Consent
                    | ConsentTimeout
                    | LoggedOut
            ) =>
        {
            warn!(kind = ?e.kind(), error = %e, "the event stream needs an authorization the layer cannot get; rmcp's reconnects end here");
            StreamableHttpError::AuthRequired(AuthRequiredError::new(String::new()))
        }
        other => other,
    }
}

impl<S, B> TowerHttpClient<S>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = Error>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Sends `outgoing` once, or twice when the layer ran a flow but could not replay the body
    /// (it was over the layer's `max_replay_bytes`): the message is in memory here, and the
    /// second attempt carries the new token.
    async fn send(service: S, outgoing: &Outgoing) -> Result<http::Response<B>, HttpError> {
        let response = service
            .clone()
            .oneshot(outgoing.request()?)
            .await
            .map_err(layer_error)?;
        if response.extensions().get::<BodyNotReplayable>().is_none() {
            return Ok(response);
        }
        debug!("resending a message the layer could not replay after authorizing");
        service
            .oneshot(outgoing.request()?)
            .await
            .map_err(layer_error)
    }

    /// `post_message`: a JSON-RPC message, answered by `202`, JSON or an SSE stream.
    pub(super) async fn post(
        service: S,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let body = serde_json::to_vec(&message)
            .map_err(|e| StreamableHttpError::Client(TowerHttpError::Serialize(e)))?;
        let mut outgoing = Outgoing::new(Method::POST, uri, auth_token, custom_headers)?;
        outgoing.header(CONTENT_TYPE.as_str(), JSON_MIME_TYPE)?;
        let session_attached = session.is_some();
        if let Some(session) = &session {
            outgoing.header("mcp-session-id", session)?;
        }
        outgoing.body = Bytes::from(body);

        let response = Self::send(service, &outgoing).await?;
        if let Some(error) = auth_error(&response) {
            return Err(error);
        }
        let status = response.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == StatusCode::NOT_FOUND && session_attached {
            return Err(StreamableHttpError::SessionExpired);
        }
        let content_type = content_type(response.headers());
        let json = is_json(content_type.as_deref());
        // A 429, and a 5xx that is not JSON, say all they have in the status: the body is not
        // read. A JSON 5xx may carry a JSON-RPC error worth handing on.
        let status_error = match status_error(status, response.headers()) {
            Some(error) if !json || status == StatusCode::TOO_MANY_REQUESTS => {
                return Err(error.into())
            }
            other => other,
        };
        let session = session_id(response.headers());
        let body = response.into_body();

        if status.is_success() && body.size_hint().exact() == Some(0) && expects_no_reply(&message)
        {
            // The spec asks for 202, but some servers answer a notification with an empty 200.
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if !status.is_success() {
            let body = match read_bounded(body, MAX_ERROR_RESPONSE_BYTES).await {
                Ok(body) => body,
                Err(ReadError::TooLarge) => {
                    return Err(status_error.map(StreamableHttpError::HttpStatus).unwrap_or(
                        StreamableHttpError::ResponseBodyTooLarge {
                            max_size: MAX_ERROR_RESPONSE_BYTES,
                        },
                    ))
                }
                Err(ReadError::Body(_)) => Bytes::from_static(b"<failed to read response body>"),
            };
            if let Some(answer) = refused_discover(&message, session_attached, status, &body) {
                return Ok(StreamableHttpPostResponse::Json(answer, None));
            }
            // A 401/403 without a challenge keeps its status rather than pass as an ordinary
            // JSON-RPC error.
            let auth_failure =
                status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            if json && !auth_failure {
                match json_rpc_error(&body) {
                    Some(error) => return Ok(StreamableHttpPostResponse::Json(error, session)),
                    None => warn!(%status, "could not parse a JSON error body as a JSON-RPC error"),
                }
            }
            if let Some(error) = status_error {
                return Err(error.into());
            }
            return Err(StreamableHttpError::UnexpectedServerResponse(
                format!("HTTP {status}: {}", preview(&body)).into(),
            ));
        }
        if is_event_stream(content_type.as_deref()) {
            let events = event_stream(body, max_sse_event_size);
            return Ok(StreamableHttpPostResponse::Sse(events, session));
        }
        if !json {
            return Err(StreamableHttpError::UnexpectedContentType(content_type));
        }
        let body = read_bounded(body, MAX_JSON_RESPONSE_BYTES)
            .await
            .map_err(|e| e.into_http_error(MAX_JSON_RESPONSE_BYTES))?;
        match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
            Ok(answer) => Ok(StreamableHttpPostResponse::Json(answer, session)),
            // Nothing waits for an answer to a notification: an odd body does no harm. A
            // request does wait, so the same body must be an error, not a silent hang.
            Err(error) if expects_no_reply(&message) => {
                warn!(%error, "ignoring an unparsable JSON answer to a notification");
                Ok(StreamableHttpPostResponse::Accepted)
            }
            Err(error) => Err(StreamableHttpError::UnexpectedServerResponse(
                format!(
                    "could not parse JSON response as ServerJsonRpcMessage: {error}: {}",
                    preview(&body)
                )
                .into(),
            )),
        }
    }

    /// `get_stream`: the server's SSE stream for a session, or a resumed response stream.
    pub(super) async fn get(
        service: S,
        uri: Arc<str>,
        session: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<EventStream, HttpError> {
        let mut outgoing = Outgoing::new(Method::GET, uri, auth_token, custom_headers)?;
        if let Some(session) = &session {
            outgoing.header("mcp-session-id", session)?;
        }
        if let Some(last_event_id) = &last_event_id {
            outgoing.header("last-event-id", last_event_id)?;
        }
        let response = Self::send(service, &outgoing).await.map_err(stream_error)?;
        let status = response.status();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        if let Some(error) = auth_error(&response) {
            return Err(error);
        }
        if let Some(error) = status_error(status, response.headers()) {
            return Err(error.into());
        }
        if !status.is_success() {
            return Err(StreamableHttpError::UnexpectedServerResponse(
                format!("HTTP {status} to the SSE GET").into(),
            ));
        }
        // rmcp's clients accept JSON here too and hand it to the SSE parser; so does this one,
        // to behave the same against the same servers.
        let content_type = content_type(response.headers());
        if !is_event_stream(content_type.as_deref()) && !is_json(content_type.as_deref()) {
            return Err(StreamableHttpError::UnexpectedContentType(content_type));
        }
        Ok(event_stream(response.into_body(), max_sse_event_size))
    }

    /// `delete_session`: ends a session; a server that cannot (`405`) is not an error.
    pub(super) async fn delete(
        service: S,
        uri: Arc<str>,
        session: Arc<str>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        let mut outgoing = Outgoing::new(Method::DELETE, uri, auth_token, custom_headers)?;
        outgoing.header("mcp-session-id", &session)?;
        let response = Self::send(service, &outgoing).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            debug!("the server does not support deleting sessions");
            return Ok(());
        }
        if let Some(error) = auth_error(&response) {
            return Err(error);
        }
        if let Some(error) = status_error(status, response.headers()) {
            return Err(error.into());
        }
        Err(StreamableHttpError::UnexpectedServerResponse(
            format!("HTTP {status} to the session DELETE").into(),
        ))
    }
}
