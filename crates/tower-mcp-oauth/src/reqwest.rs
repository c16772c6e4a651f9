//! [reqwest] as the layer's inner service: the application's proxy, TLS roots, DNS resolver
//! and timeouts for the MCP traffic and the authorization's sub-requests alike.
//!
//! The layer sends its discovery, registration and token requests through the service it
//! wraps, so an application that configures reqwest (a corporate proxy from the environment,
//! the system's certificate store, its own resolver) gets the same configuration for every
//! request the authorization makes, with nothing to set twice. rmcp's own client is reqwest:
//! [`TowerHttpClient`](crate::rmcp::TowerHttpClient) over the layer over a [`ReqwestService`]
//! keeps it.
//!
//! ```
//! use tower::{Layer, ServiceExt};
//! use tower_mcp_oauth::reqwest::ReqwestService;
//! use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
//! # tokio_test::block_on(async {
//! # let kit = mcp_oauth_testkit::Testkit::start(Default::default()).await.unwrap();
//! # let url = kit.resource_url();
//! // The application's own settings, on reqwest's builder (here: a user agent).
//! let inner = ReqwestService::from_builder(reqwest::Client::builder().user_agent("my-agent/1.0"))
//!     .expect("a TLS backend");
//! let service = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:3000/cb"), HeadlessAuthorizer::new())
//!     .layer(inner);
//! let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
//! let request = http::Request::post(url.as_str())
//!     .header("content-type", "application/json")
//!     .header("accept", "application/json, text/event-stream")
//!     .body(http_body_util::Full::new(bytes::Bytes::from(ping)))
//!     .unwrap();
//! // The first request met a `401`: the layer logged in through reqwest, then sent it again.
//! let response = service.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(service.flows_started(), 1);
//! # });
//! ```
//!
//! Requires the `reqwest` feature, which turns on none of reqwest's own: the TLS backend, HTTP/2
//! and the platform's proxy settings (`system-proxy`) are the application's to choose on its
//! own `reqwest` dependency (Cargo unifies the two). reqwest reads proxies from the environment
//! whatever its features; requests to loopback hosts never take one (see [`ReqwestService`]).
//!
//! [reqwest]: https://docs.rs/reqwest

use std::pin::Pin;
use std::task::{Context, Poll};

use ::reqwest::redirect::Policy;
use ::reqwest::{Body as ReqwestBody, Client, ClientBuilder};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use mcp_oauth_flow::url_policy::is_loopback_host;
use sync_wrapper::SyncWrapper;
use tower_service::Service;

use crate::{BoxError, BoxFuture, OAuthBody};

/// A [`reqwest::Client`](::reqwest::Client) as a tower service of `http` requests, for
/// [`OAuthLayer`](crate::OAuthLayer) to wrap. It follows no redirect, whatever the builder it
/// was made from said, and it sends requests to loopback addresses directly, never through a
/// proxy.
///
/// Why no redirect: reqwest follows up to ten by default, and the layer's rules would end where
/// it does. A discovery fetch may follow a redirect only within its origin, and only to an
/// address the URL policy allows (a redirect to `169.254.169.254` is a way into the cloud's
/// metadata service); a token or registration request follows none: it carries credentials,
/// its endpoint is the URL the metadata names (RFC 8414 §2), and a `307` or `308` would send
/// them again to a URL no metadata named (RFC 9110 §15.4.8, §15.4.9). The layer applies those
/// rules itself, to every `3xx` the service hands back, and the caller's own requests come back
/// to the caller with their `3xx`, as from hyper-util's client. An application that wants those
/// followed puts tower-http's `FollowRedirect` outside the layer, where each hop goes through
/// it again (see the README).
///
/// Why loopback goes direct: the URL policy allows plain `http` only to a loopback host, on the
/// ground that it never leaves the machine; through a proxy it would (in clear text, with a
/// code, a refresh token or a client secret), and the proxy's `localhost` is not this one.
/// reqwest takes a proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) unless
/// told not to, and does not exempt loopback unless `NO_PROXY` does; so requests to
/// `localhost`, `*.localhost`, `127.0.0.0/8` and `::1` go through a second client with no
/// proxy and no redirects. The builder's other settings do not apply to it: a local server
/// that needs them (an `https://localhost` with a private root, a header) gets its own builder
/// through [`from_builders`](Self::from_builders).
///
/// The builder's other settings apply to every other request the layer sends, sub-requests
/// included: default headers and a cookie store go to whatever authorization server an MCP
/// server names (set neither with a credential in it), and a total `timeout` ends a long
/// event stream too (the layer bounds its own sub-requests; prefer `connect_timeout` and
/// `read_timeout`).
///
/// Errors carry no URL: reqwest's name the request's, query included, where a `state`, a
/// code challenge or a caller's `?api_key=` would reach a log.
///
/// ```
/// use tower_mcp_oauth::reqwest::ReqwestService;
/// // A redirect policy set on the builder is replaced: the layer decides.
/// let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10));
/// let service = ReqwestService::from_builder(builder).unwrap();
/// let _client: &reqwest::Client = service.client();
/// ```
#[derive(Clone, Debug)]
pub struct ReqwestService {
    client: Client,
    /// For loopback hosts: no proxy, no redirects.
    direct: Client,
}

impl ReqwestService {
    /// A client with reqwest's defaults (and no redirects): `reqwest::Client::builder()`.
    ///
    /// ```
    /// let service = tower_mcp_oauth::reqwest::ReqwestService::new().unwrap();
    /// # let _ = service;
    /// ```
    ///
    /// # Errors
    ///
    /// Whatever reqwest's `build` gives: a TLS backend that cannot start.
    pub fn new() -> Result<Self, ::reqwest::Error> {
        Self::from_builder(Client::builder())
    }

    /// A client from the application's `builder` (its proxy, roots, resolver, timeouts), with
    /// redirects turned off, and loopback hosts reached directly (see [`ReqwestService`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
    /// let service = tower_mcp_oauth::reqwest::ReqwestService::from_builder(builder).unwrap();
    /// # let _ = service;
    /// ```
    ///
    /// # Errors
    ///
    /// Whatever reqwest's `build` gives: a TLS backend that cannot start, a bad proxy or
    /// certificate.
    pub fn from_builder(builder: ClientBuilder) -> Result<Self, ::reqwest::Error> {
        Self::from_builders(builder, Client::builder())
    }

    /// As [`from_builder`](Self::from_builder), with `loopback` the builder of the client for
    /// loopback hosts (a local server's private root, its timeouts), which gets no proxy and
    /// no redirects whatever it says.
    ///
    /// ```
    /// use std::time::Duration;
    /// let main = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
    /// // A development server on https://localhost with a root of its own would add it here.
    /// let local = reqwest::Client::builder().connect_timeout(Duration::from_secs(1));
    /// let service = tower_mcp_oauth::reqwest::ReqwestService::from_builders(main, local).unwrap();
    /// # let _ = service;
    /// ```
    ///
    /// # Errors
    ///
    /// Whatever reqwest's `build` gives, for either client.
    pub fn from_builders(
        builder: ClientBuilder,
        loopback: ClientBuilder,
    ) -> Result<Self, ::reqwest::Error> {
        let client = builder.redirect(Policy::none()).build()?;
        let direct = loopback.redirect(Policy::none()).no_proxy().build()?;
        Ok(Self { client, direct })
    }

    /// The client requests to hosts other than loopback go through (to share its pool with
    /// other code: a redirect it is given never goes through the layer's rules, see
    /// [`ReqwestService`]).
    ///
    /// ```
    /// let service = tower_mcp_oauth::reqwest::ReqwestService::new().unwrap();
    /// let client = service.client().clone();
    /// # let _ = client;
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl<B> Service<http::Request<OAuthBody<B>>> for ReqwestService
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ReqwestBody>;
    type Error = ::reqwest::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    /// Always ready: reqwest's pool takes any number of requests.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<OAuthBody<B>>) -> Self::Future {
        // The body streams through as it is: its exact length, when it has one (every body the
        // layer builds, and a replayed one), is the request's `Content-Length`.
        let request = request.map(|body| ReqwestBody::wrap(Synced::new(body)));
        let (client, direct) = (self.client.clone(), self.direct.clone());
        Box::pin(async move {
            // A URI reqwest cannot take (relative, an odd scheme) is its builder error.
            let request = ::reqwest::Request::try_from(request).map_err(|e| e.without_url())?;
            let client = if is_loopback_host(request.url()) {
                direct
            } else {
                client
            };
            let response = client.execute(request).await.map_err(|e| e.without_url())?;
            Ok(http::Response::from(response))
        })
    }
}

pin_project_lite::pin_project! {
    /// A body reqwest can take (it asks for `Sync`) whatever the caller's is: polled only
    /// through a pinned exclusive reference, which `SyncWrapper` makes `Sync` without a lock.
    /// Its size is read once, up front, which is when the length of a request is decided.
    struct Synced<B> {
        #[pin]
        body: SyncWrapper<B>,
        size: SizeHint,
    }
}

impl<B: Body> Synced<B> {
    fn new(body: B) -> Self {
        let size = body.size_hint();
        Self {
            body: SyncWrapper::new(body),
            size,
        }
    }
}

impl<B: Body> Body for Synced<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.get_pin_mut().poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.size
    }
}
