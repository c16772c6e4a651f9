//! The client's side of the kit's MCP endpoint: a JSON-RPC request to send and a reader for the
//! answer, whichever of JSON or SSE the server chose.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// A JSON-RPC 2.0 POST to an MCP endpoint, accepting JSON or SSE.
///
/// ```
/// let request = mcp_oauth_testkit::jsonrpc("http://127.0.0.1:1/mcp", 7, "tools/list", serde_json::json!({}));
/// assert_eq!(request.method(), http::Method::POST);
/// assert_eq!(request.headers()["accept"], "application/json, text/event-stream");
/// ```
pub fn jsonrpc(
    url: &str,
    id: u64,
    method: &str,
    params: serde_json::Value,
) -> http::Request<Full<Bytes>> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

/// Reads a response body as JSON (or the JSON of the first SSE `data:` line); `Null` when it is
/// neither.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use bytes::Bytes;
/// use http_body_util::Full;
/// let sse = http::Response::new(Full::new(Bytes::from("event: message\ndata: {\"id\":1}\n\n")));
/// assert_eq!(mcp_oauth_testkit::read_json(sse).await, serde_json::json!({"id": 1}));
/// # });
/// ```
pub async fn read_json<B>(response: http::Response<B>) -> serde_json::Value
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim()
        .to_owned();
    serde_json::from_str(&json).unwrap_or(serde_json::Value::Null)
}
