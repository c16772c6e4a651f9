//! The loopback HTTP server: hyper 1's HTTP/1 connection on a tokio listener, one request per
//! connection, routed to the waiting flows.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Uri};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcp_oauth_flow::authorization::AuthorizationResponse;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::debug;

use super::page::{self, Page};
use super::waiters::{Delivery, Waiters};

/// How long one browser connection may stay open. A callback is one small request; this only
/// bounds connections that never send one.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Where callbacks go: the redirect path and the flows waiting on it.
pub(super) struct Route {
    pub(super) path: String,
    /// The whole redirect URI, named in the error of a flow a callback ended.
    pub(super) redirect_uri: String,
    pub(super) waiters: Arc<Waiters>,
}

impl Route {
    /// Answers one request. Only a `GET` on the redirect path can reach a flow; anything else
    /// (a favicon request, a port scanner) gets an error page and ends nothing.
    pub(super) fn handle(&self, method: &Method, uri: &Uri) -> Page {
        if uri.path() != self.path {
            return page::not_found();
        }
        if method != Method::GET {
            return page::method_not_allowed();
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
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&route)));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    debug!(error = %e, "loopback accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, route: Arc<Route>) {
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let page = route.handle(request.method(), request.uri());
        async move { Ok::<Page, Infallible>(page) }
    });
    // No keep-alive: a browser would otherwise hold an idle connection for minutes.
    let connection = http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "loopback connection failed"),
        Err(_) => debug!("loopback connection timed out"),
    }
}
