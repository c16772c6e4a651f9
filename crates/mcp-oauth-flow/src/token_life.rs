//! When held tokens are worth nothing: an access token past its expiry that nothing can renew.

use std::time::{Duration, SystemTime};

use crate::token_set::TokenSet;

/// Whether `tokens` are spent at `now`: the access token has expired and there is no refresh
/// token to renew it. A resource refuses an expired token (RFC 6750 §3.1, `invalid_token`:
/// "expired"), and without a refresh token (RFC 6749 §6) only a new authorization gives
/// another: spent tokens are no token at all. They must not be sent, and a `401` while holding
/// them calls for a new authorization, never for a retry with them.
///
/// A token of unknown expiry is never spent (only the resource can tell), nor one that a
/// refresh token can renew.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mcp_oauth_flow::{secrets::RefreshToken, token::{is_spent, TokenSet, TokenType}};
/// let now = SystemTime::now();
/// let expired = TokenSet::new("at", TokenType::Bearer, "https://as.example.com", "client")
///     .with_expires_at(Some(now - Duration::from_secs(1)));
/// assert!(is_spent(&expired, now));
/// let renewable = expired.clone().with_refresh_token(Some(RefreshToken::new("rt".into())));
/// assert!(!is_spent(&renewable, now));
/// ```
pub fn is_spent(tokens: &TokenSet, now: SystemTime) -> bool {
    tokens.refresh_token().is_none() && tokens.is_expired(now, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use oauth2::RefreshToken;

    use super::*;
    use crate::token_set::TokenType;

    #[test]
    fn spent_only_when_expired_and_not_renewable() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let expiring = TokenSet::new("at", TokenType::Bearer, "i", "c")
            .with_expires_at(Some(t0 + Duration::from_secs(60)));
        assert!(!is_spent(&expiring, t0 + Duration::from_secs(59)));
        assert!(is_spent(&expiring, t0 + Duration::from_secs(60)));
        let renewable = expiring
            .clone()
            .with_refresh_token(Some(RefreshToken::new("r".into())));
        assert!(!is_spent(&renewable, t0 + Duration::from_secs(3_600)));
        let unknown = TokenSet::new("at", TokenType::Bearer, "i", "c");
        assert!(!is_spent(&unknown, t0 + Duration::from_secs(1 << 30)));
    }
}
