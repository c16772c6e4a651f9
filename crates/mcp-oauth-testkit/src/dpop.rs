//! The server side of DPoP (RFC 9449), when [`TestkitConfig::dpop`](crate::TestkitConfig::dpop)
//! is set: the token endpoint verifies proofs and binds the tokens it issues to the proof's key,
//! the resource server verifies a proof on every request that presents a bound token, and
//! either may demand a nonce.
//!
//! It wraps the plain endpoints rather than changing them: a token request with a valid proof
//! is answered by [`crate::token_endpoint`] and its tokens are then bound; a resource request
//! with a valid proof is handed to [`crate::resource_server`] as a bearer request. Everything
//! here is checked independently of the client library: the signature with the `jwk` the proof
//! carries, the RFC 7638 thumbprint computed here.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body::Body;
use http_body_util::Full;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::codec::unix_now;
use crate::record::{RecordedRequest, ServerRole};
use crate::response::{self, oauth_error, HttpResponse};
use crate::state::Shared;
use crate::{resource_server, token_endpoint};

/// How far a proof's `iat` may be from the server's clock (RFC 9449 §11.1 leaves it to the
/// server; the conformance harness uses the same window).
const IAT_WINDOW_SECS: u64 = 300;

/// Why a proof was refused.
enum Refusal {
    Invalid(String),
    /// The proof lacks the server's nonce: challenge with this one.
    NeedsNonce(String),
}

/// A verified proof: the thumbprint of its key.
struct Verified {
    jkt: String,
}

/// The RFC 7638 thumbprint of an EC P-256 JWK.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// `htu` as compared here: no query or fragment, one trailing slash tolerated (RFC 9449 §4.3
/// allows normalisation; the conformance harness does this much).
fn normalise(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Checks one proof (RFC 9449 §4.3) for a `method` request to `url`; `token` is the access
/// token presented with it (resource requests), `nonce` the nonce required.
fn verify(
    shared: &Shared,
    role: ServerRole,
    proof: &str,
    method: &Method,
    url: &str,
    token: Option<&str>,
    nonce: Option<&str>,
) -> Result<Verified, Refusal> {
    let invalid = |why: &str| Refusal::Invalid(why.to_owned());
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let parts: Vec<&str> = proof.split('.').collect();
    let [header_b64, claims_b64, signature_b64] = parts[..] else {
        return Err(invalid("a proof is a JWS in compact form"));
    };
    let header = decode(header_b64).ok_or_else(|| invalid("unreadable proof header"))?;
    let claims = decode(claims_b64).ok_or_else(|| invalid("unreadable proof claims"))?;
    if header["typ"] != "dpop+jwt" {
        return Err(invalid("typ must be dpop+jwt"));
    }
    if header["alg"] != "ES256" {
        return Err(invalid("this server verifies ES256 proofs only"));
    }
    let jwk = &header["jwk"];
    if jwk.get("d").is_some() {
        return Err(invalid("the jwk must be a public key"));
    }
    let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
        return Err(invalid("the jwk must be an EC key"));
    };
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
        return Err(invalid("the jwk must be an EC P-256 key"));
    }
    let coordinate = |c: &str| URL_SAFE_NO_PAD.decode(c).ok().filter(|b| b.len() == 32);
    let (Some(xb), Some(yb)) = (coordinate(x), coordinate(y)) else {
        return Err(invalid("the jwk's coordinates are not 32 bytes"));
    };
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&xb),
        p256::FieldBytes::from_slice(&yb),
        false,
    );
    let key = VerifyingKey::from_encoded_point(&point).map_err(|_| invalid("not a curve point"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
        .ok_or_else(|| invalid("unreadable signature"))?;
    let signing_input = format!("{header_b64}.{claims_b64}");
    key.verify(signing_input.as_bytes(), &signature)
        .map_err(|_| invalid("the signature does not verify with the proof's jwk"))?;

    if claims["htm"] != method.as_str() {
        return Err(invalid("htm is not the request method"));
    }
    let htu = claims["htu"].as_str().unwrap_or_default();
    if htu.contains(['?', '#']) || normalise(htu) != normalise(url) {
        return Err(invalid("htu is not the request URL"));
    }
    let now = unix_now();
    let iat = claims["iat"]
        .as_u64()
        .ok_or_else(|| invalid("iat missing"))?;
    if iat.abs_diff(now) > IAT_WINDOW_SECS {
        return Err(invalid("iat is too far from the server's clock"));
    }
    match token {
        Some(token) => {
            let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
            if claims["ath"] != expected.as_str() {
                return Err(invalid("ath is not the hash of the access token"));
            }
        }
        None if claims.get("ath").is_some() => {
            return Err(invalid("a token request's proof has no ath"));
        }
        None => {}
    }
    let jti = claims["jti"]
        .as_str()
        .ok_or_else(|| invalid("jti missing"))?;
    let config = shared.config.dpop.as_ref().expect("DPoP is configured");
    let mut state = shared.lock();
    if !state.dpop.jtis.insert(jti.to_owned()) {
        return Err(invalid("jti replayed"));
    }
    if config.endless_nonces == Some(role) {
        state.dpop.challenges += 1;
        return Err(Refusal::NeedsNonce(format!(
            "nonce-{}",
            state.dpop.challenges
        )));
    }
    if let Some(nonce) = nonce {
        if claims["nonce"] != nonce {
            return Err(Refusal::NeedsNonce(nonce.to_owned()));
        }
    }
    Ok(Verified {
        jkt: thumbprint(x, y),
    })
}

/// The request's URL as the client addressed it, for `htu`.
fn request_url(shared: &Shared, request: &RecordedRequest) -> String {
    format!("{}{}", shared.site.origin(request.role), request.path)
}

/// The single `DPoP` header of a request; two are an error (RFC 9449 §4.3 step 1).
fn proof_header(request: &RecordedRequest) -> Result<Option<&str>, Box<HttpResponse>> {
    let mut all = request.headers.get_all("dpop").iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "more than one DPoP header",
        )));
    }
    Ok(first.and_then(|v| v.to_str().ok()))
}

/// `POST token` with DPoP: a request with a proof gets DPoP-bound tokens; without one, bearer
/// tokens, unless it presents a bound refresh token.
pub(crate) fn token(shared: &Shared, request: &RecordedRequest) -> HttpResponse {
    let proof = match proof_header(request) {
        Ok(proof) => proof,
        Err(response) => return *response,
    };
    let config = shared.config.dpop.as_ref().expect("DPoP is configured");
    let verified = match proof {
        None => None,
        Some(proof) => {
            let url = request_url(shared, request);
            let nonce = config.as_nonce.as_deref();
            match verify(
                shared,
                request.role,
                proof,
                &Method::POST,
                &url,
                None,
                nonce,
            ) {
                Ok(verified) => Some(verified),
                Err(Refusal::Invalid(why)) => {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", &why)
                }
                Err(Refusal::NeedsNonce(nonce)) => {
                    let mut response = oauth_error(
                        StatusCode::BAD_REQUEST,
                        "use_dpop_nonce",
                        "the proof must carry the server's nonce",
                    );
                    response::set_header(&mut response, "dpop-nonce", &nonce);
                    return response;
                }
            }
        }
    };
    // RFC 9449 §5: a refresh token bound to a key is refreshed only with a proof of that key.
    if request.form_param("grant_type").as_deref() == Some("refresh_token") {
        let presented = request.form_param("refresh_token").unwrap_or_default();
        let bound = shared.lock().dpop.refresh.get(&presented).cloned();
        if let Some(bound) = bound {
            if verified.as_ref().map(|v| &v.jkt) != Some(&bound) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_dpop_proof",
                    "the refresh token is bound to another key",
                );
            }
        }
    }
    let response = token_endpoint::token(shared, request);
    // The quirk: a refresh answered with bound tokens but no `token_type`.
    let typed = !(config.untyped_refresh
        && request.form_param("grant_type").as_deref() == Some("refresh_token"));
    match verified {
        Some(verified) if response.status() == StatusCode::OK => {
            bind(shared, response, &verified, typed)
        }
        _ => response,
    }
}

/// Binds the tokens of a successful token response to the proof's key and says `DPoP` (or,
/// not `typed`, names no `token_type` at all).
fn bind(shared: &Shared, response: HttpResponse, verified: &Verified, typed: bool) -> HttpResponse {
    let (mut parts, body) = response.into_parts();
    let bytes = collect(body);
    let Some(mut fields) = serde_json::from_slice::<Value>(&bytes).ok() else {
        // The form-encoded response quirk: left as it is (bearer), as a server without DPoP.
        return HttpResponse::from_parts(parts, Full::new(bytes));
    };
    let mut state = shared.lock();
    if let Some(token) = fields["access_token"].as_str() {
        state
            .dpop
            .access
            .insert(token.to_owned(), verified.jkt.clone());
    }
    if let Some(token) = fields["refresh_token"].as_str() {
        state
            .dpop
            .refresh
            .insert(token.to_owned(), verified.jkt.clone());
    }
    match fields.as_object_mut() {
        Some(object) if !typed => {
            object.remove("token_type");
        }
        _ => fields["token_type"] = "DPoP".into(),
    }
    parts.headers.remove(http::header::CONTENT_LENGTH);
    HttpResponse::from_parts(parts, Full::new(Bytes::from(fields.to_string())))
}

/// The bytes of a `Full` body, which are all there on the first poll.
fn collect(body: Full<Bytes>) -> Bytes {
    let mut body = std::pin::pin!(body);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match body.as_mut().poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// `POST /mcp` with DPoP: a bound token must come as `Authorization: DPoP` with a valid proof
/// of its key (RFC 9449 §7); challenges use the `DPoP` scheme.
pub(crate) fn mcp(shared: &Arc<Shared>, request: &RecordedRequest) -> HttpResponse {
    let config = shared.config.dpop.as_ref().expect("DPoP is configured");
    let authorization = request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let dpop_token = authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("dpop"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = dpop_token else {
        if let Some(bearer) = request.bearer() {
            if shared.lock().dpop.access.contains_key(&bearer) {
                return challenge(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "a DPoP-bound token sent as Bearer",
                    None,
                    shared,
                );
            }
        }
        return to_dpop_scheme(resource_server::mcp(shared, request));
    };
    let proof = match proof_header(request) {
        Ok(Some(proof)) => proof,
        Ok(None) => {
            return challenge(
                StatusCode::UNAUTHORIZED,
                "invalid_dpop_proof",
                "missing DPoP proof",
                None,
                shared,
            )
        }
        Err(response) => return *response,
    };
    let url = request_url(shared, request);
    let nonce = config.rs_nonce.as_deref();
    let verified = match verify(
        shared,
        request.role,
        proof,
        &request.method,
        &url,
        Some(&token),
        nonce,
    ) {
        Ok(verified) => verified,
        Err(Refusal::Invalid(why)) => {
            return challenge(
                StatusCode::UNAUTHORIZED,
                "invalid_dpop_proof",
                &why,
                None,
                shared,
            )
        }
        Err(Refusal::NeedsNonce(nonce)) => {
            let description = "the proof must carry the server's nonce";
            return challenge(
                StatusCode::UNAUTHORIZED,
                "use_dpop_nonce",
                description,
                Some(&nonce),
                shared,
            );
        }
    };
    let bound = shared.lock().dpop.access.get(&token).cloned();
    if bound.as_deref() != Some(verified.jkt.as_str()) {
        return challenge(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the token is not bound to the proof's key",
            None,
            shared,
        );
    }
    // Proven: the plain resource server judges the token itself (expiry, scope, resource).
    let mut as_bearer = request.clone();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        as_bearer.headers.insert(http::header::AUTHORIZATION, value);
    }
    to_dpop_scheme(resource_server::mcp(shared, &as_bearer))
}

/// A `401` with a `DPoP` challenge (RFC 9449 §7.1), and the nonce to use when one is asked for.
fn challenge(
    status: StatusCode,
    error: &str,
    description: &str,
    nonce: Option<&str>,
    shared: &Shared,
) -> HttpResponse {
    let mut value =
        format!(r#"DPoP algs="ES256", error="{error}", error_description="{description}""#);
    if let Some(url) = shared.site.challenge_prm_url() {
        value.push_str(&format!(r#", resource_metadata="{url}""#));
    }
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut response = response::json(status, &body);
    response::set_header(&mut response, "www-authenticate", &value);
    if let Some(nonce) = nonce {
        response::set_header(&mut response, "dpop-nonce", nonce);
    }
    response
}

/// The resource server's own `Bearer` challenge, as a `DPoP` one with the same parameters.
fn to_dpop_scheme(mut response: HttpResponse) -> HttpResponse {
    let header = http::header::WWW_AUTHENTICATE;
    let Some(value) = response
        .headers()
        .get(&header)
        .and_then(|v| v.to_str().ok())
    else {
        return response;
    };
    if let Some(params) = value.strip_prefix("Bearer ") {
        let dpop = format!(r#"DPoP algs="ES256", {params}"#);
        if let Ok(dpop) = HeaderValue::from_str(&dpop) {
            response.headers_mut().insert(header, dpop);
        }
    }
    response
}
