//! An expired access token with no refresh token is no token: the layer does not send it, and
//! the `401` that follows authorizes afresh, in a running layer and in a restarted one.

mod support;

use std::sync::Arc;

use mcp_oauth_testkit::{Testkit, TestkitConfig};
use tower_mcp_oauth::MemoryStore;

use support::lifecycle::{call, count, layer, service, TestClock};

fn mcp_bearers(kit: &Testkit) -> Vec<bool> {
    kit.requests()
        .iter()
        .filter(|r| r.path == "/mcp")
        .map(|r| r.bearer().is_some())
        .collect()
}

#[tokio::test]
async fn a_running_layer_authorizes_again_once_its_token_is_spent() {
    let kit = Testkit::start(TestkitConfig::default().issue_refresh_tokens(false))
        .await
        .unwrap();
    let clock = TestClock::default();
    let svc = service(layer(&clock));
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    // Past expiry by the client's clock (the server would still take it).
    clock.set(3600);
    kit.clear_requests();
    assert_eq!(call(&svc, &kit, "tools/list").await.status(), 200);
    assert_eq!(count(&kit, "/authorize"), 1);
    assert_eq!(mcp_bearers(&kit), [false, true]);
}

#[tokio::test]
async fn a_restarted_layer_does_not_adopt_a_spent_token() {
    let kit = Testkit::start(TestkitConfig::default().issue_refresh_tokens(false))
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let clock = TestClock::default();
    let first = service(layer(&clock).token_store(Arc::clone(&store)));
    assert_eq!(call(&first, &kit, "tools/list").await.status(), 200);

    clock.set(7200);
    kit.clear_requests();
    let restarted = service(layer(&clock).token_store(Arc::clone(&store)));
    assert_eq!(call(&restarted, &kit, "tools/list").await.status(), 200);
    assert_eq!(count(&kit, "/authorize"), 1);
    assert_eq!(mcp_bearers(&kit), [false, true]);
    // The new tokens replaced the spent ones in the store.
    let again = service(layer(&clock).token_store(Arc::clone(&store)));
    kit.clear_requests();
    assert_eq!(call(&again, &kit, "tools/list").await.status(), 200);
    assert_eq!(mcp_bearers(&kit), [true]);
}
