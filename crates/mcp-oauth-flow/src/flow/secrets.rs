//! [`FlowSecrets`]: the random values one flow needs (its `state`, its PKCE verifier) and the
//! count of the client assertions it signed, from which each gets its own `jti`.

use oauth2::CsrfToken;

use crate::pkce::Pkce;

/// Where a resumed flow's assertion count starts, at the least (see [`FlowSecrets::restore`]).
const RESUMED_ASSERTIONS_FROM: u32 = 1 << 31;

/// The random values one flow needs, supplied by the driver so the core stays deterministic.
///
/// ```
/// use mcp_oauth_flow::FlowSecrets;
/// let secrets = FlowSecrets::from_entropy([1; 32], [2; 32]);
/// assert!(!format!("{secrets:?}").contains(secrets.state().secret()));
/// ```
#[derive(Debug)]
pub struct FlowSecrets {
    pub(super) state: CsrfToken,
    pub(super) pkce: Pkce,
    /// Client assertions signed so far in this flow: each gets its own `jti`.
    assertions: std::sync::atomic::AtomicU32,
}

impl FlowSecrets {
    /// Builds the `state` value and the PKCE verifier from 32 random bytes each.
    pub fn from_entropy(state: [u8; 32], verifier: [u8; 32]) -> Self {
        use base64::Engine;
        Self {
            state: CsrfToken::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(state)),
            pkce: Pkce::from_entropy(verifier),
            assertions: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The secrets of a flow resumed from a [`PendingAuthorization`]: its `state` and verifier.
    pub(crate) fn restore(state: CsrfToken, pkce: Pkce, now: std::time::SystemTime) -> Self {
        // A resumed flow's assertions count from the upper half: the flow it resumes may have
        // signed some with this `state` already (a refused refresh before the consent), and
        // counted from 0 again their `jti`s would repeat, which servers refuse within an
        // assertion's lifetime (RFC 7523 §3, item 7). Within the half, from the millisecond
        // of the resume (21 bits of it, a 35-minute cycle, past any assertion's 5-minute
        // lifetime), 1024 apart: a record resumed twice (a direct caller's retry) counts from
        // elsewhere the second time, unless in the same millisecond. The core stays
        // deterministic: the time is the driver's.
        let millis = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let slot = (millis as u32) & 0x1F_FFFF;
        Self {
            state,
            pkce,
            assertions: std::sync::atomic::AtomicU32::new(RESUMED_ASSERTIONS_FROM | (slot << 10)),
        }
    }

    /// A `jti` for the next client assertion of this flow (RFC 7523 §3: unique, so a server
    /// that refuses replayed assertions accepts each one; one flow may sign several, a refresh
    /// refused and then the code exchange). It is a SHA-256 of the flow's random `state` and the
    /// assertion's number: unique per flow and per assertion, and it reveals nothing of the
    /// `state`, which may still be pending at another server.
    pub(crate) fn next_jti(&self) -> String {
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let n = self
            .assertions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let digest = Sha256::new()
            .chain_update(b"mcp-oauth-flow jti\0")
            .chain_update(self.state.secret().as_bytes())
            .chain_update(n.to_be_bytes())
            .finalize();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }

    /// The `state` value.
    pub fn state(&self) -> &CsrfToken {
        &self.state
    }
}

#[cfg(test)]
mod secrets_tests {
    use super::FlowSecrets;

    /// RFC 7523 §3: a server may refuse a replayed `jti`, and one flow can sign more than one
    /// assertion (a refresh refused, then the code exchange), so each gets its own.
    /// A resumed flow signs with the `state` of the flow it resumes, which may have signed
    /// assertions already: none of its `jti`s repeats theirs.
    #[test]
    fn a_resumed_flows_assertions_do_not_repeat_the_first_flows() {
        let first = FlowSecrets::from_entropy([1; 32], [2; 32]);
        let before: Vec<String> = (0..3).map(|_| first.next_jti()).collect();
        let at = |ms: u64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        let resume = |ms| {
            FlowSecrets::restore(
                first.state().clone(),
                crate::pkce::Pkce::from_entropy([2; 32]),
                at(ms),
            )
        };
        let resumed = resume(1_000);
        let after: Vec<String> = (0..3).map(|_| resumed.next_jti()).collect();
        assert!(after.iter().all(|jti| !before.contains(jti)), "{after:?}");
        // The same record resumed again a moment later signs other ones too.
        let again = resume(1_001);
        let later: Vec<String> = (0..3).map(|_| again.next_jti()).collect();
        assert!(later
            .iter()
            .all(|jti| !after.contains(jti) && !before.contains(jti)));
    }

    #[test]
    fn each_assertion_of_a_flow_gets_its_own_jti() {
        let secrets = FlowSecrets::from_entropy([1; 32], [2; 32]);
        let (a, b) = (secrets.next_jti(), secrets.next_jti());
        assert_ne!(a, b);
        assert!(
            !a.contains(secrets.state().secret().as_str()),
            "the state stays secret"
        );
        assert_eq!(a.len(), 43, "a base64url SHA-256");
        let other = FlowSecrets::from_entropy([3; 32], [2; 32]);
        assert_ne!(other.next_jti(), a, "flows differ by their random state");
    }
}
