//! The hot path's cost as the number held grows (a valid token at hand, the trivial inner
//! service of `hot_path`):
//!
//! - `servers`: one layer holding tokens for 1, 100 or 10,000 MCP servers (one origin each),
//!   calling one of them;
//! - `web_users`: the web API (`WebLogin::layer_for`, then the call) with 1 or 10,000 users
//!   connected, calling as one of them.
//!
//! Both print the ratio of the largest to the smallest; flat means within 1.05x.
//!
//! `cargo bench --bench scale`

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion};
use futures_util::FutureExt;
use http_body_util::Full;
use mcp_oauth_testkit::bench::{self, hot_path_request_to as request, trivial_resource as trivial};
use tower::{Layer, Service, ServiceExt};
use tower_mcp_oauth::web::WebLogin;
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthBody, OAuthLayer, TokenSet,
    TokenStore, TokenType,
};

fn server_url(i: usize) -> String {
    format!("http://mcp-{i}.bench/mcp")
}

fn tokens() -> TokenSet {
    TokenSet::new(
        "bench-token",
        TokenType::Bearer,
        "https://as.bench",
        "client",
    )
}

/// Sends one request through `service` and checks it carried a token.
fn send<S>(service: &mut S, url: &str)
where
    S: Service<
        http::Request<Full<Bytes>>,
        Response = http::Response<http_body_util::Empty<Bytes>>,
        Error = tower_mcp_oauth::Error,
    >,
{
    let fut = service
        .ready()
        .now_or_never()
        .unwrap()
        .unwrap()
        .call(request(url, None));
    // A first call adopts the stored token (the store is in memory: it completes at once).
    let resp = fut.now_or_never().expect("no waiting").unwrap();
    assert_eq!(black_box(resp).status(), 200);
}

fn bench_servers(c: &mut Criterion) {
    let mut group = c.benchmark_group("servers");
    group.measurement_time(Duration::from_secs(3));
    for held in [1usize, 100, 10_000] {
        let store = MemoryStore::new();
        for i in 0..held {
            store
                .save_tokens(&server_url(i), &tokens())
                .now_or_never()
                .unwrap()
                .unwrap();
        }
        let layer = OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            HeadlessAuthorizer::new(),
        )
        .token_store(store);
        let mut service = layer.layer(tower::service_fn(trivial::<OAuthBody<Full<Bytes>>>));
        // Every server's token adopted: the layer holds `held` sessions.
        for i in 0..held {
            send(&mut service, &server_url(i));
        }
        // One server in the middle of the insertion order: a scan would reach it halfway.
        let target = server_url(held / 2);
        group.bench_with_input(BenchmarkId::from_parameter(held), &target, |b, url| {
            b.iter(|| send(&mut service, url))
        });
    }
    group.finish();
}

fn bench_web_users(c: &mut Criterion) {
    let mut group = c.benchmark_group("web_users");
    group.measurement_time(Duration::from_secs(3));
    let url = server_url(0);
    for users in [1usize, 10_000] {
        let store = MemoryStore::new();
        let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
        let login = WebLogin::new(ClientConfig::new("https://app.bench/callback"), client)
            .token_store(store);
        let name = |i: usize| format!("user-{i}");
        for i in 0..users {
            login
                .user_store(&name(i))
                .save_tokens(&url, &tokens())
                .now_or_never()
                .unwrap()
                .unwrap();
            let mut service = login
                .layer_for(&name(i))
                .layer(tower::service_fn(trivial::<OAuthBody<Full<Bytes>>>));
            send(&mut service, &url);
        }
        let user = name(users / 2);
        group.bench_with_input(BenchmarkId::from_parameter(users), &user, |b, user| {
            b.iter(|| {
                // What a web app does per request: find the user's layer, wrap its client, call.
                let mut service = login
                    .layer_for(user)
                    .layer(tower::service_fn(trivial::<OAuthBody<Full<Bytes>>>));
                send(&mut service, &url)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_servers, bench_web_users);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    bench::print_ratio("servers", "1", "100", Some(1.05));
    bench::print_ratio("servers", "1", "10000", Some(1.05));
    bench::print_ratio("web_users", "1", "10000", Some(1.05));
}
