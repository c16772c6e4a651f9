//! [rmcp] integration: the official Rust MCP SDK's Streamable HTTP client transport, authorized
//! by this crate's layer.
//!
//! rmcp's transport is generic over its `StreamableHttpClient` trait. [`TowerHttpClient`]
//! implements it over a tower service, so an [`OAuthService`] (the layer over hyper-util's
//! `Client`) gives an rmcp client the whole MCP authorization flow: the first request that
//! meets a `401` runs discovery, registration, consent and the token request, and is retried
//! with the token, before rmcp sees the answer.
//!
//! ```no_run
//! use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
//! use rmcp::transport::StreamableHttpClientTransport;
//! use rmcp::ServiceExt;
//! use tower_mcp_oauth::rmcp::TowerHttpClient;
//! use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = TowerHttpClient::http(
//!     ClientConfig::new("http://127.0.0.1:8976/callback").client_name("My Agent"),
//!     HeadlessAuthorizer::new(),
//! );
//! let transport = StreamableHttpClientTransport::with_client(
//!     client,
//!     StreamableHttpClientTransportConfig::with_uri("http://127.0.0.1:3000/mcp"),
//! );
//! let mcp = ().serve(transport).await?;
//! println!("{:?}", mcp.peer_info());
//! # Ok(())
//! # }
//! ```
//!
//! Requires the `rmcp` feature. This module only adapts HTTP: every protocol rule stays in
//! the layer, and every MCP rule in rmcp.
//!
//! [rmcp]: https://docs.rs/rmcp

mod client;
mod error;
mod exchange;
mod request;
mod response;
mod sse;

#[cfg(test)]
mod tests;

pub use client::TowerHttpClient;
pub use error::TowerHttpError;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_layer::Layer;

use crate::{Authorizer, ClientConfig, OAuthBody, OAuthLayer, OAuthService};

/// The layer over hyper-util's `Client` with connector `C`: what
/// [`TowerHttpClient::with_connector`] and [`TowerHttpClient::http`] wrap.
///
/// ```
/// use hyper_util::client::legacy::connect::HttpConnector;
/// use tower_mcp_oauth::rmcp::{HyperOAuthService, TowerHttpClient};
///
/// fn share(client: &TowerHttpClient<HyperOAuthService<HttpConnector>>) -> u64 {
///     client.get_ref().flows_started()
/// }
/// # let _ = share;
/// ```
pub type HyperOAuthService<C> = OAuthService<Client<C, OAuthBody<Full<Bytes>>>>;

impl<C> TowerHttpClient<HyperOAuthService<C>>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    /// The whole stack over hyper-util's `Client` with `connector`: pass a TLS connector
    /// (hyper-rustls's or hyper-tls's `HttpsConnector`) to reach `https` servers. The layer
    /// keeps its configuration: token store, limits, and the token cache that every clone of
    /// the layer shares.
    ///
    /// Wrap the result's service in a `Timeout` yourself if you need one: it belongs outside
    /// the layer (see [`OAuthLayer`]), and this constructor cannot know how long a user takes
    /// to consent.
    ///
    /// Needs a Tokio runtime when it sends (the client spawns its connections there).
    ///
    /// ```
    /// use hyper_util::client::legacy::connect::HttpConnector;
    /// use tower_mcp_oauth::rmcp::TowerHttpClient;
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer};
    ///
    /// let config = ClientConfig::new("http://127.0.0.1:8976/callback");
    /// let layer = OAuthLayer::new(config, HeadlessAuthorizer::new()).token_store(MemoryStore::new());
    /// let client = TowerHttpClient::with_connector(HttpConnector::new(), layer);
    /// # let _ = client;
    /// ```
    pub fn with_connector(connector: C, layer: OAuthLayer) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self::new(layer.layer(client))
    }
}

impl TowerHttpClient<HyperOAuthService<HttpConnector>> {
    /// The whole stack from a client configuration and an authorizer: hyper-util's `Client`
    /// over plain HTTP, wrapped in a new [`OAuthLayer`].
    ///
    /// Plain `http` only: hyper-util's `HttpConnector` refuses `https` URLs (a
    /// [`Transport`](crate::ErrorKind::Transport) error). That suits loopback servers and
    /// tests; for anything else use [`with_connector`](Self::with_connector) with a TLS
    /// connector.
    ///
    /// ```
    /// use tower_mcp_oauth::rmcp::TowerHttpClient;
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer};
    ///
    /// let client = TowerHttpClient::http(
    ///     ClientConfig::new("http://127.0.0.1:8976/callback"),
    ///     HeadlessAuthorizer::new(),
    /// );
    /// # let _ = client;
    /// ```
    pub fn http(config: ClientConfig, authorizer: impl Authorizer) -> Self {
        // rmcp runs on tokio: let flows finish there even when rmcp cancels a request.
        let layer = OAuthLayer::new(config, authorizer).spawn_flows_with(|flow| {
            tokio::spawn(flow);
        });
        Self::with_connector(HttpConnector::new(), layer)
    }
}
