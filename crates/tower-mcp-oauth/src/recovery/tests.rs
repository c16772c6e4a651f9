//! The slow path's unit tests: the nonce retry, and when the old token serves.

use super::*;
use bytes::Bytes;
use http_body_util::Full;
use mcp_oauth_flow::{ClientConfig, OAuthErrorResponse};

/// A retry met by a nonce challenge whose body cannot be replayed once more (a streamed
/// body past the replay cap) hands back that challenge marked `BodyNotReplayable`, as every
/// answer the layer could not get past for want of the body is: the caller knows that
/// sending it again itself will do (the nonce is remembered for its proof).
#[tokio::test]
async fn a_nonce_challenge_the_body_cannot_be_replayed_for_is_marked() {
    let state = Arc::clone(
        &crate::OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            crate::HeadlessAuthorizer::new(),
        )
        .state,
    );
    let sends = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&sends);
    let inner = tower::service_fn(move |_: http::Request<OAuthBody<Full<Bytes>>>| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let challenge = http::Response::builder()
            .status(401)
            .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
            .header("dpop-nonce", "n-2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        async move { Ok::<_, std::convert::Infallible>(challenge) }
    });
    let mut parts = RetryParts {
        method: Method::POST,
        uri: Uri::from_static("http://127.0.0.1:1/mcp"),
        version: Version::HTTP_11,
        headers: HeaderMap::new(),
        extensions: Extensions::new(),
        proved_for: None,
    };
    parts
        .headers
        .insert(AUTHORIZATION, HeaderValue::from_static("DPoP at-1"));
    parts
        .headers
        .insert(DPOP, HeaderValue::from_static("proof"));
    let prepared: Prepared<Full<Bytes>> = Prepared::NotReplayable;
    let body = OAuthBody::full(Bytes::from_static(b"{}"));
    let answer = send_again(inner, &state, &mut parts, &prepared, body, 1)
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.extensions().get::<BodyNotReplayable>().is_some());
    assert_eq!(sends.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A nonce retry proves again for the tokens the first proof was made for, even when the
/// cache holds them no more (a refresh replaced them meanwhile): looked up by the header,
/// they were not found, and the request went with `Authorization: DPoP` and no proof.
#[tokio::test]
async fn a_nonce_retry_proves_for_the_tokens_it_presents_whatever_the_cache_holds() {
    use mcp_oauth_flow::dpop::{decode_claims, DpopKey};
    use mcp_oauth_flow::token::{TokenSet, TokenType};
    let state = Arc::clone(
        &crate::OAuthLayer::new(
            ClientConfig::new("http://127.0.0.1:1/cb"),
            crate::HeadlessAuthorizer::new(),
        )
        .state,
    );
    let key = DpopKey::from_entropy([8; 32]).unwrap();
    let tokens =
        TokenSet::new("at-1", TokenType::DPoP, "http://127.0.0.1:2", "c").with_dpop_key(Some(key));
    let proofs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&proofs);
    let inner = tower::service_fn(move |req: http::Request<OAuthBody<Full<Bytes>>>| {
        let mut seen = seen.lock().unwrap();
        seen.push(req.headers().get(DPOP).cloned());
        let response = if seen.len() == 1 {
            http::Response::builder()
                .status(401)
                .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .header("dpop-nonce", "n-2")
        } else {
            http::Response::builder().status(200)
        };
        let response = response.body(Full::new(Bytes::new())).unwrap();
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let mut parts = RetryParts {
        method: Method::POST,
        uri: Uri::from_static("http://127.0.0.1:1/mcp"),
        version: Version::HTTP_11,
        headers: HeaderMap::new(),
        extensions: Extensions::new(),
        proved_for: Some(Arc::new(tokens)),
    };
    parts
        .headers
        .insert(AUTHORIZATION, HeaderValue::from_static("DPoP at-1"));
    parts
        .headers
        .insert(DPOP, HeaderValue::from_static("first-proof"));
    let prepared = Prepared::Bytes(Bytes::from_static(b"{}"));
    let body = OAuthBody::full(Bytes::from_static(b"{}"));
    let answer = send_again(inner, &state, &mut parts, &prepared, body, 1)
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let proofs = proofs.lock().unwrap();
    let retried = proofs[1].as_ref().expect("the retry carries a proof");
    let claims = decode_claims(retried.to_str().unwrap()).unwrap();
    assert_eq!(claims["nonce"], "n-2");
    assert!(claims["ath"].is_string(), "{claims}");
}

#[test]
fn the_old_token_serves_unless_the_server_spoke_or_the_store_broke() {
    let oauth = |code: &str| {
        Error::new(ErrorKind::TokenRejected, "refused").with_oauth_error(OAuthErrorResponse {
            error: code.into(),
            error_description: None,
        })
    };
    // The server said nothing about the grant: keep serving.
    assert!(old_token_may_serve(&Error::new(
        ErrorKind::UnexpectedStatus,
        "503"
    )));
    assert!(old_token_may_serve(&Error::new(
        ErrorKind::Transport,
        "reset"
    )));
    assert!(old_token_may_serve(&Error::new(
        ErrorKind::InvalidTokenResponse,
        "garbage"
    )));
    assert!(old_token_may_serve(&Error::new(
        ErrorKind::BodyTooLarge,
        "4 MiB"
    )));
    // It did: the grant or the client is gone.
    assert!(!old_token_may_serve(&oauth("invalid_grant")));
    assert!(!old_token_may_serve(&oauth("invalid_client")));
    // A local store fault surfaces, unless it may pass.
    assert!(!old_token_may_serve(&Error::new(
        ErrorKind::Store,
        "permission denied"
    )));
    assert!(old_token_may_serve(
        &Error::new(ErrorKind::Store, "timed out").mark_transient()
    ));
}
