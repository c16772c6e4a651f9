//! Sending a request again: [`RetryParts`], its head unpacked for changing, and
//! [`send_again`], which answers a resource's DPoP nonce challenges (RFC 9449 §9) on the way.

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderValue, Method, Uri, Version};
use mcp_oauth_flow::dpop::{resource_nonce_challenge, DPOP};
use mcp_oauth_flow::{Error, ErrorKind};
use tower::ServiceExt;

use crate::body::OAuthBody;
use crate::bounds::{CallerBody, InnerService, ResponseBody};
use crate::cache::Session;
use crate::client::send_error;
use crate::dpop::{
    resource::{attach, attach_for},
    token::rejected,
};
use crate::head::{ProvedFor, SentHead};
use crate::markers::BodyNotReplayable;
use crate::prepare::Prepared;
use crate::state::LayerState;

/// What is needed to send the request again: everything but the body, which
/// [`Prepared`] keeps.
pub(crate) struct RetryParts {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) extensions: Extensions,
    /// The DPoP-bound tokens the layer's proof was last made for.
    pub(crate) proved_for: ProvedFor,
}

impl RetryParts {
    /// The head the request was sent with, its headers unpacked for changing.
    pub(crate) fn from_sent(head: SentHead) -> Self {
        let (method, uri, version, headers, extensions, proved_for) = head.unpack();
        Self {
            method,
            uri,
            version,
            headers,
            extensions,
            proved_for,
        }
    }

    /// Proves again for the tokens the request presents (a nonce retry, RFC 9449 §9): a fresh
    /// proof for the tokens the last one was made for, whatever the cache holds by now (a
    /// refresh may have replaced them meanwhile: looked up by the header, they would be found
    /// no more and the request would go without a proof).
    pub(crate) fn prove_again(&mut self, state: &LayerState) {
        let Some(header) = self.headers.get(AUTHORIZATION).cloned() else {
            return;
        };
        match self.proved_for.clone() {
            Some(tokens) => {
                let (method, uri) = (&self.method, &self.uri);
                let now = state.now();
                attach_for(
                    &state.dpop,
                    now,
                    &mut self.headers,
                    method,
                    uri,
                    header,
                    Some(tokens),
                );
            }
            None => self.authorize(state, header),
        }
    }

    /// Presents `session`'s tokens from now on, with a fresh DPoP proof when they are bound.
    pub(crate) fn authorize_as(&mut self, state: &LayerState, session: &Session) {
        self.proved_for = session.dpop_tokens();
        let header = session.authorization().clone();
        let (method, uri) = (&self.method, &self.uri);
        attach_for(
            &state.dpop,
            state.now(),
            &mut self.headers,
            method,
            uri,
            header,
            session.dpop_tokens(),
        );
    }

    /// Presents `header` from now on, with a fresh DPoP proof when its tokens are bound.
    pub(crate) fn authorize(&mut self, state: &LayerState, header: HeaderValue) {
        let now = state.now();
        let (cache, dpop) = (&state.cache, &state.dpop);
        attach(
            cache,
            dpop,
            now,
            &mut self.headers,
            &self.method,
            &self.uri,
            header,
        );
    }

    /// The request again, with `body`.
    pub(crate) fn request<B>(&self, body: B) -> http::Request<B> {
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        request
    }
}

/// Sends the request again with `body` (a replay of its body the caller took). When the
/// resource asks for a DPoP nonce (RFC 9449 §9) and the request carried a proof, it is sent
/// with a fresh proof carrying the nonce and another replay, at most `nonce_retries` times
/// more; a nonce challenge past that is a
/// [`DpopRejected`](mcp_oauth_flow::ErrorKind::DpopRejected) error, and a body that cannot be
/// replayed once more leaves the last challenge as the answer, marked
/// [`BodyNotReplayable`]: the caller sends the request again itself, and the nonce is
/// remembered for it.
pub(crate) async fn send_again<S, B, RB>(
    inner: S,
    state: &LayerState,
    parts: &mut RetryParts,
    prepared: &Prepared<B>,
    body: OAuthBody<B>,
    mut nonce_retries: u8,
) -> Result<http::Response<RB>, Error>
where
    S: InnerService<B, RB>,
    B: CallerBody,
    RB: ResponseBody,
{
    // The first send's body was taken by the caller, where it decided to send again; a body
    // that cannot be replayed once more after that: the last challenge is the answer.
    let mut body = Some(body);
    let mut last = None;
    loop {
        let Some(body) = body.take().or_else(|| prepared.replay()) else {
            let mut last: http::Response<RB> = last.ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidTransition,
                    "no request body to send again",
                )
            })?;
            last.extensions_mut().insert(BodyNotReplayable::new());
            return Ok(last);
        };
        let proved = parts.headers.contains_key(DPOP);
        let response = inner
            .clone()
            .oneshot(parts.request(body))
            .await
            .map_err(|e| send_error(&parts.uri, e))?;
        if !proved {
            return Ok(response);
        }
        state.dpop.note_response(&parts.uri, response.headers());
        if resource_nonce_challenge(response.status(), response.headers()).is_none() {
            return Ok(response);
        }
        if nonce_retries == 0 {
            return Err(rejected(&parts.uri));
        }
        last = Some(response);
        nonce_retries -= 1;
        // The nonce is remembered (above): a fresh proof for the same token carries it.
        parts.prove_again(state);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use mcp_oauth_flow::ClientConfig;

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
        let tokens = TokenSet::new("at-1", TokenType::DPoP, "http://127.0.0.1:2", "c")
            .with_dpop_key(Some(key));
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
}
