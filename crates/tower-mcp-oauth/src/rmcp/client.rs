//! [`TowerHttpClient`]: rmcp's `StreamableHttpClient` over a tower service.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use ::rmcp::model::ClientJsonRpcMessage;
use ::rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpPostResponse,
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body::Body;
use http_body_util::Full;
use mcp_oauth_flow::{BoxError, Error};
use tower_service::Service;

use super::error::TowerHttpError;
use super::response::HttpError;
use super::sse::EventStream;

/// rmcp's HTTP client trait, implemented over a tower service: put [`OAuthLayer`] in that
/// service and rmcp's Streamable HTTP transport is authorized with no other change.
///
/// The service may be any `Service<http::Request<Full<Bytes>>>` answering
/// `http::Response<B>` with [`tower_mcp_oauth::Error`](crate::Error), for instance an
/// [`OAuthService`] over hyper-util's `Client` ([`HyperOAuthService`]). Each request goes
/// through a clone of it with `oneshot`, so it waits for readiness like any other caller.
///
/// Responses are classified as rmcp's own reqwest client classifies them: `202` is
/// `Accepted`, `application/json` is read whole (up to 16 MiB), `text/event-stream` is parsed
/// while it streams, the `Mcp-Session-Id` header is handed on, and a `401`/`403` that the
/// layer hands back (its retry was refused again, or it declined a step-up) becomes
/// `StreamableHttpError::AuthRequired` / `InsufficientScope` with the challenge (every
/// `WWW-Authenticate` line, OAuth ones first, read lossily, where rmcp's reqwest client reads
/// the first line only and refuses bytes past ASCII). Errors of the
/// layer itself arrive as `StreamableHttpError::Client(`[`TowerHttpError::Layer`]`)`.
///
/// Leave the transport config's `auth_header` unset: the layer owns the token. A token set
/// there is sent until the layer has one of its own for that server.
///
/// ```no_run
/// use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
/// use rmcp::transport::StreamableHttpClientTransport;
/// use rmcp::ServiceExt;
/// use tower_mcp_oauth::rmcp::TowerHttpClient;
/// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = TowerHttpClient::http(
///     ClientConfig::new("http://127.0.0.1:8976/callback"),
///     HeadlessAuthorizer::new(),
/// );
/// let config = StreamableHttpClientTransportConfig::with_uri("http://127.0.0.1:3000/mcp");
/// let transport = StreamableHttpClientTransport::with_client(client, config);
/// let mcp = ().serve(transport).await?;
/// println!("{:?}", mcp.peer().list_all_tools().await?);
/// # Ok(())
/// # }
/// ```
///
/// [`OAuthLayer`]: crate::OAuthLayer
/// [`OAuthService`]: crate::OAuthService
/// [`HyperOAuthService`]: super::HyperOAuthService
#[derive(Clone)]
pub struct TowerHttpClient<S> {
    service: S,
}

impl<S: std::fmt::Debug> std::fmt::Debug for TowerHttpClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // OAuthService's Debug shows no token; a custom service is responsible for its own.
        f.debug_struct("TowerHttpClient")
            .field("service", &self.service)
            .finish()
    }
}

impl<S> TowerHttpClient<S> {
    /// Wraps `service`, typically an [`OAuthService`](crate::OAuthService).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower::{service_fn, ServiceBuilder};
    /// use tower_mcp_oauth::rmcp::TowerHttpClient;
    /// use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
    ///
    /// // Any inner client: hyper-util's in real life.
    /// let inner = service_fn(|_: http::Request<OAuthBody<Full<Bytes>>>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
    /// });
    /// let service = ServiceBuilder::new()
    ///     .layer(OAuthLayer::new(
    ///         ClientConfig::new("http://127.0.0.1:8976/callback"),
    ///         HeadlessAuthorizer::new(),
    ///     ))
    ///     .service(inner);
    /// let client = TowerHttpClient::new(service);
    /// assert_eq!(client.get_ref().flows_started(), 0);
    /// ```
    pub fn new(service: S) -> Self {
        Self { service }
    }

    /// The wrapped service: with the layer, an [`OAuthService`](crate::OAuthService), whose
    /// [`flows_started`](crate::OAuthService::flows_started) tells whether a flow has run.
    ///
    /// ```
    /// use tower_mcp_oauth::rmcp::TowerHttpClient;
    /// let client = TowerHttpClient::new(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// }));
    /// let _service = client.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// Consumes `self`, returning the wrapped service (to share it with non-rmcp code: its
    /// clones share the layer's token cache).
    ///
    /// ```
    /// use tower_mcp_oauth::rmcp::TowerHttpClient;
    /// let client = TowerHttpClient::new(tower::service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// }));
    /// let _service = client.into_inner();
    /// ```
    pub fn into_inner(self) -> S {
        self.service
    }
}
/// The default `max_sse_event_size`, taken from rmcp's config so it follows rmcp's choice.
/// The transport itself always calls the `*_with_max_sse_event_size` methods.
fn default_max_sse_event_size() -> usize {
    StreamableHttpClientTransportConfig::default().max_sse_event_size
}

impl<S, B> StreamableHttpClient for TowerHttpClient<S>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = Error>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Error = TowerHttpError;

    // Each method clones the service before the future starts, so the future does not borrow
    // `self` and the service need not be `Sync`.

    fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, HttpError>> + Send + '_ {
        Self::post(
            self.service.clone(),
            uri,
            message,
            session_id,
            auth_token,
            custom_headers,
            default_max_sse_event_size(),
        )
    }

    fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, HttpError>> + Send + '_ {
        Self::post(
            self.service.clone(),
            uri,
            message,
            session_id,
            auth_token,
            custom_headers,
            max_sse_event_size,
        )
    }

    fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<(), HttpError>> + Send + '_ {
        Self::delete(
            self.service.clone(),
            uri,
            session_id,
            auth_token,
            custom_headers,
        )
    }

    fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<EventStream, HttpError>> + Send + '_ {
        Self::get(
            self.service.clone(),
            uri,
            session_id,
            last_event_id,
            auth_token,
            custom_headers,
            default_max_sse_event_size(),
        )
    }

    fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Result<EventStream, HttpError>> + Send + '_ {
        Self::get(
            self.service.clone(),
            uri,
            session_id,
            last_event_id,
            auth_token,
            custom_headers,
            max_sse_event_size,
        )
    }
}
