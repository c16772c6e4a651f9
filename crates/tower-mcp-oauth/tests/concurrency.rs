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
    Authorizer, BoxFuture, ClientConfig, Error, HeadlessAuthorizer, InnerClient, OAuthBody,
    OAuthLayer,
};
use tower_test::mock;

type Req = http::Request<OAuthBody<Full<Bytes>>>;
type Resp = http::Response<Full<Bytes>>;

const RS: &str = "http://127.0.0.1:1";
const AS: &str = "http://127.0.0.1:2";

fn json(status: u16, value: serde_json::Value) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

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
    let url = req.uri().to_string();
    let path = req.uri().path();
    match path {
        "/mcp" => match req.headers().get("authorization") {
            Some(v) if v == "Bearer the-token" => {
                counts.authenticated.fetch_add(1, Ordering::SeqCst);
                json(200, json!({"ok": true}))
            }
            _ => {
                counts.unauthenticated.fetch_add(1, Ordering::SeqCst);
                http::Response::builder()
                    .status(401)
                    .header(
                        "www-authenticate",
                        format!(r#"Bearer resource_metadata="{RS}/prm""#),
                    )
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
        },
        "/prm" => {
            counts.prm.fetch_add(1, Ordering::SeqCst);
            json(
                200,
                json!({"resource": format!("{RS}/mcp"), "authorization_servers": [AS]}),
            )
        }
        "/.well-known/oauth-authorization-server" => {
            counts.metadata.fetch_add(1, Ordering::SeqCst);
            json(
                200,
                json!({
                    "issuer": AS,
                    "authorization_endpoint": format!("{AS}/authorize"),
                    "token_endpoint": format!("{AS}/token"),
                    "registration_endpoint": format!("{AS}/register"),
                    "code_challenge_methods_supported": ["S256"],
                }),
            )
        }
        "/register" => {
            counts.register.fetch_add(1, Ordering::SeqCst);
            json(201, json!({"client_id": "c"}))
        }
        "/authorize" => {
            counts.authorize.fetch_add(1, Ordering::SeqCst);
            let state = url::Url::parse(&url)
                .unwrap()
                .query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned();
            http::Response::builder()
                .status(302)
                .header(
                    "location",
                    format!("http://localhost:3000/callback?code=c&state={state}"),
                )
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        "/token" => {
            counts.token.fetch_add(1, Ordering::SeqCst);
            json(
                200,
                json!({"access_token": "the-token", "token_type": "Bearer", "expires_in": 3600}),
            )
        }
        other => panic!("unexpected request to {other}"),
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
        client: InnerClient,
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
