//! Faults injected at one step of the flow, for the fault matrix (issue 8, item 5).
//!
//! [`Testkit::inject_fault`](crate::Testkit::inject_fault) makes every request of one [`Step`]
//! go wrong in one way ([`Fault`]) until [`clear_faults`](crate::Testkit::clear_faults). The
//! request is recorded first, as every request is, so a test can see that the step was
//! reached. HTTP-level faults are answered as responses; connection-level faults are real: a
//! stalled handler never answers, a reset closes the connection without a response, and a
//! truncated body promises more bytes in `Content-Length` than it sends before the connection
//! closes.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::Full;

use crate::discovery::{Site, MCP_PATH};
use crate::record::{RecordedRequest, ServerRole};
use crate::response::HttpResponse;

/// A step of the flow, recognized by the request a server receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Protected resource metadata (RFC 9728), at any of its well-known locations.
    ResourceMetadata,
    /// Authorization server metadata (RFC 8414 or OpenID Connect Discovery).
    AuthorizationServerMetadata,
    /// Dynamic client registration (RFC 7591).
    Registration,
    /// The authorization endpoint the browser (or headless authorizer) is sent to.
    Authorization,
    /// A token request for any grant but `refresh_token`.
    Token,
    /// A token request with `grant_type=refresh_token`.
    Refresh,
    /// A request to the MCP endpoint that carries a token: the request retried after
    /// authorization, and every request after it.
    ResourceRequest,
    /// A token revocation request (RFC 7009), made at logout. Not part of a login, so not in
    /// [`Step::ALL`].
    Revocation,
}

impl Step {
    /// Every step, in the order a first login meets them (refresh last but one).
    pub const ALL: [Step; 7] = [
        Step::ResourceMetadata,
        Step::AuthorizationServerMetadata,
        Step::Registration,
        Step::Authorization,
        Step::Token,
        Step::Refresh,
        Step::ResourceRequest,
    ];

    pub(crate) fn matches(self, site: &Site, request: &RecordedRequest) -> bool {
        let path = request.path.as_str();
        let token_request = path == site.token_path && request.role == site.endpoint_role;
        let grant = || request.form_param("grant_type");
        match self {
            Step::ResourceMetadata => {
                request.role == ServerRole::Resource
                    && (path.starts_with("/.well-known/oauth-protected-resource")
                        || site.prm_path == Some(path))
            }
            Step::AuthorizationServerMetadata => {
                path.contains("/.well-known/oauth-authorization-server")
                    || path.contains("/.well-known/openid-configuration")
            }
            Step::Registration => path == site.register_path && request.role == site.endpoint_role,
            Step::Authorization => {
                path == site.authorize_path && request.role == site.endpoint_role
            }
            Step::Token => token_request && grant().as_deref() != Some("refresh_token"),
            Step::Refresh => token_request && grant().as_deref() == Some("refresh_token"),
            Step::ResourceRequest => {
                request.role == ServerRole::Resource
                    && path == MCP_PATH
                    && request.headers.contains_key(http::header::AUTHORIZATION)
            }
            Step::Revocation => path == site.revoke_path && request.role == site.endpoint_role,
        }
    }
}

/// What goes wrong at a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// `500 Internal Server Error`.
    ServerError,
    /// `503 Service Unavailable` with `Retry-After: 1`.
    Unavailable,
    /// `429 Too Many Requests` with `Retry-After: 1`.
    TooManyRequests,
    /// No response at all: the handler never answers.
    Stall,
    /// The connection is closed without a response.
    ConnectionReset,
    /// `200` with a `Content-Length` larger than the body sent before the connection closes.
    TruncatedBody,
    /// `200`, `application/json`, and a body that is not JSON.
    MalformedBody,
    /// `200`, `application/json`, and a body of [`Fault::OVERSIZED_BYTES`] bytes.
    OversizedBody,
    /// `302` to the same URL, for ever.
    RedirectLoop,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 9] = [
        Fault::ServerError,
        Fault::Unavailable,
        Fault::TooManyRequests,
        Fault::Stall,
        Fault::ConnectionReset,
        Fault::TruncatedBody,
        Fault::MalformedBody,
        Fault::OversizedBody,
        Fault::RedirectLoop,
    ];

    /// The size of an oversized body: 4 MiB, far above any metadata or token response.
    pub const OVERSIZED_BYTES: usize = 4 * 1024 * 1024;
}

/// How the server answers a faulted request.
pub(crate) enum Answer {
    /// Send this response.
    Respond(HttpResponse),
    /// Send these headers and this part of the body, then drop the connection.
    Truncated(Response<Body>),
    /// Never answer.
    Stall,
    /// Close the connection without answering.
    Reset,
}

/// The error that makes hyper drop the connection without a response.
#[derive(Debug)]
pub(crate) struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault injector")
    }
}

impl std::error::Error for Reset {}

fn respond(status: StatusCode, headers: &[(http::HeaderName, String)], body: Bytes) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::try_from(value.as_str()) {
            response.headers_mut().insert(name.clone(), value);
        }
    }
    Answer::Respond(response)
}

/// The answer to `request` under `fault`.
pub(crate) fn answer(fault: Fault, request: &RecordedRequest) -> Answer {
    let json = || (CONTENT_TYPE, "application/json".to_owned());
    let retry_after = || (RETRY_AFTER, "1".to_owned());
    match fault {
        Fault::ServerError => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            &[],
            Bytes::from_static(b"internal error"),
        ),
        Fault::Unavailable => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            &[retry_after()],
            Bytes::from_static(b"unavailable"),
        ),
        Fault::TooManyRequests => respond(
            StatusCode::TOO_MANY_REQUESTS,
            &[retry_after()],
            Bytes::from_static(b"slow down"),
        ),
        Fault::Stall => Answer::Stall,
        Fault::ConnectionReset => Answer::Reset,
        // The headers promise 4096 bytes; the body sends a few, then fails, and hyper drops
        // the connection: the client sees an incomplete message.
        Fault::TruncatedBody => {
            let mut response = Response::new(Body::Truncated(Some(Bytes::from_static(
                br#"{"access_token": "trunc"#,
            ))));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("4096"));
            Answer::Truncated(response)
        }
        Fault::MalformedBody => respond(
            StatusCode::OK,
            &[json()],
            Bytes::from_static(br#"{"access_token": "unterminated"#),
        ),
        Fault::OversizedBody => {
            let mut body = vec![b' '; Fault::OVERSIZED_BYTES];
            body[..2].copy_from_slice(b"{}");
            respond(StatusCode::OK, &[json()], Bytes::from(body))
        }
        Fault::RedirectLoop => respond(
            StatusCode::FOUND,
            &[(LOCATION, request.path_and_query())],
            Bytes::new(),
        ),
    }
}

/// The body of every testkit response: whole, or cut short by [`Fault::TruncatedBody`].
pub(crate) enum Body {
    /// A complete body.
    Whole(Full<Bytes>),
    /// This much, then an error that makes hyper drop the connection.
    Truncated(Option<Bytes>),
}

/// A whole response in the servers' body type.
pub(crate) fn whole(response: HttpResponse) -> Response<Body> {
    response.map(Body::Whole)
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Reset;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Reset>>> {
        match self.get_mut() {
            Body::Whole(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            Body::Truncated(part) => Poll::Ready(Some(match part.take() {
                Some(bytes) => Ok(Frame::data(bytes)),
                None => Err(Reset),
            })),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Whole(full) => full.size_hint(),
            // Unknown, so hyper sends the declared Content-Length as it is.
            Body::Truncated(_) => http_body::SizeHint::default(),
        }
    }
}
