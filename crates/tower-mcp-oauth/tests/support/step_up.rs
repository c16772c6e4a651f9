//! What the step-up tests share (step_up.rs, step_up_401.rs): the testkit's configuration
//! with a scope for tool calls, an inner client whose consent grants less than asked, one
//! that holds a burst's first attempts until all are out, and an authorizer that asks no one.
#![allow(dead_code, unused_imports)]

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use tower::ServiceExt;
use tower_mcp_oauth::{AuthorizationFailed, ErrorKind};

use super::{http_client, jsonrpc};

/// Every MCP request needs `mcp:basic` (the scope the 401 names), and `tools/call` needs
/// `mcp:write` too.
pub(crate) fn write_scoped() -> TestkitConfig {
    TestkitConfig::default()
        .challenge_scope("mcp:basic")
        .required_scopes(["mcp:basic"])
        .tool_call_scopes(["mcp:write"])
}

/// The HTTP client, but every authorization request it sends asks for `mcp:basic` alone,
/// whatever the layer asked (as a user unticking a box would).
pub(crate) fn granting_only_basic() -> impl tower::Service<
    http::Request<tower_mcp_oauth::OAuthBody<super::Body>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = hyper_util::client::legacy::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let client = http_client();
    tower::service_fn(
        move |mut req: http::Request<tower_mcp_oauth::OAuthBody<super::Body>>| {
            if req.uri().path().ends_with("/authorize") {
                let mut url = url::Url::parse(&req.uri().to_string()).unwrap();
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "scope" {
                            "mcp:basic".to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
                *req.uri_mut() = url.as_str().parse().unwrap();
            }
            client.clone().oneshot(req)
        },
    )
}

/// `inner`, but once armed, the next ten requests to `/mcp` are held until all ten are out:
/// ten callers' first attempts leave together and meet the same refusal together, however the
/// scheduler runs them (a caller whose first attempt went out after the others' flow ended
/// would carry its tokens: a later request, not the burst a test means).
pub(crate) fn holding_the_first_ten<S>(
    inner: S,
) -> (
    impl tower::Service<
            http::Request<tower_mcp_oauth::OAuthBody<super::Body>>,
            Response = S::Response,
            Error = S::Error,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
)
where
    S: tower::Service<http::Request<tower_mcp_oauth::OAuthBody<super::Body>>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let armed = Arc::new(AtomicBool::new(false));
    let (sent, all_out) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Barrier::new(10)),
    );
    let arm = Arc::clone(&armed);
    let service = tower::service_fn(
        move |req: http::Request<tower_mcp_oauth::OAuthBody<super::Body>>| {
            let inner = inner.clone();
            let first_wave = armed.load(Ordering::SeqCst)
                && req.uri().path() == "/mcp"
                && sent.fetch_add(1, Ordering::SeqCst) < 10;
            let all_out = Arc::clone(&all_out);
            async move {
                if first_wave {
                    // Bounded: a regression that sends fewer than ten fails, not hangs.
                    tokio::time::timeout(std::time::Duration::from_secs(10), all_out.wait())
                        .await
                        .expect("ten first attempts within 10 s");
                }
                inner.oneshot(req).await
            }
        },
    );
    (service, arm)
}

/// Ten `tools/call` requests at once through `svc`; their statuses and whether each is marked
/// `AuthorizationFailed`.
pub(crate) async fn ten_tool_calls<S>(svc: &S, kit: &Testkit) -> Vec<(http::StatusCode, bool)>
where
    S: tower::Service<
            http::Request<super::Body>,
            Response = http::Response<hyper::body::Incoming>,
            Error = tower_mcp_oauth::Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let (svc, url) = (svc.clone(), kit.resource_url());
            tokio::spawn(async move {
                let req = jsonrpc(
                    &url,
                    i,
                    "tools/call",
                    json!({"name": "test-tool", "arguments": {}}),
                );
                let response = svc.oneshot(req).await.unwrap();
                let marked = response.extensions().get::<AuthorizationFailed>().is_some();
                (response.status(), marked)
            })
        })
        .collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

pub(crate) fn authorized_scopes(kit: &Testkit) -> Vec<String> {
    kit.requests()
        .iter()
        .filter(|r| r.path == "/authorize")
        .map(|r| r.query_param("scope").unwrap())
        .collect()
}

/// Never asks anyone: the step-up's authorization is refused before it starts.
pub(crate) struct NoPrompt;

impl tower_mcp_oauth::Authorizer for NoPrompt {
    fn authorize(
        &self,
        _: tower_mcp_oauth::AuthorizationRequest,
        _: tower_mcp_oauth::HttpClient,
    ) -> tower_mcp_oauth::BoxFuture<
        'static,
        Result<tower_mcp_oauth::AuthorizationResponse, tower_mcp_oauth::Error>,
    > {
        unreachable!("check_prompt refuses first")
    }

    fn check_prompt(&self, server: &url::Url) -> Result<(), tower_mcp_oauth::Error> {
        Err(tower_mcp_oauth::Error::new(
            ErrorKind::InteractionRequired,
            format!("connect {server} in the browser first"),
        ))
    }
}
