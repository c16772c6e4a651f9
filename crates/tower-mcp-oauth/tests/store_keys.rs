//! Tokens are kept under their resource as the server's metadata spells it; a later run (or
//! another process) finds them for the server's URL whether or not one of the two ends in a
//! slash, and a logout removes them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_testkit::scripted::{flow_response, json, resource, AS, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{
    ClientConfig, HeadlessAuthorizer, HttpClient, MemoryStore, OAuthBody, OAuthLayer, TokenSet,
    TokenStore, TokenType,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

/// `/mcp` and `/mcp/` accept `Bearer at-1`; every request is noted.
fn server(
    seen: Arc<Mutex<Vec<String>>>,
) -> BoxCloneService<Req, http::Response<Full<Bytes>>, Infallible> {
    BoxCloneService::new(service_fn(move |req: Req| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(req.uri().path().to_owned());
            if let Some(response) = flow_response(&req) {
                return Ok(response);
            }
            Ok(match req.uri().path() {
                "/token" => json(400, json!({"error": "invalid_grant"})),
                _ => resource(&req, "at-1"),
            })
        }
    }))
}

fn layer(store: &Arc<MemoryStore>) -> OAuthLayer {
    OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::clone(store))
}

fn request(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(url)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

#[tokio::test]
async fn tokens_under_the_other_spelling_of_the_path_are_found() {
    for (kept_under, server_url) in [
        (format!("{RS}/mcp/"), format!("{RS}/mcp")),
        (format!("{RS}/mcp"), format!("{RS}/mcp/")),
    ] {
        let store = Arc::new(MemoryStore::new());
        let tokens = TokenSet::new("at-1", TokenType::Bearer, AS, "c");
        store.save_tokens(&kept_under, &tokens).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = layer(&store);
        let service = layer.clone().layer(server(Arc::clone(&seen)));

        // The first request goes with the stored token: no 401, no flow.
        let response = service.clone().oneshot(request(&server_url)).await.unwrap();
        assert_eq!(response.status(), 200, "{kept_under} for {server_url}");
        assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());

        // And a logout of the server removes them from the store (the authorization server
        // answers nothing: revocation is not what this is about).
        let nothing = HttpClient::from_fn(|_| async { Ok(http::Response::new(Bytes::new())) });
        let _ = layer.logout(&server_url, &nothing).await;
        assert!(store.load_tokens(&kept_under).await.unwrap().is_none());
    }
}
