//! A logout that runs while the first request to a server reads the store: the tokens that
//! read found are not adopted after the logout forgot them (a logout wipes the cache, then the
//! store; the read began before).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_flow::secrets::RefreshToken;
use serde_json::json;
use tokio::sync::Notify;
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    BoxFuture, ClientConfig, ClientRegistration, Error, HeadlessAuthorizer, HttpClient,
    MemoryStore, OAuthBody, OAuthLayer, Replaced, StoreLock, TokenSet, TokenStore, TokenType,
};

const URL: &str = "https://mcp.example.com/mcp";

/// A memory store whose first token read takes its answer at once and hands it over only when
/// the test says so (a read that began before a logout and ends after it).
#[derive(Default)]
struct HeldRead {
    inner: MemoryStore,
    held: AtomicBool,
    taken: Notify,
    release: Notify,
}

impl TokenStore for HeldRead {
    fn load_tokens<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        Box::pin(async move {
            let answer = self.inner.load_tokens(r).await;
            if !self.held.swap(true, Ordering::SeqCst) {
                self.taken.notify_one();
                self.release.notified().await;
            }
            answer
        })
    }
    fn save_tokens<'a>(&'a self, r: &'a str, t: &'a TokenSet) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_tokens(r, t)
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        r: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        self.inner.compare_and_swap_tokens(r, current, new)
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.inner.load_client(issuer)
    }
    fn save_client<'a>(&'a self, r: &'a ClientRegistration) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_client(r)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.remove_client(issuer)
    }
    fn lock<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        self.inner.lock(r)
    }
}

#[tokio::test]
async fn a_logout_during_the_first_requests_store_read_is_not_undone() {
    let store = Arc::new(HeldRead::default());
    let tokens = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "app")
        .with_refresh_token(Some(RefreshToken::new("rt".into())));
    store.inner.save_tokens(URL, &tokens).await.unwrap();
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::clone(&store) as Arc<dyn TokenStore>);
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let resource = service_fn({
        let seen = Arc::clone(&seen);
        move |req: http::Request<OAuthBody<Full<Bytes>>>| {
            let authorization = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            seen.lock().unwrap().push(authorization);
            async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new()))) }
        }
    });
    let service = layer.clone().layer(resource);
    let first = tokio::spawn(
        service.clone().oneshot(
            http::Request::post(URL)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    );
    // The first request's adoption read has its answer, the tokens; then the logout runs.
    store.taken.notified().await;
    let metadata = HttpClient::from_fn(|_req| async {
        let metadata = json!({"issuer": "https://as.example.com",
            "authorization_endpoint": "https://as.example.com/authorize",
            "token_endpoint": "https://as.example.com/token"});
        Ok(http::Response::new(Bytes::from(metadata.to_string())))
    });
    let logout = layer.logout(URL, &metadata).await.unwrap();
    assert!(logout.resource.is_some(), "the logout found the tokens");
    store.release.notify_one();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    // Sent without the forgotten token, and none is held: the next request has none either.
    let next = http::Request::post(URL)
        .body(Full::new(Bytes::new()))
        .unwrap();
    service.oneshot(next).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [None, None]);
    assert!(!layer.status(URL).await.unwrap().connected);
}
