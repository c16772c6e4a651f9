//! The app's side of MCP: the inner HTTP client, a JSON-RPC request, and the answer read back.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_mcp_oauth::OAuthBody;

/// The request body the app sends.
pub type Body = Full<Bytes>;

/// hyper-util's legacy client, carrying the layer's body type.
pub type HttpClient = Client<HttpConnector, OAuthBody<Body>>;

/// A hyper-util client over plain HTTP (the example's MCP server listens on loopback).
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A JSON-RPC 2.0 POST to an MCP endpoint.
pub(crate) fn jsonrpc(
    url: &str,
    id: u64,
    method: &str,
    params: serde_json::Value,
) -> http::Request<Body> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

/// The most of an MCP answer the app reads.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long the app waits for an MCP answer.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the JSON-RPC answer with `id` from a response body: the body itself, or, from a
/// Server-Sent Events stream, the first `data:` line that answers `id` (a server may send
/// notifications before it, and may keep the stream open after it). At most
/// [`MAX_ANSWER_BYTES`], within [`ANSWER_TIMEOUT`]: a server that sends more, or never ends,
/// fails the request instead of holding the handler.
pub(crate) async fn read_json<B>(
    response: http::Response<B>,
    id: u64,
) -> Result<serde_json::Value, String>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let answers = |text: &str| -> Option<serde_json::Value> {
        let json: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
        (json["id"] == id).then_some(json)
    };
    let read = async {
        let mut body = response.into_body();
        let mut text = String::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("the MCP answer failed: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            text.push_str(&String::from_utf8_lossy(&data));
            if text.len() > MAX_ANSWER_BYTES {
                return Err(format!("the MCP answer is over {MAX_ANSWER_BYTES} bytes"));
            }
            let found = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .find_map(answers);
            if let Some(json) = found {
                return Ok(json);
            }
        }
        answers(&text).ok_or_else(|| "the MCP answer holds no response to the request".into())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, read)
        .await
        .map_err(|_| format!("no MCP answer within {} s", ANSWER_TIMEOUT.as_secs()))?
}
