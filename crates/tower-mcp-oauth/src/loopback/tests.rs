//! The receiver over real loopback TCP, with the test playing the browser.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_flow::{
    authorization::{AuthorizationRequest, AuthorizationResponse},
    secrets::CsrfToken,
    Error, ErrorKind,
};
use tokio::task::JoinHandle;

use super::{LoopbackBuilder, LoopbackHost, LoopbackReceiver};
use crate::{Authorizer, HttpClient};

/// A receiver that records the URLs it announces instead of printing them.
async fn receiver(builder: LoopbackBuilder) -> (LoopbackReceiver, Arc<Mutex<Vec<String>>>) {
    let announced = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&announced);
    let receiver = builder
        .on_authorization_url(move |url| sink.lock().unwrap().push(url.to_string()))
        .bind()
        .await
        .unwrap();
    (receiver, announced)
}

fn request(receiver: &LoopbackReceiver, state: &str) -> AuthorizationRequest {
    request_to(receiver.redirect_uri(), state)
}

fn request_to(redirect_uri: &str, state: &str) -> AuthorizationRequest {
    AuthorizationRequest::new(
        &"https://as.example.com/authorize".parse().unwrap(),
        "client",
        redirect_uri,
        "challenge",
        CsrfToken::new(state.to_owned()),
        None,
        None,
        "https://as.example.com",
    )
}

fn no_http() -> HttpClient {
    HttpClient::from_fn(|_| async {
        Err(Error::new(
            ErrorKind::Transport,
            "the receiver must not send requests",
        ))
    })
}

type Waiting = JoinHandle<Result<AuthorizationResponse, Error>>;

/// Starts a flow and waits until it is registered.
async fn start(receiver: &LoopbackReceiver, state: &str) -> Waiting {
    let before = receiver.waiting();
    let waiting = tokio::spawn(receiver.authorize(request(receiver, state), no_http()));
    until(|| receiver.waiting() > before).await;
    waiting
}

async fn until(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

/// A GET as a browser sends it; the status and the page.
async fn browse(url: &str) -> (StatusCode, String) {
    send(
        http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

async fn send(request: http::Request<Full<Bytes>>) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Whether `waiting` is still pending after the receiver has answered everything sent so far.
async fn still_waiting(waiting: &Waiting) -> bool {
    tokio::time::sleep(Duration::from_millis(50)).await;
    !waiting.is_finished()
}

#[tokio::test]
async fn an_ephemeral_port_on_127_0_0_1_by_default() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let addr = receiver.local_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert_eq!(
        receiver.redirect_uri(),
        format!("http://127.0.0.1:{}/callback", addr.port())
    );
}

#[tokio::test]
async fn a_fixed_port_is_used_and_held_until_the_last_clone_is_dropped() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (receiver, _) = receiver(LoopbackReceiver::builder().port(free).path("/cb")).await;
    assert_eq!(
        receiver.redirect_uri(),
        format!("http://127.0.0.1:{free}/cb")
    );
    // The port stays taken while any clone lives: a second receiver cannot have it.
    let clone = receiver.clone();
    drop(receiver);
    let err = LoopbackReceiver::builder()
        .port(free)
        .bind()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CallbackListener);
    assert!(err.to_string().contains(&free.to_string()), "{err}");
    // After the last clone, the port is released (the accept loop is aborted asynchronously).
    drop(clone);
    let mut rebound = None;
    for _ in 0..100 {
        if let Ok(r) = LoopbackReceiver::builder().port(free).bind().await {
            rebound = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rebound.is_some(), "port {free} was not released");
}

#[tokio::test]
async fn ipv6_and_localhost_hosts() {
    // Some CI sandboxes have no IPv6 loopback; there an Ipv6 receiver must fail to bind, and
    // a localhost one must still work on IPv4.
    let has_ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let v6 = LoopbackReceiver::builder()
        .host(LoopbackHost::Ipv6)
        .bind()
        .await;
    match v6 {
        Ok(v6) => assert!(v6.redirect_uri().starts_with("http://[::1]:")),
        Err(e) => assert!(!has_ipv6 && e.kind() == ErrorKind::CallbackListener, "{e}"),
    }
    let (named, _) = receiver(LoopbackReceiver::builder().host(LoopbackHost::Localhost)).await;
    let port = named.local_addr().port();
    assert_eq!(
        named.redirect_uri(),
        format!("http://localhost:{port}/callback")
    );
    // A browser may resolve localhost to either family: both reach the receiver.
    let mut urls = vec![format!("http://127.0.0.1:{port}/elsewhere")];
    if has_ipv6 {
        urls.push(format!("http://[::1]:{port}/elsewhere"));
    }
    for url in urls {
        assert_eq!(browse(&url).await.0, StatusCode::NOT_FOUND, "{url}");
    }
}

#[tokio::test]
async fn localhost_refuses_a_port_another_process_holds_on_ipv6() {
    // Another listener on [::1] at the port: a browser resolving localhost would reach it
    // first and hand it the code and state.
    let Ok(squatter) = std::net::TcpListener::bind("[::1]:0") else {
        // No IPv6 loopback here (some sandboxes), so nothing can listen there: a fixed port
        // binds on IPv4 alone, and the browser's refused ::1 attempt falls back to it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (named, _) = receiver(
            LoopbackReceiver::builder()
                .host(LoopbackHost::Localhost)
                .port(port),
        )
        .await;
        assert_eq!(named.local_addr().port(), port);
        return;
    };
    let port = squatter.local_addr().unwrap().port();
    let taken = LoopbackReceiver::builder()
        .host(LoopbackHost::Localhost)
        .port(port)
        .bind()
        .await
        .expect_err("a receiver whose [::1] side is another's");
    assert_eq!(taken.kind(), ErrorKind::CallbackListener, "{taken}");
    assert!(taken.to_string().contains("another process"), "{taken}");
    // The IPv4 side is given back with the error: the same port binds there now.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("127.0.0.1 released");
    drop(squatter);
    // Free on both: the same fixed port works.
    let (named, _) = receiver(
        LoopbackReceiver::builder()
            .host(LoopbackHost::Localhost)
            .port(port),
    )
    .await;
    assert_eq!(named.local_addr().port(), port);
}

#[tokio::test]
async fn the_right_state_completes_the_flow() {
    let (receiver, announced) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "the-state").await;
    // The URL was handed out once, before the wait.
    let urls = announced.lock().unwrap().clone();
    assert_eq!(urls.len(), 1);
    assert!(urls[0].starts_with("https://as.example.com/authorize?"));

    let (status, page) = browse(&format!(
        "{}?code=the-code&state=the-state&iss=https%3A%2F%2Fas.example.com",
        receiver.redirect_uri()
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("close this window"), "{page}");
    assert!(!page.contains("the-code") && !page.contains("the-state"));

    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.code.unwrap().secret(), "the-code");
    assert_eq!(response.iss.as_deref(), Some("https://as.example.com"));
    assert_eq!(receiver.waiting(), 0);
    // Exactly one callback per flow: a replay (the tab reloaded) is told it was received,
    // and reaches nothing.
    let (status, page) = browse(&format!(
        "{}?code=the-code&state=the-state",
        receiver.redirect_uri()
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("already"), "{page}");
    assert_eq!(receiver.waiting(), 0);
}

#[tokio::test]
async fn an_error_response_is_shown_and_returned() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "s").await;
    let (status, page) = browse(&format!(
        "{}?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state=s",
        receiver.redirect_uri()
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("access_denied"), "{page}");
    assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"), "{page}");
    // The layer turns it into AuthorizationDenied; the receiver passes it on as it came.
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.error.as_deref(), Some("access_denied"));
    assert!(response.code.is_none());
}

#[tokio::test]
async fn a_wrong_state_gets_an_error_page_and_ends_the_flow_at_once() {
    // A forged state, no state, and an error response without the flow's state.
    for query in ["code=c&state=zz-forged-zz", "code=c", "error=access_denied"] {
        let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
        let waiting = start(&receiver, "expected").await;
        let (status, page) = browse(&format!("{}?{query}", receiver.redirect_uri())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(page.contains("does not match"), "{page}");
        assert!(page.contains("stopped"), "{page}");
        // No waiting for the timeout (5 minutes): the flow has its error already.
        let error = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the flow ends at once")
            .unwrap()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::StateMismatch, "{query}");
        assert!(
            error.to_string().contains(receiver.redirect_uri()),
            "{error}"
        );
        assert!(
            !error.to_string().contains("zz-forged"),
            "never echoed: {error}"
        );
        assert_eq!(receiver.waiting(), 0);
        // The genuine callback, too late, finds nobody.
        let (status, page) = browse(&format!(
            "{}?code=real&state=expected",
            receiver.redirect_uri()
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("not waiting"), "{page}");
    }
}

#[tokio::test]
async fn a_foreign_iss_gets_an_error_page_and_is_handed_on_for_the_flow_to_refuse() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "s").await;
    let (status, page) = browse(&format!(
        "{}?code=c&state=s&iss=https%3A%2F%2Fevil.example.com",
        receiver.redirect_uri()
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Unexpected authorization server"), "{page}");
    // The flow's RFC 9207 check turns it into IssuerParameterMismatch before any token request
    // (tests/callback_integrity.rs shows it end to end).
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.iss.as_deref(), Some("https://evil.example.com"));
}

#[tokio::test]
async fn other_paths_and_methods_do_not_end_the_wait() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "s").await;
    let origin = format!("http://{}", receiver.local_addr());
    for path in [
        "/",
        "/favicon.ico",
        "/callback/x",
        "/callbackx?code=c&state=s",
    ] {
        let (status, _) = browse(&format!("{origin}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let post = http::Request::post(format!("{}?code=c&state=s", receiver.redirect_uri()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(post).await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert!(still_waiting(&waiting).await);
    let (status, _) = browse(&format!("{}?code=c&state=s", receiver.redirect_uri())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(waiting.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_timeout_is_a_consent_timeout_naming_the_redirect_uri() {
    let (receiver, _) = receiver(LoopbackReceiver::builder().timeout(Duration::from_secs(1))).await;
    let waiting = start(&receiver, "s").await;
    // Requests that are no callback end nothing.
    browse(&format!("http://{}/favicon.ico", receiver.local_addr())).await;
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConsentTimeout);
    let text = err.to_string();
    assert!(text.contains(receiver.redirect_uri()), "{text}");
    assert_eq!(receiver.waiting(), 0);
}

#[tokio::test]
async fn dropping_the_flow_stops_waiting_but_keeps_the_listener() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "cancelled").await;
    waiting.abort();
    until(|| receiver.waiting() == 0).await;
    let (status, page) = browse(&format!(
        "{}?code=c&state=cancelled",
        receiver.redirect_uri()
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not waiting"), "{page}");
    // Same redirect URI, next flow.
    let next = start(&receiver, "next").await;
    browse(&format!("{}?code=c2&state=next", receiver.redirect_uri())).await;
    assert_eq!(next.await.unwrap().unwrap().code.unwrap().secret(), "c2");
}

#[tokio::test]
async fn concurrent_flows_each_get_their_own_callback() {
    let (receiver, announced) = receiver(LoopbackReceiver::builder()).await;
    let a = start(&receiver, "state-a").await;
    let b = start(&receiver, "state-b").await;
    assert_eq!(announced.lock().unwrap().len(), 2);
    browse(&format!(
        "{}?code=for-b&state=state-b",
        receiver.redirect_uri()
    ))
    .await;
    browse(&format!(
        "{}?code=for-a&state=state-a",
        receiver.redirect_uri()
    ))
    .await;
    assert_eq!(a.await.unwrap().unwrap().code.unwrap().secret(), "for-a");
    assert_eq!(b.await.unwrap().unwrap().code.unwrap().secret(), "for-b");
}

#[tokio::test]
async fn a_request_for_another_redirect_uri_fails_at_once() {
    let (receiver, announced) = receiver(LoopbackReceiver::builder()).await;
    let err = receiver
        .authorize(request_to("http://127.0.0.1:1/callback", "s"), no_http())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRedirectUri);
    assert!(
        err.to_string().contains("LoopbackReceiver::redirect_uri"),
        "{err}"
    );
    assert!(announced.lock().unwrap().is_empty());
    assert_eq!(receiver.waiting(), 0);
}

#[tokio::test]
async fn a_bad_path_is_refused_at_bind() {
    for path in ["callback", "/cb?x=1", "/cb#f"] {
        let err = LoopbackReceiver::builder()
            .path(path)
            .bind()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRedirectUri, "{path}");
    }
}

#[tokio::test]
async fn debug_shows_no_secret() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let _waiting = start(&receiver, "secret-state").await;
    let debug = format!("{receiver:?}");
    assert!(debug.contains("waiting: 1"), "{debug}");
    assert!(!debug.contains("secret-state"), "{debug}");
}

#[tokio::test]
async fn an_idle_connection_does_not_block_the_callback() {
    let (receiver, _) = receiver(LoopbackReceiver::builder()).await;
    let waiting = start(&receiver, "s").await;
    // Connected, never sends a request (a preconnecting browser, a port scanner).
    let _idle = tokio::net::TcpStream::connect(receiver.local_addr())
        .await
        .unwrap();
    let (status, _) = browse(&format!("{}?code=c&state=s", receiver.redirect_uri())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(waiting.await.unwrap().is_ok());
}

/// What reaches a sign-in and what does not: hosts, subresources, reloads, paths, floods.
mod hardening;
