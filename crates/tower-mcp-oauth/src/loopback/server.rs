//! The loopback HTTP server: hyper 1's HTTP/1 connection on a tokio listener, one request per
//! connection, routed to the waiting flows.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::HOST;
use http::{HeaderMap, Method, StatusCode, Uri};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use mcp_oauth_flow::authorization::AuthorizationResponse;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::debug;

use super::page::{self, Page};
use super::waiters::{Delivery, Waiters};

/// How long one browser connection may stay open. A callback is one small request; this only
/// bounds connections that never send one.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may take to send its request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once, over all of the receiver's listeners. A browser opens a few;
/// past this many, the next waits in the kernel's accept queue until one ends (a head must
/// come within [`HEADER_READ_TIMEOUT`]), so that a local process opening thousands cannot
/// spend the application's file descriptors (its MCP connections and token requests need them).
pub(super) const MAX_CONNECTIONS: usize = 32;
/// The most a connection's request head may buffer (hyper's default is about 400 KiB). A
/// callback's own head is small, but the browser adds every cookie any local development
/// server set for `localhost` or `127.0.0.1` (cookies ignore the port: session cookies of a
/// few KiB each), a long code and the client hints; Node.js raised its own 8 KiB limit to
/// 16 KiB for the same reason.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Where callbacks go: the redirect path and the flows waiting on it.
pub(super) struct Route {
    pub(super) path: String,
    /// The whole redirect URI, named in the error of a flow a callback ended.
    pub(super) redirect_uri: String,
    /// The redirect URI's host (`127.0.0.1`, `[::1]`, `localhost`) and port, which the browser
    /// sends as `Host` (the port left out when it is 80).
    pub(super) host: String,
    pub(super) port: u16,
    /// Places for connections served at once, shared by the receiver's listeners.
    pub(super) open: Arc<Semaphore>,
    pub(super) waiters: Arc<Waiters>,
}

impl Route {
    /// Whether a `Host` header names this receiver: its host, ignoring case (RFC 9110 §4.2.3),
    /// and its port, which is left out when it is the scheme's default, 80 (§7.2).
    fn is_own_host(&self, value: &str) -> bool {
        let (host, port) = match value.rsplit_once(':') {
            // A colon after the last `]` (or in a name) starts the port.
            Some((host, port)) if !port.contains(']') => (
                host,
                // Digits only: `u16`'s parser also takes a sign.
                port.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| port.parse::<u16>().ok())
                    .flatten(),
            ),
            _ => (value, Some(80)),
        };
        host.eq_ignore_ascii_case(&self.host) && port == Some(self.port)
    }

    /// Answers one request. Only the browser's `GET` navigation to the redirect path can reach
    /// a flow; anything else (a favicon request, a port scanner, a page's image or fetch, a
    /// DNS-rebound name) gets an error page and ends nothing.
    pub(super) fn handle(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Page {
        if uri.path() != self.path {
            return page::not_found();
        }
        if method != Method::GET {
            return page::method_not_allowed();
        }
        // A browser sends the redirect URI's own `host:port`; a page whose name was rebound to
        // 127.0.0.1 sends its own name (RFC 9110 §7.2). Answered as misdirected (§15.5.20).
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| self.is_own_host(h)) {
            debug!("a loopback request named another host; ignored");
            return page::not_a_callback(StatusCode::MISDIRECTED_REQUEST);
        }
        // The authorization server's redirect is a top-level navigation (Fetch Metadata: a
        // `document`); a page's `<img>` or `fetch` of the URL, which any site could make, is
        // not, and must not end the user's sign-in with a forged state. A browser too old to
        // send the header, and a command-line client, send none.
        let destination = headers.get("sec-fetch-dest");
        if destination.is_some_and(|d| d != "document") {
            debug!("a loopback request was a page's subresource; ignored");
            return page::not_a_callback(StatusCode::BAD_REQUEST);
        }
        // RFC 6749 §4.1.2: the response parameters are in the redirect URI's query.
        let response = AuthorizationResponse::from_query(uri.query().unwrap_or(""));
        let error = response
            .error
            .clone()
            .map(|e| (e, response.error_description.clone()));
        match self.waiters.deliver(response, &self.redirect_uri) {
            Delivery::Delivered => match error {
                None => page::received(),
                Some((error, description)) => page::denied(&error, description.as_deref()),
            },
            Delivery::IssuerMismatch => {
                debug!("a loopback callback names another issuer; its flow refuses it");
                page::issuer_mismatch()
            }
            Delivery::Repeated => page::already_received(),
            Delivery::Mismatch => {
                debug!("a loopback callback's state matches no waiting flow; they were ended");
                page::state_mismatch()
            }
            Delivery::NobodyWaiting => {
                debug!("refused a loopback callback: no flow is waiting");
                page::nobody_waiting()
            }
        }
    }
}

/// Accepts connections until the task is aborted; aborting it drops the listener and, with the
/// `JoinSet`, every connection still open.
pub(super) async fn accept_loop(listener: TcpListener, route: Arc<Route>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Reap finished connections first, so the set does not grow.
            biased;
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            // A place first, then the connection: past the limit, connections wait in the
            // kernel's accept queue (the browser's callback among them) rather than being
            // accepted and closed.
            permit = Arc::clone(&route.open).acquire_owned() => {
                let Ok(permit) = permit else { return };
                match listener.accept().await {
                    Ok((stream, _)) => {
                        connections.spawn(serve(stream, Arc::clone(&route), permit));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        debug!(error = %e, "loopback accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

/// Serves one connection, holding its place (`_permit`) among the [`MAX_CONNECTIONS`] until it
/// ends.
async fn serve(stream: TcpStream, route: Arc<Route>, _permit: OwnedSemaphorePermit) {
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let page = route.handle(request.method(), request.uri(), request.headers());
        async move { Ok::<Page, Infallible>(page) }
    });
    // No keep-alive: a browser would otherwise hold an idle connection for minutes.
    let connection = http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_HEAD_BYTES)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "loopback connection failed"),
        Err(_) => debug!("loopback connection timed out"),
    }
}
