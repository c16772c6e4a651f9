//! A token request with a DPoP proof (RFC 9449 §5), and its one retry when the authorization
//! server asks for a nonce (§8).

use std::time::SystemTime;

use bytes::Bytes;
use mcp_oauth_flow::discovery::Purpose;
use mcp_oauth_flow::dpop::{token_nonce_challenge, token_proof_refused, DpopKey, DPOP};
use mcp_oauth_flow::{Error, ErrorKind, Flow, SubRequest};
use tracing::debug;

use super::DpopState;
use crate::client::HttpClient;

/// Sends one of the flow's sub-requests: a token request with a DPoP proof when one is due (the
/// held tokens' key, or the layer's when the policy and the metadata call for it), anything
/// else as it is. Returns the answer and the key the request proved, which the tokens it gets
/// are bound to.
pub(crate) async fn send_sub_request(
    client: &HttpClient,
    dpop: &DpopState,
    flow: &Flow,
    sub: SubRequest,
    now: impl Fn() -> SystemTime,
) -> (Result<http::Response<Bytes>, Error>, Option<DpopKey>) {
    if sub.purpose != Purpose::Token {
        return (client.send(sub.request).await, None);
    }
    match dpop.token_request_key(flow) {
        Ok(Some(key)) => (send(client, dpop, &key, sub.request, now).await, Some(key)),
        Ok(None) => (client.send(sub.request).await, None),
        Err(e) => (Err(e), None),
    }
}

/// Sends the token request `request` proved with `key`. On `use_dpop_nonce` it is sent once
/// more with a fresh proof carrying the server's nonce; a second `use_dpop_nonce`, or an
/// `invalid_dpop_proof`, is a [`ErrorKind::DpopRejected`] error. Any other answer goes back to the flow as it came.
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
        if token_proof_refused(&response) {
            return Err(refused(&parts.uri));
        }
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

/// A proof refused as such (`invalid_dpop_proof`, RFC 9449 §7.1), by the authorization server
/// or the resource: no retry and no new token fixes it.
pub(crate) fn refused(uri: &http::Uri) -> Error {
    Error::new(
        ErrorKind::DpopRejected,
        format!(
            "{} refused the DPoP proof (invalid_dpop_proof, or a nonce that cannot be used); \
             check the clock (proofs are dated) or turn DPoP off for this server",
            crate::origin::loggable(uri)
        ),
    )
}

/// A refusal of the proof for good, whoever refused it.
pub(crate) fn rejected(uri: &http::Uri) -> Error {
    Error::new(
        ErrorKind::DpopRejected,
        format!(
            "{} refused the DPoP proof again after one retry with the nonce it asked for; \
             check the clock (proofs are dated) or turn DPoP off for this server",
            crate::origin::loggable(uri)
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use mcp_oauth_flow::dpop::decode_claims;

    use super::*;

    /// A token endpoint that answers `answers` in turn and records each proof's claims.
    fn endpoint(
        answers: Vec<(u16, &'static str)>,
    ) -> (HttpClient, Arc<Mutex<Vec<serde_json::Value>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let record = Arc::clone(&seen);
        let client = HttpClient::from_fn(move |req: http::Request<Bytes>| {
            let proof = req.headers()[DPOP].to_str().unwrap().to_owned();
            record.lock().unwrap().push(decode_claims(&proof).unwrap());
            let (status, body) = answers.lock().unwrap().next().expect("no more answers");
            async move {
                Ok(http::Response::builder()
                    .status(status)
                    .header("dpop-nonce", "n-1")
                    .body(Bytes::from(body))
                    .unwrap())
            }
        });
        (client, seen)
    }

    fn request() -> http::Request<Bytes> {
        http::Request::post("http://127.0.0.1:9/token")
            .body(Bytes::from("grant_type=x"))
            .unwrap()
    }

    const NONCE: &str = r#"{"error":"use_dpop_nonce"}"#;

    #[tokio::test]
    async fn one_retry_with_a_fresh_proof_carrying_the_nonce() {
        let (client, seen) = endpoint(vec![(400, NONCE), (200, r#"{"access_token":"a"}"#)]);
        let (dpop, key) = (
            DpopState::default(),
            DpopKey::from_entropy([1; 32]).unwrap(),
        );
        let response = send(&client, &dpop, &key, request(), SystemTime::now)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].get("nonce").is_none());
        assert_eq!(seen[1]["nonce"], "n-1");
        assert_ne!(seen[0]["jti"], seen[1]["jti"]);
    }

    #[tokio::test]
    async fn a_second_nonce_challenge_or_a_refused_proof_is_dpop_rejected() {
        let (dpop, key) = (
            DpopState::default(),
            DpopKey::from_entropy([1; 32]).unwrap(),
        );
        let (client, seen) = endpoint(vec![(400, NONCE), (400, NONCE)]);
        let error = send(&client, &dpop, &key, request(), SystemTime::now)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::DpopRejected);
        assert_eq!(seen.lock().unwrap().len(), 2, "one retry, no loop");

        let (client, seen) = endpoint(vec![(400, r#"{"error":"invalid_dpop_proof"}"#)]);
        let error = send(&client, &dpop, &key, request(), SystemTime::now)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::DpopRejected);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn other_errors_go_back_to_the_flow() {
        let (dpop, key) = (
            DpopState::default(),
            DpopKey::from_entropy([1; 32]).unwrap(),
        );
        let (client, _) = endpoint(vec![(400, r#"{"error":"invalid_grant"}"#)]);
        let response = send(&client, &dpop, &key, request(), SystemTime::now)
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }
}
