//! The hot path's cost as the number held grows (a valid token at hand, the trivial inner
//! service of `hot_path`):
//!
//! - `servers`: one layer holding tokens for 1, 100 or 10,000 MCP servers (one origin each),
//!   calling one of them;
//! - `web_users`: the web API (`WebLogin::layer_for`, then the call) with 1 or 10,000 users
//!   connected, calling as one of them.
//!
//! Both print the ratio of the largest to the smallest; flat means within 1.05x. Both are also
//! measured interleaved (`-- interleaved` runs only that), whose ratios hold still where
//! criterion's drift (web users measured 0.87x to 1.10x by criterion alone, for one build).
//!
//! `cargo bench --bench scale`

use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion};
use mcp_oauth_testkit::bench;

#[path = "support/setup.rs"]
mod setup;
use setup::{layer_holding, send_as, send_held as send, server_url, web_login_with};

/// Calls per batch and rounds of the interleaved measurement.
const BATCH: usize = 2_000;
const ROUNDS: usize = 300;

/// One contestant of an interleaved measurement: runs `n` calls.
type Contestant<'a> = Box<dyn FnMut(usize) + 'a>;

/// Measures `contestants` interleaved, as `hot_path`'s (a) is: each round a batch of each in a
/// freshly shuffled order, the ratios to the first taken within the round, their median over
/// the rounds. Criterion's one-after-the-other runs drift on a shared machine by more than the
/// difference this looks for.
fn interleaved(what: &str, names: &[&str], mut contestants: Vec<Contestant<'_>>) {
    let rounds = bench::interleaved_rounds(names.len(), ROUNDS, |who, _| {
        let start = std::time::Instant::now();
        contestants[who](BATCH);
        start.elapsed().as_nanos() as f64 / BATCH as f64
    });
    let per_round = format!("{BATCH} calls each");
    for who in 1..names.len() {
        let mut ratios: Vec<f64> = rounds.iter().map(|ns| ns[who] / ns[0]).collect();
        let name = format!("{} / {}", names[who], names[0]);
        bench::print_interleaved(what, &name, &mut ratios, &per_round, Some(1.05));
    }
}

/// One layer holding 1, 100 and 10,000 servers, interleaved.
fn interleaved_servers() {
    let contestants = [1usize, 100, 10_000].map(|held| {
        let (mut service, url) = layer_holding(held);
        Box::new(move |n: usize| {
            for _ in 0..n {
                send(&mut service, &url);
            }
        }) as Contestant<'_>
    });
    interleaved("servers", &["1", "100", "10000"], contestants.into());
}

/// A web login with 1 and with 10,000 users, interleaved.
fn interleaved_web_users() {
    let url = server_url(0);
    let contestants = [1usize, 10_000].map(|users| {
        let (login, user) = web_login_with(users);
        let url = url.clone();
        Box::new(move |n: usize| {
            for _ in 0..n {
                send_as(&login, &user, &url);
            }
        }) as Contestant<'_>
    });
    interleaved("web_users", &["1", "10000"], contestants.into());
}

fn bench_servers(c: &mut Criterion) {
    let mut group = c.benchmark_group("servers");
    group.measurement_time(Duration::from_secs(3));
    for held in [1usize, 100, 10_000] {
        let (mut service, target) = layer_holding(held);
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
        let (login, user) = web_login_with(users);
        group.bench_with_input(BenchmarkId::from_parameter(users), &user, |b, user| {
            b.iter(|| send_as(&login, user, &url))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_servers, bench_web_users);

fn main() {
    // `cargo bench --bench scale -- interleaved` runs only these.
    if std::env::args().any(|arg| arg == "interleaved") {
        interleaved_servers();
        interleaved_web_users();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved_servers();
    interleaved_web_users();
    bench::print_ratio("servers", "1", "100", Some(1.05));
    bench::print_ratio("servers", "1", "10000", Some(1.05));
    bench::print_ratio("web_users", "1", "10000", Some(1.05));
}
