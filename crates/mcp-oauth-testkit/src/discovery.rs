//! The URLs of a layout and the well-known documents it serves.

use serde_json::{json, Map, Value};

use crate::config::{DiscoveryLayout, TestkitConfig};
use crate::record::ServerRole;

/// Path of the MCP endpoint on the resource server.
pub(crate) const MCP_PATH: &str = "/mcp";

/// Where everything lives for one layout on two concrete origins.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    pub(crate) rs_origin: String,
    pub(crate) as_origin: String,
    /// The real issuer (before any metadata override).
    pub(crate) issuer: String,
    /// The real resource identifier the PRM advertises (before any override).
    pub(crate) resource: String,
    /// Resource values the RS accepts in a token's audience (trailing `/` ignored).
    pub(crate) accepted_resources: Vec<String>,
    /// Path of the PRM on the resource server, if the layout has one.
    pub(crate) prm_path: Option<&'static str>,
    /// Whether the 401 carries `resource_metadata`.
    pub(crate) prm_in_challenge: bool,
    /// Server and path of the AS metadata, and whether it is an OpenID Connect document.
    pub(crate) metadata: Option<(ServerRole, String, bool)>,
    /// The server that hosts authorize, token, register (and jwks).
    pub(crate) endpoint_role: ServerRole,
    pub(crate) authorize_path: String,
    pub(crate) token_path: String,
    pub(crate) register_path: String,
    pub(crate) jwks_path: String,
    pub(crate) revoke_path: String,
}

impl Site {
    pub(crate) fn new(layout: DiscoveryLayout, rs_origin: &str, as_origin: &str) -> Site {
        use DiscoveryLayout::*;
        const PRM_AT_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
        const CUSTOM_PRM: &str = "/custom/metadata/location.json";
        let (prm_path, prm_in_challenge) = match layout {
            ChallengeUrl => (Some(PRM_AT_PATH), true),
            PathWellKnown => (Some(PRM_AT_PATH), false),
            RootWellKnown => (Some("/.well-known/oauth-protected-resource"), false),
            CustomPrmUrl | OidcPathInsertion => (Some(CUSTOM_PRM), true),
            LegacyMetadataAtOrigin | LegacyEndpointFallback => (None, false),
        };
        let tenant = matches!(layout, RootWellKnown | CustomPrmUrl | OidcPathInsertion);
        let (endpoint_role, endpoint_prefix) = match layout {
            LegacyMetadataAtOrigin => (ServerRole::Resource, "/oauth"),
            LegacyEndpointFallback => (ServerRole::Resource, ""),
            _ if tenant => (ServerRole::Authorization, "/tenant1"),
            _ => (ServerRole::Authorization, ""),
        };
        let issuer = match endpoint_role {
            ServerRole::Resource => rs_origin.to_owned(),
            ServerRole::Authorization => format!("{as_origin}{endpoint_prefix}"),
        };
        let metadata = match layout {
            ChallengeUrl => Some((
                ServerRole::Authorization,
                "/.well-known/oauth-authorization-server",
                false,
            )),
            PathWellKnown => Some((
                ServerRole::Authorization,
                "/.well-known/openid-configuration",
                true,
            )),
            RootWellKnown => Some((
                ServerRole::Authorization,
                "/.well-known/oauth-authorization-server/tenant1",
                false,
            )),
            CustomPrmUrl => Some((
                ServerRole::Authorization,
                "/tenant1/.well-known/openid-configuration",
                true,
            )),
            OidcPathInsertion => Some((
                ServerRole::Authorization,
                "/.well-known/openid-configuration/tenant1",
                true,
            )),
            LegacyMetadataAtOrigin => Some((
                ServerRole::Resource,
                "/.well-known/oauth-authorization-server",
                false,
            )),
            LegacyEndpointFallback => None,
        };
        let resource_url = format!("{rs_origin}{MCP_PATH}");
        let resource = if layout == RootWellKnown {
            rs_origin.to_owned()
        } else {
            resource_url.clone()
        };
        let accepted_resources = if layout == RootWellKnown || layout.is_legacy() {
            vec![resource_url, rs_origin.to_owned()]
        } else {
            vec![resource_url]
        };
        Site {
            rs_origin: rs_origin.to_owned(),
            as_origin: as_origin.to_owned(),
            issuer,
            resource,
            accepted_resources,
            prm_path,
            prm_in_challenge,
            metadata: metadata.map(|(role, path, oidc)| (role, path.to_owned(), oidc)),
            endpoint_role,
            authorize_path: format!("{endpoint_prefix}/authorize"),
            token_path: format!("{endpoint_prefix}/token"),
            register_path: format!("{endpoint_prefix}/register"),
            jwks_path: format!("{endpoint_prefix}/jwks"),
            revoke_path: format!("{endpoint_prefix}/revoke"),
        }
    }

    pub(crate) fn origin(&self, role: ServerRole) -> &str {
        match role {
            ServerRole::Resource => &self.rs_origin,
            ServerRole::Authorization => &self.as_origin,
        }
    }

    pub(crate) fn endpoint_url(&self, path: &str) -> String {
        format!("{}{}", self.origin(self.endpoint_role), path)
    }

    /// The `resource_metadata` URL for challenges, in layouts that put one there.
    pub(crate) fn challenge_prm_url(&self) -> Option<String> {
        let path = self.prm_path.filter(|_| self.prm_in_challenge)?;
        Some(format!("{}{}", self.rs_origin, path))
    }

    /// Whether a token bound to `resource` may be used at this resource server.
    pub(crate) fn accepts_resource(&self, resource: &str) -> bool {
        let resource = resource.trim_end_matches('/');
        self.accepted_resources
            .iter()
            .any(|accepted| accepted == resource)
    }

    /// The RFC 9728 protected resource metadata document.
    pub(crate) fn prm_document(
        &self,
        config: &TestkitConfig,
        authorization_servers: &[String],
    ) -> Value {
        let mut doc = Map::new();
        let resource = config
            .prm_resource_override
            .clone()
            .unwrap_or_else(|| self.resource.clone());
        doc.insert("resource".into(), json!(resource));
        doc.insert("authorization_servers".into(), json!(authorization_servers));
        doc.insert("bearer_methods_supported".into(), json!(["header"]));
        doc.insert("resource_name".into(), json!("mcp-oauth-testkit"));
        if let Some(scopes) = &config.prm_scopes_supported {
            doc.insert("scopes_supported".into(), json!(scopes));
        }
        Value::Object(doc)
    }

    /// The RFC 8414 (or OpenID Connect discovery) authorization server metadata document, as
    /// far as the base configuration goes (the router adds the extension grants' members).
    pub(crate) fn as_metadata_document(&self, config: &TestkitConfig, oidc: bool) -> Value {
        let mut doc = Map::new();
        let issuer = config
            .metadata_issuer_override
            .clone()
            .unwrap_or_else(|| self.issuer.clone());
        doc.insert("issuer".into(), json!(issuer));
        doc.insert(
            "authorization_endpoint".into(),
            json!(self.endpoint_url(&self.authorize_path)),
        );
        doc.insert(
            "token_endpoint".into(),
            json!(self.endpoint_url(&self.token_path)),
        );
        if config.registration {
            doc.insert(
                "registration_endpoint".into(),
                json!(self.endpoint_url(&self.register_path)),
            );
        }
        if config.revocation {
            doc.insert(
                "revocation_endpoint".into(),
                json!(self.endpoint_url(&self.revoke_path)),
            );
        }
        doc.insert("response_types_supported".into(), json!(["code"]));
        doc.insert("response_modes_supported".into(), json!(["query"]));
        doc.insert(
            "grant_types_supported".into(),
            json!(["authorization_code", "refresh_token"]),
        );
        doc.insert(
            "token_endpoint_auth_methods_supported".into(),
            json!(config.token_endpoint_auth_methods),
        );
        if let Some(methods) = &config.pkce_methods {
            doc.insert("code_challenge_methods_supported".into(), json!(methods));
        }
        if config.iss_supported {
            doc.insert(
                "authorization_response_iss_parameter_supported".into(),
                json!(true),
            );
        }
        if config.cimd_supported {
            doc.insert("client_id_metadata_document_supported".into(), json!(true));
        }
        if config.dpop.is_some() {
            doc.insert("dpop_signing_alg_values_supported".into(), json!(["ES256"]));
        }
        if let Some(scopes) = &config.as_scopes_supported {
            doc.insert("scopes_supported".into(), json!(scopes));
        }
        if oidc {
            doc.insert("jwks_uri".into(), json!(self.endpoint_url(&self.jwks_path)));
            doc.insert("subject_types_supported".into(), json!(["public"]));
            doc.insert(
                "id_token_signing_alg_values_supported".into(),
                json!(["RS256"]),
            );
        }
        Value::Object(doc)
    }

    /// The issuer the metadata advertises.
    pub(crate) fn metadata_issuer(&self, config: &TestkitConfig) -> String {
        config
            .metadata_issuer_override
            .clone()
            .unwrap_or_else(|| self.issuer.clone())
    }
}
