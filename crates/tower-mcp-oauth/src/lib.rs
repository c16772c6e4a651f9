//! # tower-mcp-oauth
//!
//! A [tower] layer that gives any HTTP client the client side of [MCP authorization]: wrap a
//! hyper-util `Client` (or any `Service<http::Request<_>>`) in [`OAuthLayer`], and requests to an
//! MCP server that answers `401` are authorized and retried, with no other change to the
//! application.
//!
//! On a `401` (or a `403` with `error="insufficient_scope"`) the layer runs the authorization
//! flow of the sans-IO core [`mcp_oauth_flow`]: protected resource metadata (RFC 9728),
//! authorization server metadata (RFC 8414, OpenID Connect, the 2025-03-26 fallbacks), client
//! identity (pre-registered, client ID metadata document, or RFC 7591 registration), the
//! authorization-code flow with PKCE S256, resource indicators (RFC 8707) and the RFC 9207 `iss`
//! check. Every sub-request goes through a clone of the *inner* service, never back through the
//! layer. Then the original request is retried once with `Authorization: Bearer …`.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
//!
//! # tokio_test::block_on(async {
//! // A stand-in for hyper-util's Client: a server that needs no authorization.
//! let client = service_fn(|_req: http::Request<OAuthBody<Full<Bytes>>>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new()))
//!     .service(client);
//! let response = service
//!     .oneshot(http::Request::post("http://127.0.0.1:1/mcp").body(Full::new(Bytes::from("{}"))).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```
//!
//! Over hyper-util:
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//! use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<OAuthBody<Full<Bytes>>>();
//! let service = ServiceBuilder::new()
//!     .layer(OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new()))
//!     .service(client);
//! # let _ = service;
//! ```
//!
//! [tower]: https://docs.rs/tower
//! [MCP authorization]: https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization

// The modules, from the top down; each imports only modules below it (no cycles):
//   layer → service → future → recovery → acquire → stored, driver → state
//   → flight, cache, authorize → store, client → body
// with leaves beside them: classify (which responses need authorization), need, markers,
// bounds. `state` holds what one layer shares (settings, cache, flights, store, authorizer),
// so everything that runs a request or a flow reads it and nothing below imports upward. The
// integrations (loopback, redis, web, rmcp) sit above whatever they use; no core module imports
// them.
mod acquire;
mod authorize;
mod body;
mod bounds;
mod cache;
mod classify;
mod client;
mod driver;
mod flight;
mod future;
mod layer;
mod markers;
mod need;
mod recovery;
mod service;
mod state;
mod store;
mod stored;

#[cfg(feature = "loopback")]
pub mod loopback;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "rmcp")]
pub mod rmcp;
#[cfg(feature = "web")]
pub mod web;

pub use authorize::{Authorizer, HeadlessAuthorizer};
pub use body::OAuthBody;
pub use client::HttpClient;
pub use future::ResponseFuture;
pub use layer::{OAuthLayer, DEFAULT_MAX_REPLAY_BYTES, DEFAULT_MAX_RESPONSE_BYTES};
pub use markers::{AuthorizationFailed, BodyNotReplayable};
pub use service::OAuthService;
pub use store::{FileStore, MemoryStore, Replaced, StoreLock, TokenStore};

pub use mcp_oauth_flow::{
    AuthorizationRequest, AuthorizationResponse, ClientAuthMethod, ClientConfig, ClientKey,
    ClientRegistration, DiscoveryReport, Error, ErrorKind, PkcePolicy, PreRegisteredClient,
    RefreshPolicy, Scopes, TokenSet, TokenType,
};

/// A boxed, `Send` future, as the object-safe traits of this crate return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
