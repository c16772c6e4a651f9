//! End to end over loopback: hyper-util's `Client` by hand (the caller adds the bearer itself)
//! vs the same client under the layer holding a valid token, against a minimal MCP-shaped hyper
//! server, as ratios that hold still on a busy machine.
//!
//! Running one contestant after the other (as criterion does) lets the machine's speed drift
//! between them, and a fixed rotation biases the ratio (each call always follows the same
//! neighbour). So each round runs the two contestants' calls interleaved in a freshly shuffled
//! order and times each call; the ratio of the two contestants' median call (or wave) times is
//! that round's figure (a median, so a call the scheduler preempted does not swing it), and the
//! report is the median ratio over many rounds with its 25th-75th percentiles.
//!
//! - `sequential`: one call at a time, interleaved call by call;
//! - `concurrent`: waves of 64 calls in flight, interleaved wave by wave. Before measuring, each
//!   client's pool is filled with 64 connections (a wave the server holds until all 64 arrived),
//!   so no measured wave pays for a new connection.
//!
//! `cargo bench --bench end_to_end` (`ROUNDS`, `CALLS`, `WAVES` in the environment change the
//! defaults: 60 rounds, 200 calls and 16 waves per contestant per round).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::bench::{
    hot_path_request_to as request, minimal_server, quartiles, Shuffler, FILL_HEADER,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthLayer, TokenSet, TokenStore, TokenType,
};

/// Calls in flight in the concurrent measurement.
const WAVE: usize = 64;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contestant {
    Bare,
    Layered,
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter this bench does not take.
    let rounds = setting("ROUNDS", 60);
    let calls = setting("CALLS", 200);
    let waves = setting("WAVES", 16);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(minimal_server(WAVE));
    let url: Arc<str> = format!("http://{addr}/mcp").into();

    let tokens = TokenSet::new(
        "bench-token",
        TokenType::Bearer,
        "https://as.bench",
        "client",
    );
    let header = tokens.authorization_value();
    let store = MemoryStore::new();
    store
        .save_tokens(&url, &tokens)
        .now_or_never()
        .unwrap()
        .unwrap();
    let layered = ServiceBuilder::new()
        .layer(
            OAuthLayer::new(
                ClientConfig::new("http://localhost:3000/callback"),
                HeadlessAuthorizer::new(),
            )
            .token_store(store),
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // One call of either contestant; the bare caller adds the bearer itself, so both send the
    // same request.
    let call = {
        let (url, header) = (Arc::clone(&url), header.clone());
        move |who: Contestant, fill: bool| {
            let mut req = request(&url, None);
            if fill {
                req.headers_mut()
                    .insert(FILL_HEADER, http::HeaderValue::from_static("1"));
            }
            let (bare, layered, header) = (bare.clone(), layered.clone(), header.clone());
            async move {
                let response = match who {
                    Contestant::Bare => {
                        req.headers_mut()
                            .insert(http::header::AUTHORIZATION, header);
                        bare.request(req).await.unwrap().map(|b| b.boxed())
                    }
                    Contestant::Layered => layered.oneshot(req).await.unwrap().map(|b| b.boxed()),
                };
                assert_eq!(response.status(), 200);
                std::hint::black_box(response.into_body().collect().await.unwrap().to_bytes());
            }
        }
    };

    // The layer's first call adopts the stored token; then both warm up.
    rt.block_on(async {
        for _ in 0..500 {
            call(Contestant::Layered, false).await;
            call(Contestant::Bare, false).await;
        }
        // Fill each pool with WAVE connections: the server holds a fill wave until all of it
        // arrived, so the wave cannot run on fewer connections.
        for who in [Contestant::Bare, Contestant::Layered] {
            join_all((0..WAVE).map(|_| call(who, true))).await;
        }
    });

    let mut shuffler = Shuffler::new(RandomState::new().hash_one(Instant::now()));
    let mut order = |per_side: usize| {
        let mut order: Vec<Contestant> = std::iter::repeat_n(Contestant::Bare, per_side)
            .chain(std::iter::repeat_n(Contestant::Layered, per_side))
            .collect();
        shuffler.shuffle(&mut order);
        order
    };

    let mut sequential = Vec::with_capacity(rounds);
    let mut concurrent = Vec::with_capacity(rounds);
    let (mut seq_sum, mut conc_sum) = ([Duration::ZERO; 2], [Duration::ZERO; 2]);
    // The ratio of the two contestants' median times in one round.
    let ratio = |times: &mut [Vec<f64>; 2]| {
        let [bare, layered] = times;
        quartiles(layered).1 / quartiles(bare).1
    };
    for _ in 0..rounds {
        let seq_order = order(calls);
        let conc_order = order(waves);
        let (mut seq, mut conc) = rt.block_on(async {
            let mut seq: [Vec<f64>; 2] = Default::default();
            for who in seq_order {
                let start = Instant::now();
                call(who, false).await;
                seq[who as usize].push(start.elapsed().as_secs_f64());
            }
            let mut conc: [Vec<f64>; 2] = Default::default();
            for who in conc_order {
                let start = Instant::now();
                join_all((0..WAVE).map(|_| call(who, false))).await;
                conc[who as usize].push(start.elapsed().as_secs_f64());
            }
            (seq, conc)
        });
        for i in 0..2 {
            seq_sum[i] += Duration::from_secs_f64(seq[i].iter().sum());
            conc_sum[i] += Duration::from_secs_f64(conc[i].iter().sum());
        }
        sequential.push(ratio(&mut seq));
        concurrent.push(ratio(&mut conc));
    }

    let report = |name: &str, ratios: &mut [f64], sums: [Duration; 2], per_side: usize| {
        let (p25, median, p75) = quartiles(ratios);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (rounds * per_side) as f64;
        println!(
            "RATIO end_to_end/{name}: layered / bare = {median:.3}x (25th-75th: {p25:.3}-{p75:.3}; \
             {rounds} rounds; mean {:.2} vs {:.2} us per {}; target <= 1.01x: {})",
            per(sums[1]),
            per(sums[0]),
            if name == "sequential" { "call" } else { "wave of 64" },
            if median <= 1.01 { "met" } else { "NOT met" },
        );
    };
    report("sequential", &mut sequential, seq_sum, calls);
    report("concurrent", &mut concurrent, conc_sum, waves);
}
