//! The harness of the `connect` end-to-end tests: runs the command in the background with a
//! captured console, and plays the browser against the testkit (which approves at once).

#![allow(dead_code)] // each test file uses its own part

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use connect::{cli, Console};
use http::header::LOCATION;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::Testkit;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Captures what the command prints, and passes each printed URL line on as it comes.
pub(crate) struct Captured {
    out: Mutex<Vec<String>>,
    err: Mutex<Vec<String>>,
    urls: mpsc::UnboundedSender<String>,
}

impl Console for Captured {
    fn out(&self, line: &str) {
        self.out.lock().unwrap().push(line.to_owned());
    }
    fn err(&self, line: &str) {
        self.err.lock().unwrap().push(line.to_owned());
        if is_url_line(line) {
            let _ = self.urls.send(line.to_owned());
        }
    }
}

/// A line that is nothing but a URL: how the command prints the authorization URL.
pub(crate) fn is_url_line(line: &str) -> bool {
    (line.starts_with("http://") || line.starts_with("https://"))
        && !line.contains(char::is_whitespace)
}

/// One run of the command in the background.
pub(crate) struct Run {
    console: Arc<Captured>,
    urls: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<u8>,
}

impl Run {
    pub(crate) fn start(args: &[&str]) -> Self {
        let (tx, urls) = mpsc::unbounded_channel();
        let console = Arc::new(Captured {
            out: Mutex::default(),
            err: Mutex::default(),
            urls: tx,
        });
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let task = tokio::spawn(cli(args, console.clone() as Arc<dyn Console>));
        Run {
            console,
            urls,
            task,
        }
    }

    pub(crate) async fn next_url(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(20), self.urls.recv())
            .await
            .expect("no authorization URL printed within 20 s")
            .expect("the command ended without printing an authorization URL")
    }

    pub(crate) async fn finish(self) -> (u8, Vec<String>, Vec<String>) {
        let code = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the command did not finish within 30 s")
            .unwrap();
        let out = self.console.out.lock().unwrap().clone();
        let err = self.console.err.lock().unwrap().clone();
        (code, out, err)
    }
}

/// A GET that does not follow redirects, as the browser's first hop; status, Location, page.
pub(crate) async fn get(url: &str) -> (StatusCode, Option<String>, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        location,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The browser: the authorization URL answers 302 to the loopback redirect URI; return that
/// redirect (with the code and state) without delivering it yet.
pub(crate) async fn approve(authorization_url: &str) -> String {
    let (status, location, _) = get(authorization_url).await;
    assert_eq!(status, StatusCode::FOUND, "the testkit approves at once");
    let location = location.expect("a redirect to the loopback receiver");
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    location
}

pub(crate) fn count(kit: &Testkit, suffix: &str) -> usize {
    kit.requests()
        .iter()
        .filter(|r| r.path.ends_with(suffix))
        .count()
}

/// A testkit whose authorization server has a revocation endpoint (RFC 7009), and an empty
/// directory for the connect run's store.
pub(crate) async fn revoking_kit() -> (Testkit, tempfile::TempDir) {
    let config = mcp_oauth_testkit::TestkitConfig::default().revocation(true);
    let kit = Testkit::start(config).await.unwrap();
    (kit, tempfile::tempdir().unwrap())
}

pub(crate) fn store_args<'a>(url: &'a str, store: &'a tempfile::TempDir) -> Vec<&'a str> {
    vec![
        url,
        "--no-browser",
        "--store",
        store.path().to_str().unwrap(),
    ]
}

/// Moves the tokens `connect` stored for `url` in `store` an hour into the past: the next run
/// finds them expired, as a run long after the first would, with no wait (a real one raced the
/// first run against the token's lifetime on a loaded machine). The server still takes them
/// (its tokens live an hour), so a run that sent one anyway would not be refused: each test
/// checks what was sent instead.
pub(crate) async fn expire_stored_tokens(store: &tempfile::TempDir, url: &str) {
    use tower_mcp_oauth::TokenStore;
    let files = tower_mcp_oauth::FileStore::new(store.path()).unwrap();
    let tokens = files
        .load_tokens(url)
        .await
        .unwrap()
        .expect("the first run stored its tokens");
    let expired_at = std::time::SystemTime::now() - Duration::from_secs(3600);
    let expired = tokens
        .with_issued_at(Some(expired_at - Duration::from_secs(3600)))
        .with_expires_at(Some(expired_at));
    files.save_tokens(url, &expired).await.unwrap();
}
