//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): a JWT the
//! client signs with its private key and sends instead of a secret, on every token request
//! (authorization code, refresh, client credentials, jwt-bearer).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::pkcs8::DecodePrivateKey;
use serde_json::json;
use sha2::{Sha256, Sha384, Sha512};
use signature::{SignatureEncoding, Signer};

use crate::error::{Error, ErrorKind};

/// How long an assertion is valid: long enough for a slow token endpoint, short enough that a
/// captured one is of little use (RFC 7523 §3: the `exp` claim "MUST" limit the window).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A key held outside this process (an HSM, a cloud KMS, an agent), signing JWS input on
/// request.
///
/// ```
/// use mcp_oauth_flow::client::{ClientKey, JwsSigner};
/// use mcp_oauth_flow::Error;
///
/// /// A stand-in for a KMS client: the signature is whatever the service returns.
/// struct Kms;
/// impl JwsSigner for Kms {
///     fn algorithm(&self) -> &str { "ES256" }
///     fn key_id(&self) -> Option<&str> { Some("kms-key-1") }
///     fn sign(&self, _input: &[u8]) -> Result<Vec<u8>, Error> { Ok(vec![0; 64]) }
/// }
/// let key = ClientKey::from_signer(Kms);
/// assert_eq!(key.algorithm(), "ES256");
/// let jwt = key.assertion("client", "https://as.example.com", std::time::SystemTime::now(), "jti-1").unwrap();
/// assert_eq!(jwt.split('.').count(), 3);
/// ```
pub trait JwsSigner: Send + Sync + 'static {
    /// The JWS `alg` (RFC 7518 §3.1) of the signatures: `ES256`, `RS256`, `EdDSA`, ….
    fn algorithm(&self) -> &str;

    /// The `kid` header naming the key at the authorization server, if it needs one.
    fn key_id(&self) -> Option<&str> {
        None
    }

    /// Signs the JWS signing input (`base64url(header).base64url(claims)`) and returns the JWS
    /// signature bytes (RFC 7518 §3: for ES256 the 64-byte `R || S`, not DER). An error ends the
    /// flow; make it say what to fix (a key revoked, a permission missing).
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, Error>;
}

/// Where the private key lives.
#[derive(Clone)]
enum Key {
    /// EC P-256 (RustCrypto `p256`): ES256, deterministic signatures (RFC 6979).
    P256(p256::ecdsa::SigningKey),
    /// RSA (RustCrypto `rsa`): RS256/384/512, PKCS#1 v1.5, deterministic.
    Rsa(rsa::RsaPrivateKey),
    /// Ed25519 (`ed25519-dalek`): EdDSA, deterministic by construction.
    Ed25519(ed25519_dalek::SigningKey),
    /// Outside the process.
    External(Arc<dyn JwsSigner>),
}

/// What the assertion's `aud` names (RFC 7523 §3 item 3: the authorization server; its issuer
/// or its token endpoint "MAY" be used).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The authorization server's issuer, what MCP servers check. The default.
    #[default]
    Issuer,
    /// The token endpoint URL, for servers that want that instead.
    TokenEndpoint,
}

/// A client's private key for `private_key_jwt`: EC P-256 (ES256), RSA (RS256, RS384, RS512) or
/// Ed25519 (EdDSA) from a PKCS#8 PEM, or any [`JwsSigner`].
///
/// Built-in keys sign deterministically (RFC 6979, RFC 8032, PKCS#1 v1.5), so signing needs no
/// randomness; the assertion's `jti` comes from the caller. `Debug` never shows the key.
///
/// ```
/// use mcp_oauth_flow::client::ClientKey;
/// let err = ClientKey::from_pkcs8_pem("not a key").unwrap_err();
/// assert_eq!(err.kind(), mcp_oauth_flow::ErrorKind::NoClientIdentity);
/// ```
#[derive(Clone)]
pub struct ClientKey {
    key: Key,
    key_id: Option<String>,
    /// The `x5t#S256` header: the key's certificate's SHA-256 thumbprint, base64url.
    certificate_thumbprint: Option<String>,
    audience: AssertionAudience,
}

impl ClientKey {
    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`): EC P-256, RSA or
    /// Ed25519.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let key = if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Key::P256(k)
        } else if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            Key::Ed25519(k)
        } else {
            match rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
                Ok(k) => Key::Rsa(k),
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::NoClientIdentity,
                        format!(
                            "the client key is not a PKCS#8 PEM private key of a supported type \
                             (EC P-256, RSA, Ed25519): {e}; convert it with \
                             `openssl pkcs8 -topk8 -nocrypt` or use a JwsSigner"
                        ),
                    ))
                }
            }
        };
        Ok(Self::with(key))
    }

    /// A key held elsewhere, signing through `signer`.
    pub fn from_signer(signer: impl JwsSigner) -> Self {
        Self::with(Key::External(Arc::new(signer)))
    }

    fn with(key: Key) -> Self {
        Self {
            key,
            key_id: None,
            certificate_thumbprint: None,
            audience: AssertionAudience::default(),
        }
    }

    /// Sets the `kid` header (a [`JwsSigner`]'s own `kid` wins). Default: none.
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// Names the X.509 certificate of the key in each assertion's `x5t#S256` header (RFC 7515
    /// §4.1.8: the base64url SHA-256 thumbprint of its DER encoding), `der` being the
    /// certificate the authorization server holds for the client. Microsoft Entra ID finds a
    /// certificate credential by it, and refuses an assertion without it (Entra also wants
    /// the token endpoint as the `aud`: [`AssertionAudience::TokenEndpoint`]). Default: none.
    ///
    /// ```
    /// use mcp_oauth_flow::client::{ClientKey, JwsSigner};
    /// use mcp_oauth_flow::Error;
    /// # struct Kms;
    /// # impl JwsSigner for Kms {
    /// #     fn algorithm(&self) -> &str { "RS256" }
    /// #     fn sign(&self, _: &[u8]) -> Result<Vec<u8>, Error> { Ok(vec![1]) }
    /// # }
    /// use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    /// let der = b"abc"; // a certificate's DER bytes
    /// let key = ClientKey::from_signer(Kms).x509_certificate(der);
    /// let jwt = key.assertion("app", "https://login.example.com/token", std::time::SystemTime::now(), "jti-1").unwrap();
    /// let header: serde_json::Value =
    ///     serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    /// // SHA-256("abc"), base64url.
    /// assert_eq!(header["x5t#S256"], "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    /// ```
    pub fn x509_certificate(mut self, der: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        self.certificate_thumbprint = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(der)));
        self
    }

    /// Sets what the assertion's `aud` names. Default: [`AssertionAudience::Issuer`].
    pub fn audience(mut self, audience: AssertionAudience) -> Self {
        self.audience = audience;
        self
    }

    /// The JWS algorithms this key can sign with, preferred first.
    pub fn algorithms(&self) -> Vec<&str> {
        match &self.key {
            Key::P256(_) => vec!["ES256"],
            Key::Rsa(_) => vec!["RS256", "RS384", "RS512"],
            // RFC 8037's `EdDSA`, and the fully specified `Ed25519` of RFC 9864.
            Key::Ed25519(_) => vec!["EdDSA", "Ed25519"],
            Key::External(s) => vec![s.algorithm()],
        }
    }

    /// The JWS algorithm this key signs with when the server states no preference.
    pub fn algorithm(&self) -> &str {
        self.algorithms()[0]
    }

    /// The algorithm rule: the first of this key's algorithms that the server lists in
    /// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2), or the key's preferred
    /// one when the server lists none. A list with none of them is a
    /// [`ErrorKind::SigningAlgorithmNotSupported`] naming both sides.
    ///
    /// ```
    /// use mcp_oauth_flow::{client::ClientKey, ErrorKind};
    /// # let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n-----END PRIVATE KEY-----\n";
    /// let ed25519 = ClientKey::from_pkcs8_pem(pem).unwrap();
    /// assert_eq!(ed25519.choose_algorithm(None).unwrap(), "EdDSA");
    /// let listed = vec!["RS256".to_string(), "Ed25519".to_string()];
    /// assert_eq!(ed25519.choose_algorithm(Some(&listed)).unwrap(), "Ed25519");
    /// let rsa_only = vec!["RS256".to_string()];
    /// let err = ed25519.choose_algorithm(Some(&rsa_only)).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::SigningAlgorithmNotSupported);
    /// ```
    pub fn choose_algorithm(&self, supported: Option<&[String]>) -> Result<&str, Error> {
        let mine = self.algorithms();
        let Some(supported) = supported.filter(|s| !s.is_empty()) else {
            return Ok(mine[0]);
        };
        mine.iter()
            .copied()
            .find(|alg| supported.iter().any(|s| s == alg))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::SigningAlgorithmNotSupported,
                    format!(
                        "the authorization server accepts client assertions signed with {} \
                         (token_endpoint_auth_signing_alg_values_supported); the client's key \
                         signs {}: use a key of one of the accepted types",
                        supported.join(", "),
                        mine.join(", ")
                    ),
                )
            })
    }

    /// The `aud` for an authorization server with this issuer and token endpoint.
    pub fn audience_for<'a>(&self, issuer: &'a str, token_endpoint: &'a str) -> &'a str {
        match self.audience {
            AssertionAudience::Issuer => issuer,
            AssertionAudience::TokenEndpoint => token_endpoint,
        }
    }

    /// A client assertion signed with the key's preferred algorithm; see
    /// [`assertion_with`](Self::assertion_with).
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
        jti: &str,
    ) -> Result<String, Error> {
        self.assertion_with(self.algorithm(), client_id, audience, now, jti)
    }

    /// A signed client assertion (RFC 7523 §3): `iss` and `sub` are the client, `aud` the
    /// authorization server, valid for five minutes from `now`, with the unique `jti`, signed
    /// with `alg` (one of [`algorithms`](Self::algorithms)).
    pub fn assertion_with(
        &self,
        alg: &str,
        client_id: &str,
        audience: &str,
        now: SystemTime,
        jti: &str,
    ) -> Result<String, Error> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut header = json!({"alg": alg, "typ": "JWT"});
        let kid = match &self.key {
            Key::External(s) => s.key_id().or(self.key_id.as_deref()),
            _ => self.key_id.as_deref(),
        };
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        if let Some(thumbprint) = &self.certificate_thumbprint {
            header["x5t#S256"] = json!(thumbprint);
        }
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
        let signature = self.sign(alg, signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    fn sign(&self, alg: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
        let unsupported = || {
            Error::new(
                ErrorKind::SigningAlgorithmNotSupported,
                format!("this client key cannot sign {alg}"),
            )
        };
        match (&self.key, alg) {
            // RFC 7518 §3.4: the JWS signature is R || S, 64 bytes, not DER.
            (Key::P256(k), "ES256") => {
                let signature: p256::ecdsa::Signature = k.sign(input);
                Ok(signature.to_bytes().to_vec())
            }
            (Key::Rsa(k), "RS256") => Ok(rsa_sign::<Sha256>(k, input)),
            (Key::Rsa(k), "RS384") => Ok(rsa_sign::<Sha384>(k, input)),
            (Key::Rsa(k), "RS512") => Ok(rsa_sign::<Sha512>(k, input)),
            (Key::Ed25519(k), "EdDSA" | "Ed25519") => Ok(k.sign(input).to_bytes().to_vec()),
            (Key::External(s), alg) if s.algorithm() == alg => s.sign(input),
            _ => Err(unsupported()),
        }
    }
}

/// The client assertion for one token request to an authorization server: the algorithm
/// chosen from the server's list (see [`ClientKey::choose_algorithm`]), `aud` as the key is
/// configured, dated `now`, with the unique `jti`.
pub(crate) fn sign_for_server(
    key: &ClientKey,
    client_id: &str,
    issuer: &str,
    token_endpoint: &str,
    supported_algs: Option<&[String]>,
    now: SystemTime,
    jti: &str,
) -> Result<String, Error> {
    let alg = key.choose_algorithm(supported_algs)?;
    key.assertion_with(
        alg,
        client_id,
        key.audience_for(issuer, token_endpoint),
        now,
        jti,
    )
}

/// [`sign_for_server`] for the server `meta` describes, whose issuer the client's credentials
/// are bound to is `issuer` (the flow's `client_issuer`: on the MCP 2025-03-26 path, where the
/// metadata's own `issuer` was checked against nothing, the server's origin, so an assertion
/// is never addressed to an issuer the server merely claims), with its list of accepted
/// algorithms, for a request to `endpoint`.
pub(crate) fn sign_for_metadata(
    key: &ClientKey,
    client_id: &str,
    issuer: &str,
    meta: &crate::metadata::AuthorizationServerMetadata,
    endpoint: &url::Url,
    now: SystemTime,
    jti: &str,
) -> Result<String, Error> {
    sign_for_server(
        key,
        client_id,
        issuer,
        endpoint.as_str(),
        meta.token_endpoint_auth_signing_alg_values_supported
            .as_deref(),
        now,
        jti,
    )
}

/// RFC 7518 §3.3: RSASSA-PKCS1-v1_5 with the hash of the `alg`.
fn rsa_sign<D>(key: &rsa::RsaPrivateKey, input: &[u8]) -> Vec<u8>
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    rsa::pkcs1v15::SigningKey::<D>::new(key.clone())
        .sign(input)
        .to_vec()
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    use signature::Verifier;

    const RSA_PEM: &str = include_str!("../testdata/rsa-2048-test-only.pem");

    fn p256_key() -> (ClientKey, p256::ecdsa::VerifyingKey) {
        let secret = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        (
            ClientKey::from_pkcs8_pem(&pem).unwrap(),
            *secret.verifying_key(),
        )
    }

    fn ed25519_key() -> (ClientKey, ed25519_dalek::VerifyingKey) {
        let secret = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        (
            ClientKey::from_pkcs8_pem(&pem).unwrap(),
            secret.verifying_key(),
        )
    }

    fn rsa_key() -> (ClientKey, rsa::RsaPublicKey) {
        let secret = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM).unwrap();
        (
            ClientKey::from_pkcs8_pem(RSA_PEM).unwrap(),
            secret.to_public_key(),
        )
    }

    /// Splits a JWT into its decoded header, claims, signing input and signature.
    fn decode(jwt: &str) -> (serde_json::Value, serde_json::Value, String, Vec<u8>) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let json = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        (
            json(parts[0]),
            json(parts[1]),
            format!("{}.{}", parts[0], parts[1]),
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn assert_rfc7523_claims(claims: &serde_json::Value) {
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.example.com");
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_000_300u64);
        assert_eq!(claims["jti"], "jti-1");
    }

    #[test]
    fn assertion_is_a_valid_es256_jwt_with_the_rfc7523_claims() {
        let (key, verifying) = p256_key();
        let jwt = key
            .assertion("client-1", "https://as.example.com", now(), "jti-1")
            .unwrap();
        let (header, claims, input, sig) = decode(&jwt);
        assert_eq!(header["alg"], "ES256");
        assert_rfc7523_claims(&claims);
        let signature = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        verifying
            .verify(input.as_bytes(), &signature)
            .expect("the signature verifies");
    }

    #[test]
    fn an_rsa_key_signs_rs256_and_the_other_listed_hashes() {
        let (key, public) = rsa_key();
        assert_eq!(key.algorithms(), ["RS256", "RS384", "RS512"]);
        let jwt = key
            .assertion("client-1", "https://as.example.com", now(), "jti-1")
            .unwrap();
        let (header, claims, input, sig) = decode(&jwt);
        assert_eq!(header["alg"], "RS256");
        assert_rfc7523_claims(&claims);
        let verifying = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public.clone());
        let signature = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
        verifying
            .verify(input.as_bytes(), &signature)
            .expect("RS256 verifies");
        // Chosen from the server's list: RS512 when that is all it takes.
        let listed = vec!["RS512".to_string(), "ES256".to_string()];
        let alg = key.choose_algorithm(Some(&listed)).unwrap();
        assert_eq!(alg, "RS512");
        let jwt = key
            .assertion_with(alg, "client-1", "https://as.example.com", now(), "jti-1")
            .unwrap();
        let (header, _, input, sig) = decode(&jwt);
        assert_eq!(header["alg"], "RS512");
        let verifying = rsa::pkcs1v15::VerifyingKey::<Sha512>::new(public);
        let signature = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap();
        verifying
            .verify(input.as_bytes(), &signature)
            .expect("RS512 verifies");
    }

    #[test]
    fn an_ed25519_key_signs_eddsa() {
        let (key, verifying) = ed25519_key();
        let jwt = key
            .assertion("client-1", "https://as.example.com", now(), "jti-1")
            .unwrap();
        let (header, claims, input, sig) = decode(&jwt);
        assert_eq!(header["alg"], "EdDSA");
        assert_rfc7523_claims(&claims);
        let signature = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        verifying
            .verify(input.as_bytes(), &signature)
            .expect("EdDSA verifies");
    }

    #[test]
    fn a_key_never_signs_an_algorithm_it_does_not_have() {
        let (key, _) = p256_key();
        let err = key
            .assertion_with("RS256", "c", "https://as", now(), "j")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SigningAlgorithmNotSupported);
        let err = key
            .choose_algorithm(Some(&["RS256".to_string(), "PS256".to_string()]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SigningAlgorithmNotSupported);
        assert!(err.message().contains("RS256, PS256") && err.message().contains("ES256"));
        // An empty list states no preference (RFC 8414 §2 makes the member optional).
        assert_eq!(key.choose_algorithm(Some(&[])).unwrap(), "ES256");
    }

    /// A signer that refuses, as a KMS without permission does.
    struct Refusing;
    impl JwsSigner for Refusing {
        fn algorithm(&self) -> &str {
            "PS256"
        }
        fn key_id(&self) -> Option<&str> {
            Some("kms-1")
        }
        fn sign(&self, _: &[u8]) -> Result<Vec<u8>, Error> {
            Err(Error::new(
                ErrorKind::NoClientIdentity,
                "kms: permission denied on key kms-1",
            ))
        }
    }

    #[test]
    fn an_external_signer_names_its_key_and_its_failure_is_the_flows() {
        let key = ClientKey::from_signer(Refusing).key_id("ignored");
        assert_eq!(key.algorithms(), ["PS256"]);
        let err = key.assertion("c", "https://as", now(), "j").unwrap_err();
        assert!(err.message().contains("permission denied"));
        struct Echo;
        impl JwsSigner for Echo {
            fn algorithm(&self) -> &str {
                "ES256"
            }
            fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Error> {
                Ok(input[..4].to_vec())
            }
        }
        let jwt = ClientKey::from_signer(Echo)
            .key_id("k-2")
            .assertion("c", "https://as", now(), "j")
            .unwrap();
        let (header, _, input, sig) = decode(&jwt);
        assert_eq!(header["kid"], "k-2");
        assert_eq!(sig, input.as_bytes()[..4]);
        // No certificate named: no thumbprint header.
        assert!(header.get("x5t#S256").is_none());
        // Named: the thumbprint is signed with the rest of the header.
        let jwt = ClientKey::from_signer(Echo)
            .x509_certificate(b"abc")
            .assertion("c", "https://as", now(), "j")
            .unwrap();
        let (header, _, _, _) = decode(&jwt);
        assert_eq!(
            header["x5t#S256"],
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn the_audience_is_the_issuer_unless_configured_otherwise() {
        let (key, _) = p256_key();
        assert_eq!(
            key.audience_for("https://as", "https://as/token"),
            "https://as"
        );
        let key = key.audience(AssertionAudience::TokenEndpoint);
        assert_eq!(
            key.audience_for("https://as", "https://as/token"),
            "https://as/token"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        for (key, secret_hex) in [(p256_key().0, "0707"), (ed25519_key().0, "0707")] {
            let shown = format!("{key:?}");
            assert!(!shown.contains(secret_hex), "{shown}");
        }
        let shown = format!("{:?}", rsa_key().0);
        assert!(shown.contains("RS256") && !shown.contains("MII"), "{shown}");
    }
}
