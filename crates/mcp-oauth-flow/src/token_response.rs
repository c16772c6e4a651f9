//! Tolerant token response parsing (RFC 6749 §5); the requests are
//! [`token_request`](crate::token_request).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::{AccessToken, RefreshToken};

use crate::error::{Error, ErrorKind, OAuthErrorResponse};
use crate::scope::Scopes;
use crate::token_set::{TokenSet, TokenType};

/// A successful token response, before it is bound to an issuer and client.
#[derive(Debug)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// The token type, `None` when the response named none. RFC 6749 §5.1 requires one, but
    /// servers omit it: a new grant reads that as `Bearer` (RFC 6750), a refresh as the type
    /// of the tokens refreshed ([`merge_refreshed`](crate::token::merge_refreshed)).
    pub token_type: Option<TokenType>,
    /// The refresh token, if issued.
    pub refresh_token: Option<RefreshToken>,
    /// The lifetime, if the server gave a usable one (`expires_in` of 0 is treated as unknown).
    pub expires_in: Option<Duration>,
    /// The granted scope, if the server said.
    pub scope: Option<Scopes>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidTokenResponse, msg)
}

/// Reads a token endpoint response, tolerating what real servers send:
///
/// - JSON, or `application/x-www-form-urlencoded` (GitHub without `Accept`);
/// - `expires_in` as a number or a string; 0, absent, negative or not a number means
///   "unknown" (the tokens are not thrown away for an optional member: the code is spent, and
///   a refresh's rotated refresh token is the only one left);
/// - `token_type` in any case; a missing one is `None` (see [`TokenResponse::token_type`]);
/// - an `error` member means an error response whatever the HTTP status (RFC 6749 §5.2 says 400,
///   GitHub answers 200).
///
/// ```
/// use mcp_oauth_flow::{token::parse_token_response, ErrorKind};
/// let ok = parse_token_response(http::StatusCode::OK, None, br#"{"access_token":"a","token_type":"bearer","expires_in":"3600"}"#).unwrap();
/// assert_eq!(ok.expires_in.unwrap().as_secs(), 3600);
/// let err = parse_token_response(http::StatusCode::OK, None, br#"{"error":"bad_verification_code"}"#).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TokenRejected);
/// ```
pub fn parse_token_response(
    status: http::StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<TokenResponse, Error> {
    let fields = read_fields(content_type, body);
    let get = |name: &str| -> Option<String> {
        fields.as_ref().ok().and_then(|f| {
            f.iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        })
    };
    // A 5xx or 429 is the server's trouble whatever the body says (RFC 6749 §5.2 answers a
    // refused request with 400, or 401): read before the body's `error`, so that no code in it
    // (`temporarily_unavailable`, `server_error`, even `invalid_grant` from a failing backend)
    // drops a credential. Transient: the same request may pass later.
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::new(
            ErrorKind::UnexpectedStatus,
            format!("token endpoint answered {status}"),
        )
        .with_status(status));
    }
    if let Some(error) = get("error").filter(|e| !e.is_empty()) {
        return Err(Error::new(
            ErrorKind::TokenRejected,
            format!("token endpoint answered {status} with an error"),
        )
        .with_status(status)
        .with_oauth_error(OAuthErrorResponse {
            error,
            error_description: get("error_description"),
        }));
    }
    if status.is_redirection() {
        return Err(crate::url_policy::redirect_not_followed(
            "token endpoint",
            status,
        ));
    }
    if !status.is_success() {
        return Err(Error::new(
            ErrorKind::TokenRejected,
            format!("token endpoint answered {status}"),
        )
        .with_status(status));
    }
    let fields = fields?;
    let get = |name: &str| -> Option<String> {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    };
    let access_token = get("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("token response has no access_token"))?;
    // RFC 6749 Appendix A.12: an access token is 1*VSCHAR (%x20-7E). One with other bytes (a
    // control character, a line break, non-ASCII) cannot go into an `Authorization` header as
    // issued: refused here, with a cause, rather than sent as no token at all.
    if !access_token.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(invalid(
            "token response's access_token holds characters outside RFC 6749's VSCHAR",
        ));
    }
    let token_type = match get("token_type") {
        None => None,
        Some(t) => Some(
            TokenType::from_wire(&t)
                .ok_or_else(|| invalid(format!("token_type {t:?} is not supported")))?,
        ),
    };
    let expires_in = match get("expires_in") {
        None => None,
        Some(v) => match v.trim().parse::<f64>() {
            // Fractions are rounded down; a year is a generous upper bound for a lifetime.
            Ok(secs) if secs.is_finite() && secs > 0.0 => {
                let secs = secs.min(365.0 * 24.0 * 3600.0) as u64;
                (secs > 0).then(|| Duration::from_secs(secs))
            }
            // RFC 6749 §5.1 makes `expires_in` optional: one that is no lifetime is read as
            // absent. Refusing the whole answer would lose tokens the server has issued (the
            // code is spent; a rotated refresh token is the only one left).
            _ => {
                tracing::debug!(
                    expires_in = %v.chars().take(32).collect::<String>(),
                    "expires_in is not a lifetime; read as unknown"
                );
                None
            }
        },
    };
    Ok(TokenResponse {
        access_token: AccessToken::new(access_token),
        token_type,
        refresh_token: get("refresh_token")
            .filter(|t| !t.is_empty())
            .map(RefreshToken::new),
        expires_in,
        // RFC 6749 §3.3: a scope is one or more tokens; an empty one says nothing (read as
        // absent: the scope requested, or a refresh's held one), rather than that the grant
        // holds none, which would make a step-up's union forget the scopes held.
        scope: get("scope")
            .map(|s| Scopes::parse(&s))
            .filter(|s| !s.is_empty()),
    })
}

type Fields = Vec<(String, Option<String>)>;

/// Flattens a JSON object or a form body into name/value pairs (JSON numbers and booleans as
/// text, `null` as absent).
fn read_fields(content_type: Option<&str>, body: &[u8]) -> Result<Fields, Error> {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim);
    let is_form =
        media.is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) => {
                return Ok(map
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => Some(s),
                            serde_json::Value::Null => None,
                            other => Some(other.to_string()),
                        };
                        (k, v)
                    })
                    .collect())
            }
            Ok(_) => return Err(invalid("token response is JSON but not an object")),
            Err(_) if content_type.is_some_and(|c| c.contains("json")) => {
                return Err(invalid("token response is not valid JSON"))
            }
            Err(_) => {}
        }
    }
    // Never a page as a form: an HTML page (a gateway's sign-in, a captive portal) with
    // `error=` in a link is no OAuth error, and read as one it would drop the tokens. Other
    // types are read as a form if they are one (`text/plain` from older servers, GitHub's
    // form without `Accept`).
    let markup = media.is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("html") || m.contains("xml")
    });
    if !is_form && markup {
        return Err(invalid(
            "token response is a page, neither JSON nor form-encoded",
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| invalid("token response is not UTF-8"))?;
    // Not declared a form, it must look like one: a form encodes spaces and never holds
    // markup, so a page sent as `text/plain` (or with no type) is no form either.
    if !is_form
        && text
            .trim()
            .contains(|c: char| c.is_whitespace() || c == '<')
    {
        return Err(invalid("token response is neither JSON nor form-encoded"));
    }
    if !text.contains('=') {
        return Err(invalid("token response is neither JSON nor form-encoded"));
    }
    Ok(url::form_urlencoded::parse(text.trim().as_bytes())
        .map(|(k, v)| (k.into_owned(), Some(v.into_owned())))
        .collect())
}

impl TokenSet {
    /// Binds a token response to where it came from. The expiry is made absolute against `now`;
    /// the scope is the granted one, else the requested one (RFC 6749 §5.1).
    pub fn from_response(
        response: TokenResponse,
        now: SystemTime,
        issuer: &str,
        client_id: &str,
        requested: Option<&Scopes>,
        resource: Option<&str>,
    ) -> Self {
        let expires_at = match response.expires_in {
            Some(d) => Some(now + d),
            // No usable `expires_in` (absent or 0, as Salesforce and others send): a JWT access
            // token's own `exp` is the next best thing. It is read, not verified: it only
            // decides when to refresh, never whether to trust the token.
            None => crate::jwt::jwt_expiry(response.access_token.secret())
                .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp)))
                .filter(|exp| *exp > now),
        };
        TokenSet::new(
            response.access_token.secret().clone(),
            response.token_type.unwrap_or(TokenType::Bearer),
            issuer,
            client_id,
        )
        .with_refresh_token(response.refresh_token)
        .with_expires_at(expires_at)
        .with_issued_at(Some(now))
        .with_scopes(response.scope.or_else(|| requested.cloned()))
        .with_resource(resource.map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    /// A redirect from the token endpoint is an error of its own, never a rejection of the
    /// grant (which would drop a refresh token) and never followed.
    #[test]
    fn a_refusal_with_control_characters_in_its_code_shows_none() {
        let body = br#"{"error":"invalid_grant\n\u001b[31mFAKE","error_description":"a\nb"}"#;
        let err = parse_token_response(
            http::StatusCode::BAD_REQUEST,
            Some("application/json"),
            body,
        )
        .unwrap_err();
        let shown = format!("{err} / {err:#}");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        // The code itself is kept whole for the caller to match on.
        assert_eq!(
            err.oauth_error().unwrap().error,
            "invalid_grant\n\u{1b}[31mFAKE"
        );
    }

    #[test]
    fn a_redirect_is_not_followed() {
        for status in [301, 302, 303, 307, 308] {
            let status = http::StatusCode::from_u16(status).unwrap();
            let err = parse_token_response(status, None, b"").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::RedirectLimit, "{status}");
            assert!(err.to_string().contains("not followed"), "{err}");
        }
    }
    use crate::jwt::jwt_expiry;

    /// A body the server declares JSON is read as JSON only: a form-looking body under a JSON
    /// content type is an error, not a second guess (RFC 6749 §5.1 names JSON).
    #[test]
    fn a_body_declared_json_is_not_read_as_a_form() {
        let form = b"access_token=at&token_type=bearer";
        let err = parse_token_response(http::StatusCode::OK, Some("application/json"), form)
            .expect_err("declared JSON");
        assert_eq!(err.kind(), ErrorKind::InvalidTokenResponse);
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        // Undeclared, the same body is read as a form (tolerant parsing).
        assert!(parse_token_response(http::StatusCode::OK, None, form).is_ok());
    }

    fn ok(body: &str) -> Result<TokenResponse, Error> {
        parse_token_response(
            http::StatusCode::OK,
            Some("application/json"),
            body.as_bytes(),
        )
    }

    #[test]
    fn tolerant_shapes() {
        // A lifetime is capped at one year; fractions are rounded down.
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(
            ok(r#"{"access_token":"a","expires_in":1e12}"#)
                .unwrap()
                .expires_in,
            Some(year)
        );
        assert_eq!(
            ok(r#"{"access_token":"a","expires_in":31536001}"#)
                .unwrap()
                .expires_in,
            Some(year)
        );
        assert_eq!(
            ok(r#"{"access_token":"a","expires_in":31535999.9}"#)
                .unwrap()
                .expires_in,
            Some(Duration::from_secs(31_535_999))
        );
        assert_eq!(
            ok(r#"{"access_token":"a","expires_in":0.5}"#)
                .unwrap()
                .expires_in,
            None
        );

        // No lifetime: read as absent (unknown), the tokens kept, the rotated refresh token
        // with them.
        for bad in [r#""soon""#, "-5", r#""""#, r#""-1""#] {
            let r = ok(&format!(
                r#"{{"access_token":"a","expires_in":{bad},"refresh_token":"r2"}}"#
            ))
            .unwrap();
            assert_eq!(r.expires_in, None, "{bad}");
            assert_eq!(r.refresh_token.unwrap().secret(), "r2");
        }

        // An empty scope says nothing: read as absent.
        for empty in [r#""""#, r#""  ""#] {
            let r = ok(&format!(r#"{{"access_token":"a","scope":{empty}}}"#)).unwrap();
            assert_eq!(r.scope, None, "{empty}");
        }
        let r = ok(r#"{"access_token":"a","token_type":"BEARER","expires_in":60,"refresh_token":"r","scope":"x y"}"#).unwrap();
        assert_eq!(r.token_type, Some(TokenType::Bearer));
        assert_eq!(r.expires_in, Some(Duration::from_secs(60)));
        assert_eq!(r.refresh_token.unwrap().secret(), "r");
        assert_eq!(r.scope.unwrap().to_string(), "x y");

        let r = ok(r#"{"access_token":"a","expires_in":"0"}"#).unwrap();
        assert_eq!(r.token_type, None);
        assert_eq!(r.expires_in, None);

        let r = ok(
            r#"{"access_token":"a","token_type":"Bearer","expires_in":59.9,"refresh_token":null}"#,
        )
        .unwrap();
        assert_eq!(r.expires_in, Some(Duration::from_secs(59)));
        assert!(r.refresh_token.is_none());

        let r = ok(r#"{"access_token":"a","token_type":"DPoP"}"#).unwrap();
        assert_eq!(r.token_type, Some(TokenType::DPoP));
    }

    #[test]
    fn form_encoded_responses() {
        let r = parse_token_response(
            http::StatusCode::OK,
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"access_token=gho_x&scope=repo&token_type=bearer",
        )
        .unwrap();
        assert_eq!(r.access_token.secret(), "gho_x");
        // Without a content type, a form body is still recognised.
        let r = parse_token_response(
            http::StatusCode::OK,
            None,
            b"access_token=a&token_type=bearer",
        )
        .unwrap();
        assert_eq!(r.access_token.secret(), "a");
        let err = parse_token_response(
            http::StatusCode::OK,
            Some("application/x-www-form-urlencoded"),
            b"error=bad_verification_code&error_description=The+code+is+incorrect",
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TokenRejected);
        assert_eq!(
            err.oauth_error().unwrap().error_description.as_deref(),
            Some("The code is incorrect")
        );
    }

    #[test]
    fn errors() {
        let e = |status: u16, body: &str| {
            parse_token_response(
                http::StatusCode::from_u16(status).unwrap(),
                Some("application/json"),
                body.as_bytes(),
            )
            .unwrap_err()
            .kind()
        };
        assert_eq!(
            e(200, r#"{"token_type":"Bearer"}"#),
            ErrorKind::InvalidTokenResponse
        );
        assert_eq!(
            e(200, r#"{"access_token":""}"#),
            ErrorKind::InvalidTokenResponse
        );
        assert_eq!(
            e(200, r#"{"access_token":"a","token_type":"mac"}"#),
            ErrorKind::InvalidTokenResponse
        );
        // Bytes no header can carry, and the ends of VSCHAR, which pass.
        for bad in [r#""a\nb""#, r#""a\u0000""#, r#""caf\u00e9""#, r#""\u007f""#] {
            let body = format!(r#"{{"access_token":{bad}}}"#);
            assert_eq!(e(200, &body), ErrorKind::InvalidTokenResponse, "{bad}");
        }
        let edges = ok(r#"{"access_token":" ~a"}"#).unwrap();
        assert_eq!(edges.access_token.secret(), " ~a");
        assert_eq!(e(200, r#"["a"]"#), ErrorKind::InvalidTokenResponse);
        assert_eq!(e(200, r#"{not json"#), ErrorKind::InvalidTokenResponse);
        assert_eq!(
            e(400, r#"{"error":"invalid_grant"}"#),
            ErrorKind::TokenRejected
        );
        assert_eq!(
            e(200, r#"{"error":"invalid_grant","access_token":"a"}"#),
            ErrorKind::TokenRejected
        );
        assert_eq!(e(503, "down"), ErrorKind::UnexpectedStatus);
        assert_eq!(e(429, ""), ErrorKind::UnexpectedStatus);
        assert_eq!(e(401, ""), ErrorKind::TokenRejected);
        assert_eq!(
            parse_token_response(http::StatusCode::OK, None, b"<html>")
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidTokenResponse
        );
        // A 5xx or 429 stays the server's trouble whatever `error` its body names, and carries
        // no OAuth error for a caller to read as a refusal.
        for (status, body) in [
            (503, r#"{"error":"temporarily_unavailable"}"#),
            (500, r#"{"error":"server_error"}"#),
            (502, r#"{"error":"invalid_grant"}"#),
            (429, r#"{"error":"slow_down"}"#),
        ] {
            let status = http::StatusCode::from_u16(status).unwrap();
            let err = parse_token_response(status, Some("application/json"), body.as_bytes())
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedStatus, "{body}");
            assert!(err.oauth_error().is_none(), "{body}");
        }
        // A page sent as text/plain, or with no type, is no form either.
        let page = b"Session expired. <a href=\"/login?next=1&error=session_expired\">sign in</a>";
        for content_type in [Some("text/plain"), None] {
            let err = parse_token_response(http::StatusCode::OK, content_type, page).unwrap_err();
            assert!(err.oauth_error().is_none(), "{content_type:?}");
        }
        // A form sent as text/plain (older servers) is still read.
        let plain = b"access_token=a&token_type=bearer";
        let ok = parse_token_response(http::StatusCode::OK, Some("text/plain"), plain).unwrap();
        assert_eq!(ok.access_token.secret(), "a");
        // An HTML page is no form, whatever links it holds.
        let page = b"<a href=\"/login?next=1&error=session_expired\">sign in</a>";
        let err = parse_token_response(http::StatusCode::OK, Some("text/html"), page).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidTokenResponse);
        assert!(err.oauth_error().is_none());
    }

    #[test]
    fn token_set_round_trips_with_absolute_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let r = ok(r#"{"access_token":"a","expires_in":60,"refresh_token":"r"}"#).unwrap();
        let set = TokenSet::from_response(
            r,
            now,
            "https://as",
            "c",
            Some(&Scopes::parse("s")),
            Some("https://rs"),
        );
        let json = serde_json::to_string(&set).unwrap();
        assert!(json.contains("\"expires_at\":1060"));
        let back: TokenSet = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(1060))
        );
        assert_eq!(back.scopes().unwrap().to_string(), "s");
        assert_eq!(back.refresh_token().unwrap().secret(), "r");
        let shown = format!("{back:?}");
        assert!(!shown.contains("\"a\"") && !shown.contains("\"r\""));
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn jwt_exp_fallback() {
        // {"alg":"none"} . {"exp":2000,"sub":"x"}
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":2000,"sub":"x"}"#);
        let jwt = format!("{header}.{payload}.sig");
        assert_eq!(jwt_expiry(&jwt), Some(2000));
        let resp = parse_token_response(
            http::StatusCode::OK,
            None,
            format!(r#"{{"access_token":"{jwt}","expires_in":0}}"#).as_bytes(),
        )
        .unwrap();
        let set = TokenSet::from_response(resp, t(1000), "i", "c", None, None);
        assert_eq!(set.expires_at(), Some(t(2000)));
        // An exp already past is ignored.
        let resp = parse_token_response(
            http::StatusCode::OK,
            None,
            format!(r#"{{"access_token":"{jwt}"}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(
            TokenSet::from_response(resp, t(3000), "i", "c", None, None).expires_at(),
            None
        );
        // An `exp` past what SystemTime holds is no expiry, not a panic.
        let huge = URL_SAFE_NO_PAD.encode(br#"{"exp":1e20}"#);
        let jwt = format!("{header}.{huge}.sig");
        let resp = parse_token_response(
            http::StatusCode::OK,
            None,
            format!(r#"{{"access_token":"{jwt}"}}"#).as_bytes(),
        )
        .unwrap();
        let set = TokenSet::from_response(resp, t(1000), "i", "c", None, None);
        assert_eq!(set.expires_at(), None);
        let stored: TokenSet = serde_json::from_str(r#"{"access_token":"a","token_type":"Bearer","issuer":"i","client_id":"c","expires_at":18446744073709551615}"#).unwrap();
        assert_eq!(stored.expires_at(), None);
        assert!(!stored.is_expired(t(1000), Duration::ZERO));
    }

    /// An `exp` of exactly `now` is already past: no expiry is better than an expired one.
    #[test]
    fn an_exp_of_exactly_now_is_no_expiry() {
        let at_now = format!(
            r#"{{"access_token":"{}"}}"#,
            format_args!(
                "{}.{}.sig",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(br#"{"exp":1000}"#)
            )
        );
        let resp = parse_token_response(http::StatusCode::OK, None, at_now.as_bytes()).unwrap();
        assert_eq!(
            TokenSet::from_response(resp, t(1000), "i", "c", None, None).expires_at(),
            None
        );
    }
}
