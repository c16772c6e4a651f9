//! Storms of concurrent callers on a fresh layer, and the bytes each leaves held: shared by
//! the `allocations` bench, which prints them, and `tests/storm_memory.rs`, which holds the
//! layer to them in the test command. Each binary installs its own counting global allocator
//! and hands it here.

use std::alloc::System;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::FutureExt;
use http_body_util::Full;
use mcp_oauth_testkit::bench::hot_path_request_to;
use mcp_oauth_testkit::scripted;
use stats_alloc::StatsAlloc;
use tower::{Layer, Service, ServiceExt};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer, RefreshPolicy};

/// What storms of `one` and of `many` callers each leave held, from a fresh layer each, for each
/// kind of storm (no token: one flow for all; a valid token; an expired one: one refresh), and
/// the most requests the server had in flight at once in the storm of `many` with a valid
/// token (all of them, when the storm is one). The two are equal when the layer keeps nothing
/// per caller. `counter` is the binary's counting global allocator.
pub(crate) fn held_after_storms_of(
    one: usize,
    many: usize,
    counter: &StatsAlloc<System>,
) -> (StormBytes, StormBytes, usize) {
    // Storms first on layers thrown away, so that what a thread sets up once (its arc-swap
    // node, its pool of head buffers) is not counted against either size. Of 128 callers, not
    // `many`: a pool bounded at 64 buffers a thread is full after it, and one that was not
    // bounded would grow in the storm of `many` and fail the comparison, where a warm-up as
    // large as the storm would have filled it beforehand.
    storms(WARM_UP, counter);
    storms(one, counter);
    let (one, _) = storms(one, counter);
    let (many, most_in_flight) = storms(many, counter);
    (one, many, most_in_flight)
}

/// Bytes `counter` has seen held, net of everything freed. (`stats_alloc` adds a
/// reallocation's growth to `bytes_allocated`, its shrinking to `bytes_deallocated`, and both
/// again to `bytes_reallocated`: that one is left out, or a grown `Vec` would count twice.)
pub(crate) fn held(counter: &StatsAlloc<System>) -> isize {
    let stats = counter.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// Callers in the warm-up storm: twice the head buffers a thread keeps.
const WARM_UP: usize = 128;

/// The scripted servers of `mcp_oauth_testkit::scripted`, answering after one yield so that a
/// storm's callers are all in flight before the flow ends; counts the token requests, and the
/// most requests in flight at once.
#[derive(Clone)]
struct Scripted {
    token_requests: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl Service<http::Request<OAuthBody<Full<Bytes>>>> for Scripted {
    type Response = scripted::Resp;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<scripted::Resp, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<OAuthBody<Full<Bytes>>>) -> Self::Future {
        let token_requests = Arc::clone(&self.token_requests);
        let in_flight = Arc::clone(&self.in_flight);
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        Box::pin(async move {
            tokio::task::yield_now().await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Some(response) = scripted::flow_response(&req) {
                return Ok(response);
            }
            Ok(match req.uri().path() {
                "/token" => {
                    token_requests.fetch_add(1, Ordering::SeqCst);
                    scripted::json(
                        200,
                        serde_json::json!({
                            "access_token": "at-1", "token_type": "Bearer",
                            "expires_in": 3600, "refresh_token": "rt-1",
                        }),
                    )
                }
                _ if req
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer at-1") =>
                {
                    http::Response::new(Full::new(Bytes::from_static(b"{}")))
                }
                _ => scripted::unauthorized(),
            })
        })
    }
}

/// What one storm of `callers` leaves held, for each kind of storm, from a fresh layer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StormBytes {
    pub(crate) no_token: isize,
    pub(crate) valid_token: isize,
    pub(crate) expired_token: isize,
}

/// Runs `storm` on a runtime of its own, dropped before returning: a runtime keeps some of
/// what its tasks left (deferred wakers holding the storm's task nodes) until it runs again or
/// is dropped, and that is not the layer's to answer for.
fn on_own_runtime(storm: impl std::future::Future<Output = ()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(storm);
}

/// The bytes each kind of storm of `callers` leaves held, and the most requests in flight at
/// once in the storm with a valid token.
fn storms(callers: usize, counter: &StatsAlloc<System>) -> (StormBytes, usize) {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    let offset = Arc::new(AtomicU64::new(0));
    let clock = Arc::clone(&offset);
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .refresh_policy(RefreshPolicy::default().jitter(0.0))
    .clock(move || SystemTime::now() + Duration::from_secs(clock.load(Ordering::SeqCst)))
    .layer(Scripted {
        token_requests: Arc::clone(&token_requests),
        in_flight: Arc::new(AtomicUsize::new(0)),
        most_in_flight: Arc::clone(&most_in_flight),
    });
    let url = format!("{}/mcp", scripted::RS);
    let bytes = |expect_token_requests: usize| {
        let before = held(counter);
        on_own_runtime(
            join_all((0..callers).map(|_| {
                let req = hot_path_request_to(&url, None);
                service
                    .clone()
                    .oneshot(req)
                    .map(|r| assert_eq!(r.unwrap().status(), 200))
            }))
            .map(drop),
        );
        assert_eq!(
            token_requests.load(Ordering::SeqCst),
            expect_token_requests,
            "one flow for the whole storm"
        );
        held(counter) - before
    };
    let no_token = bytes(1);
    most_in_flight.store(0, Ordering::SeqCst);
    let valid_token = bytes(1);
    let concurrent = most_in_flight.load(Ordering::SeqCst);
    offset.store(3700, Ordering::SeqCst);
    let expired_token = bytes(2);
    let held = StormBytes {
        no_token,
        valid_token,
        expired_token,
    };
    (held, concurrent)
}
