//! What the time-limit tests stall (`time_limits.rs`, `store_time_limits.rs`,
//! `logout_time_limits.rs`): the scripted MCP server and authorization server with a fault to
//! switch on, a token store slow or silent in the ways a real one is, and the tokens the tests
//! start from. Every test runs under tokio's paused time, so none waits for real.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use mcp_oauth_flow::client::ClientAuthMethod;
use mcp_oauth_flow::secrets::RefreshToken;
use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService};
use tower_mcp_oauth::{BoxFuture, Error, MemoryStore, OAuthBody, TokenSet, TokenStore, TokenType};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;
pub(crate) type Req = http::Request<OAuthBody<Full<Bytes>>>;
pub(crate) type Server = BoxCloneService<Req, http::Response<Body>, Infallible>;

pub(crate) const REDIRECT: &str = "http://localhost:3000/callback";

pub(crate) fn full(response: http::Response<Full<Bytes>>) -> http::Response<Body> {
    response.map(|b| b.boxed_unsync())
}

/// A `200` whose body of `len` bytes comes one byte per second.
pub(crate) fn slow_drip(len: usize) -> http::Response<Body> {
    let stream = futures_util::stream::unfold(0, move |sent| async move {
        if sent == len {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some((
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b" "))),
            sent + 1,
        ))
    });
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap()
}

/// What the scripted servers do wrong while `faulty` is set.
#[derive(Clone, Copy)]
pub(crate) enum Fault {
    /// The protected resource metadata drips in at one byte per second.
    DripMetadata,
    /// The token endpoint accepts the request and never answers.
    StallToken,
}

/// The scripted MCP server and authorization server; `/mcp` wants `Bearer at-1` (or the
/// refreshed `at-2`). Counts token requests.
pub(crate) fn server(
    fault: Fault,
    faulty: Arc<AtomicBool>,
    token_requests: Arc<AtomicUsize>,
) -> Server {
    BoxCloneService::new(service_fn(move |req: Req| {
        let (faulty, token_requests) = (faulty.clone(), token_requests.clone());
        async move {
            let broken = faulty.load(Ordering::SeqCst);
            // The resource metadata also at its well-known place, where a refresh (which has no
            // challenge to follow) looks for it.
            let path = match req.uri().path() {
                "/.well-known/oauth-protected-resource/mcp" => "/prm".to_owned(),
                other => other.to_owned(),
            };
            if path == "/prm" {
                if broken && matches!(fault, Fault::DripMetadata) {
                    return Ok(slow_drip(200));
                }
                let prm = http::Request::get("/prm").body(()).unwrap();
                return Ok(full(flow_response(&prm).unwrap()));
            }
            if path == "/token" {
                token_requests.fetch_add(1, Ordering::SeqCst);
                if broken && matches!(fault, Fault::StallToken) {
                    std::future::pending::<()>().await;
                }
                return Ok(full(json(
                    200,
                    json!({"access_token": "at-2", "refresh_token": "rt-2", "token_type": "Bearer", "expires_in": 3600}),
                )));
            }
            if let Some(response) = flow_response(&req) {
                return Ok(full(response));
            }
            let authorized = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v == "Bearer at-1" || v == "Bearer at-2");
            Ok(full(if authorized {
                json(200, json!({"ok": true}))
            } else {
                unauthorized()
            }))
        }
    }))
}

pub(crate) fn request() -> http::Request<Full<Bytes>> {
    http::Request::get(format!("{RS}/mcp"))
        .body(Full::default())
        .unwrap()
}

/// An expired token with a refresh token, for the server at `RS`.
pub(crate) fn expired() -> TokenSet {
    TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
}

/// [`expired`], refreshable where it was issued, as a public client: a refresh needs no
/// discovery and no registration.
pub(crate) fn refreshable_where_issued() -> TokenSet {
    expired().with_token_endpoint(
        Some("http://127.0.0.1:2/token".into()),
        Some(ClientAuthMethod::None),
    )
}

/// A slow store: each read takes `read`, and the refresh lock is given after `lock`, or never
/// (a file lock a hung process keeps).
pub(crate) struct SlowStore {
    pub(crate) inner: MemoryStore,
    pub(crate) read: Duration,
    pub(crate) lock: Option<Duration>,
    /// Every write (tokens, the flow's record, the lock's release) and the record's read
    /// never answer.
    pub(crate) stall_writes: bool,
    /// The lock takes 1 s to give back, and says here when it did.
    pub(crate) slow_release: Option<Arc<AtomicBool>>,
}

impl SlowStore {
    /// Answers everything at once.
    pub(crate) fn prompt() -> Self {
        Self {
            inner: MemoryStore::new(),
            read: Duration::ZERO,
            lock: Some(Duration::ZERO),
            stall_writes: false,
            slow_release: None,
        }
    }

    pub(crate) fn stuck_lock() -> Self {
        Self {
            lock: None,
            ..Self::prompt()
        }
    }

    /// Waits for ever if writes stall, else runs `write`.
    async fn write<T>(&self, write: BoxFuture<'_, Result<T, Error>>) -> Result<T, Error> {
        if self.stall_writes {
            std::future::pending::<()>().await;
        }
        write.await
    }
}

impl TokenStore for SlowStore {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        Box::pin(async move {
            tokio::time::sleep(self.read).await;
            self.inner.load_tokens(resource).await
        })
    }
    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.write(self.inner.save_tokens(resource, tokens)))
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<tower_mcp_oauth::Replaced, Error>> {
        Box::pin(self.write(self.inner.compare_and_swap_tokens(resource, current, new)))
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<tower_mcp_oauth::ClientRegistration>, Error>> {
        self.inner.load_client(issuer)
    }
    fn save_client<'a>(
        &'a self,
        registration: &'a tower_mcp_oauth::ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_client(registration)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_client(issuer)
    }
    fn lock<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<tower_mcp_oauth::StoreLock, Error>> {
        Box::pin(async move {
            let held = match self.lock {
                Some(wait) => {
                    tokio::time::sleep(wait).await;
                    self.inner.lock(resource).await?
                }
                None => std::future::pending().await,
            };
            if self.stall_writes {
                // Given, but its release never answers (a lease's store gone quiet).
                return Ok(tower_mcp_oauth::StoreLock::with_release(move || {
                    Box::pin(async move {
                        std::future::pending::<()>().await;
                        drop(held);
                    })
                }));
            }
            let Some(released) = self.slow_release.clone() else {
                return Ok(held);
            };
            Ok(tower_mcp_oauth::StoreLock::with_release(move || {
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    drop(held);
                    released.store(true, Ordering::SeqCst);
                })
            }))
        })
    }
    fn save_last_flow<'a>(
        &'a self,
        server: &'a str,
        record: &'a tower_mcp_oauth::LastFlow,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.write(self.inner.save_last_flow(server, record)))
    }
    fn load_last_flow<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<tower_mcp_oauth::LastFlow>, Error>> {
        Box::pin(self.write(self.inner.load_last_flow(server)))
    }
}

/// A store whose reads never answer (a year each) and whose writes stall too.
pub(crate) fn unreadable_store() -> SlowStore {
    SlowStore {
        read: Duration::from_secs(365 * 24 * 3600),
        lock: None,
        stall_writes: true,
        ..SlowStore::prompt()
    }
}
