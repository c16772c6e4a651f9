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
use std::hint::black_box;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::bench::{
    hot_path_request as request, hot_path_request_to, minimal_server, trivial_resource as trivial,
    HOT_PATH_URL as URL,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_mcp_oauth::OAuthBody;

#[path = "support/setup.rs"]
mod setup;
#[path = "support/storm.rs"]
mod storm;
use setup::{bench_tokens, layer_over, send_now, store_holding};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests per measured run (after a warm-up of the same number).
const N: usize = 10_000;
/// Callers in a storm.
const STORM: usize = 1000;

/// Bytes held now, net of everything freed (see `storm::held`).
fn held() -> isize {
    storm::held(GLOBAL)
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

fn main() {
    per_request_trivial();
    per_request_loopback();
    held_per_origin(1_000);
    held_per_origin(10_000);

    let (one, many, in_flight) = storm::held_after_storms_of(1, STORM, GLOBAL);
    println!("HELD storm of 1: {one:?}");
    println!("HELD storm of {STORM} ({in_flight} requests in flight at once): {many:?}");
    assert_eq!(one, many, "bytes held after a storm grew with its callers");
}
