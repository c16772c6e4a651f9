//! Expiry under tokio's paused time: the layer's clock is tied to tokio's, so
//! `tokio::time::advance` moves it, and a `tower-test` mock stands for the servers. Proactive
//! refresh happens before expiry, not after it, and not before it is due.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer, RefreshPolicy};
use tower_test::mock;

use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, Resp, RS};

/// What the layer hands its inner service.
type Req = http::Request<tower_mcp_oauth::OAuthBody<Full<Bytes>>>;

/// Answers the layer's requests; returns a short label of what was asked.
fn answer(req: Req, send: mock::SendResponse<Resp>, issued: &mut u32) -> String {
    let path = req.uri().path().to_owned();
    let bearer = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let response = match (path.as_str(), &bearer) {
        ("/mcp", Some(_)) => json(200, json!({"ok": true})),
        ("/mcp", None) => unauthorized(),
        ("/token", _) => {
            *issued += 1;
            json(
                200,
                json!({
                    "access_token": format!("at-{issued}"),
                    "refresh_token": format!("rt-{issued}"),
                    "token_type": "Bearer",
                    "expires_in": 60,
                }),
            )
        }
        _ => flow_response(&req).unwrap_or_else(|| panic!("unexpected {path}")),
    };
    send.send_response(response);
    match bearer {
        Some(v) if path == "/mcp" => format!("{path} {v}"),
        _ => path,
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_is_due_before_expiry_and_not_before_the_skew() {
    let wall = SystemTime::now();
    let start = tokio::time::Instant::now();
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .refresh_policy(RefreshPolicy::default().jitter(0.0))
    .clock(move || wall + start.elapsed());
    let (mock, mut handle) = mock::pair::<Req, Resp>();
    handle.allow(1_000);
    let service = layer.layer(mock);
    let mut issued = 0;

    // Drives one call, answering every request it makes; returns what the servers saw.
    macro_rules! call {
        () => {{
            let call = tokio::spawn(
                service.clone().oneshot(
                    http::Request::post(format!("{RS}/mcp"))
                        .body(Full::new(Bytes::from_static(b"{}")))
                        .unwrap(),
                ),
            );
            let mut seen = Vec::new();
            while !call.is_finished() {
                tokio::select! {
                    next = handle.next_request() => {
                        let (req, send) = next.unwrap();
                        seen.push(answer(req, send, &mut issued));
                    }
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
            }
            assert_eq!(call.await.unwrap().unwrap().status(), 200);
            seen
        }};
    }

    let first = call!();
    assert_eq!(first.first().map(String::as_str), Some("/mcp"));
    assert_eq!(first.last().map(String::as_str), Some("/mcp Bearer at-1"));

    // A 60 s token: the skew is capped at a tenth of its life (6 s), so it is due at 54 s.
    tokio::time::advance(Duration::from_secs(53)).await;
    assert_eq!(
        call!(),
        ["/mcp Bearer at-1"],
        "not refreshed before it is due"
    );

    tokio::time::advance(Duration::from_secs(2)).await; // 55 s: due, not expired
    assert_eq!(
        call!(),
        ["/token", "/mcp Bearer at-2"],
        "refreshed first, before expiry"
    );

    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(call!(), ["/mcp Bearer at-2"], "the new token is fresh");
}
