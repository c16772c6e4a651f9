//! [`WebLogin::status`]: each user's status per MCP server, and the web login's own flow
//! errors recorded where that status finds them.

use http::Uri;
use mcp_oauth_flow::Error;
use url::Url;

use super::login::WebLogin;
use crate::flight::flight_key;
use crate::status::ServerStatus;

impl WebLogin {
    /// `user`'s status for the MCP server at `server_url`: whether they hold a usable token
    /// for it, from which issuer, with which scopes until when, and the last failed login or
    /// request flow for its origin (see [`ServerStatus`]). Reads the app's store; starts
    /// nothing. Users are kept apart: another user's tokens or errors never show.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tower_mcp_oauth::web::WebLogin;
    /// use tower_mcp_oauth::{ClientConfig, HttpClient};
    /// # tokio_test::block_on(async {
    /// # let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    /// let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client);
    /// let status = login.status("alice", "https://mcp.example.com/mcp").await.unwrap();
    /// assert!(!status.connected);
    /// # });
    /// ```
    pub async fn status(&self, user: &str, server_url: &str) -> Result<ServerStatus, Error> {
        self.layer_for(user).status(server_url).await
    }

    /// Records that a web login flow of `user` for `server_url` failed with `error`, where
    /// [`status`](Self::status) finds it. A completed login clears it (the user's layer is
    /// made afresh).
    pub(super) fn record_error(&self, user: &str, server_url: &Url, error: &Error) {
        let Ok(uri) = server_url.as_str().parse::<Uri>() else {
            return;
        };
        let layer = self.layer_for(user);
        let now = layer.state.now();
        layer
            .state
            .flights
            .record_outcome(&flight_key(&uri), &Err(error.clone()), now);
    }
}
