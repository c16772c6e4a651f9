//! In-process test servers for MCP authorization clients.
//!
//! [`Testkit::start`] runs two hyper servers on `127.0.0.1`:
//!
//! * a **protected MCP resource server** (`POST /mcp`, JSON-RPC 2.0 with one tool,
//!   `test-tool`) that answers `401`/`403` with `WWW-Authenticate: Bearer …` challenges, and
//! * an **OAuth 2.1 authorization server** with RFC 8414 / OpenID Connect metadata, RFC 7591
//!   dynamic client registration, an auto-approving authorization endpoint (PKCE S256,
//!   RFC 8707 `resource`, RFC 9207 `iss`) and a token endpoint with refresh token rotation
//!   and reuse detection.
//!
//! Where the discovery documents live is chosen by [`DiscoveryLayout`]; the other
//! [`TestkitConfig`] switches reproduce quirks of real servers, and [`Imitation`] whole servers
//! where they depart from the specifications (Entra ID, Auth0, Google, GitHub, Okta, Keycloak,
//! Salesforce). Every request to either server
//! is recorded ([`Testkit::requests`]) before it is answered, and [`Testkit::set_override`]
//! replaces any path's answer with a [`CannedResponse`].
//!
//! The kit knows nothing of the client under test: it is an independent oracle.
//!
//! Beside the servers it holds what the tests of a client share:
//!
//! * [`jsonrpc`] and [`read_json`]: an MCP request and its answer;
//! * [`scripted`]: the same servers' answers as plain functions, for `tower-test` mocks;
//! * [`redis::RedisServer`] (feature `redis`): a throwaway `redis-server` on loopback;
//! * [`bench`](mod@bench): criterion's estimates read back as ratios.
//!
//! # Example
//!
//! ```no_run
//! use mcp_oauth_testkit::{CannedResponse, DiscoveryLayout, ServerRole, Testkit, TestkitConfig};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let config = TestkitConfig::default()
//!     .layout(DiscoveryLayout::RootWellKnown)
//!     .required_scopes(["mcp:read"]);
//! let kit = Testkit::start(config).await?;
//! println!("MCP server at {}, issuer {}", kit.resource_url(), kit.issuer());
//!
//! // … point the client under test at kit.resource_url() and let it run …
//!
//! let token_requests = kit
//!     .requests()
//!     .into_iter()
//!     .filter(|r| r.role == ServerRole::Authorization && r.path.ends_with("/token"))
//!     .count();
//! assert_eq!(token_requests, 1);
//!
//! // Make the token endpoint fail from now on.
//! kit.set_override(
//!     ServerRole::Authorization,
//!     "/tenant1/token",
//!     CannedResponse::json(500, serde_json::json!({"error": "server_error"})),
//! );
//! kit.shutdown();
//! # Ok(())
//! # }
//! ```

mod assertion_grants;
mod authorization_server;
pub mod bench;
mod codec;
mod config;
mod device_grant;
mod discovery;
mod dpop;
pub mod fault;
mod imitation;
mod jsonrpc;
mod record;
#[cfg(feature = "redis")]
pub mod redis;
mod resource_server;
mod response;
mod revocation_endpoint;
mod router;
pub mod scripted;
mod server;
mod state;
mod token_endpoint;
mod token_issue;

#[cfg(test)]
mod tests;

pub use assertion_grants::{IDP_TOKEN_PATH, JWT_BEARER_GRANT};
pub use config::{
    DeviceConfig, DeviceOutcome, DiscoveryLayout, DpopConfig, IssInRedirect, TestkitConfig,
};
pub use device_grant::{DEVICE_AUTHORIZATION_PATH, DEVICE_CODE_GRANT};
pub use imitation::Imitation;
pub use jsonrpc::{jsonrpc, read_json};
pub use record::{CannedResponse, RecordedRequest, ServerRole};
pub use server::Testkit;
