//! A scripted protected resource and authorization server for `tower-test` mocks: the answers
//! to the discovery, registration and consent requests a flow makes. Each test answers `/mcp`
//! and `/token` itself, which is where they differ.
//!
//! The request body type is the caller's (the layer hands its inner service `OAuthBody<B>`),
//! so the testkit needs nothing of the client under test.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
/// The scripted servers' response.
pub type Resp = http::Response<Full<Bytes>>;

/// The resource server's origin (nothing listens there: a mock answers).
pub const RS: &str = "http://127.0.0.1:1";
/// The authorization server's origin (nothing listens there: a mock answers).
pub const AS: &str = "http://127.0.0.1:2";

/// A JSON response with `status`.
pub fn json(status: u16, value: serde_json::Value) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

/// The resource's 401, pointing at its metadata.
pub fn unauthorized() -> Resp {
    http::Response::builder()
        .status(401)
        .header(
            "www-authenticate",
            format!(r#"Bearer resource_metadata="{RS}/prm""#),
        )
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The MCP endpoint's answer: `{"ok": true}` to a request bearing `Bearer {token}`, the
/// [`unauthorized`] challenge to any other.
///
/// ```
/// use mcp_oauth_testkit::scripted::resource;
/// let request = |authorization: &str| {
///     http::Request::post("http://127.0.0.1:1/mcp").header("authorization", authorization).body(()).unwrap()
/// };
/// assert_eq!(resource(&request("Bearer at-1"), "at-1").status(), 200);
/// assert_eq!(resource(&request("Bearer at-2"), "at-1").status(), 401);
/// ```
pub fn resource<B>(req: &http::Request<B>, token: &str) -> Resp {
    let bearer = format!("Bearer {token}");
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == bearer.as_bytes());
    if authorized {
        json(200, json!({"ok": true}))
    } else {
        unauthorized()
    }
}

/// The answer to a discovery, registration or authorization request, or `None` for any other
/// path (`/mcp`, `/token`).
pub fn flow_response<B>(req: &http::Request<B>) -> Option<Resp> {
    Some(match req.uri().path() {
        "/prm" => json(
            200,
            json!({"resource": format!("{RS}/mcp"), "authorization_servers": [AS]}),
        ),
        _ => return authorization_server(AS, req),
    })
}

/// The answer of the auto-approving authorization server `issuer` to a metadata,
/// registration or authorization request, or `None` for any other path (`/token`, which each
/// test answers itself). For tests with several authorization servers, each at its own origin.
pub fn authorization_server<B>(issuer: &str, req: &http::Request<B>) -> Option<Resp> {
    Some(match req.uri().path() {
        "/.well-known/oauth-authorization-server" => json(
            200,
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "registration_endpoint": format!("{issuer}/register"),
                "code_challenge_methods_supported": ["S256"],
            }),
        ),
        "/register" => json(201, json!({"client_id": "c"})),
        "/authorize" => {
            // An auto-approving server: back to the redirect URI with a code and the state.
            let url = url::Url::parse(&req.uri().to_string()).unwrap();
            let state = url
                .query_pairs()
                .find(|(k, _)| k == "state")
                .unwrap()
                .1
                .into_owned();
            http::Response::builder()
                .status(302)
                .header(
                    "location",
                    format!("http://localhost:3000/callback?code=c&state={state}"),
                )
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        _ => return None,
    })
}
