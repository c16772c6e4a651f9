//! The server side of the assertion-based grants: `private_key_jwt` client authentication
//! (RFC 7523 §2.2), the jwt-bearer grant (RFC 7523 §2.1) for workload identity tokens (SEP-1933)
//! and ID-JAGs (SEP-990), and the enterprise IdP's token exchange (RFC 8693) that issues them.
//!
//! Every JWT is verified with a public key (ES256, RS256/384/512, EdDSA), never just decoded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Method, StatusCode};
use p256::pkcs8::DecodePublicKey;
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};
use signature::{Signer, Verifier};

use crate::codec::unix_now;
use crate::config::TestkitConfig;
use crate::record::RecordedRequest;
use crate::response::{bad_request, method_not_allowed, no_store, oauth_error, HttpResponse};
use crate::state::{Shared, State, AUTH_PRIVATE_KEY_JWT};

/// RFC 7523 §2.1.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 7523 §2.2.
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// RFC 8693 §2.1.
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// SEP-990: the JOSE `typ` of an ID-JAG.
const ID_JAG_TYP: &str = "oauth-id-jag+jwt";
/// The token-exchange endpoint of the built-in enterprise IdP, on the authorization server.
pub const IDP_TOKEN_PATH: &str = "/idp/token";

/// A public key JWTs are verified with.
#[derive(Clone, Debug)]
enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// An SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of an EC P-256, Ed25519 or RSA key.
    fn from_pem(pem: &str) -> Option<Self> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Some(Self::P256(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Some(Self::Ed25519(k));
        }
        rsa::RsaPublicKey::from_public_key_pem(pem)
            .ok()
            .map(Self::Rsa)
    }

    fn algorithms(&self) -> &'static [&'static str] {
        match self {
            Self::P256(_) => &["ES256"],
            Self::Rsa(_) => &["RS256", "RS384", "RS512"],
            Self::Ed25519(_) => &["EdDSA", "Ed25519"],
        }
    }

    fn verify(&self, alg: &str, input: &[u8], sig: &[u8]) -> bool {
        fn rsa<D: sha2::Digest + rsa::pkcs8::AssociatedOid>(
            key: &rsa::RsaPublicKey,
            input: &[u8],
            sig: &[u8],
        ) -> bool {
            rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| {
                rsa::pkcs1v15::VerifyingKey::<D>::new(key.clone())
                    .verify(input, &s)
                    .is_ok()
            })
        }
        match (self, alg) {
            (Self::P256(k), "ES256") => {
                p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(input, &s).is_ok())
            }
            (Self::Rsa(k), "RS256") => rsa::<Sha256>(k, input, sig),
            (Self::Rsa(k), "RS384") => rsa::<Sha384>(k, input, sig),
            (Self::Rsa(k), "RS512") => rsa::<Sha512>(k, input, sig),
            (Self::Ed25519(k), "EdDSA" | "Ed25519") => {
                ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify(input, &s).is_ok())
            }
            _ => false,
        }
    }
}

/// A JWT whose signature checked out.
struct Verified {
    header: Value,
    claims: Value,
}

/// Verifies `jwt`'s signature with `key` (the `alg` must be one the key has) and its `exp`.
fn verify(jwt: &str, key: &PublicKey) -> Result<Verified, &'static str> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS");
    };
    let json = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims), Ok(sig)) = (json(h), json(c), URL_SAFE_NO_PAD.decode(s))
    else {
        return Err("malformed JWT");
    };
    let alg = header["alg"].as_str().unwrap_or_default();
    if !key.verify(alg, format!("{h}.{c}").as_bytes(), &sig) {
        return Err("bad signature");
    }
    match claims["exp"].as_u64() {
        Some(exp) if exp > unix_now() => Ok(Verified { header, claims }),
        Some(_) => Err("expired"),
        None => Err("no exp"),
    }
}

/// The metadata this configuration adds: the jwt-bearer grant, and the algorithms a keyed
/// client may sign with.
pub(crate) fn extend_metadata(config: &TestkitConfig, doc: &mut serde_json::Map<String, Value>) {
    if config.assertion_issuer_key.is_some() {
        if let Some(Value::Array(grants)) = doc.get_mut("grant_types_supported") {
            grants.push(json!(JWT_BEARER_GRANT));
        }
    }
    if let Some(key) = config
        .client_public_key
        .as_deref()
        .and_then(PublicKey::from_pem)
    {
        doc.insert(
            "token_endpoint_auth_signing_alg_values_supported".into(),
            json!(key.algorithms()),
        );
    }
}

/// Authenticates a `private_key_jwt` client (RFC 7523 §2.2, §3): the assertion names the client
/// in `iss` and `sub`, is addressed to the issuer or the token endpoint, has not expired, is
/// signed with the client's registered key, and its `jti` was never seen.
pub(crate) fn authenticate_assertion(
    shared: &Shared,
    state: &mut State,
    request: &RecordedRequest,
) -> Result<String, &'static str> {
    if request.form_param("client_assertion_type").as_deref() != Some(CLIENT_ASSERTION_TYPE) {
        return Err("client_assertion_type must be the jwt-bearer type");
    }
    let jwt = request.form_param("client_assertion").unwrap_or_default();
    let key = shared
        .config
        .client_public_key
        .as_deref()
        .and_then(PublicKey::from_pem)
        .ok_or("no client has a public key")?;
    let Verified { claims, .. } = verify(&jwt, &key)?;
    let client_id = claims["iss"].as_str().ok_or("no iss")?.to_owned();
    if claims["sub"].as_str() != Some(client_id.as_str()) {
        return Err("sub is not the client");
    }
    if let Some(body_id) = request.form_param("client_id") {
        if body_id != client_id {
            return Err("client_id differs from the assertion's");
        }
    }
    let is_keyed = state
        .clients
        .get(&client_id)
        .is_some_and(|c| c.auth_method == AUTH_PRIVATE_KEY_JWT);
    if !is_keyed {
        return Err("the client does not authenticate with private_key_jwt");
    }
    let issuer = shared.site.metadata_issuer(&shared.config);
    let token_endpoint = shared.site.endpoint_url(&shared.site.token_path);
    let aud_ok = |aud: &str| aud == issuer || aud == token_endpoint;
    let aud = &claims["aud"];
    let addressed = aud.as_str().is_some_and(aud_ok)
        || aud
            .as_array()
            .is_some_and(|a| a.iter().filter_map(Value::as_str).any(aud_ok));
    if !addressed {
        return Err("aud is neither the issuer nor the token endpoint");
    }
    let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
    if !state.seen_jtis.insert(jti) {
        return Err("jti replayed");
    }
    Ok(client_id)
}

/// The jwt-bearer grant (RFC 7523 §2.1): an ID-JAG (`typ` `oauth-id-jag+jwt`) issued by the
/// built-in IdP to the authenticated client, or a workload identity token signed by the trusted
/// assertion issuer; either addressed to this issuer.
pub(crate) fn jwt_bearer_grant(
    shared: &Shared,
    state: &mut State,
    request: &RecordedRequest,
    client_id: Option<&str>,
) -> HttpResponse {
    let invalid = |why: &str| bad_request("invalid_grant", why);
    let Some(trusted) = shared
        .config
        .assertion_issuer_key
        .as_deref()
        .and_then(PublicKey::from_pem)
    else {
        return bad_request("unsupported_grant_type", "jwt-bearer is not enabled");
    };
    let Some(assertion) = request.form_param("assertion") else {
        return bad_request("invalid_request", "missing assertion");
    };
    let is_id_jag = assertion
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .is_some_and(|h| h["typ"] == ID_JAG_TYP);
    let key = if is_id_jag { idp_public_key() } else { trusted };
    let Verified { header, claims } = match verify(&assertion, &key) {
        Ok(v) => v,
        Err(why) => return invalid(why),
    };
    let issuer = shared.site.metadata_issuer(&shared.config);
    let aud = claims["aud"].as_str().unwrap_or_default();
    if aud != issuer && aud.strip_suffix('/') != Some(issuer.as_str()) {
        return invalid("the assertion's aud is not this authorization server");
    }
    let mut resource = request.form_param("resource");
    if header["typ"] == ID_JAG_TYP {
        // SEP-990: the ID-JAG names the client it was issued for, and the resource.
        if client_id.is_none() || claims["client_id"].as_str() != client_id {
            return invalid("the ID-JAG was issued to another client");
        }
        match claims["resource"].as_str() {
            Some(r) if shared.site.accepts_resource(r) => resource = Some(r.to_owned()),
            _ => return invalid("the ID-JAG's resource is not this resource server"),
        }
    }
    let grant = state.next_id();
    let lifetime = std::time::Duration::from_secs(shared.config.token_lifetime_secs);
    let scope = request.form_param("scope");
    let token = state.issue_access_token(scope.clone(), resource, grant, lifetime);
    let mut body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": shared.config.token_lifetime_secs,
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let mut response = crate::response::json(StatusCode::OK, &body);
    no_store(&mut response);
    response
}

/// The enterprise IdP's token exchange (RFC 8693 §2, SEP-990): an ID token signed by the
/// trusted assertion issuer in, an ID-JAG for the requested `audience` and `resource` out,
/// issued to the testkit's pre-registered client.
pub(crate) fn token_exchange(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    if request.method != Method::POST {
        return method_not_allowed("POST");
    }
    let param = |name: &str| request.form_param(name);
    let invalid = |e: &str, why: &str| bad_request(e, why);
    if param("grant_type").as_deref() != Some(TOKEN_EXCHANGE_GRANT) {
        return invalid("unsupported_grant_type", "only token exchange here");
    }
    if param("subject_token_type").as_deref() != Some(ID_TOKEN_TYPE)
        || param("requested_token_type").as_deref() != Some(ID_JAG_TYPE)
    {
        return invalid("invalid_request", "an ID token for an ID-JAG only");
    }
    let (Some(audience), Some(resource)) = (param("audience"), param("resource")) else {
        return invalid("invalid_request", "audience and resource are required");
    };
    let Some(trusted) = shared
        .config
        .assertion_issuer_key
        .as_deref()
        .and_then(PublicKey::from_pem)
    else {
        return oauth_error(StatusCode::NOT_FOUND, "invalid_request", "no IdP");
    };
    let subject = param("subject_token").unwrap_or_default();
    let Verified { claims, .. } = match verify(&subject, &trusted) {
        Ok(v) => v,
        Err(why) => return invalid("invalid_grant", why),
    };
    let client_id = shared
        .config
        .preregistered_client
        .as_ref()
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    let now = unix_now();
    let jti = shared.lock().random();
    let jag = sign_id_jag(&json!({
        "iss": format!("{}/idp", shared.site.issuer),
        "sub": claims["sub"],
        "aud": audience,
        "resource": resource,
        "client_id": client_id,
        "iat": now,
        "exp": now + 300,
        "jti": jti,
    }));
    let mut response = crate::response::json(
        StatusCode::OK,
        &json!({"access_token": jag, "issued_token_type": ID_JAG_TYPE, "token_type": "N_A", "expires_in": 300}),
    );
    no_store(&mut response);
    response
}

/// The built-in IdP's signing key: fixed, so tests are reproducible; it signs nothing but
/// ID-JAGs for this testkit.
fn idp_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[0x1d; 32]).expect("a valid P-256 scalar")
}

fn idp_public_key() -> PublicKey {
    PublicKey::P256(*idp_key().verifying_key())
}

fn sign_id_jag(claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": ID_JAG_TYP}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig: p256::ecdsa::Signature = idp_key().sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn jws(key: &p256::ecdsa::SigningKey, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    #[test]
    fn verification_needs_the_right_key_the_right_alg_and_a_future_exp() {
        let key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let public = PublicKey::from_pem(&pem).unwrap();
        let live = json!({"exp": unix_now() + 60});
        let good = jws(&key, json!({"alg": "ES256"}), live.clone());
        assert!(verify(&good, &public).is_ok());
        assert_eq!(
            verify(&good, &idp_public_key()).err(),
            Some("bad signature")
        );
        let wrong_alg = jws(&key, json!({"alg": "RS256"}), live);
        assert_eq!(verify(&wrong_alg, &public).err(), Some("bad signature"));
        let expired = jws(
            &key,
            json!({"alg": "ES256"}),
            json!({"exp": unix_now() - 1}),
        );
        assert_eq!(verify(&expired, &public).err(), Some("expired"));
        assert_eq!(verify("a.b", &public).err(), Some("not a compact JWS"));
        // The IdP's own ID-JAGs verify with its key.
        let jag = sign_id_jag(&json!({"exp": unix_now() + 60}));
        let verified = verify(&jag, &idp_public_key()).unwrap();
        assert_eq!(verified.header["typ"], ID_JAG_TYP);
    }
}
