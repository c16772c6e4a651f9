//! Storms of 1000 concurrent requests, counting the sub-requests that reach the servers:
//!
//! - (c) `no_token`: nobody holds a token yet: one PRM fetch, one metadata fetch, one
//!   registration, one token request for all 1000;
//! - (d) `expired_token`: the held token is past its expiry: one refresh;
//! - (e) `revoked_token`: the server revoked a token the client still believes valid (every
//!   request gets a 401): one refresh.
//!
//! Each storm's time is printed next to a storm of 1000 requests with a valid token, as a ratio.
//! A wrong count panics: the counts are the point.
//!
//! `cargo bench --bench storms`

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::{bench, jsonrpc, Testkit, TestkitConfig};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer, OAuthService, RefreshPolicy,
};

const STORM: usize = 1000;

/// hyper-util's legacy client, carrying the layer's body type.
type HttpClient = Client<HttpConnector, OAuthBody<Full<Bytes>>>;

/// One connection pool for every storm: 1000 connections opened once and reused, instead of a
/// new pool (and 1000 new sockets) per iteration.
fn shared_client() -> HttpClient {
    static CLIENT: std::sync::OnceLock<HttpClient> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| Client::builder(TokioExecutor::new()).build_http())
        .clone()
}

fn service(offset: &Arc<AtomicI64>) -> OAuthService<HttpClient> {
    let offset = Arc::clone(offset);
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .refresh_policy(RefreshPolicy::default().jitter(0.0))
    .clock(move || SystemTime::now() + Duration::from_secs(offset.load(Ordering::SeqCst) as u64));
    ServiceBuilder::new().layer(layer).service(shared_client())
}

async fn storm(svc: &OAuthService<HttpClient>, url: &str) -> Duration {
    let start = Instant::now();
    let calls: Vec<_> = (0..STORM)
        .map(|i| {
            let svc = svc.clone();
            let req = jsonrpc(url, i as u64, "tools/list", serde_json::json!({}));
            tokio::spawn(async move { svc.oneshot(req).await.map(|r| r.status()) })
        })
        .collect();
    for call in calls {
        let status = call.await.unwrap().expect("request failed");
        assert_eq!(status, 200);
    }
    start.elapsed()
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    prm: usize,
    metadata: usize,
    register: usize,
    authorize: usize,
    code_grants: usize,
    refresh_grants: usize,
}

fn counts(kit: &Testkit) -> Counts {
    let mut c = Counts::default();
    for r in kit.requests() {
        match r.path.as_str() {
            p if p.contains("oauth-protected-resource") => c.prm += 1,
            p if p.contains("oauth-authorization-server") || p.contains("openid-configuration") => {
                c.metadata += 1
            }
            "/register" => c.register += 1,
            "/authorize" => c.authorize += 1,
            "/token" => match r.form_param("grant_type").as_deref() {
                Some("refresh_token") => c.refresh_grants += 1,
                _ => c.code_grants += 1,
            },
            _ => {}
        }
    }
    c
}

fn bench_storms(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let kit = rt
        .block_on(Testkit::start(
            TestkitConfig::default().token_lifetime_secs(3600),
        ))
        .unwrap();
    let url = kit.resource_url();
    let mut group = c.benchmark_group("storm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));

    let offset = Arc::new(AtomicI64::new(0));
    let warm = service(&offset);
    rt.block_on(storm(&warm, &url));
    group.bench_function("valid_token", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (kit, warm, url) = (&kit, warm.clone(), url.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // The testkit records every request: clear its log as the other storms do,
                    // so all of them meet the same server cost.
                    kit.clear_requests();
                    total += storm(&warm, &url).await;
                }
                total
            }
        })
    });

    let mut reported = [false; 3];
    group.bench_function("no_token", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (kit, url, offset) = (&kit, url.clone(), Arc::clone(&offset));
            let report = !std::mem::replace(&mut reported[0], true);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let fresh = service(&offset);
                    kit.clear_requests();
                    total += storm(&fresh, &url).await;
                    let got = counts(kit);
                    let want = Counts {
                        prm: 1,
                        metadata: 1,
                        register: 1,
                        authorize: 1,
                        code_grants: 1,
                        refresh_grants: 0,
                    };
                    assert_eq!(got, want, "storm (c) sub-requests");
                    if report {
                        println!("COUNT storm/no_token: {STORM} requests -> {got:?}");
                    }
                }
                total
            }
        })
    });

    let expired_offset = Arc::new(AtomicI64::new(0));
    let expiring = service(&expired_offset);
    rt.block_on(storm(&expiring, &url));
    group.bench_function("expired_token", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (kit, url, svc, offset) = (
                &kit,
                url.clone(),
                expiring.clone(),
                Arc::clone(&expired_offset),
            );
            let report = !std::mem::replace(&mut reported[1], true);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Past the expiry of whatever the previous storm left.
                    offset.fetch_add(3700, Ordering::SeqCst);
                    kit.clear_requests();
                    total += storm(&svc, &url).await;
                    let got = counts(kit);
                    assert_eq!(got.refresh_grants, 1, "storm (d) refreshes: {got:?}");
                    assert_eq!(got.authorize, 0, "storm (d): {got:?}");
                    if report {
                        println!("COUNT storm/expired_token: {STORM} requests -> {got:?}");
                    }
                }
                total
            }
        })
    });

    let revoked = service(&Arc::new(AtomicI64::new(0)));
    rt.block_on(storm(&revoked, &url));
    group.bench_function("revoked_token", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (kit, url, svc) = (&kit, url.clone(), revoked.clone());
            let report = !std::mem::replace(&mut reported[2], true);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    kit.revoke_all_tokens();
                    kit.clear_requests();
                    total += storm(&svc, &url).await;
                    let got = counts(kit);
                    assert_eq!(got.refresh_grants, 1, "storm (e) refreshes: {got:?}");
                    assert_eq!(got.authorize, 0, "storm (e): {got:?}");
                    if report {
                        println!("COUNT storm/revoked_token: {STORM} requests -> {got:?}");
                    }
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_storms);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    for storm in ["no_token", "expired_token", "revoked_token"] {
        bench::print_ratio("storm", "valid_token", storm, None);
    }
}
