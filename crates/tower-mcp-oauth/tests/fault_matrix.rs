//! The fault matrix (issue 8, item 5): every step of the flow × every way a server can fail.
//!
//! For each pair, a fresh testkit and layer meet the fault at that step. The caller must get a
//! typed error or the server's own response (never a panic or a hang); what was stored before
//! must still be there, untouched (none of these faults is terminal by RFC: only an OAuth
//! `invalid_grant` or `invalid_client` answer may drop credentials); and once the fault clears,
//! the next call must succeed.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_oauth_testkit::fault::{Fault, Step};
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, MemoryStore, OAuthLayer, OAuthService,
    RefreshPolicy, TokenStore,
};

const REDIRECT: &str = "http://localhost:3000/callback";

/// Each sub-request's time limit here (the layer's default is 30 s): a stall costs this. It
/// bounds the steps before the faulted one too, which answer at once on an idle machine: at
/// 400 ms, a run of the whole workspace's tests on 2 loaded cores once ended a case before its
/// faulted step ("the step was never reached"), most likely one of those steps timing out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the test waits for the caller's own request to a stalled resource: the layer
/// bounds its own sub-requests, never the caller's request (an outer `Timeout` does that).
/// Longer than the few request timeouts a stalled sub-request is allowed (see `TimedOut`).
const CALLER_PATIENCE: Duration = Duration::from_millis(4_500);

struct Case {
    kit: Testkit,
    store: Arc<MemoryStore>,
    service: OAuthService<HttpClient>,
}

impl Case {
    async fn new(step: Step) -> Case {
        let kit = Testkit::start(TestkitConfig::default().issue_refresh_tokens(true))
            .await
            .unwrap();
        let store = Arc::new(MemoryStore::new());
        let mut layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
            .token_store(store.clone() as Arc<dyn TokenStore>)
            .failure_backoff(Duration::ZERO)
            .request_timeout(REQUEST_TIMEOUT);
        if step == Step::Refresh {
            // Every token is due at once, so each call refreshes first. The system's time read
            // precisely: left to the layer, each request's check reads the coarse clock, up to
            // a scheduler tick behind (`clock::coarse_now`), so a call made within a tick of the
            // login would go out with its token unrefreshed (as the layer means it to: the
            // refresh is proactive), and this case would never reach its faulted step. That
            // happened once in CI.
            layer = layer
                .refresh_policy(
                    RefreshPolicy::default()
                        .skew(Duration::from_secs(365 * 24 * 3600))
                        .max_lifetime_fraction(1.0)
                        .jitter(0.0),
                )
                .clock(SystemTime::now);
        }
        let service = ServiceBuilder::new().layer(layer).service(http_client());
        Case {
            kit,
            store,
            service,
        }
    }

    async fn call(&self) -> Result<http::Response<hyper::body::Incoming>, tower_mcp_oauth::Error> {
        let req = jsonrpc(&self.kit.resource_url(), 1, "tools/list", json!({}));
        self.service.clone().oneshot(req).await
    }

    /// The call, or `None` when it has not finished after [`CALLER_PATIENCE`].
    async fn call_within_patience(
        &self,
    ) -> Option<Result<http::Response<hyper::body::Incoming>, tower_mcp_oauth::Error>> {
        tokio::time::timeout(CALLER_PATIENCE, self.call())
            .await
            .ok()
    }

    async fn stored(&self) -> Option<String> {
        self.store
            .load_tokens(&self.kit.resource_url())
            .await
            .unwrap()
            .map(|t| t.access_token().secret().clone())
    }
}

/// What the caller saw, for the table printed when a rule fails.
fn outcome(
    result: &Result<http::Response<hyper::body::Incoming>, tower_mcp_oauth::Error>,
) -> String {
    match result {
        Ok(response) => format!("response {}", response.status().as_u16()),
        Err(e) => format!(
            "{:?}{}",
            e.kind(),
            if e.is_transient() { " (transient)" } else { "" }
        ),
    }
}

/// What the caller must see.
#[derive(Debug)]
enum Expect {
    /// An error that repeating the call may get past (`is_transient`).
    Transient,
    /// An error that repeating the same call cannot get past, of this kind if given.
    Permanent(Option<ErrorKind>),
    /// A response with this status.
    Served(u16),
    /// A timeout (`ErrorKind::Timeout`, transient) within a few request timeouts.
    TimedOut,
    /// Still waiting when the caller's patience ends: the caller's own request to a stalled
    /// server, which only the caller's deadline bounds.
    Pending,
}

/// The rules, by kind of fault rather than cell by cell:
///
/// - the request the caller made is answered by the server's own response (the layer passes
///   it through), or a transport error when there is none;
/// - a failed proactive refresh leaves the current token in use while it is valid (only an
///   OAuth `invalid_grant`/`invalid_client` says the grant is gone, RFC 6749 §5.2);
/// - a server's passing trouble (`5xx`, `429`, a reset or cut connection) is worth a retry;
/// - a stalled sub-request ends at the layer's own request timeout (the caller's own request
///   is the caller's to bound);
/// - an answer that cannot be used (malformed, oversized, a redirect loop or a redirect where
///   none is followed) is not, and an oversized one or a discovery loop says so by its kind.
fn expected(step: Step, fault: Fault) -> Expect {
    use Fault::*;
    match (step, fault) {
        (Step::ResourceRequest, Stall) => Expect::Pending,
        (Step::ResourceRequest, ConnectionReset | TruncatedBody) => Expect::Transient,
        (Step::ResourceRequest, ServerError) => Expect::Served(500),
        (Step::ResourceRequest, Unavailable) => Expect::Served(503),
        (Step::ResourceRequest, TooManyRequests) => Expect::Served(429),
        (Step::ResourceRequest, RedirectLoop) => Expect::Served(302),
        (Step::ResourceRequest, _) => Expect::Served(200),
        (Step::Refresh, _) => Expect::Served(200),
        (_, Stall) => Expect::TimedOut,
        (_, ServerError | Unavailable | TooManyRequests | ConnectionReset | TruncatedBody) => {
            Expect::Transient
        }
        (_, OversizedBody) => Expect::Permanent(Some(ErrorKind::BodyTooLarge)),
        (
            Step::ResourceMetadata
            | Step::AuthorizationServerMetadata
            | Step::Authorization
            | Step::Registration
            | Step::Token,
            RedirectLoop,
        ) => Expect::Permanent(Some(ErrorKind::RedirectLimit)),
        (_, _) => Expect::Permanent(None),
    }
}

#[tokio::test]
async fn every_step_times_every_fault() {
    let mut table = Vec::new();
    for step in Step::ALL {
        for fault in Fault::ALL {
            let case = Case::new(step).await;
            // The steps after the first login need one first.
            let logged_in = matches!(step, Step::Refresh | Step::ResourceRequest);
            if logged_in {
                assert_eq!(
                    case.call().await.unwrap().status(),
                    200,
                    "{step:?}: first login"
                );
            }
            let before = case.stored().await;
            case.kit.clear_requests();
            case.kit.inject_fault(step, fault);
            let started = std::time::Instant::now();
            let result = case.call_within_patience().await;
            let took = started.elapsed();
            let reached = case.kit.reached(step);
            let seen = match &result {
                Some(result) => format!("{step:?} × {fault:?}: {}", outcome(result)),
                None => format!("{step:?} × {fault:?}: still waiting after {CALLER_PATIENCE:?}"),
            };
            table.push(seen.clone());
            let context = || seen.clone();
            assert!(reached, "{}: the step was never reached", context());

            // What was stored is untouched.
            assert_eq!(
                case.stored().await,
                before,
                "{}: stored tokens changed",
                context()
            );

            // The fault is typed, or it is the server's own answer, as the rules below say.
            match (expected(step, fault), &result) {
                (Expect::Pending, None) => {}
                (Expect::TimedOut, Some(Err(e))) => {
                    assert_eq!(e.kind(), ErrorKind::Timeout, "{}", context());
                    assert!(e.is_transient(), "{}", context());
                    assert!(
                        took < REQUEST_TIMEOUT * 4,
                        "{}: took {took:?}, the limit is {REQUEST_TIMEOUT:?}",
                        context()
                    );
                }
                (Expect::Transient, Some(Err(e))) => {
                    assert!(e.is_transient(), "{}: should be worth retrying", context())
                }
                (Expect::Permanent(kind), Some(Err(e))) => {
                    assert!(!e.is_transient(), "{}: retrying cannot help", context());
                    // A panic in a flow, or a driver bug, comes back as InvalidTransition.
                    assert_ne!(e.kind(), ErrorKind::InvalidTransition, "{}", context());
                    if let Some(kind) = kind {
                        assert_eq!(e.kind(), kind, "{}", context());
                    }
                }
                (Expect::Served(status), Some(Ok(response))) => {
                    assert_eq!(response.status().as_u16(), status, "{}", context())
                }
                (_, _) => panic!("{}: expected {:?}", context(), expected(step, fault)),
            }
            drop(result);

            // Once the fault clears, the next call succeeds.
            case.kit.clear_faults();
            let next = case.call().await;
            assert!(
                matches!(&next, Ok(r) if r.status() == 200),
                "{}: after the fault cleared: {}",
                context(),
                outcome(&next)
            );
        }
    }
    println!("{}", table.join("\n"));
}
