//! A store keeps one client registration per issuer. When another application sharing it (a
//! desktop app and a CLI on one store, two web apps on one Redis) holds one with its own
//! redirect URI, a new login registers its own client, and that registration takes the slot
//! only once it has got tokens: a login that fails or is abandoned leaves the other
//! application's registration (and, for a confidential client, its refresh) as it was.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_flow::secrets::ClientSecret;
use mcp_oauth_testkit::scripted::{flow_response, json, resource, AS, RS};
use serde_json::json;
use tokio::sync::Notify;
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, ClientRegistration, ErrorKind, HeadlessAuthorizer, HttpClient, MemoryStore,
    OAuthBody, OAuthLayer, TokenStore,
};

use support::consent::HeldConsent;

type Req = http::Request<OAuthBody<Full<Bytes>>>;

#[tokio::test]
async fn a_registration_another_application_uses_is_replaced_only_by_one_that_got_tokens() {
    let store = Arc::new(MemoryStore::new());
    store.save_client(&others_registration()).await.unwrap();
    // The token endpoint refuses the code until told otherwise.
    let refuse = Arc::new(AtomicBool::new(true));
    let server = service_fn({
        let refuse = Arc::clone(&refuse);
        move |req: Req| {
            let refuse = refuse.load(Ordering::SeqCst);
            async move {
                if req.uri().path() == "/token" {
                    return Ok::<_, Infallible>(if refuse {
                        json(400, json!({"error": "invalid_grant"}))
                    } else {
                        json(200, json!({"access_token": "at-1", "token_type": "Bearer"}))
                    });
                }
                if let Some(response) = flow_response(&req) {
                    return Ok(response);
                }
                Ok(resource(&req, "at-1"))
            }
        }
    });
    // A process of this application (the failure of one is remembered for a while by its
    // layer: the login is tried again by the next process).
    let process = || {
        OAuthLayer::new(
            ClientConfig::new("http://localhost:3000/callback"),
            HeadlessAuthorizer::new(),
        )
        .token_store(Arc::clone(&store))
        .layer(server.clone())
    };
    let request = || {
        http::Request::post(format!("{RS}/mcp"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let error = process().oneshot(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TokenRejected, "{error:#}");
    let kept = store.load_client(AS).await.unwrap().unwrap();
    assert_eq!(
        kept.client_id, "other-app",
        "a login with no tokens took the slot"
    );

    refuse.store(false, Ordering::SeqCst);
    let response = process().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let now = store.load_client(AS).await.unwrap().unwrap();
    assert_eq!(
        now.client_id, "c",
        "the registration its tokens need was not kept"
    );
}

/// A login a logout overtakes (the user logs out while at the consent page) gets tokens the
/// layer does not keep: the registration they came with is not kept either.
#[tokio::test]
async fn a_login_a_logout_overtook_leaves_the_other_applications_registration() {
    let store = Arc::new(MemoryStore::new());
    store.save_client(&others_registration()).await.unwrap();
    let server = service_fn(|req: Req| async move {
        if req.uri().path() == "/token" {
            return Ok::<_, Infallible>(json(
                200,
                json!({"access_token": "at-1", "token_type": "Bearer"}),
            ));
        }
        Ok(flow_response(&req).unwrap_or_else(|| resource(&req, "at-1")))
    });
    let (reached, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeldConsent {
            reached: Arc::clone(&reached),
            release: Arc::clone(&release),
        },
    )
    .token_store(Arc::clone(&store));
    let service = layer.clone().layer(server);
    let url = format!("{RS}/mcp");
    let request = tokio::spawn({
        let url = url.clone();
        async move {
            let request = http::Request::post(url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            service.oneshot(request).await
        }
    });
    reached.notified().await;
    layer
        .logout(&url, &HttpClient::from_service(server, 1 << 20))
        .await
        .unwrap();
    release.notify_one();
    let error = request.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoggedOut, "{error:#}");
    let kept = store.load_client(AS).await.unwrap().unwrap();
    assert_eq!(
        kept.client_id, "other-app",
        "a login whose tokens were dropped took the slot"
    );
}

fn others_registration() -> ClientRegistration {
    ClientRegistration {
        issuer: AS.into(),
        client_id: "other-app".into(),
        client_secret: Some(ClientSecret::new("other-secret".into())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        redirect_uris: vec!["https://other.example.com/callback".into()],
        grant_types: Vec::new(),
    }
}
