//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2) and the checks on
//! its response (RFC 6749 §4.1.2, §10.12; RFC 9207 §2.4).

use std::fmt;

use oauth2::{AuthorizationCode, CsrfToken};
use url::Url;

use crate::error::{Error, ErrorKind, OAuthErrorResponse};
use crate::scope::Scopes;

/// An authorization request ready to be shown to the user.
///
/// `Debug` shows the endpoint only: the query carries the `state` value, which must not leak
/// into logs.
#[derive(Clone)]
pub struct AuthorizationRequest {
    url: Url,
    redirect_uri: String,
    state: CsrfToken,
    issuer: String,
}

impl AuthorizationRequest {
    /// Builds the authorization URL on `endpoint` (keeping any query it already has).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        endpoint: &Url,
        client_id: &str,
        redirect_uri: &str,
        code_challenge: &str,
        state: CsrfToken,
        scopes: Option<&Scopes>,
        resource: Option<&str>,
        issuer: &str,
    ) -> Self {
        let mut url = endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", state.secret());
            if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
                q.append_pair("scope", &scopes.to_string());
            }
            if let Some(resource) = resource {
                q.append_pair("resource", resource);
            }
        }
        Self {
            url,
            redirect_uri: redirect_uri.to_owned(),
            state,
            issuer: issuer.to_owned(),
        }
    }

    /// The compatibility switches of `options` applied to the query (before extra parameters).
    pub(crate) fn with_switches(
        mut self,
        options: Option<&crate::server_options::ServerOptions>,
    ) -> Self {
        crate::server_requests::apply_switches_to_query(&mut self.url, options);
        self
    }

    /// The request with `extra` applied to its query (see
    /// [`ExtraParams::apply`](crate::server::ExtraParams::apply)); the protected parameters
    /// cannot be among them.
    pub(crate) fn with_extra_params(mut self, extra: &crate::extra_params::ExtraParams) -> Self {
        crate::server_requests::apply_to_query(&mut self.url, extra);
        self
    }

    /// The URL to open in the user's browser.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The redirect URI the response will come back to.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The `state` value the response must carry back.
    pub fn state(&self) -> &CsrfToken {
        &self.state
    }

    /// The issuer of the authorization server the request goes to.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut endpoint = self.url.clone();
        endpoint.set_query(None);
        f.debug_struct("AuthorizationRequest")
            .field("endpoint", &endpoint.as_str())
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The parameters of an authorization response, as they came back on the redirect URI.
///
/// `Debug` hides the code.
#[derive(Clone, Default)]
pub struct AuthorizationResponse {
    /// The authorization code.
    pub code: Option<AuthorizationCode>,
    /// The `state` value.
    pub state: Option<String>,
    /// The RFC 9207 `iss` value.
    pub iss: Option<String>,
    /// The error code of an error response.
    pub error: Option<String>,
    /// The error description of an error response.
    pub error_description: Option<String>,
}

impl AuthorizationResponse {
    /// Reads the parameters from a query string (`code=…&state=…`).
    ///
    /// ```
    /// use mcp_oauth_flow::authorization::AuthorizationResponse;
    /// let r = AuthorizationResponse::from_query("code=abc&state=xyz&iss=https%3A%2F%2Fas.example.com");
    /// assert_eq!(r.code.unwrap().secret(), "abc");
    /// assert_eq!(r.iss.as_deref(), Some("https://as.example.com"));
    /// ```
    pub fn from_query(query: &str) -> Self {
        let mut out = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let v = v.into_owned();
            // The first occurrence wins; a duplicate cannot smuggle a second value in.
            match &*k {
                "code" if out.code.is_none() => out.code = Some(AuthorizationCode::new(v)),
                "state" if out.state.is_none() => out.state = Some(v),
                "iss" if out.iss.is_none() => out.iss = Some(v),
                "error" if out.error.is_none() => out.error = Some(v),
                "error_description" if out.error_description.is_none() => {
                    out.error_description = Some(v)
                }
                _ => {}
            }
        }
        out
    }

    /// Reads the parameters from the full redirect URL.
    pub fn from_redirect_url(url: &Url) -> Self {
        Self::from_query(url.query().unwrap_or(""))
    }
}

impl fmt::Debug for AuthorizationResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationResponse")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

/// Compares two byte strings in time that depends only on their lengths, so that a `state`
/// guess learns nothing from how fast it is refused.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Checks an authorization response and returns its code. In order:
///
/// 1. `state` equals the one sent, compared in constant time (RFC 6749 §10.12);
/// 2. `iss` (RFC 9207 §2.4): when present it must equal `issuer` exactly, byte for byte (no case,
///    slash or percent-encoding normalisation); when absent, the response is refused if the
///    server advertised `authorization_response_iss_parameter_supported`;
/// 3. an `error` response becomes [`ErrorKind::AuthorizationDenied`];
/// 4. otherwise a `code` must be present.
///
/// Any failure means no token request is made.
///
/// ```
/// use mcp_oauth_flow::{authorization::{validate_authorization_response, AuthorizationResponse}, ErrorKind};
/// use oauth2::CsrfToken;
/// let state = CsrfToken::new("s1".into());
/// let ok = AuthorizationResponse::from_query("code=c&state=s1&iss=https%3A%2F%2Fas.example.com");
/// assert!(validate_authorization_response(ok, &state, "https://as.example.com", true).is_ok());
/// let slash = AuthorizationResponse::from_query("code=c&state=s1&iss=https%3A%2F%2Fas.example.com%2F");
/// let err = validate_authorization_response(slash, &state, "https://as.example.com", true).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::IssuerParameterMismatch);
/// ```
pub fn validate_authorization_response(
    response: AuthorizationResponse,
    expected_state: &CsrfToken,
    issuer: &str,
    iss_required: bool,
) -> Result<AuthorizationCode, Error> {
    let state_ok = response
        .state
        .as_deref()
        .is_some_and(|s| constant_time_eq(s.as_bytes(), expected_state.secret().as_bytes()));
    if !state_ok {
        return Err(Error::new(
            ErrorKind::StateMismatch,
            if response.state.is_some() {
                "authorization response state does not match the request; possible CSRF"
            } else {
                "authorization response has no state"
            },
        ));
    }
    match response.iss.as_deref() {
        Some(iss) if iss != issuer => {
            return Err(Error::new(
                ErrorKind::IssuerParameterMismatch,
                format!("authorization response iss {iss:?} is not the issuer {issuer:?} (RFC 9207); possible mix-up attack"),
            ))
        }
        None if iss_required => {
            return Err(Error::new(
                ErrorKind::IssuerParameterMismatch,
                format!("authorization server {issuer:?} advertises the iss parameter but the response has none (RFC 9207)"),
            ))
        }
        _ => {}
    }
    if let Some(error) = response.error {
        return Err(Error::new(
            ErrorKind::AuthorizationDenied,
            "the authorization server returned an error response",
        )
        .with_oauth_error(OAuthErrorResponse {
            error,
            error_description: response.error_description,
        }));
    }
    response
        .code
        .filter(|c| !c.secret().is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidAuthorizationResponse,
                "authorization response has neither code nor error",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "http://localhost:9000";

    fn state() -> CsrfToken {
        CsrfToken::new("the-state".into())
    }

    fn check(q: &str, required: bool) -> Result<AuthorizationCode, Error> {
        validate_authorization_response(
            AuthorizationResponse::from_query(q),
            &state(),
            ISS,
            required,
        )
    }

    #[test]
    fn request_url_has_every_parameter() {
        let endpoint = Url::parse("https://as.example.com/authorize?tenant=a").unwrap();
        let req = AuthorizationRequest::new(
            &endpoint,
            "client",
            "http://127.0.0.1:1/cb",
            "chal",
            state(),
            Some(&Scopes::parse("a b")),
            Some("https://mcp.example.com"),
            "https://as.example.com",
        );
        let pairs: Vec<(String, String)> = req.url().query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("tenant"), Some("a"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("scope"), Some("a b"));
        assert_eq!(get("resource"), Some("https://mcp.example.com"));
        assert_eq!(get("state"), Some("the-state"));
        assert_eq!(req.redirect_uri(), "http://127.0.0.1:1/cb");
        assert_eq!(req.issuer(), "https://as.example.com");
        assert_eq!(req.state().secret(), "the-state");
        // Debug names where the request goes, never the query that carries the state.
        let debug = format!("{req:?}");
        assert!(!debug.contains("the-state"));
        assert!(debug.contains("https://as.example.com/authorize"));
        assert!(debug.contains("http://127.0.0.1:1/cb"));
    }

    #[test]
    fn no_scope_parameter_when_empty() {
        let endpoint = Url::parse("https://as.example.com/authorize").unwrap();
        let req = AuthorizationRequest::new(
            &endpoint,
            "c",
            "r",
            "x",
            state(),
            Some(&Scopes::default()),
            None,
            ISS,
        );
        assert!(!req
            .url()
            .query_pairs()
            .any(|(k, _)| k == "scope" || k == "resource"));
    }

    #[test]
    fn state_rules() {
        assert!(check("code=c&state=the-state", false).is_ok());
        assert_eq!(
            check("code=c&state=other", false).unwrap_err().kind(),
            ErrorKind::StateMismatch
        );
        assert_eq!(
            check("code=c", false).unwrap_err().kind(),
            ErrorKind::StateMismatch
        );
        // The first state wins.
        assert_eq!(
            check("code=c&state=x&state=the-state", false)
                .unwrap_err()
                .kind(),
            ErrorKind::StateMismatch
        );
    }

    #[test]
    fn iss_rules() {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let q = |iss: &str| format!("code=c&state=the-state&iss={}", enc(iss));
        assert!(check(&q(ISS), true).is_ok());
        assert!(check(&q(ISS), false).is_ok());
        assert!(check("code=c&state=the-state", false).is_ok());
        for bad in [
            "http://localhost:9000/",
            "HTTP://localhost:9000",
            "https://evil.example.com",
            "http://localhost:9000%2F",
        ] {
            assert_eq!(
                check(&q(bad), true).unwrap_err().kind(),
                ErrorKind::IssuerParameterMismatch,
                "{bad}"
            );
            assert_eq!(
                check(&q(bad), false).unwrap_err().kind(),
                ErrorKind::IssuerParameterMismatch,
                "{bad}"
            );
        }
        assert_eq!(
            check("code=c&state=the-state", true).unwrap_err().kind(),
            ErrorKind::IssuerParameterMismatch
        );
    }

    #[test]
    fn error_responses_and_missing_code() {
        // The first `iss` (and `code`, `state`, `error`) wins: a duplicate cannot override it.
        let twice = AuthorizationResponse::from_query(
            "code=c1&code=c2&state=s1&state=s2&iss=https%3A%2F%2Fa&iss=https%3A%2F%2Fb&error=e1&error=e2&error_description=d1&error_description=d2",
        );
        assert_eq!(twice.code.as_ref().unwrap().secret(), "c1");
        assert_eq!(twice.state.as_deref(), Some("s1"));
        assert_eq!(twice.iss.as_deref(), Some("https://a"));
        assert_eq!(twice.error.as_deref(), Some("e1"));
        assert_eq!(twice.error_description.as_deref(), Some("d1"));

        let err = check(
            "error=access_denied&error_description=nope&state=the-state",
            false,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthorizationDenied);
        assert_eq!(err.oauth_error().unwrap().error, "access_denied");
        assert_eq!(
            err.oauth_error().unwrap().error_description.as_deref(),
            Some("nope")
        );
        assert_eq!(
            check("state=the-state", false).unwrap_err().kind(),
            ErrorKind::InvalidAuthorizationResponse
        );
        assert_eq!(
            check("code=&state=the-state", false).unwrap_err().kind(),
            ErrorKind::InvalidAuthorizationResponse
        );
    }

    #[test]
    fn debug_hides_code_and_state() {
        let r = AuthorizationResponse::from_query(
            "code=supersecret&state=thestate&iss=https%3A%2F%2Fas&error=e&error_description=why",
        );
        let text = format!("{r:?}");
        assert!(!text.contains("supersecret") && !text.contains("thestate"));
        // What is not secret stays visible, for diagnosis.
        assert!(text.contains("https://as") && text.contains("why"));
    }

    #[test]
    fn from_redirect_url_reads_the_query() {
        let url = Url::parse("http://127.0.0.1:1/cb?code=c&state=s&iss=https%3A%2F%2Fas").unwrap();
        let r = AuthorizationResponse::from_redirect_url(&url);
        assert_eq!(r.code.unwrap().secret(), "c");
        assert_eq!(r.state.as_deref(), Some("s"));
        assert_eq!(r.iss.as_deref(), Some("https://as"));
        let bare =
            AuthorizationResponse::from_redirect_url(&Url::parse("http://127.0.0.1:1/cb").unwrap());
        assert!(bare.code.is_none() && bare.state.is_none());
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        // Two differences that would cancel out if they were combined with xor.
        assert!(!constant_time_eq(b"ab", b"ba"));
        assert!(constant_time_eq(b"", b""));
    }
}
