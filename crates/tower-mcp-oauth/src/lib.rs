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
//! # Where to start
//!
//! | You want to… | Look at |
//! |---|---|
//! | wrap a client | [`OAuthLayer`] (configuration and builder; [`McpServers`] limits it to the MCP servers of a shared client), which makes an [`OAuthService`]; its future is [`ResponseFuture`], the body it hands the inner service [`OAuthBody`] |
//! | get the user's consent | the [`Authorizer`] trait; [`HeadlessAuthorizer`] for servers that approve without a user; [`HttpClient`], what an authorizer talks HTTP through |
//! | keep tokens | the [`TokenStore`] trait; [`MemoryStore`] (the default), [`FileStore`], any `Arc` of a store; [`Replaced`] and [`StoreLock`] for store authors |
//! | handle failures | [`Error`] and [`ErrorKind`] (the `Err` side); the markers [`AuthorizationFailed`] and [`BodyNotReplayable`] (the `Ok` side); the rule is on [`OAuthService`] |
//! | configure the client | [`ClientConfig`], [`PreRegisteredClient`], [`ClientKey`], [`RefreshPolicy`], [`PkcePolicy`], [`Scopes`] (from [`mcp_oauth_flow`]) |
//! | bind tokens to a key (DPoP, RFC 9449) | [`Dpop`] on [`OAuthLayer::dpop`], [`DpopPolicy`], [`DpopKey`]; on by default where the server offers it |
//! | log in from a CLI | `loopback::LoopbackReceiver` (feature `loopback`) |
//! | log in the users of a web app | `web::WebLogin` (feature `web`) |
//! | share a login across processes | `redis::RedisStore` (feature `redis`), or a [`FileStore`] on one machine |
//! | use rmcp | `rmcp::TowerHttpClient` (feature `rmcp`) |
//!
//! # Features
//!
//! Only `tokio` is on by default, for the timer of the layer's own time limits; the layer
//! needs no HTTP implementation, and with `default-features = false` no runtime (pass any
//! runtime's [`Timer`] to [`OAuthLayer::timer`]). Each other feature adds one module.
//!
//! | Feature | Adds | Pulls in |
//! |---|---|---|
//! | `tokio` (default) | [`TokioTimer`], the default [`Timer`] of the time limits ([`OAuthLayer::request_timeout`], [`OAuthLayer::flow_deadline`], [`OAuthLayer::consent_timeout`]) | `tokio` |
//! | `loopback` | `loopback`: an RFC 8252 loopback redirect receiver (an [`Authorizer`] for CLIs and desktop apps) and a browser opener | `tokio`, `hyper`, `hyper-util` |
//! | `redis` | `redis`: a [`TokenStore`] in Redis for fleets of processes (compare-and-swap writes, a refresh lease) | `redis` (tokio, scripts, connection manager), `tokio` |
//! | `web` | `web`: a split start/complete login for web apps with many users, per-user stores and layers | nothing |
//! | `rmcp` | `rmcp`: rmcp's Streamable HTTP client trait over a hyper-util `Client` wrapped in the layer | `rmcp`, `sse-stream`, `hyper`, `hyper-util`, `tokio` |
//!
//! [tower]: https://docs.rs/tower
//! [MCP authorization]: https://modelcontextprotocol.io/specification/2025-11-25/basic/authorization

// docs.rs builds with `--cfg docsrs` (see Cargo.toml): there, each feature-gated item is
// labelled with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The modules, from the top down; each imports only modules below it (no cycles):
//   layer → service → future → recovery → acquire → stored, driver → state
//   → dpop (DPoP keys, nonces, proofs) → flight, cache, authorize → store, client → body
// with leaves beside them: classify (which responses need authorization), need, markers,
// bounds, servers (where the layer acts), timer; and the builder extensions time_limits and
// layer_scope above layer. `state` holds what one layer shares (settings, cache, flights, store, authorizer),
// so everything that runs a request or a flow reads it and nothing below imports upward. The
// integrations (loopback, redis, web, rmcp) sit above whatever they use; no core module imports
// them.
mod acquire;
mod assertion;
mod authorize;
mod body;
mod bounds;
mod cache;
mod classify;
mod client;
mod clock;
mod device;
mod dpop;
mod driver;
mod flight;
mod future;
mod head;
mod head_buffer;
mod hex;
mod layer;
mod layer_addresses;
mod layer_chooser;
mod layer_logout;
mod layer_scope;
#[cfg(feature = "web")]
mod layer_web;
mod logout;
mod markers;
mod need;
mod origin;
mod origin_hash;
mod origins;
mod outcomes;
mod packed;
mod prepare;
mod reader;
mod recovery;
mod replay;
mod resolve;
mod route;
mod scope;
mod servers;
mod service;
mod shared;
mod state;
mod status;
mod store;
mod stored;
mod time_limits;
mod timer;

#[cfg(feature = "loopback")]
#[cfg_attr(docsrs, doc(cfg(feature = "loopback")))]
pub mod loopback;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
#[cfg(feature = "rmcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "rmcp")))]
pub mod rmcp;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub mod web;

pub use assertion::{AssertionSource, EnvAssertion, FileAssertion};
pub use authorize::{Authorizer, HeadlessAuthorizer};
pub use body::OAuthBody;
pub use client::HttpClient;
pub use device::{DeviceCodePrompt, StderrPrompt};
pub use dpop::{Dpop, DpopPolicy};
pub use future::ResponseFuture;
pub use layer::{OAuthLayer, DEFAULT_MAX_REPLAY_BYTES, DEFAULT_MAX_RESPONSE_BYTES};
pub use logout::{Logout, Revocation};
pub use markers::{AuthorizationFailed, BodyNotReplayable};
pub use resolve::Resolver;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use resolve::TokioResolver;
pub use servers::McpServers;
pub use service::OAuthService;
pub use state::{DEFAULT_CONSENT_TIMEOUT, DEFAULT_FLOW_DEADLINE, DEFAULT_REQUEST_TIMEOUT};
pub use status::ServerStatus;
pub use store::{
    FileStore, LastError, LastFlow, MemoryStore, Replaced, SealingKey, StoreLock, TokenStore,
};
pub use timer::Timer;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use timer::TokioTimer;

pub use mcp_oauth_flow::device::UserCode;
pub use mcp_oauth_flow::dpop::DpopKey;
pub use mcp_oauth_flow::unsafe_to_display;
pub use mcp_oauth_flow::{
    authorization::{AuthorizationRequest, AuthorizationResponse, Scopes},
    client::{
        AssertionAudience, ClientAuthMethod, ClientKey, ClientMetadata, ClientRegistration,
        JwsSigner, PreRegisteredClient,
    },
    discovery::DiscoveryReport,
    revocation::RevokedToken,
    server::{ExtraParams, Preset, RefreshScope, ServerOptions},
    token::{RefreshPolicy, TokenSet, TokenType},
    url_policy::{AddressClass, AddressPolicy, UrlPolicy},
    AuthorizationServerChooser, BoxError, ClientConfig, Error, ErrorKind, PkcePolicy,
};

/// The assertion grants' types (workload identity, enterprise-managed authorization), from the
/// core; see [`OAuthLayer::workload_identity`] and [`OAuthLayer::enterprise_managed`].
pub mod grants {
    pub use mcp_oauth_flow::grants::{
        AssertionGrant, AssertionKind, AssertionRequest, EnterpriseIdp,
    };
}

/// A boxed, `Send` future, as the object-safe traits of this crate return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

// The README's examples, compiled and run as doc tests (they are not part of the crate docs).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
