//! The cost of the layer when a valid token is at hand, each measured side by side with its
//! baselines in the same run and printed as a ratio:
//!
//! - (a) `trivial`: the layer over a trivial inner service vs that service bare (the caller
//!   adds the same `Authorization` header itself, so both send the same request), and vs the
//!   floor any auth layer pays: tower-http's `SetRequestHeader` adding the same static bearer;
//! - (a, DPoP) `trivial/layered_dpop`: the same with a DPoP-bound token, so each request also
//!   signs a fresh ES256 proof (RFC 9449): the per-request cost of a proof;
//! - `parallel`: (a) with two threads at once on one layer;
//! - (a) interleaved: bare, floor and layered in batches of calls, in a freshly shuffled order
//!   each round, over many rounds: the median ratio and its quartiles. Criterion measures one
//!   side after the other, and on a busy machine its ratios drift by more than the layer costs;
//!   within a round the three sides meet the same machine.
//!
//! The end-to-end comparison over loopback (b) is `benches/end_to_end.rs`: criterion runs one
//! side after the other, and the machine's drift between them is larger than the difference.
//!
//! `cargo bench --bench hot_path`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use futures_util::FutureExt;
use http_body_util::{Empty, Full};
use mcp_oauth_testkit::bench;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_mcp_oauth::{DpopKey, OAuthBody, TokenSet, TokenType};

use mcp_oauth_testkit::bench::{
    hot_path_request as request, trivial_resource as trivial, HOT_PATH_URL as URL,
};

#[path = "support/setup.rs"]
mod setup;
use setup::{bench_tokens, layer_over, send_now, store_holding};

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
    let tokens = if dpop {
        let key = DpopKey::from_entropy([7; 32]).unwrap();
        TokenSet::new("bench-token", TokenType::DPoP, "https://as.bench", "client")
            .with_dpop_key(Some(key))
    } else {
        bench_tokens()
    };
    let layer = layer_over(store_holding(&tokens, [URL]));
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
    let mut floor = ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            http::header::AUTHORIZATION,
            header.clone(),
        ))
        .service(tower::service_fn(trivial::<Full<Bytes>>));

    let mut group = c.benchmark_group("trivial");
    group.bench_function("bare", |b| {
        b.iter(|| {
            let response = send_now(&mut bare, request(Some(&header)));
            black_box(response)
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            let response = send_now(&mut floor, request(None));
            black_box(response)
        })
    });
    group.bench_function("layered", |b| {
        b.iter(|| {
            let response = send_now(&mut layered, request(None));
            black_box(response)
        })
    });
    group.bench_function("layered_dpop", |b| {
        b.iter(|| {
            let response = send_now(&mut layered_dpop, request(None));
            black_box(response)
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
                                let response = send_now(&mut bare, request(Some(&header)));
                                black_box(response);
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
                                let response = send_now(&mut svc, request(None));
                                black_box(response);
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

criterion_group!(benches, bench_trivial, bench_parallel);

/// Calls per batch in the interleaved measurement: long enough that the clock's granularity and
/// the batch's own overhead vanish (a few milliseconds), short enough that the machine's speed
/// barely moves within a round.
const BATCH: usize = 2_000;
/// Rounds of the interleaved measurement.
const ROUNDS: usize = 1_000;

/// How many stack positions, 64 bytes apart, the interleaved batches are spread over: 4 KiB and
/// more.
const STACK_SHIFTS: u64 = 80;

/// Runs `f` `depth` frames of 64 bytes deeper in the stack.
#[inline(never)]
fn at_depth(depth: usize, f: &mut dyn FnMut() -> f64) -> f64 {
    let pad = black_box([0_u8; 64]);
    let ns = if depth == 0 {
        f()
    } else {
        at_depth(depth - 1, f)
    };
    black_box(&pad);
    ns
}

/// Nanoseconds per call over a batch of [`BATCH`] calls of `service`. A function of its own for
/// each contestant (never inlined into the round's loop): with the three loops in one function,
/// a change to the layer's code moved the floor's loop within it, and the floor's time with it
/// (527 -> 505 ns per call between two builds that differed only in the layer). Apart, a
/// contestant's loop keeps its own layout; its address can still move by a multiple of 16 bytes
/// with the code before it, which measured within 2% for the floor across this change's builds.
#[inline(never)]
fn timed_batch<S>(service: &mut S, request: impl Fn() -> http::Request<Full<Bytes>>) -> f64
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let start = std::time::Instant::now();
    for _ in 0..BATCH {
        let response = send_now(service, request());
        black_box(response);
    }
    start.elapsed().as_nanos() as f64 / BATCH as f64
}

/// (a) interleaved: each round runs a batch of each contestant in a shuffled order; the ratios
/// are taken within the round, so drift between rounds cancels.
fn interleaved_trivial() {
    let (mut layered, header) = warmed_layer(false);
    let mut bare = tower::service_fn(trivial::<Full<Bytes>>);
    let mut floor = ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            http::header::AUTHORIZATION,
            header.clone(),
        ))
        .service(tower::service_fn(trivial::<Full<Bytes>>));
    let mut batch = |who: usize| match who {
        0 => timed_batch(&mut bare, || request(Some(&header))),
        1 => timed_batch(&mut floor, || request(None)),
        _ => timed_batch(&mut layered, || request(None)),
    };
    let rounds = bench::interleaved_rounds(3, ROUNDS, |who, shuffler| {
        // Each batch at a stack address of its own: where the stack falls against the heap
        // (4 KiB aliasing of loads and stores) moves a contestant's time by several per cent,
        // and would otherwise be fixed for a whole run.
        let depth = shuffler.below(STACK_SHIFTS) as usize;
        at_depth(depth, &mut || batch(who))
    });
    let (mut over_floor, mut over_bare, mut floor_over_bare) = (vec![], vec![], vec![]);
    for ns in rounds {
        if std::env::var_os("HOT_PATH_DEBUG").is_some() {
            eprintln!("ns {:.0} {:.0} {:.0}", ns[0], ns[1], ns[2]);
        }
        over_floor.push(ns[2] / ns[1]);
        over_bare.push(ns[2] / ns[0]);
        floor_over_bare.push(ns[1] / ns[0]);
    }
    let per_round = format!("{BATCH} calls each");
    let report = |name: &str, ratios: &mut Vec<f64>, target: Option<f64>| {
        bench::print_interleaved("trivial", name, ratios, &per_round, target);
    };
    report("floor / bare", &mut floor_over_bare, None);
    report("layered / floor", &mut over_floor, Some(1.25));
    report("layered / bare", &mut over_bare, None);
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    bench::print_ratio("trivial", "bare", "floor", None);
    bench::print_ratio("trivial", "floor", "layered", Some(1.25));
    bench::print_ratio("trivial", "bare", "layered", None);
    bench::print_ratio("trivial", "layered", "layered_dpop", None);
    bench::print_ratio("parallel", "bare", "layered", None);
    // Criterion's `--bench` filter names its groups; the interleaved run goes with `trivial`.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_none_or(|f| "trivial interleaved".contains(f.as_str())) {
        interleaved_trivial();
    }
}
