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
//! use mcp_oauth_flow::authorization::AuthorizationResponse;
//! use mcp_oauth_flow::{Action, ClientConfig, Flow, FlowSecrets, FlowStart};
//!
//! fn drive(mut flow: Flow, send: impl Fn(http::Request<Bytes>) -> http::Response<Bytes>) -> Action {
//!     loop {
//!         match flow.poll_action().expect("the flow always has an action or is finished") {
//!             Action::Send(sub) => flow.handle_response(send(sub.request), SystemTime::now()),
//!             Action::LoadClient { .. } => flow.handle_stored_client(None),
//!             // Store it under its issuer (a store is where tokens are kept, see
//!             // `Action::LoadClient`); a `Complete` may carry one more, stored with its tokens.
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

mod assertion_grant;
mod authorization_endpoint;
pub mod challenge;
mod chooser;
mod client_assertion;
mod client_auth;
mod client_metadata;
mod compat;
mod config;
pub mod device;
pub mod dpop;
mod error;
mod escaped;
mod extra_params;
mod flow;
mod jwt;
mod metadata;
mod metadata_document;
mod pkce;
mod preset;
mod refresh;
mod registration;
mod report;
mod resource;
pub mod revocation;
mod scope;
mod server_options;
mod server_requests;
mod token_exchange;
mod token_life;
mod token_request;
mod token_response;
mod token_set;
pub mod url_policy;
mod well_known;

// The root holds what every driver uses: the flow, its inputs and outputs, the error and the
// client's configuration. The protocol's pieces are grouped below by the step they serve, so the
// docs read as the protocol does: discovery, client identity, authorization, tokens.
pub use chooser::AuthorizationServerChooser;
pub use config::{ClientConfig, PkcePolicy};
pub use error::{BoxError, Error, ErrorKind, OAuthErrorResponse};
pub use escaped::unsafe_to_display;
pub use flow::{Action, Flow, FlowOutcome, FlowSecrets, FlowStart, SubRequest, Trigger};
pub use flow::{PendingAuthorization, PENDING_AUTHORIZATION_VERSION};

/// Discovery: where to look for metadata (RFC 9728 §3.1, RFC 8414 §3.1, OpenID Connect
/// Discovery §4, the MCP 2025-03-26 fallbacks), the metadata documents themselves, the check
/// that the protected resource is the server that was called (RFC 9728 §3.3), and the report of
/// every URL a flow tried.
///
/// ```
/// use mcp_oauth_flow::discovery::protected_resource_metadata_urls;
/// let server = "https://mcp.example.com/mcp".parse().unwrap();
/// let urls = protected_resource_metadata_urls(&server, None);
/// assert_eq!(urls[0].as_str(), "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(urls[1].as_str(), "https://mcp.example.com/.well-known/oauth-protected-resource");
/// ```
pub mod discovery {
    pub use crate::metadata::{
        issuer_matches, AuthorizationServerMetadata, ProtectedResourceMetadata,
    };
    pub use crate::report::{DiscoveryReport, DiscoveryStep, Purpose};
    pub use crate::resource::{check_resource, resource_covers, server_url_from_uri};
    pub use crate::well_known::{
        authorization_server_metadata_urls, legacy_endpoints, legacy_issuer, origin_of,
        protected_resource_metadata_urls, AUTHORIZATION_SERVER_WELL_KNOWN,
        OPENID_CONFIGURATION_WELL_KNOWN, PROTECTED_RESOURCE_WELL_KNOWN,
    };
}

/// Client identity and authentication: pre-registered clients, client ID metadata documents,
/// dynamic registration (RFC 7591), the token endpoint's client authentication (RFC 6749 §2.3)
/// and `private_key_jwt` assertions (RFC 7523 §2.2).
///
/// ```
/// use mcp_oauth_flow::client::ClientAuthMethod;
/// assert_eq!(ClientAuthMethod::ClientSecretBasic.as_str(), "client_secret_basic");
/// ```
pub mod client {
    pub use crate::client_assertion::{
        AssertionAudience, ClientKey, JwsSigner, JWT_BEARER_ASSERTION_TYPE,
    };
    pub use crate::client_auth::{negotiate_client_auth, ClientAuthMethod, ClientCredentials};
    pub use crate::client_metadata::ClientMetadata;
    pub use crate::metadata_document::client_metadata_document;
    pub use crate::registration::{
        application_type_for, choose_client_source, parse_registration_response,
        redirect_uri_matches, registration_auth_method, registration_request_body,
        ClientRegistration, ClientSource, PreRegisteredClient,
    };
}

/// The authorization request and its response (RFC 6749 §4.1, RFC 7636 PKCE, RFC 8707
/// resource indicators, RFC 9207 `iss`), and the scopes it asks for.
///
/// ```
/// use mcp_oauth_flow::authorization::Scopes;
/// let held = Scopes::parse("read write");
/// assert!(held.contains_all(&Scopes::parse("write")));
/// assert!(!held.contains_all(&Scopes::parse("admin")));
/// ```
pub mod authorization {
    pub use crate::authorization_endpoint::{
        constant_time_eq, validate_authorization_response, AuthorizationRequest,
        AuthorizationResponse,
    };
    pub use crate::pkce::Pkce;
    pub use crate::scope::{select_scopes, with_offline_access, Scopes, OFFLINE_ACCESS};
}

/// Per-server options: extra authorization and token request parameters (a protected few
/// excepted), `prompt=consent` with offline access (OpenID Connect Core §11), and a required
/// refresh token.
///
/// ```
/// use mcp_oauth_flow::server::{is_protected_parameter, ServerOptions};
/// assert!(is_protected_parameter("code_verifier"));
/// let auth0 = ServerOptions::for_issuer("https://tenant.auth0.com/").token_param("audience", "https://api")?;
/// assert_eq!(auth0.token_params().entries().next(), Some(("audience", Some("https://api"))));
/// # Ok::<(), mcp_oauth_flow::Error>(())
/// ```
pub mod server {
    pub use crate::compat::{
        granted_scope, refresh_sends_scope, retries_refresh_without_scope,
        with_offline_access_scope, Compat, RefreshScope,
    };
    pub use crate::extra_params::{is_protected_parameter, ExtraParams, PROTECTED_PARAMETERS};
    pub use crate::preset::Preset;
    pub use crate::server_options::{
        offline_access_prompt, select_server_options, ServerMatch, ServerOptions,
    };
}

/// Tokens: the set held for one protected resource, the token request and its tolerant parser
/// (RFC 6749 §4.1.3, §5), and refresh (RFC 6749 §6): when, how to merge the answer, and which
/// failures are final.
///
/// ```
/// use mcp_oauth_flow::token::{TokenSet, TokenType};
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client");
/// assert_eq!(tokens.authorization_value(), "Bearer at");
/// ```
pub mod token {
    pub use crate::jwt::jwt_expiry;
    pub use crate::refresh::{
        classify_refresh_failure, merge_refreshed, RefreshFailure, RefreshPolicy,
    };
    pub use crate::token_life::is_spent;
    pub use crate::token_request::{token_request, Grant};
    pub use crate::token_response::{parse_token_response, TokenResponse};
    pub use crate::token_set::{TokenSet, TokenType};
}

/// Grants whose credential is an assertion the application supplies (RFC 7523 §2.1): workload
/// identity federation (SEP-1933) and enterprise-managed authorization (SEP-990, with its
/// RFC 8693 token exchange). Configure one with
/// [`ClientConfig::assertion_grant`](crate::ClientConfig::assertion_grant); the flow then asks
/// for the assertion with [`Action::ObtainAssertion`].
///
/// ```
/// use mcp_oauth_flow::grants::{JWT_BEARER_GRANT_TYPE, ID_JAG_TOKEN_TYPE};
/// assert_eq!(JWT_BEARER_GRANT_TYPE, "urn:ietf:params:oauth:grant-type:jwt-bearer");
/// assert_eq!(ID_JAG_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:id-jag");
/// ```
pub mod grants {
    pub use crate::assertion_grant::{
        check_assertion_fresh, AssertionGrant, AssertionKind, AssertionRequest, EnterpriseIdp,
        JWT_BEARER_GRANT_TYPE,
    };
    pub use crate::token_exchange::{
        parse_token_exchange_response, token_exchange_request, ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE,
        TOKEN_EXCHANGE_GRANT_TYPE,
    };
}

/// The `oauth2` crate's secret types this crate's API uses; their `Debug` is redacted.
///
/// ```
/// use mcp_oauth_flow::secrets::AccessToken;
/// let token = AccessToken::new("s3cret".into());
/// assert!(!format!("{token:?}").contains("s3cret"));
/// ```
pub mod secrets {
    pub use oauth2::{
        AccessToken, AuthorizationCode, ClientSecret, CsrfToken, PkceCodeVerifier, RefreshToken,
    };
}

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod refresh_tests;

// The README's example, compiled and run as a doc test (it is not part of the crate docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
