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

/// Reads a response body as JSON (or the JSON of the first SSE `data:` line).
pub(crate) async fn read_json<B>(response: http::Response<B>) -> serde_json::Value
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
