//! Protected resource metadata (RFC 9728) and authorization server metadata (RFC 8414, OpenID
//! Connect Discovery), with the checks that make them safe to act on.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, ErrorKind};
use crate::url_policy::parse_secure_url;

/// Protected resource metadata (RFC 9728 §2). Unknown fields are ignored.
///
/// ```
/// use mcp_oauth_flow::discovery::ProtectedResourceMetadata;
/// let prm = ProtectedResourceMetadata::from_json(br#"{
///     "resource": "https://mcp.example.com/mcp",
///     "authorization_servers": ["https://auth.example.com"],
///     "scopes_supported": ["mcp:read"]
/// }"#).unwrap();
/// assert_eq!(prm.authorization_servers[0], "https://auth.example.com");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The protected resource's resource identifier (REQUIRED).
    pub resource: String,
    /// Issuer identifiers of the authorization servers that can be used with this resource.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes used in authorization requests to access this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// How a bearer token may be presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// JWS algorithms accepted for DPoP proofs (RFC 9449 §5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// Human-readable name of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

impl ProtectedResourceMetadata {
    /// Parses and validates a metadata document: JSON, a `resource`, at least one
    /// authorization server.
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        let prm: Self = serde_json::from_slice(body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidResourceMetadata,
                format!("protected resource metadata is not valid: {e}"),
            )
        })?;
        if prm.resource.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidResourceMetadata,
                "protected resource metadata has an empty resource",
            ));
        }
        if prm.authorization_servers.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidResourceMetadata,
                "protected resource metadata names no authorization server",
            ));
        }
        Ok(prm)
    }
}

/// Authorization server metadata (RFC 8414 §2, OpenID Connect Discovery 1.0 §3, and the
/// extensions MCP relies on). Unknown fields are ignored.
///
/// ```
/// use mcp_oauth_flow::discovery::AuthorizationServerMetadata;
/// let meta = AuthorizationServerMetadata::from_json(br#"{
///     "issuer": "https://auth.example.com",
///     "authorization_endpoint": "https://auth.example.com/authorize",
///     "token_endpoint": "https://auth.example.com/token",
///     "code_challenge_methods_supported": ["S256"]
/// }"#).unwrap();
/// assert!(meta.supports_pkce_s256());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier (REQUIRED).
    pub issuer: String,
    /// URL of the authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// URL of the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// URL of the dynamic client registration endpoint (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// URL of the revocation endpoint (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Scopes the server supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// `response_type` values the server supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types_supported: Option<Vec<String>>,
    /// Grant types the server supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// JWS algorithms for `private_key_jwt` and `client_secret_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// PKCE code challenge methods (RFC 7636 §4.3, RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Whether the server sends `iss` in authorization responses (RFC 9207 §3).
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Whether the server accepts a client ID metadata document URL as `client_id`.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// JWS algorithms accepted for DPoP proofs (RFC 9449 §5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// The device authorization endpoint (RFC 8628 §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
}

fn contains(list: &Option<Vec<String>>, value: &str) -> bool {
    list.as_deref()
        .is_some_and(|l| l.iter().any(|v| v == value))
}

impl AuthorizationServerMetadata {
    /// Parses a metadata document. Only the JSON shape is checked here; see
    /// [`validate`](Self::validate) for the issuer and endpoint rules.
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidAuthorizationServerMetadata,
                format!("authorization server metadata is not valid: {e}"),
            )
        })
    }

    /// Checks the document before anything is sent to its endpoints:
    ///
    /// - `issuer` equals `expected_issuer`, the identifier the metadata URL was built from
    ///   (RFC 8414 §3.3; see [`issuer_matches`]), when one is given;
    /// - the authorization and token endpoints are present and, like every endpoint, are
    ///   `https` or loopback `http`;
    /// - `response_types_supported`, when present, lists `code`.
    pub fn validate(&self, expected_issuer: Option<&str>) -> Result<(), Error> {
        let invalid = |msg: String| Error::new(ErrorKind::InvalidAuthorizationServerMetadata, msg);
        if self.issuer.is_empty() {
            return Err(invalid(
                "authorization server metadata has no issuer".into(),
            ));
        }
        if let Some(expected) = expected_issuer {
            if !issuer_matches(expected, &self.issuer) {
                return Err(Error::new(
                    ErrorKind::IssuerMismatch,
                    format!(
                        "metadata fetched for issuer {expected:?} says its issuer is {:?}; refusing to use it",
                        self.issuer
                    ),
                ));
            }
        }
        // RFC 8414 §2: the authorization endpoint is required unless no grant type uses it.
        if self.supports_grant("authorization_code") {
            let authz = self.authorization_endpoint.as_deref().ok_or_else(|| {
                invalid("authorization server metadata has no authorization_endpoint".into())
            })?;
            parse_secure_url(authz, "authorization_endpoint")?;
        }
        let token = self
            .token_endpoint
            .as_deref()
            .ok_or_else(|| invalid("authorization server metadata has no token_endpoint".into()))?;
        parse_secure_url(token, "token_endpoint")?;
        if let Some(reg) = &self.registration_endpoint {
            parse_secure_url(reg, "registration_endpoint")?;
        }
        if let Some(types) = self
            .response_types_supported
            .as_ref()
            .filter(|_| self.supports_grant("authorization_code"))
        {
            if !types.iter().any(|t| t == "code") {
                return Err(invalid(
                    "authorization server does not support response_type=code".into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether `code_challenge_methods_supported` lists `S256`.
    pub fn supports_pkce_s256(&self) -> bool {
        contains(&self.code_challenge_methods_supported, "S256")
    }

    /// Whether the server supports `grant`: listed in `grant_types_supported`, or, when that is
    /// absent, one of RFC 8414 §2's defaults (`authorization_code`, `implicit`).
    pub fn supports_grant(&self, grant: &str) -> bool {
        match &self.grant_types_supported {
            Some(list) => list.iter().any(|g| g == grant),
            None => grant == "authorization_code" || grant == "implicit",
        }
    }

    /// Whether `scopes_supported` lists `scope`.
    pub fn supports_scope(&self, scope: &str) -> bool {
        contains(&self.scopes_supported, scope)
    }

    /// Metadata for a 2025-03-26 server that publishes none: the default endpoints at its
    /// origin, PKCE S256 assumed (that revision requires it of every server).
    pub fn legacy_defaults(issuer: String, authorize: &Url, token: &Url, register: &Url) -> Self {
        Self {
            issuer,
            authorization_endpoint: Some(authorize.to_string()),
            token_endpoint: Some(token.to_string()),
            registration_endpoint: Some(register.to_string()),
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            ..Self::default()
        }
    }
}

/// Whether the `issuer` a metadata document states is the one it was fetched for.
///
/// RFC 8414 §3.3 asks for identical values, to stop a mix-up: one authorization server's
/// metadata passed off as another's. The one difference tolerated is a single trailing `/`
/// (`https://as.example.com/t1` against `https://as.example.com/t1/`), and only on an issuer
/// with neither query nor fragment, which RFC 8414 §2 forbids in an issuer anyway:
///
/// - for a root issuer the two forms are the same URI (RFC 3986 §6.2.3), and real servers
///   publish both (Google, Auth0);
/// - for a path issuer they are not the same URI, but they name the same tenant of the same
///   server: a path segment cannot hold a `/`, so no other server, nor another tenant of that
///   one, can be the other form; RFC 8414 §3.1 itself maps both to one metadata URL (the
///   terminating `/` removed). Real servers name theirs one way in the resource's metadata
///   and the other in their own (JumpCloud), and a strict check leaves their users no way to
///   connect. The TypeScript and Go SDKs tolerate it too.
///
/// The issuer the document states is the one used from then on: the RFC 9207 `iss` of the
/// authorization response is compared with it exactly, and credentials are bound to it.
///
/// ```
/// use mcp_oauth_flow::discovery::issuer_matches;
/// assert!(issuer_matches("https://as.example.com", "https://as.example.com"));
/// assert!(issuer_matches("https://accounts.google.com/", "https://accounts.google.com"));
/// assert!(issuer_matches("https://as.example.com/t1", "https://as.example.com/t1/"));
/// assert!(!issuer_matches("https://as.example.com/t1", "https://as.example.com/t1//"));
/// assert!(!issuer_matches("https://as.example.com/t1", "https://as.example.com/t2"));
/// assert!(!issuer_matches("https://as.example.com", "https://attacker.example.com"));
/// ```
pub fn issuer_matches(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    let (short, long) = if expected.len() < actual.len() {
        (expected, actual)
    } else {
        (actual, expected)
    };
    // One `/` more, after the same text, which does not itself end in `/`.
    if long.strip_suffix('/') != Some(short) || short.ends_with('/') {
        return false;
    }
    // Neither query nor fragment: after either, a `/` is data, not the path's end.
    !short.contains(['?', '#']) && Url::parse(short).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root-issuer leniency covers the trailing `/` only: with a query or a fragment, the
    /// two forms must be identical (RFC 8414 §3.3).
    #[test]
    fn root_leniency_is_for_the_bare_origin_only() {
        assert!(issuer_matches(
            "https://as.example.com/",
            "https://as.example.com"
        ));
        assert!(!issuer_matches(
            "https://as.example.com/?t=1",
            "https://as.example.com?t=1"
        ));
        assert!(!issuer_matches(
            "https://as.example.com/#f",
            "https://as.example.com#f"
        ));
    }

    /// Without `grant_types_supported`, RFC 8414 §2's defaults apply: `authorization_code` and
    /// `implicit`, nothing else.
    #[test]
    fn grants_default_to_rfc_8414s_list() {
        let meta = AuthorizationServerMetadata::default();
        assert!(meta.supports_grant("authorization_code"));
        assert!(meta.supports_grant("implicit"));
        assert!(!meta.supports_grant("client_credentials"));
        assert!(!meta.supports_grant("refresh_token"));
    }

    #[test]
    fn supports_scope_reads_scopes_supported() {
        let listed: AuthorizationServerMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://as", "scopes_supported": ["a", "offline_access"]
        }))
        .unwrap();
        assert!(listed.supports_scope("offline_access"));
        assert!(!listed.supports_scope("b"));
        let silent: AuthorizationServerMetadata =
            serde_json::from_value(serde_json::json!({"issuer": "https://as"})).unwrap();
        assert!(!silent.supports_scope("a"));
    }

    fn meta(json: serde_json::Value) -> AuthorizationServerMetadata {
        AuthorizationServerMetadata::from_json(json.to_string().as_bytes()).unwrap()
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://as.example.com",
            "authorization_endpoint": "https://as.example.com/authorize",
            "token_endpoint": "https://as.example.com/token",
            "registration_endpoint": "https://as.example.com/register",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "unknown_field": {"is": "ignored"}
        })
    }

    #[test]
    fn prm_requires_resource_and_servers() {
        assert!(ProtectedResourceMetadata::from_json(b"not json").is_err());
        assert_eq!(
            ProtectedResourceMetadata::from_json(br#"{"authorization_servers":["https://a"]}"#)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidResourceMetadata
        );
        assert_eq!(
            ProtectedResourceMetadata::from_json(br#"{"resource":"https://r"}"#)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidResourceMetadata
        );
        assert_eq!(
            ProtectedResourceMetadata::from_json(
                br#"{"resource":"https://r","authorization_servers":"https://a"}"#
            )
            .unwrap_err()
            .kind(),
            ErrorKind::InvalidResourceMetadata
        );
    }

    #[test]
    fn valid_metadata_passes() {
        let m = meta(good());
        m.validate(Some("https://as.example.com")).unwrap();
        assert!(m.supports_pkce_s256());
    }

    #[test]
    fn issuer_mismatch_is_refused() {
        let mut j = good();
        j["issuer"] = "https://attacker.example.com".into();
        let err = meta(j)
            .validate(Some("https://as.example.com"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IssuerMismatch);
    }

    #[test]
    fn missing_endpoints_are_refused() {
        for field in ["authorization_endpoint", "token_endpoint"] {
            let mut j = good();
            j.as_object_mut().unwrap().remove(field);
            let err = meta(j).validate(None).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidAuthorizationServerMetadata,
                "{field}"
            );
        }
        assert!(AuthorizationServerMetadata::from_json(b"{}").is_err());
        assert!(AuthorizationServerMetadata::from_json(b"<html>").is_err());
    }

    #[test]
    fn insecure_endpoints_are_refused() {
        let mut j = good();
        j["token_endpoint"] = "http://as.example.com/token".into();
        assert_eq!(
            meta(j).validate(None).unwrap_err().kind(),
            ErrorKind::InsecureUrl
        );
        let mut j = good();
        j["registration_endpoint"] = "http://as.example.com/register".into();
        assert_eq!(
            meta(j).validate(None).unwrap_err().kind(),
            ErrorKind::InsecureUrl
        );
    }

    #[test]
    fn response_types_must_include_code() {
        let mut j = good();
        j["response_types_supported"] = serde_json::json!(["token"]);
        assert!(meta(j).validate(None).is_err());
    }

    #[test]
    fn issuer_equivalence_is_narrow() {
        assert!(issuer_matches("http://localhost:1", "http://localhost:1/"));
        assert!(!issuer_matches(
            "http://localhost:1",
            "http://localhost:1//"
        ));
        assert!(!issuer_matches(
            "http://localhost:1/oauth",
            "http://localhost:1"
        ));
        assert!(!issuer_matches("http://localhost:1", "HTTP://LOCALHOST:1"));
        assert!(!issuer_matches(
            "http://localhost:1",
            "http://localhost:1/?a"
        ));
    }

    /// The leniency is for the path's end: a trailing `/` after a query or a fragment is
    /// data of a different identifier (RFC 8414 §3.3 wants them identical). A path issuer's
    /// one trailing `/` is the same tenant, whichever side has it.
    #[test]
    fn trailing_slash_leniency_is_for_the_paths_end() {
        assert!(!issuer_matches(
            "https://as.example.com/?t=/",
            "https://as.example.com/?t="
        ));
        assert!(!issuer_matches(
            "https://as.example.com/#/",
            "https://as.example.com/#"
        ));
        assert!(!issuer_matches(
            "https://as.example.com/t?a",
            "https://as.example.com/t?a/"
        ));
        assert!(issuer_matches(
            "https://as.example.com/tenant/",
            "https://as.example.com/tenant"
        ));
        assert!(issuer_matches(
            "https://as.example.com/tenant",
            "https://as.example.com/tenant/"
        ));
        // Only one, and only at the end.
        assert!(!issuer_matches(
            "https://as.example.com/tenant/",
            "https://as.example.com/tenant//"
        ));
        assert!(!issuer_matches(
            "https://as.example.com/tenant",
            "https://as.example.com/tenant/x"
        ));
        assert!(!issuer_matches(
            "https://as.example.com/ten/ant",
            "https://as.example.com/ten/ant/x"
        ));
        // Not a URL: nothing tolerated.
        assert!(!issuer_matches("tenant", "tenant/"));
    }

    /// A 2025-03-26 server without metadata: its default endpoints, bound to the issuer the flow
    /// names, with PKCE S256 assumed because that revision requires it.
    #[test]
    fn legacy_defaults_fill_the_default_endpoints() {
        let at = |p: &str| Url::parse(&format!("https://mcp.example.com{p}")).unwrap();
        let meta = AuthorizationServerMetadata::legacy_defaults(
            "https://mcp.example.com".into(),
            &at("/authorize"),
            &at("/token"),
            &at("/register"),
        );
        assert_eq!(meta.issuer, "https://mcp.example.com");
        assert_eq!(
            meta.authorization_endpoint.as_deref(),
            Some("https://mcp.example.com/authorize")
        );
        assert_eq!(
            meta.token_endpoint.as_deref(),
            Some("https://mcp.example.com/token")
        );
        assert_eq!(
            meta.registration_endpoint.as_deref(),
            Some("https://mcp.example.com/register")
        );
        assert_eq!(
            meta.code_challenge_methods_supported,
            Some(vec!["S256".to_string()])
        );
    }
}
