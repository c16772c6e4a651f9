//! A minimal MCP client session over Streamable HTTP: JSON-RPC 2.0 requests POSTed to one URL,
//! answered with either `application/json` or a `text/event-stream`.
//!
//! Two wires are spoken, chosen by protocol version:
//! - **stateful** (2025-11-25 and older): `initialize`, `notifications/initialized`, then the
//!   calls, echoing `Mcp-Session-Id` and sending `MCP-Protocol-Version` after initialization;
//! - **stateless** (2026-07-28, SEP-2575): no handshake; every request carries the version in the
//!   `MCP-Protocol-Version` header and in `params._meta`, plus the `Mcp-Method` / `Mcp-Name`
//!   routing headers.
//!
//! The session is generic over the HTTP service so it can be driven by the OAuth-layered client
//! in `main.rs` or by a fake server in the tests. It knows nothing about authorization.

use std::fmt;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{Service, ServiceExt};

/// The first protocol version that uses the stateless wire.
const STATELESS_SINCE: &str = "2026-07-28";
/// JSON-RPC error code of the stateless wire for "unsupported protocol version".
const UNSUPPORTED_VERSION: i64 = -32022;
/// How much of a response body an error message quotes.
const QUOTE_LIMIT: usize = 400;

/// Why a session failed.
#[derive(Debug)]
pub(crate) enum SessionError<E> {
    /// The HTTP service (for the conformance binary: the OAuth layer) returned an error.
    Service {
        /// The MCP method that was called.
        method: String,
        /// The service's error.
        error: E,
    },
    /// A response had a non-2xx status.
    Status {
        /// The MCP method that was called.
        method: String,
        /// The HTTP status.
        status: StatusCode,
        /// The start of the response body.
        body: String,
    },
    /// The server answered with a JSON-RPC error.
    JsonRpc {
        /// The MCP method that was called.
        method: String,
        /// The JSON-RPC error object.
        error: Value,
    },
    /// The response could not be read or did not contain the expected JSON-RPC response.
    Protocol {
        /// The MCP method that was called.
        method: String,
        /// What was wrong.
        detail: String,
    },
}

impl<E: fmt::Display> fmt::Display for SessionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service { method, error } => write!(f, "{method}: {error}"),
            Self::Status {
                method,
                status,
                body,
            } => {
                write!(f, "{method}: HTTP {status}")?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            Self::JsonRpc { method, error } => write!(f, "{method}: JSON-RPC error {error}"),
            Self::Protocol { method, detail } => write!(f, "{method}: {detail}"),
        }
    }
}

/// Which lifecycle a protocol version uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// `initialize` handshake, optional `Mcp-Session-Id` (2025-11-25 and older).
    Stateful,
    /// No handshake; version and capabilities in every request (SEP-2575).
    Stateless,
}

impl Wire {
    /// The wire of `version`; date versions compare as strings.
    fn for_version(version: &str) -> Self {
        if version >= STATELESS_SINCE {
            Self::Stateless
        } else {
            Self::Stateful
        }
    }
}

/// One MCP client session against one Streamable HTTP endpoint.
pub(crate) struct Session<S> {
    /// The HTTP service requests go through.
    service: S,
    /// The MCP endpoint.
    url: Uri,
    /// The lifecycle in use.
    wire: Wire,
    /// The protocol version requested (stateless) or negotiated (stateful).
    version: String,
    /// `Mcp-Session-Id` from the `initialize` response, echoed on later requests.
    session_id: Option<HeaderValue>,
    /// Whether `initialize` completed (stateful wire): from then on the version header is sent.
    initialized: bool,
    /// The next JSON-RPC request id.
    next_id: u64,
    /// `clientInfo`: name and version.
    client_info: Value,
}

impl<S, B> Session<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    /// A session speaking `version` to `url` through `service`.
    pub(crate) fn new(service: S, url: Uri, version: &str, client_name: &str) -> Self {
        Self {
            service,
            url,
            wire: Wire::for_version(version),
            version: version.to_owned(),
            session_id: None,
            initialized: false,
            next_id: 1,
            client_info: json!({ "name": client_name, "version": env!("CARGO_PKG_VERSION") }),
        }
    }

    /// The conformance run: the handshake (stateful wire only), `tools/list`, then `tools/call`
    /// of `test-tool`.
    pub(crate) async fn run(&mut self) -> Result<(), SessionError<S::Error>> {
        if self.wire == Wire::Stateful {
            self.initialize().await?;
        }
        let tools = self.request("tools/list", json!({}), None).await?;
        let count = tools
            .get("tools")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        eprintln!("mcp: tools/list returned {count} tool(s)");
        let params = json!({ "name": "test-tool", "arguments": {} });
        let result = self
            .request("tools/call", params, Some("test-tool"))
            .await?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            eprintln!("mcp: tools/call result has isError: true: {result}");
        }
        Ok(())
    }

    /// The stateful handshake: `initialize`, then `notifications/initialized`.
    async fn initialize(&mut self) -> Result<(), SessionError<S::Error>> {
        let params = json!({
            "protocolVersion": self.version,
            "capabilities": {},
            "clientInfo": self.client_info,
        });
        let result = self.request("initialize", params, None).await?;
        if let Some(version) = result.get("protocolVersion").and_then(Value::as_str) {
            if version != self.version {
                eprintln!("mcp: server negotiated protocol version {version}");
                self.version = version.to_owned();
            }
        }
        self.initialized = true;
        let message = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let method = "notifications/initialized";
        let (status, _, body) = self.post(method, None, &message).await?;
        if !status.is_success() {
            return Err(status_error(method, status, &body));
        }
        Ok(())
    }

    /// Sends request `method` and returns its `result`. On the stateless wire, an
    /// unsupported-version error naming supported versions is retried once with the first one.
    async fn request(
        &mut self,
        method: &str,
        params: Value,
        name: Option<&str>,
    ) -> Result<Value, SessionError<S::Error>> {
        let mut retried = false;
        loop {
            let id = self.next_id;
            self.next_id += 1;
            let message = json!({
                "jsonrpc": "2.0",
                "id": id,
                "method": method,
                "params": self.with_meta(params.clone()),
            });
            let (status, headers, body) = self.post(method, name, &message).await?;
            let reply = find_response(&content_type(&headers), &body, id);
            if let Some(supported) = reply.as_ref().and_then(supported_versions) {
                if self.wire == Wire::Stateless && !retried && supported != self.version {
                    eprintln!(
                        "mcp: version {} unsupported, retrying with {supported}",
                        self.version
                    );
                    self.version = supported;
                    retried = true;
                    continue;
                }
            }
            if !status.is_success() {
                return Err(status_error(method, status, &body));
            }
            if method == "initialize" {
                if let Some(session_id) = headers.get("mcp-session-id") {
                    self.session_id = Some(session_id.clone());
                }
            }
            let Some(reply) = reply else {
                return Err(SessionError::Protocol {
                    method: method.to_owned(),
                    detail: format!("no JSON-RPC response with id {id} in: {}", quote(&body)),
                });
            };
            if let Some(error) = reply.get("error") {
                return Err(SessionError::JsonRpc {
                    method: method.to_owned(),
                    error: error.clone(),
                });
            }
            return match reply.get("result") {
                Some(result) => Ok(result.clone()),
                None => Err(SessionError::Protocol {
                    method: method.to_owned(),
                    detail: format!("response has neither result nor error: {reply}"),
                }),
            };
        }
    }

    /// Adds the stateless wire's `params._meta` entries; other wires get `params` unchanged.
    fn with_meta(&self, mut params: Value) -> Value {
        if self.wire != Wire::Stateless {
            return params;
        }
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": self.version,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": self.client_info,
        });
        if let Value::Object(object) = &mut params {
            object.insert("_meta".to_owned(), meta);
        } else {
            params = json!({ "_meta": meta });
        }
        params
    }

    /// POSTs one JSON-RPC message and reads the whole response; logs the method and status.
    async fn post(
        &mut self,
        method: &str,
        name: Option<&str>,
        message: &Value,
    ) -> Result<(StatusCode, HeaderMap, Bytes), SessionError<S::Error>> {
        let request = self.build(method, name, message)?;
        let response = match self.service.clone().oneshot(request).await {
            Ok(response) => response,
            Err(error) => {
                eprintln!("mcp: {method} -> no response (the HTTP service failed)");
                let method = method.to_owned();
                return Err(SessionError::Service { method, error });
            }
        };
        let status = response.status();
        eprintln!("mcp: {method} -> HTTP {status}");
        let (parts, body) = response.into_parts();
        let id = message.get("id").and_then(Value::as_u64);
        let body = read_body(body, content_type(&parts.headers), id)
            .await
            .map_err(|detail| SessionError::Protocol {
                method: method.to_owned(),
                detail,
            })?;
        Ok((status, parts.headers, body))
    }

    /// Builds the POST for `message` with the wire's headers.
    fn build(
        &self,
        method: &str,
        name: Option<&str>,
        message: &Value,
    ) -> Result<Request<Full<Bytes>>, SessionError<S::Error>> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        if self.wire == Wire::Stateless || self.initialized {
            builder = builder.header("mcp-protocol-version", self.version.as_str());
        }
        if let Some(session_id) = &self.session_id {
            builder = builder.header("mcp-session-id", session_id.clone());
        }
        if self.wire == Wire::Stateless {
            builder = builder.header("mcp-method", method);
            if let Some(name) = name {
                builder = builder.header("mcp-name", name);
            }
        }
        builder
            .body(Full::new(Bytes::from(message.to_string())))
            .map_err(|error| SessionError::Protocol {
                method: method.to_owned(),
                detail: error.to_string(),
            })
    }
}

/// A [`SessionError::Status`] quoting the body.
fn status_error<E>(method: &str, status: StatusCode, body: &[u8]) -> SessionError<E> {
    SessionError::Status {
        method: method.to_owned(),
        status,
        body: quote(body),
    }
}

/// The response's media type, lowercased, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads a response body. An event stream is read only until the response to `id` arrived, so
/// a server that keeps the stream open cannot stall the session.
async fn read_body<B>(mut body: B, content_type: String, id: Option<u64>) -> Result<Bytes, String>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("reading the response body: {error}"))?;
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
            if let Some(id) = id {
                if content_type == "text/event-stream"
                    && find_response(&content_type, &buffer, id).is_some()
                {
                    break;
                }
            }
        }
    }
    Ok(buffer.freeze())
}

/// The JSON-RPC response to request `id` in a body, JSON or SSE. A JSON-RPC error with a null
/// or missing id (the server could not read the request's id) also counts.
pub(crate) fn find_response(content_type: &str, body: &[u8], id: u64) -> Option<Value> {
    let messages: Vec<Value> = if content_type == "text/event-stream" {
        sse_data(body)
            .iter()
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect()
    } else {
        serde_json::from_slice(body).ok().into_iter().collect()
    };
    let flat = messages.into_iter().flat_map(|message| match message {
        Value::Array(batch) => batch,
        single => vec![single],
    });
    let mut orphan_error = None;
    for message in flat {
        let Some(object) = message.as_object() else {
            continue;
        };
        if !object.contains_key("result") && !object.contains_key("error") {
            continue; // a request or notification from the server
        }
        match object.get("id") {
            Some(found) if found == &json!(id) => return Some(message),
            None | Some(Value::Null) if object.contains_key("error") => {
                orphan_error.get_or_insert(message);
            }
            _ => {}
        }
    }
    orphan_error
}

/// The `data` of each complete or trailing event in an SSE stream (several `data:` lines of one
/// event are joined with `\n`); events without data are skipped.
pub(crate) fn sse_data(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            events.extend(data.take());
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut data {
                Some(joined) => {
                    joined.push('\n');
                    joined.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    events.extend(data);
    events
}

/// `data.supported[0]` of an unsupported-protocol-version JSON-RPC error.
fn supported_versions(reply: &Value) -> Option<String> {
    let error = reply.get("error")?;
    if error.get("code").and_then(Value::as_i64) != Some(UNSUPPORTED_VERSION) {
        return None;
    }
    let first = error.get("data")?.get("supported")?.as_array()?.first()?;
    first.as_str().map(str::to_owned)
}

/// The start of a body, for error messages.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
