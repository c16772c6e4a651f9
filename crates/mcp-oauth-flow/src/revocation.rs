//! Token revocation (RFC 7009): which tokens to revoke and in what order, with which client
//! authentication, the request, and what its answer means.
//!
//! ```
//! use mcp_oauth_flow::revocation::RevokedToken;
//! assert_eq!(RevokedToken::Refresh.hint(), "refresh_token");
//! ```

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use oauth2::{AccessToken, RefreshToken};
use url::Url;

use crate::client_assertion::sign_for_server;
use crate::client_auth::{ClientAuthMethod, ClientCredentials};
use crate::config::ClientConfig;
use crate::error::{Error, ErrorKind, OAuthErrorResponse};
use crate::flow::held_rules;
use crate::metadata::AuthorizationServerMetadata;
use crate::registration::ClientRegistration;
use crate::token_set::TokenSet;

/// Which token a revocation is for: its RFC 7009 §2.1 `token_type_hint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokedToken {
    /// `refresh_token`.
    Refresh,
    /// `access_token`.
    Access,
}

impl RevokedToken {
    /// The `token_type_hint` value.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Refresh => "refresh_token",
            Self::Access => "access_token",
        }
    }
}

/// A token to revoke. `Debug` never shows it.
#[derive(Clone, Debug)]
pub enum TokenToRevoke {
    /// A refresh token.
    Refresh(RefreshToken),
    /// An access token.
    Access(AccessToken),
}

impl TokenToRevoke {
    /// Which kind of token it is.
    pub fn kind(&self) -> RevokedToken {
        match self {
            Self::Refresh(_) => RevokedToken::Refresh,
            Self::Access(_) => RevokedToken::Access,
        }
    }

    fn secret(&self) -> &str {
        match self {
            Self::Refresh(t) => t.secret(),
            Self::Access(t) => t.secret(),
        }
    }
}

/// The tokens of `tokens` to revoke, in order: the refresh token first, so that no new access
/// token can be minted from it while the access token is revoked (RFC 7009 §2.1: revoking a
/// refresh token may revoke the access tokens of the same grant too, but need not), then the
/// access token.
///
/// ```
/// use mcp_oauth_flow::{revocation::{revocation_order, RevokedToken}, secrets::RefreshToken, token::{TokenSet, TokenType}};
/// let tokens = TokenSet::new("at", TokenType::Bearer, "https://as", "c")
///     .with_refresh_token(Some(RefreshToken::new("rt".into())));
/// let kinds: Vec<_> = revocation_order(&tokens).iter().map(|t| t.kind()).collect();
/// assert_eq!(kinds, [RevokedToken::Refresh, RevokedToken::Access]);
/// ```
pub fn revocation_order(tokens: &TokenSet) -> Vec<TokenToRevoke> {
    let mut out = Vec::with_capacity(2);
    if let Some(refresh) = tokens.refresh_token() {
        out.push(TokenToRevoke::Refresh(refresh.clone()));
    }
    out.push(TokenToRevoke::Access(tokens.access_token().clone()));
    out
}

/// The client that revokes `tokens`: the one they were issued to, authenticated as for a
/// refresh (RFC 7009 §2.1: "the client also includes its authentication credentials as
/// described in Section 2.3. of \[RFC6749\]"): a pre-registered client of that identifier and
/// issuer (a fresh assertion dated `now` with `jti` when it signs one), else a public client
/// (method `none`, or the client ID metadata document), else the `stored` registration of that
/// issuer and identifier. `None` when none of them is the tokens' client; an error when the
/// client's key cannot sign (an external signer that fails).
///
/// An assertion is for one request (RFC 7523 §3: a `jti` is used once): call this for each
/// revocation request, with a fresh `jti`. It is signed as the token endpoint's would be
/// (`meta`, the issuer's metadata: its token endpoint for a key that addresses it, and the
/// algorithms it accepts).
pub fn revocation_client(
    config: &ClientConfig,
    tokens: &TokenSet,
    stored: Option<&ClientRegistration>,
    meta: Option<&AuthorizationServerMetadata>,
    now: SystemTime,
    jti: &str,
) -> Result<Option<ClientCredentials>, Error> {
    if let Some(client) = held_rules::refresh_pre_registered(&config.pre_registered, tokens) {
        let method = held_rules::refresh_auth_method(
            tokens.client_auth(),
            client.auth_method.map(ClientAuthMethod::as_str),
            client.client_secret.is_some(),
            client.key.is_some(),
        );
        let assertion = client
            .key
            .as_ref()
            .filter(|_| method == ClientAuthMethod::PrivateKeyJwt)
            .map(|key| {
                let token_endpoint = meta
                    .and_then(|m| m.token_endpoint.as_deref())
                    .or(tokens.token_endpoint())
                    .unwrap_or_default();
                let algs = meta.and_then(|m| {
                    m.token_endpoint_auth_signing_alg_values_supported
                        .as_deref()
                });
                sign_for_server(
                    key,
                    &client.client_id,
                    tokens.issuer(),
                    token_endpoint,
                    algs,
                    now,
                    jti,
                )
            })
            .transpose()?;
        return Ok(Some(ClientCredentials {
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.clone(),
            method,
            assertion,
        }));
    }
    if held_rules::refreshes_as_public(tokens, config.client_metadata_document.as_deref()) {
        return Ok(Some(ClientCredentials {
            client_id: tokens.client_id().to_owned(),
            client_secret: None,
            method: ClientAuthMethod::None,
            assertion: None,
        }));
    }
    let Some(reg) = stored.filter(|reg| held_rules::refresh_client_usable(reg, tokens)) else {
        return Ok(None);
    };
    Ok(Some(ClientCredentials {
        client_id: reg.client_id.clone(),
        client_secret: reg.client_secret.clone(),
        method: held_rules::refresh_auth_method(
            tokens.client_auth(),
            reg.token_endpoint_auth_method.as_deref(),
            reg.client_secret.is_some(),
            false,
        ),
        assertion: None,
    }))
}

/// The revocation request (RFC 7009 §2.1): a form-encoded POST of `token` and its
/// `token_type_hint`, with the client's authentication.
///
/// ```
/// use mcp_oauth_flow::{client::{ClientAuthMethod, ClientCredentials}, revocation::{revocation_request, TokenToRevoke}, secrets::AccessToken};
/// let client = ClientCredentials { client_id: "c".into(), client_secret: None, method: ClientAuthMethod::None, assertion: None };
/// let endpoint = "https://as.example.com/revoke".parse().unwrap();
/// let request = revocation_request(&endpoint, &TokenToRevoke::Access(AccessToken::new("at".into())), &client).unwrap();
/// assert_eq!(request.body(), "token=at&token_type_hint=access_token&client_id=c");
/// ```
pub fn revocation_request(
    endpoint: &Url,
    token: &TokenToRevoke,
    client: &ClientCredentials,
) -> Result<http::Request<Bytes>, Error> {
    let mut form: Vec<(&'static str, String)> = vec![
        ("token", token.secret().to_owned()),
        ("token_type_hint", token.kind().hint().to_owned()),
    ];
    let mut headers = http::HeaderMap::new();
    client.apply(&mut form, &mut headers);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let mut request = http::Request::post(endpoint.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(Bytes::from(body))
        .map_err(|e| crate::url_policy::unusable_url(endpoint.as_str(), e))?;
    request.headers_mut().extend(headers);
    Ok(request)
}

/// What the revocation endpoint's answer means (RFC 7009 §2.2): `200` is success, also for a
/// token the server no longer knows ("invalid tokens do not cause an error response"), and so
/// is `204` (the same answer without a body, which some servers send; RFC 9110 §15.3.5); a
/// `202` (accepted, not done) is not; a `503`
/// (§2.2.1: "the client must assume the token still exists and may retry"), another `5xx` or a
/// `429` may pass ([`ErrorKind::UnexpectedStatus`], transient); any other answer is a refusal
/// ([`ErrorKind::RevocationRefused`], with the OAuth error when the body carries one).
///
/// ```
/// use mcp_oauth_flow::{revocation::check_revocation_response, ErrorKind};
/// assert!(check_revocation_response(http::StatusCode::OK, b"").is_ok());
/// let refused = check_revocation_response(http::StatusCode::BAD_REQUEST, br#"{"error":"unsupported_token_type"}"#).unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::RevocationRefused);
/// assert_eq!(refused.oauth_error().unwrap().error, "unsupported_token_type");
/// ```
pub fn check_revocation_response(status: http::StatusCode, body: &[u8]) -> Result<(), Error> {
    if matches!(status, http::StatusCode::OK | http::StatusCode::NO_CONTENT) {
        return Ok(());
    }
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::new(
            ErrorKind::UnexpectedStatus,
            format!("revocation endpoint answered {status}; the token may still be valid"),
        )
        .with_status(status));
    }
    let error = Error::new(
        ErrorKind::RevocationRefused,
        format!("revocation endpoint answered {status}"),
    )
    .with_status(status);
    #[derive(serde::Deserialize)]
    struct Wire {
        error: String,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<Wire>(body) {
        Ok(wire) => Err(error.with_oauth_error(OAuthErrorResponse {
            error: wire.error,
            error_description: wire.error_description,
        })),
        Err(_) => Err(error),
    }
}

/// How many times one revocation is sent again after a `503` or `429`
/// ([`revocation_retry_delay`]).
pub const REVOCATION_RETRIES: u32 = 2;

/// The longest wait a revocation's retry honours: a logout runs while its user waits, and a
/// server asking for longer is left to the token's own expiry.
pub const MAX_REVOCATION_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Whether, and after how long, a revocation answered `status` is sent again, after
/// `retries_done` retries of it (a pure rule).
///
/// RFC 7009 §2.2.1: after a `503` "the client must assume the token still exists and may
/// retry after a reasonable delay"; a `429` asks the same (RFC 6585 §4). Given up on, the
/// token stays valid at the server, and a logout has already forgotten it: there is no later
/// chance. So: up to [`REVOCATION_RETRIES`] retries, each after the `Retry-After` the server
/// asked for in seconds (RFC 9110 §10.2.3), one second when it named none; never sooner than
/// asked, so not at all when it asked for more than [`MAX_REVOCATION_RETRY_DELAY`] or gave a
/// date. Any other answer is final.
///
/// ```
/// use std::time::Duration;
/// use http::{HeaderValue, StatusCode};
/// use mcp_oauth_flow::revocation::revocation_retry_delay;
/// let two = HeaderValue::from_static("2");
/// assert_eq!(revocation_retry_delay(StatusCode::SERVICE_UNAVAILABLE, Some(&two), 0), Some(Duration::from_secs(2)));
/// assert_eq!(revocation_retry_delay(StatusCode::TOO_MANY_REQUESTS, None, 1), Some(Duration::from_secs(1)));
/// assert_eq!(revocation_retry_delay(StatusCode::SERVICE_UNAVAILABLE, None, 2), None);
/// assert_eq!(revocation_retry_delay(StatusCode::BAD_GATEWAY, None, 0), None);
/// ```
pub fn revocation_retry_delay(
    status: http::StatusCode,
    retry_after: Option<&http::HeaderValue>,
    retries_done: u32,
) -> Option<Duration> {
    let retried = matches!(
        status,
        http::StatusCode::SERVICE_UNAVAILABLE | http::StatusCode::TOO_MANY_REQUESTS
    );
    if !retried || retries_done >= REVOCATION_RETRIES {
        return None;
    }
    let delay = match retry_after {
        None => Duration::from_secs(1),
        // delta-seconds = 1*DIGIT; an HTTP-date (or anything else) names no wait we can honour
        // within a logout.
        Some(value) => {
            let text = value.to_str().ok()?.trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Duration::from_secs(text.parse().unwrap_or(u64::MAX))
        }
    };
    (delay <= MAX_REVOCATION_RETRY_DELAY).then_some(delay)
}

/// Why a revocation cannot be attempted: the authorization server publishes no
/// `revocation_endpoint` (RFC 8414 §2), so the tokens stay valid at the server until they
/// expire or the user revokes them there.
pub fn no_revocation_endpoint(issuer: &str) -> Error {
    Error::new(
        ErrorKind::RevocationUnsupported,
        format!(
            "authorization server {issuer} publishes no revocation_endpoint; the tokens stay valid \
             there until they expire or are revoked in its own interface"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use oauth2::ClientSecret;

    use super::*;
    use crate::registration::PreRegisteredClient;
    use crate::token_set::TokenType;

    const AS: &str = "https://as.example.com";

    fn tokens(client: &str, auth: Option<ClientAuthMethod>) -> TokenSet {
        TokenSet::new("at", TokenType::Bearer, AS, client)
            .with_token_endpoint(Some(format!("{AS}/token")), auth)
    }

    fn registration(client: &str, secret: Option<&str>) -> ClientRegistration {
        serde_json::from_value(serde_json::json!({
            "issuer": AS,
            "client_id": client,
            "client_secret": secret,
            "token_endpoint_auth_method": secret.map(|_| "client_secret_post"),
            "redirect_uris": [],
        }))
        .unwrap()
    }

    #[test]
    fn a_revocation_is_retried_only_after_503_or_429_and_never_sooner_than_asked() {
        use http::{HeaderValue, StatusCode};
        let after = |text: &'static str| HeaderValue::from_static(text);
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        for status in [unavailable, StatusCode::TOO_MANY_REQUESTS] {
            assert_eq!(
                revocation_retry_delay(status, None, 0),
                Some(Duration::from_secs(1))
            );
            for (asked, delay) in [("0", 0), ("5", 5), (" 3 ", 3), ("005", 5)] {
                assert_eq!(
                    revocation_retry_delay(status, Some(&after(asked)), 1),
                    Some(Duration::from_secs(delay)),
                    "{asked:?}"
                );
            }
            // Longer than a logout waits, a date, nonsense, a number past u64: no retry.
            for asked in [
                "6",
                "Wed, 21 Oct 2026 07:28:00 GMT",
                "-1",
                "1.5",
                "",
                "99999999999999999999999",
            ] {
                assert_eq!(
                    revocation_retry_delay(status, Some(&after(asked)), 0),
                    None,
                    "{asked:?}"
                );
            }
            assert_eq!(
                revocation_retry_delay(status, None, REVOCATION_RETRIES),
                None
            );
        }
        for status in [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
        ] {
            assert_eq!(revocation_retry_delay(status, None, 0), None, "{status}");
        }
    }

    #[test]
    fn only_the_access_token_without_a_refresh_token() {
        let order = revocation_order(&tokens("c", None));
        assert_eq!(order.len(), 1);
        assert_eq!(order[0].kind(), RevokedToken::Access);
        assert!(!format!("{order:?}").contains("\"at\""));
    }

    #[test]
    fn the_client_is_the_one_the_tokens_were_issued_to() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let config = ClientConfig::new("http://127.0.0.1:1/cb").pre_registered(
            PreRegisteredClient::new("pre")
                .with_secret("s")
                .for_issuer(AS),
        );
        let pre = revocation_client(&config, &tokens("pre", None), None, None, now, "j")
            .unwrap()
            .unwrap();
        assert_eq!(pre.client_id, "pre");
        assert_eq!(
            pre.client_secret
                .as_ref()
                .map(ClientSecret::secret)
                .map(String::as_str),
            Some("s")
        );

        let public = tokens("dyn", Some(ClientAuthMethod::None));
        let creds = revocation_client(&config, &public, None, None, now, "j")
            .unwrap()
            .unwrap();
        assert_eq!(
            (creds.client_id.as_str(), creds.method),
            ("dyn", ClientAuthMethod::None)
        );

        // A confidential registered client needs its stored registration, and the right one.
        let confidential = tokens("dyn", Some(ClientAuthMethod::ClientSecretPost));
        assert!(
            revocation_client(&config, &confidential, None, None, now, "j")
                .unwrap()
                .is_none()
        );
        let other = registration("someone-else", Some("x"));
        assert!(
            revocation_client(&config, &confidential, Some(&other), None, now, "j")
                .unwrap()
                .is_none()
        );
        let mine = registration("dyn", Some("x"));
        let creds = revocation_client(&config, &confidential, Some(&mine), None, now, "j")
            .unwrap()
            .unwrap();
        assert_eq!(creds.method, ClientAuthMethod::ClientSecretPost);
        assert_eq!(creds.client_secret.unwrap().secret(), "x");
    }

    #[test]
    fn the_request_is_form_encoded_with_the_hint_and_client_authentication() {
        let endpoint = Url::parse("https://as.example.com/revoke").unwrap();
        let client = ClientCredentials {
            client_id: "c".into(),
            client_secret: Some(ClientSecret::new("s".into())),
            method: ClientAuthMethod::ClientSecretBasic,
            assertion: None,
        };
        let token = TokenToRevoke::Refresh(RefreshToken::new("r t".into()));
        let request = revocation_request(&endpoint, &token, &client).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "https://as.example.com/revoke");
        assert_eq!(request.body(), "token=r+t&token_type_hint=refresh_token");
        assert_eq!(
            request.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert!(request.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
    }

    #[test]
    fn answers_success_transient_and_refused() {
        use http::StatusCode;
        assert!(check_revocation_response(StatusCode::OK, b"{}").is_ok());
        assert!(check_revocation_response(StatusCode::NO_CONTENT, b"").is_ok());
        // Accepted is not done: the token may still be valid.
        assert_eq!(
            check_revocation_response(StatusCode::ACCEPTED, b"")
                .unwrap_err()
                .kind(),
            ErrorKind::RevocationRefused
        );
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
        ] {
            let e = check_revocation_response(status, b"").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnexpectedStatus);
            assert!(e.is_transient());
        }
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::NOT_FOUND,
        ] {
            let e = check_revocation_response(status, b"not json").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RevocationRefused);
            assert!(e.oauth_error().is_none());
            assert!(!e.is_transient());
        }
        let e = check_revocation_response(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_client","error_description":"who?"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.oauth_error().unwrap().error_description.as_deref(),
            Some("who?")
        );
        let none = no_revocation_endpoint(AS);
        assert_eq!(none.kind(), ErrorKind::RevocationUnsupported);
        assert!(none.to_string().contains(AS));
    }
}
