//! # mcp-oauth-flow
//!
//! The sans-IO core of the client side of MCP authorization: discovery of protected resource
//! metadata (RFC 9728) and authorization server metadata (RFC 8414, OpenID Connect Discovery,
//! and the MCP 2025-03-26 fallbacks), client identity (pre-registration, client ID metadata
//! documents, dynamic registration per RFC 7591), the authorization-code flow with PKCE S256
//! (RFC 7636), resource indicators (RFC 8707), the RFC 9207 `iss` check, and tolerant token
//! response parsing.
//!
//! This crate does no IO, reads no clock and draws no randomness: a driver (the
//! `tower-mcp-oauth` layer, or a test) feeds it responses, the time and random bytes, and
//! performs the [`Action`]s it asks for. Every protocol decision is a pure function with its own
//! tests. The drive loop is this small:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use bytes::Bytes;
//! use mcp_oauth_flow::{Action, AuthorizationResponse, ClientConfig, Flow, FlowSecrets, FlowStart};
//!
//! fn drive(mut flow: Flow, send: impl Fn(http::Request<Bytes>) -> http::Response<Bytes>) -> Action {
//!     loop {
//!         match flow.poll_action().expect("the flow always has an action or is finished") {
//!             Action::Send(sub) => flow.handle_response(send(sub.request), SystemTime::now()),
//!             Action::LoadClient { .. } => flow.handle_stored_client(None),
//!             Action::SaveClient(_registration) => {}
//!             Action::Authorize(request) => {
//!                 // Open request.url() in a browser; here the server refuses.
//!                 let query = format!("error=access_denied&state={}", request.state().secret());
//!                 flow.handle_authorization_response(AuthorizationResponse::from_query(&query));
//!             }
//!             done => return done,
//!         }
//!     }
//! }
//!
//! let config = Arc::new(ClientConfig::new("http://127.0.0.1:1/callback"));
//! let flow = Flow::new(config, FlowStart::new("https://mcp.example.com/mcp".parse().unwrap()),
//!                      FlowSecrets::from_entropy([3; 32], [4; 32]), SystemTime::now());
//! // A server with no metadata at all ends in an error, not a panic.
//! let end = drive(flow, |_| http::Response::builder().status(404).body(Bytes::new()).unwrap());
//! assert!(matches!(end, Action::Failed(_)));
//! ```

mod authorization;
mod challenge;
mod client_assertion;
mod client_auth;
mod config;
mod discovery;
mod error;
mod flow;
mod metadata;
mod pkce;
mod refresh;
mod registration;
mod report;
mod resource;
mod scope;
mod token;
mod token_response;
mod url_policy;

pub use authorization::{
    constant_time_eq, validate_authorization_response, AuthorizationRequest, AuthorizationResponse,
};
pub use challenge::{select_challenge, Challenge};
pub use client_assertion::{ClientKey, JWT_BEARER_ASSERTION_TYPE};
pub use client_auth::{negotiate_client_auth, ClientAuthMethod, ClientCredentials};
pub use config::{ClientConfig, PkcePolicy};
pub use discovery::{
    authorization_server_metadata_urls, legacy_endpoints, legacy_issuer, origin_of,
    protected_resource_metadata_urls, AUTHORIZATION_SERVER_WELL_KNOWN,
    OPENID_CONFIGURATION_WELL_KNOWN, PROTECTED_RESOURCE_WELL_KNOWN,
};
pub use error::{BoxError, Error, ErrorKind, OAuthErrorResponse};
pub use flow::{Action, Flow, FlowOutcome, FlowSecrets, FlowStart, SubRequest, Trigger};
pub use metadata::{issuer_matches, AuthorizationServerMetadata, ProtectedResourceMetadata};
pub use pkce::Pkce;
pub use refresh::{classify_refresh_failure, merge_refreshed, RefreshFailure, RefreshPolicy};
pub use registration::{
    application_type_for, choose_client_source, parse_registration_response, redirect_uri_matches,
    registration_auth_method, registration_request_body, ClientRegistration, ClientSource,
    PreRegisteredClient,
};
pub use report::{DiscoveryReport, DiscoveryStep, Purpose};
pub use resource::{check_resource, resource_covers, server_url_from_uri};
pub use scope::{select_scopes, with_offline_access, Scopes, OFFLINE_ACCESS};
pub use token::{TokenSet, TokenType};
pub use token_response::{jwt_expiry, parse_token_response, token_request, Grant, TokenResponse};
pub use url_policy::{
    check_secure_url, is_loopback_host, is_secure_url, parse_secure_url, MAX_URL_LEN,
};

/// Re-exported `oauth2` secret types used in this crate's API (their `Debug` is redacted).
pub use oauth2::{
    AccessToken, AuthorizationCode, ClientSecret, CsrfToken, PkceCodeVerifier, RefreshToken,
};

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod refresh_tests;

// The README's example, compiled and run as a doc test (it is not part of the crate docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
