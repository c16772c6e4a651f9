//! Instructions per call over loopback, for `valgrind --tool=callgrind`: hyper-util's `Client`
//! bare (the caller adds the header itself) and under the layer with a valid token, calling the
//! testkit's minimal MCP server in the same process on a current-thread runtime. The server's
//! work is in both counts, so the difference is the layer's.
//!
//! ```text
//! cargo build --release -p tower-mcp-oauth --example loopback_instructions
//! valgrind --tool=callgrind target/release/examples/loopback_instructions CONTESTANT N
//! ```
//!
//! `bare` and `layered` clone the client for each call (`client.clone().request(..)`,
//! `service.clone().oneshot(..)`); `bare-shared` and `layered-shared` send through a shared
//! reference (`client.request(..)`, and `ready` then `call` on `&service`).
//!
//! sends N calls after a warm-up; the difference between the counts for two values of N,
//! divided by the difference of the Ns, is the per-call count with the set-up taken out.

use std::hint::black_box;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::bench::{hot_path_request_to as request, minimal_server};
use tower::{Layer, Service, ServiceExt};
#[path = "../benches/support/setup.rs"]
mod setup;
use setup::{bench_tokens, layer_over, store_holding};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args
        .next()
        .expect("bare|layered|bare-shared|layered-shared");
    let n: usize = args.next().expect("N").parse().expect("a number");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = rt.block_on(minimal_server(1));
    let url = format!("http://{addr}/mcp");
    let tokens = bench_tokens();
    let header = tokens.authorization_value();
    match which.as_str() {
        "bare" => {
            let bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            rt.block_on(async {
                for _ in 0..n + 100 {
                    // Cloned per call as the layered side is (`oneshot` takes the service), so
                    // that the difference is the layer's and not the clone's.
                    let response = bare
                        .clone()
                        .request(request(&url, Some(&header)))
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    black_box(response.into_body().collect().await.unwrap());
                }
            });
        }
        "layered" => {
            let layered = layer_over(store_holding(&tokens, [url.as_str()]))
                .layer(Client::builder(TokioExecutor::new()).build_http());
            rt.block_on(async {
                for _ in 0..n + 100 {
                    let response = layered.clone().oneshot(request(&url, None)).await.unwrap();
                    assert_eq!(response.status(), 200);
                    black_box(response.into_body().collect().await.unwrap());
                }
            });
        }
        "bare-shared" => {
            let bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            rt.block_on(async {
                for _ in 0..n + 100 {
                    let response = bare.request(request(&url, Some(&header))).await.unwrap();
                    assert_eq!(response.status(), 200);
                    black_box(response.into_body().collect().await.unwrap());
                }
            });
        }
        "layered-shared" => {
            let layered = layer_over(store_holding(&tokens, [url.as_str()]))
                .layer(Client::builder(TokioExecutor::new()).build_http());
            rt.block_on(async {
                for _ in 0..n + 100 {
                    // tower's own pattern, on a shared reference: no clone, no `Oneshot`.
                    let mut service = &layered;
                    let ready = service.ready().await.unwrap();
                    let response = ready.call(request(&url, None)).await.unwrap();
                    assert_eq!(response.status(), 200);
                    black_box(response.into_body().collect().await.unwrap());
                }
            });
        }
        other => panic!("unknown contestant {other}"),
    }
}
