//! A server signed in to the 2025-03-26 way (no resource metadata: tokens without `resource`,
//! good for its whole origin) that later publishes resource metadata and checks a token's
//! audience: its `401` is answered with a refresh asking for the resource it names, and the
//! new tokens, bound to it, replace the old ones where they were kept.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_flow::secrets::RefreshToken;
use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, AS, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{
    ClientAuthMethod, ClientConfig, HeadlessAuthorizer, MemoryStore, OAuthBody, OAuthLayer,
    TokenSet, TokenStore, TokenType,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

/// The server after its upgrade: `/mcp` and `/other` accept only a token issued for the
/// resource `{RS}/mcp` (`at-2`, which the token endpoint gives for a refresh asking for it);
/// every request and token request is noted.
fn upgraded_server(
    seen: Arc<Mutex<Vec<String>>>,
) -> BoxCloneService<Req, http::Response<Full<Bytes>>, Infallible> {
    BoxCloneService::new(service_fn(move |req: Req| {
        let seen = Arc::clone(&seen);
        async move {
            if let Some(response) = flow_response(&req) {
                return Ok(response);
            }
            let path = req.uri().path().to_owned();
            let bearer = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            if path == "/token" {
                let body = http_body_util::BodyExt::collect(req.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let form: Vec<(String, String)> =
                    url::form_urlencoded::parse(&body).into_owned().collect();
                let param = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                seen.lock().unwrap().push(format!(
                    "token {} resource={}",
                    param("grant_type").unwrap_or_default(),
                    param("resource").unwrap_or_default()
                ));
                let for_resource = param("resource") == Some(format!("{RS}/mcp"));
                let access = if for_resource { "at-2" } else { "at-1-again" };
                return Ok(json(
                    200,
                    json!({"access_token": access, "token_type": "Bearer", "refresh_token": "rt-2", "expires_in": 3600}),
                ));
            }
            seen.lock()
                .unwrap()
                .push(format!("{path} {}", bearer.clone().unwrap_or_default()));
            Ok(match bearer.as_deref() {
                Some("Bearer at-2") => json(200, json!({"ok": true})),
                _ => unauthorized(),
            })
        }
    }))
}

#[tokio::test]
async fn tokens_of_the_2025_03_26_path_are_refreshed_for_the_resource_named_later() {
    let origin = format!("{RS}/");
    let store = Arc::new(MemoryStore::new());
    let legacy = TokenSet::new("at-1", TokenType::Bearer, AS, "c")
        .with_refresh_token(Some(RefreshToken::new("rt-1".into())))
        .with_token_endpoint(Some(format!("{AS}/token")), Some(ClientAuthMethod::None));
    store.save_tokens(&origin, &legacy).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::clone(&store))
    .layer(upgraded_server(Arc::clone(&seen)));
    let request = |path: &str| {
        http::Request::post(format!("{RS}{path}"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };

    let response = service.clone().oneshot(request("/mcp")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "/mcp Bearer at-1".to_owned(),
            format!("token refresh_token resource={RS}/mcp"),
            "/mcp Bearer at-2".to_owned(),
        ]
    );
    // Kept where the old ones were (a fleet's other processes, and the next run, find them
    // there), now bound to the resource.
    let kept = store.load_tokens(&origin).await.unwrap().unwrap();
    assert_eq!(kept.access_token().secret(), "at-2");
    assert_eq!(kept.resource(), Some(format!("{RS}/mcp").as_str()));
    // And the next request goes with them, no flow.
    seen.lock().unwrap().clear();
    let again = service.clone().oneshot(request("/mcp")).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(*seen.lock().unwrap(), ["/mcp Bearer at-2".to_owned()]);
}
