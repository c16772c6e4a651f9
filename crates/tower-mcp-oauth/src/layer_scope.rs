//! [`OAuthLayer::only_for`]: limiting a layer to the MCP servers it is meant for (see
//! [`McpServers`]).

use crate::layer::OAuthLayer;
use crate::servers::McpServers;

impl OAuthLayer {
    /// Limits the layer to `servers`: requests to anything else pass through untouched, with
    /// no `Authorization` header, no store lookup, and no discovery or registration on a `401`.
    /// For a client shared by MCP servers and other APIs. Default: every request (a layer
    /// around a client that talks to MCP servers only).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, McpServers, OAuthBody, OAuthLayer};
    /// # tokio_test::block_on(async {
    /// // Every server answers 401 to everything; count what reaches them.
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&seen);
    /// let client = service_fn(move |_req: http::Request<OAuthBody<Full<Bytes>>>| {
    ///     count.fetch_add(1, Ordering::SeqCst);
    ///     async { Ok::<_, std::convert::Infallible>(http::Response::builder().status(401).header("www-authenticate", "Bearer").body(Full::<Bytes>::default()).unwrap()) }
    /// });
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .only_for(McpServers::prefixes(["https://mcp.example.com"]).unwrap());
    /// let service = layer.layer(client);
    ///
    /// // A REST API's expired token: its 401 comes back as it was, after one request.
    /// let rest = http::Request::get("https://api.example.com/v1/me").body(Full::default()).unwrap();
    /// assert_eq!(service.clone().oneshot(rest).await.unwrap().status(), 401);
    /// assert_eq!(seen.load(Ordering::SeqCst), 1);
    /// assert_eq!(service.flows_started(), 0);
    /// # });
    /// ```
    pub fn only_for(mut self, servers: McpServers) -> Self {
        self.state_mut().servers = Some(servers);
        self
    }
}
