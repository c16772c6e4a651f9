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
//! Each side sends as its users would, in three conventions, each its own measurement:
//!
//! - shared: `client.request(req)` on one bare client, and tower's `ready` then `call` on
//!   `&service`, one layered service shared by every call (no clone, no `Oneshot`);
//! - cloned per call: `client.clone().request(req)`, and `service.clone().oneshot(req)`, as
//!   callers that own no shared service write it;
//! - the same caller code with and without the layer: `client.clone().oneshot(req)` and
//!   `service.clone().oneshot(req)`, as code generic over tower services calls either. The
//!   form above charges the layered side with tower's `Oneshot` (the service and the request,
//!   592 bytes over hyper-util's `Client`, moved into it and taken apart at its first poll),
//!   which the bare side's `request` skips; here both sides pay it.
//!
//! And, with no layer at all, `client.clone().oneshot(req)` against `client.clone().request(req)`:
//! what `Oneshot` itself costs (reported, not a target).
//!
//! - `sequential`: one call at a time, interleaved call by call;
//! - `concurrent`: waves of 64 calls in flight, interleaved wave by wave. Before measuring, each
//!   client's pool is filled with 64 connections (a wave the server holds until all 64 arrived),
//!   so no measured wave pays for a new connection.
//!
//! Then the shared measurement again with a control in the layered client's place: a second bare
//! client, its own pool and connections, making the same calls. Its ratio is 1 but for the
//! bench's own error, so it says how far from 1 a ratio of this run can be told apart (a single
//! run of 60 rounds of 200 calls, this bench's first form, could not tell 1.005 from 1.015).
//! The control runs on its own, after, rather than as a third contestant in the same rounds:
//! with more calls of other clients between two of the layer's, its code and data are further
//! from the core when it runs (in two three-way runs the layer measured 1.025x and 1.029x,
//! against 1.014x-1.021x two-way on the same build).
//!
//! The rounds are spread over several processes of this bench, run one after the other, and
//! pooled: where a process's stack, heap and connections fall is fixed for its life and moves
//! its ratios by about as much as the bar is wide (three processes of one build, 600 rounds
//! each, read 1.006x, 1.011x and 1.009x: four times the 150 rounds one process ran before did
//! not narrow that), so a figure from one process is partly that process's luck. The report gives
//! the pooled median and each process's own.
//!
//! `cargo bench --bench end_to_end` (`ROUNDS`, `PROCESSES`, `CALLS`, `WAVES` in the environment
//! change the defaults: 300 rounds in all over 3 processes, 400 calls and 16 waves per
//! contestant per round; `PROCESSES=1` measures in the bench's own process).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::bench::{
    hot_path_request_to as request, minimal_server, quartiles, Shuffler, FILL_HEADER,
};
use tower::{Service, ServiceBuilder, ServiceExt};
#[path = "support/setup.rs"]
mod setup;
use setup::{bench_tokens, layer_over, store_holding};

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
    /// hyper-util's `Client`, sent through as its users do: `client.request(req)`.
    Bare,
    /// The layered client, shared: tower's `ready` then `call` on `&service`, no clone per
    /// call, no `Oneshot`.
    Layered,
    /// The control: a second bare client, its own pool.
    BareAgain,
    /// Both cloned per call, as callers of a service they do not share do (`oneshot` takes
    /// the service): `client.clone().request(req)`, and `service.clone().oneshot(req)`.
    BareCloned,
    LayeredCloned,
    /// The bare client called through tower's `Oneshot` as the layered one is:
    /// `client.clone().oneshot(req)`, the same caller code as `LayeredCloned` without the layer.
    BareOneshot,
}

/// The client a call goes through: a bare one, with the header its caller adds, or the layered
/// one (which adds its own: a layered caller holds no copy of the header).
enum Caller<B, L> {
    Bare(B, http::HeaderValue),
    /// The bare client, taken by `oneshot`.
    BareOneshot(B, http::HeaderValue),
    Layered(L),
}

/// A measurement's two contestants: the bare client and the one compared with it.
type Pair = [Contestant; 2];

/// What one process measured: per form (shared, cloned, both through `Oneshot`, `Oneshot` alone,
/// control) and measurement (sequential, concurrent), each round's ratio, and the time each side
/// took in all.
struct Measured {
    ratios: [[Vec<f64>; 2]; FORM_COUNT],
    sums: [[[Duration; 2]; 2]; FORM_COUNT],
}

const FORM_COUNT: usize = 5;
/// The place in [`FORMS`] of tower's `Oneshot` measured alone, with no layer.
const ONESHOT_ALONE: usize = 3;
/// The control's place in [`FORMS`].
const CONTROL: usize = 4;

/// The forms measured, in the order of [`Measured`]'s arrays, as the report names them.
const FORMS: [&str; FORM_COUNT] = [
    "shared: `ready`, `call` on `&service` vs `client.request`",
    "each cloned per call: `service.clone().oneshot` vs `client.clone().request`",
    "the same caller code with and without the layer: `service.clone().oneshot` vs \
     `client.clone().oneshot`",
    "tower's `Oneshot` alone, no layer: `client.clone().oneshot` vs `client.clone().request`",
    "control",
];

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter this bench does not take.
    let processes = setting("PROCESSES", 3).max(1);
    let rounds = setting("ROUNDS", 300);
    let calls = setting("CALLS", 400);
    let waves = setting("WAVES", 16);
    if std::env::var_os(CHILD).is_some() {
        // One of the processes below: its rounds, for the parent to pool.
        print_for_parent(&run_here(rounds, calls, waves));
        return;
    }
    if processes == 1 {
        report(&[run_here(rounds, calls, waves)], rounds, calls, waves);
        return;
    }
    let per_process = rounds.div_ceil(processes);
    let measured: Vec<Measured> = (0..processes)
        .map(|_| {
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args(std::env::args().skip(1))
                .env(CHILD, "1")
                .env("ROUNDS", per_process.to_string())
                .stderr(std::process::Stdio::inherit())
                .output()
                .unwrap();
            assert!(output.status.success(), "a measuring process failed");
            read_from_child(&String::from_utf8(output.stdout).unwrap())
        })
        .collect();
    report(&measured, per_process * processes, calls, waves);
}

/// Set in the environment of the processes [`main`] runs.
const CHILD: &str = "END_TO_END_CHILD";

/// The rounds of one process, a line per form and measurement: `ROUNDS form m bare-seconds
/// layered-seconds ratio...`.
fn print_for_parent(measured: &Measured) {
    for form in 0..FORM_COUNT {
        for m in 0..2 {
            let [bare, layered] = measured.sums[form][m];
            let ratios: Vec<String> = measured.ratios[form][m]
                .iter()
                .map(|r| r.to_string())
                .collect();
            println!(
                "ROUNDS {form} {m} {} {} {}",
                bare.as_secs_f64(),
                layered.as_secs_f64(),
                ratios.join(" ")
            );
        }
    }
}

fn read_from_child(text: &str) -> Measured {
    let mut measured = Measured {
        ratios: Default::default(),
        sums: [[[Duration::ZERO; 2]; 2]; FORM_COUNT],
    };
    for line in text.lines().filter_map(|l| l.strip_prefix("ROUNDS ")) {
        let mut fields = line.split(' ');
        let mut next = || fields.next().expect("a field");
        let (form, m): (usize, usize) = (next().parse().unwrap(), next().parse().unwrap());
        let bare = Duration::from_secs_f64(next().parse().unwrap());
        let layered = Duration::from_secs_f64(next().parse().unwrap());
        measured.sums[form][m] = [bare, layered];
        measured.ratios[form][m] = fields.map(|r| r.parse().unwrap()).collect();
    }
    measured
}

/// Prints each measurement's ratio over the rounds of every process pooled (its median and
/// quartiles), and each process's own median beside it.
fn report(measured: &[Measured], rounds: usize, calls: usize, waves: usize) {
    for (m, name) in ["sequential", "concurrent"].into_iter().enumerate() {
        let per_side = [calls, waves][m];
        let unit = if m == 0 { "call" } else { "wave of 64" };
        for (form, how) in FORMS.into_iter().enumerate() {
            let mut pooled: Vec<f64> = measured
                .iter()
                .flat_map(|p| p.ratios[form][m].iter().copied())
                .collect();
            let (p25, median, p75) = quartiles(&mut pooled);
            let each: Vec<String> = measured
                .iter()
                .map(|p| format!("{:.3}", quartiles(&mut p.ratios[form][m].clone()).1))
                .collect();
            let each = match measured.len() {
                1 => format!("{rounds} rounds in one process"),
                processes => format!(
                    "{rounds} rounds over {processes} processes, each: {}",
                    each.join(" ")
                ),
            };
            if form == ONESHOT_ALONE {
                println!(
                    "RATIO end_to_end/{name}: {how} = {median:.3}x (25th-75th: {p25:.3}-{p75:.3}; \
                     {each}): what the cloned form's bare side does not pay, not a target",
                );
                continue;
            }
            if form == CONTROL {
                println!(
                    "RATIO end_to_end/{name}: control, bare again / bare = {median:.3}x \
                     (25th-75th: {p25:.3}-{p75:.3}; {each}): the bench's own error, 1.000 if \
                     it had none",
                );
                continue;
            }
            let total = |side: usize| -> f64 {
                measured
                    .iter()
                    .map(|p| p.sums[form][m][side].as_secs_f64())
                    .sum::<f64>()
                    * 1e6
                    / (rounds * per_side) as f64
            };
            println!(
                "RATIO end_to_end/{name}: layered / bare = {median:.3}x ({how}; 25th-75th: \
                 {p25:.3}-{p75:.3}; {each}; mean {:.2} vs {:.2} us per {unit}; target <= \
                 1.01x: {})",
                total(1),
                total(0),
                if median <= 1.01 { "met" } else { "NOT met" },
            );
        }
    }
}

/// Runs every measurement in this process: `rounds` rounds of each.
fn run_here(rounds: usize, calls: usize, waves: usize) -> Measured {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(minimal_server(WAVE));
    let url: Arc<str> = format!("http://{addr}/mcp").into();

    let tokens = bench_tokens();
    let header = tokens.authorization_value();
    let layered = ServiceBuilder::new()
        .layer(layer_over(store_holding(&tokens, [&*url])))
        .service(Client::builder(TokioExecutor::new()).build_http());
    let bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let bare_again = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // One call of either contestant; the bare caller adds the bearer itself, so both send the
    // same request.
    let (bare, bare_again, layered) = (&bare, &bare_again, &layered);
    let call = {
        let (url, header) = (Arc::clone(&url), header.clone());
        move |who: Contestant, fill: bool| {
            let mut req = request(&url, None);
            if fill {
                req.headers_mut()
                    .insert(FILL_HEADER, http::HeaderValue::from_static("1"));
            }
            // The cloned contestants clone the client that makes the call for it (the clone is
            // part of the call); the others send through a shared reference. Only a bare caller
            // clones the header: every clone and drop of it writes its reference count, which
            // all calls share (and which the layer's callers, cloning it unused, once paid too).
            let caller = match who {
                Contestant::Bare => Caller::Bare(Cow::Borrowed(bare), header.clone()),
                Contestant::BareAgain => Caller::Bare(Cow::Borrowed(bare_again), header.clone()),
                Contestant::BareCloned => Caller::Bare(Cow::Owned(bare.clone()), header.clone()),
                Contestant::BareOneshot => {
                    Caller::BareOneshot(Cow::Owned(bare.clone()), header.clone())
                }
                Contestant::Layered => Caller::Layered(Cow::Borrowed(layered)),
                Contestant::LayeredCloned => Caller::Layered(Cow::Owned(layered.clone())),
            };
            async move {
                let response = match caller {
                    Caller::Bare(client, header) => {
                        req.headers_mut()
                            .insert(http::header::AUTHORIZATION, header);
                        client.request(req).await.unwrap().map(|b| b.boxed())
                    }
                    Caller::BareOneshot(client, header) => {
                        req.headers_mut()
                            .insert(http::header::AUTHORIZATION, header);
                        client
                            .into_owned()
                            .oneshot(req)
                            .await
                            .unwrap()
                            .map(|b| b.boxed())
                    }
                    Caller::Layered(Cow::Borrowed(mut layered)) => {
                        let ready = layered.ready().await.unwrap();
                        ready.call(req).await.unwrap().map(|b| b.boxed())
                    }
                    Caller::Layered(Cow::Owned(layered)) => {
                        layered.oneshot(req).await.unwrap().map(|b| b.boxed())
                    }
                };
                assert_eq!(response.status(), 200);
                std::hint::black_box(response.into_body().collect().await.unwrap().to_bytes());
            }
        }
    };

    // The layer's first call adopts the stored token; then every contestant warms up.
    rt.block_on(async {
        for _ in 0..500 {
            for who in [
                Contestant::Layered,
                Contestant::Bare,
                Contestant::BareAgain,
                Contestant::LayeredCloned,
                Contestant::BareCloned,
                Contestant::BareOneshot,
            ] {
                call(who, false).await;
            }
        }
    });

    let mut shuffler = Shuffler::per_run();
    // Runs `rounds` rounds of `pair` interleaved; per measurement (sequential, concurrent), the
    // ratios of each round's median times and the time each contestant took in all.
    let mut measure = |pair: Pair| {
        // Fill each pool with WAVE connections: the server holds a fill wave until all of it
        // arrived, so the wave cannot run on fewer connections. Again before each measurement:
        // a pool idle through the one before could have let its connections time out.
        rt.block_on(async {
            for who in pair {
                join_all((0..WAVE).map(|_| call(who, true))).await;
            }
        });
        let mut order = |per_side: usize| {
            let mut order: Vec<usize> = (0..2)
                .flat_map(|i| std::iter::repeat_n(i, per_side))
                .collect();
            shuffler.shuffle(&mut order);
            order
        };
        let (mut ratios, mut sums) = ([vec![], vec![]], [[Duration::ZERO; 2]; 2]);
        for _ in 0..rounds {
            let (seq_order, conc_order) = (order(calls), order(waves));
            let times: [[Vec<f64>; 2]; 2] = rt.block_on(async {
                let mut times: [[Vec<f64>; 2]; 2] = Default::default();
                for i in seq_order {
                    let start = Instant::now();
                    call(pair[i], false).await;
                    times[0][i].push(start.elapsed().as_secs_f64());
                }
                for i in conc_order {
                    let start = Instant::now();
                    join_all((0..WAVE).map(|_| call(pair[i], false))).await;
                    times[1][i].push(start.elapsed().as_secs_f64());
                }
                times
            });
            for (m, [mut first, mut second]) in times.into_iter().enumerate() {
                sums[m][0] += Duration::from_secs_f64(first.iter().sum());
                sums[m][1] += Duration::from_secs_f64(second.iter().sum());
                ratios[m].push(quartiles(&mut second).1 / quartiles(&mut first).1);
            }
        }
        (ratios, sums)
    };
    let (shared_ratios, shared_sums) = measure([Contestant::Bare, Contestant::Layered]);
    let (cloned_ratios, cloned_sums) = measure([Contestant::BareCloned, Contestant::LayeredCloned]);
    let (oneshot_ratios, oneshot_sums) =
        measure([Contestant::BareOneshot, Contestant::LayeredCloned]);
    let (alone_ratios, alone_sums) = measure([Contestant::BareCloned, Contestant::BareOneshot]);
    let (control_ratios, control_sums) = measure([Contestant::Bare, Contestant::BareAgain]);
    Measured {
        ratios: [
            shared_ratios,
            cloned_ratios,
            oneshot_ratios,
            alone_ratios,
            control_ratios,
        ],
        sums: [
            shared_sums,
            cloned_sums,
            oneshot_sums,
            alone_sums,
            control_sums,
        ],
    }
}
