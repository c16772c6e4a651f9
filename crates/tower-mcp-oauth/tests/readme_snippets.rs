//! The root README's Rust examples, compiled: each ```rust block of `README.md` appears here
//! word for word (line by line, indentation aside) inside code that gives it what the README
//! leaves to the reader (a client, a directory, the user's id), and a test fails when a block
//! is not found here, so the README cannot drift from code that compiles. They are built, not
//! run: they sign in at servers that do not exist here (the README's `connect` example and the
//! tests run the same calls against the testkit).

#![allow(unused, clippy::needless_question_mark)]

use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tower::{BoxError, ServiceBuilder};
use tower_mcp_oauth::{ClientConfig, OAuthBody};

type Http = Client<HttpConnector, OAuthBody<Full<Bytes>>>;
type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

// Kept as the README writes them: rustfmt would rewrap the lines the test below compares.
#[rustfmt::skip]
mod snippets {
use super::*;

mod use_it {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tower::{ServiceBuilder, ServiceExt};
    use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, McpServers, OAuthBody, OAuthLayer};

    async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // Plain HTTP for a local server; for https, build the Client with an HTTPS connector
        // (hyper-rustls, hyper-tls): the layer does not care which.
        let client = Client::builder(TokioExecutor::new()).build_http::<OAuthBody<Full<Bytes>>>();
        let config = ClientConfig::new("http://127.0.0.1:8976/callback").client_name("My Agent");
        let layer = OAuthLayer::new(config, HeadlessAuthorizer::new())
            // The same client calls other APIs too: the layer acts for this MCP server only, and
            // their 401s pass through untouched (no discovery, no registration, no token).
            .only_for(McpServers::prefixes(["http://127.0.0.1:3000/mcp"])?);
        // Each sub-request of a flow is bounded (30 s, body included), and so is the flow
        // (2 min, consent not counted): no outer Timeout is needed.
        let service = ServiceBuilder::new().layer(layer).service(client);

        let request = http::Request::post("http://127.0.0.1:3000/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(Bytes::from(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)))?;
        let response = service.oneshot(request).await?;
        Ok(())
    }
}

async fn loopback(client: Http, state_dir: &Path) -> Result {
    use tower_mcp_oauth::loopback::LoopbackReceiver;
    use tower_mcp_oauth::{ClientConfig, FileStore, OAuthLayer};

    let receiver = LoopbackReceiver::builder().open_browser(true).bind().await?; // 127.0.0.1, a free port
    let config = ClientConfig::new(receiver.redirect_uri()).client_name("My CLI");
    let layer = OAuthLayer::new(config, receiver.clone())
        .token_store(FileStore::new(state_dir)?); // the next run logs in silently
    let service = ServiceBuilder::new().layer(layer).service(client);
    // On a 401 the layer prints the URL, opens the browser and waits (5 min) for
    // http://127.0.0.1:PORT/callback; the listener stays bound while the receiver lives.
    Ok(())
}

async fn web(http: Http, user_id: String, raw_query: &str) -> Result {
    use tower_mcp_oauth::web::{ConnectRequired, WebLogin};
    use tower_mcp_oauth::{ClientConfig, HttpClient, DEFAULT_MAX_RESPONSE_BYTES};

    let login = WebLogin::new(ClientConfig::new("https://forum.example.com/callback"),
                              HttpClient::from_service(http.clone(), DEFAULT_MAX_RESPONSE_BYTES));
    let url = login.start(&user_id, "https://mcp.example.com/mcp").await?;  // GET /connect: 302 there
    login.complete(&user_id, raw_query).await?;  // GET /callback: the state must be this user's
    // Each user's MCP calls carry their own token; not connected => ConnectRequired.
    let svc = ServiceBuilder::new().layer(login.layer_for(&user_id)).service(http);
    Ok(())
}

async fn web_fleet(config: ClientConfig, client: tower_mcp_oauth::HttpClient) -> Result {
    use tower_mcp_oauth::redis::RedisStore;
    use tower_mcp_oauth::web::WebLogin;

    let redis = RedisStore::connect("redis://redis.internal:6379/").await?.prefix("forum");
    let login = WebLogin::new(config, client)
        .token_store(redis.clone())
        .pending_login_store(redis)
        // A user's refresh cut off by a closed browser tab still writes its rotated tokens.
        .spawn_flows_with(|flow| { tokio::spawn(flow); });
    Ok(())
}

async fn workers() -> Result {
    use std::time::Duration;
    use tower_mcp_oauth::redis::RedisStore;
    use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer};

    // Every process of the fleet shares one login per resource and one refresh per rotation.
    let store = RedisStore::connect("redis://127.0.0.1:6379/").await? // ErrorKind::Store if unreachable
        .prefix("my-agent")                    // keys: my-agent:{tokens,client,lock}:<url>
        .lock_ttl(Duration::from_secs(30));    // a crashed refresher's lease expires
    let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new())
        .token_store(store)
        // A refresh whose callers are all cancelled still writes the rotated tokens it received.
        .spawn_flows_with(|flow| { tokio::spawn(flow); });
    Ok(())
}

/// The application's single sign-on session, which holds the user's ID token.
struct Sso;

impl Sso {
    fn current_id_token(&self) -> Result<String, BoxError> {
        Ok("the user's ID token".to_owned())
    }
}

fn no_user(secret: String, sso: Sso) -> Result {
    use tower_mcp_oauth::grants::{AssertionRequest, EnterpriseIdp};
    use tower_mcp_oauth::{AssertionAudience, ClientConfig, ClientKey, EnvAssertion, FileAssertion, HeadlessAuthorizer, OAuthLayer, PreRegisteredClient};

    // Workload identity (SEP-1933): the platform's token in a jwt-bearer grant, re-read on every grant.
    let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:1/cb"), HeadlessAuthorizer::new())
        .workload_identity(FileAssertion::new("/var/run/secrets/tokens/mcp")); // or EnvAssertion::new("ACTIONS_ID_TOKEN"),
                                                                               // or |req: &AssertionRequest| Ok(mint(req)?)

    // Enterprise-managed authorization (SEP-990): the user's ID token -> ID-JAG at the IdP -> token at the AS.
    let config = ClientConfig::new("http://127.0.0.1:1/cb")
        .pre_registered(PreRegisteredClient::new("mcp-client").with_secret(secret).for_issuer("https://auth.example.com"));
    let layer = OAuthLayer::new(config, HeadlessAuthorizer::new())
        .enterprise_managed(EnterpriseIdp::new("https://idp.example.com/oauth2/token").client_id("idp-client"),
                            move |_: &AssertionRequest| Ok(sso.current_id_token()?));

    // private_key_jwt (RFC 7523 §2.2) on every token request: code exchange, refresh, client credentials, jwt-bearer.
    let key = ClientKey::from_pkcs8_pem(&std::fs::read_to_string("client-key.pem")?)?; // EC P-256, RSA or Ed25519
    // let key = ClientKey::from_signer(my_kms_signer);                                 // an HSM or KMS (JwsSigner)
    let config = ClientConfig::new("http://127.0.0.1:1/cb")
        .pre_registered(PreRegisteredClient::new("my-app").with_private_key(key).for_issuer("https://auth.example.com"));
    Ok(())
}

fn device(state_dir: &Path) -> Result {
    use std::time::Duration;
    use tower_mcp_oauth::FileStore;
    use tower_mcp_oauth::{ClientConfig, HeadlessAuthorizer, OAuthLayer, StderrPrompt, UserCode};

    let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1/unused"), HeadlessAuthorizer::new())
        .device_authorization(StderrPrompt) // or |code: &UserCode| show(&code.verification_uri, &code.user_code)
        .consent_timeout(Duration::from_secs(600))
        .token_store(FileStore::new(state_dir)?);
    // On a 401: "To authorize, open https://as.example.com/device on any device and enter the code
    // WDJB-MJHT"; the layer polls at the server's interval (sleeping on its Timer) until the user
    // approves there.
    Ok(())
}

fn dpop(state_dir: &Path) -> Result {
    use tower_mcp_oauth::{ClientConfig, Dpop, DpopKey, DpopPolicy, FileStore, HeadlessAuthorizer, OAuthLayer};

    let key = DpopKey::from_pkcs8_pem(&std::fs::read_to_string("dpop-key.pem")?)?; // ErrorKind::InvalidDpopKey
    let layer = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new())
        .dpop(Dpop::new()
            .key(key)                      // default: one generated per layer, when first needed
            .policy(DpopPolicy::Always))   // default IfOffered; Never for bearer tokens only
        .token_store(FileStore::new(state_dir)?); // the key is stored with the tokens it is bound to
    Ok(())
}

async fn rmcp_users() -> Result {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::{transport::StreamableHttpClientTransport, ServiceExt};
    use tower_mcp_oauth::{rmcp::TowerHttpClient, ClientConfig, HeadlessAuthorizer};

    let client = TowerHttpClient::http(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new());
    let config = StreamableHttpClientTransportConfig::with_uri("http://127.0.0.1:3000/mcp");
    let mcp = ().serve(StreamableHttpClientTransport::with_client(client, config)).await?;
    let tools = mcp.list_all_tools().await?; // the 401, discovery, consent and token happened inside
    // https: TowerHttpClient::with_connector(a TLS connector, OAuthLayer::new(config, authorizer))
    Ok(())
}

async fn reqwest_users() -> Result {
    use tower::Layer;
    use tower_mcp_oauth::{reqwest::ReqwestService, rmcp::TowerHttpClient, ClientConfig, HeadlessAuthorizer, OAuthLayer};

    let builder = reqwest::Client::builder().proxy(reqwest::Proxy::all("http://proxy.corp.example:3128")?);
    let inner = ReqwestService::from_builder(builder)?; // redirects off: the layer has rules for them
    let service = OAuthLayer::new(ClientConfig::new("http://127.0.0.1:8976/callback"), HeadlessAuthorizer::new()).layer(inner);
    let client = TowerHttpClient::new(service); // rmcp over reqwest, as rmcp's own client is
    Ok(())
}

/// Retries a request once more when it failed or answered 5xx (whatever the error type of the
/// layers it wraps: here the OAuth layer's, through `FollowRedirect`).
#[derive(Clone)]
struct RetryServerErrors(usize);

impl<Res, E> tower::retry::Policy<http::Request<Full<Bytes>>, http::Response<Res>, E>
    for RetryServerErrors
{
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut http::Request<Full<Bytes>>,
        result: &mut std::result::Result<http::Response<Res>, E>,
    ) -> Option<Self::Future> {
        let failed = result.as_ref().map_or(true, |r| r.status().is_server_error());
        (failed && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }

    fn clone_request(&mut self, req: &http::Request<Full<Bytes>>) -> Option<http::Request<Full<Bytes>>> {
        let mut out = http::Request::new(req.body().clone());
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.headers_mut() = req.headers().clone();
        Some(out)
    }
}

fn layer_order(client: Http, config: ClientConfig, authorizer: tower_mcp_oauth::HeadlessAuthorizer) {
    use std::time::Duration;
    use tower_http::follow_redirect::FollowRedirectLayer;
    use tower_http::trace::TraceLayer;
    use tower_mcp_oauth::OAuthLayer;
    let policy = RetryServerErrors(1);

    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())      // outside: one span per call (inside, it would see every sub-request)
        .timeout(Duration::from_secs(900))      // outside, optional: the caller's whole wait, above the layer's own limits
        .retry(policy)                          // outside: a retried request is authorized like any other
        .layer(FollowRedirectLayer::new())      // outside: every hop comes back through the layer
        .layer(OAuthLayer::new(config, authorizer))
        .concurrency_limit(8)                   // inside: the flow's sub-requests still get through
        .buffer(64)                             // inside or outside: no slot is held while a user consents
        .service(client);
    is_a_client(&service);
}

/// Pins a stack's request type, as a caller's first request would.
fn is_a_client<S: tower::Service<http::Request<Full<Bytes>>>>(_: &S) {}
}

/// The README's ```rust blocks, each as a list of its lines, trimmed.
fn readme_blocks() -> Vec<Vec<String>> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let mut blocks = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in text.lines() {
        match &mut block {
            None if line.trim_start().starts_with("```rust") => block = Some(Vec::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(block.take()),
            Some(lines) => lines.push(line.trim().to_owned()),
        }
    }
    blocks
}

#[test]
fn every_rust_block_of_the_readme_is_compiled_here() {
    let here: Vec<String> = include_str!("readme_snippets.rs")
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    let blocks = readme_blocks();
    assert!(blocks.len() >= 10, "{} blocks found", blocks.len());
    for block in blocks {
        let block: Vec<&String> = block.iter().filter(|l| !l.is_empty()).collect();
        let here: Vec<&String> = here.iter().filter(|l| !l.is_empty()).collect();
        assert!(
            here.windows(block.len()).any(|w| w == block.as_slice()),
            "this README block is not compiled in tests/readme_snippets.rs (add it there, word \
             for word):\n{}",
            block
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
