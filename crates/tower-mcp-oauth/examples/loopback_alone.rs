//! One contestant of the end-to-end bench alone in its process, on the bench's runtime (two
//! worker threads, the calls made from the thread that blocks on them), for the counters that
//! need a process of their own: the kernel's per-process counts of context switches, wake-ups
//! and system calls, and callgrind's count per thread (which, on this runtime, moves by hundreds
//! of instructions a call between runs: its threads spin and park as valgrind schedules them;
//! `loopback_instructions` counts on a current-thread runtime, to within a few).
//!
//! ```text
//! cargo build --release -p tower-mcp-oauth --example loopback_alone
//! perf stat -e context-switches,sched:sched_wakeup,syscalls:sys_enter_futex,\
//! syscalls:sys_enter_epoll_wait,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom \
//!     target/release/examples/loopback_alone CONTESTANT N [WAVE]
//! valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/loopback_alone CONTESTANT N [WAVE]
//! ```
//!
//! `CONTESTANT` is `bare` (hyper-util's `Client`, `client.request`, the header added by hand)
//! or `layered` (`ready`, then `call` on `&service`, the layer holding a valid token): the
//! shared form of `benches/end_to_end.rs`. It sends N calls one at a time, or N waves of
//! `WAVE` calls in flight, after a warm-up that fills the pool with 64 connections. The
//! difference between two values of N, divided by the difference of the calls, is the
//! per-call figure with the set-up taken out. The counts are the process's, the in-process
//! server's share included (of each call's two `writev` and two `recvfrom`, one is the
//! server's), as in the bench. Timings from it mean little (a process's luck
//! moves them by several percent, which is why the bench interleaves its contestants); counts
//! do not drift.

use std::hint::black_box;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::bench::{hot_path_request_to as request, minimal_server, FILL_HEADER};
use tower::{Layer, Service, ServiceExt};
#[path = "../benches/support/setup.rs"]
mod setup;
use setup::{bench_tokens, layer_over, store_holding};

/// Connections each pool is filled with before counting, as the bench's concurrent
/// measurement fills them.
const POOL: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let layered = match args.next().as_deref() {
        Some("bare") => false,
        Some("layered") => true,
        other => panic!("bare|layered, not {other:?}"),
    };
    let n: usize = args.next().expect("N").parse().expect("a number");
    let wave: usize = args.next().map_or(1, |w| w.parse().expect("a number"));
    // More in flight than the pool holds would open connections while counting.
    assert!(wave <= POOL, "at most {POOL} calls in flight");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = rt.block_on(minimal_server(POOL));
    let url = format!("http://{addr}/mcp");
    let tokens = bench_tokens();
    let header = tokens.authorization_value();
    let bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = layer_over(store_holding(&tokens, [url.as_str()]))
        .layer(Client::builder(TokioExecutor::new()).build_http());

    // One call, as the bench's shared form makes it: the request, and the bare caller's clone of
    // the header, made before the call's future; the rest in it.
    let call = |fill: bool| {
        let mut req = request(&url, None);
        if fill {
            req.headers_mut()
                .insert(FILL_HEADER, http::HeaderValue::from_static("1"));
        }
        let header = (!layered).then(|| header.clone());
        let (bare, service) = (&bare, &service);
        async move {
            let response = match header {
                None => {
                    let mut service = service;
                    let ready = service.ready().await.unwrap();
                    ready.call(req).await.unwrap().map(|b| b.boxed())
                }
                Some(header) => {
                    req.headers_mut()
                        .insert(http::header::AUTHORIZATION, header);
                    bare.request(req).await.unwrap().map(|b| b.boxed())
                }
            };
            assert_eq!(response.status(), 200);
            black_box(response.into_body().collect().await.unwrap().to_bytes());
        }
    };
    // The layer's first call adopts the stored token; the fill wave waits at the server until
    // all of it arrived, so the pool holds `POOL` connections.
    rt.block_on(async {
        for _ in 0..500 {
            call(false).await;
        }
        join_all((0..POOL).map(|_| call(true))).await;
    });
    rt.block_on(async {
        for _ in 0..n {
            if wave <= 1 {
                call(false).await;
            } else {
                join_all((0..wave).map(|_| call(false))).await;
            }
        }
    });
}
