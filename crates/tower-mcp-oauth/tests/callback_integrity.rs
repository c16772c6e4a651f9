//! Callback integrity end to end, through the layer, a loopback receiver and the testkit's
//! authorization server over loopback TCP: a callback with a forged `state` (a valid code and
//! the right `iss`), an `error=` callback with a forged `state`, and a callback with the right
//! `state` but a foreign `iss` each end the authorization at once, with the browser shown an
//! error page and no token request made.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mcp_oauth_testkit::{Testkit, TestkitConfig};
use serde_json::json;
use support::{http_client, jsonrpc};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::loopback::LoopbackReceiver;
use tower_mcp_oauth::{ClientConfig, ErrorKind, MemoryStore, OAuthLayer, TokenStore};
use url::Url;

/// How the "browser" tampers with the authorization server's redirect before following it.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    ForgeState,
    ErrorWithForgedState,
    ForeignIss,
}

fn tampered(location: &Url, tamper: Tamper) -> Url {
    let mut out = location.clone();
    let pairs: Vec<(String, String)> = location
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        match (tamper, k.as_str()) {
            (Tamper::ForgeState | Tamper::ErrorWithForgedState, "state") => {
                query.append_pair("state", "forged-by-a-web-page");
            }
            (Tamper::ErrorWithForgedState, "code") => {
                query.append_pair("error", "access_denied");
            }
            (Tamper::ForeignIss, "iss") => {
                query.append_pair("iss", "https://evil.example.com");
            }
            _ => {
                query.append_pair(&k, &v);
            }
        }
    }
    out.set_query(Some(&query.finish()));
    out
}

/// Plays the browser: follows the authorization URL to the server's redirect, tampers with
/// it, and lands on the loopback receiver. Returns the status of the receiver's page.
async fn browse(authorization_url: Url, tamper: Tamper) -> http::StatusCode {
    let browser = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let redirect = browser
        .get(authorization_url.as_str().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302, "the testkit approves at once");
    let location: Url = redirect.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let callback = tampered(&location, tamper);
    browser
        .get(callback.as_str().parse().unwrap())
        .await
        .unwrap()
        .status()
}

async fn run(tamper: Tamper) -> (tower_mcp_oauth::Error, Testkit, Vec<http::StatusCode>) {
    let kit = Testkit::start(TestkitConfig::default()).await.unwrap();
    let pages = Arc::new(Mutex::new(Vec::new()));
    let (seen, page_log) = (Arc::new(Mutex::new(None)), Arc::clone(&pages));
    let announced = Arc::clone(&seen);
    let receiver = LoopbackReceiver::builder()
        // The flow would otherwise wait 5 minutes; the test must end long before.
        .timeout(Duration::from_secs(60))
        .on_authorization_url(move |url| {
            *announced.lock().unwrap() = Some(url.clone());
            let (url, page_log) = (url.clone(), Arc::clone(&page_log));
            tokio::spawn(async move {
                let status = browse(url, tamper).await;
                page_log.lock().unwrap().push(status);
            });
        })
        .bind()
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let layer = OAuthLayer::new(ClientConfig::new(receiver.redirect_uri()), receiver.clone())
        .token_store(Arc::clone(&store) as Arc<dyn TokenStore>);
    let service = ServiceBuilder::new().layer(layer).service(http_client());
    let request = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    let error = tokio::time::timeout(Duration::from_secs(10), service.oneshot(request))
        .await
        .expect("the authorization ends at once, not at the receiver's timeout")
        .unwrap_err();
    assert!(seen.lock().unwrap().is_some(), "the flow reached consent");
    assert!(
        store
            .load_tokens(&kit.resource_url())
            .await
            .unwrap()
            .is_none(),
        "nothing was stored"
    );
    // The browser's last page has been answered by the time the flow has its error.
    for _ in 0..100 {
        if !pages.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pages = pages.lock().unwrap().clone();
    (error, kit, pages)
}

fn token_requests(kit: &Testkit) -> usize {
    kit.requests()
        .iter()
        .filter(|r| r.path.ends_with("/token"))
        .count()
}

#[tokio::test]
async fn a_forged_state_ends_the_authorization_at_once_without_a_token_request() {
    let (error, kit, pages) = run(Tamper::ForgeState).await;
    assert_eq!(error.kind(), ErrorKind::StateMismatch, "{error:#}");
    assert!(
        !error.to_string().contains("forged-by-a-web-page"),
        "{error}"
    );
    assert_eq!(token_requests(&kit), 0);
    assert_eq!(pages, [http::StatusCode::BAD_REQUEST]);
}

#[tokio::test]
async fn an_error_callback_with_a_forged_state_ends_it_too() {
    let (error, kit, pages) = run(Tamper::ErrorWithForgedState).await;
    assert_eq!(error.kind(), ErrorKind::StateMismatch, "{error:#}");
    assert_eq!(token_requests(&kit), 0);
    assert_eq!(pages, [http::StatusCode::BAD_REQUEST]);
}

#[tokio::test]
async fn a_foreign_iss_ends_it_without_a_token_request() {
    let (error, kit, pages) = run(Tamper::ForeignIss).await;
    assert_eq!(
        error.kind(),
        ErrorKind::IssuerParameterMismatch,
        "{error:#}"
    );
    assert_eq!(token_requests(&kit), 0);
    assert_eq!(pages, [http::StatusCode::BAD_REQUEST]);
}
