//! The token store's waits under the layer's time limits (tokio's paused time): the store
//! steps before a flow share its deadline, the writes after it get one of their own, the
//! lock's release before a consent too, and the first request's look in the store and the
//! status never wait on a store that stopped answering. The tokens in hand are kept.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use mcp_oauth_testkit::scripted::{flow_response, json, resource, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{ClientConfig, Error, ErrorKind, HeadlessAuthorizer, OAuthLayer, TokenStore};

mod support;
use support::stalls::*;

/// Sends a request whose stored token is expired and refreshable, through `store` and a
/// 10 s flow deadline (the token endpoint would answer at once): the error, the time it took
/// and how many token requests were made.
async fn refresh_through(store: SlowStore) -> (Error, Duration, usize) {
    let tokens = Arc::new(AtomicUsize::new(0));
    store
        .save_tokens(&format!("{RS}/mcp"), &expired())
        .await
        .unwrap();
    let healthy = Arc::new(AtomicBool::new(false));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10))
        .layer(server(Fault::StallToken, healthy, tokens.clone()));
    let started = tokio::time::Instant::now();
    let error = service.oneshot(request()).await.unwrap_err();
    (error, started.elapsed(), tokens.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn a_refresh_lock_never_given_times_out_at_the_flow_deadline() {
    let (error, _, token_requests) = refresh_through(SlowStore::stuck_lock()).await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("refresh lock within the flow's 10 s deadline"),
        "{error}"
    );
    assert_eq!(token_requests, 0, "no refresh without the lock");
}

#[tokio::test(start_paused = true)]
async fn slow_store_steps_and_the_flow_share_one_deadline() {
    // Each store step alone is within the 10 s deadline. The first contact reads the token
    // (6 s, before any flight); the refresh's flight waits 6 s for the lock, and its reread
    // under the lock passes the deadline, with no time left for the refresh.
    let (error, took, token_requests) = refresh_through(SlowStore {
        read: Duration::from_secs(6),
        lock: Some(Duration::from_secs(6)),
        ..SlowStore::prompt()
    })
    .await;
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("the token store did not read within the flow's 10 s deadline"),
        "{error}"
    );
    assert_eq!(took, Duration::from_secs(6 + 10));
    assert_eq!(token_requests, 0, "no time was left for a refresh");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_stops_answering_after_a_refresh_ends_the_call_and_the_tokens_are_kept() {
    // The refresh gets its tokens; then the store answers no write (the tokens, the flow's
    // record) and never releases its lock. The call ends one more 10 s deadline later, with
    // the refreshed token; the next call uses it from memory, with no second refresh.
    let store = SlowStore {
        stall_writes: true,
        ..SlowStore::prompt()
    };
    let resource = format!("{RS}/mcp");
    // Refreshed where they were issued, as a public client: no discovery, no registration.
    let tokens = refreshable_where_issued();
    store.inner.save_tokens(&resource, &tokens).await.unwrap();
    let token_requests = Arc::new(AtomicUsize::new(0));
    let healthy = Arc::new(AtomicBool::new(false));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10))
        .layer(server(Fault::StallToken, healthy, token_requests.clone()));
    let started = tokio::time::Instant::now();
    let call = tokio::time::timeout(
        Duration::from_secs(3600),
        service.clone().oneshot(request()),
    );
    let response = call
        .await
        .expect("the call waited on the store for an hour")
        .unwrap();
    assert_eq!(response.status(), 200);
    // The tokens' write takes the whole second deadline; the release and the record, past it,
    // are cut at once.
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);

    let started = tokio::time::Instant::now();
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(token_requests.load(Ordering::SeqCst), 1, "refreshed once");
}

#[tokio::test(start_paused = true)]
async fn the_first_request_and_the_status_do_not_wait_on_a_store_that_never_answers() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(unreadable_store())
        .flow_deadline(Duration::from_secs(10));
    let service = layer.clone().layer(server(
        Fault::StallToken,
        Arc::new(AtomicBool::new(false)),
        token_requests.clone(),
    ));
    // The first request's look in the store gives up after 10 s and sends without a token;
    // the 401's flow reads the store again and fails at its own 10 s deadline, and its failure
    // is not recorded in the store within the writes' 10 s.
    let started = tokio::time::Instant::now();
    let call = tokio::time::timeout(Duration::from_secs(3600), service.oneshot(request()));
    let error = call.await.expect("the call waited an hour").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert_eq!(started.elapsed(), Duration::from_secs(10 + 10 + 10));
    assert_eq!(token_requests.load(Ordering::SeqCst), 0);

    let server_url = format!("{RS}/mcp");
    let started = tokio::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(3600), layer.status(&server_url));
    let error = status
        .await
        .expect("the status waited an hour")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(error.is_transient());
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn the_lock_is_given_back_before_consent_even_when_the_refusal_came_late() {
    // The refresh is refused after 9.5 s of the 10 s deadline; the lock (1 s to give back) is
    // released before the new authorization within a deadline of its own, not the 0.5 s left.
    let released = Arc::new(AtomicBool::new(false));
    let store = SlowStore {
        slow_release: Some(Arc::clone(&released)),
        ..SlowStore::prompt()
    };
    let tokens = refreshable_where_issued();
    store
        .inner
        .save_tokens(&format!("{RS}/mcp"), &tokens)
        .await
        .unwrap();
    let server = BoxCloneService::new(service_fn(|req: Req| async move {
        if req.uri().path() == "/token" {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if String::from_utf8_lossy(&body).contains("grant_type=refresh_token") {
                tokio::time::sleep(Duration::from_millis(9500)).await;
                return Ok::<_, Infallible>(full(json(400, json!({"error": "invalid_grant"}))));
            }
            return Ok(full(json(
                200,
                json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}),
            )));
        }
        if let Some(response) = flow_response(&req) {
            return Ok(full(response));
        }
        Ok(full(resource(&req, "at-1")))
    }));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10))
        .layer(server);
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(released.load(Ordering::SeqCst), "the release was cut short");
}
