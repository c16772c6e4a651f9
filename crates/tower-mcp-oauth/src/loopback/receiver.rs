//! [`LoopbackReceiver`]: the bound listener, its redirect URI, and how it is configured.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_flow::{Error, ErrorKind};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::debug;
use url::Url;

use super::server::{accept_loop, Route};
use super::waiters::Waiters;

/// How long a flow waits for its callback by default: 5 minutes.
///
/// ```
/// assert_eq!(tower_mcp_oauth::loopback::DEFAULT_CALLBACK_TIMEOUT.as_secs(), 300);
/// ```
pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// Where the authorization URL goes before the browser is opened.
pub(super) type UrlSink = Arc<dyn Fn(&Url) + Send + Sync>;

/// Which loopback host the receiver listens on and names in its redirect URI.
///
/// RFC 8252 §7.3 and §8.3 recommend the IP literal: `localhost` may resolve to another
/// interface, or to the other IP family than the one listened on, where another program may hold
/// the same port.
///
/// ```
/// use tower_mcp_oauth::loopback::{LoopbackHost, LoopbackReceiver};
/// # tokio_test::block_on(async {
/// // For a client registered with `http://localhost/...` redirect URIs.
/// let receiver = LoopbackReceiver::builder().host(LoopbackHost::Localhost).bind().await.unwrap();
/// assert!(receiver.redirect_uri().starts_with("http://localhost:"), "{}", receiver.redirect_uri());
/// assert!(receiver.local_addr().ip().is_loopback());
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoopbackHost {
    /// `127.0.0.1`, the default.
    #[default]
    Ipv4,
    /// `[::1]`.
    Ipv6,
    /// The name `localhost`, for clients registered with it. Listens on `127.0.0.1` and, when
    /// the machine has IPv6 loopback, on `[::1]` with the same port, since a browser may
    /// resolve either. A port another process holds on `[::1]` is refused (that process would
    /// get the authorization response): an ephemeral one is chosen again, a fixed one fails
    /// to bind.
    Localhost,
}

/// Configures and binds a [`LoopbackReceiver`]. Made by [`LoopbackReceiver::builder`].
///
/// ```
/// use std::time::Duration;
/// use tower_mcp_oauth::loopback::LoopbackReceiver;
/// # tokio_test::block_on(async {
/// let receiver = LoopbackReceiver::builder()
///     .path("/oauth/callback")
///     .timeout(Duration::from_secs(120))
///     .on_authorization_url(|url| println!("{url}"))
///     .bind()
///     .await
///     .unwrap();
/// assert!(receiver.redirect_uri().ends_with("/oauth/callback"));
/// # });
/// ```
#[must_use = "a builder does nothing until bound"]
pub struct LoopbackBuilder {
    host: LoopbackHost,
    port: u16,
    path: String,
    timeout: Duration,
    open_browser: bool,
    sink: UrlSink,
}

impl fmt::Debug for LoopbackBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("open_browser", &self.open_browser)
            .finish_non_exhaustive()
    }
}

impl Default for LoopbackBuilder {
    fn default() -> Self {
        Self {
            host: LoopbackHost::default(),
            port: 0,
            path: "/callback".into(),
            timeout: DEFAULT_CALLBACK_TIMEOUT,
            open_browser: false,
            sink: Arc::new(print_to_stderr),
        }
    }
}

/// The default sink: the URL on a line of its own, so it can be copied or clicked.
fn print_to_stderr(url: &Url) {
    eprintln!("Open this URL in your browser to authorize:\n{url}");
}

impl LoopbackBuilder {
    /// The host to listen on. Default: [`LoopbackHost::Ipv4`].
    pub fn host(mut self, host: LoopbackHost) -> Self {
        self.host = host;
        self
    }

    /// A fixed port, for clients pre-registered with a full redirect URI. Default: `0`, an
    /// ephemeral port chosen by the system (RFC 8252 §7.3: the server must accept any port on a
    /// loopback redirect URI).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The path of the redirect URI; it must start with `/`. Default: `/callback`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// How long one flow waits for its callback before failing with
    /// [`ErrorKind::ConsentTimeout`]. Default: [`DEFAULT_CALLBACK_TIMEOUT`] (5 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether to open the system browser on the authorization URL (see
    /// [`open_browser`](super::open_browser)). A browser that cannot be started is not an
    /// error: the URL has been printed. Default: `false`.
    pub fn open_browser(mut self, open: bool) -> Self {
        self.open_browser = open;
        self
    }

    /// Where the authorization URL goes, before the browser (if any) is opened. It is always
    /// handed out, so a user without a browser on this machine can open it elsewhere. Default:
    /// a line of explanation and the URL on a line of its own, on stderr.
    ///
    /// The URL carries the request's `state`: show it to the user, do not log it.
    pub fn on_authorization_url(mut self, sink: impl Fn(&Url) + Send + Sync + 'static) -> Self {
        self.sink = Arc::new(sink);
        self
    }

    /// Binds the listener and starts serving. Must be called within a Tokio runtime (with the
    /// time driver); the listener then runs on that runtime until the last clone of the
    /// receiver is dropped.
    ///
    /// Fails with [`ErrorKind::InvalidRedirectUri`] if the path is not absolute or not written
    /// as a URL writes it (`/a/../cb`, `/o auth`: a browser would ask for `/cb`, `/o%20auth`,
    /// and never reach the receiver), and with
    /// [`ErrorKind::CallbackListener`] if the port is taken (for `localhost`, on either
    /// `127.0.0.1` or `[::1]`).
    pub async fn bind(self) -> Result<LoopbackReceiver, Error> {
        if !self.path.starts_with('/') || self.path.contains(['?', '#']) {
            return Err(Error::new(
                ErrorKind::InvalidRedirectUri,
                format!(
                    "the redirect path {:?} must start with '/' and have no query or fragment",
                    self.path
                ),
            ));
        }
        // The browser requests the path as a URL writes it (dot-segments removed, RFC 3986
        // §5.2.4; anything else percent-encoded, §2.1), and the receiver routes on the exact
        // text: a path a URL would write otherwise could never be reached, and every sign-in
        // would wait out its timeout.
        let written = Url::parse(&format!("http://127.0.0.1{}", self.path))
            .map(|url| url.path().to_owned())
            .ok();
        if written.as_deref() != Some(self.path.as_str()) {
            return Err(Error::new(
                ErrorKind::InvalidRedirectUri,
                format!(
                    "the redirect path {:?} is not written as a URL writes it ({}): use that \
                     form",
                    self.path,
                    written.as_deref().unwrap_or("not a URL path"),
                ),
            ));
        }
        let (primary_ip, name) = match self.host {
            LoopbackHost::Ipv4 => (IpAddr::V4(Ipv4Addr::LOCALHOST), "127.0.0.1"),
            LoopbackHost::Ipv6 => (IpAddr::V6(Ipv6Addr::LOCALHOST), "[::1]"),
            LoopbackHost::Localhost => (IpAddr::V4(Ipv4Addr::LOCALHOST), "localhost"),
        };
        let (listeners, local_addr) = self.listeners(primary_ip).await?;
        let redirect_uri = format!("http://{name}:{}{}", local_addr.port(), self.path);
        let waiters = Arc::new(Waiters::default());
        let route = Arc::new(Route {
            path: self.path,
            redirect_uri: redirect_uri.clone(),
            host: name.to_owned(),
            port: local_addr.port(),
            open: Arc::new(tokio::sync::Semaphore::new(super::server::MAX_CONNECTIONS)),
            waiters: Arc::clone(&waiters),
        });
        let tasks = listeners
            .into_iter()
            .map(|listener| tokio::spawn(accept_loop(listener, Arc::clone(&route))))
            .collect();
        debug!(%redirect_uri, "loopback receiver listening");
        Ok(LoopbackReceiver {
            inner: Arc::new(Inner {
                redirect_uri,
                local_addr,
                timeout: self.timeout,
                open_browser: self.open_browser,
                sink: self.sink,
                waiters,
                tasks,
            }),
        })
    }
}

/// How many ephemeral ports `localhost` tries before giving up, when the port the system gave
/// on 127.0.0.1 is another process's on `[::1]`.
const LOCALHOST_PORT_TRIES: usize = 8;

impl LoopbackBuilder {
    /// The listeners for the redirect URI, and the address of the first.
    ///
    /// For `localhost`, the same port on `[::1]` too: a browser may resolve the name to either
    /// family, and tries `::1` first on most systems. A machine without IPv6 loopback gets the
    /// IPv4 listener alone (the browser's `::1` attempt is refused and it falls back). But if
    /// another process listens on `[::1]` at that port, the browser would hand the
    /// authorization response (code and state) to it (RFC 8252 §8.3): an ephemeral port is
    /// chosen again, and a fixed one is a [`ErrorKind::CallbackListener`] error.
    async fn listeners(&self, primary_ip: IpAddr) -> Result<(Vec<TcpListener>, SocketAddr), Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            let primary = listen(SocketAddr::new(primary_ip, self.port)).await?;
            let local_addr = primary
                .local_addr()
                .map_err(|e| bind_error(SocketAddr::new(primary_ip, self.port), e))?;
            if self.host != LoopbackHost::Localhost {
                return Ok((vec![primary], local_addr));
            }
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), local_addr.port());
            match TcpListener::bind(v6).await {
                Ok(listener) => return Ok((vec![primary, listener], local_addr)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    if self.port == 0 && tries < LOCALHOST_PORT_TRIES {
                        continue;
                    }
                    return Err(Error::new(
                        ErrorKind::CallbackListener,
                        format!(
                            "another process listens on {v6}, where a browser resolving \
                             localhost would deliver the authorization response"
                        ),
                    )
                    .with_source(e));
                }
                Err(e) => {
                    // No IPv6 loopback: the browser's attempt on ::1 is refused, and it falls
                    // back to 127.0.0.1.
                    debug!(error = %e, "loopback receiver listens on IPv4 only");
                    return Ok((vec![primary], local_addr));
                }
            }
        }
    }
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, e))
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::CallbackListener,
        format!("the loopback receiver cannot listen on {addr}: {e}"),
    )
    .with_source(e)
}

/// An RFC 8252 §7.3 loopback redirect receiver: an HTTP listener on the loopback interface
/// that catches the authorization response for a CLI or desktop app, and an
/// [`Authorizer`](crate::Authorizer) that uses it.
///
/// Bind it first, build the [`ClientConfig`](crate::ClientConfig) from its
/// [`redirect_uri`](Self::redirect_uri), and hand a clone to the layer. The listener stays bound
/// until the last clone is dropped, so the redirect URI stays valid across flows; each flow
/// prints the authorization URL, optionally opens the browser, and waits for its own callback
/// (matched by `state`) up to the timeout.
///
/// A callback whose `state` matches no waiting flow (a forged request, or a stale tab; an
/// `error=` response without the right `state` too) gets an error page and **ends the waiting
/// flows at once** with [`ErrorKind::StateMismatch`], as AppAuth does: no code is redeemed, and
/// the user learns what happened now, not at the timeout. Only the browser's own navigation
/// counts: a request whose `Host` is not the receiver's (a DNS-rebound name) is answered 421,
/// one a page makes for an image or a script (Fetch Metadata) 400, and neither ends anything;
/// the reload of one of the last eight callbacks handed to their flow is told it was received.
/// A callback with the right `state` but an `iss` naming another issuer gets an error page too,
/// and its flow refuses it with [`ErrorKind::IssuerParameterMismatch`] before any token
/// request. At most 32 connections are served at once (the next wait in the kernel's queue),
/// each with a 64 KiB request head sent within 10 s.
///
/// The whole round trip, with the test playing the browser:
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Empty;
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
/// use mcp_oauth_flow::secrets::CsrfToken;
/// use tower_mcp_oauth::loopback::LoopbackReceiver;
/// use tower_mcp_oauth::{AuthorizationRequest, Authorizer, HttpClient};
///
/// # tokio_test::block_on(async {
/// let receiver = LoopbackReceiver::builder()
///     .on_authorization_url(|_| {}) // a real app shows it to the user
///     .bind()
///     .await
///     .unwrap();
/// let request = AuthorizationRequest::new(
///     &"https://as.example.com/authorize".parse().unwrap(),
///     "my-client",
///     receiver.redirect_uri(),
///     "challenge",
///     CsrfToken::new("xyz".into()),
///     None,
///     None,
///     "https://as.example.com",
/// );
/// let unused = HttpClient::from_fn(|_| async { unreachable!("the receiver sends nothing") });
/// let waiting = tokio::spawn(receiver.authorize(request, unused));
///
/// // The browser, redirected back by the authorization server:
/// let browser = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
/// let callback = format!("{}?code=abc&state=xyz", receiver.redirect_uri());
/// let page = browser.get(callback.parse().unwrap()).await.unwrap();
/// assert_eq!(page.status(), 200); // "You can close this window"
///
/// let response = waiting.await.unwrap().unwrap();
/// assert_eq!(response.code.unwrap().secret(), "abc");
/// # });
/// ```
#[derive(Clone)]
pub struct LoopbackReceiver {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) redirect_uri: String,
    pub(super) local_addr: SocketAddr,
    pub(super) timeout: Duration,
    pub(super) open_browser: bool,
    pub(super) sink: UrlSink,
    pub(super) waiters: Arc<Waiters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping the accept loops closes the listeners and every open connection.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl fmt::Debug for LoopbackReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackReceiver")
            .field("redirect_uri", &self.inner.redirect_uri)
            .field("timeout", &self.inner.timeout)
            .field("open_browser", &self.inner.open_browser)
            .field("waiting", &self.inner.waiters.len())
            .finish_non_exhaustive()
    }
}

impl LoopbackReceiver {
    /// A builder: `127.0.0.1`, an ephemeral port, `/callback`, 5 minutes, no browser, the URL
    /// printed to stderr.
    pub fn builder() -> LoopbackBuilder {
        LoopbackBuilder::default()
    }

    /// Binds a receiver with the [`builder`](Self::builder)'s defaults.
    ///
    /// ```
    /// use tower_mcp_oauth::loopback::LoopbackReceiver;
    /// # tokio_test::block_on(async {
    /// let receiver = LoopbackReceiver::bind().await.unwrap();
    /// assert!(receiver.redirect_uri().starts_with("http://127.0.0.1:"));
    /// # });
    /// ```
    pub async fn bind() -> Result<Self, Error> {
        Self::builder().bind().await
    }

    /// The redirect URI to register and to put in the
    /// [`ClientConfig`](crate::ClientConfig), e.g. `http://127.0.0.1:54321/callback`.
    ///
    /// ```
    /// use tower_mcp_oauth::{loopback::LoopbackReceiver, ClientConfig};
    /// # tokio_test::block_on(async {
    /// let receiver = LoopbackReceiver::builder().path("/cb").bind().await.unwrap();
    /// let port = receiver.local_addr().port();
    /// assert_eq!(receiver.redirect_uri(), format!("http://127.0.0.1:{port}/cb"));
    /// let config = ClientConfig::new(receiver.redirect_uri());
    /// # let _ = config;
    /// # });
    /// ```
    pub fn redirect_uri(&self) -> &str {
        &self.inner.redirect_uri
    }

    /// The address the receiver listens on (with [`LoopbackHost::Localhost`], the IPv4 one).
    ///
    /// ```
    /// # tokio_test::block_on(async {
    /// let receiver = tower_mcp_oauth::loopback::LoopbackReceiver::bind().await.unwrap();
    /// assert!(receiver.local_addr().ip().is_loopback());
    /// # });
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// How many flows are waiting for their callback now.
    ///
    /// ```
    /// # tokio_test::block_on(async {
    /// let receiver = tower_mcp_oauth::loopback::LoopbackReceiver::bind().await.unwrap();
    /// assert_eq!(receiver.waiting(), 0);
    /// # });
    /// ```
    pub fn waiting(&self) -> usize {
        self.inner.waiters.len()
    }
}
