//! What the driver needs to know to prove possession of a DPoP key on the token request the
//! flow has just queued (RFC 9449 §5). The proof itself is the driver's: it holds the key, the
//! clock, the randomness for `jti` and the nonces servers sent (see [`crate::dpop`]).

use super::state::State;
use super::Flow;
use crate::dpop::{offered, DpopKey};

impl Flow {
    /// Whether the authorization server this flow's token request goes to offers DPoP with
    /// ES256 (`dpop_signing_alg_values_supported`, RFC 9449 §5.1): the code exchange, a device
    /// code poll and a jwt-bearer grant alike (§5: every access token request, whatever its
    /// grant). `false` outside a token request, and for a refresh, which is bound (or not) by
    /// the held tokens instead (see [`dpop_bound_key`](Self::dpop_bound_key)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mcp_oauth_flow::{ClientConfig, Flow, FlowSecrets, FlowStart};
    /// let config = Arc::new(ClientConfig::new("http://127.0.0.1:1/callback"));
    /// let start = FlowStart::new("https://mcp.example.com/mcp".parse().unwrap());
    /// let flow = Flow::new(config, start, FlowSecrets::from_entropy([0; 32], [1; 32]), std::time::SystemTime::now());
    /// assert!(!flow.dpop_offered()); // still discovering
    /// assert!(flow.dpop_bound_key().is_none());
    /// ```
    pub fn dpop_offered(&self) -> bool {
        let meta = match &self.state {
            State::ExpectToken(s) | State::ExpectJwtBearerToken(s) => &s.server.meta,
            State::ExpectDeviceToken(s) => &s.server.meta,
            _ => return false,
        };
        offered(meta.dpop_signing_alg_values_supported.as_deref())
    }

    /// The key the held tokens are bound to, while their refresh is on its way: the refresh
    /// must be proved with the same key (RFC 9449 §5).
    pub fn dpop_bound_key(&self) -> Option<&DpopKey> {
        match &self.state {
            State::ExpectRefreshToken(s) => s.held.tokens.dpop_key(),
            _ => None,
        }
    }
}
