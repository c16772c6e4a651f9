//! The address policy through the layer: URLs a server hands the client are refused before any
//! request when they point at a private, link-local or cloud-metadata address the MCP server
//! has no business sending the client to; a server on a private network may use its
//! neighbours; and with a resolver hook, host names are judged by what they resolve to, on
//! every request (DNS rebinding).
//!
//! The inner service is a mock that answers by URL and records every request, so servers can
//! sit at any address (nothing connects).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_testkit::scripted::{authorization_server, json, Resp};
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};
use tower_mcp_oauth::{
    AddressClass, AddressPolicy, BoxFuture, ClientConfig, Error, ErrorKind, HeadlessAuthorizer,
    OAuthBody, OAuthLayer, Resolver,
};

type Req = http::Request<OAuthBody<Full<Bytes>>>;

/// An MCP server at `rs` whose metadata names `issuer`, and that authorization server.
fn answer(req: &Req, rs: &str, issuer: &str, challenge_metadata: &str) -> Resp {
    let uri = req.uri().to_string();
    let path = req.uri().path();
    if uri.starts_with(rs) && path == "/mcp" {
        if req.headers().contains_key("authorization") {
            return json(200, json!({"ok": true}));
        }
        return http::Response::builder()
            .status(401)
            .header(
                "www-authenticate",
                format!(r#"Bearer resource_metadata="{challenge_metadata}""#),
            )
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if uri.starts_with(rs) && path == "/prm" {
        return json(
            200,
            json!({"resource": format!("{rs}/mcp"), "authorization_servers": [issuer]}),
        );
    }
    if let Some(response) = authorization_server(issuer, req) {
        return response;
    }
    match path {
        "/token" => json(200, json!({"access_token": "at", "token_type": "Bearer"})),
        _ => json(404, json!({})),
    }
}

/// Runs one call to `{rs}/mcp` through `layer`; the result and every URL requested.
async fn call(
    layer: OAuthLayer,
    rs: &'static str,
    issuer: &'static str,
    challenge_metadata: Option<&'static str>,
) -> (Result<u16, Error>, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let metadata = challenge_metadata.map_or_else(|| format!("{rs}/prm"), str::to_owned);
    let server = service_fn(move |req: Req| {
        log.lock().unwrap().push(req.uri().to_string());
        let response = answer(&req, rs, issuer, &metadata);
        async move { Ok::<_, Infallible>(response) }
    });
    let request = http::Request::get(format!("{rs}/mcp"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let result = layer
        .layer(server)
        .oneshot(request)
        .await
        .map(|r| r.status().as_u16());
    let seen = seen.lock().unwrap().clone();
    (result, seen)
}

fn layer() -> OAuthLayer {
    OAuthLayer::new(
        ClientConfig::new("http://localhost:3000/callback"),
        HeadlessAuthorizer::new(),
    )
}

fn refused(result: Result<u16, Error>) -> String {
    let error = result.expect_err("the flow must be refused");
    assert_eq!(error.kind(), ErrorKind::InsecureUrl, "{error}");
    error.to_string()
}

#[tokio::test]
async fn a_public_server_cannot_send_the_client_to_private_or_metadata_addresses() {
    const RS: &str = "https://mcp.example.com";
    for (issuer, rule) in [
        ("https://10.0.0.1", "private address"),
        ("https://169.254.169.254", "never fetched"),
        ("https://[fd00:ec2::254]", "never fetched"),
        ("https://100.64.1.1", "shared"),
        ("http://169.254.169.254", "must use https"),
    ] {
        let (result, seen) = call(layer(), RS, issuer, None).await;
        let error = refused(result);
        assert!(error.contains(rule), "{issuer}: {error}");
        // The resource and its metadata, and nothing at the refused address.
        assert_eq!(seen, [format!("{RS}/mcp"), format!("{RS}/prm")], "{issuer}");
    }
}

#[tokio::test]
async fn a_challenge_naming_cloud_metadata_is_refused_before_any_request() {
    const RS: &str = "https://mcp.example.com";
    let (result, seen) = call(
        layer(),
        RS,
        "https://as.example.com",
        Some("https://169.254.169.254/latest/meta-data/iam"),
    )
    .await;
    let error = refused(result);
    assert!(error.contains("169.254.169.254"), "{error}");
    assert_eq!(seen, [format!("{RS}/mcp")]);
}

#[tokio::test]
async fn a_private_server_may_use_a_private_authorization_server() {
    let (result, seen) = call(layer(), "https://10.1.2.3", "https://10.1.2.4", None).await;
    assert_eq!(result.unwrap(), 200, "{seen:#?}");
    assert!(seen.iter().any(|u| u.starts_with("https://10.1.2.4/token")));
}

#[tokio::test]
async fn the_layer_policy_can_allow_a_class() {
    let layer = layer().url_policy(AddressPolicy::new().allow(AddressClass::Private));
    let (result, _) = call(layer, "https://mcp.example.com", "https://10.0.0.1", None).await;
    assert_eq!(result.unwrap(), 200);
}

/// A fixed table of answers; a name listed twice answers with its second entry from its
/// second lookup on (a rebinding name).
#[derive(Debug, Default)]
struct Table {
    answers: HashMap<&'static str, Vec<&'static str>>,
    lookups: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

impl Table {
    fn with(mut self, host: &'static str, answers: &[&'static str]) -> Self {
        self.answers.insert(host, answers.to_vec());
        self
    }
}

impl Resolver for Table {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, Error>> {
        self.total.fetch_add(1, Ordering::SeqCst);
        let n = {
            let mut lookups = self.lookups.lock().unwrap();
            let n = lookups.entry(host.to_owned()).or_default();
            *n += 1;
            *n
        };
        let Some(answers) = self.answers.get(host) else {
            let unknown = Error::new(ErrorKind::Transport, format!("{host} is not in the table"));
            return Box::pin(async move { Err(unknown) });
        };
        let ip: IpAddr = answers[(n - 1).min(answers.len() - 1)].parse().unwrap();
        Box::pin(async move { Ok(vec![ip]) })
    }
}

/// A shared handle, so the test can count lookups after the layer took the resolver.
#[derive(Debug, Clone)]
struct Shared(Arc<Table>);

impl Resolver for Shared {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, Error>> {
        self.0.resolve(host, port)
    }
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_refused() {
    let table = Table::default()
        .with("mcp.example.com", &["93.184.216.34"])
        .with("as.example.com", &["10.0.0.7"]);
    let layer = layer().resolve_with(table);
    let (result, seen) = call(
        layer,
        "https://mcp.example.com",
        "https://as.example.com",
        None,
    )
    .await;
    let error = refused(result);
    assert!(error.contains("10.0.0.7"), "{error}");
    assert!(error.contains("as.example.com"), "{error}");
    assert!(
        seen.iter().all(|u| !u.contains("as.example.com")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_name_that_rebinds_is_caught_when_it_does() {
    // Public for the metadata fetch, the cloud metadata service for the registration.
    let table = Arc::new(
        Table::default()
            .with("mcp.example.com", &["93.184.216.34"])
            .with("as.example.com", &["203.0.114.1", "169.254.169.254"]),
    );
    let layer = layer().resolve_with(Shared(Arc::clone(&table)));
    let (result, seen) = call(
        layer,
        "https://mcp.example.com",
        "https://as.example.com",
        None,
    )
    .await;
    let error = refused(result);
    assert!(error.contains("169.254.169.254"), "{error}");
    assert!(
        seen.contains(&"https://as.example.com/.well-known/oauth-authorization-server".to_owned()),
        "{seen:?}"
    );
    assert!(seen.iter().all(|u| !u.ends_with("/register")), "{seen:?}");
    assert!(table.total.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn a_server_name_that_rebinds_does_not_vouch_for_the_private_network() {
    // The server's name is public when the flow first looks it up, then answers a private
    // address, as its neighbour's name does: the registration is refused, as the server is
    // what its first answer said.
    let table = Arc::new(
        Table::default()
            .with("mcp.example.com", &["93.184.216.34", "10.0.0.7"])
            .with("as.example.com", &["203.0.114.1", "10.0.0.8"]),
    );
    let layer = layer().resolve_with(Shared(Arc::clone(&table)));
    let (result, seen) = call(
        layer,
        "https://mcp.example.com",
        "https://as.example.com",
        None,
    )
    .await;
    let error = refused(result);
    assert!(error.contains("10.0.0.8"), "{error}");
    assert!(seen.iter().all(|u| !u.ends_with("/register")), "{seen:?}");
}

#[tokio::test]
async fn names_of_a_private_server_may_lead_to_its_network() {
    let table = Table::default()
        .with("mcp.internal", &["10.1.2.3"])
        .with("as.internal", &["10.1.2.4"]);
    let layer = layer().resolve_with(table);
    let (result, seen) = call(layer, "https://mcp.internal", "https://as.internal", None).await;
    assert_eq!(result.unwrap(), 200, "{seen:#?}");
}

/// A resolver that never answers (a DNS server gone quiet).
#[derive(Debug)]
struct Silent;

impl Resolver for Silent {
    fn resolve<'a>(&'a self, _: &'a str, _: u16) -> BoxFuture<'a, Result<Vec<IpAddr>, Error>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_lookup_that_never_answers_counts_against_the_request_timeout() {
    // The lookup is part of the sub-request: cut at the 5 s request timeout, never left to
    // the minute of the flow deadline (nor, in an authorizer's requests, to the consent
    // timeout).
    let layer = layer()
        .resolve_with(Silent)
        .request_timeout(std::time::Duration::from_secs(5))
        .flow_deadline(std::time::Duration::from_secs(60));
    let started = tokio::time::Instant::now();
    let (result, seen) = call(
        layer,
        "https://mcp.example.com",
        "https://as.example.com",
        None,
    )
    .await;
    let error = result.expect_err("no lookup answered");
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:#}");
    assert!(error.to_string().contains("within 5 s"), "{error}");
    assert_eq!(
        seen,
        ["https://mcp.example.com/mcp"],
        "nothing past the lookups"
    );
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(5));
}

/// A web app's logins check names too (`WebLogin::resolve_with`): its users type in the MCP
/// servers to connect, and one whose metadata names an authorization server inside the app's
/// network is refused before any request goes there. Without the resolver, the same login
/// goes ahead (what the check adds).
#[cfg(feature = "web")]
#[tokio::test]
async fn a_web_login_judges_names_by_their_addresses_too() {
    use tower_mcp_oauth::web::WebLogin;
    use tower_mcp_oauth::{HttpClient, DEFAULT_MAX_RESPONSE_BYTES};
    let login = |resolver: Option<Table>| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let (rs, issuer) = ("https://mcp.example.com", "https://as.example.com");
        let server = service_fn(move |req: Req| {
            log.lock().unwrap().push(req.uri().to_string());
            let response = answer(&req, rs, issuer, &format!("{rs}/prm"));
            async move { Ok::<_, Infallible>(response) }
        });
        let client = HttpClient::from_service(server, DEFAULT_MAX_RESPONSE_BYTES);
        let login = WebLogin::new(
            ClientConfig::new("https://app.example.com/callback"),
            client,
        );
        let login = match resolver {
            Some(table) => login.resolve_with(table),
            None => login,
        };
        (login, seen)
    };
    let table = Table::default()
        .with("mcp.example.com", &["93.184.216.34"])
        .with("as.example.com", &["10.0.0.7"]);
    let (guarded, seen) = login(Some(table));
    let error = guarded
        .start("alice", "https://mcp.example.com/mcp")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InsecureUrl, "{error}");
    assert!(error.to_string().contains("10.0.0.7"), "{error}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|u| !u.contains("as.example.com")),
        "{seen:?}"
    );

    let (open, seen) = login(None);
    let url = open.start("alice", "https://mcp.example.com/mcp").await;
    assert!(url.is_ok(), "{url:?}");
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|u| u.contains("as.example.com")));
}

/// A `*.localhost` name is loopback by its name (RFC 6761 §6.3), which is why plain http may go
/// to it; with a resolver, it must also resolve there: one that resolves off the host (a
/// resolver without the rule, a search domain) is refused before the request.
#[tokio::test]
async fn a_localhost_name_that_resolves_off_the_host_is_refused() {
    // The resolver knows `as.localhost`, not `localhost` itself, which is this host on every
    // system: a failed lookup of it is left to the name's rule.
    let table = |as_address: &'static str| Table::default().with("as.localhost", &[as_address]);
    let (rs, issuer) = ("http://localhost:3000", "http://as.localhost:9000");
    let (result, seen) = call(
        layer().resolve_with(table("93.184.216.34")),
        rs,
        issuer,
        None,
    )
    .await;
    let error = refused(result);
    assert!(error.contains("93.184.216.34"), "{error}");
    assert!(seen.iter().all(|u| !u.contains("as.localhost")), "{seen:?}");

    let (result, _) = call(layer().resolve_with(table("127.0.0.1")), rs, issuer, None).await;
    assert_eq!(result.unwrap(), 200);
    // A `*.localhost` name the resolver cannot answer is a failed lookup, not a pass: the
    // connector's own lookup could send it off the host.
    let unknown = Table::default();
    let (result, _) = call(layer().resolve_with(unknown), rs, issuer, None).await;
    let error = result.expect_err("as.localhost did not resolve");
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
}
