//! The layer's own time limits, under tokio's paused time (no test waits for real): a
//! slow-drip metadata server and a stalled token endpoint end in `ErrorKind::Timeout` naming
//! the URL and the limit, stored credentials survive, and the next call tries again. The
//! consent wait is not counted in the flow deadline, the user's answer starts it over, and a
//! request with a valid token starts no timer. The store's waits are in
//! `store_time_limits.rs`, a logout's in `logout_time_limits.rs`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_oauth_flow::secrets::RefreshToken;
use mcp_oauth_testkit::scripted::{flow_response, json, resource, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{
    AuthorizationRequest, AuthorizationResponse, Authorizer, BoxFuture, ClientConfig, Error,
    ErrorKind, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthLayer, Timer, TokenSet,
    TokenStore, TokenType, TokioTimer,
};

mod support;
use support::stalls::*;

fn layer(store: Arc<MemoryStore>) -> OAuthLayer {
    // No failure backoff, so "the next call" is the very next one.
    OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(store as Arc<dyn TokenStore>)
        .failure_backoff(Duration::ZERO)
}

#[tokio::test(start_paused = true)]
async fn a_slow_drip_metadata_server_times_out_at_the_request_limit_and_the_next_call_retries() {
    let faulty = Arc::new(AtomicBool::new(true));
    let tokens = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    let service = layer(Arc::clone(&store)).layer(server(
        Fault::DripMetadata,
        faulty.clone(),
        tokens.clone(),
    ));

    let started = tokio::time::Instant::now();
    let error = service.clone().oneshot(request()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(error.is_transient());
    // The whole response, body included, is bounded: the headers came at once, the body never
    // finished, and the default 30 s cut it.
    assert_eq!(
        error.to_string(),
        format!("no complete response from {RS}/prm within 30 s")
    );
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    assert_eq!(tokens.load(Ordering::SeqCst), 0);

    // The server recovers: the very next call runs the flow again and succeeds.
    faulty.store(false, Ordering::SeqCst);
    let response = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(service.flows_started(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_token_endpoint_times_out_keeps_the_refresh_token_and_the_next_call_refreshes() {
    let faulty = Arc::new(AtomicBool::new(true));
    let tokens = Arc::new(AtomicUsize::new(0));
    // An expired token with a refresh token, from an earlier run.
    let store = Arc::new(MemoryStore::new());
    let expired = TokenSet::new("at-1", TokenType::Bearer, "http://127.0.0.1:2", "c")
        .with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())));
    store
        .save_tokens(&format!("{RS}/mcp"), &expired)
        .await
        .unwrap();
    let service = layer(Arc::clone(&store))
        .request_timeout(Duration::from_secs(5))
        .layer(server(Fault::StallToken, faulty.clone(), tokens.clone()));

    let error = service.clone().oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert_eq!(
        error.to_string(),
        "no complete response from http://127.0.0.1:2/token within 5 s"
    );
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    // A timeout refuses nothing: the refresh token is still there.
    let kept = store
        .load_tokens(&format!("{RS}/mcp"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.refresh_token().unwrap().secret(), "rt-1");

    faulty.store(false, Ordering::SeqCst);
    let response = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let refreshed = store
        .load_tokens(&format!("{RS}/mcp"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refreshed.access_token().secret(), "at-2");
}

#[tokio::test(start_paused = true)]
async fn the_flow_deadline_cuts_a_stall_shorter_than_the_request_timeout() {
    let faulty = Arc::new(AtomicBool::new(true));
    let tokens = Arc::new(AtomicUsize::new(0));
    let service = layer(Arc::new(MemoryStore::new()))
        .flow_deadline(Duration::from_secs(8))
        .layer(server(Fault::StallToken, faulty, tokens.clone()));
    let started = tokio::time::Instant::now();
    let error = service.oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert_eq!(
        error.to_string(),
        format!(
            "the authorization flow for {RS} did not finish within its 8 s deadline (consent \
             time not counted)"
        )
    );
    assert_eq!(started.elapsed(), Duration::from_secs(8));
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    // What the flow did before the deadline, as for any failure.
    let report = error.report().expect("a discovery report");
    assert!(
        report.steps().iter().any(|s| s.url.ends_with("/prm")),
        "{report}"
    );
}

/// Approves like the headless authorizer, after a user took `think` to decide.
struct SlowUser {
    think: Duration,
}

impl Authorizer for SlowUser {
    fn authorize(
        &self,
        request: AuthorizationRequest,
        client: HttpClient,
    ) -> BoxFuture<'static, Result<AuthorizationResponse, Error>> {
        let think = self.think;
        Box::pin(async move {
            tokio::time::sleep(think).await;
            HeadlessAuthorizer::new().authorize(request, client).await
        })
    }
}

#[tokio::test(start_paused = true)]
async fn consent_time_is_not_counted_in_the_flow_deadline_and_has_its_own_bound() {
    let service = |think, consent| {
        OAuthLayer::new(ClientConfig::new(REDIRECT), SlowUser { think })
            .flow_deadline(Duration::from_secs(10))
            .consent_timeout(consent)
            .layer(server(
                Fault::StallToken,
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicUsize::new(0)),
            ))
    };
    // A user who takes 100 s, far past the 10 s deadline, still gets through.
    let patient = service(Duration::from_secs(100), Duration::from_secs(600));
    assert_eq!(patient.oneshot(request()).await.unwrap().status(), 200);

    // A user slower than the consent timeout does not.
    let impatient = service(Duration::from_secs(100), Duration::from_secs(60));
    let error = impatient.oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ConsentTimeout, "{error:#}");
    assert!(
        error
            .to_string()
            .contains("within the layer's consent timeout of 60 s"),
        "{error}"
    );
}

/// Tokio's timer, counting the sleeps it hands out.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Timer for Counting {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        TokioTimer.sleep(duration)
    }

    fn now(&self) -> std::time::Instant {
        TokioTimer.now()
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_with_a_valid_token_starts_no_timer() {
    let timer = Counting::default();
    let service = layer(Arc::new(MemoryStore::new()))
        .timer(timer.clone())
        .layer(server(
            Fault::StallToken,
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        ));
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    let after_flow = timer.0.load(Ordering::SeqCst);
    assert!(after_flow > 0, "the flow's steps were bounded");
    for _ in 0..10 {
        assert_eq!(
            service.clone().oneshot(request()).await.unwrap().status(),
            200
        );
    }
    assert_eq!(timer.0.load(Ordering::SeqCst), after_flow);
    assert_eq!(service.flows_started(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_users_answer_starts_the_deadline_over_for_the_code_exchange() {
    // Discovery takes 9 s of the 10 s deadline; after the user's answer, the code exchange
    // takes 3 s: within a deadline of its own, never cut by what discovery spent.
    let server = BoxCloneService::new(service_fn(|req: Req| async move {
        let path = req.uri().path().to_owned();
        if path == "/prm" {
            tokio::time::sleep(Duration::from_secs(9)).await;
        }
        if path == "/token" {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return Ok::<_, Infallible>(full(json(
                200,
                json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}),
            )));
        }
        if let Some(response) = flow_response(&req) {
            return Ok(full(response));
        }
        Ok(full(resource(&req, "at-1")))
    }));
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .flow_deadline(Duration::from_secs(10))
        .layer(server);
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
}
