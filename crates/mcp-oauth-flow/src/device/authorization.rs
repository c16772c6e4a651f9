//! RFC 8628 §3.1-§3.3: the device authorization request, and the device code, user code and
//! verification URI the server answers with.

use std::time::Duration;

use bytes::Bytes;
use url::Url;

use crate::client_auth::ClientCredentials;
use crate::error::{Error, ErrorKind, OAuthErrorResponse};
use crate::metadata::AuthorizationServerMetadata;
use crate::scope::Scopes;
use crate::token_request::DEVICE_CODE_GRANT_TYPE;

/// The polling interval when the server names none (RFC 8628 §3.2: "If no value is provided,
/// clients MUST use 5 as the default").
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The longest device code lifetime and polling interval taken as the server says them (a
/// day): RFC 8628 §3.2 gives no bound, and a lifetime of `u64::MAX` seconds would overflow
/// the time it ends at. A code lives minutes in practice, and the consent timeout ends the
/// wait long before a day.
pub const MAX_DEVICE_SECONDS: Duration = Duration::from_secs(24 * 60 * 60);

/// The device authorization endpoint the server advertises (RFC 8628 §4), or, when it
/// advertises none, an [`ErrorKind::GrantNotSupported`] that says what to change: the
/// application chose the device grant, so there is no fallback to the browser.
///
/// ```
/// use mcp_oauth_flow::{device::device_authorization_endpoint, discovery::AuthorizationServerMetadata, ErrorKind};
/// let mut meta = AuthorizationServerMetadata { issuer: "https://as.example.com".into(), ..Default::default() };
/// assert_eq!(device_authorization_endpoint(&meta).unwrap_err().kind(), ErrorKind::GrantNotSupported);
/// meta.device_authorization_endpoint = Some("https://as.example.com/device".into());
/// assert_eq!(device_authorization_endpoint(&meta)?.as_str(), "https://as.example.com/device");
/// # Ok::<(), mcp_oauth_flow::Error>(())
/// ```
pub fn device_authorization_endpoint(meta: &AuthorizationServerMetadata) -> Result<Url, Error> {
    let Some(raw) = meta.device_authorization_endpoint.as_deref() else {
        return Err(Error::new(
            ErrorKind::GrantNotSupported,
            format!(
                "authorization server {} advertises no device_authorization_endpoint (RFC 8628 \
                 §4): turn the device authorization grant off for it and authorize in a browser, \
                 or enable the device flow on the server",
                meta.issuer
            ),
        ));
    };
    crate::url_policy::parse_secure_url(raw, "device_authorization_endpoint")
}

/// Adds the device grant to a dynamic registration's `grant_types` (RFC 7591 §2: a server may
/// refuse a grant the client did not register), keeping `refresh_token` for the tokens it gets.
///
/// ```
/// use mcp_oauth_flow::device::{with_device_grant, DEVICE_CODE_GRANT_TYPE};
/// let body = with_device_grant(serde_json::json!({"grant_types": ["authorization_code", "refresh_token"]}));
/// assert_eq!(body["grant_types"], serde_json::json!(["authorization_code", "refresh_token", DEVICE_CODE_GRANT_TYPE]));
/// ```
pub fn with_device_grant(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(grants) = body.get_mut("grant_types").and_then(|g| g.as_array_mut()) {
        if !grants.iter().any(|g| g == DEVICE_CODE_GRANT_TYPE) {
            grants.push(DEVICE_CODE_GRANT_TYPE.into());
        }
    } else if let Some(object) = body.as_object_mut() {
        object.insert(
            "grant_types".into(),
            serde_json::json!([DEVICE_CODE_GRANT_TYPE, "refresh_token"]),
        );
    }
    body
}

/// The device authorization request (RFC 8628 §3.1): a form POST with the client's
/// authentication (or its `client_id`, for a public client), the `scope`, and the RFC 8707
/// `resource`, so the token is issued for the MCP server alone.
///
/// ```
/// use mcp_oauth_flow::client::{ClientAuthMethod, ClientCredentials};
/// use mcp_oauth_flow::device::device_authorization_request;
/// let client = ClientCredentials { client_id: "cli".into(), client_secret: None, method: ClientAuthMethod::None, assertion: None };
/// let endpoint = "https://as.example.com/device".parse().unwrap();
/// let req = device_authorization_request(&endpoint, &client, None, Some("https://mcp.example.com/mcp"))?;
/// assert_eq!(req.body().as_ref(), b"resource=https%3A%2F%2Fmcp.example.com%2Fmcp&client_id=cli");
/// # Ok::<(), mcp_oauth_flow::Error>(())
/// ```
pub fn device_authorization_request(
    endpoint: &Url,
    client: &ClientCredentials,
    scopes: Option<&Scopes>,
    resource: Option<&str>,
) -> Result<http::Request<Bytes>, Error> {
    let mut form: Vec<(&'static str, String)> = Vec::with_capacity(6);
    if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
        form.push(("scope", scopes.to_string()));
    }
    if let Some(resource) = resource {
        form.push(("resource", resource.into()));
    }
    crate::token_request::form_post(endpoint, form, client)
}

/// What the user must be shown (RFC 8628 §3.3): where to go, and the code to enter there.
///
/// `Debug` hides the user code (and the complete URI, which carries it): whoever reads it in a
/// log could approve the request in the user's place while it is pending.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserCode {
    /// The code the user enters (§3.2 `user_code`).
    pub user_code: String,
    /// Where the user enters it (§3.2 `verification_uri`).
    pub verification_uri: String,
    /// The same URI with the code in it, for a QR code or a click (§3.3.1), if the server gave
    /// one.
    pub verification_uri_complete: Option<String>,
    /// How long the code stays valid (§3.2 `expires_in`).
    pub expires_in: Duration,
}

impl std::fmt::Debug for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCode")
            .field("user_code", &"[redacted]")
            .field("verification_uri", &self.verification_uri)
            .field(
                "verification_uri_complete",
                &self
                    .verification_uri_complete
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl UserCode {
    /// A user code, for tests and for prompts built outside a flow.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mcp_oauth_flow::device::UserCode;
    /// let code = UserCode::new("WDJB-MJHT", "https://example.com/device", None, Duration::from_secs(900));
    /// assert!(!format!("{code:?}").contains("WDJB"));
    /// ```
    pub fn new(
        user_code: impl Into<String>,
        verification_uri: impl Into<String>,
        verification_uri_complete: Option<String>,
        expires_in: Duration,
    ) -> Self {
        Self {
            user_code: user_code.into(),
            verification_uri: verification_uri.into(),
            verification_uri_complete,
            expires_in,
        }
    }
}

/// A device authorization response (RFC 8628 §3.2). `Debug` hides the device code, which is
/// the credential each poll presents.
#[derive(Clone)]
#[non_exhaustive]
pub struct DeviceAuthorization {
    /// The device verification code (§3.2 `device_code`).
    pub device_code: String,
    /// What to show the user.
    pub user: UserCode,
    /// The minimum wait between polls (§3.2 `interval`, default [`DEFAULT_INTERVAL`]).
    pub interval: Duration,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"[redacted]")
            .field("user", &self.user)
            .field("interval", &self.interval)
            .finish()
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidTokenResponse, msg)
}

/// Reads a device authorization response (RFC 8628 §3.2). An error response (RFC 6749 §5.2,
/// as §3.2 says) is a [`ErrorKind::TokenRejected`] with the server's code; a 5xx or 429 an
/// [`ErrorKind::UnexpectedStatus`]. Tolerant where servers differ: numbers may come as strings,
/// `verification_url` (an older draft's name, still sent by some) stands for
/// `verification_uri`, and an `interval` that is absent or 0 is the default 5 s.
///
/// ```
/// use mcp_oauth_flow::device::parse_device_authorization_response;
/// let body = br#"{"device_code":"d","user_code":"WDJB-MJHT","verification_uri":"https://example.com/device","expires_in":1800}"#;
/// let auth = parse_device_authorization_response(http::StatusCode::OK, body)?;
/// assert_eq!(auth.user.user_code, "WDJB-MJHT");
/// assert_eq!(auth.interval.as_secs(), 5);
/// # Ok::<(), mcp_oauth_flow::Error>(())
/// ```
pub fn parse_device_authorization_response(
    status: http::StatusCode,
    body: &[u8],
) -> Result<DeviceAuthorization, Error> {
    let json: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(body).ok();
    let text = |name: &str| -> Option<String> {
        match json.as_ref()?.get(name)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    // A 5xx or 429 is the server's trouble whatever its body says, as at the token endpoint
    // (see `parse_token_response`): transient, whatever `error` it names.
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::new(
            ErrorKind::UnexpectedStatus,
            format!("device authorization endpoint answered {status}"),
        )
        .with_status(status));
    }
    if let Some(error) = text("error") {
        return Err(Error::new(
            ErrorKind::TokenRejected,
            format!("device authorization endpoint answered {status} with an error"),
        )
        .with_status(status)
        .with_oauth_error(OAuthErrorResponse {
            error,
            error_description: text("error_description"),
        }));
    }
    if !status.is_success() {
        return Err(Error::new(
            ErrorKind::TokenRejected,
            format!("device authorization endpoint answered {status}"),
        )
        .with_status(status));
    }
    if json.is_none() {
        return Err(invalid(
            "device authorization response is not a JSON object",
        ));
    }
    let seconds = |name: &str| -> Result<Option<Duration>, Error> {
        text(name)
            .map(|v| {
                v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                    invalid(format!(
                        "device authorization {name} {v:?} is not a whole number of seconds"
                    ))
                })
            })
            .transpose()
    };
    let required = |name: &str| {
        text(name).ok_or_else(|| invalid(format!("device authorization response has no {name}")))
    };
    let device_code = required("device_code")?;
    let user_code = required("user_code")?;
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| invalid("device authorization response has no verification_uri"))?;
    check_shown_uri(&verification_uri, "verification_uri")?;
    let verification_uri_complete = text("verification_uri_complete")
        .map(|uri| check_shown_uri(&uri, "verification_uri_complete").map(|()| uri))
        .transpose()?;
    let expires_in = seconds("expires_in")?
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid("device authorization response has no usable expires_in"))?
        .min(MAX_DEVICE_SECONDS);
    let interval = seconds("interval")?
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_INTERVAL)
        .min(MAX_DEVICE_SECONDS);
    Ok(DeviceAuthorization {
        device_code,
        user: UserCode {
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
        },
        interval,
    })
}

/// The URIs are shown to a person, never fetched by the client; they must at least be web
/// addresses, so a `javascript:` or `file:` link is never put in front of the user.
fn check_shown_uri(raw: &str, what: &str) -> Result<(), Error> {
    match Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => Ok(()),
        _ => Err(invalid(format!(
            "device authorization {what} is not a web address"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_auth::ClientAuthMethod;
    use http::header::CONTENT_TYPE;
    use http::StatusCode;

    /// A 5xx or 429 stays transient whatever error its body names.
    #[test]
    fn the_servers_trouble_is_transient_whatever_its_body_says() {
        let body = br#"{"error":"temporarily_unavailable"}"#;
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::BAD_GATEWAY,
        ] {
            let err = parse_device_authorization_response(status, body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedStatus, "{status}");
            assert!(err.is_transient(), "{status}");
        }
        let refused = parse_device_authorization_response(StatusCode::BAD_REQUEST, body);
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::TokenRejected);
    }

    fn public(client_id: &str) -> ClientCredentials {
        ClientCredentials {
            client_id: client_id.into(),
            client_secret: None,
            method: ClientAuthMethod::None,
            assertion: None,
        }
    }

    fn form(req: &http::Request<Bytes>) -> Vec<(String, String)> {
        url::form_urlencoded::parse(req.body())
            .into_owned()
            .collect()
    }

    /// §3.2 bounds neither number: a lifetime or interval of `u64::MAX` seconds is read as a
    /// day, and nothing after it overflows (the polls' side: `polling.rs`).
    #[test]
    fn absurd_lifetimes_and_intervals_are_read_as_a_day() {
        let body = br#"{"device_code":"d","user_code":"u","verification_uri":"https://as.example.com/device","expires_in":18446744073709551615,"interval":"18446744073709551615"}"#;
        let auth = parse_device_authorization_response(StatusCode::OK, body).unwrap();
        assert_eq!(auth.user.expires_in, MAX_DEVICE_SECONDS);
        assert_eq!(auth.interval, MAX_DEVICE_SECONDS);
        let _ends = std::time::SystemTime::now() + auth.user.expires_in;
    }

    /// §3.1: scope and client identity in a form POST; RFC 8707 `resource` alongside.
    #[test]
    fn request_carries_scope_resource_and_client() {
        let endpoint: Url = "https://as.example.com/device".parse().unwrap();
        let scopes = Scopes::parse("read write");
        let req = device_authorization_request(
            &endpoint,
            &public("cli"),
            Some(&scopes),
            Some("https://mcp.example.com/mcp"),
        )
        .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.uri(), "https://as.example.com/device");
        assert_eq!(
            req.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        let f = form(&req);
        assert!(f.contains(&("scope".into(), "read write".into())));
        assert!(f.contains(&("resource".into(), "https://mcp.example.com/mcp".into())));
        assert!(f.contains(&("client_id".into(), "cli".into())));
        assert!(!f.iter().any(|(k, _)| k == "grant_type"));
    }

    /// §3.1 through RFC 6749 §2.3.1: a confidential client authenticates with Basic.
    #[test]
    fn confidential_client_authenticates() {
        let endpoint: Url = "https://as.example.com/device".parse().unwrap();
        let client = ClientCredentials {
            client_id: "c".into(),
            client_secret: Some(oauth2::ClientSecret::new("s".into())),
            method: ClientAuthMethod::ClientSecretBasic,
            assertion: None,
        };
        let req = device_authorization_request(&endpoint, &client, None, None).unwrap();
        assert!(req.headers()[http::header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        assert!(form(&req).is_empty());
    }

    #[test]
    fn full_response_is_read() {
        let body = br#"{"device_code":"GmRh","user_code":"WDJB-MJHT",
            "verification_uri":"https://example.com/device",
            "verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT",
            "expires_in":"1800","interval":7}"#;
        let auth = parse_device_authorization_response(StatusCode::OK, body).unwrap();
        assert_eq!(auth.device_code, "GmRh");
        assert_eq!(auth.user.verification_uri, "https://example.com/device");
        assert_eq!(
            auth.user.verification_uri_complete.as_deref(),
            Some("https://example.com/device?user_code=WDJB-MJHT")
        );
        assert_eq!(auth.user.expires_in, Duration::from_secs(1800));
        assert_eq!(auth.interval, Duration::from_secs(7));
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains("GmRh") && !debug.contains("WDJB"),
            "{debug}"
        );
    }

    #[test]
    fn verification_url_is_read_as_verification_uri() {
        let body = br#"{"device_code":"d","user_code":"u","verification_url":"https://g.co/device","expires_in":60}"#;
        let auth = parse_device_authorization_response(StatusCode::OK, body).unwrap();
        assert_eq!(auth.user.verification_uri, "https://g.co/device");
    }

    /// §3.2: "If no value is provided, clients MUST use 5 as the default."
    #[test]
    fn interval_absent_or_zero_is_five_seconds() {
        for body in [
            &br#"{"device_code":"d","user_code":"u","verification_uri":"https://e.com/d","expires_in":60}"#[..],
            br#"{"device_code":"d","user_code":"u","verification_uri":"https://e.com/d","expires_in":60,"interval":0}"#,
        ] {
            let auth = parse_device_authorization_response(StatusCode::OK, body).unwrap();
            assert_eq!(auth.interval, DEFAULT_INTERVAL);
        }
    }

    #[test]
    fn missing_or_unusable_fields_are_refused() {
        for (body, missing) in [
            (&br#"{"user_code":"u","verification_uri":"https://e.com/d","expires_in":60}"#[..], "device_code"),
            (br#"{"device_code":"d","verification_uri":"https://e.com/d","expires_in":60}"#, "user_code"),
            (br#"{"device_code":"d","user_code":"u","expires_in":60}"#, "verification_uri"),
            (br#"{"device_code":"d","user_code":"u","verification_uri":"https://e.com/d"}"#, "expires_in"),
            (br#"{"device_code":"d","user_code":"u","verification_uri":"javascript:alert(1)","expires_in":60}"#, "verification_uri"),
            (br#"{"device_code":"d","user_code":"u","verification_uri":"https://e.com/d","expires_in":"soon"}"#, "expires_in"),
            (b"not json", "JSON"),
        ] {
            let err = parse_device_authorization_response(StatusCode::OK, body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidTokenResponse);
            assert!(err.message().contains(missing), "{missing}: {err}");
        }
    }

    #[test]
    fn error_responses_keep_the_server_code() {
        let err = parse_device_authorization_response(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_client","error_description":"unknown"}"#,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TokenRejected);
        assert_eq!(err.oauth_error().unwrap().error, "invalid_client");
        let err =
            parse_device_authorization_response(StatusCode::SERVICE_UNAVAILABLE, b"").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
        assert!(err.is_transient());
    }
}
