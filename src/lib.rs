//! Shared helpers for the workspace's end-to-end tests, benches and examples.
//!
//! This package is `publish = false`: it exists because a virtual manifest cannot own `tests/`,
//! `benches/` and `examples/`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_mcp_oauth::OAuthBody;

/// The request body type used throughout the tests.
pub type Body = Full<Bytes>;

/// hyper-util's legacy client, carrying the layer's body type.
pub type HttpClient = Client<HttpConnector, OAuthBody<Body>>;

/// A hyper-util client over plain HTTP (the testkit listens on loopback).
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// hyper-util's legacy client over HTTPS (rustls, webpki roots) or plain HTTP.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, OAuthBody<Body>>;

/// A client for real servers: HTTPS with the Mozilla root certificates compiled in, plain HTTP
/// for loopback development servers.
///
/// ```
/// let client = mcp_oauth_suite::https_client();
/// # let _ = client;
/// ```
pub fn https_client() -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A JSON-RPC 2.0 POST to an MCP endpoint.
pub fn jsonrpc(url: &str, id: u64, method: &str, params: serde_json::Value) -> http::Request<Body> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

/// Reads a response body as JSON (or the JSON of the first SSE `data:` line).
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

pub mod connect;
pub mod webapp;
