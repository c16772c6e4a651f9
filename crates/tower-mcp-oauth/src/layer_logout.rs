//! [`OAuthLayer::logout`]: forgetting a server's tokens and revoking them (see `logout.rs`).

use crate::layer::OAuthLayer;

impl OAuthLayer {
    /// Logs out of the MCP server at `server_url`: removes its tokens from this layer's cache
    /// and its store, so the next request authorizes afresh; then revokes the refresh token and
    /// the access token at the authorization server's `revocation_endpoint` (RFC 7009) with the
    /// client's authentication, sending through `client`. A failed or impossible revocation (no
    /// endpoint, a network error, an error response, a server that does not answer in time) is
    /// reported in the [`Logout`](crate::Logout) while the tokens are forgotten all the same,
    /// even if the caller drops the logout during the revocation. The store steps have one
    /// [`flow_deadline`](Self::flow_deadline) and the revocations another, each request within
    /// the [`request_timeout`](Self::request_timeout) too. The client registration is kept: remove
    /// it with [`TokenStore::remove_client`](crate::TokenStore::remove_client) if wanted.
    ///
    /// `Err` only when `server_url` is not absolute or the store fails.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use serde_json::json;
    /// use tower_mcp_oauth::{ClientAuthMethod, ClientConfig, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthLayer, TokenSet, TokenStore, TokenType};
    /// # tokio_test::block_on(async {
    /// let store = std::sync::Arc::new(MemoryStore::new());
    /// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "app")
    ///     .with_token_endpoint(Some("https://as.example.com/token".into()), Some(ClientAuthMethod::None));
    /// store.save_tokens("https://mcp.example.com/mcp", &tokens).await.unwrap();
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .token_store(store.clone());
    /// // The authorization server: its metadata, and a revocation endpoint that accepts.
    /// let client = HttpClient::from_fn(|req| async move {
    ///     let body = match req.uri().path() {
    ///         "/.well-known/oauth-authorization-server" => json!({
    ///             "issuer": "https://as.example.com",
    ///             "authorization_endpoint": "https://as.example.com/authorize",
    ///             "token_endpoint": "https://as.example.com/token",
    ///             "revocation_endpoint": "https://as.example.com/revoke"}).to_string(),
    ///         _ => String::new(),
    ///     };
    ///     Ok(http::Response::new(Bytes::from(body)))
    /// });
    /// let logout = layer.logout("https://mcp.example.com/mcp", &client).await.unwrap();
    /// assert!(logout.all_revoked());
    /// assert_eq!(logout.issuer.as_deref(), Some("https://as.example.com"));
    /// assert!(store.load_tokens("https://mcp.example.com/mcp").await.unwrap().is_none());
    /// # });
    /// ```
    pub async fn logout(
        &self,
        server_url: &str,
        client: &crate::HttpClient,
    ) -> Result<crate::Logout, mcp_oauth_flow::Error> {
        crate::logout::logout(&self.state, server_url, client).await
    }
}
