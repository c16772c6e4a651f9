//! What the layer's end-to-end tests share: the hyper-util client they wrap, carrying the
//! layer's body type, and (in `lifecycle`) a clock the test moves and views of the testkit's
//! request log. The servers themselves are the testkit's.
//!
//! Each test file declares `mod support;` (a test file is a crate root, so this directory is
//! found without a `#[path]`) and uses its own subset.
#![allow(dead_code, unused_imports)]

pub(crate) mod consent;
pub(crate) mod lifecycle;
pub(crate) mod logs;
pub(crate) mod stalls;
pub(crate) mod step_up;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_mcp_oauth::OAuthBody;

pub(crate) use mcp_oauth_testkit::{jsonrpc, read_json};

/// The request body type used throughout the tests.
pub(crate) type Body = Full<Bytes>;

/// hyper-util's legacy client, carrying the layer's body type.
pub(crate) type HttpClient = Client<HttpConnector, OAuthBody<Body>>;

/// A hyper-util client over plain HTTP (the testkit listens on loopback).
pub(crate) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}
