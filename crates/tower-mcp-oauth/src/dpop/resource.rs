//! Proofs on requests to the resource (RFC 9449 §7): `Authorization: DPoP <token>` with a
//! fresh `DPoP` proof carrying the token's hash and the origin's last nonce.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Uri};
use mcp_oauth_flow::dpop::DPOP;
use mcp_oauth_flow::token::TokenSet;
use tracing::warn;

use super::DpopState;
use crate::cache::Cache;

impl DpopState {
    /// A proof for a request presenting `tokens` (which are DPoP-bound). `None`, logged, only
    /// when the OS has no randomness for the `jti`: the request then goes without, and the
    /// resource's answer says what it thinks of that.
    pub(crate) fn resource_proof(
        &self,
        tokens: &TokenSet,
        method: &Method,
        uri: &Uri,
        now: SystemTime,
    ) -> Option<HeaderValue> {
        let key = tokens.resource_dpop_key()?;
        self.proof(key, method, uri, now, Some(tokens.access_token().secret()))
            .inspect_err(|e| warn!(error = %e, "could not sign a DPoP proof"))
            .ok()
    }
}

/// Sets `header` as the request's `Authorization`, with a fresh proof when the tokens behind it
/// are DPoP-bound (and without any proof left from an earlier attempt otherwise).
pub(crate) fn attach(
    cache: &Cache,
    dpop: &DpopState,
    now: SystemTime,
    headers: &mut HeaderMap,
    method: &Method,
    uri: &Uri,
    header: HeaderValue,
) {
    let tokens = cache.dpop_tokens(uri, &header);
    attach_for(dpop, now, headers, method, uri, header, tokens);
}

/// [`attach`] for the tokens behind `header` in hand (`dpop_tokens`: those tokens when they are
/// DPoP-bound), not looked up again: the cache may hold others by now.
pub(crate) fn attach_for(
    dpop: &DpopState,
    now: SystemTime,
    headers: &mut HeaderMap,
    method: &Method,
    uri: &Uri,
    header: HeaderValue,
    dpop_tokens: Option<Arc<TokenSet>>,
) {
    headers.remove(DPOP);
    if let Some(tokens) = dpop_tokens {
        if let Some(proof) = dpop.resource_proof(&tokens, method, uri, now) {
            headers.insert(DPOP, proof);
        }
    }
    headers.insert(AUTHORIZATION, header);
}
