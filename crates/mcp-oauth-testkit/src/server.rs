//! [`Testkit`]: the two listeners, their tasks, and the control surface tests use.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::TestkitConfig;
use crate::discovery::{Site, MCP_PATH};
use crate::record::{CannedResponse, RecordedRequest, ServerRole};
use crate::router;
use crate::state::{self, Shared, State};

/// A running authorization server and protected MCP resource server, each on its own
/// `127.0.0.1` port.
///
/// Dropping it (or [`shutdown`](Self::shutdown)) aborts both servers and their connections.
/// Must be started inside a Tokio runtime.
#[derive(Debug)]
pub struct Testkit {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Testkit {
    /// Binds both listeners on `127.0.0.1:0` and starts serving.
    pub async fn start(config: TestkitConfig) -> io::Result<Testkit> {
        let resource_listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let auth_listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let rs_origin = format!("http://{}", resource_listener.local_addr()?);
        let as_origin = format!("http://{}", auth_listener.local_addr()?);
        let site = Site::new(config.layout, &rs_origin, &as_origin);
        let state = State::new(&config, &site);
        let shared = Arc::new(Shared {
            config,
            site,
            state: Mutex::new(state),
        });
        state::register(&shared);
        let tasks = vec![
            tokio::spawn(serve(
                resource_listener,
                Arc::clone(&shared),
                ServerRole::Resource,
            )),
            tokio::spawn(serve(
                auth_listener,
                Arc::clone(&shared),
                ServerRole::Authorization,
            )),
        ];
        Ok(Testkit { shared, tasks })
    }

    /// The shared state, for the endpoints' own test controls.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The MCP endpoint, `http://127.0.0.1:P1/mcp`.
    pub fn resource_url(&self) -> String {
        format!("{}{}", self.shared.site.rs_origin, MCP_PATH)
    }

    /// The resource server origin, `http://127.0.0.1:P1`.
    pub fn resource_origin(&self) -> String {
        self.shared.site.rs_origin.clone()
    }

    /// The authorization server's issuer for the layout (`http://127.0.0.1:P2` or
    /// `http://127.0.0.1:P2/tenant1`; the resource origin in the legacy layouts). Not affected by
    /// [`TestkitConfig::metadata_issuer_override`].
    pub fn issuer(&self) -> String {
        self.shared.site.issuer.clone()
    }

    /// The authorization server origin, `http://127.0.0.1:P2`.
    pub fn auth_server_origin(&self) -> String {
        self.shared.site.as_origin.clone()
    }

    /// The configuration the testkit runs with.
    pub fn config(&self) -> &TestkitConfig {
        &self.shared.config
    }

    /// Every request either server received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().records.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().records.clear();
    }

    /// Revokes every access token issued so far: the resource server answers 401 for them.
    /// Refresh tokens stay valid.
    pub fn revoke_all_tokens(&self) {
        for token in self.shared.lock().access_tokens.values_mut() {
            token.revoked = true;
        }
    }

    /// Makes every request to `path` (exact match, query ignored) on the `role` server answer
    /// `response` instead of the normal routing. The request is still recorded.
    pub fn set_override(&self, role: ServerRole, path: &str, response: CannedResponse) {
        self.shared
            .lock()
            .overrides
            .insert((role, path.to_owned()), response);
    }

    /// Makes every request of `step` fail with `fault` (recorded first, like every request),
    /// until [`clear_faults`](Self::clear_faults). Faults take precedence over overrides.
    ///
    /// ```
    /// use http_body_util::Empty;
    /// use hyper_util::client::legacy::Client;
    /// use mcp_oauth_testkit::fault::{Fault, Step};
    /// use mcp_oauth_testkit::{Testkit, TestkitConfig};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    /// let client = Client::builder(hyper_util::rt::TokioExecutor::new())
    ///     .build_http::<Empty<bytes::Bytes>>();
    /// let prm: http::Uri = format!("{}/.well-known/oauth-protected-resource/mcp", kit.resource_origin())
    ///     .parse()
    ///     .unwrap();
    ///
    /// kit.inject_fault(Step::ResourceMetadata, Fault::Unavailable);
    /// let faulted = client.get(prm.clone()).await.unwrap();
    /// assert_eq!(faulted.status(), 503);
    /// assert_eq!(faulted.headers()["retry-after"], "1");
    ///
    /// kit.clear_faults();
    /// assert_eq!(client.get(prm).await.unwrap().status(), 200);
    /// # });
    /// ```
    pub fn inject_fault(&self, step: crate::fault::Step, fault: crate::fault::Fault) {
        self.shared.lock().faults.push((step, fault));
    }

    /// Whether a request of `step` has reached either server since the last
    /// [`clear_requests`](Self::clear_requests).
    pub fn reached(&self, step: crate::fault::Step) -> bool {
        self.shared
            .lock()
            .records
            .iter()
            .any(|r| step.matches(&self.shared.site, r))
    }

    /// Ends the user's browser session at the authorization server (a logout there, or its
    /// idle timeout). Under [`Imitation::Keycloak`](crate::Imitation::Keycloak) the refresh
    /// tokens bound to it are gone: presenting one is `invalid_grant`. Elsewhere (the kit's
    /// tokens outlive sessions) nothing changes.
    pub fn end_sessions(&self) {
        let imitation = self.shared.config.imitate.as_ref();
        let mut state = self.shared.lock();
        state.refresh_tokens.retain(|_, token| {
            !crate::imitation::ends_with_session(imitation, token.scope.as_deref())
        });
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Removes every override.
    pub fn clear_overrides(&self) {
        self.shared.lock().overrides.clear();
    }

    /// Changes `authorization_servers[0]` of the protected resource metadata (AS migration).
    ///
    /// The resource server trusts only tokens of the authorization server its metadata names:
    /// after pointing it at another running testkit's [`issuer`](Self::issuer) it accepts
    /// that one's tokens (bound to this resource) and no longer its own.
    pub fn set_prm_authorization_server(&self, issuer_url: &str) {
        let mut state = self.shared.lock();
        state.prm_authorization_server = issuer_url.to_owned();
        state.prm_authorization_servers = None;
    }

    /// Lists several authorization servers in the protected resource metadata, in this order
    /// (RFC 9728 §2), e.g. a broken one before this testkit's own [`issuer`](Self::issuer). The
    /// resource server trusts tokens of any listed server that is a running testkit.
    pub fn set_prm_authorization_servers(&self, issuer_urls: &[&str]) {
        let list: Vec<String> = issuer_urls.iter().map(|s| (*s).to_owned()).collect();
        let mut state = self.shared.lock();
        if let Some(first) = list.first() {
            state.prm_authorization_server = first.clone();
        }
        state.prm_authorization_servers = Some(list);
    }

    /// Stops both servers (the same as dropping the testkit).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Testkit {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Accepts connections until aborted; the connections live in a `JoinSet` owned by this task,
/// so aborting it closes them too.
async fn serve(listener: TcpListener, shared: Arc<Shared>, role: ServerRole) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = service_fn(move |request| {
                            let shared = Arc::clone(&shared);
                            async move { router::handle(shared, role, request).await }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
