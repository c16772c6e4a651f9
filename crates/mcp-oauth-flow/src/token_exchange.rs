//! The RFC 8693 token exchange of enterprise-managed authorization (SEP-990): the user's ID
//! token in, an identity assertion authorization grant (ID-JAG) for one authorization server
//! and one resource out.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use url::Url;

use crate::assertion_grant::EnterpriseIdp;
use crate::error::{Error, ErrorKind, OAuthErrorResponse};
use crate::scope::Scopes;

/// RFC 8693 §2.1's `grant_type`.
pub const TOKEN_EXCHANGE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: the subject token is an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// SEP-990: the identity assertion authorization grant the IdP issues.
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// The exchange request (RFC 8693 §2.1): `audience` is the authorization server's issuer (the
/// ID-JAG's `aud`), `resource` the protected resource (RFC 8707), and the IdP client's
/// authentication, if any: Basic with a secret, else its `client_id` in the body.
///
/// ```
/// use mcp_oauth_flow::grants::{token_exchange_request, EnterpriseIdp};
/// let idp = EnterpriseIdp::new("https://idp.example.com/token").client_id("idp-client");
/// let endpoint = "https://idp.example.com/token".parse().unwrap();
/// let req = token_exchange_request(&endpoint, &idp, "id.token.jwt", "https://as.example.com",
///                                  Some("https://mcp.example.com/mcp"), None).unwrap();
/// let body = std::str::from_utf8(req.body()).unwrap();
/// assert!(body.contains("requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid-jag"));
/// assert!(body.contains("audience=https%3A%2F%2Fas.example.com"));
/// ```
pub fn token_exchange_request(
    endpoint: &Url,
    idp: &EnterpriseIdp,
    id_token: &str,
    audience: &str,
    resource: Option<&str>,
    scopes: Option<&Scopes>,
) -> Result<http::Request<Bytes>, Error> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT_TYPE),
        ("requested_token_type", ID_JAG_TOKEN_TYPE),
        ("audience", audience),
        ("subject_token", id_token),
        ("subject_token_type", ID_TOKEN_TYPE),
    ];
    if let Some(resource) = resource {
        form.push(("resource", resource));
    }
    let scope = scopes.filter(|s| !s.is_empty()).map(Scopes::to_string);
    if let Some(scope) = &scope {
        form.push(("scope", scope));
    }
    let mut basic = None;
    match (&idp.client_id, &idp.client_secret) {
        (Some(id), Some(secret)) => {
            // RFC 6749 §2.3.1: both halves form-urlencoded before base64.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let raw = format!("{}:{}", enc(id), enc(secret.secret()));
            let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(raw)))
                .expect("base64 is a valid header value");
            value.set_sensitive(true);
            basic = Some(value);
        }
        (Some(id), None) => form.push(("client_id", id)),
        // A secret is only ever sent with the identifier it belongs to: sent alone (or
        // dropped, as it was), the IdP would answer `invalid_client` with no word of why.
        (None, Some(_)) => {
            return Err(Error::new(
                ErrorKind::NoClientIdentity,
                "the enterprise IdP is configured with a client secret but no client_id \
                 (EnterpriseIdp::client_id)",
            ))
        }
        (None, None) => {}
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = http::Request::post(endpoint.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(Bytes::from(body))
        .map_err(|e| crate::url_policy::unusable_url(endpoint.as_str(), e))?;
    if let Some(value) = basic {
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    Ok(request)
}

/// Reads the exchange response (RFC 8693 §2.2): the ID-JAG is the `access_token`, and
/// `issued_token_type` must say so (SEP-990), since any other token would be presented to the
/// authorization server as something it is not. An error response is
/// [`ErrorKind::AssertionRejected`]: the IdP did not accept the ID token for this audience.
///
/// ```
/// use mcp_oauth_flow::{grants::parse_token_exchange_response, ErrorKind};
/// let ok = br#"{"access_token":"jag","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag","token_type":"N_A"}"#;
/// assert_eq!(parse_token_exchange_response(http::StatusCode::OK, ok).unwrap(), "jag");
/// let refused = br#"{"error":"invalid_grant"}"#;
/// let err = parse_token_exchange_response(http::StatusCode::BAD_REQUEST, refused).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::AssertionRejected);
/// ```
pub fn parse_token_exchange_response(
    status: http::StatusCode,
    body: &[u8],
) -> Result<String, Error> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    // A 5xx or 429 is the IdP's trouble whatever its body says (its `temporarily_unavailable`
    // too), as at the token endpoint (see `parse_token_response`): transient, the same
    // exchange may pass later, and no advice to check the ID token.
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::new(
            ErrorKind::UnexpectedStatus,
            format!("the enterprise IdP's token endpoint answered {status}"),
        )
        .with_status(status));
    }
    if let Some(error) = field("error").filter(|e| !e.is_empty()) {
        return Err(Error::new(
            ErrorKind::AssertionRejected,
            format!(
                "the enterprise IdP refused to exchange the ID token ({status}); check that the \
                 ID token is current and that the IdP trusts this client for the authorization server"
            ),
        )
        .with_status(status)
        .with_oauth_error(OAuthErrorResponse {
            error,
            error_description: field("error_description"),
        }));
    }
    if !status.is_success() {
        return Err(Error::new(
            ErrorKind::AssertionRejected,
            format!("the enterprise IdP refused to exchange the ID token ({status})"),
        )
        .with_status(status));
    }
    let invalid = |msg: String| Error::new(ErrorKind::InvalidTokenResponse, msg);
    match field("issued_token_type").as_deref() {
        Some(ID_JAG_TOKEN_TYPE) => {}
        other => {
            return Err(invalid(format!(
                "the enterprise IdP issued a token of type {other:?}, not an ID-JAG ({ID_JAG_TOKEN_TYPE})"
            )))
        }
    }
    field("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("the token exchange response has no access_token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(req: &http::Request<Bytes>) -> Vec<(String, String)> {
        url::form_urlencoded::parse(req.body())
            .into_owned()
            .collect()
    }

    /// A 5xx or 429 stays transient whatever error its body names: no "check the ID token".
    #[test]
    fn the_idps_trouble_is_transient_whatever_its_body_says() {
        let body = br#"{"error":"temporarily_unavailable"}"#;
        for status in [
            http::StatusCode::SERVICE_UNAVAILABLE,
            http::StatusCode::TOO_MANY_REQUESTS,
            http::StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            let err = parse_token_exchange_response(status, body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedStatus, "{status}");
            assert!(err.is_transient(), "{status}");
        }
        let refused = parse_token_exchange_response(http::StatusCode::BAD_REQUEST, body);
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::AssertionRejected);
    }

    #[test]
    fn a_secret_without_its_client_id_is_a_configuration_error() {
        let idp = EnterpriseIdp::new("https://idp/token").client_secret("s");
        let endpoint = "https://idp/token".parse().unwrap();
        let err =
            token_exchange_request(&endpoint, &idp, "id", "https://as", None, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoClientIdentity);
        assert!(err.to_string().contains("client_id"), "{err}");
    }

    #[test]
    fn the_request_carries_rfc8693_and_sep990_parameters() {
        let idp = EnterpriseIdp::new("https://idp/token");
        let endpoint: Url = "https://idp/token".parse().unwrap();
        let scopes = Scopes::parse("read write");
        let req = token_exchange_request(
            &endpoint,
            &idp,
            "the-id-token",
            "https://as",
            Some("https://rs/mcp"),
            Some(&scopes),
        )
        .unwrap();
        let f = form(&req);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("grant_type"), Some(TOKEN_EXCHANGE_GRANT_TYPE));
        assert_eq!(get("subject_token"), Some("the-id-token"));
        assert_eq!(get("subject_token_type"), Some(ID_TOKEN_TYPE));
        assert_eq!(get("requested_token_type"), Some(ID_JAG_TOKEN_TYPE));
        assert_eq!(get("audience"), Some("https://as"));
        assert_eq!(get("resource"), Some("https://rs/mcp"));
        assert_eq!(get("scope"), Some("read write"));
        // No IdP client configured: no client_id, no Authorization.
        assert_eq!(get("client_id"), None);
        assert!(req.headers().get(AUTHORIZATION).is_none());
    }

    #[test]
    fn an_idp_client_with_a_secret_uses_basic_and_hides_it() {
        let idp = EnterpriseIdp::new("https://idp/token")
            .client_id("c:1")
            .client_secret("s");
        let endpoint: Url = "https://idp/token".parse().unwrap();
        let req = token_exchange_request(&endpoint, &idp, "t", "https://as", None, None).unwrap();
        let value = req.headers().get(AUTHORIZATION).unwrap();
        assert!(value.is_sensitive());
        let b64 = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap(), b"c%3A1:s");
        assert!(!form(&req).iter().any(|(k, _)| k == "client_id"));
        assert!(!format!("{idp:?}").contains("\"s\""));
    }

    #[test]
    fn a_token_that_is_not_an_id_jag_is_refused() {
        let body = br#"{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;
        let err = parse_token_exchange_response(http::StatusCode::OK, body).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidTokenResponse);
        let missing = br#"{"issued_token_type":"urn:ietf:params:oauth:token-type:id-jag"}"#;
        assert_eq!(
            parse_token_exchange_response(http::StatusCode::OK, missing)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidTokenResponse
        );
        let busy =
            parse_token_exchange_response(http::StatusCode::SERVICE_UNAVAILABLE, b"").unwrap_err();
        assert!(busy.is_transient());
        let denied = parse_token_exchange_response(http::StatusCode::FORBIDDEN, b"").unwrap_err();
        assert_eq!(denied.kind(), ErrorKind::AssertionRejected);
    }
}
