//! A tiny raw HTTP/1 client on hyper, one connection per request, and OAuth steps built on it.

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::codec::s256_challenge;
use crate::{DiscoveryLayout, Testkit};

/// A response, fully read.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Reply {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub(super) fn header(&self, name: &str) -> Option<String> {
        let value = self.headers.get(name)?;
        Some(value.to_str().ok()?.to_owned())
    }
}

/// Sends one request.
pub(super) async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let uri: http::Uri = url.parse().expect("url");
    let authority = uri.authority().expect("authority").to_string();
    let stream = TcpStream::connect(authority.as_str())
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body.into())).expect("request");
    let response = sender.send_request(request).await.expect("send");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

pub(super) async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], Bytes::new()).await
}

/// POSTs a form; `basic` adds client_secret_basic credentials.
pub(super) async fn post_form(
    url: &str,
    fields: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let authorization = basic.map(|(id, secret)| {
        use base64::Engine as _;
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(id), encode(secret));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    send(Method::POST, url, &headers, body).await
}

/// POSTs one JSON-RPC message to the MCP endpoint.
pub(super) async fn mcp(kit: &Testkit, token: Option<&str>, method: &str, params: Value) -> Reply {
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let authorization = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    send(
        Method::POST,
        &kit.resource_url(),
        &headers,
        message.to_string(),
    )
    .await
}

/// The authorize, token and register URLs of a kit's layout.
pub(super) fn endpoints(kit: &Testkit) -> (String, String, String) {
    let base = match kit.config().layout {
        DiscoveryLayout::LegacyMetadataAtOrigin => format!("{}/oauth", kit.resource_origin()),
        DiscoveryLayout::LegacyEndpointFallback => kit.resource_origin(),
        _ => kit.issuer(),
    };
    (
        format!("{base}/authorize"),
        format!("{base}/token"),
        format!("{base}/register"),
    )
}

pub(super) const REDIRECT: &str = "http://127.0.0.1:9/callback";
pub(super) const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-abcdef";

/// A registered client: its id and secret (none for public clients).
pub(super) struct TestClient {
    pub(super) id: String,
    pub(super) secret: Option<String>,
}

impl TestClient {
    /// Client authentication to add to a token request.
    pub(super) fn basic(&self) -> Option<(&str, &str)> {
        Some((self.id.as_str(), self.secret.as_deref()?))
    }
}

/// Registers a client asking for `auth_method`.
pub(super) async fn register(kit: &Testkit, auth_method: &str) -> TestClient {
    let (_, _, register) = endpoints(kit);
    let metadata = json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": auth_method,
        "client_name": "testkit tests",
    });
    let headers = [("content-type", "application/json")];
    let reply = send(Method::POST, &register, &headers, metadata.to_string()).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["client_name"], "testkit tests");
    TestClient {
        id: body["client_id"].as_str().expect("client_id").to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
    }
}

/// Runs the authorization request and returns the parsed redirect `Location`.
pub(super) async fn authorize(kit: &Testkit, client_id: &str, scope: Option<&str>) -> url::Url {
    let (authorize, _, _) = endpoints(kit);
    let mut url = url::Url::parse(&authorize).expect("authorize url");
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("code_challenge", &s256_challenge(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "xyz")
            .append_pair("resource", &kit.resource_url());
        if let Some(scope) = scope {
            query.append_pair("scope", scope);
        }
    }
    let reply = get(url.as_str()).await;
    assert_eq!(reply.status, 302, "{:?}", reply.body);
    url::Url::parse(&reply.header("location").expect("location")).expect("location url")
}

/// The value of a query parameter of a URL.
pub(super) fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Exchanges a code with `verifier`, authenticating like the client registered.
pub(super) async fn exchange(
    kit: &Testkit,
    client: &TestClient,
    code: &str,
    verifier: &str,
) -> Reply {
    let (_, token, _) = endpoints(kit);
    let resource = kit.resource_url();
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
        ("resource", resource.as_str()),
    ];
    if client.secret.is_none() {
        fields.push(("client_id", client.id.as_str()));
    }
    post_form(&token, &fields, client.basic()).await
}

/// Refreshes with `refresh_token`.
pub(super) async fn refresh(kit: &Testkit, client: &TestClient, refresh_token: &str) -> Reply {
    let (_, token, _) = endpoints(kit);
    let mut fields = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    if client.secret.is_none() {
        fields.push(("client_id", client.id.as_str()));
    }
    post_form(&token, &fields, client.basic()).await
}

/// Registers (secret basic), authorizes and exchanges: the token response body.
pub(super) async fn obtain_tokens(kit: &Testkit, scope: Option<&str>) -> (TestClient, Value) {
    let client = register(kit, "client_secret_basic").await;
    let location = authorize(kit, &client.id, scope).await;
    let code = param(&location, "code").expect("code");
    let reply = exchange(kit, &client, &code, VERIFIER).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    (client, body)
}
