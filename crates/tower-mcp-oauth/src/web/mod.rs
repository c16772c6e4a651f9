//! A split start/complete authorization API for web applications that connect many users to
//! MCP servers, each with their own tokens (a forum whose members each link their own account).
//!
//! A web app cannot block a request while its user is at the authorization server: the login
//! starts in one HTTP request (`GET /connect`) and ends in another (`GET /callback`), perhaps
//! minutes later. [`WebLogin`] splits the flow there:
//!
//! 1. [`WebLogin::start`] runs discovery and registration, stops at the consent step, keeps
//!    what the code exchange needs (PKCE verifier, `state`, discovery results: a
//!    [`PendingLogin`]) as *pending* for that user in a [`PendingLoginStore`], and returns the
//!    authorization URL to redirect the browser to.
//! 2. [`WebLogin::complete`] takes the callback's query, checks that its `state` belongs to a
//!    pending login of *the same user* (RFC 6749 §10.12), exchanges the code and stores the
//!    tokens under (user, protected resource).
//! 3. [`WebLogin::layer_for`] gives an [`OAuthLayer`](crate::OAuthLayer) whose tokens are that
//!    user's: their MCP calls carry their token, refreshed as needed. It never starts a login
//!    behind the user's back; a user who is not connected gets an
//!    [`ErrorKind::InteractionRequired`](crate::ErrorKind::InteractionRequired) error carrying [`ConnectRequired`].
//!
//! Client registrations belong to the app: they are stored per issuer and shared by all users.
//!
//! Pending logins wait in this process's memory ([`MemoryPendingLogins`]) unless
//! [`WebLogin::pending_login_store`] says otherwise: an app served by several processes
//! shares one store for pending logins and one for tokens (both Redis with the `redis`
//! feature), so `start` in one process and `complete` in another works, and a login is used
//! once even if two processes receive its callback at once.
//!
//! ```
//! use bytes::Bytes;
//! use tower_mcp_oauth::web::WebLogin;
//! use tower_mcp_oauth::{ClientConfig, HttpClient};
//! # tokio_test::block_on(async {
//! # // A stand-in authorization server of the MCP 2025-03-26 kind: no metadata, default endpoints.
//! # let client = HttpClient::from_fn(|req| async move {
//! #     let json = |status: u16, body: &str| http::Response::builder().status(status)
//! #         .header("content-type", "application/json").body(Bytes::from(body.to_owned())).unwrap();
//! #     Ok(match req.uri().path() {
//! #         "/register" => json(201, r#"{"client_id":"forum","token_endpoint_auth_method":"none"}"#),
//! #         "/token" => json(200, r#"{"access_token":"at","token_type":"Bearer","expires_in":3600}"#),
//! #         _ => json(404, "{}"),
//! #     })
//! # });
//! let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"), client);
//!
//! // GET /connect: redirect the browser to the authorization server.
//! let url = login.start("alice", "https://mcp.example.com/mcp").await.unwrap();
//!
//! // The authorization server sends the browser back to /callback?code=…&state=…
//! let state = url.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
//! let query = format!("code=xyz&state={state}");
//!
//! // Another user cannot use Alice's callback (login CSRF, RFC 6749 §10.12)…
//! assert!(login.complete("mallory", &query).await.is_err());
//! // …and Alice still can.
//! let connection = login.complete("alice", &query).await.unwrap();
//! assert_eq!(connection.protected_resource.as_str(), "https://mcp.example.com/");
//!
//! // Alice's MCP calls go through a layer that carries her token.
//! let layer = login.layer_for("alice");
//! # let _ = layer;
//! # });
//! ```

mod connect_required;
mod drive;
mod login;
mod login_limits;
mod memory_pending;
mod pending_store;
mod status;
mod user_layers;
mod user_store;

#[cfg(test)]
mod tests;

pub use connect_required::ConnectRequired;
pub use login::{Connection, WebLogin, DEFAULT_PENDING_TTL};
pub use memory_pending::{MemoryPendingLogins, DEFAULT_MAX_PENDING_LOGINS, MAX_PENDING_PER_USER};
pub use pending_store::{PendingLogin, PendingLoginStore, PENDING_LOGIN_VERSION};
pub use user_store::UserTokenStore;
