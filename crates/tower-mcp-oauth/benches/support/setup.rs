//! The set-up the benchmarks and the instruction-count examples share: the bearer token every
//! contestant sends, a store already holding it, and the layer over that store. Included by
//! path (`#[path = ...] mod setup;`): the testkit, where the other bench helpers live, sits below
//! this crate and cannot name its types.

// Each includer uses some of these.
#![allow(dead_code)]

use std::hint::black_box;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::Full;
use mcp_oauth_testkit::bench::{hot_path_request_to, trivial_resource};
use tower::{Layer, Service};
use tower_mcp_oauth::web::WebLogin;
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthBody, OAuthLayer, TokenSet,
    TokenStore, TokenType,
};

/// One request through a service that answers at once (every benchmark's trivial resource):
/// made ready, called, its future polled once. Inlined, so a timed loop around it runs the same
/// code as one written out.
#[inline(always)]
pub(crate) fn send_now<S, R>(service: &mut S, request: R) -> S::Response
where
    S: tower::Service<R>,
    S::Error: std::fmt::Debug,
{
    let future = tower::ServiceExt::ready(service)
        .now_or_never()
        .expect("ready at once")
        .unwrap()
        .call(request);
    future.now_or_never().expect("answered at once").unwrap()
}

/// The bearer token of every measurement. It expires, as nearly every real token does (an
/// hour from now, a common lifetime), so each request pays for the expiry check the way real
/// callers do: a token with no expiry skips the clock. The refresh comes 48-60 s before the
/// end of the hour (`RefreshPolicy`'s default skew, less its jitter), long after any run
/// ends: it is never refreshed mid-run.
pub(crate) fn bench_tokens() -> TokenSet {
    expiring(TokenSet::new(
        "bench-token",
        TokenType::Bearer,
        "https://as.bench",
        "client",
    ))
}

/// `tokens`, issued now and expiring in an hour (see [`bench_tokens`]).
pub(crate) fn expiring(tokens: TokenSet) -> TokenSet {
    let now = std::time::SystemTime::now();
    tokens
        .with_issued_at(Some(now))
        .with_expires_at(Some(now + std::time::Duration::from_secs(3600)))
}

/// A memory store holding `tokens` for each of `urls`.
pub(crate) fn store_holding<'a>(
    tokens: &TokenSet,
    urls: impl IntoIterator<Item = &'a str>,
) -> MemoryStore {
    let store = MemoryStore::new();
    for url in urls {
        // In memory: the save completes at once.
        store
            .save_tokens(url, tokens)
            .now_or_never()
            .expect("a memory store does not wait")
            .expect("a memory store saves");
    }
    store
}

/// A layer over `store`, whose first request to a server adopts the token held for it. Its
/// authorizer never runs: every server it is sent to has a token.
pub(crate) fn layer_over(store: impl TokenStore) -> OAuthLayer {
    OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(store)
}

/// The URL of the `i`th of the MCP servers a layer holds tokens for (one origin each), its
/// number padded so that every URL is as long (a request's head is packed and its URI parsed:
/// a longer one costs more, and the comparisons are of the lookup).
pub(crate) fn server_url(i: usize) -> String {
    format!("http://mcp-{i:05}.bench/mcp")
}

/// Sends one request through `service` and checks it carried a token.
pub(crate) fn send_held<S>(service: &mut S, url: &str)
where
    S: Service<
        http::Request<Full<Bytes>>,
        Response = http::Response<http_body_util::Empty<Bytes>>,
        Error = tower_mcp_oauth::Error,
    >,
{
    let response = send_now(service, hot_path_request_to(url, None));
    // A first call adopts the stored token (the store is in memory: it completes at once).
    assert_eq!(black_box(response).status(), 200);
}

/// A layer holding tokens for `held` servers, every one adopted, and the URL of the one in the
/// middle of the insertion order (a scan would reach it halfway).
pub(crate) fn layer_holding(
    held: usize,
) -> (
    impl Service<
        http::Request<Full<Bytes>>,
        Response = http::Response<http_body_util::Empty<Bytes>>,
        Error = tower_mcp_oauth::Error,
    >,
    String,
) {
    let urls: Vec<String> = (0..held).map(server_url).collect();
    let store = store_holding(&bench_tokens(), urls.iter().map(String::as_str));
    let mut service = layer_over(store).layer(tower::service_fn(
        trivial_resource::<OAuthBody<Full<Bytes>>>,
    ));
    for i in 0..held {
        send_held(&mut service, &server_url(i));
    }
    (service, server_url(held / 2))
}

/// A web login with `users` users connected to one server (`server_url(0)`), each user's token
/// adopted by a first call, and the name of the user in the middle.
pub(crate) fn web_login_with(users: usize) -> (WebLogin, String) {
    let url = server_url(0);
    let client = HttpClient::from_fn(|_req| async { Ok(http::Response::new(Bytes::new())) });
    let login = WebLogin::new(ClientConfig::new("https://app.bench/callback"), client)
        .token_store(MemoryStore::new());
    let name = |i: usize| format!("user-{i}");
    for i in 0..users {
        login
            .user_store(&name(i))
            .save_tokens(&url, &bench_tokens())
            .now_or_never()
            .expect("a memory store does not wait")
            .expect("a memory store saves");
        send_as(&login, &name(i), &url);
    }
    (login, name(users / 2))
}

/// What a web app's handler does per request: finds the user's layer, wraps its client in a
/// service made for this request, calls.
pub(crate) fn send_as(login: &WebLogin, user: &str, url: &str) {
    let mut service = login.layer_for(user).layer(tower::service_fn(
        trivial_resource::<OAuthBody<Full<Bytes>>>,
    ));
    send_held(&mut service, url)
}
