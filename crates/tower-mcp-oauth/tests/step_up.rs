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
use support::step_up::*;

#[tokio::test]
async fn step_up_asks_for_the_union_of_scopes() {
    let kit = Testkit::start(write_scoped()).await.unwrap();
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

#[tokio::test]
async fn a_step_up_granted_fewer_scopes_still_retries_with_the_new_token() {
    // The consent step grants only mcp:basic whatever is asked (the inner client rewrites the
    // authorization request's scope, as a user unticking a box would): the step-up's new token
    // lacks mcp:write, the retry gets 403 again, and the caller sees that 403, not an error.
    let kit = Testkit::start(write_scoped()).await.unwrap();
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
    let kit = Testkit::start(write_scoped()).await.unwrap();
    let svc = service(layer(&TestClock::default()).step_up_attempts(1));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    // With a limit of one step-up, ten callers joining it must not count ten.
    assert_eq!(
        ten_tool_calls(&svc, &kit).await,
        [(http::StatusCode::OK, false); 10]
    );
    assert_eq!(count(&kit, "/authorize"), 2, "the login and one step-up");
}

#[tokio::test]
async fn a_step_up_no_one_can_be_asked_for_spends_none_of_its_attempts() {
    let kit = Testkit::start(write_scoped()).await.unwrap();
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

/// Fails each authorization with `kind` while `failures` last, then approves as
/// `HeadlessAuthorizer` does.
struct FailsFirst {
    kind: ErrorKind,
    failures: std::sync::atomic::AtomicU32,
}

impl tower_mcp_oauth::Authorizer for FailsFirst {
    fn authorize(
        &self,
        request: tower_mcp_oauth::AuthorizationRequest,
        client: tower_mcp_oauth::HttpClient,
    ) -> tower_mcp_oauth::BoxFuture<
        'static,
        Result<tower_mcp_oauth::AuthorizationResponse, tower_mcp_oauth::Error>,
    > {
        use std::sync::atomic::Ordering;
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            let kind = self.kind;
            return Box::pin(async move { Err(tower_mcp_oauth::Error::new(kind, "failed")) });
        }
        tower_mcp_oauth::HeadlessAuthorizer::new().authorize(request, client)
    }
}

/// Signed in with `mcp:basic`, then a layer whose step-ups fail `failures` times with `kind`
/// before they are approved, two step-ups at most.
async fn stepping_up_after_failures(
    kit: &Testkit,
    kind: ErrorKind,
    failures: u32,
) -> tower_mcp_oauth::OAuthService<support::HttpClient> {
    let store = std::sync::Arc::new(tower_mcp_oauth::MemoryStore::new());
    let login = service(layer(&TestClock::default()).token_store(std::sync::Arc::clone(&store)));
    assert_eq!(call(&login, kit, "tools/list").await.status(), 200);
    service(
        tower_mcp_oauth::OAuthLayer::new(
            tower_mcp_oauth::ClientConfig::new(REDIRECT),
            FailsFirst {
                kind,
                failures: failures.into(),
            },
        )
        .token_store(store)
        .failure_backoff(Duration::ZERO)
        .step_up_attempts(2),
    )
}

/// A step-up whose flow fails on the server's passing trouble (no answer, a 5xx) spends none
/// of the step-up's attempts: they bound a resource that keeps refusing the tokens it was
/// given, and none was given. Once the server answers, the call goes through.
#[tokio::test]
async fn a_step_up_the_server_failed_spends_none_of_its_attempts() {
    let kit = Testkit::start(write_scoped()).await.unwrap();
    let svc = stepping_up_after_failures(&kit, ErrorKind::Transport, 3).await;
    for attempt in 1..=3 {
        let response = call(&svc, &kit, "tools/call").await;
        assert_eq!(response.status(), 403);
        let failed = response
            .extensions()
            .get::<AuthorizationFailed>()
            .expect("marked");
        assert_eq!(
            failed.error().kind(),
            ErrorKind::Transport,
            "attempt {attempt}"
        );
    }
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
}

/// Nor one that found no one to ask (an authorizer that learns only at the authorization
/// server that a user is needed, as `HeadlessAuthorizer` does at a login page).
#[tokio::test]
async fn a_step_up_no_one_was_asked_for_spends_none_of_its_attempts() {
    let kit = Testkit::start(write_scoped()).await.unwrap();
    let svc = stepping_up_after_failures(&kit, ErrorKind::InteractionRequired, 3).await;
    for attempt in 1..=3 {
        let response = call(&svc, &kit, "tools/call").await;
        let failed = response.extensions().get::<AuthorizationFailed>().unwrap();
        assert_eq!(
            failed.error().kind(),
            ErrorKind::InteractionRequired,
            "attempt {attempt}"
        );
    }
    assert_eq!(call(&svc, &kit, "tools/call").await.status(), 200);
}

/// One the user let time out keeps its attempt: given back, the user would be asked again at
/// every 403.
#[tokio::test]
async fn a_step_up_the_user_let_time_out_spends_its_attempt() {
    let kit = Testkit::start(write_scoped()).await.unwrap();
    let svc = stepping_up_after_failures(&kit, ErrorKind::ConsentTimeout, 3).await;
    for _ in 1..=2 {
        let response = call(&svc, &kit, "tools/call").await;
        let failed = response.extensions().get::<AuthorizationFailed>().unwrap();
        assert_eq!(failed.error().kind(), ErrorKind::ConsentTimeout);
    }
    let response = call(&svc, &kit, "tools/call").await;
    let failed = response.extensions().get::<AuthorizationFailed>().unwrap();
    assert_eq!(failed.error().kind(), ErrorKind::StepUpLimit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_403s_granted_fewer_scopes_ask_the_user_once() {
    // Ten callers meet the same 403 together; the one step-up they share is answered with
    // fewer scopes than asked. Each retries with that answer, whether it joined the step-up
    // or came after it ended; none asks the user again on its own.
    let kit = Testkit::start(write_scoped()).await.unwrap();
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
