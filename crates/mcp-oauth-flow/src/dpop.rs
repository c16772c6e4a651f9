//! DPoP, Demonstrating Proof of Possession (RFC 9449): the client's key and the proof JWT it
//! signs for each request; what servers answer a proof with (their nonce challenges and
//! refusals) is read in [`answers`](self::answers).
//!
//! Every function here is pure: the caller passes the time, the `jti` and the nonce it knows, so
//! a proof is a function of its inputs and the tests can verify one byte for byte.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::HeaderName;
use http::Method;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};

mod answers;

pub use answers::{
    asks_for_a_nonce, nonce_header, refuses_the_proof, resource_nonce_challenge,
    token_nonce_challenge, token_proof_refused, MAX_NONCE_BYTES,
};

/// The `DPoP` request header that carries a proof (RFC 9449 §4.1).
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header that carries a server's nonce (RFC 9449 §8, §9).
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// The error a server answers when a proof lacks its current nonce (RFC 9449 §8, §9).
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";
/// The error a server answers when it refuses a proof (RFC 9449 §5, §7.1).
pub const INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";
/// The only proof algorithm this client signs with (RFC 9449 §5.1 lets servers list theirs).
pub const DPOP_ALGORITHM: &str = "ES256";

/// A client's DPoP key: an EC P-256 key signing ES256 proofs (RFC 9449 §4.2).
///
/// Tokens issued against a proof are bound to this key, so it is kept (and persisted) with them:
/// it serializes as a private JWK (RFC 7517 §6.2.2). `Debug` shows the public thumbprint only.
/// Signatures are deterministic (RFC 6979): signing needs no randomness.
///
/// ```
/// use mcp_oauth_flow::dpop::DpopKey;
/// let key = DpopKey::from_entropy([7; 32]).unwrap();
/// assert_eq!(key.public_jwk()["kty"], "EC");
/// assert!(key.public_jwk().get("d").is_none()); // never the private part
/// let stored = serde_json::to_string(&key).unwrap();
/// let back: DpopKey = serde_json::from_str(&stored).unwrap();
/// assert_eq!(back.thumbprint(), key.thumbprint());
/// assert!(!format!("{key:?}").contains(&stored));
/// ```
#[derive(Clone)]
pub struct DpopKey {
    key: SigningKey,
}

impl DpopKey {
    /// A key from 32 random bytes (the scalar). Fails only for the astronomically unlikely
    /// bytes that are not a valid P-256 scalar (zero, or not below the group order).
    pub fn from_entropy(bytes: [u8; 32]) -> Result<Self, Error> {
        SigningKey::from_slice(&bytes)
            .map(|key| Self { key })
            .map_err(|_| unreadable("32 random bytes that are not a P-256 scalar"))
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) on the P-256 curve.
    ///
    /// ```
    /// use mcp_oauth_flow::{dpop::DpopKey, ErrorKind};
    /// assert_eq!(DpopKey::from_pkcs8_pem("not a key").unwrap_err().kind(), ErrorKind::InvalidDpopKey);
    /// ```
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| Self { key })
            .map_err(|e| unreadable(&format!("not a PKCS#8 PEM EC P-256 private key: {e}")))
    }

    /// The JWS algorithm of the proofs: `ES256`.
    pub fn algorithm(&self) -> &'static str {
        DPOP_ALGORITHM
    }

    /// The public key as a JWK (RFC 7518 §6.2.1), the proof's `jwk` header.
    pub fn public_jwk(&self) -> Value {
        let (x, y) = self.coordinates();
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256) of the required members in lexicographic
    /// order with no whitespace. Servers bind tokens to it (`cnf.jkt`, RFC 9449 §6.1).
    pub fn thumbprint(&self) -> String {
        let (x, y) = self.coordinates();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// Signs `proof` (see [`Proof`]).
    pub fn sign(&self, proof: &Proof<'_>) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": DPOP_ALGORITHM, "jwk": self.public_jwk()});
        let mut claims = Map::new();
        claims.insert("jti".into(), proof.jti.into());
        claims.insert("htm".into(), proof.method.as_str().into());
        claims.insert("htu".into(), htu(proof.url).into());
        claims.insert("iat".into(), unix(proof.iat).into());
        if let Some(nonce) = proof.nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        if let Some(token) = proof.access_token {
            claims.insert("ath".into(), ath(token).into());
        }
        // Extra claims never replace one the RFC defines: a hook cannot break the proof.
        for (name, value) in proof.extra.into_iter().flatten() {
            claims.entry(name.clone()).or_insert_with(|| value.clone());
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        );
        // RFC 7518 §3.4: the JWS signature is R || S, 64 bytes, not DER.
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    fn coordinates(&self) -> (String, String) {
        let point = self.key.verifying_key().to_encoded_point(false);
        let enc = |b: Option<&p256::FieldBytes>| URL_SAFE_NO_PAD.encode(b.map_or(&[][..], |b| b));
        (enc(point.x()), enc(point.y()))
    }
}

fn unreadable(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidDpopKey,
        format!("the DPoP key is unusable: {what}"),
    )
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.algorithm())
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl Serialize for DpopKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut jwk = self.public_jwk();
        jwk["d"] = URL_SAFE_NO_PAD.encode(self.key.to_bytes()).into();
        jwk.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DpopKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct PrivateJwk {
            kty: String,
            crv: String,
            d: String,
        }
        let jwk = PrivateJwk::deserialize(deserializer)?;
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return Err(D::Error::custom("a DPoP key must be an EC P-256 JWK"));
        }
        let d = URL_SAFE_NO_PAD
            .decode(jwk.d)
            .map_err(|_| D::Error::custom("the DPoP key's `d` is not base64url"))?;
        SigningKey::from_slice(&d)
            .map(|key| Self { key })
            .map_err(|_| D::Error::custom("the DPoP key's `d` is not a P-256 scalar"))
    }
}

/// What one proof says (RFC 9449 §4.2): the request it is for, when, a unique `jti`, the
/// server's nonce if one is known, and for a resource request the access token it presents.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_oauth_flow::dpop::{decode_claims, DpopKey, Proof};
/// let key = DpopKey::from_entropy([7; 32]).unwrap();
/// let iat = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let method = http::Method::GET;
/// let jwt = key.sign(&Proof::new(&method, "https://mcp.example.com/mcp?x=1#f", iat, "j1").nonce(Some("n1")));
/// let claims = decode_claims(&jwt).unwrap();
/// assert_eq!(claims["htu"], "https://mcp.example.com/mcp"); // no query, no fragment
/// assert_eq!(claims["htm"], "GET");
/// assert_eq!(claims["nonce"], "n1");
/// assert!(claims.get("ath").is_none()); // no token: a token request
/// ```
#[derive(Clone, Copy)]
pub struct Proof<'a> {
    method: &'a Method,
    url: &'a str,
    iat: SystemTime,
    jti: &'a str,
    nonce: Option<&'a str>,
    access_token: Option<&'a str>,
    extra: Option<&'a Map<String, Value>>,
}

/// Shows what the proof says, never the access token it hashes (only whether there is one),
/// nor the URL's query and fragment.
impl std::fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proof")
            .field("method", self.method)
            .field("htu", &htu(self.url))
            .field("iat", &self.iat)
            .field("jti", &self.jti)
            .field("nonce", &self.nonce)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .field(
                "extra_claims",
                &self.extra.map(|m| m.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

impl<'a> Proof<'a> {
    /// A proof for a `method` request to `url` (its query and fragment are dropped) issued at
    /// `iat` with the unique `jti`.
    pub fn new(method: &'a Method, url: &'a str, iat: SystemTime, jti: &'a str) -> Self {
        Self {
            method,
            url,
            iat,
            jti,
            nonce: None,
            access_token: None,
            extra: None,
        }
    }

    /// The server's nonce (RFC 9449 §8, §9), if one is known.
    pub fn nonce(mut self, nonce: Option<&'a str>) -> Self {
        self.nonce = nonce;
        self
    }

    /// The access token the request presents; the proof then carries its hash, `ath`
    /// (RFC 9449 §4.2). Only for requests to a resource, never to the token endpoint.
    pub fn access_token(mut self, token: Option<&'a str>) -> Self {
        self.access_token = token;
        self
    }

    /// Claims of the application's own (RFC 9449 §4.2 allows more); they never replace one of
    /// the claims above.
    pub fn extra_claims(mut self, extra: Option<&'a Map<String, Value>>) -> Self {
        self.extra = extra;
        self
    }
}

/// The `htu` of a request URL: the URL without its query and fragment (RFC 9449 §4.2).
///
/// ```
/// assert_eq!(mcp_oauth_flow::dpop::htu("https://as.example.com/token?a=b#c"), "https://as.example.com/token");
/// ```
pub fn htu(url: &str) -> &str {
    url.find(['?', '#']).map_or(url, |end| &url[..end])
}

/// The `ath` of an access token: base64url(SHA-256(the token's ASCII)) (RFC 9449 §4.2).
///
/// ```
/// // RFC 9449 §7.1's example token and hash.
/// assert_eq!(mcp_oauth_flow::dpop::ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
/// ```
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// Whether authorization server metadata offers DPoP with a key this client has: its
/// `dpop_signing_alg_values_supported` lists `ES256` (RFC 9449 §5.1).
///
/// ```
/// use mcp_oauth_flow::dpop::offered;
/// assert!(offered(Some(&["RS256".into(), "ES256".into()])));
/// assert!(!offered(Some(&["EdDSA".into()])));
/// assert!(!offered(None));
/// ```
pub fn offered(algorithms: Option<&[String]>) -> bool {
    algorithms.is_some_and(|algs| algs.iter().any(|a| a == DPOP_ALGORITHM))
}

/// The claims of a JWT, decoded without verifying anything: for tests and diagnostics.
pub fn decode_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::StatusCode;

    use super::*;
    use http::header::CONTENT_TYPE;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;
    use std::time::Duration;

    fn part(jwt: &str, i: usize) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap()
    }

    #[test]
    fn a_proofs_debug_shows_no_token_and_no_query() {
        let iat = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let method = Method::GET;
        let mut extra = Map::new();
        extra.insert("client_note".into(), "claim-value".into());
        let proof = Proof::new(
            &method,
            "https://mcp.example.com/mcp?key=q-secret",
            iat,
            "j1",
        )
        .access_token(Some("at-secret"))
        .extra_claims(Some(&extra));
        let shown = format!("{proof:?}");
        assert!(shown.contains("https://mcp.example.com/mcp"), "{shown}");
        assert!(shown.contains("client_note"), "{shown}");
        for secret in ["at-secret", "q-secret", "claim-value"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    /// The proof is verified with the public key the proof itself carries, as a server does.
    #[test]
    fn a_proof_verifies_with_its_own_jwk_and_carries_every_claim() {
        let key = DpopKey::from_entropy([9; 32]).unwrap();
        let iat = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let method = Method::POST;
        let mut extra = Map::new();
        extra.insert("htm".into(), "GET".into()); // may not override
        extra.insert("client_note".into(), "x".into());
        let jwt = key.sign(
            &Proof::new(&method, "https://rs.example.com/mcp?q", iat, "jti-1")
                .nonce(Some("nonce-1"))
                .access_token(Some("at-1"))
                .extra_claims(Some(&extra)),
        );
        let header: Value = serde_json::from_slice(&part(&jwt, 0)).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"].get("d").is_none());
        let x = URL_SAFE_NO_PAD
            .decode(header["jwk"]["x"].as_str().unwrap())
            .unwrap();
        let y = URL_SAFE_NO_PAD
            .decode(header["jwk"]["y"].as_str().unwrap())
            .unwrap();
        let point = p256::EncodedPoint::from_affine_coordinates(
            p256::FieldBytes::from_slice(&x),
            p256::FieldBytes::from_slice(&y),
            false,
        );
        let verifying = VerifyingKey::from_encoded_point(&point).unwrap();
        let (input, _) = jwt.rsplit_once('.').unwrap();
        let signature = Signature::from_slice(&part(&jwt, 2)).unwrap();
        verifying.verify(input.as_bytes(), &signature).unwrap();

        let claims = decode_claims(&jwt).unwrap();
        assert_eq!(claims["jti"], "jti-1");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://rs.example.com/mcp");
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["nonce"], "nonce-1");
        assert_eq!(claims["ath"], ath("at-1"));
        assert_eq!(claims["client_note"], "x");
    }

    /// RFC 7638 §3.1's canonical form, checked against a thumbprint computed by hand from the
    /// JWK the key publishes.
    #[test]
    fn thumbprint_is_the_rfc7638_hash_of_the_public_jwk() {
        let key = DpopKey::from_entropy([3; 32]).unwrap();
        let jwk = key.public_jwk();
        let canonical = serde_json::to_string(&json!({
            "crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"],
        }))
        .unwrap();
        // serde_json keeps insertion order only with `preserve_order`; without it keys sort,
        // which is exactly RFC 7638's order.
        assert!(
            canonical.starts_with(r#"{"crv":"P-256","kty":"EC","x":"#),
            "{canonical}"
        );
        assert_eq!(
            key.thumbprint(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
        assert_ne!(
            key.thumbprint(),
            DpopKey::from_entropy([4; 32]).unwrap().thumbprint()
        );
    }

    #[test]
    fn unusable_keys_are_typed_errors() {
        assert_eq!(
            DpopKey::from_entropy([0; 32]).unwrap_err().kind(),
            ErrorKind::InvalidDpopKey
        );
        assert!(
            serde_json::from_str::<DpopKey>(r#"{"kty":"RSA","crv":"P-256","d":"AA"}"#).is_err()
        );
        assert!(serde_json::from_str::<DpopKey>(r#"{"kty":"EC","crv":"P-256","d":"!!"}"#).is_err());
    }

    #[test]
    fn nonce_challenges_need_the_error_and_the_header() {
        let response = |status: u16, body: &str, nonce: Option<&str>| {
            let mut b = http::Response::builder()
                .status(status)
                .header(CONTENT_TYPE, "application/json");
            if let Some(n) = nonce {
                b = b.header(DPOP_NONCE, n);
            }
            b.body(Bytes::from(body.to_owned())).unwrap()
        };
        let nonce_error = r#"{"error":"use_dpop_nonce"}"#;
        assert_eq!(
            token_nonce_challenge(&response(400, nonce_error, Some("n"))).as_deref(),
            Some("n")
        );
        assert_eq!(
            token_nonce_challenge(&response(400, nonce_error, None)),
            None
        );
        assert_eq!(
            token_nonce_challenge(&response(400, r#"{"error":"invalid_grant"}"#, Some("n"))),
            None
        );
        assert_eq!(
            token_nonce_challenge(&response(401, nonce_error, Some("n"))),
            None
        );
        assert_eq!(
            token_nonce_challenge(&response(400, nonce_error, Some("bad nonce"))),
            None
        );
        let longest = "n".repeat(MAX_NONCE_BYTES);
        assert_eq!(
            token_nonce_challenge(&response(400, nonce_error, Some(&longest))),
            Some(longest.clone())
        );
        let longer = format!("{longest}n");
        assert_eq!(
            token_nonce_challenge(&response(400, nonce_error, Some(&longer))),
            None
        );

        let mut headers = http::HeaderMap::new();
        headers.insert(DPOP_NONCE, "n".parse().unwrap());
        assert!(token_proof_refused(&response(
            400,
            r#"{"error":"invalid_dpop_proof"}"#,
            None
        )));
        assert!(!token_proof_refused(&response(
            401,
            r#"{"error":"invalid_dpop_proof"}"#,
            None
        )));
        assert!(!token_proof_refused(&response(400, nonce_error, Some("n"))));

        let unauthorized = StatusCode::UNAUTHORIZED;
        assert_eq!(resource_nonce_challenge(unauthorized, &headers), None);
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            r#"Bearer error="use_dpop_nonce""#.parse().unwrap(),
        );
        assert_eq!(resource_nonce_challenge(unauthorized, &headers), None);
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            r#"DPoP error="invalid_token""#.parse().unwrap(),
        );
        assert_eq!(resource_nonce_challenge(unauthorized, &headers), None);
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            r#"dpop error="use_dpop_nonce""#.parse().unwrap(),
        );
        assert_eq!(
            resource_nonce_challenge(unauthorized, &headers).as_deref(),
            Some("n")
        );
    }

    #[test]
    fn pem_keys_are_read() {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let secret = SigningKey::from_slice(&[5; 32]).unwrap();
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = DpopKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(
            key.thumbprint(),
            DpopKey::from_entropy([5; 32]).unwrap().thumbprint()
        );
    }
}
