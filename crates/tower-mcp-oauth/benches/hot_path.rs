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
//!   within a round the three sides meet the same machine. Each batch runs in one of several
//!   copies of its loop, drawn at random, so that no contestant's figure is that of one
//!   placement of its loop and what the compiler inlines into it (see `timed_batch`).
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
use setup::{bench_tokens, expiring, layer_over, send_now, store_holding};

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
        expiring(TokenSet::new(
            "bench-token",
            TokenType::DPoP,
            "https://as.bench",
            "client",
        ))
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

/// How many copies of each contestant's batch loop the interleaved measurement spreads its
/// rounds over, each with its loop further into its code than the one before.
const PLACEMENTS: usize = 8;
/// Padding steps (see [`pad`]) between one copy's loop and the next's.
const PLACE_STEPS: usize = 8;

/// Nanoseconds per call over a batch of [`BATCH`] calls of `service`, in the copy of the loop
/// numbered `PLACE`.
///
/// Where a loop falls in the binary moves its time: with the three contestants' loops in one
/// function, a change to the layer's code moved the floor's loop, and the floor's time with it
/// (527 -> 505 ns a call between two builds that differed only in the layer); in functions of
/// their own, moving the layer's code into another file still moved the floor by 3% (521-540
/// against 536-557 ns, the builds alternated within one session), and (a) from about 1.20x to
/// 1.26x, with the layer's own time unchanged.
/// A single placement measures a build's luck as much as its code (Mytkowicz et al., "Producing
/// Wrong Data Without Doing Anything Obviously Wrong!", ASPLOS 2009). So each contestant runs in
/// [`PLACEMENTS`] copies of this function (one per `PLACE`, each its own monomorphised code with
/// what the compiler inlines of the contestant: the request's making, the send, the drops; the
/// functions left out of line, such as the layer's `call`, are shared by the copies), the loop
/// in each shifted by code of a length growing with `PLACE` run before it ([`pad`]), and each
/// round draws a copy at random for each contestant: the ratios are then over the loops'
/// placements, not over one of them.
#[inline(never)]
fn timed_batch<S, R, const PLACE: usize>(service: &mut S, request: &R) -> f64
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
    R: Fn() -> http::Request<Full<Bytes>>,
{
    pad::<PLACE>();
    let start = std::time::Instant::now();
    for _ in 0..BATCH {
        let response = send_now(service, request());
        black_box(response);
    }
    start.elapsed().as_nanos() as f64 / BATCH as f64
}

/// Code of a length growing with `PLACE`, run once before a batch's loop (`PLACE *
/// PLACE_STEPS` stores, nothing the loop reads), shifting the loop within its function. The
/// workspace forbids `unsafe`, so this is not an `asm!` padding of exact length: each step is a
/// `black_box` of a constant, a store to the stack (9 bytes of code, `movq $k, d8(%rsp)`, in
/// the x86-64 build measured), so copies are about 72 bytes apart before the loop's head is
/// aligned to 16: over the eight copies the loop starts at each 16-byte offset of a 64-byte
/// line about twice, relative to its function's start.
#[inline(always)]
fn pad<const PLACE: usize>() {
    macro_rules! steps {
        ($($k:literal)*) => {$(
            if PLACE * PLACE_STEPS > $k {
                black_box($k as u64);
            }
        )*};
    }
    steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
           32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55);
}
const _: () = assert!((PLACEMENTS - 1) * PLACE_STEPS <= 56);

/// The [`PLACEMENTS`] copies of [`timed_batch`] for one contestant.
fn placements<S, R>() -> [fn(&mut S, &R) -> f64; PLACEMENTS]
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
    R: Fn() -> http::Request<Full<Bytes>>,
{
    [
        timed_batch::<S, R, 0>,
        timed_batch::<S, R, 1>,
        timed_batch::<S, R, 2>,
        timed_batch::<S, R, 3>,
        timed_batch::<S, R, 4>,
        timed_batch::<S, R, 5>,
        timed_batch::<S, R, 6>,
        timed_batch::<S, R, 7>,
    ]
}

/// (a) interleaved: each round runs a batch of each contestant in a shuffled order, each in a
/// placement of its loop drawn at random; the ratios are taken within the round, so drift
/// between rounds cancels.
fn interleaved_trivial() {
    let (mut layered, header) = warmed_layer(false);
    let mut bare = tower::service_fn(trivial::<Full<Bytes>>);
    let mut floor = ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            http::header::AUTHORIZATION,
            header.clone(),
        ))
        .service(tower::service_fn(trivial::<Full<Bytes>>));
    let bare_request = || request(Some(&header));
    let plain_request = || request(None);
    let (bare_at, floor_at, layered_at) = (placements(), placements(), placements());
    // Each contestant's time per placement, to show how far placement alone moves it; not its
    // warm-up batch (the first), which `interleaved_rounds` runs before the rounds.
    let mut by_place = vec![vec![Vec::new(); PLACEMENTS]; 3];
    let mut warmed = [false; 3];
    let rounds = bench::interleaved_rounds(3, ROUNDS, |who, shuffler| {
        let place = shuffler.below(PLACEMENTS as u64) as usize;
        // Each batch at a stack address of its own too: where the stack falls against the heap
        // (4 KiB aliasing of loads and stores) moves a contestant's time by several per cent,
        // and would otherwise be fixed for a whole run.
        let depth = shuffler.below(STACK_SHIFTS) as usize;
        let ns = at_depth(depth, &mut || match who {
            0 => bare_at[place](&mut bare, &bare_request),
            1 => floor_at[place](&mut floor, &plain_request),
            _ => layered_at[place](&mut layered, &plain_request),
        });
        if std::mem::replace(&mut warmed[who], true) {
            by_place[who][place].push(ns);
        }
        ns
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
    let per_round = format!("{BATCH} calls each, {PLACEMENTS} placements");
    let report = |name: &str, ratios: &mut Vec<f64>, target: Option<f64>| {
        bench::print_interleaved("trivial", name, ratios, &per_round, target);
    };
    report("floor / bare", &mut floor_over_bare, None);
    report("layered / floor", &mut over_floor, Some(1.25));
    report("layered / bare", &mut over_bare, None);
    // The spread placement alone gives: each contestant's median time in each of its copies.
    for (name, places) in ["bare", "floor", "layered"].iter().zip(&mut by_place) {
        let medians: Vec<String> = places
            .iter_mut()
            .map(|times| {
                if times.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{:.0}", bench::quartiles(times).1)
                }
            })
            .collect();
        println!(
            "PLACEMENTS trivial {name}: median ns a call by placement: {}",
            medians.join(" ")
        );
    }
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
