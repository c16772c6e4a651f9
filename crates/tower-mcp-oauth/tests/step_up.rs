//! Step-up over real loopback TCP: the union of scopes, the bound per need, the budget across
//! requests, a grant narrower than asked, and concurrent 403s sharing one step-up.

mod support;

use std::time::Duration;

use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{AuthorizationFailed, ErrorKind};

use support::lifecycle::*;

#[tokio::test]
async fn step_up_asks_for_the_union_of_scopes() {
    let kit = Testkit::start(
        TestkitConfig::default()
            .challenge_scope("mcp:basic")
            .required_scopes(["mcp:basic"])
            .tool_call_scopes(["mcp:write"]),
    )
    .await
    .unwrap();
    let svc = service(layer(&TestClock::default()));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
    let scopes: Vec<_> = kit
        .requests()
        .iter()
        .filter(|r| r.path == "/authorize")
        .map(|r| r.query_param("scope").unwrap())
        .collect();
    assert_eq!(scopes, ["mcp:basic", "mcp:basic mcp:write"]);
    // And then it just works.
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
    assert_eq!(count(&kit, "/authorize"), 2);
}

#[tokio::test]
async fn step_up_stops_at_its_bound() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let svc = service(layer(&TestClock::default()));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    // A resource that will never be satisfied.
    kit.set_override(
        ServerRole::Resource,
        "/mcp",
        CannedResponse::new(403, "").header(
            "www-authenticate",
            r#"Bearer error="insufficient_scope", scope="mcp:admin""#,
        ),
    );
    for attempt in 1..=3 {
        let response = call(&svc, &kit, "tools/list").await;
        assert_eq!(response.status(), 403);
        assert!(
            response.extensions().get::<AuthorizationFailed>().is_none(),
            "attempt {attempt}"
        );
        assert_eq!(count(&kit, "/authorize"), 1 + attempt);
    }
    let response = call(&svc, &kit, "tools/list").await;
    assert_eq!(response.status(), 403);
    let failed = response
        .extensions()
        .get::<AuthorizationFailed>()
        .expect("marked");
    assert_eq!(failed.error().kind(), ErrorKind::StepUpLimit);
    assert_eq!(count(&kit, "/authorize"), 4, "no fourth step-up");
}

#[tokio::test]
async fn a_server_that_refuses_every_token_exhausts_the_budget() {
    let kit = Testkit::start(TestkitConfig::default().issue_refresh_tokens(false))
        .await
        .unwrap();
    let svc =
        service(layer(&TestClock::default()).authorization_budget(2, Duration::from_secs(600)));
    kit.set_override(
        ServerRole::Resource,
        "/mcp",
        CannedResponse::new(401, "").header("www-authenticate", "Bearer"),
    );
    for _ in 0..2 {
        assert_eq!(call(&svc, &kit, "tools/list").await.status(), 401);
    }
    let err = svc
        .clone()
        .oneshot(jsonrpc(&kit.resource_url(), 1, "tools/list", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthorizationLimit);
    assert_eq!(count(&kit, "/authorize"), 2);
}

/// The HTTP client, but every authorization request it sends asks for `mcp:basic` alone,
/// whatever the layer asked (as a user unticking a box would).
fn granting_only_basic() -> impl tower::Service<
    http::Request<tower_mcp_oauth::OAuthBody<support::Body>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = hyper_util::client::legacy::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let client = http_client();
    tower::service_fn(
        move |mut req: http::Request<tower_mcp_oauth::OAuthBody<support::Body>>| {
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
fn holding_the_first_ten<S>(
    inner: S,
) -> (
    impl tower::Service<
            http::Request<tower_mcp_oauth::OAuthBody<support::Body>>,
            Response = S::Response,
            Error = S::Error,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
)
where
    S: tower::Service<http::Request<tower_mcp_oauth::OAuthBody<support::Body>>>
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
        move |req: http::Request<tower_mcp_oauth::OAuthBody<support::Body>>| {
            let inner = inner.clone();
            let first_wave = armed.load(Ordering::SeqCst)
                && req.uri().path() == "/mcp"
                && sent.fetch_add(1, Ordering::SeqCst) < 10;
            let all_out = Arc::clone(&all_out);
            async move {
                if first_wave {
                    all_out.wait().await;
                }
                inner.oneshot(req).await
            }
        },
    );
    (service, arm)
}

/// Ten `tools/call` requests at once through `svc`; their statuses and whether each is marked
/// `AuthorizationFailed`.
async fn ten_tool_calls<S>(svc: &S, kit: &Testkit) -> Vec<(http::StatusCode, bool)>
where
    S: tower::Service<
            http::Request<support::Body>,
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

#[tokio::test]
async fn a_step_up_granted_fewer_scopes_still_retries_with_the_new_token() {
    // The consent step grants only mcp:basic whatever is asked (the inner client rewrites the
    // authorization request's scope, as a user unticking a box would): the step-up's new token
    // lacks mcp:write, the retry gets 403 again, and the caller sees that 403, not an error.
    let kit = Testkit::start(
        TestkitConfig::default()
            .challenge_scope("mcp:basic")
            .required_scopes(["mcp:basic"])
            .tool_call_scopes(["mcp:write"]),
    )
    .await
    .unwrap();
    let narrowing = granting_only_basic();
    let svc = ServiceBuilder::new()
        .layer(layer(&TestClock::default()))
        .service(narrowing);
    let list = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    assert_eq!(svc.clone().oneshot(list).await.unwrap().status(), 200);
    let tool = jsonrpc(
        &kit.resource_url(),
        2,
        "tools/call",
        json!({"name": "test-tool", "arguments": {}}),
    );
    let response = svc.clone().oneshot(tool).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(count(&kit, "/authorize"), 2, "one step-up");
    let bearers: Vec<_> = kit
        .requests()
        .iter()
        .filter(|r| r.path == "/mcp")
        .filter_map(|r| r.bearer())
        .collect();
    assert_ne!(
        bearers[bearers.len() - 1],
        bearers[bearers.len() - 2],
        "the retry used the new token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_403s_share_one_step_up_and_count_once() {
    let kit = Testkit::start(
        TestkitConfig::default()
            .challenge_scope("mcp:basic")
            .required_scopes(["mcp:basic"])
            .tool_call_scopes(["mcp:write"]),
    )
    .await
    .unwrap();
    let svc = service(layer(&TestClock::default()).step_up_attempts(1));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
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
                (
                    response.status(),
                    response.extensions().get::<AuthorizationFailed>().is_some(),
                )
            })
        })
        .collect();
    for call in calls {
        // With a limit of one step-up, ten callers joining it must not count ten.
        assert_eq!(call.await.unwrap(), (http::StatusCode::OK, false));
    }
    assert_eq!(count(&kit, "/authorize"), 2, "the login and one step-up");
}

/// A kit whose resource answers a token lacking `mcp:write` for `tools/call` with `401
/// invalid_token` naming the scopes, where RFC 6750 §3.1 has `403 insufficient_scope`.
async fn kit_answering_missing_scopes_with_401() -> Testkit {
    Testkit::start(
        TestkitConfig::default()
            .challenge_scope("mcp:basic")
            .required_scopes(["mcp:basic"])
            .tool_call_scopes(["mcp:write"])
            .insufficient_scope_as_401(true),
    )
    .await
    .unwrap()
}

fn authorized_scopes(kit: &Testkit) -> Vec<String> {
    kit.requests()
        .iter()
        .filter(|r| r.path == "/authorize")
        .map(|r| r.query_param("scope").unwrap())
        .collect()
}

#[tokio::test]
async fn a_401_for_scopes_a_refresh_cannot_add_steps_up_after_the_refresh() {
    let kit = kit_answering_missing_scopes_with_401().await;
    let svc = service(layer(&TestClock::default()));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    // The 401 may be an expired token's: refreshed first. The refreshed token is refused for
    // the same missing scope, and a refresh cannot add one: the step-up, in the same request.
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
    assert_eq!(
        authorized_scopes(&kit),
        ["mcp:basic", "mcp:basic mcp:write"]
    );
    // And then it just works: no refresh on every request.
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
    assert_eq!(count(&kit, "/authorize"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_for_missing_scopes_share_one_refresh_and_one_step_up() {
    let kit = kit_answering_missing_scopes_with_401().await;
    let (client, arm) = holding_the_first_ten(http_client());
    let svc = ServiceBuilder::new()
        .layer(layer(&TestClock::default()).step_up_attempts(1))
        .service(client);
    let list = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    assert_eq!(svc.clone().oneshot(list).await.unwrap().status(), 200);
    arm.store(true, std::sync::atomic::Ordering::SeqCst);
    // With a limit of one step-up, ten callers joining it must not count ten.
    assert_eq!(
        ten_tool_calls(&svc, &kit).await,
        [(http::StatusCode::OK, false); 10]
    );
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
    assert_eq!(count(&kit, "/authorize"), 2, "the login and one step-up");
}

#[tokio::test]
async fn a_user_just_asked_is_not_asked_again_within_the_same_request() {
    let kit = kit_answering_missing_scopes_with_401().await;
    let svc = service(layer(&TestClock::default()));
    // No token yet: the login asks for the challenge's scope, and the new token is refused
    // for `mcp:write`. The user was asked moments ago: the 401 goes back to the caller.
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 401);
    assert_eq!(authorized_scopes(&kit), ["mcp:basic"]);
    // The next request refreshes, is refused again, and steps up.
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
    assert_eq!(grants(&kit, "refresh_token").len(), 1);
    assert_eq!(
        authorized_scopes(&kit),
        ["mcp:basic", "mcp:basic mcp:write"]
    );
}

#[tokio::test]
async fn a_new_login_refused_for_scopes_is_not_followed_by_a_second_prompt() {
    // No refresh tokens: the 401 to a held token is a new login, which asks for the
    // challenge's scopes and is granted `mcp:basic` alone. The retry is refused for
    // `mcp:write`; the user was asked moments ago, so the 401 goes back to the caller.
    let kit = Testkit::start(
        TestkitConfig::default()
            .challenge_scope("mcp:basic")
            .required_scopes(["mcp:basic"])
            .tool_call_scopes(["mcp:write"])
            .insufficient_scope_as_401(true)
            .issue_refresh_tokens(false),
    )
    .await
    .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer(&TestClock::default()))
        .service(granting_only_basic());
    let list = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    assert_eq!(svc.clone().oneshot(list).await.unwrap().status(), 200);
    let tool = jsonrpc(
        &kit.resource_url(),
        2,
        "tools/call",
        json!({"name": "test-tool", "arguments": {}}),
    );
    assert_eq!(svc.clone().oneshot(tool).await.unwrap().status(), 401);
    assert_eq!(
        count(&kit, "/authorize"),
        2,
        "the login and one more, not a third"
    );
}

#[tokio::test]
async fn a_401_naming_scopes_the_token_holds_is_not_a_step_up() {
    let kit = Testkit::start(TestkitConfig::default().challenge_scope("mcp:basic"))
        .await
        .unwrap();
    let svc = service(layer(&TestClock::default()));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    kit.set_override(
        ServerRole::Resource,
        "/mcp",
        CannedResponse::new(401, "").header(
            "www-authenticate",
            r#"Bearer error="invalid_token", scope="mcp:admin""#,
        ),
    );
    // The refreshed token lacks `mcp:admin`: one step-up, granted.
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 401);
    assert_eq!(
        authorized_scopes(&kit),
        ["mcp:basic", "mcp:basic mcp:admin"]
    );
    // Now the token holds every scope the 401 names: the refusal is about something else,
    // and no scope asked for again would change it.
    for _ in 0..2 {
        assert_eq!(call(&svc, &kit, "tools/list").await.status(), 401);
    }
    assert_eq!(count(&kit, "/authorize"), 2);
}

#[tokio::test]
async fn a_401_for_scopes_never_granted_stops_at_the_step_up_bound() {
    let kit = Testkit::start(TestkitConfig::default().challenge_scope("mcp:basic"))
        .await
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer(&TestClock::default()).step_up_attempts(2))
        .service(granting_only_basic());
    let list = || jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    assert_eq!(svc.clone().oneshot(list()).await.unwrap().status(), 200);
    kit.set_override(
        ServerRole::Resource,
        "/mcp",
        CannedResponse::new(401, "").header(
            "www-authenticate",
            r#"Bearer error="invalid_token", scope="mcp:admin""#,
        ),
    );
    for attempt in 1..=2 {
        let response = svc.clone().oneshot(list()).await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(
            response.extensions().get::<AuthorizationFailed>().is_none(),
            "attempt {attempt}"
        );
        assert_eq!(count(&kit, "/authorize"), 1 + attempt);
    }
    let response = svc.clone().oneshot(list()).await.unwrap();
    assert_eq!(response.status(), 401);
    let failed = response
        .extensions()
        .get::<AuthorizationFailed>()
        .expect("marked");
    assert_eq!(failed.error().kind(), ErrorKind::StepUpLimit);
    assert_eq!(count(&kit, "/authorize"), 3, "no third step-up");
}

/// Never asks anyone: the step-up's authorization is refused before it starts.
struct NoPrompt;

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

#[tokio::test]
async fn a_step_up_no_one_can_be_asked_for_spends_none_of_its_attempts() {
    let kit = Testkit::start(
        TestkitConfig::default()
            .challenge_scope("mcp:basic")
            .required_scopes(["mcp:basic"])
            .tool_call_scopes(["mcp:write"]),
    )
    .await
    .unwrap();
    // Signed in elsewhere (a web app's browser login); this layer cannot ask anyone.
    let store = std::sync::Arc::new(tower_mcp_oauth::MemoryStore::new());
    let login = service(layer(&TestClock::default()).token_store(std::sync::Arc::clone(&store)));
    assert_eq!(call(&login, &kit, "tools/list").await.status(), 200);
    let svc = ServiceBuilder::new()
        .layer(
            tower_mcp_oauth::OAuthLayer::new(
                tower_mcp_oauth::ClientConfig::new(REDIRECT),
                NoPrompt,
            )
            .token_store(store)
            .failure_backoff(Duration::ZERO)
            .step_up_attempts(2),
        )
        .service(http_client());
    // Every 403 says the user must connect, not (after two) that the step-ups ran out.
    for attempt in 1..=4 {
        let response = call(&svc, &kit, "tools/call").await;
        assert_eq!(response.status(), 403);
        let failed = response
            .extensions()
            .get::<AuthorizationFailed>()
            .expect("marked");
        assert_eq!(
            failed.error().kind(),
            ErrorKind::InteractionRequired,
            "attempt {attempt}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_403s_granted_fewer_scopes_ask_the_user_once() {
    // Ten callers meet the same 403 together; the one step-up they share is answered with
    // fewer scopes than asked. Each retries with that answer, whether it joined the step-up
    // or came after it ended; none asks the user again on its own.
    let kit = Testkit::start(
        TestkitConfig::default()
            .challenge_scope("mcp:basic")
            .required_scopes(["mcp:basic"])
            .tool_call_scopes(["mcp:write"]),
    )
    .await
    .unwrap();
    let (client, arm) = holding_the_first_ten(granting_only_basic());
    let svc = ServiceBuilder::new()
        .layer(layer(&TestClock::default()))
        .service(client);
    let list = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    assert_eq!(svc.clone().oneshot(list).await.unwrap().status(), 200);
    arm.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        ten_tool_calls(&svc, &kit).await,
        [(http::StatusCode::FORBIDDEN, false); 10]
    );
    assert_eq!(count(&kit, "/authorize"), 2, "the login and one step-up");
}
