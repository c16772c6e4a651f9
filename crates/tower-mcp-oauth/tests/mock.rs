//! The layer against `tower-test` mocks: readiness passes through untouched, every
//! sub-request reaches the inner service (never the layer), and the retry carries the token.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::ServiceExt;
use tower_layer::Layer;
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthBody, OAuthLayer};
use tower_service::Service;
use tower_test::mock;

type Req = http::Request<OAuthBody<Full<Bytes>>>;
type Resp = http::Response<Full<Bytes>>;

fn layer() -> OAuthLayer {
    OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
}

fn json(status: u16, value: serde_json::Value) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

#[tokio::test]
async fn poll_ready_only_delegates() {
    let (mock, mut handle) = mock::pair::<Req, Resp>();
    let mut service = layer().layer(mock);
    handle.allow(0);
    let mut ready = task::spawn(std::future::poll_fn(|cx| {
        Service::<http::Request<Full<Bytes>>>::poll_ready(&mut service, cx)
    }));
    assert_pending!(ready.poll());
    handle.allow(1);
    assert!(ready.is_woken());
    assert_ready_ok!(ready.poll());
}

#[tokio::test]
async fn whole_flow_through_the_mock() {
    let (mock, mut handle) = mock::pair::<Req, Resp>();
    handle.allow(100);
    let layer = layer();
    let service = layer.layer(mock);
    let rs = "http://127.0.0.1:1";
    let asv = "http://127.0.0.1:2";
    let call = tokio::spawn(
        service.clone().oneshot(
            http::Request::post(format!("{rs}/mcp"))
                .body(Full::new(Bytes::from_static(b"payload")))
                .unwrap(),
        ),
    );

    async fn expect(
        handle: &mut mock::Handle<Req, Resp>,
        method: &str,
        url: &str,
    ) -> (Req, mock::SendResponse<Resp>) {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method().as_str(), method);
        assert_eq!(req.uri().to_string(), url);
        (req, send)
    }

    let (req, send) = expect(&mut handle, "POST", &format!("{rs}/mcp")).await;
    assert!(req.headers().get("authorization").is_none());
    send.send_response(
        http::Response::builder()
            .status(401)
            .header(
                "www-authenticate",
                format!(r#"Bearer error="invalid_token", resource_metadata="{rs}/prm""#),
            )
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    let (_, send) = expect(&mut handle, "GET", &format!("{rs}/prm")).await;
    send.send_response(json(
        200,
        json!({"resource": format!("{rs}/mcp"), "authorization_servers": [asv]}),
    ));
    let (_, send) = expect(
        &mut handle,
        "GET",
        &format!("{asv}/.well-known/oauth-authorization-server"),
    )
    .await;
    send.send_response(json(
        200,
        json!({
            "issuer": asv,
            "authorization_endpoint": format!("{asv}/authorize"),
            "token_endpoint": format!("{asv}/token"),
            "registration_endpoint": format!("{asv}/register"),
            "code_challenge_methods_supported": ["S256"],
        }),
    ));
    let (req, send) = expect(&mut handle, "POST", &format!("{asv}/register")).await;
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let reg: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reg["application_type"], "native");
    send.send_response(json(201, json!({"client_id": "c1"})));

    let (req, send) = handle.next_request().await.unwrap();
    let authorize = url::Url::parse(&req.uri().to_string()).unwrap();
    assert_eq!(authorize.path(), "/authorize");
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    send.send_response(
        http::Response::builder()
            .status(302)
            .header(
                "location",
                format!("http://localhost:3000/callback?code=xyz&state={state}"),
            )
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    let (_, send) = expect(&mut handle, "POST", &format!("{asv}/token")).await;
    send.send_response(json(
        200,
        json!({"access_token": "tok", "token_type": "bearer", "expires_in": 3600}),
    ));

    // The retry: same method, URI and body, with the token, spelled `Bearer`.
    let (req, send) = expect(&mut handle, "POST", &format!("{rs}/mcp")).await;
    let auth = req.headers().get("authorization").unwrap();
    assert_eq!(auth, "Bearer tok");
    assert!(auth.is_sensitive());
    assert_eq!(
        req.into_body().collect().await.unwrap().to_bytes(),
        "payload"
    );
    send.send_response(json(200, json!({"ok": true})));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    // The next call is the hot path: the token is attached, nothing else is sent.
    let call = tokio::spawn(
        service.oneshot(
            http::Request::get(format!("{rs}/mcp/sub"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    );
    let (req, send) = expect(&mut handle, "GET", &format!("{rs}/mcp/sub")).await;
    assert_eq!(req.headers().get("authorization").unwrap(), "Bearer tok");
    send.send_response(json(200, json!({})));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    // Never to another origin, from any service of the same layer.
    let other = layer.layer(tower::service_fn(|req: Req| async move {
        assert!(req.headers().get("authorization").is_none());
        Ok::<_, std::convert::Infallible>(json(200, json!({})))
    }));
    let resp = other
        .oneshot(
            http::Request::get("http://127.0.0.1:9/mcp")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn futures_and_services_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<tower_mcp_oauth::ResponseFuture<mock::Mock<Req, Resp>, Full<Bytes>>>();
    assert_send::<tower_mcp_oauth::OAuthService<mock::Mock<Req, Resp>>>();
}

/// Sends `url` through `service` while the mock fails the send: the `Authorization` the request
/// carried, and the caller's error.
async fn failed_send(
    service: tower_mcp_oauth::OAuthService<mock::Mock<Req, Resp>>,
    handle: &mut mock::Handle<Req, Resp>,
    url: &str,
) -> (Option<http::HeaderValue>, tower_mcp_oauth::Error) {
    let call = tokio::spawn(
        service.oneshot(
            http::Request::post(url)
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        ),
    );
    // Bounded: a layer that failed before sending would otherwise leave the test waiting.
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), handle.next_request());
    let (req, send) = next
        .await
        .expect("the request reaches the inner service")
        .unwrap();
    assert_eq!(req.uri(), url);
    let authorization = req.headers().get("authorization").cloned();
    send.send_error("connection refused");
    (authorization, call.await.unwrap().unwrap_err())
}

#[tokio::test]
async fn a_send_the_inner_service_fails_is_a_transport_error_naming_where_it_went() {
    use tower_mcp_oauth::{ErrorKind, McpServers, MemoryStore, TokenSet, TokenStore, TokenType};
    let (mock, mut handle) = mock::pair::<Req, Resp>();
    handle.allow(100);
    let url = "http://127.0.0.1:1/mcp";
    let store = std::sync::Arc::new(MemoryStore::new());
    let tokens = TokenSet::new("at", TokenType::Bearer, "http://127.0.0.1:2", "client");
    store.save_tokens(url, &tokens).await.unwrap();
    let service = layer()
        .token_store(store)
        .only_for(McpServers::prefixes([url]).unwrap())
        .layer(mock);
    // The first request adopts the stored token (a slow path); the second is the hot path's,
    // with the head kept for a retry: its error names the URL from the kept head.
    for _ in 0..2 {
        let (authorization, error) = failed_send(service.clone(), &mut handle, url).await;
        assert_eq!(
            authorization.unwrap(),
            "Bearer at",
            "the stored token was adopted"
        );
        assert_eq!(error.kind(), ErrorKind::Transport, "{error:#}");
        assert!(error.to_string().contains(url), "{error}");
        assert!(
            format!("{error:#}").contains("connection refused"),
            "{error:#}"
        );
    }
    // Outside the layer's servers the request is passed through, and so is its failure, typed
    // the same way.
    let outside = "http://127.0.0.1:3/elsewhere?q=1";
    let (authorization, error) = failed_send(service.clone(), &mut handle, outside).await;
    assert_eq!(authorization, None, "no token outside the layer's servers");
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:#}");
    // Named without its query, which may carry a credential.
    assert!(
        error.to_string().contains("http://127.0.0.1:3/elsewhere"),
        "{error}"
    );
    assert!(!error.to_string().contains("q=1"), "{error}");
}
