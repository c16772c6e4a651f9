//! A store keeps one client registration per issuer. When another application sharing it (a
//! desktop app and a CLI on one store, two web apps on one Redis) holds one with its own
//! redirect URI, a new login registers its own client, and that registration takes the slot
//! only once it has got tokens: a login that fails or is abandoned leaves the other
//! application's registration (and, for a confidential client, its refresh) as it was.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_flow::secrets::ClientSecret;
use mcp_oauth_testkit::scripted::{flow_response, json, resource, AS, RS};
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, ClientRegistration, ErrorKind, HeadlessAuthorizer, MemoryStore, OAuthBody,
    OAuthLayer, TokenStore,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

#[tokio::test]
async fn a_registration_another_application_uses_is_replaced_only_by_one_that_got_tokens() {
    let store = Arc::new(MemoryStore::new());
    let others = ClientRegistration {
        issuer: AS.into(),
        client_id: "other-app".into(),
        client_secret: Some(ClientSecret::new("other-secret".into())),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        redirect_uris: vec!["https://other.example.com/callback".into()],
    };
    store.save_client(&others).await.unwrap();
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
