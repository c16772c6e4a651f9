//! [`ServerStatus`]: what a UI shows for one MCP server: connected or not, through which
//! authorization server, with which scopes until when, and the last thing that went wrong.

use std::time::SystemTime;

use mcp_oauth_flow::{
    authorization::Scopes,
    token::{is_spent, TokenSet},
    Error,
};
use url::Url;

use crate::flight::server_key;
use crate::layer::OAuthLayer;
use crate::outcomes::last_flow;
use crate::servers::absolute_server_uri;
use crate::store::LastError;
use crate::stored::find_stored;

/// The state of one MCP server as this layer (or one user of a
/// [`WebLogin`](crate::web::WebLogin)) sees it, for an admin or settings page.
///
/// It holds no secret: neither token, only facts about them. `Debug` prints it all.
///
/// ```
/// use tower_mcp_oauth::ServerStatus;
/// fn badge(status: &ServerStatus) -> String {
///     match (&status.issuer, &status.last_error) {
///         _ if status.connected => format!("connected through {}", status.issuer.as_deref().unwrap_or("?")),
///         (_, Some(error)) => format!("not connected: {} ({:?})", error.message, error.kind),
///         (Some(_), None) => "expired: connect again".into(),
///         (None, None) => "not connected".into(),
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerStatus {
    /// Whether a usable token is held: unexpired, or expired with a refresh token to renew
    /// it. A request sends it (or refreshes it first) without asking the user.
    pub connected: bool,
    /// The URL prefix the held tokens apply to; `None` when none are held.
    pub resource: Option<Url>,
    /// The authorization server that issued the held tokens.
    pub issuer: Option<String>,
    /// The scopes granted, when the server said.
    pub scopes: Option<Scopes>,
    /// When the access token expires, when known.
    pub expires_at: Option<SystemTime>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// How the last authorization flow for this server (its URL, not its origin) failed,
    /// unless the last one succeeded. Kept in the token store too, so another process sharing
    /// it, or the next run, shows it (with a store that keeps it: see
    /// [`TokenStore::save_last_flow`](crate::TokenStore::save_last_flow)).
    pub last_error: Option<LastError>,
}

impl ServerStatus {
    /// The status given the tokens held (with the resource they are stored under) and the
    /// last error, at `now`. Connected means holding tokens that are not spent: an expired
    /// access token with nothing to refresh it is no token (see
    /// [`is_spent`](mcp_oauth_flow::token::is_spent)).
    pub(crate) fn of(
        held: Option<(&TokenSet, &Url)>,
        last_error: Option<LastError>,
        now: SystemTime,
    ) -> Self {
        match held {
            None => Self {
                connected: false,
                resource: None,
                issuer: None,
                scopes: None,
                expires_at: None,
                has_refresh_token: false,
                last_error,
            },
            Some((tokens, resource)) => Self {
                connected: !is_spent(tokens, now),
                resource: Some(resource.clone()),
                issuer: Some(tokens.issuer().to_owned()),
                scopes: tokens.scopes().cloned(),
                expires_at: tokens.expires_at(),
                has_refresh_token: tokens.refresh_token().is_some(),
                last_error,
            },
        }
    }
}

impl OAuthLayer {
    /// The status of the MCP server at `server_url`: the tokens its store holds for it and
    /// how the last flow for it ended. Reads only; never starts a flow.
    ///
    /// The store is the truth: the tokens are read from it every time, never from this
    /// layer's cache, so a new process reports what an earlier one stored, and every process
    /// sharing a store (a [`FileStore`](crate::FileStore), a Redis store) reports a logout or
    /// a refresh another one made. (With the default in-memory store the cache and the store
    /// hold the same tokens; tokens a store refused to keep, which is logged, do not show.) The
    /// last error is the later of what this process remembers and what the store keeps.
    ///
    /// `Err` only when `server_url` is not absolute or the store fails; a store that does not
    /// answer within the [`flow_deadline`](Self::flow_deadline) fails it with a transient
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime};
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer, TokenSet, TokenStore, TokenType};
    /// # tokio_test::block_on(async {
    /// let store = Arc::new(MemoryStore::new());
    /// let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
    ///     .token_store(store.clone());
    /// let status = layer.status("https://mcp.example.com/mcp").await.unwrap();
    /// assert!(!status.connected && status.issuer.is_none());
    ///
    /// // Stores keep expiry times to the second.
    /// let in_an_hour = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 3600;
    /// let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(in_an_hour);
    /// let tokens = TokenSet::new("secret-at", TokenType::Bearer, "https://as.example.com", "app")
    ///     .with_expires_at(Some(expires));
    /// store.save_tokens("https://mcp.example.com/mcp", &tokens).await.unwrap();
    /// let status = layer.status("https://mcp.example.com/mcp").await.unwrap();
    /// assert!(status.connected && !status.has_refresh_token);
    /// assert_eq!(status.issuer.as_deref(), Some("https://as.example.com"));
    /// assert_eq!(status.expires_at, Some(expires));
    /// assert!(!format!("{status:?}").contains("secret-at"));
    /// # });
    /// ```
    pub async fn status(&self, server_url: &str) -> Result<ServerStatus, Error> {
        let uri = absolute_server_uri(server_url, "the status")?;
        let state = &self.state;
        // The store, never this process's cache: another process sharing it may have logged
        // out (or refreshed) since this one cached its tokens.
        // Both reads within one flow deadline: a status page never waits on a store that
        // stopped answering.
        let mut deadline = state.deadline();
        let held = deadline
            .step(crate::stored::NOT_READ, find_stored(state, &uri))
            .await?;
        let last = match server_key(&uri) {
            Some(server) => {
                let read = last_flow(state, &server);
                deadline
                    .step(crate::outcomes::NOT_READ_STATUS, read)
                    .await?
            }
            None => None,
        };
        Ok(ServerStatus::of(
            held.as_ref().map(|(t, r)| (t, r)),
            last.and_then(|flow| flow.error().cloned()),
            state.now(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mcp_oauth_flow::secrets::RefreshToken;
    use mcp_oauth_flow::token::TokenType;
    use mcp_oauth_flow::ErrorKind;

    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn connected_means_a_token_that_is_not_spent() {
        let resource: Url = "https://mcp.example.com/mcp".parse().unwrap();
        let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "c")
            .with_expires_at(Some(t(100)));
        let live = ServerStatus::of(Some((&tokens, &resource)), None, t(50));
        assert!(live.connected && !live.has_refresh_token);
        let spent = ServerStatus::of(Some((&tokens, &resource)), None, t(150));
        assert!(!spent.connected, "expired, nothing to refresh it");
        assert_eq!(spent.issuer.as_deref(), Some("https://as.example.com"));
        let renewable = tokens.with_refresh_token(Some(RefreshToken::new("rt".into())));
        let renewable = ServerStatus::of(Some((&renewable, &resource)), None, t(150));
        assert!(renewable.connected && renewable.has_refresh_token);
        assert!(!format!("{renewable:?}").contains("\"rt\""));
    }

    #[test]
    fn the_last_error_keeps_its_kind_message_and_time() {
        let error = Error::new(ErrorKind::TokenRejected, "invalid_grant");
        let status = ServerStatus::of(None, Some(LastError::of(&error, t(7))), t(9));
        let last = status.last_error.unwrap();
        assert_eq!((last.kind, last.at), (ErrorKind::TokenRejected, t(7)));
        assert!(last.message.contains("invalid_grant"));
        assert!(!status.connected && status.resource.is_none());
    }
}
