//! A web login started in one process and completed in another, over one Redis: no sticky
//! sessions.
//!
//! The parent test plays the process that serves `GET /connect`: it starts redis-server and the
//! testkit, calls [`WebLogin::start`] with a `WebLogin` whose pending logins and tokens live in
//! Redis, and plays the browser at the (auto-approving) authorization server, which sends it
//! back with the callback URL. It then re-runs this test binary ([`std::env::current_exe`]) as
//! a child process running [`web_login_child`], the process that happens to receive
//! `GET /callback`: given the Redis URL and the callback's query in its environment, the child
//! builds its own `WebLogin` on the same Redis and calls [`WebLogin::complete`]. Back in the
//! parent, the user's layer calls the MCP server with the token the child stored.
//!
//! The second test sends one callback to two child processes at once: the login is taken from
//! Redis once (a get-and-delete script), so one child exchanges the code and the other is refused.
//!
//! Needs `redis-server` on PATH (`scripts/ensure-redis.sh` installs it).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::redis::RedisServer;
use mcp_oauth_testkit::{DpopConfig, RecordedRequest, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::redis::RedisStore;
use tower_mcp_oauth::web::WebLogin;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HttpClient, TokenStore, DEFAULT_MAX_RESPONSE_BYTES,
};

/// The name of the child entry point, as `--exact` wants it.
const CHILD_TEST: &str = "web_login_child";
const PREFIX: &str = "web-fleet";
const REDIRECT: &str = "http://localhost:3000/callback";
const USER: &str = "alice";
const ENV_REDIS_URL: &str = "WEB_FLEET_REDIS_URL";
const ENV_CALLBACK: &str = "WEB_FLEET_CALLBACK_QUERY";
const READY: &str = "WEB_FLEET_READY";
const GO: &str = "GO";
const RESULT: &str = "WEB_FLEET_RESULT";
/// An upper bound for a child (it takes well under a second): past it, it hangs.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// One process of the web app: its own `WebLogin`, with pending logins and tokens in Redis.
async fn web_login(redis_url: &str) -> WebLogin {
    let redis = RedisStore::connect(redis_url).await.unwrap().prefix(PREFIX);
    WebLogin::new(
        ClientConfig::new(REDIRECT).client_name("web fleet"),
        HttpClient::from_service(http_client(), DEFAULT_MAX_RESPONSE_BYTES),
    )
    .token_store(redis.clone())
    .pending_login_store(redis)
}

/// The browser at the authorization server, which approves at once: the query of the
/// callback URL it is sent back to.
async fn approve(authorization_url: &url::Url) -> String {
    let browser = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = http::Request::get(authorization_url.as_str())
        .body(Empty::new())
        .unwrap();
    let response = browser.request(request).await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    let callback = url::Url::parse(location).unwrap();
    assert!(callback.as_str().starts_with(REDIRECT), "{callback}");
    callback
        .query()
        .expect("the callback carries code and state")
        .to_owned()
}

/// How many pending logins Redis holds.
async fn pending_in_redis(redis: &RedisServer) -> usize {
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{PREFIX}:pending:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

fn code_exchanges(kit: &Testkit) -> Vec<RecordedRequest> {
    kit.requests()
        .into_iter()
        .filter(|r| r.role == ServerRole::Authorization && r.path.ends_with("/token"))
        .filter(|r| r.form_param("grant_type").as_deref() == Some("authorization_code"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_started_in_one_process_completes_in_another() {
    started_here_completed_there(TestkitConfig::default(), "Bearer").await;
}

/// With DPoP (RFC 9449) the child binds the tokens to its own key, which it stores with them:
/// the process that started the login proves possession with that key, not one of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_login_completed_in_another_process_is_usable_here() {
    started_here_completed_there(TestkitConfig::default().dpop(DpopConfig::default()), "DPoP")
        .await;
}

/// The parent starts the login, a child completes it, and the parent's user layer calls the
/// MCP server with the child's token, presented with `scheme`.
async fn started_here_completed_there(config: TestkitConfig, scheme: &str) {
    let redis = RedisServer::start();
    let kit = Testkit::start(config).await.unwrap();
    let login = web_login(&redis.url()).await;
    let url = login.start(USER, &kit.resource_url()).await.unwrap();
    let callback = approve(&url).await;
    assert_eq!(
        pending_in_redis(&redis).await,
        1,
        "the login waits in Redis"
    );

    let mut children = spawn_children(1, &redis.url(), &callback);
    let results = release_together(&mut children);
    assert!(
        results[0].starts_with("ok "),
        "the other process did not complete the login: {}",
        results[0]
    );
    let exchanges = code_exchanges(&kit);
    assert_eq!(exchanges.len(), 1);
    assert_eq!(pending_in_redis(&redis).await, 0, "taken by the child");
    assert!(exchanges[0].form_param("code_verifier").is_some());

    // This process never exchanged a code, yet holds the user's tokens: the child stored them
    // in Redis, and the user's layer here adopts them.
    let stored = login
        .user_store(USER)
        .load_tokens(&kit.resource_url())
        .await
        .unwrap()
        .expect("the child stored the user's tokens in Redis");
    let before = kit.requests().len();
    let service = ServiceBuilder::new()
        .layer(login.layer_for(USER))
        .service(http_client());
    let response = service
        .oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let presented: Vec<String> = kit.requests()[before..]
        .iter()
        .filter(|r| r.role == ServerRole::Resource)
        .filter_map(|r| r.headers.get(http::header::AUTHORIZATION))
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let expected = format!("{scheme} {}", stored.access_token().secret());
    assert_eq!(presented, [expected]);

    // Used once across the fleet: the same callback here is refused.
    let err = login.complete(USER, &callback).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StateMismatch);
    assert_eq!(code_exchanges(&kit).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callback_sent_to_two_processes_completes_once() {
    let redis = RedisServer::start();
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let login = web_login(&redis.url()).await;
    let url = login.start(USER, &kit.resource_url()).await.unwrap();
    let callback = approve(&url).await;

    let mut children = spawn_children(2, &redis.url(), &callback);
    let mut results = release_together(&mut children);
    results.sort();
    assert!(
        results[0].starts_with("err StateMismatch") && results[1].starts_with("ok "),
        "{results:?}"
    );
    assert_eq!(code_exchanges(&kit).len(), 1, "the code is exchanged once");
}

/// Spawns `n` children with the Redis URL and the callback in their environment.
fn spawn_children(n: usize, redis_url: &str, callback: &str) -> Vec<WebChild> {
    (0..n)
        .map(|index| WebChild::spawn(index, redis_url, callback))
        .collect()
}

/// Waits until every child is ready, releases them all at once, and returns each one's
/// result line (`ok …` or `err <kind> …`) once it has exited.
fn release_together(children: &mut [WebChild]) -> Vec<String> {
    let deadline = Instant::now() + CHILD_LIMIT;
    for child in children.iter() {
        child.wait_for_line(READY, deadline);
    }
    for child in children.iter_mut() {
        child.send(GO);
    }
    let results = children
        .iter()
        .map(|child| child.wait_for_line(RESULT, deadline))
        .collect();
    for child in children.iter_mut() {
        child.wait_for_exit(deadline);
    }
    results
}

/// One child process: this test binary running only [`web_login_child`].
struct WebChild {
    index: usize,
    process: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl WebChild {
    fn spawn(index: usize, redis_url: &str, callback: &str) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut process = Command::new(exe)
            .args(["--ignored", "--exact", CHILD_TEST, "--nocapture"])
            .args(["--test-threads", "1"])
            .env(ENV_REDIS_URL, redis_url)
            .env(ENV_CALLBACK, callback)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start child {index}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = process.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdin = process.stdin.take().expect("piped");
        Self {
            index,
            process,
            stdin,
            lines,
        }
    }

    /// The rest of the first line carrying `marker`, after the marker.
    fn wait_for_line(&self, marker: &str, deadline: Instant) -> String {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // libtest prints `test web_login_child ... ` without a line break first.
                Ok(line) => {
                    if let Some((_, rest)) = line.split_once(marker) {
                        return rest.trim().to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("child {} never printed {marker}", self.index)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("child {} ended before {marker}", self.index)
                }
            }
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("cannot send {command} to child {}: {e}", self.index));
    }

    fn wait_for_exit(&mut self, deadline: Instant) {
        loop {
            match self.process.try_wait().unwrap() {
                Some(status) => {
                    assert!(status.success(), "child {} failed: {status}", self.index);
                    return;
                }
                None if Instant::now() >= deadline => {
                    panic!("child {} did not exit in time", self.index)
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for WebChild {
    fn drop(&mut self) {
        // A child still running here is a failed run: do not leave it behind.
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
        }
        let _ = self.process.wait();
    }
}

/// The process that receives the callback, spawned by the tests above with the Redis URL and
/// the callback's query in its environment. It prints its outcome (`ok <resource>` or
/// `err <kind> <message>`) for the parent to judge. Alone it has nothing to do: without that
/// environment it says so and returns, which is why it is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the web_fleet tests"]
async fn web_login_child() {
    let (Ok(redis_url), Ok(callback)) = (std::env::var(ENV_REDIS_URL), std::env::var(ENV_CALLBACK))
    else {
        eprintln!("web_login_child only runs when spawned by the web_fleet tests");
        return;
    };
    // Connected and ready before the parent says go, so racing children race on the take.
    let login = web_login(&redis_url).await;
    println!("{READY}");
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(line.trim(), GO, "the parent went away");
    match login.complete(USER, &callback).await {
        Ok(connection) => println!("{RESULT} ok {}", connection.protected_resource),
        Err(e) => println!("{RESULT} err {:?} {e}", e.kind()),
    }
}
