//! The cost of the layer when a valid token is at hand, each measured side by side with its
//! baseline in the same run and printed as a ratio:
//!
//! - (a) `trivial`: the layer over a trivial inner service vs that service bare (the caller
//!   adds the same `Authorization` header itself, so both send the same request);
//! - (a, DPoP) `trivial/layered_dpop`: the same with a DPoP-bound token, so each request also
//!   signs a fresh ES256 proof (RFC 9449): the per-request cost of a proof;
//! - (b) `loopback`: hyper-util `Client` over loopback TCP to a minimal MCP-shaped hyper
//!   server, with the layer vs without.
//!
//! `cargo bench --bench hot_path`

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use futures_util::FutureExt;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::{bench, jsonrpc};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, DpopKey, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer, TokenSet,
    TokenStore, TokenType,
};

use mcp_oauth_testkit::bench::{
    hot_path_request as request, trivial_resource as trivial, HOT_PATH_URL as URL,
};

/// The layer over the trivial service, warmed so that it holds a valid token (DPoP-bound when
/// `dpop`), and the header the bare side sends itself.
fn warmed_layer(
    dpop: bool,
) -> (
    impl Service<
            http::Request<Full<Bytes>>,
            Response = http::Response<Empty<Bytes>>,
            Error = tower_mcp_oauth::Error,
            Future: Send,
        > + Clone
        + Send,
    http::HeaderValue,
) {
    // A token waiting in the store: the first request adopts it, then every call is the hot path.
    let store = Arc::new(MemoryStore::new());
    let tokens = if dpop {
        let key = DpopKey::from_entropy([7; 32]).unwrap();
        TokenSet::new("bench-token", TokenType::DPoP, "https://as.bench", "client")
            .with_dpop_key(Some(key))
    } else {
        TokenSet::new(
            "bench-token",
            TokenType::Bearer,
            "https://as.bench",
            "client",
        )
    };
    store
        .save_tokens(URL, &tokens)
        .now_or_never()
        .unwrap()
        .unwrap();
    let layer = OAuthLayer::new(
        ClientConfig::new("http://127.0.0.1:1/cb"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store.clone() as Arc<dyn TokenStore>);
    let mut layered = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(
            move |req: http::Request<OAuthBody<Full<Bytes>>>| {
                // The DPoP variant measures what it claims: every request carries a proof.
                assert!(!dpop || req.headers().contains_key("dpop"));
                trivial(req)
            },
        ));
    let warm = layered
        .ready()
        .now_or_never()
        .unwrap()
        .unwrap()
        .call(request(None));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(warm).unwrap().status(), 200);
    (layered, tokens.authorization_value())
}

fn bench_trivial(c: &mut Criterion) {
    let (mut layered, header) = warmed_layer(false);
    let (mut layered_dpop, _) = warmed_layer(true);
    let mut bare = tower::service_fn(trivial::<Full<Bytes>>);

    let mut group = c.benchmark_group("trivial");
    group.bench_function("bare", |b| {
        b.iter(|| {
            let fut = bare
                .ready()
                .now_or_never()
                .unwrap()
                .unwrap()
                .call(request(Some(&header)));
            black_box(fut.now_or_never().unwrap().unwrap())
        })
    });
    group.bench_function("layered", |b| {
        b.iter(|| {
            let fut = layered
                .ready()
                .now_or_never()
                .unwrap()
                .unwrap()
                .call(request(None));
            black_box(fut.now_or_never().unwrap().unwrap())
        })
    });
    group.bench_function("layered_dpop", |b| {
        b.iter(|| {
            let fut = layered_dpop
                .ready()
                .now_or_never()
                .unwrap()
                .unwrap()
                .call(request(None));
            let response = fut.now_or_never().unwrap().unwrap();
            black_box(response)
        })
    });
    group.finish();
}

/// A minimal MCP-shaped server on loopback: 401 without a token, a fixed JSON-RPC result with
/// one. It records nothing, so both sides of the comparison meet the same cost.
async fn minimal_server() -> std::net::SocketAddr {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let authorized = req.headers().contains_key(http::header::AUTHORIZATION);
                        let _ = req.into_body().collect().await;
                        let (status, body) = if authorized {
                            (
                                200,
                                Bytes::from_static(
                                    br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
                                ),
                            )
                        } else {
                            (401, Bytes::new())
                        };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap(),
                        )
                    },
                );
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn bench_loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(minimal_server());
    let url = format!("http://{addr}/mcp");
    // A token waiting in the store, adopted on the first 401.
    let store = Arc::new(MemoryStore::new());
    let tokens = TokenSet::new(
        "bench-token",
        TokenType::Bearer,
        "https://as.bench",
        "client",
    );
    rt.block_on(store.save_tokens(&url, &tokens)).unwrap();
    let layered = ServiceBuilder::new()
        .layer(
            OAuthLayer::new(
                ClientConfig::new("http://localhost:3000/callback"),
                HeadlessAuthorizer::new(),
            )
            .token_store(store.clone() as Arc<dyn TokenStore>),
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let first = rt
        .block_on(
            layered
                .clone()
                .oneshot(jsonrpc(&url, 1, "tools/list", serde_json::json!({}))),
        )
        .unwrap();
    assert_eq!(first.status(), 200);
    let header = tokens.authorization_value();
    let bare = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();

    let mut group = c.benchmark_group("loopback");
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| {
            let mut req = jsonrpc(&url, 1, "tools/list", serde_json::json!({}));
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, header.clone());
            let bare = bare.clone();
            async move {
                let resp = bare.request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                black_box(resp.into_body().collect().await.unwrap().to_bytes())
            }
        })
    });
    group.bench_function("layered", |b| {
        b.to_async(&rt).iter(|| {
            let req = jsonrpc(&url, 1, "tools/list", serde_json::json!({}));
            let svc = layered.clone();
            async move {
                let resp = svc.oneshot(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                black_box(resp.into_body().collect().await.unwrap().to_bytes())
            }
        })
    });
    group.finish();
}

/// (a) again with two threads at once on one layer (2 cores), each doing `PER_THREAD` calls per
/// iteration; the time is per call pair. The ratio matches the single-threaded one when the hot
/// path has no lock or shared counter the threads fight over.
fn bench_parallel(c: &mut Criterion) {
    const PER_THREAD: u64 = 2_000;
    let (layered, header) = warmed_layer(false);

    let mut group = c.benchmark_group("parallel");
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    let header = header.clone();
                    scope.spawn(move || {
                        let mut bare = tower::service_fn(trivial::<Full<Bytes>>);
                        for _ in 0..iters {
                            for _ in 0..PER_THREAD {
                                let fut = bare
                                    .ready()
                                    .now_or_never()
                                    .unwrap()
                                    .unwrap()
                                    .call(request(Some(&header)));
                                black_box(fut.now_or_never().unwrap().unwrap());
                            }
                        }
                    });
                }
            });
            start.elapsed() / PER_THREAD as u32
        })
    });
    group.bench_function("layered", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    let mut svc = layered.clone();
                    scope.spawn(move || {
                        for _ in 0..iters {
                            for _ in 0..PER_THREAD {
                                let fut = svc
                                    .ready()
                                    .now_or_never()
                                    .unwrap()
                                    .unwrap()
                                    .call(request(None));
                                black_box(fut.now_or_never().unwrap().unwrap());
                            }
                        }
                    });
                }
            });
            start.elapsed() / PER_THREAD as u32
        })
    });
    group.finish();
}

criterion_group!(benches, bench_trivial, bench_loopback, bench_parallel);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    bench::print_ratio("trivial", "bare", "layered", Some(1.03));
    bench::print_ratio("trivial", "layered", "layered_dpop", None);
    bench::print_ratio("loopback", "bare", "layered", Some(1.01));
    bench::print_ratio("parallel", "bare", "layered", None);
}
