//! The device authorization grant (RFC 8628) end to end over loopback TCP, against the
//! testkit's device authorization endpoint and polled token endpoint.
//!
//! The layer sleeps between polls on its `Timer`; these tests give it one that sleeps a
//! hundredth of what is asked (so a 5 s interval takes 50 ms), records each finished sleep,
//! and moves the layer's clock on by the full amount, so the code's lifetime runs out on the
//! layer's own time as it would in real time.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mcp_oauth_testkit::{
    DeviceConfig, DeviceOutcome, RecordedRequest, Testkit, TestkitConfig,
    DEVICE_AUTHORIZATION_PATH, DEVICE_CODE_GRANT,
};
use serde_json::json;
use support::{http_client, jsonrpc, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::{
    BoxFuture, ClientConfig, ErrorKind, HeadlessAuthorizer, OAuthLayer, OAuthService, Timer,
    UserCode,
};

const REDIRECT: &str = "http://localhost:3000/callback";

/// Sleeps 1/100 of each duration; a finished sleep is recorded and moves `now` (and the layer's
/// clock) on by the whole duration. Lost races (a request's timeout) record nothing.
#[derive(Clone, Default)]
struct FastTimer {
    slept: Arc<Mutex<Vec<Duration>>>,
    ahead: Arc<Mutex<Duration>>,
}

impl Timer for FastTimer {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let me = self.clone();
        Box::pin(async move {
            tokio::time::sleep(duration / 100).await;
            me.slept.lock().unwrap().push(duration);
            *me.ahead.lock().unwrap() += duration;
        })
    }

    fn now(&self) -> Instant {
        Instant::now() + *self.ahead.lock().unwrap()
    }
}

impl FastTimer {
    fn slept_secs(&self) -> Vec<u64> {
        self.slept
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_secs())
            .collect()
    }
}

/// The user codes the layer showed.
type Shown = Arc<Mutex<Vec<UserCode>>>;

fn layer(
    timer: &FastTimer,
    shown: &Shown,
    on_show: impl Fn(&UserCode) + Send + Sync + 'static,
) -> OAuthLayer {
    let ahead = Arc::clone(&timer.ahead);
    let shown = Arc::clone(shown);
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .device_authorization(move |code: &UserCode| {
            shown.lock().unwrap().push(code.clone());
            on_show(code);
        })
        .timer(timer.clone())
        .clock(move || SystemTime::now() + *ahead.lock().unwrap())
        // Requests and the flow's own deadline are not what these tests time.
        .request_timeout(Duration::from_secs(3600))
        .flow_deadline(Duration::from_secs(3600))
}

fn service(layer: OAuthLayer) -> OAuthService<HttpClient> {
    ServiceBuilder::new().layer(layer).service(http_client())
}

async fn call(
    svc: &OAuthService<HttpClient>,
    kit: &Testkit,
) -> Result<u16, tower_mcp_oauth::Error> {
    let request = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    svc.clone()
        .oneshot(request)
        .await
        .map(|r| r.status().as_u16())
}

fn polls(kit: &Testkit) -> Vec<RecordedRequest> {
    kit.requests()
        .into_iter()
        .filter(|r| {
            r.path == "/token" && r.form_param("grant_type").as_deref() == Some(DEVICE_CODE_GRANT)
        })
        .collect()
}

async fn kit(device: DeviceConfig) -> Testkit {
    Testkit::start(TestkitConfig::default().device(device))
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_arrive_after_pending_polls_at_the_interval() {
    let kit = kit(DeviceConfig::default().outcome(DeviceOutcome::ApproveAfter(2))).await;
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let svc = service(layer(&timer, &shown, |_| {}));
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);

    let polls = polls(&kit);
    assert_eq!(polls.len(), 3, "two pending, then tokens");
    assert_eq!(
        timer.slept_secs(),
        [5, 5, 5],
        "one interval before each poll"
    );
    let device = kit
        .requests()
        .into_iter()
        .find(|r| r.path == DEVICE_AUTHORIZATION_PATH)
        .expect("a device authorization request");
    // RFC 8707: the token is asked for the MCP server, at both steps.
    assert_eq!(device.form_param("resource"), Some(kit.resource_url()));
    assert_eq!(polls[0].form_param("resource"), Some(kit.resource_url()));
    let client_id = device
        .form_param("client_id")
        .expect("the registered client");
    assert_eq!(polls[2].form_param("client_id"), Some(client_id));
    // No browser, no redirect.
    assert!(!kit.requests().iter().any(|r| r.path == "/authorize"));

    let shown = shown.lock().unwrap().clone();
    assert_eq!(shown.len(), 1);
    assert!(shown[0]
        .verification_uri
        .starts_with(&kit.auth_server_origin()));
    let complete = shown[0].verification_uri_complete.as_deref().unwrap();
    assert!(complete.ends_with(&shown[0].user_code), "{complete}");
    assert_eq!(shown[0].expires_in, Duration::from_secs(600));

    // The tokens are held: the next call makes no flow.
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    assert_eq!(self::polls(&kit).len(), 3);
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_every_later_wait() {
    let kit = kit(DeviceConfig::default()
        .outcome(DeviceOutcome::ApproveAfter(3))
        .slow_down_polls(2))
    .await;
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let svc = service(layer(&timer, &shown, |_| {}));
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    assert_eq!(polls(&kit).len(), 4);
    // slow_down, slow_down, pending, tokens.
    assert_eq!(timer.slept_secs(), [5, 10, 15, 15]);
}

#[tokio::test]
async fn the_user_approving_by_hand_ends_the_polling() {
    let kit = Arc::new(kit(DeviceConfig::default().interval_secs(2)).await);
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let approver = Arc::clone(&kit);
    let svc = service(layer(&timer, &shown, move |code| {
        // The user types the code on their phone while the layer waits.
        assert!(approver.approve_user_code(&code.user_code.to_lowercase()));
    }));
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    assert_eq!(polls(&kit).len(), 1);
    assert_eq!(timer.slept_secs(), [2]);
}

#[tokio::test]
async fn a_denied_request_is_authorization_denied() {
    let kit = Arc::new(kit(DeviceConfig::default()).await);
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let denier = Arc::clone(&kit);
    let svc = service(layer(&timer, &shown, move |code| {
        assert!(denier.deny_user_code(&code.user_code));
    }));
    let err = call(&svc, &kit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthorizationDenied);
    assert_eq!(err.oauth_error().unwrap().error, "access_denied");
    assert_eq!(polls(&kit).len(), 1);
}

#[tokio::test]
async fn expired_token_is_a_typed_error() {
    let kit = kit(DeviceConfig::default().outcome(DeviceOutcome::ExpireAfter(1))).await;
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let svc = service(layer(&timer, &shown, |_| {}));
    let err = call(&svc, &kit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeviceCodeExpired);
    assert_eq!(polls(&kit).len(), 2);
}

/// RFC 8628 §3.2 `expires_in` on the layer's own clock: a 12 s code polled every 5 s is polled
/// at 5 s and 10 s; at 15 s it is dead, and the layer stops without asking.
#[tokio::test]
async fn the_codes_lifetime_ends_the_polling_on_the_layers_clock() {
    let kit = kit(DeviceConfig::default().expires_in_secs(12)).await;
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let svc = service(layer(&timer, &shown, |_| {}));
    let err = call(&svc, &kit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeviceCodeExpired);
    assert_eq!(polls(&kit).len(), 2);
    assert_eq!(timer.slept_secs(), [5, 5, 5]);
}

/// The consent timeout bounds the whole wait for the user, as it bounds a browser's.
#[tokio::test]
async fn the_consent_timeout_bounds_the_wait() {
    let kit = kit(DeviceConfig::default()).await;
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let svc = service(layer(&timer, &shown, |_| {}).consent_timeout(Duration::from_secs(12)));
    let err = call(&svc, &kit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConsentTimeout);
    assert_eq!(polls(&kit).len(), 2);
}

/// The application chose the device grant; a server without it is an error naming the fix,
/// before any client is registered.
#[tokio::test]
async fn a_server_without_the_device_endpoint_is_grant_not_supported() {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let svc = service(layer(&timer, &shown, |_| {}));
    let err = call(&svc, &kit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::GrantNotSupported);
    assert!(
        err.message().contains("device_authorization_endpoint"),
        "{err}"
    );
    assert!(!kit.requests().iter().any(|r| r.path == "/register"
        || r.path == "/authorize"
        || r.path == DEVICE_AUTHORIZATION_PATH));
    assert!(shown.lock().unwrap().is_empty());
}

#[tokio::test]
async fn slow_polls_through_the_users_wait_do_not_add_up_to_the_flow_deadline() {
    // Each poll takes 100 s on the layer's clock, and the user approves after three pending
    // ones: 400 s of polling in all, past the 250 s flow deadline (and within the 600 s consent
    // timeout), but each poll follows a wait for the user and gets the deadline afresh, as the
    // code exchange does after consent. Counted in hundreds of seconds: the timer sleeps a
    // hundredth of each duration for real, so a deadline of seconds would race every loopback
    // request of the flow on a loaded machine (5 s is a real 50 ms).
    let kit = kit(DeviceConfig::default().outcome(DeviceOutcome::ApproveAfter(3))).await;
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let layer = layer(&timer, &shown, |_| {}).flow_deadline(Duration::from_secs(250));
    let (client, ahead) = (http_client(), Arc::clone(&timer.ahead));
    let slow_token_endpoint = tower::service_fn(move |req: http::Request<_>| {
        let slow = req.uri().path() == "/token";
        if slow {
            *ahead.lock().unwrap() += Duration::from_secs(100);
        }
        let client = client.clone();
        async move {
            if slow {
                // Long enough, in real time, to lose a race against a deadline already spent.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            client.oneshot(req).await
        }
    });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(slow_token_endpoint);
    let request = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(polls(&kit).len(), 4, "three pending, then tokens");
}

#[tokio::test]
async fn a_server_offering_dpop_gets_a_proof_on_the_device_poll() {
    // RFC 9449 §5: every access token request is proved when the server offers DPoP, a device
    // code poll as much as a code exchange; the tokens it gets are bound to the key.
    let kit = Testkit::start(
        TestkitConfig::default()
            .device(DeviceConfig::default().outcome(DeviceOutcome::ApproveAfter(1)))
            .dpop(mcp_oauth_testkit::DpopConfig::default()),
    )
    .await
    .unwrap();
    let (timer, shown) = (FastTimer::default(), Shown::default());
    let svc = service(layer(&timer, &shown, |_| {}));
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    let polls = polls(&kit);
    assert!(
        polls.iter().all(|p| p.headers.contains_key("dpop")),
        "every poll proved"
    );
    let resource = kit
        .requests()
        .into_iter()
        .filter(|r| r.path == "/mcp")
        .last()
        .unwrap();
    let authorization = resource.headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("DPoP "), "{authorization}");
    assert!(resource.headers.contains_key("dpop"));
}
