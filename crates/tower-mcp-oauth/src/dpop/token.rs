//! A token request with a DPoP proof (RFC 9449 §5), and its one retry when the authorization
//! server asks for a nonce (§8).

use std::time::SystemTime;

use bytes::Bytes;
use mcp_oauth_flow::dpop::{token_nonce_challenge, DpopKey, DPOP};
use mcp_oauth_flow::{Error, ErrorKind};
use tracing::debug;

use super::DpopState;
use crate::client::HttpClient;

/// Sends the token request `request` proved with `key`. On `use_dpop_nonce` it is sent once
/// more with a fresh proof carrying the server's nonce; a second `use_dpop_nonce` is a
/// [`ErrorKind::DpopRejected`] error. Any other answer goes back to the flow as it came.
pub(crate) async fn send(
    client: &HttpClient,
    dpop: &DpopState,
    key: &DpopKey,
    request: http::Request<Bytes>,
    now: impl Fn() -> SystemTime,
) -> Result<http::Response<Bytes>, Error> {
    let (parts, body) = request.into_parts();
    let copy = || {
        let mut request = http::Request::new(body.clone());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        request
    };
    let mut retried = false;
    loop {
        let mut request = copy();
        let proof = dpop.proof(key, &parts.method, &parts.uri, now(), None)?;
        request.headers_mut().insert(DPOP, proof);
        let response = client.send(request).await?;
        dpop.note_response(&parts.uri, response.headers());
        let Some(nonce) = token_nonce_challenge(&response) else {
            return Ok(response);
        };
        if retried {
            return Err(rejected(&parts.uri));
        }
        debug!("the token endpoint asked for a DPoP nonce; retrying once with it");
        dpop.remember_nonce(&parts.uri, nonce);
        retried = true;
    }
}

/// A refusal of the proof for good, whoever refused it.
pub(crate) fn rejected(uri: &http::Uri) -> Error {
    Error::new(
        ErrorKind::DpopRejected,
        format!(
            "{uri} refused the DPoP proof again after one retry with the nonce it asked for; \
             check the clock (proofs are dated) or turn DPoP off for this server"
        ),
    )
}
