//! Several MCP servers on one origin (a gateway: `/a/mcp`, `/b/mcp`, `/c/mcp`), each with an
//! authorization server of its own. Flows on one origin run one at a time, but each server's
//! failure is its own: one server's failing authorization server neither hands its error to a
//! caller of another server that joined its flow, nor holds the other back for the failure
//! backoff; and however many servers wait their turn, each gets its own flow.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_testkit::scripted::{authorization_server, json};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthBody, OAuthLayer};

type Req = http::Request<OAuthBody<Full<Bytes>>>;
type Server = BoxCloneService<Req, http::Response<Full<Bytes>>, Infallible>;

const GATEWAY: &str = "http://127.0.0.1:1";
const REDIRECT: &str = "http://localhost:3000/callback";

/// The server's letter of an authorization server's port (`127.0.0.1:2` is `a`'s).
fn letter_of_port(port: u16) -> char {
    char::from(b'a' + u8::try_from(port - 2).unwrap())
}

/// The gateway's servers and their authorization servers (`a` at port 2, `b` at 3, `c` at 4).
/// Each token request takes `token_delay`; `failing`'s token endpoint answers 500.
fn gateway(failing: Option<char>, token_delay: Duration) -> Server {
    BoxCloneService::new(service_fn(move |req: Req| async move {
        let port = req.uri().port_u16().unwrap_or(80);
        let path = req.uri().path().to_owned();
        if port == 1 {
            // The gateway: `/{x}/mcp` wants `Bearer at-{x}`.
            if let Some(x) = path.strip_prefix("/.well-known/oauth-protected-resource/") {
                let x = x.trim_end_matches("/mcp");
                let issuer = format!("http://127.0.0.1:{}", 2 + u16::from(x.as_bytes()[0] - b'a'));
                return Ok(json(
                    200,
                    json!({"resource": format!("{GATEWAY}/{x}/mcp"), "authorization_servers": [issuer]}),
                ));
            }
            let x = path
                .trim_start_matches('/')
                .trim_end_matches("/mcp")
                .to_owned();
            let wanted = format!("Bearer at-{x}");
            if req
                .headers()
                .get("authorization")
                .is_some_and(|v| v == wanted.as_str())
            {
                return Ok(json(200, json!({"server": x})));
            }
            let metadata = format!("{GATEWAY}/.well-known/oauth-protected-resource/{x}/mcp");
            return Ok(http::Response::builder()
                .status(401)
                .header(
                    "www-authenticate",
                    format!(r#"Bearer resource_metadata="{metadata}""#),
                )
                .body(Full::new(Bytes::new()))
                .unwrap());
        }
        // An authorization server.
        let issuer = format!("http://127.0.0.1:{port}");
        let x = letter_of_port(port);
        if let Some(response) = authorization_server(&issuer, &req) {
            return Ok(response);
        }
        Ok(match path.as_str() {
            "/token" => {
                tokio::time::sleep(token_delay).await;
                if failing == Some(x) {
                    json(500, json!({}))
                } else {
                    json(
                        200,
                        json!({"access_token": format!("at-{x}"), "token_type": "Bearer"}),
                    )
                }
            }
            _ => json(404, json!({})),
        })
    }))
}

fn request(x: char) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("{GATEWAY}/{x}/mcp"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

fn layer() -> OAuthLayer {
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
}

#[tokio::test]
async fn one_servers_failure_does_not_hold_back_another_on_its_origin() {
    let service = layer()
        .failure_backoff(Duration::from_secs(600))
        .layer(gateway(Some('a'), Duration::ZERO));
    let error = service.clone().oneshot(request('a')).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedStatus, "{error:#}");
    // `a` is backed off...
    let again = service.clone().oneshot(request('a')).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::UnexpectedStatus, "{again:#}");
    assert_eq!(service.flows_started(), 1);
    // ...`b` is not.
    let b = service.clone().oneshot(request('b')).await.unwrap();
    assert_eq!(b.status(), 200);
    assert_eq!(service.flows_started(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_joined_another_servers_failing_flow_runs_its_own() {
    let service = layer()
        .failure_backoff(Duration::from_secs(600))
        .layer(gateway(Some('a'), Duration::from_millis(300)));
    let a = tokio::spawn(service.clone().oneshot(request('a')));
    // `b` arrives while `a`'s flow waits for its token endpoint, and joins it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = tokio::spawn(service.clone().oneshot(request('b')));
    let a_error = a.await.unwrap().unwrap_err();
    assert_eq!(a_error.kind(), ErrorKind::UnexpectedStatus, "{a_error:#}");
    let b = b.await.unwrap().expect("b's own flow, not a's error");
    assert_eq!(b.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_at_once_on_one_origin_each_get_a_flow() {
    let service = layer().layer(gateway(None, Duration::from_millis(200)));
    let calls: Vec<_> = ['a', 'b', 'c']
        .into_iter()
        .map(|x| tokio::spawn(service.clone().oneshot(request(x))))
        .collect();
    for (x, call) in ['a', 'b', 'c'].into_iter().zip(calls) {
        let response = call.await.unwrap().unwrap_or_else(|e| panic!("{x}: {e:#}"));
        assert_eq!(response.status(), 200, "{x}");
    }
    assert_eq!(service.flows_started(), 3);
}

#[tokio::test(start_paused = true)]
async fn twelve_servers_at_once_on_one_origin_each_get_a_flow() {
    // A gateway's client connecting to all its servers at start: the flows run one after
    // another on the origin, and the last caller waits through eleven of others' flows.
    let servers: Vec<char> = ('a'..='l').collect();
    let service = layer().layer(gateway(None, Duration::from_millis(200)));
    let calls: Vec<_> = servers
        .iter()
        .map(|&x| tokio::spawn(service.clone().oneshot(request(x))))
        .collect();
    for (x, call) in servers.iter().zip(calls) {
        let response = call.await.unwrap().unwrap_or_else(|e| panic!("{x}: {e:#}"));
        assert_eq!(response.status(), 200, "{x}");
    }
    assert_eq!(service.flows_started(), 12);
}

/// A token still valid is no reason to wait: a request whose token is due for refresh (within
/// the minute before it expires), sent while another server of its origin has a flow running
/// (a user at its consent page, or, here, a token endpoint that does not answer yet), goes out
/// at once with the token it holds, instead of queueing behind that flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_due_for_refresh_is_sent_while_another_servers_flow_runs() {
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    // `b`'s token endpoint says it was reached, then answers only once the gate opens (a
    // permit: an opening before it waits is not lost).
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let (opened, arrival) = (gate.clone(), reached.clone());
    let server = BoxCloneService::new(service_fn(move |req: Req| {
        let (gate, reached) = (gate.clone(), reached.clone());
        let gateway = gateway(None, Duration::ZERO);
        async move {
            let port = req.uri().port_u16().unwrap_or(80);
            match (port, req.uri().path()) {
                (3, "/token") => {
                    reached.notify_one();
                    let _open = gate.acquire().await.unwrap();
                }
                // `a`'s tokens last an hour and can be refreshed.
                (2, "/token") => {
                    return Ok(json(
                        200,
                        json!({"access_token": "at-a", "token_type": "Bearer",
                               "expires_in": 3600, "refresh_token": "rt-a"}),
                    ))
                }
                _ => {}
            }
            gateway.oneshot(req).await
        }
    }));
    let ahead = Arc::new(Mutex::new(Duration::ZERO));
    let clock = ahead.clone();
    let service = layer()
        .clock(move || SystemTime::now() + *clock.lock().unwrap())
        .layer(server);
    assert_eq!(
        service
            .clone()
            .oneshot(request('a'))
            .await
            .unwrap()
            .status(),
        200
    );
    // Half a minute before `a`'s token expires: due for refresh, still valid.
    *ahead.lock().unwrap() = Duration::from_secs(3570);
    let b = tokio::spawn(service.clone().oneshot(request('b')));
    // `b`'s flow is at its token endpoint, and holds the origin's flight.
    tokio::time::timeout(Duration::from_secs(30), arrival.notified())
        .await
        .expect("`b`'s flow reached its token endpoint");
    let a = tokio::time::timeout(
        Duration::from_secs(5),
        service.clone().oneshot(request('a')),
    )
    .await
    .expect("`a` waited for `b`'s flow")
    .unwrap();
    assert_eq!(a.status(), 200);
    opened.add_permits(1);
    let b = tokio::time::timeout(Duration::from_secs(30), b)
        .await
        .expect("`b` finished once its token endpoint answered");
    assert_eq!(b.unwrap().unwrap().status(), 200);
}
