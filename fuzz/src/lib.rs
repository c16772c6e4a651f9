//! What each fuzz target checks, as plain functions.
//!
//! The fuzzers (`cargo fuzz run <target>`, nightly) and the stable replay test below run the
//! same code: a crash found by a fuzzer and minimized into `corpus/<target>/` fails the stable
//! test command from then on, without nightly.
//!
//! Beyond "no panic, no hang, no unbounded allocation", each check states a property the parser
//! promises its callers, so the fuzzer looks for wrong answers, not only for crashes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use http::{HeaderMap, HeaderValue, StatusCode};
use mcp_oauth_flow::authorization::AuthorizationResponse;
use mcp_oauth_flow::challenge::Challenge;
use mcp_oauth_flow::client::parse_registration_response;
use mcp_oauth_flow::discovery::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use mcp_oauth_flow::token::parse_token_response;

/// The issuer the authorization-server and registration targets are checked against.
const ISSUER: &str = "https://as.example.com";

/// A one-year cap on `expires_in` (the token-response parser's documented bound).
const ONE_YEAR_SECS: u64 = 365 * 24 * 3600;

/// Splits the first byte off as a selector for the request's framing (status, content type).
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}

/// `WWW-Authenticate` values (RFC 9110 §11.6.1), one per line, as opaque header bytes: a parsed
/// challenge always has a scheme made of `tchar`s (§5.6.2), and every parameter has a name.
pub fn challenge(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(http::header::WWW_AUTHENTICATE, value);
        }
    }
    let Ok(challenges) = Challenge::from_headers(&headers) else {
        return;
    };
    for c in &challenges {
        assert!(!c.scheme().is_empty(), "empty scheme in {data:?}");
        assert!(
            c.scheme()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "scheme {:?} is not a token",
            c.scheme()
        );
        for (name, _) in c.params() {
            assert!(!name.is_empty(), "nameless parameter in {data:?}");
        }
        let _ = (c.error(), c.scope(), c.resource_metadata(), c.token68());
        let _ = c.is_insufficient_scope();
    }
}

/// Protected resource metadata (RFC 9728 §3.2): a document that parses names its resource and at
/// least one authorization server.
pub fn resource_metadata(data: &[u8]) {
    if let Ok(prm) = ProtectedResourceMetadata::from_json(data) {
        assert!(!prm.resource.is_empty());
        assert!(!prm.authorization_servers.is_empty());
    }
}

/// Authorization server metadata (RFC 8414 §3.2, §3.3): a document that validates for
/// [`ISSUER`] states that issuer, has a token endpoint, and has an authorization endpoint
/// whenever it offers the authorization-code grant (RFC 8414 §2: "REQUIRED unless no grant
/// types are supported that use the authorization endpoint"; the fuzzer found the too-strong
/// first version of this check wrong, with a document listing only other grants).
pub fn authorization_server_metadata(data: &[u8]) {
    let Ok(meta) = AuthorizationServerMetadata::from_json(data) else {
        return;
    };
    if meta.validate(Some(ISSUER)).is_ok() {
        assert!(meta.issuer.trim_end_matches('/') == ISSUER);
        assert!(
            meta.authorization_endpoint.is_some() || !meta.supports_grant("authorization_code")
        );
        assert!(meta.token_endpoint.is_some());
    }
    let _ = meta.validate(None);
}

/// Token responses and token error responses (RFC 6749 §5.1, §5.2), in either framing: the
/// first byte picks the status and the declared content type. A success has a non-empty access
/// token and a lifetime of at most a year; an error keeps the server's status.
pub fn token_response(data: &[u8]) {
    let (selector, body) = split(data);
    let status = [200, 201, 400, 401, 429, 500][usize::from(selector % 6)];
    let status = StatusCode::from_u16(status).expect("listed statuses are valid");
    let content_type = [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ][usize::from(selector / 6 % 5)];
    match parse_token_response(status, content_type, body) {
        Ok(response) => {
            assert!(status.is_success());
            assert!(!response.access_token.secret().is_empty());
            if let Some(lifetime) = response.expires_in {
                assert!(lifetime.as_secs() > 0 && lifetime.as_secs() <= ONE_YEAR_SECS);
            }
            let _ = format!("{response:?}");
        }
        Err(err) => {
            assert!(!err.message().is_empty());
            let _ = format!("{err:#} {err:?}");
        }
    }
}

/// Client registration responses (RFC 7591 §3.2.1, §3.2.2): a success has a client id and is
/// bound to the issuer it was registered with, never to one the response names.
pub fn registration_response(data: &[u8]) {
    let (selector, body) = split(data);
    let status = [201, 200, 400, 500][usize::from(selector % 4)];
    let status = StatusCode::from_u16(status).expect("listed statuses are valid");
    match parse_registration_response(status, body, ISSUER) {
        Ok(registration) => {
            assert!(status.is_success());
            assert!(!registration.client_id.is_empty());
            assert_eq!(registration.issuer, ISSUER);
        }
        Err(err) => {
            let _ = format!("{err:#} {err:?}");
        }
    }
}

/// The redirect's query (RFC 6749 §4.1.2, RFC 9207 §2): the first `state`, `code` and `iss`
/// win, so a duplicate cannot smuggle a second value past the checks.
pub fn callback_query(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let response = AuthorizationResponse::from_query(&query);
    let first = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(response.state, first("state"));
    assert_eq!(response.iss, first("iss"));
    assert_eq!(
        response.code.as_ref().map(|c| c.secret().clone()),
        first("code")
    );
    let _ = format!("{response:?}");
}

/// The JWT `exp` reader used when a token response has no `expires_in`: never panics on any
/// string, and reads nothing from a string that is not three dot-separated parts.
pub fn jwt_expiry(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let exp = mcp_oauth_flow::token::jwt_expiry(token);
    if token.split('.').count() != 3 {
        assert_eq!(exp, None);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// A target's name (its corpus directory) and its check.
    type Target = (&'static str, fn(&[u8]));

    /// Replays every committed corpus file through its target's check, on stable. Each target
    /// must have a corpus: a missing directory is a failure, not a silent pass.
    #[test]
    fn replays_the_committed_corpus() {
        let targets: [Target; 7] = [
            ("challenge", super::challenge),
            ("resource_metadata", super::resource_metadata),
            (
                "authorization_server_metadata",
                super::authorization_server_metadata,
            ),
            ("token_response", super::token_response),
            ("registration_response", super::registration_response),
            ("callback_query", super::callback_query),
            ("jwt_expiry", super::jwt_expiry),
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, check) in targets {
            let dir = root.join(name);
            let mut replayed = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{name}: {path:?} fails its check");
                replayed += 1;
            }
            assert!(replayed > 0, "{name}: the corpus is empty");
        }
    }
}
