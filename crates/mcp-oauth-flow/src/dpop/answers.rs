//! What servers answer a DPoP proof with (RFC 9449 §8, §9): the authorization server's and
//! the resource's nonce challenges, the nonce a `DPoP-Nonce` header carries, and a refusal of
//! the proof itself.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::{DPOP_NONCE, INVALID_DPOP_PROOF, USE_DPOP_NONCE};
use crate::challenge::Challenge;

/// The nonce an authorization server asks for: a `400` whose OAuth error is `use_dpop_nonce`,
/// with the nonce in `DPoP-Nonce` (RFC 9449 §8). `None` for any other answer, and for one
/// that names no nonce (there is nothing to retry with).
///
/// ```
/// use mcp_oauth_flow::dpop::token_nonce_challenge;
/// let response = http::Response::builder().status(400).header("dpop-nonce", "n-1")
///     .header("content-type", "application/json")
///     .body(bytes::Bytes::from(r#"{"error":"use_dpop_nonce"}"#)).unwrap();
/// assert_eq!(token_nonce_challenge(&response).as_deref(), Some("n-1"));
/// ```
pub fn token_nonce_challenge(response: &http::Response<Bytes>) -> Option<String> {
    if response.status() != StatusCode::BAD_REQUEST {
        return None;
    }
    // RFC 9449 §8 shows a JSON error body; read directly (not through the token response
    // parser, which imports this module's key type).
    let body: Value = serde_json::from_slice(response.body()).ok()?;
    if body.get("error")?.as_str()? != USE_DPOP_NONCE {
        return None;
    }
    nonce_header(response.headers())
}

/// Whether an authorization server refused the proof itself: a `400` whose OAuth error is
/// `invalid_dpop_proof` (RFC 9449 §5, after the checks of §4.3). Sending the same kind of
/// proof again cannot help.
///
/// ```
/// use mcp_oauth_flow::dpop::token_proof_refused;
/// let response = http::Response::builder().status(400)
///     .body(bytes::Bytes::from(r#"{"error":"invalid_dpop_proof"}"#)).unwrap();
/// assert!(token_proof_refused(&response));
/// ```
pub fn token_proof_refused(response: &http::Response<Bytes>) -> bool {
    response.status() == StatusCode::BAD_REQUEST
        && serde_json::from_slice::<Value>(response.body())
            .ok()
            .is_some_and(|body| {
                body.get("error").and_then(Value::as_str) == Some(INVALID_DPOP_PROOF)
            })
}

/// The nonce a resource server asks for: a `401` with a `DPoP` challenge whose `error` is
/// `use_dpop_nonce`, with the nonce in `DPoP-Nonce` (RFC 9449 §9).
///
/// ```
/// use mcp_oauth_flow::dpop::resource_nonce_challenge;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("www-authenticate", r#"DPoP error="use_dpop_nonce", algs="ES256""#.parse().unwrap());
/// headers.insert("dpop-nonce", "n-2".parse().unwrap());
/// assert_eq!(resource_nonce_challenge(http::StatusCode::UNAUTHORIZED, &headers).as_deref(), Some("n-2"));
/// assert_eq!(resource_nonce_challenge(http::StatusCode::FORBIDDEN, &headers), None);
/// ```
pub fn resource_nonce_challenge(status: StatusCode, headers: &http::HeaderMap) -> Option<String> {
    if status != StatusCode::UNAUTHORIZED {
        return None;
    }
    let challenges = Challenge::from_headers(headers).ok()?;
    asks_for_a_nonce(&challenges)
        .then(|| nonce_header(headers))
        .flatten()
}

/// Whether a resource's challenges (of a `401`, already parsed) include a `DPoP` one asking
/// for a nonce (`use_dpop_nonce`, RFC 9449 §9), whether or not a usable nonce came with it.
pub fn asks_for_a_nonce(challenges: &[Challenge]) -> bool {
    challenges
        .iter()
        .any(|c| c.scheme_is("dpop") && c.error() == Some(USE_DPOP_NONCE))
}

/// Whether a resource's challenges (of a `401`, already parsed) refuse the DPoP proof itself
/// (`invalid_dpop_proof`, RFC 9449 §7.1): a proof that failed the checks of §4.3 (its time,
/// its `htu`, its signature), which no new token fixes.
///
/// ```
/// use mcp_oauth_flow::challenge::Challenge;
/// use mcp_oauth_flow::dpop::refuses_the_proof;
/// let refused = Challenge::parse_all([&br#"DPoP error="invalid_dpop_proof", algs="ES256""#[..]]).unwrap();
/// assert!(refuses_the_proof(&refused));
/// let expired = Challenge::parse_all([&br#"DPoP error="invalid_token""#[..]]).unwrap();
/// assert!(!refuses_the_proof(&expired));
/// ```
pub fn refuses_the_proof(challenges: &[Challenge]) -> bool {
    challenges
        .iter()
        .any(|c| c.scheme_is("dpop") && c.error() == Some(INVALID_DPOP_PROOF))
}

/// The longest `DPoP-Nonce` taken. RFC 9449 §8.1 sets no bound, and a nonce is kept per URL
/// and copied into every proof sent there until the server names another: one as long as the
/// response header allows (tens of kilobytes) would ride on every request. Real nonces are
/// tens of bytes, an encrypted one a few hundred.
pub const MAX_NONCE_BYTES: usize = 2048;

/// The `DPoP-Nonce` header's value, if it is a usable one (RFC 9449 §8.1: `1*NQCHAR`, at most
/// [`MAX_NONCE_BYTES`]).
pub fn nonce_header(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(DPOP_NONCE)?.to_str().ok()?;
    let usable = !value.is_empty()
        && value.len() <= MAX_NONCE_BYTES
        && value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    usable.then(|| value.to_owned())
}
