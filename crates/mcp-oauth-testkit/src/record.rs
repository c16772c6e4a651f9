//! What the servers saw ([`RecordedRequest`]) and what a quirk override answers ([`CannedResponse`]).

use base64::Engine as _;
use bytes::Bytes;

use crate::codec::form_decode;

/// Which of the two servers of a [`Testkit`](crate::Testkit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerRole {
    /// The protected MCP resource server (it also serves the authorization endpoints in the
    /// legacy layouts).
    Resource,
    /// The authorization server.
    Authorization,
}

/// One request as a server received it, recorded before it was answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The server that received it.
    pub role: ServerRole,
    /// The HTTP method.
    pub method: http::Method,
    /// The path, without the query.
    pub path: String,
    /// The raw (still encoded) query, if any.
    pub query: Option<String>,
    /// The request headers.
    pub headers: http::HeaderMap,
    /// The body (at most 1 MiB; a longer body is cut there and answered 413).
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of the query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        first_pair(query.as_bytes(), name)
    }

    /// The first value of the field `name` of an `application/x-www-form-urlencoded` body,
    /// decoded.
    pub fn form_param(&self, name: &str) -> Option<String> {
        first_pair(&self.body, name)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The path followed by `?query` when there is a query.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{}", self.path, query),
            None => self.path.clone(),
        }
    }

    /// The token of an `Authorization: Bearer …` header (scheme matched case-insensitively).
    pub fn bearer(&self) -> Option<String> {
        let token = self.authorization_param("bearer")?;
        (!token.is_empty()).then(|| token.to_owned())
    }

    /// The client id and secret of an `Authorization: Basic …` header, each half
    /// form-url-decoded (RFC 6749 section 2.3.1).
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        let encoded = self.authorization_param("basic")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        Some((form_decode(id), form_decode(secret)))
    }

    fn authorization_param(&self, scheme: &str) -> Option<&str> {
        let value = self
            .headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let value = value.trim();
        let (found, rest) = value.split_once(' ')?;
        found.eq_ignore_ascii_case(scheme).then(|| rest.trim())
    }
}

fn first_pair(input: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(input)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A fixed response that replaces the normal routing for one path of one server
/// (see [`Testkit::set_override`](crate::Testkit::set_override)).
#[derive(Clone, Debug)]
pub struct CannedResponse {
    /// The status code (an invalid one is answered 500).
    pub status: u16,
    /// Response headers, in order (invalid names or values are skipped).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl CannedResponse {
    /// A response with this status and body and no headers.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        CannedResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A JSON response (`Content-Type: application/json`).
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        CannedResponse::new(status, value.to_string()).header("content-type", "application/json")
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}
