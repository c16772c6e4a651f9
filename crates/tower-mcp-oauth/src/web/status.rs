//! [`WebLogin::status`]: each user's status per MCP server, and the web login's own flow
//! errors recorded where that status finds them.

use http::Uri;
use mcp_oauth_flow::Error;
use url::Url;

use super::login::WebLogin;
use crate::flight::server_key;
use crate::status::ServerStatus;
use crate::timer::Deadline;

impl WebLogin {
    /// `user`'s status for the MCP server at `server_url`: whether they hold a usable token
    /// for it, from which issuer, with which scopes until when, and the last failed login or
    /// request flow for that server (see [`ServerStatus`]). Reads the app's store (so every
    /// process sharing it gives the same answer, a logout in another one included); starts
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

    /// Records that a web login of `user` for `server_url` failed with `error` (see
    /// [`record_outcome`](Self::record_outcome)), within a store deadline of its own.
    pub(super) async fn record_failure(&self, user: &str, server_url: &Url, error: &Error) {
        let mut deadline = self.store_deadline();
        self.record_outcome(user, server_url, &Err(error.clone()), &mut deadline)
            .await;
    }

    /// Records how a web login flow of `user` for `server_url` ended, where
    /// [`status`](Self::status) finds it: in the user's layer and in the app's store (per
    /// user), so every process of the app shows it.
    pub(super) async fn record_outcome(
        &self,
        user: &str,
        server_url: &Url,
        result: &Result<(), Error>,
        writes: &mut Deadline<'_>,
    ) {
        let Some(server) = server_url
            .as_str()
            .parse::<Uri>()
            .ok()
            .as_ref()
            .and_then(server_key)
        else {
            return;
        };
        let layer = self.layer_for(user);
        crate::outcomes::record(&layer.state, &server, result, writes).await;
    }
}
