//! The inner HTTP client: hyper-util over rustls, so the example reaches real servers.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_mcp_oauth::OAuthBody;

/// hyper-util's legacy client over HTTPS (rustls, webpki roots) or plain HTTP, carrying the
/// layer's body type.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, OAuthBody<Full<Bytes>>>;

/// A client for real servers: HTTPS with the Mozilla root certificates compiled in, plain HTTP
/// for loopback development servers.
///
/// ```
/// let client = connect::https_client();
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
