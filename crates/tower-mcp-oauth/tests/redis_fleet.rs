//! A refresh storm across real processes sharing one Redis: the fleet sends a rotated refresh
//! token exactly once.
//!
//! The parent test starts `redis-server` and the testkit (rotating refresh tokens), logs in
//! once through a layer whose store is a `RedisStore`, then re-runs this test binary
//! ([`std::env::current_exe`]) as [`CHILDREN`] child processes running [`fleet_child`]. Each child
//! builds its own layer on the same Redis, adopts the parent's tokens, reports ready, and on the
//! parent's "GO" moves its clock past the refresh point and fires [`CALLS_PER_CHILD`] concurrent
//! `tools/list` calls, which all find the token due. Within a process the layer runs one flow;
//! across processes only the Redis lease and the re-read under it stand between the fleet and
//! a refresh token sent twice, which a server with reuse detection answers by revoking the
//! grant (RFC 6749 §10.4).
//!
//! Needs `redis-server` on PATH (`scripts/ensure-redis.sh` installs it).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hyper::body::Incoming;
use mcp_oauth_testkit::redis::RedisServer;
use mcp_oauth_testkit::{RecordedRequest, Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc, Body, HttpClient};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::redis::RedisStore;
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer, OAuthService, RefreshPolicy,
    TokenStore,
};

/// The name of the child entry point, as `--exact` wants it.
const CHILD_TEST: &str = "fleet_child";
const CHILDREN: usize = 3;
const CALLS_PER_CHILD: usize = 50;
/// The parent's token lives 3600 s and is due 60 s before its expiry: the children's clocks
/// are past that point, and before the expiry (so the stored token is adopted, then refreshed).
const TOKEN_LIFETIME_SECS: u64 = 3600;
const CHILD_CLOCK_OFFSET_SECS: u64 = 3550;
/// A real authorization server is a network round trip away; without a pause the testkit
/// answers a refresh in well under a millisecond, and the children would rarely overlap.
const TOKEN_LATENCY: Duration = Duration::from_millis(50);
/// An upper bound for the whole fleet (the run takes about a second): past it, a child hangs.
const FLEET_LIMIT: Duration = Duration::from_secs(30);

const PREFIX: &str = "fleet";
const REDIRECT: &str = "http://localhost:3000/callback";
const READY: &str = "REDIS_FLEET_READY";
const DONE: &str = "REDIS_FLEET_DONE";
const GO: &str = "GO";
const EXIT: &str = "EXIT";
const ENV_REDIS_URL: &str = "REDIS_FLEET_REDIS_URL";
const ENV_MCP_URL: &str = "REDIS_FLEET_MCP_URL";
const ENV_CLOCK_OFFSET: &str = "REDIS_FLEET_CLOCK_OFFSET_SECS";

/// A layer whose clock runs `offset` seconds ahead of the wall clock (read at every use, so a
/// child can jump past the refresh point when the storm starts).
fn layer(store: RedisStore, offset: Arc<AtomicU64>) -> OAuthLayer {
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .refresh_policy(RefreshPolicy::default().jitter(0.0))
        .clock(move || SystemTime::now() + Duration::from_secs(offset.load(Ordering::SeqCst)))
}

async fn store(url: &str) -> RedisStore {
    RedisStore::connect(url).await.unwrap().prefix(PREFIX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_processes_sends_a_rotated_refresh_token_once() {
    let redis = RedisServer::start();
    let kit = Testkit::start(
        TestkitConfig::default()
            .token_lifetime_secs(TOKEN_LIFETIME_SECS)
            .rotate_refresh_tokens(true),
    )
    .await
    .unwrap();
    let store = store(&redis.url()).await;
    let parent: OAuthService<HttpClient> = ServiceBuilder::new()
        .layer(layer(store.clone(), Arc::new(AtomicU64::new(0))))
        .service(http_client());
    let response = parent
        .oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let login = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .expect("the login's tokens are in Redis");
    let first_refresh_token = login
        .refresh_token()
        .expect("the testkit issues refresh tokens")
        .secret()
        .clone();
    let before = kit.requests().len();

    let env = [
        (ENV_REDIS_URL, redis.url()),
        (ENV_MCP_URL, kit.resource_url()),
        (ENV_CLOCK_OFFSET, CHILD_CLOCK_OFFSET_SECS.to_string()),
    ];
    let logs = tokio::task::spawn_blocking(move || run_fleet(&env))
        .await
        .unwrap()
        .unwrap_or_else(|failure| panic!("{failure}"));

    let during: Vec<RecordedRequest> = kit.requests()[before..].to_vec();
    let refreshes: Vec<&RecordedRequest> = during
        .iter()
        .filter(|r| is_grant(r, "refresh_token"))
        .collect();
    assert_eq!(
        refreshes.len(),
        1,
        "the fleet refreshed {} times; children:\n{logs}",
        refreshes.len()
    );
    assert!(
        refreshes[0].form_param("refresh_token").as_deref() == Some(first_refresh_token.as_str()),
        "the refresh did not use the login's refresh token"
    );
    // Over the whole run (login included), no refresh token was sent twice.
    let mut sent: Vec<String> = kit
        .requests()
        .iter()
        .filter_map(|r| r.form_param("refresh_token"))
        .collect();
    let total = sent.len();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), total, "a refresh token was sent twice");
    for path in ["/authorize", "/register"] {
        assert!(
            !during.iter().any(|r| r.path.ends_with(path)),
            "a child went to {path}; children:\n{logs}"
        );
    }
    assert!(!during.iter().any(|r| is_grant(r, "authorization_code")));

    // Redis holds the one refreshed set, and every call of the storm carried its access token:
    // the children that did not refresh adopted it.
    let refreshed = store
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .unwrap();
    assert!(!refreshed.same_tokens(&login));
    assert!(refreshed
        .refresh_token()
        .is_some_and(|t| *t.secret() != first_refresh_token));
    let with_refreshed = during
        .iter()
        .filter(|r| r.path == "/mcp")
        .filter(|r| r.bearer().as_ref() == Some(refreshed.access_token().secret()))
        .count();
    assert_eq!(
        with_refreshed,
        CHILDREN * CALLS_PER_CHILD,
        "children:\n{logs}"
    );
}

fn is_grant(request: &RecordedRequest, grant_type: &str) -> bool {
    request.path.ends_with("/token")
        && request.form_param("grant_type").as_deref() == Some(grant_type)
}

/// Spawns the children, waits until all are ready, releases them together and waits for them
/// to finish. `Ok`: every child succeeded (their output); `Err`: what went wrong, with it.
fn run_fleet(env: &[(&str, String)]) -> Result<String, String> {
    let deadline = Instant::now() + FLEET_LIMIT;
    let mut children = (0..CHILDREN)
        .map(|i| FleetChild::spawn(i, env))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = storm_together(&mut children, deadline);
    let logs: String = children.iter().map(FleetChild::log).collect();
    match outcome {
        Ok(()) => Ok(logs),
        Err(why) => Err(format!("{why}\nchildren:\n{logs}")),
    }
}

/// Waits until every child is ready, then releases them all at once, so their refreshes race.
fn storm_together(children: &mut [FleetChild], deadline: Instant) -> Result<(), String> {
    for child in children.iter() {
        child.wait_for_line(READY, deadline)?;
    }
    for child in children.iter_mut() {
        child.send(GO)?;
    }
    for child in children.iter() {
        child.wait_for_line(DONE, deadline)?;
    }
    for child in children.iter_mut() {
        child.send(EXIT)?;
        child.wait_for_exit(deadline)?;
    }
    Ok(())
}

/// One child process: this test binary running only [`fleet_child`].
struct FleetChild {
    index: usize,
    process: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl FleetChild {
    fn spawn(index: usize, env: &[(&str, String)]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("no test binary path: {e}"))?;
        let mut process = Command::new(exe)
            .args(["--ignored", "--exact", CHILD_TEST, "--nocapture"])
            .args(["--test-threads", "1"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start child {index}: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = process.stdout.take().expect("piped");
        let stderr = process.stderr.take().expect("piped");
        collect(stdout, Arc::clone(&log), Some(tx));
        collect(stderr, Arc::clone(&log), None);
        Ok(Self {
            index,
            stdin: process.stdin.take(),
            process,
            lines,
            log,
        })
    }

    fn wait_for_line(&self, marker: &str, deadline: Instant) -> Result<(), String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // libtest prints `test fleet_child ... ` without a line break before the output.
                Ok(line) if line.contains(marker) => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("child {} never printed {marker}", self.index))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("child {} ended before {marker}", self.index))
                }
            }
        }
    }

    fn send(&mut self, command: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot send {command} to child {}: {e}", self.index))
    }

    fn wait_for_exit(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            match self.process.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("child {} failed: {status}", self.index)),
                Ok(None) if Instant::now() >= deadline => {
                    return Err(format!("child {} did not exit in time", self.index))
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("cannot wait for child {}: {e}", self.index)),
            }
        }
    }

    fn log(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        format!("--- child {} ---\n{log}", self.index)
    }
}

impl Drop for FleetChild {
    fn drop(&mut self) {
        // A child still running here is a failed run: do not leave it behind.
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
        }
        let _ = self.process.wait();
    }
}

/// Copies a child's output into `log` on a thread, passing each line to `lines` as well.
fn collect(
    output: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    });
}

/// The child's inner service: hyper-util's client, with [`TOKEN_LATENCY`] before each token
/// request.
type Inner = BoxCloneService<
    http::Request<OAuthBody<Body>>,
    http::Response<Incoming>,
    hyper_util::client::legacy::Error,
>;

fn with_token_latency(client: HttpClient) -> Inner {
    BoxCloneService::new(tower::service_fn(move |request: http::Request<_>| {
        let client = client.clone();
        async move {
            if request.uri().path().ends_with("/token") {
                tokio::time::sleep(TOKEN_LATENCY).await;
            }
            client.request(request).await
        }
    }))
}

/// The entry point of one fleet process, spawned by
/// [`a_fleet_of_processes_sends_a_rotated_refresh_token_once`] with the Redis URL, the MCP URL
/// and the clock offset in its environment. Alone it has nothing to test: without that
/// environment it says so and returns, which is why it is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of a_fleet_of_processes_sends_a_rotated_refresh_token_once"]
async fn fleet_child() {
    let (Ok(redis_url), Ok(mcp_url), Ok(offset)) = (
        std::env::var(ENV_REDIS_URL),
        std::env::var(ENV_MCP_URL),
        std::env::var(ENV_CLOCK_OFFSET),
    ) else {
        eprintln!("fleet_child only runs when spawned by a_fleet_of_processes_sends_a_rotated_refresh_token_once");
        return;
    };
    let offset: u64 = offset.parse().expect("a clock offset in seconds");
    // The clock starts on time, so the warm-up only adopts the parent's tokens; it jumps past
    // the refresh point when the storm starts, so the refresh races across the processes.
    let clock = Arc::new(AtomicU64::new(0));
    let service: OAuthService<Inner> = ServiceBuilder::new()
        .layer(layer(store(&redis_url).await, Arc::clone(&clock)))
        .service(with_token_latency(http_client()));

    // Nothing in memory yet: the layer adopts the parent's tokens from Redis.
    let status = service
        .clone()
        .oneshot(jsonrpc(&mcp_url, 0, "tools/list", json!({})))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    println!("{READY}");

    expect_from_parent(GO).await;
    clock.store(offset, Ordering::SeqCst);

    let calls: Vec<_> = (1..=CALLS_PER_CHILD as u64)
        .map(|id| {
            let request = jsonrpc(&mcp_url, id, "tools/list", json!({}));
            tokio::spawn(service.clone().oneshot(request))
        })
        .collect();
    let mut failures = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(response) if response.status() == 200 => {}
            Ok(response) => failures.push(format!("status {}", response.status())),
            Err(e) => failures.push(format!("error: {e}")),
        }
    }
    assert!(failures.is_empty(), "failed calls: {failures:?}");
    println!("{DONE} flows={}", service.flows_started());
    // Stay up until the whole fleet is done, like the long-lived processes a Redis store is
    // for: the lease is released by a task spawned when its guard drops, and a process that
    // ends right after its refresh can leave the lease to expire (`lock_ttl`) instead.
    expect_from_parent(EXIT).await;
}

/// Waits for the parent to send `command` on stdin.
async fn expect_from_parent(command: &'static str) {
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(line.trim(), command, "the parent went away");
}
