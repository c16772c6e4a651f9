//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): a JWT the
//! client signs with its private key and sends instead of a secret.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde_json::json;

use crate::error::{Error, ErrorKind};

/// How long an assertion is valid: long enough for a slow token endpoint, short enough that a
/// captured one is of little use (RFC 7523 §3: the `exp` claim "MUST" limit the window).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's private key for `private_key_jwt`: an EC P-256 key, signing ES256 assertions.
///
/// Signatures are deterministic (RFC 6979), so signing needs no randomness; the assertion's
/// `jti` comes from the caller. `Debug` never shows the key.
///
/// ```
/// use mcp_oauth_flow::client::ClientKey;
/// let err = ClientKey::from_pkcs8_pem("not a key").unwrap_err();
/// assert_eq!(err.kind(), mcp_oauth_flow::ErrorKind::NoClientIdentity);
/// ```
#[derive(Clone)]
pub struct ClientKey {
    key: SigningKey,
}

impl ClientKey {
    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) for ES256.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| {
            Error::new(
                ErrorKind::NoClientIdentity,
                format!("the client key is not a PKCS#8 PEM EC P-256 private key: {e}"),
            )
        })?;
        Ok(Self { key })
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> &'static str {
        "ES256"
    }

    /// A signed client assertion: `iss` and `sub` are the client, `aud` the authorization
    /// server's issuer (RFC 7523 §3 allows the issuer or the token endpoint; the issuer is what
    /// MCP servers check), valid for five minutes from `now`, with the unique `jti`.
    pub fn assertion(&self, client_id: &str, audience: &str, now: SystemTime, jti: &str) -> String {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let header = json!({"alg": "ES256", "typ": "JWT"});
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
            "jti": jti,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // RFC 7518 §3.4: the JWS signature is R || S, 64 bytes, not DER.
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    fn key() -> (ClientKey, VerifyingKey) {
        let secret = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        (
            ClientKey::from_pkcs8_pem(&pem).unwrap(),
            *secret.verifying_key(),
        )
    }

    #[test]
    fn assertion_is_a_valid_es256_jwt_with_the_rfc7523_claims() {
        let (key, verifying) = key();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = key.assertion("client-1", "https://as.example.com", now, "jti-1");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.example.com");
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_000_300u64);
        assert_eq!(claims["jti"], "jti-1");
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        verifying
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("the signature verifies");
    }

    #[test]
    fn debug_hides_the_key() {
        let (key, _) = key();
        let shown = format!("{key:?}");
        assert!(shown.contains("ES256") && !shown.contains("0707"));
    }
}
