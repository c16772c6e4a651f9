//! The assertion grants' server side through real sockets: client assertions verified with the
//! public key (audience, replay), workload tokens, and the IdP's ID-JAGs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{json, Value};

use super::client::{endpoints, post_form};
use crate::codec::unix_now;
use crate::{Testkit, TestkitConfig, IDP_TOKEN_PATH, JWT_BEARER_GRANT};

const CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn key(byte: u8) -> (p256::ecdsa::SigningKey, String) {
    let key = p256::ecdsa::SigningKey::from_slice(&[byte; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (key, pem)
}

fn jws(key: &p256::ecdsa::SigningKey, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES256"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[tokio::test]
async fn client_assertions_are_verified_addressed_and_never_replayed() {
    let (platform, platform_pem) = key(1);
    let (client, client_pem) = key(2);
    let kit = Testkit::start(
        TestkitConfig::default()
            .assertion_issuer_key(platform_pem)
            .preregistered_client("keyed", None)
            .client_public_key(client_pem),
    )
    .await
    .unwrap();
    let (_, token_url, _) = endpoints(&kit);
    let workload = jws(
        &platform,
        json!({"sub": "w", "aud": kit.issuer(), "exp": unix_now() + 60}),
    );
    let assertion = |aud: &str, jti: &str, signer: &p256::ecdsa::SigningKey| {
        jws(
            signer,
            json!({"iss": "keyed", "sub": "keyed", "aud": aud, "exp": unix_now() + 60, "jti": jti}),
        )
    };
    let grant = |client_assertion: String| {
        let workload = workload.clone();
        let token_url = token_url.clone();
        async move {
            post_form(
                &token_url,
                &[
                    ("grant_type", JWT_BEARER_GRANT),
                    ("assertion", &workload),
                    ("client_assertion_type", CLIENT_ASSERTION),
                    ("client_assertion", &client_assertion),
                ],
                None,
            )
            .await
        }
    };
    let ok = grant(assertion(&kit.issuer(), "j-1", &client)).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    // The token endpoint is an accepted audience too (RFC 7523 §3).
    assert_eq!(
        grant(assertion(&token_url, "j-2", &client)).await.status,
        200
    );
    for (bad, why) in [
        (assertion(&kit.issuer(), "j-1", &client), "jti replayed"),
        (assertion("https://elsewhere", "j-3", &client), "aud"),
        (assertion(&kit.issuer(), "j-4", &platform), "bad signature"),
    ] {
        let reply = grant(bad).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.json()["error"], "invalid_client");
        assert!(reply.json()["error_description"]
            .as_str()
            .unwrap()
            .contains(why));
    }
    // The metadata offers the grant and the key's algorithm.
    let meta = super::client::get(&format!(
        "{}/.well-known/oauth-authorization-server",
        kit.issuer()
    ))
    .await
    .json();
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(JWT_BEARER_GRANT)));
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256"])
    );
}

#[tokio::test]
async fn the_idp_issues_id_jags_the_authorization_server_accepts_from_their_client_only() {
    let (user_idp, user_idp_pem) = key(3);
    let kit = Testkit::start(
        TestkitConfig::default()
            .assertion_issuer_key(user_idp_pem)
            .preregistered_client("xaa", Some("s")),
    )
    .await
    .unwrap();
    let id_token = jws(&user_idp, json!({"sub": "user", "exp": unix_now() + 60}));
    let exchange = post_form(
        &format!("{}{IDP_TOKEN_PATH}", kit.auth_server_origin()),
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &id_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:id-jag",
            ),
            ("audience", &kit.issuer()),
            ("resource", &kit.resource_url()),
        ],
        None,
    )
    .await;
    assert_eq!(exchange.status, 200, "{:?}", exchange.body);
    let jag = exchange.json()["access_token"].as_str().unwrap().to_owned();
    let (_, token_url, _) = endpoints(&kit);
    let present = |basic| {
        let (jag, token_url) = (jag.clone(), token_url.clone());
        async move {
            post_form(
                &token_url,
                &[("grant_type", JWT_BEARER_GRANT), ("assertion", &jag)],
                basic,
            )
            .await
        }
    };
    // Without the client it was issued to: refused.
    let anonymous = present(None).await;
    assert_eq!(anonymous.status, 400);
    assert_eq!(anonymous.json()["error"], "invalid_grant");
    let ok = present(Some(("xaa", "s"))).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert!(ok.json()["access_token"].is_string());
    // An ID token the trusted issuer did not sign is not exchanged.
    let forged = jws(&key(4).0, json!({"sub": "user", "exp": unix_now() + 60}));
    let refused = post_form(
        &format!("{}{IDP_TOKEN_PATH}", kit.auth_server_origin()),
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &forged),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:id-jag",
            ),
            ("audience", &kit.issuer()),
            ("resource", &kit.resource_url()),
        ],
        None,
    )
    .await;
    assert_eq!(refused.json()["error"], "invalid_grant");
}
