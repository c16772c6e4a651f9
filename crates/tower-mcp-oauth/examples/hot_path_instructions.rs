//! Instructions per request with a valid token, for `valgrind --tool=callgrind`: the same
//! trivial inner service bare (the caller adds the header itself), under tower-http's
//! `SetRequestHeader` adding the same static bearer (the floor of any auth layer), and under
//! the layer; the layer holding tokens for many servers (`held-10000`) against one
//! (`held-1`); a service made per request over the same layer (`per-request`, against
//! `layered`'s one service); and the web API's per-request pattern with many users connected
//! (`web-10000`) against one (`web-1`).
//!
//! ```text
//! cargo build --release -p tower-mcp-oauth --example hot_path_instructions
//! valgrind --tool=callgrind target/release/examples/hot_path_instructions CONTESTANT N
//! ```
//!
//! sends N requests; the difference between the counts for two values of N, divided by the
//! difference of the Ns, is the per-request count with the set-up taken out. Unlike timings,
//! the count is the same from run to run, so a change to the hot path shows even on a busy
//! machine.

use std::hint::black_box;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_mcp_oauth::OAuthBody;

use mcp_oauth_testkit::bench::{
    hot_path_request as request, trivial_resource as trivial, HOT_PATH_URL as URL,
};

#[path = "../benches/support/setup.rs"]
mod setup;
use setup::{
    bench_tokens, layer_holding, layer_over, send_as, send_held, send_now, server_url,
    store_holding, web_login_with,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args
        .next()
        .expect("bare|floor|layered|per-request|held-<servers>|web-<users>");
    let n: usize = args.next().expect("N").parse().unwrap();
    let tokens = bench_tokens();
    let header = tokens.authorization_value();
    match which.as_str() {
        "bare" => {
            let mut bare = tower::service_fn(trivial::<Full<Bytes>>);
            for _ in 0..n {
                let response = send_now(&mut bare, request(Some(&header)));
                assert_eq!(black_box(response).status(), 200);
            }
        }
        "floor" => {
            let mut floor = ServiceBuilder::new()
                .layer(SetRequestHeaderLayer::overriding(
                    http::header::AUTHORIZATION,
                    header,
                ))
                .service(tower::service_fn(trivial::<Full<Bytes>>));
            for _ in 0..n {
                let response = send_now(&mut floor, request(None));
                assert_eq!(black_box(response).status(), 200);
            }
        }
        "layered" => {
            let layer = layer_over(store_holding(&tokens, [URL]));
            let mut layered = ServiceBuilder::new()
                .layer(layer)
                .service(tower::service_fn(trivial::<OAuthBody<Full<Bytes>>>));
            // The first request adopts the stored token; every later one is the hot path.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let warm = layered
                .ready()
                .now_or_never()
                .unwrap()
                .unwrap()
                .call(request(None));
            assert_eq!(rt.block_on(warm).unwrap().status(), 200);
            for _ in 0..n {
                let response = send_now(&mut layered, request(None));
                assert_eq!(black_box(response).status(), 200);
            }
        }
        // A service made for each request over one layer (a web app's handler makes one per
        // request: `layer_for(user).layer(client)`), against `layered`'s one service.
        "per-request" => {
            let layer = layer_over(store_holding(&tokens, [URL]));
            let trivial = || tower::service_fn(trivial::<OAuthBody<Full<Bytes>>>);
            // The first request adopts the stored token into the layer's cache, which every
            // service made from the layer shares.
            send_held(&mut layer.layer(trivial()), URL);
            for _ in 0..n {
                send_held(&mut layer.layer(trivial()), URL);
            }
        }
        // The web API's per-request pattern (`layer_for(user)`, a service made over the trivial
        // service, a call), with 1 or 10,000 users connected, calling as the one in the middle.
        web if web.starts_with("web-") => {
            let users: usize = web["web-".len()..].parse().expect("web-<users>");
            let (login, user) = web_login_with(users);
            let url = server_url(0);
            for _ in 0..n {
                send_as(&login, &user, &url);
            }
        }
        // The layer holding tokens for 1 or for 10,000 servers (each adopted first), calling
        // the one in the middle: the lookup's cost must not grow with the number held.
        held if held.starts_with("held-") => {
            let held: usize = held["held-".len()..].parse().expect("held-<servers>");
            let (mut service, url) = layer_holding(held);
            for _ in 0..n {
                send_held(&mut service, &url);
            }
        }
        other => panic!("unknown {other}"),
    }
}
