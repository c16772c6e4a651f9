//! [`ErrorKind`]: the causes an error of the flow can have, each one a user can act on, with
//! its stable name and whether it may pass by itself.

use std::fmt;

#[cfg(doc)]
use crate::error::Error;

/// What went wrong in an authorization flow.
///
/// Each variant names one cause the *user* of the library can act on: a transport error may go
/// away on retry, a mismatched issuer will not, a port in use needs another port. The enum is
/// `#[non_exhaustive]` so that new checks can be added without breaking callers.
///
/// ```
/// use mcp_oauth_flow::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::ResourceMismatch, "resource https://evil.example/mcp does not cover http://localhost/mcp");
/// assert_eq!(err.kind(), ErrorKind::ResourceMismatch);
/// assert!(!err.is_transient());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A `WWW-Authenticate` header could not be parsed (RFC 9110 §11.6.1).
    InvalidChallenge,
    /// No protected resource metadata document could be fetched (RFC 9728 §3).
    ResourceMetadataNotFound,
    /// A protected resource metadata document was malformed or missing a required field.
    InvalidResourceMetadata,
    /// The metadata's `resource` does not identify the server that was called (RFC 9728 §3.3).
    ResourceMismatch,
    /// No authorization server metadata could be fetched (RFC 8414 §3).
    AuthorizationServerMetadataNotFound,
    /// Authorization server metadata was malformed or missing a required field.
    InvalidAuthorizationServerMetadata,
    /// The metadata's `issuer` is not the issuer it was fetched for (RFC 8414 §3.3).
    IssuerMismatch,
    /// A URL is neither `https` nor `http` on a loopback host (OAuth 2.1 §1.5).
    InsecureUrl,
    /// The authorization server does not advertise PKCE `S256` (MCP 2025-11-25, OAuth 2.1 §4.1.1).
    PkceNotSupported,
    /// No way to identify the client: no pre-registered client, no client ID metadata document
    /// support, no registration endpoint.
    NoClientIdentity,
    /// The registration endpoint refused or garbled the registration (RFC 7591 §3.2).
    RegistrationFailed,
    /// The user or the authorization server refused the authorization (RFC 6749 §4.1.2.1).
    AuthorizationDenied,
    /// The authorization response's `state` is not the one sent (RFC 6749 §10.12).
    StateMismatch,
    /// The authorization response's `iss` is missing or not the expected issuer (RFC 9207 §2.4).
    IssuerParameterMismatch,
    /// The authorization response had neither `code` nor `error`.
    InvalidAuthorizationResponse,
    /// The token endpoint answered with an OAuth error (RFC 6749 §5.2); see
    /// [`Error::oauth_error`].
    TokenRejected,
    /// The token endpoint's answer could not be understood (RFC 6749 §5.1).
    InvalidTokenResponse,
    /// A response body was larger than the configured limit.
    BodyTooLarge,
    /// A discovery request was redirected too often, in a loop, or to another origin; or a
    /// token or registration endpoint answered with a redirect, which is never followed.
    RedirectLimit,
    /// A server answered with a status that allows no progress (a 5xx, a 429).
    UnexpectedStatus,
    /// A sub-request could not be sent at all (connect error, reset).
    Transport,
    /// A step did not finish within its configured time: a sub-request (its whole response,
    /// body included) or the non-interactive part of a flow. The message names the URL and the
    /// limit. Like a transport failure it may pass, so every stored credential is kept and
    /// the next call tries again.
    Timeout,
    /// The token store failed. Whether trying again can help depends on the cause (a timeout,
    /// a dropped connection: yes; a permission denied: no), so [`Error::is_transient`] says it
    /// per error, as the store marked it.
    Store,
    /// The consent step failed on its way back: the callback listener stopped, or the redirect
    /// the authorization server sent is not a URL.
    Consent,
    /// No authorization response arrived before the consent step's time ran out (the user did
    /// not finish in the browser, or the browser never reached the callback).
    ConsentTimeout,
    /// An authorization needs a user, and none can be asked here: a headless authorizer met a
    /// login page, or a web app's user must connect first (see `tower_mcp_oauth::web`).
    InteractionRequired,
    /// The callback listener for the redirect could not be started (the port is in use, or not
    /// allowed).
    CallbackListener,
    /// The configured redirect URI cannot be served: its path is not absolute, or it is not the
    /// address the callback listener listens at.
    InvalidRedirectUri,
    /// The request's URI cannot be authorized: it is not absolute (`http://host/path`), so
    /// there is no origin to discover or to send a token to.
    InvalidRequestUri,
    /// The flow was driven in a way its state does not allow (a bug in the driver).
    InvalidTransition,
    /// The resource answered `403 insufficient_scope` for the same scopes more times than the
    /// step-up limit allows; the layer stopped asking the user.
    StepUpLimit,
    /// More interactive authorizations were needed for one server, in a short time, than the
    /// authorization budget allows; the server keeps refusing fresh tokens.
    AuthorizationLimit,
    /// The client is configured for a grant the authorization server does not list in
    /// `grant_types_supported` (RFC 8414 §2), e.g. the jwt-bearer grant of workload identity or
    /// enterprise-managed authorization. No other grant is tried in its place.
    GrantNotSupported,
    /// The application's assertion source (a workload identity token, an ID token) gave
    /// nothing usable: the environment variable is unset, the file unreadable, the closure
    /// failed, or no source was configured.
    AssertionUnavailable,
    /// The assertion the application's source gave has expired (its `exp` is past): the
    /// platform must rotate it, or the source must renew it, before the grant can succeed.
    AssertionExpired,
    /// The token endpoint (or the enterprise IdP) refused the assertion of a jwt-bearer grant
    /// or a token exchange (RFC 7523 §3.1, RFC 8693 §2.2.2): its audience, issuer, subject or
    /// lifetime is not what the server trusts. Not retried; see [`Error::oauth_error`].
    AssertionRejected,
    /// The authorization server accepts none of the algorithms the client's key signs with
    /// (`token_endpoint_auth_signing_alg_values_supported`, RFC 8414 §2).
    SigningAlgorithmNotSupported,
    /// A configured extra parameter is one the flow's security rests on (`state`, PKCE, the
    /// redirect URI, the client, the grant, client authentication): it cannot be configured.
    ProtectedParameter,
    /// The server was required to issue a refresh token and issued none; the tokens were not
    /// kept. Ask it for offline access, or stop requiring one.
    NoRefreshToken,
    /// The authorization server publishes no `revocation_endpoint` (RFC 7009): the tokens stay
    /// valid there until they expire or are revoked in its own interface.
    RevocationUnsupported,
    /// The revocation endpoint refused the request (RFC 7009 §2.2.1).
    RevocationRefused,
    /// The DPoP key cannot be used: not a PKCS#8 PEM EC P-256 key, or not a P-256 scalar
    /// (RFC 9449 §4.2 proofs are signed with ES256 here).
    InvalidDpopKey,
    /// A server refused the DPoP proof for good: `invalid_dpop_proof`, or `use_dpop_nonce` again
    /// after one retry with the nonce it asked for (RFC 9449 §8, §9). Check the machine's clock
    /// (proofs carry `iat`) and that the server accepts ES256; or turn DPoP off for it.
    DpopRejected,
    /// The device code of a device authorization grant expired before the user approved it
    /// (`expired_token`, or its `expires_in` passed; RFC 8628 §3.5): run the flow again and
    /// enter the new user code sooner.
    DeviceCodeExpired,
    /// The protected resource metadata lists several authorization servers and none could be
    /// used: each one's metadata was missing, malformed or for another issuer, or the
    /// configured chooser kept none (RFC 9728 §7.6). The message names each one tried and why
    /// it was passed over.
    NoUsableAuthorizationServer,
    /// The server was logged out of while this request's authorization ran; its tokens were
    /// not installed. Sending the request again authorizes afresh.
    LoggedOut,
}

impl ErrorKind {
    /// A short, stable description of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidChallenge => "invalid WWW-Authenticate challenge",
            Self::ResourceMetadataNotFound => "protected resource metadata not found",
            Self::InvalidResourceMetadata => "invalid protected resource metadata",
            Self::ResourceMismatch => "protected resource metadata is for another resource",
            Self::AuthorizationServerMetadataNotFound => "authorization server metadata not found",
            Self::InvalidAuthorizationServerMetadata => "invalid authorization server metadata",
            Self::IssuerMismatch => "authorization server issuer mismatch",
            Self::InsecureUrl => "insecure URL",
            Self::PkceNotSupported => "authorization server does not support PKCE S256",
            Self::NoClientIdentity => "no client identity available",
            Self::RegistrationFailed => "client registration failed",
            Self::AuthorizationDenied => "authorization denied",
            Self::StateMismatch => "authorization response state mismatch",
            Self::IssuerParameterMismatch => "authorization response iss mismatch",
            Self::InvalidAuthorizationResponse => "invalid authorization response",
            Self::TokenRejected => "token request rejected",
            Self::InvalidTokenResponse => "invalid token response",
            Self::BodyTooLarge => "response body too large",
            Self::RedirectLimit => "too many or unsafe redirects",
            Self::UnexpectedStatus => "unexpected HTTP status",
            Self::Transport => "transport error",
            Self::Timeout => "timed out",
            Self::Store => "token store error",
            Self::Consent => "consent step failed",
            Self::ConsentTimeout => "consent step timed out",
            Self::InteractionRequired => "authorization needs a user",
            Self::CallbackListener => "cannot start the callback listener",
            Self::InvalidRedirectUri => "invalid redirect URI",
            Self::InvalidRequestUri => "request URI is not absolute",
            Self::InvalidTransition => "invalid flow transition",
            Self::StepUpLimit => "scope step-up limit reached",
            Self::AuthorizationLimit => "authorization budget exhausted",
            Self::GrantNotSupported => "authorization server does not offer the configured grant",
            Self::AssertionUnavailable => "no assertion from the assertion source",
            Self::AssertionExpired => "the assertion has expired",
            Self::AssertionRejected => "assertion rejected",
            Self::SigningAlgorithmNotSupported => {
                "authorization server accepts none of the key's signing algorithms"
            }
            Self::ProtectedParameter => "protected parameter cannot be configured",
            Self::NoRefreshToken => "no refresh token issued",
            Self::RevocationUnsupported => "token revocation not supported",
            Self::RevocationRefused => "token revocation refused",
            Self::InvalidDpopKey => "unusable DPoP key",
            Self::DpopRejected => "DPoP proof rejected",
            Self::DeviceCodeExpired => "device code expired",
            Self::NoUsableAuthorizationServer => "no usable authorization server",
            Self::LoggedOut => "logged out during the authorization",
        }
    }

    /// Whether every error of this kind may go away by itself, so that repeating the same call
    /// can succeed and every stored credential must be kept: a transport failure, a timeout, a
    /// `5xx` or a `429`. Nothing else: a body over the limit stays over it, a timed-out consent needs the
    /// user again, a limit needs its window to pass. A store error is transient or not by its
    /// cause, so for [`Store`](Self::Store) ask [`Error::is_transient`] instead.
    ///
    /// ```
    /// use mcp_oauth_flow::ErrorKind;
    /// assert!(ErrorKind::Transport.is_transient());
    /// assert!(!ErrorKind::BodyTooLarge.is_transient());
    /// ```
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Transport | Self::Timeout | Self::UnexpectedStatus
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn transient_kinds() {
        assert!(ErrorKind::Transport.is_transient());
        assert!(ErrorKind::UnexpectedStatus.is_transient());
        assert!(!ErrorKind::IssuerMismatch.is_transient());
        assert!(!ErrorKind::TokenRejected.is_transient());
    }

    /// Every kind, with whether repeating the same call can succeed. A new kind must be added
    /// here, with a decision.
    const TRANSIENCE: &[(ErrorKind, bool)] = &[
        (ErrorKind::InvalidChallenge, false),
        (ErrorKind::ResourceMetadataNotFound, false),
        (ErrorKind::InvalidResourceMetadata, false),
        (ErrorKind::ResourceMismatch, false),
        (ErrorKind::AuthorizationServerMetadataNotFound, false),
        (ErrorKind::InvalidAuthorizationServerMetadata, false),
        (ErrorKind::IssuerMismatch, false),
        (ErrorKind::InsecureUrl, false),
        (ErrorKind::PkceNotSupported, false),
        (ErrorKind::NoClientIdentity, false),
        (ErrorKind::RegistrationFailed, false),
        (ErrorKind::AuthorizationDenied, false),
        (ErrorKind::StateMismatch, false),
        (ErrorKind::IssuerParameterMismatch, false),
        (ErrorKind::InvalidAuthorizationResponse, false),
        (ErrorKind::TokenRejected, false),
        (ErrorKind::InvalidTokenResponse, false),
        // The same response comes back over the same limit.
        (ErrorKind::BodyTooLarge, false),
        (ErrorKind::RedirectLimit, false),
        (ErrorKind::UnexpectedStatus, true),
        (ErrorKind::Transport, true),
        // A slow server may be quick next time; nothing it said refused a credential.
        (ErrorKind::Timeout, true),
        // By cause: see `store_transience_comes_from_the_cause`.
        (ErrorKind::Store, false),
        (ErrorKind::Consent, false),
        // A retry asks the user again; that is the caller's decision, not a retry loop's.
        (ErrorKind::ConsentTimeout, false),
        (ErrorKind::InteractionRequired, false),
        (ErrorKind::CallbackListener, false),
        (ErrorKind::InvalidRedirectUri, false),
        (ErrorKind::InvalidRequestUri, false),
        (ErrorKind::InvalidTransition, false),
        (ErrorKind::StepUpLimit, false),
        (ErrorKind::AuthorizationLimit, false),
        (ErrorKind::GrantNotSupported, false),
        // The same source gives the same nothing until someone fixes it.
        (ErrorKind::AssertionUnavailable, false),
        // The platform rotates it; until then the same assertion is refused again.
        (ErrorKind::AssertionExpired, false),
        // SEP-1933: a rejected assertion is never retried in a loop.
        (ErrorKind::AssertionRejected, false),
        (ErrorKind::SigningAlgorithmNotSupported, false),
        (ErrorKind::ProtectedParameter, false),
        // The server issues none until it is configured to.
        (ErrorKind::NoRefreshToken, false),
        (ErrorKind::RevocationUnsupported, false),
        (ErrorKind::RevocationRefused, false),
        (ErrorKind::InvalidDpopKey, false),
        // The server's retry was already spent; the same proof fails the same way.
        (ErrorKind::DpopRejected, false),
        // A new code needs the user again; polling the old one cannot succeed.
        (ErrorKind::DeviceCodeExpired, false),
        // The same servers serve the same broken metadata until someone fixes them.
        (ErrorKind::NoUsableAuthorizationServer, false),
        // A new authorization needs the user again: the caller's decision.
        (ErrorKind::LoggedOut, false),
    ];

    #[test]
    fn transience_table() {
        for (kind, transient) in TRANSIENCE {
            assert_eq!(kind.is_transient(), *transient, "{kind:?}");
            assert_eq!(
                Error::new(*kind, "x").is_transient(),
                *transient,
                "{kind:?}"
            );
        }
        // Every kind is in the table exactly once, and has its own description.
        let mut names: Vec<&str> = TRANSIENCE.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            TRANSIENCE.len(),
            "two kinds share a description"
        );
    }

    /// A kind prints as its stable name, the one logs and metrics key on.
    #[test]
    fn kind_displays_its_name() {
        assert_eq!(
            ErrorKind::TokenRejected.to_string(),
            ErrorKind::TokenRejected.as_str()
        );
        assert!(!ErrorKind::TokenRejected.to_string().is_empty());
    }
}
