//! Concurrency with `tower-test` mocks: 100 callers hit `401` together and one flow runs;
//! a cancelled waiter does not stall the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_mcp_oauth::{
    Authorizer, BoxFuture, ClientConfig, Error, HeadlessAuthorizer, HttpClient, OAuthLayer,
};
use tower_test::mock;

use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, Resp, RS};

/// What the layer hands its inner service.
type Req = http::Request<tower_mcp_oauth::OAuthBody<Full<Bytes>>>;

/// A protected resource and its authorization server, answering whatever the layer sends.
#[derive(Default)]
struct Counts {
    unauthenticated: AtomicUsize,
    authenticated: AtomicUsize,
    prm: AtomicUsize,
    metadata: AtomicUsize,
    register: AtomicUsize,
    authorize: AtomicUsize,
    token: AtomicUsize,
}

fn answer(req: &Req, counts: &Counts) -> Resp {
    let path = req.uri().path();
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == "Bearer the-token");
    let counter = match path {
        "/mcp" if authorized => &counts.authenticated,
        "/mcp" => &counts.unauthenticated,
        "/prm" => &counts.prm,
        "/.well-known/oauth-authorization-server" => &counts.metadata,
        "/register" => &counts.register,
        "/authorize" => &counts.authorize,
        "/token" => &counts.token,
        other => panic!("unexpected request to {other}"),
    };
    counter.fetch_add(1, Ordering::SeqCst);
    match path {
        "/mcp" if authorized => json(200, json!({"ok": true})),
        "/mcp" => unauthorized(),
        "/token" => json(
            200,
            json!({"access_token": "the-token", "token_type": "Bearer", "expires_in": 3600}),
        ),
        _ => flow_response(req).expect("a flow request"),
    }
}

fn call() -> http::Request<Full<Bytes>> {
    http::Request::post(format!("{RS}/mcp"))
        .body(Full::new(Bytes::from_static(b"{\"jsonrpc\":\"2.0\"}")))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_401s_run_one_flow() {
    let (mock, mut handle) = mock::pair::<Req, Resp>();
    handle.allow(100_000);
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    );
    let service = layer.layer(mock);
    let calls: Vec<_> = (0..100)
        .map(|_| tokio::spawn(service.clone().oneshot(call())))
        .collect();

    let counts = Counts::default();
    // Every caller's first attempt is in before any is answered: the 401s then meet together
    // (on a loaded machine, a caller spawned late would otherwise find the token the flow got
    // and never see a 401, which is no fault of the layer's).
    let mut first = Vec::new();
    while first.len() < 100 {
        let next = tokio::time::timeout(Duration::from_secs(10), handle.next_request());
        first.push(next.await.expect("the layer stalled").expect("a request"));
    }
    for (req, send) in first {
        send.send_response(answer(&req, &counts));
    }
    while counts.authenticated.load(Ordering::SeqCst) < 100 {
        let (req, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
            .await
            .expect("the layer stalled")
            .expect("a request");
        send.send_response(answer(&req, &counts));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    // Exactly one of each sub-request, and nothing else afterwards.
    assert_eq!(counts.unauthenticated.load(Ordering::SeqCst), 100);
    for (name, n) in [
        ("prm", &counts.prm),
        ("metadata", &counts.metadata),
        ("register", &counts.register),
        ("authorize", &counts.authorize),
        ("token", &counts.token),
    ] {
        assert_eq!(n.load(Ordering::SeqCst), 1, "{name}");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(50), handle.next_request())
            .await
            .is_err()
    );
    assert_eq!(service.flows_started(), 1);
}

/// An authorizer that waits for a go signal, like a user at the browser.
struct WaitsForUser {
    go: Arc<tokio::sync::Notify>,
    asked: Arc<AtomicUsize>,
}

impl Authorizer for WaitsForUser {
    fn authorize(
        &self,
        request: tower_mcp_oauth::AuthorizationRequest,
        client: HttpClient,
    ) -> BoxFuture<'static, Result<tower_mcp_oauth::AuthorizationResponse, Error>> {
        let go = Arc::clone(&self.go);
        self.asked.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            go.notified().await;
            HeadlessAuthorizer::new().authorize(request, client).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_waiter_does_not_stall_the_others() {
    let (mock, mut handle) = mock::pair::<Req, Resp>();
    handle.allow(100_000);
    let go = Arc::new(tokio::sync::Notify::new());
    let asked = Arc::new(AtomicUsize::new(0));
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        WaitsForUser {
            go: Arc::clone(&go),
            asked: Arc::clone(&asked),
        },
    );
    let service = layer.layer(mock);
    let counts = Arc::new(Counts::default());
    let responder = {
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                send.send_response(answer(&req, &counts));
            }
        })
    };

    // The first caller starts the flow and is cancelled while the user is "at the browser".
    let first = tokio::spawn(service.clone().oneshot(call()));
    while asked.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let others: Vec<_> = (0..3)
        .map(|_| tokio::spawn(service.clone().oneshot(call())))
        .collect();
    while counts.unauthenticated.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    go.notify_waiters();
    go.notify_one();
    for other in others {
        let response = tokio::time::timeout(Duration::from_secs(10), other)
            .await
            .expect("stalled")
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "one consent for everyone");
    assert_eq!(counts.token.load(Ordering::SeqCst), 1);
    responder.abort();
}
