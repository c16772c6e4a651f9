//! The servers' DPoP checks (RFC 9449 §4.3, §7): proofs signed here with the core's key type,
//! sent over real sockets, and every refusal the servers must make.

use std::time::SystemTime;

use http::Method;
use mcp_oauth_flow::dpop::{DpopKey, Proof};
use serde_json::json;

use super::client::*;
use crate::{DpopConfig, Testkit, TestkitConfig};

fn proof(key: &DpopKey, method: &Method, url: &str, jti: &str, token: Option<&str>) -> String {
    key.sign(&Proof::new(method, url, SystemTime::now(), jti).access_token(token))
}

/// A token request with `dpop` proofs (each its own header line).
async fn token_request(kit: &Testkit, fields: &[(&str, &str)], proofs: &[&str]) -> Reply {
    let (_, token, _) = endpoints(kit);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    headers.extend(proofs.iter().map(|p| ("dpop", *p)));
    send(Method::POST, &token, &headers, body).await
}

async fn mcp_with(kit: &Testkit, authorization: &str, proof: Option<&str>) -> Reply {
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("authorization", authorization),
    ];
    headers.extend(proof.map(|p| ("dpop", p)));
    send(
        Method::POST,
        &kit.resource_url(),
        &headers,
        message.to_string(),
    )
    .await
}

#[tokio::test]
async fn proofs_are_verified_and_tokens_bound_to_their_key() {
    let kit = Testkit::start(TestkitConfig::default().dpop(DpopConfig::default()))
        .await
        .unwrap();
    let key = DpopKey::from_entropy([1; 32]).unwrap();
    let other = DpopKey::from_entropy([2; 32]).unwrap();
    let client = register(&kit, "none").await;
    let code = param(&authorize(&kit, &client.id, None).await, "code").unwrap();
    let (_, token_url, _) = endpoints(&kit);
    let resource = kit.resource_url();
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client.id.as_str()),
        ("resource", resource.as_str()),
    ];

    // Two proofs, and a proof for another URL, are refused before the code is looked at.
    let p1 = proof(&key, &Method::POST, &token_url, "t1", None);
    let p2 = proof(&key, &Method::POST, &token_url, "t2", None);
    assert_eq!(token_request(&kit, &fields, &[&p1, &p2]).await.status, 400);
    let elsewhere = proof(&key, &Method::POST, &resource, "t3", None);
    let reply = token_request(&kit, &fields, &[&elsewhere]).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (400, json!("invalid_dpop_proof"))
    );

    let good = proof(&key, &Method::POST, &token_url, "t4", None);
    let reply = token_request(&kit, &fields, &[&good]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let dpop_auth = format!("DPoP {access}");

    // The resource: the right proof passes; every way of getting it wrong does not.
    let ok = proof(&key, &Method::POST, &resource, "r1", Some(&access));
    assert_eq!(mcp_with(&kit, &dpop_auth, Some(&ok)).await.status, 200);
    let refusals = [
        ("replayed jti", dpop_auth.clone(), Some(ok.clone())),
        ("no proof", dpop_auth.clone(), None),
        (
            "as Bearer",
            format!("Bearer {access}"),
            Some(proof(&key, &Method::POST, &resource, "r2", Some(&access))),
        ),
        (
            "ath of another token",
            dpop_auth.clone(),
            Some(proof(&key, &Method::POST, &resource, "r3", Some("x"))),
        ),
        (
            "another method",
            dpop_auth.clone(),
            Some(proof(&key, &Method::GET, &resource, "r4", Some(&access))),
        ),
        (
            "another key",
            dpop_auth.clone(),
            Some(proof(&other, &Method::POST, &resource, "r5", Some(&access))),
        ),
    ];
    for (why, authorization, proof) in refusals {
        let reply = mcp_with(&kit, &authorization, proof.as_deref()).await;
        assert_eq!(reply.status, 401, "{why}");
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("DPoP "), "{why}: {challenge}");
    }

    // A bound refresh token needs a proof of the same key.
    let refresh_fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", client.id.as_str()),
    ];
    let wrong = proof(&other, &Method::POST, &token_url, "t5", None);
    assert_eq!(
        token_request(&kit, &refresh_fields, &[&wrong]).await.status,
        400
    );
    assert_eq!(token_request(&kit, &refresh_fields, &[]).await.status, 400);
    let right = proof(&key, &Method::POST, &token_url, "t6", None);
    let reply = token_request(&kit, &refresh_fields, &[&right]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "DPoP");
}

#[tokio::test]
async fn nonces_are_demanded_with_the_header_and_then_accepted() {
    let config = DpopConfig::default().as_nonce("n-as").rs_nonce("n-rs");
    let kit = Testkit::start(TestkitConfig::default().dpop(config))
        .await
        .unwrap();
    let key = DpopKey::from_entropy([3; 32]).unwrap();
    let (_, token_url, _) = endpoints(&kit);
    let fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "unknown"),
    ];
    let reply = token_request(
        &kit,
        &fields,
        &[&proof(&key, &Method::POST, &token_url, "a", None)],
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (400, json!("use_dpop_nonce"))
    );
    assert_eq!(reply.header("dpop-nonce").as_deref(), Some("n-as"));
    // With the nonce the proof passes, and the request itself is judged (it names no client).
    let with_nonce = key
        .sign(&Proof::new(&Method::POST, &token_url, SystemTime::now(), "b").nonce(Some("n-as")));
    let reply = token_request(&kit, &fields, &[&with_nonce]).await;
    assert_eq!(
        (reply.status, reply.json()["error"].clone()),
        (401, json!("invalid_client"))
    );

    let resource = kit.resource_url();
    let reply = mcp_with(
        &kit,
        "DPoP t",
        Some(&proof(&key, &Method::POST, &resource, "c", Some("t"))),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="use_dpop_nonce""#));
    assert_eq!(reply.header("dpop-nonce").as_deref(), Some("n-rs"));
    // A metadata document that advertises it.
    let meta = get(&format!(
        "{}/.well-known/oauth-authorization-server",
        kit.auth_server_origin()
    ))
    .await;
    assert_eq!(
        meta.json()["dpop_signing_alg_values_supported"],
        json!(["ES256"])
    );
}
