//! PKCE (RFC 7636) with the S256 method, from caller-supplied randomness.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};

/// A PKCE verifier and its S256 challenge.
///
/// The verifier is an `oauth2::PkceCodeVerifier`, whose `Debug` is redacted.
///
/// ```
/// use mcp_oauth_flow::authorization::Pkce;
/// let pkce = Pkce::from_entropy([7u8; 32]);
/// assert_eq!(pkce.verifier().secret().len(), 43);
/// assert_eq!(pkce.challenge().len(), 43);
/// assert!(!format!("{pkce:?}").contains(pkce.verifier().secret()));
/// ```
pub struct Pkce {
    verifier: PkceCodeVerifier,
    challenge: String,
}

impl Pkce {
    /// Builds the pair from 32 random bytes: the verifier is their base64url form, 43
    /// characters, the minimum RFC 7636 §4.1 allows and 256 bits of entropy.
    pub fn from_entropy(bytes: [u8; 32]) -> Self {
        let verifier = PkceCodeVerifier::new(URL_SAFE_NO_PAD.encode(bytes));
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier)
            .as_str()
            .to_owned();
        Self {
            verifier,
            challenge,
        }
    }

    /// The pair for a verifier made earlier (a pending login resumed in another process):
    /// the challenge is derived again, so the two always match.
    pub(crate) fn from_verifier(verifier: String) -> Self {
        let verifier = PkceCodeVerifier::new(verifier);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier)
            .as_str()
            .to_owned();
        Self {
            verifier,
            challenge,
        }
    }

    /// The verifier sent to the token endpoint.
    pub fn verifier(&self) -> &PkceCodeVerifier {
        &self.verifier
    }

    /// The S256 challenge sent to the authorization endpoint.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &self.verifier)
            .field("challenge", &self.challenge)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        // RFC 7636 Appendix B: the octets below give this verifier and challenge.
        let octets: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let pkce = Pkce::from_entropy(octets);
        assert_eq!(
            pkce.verifier().secret(),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        assert_eq!(
            pkce.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    /// `Debug` shows the (public) challenge and never the verifier.
    #[test]
    fn debug_shows_the_challenge_not_the_verifier() {
        let pkce = Pkce::from_entropy([7; 32]);
        let text = format!("{pkce:?}");
        assert!(text.contains("Pkce"), "{text}");
        assert!(text.contains(pkce.challenge()), "{text}");
        assert!(!text.contains(pkce.verifier().secret()), "{text}");
    }
}
