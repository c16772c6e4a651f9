//! Each layout serves its documents exactly where it says, and 404 elsewhere.

use super::client::{get, mcp};
use crate::{DiscoveryLayout, ServerRole, Testkit, TestkitConfig};
use serde_json::json;

use DiscoveryLayout::*;
use ServerRole::{Authorization as As, Resource as Rs};

const PRM_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const PRM_ROOT: &str = "/.well-known/oauth-protected-resource";
const PRM_CUSTOM: &str = "/custom/metadata/location.json";
const OAUTH: &str = "/.well-known/oauth-authorization-server";
const OAUTH_TENANT: &str = "/.well-known/oauth-authorization-server/tenant1";
const OIDC: &str = "/.well-known/openid-configuration";
const OIDC_INSERTED: &str = "/.well-known/openid-configuration/tenant1";
const OIDC_APPENDED: &str = "/tenant1/.well-known/openid-configuration";

const CANDIDATES: [(ServerRole, &str); 13] = [
    (Rs, PRM_PATH),
    (Rs, PRM_ROOT),
    (Rs, PRM_CUSTOM),
    (Rs, OAUTH),
    (Rs, OIDC),
    (Rs, OAUTH_TENANT),
    (As, PRM_PATH),
    (As, PRM_ROOT),
    (As, OAUTH),
    (As, OAUTH_TENANT),
    (As, OIDC),
    (As, OIDC_INSERTED),
    (As, OIDC_APPENDED),
];

/// (PRM location, AS metadata location) of each layout.
fn expected(layout: DiscoveryLayout) -> (Option<&'static str>, Option<(ServerRole, &'static str)>) {
    match layout {
        ChallengeUrl => (Some(PRM_PATH), Some((As, OAUTH))),
        PathWellKnown => (Some(PRM_PATH), Some((As, OIDC))),
        RootWellKnown => (Some(PRM_ROOT), Some((As, OAUTH_TENANT))),
        CustomPrmUrl => (Some(PRM_CUSTOM), Some((As, OIDC_APPENDED))),
        OidcPathInsertion => (Some(PRM_CUSTOM), Some((As, OIDC_INSERTED))),
        LegacyMetadataAtOrigin => (None, Some((Rs, OAUTH))),
        LegacyEndpointFallback => (None, None),
    }
}

#[tokio::test]
async fn every_layout_serves_its_documents_and_404_elsewhere() {
    for layout in DiscoveryLayout::ALL {
        let kit = Testkit::start(TestkitConfig::default().layout(layout))
            .await
            .unwrap();
        let (prm, metadata) = expected(layout);
        for (role, path) in CANDIDATES {
            let origin = match role {
                Rs => kit.resource_origin(),
                As => kit.auth_server_origin(),
            };
            let reply = get(&format!("{origin}{path}")).await;
            let is_prm = role == Rs && prm == Some(path);
            let is_metadata = metadata == Some((role, path));
            if !is_prm && !is_metadata {
                assert_eq!(reply.status, 404, "{layout:?} {role:?} {path}");
                continue;
            }
            assert_eq!(reply.status, 200, "{layout:?} {role:?} {path}");
            assert_eq!(
                reply.header("content-type").as_deref(),
                Some("application/json")
            );
            let doc = reply.json();
            if is_prm {
                let resource = if layout == RootWellKnown {
                    kit.resource_origin()
                } else {
                    kit.resource_url()
                };
                assert_eq!(doc["resource"], json!(resource), "{layout:?}");
                assert_eq!(doc["authorization_servers"], json!([kit.issuer()]));
            } else {
                assert_eq!(doc["issuer"], json!(kit.issuer()), "{layout:?}");
                let token = doc["token_endpoint"].as_str().unwrap();
                assert!(token.starts_with(&kit.issuer()), "{layout:?} {token}");
                assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
                let oidc = path.contains("openid-configuration");
                assert_eq!(doc.get("jwks_uri").is_some(), oidc, "{layout:?}");
            }
        }
        let challenge = mcp(&kit, None, "initialize", json!({})).await;
        assert_eq!(challenge.status, 401);
        let header = challenge.header("www-authenticate").unwrap();
        assert!(
            header.starts_with("Bearer error=\"invalid_token\""),
            "{header}"
        );
        let in_challenge = matches!(layout, ChallengeUrl | CustomPrmUrl | OidcPathInsertion);
        let prm_url = prm.map(|path| format!("{}{path}", kit.resource_origin()));
        match (in_challenge, prm_url) {
            (true, Some(url)) => assert!(header.contains(&format!("resource_metadata=\"{url}\""))),
            _ => assert!(!header.contains("resource_metadata"), "{layout:?} {header}"),
        }
        let expected_issuer = if layout.is_legacy() {
            kit.resource_origin()
        } else if matches!(layout, ChallengeUrl | PathWellKnown) {
            kit.auth_server_origin()
        } else {
            format!("{}/tenant1", kit.auth_server_origin())
        };
        assert_eq!(kit.issuer(), expected_issuer);
        assert_eq!(kit.requests().len(), CANDIDATES.len() + 1);
    }
}

#[tokio::test]
async fn metadata_switches_shape_the_documents() {
    let config = TestkitConfig::default()
        .registration(false)
        .cimd_supported(true)
        .pkce_methods(None)
        .iss_supported(false)
        .metadata_issuer_override("https://elsewhere.example")
        .prm_resource_override("https://other.example/mcp")
        .prm_scopes_supported(["a", "b"])
        .as_scopes_supported(["c"])
        .token_endpoint_auth_methods(["none"]);
    let kit = Testkit::start(config).await.unwrap();
    let metadata = get(&format!("{}{OAUTH}", kit.auth_server_origin()))
        .await
        .json();
    assert_eq!(metadata["issuer"], "https://elsewhere.example");
    assert!(metadata.get("registration_endpoint").is_none());
    assert!(metadata.get("code_challenge_methods_supported").is_none());
    assert!(metadata
        .get("authorization_response_iss_parameter_supported")
        .is_none());
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert_eq!(metadata["scopes_supported"], json!(["c"]));
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["none"])
    );
    let register = get(&format!("{}/register", kit.issuer())).await;
    assert_eq!(register.status, 404);

    let prm = get(&format!("{}{PRM_PATH}", kit.resource_origin()))
        .await
        .json();
    assert_eq!(prm["resource"], "https://other.example/mcp");
    assert_eq!(prm["scopes_supported"], json!(["a", "b"]));
    kit.set_prm_authorization_server("https://new-as.example");
    let prm = get(&format!("{}{PRM_PATH}", kit.resource_origin()))
        .await
        .json();
    assert_eq!(
        prm["authorization_servers"],
        json!(["https://new-as.example"])
    );
}
