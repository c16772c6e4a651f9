//! Refresh (RFC 6749 §6): when to refresh, how to merge the answer, and which failures are
//! final.

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};
use crate::token_response::TokenResponse;
use crate::token_set::TokenSet;

/// When to refresh ahead of expiry.
///
/// ```
/// use std::time::Duration;
/// use mcp_oauth_flow::token::RefreshPolicy;
/// let policy = RefreshPolicy::default().skew(Duration::from_secs(30));
/// assert_eq!(policy.skew, Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RefreshPolicy {
    /// How long before expiry to refresh. Default: 60 s.
    pub skew: Duration,
    /// The skew never exceeds this fraction of the token's lifetime, so a short-lived token is
    /// not refreshed on every call. Default: 0.1.
    pub max_lifetime_fraction: f64,
    /// Up to this fraction of the skew is taken off at random, so a fleet that got its tokens at
    /// the same moment does not refresh at the same moment. Default: 0.2.
    pub jitter: f64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            skew: Duration::from_secs(60),
            max_lifetime_fraction: 0.1,
            jitter: 0.2,
        }
    }
}

impl RefreshPolicy {
    /// Sets [`skew`](Self::skew).
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Sets [`max_lifetime_fraction`](Self::max_lifetime_fraction) (clamped to 0..=1; not a
    /// number, the default).
    pub fn max_lifetime_fraction(mut self, fraction: f64) -> Self {
        self.max_lifetime_fraction = fraction_or(fraction, Self::default().max_lifetime_fraction);
        self
    }

    /// Sets [`jitter`](Self::jitter) (clamped to 0..=1; not a number, the default).
    ///
    /// ```
    /// use mcp_oauth_flow::token::RefreshPolicy;
    /// assert_eq!(RefreshPolicy::default().jitter(7.0).jitter, 1.0);
    /// assert_eq!(RefreshPolicy::default().jitter(f64::NAN).jitter, 0.2);
    /// ```
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = fraction_or(jitter, Self::default().jitter);
        self
    }

    /// The moment to refresh `tokens`: `expires_at - skew`, where the skew is at most
    /// `max_lifetime_fraction` of the lifetime and is shortened by up to `jitter` of itself
    /// according to `sample` (a random number in `0..1`, passed in to keep this pure). `None`
    /// when the expiry is unknown.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use mcp_oauth_flow::token::{RefreshPolicy, TokenSet, TokenType};
    /// let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
    /// let short = TokenSet::new("a", TokenType::Bearer, "i", "c")
    ///     .with_issued_at(Some(t0))
    ///     .with_expires_at(Some(t0 + Duration::from_secs(20)));
    /// // 20 s of life: the 60 s default skew shrinks to 2 s.
    /// assert_eq!(RefreshPolicy::default().jitter(0.0).refresh_at(&short, 0.5), Some(t0 + Duration::from_secs(18)));
    /// ```
    pub fn refresh_at(&self, tokens: &TokenSet, sample: f64) -> Option<SystemTime> {
        let expires_at = tokens.expires_at()?;
        let issued_at = tokens.issued_at().unwrap_or(expires_at);
        let lifetime = expires_at.duration_since(issued_at).unwrap_or_default();
        // The fields are public: a NaN set there (or sampled) would make `mul_f64` panic on
        // every request.
        let defaults = Self::default();
        let fraction = fraction_or(self.max_lifetime_fraction, defaults.max_lifetime_fraction);
        let cap = lifetime.mul_f64(fraction);
        let skew = self.skew.min(cap);
        let jitter = fraction_or(self.jitter, defaults.jitter) * fraction_or(sample, 0.0);
        let skew = skew.mul_f64(1.0 - jitter);
        Some(expires_at.checked_sub(skew).unwrap_or(expires_at))
    }
}

/// `x` clamped to `0..=1`, or `default` when it is not a number (`f64::clamp` keeps a NaN).
fn fraction_or(x: f64, default: f64) -> f64 {
    if x.is_nan() {
        default
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Builds the token set after a refresh: the new access token, the old refresh token when the
/// server did not rotate it, the old scope when the server did not restate it (RFC 6749 §6),
/// the old token type when the server named none, and everything about where the tokens come
/// from carried over.
///
/// The type: RFC 6749 §5.1 requires `token_type`, but a refresh answer without one is common,
/// and read as `Bearer` it would send a DPoP-bound token (RFC 9449 §5 keeps a refreshed token
/// bound to the proof's key) under the wrong scheme, refused on every request.
pub fn merge_refreshed(old: &TokenSet, mut response: TokenResponse, now: SystemTime) -> TokenSet {
    response.token_type = response.token_type.or(Some(old.token_type()));
    let refresh_token = response
        .refresh_token
        .clone()
        .or_else(|| old.refresh_token().cloned());
    let scope = response.scope.clone().or_else(|| old.scopes().cloned());
    let fresh = TokenSet::from_response(
        response,
        now,
        old.issuer(),
        old.client_id(),
        scope.as_ref(),
        old.resource(),
    );
    fresh
        .with_refresh_token(refresh_token)
        .with_token_endpoint(old.token_endpoint().map(str::to_owned), old.client_auth())
        // RFC 9449 §5: a refresh answers a proof of the same key, so the new tokens stay bound.
        .with_dpop_key(old.dpop_key().cloned())
}

/// What a failed refresh means for the credentials held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshFailure {
    /// The grant is gone (`invalid_grant`, RFC 6749 §5.2): drop the tokens and authorize again.
    GrantRejected,
    /// The client is unknown or its credentials are wrong (an explicit `invalid_client`): drop
    /// the tokens and, if the client was registered dynamically, the registration too.
    ClientRejected,
    /// A network error, a 5xx, a 429, or anything else that may pass: keep every credential.
    Transient,
}

/// Classifies a refresh error (a pure rule; see [`RefreshFailure`]).
///
/// ```
/// use mcp_oauth_flow::{token::{classify_refresh_failure, RefreshFailure}, Error, ErrorKind, OAuthErrorResponse};
/// let rejected = Error::new(ErrorKind::TokenRejected, "no").with_oauth_error(OAuthErrorResponse {
///     error: "invalid_grant".into(), error_description: None });
/// assert_eq!(classify_refresh_failure(&rejected), RefreshFailure::GrantRejected);
/// let down = Error::new(ErrorKind::UnexpectedStatus, "503");
/// assert_eq!(classify_refresh_failure(&down), RefreshFailure::Transient);
/// ```
pub fn classify_refresh_failure(error: &Error) -> RefreshFailure {
    // RFC 6749 §5.2 answers a refused request with 400 (401 for the client's authentication):
    // a 5xx or a 429 is the server's own trouble whatever its body says (Entra's
    // `temporarily_unavailable`, a `server_error` on a database fault, a vendor's code on a
    // rate limit), so nothing it says drops a credential.
    if error
        .status()
        .is_some_and(|s| s.is_server_error() || s == http::StatusCode::TOO_MANY_REQUESTS)
    {
        return RefreshFailure::Transient;
    }
    match error.oauth_error().map(|o| o.error.as_str()) {
        Some("invalid_grant") => RefreshFailure::GrantRejected,
        // RFC 9449 §8 (`use_dpop_nonce`: send the proof again with the nonce) and §5
        // (`invalid_dpop_proof`: the proof, not the grant, was refused): a nonce retry that
        // did not happen (a proxy dropped `DPoP-Nonce`, another status than 400) or a proof
        // the server could not check says nothing of the refresh token, which is kept.
        Some("use_dpop_nonce" | "invalid_dpop_proof") => RefreshFailure::Transient,
        // Only `invalid_client` says the client itself is unknown or badly authenticated.
        Some("invalid_client") => RefreshFailure::ClientRejected,
        // `unauthorized_client`: the client is known, and may not use this grant (§5.2); its
        // registration still serves a new authorization. A bare 401 (no error code: a proxy's
        // page as likely as the client's authentication) is read the same way: the tokens go,
        // the registration stays; a client that is really refused hears `invalid_client` (or a
        // 401 challenging its authentication) at the code exchange, which drops it.
        Some("unauthorized_client") => RefreshFailure::GrantRejected,
        _ if error.kind() == ErrorKind::TokenRejected
            && error
                .status()
                .is_some_and(|s| s == http::StatusCode::UNAUTHORIZED) =>
        {
            RefreshFailure::GrantRejected
        }
        _ if error.kind() == ErrorKind::TokenRejected && error.oauth_error().is_some() => {
            // invalid_request, invalid_scope, unsupported_grant_type: the refresh cannot work
            // as asked; authorizing again is the way forward.
            RefreshFailure::GrantRejected
        }
        _ => RefreshFailure::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OAuthErrorResponse;
    use crate::scope::Scopes;
    use crate::token_response::parse_token_response;
    use crate::token_set::TokenType;
    use std::time::UNIX_EPOCH;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn tokens(issued: u64, expires: u64) -> TokenSet {
        TokenSet::new("a", TokenType::Bearer, "i", "c")
            .with_issued_at(Some(t(issued)))
            .with_expires_at(Some(t(expires)))
    }

    #[test]
    fn skew_is_capped_by_lifetime_fraction() {
        let p = RefreshPolicy::default().jitter(0.0);
        assert_eq!(p.refresh_at(&tokens(0, 3600), 0.0), Some(t(3540)));
        assert_eq!(p.refresh_at(&tokens(0, 20), 0.0), Some(t(18)));
        assert_eq!(p.refresh_at(&tokens(0, 0), 0.0), Some(t(0)));
        let unknown = TokenSet::new("a", TokenType::Bearer, "i", "c");
        assert_eq!(p.refresh_at(&unknown, 0.0), None);
    }

    /// A policy whose public fields hold a NaN (set directly, or parsed from a setting) reads
    /// them as the defaults: `Duration::mul_f64` would panic on every request.
    #[test]
    fn a_nan_in_the_policy_reads_as_the_default() {
        let tokens = tokens(0, 3600);
        let policy = RefreshPolicy {
            jitter: f64::NAN,
            max_lifetime_fraction: f64::NAN,
            ..RefreshPolicy::default()
        };
        let default = RefreshPolicy::default().refresh_at(&tokens, 0.5);
        assert_eq!(policy.refresh_at(&tokens, 0.5), default);
        let set = RefreshPolicy::default()
            .jitter(f64::NAN)
            .max_lifetime_fraction(f64::NAN);
        assert_eq!(set, RefreshPolicy::default());
        // A NaN sample takes nothing off the skew.
        let no_jitter = RefreshPolicy::default()
            .jitter(0.0)
            .refresh_at(&tokens, 0.5);
        assert_eq!(
            RefreshPolicy::default().refresh_at(&tokens, f64::NAN),
            no_jitter
        );
    }

    #[test]
    fn jitter_only_shortens_the_skew() {
        // The setters keep what they are given, clamped to 0..=1.
        let set = RefreshPolicy::default()
            .jitter(0.5)
            .max_lifetime_fraction(0.25);
        assert_eq!((set.jitter, set.max_lifetime_fraction), (0.5, 0.25));
        let clamped = RefreshPolicy::default()
            .jitter(2.0)
            .max_lifetime_fraction(-1.0);
        assert_eq!((clamped.jitter, clamped.max_lifetime_fraction), (1.0, 0.0));

        let p = RefreshPolicy::default();
        let early = p.refresh_at(&tokens(0, 3600), 0.0).unwrap();
        let late = p.refresh_at(&tokens(0, 3600), 0.999).unwrap();
        assert_eq!(early, t(3540));
        assert!(late > early && late < t(3600));
        assert!(late >= t(3540 + 11));
    }

    #[test]
    fn merge_keeps_refresh_token_and_scope_when_omitted() {
        let old = tokens(0, 60)
            .with_refresh_token(Some(oauth2::RefreshToken::new("rt-old".into())))
            .with_scopes(Some(Scopes::parse("a b")))
            .with_resource(Some("https://rs".into()))
            .with_token_endpoint(Some("https://as/token".into()), None);
        let resp = parse_token_response(
            http::StatusCode::OK,
            None,
            br#"{"access_token":"new","expires_in":60}"#,
        )
        .unwrap();
        let merged = merge_refreshed(&old, resp, t(100));
        assert_eq!(merged.access_token().secret(), "new");
        assert_eq!(merged.refresh_token().unwrap().secret(), "rt-old");
        assert_eq!(merged.scopes().unwrap().to_string(), "a b");
        assert_eq!(merged.resource(), Some("https://rs"));
        assert_eq!(merged.token_endpoint(), Some("https://as/token"));
        assert_eq!(merged.expires_at(), Some(t(160)));
        assert_eq!(merged.issued_at(), Some(t(100)));

        let rotated = parse_token_response(
            http::StatusCode::OK,
            None,
            br#"{"access_token":"n2","refresh_token":"rt-new","scope":"a"}"#,
        )
        .unwrap();
        let merged = merge_refreshed(&old, rotated, t(100));
        assert_eq!(merged.refresh_token().unwrap().secret(), "rt-new");
        assert_eq!(merged.scopes().unwrap().to_string(), "a");
    }

    /// A refresh answer naming no `token_type` keeps the held type: DPoP-bound tokens stay
    /// DPoP (sent as `Bearer`, every request would be refused). A type the answer names wins.
    #[test]
    fn merge_keeps_the_token_type_when_the_answer_names_none() {
        let answer = |body: &[u8]| parse_token_response(http::StatusCode::OK, None, body).unwrap();
        let bound = TokenSet::new("a", TokenType::DPoP, "i", "c");
        let untyped = merge_refreshed(&bound, answer(br#"{"access_token":"n"}"#), t(1));
        assert_eq!(untyped.token_type(), TokenType::DPoP);
        assert!(untyped
            .authorization_value()
            .to_str()
            .unwrap()
            .starts_with("DPoP "));
        let typed = br#"{"access_token":"n","token_type":"bearer"}"#;
        assert_eq!(
            merge_refreshed(&bound, answer(typed), t(1)).token_type(),
            TokenType::Bearer
        );
        let bearer = TokenSet::new("a", TokenType::Bearer, "i", "c");
        let dpop = br#"{"access_token":"n","token_type":"DPoP"}"#;
        assert_eq!(
            merge_refreshed(&bearer, answer(dpop), t(1)).token_type(),
            TokenType::DPoP
        );
        assert_eq!(
            merge_refreshed(&bearer, answer(br#"{"access_token":"n"}"#), t(1)).token_type(),
            TokenType::Bearer
        );
    }

    #[test]
    fn failure_classes() {
        let oauth = |code: &str| {
            Error::new(ErrorKind::TokenRejected, "x").with_oauth_error(OAuthErrorResponse {
                error: code.into(),
                error_description: None,
            })
        };
        assert_eq!(
            classify_refresh_failure(&oauth("invalid_grant")),
            RefreshFailure::GrantRejected
        );
        assert_eq!(
            classify_refresh_failure(&oauth("invalid_client")),
            RefreshFailure::ClientRejected
        );
        assert_eq!(
            classify_refresh_failure(&oauth("invalid_scope")),
            RefreshFailure::GrantRejected
        );
        // A DPoP proof refused, or a nonce asked for and not retried: the grant stands.
        for code in ["use_dpop_nonce", "invalid_dpop_proof"] {
            assert_eq!(
                classify_refresh_failure(&oauth(code)),
                RefreshFailure::Transient,
                "{code}"
            );
        }
        assert_eq!(
            classify_refresh_failure(&Error::new(ErrorKind::Transport, "reset")),
            RefreshFailure::Transient
        );
        assert_eq!(
            classify_refresh_failure(&Error::new(ErrorKind::UnexpectedStatus, "429")),
            RefreshFailure::Transient
        );
        assert_eq!(
            classify_refresh_failure(&Error::new(ErrorKind::InvalidTokenResponse, "garbage")),
            RefreshFailure::Transient
        );
        let unauthorized =
            Error::new(ErrorKind::TokenRejected, "401").with_status(http::StatusCode::UNAUTHORIZED);
        assert_eq!(
            classify_refresh_failure(&unauthorized),
            RefreshFailure::GrantRejected
        );
        // A 5xx or 429 keeps every credential, whatever error code its body carries.
        for status in [503, 500, 429] {
            let status = http::StatusCode::from_u16(status).unwrap();
            for code in ["invalid_grant", "invalid_client", "temporarily_unavailable"] {
                assert_eq!(
                    classify_refresh_failure(&oauth(code).with_status(status)),
                    RefreshFailure::Transient,
                    "{code} on {status}"
                );
            }
        }
        // The OAuth code decides before the status: `invalid_grant` on a 401 is the grant, not
        // the client (dropping a registration for it would force a new one for nothing).
        let with_status = |code: &str, status: http::StatusCode| oauth(code).with_status(status);
        assert_eq!(
            classify_refresh_failure(&with_status(
                "invalid_grant",
                http::StatusCode::UNAUTHORIZED
            )),
            RefreshFailure::GrantRejected
        );
        assert_eq!(
            classify_refresh_failure(&with_status(
                "invalid_client",
                http::StatusCode::BAD_REQUEST
            )),
            RefreshFailure::ClientRejected
        );
        assert_eq!(
            classify_refresh_failure(&oauth("unauthorized_client")),
            RefreshFailure::GrantRejected
        );
        // A rejection with neither an OAuth code nor a 401 may pass.
        assert_eq!(
            classify_refresh_failure(
                &Error::new(ErrorKind::TokenRejected, "400")
                    .with_status(http::StatusCode::BAD_REQUEST)
            ),
            RefreshFailure::Transient
        );
        // An OAuth code on an error that is not a rejection is not read as one.
        let odd =
            Error::new(ErrorKind::UnexpectedStatus, "x").with_oauth_error(OAuthErrorResponse {
                error: "invalid_scope".into(),
                error_description: None,
            });
        assert_eq!(classify_refresh_failure(&odd), RefreshFailure::Transient);
    }

    /// Setting the skew changes the skew and nothing else.
    #[test]
    fn skew_setter_keeps_the_other_settings() {
        let base = RefreshPolicy::default();
        let policy = base.skew(Duration::from_secs(5));
        assert_eq!(policy.skew, Duration::from_secs(5));
        assert_ne!(base.skew, policy.skew);
        assert_eq!(
            RefreshPolicy {
                skew: base.skew,
                ..policy
            },
            base
        );
    }
}
