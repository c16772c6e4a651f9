//! Browser login for CLIs and desktop apps: an RFC 8252 §7.3 loopback redirect receiver, and a
//! browser opener (feature `loopback`).
//!
//! [`LoopbackReceiver`] listens on `127.0.0.1` (or `[::1]`, or `localhost`), on an ephemeral
//! port or a fixed one, and implements [`Authorizer`](crate::Authorizer): each flow prints the
//! authorization URL, optionally opens the system browser, and waits for the browser to be
//! redirected back to [`redirect_uri`](LoopbackReceiver::redirect_uri) with the code.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::ServiceBuilder;
//! use tower_mcp_oauth::loopback::LoopbackReceiver;
//! use tower_mcp_oauth::{ClientConfig, FileStore, OAuthBody, OAuthLayer};
//!
//! # tokio_test::block_on(async {
//! let receiver = LoopbackReceiver::builder().open_browser(true).bind().await?;
//! let config = ClientConfig::new(receiver.redirect_uri()).client_name("My CLI");
//! # let dir = tempfile::tempdir()?;
//! # let state_dir = dir.path();
//! let layer = OAuthLayer::new(config, receiver.clone())
//!     .token_store(FileStore::new(state_dir)?); // the next run logs in silently
//! let client = Client::builder(TokioExecutor::new()).build_http::<OAuthBody<Full<Bytes>>>();
//! let service = ServiceBuilder::new().layer(layer).service(client);
//! // Requests through `service` now log in through the browser when the server asks for it.
//! # let _ = service;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Security notes: the receiver only ever listens on a loopback address; it answers exactly
//! one `GET` on the redirect path per flow, matched to the flow by `state` in constant time;
//! pages are `no-store` and `no-referrer`; neither the code nor the `state` is logged or shown.
//! The printed authorization URL does carry the `state`: it is meant for the user's eyes, not
//! for logs.

mod authorizer;
mod browser;
mod page;
mod receiver;
mod server;
mod waiters;

#[cfg(test)]
mod tests;

pub use browser::open_browser;
pub use receiver::{LoopbackBuilder, LoopbackHost, LoopbackReceiver, DEFAULT_CALLBACK_TIMEOUT};
