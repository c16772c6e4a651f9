//! The trait implementation against a scripted service: every classification rmcp relies on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ::rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use ::rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use mcp_oauth_flow::BoxError;
use serde_json::{json, Value};
use tower_service::Service;

use super::{TowerHttpClient, TowerHttpError};
use crate::{AuthorizationFailed, BodyNotReplayable, BoxFuture, Error, ErrorKind};

type MockBody = UnsyncBoxBody<Bytes, BoxError>;
type Answer = Result<http::Response<MockBody>, Error>;
type HttpError = StreamableHttpError<TowerHttpError>;

const URI: &str = "http://127.0.0.1:1/mcp";

/// A request as the service received it.
struct Seen {
    method: http::Method,
    uri: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A service that answers from a script and records what it was sent.
#[derive(Clone, Default)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

impl Mock {
    fn new(answers: impl IntoIterator<Item = Answer>) -> Self {
        let mock = Self::default();
        mock.answers.lock().unwrap().extend(answers);
        mock
    }

    fn client(&self) -> TowerHttpClient<Mock> {
        TowerHttpClient::new(self.clone())
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap()
    }
}

impl Service<http::Request<Full<Bytes>>> for Mock {
    type Response = http::Response<MockBody>;
    type Error = Error;
    type Future = BoxFuture<'static, Answer>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Full<Bytes>>) -> Self::Future {
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script has an answer for every request");
        let seen = Arc::clone(&self.seen);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            seen.lock().unwrap().push(Seen {
                method: parts.method,
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            answer
        })
    }
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut response = http::Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    let body = Full::new(Bytes::from(body.to_owned()))
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok(response.body(body).unwrap())
}

fn json_answer(status: u16, body: Value) -> Answer {
    answer(
        status,
        &[("content-type", "application/json")],
        &body.to_string(),
    )
}

fn message(value: Value) -> ClientJsonRpcMessage {
    serde_json::from_value(value).unwrap()
}

fn ping() -> ClientJsonRpcMessage {
    message(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
}

fn initialized() -> ClientJsonRpcMessage {
    message(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
}

fn as_json(message: &ServerJsonRpcMessage) -> Value {
    serde_json::to_value(message).unwrap()
}

async fn post(
    mock: &Mock,
    message: ClientJsonRpcMessage,
) -> Result<StreamableHttpPostResponse, HttpError> {
    mock.client()
        .post_message(URI.into(), message, None, None, HashMap::new())
        .await
}

#[tokio::test]
async fn json_answer_with_session_id_and_the_request_rmcp_expects() {
    let mock = Mock::new([answer(
        200,
        &[
            ("content-type", "application/json"),
            ("mcp-session-id", "s-2"),
        ],
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
    )]);
    let custom = HashMap::from([
        (
            HeaderName::from_static("x-trace"),
            HeaderValue::from_static("t1"),
        ),
        (
            HeaderName::from_static("mcp-protocol-version"),
            HeaderValue::from_static("2025-11-25"),
        ),
    ]);
    let answer = mock
        .client()
        .post_message(
            URI.into(),
            ping(),
            Some("s-1".into()),
            Some("caller-token".into()),
            custom,
        )
        .await
        .unwrap();
    let StreamableHttpPostResponse::Json(message, session) = answer else {
        panic!("expected JSON, got {answer:?}");
    };
    assert_eq!(
        as_json(&message),
        json!({"jsonrpc":"2.0","id":1,"result":{}})
    );
    assert_eq!(session.as_deref(), Some("s-2"));

    let seen = mock.seen();
    let request = &seen[0];
    assert_eq!(request.method, http::Method::POST);
    assert_eq!(request.uri, URI);
    let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("accept"), "text/event-stream, application/json");
    assert_eq!(header("mcp-session-id"), "s-1");
    assert_eq!(header("mcp-protocol-version"), "2025-11-25");
    assert_eq!(header("x-trace"), "t1");
    assert_eq!(header("authorization"), "Bearer caller-token");
    assert!(request.headers.get("authorization").unwrap().is_sensitive());
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
}

#[tokio::test]
async fn accepted_and_empty_answers_to_notifications() {
    let mock = Mock::new([
        answer(202, &[], ""),
        answer(200, &[("content-type", "application/json")], ""),
        answer(200, &[("content-type", "application/json")], "not json"),
    ]);
    for _ in 0..3 {
        let answer = post(&mock, initialized()).await.unwrap();
        assert!(
            matches!(answer, StreamableHttpPostResponse::Accepted),
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn an_unparsable_answer_to_a_request_is_an_error() {
    let mock = Mock::new([answer(
        200,
        &[("content-type", "application/json")],
        "<html>",
    )]);
    let error = post(&mock, ping()).await.unwrap_err();
    assert!(
        matches!(&error, StreamableHttpError::UnexpectedServerResponse(m) if m.contains("<html>")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_content_type_is_refused() {
    let mock = Mock::new([answer(200, &[("content-type", "text/html")], "<html>")]);
    let error = post(&mock, ping()).await.unwrap_err();
    assert!(
        matches!(&error, StreamableHttpError::UnexpectedContentType(Some(ct)) if ct == "text/html"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_401_the_layer_hands_back_is_auth_required() {
    let challenge = r#"Bearer error="invalid_token", resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource""#;
    let mock = Mock::new([answer(401, &[("www-authenticate", challenge)], "")]);
    let error = post(&mock, ping()).await.unwrap_err();
    let StreamableHttpError::AuthRequired(error) = error else {
        panic!("expected AuthRequired, got {error:?}");
    };
    assert_eq!(error.www_authenticate_header, challenge);
}

#[tokio::test]
async fn a_refused_step_up_is_insufficient_scope_with_the_scope() {
    // A parameter value that looks like `scope=` must not be taken for the scope.
    let challenge = r#"Bearer error_description="scope=wrong", error="insufficient_scope", scope="mcp:write mcp:read""#;
    let mut response = answer(403, &[("www-authenticate", challenge)], "").unwrap();
    response
        .extensions_mut()
        .insert(AuthorizationFailed::new(Error::new(
            ErrorKind::StepUpLimit,
            "gave up",
        )));
    let mock = Mock::new([Ok(response)]);
    let error = post(&mock, ping()).await.unwrap_err();
    let StreamableHttpError::InsufficientScope(error) = error else {
        panic!("expected InsufficientScope, got {error:?}");
    };
    assert_eq!(error.www_authenticate_header, challenge);
    assert_eq!(error.get_required_scope(), Some("mcp:write mcp:read"));
}

/// rmcp sees every `WWW-Authenticate` line, read lossily: a `Bearer` challenge on a line after
/// another scheme's, with a byte past ASCII in a quoted string, is still `AuthRequired`; a
/// `403` takes its scope from the challenge that asks for it, wherever it stands.
#[tokio::test]
async fn every_challenge_line_reaches_rmcp_and_the_scope_is_the_step_up_challenges() {
    let mut response = answer(401, &[("www-authenticate", "Basic realm=My Realm")], "").unwrap();
    response.headers_mut().append(
        "www-authenticate",
        http::HeaderValue::from_bytes(b"Bearer error_description=\"caf\xE9\", scope=\"a\"")
            .unwrap(),
    );
    let mock = Mock::new([Ok(response)]);
    let error = post(&mock, ping()).await.unwrap_err();
    let StreamableHttpError::AuthRequired(error) = error else {
        panic!("expected AuthRequired, got {error:?}");
    };
    // The unreadable line of another scheme is left out; the OAuth one comes first.
    assert_eq!(
        error.www_authenticate_header,
        "Bearer error_description=\"caf\u{FFFD}\", scope=\"a\""
    );

    let challenge = r#"Bearer realm="mcp", DPoP error="insufficient_scope", scope="w""#;
    let mock = Mock::new([answer(403, &[("www-authenticate", challenge)], "")]);
    let StreamableHttpError::InsufficientScope(error) = post(&mock, ping()).await.unwrap_err()
    else {
        panic!("expected InsufficientScope");
    };
    assert_eq!(error.get_required_scope(), Some("w"));
}

#[tokio::test]
async fn a_401_without_a_challenge_keeps_its_status() {
    let mock = Mock::new([json_answer(
        401,
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "no"}}),
    )]);
    let error = post(&mock, ping()).await.unwrap_err();
    assert!(
        matches!(&error, StreamableHttpError::UnexpectedServerResponse(m) if m.starts_with("HTTP 401")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_layer_error_names_its_kind() {
    let mock = Mock::new([Err(Error::new(
        ErrorKind::ResourceMismatch,
        "resource https://evil.example.com/mcp does not cover http://127.0.0.1:1/mcp",
    ))]);
    let error = post(&mock, ping()).await.unwrap_err();
    assert!(error.to_string().contains("ResourceMismatch"), "{error}");
    let StreamableHttpError::Client(error) = error else {
        panic!("expected a client error, got {error:?}");
    };
    assert_eq!(error.kind(), Some(ErrorKind::ResourceMismatch));
}

#[tokio::test]
async fn status_errors_follow_rmcp() {
    let rpc_error =
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "boom"}});
    let mock = Mock::new([
        answer(503, &[("retry-after", "7")], "down"),
        answer(429, &[("content-type", "application/json")], "{}"),
        json_answer(500, rpc_error.clone()),
        answer(404, &[], "gone"),
    ]);
    let error = post(&mock, ping()).await.unwrap_err();
    let StreamableHttpError::HttpStatus(status) = error else {
        panic!("expected HttpStatus, got {error:?}");
    };
    assert_eq!(
        (status.status, status.retry_after.as_deref()),
        (503, Some("7"))
    );

    let error = post(&mock, ping()).await.unwrap_err();
    assert!(
        matches!(&error, StreamableHttpError::HttpStatus(s) if s.status == 429),
        "{error:?}"
    );

    let reply = post(&mock, ping()).await.unwrap();
    let StreamableHttpPostResponse::Json(message, _) = reply else {
        panic!("expected the JSON-RPC error, got {reply:?}");
    };
    assert_eq!(as_json(&message), rpc_error);

    // A 404 means an expired session only when a session was sent.
    let error = post(&mock, ping()).await.unwrap_err();
    assert!(
        matches!(&error, StreamableHttpError::UnexpectedServerResponse(m) if m == "HTTP 404 Not Found: gone"),
        "{error:?}"
    );
    let mock = Mock::new([answer(404, &[], "")]);
    let error = mock
        .client()
        .post_message(URI.into(), ping(), Some("old".into()), None, HashMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, StreamableHttpError::SessionExpired),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_refused_discover_becomes_a_correlated_json_rpc_error() {
    let discover =
        message(json!({"jsonrpc": "2.0", "id": 7, "method": "server/discover", "params": {}}));
    let mock = Mock::new([answer(
        400,
        &[("content-type", "text/plain")],
        "Bad Request",
    )]);
    let answer = post(&mock, discover).await.unwrap();
    let StreamableHttpPostResponse::Json(message, _) = answer else {
        panic!("expected a JSON-RPC error, got {answer:?}");
    };
    let message = as_json(&message);
    assert_eq!(message["id"], 7);
    assert_eq!(message["error"]["code"], -32600);
}

#[tokio::test]
async fn reserved_custom_headers_are_refused() {
    let mock = Mock::new([]);
    for name in ["accept", "mcp-session-id", "last-event-id"] {
        let custom =
            HashMap::from([(HeaderName::from_static(name), HeaderValue::from_static("x"))]);
        let error = mock
            .client()
            .post_message(URI.into(), ping(), None, None, custom)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StreamableHttpError::ReservedHeaderConflict(n) if n == name),
            "{error:?}"
        );
    }
    assert!(mock.seen().is_empty());
}

#[tokio::test]
async fn a_body_the_layer_could_not_replay_is_sent_again() {
    let mut first = answer(401, &[("www-authenticate", "Bearer")], "").unwrap();
    first.extensions_mut().insert(BodyNotReplayable::new());
    let mock = Mock::new([
        Ok(first),
        json_answer(200, json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
    ]);
    let answer = post(&mock, ping()).await.unwrap();
    assert!(
        matches!(answer, StreamableHttpPostResponse::Json(..)),
        "{answer:?}"
    );
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn delete_session_follows_rmcp() {
    let mock = Mock::new([
        answer(200, &[], ""),
        answer(405, &[], ""),
        answer(500, &[], ""),
    ]);
    let client = mock.client();
    let delete = || client.delete_session(URI.into(), "s-1".into(), None, HashMap::new());
    delete().await.unwrap();
    delete().await.unwrap();
    let error = delete().await.unwrap_err();
    assert!(
        matches!(&error, StreamableHttpError::HttpStatus(s) if s.status == 500),
        "{error:?}"
    );
    let seen = mock.seen();
    assert_eq!(seen[0].method, http::Method::DELETE);
    assert_eq!(seen[0].headers["mcp-session-id"], "s-1");
}

mod streams;
