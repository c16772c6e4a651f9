//! A logout under the layer's time limits (tokio's paused time): the tokens are forgotten
//! before the revocation, whose requests end at the request timeout, and a store that stalls
//! on the wipe does not cost the revocations.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mcp_oauth_flow::secrets::RefreshToken;
use serde_json::json;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthLayer, TokenSet,
    TokenStore, TokenType,
};

mod support;
use support::stalls::*;

const URL: &str = "https://mcp.example.com/mcp";

/// The tokens a logout forgets and revokes: issued by `https://as.example.com` to a public
/// client.
fn held() -> TokenSet {
    TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "app")
        .with_refresh_token(Some(RefreshToken::new("rt".into())))
        .with_token_endpoint(
            Some("https://as.example.com/token".into()),
            Some(mcp_oauth_flow::client::ClientAuthMethod::None),
        )
}

/// The authorization server: its metadata, and a revocation endpoint that confirms (counted
/// in `revoked`) or never answers. Each answer takes `round_trip`: work that would answer at
/// once could still win a race against a spent deadline.
fn authorization_server(
    round_trip: Duration,
    revocations_answer: bool,
    revoked: Arc<AtomicUsize>,
) -> HttpClient {
    HttpClient::from_fn(move |req| {
        let revoked = Arc::clone(&revoked);
        async move {
            tokio::time::sleep(round_trip).await;
            if req.uri().path() == "/revoke" {
                if !revocations_answer {
                    std::future::pending::<()>().await;
                }
                revoked.fetch_add(1, Ordering::SeqCst);
            }
            let metadata = json!({
                "issuer": "https://as.example.com",
                "authorization_endpoint": "https://as.example.com/authorize",
                "token_endpoint": "https://as.example.com/token",
                "revocation_endpoint": "https://as.example.com/revoke"});
            Ok(http::Response::new(Bytes::from(metadata.to_string())))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_logout_whose_revocation_never_answers_forgets_first_and_ends_at_the_request_timeout() {
    let store = Arc::new(MemoryStore::new());
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&store) as Arc<dyn TokenStore>)
        .request_timeout(Duration::from_secs(5));
    let client = authorization_server(Duration::ZERO, false, Arc::default());

    // The app gives up on the logout after a second: the tokens are gone already.
    store.save_tokens(URL, &held()).await.unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(1), layer.logout(URL, &client)).await;
    assert!(cut.is_err(), "the revocation cannot have answered");
    assert!(store.load_tokens(URL).await.unwrap().is_none());

    // Left to run, it ends on its own: each revocation cut at the request timeout.
    store.save_tokens(URL, &held()).await.unwrap();
    let started = tokio::time::Instant::now();
    let logout = tokio::time::timeout(Duration::from_secs(3600), layer.logout(URL, &client))
        .await
        .expect("the logout waited an hour")
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5 + 5));
    assert_eq!(logout.revocations.len(), 2);
    for revocation in &logout.revocations {
        let error = revocation.result.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    }
    assert!(store.load_tokens(URL).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_logout_over_a_store_that_stalls_still_revokes_the_tokens() {
    // Reads answer; the write that forgets the tokens never does.
    let store = SlowStore {
        stall_writes: true,
        ..SlowStore::prompt()
    };
    store.inner.save_tokens(URL, &held()).await.unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store)
        .flow_deadline(Duration::from_secs(10));
    let revoked = Arc::new(AtomicUsize::new(0));
    let client = authorization_server(Duration::from_millis(5), true, Arc::clone(&revoked));
    let started = tokio::time::Instant::now();
    let logout = tokio::time::timeout(Duration::from_secs(3600), layer.logout(URL, &client))
        .await
        .expect("the logout waited an hour");
    // The store's failure is the logout's error, after its 10 s; both tokens were revoked
    // anyway, within a deadline of their own.
    let error = logout.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    // The store's 10 s, then three round trips (metadata, two revocations).
    assert_eq!(started.elapsed(), Duration::from_millis(10_000 + 3 * 5));
    assert_eq!(revoked.load(Ordering::SeqCst), 2);
}
