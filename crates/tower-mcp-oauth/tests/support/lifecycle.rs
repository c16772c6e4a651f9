//! Helpers shared by lifecycle.rs and step_up.rs: a clock the test moves, the
//! layer and service they use, and views of the testkit's request log.
#![allow(dead_code, unused_imports)] // each test file uses its own subset

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{http_client, jsonrpc, HttpClient};
use mcp_oauth_testkit::{CannedResponse, RecordedRequest, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    AuthorizationFailed, ClientConfig, ErrorKind, FileStore, HeadlessAuthorizer, OAuthLayer,
    OAuthService, RefreshPolicy, TokenStore,
};

pub(crate) const REDIRECT: &str = "http://localhost:3000/callback";

/// Wall-clock time (or, [`frozen`](Self::frozen), the moment it was made) plus an offset the
/// test moves forward.
#[derive(Clone, Default)]
pub(crate) struct TestClock(Arc<AtomicI64>, Option<SystemTime>);

impl TestClock {
    /// A clock that moves only when the test sets it: for a test whose margins are seconds,
    /// which a loaded machine's real time would eat.
    pub(crate) fn frozen() -> Self {
        Self(Arc::default(), Some(SystemTime::now()))
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.1.unwrap_or_else(SystemTime::now)
            + Duration::from_secs(self.0.load(Ordering::SeqCst) as u64)
    }
    pub(crate) fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

pub(crate) fn layer(clock: &TestClock) -> OAuthLayer {
    let clock = clock.clone();
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .refresh_policy(RefreshPolicy::default().jitter(0.0))
        .failure_backoff(Duration::ZERO)
        .clock(move || clock.now())
}

pub(crate) fn service(layer: OAuthLayer) -> OAuthService<HttpClient> {
    ServiceBuilder::new().layer(layer).service(http_client())
}

pub(crate) async fn call(
    service: &OAuthService<HttpClient>,
    kit: &Testkit,
    method: &str,
) -> http::Response<hyper::body::Incoming> {
    let params = if method == "tools/call" {
        json!({"name": "test-tool", "arguments": {}})
    } else {
        json!({})
    };
    service
        .clone()
        .oneshot(jsonrpc(&kit.resource_url(), 1, method, params))
        .await
        .unwrap()
}

pub(crate) fn grants(kit: &Testkit, grant: &str) -> Vec<RecordedRequest> {
    kit.requests()
        .into_iter()
        .filter(|r| {
            r.path.ends_with("/token") && r.form_param("grant_type").as_deref() == Some(grant)
        })
        .collect()
}

pub(crate) fn count(kit: &Testkit, suffix: &str) -> usize {
    kit.requests()
        .iter()
        .filter(|r| r.path.ends_with(suffix))
        .count()
}

pub(crate) fn last_bearer(kit: &Testkit) -> Option<String> {
    kit.requests()
        .iter()
        .rev()
        .find(|r| r.path == "/mcp")
        .and_then(|r| r.bearer())
}

/// An authorizer that waits for a go signal, like a user at the browser.
pub(crate) struct SlowUser(
    pub(crate) Arc<tokio::sync::Notify>,
    pub(crate) Arc<std::sync::atomic::AtomicBool>,
);

impl tower_mcp_oauth::Authorizer for SlowUser {
    fn authorize(
        &self,
        request: tower_mcp_oauth::AuthorizationRequest,
        client: tower_mcp_oauth::HttpClient,
    ) -> tower_mcp_oauth::BoxFuture<
        'static,
        Result<tower_mcp_oauth::AuthorizationResponse, tower_mcp_oauth::Error>,
    > {
        let (go, asked) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            asked.store(true, Ordering::SeqCst);
            go.notified().await;
            tower_mcp_oauth::Authorizer::authorize(&HeadlessAuthorizer::new(), request, client)
                .await
        })
    }
}
