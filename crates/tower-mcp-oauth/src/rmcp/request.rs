//! The HTTP request for one call of rmcp's trait, kept as parts so that it can be sent twice.

use std::collections::HashMap;
use std::sync::Arc;

use ::rmcp::transport::common::http_header::{
    HEADER_LAST_EVENT_ID, HEADER_MCP_PROTOCOL_VERSION, HEADER_SESSION_ID,
};
use ::rmcp::transport::streamable_http_client::StreamableHttpError;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::Full;

use super::error::TowerHttpError;
use super::response::HttpError;

fn invalid_request(error: impl Into<http::Error>) -> HttpError {
    StreamableHttpError::Client(TowerHttpError::InvalidRequest(error.into()))
}

/// A request kept as parts, so that it can be built a second time (the resend after the layer
/// could not replay a body, in `exchange`).
pub(super) struct Outgoing {
    method: Method,
    uri: Arc<str>,
    headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Outgoing {
    /// The headers every request of rmcp's clients carries: `Accept`, the caller's bearer
    /// token, and the custom headers (of which rmcp's reserved ones are refused, as rmcp does).
    pub(super) fn new(
        method: Method,
        uri: Arc<str>,
        auth_token: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<Self, HttpError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json"),
        );
        if let Some(token) = auth_token {
            let mut value =
                HeaderValue::try_from(format!("Bearer {token}")).map_err(invalid_request)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in custom_headers {
            if is_reserved(&name) {
                return Err(StreamableHttpError::ReservedHeaderConflict(
                    name.to_string(),
                ));
            }
            headers.insert(name, value);
        }
        Ok(Self {
            method,
            uri,
            headers,
            body: Bytes::new(),
        })
    }

    pub(super) fn header(&mut self, name: &'static str, value: &str) -> Result<(), HttpError> {
        let value = HeaderValue::try_from(value).map_err(invalid_request)?;
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(())
    }

    pub(super) fn request(&self) -> Result<http::Request<Full<Bytes>>, HttpError> {
        let mut request = http::Request::builder()
            .method(self.method.clone())
            .uri(&*self.uri)
            .body(Full::new(self.body.clone()))
            .map_err(invalid_request)?;
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

/// rmcp sets these itself; a custom header must not override them. `MCP-Protocol-Version` is
/// reserved too, but rmcp's worker passes it as a custom header after initialization.
fn is_reserved(name: &HeaderName) -> bool {
    [ACCEPT.as_str(), HEADER_SESSION_ID, HEADER_LAST_EVENT_ID]
        .iter()
        .any(|reserved| name.as_str().eq_ignore_ascii_case(reserved))
        && !name
            .as_str()
            .eq_ignore_ascii_case(HEADER_MCP_PROTOCOL_VERSION)
}
