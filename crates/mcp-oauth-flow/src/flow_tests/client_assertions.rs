//! `private_key_jwt` (RFC 7523 §2.2) on every token request the flow makes: the
//! authorization-code exchange, client credentials, and the jwt-bearer grant (the refresh is
//! in `refresh_tests.rs`). Each assertion is decoded and verified with the public key.

use super::*;
use crate::grants::{AssertionGrant, JWT_BEARER_GRANT_TYPE};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::Verifier as _;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

fn ed25519() -> (ClientKey, ed25519_dalek::VerifyingKey) {
    let secret = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    (
        ClientKey::from_pkcs8_pem(&pem).unwrap(),
        secret.verifying_key(),
    )
}

fn p256() -> (ClientKey, p256::ecdsa::VerifyingKey) {
    let secret = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap();
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    (
        ClientKey::from_pkcs8_pem(&pem).unwrap(),
        *secret.verifying_key(),
    )
}

/// The decoded header and claims of the assertion in request `index`, after checking the
/// RFC 7523 §2.2 parameters and verifying its signature with `verify`.
fn assertion(run: &Run, index: usize, verify: impl Fn(&[u8], &[u8]) -> bool) -> (Value, Value) {
    assert_eq!(
        run.form(index, "client_assertion_type").as_deref(),
        Some(JWT_BEARER_ASSERTION_TYPE)
    );
    assert_eq!(run.form(index, "client_secret"), None);
    let jwt = run
        .form(index, "client_assertion")
        .expect("a client assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    let json =
        |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
    let input = format!("{}.{}", parts[0], parts[1]);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    assert!(
        verify(input.as_bytes(), &signature),
        "the signature verifies"
    );
    (json(parts[0]), json(parts[1]))
}

fn verify_ed25519(key: ed25519_dalek::VerifyingKey) -> impl Fn(&[u8], &[u8]) -> bool {
    move |input, sig| {
        let sig = ed25519_dalek::Signature::from_slice(sig).unwrap();
        key.verify(input, &sig).is_ok()
    }
}

fn verify_p256(key: p256::ecdsa::VerifyingKey) -> impl Fn(&[u8], &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier;
    move |input, sig| {
        let sig = p256::ecdsa::Signature::from_slice(sig).unwrap();
        key.verify(input, &sig).is_ok()
    }
}

fn with_algs(net: Net, algs: Value) -> Net {
    let mut meta = as_meta(AS);
    meta["token_endpoint_auth_signing_alg_values_supported"] = algs;
    meta["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
    net.json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    )
}

#[test]
fn the_code_exchange_of_a_keyed_client_is_signed_when_the_code_comes_back() {
    let (key, public) = ed25519();
    let cfg = config().pre_registered(
        PreRegisteredClient::new("app")
            .with_private_key(key)
            .for_issuer(AS),
    );
    let net = with_algs(std_net(), json!(["RS256", "Ed25519"]));
    let run = run_with(cfg, start(None), &net, Consent::Approve(None), None);
    assert!(matches!(run.end, Action::Complete(_)));
    let token = run
        .sent
        .iter()
        .position(|s| s == &format!("POST {AS}/token"))
        .unwrap();
    assert_eq!(
        run.form(token, "grant_type").as_deref(),
        Some("authorization_code")
    );
    let (header, claims) = assertion(&run, token, verify_ed25519(public));
    // The algorithm the server listed, in the spelling it listed.
    assert_eq!(header["alg"], "Ed25519");
    assert_eq!(claims["iss"], "app");
    assert_eq!(claims["sub"], "app");
    assert_eq!(claims["aud"], AS);
    assert_eq!(claims["iat"], 1_700_000_000u64);
    assert_eq!(claims["exp"], 1_700_000_300u64);
    // Unique per flow and per assertion, and not the state itself.
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 43);
    assert_ne!(Some(jti), run.authorize_param("state").as_deref());
    assert!(
        run.loaded.is_empty(),
        "a pre-registered client: no store lookup"
    );
}

#[test]
fn a_server_that_accepts_none_of_the_keys_algorithms_is_refused_before_consent() {
    let cfg = config().pre_registered(
        PreRegisteredClient::new("app")
            .with_private_key(p256().0)
            .for_issuer(AS),
    );
    let net = with_algs(std_net(), json!(["RS256", "PS256"]));
    let run = run_with(cfg, start(None), &net, Consent::Approve(None), None);
    assert_eq!(run.failed(), ErrorKind::SigningAlgorithmNotSupported);
    assert!(run.authorize_url.is_none() && !run.sent_token_request());
}

#[test]
fn client_credentials_can_address_the_token_endpoint() {
    let (key, public) = p256();
    let key = key.audience(AssertionAudience::TokenEndpoint);
    let cfg = config().pre_registered(
        PreRegisteredClient::new("svc")
            .with_private_key(key)
            .for_issuer(AS),
    );
    let mut meta = as_meta(AS);
    meta["grant_types_supported"] = json!(["client_credentials"]);
    let net = std_net().json(
        &format!("{AS}/.well-known/oauth-authorization-server"),
        200,
        meta,
    );
    let run = run_with(cfg, start(None), &net, Consent::Approve(None), None);
    assert_eq!(
        run.form(2, "grant_type").as_deref(),
        Some("client_credentials")
    );
    let (header, claims) = assertion(&run, 2, verify_p256(public));
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["aud"], format!("{AS}/token"));
}

#[test]
fn a_jwt_bearer_grant_carries_the_clients_own_assertion_beside_the_workload_token() {
    let (key, public) = p256();
    let cfg = config()
        .assertion_grant(AssertionGrant::WorkloadIdentity)
        .pre_registered(
            PreRegisteredClient::new("wl")
                .with_private_key(key)
                .for_issuer(AS),
        );
    let mut meta = as_meta(AS);
    meta["grant_types_supported"] = json!([JWT_BEARER_GRANT_TYPE]);
    let net = std_net()
        .json(
            &format!("{AS}/.well-known/oauth-authorization-server"),
            200,
            meta,
        )
        .assertion("opaque-workload-token");
    let run = run_with(cfg, start(None), &net, Consent::Raw(String::new()), None);
    assert!(matches!(run.end, Action::Complete(_)));
    assert_eq!(
        run.form(3, "assertion").as_deref(),
        Some("opaque-workload-token")
    );
    let (_, claims) = assertion(&run, 3, verify_p256(public));
    assert_eq!(claims["iss"], "wl");
    assert_eq!(claims["aud"], AS);
}

/// Consent may take longer than an assertion lives: the code exchange is signed with the time
/// the code came back, not the time the flow asked for consent.
#[test]
fn the_code_exchange_assertion_is_dated_when_the_code_comes_back() {
    let (key, public) = p256();
    let cfg = config().pre_registered(
        PreRegisteredClient::new("app")
            .with_private_key(key)
            .for_issuer(AS),
    );
    let net = std_net();
    let mut flow = Flow::new(
        Arc::new(cfg),
        start(None),
        FlowSecrets::from_entropy([9; 32], [8; 32]),
        now(),
    );
    let later = now() + Duration::from_secs(600);
    let token_request = loop {
        match flow.poll_action().expect("an action") {
            Action::Send(sub) if sub.request.uri().path() == "/token" => break sub.request,
            Action::Send(sub) => flow.handle_response(net.answer(&sub.request), now()),
            Action::Authorize(req) => {
                let query = format!("code=c&state={}", req.state().secret());
                flow.handle_authorization_response_at(
                    AuthorizationResponse::from_query(&query),
                    later,
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(token_request.body())
        .into_owned()
        .collect();
    let jwt = &form["client_assertion"];
    let parts: Vec<&str> = jwt.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iat"], 1_700_000_600u64);
    assert_eq!(claims["exp"], 1_700_000_900u64);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    assert!(verify_p256(public)(input.as_bytes(), &signature));
}
