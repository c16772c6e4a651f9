//! Deterministic figures beside the timings: heap allocations per request, and bytes held.
//!
//! A counting global allocator (`stats_alloc`) sees every allocation of this process, and
//! everything here runs on one thread, so the counts are the same from run to run, even on a
//! busy machine.
//!
//! - `per_request`: allocations per request with a valid token, over the trivial inner service
//!   of `hot_path` (bare: the caller adds the header; floor: tower-http's `SetRequestHeader`;
//!   layered) and over hyper-util's `Client` on loopback (bare vs layered; the server's
//!   allocations are in both).
//! - `held`: bytes a `MemoryStore` holds per token set, and the layer per origin it holds a
//!   token for (its session, header, origin entries and index), at 1,000 and 10,000 origins.
//! - `storm`: bytes the layer holds after storms of 1 and of 1000 concurrent callers (no
//!   token: one flow for all; a valid token; an expired token: one refresh), which must be the
//!   same: nothing is kept per caller. A difference panics.
//!
//! `cargo bench --bench allocations`

use std::alloc::System;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::bench::{
    hot_path_request as request, hot_path_request_to, minimal_server, trivial_resource as trivial,
    HOT_PATH_URL as URL,
};
use mcp_oauth_testkit::scripted;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer, RefreshPolicy};

#[path = "support/setup.rs"]
mod setup;
use setup::{bench_tokens, layer_over, send_now, store_holding};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests per measured run (after a warm-up of the same number).
const N: usize = 10_000;
/// Callers in a storm.
const STORM: usize = 1000;

/// Bytes held now, net of everything freed. (`stats_alloc` adds a reallocation's growth to
/// `bytes_allocated`, its shrinking to `bytes_deallocated`, and both again to
/// `bytes_reallocated`: that one is left out, or a grown `Vec` would count twice.)
fn held() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

/// Allocations (and reallocations) per call of `one`, over `N` calls after `N` warm-up calls.
fn per_call(mut one: impl FnMut()) -> (f64, f64) {
    for _ in 0..N {
        one();
    }
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        one();
    }
    let change = region.change();
    (
        change.allocations as f64 / N as f64,
        change.reallocations as f64 / N as f64,
    )
}

/// Sends one request through a service that answers at once, checks it carried a token.
fn send<S, B>(service: &mut S, req: http::Request<Full<Bytes>>)
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
{
    let response = send_now(service, req);
    assert_eq!(black_box(response).status(), 200);
}

fn print_allocs(name: &str, rows: &[(&str, (f64, f64))]) {
    let cells: Vec<String> = rows
        .iter()
        .map(|(who, (a, r))| format!("{who} {a:.2} (+{r:.2} realloc)"))
        .collect();
    let base = rows[0].1 .0;
    let last = rows[rows.len() - 1].1 .0;
    println!(
        "ALLOCS per_request/{name}: {}; layered - bare = {:+.2}",
        cells.join(", "),
        last - base
    );
}

fn per_request_trivial() {
    let header = bench_tokens().authorization_value();
    let mut bare = tower::service_fn(trivial::<Full<Bytes>>);
    let bare_figure = per_call(|| send(&mut bare, request(Some(&header))));

    let mut floor = ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            http::header::AUTHORIZATION,
            header.clone(),
        ))
        .service(tower::service_fn(trivial::<Full<Bytes>>));
    let floor_figure = per_call(|| send(&mut floor, request(None)));

    let store = store_holding(&bench_tokens(), [URL]);
    let mut layered = layer_over(store).layer(tower::service_fn(trivial::<OAuthBody<Full<Bytes>>>));
    let layered_figure = per_call(|| send(&mut layered, request(None)));
    print_allocs(
        "trivial",
        &[
            ("bare", bare_figure),
            ("floor", floor_figure),
            ("layered", layered_figure),
        ],
    );
}

fn per_request_loopback() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(minimal_server(1));
    let url = format!("http://{addr}/mcp");
    let header = bench_tokens().authorization_value();
    let bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let store = store_holding(&bench_tokens(), [url.as_str()]);
    let layered = layer_over(store).layer(Client::builder(TokioExecutor::new()).build_http());

    let bare_figure = per_call(|| {
        let mut req = hot_path_request_to(&url, None);
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, header.clone());
        rt.block_on(async {
            let resp = bare.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            black_box(resp.into_body().collect().await.unwrap());
        })
    });
    let layered_figure = per_call(|| {
        let req = hot_path_request_to(&url, None);
        rt.block_on(async {
            let resp = layered.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            black_box(resp.into_body().collect().await.unwrap());
        })
    });
    // Shared: `ready` then `call` on `&service`, no clone per request (the end-to-end bench's
    // shared form).
    let shared_figure = per_call(|| {
        let req = hot_path_request_to(&url, None);
        rt.block_on(async {
            let mut shared = &layered;
            let resp = shared.ready().await.unwrap().call(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            black_box(resp.into_body().collect().await.unwrap());
        })
    });
    print_allocs(
        "loopback",
        &[
            ("bare", bare_figure),
            ("layered, cloned per request", layered_figure),
            ("layered, through `&service`", shared_figure),
        ],
    );
}

fn held_per_origin(origins: usize) {
    let url = |i: usize| format!("http://mcp-{i}.bench/mcp");
    // The URLs are made before counting: only what the store keeps counts.
    let urls: Vec<String> = (0..origins).map(url).collect();
    let before = held();
    let store = store_holding(&bench_tokens(), urls.iter().map(String::as_str));
    let store_bytes = held() - before;

    let before = held();
    let mut service = layer_over(store).layer(tower::service_fn(trivial::<OAuthBody<Full<Bytes>>>));
    let empty_layer = held() - before;
    for i in 0..origins {
        send(&mut service, hot_path_request_to(&url(i), None));
    }
    let layer_bytes = held() - before - empty_layer;
    println!(
        "HELD {origins} origins: store {} bytes per token set; layer {} bytes per origin (an \
         empty layer and its store handle: {empty_layer} bytes)",
        store_bytes / origins as isize,
        layer_bytes / origins as isize,
    );
}

/// The scripted servers of `mcp_oauth_testkit::scripted`, answering after one yield so that a
/// storm's callers are all in flight before the flow ends; counts the token requests.
#[derive(Clone)]
struct Scripted {
    token_requests: Arc<AtomicUsize>,
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
        Box::pin(async move {
            tokio::task::yield_now().await;
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
struct StormBytes {
    no_token: isize,
    valid_token: isize,
    expired_token: isize,
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

fn storms(callers: usize) -> StormBytes {
    let token_requests = Arc::new(AtomicUsize::new(0));
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
    });
    let url = format!("{}/mcp", scripted::RS);
    let bytes = |expect_token_requests: usize| {
        let before = held();
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
        held() - before
    };
    let no_token = bytes(1);
    let valid_token = bytes(1);
    offset.store(3700, Ordering::SeqCst);
    let expired_token = bytes(2);
    StormBytes {
        no_token,
        valid_token,
        expired_token,
    }
}

fn main() {
    per_request_trivial();
    per_request_loopback();
    held_per_origin(1_000);
    held_per_origin(10_000);

    // A storm of each size first, on layers thrown away: whatever the process sets up once
    // (the runtime's thread-locals, the allocator's own tables) is not counted against either.
    storms(STORM);
    storms(1);
    let one = storms(1);
    let many = storms(STORM);
    println!("HELD storm of 1: {one:?}");
    println!("HELD storm of {STORM}: {many:?}");
    assert_eq!(one, many, "bytes held after a storm grew with its callers");
}
