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
mod tests;
