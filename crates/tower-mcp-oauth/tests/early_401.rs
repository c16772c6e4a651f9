//! A resource that answers `401` before reading the request body (as many servers do when the
//! `Authorization` header is missing): the layer authorizes and replays the body, the part the
//! first attempt had sent and the part it had not, over real loopback HTTP/1.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use tokio::sync::Notify;
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer, DEFAULT_MAX_REPLAY_BYTES,
};

/// A request body that arrives in chunks over time, with no size known up front.
struct Trickle(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// A protected resource whose authorization server is the testkit's: 401 at once without a
/// token (body unread), the body echoed back with one. `retried` is notified when a request
/// with a token arrives, before its body is read.
async fn resource(issuer: String, retried: Arc<Notify>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let rs = base.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (rs, issuer, retried) = (rs.clone(), issuer.clone(), Arc::clone(&retried));
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let (rs, issuer, retried) =
                            (rs.clone(), issuer.clone(), Arc::clone(&retried));
                        async move {
                            let response = match (req.uri().path(), req.headers().contains_key("authorization")) {
                            ("/.well-known/oauth-protected-resource/mcp", _) => http::Response::new(Full::new(Bytes::from(
                                serde_json::json!({"resource": format!("{rs}/mcp"), "authorization_servers": [issuer]}).to_string(),
                            ))),
                            ("/mcp", false) => http::Response::builder()
                                .status(401)
                                .header("www-authenticate", format!(r#"Bearer resource_metadata="{rs}/.well-known/oauth-protected-resource/mcp""#))
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                            ("/mcp", true) => {
                                retried.notify_one();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                http::Response::new(Full::new(body))
                            }
                            _ => http::Response::builder().status(404).body(Full::new(Bytes::new())).unwrap(),
                        };
                            Ok::<_, Infallible>(response)
                        }
                    },
                );
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

/// Sends "hello " and then, after the server has answered `401`, "world", through a layer
/// that keeps at most `max_replay_bytes` for the retry; the response and the testkit.
async fn send_trickle(max_replay_bytes: usize) -> (http::Response<hyper::body::Incoming>, Testkit) {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let retried = Arc::new(Notify::new());
    let rs = resource(kit.issuer(), Arc::clone(&retried)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<OAuthBody<Trickle>>();
    let service = ServiceBuilder::new()
        .layer(
            OAuthLayer::new(
                ClientConfig::new("http://localhost:3000/callback"),
                HeadlessAuthorizer::new(),
            )
            .max_replay_bytes(max_replay_bytes),
        )
        .service(client);

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(Bytes::from_static(b"hello ")).await.unwrap();
    let rest = tokio::spawn(async move {
        // The rest arrives after the server has answered 401, once the retry is on its way
        // (a signal, not a wait: a fixed one raced the flow on a loaded machine).
        retried.notified().await;
        tx.send(Bytes::from_static(b"world")).await.unwrap();
    });
    let request = http::Request::post(format!("{rs}/mcp"))
        .body(Trickle(rx))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), service.oneshot(request))
        .await
        .expect("the layer stalled")
        .unwrap();
    // Bounded: a layer that never retried would leave the rest unsent for ever.
    tokio::time::timeout(Duration::from_secs(10), rest)
        .await
        .expect("the retry never came, and the rest of the body was never sent")
        .unwrap();
    (response, kit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_server_did_not_read_is_replayed_whole() {
    let (response, kit) = send_trickle(DEFAULT_MAX_REPLAY_BYTES).await;
    assert_eq!(response.status(), 200);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, "hello world", "the retry carried the whole body");
    assert_eq!(
        kit.requests().iter().filter(|r| r.path == "/token").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_reads_past_the_replay_cap_sends_the_rest() {
    // "hello " fits the cap of 8 bytes and is kept; "world" takes the retry past it. The retry
    // is the body's last use, so it sends the rest rather than fail part-way.
    let (response, _kit) = send_trickle(8).await;
    assert_eq!(response.status(), 200);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, "hello world", "the retry carried the whole body");
}
