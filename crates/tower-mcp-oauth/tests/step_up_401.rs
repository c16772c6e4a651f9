//! Step-up after a `401` that names scopes the token lacks (servers that answer so where RFC
//! 6750 §3.1 has `403 insufficient_scope`): refreshed first, then stepped up once in the same
//! request; never a second prompt after a new login; the bound; concurrent callers sharing
//! the refresh and the step-up.

mod support;

use mcp_oauth_testkit::{CannedResponse, ServerRole, Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{AuthorizationFailed, ErrorKind};

use support::lifecycle::*;
use support::step_up::*;

/// A kit whose resource answers a token lacking `mcp:write` for `tools/call` with `401
/// invalid_token` naming the scopes, where RFC 6750 §3.1 has `403 insufficient_scope`.
async fn kit_answering_missing_scopes_with_401() -> Testkit {
    Testkit::start(write_scoped().insufficient_scope_as_401(true))
        .await
        .unwrap()
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
        write_scoped()
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
