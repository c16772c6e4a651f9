//! Reading criterion's estimates back to print one benchmark as a ratio of another.

use std::path::PathBuf;

/// Where criterion writes its estimates: found the way criterion finds it (`CARGO_TARGET_DIR`,
/// else `cargo metadata`), so a bench in any member of any workspace reads its own run.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO")
        .and_then(|cargo| {
            std::process::Command::new(cargo)
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .output()
                .ok()
        })
        .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
        .and_then(|meta| meta["target_directory"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The mean time (ns) criterion measured for `group/id` in this run.
pub fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints `candidate / baseline` for a group, with both means.
pub fn print_ratio(group: &str, baseline: &str, candidate: &str, target: Option<f64>) {
    match (mean_ns(group, baseline), mean_ns(group, candidate)) {
        (Some(b), Some(c)) => {
            let ratio = c / b;
            let verdict = match target {
                Some(t) if ratio <= t => format!("; target <= {t:.2}x: met"),
                Some(t) => format!("; target <= {t:.2}x: NOT met"),
                None => String::new(),
            };
            println!("RATIO {group}: {candidate} / {baseline} = {ratio:.3}x  ({c:.0} ns vs {b:.0} ns{verdict})");
        }
        _ => println!("RATIO {group}: estimates not found (was the group filtered out?)"),
    }
}

/// The URL the hot-path measurements address (no server behind it: the inner service is
/// [`trivial_resource`]).
pub const HOT_PATH_URL: &str = "http://mcp.bench/mcp";

/// The request the hot-path measurements send: a small JSON-RPC `tools/list` POST to
/// [`HOT_PATH_URL`], with `authorization` when the caller adds the token itself.
pub fn hot_path_request(
    authorization: Option<&http::HeaderValue>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    hot_path_request_to(HOT_PATH_URL, authorization)
}

/// [`hot_path_request`] to another URL (another server of many, a loopback server).
pub fn hot_path_request_to(
    url: &str,
    authorization: Option<&http::HeaderValue>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    const BODY: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let mut req = http::Request::post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(BODY)))
        .expect("a valid request");
    if let Some(v) = authorization {
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, v.clone());
    }
    req
}

/// A trivial resource for the hot-path measurements: `401` without a token, `200` with one.
pub fn trivial_resource<B>(
    req: http::Request<B>,
) -> std::future::Ready<
    Result<http::Response<http_body_util::Empty<bytes::Bytes>>, std::convert::Infallible>,
> {
    let status = if req.headers().contains_key(http::header::AUTHORIZATION) {
        http::StatusCode::OK
    } else {
        http::StatusCode::UNAUTHORIZED
    };
    let mut resp = http::Response::new(http_body_util::Empty::new());
    *resp.status_mut() = status;
    std::future::ready(Ok(resp))
}

/// The header that makes [`minimal_server`] hold a request until a whole wave of them is in
/// flight: sent to fill a client's connection pool before a concurrent measurement.
pub const FILL_HEADER: &str = "x-bench-fill";

/// A minimal MCP-shaped server on loopback: `401` without a token, a fixed JSON-RPC result with
/// one. It records nothing, so every contestant of a comparison meets the same cost.
///
/// Requests carrying [`FILL_HEADER`] are held until `fill_wave` of them have arrived, so that a
/// wave of that many fill requests opens that many connections: one warm-up wave of quick
/// requests would reuse a few connections and leave the pool to grow during the measurement.
pub async fn minimal_server(fill_wave: usize) -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use std::sync::Arc;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let fill = Arc::new(tokio::sync::Barrier::new(fill_wave.max(1)));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let fill = Arc::clone(&fill);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let fill = Arc::clone(&fill);
                        async move {
                            if req.headers().contains_key(FILL_HEADER) {
                                fill.wait().await;
                            }
                            let authorized =
                                req.headers().contains_key(http::header::AUTHORIZATION);
                            let _ = req.into_body().collect().await;
                            let (status, body) = if authorized {
                                (
                                    200,
                                    bytes::Bytes::from_static(
                                        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
                                    ),
                                )
                            } else {
                                (401, bytes::Bytes::new())
                            };
                            let response = http::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(body))
                                .expect("a valid response");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A small deterministic generator (xorshift64*) for shuffling the order of contestants; seed
/// it from anything that changes per run.
#[derive(Clone, Debug)]
pub struct Shuffler(u64);

impl Shuffler {
    /// A generator seeded with `seed` (zero is replaced: xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A generator seeded afresh for each run (the clock, hashed with a random key), so that
    /// no two runs share an order.
    pub fn per_run() -> Self {
        use std::hash::BuildHasher;
        let seed =
            std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
        Self::new(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (not zero).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Shuffles `items` in place (Fisher-Yates).
    ///
    /// ```
    /// let mut v: Vec<u32> = (0..10).collect();
    /// mcp_oauth_testkit::bench::Shuffler::new(7).shuffle(&mut v);
    /// let mut sorted = v.clone();
    /// sorted.sort();
    /// assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    /// ```
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Runs contestants interleaved: a warm-up batch of each, then `rounds` rounds of one batch of
/// each in a freshly shuffled order. `batch(who, shuffler)` runs contestant `who`'s batch and
/// returns its time per call (the shuffler is there for anything else a batch draws at
/// random). Returns, per round, each contestant's time: a ratio taken within a round meets one
/// state of the machine, so its drift between rounds cancels.
///
/// ```
/// let mut calls = [0; 2];
/// let rounds = mcp_oauth_testkit::bench::interleaved_rounds(2, 5, |who, _| {
///     calls[who] += 1;
///     who as f64 + 1.0
/// });
/// assert_eq!(rounds.len(), 5);
/// assert!(rounds.iter().all(|ns| ns == &[1.0, 2.0]));
/// assert_eq!(calls, [6, 6]); // the warm-up batch, then one per round
/// ```
pub fn interleaved_rounds(
    contestants: usize,
    rounds: usize,
    mut batch: impl FnMut(usize, &mut Shuffler) -> f64,
) -> Vec<Vec<f64>> {
    let mut shuffler = Shuffler::per_run();
    for who in 0..contestants {
        batch(who, &mut shuffler);
    }
    (0..rounds)
        .map(|_| {
            let mut order: Vec<usize> = (0..contestants).collect();
            shuffler.shuffle(&mut order);
            let mut ns = vec![0.0; contestants];
            for who in order {
                ns[who] = batch(who, &mut shuffler);
            }
            ns
        })
        .collect()
}

/// Prints the median of `ratios` (one per round of an interleaved measurement) with its
/// quartiles, as `RATIO {what} interleaved: {name} = ...`, and whether it meets `target`.
pub fn print_interleaved(
    what: &str,
    name: &str,
    ratios: &mut [f64],
    per_round: &str,
    target: Option<f64>,
) {
    let (p25, median, p75) = quartiles(ratios);
    let verdict = match target {
        Some(t) if median <= t => format!("; target <= {t:.2}x: met"),
        Some(t) => format!("; target <= {t:.2}x: NOT met"),
        None => String::new(),
    };
    println!(
        "RATIO {what} interleaved: {name} = {median:.3}x (p25 {p25:.3}x, p75 {p75:.3}x; \
         {} rounds of {per_round}{verdict})",
        ratios.len()
    );
}

/// The 25th, 50th and 75th percentiles of `values` (nearest rank; sorts them).
///
/// ```
/// let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
/// assert_eq!(mcp_oauth_testkit::bench::quartiles(&mut v), (2.0, 3.0, 4.0));
/// ```
pub fn quartiles(values: &mut [f64]) -> (f64, f64, f64) {
    assert!(!values.is_empty(), "no values");
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}
