//! An inner service changed through `OAuthService::get_mut` is the one the layer's flows and
//! retries go through from then on, not a copy kept from before the change.

use std::convert::Infallible;
use std::future::Ready;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, RS};
use serde_json::json;
use tower::{Layer, Service, ServiceExt};
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

/// The MCP server and its authorization server, answering as the client of `generation`; every
/// request is recorded with the generation of the client that sent it. The resource accepts
/// the last token issued, and refuses every token once `revoked`.
#[derive(Clone)]
struct Client {
    generation: u32,
    seen: Arc<Mutex<Vec<(String, u32)>>>,
    issued: Arc<AtomicU32>,
    revoked: Arc<AtomicBool>,
}

impl Service<Req> for Client {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let path = req.uri().path().to_owned();
        self.seen
            .lock()
            .unwrap()
            .push((path.clone(), self.generation));
        let response = match path.as_str() {
            "/token" => {
                let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
                self.revoked.store(false, Ordering::SeqCst);
                json(
                    200,
                    json!({"access_token": format!("at-{n}"), "token_type": "Bearer"}),
                )
            }
            "/mcp" => {
                let latest = format!("Bearer at-{}", self.issued.load(Ordering::SeqCst));
                let presented = req.headers().get(http::header::AUTHORIZATION);
                if !self.revoked.load(Ordering::SeqCst)
                    && presented.is_some_and(|v| v.as_bytes() == latest.as_bytes())
                {
                    json(200, json!({"ok": true}))
                } else {
                    unauthorized()
                }
            }
            _ => flow_response(&req).unwrap_or_else(unauthorized),
        };
        std::future::ready(Ok(response))
    }
}

#[tokio::test]
async fn flows_and_retries_go_through_the_inner_service_as_changed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let revoked = Arc::new(AtomicBool::new(false));
    let client = Client {
        generation: 1,
        seen: Arc::clone(&seen),
        issued: Arc::default(),
        revoked: Arc::clone(&revoked),
    };
    let mut service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .layer(client);
    let request = || {
        http::Request::post(format!("{RS}/mcp"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // A login, then a request on the hot path, through generation 1.
    for _ in 0..2 {
        let response = service.ready().await.unwrap().call(request()).await;
        assert_eq!(response.unwrap().status(), 200);
    }
    // The application changes its client; then the server refuses the token.
    service.get_mut().generation = 2;
    revoked.store(true, Ordering::SeqCst);
    seen.lock().unwrap().clear();
    let response = service.ready().await.unwrap().call(request()).await;
    assert_eq!(response.unwrap().status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 2, "a flow and a retry: {seen:?}");
    assert!(
        seen.iter().all(|(_, generation)| *generation == 2),
        "{seen:?}"
    );
}
