//! The assertion grants end to end over loopback TCP, against the testkit's verifying server
//! side: workload identity from a rotated token file, enterprise-managed authorization through
//! the testkit's IdP, and `private_key_jwt` on the code exchange and the refresh.

mod support;

use std::time::{Duration, SystemTime};

use mcp_oauth_testkit::{
    RecordedRequest, Testkit, TestkitConfig, IDP_TOKEN_PATH, JWT_BEARER_GRANT,
};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::json;
use support::{http_client, jsonrpc, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_mcp_oauth::grants::{AssertionRequest, EnterpriseIdp};
use tower_mcp_oauth::{
    BoxError, ClientConfig, ClientKey, ErrorKind, FileAssertion, HeadlessAuthorizer, OAuthLayer,
    OAuthService, PreRegisteredClient,
};

const REDIRECT: &str = "http://localhost:3000/callback";
const RSA_PEM: &str = include_str!("../../mcp-oauth-flow/testdata/rsa-2048-test-only.pem");

/// The platform's (or the enterprise IdP's) signing key, and its SPKI PEM for the testkit.
fn issuer_key() -> (ClientKey, String) {
    let secret = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let pem = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&secret, LineEnding::LF).unwrap();
    let public = secret
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (ClientKey::from_pkcs8_pem(&pem).unwrap(), public)
}

/// A JWT the platform issued for `subject`, addressed to `audience`, `age` ago (so it expires
/// five minutes after that). Minted with the library's signer, verified by the testkit's own.
fn platform_token(subject: &str, audience: &str, age: Duration, jti: &str) -> String {
    issuer_key()
        .0
        .assertion(subject, audience, SystemTime::now() - age, jti)
        .unwrap()
}

fn service(layer: OAuthLayer) -> OAuthService<HttpClient> {
    ServiceBuilder::new().layer(layer).service(http_client())
}

async fn call(
    svc: &OAuthService<HttpClient>,
    kit: &Testkit,
) -> Result<u16, tower_mcp_oauth::Error> {
    let request = jsonrpc(&kit.resource_url(), 1, "tools/list", json!({}));
    svc.clone()
        .oneshot(request)
        .await
        .map(|r| r.status().as_u16())
}

fn token_requests(kit: &Testkit) -> Vec<RecordedRequest> {
    kit.requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .collect()
}

#[tokio::test]
async fn workload_identity_reads_the_rotated_token_file_on_each_grant() {
    let kit = Testkit::start(TestkitConfig::default().assertion_issuer_key(issuer_key().1))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let first = platform_token("workload", &kit.issuer(), Duration::ZERO, "w-1");
    std::fs::write(&path, &first).unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .workload_identity(FileAssertion::new(&path));
    let svc = service(layer);
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    let grants = token_requests(&kit);
    assert_eq!(grants.len(), 1);
    assert_eq!(
        grants[0].form_param("grant_type").as_deref(),
        Some(JWT_BEARER_GRANT)
    );
    assert_eq!(grants[0].form_param("assertion"), Some(first));
    assert!(!kit
        .requests()
        .iter()
        .any(|r| r.path == "/authorize" || r.path == "/register"));

    // The platform rotates the file; the next grant (the server revoked the token, no refresh
    // token was issued) presents the new one.
    let second = platform_token("workload", &kit.issuer(), Duration::ZERO, "w-2");
    std::fs::write(&path, &second).unwrap();
    kit.revoke_all_tokens();
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    let grants = token_requests(&kit);
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[1].form_param("assertion"), Some(second));
}

#[tokio::test]
async fn an_expired_or_misaddressed_workload_token_is_a_typed_error_after_at_most_one_request() {
    let kit = Testkit::start(TestkitConfig::default().assertion_issuer_key(issuer_key().1))
        .await
        .unwrap();
    // Issued ten minutes ago: expired five minutes ago. Never sent.
    let expired = platform_token("workload", &kit.issuer(), Duration::from_secs(600), "old");
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .workload_identity(move |_: &AssertionRequest| -> Result<String, BoxError> {
            Ok(expired.clone())
        });
    let err = call(&service(layer), &kit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AssertionExpired, "{err:#}");
    assert!(token_requests(&kit).is_empty());

    // Addressed to another server: the testkit refuses it, once, and nothing else is tried.
    let elsewhere = platform_token("workload", "https://other.example.com", Duration::ZERO, "x");
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .workload_identity(move |_: &AssertionRequest| -> Result<String, BoxError> {
            Ok(elsewhere.clone())
        });
    let err = call(&service(layer), &kit).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AssertionRejected, "{err:#}");
    assert_eq!(err.oauth_error().unwrap().error, "invalid_grant");
    assert_eq!(token_requests(&kit).len(), 1);
    assert!(!kit.requests().iter().any(|r| r.path == "/authorize"));
}

#[tokio::test]
async fn enterprise_managed_authorization_through_the_idp() {
    let kit = Testkit::start(
        TestkitConfig::default()
            .assertion_issuer_key(issuer_key().1)
            .preregistered_client("xaa-client", Some("xaa-secret")),
    )
    .await
    .unwrap();
    let idp_endpoint = format!("{}{IDP_TOKEN_PATH}", kit.auth_server_origin());
    let id_token = platform_token("user@example.com", "idp-client", Duration::ZERO, "id-1");
    let config = ClientConfig::new(REDIRECT).pre_registered(
        PreRegisteredClient::new("xaa-client")
            .with_secret("xaa-secret")
            .for_issuer(kit.issuer()),
    );
    let layer = OAuthLayer::new(config, HeadlessAuthorizer::new()).enterprise_managed(
        EnterpriseIdp::new(idp_endpoint).client_id("idp-client"),
        move |_: &AssertionRequest| -> Result<String, BoxError> { Ok(id_token.clone()) },
    );
    assert_eq!(call(&service(layer), &kit).await.unwrap(), 200);
    let paths: Vec<String> = kit
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.clone())
        .collect();
    // The first /mcp is the 401 that started the flow.
    assert_eq!(paths, ["/mcp", IDP_TOKEN_PATH, "/token", "/mcp"]);
    let exchange = kit
        .requests()
        .into_iter()
        .find(|r| r.path == IDP_TOKEN_PATH)
        .unwrap();
    assert_eq!(exchange.form_param("audience"), Some(kit.issuer()));
    assert_eq!(exchange.form_param("resource"), Some(kit.resource_url()));
    let grant = &token_requests(&kit)[0];
    // The testkit checked the ID-JAG's signature, audience, client and resource.
    assert_eq!(
        grant.form_param("grant_type").as_deref(),
        Some(JWT_BEARER_GRANT)
    );
    assert_eq!(
        grant.basic_credentials(),
        Some(("xaa-client".to_owned(), "xaa-secret".to_owned()))
    );
}

/// A testkit (set up by `config`) whose pre-registered client `keyed` authenticates with
/// `private_key_jwt` and the test RSA key, and the client configuration that is that client.
async fn keyed_client(config: TestkitConfig) -> (Testkit, ClientConfig) {
    let rsa_public = {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PEM)
            .unwrap()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    let kit = Testkit::start(
        config
            .preregistered_client("keyed", None)
            .client_public_key(rsa_public)
            .token_endpoint_auth_methods(["private_key_jwt"]),
    )
    .await
    .unwrap();
    let client = ClientConfig::new(REDIRECT).pre_registered(
        PreRegisteredClient::new("keyed")
            .with_private_key(ClientKey::from_pkcs8_pem(RSA_PEM).unwrap())
            .for_issuer(kit.issuer()),
    );
    (kit, client)
}

#[tokio::test]
async fn a_keyed_client_signs_its_code_exchange_and_its_refresh_with_rs256() {
    let (kit, config) = keyed_client(TestkitConfig::default()).await;
    let svc = service(OAuthLayer::new(config, HeadlessAuthorizer::new()));
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    // A revoked token is refreshed, not re-authorized, and the refresh is signed too.
    kit.revoke_all_tokens();
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    let grants = token_requests(&kit);
    let kinds: Vec<_> = grants
        .iter()
        .map(|r| r.form_param("grant_type").unwrap())
        .collect();
    assert_eq!(kinds, ["authorization_code", "refresh_token"]);
    for grant in &grants {
        assert!(grant.form_param("client_assertion").is_some());
        assert_eq!(grant.form_param("client_secret"), None);
        assert!(grant.basic_credentials().is_none());
    }
    // Each assertion is fresh: the testkit refuses a replayed jti.
    assert_ne!(
        grants[0].form_param("client_assertion"),
        grants[1].form_param("client_assertion")
    );
}

#[tokio::test]
async fn an_assertion_source_that_never_answers_ends_at_the_flow_deadline() {
    use tower_mcp_oauth::{AssertionSource, BoxFuture};
    /// A cloud metadata service that accepts the request and never answers.
    struct Silent;
    impl AssertionSource for Silent {
        fn assertion(
            &self,
            _: &AssertionRequest,
        ) -> BoxFuture<'static, Result<String, tower_mcp_oauth::Error>> {
            Box::pin(std::future::pending())
        }
    }
    let kit = Testkit::start(TestkitConfig::default().assertion_issuer_key(issuer_key().1))
        .await
        .unwrap();
    let layer = OAuthLayer::new(ClientConfig::new(REDIRECT), HeadlessAuthorizer::new())
        .workload_identity(Silent)
        .flow_deadline(Duration::from_millis(300));
    let outcome = tokio::time::timeout(Duration::from_secs(10), call(&service(layer), &kit)).await;
    let err = outcome
        .expect("the flow deadline ended the wait")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:#}");
    assert!(err.is_transient());
    assert!(token_requests(&kit).is_empty());
}

#[tokio::test]
async fn a_keyed_clients_logout_signs_each_revocation_afresh() {
    // The testkit refuses a client assertion whose `jti` it has seen (RFC 7523 §3): the
    // refresh token's revocation and the access token's each need their own.
    let (kit, config) = keyed_client(TestkitConfig::default().revocation(true)).await;
    let layer = OAuthLayer::new(config, HeadlessAuthorizer::new());
    let svc = service(layer.clone());
    assert_eq!(call(&svc, &kit).await.unwrap(), 200);
    let client = tower_mcp_oauth::HttpClient::from_service(
        http_client(),
        tower_mcp_oauth::DEFAULT_MAX_RESPONSE_BYTES,
    );
    let logout = layer.logout(&kit.resource_url(), &client).await.unwrap();
    assert_eq!(logout.revocations.len(), 2);
    assert!(logout.all_revoked(), "{:?}", logout.revocations);
    let assertions: Vec<_> = kit
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/revoke"))
        .map(|r| r.form_param("client_assertion").unwrap())
        .collect();
    assert_eq!(assertions.len(), 2);
    assert_ne!(assertions[0], assertions[1]);
}
