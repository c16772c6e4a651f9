//! The client assertions' tests: claims, algorithms chosen from the metadata, signatures.

use super::*;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use signature::Verifier;

const RSA_PEM: &str = include_str!("../../testdata/rsa-2048-test-only.pem");

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
