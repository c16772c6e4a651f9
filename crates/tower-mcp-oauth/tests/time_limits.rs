//! The layer's own time limits, under tokio's paused time (no test waits for real): a
//! slow-drip metadata server and a stalled token endpoint end in `ErrorKind::Timeout` naming
//! the URL and the limit, stored credentials survive, and the next call tries again. The
//! consent wait is not counted in the flow deadline, and a request with a valid token starts
//! no timer.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use mcp_oauth_flow::secrets::RefreshToken;
use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{
    AuthorizationRequest, AuthorizationResponse, Authorizer, BoxFuture, ClientConfig, Error,
    ErrorKind, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthBody, OAuthLayer, Timer, TokenSet,
    TokenStore, TokenType, TokioTimer,
};

type Body = UnsyncBoxBody<Bytes, Infallible>;
type Req = http::Request<OAuthBody<Full<Bytes>>>;
type Server = BoxCloneService<Req, http::Response<Body>, Infallible>;

const REDIRECT: &str = "http://localhost:3000/callback";

fn full(response: http::Response<Full<Bytes>>) -> http::Response<Body> {
    response.map(|b| b.boxed_unsync())
}

/// A `200` whose body of `len` bytes comes one byte per second.
fn slow_drip(len: usize) -> http::Response<Body> {
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
enum Fault {
    /// The protected resource metadata drips in at one byte per second.
    DripMetadata,
    /// The token endpoint accepts the request and never answers.
    StallToken,
}

/// The scripted MCP server and authorization server; `/mcp` wants `Bearer at-1` (or the
/// refreshed `at-2`). Counts token requests.
fn server(fault: Fault, faulty: Arc<AtomicBool>, token_requests: Arc<AtomicUsize>) -> Server {
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

fn request() -> http::Request<Full<Bytes>> {
    http::Request::get(format!("{RS}/mcp"))
        .body(Full::default())
        .unwrap()
}

fn layer(store: Arc<MemoryStore>) -> OAuthLayer {
    // No failure backoff, so "the next call" is the very next one.
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store as Arc<dyn TokenStore>)
        .failure_backoff(Duration::ZERO)
}

#[tokio::test(start_paused = true)]
async fn a_slow_drip_metadata_server_times_out_at_the_request_limit_and_the_next_call_retries() {
    let faulty = Arc::new(AtomicBool::new(true));
    let tokens = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    let service = layer(Arc::clone(&store)).layer(server(
        Fault::DripMetadata,
        faulty.clone(),
        tokens.clone(),
    ));

    let started = tokio::time::Instant::now();
    let error = service.clone().oneshot(request()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(error.is_transient());
    // The whole response, body included, is bounded: the headers came at once, the body never
    // finished, and the default 30 s cut it.
    assert_eq!(
        error.to_string(),
        format!("no complete response from {RS}/prm within 30 s")
    );
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    assert_eq!(tokens.load(Ordering::SeqCst), 0);

    // The server recovers: the very next call runs the flow again and succeeds.
    faulty.store(false, Ordering::SeqCst);
    let response = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(service.flows_started(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_token_endpoint_times_out_keeps_the_refresh_token_and_the_next_call_refreshes() {
    let faulty = Arc::new(AtomicBool::new(true));
    let tokens = Arc::new(AtomicUsize::new(0));
    // An expired token with a refresh token, from an earlier run.
    let store = Arc::new(MemoryStore::new());
    let expired = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())));
    store
        .save_tokens(&format!("{RS}/mcp"), &expired)
        .await
        .unwrap();
    let service = layer(Arc::clone(&store))
        .request_timeout(Duration::from_secs(5))
        .layer(server(Fault::StallToken, faulty.clone(), tokens.clone()));

    let error = service.clone().oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert_eq!(
        error.to_string(),
        "no complete response from http://127.0.0.1:2/token within 5 s"
    );
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    // A timeout refuses nothing: the refresh token is still there.
    let kept = store
        .load_tokens(&format!("{RS}/mcp"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.refresh_token().unwrap().secret(), "rt-1");

    faulty.store(false, Ordering::SeqCst);
    let response = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let refreshed = store
        .load_tokens(&format!("{RS}/mcp"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refreshed.access_token().secret(), "at-2");
}

#[tokio::test(start_paused = true)]
async fn the_flow_deadline_cuts_a_stall_shorter_than_the_request_timeout() {
    let faulty = Arc::new(AtomicBool::new(true));
    let tokens = Arc::new(AtomicUsize::new(0));
    let service = layer(Arc::new(MemoryStore::new()))
        .flow_deadline(Duration::from_secs(8))
        .layer(server(Fault::StallToken, faulty, tokens.clone()));
    let started = tokio::time::Instant::now();
    let error = service.oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert_eq!(
        error.to_string(),
        format!(
            "the authorization flow for {RS} did not finish within its 8 s deadline (consent \
             time not counted)"
        )
    );
    assert_eq!(started.elapsed(), Duration::from_secs(8));
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    // What the flow did before the deadline, as for any failure.
    let report = error.report().expect("a discovery report");
    assert!(
        report.steps().iter().any(|s| s.url.ends_with("/prm")),
        "{report}"
    );
}

/// Approves like the headless authorizer, after a user took `think` to decide.
struct SlowUser {
    think: Duration,
}

impl Authorizer for SlowUser {
    fn authorize(
        &self,
        request: AuthorizationRequest,
        client: HttpClient,
    ) -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
        let think = self.think;
        Box::pin(async move {
            tokio::time::sleep(think).await;
            HeadlessAuthorizer::new().authorize(request, client).await
        })
    }
}

#[tokio::test(start_paused = true)]
async fn consent_time_is_not_counted_in_the_flow_deadline_and_has_its_own_bound() {
    let service = |think, consent| {
        OAuthLayer::new(ClientConfig::new(REDIRECT), SlowUser { think })
            .flow_deadline(Duration::from_secs(10))
            .consent_timeout(consent)
            .layer(server(
                Fault::StallToken,
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicUsize::new(0)),
            ))
    };
    // A user who takes 100 s, far past the 10 s deadline, still gets through.
    let patient = service(Duration::from_secs(100), Duration::from_secs(600));
    assert_eq!(patient.oneshot(request()).await.unwrap().status(), 200);

    // A user slower than the consent timeout does not.
    let impatient = service(Duration::from_secs(100), Duration::from_secs(60));
    let error = impatient.oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConsentTimeout, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("within the layer's consent timeout of 60 s"),
        "{error}"
    );
}

/// Tokio's timer, counting the sleeps it hands out.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Timer for Counting {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        TokioTimer.sleep(duration)
    }

    fn now(&self) -> std::time::Instant {
        TokioTimer.now()
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_with_a_valid_token_starts_no_timer() {
    let timer = Counting::default();
    let service = layer(Arc::new(MemoryStore::new()))
        .timer(timer.clone())
        .layer(server(
            Fault::StallToken,
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        ));
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    let after_flow = timer.0.load(Ordering::SeqCst);
    assert!(after_flow > 0, "the flow's steps were bounded");
    for _ in 0..10 {
        assert_eq!(
            service.clone().oneshot(request()).await.unwrap().status(),
            200
        );
    }
    assert_eq!(timer.0.load(Ordering::SeqCst), after_flow);
    assert_eq!(service.flows_started(), 1);
}

/// A slow store: each read takes `read`, and the refresh lock is given after `lock`, or never
/// (a file lock a hung process keeps).
struct SlowStore {
    inner: MemoryStore,
    read: Duration,
    lock: Option<Duration>,
    /// Every write (tokens, the flow's record, the lock's release) and the record's read
    /// never answer.
    stall_writes: bool,
    /// The lock takes 1 s to give back, and says here when it did.
    slow_release: Option<Arc<AtomicBool>>,
}

impl SlowStore {
    /// Answers everything at once.
    fn prompt() -> Self {
        Self {
            inner: MemoryStore::new(),
            read: Duration::ZERO,
            lock: Some(Duration::ZERO),
            stall_writes: false,
            slow_release: None,
        }
    }

    fn stuck_lock() -> Self {
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

/// An expired token with a refresh token, for the server at `RS`.
fn expired() -> TokenSet {
    TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
}

/// Sends a request whose stored token is expired and refreshable, through `store` and a
/// 10 s flow deadline (the token endpoint would answer at once): the error, the time it took
/// and how many token requests were made.
async fn refresh_through(store: SlowStore) -> (Error, Duration, usize) {
    let tokens = Arc::new(AtomicUsize::new(0));
    store
        .save_tokens(&format!("{RS}/mcp"), &expired())
        .await
        .unwrap();
    let healthy = Arc::new(AtomicBool::new(false));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10))
        .layer(server(Fault::StallToken, healthy, tokens.clone()));
    let started = tokio::time::Instant::now();
    let error = service.oneshot(request()).await.unwrap_err();
    (error, started.elapsed(), tokens.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn a_refresh_lock_never_given_times_out_at_the_flow_deadline() {
    let (error, _, token_requests) = refresh_through(SlowStore::stuck_lock()).await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("refresh lock within the flow's 10 s deadline"),
        "{error}"
    );
    assert_eq!(token_requests, 0, "no refresh without the lock");
}

#[tokio::test(start_paused = true)]
async fn slow_store_steps_and_the_flow_share_one_deadline() {
    // Each store step alone is within the 10 s deadline. The first contact reads the token
    // (6 s, before any flight); the refresh's flight waits 6 s for the lock, and its reread
    // under the lock passes the deadline, with no time left for the refresh.
    let (error, took, token_requests) = refresh_through(SlowStore {
        read: Duration::from_secs(6),
        lock: Some(Duration::from_secs(6)),
        ..SlowStore::prompt()
    })
    .await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("the token store did not read within the flow's 10 s deadline"),
        "{error}"
    );
    assert_eq!(took, Duration::from_secs(6 + 10));
    assert_eq!(token_requests, 0, "no time was left for a refresh");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_stops_answering_after_a_refresh_ends_the_call_and_the_tokens_are_kept() {
    // The refresh gets its tokens; then the store answers no write (the tokens, the flow's
    // record) and never releases its lock. The call ends one more 10 s deadline later, with
    // the refreshed token; the next call uses it from memory, with no second refresh.
    let store = SlowStore {
        stall_writes: true,
        ..SlowStore::prompt()
    };
    let resource = format!("{RS}/mcp");
    // Refreshed where they were issued, as a public client: no discovery, no registration.
    let public = mcp_oauth_flow::client::ClientAuthMethod::None;
    let tokens =
        expired().with_token_endpoint(Some("http://127.0.0.1:2/token".into()), Some(public));
    store.inner.save_tokens(&resource, &tokens).await.unwrap();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let healthy = Arc::new(AtomicBool::new(false));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10))
        .layer(server(Fault::StallToken, healthy, token_requests.clone()));
    let started = tokio::time::Instant::now();
    let call = tokio::time::timeout(
        Duration::from_secs(3600),
        service.clone().oneshot(request()),
    );
    let response = call
        .await
        .expect("the call waited on the store for an hour")
        .unwrap();
    assert_eq!(response.status(), 200);
    // The tokens' write takes the whole second deadline; the release and the record, past it,
    // are cut at once.
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);

    let started = tokio::time::Instant::now();
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(token_requests.load(Ordering::SeqCst), 1, "refreshed once");
}

#[tokio::test(start_paused = true)]
async fn the_users_answer_starts_the_deadline_over_for_the_code_exchange() {
    // Discovery takes 9 s of the 10 s deadline; after the user's answer, the code exchange
    // takes 3 s: within a deadline of its own, never cut by what discovery spent.
    let server = BoxCloneService::new(service_fn(|req: Req| async move {
        let path = req.uri().path().to_owned();
        if path == "/prm" {
            tokio::time::sleep(Duration::from_secs(9)).await;
        }
        if path == "/token" {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return Ok::<_, Infallible>(full(json(
                200,
                json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}),
            )));
        }
        if let Some(response) = flow_response(&req) {
            return Ok(full(response));
        }
        let authorized = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v == "Bearer at-1");
        Ok(full(if authorized {
            json(200, json!({"ok": true}))
        } else {
            unauthorized()
        }))
    }));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .flow_deadline(Duration::from_secs(10))
        .layer(server);
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_logout_whose_revocation_never_answers_forgets_first_and_ends_at_the_request_timeout() {
    let url = "https://mcp.example.com/mcp";
    let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "app")
        .with_refresh_token(Some(RefreshToken::new("rt".into())))
        .with_token_endpoint(
            Some("https://as.example.com/token".into()),
            Some(mcp_oauth_flow::client::ClientAuthMethod::None),
        );
    let store = Arc::new(MemoryStore::new());
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&store) as Arc<dyn TokenStore>)
        .request_timeout(Duration::from_secs(5));
    // The authorization server serves its metadata; its revocation endpoint never answers.
    let client = HttpClient::from_fn(|req| async move {
        if req.uri().path() == "/revoke" {
            std::future::pending::<()>().await;
        }
        let metadata = json!({
            "issuer": "https://as.example.com",
            "authorization_endpoint": "https://as.example.com/authorize",
            "token_endpoint": "https://as.example.com/token",
            "revocation_endpoint": "https://as.example.com/revoke"});
        Ok(http::Response::new(Bytes::from(metadata.to_string())))
    });

    // The app gives up on the logout after a second: the tokens are gone already.
    store.save_tokens(url, &tokens).await.unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(1), layer.logout(url, &client)).await;
    assert!(cut.is_err(), "the revocation cannot have answered");
    assert!(store.load_tokens(url).await.unwrap().is_none());

    // Left to run, it ends on its own: each revocation cut at the request timeout.
    store.save_tokens(url, &tokens).await.unwrap();
    let started = tokio::time::Instant::now();
    let logout = tokio::time::timeout(Duration::from_secs(3600), layer.logout(url, &client))
        .await
        .expect("the logout waited an hour")
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5 + 5));
    assert_eq!(logout.revocations.len(), 2);
    for revocation in &logout.revocations {
        let error = revocation.result.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    }
    assert!(store.load_tokens(url).await.unwrap().is_none());
}

/// A store whose reads never answer (a year each) and whose writes stall too.
fn unreadable_store() -> SlowStore {
    SlowStore {
        read: Duration::from_secs(365 * 24 * 3600),
        lock: None,
        stall_writes: true,
        ..SlowStore::prompt()
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_request_and_the_status_do_not_wait_on_a_store_that_never_answers() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(unreadable_store())
        .flow_deadline(Duration::from_secs(10));
    let service = layer.clone().layer(server(
        Fault::StallToken,
        Arc::new(AtomicBool::new(false)),
        token_requests.clone(),
    ));
    // The first request's look in the store gives up after 10 s and sends without a token;
    // the 401's flow reads the store again and fails at its own 10 s deadline, and its failure
    // is not recorded in the store within the writes' 10 s.
    let started = tokio::time::Instant::now();
    let call = tokio::time::timeout(Duration::from_secs(3600), service.oneshot(request()));
    let error = call.await.expect("the call waited an hour").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert_eq!(started.elapsed(), Duration::from_secs(10 + 10 + 10));
    assert_eq!(token_requests.load(Ordering::SeqCst), 0);

    let server_url = format!("{RS}/mcp");
    let started = tokio::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(3600), layer.status(&server_url));
    let error = status
        .await
        .expect("the status waited an hour")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(error.is_transient());
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_logout_over_a_store_that_stalls_still_revokes_the_tokens() {
    let url = "https://mcp.example.com/mcp";
    let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "app")
        .with_refresh_token(Some(RefreshToken::new("rt".into())))
        .with_token_endpoint(
            Some("https://as.example.com/token".into()),
            Some(mcp_oauth_flow::client::ClientAuthMethod::None),
        );
    // Reads answer; the write that forgets the tokens never does.
    let store = SlowStore {
        stall_writes: true,
        ..SlowStore::prompt()
    };
    store.inner.save_tokens(url, &tokens).await.unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10));
    let revoked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&revoked);
    let client = HttpClient::from_fn(move |req| {
        let seen = Arc::clone(&seen);
        async move {
            // A round trip takes time: work that would answer at once could still win a race
            // against a spent deadline.
            tokio::time::sleep(Duration::from_millis(5)).await;
            if req.uri().path() == "/revoke" {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            let metadata = json!({
                "issuer": "https://as.example.com",
                "authorization_endpoint": "https://as.example.com/authorize",
                "token_endpoint": "https://as.example.com/token",
                "revocation_endpoint": "https://as.example.com/revoke"});
            Ok(http::Response::new(Bytes::from(metadata.to_string())))
        }
    });
    let started = tokio::time::Instant::now();
    let logout = tokio::time::timeout(Duration::from_secs(3600), layer.logout(url, &client))
        .await
        .expect("the logout waited an hour");
    // The store's failure is the logout's error, after its 10 s; both tokens were revoked
    // anyway, within a deadline of their own.
    let error = logout.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    // The store's 10 s, then three round trips (metadata, two revocations).
    assert_eq!(started.elapsed(), Duration::from_millis(10_000 + 3 * 5));
    assert_eq!(revoked.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_lock_is_given_back_before_consent_even_when_the_refusal_came_late() {
    // The refresh is refused after 9.5 s of the 10 s deadline; the lock (1 s to give back) is
    // released before the new authorization within a deadline of its own, not the 0.5 s left.
    let released = Arc::new(AtomicBool::new(false));
    let store = SlowStore {
        slow_release: Some(Arc::clone(&released)),
        ..SlowStore::prompt()
    };
    let public = mcp_oauth_flow::client::ClientAuthMethod::None;
    let tokens =
        expired().with_token_endpoint(Some("http://127.0.0.1:2/token".into()), Some(public));
    store
        .inner
        .save_tokens(&format!("{RS}/mcp"), &tokens)
        .await
        .unwrap();
    let server = BoxCloneService::new(service_fn(|req: Req| async move {
        if req.uri().path() == "/token" {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if String::from_utf8_lossy(&body).contains("grant_type=refresh_token") {
                tokio::time::sleep(Duration::from_millis(9500)).await;
                return Ok::<_, Infallible>(full(json(400, json!({"error": "invalid_grant"}))));
            }
            return Ok(full(json(
                200,
                json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}),
            )));
        }
        if let Some(response) = flow_response(&req) {
            return Ok(full(response));
        }
        let authorized = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v == "Bearer at-1");
        Ok(full(if authorized {
            json(200, json!({"ok": true}))
        } else {
            unauthorized()
        }))
    }));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10))
        .layer(server);
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(released.load(Ordering::SeqCst), "the release was cut short");
}
