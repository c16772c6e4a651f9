//! A logout's revocation answered `503` or `429` (tokio's paused time): sent again after the
//! wait the server asks for (RFC 7009 §2.2.1: "the client must assume the token still exists
//! and may retry after a reasonable delay"), a bounded number of times, within the logout's
//! deadline; never sooner than asked, and never for another answer. The logout has forgotten
//! the tokens already: a revocation given up on leaves them valid at the server for good.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use mcp_oauth_flow::secrets::RefreshToken;
use serde_json::json;
use tower_mcp_oauth::{
    ClientConfig, ErrorKind, HeadlessAuthorizer, HttpClient, Logout, MemoryStore, OAuthLayer,
    TokenSet, TokenStore, TokenType,
};

const URL: &str = "https://mcp.example.com/mcp";
const REDIRECT: &str = "http://localhost:3000/callback";

/// The tokens a logout forgets and revokes: a refresh token and an access token, issued by
/// `https://as.example.com` to a public client.
fn held() -> TokenSet {
    TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "app")
        .with_refresh_token(Some(RefreshToken::new("rt".into())))
        .with_token_endpoint(
            Some("https://as.example.com/token".into()),
            Some(mcp_oauth_flow::client::ClientAuthMethod::None),
        )
}

/// An answer of the revocation endpoint: a status and its `Retry-After`, if any.
type Answer = (StatusCode, Option<&'static str>);

/// Not an answer: the revocation endpoint never answers this request.
const STALL: Answer = (StatusCode::IM_A_TEAPOT, None);

/// The authorization server: its metadata, and a revocation endpoint giving `script`'s answers
/// in turn, then `200`. Each revocation's arrival (paused time since the start) is recorded.
struct Server {
    client: HttpClient,
    arrivals: Arc<Mutex<Vec<Duration>>>,
    /// The token each revocation named, in the order they arrived.
    revoked: Arc<Mutex<Vec<String>>>,
}

fn server(script: &[Answer]) -> Server {
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let started = tokio::time::Instant::now();
    let client = HttpClient::from_fn({
        let (arrivals, revoked) = (Arc::clone(&arrivals), Arc::clone(&revoked));
        move |req| {
            let (script, arrivals) = (Arc::clone(&script), Arc::clone(&arrivals));
            let revoked = Arc::clone(&revoked);
            async move {
                if req.uri().path() == "/revoke" {
                    arrivals.lock().unwrap().push(started.elapsed());
                    let token = url::form_urlencoded::parse(req.body())
                        .find(|(k, _)| k == "token")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    revoked.lock().unwrap().push(token);
                    let next = script.lock().unwrap().pop_front();
                    let (status, retry_after) = next.unwrap_or((StatusCode::OK, None));
                    if (status, retry_after) == STALL {
                        std::future::pending::<()>().await;
                    }
                    let mut response = http::Response::new(Bytes::new());
                    *response.status_mut() = status;
                    if let Some(after) = retry_after {
                        response
                            .headers_mut()
                            .insert(http::header::RETRY_AFTER, after.parse().unwrap());
                    }
                    return Ok(response);
                }
                let metadata = json!({
                    "issuer": "https://as.example.com",
                    "authorization_endpoint": "https://as.example.com/authorize",
                    "token_endpoint": "https://as.example.com/token",
                    "revocation_endpoint": "https://as.example.com/revoke"});
                Ok(http::Response::new(Bytes::from(metadata.to_string())))
            }
        }
    });
    Server {
        client,
        arrivals,
        revoked,
    }
}

/// Logs out of `held()` through `server` under `layer`; the logout's result and when each
/// revocation arrived.
async fn log_out(layer: OAuthLayer, server: &Server) -> (Logout, Vec<Duration>) {
    let store = Arc::new(MemoryStore::new());
    store.save_tokens(URL, &held()).await.unwrap();
    let layer = layer.token_store(Arc::clone(&store) as Arc<dyn TokenStore>);
    let logout = tokio::time::timeout(Duration::from_secs(3600), layer.logout(URL, &server.client))
        .await
        .expect("the logout waited an hour")
        .unwrap();
    assert!(store.load_tokens(URL).await.unwrap().is_none());
    let arrivals = server.arrivals.lock().unwrap().clone();
    (logout, arrivals)
}

fn layer() -> OAuthLayer {
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn a_revocation_deferred_by_503_is_sent_again_after_the_wait_asked_and_done() {
    let server = server(&[(StatusCode::SERVICE_UNAVAILABLE, Some("2"))]);
    let (logout, arrivals) = log_out(layer(), &server).await;
    assert!(logout.all_revoked(), "{logout:?}");
    // Both first (the deferral holds the access token's back no more than the refresh
    // token's), then the refresh token's again, after the two seconds asked.
    assert_eq!(arrivals, [secs(0), secs(0), secs(2)]);
}

#[tokio::test(start_paused = true)]
async fn a_429_without_retry_after_waits_a_second_and_a_zero_wait_none() {
    // The refresh token's: 429, then (after a second) 429 asking for no wait, then done; the
    // access token's is done at once.
    let server = server(&[
        (StatusCode::TOO_MANY_REQUESTS, None),
        (StatusCode::OK, None),
        (StatusCode::TOO_MANY_REQUESTS, Some("0")),
    ]);
    let (logout, arrivals) = log_out(layer(), &server).await;
    assert!(logout.all_revoked(), "{logout:?}");
    assert_eq!(arrivals, [secs(0), secs(0), secs(1), secs(1)]);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_stays_unavailable_is_tried_three_times_a_token_and_reported() {
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, Some("1"));
    let server = server(&[unavailable; 6]);
    let (logout, arrivals) = log_out(layer(), &server).await;
    assert_eq!(
        arrivals,
        [0, 0, 1, 1, 2, 2].map(secs),
        "the first sends and two rounds of retries"
    );
    assert_eq!(logout.revocations.len(), 2);
    for revocation in &logout.revocations {
        let error = revocation.result.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedStatus, "{error:#}");
        assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
}

#[tokio::test(start_paused = true)]
async fn no_retry_sooner_than_asked_nor_after_another_answer() {
    // Longer than a logout waits; a date; a plain server error; a refusal.
    for (answer, kind) in [
        (
            (StatusCode::SERVICE_UNAVAILABLE, Some("120")),
            ErrorKind::UnexpectedStatus,
        ),
        (
            (
                StatusCode::TOO_MANY_REQUESTS,
                Some("Wed, 21 Oct 2026 07:28:00 GMT"),
            ),
            ErrorKind::UnexpectedStatus,
        ),
        (
            (StatusCode::INTERNAL_SERVER_ERROR, None),
            ErrorKind::UnexpectedStatus,
        ),
        (
            (StatusCode::BAD_REQUEST, None),
            ErrorKind::RevocationRefused,
        ),
    ] {
        let server = server(&[answer]);
        let (logout, arrivals) = log_out(layer(), &server).await;
        assert_eq!(arrivals, [secs(0), secs(0)], "{answer:?}: not sent again");
        let error = logout.revocations[0].result.as_ref().unwrap_err();
        assert_eq!(error.kind(), kind, "{answer:?}");
        assert!(logout.revocations[1].result.is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn the_waits_stay_within_the_logouts_deadline() {
    // A 3 s deadline for the revocations; the server asks for 5 s (within what a retry
    // honours) and is unavailable throughout.
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, Some("5"));
    let server = server(&[unavailable; 6]);
    let started = tokio::time::Instant::now();
    let (logout, arrivals) = log_out(layer().flow_deadline(secs(3)), &server).await;
    // Both are sent; the wait is cut at the deadline and not followed by a send: their
    // outcomes are the server's answers.
    assert_eq!(arrivals, [secs(0), secs(0)]);
    assert_eq!(started.elapsed(), secs(3));
    for revocation in &logout.revocations {
        let error = revocation.result.as_ref().unwrap_err();
        assert_eq!(
            error.status(),
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "{error:#}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_gets_no_answer_leaves_the_servers_answer() {
    let server = server(&[
        (StatusCode::SERVICE_UNAVAILABLE, Some("1")),
        (StatusCode::OK, None),
        STALL,
    ]);
    let layer = layer().request_timeout(secs(2));
    let (logout, arrivals) = log_out(layer, &server).await;
    assert_eq!(arrivals, [secs(0), secs(0), secs(1)]);
    // The retry ran out of time: what the refresh token's revocation came to is still the
    // server's 503 ("the token may still be valid"), not the retry's timeout.
    let refresh = logout.revocations[0].result.as_ref().unwrap_err();
    assert_eq!(
        refresh.status(),
        Some(StatusCode::SERVICE_UNAVAILABLE),
        "{refresh:#}"
    );
    assert!(logout.revocations[1].result.is_ok());
}

/// This process holds tokens another process has since refreshed: the store's newer ones are
/// revoked first, and the server defers their refresh token. The process's own tokens are not
/// held back behind that wait: every first request goes out, then the deferred one again.
#[tokio::test(start_paused = true)]
async fn the_processes_own_tokens_are_not_held_behind_a_deferral_of_the_stores() {
    use http_body_util::Full;
    use tower::{Layer, ServiceExt};
    let server = server(&[(StatusCode::SERVICE_UNAVAILABLE, Some("2"))]);
    let store = Arc::new(MemoryStore::new());
    store.save_tokens(URL, &held()).await.unwrap();
    let layer = layer().token_store(Arc::clone(&store) as Arc<dyn TokenStore>);
    // A request through the layer adopts the stored tokens into its cache.
    let resource = tower::service_fn(
        |_req: http::Request<tower_mcp_oauth::OAuthBody<Full<Bytes>>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        },
    );
    let request = http::Request::post(URL)
        .body(Full::new(Bytes::new()))
        .unwrap();
    layer
        .clone()
        .layer(resource)
        .oneshot(request)
        .await
        .unwrap();
    // Another process refreshed them.
    let newer = TokenSet::new("at-2", TokenType::Bearer, "https://as.example.com", "app")
        .with_refresh_token(Some(RefreshToken::new("rt-2".into())))
        .with_token_endpoint(
            Some("https://as.example.com/token".into()),
            Some(mcp_oauth_flow::client::ClientAuthMethod::None),
        );
    store.save_tokens(URL, &newer).await.unwrap();

    let logout = tokio::time::timeout(Duration::from_secs(3600), layer.logout(URL, &server.client))
        .await
        .unwrap()
        .unwrap();
    assert!(logout.all_revoked(), "{logout:?}");
    assert_eq!(
        *server.revoked.lock().unwrap(),
        ["rt-2", "at-2", "rt", "at", "rt-2"]
    );
    assert_eq!(*server.arrivals.lock().unwrap(), [0, 0, 0, 0, 2].map(secs));
}
