//! Grants whose credential is an assertion the application supplies (RFC 7523 §2.1): workload
//! identity federation (SEP-1933) and enterprise-managed authorization (SEP-990).
//!
//! The flow never reads a file, an environment variable or a clock: it asks for the assertion
//! with [`Action::ObtainAssertion`](crate::Action::ObtainAssertion) each time it runs the grant,
//! so a token the platform rotates is read afresh, and the driver feeds it back with
//! [`Flow::handle_assertion`](crate::Flow::handle_assertion).

use std::time::{SystemTime, UNIX_EPOCH};

use oauth2::ClientSecret;

use crate::error::{Error, ErrorKind};
use crate::jwt::jwt_expiry;
use crate::metadata::AuthorizationServerMetadata;

/// The `grant_type` of RFC 7523 §2.1.
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Which assertion-based grant the client uses instead of the authorization code.
///
/// ```
/// use mcp_oauth_flow::{ClientConfig, grants::{AssertionGrant, EnterpriseIdp}};
/// let workload = ClientConfig::new("http://127.0.0.1:1/cb").assertion_grant(AssertionGrant::WorkloadIdentity);
/// assert!(workload.assertion_grant.is_some());
/// let idp = EnterpriseIdp::new("https://idp.example.com/token").client_id("mcp-client");
/// let enterprise = AssertionGrant::EnterpriseManaged(idp);
/// assert!(!format!("{enterprise:?}").is_empty());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AssertionGrant {
    /// SEP-1933: the workload's own identity token (Kubernetes, a cloud's metadata service, a
    /// CI system's OIDC token), presented as it was issued in a jwt-bearer grant. Its audience
    /// is whatever the platform was told to put there: the flow does not rewrite it.
    WorkloadIdentity,
    /// SEP-990: the user's ID token is exchanged at the enterprise IdP (RFC 8693) for an
    /// identity assertion authorization grant (ID-JAG) addressed to the authorization server,
    /// which is then presented in a jwt-bearer grant with the client's authentication.
    EnterpriseManaged(EnterpriseIdp),
}

/// The enterprise identity provider of [`AssertionGrant::EnterpriseManaged`]. `Debug` never
/// shows the secret.
#[derive(Clone, Debug)]
pub struct EnterpriseIdp {
    /// The IdP's token endpoint, where the ID token is exchanged (RFC 8693 §2.1).
    pub token_endpoint: String,
    /// The client identifier this application has at the IdP, if the IdP wants one.
    pub client_id: Option<String>,
    /// The client secret at the IdP (HTTP Basic, RFC 6749 §2.3.1), if it has one.
    pub client_secret: Option<ClientSecret>,
}

impl EnterpriseIdp {
    /// An IdP with this token endpoint and no client authentication.
    pub fn new(token_endpoint: impl Into<String>) -> Self {
        Self {
            token_endpoint: token_endpoint.into(),
            client_id: None,
            client_secret: None,
        }
    }

    /// Sets the client identifier at the IdP. Default: none.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets the client secret at the IdP. Default: none.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(ClientSecret::new(secret.into()));
        self
    }
}

/// Which assertion the flow asks the application for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionKind {
    /// The workload identity token (SEP-1933).
    WorkloadIdentity,
    /// The user's OpenID Connect ID token, to be exchanged for an ID-JAG (SEP-990).
    IdToken,
}

/// What [`Action::ObtainAssertion`](crate::Action::ObtainAssertion) asks for, with what a
/// source may need to pick or mint the right token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssertionRequest {
    /// Which assertion.
    pub kind: AssertionKind,
    /// The issuer of the authorization server that will receive the grant.
    pub issuer: String,
    /// The protected resource the token is for (RFC 8707), when known.
    pub resource: Option<String>,
}

impl AssertionRequest {
    /// A request for `kind`, for the authorization server `issuer` and the `resource`.
    pub fn new(kind: AssertionKind, issuer: impl Into<String>, resource: Option<String>) -> Self {
        Self {
            kind,
            issuer: issuer.into(),
            resource,
        }
    }

    /// A request for the workload identity token.
    pub fn workload(issuer: impl Into<String>, resource: Option<String>) -> Self {
        Self::new(AssertionKind::WorkloadIdentity, issuer, resource)
    }
}

/// The grant rule: a client configured for an assertion grant uses it only with an
/// authorization server that lists the jwt-bearer grant (RFC 8414 §2 `grant_types_supported`),
/// and never falls back to another grant (SEP-1933: a workload has no user to consent).
pub(crate) fn check_jwt_bearer_offered(meta: &AuthorizationServerMetadata) -> Result<(), Error> {
    if meta.supports_grant(JWT_BEARER_GRANT_TYPE) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::GrantNotSupported,
        format!(
            "authorization server {} does not list {JWT_BEARER_GRANT_TYPE} in grant_types_supported; \
             enable the jwt-bearer grant for this client there, or configure the client without \
             an assertion grant",
            meta.issuer
        ),
    ))
}

/// The freshness rule: an assertion whose `exp` (RFC 7519 §4.1.4) is not after `now` would only
/// be refused (RFC 7523 §3 item 4), so it is not sent; the error says who must renew it. An
/// assertion without a readable `exp` is sent as is: the server judges it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mcp_oauth_flow::{grants::{check_assertion_fresh, AssertionKind}, ErrorKind};
/// // {"alg":"none"}.{"exp":1700000000}.
/// let jwt = "eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.";
/// let before = UNIX_EPOCH + Duration::from_secs(1_699_999_999);
/// assert!(check_assertion_fresh(jwt, AssertionKind::WorkloadIdentity, before).is_ok());
/// let after = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let err = check_assertion_fresh(jwt, AssertionKind::WorkloadIdentity, after).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::AssertionExpired);
/// ```
pub fn check_assertion_fresh(
    assertion: &str,
    kind: AssertionKind,
    now: SystemTime,
) -> Result<(), Error> {
    let what = match kind {
        AssertionKind::WorkloadIdentity => "workload identity token",
        AssertionKind::IdToken => "ID token",
    };
    if assertion.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::AssertionUnavailable,
            format!("the assertion source gave an empty {what}"),
        ));
    }
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    match jwt_expiry(assertion) {
        Some(exp) if exp <= now_secs => Err(Error::new(
            ErrorKind::AssertionExpired,
            format!(
                "the {what} from the assertion source expired {} s ago (exp {exp}); the platform \
                 must rotate it (or the source renew it) before the next request",
                now_secs - exp
            ),
        )),
        _ => Ok(()),
    }
}

/// Maps the token endpoint's refusal of an assertion grant onto
/// [`ErrorKind::AssertionRejected`], keeping the server's `error` and status. Transient answers
/// (5xx, 429, transport) keep their kind.
pub(crate) fn assertion_rejected(error: Error, server: &str) -> Error {
    if error.kind() != ErrorKind::TokenRejected {
        return error;
    }
    let mut mapped = Error::new(
        ErrorKind::AssertionRejected,
        format!(
            "{server} rejected the assertion ({}); check the assertion's audience, issuer and \
             lifetime against what the server trusts. Not retried",
            error.message()
        ),
    );
    if let Some(status) = error.status() {
        mapped = mapped.with_status(status);
    }
    if let Some(oauth) = error.oauth_error() {
        mapped = mapped.with_oauth_error(oauth.clone());
    }
    mapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OAuthErrorResponse;
    use std::time::Duration;

    fn meta(grants: serde_json::Value) -> AuthorizationServerMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://as.example.com",
            "token_endpoint": "https://as.example.com/token",
            "grant_types_supported": grants,
        }))
        .unwrap()
    }

    #[test]
    fn the_jwt_bearer_grant_must_be_listed() {
        assert!(
            check_jwt_bearer_offered(&meta(serde_json::json!([JWT_BEARER_GRANT_TYPE]))).is_ok()
        );
        let err =
            check_jwt_bearer_offered(&meta(serde_json::json!(["authorization_code"]))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::GrantNotSupported);
        assert!(err.message().contains("https://as.example.com"));
        // RFC 8414 §2's default (absent list) has no jwt-bearer.
        let absent: AuthorizationServerMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://as.example.com"
        }))
        .unwrap();
        assert_eq!(
            check_jwt_bearer_offered(&absent).unwrap_err().kind(),
            ErrorKind::GrantNotSupported
        );
    }

    #[test]
    fn freshness_by_exp_and_emptiness() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // An opaque token carries no exp: the server judges it.
        assert!(check_assertion_fresh("opaque", AssertionKind::IdToken, now).is_ok());
        let err = check_assertion_fresh("  ", AssertionKind::IdToken, now).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AssertionUnavailable);
        // {"exp":1700000001}: one second left is still fresh.
        let jwt = "e30.eyJleHAiOjE3MDAwMDAwMDF9.";
        assert!(check_assertion_fresh(jwt, AssertionKind::IdToken, now).is_ok());
        let later = now + Duration::from_secs(61);
        let err = check_assertion_fresh(jwt, AssertionKind::IdToken, later).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AssertionExpired);
        assert!(err.message().contains("ID token") && err.message().contains("60 s ago"));
    }

    #[test]
    fn a_refusal_becomes_assertion_rejected_and_a_5xx_stays_transient() {
        let refused = Error::new(ErrorKind::TokenRejected, "token endpoint answered 400")
            .with_status(http::StatusCode::BAD_REQUEST)
            .with_oauth_error(OAuthErrorResponse {
                error: "invalid_grant".into(),
                error_description: None,
            });
        let mapped = assertion_rejected(refused, "authorization server https://as");
        assert_eq!(mapped.kind(), ErrorKind::AssertionRejected);
        assert_eq!(mapped.oauth_error().unwrap().error, "invalid_grant");
        assert_eq!(mapped.status(), Some(http::StatusCode::BAD_REQUEST));
        let busy = Error::new(ErrorKind::UnexpectedStatus, "503");
        assert_eq!(
            assertion_rejected(busy, "x").kind(),
            ErrorKind::UnexpectedStatus
        );
    }
}
