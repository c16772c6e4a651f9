//! A client the token endpoint refuses (`invalid_client`) is dropped from the store only while
//! it is still the one stored: a web app's users and a fleet's processes share registrations,
//! and one registered anew since the refusal is not the refused one.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mcp_oauth_flow::secrets::{ClientSecret, RefreshToken};
use mcp_oauth_testkit::scripted::{flow_response, json, resource, AS, RS};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};
use tower_mcp_oauth::{
    BoxFuture, ClientAuthMethod, ClientConfig, ClientRegistration, Error, HeadlessAuthorizer,
    MemoryStore, OAuthBody, OAuthLayer, Replaced, StoreLock, TokenSet, TokenStore, TokenType,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

const REDIRECT: &str = "http://localhost:3000/callback";

fn registration(client_id: &str) -> ClientRegistration {
    ClientRegistration {
        issuer: AS.into(),
        client_id: client_id.into(),
        client_secret: Some(ClientSecret::new(format!("secret-{client_id}"))),
        client_secret_expires_at: None,
        token_endpoint_auth_method: Some("client_secret_basic".into()),
        redirect_uris: vec![REDIRECT.into()],
        grant_types: Vec::new(),
    }
}

/// A store shared with another process, which registers a new client (`fresh`) with the
/// issuer just before this process drops the one refused. Notes every removal asked of it.
struct Shared {
    inner: MemoryStore,
    removals: Mutex<Vec<String>>,
}

impl TokenStore for Shared {
    fn load_tokens<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<Option<TokenSet>, Error>> {
        self.inner.load_tokens(r)
    }
    fn save_tokens<'a>(&'a self, r: &'a str, t: &'a TokenSet) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_tokens(r, t)
    }
    fn compare_and_swap_tokens<'a>(
        &'a self,
        r: &'a str,
        current: Option<&'a TokenSet>,
        new: Option<&'a TokenSet>,
    ) -> BoxFuture<'a, Result<Replaced, Error>> {
        self.inner.compare_and_swap_tokens(r, current, new)
    }
    fn load_client<'a>(
        &'a self,
        issuer: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClientRegistration>, Error>> {
        self.inner.load_client(issuer)
    }
    fn save_client<'a>(&'a self, r: &'a ClientRegistration) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.save_client(r)
    }
    fn remove_client<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.removals.lock().unwrap().push(format!("any {issuer}"));
        self.inner.remove_client(issuer)
    }
    fn remove_refused_client<'a>(
        &'a self,
        issuer: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // The other process's registration lands first.
            self.inner.save_client(&registration("fresh")).await?;
            let note = format!("refused {issuer} {client_id}");
            self.removals.lock().unwrap().push(note);
            self.inner.remove_refused_client(issuer, client_id).await
        })
    }
    fn lock<'a>(&'a self, r: &'a str) -> BoxFuture<'a, Result<StoreLock, Error>> {
        self.inner.lock(r)
    }
}

/// The MCP server and its authorization server: a refresh is refused with `invalid_client`,
/// a code exchange answered with `at-1`, which `/mcp` wants.
fn server() -> BoxCloneService<Req, http::Response<Full<Bytes>>, Infallible> {
    BoxCloneService::new(service_fn(|req: Req| async move {
        if req.uri().path() == "/token" {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let refresh = String::from_utf8_lossy(&body).contains("grant_type=refresh_token");
            return Ok(if refresh {
                json(401, json!({"error": "invalid_client"}))
            } else {
                json(200, json!({"access_token": "at-1", "token_type": "Bearer"}))
            });
        }
        if let Some(response) = flow_response(&req) {
            return Ok(response);
        }
        Ok(resource(&req, "at-1"))
    }))
}

#[tokio::test]
async fn a_refused_client_is_dropped_only_while_it_is_the_one_stored() {
    let store = Arc::new(Shared {
        inner: MemoryStore::new(),
        removals: Mutex::default(),
    });
    let resource = format!("{RS}/mcp");
    store.save_client(&registration("old")).await.unwrap();
    let expired = TokenSet::new("at-0", TokenType::Bearer, AS, "old")
        .with_refresh_token(Some(RefreshToken::new("rt-0".into())))
        .with_expires_at(Some(SystemTime::now() - Duration::from_secs(60)))
        .with_resource(Some(resource.clone()))
        .with_token_endpoint(
            Some(format!("{AS}/token")),
            Some(ClientAuthMethod::ClientSecretBasic),
        );
    store.save_tokens(&resource, &expired).await.unwrap();
    let service = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .token_store(Arc::clone(&store) as Arc<dyn TokenStore>)
        .layer(server());
    let request = http::Request::post(&resource)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    // The refresh is refused; a new authorization follows and succeeds.
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    // The layer asked to drop the refused client only, never any registration...
    assert_eq!(
        *store.removals.lock().unwrap(),
        [format!("refused {AS} old")]
    );
    // ...so the other process's registration is still there.
    let kept = store.load_client(AS).await.unwrap().unwrap();
    assert_eq!(kept.client_id, "fresh");
}
