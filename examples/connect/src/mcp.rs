//! Just enough of an MCP client over Streamable HTTP (protocol 2025-11-25) to list the tools:
//! `initialize`, `notifications/initialized`, `tools/list` (with pagination), and the session's
//! `DELETE`.

use bytes::{Buf, Bytes};
use http::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};
use tower_mcp_oauth::Error;

use super::sse::EventReader;
use super::ConnectError;

/// The protocol version this client asks for.
///
/// ```
/// assert_eq!(connect::PROTOCOL_VERSION, "2025-11-25");
/// ```
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// The largest response body read (a JSON response, or an event stream up to the answer).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// At most this many `tools/list` pages are fetched: a server that hands out cursors forever
/// must not keep the client busy forever.
const MAX_PAGES: usize = 100;

const SESSION_ID: &str = "mcp-session-id";
const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// A tool, as `tools/list` describes it.
///
/// ```
/// let tool = connect::Tool { name: "search".into(), description: None };
/// assert_eq!(tool.name, "search");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool {
    /// The tool's name, as `tools/call` takes it.
    pub name: String,
    /// What the tool does, if the server says.
    pub description: Option<String>,
}

/// The server as `initialize` introduced it.
#[derive(Clone, Debug)]
pub(crate) struct ServerInfo {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) protocol_version: String,
}

/// An initialized MCP session over a service that authorizes its requests.
pub(crate) struct Session<S> {
    service: S,
    url: String,
    session_id: Option<HeaderValue>,
    protocol_version: Option<HeaderValue>,
    next_id: u64,
}

impl<S, RB> Session<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>, Error = Error> + Clone,
    RB: Body + Unpin,
    RB::Error: std::fmt::Display,
{
    /// `initialize`, then `notifications/initialized` (MCP 2025-11-25, lifecycle).
    pub(crate) async fn initialize(
        service: S,
        url: &str,
        client_name: &str,
    ) -> Result<(Self, ServerInfo), ConnectError> {
        let mut session = Self {
            service,
            url: url.to_owned(),
            session_id: None,
            protocol_version: None,
            next_id: 1,
        };
        let params = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": env!("CARGO_PKG_VERSION")},
        });
        let (result, response_session) = session.call("initialize", params).await?;
        // Streamable HTTP: a session ID given with the initialize response goes on every later
        // request of the session.
        session.session_id = response_session;
        let info = ServerInfo {
            name: text(&result["serverInfo"]["name"]).unwrap_or("an unnamed server".into()),
            version: text(&result["serverInfo"]["version"]).unwrap_or_default(),
            protocol_version: text(&result["protocolVersion"]).ok_or_else(|| {
                ConnectError::Protocol("the initialize result has no protocolVersion".into())
            })?,
        };
        // Every request after initialization names the negotiated version.
        session.protocol_version =
            Some(HeaderValue::from_str(&info.protocol_version).map_err(|_| {
                ConnectError::Protocol(
                    "the negotiated protocolVersion is not a header value".into(),
                )
            })?);
        session.notify("notifications/initialized").await?;
        Ok((session, info))
    }

    /// Every tool, across `nextCursor` pages.
    pub(crate) async fn list_tools(&mut self) -> Result<Vec<Tool>, ConnectError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let (result, _) = self.call("tools/list", params).await?;
            let page = result["tools"].as_array().ok_or_else(|| {
                ConnectError::Protocol("the tools/list result has no tools array".into())
            })?;
            for tool in page {
                let name = text(&tool["name"]).ok_or_else(|| {
                    ConnectError::Protocol("a tool in tools/list has no name".into())
                })?;
                tools.push(Tool {
                    name,
                    description: text(&tool["description"]),
                });
            }
            cursor = text(&result["nextCursor"]);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(ConnectError::Protocol(format!(
            "tools/list returned more than {MAX_PAGES} pages"
        )))
    }

    /// Ends the session (`DELETE` with its ID), if the server gave one. Best effort: a server
    /// may answer `405` when clients cannot end sessions.
    pub(crate) async fn close(self) {
        let Some(id) = &self.session_id else { return };
        let mut request = Request::builder()
            .method(Method::DELETE)
            .uri(&self.url)
            .header(SESSION_ID, id);
        if let Some(version) = &self.protocol_version {
            request = request.header(PROTOCOL_VERSION_HEADER, version);
        }
        if let Ok(request) = request.body(Full::new(Bytes::new())) {
            let _ = self.service.clone().oneshot(request).await;
        }
    }

    /// A request; its `result`, and the session ID header of the response.
    async fn call(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<(Value, Option<HeaderValue>), ConnectError> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.send(&message).await?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(refused(method, response).await);
        }
        let session_id = response.headers().get(SESSION_ID).cloned();
        let answer = read_answer(response, id, method).await?;
        if let Some(error) = answer.get("error") {
            return Err(ConnectError::Protocol(format!(
                "the server answered {method} with error {}: {}",
                error["code"],
                text(&error["message"]).unwrap_or_default()
            )));
        }
        match answer.get("result") {
            Some(result) => Ok((result.clone(), session_id)),
            None => Err(ConnectError::Protocol(format!(
                "the answer to {method} has neither result nor error"
            ))),
        }
    }

    /// A notification: the server accepts it with `202` (or `200`).
    async fn notify(&mut self, method: &str) -> Result<(), ConnectError> {
        let response = self
            .send(&json!({"jsonrpc": "2.0", "method": method}))
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(refused(method, response).await)
        }
    }

    async fn send(&self, message: &Value) -> Result<Response<RB>, ConnectError> {
        let mut request = Request::post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            // Streamable HTTP: the client must accept both a JSON answer and an event stream.
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(id) = &self.session_id {
            request = request.header(SESSION_ID, id);
        }
        if let Some(version) = &self.protocol_version {
            request = request.header(PROTOCOL_VERSION_HEADER, version);
        }
        let request = request
            .body(Full::new(Bytes::from(message.to_string())))
            .map_err(|e| {
                ConnectError::Protocol(format!("cannot build a request to {}: {e}", self.url))
            })?;
        Ok(self.service.clone().oneshot(request).await?)
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// The error for a response other than `200` (or, for a notification, `2xx`).
async fn refused<RB>(method: &str, response: Response<RB>) -> ConnectError
where
    RB: Body,
    RB::Error: std::fmt::Display,
{
    let status = response.status();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = prefix(response.into_body(), 2048).await;
    let snippet: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    let mut message = format!("the server answered {method} with HTTP {status}");
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        // The layer already ran the flow and retried: the server refuses the fresh token.
        message.push_str(" even after authorization");
        if let Some(challenge) = challenge {
            message.push_str(&format!(" (WWW-Authenticate: {challenge})"));
        }
    }
    if !snippet.is_empty() {
        message.push_str(&format!(": {snippet}"));
    }
    ConnectError::Protocol(message)
}

/// The first `max` bytes (or a little more) of a body; a read error ends it early.
async fn prefix<RB: Body>(body: RB, max: usize) -> Vec<u8> {
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while out.len() < max {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    out.extend_from_slice(&data.copy_to_bytes(data.remaining()));
                }
            }
            _ => break,
        }
    }
    out
}

/// Reads the JSON-RPC answer with `id` from a JSON body or from an event stream (where the
/// server may send its own requests and notifications first, which this client skips).
async fn read_answer<RB>(
    response: Response<RB>,
    id: u64,
    method: &str,
) -> Result<Value, ConnectError>
where
    RB: Body + Unpin,
    RB::Error: std::fmt::Display,
{
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut body = response.into_body();
    let is_answer = |message: &Value| {
        message.get("id").and_then(Value::as_u64) == Some(id)
            && (message.get("result").is_some() || message.get("error").is_some())
    };
    let mut read = 0usize;
    let mut events = EventReader::default();
    let mut json = Vec::new();
    let stream = content_type.starts_with("text/event-stream");
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ConnectError::Protocol(format!("reading the answer to {method} failed: {e}"))
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let chunk = data.copy_to_bytes(data.remaining());
        read += chunk.len();
        if read > MAX_BODY {
            return Err(ConnectError::Protocol(format!(
                "the answer to {method} is larger than {MAX_BODY} bytes"
            )));
        }
        if stream {
            // Stop at the answer: the server may keep the stream open after it.
            for data in events.push(&chunk) {
                if let Ok(message) = serde_json::from_str::<Value>(&data) {
                    if is_answer(&message) {
                        return Ok(message);
                    }
                }
            }
        } else {
            json.extend_from_slice(&chunk);
        }
    }
    if stream {
        return Err(ConnectError::Protocol(format!(
            "the event stream ended without an answer to {method}"
        )));
    }
    let message: Value = serde_json::from_slice(&json).map_err(|e| {
        ConnectError::Protocol(format!(
            "the answer to {method} is not JSON ({content_type:?}): {e}"
        ))
    })?;
    if is_answer(&message) {
        Ok(message)
    } else {
        Err(ConnectError::Protocol(format!(
            "the answer to {method} is not a JSON-RPC response with id {id}"
        )))
    }
}
