//! `OAuthLayer::only_for`: one client shared by an MCP server and a REST API. The MCP server is
//! authorized as usual; the REST API's Bearer `401` (an expired token of its own) comes back
//! untouched, with no discovery, registration or store lookup, and its requests never get the
//! MCP token.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mcp_oauth_testkit::scripted::{flow_response, json, unauthorized, Resp, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{
    BoxFuture, ClientConfig, ClientRegistration, Error, HeadlessAuthorizer, McpServers,
    MemoryStore, OAuthBody, OAuthLayer, Replaced, TokenSet, TokenStore,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

/// The REST API on another origin of the same client.
const API: &str = "http://127.0.0.1:9";

/// A store that records every call it gets.
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    calls: Mutex<Vec<String>>,
}

impl Recording {
    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl TokenStore for Recording {
    fn load_tokens<'a>(
        &'a self,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        self.note(format!("load_tokens {resource}"));
        self.inner.load_tokens(resource)
    }
    fn save_tokens<'a>(
        &'a self,
        resource: &'a str,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.note(format!("save_tokens {resource}"));
        self.inner.save_tokens(resource, tokens)
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        resource: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        self.note(format!("compare_and_swap_tokens {resource}"));
        self.inner.compare_and_swap_tokens(resource, current, new)
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.note(format!("load_client {issuer}"));
        self.inner.load_client(issuer)
    }
    fn save_client<'a>(
        &'a self,
        registration: &'a ClientRegistration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.note(format!("save_client {}", registration.issuer));
        self.inner.save_client(registration)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.note(format!("remove_client {issuer}"));
        self.inner.remove_client(issuer)
    }
}

/// The MCP server (scripted, at `RS`) and the REST API (at `API`, whose token has expired:
/// every request gets a Bearer `401`), behind one client. Records every request it sees.
fn client(seen: Arc<Mutex<Vec<String>>>) -> BoxCloneService<Req, Resp, Infallible> {
    BoxCloneService::new(service_fn(move |req: Req| {
        let seen = Arc::clone(&seen);
        async move {
            let bearer = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            seen.lock().unwrap().push(format!(
                "{} {} {}",
                req.method(),
                req.uri(),
                bearer.as_deref().unwrap_or("-")
            ));
            if req.uri().authority().is_some_and(|a| a == "127.0.0.1:9") {
                let response = http::Response::builder()
                    .status(401)
                    .header(
                        "www-authenticate",
                        r#"Bearer error="invalid_token", error_description="expired""#,
                    )
                    .body(Full::new(Bytes::from_static(
                        b"{\"error\":\"token expired\"}",
                    )))
                    .unwrap();
                return Ok(response);
            }
            if let Some(response) = flow_response(&req) {
                return Ok(response);
            }
            Ok(match req.uri().path() {
                "/token" => json(200, json!({"access_token": "at-1", "token_type": "Bearer"})),
                _ if bearer.as_deref() == Some("Bearer at-1") => json(200, json!({"ok": true})),
                _ => unauthorized(),
            })
        }
    }))
}

fn get(url: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(url)
        .header("authorization", "Bearer the-apis-own-token")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn outside_its_servers_the_layer_passes_responses_through_untouched() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::new(Recording::default());
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::clone(&store))
    .only_for(McpServers::prefixes([format!("{RS}/mcp")]).unwrap());
    let service = layer.layer(client(Arc::clone(&seen)));

    // The REST API first: its 401 comes back as it was sent, headers and body.
    let response = service
        .clone()
        .oneshot(get(&format!("{API}/v1/me")))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token", error_description="expired""#
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "{\"error\":\"token expired\"}");
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("GET {API}/v1/me Bearer the-apis-own-token")],
        "one request, with the caller's own header, and no probe or registration"
    );
    assert!(
        store.calls().is_empty(),
        "no store lookup: {:?}",
        store.calls()
    );
    assert_eq!(service.flows_started(), 0);

    // The MCP server is authorized as usual...
    let mcp = http::Request::post(format!("{RS}/mcp"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(service.clone().oneshot(mcp).await.unwrap().status(), 200);
    assert_eq!(service.flows_started(), 1);

    // ...and its token never goes to the API, even on the same path.
    seen.lock().unwrap().clear();
    let stored_calls = store.calls().len();
    let plain = http::Request::get(format!("{API}/mcp"))
        .body(Full::default())
        .unwrap();
    assert_eq!(service.clone().oneshot(plain).await.unwrap().status(), 401);
    assert_eq!(*seen.lock().unwrap(), [format!("GET {API}/mcp -")]);
    assert_eq!(store.calls().len(), stored_calls);
    assert_eq!(service.flows_started(), 1);
}

#[tokio::test]
async fn without_a_limit_the_same_401_starts_a_flow() {
    // The contrast that makes the test above mean something: the default layer acts on every
    // Bearer 401, and probes the REST API's origin.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    );
    let service = layer.layer(client(Arc::clone(&seen)));
    let _ = service.clone().oneshot(get(&format!("{API}/v1/me"))).await;
    assert_eq!(service.flows_started(), 1);
    assert!(seen.lock().unwrap().len() > 1, "{:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn a_predicate_limits_the_layer_too() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
    .only_for(McpServers::matching(|uri| uri.path().starts_with("/mcp")));
    let service = layer.layer(client(Arc::clone(&seen)));
    assert_eq!(
        service
            .clone()
            .oneshot(get(&format!("{API}/v1/me")))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(service.flows_started(), 0);
    let mcp = http::Request::post(format!("{RS}/mcp"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(service.clone().oneshot(mcp).await.unwrap().status(), 200);
    assert_eq!(service.flows_started(), 1);
}

#[tokio::test]
async fn a_server_that_wants_no_token_has_the_store_read_once_not_per_request() {
    // A server the layer covers that answers without asking for a token: the first request
    // looks in the store (an earlier run may have left tokens), the next ones know there are
    // none and send at once.
    let store = Arc::new(Recording::default());
    let open = service_fn(|_req: Req| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"{}"))))
    });
    let layer = OAuthLayer::new(
        ClientConfig::new("http://127.0.0.1:1/cb"),
        HeadlessAuthorizer::new(),
    )
    .token_store(Arc::clone(&store));
    let service = layer.layer(BoxCloneService::new(open));
    let request = || {
        http::Request::post(format!("{RS}/mcp"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let loads = |store: &Recording| {
        let calls = store.calls();
        calls
            .iter()
            .filter(|c| c.starts_with("load_tokens"))
            .count()
    };
    let first = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(first.status(), 200);
    let after_first = loads(&store);
    assert!(after_first > 0, "the first request looks in the store");
    for _ in 0..2 {
        let response = service.clone().oneshot(request()).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(loads(&store), after_first, "{:?}", store.calls());
}
